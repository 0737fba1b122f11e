//! The hub's signing key: signs every fact nodes receive.
//!
//! Generated from OS randomness at `init`, kept in a file only its owner can
//! read (mode 0600, `mykey_net::keyfile`), never logged: `Debug` prints the
//! public half only.

use ed25519_dalek::SigningKey;
use mykey_net::keyfile::{self, Role};
use mykey_sync_proto::NodeId;
use std::path::Path;

/// Why the key file could not be created or read (the shared key file's
/// error, naming the hub key).
pub use mykey_net::keyfile::KeyFileError as KeyError;

/// The hub's ed25519 key pair.
pub struct HubKey {
    signing: SigningKey,
    id: NodeId,
}

impl std::fmt::Debug for HubKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "HubKey(public {}, secret ..)", self.id.short())
    }
}

impl HubKey {
    /// A key from its 32 secret bytes (simulations and tests use fixed seeds).
    pub fn from_secret_bytes(bytes: &[u8; 32]) -> HubKey {
        HubKey::from_signing(SigningKey::from_bytes(bytes))
    }

    fn from_signing(signing: SigningKey) -> HubKey {
        let id = NodeId::from_bytes(signing.verifying_key().to_bytes())
            .unwrap_or_else(|_| unreachable!("an ed25519 public key is a valid curve point"));
        HubKey { signing, id }
    }

    /// A fresh key from OS randomness.
    pub fn generate() -> Result<HubKey, KeyError> {
        Ok(HubKey::from_signing(keyfile::generate(Role::Hub)?))
    }

    /// The public key: nodes verify facts with it.
    pub fn id(&self) -> NodeId {
        self.id
    }

    /// The signing key, for signing facts.
    pub(crate) fn signing_key(&self) -> &SigningKey {
        &self.signing
    }

    /// Writes the key to a new file with mode 0600 (`mykey_net::keyfile`'s
    /// one format).
    pub fn write_new(&self, path: &Path) -> Result<(), KeyError> {
        keyfile::write_new(path, &self.signing, Role::Hub)
    }

    /// Reads a key file, refusing one that others can read.
    pub fn read(path: &Path) -> Result<HubKey, KeyError> {
        Ok(HubKey::from_signing(keyfile::read(path, Role::Hub)?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn key_file_round_trip_mode_and_debug() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("hub.key");
        let k = HubKey::generate().unwrap();
        k.write_new(&path).unwrap();
        let mode = fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let back = HubKey::read(&path).unwrap();
        assert_eq!(back.id(), k.id());
        assert!(matches!(k.write_new(&path), Err(KeyError::Exists { .. })));
        let secret_hex = hex::encode(k.signing.to_bytes());
        let debug = format!("{k:?}");
        assert!(!debug.contains(&secret_hex[..16]), "{debug}");
        fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).unwrap();
        assert!(matches!(
            HubKey::read(&path),
            Err(KeyError::Permissions { .. })
        ));
    }

    #[test]
    fn a_key_file_of_an_older_hub_keeps_its_identity() {
        // What `mykey-hub init` wrote before the shared key file: the same
        // 64 hex digits and a newline.
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("hub.key");
        fs::write(&path, format!("{}\n", "4d".repeat(32))).unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(0o600)).unwrap();
        let old = HubKey::from_secret_bytes(&[0x4d; 32]);
        assert_eq!(HubKey::read(&path).unwrap().id(), old.id());
    }
}
