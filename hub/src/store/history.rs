//! Storage for the status history: one sample per node per slot (five
//! minutes by default), kept for a week, that the dashboard's charts and
//! `GET /api/nodes/{id}/history` read.
//!
//! A supertrait of [`super::StoreTx`]; every backend implements it with the
//! same transaction contract. Samples are written by the serving hub only
//! (`Hub::sample_history`), at most one per (slot, node): writing a sample
//! again changes nothing, so a restart in the middle of a slot is harmless.

use super::StoreError;
use mykey_sync_proto::{NodeId, UnixMillis};

/// What the hub knew of one node over one slot.
///
/// About 70 bytes in SQLite (a 32-byte node key, the slot's start and six
/// small integers, keyed by slot then node): 288 samples a day, so about
/// 140 KiB per node per week, measured by the store's tests
/// (`history_size_per_node_per_week`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HistorySample {
    /// The node.
    pub node: NodeId,
    /// The slot's first instant (hub clock, a multiple of `span_ms`).
    pub slot: UnixMillis,
    /// The slot's length.
    pub span_ms: u32,
    /// Share of the slot the node's link was up, in permille (0: down all
    /// the slot).
    pub up_permille: u16,
    /// Transactions it had signed that the hub had not processed, as far as
    /// its last report told, when the sample was taken.
    pub unconfirmed: u64,
    /// How long the oldest of them had waited (`None`: none waiting).
    pub oldest_unconfirmed_ms: Option<u64>,
    /// Refusals of its transactions (business and chain level) since the
    /// previous sample (each sample is taken within about a minute after
    /// its slot ended, so a refusal in that minute counts in the slot before).
    pub refusals: u64,
    /// Refusals ever, when the sample was taken (the next sample's base).
    pub refusals_total: u64,
    /// Node clock minus hub clock at its last Hello (`None`: never seen).
    pub clock_skew_ms: Option<i64>,
}

/// Status history storage; see the module docs.
pub trait HistoryTx {
    /// Stores samples; a (slot, node) already stored is kept as it was.
    /// Returns how many were new.
    fn insert_history(&mut self, samples: &[HistorySample]) -> Result<u64, StoreError>;
    /// The start of the latest slot sampled, if any.
    fn latest_history_slot(&mut self) -> Result<Option<UnixMillis>, StoreError>;
    /// Samples of slots starting in `[from, to)` (of one node, or all),
    /// oldest first: the newest `limit` of them.
    fn history(
        &mut self,
        node: Option<&NodeId>,
        from: UnixMillis,
        to: UnixMillis,
        limit: u32,
    ) -> Result<Vec<HistorySample>, StoreError>;
    /// Forgets samples of slots starting before `before`. Returns how many.
    fn prune_history(&mut self, before: UnixMillis) -> Result<u64, StoreError>;
}
