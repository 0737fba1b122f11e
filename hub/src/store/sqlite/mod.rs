//! The SQLite backend of [`LedgerStore`].
//!
//! One file in WAL mode with `synchronous=FULL`: a commit (one whole push)
//! is on disk before the hub answers, so receipts a node stores are never
//! ahead of the hub's ledger, even after a power cut. The cost is one fsync
//! per push, amortised over up to [`mykey_sync_proto::wire::MAX_PUSH_TXS`]
//! transactions.
//!
//! Schema changes are a list of migrations applied at open, numbered by
//! SQLite's `user_version`.

use super::{
    LedgerAudit, LedgerStore, MunicipalityFlows, PlacedFact, ProcessedTx, ShardEpochRow,
    StoreError, StoreTx, StoredFact, scope_key,
};
use crate::model::{
    Account, CardRecord, ChainHead, DebtLine, Facility, FacilityKind, Incident, IncidentKind,
    LedgerAccount, Municipality, NodeContact, NodePolicy, NodeRecord, NodeStatus, Posted, Program,
    Transfer, TransferDraft, TransferKind,
};
use mykey_sync_proto::fact::CardStatus;
use mykey_sync_proto::wire::Outcome;
use mykey_sync_proto::{
    AccountId, CardKey, FacilityCardNumber, FacilityId, MunicipalityCode, MyKeyId, NodeId, OpKind,
    Points, ProgramId, Scope, SignedFact, TxId, UnixMillis, VerifiedTx, codec,
};
use rusqlite::config::DbConfig;
use rusqlite::{Connection, OptionalExtension, TransactionBehavior, params};
use std::collections::HashMap;
use std::path::Path;

mod bounds;
mod economy;
mod status;

/// Schema migrations, applied in order; `user_version` = how many ran.
/// Append only: never edit a migration that has shipped.
const MIGRATIONS: &[&str] = &[
    r#"
CREATE TABLE municipalities (
    code INTEGER PRIMARY KEY,
    name TEXT NOT NULL,
    created_at INTEGER NOT NULL
);
CREATE TABLE facilities (
    id TEXT PRIMARY KEY,
    municipality INTEGER NOT NULL REFERENCES municipalities(code),
    kind TEXT NOT NULL,
    name TEXT NOT NULL,
    created_at INTEGER NOT NULL
);
CREATE TABLE nodes (
    id BLOB PRIMARY KEY,
    facility TEXT NOT NULL REFERENCES facilities(id),
    allowed_ops TEXT NOT NULL,
    per_card_offline_limit INTEGER NOT NULL,
    node_exposure_limit INTEGER NOT NULL,
    pin_threshold INTEGER NOT NULL,
    valid_until INTEGER NOT NULL,
    enrolled_at INTEGER NOT NULL,
    revoked_at INTEGER,
    processed_seq INTEGER NOT NULL DEFAULT 0,
    head BLOB NOT NULL
);
CREATE TABLE node_status (
    node BLOB PRIMARY KEY REFERENCES nodes(id),
    last_contact INTEGER NOT NULL,
    clock_skew_ms INTEGER NOT NULL,
    software TEXT NOT NULL,
    reported_last_seq INTEGER NOT NULL,
    fact_cursor INTEGER NOT NULL
);
CREATE TABLE accounts (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    my_key_id TEXT NOT NULL,
    municipality INTEGER NOT NULL REFERENCES municipalities(code),
    created_at INTEGER NOT NULL
);
-- Every alias an account ever had; retired ones stay reserved and resolvable.
CREATE TABLE my_key_ids (
    normalized TEXT PRIMARY KEY,
    display TEXT NOT NULL,
    account INTEGER NOT NULL REFERENCES accounts(id),
    assigned_at INTEGER NOT NULL,
    retired_at INTEGER
);
CREATE TABLE cards (
    issuer BLOB NOT NULL,
    serial BLOB NOT NULL,
    account INTEGER NOT NULL REFERENCES accounts(id),
    status TEXT NOT NULL,
    registered_at INTEGER NOT NULL,
    changed_at INTEGER NOT NULL,
    PRIMARY KEY (issuer, serial)
);
CREATE INDEX cards_by_account ON cards(account);
CREATE TABLE programs (
    id TEXT PRIMARY KEY,
    municipality INTEGER NOT NULL REFERENCES municipalities(code),
    created_at INTEGER NOT NULL
);
CREATE TABLE facility_cards (
    facility TEXT NOT NULL,
    number TEXT NOT NULL,
    account INTEGER NOT NULL REFERENCES accounts(id),
    linked_at INTEGER NOT NULL,
    PRIMARY KEY (facility, number)
);
CREATE TABLE txs (
    id BLOB PRIMARY KEY,
    node BLOB NOT NULL,
    seq INTEGER NOT NULL,
    signed BLOB NOT NULL,
    outcome BLOB NOT NULL,
    rejected INTEGER NOT NULL,
    received_at INTEGER NOT NULL,
    UNIQUE (node, seq)
);
CREATE TABLE incidents (
    id INTEGER PRIMARY KEY,
    at INTEGER NOT NULL,
    kind TEXT NOT NULL,
    node BLOB,
    seq INTEGER,
    tx BLOB,
    detail TEXT NOT NULL
);
CREATE INDEX incidents_by_node ON incidents(node);
CREATE TABLE ledger_accounts (
    id INTEGER PRIMARY KEY,
    kind TEXT NOT NULL,
    key TEXT NOT NULL,
    municipality INTEGER NOT NULL,
    debits_posted INTEGER NOT NULL DEFAULT 0,
    credits_posted INTEGER NOT NULL DEFAULT 0,
    UNIQUE (kind, key)
);
CREATE TABLE transfers (
    id INTEGER PRIMARY KEY,
    debit INTEGER NOT NULL REFERENCES ledger_accounts(id),
    credit INTEGER NOT NULL REFERENCES ledger_accounts(id),
    amount INTEGER NOT NULL CHECK (amount > 0),
    kind TEXT NOT NULL,
    origin_tx BLOB,
    leg INTEGER NOT NULL,
    hub_time INTEGER NOT NULL,
    node_time INTEGER,
    CHECK (debit <> credit),
    UNIQUE (origin_tx, leg)
);
CREATE TRIGGER transfers_no_update BEFORE UPDATE ON transfers
BEGIN SELECT RAISE(ABORT, 'transfers are immutable: post a correcting transfer instead'); END;
CREATE TRIGGER transfers_no_delete BEFORE DELETE ON transfers
BEGIN SELECT RAISE(ABORT, 'transfers are immutable: post a correcting transfer instead'); END;
CREATE TABLE ledger_totals (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    debits INTEGER NOT NULL,
    credits INTEGER NOT NULL
);
INSERT INTO ledger_totals VALUES (1, 0, 0);
CREATE TABLE facts (
    hub_seq INTEGER PRIMARY KEY,
    scope TEXT NOT NULL,
    priority INTEGER NOT NULL,
    signed BLOB NOT NULL,
    issued_at INTEGER NOT NULL
);
CREATE INDEX facts_by_scope ON facts(scope, hub_seq);
CREATE TRIGGER facts_no_update BEFORE UPDATE ON facts
BEGIN SELECT RAISE(ABORT, 'the fact log is append-only'); END;
CREATE TRIGGER facts_no_delete BEFORE DELETE ON facts
BEGIN SELECT RAISE(ABORT, 'the fact log is append-only'); END;
"#,
    r#"
-- What a fact is about (card key, node id): priority facts move ahead of
-- others in an answer only where that keeps each subject's facts in order.
ALTER TABLE facts ADD COLUMN subject BLOB;
"#,
    r#"
-- Operations (dashboard): links per node, when unconfirmed work was first
-- reported, rejections by node, operator accounts and API tokens.
CREATE TABLE node_links (
    id INTEGER PRIMARY KEY,
    node BLOB NOT NULL REFERENCES nodes(id),
    opened_at INTEGER NOT NULL,
    seen_at INTEGER NOT NULL,
    closed_at INTEGER
);
CREATE INDEX node_links_by_node ON node_links(node, opened_at);
CREATE INDEX node_links_by_seen ON node_links(seen_at);
CREATE INDEX node_links_open ON node_links(node) WHERE closed_at IS NULL;
ALTER TABLE node_status ADD COLUMN pending_since INTEGER;
CREATE INDEX txs_rejected ON txs(node, seq) WHERE rejected = 1;
CREATE TABLE operators (
    name TEXT PRIMARY KEY,
    password_hash TEXT NOT NULL,
    created_at INTEGER NOT NULL
);
CREATE TABLE api_tokens (
    token_sha256 BLOB PRIMARY KEY,
    operator TEXT NOT NULL REFERENCES operators(name),
    created_at INTEGER NOT NULL
);
"#,
    r#"
-- transfers without UNIQUE (origin_tx, leg): a transaction's transfers are
-- posted in the same storage transaction as its txs row, whose primary key
-- (the transaction id) already refuses a second application. The index was
-- keyed by a hash, so each push dirtied about a page per transfer (measured:
-- ~7% of ingest). The table is rebuilt with its immutability triggers; the
-- triggers are dropped first so the rebuild is not an update or a delete.
DROP TRIGGER transfers_no_update;
DROP TRIGGER transfers_no_delete;
CREATE TABLE transfers_v4 (
    id INTEGER PRIMARY KEY,
    debit INTEGER NOT NULL REFERENCES ledger_accounts(id),
    credit INTEGER NOT NULL REFERENCES ledger_accounts(id),
    amount INTEGER NOT NULL CHECK (amount > 0),
    kind TEXT NOT NULL,
    origin_tx BLOB,
    leg INTEGER NOT NULL,
    hub_time INTEGER NOT NULL,
    node_time INTEGER,
    CHECK (debit <> credit)
);
INSERT INTO transfers_v4 (id, debit, credit, amount, kind, origin_tx, leg, hub_time, node_time)
    SELECT id, debit, credit, amount, kind, origin_tx, leg, hub_time, node_time FROM transfers;
DROP TABLE transfers;
ALTER TABLE transfers_v4 RENAME TO transfers;
CREATE TRIGGER transfers_no_update BEFORE UPDATE ON transfers
BEGIN SELECT RAISE(ABORT, 'transfers are immutable: post a correcting transfer instead'); END;
CREATE TRIGGER transfers_no_delete BEFORE DELETE ON transfers
BEGIN SELECT RAISE(ABORT, 'transfers are immutable: post a correcting transfer instead'); END;
"#,
    economy::MIGRATION,
    r#"
-- The last UpcomingExpiry fact emitted per wallet, so a change is emitted once.
CREATE TABLE expiry_notices (
    account INTEGER NOT NULL,
    municipality TEXT NOT NULL,
    points INTEGER NOT NULL,
    expires_at INTEGER NOT NULL,
    PRIMARY KEY (account, municipality)
) WITHOUT ROWID;
"#,
    r#"
-- Wallets whose lots changed since their expiry was last checked: the lot fold
-- marks them, the economy tick tells nodes and clears them (ingest stays lean).
CREATE TABLE expiry_dirty (
    account INTEGER NOT NULL,
    municipality INTEGER NOT NULL,
    PRIMARY KEY (account, municipality)
) WITHOUT ROWID;
"#,
    r#"
-- Strict mode (escrow / bounded-counter rights): the municipalities that use
-- it, the rights granted to nodes (the reserved points are the escrow ledger
-- accounts), and the right transfers whose reservation already moved (a
-- transfer reaches the hub in its sender's chain and in its receiver's).
CREATE TABLE strict_municipalities (
    code INTEGER PRIMARY KEY,
    since INTEGER NOT NULL
);
CREATE TABLE spend_rights (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    account INTEGER NOT NULL,
    municipality INTEGER NOT NULL,
    node BLOB NOT NULL,
    points INTEGER NOT NULL,
    granted_at INTEGER NOT NULL,
    released_at INTEGER
);
CREATE INDEX spend_rights_live ON spend_rights(municipality, account, node) WHERE released_at IS NULL;
CREATE TABLE right_transfers (
    tx_id BLOB PRIMARY KEY,
    applied_at INTEGER NOT NULL
) WITHOUT ROWID;
"#,
    r#"
-- The replicated cache (ARCHITECTURE "The replicated cache"): a keyed fact
-- lives in a shard under `item` (NULL: an ordered fact, pulled from the log),
-- bucketed by `bucket_hash`; `batch` is the first hub_seq of the storage
-- transaction that wrote it, so a shard document rebuilt from the log makes
-- the same automerge changes. `shard_epochs` holds each fact scope's current
-- epoch: its bucket count and the log position its base document holds.
ALTER TABLE facts ADD COLUMN item TEXT;
ALTER TABLE facts ADD COLUMN bucket_hash INTEGER;
ALTER TABLE facts ADD COLUMN batch INTEGER;
CREATE INDEX facts_log ON facts(scope, hub_seq) WHERE item IS NULL;
CREATE INDEX facts_placed ON facts(scope, hub_seq) WHERE item IS NOT NULL;
CREATE TABLE shard_epochs (
    scope TEXT PRIMARY KEY,
    epoch INTEGER NOT NULL,
    buckets INTEGER NOT NULL,
    base_seq INTEGER NOT NULL,
    started_at INTEGER NOT NULL
) WITHOUT ROWID;
"#,
    r#"
-- Shard fill, kept as facts are appended so the hub can see a shard outgrow
-- its target without rebuilding documents: distinct item keys (deny items
-- excepted: the deny shard is never split) per scope and low 12 bits of
-- `bucket_hash` (any bucket count up to MAX_BUCKETS = 4096 is a mask of them).
CREATE INDEX facts_items ON facts(scope, item) WHERE item IS NOT NULL;
CREATE TABLE shard_fill (
    scope TEXT NOT NULL,
    hash INTEGER NOT NULL,
    items INTEGER NOT NULL,
    PRIMARY KEY (scope, hash)
) WITHOUT ROWID;
INSERT INTO shard_fill (scope, hash, items)
    SELECT scope, bucket_hash & 4095, COUNT(DISTINCT item) FROM facts
    WHERE item IS NOT NULL AND substr(item, 1, 3) <> 'st/'
    GROUP BY scope, bucket_hash & 4095;
"#,
    bounds::MIGRATION,
    economy::MIGRATION_EXCHANGE_EXPIRY,
    r#"
-- The hub's doors: operators' roles (those made before roles were admins),
-- API tokens' public id, scope, expiry and revocation (tokens made before
-- scopes become read-only: /metrics and node status), the municipalities an
-- exchange operator may credit with a daily cap each, and what it credited
-- per municipality and JST day.
ALTER TABLE operators ADD COLUMN role TEXT NOT NULL DEFAULT 'admin';
ALTER TABLE operators ADD COLUMN municipality INTEGER;
ALTER TABLE api_tokens ADD COLUMN id TEXT;
ALTER TABLE api_tokens ADD COLUMN scope TEXT NOT NULL DEFAULT 'read';
ALTER TABLE api_tokens ADD COLUMN expires_at INTEGER;
ALTER TABLE api_tokens ADD COLUMN revoked_at INTEGER;
UPDATE api_tokens SET id = lower(hex(substr(token_sha256, 1, 6)));
CREATE UNIQUE INDEX api_tokens_by_id ON api_tokens(id);
CREATE TABLE exchange_allowances (
    operator TEXT NOT NULL REFERENCES exchange_operators(id),
    municipality INTEGER NOT NULL REFERENCES municipalities(code),
    daily_cap INTEGER NOT NULL CHECK (daily_cap > 0),
    updated_at INTEGER NOT NULL,
    PRIMARY KEY (operator, municipality)
) WITHOUT ROWID;
CREATE TABLE exchange_volume (
    operator TEXT NOT NULL,
    municipality INTEGER NOT NULL,
    day_start INTEGER NOT NULL,
    points INTEGER NOT NULL CHECK (points >= 0),
    PRIMARY KEY (operator, municipality, day_start)
) WITHOUT ROWID;
"#,
    r#"
