//! What a run measured: counters, reconciliation lag, debt against its bound,
//! and time series for the chart. Summaries of many seeds add up.

use crate::clock::SimTime;
use std::collections::BTreeMap;

/// One sample of the time series.
#[derive(Clone, Copy, Debug, Default)]
pub struct Sample {
    /// When (global).
    pub t: SimTime,
    /// Sum of all holders' confirmed balances at the hub.
    pub hub_balances: u64,
    /// Sum of all holders' debt at the hub.
    pub hub_debt: u64,
    /// Holders' points the hub holds in escrow for stalls' rights (strict
    /// mode; not in `hub_balances`).
    pub hub_reserved: u64,
    /// Signed transactions without a receipt at their node, over all nodes.
    pub pending: u64,
    /// Median reconciliation lag of transactions the hub processed since the
    /// previous sample, ms (0 if none).
    pub lag_p50_ms: u64,
    /// Nodes whose WAN link is up.
    pub nodes_linked: u64,
}

/// What lying nodes tried and what the hub paid their facilities (one run,
/// or many added up).
#[derive(Clone, Debug, Default)]
pub struct LiarMetrics {
    /// Runs with a lying node.
    pub runs: u64,
    /// Lies tried, by kind.
    pub lies: BTreeMap<&'static str, u64>,
    /// Points its spends asked for.
    pub points_asked: u64,
    /// Transactions its key signed (its core, minted, the second machine).
    pub signed: u64,
    /// Of those, above the PIN threshold without a proof that verifies.
    pub unproven_signed: u64,
    /// Its transactions the hub rejected with a reason.
    pub rejected: u64,
    /// Its transactions refused at chain level (forks of the leaked key, …).
    pub chain_refused: u64,
    /// Debt the hub's receipts said its redeems created.
    pub debt_created: u64,
    /// Points the hub owes its facility for its transactions.
    pub paid: u64,
    /// Of those, debt-funded (`RedeemOnDebt`).
    pub paid_at_risk: u64,
    /// Its enrolled node exposure limit (the bound on `paid_at_risk`).
    pub exposure_bound: u64,
    /// The largest debt-funded payout on one card.
    pub worst_card_at_risk: u64,
    /// Its enrolled per-card offline limit (the bound on that).
    pub card_bound: u64,
    /// Paid for transactions above the threshold without a valid proof (must be 0).
    pub unproven_paid: u64,
    /// Its spends the hub holds in quarantine: items.
    pub quarantined_items: u64,
    /// And their points.
    pub quarantined: u64,
    /// Offers of the LAN peer outside the roster to honest stalls.
    pub rogue_offers: u64,
    /// Of those, refused by the stall as off-roster (must equal the offers).
    pub rogue_refused: u64,
    /// Honest redeems checked paid in full.
    pub honest_paid_in_full: u64,
}

impl LiarMetrics {
    fn absorb(&mut self, o: &LiarMetrics) {
        self.runs += o.runs;
        for (k, v) in &o.lies {
            *self.lies.entry(k).or_default() += v;
        }
        self.points_asked += o.points_asked;
        self.signed += o.signed;
        self.unproven_signed += o.unproven_signed;
        self.rejected += o.rejected;
        self.chain_refused += o.chain_refused;
        self.debt_created += o.debt_created;
        self.paid += o.paid;
        self.paid_at_risk += o.paid_at_risk;
        self.exposure_bound += o.exposure_bound;
        self.worst_card_at_risk = self.worst_card_at_risk.max(o.worst_card_at_risk);
        self.card_bound = self.card_bound.max(o.card_bound);
        self.unproven_paid += o.unproven_paid;
        self.rogue_offers += o.rogue_offers;
        self.rogue_refused += o.rogue_refused;
        self.quarantined_items += o.quarantined_items;
        self.quarantined += o.quarantined;
        self.honest_paid_in_full += o.honest_paid_in_full;
    }

    fn rows(&self, rows: &mut Vec<(String, String)>) {
        if self.runs == 0 {
            return;
        }
        let lies: Vec<String> = self.lies.iter().map(|(k, v)| format!("{k} {v}")).collect();
        rows.push((
            "lying node: runs / lies tried".into(),
            format!("{} / {}", self.runs, lies.join(", ")),
        ));
        rows.push((
            "  signed with its key (above threshold, no valid proof)".into(),
            format!(
                "{} ({}), asking {} pt",
                self.signed, self.unproven_signed, self.points_asked
            ),
        ));
        rows.push((
            "  hub: rejected / refused at chain level".into(),
            format!("{} / {}", self.rejected, self.chain_refused),
        ));
        rows.push((
            "  paid to its facility (debt-funded) vs bound".into(),
            format!(
                "{} pt ({} pt) vs {} pt exposure; worst card {} pt vs {} pt",
                self.paid,
                self.paid_at_risk,
                self.exposure_bound,
                self.worst_card_at_risk,
                self.card_bound
            ),
        ));
        rows.push((
            "  held in the hub's quarantine".into(),
            format!("{} items, {} pt", self.quarantined_items, self.quarantined),
        ));
        rows.push((
            "  paid without a valid proof above threshold".into(),
            format!("{} pt", self.unproven_paid),
        ));
        rows.push((
            "  honest redeems paid in full".into(),
            format!("{}", self.honest_paid_in_full),
        ));
        rows.push((
            "  LAN peer outside the roster: offers / refused as off-roster".into(),
            format!("{} / {}", self.rogue_offers, self.rogue_refused),
        ));
    }
}

