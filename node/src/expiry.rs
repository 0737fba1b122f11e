//! How a node words the hub's `UpcomingExpiry` facts for people: the last
//! day (in Japan Standard Time) the points can be spent, as the hub's
//! `mykey-hub economy lots` prints it.
//!
//! Pure arithmetic (`mykey_civil`), no clock.

use mykey_sync_proto::{Points, UnixMillis};

const MS_PER_DAY: i64 = 86_400_000;
const JST_OFFSET_MS: i64 = 9 * 3_600_000;

/// "N pt expire on YYYY-MM-DD": the points and the last JST day they can be
/// spent (points expiring at 00:00 JST are gone from that day on).
pub fn line(points: Points, expires_at: UnixMillis) -> String {
    format!("{points} expire on {}", last_day(expires_at))
}

/// The JST day just before `expires_at`, as `YYYY-MM-DD`.
pub fn last_day(expires_at: UnixMillis) -> String {
    let ms = i64::try_from(expires_at.0.saturating_sub(1)).unwrap_or(i64::MAX) + JST_OFFSET_MS;
    let (y, m, d) = mykey_civil::civil_from_days(ms.div_euclid(MS_PER_DAY));
    format!("{y:04}-{m:02}-{d:02}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn last_jst_day_before_the_instant() {
        // 2026-03-31T15:00:00Z is 2026-04-01 00:00 JST.
        let fy_end = 1_774_969_200_000;
        for (t, want) in [
            (fy_end, "2026-03-31"),
            (fy_end + 1, "2026-04-01"),
            // 2024-02-29 12:00 JST (leap day).
            (1_709_175_600_000, "2024-02-29"),
            (1, "1970-01-01"),
        ] {
            assert_eq!(last_day(UnixMillis(t)), want, "{t}");
        }
        assert_eq!(
            line(Points::new(300).unwrap(), UnixMillis(fy_end)),
            "300 pt expire on 2026-03-31"
        );
    }
}
