//! Liability report per municipality and programme: outstanding points
//! (spendable, held, by source), the expiry schedule by month, and the
//! unused balance at the legal base dates (31 March, 30 September) per
//! municipality and per source (programme or exchange operator), with the
//! deposit the prepaid-instrument rules would require: half of the amount
//! above ¥10,000,000 (rounded up to the yen). As JSON and as CSV.
//!
//! What a base-date figure is, and why:
//! - **The books at the end of the base date.** The cut is the last ledger
//!   position the hub posted before the day ended (00:00 JST of the next day,
//!   [`Date::end`]), by the hub's clock, as for settlement periods. A
//!   transaction the hub posts later (an offline spend that arrives after the
//!   base date, however early its node time) lands after the cut and never
//!   changes a base date already passed: the rule asks for the unused balance
//!   in the issuer's books at the base date, and a figure reported and
//!   deposited against must be reproducible.
//! - **Replayed, not read from today's lots.** The lots as they stood at the
//!   cut are replayed from the ledger with the lot fold itself
//!   ([`lots::consumption_key`], [`lots::consume`]): every wallet credit up
//!   to the cut opens its lot (source and expiry from the lots table, which
//!   never change), every wallet debit (spend, debt recovery, expiry)
//!   consumes the lots that expire first. The ledger is the timestamped
//!   history of every movement, so no second movement table is kept.
//! - **Expired points are not unused.** A lot whose expiry is at or before
//!   the end of the base date cannot be spent after it, so it is left out
//!   even where the expiry job posted its expiry transfer after the cut
//!   (points that expire at a fiscal year's end, 31 March 24:00 JST, are not
//!   in that 31 March figure); such points are shown as
//!   `expired_not_posted`, so the books reconcile: unused + expired not posted
//!   = wallets + held in the ledger at the cut (asserted).
//! - **Points in a holding period are unused.** Exchanged points not yet
//!   spendable were issued and paid for and are owed to the holder: they
//!   count, under their operator.
//! - **Held or not is judged by the exchange's dates, not by the release
//!   job.** Points whose holding period ended by the end of the base date are
//!   not held there, even where the release was posted after the cut (they
//!   sit in the ledger's held account at the cut): they are unused, or
//!   expired not posted if their expiry (counted from the end of the holding
//!   period, [`crate::economy::exchange::ExchangeRecord::expires_at`]) had
//!   passed too. So a base date's figures are the same whether the release
//!   job ran on time or late ([`held_state`]).
//! - **Debts do not reduce it.** Offline-overdraft debt is owed by a holder to
//!   the municipality, not a repayment of what the municipality owes the
//!   other holders: netting it would understate the deposit. It is shown
//!   beside (`debts`).
//! - **The deposit belongs to the municipality**, the legal issuer: it is
//!   computed from the municipality's total. Each source's unused balance is
//!   shown with its share of the total and of the deposit (split pro rata,
//!   largest remainder, so the shares add up to the deposit).
//! - Yen are points × [`YEN_PER_POINT`].
//!
//! Today's figures add up the same way: points per source are the lots
//! (wallets) plus the held points of that source, so the sources add up to
//! the outstanding total (wallets + held, asserted), and the expiry schedule
//! shows held points at the expiry they will have.
//!
//! **Donations on their own line.** Points a holder gave to a donation
//! programme ([`crate::donation`]) are no longer the holder's: they are owed
//! to the programme's recipient until a closed settlement period pays them
//! (`donations_unpaid`, CSV section `donations-unpaid`), beside the liability.
//!
//! **Quarantine on its own line.** Spends a node signed beyond the bounds
//! the hub enrolled ([`crate::quarantine`]) are held as evidence: no holder
//! was charged for them, so they are not owed to holders (not outstanding,
//! not unused at a base date), and no facility is owed them until an
//! operator releases them (a release posts the redeem then, which settlement
//! pays; a rejection drops them). The report shows what is held per
//! municipality and facility beside the liability, never inside it
//! (JSON `quarantine`, CSV section `quarantine-held`); the ledger's
//! quarantine accounts and the quarantine's held spends must agree (checked).

use crate::economy::YEN_PER_POINT;
use crate::economy::calendar::Date;
use crate::economy::lots::{self, Lot, LotSource};
use crate::economy::types::ExchangeRecord;
use crate::hub::Hub;
use crate::quarantine::summary::{QuarantineSummary, Sum};
use crate::store::StoreError;
use crate::store::economy::WalletStep;
use mykey_sync_proto::{AccountId, MunicipalityCode, UnixMillis};
use serde_json::{Value, json};
use std::collections::BTreeMap;

