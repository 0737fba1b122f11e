//! Deciding a node's health from what the hub recorded: pure, takes `now`.
//!
//! Inputs are the hub's records of a node (its status row, its links of the
//! last day, its recent rejections and the oldest fact it has not pulled);
//! the output says whether it is connected, when it was last heard from, its
//! link quality over the window, and which alerts hold.

use crate::model::{FacilityKind, NodeStatus};
use crate::quarantine::summary::Sum;
use crate::store::status::LinkSpan;
use mykey_sync_proto::UnixMillis;

/// One hour in milliseconds.
pub const HOUR_MS: u64 = 3_600_000;
/// The window of link quality and of the rejection alert.
pub const WINDOW_MS: u64 = 24 * HOUR_MS;

/// How long an open link not confirmed counts as alive by default: three
/// ticks of the serving hub, which confirms its live links each tick.
pub const LINK_ALIVE_MS: u64 = 3 * 60_000;

/// Alert limits. Defaults suit the facility kinds' ways of working: a
/// library is online all day, a festival stall may be offline for days.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Thresholds {
    /// Silence allowed per facility kind, in [`FacilityKind::ALL`] order.
    pub silent_after_ms: [u64; 6],
    /// Largest clock difference at Hello before an alert.
    pub max_clock_skew_ms: u64,
    /// How long a node may lag behind facts issued before its last contact.
    pub replica_grace_ms: u64,
    /// An open link not confirmed for this long counts as down (the serving
    /// hub confirms its live links every minute).
    pub link_alive_ms: u64,
}

impl Default for Thresholds {
    fn default() -> Self {
        Thresholds {
            // library, museum, sports hall, community centre, shop, stall
            silent_after_ms: [
                6 * HOUR_MS,
                6 * HOUR_MS,
                6 * HOUR_MS,
                24 * HOUR_MS,
                24 * HOUR_MS,
                72 * HOUR_MS,
            ],
            max_clock_skew_ms: 120_000,
            replica_grace_ms: 15 * 60_000,
            link_alive_ms: LINK_ALIVE_MS,
        }
    }
}

impl Thresholds {
    /// Silence allowed for a facility kind.
    pub fn silent_after(&self, kind: FacilityKind) -> u64 {
        let i = FacilityKind::ALL
            .iter()
            .position(|k| *k == kind)
            .unwrap_or_default();
        self.silent_after_ms[i]
    }

    /// Parses `KIND=DURATION` (e.g. `stall=3d`, `library=90m`) and sets it.
    pub fn set_silent_after_text(&mut self, text: &str) -> Result<(), String> {
        let (kind, dur) = text
            .split_once('=')
            .ok_or_else(|| format!("{text:?}: write KIND=DURATION, e.g. library=6h"))?;
        let kind = FacilityKind::parse(kind.trim()).ok_or_else(|| {
            let names: Vec<&str> = FacilityKind::ALL.iter().map(|k| k.name()).collect();
            format!("{kind:?} is not a facility kind ({})", names.join(", "))
        })?;
        self.set_silent_after(kind, parse_duration_ms(dur.trim())?);
        Ok(())
    }

    /// Sets the silence allowed for a kind.
    pub fn set_silent_after(&mut self, kind: FacilityKind, ms: u64) {
        if let Some(i) = FacilityKind::ALL.iter().position(|k| *k == kind) {
            self.silent_after_ms[i] = ms;
        }
    }
}

/// Parses `90s`, `30m`, `6h` or `3d` into milliseconds.
pub fn parse_duration_ms(text: &str) -> Result<u64, String> {
    let bad = || format!("{text:?} is not a duration like 90s, 30m, 6h or 3d");
    let (n, unit) = text.split_at(text.find(|c: char| !c.is_ascii_digit()).ok_or_else(bad)?);
    let n: u64 = n.parse().map_err(|_| bad())?;
    let unit_ms = match unit {
        "s" => 1000,
        "m" => 60_000,
        "h" => HOUR_MS,
        "d" => 24 * HOUR_MS,
        _ => return Err(bad()),
    };
    n.checked_mul(unit_ms).filter(|ms| *ms > 0).ok_or_else(bad)
}

