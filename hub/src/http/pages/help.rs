//! `/help`: what each kind of alert means and what to do about it, one
//! section per [`Alert`] kind (anchor `#alert-<kind>`), in Japanese and
//! English. Every alert on the overview and the node pages links here.
//!
//! [`Alert`]: crate::status::assess::Alert

use super::layout::{esc, page};
use crate::http::i18n::Lang;
use std::fmt::Write;

/// One alert kind's entry.
struct Entry {
    /// [`crate::status::assess::Alert::name`].
    kind: &'static str,
    title: &'static str,
    means: &'static str,
    steps: &'static [&'static str],
}

/// The link to an alert kind's entry.
pub(crate) fn alert_help_href(kind: &str) -> String {
    format!("/help#alert-{kind}")
}

const JA: &[Entry] = &[
    Entry {
        kind: "silent",
        title: "無通信",
        means: "施設の種類ごとに許される時間（図書館は6時間、露店は3日など）より長く、ハブがこのノードから連絡を受けていません。ノードはオフラインでも窓口を続けられ、署名した取引は送信待ちとしてノードに残っています。",
        steps: &[
            "施設でノードのPCが起動し、`mykey-node run`（systemd なら mykey-node.service）が動いているか確かめてください。",
            "ノードのPCで `mykey-node --data <ディレクトリ> doctor` を実行してください。ハブに届くか、登録されているか、時刻が合っているかを1行ずつ示します。",
            "施設のネットワークやファイアウォールがハブのアドレスへの接続を止めていないか確かめてください。",
            "つながれば、送信待ちの取引は自動で送られます。ノードを初期化し直したり、データディレクトリを消したりしないでください（未送信の取引とノードの鍵が失われます）。",
            "露店のように長くオフラインになる施設は、`mykey-hub serve --silent-after stall=5d` のように許容時間を変えられます。",
        ],
    },
    Entry {
        kind: "clock-skew",
        title: "時刻ずれ超過",
        means: "最後の接続時、ノードの時計がハブの時計と許容値（既定2分）以上ずれていました。取引の時刻や有効期限の判断が狂います。",
        steps: &[
            "ノードのPCで時刻同期を有効にしてください（例: `timedatectl set-ntp true`）。",
            "`mykey-node doctor` がハブの時計との差を示します。",
            "アラートは、ノードが次に接続したとき（`mykey-node run` の再起動でも可）の時刻で消えます。",
        ],
    },
    Entry {
        kind: "rejections",
        title: "取引拒否",
        means: "過去24時間に、ハブがこのノードの取引を拒否しました。ノードの画面の「最近の拒否」に理由が出ます。",
        steps: &[
            "ノードのページで拒否の理由を確かめてください。",
            "登録されていないカード・事業・施設、利用停止中のカード: ハブ側の登録（account, program, facility, card）を確かめてください。",
            "この施設に許可されていない操作: ノード登録時の許可操作を確かめてください。",
            "署名が検証できない、連番の欠落・分岐: 改ざんや鍵の流出の疑いがあります。`mykey-hub incidents` を確かめ、施設に連絡してください。",
            "アラートは最後の拒否から24時間で消えます。",
        ],
    },
    Entry {
        kind: "replica-behind",
        title: "複製が遅れている",
        means: "最後の連絡の時点で、ノードは15分以上前にハブが出した情報（利用停止、残高など）をまだ受け取っていませんでした。",
        steps: &[
            "ノードがつながっているか、ノードの `mykey-node status` で受信位置が進んでいるか確かめてください。",
            "ノードのログにエラーがないか確かめてください。大量の未受信があっても、つながっていれば追いつきます。",
            "ノードのログがシャードのメッセージが大きすぎると言う場合は、ハブで `mykey-hub --data <ディレクトリ> shards compact` を実行してください。",
        ],
    },
    Entry {
        kind: "shard-epoch-behind",
        title: "シャードのエポックが古い",
        means: "ノードが最後に同期したシャードが、ハブの現在のエポック（圧縮後の新しい基底）より古いままです。",
        steps: &[
            "通常は次の同期で追いつきます。ノードがつながっているか確かめてください。",
            "続く場合は、ノードのログでシャード同期の拒否を確かめ、ノードのソフトウェアを更新してください。",
        ],
    },
    Entry {
        kind: "quarantine",
        title: "上限超過の取引を隔離中",
        means: "ノードが登録された上限（PIN閾値、カードごとのオフライン上限、ノードの未確認利用上限）を超えて署名した利用が、精算で支払われずに保留されています。",
        steps: &[
            "隔離の一覧で取引を一件ずつ確かめてください。",
            "支払うなら `mykey-hub quarantine release --id N --by 名前 --why 理由`、支払わないなら `mykey-hub quarantine reject …`（理由と判断者が記録されます）。",
            "なぜ上限を超えたか（ノードの設定の改変、鍵の流出など）を施設と確かめてください。",
        ],
    },
];