/// Counters of one run (or of many, added up).
#[derive(Clone, Debug, Default)]
pub struct Metrics {
    /// Seeds summed in.
    pub runs: u64,
    /// Transactions signed, by kind.
    pub signed: BTreeMap<&'static str, u64>,
    /// Lookups answered.
    pub lookups: u64,
    /// Redemptions asked for.
    pub redeem_asked: u64,
    /// Redemptions declined, by reason.
    pub declines: BTreeMap<String, u64>,
    /// Operations that could not start (node down, card pulled, PIN locked).
    pub aborted: BTreeMap<&'static str, u64>,
    /// Debt the hub created from offline spends.
    pub debt_created: u64,
    /// The bound on that debt (sum of the offline limits that allowed it).
    pub debt_bound: u64,
    /// Transactions the hub rejected with a reason.
    pub rejected: u64,
    /// Sign → first processed at the hub, ms, one per transaction.
    pub lag_ms: Vec<u64>,
    /// Bytes on WAN links.
    pub wan_bytes: u64,
    /// Bytes between LAN peers.
    pub lan_bytes: u64,
    /// Bytes of the signed transactions themselves (for the overhead ratio).
    pub tx_bytes: u64,
    /// Escrow rights moved between LAN peers (strict mode).
    pub escrow_transfers: u64,
    /// Node crashes inside an operation (after a commit, before receipts are stored).
    pub crashes_in_op: u64,
    /// Redemptions committed (and counted as signed) whose node crashed
    /// before the counter heard: the visitor was told to tap again.
    pub committed_unheard: u64,
    /// Points the hub reserved for stalls' rights (strict mode).
    pub escrow_reserved: u64,
    /// Reserved points that went back to wallets at the release (strict mode).
    pub escrow_released: u64,
    /// Ms from a lost-card suspension at the hub until every node knows it.
    pub suspension_lag_ms: Vec<u64>,
    /// Ms from healing to convergence.
    pub converge_ms: Vec<u64>,
    /// Simulated time covered, ms.
    pub sim_ms: u64,
    /// Events processed.
    pub events: u64,
    /// Time series.
    pub series: Vec<Sample>,
    /// Card proofs the holders' cards made at the counter.
    pub card_proofs: u64,
    /// The lying node.
    pub liar: LiarMetrics,
    /// Points the hub's economy step moved to expiry income.
    pub expired_points: u64,
    /// Shard epochs the hub's minute job started (a shard outgrew its target).
    pub epochs_split: u64,
    /// Settlement periods closed by the operator's runs.
    pub periods_closed: u64,
}

/// The `q` quantile (0..=1) of `v` (sorted copy), 0 when empty.
pub fn quantile(v: &[u64], q: f64) -> u64 {
    if v.is_empty() {
        return 0;
    }
    let mut s = v.to_vec();
    s.sort_unstable();
    let i = ((s.len() - 1) as f64 * q).round() as usize;
    s[i.min(s.len() - 1)]
}

fn fmt_ms(ms: u64) -> String {
    if ms < 10_000 {
        format!("{ms} ms")
    } else if ms < 600_000 {
        format!("{:.1} s", ms as f64 / 1000.0)
    } else if ms < 36_000_000 {
        format!("{:.1} min", ms as f64 / 60_000.0)
    } else {
        format!("{:.1} h", ms as f64 / 3_600_000.0)
    }
}

impl Metrics {
    /// Adds another run's counters (the series is kept from the first).
    pub fn absorb(&mut self, o: &Metrics) {
        self.runs += o.runs;
        for (k, v) in &o.signed {
            *self.signed.entry(k).or_default() += v;
        }
        for (k, v) in &o.declines {
            *self.declines.entry(k.clone()).or_default() += v;
        }
        for (k, v) in &o.aborted {
            *self.aborted.entry(k).or_default() += v;
        }
        self.lookups += o.lookups;
        self.redeem_asked += o.redeem_asked;
        self.debt_created += o.debt_created;
        self.debt_bound += o.debt_bound;
        self.rejected += o.rejected;
        self.lag_ms.extend_from_slice(&o.lag_ms);
        self.wan_bytes += o.wan_bytes;
        self.lan_bytes += o.lan_bytes;
        self.tx_bytes += o.tx_bytes;
        self.escrow_transfers += o.escrow_transfers;
        self.escrow_reserved += o.escrow_reserved;
        self.crashes_in_op += o.crashes_in_op;
        self.committed_unheard += o.committed_unheard;
        self.escrow_released += o.escrow_released;
        self.converge_ms.extend_from_slice(&o.converge_ms);
        self.suspension_lag_ms
            .extend_from_slice(&o.suspension_lag_ms);
        self.sim_ms += o.sim_ms;
        self.card_proofs += o.card_proofs;
        self.liar.absorb(&o.liar);
        self.expired_points += o.expired_points;
        self.epochs_split += o.epochs_split;
        self.periods_closed += o.periods_closed;
        self.events += o.events;
        if self.series.is_empty() {
            self.series = o.series.clone();
        }
    }

