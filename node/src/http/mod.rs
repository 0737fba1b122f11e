//! The node's local status page, served by `mykey-node run` on loopback
//! (default `127.0.0.1:8781`; an address in use is an error): the same
//! facts as the hub's dashboard, from the node's side. `/` is a page in
//! Japanese (`?lang=en` for English), `/status.json` the same as JSON, which
//! `mykey-node status` reads while the node runs.
//!
//! Only the run loop knows whether the hub link is up and which LAN peers
//! are connected: it publishes a [`LiveView`] into a [`Live`] after each
//! turn; everything else is read from the store. The page binds to loopback
//! only and shows no secrets, no card keys and no usage, so it needs no login.

pub mod client;
pub mod voucher_page;

use crate::config::DataDir;
use crate::net::holder_desk::{DeskError, HolderDesk};
use crate::node::Node;
use axum::Router;
use axum::extract::{Query, State};
use axum::http::{StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use mykey_sync_proto::{NodeId, UnixMillis};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::fmt::Write;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

/// The loopback address of the status page when none is given.
pub const DEFAULT_ADDR: &str = "127.0.0.1:8781";
/// The file in the data directory that names the running page's URL.
pub const URL_FILE: &str = "status.url";
/// LAN peers remembered at most.
const MAX_PEERS: usize = 256;

/// The hub link as the run loop sees it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HubLinkState {
    /// Connected.
    Up,
    /// A dial is under way.
    Dialing,
    /// Not connected (waiting to retry).
    Down,
}

impl HubLinkState {
    /// Machine name.
    pub fn name(self) -> &'static str {
        match self {
            HubLinkState::Up => "up",
            HubLinkState::Dialing => "dialing",
            HubLinkState::Down => "down",
        }
    }
}

/// What the run loop publishes after each turn.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LiveView {
    /// The hub link.
    pub hub_link: HubLinkState,
    /// LAN peers known now, and whether each is connected.
    pub lan_peers: Vec<(NodeId, bool)>,
    /// How far each LAN peer said it holds this node's chain (its last
    /// acknowledgement of an offer).
    pub peer_holds: Vec<(NodeId, u64)>,
}

#[derive(Clone, Debug)]
struct LiveState {
    hub_link: HubLinkState,
    hub_link_since: UnixMillis,
    last_hub_contact: Option<UnixMillis>,
    peers: BTreeMap<NodeId, (bool, UnixMillis)>,
    holds: BTreeMap<NodeId, u64>,
    started: UnixMillis,
}

/// The live facts shared between the run loop and the page.
#[derive(Clone, Debug)]
pub struct Live(Arc<Mutex<LiveState>>);

impl Live {
    /// Nothing known yet; the hub link is down.
    pub fn new(now: UnixMillis) -> Live {
        Live(Arc::new(Mutex::new(LiveState {
            hub_link: HubLinkState::Down,
            hub_link_since: now,
            last_hub_contact: None,
            peers: BTreeMap::new(),
            holds: BTreeMap::new(),
            started: now,
        })))
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, LiveState> {
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Records the loop's view at `now`.
    pub fn publish(&self, v: &LiveView, now: UnixMillis) {
        let mut s = self.lock();
        if s.hub_link != v.hub_link {
            s.hub_link = v.hub_link;
            s.hub_link_since = now;
        }
        if v.hub_link == HubLinkState::Up {
            s.last_hub_contact = Some(now);
        }
        for (_, (connected, _)) in s.peers.iter_mut() {
            *connected = false;
        }
        for (node, connected) in &v.lan_peers {
            let e = s.peers.entry(*node).or_insert((false, now));
            e.0 = *connected;
            if *connected {
                e.1 = now;
            }
        }
        for (node, through) in &v.peer_holds {
            let h = s.holds.entry(*node).or_insert(0);
            *h = (*h).max(*through);
        }
        while s.peers.len() > MAX_PEERS {
            let oldest = s
                .peers
                .iter()
                .min_by_key(|(_, (_, seen))| *seen)
                .map(|(k, _)| *k);
            match oldest {
                Some(k) => {
                    s.peers.remove(&k);
                    s.holds.remove(&k);
                }
                None => break,
            };
        }
    }
}

/// The facts the page and `mykey-node status` show (the JSON body).
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize, PartialEq, Eq)]
pub struct StatusJson {
    /// This node.
    pub node: String,
    /// Its facility, once the hub told it.
    pub facility: Option<String>,
    /// Its municipality.
    pub municipality: Option<String>,
    /// `up`, `dialing` or `down`.
    pub hub_link: String,
    /// Since when the link is in that state.
    pub hub_link_since_ms: u64,
    /// Last time the link was seen up.
    pub last_hub_contact_ms: Option<u64>,
    /// Highest seq signed.
    pub last_seq: u64,
    /// Transactions not yet receipted by the hub.
    pub pending: u64,
    /// Signed time of the oldest of them.
    pub oldest_pending_at_ms: Option<u64>,
    /// Accepted by the hub.
    pub accepted: u64,
    /// Rejected by the hub (with reasons in `troubled`).
    pub rejected: u64,
    /// Time of the last receipt stored.
    pub last_receipt_at_ms: Option<u64>,
    /// Fact cursor.
    pub fact_cursor: u64,
    /// LAN peers seen since the node started.
    pub lan_peers: Vec<PeerJson>,
    /// Own transactions with a reason (rejected or stuck).
    pub troubled: Vec<TroubleJson>,
    /// When the run loop started.
    pub running_since_ms: u64,
}

