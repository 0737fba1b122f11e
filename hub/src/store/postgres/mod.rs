//! The PostgreSQL backend of [`LedgerStore`], for a hub on a database server
//! that operators already run, back up and replicate.
//!
//! The blocking `postgres` client runs its own small runtime inside each
//! call, so it is never called on an async runtime's thread: the serving
//! hub's writes run on the storage worker thread (`net/worker.rs`) and its
//! HTTP reads in `spawn_blocking` (`AppState::with_hub`).
//!
//! Several hub processes may share one database. A write transaction on
//! behalf of a node ([`LedgerStore::begin_for_node`]: its session, its
//! pushes) takes, in this order: the store lock shared, its municipality's
//! transaction-level advisory lock, its chain row (`nodes`, `FOR UPDATE`),
//! then the counter rows. Every other write transaction takes the store
//! lock exclusively, so it runs alone, as SQLite's `BEGIN IMMEDIATE` does.
//! Positions that cursors follow (`hub_seq`, ledger positions) come from
//! rows of `counters`, locked `FOR UPDATE` and written at commit, never
//! from sequences. Because a node's write holds the counter rows before it
//! reads anything it decides on, its `READ COMMITTED` reads see every
//! earlier writer's work: the counters still serialise all writes that
//! post or append (every push does), and the municipality and chain locks
//! keep two processes from interleaving one node's chain. Lock orders can
//! still cross (a push relays another municipality's chain while that
//! node opens a session elsewhere): PostgreSQL then fails one with a
//! deadlock (40P01), which callers retry ([`super::retry_conflicts`]).
//! Read transactions are `REPEATABLE READ`: a consistent snapshot that
//! does not wait for writers.
//!
//! Leases (`leases`, `share_leases`) spread the timed jobs over the live
//! processes, one lease per municipality and one for the jobs that span
//! every municipality (`store::leases`); their clock is the database
//! server's.

use super::{LedgerStore, StoreError, StoreTx, leases};
use crate::model::{LedgerAccount, Posted};
use conn::{Conn, params, tuple};
use mykey_sync_proto::{NodeId, TxId};
use postgres::{Client, IsolationLevel, NoTls, Statement};
use rows::i64_of;
use std::collections::HashMap;

mod bounds;
mod conn;
pub mod copy;
mod donation;
mod economy;
mod escrow;
mod facts;
mod history;
mod holder;
mod ingest;
mod ledger;
mod link_request;
mod migrations;
mod registry;
mod rows;
#[doc(hidden)]
pub mod scratch;
mod status;
mod url;
mod voucher;

pub use url::{DatabaseUrl, UrlError};

/// The store lock: every write transaction holds it, a node's shared and
/// any other exclusively.
const WRITE_LOCK: i64 = 7_400_000_000;
/// The lock under which one process at a time decides on a group of leases.
const LEASE_LOCK: i64 = 7_400_000_002;
/// The first key of a municipality's advisory lock (the second is its code).
const MUNICIPALITY_LOCKS: i32 = 7_400;

/// Whether a backend error is a conflict with a concurrent writer that a
/// new attempt may not meet: serialization failure (40001) or deadlock
/// (40P01).
pub(super) fn is_conflict(e: &(dyn std::error::Error + 'static)) -> bool {
    use postgres::error::SqlState;
    let pg = match e.downcast_ref::<conn::Error>() {
        Some(conn::Error::Pg(pg)) => pg,
        _ => match e.downcast_ref::<postgres::Error>() {
            Some(pg) => pg,
            None => return false,
        },
    };
    pg.code().is_some_and(|c| {
        *c == SqlState::T_R_SERIALIZATION_FAILURE || *c == SqlState::T_R_DEADLOCK_DETECTED
    })
}

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
    /// The process this store writes for ([`crate::store::process_name`]):
    /// the holder of the node links it opens.
    process: String,
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
            process: crate::store::process_name(),
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
        self.begin_locked(if write { Locks::Store } else { Locks::Read })
    }

    fn begin_locked(&mut self, locks: Locks<'_>) -> Result<Box<dyn StoreTx + '_>, StoreError> {
        let write = !matches!(locks, Locks::Read);
        let PgStore {
            client,
            stmts,
            ledger_ids,
            url: _,
            process,
        } = self;
        let Some(client) = client.as_mut() else {
            unreachable!("the client is taken only when the store is dropped")
        };
        let tx = match locks {
            Locks::Store => {
                let mut tx = client.transaction()?;
                tx.batch_execute(&format!("SELECT pg_advisory_xact_lock({WRITE_LOCK})"))?;
                tx
            }
            Locks::Node(node) => {
                let mut tx = client.transaction()?;
                lock_node(&mut tx, node)?;
                tx
            }
            Locks::Read => client
                .build_transaction()
                .isolation_level(IsolationLevel::RepeatableRead)
                .start()?,
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
            process,
        }))
    }
}

/// What a transaction locks as it begins.
enum Locks<'a> {
    /// Nothing: a `REPEATABLE READ` snapshot.
    Read,
    /// The store, exclusively.
    Store,
    /// A node's municipality and chain, then the counters.
    Node(&'a NodeId),
}

