//! The four scenarios, each a function from a seed (and a size) to a
//! [`Plan`]: realistic topologies, opening hours, link schedules and
//! workloads, plus the background faults every run suffers.

use crate::clock::SimTime;
use crate::hub_host::{SimLimits, SiteKind};
use crate::liar::{Lie, MintProof};
use crate::net::LinkParams;
use crate::plan::{CardFaults, EconomyPlan, NodeSpec, Op, OpSpec, Plan, Scripted};
use crate::prng::Prng;
use mykey_sync_proto::session::NodeSessionConfig;
use mykey_sync_proto::{OpKind, Points, UnixMillis};

const MIN: u64 = 60_000;
const HOUR: u64 = 3_600_000;

/// The scenarios, by CLI name.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scenario {
    /// A few rural libraries whose link is up ~20% of the day, in bursts.
    RuralLibrary,
    /// 30 stalls on a LAN with no WAN for 8 hours (bounded mode).
    Festival,
    /// The same festival in strict mode (escrow rights).
    FestivalStrict,
    /// Many nodes in a city: exchanges, lost cards, flaky links.
    CityDay,
    /// The hub down for 24 hours, then back.
    HubOutage,
}

impl Scenario {
    /// Every scenario, in the order `all` runs them.
    pub const ALL: [Scenario; 5] = [
        Scenario::RuralLibrary,
        Scenario::Festival,
        Scenario::FestivalStrict,
        Scenario::CityDay,
        Scenario::HubOutage,
    ];

    /// CLI name.
    pub fn name(self) -> &'static str {
        match self {
            Scenario::RuralLibrary => "rural-library",
            Scenario::Festival => "festival",
            Scenario::FestivalStrict => "festival-strict",
            Scenario::CityDay => "city-day",
            Scenario::HubOutage => "hub-outage",
        }
    }

    /// The plan for `seed`; `long` gives the full-size run.
    pub fn plan(self, seed: u64, long: bool) -> Plan {
        self.plan_with(seed, long, None)
    }

    /// The plan for `seed` with the festival's stall count set (the short
    /// run's other sizes): regression seeds found at another size replay
    /// at it. Other scenarios ignore `stalls`.
    pub fn plan_with(self, seed: u64, long: bool, stalls: Option<usize>) -> Plan {
        let mut rng = Prng::new(seed ^ 0x5CE7_A410);
        let mut faults = rng.fork(0xFA17);
        let festival_size = |strict| {
            let (default, visitors, redemptions) = if long {
                (30, 2_000, 10_000)
            } else {
                (STALLS_SHORT, 100, 500)
            };
            FestivalSize {
                stalls: stalls.unwrap_or(default),
                visitors,
                redemptions,
                strict,
            }
        };
        let mut plan = match self {
            Scenario::RuralLibrary => rural_library(&mut rng, long),
            Scenario::Festival => festival(&mut rng, festival_size(false)),
            Scenario::FestivalStrict => festival(&mut rng, festival_size(true)),
            Scenario::CityDay => city_day(&mut rng, long),
            Scenario::HubOutage => hub_outage(&mut rng, long),
        };
        swarm(&mut plan, &mut faults);
        // The lying node joins the festival's LAN or the city's shops.
        match self {
            Scenario::Festival | Scenario::FestivalStrict => add_liar(
                &mut plan,
                seed,
                SiteKind::Stall,
                Some(0),
                30 * MIN,
                30 * MIN + 8 * HOUR,
            ),
            Scenario::CityDay => {
                add_liar(&mut plan, seed, SiteKind::Shop, None, 10 * MIN, 11 * HOUR)
            }
            Scenario::RuralLibrary | Scenario::HubOutage => {}
        }
        plan
    }
}

/// Salt of the liar's own draws: the honest plan of a seed stays what it
/// was whether or not a liar joins it.
const LIAR_SALT: u64 = 0x11A2_D0DE_5EED_0001;