/// A LAN peer.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize, PartialEq, Eq)]
pub struct PeerJson {
    /// Its node key.
    pub node: String,
    /// Connected now.
    pub connected: bool,
    /// Last seen connected.
    pub last_seen_ms: u64,
    /// The highest seq of this node's chain the peer said it holds (its
    /// last acknowledgement); `None`: it has acknowledged nothing since
    /// this node started.
    #[serde(default)]
    pub holds_through: Option<u64>,
}

/// A troubled transaction.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize, PartialEq, Eq)]
pub struct TroubleJson {
    /// Seq.
    pub seq: u64,
    /// Kind.
    pub kind: String,
    /// Status.
    pub status: String,
    /// Reason.
    pub reason: Option<String>,
}

#[derive(Clone)]
struct PageState {
    node: Arc<Mutex<Node>>,
    live: Live,
}

/// Reads the store and the live view into one [`StatusJson`].
fn collect(st: &PageState) -> Result<StatusJson, crate::store::StoreError> {
    let s = st
        .node
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .status()?;
    let live = st.live.lock().clone();
    Ok(StatusJson {
        node: s.node.to_string(),
        facility: s.limits.as_ref().map(|l| l.facility.to_string()),
        municipality: s.limits.as_ref().map(|l| l.municipality.to_string()),
        hub_link: live.hub_link.name().to_owned(),
        hub_link_since_ms: live.hub_link_since.0,
        last_hub_contact_ms: live.last_hub_contact.map(|t| t.0),
        last_seq: s.last_seq,
        pending: s.outbox.pending,
        oldest_pending_at_ms: s.outbox.oldest_pending_at.map(|t| t.0),
        accepted: s.outbox.accepted,
        rejected: s.outbox.rejected,
        last_receipt_at_ms: s.outbox.last_receipt_at.map(|t| t.0),
        fact_cursor: s.fact_cursor,
        lan_peers: live
            .peers
            .iter()
            .map(|(n, (c, seen))| PeerJson {
                node: n.to_string(),
                connected: *c,
                last_seen_ms: seen.0,
                holds_through: live.holds.get(n).copied(),
            })
            .collect(),
        troubled: s
            .troubled
            .iter()
            .map(|r| TroubleJson {
                seq: r.seq,
                kind: r.kind.to_string(),
                status: r.status.to_string(),
                reason: r.reason.clone(),
            })
            .collect(),
        running_since_ms: live.started.0,
    })
}

async fn status(state: &PageState) -> Result<StatusJson, StatusCode> {
    let st = state.clone();
    tokio::task::spawn_blocking(move || collect(&st))
        .await
        .map_err(|_| StatusCode::INTERNAL_SERVER_ERROR)?
        .map_err(|e| {
            tracing::error!("status page: {e}");
            StatusCode::SERVICE_UNAVAILABLE
        })
}

#[derive(Deserialize)]
struct LangQuery {
    lang: Option<String>,
}

async fn json(State(state): State<PageState>) -> Response {
    match status(&state).await {
        Ok(s) => axum::Json(s).into_response(),
        Err(code) => code.into_response(),
    }
}

async fn page(State(state): State<PageState>, Query(q): Query<LangQuery>) -> Response {
    let en = q.lang.as_deref() == Some("en");
    match status(&state).await {
        Ok(s) => (
            [(header::CACHE_CONTROL, "no-store")],
            Html(render(&s, en, mykey_now())),
        )
            .into_response(),
        Err(code) => code.into_response(),
    }
}

fn mykey_now() -> UnixMillis {
    crate::net::unix_now()
}

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

fn ago(ms: Option<u64>, now: UnixMillis, en: bool) -> String {
    let Some(t) = ms else {
        return if en { "never".into() } else { "なし".into() };
    };
    let s = now.0.saturating_sub(t) / 1000;
    match (en, s) {
        (false, s) if s < 120 => format!("{s}秒前"),
        (false, s) if s < 7200 => format!("{}分前", s / 60),
        (false, s) => format!("{}時間前", s / 3600),
        (true, s) if s < 120 => format!("{s} s ago"),
        (true, s) if s < 7200 => format!("{} min ago", s / 60),
        (true, s) => format!("{} h ago", s / 3600),
    }
}

