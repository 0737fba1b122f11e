//! The world: one seeded, single-threaded discrete-event loop over the hub,
//! the nodes and the network. Every input to a core (a message, a timer, a
//! counter operation, a fault) is an event at a simulated time; the same
//! seed gives the same events in the same order, so a failure replays
//! exactly.

use crate::clock::{EPOCH_MS, HostClock, SimTime, fmt_time};
use crate::hub_host::{HubCore, SimLimits};
use crate::liar::Liar;
use crate::metrics::Metrics;
use crate::net::{Dir, Net};
use crate::node_host::SimNode;
use crate::plan::{OpSpec, Plan, Scripted};
use crate::prng::Prng;
use anyhow::Context;
use mykey_sync_proto::holder::{HolderRequest, HolderResponse};
use mykey_sync_proto::session::HubService;
use mykey_sync_proto::session::{HubSession, NodeSessionConfig};
use mykey_sync_proto::wire::{
    Facts, Hello, Outcome, Receipts, Refusal, Request, Response, ShardList, ShardSync, Welcome,
};
use mykey_sync_proto::{
    AccountId, CardKey, FacilityId, MunicipalityCode, MyKeyId, NodeId, Points, ProgramId, SignedTx,
    TxId, UnixMillis,
};
use std::cmp::Ordering;
use std::collections::{BTreeMap, BTreeSet, BinaryHeap, HashMap, HashSet};

/// A card holder.
#[derive(Clone, Debug)]
pub struct Holder {
    /// The hub's account.
    pub account: AccountId,
    /// The card.
    pub card: CardKey,
    /// PIN tries left before the card locks.
    pub pin_tries_left: u8,
    /// Reported lost.
    pub suspended: bool,
    /// Cards it held before renewals.
    pub old_cards: Vec<CardKey>,
    /// Library cards linked so far.
    pub links: u32,
}

/// The hub as a session sees it, keeping the receipts it decides: the
/// metrics follow transaction ids, which receipts of acceptances do not carry
/// on the wire (`mykey_sync_proto::receipts`).
pub(crate) struct Watched<'a, H> {
    hub: &'a mut H,
    pub(crate) decided: Vec<Receipts>,
}

impl<'a, H: HubService> Watched<'a, H> {
    pub(crate) fn new(hub: &'a mut H) -> Self {
        Watched {
            hub,
            decided: vec![],
        }
    }
}

impl<H: HubService> HubService for Watched<'_, H> {
    fn open(&mut self, hello: &Hello, now: UnixMillis) -> Result<Welcome, Refusal> {
        self.hub.open(hello, now)
    }
    fn ingest(&mut self, carrier: &NodeId, txs: Vec<SignedTx>, now: UnixMillis) -> Receipts {
        let r = self.hub.ingest(carrier, txs, now);
        self.decided.push(r.clone());
        r
    }
    fn facts(&mut self, node: &NodeId, after: u64, max: u32, upto: u64) -> Facts {
        self.hub.facts(node, after, max, upto)
    }
    fn shards(&mut self, node: &NodeId) -> Result<ShardList, Refusal> {
        self.hub.shards(node)
    }
    fn shard_sync(
        &mut self,
        node: &NodeId,
        sync: ShardSync,
        now: UnixMillis,
    ) -> Result<ShardSync, Refusal> {
        self.hub.shard_sync(node, sync, now)
    }
    fn holder(&mut self, node: &NodeId, req: HolderRequest, now: UnixMillis) -> HolderResponse {
        self.hub.holder(node, req, now)
    }
}

/// A transaction acknowledged to the person at the counter.
#[derive(Clone, Debug)]
pub struct Acked {
    /// Which node signed it.
    pub node: usize,
    /// Its seq.
    pub seq: u64,
    /// When (global).
    pub signed_at: SimTime,
}

/// What the hub's ledger pays out for one signed transaction.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Paid {
    /// Net points credited to merchant payables (owed to the facility).
    pub payable: i64,
    /// The debt-funded part (`RedeemOnDebt`).
    pub on_debt: i64,
}

/// Why a run failed: an invariant broke, or a core returned an error it
/// should not have.
#[derive(Debug)]
pub struct Failure {
    /// Simulated time.
    pub at: SimTime,
    /// What.
    pub what: String,
}