/// What holds for a node that an operator should act on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Alert {
    /// Not heard from for longer than its facility kind allows.
    Silent {
        /// Since when (last contact, or enrolment if never seen).
        since: UnixMillis,
        /// The limit that was passed.
        threshold_ms: u64,
    },
    /// Its clock differed from the hub's by more than the limit at its last Hello.
    ClockSkew {
        /// Node clock minus hub clock.
        skew_ms: i64,
        /// The limit.
        limit_ms: u64,
    },
    /// The hub refused some of its transactions in the last day.
    Rejections {
        /// How many (business rejections plus chain-level refusals).
        n: u64,
    },
    /// When last heard of, it still lacked facts issued well before.
    ReplicaBehind {
        /// When the oldest fact it lacks was issued.
        oldest_missing: UnixMillis,
    },
    /// It last synced a shard in an older epoch than the hub's current one
    /// (it has not picked up the base documents of the last compaction).
    ShardEpochBehind {
        /// The shard.
        shard: String,
        /// The epoch it holds.
        held: u32,
        /// The hub's epoch.
        current: u32,
    },
    /// Spends it signed beyond its enrolled bounds are held in quarantine,
    /// waiting for an operator to release or reject them.
    Quarantine {
        /// How many spends are held.
        items: u64,
        /// Their points.
        points: u64,
    },
}

impl Alert {
    /// Stable machine name (API, metrics, CSS classes).
    pub fn name(&self) -> &'static str {
        match self {
            Alert::Silent { .. } => "silent",
            Alert::ClockSkew { .. } => "clock-skew",
            Alert::Rejections { .. } => "rejections",
            Alert::ReplicaBehind { .. } => "replica-behind",
            Alert::ShardEpochBehind { .. } => "shard-epoch-behind",
            Alert::Quarantine { .. } => "quarantine",
        }
    }
}

/// The overall state of a node, worst first.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Health {
    /// At least one alert holds.
    Alert,
    /// Enrolled, never seen, and not yet past its silence limit.
    NeverSeen,
    /// Its key was revoked (no alerts are raised for it).
    Revoked,
    /// Nothing to do.
    Healthy,
}

impl Health {
    /// Every state, worst first.
    pub const ALL: [Health; 4] = [
        Health::Alert,
        Health::NeverSeen,
        Health::Revoked,
        Health::Healthy,
    ];
    /// Stable machine name.
    pub fn name(self) -> &'static str {
        match self {
            Health::Alert => "alert",
            Health::NeverSeen => "never-seen",
            Health::Revoked => "revoked",
            Health::Healthy => "healthy",
        }
    }
    /// Parses [`Health::name`].
    pub fn parse(text: &str) -> Option<Health> {
        Health::ALL.into_iter().find(|h| h.name() == text)
    }
}

/// What the hub recorded of one node, as [`assess`] needs it.
#[derive(Clone, Debug)]
pub struct NodeFacts<'a> {
    /// The status row.
    pub status: &'a NodeStatus,
    /// Its facility's kind (`None` if the registry lost it: treated as the strictest).
    pub kind: Option<FacilityKind>,
    /// Its links that were up in the window.
    pub links: &'a [LinkSpan],
    /// Refusals (business and chain level) in the window.
    pub refusals_in_window: u64,
    /// Issue time of the oldest fact for it after the cursor it last reported
    /// (at Hello or in a pull).
    pub oldest_missing_fact: Option<UnixMillis>,
    /// The shard epochs it last synced (at its latest shard sync to this
    /// process), each with the hub's current epoch of that shard.
    pub shard_epochs: &'a [ShardEpochHeld],
    /// Its spends held in quarantine now.
    pub quarantine_held: Sum,
}

