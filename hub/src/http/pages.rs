//! Server-rendered pages: the overview (alerts, the node table with its
//! filters and sorting, liabilities, settlement) and a node's detail page.
//!
//! Every value is HTML-escaped where it is written. The live part of a page
//! (`#live`) is refreshed by a small script that fetches the same URL every
//! few seconds and swaps that element, so filters typed in the form outside
//! it are kept.

use super::auth::Operator;
use super::i18n::{Lang, lang_of};
use super::{AppState, now};
use crate::status::assess::{Alert, Health};
use crate::status::counters::reason_label;
use crate::status::{Fleet, Liability, NodeDetail, NodeRow};
use axum::Router;
use axum::extract::{Extension, Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use mykey_sync_proto::{MunicipalityCode, NodeId, UnixMillis};
use serde::Deserialize;
use std::fmt::Write;

/// Seconds between refreshes of the live part.
const REFRESH_S: u32 = 5;

/// The page routes.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/", get(overview))
        .route("/nodes/{id}", get(node_page))
}

/// Query of the overview: filters, sorting, language.
#[derive(Debug, Default, Deserialize)]
pub struct OverviewQuery {
    /// Municipality code, or empty for all.
    pub municipality: Option<String>,
    /// Health name, or empty for all.
    pub status: Option<String>,
    /// Text in the facility name, id or node key.
    pub q: Option<String>,
    /// Column key.
    pub sort: Option<String>,
    /// `asc` or `desc`.
    pub dir: Option<String>,
    /// `ja` or `en`.
    pub lang: Option<String>,
}

/// Sets the `lang` cookie when the language was chosen in the query.
pub(crate) fn with_lang_cookie(lang: Lang, chosen: bool, mut resp: Response) -> Response {
    if chosen {
        let c = format!(
            "lang={}; Path=/; SameSite=Strict; Max-Age=31536000",
            lang.code()
        );
        if let Ok(v) = HeaderValue::from_str(&c) {
            resp.headers_mut().append(header::SET_COOKIE, v);
        }
    }
    resp
}

async fn overview(
    State(state): State<AppState>,
    Extension(op): Extension<Operator>,
    headers: HeaderMap,
    Query(q): Query<OverviewQuery>,
) -> Response {
    let lang = lang_of(&headers, q.lang.as_deref());
    let th = state.thresholds().clone();
    let now = now();
    let data = state
        .with_hub(move |hub| Ok((hub.fleet(&th, now)?, hub.liabilities()?)))
        .await;
    let resp = match data {
        Ok((fleet, liabilities)) => {
            Html(render_overview(lang, &op.0, &fleet, &liabilities, &q)).into_response()
        }
        Err(e) => {
            tracing::error!("dashboard: {e}");
            (
                StatusCode::SERVICE_UNAVAILABLE,
                Html(esc(lang.labels().hub_unavailable)),
            )
                .into_response()
        }
    };
    with_lang_cookie(lang, q.lang.is_some(), resp)
}

async fn node_page(
    State(state): State<AppState>,
    Extension(op): Extension<Operator>,
    headers: HeaderMap,
    Path(id): Path<String>,
    Query(q): Query<OverviewQuery>,
) -> Response {
    let lang = lang_of(&headers, q.lang.as_deref());
    let l = lang.labels();
    let Ok(node) = NodeId::parse(&id) else {
        return (
            StatusCode::NOT_FOUND,
            Html(page(lang, &op.0, l.not_found, &esc(l.not_found))),
        )
            .into_response();
    };
    let th = state.thresholds().clone();
    let now = now();
    let resp = match state
        .with_hub(move |hub| hub.node_detail(&node, &th, now))
        .await
    {
        Ok(Some(d)) => Html(render_node(lang, &op.0, &d, now)).into_response(),
        Ok(None) => (
            StatusCode::NOT_FOUND,
            Html(page(lang, &op.0, l.not_found, &esc(l.not_found))),
        )
            .into_response(),
        Err(e) => {
            tracing::error!("node page: {e}");
            (
                StatusCode::SERVICE_UNAVAILABLE,
                Html(esc(l.hub_unavailable)),
            )
                .into_response()
        }
    };
    with_lang_cookie(lang, q.lang.is_some(), resp)
}

/// Escapes text for HTML content and attribute values.
pub fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

