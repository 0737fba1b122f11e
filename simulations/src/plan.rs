//! What a scenario hands the world: the topology, the people, a timed list of
//! counter operations and a timed script of faults and operator actions.
//! Scenarios build a plan from the seed; the world only executes it, so a
//! plan is the whole story of a run.

use crate::clock::SimTime;
use crate::hub_host::{SimLimits, SiteKind};
use crate::net::LinkParams;
use crate::prng::Prng;

/// One node of the topology.
#[derive(Clone, Debug)]
pub struct NodeSpec {
    /// Facility id (slug).
    pub facility: String,
    /// What it is.
    pub kind: SiteKind,
    /// What the hub lets it do (its `valid_until` is set by the world).
    pub limits: SimLimits,
    /// LAN group, if it has LAN peers.
    pub lan_group: Option<usize>,
    /// Clock skew bound, ms.
    pub max_skew_ms: u64,
}

/// A counter operation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Op {
    /// Card tap → facility card number.
    Lookup,
    /// Link a new facility card (library card).
    Link,
    /// Grant points.
    Grant(u64),
    /// Spend points.
    Redeem(u64),
}

/// One operation at a counter.
#[derive(Clone, Copy, Debug)]
pub struct OpSpec {
    /// Where.
    pub node: usize,
    /// Who (index into the holders).
    pub holder: usize,
    /// What.
    pub op: Op,
}

/// A scripted event.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Scripted {
    /// Set a node's WAN link (`None`: every node's): node→hub and hub→node.
    Wan {
        /// Which node.
        node: Option<usize>,
        /// Node → hub passes.
        up: bool,
        /// Hub → node passes.
        down: bool,
    },
    /// A fault overlay on a node's WAN link, on top of its schedule: cut
    /// node→hub (`up`), hub→node (`down`), both, or neither (repaired).
    Cut {
        /// Which node.
        node: usize,
        /// Node → hub is cut.
        up: bool,
        /// Hub → node is cut.
        down: bool,
    },
    /// A node's LAN cable in or out.
    Lan {
        /// Which node.
        node: usize,
        /// In.
        ok: bool,
    },
    /// The hub process stops (true) or starts (false); a stop loses its
    /// sessions and whatever it had not committed.
    HubDown(bool),
    /// A node process crashes.
    Crash(usize),
    /// A crashed node restarts.
    Restart(usize),
    /// A node's wall clock jumps by this many ms.
    Jump(usize, i64),
    /// The hub suspends a holder's card (lost card).
    Suspend(usize),
    /// The holder found the card: the hub reinstates it.
    Reinstate(usize),
    /// The holder's card is renewed: a new card key on the same account.
    Renew(usize),
    /// An operator exchange credits a holder.
    Credit(usize, u64),
    /// An attacker pushes forged transactions to the hub.
    ForgeTx,
    /// An attacker hands a node a forged fact.
    ForgeFact(usize),
    /// Strict mode: the hub grants the LAN group escrow rights now.
    Escrow,
    /// The operator runs a settlement on demand: every period of the
    /// municipality closes through now (statements; a new shard epoch
    /// follows, as after every close).
    Settle,
    /// The lying node's owner does something (`liar.rs`).
    Lie(crate::liar::Lie),
    /// Every link heals and stays healed; convergence is due.
    Heal,
}

/// Rates of card-reader faults at the counter.
#[derive(Clone, Copy, Debug)]
pub struct CardFaults {
    /// The card is pulled mid-operation.
    pub pulled: f64,
    /// A PIN entry is wrong.
    pub wrong_pin: f64,
}