/// The threshold above which a deposit is required, in yen.
pub const DEPOSIT_THRESHOLD_YEN: u64 = 10_000_000;

/// The deposit for an unused balance at a base date: half of what exceeds
/// the threshold, rounded up.
pub fn deposit_required(unused_yen: u64) -> u64 {
    unused_yen.saturating_sub(DEPOSIT_THRESHOLD_YEN).div_ceil(2)
}

/// Points in yen.
pub fn yen_of(points: u64) -> u64 {
    points.saturating_mul(YEN_PER_POINT)
}

/// Splits `total` in proportion to `weights` so the parts add up to `total`
/// exactly: each part is rounded down, and the yen left over go one each to
/// the largest remainders (the earlier weight on a tie). All zero weights
/// get nothing.
pub fn pro_rata(total: u64, weights: &[u64]) -> Vec<u64> {
    let sum: u128 = weights.iter().map(|w| u128::from(*w)).sum();
    if sum == 0 {
        return vec![0; weights.len()];
    }
    let exact: Vec<(u128, u128)> = weights
        .iter()
        .map(|w| {
            let p = u128::from(total) * u128::from(*w);
            (p / sum, p % sum)
        })
        .collect();
    let mut parts: Vec<u64> = exact
        .iter()
        .map(|(q, _)| u64::try_from(*q).unwrap_or(u64::MAX))
        .collect();
    let given: u64 = parts.iter().sum();
    let mut order: Vec<usize> = (0..weights.len()).collect();
    order.sort_by(|a, b| exact[*b].1.cmp(&exact[*a].1).then(a.cmp(b)));
    for i in order
        .into_iter()
        .take(usize::try_from(total - given).unwrap_or(usize::MAX))
    {
        parts[i] += 1;
    }
    parts
}

/// A share in percent, to two decimals (half up).
fn percent(part: u64, whole: u64) -> f64 {
    if whole == 0 {
        return 0.0;
    }
    let bp = (u128::from(part) * 20_000 + u128::from(whole)) / (2 * u128::from(whole));
    bp as f64 / 100.0
}

/// The last `n` legal base dates (31 March, 30 September) that ended at or before `now`, newest first.
pub fn base_dates(now: UnixMillis, n: usize) -> Vec<Date> {
    let today = Date::of(now);
    let mut out = vec![];
    let mut year = today.year;
    while out.len() < n {
        for (m, d) in [(9, 30), (3, 31)] {
            let date = Date {
                year,
                month: m,
                day: d,
            };
            if date.end() <= now && out.len() < n {
                out.push(date);
            }
        }
        year -= 1;
    }
    out
}

/// Where an exchange's points held in the ledger at a base date's cut stand
/// at the end of that base date (`at`), judged by the exchange's own dates.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HeldState {
    /// Still in the holding period: unused and held.
    Held,
    /// Holding period over, expiry not reached: unused, not held (the release
    /// was posted after the cut).
    Unused,
    /// Holding period over and expired by `at`: not unused.
    Expired,
}

/// [`HeldState`] of an exchange at `at` (pure): the end of its holding
/// period and its expiry against `at`, never when the release was posted.
pub fn held_state(e: &ExchangeRecord, at: UnixMillis) -> HeldState {
    if e.available_at > at {
        HeldState::Held
    } else if e.expires_at().is_some_and(|x| x <= at) {
        HeldState::Expired
    } else {
        HeldState::Unused
    }
}

/// `YYYY-MM` of the last day points expiring at `expires_at` can be spent
/// (an expiry at 00:00 JST ends the day before).
fn expiry_month(expires_at: UnixMillis) -> String {
    let d = Date::of(UnixMillis(expires_at.0.saturating_sub(1)));
    format!("{:04}-{:02}", d.year, d.month)
}

/// Replays a municipality's lots up to a ledger position (see the module
/// docs): feed it [`WalletStep`]s ordered by holder, then position.
#[derive(Debug)]
pub struct LotReplay {
    at: UnixMillis,
    wallet: Option<AccountId>,
    /// The current wallet's lots with points left, in consumption order.
    live: BTreeMap<lots::ConsumptionKey, Lot>,
    unused: BTreeMap<LotSource, u64>,
    expired: BTreeMap<LotSource, u64>,
}