/// Shorthand for failing the run.
pub fn fail<T>(at: SimTime, what: impl Into<String>) -> Result<T, Failure> {
    Err(Failure {
        at,
        what: what.into(),
    })
}

/// Turns any error into a failure at `at`.
pub trait AtTime<T> {
    /// Maps the error.
    fn at(self, t: SimTime) -> Result<T, Failure>;
}

impl<T, E: std::fmt::Display> AtTime<T> for Result<T, E> {
    fn at(self, t: SimTime) -> Result<T, Failure> {
        self.map_err(|e| Failure {
            at: t,
            what: format!("{e:#}"),
        })
    }
}

pub(crate) enum Kind {
    Connect(usize),
    Timer(usize),
    Detect(usize, u64),
    ToHub(usize, u64, u64, Vec<u8>),
    ToNode(usize, u64, u64, Vec<u8>),
    Op(OpSpec),
    Script(Scripted),
    Sample,
    Gossip(usize),
    /// A LAN request's bytes: (to, from, request).
    LanDeliver(usize, usize, Vec<u8>),
    /// A LAN answer's bytes: (to, from, answer).
    LanAnswer(usize, usize, Vec<u8>),
    Carry(usize),
    CarryToHub(usize, Vec<u8>),
    CarryBack(usize, Vec<u8>),
    HubTick,
}

struct Ev {
    at: SimTime,
    seq: u64,
    kind: Kind,
}

impl PartialEq for Ev {
    fn eq(&self, o: &Ev) -> bool {
        (self.at, self.seq) == (o.at, o.seq)
    }
}
impl Eq for Ev {}
impl PartialOrd for Ev {
    fn partial_cmp(&self, o: &Ev) -> Option<Ordering> {
        Some(self.cmp(o))
    }
}
impl Ord for Ev {
    fn cmp(&self, o: &Ev) -> Ordering {
        // Min-heap on (time, insertion order).
        (o.at, o.seq).cmp(&(self.at, self.seq))
    }
}

/// Wall-clock pacing of a long run's progress lines.
struct Progress {
    label: String,
    every: std::time::Duration,
    started: std::time::Instant,
    next: std::time::Instant,
}

/// The world.
pub struct World<H: HubCore> {
    /// The plan being run.
    pub plan: Plan,
    /// Global time now.
    pub now: SimTime,
    queue: BinaryHeap<Ev>,
    ev_seq: u64,
    /// The hub core.
    pub hub: H,
    /// The hub's clock.
    pub hub_clock: HostClock,
    pub(crate) hub_sessions: HashMap<(usize, u64), HubSession>,
    /// The nodes.
    pub nodes: Vec<SimNode>,
    /// The network.
    pub net: Net,
    pub(crate) rng: Prng,
    /// Draws of crashes inside operations (their own stream, so the other
    /// draws of a seed stay what they were).
    pub(crate) crash_rng: Prng,
    /// Card holders.
    pub holders: Vec<Holder>,
    /// The municipality everything runs in.
    pub municipality: MunicipalityCode,
    pub(crate) program: ProgramId,
    pub(crate) next_conn: u64,
    /// Transactions acknowledged at a counter.
    pub acked: HashMap<TxId, Acked>,
    pub(crate) processed_seen: HashSet<TxId>,
    /// Measurements.
    pub metrics: Metrics,
    pub(crate) lag_window: Vec<u64>,
    /// Per holder: the nodes where they spent offline.
    pub spent_at: Vec<BTreeSet<usize>>,
    /// When healing started.
    pub healed_at: Option<SimTime>,
    /// The hub's timed jobs (`hub_ticks`).
    pub(crate) ticks: mykey_hub::ticks::TickSchedule,
    /// When convergence was reached.
    pub converged_at: Option<SimTime>,
    /// Per node: transactions of LAN peers it carries, by (origin, seq).
    pub relay: Vec<BTreeMap<(usize, u64), SignedTx>>,
    /// Per carrier: per origin, the seq through which the hub has answered
    /// what it carried (a carrier does not take those again).
    pub relay_done: Vec<BTreeMap<usize, u64>>,
    /// Per node: per LAN peer, how far the peer last said it holds this
    /// node's chain (the `Ack` of `/mykey/lan/1`).
    pub peer_has: Vec<BTreeMap<usize, u64>>,
    /// Per carrier, which signer its core's carried batch starts with
    /// after healing (`Node::peer_txs_undelivered`'s turn).
    pub relay_turn: Vec<usize>,
    /// Lost-card suspensions on their way to the nodes: (holder, when,
    /// which nodes know).
    pub suspensions: Vec<(usize, SimTime, Vec<bool>)>,
    /// Per node: the limits it was enrolled with.
    pub limits: Vec<SimLimits>,
    /// The lying node, if the plan has one.
    pub liar: Option<Liar>,
    /// The hub ledger position the payout checks have read through.
    pub(crate) ledger_seen: u64,
    /// Per origin transaction: what the hub's ledger pays out for it.
    pub(crate) paid: HashMap<TxId, Paid>,
    /// Honest nodes' redeems: (node, points) by transaction id.
    pub(crate) honest_redeems: HashMap<TxId, (usize, u64)>,
    /// Honest redeems the hub accepted since the last payout check.
    pub(crate) honest_to_check: Vec<TxId>,
    pub(crate) end_at: SimTime,
    /// Where a long run reports how far it got (wall-clock paced; it never
    /// touches what the run decides).
    progress: Option<Progress>,
    _dir: tempfile::TempDir,
}

