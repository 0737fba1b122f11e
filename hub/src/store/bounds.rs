//! Storage for the bounds the hub enforces on what it pays (`bounds.rs`)
//! and for the quarantine (`quarantine/`): the
//! balances the hub issued (what a redeem's basis is checked against), each
//! redeem's at-risk points per node and card and settlement period, the
//! cards' certificate keys, and the quarantined spends with their decisions.
//!
//! A supertrait of [`super::StoreTx`] with the same transaction contract.

use super::StoreError;
use crate::model::Balance;
use mykey_sync_proto::{
    AccountId, CardKey, FacilityId, MunicipalityCode, NodeId, Points, SignedTx, TxId, UnixMillis,
};

/// One processed redeem, as the bounds count it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SpendRow {
    /// The signer.
    pub node: NodeId,
    /// Its seq.
    pub seq: u64,
    /// The holder.
    pub account: AccountId,
    /// Whose points.
    pub municipality: MunicipalityCode,
    /// The card presented.
    pub card: CardKey,
    /// Points asked (paid and quarantined).
    pub points: Points,
    /// The ledger position of its last transfer.
    pub ledger_pos: u64,
    /// Start of the settlement period it counted in.
    pub period_start: UnixMillis,
    /// At-risk points it added to the node's and the card's period use.
    pub at_risk: Points,
}

/// What happened to a quarantined spend.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum QuarantineState {
    /// Held: settlement does not pay it.
    Held,
    /// An operator released it: it was paid as a redeem when released.
    Released,
    /// An operator rejected it: it is never paid.
    Rejected,
}

impl QuarantineState {
    /// Storage and API name.
    pub fn name(&self) -> &'static str {
        match self {
            QuarantineState::Held => "held",
            QuarantineState::Released => "released",
            QuarantineState::Rejected => "rejected",
        }
    }
    /// Parses [`QuarantineState::name`].
    pub fn parse(text: &str) -> Option<QuarantineState> {
        [
            QuarantineState::Held,
            QuarantineState::Released,
            QuarantineState::Rejected,
        ]
        .into_iter()
        .find(|s| s.name() == text)
    }
}

/// A quarantined spend.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct QuarantineRow {
    /// Its number.
    pub id: u64,
    /// The signed redeem (its bytes are in the processed transactions: the evidence).
    pub tx: TxId,
    /// The signer.
    pub node: NodeId,
    /// Its seq.
    pub seq: u64,
    /// The merchant facility that would be paid.
    pub facility: FacilityId,
    /// Whose points.
    pub municipality: MunicipalityCode,
    /// The holder named.
    pub account: AccountId,
    /// The card named.
    pub card: CardKey,
    /// Points held.
    pub points: Points,
    /// Which bound (`card-proof`, `card-limit`, `exposure-limit`).
    pub rule: String,
    /// The bound in words, with its figures.
    pub detail: String,
    /// When the hub held it.
    pub held_at: UnixMillis,
    /// Held, released or rejected.
    pub state: QuarantineState,
    /// Who decided (the operator's name).
    pub decided_by: Option<String>,
    /// Why, in the operator's words.
    pub why: Option<String>,
    /// When.
    pub decided_at: Option<UnixMillis>,
}

/// Which quarantined spends to list.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct QuarantineFilter {
    /// Only this municipality's.
    pub municipality: Option<MunicipalityCode>,
    /// Only this facility's.
    pub facility: Option<FacilityId>,
    /// Only this node's.
    pub node: Option<NodeId>,
    /// Only in this state.
    pub state: Option<QuarantineState>,
}

/// Quarantined spends of one node in one state, summed (the dashboard's
/// flags, `/metrics`, the liability report).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct QuarantineTotal {
    /// Whose points.
    pub municipality: MunicipalityCode,
    /// The facility that would be paid.
    pub facility: FacilityId,
    /// The signer.
    pub node: NodeId,
    /// Held, released or rejected.
    pub state: QuarantineState,
    /// How many spends.
    pub items: u64,
    /// Their points (a plain sum: many spends of a lying node may add up to
    /// more than one [`Points`] value holds).
    pub points: u64,
}

