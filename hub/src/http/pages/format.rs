//! Formatting for the pages: durations, Japan times, thousands, alert lines.

use super::layout::esc;
use crate::http::i18n::Lang;
use crate::status::NodeRow;
use crate::status::assess::Alert;
use mykey_sync_proto::UnixMillis;
use std::fmt::Write;

/// A duration in the page's language, coarse (two units at most).
pub fn fmt_duration(lang: Lang, ms: u64) -> String {
    let s = ms / 1000;
    let (d, h, m) = (s / 86_400, (s % 86_400) / 3600, (s % 3600) / 60);
    match lang {
        Lang::Ja => match (d, h, m) {
            (0, 0, 0) => format!("{s}秒"),
            (0, 0, m) => format!("{m}分"),
            (0, h, m) => format!("{h}時間{m}分"),
            (d, h, _) => format!("{d}日{h}時間"),
        },
        Lang::En => match (d, h, m) {
            (0, 0, 0) => format!("{s} s"),
            (0, 0, m) => format!("{m} min"),
            (0, h, m) => format!("{h} h {m} min"),
            (d, h, _) => format!("{d} d {h} h"),
        },
    }
}

/// The Japan date of a time, `YYYY-MM-DD`.
pub fn fmt_date(t: UnixMillis) -> String {
    fmt_time(t).chars().take(10).collect()
}

/// A time as `YYYY-MM-DD HH:MM JST` (the hub's operators are in Japan).
pub fn fmt_time(t: UnixMillis) -> String {
    let d = crate::economy::calendar::jst_date_time(t);
    format!(
        "{:04}-{:02}-{:02} {:02}:{:02} JST",
        d.year, d.month, d.day, d.hour, d.minute
    )
}

pub(super) fn fmt_ago(lang: Lang, t: Option<UnixMillis>, now: UnixMillis) -> String {
    let l = lang.labels();
    match t {
        None => l.never.to_owned(),
        Some(t) => match lang {
            Lang::Ja => format!("{}{}", fmt_duration(lang, now.0.saturating_sub(t.0)), l.ago),
            Lang::En => format!(
                "{} {}",
                fmt_duration(lang, now.0.saturating_sub(t.0)),
                l.ago
            ),
        },
    }
}

/// An alert's line in the page's language.
pub(crate) fn alert_text(lang: Lang, a: &Alert, now: UnixMillis) -> String {
    let l = lang.labels();
    match a {
        Alert::Silent {
            since,
            threshold_ms,
        } => format!(
            "{} {} ({} {})",
            l.alert_silent,
            fmt_duration(lang, now.0.saturating_sub(since.0)),
            l.threshold,
            fmt_duration(lang, *threshold_ms)
        ),
        Alert::ClockSkew { skew_ms, limit_ms } => format!(
            "{} {:+.1} s ({} {} s)",
            l.alert_skew,
            *skew_ms as f64 / 1000.0,
            l.threshold,
            limit_ms / 1000
        ),
        Alert::Rejections { n } => format!("{} {n} (24h)", l.alert_rejections),
        Alert::ReplicaBehind { oldest_missing } => format!(
            "{} {}",
            l.alert_replica,
            fmt_duration(lang, now.0.saturating_sub(oldest_missing.0))
        ),
        Alert::ShardEpochBehind {
            shard,
            held,
            current,
        } => format!("{} {shard}: {held} → {current}", l.alert_epoch),
        Alert::Quarantine { items, points } => format!(
            "{} {}",
            l.alert_quarantine,
            held_text(lang, *items, *points)
        ),
    }
}

/// Held spends as `2件 12,000,000 pt` / `2 spends, 12,000,000 pt`.
pub(crate) fn held_text(lang: Lang, items: u64, points: u64) -> String {
    let p = grouped(i128::from(points));
    match lang {
        Lang::Ja => format!("{items}件 {p} pt"),
        Lang::En if items == 1 => format!("1 spend, {p} pt"),
        Lang::En => format!("{items} spends, {p} pt"),
    }
}

/// An integer with thousands separators (`1,234,567`).
pub fn grouped(v: i128) -> String {
    let digits = v.unsigned_abs().to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    if v < 0 { format!("-{out}") } else { out }
}

pub(super) fn facility_label(lang: Lang, r: &NodeRow) -> String {
    match &r.facility {
        Some(f) => format!(
            "{} <span class=\"muted\">{}</span>",
            esc(&f.name),
            esc(lang.kind(f.kind))
        ),
        None => esc(r.status.node.facility.as_str()),
    }
}

pub(super) fn url_encode(v: &str) -> String {
    let mut out = String::new();
    for b in v.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_are_shown_in_japan_time() {
        // 2026-11-24 15:00 UTC = 2026-11-25 00:00 JST.
        assert_eq!(
            fmt_time(UnixMillis(1_795_532_400_000)),
            "2026-11-25 00:00 JST"
        );
        assert_eq!(fmt_time(UnixMillis(0)), "1970-01-01 09:00 JST");
    }

    #[test]
    fn durations_in_both_languages() {
        let cases = [
            (5_000, "5秒", "5 s"),
            (180_000, "3分", "3 min"),
            (3_600_000 * 2 + 60_000, "2時間1分", "2 h 1 min"),
            (86_400_000 * 3 + 3_600_000, "3日1時間", "3 d 1 h"),
        ];
        for (ms, ja, en) in cases {
            assert_eq!(fmt_duration(Lang::Ja, ms), ja);
            assert_eq!(fmt_duration(Lang::En, ms), en);
        }
    }

    #[test]
    fn held_spends_in_both_languages() {
        assert_eq!(held_text(Lang::Ja, 2, 12_000_000), "2件 12,000,000 pt");
        assert_eq!(held_text(Lang::En, 1, 500), "1 spend, 500 pt");
        assert_eq!(held_text(Lang::En, 3, 7000), "3 spends, 7,000 pt");
    }

    #[test]
    fn thousands_separators() {
        for (v, want) in [
            (0, "0"),
            (999, "999"),
            (1000, "1,000"),
            (4_997_000, "4,997,000"),
            (-12_345, "-12,345"),
        ] {
            assert_eq!(grouped(v), want);
        }
    }
}