/// Holder `i`'s card of generation `g` (0: the first; renewals count up):
/// the key of its certificate from the test CA (`cards.rs`).
pub(crate) fn holder_card(i: usize, g: usize) -> anyhow::Result<CardKey> {
    crate::cards::kit()
        .map_err(anyhow::Error::msg)?
        .card_key(i, g)
}

/// Salt of the liar's run-time draws (its own stream: the other draws of a
/// seed stay what they were).
const LIAR_RNG_SALT: u64 = 0x11A2_0F0F_5EED_0002;

impl<H: HubCore> World<H> {
    /// Builds the world for `plan`: the hub from `make_hub` (given a data
    /// directory and the hub key secret), every node on its own SQLite file
    /// in a temporary directory (under /dev/shm when there is one, so fsync
    /// is cheap), holders registered and credited.
    pub fn new(
        plan: Plan,
        seed: u64,
        make_hub: impl FnOnce(&std::path::Path, [u8; 32]) -> anyhow::Result<H>,
    ) -> anyhow::Result<World<H>> {
        let shm = std::path::Path::new("/dev/shm");
        let dir = if shm.is_dir() {
            tempfile::Builder::new()
                .prefix("mykey-sim-")
                .tempdir_in(shm)?
        } else {
            tempfile::Builder::new().prefix("mykey-sim-").tempdir()?
        };
        let mut rng = Prng::new(seed);
        let mut keys = rng.fork(1);
        let net_rng = rng.fork(2);
        let mut clocks = rng.fork(3);
        let mut hub = make_hub(dir.path(), keys.bytes32()).context("start hub")?;
        let t0 = UnixMillis(EPOCH_MS);
        let municipality = MunicipalityCode::parse("131059")?;
        hub.add_municipality(municipality, t0)?;
        let program = ProgramId::parse("exchange")?;
        hub.add_program(&program, municipality, Points::new(Points::MAX / 2)?, t0)?;
        if plan.strict {
            hub.set_strict(municipality, t0)?;
        }
        let config = NodeSessionConfig {
            batch_txs: plan.push_batch,
            pull_interval_ms: plan.pull_interval_ms,
            ..NodeSessionConfig::default()
        };
        let hub_id = hub.hub_id();
        let mut nodes = Vec::new();
        let mut limits = Vec::new();
        let mut net = Net::new(plan.nodes.len(), plan.wan, plan.lan, net_rng);
        for (i, spec) in plan.nodes.iter().enumerate() {
            let facility = FacilityId::parse(&spec.facility)?;
            hub.add_facility(&facility, municipality, spec.kind, t0)?;
            let clock = HostClock::random(&mut clocks, spec.max_skew_ms);
            let node = SimNode::create(
                i,
                facility.clone(),
                municipality,
                keys.bytes32(),
                hub_id,
                dir.path(),
                clock,
                config.clone(),
            )?;
            let mut l = spec.limits.clone();
            l.valid_until = t0.plus_ms(60 * 86_400_000);
            hub.enrol(node.id, &facility, &l, t0)?;
            limits.push(l);
            net.lan_group[i] = spec.lan_group;
            nodes.push(node);
        }
        // Each LAN group's stalls admit each other only from the hub's roster.
        let groups: std::collections::BTreeSet<usize> =
            plan.nodes.iter().filter_map(|n| n.lan_group).collect();
        for g in groups {
            let members: Vec<mykey_sync_proto::NodeId> = (0..nodes.len())
                .filter(|i| plan.nodes[*i].lan_group == Some(g))
                .map(|i| nodes[i].id)
                .collect();
            hub.lan_roster(municipality, &format!("group-{g}"), &members, t0)?;
        }
        let mut holders = Vec::new();
        let mut credits = rng.fork(4);
        for i in 0..plan.holders {
            let card = holder_card(i, 0)?;
            let alias = MyKeyId::parse(&format!("holder{i:05}"))?;
            let cert = crate::cards::kit()
                .map_err(anyhow::Error::msg)?
                .trusted_cert(i, 0)?;
            let account = hub.register(&alias, municipality, &cert, t0)?;
            let pts = credits.range(plan.initial_points.0, plan.initial_points.1);
            if pts > 0 {
                hub.credit(account, municipality, &program, Points::new(pts)?, t0)?;
            }
            holders.push(Holder {
                account,
                card,
                pin_tries_left: 3,
                suspended: false,
                old_cards: Vec::new(),
                links: 0,
            });
        }
        if let Some(e) = &plan.economy {
            // A seasonal programme whose grants expire, granted to every
            // holder at the start (its own stream: the other draws of a
            // seed do not move).
            let seasonal = ProgramId::parse("seasonal")?;
            hub.add_program(&seasonal, municipality, Points::new(Points::MAX / 4)?, t0)?;
            hub.set_program_expiry(&seasonal, e.expiry_days)?;
            let mut draws = rng.fork(7);
            for h in &holders {
                let pts = draws.range(e.expiring_points.0, e.expiring_points.1);
                hub.credit(h.account, municipality, &seasonal, Points::new(pts)?, t0)?;
            }
            hub.set_shard_target(e.shard_target);
        }
        let liar = plan
            .liar
            .map(|n| Liar::new(n, Prng::new(seed ^ LIAR_RNG_SALT), dir.path().to_path_buf()));
        let end_at = plan.heal_at + plan.converge_within_ms;
        let n = plan.nodes.len();
        let mut w = World {
            now: 0,
            queue: BinaryHeap::new(),
            ev_seq: 0,
            hub,
            hub_clock: HostClock::perfect(),
            hub_sessions: HashMap::new(),
            nodes,
            net,
            rng: rng.fork(5),
            crash_rng: rng.fork(6),
            holders,
            municipality,
            program,
            next_conn: 1,
            acked: HashMap::new(),
            processed_seen: HashSet::new(),
            metrics: Metrics {
                runs: 1,
                ..Metrics::default()
            },
            lag_window: Vec::new(),
            spent_at: vec![BTreeSet::new(); plan.holders],
            healed_at: None,
            ticks: mykey_hub::ticks::TickSchedule::new(0),
            converged_at: None,
            relay: vec![BTreeMap::new(); n],
            relay_done: vec![BTreeMap::new(); n],
            peer_has: vec![BTreeMap::new(); n],
            relay_turn: vec![0; n],
            suspensions: Vec::new(),
            limits,
            liar,
            ledger_seen: 0,
            paid: HashMap::new(),
            honest_redeems: HashMap::new(),
            honest_to_check: Vec::new(),
            end_at,
            progress: None,
            plan,
            _dir: dir,
        };
        for i in 0..n {
            let t = w.rng.below(5_000);
            w.push(t, Kind::Connect(i));
            w.nodes[i].connect_pending = true;
        }
        let mut ops = std::mem::take(&mut w.plan.ops);
        ops.sort_by_key(|(t, _)| *t);
        for (t, op) in ops {
            w.push(t, Kind::Op(op));
        }
        for (t, s) in w.plan.script.clone() {
            w.push(t, Kind::Script(s));
        }
        w.push(w.plan.heal_at, Kind::Script(Scripted::Heal));
        w.push(0, Kind::Sample);
        w.push(0, Kind::HubTick);
        if let Some((gossip, carry)) = w.plan.lan_relay {
            for i in 0..n {
                if w.plan.nodes[i].lan_group.is_some() {
                    let g = w.rng.below(gossip);
                    let c = w.rng.below(carry);
                    w.push(g, Kind::Gossip(i));
                    w.push(c, Kind::Carry(i));
                }
            }
        }
        Ok(w)
    }

