//! The hub's network side: `mykey-hub serve`. libp2p over TCP (noise +
//! yamux) with identify, ping and one request-response protocol,
//! `/mykey/sync/1`, whose requests go through a
//! [`mykey_sync_proto::session::HubSession`] per connected node.
//!
//! - [`codec`]: length-prefixed frames with explicit caps; bad frames are values.
//! - [`config`]: `hub.toml` in the data directory.
//! - [`serve`]: the swarm and the serving loop.
//!
//! The transport identity is the hub key (the key that signs facts), and a
//! peer's identity is its node key: a connection from a key that is not
//! enrolled, or is revoked, is answered with a refusal and dropped.

pub mod codec;
pub mod config;
pub mod serve;

use libp2p::PeerId;
use libp2p::identity;
use mykey_sync_proto::NodeId;

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

/// Milliseconds since the epoch.
pub fn unix_now() -> mykey_sync_proto::UnixMillis {
    let ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0);
    mykey_sync_proto::UnixMillis(ms)
}
