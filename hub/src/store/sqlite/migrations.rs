//! The schema: migrations applied at open, numbered by SQLite's
//! `user_version`.

use super::{bounds, donation, economy, history, link_request, voucher};
use crate::store::StoreError;
use rusqlite::{Connection, TransactionBehavior};

/// Schema migrations, applied in order; `user_version` = how many ran.
/// Append only: never edit a migration that has shipped.
pub(super) const MIGRATIONS: &[&str] = &[
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
    history::MIGRATION,
    voucher::MIGRATION,
    r#"
-- The seq a node said it had signed when it opened each link: the hub's own
-- record of when a voucher redemption was made online (rules/voucher.rs).
ALTER TABLE node_links ADD COLUMN hello_last_seq INTEGER NOT NULL DEFAULT 0;
"#,
    r#"
-- When an expired voucher batch's unredeemed points went back (voucher::expire_due).
ALTER TABLE voucher_batches ADD COLUMN expired_at INTEGER;
"#,
    donation::MIGRATION,
    link_request::MIGRATION,
    r#"
-- A node's own offline voucher cap (issue 17; `NodePolicy::offline_voucher_cap`).
-- A node enrolled before keeps its exposure limit, which stood in until now.
ALTER TABLE nodes ADD COLUMN offline_voucher_cap INTEGER NOT NULL DEFAULT 0;
UPDATE nodes SET offline_voucher_cap = node_exposure_limit;
"#,
    r#"
-- Nodes the hub vouched for as voucher issuers (kiosks; issue 17 part 1(a)):
-- the number their vouchers' serials carry (store/voucher.rs).
CREATE TABLE voucher_issuers (
    issuer INTEGER PRIMARY KEY CHECK (issuer BETWEEN 1 AND 32767),
    node BLOB NOT NULL UNIQUE REFERENCES nodes(id),
    municipality INTEGER NOT NULL,
    vouched_at INTEGER NOT NULL,
    withdrawn_at INTEGER
);
"#,
    r#"
-- Vouchers a holder turned their points into at a kiosk (issue 17 part
-- 1(a); store/voucher.rs): one row per issuing transaction, its batch the
-- vouchers' serial batch (unique: a replayed or re-batched issue is refused).
CREATE TABLE kiosk_voucher_batches (
    batch INTEGER PRIMARY KEY,
    issuer INTEGER NOT NULL REFERENCES voucher_issuers(issuer),
    node BLOB NOT NULL,
    tx BLOB NOT NULL UNIQUE,
    account INTEGER NOT NULL REFERENCES accounts(id),
    municipality INTEGER NOT NULL,
    points INTEGER NOT NULL CHECK (points > 0),
    denominations TEXT NOT NULL,
    expires_days INTEGER NOT NULL,
    issued_at INTEGER NOT NULL,
    expired_at INTEGER
);
-- A kiosk voucher's redemption names its kiosk batch, not a hub batch: the
-- redemptions keep no foreign key to voucher_batches (the rules check the
-- batch of either kind before a redemption is recorded).
CREATE TABLE voucher_redemptions_any (
    batch INTEGER NOT NULL,
    idx INTEGER NOT NULL,
    hub_order INTEGER NOT NULL,
    node BLOB NOT NULL,
    seq INTEGER NOT NULL,
    tx BLOB NOT NULL UNIQUE,
    facility TEXT NOT NULL,
    paid INTEGER NOT NULL CHECK (paid >= 0),
    incident INTEGER NOT NULL CHECK (incident IN (0, 1)),
    node_time INTEGER NOT NULL,
    at INTEGER NOT NULL,
    signed BLOB NOT NULL,
    PRIMARY KEY (batch, idx, hub_order)
);
INSERT INTO voucher_redemptions_any
    SELECT batch, idx, hub_order, node, seq, tx, facility, paid, incident, node_time, at, signed
    FROM voucher_redemptions;
DROP TABLE voucher_redemptions;
ALTER TABLE voucher_redemptions_any RENAME TO voucher_redemptions;
CREATE INDEX voucher_redemptions_node ON voucher_redemptions (node);
"#,
    r#"
-- The holder orders carried out (hub/src/holder_order.rs), by the challenge
-- the card signed: a node that kept a signed order cannot play it again.
CREATE TABLE holder_orders_done (
    challenge BLOB PRIMARY KEY CHECK (length(challenge) = 32),
    done_at INTEGER NOT NULL
);
"#,
    r#"
-- Redemptions of kiosk vouchers whose issuing transaction had not reached
-- the hub yet (the kiosk offline): held, paying nothing, until the issue
-- arrives and decides them in hub order (hub/src/voucher/kiosk.rs).
CREATE TABLE voucher_redemptions_held (
    id INTEGER PRIMARY KEY,
    tx BLOB NOT NULL UNIQUE,
    batch INTEGER NOT NULL,
    idx INTEGER NOT NULL,
    node BLOB NOT NULL,
    seq INTEGER NOT NULL,
    municipality INTEGER NOT NULL,
    last_day INTEGER NOT NULL,
    held_at INTEGER NOT NULL,
    reported_at INTEGER,
    signed BLOB NOT NULL
);
CREATE INDEX voucher_redemptions_held_batch ON voucher_redemptions_held (batch, id);
"#,
    r#"
-- Each spend carries the running sum of its signer's spends on the wallet
-- (node, account, municipality) through it, in ledger order: a redeem's
-- spends since its basis are two index seeks (the sum now less the sum at
-- the basis), not a scan of every spend since, which made a long offline
-- run's catch-up quadratic.
ALTER TABLE spends ADD COLUMN cum_points INTEGER NOT NULL DEFAULT 0;
UPDATE spends SET cum_points = w.c
  FROM (SELECT node AS n, seq AS s,
               SUM(points) OVER (PARTITION BY node, account, municipality
                                 ORDER BY ledger_pos, seq) AS c
          FROM spends) AS w
 WHERE spends.node = w.n AND spends.seq = w.s;
DROP INDEX spends_by_wallet;
CREATE INDEX spends_by_wallet ON spends(node, account, municipality, ledger_pos, seq, cum_points);
"#,
];

