//! The status history: what the hub knew of each node, one sample per slot
//! (five minutes), kept a week in the store, so the dashboard's charts and
//! `GET /api/nodes/{id}/history` survive a restart of the hub.
//!
//! - [`Hub::sample_history`]: the serving hub's timed job (`ticks.rs`, with
//!   the minute's jobs) samples the slot that ended last, once: a slot
//!   already sampled, or one that ended while no hub ran, is left as it is,
//!   so a hub that was down leaves a gap, not invented values.
//! - [`samples_of`]: the pure step from the hub's records to samples.
//! - [`series`]: the pure step from samples to one chart's buckets, where a
//!   bucket with nothing known is `None` (drawn as a gap, never joined).
//!
//! Size: one row per node per slot, about 70 bytes in SQLite, 2,016 slots a
//! week: about 140 KiB per node per week (the store's test
//! `history_size_per_node_per_week` holds it under 160 KiB), pruned past
//! [`KEEP_MS`].

use super::assess::{HOUR_MS, Thresholds, reachable_permille};
use crate::hub::Hub;
use crate::model::NodeStatus;
use crate::store::StoreError;
use crate::store::history::HistorySample;
use crate::store::status::LinkSpan;
use mykey_sync_proto::{NodeId, UnixMillis};
use std::collections::HashMap;

/// One slot: a sample per node per slot.
pub const SLOT_MS: u64 = 5 * 60_000;
/// How long samples are kept.
pub const KEEP_MS: u64 = 7 * 24 * HOUR_MS;
/// Samples read at most at once (a week of 250 nodes).
pub const MAX_SAMPLES: u32 = 2016 * 250;
/// Links read per sample at most.
const MAX_LINKS: u32 = 200_000;

/// The windows the charts and the API show.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Window {
    /// The last 24 hours, in 5-minute buckets.
    Day,
    /// The last 7 days, in 30-minute buckets.
    Week,
}

impl Window {
    /// Both, shortest first.
    pub const ALL: [Window; 2] = [Window::Day, Window::Week];

    /// `24h` or `7d`.
    pub fn name(self) -> &'static str {
        match self {
            Window::Day => "24h",
            Window::Week => "7d",
        }
    }

    /// Parses [`Window::name`]; anything else is an error that says what to write.
    pub fn parse(text: &str) -> Result<Window, String> {
        Window::ALL
            .into_iter()
            .find(|w| w.name() == text)
            .ok_or_else(|| format!("window {text:?} is not known: write window=24h or window=7d"))
    }

    /// Its length.
    pub fn ms(self) -> u64 {
        match self {
            Window::Day => 24 * HOUR_MS,
            Window::Week => KEEP_MS,
        }
    }

    /// A chart's bucket: a slot for a day, half an hour for a week (336
    /// buckets, each a few pixels wide).
    pub fn bucket_ms(self) -> u64 {
        match self {
            Window::Day => SLOT_MS,
            Window::Week => 6 * SLOT_MS,
        }
    }

    /// `[from, to)` of the window ending with the bucket that holds `now`.
    pub fn range(self, now: UnixMillis) -> (UnixMillis, UnixMillis) {
        let b = self.bucket_ms();
        let to = (now.0 / b + 1) * b;
        (UnixMillis(to.saturating_sub(self.ms())), UnixMillis(to))
    }
}

/// What a chart shows.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Metric {
    /// Share of the time the link was up, in percent.
    Reachable,
    /// Transactions signed and not yet processed by the hub.
    Unconfirmed,
    /// How long the oldest of them had waited, in milliseconds.
    OldestUnconfirmed,
    /// Refusals of its transactions.
    Refusals,
    /// Node clock minus hub clock at its last Hello, in milliseconds.
    ClockSkew,
}

impl Metric {
    /// Every metric, in the order the pages show them.
    pub const ALL: [Metric; 5] = [
        Metric::Reachable,
        Metric::Unconfirmed,
        Metric::OldestUnconfirmed,
        Metric::Refusals,
        Metric::ClockSkew,
    ];

