//! The hub's own records: registry rows and ledger accounts.
//!
//! These are the hub's types, not wire types: they never derive `Serialize`.
//! A storage backend maps them to rows; the deciding code in [`crate::rules`]
//! reads them.

use mykey_sync_proto::fact::CardStatus;
use mykey_sync_proto::{
    AccountId, CardKey, FacilityId, MunicipalityCode, MyKeyId, NodeId, OpKind, Points, ProgramId,
    TxId, UnixMillis,
};
use std::fmt;

/// A municipality the hub serves.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Municipality {
    /// Its local government code.
    pub code: MunicipalityCode,
    /// Its name, for operators.
    pub name: String,
}

/// What kind of place a facility is (display and reporting only; the rules
/// look at a node's allowed operations, not at the kind).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FacilityKind {
    /// A public library.
    Library,
    /// A museum.
    Museum,
    /// A sports hall.
    SportsHall,
    /// A community centre (grants volunteer and health points).
    CommunityCentre,
    /// A shop of the local shopping street.
    Shop,
    /// A festival stall.
    Stall,
}

impl FacilityKind {
    /// Every kind, in a fixed order.
    pub const ALL: [FacilityKind; 6] = [
        FacilityKind::Library,
        FacilityKind::Museum,
        FacilityKind::SportsHall,
        FacilityKind::CommunityCentre,
        FacilityKind::Shop,
        FacilityKind::Stall,
    ];
    /// Lower-case name for storage and CLIs.
    pub fn name(self) -> &'static str {
        match self {
            FacilityKind::Library => "library",
            FacilityKind::Museum => "museum",
            FacilityKind::SportsHall => "sports-hall",
            FacilityKind::CommunityCentre => "community-centre",
            FacilityKind::Shop => "shop",
            FacilityKind::Stall => "stall",
        }
    }
    /// Parses [`FacilityKind::name`].
    pub fn parse(text: &str) -> Option<FacilityKind> {
        FacilityKind::ALL.into_iter().find(|k| k.name() == text)
    }
}

impl fmt::Display for FacilityKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A facility: a library, a shop, a stall. Merchants are facilities.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Facility {
    /// Its id.
    pub id: FacilityId,
    /// The municipality it belongs to.
    pub municipality: MunicipalityCode,
    /// What it is.
    pub kind: FacilityKind,
    /// Its name, for operators.
    pub name: String,
}

/// What the hub allows a node and how much risk it may take offline.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NodePolicy {
    /// Operations the node may sign.
    pub allowed_ops: Vec<OpKind>,
    /// Points one card may spend at the node since the last hub confirmation.
    pub per_card_offline_limit: Points,
    /// All unconfirmed spend at the node.
    pub node_exposure_limit: Points,
    /// Spends above this need the PIN.
    pub pin_threshold: Points,
    /// The node's certificate is void after this time.
    pub valid_until: UnixMillis,
    /// Points of printed vouchers the node may take while the hub has not
    /// confirmed them; also what the hub pays at most, less its earlier
    /// pays, for the node's double-redeem incidents (`rules::voucher`).
    pub offline_voucher_cap: Points,
}

/// The offline voucher cap of a node enrolled without `--voucher-cap`: a
/// day's takings of a small shop or festival stall, and never more than the
/// node's exposure limit ([`default_voucher_cap`]).
pub const DEFAULT_VOUCHER_CAP_POINTS: u64 = 10_000;

/// The offline voucher cap a node gets by default: the smaller of
/// [`DEFAULT_VOUCHER_CAP_POINTS`] and its exposure limit.
pub fn default_voucher_cap(node_exposure_limit: Points) -> Points {
    Points::new(DEFAULT_VOUCHER_CAP_POINTS)
        .unwrap_or(Points::ZERO)
        .min(node_exposure_limit)
}

impl NodePolicy {
    /// Whether the node may sign `op`.
    pub fn allows(&self, op: OpKind) -> bool {
        self.allowed_ops.contains(&op)
    }
}

/// An enrolled node.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NodeRecord {
    /// The node key.
    pub id: NodeId,
    /// Its facility.
    pub facility: FacilityId,
    /// Its facility's municipality.
    pub municipality: MunicipalityCode,
    /// Permissions and limits.
    pub policy: NodePolicy,
    /// When it was enrolled (or last re-enrolled).
    pub enrolled_at: UnixMillis,
    /// When its key was revoked, if it was.
    pub revoked_at: Option<UnixMillis>,
}

impl NodeRecord {
    /// True once revoked; a revoked key never comes back (enrol a new key).
    pub fn is_revoked(&self) -> bool {
        self.revoked_at.is_some()
    }
}

