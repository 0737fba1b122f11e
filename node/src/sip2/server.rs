//! The bridge's TCP driver: it accepts self-check machines, keeps one link to
//! the library system per machine connection, and moves frames between them
//! as the core decides. Blocking threads: a library has a handful of
//! machines.
//!
//! Robustness: every frame is bounded (`max_message_bytes`), a begun message
//! must end within `message_timeout`, an idle machine is dropped after
//! `idle_timeout`, the library system must answer within `upstream_timeout`;
//! garbage gets a resend request (96) and, repeated, a closed connection; a
//! wrong checksum from the machine gets 96, from the library system 97. A
//! lost library-system link is reopened at the next message (with the login
//! replayed); a status poll (99) meanwhile is answered "off line".
//!
//! Privacy: log lines carry the message type, the facility, the machine and
//! a short card hash; never a field value.

use super::config::BridgeConfig;
use super::core::{Bridge, MachineId, Patron, TapShown, Verdict};
use super::taps::{self, TapTarget};
use super::upstream::{self, Upstream, UpstreamError};
use crate::node::Node;
use crate::store::StoreError;
use mykey_sip2::{
    Charset, Checksum, Command, DecodeError, FieldId, Framer, Message, Sequence, reply,
};
use mykey_sync_proto::CardKey;
use std::io::{Read, Write};
use std::net::{IpAddr, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// Consecutive undecodable frames after which a machine is dropped.
const MAX_BAD_FRAMES: u32 = 10;
/// How often blocking reads wake to look at deadlines and the stop flag.
pub(super) const READ_SLICE: Duration = Duration::from_millis(200);

/// The wall clock, for the binary's deciding calls.
pub use mykey_net::unix_now as clock;

/// The bridge could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The listen address is taken or invalid.
    #[error(
        "cannot listen on {addr}: {source}; pick another address with --listen or [sip2] listen"
    )]
    Listen {
        /// The address.
        addr: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The TLS settings are unusable.
    #[error("TLS to the library system: {0}; fix upstream_ca / upstream_server_name in [sip2]")]
    Tls(String),
    /// The node's store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// A tap that could not be served.
#[derive(Debug, thiserror::Error)]
pub enum TapError {
    /// The node's store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// No randomness for a token.
    #[error("the OS gave no randomness for a token ({0}): tap again")]
    Random(#[from] getrandom::Error),
}

/// What the reader threads and machine connections share.
pub struct Handle {
    config: BridgeConfig,
    bridge: Mutex<Bridge>,
    node: Mutex<Node>,
    facility: String,
    tls: Option<Arc<rustls::ClientConfig>>,
    out: Mutex<Box<dyn Write + Send>>,
    connections: AtomicUsize,
    stop: Arc<AtomicBool>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic elsewhere must not stop the counter: the data is still whole
    // (every update is a single assignment).
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Handle {
    /// A card key was read on a reader: resolves it in the store, tells the
    /// core, and shows the result on the bridge's output (one line).
    pub fn tap_card(
        &self,
        target: TapTarget,
        card: &CardKey,
        cert_valid: bool,
    ) -> Result<TapShown, TapError> {
        let holder = taps::resolve(&lock(&self.node), card, cert_valid)?;
        let tap = super::core::Tap {
            card: card.short(),
            holder,
        };
        let now = clock();
        let shown = match target {
            TapTarget::Machine(m) => lock(&self.bridge).tap(m, tap, now),
            TapTarget::Token => {
                let digits = token_digits(self.config.policy.token_digits)?;
                lock(&self.bridge).tap_for_token(tap, digits, now)
            }
        };
        let line = match (&shown, target) {
            (TapShown::Armed { machine }, _) => {
                format!(
                    "{machine}: card {} tapped: start at the self-check machine",
                    card.short()
                )
            }
            (TapShown::Refused(r), TapTarget::Machine(m)) => format!(
                "{}: card {} refused ({}): {}",
                self.machine_name(m),
                card.short(),
                r.name(),
                r.screen_message()
            ),
            (TapShown::Refused(r), TapTarget::Token) => {
                format!(
                    "card {} refused ({}): {}",
                    card.short(),
                    r.name(),
                    r.screen_message()
                )
            }
            (TapShown::Token { digits, until }, _) => format!(
                "token {digits}: type it at a self-check machine as the patron number within {} s",
                until.since(now) / 1000
            ),
        };
        let outcome = match &shown {
            TapShown::Armed { .. } => "armed",
            TapShown::Refused(r) => r.name(),
            TapShown::Token { .. } => "token",
        };
        tracing::info!(facility = %self.facility, card = %card.short(), outcome, "sip2 tap");
        self.say(&line);
        Ok(shown)
    }

    /// One line on the bridge's output.
    pub fn say(&self, line: &str) {
        let mut out = lock(&self.out);
        let _ = writeln!(out, "{line}").and_then(|()| out.flush());
    }

    fn machine_name(&self, m: MachineId) -> String {
        self.config
            .machines
            .get(m.0)
            .map_or_else(|| "?".to_owned(), |(s, _, _)| s.name.clone())
    }

    /// The machine a connection from `ip` is.
    fn machine_for(&self, ip: IpAddr) -> Option<MachineId> {
        let ms = &self.config.machines;
        let mapped = |a: IpAddr| match a {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(a, IpAddr::V4),
            v4 => v4,
        };
        ms.iter()
            .position(|(_, addr, _)| addr.map(mapped) == Some(mapped(ip)))
            .or_else(|| (ms.len() == 1 && ms[0].1.is_none()).then_some(0))
            .map(MachineId)
    }
}

fn token_digits(n: usize) -> Result<String, getrandom::Error> {
    let mut out = String::with_capacity(n);
    while out.len() < n {
        let mut b = [0u8; 16];
        getrandom::fill(&mut b)?;
        // Bytes below 250 are unbiased digits.
        out.extend(
            b.iter()
                .filter(|x| **x < 250)
                .map(|x| char::from(b'0' + x % 10))
                .take(n - out.len()),
        );
    }
    Ok(out)
}

/// A running bridge.
pub struct Running {
    addr: SocketAddr,
    handle: Arc<Handle>,
    threads: Vec<std::thread::JoinHandle<()>>,
}

impl Running {
    /// Where machines connect.
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }
    /// The shared state (for taps read elsewhere, e.g. tests).
    pub fn handle(&self) -> &Arc<Handle> {
        &self.handle
    }
    /// Stops accepting, ends the reader loops and every connection (within a
    /// fraction of a second), and forgets every tap, session and token.
    pub fn stop(self) {
        self.handle.stop.store(true, Ordering::SeqCst);
        for t in self.threads {
            let _ = t.join();
        }
        lock(&self.handle.bridge).forget_all();
    }
    /// Blocks until the bridge stops (the binary: until killed).
    pub fn wait(self) {
        for t in self.threads {
            let _ = t.join();
        }
    }
}

/// Starts the bridge: listens, and runs a tap loop for every configured
/// reader (readers absent from pcscd are retried). `out` gets one line per tap.
pub fn start(
    config: BridgeConfig,
    node: Node,
    out: Box<dyn Write + Send>,
    readers: bool,
) -> Result<Running, StartError> {
    let facility = node
        .limits()?
        .map_or_else(|| "unenrolled".to_owned(), |l| l.facility.to_string());
    let tls = match &config.upstream_tls {
        None => None,
        Some((ca, _)) => Some(upstream::tls_config(ca).map_err(StartError::Tls)?),
    };
    let listener = TcpListener::bind(&config.listen).map_err(|source| StartError::Listen {
        addr: config.listen.clone(),
        source,
    })?;
    let listen_err = |source| StartError::Listen {
        addr: config.listen.clone(),
        source,
    };
    let addr = listener.local_addr().map_err(listen_err)?;
    listener.set_nonblocking(true).map_err(listen_err)?;
    let bridge = Bridge::new(
        config.policy.clone(),
        config.machines.iter().map(|(s, _, _)| s.clone()).collect(),
        config.upstream_charset,
    );
    let handle = Arc::new(Handle {
        bridge: Mutex::new(bridge),
        node: Mutex::new(node),
        facility,
        tls,
        out: Mutex::new(out),
        connections: AtomicUsize::new(0),
        stop: Arc::new(AtomicBool::new(false)),
        config,
    });
    let mut threads = Vec::new();
    if readers {
        let mut loops: Vec<(String, TapTarget)> = handle
            .config
            .machines
            .iter()
            .enumerate()
            .filter_map(|(i, (_, _, r))| r.clone().map(|r| (r, TapTarget::Machine(MachineId(i)))))
            .collect();
        loops.extend(
            handle
                .config
                .token_readers
                .iter()
                .map(|r| (r.clone(), TapTarget::Token)),
        );
        for (reader, target) in loops {
            let (h, stop) = (handle.clone(), handle.stop.clone());
            threads.push(std::thread::spawn(move || {
                taps::reader_loop(h, reader, target, stop)
            }));
        }
    }
    let h = handle.clone();
    threads.push(std::thread::spawn(move || accept_loop(h, listener)));
    tracing::info!(facility = %handle.facility, %addr, upstream = %handle.config.upstream, "sip2 bridge listening");
    Ok(Running {
        addr,
        handle,
        threads,
    })
}

fn accept_loop(handle: Arc<Handle>, listener: TcpListener) {
    while !handle.stop.load(Ordering::SeqCst) {
        let (stream, peer) = match listener.accept() {
            Ok(x) => x,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                std::thread::sleep(Duration::from_millis(50));
                continue;
            }
            Err(e) => {
                tracing::warn!("sip2 accept failed: {e}");
                std::thread::sleep(Duration::from_millis(200));
                continue;
            }
        };
        let Some(machine) = handle.machine_for(peer.ip()) else {
            tracing::warn!(%peer, "a SIP2 connection from an address no [[sip2.machine]] has: closed (add the machine's addr to node.toml)");
            continue;
        };
        if handle.connections.load(Ordering::SeqCst) >= handle.config.max_connections {
            tracing::warn!(%peer, "too many SIP2 connections: closed (raise [sip2] max_connections)");
            continue;
        }
        handle.connections.fetch_add(1, Ordering::SeqCst);
        let h = handle.clone();
        std::thread::spawn(move || {
            let name = h.machine_name(machine);
            tracing::info!(machine = %name, %peer, "self-check machine connected");
            let why = Connection::new(&h, machine).serve(stream);
            tracing::info!(machine = %name, %peer, "self-check machine connection closed: {why}");
            h.connections.fetch_sub(1, Ordering::SeqCst);
        });
    }
}

/// One machine connection and its library-system link.
struct Connection<'a> {
    handle: &'a Handle,
    machine: MachineId,
    name: String,
    charset: Charset,
    upstream: Option<Upstream>,
    /// The machine's own login (pass-through mode), replayed on a new link.
    /// In memory only, for this connection's life.
    login: Option<Message>,
    last_answer: Option<Vec<u8>>,
    sequence: Sequence,
}