/// Bounds and quarantine storage; see the module docs.
pub trait BoundsTx {
    /// Records a wallet balance the hub told a node (a receipt or a
    /// `ConfirmedBalance` fact) at a ledger position.
    fn record_issued_balance(
        &mut self,
        account: AccountId,
        m: MunicipalityCode,
        ledger_pos: u64,
        balance: Balance,
    ) -> Result<(), StoreError>;
    /// The balance the hub issued for a wallet at exactly this position, if any.
    fn issued_balance(
        &mut self,
        account: AccountId,
        m: MunicipalityCode,
        ledger_pos: u64,
    ) -> Result<Option<Balance>, StoreError>;
    /// The latest balance the hub issued for a wallet, with its ledger position.
    fn latest_issued_balance(
        &mut self,
        account: AccountId,
        m: MunicipalityCode,
    ) -> Result<Option<(u64, Balance)>, StoreError>;
    /// Records a processed redeem for the bounds, with the running sum of
    /// its signer's spends on the wallet through it. A signer's spends are
    /// recorded in seq order at non-decreasing ledger positions (its chain
    /// is applied in order, the ledger only grows): [`Self::spent_since`]
    /// relies on it.
    fn record_spend(&mut self, spend: &SpendRow) -> Result<(), StoreError>;
    /// Points of `node`'s redeems on a wallet posted after `ledger_pos`.
    fn spent_since(
        &mut self,
        node: &NodeId,
        account: AccountId,
        m: MunicipalityCode,
        ledger_pos: u64,
    ) -> Result<Points, StoreError>;
    /// At-risk points of `node`'s redeems counted in the period starting at
    /// `period_start`: in all, and on `card`.
    fn at_risk_used(
        &mut self,
        node: &NodeId,
        card: &CardKey,
        period_start: UnixMillis,
    ) -> Result<(Points, Points), StoreError>;
    /// The public key (DER SubjectPublicKeyInfo) of a card's certificate.
    fn card_public_key(&mut self, card: &CardKey) -> Result<Option<Vec<u8>>, StoreError>;
    /// Keeps a card's certificate public key (registration, renewal).
    fn set_card_public_key(
        &mut self,
        card: &CardKey,
        public_key_der: &[u8],
        now: UnixMillis,
    ) -> Result<(), StoreError>;
    /// Holds a spend in quarantine; returns its number.
    fn insert_quarantine(&mut self, row: &QuarantineRow) -> Result<u64, StoreError>;
    /// One quarantined spend.
    fn quarantine_item(&mut self, id: u64) -> Result<Option<QuarantineRow>, StoreError>;
    /// Quarantined spends, oldest first, at most `limit`.
    fn quarantine_items(
        &mut self,
        filter: &QuarantineFilter,
        limit: u32,
    ) -> Result<Vec<QuarantineRow>, StoreError>;
    /// Records an operator's decision on a held spend (the caller checked it is held).
    fn decide_quarantine(
        &mut self,
        id: u64,
        state: &QuarantineState,
        by: &str,
        why: &str,
        now: UnixMillis,
    ) -> Result<(), StoreError>;
    /// The signed bytes of a processed transaction, by id (the evidence).
    fn processed_signed(&mut self, tx: &TxId) -> Result<Option<SignedTx>, StoreError>;
    /// Held spends per node: (node, items, points).
    fn quarantine_held_by_node(&mut self) -> Result<Vec<(NodeId, u64, Points)>, StoreError>;
    /// Every quarantined spend summed per municipality, facility, node and
    /// state (one row per group that has any), in that order.
    fn quarantine_totals(&mut self) -> Result<Vec<QuarantineTotal>, StoreError>;
}
