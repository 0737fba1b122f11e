//! `net.toml` in the node's data directory: how `mykey-node run` listens,
//! whom it dials and how it paces reconnects. The hub's key and address stay
//! in `node.toml`; this file is optional and every field has a default.

use libp2p::Multiaddr;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The file name inside the data directory.
pub const FILE: &str = "net.toml";

/// Networking settings of a node.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct NetConfig {
    /// Addresses to listen on for LAN peers; empty: see [`NetConfig::listen_addrs`].
    pub listen: Vec<String>,
    /// Further hub addresses, tried with `node.toml`'s `hub_addr`.
    pub hub_addrs: Vec<String>,
    /// LAN peers of the same municipality (`/ip4/…/tcp/…/p2p/<peer id>`).
    pub peers: Vec<String>,
    /// First reconnect delay.
    pub backoff_base_ms: u64,
    /// Longest reconnect delay.
    pub backoff_cap_ms: u64,
    /// After the hub refused a session, wait this long before trying again.
    pub refused_retry_ms: u64,
    /// Ping interval on every link (keeps it alive, detects a dead one).
    pub ping_interval_ms: u64,
    /// A ping without answer after this long drops the link.
    pub ping_timeout_ms: u64,
    /// How often to look for transactions signed by other processes (the CLI).
    pub outbox_poll_ms: u64,
    /// Transactions per push (at most 1000; fewer, larger pushes catch up faster).
    pub batch_txs: usize,
    /// How often to offer LAN peers what they lack of this node's chain.
    pub gossip_ms: u64,
    /// How often, at most, to carry LAN peers' transactions to the hub.
    pub relay_interval_ms: u64,
    /// Find LAN peers by mDNS (on real interfaces only; it does not run on loopback).
    pub mdns: bool,
    /// How often mDNS asks who is there.
    pub mdns_query_interval_ms: u64,
}

impl Default for NetConfig {
    fn default() -> Self {
        NetConfig {
            listen: vec![],
            hub_addrs: vec![],
            peers: vec![],
            backoff_base_ms: 200,
            backoff_cap_ms: 30_000,
            refused_retry_ms: 60_000,
            ping_interval_ms: 5_000,
            ping_timeout_ms: 10_000,
            outbox_poll_ms: 250,
            batch_txs: 1000,
            gossip_ms: 500,
            relay_interval_ms: 3_000,
            mdns: false,
            mdns_query_interval_ms: 5_000,
        }
    }
}

/// `net.toml` could not be used.
#[derive(Debug, thiserror::Error)]
pub enum NetConfigError {
    /// Not readable.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// Not valid.
    #[error("{path}: {detail}; fix the file or delete it to use the defaults")]
    Invalid {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        detail: String,
    },
}

impl NetConfig {
    /// Reads `net.toml` from `dir`, or the defaults if there is none.
    pub fn load(dir: &Path) -> Result<NetConfig, NetConfigError> {
        let path = dir.join(FILE);
        let text = match std::fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(NetConfig::default()),
            Err(source) => return Err(NetConfigError::Io { path, source }),
        };
        let c: NetConfig = toml::from_str(&text).map_err(|e| NetConfigError::Invalid {
            path: path.clone(),
            detail: e.to_string(),
        })?;
        for a in c.listen.iter().chain(&c.hub_addrs).chain(&c.peers) {
            parse_addr(a).map_err(|detail| NetConfigError::Invalid {
                path: path.clone(),
                detail,
            })?;
        }
        Ok(c)
    }

    /// Writes this config to `dir/net.toml`.
    pub fn save(&self, dir: &Path) -> Result<(), NetConfigError> {
        let path = dir.join(FILE);
        let text = toml::to_string(self).map_err(|e| NetConfigError::Invalid {
            path: path.clone(),
            detail: e.to_string(),
        })?;
        crate::config::write_owner_only(&path, text.as_bytes())
            .map_err(|source| NetConfigError::Io { path, source })
    }

    /// Where to listen: `listen` if set; else every interface when the LAN
    /// is configured (mDNS on, or static `peers` here or in `extra_peers`),
    /// else loopback only, so a node nobody set up for a LAN is not open to it.
    pub fn listen_addrs(&self, extra_peers: bool) -> Vec<String> {
        if !self.listen.is_empty() {
            return self.listen.clone();
        }
        let lan = self.mdns || !self.peers.is_empty() || extra_peers;
        let ip = if lan { "0.0.0.0" } else { "127.0.0.1" };
        vec![format!("/ip4/{ip}/tcp/0")]
    }

    /// A duration field.
    pub fn ms(v: u64) -> Duration {
        Duration::from_millis(v)
    }
}

/// Parses a multiaddr, with a message a person can act on.
pub fn parse_addr(text: &str) -> Result<Multiaddr, String> {
    text.parse::<Multiaddr>()
        .map_err(|e| format!("{text:?} is not a multiaddr (like /ip4/192.0.2.1/tcp/7400): {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_when_absent_and_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(NetConfig::load(dir.path()).unwrap(), NetConfig::default());
        let mut c = NetConfig::default();
        c.peers.push("/ip4/127.0.0.1/tcp/9".into());
        c.save(dir.path()).unwrap();
        assert_eq!(NetConfig::load(dir.path()).unwrap(), c);
        std::fs::write(dir.path().join(FILE), "peers = [\"nope\"]").unwrap();
        assert!(NetConfig::load(dir.path()).is_err());
    }

    #[test]
    fn loopback_unless_the_lan_is_configured() {
        let lo = vec!["/ip4/127.0.0.1/tcp/0".to_owned()];
        let any = vec!["/ip4/0.0.0.0/tcp/0".to_owned()];
        let mut c = NetConfig::default();
        assert_eq!(c.listen_addrs(false), lo);
        assert_eq!(c.listen_addrs(true), any);
        c.mdns = true;
        assert_eq!(c.listen_addrs(false), any);
        c.mdns = false;
        c.peers.push("/ip4/192.0.2.1/tcp/7401".into());
        assert_eq!(c.listen_addrs(false), any);
        c.listen = vec!["/ip4/192.0.2.9/tcp/7401".into()];
        assert_eq!(c.listen_addrs(false), c.listen);
    }
}