    /// Stable machine name (data attributes, CSS classes).
    pub fn name(self) -> &'static str {
        match self {
            Metric::Reachable => "reachable",
            Metric::Unconfirmed => "unconfirmed",
            Metric::OldestUnconfirmed => "oldest-unconfirmed",
            Metric::Refusals => "refusals",
            Metric::ClockSkew => "clock-skew",
        }
    }

    /// One node's value in one sample: `None` where the node was down the
    /// whole slot, for the figures only a link reports (its backlog and
    /// clock as last heard are stale then, not measured).
    fn of(self, s: &HistorySample) -> Option<f64> {
        let up = s.up_permille > 0;
        match self {
            Metric::Reachable => Some(f64::from(s.up_permille) / 10.0),
            Metric::Refusals => Some(s.refusals as f64),
            Metric::Unconfirmed => up.then_some(s.unconfirmed as f64),
            Metric::OldestUnconfirmed => up.then(|| s.oldest_unconfirmed_ms.unwrap_or(0) as f64),
            Metric::ClockSkew => s.clock_skew_ms.filter(|_| up).map(|v| v as f64),
        }
    }

    /// Several values into one: nodes in one slot, or slots in one bucket.
    fn combine(self, values: &[f64], across_nodes: bool) -> f64 {
        let sum: f64 = values.iter().sum();
        let max_abs = values
            .iter()
            .copied()
            .fold(0.0, |m: f64, v| if v.abs() > m.abs() { v } else { m });
        match self {
            // The share of node-time up.
            Metric::Reachable => sum / values.len().max(1) as f64,
            // A municipality's backlog is its nodes' together; over time, the peak.
            Metric::Unconfirmed if across_nodes => sum,
            Metric::Refusals => sum,
            Metric::Unconfirmed | Metric::OldestUnconfirmed | Metric::ClockSkew => max_abs,
        }
    }
}

/// One chart's values: a bucket each, `None` where nothing is known.
#[derive(Clone, Debug, PartialEq)]
pub struct Series {
    /// What it shows.
    pub metric: Metric,
    /// The first bucket's start.
    pub from: UnixMillis,
    /// A bucket's length.
    pub bucket_ms: u64,
    /// One value per bucket.
    pub values: Vec<Option<f64>>,
    /// Per bucket: some sample fell in it (a `None` value in a sampled
    /// bucket means the node was down; in an unsampled one, no hub ran).
    pub sampled: Vec<bool>,
}

/// `samples` (of one node, or of every node of a group) as the series of
/// `metric` over `[from, to)` in buckets of `bucket_ms`.
pub fn series<'a>(
    samples: impl IntoIterator<Item = &'a HistorySample>,
    metric: Metric,
    from: UnixMillis,
    to: UnixMillis,
    bucket_ms: u64,
) -> Series {
    let bucket_ms = bucket_ms.max(1);
    let n = usize::try_from(to.0.saturating_sub(from.0).div_ceil(bucket_ms)).unwrap_or(0);
    // Per slot, the nodes' values together; then per bucket, the slots'.
    let mut slots: std::collections::BTreeMap<u64, Vec<f64>> = Default::default();
    let mut sampled = vec![false; n];
    for s in samples {
        if s.slot < from || s.slot >= to {
            continue;
        }
        let i = ((s.slot.0 - from.0) / bucket_ms) as usize;
        sampled[i] = true;
        let v = slots.entry(s.slot.0).or_default();
        if let Some(x) = metric.of(s) {
            v.push(x);
        }
    }
    let mut buckets: Vec<Vec<f64>> = vec![vec![]; n];
    for (slot, vs) in slots {
        if !vs.is_empty() {
            let i = ((slot - from.0) / bucket_ms) as usize;
            buckets[i].push(metric.combine(&vs, true));
        }
    }
    Series {
        metric,
        from,
        bucket_ms,
        values: buckets
            .iter()
            .map(|vs| (!vs.is_empty()).then(|| metric.combine(vs, false)))
            .collect(),
        sampled,
    }
}

