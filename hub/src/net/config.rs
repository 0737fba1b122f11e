//! `hub.toml` in the hub's data directory: where `mykey-hub serve` listens
//! and how it paces links. `serve` writes the defaults on first start.

use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Networking settings of the hub.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct HubNetConfig {
    /// Addresses to listen on (libp2p multiaddrs).
    pub listen: Vec<String>,
    /// How long an idle connection stays open (libp2p's default is 10 s).
    pub idle_timeout_ms: u64,
    /// Ping interval on every link.
    pub ping_interval_ms: u64,
    /// A ping without answer after this long drops the link.
    pub ping_timeout_ms: u64,
    /// A request must arrive whole and be answered within this long.
    pub request_timeout_ms: u64,
    /// Bad frames (oversized, truncated, undecodable) a peer may send before
    /// it is disconnected.
    pub max_bad_frames: u32,
    /// Transactions of a push applied per turn; a longer push continues at
    /// its node's next turn, after every other waiting node had one.
    pub push_budget_txs: u32,
    /// Connections at most, all peers.
    pub max_connections: u32,
    /// Connections being set up (noise, yamux) at most.
    pub max_pending_connections: u32,
    /// Connections of one peer at most.
    pub max_connections_per_peer: u32,
    /// Requests one connection may have open at once (a node sends one).
    pub max_requests_per_connection: u32,
    /// Bytes of request frames being received at once, all peers; a frame
    /// past it is answered "busy" unread.
    pub max_reading_bytes: usize,
    /// Requests of one node waiting for its turn at most.
    pub max_waiting_per_peer: usize,
    /// Bytes of requests waiting for their turn at most, all peers.
    pub max_waiting_bytes: usize,
    /// HTTP writes (exchanges, settlement runs) waiting for the writer at
    /// most; past it the API answers 503.
    pub max_waiting_api_writes: usize,
    /// Where `POST /api/economy/settle` writes settlement files: absolute, or
    /// relative to the directory holding this file (the data directory).
    pub settlement_dir: String,
    /// The zengin-code source-data `data` directory for checking payout
    /// files (`None`: `MYKEY_BANK_DATA`, else the built-in excerpt).
    pub bank_data: Option<String>,
    /// How often the timed jobs run (live links, expiry, shard sizes, the
    /// status history), 1,000 to 60,000 ms.
    pub tick_interval_ms: u64,
    /// How long this process's lease on a municipality's timed jobs lasts
    /// unless renewed (several processes on one PostgreSQL database share
    /// the municipalities; `crate::ticks`), at least three tick intervals:
    /// after a crash, its municipalities wait this long for another process.
    pub tick_lease_ms: u64,
}

impl Default for HubNetConfig {
    fn default() -> Self {
        HubNetConfig {
            listen: vec!["/ip4/0.0.0.0/tcp/7400".to_owned()],
            idle_timeout_ms: 3_600_000,
            ping_interval_ms: 5_000,
            ping_timeout_ms: 10_000,
            request_timeout_ms: 30_000,
            max_bad_frames: 3,
            push_budget_txs: 200,
            max_connections: 1024,
            max_pending_connections: 128,
            max_connections_per_peer: 2,
            max_requests_per_connection: 4,
            max_reading_bytes: 128 * 1024 * 1024,
            max_waiting_per_peer: 8,
            max_waiting_bytes: 128 * 1024 * 1024,
            max_waiting_api_writes: 64,
            settlement_dir: "settlement".to_owned(),
            bank_data: None,
            tick_interval_ms: crate::ticks::MINUTE_MS,
            tick_lease_ms: crate::store::LEASE_MS,
        }
    }
}

impl HubNetConfig {
    /// The link timing these settings ask for.
    pub fn link_timing(&self) -> mykey_net::LinkTiming {
        let ms = Duration::from_millis;
        mykey_net::LinkTiming {
            idle_timeout: ms(self.idle_timeout_ms),
            ping_interval: ms(self.ping_interval_ms),
            ping_timeout: ms(self.ping_timeout_ms),
            request_timeout: ms(self.request_timeout_ms),
        }
    }
}

