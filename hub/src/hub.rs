//! The [`Hub`]: storage plus the hub key, opened on a data directory.
//!
//! A data directory holds `hub.db` (SQLite) and `hub.key` (mode 0600). A
//! path ending in `.db`, `.sqlite` or `.sqlite3` names the database file
//! directly, with the key beside it (`hub.db` → `hub.key`). A hub on
//! PostgreSQL (`init --database postgres://…`) has `store.toml` (mode 0600)
//! naming its database instead of `hub.db`.

use crate::facts::priority_first;
use crate::key::{HubKey, KeyError};
use crate::model::NodeRecord;
use crate::observed::Observed;
use crate::store::postgres::{ConnectError, DatabaseUrl, PgStore};
use crate::store::{LedgerStore, SqliteStore, StoreError, StoredFact};
use ed25519_dalek::VerifyingKey;
use mykey_sync_proto::wire::Facts;
use mykey_sync_proto::{FacilityId, NodeId, Scope, wire::MAX_FACTS_PER_ANSWER};
use std::collections::HashMap;
use std::fs;
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// The central hub: registry, ledger, ingest and fact log.
pub struct Hub {
    pub(crate) store: Box<dyn LedgerStore>,
    pub(crate) key: HubKey,
    /// Threads for signature work (verifying a push, signing its facts).
    pub(crate) threads: usize,
    /// Decompressed keys of enrolled nodes seen in pushes.
    pub(crate) node_keys: HashMap<NodeId, VerifyingKey>,
    /// The replicated cache's documents and sync states (in memory, derived
    /// from the fact log).
    pub(crate) shards: crate::shard_book::ShardBook,
    /// The path it was opened on (`None`: in memory or another backend).
    pub(crate) data: Option<PathBuf>,
    /// What this process saw of its nodes (pulls, shard epochs, counters),
    /// shared with the process's other hubs ([`Hub::observing`]).
    pub(crate) observed: Arc<Observed>,
    /// Who this hub is among the processes sharing its database, and how
    /// long its lease on the timed jobs lasts ([`crate::ticks`]).
    pub(crate) lease: crate::store::TickLease,
    /// Trusted JPKI user-authentication CA certificates (DER): a holder may
    /// register their card at a kiosk only when the hub can check its chain.
    pub(crate) trusted_ca: Vec<Vec<u8>>,
    /// Facilities whose card numbers a holder may link at a kiosk without
    /// the facility's own counter.
    pub(crate) kiosk_links: Vec<FacilityId>,
}

impl std::fmt::Debug for Hub {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Hub({})", self.key.id().short())
    }
}

/// Why a hub could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    /// Nothing there yet.
    #[error("no hub at {0}: run `mykey-hub init --data {0}` first")]
    NotInitialised(PathBuf),
    /// The key file is unusable.
    #[error(transparent)]
    Key(#[from] KeyError),
    /// The database is unusable.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The PostgreSQL database could not be used.
    #[error(transparent)]
    Database(#[from] ConnectError),
    /// `store.toml` is unreadable or wrong.
    #[error("{path}: {reason}; fix the file (it holds `database = \"postgres://…\"`)")]
    StoreConfig {
        /// The file.
        path: PathBuf,
        /// What was wrong.
        reason: String,
    },
}

/// Why a hub could not be created.
#[derive(Debug, thiserror::Error)]
pub enum InitError {
    /// A hub is already there.
    #[error(
        "{0} already holds a hub; open it instead, or choose another --data directory \
         (a hub's key is its identity and is never overwritten)"
    )]
    AlreadyInitialised(PathBuf),
    /// The directory could not be created.
    #[error("could not create the data directory {path}: {source}")]
    CreateDir {
        /// The directory.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// The key could not be made or written.
    #[error(transparent)]
    Key(#[from] KeyError),
    /// The database could not be created.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The PostgreSQL database could not be used.
    #[error(transparent)]
    Database(#[from] ConnectError),
    /// The PostgreSQL database already holds a hub.
    #[error(
        "the database at {0} already holds a hub (or another program's mykey tables); \
         give this hub an empty database of its own: nothing was created"
    )]
    DatabaseInUse(String),
    /// A PostgreSQL hub is named by a data directory, not a database file.
    #[error("--database needs a data directory, not a database file ({0})")]
    DatabaseNeedsDirectory(PathBuf),
    /// `store.toml` could not be written.
    #[error("could not write {path}: {source}")]
    WriteConfig {
        /// The file.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
}

/// The files of a hub.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HubPaths {
    /// The SQLite database.
    pub db: PathBuf,
    /// The signing key.
    pub key: PathBuf,
    /// The data directory, if the hub was named by one.
    pub dir: Option<PathBuf>,
    /// Where a data directory names a PostgreSQL database (`store.toml`).
    pub store_config: Option<PathBuf>,
}