/// The samples of slot `[slot, slot + span_ms)`, taken at `now` (at or
/// after the slot's end) from the nodes' status rows and the links up in it;
/// `previous` holds each node's refusal total at its previous sample (a
/// node with none counts no refusals this time). Revoked nodes and nodes
/// enrolled after the slot are left out.
pub fn samples_of(
    statuses: &[NodeStatus],
    links: &[LinkSpan],
    previous: &HashMap<NodeId, u64>,
    slot: UnixMillis,
    span_ms: u32,
    now: UnixMillis,
    alive_ms: u64,
) -> Vec<HistorySample> {
    let end = UnixMillis(slot.0 + u64::from(span_ms));
    // Only links up inside the slot: one opened after it ended (before the
    // sample was taken) or closed as it began says nothing of it.
    let mut by_node: HashMap<NodeId, Vec<LinkSpan>> = HashMap::new();
    for l in links
        .iter()
        .filter(|l| l.opened_at < end && l.closed_at.is_none_or(|c| c > slot) && l.seen_at >= slot)
    {
        by_node.entry(l.node).or_default().push(l.clone());
    }
    statuses
        .iter()
        .filter(|s| !s.node.is_revoked() && s.node.enrolled_at < end)
        .map(|s| {
            let id = s.node.id;
            let node_links = by_node.get(&id).map_or(&[][..], Vec::as_slice);
            let total = s.n_rejected + s.n_incidents;
            HistorySample {
                node: id,
                slot,
                span_ms,
                up_permille: reachable_permille(node_links, slot, end, alive_ms) as u16,
                unconfirmed: s.n_unconfirmed(),
                oldest_unconfirmed_ms: s.pending_since.map(|t| now.0.saturating_sub(t.0)),
                refusals: previous.get(&id).map_or(0, |p| total.saturating_sub(*p)),
                refusals_total: total,
                clock_skew_ms: s.last_contact.as_ref().map(|c| c.clock_skew_ms),
            }
        })
        .collect()
}

impl Hub {
    /// Samples every node for the slot that ended last before `now`, unless
    /// that slot (or a later one) is sampled already, and forgets samples
    /// older than [`KEEP_MS`]; one storage transaction. Returns how many
    /// samples were written.
    pub fn sample_history(&mut self, now: UnixMillis) -> Result<u64, StoreError> {
        let Some(slot) = (now.0 / SLOT_MS)
            .checked_sub(1)
            .map(|k| UnixMillis(k * SLOT_MS))
        else {
            return Ok(0);
        };
        let mut st = self.store.begin()?;
        let latest = st.latest_history_slot()?;
        if latest.is_some_and(|l| l >= slot) {
            return Ok(0);
        }
        let previous: HashMap<NodeId, u64> = match latest {
            Some(l) => st
                .history(None, l, UnixMillis(l.0 + 1), MAX_SAMPLES)?
                .into_iter()
                .map(|s| (s.node, s.refusals_total))
                .collect(),
            None => HashMap::new(),
        };
        let statuses = st.node_statuses()?;
        let links = st.links_since(None, slot, MAX_LINKS)?;
        let samples = samples_of(
            &statuses,
            &links,
            &previous,
            slot,
            SLOT_MS as u32,
            now,
            Thresholds::default().link_alive_ms,
        );
        let n = st.insert_history(&samples)?;
        st.prune_history(UnixMillis(now.0.saturating_sub(KEEP_MS)))?;
        st.commit()?;
        Ok(n)
    }

