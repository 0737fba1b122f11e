//! The hub's storage interface.
//!
//! Everything the hub keeps (registry, processed transactions, the ledger,
//! the fact log) goes through [`LedgerStore`] and [`StoreTx`]. The hub's
//! deciding code never sees SQL: a PostgreSQL backend for scale-out is a new
//! implementation of these two traits, not a rewrite.
//!
//! Contract every backend keeps:
//! - All reads and writes of one [`StoreTx`] are one serialisable
//!   transaction; nothing is visible to others, or durable, before
//!   [`StoreTx::commit`] returns `Ok`. Dropping a `StoreTx` rolls it back.
//! - Transfers are immutable: a backend refuses updates and deletes of posted
//!   transfers (SQLite: triggers). Corrections are new transfers.
//! - A transaction id is stored at most once, and at most once per (node, seq).
//! - `post` keeps each ledger account's posted totals and the ledger-wide
//!   totals in step with the transfers, so the balance check is O(1).

pub mod bounds;
pub(crate) mod convert;
pub mod donation;
pub mod economy;
pub mod history;
pub mod holder;
pub mod leases;
pub mod link_request;
pub mod postgres;
pub mod select;
pub mod sqlite;
pub mod status;
pub mod voucher;

use crate::model::{
    Account, CardRecord, ChainHead, DebtLine, Facility, Incident, IncidentKind, LedgerAccount,
    Municipality, NodeContact, NodeRecord, NodeStatus, Posted, Program, Transfer, TransferDraft,
};
use mykey_sync_proto::fact::CardStatus;
use mykey_sync_proto::wire::Outcome;
use mykey_sync_proto::{
    AccountId, CardKey, FacilityCardNumber, FacilityId, MunicipalityCode, MyKeyId, NodeId,
    ProgramId, Scope, SignedFact, TxId, UnixMillis, VerifiedTx,
};

pub use postgres::PgStore;
pub use sqlite::SqliteStore;

/// A storage failure. The hub's operation did not happen (the transaction
/// rolled back); the message says what to check.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database engine failed (disk full, file locked, I/O error).
    #[error("hub database error: {source}; check the data directory's disk and permissions")]
    Backend {
        /// The engine's error.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// A stored value did not decode: the database was changed outside the hub.
    #[error("hub database holds an invalid {what} ({detail}); restore it from a backup")]
    Corrupt {
        /// Which value.
        what: &'static str,
        /// What was wrong with it.
        detail: String,
    },
    /// The database was written by a newer hub.
    #[error(
        "hub database schema version {found} is newer than this build knows ({known}); \
         run a newer mykey-hub"
    )]
    SchemaTooNew {
        /// Version in the file.
        found: i64,
        /// Latest version this build knows.
        known: i64,
    },
}

impl StoreError {
    /// Whether the database gave this transaction up because of a
    /// concurrent writer (SQLSTATE 40001 serialization failure or 40P01
    /// deadlock): running the whole transaction again may succeed.
    pub fn is_conflict(&self) -> bool {
        let StoreError::Backend { source } = self else {
            return false;
        };
        self::postgres::is_conflict(source.as_ref())
    }
}

impl From<rusqlite::Error> for StoreError {
    fn from(e: rusqlite::Error) -> Self {
        StoreError::Backend {
            source: Box::new(e),
        }
    }
}

/// A transaction the hub has processed, as stored.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProcessedTx {
    /// Its id.
    pub id: TxId,
    /// The verdict given, returned again on a replay.
    pub outcome: Outcome,
}

/// A fact of the log, as stored.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoredFact {
    /// Its position in the hub's fact log.
    pub hub_seq: u64,
    /// Whether it is a deny-list fact that goes first.
    pub priority: bool,
    /// What it is about (a card, a node), for keeping facts about one
    /// subject in order when priority facts move forward.
    pub subject: Option<Vec<u8>>,
    /// The signed fact.
    pub signed: SignedFact,
    /// For a keyed fact: its item key and the hash prefix its bucket is
    /// taken from (`mykey_sync_proto::shard::Item`); `None` for log facts.
    pub item: Option<(String, u16)>,
}