impl HubPaths {
    /// Where the files of the hub named by `path` live.
    pub fn of(path: &Path) -> HubPaths {
        let is_db = path
            .extension()
            .and_then(|e| e.to_str())
            .is_some_and(|e| matches!(e, "db" | "sqlite" | "sqlite3"));
        if is_db {
            HubPaths {
                db: path.to_owned(),
                key: path.with_extension("key"),
                dir: None,
                store_config: None,
            }
        } else {
            HubPaths {
                db: path.join("hub.db"),
                key: path.join("hub.key"),
                dir: Some(path.to_owned()),
                store_config: Some(path.join("store.toml")),
            }
        }
    }
}

/// Takes the serve lock of the hub at `data`: `serve.lock` in the data
/// directory (`<name>.serve.lock` beside a `.db` file given directly), so a
/// second `serve` on the same hub, or a `store copy` of a serving hub, stops
/// with the holder's pid.
pub fn serve_lock(
    data: &Path,
) -> Result<mykey_net::dirlock::DirLock, mykey_net::dirlock::LockError> {
    let (dir, name) = if data.is_dir() {
        (data.to_path_buf(), "serve".to_owned())
    } else {
        let parent = data
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        let stem = data
            .file_stem()
            .map_or_else(|| "hub".to_owned(), |s| s.to_string_lossy().into_owned());
        (parent.to_path_buf(), format!("{stem}.serve"))
    };
    mykey_net::dirlock::DirLock::acquire(&dir, &name, "mykey-hub serve")
}

impl Hub {
    /// Creates a hub: the data directory (mode 0700), a fresh key and an
    /// empty SQLite database.
    pub fn init(path: &Path) -> Result<Hub, InitError> {
        Hub::init_with(path, None)
    }

    /// Creates a hub whose store is `database` (PostgreSQL) if given, else
    /// SQLite. A PostgreSQL database must hold no hub yet; it is checked
    /// before anything is created, and a failure leaves nothing behind.
    pub fn init_with(path: &Path, database: Option<&DatabaseUrl>) -> Result<Hub, InitError> {
        let paths = HubPaths::of(path);
        let taken = [
            Some(&paths.key),
            Some(&paths.db),
            paths.store_config.as_ref(),
        ];
        if taken.into_iter().flatten().any(|p| p.exists()) {
            return Err(InitError::AlreadyInitialised(path.to_owned()));
        }
        let Some(url) = database else {
            return Hub::init_sqlite(path, &paths);
        };
        let Some(config) = paths.store_config.clone() else {
            return Err(InitError::DatabaseNeedsDirectory(path.to_owned()));
        };
        if PgStore::holds_a_hub(url)? {
            return Err(InitError::DatabaseInUse(url.to_string()));
        }
        let dir = paths.dir.clone().unwrap_or_else(|| path.to_owned());
        let existed = dir.exists();
        let made = Hub::init_postgres(&dir, &paths, &config, url);
        if made.is_err() {
            // Nothing half-made stays: the key, the config, the directory.
            let _ = fs::remove_file(&paths.key);
            let _ = fs::remove_file(&config);
            if !existed {
                let _ = fs::remove_dir(&dir);
            }
        }
        made
    }

