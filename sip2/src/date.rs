//! SIP2 dates: `YYYYMMDDZZZZHHMMSS`, 18 characters.

/// The 18-character SIP2 date for a Unix time in milliseconds, in UTC (the
/// zone field is `   Z`, as the spec writes universal time).
pub fn transaction_date(unix_ms: u64) -> [u8; 18] {
    // u64::MAX / 1000 is below i64::MAX: the conversion cannot fail.
    let secs = i64::try_from(unix_ms / 1000).unwrap_or(i64::MAX);
    let t = mykey_civil::DateTime::from_unix_secs(secs);
    let text = format!(
        "{:04}{:02}{:02}   Z{:02}{:02}{:02}",
        t.year, t.month, t.day, t.hour, t.minute, t.second
    );
    let mut out = [b' '; 18];
    for (o, b) in out.iter_mut().zip(text.bytes()) {
        *o = b;
    }
    out
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