    pub(crate) fn push(&mut self, at: SimTime, kind: Kind) {
        self.ev_seq += 1;
        self.queue.push(Ev {
            at: at.max(self.now),
            seq: self.ev_seq,
            kind,
        });
    }

    /// Reports progress on stderr about every `every` of wall-clock time,
    /// labelled `label` (full-size runs take minutes).
    pub fn report_progress(&mut self, label: String, every: std::time::Duration) {
        self.progress = Some(Progress {
            label,
            every,
            started: std::time::Instant::now(),
            next: std::time::Instant::now() + every,
        });
    }

    /// Runs to the end: every event, checks after each, convergence after
    /// healing. Returns the metrics.
    pub fn run(mut self) -> Result<Metrics, Failure> {
        while let Some(ev) = self.queue.pop() {
            if ev.at > self.end_at {
                break;
            }
            self.now = ev.at;
            self.metrics.events += 1;
            if self.metrics.events.is_multiple_of(4096)
                && let Some(p) = &mut self.progress
                && std::time::Instant::now() >= p.next
            {
                p.next += p.every;
                eprintln!(
                    "{}: simulated {} of at most {}, {} events, {:.0} s",
                    p.label,
                    crate::clock::fmt_time(self.now),
                    crate::clock::fmt_time(self.end_at),
                    self.metrics.events,
                    p.started.elapsed().as_secs_f64()
                );
            }
            let hub_touched = self.handle(ev.kind)?;
            if hub_touched {
                self.check_hub()?;
            }
            if self.converged_at.is_some() {
                break;
            }
        }
        if self.converged_at.is_none() {
            let detail = match self.divergence() {
                Ok(Some(d)) => d,
                Ok(None) => "converged only after the bound".to_owned(),
                Err(e) => e.what,
            };
            return fail(
                self.now,
                format!(
                    "no convergence within {} ms of healing: {detail}",
                    self.plan.converge_within_ms
                ),
            );
        }
        self.final_checks()?;
        self.metrics.sim_ms = self.now;
        self.metrics.wan_bytes = self.net.stats.wan_bytes;
        self.metrics.lan_bytes += self.net.stats.lan_bytes;
        Ok(self.metrics)
    }

