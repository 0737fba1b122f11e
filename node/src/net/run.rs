//! `mykey-node run`: the node's long-running network loop.
//!
//! One task, one loop over a closed set of inputs (a swarm event, a timer, a
//! signal). The hub link is the sans-IO [`NodeSession`]; this loop only
//! carries its requests over libp2p, feeds back answers, link changes and
//! time, and hands its events to [`drain_events`]. Every effect on the store
//! is durable before the loop moves on, so SIGINT / SIGTERM (or `kill -9`)
//! loses nothing: a restart resumes from the store.
//!
//! The loop keeps its own address book for the hub (libp2p forgets an
//! address after a failed dial) and dials with explicit addresses, reconnects
//! with exponential backoff and full jitter, keeps links open past libp2p's
//! 10 s idle default, and drops a link whose pings fail.

use super::backoff::Backoff;
use super::config::{NetConfig, NetConfigError, parse_addr};
use super::driver::{DriveError, Ended, drain_events};
use super::transport::{Behaviour, BehaviourEvent, TransportConfig, build_swarm};
use super::unix_now;
use crate::config::{DataDir, DataDirError};
use crate::key::{KeyError, NodeKey};
use crate::node::Node;
use futures::StreamExt;
use libp2p::multiaddr::Protocol;
use libp2p::request_response::{self, OutboundRequestId};
use libp2p::swarm::SwarmEvent;
use libp2p::swarm::dial_opts::{DialOpts, PeerCondition};
use libp2p::{Multiaddr, PeerId, Swarm, ping};
use mykey_net::BehaviourEvent as BaseEvent;
use mykey_net::{Frame, LinkTiming, SwarmError, node_id_of, peer_id_of};
use mykey_sync_proto::UnixMillis;
use mykey_sync_proto::session::{NodeSession, NodeSessionConfig};
use mykey_sync_proto::wire::Response;
use std::collections::HashMap;
use std::time::Duration;
use tokio::signal::unix::{SignalKind, signal};
use tokio::time::Instant;
use tracing::{debug, error, info, warn};

mod peers;
use peers::LanPeer;