/// How far the hub has processed a node's chain.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ChainHead {
    /// Highest seq processed (accepted or rejected for a business reason); 0: none.
    pub processed_seq: u64,
    /// The id of that transaction; [`TxId::GENESIS`] for none.
    pub head: TxId,
}

impl ChainHead {
    /// A chain with nothing processed.
    pub const EMPTY: ChainHead = ChainHead {
        processed_seq: 0,
        head: TxId::GENESIS,
    };
}

/// What a node told the hub when it last opened a session: the dashboard's view.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NodeContact {
    /// The hub's clock at the contact.
    pub at: UnixMillis,
    /// Node clock minus hub clock, in milliseconds.
    pub clock_skew_ms: i64,
    /// The node's software version string.
    pub software: String,
    /// The highest seq the node said it has signed.
    pub reported_last_seq: u64,
    /// The node's fact cursor.
    pub fact_cursor: u64,
}

/// One line of the node listing.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NodeStatus {
    /// The node.
    pub node: NodeRecord,
    /// Its chain at the hub.
    pub chain: ChainHead,
    /// Its last session, if it ever opened one.
    pub last_contact: Option<NodeContact>,
    /// Transactions of this node the hub rejected (business reasons).
    pub n_rejected: u64,
    /// Chain-level incidents (forgeries, gaps, forks) recorded for this node.
    pub n_incidents: u64,
    /// The hub's clock when the node first reported transactions the hub has
    /// not processed yet (`None`: nothing unconfirmed). The node signed the
    /// oldest of them at or before this time.
    pub pending_since: Option<UnixMillis>,
}

impl NodeStatus {
    /// Transactions the node has signed that the hub has not processed, as
    /// far as the node's last report tells.
    pub fn n_unconfirmed(&self) -> u64 {
        self.last_contact.as_ref().map_or(0, |c| {
            c.reported_last_seq.saturating_sub(self.chain.processed_seq)
        })
    }
}

/// A card holder's account.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Account {
    /// The hub's immutable id.
    pub id: AccountId,
    /// The current alias.
    pub my_key_id: MyKeyId,
    /// The holder's base municipality.
    pub municipality: MunicipalityCode,
    /// When it was registered.
    pub created_at: UnixMillis,
}

/// A card key registered to an account.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CardRecord {
    /// The card.
    pub card: CardKey,
    /// Its account.
    pub account: AccountId,
    /// Active, superseded or suspended.
    pub status: CardStatus,
}

/// A grant programme.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Program {
    /// Its id.
    pub id: ProgramId,
    /// The municipality that runs and funds it.
    pub municipality: MunicipalityCode,
}

/// An account of the double-entry ledger.
///
/// Every ledger account has `debits_posted` and `credits_posted`; which
/// difference is its "balance" depends on the kind (see [`LedgerAccount::balance`]).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum LedgerAccount {
    /// A holder's spendable regional points of one municipality (credit-normal).
    Wallet(AccountId, MunicipalityCode),
    /// What a holder owes from offline overdraft in one municipality (debit-normal).
    Debt(AccountId, MunicipalityCode),
    /// A programme's budget (credit-normal; negative when overdrawn).
    ProgramBudget(ProgramId, MunicipalityCode),
    /// Where a municipality's programme funding comes from (debit-normal).
    MunicipalityFunding(MunicipalityCode),
    /// Points a merchant accepted and will be reimbursed for (credit-normal).
    MerchantPayable(FacilityId, MunicipalityCode),
    /// A national point operator's receivable (exchange; settlement issue).
    OperatorReceivable(String, MunicipalityCode),
    /// Expired points released from liability (expiry; settlement issue).
    ExpiryIncome(MunicipalityCode),
    /// A holder's exchanged points in their holding period: owed to the
    /// holder, not yet spendable (credit-normal; see [`crate::economy`]).
    Held(AccountId, MunicipalityCode),
    /// Strict mode: a holder's points reserved for one node to spend offline
    /// (credit-normal; the node's spend right, see [`crate::escrow`]).
    Escrow(AccountId, MunicipalityCode, NodeId),
    /// Spends a facility's node signed beyond the bounds the hub enrolled,
    /// held as evidence: settlement never pays them (credit-normal; see
    /// [`crate::bounds`]). An operator's release pays them, a rejection
    /// drops them.
    Quarantined(FacilityId, MunicipalityCode),
    /// The other side of [`LedgerAccount::Quarantined`]: the claims held
    /// against the municipality's points, not charged to any holder
    /// (debit-normal).
    QuarantineClaims(MunicipalityCode),
    /// Points in printed vouchers not yet redeemed: issue moves them here
    /// from a programme's budget, a redemption pays a merchant from here, a
    /// cancelled batch returns them (credit-normal; see [`crate::voucher`]).
    VoucherFloat(MunicipalityCode),
    /// Points a holder gave to a donation programme, owed to its recipient
    /// until settlement pays them (credit-normal; see [`crate::donation`]):
    /// one account per holder and programme, so the holder's history finds
    /// a donation made through an operator's exchange as well as one made
    /// at a kiosk.
    Donated(AccountId, ProgramId, MunicipalityCode),
}