/// A node's write locks, in the one order every node write takes them: the
/// store lock shared, the municipality's lock, the chain row, the counter
/// rows (by name). An unknown node locks only the store, shared, and the
/// counters.
fn lock_node(tx: &mut postgres::Transaction<'_>, node: &NodeId) -> Result<(), StoreError> {
    tx.batch_execute(&format!(
        "SELECT pg_advisory_xact_lock_shared({WRITE_LOCK})"
    ))?;
    let id = &node.as_bytes()[..];
    let municipality: Option<i64> = tx
        .query_opt(
            "SELECT f.municipality FROM nodes n JOIN facilities f ON f.id = n.facility
             WHERE n.id = $1",
            &[&id],
        )?
        .map(|r| r.try_get(0))
        .transpose()?;
    if let Some(code) = municipality {
        let code = i32::try_from(code).map_err(|_| StoreError::Corrupt {
            what: "municipality code",
            detail: code.to_string(),
        })?;
        tx.execute(
            "SELECT pg_advisory_xact_lock($1, $2)",
            &[&MUNICIPALITY_LOCKS, &code],
        )?;
        tx.execute("SELECT 1 FROM nodes WHERE id = $1 FOR UPDATE", &[&id])?;
    }
    tx.execute(
        "SELECT value FROM counters WHERE name IN ('hub_seq', 'ledger') ORDER BY name FOR UPDATE",
        &[],
    )?;
    Ok(())
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

    fn begin_for_node(&mut self, node: &NodeId) -> Result<Box<dyn StoreTx + '_>, StoreError> {
        self.begin_locked(Locks::Node(node))
    }

    fn set_process_name(&mut self, name: &str) {
        name.clone_into(&mut self.process);
    }

    fn share_leases(
        &mut self,
        group: &str,
        names: &[String],
        holder: &str,
        ttl_ms: u64,
    ) -> Result<Vec<String>, StoreError> {
        let mut conn = self.conn()?;
        let ttl = i64_of(ttl_ms);
        // One process at a time decides on the group's leases; on the
        // server's clock, so the processes' clocks need not agree.
        conn.execute("SELECT pg_advisory_xact_lock($1)", params![LEASE_LOCK])?;
        // This process is alive (written only once half its time is gone,
        // so a tick that changes nothing writes nothing).
        conn.execute(
            "INSERT INTO leases (name, holder, expires_at)
             VALUES ($1, $2, clock_timestamp() + $3::bigint * interval '1 millisecond')
             ON CONFLICT (name) DO UPDATE
             SET holder = EXCLUDED.holder, expires_at = EXCLUDED.expires_at
             WHERE leases.expires_at < clock_timestamp() + ($3::bigint / 2) * interval '1 millisecond'",
            params![leases::presence_name(group, holder), holder, ttl],
        )?;
        let rows: Vec<(String, String, bool, bool)> = conn
            .prepare_cached(
                "SELECT name, holder, expires_at > clock_timestamp(),
                        expires_at < clock_timestamp() + ($2::bigint / 2) * interval '1 millisecond'
                 FROM leases WHERE starts_with(name, $1)",
            )?
            .query_map(params![group, ttl], tuple)?
            .collect::<Result<_, _>>()?;
        let present = format!("{group}@");
        let mut live: Vec<&str> = rows
            .iter()
            .filter(|r| r.0.starts_with(&present) && r.2)
            .map(|r| r.1.as_str())
            .collect();
        live.push(holder);
        live.sort_unstable();
        live.dedup();
        let leases_of: Vec<leases::LeaseRow> = rows
            .iter()
            .filter(|r| !r.0.starts_with(&present))
            .map(|(name, holder, live, renew_due)| leases::LeaseRow {
                name: name.clone(),
                holder: holder.clone(),
                live: *live,
                renew_due: *renew_due,
            })
            .collect();
        let plan = leases::plan_shares(names, &leases_of, holder, live.len());
        for name in &plan.give_up {
            conn.execute(
                "DELETE FROM leases WHERE name = $1 AND holder = $2",
                params![name, holder],
            )?;
        }
        for name in plan.take.iter().chain(&plan.renew) {
            conn.execute(
                "INSERT INTO leases (name, holder, expires_at)
                 VALUES ($1, $2, clock_timestamp() + $3::bigint * interval '1 millisecond')
                 ON CONFLICT (name) DO UPDATE
                 SET holder = EXCLUDED.holder, expires_at = EXCLUDED.expires_at",
                params![name, holder, ttl],
            )?;
        }
        // Presence rows of processes gone for good.
        conn.execute(
            "DELETE FROM leases WHERE starts_with(name, $1)
             AND expires_at < clock_timestamp() - interval '1 day'",
            params![present],
        )?;
        conn.tx.commit()?;
        Ok(plan.held)
    }

    fn release_leases(&mut self, group: &str, holder: &str) -> Result<(), StoreError> {
        let mut conn = self.conn()?;
        conn.execute(
            "DELETE FROM leases WHERE holder = $1
             AND (starts_with(name, $2) OR name = $3)",
            params![
                holder,
                format!("{group}/"),
                leases::presence_name(group, holder)
            ],
        )?;
        conn.tx.commit()?;
        Ok(())
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
    /// The process the store writes for (the holder of links it opens).
    process: &'a str,
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
