//! The status history as pictures: server-rendered inline SVG, no script.
//!
//! Per node (its page) and per municipality (the overview), a day's or a
//! week's charts of reachability, unconfirmed transactions, the wait of the
//! oldest of them, refusals and clock skew; a day's sparkline per row of the
//! node table. The series come from [`crate::status::history::series`].
//!
//! What nothing measured is never drawn as a value: a line stops where the
//! node was down (a red band) or no hub ran (a grey band) and starts again
//! after, as a new `path.run`; lines are steps over their buckets, so a
//! drain is a falling staircase, never a slope across a gap. Each `svg`
//! carries its figures for tests and readers: `data-metric`,
//! `data-window`, `data-runs` (separate stretches of line),
//! `data-values` (one per bucket, empty where nothing is known).
//! Every text is escaped; times on the axes are Japan time.

use super::format::fmt_duration;
use super::layout::esc;
use crate::http::i18n::Lang;
use crate::status::NodeRow;
use crate::status::assess::HOUR_MS;
use crate::status::history::{Metric, Series, Window, series};
use crate::store::history::HistorySample;
use mykey_sync_proto::{MunicipalityCode, NodeId, UnixMillis};
use serde::Deserialize;
use std::collections::HashMap;
use std::fmt::Write;

/// `?window=24h|7d` of the overview and the node page.
#[derive(Debug, Default, Deserialize)]
pub struct ChartQuery {
    /// `24h` (default) or `7d`.
    pub window: Option<String>,
}

impl ChartQuery {
    /// The chart query of a page's `uri`, and the whole query as it came
    /// (for links to the other window).
    pub fn of(uri: &axum::http::Uri) -> (ChartQuery, &str) {
        let q = axum::extract::Query::<ChartQuery>::try_from_uri(uri)
            .map(|q| q.0)
            .unwrap_or_default();
        (q, uri.query().unwrap_or(""))
    }

    /// The window asked for; an unknown one is an error that says what to write.
    pub fn window(&self) -> Result<Window, String> {
        self.window
            .as_deref()
            .filter(|w| !w.is_empty())
            .map_or(Ok(Window::Day), Window::parse)
    }
}

/// The charts of one page.
#[derive(Debug, Default)]
pub struct Charts {
    sparks: HashMap<NodeId, String>,
    section: String,
}

impl Charts {
    /// The overview's: a sparkline per node and a chart group per
    /// municipality shown, from `samples` (every node's, the last day at
    /// least and `window`).
    pub fn overview(
        lang: Lang,
        nodes: &[NodeRow],
        municipalities: &[(MunicipalityCode, String)],
        samples: &[HistorySample],
        window: Window,
        now: UnixMillis,
        query: &str,
    ) -> Charts {
        let mut by_node: HashMap<NodeId, Vec<&HistorySample>> = HashMap::new();
        for s in samples {
            by_node.entry(s.node).or_default().push(s);
        }
        let none = vec![];
        let (day_from, day_to) = Window::Day.range(now);
        let mut sparks = HashMap::new();
        for r in nodes {
            let id = r.status.node.id;
            let mine = by_node.get(&id).unwrap_or(&none);
            sparks.insert(id, sparkline(lang, mine, day_from, day_to));
        }
        let t = texts(lang);
        let mut section = format!(
            r#"<section id="history" data-window="{}"><h2>{}</h2>{}"#,
            window.name(),
            esc(t.section),
            window_links(lang, window, query)
        );
        for (code, name) in municipalities {
            let group: Vec<&HistorySample> = nodes
                .iter()
                .filter(|r| r.status.node.municipality == *code)
                .filter_map(|r| by_node.get(&r.status.node.id))
                .flatten()
                .copied()
                .collect();
            let _ = write!(
                section,
                r#"<div class="history-group" data-municipality="{code}"><h3>{} ({code})</h3>{}</div>"#,
                esc(name),
                figures(lang, &group, window, now)
            );
        }
        section.push_str("</section>");
        Charts { sparks, section }
    }