const EN: &[Entry] = &[
    Entry {
        kind: "silent",
        title: "Silent",
        means: "The hub has not heard from this node for longer than its kind of facility allows (6 h for a library, 3 days for a stall, …). The node keeps serving its counter offline; what it signed waits in its outbox.",
        steps: &[
            "At the facility, check that the node's PC is on and `mykey-node run` is running (mykey-node.service under systemd).",
            "On the node's PC run `mykey-node --data <dir> doctor`: it says, one line each, whether the hub is reachable, knows the node, and agrees on the time.",
            "Check that the facility's network or firewall lets the node reach the hub's address.",
            "Once connected, the waiting transactions are sent by themselves. Do not initialise the node again or delete its data directory: its unsent transactions and its key would be lost.",
            "For facilities that are offline for long (a stall), raise the limit: `mykey-hub serve --silent-after stall=5d`.",
        ],
    },
    Entry {
        kind: "clock-skew",
        title: "Clock skew beyond limit",
        means: "At its last Hello the node's clock differed from the hub's by more than the limit (2 min by default); times and expiries it decides on are off.",
        steps: &[
            "Turn on time synchronisation on the node's PC (e.g. `timedatectl set-ntp true`).",
            "`mykey-node doctor` shows the difference from the hub's clock.",
            "The alert clears with the time the node reports at its next connection (restarting `mykey-node run` makes one).",
        ],
    },
    Entry {
        kind: "rejections",
        title: "Transactions rejected",
        means: "In the last 24 hours the hub refused some of this node's transactions; the node's page lists the reasons under recent rejections.",
        steps: &[
            "Read the reasons on the node's page.",
            "Unknown card, programme or facility, or a suspended card: check the hub's registrations (account, program, facility, card).",
            "Not allowed at this facility: check the operations the node was enrolled with.",
            "Bad signature, chain gap or fork: tampering or a leaked key is possible; look at `mykey-hub incidents` and call the facility.",
            "The alert clears 24 hours after the last rejection.",
        ],
    },
    Entry {
        kind: "replica-behind",
        title: "Replica behind",
        means: "When last heard from, the node still lacked facts (suspensions, balances) the hub issued more than 15 minutes before.",
        steps: &[
            "Check that the node is connected and that its fact cursor moves (`mykey-node status` on the node).",
            "Look for errors in the node's log; a large backlog catches up while the node is connected.",
            "If the node's log says a shard message is too large, run `mykey-hub --data <dir> shards compact` at the hub.",
        ],
    },
    Entry {
        kind: "shard-epoch-behind",
        title: "Shard epoch behind",
        means: "The node last synced a shard in an older epoch than the hub's current one (the base documents after a compaction).",
        steps: &[
            "It normally catches up at its next sync; check that the node is connected.",
            "If it persists, look for refused shard syncs in the node's log and update the node's software.",
        ],
    },
    Entry {
        kind: "quarantine",
        title: "Spends held in quarantine",
        means: "Spends the node signed beyond its enrolled bounds (PIN threshold, per-card offline limit, exposure limit) are held: settlement does not pay them until an operator decides.",
        steps: &[
            "Review the spends one by one on the quarantine page.",
            "Pay one with `mykey-hub quarantine release --id N --by NAME --why REASON`, or refuse it with `mykey-hub quarantine reject …` (who and why are recorded).",
            "Find out with the facility why the node went beyond its bounds (an edited node, a leaked key).",
        ],
    },
];