impl LedgerAccount {
    /// Storage kind name.
    pub fn kind(&self) -> &'static str {
        match self {
            LedgerAccount::Wallet(..) => "wallet",
            LedgerAccount::Debt(..) => "debt",
            LedgerAccount::ProgramBudget(..) => "budget",
            LedgerAccount::MunicipalityFunding(..) => "funding",
            LedgerAccount::MerchantPayable(..) => "payable",
            LedgerAccount::OperatorReceivable(..) => "receivable",
            LedgerAccount::ExpiryIncome(..) => "expiry",
            LedgerAccount::Held(..) => "held",
            LedgerAccount::Escrow(..) => "escrow",
            LedgerAccount::Quarantined(..) => "quarantined",
            LedgerAccount::QuarantineClaims(..) => "quarantine-claims",
            LedgerAccount::VoucherFloat(..) => "voucher-float",
            LedgerAccount::Donated(..) => "donated",
        }
    }

    /// Storage key, unique within the kind.
    pub fn key(&self) -> String {
        match self {
            LedgerAccount::Wallet(a, m) | LedgerAccount::Debt(a, m) | LedgerAccount::Held(a, m) => {
                format!("{}@{m}", a.get())
            }
            LedgerAccount::ProgramBudget(p, _) => p.as_str().to_owned(),
            LedgerAccount::MunicipalityFunding(m)
            | LedgerAccount::ExpiryIncome(m)
            | LedgerAccount::QuarantineClaims(m)
            | LedgerAccount::VoucherFloat(m) => m.to_string(),
            LedgerAccount::MerchantPayable(f, _) | LedgerAccount::Quarantined(f, _) => {
                f.as_str().to_owned()
            }
            LedgerAccount::OperatorReceivable(o, m) => format!("{o}@{m}"),
            LedgerAccount::Escrow(a, m, n) => format!("{}@{m}@{n}", a.get()),
            LedgerAccount::Donated(a, p, m) => format!("{}@{m}@{p}", a.get()),
        }
    }

    /// The municipality whose points the account holds.
    pub fn municipality(&self) -> MunicipalityCode {
        match self {
            LedgerAccount::Wallet(_, m)
            | LedgerAccount::Debt(_, m)
            | LedgerAccount::ProgramBudget(_, m)
            | LedgerAccount::MunicipalityFunding(m)
            | LedgerAccount::MerchantPayable(_, m)
            | LedgerAccount::OperatorReceivable(_, m)
            | LedgerAccount::ExpiryIncome(m)
            | LedgerAccount::Held(_, m)
            | LedgerAccount::Escrow(_, m, _)
            | LedgerAccount::Quarantined(_, m)
            | LedgerAccount::QuarantineClaims(m)
            | LedgerAccount::VoucherFloat(m)
            | LedgerAccount::Donated(_, _, m) => *m,
        }
    }

    /// True for accounts whose natural balance is debits minus credits.
    pub fn is_debit_normal(&self) -> bool {
        matches!(
            self,
            LedgerAccount::Debt(..)
                | LedgerAccount::MunicipalityFunding(..)
                | LedgerAccount::OperatorReceivable(..)
                | LedgerAccount::QuarantineClaims(..)
        )
    }

    /// The natural balance from posted totals (may be negative, e.g. an
    /// overdrawn programme budget).
    pub fn balance(&self, posted: Posted) -> i128 {
        let (d, c) = (i128::from(posted.debits), i128::from(posted.credits));
        if self.is_debit_normal() { d - c } else { c - d }
    }
}

impl fmt::Display for LedgerAccount {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.kind(), self.key())
    }
}

/// Posted totals of one ledger account.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Posted {
    /// Sum of amounts debited.
    pub debits: u64,
    /// Sum of amounts credited.
    pub credits: u64,
}

