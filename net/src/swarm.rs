//! The swarm both sides build: TCP with noise and yamux, identified by the
//! signing key, with the link timing and the behaviours they share.
//!
//! The hub runs [`Behaviour`] as it is; the node nests it in its own
//! `NetworkBehaviour` beside the LAN protocol (another [`frame_behaviour`])
//! and mDNS.

use crate::codec::{ByteBudget, FrameCodec, PROTOCOL};
use crate::identity::keypair;
use ed25519_dalek::SigningKey;
use libp2p::identity::{DecodingError, Keypair};
use libp2p::swarm::NetworkBehaviour;
use libp2p::{
    Multiaddr, StreamProtocol, Swarm, SwarmBuilder, identify, noise, ping, request_response, tcp,
    yamux,
};
use std::time::Duration;

/// The identify protocol name both sides announce.
pub const IDENTIFY_PROTOCOL: &str = "/mykey/1";

/// How a link is paced; the same knobs on node and hub.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LinkTiming {
    /// How long an idle connection stays open (libp2p's default is 10 s).
    pub idle_timeout: Duration,
    /// How often to ping a connected peer.
    pub ping_interval: Duration,
    /// A ping without an answer after this long fails (and the link is dropped).
    pub ping_timeout: Duration,
    /// A request without a whole answer after this long fails.
    pub request_timeout: Duration,
}

impl Default for LinkTiming {
    fn default() -> Self {
        LinkTiming {
            idle_timeout: Duration::from_secs(3600),
            ping_interval: Duration::from_secs(5),
            ping_timeout: Duration::from_secs(10),
            request_timeout: Duration::from_secs(30),
        }
    }
}

/// What one side accepts on a frame protocol: streams at once per
/// connection, and a budget for the bytes of frames being read.
#[derive(Debug, Clone)]
pub struct InboundLimits {
    /// Requests a connection may have open at once (libp2p's default is 100).
    pub max_concurrent_streams: usize,
    /// The bytes of frames being read, across every stream (`None`: unbounded
    /// but for the frame cap).
    pub budget: Option<std::sync::Arc<ByteBudget>>,
}

impl Default for InboundLimits {
    fn default() -> Self {
        InboundLimits {
            max_concurrent_streams: 100,
            budget: None,
        }
    }
}

pub use behaviour::{Behaviour, BehaviourEvent};

mod behaviour {
    // The derive generates `BehaviourEvent` without docs.
    #![allow(missing_docs)]
    use crate::codec::FrameCodec;
    use libp2p::swarm::NetworkBehaviour;
    use libp2p::{identify, ping, request_response};

    /// The protocols node and hub both speak.
    #[derive(NetworkBehaviour)]
    pub struct Behaviour {
        /// `/mykey/sync/1`, node → hub.
        pub sync: request_response::Behaviour<FrameCodec>,
        /// Peers tell each other their listen addresses and protocols.
        pub identify: identify::Behaviour,
        /// Keeps the link measured; a failed ping drops the connection.
        pub ping: ping::Behaviour,
    }
}

impl Behaviour {
    /// `/mykey/sync/1`, identify announcing `agent` (e.g. `mykey-hub/0.1.0`)
    /// and ping, paced by `timing`.
    pub fn new(key: &Keypair, agent: &str, timing: &LinkTiming) -> Self {
        Self::with_limits(key, agent, timing, &InboundLimits::default())
    }

    /// [`Behaviour::new`] accepting `/mykey/sync/1` within `limits` (the hub).
    pub fn with_limits(
        key: &Keypair,
        agent: &str,
        timing: &LinkTiming,
        limits: &InboundLimits,
    ) -> Self {
        Behaviour {
            sync: frame_behaviour_with(PROTOCOL, timing, limits),
            identify: identify::Behaviour::new(
                identify::Config::new(IDENTIFY_PROTOCOL.to_owned(), key.public())
                    .with_agent_version(agent.to_owned()),
            ),
            ping: ping::Behaviour::new(
                ping::Config::new()
                    .with_interval(timing.ping_interval)
                    .with_timeout(timing.ping_timeout),
            ),
        }
    }
}