impl<'a> Connection<'a> {
    fn new(handle: &'a Handle, machine: MachineId) -> Self {
        let (spec, _, _) = &handle.config.machines[machine.0];
        Connection {
            handle,
            machine,
            name: spec.name.clone(),
            charset: spec.charset,
            upstream: None,
            login: None,
            last_answer: None,
            sequence: Sequence::new(0).unwrap_or_else(|| unreachable!()),
        }
    }

    /// Serves the machine until it leaves or breaks a rule; says why it ended.
    fn serve(mut self, mut stream: TcpStream) -> String {
        let cfg = &self.handle.config;
        let _ = stream.set_nodelay(true);
        if let Err(e) = stream.set_read_timeout(Some(READ_SLICE)) {
            return format!("socket: {e}");
        }
        let _ = stream.set_write_timeout(Some(Duration::from_millis(cfg.upstream_timeout_ms)));
        let mut framer = Framer::new(cfg.max_message_bytes);
        let mut buf = vec![0u8; 8192];
        let mut last_frame = Instant::now();
        let mut partial_since: Option<Instant> = None;
        let mut bad_frames = 0u32;
        loop {
            let mut framed = false;
            loop {
                match framer.next_frame() {
                    Err(e) => return e.to_string(),
                    Ok(None) => break,
                    Ok(Some(frame)) => {
                        framed = true;
                        last_frame = Instant::now();
                        if let Err(why) = self.frame(&mut stream, &frame, &mut bad_frames) {
                            return why;
                        }
                    }
                }
            }
            if framed || framer.pending() == 0 {
                partial_since = None;
            }
            if framer.pending() > 0 && partial_since.is_none() {
                partial_since = Some(Instant::now());
            }
            if self.handle.stop.load(Ordering::SeqCst) {
                return "the bridge is stopping".into();
            }
            if partial_since
                .is_some_and(|t| t.elapsed() > Duration::from_millis(cfg.message_timeout_ms))
            {
                return format!(
                    "a message was begun and not ended within {} s",
                    cfg.message_timeout_ms / 1000
                );
            }
            if last_frame.elapsed() > Duration::from_millis(cfg.idle_timeout_ms) {
                return format!("idle for {} s", cfg.idle_timeout_ms / 1000);
            }
            match stream.read(&mut buf) {
                Ok(0) => return "the machine closed it".into(),
                Ok(n) => framer.push(&buf[..n]),
                Err(e)
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                    ) => {}
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => return format!("read: {e}"),
            }
        }
    }

    /// One frame from the machine. `Err`: close the connection, saying why.
    fn frame(
        &mut self,
        stream: &mut TcpStream,
        frame: &[u8],
        bad_frames: &mut u32,
    ) -> Result<(), String> {
        let decoded = match Message::decode(frame) {
            Ok(d) => d,
            Err(e) => {
                *bad_frames += 1;
                tracing::info!(machine = %self.name, "sip2 frame refused: {e}");
                if *bad_frames >= MAX_BAD_FRAMES {
                    return Err(format!("{MAX_BAD_FRAMES} frames in a row were not SIP2"));
                }
                let checksum = matches!(e, DecodeError::Checksum);
                return self.send(stream, reply::request_sc_resend(), checksum, None);
            }
        };
        *bad_frames = 0;
        let with_checksum = decoded.checksum == Checksum::Valid;
        let request = decoded.message;
        let seq = request.sequence();
        let command = request.command();
        if command == Command::RequestAcsResend {
            return match self.last_answer.clone() {
                Some(bytes) => stream.write_all(&bytes).map_err(|e| format!("write: {e}")),
                None => Ok(()),
            };
        }
        let institution = request
            .field(FieldId::INSTITUTION_ID)
            .unwrap_or_default()
            .to_vec();
        let now = clock();
        let (verdict, patron) = lock(&self.handle.bridge).from_machine(self.machine, request, now);
        self.log(command, &patron, &verdict);
        let answer = match verdict {
            Verdict::Answer(m) => m,
            Verdict::Forward(m) => match self.exchange(m) {
                Ok(resp) => lock(&self.handle.bridge).from_upstream(self.machine, resp),
                Err(why) if command == Command::ScStatus => {
                    tracing::warn!(machine = %self.name, "library system unreachable, status answered off line: {why}");
                    let inst = self
                        .handle
                        .config
                        .upstream_charset
                        .transcode(self.charset, &institution);
                    reply::acs_offline(&inst, &mykey_sip2::transaction_date(now.0))
                }
                Err(why) => {
                    tracing::warn!(machine = %self.name, msg = %command, "library system: {why}");
                    return Err(format!("the library system did not answer: {why}"));
                }
            },
        };
        self.send(stream, answer, with_checksum, seq)
    }

    fn send(
        &mut self,
        stream: &mut TcpStream,
        mut m: Message,
        checksum: bool,
        seq: Option<Sequence>,
    ) -> Result<(), String> {
        m.set_sequence(seq);
        let bytes = m.encode(checksum);
        stream
            .write_all(&bytes)
            .map_err(|e| format!("write: {e}"))?;
        self.last_answer = Some(bytes);
        Ok(())
    }

    fn log(&self, command: Command, patron: &Patron, verdict: &Verdict) {
        let to = match verdict {
            Verdict::Forward(_) => "library system",
            Verdict::Answer(_) => "answered by the bridge",
        };
        let f = &self.handle.facility;
        match patron {
            Patron::AsSent => {
                tracing::info!(machine = %self.name, facility = %f, msg = %command, to, "sip2")
            }
            Patron::Substituted { card } => {
                tracing::info!(machine = %self.name, facility = %f, msg = %command, card = %card, to, "sip2 patron from card")
            }
            Patron::Refused { card, refusal } => tracing::info!(
                machine = %self.name, facility = %f, msg = %command, card = %card, refused = refusal.name(), to, "sip2 card refused"
            ),
            Patron::NoTap => {
                tracing::info!(machine = %self.name, facility = %f, msg = %command, to, "sip2 placeholder without a tap")
            }
        }
    }

    /// Sends a message to the library system and reads its answer, opening
    /// (and logging in on) the link first if there is none. A link the
    /// library system had closed is reopened once.
    fn exchange(&mut self, m: Message) -> Result<Message, String> {
        if m.command() == Command::Login && self.handle.config.login.is_none() {
            self.login = Some(m.clone());
        }
        for attempt in 0..2 {
            let fresh = self.upstream.is_none();
            if fresh {
                let skip_replay = m.command() == Command::Login;
                self.upstream = Some(self.connect(skip_replay)?);
            }
            let up = self.upstream.as_mut().ok_or("no link")?;
            match up.round_trip(m.clone(), &mut self.sequence) {
                Ok(resp) => return Ok(resp),
                Err(UpstreamError::Closed) if !fresh && attempt == 0 => {
                    // The library system closed an idle link; the message never arrived.
                    self.upstream = None;
                }
                Err(e) => {
                    self.upstream = None;
                    return Err(e.to_string());
                }
            }
        }
        Err("the library system closed the link twice".into())
    }

    fn connect(&mut self, skip_replay: bool) -> Result<Upstream, String> {
        let cfg = &self.handle.config;
        let mut up = Upstream::open(cfg, self.handle.tls.as_ref())?;
        let login = match (&cfg.login, &self.login) {
            (Some(own), _) => Some(upstream::own_login(own, cfg.upstream_charset)?),
            (None, Some(saved)) if !skip_replay => Some(saved.clone()),
            _ => None,
        };
        if let Some(login) = login {
            let resp = up
                .round_trip(login, &mut self.sequence)
                .map_err(|e| format!("login: {e}"))?;
            if resp.command() != Command::LoginResponse || resp.fixed() != b"1" {
                return Err("the library system refused the login: check login_user / login_password in [sip2] (or the machine's own)".into());
            }
        }
        tracing::info!(machine = %self.name, upstream = %cfg.upstream, tls = self.handle.tls.is_some(), "library system link open");
        Ok(up)
    }
}