/// A keyed fact as its shard document is built from it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PlacedFact {
    /// Its position in the log.
    pub hub_seq: u64,
    /// The first hub_seq of the storage transaction that wrote it.
    pub batch: u64,
    /// When it was issued.
    pub issued_at: UnixMillis,
    /// Its item key.
    pub item: String,
    /// The hash prefix its bucket is taken from.
    pub bucket_hash: u16,
    /// The canonical bytes of the signed fact.
    pub signed: Vec<u8>,
}

/// A fact scope's current shard epoch.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ShardEpochRow {
    /// The epoch (0: the first, before any compaction).
    pub epoch: u32,
    /// Buckets of the scope's municipality or facility shards.
    pub buckets: u16,
    /// The base document holds the latest item of each key up to this hub_seq.
    pub base_seq: u64,
    /// When the epoch began (the base document's change time).
    pub started_at: UnixMillis,
}

/// Flows and balances of one municipality's points, for the conservation check.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MunicipalityFlows {
    /// Whose points.
    pub municipality: Option<MunicipalityCode>,
    /// Points credited to wallets (grants, later exchanges).
    pub credited: u64,
    /// Points redeemed at merchants (from wallets and on debt).
    pub redeemed: u64,
    /// Points expired.
    pub expired: u64,
    /// Sum of wallet balances (credits − debits), with the points reserved
    /// for nodes' spend rights (strict mode escrow), which are still the holders'.
    pub wallets: i128,
    /// Sum of debts (debits − credits of debt accounts).
    pub debts: i128,
    /// Wallets with a negative balance (must be none).
    pub negative_wallets: u64,
    /// Debt accounts with a negative balance (must be none).
    pub negative_debts: u64,
}

/// Totals recomputed from scratch, for the ledger's conservation check.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LedgerAudit {
    /// The running totals the store keeps.
    pub running: Posted,
    /// Sum of every ledger account's posted totals.
    pub accounts: Posted,
    /// Sum of transfer amounts.
    pub transfers: u64,
    /// Number of transfers.
    pub n_transfers: u64,
    /// Ledger accounts whose posted totals differ from their transfers.
    pub mismatched_accounts: Vec<String>,
    /// Per municipality.
    pub municipalities: Vec<MunicipalityFlows>,
}

/// Opens storage transactions.
pub trait LedgerStore: Send {
    /// Starts a read-write transaction that holds the write lock until it is
    /// committed or dropped.
    fn begin(&mut self) -> Result<Box<dyn StoreTx + '_>, StoreError>;

    /// Starts a transaction for reading: a consistent snapshot that does not
    /// block writers (it may still write, taking the lock when it does).
    fn begin_read(&mut self) -> Result<Box<dyn StoreTx + '_>, StoreError> {
        self.begin()
    }

    /// Starts a read-write transaction on behalf of `node` (its session,
    /// its pushes). A backend shared by several hub processes locks only
    /// the node's municipality and chain here, not the whole store, and
    /// may fail it with a conflict ([`StoreError::is_conflict`]) that the
    /// caller retries. The default is [`LedgerStore::begin`].
    fn begin_for_node(&mut self, node: &NodeId) -> Result<Box<dyn StoreTx + '_>, StoreError> {
        let _ = node;
        self.begin()
    }

    /// Takes, renews and gives up leases of `group` so that `holder`
    /// holds at most its share of `names` among the group's live holders
    /// (taking only free or expired ones, renewing its own once half their
    /// `ttl_ms` is gone), and says it is alive; returns the names it holds
    /// now, in `names` order ([`leases::plan_shares`]). A backend only one
    /// process can serve (SQLite) grants them all.
    fn share_leases(
        &mut self,
        group: &str,
        names: &[String],
        holder: &str,
        ttl_ms: u64,
    ) -> Result<Vec<String>, StoreError> {
        let _ = (group, holder, ttl_ms);
        Ok(names.to_vec())
    }

    /// Names the process this store writes for (links it opens are its
    /// own; see [`process_name`]). A backend one process serves ignores it.
    fn set_process_name(&mut self, name: &str) {
        let _ = name;
    }

    /// Gives up every lease `holder` holds in `group` (a clean stop, so
    /// another process need not wait for them to expire).
    fn release_leases(&mut self, group: &str, holder: &str) -> Result<(), StoreError> {
        let _ = (group, holder);
        Ok(())
    }
}

