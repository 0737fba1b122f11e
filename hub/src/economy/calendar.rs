//! Civil dates in Japan Standard Time (UTC+9, no daylight saving) from
//! [`UnixMillis`]: month and half-month boundaries for settlement periods,
//! fiscal-year ends (31 March) and day counts for expiry policies.
//!
//! Pure arithmetic (`mykey_civil`), no clock.

use mykey_sync_proto::UnixMillis;
use std::fmt;

const MS_PER_DAY: i64 = 86_400_000;
const JST_OFFSET_MS: i64 = 9 * 3_600_000;

/// A calendar day in JST.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Date {
    /// Year, e.g. 2026.
    pub year: i32,
    /// Month, 1-12.
    pub month: u32,
    /// Day of the month, 1-31.
    pub day: u32,
}

impl Date {
    /// A valid date, or `None`.
    pub fn new(year: i32, month: u32, day: u32) -> Option<Date> {
        (1..=12)
            .contains(&month)
            .then_some(())
            .filter(|_| day >= 1 && day <= days_in_month(year, month))
            .map(|_| Date { year, month, day })
    }

    /// The JST day that `t` falls on.
    pub fn of(t: UnixMillis) -> Date {
        let ms = i64::try_from(t.0).unwrap_or(i64::MAX) + JST_OFFSET_MS;
        civil_from_days(ms.div_euclid(MS_PER_DAY))
    }

    /// The instant this day starts in JST (00:00 JST).
    pub fn start(self) -> UnixMillis {
        let ms = days_from_civil(self) * MS_PER_DAY - JST_OFFSET_MS;
        UnixMillis(u64::try_from(ms).unwrap_or(0))
    }

    /// The instant this day ends (00:00 JST of the next day).
    pub fn end(self) -> UnixMillis {
        self.plus_days(1).start()
    }

    /// The day `n` days later.
    pub fn plus_days(self, n: i64) -> Date {
        civil_from_days(days_from_civil(self) + n)
    }

    /// The last day of this date's month.
    pub fn month_end(self) -> Date {
        Date {
            day: days_in_month(self.year, self.month),
            ..self
        }
    }

    /// The first day of the next month.
    pub fn next_month_start(self) -> Date {
        if self.month == 12 {
            Date {
                year: self.year + 1,
                month: 1,
                day: 1,
            }
        } else {
            Date {
                year: self.year,
                month: self.month + 1,
                day: 1,
            }
        }
    }

    /// The Japanese fiscal year this day belongs to (April to March): the
    /// fiscal year 2026 runs from 1 April 2026 to 31 March 2027.
    pub fn fiscal_year(self) -> i32 {
        if self.month >= 4 {
            self.year
        } else {
            self.year - 1
        }
    }

    /// 31 March that ends the fiscal year `years` after this day's one
    /// (0: the current fiscal year's end).
    pub fn fiscal_year_end(self, years: u32) -> Date {
        let fy = self.fiscal_year() + i32::try_from(years).unwrap_or(i32::MAX - 1);
        Date {
            year: fy + 1,
            month: 3,
            day: 31,
        }
    }

    /// `YYYYMMDD` as a number (file names, reports).
    pub fn compact(self) -> String {
        format!("{:04}{:02}{:02}", self.year, self.month, self.day)
    }
}

impl fmt::Display for Date {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:04}-{:02}-{:02}", self.year, self.month, self.day)
    }
}

/// The JST wall-clock date and time of an instant.
pub fn jst_date_time(t: UnixMillis) -> mykey_civil::DateTime {
    // u64::MAX / 1000 is below i64::MAX - 9 h: the conversion cannot fail.
    let secs = i64::try_from(t.0 / 1000).unwrap_or(i64::MAX - JST_OFFSET_MS / 1000);
    mykey_civil::DateTime::from_unix_secs(secs + JST_OFFSET_MS / 1000)
}

/// An instant as ISO 8601 in JST, `2026-12-03T09:15:00+09:00`: the one form
/// every CLI listing and `--json` prints a time in (never epoch milliseconds).
pub fn iso_jst(t: UnixMillis) -> String {
    let d = jst_date_time(t);
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}+09:00",
        d.year, d.month, d.day, d.hour, d.minute, d.second
    )
}

/// Days in a month of the proleptic Gregorian calendar.
pub fn days_in_month(year: i32, month: u32) -> u32 {
    mykey_civil::days_in_month(i64::from(year), month)
}

fn days_from_civil(d: Date) -> i64 {
    mykey_civil::days_from_civil(i64::from(d.year), d.month, d.day)
}

fn civil_from_days(z: i64) -> Date {
    let (year, month, day) = mykey_civil::civil_from_days(z);
    // Every instant a `UnixMillis` holds falls in a year that fits an i32.
    let year = i32::try_from(year).unwrap_or(i32::MAX);
    Date { year, month, day }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn iso_jst_times() {
        for (ms, want) in [
            (0, "1970-01-01T09:00:00+09:00"),
            // 2026-12-03 00:15:00 UTC.
            (1_796_256_900_000, "2026-12-03T09:15:00+09:00"),
            // 2026-03-31 15:00:00 UTC is 1 April in Japan.
            (1_774_969_200_000, "2026-04-01T00:00:00+09:00"),
            (1_774_969_199_999, "2026-03-31T23:59:59+09:00"),
        ] {
            assert_eq!(iso_jst(UnixMillis(ms)), want, "{ms}");
        }
        assert!(iso_jst(UnixMillis(u64::MAX)).ends_with("+09:00"));
    }

    #[test]
    fn jst_days_and_boundaries() {
        // 2026-03-31T15:00:00Z is 2026-04-01 00:00 JST.
        let t = UnixMillis(1_774_969_200_000);
        assert_eq!(Date::of(t), Date::new(2026, 4, 1).unwrap());
        assert_eq!(
            Date::of(UnixMillis(t.0 - 1)),
            Date::new(2026, 3, 31).unwrap()
        );
        assert_eq!(Date::new(2026, 4, 1).unwrap().start(), t);
        assert_eq!(Date::new(2026, 3, 31).unwrap().end(), t);
        assert_eq!(Date::of(UnixMillis(0)), Date::new(1970, 1, 1).unwrap());
    }

    #[test]
    fn round_trips_every_day_for_decades() {
        let mut d = Date::new(1999, 12, 25).unwrap();
        for _ in 0..20_000 {
            assert_eq!(Date::of(d.start()), d);
            assert_eq!(Date::of(UnixMillis(d.end().0 - 1)), d);
            let next = d.plus_days(1);
            assert!(next > d);
            d = next;
        }
    }

    #[test]
    fn fiscal_years_and_months() {
        let cases = [
            ((2026, 3, 31), 0, (2026, 3, 31)),
            ((2026, 4, 1), 0, (2027, 3, 31)),
            ((2026, 11, 24), 1, (2028, 3, 31)),
            ((2027, 1, 5), 2, (2029, 3, 31)),
        ];
        for ((y, m, d), n, (ey, em, ed)) in cases {
            assert_eq!(
                Date::new(y, m, d).unwrap().fiscal_year_end(n),
                Date::new(ey, em, ed).unwrap()
            );
        }
        assert_eq!(Date::new(2028, 2, 3).unwrap().month_end().day, 29);
        assert_eq!(Date::new(2100, 2, 3).unwrap().month_end().day, 28);
        assert_eq!(
            Date::new(2026, 12, 9).unwrap().next_month_start(),
            Date::new(2027, 1, 1).unwrap()
        );
        assert!(Date::new(2026, 2, 29).is_none());
    }
}
