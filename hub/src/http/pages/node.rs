//! A node's page: its facts (with its quarantine flag), alerts, recent
//! sessions, rejections and incidents.

use super::format::{alert_text, facility_label, fmt_ago, fmt_time, held_text};
use super::help::alert_help_href;
use super::layout::{esc, page};
use crate::http::i18n::Lang;
use crate::observed::counters::reason_label;
use crate::status::NodeDetail;
use mykey_sync_proto::UnixMillis;
use std::fmt::Write;

pub(super) fn render_node(
    lang: Lang,
    operator: &str,
    d: &NodeDetail,
    now: UnixMillis,
    charts: &str,
) -> String {
    let l = lang.labels();
    let r = &d.row;
    let s = &r.status;
    let a = &r.assessment;
    let mut b = String::new();
    let _ = write!(b, r#"<p><a href="/">← {}</a></p>"#, esc(l.back));
    let _ = write!(
        b,
        r#"<div id="live" data-updated="{}" data-stream="/events/nodes/{}"><section id="node" data-node="{}" data-health="{}"><h2>{} <span class="badge b-{}">{}</span></h2><table>"#,
        now.0,
        s.node.id,
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
        (
            l.quarantine_held,
            if r.quarantine_held.items == 0 {
                esc(l.none)
            } else {
                format!(
                    r#"<a class="badge b-alert" id="quarantine-flag" data-items="{}" data-points="{}" href="/quarantine?node={}">{}</a>"#,
                    r.quarantine_held.items,
                    r.quarantine_held.points,
                    s.node.id,
                    esc(&held_text(
                        lang,
                        r.quarantine_held.items,
                        r.quarantine_held.points
                    ))
                )
            },
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
        (
            l.shard_epochs,
            if r.shard_epochs.is_empty() {
                esc(l.none)
            } else {
                r.shard_epochs
                    .iter()
                    .map(|e| {
                        let mut t = format!("{} e{}", esc(&e.shard), e.held);
                        if e.held < e.current {
                            t.push_str(&format!(" (→ e{})", e.current));
                        }
                        format!(r#"<span class="epoch">{t}</span>"#)
                    })
                    .collect::<Vec<_>>()
                    .join(", ")
            },
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
                r#"<li data-alert="{}"><b>{}</b> <a class="help" href="{}">{}</a></li>"#,
                al.name(),
                esc(&alert_text(lang, al, now)),
                alert_help_href(al.name()),
                esc(l.what_to_do)
            );
        }
        b.push_str("</ul>");
    }
    b.push_str("</section>");
    b.push_str(charts);

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
            r#"<li data-kind="{}">{} <b>{}</b> seq {} — {}</li>"#,
            i.kind.name(),
            fmt_time(i.at),
            esc(lang.incident(i.kind)),
            i.seq.map_or_else(|| "—".into(), |s| s.to_string()),
            esc(&i.detail)
        );
    }
    b.push_str("</ul></section></div>");
    page(lang, operator, l.title, &b)
}
