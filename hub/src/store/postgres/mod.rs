//! The PostgreSQL backend of [`LedgerStore`], for a hub on a database server
//! that operators already run, back up and replicate.
//!
//! The blocking `postgres` client runs its own small runtime inside each
//! call, so it is never called on an async runtime's thread: the serving
//! hub's writes run on the storage worker thread (`net/worker.rs`) and its
//! HTTP reads in `spawn_blocking` (`AppState::with_hub`).
//!
//! Write transactions are serialised by a transaction-level advisory lock,
//! as SQLite's `BEGIN IMMEDIATE` serialises them, so `READ COMMITTED` reads
//! inside one see no other writer's work. Positions that cursors follow
//! (`hub_seq`, ledger positions) come from rows of `counters`, locked
//! `FOR UPDATE` by the transaction that takes the next one and written at
//! commit, never from sequences. Read transactions are `REPEATABLE READ`: a
//! consistent snapshot that does not wait for writers.

use super::{LedgerStore, StoreError, StoreTx};
use crate::model::{LedgerAccount, Posted};
use conn::{Conn, params};
use mykey_sync_proto::{NodeId, TxId};
use postgres::{Client, IsolationLevel, NoTls, Statement};
use rows::i64_of;
use std::collections::HashMap;

mod bounds;
mod conn;
mod donation;
mod economy;
mod escrow;
mod facts;
mod history;
mod holder;
mod ingest;
mod ledger;
mod migrations;
mod registry;
mod rows;
#[doc(hidden)]
pub mod scratch;
mod status;
mod url;
mod voucher;

pub use url::{DatabaseUrl, UrlError};

/// The advisory lock every write transaction holds (one writer at a time,
/// like SQLite's write lock).
const WRITE_LOCK: i64 = 7_400_000_000;

/// Why a PostgreSQL hub database could not be opened or created.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    /// The server could not be reached or refused the login.
    #[error(
        "could not connect to PostgreSQL at {url}: {source}; check that the server runs \
         and that the URL's host, port, user, password and database are right"
    )]
    Unreachable {
        /// Where (password redacted).
        url: String,
        /// The client's error.
        #[source]
        source: postgres::Error,
    },
    /// The database belongs to another hub.
    #[error(
        "the database at {url} already holds hub {other}; give this hub a database of \
         its own (a database serves one hub)"
    )]
    OtherHub {
        /// Where (password redacted).
        url: String,
        /// The short id of the hub it holds.
        other: String,
    },
    /// The database is unusable.
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<conn::Error> for ConnectError {
    fn from(e: conn::Error) -> Self {
        ConnectError::Store(e.into())
    }
}

/// The hub's PostgreSQL database (one connection).
pub struct PgStore {
    /// The connection (`None` only while it is being dropped).
    client: Option<Client>,
    /// Prepared statements of this connection, by SQL text.
    stmts: HashMap<String, Statement>,
    /// Row ids of ledger accounts: stable once committed, so kept across
    /// transactions (only ids from committed transactions enter it).
    ledger_ids: HashMap<LedgerAccount, i64>,
    url: String,
}

impl std::fmt::Debug for PgStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "PgStore({})", self.url)
    }
}

impl PgStore {
    /// Connects, brings the schema up to date and checks the database
    /// belongs to `hub` (a database no hub claimed yet is claimed for it
    /// when `claim` is set: `init`; otherwise it is refused).
    pub fn open(url: &DatabaseUrl, hub: &NodeId, claim: bool) -> Result<PgStore, ConnectError> {
        let redacted = url.to_string();
        let client = url
            .config()
            .connect(NoTls)
            .map_err(|source| ConnectError::Unreachable {
                url: redacted.clone(),
                source,
            })?;
        let mut store = PgStore {
            client: Some(client),
            stmts: HashMap::new(),
            ledger_ids: HashMap::new(),
            url: redacted,
        };
        migrations::migrate(store.conn()?)?;
        store.check_owner(hub, claim)?;
        Ok(store)
    }

    /// Checks the database belongs to `hub`, or claims it.
    fn check_owner(&mut self, hub: &NodeId, claim: bool) -> Result<(), ConnectError> {
        let redacted = self.url.clone();
        let mut conn = self.conn()?;
        conn.execute_batch(&format!("SELECT pg_advisory_xact_lock({WRITE_LOCK})"))?;
        let owner: Option<Vec<u8>> = conn
            .query_row("SELECT hub_key FROM hub_identity", params![], |r| r.get(0))
            .map(Some)
            .or_else(|e| match e {
                conn::Error::NoRows => Ok(None),
                e => Err(e),
            })?;
        match owner {
            Some(k) if k == hub.as_bytes() => {}
            Some(k) => {
                let other = rows::node_of(k).map_or_else(|_| "?".to_owned(), |n| n.short());
                return Err(ConnectError::OtherHub {
                    url: redacted,
                    other,
                });
            }
            None if claim => {
                conn.execute(
                    "INSERT INTO hub_identity (hub_key) VALUES ($1)",
                    [&hub.as_bytes()[..]],
                )?;
            }
            None => {
                return Err(ConnectError::OtherHub {
                    url: redacted,
                    other: "none (it was never initialised by this hub)".to_owned(),
                });
            }
        }
        conn.tx.commit().map_err(StoreError::from)?;
        Ok(())
    }