    /// The node table's extra header cell (priority 2: hidden on narrower
    /// screens, as the table's other secondary columns are).
    pub fn spark_header(&self, lang: Lang) -> String {
        format!(r#"<th class="spark p2">{}</th>"#, esc(texts(lang).spark))
    }

    /// A node's sparkline cell.
    pub fn spark_cell(&self, node: &NodeId, lang: Lang) -> String {
        format!(
            r#"<td class="spark p2" data-label="{}">{}</td>"#,
            esc(texts(lang).spark),
            self.sparks.get(node).map_or("", String::as_str)
        )
    }

    /// The per-municipality section.
    pub fn section(&self) -> &str {
        &self.section
    }
}

/// A node page's section: its charts over `window`, from its `samples`.
pub fn node_section(
    lang: Lang,
    node: &NodeId,
    samples: &[HistorySample],
    window: Window,
    now: UnixMillis,
    query: &str,
) -> String {
    format!(
        r#"<section id="history" data-node="{node}" data-window="{}"><h2>{}</h2>{}{}</section>"#,
        window.name(),
        esc(texts(lang).section),
        window_links(lang, window, query),
        figures(lang, &samples.iter().collect::<Vec<_>>(), window, now)
    )
}

struct Texts {
    section: &'static str,
    spark: &'static str,
    day: &'static str,
    week: &'static str,
    legend: &'static str,
}

fn texts(lang: Lang) -> Texts {
    match lang {
        Lang::Ja => Texts {
            section: "同期の履歴",
            spark: "24時間",
            day: "24時間",
            week: "7日間",
            legend: "赤: ノード停止 · 灰色: 記録なし(ハブ停止中) · 時刻は日本時間",
        },
        Lang::En => Texts {
            section: "Sync history",
            spark: "24 h",
            day: "24 h",
            week: "7 days",
            legend: "red: node down · grey: nothing recorded (hub not running) · times in JST",
        },
    }
}

fn title(lang: Lang, m: Metric) -> &'static str {
    match (lang, m) {
        (Lang::Ja, Metric::Reachable) => "到達率",
        (Lang::Ja, Metric::Unconfirmed) => "未確認の取引",
        (Lang::Ja, Metric::OldestUnconfirmed) => "最古の未確認の待ち時間",
        (Lang::Ja, Metric::Refusals) => "拒否",
        (Lang::Ja, Metric::ClockSkew) => "時刻のずれ",
        (Lang::En, Metric::Reachable) => "Reachable",
        (Lang::En, Metric::Unconfirmed) => "Unconfirmed transactions",
        (Lang::En, Metric::OldestUnconfirmed) => "Oldest unconfirmed, waiting",
        (Lang::En, Metric::Refusals) => "Refusals",
        (Lang::En, Metric::ClockSkew) => "Clock skew",
    }
}

