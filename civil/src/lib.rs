//! Civil dates of the proleptic Gregorian calendar from days since
//! 1970-01-01 and back (Howard Hinnant's `civil_from_days` and
//! `days_from_civil`), and the UTC date and time of a Unix time.
//!
//! Pure arithmetic with no clock and no dependency, so that every crate
//! that prints or computes a date (the hub's JST calendar, the node's
//! expiry lines, the JPKI certificate times, the virtual card's
//! certificates, SIP2 dates) uses this one copy, the pure ones included.
#![forbid(unsafe_code)]
#![deny(missing_docs)]

/// Seconds in a day.
pub const SECS_PER_DAY: i64 = 86_400;

/// Days from 0000-03-01 to 1970-01-01.
const EPOCH_SHIFT: i64 = 719_468;
/// Days in a 400-year era.
const DAYS_PER_ERA: i64 = 146_097;

/// (year, month 1-12, day 1-31) of the day `days` after 1970-01-01
/// (negative: before it).
pub fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + EPOCH_SHIFT;
    let era = z.div_euclid(DAYS_PER_ERA);
    let doe = z - era * DAYS_PER_ERA;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    // Both fit: day is 1..=31 and month 1..=12 for every input.
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (yoe + era * 400 + i64::from(month <= 2), month, day)
}

/// Days from 1970-01-01 to the given date (negative: before it); the
/// inverse of [`civil_from_days`] for a valid date.
pub fn days_from_civil(year: i64, month: u32, day: u32) -> i64 {
    let y = year - i64::from(month <= 2);
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let m = i64::from(month);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(day) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * DAYS_PER_ERA + doe - EPOCH_SHIFT
}

/// Whether `year` has a 29 February.
pub fn is_leap_year(year: i64) -> bool {
    year % 4 == 0 && (year % 100 != 0 || year % 400 == 0)
}

/// Days in a month (1-12) of the proleptic Gregorian calendar.
pub fn days_in_month(year: i64, month: u32) -> u32 {
    match month {
        4 | 6 | 9 | 11 => 30,
        2 if is_leap_year(year) => 29,
        2 => 28,
        _ => 31,
    }
}

/// A date and a time of day, as a clock on the wall shows them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DateTime {
    /// Year, e.g. 2026.
    pub year: i64,
    /// Month, 1-12.
    pub month: u32,
    /// Day of the month, 1-31.
    pub day: u32,
    /// Hour, 0-23.
    pub hour: u32,
    /// Minute, 0-59.
    pub minute: u32,
    /// Second, 0-59.
    pub second: u32,
}

impl DateTime {
    /// The UTC date and time of a Unix time in seconds (add a zone's offset
    /// to `unix` first for its local time).
    pub fn from_unix_secs(unix: i64) -> DateTime {
        let (year, month, day) = civil_from_days(unix.div_euclid(SECS_PER_DAY));
        // 0..86_400: the casts cannot truncate.
        let secs = unix.rem_euclid(SECS_PER_DAY) as u32;
        DateTime {
            year,
            month,
            day,
            hour: secs / 3600,
            minute: secs % 3600 / 60,
            second: secs % 60,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_days() {
        for (days, want) in [
            (0, (1970, 1, 1)),
            (-1, (1969, 12, 31)),
            (59, (1970, 3, 1)),
            (10_956, (1999, 12, 31)),
            (11_016, (2000, 2, 29)),
            (19_782, (2024, 2, 29)),
            (20_543, (2026, 3, 31)),
            (47_481, (2099, 12, 31)),
            (47_482, (2100, 1, 1)),
            (47_541, (2100, 3, 1)),
            (-719_468, (0, 3, 1)),
        ] {
            assert_eq!(civil_from_days(days), want, "{days}");
            assert_eq!(days_from_civil(want.0, want.1, want.2), days, "{want:?}");
        }
    }

    #[test]
    fn round_trip_and_consecutive_over_a_wide_range() {
        // From 1600 to about 2300: four century years, three of them not leap.
        let mut prev = civil_from_days(-135_000);
        for days in -134_999..120_000 {
            let (y, m, d) = civil_from_days(days);
            assert_eq!(days_from_civil(y, m, d), days, "{days}");
            assert!(
                (1..=12).contains(&m) && d >= 1 && d <= days_in_month(y, m),
                "{days}"
            );
            let (py, pm, pd) = prev;
            let next_of_prev = if pd < days_in_month(py, pm) {
                (py, pm, pd + 1)
            } else if pm < 12 {
                (py, pm + 1, 1)
            } else {
                (py + 1, 1, 1)
            };
            assert_eq!((y, m, d), next_of_prev, "{days}");
            prev = (y, m, d);
        }
    }

    #[test]
    fn leap_years() {
        for (year, leap) in [
            (1970, false),
            (1972, true),
            (1900, false),
            (2000, true),
            (2024, true),
            (2100, false),
            (2400, true),
        ] {
            assert_eq!(is_leap_year(year), leap, "{year}");
            assert_eq!(days_in_month(year, 2), if leap { 29 } else { 28 }, "{year}");
            let len = days_from_civil(year + 1, 1, 1) - days_from_civil(year, 1, 1);
            assert_eq!(len, if leap { 366 } else { 365 }, "{year}");
        }
        // 2100-02-29 does not exist: the day after 28 February is 1 March.
        assert_eq!(
            civil_from_days(days_from_civil(2100, 2, 28) + 1),
            (2100, 3, 1)
        );
    }

    #[test]
    fn unix_seconds() {
        assert_eq!(
            DateTime::from_unix_secs(0),
            DateTime {
                year: 1970,
                month: 1,
                day: 1,
                hour: 0,
                minute: 0,
                second: 0
            }
        );
        assert_eq!(
            DateTime::from_unix_secs(1_764_763_199),
            DateTime {
                year: 2025,
                month: 12,
                day: 3,
                hour: 11,
                minute: 59,
                second: 59
            }
        );
        assert_eq!(
            DateTime::from_unix_secs(-1),
            DateTime {
                year: 1969,
                month: 12,
                day: 31,
                hour: 23,
                minute: 59,
                second: 59
            }
        );
        assert_eq!(
            DateTime::from_unix_secs(4_102_444_800),
            DateTime {
                year: 2100,
                month: 1,
                day: 1,
                hour: 0,
                minute: 0,
                second: 0
            }
        );
    }
}