-- LAN rosters are read back from the fact log by subject
-- (`lan/<municipality>/<group>`): a group's latest fact is its roster.
CREATE INDEX facts_by_subject ON facts(subject, hub_seq) WHERE subject IS NOT NULL;
"#,
    economy::OUTPUTS_MIGRATION,
    bounds::AT_RISK_TOTALS_MIGRATION,
];

/// `shard_fill` keeps the low bits of `bucket_hash` that any bucket count
/// (a power of two up to `MAX_BUCKETS`) can mask.
const FILL_HASH_MASK: u16 = mykey_sync_proto::shard::MAX_BUCKETS - 1;

/// The hub's SQLite database.
pub struct SqliteStore {
    conn: Connection,
    /// Row ids of ledger accounts: stable once committed, so kept across
    /// transactions (only ids from committed transactions enter it).
    ledger_ids: HashMap<LedgerAccount, i64>,
}

impl std::fmt::Debug for SqliteStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SqliteStore({:?})", self.conn.path())
    }
}

impl SqliteStore {
    /// Opens (creating if missing) the database file and brings its schema up to date.
    pub fn open(path: &Path) -> Result<SqliteStore, StoreError> {
        let conn = Connection::open(path)?;
        // WAL: readers (the dashboard) never block the ingest writer.
        let mode: String = conn.query_row("PRAGMA journal_mode=WAL", [], |r| r.get(0))?;
        if !mode.eq_ignore_ascii_case("wal") {
            return Err(StoreError::Corrupt {
                what: "journal mode",
                detail: format!("SQLite kept journal mode {mode:?} instead of WAL"),
            });
        }
        Self::setup(conn)
    }

    /// A database in memory: for simulations and tests that need no file.
    pub fn open_in_memory() -> Result<SqliteStore, StoreError> {
        Self::setup(Connection::open_in_memory()?)
    }

    fn setup(mut conn: Connection) -> Result<SqliteStore, StoreError> {
        // FULL: a commit survives power loss, so a receipt never outlives the
        // ledger entry it reports.
        // A 64 MiB page cache (default 2 MiB) keeps the hot parts of the
        // transaction, transfer and fact indexes in memory during ingest
        // (measured: ~4% more ingest per CPU second).
        conn.execute_batch(
            "PRAGMA synchronous=FULL; PRAGMA foreign_keys=ON; PRAGMA busy_timeout=5000;
             PRAGMA cache_size=-65536;",
        )?;
        conn.set_prepared_statement_cache_capacity(64);
        // The query planner stability guarantee: a plan never depends on a
        // bound value. Without it SQLite 3.5x re-prepares a cached statement
        // whenever a value it looked at changes (`WHERE id = ?`, `LIMIT ?`),
        // which re-parsed the node lookup on every request (12% of a
        // simulated city day).
        conn.set_db_config(DbConfig::SQLITE_DBCONFIG_ENABLE_QPSG, true)?;
        migrate(&mut conn)?;
        Ok(SqliteStore {
            conn,
            ledger_ids: HashMap::new(),
        })
    }

    /// The schema version after migrations.
    pub fn schema_version(&self) -> Result<i64, StoreError> {
        Ok(self
            .conn
            .query_row("PRAGMA user_version", [], |r| r.get(0))?)
    }

    /// Raw connection for tests that must prove what the schema refuses.
    #[doc(hidden)]
    pub fn connection(&self) -> &Connection {
        &self.conn
    }
}

fn migrate(conn: &mut Connection) -> Result<(), StoreError> {
    let known = MIGRATIONS.len() as i64;
    let found: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0))?;
    if found > known {
        return Err(StoreError::SchemaTooNew { found, known });
    }
    for (i, sql) in MIGRATIONS.iter().enumerate().skip(found as usize) {
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        tx.execute_batch(sql)?;
        tx.pragma_update(None, "user_version", i as i64 + 1)?;
        tx.commit()?;
        tracing::info!(version = i + 1, "applied hub schema migration");
    }
    Ok(())
}

impl LedgerStore for SqliteStore {
    fn begin(&mut self) -> Result<Box<dyn StoreTx + '_>, StoreError> {
        self.begin_with(TransactionBehavior::Immediate)
    }

    fn begin_read(&mut self) -> Result<Box<dyn StoreTx + '_>, StoreError> {
        self.begin_with(TransactionBehavior::Deferred)
    }
}

impl SqliteStore {
    fn begin_with(
        &mut self,
        behavior: TransactionBehavior,
    ) -> Result<Box<dyn StoreTx + '_>, StoreError> {
        let SqliteStore { conn, ledger_ids } = self;
        let tx = conn.transaction_with_behavior(behavior)?;
        Ok(Box::new(SqliteTx {
            tx,
            delta: Posted::default(),
            committed_ids: ledger_ids,
            new_ids: HashMap::new(),
            legs: HashMap::new(),
            batch: None,
        }))
    }
}