/// Links to the other window, keeping the rest of the page's `query`
/// (filters, sorting) as it came.
fn window_links(lang: Lang, current: Window, query: &str) -> String {
    let t = texts(lang);
    let keep: Vec<&str> = query
        .split('&')
        .filter(|p| !p.is_empty() && !p.starts_with("window="))
        .collect();
    let mut out = String::from(r#"<p class="muted history-windows">"#);
    for w in Window::ALL {
        let label = match w {
            Window::Day => t.day,
            Window::Week => t.week,
        };
        if w == current {
            let _ = write!(out, "<b>{}</b> ", esc(label));
        } else {
            let mut href = keep.join("&");
            if !href.is_empty() {
                href.push('&');
            }
            href.push_str("window=");
            href.push_str(w.name());
            let _ = write!(
                out,
                r#"<a data-window="{}" href="?{}">{}</a> "#,
                w.name(),
                esc(&href),
                esc(label),
            );
        }
    }
    let _ = write!(out, "· {}</p>", esc(t.legend));
    out
}

/// The five charts of `samples` over `window`.
fn figures(lang: Lang, samples: &[&HistorySample], window: Window, now: UnixMillis) -> String {
    let (from, to) = window.range(now);
    let mut out = String::from(
        r#"<div class="charts" style="display:grid;grid-template-columns:repeat(auto-fill,minmax(360px,1fr));gap:6px 14px">"#,
    );
    for m in Metric::ALL {
        let s = series(samples.iter().copied(), m, from, to, window.bucket_ms());
        let _ = write!(
            out,
            r#"<figure style="margin:0"><figcaption class="muted">{}</figcaption>{}</figure>"#,
            esc(title(lang, m)),
            chart_svg(lang, &s, window)
        );
    }
    out.push_str("</div>");
    out
}

const W: f64 = 420.0;
const H: f64 = 120.0;
const LEFT: f64 = 62.0;
const RIGHT: f64 = W - 10.0;
const TOP: f64 = 8.0;
const BOTTOM: f64 = H - 24.0;

const GREY: &str = "#e5e7eb";
const RED: &str = "#f8d7da";
const LINE: &str = "#1d3557";
const BAR: &str = "#2e7d32";

/// A bucket with no value to draw: the node down (`down`) or nothing
/// recorded (`nodata`); `None` where there is a value.
fn hole(s: &Series, i: usize) -> Option<&'static str> {
    let v = s.values[i];
    let missing = match (s.metric, v) {
        (_, None) => true,
        // A node down the whole bucket has nothing to show either.
        (Metric::Reachable, Some(x)) => x <= 0.0,
        _ => false,
    };
    match (missing, s.sampled[i]) {
        (false, _) => None,
        (true, true) => Some("down"),
        (true, false) => Some("nodata"),
    }
}

/// Maximal stretches `[a, b)` of buckets where `keep(i)`.
fn stretches(n: usize, keep: impl Fn(usize) -> bool) -> Vec<(usize, usize)> {
    let mut out = vec![];
    let mut start = None;
    for i in 0..=n {
        match (start, i < n && keep(i)) {
            (None, true) => start = Some(i),
            (Some(a), false) => {
                out.push((a, i));
                start = None;
            }
            _ => {}
        }
    }
    out
}

fn value_text(lang: Lang, m: Metric, v: f64) -> String {
    match m {
        Metric::Reachable => format!("{v:.0}%"),
        Metric::Unconfirmed | Metric::Refusals => format!("{v:.0}"),
        Metric::OldestUnconfirmed => fmt_duration(lang, v.max(0.0) as u64),
        Metric::ClockSkew => format!("{:+.1} s", v / 1000.0),
    }
}

fn data_value(m: Metric, v: f64) -> String {
    match m {
        Metric::Reachable => format!("{v:.1}"),
        _ => format!("{v:.0}"),
    }
}

/// The y range `(low, high)` of a series: from zero up to its peak (skew:
/// symmetric around zero), never empty.
fn y_range(s: &Series) -> (f64, f64) {
    let peak = s
        .values
        .iter()
        .flatten()
        .fold(0.0_f64, |m, v| m.max(v.abs()));
    match s.metric {
        Metric::Reachable => (0.0, 100.0),
        Metric::ClockSkew => {
            let m = peak.max(1000.0);
            (-m, m)
        }
        Metric::OldestUnconfirmed => (0.0, peak.max(60_000.0)),
        Metric::Unconfirmed | Metric::Refusals => (0.0, peak.max(1.0)),
    }
}