/// The page (Japanese, or English with `en`).
pub fn render(s: &StatusJson, en: bool, now: UnixMillis) -> String {
    let t = |ja: &'static str, e: &'static str| if en { e } else { ja };
    let link = match (s.hub_link.as_str(), en) {
        ("up", false) => "接続中",
        ("dialing", false) => "接続を試行中",
        (_, false) => "未接続",
        ("up", true) => "connected",
        ("dialing", true) => "connecting",
        (_, true) => "not connected",
    };
    let mut b = String::new();
    let _ = write!(
        b,
        r#"<!doctype html><html lang="{lang}"><head><meta charset="utf-8"><meta http-equiv="refresh" content="5">
<title>{title}</title><style>body{{font-family:"Noto Sans CJK JP",sans-serif;margin:20px;color:#1d2330}}th,td{{text-align:left;padding:4px 10px;border-bottom:1px solid #ddd}}.up{{color:#2e7d32}}.down{{color:#c62828}}</style></head>
<body><h1>{title}</h1><p><a href="?lang={other}">{other_label}</a></p><table id="status">"#,
        lang = if en { "en" } else { "ja" },
        title = t("MyKey Edge ノードの状態", "MyKey Edge node status"),
        other = if en { "ja" } else { "en" },
        other_label = if en { "日本語" } else { "English" },
    );
    let rows: Vec<(&str, &str, String)> = vec![
        ("node", t("ノード", "Node"), esc(&s.node)),
        (
            "facility",
            t("施設", "Facility"),
            esc(s.facility.as_deref().unwrap_or("—")),
        ),
        (
            "hub-link",
            t("ハブとの接続", "Hub link"),
            format!(
                r#"<span class="{}">{link}</span> ({}{}{})"#,
                if s.hub_link == "up" { "up" } else { "down" },
                t("", "since "),
                ago(Some(s.hub_link_since_ms), now, en),
                t("から", "")
            ),
        ),
        (
            "last-hub-contact",
            t("ハブと最後に通信", "Last hub contact"),
            ago(s.last_hub_contact_ms, now, en),
        ),
        (
            "pending",
            t("未確認の取引", "Pending transactions"),
            s.pending.to_string(),
        ),
        (
            "oldest-pending",
            t("最古の未確認", "Oldest pending"),
            ago(s.oldest_pending_at_ms, now, en),
        ),
        (
            "last-receipt",
            t("最後の受領確認", "Last receipt"),
            ago(s.last_receipt_at_ms, now, en),
        ),
        (
            "accepted",
            t("承認 / 拒否", "Accepted / rejected"),
            format!("{} / {}", s.accepted, s.rejected),
        ),
        (
            "fact-cursor",
            t("ファクト受信位置", "Fact cursor"),
            s.fact_cursor.to_string(),
        ),
        (
            "lan-peers",
            t(
                "LAN のノード（接続中 / 確認済み）",
                "LAN peers (connected / seen)",
            ),
            format!(
                "{} / {}",
                s.lan_peers.iter().filter(|p| p.connected).count(),
                s.lan_peers.len()
            ),
        ),
    ];
    for (id, label, value) in rows {
        let _ = write!(
            b,
            r#"<tr data-fact="{id}"><th>{label}</th><td>{value}</td></tr>"#
        );
    }
    b.push_str("</table>");
    if !s.troubled.is_empty() {
        let _ = write!(
            b,
            "<h2>{}</h2><ul>",
            t("理由のある取引", "Transactions with a reason")
        );
        for r in &s.troubled {
            let _ = write!(
                b,
                "<li>seq {} {} {}: {}</li>",
                r.seq,
                esc(&r.kind),
                esc(&r.status),
                esc(r.reason.as_deref().unwrap_or(""))
            );
        }
        b.push_str("</ul>");
    }
    b.push_str("</body></html>");
    b
}

/// The page's routes over an open node and the live view; with a desk
/// (`mykey-node run`), also `POST /holder`.
pub fn router(node: Node, live: Live, desk: Option<HolderDesk>) -> Router {
    let state = PageState {
        node: Arc::new(Mutex::new(node)),
        live,
    };
    let pages = Router::new()
        .route("/", get(page))
        .route("/status.json", get(json))
        .with_state(state);
    match desk {
        Some(desk) => pages.merge(
            Router::new()
                .route("/holder", post(holder))
                .with_state(desk),
        ),
        None => pages,
    }
}

/// `POST /holder`: a card holder's request (issue 19) as the wire's bytes
/// (`Request::Holder`, versioned), carried to the hub over `run`'s link;
/// the answer is the hub's `Response::Holder` bytes. Nothing of it is
/// stored or logged here, and the hub answers a history only to the card's
/// own PIN signature over its challenge, so the route needs no login.
/// 503 when the hub is not reachable (the caller shows what the node
/// holds), 429 when busy, 400 for anything but a holder request.
async fn holder(State(desk): State<HolderDesk>, body: axum::body::Bytes) -> Response {
    use mykey_sync_proto::wire::{Request, Response as Wire};
    let req = match Request::decode(&body) {
        Ok(Request::Holder(h)) => *h,
        Ok(_) => {
            return (
                StatusCode::BAD_REQUEST,
                "only holder requests are carried here\n",
            )
                .into_response();
        }
        Err(e) => {
            return (StatusCode::BAD_REQUEST, format!("not a request: {e}\n")).into_response();
        }
    };
    match desk.ask(req).await {
        Ok(answer) => (
            [
                (header::CONTENT_TYPE, "application/octet-stream"),
                (header::CACHE_CONTROL, "no-store"),
            ],
            Wire::Holder(Box::new(answer)).encode(),
        )
            .into_response(),
        Err(e) => {
            let code = match e {
                DeskError::Offline => StatusCode::SERVICE_UNAVAILABLE,
                DeskError::Busy => StatusCode::TOO_MANY_REQUESTS,
                DeskError::NoAnswer => StatusCode::BAD_GATEWAY,
            };
            (code, format!("{e}\n")).into_response()
        }
    }
}

/// Why the page could not start.
#[derive(Debug, thiserror::Error)]
pub enum PageError {
    /// Not an address.
    #[error("--http {0:?} is not an address like 127.0.0.1:8781")]
    Address(String),
    /// Binding failed.
    #[error(
        "cannot serve the status page on {addr}: {source}; another mykey-node run (or another program) holds it: choose another address with --http ADDR (e.g. --http 127.0.0.1:0 for any free port)"
    )]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// The node could not be opened for the page.
    #[error(transparent)]
    Open(#[from] crate::config::DataDirError),
}

/// Binds the page (see [`DEFAULT_ADDR`]), opens the node for it, writes
/// [`URL_FILE`] and serves until the task is dropped. Prints
/// `status page on http://ADDR/`. An address in use (the default one too)
/// is an error naming it and `--http`, never another port.
pub async fn start(
    dir: &DataDir,
    addr: Option<&str>,
    live: Live,
    desk: Option<HolderDesk>,
) -> Result<(), PageError> {
    // A file left by an earlier run must not point at someone else's page.
    let _ = std::fs::remove_file(dir.root().join(URL_FILE));
    let text = addr.unwrap_or(DEFAULT_ADDR);
    let addr: SocketAddr = text
        .parse()
        .map_err(|_| PageError::Address(text.to_owned()))?;
    // Never another port in silence: `mykey-node status` and a person
    // opening the default address would see another node's page.
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|source| PageError::Bind { addr, source })?;
    let local = listener
        .local_addr()
        .map_err(|source| PageError::Bind { addr, source })?;
    let app = router(dir.open()?, live, desk);
    let url = format!("http://{local}/");
    if let Err(e) = crate::config::write_owner_only(&dir.root().join(URL_FILE), url.as_bytes()) {
        tracing::warn!("cannot write {URL_FILE}: {e}; `mykey-node status` will not see live facts");
    }
    println!("status page on {url}");
    tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, app).await {
            tracing::warn!("status page stopped: {e}");
        }
    });
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(b: u8) -> NodeId {
        NodeId::from_bytes(
            ed25519_dalek::SigningKey::from_bytes(&[b; 32])
                .verifying_key()
                .to_bytes(),
        )
        .unwrap()
    }

    #[test]
    fn publishing_tracks_link_changes_and_peers_seen() {
        let live = Live::new(UnixMillis(1_000));
        let view = |link, peers: Vec<(NodeId, bool)>| LiveView {
            hub_link: link,
            lan_peers: peers,
            peer_holds: vec![],
        };
        live.publish(
            &view(HubLinkState::Up, vec![(id(1), true)]),
            UnixMillis(2_000),
        );
        live.publish(
            &view(HubLinkState::Up, vec![(id(1), true)]),
            UnixMillis(3_000),
        );
        live.publish(&view(HubLinkState::Down, vec![]), UnixMillis(4_000));
        let s = live.lock().clone();
        assert_eq!(s.hub_link, HubLinkState::Down);
        assert_eq!(s.hub_link_since, UnixMillis(4_000));
        assert_eq!(s.last_hub_contact, Some(UnixMillis(3_000)));
        // A peer that left stays listed as seen, not connected.
        assert_eq!(s.peers.get(&id(1)), Some(&(false, UnixMillis(3_000))));
    }
}