impl LotReplay {
    /// A replay whose lots are judged expired or not at `at`.
    pub fn new(at: UnixMillis) -> LotReplay {
        LotReplay {
            at,
            wallet: None,
            live: BTreeMap::new(),
            unused: BTreeMap::new(),
            expired: BTreeMap::new(),
        }
    }

    /// The next step.
    pub fn step(&mut self, step: WalletStep) {
        let account = step.account();
        if self.wallet != Some(account) {
            assert!(
                self.wallet.is_none_or(|w| w < account),
                "wallet steps out of holder order: {account} after {:?}",
                self.wallet
            );
            self.flush();
            self.wallet = Some(account);
        }
        match step {
            WalletStep::Credit(mut lot) => {
                lot.remaining = lot.amount;
                self.live.insert(lots::consumption_key(&lot), lot);
            }
            WalletStep::Debit { points, .. } => {
                let moves = lots::consume(self.live.values(), points);
                for (lot, (pos, remaining)) in self.live.values_mut().zip(moves) {
                    assert_eq!(lot.pos, pos, "consume walks the lots in order");
                    lot.remaining = remaining;
                }
                // A debit empties lots from the front only.
                while let Some(first) = self.live.first_entry() {
                    if first.get().remaining > 0 {
                        break;
                    }
                    first.remove();
                }
            }
        }
    }

    fn flush(&mut self) {
        for lot in std::mem::take(&mut self.live).into_values() {
            let bucket = if lot.expires_at.is_some_and(|e| e <= self.at) {
                &mut self.expired
            } else {
                &mut self.unused
            };
            *bucket.entry(lot.source).or_default() += lot.remaining;
        }
    }

    /// Points left per source: (not expired at `at`, expired at `at`).
    pub fn finish(mut self) -> (BTreeMap<LotSource, u64>, BTreeMap<LotSource, u64>) {
        self.flush();
        (self.unused, self.expired)
    }
}

/// One source's figures at a base date.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SourceAtBaseDate {
    /// The programme or exchange operator.
    pub source: LotSource,
    /// Unused points: spendable and not expired, plus held.
    pub unused_points: u64,
    /// Of which still in a holding period.
    pub held_points: u64,
    /// Points past their expiry whose expiry transfer was posted after the
    /// base date (not unused).
    pub expired_not_posted_points: u64,
    /// This source's share of its municipality's deposit, in yen.
    pub deposit_share_yen: u64,
}

/// A municipality's figures at one base date.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BaseDateFigures {
    /// The base date.
    pub date: Date,
    /// The instant of the figures: the end of the base date.
    pub as_of: UnixMillis,
    /// The last ledger position posted before `as_of` (0: none).
    pub ledger_pos: u64,
    /// Unused points, all sources.
    pub unused_points: u64,
    /// Of which still in a holding period.
    pub held_points: u64,
    /// Points past their expiry, expiry posted later (not unused).
    pub expired_not_posted_points: u64,
    /// Holders' debt (not deducted).
    pub debts_points: u64,
    /// The deposit the municipality would need, in yen.
    pub deposit_required_yen: u64,
    /// Per source, in source order.
    pub by_source: Vec<SourceAtBaseDate>,
}

impl BaseDateFigures {
    /// Unused balance in yen.
    pub fn unused_yen(&self) -> u64 {
        yen_of(self.unused_points)
    }

    /// The figures from a replay's results (pure): spendable points per
    /// source, held points per source, expired points per source, debts.
    pub fn new(
        date: Date,
        ledger_pos: u64,
        spendable: &BTreeMap<LotSource, u64>,
        held: &BTreeMap<LotSource, u64>,
        expired: &BTreeMap<LotSource, u64>,
        debts_points: u64,
    ) -> BaseDateFigures {
        let mut sources: Vec<&LotSource> = spendable
            .keys()
            .chain(held.keys())
            .chain(expired.keys())
            .collect();
        sources.sort();
        sources.dedup();
        let get = |m: &BTreeMap<LotSource, u64>, s: &LotSource| m.get(s).copied().unwrap_or(0);
        let mut by_source: Vec<SourceAtBaseDate> = sources
            .into_iter()
            .map(|s| SourceAtBaseDate {
                source: s.clone(),
                unused_points: get(spendable, s) + get(held, s),
                held_points: get(held, s),
                expired_not_posted_points: get(expired, s),
                deposit_share_yen: 0,
            })
            .filter(|s| s.unused_points > 0 || s.expired_not_posted_points > 0)
            .collect();
        let unused_points: u64 = by_source.iter().map(|s| s.unused_points).sum();
        let deposit_required_yen = deposit_required(yen_of(unused_points));
        let weights: Vec<u64> = by_source.iter().map(|s| s.unused_points).collect();
        for (s, share) in by_source
            .iter_mut()
            .zip(pro_rata(deposit_required_yen, &weights))
        {
            s.deposit_share_yen = share;
        }
        BaseDateFigures {
            date,
            as_of: date.end(),
            ledger_pos,
            unused_points,
            held_points: held.values().sum(),
            expired_not_posted_points: expired.values().sum(),
            debts_points,
            deposit_required_yen,
            by_source,
        }
    }

