//! The node's data directory: key file, store, and a TOML config.
//!
//! The directory is mode 0700 and every file in it 0600 (its store holds
//! card-to-account links and balances): made so by `init`, and put back so
//! by `open` if someone loosened them.

use crate::key::{KeyError, NodeKey};
use crate::node::{Node, OpenError};
use mykey_sync_proto::NodeId;
use serde::{Deserialize, Serialize};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// The node's configuration file (`node.toml` in the data directory).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct NodeConfig {
    /// The hub's public key (hex): facts are verified against it.
    pub hub_key: String,
    /// The hub's address (a libp2p multiaddr), used by `mykey-node run`.
    #[serde(default)]
    pub hub_addr: Option<String>,
}

/// Sections of `node.toml` owned by other modules: `[sip2]` (the SIP2 bridge,
/// [`crate::sip2::config`]).
pub const SECTIONS: &[&str] = &["sip2"];

/// A data directory problem.
#[derive(Debug, thiserror::Error)]
pub enum DataDirError {
    /// The directory or config could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// The config did not parse.
    #[error(
        "{path}: {detail}; fix that line, or restore node.toml from a backup (keep node.key and node.sqlite as they are: they are this node's identity and its pending transactions)"
    )]
    Config {
        /// The file.
        path: PathBuf,
        /// What was wrong.
        detail: String,
    },
    /// Not initialised.
    #[error(
        "{0} is not a node data directory: run `mykey-node init --data {0} --hub-key HEX` first"
    )]
    NotInitialised(PathBuf),
    /// Already initialised.
    #[error("{0} already holds a node: pick another directory or use it as it is")]
    AlreadyInitialised(PathBuf),
    /// The key file failed.
    #[error(transparent)]
    Key(#[from] KeyError),
    /// The store failed to open.
    #[error(transparent)]
    Open(#[from] OpenError),
}

/// Paths inside a data directory.
#[derive(Debug, Clone)]
pub struct DataDir {
    root: PathBuf,
}

impl DataDir {
    /// A data directory at `root`.
    pub fn new(root: impl Into<PathBuf>) -> Self {
        DataDir { root: root.into() }
    }
    /// The key file.
    pub fn key_path(&self) -> PathBuf {
        self.root.join("node.key")
    }
    /// The store.
    pub fn store_path(&self) -> PathBuf {
        self.root.join("node.sqlite")
    }
    /// The config.
    pub fn config_path(&self) -> PathBuf {
        self.root.join("node.toml")
    }
    /// The directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Creates the directory, key, config and store.
    pub fn init(&self, config: &NodeConfig) -> Result<Node, DataDirError> {
        let io = |path: &Path| {
            let path = path.to_owned();
            move |source| DataDirError::Io { path, source }
        };
        if self.config_path().exists() {
            return Err(DataDirError::AlreadyInitialised(self.root.clone()));
        }
        let hub = parse_hub_key(&self.config_path(), &config.hub_key)?;
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&self.root)
            .map_err(io(&self.root))?;
        // An existing directory (made by hand, or by a deployment tool) is
        // closed to others too.
        restrict(&self.root, 0o700)?;
        let text = toml::to_string(config).map_err(|e| DataDirError::Config {
            path: self.config_path(),
            detail: e.to_string(),
        })?;
        let key = NodeKey::load_or_create(&self.key_path())?;
        let node = Node::open(&self.store_path(), key, hub)?;
        write_private(&self.config_path(), text.as_bytes())?;
        Ok(node)
    }

    /// Reads the config (its top-level keys; sections such as `[sip2]` belong
    /// to their own modules, see [`DataDir::section`]).
    pub fn config(&self) -> Result<NodeConfig, DataDirError> {
        let path = self.config_path();
        let mut table = self.table()?;
        for name in SECTIONS {
            table.remove(*name);
        }
        table
            .try_into()
            .map_err(|e: toml::de::Error| config_error(&path, e.message()))
    }

    /// A section of `node.toml` (`[sip2]`), if present, for its module to parse.
    pub fn section(&self, name: &str) -> Result<Option<toml::Table>, DataDirError> {
        debug_assert!(
            SECTIONS.contains(&name),
            "{name} is not a node.toml section"
        );
        match self.table()?.remove(name) {
            None => Ok(None),
            Some(toml::Value::Table(t)) => Ok(Some(t)),
            Some(_) => Err(config_error(
                &self.config_path(),
                &format!("`{name}` must be a section ([{name}])"),
            )),
        }
    }

    fn table(&self) -> Result<toml::Table, DataDirError> {
        let path = self.config_path();
        let text = match std::fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(DataDirError::NotInitialised(self.root.clone()));
            }
            Err(source) => return Err(DataDirError::Io { path, source }),
        };
        text.parse::<toml::Table>()
            .map_err(|e| DataDirError::Config {
                path,
                detail: e.to_string(),
            })
    }

    /// Opens the node (first closing the directory and its files to others
    /// if they were opened).
    pub fn open(&self) -> Result<Node, DataDirError> {
        let config = self.config()?;
        self.restrict_modes()?;
        let hub = parse_hub_key(&self.config_path(), &config.hub_key)?;
        let key = NodeKey::load_or_create(&self.key_path())?;
        Ok(Node::open(&self.store_path(), key, hub)?)
    }
}

