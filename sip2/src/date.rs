//! SIP2 dates: `YYYYMMDDZZZZHHMMSS`, 18 characters.

/// The 18-character SIP2 date for a Unix time in milliseconds, in UTC (the
/// zone field is `   Z`, as the spec writes universal time).
pub fn transaction_date(unix_ms: u64) -> [u8; 18] {
    let secs = unix_ms / 1000;
    let days = i64::try_from(secs / 86_400).unwrap_or(i64::MAX / 2);
    let rem = secs % 86_400;
    let (y, m, d) = civil_from_days(days);
    let text = format!(
        "{y:04}{m:02}{d:02}   Z{:02}{:02}{:02}",
        rem / 3600,
        (rem / 60) % 60,
        rem % 60
    );
    let mut out = [b' '; 18];
    for (o, b) in out.iter_mut().zip(text.bytes()) {
        *o = b;
    }
    out
}

/// Days since 1970-01-01 to (year, month, day), proleptic Gregorian
/// (H. Hinnant's `civil_from_days`).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates() {
        let cases = [
            (0, "19700101   Z000000"),
            (951_782_400_000, "20000229   Z000000"),
            (1_764_763_199_000, "20251203   Z115959"),
            (4_102_444_800_000, "21000101   Z000000"),
        ];
        for (ms, want) in cases {
            assert_eq!(&transaction_date(ms), want.as_bytes(), "{ms}");
        }
    }
}
