//! Storage for operations: node links, rejections as the dashboard lists
//! them, facilities, and operator accounts.
//!
//! A supertrait of [`super::StoreTx`], kept apart so the ledger's interface
//! stays narrow; every backend implements both, with the same transaction
//! contract.

use super::StoreError;
use crate::access::{Role, TokenInfo};
use crate::model::{Facility, Municipality, Posted};
use mykey_sync_proto::wire::RejectReason;
use mykey_sync_proto::{MunicipalityCode, NodeId, TxId, UnixMillis};

/// One link (a session from Hello to disconnect) of a node to the hub.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LinkSpan {
    /// The node.
    pub node: NodeId,
    /// When the node said Hello.
    pub opened_at: UnixMillis,
    /// The last time the hub knew the link was up (a push, a heartbeat).
    pub seen_at: UnixMillis,
    /// When it closed; `None` while the hub holds it open (or lost track of
    /// it: see [`StatusTx::close_stale_links`]).
    pub closed_at: Option<UnixMillis>,
    /// The highest seq the node said it had signed in that Hello: what it
    /// signed later, it signed while this link or a later one was open
    /// (the hub's own evidence of when a node was online, which the node's
    /// clock cannot change).
    pub hello_last_seq: u64,
}

/// A transaction the hub refused for a business reason (the seq was
/// consumed); chain-level refusals are incidents instead.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RejectionRow {
    /// The signing node.
    pub node: NodeId,
    /// Its seq.
    pub seq: u64,
    /// The transaction.
    pub tx: TxId,
    /// Why.
    pub reason: RejectReason,
    /// The hub's clock when it was processed.
    pub at: UnixMillis,
}

/// An operator who may log in to the dashboard.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OperatorRow {
    /// Login name.
    pub name: String,
    /// Argon2id hash in PHC string form (never the password).
    pub password_hash: String,
    /// What they may do.
    pub role: Role,
    /// When the account was made.
    pub created_at: UnixMillis,
}

/// Operations storage; see the module docs.
pub trait StatusTx {
    /// Every municipality with its facilities.
    fn facilities(&mut self) -> Result<Vec<(Municipality, Vec<Facility>)>, StoreError>;

    /// A node said Hello, having signed through `hello_last_seq`: closes its
    /// previous link (at its last sighting) and opens a new one.
    fn open_link(
        &mut self,
        node: &NodeId,
        hello_last_seq: u64,
        now: UnixMillis,
    ) -> Result<(), StoreError>;
    /// The node's open link is alive at `now`.
    fn link_seen(&mut self, node: &NodeId, now: UnixMillis) -> Result<(), StoreError>;
    /// The node's connection closed at `at`: ends its open link if that
    /// link was opened (by a Hello) at or before `at`. A link opened later
    /// belongs to a newer connection (the bookkeeping of a close can reach
    /// the store after the next connection's Hello) and stays open.
    fn close_link(&mut self, node: &NodeId, at: UnixMillis) -> Result<(), StoreError>;
    /// Closes every link still open at its last sighting (a serving process
    /// starts: links of a previous one are gone). Returns how many. A
    /// backend several processes share (PostgreSQL) closes only links no
    /// process confirmed within `alive_ms` on its clock.
    fn close_stale_links(&mut self, alive_ms: u64) -> Result<u64, StoreError>;
    /// The first fact of exactly this scope after `after`: its hub_seq and
    /// issue time (no decoding, no signature check: the dashboard's replica lag).
    fn first_fact_after(
        &mut self,
        scope: &mykey_sync_proto::Scope,
        after: u64,
    ) -> Result<Option<(u64, UnixMillis)>, StoreError>;

    /// Forgets closed links last seen before `before`. Returns how many.
    fn prune_links(&mut self, before: UnixMillis) -> Result<u64, StoreError>;
    /// Links that were up at or after `since`, oldest first, at most `limit`.
    fn links_since(
        &mut self,
        node: Option<&NodeId>,
        since: UnixMillis,
        limit: u32,
    ) -> Result<Vec<LinkSpan>, StoreError>;

    /// Posted totals summed per municipality and ledger-account kind
    /// ([`crate::model::LedgerAccount::kind`]): the liability figures.
    fn ledger_kind_totals(&mut self)
    -> Result<Vec<(MunicipalityCode, String, Posted)>, StoreError>;

    /// Business rejections, newest first, at most `limit`.
    fn rejections(
        &mut self,
        node: Option<&NodeId>,
        limit: u32,
    ) -> Result<Vec<RejectionRow>, StoreError>;

    /// Adds an operator, or replaces the password hash and role of an existing one.
    fn upsert_operator(&mut self, op: &OperatorRow) -> Result<(), StoreError>;
    /// An operator by name.
    fn operator(&mut self, name: &str) -> Result<Option<OperatorRow>, StoreError>;
    /// Removes an operator and every API token of theirs; false if there was none.
    fn remove_operator(&mut self, name: &str) -> Result<bool, StoreError>;
    /// How many operators exist.
    fn n_operators(&mut self) -> Result<u64, StoreError>;
    /// Every operator, by name.
    fn operators(&mut self) -> Result<Vec<OperatorRow>, StoreError>;
    /// Stores an API token by its SHA-256 (never the token).
    fn insert_api_token(
        &mut self,
        token_sha256: &[u8; 32],
        token: &TokenInfo,
    ) -> Result<(), StoreError>;
    /// An API token by its SHA-256.
    fn api_token(&mut self, token_sha256: &[u8; 32]) -> Result<Option<TokenInfo>, StoreError>;
    /// API tokens (of one operator, or all), oldest first.
    fn api_tokens(&mut self, operator: Option<&str>) -> Result<Vec<TokenInfo>, StoreError>;
    /// Revokes the token with this public id; false if no live token has it.
    fn revoke_api_token(&mut self, id: &str, now: UnixMillis) -> Result<bool, StoreError>;
}
