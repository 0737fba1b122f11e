//! The economy's row types: what storage keeps for exchanges, lots,
//! settlement periods and statements, recorded settlement files and bank
//! accounts, with their own small pure methods (parse, name, dates).
//!
//! Storage ([`crate::store::economy`]) imports these and never the economy's
//! logic; the economy's modules re-export them where they were first named
//! (`economy::exchange::ExchangeRecord`, `economy::lots::Lot`, …).

use crate::economy::calendar::Date;
use crate::model::Transfer;
use mykey_sync_proto::{AccountId, MunicipalityCode, Points, ProgramId, TxId, UnixMillis};
use std::fmt;

const MS_PER_DAY: u64 = 86_400_000;

/// A holder's wallet: (account, municipality).
pub type WalletKey = (AccountId, MunicipalityCode);

// ── Exchanges ──

/// A national point operator's id (1-32 of a-z, 0-9, '-').
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct OperatorId(pub(crate) String);

impl OperatorId {
    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for OperatorId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for OperatorId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "OperatorId({})", self.0)
    }
}

/// Regional points per operator point, as a ratio (rounded down per request).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Rate {
    /// Numerator.
    pub num: u64,
    /// Denominator.
    pub den: u64,
}

impl Rate {
    /// A positive ratio.
    pub fn new(num: u64, den: u64) -> Option<Rate> {
        (num > 0 && den > 0).then_some(Rate { num, den })
    }
    /// Parses `N/D` or `N`.
    pub fn parse(text: &str) -> Option<Rate> {
        match text.split_once('/') {
            Some((n, d)) => Rate::new(n.trim().parse().ok()?, d.trim().parse().ok()?),
            None => Rate::new(text.trim().parse().ok()?, 1),
        }
    }
    /// Regional points for `operator_points`.
    pub fn apply(self, operator_points: u64) -> u64 {
        let v = u128::from(operator_points) * u128::from(self.num) / u128::from(self.den);
        u64::try_from(v).unwrap_or(u64::MAX)
    }
}

impl fmt::Display for Rate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.num, self.den)
    }
}

/// An enrolled national point operator.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ExchangeOperator {
    /// Its id.
    pub id: OperatorId,
    /// Its name.
    pub name: String,
    /// Its ed25519 public key: requests are signed with it.
    pub public_key: [u8; 32],
    /// Its rate.
    pub rate: Rate,
    /// Days before exchanged points become spendable (0: at once).
    pub holding_days: u32,
    /// When exchanged points expire.
    pub expiry: ExpiryPolicy,
}

/// A campaign premium of a municipality.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Campaign {
    /// Its id.
    pub id: String,
    /// The municipality that funds it.
    pub municipality: MunicipalityCode,
    /// Only exchanges from this operator (`None`: any).
    pub operator: Option<OperatorId>,
    /// Premium in percent of the regional points.
    pub percent: u32,
    /// Window start (inclusive, hub clock).
    pub starts_at: UnixMillis,
    /// Window end (exclusive).
    pub ends_at: UnixMillis,
    /// Most premium one holder may receive from it.
    pub cap_per_account: Points,
}

impl Campaign {
    /// Whether an exchange from `op` at `now` earns this premium.
    pub fn applies(&self, op: &OperatorId, now: UnixMillis) -> bool {
        self.starts_at <= now
            && now < self.ends_at
            && self.operator.as_ref().is_none_or(|o| o == op)
    }
}

/// A stored exchange: the transfer history the platform keeps (operator,
/// points, time), never what the points buy.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ExchangeRecord {
    /// The operator.
    pub operator: OperatorId,
    /// The operator's request id.
    pub request_id: String,
    /// SHA-256 of the signed request bytes (a replay must match).
    pub request_sha256: [u8; 32],
    /// The holder.
    pub account: AccountId,
    /// Whose regional points.
    pub municipality: MunicipalityCode,
    /// Operator points given up.
    pub operator_points: u64,
    /// Regional points at the operator's rate.
    pub regional: Points,
    /// Campaign premium.
    pub premium: Points,
    /// The campaign that paid it.
    pub campaign: Option<String>,
    /// The operator's clock when it made the request.
    pub requested_at: UnixMillis,
    /// The hub's clock when it applied it.
    pub received_at: UnixMillis,
    /// When the points become spendable: the end of the holding period.
    pub available_at: UnixMillis,
    /// When held points were released (`None`: still held, or never held).
    pub released_at: Option<UnixMillis>,
    /// Origin id of its ledger transfers.
    pub origin: TxId,
    /// Origin id of its release transfer.
    pub release_origin: TxId,
    /// The operator's expiry policy when the exchange was applied: a later
    /// change of the operator's policy leaves these points' expiry alone.
    pub expiry: ExpiryPolicy,
}

