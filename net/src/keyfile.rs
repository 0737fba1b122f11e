//! The key file the node and the hub keep their ed25519 signing key in.
//!
//! One format: the 32 secret bytes as 64 hex digits and a newline, in a
//! file created with mode 0600 and refused when group or others can read
//! it. Nodes before this format wrote the 32 bytes raw; such a file still
//! loads as it is (it is never rewritten), so a node that upgrades keeps
//! its identity. The secret lives in zeroized buffers only.

use ed25519_dalek::SigningKey;
use std::fmt;
use std::fs;
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use zeroize::Zeroizing;

/// Whose key a file holds: the errors name it and say what to run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    /// `hub.key` in the hub's data directory.
    Hub,
    /// `node.key` in a node's data directory.
    Node,
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Role::Hub => "hub key",
            Role::Node => "node key",
        })
    }
}

impl Role {
    /// What to run when the key is missing.
    fn init_hint(self) -> &'static str {
        match self {
            Role::Hub => "run `mykey-hub init --data DIR` first",
            Role::Node => "run `mykey-node init` first, or restore the file from backup",
        }
    }
}

/// Why a key file could not be created or read.
#[derive(Debug, thiserror::Error)]
pub enum KeyFileError {
    /// The OS random source failed.
    #[error("could not draw randomness for a new {role} from the OS: {source}")]
    Random {
        /// Whose key.
        role: Role,
        /// The OS error.
        #[source]
        source: getrandom::Error,
    },
    /// A key file is already there: an identity is never overwritten.
    #[error("a {role} already exists at {path}; refusing to overwrite its identity")]
    Exists {
        /// Whose key.
        role: Role,
        /// The file.
        path: PathBuf,
    },
    /// The key file is missing.
    #[error("no {role} at {path}; {}", role.init_hint())]
    Missing {
        /// Whose key.
        role: Role,
        /// The file.
        path: PathBuf,
    },
    /// Group or others can read the file.
    #[error(
        "{role} {path} is readable by group or others (mode {mode:o}); run `chmod 600 {path}` and check who copied it"
    )]
    Permissions {
        /// Whose key.
        role: Role,
        /// The file.
        path: PathBuf,
        /// Its mode bits.
        mode: u32,
    },
    /// The file holds neither format.
    #[error(
        "{role} {path} is damaged ({len} bytes, neither 64 hex digits nor 32 raw bytes); restore it from backup"
    )]
    Damaged {
        /// Whose key.
        role: Role,
        /// The file.
        path: PathBuf,
        /// Its size.
        len: usize,
    },
    /// Reading or writing failed.
    #[error("{role} {path}: {source}")]
    Io {
        /// Whose key.
        role: Role,
        /// The file.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
}

/// A fresh key from OS randomness.
pub fn generate(role: Role) -> Result<SigningKey, KeyFileError> {
    let mut secret = Zeroizing::new([0u8; 32]);
    getrandom::fill(&mut secret[..]).map_err(|source| KeyFileError::Random { role, source })?;
    Ok(SigningKey::from_bytes(&secret))
}

/// Writes `key` to a new file with mode 0600 (never over an existing one).
pub fn write_new(path: &Path, key: &SigningKey, role: Role) -> Result<(), KeyFileError> {
    let io = |source| KeyFileError::Io {
        role,
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
                KeyFileError::Exists {
                    role,
                    path: path.to_owned(),
                }
            } else {
                io(e)
            }
        })?;
    let text = Zeroizing::new(format!("{}\n", hex::encode(key.to_bytes())));
    file.write_all(text.as_bytes()).map_err(io)?;
    file.sync_all().map_err(io)?;
    Ok(())
}

/// Reads a key file of either format, refusing one that others can read.
pub fn read(path: &Path, role: Role) -> Result<SigningKey, KeyFileError> {
    let io = |source| KeyFileError::Io {
        role,
        path: path.to_owned(),
        source,
    };
    let meta = fs::metadata(path).map_err(|e| {
        if e.kind() == std::io::ErrorKind::NotFound {
            KeyFileError::Missing {
                role,
                path: path.to_owned(),
            }
        } else {
            io(e)
        }
    })?;
    let mode = meta.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        return Err(KeyFileError::Permissions {
            role,
            path: path.to_owned(),
            mode,
        });
    }
    let bytes = Zeroizing::new(fs::read(path).map_err(io)?);
    let mut secret = Zeroizing::new([0u8; 32]);
    if bytes.len() == 32 {
        // The raw format of nodes before the hex one.
        secret.copy_from_slice(&bytes);
    } else {
        hex::decode_to_slice(bytes.trim_ascii(), &mut secret[..]).map_err(|_| {
            KeyFileError::Damaged {
                role,
                path: path.to_owned(),
                len: bytes.len(),
            }
        })?;
    }
    Ok(SigningKey::from_bytes(&secret))
}

