//! The hub's signing key: signs every fact nodes receive.
//!
//! Generated from OS randomness at `init`, kept in a file only its owner can
//! read (mode 0600), never logged: `Debug` prints the public half only.

use ed25519_dalek::SigningKey;
use mykey_sync_proto::NodeId;
use std::fs;
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use zeroize::Zeroizing;

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

/// Why the key file could not be created or read.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// The OS random source failed.
    #[error("could not draw randomness for the hub key from the OS: {0}")]
    Random(getrandom::Error),
    /// A key file is already there: never overwrite a hub's identity.
    #[error("a hub key already exists at {0}; refusing to overwrite the hub's identity")]
    Exists(PathBuf),
    /// The key file is missing.
    #[error("no hub key at {0}; run `mykey-hub init --data DIR` first")]
    Missing(PathBuf),
    /// The key file is readable by others.
    #[error(
        "hub key {path} is readable by group or others (mode {mode:o}); run `chmod 600 {path}`"
    )]
    Permissions {
        /// The file.
        path: PathBuf,
        /// Its mode bits.
        mode: u32,
    },
    /// The key file does not hold a key.
    #[error("hub key {0} is not 64 hex digits; restore it from backup")]
    Format(PathBuf),
    /// Reading or writing failed.
    #[error("hub key {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
}

impl HubKey {
    /// A key from its 32 secret bytes (simulations and tests use fixed seeds).
    pub fn from_secret_bytes(bytes: &[u8; 32]) -> HubKey {
        let signing = SigningKey::from_bytes(bytes);
        let id = NodeId::from_bytes(signing.verifying_key().to_bytes())
            .unwrap_or_else(|_| unreachable!("an ed25519 public key is a valid curve point"));
        HubKey { signing, id }
    }

    /// A fresh key from OS randomness.
    pub fn generate() -> Result<HubKey, KeyError> {
        let mut secret = Zeroizing::new([0u8; 32]);
        getrandom::fill(&mut secret[..]).map_err(KeyError::Random)?;
        Ok(HubKey::from_secret_bytes(&secret))
    }

    /// The public key: nodes verify facts with it.
    pub fn id(&self) -> NodeId {
        self.id
    }

    /// The signing key, for signing facts.
    pub(crate) fn signing_key(&self) -> &SigningKey {
        &self.signing
    }

    /// Writes the key to a new file with mode 0600.
    pub fn write_new(&self, path: &Path) -> Result<(), KeyError> {
        let io = |source| KeyError::Io {
            path: path.to_owned(),
            source,
        };
        let mut file = fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(path)
            .map_err(|e| {
                if e.kind() == std::io::ErrorKind::AlreadyExists {
                    KeyError::Exists(path.to_owned())
                } else {
                    io(e)
                }
            })?;
        let text = Zeroizing::new(format!("{}\n", hex::encode(self.signing.to_bytes())));
        file.write_all(text.as_bytes()).map_err(io)?;
        file.sync_all().map_err(io)?;
        Ok(())
    }

    /// Reads a key file, refusing one that others can read.
    pub fn read(path: &Path) -> Result<HubKey, KeyError> {
        let io = |source| KeyError::Io {
            path: path.to_owned(),
            source,
        };
        let meta = fs::metadata(path).map_err(|e| {
            if e.kind() == std::io::ErrorKind::NotFound {
                KeyError::Missing(path.to_owned())
            } else {
                io(e)
            }
        })?;
        let mode = meta.permissions().mode() & 0o777;
        if mode & 0o077 != 0 {
            return Err(KeyError::Permissions {
                path: path.to_owned(),
                mode,
            });
        }
        let text = Zeroizing::new(fs::read_to_string(path).map_err(io)?);
        let mut secret = Zeroizing::new([0u8; 32]);
        hex::decode_to_slice(text.trim(), &mut secret[..])
            .map_err(|_| KeyError::Format(path.to_owned()))?;
        Ok(HubKey::from_secret_bytes(&secret))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
        assert!(matches!(k.write_new(&path), Err(KeyError::Exists(_))));
        let secret_hex = hex::encode(k.signing.to_bytes());
        let debug = format!("{k:?}");
        assert!(!debug.contains(&secret_hex[..16]), "{debug}");
        fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).unwrap();
        assert!(matches!(
            HubKey::read(&path),
            Err(KeyError::Permissions { .. })
        ));
    }
}
