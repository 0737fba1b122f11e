//! `mykey-hub serve`: the hub's swarm and its serving loop.
//!
//! The network thread runs one loop over a closed set of inputs (a swarm
//! event, a finished storage job, a sweep timer, a signal) and never touches
//! storage: every request becomes a job for the storage worker
//! ([`super::worker`], the one writer of the hub's database). Requests wait
//! in per-peer queues served round robin ([`super::fair`]), one turn per
//! peer at a time, a turn being one request or at most `push_budget_txs`
//! transactions of a push ([`super::turn`]); at most a few turns wait at the
//! worker, so a node that pushes 1,000 transactions delays another node's
//! small push by a few turns, not by the whole push. A push is committed
//! (durably) before its receipts are sent, and stopping between two turns
//! loses nothing.
//!
//! Bounds: libp2p connection limits (`max_connections`,
//! `max_pending_connections`, `max_connections_per_peer` in `hub.toml`),
//! `/mykey/sync/1` streams per connection, the bytes of frames being read
//! (`max_reading_bytes`, a [`ByteBudget`] the frame codec holds) and of
//! requests waiting (`max_waiting_bytes`, `max_waiting_per_peer`). A request
//! past a bound is answered "busy" at once and the node tries again later.
//!
//! Bad input never crashes or wedges the loop: an oversized or truncated
//! frame, undecodable bytes or another protocol version are answered with a
//! [`Refusal`] naming the reason, logged with the peer, and end that peer's
//! session (it must say Hello again); past `max_bad_frames` the peer is
//! disconnected. Every other peer is served as before.

use super::config::{HubNetConfig, HubNetConfigError};
use super::fair::{FairQueue, Full};
use super::turn::{Step, TurnWork, take_turn};
use super::unix_now;
use super::worker::{Lane, LaneCaps, Worker, WorkerHandle};
use crate::observed::Observed;
use crate::ticks::TickSchedule;
use crate::{Hub, OpenError};
use ed25519_dalek::SigningKey;
use futures::StreamExt;
use libp2p::request_response::{self, ResponseChannel};
use libp2p::swarm::SwarmEvent;
use libp2p::{Multiaddr, PeerId, Swarm, connection_limits, ping};
use mykey_net::{BehaviourEvent, ByteBudget, Frame, InboundLimits, SwarmError, node_id_of};
use mykey_sync_proto::NodeId;
use mykey_sync_proto::session::{HubSession, refusal_for_wire_error};
use mykey_sync_proto::wire::{Refusal, Request, Response};
use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;
use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::mpsc;
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
    /// The runtime, the worker thread or the signal handlers could not be set up.
    #[error("cannot set up the runtime, the storage worker or signal handlers: {0}")]
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
    /// Trusted JPKI user-authentication CA certificates (DER): with them,
    /// holders may register their cards at kiosks (`crate::holder_order`).
    pub trusted_ca: Vec<Vec<u8>>,
    /// Facilities whose card numbers holders may link at a kiosk at once.
    pub kiosk_links: Vec<mykey_sync_proto::FacilityId>,
}

mod behaviour {
    // The derive generates `HubBehaviourEvent` without docs.
    #![allow(missing_docs)]
    use libp2p::connection_limits;
    use libp2p::swarm::NetworkBehaviour;

    /// The hub's protocols behind its connection limits.
    #[derive(NetworkBehaviour)]
    pub struct HubBehaviour {
        /// Refuses connections past the configured limits.
        pub limits: connection_limits::Behaviour,
        /// `/mykey/sync/1`, identify, ping.
        pub net: mykey_net::Behaviour,
    }
}
use behaviour::{HubBehaviour, HubBehaviourEvent};

/// Where a peer stands with the hub.
enum Admission {
    /// Its key is being looked up.
    Pending,
    /// Enrolled and not revoked.
    Admitted,
    /// Refused: answered with this and dropped after a grace.
    Refused(Refusal),
}

/// A peer's connection: its id and which connection of it (a peer that
/// reconnects while its old turn is at the worker is another key).
type Key = (PeerId, u64);