/// Brings the schema up to date, one migration per transaction; refuses a
/// database written by a newer hub.
pub(super) fn migrate(conn: &mut Connection) -> Result<(), StoreError> {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::LedgerStore;
    use crate::store::sqlite::SqliteStore;
    use mykey_sync_proto::{MunicipalityCode, Scope};

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

    /// A database at `path` migrated up to, not including, the migration
    /// whose SQL contains `marker`, for a test of that migration over rows
    /// written before it.
    fn migrated_to_just_before(path: &std::path::Path, marker: &str) -> Connection {
        let before = MIGRATIONS.iter().position(|m| m.contains(marker)).unwrap();
        let conn = Connection::open(path).unwrap();
        for sql in &MIGRATIONS[..before] {
            conn.execute_batch(sql).unwrap();
        }
        conn.pragma_update(None, "user_version", before as i64)
            .unwrap();
        conn
    }

    #[test]
    fn a_node_enrolled_before_its_voucher_cap_keeps_its_exposure_limit() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("hub.db");
        let id = ed25519_dalek::SigningKey::from_bytes(&[7; 32])
            .verifying_key()
            .to_bytes();
        {
            let conn = migrated_to_just_before(&path, "ADD COLUMN offline_voucher_cap");
            conn.execute(
                "INSERT INTO municipalities (code, name, created_at) VALUES (131059, 'Bunkyo', 1);",
                [],
            )
            .unwrap();
            conn.execute(
                "INSERT INTO facilities (id, municipality, kind, name, created_at)
                     VALUES ('shop-1', 131059, 'shop', 'Shop', 1);",
                [],
            )
            .unwrap();
            conn.execute(
                "INSERT INTO nodes (id, facility, allowed_ops, per_card_offline_limit,
                     node_exposure_limit, pin_threshold, valid_until, enrolled_at, head)
                 VALUES (?1, 'shop-1', 'redeem', 1000, 4321, 500, 99, 1, ?2)",
                rusqlite::params![&id[..], &[0u8; 32][..]],
            )
            .unwrap();
        }
        let mut store = SqliteStore::open(&path).unwrap();
        let mut tx = store.begin_read().unwrap();
        let node = mykey_sync_proto::NodeId::from_bytes(id).unwrap();
        let n = tx.node(&node).unwrap().unwrap();
        assert_eq!(n.policy.offline_voucher_cap.get(), 4321);
    }

    #[test]
    fn the_doors_migration_makes_old_operators_admins_and_old_tokens_read_only() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("hub.db");
        {
            let conn = migrated_to_just_before(&path, "ALTER TABLE operators ADD COLUMN role");
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
    fn the_status_history_migration_starts_empty_beside_existing_rows() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("hub.db");
        {
            let conn = migrated_to_just_before(&path, "CREATE TABLE status_history");
            conn.execute_batch(
                "INSERT INTO municipalities (code, name, created_at) VALUES (131059, 'Bunkyo', 1);",
            )
            .unwrap();
        }
        let mut store = SqliteStore::open(&path).unwrap();
        assert_eq!(store.schema_version().unwrap(), MIGRATIONS.len() as i64);
        assert_eq!(
            store.begin_read().unwrap().latest_history_slot().unwrap(),
            None
        );
        let kept: i64 = store
            .connection()
            .query_row("SELECT COUNT(*) FROM municipalities", [], |r| r.get(0))
            .unwrap();
        assert_eq!(kept, 1);
    }

    #[test]
    fn the_running_sum_of_spends_is_backfilled_and_carried_on() {
        use crate::store::bounds::SpendRow;
        use mykey_sync_proto::{AccountId, CardKey, NodeId, Points, UnixMillis};
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("hub.db");
        let key = |b: u8| {
            ed25519_dalek::SigningKey::from_bytes(&[b; 32])
                .verifying_key()
                .to_bytes()
        };
        let (a, b) = (key(7), key(8));
        // (node, seq, account, points, ledger_pos): two nodes, two wallets,
        // interleaved in ledger order; node a's seq 3 and 4 share a position.
        let rows: Vec<([u8; 32], u64, u64, u64, u64)> = vec![
            (a, 1, 1, 100, 10),
            (b, 1, 1, 7, 11),
            (a, 2, 2, 5, 12),
            (a, 3, 1, 30, 14),
            (a, 4, 1, 2, 14),
            (b, 2, 1, 9, 15),
            (a, 5, 1, 40, 20),
        ];
        {
            let conn = migrated_to_just_before(&path, "ADD COLUMN cum_points");
            for (node, seq, account, points, pos) in &rows {
                conn.execute(
                    "INSERT INTO spends (node, seq, account, municipality, card_issuer, card_serial,
                       points, ledger_pos, period_start, at_risk)
                     VALUES (?1, ?2, ?3, 131059, x'01', x'02', ?4, ?5, 0, 0)",
                    rusqlite::params![&node[..], *seq as i64, *account as i64, *points as i64, *pos as i64],
                )
                .unwrap();
            }
        }
        let mut store = SqliteStore::open(&path).unwrap();
        let m = MunicipalityCode::parse("131059").unwrap();
        let mut tx = store.begin().unwrap();
        // The spends of a new redeem continue the running sum.
        let (node_a, node_b) = (
            NodeId::from_bytes(a).unwrap(),
            NodeId::from_bytes(b).unwrap(),
        );
        tx.record_spend(&SpendRow {
            node: node_a,
            seq: 6,
            account: AccountId::new(1).unwrap(),
            municipality: m,
            card: CardKey::new(vec![1], vec![2]).unwrap(),
            points: Points::new(3).unwrap(),
            ledger_pos: 21,
            period_start: UnixMillis(0),
            at_risk: Points::ZERO,
        })
        .unwrap();
        let mut all = rows.clone();
        all.push((a, 6, 1, 3, 21));
        for (id, raw) in [(node_a, a), (node_b, b)] {
            for account in [1u64, 2, 3] {
                for basis in 0..=22u64 {
                    let want: u64 = all
                        .iter()
                        .filter(|r| r.0 == raw && r.2 == account && r.4 > basis)
                        .map(|r| r.3)
                        .sum();
                    let got = tx
                        .spent_since(&id, AccountId::new(account).unwrap(), m, basis)
                        .unwrap();
                    assert_eq!(got.get(), want, "account {account}, basis {basis}");
                }
            }
        }
    }

    #[test]
    fn the_shard_fill_migration_counts_existing_items_once() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("hub.db");
        {
            let conn = migrated_to_just_before(&path, "CREATE TABLE shard_fill");
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
}