/// Why points moved.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum TransferKind {
    /// Municipality funds a programme budget.
    Funding,
    /// Programme budget credits a wallet (node grant or hub grant).
    Grant,
    /// Wallet pays a merchant.
    Redeem,
    /// The part of a redemption the wallet could not cover: the holder's debt pays the merchant.
    RedeemOnDebt,
    /// A later credit pays back debt: wallet to debt.
    DebtRecovery,
    /// Points expire: wallet to expiry income (settlement issue).
    Expiry,
    /// A correcting transfer posted by an operator (never an edit of an old one).
    Correction,
    /// A national point operator's points become regional points: operator
    /// receivable to wallet (or to held, with a holding period).
    Exchange,
    /// A campaign premium on an exchange, funded by the municipality.
    Premium,
    /// Held points become spendable at the end of their holding period.
    Release,
    /// Strict mode: wallet points reserved for a node's spend right.
    Reserve,
    /// Strict mode: a node's unused reserved points return to the wallet.
    Unreserve,
    /// Strict mode: a node gave part of its right to another node.
    RightMove,
    /// A spend beyond the node's enrolled bounds, held as evidence:
    /// quarantine claims to quarantined (never paid by settlement).
    Quarantine,
    /// An operator decided a quarantined spend (released: its redeem legs
    /// follow; rejected: nothing follows): quarantined back to the claims.
    QuarantineDecided,
    /// A printed voucher batch: programme budget to the voucher float.
    VoucherIssue,
    /// A voucher redeemed at a shop: voucher float to the merchant.
    VoucherRedeem,
    /// A cancelled batch's unredeemed vouchers: voucher float back to the budget.
    VoucherCancel,
    /// An expired batch's unredeemed vouchers: voucher float back to the budget.
    VoucherExpire,
    /// A holder gave points to a donation programme at a kiosk: wallet to
    /// donated (an operator's exchange straight into a programme is an
    /// `Exchange` from the operator's receivable to donated).
    Donation,
    /// A holder turned points into vouchers at a kiosk (issue 17 part
    /// 1(a)): wallet to the voucher float (spent, as the conservation audit
    /// counts it).
    KioskVoucherIssue,
    /// A kiosk batch's unredeemed vouchers at expiry: voucher float back to
    /// the holder's wallet (credited again).
    KioskVoucherReturn,
}

impl TransferKind {
    /// Every kind.
    pub const ALL: [TransferKind; 22] = [
        TransferKind::Funding,
        TransferKind::Grant,
        TransferKind::Redeem,
        TransferKind::RedeemOnDebt,
        TransferKind::DebtRecovery,
        TransferKind::Expiry,
        TransferKind::Correction,
        TransferKind::Exchange,
        TransferKind::Premium,
        TransferKind::Release,
        TransferKind::Reserve,
        TransferKind::Unreserve,
        TransferKind::RightMove,
        TransferKind::Quarantine,
        TransferKind::QuarantineDecided,
        TransferKind::VoucherIssue,
        TransferKind::VoucherRedeem,
        TransferKind::VoucherCancel,
        TransferKind::VoucherExpire,
        TransferKind::Donation,
        TransferKind::KioskVoucherIssue,
        TransferKind::KioskVoucherReturn,
    ];
    /// Storage name.
    pub fn name(self) -> &'static str {
        match self {
            TransferKind::Funding => "funding",
            TransferKind::Grant => "grant",
            TransferKind::Redeem => "redeem",
            TransferKind::RedeemOnDebt => "redeem-on-debt",
            TransferKind::DebtRecovery => "debt-recovery",
            TransferKind::Expiry => "expiry",
            TransferKind::Correction => "correction",
            TransferKind::Exchange => "exchange",
            TransferKind::Premium => "premium",
            TransferKind::Release => "release",
            TransferKind::Reserve => "reserve",
            TransferKind::Unreserve => "unreserve",
            TransferKind::RightMove => "right-move",
            TransferKind::Quarantine => "quarantine",
            TransferKind::QuarantineDecided => "quarantine-decided",
            TransferKind::VoucherIssue => "voucher-issue",
            TransferKind::VoucherRedeem => "voucher-redeem",
            TransferKind::VoucherCancel => "voucher-cancel",
            TransferKind::VoucherExpire => "voucher-expire",
            TransferKind::Donation => "donation",
            TransferKind::KioskVoucherIssue => "kiosk-voucher-issue",
            TransferKind::KioskVoucherReturn => "kiosk-voucher-return",
        }
    }
    /// Parses [`TransferKind::name`].
    pub fn parse(text: &str) -> Option<TransferKind> {
        TransferKind::ALL.into_iter().find(|k| k.name() == text)
    }
}

