//! The hub's network side: `mykey-hub serve`. libp2p over TCP (noise +
//! yamux) with identify, ping and one request-response protocol,
//! `/mykey/sync/1`, whose requests go through a
//! [`mykey_sync_proto::session::HubSession`] per connected node.
//!
//! - [`config`]: `hub.toml` in the data directory.
//! - [`serve`]: the swarm and the serving loop (the network thread).
//! - [`fair`]: the per-peer queues served round robin.
//! - [`turn`]: one turn of a request on the writer (a long push in slices).
//! - [`worker`]: the storage worker, the one writer of the hub's database.
//!
//! The transport identity is the hub key (the key that signs facts), and a
//! peer's identity is its node key: a connection from a key that is not
//! enrolled, or is revoked, is answered with a refusal and dropped.
//!
//! The frame codec, the key ↔ peer-id conversion and the swarm builder are
//! shared with the node through [`mykey_net`].

pub mod config;
pub mod fair;
pub mod serve;
pub mod turn;
pub mod worker;

pub use mykey_net::unix_now;