pub use leases::{LEASE_MS, TickLease};

/// This process's name among the processes sharing a database: its host
/// and process id (unique among live processes; the same for every store
/// and hub one process opens).
pub fn process_name() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_owned())
        .unwrap_or_default();
    format!("{host}/{}", std::process::id())
}

/// Attempts [`retry_conflicts`] makes at most.
pub const CONFLICT_ATTEMPTS: u32 = 5;

/// Runs `op` (one whole storage transaction, begun and committed inside)
/// again while it fails with a conflict between concurrent writers
/// (PostgreSQL's serialization failure or deadlock), at most
/// [`CONFLICT_ATTEMPTS`] times; a rolled-back attempt left nothing behind.
pub fn retry_conflicts<T>(
    what: &str,
    mut op: impl FnMut() -> Result<T, StoreError>,
) -> Result<T, StoreError> {
    let mut attempt = 1;
    loop {
        match op() {
            Err(e) if e.is_conflict() && attempt < CONFLICT_ATTEMPTS => {
                tracing::info!(
                    attempt,
                    "{what}: conflict with another writer, retrying: {e}"
                );
                // A short, growing pause lets the other writer finish.
                std::thread::sleep(std::time::Duration::from_millis(5 << attempt));
                attempt += 1;
            }
            r => return r,
        }
    }
}

/// One storage transaction: every read and write of one hub operation,
/// its methods grouped by area in the supertraits (a backend implements
/// each in a file of its own).
pub trait StoreTx:
    RegistryTx
    + IngestTx
    + LedgerTx
    + EscrowTx
    + FactLogTx
    + status::StatusTx
    + economy::EconomyTx
    + bounds::BoundsTx
    + history::HistoryTx
    + holder::HolderTx
    + voucher::VoucherTx
    + donation::DonationTx
    + link_request::LinkRequestTx
{
    /// Makes every write durable and visible.
    fn commit(self: Box<Self>) -> Result<(), StoreError>;
}

/// The registry: municipalities, facilities, nodes and their chains,
/// accounts, cards, programmes, facility cards (part of [`StoreTx`]).
pub trait RegistryTx {
    // --- registry: municipalities, facilities ---

    /// A municipality by code.
    fn municipality(&mut self, code: MunicipalityCode) -> Result<Option<Municipality>, StoreError>;
    /// Adds a municipality (the caller checked it is new).
    fn insert_municipality(&mut self, m: &Municipality, now: UnixMillis) -> Result<(), StoreError>;
    /// Every municipality.
    fn municipalities(&mut self) -> Result<Vec<Municipality>, StoreError>;
    /// A facility by id.
    fn facility(&mut self, id: &FacilityId) -> Result<Option<Facility>, StoreError>;
    /// Adds a facility (the caller checked it is new and its municipality exists).
    fn insert_facility(&mut self, f: &Facility, now: UnixMillis) -> Result<(), StoreError>;

    // --- registry: nodes ---