/// One chart as SVG.
pub fn chart_svg(lang: Lang, s: &Series, window: Window) -> String {
    let n = s.values.len();
    let bw = (RIGHT - LEFT) / n.max(1) as f64;
    let x = |i: usize| LEFT + i as f64 * bw;
    let (lo, hi) = y_range(s);
    let y = |v: f64| BOTTOM - (v.clamp(lo, hi) - lo) / (hi - lo) * (BOTTOM - TOP);
    let holes: Vec<Option<&str>> = (0..n).map(|i| hole(s, i)).collect();
    let runs = stretches(n, |i| holes[i].is_none());
    let values: Vec<String> = s
        .values
        .iter()
        .map(|v| v.map_or_else(String::new, |v| data_value(s.metric, v)))
        .collect();
    let label = format!("{} ({})", title(lang, s.metric), window.name());
    let mut out = format!(
        r#"<svg class="chart" xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {W} {H}" width="100%" role="img" aria-label="{l}" data-metric="{m}" data-window="{w}" data-from="{f}" data-bucket-ms="{b}" data-runs="{r}" data-values="{v}"><title>{l}</title>"#,
        l = esc(&label),
        m = s.metric.name(),
        w = window.name(),
        f = s.from.0,
        b = s.bucket_ms,
        r = runs.len(),
        v = values.join(","),
    );
    // Bands where nothing is drawn, and why.
    for class in ["down", "nodata"] {
        for (a, b) in stretches(n, |i| holes[i] == Some(class)) {
            let fill = if class == "down" { RED } else { GREY };
            let _ = write!(
                out,
                r#"<rect class="{class}" x="{:.1}" y="{TOP}" width="{:.1}" height="{:.1}" fill="{fill}"/>"#,
                x(a),
                (b - a) as f64 * bw,
                BOTTOM - TOP
            );
        }
    }
    // Axes, the y range's ends and the Japan-time ticks.
    let _ = write!(
        out,
        r##"<path class="axis" d="M{LEFT} {TOP}V{BOTTOM}H{RIGHT}" fill="none" stroke="#9ca3af"/>"##
    );
    for v in [hi, lo] {
        let _ = write!(
            out,
            r##"<text class="y" x="{:.0}" y="{:.1}" text-anchor="end" font-size="10" fill="#6b7280">{}</text>"##,
            LEFT - 4.0,
            y(v) + 4.0,
            esc(&value_text(lang, s.metric, v))
        );
    }
    if s.metric == Metric::ClockSkew {
        let _ = write!(
            out,
            r##"<path class="zero" d="M{LEFT} {:.1}H{RIGHT}" stroke="#d1d5db" stroke-dasharray="3 3"/>"##,
            y(0.0)
        );
    }
    let span = n as u64 * s.bucket_ms;
    for (t, text) in ticks(s.from, span, window) {
        let tx = LEFT + (t.0 - s.from.0) as f64 / span.max(1) as f64 * (RIGHT - LEFT);
        let _ = write!(
            out,
            r##"<path class="tick" d="M{tx:.1} {BOTTOM}v4" stroke="#9ca3af"/><text class="x" x="{tx:.1}" y="{:.0}" text-anchor="middle" font-size="10" fill="#6b7280">{}</text>"##,
            BOTTOM + 16.0,
            esc(&text)
        );
    }
    match s.metric {
        Metric::Reachable | Metric::Refusals => {
            let fill = if s.metric == Metric::Refusals {
                "#c62828"
            } else {
                BAR
            };
            // One bar per stretch of equal values (thin bars side by side
            // would stripe), saying how many buckets it covers.
            let mut i = 0;
            while i < n {
                let Some(v) = s.values[i].filter(|v| *v > 0.0) else {
                    i += 1;
                    continue;
                };
                let mut j = i + 1;
                while j < n && s.values[j] == Some(v) {
                    j += 1;
                }
                let _ = write!(
                    out,
                    r#"<rect class="bar" data-buckets="{}" x="{:.2}" y="{:.1}" width="{:.2}" height="{:.1}" fill="{fill}"/>"#,
                    j - i,
                    x(i),
                    y(v),
                    ((j - i) as f64 * bw).max(1.0),
                    BOTTOM - y(v)
                );
                i = j;
            }
            // The stretches of value, as the line charts count them.
            for (a, b) in &runs {
                let _ = write!(
                    out,
                    r#"<path class="run" d="M{:.1} {BOTTOM}H{:.1}" stroke="none"/>"#,
                    x(*a),
                    x(*b)
                );
            }
        }
        Metric::Unconfirmed | Metric::OldestUnconfirmed | Metric::ClockSkew => {
            for (a, b) in &runs {
                let mut d = String::new();
                for i in *a..*b {
                    let vy = y(s.values[i].unwrap_or(0.0));
                    if i == *a {
                        let _ = write!(d, "M{:.1} {vy:.1}", x(i));
                    } else {
                        let _ = write!(d, "V{vy:.1}");
                    }
                    let _ = write!(d, "H{:.1}", x(i + 1));
                }
                let _ = write!(
                    out,
                    r#"<path class="run" d="{d}" fill="none" stroke="{LINE}" stroke-width="1.5"/>"#
                );
            }
        }
    }
    out.push_str("</svg>");
    out
}