    /// Whether the database already holds a hub (for `init`, which refuses one).
    pub fn holds_a_hub(url: &DatabaseUrl) -> Result<bool, ConnectError> {
        let mut client =
            url.config()
                .connect(NoTls)
                .map_err(|source| ConnectError::Unreachable {
                    url: url.to_string(),
                    source,
                })?;
        let row = client
            .query_one(
                "SELECT to_regclass('hub_identity') IS NOT NULL
                     OR to_regclass('mykey_schema') IS NOT NULL",
                &[],
            )
            .map_err(StoreError::from)?;
        Ok(row.try_get(0).map_err(StoreError::from)?)
    }

    /// A plain transaction (migrations, the owner check).
    fn conn(&mut self) -> Result<Conn<'_>, StoreError> {
        let Some(client) = self.client.as_mut() else {
            unreachable!("the client is taken only when the store is dropped")
        };
        Ok(Conn::new(client.transaction()?, &mut self.stmts))
    }

    /// The schema version after migrations.
    pub fn schema_version(&mut self) -> Result<i64, StoreError> {
        migrations::version(&mut self.conn()?)
    }

    fn begin_with(&mut self, write: bool) -> Result<Box<dyn StoreTx + '_>, StoreError> {
        let PgStore {
            client,
            stmts,
            ledger_ids,
            url: _,
        } = self;
        let Some(client) = client.as_mut() else {
            unreachable!("the client is taken only when the store is dropped")
        };
        let tx = if write {
            let mut tx = client.transaction()?;
            tx.batch_execute(&format!("SELECT pg_advisory_xact_lock({WRITE_LOCK})"))?;
            tx
        } else {
            client
                .build_transaction()
                .isolation_level(IsolationLevel::RepeatableRead)
                .start()?
        };
        Ok(Box::new(PgTx {
            tx: Conn::new(tx, stmts),
            write,
            delta: Posted::default(),
            committed_ids: ledger_ids,
            new_ids: HashMap::new(),
            legs: HashMap::new(),
            batch: None,
            ledger_pos: None,
            hub_seq: None,
            appended: false,
        }))
    }
}

impl Drop for PgStore {
    /// Closes the connection on a thread of its own: closing blocks, and a
    /// store may be dropped on a runtime's thread (a serving hub's reader
    /// at shutdown), where the blocking client would panic.
    fn drop(&mut self) {
        if let Some(client) = self.client.take() {
            std::thread::scope(|s| {
                s.spawn(move || drop(client));
            });
        }
    }
}

impl LedgerStore for PgStore {
    fn begin(&mut self) -> Result<Box<dyn StoreTx + '_>, StoreError> {
        self.begin_with(true)
    }

    fn begin_read(&mut self) -> Result<Box<dyn StoreTx + '_>, StoreError> {
        self.begin_with(false)
    }
}

struct PgTx<'a> {
    tx: Conn<'a>,
    /// Whether this is a write transaction (it holds the write lock, and
    /// takes counter rows `FOR UPDATE`).
    write: bool,
    /// Running totals posted in this transaction, written once at commit.
    delta: Posted,
    committed_ids: &'a mut HashMap<LedgerAccount, i64>,
    /// Ledger accounts created in this transaction: cached only once committed.
    new_ids: HashMap<LedgerAccount, i64>,
    /// Legs posted per originating transaction in this storage transaction.
    legs: HashMap<TxId, i64>,
    /// The first hub_seq appended in this transaction: the batch of its facts.
    batch: Option<u64>,
    /// The last ledger position taken in this transaction (its counter row
    /// is locked), written back at commit.
    ledger_pos: Option<u64>,
    /// The last hub_seq read or taken under the counter row's lock.
    hub_seq: Option<u64>,
    /// Whether facts were appended (the counter is written back at commit).
    appended: bool,
}

impl PgTx<'_> {
    /// A counter's value; in a write transaction its row is locked until
    /// commit, so no other writer takes the same next value.
    fn counter(&mut self, name: &str) -> Result<u64, StoreError> {
        let sql = if self.write {
            "SELECT value FROM counters WHERE name = $1 FOR UPDATE"
        } else {
            "SELECT value FROM counters WHERE name = $1"
        };
        let v: i64 = self
            .tx
            .prepare_cached(sql)?
            .query_row([name], |r| r.get(0))?;
        rows::u64_of("counter", v)
    }
}

impl StoreTx for PgTx<'_> {
    fn commit(self: Box<Self>) -> Result<(), StoreError> {
        let PgTx {
            mut tx,
            delta,
            committed_ids,
            new_ids,
            ledger_pos,
            hub_seq,
            appended,
            ..
        } = *self;
        if delta != Posted::default() {
            tx.prepare_cached(
                "UPDATE ledger_totals SET debits = debits + $1, credits = credits + $2 WHERE id = 1",
            )?
            .execute(params![i64_of(delta.debits), i64_of(delta.credits)])?;
        }
        if let Some(pos) = ledger_pos {
            tx.prepare_cached("UPDATE counters SET value = $1 WHERE name = 'ledger'")?
                .execute([i64_of(pos)])?;
        }
        if let (true, Some(seq)) = (appended, hub_seq) {
            tx.prepare_cached(
                "UPDATE counters SET value = $1 WHERE name = 'hub_seq' AND value < $1",
            )?
            .execute([i64_of(seq)])?;
        }
        tx.tx.commit()?;
        committed_ids.extend(new_ids);
        Ok(())
    }
}