/// Reads the key at `path`, or creates one there (mode 0600) if there is no
/// file yet.
pub fn load_or_create(path: &Path, role: Role) -> Result<SigningKey, KeyFileError> {
    match read(path, role) {
        Err(KeyFileError::Missing { .. }) => {
            let key = generate(role)?;
            write_new(path, &key, role)?;
            Ok(key)
        }
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mode(path: &Path) -> u32 {
        fs::metadata(path).unwrap().permissions().mode() & 0o777
    }

    fn write_with_mode(path: &Path, bytes: &[u8], mode: u32) {
        fs::write(path, bytes).unwrap();
        fs::set_permissions(path, fs::Permissions::from_mode(mode)).unwrap();
    }

    #[test]
    fn written_hex_0600_read_back_and_never_overwritten() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("hub.key");
        let key = generate(Role::Hub).unwrap();
        write_new(&path, &key, Role::Hub).unwrap();
        assert_eq!(mode(&path), 0o600);
        let text = fs::read_to_string(&path).unwrap();
        assert_eq!(text, format!("{}\n", hex::encode(key.to_bytes())));
        assert_eq!(read(&path, Role::Hub).unwrap().to_bytes(), key.to_bytes());
        let other = generate(Role::Hub).unwrap();
        assert!(matches!(
            write_new(&path, &other, Role::Hub),
            Err(KeyFileError::Exists { .. })
        ));
        assert_eq!(read(&path, Role::Hub).unwrap().to_bytes(), key.to_bytes());
    }

    #[test]
    fn an_old_hub_file_of_hex_digits_loads() {
        // What `mykey-hub init` wrote before: 64 hex digits and a newline.
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("hub.key");
        let secret = [0x5a; 32];
        write_with_mode(
            &path,
            format!("{}\n", hex::encode(secret)).as_bytes(),
            0o600,
        );
        let key = read(&path, Role::Hub).unwrap();
        assert_eq!(key.to_bytes(), secret);
        // Upper case and no newline read the same.
        write_with_mode(&path, hex::encode_upper(secret).as_bytes(), 0o600);
        assert_eq!(read(&path, Role::Hub).unwrap().to_bytes(), secret);
    }

    #[test]
    fn an_old_node_file_of_raw_bytes_loads_and_is_left_as_it_is() {
        // What `mykey-node` wrote before: the 32 secret bytes raw.
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("node.key");
        let secret: [u8; 32] = std::array::from_fn(|i| (i * 7 + 0x0a) as u8);
        write_with_mode(&path, &secret, 0o600);
        let key = load_or_create(&path, Role::Node).unwrap();
        assert_eq!(key.to_bytes(), secret);
        assert_eq!(
            fs::read(&path).unwrap(),
            secret,
            "the file is not rewritten"
        );
        // Raw bytes that happen to be hex digits are still 32 bytes: raw.
        let digits = [b'a'; 32];
        write_with_mode(&path, &digits, 0o600);
        assert_eq!(read(&path, Role::Node).unwrap().to_bytes(), digits);
    }

    #[test]
    fn load_or_create_creates_once() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("node.key");
        let a = load_or_create(&path, Role::Node).unwrap();
        assert_eq!(mode(&path), 0o600);
        let b = load_or_create(&path, Role::Node).unwrap();
        assert_eq!(a.to_bytes(), b.to_bytes());
    }

    #[test]
    fn readable_by_others_missing_and_damaged_files_are_refused_with_what_to_do() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("hub.key");
        let err = read(&path, Role::Hub).unwrap_err();
        assert!(matches!(err, KeyFileError::Missing { .. }), "{err}");
        assert!(err.to_string().contains("mykey-hub init"), "{err}");

        for m in [0o640, 0o604, 0o644] {
            write_with_mode(&path, &[1; 32], m);
            let err = read(&path, Role::Node).unwrap_err();
            assert!(
                matches!(err, KeyFileError::Permissions { mode, .. } if mode == m),
                "{err}"
            );
            assert!(err.to_string().contains("chmod 600"), "{err}");
            // Refused before reading: no key is made either.
            assert!(load_or_create(&path, Role::Node).is_err());
        }

        for damaged in [
            &b""[..],
            &[7; 31],
            &[7; 33],
            b"not a key at all, not hex digits at all, not 32 bytes",
        ] {
            write_with_mode(&path, damaged, 0o600);
            let err = read(&path, Role::Hub).unwrap_err();
            assert!(
                matches!(err, KeyFileError::Damaged { len, .. } if len == damaged.len()),
                "{err}"
            );
            let text = err.to_string();
            assert!(text.contains("restore it from backup"), "{text}");
            // A damaged file is never replaced by a new identity.
            assert!(load_or_create(&path, Role::Node).is_err());
            assert_eq!(fs::read(&path).unwrap(), damaged);
        }
    }

    #[test]
    fn errors_never_show_the_secret() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("hub.key");
        let secret = [0x3c; 32];
        write_with_mode(
            &path,
            format!("{}\n", hex::encode(secret)).as_bytes(),
            0o644,
        );
        let err = read(&path, Role::Hub).unwrap_err();
        assert!(!format!("{err} {err:?}").contains(&hex::encode(secret)[..16]));
    }
}