impl ExchangeRecord {
    /// Whether the points were held at first.
    pub fn was_held(&self) -> bool {
        self.available_at > self.received_at
    }

    /// When these points expire (`None`: never): the exchange's policy counted
    /// from the end of its holding period, the day they became the holder's
    /// to spend. It follows from the exchange's own dates only, so the lot the
    /// release opens expires the same whenever the release job posts it, and
    /// a holding period never eats into the time the holder has to spend
    /// (an exchange on 30 March under `fy+0` with 3 days' holding expires at
    /// the end of the next fiscal year's 31 March, not before it is spendable).
    pub fn expires_at(&self) -> Option<UnixMillis> {
        self.expiry.expires_at(self.available_at)
    }
}

// ── Lots ──

/// When credited points expire, counted from an instant: when a grant was
/// posted, or when exchanged points became spendable ([`LotTerms`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ExpiryPolicy {
    /// Never.
    Never,
    /// At the end (31 March, 24:00 JST) of the fiscal year `years` after the
    /// one the instant falls in (0: the same fiscal year).
    FiscalYearEnd {
        /// Fiscal years on.
        years: u32,
    },
    /// `days` days after the instant.
    Days {
        /// Days.
        days: u32,
    },
}

impl ExpiryPolicy {
    /// When points counted from `from` expire (`None`: never).
    pub fn expires_at(self, from: UnixMillis) -> Option<UnixMillis> {
        match self {
            ExpiryPolicy::Never => None,
            ExpiryPolicy::FiscalYearEnd { years } => {
                Some(Date::of(from).fiscal_year_end(years).end())
            }
            ExpiryPolicy::Days { days } => Some(from.plus_ms(u64::from(days) * MS_PER_DAY)),
        }
    }

    /// Parses `never`, `fy+N` (fiscal year end N years on) or `Nd` (N days).
    pub fn parse(text: &str) -> Option<ExpiryPolicy> {
        if text == "never" {
            return Some(ExpiryPolicy::Never);
        }
        if let Some(n) = text.strip_prefix("fy+") {
            return n
                .parse()
                .ok()
                .map(|years| ExpiryPolicy::FiscalYearEnd { years });
        }
        text.strip_suffix('d')
            .and_then(|n| n.parse().ok())
            .filter(|d| *d > 0)
            .map(|days| ExpiryPolicy::Days { days })
    }
}

impl fmt::Display for ExpiryPolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ExpiryPolicy::Never => f.write_str("never"),
            ExpiryPolicy::FiscalYearEnd { years } => write!(f, "fy+{years}"),
            ExpiryPolicy::Days { days } => write!(f, "{days}d"),
        }
    }
}

/// Where a lot's points came from.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum LotSource {
    /// A grant programme.
    Program(ProgramId),
    /// An exchange (with its premium) from an operator.
    Operator(OperatorId),
    /// Anything else (an operator's correction).
    Other,
}

impl LotSource {
    /// Parses the [`fmt::Display`] form.
    pub fn parse(text: &str) -> Option<LotSource> {
        if text == "other" {
            return Some(LotSource::Other);
        }
        if let Some(p) = text.strip_prefix("program:") {
            return ProgramId::parse(p).ok().map(LotSource::Program);
        }
        text.strip_prefix("operator:")
            .and_then(|o| OperatorId::parse(o).ok())
            .map(LotSource::Operator)
    }
}

impl fmt::Display for LotSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LotSource::Program(p) => write!(f, "program:{p}"),
            LotSource::Operator(o) => write!(f, "operator:{o}"),
            LotSource::Other => f.write_str("other"),
        }
    }
}

