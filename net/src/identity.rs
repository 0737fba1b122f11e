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

/// Why the hub named at `mykey-node init` is not one hub.
#[derive(Debug, thiserror::Error)]
pub enum HubNameError {
    /// Neither a hub id nor an address with one.
    #[error(
        "name the hub: --hub-key HUB_ID (`mykey-hub id` prints it), or --hub-addr ADDR/p2p/PEER_ID \
         as `mykey-hub serve` prints it (the hub id is in the peer id)"
    )]
    Missing,
    /// Not hex, or too short to be safe.
    #[error(
        "--hub-key {0:?} is not a hub id: give its 64 hex digits (`mykey-hub id`), or the first 4 or more \
         with --hub-addr ADDR/p2p/PEER_ID"
    )]
    Bad(String),
    /// A prefix, with no address to check it against.
    #[error(
        "--hub-key {0:?} is a prefix: give all 64 hex digits (`mykey-hub id`), or --hub-addr ADDR/p2p/PEER_ID \
         as `mykey-hub serve` prints it, which holds the whole id"
    )]
    PrefixWithoutAddr(String),
    /// The address's peer id is of another key.
    #[error(
        "--hub-key {given:?} is not the key of the hub at --hub-addr (its peer id holds hub id {derived}): \
         copy both from the same hub (`mykey-hub id`, and the `listening on` line of `mykey-hub serve`)"
    )]
    Mismatch {
        /// As given.
        given: String,
        /// The id the peer id holds.
        derived: String,
    },
    /// The address's peer id holds no ed25519 key.
    #[error(
        "--hub-addr {0:?} ends in a /p2p peer id that holds no hub key: copy the address `mykey-hub serve` prints"
    )]
    NotAHubPeer(String),
}

/// The hub id named by a hex id or any unique prefix of it (4 or more
/// digits) and an address, one of which may be missing: an address ending
/// in `/p2p/PEER_ID` holds the whole id, so the README's two values are one.
pub fn hub_id_from(key: Option<&str>, addr: Option<&str>) -> Result<NodeId, HubNameError> {
    let derived = match addr.and_then(|a| a.rsplit_once("/p2p/")) {
        Some((_, peer)) => {
            let bad = || HubNameError::NotAHubPeer(addr.unwrap_or_default().to_owned());
            let peer: PeerId = peer.trim_end_matches('/').parse().map_err(|_| bad())?;
            Some(node_id_of(&peer).ok_or_else(bad)?)
        }
        None => None,
    };
    let Some(key) = key.map(|k| k.trim().to_ascii_lowercase()) else {
        return derived.ok_or(HubNameError::Missing);
    };
    if key.len() < 4 || key.len() > 64 || !key.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(HubNameError::Bad(key));
    }
    match derived {
        Some(d) if d.to_string().starts_with(&key) => Ok(d),
        Some(d) => Err(HubNameError::Mismatch {
            given: key,
            derived: d.to_string(),
        }),
        None if key.len() == 64 => NodeId::parse(&key).map_err(|_| HubNameError::Bad(key)),
        None => Err(HubNameError::PrefixWithoutAddr(key)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_hub_is_named_by_its_id_a_prefix_or_its_address() {
        let id = NodeId::from_bytes(SigningKey::from_bytes(&[9; 32]).verifying_key().to_bytes())
            .unwrap();
        let hex = id.to_string();
        let addr = format!("/ip4/127.0.0.1/tcp/4001/p2p/{}", peer_id_of(&id));
        let other = NodeId::from_bytes(SigningKey::from_bytes(&[8; 32]).verifying_key().to_bytes())
            .unwrap()
            .to_string();
        for (key, addr, ok) in [
            (Some(hex.as_str()), None, true),
            (Some(&hex[..8]), Some(addr.as_str()), true),
            (Some(&hex[..]), Some(&addr[..]), true),
            (None, Some(&addr[..]), true),
            (Some(&hex[..8]), None, false),
            (Some(&hex[..3]), Some(&addr[..]), false),
            (Some(&other[..8]), Some(&addr[..]), false),
            (Some(other.as_str()), Some(&addr[..]), false),
            (None, Some("/ip4/127.0.0.1/tcp/4001"), false),
            (None, None, false),
            (Some("zz12"), None, false),
        ] {
            let got = hub_id_from(key, addr);
            assert_eq!(got.is_ok(), ok, "{key:?} {addr:?}: {got:?}");
            if let Ok(got) = got {
                assert_eq!(got, id);
            }
        }
    }

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