fn entries(lang: Lang) -> &'static [Entry] {
    match lang {
        Lang::Ja => JA,
        Lang::En => EN,
    }
}

pub(super) fn render_help(lang: Lang, operator: &str) -> String {
    let l = lang.labels();
    let mut b = String::new();
    let _ = write!(
        b,
        r#"<p><a href="/">← {}</a></p><section id="help"><h2>{}</h2><ul>"#,
        esc(l.back),
        esc(l.help)
    );
    for e in entries(lang) {
        let _ = write!(
            b,
            r##"<li><a href="#alert-{k}">{t}</a></li>"##,
            k = e.kind,
            t = esc(e.title)
        );
    }
    b.push_str("</ul></section>");
    for e in entries(lang) {
        let _ = write!(
            b,
            r#"<section class="help" id="alert-{k}" data-alert="{k}"><h2>{t}</h2><p>{m}</p><h3>{w}</h3><ol>"#,
            k = e.kind,
            t = esc(e.title),
            m = esc(e.means),
            w = esc(l.what_to_do),
        );
        for s in e.steps {
            let _ = write!(b, "<li>{}</li>", code_spans(s));
        }
        b.push_str("</ol></section>");
    }
    page(lang, operator, l.help, &b)
}

/// Escapes `text` and shows its `backquoted` parts as code.
fn code_spans(text: &str) -> String {
    let mut out = String::new();
    for (i, part) in text.split('`').enumerate() {
        if i % 2 == 1 {
            let _ = write!(out, "<code>{}</code>", esc(part));
        } else {
            out.push_str(&esc(part));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::quarantine::summary::Sum;
    use crate::status::assess::Alert;
    use mykey_sync_proto::UnixMillis;

    #[test]
    fn every_alert_kind_has_help_in_both_languages() {
        let every = [
            Alert::Silent {
                since: UnixMillis(0),
                threshold_ms: 1,
            },
            Alert::ClockSkew {
                skew_ms: 1,
                limit_ms: 1,
            },
            Alert::Rejections { n: 1 },
            Alert::ReplicaBehind {
                oldest_missing: UnixMillis(0),
            },
            Alert::ShardEpochBehind {
                shard: "s".into(),
                held: 0,
                current: 1,
            },
            Alert::Quarantine {
                items: Sum::default().items,
                points: 0,
            },
        ];
        // Exhaustive: a new kind of alert does not compile until it is here.
        for a in &every {
            match a {
                Alert::Silent { .. }
                | Alert::ClockSkew { .. }
                | Alert::Rejections { .. }
                | Alert::ReplicaBehind { .. }
                | Alert::ShardEpochBehind { .. }
                | Alert::Quarantine { .. } => {}
            }
        }
        for lang in [Lang::Ja, Lang::En] {
            let kinds: Vec<&str> = entries(lang).iter().map(|e| e.kind).collect();
            let want: Vec<&str> = every.iter().map(Alert::name).collect();
            assert_eq!(kinds, want, "{lang:?}");
            let html = render_help(lang, "ops");
            for a in &every {
                let href = alert_help_href(a.name());
                let anchor = href.split_once('#').unwrap().1;
                assert!(html.contains(&format!(r#"id="{anchor}""#)), "{anchor}");
            }
        }
    }

    #[test]
    fn backquotes_become_code_and_text_is_escaped() {
        assert_eq!(
            code_spans("run `a <b>` & go"),
            "run <code>a &lt;b&gt;</code> &amp; go"
        );
    }
}
