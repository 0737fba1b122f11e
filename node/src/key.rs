//! The node's ed25519 key: created on first start in a file only its owner
//! can read, never logged. The libp2p identity is derived from the same key,
//! so the transport authenticates the key that signs transactions.

use ed25519_dalek::SigningKey;
use mykey_sync_proto::NodeId;
use std::fs;
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

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

/// Why the key file could not be used.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// Reading or writing the file failed.
    #[error("node key file {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// The file is not 32 bytes.
    #[error(
        "node key file {path} is {len} bytes, expected 32: it is damaged; restore it from backup"
    )]
    Length {
        /// The file.
        path: PathBuf,
        /// Its size.
        len: usize,
    },
    /// Other users can read the file.
    #[error(
        "node key file {path} has mode {mode:o}: others can read it; run `chmod 600 {path}` and check who copied it"
    )]
    Permissions {
        /// The file.
        path: PathBuf,
        /// Its mode bits.
        mode: u32,
    },
    /// The OS random source failed.
    #[error("cannot draw random bytes for a new key: {0}")]
    Random(String),
}

impl NodeKey {
    /// Loads the key at `path`, creating it (mode 0600) if it does not exist.
    pub fn load_or_create(path: &Path) -> Result<NodeKey, KeyError> {
        let io = |source| KeyError::Io {
            path: path.to_owned(),
            source,
        };
        match fs::read(path) {
            Ok(bytes) => {
                let mode = fs::metadata(path).map_err(io)?.permissions().mode() & 0o777;
                if mode & 0o077 != 0 {
                    return Err(KeyError::Permissions {
                        path: path.to_owned(),
                        mode,
                    });
                }
                let len = bytes.len();
                let arr: [u8; 32] = bytes.try_into().map_err(|_| KeyError::Length {
                    path: path.to_owned(),
                    len,
                })?;
                Ok(NodeKey::from_secret(arr))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let mut secret = [0u8; 32];
                getrandom::fill(&mut secret).map_err(|e| KeyError::Random(e.to_string()))?;
                let mut f = fs::OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .mode(0o600)
                    .open(path)
                    .map_err(io)?;
                f.write_all(&secret).map_err(io)?;
                f.sync_all().map_err(io)?;
                Ok(NodeKey::from_secret(secret))
            }
            Err(e) => Err(io(e)),
        }
    }

    /// A key from secret bytes (tests, simulation: deterministic keys).
    pub fn from_secret(mut secret: [u8; 32]) -> NodeKey {
        let key = SigningKey::from_bytes(&secret);
        zeroize::Zeroize::zeroize(&mut secret);
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
}