/// A complete run description.
#[derive(Clone, Debug)]
pub struct Plan {
    /// Scenario name.
    pub name: &'static str,
    /// Nodes.
    pub nodes: Vec<NodeSpec>,
    /// Number of card holders.
    pub holders: usize,
    /// Points each holder starts with (uniform range).
    pub initial_points: (u64, u64),
    /// Counter operations (any order; the world sorts them).
    pub ops: Vec<(SimTime, OpSpec)>,
    /// Scripted events.
    pub script: Vec<(SimTime, Scripted)>,
    /// WAN behaviour.
    pub wan: LinkParams,
    /// LAN behaviour.
    pub lan: LinkParams,
    /// When the script's last fault is over and [`Scripted::Heal`] fires.
    pub heal_at: SimTime,
    /// Convergence must follow healing within this long.
    pub converge_within_ms: u64,
    /// Metrics sampling period.
    pub sample_ms: u64,
    /// How often an idle session pulls facts.
    pub pull_interval_ms: u64,
    /// Transactions per push (the session's batch size).
    pub push_batch: usize,
    /// Card faults.
    pub card_faults: CardFaults,
    /// Strict mode (escrow) instead of bounded mode.
    pub strict: bool,
    /// Chance that a node process dies inside an operation: after a
    /// redeem's SQLite commit but before the counter hears of it, or after
    /// the hub's receipts arrive but before the node stores them.
    pub crash_in_op: f64,
    /// LAN relay: (gossip period, carrier push period), ms.
    pub lan_relay: Option<(u64, u64)>,
    /// The lying node, if any (an index into `nodes`; it serves no
    /// operation of `ops`, only the script's [`Scripted::Lie`]s).
    pub liar: Option<usize>,
    /// The hub's economy exercised inside the run, if set (the hub's timed
    /// jobs run in every scenario; this makes them find work).
    pub economy: Option<EconomyPlan>,
}

/// Work for the hub's timed jobs (`mykey_hub::ticks`) and a settlement run,
/// which the run must see done (`World::final_checks`).
#[derive(Clone, Debug)]
pub struct EconomyPlan {
    /// Points (uniform range) each holder gets at the start from a
    /// programme whose grants expire after `expiry_days`.
    pub expiring_points: (u64, u64),
    /// Days until those grants expire (the economy step moves what is left
    /// of them to expiry income).
    pub expiry_days: u32,
    /// The hub's shard target (items per shard), small enough that the
    /// run's shards outgrow it and the minute's job starts a new epoch.
    pub shard_target: u64,
}

impl Plan {
    /// Adds the background faults every scenario suffers, drawn from `rng`,
    /// between `from` and `until`: node crashes (with restarts), clock
    /// jumps, one-way WAN cuts, short flaps, forgeries.
    pub fn add_background_faults(&mut self, rng: &mut Prng, from: SimTime, until: SimTime) {
        let n = self.nodes.len();
        let span = until.saturating_sub(from).max(1);
        let at = |rng: &mut Prng| from + rng.below(span);
        let crashes = 1 + n / 4;
        for _ in 0..crashes {
            let node = rng.index(n);
            let t = at(rng);
            self.script.push((t, Scripted::Crash(node)));
            let back = (t + rng.range(1_000, 600_000)).min(until);
            self.script.push((back, Scripted::Restart(node)));
        }
        for _ in 0..(1 + n / 5) {
            let node = rng.index(n);
            let delta = if rng.chance(0.5) {
                -(rng.range(1_000, 3_600_000) as i64)
            } else {
                rng.range(1_000, 3_600_000) as i64
            };
            self.script.push((at(rng), Scripted::Jump(node, delta)));
        }
        for _ in 0..(1 + n / 5) {
            let node = rng.index(n);
            let t = at(rng);
            let (up, down) = match rng.below(3) {
                0 => (true, false),
                1 => (false, true),
                _ => (true, true),
            };
            self.script.push((t, Scripted::Cut { node, up, down }));
            let back = (t + rng.range(10_000, 1_800_000)).min(until);
            let repaired = Scripted::Cut {
                node,
                up: false,
                down: false,
            };
            self.script.push((back, repaired));
        }
        self.script.push((at(rng), Scripted::ForgeTx));
        self.script
            .push((at(rng), Scripted::ForgeFact(rng.index(n))));
        if rng.chance(0.5) {
            let t = at(rng);
            self.script.push((t, Scripted::HubDown(true)));
            self.script.push((
                (t + rng.range(5_000, 300_000)).min(until),
                Scripted::HubDown(false),
            ));
        }
    }
}