/// Points credited to a holder's wallet in one transfer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Lot {
    /// The ledger position of the crediting transfer (the lot's id).
    pub pos: u64,
    /// The holder.
    pub account: AccountId,
    /// Whose points.
    pub municipality: MunicipalityCode,
    /// Where they came from.
    pub source: LotSource,
    /// Points credited.
    pub amount: u64,
    /// Points not yet spent or expired.
    pub remaining: u64,
    /// When credited (hub clock).
    pub credited_at: UnixMillis,
    /// When the rest expires (`None`: never).
    pub expires_at: Option<UnixMillis>,
}

impl Lot {
    /// The lot `t`'s credit to `wallet` opens: all its points left, with the
    /// source and expiry of `terms`.
    pub fn credited_by(t: &Transfer, wallet: WalletKey, terms: LotTerms) -> Lot {
        let (account, municipality) = wallet;
        Lot {
            pos: t.pos,
            account,
            municipality,
            source: terms.source,
            amount: t.amount.get(),
            remaining: t.amount.get(),
            credited_at: t.hub_time,
            expires_at: terms.expires_at,
        }
    }
}

/// Where a credit's points come from and when they expire. A grant's points
/// expire under its programme's policy counted from when the hub posted the
/// grant; exchanged points under the exchange's policy counted from the end
/// of its holding period ([`crate::economy::exchange::ExchangeRecord::expires_at`]),
/// whenever the release that brings them to the wallet is posted. Never from
/// a node's clock.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LotTerms {
    /// Where the points came from.
    pub source: LotSource,
    /// When they expire (`None`: never).
    pub expires_at: Option<UnixMillis>,
}

impl LotTerms {
    /// Points credited at hub time `credited_at` under `policy`.
    pub fn posted(source: LotSource, policy: ExpiryPolicy, credited_at: UnixMillis) -> LotTerms {
        LotTerms {
            source,
            expires_at: policy.expires_at(credited_at),
        }
    }
}

// ── Settlement periods ──

/// How often a municipality settles.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Cycle {
    /// Calendar months.
    #[default]
    Monthly,
    /// 1st-15th and 16th-end of each month.
    TwiceMonthly,
}

impl Cycle {
    /// Storage and CLI name.
    pub fn name(self) -> &'static str {
        match self {
            Cycle::Monthly => "monthly",
            Cycle::TwiceMonthly => "twice-monthly",
        }
    }
    /// Parses [`Cycle::name`].
    pub fn parse(text: &str) -> Option<Cycle> {
        [Cycle::Monthly, Cycle::TwiceMonthly]
            .into_iter()
            .find(|c| c.name() == text)
    }
    /// The period containing `t`: its first day and the day after its last.
    pub fn period_of(self, t: UnixMillis) -> (Date, Date) {
        let d = Date::of(t);
        let first = Date { day: 1, ..d };
        match self {
            Cycle::Monthly => (first, d.next_month_start()),
            Cycle::TwiceMonthly if d.day <= 15 => (first, Date { day: 16, ..d }),
            Cycle::TwiceMonthly => (Date { day: 16, ..d }, d.next_month_start()),
        }
    }
}

/// A closed period.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Period {
    /// Whose.
    pub municipality: MunicipalityCode,
    /// First instant (00:00 JST of its first day).
    pub starts_at: UnixMillis,
    /// End (exclusive).
    pub ends_at: UnixMillis,
    /// When it was closed.
    pub closed_at: UnixMillis,
    /// The last ledger position it covers.
    pub ledger_pos: u64,
}

/// Kinds of statement lines.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum StatementKind {
    /// An operator owes yen for points it exchanged (party: operator id).
    OperatorInvoice,
    /// The municipality receives the operators' yen (party: municipality code).
    MunicipalityReceipt,
    /// Premium points the municipality funded (party: municipality code).
    PremiumFunded,
    /// A merchant is paid for points redeemed at it (party: facility id).
    MerchantPayout,
    /// Points that expired (party: municipality code).
    Expired,
    /// Points a merchant's node claimed beyond its enrolled bounds, held in
    /// quarantine this period: not paid (party: facility id). A release
    /// pays them as a merchant payout in the period it is decided.
    Quarantined,
    /// A donation programme's recipient is paid what holders gave to it
    /// (party: programme id), at a kiosk or through an operator's exchange.
    DonationPayout,
}