    fn init_postgres(
        dir: &Path,
        paths: &HubPaths,
        config: &Path,
        url: &DatabaseUrl,
    ) -> Result<Hub, InitError> {
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(|source| InitError::CreateDir {
                path: dir.to_owned(),
                source,
            })?;
        let key = HubKey::generate()?;
        key.write_new(&paths.key)?;
        let store = PgStore::open(url, &key.id(), true)?;
        crate::store::select::write(config, url).map_err(|source| InitError::WriteConfig {
            path: config.to_owned(),
            source,
        })?;
        tracing::info!(hub = %key.id().short(), database = %url, "initialised hub on PostgreSQL");
        let mut hub = Hub::with_store(Box::new(store), key);
        hub.data = Some(dir.to_owned());
        Ok(hub)
    }

    fn init_sqlite(path: &Path, paths: &HubPaths) -> Result<Hub, InitError> {
        if let Some(dir) = &paths.dir {
            fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(dir)
                .map_err(|source| InitError::CreateDir {
                    path: dir.clone(),
                    source,
                })?;
        }
        let key = HubKey::generate()?;
        key.write_new(&paths.key)?;
        let store = SqliteStore::open(&paths.db)?;
        tracing::info!(hub = %key.id().short(), db = %paths.db.display(), "initialised hub");
        let mut hub = Hub::with_store(Box::new(store), key);
        hub.data = Some(path.to_owned());
        Ok(hub)
    }

    /// Opens an existing hub and brings its schema up to date.
    pub fn open(path: &Path) -> Result<Hub, OpenError> {
        let paths = HubPaths::of(path);
        let pg = paths.store_config.as_ref().is_some_and(|c| c.exists());
        if !paths.key.exists() && !paths.db.exists() && !pg {
            return Err(OpenError::NotInitialised(path.to_owned()));
        }
        let key = HubKey::read(&paths.key)?;
        if let Some(url) = Hub::database_of(&paths)? {
            let store = PgStore::open(&url, &key.id(), false)?;
            let mut hub = Hub::with_store(Box::new(store), key);
            hub.data = Some(path.to_owned());
            return Ok(hub);
        }
        if !paths.db.exists() {
            return Err(OpenError::NotInitialised(path.to_owned()));
        }
        let store = SqliteStore::open(&paths.db)?;
        let mut hub = Hub::with_store(Box::new(store), key);
        hub.data = Some(path.to_owned());
        Ok(hub)
    }

    /// The PostgreSQL database a data directory names (`None`: SQLite).
    pub fn database_of(paths: &HubPaths) -> Result<Option<DatabaseUrl>, OpenError> {
        let Some(config) = paths.store_config.as_ref().filter(|c| c.exists()) else {
            return Ok(None);
        };
        crate::store::select::read(config)
            .map(Some)
            .map_err(|reason| OpenError::StoreConfig {
                path: config.clone(),
                reason,
            })
    }

    /// The data directory (or database file) the hub was opened on.
    pub fn data_path(&self) -> Option<&Path> {
        self.data.as_deref()
    }

    /// A hub over any storage backend.
    pub fn with_store(store: Box<dyn LedgerStore>, key: HubKey) -> Hub {
        let threads = std::thread::available_parallelism().map_or(1, |n| n.get().min(8));
        Hub {
            store,
            key,
            threads,
            node_keys: HashMap::new(),
            shards: Default::default(),
            data: None,
            observed: Arc::default(),
            lease: crate::store::TickLease::new(),
            trusted_ca: Vec::new(),
            kiosk_links: Vec::new(),
        }
    }

    /// This hub checks the certificates of cards registered at kiosks
    /// against these JPKI CA certificates (DER); with none, it registers
    /// no card from a node.
    pub fn set_trusted_ca(&mut self, trusted_ca: Vec<Vec<u8>>) {
        self.trusted_ca = trusted_ca;
    }

    /// A holder may link card numbers of these facilities at a kiosk, at
    /// once (the facility's policy); other facilities link at their own
    /// counter.
    pub fn set_kiosk_links(&mut self, facilities: Vec<FacilityId>) {
        self.kiosk_links = facilities;
    }

    /// This hub sees and records into `observed` (instead of the fresh value
    /// it was opened with): `serve` gives its writing and its reading hub one
    /// value, so the dashboard and `/metrics` show what ingest saw.
    pub fn observing(mut self, observed: Arc<Observed>) -> Hub {
        self.observed = observed;
        self
    }