/// Appends a lying node (`liar.rs`) of `kind` to the plan, in LAN group
/// `lan_group`, and its lies between `from` and `until`, drawn from the
/// seed's own liar stream.
fn add_liar(
    plan: &mut Plan,
    seed: u64,
    kind: SiteKind,
    lan_group: Option<usize>,
    from: SimTime,
    until: SimTime,
) {
    let mut rng = Prng::new(seed ^ LIAR_SALT);
    let idx = plan.nodes.len();
    let mut spec = node(format!("liar-{idx}"), kind, lan_group);
    spec.max_skew_ms = 0;
    let threshold = spec.limits.pin_threshold.get();
    plan.nodes.push(spec);
    plan.liar = Some(idx);
    let holders = plan.holders;
    let span = until.saturating_sub(from).max(1);
    let at = |rng: &mut Prng, lo: u64, hi: u64| {
        from + span * lo / 100 + rng.below(span * (hi - lo) / 100 + 1)
    };
    let mut lies: Vec<(SimTime, Lie)> = Vec::new();
    let holder = |rng: &mut Prng| rng.index(holders);
    // A genuine sale first: its card signature is what the copies reuse.
    let t = at(&mut rng, 0, 10);
    lies.push((
        t,
        Lie::Genuine {
            holder: holder(&mut rng),
            points: rng.range(threshold + 1, threshold + 1_500),
        },
    ));
    for points in [5_000_000, 7_000_000, rng.range(2_000, 20_000)] {
        let t = at(&mut rng, 10, 90);
        lies.push((
            t,
            Lie::TamperedSpend {
                holder: holder(&mut rng),
                points,
            },
        ));
    }
    if plan.strict {
        for _ in 0..2 {
            let t = at(&mut rng, 10, 90);
            lies.push((
                t,
                Lie::SelfRight {
                    holder: holder(&mut rng),
                    points: rng.range(5_000, 50_000),
                },
            ));
        }
    }
    let mints = [
        (rng.range(100, threshold), MintProof::None),
        (rng.range(100, threshold), MintProof::None),
        (rng.range(threshold + 1, 5_000), MintProof::None),
        (rng.range(threshold + 1, 5_000), MintProof::Forged),
        (rng.range(threshold + 1, 5_000), MintProof::Copied),
        (rng.range(50_000, 300_000), MintProof::Copied),
    ];
    for (points, proof) in mints {
        let t = at(&mut rng, 10, 95);
        lies.push((
            t,
            Lie::Mint {
                holder: holder(&mut rng),
                points,
                proof,
            },
        ));
    }
    for _ in 0..2 {
        let t = at(&mut rng, 50, 100);
        lies.push((t, Lie::Replay));
    }
    // The key leaks late in the day: the copy carries most of what the
    // liar signed, and the second machine's chain (which reaches the hub
    // first) and the original's later forks are both tried.
    let leak = at(&mut rng, 80, 90);
    lies.push((leak, Lie::Leak));
    for _ in 0..2 {
        let t = leak + 1 + rng.below(until.saturating_sub(leak).max(1));
        lies.push((
            t,
            Lie::LeakSpend {
                holder: holder(&mut rng),
                points: rng.range(10_000, 100_000),
            },
        ));
    }
    if lan_group.is_some() {
        for _ in 0..2 {
            let t = at(&mut rng, 10, 90);
            lies.push((
                t,
                Lie::RogueLan {
                    holder: holder(&mut rng),
                    points: rng.range(100_000, 1_000_000),
                },
            ));
        }
    }
    plan.script
        .extend(lies.into_iter().map(|(t, l)| (t, Scripted::Lie(l))));
}

/// Swarm testing, as in VOPR: each seed draws its own fault intensities,
/// from a calm network to a hostile one.
fn swarm(plan: &mut Plan, rng: &mut Prng) {
    plan.wan.loss = rng.range(0, 80) as f64 / 1000.0;
    plan.wan.dup = rng.range(0, 30) as f64 / 1000.0;
    plan.wan.jitter_ms = rng.range(50, 2_000);
    plan.lan.loss = rng.range(0, 50) as f64 / 1000.0;
    plan.lan.dup = rng.range(0, 20) as f64 / 1000.0;
    plan.card_faults.pulled = rng.range(0, 50) as f64 / 1000.0;
    plan.card_faults.wrong_pin = rng.range(0, 200) as f64 / 1000.0;
}