    /// A node by key.
    fn node(&mut self, id: &NodeId) -> Result<Option<NodeRecord>, StoreError>;
    /// Enrols a node or replaces its facility and policy; its chain is kept.
    fn upsert_node(&mut self, n: &NodeRecord) -> Result<(), StoreError>;
    /// Marks a node revoked.
    fn revoke_node(&mut self, id: &NodeId, now: UnixMillis) -> Result<(), StoreError>;
    /// How far the node's chain is processed ([`ChainHead::EMPTY`] if never).
    fn chain_head(&mut self, id: &NodeId) -> Result<ChainHead, StoreError>;
    /// Moves the node's chain head.
    fn set_chain_head(&mut self, id: &NodeId, head: ChainHead) -> Result<(), StoreError>;
    /// Records a session opening.
    fn record_contact(&mut self, id: &NodeId, c: &NodeContact) -> Result<(), StoreError>;
    /// Every node with its chain and last contact.
    fn node_statuses(&mut self) -> Result<Vec<NodeStatus>, StoreError>;

    // --- registry: accounts, cards, programmes, facility cards ---

    /// An account by id.
    fn account(&mut self, id: AccountId) -> Result<Option<Account>, StoreError>;
    /// The account that holds or held this alias (aliases are never reused).
    fn account_by_my_key_id(&mut self, id: &MyKeyId) -> Result<Option<AccountId>, StoreError>;
    /// Creates an account with a fresh id (the caller checked the alias is free).
    fn insert_account(
        &mut self,
        my_key_id: &MyKeyId,
        municipality: MunicipalityCode,
        now: UnixMillis,
    ) -> Result<AccountId, StoreError>;
    /// Gives an account a new alias; the old one stays reserved to it.
    fn set_my_key_id(
        &mut self,
        account: AccountId,
        new: &MyKeyId,
        now: UnixMillis,
    ) -> Result<(), StoreError>;
    /// A card by key.
    fn card(&mut self, card: &CardKey) -> Result<Option<CardRecord>, StoreError>;
    /// Registers a card (the caller checked it is new).
    fn insert_card(&mut self, rec: &CardRecord, now: UnixMillis) -> Result<(), StoreError>;
    /// Changes a card's status.
    fn set_card_status(
        &mut self,
        card: &CardKey,
        status: CardStatus,
        now: UnixMillis,
    ) -> Result<(), StoreError>;
    /// Every card of an account.
    fn cards_of(&mut self, account: AccountId) -> Result<Vec<CardRecord>, StoreError>;
    /// Every account (of one municipality, or all), in id order.
    fn accounts(&mut self, m: Option<MunicipalityCode>) -> Result<Vec<Account>, StoreError>;
    /// Every card, in (issuer, serial) order: for naming a card by a prefix
    /// of its short hash, which no index holds.
    fn cards(&mut self) -> Result<Vec<CardRecord>, StoreError>;
    /// A programme by id.
    fn program(&mut self, id: &ProgramId) -> Result<Option<Program>, StoreError>;
    /// Adds a programme.
    fn insert_program(&mut self, p: &Program, now: UnixMillis) -> Result<(), StoreError>;
    /// Every programme.
    fn programs(&mut self) -> Result<Vec<Program>, StoreError>;
    /// Which account a facility card number is linked to.
    fn facility_card(
        &mut self,
        facility: &FacilityId,
        number: &FacilityCardNumber,
    ) -> Result<Option<AccountId>, StoreError>;
    /// The numbers of one facility linked to an account, in order.
    fn facility_cards_of(
        &mut self,
        facility: &FacilityId,
        account: AccountId,
    ) -> Result<Vec<FacilityCardNumber>, StoreError>;
    /// Links a facility card number (the caller checked it is free).
    fn link_facility_card(
        &mut self,
        facility: &FacilityId,
        number: &FacilityCardNumber,
        account: AccountId,
        now: UnixMillis,
    ) -> Result<(), StoreError>;
    /// Removes a link.
    fn unlink_facility_card(
        &mut self,
        facility: &FacilityId,
        number: &FacilityCardNumber,
    ) -> Result<(), StoreError>;
    /// Records, in the transaction that carries it out, that the holder
    /// order whose challenge (`HolderOrder::challenge`) is this was carried
    /// out. `false` when it was already: a replay, and the caller changes
    /// nothing.
    fn claim_holder_order(
        &mut self,
        challenge: &[u8; 32],
        now: UnixMillis,
    ) -> Result<bool, StoreError>;
}

