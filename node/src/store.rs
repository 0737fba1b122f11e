//! The node's store of record: one SQLite file (WAL). Every operation the node
//! reports done was committed here first, with `synchronous=FULL` so a commit
//! survives power loss, not just a process crash.
//!
//! Rows are this module's own types; only wire types derive `Serialize`.

use mykey_sync_proto::{
    AccountId, CardKey, CardStatus, DonationRecipient, FacilityCardNumber, MunicipalityCode,
    MyKeyId, NodeId, NodeLimits, Points, ProgramId, SignedTx, TxId, UnixMillis, codec,
};
use rusqlite::{Connection, OptionalExtension, params};
use std::path::Path;

/// A store failure.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// SQLite failed.
    #[error("node store: {0}")]
    Sqlite(#[from] rusqlite::Error),
    /// A stored row did not decode: the file was damaged or edited.
    #[error("node store holds a damaged row in {table}: {detail}")]
    Corrupt {
        /// Which table.
        table: &'static str,
        /// What was wrong.
        detail: String,
    },
    /// The file could not be created.
    #[error(
        "cannot create the node store {path}: {source}; check the data directory's permissions"
    )]
    Create {
        /// The file.
        path: std::path::PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// The file was written by a newer version.
    #[error(
        "node store schema version {found} is newer than this build ({supported}): upgrade mykey-node"
    )]
    TooNew {
        /// Found.
        found: i64,
        /// Supported.
        supported: i64,
    },
}

const MIGRATIONS: &[&str] = &[
    // 1: the initial schema.
    "CREATE TABLE meta (k TEXT PRIMARY KEY, v BLOB NOT NULL);
     CREATE TABLE outbox (
        seq INTEGER PRIMARY KEY,
        tx_id BLOB NOT NULL UNIQUE,
        bytes BLOB NOT NULL,
        kind TEXT NOT NULL,
        created_at INTEGER NOT NULL,
        card BLOB,
        account INTEGER,
        municipality INTEGER,
        points INTEGER NOT NULL DEFAULT 0,
        status TEXT NOT NULL DEFAULT 'pending',
        reason TEXT,
        ledger_pos INTEGER,
        debt_created INTEGER,
        receipt_at INTEGER
     );
     CREATE INDEX outbox_pending ON outbox(status, account, municipality);
     CREATE INDEX outbox_pending_card ON outbox(status, card);
     CREATE TABLE cards (
        card BLOB PRIMARY KEY,
        account INTEGER NOT NULL,
        my_key_id TEXT NOT NULL,
        municipality INTEGER NOT NULL
     ) WITHOUT ROWID;
     CREATE INDEX cards_account ON cards(account);
     CREATE TABLE card_status (card BLOB PRIMARY KEY, status TEXT NOT NULL) WITHOUT ROWID;
     CREATE TABLE facility_cards (
        account INTEGER NOT NULL,
        number TEXT NOT NULL,
        state TEXT NOT NULL,
        PRIMARY KEY (account, number)
     ) WITHOUT ROWID;
     CREATE TABLE balances (
        account INTEGER NOT NULL,
        municipality INTEGER NOT NULL,
        balance INTEGER NOT NULL,
        debt INTEGER NOT NULL,
        ledger_pos INTEGER NOT NULL,
        PRIMARY KEY (account, municipality)
     ) WITHOUT ROWID;
     CREATE TABLE progress (node BLOB PRIMARY KEY, through_seq INTEGER NOT NULL) WITHOUT ROWID;
     CREATE TABLE revoked_nodes (node BLOB PRIMARY KEY) WITHOUT ROWID;
     CREATE TABLE rejections (
        tx_id BLOB PRIMARY KEY, node BLOB NOT NULL, seq INTEGER NOT NULL,
        reason TEXT NOT NULL, at INTEGER NOT NULL
     ) WITHOUT ROWID;",
    // 2: transactions of LAN peers (signature verified on receipt), pending
    // until the hub's progress fact for their signer passes their seq.
    "CREATE TABLE peer_txs (
        node BLOB NOT NULL,
        seq INTEGER NOT NULL,
        tx_id BLOB NOT NULL UNIQUE,
        bytes BLOB NOT NULL,
        kind TEXT NOT NULL,
        account INTEGER,
        municipality INTEGER,
        points INTEGER NOT NULL DEFAULT 0,
        received_at INTEGER NOT NULL,
        PRIMARY KEY (node, seq)
     ) WITHOUT ROWID;
     CREATE INDEX peer_txs_account ON peer_txs(account, municipality);",
    // The hub's UpcomingExpiry facts: the earliest-expiring points per wallet.
    "CREATE TABLE expiries (
        account INTEGER NOT NULL,
        municipality TEXT NOT NULL,
        points INTEGER NOT NULL,
        expires_at INTEGER NOT NULL,
        PRIMARY KEY (account, municipality)
     ) WITHOUT ROWID;",
    // Strict mode: this node's spend rights (points it may still spend per
    // wallet, the part of them received from LAN peers, which it may spend
    // but not pass on, and the hub's latest right id for it), and the grants
    // and transfers already counted, so each adds exactly once.
    "CREATE TABLE rights (
        account INTEGER NOT NULL,
        municipality INTEGER NOT NULL,
        points INTEGER NOT NULL,
        received INTEGER NOT NULL DEFAULT 0,
        right_id INTEGER NOT NULL DEFAULT 0,
        PRIMARY KEY (account, municipality)
     ) WITHOUT ROWID;
     CREATE TABLE right_events (
        id BLOB PRIMARY KEY,
        kind TEXT NOT NULL,
        points INTEGER NOT NULL,
        at INTEGER NOT NULL
     ) WITHOUT ROWID;",
    // The replicated cache: each shard's automerge document as a full save
    // followed by incremental chunks, per epoch; the sync state per peer and
    // shard; what the node holds of each shard (epoch, buckets, the hub's
    // last write it has synced); and the per-key hub_seq high-water mark, so
    // an older genuine fact a peer rolls a key back to changes nothing.
    "CREATE TABLE shard_docs (
        shard BLOB NOT NULL,
        epoch INTEGER NOT NULL,
        chunk INTEGER NOT NULL,
        bytes BLOB NOT NULL,
        PRIMARY KEY (shard, epoch, chunk)
     ) WITHOUT ROWID;
     CREATE TABLE shard_states (
        peer BLOB NOT NULL,
        shard BLOB NOT NULL,
        epoch INTEGER NOT NULL,
        state BLOB NOT NULL,
        PRIMARY KEY (peer, shard)
     ) WITHOUT ROWID;
     CREATE TABLE shards_held (
        shard BLOB PRIMARY KEY,
        epoch INTEGER NOT NULL,
        buckets INTEGER NOT NULL,
        last_seq INTEGER NOT NULL
     ) WITHOUT ROWID;
     CREATE TABLE item_marks (key TEXT PRIMARY KEY, hub_seq INTEGER NOT NULL) WITHOUT ROWID;",
    // The oldest pending transaction (the receipted position, asked on every
    // sync round and LAN offer) in one index step, not a scan of every
    // pending row: a stall offline all day holds thousands.
    "CREATE INDEX outbox_status_seq ON outbox(status, seq);",
    // The hub-signed grant of each spend right, so a right given to a LAN
    // peer travels with the grant it comes from (the peer checks it).
    "CREATE TABLE right_grants (
        right_id INTEGER PRIMARY KEY,
        account INTEGER NOT NULL,
        municipality INTEGER NOT NULL,
        fact BLOB NOT NULL
     );
     CREATE TABLE lan_rosters (
        municipality INTEGER NOT NULL,
        grp TEXT NOT NULL,
        members BLOB NOT NULL,
        hub_seq INTEGER NOT NULL,
        PRIMARY KEY (municipality, grp)
     ) WITHOUT ROWID;",
    // LAN trust: each roster's members one per row (from the rosters already
    // held), so whether a roster names both this node and a peer is an index
    // lookup; what each sender already gave this node under each of its
    // hub-granted rights; the rights this node credited from peers, by the
    // seq of its own RightAccept, so a rejected acceptance withdraws exactly
    // that; and the hub's chain-level refusals of peers' transactions this
    // node carried (from that seq on, the signer's spends no longer count).
    "CREATE TABLE lan_members (
        municipality INTEGER NOT NULL,
        grp TEXT NOT NULL,
        node BLOB NOT NULL,
        PRIMARY KEY (municipality, grp, node)
     ) WITHOUT ROWID;
     CREATE INDEX lan_members_node ON lan_members(node);
     WITH RECURSIVE k(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM k WHERE i < 99)
     INSERT OR IGNORE INTO lan_members(municipality, grp, node)
        SELECT r.municipality, r.grp, substr(r.members, 32 * k.i + 1, 32)
        FROM lan_rosters r, k WHERE 32 * k.i < length(r.members);
     CREATE TABLE right_tally (
        sender BLOB NOT NULL,
        right_id INTEGER NOT NULL,
        points INTEGER NOT NULL,
        PRIMARY KEY (sender, right_id)
     ) WITHOUT ROWID;
     CREATE TABLE right_credits (
        accept_seq INTEGER PRIMARY KEY,
        sender BLOB NOT NULL,
        right_id INTEGER NOT NULL,
        account INTEGER NOT NULL,
        municipality INTEGER NOT NULL,
        points INTEGER NOT NULL,
        withdrawn_at INTEGER,
        shortfall INTEGER,
        reason TEXT
     );
     CREATE TABLE peer_refusals (
        node BLOB PRIMARY KEY,
        seq INTEGER NOT NULL,
        reason TEXT NOT NULL,
        at INTEGER NOT NULL
     ) WITHOUT ROWID;",
    // The offline rules' sums of own pending redeems, kept by triggers on
    // the outbox, so a redeem reads three rows instead of summing every
    // pending redeem: a day offline holds thousands, and summing them made
    // each redeem slower than the last. The triggers follow every insert,
    // status change and delete, so the sums cannot drift from the outbox
    // whatever path changes a row. One table holds the three kinds of sum
    // (in all: card x'' and account 0; per wallet: card x''; per card:
    // account 0; account ids start at 1), so that while few cards are
    // pending a redeem's three updates touch one page, not three. The two
    // indexes that served the sums go.
    "CREATE TABLE pending_sums (
        card BLOB NOT NULL,
        account INTEGER NOT NULL,
        municipality INTEGER NOT NULL,
        points INTEGER NOT NULL,
        PRIMARY KEY (card, account, municipality)
     ) WITHOUT ROWID;
     INSERT INTO pending_sums(card, account, municipality, points)
        SELECT x'', 0, 0, sum(points) FROM outbox
        WHERE status = 'pending' AND kind = 'redeem' HAVING count(*) > 0
        UNION ALL
        SELECT x'', account, municipality, sum(points) FROM outbox
        WHERE status = 'pending' AND kind = 'redeem' GROUP BY account, municipality
        UNION ALL
        SELECT card, 0, 0, sum(points) FROM outbox
        WHERE status = 'pending' AND kind = 'redeem' GROUP BY card;
     CREATE TRIGGER outbox_pending_insert AFTER INSERT ON outbox
     WHEN NEW.status = 'pending' AND NEW.kind = 'redeem' BEGIN
        INSERT INTO pending_sums(card, account, municipality, points)
           VALUES (x'', 0, 0, NEW.points), (x'', NEW.account, NEW.municipality, NEW.points),
                  (NEW.card, 0, 0, NEW.points)
           ON CONFLICT(card, account, municipality) DO UPDATE SET points = points + excluded.points;
     END;
     CREATE TRIGGER outbox_pending_leave AFTER UPDATE OF status, kind, card, account, municipality, points ON outbox
     WHEN OLD.status = 'pending' AND OLD.kind = 'redeem' BEGIN
        UPDATE pending_sums SET points = points - OLD.points
           WHERE card = x'' AND account = 0 AND municipality = 0;
        UPDATE pending_sums SET points = points - OLD.points
           WHERE card = x'' AND account = OLD.account AND municipality = OLD.municipality;
        UPDATE pending_sums SET points = points - OLD.points
           WHERE card = OLD.card AND account = 0 AND municipality = 0;
        DELETE FROM pending_sums WHERE points = 0 AND card = x''
           AND account = OLD.account AND municipality = OLD.municipality;
        DELETE FROM pending_sums WHERE points = 0 AND card = OLD.card
           AND account = 0 AND municipality = 0;
     END;
     CREATE TRIGGER outbox_pending_enter AFTER UPDATE OF status, kind, card, account, municipality, points ON outbox
     WHEN NEW.status = 'pending' AND NEW.kind = 'redeem' BEGIN
        INSERT INTO pending_sums(card, account, municipality, points)
           VALUES (x'', 0, 0, NEW.points), (x'', NEW.account, NEW.municipality, NEW.points),
                  (NEW.card, 0, 0, NEW.points)
           ON CONFLICT(card, account, municipality) DO UPDATE SET points = points + excluded.points;
     END;
     CREATE TRIGGER outbox_pending_delete AFTER DELETE ON outbox
     WHEN OLD.status = 'pending' AND OLD.kind = 'redeem' BEGIN
        UPDATE pending_sums SET points = points - OLD.points
           WHERE card = x'' AND account = 0 AND municipality = 0;
        UPDATE pending_sums SET points = points - OLD.points
           WHERE card = x'' AND account = OLD.account AND municipality = OLD.municipality;
        UPDATE pending_sums SET points = points - OLD.points
           WHERE card = OLD.card AND account = 0 AND municipality = 0;
        DELETE FROM pending_sums WHERE points = 0 AND card = x''
           AND account = OLD.account AND municipality = OLD.municipality;
        DELETE FROM pending_sums WHERE points = 0 AND card = OLD.card
           AND account = 0 AND municipality = 0;
     END;
     DROP INDEX outbox_pending;
     DROP INDEX outbox_pending_card;",
    // The hub's redeemed bitmaps of voucher batches (issue 17), per chunk of
    // 8,192 indices, merged by OR as they arrive (hub or LAN).
    "CREATE TABLE voucher_marks (
        batch INTEGER NOT NULL,
        chunk INTEGER NOT NULL,
        cancelled INTEGER NOT NULL,
        bits BLOB NOT NULL,
        PRIMARY KEY (batch, chunk)
     ) WITHOUT ROWID;",
    // Donations (issue 19): the municipality's donation programmes as the
    // hub last told them (a kiosk offers the open ones, offline too), and a
    // pending donation counted in its wallet's pending sum, so a counter
    // offline never spends points a donation already gave. Only the wallet's
    // sum: a donation the hub finds beyond the balance is refused whole, so
    // it puts nothing at risk and stays out of the node's exposure and the
    // per-card sum.
    "CREATE TABLE donation_programmes (
        programme TEXT PRIMARY KEY,
        municipality INTEGER NOT NULL,
        recipient TEXT NOT NULL,
        open INTEGER NOT NULL,
        hub_seq INTEGER NOT NULL
     ) WITHOUT ROWID;
     INSERT INTO pending_sums(card, account, municipality, points)
        SELECT x'', account, municipality, sum(points) FROM outbox
        WHERE status = 'pending' AND kind = 'donation' GROUP BY account, municipality
        ON CONFLICT(card, account, municipality) DO UPDATE SET points = points + excluded.points;
     CREATE TRIGGER outbox_donation_insert AFTER INSERT ON outbox
     WHEN NEW.status = 'pending' AND NEW.kind = 'donation' BEGIN
        INSERT INTO pending_sums(card, account, municipality, points)
           VALUES (x'', NEW.account, NEW.municipality, NEW.points)
           ON CONFLICT(card, account, municipality) DO UPDATE SET points = points + excluded.points;
     END;
     CREATE TRIGGER outbox_donation_leave AFTER UPDATE OF status, kind, card, account, municipality, points ON outbox
     WHEN OLD.status = 'pending' AND OLD.kind = 'donation' BEGIN
        UPDATE pending_sums SET points = points - OLD.points
           WHERE card = x'' AND account = OLD.account AND municipality = OLD.municipality;
        DELETE FROM pending_sums WHERE points = 0 AND card = x''
           AND account = OLD.account AND municipality = OLD.municipality;
     END;
     CREATE TRIGGER outbox_donation_enter AFTER UPDATE OF status, kind, card, account, municipality, points ON outbox
     WHEN NEW.status = 'pending' AND NEW.kind = 'donation' BEGIN
        INSERT INTO pending_sums(card, account, municipality, points)
           VALUES (x'', NEW.account, NEW.municipality, NEW.points)
           ON CONFLICT(card, account, municipality) DO UPDATE SET points = points + excluded.points;
     END;
     CREATE TRIGGER outbox_donation_delete AFTER DELETE ON outbox
     WHEN OLD.status = 'pending' AND OLD.kind = 'donation' BEGIN
        UPDATE pending_sums SET points = points - OLD.points
           WHERE card = x'' AND account = OLD.account AND municipality = OLD.municipality;
        DELETE FROM pending_sums WHERE points = 0 AND card = x''
           AND account = OLD.account AND municipality = OLD.municipality;
     END;",
    // Kiosk voucher issues (issue 17 part 1(a)) count in their wallet's
    // pending sum like donations, for the same reason: the hub refuses one
    // beyond the balance whole, so it is in neither the exposure nor the
    // per-card sum. No issue was signed before this migration.
    "DROP TRIGGER outbox_donation_insert;
     DROP TRIGGER outbox_donation_leave;
     DROP TRIGGER outbox_donation_enter;
     DROP TRIGGER outbox_donation_delete;
     CREATE TRIGGER outbox_wallet_only_insert AFTER INSERT ON outbox
     WHEN NEW.status = 'pending' AND NEW.kind IN ('donation', 'voucher-issue') BEGIN
        INSERT INTO pending_sums(card, account, municipality, points)
           VALUES (x'', NEW.account, NEW.municipality, NEW.points)
           ON CONFLICT(card, account, municipality) DO UPDATE SET points = points + excluded.points;
     END;
     CREATE TRIGGER outbox_wallet_only_leave AFTER UPDATE OF status, kind, card, account, municipality, points ON outbox
     WHEN OLD.status = 'pending' AND OLD.kind IN ('donation', 'voucher-issue') BEGIN
        UPDATE pending_sums SET points = points - OLD.points
           WHERE card = x'' AND account = OLD.account AND municipality = OLD.municipality;
        DELETE FROM pending_sums WHERE points = 0 AND card = x''
           AND account = OLD.account AND municipality = OLD.municipality;
     END;
     CREATE TRIGGER outbox_wallet_only_enter AFTER UPDATE OF status, kind, card, account, municipality, points ON outbox
     WHEN NEW.status = 'pending' AND NEW.kind IN ('donation', 'voucher-issue') BEGIN
        INSERT INTO pending_sums(card, account, municipality, points)
           VALUES (x'', NEW.account, NEW.municipality, NEW.points)
           ON CONFLICT(card, account, municipality) DO UPDATE SET points = points + excluded.points;
     END;
     CREATE TRIGGER outbox_wallet_only_delete AFTER DELETE ON outbox
     WHEN OLD.status = 'pending' AND OLD.kind IN ('donation', 'voucher-issue') BEGIN
        UPDATE pending_sums SET points = points - OLD.points
           WHERE card = x'' AND account = OLD.account AND municipality = OLD.municipality;
        DELETE FROM pending_sums WHERE points = 0 AND card = x''
           AND account = OLD.account AND municipality = OLD.municipality;
     END;",
];