    /// Handles one event; true when the hub's state may have changed.
    fn handle(&mut self, kind: Kind) -> Result<bool, Failure> {
        match kind {
            Kind::Connect(n) => self.on_connect(n).map(|_| false),
            Kind::Timer(n) => {
                let t = self.now;
                let node = &mut self.nodes[n];
                if node.timer_at.is_some_and(|x| x <= t) {
                    node.timer_at = None;
                }
                if node.is_up() {
                    let mono = node.clock.mono(t);
                    node.session.handle_timeout(mono);
                    self.pump(n)?;
                }
                Ok(false)
            }
            Kind::Detect(n, conn) => {
                if self.nodes[n].conn == Some(conn) && !self.net.can_connect(n) {
                    self.drop_conn(n);
                }
                Ok(false)
            }
            Kind::ToHub(n, conn, req, bytes) => self.on_to_hub(n, conn, req, bytes),
            Kind::ToNode(n, conn, req, bytes) => {
                self.on_to_node(n, conn, req, bytes).map(|_| false)
            }
            Kind::Op(op) => self.on_op(op),
            Kind::Script(s) => self.on_script(s),
            Kind::Sample => self.on_sample().map(|_| false),
            Kind::Gossip(n) => self.on_gossip(n).map(|_| false),
            Kind::LanDeliver(to, from, req) => self.on_lan_deliver(to, from, req).map(|_| false),
            Kind::LanAnswer(to, from, a) => self.on_lan_answer(to, from, a).map(|_| false),
            Kind::Carry(n) => self.on_carry(n).map(|_| false),
            Kind::CarryToHub(n, bytes) => self.on_carry_to_hub(n, bytes),
            Kind::CarryBack(n, bytes) => self.on_carry_back(n, bytes).map(|_| false),
            Kind::HubTick => self.on_hub_tick(),
        }
    }