impl StatementKind {
    /// Storage name.
    pub fn name(self) -> &'static str {
        match self {
            StatementKind::OperatorInvoice => "operator-invoice",
            StatementKind::MunicipalityReceipt => "municipality-receipt",
            StatementKind::PremiumFunded => "premium-funded",
            StatementKind::MerchantPayout => "merchant-payout",
            StatementKind::Expired => "expired",
            StatementKind::Quarantined => "quarantined",
            StatementKind::DonationPayout => "donation-payout",
        }
    }
    /// Every kind, in line order. A new kind of line (e.g. points held in
    /// quarantine) is a variant here, its name, and its case in
    /// `Statements::add`: the statements file and the API take it from there.
    pub const ALL: [StatementKind; 7] = [
        StatementKind::OperatorInvoice,
        StatementKind::MunicipalityReceipt,
        StatementKind::PremiumFunded,
        StatementKind::MerchantPayout,
        StatementKind::Expired,
        StatementKind::Quarantined,
        StatementKind::DonationPayout,
    ];
    /// Parses [`StatementKind::name`].
    pub fn parse(text: &str) -> Option<StatementKind> {
        StatementKind::ALL.into_iter().find(|k| k.name() == text)
    }
}

/// One line of a period's statements (1 point = 1 yen).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Statement {
    /// What it is.
    pub kind: StatementKind,
    /// Who it is for.
    pub party: String,
    /// Points.
    pub points: u64,
    /// Yen.
    pub yen: u64,
    /// Transfers summed.
    pub n_transfers: u64,
}

// ── Settlement files ──

/// One file of a settlement run, as recorded with the periods it closed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RecordedOutput {
    /// File name, unique across every run.
    pub name: String,
    /// The run that made it (1, 2, …).
    pub run: u64,
    /// The period it belongs to (`None`: the run's liability report).
    pub period: Option<(MunicipalityCode, UnixMillis)>,
    /// SHA-256 of `bytes`.
    pub sha256: [u8; 32],
    /// Its contents.
    pub bytes: Vec<u8>,
    /// When the run made it.
    pub made_at: UnixMillis,
    /// When a run first wrote it whole (`None`: not yet).
    pub written_at: Option<UnixMillis>,
}

// ── Bank accounts ──

/// A 4-digit financial institution code.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct BankCode(pub(crate) u16);

/// A 3-digit branch code.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct BranchCode(pub(crate) u16);

impl fmt::Display for BankCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:04}", self.0)
    }
}

impl fmt::Display for BranchCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:03}", self.0)
    }
}

/// 預金種目: the kind of deposit account.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AccountKind {
    /// 普通 (1).
    Ordinary,
    /// 当座 (2).
    Current,
    /// 貯蓄 (4).
    Savings,
}

impl AccountKind {
    pub(crate) fn digit(self) -> char {
        match self {
            AccountKind::Ordinary => '1',
            AccountKind::Current => '2',
            AccountKind::Savings => '4',
        }
    }
    /// Parses `ordinary`, `current`, `savings` or the digit.
    pub fn parse(text: &str) -> Option<AccountKind> {
        match text {
            "1" | "ordinary" => Some(AccountKind::Ordinary),
            "2" | "current" => Some(AccountKind::Current),
            "4" | "savings" => Some(AccountKind::Savings),
            _ => None,
        }
    }
    /// Lower-case name.
    pub fn name(self) -> &'static str {
        match self {
            AccountKind::Ordinary => "ordinary",
            AccountKind::Current => "current",
            AccountKind::Savings => "savings",
        }
    }
}

/// A bank account to pay into or from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BankAccount {
    /// The bank.
    pub bank: BankCode,
    /// The branch.
    pub branch: BranchCode,
    /// 預金種目.
    pub kind: AccountKind,
    /// Up to 7 digits.
    pub number: u32,
    /// The holder's name as the bank knows it (katakana; converted to half-width).
    pub holder: String,
}