/// A transfer to post: `amount` moves from `debit` to `credit`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TransferDraft {
    /// The account debited.
    pub debit: LedgerAccount,
    /// The account credited.
    pub credit: LedgerAccount,
    /// How much; never zero.
    pub amount: Points,
    /// Why.
    pub kind: TransferKind,
    /// The signed transaction that caused it, if a node's.
    pub origin_tx: Option<TxId>,
    /// The node's clock when it signed, if a node's.
    pub node_time: Option<UnixMillis>,
}

/// A posted transfer, as read back.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Transfer {
    /// Its ledger position (unique, increasing).
    pub pos: u64,
    /// The account debited.
    pub debit: LedgerAccount,
    /// The account credited.
    pub credit: LedgerAccount,
    /// How much.
    pub amount: Points,
    /// Why.
    pub kind: TransferKind,
    /// The signed transaction that caused it.
    pub origin_tx: Option<TxId>,
    /// The hub's clock when posted.
    pub hub_time: UnixMillis,
    /// The node's clock when it signed.
    pub node_time: Option<UnixMillis>,
}

/// A holder's points in one municipality.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Balance {
    /// Spendable points.
    pub balance: Points,
    /// Debt from offline overdraft.
    pub debt: Points,
}

/// One line of the debt report.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DebtLine {
    /// The holder.
    pub account: AccountId,
    /// Whose points.
    pub municipality: MunicipalityCode,
    /// Outstanding debt.
    pub debt: Points,
}

/// One line of the programme report.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProgramLine {
    /// The programme.
    pub program: Program,
    /// Remaining budget, zero when overdrawn.
    pub budget: Points,
    /// How far grants have overdrawn the budget.
    pub overdrawn: Points,
}

/// Something the hub honoured or refused that an operator should see:
/// forged or broken chains, spends on suspended cards, overdrawn programmes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Incident {
    /// The hub's clock.
    pub at: UnixMillis,
    /// What happened.
    pub kind: IncidentKind,
    /// The signing node, where known.
    pub node: Option<NodeId>,
    /// Its seq, where known.
    pub seq: Option<u64>,
    /// The transaction id.
    pub tx: Option<TxId>,
    /// Details for the operator.
    pub detail: String,
}

/// Kinds of [`Incident`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IncidentKind {
    /// A transaction was refused at chain level (forgery, unknown or revoked
    /// key, gap, fork, malformed): it changed nothing.
    ChainRejected,
    /// An offline spend was honoured on a card that is suspended or superseded.
    SpendOnInactiveCard,
    /// An offline spend found too little balance and created debt.
    DebtCreated,
    /// A grant overdrew its programme's budget.
    ProgramOverdrawn,
    /// Strict mode: a node spent or gave away more than its right held (a
    /// buggy or malicious node: honoured like an offline overdraft).
    BeyondRight,
    /// A spend beyond the node's enrolled bounds (no valid card proof above
    /// the PIN threshold, or past its per-card or exposure allowance) was
    /// put in quarantine instead of being paid.
    Quarantined,
    /// A printed voucher came back redeemed again (a photocopy, or two
    /// offline shops): the later redemption, with both signed ones.
    VoucherRedeemedTwice,
    /// A shop's redemption of a kiosk voucher, held because the kiosk's
    /// issuing transaction had not reached the hub, is not backed: the
    /// issue has still not arrived by the voucher's last day (it stays held
    /// and is paid if it comes; the kiosk may be lost), or it arrived and
    /// does not record this voucher (unpaid).
    VoucherUnbacked,
}

impl IncidentKind {
    /// Every kind.
    pub const ALL: [IncidentKind; 8] = [
        IncidentKind::ChainRejected,
        IncidentKind::SpendOnInactiveCard,
        IncidentKind::DebtCreated,
        IncidentKind::ProgramOverdrawn,
        IncidentKind::BeyondRight,
        IncidentKind::Quarantined,
        IncidentKind::VoucherRedeemedTwice,
        IncidentKind::VoucherUnbacked,
    ];
    /// Storage name.
    pub fn name(self) -> &'static str {
        match self {
            IncidentKind::ChainRejected => "chain-rejected",
            IncidentKind::SpendOnInactiveCard => "spend-on-inactive-card",
            IncidentKind::DebtCreated => "debt-created",
            IncidentKind::ProgramOverdrawn => "program-overdrawn",
            IncidentKind::BeyondRight => "beyond-right",
            IncidentKind::Quarantined => "quarantined",
            IncidentKind::VoucherRedeemedTwice => "voucher-redeemed-twice",
            IncidentKind::VoucherUnbacked => "voucher-unbacked",
        }
    }
    /// Parses [`IncidentKind::name`].
    pub fn parse(text: &str) -> Option<IncidentKind> {
        IncidentKind::ALL.into_iter().find(|k| k.name() == text)
    }
}