fn p(n: u64) -> Points {
    Points::new(n).unwrap_or(Points::ZERO)
}

fn limits(kind: SiteKind) -> SimLimits {
    let (ops, card, node): (Vec<OpKind>, u64, u64) = match kind {
        SiteKind::Library => (
            vec![OpKind::Link, OpKind::Unlink, OpKind::Grant, OpKind::Redeem],
            2_000,
            50_000,
        ),
        SiteKind::CommunityCentre => (vec![OpKind::Grant, OpKind::Link], 0, 0),
        SiteKind::Shop => (vec![OpKind::Redeem], 5_000, 200_000),
        SiteKind::Stall => (vec![OpKind::Redeem], 3_000, 500_000),
    };
    SimLimits {
        allowed_ops: ops,
        per_card_offline_limit: p(card),
        node_exposure_limit: p(node),
        pin_threshold: p(1_000),
        valid_until: UnixMillis(0),
    }
}

fn node(facility: String, kind: SiteKind, lan_group: Option<usize>) -> NodeSpec {
    NodeSpec {
        facility,
        kind,
        limits: limits(kind),
        lan_group,
        max_skew_ms: 120_000,
    }
}

fn base(name: &'static str, nodes: Vec<NodeSpec>, holders: usize, heal_at: SimTime) -> Plan {
    Plan {
        name,
        nodes,
        holders,
        initial_points: (0, 3_000),
        ops: Vec::new(),
        script: Vec::new(),
        wan: LinkParams::WAN,
        lan: LinkParams::LAN,
        heal_at,
        converge_within_ms: 30 * MIN,
        sample_ms: 10 * MIN,
        pull_interval_ms: 60_000,
        push_batch: NodeSessionConfig::default().batch_txs,
        card_faults: CardFaults {
            pulled: 0.02,
            wrong_pin: 0.1,
        },
        strict: false,
        crash_in_op: 0.01,
        lan_relay: None,
        liar: None,
        economy: None,
    }
}

/// Redemption amounts: mostly small, some above the PIN threshold.
fn amount(rng: &mut Prng) -> u64 {
    if rng.chance(0.15) {
        rng.range(1_001, 2_500)
    } else {
        rng.range(1, 10) * 100
    }
}

/// Link bursts: the line is there ~20% of the day.
fn bursts(plan: &mut Plan, rng: &mut Prng, node: usize, until: SimTime) {
    let mut t = rng.below(2 * HOUR);
    let w = |up: bool| Scripted::Wan {
        node: Some(node),
        up,
        down: up,
    };
    plan.script.push((0, w(true)));
    plan.script.push((30 * MIN, w(false)));
    t += 30 * MIN;
    while t < until {
        let up = rng.exp_ms(30.0 * MIN as f64).max(MIN);
        plan.script.push((t, w(true)));
        plan.script.push((t + up, w(false)));
        t += up + rng.exp_ms(120.0 * MIN as f64).max(MIN);
    }
}

fn rural_library(rng: &mut Prng, long: bool) -> Plan {
    let (libs, patrons, per_lib) = if long {
        (12, 3_000, 600)
    } else {
        (3, 120, 100)
    };
    let nodes = (0..libs)
        .map(|i| node(format!("library-{i}"), SiteKind::Library, None))
        .collect();
    let day = 24 * HOUR;
    let mut plan = base("rural-library", nodes, patrons, day);
    for n in 0..libs {
        bursts(&mut plan, rng, n, day);
        for _ in 0..per_lib {
            // Opening hours 9:00–19:00, the run starts at 9:00 minus 30 min.
            let t = 30 * MIN + rng.below(10 * HOUR);
            let r = rng.unit();
            let op = if r < 0.6 {
                Op::Lookup
            } else if r < 0.8 {
                Op::Link
            } else if r < 0.87 {
                Op::Grant(rng.range(1, 5) * 100)
            } else {
                Op::Redeem(amount(rng))
            };
            let holder = rng.index(patrons);
            plan.ops.push((
                t,
                OpSpec {
                    node: n,
                    holder,
                    op,
                },
            ));
        }
    }
    plan.add_background_faults(rng, 30 * MIN, day - HOUR);
    plan
}

