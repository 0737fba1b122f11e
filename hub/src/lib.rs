//! The MyKey Edge hub: the registry (municipalities, facilities, nodes,
//! accounts, cards, programmes), the double-entry ledger, ingest of signed
//! transactions from nodes, and the hub-signed fact log nodes replicate.
//!
//! Entry points:
//! - [`Hub::init`] / [`Hub::open`] on a data directory (or [`Hub::in_memory`]
//!   for simulations), then the operator actions in [`admin`]
//!   (`enrol_node`, `register_account`, `admin_grant`, …).
//! - `impl` [`mykey_sync_proto::session::HubService`] for [`Hub`]: what a
//!   [`mykey_sync_proto::session::HubSession`] drives for each node.
//!
//! Layout: [`rules`] decides (pure, no I/O, no clock); [`ingest`] and
//! [`admin`] load what a decision needs from the [`store`], apply it and
//! commit; [`store`] is the narrow storage interface with the SQLite backend
//! (a PostgreSQL backend is a new implementation of [`store::LedgerStore`]).
//! Below the drivers: [`ledger`] computes every balance and makes the
//! balanced commit; the fact log signs and appends facts only; the
//! wallet-credit path recovers debt first (by [`rules::debt_recovery`]) and
//! tells nodes the balance and expiry; [`economy::types`] holds the rows
//! storage keeps. Drivers never import each other.
//! [`economy`] holds the points economy and settlement: operator exchanges,
//! lots and expiry, settlement periods, Zengin payout files, liability reports.
//! [`status`] is the operations view (every node's sync status and alerts,
//! decided in [`status::assess`] from what ingest and the serving loop
//! record); [`http`] serves it as the operator dashboard, a JSON API and
//! Prometheus `/metrics` behind operator login, with who may see and do
//! what decided in [`access`] (roles, token scopes).
//! [`observed`] holds what one process saw of its nodes (fact pulls, shard
//! epochs, ingest counters): a value each [`Hub`] is given, never a static.
//!
//! Invariants: only [`mykey_sync_proto::VerifiedTx`] reaches the rules;
//! a push (or each slice of a long one, [`net::turn`]) is one storage
//! transaction, durable before its receipts exist;
//! transfers are immutable; debits equal credits after every commit
//! (asserted, also in release); per municipality, credited − redeemed −
//! expired = wallets − debts ([`Hub::check_conservation`]).
#![forbid(unsafe_code)]
#![cfg_attr(not(test), deny(clippy::unwrap_used))]
#![deny(missing_docs)]

pub mod access;
pub mod admin;
pub mod bounds;
pub mod cli;
pub mod doctor;
pub mod donation;
pub mod economy;
pub mod escrow;
mod facts;
pub mod holder;
mod holder_order;
pub mod http;
mod hub;
pub mod ingest;
pub mod key;
pub mod lan;
pub mod ledger;
mod link_request;
pub mod model;
pub mod net;
pub mod observed;
mod par;
pub mod quarantine;
mod rosters;
pub mod rules;
mod shard_book;
pub mod shards;
pub mod status;
pub mod store;
pub mod store_copy;
pub mod ticks;
pub mod voucher;
mod wallet;

pub use admin::{
    AddCardError, AddFacilityError, AddMunicipalityError, CardCertificateError, CardStatusError,
    ChangeMyKeyIdError, CheckError, EnrolError, GrantError, LookupError, ProgramError,
    RegisterError, RevokeError,
};
pub use hub::{Hub, HubPaths, InitError, OpenError, scopes_of, serve_lock as hub_serve_lock};
pub use key::{HubKey, KeyError};
pub use ledger::{ConservationError, ConservationReport};
pub use model::{
    Account, Balance, CardRecord, ChainHead, DebtLine, Facility, FacilityKind, Incident,
    IncidentKind, LedgerAccount, Municipality, NodeContact, NodePolicy, NodeRecord, NodeStatus,
    Posted, Program, ProgramLine, Transfer, TransferKind,
};
pub use store::{LedgerStore, ProcessedTx, SqliteStore, StoreError, StoreTx};
