//! `mykey-hub serve`: the hub's swarm and its serving loop.
//!
//! One task, one loop over a closed set of inputs (a swarm event, a sweep
//! timer, a signal). Each request is answered in turn through the peer's
//! [`HubSession`], so a push is committed (durably) before its receipts are
//! sent, and stopping between two requests loses nothing.
//!
//! Bad input never crashes or wedges the loop: an oversized or truncated
//! frame, undecodable bytes or another protocol version are answered with a
//! [`Refusal`] naming the reason, logged with the peer, and end that peer's
//! session (it must say Hello again); past `max_bad_frames` the peer is
//! disconnected. Every other peer is served as before.

use super::config::{HubNetConfig, HubNetConfigError};
use super::unix_now;
use crate::{Hub, OpenError};
use ed25519_dalek::SigningKey;
use futures::StreamExt;
use libp2p::request_response::{self, ResponseChannel};
use libp2p::swarm::SwarmEvent;
use libp2p::{Multiaddr, PeerId, Swarm, ping};
use mykey_net::{Behaviour, BehaviourEvent, Frame, SwarmError, node_id_of};
use mykey_sync_proto::NodeId;
use mykey_sync_proto::session::{HubSession, refusal_for_wire_error};
use mykey_sync_proto::wire::{Refusal, Request, Response};
use std::collections::HashMap;
use std::path::Path;
use std::time::Duration;
use tokio::signal::unix::{SignalKind, signal};
use tokio::time::Instant;
use tracing::{debug, info, warn};

