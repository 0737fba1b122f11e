//! The hub as the simulation sees it: the deciding core behind a narrow
//! trait, so the world drives whichever core is plugged in through the same
//! [`HubService`] the hub binary's sessions use, plus the operator actions a
//! scenario needs and the read-outs the invariant checks need.

use mykey_hub::ticks::{Due, TickReport};
use mykey_jpki::TrustedCert;
use mykey_sync_proto::session::HubService;
use mykey_sync_proto::{
    AccountId, CardKey, CardStatus, FacilityCardNumber, FacilityId, MunicipalityCode, MyKeyId,
    NodeId, OpKind, Points, ProgramId, TxId, UnixMillis,
};

/// What the hub lets a node do offline (mirrors the hub's node policy).
#[derive(Clone, Debug)]
pub struct SimLimits {
    /// Operations allowed.
    pub allowed_ops: Vec<OpKind>,
    /// Per card, since the last confirmation.
    pub per_card_offline_limit: Points,
    /// All unconfirmed spend at the node.
    pub node_exposure_limit: Points,
    /// Spends above this need the PIN.
    pub pin_threshold: Points,
    /// Certificate expiry.
    pub valid_until: UnixMillis,
}

/// A ledger transfer as the payout checks see it.
#[derive(Clone, Debug)]
pub struct SimTransfer {
    /// Ledger position.
    pub pos: u64,
    /// Points moved.
    pub amount: u64,
    /// The merchant payable it credits (owed to that facility).
    pub to_payable: Option<FacilityId>,
    /// The merchant payable it debits (taken back from that facility).
    pub from_payable: Option<FacilityId>,
    /// A debt-funded redemption (`RedeemOnDebt`): the part of a spend the
    /// holder's balance did not cover.
    pub on_debt: bool,
    /// The signed transaction that caused it.
    pub origin: Option<TxId>,
    /// Expired points moved to expiry income (the economy's timed job).
    pub expiry: bool,
}

/// The kinds of facility the scenarios use.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SiteKind {
    /// A library.
    Library,
    /// A community centre (grants).
    CommunityCentre,
    /// A shop.
    Shop,
    /// A festival stall.
    Stall,
}

