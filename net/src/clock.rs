//! The wall clock, read here and nowhere else in the binaries: they take
//! `now` from [`unix_now`] and pass it into the deciding code, which never
//! reads a clock itself.

use mykey_sync_proto::UnixMillis;

/// Milliseconds since the Unix epoch, the clock every `handle_*(…, now)`
/// call takes (0 if the system clock is set before 1970).
pub fn unix_now() -> UnixMillis {
    let ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
    UnixMillis(ms)
}

/// Whole seconds since the Unix epoch, as certificate validity checks take
/// them.
pub fn unix_now_secs() -> i64 {
    // u64::MAX / 1000 is below i64::MAX: the conversion cannot fail.
    i64::try_from(unix_now().0 / 1000).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn after_this_code_was_written_and_seconds_agree() {
        // 2024-01-01T00:00:00Z: a clock before it is set wrong.
        let (ms, secs) = (unix_now().0, unix_now_secs());
        assert!(ms > 1_704_067_200_000, "{ms}");
        assert!(secs >= i64::try_from(ms / 1000).unwrap(), "{secs} {ms}");
    }
}