struct SqliteTx<'a> {
    tx: rusqlite::Transaction<'a>,
    /// Running totals posted in this transaction, written once at commit.
    delta: Posted,
    committed_ids: &'a mut HashMap<LedgerAccount, i64>,
    /// Ledger accounts created in this transaction: cached only once committed.
    new_ids: HashMap<LedgerAccount, i64>,
    /// Legs posted per originating transaction in this storage transaction
    /// (a transaction's effects are all posted in the one storage transaction
    /// that records it in `txs`, whose key refuses a second application).
    legs: HashMap<TxId, i64>,
    /// The first hub_seq appended in this transaction: the batch of its facts.
    batch: Option<u64>,
}

// --- conversions between our types and SQLite values ---

fn corrupt(what: &'static str, detail: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt {
        what,
        detail: detail.to_string(),
    }
}

fn i64_of(v: u64) -> i64 {
    // Every number we store is a Points (≤ 10^12), a seq or a time: all far
    // below i64::MAX. Past it is a broken invariant, not bad input.
    i64::try_from(v).unwrap_or_else(|_| panic!("value {v} does not fit SQLite's INTEGER"))
}

/// For numbers a peer chose (a claimed seq, a node's clock, a cursor): never
/// a panic; past `i64::MAX` they are stored as `i64::MAX` (far beyond any
/// real seq, time or cursor, so nothing that matters changes).
fn i64_sat(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

fn u64_of(what: &'static str, v: i64) -> Result<u64, StoreError> {
    u64::try_from(v).map_err(|_| corrupt(what, format!("negative value {v}")))
}

fn points_of(what: &'static str, v: i64) -> Result<Points, StoreError> {
    Points::new(u64_of(what, v)?).map_err(|e| corrupt(what, e))
}

fn muni_of(v: i64) -> Result<MunicipalityCode, StoreError> {
    u32::try_from(v)
        .map_err(|_| corrupt("municipality code", v))
        .and_then(|c| MunicipalityCode::try_from(c).map_err(|e| corrupt("municipality code", e)))
}

fn muni_sql(m: MunicipalityCode) -> i64 {
    i64::from(m.get())
}

fn node_of(v: Vec<u8>) -> Result<NodeId, StoreError> {
    let bytes: [u8; 32] = v
        .try_into()
        .map_err(|_| corrupt("node id", "not 32 bytes"))?;
    NodeId::from_bytes(bytes).map_err(|e| corrupt("node id", e))
}

fn txid_of(v: Vec<u8>) -> Result<TxId, StoreError> {
    let bytes: [u8; 32] = v
        .try_into()
        .map_err(|_| corrupt("transaction id", "not 32 bytes"))?;
    Ok(TxId::from_bytes(bytes))
}

fn account_of(v: i64) -> Result<AccountId, StoreError> {
    AccountId::new(u64_of("account id", v)?).map_err(|e| corrupt("account id", e))
}

fn facility_of(v: String) -> Result<FacilityId, StoreError> {
    FacilityId::parse(&v).map_err(|e| corrupt("facility id", e))
}

fn ops_sql(ops: &[OpKind]) -> String {
    ops.iter().map(|o| o.name()).collect::<Vec<_>>().join(",")
}

fn ops_of(v: &str) -> Result<Vec<OpKind>, StoreError> {
    v.split(',')
        .filter(|s| !s.is_empty())
        .map(|s| OpKind::parse(s).ok_or_else(|| corrupt("operation kind", s)))
        .collect()
}

fn status_of(v: &str) -> Result<CardStatus, StoreError> {
    CardStatus::parse(v).ok_or_else(|| corrupt("card status", v))
}

type NodeRow = (
    Vec<u8>,
    String,
    String,
    i64,
    i64,
    i64,
    i64,
    i64,
    Option<i64>,
    i64,
);

const NODE_COLS: &str = "n.id, n.facility, n.allowed_ops, n.per_card_offline_limit, \
     n.node_exposure_limit, n.pin_threshold, n.valid_until, n.enrolled_at, n.revoked_at, \
     f.municipality";

fn node_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<NodeRow> {
    Ok((
        r.get(0)?,
        r.get(1)?,
        r.get(2)?,
        r.get(3)?,
        r.get(4)?,
        r.get(5)?,
        r.get(6)?,
        r.get(7)?,
        r.get(8)?,
        r.get(9)?,
    ))
}

fn node_record(row: NodeRow) -> Result<NodeRecord, StoreError> {
    let (id, facility, ops, card_limit, exposure, pin, valid_until, enrolled_at, revoked_at, m) =
        row;
    Ok(NodeRecord {
        id: node_of(id)?,
        facility: facility_of(facility)?,
        municipality: muni_of(m)?,
        policy: NodePolicy {
            allowed_ops: ops_of(&ops)?,
            per_card_offline_limit: points_of("offline limit", card_limit)?,
            node_exposure_limit: points_of("exposure limit", exposure)?,
            pin_threshold: points_of("PIN threshold", pin)?,
            valid_until: UnixMillis(u64_of("valid until", valid_until)?),
        },
        enrolled_at: UnixMillis(u64_of("enrolled at", enrolled_at)?),
        revoked_at: revoked_at
            .map(|t| u64_of("revoked at", t).map(UnixMillis))
            .transpose()?,
    })
}

fn parse_ledger_account(kind: &str, key: &str, m: i64) -> Result<LedgerAccount, StoreError> {
    let m = muni_of(m)?;
    let holder = |key: &str| -> Result<AccountId, StoreError> {
        let (a, _) = key
            .split_once('@')
            .ok_or_else(|| corrupt("ledger account key", key))?;
        AccountId::parse(a).map_err(|e| corrupt("ledger account key", e))
    };
    Ok(match kind {
        "wallet" => LedgerAccount::Wallet(holder(key)?, m),
        "debt" => LedgerAccount::Debt(holder(key)?, m),
        "budget" => LedgerAccount::ProgramBudget(
            ProgramId::parse(key).map_err(|e| corrupt("ledger account key", e))?,
            m,
        ),
        "funding" => LedgerAccount::MunicipalityFunding(m),
        "payable" => LedgerAccount::MerchantPayable(facility_of(key.to_owned())?, m),
        "receivable" => LedgerAccount::OperatorReceivable(
            key.split_once('@').map_or(key, |(o, _)| o).to_owned(),
            m,
        ),
        "expiry" => LedgerAccount::ExpiryIncome(m),
        "held" => LedgerAccount::Held(holder(key)?, m),
        "escrow" => {
            let node = key
                .rsplit_once('@')
                .and_then(|(_, n)| NodeId::parse(n).ok())
                .ok_or_else(|| corrupt("ledger account key", key))?;
            LedgerAccount::Escrow(holder(key)?, m, node)
        }
        "quarantined" => LedgerAccount::Quarantined(facility_of(key.to_owned())?, m),
        "quarantine-claims" => LedgerAccount::QuarantineClaims(m),
        other => return Err(corrupt("ledger account kind", other)),
    })
}

impl SqliteTx<'_> {
    /// The row id of a ledger account, created on first use.
    fn ledger_account_id(&mut self, a: &LedgerAccount) -> Result<i64, StoreError> {
        if let Some(id) = self.committed_ids.get(a).or_else(|| self.new_ids.get(a)) {
            return Ok(*id);
        }
        let (id, created) = self.find_or_create_ledger_account(a)?;
        if created {
            self.new_ids.insert(a.clone(), id);
        } else {
            self.committed_ids.insert(a.clone(), id);
        }
        Ok(id)
    }

    fn find_or_create_ledger_account(
        &mut self,
        a: &LedgerAccount,
    ) -> Result<(i64, bool), StoreError> {
        let key = a.key();
        let found: Option<i64> = self
            .tx
            .prepare_cached("SELECT id FROM ledger_accounts WHERE kind = ?1 AND key = ?2")?
            .query_row(params![a.kind(), key], |r| r.get(0))
            .optional()?;
        if let Some(id) = found {
            return Ok((id, false));
        }
        self.tx
            .prepare_cached(
                "INSERT INTO ledger_accounts (kind, key, municipality) VALUES (?1, ?2, ?3)",
            )?
            .execute(params![a.kind(), key, muni_sql(a.municipality())])?;
        Ok((self.tx.last_insert_rowid(), true))
    }
}

