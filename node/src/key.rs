//! The node's ed25519 key: created on first start in a file only its owner
//! can read (`mykey_net::keyfile`), never logged. The libp2p identity is derived from the same key,
//! so the transport authenticates the key that signs transactions.

use ed25519_dalek::SigningKey;
use mykey_net::keyfile::{self, Role};
use mykey_sync_proto::NodeId;
use std::path::Path;

/// Why the key file could not be used (the shared key file's error, naming
/// the node key).
pub use mykey_net::keyfile::KeyFileError as KeyError;

/// The node's signing key. `Debug` never prints the secret; the key bytes are
/// zeroized on drop.
pub struct NodeKey {
    key: SigningKey,
    id: NodeId,
}

impl std::fmt::Debug for NodeKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "NodeKey({}, ..)", self.id.short())
    }
}

impl NodeKey {
    /// Loads the key at `path`, creating it (mode 0600) if it does not exist
    /// (`mykey_net::keyfile`: hex digits; the raw 32 bytes older nodes wrote
    /// still load).
    pub fn load_or_create(path: &Path) -> Result<NodeKey, KeyError> {
        Ok(NodeKey::from_signing(keyfile::load_or_create(
            path,
            Role::Node,
        )?))
    }

    /// A key from secret bytes (tests, simulation: deterministic keys).
    pub fn from_secret(mut secret: [u8; 32]) -> NodeKey {
        let key = SigningKey::from_bytes(&secret);
        zeroize::Zeroize::zeroize(&mut secret);
        NodeKey::from_signing(key)
    }

    fn from_signing(key: SigningKey) -> NodeKey {
        #[allow(clippy::expect_used)]
        let id = NodeId::from_bytes(key.verifying_key().to_bytes())
            .expect("an ed25519 public key derived from a secret is a valid point");
        NodeKey { key, id }
    }

    /// The public identity.
    pub fn id(&self) -> NodeId {
        self.id
    }

    /// The signing key, for signing transactions (and deriving the libp2p identity).
    pub fn signing_key(&self) -> &SigningKey {
        &self.key
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn created_with_owner_only_mode_and_reloaded() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("node.key");
        let a = NodeKey::load_or_create(&p).unwrap();
        let mode = fs::metadata(&p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let b = NodeKey::load_or_create(&p).unwrap();
        assert_eq!(a.id(), b.id());
        assert!(!format!("{a:?}").contains(&hex::encode(a.signing_key().to_bytes())));
        fs::set_permissions(&p, fs::Permissions::from_mode(0o644)).unwrap();
        assert!(matches!(
            NodeKey::load_or_create(&p),
            Err(KeyError::Permissions { .. })
        ));
    }

    #[test]
    fn a_key_file_of_an_older_node_keeps_its_identity() {
        // Nodes before the shared key file wrote the 32 secret bytes raw.
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("node.key");
        let old = NodeKey::from_secret([0x21; 32]);
        let mut f = fs::OpenOptions::new();
        std::os::unix::fs::OpenOptionsExt::mode(f.write(true).create_new(true), 0o600);
        std::io::Write::write_all(&mut f.open(&p).unwrap(), &[0x21; 32]).unwrap();
        assert_eq!(NodeKey::load_or_create(&p).unwrap().id(), old.id());
        assert_eq!(fs::read(&p).unwrap(), [0x21; 32]);
    }
}