/// Why a listen address could not be taken.
#[derive(Debug, thiserror::Error)]
pub enum ListenError {
    /// Another socket already listens there (another hub or node, or any program).
    #[error("the address is already in use by another process")]
    InUse,
    /// libp2p refused the address.
    #[error("{0}")]
    Refused(String),
}

/// Listens on `addr`, but only if no other socket holds it.
///
/// libp2p binds its listeners with `SO_REUSEPORT`, so a second process on the
/// same TCP port would share it with the first and take half its peers.
/// A plain bind first (no `SO_REUSEPORT`) fails while anyone listens there;
/// port 0 and non-TCP addresses go to libp2p as they are.
pub fn listen_alone<B: NetworkBehaviour>(
    swarm: &mut Swarm<B>,
    addr: Multiaddr,
) -> Result<libp2p::core::transport::ListenerId, ListenError> {
    if let Some(socket) = tcp_socket(&addr)
        && socket.port() != 0
        && let Err(e) = std::net::TcpListener::bind(socket)
        && e.kind() == std::io::ErrorKind::AddrInUse
    {
        return Err(ListenError::InUse);
    }
    swarm
        .listen_on(addr)
        .map_err(|e| ListenError::Refused(e.to_string()))
}

/// The IP socket address of a `/ip4|ip6/…/tcp/…` multiaddr.
pub fn tcp_socket(addr: &Multiaddr) -> Option<std::net::SocketAddr> {
    use libp2p::multiaddr::Protocol;
    let mut it = addr.iter();
    let ip: std::net::IpAddr = match it.next()? {
        Protocol::Ip4(ip) => ip.into(),
        Protocol::Ip6(ip) => ip.into(),
        _ => return None,
    };
    match it.next()? {
        Protocol::Tcp(port) => Some(std::net::SocketAddr::new(ip, port)),
        _ => None,
    }
}

/// Why a swarm could not be built.
#[derive(Debug, thiserror::Error)]
pub enum SwarmError {
    /// The signing key did not convert to a libp2p identity.
    #[error("the key is not a valid libp2p ed25519 key: {0}; check the key file")]
    Key(#[from] DecodingError),
    /// Noise could not be set up.
    #[error("noise setup failed: {0}")]
    Noise(#[from] noise::Error),
    /// A behaviour could not be built (e.g. mDNS could not bind its socket).
    #[error("libp2p setup failed: {0}")]
    Behaviour(#[from] libp2p::BehaviourBuilderError),
}

/// Request-response over the frame codec for `protocol` (`/mykey/sync/1`, or
/// a side's own), timed out by `timing`.
pub fn frame_behaviour(
    protocol: StreamProtocol,
    timing: &LinkTiming,
) -> request_response::Behaviour<FrameCodec> {
    frame_behaviour_with(protocol, timing, &InboundLimits::default())
}

/// [`frame_behaviour`] within `limits`.
pub fn frame_behaviour_with(
    protocol: StreamProtocol,
    timing: &LinkTiming,
    limits: &InboundLimits,
) -> request_response::Behaviour<FrameCodec> {
    let codec = match &limits.budget {
        Some(b) => FrameCodec::with_budget(b.clone()),
        None => FrameCodec::default(),
    };
    request_response::Behaviour::with_codec(
        codec,
        [(protocol, request_response::ProtocolSupport::Full)],
        request_response::Config::default()
            .with_request_timeout(timing.request_timeout)
            .with_max_concurrent_streams(limits.max_concurrent_streams.max(1)),
    )
}

/// A tokio swarm over TCP (nodelay) with noise and yamux whose identity is
/// `key`, running the behaviour `behaviour` builds from the libp2p keypair.
pub fn build_swarm<B: NetworkBehaviour>(
    key: &SigningKey,
    timing: &LinkTiming,
    behaviour: impl FnOnce(&Keypair) -> Result<B, Box<dyn std::error::Error + Send + Sync>>,
) -> Result<Swarm<B>, SwarmError> {
    let idle = timing.idle_timeout;
    let swarm = SwarmBuilder::with_existing_identity(keypair(key)?)
        .with_tokio()
        .with_tcp(
            tcp::Config::default().nodelay(true),
            noise::Config::new,
            yamux::Config::default,
        )?
        .with_behaviour(behaviour)?
        .with_swarm_config(|c| c.with_idle_connection_timeout(idle))
        .build();
    Ok(swarm)
}