/// A shard epoch a node holds, beside the hub's current one.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ShardEpochHeld {
    /// The shard (its display form, e.g. `muni:131059/0`).
    pub shard: String,
    /// The epoch the node last synced.
    pub held: u32,
    /// The hub's current epoch of the shard.
    pub current: u32,
}

/// The verdict on one node.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Assessment {
    /// A link is open and was confirmed recently.
    pub connected: bool,
    /// The last time the hub heard from it (Hello, push, or a live link).
    pub last_contact: Option<UnixMillis>,
    /// Share of the window (since enrolment, if later) its link was up, in permille.
    pub reachable_permille: u32,
    /// Sessions it opened in the window.
    pub sessions_in_window: u32,
    /// The alerts that hold.
    pub alerts: Vec<Alert>,
    /// Overall.
    pub health: Health,
}

/// Decides a node's state at `now`.
pub fn assess(f: &NodeFacts<'_>, th: &Thresholds, now: UnixMillis) -> Assessment {
    let s = f.status;
    let from = UnixMillis(now.0.saturating_sub(WINDOW_MS));
    let connected = f
        .links
        .iter()
        .any(|l| l.closed_at.is_none() && now.0.saturating_sub(l.seen_at.0) <= th.link_alive_ms);
    let last_link = f.links.iter().map(|l| l.seen_at).max();
    let last_contact = match (s.last_contact.as_ref().map(|c| c.at), last_link) {
        (a, b) if connected => Some(now.max(a.unwrap_or(now)).max(b.unwrap_or(now))),
        (Some(a), Some(b)) => Some(a.max(b)),
        (a, b) => a.or(b),
    };
    // Over the part of the window the node existed: a node enrolled an hour
    // ago and up since is 100% reachable, not 4%.
    let counted_from = from.max(s.node.enrolled_at);
    let reachable_permille = reachable_permille(f.links, counted_from, now, th.link_alive_ms);
    let sessions_in_window = f.links.iter().filter(|l| l.opened_at >= from).count() as u32;

    let mut alerts = vec![];
    if s.node.is_revoked() {
        return Assessment {
            connected,
            last_contact,
            reachable_permille,
            sessions_in_window,
            alerts,
            health: Health::Revoked,
        };
    }
    let limit = f.kind.map_or_else(
        || th.silent_after_ms.iter().copied().min().unwrap_or(0),
        |k| th.silent_after(k),
    );
    let since = last_contact.unwrap_or(s.node.enrolled_at);
    if !connected && now.0.saturating_sub(since.0) > limit {
        alerts.push(Alert::Silent {
            since,
            threshold_ms: limit,
        });
    }
    if let Some(c) = &s.last_contact
        && c.clock_skew_ms.unsigned_abs() > th.max_clock_skew_ms
    {
        alerts.push(Alert::ClockSkew {
            skew_ms: c.clock_skew_ms,
            limit_ms: th.max_clock_skew_ms,
        });
    }
    if f.refusals_in_window > 0 {
        alerts.push(Alert::Rejections {
            n: f.refusals_in_window,
        });
    }
    if let (Some(issued), Some(seen)) = (f.oldest_missing_fact, last_contact)
        && seen.0.saturating_sub(issued.0) > th.replica_grace_ms
    {
        alerts.push(Alert::ReplicaBehind {
            oldest_missing: issued,
        });
    }
    if let Some(e) = f.shard_epochs.iter().find(|e| e.held < e.current) {
        alerts.push(Alert::ShardEpochBehind {
            shard: e.shard.clone(),
            held: e.held,
            current: e.current,
        });
    }
    if f.quarantine_held.items > 0 {
        alerts.push(Alert::Quarantine {
            items: f.quarantine_held.items,
            points: f.quarantine_held.points,
        });
    }
    let health = if !alerts.is_empty() {
        Health::Alert
    } else if last_contact.is_none() {
        Health::NeverSeen
    } else {
        Health::Healthy
    };
    Assessment {
        connected,
        last_contact,
        reachable_permille,
        sessions_in_window,
        alerts,
        health,
    }
}

