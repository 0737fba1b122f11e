//! The dashboard's labels: Japanese by default (municipal and hub staff in
//! Japan use it), English on request (`?lang=en`, kept in a cookie).

use crate::model::{FacilityKind, IncidentKind};
use crate::status::assess::Health;
use axum::http::{HeaderMap, header};

/// A display language.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Lang {
    /// 日本語 (default).
    Ja,
    /// English.
    En,
}

impl Lang {
    /// The `lang` attribute and cookie value.
    pub fn code(self) -> &'static str {
        match self {
            Lang::Ja => "ja",
            Lang::En => "en",
        }
    }

    /// The labels.
    pub fn labels(self) -> &'static Labels {
        match self {
            Lang::Ja => &JA,
            Lang::En => &EN,
        }
    }

    /// A facility kind's name.
    pub fn kind(self, k: FacilityKind) -> &'static str {
        match (self, k) {
            (Lang::Ja, FacilityKind::Library) => "図書館",
            (Lang::Ja, FacilityKind::Museum) => "博物館",
            (Lang::Ja, FacilityKind::SportsHall) => "体育館",
            (Lang::Ja, FacilityKind::CommunityCentre) => "公民館",
            (Lang::Ja, FacilityKind::Shop) => "商店",
            (Lang::Ja, FacilityKind::Stall) => "露店",
            (Lang::En, FacilityKind::Library) => "library",
            (Lang::En, FacilityKind::Museum) => "museum",
            (Lang::En, FacilityKind::SportsHall) => "sports hall",
            (Lang::En, FacilityKind::CommunityCentre) => "community centre",
            (Lang::En, FacilityKind::Shop) => "shop",
            (Lang::En, FacilityKind::Stall) => "stall",
        }
    }

    /// A health state's name.
    pub fn health(self, h: Health) -> &'static str {
        match (self, h) {
            (Lang::Ja, Health::Alert) => "要対応",
            (Lang::Ja, Health::NeverSeen) => "未接続",
            (Lang::Ja, Health::Revoked) => "失効",
            (Lang::Ja, Health::Healthy) => "正常",
            (Lang::En, Health::Alert) => "alert",
            (Lang::En, Health::NeverSeen) => "never seen",
            (Lang::En, Health::Revoked) => "revoked",
            (Lang::En, Health::Healthy) => "healthy",
        }
    }
}

impl Lang {
    /// An incident kind's name.
    pub fn incident(self, k: IncidentKind) -> &'static str {
        match (self, k) {
            (Lang::Ja, IncidentKind::ChainRejected) => "連鎖レベルの拒否",
            (Lang::Ja, IncidentKind::SpendOnInactiveCard) => "停止・更新済みカードでの利用",
            (Lang::Ja, IncidentKind::DebtCreated) => "残高不足（債務発生）",
            (Lang::Ja, IncidentKind::ProgramOverdrawn) => "事業予算の超過",
            (Lang::Ja, IncidentKind::BeyondRight) => "利用権を超える利用",
            (Lang::Ja, IncidentKind::Quarantined) => "上限超過で隔離",
            (Lang::Ja, IncidentKind::VoucherRedeemedTwice) => "商品券の二重利用",
            (Lang::Ja, IncidentKind::VoucherUnbacked) => "発行記録の裏付けのない商品券",
            (Lang::En, IncidentKind::ChainRejected) => "refused at chain level",
            (Lang::En, IncidentKind::SpendOnInactiveCard) => "spend on an inactive card",
            (Lang::En, IncidentKind::DebtCreated) => "debt created",
            (Lang::En, IncidentKind::ProgramOverdrawn) => "programme overdrawn",
            (Lang::En, IncidentKind::BeyondRight) => "beyond its spend right",
            (Lang::En, IncidentKind::Quarantined) => "quarantined beyond its bounds",
            (Lang::En, IncidentKind::VoucherRedeemedTwice) => "voucher redeemed twice",
            (Lang::En, IncidentKind::VoucherUnbacked) => "voucher not backed by its issue",
        }
    }

    /// A quarantine rule (`card-proof`, `card-limit`, `exposure-limit`) in words.
    pub fn rule(self, rule: &str) -> &str {
        match (self, rule) {
            (Lang::Ja, "card-proof") => "PIN閾値超えでカード認証なし",
            (Lang::Ja, "card-limit") => "カードごとのオフライン上限超過",
            (Lang::Ja, "exposure-limit") => "ノードの未確認利用上限超過",
            (Lang::En, "card-proof") => "no card proof above the PIN threshold",
            (Lang::En, "card-limit") => "beyond the per-card offline limit",
            (Lang::En, "exposure-limit") => "beyond the node's exposure limit",
            (_, other) => other,
        }
    }

    /// A quarantined spend's state (`held`, `released`, `rejected`) in words.
    pub fn quarantine_state(self, state: &str) -> &str {
        match (self, state) {
            (Lang::Ja, "held") => "保留中",
            (Lang::Ja, "released") => "支払済み（解除）",
            (Lang::Ja, "rejected") => "却下",
            (_, other) => other,
        }
    }

    /// A refusal reason (label from `reason_label`) in words; English falls
    /// back to the protocol's own text.
    pub fn reason<'a>(self, label: &str, detail: &'a str) -> std::borrow::Cow<'a, str> {
        let ja = match label {
            "malformed" => "取引データが壊れている",
            "bad-signature" => "署名が検証できない（改ざんの疑い）",
            "unknown-node" => "登録されていないノード",
            "revoked-node" => "失効したノード",
            "chain-gap" => "連番の欠落",
            "chain-fork" => "連番の分岐（改ざんの疑い）",
            "not-allowed" => "この施設に許可されていない操作",
            "unknown-card" => "登録されていないカード",
            "wrong-account" => "カードとアカウントが一致しない",
            "card-suspended" => "利用停止中のカード",
            "unknown-program" => "登録されていない事業",
            "unknown-facility" => "登録されていない施設",
            "wrong-municipality" => "このノードの自治体ではない",
            "number-taken" => "利用者番号が他のアカウントに紐付け済み",
            "not-linked" => "利用者番号が紐付けられていない",
            _ => return detail.into(),
        };
        match self {
            Lang::Ja => format!("{ja}（{detail}）").into(),
            Lang::En => detail.into(),
        }
    }
}

