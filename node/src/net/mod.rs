//! The node's network side: libp2p (TCP + noise + yamux, identify, ping and
//! one request-response protocol, `/mykey/sync/1`) driving the sans-IO
//! [`mykey_sync_proto::session::NodeSession`] against the hub.
//!
//! - [`codec`]: length-prefixed frames with explicit caps; bad frames are values.
//! - [`transport`]: the swarm, whose identity *is* the node key.
//! - [`driver`]: what to do with each session event (shared with the in-process harness).
//! - [`lan`]: `/mykey/lan/1`, pending transactions between LAN peers.
//! - [`backoff`]: reconnect delays with jitter (pure).
//! - [`config`]: `net.toml` in the data directory.
//! - [`run`]: `mykey-node run`, the long-running loop.

pub mod backoff;
pub mod codec;
pub mod config;
pub mod driver;
pub mod lan;
pub mod run;
pub mod transport;

use libp2p::PeerId;
use libp2p::identity;
use mykey_sync_proto::NodeId;

/// The libp2p peer id of an ed25519 key (a node's or the hub's).
pub fn peer_id_of(id: &NodeId) -> PeerId {
    #[allow(clippy::expect_used)]
    let pk = identity::ed25519::PublicKey::try_from_bytes(id.as_bytes())
        .expect("a NodeId is a valid ed25519 public key");
    identity::PublicKey::from(pk).to_peer_id()
}

/// The ed25519 key behind a peer id, if it is one (ed25519 peer ids inline
/// their public key).
pub fn node_id_of(peer: &PeerId) -> Option<NodeId> {
    let mh = peer.as_ref();
    if mh.code() != 0 {
        return None;
    }
    let pk = identity::PublicKey::try_decode_protobuf(mh.digest()).ok()?;
    let ed = pk.try_into_ed25519().ok()?;
    NodeId::from_bytes(ed.to_bytes()).ok()
}

/// Milliseconds since the epoch, the clock every `handle_*` call takes.
pub fn unix_now() -> mykey_sync_proto::UnixMillis {
    let ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0);
    mykey_sync_proto::UnixMillis(ms)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn peer_id_and_node_id_agree() {
        let key = crate::NodeKey::from_secret([7; 32]);
        let peer = peer_id_of(&key.id());
        assert_eq!(node_id_of(&peer), Some(key.id()));
        let kp = transport::keypair(key.signing_key()).unwrap();
        assert_eq!(kp.public().to_peer_id(), peer);
    }
}