/// What the hub knows of a connected peer.
struct Peer {
    node: NodeId,
    /// Which connection of the peer this is.
    conn: u64,
    admission: Admission,
    /// `None` while a turn of this peer is at the worker.
    session: Option<HubSession>,
    /// Where the answer of the turn at the worker goes.
    reply: Option<ResponseChannel<Frame>>,
    since: Instant,
    bad_frames: u32,
}

/// A request waiting for its peer's turn.
enum Waiting {
    /// Look the peer's key up (first, before any request).
    Admit,
    /// Work for the worker.
    Turn(TurnWork, ResponseChannel<Frame>),
    /// A bad frame: answer this (no storage needed) and restart the session.
    Refuse(Refusal, ResponseChannel<Frame>),
}

/// A job the worker finished.
enum Done {
    Admitted {
        key: Key,
        refusal: Result<Option<Refusal>, String>,
    },
    Turn {
        key: Key,
        session: HubSession,
        step: Step,
        kind: &'static str,
        /// How long the turn held the writer.
        took: Duration,
    },
    Ticked {
        more: bool,
    },
}

/// How long an unenrolled peer has to hear why before it is dropped anyway.
const REFUSAL_GRACE: Duration = Duration::from_secs(2);
/// Node turns waiting at the worker at most: enough that it never idles
/// between turns, few enough that a new peer's turn comes soon.
const TURNS_AT_WORKER: usize = 2;

struct Server {
    swarm: Swarm<HubBehaviour>,
    config: HubNetConfig,
    peers: HashMap<PeerId, Peer>,
    waiting: FairQueue<Key, Waiting>,
    /// The next connection's generation.
    next_conn: u64,
    worker: WorkerHandle,
    done_tx: mpsc::UnboundedSender<Done>,
    /// Node turns and admissions at the worker.
    at_worker: usize,
    /// The timed jobs (`crate::ticks`), on `started`'s monotonic clock.
    ticks: TickSchedule,
    started: Instant,
}

/// Serves nodes until SIGINT or SIGTERM.
pub async fn serve(data: &Path, opts: ServeOptions) -> Result<(), ServeError> {
    // One record of what this process sees of its nodes (pulls, shard
    // epochs, ingest counters), shared by the writing hub and the
    // dashboard's reading hub.
    let observed = Arc::new(Observed::default());
    let mut hub = open_hub(data, observed.clone()).await?;
    hub.set_trusted_ca(opts.trusted_ca.clone());
    hub.set_kiosk_links(opts.kiosk_links.clone());
    // The dashboard's address, TLS files and the loopback-or-TLS rule are
    // checked (and its port bound) before the swarm listens.
    let door = crate::http::Door::open(&opts.dashboard).await?;
    let config = HubNetConfig::load_or_create(data)?;
    hub.set_lease_ms(config.tick_lease_ms);
    let swarm = build_swarm(hub.key.signing_key(), &config)?;
    let hub_id = hub.hub_id();
    // Links a previous process left open ended when it stopped.
    let hub = off_runtime(move || hub.close_stale_links().map(|_| hub)).await?;
    let worker = Worker::start(
        hub,
        LaneCaps {
            api: config.max_waiting_api_writes,
            ..LaneCaps::default()
        },
    )
    .map_err(ServeError::Signals)?;
    let (done_tx, mut done_rx) = mpsc::unbounded_channel();
    let tick_interval_ms = config.tick_interval_ms;
    let mut s = Server {
        swarm,
        waiting: FairQueue::new(config.max_waiting_per_peer, config.max_waiting_bytes),
        config,
        peers: HashMap::new(),
        next_conn: 0,
        worker: worker.handle(),
        done_tx,
        at_worker: 0,
        ticks: TickSchedule::every(0, tick_interval_ms),
        started: Instant::now(),
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
        mykey_net::listen_alone(&mut s.swarm, addr.clone()).map_err(|e| ServeError::Listen {
            addr: addr.to_string(),
            detail: e.to_string(),
        })?;
    }
    let app_config = crate::http::AppConfig {
        tls: door.is_tls(),
        ..opts.dashboard.app.clone()
    };
    // The dashboard reads on its own connection (WAL readers never wait for
    // the writer); its writes go to the worker.
    let state = crate::http::AppState::with_config(
        open_hub(data, observed).await?,
        opts.dashboard.thresholds.clone(),
        app_config,
    )
    .writing_to(worker.handle());
    // The operator exchange API authenticates by signature, beside the dashboard's login.
    let dashboard = crate::http::app(state.clone(), crate::economy::http::admin_routes())
        .merge(crate::economy::http::router(state));
    tokio::spawn(async move {
        if let Err(e) = door.serve(dashboard).await {
            warn!("dashboard stopped: {e}");
        }
    });
    info!(hub = %hub_id.short(), peer = %s.swarm.local_peer_id(), "hub serving");
    let mut sigint = signal(SignalKind::interrupt()).map_err(ServeError::Signals)?;
    let mut sigterm = signal(SignalKind::terminate()).map_err(ServeError::Signals)?;
    let mut sweep = tokio::time::interval(Duration::from_secs(1));
    loop {
        tokio::select! {
            ev = s.swarm.select_next_some() => s.on_swarm_event(ev),
            Some(done) = done_rx.recv() => s.on_done(done),
            _ = sweep.tick() => s.sweep(),
            _ = sigint.recv() => { info!("SIGINT: stopping"); break; }
            _ = sigterm.recv() => { info!("SIGTERM: stopping"); break; }
        }
        s.dispatch();
    }
    // Every answered push was committed before its answer; the worker
    // finishes the turns it holds (their answers are not sent: the nodes
    // resend, and applying a transaction twice is a no-op).
    drop(s);
    let _ = tokio::task::spawn_blocking(move || {
        // Other processes on the database take its municipalities' timed
        // jobs at their next tick.
        if let Some(mut hub) = worker.stop()
            && let Err(e) = hub.release_tick_leases()
        {
            warn!("cannot release the leases on the timed jobs: {e}");
        }
    })
    .await;
    info!("hub stopped");
    Ok(())
}