    fn on_connect(&mut self, n: usize) -> Result<(), Failure> {
        self.nodes[n].connect_pending = false;
        if !self.nodes[n].is_up() || self.nodes[n].conn.is_some() {
            return Ok(());
        }
        if !self.net.can_connect(n) {
            self.schedule_reconnect(n);
            return Ok(());
        }
        let conn = self.next_conn;
        self.next_conn += 1;
        self.hub_sessions
            .insert((n, conn), HubSession::new(self.nodes[n].id));
        let mono = self.nodes[n].clock.mono(self.now);
        self.nodes[n].connected(conn, mono).at(self.now)?;
        self.nodes[n].backoff_ms = 1000;
        self.pump(n)
    }

    pub(crate) fn schedule_reconnect(&mut self, n: usize) {
        let node = &mut self.nodes[n];
        if node.connect_pending || !node.is_up() {
            return;
        }
        let b = node.backoff_ms;
        node.backoff_ms = (b * 2).min(300_000);
        node.connect_pending = true;
        let delay = b + self.rng.below(b / 2 + 1);
        self.push(self.now + delay, Kind::Connect(n));
    }

    pub(crate) fn drop_conn(&mut self, n: usize) {
        if let Some(c) = self.nodes[n].conn {
            self.hub_sessions.remove(&(n, c));
        }
        self.nodes[n].disconnected();
        self.schedule_reconnect(n);
    }

    /// Drains node `n`'s session and puts its requests on the wire.
    pub(crate) fn pump(&mut self, n: usize) -> Result<(), Failure> {
        let t = self.now;
        let (mono, wall) = (self.nodes[n].clock.mono(t), self.nodes[n].clock.wall(t));
        let conn = self.nodes[n].conn;
        let out = self.nodes[n].pump(mono, wall).at(t)?;
        if out.facts_applied && !self.suspensions.is_empty() {
            self.note_suspensions(n)?;
        }
        if let Some(conn) = conn {
            for req in &out.sends {
                // The transport numbers requests and hands the session only
                // the answer to the one it awaits (as libp2p
                // request-response does); a duplicated request still reaches
                // the hub twice.
                let req_no = self.nodes[n].next_req;
                self.nodes[n].next_req += 1;
                self.nodes[n].awaiting = Some(req_no);
                let bytes = req.encode();
                for at in self.net.send_wan(n, Dir::Up, bytes.len(), t) {
                    self.push(at, Kind::ToHub(n, conn, req_no, bytes.clone()));
                }
            }
        }
        if let Some(why) = out.refused {
            self.nodes[n].refused = Some(why);
            self.nodes[n].backoff_ms = 600_000;
        }
        if self.nodes[n].conn.is_none() {
            if let Some(c) = conn {
                self.hub_sessions.remove(&(n, c));
            }
            self.schedule_reconnect(n);
        }
        self.schedule_timer(n);
        Ok(())
    }

    /// Which suspensions node `n` now knows; the time until every node
    /// knows one is its propagation lag.
    fn note_suspensions(&mut self, n: usize) -> Result<(), Failure> {
        let t = self.now;
        let mut done = Vec::new();
        for (i, (h, _, seen)) in self.suspensions.iter().enumerate() {
            if seen[n] {
                continue;
            }
            let core = self.core(n)?;
            if matches!(
                core.lookup(&self.holders[*h].card).at(t)?,
                mykey_node::Lookup::Suspended
            ) {
                done.push(i);
            }
        }
        for i in done {
            self.suspensions[i].2[n] = true;
        }
        let metrics = &mut self.metrics;
        self.suspensions.retain(|(_, at, seen)| {
            let all = seen.iter().all(|s| *s);
            if all {
                metrics.suspension_lag_ms.push(t - at);
            }
            !all
        });
        Ok(())
    }

    fn schedule_timer(&mut self, n: usize) {
        let node = &self.nodes[n];
        let Some(m) = node.session.poll_timeout() else {
            return;
        };
        let t = node.clock.true_time_of_mono(m).max(self.now + 1);
        if node.timer_at.is_none_or(|x| t < x) {
            self.nodes[n].timer_at = Some(t);
            self.push(t, Kind::Timer(n));
        }
    }