/// The hub core under simulation.
pub trait HubCore: HubService {
    /// The hub's public key (nodes verify facts against it).
    fn hub_id(&self) -> NodeId;
    /// Adds a municipality.
    fn add_municipality(&mut self, code: MunicipalityCode, now: UnixMillis) -> anyhow::Result<()>;
    /// Adds a facility.
    fn add_facility(
        &mut self,
        id: &FacilityId,
        municipality: MunicipalityCode,
        kind: SiteKind,
        now: UnixMillis,
    ) -> anyhow::Result<()>;
    /// Enrols a node key at a facility.
    fn enrol(
        &mut self,
        node: NodeId,
        facility: &FacilityId,
        limits: &SimLimits,
        now: UnixMillis,
    ) -> anyhow::Result<()>;
    /// Registers a holder with a card's checked certificate (the hub keeps
    /// its public key for card proofs).
    fn register(
        &mut self,
        my_key_id: &MyKeyId,
        municipality: MunicipalityCode,
        cert: &TrustedCert,
        now: UnixMillis,
    ) -> anyhow::Result<AccountId>;
    /// Creates a funded programme.
    fn add_program(
        &mut self,
        id: &ProgramId,
        municipality: MunicipalityCode,
        budget: Points,
        now: UnixMillis,
    ) -> anyhow::Result<()>;
    /// Credits points to a holder from a programme (a hub-side grant or an
    /// operator exchange).
    fn credit(
        &mut self,
        account: AccountId,
        municipality: MunicipalityCode,
        program: &ProgramId,
        points: Points,
        now: UnixMillis,
    ) -> anyhow::Result<()>;
    /// Suspends a lost card.
    fn suspend(&mut self, card: &CardKey, now: UnixMillis) -> anyhow::Result<()>;
    /// Reinstates a suspended card (the holder found it).
    fn reinstate(&mut self, card: &CardKey, now: UnixMillis) -> anyhow::Result<()>;
    /// Links a renewed card (its checked certificate) to an account; its
    /// active card becomes superseded.
    fn renew(
        &mut self,
        account: AccountId,
        cert: &TrustedCert,
        now: UnixMillis,
    ) -> anyhow::Result<()>;
    /// Every quarantined spend (held, released or rejected): (transaction,
    /// signer, points held, the bound it broke).
    fn quarantined(&mut self) -> anyhow::Result<Vec<(TxId, NodeId, Points, String)>>;
    /// (balance, debt) of a holder.
    fn balance(
        &mut self,
        account: AccountId,
        municipality: MunicipalityCode,
    ) -> anyhow::Result<(Points, Points)>;
    /// The shards `node` receives, each with the heads of the hub's
    /// document (invariant 3: every replica equals the hub's view).
    fn shard_heads(
        &mut self,
        node: &NodeId,
    ) -> anyhow::Result<Vec<(mykey_sync_proto::shard::ShardHead, Vec<[u8; 32]>)>>;
    /// A card's status, if registered.
    fn card_status(&mut self, card: &CardKey) -> anyhow::Result<Option<CardStatus>>;
    /// The id of `node`'s processed transaction at `seq`, if processed.
    fn processed(&mut self, node: &NodeId, seq: u64) -> anyhow::Result<Option<TxId>>;
    /// How far `node`'s chain is processed.
    fn processed_seq(&mut self, node: &NodeId) -> anyhow::Result<u64>;
    /// How many ledger effects a transaction has (0 or 1 when correct).
    fn applications(&mut self, tx: &TxId) -> anyhow::Result<u64>;
    /// Invariant 1: `Err` describes the imbalance.
    fn check_conservation(&mut self) -> anyhow::Result<Result<(), String>>;
    /// Total outstanding debt.
    fn total_debt(&mut self) -> anyhow::Result<Points>;
    /// The process dies and restarts from its durable store.
    fn crash_restart(&mut self) -> anyhow::Result<()>;
    /// The numbers of `facility` linked to `account`, in order.
    fn facility_numbers(
        &mut self,
        facility: &FacilityId,
        account: AccountId,
    ) -> anyhow::Result<Vec<FacilityCardNumber>>;
    /// Turns strict mode on for a municipality.
    fn set_strict(&mut self, m: MunicipalityCode, now: UnixMillis) -> anyhow::Result<()>;
    /// Splits every holder's balance among `nodes` as spend rights; returns
    /// the points reserved.
    fn escrow_grant(
        &mut self,
        m: MunicipalityCode,
        nodes: &[NodeId],
        now: UnixMillis,
    ) -> anyhow::Result<u64>;
    /// Ends every right; returns the points that went back to the wallets.
    fn escrow_release(&mut self, m: MunicipalityCode, now: UnixMillis) -> anyhow::Result<u64>;
    /// Ledger transfers after position `pos`, at most `limit`, in order.
    fn transfers_after(&mut self, pos: u64, limit: u32) -> anyhow::Result<Vec<SimTransfer>>;
    /// Issues the roster of a LAN group: the nodes that admit each other
    /// as LAN peers.
    fn lan_roster(
        &mut self,
        m: MunicipalityCode,
        group: &str,
        nodes: &[NodeId],
        now: UnixMillis,
    ) -> anyhow::Result<()>;
    /// The points reserved for each (holder account, node), non-zero only.
    fn escrows(&mut self, m: MunicipalityCode) -> anyhow::Result<Vec<(AccountId, NodeId, Points)>>;
    /// The hub's timed jobs, the very call the serving loop makes
    /// (`Hub::run_ticks`): `live` are the nodes whose links are up.
    fn run_ticks(&mut self, due: Due, live: &[NodeId], now: UnixMillis) -> TickReport;
    /// Sets when a programme's grants expire: `days` after each grant.
    fn set_program_expiry(&mut self, program: &ProgramId, days: u32) -> anyhow::Result<()>;
    /// Sets the hub's shard target (items per shard); kept across restarts,
    /// as the binary's configuration would be.
    fn set_shard_target(&mut self, items_per_shard: u64);
    /// A settlement run on demand: closes every period of `m` through `now`;
    /// returns how many closed.
    fn settle_now(&mut self, m: MunicipalityCode, now: UnixMillis) -> anyhow::Result<usize>;
}