/// Why `run` could not start or had to stop.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// The data directory is unusable.
    #[error(transparent)]
    DataDir(#[from] DataDirError),
    /// The key file is unusable.
    #[error(transparent)]
    Key(#[from] KeyError),
    /// `net.toml` is unusable.
    #[error(transparent)]
    NetConfig(#[from] NetConfigError),
    /// An address in the config is unusable.
    #[error("{0}")]
    Address(String),
    /// The transport could not be built.
    #[error(transparent)]
    Transport(#[from] SwarmError),
    /// Listening failed.
    #[error("cannot listen on {addr}: {detail}; pick another address in net.toml or --listen")]
    Listen {
        /// The address.
        addr: Multiaddr,
        /// Why.
        detail: String,
    },
    /// The runtime or the signal handlers could not be set up.
    #[error("cannot set up the runtime or signal handlers: {0}")]
    Signals(std::io::Error),
    /// The store failed at startup.
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
    /// The local status page could not start.
    #[error(transparent)]
    StatusPage(#[from] crate::http::PageError),
}

/// Overrides from the command line.
#[derive(Debug, Clone, Default)]
pub struct RunOptions {
    /// Listen here instead of `net.toml`'s `listen`.
    pub listen: Vec<Multiaddr>,
    /// Dial the hub here too.
    pub hub_addrs: Vec<Multiaddr>,
    /// LAN peers to dial too (`…/p2p/<peer id>`).
    pub peers: Vec<Multiaddr>,
    /// The local status page's address (`None`: [`crate::http::DEFAULT_ADDR`]).
    pub status_http: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum HubLink {
    /// Not connected; dial at this instant.
    Down { retry_at: Instant },
    /// A dial is under way.
    Dialing,
    /// Connected; the session runs.
    Up,
}

struct Runner {
    node: Node,
    swarm: Swarm<Behaviour>,
    net: NetConfig,
    hub_peer: PeerId,
    /// Our own address book for the hub.
    hub_book: Vec<Multiaddr>,
    link: HubLink,
    backoff: Backoff,
    session: NodeSession,
    in_flight: Option<OutboundRequestId>,
    known_seq: u64,
    next_outbox_poll: Instant,
    bytes_up: u64,
    bytes_down: u64,
    was_caught_up: bool,
    /// Failed dials since the link was last up (the first, then the 2nd,
    /// 4th, 8th … are logged at warn).
    dial_failures: u32,
    /// When the hub link went down (or the node started without it); `None`
    /// while it is up. The outage's length counts from here.
    outage_since: Option<Instant>,
    /// Whether this outage was logged, so its end is logged too.
    dial_failures_logged: bool,
    /// LAN peers: static ones (with addresses) and those that dialled us.
    lan: HashMap<PeerId, LanPeer>,
    next_gossip_at: Instant,
    next_relay_at: Instant,
    /// A push of LAN peers' transactions to the hub, outside the session.
    relay_in_flight: Option<OutboundRequestId>,
    seed: u64,
    /// The hub refused this node: do not dial before this.
    refused_until: Option<Instant>,
    /// LAN peers refused since they were last admitted (each logged once at warn).
    refused_peers: std::collections::HashSet<PeerId>,
    /// Rotates which signer leads a carried batch.
    relay_turn: usize,
    /// Card holders' requests from the loopback page (issue 19).
    holder_asks: tokio::sync::mpsc::Receiver<super::holder_desk::Ask>,
    /// Those on their way to the hub, by request id.
    holder_in_flight: HashMap<OutboundRequestId, HolderReply>,
}

type HolderReply = tokio::sync::oneshot::Sender<
    Result<mykey_sync_proto::holder::HolderResponse, super::holder_desk::DeskError>,
>;

/// Runs the node until SIGINT or SIGTERM.
pub async fn run(dir: &DataDir, opts: RunOptions) -> Result<(), RunError> {
    let config = dir.config()?;
    let net = NetConfig::load(dir.root())?;
    let key = NodeKey::load_or_create(&dir.key_path())?;
    let transport = TransportConfig {
        link: LinkTiming {
            ping_interval: NetConfig::ms(net.ping_interval_ms),
            ping_timeout: NetConfig::ms(net.ping_timeout_ms),
            ..LinkTiming::default()
        },
        mdns_query_interval: net.mdns.then(|| NetConfig::ms(net.mdns_query_interval_ms)),
    };
    let agent = concat!("mykey-node/", env!("CARGO_PKG_VERSION"));
    let mut swarm = build_swarm(key.signing_key(), agent, &transport)?;
    drop(key);
    let node = dir.open()?;
    let hub = node.hub();
    let hub_peer = peer_id_of(&hub);

    let mut hub_book = vec![];
    let texts = config.hub_addr.iter().chain(&net.hub_addrs);
    for text in texts {
        let addr = parse_addr(text).map_err(RunError::Address)?;
        hub_book.push(strip_peer(addr, &hub_peer).map_err(RunError::Address)?);
    }
    for addr in &opts.hub_addrs {
        hub_book.push(strip_peer(addr.clone(), &hub_peer).map_err(RunError::Address)?);
    }
    if hub_book.is_empty() {
        warn!("no hub address: set hub_addr in node.toml; serving from the local store until then");
    }
    let listen: Vec<Multiaddr> = if opts.listen.is_empty() {
        net.listen_addrs(!opts.peers.is_empty())
            .iter()
            .map(|t| parse_addr(t).map_err(RunError::Address))
            .collect::<Result<_, _>>()?
    } else {
        opts.listen.clone()
    };
    for addr in listen {
        mykey_net::listen_alone(&mut swarm, addr.clone()).map_err(|e| RunError::Listen {
            addr,
            detail: e.to_string(),
        })?;
    }

    let mut seed = [0u8; 8];
    // A fixed seed only costs jitter quality, never correctness.
    let _ = getrandom::fill(&mut seed);
    let session_config = NodeSessionConfig {
        batch_txs: net.batch_txs,
        software: agent.to_owned(),
        ..NodeSessionConfig::default()
    };
    let known_seq = node.sync_position()?.0;
    let (desk, holder_asks) = super::holder_desk::HolderDesk::new();
    let mut r = Runner {
        session: NodeSession::new(node.id(), session_config),
        backoff: Backoff::new(
            NetConfig::ms(net.backoff_base_ms),
            NetConfig::ms(net.backoff_cap_ms),
            u64::from_le_bytes(seed),
        ),
        node,
        swarm,
        net,
        hub_peer,
        hub_book,
        link: HubLink::Down {
            retry_at: Instant::now(),
        },
        in_flight: None,
        known_seq,
        next_outbox_poll: Instant::now(),
        bytes_up: 0,
        bytes_down: 0,
        was_caught_up: false,
        dial_failures: 0,
        outage_since: Some(Instant::now()),
        dial_failures_logged: false,
        lan: HashMap::new(),
        next_gossip_at: Instant::now(),
        next_relay_at: Instant::now(),
        relay_in_flight: None,
        seed: u64::from_le_bytes(seed),
        refused_until: None,
        refused_peers: Default::default(),
        relay_turn: 0,
        holder_asks,
        holder_in_flight: HashMap::new(),
    };
    let statics = r.net.peers.clone();
    let mut static_addrs: Vec<Multiaddr> = vec![];
    for text in statics {
        static_addrs.push(parse_addr(&text).map_err(RunError::Address)?);
    }
    static_addrs.extend(opts.peers.iter().cloned());
    for addr in static_addrs {
        let (peer, addr) = split_peer(addr).map_err(RunError::Address)?;
        let Some(node) = node_id_of(&peer) else {
            return Err(RunError::Address(format!(
                "peer {peer} does not have an ed25519 key, so it cannot be a node"
            )));
        };
        let (net, seed) = (&r.net, r.seed ^ u64::from(r.lan.len() as u32 + 1));
        r.lan
            .entry(peer)
            .or_insert_with(|| LanPeer::new(node, vec![], net, seed))
            .addrs
            .push(addr);
    }
    for p in r.lan.values_mut() {
        p.retry_at = Some(Instant::now());
    }
    info!(node = %r.node.id().short(), hub = %hub.short(), hub_peer = %hub_peer, "node running");

    let live = crate::http::Live::new(unix_now());
    crate::http::start(dir, opts.status_http.as_deref(), live.clone(), Some(desk)).await?;

    let mut sigint = signal(SignalKind::interrupt()).map_err(RunError::Signals)?;
    let mut sigterm = signal(SignalKind::terminate()).map_err(RunError::Signals)?;
    loop {
        r.maybe_dial();
        r.maybe_dial_peers();
        let deadline = r.next_deadline();
        tokio::select! {
            ev = r.swarm.select_next_some() => r.on_swarm_event(ev),
            Some(ask) = r.holder_asks.recv() => r.on_holder_ask(ask),
            _ = tokio::time::sleep_until(deadline) => {}
            _ = sigint.recv() => { info!("SIGINT: stopping"); break; }
            _ = sigterm.recv() => { info!("SIGTERM: stopping"); break; }
        }
        r.tick();
        live.publish(&r.live_view(), unix_now());
    }
    // Everything the session handed over is already committed; nothing is
    // buffered outside the store.
    info!(
        bytes_up = r.bytes_up,
        bytes_down = r.bytes_down,
        "node stopped"
    );
    Ok(())
}

/// A LAN peer's address split into its peer id and the rest.
fn split_peer(mut addr: Multiaddr) -> Result<(PeerId, Multiaddr), String> {
    match addr.pop() {
        Some(Protocol::P2p(id)) => Ok((id, addr)),
        _ => Err(format!(
            "peer address {addr} must end in /p2p/<peer id> (as `mykey-node run` prints it)"
        )),
    }
}

/// `addr` without a trailing `/p2p/<id>`, which must name `peer` if present.
pub(crate) fn strip_peer(mut addr: Multiaddr, peer: &PeerId) -> Result<Multiaddr, String> {
    if let Some(Protocol::P2p(id)) = addr.iter().last() {
        if id != *peer {
            return Err(format!(
                "{addr} names peer {id}, but the hub key in node.toml is peer {peer}: fix hub_addr"
            ));
        }
        addr.pop();
    }
    Ok(addr)
}

/// A libp2p dial error on one line (it lists each address on its own).
pub(crate) fn one_line(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

fn instant_at(t: UnixMillis, now: UnixMillis) -> Instant {
    Instant::now() + Duration::from_millis(t.0.saturating_sub(now.0))
}

impl Runner {
    /// What the status page shows of the links.
    fn live_view(&self) -> crate::http::LiveView {
        use crate::http::HubLinkState;
        crate::http::LiveView {
            hub_link: match self.link {
                HubLink::Up => HubLinkState::Up,
                HubLink::Dialing => HubLinkState::Dialing,
                HubLink::Down { .. } => HubLinkState::Down,
            },
            lan_peers: self.lan.values().map(|p| (p.node, p.connected)).collect(),
            peer_holds: self
                .lan
                .values()
                .filter_map(|p| Some((p.node, p.peer_has?)))
                .collect(),
        }
    }

    fn maybe_dial(&mut self) {
        let HubLink::Down { retry_at } = self.link else {
            return;
        };
        if Instant::now() < retry_at || self.hub_book.is_empty() {
            return;
        }
        let opts = DialOpts::peer_id(self.hub_peer)
            .addresses(self.hub_book.clone())
            .condition(PeerCondition::DisconnectedAndNotDialing)
            .build();
        match self.swarm.dial(opts) {
            Ok(()) => {
                debug!(addrs = ?self.hub_book, "dialing the hub");
                self.link = HubLink::Dialing;
            }
            Err(e) => {
                warn!("cannot dial the hub: {e}");
                let _ = self.link_down();
            }
        }
    }

    fn next_deadline(&self) -> Instant {
        let now = unix_now();
        let mut d = self.next_outbox_poll;
        if let HubLink::Down { retry_at } = self.link
            && !self.hub_book.is_empty()
        {
            d = d.min(retry_at);
        }
        if let Some(t) = self.session.poll_timeout() {
            d = d.min(instant_at(t, now));
        }
        if let Some(t) = self.lan_deadline() {
            d = d.min(t);
        }
        d
    }

    /// Takes the link down and schedules the next dial; returns how long
    /// until that dial.
    fn link_down(&mut self) -> Duration {
        self.session.handle_disconnected();
        self.in_flight = None;
        self.relay_in_flight = None;
        // Their askers hear "offline" when the replies drop.
        self.holder_in_flight.clear();
        let mut retry_at = Instant::now() + self.backoff.next_delay();
        // After a refusal, wait the refusal's delay, not the backoff's.
        if let Some(t) = self.refused_until.take() {
            retry_at = retry_at.max(t);
        }
        let wait = retry_at.saturating_duration_since(Instant::now());
        debug!("hub link down, retrying in {wait:?}");
        self.link = HubLink::Down { retry_at };
        self.outage_since.get_or_insert_with(Instant::now);
        wait
    }

    /// How long the current outage has lasted, in whole seconds.
    fn outage_s(&self) -> u64 {
        self.outage_since.map_or(0, |t| t.elapsed().as_secs())
    }

    /// Sends one request to the hub at the addresses in our own book,
    /// counting its bytes (and the frame's length prefix) as sent.
    fn send_to_hub(&mut self, bytes: Vec<u8>) -> OutboundRequestId {
        self.bytes_up += bytes.len() as u64 + 4;
        self.swarm
            .behaviour_mut()
            .base
            .sync
            .send_request_with_addresses(
                &self.hub_peer,
                Frame::Message(bytes),
                self.hub_book.clone(),
            )
    }

    fn on_swarm_event(&mut self, ev: SwarmEvent<BehaviourEvent>) {
        let now = unix_now();
        match ev {
            SwarmEvent::NewListenAddr { address, .. } => {
                println!("listening on {address}/p2p/{}", self.swarm.local_peer_id());
            }
            SwarmEvent::ConnectionEstablished {
                peer_id,
                num_established,
                ..
            } if peer_id == self.hub_peer && num_established.get() == 1 => {
                self.backoff.reset();
                self.dial_failures = 0;
                self.link = HubLink::Up;
                // warn, like the loss: the default log level shows both.
                if let Some(since) = self.outage_since.take()
                    && self.dial_failures_logged
                {
                    warn!(
                        down_s = since.elapsed().as_secs(),
                        "hub link back after {} s down",
                        since.elapsed().as_secs()
                    );
                }
                self.dial_failures_logged = false;
                match self.node.sync_position() {
                    Ok((last, receipted, cursor)) => {
                        info!(
                            last_seq = last,
                            receipted_seq = receipted,
                            fact_cursor = cursor,
                            "connected to the hub"
                        );
                        self.known_seq = last;
                        self.session.handle_connected(now, last, receipted, cursor);
                    }
                    Err(e) => {
                        error!("cannot read the sync position: {e}");
                        let _ = self.swarm.disconnect_peer_id(self.hub_peer);
                    }
                }
            }
            SwarmEvent::ConnectionClosed {
                peer_id,
                num_established,
                cause,
                ..
            } if peer_id == self.hub_peer && num_established == 0 => {
                self.outage_since = Some(Instant::now());
                let wait = self.link_down();
                let why = cause.map_or("closed".to_owned(), |c| c.to_string());
                warn!(
                    "hub link lost ({why}); next try in {} s; transactions queue here until it is back",
                    wait.as_secs().max(1)
                );
                self.dial_failures_logged = true;
            }
            SwarmEvent::OutgoingConnectionError {
                peer_id: Some(p),
                error,
                ..
            } if p == self.hub_peer && self.link != HubLink::Up => {
                self.dial_failures += 1;
                let wait = self.link_down();
                let next = wait.as_secs().max(1);
                // Attempts 1, 2, 4, 8 …: a long outage says it is still on
                // without a line per retry.
                if self.dial_failures.is_power_of_two() {
                    warn!(
                        attempt = self.dial_failures,
                        "cannot reach the hub (down for {} s): {}; next try in {next} s",
                        self.outage_s(),
                        one_line(&error.to_string()),
                    );
                    self.dial_failures_logged = true;
                } else {
                    debug!(
                        attempt = self.dial_failures,
                        "cannot reach the hub: {error}; next try in {next} s"
                    );
                }
            }
            SwarmEvent::ConnectionEstablished {
                peer_id,
                num_established,
                ..
            } if peer_id != self.hub_peer && num_established.get() == 1 => {
                self.on_peer_connected(peer_id)
            }
            SwarmEvent::ConnectionClosed {
                peer_id,
                num_established: 0,
                ..
            } if peer_id != self.hub_peer => self.on_peer_closed(peer_id),
            SwarmEvent::OutgoingConnectionError {
                peer_id: Some(p), ..
            } if p != self.hub_peer => self.on_peer_dial_failed(p),
            SwarmEvent::Behaviour(BehaviourEvent::Base(BaseEvent::Sync(ev))) => {
                self.on_sync_event(ev, now)
            }
            SwarmEvent::Behaviour(BehaviourEvent::Lan(ev)) => self.on_lan_event(ev, now),
            SwarmEvent::Behaviour(BehaviourEvent::Mdns(ev)) => self.on_mdns_event(ev),
            SwarmEvent::Behaviour(BehaviourEvent::Base(BaseEvent::Ping(ping::Event {
                peer,
                result: Err(e),
                ..
            }))) => {
                warn!(%peer, "ping failed ({e}): dropping the link");
                let _ = self.swarm.disconnect_peer_id(peer);
            }
            _ => {}
        }
    }

    fn on_sync_event(&mut self, ev: request_response::Event<Frame, Frame>, now: UnixMillis) {
        use request_response::{Event, Message};
        match ev {
            Event::Message {
                peer,
                message:
                    Message::Response {
                        request_id,
                        response,
                    },
                ..
            } if peer == self.hub_peer && Some(request_id) == self.in_flight => {
                self.in_flight = None;
                let bytes = match response.into_message() {
                    Ok(b) => b,
                    Err(why) => return self.drop_hub(&format!("bad frame from the hub: {why}")),
                };
                self.bytes_down += bytes.len() as u64 + 4;
                match Response::decode(&bytes) {
                    Ok(resp) => {
                        // An error here is also queued as a Closed event.
                        let _ = self.session.handle_response(resp, now);
                    }
                    Err(e) => self.drop_hub(&format!("undecodable answer from the hub: {e}")),
                }
            }
            Event::Message {
                peer,
                message:
                    Message::Response {
                        request_id,
                        response,
                    },
                ..
            } if peer == self.hub_peer && Some(request_id) == self.relay_in_flight => {
                self.on_relay_answer(response, now)
            }
            Event::Message {
                peer,
                message:
                    Message::Response {
                        request_id,
                        response,
                    },
                ..
            } if peer == self.hub_peer && self.holder_in_flight.contains_key(&request_id) => {
                self.on_holder_answer(request_id, response)
            }
            Event::OutboundFailure { request_id, .. }
                if self.holder_in_flight.contains_key(&request_id) =>
            {
                if let Some(reply) = self.holder_in_flight.remove(&request_id) {
                    let _ = reply.send(Err(super::holder_desk::DeskError::Offline));
                }
            }
            Event::OutboundFailure {
                request_id, error, ..
            } if Some(request_id) == self.relay_in_flight => {
                debug!("carrying peers' transactions failed: {error}");
                self.relay_in_flight = None;
            }
            Event::Message {
                peer,
                message: Message::Request { channel, .. },
                ..
            } => {
                // A node is not a hub: it answers no sync requests.
                debug!(%peer, "sync request to a node dropped: nodes serve only /mykey/lan/1");
                drop(channel);
            }
            Event::OutboundFailure {
                peer,
                request_id,
                error,
                ..
            } if peer == self.hub_peer && Some(request_id) == self.in_flight => {
                self.in_flight = None;
                self.drop_hub(&format!("request to the hub failed: {error}"));
            }
            other => debug!(?other, "sync event"),
        }
    }

    /// A holder's request from the page: sent beside the session while it
    /// is open, else answered offline at once.
    fn on_holder_ask(&mut self, ask: super::holder_desk::Ask) {
        use super::holder_desk::{DeskError, MAX_IN_FLIGHT};
        if !self.session.is_open() {
            let _ = ask.reply.send(Err(DeskError::Offline));
            return;
        }
        if self.holder_in_flight.len() >= MAX_IN_FLIGHT {
            let _ = ask.reply.send(Err(DeskError::Busy));
            return;
        }
        let id =
            self.send_to_hub(mykey_sync_proto::wire::Request::Holder(Box::new(ask.req)).encode());
        self.holder_in_flight.insert(id, ask.reply);
    }

    fn on_holder_answer(&mut self, id: OutboundRequestId, response: Frame) {
        use super::holder_desk::DeskError;
        let Some(reply) = self.holder_in_flight.remove(&id) else {
            return;
        };
        let answer = match response.into_message() {
            Ok(bytes) => {
                self.bytes_down += bytes.len() as u64 + 4;
                match Response::decode(&bytes) {
                    Ok(Response::Holder(h)) => Ok(*h),
                    Ok(other) => {
                        debug!(?other, "holder request answered with something else");
                        Err(DeskError::NoAnswer)
                    }
                    Err(e) => {
                        debug!("undecodable holder answer: {e}");
                        Err(DeskError::NoAnswer)
                    }
                }
            }
            Err(why) => {
                debug!("bad frame answering a holder request: {why}");
                Err(DeskError::NoAnswer)
            }
        };
        let _ = reply.send(answer);
    }

    fn drop_hub(&mut self, why: &str) {
        warn!("{why}: dropping the hub link");
        if self.swarm.disconnect_peer_id(self.hub_peer).is_err() {
            let _ = self.link_down();
        }
        // ConnectionClosed follows and takes the link down.
        self.session.handle_disconnected();
    }

    fn tick(&mut self) {
        let now = unix_now();
        if Instant::now() >= self.next_outbox_poll {
            self.next_outbox_poll = Instant::now() + NetConfig::ms(self.net.outbox_poll_ms);
            match self.node.sync_position() {
                Ok((last, _, _)) if last > self.known_seq => {
                    self.known_seq = last;
                    self.session.note_local_seq(last, now);
                }
                Ok(_) => {}
                Err(e) => error!("cannot read the outbox: {e}"),
            }
        }
        if let Some(t) = self.session.poll_timeout()
            && t <= now
        {
            self.session.handle_timeout(now);
        }
        self.pump(now);
        self.gossip();
        self.maybe_relay();
    }

    /// Hands session events to the store and session requests to the wire.
    fn pump(&mut self, now: UnixMillis) {
        loop {
            match drain_events(&mut self.session, &mut self.node, now, now) {
                Ok(d) => {
                    if d.receipts > 0 || d.facts > 0 {
                        debug!(
                            receipts = d.receipts,
                            rejected = d.rejected,
                            facts = d.facts,
                            "applied"
                        );
                    }
                    match d.ended {
                        Some(Ended::Refused(r)) => {
                            let retry = NetConfig::ms(self.net.refused_retry_ms);
                            error!("the hub refused this node: {r} (trying again in {retry:?})");
                            let until = Instant::now() + retry;
                            self.refused_until = Some(until);
                            if self.swarm.disconnect_peer_id(self.hub_peer).is_err() {
                                let _ = self.link_down();
                            }
                            // ConnectionClosed follows and takes the link down.
                            self.session.handle_disconnected();
                            self.in_flight = None;
                            return;
                        }
                        Some(Ended::Closed(e)) => {
                            warn!("session closed: {e}");
                            self.drop_hub("session closed");
                            return;
                        }
                        None => {}
                    }
                }
                Err(e) => {
                    error!("{}", drive_error_text(&e));
                    self.drop_hub("local store failed");
                    return;
                }
            }
            let Some(req) = self.session.poll_transmit() else {
                break;
            };
            let id = self.send_to_hub(req.encode());
            self.in_flight = Some(id);
        }
        let caught_up = self.session.is_caught_up();
        if caught_up && !self.was_caught_up {
            info!(
                processed_seq = self.session.processed_seq(),
                bytes_up = self.bytes_up,
                bytes_down = self.bytes_down,
                "caught up with the hub"
            );
        }
        self.was_caught_up = caught_up;
    }
}

fn drive_error_text(e: &DriveError) -> String {
    format!("sync stopped: {e}")
}

impl RunOptions {
    /// Options from command-line strings.
    pub fn parse(
        listen: &[String],
        hub_addrs: &[String],
        peers: &[String],
    ) -> Result<RunOptions, RunError> {
        let p = |v: &[String]| {
            v.iter()
                .map(|t| parse_addr(t).map_err(RunError::Address))
                .collect::<Result<Vec<_>, _>>()
        };
        Ok(RunOptions {
            listen: p(listen)?,
            hub_addrs: p(hub_addrs)?,
            peers: p(peers)?,
            status_http: None,
        })
    }
}

/// [`run`] on a single-threaded tokio runtime of its own, for `main`.
pub fn run_blocking(dir: &DataDir, opts: RunOptions) -> Result<(), RunError> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(RunError::Signals)?;
    rt.block_on(run(dir, opts))
}