/// The conditions under which a LAN peer's stored transaction `p` still
/// counts (as a pending spend) and is still carried to the hub: the hub has
/// not reported it processed, its signer is not revoked, the hub did not
/// refuse the signer's chain at or before it, and a LAN roster names both
/// its signer and this node.
macro_rules! live_peer_tx {
    () => {
        "p.seq > coalesce((SELECT g.through_seq FROM progress g WHERE g.node = p.node), 0)
         AND NOT EXISTS (SELECT 1 FROM revoked_nodes v WHERE v.node = p.node)
         AND NOT EXISTS (SELECT 1 FROM peer_refusals f WHERE f.node = p.node AND p.seq >= f.seq)
         AND EXISTS (SELECT 1 FROM lan_members a JOIN lan_members b
                       ON b.municipality = a.municipality AND b.grp = a.grp
                     WHERE a.node = p.node AND b.node = (SELECT v FROM meta WHERE k = 'node'))"
    };
}

/// What the node holds of a shard.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeldShard {
    /// The epoch of the document it serves from.
    pub epoch: u32,
    /// The scope's bucket count in that epoch.
    pub buckets: u16,
    /// The hub's last write to it that the node has synced.
    pub last_seq: u64,
}

/// What the node knows of a card.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CardRow {
    /// The holder's account.
    pub account: AccountId,
    /// The holder's alias.
    pub my_key_id: MyKeyId,
    /// The holder's base municipality.
    pub municipality: MunicipalityCode,
}

/// A facility card number and whether the hub has confirmed it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NumberRow {
    /// The number.
    pub number: FacilityCardNumber,
    /// False while this node's link transaction is unconfirmed.
    pub confirmed: bool,
}

/// An outbox transaction's state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutboxRow {
    /// Seq.
    pub seq: u64,
    /// Id.
    pub tx_id: TxId,
    /// Kind name.
    pub kind: String,
    /// Signed at.
    pub created_at: UnixMillis,
    /// `pending`, `accepted` or `rejected`.
    pub status: String,
    /// Rejection reason (or, while pending, why the hub has not processed it).
    pub reason: Option<String>,
}

/// Counts for status displays.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OutboxCounts {
    /// Not yet receipted.
    pub pending: u64,
    /// Applied by the hub.
    pub accepted: u64,
    /// Rejected with a reason.
    pub rejected: u64,
    /// Signed time of the oldest pending one.
    pub oldest_pending_at: Option<UnixMillis>,
    /// Time of the last receipt stored.
    pub last_receipt_at: Option<UnixMillis>,
}

/// A right credited to this node from a LAN peer's transfer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RightCredit {
    /// The node that gave it.
    pub sender: NodeId,
    /// The sender's hub-granted right it came from.
    pub right_id: u64,
    /// The holder's account.
    pub account: AccountId,
    /// Whose points.
    pub municipality: MunicipalityCode,
    /// How many points were credited.
    pub points: Points,
}

/// A credited right as stored, with its withdrawal time if any.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredCredit {
    /// The credit.
    pub credit: RightCredit,
    /// When it was withdrawn (`None`: it stands).
    pub withdrawn_at: Option<UnixMillis>,
}

/// A right withdrawn because the hub rejected this node's acceptance of it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WithdrawnRight {
    /// This node's RightAccept that the hub rejected.
    pub accept_seq: u64,
    /// What had been credited.
    pub credit: RightCredit,
    /// Points of it already spent, which could not be taken back (the right
    /// went to zero): spends the hub holds beyond this node's reservation.
    pub shortfall: Points,
    /// The hub's reason.
    pub reason: String,
    /// When.
    pub at: UnixMillis,
}

/// The store.
pub struct Store {
    conn: Connection,
    limits_memo: LimitsMemo,
}

/// The node's limits last decoded, with the stored bytes they came from.
/// Decoding them validates the node key inside (an Edwards point
/// decompression, about half a redeem's CPU time), and every lookup and
/// redeem reads them while they change only when the hub sends new ones.
/// The bytes are still read from the file each time and compared, so a
/// change by another process is seen at once.
type LimitsMemo = std::cell::RefCell<Option<(Vec<u8>, NodeLimits)>>;

fn i(v: u64) -> i64 {
    // Every stored integer is a seq, a time, an id or points ≤ Points::MAX:
    // all far below i64::MAX.
    i64::try_from(v).unwrap_or(i64::MAX)
}

fn u(v: i64) -> u64 {
    u64::try_from(v).unwrap_or(0)
}

/// Points stored in `table`, refused as corrupt past `Points::MAX`.
/// The meta key of a hub's `VoucherIssuer` statement.
pub(crate) fn voucher_issuer_key(municipality: MunicipalityCode, issuer: u16) -> String {
    format!("voucher_issuer/{municipality}/{issuer}")
}

fn stored_points(table: &'static str, v: i64) -> Result<Points, StoreError> {
    Points::new(u(v)).map_err(|e| corrupt(table, e))
}

fn corrupt(table: &'static str, detail: impl ToString) -> StoreError {
    StoreError::Corrupt {
        table,
        detail: detail.to_string(),
    }
}

