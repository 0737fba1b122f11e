//! A libp2p identity is the ed25519 key that signs: noise then authenticates
//! the very key behind a node's transactions or the hub's facts.

use ed25519_dalek::SigningKey;
use libp2p::PeerId;
use libp2p::identity::{self, DecodingError, Keypair};
use mykey_sync_proto::NodeId;

/// The libp2p keypair of an ed25519 signing key.
pub fn keypair(key: &SigningKey) -> Result<Keypair, DecodingError> {
    // libp2p zeroizes the bytes it is given: hand it a copy, and wipe the
    // copy on the error path too.
    let mut secret = key.to_bytes();
    let kp = Keypair::ed25519_from_bytes(&mut secret);
    zeroize::Zeroize::zeroize(&mut secret);
    kp
}

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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn peer_id_and_node_id_agree() {
        let key = SigningKey::from_bytes(&[7; 32]);
        let id = NodeId::from_bytes(key.verifying_key().to_bytes()).unwrap();
        let peer = peer_id_of(&id);
        assert_eq!(node_id_of(&peer), Some(id));
        assert_eq!(keypair(&key).unwrap().public().to_peer_id(), peer);
    }

    #[test]
    fn a_peer_id_without_a_key_is_no_node_id() {
        // An identity multihash of random bytes is not a protobuf public key.
        assert_eq!(node_id_of(&PeerId::random()), None);
    }
}
