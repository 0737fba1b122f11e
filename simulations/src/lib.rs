//! Deterministic simulation of MyKey Edge: many nodes, a hub and a faulty
//! network, all driven from one seed (DESIGN §11, STYLE "Tests" 4).
//!
//! The simulation runs the *same* deciding cores the binaries run: the node
//! core (`mykey_node::Node` on a real SQLite file per node, under /dev/shm),
//! the sans-IO sync sessions of `mykey_sync_proto`, and the hub core behind
//! [`hub_host::HubCore`]. Around them it simulates what the binaries get from
//! the outside world: a network with latency, loss, duplication, reordering
//! and (one-way) partitions; per-host clocks with skew, drift and jumps;
//! process crashes that keep only what was committed; card-reader faults.
//! After every step that touches the hub it checks conservation and bounded
//! risk; after every restart, that nothing acknowledged was lost; after
//! healing, that every replica converges to the hub's view within a bound;
//! forged transactions and facts are injected and must change nothing.
//! Spends above the PIN threshold run the node's real card path against a
//! virtual JPKI card per holder ([`cards`]). In the festival and city-day
//! scenarios one node lies ([`liar`]): its owner edits its store, mints and
//! replays redeems, leaks its key and brings a peer outside the roster onto
//! the LAN; after every step the hub must pay its facility no more than the
//! bounds the hub enrolled, and honest nodes' outcomes must not change.
//!
//! A failure prints `SIM_SEED=<n>` and the command that replays it.
//!
//! What is modelled here rather than run (see [`lan`] and [`strict`]): the
//! libp2p LAN itself. Stalls offer their signed transactions over the
//! simulated LAN as encoded `/mykey/lan/1` requests and the simulation
//! carries them to the hub; the receiving node takes what arrives with the
//! node binary's own LAN handler (`mykey_node::net::lan::answer_request`),
//! so a stall counts its peers' pending spends against
//! each wallet (bounded mode) and rights given between stalls reach the
//! receiving core (strict mode). Strict mode's rights live in the cores:
//! the hub's escrow and the node store.
#![forbid(unsafe_code)]
#![cfg_attr(not(test), deny(clippy::unwrap_used))]
#![deny(missing_docs)]

pub mod cards;
pub mod chart;
mod checks;
pub mod clock;
pub mod hub_host;
mod hub_ticks;
mod lan;
pub mod liar;
pub mod metrics;
pub mod net;
pub mod node_host;
mod ops;
pub mod plan;
pub mod prng;
pub mod real_hub;
pub mod scenarios;
mod script;
pub mod strict;
pub mod world;

use metrics::Metrics;
use scenarios::Scenario;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

/// A failed run: which, when and why, and how to replay it.
#[derive(Debug, Clone)]
pub struct RunError {
    /// The scenario.
    pub scenario: Scenario,
    /// The seed.
    pub seed: u64,
    /// Full size.
    pub long: bool,
    /// Simulated time of the failure, as `d.hh:mm:ss`.
    pub at: String,
    /// What broke.
    pub what: String,
}

impl std::fmt::Display for RunError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "SIM_SEED={} scenario {} failed at {}: {}\n  replay: {}",
            self.seed,
            self.scenario.name(),
            self.at,
            self.what,
            replay_command(self.scenario, self.seed, self.long)
        )
    }
}

/// The exact command that replays one run.
pub fn replay_command(scenario: Scenario, seed: u64, long: bool) -> String {
    format!(
        "cargo run --release -p mykey-simulations -- {} --seed {seed}{}",
        scenario.name(),
        if long { " --long" } else { "" }
    )
}

/// Runs one scenario with one seed against the hub core.
pub fn run_one(scenario: Scenario, seed: u64, long: bool) -> Result<Metrics, RunError> {
    run_plan(scenario, scenario.plan(seed, long), seed, long)
}

/// Runs a plan (a scenario's, possibly adjusted by a regression test).
pub fn run_plan(
    scenario: Scenario,
    plan: plan::Plan,
    seed: u64,
    long: bool,
) -> Result<Metrics, RunError> {
    let err = |at: String, what: String| RunError {
        scenario,
        seed,
        long,
        at,
        what,
    };
    let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        let mut world = world::World::new(plan, seed, |dir, secret| {
            real_hub::RealHub::create(dir, secret)
        })
        .map_err(|e| err("0.00:00:00".into(), format!("setup: {e:#}")))?;
        if long {
            // A full-size run takes minutes: say how far it got.
            let label = format!("{} seed {seed}", scenario.name());
            world.report_progress(label, std::time::Duration::from_secs(30));
        }
        world.run().map_err(|f| err(clock::fmt_time(f.at), f.what))
    }));
    match outcome {
        Ok(r) => r,
        Err(panic) => {
            let msg = panic
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| panic.downcast_ref::<&str>().map(|s| (*s).to_owned()))
                .unwrap_or_else(|| "panic".to_owned());
            Err(err("?".into(), format!("a core panicked: {msg}")))
        }
    }
}

/// Runs `seeds` of each scenario on `jobs` threads. Returns the metrics per
/// scenario (in [`Scenario::ALL`] order) and the failures.
pub fn run_many(
    scenarios: &[Scenario],
    seeds: std::ops::Range<u64>,
    long: bool,
    jobs: usize,
) -> (Vec<(Scenario, Metrics)>, Vec<RunError>) {
    let work: Vec<(Scenario, u64)> = scenarios
        .iter()
        .flat_map(|s| seeds.clone().map(move |seed| (*s, seed)))
        .collect();
    let next = AtomicU64::new(0);
    let done = AtomicU64::new(0);
    let started = std::time::Instant::now();
    let total = work.len() as u64;
    let results: Mutex<Vec<(usize, Result<Metrics, RunError>)>> = Mutex::new(Vec::new());
    std::thread::scope(|scope| {
        for _ in 0..jobs.max(1) {
            scope.spawn(|| {
                loop {
                    let i = next.fetch_add(1, Ordering::SeqCst) as usize;
                    let Some((s, seed)) = work.get(i) else {
                        break;
                    };
                    let r = run_one(*s, *seed, long);
                    if let Err(e) = &r {
                        eprintln!("{e}");
                    }
                    // Progress: every run when there are few (or they are
                    // long), else every tenth of the set.
                    let k = done.fetch_add(1, Ordering::SeqCst) + 1;
                    if long || total <= 20 || k * 10 / total != (k - 1) * 10 / total {
                        eprintln!(
                            "{k}/{total} runs done ({} seed {seed} {}), {:.1} s",
                            s.name(),
                            if r.is_ok() { "passed" } else { "FAILED" },
                            started.elapsed().as_secs_f64()
                        );
                    }
                    if let Ok(mut v) = results.lock() {
                        v.push((i, r));
                    }
                }
            });
        }
    });
    let mut results = results.into_inner().unwrap_or_default();
    results.sort_by_key(|(i, _)| *i);
    let mut per: Vec<(Scenario, Metrics)> =
        scenarios.iter().map(|s| (*s, Metrics::default())).collect();
    let mut failures = Vec::new();
    for (i, r) in results {
        let (s, _) = work[i];
        match r {
            Ok(m) => {
                if let Some((_, acc)) = per.iter_mut().find(|(x, _)| *x == s) {
                    acc.absorb(&m);
                }
            }
            Err(e) => failures.push(e),
        }
    }
    (per, failures)
}
