//! The overview page: summary, alerts, the quarantine per facility, the node
//! table (filters, sorting), liabilities and settlement.

use super::charts::Charts;
use super::format::{
    alert_text, facility_label, fmt_ago, fmt_date, fmt_duration, fmt_time, grouped, held_text,
    url_encode,
};
use super::help::alert_help_href;
use super::layout::{esc, page};
use crate::http::i18n::Lang;
use crate::http::query::{OverviewQuery, select, version};
use crate::status::assess::{Alert, Health};
use crate::status::{Fleet, Liability, NodeRow, SettlementLine};
use mykey_sync_proto::UnixMillis;
use std::fmt::Write;

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

pub(super) fn render_overview(
    lang: Lang,
    operator: &str,
    fleet: &Fleet,
    liabilities: &[Liability],
    settlement: &[SettlementLine],
    q: &OverviewQuery,
    charts: &Charts,
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

    let _ = write!(
        b,
        r#"<div id="live" data-updated="{}" data-stream="/events">"#,
        now.0
    );
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
                    r#"<li data-alert="{kind}" data-node="{id}"><b>{text}</b>{why} — <a href="/nodes/{id}">{fac}</a> <span class="muted">{muni} · {short}</span> <a class="help" href="{help}">{todo}</a></li>"#,
                    kind = a.name(),
                    help = alert_help_href(a.name()),
                    todo = esc(l.what_to_do),
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

    render_quarantine(&mut b, lang, fleet);

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
    // Priority 1 columns always show; p2 and p3 are hidden on narrower
    // screens (the node's page has them all), and below a tablet's width
    // each row becomes a stack of labelled lines (layout.rs's style).
    let cols: [(&str, &str, bool, &str); 13] = [
        ("status", l.status, false, "p1"),
        ("facility", l.facility, false, "p1"),
        ("municipality", l.municipality, false, "p2"),
        ("", l.node, false, "p1"),
        ("last_contact", l.last_contact, false, "p1"),
        ("reachable", l.reachable_24h, true, "p1"),
        ("sessions", l.sessions_24h, true, "p3"),
        ("unconfirmed", l.unconfirmed, true, "p1"),
        ("oldest", l.oldest_unconfirmed, true, "p2"),
        ("rejected", l.rejected, true, "p2"),
        ("quarantine", l.quarantine_col, true, "p2"),
        ("skew", l.clock_skew, true, "p3"),
        ("version", l.version, false, "p3"),
    ];
    for (key, label, num, prio) in cols {
        let class = if num {
            format!(r#" class="num {prio}""#)
        } else {
            format!(r#" class="{prio}""#)
        };
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
    b.push_str(&charts.spark_header(lang));
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
        let held = r.quarantine_held;
        let quarantine = if held.items == 0 {
            "—".to_owned()
        } else {
            format!(
                r#"<a class="badge b-alert" href="/quarantine?node={id}">{}</a>"#,
                esc(&held_text(lang, held.items, held.points)),
                id = s.node.id,
            )
        };
        let _ = write!(
            b,
            r#"<tr data-node="{id}" data-health="{h}" data-alerts="{al}" data-municipality="{mc}" data-quarantine-items="{qi}" data-quarantine-points="{qp}">
<td class="p1" data-label="{l_status}"><span class="badge b-{h}">{hl}</span></td><td class="facility p1" data-label="{l_fac}">{fac}</td><td class="muni p2" data-label="{l_muni}">{muni}</td>
<td class="p1" data-label="{l_node}"><a href="/nodes/{id}">{short}</a></td><td class="last-contact p1" data-label="{l_contact}">{contact}</td>
<td class="num reachable p1" data-label="{l_reach}" data-permille="{reach_pm}">{reach:.1}%</td><td class="num p3" data-label="{l_sessions}">{sessions}</td><td class="num unconfirmed p1" data-label="{l_unconf}">{unconf}</td>
<td class="num p2" data-label="{l_oldest}">{oldest}</td><td class="num rejected p2" data-label="{l_rej}">{rej24} / {rej}</td><td class="num quarantine p2" data-label="{l_quar}">{quarantine}</td><td class="num p3" data-label="{l_skew}">{skew}</td><td class="p3" data-label="{l_ver}">{ver}</td>{spark}</tr>"#,
            spark = charts.spark_cell(&s.node.id, lang),
            l_status = esc(l.status),
            l_fac = esc(l.facility),
            l_muni = esc(l.municipality),
            l_node = esc(l.node),
            l_contact = esc(l.last_contact),
            l_reach = esc(l.reachable_24h),
            l_sessions = esc(l.sessions_24h),
            l_unconf = esc(l.unconfirmed),
            l_oldest = esc(l.oldest_unconfirmed),
            l_rej = esc(l.rejected),
            l_quar = esc(l.quarantine_col),
            l_skew = esc(l.clock_skew),
            l_ver = esc(l.version),
            reach_pm = a.reachable_permille,
            qi = held.items,
            qp = held.points,
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
    b.push_str(charts.section());

    // Liabilities.
    let _ = write!(
        b,
        r#"<section id="liabilities"><h2>{}</h2><table><thead><tr><th>{}</th><th class="num">{}</th><th class="num">{}</th><th class="num">{}</th><th class="num">{}</th><th class="num">{}</th><th class="num">{}</th></tr></thead><tbody>"#,
        esc(l.liabilities),
        esc(l.municipality),
        esc(l.wallets),
        esc(l.debts),
        esc(l.budgets),
        esc(l.payables),
        esc(l.expired),
        esc(l.quarantine_liability),
    );
    for li in liabilities {
        let Some(m) = &li.municipality else { continue };
        let _ = write!(
            b,
            r#"<tr data-municipality="{c}"><td>{n} ({c})</td><td class="num wallets">{} {p}</td><td class="num">{} {p}</td><td class="num">{} {p}</td><td class="num">{} {p}</td><td class="num">{} {p}</td><td class="num quarantine-held">{} {p}</td></tr>"#,
            grouped(li.wallets),
            grouped(li.debts),
            grouped(li.budgets),
            grouped(li.merchant_payables),
            grouped(li.expired),
            grouped(li.quarantine_held),
            c = m.code,
            n = esc(&m.name),
            p = esc(l.points),
        );
    }
    b.push_str("</tbody></table></section>");

    // Settlement, per municipality, from the closed periods.
    let _ = write!(
        b,
        r#"<section id="settlement"><h2>{}</h2><table><thead><tr><th>{}</th><th class="num">{}</th><th>{}</th><th>{}</th><th class="num">{}</th><th class="num">{}</th></tr></thead><tbody>"#,
        esc(l.settlement),
        esc(l.municipality),
        esc(l.periods_closed),
        esc(l.latest_period),
        esc(l.closed_on),
        esc(l.statements),
        esc(l.yen),
    );
    for s in settlement {
        let m = &s.municipality;
        match &s.latest {
            None => {
                let _ = write!(
                    b,
                    r#"<tr data-municipality="{c}" data-settlement="none"><td>{n} ({c})</td><td class="num">0</td><td colspan="4">{none}</td></tr>"#,
                    c = m.code,
                    n = esc(&m.name),
                    none = esc(l.settlement_none),
                );
            }
            Some(p) => {
                let _ = write!(
                    b,
                    r#"<tr data-municipality="{c}" data-settlement="closed"><td>{n} ({c})</td><td class="num">{k}</td><td>{from} – {to}</td><td>{closed}</td><td class="num">{lines}</td><td class="num">{yen}</td></tr>"#,
                    c = m.code,
                    n = esc(&m.name),
                    k = s.periods_closed,
                    from = fmt_date(p.starts_at),
                    to = fmt_date(UnixMillis(p.ends_at.0.saturating_sub(1))),
                    closed = fmt_time(p.closed_at),
                    lines = p.n_statements,
                    yen = grouped(i128::from(p.yen)),
                );
            }
        }
    }
    b.push_str("</tbody></table></section>");
    b.push_str("</div>");
    page(lang, operator, l.title, &b)
}

/// The quarantine per facility: held spends and points, decisions so far,
/// and links to the spends.
fn render_quarantine(b: &mut String, lang: Lang, fleet: &Fleet) {
    let l = lang.labels();
    let facilities = fleet.quarantine.by_facility();
    let held: Vec<_> = facilities.iter().filter(|f| f.held.items > 0).collect();
    let n_held: u64 = held.iter().map(|f| f.held.items).sum();
    let _ = write!(
        b,
        r#"<section id="quarantine" data-held-items="{n_held}"><h2>{} ({n_held})</h2><p class="muted">{}</p>"#,
        esc(l.quarantine),
        esc(l.quarantine_note)
    );
    if held.is_empty() {
        let _ = write!(b, r#"<p>{}</p>"#, esc(l.quarantine_none));
    } else {
        let _ = write!(
            b,
            r#"<table><thead><tr><th>{}</th><th>{}</th><th class="num">{}</th><th class="num">{}</th><th class="num">{}</th><th class="num">{}</th><th></th></tr></thead><tbody>"#,
            esc(l.municipality),
            esc(l.facility),
            esc(l.items),
            esc(l.quarantine_held),
            esc(l.released),
            esc(l.rejected_items),
        );
        for f in held {
            let name = fleet
                .nodes
                .iter()
                .filter_map(|r| r.facility.as_ref())
                .find(|x| x.id == f.facility)
                .map_or_else(|| f.facility.as_str().to_owned(), |x| x.name.clone());
            let muni = fleet
                .municipalities
                .iter()
                .find(|m| m.code == f.municipality)
                .map_or_else(|| f.municipality.to_string(), |m| m.name.clone());
            let _ = write!(
                b,
                r#"<tr data-facility="{fid}" data-municipality="{mc}" data-held-items="{hi}" data-held-points="{hp}"><td>{muni} ({mc})</td><td>{name} <span class="muted">{fid}</span></td><td class="num">{hi}</td><td class="num held-points">{points} {p}</td><td class="num">{ri}</td><td class="num">{ji}</td><td><a href="/quarantine?facility={fid}&amp;municipality={mc}">{list}</a></td></tr>"#,
                fid = esc(f.facility.as_str()),
                mc = f.municipality,
                hi = f.held.items,
                hp = f.held.points,
                muni = esc(&muni),
                name = esc(&name),
                points = grouped(i128::from(f.held.points)),
                p = esc(l.points),
                ri = f.released.items,
                ji = f.rejected.items,
                list = esc(l.quarantine_list),
            );
        }
        b.push_str("</tbody></table>");
    }
    let _ = write!(
        b,
        r#"<p><a id="quarantine-all" href="/quarantine?state=all">{}</a> · <a id="voucher-incidents" href="/vouchers">{}</a></p></section>"#,
        esc(l.quarantine_list),
        match lang {
            Lang::Ja => "ポイント券の二重利用",
            Lang::En => "Vouchers redeemed twice",
        }
    );
}

#[cfg(test)]
mod tests {
    use super::*;

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
