//! Liability report per municipality and programme: outstanding points
//! (spendable, held, by source), the expiry schedule by month, and the
//! unused balance at the legal base dates (31 March, 30 September) with the
//! deposit the prepaid-instrument rules would require: half of the amount
//! above ¥10,000,000 (rounded up to the yen). As JSON and as CSV.

use crate::economy::calendar::Date;
use crate::hub::Hub;
use crate::store::StoreError;
use mykey_sync_proto::{MunicipalityCode, UnixMillis};
use serde_json::{Value, json};
use std::collections::BTreeMap;

/// The threshold above which a deposit is required, in yen.
pub const DEPOSIT_THRESHOLD_YEN: u64 = 10_000_000;

/// The deposit for an unused balance at a base date: half of what exceeds
/// the threshold, rounded up.
pub fn deposit_required(unused_yen: u64) -> u64 {
    unused_yen.saturating_sub(DEPOSIT_THRESHOLD_YEN).div_ceil(2)
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
    /// Outstanding points per source (programme or operator), from the lots.
    pub by_source: BTreeMap<String, u64>,
    /// Points expiring per month (`YYYY-MM`), per source.
    pub expiry_schedule: BTreeMap<(String, String), u64>,
    /// Points that never expire, per source.
    pub never_expiring: BTreeMap<String, u64>,
    /// (base date, unused balance, deposit required).
    pub base_dates: Vec<(Date, u64, u64)>,
}

/// The whole report.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LiabilityReport {
    /// When it was made.
    pub generated_at: UnixMillis,
    /// Per municipality.
    pub municipalities: Vec<MunicipalityLiability>,
}

impl LiabilityReport {
    /// JSON form.
    pub fn to_json(&self) -> Value {
        json!({
            "generated_at": Date::of(self.generated_at).to_string(),
            "generated_at_ms": self.generated_at.0,
            "municipalities": self.municipalities.iter().map(|m| json!({
                "municipality": m.municipality.to_string(),
                "wallets": m.wallets as i64,
                "held": m.held as i64,
                "debts": m.debts as i64,
                "outstanding": (m.wallets + m.held) as i64,
                "by_source": m.by_source.iter().map(|(s, p)| json!({"source": s, "points": p})).collect::<Vec<_>>(),
                "expiry_schedule": m.expiry_schedule.iter().map(|((month, s), p)| json!({"month": month, "source": s, "points": p})).collect::<Vec<_>>(),
                "never_expiring": m.never_expiring.iter().map(|(s, p)| json!({"source": s, "points": p})).collect::<Vec<_>>(),
                "base_dates": m.base_dates.iter().map(|(d, u, dep)| json!({"date": d.to_string(), "unused": u, "deposit_required": dep})).collect::<Vec<_>>(),
            })).collect::<Vec<_>>(),
        })
    }

    /// CSV form: `municipality,section,key,detail,points`.
    pub fn to_csv(&self) -> String {
        let mut out = String::from("municipality,section,key,detail,points\r\n");
        for m in &self.municipalities {
            let c = m.municipality;
            out += &format!("{c},outstanding,wallets,,{}\r\n", m.wallets);
            out += &format!("{c},outstanding,held,,{}\r\n", m.held);
            out += &format!("{c},outstanding,debts,,{}\r\n", m.debts);
            for (s, p) in &m.by_source {
                out += &format!("{c},source,{s},,{p}\r\n");
            }
            for ((month, s), p) in &m.expiry_schedule {
                out += &format!("{c},expiry,{s},{month},{p}\r\n");
            }
            for (s, p) in &m.never_expiring {
                out += &format!("{c},expiry,{s},never,{p}\r\n");
            }
            for (d, u, dep) in &m.base_dates {
                out += &format!("{c},base-date-unused,{d},,{u}\r\n");
                out += &format!("{c},base-date-deposit,{d},,{dep}\r\n");
            }
        }
        out
    }
}

impl Hub {
    /// The liability report at `now` (the last two base dates).
    pub fn liability_report(&mut self, now: UnixMillis) -> Result<LiabilityReport, StoreError> {
        let mut st = self.store.begin()?;
        crate::economy::sync_lots(&mut *st)?;
        let mut out = vec![];
        for muni in st.municipalities()? {
            let m = muni.code;
            let mut l = MunicipalityLiability {
                municipality: m,
                wallets: 0,
                held: 0,
                debts: 0,
                by_source: BTreeMap::new(),
                expiry_schedule: BTreeMap::new(),
                never_expiring: BTreeMap::new(),
                base_dates: vec![],
            };
            for (kind, v) in st.holder_totals_before(m, UnixMillis(u64::MAX >> 1))? {
                match kind.as_str() {
                    "wallet" => l.wallets = v,
                    "held" => l.held = v,
                    _ => l.debts = v,
                }
            }
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
            for d in base_dates(now, 2) {
                let unused: i128 = st
                    .holder_totals_before(m, d.end())?
                    .into_iter()
                    .filter(|(k, _)| k != "debt")
                    .map(|(_, v)| v)
                    .sum();
                let unused = u64::try_from(unused.max(0)).unwrap_or(u64::MAX);
                l.base_dates.push((d, unused, deposit_required(unused)));
            }
            out.push(l);
        }
        st.commit()?;
        Ok(LiabilityReport {
            generated_at: now,
            municipalities: out,
        })
    }
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
    fn base_dates_before_now() {
        let now = Date::new(2026, 11, 24).unwrap().start();
        let got: Vec<String> = base_dates(now, 3).iter().map(|d| d.to_string()).collect();
        assert_eq!(got, ["2026-09-30", "2026-03-31", "2025-09-30"]);
        let now = Date::new(2026, 3, 31).unwrap().end();
        assert_eq!(base_dates(now, 1)[0].to_string(), "2026-03-31");
    }
}