    fn on_to_hub(
        &mut self,
        n: usize,
        conn: u64,
        req_no: u64,
        bytes: Vec<u8>,
    ) -> Result<bool, Failure> {
        if !self.net.wan_passes(n, Dir::Up) {
            self.net.stats.lost += 1;
            return Ok(false);
        }
        let Some(mut session) = self.hub_sessions.remove(&(n, conn)) else {
            return Ok(false);
        };
        let req = Request::decode(&bytes).at(self.now)?;
        let touches = matches!(req, Request::Push(_));
        let hub_now = self.hub_clock.wall(self.now);
        let mut watched = Watched::new(&mut self.hub);
        let resp = session.handle_request(req, hub_now, &mut watched);
        let decided = watched.decided;
        self.hub_sessions.insert((n, conn), session);
        self.note_hub_receipts(&decided);
        let bytes = resp.encode();
        for at in self.net.send_wan(n, Dir::Down, bytes.len(), self.now) {
            self.push(at, Kind::ToNode(n, conn, req_no, bytes.clone()));
        }
        Ok(touches)
    }

    /// Metrics from the hub's answers: first processing of each transaction.
    pub(crate) fn note_hub_receipts(&mut self, decided: &[Receipts]) {
        let liar_id = self.liar.as_ref().map(|l| self.nodes[l.node].id);
        for rc in decided.iter().flat_map(|r| &r.receipts) {
            // The hub's own receipts always name the transaction.
            let Some(tx) = rc.tx else { continue };
            if Some(rc.node) == liar_id {
                let chain_level = matches!(&rc.outcome, Outcome::Rejected(x) if x.is_chain_level());
                if chain_level {
                    self.metrics.liar.chain_refused += 1;
                } else if self.processed_seen.insert(tx) {
                    match &rc.outcome {
                        Outcome::Accepted { debt_created, .. } => {
                            self.metrics.liar.debt_created += debt_created.get();
                        }
                        Outcome::Rejected(_) => self.metrics.liar.rejected += 1,
                    }
                }
                continue;
            }
            if let Outcome::Rejected(reason) = &rc.outcome
                && reason.is_chain_level()
            {
                continue;
            }
            if !self.processed_seen.insert(tx) {
                continue;
            }
            if let Some(a) = self.acked.get(&tx) {
                let lag = self.now.saturating_sub(a.signed_at);
                self.metrics.lag_ms.push(lag);
                self.lag_window.push(lag);
            }
            match &rc.outcome {
                Outcome::Accepted { debt_created, .. } => {
                    self.metrics.debt_created += debt_created.get();
                    if self.honest_redeems.contains_key(&tx) {
                        self.honest_to_check.push(tx);
                    }
                }
                Outcome::Rejected(_) => self.metrics.rejected += 1,
            }
        }
    }

    fn on_to_node(
        &mut self,
        n: usize,
        conn: u64,
        req_no: u64,
        bytes: Vec<u8>,
    ) -> Result<(), Failure> {
        if !self.nodes[n].is_up()
            || self.nodes[n].conn != Some(conn)
            || self.nodes[n].awaiting != Some(req_no)
        {
            return Ok(());
        }
        if !self.net.wan_passes(n, Dir::Down) {
            self.net.stats.lost += 1;
            return Ok(());
        }
        let resp = Response::decode(&bytes).at(self.now)?;
        if matches!(resp, Response::Receipts(_)) && self.crash_inside_op(n) {
            // The hub's receipts arrived; the process died before storing
            // them. The node resends and the hub answers the stored verdicts.
            return Ok(());
        }
        self.nodes[n].awaiting = None;
        let mono = self.nodes[n].clock.mono(self.now);
        // An error closes the session and queues a Closed event the pump sees.
        let _ = self.nodes[n].session.handle_response(resp, mono);
        self.pump(n)
    }

    /// Whether node `n` dies now, inside an operation (drawn from the plan's
    /// rate); if so it is down until a restart a little later.
    pub(crate) fn crash_inside_op(&mut self, n: usize) -> bool {
        if self.healed_at.is_some() || !self.crash_rng.chance(self.plan.crash_in_op) {
            return false;
        }
        if let Some(c) = self.nodes[n].conn {
            self.hub_sessions.remove(&(n, c));
        }
        self.nodes[n].crash();
        self.metrics.crashes_in_op += 1;
        let back = self.now + self.crash_rng.range(1_000, 60_000);
        self.push(back, Kind::Script(Scripted::Restart(n)));
        true
    }

    /// Describes the time for messages.
    pub fn when(&self) -> String {
        fmt_time(self.now)
    }
}
