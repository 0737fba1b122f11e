//! The MyKey Edge node: the card reader, the local SQLite store of record,
//! the offline rules and the sync glue.
//!
//! The deciding code ([`rules`]) is pure and takes `now`; [`node::Node`] does
//! the I/O around it (SQLite, the key file) and is what the binary, the
//! tests and the simulation drive.
#![forbid(unsafe_code)]
#![cfg_attr(not(test), deny(clippy::unwrap_used))]

pub mod card;
pub mod config;
pub mod doctor;
pub mod expiry;
pub mod http;
pub mod key;
pub mod kiosk;
pub mod lan_rules;
pub mod link_requests;
pub mod net;
pub mod node;
pub mod rules;
pub mod shards;
pub mod sip2;
pub mod store;
pub mod voucher;

pub use key::NodeKey;
pub use node::{Done, Lookup, Node, OpError};