    fn to_json(&self) -> Value {
        json!({
            "date": self.date.to_string(),
            "as_of_ms": self.as_of.0,
            "ledger_pos": self.ledger_pos,
            "unused_points": self.unused_points,
            "unused_yen": self.unused_yen(),
            "held_points": self.held_points,
            "expired_not_posted_points": self.expired_not_posted_points,
            "debts_points": self.debts_points,
            "deposit_threshold_yen": DEPOSIT_THRESHOLD_YEN,
            "deposit_required_yen": self.deposit_required_yen,
            "by_source": self.by_source.iter().map(|s| json!({
                "source": s.source.to_string(),
                "unused_points": s.unused_points,
                "unused_yen": yen_of(s.unused_points),
                "held_points": s.held_points,
                "expired_not_posted_points": s.expired_not_posted_points,
                "unused_share_percent": percent(s.unused_points, self.unused_points),
                "deposit_share_yen": s.deposit_share_yen,
            })).collect::<Vec<_>>(),
        })
    }
}

/// One municipality's figures.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MunicipalityLiability {
    /// Whose points.
    pub municipality: MunicipalityCode,
    /// Spendable points in wallets.
    pub wallets: i128,
    /// Exchanged points still in their holding period.
    pub held: i128,
    /// Debt from offline overdraft (owed to the municipality).
    pub debts: i128,
    /// Points in printed vouchers not yet redeemed (the voucher float),
    /// owed to whoever holds them, apart from the wallets.
    pub vouchers: i128,
    /// Of which in vouchers holders made of their points at a kiosk (issue
    /// 17 part 1(a)), not redeemed nor returned to their wallets yet.
    pub kiosk_vouchers: u64,
    /// Points holders gave to donation programmes that no closed settlement
    /// period has paid to the recipients yet: owed to the recipients, not
    /// to holders (not outstanding, not unused at a base date).
    pub donations_unpaid: u64,
    /// Outstanding points per source (programme or operator): its lots plus
    /// its held points; the sources add up to wallets + held.
    pub by_source: BTreeMap<String, u64>,
    /// Of which still in a holding period, per source.
    pub held_by_source: BTreeMap<String, u64>,
    /// Points expiring per month (`YYYY-MM`), per source, held points at the
    /// expiry they will have.
    pub expiry_schedule: BTreeMap<(String, String), u64>,
    /// Points that never expire, per source.
    pub never_expiring: BTreeMap<String, u64>,
    /// The figures at the last base dates, newest first.
    pub base_dates: Vec<BaseDateFigures>,
    /// Spends held in quarantine now (not in any figure above).
    pub quarantine_held: Sum,
    /// Of which per facility that would be paid, in facility order.
    pub quarantine_by_facility: BTreeMap<String, Sum>,
}

/// The whole report.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LiabilityReport {
    /// When it was made.
    pub generated_at: UnixMillis,
    /// Per municipality.
    pub municipalities: Vec<MunicipalityLiability>,
}

fn clamp(v: i128) -> u64 {
    u64::try_from(v.max(0)).unwrap_or(u64::MAX)
}