/// Share of `[from, now]` covered by the links, in permille. A closed link
/// covers `[opened, closed]`; an open one up to `now` while it is confirmed
/// within `alive_ms`, else up to its last confirmation.
///
/// A node heard from in the window reads at least 1 ‰ (0.1 %), however
/// short its sessions: a probe of a second in a day is 0.001 %, and
/// "0.0 %" beside "last contact 0 s ago" would say it was never there.
pub fn reachable_permille(
    links: &[LinkSpan],
    from: UnixMillis,
    now: UnixMillis,
    alive_ms: u64,
) -> u32 {
    let window = now.0.saturating_sub(from.0);
    if window == 0 {
        return 0;
    }
    let mut spans: Vec<(u64, u64)> = links
        .iter()
        .filter_map(|l| {
            let end = match l.closed_at {
                Some(c) => c.0,
                None if now.0.saturating_sub(l.seen_at.0) <= alive_ms => now.0,
                None => l.seen_at.0,
            };
            // A link opened after the read's instant (a Hello committed
            // while the snapshot was being taken) is there at `now`.
            let a = l.opened_at.0.clamp(from.0, now.0);
            let b = end.min(now.0);
            (end >= from.0 && b >= a).then_some((a, b))
        })
        .collect();
    let heard = !spans.is_empty();
    spans.sort_unstable();
    let mut covered = 0u64;
    let mut cur: Option<(u64, u64)> = None;
    for (a, b) in spans {
        match cur {
            Some((ca, cb)) if a <= cb => cur = Some((ca, cb.max(b))),
            Some((ca, cb)) => {
                covered += cb - ca;
                cur = Some((a, b));
            }
            None => cur = Some((a, b)),
        }
    }
    if let Some((a, b)) = cur {
        covered += b - a;
    }
    let permille = ((u128::from(covered) * 1000 / u128::from(window)) as u32).min(1000);
    if heard { permille.max(1) } else { permille }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{ChainHead, NodeContact, NodePolicy, NodeRecord};
    use mykey_sync_proto::{FacilityId, MunicipalityCode, NodeId, Points};

    const NOW: UnixMillis = UnixMillis(1_800_000_000_000);

    fn node_id() -> NodeId {
        NodeId::from_bytes(
            ed25519_dalek::SigningKey::from_bytes(&[7; 32])
                .verifying_key()
                .to_bytes(),
        )
        .unwrap()
    }

    fn status(contact_ago_ms: Option<u64>, skew_ms: i64) -> NodeStatus {
        NodeStatus {
            node: NodeRecord {
                id: node_id(),
                facility: FacilityId::parse("lib-1").unwrap(),
                municipality: MunicipalityCode::parse("131059").unwrap(),
                policy: NodePolicy {
                    allowed_ops: vec![],
                    per_card_offline_limit: Points::ZERO,
                    node_exposure_limit: Points::ZERO,
                    offline_voucher_cap: Points::ZERO,
                    pin_threshold: Points::ZERO,
                    valid_until: UnixMillis(NOW.0 + WINDOW_MS),
                },
                enrolled_at: UnixMillis(NOW.0 - 30 * WINDOW_MS),
                revoked_at: None,
            },
            chain: ChainHead::EMPTY,
            last_contact: contact_ago_ms.map(|ago| NodeContact {
                at: UnixMillis(NOW.0 - ago),
                clock_skew_ms: skew_ms,
                software: "mykey-node/0.1.0".into(),
                reported_last_seq: 0,
                fact_cursor: 0,
            }),
            n_rejected: 0,
            n_incidents: 0,
            pending_since: None,
        }
    }

    fn link(opened_ago: u64, seen_ago: u64, closed_ago: Option<u64>) -> LinkSpan {
        LinkSpan {
            node: node_id(),
            opened_at: UnixMillis(NOW.0 - opened_ago),
            seen_at: UnixMillis(NOW.0 - seen_ago),
            closed_at: closed_ago.map(|c| UnixMillis(NOW.0 - c)),
            hello_last_seq: 0,
        }
    }

    #[test]
    fn durations_and_kind_limits_parse() {
        let cases = [
            ("90s", Ok(90_000)),
            ("30m", Ok(1_800_000)),
            ("6h", Ok(6 * HOUR_MS)),
            ("3d", Ok(72 * HOUR_MS)),
        ];
        for (text, want) in cases {
            assert_eq!(parse_duration_ms(text), want);
        }
        for bad in ["", "6", "h", "0h", "6w", "-1h", "99999999999999999d"] {
            assert!(parse_duration_ms(bad).is_err(), "{bad}");
        }
        let mut th = Thresholds::default();
        th.set_silent_after_text("stall=5d").unwrap();
        assert_eq!(th.silent_after(FacilityKind::Stall), 120 * HOUR_MS);
        assert!(th.set_silent_after_text("castle=1h").is_err());
        assert!(th.set_silent_after_text("library").is_err());
    }

    #[test]
    fn reachability_merges_overlaps_and_clips_to_the_window() {
        let h = HOUR_MS;
        let cases: &[(&[LinkSpan], u32)] = &[
            (&[], 0),
            // Open and confirmed a minute ago: counts up to now.
            (&[link(48 * h, 60_000, None)], 1000),
            // Open but unconfirmed for an hour: counts to its last sighting.
            (&[link(13 * h, h, None)], 500),
            // Two overlapping closed spans: 6 h.
            (
                &[
                    link(12 * h, 8 * h, Some(8 * h)),
                    link(10 * h, 6 * h, Some(6 * h)),
                ],
                250,
            ),
        ];
        for (links, want) in cases {
            let from = UnixMillis(NOW.0 - WINDOW_MS);
            assert_eq!(
                reachable_permille(links, from, NOW, 180_000),
                *want,
                "{links:?}"
            );
        }
    }

    #[test]
    fn alerts_by_case() {
        let th = Thresholds::default();
        let h = HOUR_MS;
        let live = [link(2 * h, 30_000, None)];
        // (contact ago, skew, links, refusals, oldest missing fact ago, kind, alerts, health)
        type Case<'a> = (
            Option<u64>,
            i64,
            &'a [LinkSpan],
            u64,
            Option<u64>,
            FacilityKind,
            Vec<&'static str>,
            Health,
        );
        let cases: Vec<Case<'_>> = vec![
            (
                Some(2 * h),
                0,
                &live,
                0,
                None,
                FacilityKind::Library,
                vec![],
                Health::Healthy,
            ),
            (
                Some(7 * h),
                0,
                &[],
                0,
                None,
                FacilityKind::Library,
                vec!["silent"],
                Health::Alert,
            ),
            // A stall may be offline longer.
            (
                Some(7 * h),
                0,
                &[],
                0,
                None,
                FacilityKind::Stall,
                vec![],
                Health::Healthy,
            ),
            (
                Some(2 * h),
                300_000,
                &live,
                0,
                None,
                FacilityKind::Shop,
                vec!["clock-skew"],
                Health::Alert,
            ),
            (
                Some(2 * h),
                -300_000,
                &live,
                2,
                None,
                FacilityKind::Shop,
                vec!["clock-skew", "rejections"],
                Health::Alert,
            ),
            // A fact issued three hours ago is still missing.
            (
                Some(2 * h),
                0,
                &live,
                0,
                Some(3 * h),
                FacilityKind::Museum,
                vec!["replica-behind"],
                Health::Alert,
            ),
            // A fact issued five minutes ago is in flight, not behind.
            (
                Some(2 * h),
                0,
                &live,
                0,
                Some(5 * 60_000),
                FacilityKind::Museum,
                vec![],
                Health::Healthy,
            ),
            // Never seen since enrolment 30 days ago: silent.
            (
                None,
                0,
                &[],
                0,
                None,
                FacilityKind::Stall,
                vec!["silent"],
                Health::Alert,
            ),
        ];
        for (ago, skew, links, refusals, missing, kind, want, health) in cases {
            let s = status(ago, skew);
            let f = NodeFacts {
                status: &s,
                kind: Some(kind),
                links,
                refusals_in_window: refusals,
                oldest_missing_fact: missing.map(|m| UnixMillis(NOW.0 - m)),
                shard_epochs: &[],
                quarantine_held: Sum::default(),
            };
            let a = assess(&f, &th, NOW);
            let names: Vec<&str> = a.alerts.iter().map(Alert::name).collect();
            assert_eq!(names, want, "{ago:?} {skew} {kind}");
            assert_eq!(a.health, health, "{ago:?} {skew} {kind}");
        }
    }

    #[test]
    fn a_connected_node_is_never_silent_and_its_last_contact_is_now() {
        let s = status(Some(40 * HOUR_MS), 0);
        let links = [link(40 * HOUR_MS, 10_000, None)];
        let f = NodeFacts {
            status: &s,
            kind: Some(FacilityKind::Library),
            links: &links,
            refusals_in_window: 0,
            oldest_missing_fact: None,
            shard_epochs: &[],
            quarantine_held: Sum::default(),
        };
        let a = assess(&f, &Thresholds::default(), NOW);
        assert!(a.connected);
        assert_eq!(a.last_contact, Some(NOW));
        assert_eq!(a.health, Health::Healthy);
        assert_eq!(a.reachable_permille, 1000);
        assert_eq!(a.sessions_in_window, 0);
    }

    /// "Last contact 0 s ago" beside "reachable (24 h) 0.0%": a node back
    /// after a day away whose session is seconds long (or whose link the
    /// serving loop's late close bookkeeping ended at once, see
    /// `StatusTx::close_link`) covered too little of the day to show, and
    /// the permille rounded it to nothing. Whatever the records, the three
    /// figures must agree: heard from in the window means reachable > 0;
    /// connected means never silent; silent means not heard from lately.
    #[test]
    fn last_contact_reachability_and_alerts_agree() {
        let th = Thresholds::default();
        let s_ago = 1000;
        // (what, contact ago, links)
        let cases: Vec<(&str, Option<u64>, Vec<LinkSpan>)> = vec![
            (
                "a two-second session just now after a day away",
                Some(3 * s_ago),
                vec![link(3 * s_ago, s_ago, Some(s_ago))],
            ),
            (
                "a Hello whose link was closed as it opened",
                Some(0),
                vec![link(0, 0, Some(0))],
            ),
            (
                "a Hello committed after the read's instant",
                Some(0),
                vec![LinkSpan {
                    node: node_id(),
                    opened_at: UnixMillis(NOW.0 + 5),
                    seen_at: UnixMillis(NOW.0 + 5),
                    closed_at: None,
                    hello_last_seq: 0,
                }],
            ),
            (
                "connected for ten seconds",
                Some(10 * s_ago),
                vec![link(10 * s_ago, 10 * s_ago, None)],
            ),
            (
                "connected all day",
                Some(30 * HOUR_MS),
                vec![link(30 * HOUR_MS, 20 * s_ago, None)],
            ),
            ("silent for two days", Some(48 * HOUR_MS), vec![]),
            (
                "a short session seven hours ago",
                Some(7 * HOUR_MS),
                vec![link(
                    7 * HOUR_MS,
                    7 * HOUR_MS - 2000,
                    Some(7 * HOUR_MS - 2000),
                )],
            ),
        ];
        for (what, ago, links) in cases {
            let s = status(ago, 0);
            let f = NodeFacts {
                status: &s,
                kind: Some(FacilityKind::Library),
                links: &links,
                refusals_in_window: 0,
                oldest_missing_fact: None,
                shard_epochs: &[],
                quarantine_held: Sum::default(),
            };
            let a = assess(&f, &th, NOW);
            let heard_in_window = a
                .last_contact
                .is_some_and(|t| NOW.0.saturating_sub(t.0) < WINDOW_MS);
            let silent = a.alerts.iter().any(|x| matches!(x, Alert::Silent { .. }));
            assert_eq!(
                heard_in_window,
                a.reachable_permille > 0,
                "{what}: last contact {:?}, reachable {} ‰",
                a.last_contact,
                a.reachable_permille
            );
            if a.connected {
                assert!(a.reachable_permille > 0 && !silent, "{what}: {a:?}");
                assert_eq!(
                    a.last_contact,
                    Some(NOW.max(a.last_contact.unwrap())),
                    "{what}"
                );
            }
            if silent {
                let since = NOW.0 - a.last_contact.map_or(0, |t| t.0);
                assert!(
                    !a.connected && since > th.silent_after(FacilityKind::Library),
                    "{what}: {a:?}"
                );
            }
        }
    }

    #[test]
    fn a_node_an_epoch_behind_raises_an_alert() {
        let s = status(Some(60_000), 0);
        let held = |h, c| ShardEpochHeld {
            shard: "muni:131059/0".into(),
            held: h,
            current: c,
        };
        for (epochs, want) in [
            (vec![held(1, 1)], vec![]),
            (vec![held(1, 1), held(0, 1)], vec!["shard-epoch-behind"]),
            (vec![], vec![]),
        ] {
            let f = NodeFacts {
                status: &s,
                kind: Some(FacilityKind::Library),
                links: &[],
                refusals_in_window: 0,
                oldest_missing_fact: None,
                shard_epochs: &epochs,
                quarantine_held: Sum::default(),
            };
            let a = assess(&f, &Thresholds::default(), NOW);
            let names: Vec<&str> = a.alerts.iter().map(Alert::name).collect();
            assert_eq!(names, want, "{epochs:?}");
        }
    }

    #[test]
    fn a_revoked_node_raises_nothing() {
        let mut s = status(Some(400 * HOUR_MS), 900_000);
        s.node.revoked_at = Some(UnixMillis(NOW.0 - HOUR_MS));
        let f = NodeFacts {
            status: &s,
            kind: Some(FacilityKind::Library),
            links: &[],
            refusals_in_window: 3,
            oldest_missing_fact: None,
            shard_epochs: &[],
            quarantine_held: Sum::default(),
        };
        let a = assess(&f, &Thresholds::default(), NOW);
        assert_eq!(a.health, Health::Revoked);
        assert!(a.alerts.is_empty());
    }

    #[test]
    fn held_spends_raise_an_alert_until_decided() {
        let s = status(Some(60_000), 0);
        for (held, want) in [
            (Sum::default(), vec![]),
            (
                Sum {
                    items: 2,
                    points: 12_000_000,
                },
                vec!["quarantine"],
            ),
        ] {
            let f = NodeFacts {
                status: &s,
                kind: Some(FacilityKind::Shop),
                links: &[],
                refusals_in_window: 0,
                oldest_missing_fact: None,
                shard_epochs: &[],
                quarantine_held: held,
            };
            let a = assess(&f, &Thresholds::default(), NOW);
            let names: Vec<&str> = a.alerts.iter().map(Alert::name).collect();
            assert_eq!(names, want, "{held:?}");
            if let [Alert::Quarantine { items, points }] = a.alerts[..] {
                assert_eq!((items, points), (2, 12_000_000));
                assert_eq!(a.health, Health::Alert);
            }
        }
    }
}