/// Stalls in the short festival (`--long`: 30). The short run keeps the
/// day's shape (one LAN, no WAN for 8 hours, one stall carrying everyone's)
/// on fewer stalls: every LAN message is verified and stored by each peer,
/// and strict mode splits each right among the stalls, so the work grows
/// with the square of their number (30 stalls: 27 s a seed; 10: 4 s).
pub const STALLS_SHORT: usize = 10;

struct FestivalSize {
    stalls: usize,
    visitors: usize,
    redemptions: usize,
    strict: bool,
}

fn festival(rng: &mut Prng, size: FestivalSize) -> Plan {
    let FestivalSize {
        stalls,
        visitors,
        redemptions,
        strict,
    } = size;
    let nodes = (0..stalls)
        .map(|i| node(format!("stall-{i}"), SiteKind::Stall, Some(0)))
        .collect();
    let start = 30 * MIN;
    let end = start + 8 * HOUR;
    let mut plan = base(
        if strict {
            "festival-strict"
        } else {
            "festival"
        },
        nodes,
        visitors,
        end + HOUR,
    );
    plan.initial_points = (1_000, 5_000);
    plan.strict = strict;
    plan.lan_relay = Some((60_000, 60_000));
    if strict {
        // Early enough that every stall pulls its rights before the WAN goes.
        plan.script.push((2 * MIN, Scripted::Escrow));
    }
    plan.script.push((
        start,
        Scripted::Wan {
            node: None,
            up: false,
            down: false,
        },
    ));
    // One stall regains the hub link at the end of the day and delivers
    // everyone's transactions it holds; the rest come back an hour later.
    plan.script.push((
        end,
        Scripted::Wan {
            node: Some(0),
            up: true,
            down: true,
        },
    ));
    for _ in 0..redemptions {
        let t = start + rng.below(8 * HOUR);
        let holder = rng.index(visitors);
        let node = rng.index(stalls);
        let op = Op::Redeem(amount(rng).min(1_500));
        plan.ops.push((t, OpSpec { node, holder, op }));
    }
    plan.add_background_faults(rng, start, end);
    // Stall 0 must be able to carry at the end: no fault of its own then.
    plan.script.retain(|(t, s)| {
        !(*t >= end - HOUR && matches!(s, Scripted::Crash(0) | Scripted::Cut { node: 0, .. }))
    });
    for n in 0..stalls {
        if rng.chance(0.1) {
            let t = start + rng.below(8 * HOUR);
            plan.script.push((t, Scripted::Lan { node: n, ok: false }));
            plan.script.push((
                t + rng.range(MIN, HOUR),
                Scripted::Lan { node: n, ok: true },
            ));
        }
    }
    plan
}