const STYLE: &str = r#"
body{font-family:"Noto Sans CJK JP","Noto Sans JP","Hiragino Sans","Yu Gothic",sans-serif;margin:0;background:#f4f5f7;color:#1d2330;font-size:14px}
header{background:#1d3557;color:#fff;padding:10px 20px;display:flex;gap:16px;align-items:center}
header h1{font-size:18px;margin:0;flex:1}
header a,header button{color:#fff;background:none;border:1px solid #fff6;border-radius:4px;padding:3px 10px;text-decoration:none;font:inherit;cursor:pointer}
main{padding:12px 20px}
section{background:#fff;border-radius:6px;padding:10px 16px;margin-bottom:14px;box-shadow:0 1px 2px #0002}
h2{font-size:16px;margin:4px 0 10px}
table{border-collapse:collapse;width:100%}
th,td{border-bottom:1px solid #e3e6ea;padding:5px 8px;text-align:left;white-space:nowrap}
th a{color:inherit}
td.num,th.num{text-align:right}
tr[data-health=alert] td:first-child{border-left:4px solid #c62828}
tr[data-health=healthy] td:first-child{border-left:4px solid #2e7d32}
tr[data-health=never-seen] td:first-child{border-left:4px solid #9e9e9e}
.badge{display:inline-block;border-radius:10px;padding:1px 8px;font-size:12px;color:#fff}
.b-alert{background:#c62828}.b-healthy{background:#2e7d32}.b-never-seen{background:#757575}.b-revoked{background:#424242}
.alerts li{margin:3px 0}.alerts li b{color:#c62828}
.summary span{margin-right:18px}
.muted{color:#6b7280;font-size:12px}
form.filters{display:flex;gap:10px;align-items:center;margin-bottom:8px}
.login{max-width:360px;margin:80px auto}
.login label{display:block;margin:10px 0 4px}
.login input{width:100%;padding:6px;box-sizing:border-box}
.error{color:#c62828}
"#;

/// Refreshes `#live` from the same URL; keeps the page if a fetch fails.
const SCRIPT: &str = r#"
(function(){
  var every = parseInt(document.body.dataset.refresh || "0", 10) * 1000;
  if (!every) return;
  function refresh(){
    fetch(location.href, {credentials: "same-origin", headers: {"Accept": "text/html"}})
      .then(function(r){ if (r.redirected && r.url.indexOf("/login") >= 0) { location.href = r.url; return null; } return r.ok ? r.text() : null; })
      .then(function(text){
        if (!text) return;
        var doc = new DOMParser().parseFromString(text, "text/html");
        var fresh = doc.getElementById("live"), old = document.getElementById("live");
        if (fresh && old) old.replaceWith(fresh);
      })
      .catch(function(){});
  }
  setInterval(refresh, every);
})();
"#;

fn page(lang: Lang, operator: &str, title: &str, body: &str) -> String {
    let l = lang.labels();
    let other = match lang {
        Lang::Ja => "en",
        Lang::En => "ja",
    };
    format!(
        r#"<!doctype html><html lang="{code}"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width">
<title>{title}</title><style>{STYLE}</style></head>
<body data-refresh="{REFRESH_S}"><header><h1><a href="/" style="border:0;padding:0">{app}</a></h1>
<span id="operator">{operator}</span><a id="lang-switch" href="?lang={other}">{other_label}</a>
<form method="post" action="/logout" style="margin:0"><button type="submit">{logout}</button></form></header>
<main>{body}</main><script>{SCRIPT}</script></body></html>"#,
        code = lang.code(),
        title = esc(title),
        app = esc(l.title),
        operator = esc(operator),
        other_label = esc(l.other_lang),
        logout = esc(l.logout),
    )
}

/// The login page.
pub(crate) fn login(lang: Lang, error: Option<&str>) -> String {
    let l = lang.labels();
    let other = match lang {
        Lang::Ja => "en",
        Lang::En => "ja",
    };
    let error = error.map_or_else(String::new, |e| {
        format!(r#"<p class="error" id="login-error">{}</p>"#, esc(e))
    });
    format!(
        r#"<!doctype html><html lang="{code}"><head><meta charset="utf-8"><title>{title}</title><style>{STYLE}</style></head>
<body><section class="login"><h2>{title}</h2>{error}
<form method="post" action="/login"><label for="name">{operator}</label><input id="name" name="name" autocomplete="username" required>
<label for="password">{password}</label><input id="password" name="password" type="password" autocomplete="current-password" required>
<p><button id="login-button" type="submit">{login}</button></p></form>
<p><a href="?lang={other}">{other_label}</a></p></section></body></html>"#,
        code = lang.code(),
        title = esc(l.title),
        operator = esc(l.operator),
        password = esc(l.password),
        login = esc(l.login),
        other_label = esc(l.other_lang),
    )
}

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

/// A time as `YYYY-MM-DD HH:MM JST` (the hub's operators are in Japan).
pub fn fmt_time(t: UnixMillis) -> String {
    let secs = t.0 / 1000 + 9 * 3600;
    let (days, rem) = ((secs / 86_400) as i64, secs % 86_400);
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02} {:02}:{:02} JST",
        rem / 3600,
        (rem % 3600) / 60
    )
}

fn fmt_ago(lang: Lang, t: Option<UnixMillis>, now: UnixMillis) -> String {
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

fn facility_label(lang: Lang, r: &NodeRow) -> String {
    match &r.facility {
        Some(f) => format!(
            "{} <span class=\"muted\">{}</span>",
            esc(&f.name),
            esc(lang.kind(f.kind))
        ),
        None => esc(r.status.node.facility.as_str()),
    }
}

/// The node table's sort keys.
const SORT_KEYS: [&str; 11] = [
    "status",
    "facility",
    "municipality",
    "last_contact",
    "reachable",
    "sessions",
    "unconfirmed",
    "oldest",
    "rejected",
    "skew",
    "version",
];

fn sort_rows(rows: &mut [&NodeRow], key: &str, desc: bool) {
    rows.sort_by(|a, b| {
        let (aa, ba) = (&a.assessment, &b.assessment);
        let name = |r: &NodeRow| {
            r.facility
                .as_ref()
                .map_or_else(String::new, |f| f.name.clone())
        };
        let ord = match key {
            "facility" => name(a).cmp(&name(b)),
            "municipality" => a
                .status
                .node
                .municipality
                .get()
                .cmp(&b.status.node.municipality.get()),
            "last_contact" => aa.last_contact.cmp(&ba.last_contact),
            "reachable" => aa.reachable_permille.cmp(&ba.reachable_permille),
            "sessions" => aa.sessions_in_window.cmp(&ba.sessions_in_window),
            "unconfirmed" => a.status.n_unconfirmed().cmp(&b.status.n_unconfirmed()),
            "oldest" => b
                .status
                .pending_since
                .map(|t| u64::MAX - t.0)
                .cmp(&a.status.pending_since.map(|t| u64::MAX - t.0))
                .reverse(),
            "rejected" => a
                .refusals_in_window
                .cmp(&b.refusals_in_window)
                .then(a.status.n_rejected.cmp(&b.status.n_rejected)),
            "skew" => skew(a).cmp(&skew(b)),
            "version" => version(a).cmp(version(b)),
            // Worst first, then the longest silent.
            _ => aa
                .health
                .cmp(&ba.health)
                .then(aa.last_contact.cmp(&ba.last_contact)),
        };
        let ord = ord.then_with(|| a.status.node.id.as_bytes().cmp(b.status.node.id.as_bytes()));
        if desc { ord.reverse() } else { ord }
    });
}

fn skew(r: &NodeRow) -> u64 {
    r.status
        .last_contact
        .as_ref()
        .map_or(0, |c| c.clock_skew_ms.unsigned_abs())
}

fn version(r: &NodeRow) -> &str {
    r.status
        .last_contact
        .as_ref()
        .map_or("", |c| c.software.as_str())
}

/// Filters and sorts the fleet's rows as the query asks.
pub(crate) fn select<'a>(fleet: &'a Fleet, q: &OverviewQuery) -> Vec<&'a NodeRow> {
    let muni = q
        .municipality
        .as_deref()
        .filter(|m| !m.is_empty())
        .and_then(|m| MunicipalityCode::parse(m).ok());
    let health = q.status.as_deref().and_then(Health::parse);
    let text =
        q.q.as_deref()
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .map(str::to_lowercase);
    let mut rows: Vec<&NodeRow> = fleet
        .nodes
        .iter()
        .filter(|r| muni.is_none_or(|m| r.status.node.municipality == m))
        .filter(|r| health.is_none_or(|h| r.assessment.health == h))
        .filter(|r| {
            text.as_ref().is_none_or(|t| {
                let f = r
                    .facility
                    .as_ref()
                    .map_or("", |f| f.name.as_str())
                    .to_lowercase();
                f.contains(t.as_str())
                    || r.status
                        .node
                        .facility
                        .as_str()
                        .to_lowercase()
                        .contains(t.as_str())
                    || r.status.node.id.to_string().starts_with(t.as_str())
            })
        })
        .collect();
    let key = q
        .sort
        .as_deref()
        .filter(|k| SORT_KEYS.contains(k))
        .unwrap_or("status");
    sort_rows(&mut rows, key, q.dir.as_deref() == Some("desc"));
    rows
}

fn query_string(q: &OverviewQuery, sort: &str, dir: &str) -> String {
    let mut s = format!("?sort={sort}&dir={dir}");
    for (k, v) in [
        ("municipality", &q.municipality),
        ("status", &q.status),
        ("q", &q.q),
    ] {
        if let Some(v) = v.as_deref().filter(|v| !v.is_empty()) {
            let _ = write!(s, "&{k}={}", url_encode(v));
        }
    }
    s
}

fn url_encode(v: &str) -> String {
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

fn render_overview(
    lang: Lang,
    operator: &str,
    fleet: &Fleet,
    liabilities: &[Liability],
    q: &OverviewQuery,
) -> String {
    let l = lang.labels();
    let now = fleet.at;
    let mut b = String::new();

    // Filters (outside #live so the refresh keeps what is typed).
    let _ = write!(
        b,
        r#"<section><form class="filters" method="get" action="/"><b>{filter}</b>
<label>{muni} <select name="municipality" id="filter-municipality"><option value="">{all}</option>"#,
        filter = esc(l.filter),
        muni = esc(l.municipality),
        all = esc(l.all)
    );
    for m in &fleet.municipalities {
        let sel = q.municipality.as_deref() == Some(m.code.to_string().as_str());
        let _ = write!(
            b,
            r#"<option value="{c}"{s}>{n} ({c})</option>"#,
            c = m.code,
            s = if sel { " selected" } else { "" },
            n = esc(&m.name)
        );
    }
    let _ = write!(
        b,
        r#"</select></label><label>{status} <select name="status" id="filter-status"><option value="">{all}</option>"#,
        status = esc(l.status),
        all = esc(l.all)
    );
    for h in Health::ALL {
        let sel = q.status.as_deref() == Some(h.name());
        let _ = write!(
            b,
            r#"<option value="{}"{}>{}</option>"#,
            h.name(),
            if sel { " selected" } else { "" },
            esc(lang.health(h))
        );
    }
    let _ = write!(
        b,
        r#"</select></label><input name="q" id="filter-q" placeholder="{ph}" value="{qv}">
<input type="hidden" name="sort" value="{sort}"><input type="hidden" name="dir" value="{dir}">
<button type="submit">{filter}</button><span class="muted">{live}</span></form></section>"#,
        ph = esc(l.search),
        qv = esc(q.q.as_deref().unwrap_or("")),
        sort = esc(q.sort.as_deref().unwrap_or("status")),
        dir = esc(q.dir.as_deref().unwrap_or("asc")),
        filter = esc(l.filter),
        live = esc(l.live_note),
    );

    let _ = write!(b, r#"<div id="live" data-updated="{}">"#, now.0);
    // Summary.
    let _ = write!(
        b,
        r#"<section class="summary" id="summary"><h2>{}</h2>"#,
        esc(l.summary)
    );
    for h in Health::ALL {
        let n = fleet
            .nodes
            .iter()
            .filter(|r| r.assessment.health == h)
            .count();
        let _ = write!(
            b,
            r#"<span data-health="{}"><span class="badge b-{}">{}</span> {n}</span>"#,
            h.name(),
            h.name(),
            esc(lang.health(h))
        );
    }
    let _ = write!(
        b,
        r#"<span class="muted">{} {}</span></section>"#,
        esc(l.updated),
        fmt_time(now)
    );

    // Alerts.
    let alerting: Vec<&NodeRow> = fleet
        .nodes
        .iter()
        .filter(|r| !r.assessment.alerts.is_empty())
        .collect();
    let n_alerts: usize = alerting.iter().map(|r| r.assessment.alerts.len()).sum();
    let _ = write!(
        b,
        r#"<section id="alerts"><h2>{} ({n_alerts})</h2>"#,
        esc(l.alerts)
    );
    if alerting.is_empty() {
        let _ = write!(b, r#"<p>{}</p>"#, esc(l.no_alerts));
    } else {
        b.push_str(r#"<ul class="alerts">"#);
        for r in alerting {
            for a in &r.assessment.alerts {
                let why = match (a, &r.last_refusal) {
                    (Alert::Rejections { .. }, Some(lr)) => {
                        format!(": {}", esc(&lang.reason(lr.label, &lr.detail)))
                    }
                    _ => String::new(),
                };
                let _ = write!(
                    b,
                    r#"<li data-alert="{kind}" data-node="{id}"><b>{text}</b>{why} — <a href="/nodes/{id}">{fac}</a> <span class="muted">{muni} · {short}</span></li>"#,
                    kind = a.name(),
                    id = r.status.node.id,
                    text = esc(&alert_text(lang, a, now)),
                    fac = r
                        .facility
                        .as_ref()
                        .map_or_else(|| esc(r.status.node.facility.as_str()), |f| esc(&f.name)),
                    muni = esc(&r.municipality_name),
                    short = r.status.node.id.short(),
                );
            }
        }
        b.push_str("</ul>");
    }
    b.push_str("</section>");

    // Nodes.
    let rows = select(fleet, q);
    let cur_sort = q.sort.as_deref().unwrap_or("status");
    let cur_desc = q.dir.as_deref() == Some("desc");
    let _ = write!(
        b,
        r#"<section id="nodes"><h2>{} ({}/{})</h2><table id="node-table"><thead><tr>"#,
        esc(l.nodes),
        rows.len(),
        fleet.nodes.len()
    );
    let cols: [(&str, &str, bool); 12] = [
        ("status", l.status, false),
        ("facility", l.facility, false),
        ("municipality", l.municipality, false),
        ("", l.node, false),
        ("last_contact", l.last_contact, false),
        ("reachable", l.reachable_24h, true),
        ("sessions", l.sessions_24h, true),
        ("unconfirmed", l.unconfirmed, true),
        ("oldest", l.oldest_unconfirmed, true),
        ("rejected", l.rejected, true),
        ("skew", l.clock_skew, true),
        ("version", l.version, false),
    ];
    for (key, label, num) in cols {
        let class = if num { r#" class="num""# } else { "" };
        if key.is_empty() {
            let _ = write!(b, "<th{class}>{}</th>", esc(label));
            continue;
        }
        let (dir, arrow) = match (cur_sort == key, cur_desc) {
            (true, false) => ("desc", " ▲"),
            (true, true) => ("asc", " ▼"),
            (false, _) => ("asc", ""),
        };
        let _ = write!(
            b,
            r#"<th{class}><a data-sort="{key}" href="/{qs}">{}{arrow}</a></th>"#,
            esc(label),
            qs = esc(&query_string(q, key, dir)),
        );
    }
    b.push_str("</tr></thead><tbody>");
    for r in rows {
        let a = &r.assessment;
        let s = &r.status;
        let alerts: Vec<&str> = a.alerts.iter().map(Alert::name).collect();
        let contact = if a.connected {
            format!(
                r#"<span class="badge b-healthy">{}</span>"#,
                esc(l.connected)
            )
        } else {
            esc(&fmt_ago(lang, a.last_contact, now))
        };
        let oldest = s.pending_since.map_or_else(
            || "—".to_owned(),
            |t| esc(&fmt_duration(lang, now.0.saturating_sub(t.0))),
        );
        let skew = s.last_contact.as_ref().map_or_else(
            || "—".to_owned(),
            |c| format!("{:+.1} s", c.clock_skew_ms as f64 / 1000.0),
        );
        let _ = write!(
            b,
            r#"<tr data-node="{id}" data-health="{h}" data-alerts="{al}" data-municipality="{mc}">
<td><span class="badge b-{h}">{hl}</span></td><td class="facility">{fac}</td><td>{muni}</td>
<td><a href="/nodes/{id}">{short}</a></td><td class="last-contact">{contact}</td>
<td class="num">{reach:.1}% </td><td class="num">{sessions}</td><td class="num unconfirmed">{unconf}</td>
<td class="num">{oldest}</td><td class="num rejected">{rej24} / {rej}</td><td class="num">{skew}</td><td>{ver}</td></tr>"#,
            id = s.node.id,
            h = a.health.name(),
            al = alerts.join(" "),
            mc = s.node.municipality,
            hl = esc(lang.health(a.health)),
            fac = facility_label(lang, r),
            muni = esc(&r.municipality_name),
            short = s.node.id.short(),
            reach = f64::from(a.reachable_permille) / 10.0,
            sessions = a.sessions_in_window,
            unconf = s.n_unconfirmed(),
            rej24 = r.refusals_in_window,
            rej = s.n_rejected + s.n_incidents,
            ver = esc(version(r)),
        );
    }
    b.push_str("</tbody></table></section>");

    // Liabilities.
    let _ = write!(
        b,
        r#"<section id="liabilities"><h2>{}</h2><table><thead><tr><th>{}</th><th class="num">{}</th><th class="num">{}</th><th class="num">{}</th><th class="num">{}</th><th class="num">{}</th></tr></thead><tbody>"#,
        esc(l.liabilities),
        esc(l.municipality),
        esc(l.wallets),
        esc(l.debts),
        esc(l.budgets),
        esc(l.payables),
        esc(l.expired),
    );
    for li in liabilities {
        let Some(m) = &li.municipality else { continue };
        let _ = write!(
            b,
            r#"<tr data-municipality="{c}"><td>{n} ({c})</td><td class="num wallets">{} {p}</td><td class="num">{} {p}</td><td class="num">{} {p}</td><td class="num">{} {p}</td><td class="num">{} {p}</td></tr>"#,
            grouped(li.wallets),
            grouped(li.debts),
            grouped(li.budgets),
            grouped(li.merchant_payables),
            grouped(li.expired),
            c = m.code,
            n = esc(&m.name),
            p = esc(l.points),
        );
    }
    b.push_str("</tbody></table></section>");

    // Settlement: nothing to show until the settlement module exists.
    let _ = write!(
        b,
        r#"<section id="settlement"><h2>{}</h2><p data-settlement="none">{}</p></section>"#,
        esc(l.settlement),
        esc(l.settlement_none)
    );
    b.push_str("</div>");
    page(lang, operator, l.title, &b)
}

fn render_node(lang: Lang, operator: &str, d: &NodeDetail, now: UnixMillis) -> String {
    let l = lang.labels();
    let r = &d.row;
    let s = &r.status;
    let a = &r.assessment;
    let mut b = String::new();
    let _ = write!(b, r#"<p><a href="/">← {}</a></p>"#, esc(l.back));
    let _ = write!(
        b,
        r#"<div id="live" data-updated="{}"><section id="node" data-node="{}" data-health="{}"><h2>{} <span class="badge b-{}">{}</span></h2><table>"#,
        now.0,
        s.node.id,
        a.health.name(),
        facility_label(lang, r),
        a.health.name(),
        esc(lang.health(a.health)),
    );
    let contact = s.last_contact.as_ref();
    let kv: Vec<(&str, String)> = vec![
        (l.node, esc(&s.node.id.to_string())),
        (
            l.municipality,
            format!("{} ({})", esc(&r.municipality_name), s.node.municipality),
        ),
        (l.enrolled, fmt_time(s.node.enrolled_at)),
        (
            l.last_contact,
            if a.connected {
                esc(l.connected)
            } else {
                esc(&fmt_ago(lang, a.last_contact, now))
            },
        ),
        (
            l.reachable_24h,
            format!("{:.1}%", f64::from(a.reachable_permille) / 10.0),
        ),
        (l.sessions_24h, a.sessions_in_window.to_string()),
        (
            l.reported_seq,
            contact.map_or_else(|| "—".into(), |c| c.reported_last_seq.to_string()),
        ),
        (l.processed_seq, s.chain.processed_seq.to_string()),
        (l.unconfirmed, s.n_unconfirmed().to_string()),
        (
            l.oldest_unconfirmed,
            s.pending_since
                .map_or_else(|| "—".into(), |t| esc(&fmt_ago(lang, Some(t), now))),
        ),
        (
            l.rejected,
            format!(
                "{} (24h) / {}",
                r.refusals_in_window,
                s.n_rejected + s.n_incidents
            ),
        ),
        (
            l.clock_skew,
            contact.map_or_else(
                || "—".into(),
                |c| format!("{:+.1} s", c.clock_skew_ms as f64 / 1000.0),
            ),
        ),
        (l.version, esc(contact.map_or("—", |c| c.software.as_str()))),
        (
            l.fact_cursor,
            contact.map_or_else(|| "—".into(), |c| c.fact_cursor.to_string()),
        ),
        (
            l.replica,
            r.oldest_missing_fact
                .map_or_else(|| esc(l.none), |t| esc(&fmt_ago(lang, Some(t), now))),
        ),
    ];
    for (k, v) in kv {
        let _ = write!(b, "<tr><th>{}</th><td>{v}</td></tr>", esc(k));
    }
    let _ = write!(b, r#"</table><p class="muted">{}</p>"#, esc(l.replica_note));
    if !a.alerts.is_empty() {
        b.push_str(r#"<ul class="alerts">"#);
        for al in &a.alerts {
            let _ = write!(
                b,
                r#"<li data-alert="{}"><b>{}</b></li>"#,
                al.name(),
                esc(&alert_text(lang, al, now))
            );
        }
        b.push_str("</ul>");
    }
    b.push_str("</section>");

    let _ = write!(
        b,
        r#"<section id="sessions"><h2>{}</h2><table><thead><tr><th>{}</th><th>{}</th></tr></thead><tbody>"#,
        esc(l.recent_sessions),
        esc(l.opened),
        esc(l.closed)
    );
    for sp in &d.sessions {
        let end = match sp.closed_at {
            Some(c) => fmt_time(c),
            None => format!("{} ({})", esc(l.open_now), fmt_time(sp.seen_at)),
        };
        let _ = write!(
            b,
            "<tr><td>{}</td><td>{end}</td></tr>",
            fmt_time(sp.opened_at)
        );
    }
    b.push_str("</tbody></table></section>");

    let _ = write!(
        b,
        r#"<section id="rejections"><h2>{}</h2><table><thead><tr><th>{}</th><th>{}</th><th>{}</th></tr></thead><tbody>"#,
        esc(l.recent_rejections),
        esc(l.seq),
        esc(l.reason),
        esc(l.at)
    );
    for rj in &d.rejections {
        let _ = write!(
            b,
            r#"<tr data-reason="{}"><td>{}</td><td>{}</td><td>{}</td></tr>"#,
            reason_label(&rj.reason),
            rj.seq,
            esc(&lang.reason(reason_label(&rj.reason), &rj.reason.to_string())),
            fmt_time(rj.at)
        );
    }
    b.push_str("</tbody></table></section>");

    let _ = write!(
        b,
        r#"<section id="incidents"><h2>{}</h2><ul>"#,
        esc(l.incidents)
    );
    for i in &d.incidents {
        let _ = write!(
            b,
            "<li>{} {} seq {} — {}</li>",
            fmt_time(i.at),
            i.kind.name(),
            i.seq.map_or_else(|| "—".into(), |s| s.to_string()),
            esc(&i.detail)
        );
    }
    b.push_str("</ul></section></div>");
    page(lang, operator, l.title, &b)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escaping_covers_markup_and_quotes() {
        assert_eq!(
            esc(r#"<a href="x">'&'</a>"#),
            "&lt;a href=&quot;x&quot;&gt;&#39;&amp;&#39;&lt;/a&gt;"
        );
        assert_eq!(esc("図書館"), "図書館");
    }

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

    #[test]
    fn query_strings_keep_filters_and_encode_text() {
        let q = OverviewQuery {
            municipality: Some("131059".into()),
            q: Some("中央 図書館".into()),
            ..OverviewQuery::default()
        };
        assert_eq!(
            query_string(&q, "last_contact", "desc"),
            "?sort=last_contact&dir=desc&municipality=131059&q=%E4%B8%AD%E5%A4%AE%20%E5%9B%B3%E6%9B%B8%E9%A4%A8"
        );
    }
}