/// Ticks on Japan-time boundaries: every three hours over a day (`15:00`),
/// every midnight over a week (`12/03`).
fn ticks(from: UnixMillis, span: u64, window: Window) -> Vec<(UnixMillis, String)> {
    const JST: u64 = 9 * HOUR_MS;
    let step = match window {
        Window::Day => 3 * HOUR_MS,
        Window::Week => 24 * HOUR_MS,
    };
    let mut t = (from.0 + JST).div_ceil(step) * step - JST;
    let mut out = vec![];
    while t < from.0 + span {
        let d = crate::economy::calendar::jst_date_time(UnixMillis(t));
        let text = match window {
            Window::Day => format!("{:02}:{:02}", d.hour, d.minute),
            Window::Week => format!("{:02}/{:02}", d.month, d.day),
        };
        out.push((UnixMillis(t), text));
        t += step;
    }
    out
}

/// A day in a table cell: the backlog as a stepped line over a strip of
/// the link's state (green up, red down, grey nothing recorded).
fn sparkline(lang: Lang, samples: &[&HistorySample], from: UnixMillis, to: UnixMillis) -> String {
    const SW: f64 = 96.0;
    const SH: f64 = 22.0;
    let bucket = Window::Day.bucket_ms();
    let reach = series(samples.iter().copied(), Metric::Reachable, from, to, bucket);
    let backlog = series(
        samples.iter().copied(),
        Metric::Unconfirmed,
        from,
        to,
        bucket,
    );
    let n = backlog.values.len();
    let bw = SW / n.max(1) as f64;
    let holes: Vec<Option<&str>> = (0..n).map(|i| hole(&backlog, i)).collect();
    let runs = stretches(n, |i| holes[i].is_none());
    let peak = backlog
        .values
        .iter()
        .flatten()
        .fold(1.0_f64, |m, v| m.max(*v));
    let y = |v: f64| 15.0 - v / peak * 13.0;
    let values: Vec<String> = backlog
        .values
        .iter()
        .map(|v| v.map_or_else(String::new, |v| format!("{v:.0}")))
        .collect();
    let shown: Vec<f64> = reach.values.iter().flatten().copied().collect();
    let mean = shown.iter().sum::<f64>() / shown.len().max(1) as f64;
    let tip = match lang {
        Lang::Ja => format!("24時間: 到達率 {mean:.0}%, 未確認の取引 最大 {peak:.0}"),
        Lang::En => format!("24 h: reachable {mean:.0}%, unconfirmed at most {peak:.0}"),
    };
    let mut out = format!(
        r#"<svg class="spark" xmlns="http://www.w3.org/2000/svg" width="{SW}" height="{SH}" viewBox="0 0 {SW} {SH}" data-metric="unconfirmed" data-window="24h" data-runs="{}" data-values="{}"><title>{}</title>"#,
        runs.len(),
        values.join(","),
        esc(&tip)
    );
    let state = |i: usize| match (reach.values[i], reach.sampled[i]) {
        (Some(v), _) if v > 0.0 => "up",
        (_, true) => "down",
        (_, false) => "nodata",
    };
    for (class, fill) in [("up", BAR), ("down", "#c62828"), ("nodata", GREY)] {
        for (a, b) in stretches(n, |i| state(i) == class) {
            let _ = write!(
                out,
                r#"<rect class="{class}" x="{:.2}" y="18" width="{:.2}" height="4" fill="{fill}"/>"#,
                a as f64 * bw,
                (b - a) as f64 * bw
            );
        }
    }
    for (a, b) in runs {
        let mut d = String::new();
        for i in a..b {
            let vy = y(backlog.values[i].unwrap_or(0.0));
            if i == a {
                let _ = write!(d, "M{:.2} {vy:.1}", i as f64 * bw);
            } else {
                let _ = write!(d, "V{vy:.1}");
            }
            let _ = write!(d, "H{:.2}", (i + 1) as f64 * bw);
        }
        let _ = write!(
            out,
            r#"<path class="run" d="{d}" fill="none" stroke="{LINE}" stroke-width="1.2"/>"#
        );
    }
    out.push_str("</svg>");
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::status::history::SLOT_MS;

    fn node() -> NodeId {
        NodeId::from_bytes(
            ed25519_dalek::SigningKey::from_bytes(&[3; 32])
                .verifying_key()
                .to_bytes(),
        )
        .unwrap()
    }

    /// Slot `k` of the test day with the node up or down and its backlog.
    fn at(k: u64, up: bool, unconfirmed: u64) -> HistorySample {
        HistorySample {
            node: node(),
            slot: UnixMillis(k * SLOT_MS),
            span_ms: SLOT_MS as u32,
            up_permille: if up { 1000 } else { 0 },
            unconfirmed,
            oldest_unconfirmed_ms: (unconfirmed > 0).then_some(k * 1000),
            refusals: 0,
            refusals_total: 0,
            clock_skew_ms: Some(250),
        }
    }

    fn attr<'a>(svg: &'a str, name: &str) -> &'a str {
        let key = format!(r#" {name}=""#);
        let at = svg
            .find(&key)
            .unwrap_or_else(|| panic!("no {name} in {svg}"))
            + key.len();
        &svg[at..at + svg[at..].find('"').unwrap()]
    }

    fn day(samples: &[HistorySample], m: Metric) -> String {
        let s = series(samples, m, UnixMillis(0), UnixMillis(12 * SLOT_MS), SLOT_MS);
        chart_svg(Lang::En, &s, Window::Day)
    }

    #[test]
    fn a_node_down_is_a_gap_not_a_line_across() {
        // Up with a backlog of 5, down for three slots, up again with 5.
        let mut s: Vec<HistorySample> = (0..4).map(|k| at(k, true, 5)).collect();
        s.extend((4..7).map(|k| at(k, false, 5)));
        s.extend((7..12).map(|k| at(k, true, 5)));
        let svg = day(&s, Metric::Unconfirmed);
        assert_eq!(attr(&svg, "data-runs"), "2", "{svg}");
        assert_eq!(svg.matches(r#"<path class="run""#).count(), 2, "{svg}");
        assert_eq!(attr(&svg, "data-values"), "5,5,5,5,,,,5,5,5,5,5");
        // The gap is marked as the node's, one band of three slots.
        assert_eq!(svg.matches(r#"<rect class="down""#).count(), 1, "{svg}");
        assert!(!svg.contains(r#"class="nodata""#), "{svg}");
        // Reachability has no bar where the node was down.
        let r = day(&s, Metric::Reachable);
        let bars: usize = r
            .split(r#"<rect class="bar" data-buckets=""#)
            .skip(1)
            .map(|b| b[..b.find('"').unwrap()].parse::<usize>().unwrap())
            .sum();
        assert_eq!(bars, 9, "{r}");
        assert_eq!(r.matches(r#"<rect class="bar""#).count(), 2, "{r}");
        assert_eq!(attr(&r, "data-runs"), "2");
        // A slot nobody recorded is grey, not red.
        let mut partial = s.clone();
        partial.retain(|x| x.slot.0 != 10 * SLOT_MS);
        let svg = day(&partial, Metric::Unconfirmed);
        assert_eq!(attr(&svg, "data-runs"), "3");
        assert_eq!(svg.matches(r#"<rect class="nodata""#).count(), 1, "{svg}");
    }

    #[test]
    fn a_drain_is_a_falling_staircase() {
        let backlog = [0, 20, 60, 120, 200, 200, 150, 90, 40, 10, 0, 0];
        let s: Vec<HistorySample> = backlog
            .iter()
            .enumerate()
            .map(|(k, n)| at(k as u64, true, *n))
            .collect();
        let svg = day(&s, Metric::Unconfirmed);
        assert_eq!(attr(&svg, "data-runs"), "1");
        let values: Vec<u64> = attr(&svg, "data-values")
            .split(',')
            .map(|v| v.parse().unwrap())
            .collect();
        assert_eq!(values, backlog);
        // The path's levels (SVG y grows downwards): up to the peak, then down.
        let d = &svg[svg.find(r#"<path class="run" d=""#).unwrap()..];
        let d = attr(d, "d");
        let levels: Vec<f64> = d
            .split(['M', 'V'])
            .filter(|p| !p.is_empty())
            .map(|p| {
                let p = p.split('H').next().unwrap();
                p.split(' ').next_back().unwrap().parse().unwrap()
            })
            .collect();
        assert_eq!(levels.len(), 12, "{d}");
        let peak = levels.iter().copied().fold(f64::MAX, f64::min);
        let top = levels.iter().position(|v| *v == peak).unwrap();
        assert!(
            levels[..=top].windows(2).all(|w| w[1] <= w[0]),
            "{levels:?}"
        );
        assert!(levels[top..].windows(2).all(|w| w[1] >= w[0]), "{levels:?}");
        assert!(levels[11] > levels[6], "the backlog drained: {levels:?}");
    }

    #[test]
    fn text_is_escaped_and_axes_are_japan_time() {
        // 2026-12-03 15:00 UTC = 12-04 00:00 JST: the week's ticks fall on
        // JST midnights, the day's on JST hours divisible by three.
        let from = UnixMillis(1_796_310_000_000 - 3 * HOUR_MS);
        let day = ticks(from, 24 * HOUR_MS, Window::Day);
        assert_eq!(day[0].1, "21:00");
        assert_eq!(day[1].1, "00:00");
        let week = ticks(from, 7 * 24 * HOUR_MS, Window::Week);
        assert_eq!(week[0].1, "12/04");
        let section = node_section(
            Lang::Ja,
            &node(),
            &[],
            Window::Day,
            from,
            "sort=status&window=24h&q=%3Cx%3E\"",
        );
        assert!(section.contains("同期の履歴"));
        // The other window's link keeps the rest of the query, escaped.
        assert!(
            section.contains(r#"href="?sort=status&amp;q=%3Cx%3E&quot;&amp;window=7d""#),
            "{section}"
        );
        let nodes: Vec<NodeRow> = vec![];
        let c = Charts::overview(
            Lang::En,
            &nodes,
            &[(
                MunicipalityCode::parse("131059").unwrap(),
                "<b>\"x\"</b>".into(),
            )],
            &[],
            Window::Week,
            from,
            "",
        );
        assert!(
            c.section()
                .contains("&lt;b&gt;&quot;x&quot;&lt;/b&gt; (131059)")
        );
        assert!(!c.section().contains("<b>\"x\""));
        // Nothing recorded at all: one grey band and no line.
        let svg = chart_svg(
            Lang::En,
            &series(
                &[],
                Metric::Unconfirmed,
                from,
                from.plus_ms(HOUR_MS),
                SLOT_MS,
            ),
            Window::Day,
        );
        assert_eq!(attr(&svg, "data-runs"), "0");
        assert_eq!(svg.matches(r#"class="nodata""#).count(), 1);
    }

    #[test]
    fn a_sparkline_breaks_where_the_node_was_down() {
        let mut s: Vec<HistorySample> = (0..4).map(|k| at(k, true, 2)).collect();
        s.extend((4..7).map(|k| at(k, false, 2)));
        s.extend((7..12).map(|k| at(k, true, 1)));
        let s: Vec<&HistorySample> = s.iter().collect();
        let svg = sparkline(Lang::Ja, &s, UnixMillis(0), UnixMillis(12 * SLOT_MS));
        assert_eq!(attr(&svg, "data-runs"), "2", "{svg}");
        assert_eq!(svg.matches(r#"<rect class="down""#).count(), 1);
        assert_eq!(svg.matches(r#"<rect class="up""#).count(), 2);
    }
}