/// Opens the hub on the blocking pool: a store's client may block (the
/// PostgreSQL client runs a runtime of its own, which must not start on a
/// runtime's thread).
async fn open_hub(data: &Path, observed: Arc<Observed>) -> Result<Hub, ServeError> {
    let data = data.to_owned();
    off_runtime(move || Hub::open(&data).map(|h| h.observing(observed))).await
}

/// Runs a store call on the blocking pool.
async fn off_runtime<T: Send + 'static, E: Into<ServeError> + Send + 'static>(
    f: impl FnOnce() -> Result<T, E> + Send + 'static,
) -> Result<T, ServeError> {
    match tokio::task::spawn_blocking(f).await {
        Ok(r) => r.map_err(Into::into),
        Err(e) => std::panic::resume_unwind(e.into_panic()),
    }
}

/// The hub's swarm: connection limits, then `/mykey/sync/1` (streams and
/// frame bytes bounded), identify and ping, paced by `hub.toml`.
fn build_swarm(key: &SigningKey, c: &HubNetConfig) -> Result<Swarm<HubBehaviour>, SwarmError> {
    let link = c.link_timing();
    let agent = concat!("mykey-hub/", env!("CARGO_PKG_VERSION"));
    let limits = connection_limits::ConnectionLimits::default()
        .with_max_pending_incoming(Some(c.max_pending_connections))
        .with_max_established_incoming(Some(c.max_connections))
        .with_max_established(Some(c.max_connections))
        .with_max_established_per_peer(Some(c.max_connections_per_peer));
    let inbound = InboundLimits {
        max_concurrent_streams: c.max_requests_per_connection as usize,
        budget: Some(ByteBudget::new(c.max_reading_bytes)),
    };
    mykey_net::build_swarm(key, &link, |key| {
        Ok(HubBehaviour {
            limits: connection_limits::Behaviour::new(limits),
            net: mykey_net::Behaviour::with_limits(key, agent, &link, &inbound),
        })
    })
}

/// The answer to a request past a bound.
fn busy(why: &str) -> Response {
    Response::Refused(Refusal::Protocol(format!(
        "the hub is busy ({why}); try again later"
    )))
}