impl LiabilityReport {
    /// JSON form.
    pub fn to_json(&self) -> Value {
        json!({
            "generated_at": Date::of(self.generated_at).to_string(),
            "generated_at_ms": self.generated_at.0,
            "yen_per_point": YEN_PER_POINT,
            "municipalities": self.municipalities.iter().map(|m| json!({
                "municipality": m.municipality.to_string(),
                "wallets": m.wallets as i64,
                "held": m.held as i64,
                "debts": m.debts as i64,
                "outstanding": (m.wallets + m.held) as i64,
                "vouchers_outstanding": m.vouchers as i64,
                "kiosk_vouchers_outstanding": m.kiosk_vouchers,
                "donations_unpaid": m.donations_unpaid,
                "by_source": m.by_source.iter().map(|(s, p)| json!({"source": s, "points": p,
                    "held_points": m.held_by_source.get(s).copied().unwrap_or(0)})).collect::<Vec<_>>(),
                "expiry_schedule": m.expiry_schedule.iter().map(|((month, s), p)| json!({"month": month, "source": s, "points": p})).collect::<Vec<_>>(),
                "never_expiring": m.never_expiring.iter().map(|(s, p)| json!({"source": s, "points": p})).collect::<Vec<_>>(),
                "base_dates": m.base_dates.iter().map(BaseDateFigures::to_json).collect::<Vec<_>>(),
                "quarantine": {
                    "held_points": m.quarantine_held.points,
                    "held_yen": yen_of(m.quarantine_held.points),
                    "held_items": m.quarantine_held.items,
                    "by_facility": m.quarantine_by_facility.iter().map(|(f, s)| json!({
                        "facility": f, "held_points": s.points, "held_items": s.items,
                    })).collect::<Vec<_>>(),
                },
            })).collect::<Vec<_>>(),
        })
    }

    /// CSV form: `municipality,section,key,detail,points,yen`. Rows about
    /// points carry both columns; the deposit rows carry yen only. Base-date
    /// rows have the date as key and the source as detail (empty: the
    /// municipality's total). Section `quarantine-held` is apart from the
    /// liability: key `total` (the municipality's), or key `facility` with the
    /// facility id as detail.
    pub fn to_csv(&self) -> String {
        let mut out = String::from("municipality,section,key,detail,points,yen\r\n");
        for m in &self.municipalities {
            let c = m.municipality;
            // Points (and their yen), or yen alone.
            let mut line =
                |section: &str, key: &str, detail: &str, points: Option<u64>, yen: u64| {
                    let points = points.map(|p| p.to_string()).unwrap_or_default();
                    out += &format!("{c},{section},{key},{detail},{points},{yen}\r\n");
                };
            let mut row = |section: &str, key: &str, detail: &str, points: u64| {
                line(section, key, detail, Some(points), yen_of(points));
            };
            row("outstanding", "wallets", "", clamp(m.wallets));
            row("outstanding", "held", "", clamp(m.held));
            row("outstanding", "debts", "", clamp(m.debts));
            row("outstanding", "vouchers", "", clamp(m.vouchers));
            row("outstanding", "kiosk-vouchers", "", m.kiosk_vouchers);
            row("donations-unpaid", "total", "", m.donations_unpaid);
            for (s, p) in &m.by_source {
                row("source", s, "", *p);
                if let Some(held) = m.held_by_source.get(s) {
                    row("source-held", s, "", *held);
                }
            }
            for ((month, s), p) in &m.expiry_schedule {
                row("expiry", s, month, *p);
            }
            for (s, p) in &m.never_expiring {
                row("expiry", s, "never", *p);
            }
            for b in &m.base_dates {
                let d = b.date.to_string();
                row("base-date-unused", &d, "", b.unused_points);
                row("base-date-held", &d, "", b.held_points);
                row(
                    "base-date-expired-not-posted",
                    &d,
                    "",
                    b.expired_not_posted_points,
                );
                row("base-date-debts", &d, "", b.debts_points);
                for s in &b.by_source {
                    let src = s.source.to_string();
                    row("base-date-unused", &d, &src, s.unused_points);
                    row("base-date-held", &d, &src, s.held_points);
                    row(
                        "base-date-expired-not-posted",
                        &d,
                        &src,
                        s.expired_not_posted_points,
                    );
                }
            }
            row("quarantine-held", "total", "", m.quarantine_held.points);
            for (f, s) in &m.quarantine_by_facility {
                row("quarantine-held", "facility", f, s.points);
            }
            for b in &m.base_dates {
                let d = b.date.to_string();
                line("base-date-deposit", &d, "", None, b.deposit_required_yen);
                for s in &b.by_source {
                    let src = s.source.to_string();
                    line(
                        "base-date-deposit-share",
                        &d,
                        &src,
                        None,
                        s.deposit_share_yen,
                    );
                }
            }
        }
        out
    }
}

impl Hub {
    /// The liability report at `now` (the last two base dates).
    pub fn liability_report(&mut self, now: UnixMillis) -> Result<LiabilityReport, StoreError> {
        let mut st = self.store.begin()?;
        let report = liability_report_in(&mut *st, now)?;
        st.commit()?;
        Ok(report)
    }
}