/// Why `serve` could not start.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// The hub could not be opened.
    #[error(transparent)]
    Open(#[from] OpenError),
    /// `hub.toml` is unusable.
    #[error(transparent)]
    Config(#[from] HubNetConfigError),
    /// The swarm could not be built from the hub key.
    #[error("cannot start the hub's libp2p swarm: {0}")]
    Swarm(#[from] SwarmError),
    /// A listen address is unusable.
    #[error("cannot listen on {addr}: {detail}; pick another with --listen or in hub.toml")]
    Listen {
        /// The address.
        addr: String,
        /// Why.
        detail: String,
    },
    /// The runtime or the signal handlers could not be set up.
    #[error("cannot set up the runtime or signal handlers: {0}")]
    Signals(std::io::Error),
    /// The dashboard's HTTP listener could not start.
    #[error(transparent)]
    Http(#[from] crate::http::BindError),
    /// The dashboard could not read the hub's storage at startup.
    #[error(transparent)]
    Store(#[from] crate::StoreError),
}

/// Overrides from the command line.
#[derive(Debug, Clone, Default)]
pub struct ServeOptions {
    /// Listen here instead of `hub.toml`'s `listen`.
    pub listen: Vec<Multiaddr>,
    /// The dashboard's address and alert limits.
    pub dashboard: crate::http::DashboardOptions,
}

/// What the hub knows of a connected peer.
struct Peer {
    node: NodeId,
    /// `None` while the peer is being dropped (not enrolled, revoked).
    session: Option<HubSession>,
    refusal: Option<Refusal>,
    since: Instant,
    bad_frames: u32,
}

/// How long an unenrolled peer has to hear why before it is dropped anyway.
const REFUSAL_GRACE: Duration = Duration::from_secs(2);
/// How often live links are confirmed to the status model (the dashboard).
const LINKS_ALIVE_EVERY: Duration = Duration::from_secs(60);

struct Server {
    hub: Hub,
    swarm: Swarm<Behaviour>,
    config: HubNetConfig,
    peers: HashMap<PeerId, Peer>,
    links_noted_at: Instant,
}

/// Serves nodes until SIGINT or SIGTERM.
pub async fn serve(data: &Path, opts: ServeOptions) -> Result<(), ServeError> {
    let hub = Hub::open(data)?;
    // The dashboard's address, TLS files and the loopback-or-TLS rule are
    // checked (and its port bound) before the swarm listens.
    let door = crate::http::Door::open(&opts.dashboard).await?;
    let config = HubNetConfig::load_or_create(data)?;
    let swarm = build_swarm(hub.key.signing_key(), &config)?;
    let mut s = Server {
        hub,
        swarm,
        config,
        peers: HashMap::new(),
        links_noted_at: Instant::now(),
    };
    let listen: Vec<Multiaddr> = if opts.listen.is_empty() {
        let mut v = vec![];
        for a in &s.config.listen {
            v.push(
                a.parse()
                    .map_err(|e: libp2p::multiaddr::Error| ServeError::Listen {
                        addr: a.clone(),
                        detail: e.to_string(),
                    })?,
            );
        }
        v
    } else {
        opts.listen
    };
    for addr in listen {
        s.swarm
            .listen_on(addr.clone())
            .map_err(|e| ServeError::Listen {
                addr: addr.to_string(),
                detail: e.to_string(),
            })?;
    }
    // Links a previous process left open ended when it stopped.
    s.hub.close_stale_links()?;
    let config = crate::http::AppConfig {
        tls: door.is_tls(),
        ..opts.dashboard.app.clone()
    };
    let state = crate::http::AppState::with_config(
        Hub::open(data)?,
        opts.dashboard.thresholds.clone(),
        config,
    );
    // The operator exchange API authenticates by signature, beside the dashboard's login.
    let dashboard = crate::http::app(state.clone(), crate::economy::http::admin_routes())
        .merge(crate::economy::http::router(state));
    tokio::spawn(async move {
        if let Err(e) = door.serve(dashboard).await {
            warn!("dashboard stopped: {e}");
        }
    });
    info!(hub = %s.hub.hub_id().short(), peer = %s.swarm.local_peer_id(), "hub serving");
    let mut sigint = signal(SignalKind::interrupt()).map_err(ServeError::Signals)?;
    let mut sigterm = signal(SignalKind::terminate()).map_err(ServeError::Signals)?;
    let mut sweep = tokio::time::interval(Duration::from_secs(1));
    loop {
        tokio::select! {
            ev = s.swarm.select_next_some() => s.on_swarm_event(ev),
            _ = sweep.tick() => s.sweep(),
            _ = sigint.recv() => { info!("SIGINT: stopping"); break; }
            _ = sigterm.recv() => { info!("SIGTERM: stopping"); break; }
        }
    }
    // Every answered push was committed before its answer; nothing is
    // buffered outside the database.
    info!("hub stopped");
    Ok(())
}

/// The hub's swarm: `/mykey/sync/1`, identify and ping, paced by `hub.toml`.
fn build_swarm(key: &SigningKey, c: &HubNetConfig) -> Result<Swarm<Behaviour>, SwarmError> {
    let link = c.link_timing();
    let agent = concat!("mykey-hub/", env!("CARGO_PKG_VERSION"));
    mykey_net::build_swarm(key, &link, |key| Ok(Behaviour::new(key, agent, &link)))
}

impl Server {
    fn on_swarm_event(&mut self, ev: SwarmEvent<BehaviourEvent>) {
        match ev {
            SwarmEvent::NewListenAddr { address, .. } => {
                println!("listening on {address}/p2p/{}", self.swarm.local_peer_id());
            }
            SwarmEvent::ConnectionEstablished {
                peer_id,
                num_established,
                endpoint,
                ..
            } if num_established.get() == 1 => {
                self.admit(peer_id, endpoint.get_remote_address());
            }
            SwarmEvent::ConnectionClosed {
                peer_id,
                num_established: 0,
                cause,
                ..
            } => {
                if let Some(p) = self.peers.remove(&peer_id) {
                    info!(node = %p.node.short(), cause = ?cause, "node disconnected");
                    if let Err(e) = self.hub.note_link_closed(&p.node, unix_now()) {
                        warn!(node = %p.node.short(), "cannot record the link's end: {e}");
                    }
                }
            }
            SwarmEvent::Behaviour(BehaviourEvent::Sync(ev)) => self.on_sync_event(ev),
            SwarmEvent::Behaviour(BehaviourEvent::Ping(ping::Event {
                peer,
                result: Err(e),
                ..
            })) => {
                warn!(%peer, "ping failed ({e}): dropping the link");
                let _ = self.swarm.disconnect_peer_id(peer);
            }
            SwarmEvent::IncomingConnectionError { error, .. } => {
                debug!("incoming connection failed: {error}");
            }
            _ => {}
        }
    }

    /// Decides at connection time whether the peer's key may talk to us.
    fn admit(&mut self, peer: PeerId, addr: &Multiaddr) {
        let Some(node) = node_id_of(&peer) else {
            warn!(%peer, %addr, "dropping peer: its key is not ed25519, so it cannot be a node");
            let _ = self.swarm.disconnect_peer_id(peer);
            return;
        };
        let refusal = match self.hub.node(&node) {
            Ok(Some(r)) if r.is_revoked() => Some(Refusal::Revoked),
            Ok(Some(_)) => None,
            Ok(None) => Some(Refusal::NotEnrolled),
            Err(e) => {
                warn!(node = %node.short(), "dropping peer: cannot read the registry: {e}");
                let _ = self.swarm.disconnect_peer_id(peer);
                return;
            }
        };
        match &refusal {
            Some(r) => {
                warn!(node = %node.short(), %peer, %addr, "dropping peer: {r}")
            }
            None => info!(node = %node.short(), %addr, "node connected"),
        }
        self.peers.insert(
            peer,
            Peer {
                node,
                session: refusal.is_none().then(|| HubSession::new(node)),
                refusal,
                since: Instant::now(),
                bad_frames: 0,
            },
        );
    }

    /// Drops refused peers that outstayed their grace.
    fn sweep(&mut self) {
        let late: Vec<PeerId> = self
            .peers
            .iter()
            .filter(|(_, p)| p.refusal.is_some() && p.since.elapsed() >= REFUSAL_GRACE)
            .map(|(id, _)| *id)
            .collect();
        for id in late {
            let _ = self.swarm.disconnect_peer_id(id);
        }
        if self.links_noted_at.elapsed() >= LINKS_ALIVE_EVERY {
            self.links_noted_at = Instant::now();
            let live: Vec<NodeId> = self
                .peers
                .values()
                .filter(|p| p.session.is_some())
                .map(|p| p.node)
                .collect();
            if let Err(e) = self.hub.note_links_alive(&live, unix_now()) {
                warn!("cannot record live links: {e}");
            }
            // Held exchanges become spendable and lots expire: a bounded step
            // (10 batches of each) a minute, so the loop never stalls on it.
            if let Err(e) = self.hub.economy_tick(unix_now(), 10) {
                warn!("cannot run the expiry job: {e}");
            }
            // A shard that outgrew its target gets a new epoch before a
            // node's catch-up of it passes the wire bound (logged inside).
            if let Err(e) = self.hub.shard_tick(unix_now()) {
                warn!("cannot check shard sizes: {e}");
            }
        }
    }

    fn on_sync_event(&mut self, ev: request_response::Event<Frame, Frame>) {
        use request_response::{Event, Message};
        match ev {
            Event::Message {
                peer,
                message:
                    Message::Request {
                        request, channel, ..
                    },
                ..
            } => self.on_request(peer, request, channel),
            Event::ResponseSent { peer, .. } => {
                let done = self.peers.get(&peer).is_some_and(|p| {
                    p.refusal.is_some() || p.bad_frames > self.config.max_bad_frames
                });
                if done {
                    let _ = self.swarm.disconnect_peer_id(peer);
                }
            }
            Event::InboundFailure { peer, error, .. } => {
                warn!(%peer, "request from peer failed: {error}");
            }
            Event::OutboundFailure { peer, error, .. } => {
                debug!(%peer, "outbound request failed: {error}");
            }
            Event::Message {
                message: Message::Response { .. },
                ..
            } => {}
        }
    }

    fn on_request(&mut self, peer: PeerId, frame: Frame, channel: ResponseChannel<Frame>) {
        let now = unix_now();
        let max_bad = self.config.max_bad_frames;
        let Some(p) = self.peers.get_mut(&peer) else {
            warn!(%peer, "request from a peer that was not admitted: dropping it");
            let _ = self.swarm.disconnect_peer_id(peer);
            return;
        };
        let node = p.node;
        let response = if let Some(r) = &p.refusal {
            Response::Refused(r.clone())
        } else {
            match frame.into_message() {
                Err(why) => {
                    p.bad_frames += 1;
                    p.session = Some(HubSession::new(node));
                    warn!(node = %node.short(), %peer, bad_frames = p.bad_frames, "refused a message: {why}");
                    Response::Refused(Refusal::Protocol(why))
                }
                Ok(bytes) => match Request::decode(&bytes) {
                    Err(e) => {
                        p.bad_frames += 1;
                        p.session = Some(HubSession::new(node));
                        warn!(node = %node.short(), %peer, bytes = bytes.len(), bad_frames = p.bad_frames, "refused a message: {e}");
                        Response::Refused(refusal_for_wire_error(&e))
                    }
                    Ok(req) => {
                        let session = p.session.get_or_insert_with(|| HubSession::new(node));
                        let kind = match &req {
                            Request::Hello(_) => "hello",
                            Request::Push(_) => "push",
                            Request::PullFacts(_) => "pull",
                            Request::Shards => "shards",
                            Request::ShardSync(_) => "shard sync",
                        };
                        let resp = session.handle_request(req, now, &mut self.hub);
                        if let Response::Refused(r) = &resp {
                            warn!(node = %node.short(), request = kind, "refused: {r}");
                        } else {
                            debug!(node = %node.short(), request = kind, "answered");
                        }
                        resp
                    }
                },
            }
        };
        if p.bad_frames > max_bad {
            warn!(node = %node.short(), "too many bad messages: dropping the peer after this answer");
        }
        if self
            .swarm
            .behaviour_mut()
            .sync
            .send_response(channel, Frame::Message(response.encode()))
            .is_err()
        {
            debug!(node = %node.short(), "the peer left before its answer");
        }
    }
}

/// [`serve`] on a single-threaded tokio runtime of its own, for `main`;
/// `listen` overrides `hub.toml` when not empty.
pub fn serve_blocking(
    data: &Path,
    listen: &[String],
    dashboard: crate::http::DashboardOptions,
) -> Result<(), ServeError> {
    let mut opts = ServeOptions {
        dashboard,
        ..ServeOptions::default()
    };
    for a in listen {
        opts.listen.push(
            a.parse()
                .map_err(|e: libp2p::multiaddr::Error| ServeError::Listen {
                    addr: a.clone(),
                    detail: e.to_string(),
                })?,
        );
    }
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(ServeError::Signals)?;
    rt.block_on(serve(data, opts))
}