fn credit_row(
    sender: Vec<u8>,
    right_id: i64,
    account: i64,
    m: u32,
    points: i64,
) -> Result<RightCredit, StoreError> {
    let sender: [u8; 32] = sender
        .try_into()
        .map_err(|_| corrupt("right_credits", "sender is not 32 bytes"))?;
    Ok(RightCredit {
        sender: NodeId::from_bytes(sender).map_err(|e| corrupt("right_credits", e))?,
        right_id: u(right_id),
        account: AccountId::new(u(account)).map_err(|e| corrupt("right_credits", e))?,
        municipality: MunicipalityCode::try_from(m).map_err(|e| corrupt("right_credits", e))?,
        points: stored_points("right_credits", points)?,
    })
}

impl Store {
    /// Opens (creating and migrating) the store at `path`. A new file is
    /// created with mode 0600 (card-to-account links and balances are
    /// nobody else's business); SQLite gives its `-wal` and `-shm` files the
    /// same mode.
    pub fn open(path: &Path) -> Result<Store, StoreError> {
        use std::os::unix::fs::OpenOptionsExt;
        match std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(path)
        {
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
            Err(source) => {
                return Err(StoreError::Create {
                    path: path.to_owned(),
                    source,
                });
            }
        }
        let conn = Connection::open(path)?;
        Self::init(conn)
    }

    fn init(mut conn: Connection) -> Result<Store, StoreError> {
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "FULL")?;
        conn.pragma_update(None, "foreign_keys", "ON")?;
        conn.busy_timeout(std::time::Duration::from_secs(5))?;
        // Every statement is cached (rusqlite keeps 16 by default): room for all.
        conn.set_prepared_statement_cache_capacity(128);
        // Plans never depend on bound values, so cached statements are not
        // re-prepared when a value changes (see the hub store).
        conn.set_db_config(
            rusqlite::config::DbConfig::SQLITE_DBCONFIG_ENABLE_QPSG,
            true,
        )?;
        let version: i64 = conn.pragma_query_value(None, "user_version", |r| r.get(0))?;
        let supported = MIGRATIONS.len() as i64;
        if version > supported {
            return Err(StoreError::TooNew {
                found: version,
                supported,
            });
        }
        for (n, sql) in MIGRATIONS.iter().enumerate().skip(version as usize) {
            let tx = conn.transaction()?;
            tx.execute_batch(sql)?;
            tx.pragma_update(None, "user_version", n as i64 + 1)?;
            tx.commit()?;
        }
        Ok(Store {
            conn,
            limits_memo: LimitsMemo::default(),
        })
    }

    /// Runs `f` in one write transaction, committed durably before returning.
    pub fn write<T, E: From<StoreError>>(
        &mut self,
        f: impl FnOnce(&Writer<'_>) -> Result<T, E>,
    ) -> Result<T, E> {
        let tx = self
            .conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
            .map_err(StoreError::from)?;
        let out = f(&Writer {
            tx: &tx,
            limits_memo: &self.limits_memo,
        })?;
        tx.commit().map_err(StoreError::from)?;
        Ok(out)
    }

    /// A read view.
    pub fn read(&self) -> Reader<'_> {
        Reader {
            conn: &self.conn,
            limits_memo: &self.limits_memo,
        }
    }
}

/// Queries, on the store or inside a write transaction.
pub struct Reader<'a> {
    conn: &'a Connection,
    limits_memo: &'a LimitsMemo,
}

/// Writes inside one transaction; reads see the writes.
pub struct Writer<'a> {
    tx: &'a rusqlite::Transaction<'a>,
    limits_memo: &'a LimitsMemo,
}