    /// Samples of slots in `[from, to)` (of one node, or all), oldest first;
    /// past [`MAX_SAMPLES`] the oldest are left out (and a warning logged),
    /// so the charts' recent end is always whole.
    pub fn status_history(
        &mut self,
        node: Option<&NodeId>,
        from: UnixMillis,
        to: UnixMillis,
    ) -> Result<Vec<HistorySample>, StoreError> {
        let samples = self
            .store
            .begin_read()?
            .history(node, from, to, MAX_SAMPLES)?;
        if samples.len() >= MAX_SAMPLES as usize {
            tracing::warn!(
                from = from.0,
                "status history read cut at {MAX_SAMPLES} samples: the charts start later than asked"
            );
        }
        Ok(samples)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(b: u8) -> NodeId {
        NodeId::from_bytes(
            ed25519_dalek::SigningKey::from_bytes(&[b; 32])
                .verifying_key()
                .to_bytes(),
        )
        .unwrap()
    }

    fn sample(n: u8, slot: u64, up: u16, unconfirmed: u64) -> HistorySample {
        HistorySample {
            node: node(n),
            slot: UnixMillis(slot * SLOT_MS),
            span_ms: SLOT_MS as u32,
            up_permille: up,
            unconfirmed,
            oldest_unconfirmed_ms: (unconfirmed > 0).then_some(60_000),
            refusals: 0,
            refusals_total: 0,
            clock_skew_ms: Some(-1500),
        }
    }

    #[test]
    fn a_node_down_or_unsampled_is_a_gap_and_reachability_says_which() {
        // Slots 0..6: up, up, down, (no sample), up, up.
        let s = [
            sample(1, 0, 1000, 3),
            sample(1, 1, 1000, 4),
            sample(1, 2, 0, 4),
            sample(1, 4, 500, 2),
            sample(1, 5, 1000, 0),
        ];
        let to = UnixMillis(6 * SLOT_MS);
        let u = series(&s, Metric::Unconfirmed, UnixMillis(0), to, SLOT_MS);
        assert_eq!(
            u.values,
            [Some(3.0), Some(4.0), None, None, Some(2.0), Some(0.0)]
        );
        assert_eq!(u.sampled, [true, true, true, false, true, true]);
        let r = series(&s, Metric::Reachable, UnixMillis(0), to, SLOT_MS);
        assert_eq!(
            r.values,
            [
                Some(100.0),
                Some(100.0),
                Some(0.0),
                None,
                Some(50.0),
                Some(100.0)
            ]
        );
        let k = series(&s, Metric::ClockSkew, UnixMillis(0), to, SLOT_MS);
        assert_eq!(k.values[2], None);
        assert_eq!(k.values[0], Some(-1500.0));
    }

    #[test]
    fn a_group_sums_backlogs_and_averages_reachability_and_buckets_take_the_peak() {
        let s = [
            sample(1, 0, 1000, 3),
            sample(2, 0, 0, 50),
            sample(1, 1, 1000, 5),
            sample(2, 1, 1000, 7),
        ];
        let to = UnixMillis(2 * SLOT_MS);
        let u = series(&s, Metric::Unconfirmed, UnixMillis(0), to, SLOT_MS);
        // Slot 0: node 2 is down, its stale 50 is not counted.
        assert_eq!(u.values, [Some(3.0), Some(12.0)]);
        let r = series(&s, Metric::Reachable, UnixMillis(0), to, SLOT_MS);
        assert_eq!(r.values, [Some(50.0), Some(100.0)]);
        let one = series(&s, Metric::Unconfirmed, UnixMillis(0), to, 2 * SLOT_MS);
        assert_eq!(one.values, [Some(12.0)]);
    }

    #[test]
    fn windows_parse_and_end_with_the_current_bucket() {
        assert_eq!(Window::parse("24h"), Ok(Window::Day));
        assert_eq!(Window::parse("7d"), Ok(Window::Week));
        assert!(Window::parse("1y").unwrap_err().contains("window=24h"));
        let now = UnixMillis(10 * 24 * HOUR_MS + 7 * 60_000);
        let (from, to) = Window::Day.range(now);
        assert_eq!(to.0, 10 * 24 * HOUR_MS + SLOT_MS * 2);
        assert_eq!(to.0 - from.0, 24 * HOUR_MS);
        let (from, to) = Window::Week.range(now);
        assert_eq!(to.0 % Window::Week.bucket_ms(), 0);
        assert_eq!(to.0 - from.0, KEEP_MS);
    }
}