/// What ingest records: processed transactions and incidents (part of
/// [`StoreTx`]).
pub trait IngestTx {
    /// The transaction processed at (node, seq), if any.
    fn processed_tx(&mut self, node: &NodeId, seq: u64) -> Result<Option<ProcessedTx>, StoreError>;
    /// Stores a processed transaction and its verdict.
    fn insert_processed_tx(
        &mut self,
        tx: &VerifiedTx,
        outcome: &Outcome,
        now: UnixMillis,
    ) -> Result<(), StoreError>;
    /// How many times a transaction id is stored as processed (0 or 1).
    fn tx_count(&mut self, id: &TxId) -> Result<u64, StoreError>;
    /// Records an incident for operators.
    fn record_incident(&mut self, incident: &Incident) -> Result<(), StoreError>;
    /// Incidents, newest last, at most `limit`.
    fn incidents(&mut self, limit: u32) -> Result<Vec<Incident>, StoreError>;
    /// Incidents with their numbers, newest last, at most `limit` (only
    /// number `id`, if given).
    fn numbered_incidents(
        &mut self,
        limit: u32,
        id: Option<u64>,
    ) -> Result<Vec<(u64, Incident)>, StoreError>;
    /// How many incidents of each kind were ever recorded (kinds with none left out).
    fn incident_counts(&mut self) -> Result<Vec<(IncidentKind, u64)>, StoreError>;
}

/// The double-entry ledger (part of [`StoreTx`]).
pub trait LedgerTx {
    /// Posted totals of a ledger account (zero if it never moved).
    fn posted(&mut self, account: &LedgerAccount) -> Result<Posted, StoreError>;
    /// Posted totals of a holder's wallet and debt in one municipality.
    fn holder_posted(
        &mut self,
        account: AccountId,
        municipality: MunicipalityCode,
    ) -> Result<(Posted, Posted), StoreError> {
        Ok((
            self.posted(&LedgerAccount::Wallet(account, municipality))?,
            self.posted(&LedgerAccount::Debt(account, municipality))?,
        ))
    }
    /// Posts a transfer; returns its ledger position.
    fn post(&mut self, t: &TransferDraft, now: UnixMillis) -> Result<u64, StoreError>;
    /// The position of the last transfer (0: none).
    fn ledger_head(&mut self) -> Result<u64, StoreError>;
    /// Running ledger-wide totals.
    fn ledger_totals(&mut self) -> Result<Posted, StoreError>;
    /// Transfers after a position, at most `limit`.
    fn transfers(&mut self, after: u64, limit: u32) -> Result<Vec<Transfer>, StoreError>;
    /// Every non-zero debt.
    fn debts(&mut self) -> Result<Vec<DebtLine>, StoreError>;
    /// Totals recomputed from the transfers.
    fn ledger_audit(&mut self) -> Result<LedgerAudit, StoreError>;
}

/// Strict mode: the per-municipality switch and escrow rights (part of
/// [`StoreTx`]).
pub trait EscrowTx {
    /// Whether strict mode is on for a municipality.
    fn strict_mode(&mut self, m: MunicipalityCode) -> Result<bool, StoreError>;
    /// Turns strict mode on or off for a municipality.
    fn set_strict_mode(
        &mut self,
        m: MunicipalityCode,
        on: bool,
        now: UnixMillis,
    ) -> Result<(), StoreError>;
    /// Records a spend right granted to a node; returns its id.
    fn insert_spend_right(&mut self, right: &SpendRightRow) -> Result<u64, StoreError>;
    /// Marks a node's live rights on an account released.
    fn release_spend_rights(
        &mut self,
        account: AccountId,
        m: MunicipalityCode,
        node: &NodeId,
        now: UnixMillis,
    ) -> Result<(), StoreError>;
    /// (account, node) of every live (unreleased) right of a municipality.
    fn live_spend_rights(
        &mut self,
        m: MunicipalityCode,
    ) -> Result<Vec<(AccountId, NodeId)>, StoreError>;
    /// Every escrow ledger account of a municipality with its balance.
    fn escrow_balances(
        &mut self,
        m: MunicipalityCode,
    ) -> Result<Vec<(AccountId, NodeId, i128)>, StoreError>;
    /// Accounts whose wallet in `m` holds points, in id order.
    fn wallets_with_points(&mut self, m: MunicipalityCode) -> Result<Vec<AccountId>, StoreError>;
    /// Whether a right transfer (by its transaction id) moved a reservation already.
    fn right_transfer_applied(&mut self, tx: &TxId) -> Result<bool, StoreError>;
    /// Records that a right transfer moved its reservation.
    fn mark_right_transfer(&mut self, tx: &TxId, now: UnixMillis) -> Result<(), StoreError>;
}