impl Server {
    fn on_swarm_event(&mut self, ev: SwarmEvent<HubBehaviourEvent>) {
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
                    // Waiting requests are dropped with their answer channels.
                    self.waiting.remove((peer_id, p.conn));
                    info!(node = %p.node.short(), cause = ?cause, "node disconnected");
                    let node = p.node;
                    // The close happened now; the chore may run after the
                    // node's next Hello, whose link it must not end.
                    let at = unix_now();
                    self.chore(move |hub| {
                        if let Err(e) = hub.note_link_closed(&node, at) {
                            warn!(node = %node.short(), "cannot record the link's end: {e}");
                        }
                    });
                }
            }
            SwarmEvent::Behaviour(HubBehaviourEvent::Net(BehaviourEvent::Sync(ev))) => {
                self.on_sync_event(ev)
            }
            SwarmEvent::Behaviour(HubBehaviourEvent::Net(BehaviourEvent::Ping(ping::Event {
                peer,
                result: Err(e),
                ..
            }))) => {
                warn!(%peer, "ping failed ({e}): dropping the link");
                let _ = self.swarm.disconnect_peer_id(peer);
            }
            SwarmEvent::IncomingConnectionError { error, .. } => {
                debug!("incoming connection failed: {error}");
            }
            _ => {}
        }
    }

    /// Queues a bookkeeping job; under overload it is dropped, with a warning.
    fn chore(&self, f: impl FnOnce(&mut Hub) + Send + 'static) {
        if let Err(e) = self.worker.submit(Lane::Chores, Box::new(f)) {
            warn!("bookkeeping skipped: {e}");
        }
    }

    /// A new peer: its key is looked up at its first turn, before any of
    /// its requests.
    fn admit(&mut self, peer: PeerId, addr: &Multiaddr) {
        let Some(node) = node_id_of(&peer) else {
            warn!(%peer, %addr, "dropping peer: its key is not ed25519, so it cannot be a node");
            let _ = self.swarm.disconnect_peer_id(peer);
            return;
        };
        debug!(node = %node.short(), %addr, "peer connected");
        self.next_conn += 1;
        let conn = self.next_conn;
        if let Some(old) = self.peers.remove(&peer) {
            self.waiting.remove((peer, old.conn));
        }
        self.peers.insert(
            peer,
            Peer {
                node,
                conn,
                admission: Admission::Pending,
                session: Some(HubSession::new(node)),
                reply: None,
                since: Instant::now(),
                bad_frames: 0,
            },
        );
        if self.waiting.push((peer, conn), Waiting::Admit, 0).is_err() {
            let _ = self.swarm.disconnect_peer_id(peer);
        }
    }

    /// Drops refused peers that outstayed their grace; the minute's chores.
    fn sweep(&mut self) {
        let late: Vec<PeerId> = self
            .peers
            .iter()
            .filter(|(_, p)| {
                matches!(p.admission, Admission::Refused(_)) && p.since.elapsed() >= REFUSAL_GRACE
            })
            .map(|(id, _)| *id)
            .collect();
        for id in late {
            let _ = self.swarm.disconnect_peer_id(id);
        }
        // The timed jobs (live links and shard sizes each tick, the
        // economy's batches each tick and each second while more is due),
        // on the worker so the writer is never held long by them.
        let elapsed = u64::try_from(self.started.elapsed().as_millis()).unwrap_or(u64::MAX);
        let due = self.ticks.due(elapsed);
        if due.any() {
            let live: Vec<NodeId> = if due.minute {
                self.peers
                    .values()
                    .filter(|p| matches!(p.admission, Admission::Admitted))
                    .map(|p| p.node)
                    .collect()
            } else {
                vec![]
            };
            let done = self.done_tx.clone();
            self.chore(move |hub| {
                let report = hub.run_ticks(due, &live, unix_now());
                let _ = done.send(Done::Ticked { more: report.more });
            });
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
                // A refused peer is not dropped here: closing the
                // connection now can cut off the refusal it was just sent
                // (yamux may not have written it to the socket yet), and
                // the node would report a closed connection instead of
                // why. `sweep` drops it after REFUSAL_GRACE; a node that
                // heard the refusal leaves first.
                let done = self
                    .peers
                    .get(&peer)
                    .is_some_and(|p| p.bad_frames > self.config.max_bad_frames);
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

    fn respond(&mut self, channel: ResponseChannel<Frame>, node: &NodeId, response: &Response) {
        if self
            .swarm
            .behaviour_mut()
            .net
            .sync
            .send_response(channel, Frame::Message(response.encode()))
            .is_err()
        {
            debug!(node = %node.short(), "the peer left before its answer");
        }
    }

    /// Decodes a request and queues it for its peer's turn.
    fn on_request(&mut self, peer: PeerId, frame: Frame, channel: ResponseChannel<Frame>) {
        let max_bad = self.config.max_bad_frames;
        let Some(p) = self.peers.get_mut(&peer) else {
            warn!(%peer, "request from a peer that was not admitted: dropping it");
            let _ = self.swarm.disconnect_peer_id(peer);
            return;
        };
        let node = p.node;
        let key = (peer, p.conn);
        if let Admission::Refused(r) = &p.admission {
            let r = Response::Refused(r.clone());
            self.respond(channel, &node, &r);
            return;
        }
        let (waiting, bytes) = match frame {
            Frame::Busy { declared } => {
                debug!(node = %node.short(), declared, "a request was not read: frame bytes at their cap");
                self.respond(channel, &node, &busy("too many bytes being received"));
                return;
            }
            frame => match frame.into_message() {
                Err(why) => {
                    p.bad_frames += 1;
                    warn!(node = %node.short(), %peer, bad_frames = p.bad_frames, "refused a message: {why}");
                    (Waiting::Refuse(Refusal::Protocol(why), channel), 0)
                }
                Ok(bytes) => match Request::decode(&bytes) {
                    Err(e) => {
                        p.bad_frames += 1;
                        warn!(node = %node.short(), %peer, bytes = bytes.len(), bad_frames = p.bad_frames, "refused a message: {e}");
                        (Waiting::Refuse(refusal_for_wire_error(&e), channel), 0)
                    }
                    Ok(req) => (Waiting::Turn(TurnWork::Request(req), channel), bytes.len()),
                },
            },
        };
        if p.bad_frames > max_bad {
            warn!(node = %node.short(), "too many bad messages: dropping the peer after this answer");
        }
        if let Err((full, waiting)) = self.waiting.push(key, waiting, bytes) {
            let why = match full {
                Full::Peer => "too many requests from this node at once",
                Full::Memory => "too many requests waiting",
            };
            warn!(node = %node.short(), "answering busy: {why}");
            if let Waiting::Turn(_, channel) | Waiting::Refuse(_, channel) = waiting {
                self.respond(channel, &node, &busy(why));
            }
        }
    }

    /// Hands waiting turns to the worker, round robin, while it has room.
    fn dispatch(&mut self) {
        while self.at_worker < TURNS_AT_WORKER {
            let Some((key, waiting)) = self.waiting.pop() else {
                return;
            };
            let peer = key.0;
            let Some(p) = self.peers.get_mut(&peer).filter(|p| p.conn == key.1) else {
                self.waiting.remove(key);
                continue;
            };
            let node = p.node;
            match waiting {
                Waiting::Refuse(refusal, channel) => {
                    p.session = Some(HubSession::new(node));
                    self.respond(channel, &node, &Response::Refused(refusal));
                    self.waiting.done(key);
                }
                Waiting::Turn(_, channel) if matches!(p.admission, Admission::Refused(_)) => {
                    if let Admission::Refused(r) = &p.admission {
                        let r = Response::Refused(r.clone());
                        self.respond(channel, &node, &r);
                    }
                    self.waiting.done(key);
                }
                Waiting::Admit => {
                    let done = self.done_tx.clone();
                    let job = Box::new(move |hub: &mut Hub| {
                        let refusal = match hub.node(&node) {
                            Ok(Some(r)) if r.is_revoked() => Ok(Some(Refusal::Revoked)),
                            Ok(Some(_)) => Ok(None),
                            Ok(None) => Ok(Some(Refusal::NotEnrolled)),
                            Err(e) => Err(e.to_string()),
                        };
                        let _ = done.send(Done::Admitted { key, refusal });
                    });
                    self.submit(key, job);
                }
                Waiting::Turn(work, channel) => {
                    let mut session = p.session.take().unwrap_or_else(|| HubSession::new(node));
                    p.reply = Some(channel);
                    let done = self.done_tx.clone();
                    let budget = self.config.push_budget_txs as usize;
                    let kind = work.kind();
                    let job = Box::new(move |hub: &mut Hub| {
                        let start = std::time::Instant::now();
                        let step = take_turn(hub, &mut session, &node, work, unix_now(), budget);
                        let _ = done.send(Done::Turn {
                            key,
                            session,
                            step,
                            kind,
                            took: start.elapsed(),
                        });
                    });
                    self.submit(key, job);
                }
            }
        }
    }

    fn submit(&mut self, key: Key, job: super::worker::Job) {
        match self.worker.submit(Lane::Nodes, job) {
            Ok(()) => self.at_worker += 1,
            Err(e) => {
                // Not expected (the loop keeps the lane short): drop the
                // peer's turn and the peer, which reconnects.
                warn!(peer = %key.0, "{e}: dropping the peer");
                self.waiting.remove(key);
                let _ = self.swarm.disconnect_peer_id(key.0);
            }
        }
    }

    /// The peer of `key`, if that connection is still the peer's.
    fn peer_of(&mut self, key: Key) -> Option<&mut Peer> {
        self.peers.get_mut(&key.0).filter(|p| p.conn == key.1)
    }

    fn on_done(&mut self, done: Done) {
        match done {
            Done::Ticked { more } => self.ticks.economy_more(more),
            Done::Admitted { key, refusal } => {
                self.at_worker -= 1;
                self.waiting.done(key);
                let peer = key.0;
                let Some(p) = self.peer_of(key) else {
                    return;
                };
                match refusal {
                    Ok(None) => {
                        info!(node = %p.node.short(), "node connected");
                        p.admission = Admission::Admitted;
                    }
                    Ok(Some(r)) => {
                        warn!(node = %p.node.short(), %peer, "dropping peer: {r}");
                        p.since = Instant::now();
                        p.admission = Admission::Refused(r);
                    }
                    Err(e) => {
                        warn!(node = %p.node.short(), "dropping peer: cannot read the registry: {e}");
                        self.waiting.remove(key);
                        let _ = self.swarm.disconnect_peer_id(peer);
                    }
                }
            }
            Done::Turn {
                key,
                session,
                step,
                kind,
                took,
            } => {
                self.at_worker -= 1;
                let Some(p) = self.peer_of(key) else {
                    self.waiting.done(key);
                    return;
                };
                let node = p.node;
                p.session = Some(session);
                debug!(node = %node.short(), request = kind, took_ms = took.as_millis() as u64, "turn");
                match step {
                    Step::More(rest) => {
                        // The rest of the push waits for the peer's next turn.
                        if let Some(channel) = p.reply.take() {
                            self.waiting
                                .push_front(key, Waiting::Turn(TurnWork::Continue(rest), channel));
                        }
                    }
                    Step::Answer(response) => {
                        if let Response::Refused(r) = &response {
                            warn!(node = %node.short(), request = kind, "refused: {r}");
                        } else {
                            debug!(node = %node.short(), request = kind, "answered");
                        }
                        if let Some(channel) = p.reply.take() {
                            self.respond(channel, &node, &response);
                        }
                    }
                }
                self.waiting.done(key);
            }
        }
    }
}

/// [`serve`] on a single-threaded tokio runtime of its own, for `main`;
/// `listen` overrides `hub.toml` when not empty.
pub fn serve_blocking(
    data: &Path,
    listen: &[String],
    dashboard: crate::http::DashboardOptions,
    trusted_ca: Vec<Vec<u8>>,
    kiosk_links: Vec<mykey_sync_proto::FacilityId>,
) -> Result<(), ServeError> {
    let mut opts = ServeOptions {
        dashboard,
        trusted_ca,
        kiosk_links,
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