    /// What this hub (and any hub given the same value) saw of its nodes.
    pub fn observed(&self) -> &Arc<Observed> {
        &self.observed
    }

    /// How many threads verify a push's signatures and sign its facts (1:
    /// all on the caller's thread). Results do not depend on it. Defaults to
    /// the machine's parallelism, at most 8.
    pub fn set_threads(&mut self, threads: usize) {
        self.threads = threads.clamp(1, 64);
    }

    /// A hub with an in-memory SQLite database (simulations, tests).
    pub fn in_memory(key: HubKey) -> Result<Hub, StoreError> {
        Ok(Hub::with_store(
            Box::new(SqliteStore::open_in_memory()?),
            key,
        ))
    }

    /// The hub's public key: nodes verify facts with it.
    pub fn hub_id(&self) -> NodeId {
        self.key.id()
    }

    /// Log facts for `node` after `after` and up to `upto`: those of its
    /// scopes (all nodes, its municipality, its facility, itself) that are not
    /// kept in shards, at most `max`, with deny-list facts of the window
    /// first. An unknown node gets nothing; a revoked one only what goes to
    /// every node.
    pub fn facts_for(
        &mut self,
        node: &NodeId,
        after: u64,
        max: u32,
        upto: u64,
    ) -> Result<Facts, StoreError> {
        self.facts_window(node, after, max, upto, false)
    }

    /// Every fact `node` receives after `after`, through the log or its
    /// shards, in the same window form as [`Hub::facts_for`] (audits, tests,
    /// benchmarks: what a node's cache is made of).
    pub fn received_facts(
        &mut self,
        node: &NodeId,
        after: u64,
        max: u32,
    ) -> Result<Facts, StoreError> {
        self.facts_window(node, after, max, u64::MAX, true)
    }

    fn facts_window(
        &mut self,
        node: &NodeId,
        after: u64,
        max: u32,
        upto: u64,
        all: bool,
    ) -> Result<Facts, StoreError> {
        let max = max.clamp(1, MAX_FACTS_PER_ANSWER as u32);
        let mut st = self.store.begin_read()?;
        let upto = upto.min(st.last_hub_seq()?);
        let scopes = match st.node(node)? {
            None => vec![],
            Some(n) if n.is_revoked() => vec![Scope::All],
            Some(n) => scopes_of(&n),
        };
        let mut found: Vec<StoredFact> = vec![];
        for scope in &scopes {
            // Each scope's index range gives its next `max + 1` in order; the
            // window is the first `max` of their merge.
            found.extend(st.facts_in_scope(scope, after, max + 1, all)?);
        }
        found.retain(|f| f.hub_seq <= upto);
        found.sort_by_key(|f| f.hub_seq);
        let more = found.len() > max as usize;
        found.truncate(max as usize);
        let cursor = if more {
            found.last().map_or(after, |f| f.hub_seq)
        } else {
            // Nothing more for this node up to `upto`.
            after.max(upto)
        };
        drop(st);
        Ok(Facts {
            facts: priority_first(found),
            cursor,
            more,
        })
    }
}

/// The scopes a node receives.
pub fn scopes_of(n: &NodeRecord) -> Vec<Scope> {
    vec![
        Scope::All,
        Scope::Municipality(n.municipality),
        Scope::Facility(n.facility.clone()),
        Scope::Node(n.id),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_of_a_directory_and_of_a_database_file() {
        let d = HubPaths::of(Path::new("/srv/hub-data"));
        assert_eq!(d.db, Path::new("/srv/hub-data/hub.db"));
        assert_eq!(d.key, Path::new("/srv/hub-data/hub.key"));
        let f = HubPaths::of(Path::new("/srv/ledger.sqlite"));
        assert_eq!(f.db, Path::new("/srv/ledger.sqlite"));
        assert_eq!(f.key, Path::new("/srv/ledger.key"));
        assert_eq!(f.dir, None);
    }

    #[test]
    fn a_hub_on_a_database_path_reopens() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("hub.db");
        let id = Hub::init(&db).unwrap().hub_id();
        assert_eq!(Hub::open(&db).unwrap().hub_id(), id);
        assert!(format!("{:?}", Hub::open(&db).unwrap()).starts_with("Hub("));
    }
}