impl Writer<'_> {
    /// Reads inside this transaction.
    pub fn read(&self) -> Reader<'_> {
        Reader {
            conn: self.tx,
            limits_memo: self.limits_memo,
        }
    }

    /// Appends a chunk (a full save when `replace`, dropping earlier chunks)
    /// to a shard document of an epoch.
    pub fn put_shard_chunk(
        &self,
        shard: &[u8],
        epoch: u32,
        bytes: &[u8],
        replace: bool,
    ) -> Result<(), StoreError> {
        if replace {
            self.tx
                .prepare_cached("DELETE FROM shard_docs WHERE shard = ?1 AND epoch = ?2")?
                .execute(params![shard, epoch])?;
        }
        self.tx
            .prepare_cached(
                "INSERT INTO shard_docs(shard, epoch, chunk, bytes)
             VALUES (?1, ?2, (SELECT COALESCE(MAX(chunk), 0) + 1 FROM shard_docs
                              WHERE shard = ?1 AND epoch = ?2), ?3)",
            )?
            .execute(params![shard, epoch, bytes])?;
        Ok(())
    }

    /// Stores the sync state with `peer` about a shard.
    pub fn put_shard_state(
        &self,
        peer: &NodeId,
        shard: &[u8],
        epoch: u32,
        state: &[u8],
    ) -> Result<(), StoreError> {
        self.tx
            .prepare_cached(
                "INSERT INTO shard_states(peer, shard, epoch, state) VALUES (?1, ?2, ?3, ?4)
             ON CONFLICT(peer, shard) DO UPDATE SET epoch = excluded.epoch, state = excluded.state",
            )?
            .execute(params![peer.as_bytes().as_slice(), shard, epoch, state])?;
        Ok(())
    }

    /// Records what the node holds of a shard; a new epoch drops the older
    /// epochs' documents and sync states.
    pub fn put_held_shard(&self, shard: &[u8], held: &HeldShard) -> Result<(), StoreError> {
        self.tx
            .prepare_cached(
                "INSERT INTO shards_held(shard, epoch, buckets, last_seq) VALUES (?1, ?2, ?3, ?4)
             ON CONFLICT(shard) DO UPDATE SET epoch = excluded.epoch,
               buckets = excluded.buckets, last_seq = excluded.last_seq",
            )?
            .execute(params![shard, held.epoch, held.buckets, i(held.last_seq)])?;
        self.tx
            .prepare_cached("DELETE FROM shard_docs WHERE shard = ?1 AND epoch < ?2")?
            .execute(params![shard, held.epoch])?;
        self.tx
            .prepare_cached("DELETE FROM shard_states WHERE shard = ?1 AND epoch < ?2")?
            .execute(params![shard, held.epoch])?;
        Ok(())
    }

    /// Raises a key's high-water mark; false (and nothing changed) when the
    /// key already holds `hub_seq` or a later fact.
    pub fn raise_item_mark(&self, key: &str, hub_seq: u64) -> Result<bool, StoreError> {
        let n = self
            .tx
            .prepare_cached(
                "INSERT INTO item_marks(key, hub_seq) VALUES (?1, ?2)
             ON CONFLICT(key) DO UPDATE SET hub_seq = excluded.hub_seq
             WHERE excluded.hub_seq > item_marks.hub_seq",
            )?
            .execute(params![key, i(hub_seq)])?;
        Ok(n > 0)
    }

    /// Sets a meta value.
    pub fn set_meta(&self, k: &str, v: &[u8]) -> Result<(), StoreError> {
        self.tx
            .prepare_cached(
                "INSERT INTO meta(k, v) VALUES (?1, ?2) ON CONFLICT(k) DO UPDATE SET v = excluded.v",
            )?
            .execute(params![k, v])?;
        Ok(())
    }

    /// Appends a signed transaction to the outbox.
    #[allow(clippy::too_many_arguments)]
    pub fn append_outbox(
        &self,
        seq: u64,
        tx: &SignedTx,
        kind: &str,
        created_at: UnixMillis,
        card: Option<&CardKey>,
        account: Option<AccountId>,
        municipality: Option<MunicipalityCode>,
        points: Points,
    ) -> Result<(), StoreError> {
        self.tx
            .prepare_cached(
                "INSERT INTO outbox(seq, tx_id, bytes, kind, created_at, card, account, municipality, points)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
            )?
            .execute(params![
                i(seq),
                tx.id().as_bytes(),
                tx.to_bytes(),
                kind,
                i(created_at.0),
                card.map(codec::encode),
                account.map(|a| i(a.get())),
                municipality.map(|m| m.get()),
                i(points.get()),
            ])?;
        Ok(())
    }

    /// Notes why the hub could not process an own transaction that stays
    /// pending (a chain-level refusal: the seq was not consumed).
    pub fn set_outbox_reason(&self, seq: u64, reason: &str) -> Result<(), StoreError> {
        self.tx
            .prepare_cached("UPDATE outbox SET reason = ?2 WHERE seq = ?1")?
            .execute(params![i(seq), reason])?;
        Ok(())
    }

    /// Records the hub's verdict on an own transaction, matched by seq (and
    /// by id where the hub named it: receipts of acceptances travel without).
    #[allow(clippy::too_many_arguments)]
    pub fn set_outbox_outcome(
        &self,
        seq: u64,
        tx_id: Option<&TxId>,
        status: &str,
        reason: Option<&str>,
        ledger_pos: Option<u64>,
        debt_created: Option<Points>,
        at: UnixMillis,
    ) -> Result<bool, StoreError> {
        let n = self
            .tx
            .prepare_cached(
                "UPDATE outbox SET status = ?3, reason = ?4, ledger_pos = ?5, debt_created = ?6, receipt_at = ?7
             WHERE seq = ?1 AND (?2 IS NULL OR tx_id = ?2)",
            )?
            .execute(params![
                i(seq),
                tx_id.map(|t| t.as_bytes().as_slice()),
                status,
                reason,
                ledger_pos.map(i),
                debt_created.map(|p| i(p.get())),
                i(at.0)
            ])?;
        Ok(n == 1)
    }

    /// Upserts a card registration.
    pub fn put_card(&self, card: &CardKey, row: &CardRow) -> Result<(), StoreError> {
        self.tx
            .prepare_cached(
                "INSERT INTO cards(card, account, my_key_id, municipality) VALUES (?1, ?2, ?3, ?4)
             ON CONFLICT(card) DO UPDATE SET account = excluded.account,
               my_key_id = excluded.my_key_id, municipality = excluded.municipality",
            )?
            .execute(params![
                codec::encode(card),
                i(row.account.get()),
                row.my_key_id.as_str(),
                row.municipality.get()
            ])?;
        Ok(())
    }

    /// Sets a card's status (the deny list is the suspended ones).
    pub fn set_card_status(&self, card: &CardKey, status: CardStatus) -> Result<(), StoreError> {
        self.tx
            .prepare_cached(
                "INSERT INTO card_status(card, status) VALUES (?1, ?2)
             ON CONFLICT(card) DO UPDATE SET status = excluded.status",
            )?
            .execute(params![codec::encode(card), status.name()])?;
        Ok(())
    }

    /// Sets a facility card number's state (`linked`, `pending-link`,
    /// `pending-unlink`) or removes it (`None`).
    pub fn set_number(
        &self,
        account: AccountId,
        number: &FacilityCardNumber,
        state: Option<&str>,
    ) -> Result<(), StoreError> {
        match state {
            Some(s) => self
                .tx
                .prepare_cached(
                    "INSERT INTO facility_cards(account, number, state) VALUES (?1, ?2, ?3)
                 ON CONFLICT(account, number) DO UPDATE SET state = excluded.state",
                )?
                .execute(params![i(account.get()), number.as_str(), s])?,
            None => self
                .tx
                .prepare_cached("DELETE FROM facility_cards WHERE account = ?1 AND number = ?2")?
                .execute(params![i(account.get()), number.as_str()])?,
        };
        Ok(())
    }

    /// Stores a confirmed balance if it is at least as recent as the one held.
    pub fn put_balance(
        &self,
        account: AccountId,
        municipality: MunicipalityCode,
        balance: Points,
        debt: Points,
        ledger_pos: u64,
    ) -> Result<(), StoreError> {
        self.tx
            .prepare_cached(
                "INSERT INTO balances(account, municipality, balance, debt, ledger_pos) VALUES (?1, ?2, ?3, ?4, ?5)
             ON CONFLICT(account, municipality) DO UPDATE SET balance = excluded.balance,
               debt = excluded.debt, ledger_pos = excluded.ledger_pos
             WHERE excluded.ledger_pos >= balances.ledger_pos",
            )?
            .execute(params![
                i(account.get()),
                municipality.get(),
                i(balance.get()),
                i(debt.get()),
                i(ledger_pos)
            ])?;
        Ok(())
    }

    /// Stores the hub's latest word on a wallet's earliest-expiring points
    /// (facts arrive in hub order, so the later one wins).
    pub fn put_expiry(
        &self,
        account: AccountId,
        municipality: MunicipalityCode,
        points: Points,
        expires_at: UnixMillis,
    ) -> Result<(), StoreError> {
        self.tx
            .prepare_cached(
                "INSERT INTO expiries(account, municipality, points, expires_at) VALUES (?1, ?2, ?3, ?4)
             ON CONFLICT(account, municipality) DO UPDATE SET points = excluded.points,
               expires_at = excluded.expires_at",
            )?
            .execute(params![
                i(account.get()),
                municipality.get(),
                i(points.get()),
                i(expires_at.0)
            ])?;
        Ok(())
    }

    /// Records another node's progress at the hub.
    pub fn put_progress(&self, node: &NodeId, through_seq: u64) -> Result<(), StoreError> {
        self.tx
            .prepare_cached(
                "INSERT INTO progress(node, through_seq) VALUES (?1, ?2)
             ON CONFLICT(node) DO UPDATE SET through_seq = max(through_seq, excluded.through_seq)",
            )?
            .execute(params![node.as_bytes(), i(through_seq)])?;
        // The hub processed the signer's chain past a refusal: it is moot.
        self.tx
            .prepare_cached("DELETE FROM peer_refusals WHERE node = ?1 AND seq <= ?2")?
            .execute(params![node.as_bytes(), i(through_seq)])?;
        Ok(())
    }

    /// Adds a node key to the revoked list.
    pub fn put_revoked(&self, node: &NodeId) -> Result<(), StoreError> {
        self.tx
            .prepare_cached("INSERT OR IGNORE INTO revoked_nodes(node) VALUES (?1)")?
            .execute(params![node.as_bytes()])?;
        Ok(())
    }

    /// Stores a LAN peer's transaction (its signature already verified);
    /// a transaction already held is left as it is. True if it was new.
    #[allow(clippy::too_many_arguments)]
    pub fn put_peer_tx(
        &self,
        node: &NodeId,
        seq: u64,
        tx: &SignedTx,
        kind: &str,
        account: Option<AccountId>,
        municipality: Option<MunicipalityCode>,
        points: Points,
        at: UnixMillis,
    ) -> Result<bool, StoreError> {
        let n = self
            .tx
            .prepare_cached(
                "INSERT OR IGNORE INTO peer_txs(node, seq, tx_id, bytes, kind, account, municipality, points, received_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
            )?
            .execute(params![
                node.as_bytes(),
                i(seq),
                tx.id().as_bytes(),
                tx.to_bytes(),
                kind,
                account.map(|a| i(a.get())),
                municipality.map(|m| m.get()),
                i(points.get()),
                i(at.0)
            ])?;
        Ok(n == 1)
    }

    /// Merges a hub bitmap chunk of a voucher batch into what is held (OR;
    /// a cancellation stays).
    pub fn merge_voucher_marks(
        &self,
        batch: u32,
        chunk: u8,
        cancelled: bool,
        bits: &mykey_sync_proto::RedeemedBits,
    ) -> Result<(), StoreError> {
        let (held_cancelled, held) = self.read().voucher_marks(batch, chunk)?.unwrap_or_default();
        self.tx
            .prepare_cached(
                "INSERT INTO voucher_marks(batch, chunk, cancelled, bits) VALUES (?1, ?2, ?3, ?4)
             ON CONFLICT(batch, chunk) DO UPDATE SET cancelled = excluded.cancelled, bits = excluded.bits",
            )?
            .execute(params![
                i64::from(batch),
                i64::from(chunk),
                held_cancelled || cancelled,
                held.or(bits).as_bytes()
            ])?;
        Ok(())
    }

    /// Keeps the hub's word on a donation programme, unless a later one
    /// (higher `hub_seq`) is held already.
    pub fn put_donation_programme(
        &self,
        m: MunicipalityCode,
        programme: &ProgramId,
        recipient: &DonationRecipient,
        open: bool,
        hub_seq: u64,
    ) -> Result<(), StoreError> {
        self.tx
            .prepare_cached(
                "INSERT INTO donation_programmes(programme, municipality, recipient, open, hub_seq)
                 VALUES (?1, ?2, ?3, ?4, ?5)
                 ON CONFLICT(programme) DO UPDATE SET municipality = excluded.municipality,
                    recipient = excluded.recipient, open = excluded.open, hub_seq = excluded.hub_seq
                 WHERE excluded.hub_seq > donation_programmes.hub_seq",
            )?
            .execute(params![
                programme.as_str(),
                m.get(),
                recipient.as_str(),
                open,
                i(hub_seq)
            ])?;
        Ok(())
    }

    /// Marks strict mode on or off for a municipality.
    pub fn set_strict(&self, m: MunicipalityCode, on: bool) -> Result<(), StoreError> {
        self.set_meta(&format!("strict:{m}"), &[u8::from(on)])
    }

    /// Counts a grant or a received transfer once: true if `id` is new.
    pub fn note_right_event(
        &self,
        id: &[u8],
        kind: &str,
        points: Points,
        at: UnixMillis,
    ) -> Result<bool, StoreError> {
        let n = self
            .tx
            .prepare_cached(
                "INSERT OR IGNORE INTO right_events(id, kind, points, at) VALUES (?1, ?2, ?3, ?4)",
            )?
            .execute(params![id, kind, i(points.get()), i(at.0)])?;
        Ok(n == 1)
    }

    /// Adds points to this node's right on a wallet: a hub grant
    /// (`right_id` > 0), or a LAN peer's transfer (`right_id` 0: received).
    pub fn credit_right(
        &self,
        account: AccountId,
        m: MunicipalityCode,
        points: Points,
        right_id: u64,
    ) -> Result<(), StoreError> {
        let received = if right_id == 0 { points.get() } else { 0 };
        self.tx.prepare_cached("INSERT INTO rights(account, municipality, points, received, right_id) VALUES (?1, ?2, ?3, ?4, ?5)
             ON CONFLICT(account, municipality) DO UPDATE SET points = points + excluded.points,
               received = received + excluded.received,
               right_id = CASE WHEN excluded.right_id = 0 THEN right_id ELSE excluded.right_id END")?.execute(params![i(account.get()), m.get(), i(points.get()), i(received), i(right_id)])?;
        Ok(())
    }

    /// Takes points from this node's right on a wallet: a spend (the
    /// received part goes first) or, with `give`, a transfer to a peer
    /// (from the hub-granted part only). The caller checked the right holds
    /// them: taking more is a bug, not bad input.
    pub fn debit_right(
        &self,
        account: AccountId,
        m: MunicipalityCode,
        points: Points,
        give: bool,
    ) -> Result<(), StoreError> {
        let (total, _, own) = self.read().right_parts(account, m)?;
        let room = if give { own } else { total };
        // The caller decided inside this same write transaction, so the
        // right cannot have moved; still, a store edited by another process
        // is an error here, never a panic of the counter loop.
        if room < points {
            return Err(StoreError::Corrupt {
                table: "rights",
                detail: format!("spend right of {account} holds {room}, {points} were to be taken"),
            });
        }
        let from_received = if give {
            0
        } else {
            points.get().min(total.get() - own.get())
        };
        self.tx
            .prepare_cached(
                "UPDATE rights SET points = points - ?3, received = received - ?4
             WHERE account = ?1 AND municipality = ?2",
            )?
            .execute(params![
                i(account.get()),
                m.get(),
                i(points.get()),
                i(from_received)
            ])?;
        Ok(())
    }

    /// Keeps the latest roster of a LAN group (a later hub_seq replaces it;
    /// an empty roster ends the group) and its members one per row; true if
    /// it replaced what was held.
    pub fn put_roster(
        &self,
        m: MunicipalityCode,
        group: &mykey_sync_proto::LanGroup,
        members: &mykey_sync_proto::Roster,
        hub_seq: u64,
    ) -> Result<bool, StoreError> {
        let bytes: Vec<u8> = members
            .members()
            .iter()
            .flat_map(|n| n.as_bytes().to_vec())
            .collect();
        let changed = self
            .tx
            .prepare_cached(
                "INSERT INTO lan_rosters(municipality, grp, members, hub_seq) VALUES (?1, ?2, ?3, ?4)
             ON CONFLICT(municipality, grp) DO UPDATE SET members = excluded.members, hub_seq = excluded.hub_seq
             WHERE excluded.hub_seq > lan_rosters.hub_seq",
            )?
            .execute(params![m.get(), group.as_str(), bytes, i(hub_seq)])?
            > 0;
        if changed {
            self.tx
                .prepare_cached("DELETE FROM lan_members WHERE municipality = ?1 AND grp = ?2")?
                .execute(params![m.get(), group.as_str()])?;
            let mut st = self.tx.prepare_cached(
                "INSERT OR IGNORE INTO lan_members(municipality, grp, node) VALUES (?1, ?2, ?3)",
            )?;
            for n in members.members() {
                st.execute(params![m.get(), group.as_str(), n.as_bytes().as_slice()])?;
            }
        }
        Ok(changed)
    }

    /// Counts `points` more given by `sender` to this node under its right
    /// `right_id`.
    pub fn add_right_tally(
        &self,
        sender: &NodeId,
        right_id: u64,
        points: Points,
    ) -> Result<(), StoreError> {
        self.tx
            .prepare_cached(
                "INSERT INTO right_tally(sender, right_id, points) VALUES (?1, ?2, ?3)
             ON CONFLICT(sender, right_id) DO UPDATE SET points = points + excluded.points",
            )?
            .execute(params![
                sender.as_bytes().as_slice(),
                i(right_id),
                i(points.get())
            ])?;
        Ok(())
    }

    /// Records a right credited from a peer's transfer, acknowledged by this
    /// node's own transaction `accept_seq`.
    pub fn put_right_credit(
        &self,
        accept_seq: u64,
        credit: &RightCredit,
    ) -> Result<(), StoreError> {
        self.tx
            .prepare_cached(
                "INSERT INTO right_credits(accept_seq, sender, right_id, account, municipality, points)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            )?
            .execute(params![
                i(accept_seq),
                credit.sender.as_bytes().as_slice(),
                i(credit.right_id),
                i(credit.account.get()),
                credit.municipality.get(),
                i(credit.points.get())
            ])?;
        Ok(())
    }

    /// Withdraws the right credited with this node's `accept_seq` (the hub
    /// rejected that acceptance): its points leave this node's right, the
    /// received part first; what was already spent of them cannot leave, so
    /// the right goes to zero and the shortfall is kept with the reason.
    /// `None` if no credit was made with that seq or it was withdrawn before.
    pub fn withdraw_right_credit(
        &self,
        accept_seq: u64,
        reason: &str,
        at: UnixMillis,
    ) -> Result<Option<WithdrawnRight>, StoreError> {
        let Some(c) = self.read().right_credit(accept_seq)? else {
            return Ok(None);
        };
        if c.withdrawn_at.is_some() {
            return Ok(None);
        }
        let (total, _, own) = self
            .read()
            .right_parts(c.credit.account, c.credit.municipality)?;
        let received = total.get() - own.get();
        let w = c.credit.points.get();
        let taken = w.min(total.get());
        let shortfall = w - taken;
        let left = total.get() - taken;
        let received_left = received.saturating_sub(w).min(left);
        self.tx
            .prepare_cached(
                "UPDATE rights SET points = ?3, received = ?4 WHERE account = ?1 AND municipality = ?2",
            )?
            .execute(params![
                i(c.credit.account.get()),
                c.credit.municipality.get(),
                i(left),
                i(received_left)
            ])?;
        self.tx
            .prepare_cached(
                "UPDATE right_credits SET withdrawn_at = ?2, shortfall = ?3, reason = ?4 WHERE accept_seq = ?1",
            )?
            .execute(params![i(accept_seq), i(at.0), i(shortfall), reason])?;
        let p = |v: u64| Points::new(v).map_err(|e| corrupt("right_credits", e));
        Ok(Some(WithdrawnRight {
            accept_seq,
            credit: c.credit,
            shortfall: p(shortfall)?,
            reason: reason.to_owned(),
            at,
        }))
    }

    /// Records the hub's chain-level refusal of a peer's transaction this
    /// node carried: from `seq` on, that signer's transactions neither count
    /// nor are carried (until the hub reports its chain processed past it).
    pub fn put_peer_refusal(
        &self,
        node: &NodeId,
        seq: u64,
        reason: &str,
        at: UnixMillis,
    ) -> Result<(), StoreError> {
        self.tx
            .prepare_cached(
                "INSERT INTO peer_refusals(node, seq, reason, at) VALUES (?1, ?2, ?3, ?4)
             ON CONFLICT(node) DO UPDATE SET seq = min(seq, excluded.seq),
               reason = excluded.reason, at = excluded.at",
            )?
            .execute(params![node.as_bytes().as_slice(), i(seq), reason, i(at.0)])?;
        Ok(())
    }

    /// Keeps the hub-signed fact that granted a spend right.
    pub fn put_right_grant(
        &self,
        right_id: u64,
        account: AccountId,
        m: MunicipalityCode,
        fact: &mykey_sync_proto::SignedFact,
    ) -> Result<(), StoreError> {
        self.tx
            .prepare_cached(
                "INSERT OR REPLACE INTO right_grants(right_id, account, municipality, fact) VALUES (?1, ?2, ?3, ?4)",
            )?
            .execute(params![i(right_id), i(account.get()), m.get(), fact.to_bytes()])?;
        Ok(())
    }

    /// Drops this node's right on a wallet (the hub released it).
    pub fn clear_right(&self, account: AccountId, m: MunicipalityCode) -> Result<(), StoreError> {
        self.tx.prepare_cached("UPDATE rights SET points = 0, received = 0 WHERE account = ?1 AND municipality = ?2")?.execute(params![i(account.get()), m.get()])?;
        Ok(())
    }

    /// Stores a rejection of a transaction this node carried for another.
    pub fn put_rejection(
        &self,
        tx_id: &TxId,
        node: &NodeId,
        seq: u64,
        reason: &str,
        at: UnixMillis,
    ) -> Result<(), StoreError> {
        self.tx
            .prepare_cached(
                "INSERT OR REPLACE INTO rejections(tx_id, node, seq, reason, at) VALUES (?1, ?2, ?3, ?4, ?5)",
            )?
            .execute(params![tx_id.as_bytes(), node.as_bytes(), i(seq), reason, i(at.0)])?;
        Ok(())
    }
}

impl Reader<'_> {
    /// The first column of a cached statement's first row, or `None`.
    fn value<T: rusqlite::types::FromSql>(
        &self,
        sql: &str,
        params: impl rusqlite::Params,
    ) -> Result<Option<T>, StoreError> {
        Ok(self
            .conn
            .prepare_cached(sql)?
            .query_row(params, |r| r.get(0))
            .optional()?)
    }

    /// A cached statement's first row as a tuple of its columns, or `None`.
    fn row<T>(&self, sql: &str, params: impl rusqlite::Params) -> Result<Option<T>, StoreError>
    where
        T: for<'r> TryFrom<&'r rusqlite::Row<'r>, Error = rusqlite::Error>,
    {
        Ok(self
            .conn
            .prepare_cached(sql)?
            .query_row(params, |r| T::try_from(r))
            .optional()?)
    }

    /// Every row of a cached statement as a tuple of its columns.
    fn rows<T>(&self, sql: &str, params: impl rusqlite::Params) -> Result<Vec<T>, StoreError>
    where
        T: for<'r> TryFrom<&'r rusqlite::Row<'r>, Error = rusqlite::Error>,
    {
        let mut st = self.conn.prepare_cached(sql)?;
        let rows = st.query_map(params, |r| T::try_from(r))?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Whether a cached statement returns a row.
    fn exists(&self, sql: &str, params: impl rusqlite::Params) -> Result<bool, StoreError> {
        Ok(self
            .conn
            .prepare_cached(sql)?
            .query_row(params, |_| Ok(()))
            .optional()?
            .is_some())
    }

    /// A shard document's stored bytes (its chunks concatenated, which
    /// automerge loads as one) and how many chunks there are.
    pub fn shard_chunks(&self, shard: &[u8], epoch: u32) -> Result<(Vec<u8>, usize), StoreError> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT bytes FROM shard_docs WHERE shard = ?1 AND epoch = ?2 ORDER BY chunk",
        )?;
        let mut rows = stmt.query(params![shard, epoch])?;
        let (mut out, mut n) = (vec![], 0);
        while let Some(r) = rows.next()? {
            out.extend(r.get::<_, Vec<u8>>(0)?);
            n += 1;
        }
        Ok((out, n))
    }

    /// The stored sync state with `peer` about a shard in `epoch`.
    pub fn shard_state(
        &self,
        peer: &NodeId,
        shard: &[u8],
        epoch: u32,
    ) -> Result<Option<Vec<u8>>, StoreError> {
        self.value(
            "SELECT state FROM shard_states WHERE peer = ?1 AND shard = ?2 AND epoch = ?3",
            params![peer.as_bytes().as_slice(), shard, epoch],
        )
    }

    /// What the node holds of a shard.
    pub fn held_shard(&self, shard: &[u8]) -> Result<Option<HeldShard>, StoreError> {
        let row: Option<(u32, u16, i64)> = self.row(
            "SELECT epoch, buckets, last_seq FROM shards_held WHERE shard = ?1",
            params![shard],
        )?;
        Ok(row.map(|(epoch, buckets, s)| HeldShard {
            epoch,
            buckets,
            last_seq: u(s),
        }))
    }

    /// Every shard held (encoded shard id, what is held).
    pub fn held_shards(&self) -> Result<Vec<(Vec<u8>, HeldShard)>, StoreError> {
        let mut stmt = self
            .conn
            .prepare_cached("SELECT shard, epoch, buckets, last_seq FROM shards_held")?;
        let rows = stmt.query_map([], |r| {
            Ok((
                r.get::<_, Vec<u8>>(0)?,
                HeldShard {
                    epoch: r.get(1)?,
                    buckets: r.get(2)?,
                    last_seq: u(r.get(3)?),
                },
            ))
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Epochs of a shard with a stored document.
    pub fn shard_doc_epochs(&self, shard: &[u8]) -> Result<Vec<u32>, StoreError> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT DISTINCT epoch FROM shard_docs WHERE shard = ?1 ORDER BY epoch",
        )?;
        let rows = stmt.query_map(params![shard], |r| r.get(0))?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// A key's high-water mark (0: none).
    pub fn item_mark(&self, key: &str) -> Result<u64, StoreError> {
        let v: Option<i64> = self.value(
            "SELECT hub_seq FROM item_marks WHERE key = ?1",
            params![key],
        )?;
        Ok(v.map_or(0, u))
    }

    /// A meta value.
    pub fn meta(&self, k: &str) -> Result<Option<Vec<u8>>, StoreError> {
        self.value("SELECT v FROM meta WHERE k = ?1", [k])
    }

    /// A meta value as a number (0 when absent).
    pub fn meta_u64(&self, k: &str) -> Result<u64, StoreError> {
        Ok(match self.meta(k)? {
            Some(v) => u64::from_be_bytes(
                v.try_into()
                    .map_err(|_| corrupt("meta", format!("{k} is not 8 bytes")))?,
            ),
            None => 0,
        })
    }

    /// The node's limits (its certificate) if the hub sent them.
    pub fn limits(&self) -> Result<Option<NodeLimits>, StoreError> {
        let Some(bytes) = self.meta("limits")? else {
            return Ok(None);
        };
        if let Some((held, limits)) = self.limits_memo.borrow().as_ref()
            && *held == bytes
        {
            return Ok(Some(limits.clone()));
        }
        let limits: NodeLimits =
            codec::decode_canonical("limits", &bytes, 4096).map_err(|e| corrupt("meta", e))?;
        *self.limits_memo.borrow_mut() = Some((bytes, limits.clone()));
        Ok(Some(limits))
    }

    /// The node's offline voucher cap: the hub's `NodeVoucherCap` fact, or,
    /// from a hub that sent none (enrolled before the cap had its own
    /// field), its exposure limit, which that hub also holds to; `None`
    /// before the hub sent limits.
    pub fn voucher_cap(&self) -> Result<Option<Points>, StoreError> {
        let Some(limits) = self.limits()? else {
            return Ok(None);
        };
        if self.meta("voucher_cap")?.is_none() {
            return Ok(Some(limits.node_exposure_limit));
        }
        Points::new(self.meta_u64("voucher_cap")?)
            .map(Some)
            .map_err(|e| corrupt("meta", e))
    }

    /// The node a hub-signed `VoucherIssuer` statement names as kiosk
    /// issuer `issuer` of `municipality`, with its key, withdrawn if the
    /// hub withdrew it or revoked the node; `None` if the hub never
    /// vouched for that number here.
    pub fn voucher_issuer(
        &self,
        municipality: MunicipalityCode,
        issuer: u16,
    ) -> Result<Option<mykey_voucher::VouchedIssuer>, StoreError> {
        let Some(v) = self.meta(&voucher_issuer_key(municipality, issuer))? else {
            return Ok(None);
        };
        let bad = || {
            corrupt(
                "meta",
                format!("voucher issuer {issuer} is not a node and a flag"),
            )
        };
        let (id, flag) = v.split_at_checked(32).ok_or_else(bad)?;
        let id: [u8; 32] = id.try_into().map_err(|_| bad())?;
        let node = NodeId::from_bytes(id).map_err(|_| bad())?;
        let key = node.verifying_key().map_err(|_| bad())?;
        let withdrawn = flag != [0] || self.is_revoked(&node)?;
        Ok(Some(mykey_voucher::VouchedIssuer { key, withdrawn }))
    }

    /// The issuer number the hub vouched for `me` with in `municipality`
    /// (its `VoucherIssuer` statement naming this node), unless withdrawn;
    /// `None` if it holds no such statement.
    pub fn own_voucher_issuer(
        &self,
        municipality: MunicipalityCode,
        me: &NodeId,
    ) -> Result<Option<u16>, StoreError> {
        let prefix = format!("voucher_issuer/{municipality}/");
        let prefix = prefix.as_str();
        let mut stmt = self
            .conn
            .prepare_cached("SELECT k, v FROM meta WHERE substr(k, 1, length(?1)) = ?1")?;
        let rows: Vec<(String, Vec<u8>)> = stmt
            .query_map([prefix], |r| Ok((r.get(0)?, r.get(1)?)))?
            .collect::<Result<_, _>>()?;
        for (k, v) in rows {
            if v.len() == 33 && v[..32] == me.as_bytes()[..] && v[32] == 0 {
                let n = k[prefix.len()..]
                    .parse::<u16>()
                    .map_err(|e| corrupt("meta", format!("{k}: {e}")))?;
                return Ok(Some(n));
            }
        }
        Ok(None)
    }

    /// The last signed transaction: (seq, id).
    pub fn last_tx(&self) -> Result<(u64, TxId), StoreError> {
        let row: Option<(i64, Vec<u8>)> = self.row(
            "SELECT seq, tx_id FROM outbox ORDER BY seq DESC LIMIT 1",
            [],
        )?;
        match row {
            None => Ok((0, TxId::GENESIS)),
            Some((seq, id)) => {
                let arr: [u8; 32] = id.try_into().map_err(|_| corrupt("outbox", "tx_id"))?;
                Ok((u(seq), TxId::from_bytes(arr)))
            }
        }
    }

    /// Highest seq up to which every receipt is stored.
    pub fn receipted_seq(&self) -> Result<u64, StoreError> {
        let first_pending: Option<i64> = self
            .conn
            .prepare_cached("SELECT min(seq) FROM outbox WHERE status = 'pending'")?
            .query_row([], |r| r.get(0))?;
        match first_pending {
            Some(s) => Ok(u(s) - 1),
            None => Ok(self.last_tx()?.0),
        }
    }

    /// The vouchers this node has taken (every `voucher-redeem` in its
    /// outbox, receipted or not), as the signed transactions carry them.
    pub fn vouchers_taken(&self) -> Result<Vec<SignedTx>, StoreError> {
        let mut st = self.conn.prepare_cached(
            "SELECT bytes FROM outbox WHERE kind = 'voucher-redeem' ORDER BY seq",
        )?;
        let rows = st.query_map([], |r| r.get::<_, Vec<u8>>(0))?;
        let mut out = Vec::new();
        for b in rows {
            out.push(SignedTx::from_bytes(&b?).map_err(|e| corrupt("outbox", e))?);
        }
        Ok(out)
    }

    /// The `RedeemVoucher` transactions of LAN peers held here (of peers
    /// not revoked), whether the hub has processed them or not.
    pub fn peer_vouchers_taken(&self) -> Result<Vec<SignedTx>, StoreError> {
        let mut st = self.conn.prepare_cached(
            "SELECT p.bytes FROM peer_txs p WHERE p.kind = 'voucher-redeem'
             AND NOT EXISTS (SELECT 1 FROM revoked_nodes v WHERE v.node = p.node)
             ORDER BY p.node, p.seq",
        )?;
        let rows = st.query_map([], |r| r.get::<_, Vec<u8>>(0))?;
        let mut out = Vec::new();
        for b in rows {
            out.push(SignedTx::from_bytes(&b?).map_err(|e| corrupt("peer_txs", e))?);
        }
        Ok(out)
    }

    /// The hub's bitmap chunk of a voucher batch held here: cancelled, and
    /// the bits.
    pub fn voucher_marks(
        &self,
        batch: u32,
        chunk: u8,
    ) -> Result<Option<(bool, mykey_sync_proto::RedeemedBits)>, StoreError> {
        let row: Option<(bool, Vec<u8>)> = self.row(
            "SELECT cancelled, bits FROM voucher_marks WHERE batch = ?1 AND chunk = ?2",
            params![i64::from(batch), i64::from(chunk)],
        )?;
        row.map(|(c, b)| {
            mykey_sync_proto::RedeemedBits::try_from(b)
                .map(|bits| (c, bits))
                .map_err(|e| corrupt("voucher_marks", e))
        })
        .transpose()
    }

    /// Whether the hub told this node that voucher `batch` was cancelled.
    pub fn voucher_batch_cancelled(&self, batch: u32) -> Result<bool, StoreError> {
        Ok(self
            .value::<i64>(
                "SELECT 1 FROM voucher_marks WHERE batch = ?1 AND cancelled = 1 LIMIT 1",
                params![i64::from(batch)],
            )?
            .is_some())
    }

    /// Points of the vouchers taken here that the hub has not yet receipted
    /// (what the offline voucher cap bounds).
    pub fn vouchers_pending(&self) -> Result<Points, StoreError> {
        let s: Option<i64> = self.value(
            "SELECT COALESCE(SUM(points), 0) FROM outbox WHERE kind = 'voucher-redeem' AND status = 'pending'",
            [],
        )?;
        stored_points("outbox", s.unwrap_or(0))
    }

    /// The open donation programmes of `m` as the hub last told them, by
    /// id, at most `max`.
    pub fn open_donation_programmes(
        &self,
        m: MunicipalityCode,
        max: usize,
    ) -> Result<Vec<(ProgramId, DonationRecipient)>, StoreError> {
        let rows: Vec<(String, String)> = self.rows(
            "SELECT programme, recipient FROM donation_programmes
             WHERE municipality = ?1 AND open = 1 ORDER BY programme LIMIT ?2",
            params![m.get(), i(max as u64)],
        )?;
        rows.into_iter()
            .map(|(p, r)| {
                Ok((
                    ProgramId::parse(&p).map_err(|e| corrupt("donation_programmes", e))?,
                    DonationRecipient::parse(&r).map_err(|e| corrupt("donation_programmes", e))?,
                ))
            })
            .collect()
    }

    /// Outbox transactions from `from_seq`, at most `max`.
    pub fn outbox_from(&self, from_seq: u64, max: usize) -> Result<Vec<SignedTx>, StoreError> {
        let mut st = self
            .conn
            .prepare_cached("SELECT bytes FROM outbox WHERE seq >= ?1 ORDER BY seq LIMIT ?2")?;
        let rows = st.query_map(params![i(from_seq), i(max as u64)], |r| {
            r.get::<_, Vec<u8>>(0)
        })?;
        let mut out = Vec::new();
        for b in rows {
            out.push(SignedTx::from_bytes(&b?).map_err(|e| corrupt("outbox", e))?);
        }
        Ok(out)
    }

    /// The card keys this node knows whose short hash (the 8 hex digits
    /// listings and logs print) starts with `prefix`.
    pub fn cards_by_hash_prefix(&self, prefix: &str) -> Result<Vec<CardKey>, StoreError> {
        let rows: Vec<(Vec<u8>,)> = self.rows("SELECT card FROM cards", [])?;
        let mut out = vec![];
        for (b,) in rows {
            let k: CardKey =
                codec::decode_canonical("card", &b, 4096).map_err(|e| corrupt("cards", e))?;
            if k.short().starts_with(prefix) {
                out.push(k);
            }
        }
        Ok(out)
    }

    /// The spelling of `card`'s serial (leading zero bytes) this node
    /// knows the card by, if it knows it.
    pub fn known_spelling(&self, card: &CardKey) -> Result<Option<CardKey>, StoreError> {
        for k in card.spellings() {
            if self.card(&k)?.is_some() {
                return Ok(Some(k));
            }
        }
        Ok(None)
    }

    /// The card's registration, if known.
    pub fn card(&self, card: &CardKey) -> Result<Option<CardRow>, StoreError> {
        let row: Option<(i64, String, u32)> = self.row(
            "SELECT account, my_key_id, municipality FROM cards WHERE card = ?1",
            [codec::encode(card)],
        )?;
        row.map(|(a, k, m)| {
            Ok(CardRow {
                account: AccountId::new(u(a)).map_err(|e| corrupt("cards", e))?,
                my_key_id: MyKeyId::parse(&k).map_err(|e| corrupt("cards", e))?,
                municipality: MunicipalityCode::try_from(m).map_err(|e| corrupt("cards", e))?,
            })
        })
        .transpose()
    }

    /// The card's status (active unless the hub said otherwise).
    pub fn card_status(&self, card: &CardKey) -> Result<CardStatus, StoreError> {
        let s: Option<String> = self.value(
            "SELECT status FROM card_status WHERE card = ?1",
            [codec::encode(card)],
        )?;
        match s {
            None => Ok(CardStatus::Active),
            Some(s) => CardStatus::parse(&s).ok_or_else(|| corrupt("card_status", s)),
        }
    }

    /// The facility card numbers linked to an account (except those being unlinked).
    pub fn numbers(&self, account: AccountId) -> Result<Vec<NumberRow>, StoreError> {
        let rows: Vec<(String, String)> = self.rows("SELECT number, state FROM facility_cards WHERE account = ?1 AND state != 'pending-unlink' ORDER BY number", [i(account.get())])?;
        let mut out = Vec::new();
        for (n, s) in rows {
            out.push(NumberRow {
                number: FacilityCardNumber::parse(&n).map_err(|e| corrupt("facility_cards", e))?,
                confirmed: s == "linked",
            });
        }
        Ok(out)
    }

    /// The state of one number of an account.
    pub fn number_state(
        &self,
        account: AccountId,
        number: &FacilityCardNumber,
    ) -> Result<Option<String>, StoreError> {
        self.value(
            "SELECT state FROM facility_cards WHERE account = ?1 AND number = ?2",
            params![i(account.get()), number.as_str()],
        )
    }

    /// The hub's last confirmed balance of a wallet with the ledger position
    /// it reflects: the basis a redeem states (`None`: none received yet).
    pub fn basis(
        &self,
        account: AccountId,
        municipality: MunicipalityCode,
    ) -> Result<Option<mykey_sync_proto::Basis>, StoreError> {
        let row: Option<(i64, i64, i64)> = self.row("SELECT balance, debt, ledger_pos FROM balances WHERE account = ?1 AND municipality = ?2", params![i(account.get()), municipality.get()])?;
        let Some((b, d, pos)) = row else {
            return Ok(None);
        };
        let p = |v: i64| stored_points("balances", v);
        Ok(Some(mykey_sync_proto::Basis {
            ledger_pos: u(pos),
            balance: p(b)?,
            debt: p(d)?,
        }))
    }

    /// The hub's confirmed balance and debt of a wallet (zero when unknown).
    pub fn balance(
        &self,
        account: AccountId,
        municipality: MunicipalityCode,
    ) -> Result<(Points, Points), StoreError> {
        let row: Option<(i64, i64)> = self.row(
            "SELECT balance, debt FROM balances WHERE account = ?1 AND municipality = ?2",
            params![i(account.get()), municipality.get()],
        )?;
        let (b, d) = row.unwrap_or((0, 0));
        let p = |v: i64| stored_points("balances", v);
        Ok((p(b)?, p(d)?))
    }

    /// A wallet's earliest-expiring points and when they expire, if the hub
    /// said any expire.
    pub fn upcoming_expiry(
        &self,
        account: AccountId,
        municipality: MunicipalityCode,
    ) -> Result<Option<(Points, UnixMillis)>, StoreError> {
        let row: Option<(i64, i64)> = self.row(
            "SELECT points, expires_at FROM expiries WHERE account = ?1 AND municipality = ?2",
            params![i(account.get()), municipality.get()],
        )?;
        let Some((p, e)) = row else { return Ok(None) };
        let points = stored_points("expiries", p)?;
        Ok((!points.is_zero()).then_some((points, UnixMillis(u(e)))))
    }

    /// Whether the hub put the municipality in strict mode.
    pub fn strict(&self, m: MunicipalityCode) -> Result<bool, StoreError> {
        Ok(self.meta(&format!("strict:{m}"))?.as_deref() == Some(&[1]))
    }

    /// This node's right on a wallet: (points it may still spend, the
    /// hub's latest right id; 0: none).
    pub fn right(
        &self,
        account: AccountId,
        m: MunicipalityCode,
    ) -> Result<(Points, u64), StoreError> {
        let (total, id, _) = self.right_parts(account, m)?;
        Ok((total, id))
    }

    /// (points it may spend, the hub's latest right id, the part it may
    /// give to a peer: what the hub granted it, not what peers gave it).
    /// Why: a node passes on only hub-granted points, so the hub always
    /// holds a transfer's points in the sender's reservation, in whatever
    /// order the sender's and the receiver's chains reach it.
    pub fn right_parts(
        &self,
        account: AccountId,
        m: MunicipalityCode,
    ) -> Result<(Points, u64, Points), StoreError> {
        let row: Option<(i64, i64, i64)> = self.row("SELECT points, right_id, received FROM rights WHERE account = ?1 AND municipality = ?2", params![i(account.get()), m.get()])?;
        let (p, id, rec) = row.unwrap_or((0, 0, 0));
        let own = u(p).saturating_sub(u(rec));
        Ok((
            stored_points("rights", p)?,
            u(id),
            Points::new(own).map_err(|e| corrupt("rights", e))?,
        ))
    }

    /// The hub-signed grant of a spend right of this node on a wallet.
    pub fn right_grant(
        &self,
        account: AccountId,
        m: MunicipalityCode,
        right_id: u64,
    ) -> Result<Option<mykey_sync_proto::SignedFact>, StoreError> {
        let bytes: Option<Vec<u8>> = self.value("SELECT fact FROM right_grants WHERE right_id = ?1 AND account = ?2 AND municipality = ?3", params![i(right_id), i(account.get()), m.get()])?;
        bytes
            .map(|b| {
                mykey_sync_proto::SignedFact::from_bytes(&b).map_err(|e| corrupt("right_grants", e))
            })
            .transpose()
    }

    /// Sum of unconfirmed redeems and donations on an account: own, and those of LAN peers
    /// that still count (see `live_peer_tx!`: not yet processed by the hub,
    /// signer not revoked nor refused by the hub, and on a roster with this
    /// node).
    pub fn pending_on_account(
        &self,
        account: AccountId,
        municipality: MunicipalityCode,
    ) -> Result<Points, StoreError> {
        let s: i64 = self
            .conn
            .prepare_cached(concat!(
                "SELECT coalesce((SELECT points FROM pending_sums
                 WHERE card = x'' AND account = ?1 AND municipality = ?2), 0)
                 + (SELECT coalesce(sum(p.points), 0) FROM peer_txs p
                    WHERE p.kind IN ('redeem', 'donation', 'voucher-issue') AND p.account = ?1 AND p.municipality = ?2 AND ",
                live_peer_tx!(),
                ")"
            ))?
            .query_row(params![i(account.get()), municipality.get()], |r| r.get(0))?;
        stored_points("outbox", s)
    }

    /// A LAN peer's spends and donations held here that the hub has not reported
    /// processed nor refused: what this node counts of that signer (across
    /// every holder), held below the per-signer cap.
    pub fn peer_pending(&self, node: &NodeId) -> Result<Points, StoreError> {
        let s: i64 = self
            .conn
            .prepare_cached(
                "SELECT coalesce(sum(p.points), 0) FROM peer_txs p
                 WHERE p.node = ?1 AND p.kind IN ('redeem', 'donation', 'voucher-issue')
                   AND p.seq > coalesce((SELECT g.through_seq FROM progress g WHERE g.node = p.node), 0)
                   AND NOT EXISTS (SELECT 1 FROM peer_refusals f WHERE f.node = p.node AND p.seq >= f.seq)",
            )?
            .query_row([node.as_bytes()], |r| r.get(0))?;
        stored_points("peer_txs", s)
    }

    /// Whether a LAN peer's transaction at `seq` is held here.
    pub fn peer_tx_held(&self, node: &NodeId, seq: u64) -> Result<bool, StoreError> {
        self.exists(
            "SELECT 1 FROM peer_txs WHERE node = ?1 AND seq = ?2",
            params![node.as_bytes().as_slice(), i(seq)],
        )
    }

    /// Whether a grant or a peer's transfer with this id was counted already.
    pub fn right_event_seen(&self, id: &[u8]) -> Result<bool, StoreError> {
        self.exists("SELECT 1 FROM right_events WHERE id = ?1", [id])
    }

    /// Whether the latest roster of some LAN group names both `node` and
    /// this node.
    pub fn shares_roster(&self, node: &NodeId) -> Result<bool, StoreError> {
        self.exists(
            "SELECT 1 FROM lan_members a JOIN lan_members b
                   ON b.municipality = a.municipality AND b.grp = a.grp
                 WHERE a.node = ?1 AND b.node = (SELECT v FROM meta WHERE k = 'node') LIMIT 1",
            [node.as_bytes()],
        )
    }

    /// The other nodes named with this node on a LAN group's latest roster.
    pub fn lan_peers(&self) -> Result<Vec<NodeId>, StoreError> {
        let rows: Vec<(Vec<u8>,)> = self.rows(
            "SELECT DISTINCT a.node FROM lan_members a JOIN lan_members b
                   ON b.municipality = a.municipality AND b.grp = a.grp
                 WHERE b.node = (SELECT v FROM meta WHERE k = 'node') AND a.node != b.node
                 ORDER BY a.node",
            [],
        )?;
        rows.into_iter()
            .map(|(b,)| {
                let b: [u8; 32] = b
                    .try_into()
                    .map_err(|_| corrupt("lan_members", "node is not 32 bytes"))?;
                NodeId::from_bytes(b).map_err(|e| corrupt("lan_members", e))
            })
            .collect()
    }

    /// The LAN groups whose latest roster names this node: (municipality,
    /// group, number of members).
    pub fn lan_groups(&self) -> Result<Vec<(MunicipalityCode, String, u64)>, StoreError> {
        let rows: Vec<(u32, String, i64)> = self.rows(
            "SELECT a.municipality, a.grp, count(*) FROM lan_members a
             WHERE EXISTS (SELECT 1 FROM lan_members b WHERE b.municipality = a.municipality
                             AND b.grp = a.grp AND b.node = (SELECT v FROM meta WHERE k = 'node'))
             GROUP BY a.municipality, a.grp ORDER BY a.municipality, a.grp",
            [],
        )?;
        let mut out = vec![];
        for (m, g, n) in rows {
            let m = MunicipalityCode::try_from(m).map_err(|e| corrupt("lan_members", e))?;
            out.push((m, g, u(n)));
        }
        Ok(out)
    }

    /// Points `sender` already gave this node under its right `right_id`.
    pub fn right_tally(&self, sender: &NodeId, right_id: u64) -> Result<Points, StoreError> {
        let v: Option<i64> = self.value(
            "SELECT points FROM right_tally WHERE sender = ?1 AND right_id = ?2",
            params![sender.as_bytes().as_slice(), i(right_id)],
        )?;
        Points::new(v.map_or(0, u)).map_err(|e| corrupt("right_tally", e))
    }

    /// The right credited with this node's acceptance at `accept_seq`.
    pub fn right_credit(&self, accept_seq: u64) -> Result<Option<StoredCredit>, StoreError> {
        let row = self
            .conn
            .prepare_cached(
                "SELECT sender, right_id, account, municipality, points, withdrawn_at
                 FROM right_credits WHERE accept_seq = ?1",
            )?
            .query_row([i(accept_seq)], |r| {
                let credit = (
                    r.get::<_, Vec<u8>>(0)?,
                    r.get::<_, i64>(1)?,
                    r.get::<_, i64>(2)?,
                    r.get::<_, u32>(3)?,
                    r.get::<_, i64>(4)?,
                );
                Ok((credit, r.get::<_, Option<i64>>(5)?))
            })
            .optional()?;
        let Some(((sender, right_id, account, m, points), withdrawn)) = row else {
            return Ok(None);
        };
        Ok(Some(StoredCredit {
            credit: credit_row(sender, right_id, account, m, points)?,
            withdrawn_at: withdrawn.map(|t| UnixMillis(u(t))),
        }))
    }

    /// Rights withdrawn after the hub rejected their acceptance, newest first.
    pub fn withdrawn_rights(&self, max: usize) -> Result<Vec<WithdrawnRight>, StoreError> {
        // accept_seq, sender, right_id, account, municipality, points,
        // withdrawn_at, shortfall, reason.
        type Row = (i64, Vec<u8>, i64, i64, u32, i64, i64, i64, String);
        let rows: Vec<Row> = self.rows(
            "SELECT accept_seq, sender, right_id, account, municipality, points, withdrawn_at,
                    coalesce(shortfall, 0), coalesce(reason, '')
             FROM right_credits WHERE withdrawn_at IS NOT NULL ORDER BY accept_seq DESC LIMIT ?1",
            [i(max as u64)],
        )?;
        let mut out = vec![];
        for (seq, sender, right_id, account, m, points, at, short, reason) in rows {
            out.push(WithdrawnRight {
                accept_seq: u(seq),
                credit: credit_row(sender, right_id, account, m, points)?,
                shortfall: stored_points("right_credits", short)?,
                reason,
                at: UnixMillis(u(at)),
            });
        }
        Ok(out)
    }

    /// The highest seq of `node` held without a gap above what the hub has
    /// processed (its progress), counting from the progress.
    pub fn peer_have_through(&self, node: &NodeId) -> Result<u64, StoreError> {
        let progress: i64 = self
            .conn
            .prepare_cached("SELECT coalesce(max(through_seq), 0) FROM progress WHERE node = ?1")?
            .query_row([node.as_bytes()], |r| r.get(0))?;
        let mut have = u(progress);
        let mut st = self
            .conn
            .prepare_cached("SELECT seq FROM peer_txs WHERE node = ?1 AND seq > ?2 ORDER BY seq")?;
        let rows = st.query_map(params![node.as_bytes(), i(have)], |r| r.get::<_, i64>(0))?;
        for seq in rows {
            if u(seq?) != have + 1 {
                break;
            }
            have += 1;
        }
        Ok(have)
    }

    /// LAN peers' transactions to carry to the hub, at most `max`, fair
    /// across signers: only those that still count (`live_peer_tx!`; junk a
    /// peer sent never gets here), each signer's in seq order from the first
    /// the hub lacks, one round-robin share per signer (`max / signers`, at
    /// least one) before any signer gets more, and the signers' order
    /// rotated by `turn` so that a batch too small for all of them serves
    /// the others next time.
    pub fn peer_txs_undelivered(
        &self,
        max: usize,
        turn: usize,
    ) -> Result<Vec<SignedTx>, StoreError> {
        if max == 0 {
            return Ok(vec![]);
        }
        let mut signers: Vec<Vec<u8>> = {
            let mut st = self.conn.prepare_cached(concat!(
                "SELECT p.node FROM peer_txs p WHERE ",
                live_peer_tx!(),
                " GROUP BY p.node ORDER BY p.node"
            ))?;
            st.query_map([], |r| r.get(0))?.collect::<Result<_, _>>()?
        };
        if signers.is_empty() {
            return Ok(vec![]);
        }
        let n = signers.len();
        signers.rotate_left(turn % n);
        signers.truncate(max);
        let share = (max / signers.len()).max(1);
        let mut st = self.conn.prepare_cached(concat!(
            "SELECT p.bytes FROM peer_txs p WHERE p.node = ?1 AND ",
            live_peer_tx!(),
            " ORDER BY p.seq LIMIT ?2 OFFSET ?3"
        ))?;
        let mut per_signer: Vec<Vec<Vec<u8>>> = vec![];
        let mut total = 0;
        for s in &signers {
            let rows: Vec<Vec<u8>> = st
                .query_map(params![s, i(share as u64), 0], |r| r.get(0))?
                .collect::<Result<_, _>>()?;
            total += rows.len();
            per_signer.push(rows);
        }
        // Room left: the signers that filled their share may take more, in turn.
        for (k, s) in signers.iter().enumerate() {
            if total >= max {
                break;
            }
            if per_signer[k].len() < share {
                continue;
            }
            let more: Vec<Vec<u8>> = st
                .query_map(params![s, i((max - total) as u64), i(share as u64)], |r| {
                    r.get(0)
                })?
                .collect::<Result<_, _>>()?;
            total += more.len();
            per_signer[k].extend(more);
        }
        let mut out = Vec::with_capacity(total);
        for b in per_signer.into_iter().flatten() {
            out.push(SignedTx::from_bytes(&b).map_err(|e| corrupt("peer_txs", e))?);
        }
        Ok(out)
    }

    /// Sum of own unconfirmed redeems with a card.
    pub fn pending_on_card(&self, card: &CardKey) -> Result<Points, StoreError> {
        let s: Option<i64> = self.value(
            "SELECT points FROM pending_sums WHERE card = ?1 AND account = 0 AND municipality = 0",
            [codec::encode(card)],
        )?;
        stored_points("pending_sums", s.unwrap_or(0))
    }

    /// Sum of all own unconfirmed redeems.
    pub fn exposure(&self) -> Result<Points, StoreError> {
        let s: Option<i64> = self.value(
            "SELECT points FROM pending_sums WHERE card = x'' AND account = 0 AND municipality = 0",
            [],
        )?;
        stored_points("pending_sums", s.unwrap_or(0))
    }

    /// Whether a node key is revoked.
    pub fn is_revoked(&self, node: &NodeId) -> Result<bool, StoreError> {
        self.exists(
            "SELECT 1 FROM revoked_nodes WHERE node = ?1",
            [node.as_bytes()],
        )
    }

    /// Outbox counts for status.
    pub fn outbox_counts(&self) -> Result<OutboxCounts, StoreError> {
        let mut c = OutboxCounts::default();
        let rows: Vec<(String, i64)> =
            self.rows("SELECT status, count(*) FROM outbox GROUP BY status", [])?;
        for (s, n) in rows {
            match s.as_str() {
                "pending" => c.pending = u(n),
                "accepted" => c.accepted = u(n),
                "rejected" => c.rejected = u(n),
                other => return Err(corrupt("outbox", format!("status {other}"))),
            }
        }
        c.oldest_pending_at = self
            .conn
            .query_row(
                "SELECT min(created_at) FROM outbox WHERE status = 'pending'",
                [],
                |r| r.get::<_, Option<i64>>(0),
            )?
            .map(|v| UnixMillis(u(v)));
        c.last_receipt_at = self
            .conn
            .query_row("SELECT max(receipt_at) FROM outbox", [], |r| {
                r.get::<_, Option<i64>>(0)
            })?
            .map(|v| UnixMillis(u(v)));
        Ok(c)
    }

    /// The kind (`TxBody::name`) of own seq `seq`, as stored beside it;
    /// `None` if the node never signed it.
    pub fn outbox_kind(&self, seq: u64) -> Result<Option<String>, StoreError> {
        let mut rows: Vec<(String,)> =
            self.rows("SELECT kind FROM outbox WHERE seq = ?1", [i(seq)])?;
        Ok(rows.pop().map(|(k,)| k))
    }

    /// The state (`pending`, `accepted` or `rejected`) and reason of own seq
    /// `seq`; `None` if the node never signed it.
    pub fn outbox_status(&self, seq: u64) -> Result<Option<(String, Option<String>)>, StoreError> {
        let mut rows: Vec<(String, Option<String>)> =
            self.rows("SELECT status, reason FROM outbox WHERE seq = ?1", [i(seq)])?;
        Ok(rows.pop())
    }

    /// Recent own transactions that were rejected or are stuck with a reason.
    pub fn troubled(&self, max: usize) -> Result<Vec<OutboxRow>, StoreError> {
        // seq, tx_id, kind, created_at, status, reason.
        type Row = (i64, Vec<u8>, String, i64, String, Option<String>);
        let rows: Vec<Row> = self.rows(
            "SELECT seq, tx_id, kind, created_at, status, reason FROM outbox
             WHERE reason IS NOT NULL ORDER BY seq DESC LIMIT ?1",
            [i(max as u64)],
        )?;
        let mut out = Vec::new();
        for (seq, id, kind, at, status, reason) in rows {
            let arr: [u8; 32] = id.try_into().map_err(|_| corrupt("outbox", "tx_id"))?;
            out.push(OutboxRow {
                seq: u(seq),
                tx_id: TxId::from_bytes(arr),
                kind,
                created_at: UnixMillis(u(at)),
                status,
                reason,
            });
        }
        Ok(out)
    }

    /// Rejections of transactions this node carried for others.
    pub fn foreign_rejections(&self) -> Result<u64, StoreError> {
        let n: i64 = self
            .conn
            .query_row("SELECT count(*) FROM rejections", [], |r| r.get(0))?;
        Ok(u(n))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(seed: u8) -> NodeId {
        let k = ed25519_dalek::SigningKey::from_bytes(&[seed; 32]);
        NodeId::from_bytes(k.verifying_key().to_bytes()).unwrap()
    }

    #[test]
    fn rosters_held_before_the_members_table_are_split_into_it() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("node.sqlite");
        let (me, peer, other) = (node(1), node(2), node(3));
        {
            // A store at schema 7, holding a roster of three (as written then).
            let conn = Connection::open(&path).unwrap();
            for sql in &MIGRATIONS[..7] {
                conn.execute_batch(sql).unwrap();
            }
            conn.pragma_update(None, "user_version", 7).unwrap();
            conn.execute(
                "INSERT INTO meta(k, v) VALUES ('node', ?1)",
                [me.as_bytes().as_slice()],
            )
            .unwrap();
            let mut members = [me, peer, other];
            members.sort();
            let bytes: Vec<u8> = members.iter().flat_map(|n| n.as_bytes().to_vec()).collect();
            conn.execute(
                "INSERT INTO lan_rosters(municipality, grp, members, hub_seq) VALUES (131059, 'fest', ?1, 4)",
                [bytes],
            )
            .unwrap();
        }
        let mut store = Store::open(&path).unwrap();
        let r = store.read();
        assert!(r.shares_roster(&peer).unwrap() && r.shares_roster(&other).unwrap());
        assert!(!r.shares_roster(&node(4)).unwrap());
        assert_eq!(r.lan_groups().unwrap().len(), 1);
        assert_eq!(r.lan_groups().unwrap()[0].2, 3);
        // A later roster of the group replaces its members; an older one does not.
        let m = MunicipalityCode::parse("131059").unwrap();
        let g = mykey_sync_proto::LanGroup::parse("fest").unwrap();
        let only = mykey_sync_proto::Roster::new(vec![me, other]).unwrap();
        store
            .write(|w| {
                assert!(!w.put_roster(m, &g, &only, 3)?);
                assert!(w.put_roster(m, &g, &only, 5)?);
                Ok::<_, StoreError>(())
            })
            .unwrap();
        let r = store.read();
        assert!(!r.shares_roster(&peer).unwrap());
        assert!(r.shares_roster(&other).unwrap());
    }

    /// The own pending redeems (and, per wallet, donations) summed straight
    /// from the outbox: what the trigger-kept sums must equal.
    fn summed(conn: &Connection, kinds: &str, filter: &str, p: impl rusqlite::Params) -> u64 {
        let sql = format!(
            "SELECT coalesce(sum(points), 0) FROM outbox
             WHERE status = 'pending' AND kind IN ({kinds}) {filter}"
        );
        conn.query_row(&sql, p, |r| r.get::<_, i64>(0)).unwrap() as u64
    }

    const SPENDS: &str = "'redeem'";
    const WALLET: &str = "'redeem', 'donation', 'voucher-issue'";

    fn check_sums(store: &Store, cards: &[CardKey]) {
        let r = store.read();
        assert_eq!(
            r.exposure().unwrap().get(),
            summed(&store.conn, SPENDS, "", [])
        );
        for (k, c) in cards.iter().enumerate() {
            let key = codec::encode(c);
            assert_eq!(
                r.pending_on_card(c).unwrap().get(),
                summed(&store.conn, SPENDS, "AND card = ?1", [&key]),
                "card {k}"
            );
            for m in [131059u32, 131016] {
                let a = AccountId::new(k as u64 + 1).unwrap();
                let muni = MunicipalityCode::try_from(m).unwrap();
                assert_eq!(
                    r.pending_on_account(a, muni).unwrap().get(),
                    summed(
                        &store.conn,
                        WALLET,
                        "AND account = ?1 AND municipality = ?2",
                        params![k as i64 + 1, m]
                    ),
                    "wallet {k} {m}"
                );
            }
        }
    }

    fn test_card(i: u8) -> CardKey {
        CardKey::new(b"issuer".to_vec(), vec![i]).unwrap()
    }

    /// One outbox row, written as `append_outbox` writes it (the triggers
    /// see any path that writes the table).
    fn insert_row(conn: &Connection, seq: i64, kind: &str, card: u8, m: u32, points: i64) {
        conn.execute(
            "INSERT INTO outbox(seq, tx_id, bytes, kind, created_at, card, account, municipality, points)
             VALUES (?1, ?2, x'00', ?3, 0, ?4, ?5, ?6, ?7)",
            params![
                seq,
                seq.to_be_bytes().as_slice(),
                kind,
                codec::encode(&test_card(card)),
                i64::from(card) + 1,
                m,
                points
            ],
        )
        .unwrap();
    }

    #[derive(Debug, Clone)]
    enum Op {
        Sign {
            kind: &'static str,
            card: u8,
            other_muni: bool,
            points: i64,
        },
        Receipt {
            at: usize,
            status: &'static str,
        },
        Reason {
            at: usize,
        },
        Delete {
            at: usize,
        },
    }

    fn op() -> impl proptest::strategy::Strategy<Value = Op> {
        use proptest::prelude::*;
        prop_oneof![
            4 => (prop::sample::select(vec!["redeem", "grant", "donation"]), 0u8..4, any::<bool>(), 1i64..1000).prop_map(
                |(kind, card, other_muni, points)| Op::Sign { kind, card, other_muni, points }
            ),
            2 => (any::<usize>(), prop::sample::select(vec!["accepted", "rejected", "pending"]))
                .prop_map(|(at, status)| Op::Receipt { at, status }),
            1 => any::<usize>().prop_map(|at| Op::Reason { at }),
            1 => any::<usize>().prop_map(|at| Op::Delete { at }),
        ]
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(64))]
        /// Whatever is signed, receipted, annotated or deleted, the sums the
        /// offline rules read equal the outbox's pending redeems (and, per
        /// wallet, donations).
        #[test]
        fn pending_sums_follow_the_outbox(ops in proptest::collection::vec(op(), 1..40)) {
            let dir = tempfile::tempdir().unwrap();
            let store = Store::open(&dir.path().join("node.sqlite")).unwrap();
            let cards: Vec<CardKey> = (0..4).map(test_card).collect();
            let mut seq = 0i64;
            for op in ops {
                match op {
                    Op::Sign { kind, card, other_muni, points } => {
                        seq += 1;
                        let m = if other_muni { 131016 } else { 131059 };
                        insert_row(&store.conn, seq, kind, card, m, points);
                    }
                    Op::Receipt { at, status } if seq > 0 => {
                        store.conn.execute(
                            "UPDATE outbox SET status = ?2 WHERE seq = ?1",
                            params![at as i64 % seq + 1, status],
                        ).unwrap();
                    }
                    Op::Reason { at } if seq > 0 => {
                        store.conn.execute(
                            "UPDATE outbox SET reason = 'later' WHERE seq = ?1",
                            [at as i64 % seq + 1],
                        ).unwrap();
                    }
                    Op::Delete { at } if seq > 0 => {
                        store.conn.execute("DELETE FROM outbox WHERE seq = ?1", [at as i64 % seq + 1]).unwrap();
                    }
                    _ => {}
                }
                check_sums(&store, &cards);
            }
        }
    }

    #[test]
    fn pending_sums_start_from_the_outbox_held_before_them() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("node.sqlite");
        let before = MIGRATIONS.len() - 1;
        {
            let conn = Connection::open(&path).unwrap();
            for sql in &MIGRATIONS[..before] {
                conn.execute_batch(sql).unwrap();
            }
            conn.pragma_update(None, "user_version", before as i64)
                .unwrap();
            insert_row(&conn, 1, "redeem", 0, 131059, 30);
            insert_row(&conn, 2, "redeem", 0, 131059, 12);
            insert_row(&conn, 3, "redeem", 1, 131016, 5);
            insert_row(&conn, 4, "grant", 1, 131016, 700);
            insert_row(&conn, 5, "redeem", 2, 131059, 9);
            conn.execute("UPDATE outbox SET status = 'accepted' WHERE seq = 5", [])
                .unwrap();
            // Donations signed before the sums counted them: one on a wallet
            // with pending redeems, one on a wallet without.
            insert_row(&conn, 6, "donation", 1, 131016, 40);
            insert_row(&conn, 7, "donation", 3, 131059, 8);
        }
        let store = Store::open(&path).unwrap();
        let r = store.read();
        assert_eq!(r.exposure().unwrap().get(), 47);
        assert_eq!(r.pending_on_card(&test_card(0)).unwrap().get(), 42);
        let m = MunicipalityCode::try_from(131016u32).unwrap();
        assert_eq!(
            r.pending_on_account(AccountId::new(2).unwrap(), m)
                .unwrap()
                .get(),
            45
        );
        let here = MunicipalityCode::try_from(131059u32).unwrap();
        assert_eq!(
            r.pending_on_account(AccountId::new(4).unwrap(), here)
                .unwrap()
                .get(),
            8
        );
        check_sums(&store, &(0..4).map(test_card).collect::<Vec<_>>());
    }

    fn limits_of(facility: &str) -> NodeLimits {
        NodeLimits {
            node: node(1),
            facility: mykey_sync_proto::FacilityId::parse(facility).unwrap(),
            municipality: MunicipalityCode::try_from(131059u32).unwrap(),
            allowed_ops: vec![mykey_sync_proto::OpKind::Redeem],
            per_card_offline_limit: Points::new(500).unwrap(),
            node_exposure_limit: Points::new(5000).unwrap(),
            pin_threshold: Points::new(100).unwrap(),
            valid_until: UnixMillis(9),
        }
    }

    #[test]
    fn limits_another_process_changed_are_read_at_once() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("node.sqlite");
        let mut daemon = Store::open(&path).unwrap();
        let mut cli = Store::open(&path).unwrap();
        assert_eq!(daemon.read().limits().unwrap(), None);
        for facility in ["lib-a", "lib-b"] {
            cli.write(|w| w.set_meta("limits", &codec::encode(&limits_of(facility))))
                .unwrap();
            assert_eq!(daemon.read().limits().unwrap(), Some(limits_of(facility)));
            let in_tx = daemon
                .write(|w| w.read().limits())
                .unwrap()
                .map(|l| l.facility);
            assert_eq!(in_tx.unwrap().as_str(), facility);
        }
    }
}