/// The language of a request: `?lang=` first, then the `lang` cookie, else Japanese.
pub fn lang_of(headers: &HeaderMap, query: Option<&str>) -> Lang {
    let cookie = headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == "lang")
        .map(|(_, v)| v);
    match query.or(cookie) {
        Some("en") => Lang::En,
        _ => Lang::Ja,
    }
}

/// Every label of the pages.
#[derive(Debug)]
pub struct Labels {
    pub title: &'static str,
    pub login: &'static str,
    pub operator: &'static str,
    pub password: &'static str,
    pub login_failed: &'static str,
    pub login_locked: &'static str,
    pub login_busy: &'static str,
    pub hub_unavailable: &'static str,
    pub logout: &'static str,
    pub other_lang: &'static str,
    pub nodes: &'static str,
    pub alerts: &'static str,
    pub no_alerts: &'static str,
    pub liabilities: &'static str,
    pub settlement: &'static str,
    pub settlement_none: &'static str,
    pub periods_closed: &'static str,
    pub latest_period: &'static str,
    pub closed_on: &'static str,
    pub statements: &'static str,
    pub yen: &'static str,
    pub municipality: &'static str,
    pub all: &'static str,
    pub status: &'static str,
    pub filter: &'static str,
    pub search: &'static str,
    pub facility: &'static str,
    pub kind: &'static str,
    pub node: &'static str,
    pub last_contact: &'static str,
    pub connected: &'static str,
    pub reachable_24h: &'static str,
    pub sessions_24h: &'static str,
    pub unconfirmed: &'static str,
    pub oldest_unconfirmed: &'static str,
    pub rejected: &'static str,
    pub clock_skew: &'static str,
    pub version: &'static str,
    pub replica: &'static str,
    pub never: &'static str,
    pub ago: &'static str,
    pub updated: &'static str,
    pub wallets: &'static str,
    pub debts: &'static str,
    pub budgets: &'static str,
    pub payables: &'static str,
    pub expired: &'static str,
    pub points: &'static str,
    pub alert_silent: &'static str,
    pub alert_skew: &'static str,
    pub alert_rejections: &'static str,
    pub alert_replica: &'static str,
    pub threshold: &'static str,
    pub back: &'static str,
    pub recent_sessions: &'static str,
    pub opened: &'static str,
    pub closed: &'static str,
    pub open_now: &'static str,
    pub recent_rejections: &'static str,
    pub reason: &'static str,
    pub incidents: &'static str,
    pub pending: &'static str,
    pub none: &'static str,
    pub replica_note: &'static str,
    pub shard_epochs: &'static str,
    pub alert_epoch: &'static str,
    pub not_found: &'static str,
    pub summary: &'static str,
    pub fact_cursor: &'static str,
    pub seq: &'static str,
    pub processed_seq: &'static str,
    pub reported_seq: &'static str,
    pub enrolled: &'static str,
    pub live_note: &'static str,
    pub live_on: &'static str,
    pub live_reconnecting: &'static str,
    pub live_polling: &'static str,
    pub help: &'static str,
    pub what_to_do: &'static str,
    pub at: &'static str,
    pub alert_quarantine: &'static str,
    pub quarantine: &'static str,
    pub quarantine_none: &'static str,
    pub quarantine_note: &'static str,
    pub quarantine_list: &'static str,
    pub quarantine_col: &'static str,
    pub quarantine_held: &'static str,
    pub quarantine_liability: &'static str,
    pub items: &'static str,
    pub released: &'static str,
    pub rejected_items: &'static str,
    pub rule: &'static str,
    pub detail: &'static str,
    pub held_at: &'static str,
    pub decision: &'static str,
    pub state_all: &'static str,
    pub truncated: &'static str,
}