fn city_day(rng: &mut Prng, long: bool) -> Plan {
    let (n_nodes, holders, ops_per_node) = if long {
        (200, 1_000, 40)
    } else {
        (12, 150, 30)
    };
    let nodes: Vec<NodeSpec> = (0..n_nodes)
        .map(|i| {
            let kind = match i % 4 {
                0 => SiteKind::Library,
                1 => SiteKind::CommunityCentre,
                _ => SiteKind::Shop,
            };
            node(format!("site-{i}"), kind, None)
        })
        .collect();
    let day = 12 * HOUR;
    let mut plan = base("city-day", nodes.clone(), holders, day);
    plan.pull_interval_ms = 120_000;
    for (n, spec) in nodes.iter().enumerate() {
        for _ in 0..ops_per_node {
            let t = 10 * MIN + rng.below(day - HOUR);
            let holder = rng.index(holders);
            let op = match spec.kind {
                SiteKind::CommunityCentre => {
                    if rng.chance(0.7) {
                        Op::Grant(rng.range(1, 10) * 100)
                    } else {
                        Op::Link
                    }
                }
                SiteKind::Library => match rng.below(3) {
                    0 => Op::Link,
                    _ => Op::Lookup,
                },
                _ => Op::Redeem(amount(rng)),
            };
            plan.ops.push((
                t,
                OpSpec {
                    node: n,
                    holder,
                    op,
                },
            ));
        }
        // City links drop now and then.
        for _ in 0..rng.range(0, 3) {
            let t = rng.below(day - 2 * HOUR);
            let w = |up| Scripted::Wan {
                node: Some(n),
                up,
                down: up,
            };
            plan.script.push((t, w(false)));
            plan.script.push((t + rng.range(MIN, 2 * HOUR), w(true)));
        }
    }
    // Operator exchanges arrive at the hub all day.
    for _ in 0..holders / 2 {
        let t = rng.below(day - HOUR);
        let h = rng.index(holders);
        plan.script
            .push((t, Scripted::Credit(h, rng.range(5, 50) * 100)));
    }
    // Lost cards; some are found again (reinstated) and lost again, some
    // holders renew their card.
    for _ in 0..(holders / 100).max(2) {
        let t = rng.below(day - 3 * HOUR);
        let h = rng.index(holders);
        plan.script.push((t, Scripted::Suspend(h)));
        if rng.chance(0.5) {
            let found = t + rng.range(MIN, 10 * MIN);
            plan.script.push((found, Scripted::Reinstate(h)));
            if rng.chance(0.5) {
                plan.script
                    .push((found + rng.range(MIN, 10 * MIN), Scripted::Suspend(h)));
            }
        }
    }
    for _ in 0..(holders / 50).max(2) {
        let t = rng.below(day - HOUR);
        plan.script.push((t, Scripted::Renew(rng.index(holders))));
    }
    plan.add_background_faults(rng, 10 * MIN, day - HOUR);
    plan
}

fn hub_outage(rng: &mut Prng, long: bool) -> Plan {
    let (n_nodes, holders, ops_per_node) = if long { (50, 2_000, 400) } else { (8, 150, 60) };
    let nodes: Vec<NodeSpec> = (0..n_nodes)
        .map(|i| {
            let kind = if i % 3 == 0 {
                SiteKind::Library
            } else {
                SiteKind::Shop
            };
            node(format!("site-{i}"), kind, None)
        })
        .collect();
    let down_at = 2 * HOUR;
    let up_at = down_at + 24 * HOUR;
    let mut plan = base("hub-outage", nodes.clone(), holders, up_at + 2 * HOUR);
    plan.initial_points = (500, 4_000);
    plan.script.push((down_at, Scripted::HubDown(true)));
    plan.script.push((up_at, Scripted::HubDown(false)));
    for (n, spec) in nodes.iter().enumerate() {
        for _ in 0..ops_per_node {
            let t = 10 * MIN + rng.below(up_at + HOUR);
            let holder = rng.index(holders);
            let op = match (spec.kind, rng.below(4)) {
                (SiteKind::Library, 0) => Op::Link,
                (SiteKind::Library, 1) => Op::Grant(rng.range(1, 5) * 100),
                (SiteKind::Library, _) => Op::Lookup,
                _ => Op::Redeem(amount(rng)),
            };
            plan.ops.push((
                t,
                OpSpec {
                    node: n,
                    holder,
                    op,
                },
            ));
        }
    }
    // Operator exchanges that waited for the hub arrive when it is back.
    for _ in 0..holders / 10 {
        let t = up_at + rng.below(HOUR);
        plan.script
            .push((t, Scripted::Credit(rng.index(holders), 1_000)));
    }
    plan.add_background_faults(rng, 10 * MIN, up_at + HOUR);
    // The scripted outage is the hub fault of this scenario.
    plan.script
        .retain(|(t, s)| !matches!(s, Scripted::HubDown(_)) || *t == down_at || *t == up_at);
    // The hub's timed jobs find work: a seasonal grant that expires while
    // the hub is down (the economy step moves what is left of it when the
    // hub is back), shards that outgrow a small target, and a settlement
    // run on demand an hour after the hub is back (no lying node here: its
    // bounds hold per calendar period, which a run on demand does not end).
    plan.economy = Some(EconomyPlan {
        expiring_points: (100, 800),
        expiry_days: 1,
        shard_target: 32,
    });
    plan.script.push((up_at + HOUR, Scripted::Settle));
    plan
}
