//! The node's libp2p swarm. Its identity is the node's ed25519 key, so noise
//! authenticates the very key that signs transactions.

use super::codec::{FrameCodec, PROTOCOL};
use super::lan::LAN_PROTOCOL;
use ed25519_dalek::SigningKey;
use libp2p::{
    Swarm, SwarmBuilder, identify, identity, mdns, noise, ping, request_response, tcp, yamux,
};
use std::time::Duration;

/// Timing of the transport.
#[derive(Debug, Clone)]
pub struct TransportConfig {
    /// How long an idle connection stays open (libp2p's default is 10 s).
    pub idle_timeout: Duration,
    /// How often to ping a connected peer.
    pub ping_interval: Duration,
    /// A ping without an answer after this long fails (and the link is dropped).
    pub ping_timeout: Duration,
    /// A request without a whole answer after this long fails.
    pub request_timeout: Duration,
    /// mDNS discovery of LAN peers with this query interval; `None`: off.
    pub mdns_query_interval: Option<Duration>,
}

impl Default for TransportConfig {
    fn default() -> Self {
        TransportConfig {
            idle_timeout: Duration::from_secs(3600),
            ping_interval: Duration::from_secs(5),
            ping_timeout: Duration::from_secs(10),
            request_timeout: Duration::from_secs(30),
            mdns_query_interval: None,
        }
    }
}

pub use behaviour::{Behaviour, BehaviourEvent};

mod behaviour {
    // The derive generates `BehaviourEvent` without docs.
    #![allow(missing_docs)]
    use super::FrameCodec;
    use libp2p::swarm::NetworkBehaviour;
    use libp2p::swarm::behaviour::toggle::Toggle;
    use libp2p::{identify, mdns, ping, request_response};

    /// The protocols a node speaks.
    #[derive(NetworkBehaviour)]
    pub struct Behaviour {
        /// `/mykey/sync/1`, to the hub.
        pub sync: request_response::Behaviour<FrameCodec>,
        /// `/mykey/lan/1`, between LAN peers.
        pub lan: request_response::Behaviour<FrameCodec>,
        /// Peers tell each other their listen addresses and protocols.
        pub identify: identify::Behaviour,
        /// Keeps the link measured; a failed ping drops the connection.
        pub ping: ping::Behaviour,
        /// Finds LAN peers by multicast DNS (off unless configured; never on loopback).
        pub mdns: Toggle<mdns::tokio::Behaviour>,
    }
}

/// Why the transport could not be built.
#[derive(Debug, thiserror::Error)]
pub enum TransportError {
    /// The key did not convert.
    #[error("the node key is not a valid libp2p ed25519 key: {0}")]
    Key(#[from] identity::DecodingError),
    /// Noise could not be set up.
    #[error("noise setup failed: {0}")]
    Noise(#[from] noise::Error),
    /// Anything else from the builder.
    #[error("libp2p setup failed: {0}")]
    Build(String),
}

/// The libp2p keypair of an ed25519 signing key.
pub fn keypair(key: &SigningKey) -> Result<identity::Keypair, identity::DecodingError> {
    // libp2p zeroizes the bytes it is given: hand it a copy.
    let mut secret = key.to_bytes();
    let kp = identity::Keypair::ed25519_from_bytes(&mut secret);
    zeroize::Zeroize::zeroize(&mut secret);
    kp
}

/// A swarm over TCP with noise and yamux, speaking `/mykey/sync/1`, identify and ping.
pub fn build_swarm(
    key: &SigningKey,
    agent: &str,
    config: &TransportConfig,
) -> Result<Swarm<Behaviour>, TransportError> {
    let kp = keypair(key)?;
    let agent = agent.to_owned();
    let cfg = config.clone();
    let swarm = SwarmBuilder::with_existing_identity(kp)
        .with_tokio()
        .with_tcp(
            tcp::Config::default().nodelay(true),
            noise::Config::new,
            yamux::Config::default,
        )?
        .with_behaviour(
            |key| -> Result<Behaviour, Box<dyn std::error::Error + Send + Sync>> {
                let mdns = match cfg.mdns_query_interval {
                    Some(query_interval) => Some(mdns::tokio::Behaviour::new(
                        mdns::Config {
                            query_interval,
                            ..mdns::Config::default()
                        },
                        key.public().to_peer_id(),
                    )?),
                    None => None,
                };
                Ok(Behaviour {
                    sync: request_response::Behaviour::with_codec(
                        FrameCodec,
                        [(PROTOCOL, request_response::ProtocolSupport::Full)],
                        request_response::Config::default()
                            .with_request_timeout(cfg.request_timeout),
                    ),
                    lan: request_response::Behaviour::with_codec(
                        FrameCodec,
                        [(LAN_PROTOCOL, request_response::ProtocolSupport::Full)],
                        request_response::Config::default()
                            .with_request_timeout(cfg.request_timeout),
                    ),
                    identify: identify::Behaviour::new(
                        identify::Config::new("/mykey/1".to_owned(), key.public())
                            .with_agent_version(agent),
                    ),
                    ping: ping::Behaviour::new(
                        ping::Config::new()
                            .with_interval(cfg.ping_interval)
                            .with_timeout(cfg.ping_timeout),
                    ),
                    mdns: mdns.into(),
                })
            },
        )
        .map_err(|e| TransportError::Build(e.to_string()))?
        .with_swarm_config(|c| c.with_idle_connection_timeout(cfg.idle_timeout))
        .build();
    Ok(swarm)
}
