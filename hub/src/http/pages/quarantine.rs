//! The quarantine page (`/quarantine`): spends held beyond nodes' bounds,
//! filtered by state, municipality, facility and node, each with its rule,
//! detail, node, seq, time and decision. Deciding is for the CLI and the
//! API (a JSON POST), not for a form on this page.

use super::format::{fmt_time, grouped};
use super::layout::{esc, page};
use crate::http::i18n::Lang;
use crate::quarantine::query::ListQuery;
use crate::store::bounds::QuarantineRow;
use std::fmt::Write;

pub(super) fn render_quarantine(
    lang: Lang,
    operator: &str,
    items: &[QuarantineRow],
    truncated: bool,
    q: &ListQuery,
    now: mykey_sync_proto::UnixMillis,
) -> String {
    let l = lang.labels();
    let mut b = String::new();
    let _ = write!(b, r#"<p><a href="/">← {}</a></p>"#, esc(l.back));
    let state = q.state.as_deref().unwrap_or("held");
    let _ = write!(
        b,
        r#"<section><form class="filters" method="get" action="/quarantine"><b>{filter}</b>
<label>{status} <select name="state" id="filter-state">"#,
        filter = esc(l.filter),
        status = esc(l.status),
    );
    for s in ["held", "released", "rejected", "all"] {
        let name = if s == "all" {
            l.state_all
        } else {
            lang.quarantine_state(s)
        };
        let _ = write!(
            b,
            r#"<option value="{s}"{}>{}</option>"#,
            if s == state { " selected" } else { "" },
            esc(name)
        );
    }
    b.push_str("</select></label>");
    for (name, label, value) in [
        ("municipality", l.municipality, &q.municipality),
        ("facility", l.facility, &q.facility),
        ("node", l.node, &q.node),
    ] {
        let _ = write!(
            b,
            r#"<label>{} <input name="{name}" id="filter-{name}" value="{}"></label>"#,
            esc(label),
            esc(value.as_deref().unwrap_or(""))
        );
    }
    let _ = write!(
        b,
        r#"<button type="submit">{}</button></form><p class="muted">{}</p></section>"#,
        esc(l.filter),
        esc(l.quarantine_note)
    );

    let total: u64 = items.iter().map(|i| i.points.get()).sum();
    let _ = write!(
        b,
        r#"<div id="live" data-updated="{}"><section id="quarantine-items" data-count="{}"><h2>{} ({}, {} {})</h2>"#,
        now.0,
        items.len(),
        esc(l.quarantine),
        items.len(),
        grouped(i128::from(total)),
        esc(l.points),
    );
    if truncated {
        let _ = write!(b, r#"<p class="error">{}</p>"#, esc(l.truncated));
    }
    if items.is_empty() {
        let _ = write!(b, "<p>{}</p>", esc(l.quarantine_none));
    } else {
        let _ = write!(
            b,
            r#"<table><thead><tr><th>#</th><th>{}</th><th class="num">{}</th><th>{}</th><th>{}</th><th>{}</th><th class="num">{}</th><th>{}</th><th>{}</th><th>{}</th><th>{}</th></tr></thead><tbody>"#,
            esc(l.status),
            esc(l.points),
            esc(l.municipality),
            esc(l.facility),
            esc(l.node),
            esc(l.seq),
            esc(l.rule),
            esc(l.detail),
            esc(l.held_at),
            esc(l.decision),
        );
        for i in items {
            let decision = match (&i.decided_by, &i.why, i.decided_at) {
                (Some(by), Some(why), Some(at)) => {
                    format!("{} — {}: {}", fmt_time(at), esc(by), esc(why))
                }
                _ => "—".to_owned(),
            };
            let _ = write!(
                b,
                r#"<tr data-id="{id}" data-state="{st}" data-rule="{rule}" data-node="{node}" data-points="{pts}"><td>{id}</td><td>{stl}</td><td class="num">{ptsg}</td><td>{m}</td><td>{f}</td><td><a href="/nodes/{node}">{short}</a></td><td class="num">{seq}</td><td>{rulel}</td><td class="detail" style="white-space:normal">{detail}</td><td>{at}</td><td style="white-space:normal">{decision}</td></tr>"#,
                id = i.id,
                st = i.state.name(),
                rule = esc(&i.rule),
                node = i.node,
                pts = i.points.get(),
                stl = esc(lang.quarantine_state(i.state.name())),
                ptsg = grouped(i128::from(i.points.get())),
                m = i.municipality,
                f = esc(i.facility.as_str()),
                short = i.node.short(),
                seq = i.seq,
                rulel = esc(lang.rule(&i.rule)),
                detail = esc(&i.detail),
                at = fmt_time(i.held_at),
            );
        }
        b.push_str("</tbody></table>");
    }
    b.push_str("</section></div>");
    page(lang, operator, l.quarantine, &b)
}
