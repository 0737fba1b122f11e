//! The node's libp2p swarm. Its identity is the node's ed25519 key, so noise
//! authenticates the very key that signs transactions.

use super::lan::LAN_PROTOCOL;
use ed25519_dalek::SigningKey;
use libp2p::{Swarm, mdns};
use mykey_net::swarm::frame_behaviour;
use mykey_net::{LinkTiming, SwarmError};
use std::time::Duration;

/// Timing and discovery of the transport.
#[derive(Debug, Clone, Default)]
pub struct TransportConfig {
    /// Idle, ping and request timing (shared with the hub's links).
    pub link: LinkTiming,
    /// mDNS discovery of LAN peers with this query interval; `None`: off.
    pub mdns_query_interval: Option<Duration>,
}

pub use behaviour::{Behaviour, BehaviourEvent};

mod behaviour {
    // The derive generates `BehaviourEvent` without docs.
    #![allow(missing_docs)]
    use libp2p::mdns;
    use libp2p::request_response;
    use libp2p::swarm::NetworkBehaviour;
    use libp2p::swarm::behaviour::toggle::Toggle;
    use mykey_net::FrameCodec;

    /// The protocols a node speaks.
    #[derive(NetworkBehaviour)]
    pub struct Behaviour {
        /// What the hub speaks too: `/mykey/sync/1` to the hub, identify, ping.
        pub base: mykey_net::Behaviour,
        /// `/mykey/lan/1`, between LAN peers.
        pub lan: request_response::Behaviour<FrameCodec>,
        /// Finds LAN peers by multicast DNS (off unless configured; never on loopback).
        pub mdns: Toggle<mdns::tokio::Behaviour>,
    }
}

/// A swarm over TCP with noise and yamux, speaking `/mykey/sync/1`,
/// `/mykey/lan/1`, identify, ping and (if configured) mDNS.
pub fn build_swarm(
    key: &SigningKey,
    agent: &str,
    config: &TransportConfig,
) -> Result<Swarm<Behaviour>, SwarmError> {
    let link = config.link;
    let mdns_query_interval = config.mdns_query_interval;
    mykey_net::build_swarm(key, &link, |key| {
        let mdns = match mdns_query_interval {
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
            base: mykey_net::Behaviour::new(key, agent, &link),
            lan: frame_behaviour(LAN_PROTOCOL, &link),
            mdns: mdns.into(),
        })
    })
}