impl HubNetConfig {
    /// The tick interval is within 1 s (the serving loop's sweep) and a
    /// minute (links are confirmed alive each tick), and a lease outlives
    /// three ticks (it is renewed once half its time is gone).
    fn check_ticks(&self) -> Result<(), String> {
        if !(1_000..=crate::ticks::MINUTE_MS).contains(&self.tick_interval_ms) {
            return Err(format!(
                "tick_interval_ms = {} is outside 1000..=60000",
                self.tick_interval_ms
            ));
        }
        if self.tick_lease_ms < self.tick_interval_ms.saturating_mul(3) {
            return Err(format!(
                "tick_lease_ms = {} is shorter than three tick intervals ({} ms)",
                self.tick_lease_ms,
                self.tick_interval_ms.saturating_mul(3)
            ));
        }
        Ok(())
    }
}

/// `hub.toml` could not be used.
#[derive(Debug, thiserror::Error)]
pub enum HubNetConfigError {
    /// Not readable or writable.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// Not valid.
    #[error("{path}: {detail}; fix the file or delete it to get the defaults back")]
    Invalid {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        detail: String,
    },
}

impl HubNetConfig {
    /// Where the config of the hub at `data` lives: `hub.toml` in a data
    /// directory, or beside a database file named directly.
    pub fn path(data: &Path) -> PathBuf {
        let paths = crate::HubPaths::of(data);
        match paths.dir {
            Some(d) => d.join("hub.toml"),
            None => paths.db.with_extension("toml"),
        }
    }

    /// The settlement output directory of the hub at `data`.
    pub fn settlement_dir_of(&self, data: &Path) -> PathBuf {
        let dir = Path::new(&self.settlement_dir);
        match Self::path(data).parent() {
            Some(base) if dir.is_relative() => base.join(dir),
            _ => dir.to_owned(),
        }
    }

    /// Reads the config, writing the defaults first if there is none.
    pub fn load_or_create(data: &Path) -> Result<HubNetConfig, HubNetConfigError> {
        let path = Self::path(data);
        match std::fs::read_to_string(&path) {
            Ok(text) => {
                let c: HubNetConfig =
                    toml::from_str(&text).map_err(|e| HubNetConfigError::Invalid {
                        path: path.clone(),
                        detail: e.to_string(),
                    })?;
                for a in &c.listen {
                    a.parse::<libp2p::Multiaddr>()
                        .map_err(|e| HubNetConfigError::Invalid {
                            path: path.clone(),
                            detail: format!("listen {a:?}: {e}"),
                        })?;
                }
                c.check_ticks()
                    .map_err(|detail| HubNetConfigError::Invalid {
                        path: path.clone(),
                        detail,
                    })?;
                Ok(c)
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let c = HubNetConfig::default();
                let text = toml::to_string(&c).map_err(|e| HubNetConfigError::Invalid {
                    path: path.clone(),
                    detail: e.to_string(),
                })?;
                std::fs::write(&path, text).map_err(|source| HubNetConfigError::Io {
                    path: path.clone(),
                    source,
                })?;
                Ok(c)
            }
            Err(source) => Err(HubNetConfigError::Io { path, source }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_written_then_read() {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("hub");
        std::fs::create_dir(&data).unwrap();
        let c = HubNetConfig::load_or_create(&data).unwrap();
        assert_eq!(c, HubNetConfig::default());
        assert!(data.join("hub.toml").exists());
        std::fs::write(data.join("hub.toml"), "listen = [\"x\"]").unwrap();
        assert!(HubNetConfig::load_or_create(&data).is_err());
        for (text, ok) in [
            ("tick_interval_ms = 1000\ntick_lease_ms = 3000", true),
            ("tick_interval_ms = 999\ntick_lease_ms = 3000", false),
            ("tick_interval_ms = 60001", false),
            ("tick_interval_ms = 1000\ntick_lease_ms = 2999", false),
        ] {
            std::fs::write(data.join("hub.toml"), text).unwrap();
            let r = HubNetConfig::load_or_create(&data);
            assert_eq!(r.is_ok(), ok, "{text}: {r:?}");
        }
    }
}