impl DataDir {
    /// Sets the directory to 0700 and its store and config files to 0600
    /// where they allow more (the key file has its own check, which refuses
    /// to load a key others can read).
    fn restrict_modes(&self) -> Result<(), DataDirError> {
        restrict(&self.root, 0o700)?;
        let store = self.store_path();
        let mut files = vec![self.config_path(), store.clone()];
        for suffix in ["-wal", "-shm"] {
            let mut p = store.clone().into_os_string();
            p.push(suffix);
            files.push(PathBuf::from(p));
        }
        for f in files {
            if f.exists() {
                restrict(&f, 0o600)?;
            }
        }
        Ok(())
    }
}

/// Clears the mode bits of `path` beyond `mode`.
fn restrict(path: &Path, mode: u32) -> Result<(), DataDirError> {
    let io = |source| DataDirError::Io {
        path: path.to_owned(),
        source,
    };
    let now = std::fs::metadata(path).map_err(io)?.permissions().mode() & 0o777;
    if now & !mode != 0 {
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(now & mode)).map_err(io)?;
        tracing::info!(path = %path.display(), from = format!("{now:o}"), to = format!("{:o}", now & mode), "closed to others");
    }
    Ok(())
}

/// Writes a new file readable by its owner only.
fn write_private(path: &Path, bytes: &[u8]) -> Result<(), DataDirError> {
    write_owner_only(path, bytes).map_err(|source| DataDirError::Io {
        path: path.to_owned(),
        source,
    })
}

/// Writes `bytes` to `path`, created (or truncated) with mode 0600; a file
/// that existed keeps its owner and loses any group or other bits.
pub(crate) fn write_owner_only(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)?;
    let mode = f.metadata()?.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        f.set_permissions(std::fs::Permissions::from_mode(mode & 0o700))?;
    }
    f.write_all(bytes)?;
    f.sync_all()
}

fn parse_hub_key(path: &Path, text: &str) -> Result<NodeId, DataDirError> {
    NodeId::parse(text).map_err(|e| config_error(path, &format!("`hub_key`: {e}")))
}

/// A config error about a key, with the line of `path` that holds it (the
/// first name in backquotes in `detail`), so the person fixes that line.
fn config_error(path: &Path, detail: &str) -> DataDirError {
    let key = detail.split('`').nth(1).filter(|k| !k.is_empty());
    let line = key.and_then(|key| {
        let text = std::fs::read_to_string(path).ok()?;
        text.lines().position(|l| {
            let l = l.trim_start();
            let head = l.trim_start_matches('[');
            head.strip_prefix(key).is_some_and(|rest| {
                rest.trim_start().starts_with('=') || rest.trim_start().starts_with(']')
            })
        })
    });
    DataDirError::Config {
        path: path.to_owned(),
        detail: match line {
            Some(i) => format!("line {}: {detail}", i + 1),
            None => detail.to_owned(),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sections_belong_to_their_modules_and_unknown_keys_are_still_refused() {
        let dir = tempfile::tempdir().unwrap();
        let d = DataDir::new(dir.path());
        let hub = "11".repeat(32);
        let write = |text: &str| std::fs::write(d.config_path(), text).unwrap();
        write(&format!(
            "hub_key = \"{hub}\"\n[sip2]\nupstream = \"ils:6001\"\n"
        ));
        assert_eq!(d.config().unwrap().hub_key, hub);
        let sip2 = d.section("sip2").unwrap().unwrap();
        assert_eq!(sip2["upstream"].as_str(), Some("ils:6001"));
        write(&format!("hub_key = \"{hub}\"\nhub_adr = \"typo\"\n"));
        let err = d.config().unwrap_err().to_string();
        assert!(err.contains("line 2: unknown field `hub_adr`"), "{err}");
        assert!(
            err.contains("fix that line") && !err.contains("init"),
            "{err}"
        );
        write("hub_key = \"nope\"\n");
        let err = d.open().unwrap_err().to_string();
        assert!(err.contains("line 1: `hub_key`"), "{err}");
        assert!(d.section("sip2").unwrap().is_none());
        write(&format!("hub_key = \"{hub}\"\nsip2 = 1\n"));
        assert!(
            d.section("sip2")
                .unwrap_err()
                .to_string()
                .contains("must be a section")
        );
    }
}