/// [`Hub::liability_report`] inside the caller's transaction (a settlement
/// run records the report with the periods it closes).
pub(crate) fn liability_report_in(
    st: &mut dyn crate::store::StoreTx,
    now: UnixMillis,
) -> Result<LiabilityReport, StoreError> {
    crate::economy::fold::sync_lots(st)?;
    let mut cuts = vec![];
    for d in base_dates(now, 2) {
        cuts.push((d, st.last_pos_before(0, d.end())?));
    }
    let kind_totals = st.ledger_kind_totals()?;
    let quarantine = QuarantineSummary::new(st.quarantine_totals()?);
    let mut out = vec![];
    for muni in st.municipalities()? {
        let m = muni.code;
        let mut l = MunicipalityLiability {
            municipality: m,
            wallets: 0,
            held: 0,
            debts: 0,
            vouchers: crate::voucher::outstanding(&mut *st, m)?,
            kiosk_vouchers: crate::voucher::kiosk::outstanding(&mut *st, m)?,
            donations_unpaid: crate::donation::unpaid(&mut *st, m)?,
            by_source: BTreeMap::new(),
            held_by_source: BTreeMap::new(),
            expiry_schedule: BTreeMap::new(),
            never_expiring: BTreeMap::new(),
            base_dates: vec![],
            quarantine_held: quarantine.held_in(m),
            quarantine_by_facility: quarantine
                .by_facility()
                .into_iter()
                .filter(|f| f.municipality == m && f.held.items > 0)
                .map(|f| (f.facility.as_str().to_owned(), f.held))
                .collect(),
        };
        // The ledger's quarantine accounts hold what the quarantine holds.
        let in_ledger: i128 = kind_totals
            .iter()
            .filter(|(km, kind, _)| *km == m && kind == "quarantined")
            .map(|(_, _, p)| i128::from(p.credits) - i128::from(p.debits))
            .sum();
        if in_ledger != i128::from(l.quarantine_held.points) {
            return Err(StoreError::Corrupt {
                what: "ledger (quarantine accounts for the liability report)",
                detail: format!(
                    "{m}'s quarantine accounts hold {in_ledger} pt, its held spends {} pt",
                    l.quarantine_held.points
                ),
            });
        }
        (l.wallets, l.held, l.debts) = holder_totals(st.holder_totals_through(m, u64::MAX)?);
        for (source, day, points) in st.lot_schedule(m)? {
            *l.by_source.entry(source.clone()).or_default() += points;
            match day {
                Some(day) => {
                    let d = Date::of(UnixMillis(
                        u64::try_from(day).unwrap_or(0) * 86_400_000 + 12 * 3_600_000,
                    ));
                    let month = format!("{:04}-{:02}", d.year, d.month);
                    *l.expiry_schedule.entry((month, source)).or_default() += points;
                }
                None => *l.never_expiring.entry(source).or_default() += points,
            }
        }
        st.held_exchanges_through(m, u64::MAX, &mut |e, points| {
            let source = LotSource::Operator(e.operator.clone()).to_string();
            *l.by_source.entry(source.clone()).or_default() += points;
            *l.held_by_source.entry(source.clone()).or_default() += points;
            match e.expires_at() {
                Some(x) => {
                    *l.expiry_schedule
                        .entry((expiry_month(x), source))
                        .or_default() += points;
                }
                None => *l.never_expiring.entry(source).or_default() += points,
            }
        })?;
        // The sources are the lots and the held exchanges; the totals are
        // the ledger's. If they disagree the report would be wrong.
        let sources = i128::from(l.by_source.values().sum::<u64>());
        if sources != l.wallets + l.held {
            return Err(StoreError::Corrupt {
                what: "ledger (lots and held exchanges for the liability report)",
                detail: format!(
                    "the sources of {m} add up to {sources} pt, the ledger holds {} pt \
                     in wallets and {} pt held",
                    l.wallets, l.held
                ),
            });
        }
        for (d, pos) in &cuts {
            let at = d.end();
            let mut replay = LotReplay::new(at);
            st.wallet_steps_through(m, *pos, &mut |s| replay.step(s))?;
            let (mut spendable, mut expired) = replay.finish();
            let replayed =
                i128::from(spendable.values().sum::<u64>() + expired.values().sum::<u64>());
            // Points in the held account at the cut, each exchange judged
            // by its own dates (see the module docs).
            let mut held = BTreeMap::new();
            let mut held_replayed = 0i128;
            st.held_exchanges_through(m, *pos, &mut |e, points| {
                held_replayed += i128::from(points);
                let bucket = match held_state(&e, at) {
                    HeldState::Held => &mut held,
                    HeldState::Unused => &mut spendable,
                    HeldState::Expired => &mut expired,
                };
                *bucket.entry(LotSource::Operator(e.operator)).or_default() += points;
            })?;
            let (wallets, held_books, debts) = holder_totals(st.holder_totals_through(m, *pos)?);
            // The replay and the ledger agree on what was in the wallets
            // and held; if not, the report would be wrong: refuse it, loudly.
            if replayed != wallets || held_replayed != held_books {
                return Err(StoreError::Corrupt {
                    what: "ledger (lot replay for the liability report)",
                    detail: format!(
                        "at {d} the replayed lots of {m} hold {replayed} pt and the held \
                         exchanges {held_replayed} pt, the ledger {wallets} pt and {held_books} pt"
                    ),
                });
            }
            let figures = BaseDateFigures::new(*d, *pos, &spendable, &held, &expired, clamp(debts));
            l.base_dates.push(figures);
        }
        out.push(l);
    }
    Ok(LiabilityReport {
        generated_at: now,
        municipalities: out,
    })
}