/// The fact log, its placement in shards and the shard epochs (part of
/// [`StoreTx`]).
pub trait FactLogTx {
    /// The last hub_seq used (0: none).
    fn last_hub_seq(&mut self) -> Result<u64, StoreError>;
    /// Appends a fact (its `hub_seq` = last + 1) in `scope`.
    fn append_fact(
        &mut self,
        scope: &Scope,
        fact: &StoredFact,
        now: UnixMillis,
    ) -> Result<(), StoreError>;
    /// The latest fact of each subject that starts with `prefix` (which
    /// must end in a byte below 0xff), in subject order.
    fn latest_facts_by_subject(&mut self, prefix: &[u8]) -> Result<Vec<StoredFact>, StoreError>;
    /// Facts of exactly this scope after `after`, in hub_seq order, at most
    /// `limit`: log facts only (those not kept in shards), or with `all`
    /// keyed ones too.
    fn facts_in_scope(
        &mut self,
        scope: &Scope,
        after: u64,
        limit: u32,
        all: bool,
    ) -> Result<Vec<StoredFact>, StoreError>;
    /// Keyed facts of exactly this scope in `after..=through`, in hub_seq
    /// order, at most `limit`.
    fn placed_facts(
        &mut self,
        scope: &Scope,
        after: u64,
        through: u64,
        limit: u32,
    ) -> Result<Vec<PlacedFact>, StoreError>;
    /// The scope's current shard epoch (`None`: epoch 0 with the hub's
    /// default bucket count).
    fn shard_epoch(&mut self, scope: &Scope) -> Result<Option<ShardEpochRow>, StoreError>;
    /// Starts a new shard epoch for the scope.
    fn put_shard_epoch(&mut self, scope: &Scope, row: &ShardEpochRow) -> Result<(), StoreError>;
    /// The scope keys ([`scope_key`]) that have keyed facts.
    fn fact_scopes(&mut self) -> Result<Vec<String>, StoreError>;
    /// Distinct item keys of the scope's municipality or facility shards
    /// (deny items excepted), per `bucket_hash & (MAX_BUCKETS - 1)`: the
    /// fill of any bucket count is a sum of these.
    fn shard_fill(&mut self, scope: &Scope) -> Result<Vec<(u16, u64)>, StoreError>;
    /// The scope keys with keyed facts after `after` (hub_seq).
    fn scopes_placed_after(&mut self, after: u64) -> Result<Vec<String>, StoreError>;
}

/// A spend right as the hub records it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SpendRightRow {
    /// The holder.
    pub account: AccountId,
    /// Whose points.
    pub municipality: MunicipalityCode,
    /// The node that may spend them.
    pub node: NodeId,
    /// How many were reserved.
    pub points: mykey_sync_proto::Points,
    /// When.
    pub granted_at: UnixMillis,
}

/// The text form of a scope that backends index facts by.
pub fn scope_key(scope: &Scope) -> String {
    match scope {
        Scope::All => "all".to_owned(),
        Scope::Municipality(m) => format!("m:{m}"),
        Scope::Facility(f) => format!("f:{f}"),
        Scope::Node(n) => format!("n:{n}"),
    }
}