    /// Redemptions declined.
    pub fn declined(&self) -> u64 {
        self.declines.values().sum()
    }

    /// The summary table.
    pub fn table(&self, title: &str) -> String {
        let signed: u64 = self.signed.values().sum();
        let kinds: Vec<String> = self
            .signed
            .iter()
            .map(|(k, v)| format!("{k} {v}"))
            .collect();
        let decl = self.declined();
        let rate = if self.redeem_asked == 0 {
            0.0
        } else {
            100.0 * decl as f64 / self.redeem_asked as f64
        };
        let mut rows: Vec<(String, String)> = vec![
            ("runs (seeds)".into(), self.runs.to_string()),
            (
                "transactions signed".into(),
                format!("{signed} ({})", kinds.join(", ")),
            ),
            (
                "  redeems signed, then the node crashed before answering".into(),
                self.committed_unheard.to_string(),
            ),
            ("lookups".into(), self.lookups.to_string()),
            (
                "redemptions declined".into(),
                format!("{decl} of {} asked ({rate:.1}%)", self.redeem_asked),
            ),
        ];
        for (k, v) in &self.declines {
            rows.push((format!("  declined: {k}"), v.to_string()));
        }
        for (k, v) in &self.aborted {
            rows.push((format!("  not started: {k}"), v.to_string()));
        }

        rows.push(("rejected by the hub".into(), self.rejected.to_string()));
        rows.push((
            "card proofs made at the counter".into(),
            self.card_proofs.to_string(),
        ));
        rows.push((
            "debt created vs bound".into(),
            format!("{} pt vs {} pt", self.debt_created, self.debt_bound),
        ));
        rows.push((
            "reconciliation lag p50 / p99".into(),
            format!(
                "{} / {}",
                fmt_ms(quantile(&self.lag_ms, 0.5)),
                fmt_ms(quantile(&self.lag_ms, 0.99))
            ),
        ));
        let ratio = if self.tx_bytes == 0 {
            0.0
        } else {
            self.wan_bytes as f64 / self.tx_bytes as f64
        };
        rows.push((
            "bytes on the wire (WAN / LAN)".into(),
            format!(
                "{} / {} ({ratio:.2}× the signed transactions)",
                self.wan_bytes, self.lan_bytes
            ),
        ));
        rows.push((
            "crashes inside an operation".into(),
            self.crashes_in_op.to_string(),
        ));
        rows.push((
            "hub's timed jobs: expired / shard epochs split / periods closed".into(),
            format!(
                "{} pt / {} / {}",
                self.expired_points, self.epochs_split, self.periods_closed
            ),
        ));
        if self.escrow_reserved > 0 {
            rows.push((
                "escrow: reserved / returned at release / LAN transfers".into(),
                format!(
                    "{} / {} pt / {}",
                    self.escrow_reserved, self.escrow_released, self.escrow_transfers
                ),
            ));
        }
        if !self.suspension_lag_ms.is_empty() {
            rows.push((
                "lost card known at every node p50 / max".into(),
                format!(
                    "{} / {} ({} suspensions)",
                    fmt_ms(quantile(&self.suspension_lag_ms, 0.5)),
                    fmt_ms(quantile(&self.suspension_lag_ms, 1.0)),
                    self.suspension_lag_ms.len()
                ),
            ));
        }
        self.liar.rows(&mut rows);
        rows.push((
            "convergence after healing max".into(),
            fmt_ms(self.converge_ms.iter().copied().max().unwrap_or(0)),
        ));
        rows.push((
            "simulated time / events".into(),
            format!("{} / {}", fmt_ms(self.sim_ms), self.events),
        ));
        let w = rows.iter().map(|r| r.0.chars().count()).max().unwrap_or(10);
        let mut out = format!("== {title} ==\n");
        for (k, v) in rows {
            out.push_str(&format!("{k:<w$}  {v}\n"));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_and_table() {
        assert_eq!(quantile(&[], 0.5), 0);
        assert_eq!(quantile(&[5, 1, 3], 0.5), 3);
        assert_eq!(quantile(&[5, 1, 3], 1.0), 5);
        let mut m = Metrics {
            runs: 1,
            redeem_asked: 10,
            ..Default::default()
        };
        m.declines.insert("limit".into(), 2);
        let mut all = Metrics::default();
        all.absorb(&m);
        all.absorb(&m);
        assert!(all.table("t").contains("4 of 20 asked (20.0%)"));
    }
}
