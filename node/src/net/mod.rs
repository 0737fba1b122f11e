//! The node's network side: libp2p (TCP + noise + yamux, identify, ping and
//! one request-response protocol, `/mykey/sync/1`) driving the sans-IO
//! [`mykey_sync_proto::session::NodeSession`] against the hub.
//!
//! - [`transport`]: the swarm, whose identity *is* the node key.
//! - [`driver`]: what to do with each session event (shared with the in-process harness).
//! - [`lan`]: `/mykey/lan/1`, pending transactions between LAN peers.
//! - [`backoff`]: reconnect delays with jitter (pure).
//! - [`config`]: `net.toml` in the data directory.
//! - [`run`]: `mykey-node run`, the long-running loop.
//! - [`holder_desk`]: a card holder's request from the loopback page to the hub over `run`'s link.
//!
//! The frame codec, the key ↔ peer-id conversion and the swarm builder are
//! shared with the hub through [`mykey_net`].

pub mod backoff;
pub mod config;
pub mod driver;
pub mod holder_desk;
pub mod lan;
pub mod run;
pub mod transport;

pub use mykey_net::unix_now;