static JA: Labels = Labels {
    title: "MyKey Edge ハブ運用ダッシュボード",
    login: "ログイン",
    operator: "運用者名",
    password: "パスワード",
    login_failed: "運用者名またはパスワードが違います。",
    login_locked: "失敗が続いたため一時的にロックしました。1分後にもう一度お試しください。",
    login_busy: "ログインが混み合っています。数秒後にもう一度お試しください。",
    hub_unavailable: "ハブのデータベースに接続できません。しばらくしてからもう一度お試しください。",
    logout: "ログアウト",
    other_lang: "English",
    nodes: "ノード一覧",
    alerts: "アラート",
    no_alerts: "アラートはありません。",
    liabilities: "自治体別ポイント残高（負債）",
    settlement: "精算状況",
    settlement_none: "締めた精算期間はまだありません",
    periods_closed: "締めた期間",
    latest_period: "最新の期間",
    closed_on: "締め日時",
    statements: "明細",
    yen: "金額（円）",
    municipality: "自治体",
    all: "すべて",
    status: "状態",
    filter: "絞り込み",
    search: "施設名・ノード",
    facility: "施設",
    kind: "種別",
    node: "ノード",
    last_contact: "最終通信",
    connected: "接続中",
    reachable_24h: "到達率(24時間)",
    sessions_24h: "再接続(24時間)",
    unconfirmed: "未確認取引",
    oldest_unconfirmed: "最古の未確認",
    rejected: "拒否",
    clock_skew: "時刻ずれ",
    version: "バージョン",
    replica: "複製の遅れ",
    never: "なし",
    ago: "前",
    updated: "更新",
    wallets: "利用者残高",
    debts: "オフライン超過（債務）",
    budgets: "事業予算残",
    payables: "加盟店への支払予定",
    expired: "失効ポイント",
    points: "pt",
    alert_silent: "無通信",
    alert_skew: "時刻ずれ超過",
    alert_rejections: "取引拒否",
    alert_replica: "複製が遅れている",
    threshold: "しきい値",
    back: "一覧へ戻る",
    recent_sessions: "最近のセッション",
    opened: "開始",
    closed: "終了",
    open_now: "接続中",
    recent_rejections: "最近の拒否",
    reason: "理由",
    incidents: "インシデント",
    pending: "未確認",
    none: "なし",
    replica_note: "複製の遅れはログのファクト受信位置から、シャードのエポックはノードの最新のシャード同期から表示します。",
    shard_epochs: "保持するシャードのエポック",
    alert_epoch: "シャードのエポックが古い",
    not_found: "そのノードは登録されていません。",
    summary: "概要",
    fact_cursor: "ファクト受信位置",
    seq: "連番",
    processed_seq: "処理済み連番",
    reported_seq: "ノード申告の連番",
    enrolled: "登録日時",
    live_note: "変化があれば自動で更新（ライブ）",
    live_on: "ライブ",
    live_reconnecting: "接続が切れました。再接続中です（表示は古い可能性があります）",
    live_polling: "数秒ごとに更新",
    help: "アラートの対処",
    what_to_do: "対処方法",
    at: "時刻",
    alert_quarantine: "上限超過の取引を隔離中",
    quarantine: "隔離された取引（上限超過・支払保留）",
    quarantine_none: "隔離中の取引はありません。",
    quarantine_note: "ノードが登録上限を超えて署名した取引は、署名付きの証拠として隔離され、運用者が支払（release）か却下（reject）を決めるまで精算で支払われません。利用者への負債でもありません。決定は管理者が CLI（mykey-hub quarantine release|reject）または API（POST /api/quarantine/{id}/release・reject）で行い、誰が・なぜを記録します。",
    quarantine_list: "取引の一覧",
    quarantine_col: "隔離",
    quarantine_held: "隔離保留",
    quarantine_liability: "隔離保留（支払対象外）",
    items: "件数",
    released: "支払済み（解除）",
    rejected_items: "却下",
    rule: "超えた上限",
    detail: "詳細",
    held_at: "隔離日時",
    decision: "決定",
    state_all: "すべての状態",
    truncated: "一致が多すぎるため先頭のみ表示しています。絞り込んでください。",
};