impl StoreTx for SqliteTx<'_> {
    fn commit(self: Box<Self>) -> Result<(), StoreError> {
        let SqliteTx {
            tx,
            delta,
            committed_ids,
            new_ids,
            legs: _,
            batch: _,
        } = *self;
        if delta != Posted::default() {
            tx.prepare_cached(
                "UPDATE ledger_totals SET debits = debits + ?1, credits = credits + ?2 WHERE id = 1",
            )?
            .execute(params![i64_of(delta.debits), i64_of(delta.credits)])?;
        }
        tx.commit()?;
        committed_ids.extend(new_ids);
        Ok(())
    }

    fn municipality(&mut self, code: MunicipalityCode) -> Result<Option<Municipality>, StoreError> {
        let name: Option<String> = self
            .tx
            .prepare_cached("SELECT name FROM municipalities WHERE code = ?1")?
            .query_row([muni_sql(code)], |r| r.get(0))
            .optional()?;
        Ok(name.map(|name| Municipality { code, name }))
    }

    fn insert_municipality(&mut self, m: &Municipality, now: UnixMillis) -> Result<(), StoreError> {
        self.tx.execute(
            "INSERT INTO municipalities (code, name, created_at) VALUES (?1, ?2, ?3)",
            params![muni_sql(m.code), m.name, i64_of(now.0)],
        )?;
        Ok(())
    }

    fn municipalities(&mut self) -> Result<Vec<Municipality>, StoreError> {
        let mut stmt = self
            .tx
            .prepare_cached("SELECT code, name FROM municipalities ORDER BY code")?;
        let rows = stmt.query_map([], |r| Ok((r.get::<_, i64>(0)?, r.get::<_, String>(1)?)))?;
        let mut out = vec![];
        for row in rows {
            let (code, name) = row?;
            out.push(Municipality {
                code: muni_of(code)?,
                name,
            });
        }
        Ok(out)
    }

    fn facility(&mut self, id: &FacilityId) -> Result<Option<Facility>, StoreError> {
        let row: Option<(i64, String, String)> = self
            .tx
            .prepare_cached("SELECT municipality, kind, name FROM facilities WHERE id = ?1")?
            .query_row([id.as_str()], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
            .optional()?;
        row.map(|(m, kind, name)| {
            Ok(Facility {
                id: id.clone(),
                municipality: muni_of(m)?,
                kind: FacilityKind::parse(&kind).ok_or_else(|| corrupt("facility kind", kind))?,
                name,
            })
        })
        .transpose()
    }

    fn insert_facility(&mut self, f: &Facility, now: UnixMillis) -> Result<(), StoreError> {
        self.tx.execute(
            "INSERT INTO facilities (id, municipality, kind, name, created_at) VALUES (?1, ?2, ?3, ?4, ?5)",
            params![f.id.as_str(), muni_sql(f.municipality), f.kind.name(), f.name, i64_of(now.0)],
        )?;
        Ok(())
    }

    fn node(&mut self, id: &NodeId) -> Result<Option<NodeRecord>, StoreError> {
        let sql = format!(
            "SELECT {NODE_COLS} FROM nodes n JOIN facilities f ON f.id = n.facility WHERE n.id = ?1"
        );
        let row = self
            .tx
            .prepare_cached(&sql)?
            .query_row([&id.as_bytes()[..]], node_row)
            .optional()?;
        row.map(node_record).transpose()
    }

    fn upsert_node(&mut self, n: &NodeRecord) -> Result<(), StoreError> {
        let p = &n.policy;
        self.tx.execute(
            "INSERT INTO nodes (id, facility, allowed_ops, per_card_offline_limit, node_exposure_limit,
                 pin_threshold, valid_until, enrolled_at, revoked_at, head)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)
             ON CONFLICT (id) DO UPDATE SET facility = excluded.facility,
                 allowed_ops = excluded.allowed_ops,
                 per_card_offline_limit = excluded.per_card_offline_limit,
                 node_exposure_limit = excluded.node_exposure_limit,
                 pin_threshold = excluded.pin_threshold, valid_until = excluded.valid_until,
                 enrolled_at = excluded.enrolled_at, revoked_at = excluded.revoked_at",
            params![
                &n.id.as_bytes()[..],
                n.facility.as_str(),
                ops_sql(&p.allowed_ops),
                i64_of(p.per_card_offline_limit.get()),
                i64_of(p.node_exposure_limit.get()),
                i64_of(p.pin_threshold.get()),
                i64_of(p.valid_until.0),
                i64_of(n.enrolled_at.0),
                n.revoked_at.map(|t| i64_of(t.0)),
                &TxId::GENESIS.as_bytes()[..],
            ],
        )?;
        Ok(())
    }

    fn revoke_node(&mut self, id: &NodeId, now: UnixMillis) -> Result<(), StoreError> {
        self.tx.execute(
            "UPDATE nodes SET revoked_at = ?2 WHERE id = ?1 AND revoked_at IS NULL",
            params![&id.as_bytes()[..], i64_of(now.0)],
        )?;
        Ok(())
    }

    fn chain_head(&mut self, id: &NodeId) -> Result<ChainHead, StoreError> {
        let row: Option<(i64, Vec<u8>)> = self
            .tx
            .prepare_cached("SELECT processed_seq, head FROM nodes WHERE id = ?1")?
            .query_row([&id.as_bytes()[..]], |r| Ok((r.get(0)?, r.get(1)?)))
            .optional()?;
        match row {
            None => Ok(ChainHead::EMPTY),
            Some((seq, head)) => Ok(ChainHead {
                processed_seq: u64_of("processed seq", seq)?,
                head: txid_of(head)?,
            }),
        }
    }

    fn set_chain_head(&mut self, id: &NodeId, head: ChainHead) -> Result<(), StoreError> {
        self.tx
            .prepare_cached("UPDATE nodes SET processed_seq = ?2, head = ?3 WHERE id = ?1")?
            .execute(params![
                &id.as_bytes()[..],
                i64_of(head.processed_seq),
                &head.head.as_bytes()[..]
            ])?;
        self.tx
            .prepare_cached(
                "UPDATE node_status SET pending_since = NULL
                 WHERE node = ?1 AND reported_last_seq <= ?2 AND pending_since IS NOT NULL",
            )?
            .execute(params![&id.as_bytes()[..], i64_of(head.processed_seq)])?;
        Ok(())
    }

    fn record_contact(&mut self, id: &NodeId, c: &NodeContact) -> Result<(), StoreError> {
        self.tx
            .prepare_cached(
                "INSERT INTO node_status (node, last_contact, clock_skew_ms, software,
                     reported_last_seq, fact_cursor) VALUES (?1, ?2, ?3, ?4, ?5, ?6)
                 ON CONFLICT (node) DO UPDATE SET last_contact = excluded.last_contact,
                     clock_skew_ms = excluded.clock_skew_ms, software = excluded.software,
                     reported_last_seq = excluded.reported_last_seq,
                     fact_cursor = excluded.fact_cursor",
            )?
            .execute(params![
                &id.as_bytes()[..],
                i64_of(c.at.0),
                c.clock_skew_ms,
                c.software,
                i64_sat(c.reported_last_seq),
                i64_sat(c.fact_cursor),
            ])?;
        // When the node first reported work the hub has not processed: kept
        // while some stays unprocessed, cleared once the chain catches up.
        self.tx
            .prepare_cached(
                "UPDATE node_status SET pending_since = CASE
                     WHEN reported_last_seq > (SELECT processed_seq FROM nodes WHERE id = ?1)
                     THEN COALESCE(pending_since, ?2) ELSE NULL END
                 WHERE node = ?1",
            )?
            .execute(params![&id.as_bytes()[..], i64_of(c.at.0)])?;
        Ok(())
    }

    fn node_statuses(&mut self) -> Result<Vec<NodeStatus>, StoreError> {
        let sql = format!(
            "SELECT {NODE_COLS}, n.processed_seq, n.head,
                 s.last_contact, s.clock_skew_ms, s.software, s.reported_last_seq, s.fact_cursor,
                 (SELECT COUNT(*) FROM txs t WHERE t.node = n.id AND t.rejected = 1),
                 (SELECT COUNT(*) FROM incidents i WHERE i.node = n.id AND i.kind = 'chain-rejected'),
                 s.pending_since
             FROM nodes n JOIN facilities f ON f.id = n.facility
             LEFT JOIN node_status s ON s.node = n.id
             ORDER BY f.municipality, n.facility, n.id"
        );
        let mut stmt = self.tx.prepare(&sql)?;
        let mut rows = stmt.query([])?;
        let mut out = vec![];
        while let Some(r) = rows.next()? {
            let node = node_record(node_row(r)?)?;
            let chain = ChainHead {
                processed_seq: u64_of("processed seq", r.get(10)?)?,
                head: txid_of(r.get(11)?)?,
            };
            let at: Option<i64> = r.get(12)?;
            let last_contact = match at {
                None => None,
                Some(at) => Some(NodeContact {
                    at: UnixMillis(u64_of("last contact", at)?),
                    clock_skew_ms: r.get(13)?,
                    software: r.get(14)?,
                    reported_last_seq: u64_of("reported seq", r.get(15)?)?,
                    fact_cursor: u64_of("fact cursor", r.get(16)?)?,
                }),
            };
            out.push(NodeStatus {
                node,
                chain,
                last_contact,
                n_rejected: u64_of("count", r.get(17)?)?,
                n_incidents: u64_of("count", r.get(18)?)?,
                pending_since: r
                    .get::<_, Option<i64>>(19)?
                    .map(|t| u64_of("pending since", t).map(UnixMillis))
                    .transpose()?,
            });
        }
        Ok(out)
    }

    fn account(&mut self, id: AccountId) -> Result<Option<Account>, StoreError> {
        // Ids come from peers too; one past SQLite's range names no account.
        let Ok(raw) = i64::try_from(id.get()) else {
            return Ok(None);
        };
        let row: Option<(String, i64, i64)> = self
            .tx
            .prepare_cached(
                "SELECT my_key_id, municipality, created_at FROM accounts WHERE id = ?1",
            )?
            .query_row([raw], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
            .optional()?;
        row.map(|(alias, m, at)| {
            Ok(Account {
                id,
                my_key_id: MyKeyId::parse(&alias).map_err(|e| corrupt("My Key ID", e))?,
                municipality: muni_of(m)?,
                created_at: UnixMillis(u64_of("created at", at)?),
            })
        })
        .transpose()
    }

    fn account_by_my_key_id(&mut self, id: &MyKeyId) -> Result<Option<AccountId>, StoreError> {
        let row: Option<i64> = self
            .tx
            .prepare_cached("SELECT account FROM my_key_ids WHERE normalized = ?1")?
            .query_row([id.normalized()], |r| r.get(0))
            .optional()?;
        row.map(account_of).transpose()
    }

    fn insert_account(
        &mut self,
        my_key_id: &MyKeyId,
        municipality: MunicipalityCode,
        now: UnixMillis,
    ) -> Result<AccountId, StoreError> {
        self.tx
            .prepare_cached(
                "INSERT INTO accounts (my_key_id, municipality, created_at) VALUES (?1, ?2, ?3)",
            )?
            .execute(params![
                my_key_id.as_str(),
                muni_sql(municipality),
                i64_of(now.0)
            ])?;
        let id = self.tx.last_insert_rowid();
        self.tx
            .prepare_cached(
                "INSERT INTO my_key_ids (normalized, display, account, assigned_at) VALUES (?1, ?2, ?3, ?4)",
            )?
            .execute(params![my_key_id.normalized(), my_key_id.as_str(), id, i64_of(now.0)])?;
        account_of(id)
    }

    fn set_my_key_id(
        &mut self,
        account: AccountId,
        new: &MyKeyId,
        now: UnixMillis,
    ) -> Result<(), StoreError> {
        let a = i64_of(account.get());
        self.tx.execute(
            "UPDATE my_key_ids SET retired_at = ?2 WHERE account = ?1 AND retired_at IS NULL",
            params![a, i64_of(now.0)],
        )?;
        // The same alias may come back to the account that held it.
        self.tx.execute(
            "INSERT INTO my_key_ids (normalized, display, account, assigned_at) VALUES (?1, ?2, ?3, ?4)
             ON CONFLICT (normalized) DO UPDATE SET display = excluded.display,
                 assigned_at = excluded.assigned_at, retired_at = NULL",
            params![new.normalized(), new.as_str(), a, i64_of(now.0)],
        )?;
        self.tx.execute(
            "UPDATE accounts SET my_key_id = ?2 WHERE id = ?1",
            params![a, new.as_str()],
        )?;
        Ok(())
    }

    fn card(&mut self, card: &CardKey) -> Result<Option<CardRecord>, StoreError> {
        let row: Option<(i64, String)> = self
            .tx
            .prepare_cached("SELECT account, status FROM cards WHERE issuer = ?1 AND serial = ?2")?
            .query_row(params![card.issuer_der(), card.serial()], |r| {
                Ok((r.get(0)?, r.get(1)?))
            })
            .optional()?;
        row.map(|(a, s)| {
            Ok(CardRecord {
                card: card.clone(),
                account: account_of(a)?,
                status: status_of(&s)?,
            })
        })
        .transpose()
    }

    fn insert_card(&mut self, rec: &CardRecord, now: UnixMillis) -> Result<(), StoreError> {
        self.tx
            .prepare_cached(
                "INSERT INTO cards (issuer, serial, account, status, registered_at, changed_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?5)",
            )?
            .execute(params![
                rec.card.issuer_der(),
                rec.card.serial(),
                i64_of(rec.account.get()),
                rec.status.name(),
                i64_of(now.0)
            ])?;
        Ok(())
    }

    fn set_card_status(
        &mut self,
        card: &CardKey,
        status: CardStatus,
        now: UnixMillis,
    ) -> Result<(), StoreError> {
        self.tx.execute(
            "UPDATE cards SET status = ?3, changed_at = ?4 WHERE issuer = ?1 AND serial = ?2",
            params![
                card.issuer_der(),
                card.serial(),
                status.name(),
                i64_of(now.0)
            ],
        )?;
        Ok(())
    }

    fn cards_of(&mut self, account: AccountId) -> Result<Vec<CardRecord>, StoreError> {
        let mut stmt = self.tx.prepare_cached(
            "SELECT issuer, serial, status FROM cards WHERE account = ?1 ORDER BY registered_at, issuer, serial",
        )?;
        let rows = stmt.query_map([i64_sat(account.get())], |r| {
            Ok((
                r.get::<_, Vec<u8>>(0)?,
                r.get::<_, Vec<u8>>(1)?,
                r.get::<_, String>(2)?,
            ))
        })?;
        let mut out = vec![];
        for row in rows {
            let (issuer, serial, status) = row?;
            out.push(CardRecord {
                card: CardKey::new(issuer, serial).map_err(|e| corrupt("card key", e))?,
                account,
                status: status_of(&status)?,
            });
        }
        Ok(out)
    }

    fn program(&mut self, id: &ProgramId) -> Result<Option<Program>, StoreError> {
        let m: Option<i64> = self
            .tx
            .prepare_cached("SELECT municipality FROM programs WHERE id = ?1")?
            .query_row([id.as_str()], |r| r.get(0))
            .optional()?;
        m.map(|m| {
            Ok(Program {
                id: id.clone(),
                municipality: muni_of(m)?,
            })
        })
        .transpose()
    }

    fn insert_program(&mut self, p: &Program, now: UnixMillis) -> Result<(), StoreError> {
        self.tx.execute(
            "INSERT INTO programs (id, municipality, created_at) VALUES (?1, ?2, ?3)",
            params![p.id.as_str(), muni_sql(p.municipality), i64_of(now.0)],
        )?;
        Ok(())
    }

    fn programs(&mut self) -> Result<Vec<Program>, StoreError> {
        let mut stmt = self
            .tx
            .prepare_cached("SELECT id, municipality FROM programs ORDER BY municipality, id")?;
        let rows = stmt.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?)))?;
        let mut out = vec![];
        for row in rows {
            let (id, m) = row?;
            out.push(Program {
                id: ProgramId::parse(&id).map_err(|e| corrupt("programme id", e))?,
                municipality: muni_of(m)?,
            });
        }
        Ok(out)
    }

    fn facility_card(
        &mut self,
        facility: &FacilityId,
        number: &FacilityCardNumber,
    ) -> Result<Option<AccountId>, StoreError> {
        let a: Option<i64> = self
            .tx
            .prepare_cached(
                "SELECT account FROM facility_cards WHERE facility = ?1 AND number = ?2",
            )?
            .query_row([facility.as_str(), number.as_str()], |r| r.get(0))
            .optional()?;
        a.map(account_of).transpose()
    }

    fn facility_cards_of(
        &mut self,
        facility: &FacilityId,
        account: AccountId,
    ) -> Result<Vec<FacilityCardNumber>, StoreError> {
        let mut st = self.tx.prepare_cached(
            "SELECT number FROM facility_cards WHERE facility = ?1 AND account = ?2 ORDER BY number",
        )?;
        let rows = st.query_map(params![facility.as_str(), i64_of(account.get())], |r| {
            r.get::<_, String>(0)
        })?;
        let mut out = vec![];
        for n in rows {
            out.push(
                FacilityCardNumber::parse(&n?).map_err(|e| corrupt("facility card number", e))?,
            );
        }
        Ok(out)
    }

    fn link_facility_card(
        &mut self,
        facility: &FacilityId,
        number: &FacilityCardNumber,
        account: AccountId,
        now: UnixMillis,
    ) -> Result<(), StoreError> {
        self.tx
            .prepare_cached(
                "INSERT INTO facility_cards (facility, number, account, linked_at) VALUES (?1, ?2, ?3, ?4)",
            )?
            .execute(params![
                facility.as_str(),
                number.as_str(),
                i64_of(account.get()),
                i64_of(now.0)
            ])?;
        Ok(())
    }

    fn unlink_facility_card(
        &mut self,
        facility: &FacilityId,
        number: &FacilityCardNumber,
    ) -> Result<(), StoreError> {
        self.tx
            .prepare_cached("DELETE FROM facility_cards WHERE facility = ?1 AND number = ?2")?
            .execute([facility.as_str(), number.as_str()])?;
        Ok(())
    }

    fn processed_tx(&mut self, node: &NodeId, seq: u64) -> Result<Option<ProcessedTx>, StoreError> {
        let row: Option<(Vec<u8>, Vec<u8>)> = self
            .tx
            .prepare_cached("SELECT id, outcome FROM txs WHERE node = ?1 AND seq = ?2")?
            .query_row(params![&node.as_bytes()[..], i64_of(seq)], |r| {
                Ok((r.get(0)?, r.get(1)?))
            })
            .optional()?;
        row.map(|(id, outcome)| {
            Ok(ProcessedTx {
                id: txid_of(id)?,
                outcome: codec::decode_canonical("stored outcome", &outcome, 4096)
                    .map_err(|e| corrupt("stored outcome", e))?,
            })
        })
        .transpose()
    }

    fn insert_processed_tx(
        &mut self,
        tx: &VerifiedTx,
        outcome: &Outcome,
        now: UnixMillis,
    ) -> Result<(), StoreError> {
        let p = tx.payload();
        self.tx
            .prepare_cached(
                "INSERT INTO txs (id, node, seq, signed, outcome, rejected, received_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            )?
            .execute(params![
                &tx.id().as_bytes()[..],
                &p.node.as_bytes()[..],
                i64_of(p.seq),
                tx.signed().to_bytes(),
                codec::encode(outcome),
                matches!(outcome, Outcome::Rejected(_)),
                i64_of(now.0),
            ])?;
        Ok(())
    }

    fn tx_count(&mut self, id: &TxId) -> Result<u64, StoreError> {
        let n: i64 = self
            .tx
            .prepare_cached("SELECT COUNT(*) FROM txs WHERE id = ?1")?
            .query_row([&id.as_bytes()[..]], |r| r.get(0))?;
        u64_of("count", n)
    }

    fn record_incident(&mut self, i: &Incident) -> Result<(), StoreError> {
        self.tx
            .prepare_cached(
                "INSERT INTO incidents (at, kind, node, seq, tx, detail) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            )?
            .execute(params![
                i64_of(i.at.0),
                i.kind.name(),
                i.node.map(|n| n.as_bytes().to_vec()),
                i.seq.map(i64_sat),
                i.tx.map(|t| t.as_bytes().to_vec()),
                i.detail,
            ])?;
        Ok(())
    }

    fn incidents(&mut self, limit: u32) -> Result<Vec<Incident>, StoreError> {
        let mut stmt = self.tx.prepare_cached(
            "SELECT at, kind, node, seq, tx, detail FROM
               (SELECT * FROM incidents ORDER BY id DESC LIMIT ?1) ORDER BY id",
        )?;
        let mut rows = stmt.query([limit])?;
        let mut out = vec![];
        while let Some(r) = rows.next()? {
            let kind: String = r.get(1)?;
            out.push(Incident {
                at: UnixMillis(u64_of("incident time", r.get(0)?)?),
                kind: IncidentKind::parse(&kind).ok_or_else(|| corrupt("incident kind", kind))?,
                node: r.get::<_, Option<Vec<u8>>>(2)?.map(node_of).transpose()?,
                seq: r
                    .get::<_, Option<i64>>(3)?
                    .map(|s| u64_of("seq", s))
                    .transpose()?,
                tx: r.get::<_, Option<Vec<u8>>>(4)?.map(txid_of).transpose()?,
                detail: r.get(5)?,
            });
        }
        Ok(out)
    }

    fn incident_counts(&mut self) -> Result<Vec<(IncidentKind, u64)>, StoreError> {
        let mut stmt = self
            .tx
            .prepare_cached("SELECT kind, COUNT(*) FROM incidents GROUP BY kind ORDER BY kind")?;
        let mut rows = stmt.query([])?;
        let mut out = vec![];
        while let Some(r) = rows.next()? {
            let kind: String = r.get(0)?;
            out.push((
                IncidentKind::parse(&kind).ok_or_else(|| corrupt("incident kind", kind))?,
                u64_of("incident count", r.get(1)?)?,
            ));
        }
        Ok(out)
    }

    fn posted(&mut self, account: &LedgerAccount) -> Result<Posted, StoreError> {
        let id = match self
            .committed_ids
            .get(account)
            .or_else(|| self.new_ids.get(account))
        {
            Some(id) => Some(*id),
            None => self
                .tx
                .prepare_cached("SELECT id FROM ledger_accounts WHERE kind = ?1 AND key = ?2")?
                .query_row(params![account.kind(), account.key()], |r| r.get(0))
                .optional()?,
        };
        let Some(id) = id else {
            return Ok(Posted::default());
        };
        let (d, c): (i64, i64) = self
            .tx
            .prepare_cached(
                "SELECT debits_posted, credits_posted FROM ledger_accounts WHERE id = ?1",
            )?
            .query_row([id], |r| Ok((r.get(0)?, r.get(1)?)))?;
        Ok(Posted {
            debits: u64_of("debits posted", d)?,
            credits: u64_of("credits posted", c)?,
        })
    }

    fn holder_posted(
        &mut self,
        account: AccountId,
        municipality: MunicipalityCode,
    ) -> Result<(Posted, Posted), StoreError> {
        // Both accounts share the key; one index range read finds them.
        let key = LedgerAccount::Wallet(account, municipality).key();
        let mut stmt = self.tx.prepare_cached(
            "SELECT kind, debits_posted, credits_posted FROM ledger_accounts
             WHERE kind IN ('wallet', 'debt') AND key = ?1",
        )?;
        let mut rows = stmt.query([key])?;
        let (mut wallet, mut debt) = (Posted::default(), Posted::default());
        while let Some(r) = rows.next()? {
            let kind: String = r.get(0)?;
            let posted = Posted {
                debits: u64_of("debits posted", r.get(1)?)?,
                credits: u64_of("credits posted", r.get(2)?)?,
            };
            match kind.as_str() {
                "wallet" => wallet = posted,
                _ => debt = posted,
            }
        }
        Ok((wallet, debt))
    }

    fn post(&mut self, t: &TransferDraft, now: UnixMillis) -> Result<u64, StoreError> {
        assert!(!t.amount.is_zero(), "a transfer moves a positive amount");
        assert_ne!(t.debit, t.credit, "a transfer moves between two accounts");
        let debit = self.ledger_account_id(&t.debit)?;
        let credit = self.ledger_account_id(&t.credit)?;
        let amount = i64_of(t.amount.get());
        // The leg numbers a transaction's transfers in order, for audit.
        let leg: i64 = match t.origin_tx {
            None => 0,
            Some(origin) => {
                let n = self.legs.entry(origin).or_insert(0);
                *n += 1;
                *n - 1
            }
        };
        self.tx
            .prepare_cached(
                "INSERT INTO transfers (debit, credit, amount, kind, origin_tx, leg, hub_time, node_time)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
            )?
            .execute(params![
                debit,
                credit,
                amount,
                t.kind.name(),
                t.origin_tx.map(|o| o.as_bytes().to_vec()),
                leg,
                i64_of(now.0),
                t.node_time.map(|n| i64_sat(n.0)),
            ])?;
        let pos = self.tx.last_insert_rowid();
        let changed = self
            .tx
            .prepare_cached(
                "UPDATE ledger_accounts SET
                     debits_posted = debits_posted + CASE WHEN id = ?1 THEN ?3 ELSE 0 END,
                     credits_posted = credits_posted + CASE WHEN id = ?2 THEN ?3 ELSE 0 END
                 WHERE id IN (?1, ?2)",
            )?
            .execute(params![debit, credit, amount])?;
        assert_eq!(changed, 2, "both sides of a transfer exist");
        self.delta.debits += t.amount.get();
        self.delta.credits += t.amount.get();
        u64_of("transfer id", pos)
    }

    fn ledger_head(&mut self) -> Result<u64, StoreError> {
        let pos: i64 = self
            .tx
            .prepare_cached("SELECT COALESCE(MAX(id), 0) FROM transfers")?
            .query_row([], |r| r.get(0))?;
        u64_of("ledger head", pos)
    }

    fn ledger_totals(&mut self) -> Result<Posted, StoreError> {
        let (d, c): (i64, i64) = self
            .tx
            .prepare_cached("SELECT debits, credits FROM ledger_totals WHERE id = 1")?
            .query_row([], |r| Ok((r.get(0)?, r.get(1)?)))?;
        Ok(Posted {
            debits: u64_of("total debits", d)? + self.delta.debits,
            credits: u64_of("total credits", c)? + self.delta.credits,
        })
    }

    fn transfers(&mut self, after: u64, limit: u32) -> Result<Vec<Transfer>, StoreError> {
        let mut stmt = self.tx.prepare_cached(
            "SELECT t.id, d.kind, d.key, d.municipality, c.kind, c.key, c.municipality,
                    t.amount, t.kind, t.origin_tx, t.hub_time, t.node_time
             FROM transfers t JOIN ledger_accounts d ON d.id = t.debit
             JOIN ledger_accounts c ON c.id = t.credit
             WHERE t.id > ?1 ORDER BY t.id LIMIT ?2",
        )?;
        let mut rows = stmt.query(params![i64_of(after), limit])?;
        let mut out = vec![];
        while let Some(r) = rows.next()? {
            let kind: String = r.get(8)?;
            out.push(Transfer {
                pos: u64_of("transfer id", r.get(0)?)?,
                debit: parse_ledger_account(
                    &r.get::<_, String>(1)?,
                    &r.get::<_, String>(2)?,
                    r.get(3)?,
                )?,
                credit: parse_ledger_account(
                    &r.get::<_, String>(4)?,
                    &r.get::<_, String>(5)?,
                    r.get(6)?,
                )?,
                amount: points_of("amount", r.get(7)?)?,
                kind: TransferKind::parse(&kind).ok_or_else(|| corrupt("transfer kind", kind))?,
                origin_tx: r.get::<_, Option<Vec<u8>>>(9)?.map(txid_of).transpose()?,
                hub_time: UnixMillis(u64_of("hub time", r.get(10)?)?),
                node_time: r
                    .get::<_, Option<i64>>(11)?
                    .map(|t| u64_of("node time", t).map(UnixMillis))
                    .transpose()?,
            });
        }
        Ok(out)
    }

    fn debts(&mut self) -> Result<Vec<DebtLine>, StoreError> {
        let mut stmt = self.tx.prepare_cached(
            "SELECT key, municipality, debits_posted - credits_posted FROM ledger_accounts
             WHERE kind = 'debt' AND debits_posted <> credits_posted ORDER BY municipality, key",
        )?;
        let mut rows = stmt.query([])?;
        let mut out = vec![];
        while let Some(r) = rows.next()? {
            let key: String = r.get(0)?;
            let m: i64 = r.get(1)?;
            let LedgerAccount::Debt(account, municipality) = parse_ledger_account("debt", &key, m)?
            else {
                return Err(corrupt("debt account", key));
            };
            out.push(DebtLine {
                account,
                municipality,
                debt: points_of("debt", r.get(2)?)?,
            });
        }
        Ok(out)
    }

    fn ledger_audit(&mut self) -> Result<LedgerAudit, StoreError> {
        let running = self.ledger_totals()?;
        let (ad, ac): (i64, i64) = self.tx.query_row(
            "SELECT COALESCE(SUM(debits_posted), 0), COALESCE(SUM(credits_posted), 0) FROM ledger_accounts",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )?;
        let (sum, n): (i64, i64) = self.tx.query_row(
            "SELECT COALESCE(SUM(amount), 0), COUNT(*) FROM transfers",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )?;
        // Recompute every account's totals from the transfers in two passes
        // (no correlated subqueries: this runs over the whole ledger).
        let mut recomputed: HashMap<i64, (i64, i64)> = HashMap::new();
        {
            let mut stmt = self
                .tx
                .prepare("SELECT debit, SUM(amount) FROM transfers GROUP BY debit")?;
            let mut rows = stmt.query([])?;
            while let Some(r) = rows.next()? {
                recomputed.entry(r.get(0)?).or_default().0 = r.get(1)?;
            }
            let mut stmt = self
                .tx
                .prepare("SELECT credit, SUM(amount) FROM transfers GROUP BY credit")?;
            let mut rows = stmt.query([])?;
            while let Some(r) = rows.next()? {
                recomputed.entry(r.get(0)?).or_default().1 = r.get(1)?;
            }
        }
        let mut mismatched_accounts = vec![];
        {
            let mut stmt = self.tx.prepare(
                "SELECT id, kind || ':' || key, debits_posted, credits_posted FROM ledger_accounts",
            )?;
            let mut rows = stmt.query([])?;
            while let Some(r) = rows.next()? {
                let id: i64 = r.get(0)?;
                let posted: (i64, i64) = (r.get(2)?, r.get(3)?);
                if recomputed.get(&id).copied().unwrap_or_default() != posted {
                    mismatched_accounts.push(r.get::<_, String>(1)?);
                }
            }
        }
        let mut municipalities = vec![];
        {
            let mut stmt = self.tx.prepare(
                "SELECT m.municipality,
                   (SELECT COALESCE(SUM(t.amount), 0) FROM transfers t JOIN ledger_accounts c ON c.id = t.credit
                      WHERE c.municipality = m.municipality AND (t.kind = 'grant'
                        OR (t.kind IN ('exchange', 'premium', 'release') AND c.kind = 'wallet'))),
                   (SELECT COALESCE(SUM(t.amount), 0) FROM transfers t JOIN ledger_accounts c ON c.id = t.credit
                      WHERE c.municipality = m.municipality AND t.kind IN ('redeem', 'redeem-on-debt')),
                   (SELECT COALESCE(SUM(t.amount), 0) FROM transfers t JOIN ledger_accounts c ON c.id = t.credit
                      WHERE c.municipality = m.municipality AND t.kind = 'expiry'),
                   (SELECT COALESCE(SUM(credits_posted - debits_posted), 0) FROM ledger_accounts
                      WHERE kind IN ('wallet', 'escrow') AND municipality = m.municipality),
                   (SELECT COALESCE(SUM(debits_posted - credits_posted), 0) FROM ledger_accounts
                      WHERE kind = 'debt' AND municipality = m.municipality),
                   (SELECT COUNT(*) FROM ledger_accounts WHERE kind IN ('wallet', 'escrow')
                      AND municipality = m.municipality AND credits_posted < debits_posted),
                   (SELECT COUNT(*) FROM ledger_accounts WHERE kind = 'debt'
                      AND municipality = m.municipality AND debits_posted < credits_posted)
                 FROM (SELECT DISTINCT municipality FROM ledger_accounts) m ORDER BY m.municipality",
            )?;
            let mut rows = stmt.query([])?;
            while let Some(r) = rows.next()? {
                municipalities.push(MunicipalityFlows {
                    municipality: Some(muni_of(r.get(0)?)?),
                    credited: u64_of("credited", r.get(1)?)?,
                    redeemed: u64_of("redeemed", r.get(2)?)?,
                    expired: u64_of("expired", r.get(3)?)?,
                    wallets: i128::from(r.get::<_, i64>(4)?),
                    debts: i128::from(r.get::<_, i64>(5)?),
                    negative_wallets: u64_of("count", r.get(6)?)?,
                    negative_debts: u64_of("count", r.get(7)?)?,
                });
            }
        }
        Ok(LedgerAudit {
            running,
            accounts: Posted {
                debits: u64_of("sum of debits", ad)?,
                credits: u64_of("sum of credits", ac)?,
            },
            transfers: u64_of("sum of transfers", sum)?,
            n_transfers: u64_of("count", n)?,
            mismatched_accounts,
            municipalities,
        })
    }

    fn strict_mode(&mut self, m: MunicipalityCode) -> Result<bool, StoreError> {
        Ok(self
            .tx
            .prepare_cached("SELECT 1 FROM strict_municipalities WHERE code = ?1")?
            .query_row([m.get()], |_| Ok(()))
            .optional()?
            .is_some())
    }

    fn set_strict_mode(
        &mut self,
        m: MunicipalityCode,
        on: bool,
        now: UnixMillis,
    ) -> Result<(), StoreError> {
        if on {
            self.tx.execute(
                "INSERT OR IGNORE INTO strict_municipalities(code, since) VALUES (?1, ?2)",
                params![m.get(), i64_of(now.0)],
            )?;
        } else {
            self.tx.execute(
                "DELETE FROM strict_municipalities WHERE code = ?1",
                [m.get()],
            )?;
        }
        Ok(())
    }

    fn insert_spend_right(&mut self, r: &super::SpendRightRow) -> Result<u64, StoreError> {
        self.tx.execute(
            "INSERT INTO spend_rights(account, municipality, node, points, granted_at)
             VALUES (?1, ?2, ?3, ?4, ?5)",
            params![
                i64_of(r.account.get()),
                r.municipality.get(),
                r.node.as_bytes(),
                i64_of(r.points.get()),
                i64_of(r.granted_at.0)
            ],
        )?;
        u64_of("right id", self.tx.last_insert_rowid())
    }

    fn release_spend_rights(
        &mut self,
        account: AccountId,
        m: MunicipalityCode,
        node: &NodeId,
        now: UnixMillis,
    ) -> Result<(), StoreError> {
        self.tx.execute(
            "UPDATE spend_rights SET released_at = ?4
             WHERE account = ?1 AND municipality = ?2 AND node = ?3 AND released_at IS NULL",
            params![
                i64_of(account.get()),
                m.get(),
                node.as_bytes(),
                i64_of(now.0)
            ],
        )?;
        Ok(())
    }

    fn live_spend_rights(
        &mut self,
        m: MunicipalityCode,
    ) -> Result<Vec<(AccountId, NodeId)>, StoreError> {
        let mut st = self.tx.prepare_cached(
            "SELECT DISTINCT account, node FROM spend_rights
             WHERE municipality = ?1 AND released_at IS NULL ORDER BY account, node",
        )?;
        let rows = st.query_map([m.get()], |r| {
            Ok((r.get::<_, i64>(0)?, r.get::<_, Vec<u8>>(1)?))
        })?;
        let mut out = vec![];
        for row in rows {
            let (a, n) = row?;
            let account = AccountId::new(u64_of("account", a)?)
                .map_err(|e| corrupt("spend right account", e))?;
            let node = NodeId::from_bytes(
                n.try_into()
                    .map_err(|_| corrupt("spend right node", "not 32 bytes"))?,
            )
            .map_err(|e| corrupt("spend right node", e))?;
            out.push((account, node));
        }
        Ok(out)
    }

    fn escrow_balances(
        &mut self,
        m: MunicipalityCode,
    ) -> Result<Vec<(AccountId, NodeId, i128)>, StoreError> {
        let mut st = self.tx.prepare_cached(
            "SELECT key, credits_posted - debits_posted FROM ledger_accounts
             WHERE kind = 'escrow' AND municipality = ?1 ORDER BY key",
        )?;
        let rows = st.query_map([m.get()], |r| {
            Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?))
        })?;
        let mut out = vec![];
        for row in rows {
            let (key, bal) = row?;
            match parse_ledger_account("escrow", &key, i64::from(m.get()))? {
                LedgerAccount::Escrow(a, _, n) => out.push((a, n, i128::from(bal))),
                _ => return Err(corrupt("ledger account key", key)),
            }
        }
        Ok(out)
    }

    fn wallets_with_points(&mut self, m: MunicipalityCode) -> Result<Vec<AccountId>, StoreError> {
        let mut st = self.tx.prepare_cached(
            "SELECT key FROM ledger_accounts
             WHERE kind = 'wallet' AND municipality = ?1 AND credits_posted > debits_posted",
        )?;
        let rows = st.query_map([m.get()], |r| r.get::<_, String>(0))?;
        let mut out = vec![];
        for key in rows {
            let key = key?;
            match parse_ledger_account("wallet", &key, i64::from(m.get()))? {
                LedgerAccount::Wallet(a, _) => out.push(a),
                _ => return Err(corrupt("ledger account key", key)),
            }
        }
        out.sort();
        Ok(out)
    }

    fn right_transfer_applied(&mut self, tx: &TxId) -> Result<bool, StoreError> {
        Ok(self
            .tx
            .prepare_cached("SELECT 1 FROM right_transfers WHERE tx_id = ?1")?
            .query_row([tx.as_bytes()], |_| Ok(()))
            .optional()?
            .is_some())
    }

    fn mark_right_transfer(&mut self, tx: &TxId, now: UnixMillis) -> Result<(), StoreError> {
        self.tx.execute(
            "INSERT INTO right_transfers(tx_id, applied_at) VALUES (?1, ?2)",
            params![tx.as_bytes(), i64_of(now.0)],
        )?;
        Ok(())
    }

    fn last_hub_seq(&mut self) -> Result<u64, StoreError> {
        let s: i64 = self
            .tx
            .prepare_cached("SELECT COALESCE(MAX(hub_seq), 0) FROM facts")?
            .query_row([], |r| r.get(0))?;
        u64_of("hub seq", s)
    }

    fn append_fact(
        &mut self,
        scope: &Scope,
        fact: &StoredFact,
        now: UnixMillis,
    ) -> Result<(), StoreError> {
        let batch = *self.batch.get_or_insert(fact.hub_seq);
        let (item, bucket_hash) = match &fact.item {
            Some((k, h)) => (Some(k.as_str()), Some(i64::from(*h))),
            None => (None, None),
        };
        if let Some((key, hash)) = &fact.item
            && !key.starts_with("st/")
        {
            let scope_text = scope_key(scope);
            let known: bool = self
                .tx
                .prepare_cached(
                    "SELECT EXISTS(SELECT 1 FROM facts WHERE scope = ?1 AND item = ?2)",
                )?
                .query_row(params![scope_text, key], |r| r.get(0))?;
            if !known {
                self.tx
                    .prepare_cached(
                        "INSERT INTO shard_fill (scope, hash, items) VALUES (?1, ?2, 1)
                         ON CONFLICT(scope, hash) DO UPDATE SET items = items + 1",
                    )?
                    .execute(params![scope_text, i64::from(*hash & FILL_HASH_MASK)])?;
            }
        }
        self.tx
            .prepare_cached(
                "INSERT INTO facts
                 (hub_seq, scope, priority, signed, issued_at, subject, item, bucket_hash, batch)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
            )?
            .execute(params![
                i64_of(fact.hub_seq),
                scope_key(scope),
                fact.priority,
                fact.signed.to_bytes(),
                i64_of(now.0),
                fact.subject,
                item,
                bucket_hash,
                i64_of(batch),
            ])?;
        Ok(())
    }

    fn placed_facts(
        &mut self,
        scope: &Scope,
        after: u64,
        through: u64,
        limit: u32,
    ) -> Result<Vec<PlacedFact>, StoreError> {
        let mut stmt = self.tx.prepare_cached(
            "SELECT hub_seq, batch, issued_at, item, bucket_hash, signed FROM facts
             WHERE scope = ?1 AND hub_seq > ?2 AND hub_seq <= ?3 AND item IS NOT NULL
             ORDER BY hub_seq LIMIT ?4",
        )?;
        let mut rows = stmt.query(params![
            scope_key(scope),
            i64_sat(after),
            i64_sat(through),
            limit
        ])?;
        let mut out = vec![];
        while let Some(r) = rows.next()? {
            let hub_seq = u64_of("hub seq", r.get(0)?)?;
            let batch: Option<i64> = r.get(1)?;
            let hash: i64 = r.get(4)?;
            out.push(PlacedFact {
                hub_seq,
                batch: batch.map_or(Ok(hub_seq), |b| u64_of("fact batch", b))?,
                issued_at: UnixMillis(u64_of("fact time", r.get(2)?)?),
                item: r.get(3)?,
                bucket_hash: u16::try_from(hash).map_err(|_| corrupt("bucket hash", hash))?,
                signed: r.get(5)?,
            });
        }
        Ok(out)
    }

    fn shard_epoch(&mut self, scope: &Scope) -> Result<Option<ShardEpochRow>, StoreError> {
        self.tx
            .prepare_cached(
                "SELECT epoch, buckets, base_seq, started_at FROM shard_epochs WHERE scope = ?1",
            )?
            .query_row(params![scope_key(scope)], |r| {
                Ok((
                    r.get::<_, i64>(0)?,
                    r.get::<_, i64>(1)?,
                    r.get::<_, i64>(2)?,
                    r.get::<_, i64>(3)?,
                ))
            })
            .optional()?
            .map(|(e, b, s, t)| {
                Ok(ShardEpochRow {
                    epoch: u32::try_from(e).map_err(|_| corrupt("shard epoch", e))?,
                    buckets: u16::try_from(b).map_err(|_| corrupt("shard buckets", b))?,
                    base_seq: u64_of("shard base seq", s)?,
                    started_at: UnixMillis(u64_of("shard epoch start", t)?),
                })
            })
            .transpose()
    }

    fn put_shard_epoch(&mut self, scope: &Scope, row: &ShardEpochRow) -> Result<(), StoreError> {
        self.tx
            .prepare_cached(
                "INSERT INTO shard_epochs (scope, epoch, buckets, base_seq, started_at)
                 VALUES (?1, ?2, ?3, ?4, ?5)
                 ON CONFLICT(scope) DO UPDATE SET epoch = ?2, buckets = ?3, base_seq = ?4,
                 started_at = ?5",
            )?
            .execute(params![
                scope_key(scope),
                i64::from(row.epoch),
                i64::from(row.buckets),
                i64_of(row.base_seq),
                i64_of(row.started_at.0),
            ])?;
        Ok(())
    }

    fn shard_fill(&mut self, scope: &Scope) -> Result<Vec<(u16, u64)>, StoreError> {
        let mut stmt = self
            .tx
            .prepare_cached("SELECT hash, items FROM shard_fill WHERE scope = ?1")?;
        let mut rows = stmt.query(params![scope_key(scope)])?;
        let mut out = vec![];
        while let Some(r) = rows.next()? {
            let hash: i64 = r.get(0)?;
            out.push((
                u16::try_from(hash).map_err(|_| corrupt("shard fill hash", hash))?,
                u64_of("shard fill", r.get(1)?)?,
            ));
        }
        Ok(out)
    }

    fn scopes_placed_after(&mut self, after: u64) -> Result<Vec<String>, StoreError> {
        let mut stmt = self.tx.prepare_cached(
            "SELECT DISTINCT scope FROM facts WHERE hub_seq > ?1 AND item IS NOT NULL",
        )?;
        let rows = stmt.query_map(params![i64_sat(after)], |r| r.get::<_, String>(0))?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    fn fact_scopes(&mut self) -> Result<Vec<String>, StoreError> {
        let mut stmt = self
            .tx
            .prepare_cached("SELECT DISTINCT scope FROM facts WHERE item IS NOT NULL")?;
        let rows = stmt.query_map([], |r| r.get::<_, String>(0))?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    fn latest_facts_by_subject(&mut self, prefix: &[u8]) -> Result<Vec<StoredFact>, StoreError> {
        // Subjects from `prefix` up to (not including) the prefix with its
        // last byte raised: exactly those starting with it.
        let mut end = prefix.to_vec();
        let last = end.last_mut();
        // Callers pass fixed prefixes ending in '/': another one is a bug.
        assert!(
            last.as_ref().is_some_and(|b| **b < u8::MAX),
            "a subject prefix must end in a byte below 0xff"
        );
        if let Some(b) = last {
            *b += 1;
        }
        // SQLite takes the bare columns from the row of max(hub_seq).
        let mut stmt = self.tx.prepare_cached(
            "SELECT max(hub_seq), priority, signed, subject FROM facts
             WHERE subject >= ?1 AND subject < ?2 GROUP BY subject ORDER BY subject",
        )?;
        let mut rows = stmt.query(params![prefix, end])?;
        let mut out = vec![];
        while let Some(r) = rows.next()? {
            let bytes: Vec<u8> = r.get(2)?;
            out.push(StoredFact {
                hub_seq: u64_of("hub seq", r.get(0)?)?,
                priority: r.get(1)?,
                subject: r.get(3)?,
                item: None,
                signed: SignedFact::from_bytes(&bytes).map_err(|e| corrupt("stored fact", e))?,
            });
        }
        Ok(out)
    }

    fn facts_in_scope(
        &mut self,
        scope: &Scope,
        after: u64,
        limit: u32,
        all: bool,
    ) -> Result<Vec<StoredFact>, StoreError> {
        let mut stmt = self.tx.prepare_cached(if all {
            "SELECT hub_seq, priority, signed, subject FROM facts
             WHERE scope = ?1 AND hub_seq > ?2
             ORDER BY hub_seq LIMIT ?3"
        } else {
            "SELECT hub_seq, priority, signed, subject FROM facts
             WHERE scope = ?1 AND hub_seq > ?2 AND item IS NULL
             ORDER BY hub_seq LIMIT ?3"
        })?;
        let mut rows = stmt.query(params![scope_key(scope), i64_sat(after), limit])?;
        let mut out = vec![];
        while let Some(r) = rows.next()? {
            let bytes: Vec<u8> = r.get(2)?;
            out.push(StoredFact {
                hub_seq: u64_of("hub seq", r.get(0)?)?,
                priority: r.get(1)?,
                subject: r.get(3)?,
                item: None,
                signed: SignedFact::from_bytes(&bytes).map_err(|e| corrupt("stored fact", e))?,
            });
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn migrations_run_once_and_refuse_a_newer_schema() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("hub.db");
        let store = SqliteStore::open(&path).unwrap();
        assert_eq!(store.schema_version().unwrap(), MIGRATIONS.len() as i64);
        let mode: String = store
            .connection()
            .query_row("PRAGMA journal_mode", [], |r| r.get(0))
            .unwrap();
        assert_eq!(mode, "wal");
        let sync: i64 = store
            .connection()
            .query_row("PRAGMA synchronous", [], |r| r.get(0))
            .unwrap();
        assert_eq!(sync, 2, "synchronous=FULL");
        drop(store);
        // Reopening applies nothing twice.
        let store = SqliteStore::open(&path).unwrap();
        assert_eq!(store.schema_version().unwrap(), MIGRATIONS.len() as i64);
        store
            .connection()
            .pragma_update(None, "user_version", 99)
            .unwrap();
        drop(store);
        assert!(matches!(
            SqliteStore::open(&path),
            Err(StoreError::SchemaTooNew { found: 99, .. })
        ));
    }

    #[test]
    fn migration_4_keeps_transfers_and_their_immutability() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("hub.db");
        {
            let conn = Connection::open(&path).unwrap();
            for sql in &MIGRATIONS[..3] {
                conn.execute_batch(sql).unwrap();
            }
            conn.pragma_update(None, "user_version", 3).unwrap();
            conn.execute_batch(
                "INSERT INTO ledger_accounts (id, kind, key, municipality) VALUES
                     (1, 'funding', '131059', 131059), (2, 'budget', 'p', 131059);
                 INSERT INTO transfers (debit, credit, amount, kind, leg, hub_time)
                     VALUES (1, 2, 500, 'funding', 0, 7);",
            )
            .unwrap();
        }
        let store = SqliteStore::open(&path).unwrap();
        let c = store.connection();
        let (n, amount): (i64, i64) = c
            .query_row("SELECT COUNT(*), SUM(amount) FROM transfers", [], |r| {
                Ok((r.get(0)?, r.get(1)?))
            })
            .unwrap();
        assert_eq!((n, amount), (1, 500));
        assert!(c.execute("UPDATE transfers SET amount = 1", []).is_err());
        assert!(c.execute("DELETE FROM transfers", []).is_err());
        let unique: i64 = c
            .query_row(
                "SELECT COUNT(*) FROM pragma_index_list('transfers') WHERE \"unique\" = 1",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(unique, 0);
    }

    #[test]
    fn the_doors_migration_makes_old_operators_admins_and_old_tokens_read_only() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("hub.db");
        let before = MIGRATIONS
            .iter()
            .position(|m| m.contains("ALTER TABLE operators ADD COLUMN role"))
            .unwrap();
        {
            let conn = Connection::open(&path).unwrap();
            for sql in &MIGRATIONS[..before] {
                conn.execute_batch(sql).unwrap();
            }
            conn.pragma_update(None, "user_version", before as i64)
                .unwrap();
            conn.execute_batch(
                "INSERT INTO operators (name, password_hash, created_at) VALUES ('ops', 'x', 1);
                 INSERT INTO api_tokens (token_sha256, operator, created_at)
                     VALUES (x'0123456789abcdef', 'ops', 2);",
            )
            .unwrap();
        }
        let mut store = SqliteStore::open(&path).unwrap();
        let mut tx = store.begin_read().unwrap();
        let op = tx.operator("ops").unwrap().unwrap();
        assert_eq!(op.role, crate::access::Role::Admin);
        let tokens = tx.api_tokens(None).unwrap();
        assert_eq!(tokens.len(), 1);
        assert_eq!(tokens[0].id, "0123456789ab");
        assert_eq!(tokens[0].scope, crate::access::Scope::Read);
        assert_eq!((tokens[0].expires_at, tokens[0].revoked_at), (None, None));
    }

    #[test]
    fn the_shard_fill_migration_counts_existing_items_once() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("hub.db");
        let before = MIGRATIONS
            .iter()
            .position(|m| m.contains("CREATE TABLE shard_fill"))
            .unwrap();
        {
            let conn = Connection::open(&path).unwrap();
            for sql in &MIGRATIONS[..before] {
                conn.execute_batch(sql).unwrap();
            }
            conn.pragma_update(None, "user_version", before as i64)
                .unwrap();
            // An item written twice counts once; 4101 and 5 share the low
            // 12 bits; deny items and log facts are not counted.
            conn.execute_batch(
                "INSERT INTO facts (hub_seq, scope, priority, signed, issued_at, item, bucket_hash, batch)
                 VALUES (1, 'm:131059', 0, x'00', 1, 'reg/a', 5, 1),
                        (2, 'm:131059', 0, x'00', 1, 'reg/a', 5, 2),
                        (3, 'm:131059', 0, x'00', 1, 'bal/b', 4101, 3),
                        (4, 'm:131059', 0, x'00', 1, 'st/a', 5, 4),
                        (5, 'm:131059', 0, x'00', 1, NULL, NULL, 5),
                        (6, 'f:lib-1', 0, x'00', 1, 'fc/c/1', 7, 6);",
            )
            .unwrap();
        }
        let mut store = SqliteStore::open(&path).unwrap();
        let mut tx = store.begin_read().unwrap();
        let m = Scope::Municipality(MunicipalityCode::parse("131059").unwrap());
        let f = Scope::Facility(mykey_sync_proto::FacilityId::parse("lib-1").unwrap());
        assert_eq!(tx.shard_fill(&m).unwrap(), vec![(5, 2)]);
        assert_eq!(tx.shard_fill(&f).unwrap(), vec![(7, 1)]);
        let mut after_5 = tx.scopes_placed_after(5).unwrap();
        after_5.sort();
        assert_eq!(after_5, vec!["f:lib-1".to_string()]);
        let mut all = tx.scopes_placed_after(0).unwrap();
        all.sort();
        assert_eq!(all, vec!["f:lib-1".to_string(), "m:131059".to_string()]);
    }

    #[test]
    fn a_rolled_back_transaction_leaves_no_cached_ledger_ids() {
        let mut store = SqliteStore::open_in_memory().unwrap();
        let m = MunicipalityCode::parse("131059").unwrap();
        let a = LedgerAccount::MunicipalityFunding(m);
        let b = LedgerAccount::ExpiryIncome(m);
        {
            let mut tx = store.begin().unwrap();
            let draft = TransferDraft {
                debit: a.clone(),
                credit: b.clone(),
                amount: Points::new(5).unwrap(),
                kind: TransferKind::Correction,
                origin_tx: None,
                node_time: None,
            };
            tx.post(&draft, UnixMillis(1)).unwrap();
            // Dropped without commit: rolled back.
        }
        assert!(store.ledger_ids.is_empty());
        let mut tx = store.begin_read().unwrap();
        assert_eq!(tx.posted(&a).unwrap(), Posted::default());
        assert_eq!(tx.ledger_head().unwrap(), 0);
    }
}