/// (wallets, held, debts) from [`crate::store::economy::EconomyTx::holder_totals_through`].
fn holder_totals(kinds: Vec<(String, i128)>) -> (i128, i128, i128) {
    let (mut w, mut h, mut d) = (0, 0, 0);
    for (kind, v) in kinds {
        match kind.as_str() {
            "wallet" => w = v,
            "held" => h = v,
            _ => d = v,
        }
    }
    (w, h, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deposit_is_half_above_ten_million() {
        for (unused, want) in [
            (0, 0),
            (10_000_000, 0),
            (10_000_001, 1),
            (10_000_002, 1),
            (30_000_000, 10_000_000),
        ] {
            assert_eq!(deposit_required(unused), want, "{unused}");
        }
    }

    #[test]
    fn pro_rata_adds_up_exactly() {
        for (total, weights, want) in [
            (5_500_000, vec![18, 3], vec![4_714_286, 785_714]),
            (
                10_000_000,
                vec![18_000_000, 12_000_000],
                vec![6_000_000, 4_000_000],
            ),
            (1, vec![1, 1], vec![1, 0]),
            (2, vec![1, 1, 1], vec![1, 1, 0]),
            (7, vec![0, 0], vec![0, 0]),
            (0, vec![5, 5], vec![0, 0]),
            (10, vec![0, 3], vec![0, 10]),
        ] {
            let got = pro_rata(total, &weights);
            assert_eq!(got, want, "{total} over {weights:?}");
        }
        assert_eq!(percent(18, 21), 85.71);
        assert_eq!(percent(1, 3), 33.33);
        assert_eq!(percent(2, 3), 66.67);
    }

    fn src(s: &str) -> LotSource {
        LotSource::parse(s).unwrap()
    }

    fn credit(
        account: u64,
        pos: u64,
        source: &str,
        amount: u64,
        expires: Option<u64>,
    ) -> WalletStep {
        WalletStep::Credit(Lot {
            pos,
            account: AccountId::new(account).unwrap(),
            municipality: MunicipalityCode::parse("131059").unwrap(),
            source: src(source),
            amount,
            remaining: 0, // today's figure: the replay starts from `amount`
            credited_at: UnixMillis(pos),
            expires_at: expires.map(UnixMillis),
        })
    }

    fn debit(account: u64, pos: u64, points: u64) -> WalletStep {
        WalletStep::Debit {
            account: AccountId::new(account).unwrap(),
            pos,
            points,
        }
    }

    #[test]
    fn replay_spends_earliest_expiry_first_and_splits_expired() {
        let mut r = LotReplay::new(UnixMillis(1000));
        // Holder 1: a programme lot expiring at the instant, an operator lot
        // that never expires; a spend takes the programme lot first.
        r.step(credit(1, 1, "program:volunteer", 500, Some(1000)));
        r.step(credit(1, 2, "operator:card-x", 300, None));
        r.step(debit(1, 3, 200));
        // Holder 2: an operator lot that expires first is used up by a spend,
        // which then takes 50 from a programme lot still good.
        r.step(credit(2, 4, "operator:card-x", 100, Some(900)));
        r.step(credit(2, 5, "program:health", 400, Some(2000)));
        r.step(debit(2, 6, 150));
        let (unused, expired) = r.finish();
        assert_eq!(
            unused,
            BTreeMap::from([(src("operator:card-x"), 300), (src("program:health"), 350)])
        );
        assert_eq!(expired, BTreeMap::from([(src("program:volunteer"), 300)]));
    }

    #[test]
    #[should_panic(expected = "out of holder order")]
    fn replay_refuses_steps_out_of_holder_order() {
        let mut r = LotReplay::new(UnixMillis(1000));
        r.step(credit(2, 1, "program:health", 5, None));
        r.step(credit(1, 2, "program:health", 5, None));
    }

    #[test]
    fn figures_add_held_and_share_the_deposit() {
        let spendable = BTreeMap::from([
            (src("program:health"), 18_000_000),
            (src("operator:card-x"), 2_000_000),
        ]);
        let held = BTreeMap::from([(src("operator:card-x"), 1_000_000)]);
        let expired = BTreeMap::from([(src("program:volunteer"), 7_000_000)]);
        let d = Date::new(2026, 3, 31).unwrap();
        let f = BaseDateFigures::new(d, 42, &spendable, &held, &expired, 1_000);
        assert_eq!(f.as_of, Date::new(2026, 4, 1).unwrap().start());
        assert_eq!((f.unused_points, f.unused_yen()), (21_000_000, 21_000_000));
        assert_eq!(
            (f.held_points, f.expired_not_posted_points, f.debts_points),
            (1_000_000, 7_000_000, 1_000)
        );
        assert_eq!(f.deposit_required_yen, 5_500_000);
        let rows: Vec<(String, u64, u64, u64, u64)> = f
            .by_source
            .iter()
            .map(|s| {
                (
                    s.source.to_string(),
                    s.unused_points,
                    s.held_points,
                    s.expired_not_posted_points,
                    s.deposit_share_yen,
                )
            })
            .collect();
        assert_eq!(
            rows,
            [
                ("program:health".to_owned(), 18_000_000, 0, 0, 4_714_286),
                ("program:volunteer".to_owned(), 0, 0, 7_000_000, 0),
                (
                    "operator:card-x".to_owned(),
                    3_000_000,
                    1_000_000,
                    0,
                    785_714
                ),
            ]
        );
    }

    #[test]
    fn held_points_are_judged_by_the_exchange_dates() {
        use crate::economy::exchange::OperatorId;
        use crate::economy::lots::ExpiryPolicy;
        use mykey_sync_proto::{Points, TxId};
        let day = |d: u32| Date::new(2027, 3, d).unwrap().start();
        let exchange = |available_at: UnixMillis, expiry: ExpiryPolicy| ExchangeRecord {
            operator: OperatorId::parse("card-x").unwrap(),
            request_id: "r".into(),
            request_sha256: [0; 32],
            account: AccountId::new(1).unwrap(),
            municipality: MunicipalityCode::parse("131059").unwrap(),
            operator_points: 2,
            regional: Points::new(1).unwrap(),
            premium: Points::ZERO,
            campaign: None,
            requested_at: day(1),
            received_at: day(1),
            available_at,
            released_at: None,
            origin: TxId::GENESIS,
            release_origin: TxId::GENESIS,
            expiry,
        };
        let at = Date::new(2027, 3, 31).unwrap().end();
        for (available_at, expiry, want) in [
            (at.plus_ms(1), ExpiryPolicy::Never, HeldState::Held),
            (at, ExpiryPolicy::Never, HeldState::Unused),
            (
                day(30),
                ExpiryPolicy::FiscalYearEnd { years: 1 },
                HeldState::Unused,
            ),
            // Spendable on 30 March, expired as 31 March ended.
            (
                day(30),
                ExpiryPolicy::FiscalYearEnd { years: 0 },
                HeldState::Expired,
            ),
            (day(29), ExpiryPolicy::Days { days: 1 }, HeldState::Expired),
            // Expiring exactly as the base date ends: not unused.
            (day(29), ExpiryPolicy::Days { days: 3 }, HeldState::Expired),
            (day(29), ExpiryPolicy::Days { days: 4 }, HeldState::Unused),
        ] {
            let e = exchange(available_at, expiry);
            assert_eq!(held_state(&e, at), want, "{available_at:?} {expiry}");
        }
    }

    #[test]
    fn base_dates_before_now() {
        let now = Date::new(2026, 11, 24).unwrap().start();
        let got: Vec<String> = base_dates(now, 3).iter().map(|d| d.to_string()).collect();
        assert_eq!(got, ["2026-09-30", "2026-03-31", "2025-09-30"]);
        let now = Date::new(2026, 3, 31).unwrap().end();
        assert_eq!(base_dates(now, 1)[0].to_string(), "2026-03-31");
    }
}
