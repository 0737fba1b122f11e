//! The voucher incidents page (`/vouchers`): each printed voucher the hub
//! saw redeemed again (or redeemed from a cancelled batch), with both
//! signed redemptions (node, facility, seq, transaction, the node's signed
//! time and the hub's), and what the hub paid the later one: in full or in
//! part within the node's offline voucher cap, or not at all.

use super::format::fmt_time;
use super::layout::{esc, page};
use crate::http::i18n::Lang;
use crate::store::voucher::VoucherRedemptionRow;
use crate::voucher::incidents::VoucherIncident;
use mykey_voucher::{ExpiryDate, Serial};
use std::fmt::Write;

pub(super) fn render_vouchers(lang: Lang, operator: &str, items: &[VoucherIncident]) -> String {
    let en = matches!(lang, Lang::En);
    let t = |ja: &'static str, e: &'static str| if en { e } else { ja };
    let l = lang.labels();
    let mut b = String::new();
    let _ = write!(b, r#"<p><a href="/">← {}</a></p>"#, esc(l.back));
    let _ = write!(
        b,
        r#"<section id="voucher-incidents"><h2>{}</h2><p class="muted">{}</p>"#,
        t("ポイント券の二重利用", "Vouchers redeemed twice"),
        t(
            "先にハブに届いた利用が精算で支払われます。後の利用は、その店のノードがその時オフラインだった場合に限り、ノードのオフライン上限の範囲で支払われます。",
            "The redemption the hub had first is paid in settlement; a later one is paid only if its node was offline at the time, within the node's offline voucher cap."
        )
    );
    if items.is_empty() {
        let _ = write!(
            b,
            r#"<p id="voucher-incidents-none">{}</p></section>"#,
            t("二重利用はありません。", "No voucher was redeemed twice.")
        );
        return page(lang, operator, t("ポイント券", "Vouchers"), &b);
    }
    let _ = write!(
        b,
        "<table><thead><tr><th>{}</th><th>{}</th><th>{}</th><th>{}</th><th>{}</th></tr></thead><tbody>",
        t("券", "Voucher"),
        t("先の利用（支払済み）", "First redemption (paid)"),
        t("後の利用", "Later redemption"),
        t("支払い", "Paid"),
        t("署名された取引", "Signed transactions"),
    );
    for i in items {
        let serial = Serial {
            batch: i.batch.id,
            index: i.again.index,
        };
        let first = match &i.first {
            Some(f) => redemption(f, en),
            None => esc(t(
                "なし（発行が取り消された券）",
                "none (the batch was cancelled)",
            )),
        };
        let verdict = match (i.verdict(), en) {
            ("paid", false) => "上限内で全額支払い",
            ("paid", true) => "paid in full within the cap",
            ("paid-in-part", false) => "上限まで一部支払い",
            ("paid-in-part", true) => "paid in part: the cap ran out",
            (_, false) => "支払いなし",
            (_, true) => "not paid",
        };
        let signed = |r: &VoucherRedemptionRow| {
            format!(
                "<details><summary>tx {}</summary><code class=\"signed\">{}</code></details>",
                esc(&r.tx.short()),
                hex::encode(&r.signed)
            )
        };
        let _ = write!(
            b,
            r#"<tr data-serial="{serial}" data-verdict="{v}" data-node="{node}"><td>{serial}<br><span class="muted">{m} · {pts} · {exp}</span></td><td>{first}</td><td>{again}</td><td class="verdict">{paid} / {pts}<br>{verdict}</td><td>{s1}{s2}</td></tr>"#,
            v = i.verdict(),
            node = i.again.node,
            m = i.batch.municipality,
            pts = i.points(),
            exp = ExpiryDate::from_days(i.batch.expires_days),
            again = redemption(&i.again, en),
            paid = i.again.paid,
            verdict = esc(verdict),
            s1 = i.first.as_ref().map(signed).unwrap_or_default(),
            s2 = signed(&i.again),
        );
    }
    b.push_str("</tbody></table></section>");
    page(lang, operator, t("ポイント券", "Vouchers"), &b)
}

/// One redemption: facility, node (linked), seq, the node's signed time and
/// the hub's.
fn redemption(r: &VoucherRedemptionRow, en: bool) -> String {
    format!(
        r#"{fac}<br><a href="/nodes/{id}">{short}</a> seq {seq}<br><span class="muted">{signed} {nt}<br>{hub} {at}</span>"#,
        fac = esc(r.facility.as_str()),
        id = r.node,
        short = esc(&r.node.short()),
        seq = r.seq,
        signed = if en { "node signed" } else { "ノード署名" },
        nt = fmt_time(r.node_time),
        hub = if en { "hub had it" } else { "ハブ受領" },
        at = fmt_time(r.at),
    )
}