static EN: Labels = Labels {
    title: "MyKey Edge hub operations dashboard",
    login: "Log in",
    operator: "Operator",
    password: "Password",
    login_failed: "Wrong operator name or password.",
    login_locked: "Too many failed attempts: locked for a minute. Try again later.",
    login_busy: "Too many logins at once. Try again in a few seconds.",
    hub_unavailable: "The hub's database is unavailable. Try again shortly.",
    logout: "Log out",
    other_lang: "日本語",
    nodes: "Nodes",
    alerts: "Alerts",
    no_alerts: "No alerts.",
    liabilities: "Points outstanding per municipality (liabilities)",
    settlement: "Settlement",
    settlement_none: "no period closed yet",
    periods_closed: "Periods closed",
    latest_period: "Latest period",
    closed_on: "Closed",
    statements: "Statement lines",
    yen: "Yen",
    municipality: "Municipality",
    all: "all",
    status: "Status",
    filter: "Filter",
    search: "facility or node",
    facility: "Facility",
    kind: "Kind",
    node: "Node",
    last_contact: "Last contact",
    connected: "connected",
    reachable_24h: "Reachable (24 h)",
    sessions_24h: "Reconnects (24 h)",
    unconfirmed: "Unconfirmed",
    oldest_unconfirmed: "Oldest unconfirmed",
    rejected: "Rejected",
    clock_skew: "Clock skew",
    version: "Version",
    replica: "Replica lag",
    never: "never",
    ago: "ago",
    updated: "Updated",
    wallets: "Holders' balances",
    debts: "Offline overdraft (debt)",
    budgets: "Programme budgets left",
    payables: "Owed to merchants",
    expired: "Expired",
    points: "pt",
    alert_silent: "Silent",
    alert_skew: "Clock skew beyond limit",
    alert_rejections: "Transactions rejected",
    alert_replica: "Replica behind",
    threshold: "threshold",
    back: "Back to the list",
    recent_sessions: "Recent sessions",
    opened: "Opened",
    closed: "Closed",
    open_now: "open",
    recent_rejections: "Recent rejections",
    reason: "Reason",
    incidents: "Incidents",
    pending: "pending",
    none: "none",
    replica_note: "Replica lag is shown from the node's log fact cursor; shard epochs from its latest shard sync.",
    shard_epochs: "Shard epochs held",
    alert_epoch: "Shard epoch behind",
    not_found: "No such node is enrolled.",
    summary: "Summary",
    fact_cursor: "Fact cursor",
    seq: "Seq",
    processed_seq: "Processed seq",
    reported_seq: "Seq reported by node",
    enrolled: "Enrolled",
    live_note: "updates live as things change",
    live_on: "Live",
    live_reconnecting: "Connection lost; reconnecting (figures may be stale)",
    live_polling: "refreshing every few seconds",
    help: "What to do about alerts",
    what_to_do: "What to do",
    at: "When",
    alert_quarantine: "Spends held in quarantine",
    quarantine: "Quarantine: spends beyond nodes' bounds (not paid)",
    quarantine_none: "No spends are held.",
    quarantine_note: "Spends a node signed beyond the bounds the hub enrolled are kept as signed evidence and never paid by settlement until an operator releases (pays) or rejects them; they are not owed to holders either. Admins decide with the CLI (mykey-hub quarantine release|reject) or the API (POST /api/quarantine/{id}/release or /reject); who and why are recorded.",
    quarantine_list: "List the spends",
    quarantine_col: "Quarantine",
    quarantine_held: "Held",
    quarantine_liability: "Held in quarantine (not payable)",
    items: "Spends",
    released: "Released (paid)",
    rejected_items: "Rejected",
    rule: "Bound",
    detail: "Detail",
    held_at: "Held at",
    decision: "Decision",
    state_all: "all states",
    truncated: "Too many match: only the first are shown. Narrow the filters.",
};
