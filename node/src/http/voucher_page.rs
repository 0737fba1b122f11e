//! The shop's phone page for printed vouchers (issue 17 part 4), served by
//! `mykey-node voucher page` on the shop's LAN: `GET /` is a page with
//! `<input type=file accept=image/* capture>`, so a phone's own camera app
//! takes the photo (no camera API, so no HTTPS); the page redraws it as a
//! PNG and `POST /redeem` sends it. The node decodes it in Rust
//! ([`mykey_voucher::decode_png`]) and takes each voucher found through
//! [`Node::redeem_voucher`], the same offline checks as the wedge scanner;
//! the answer says per voucher: taken, taken before, or refused and why.
//!
//! Anyone on the LAN who opens the page can present a voucher to this
//! shop, as at its counter: the hub pays the shop, never the sender.

use crate::node::{Node, OpError};
use crate::voucher::VoucherDecline;
use axum::Router;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use mykey_sync_proto::UnixMillis;
use mykey_voucher::{ImageError, SignedVoucher};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

/// Where the page listens unless `--listen` says otherwise: every
/// interface, so the shop's phone reaches it on the LAN (the status page
/// is 8781, the kiosk 8782).
pub const DEFAULT_ADDR: &str = "0.0.0.0:8783";
/// The largest photo taken (the page sends at most 2,400 px a side as PNG).
pub const MAX_UPLOAD_BYTES: usize = 24 * 1024 * 1024;
/// Vouchers taken from one photo at most (an A4 sheet holds 20).
pub const MAX_PER_PHOTO: usize = 20;

/// What became of one voucher (or of the photo).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Taken: signed into the node's chain; the hub pays the shop.
    Taken,
    /// Taken before (here, by a LAN peer, or marked in the hub's bitmap):
    /// a copy, to be refused.
    Already,
    /// Refused for another reason (said in the message).
    Refused,
    /// The photo itself could not be read.
    Unreadable,
}

impl Outcome {
    /// Machine name (the page's `data-outcome`).
    pub fn name(self) -> &'static str {
        match self {
            Outcome::Taken => "taken",
            Outcome::Already => "already",
            Outcome::Refused => "refused",
            Outcome::Unreadable => "error",
        }
    }
}

/// One row of the answer.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Row {
    /// [`Outcome::name`].
    pub outcome: &'static str,
    /// Headline, Japanese.
    pub title_ja: String,
    /// Headline, English.
    pub title_en: String,
    /// What happened and what to do, Japanese.
    pub message_ja: String,
    /// The same, English.
    pub message_en: String,
}

/// The answer to one photo.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Answer {
    /// One row per voucher found, or one row saying why none was read.
    pub results: Vec<Row>,
}

/// The row for a voucher the node took or refused.
pub fn row(result: &Result<mykey_voucher::VerifiedVoucher, OpError>) -> Row {
    match result {
        Ok(v) => {
            let b = v.body();
            Row {
                outcome: Outcome::Taken.name(),
                title_ja: format!("受付完了 {} pt", b.points),
                title_en: format!("Taken: {} pt", b.points),
                message_ja: format!(
                    "券 {}（{}）を受け付けました。代金はハブの精算で店に支払われます。券は回収してください。",
                    b.serial, b.municipality
                ),
                message_en: format!(
                    "{v}: taken; the hub pays the shop in settlement. Keep the voucher."
                ),
            }
        }
        Err(OpError::Voucher(
            d @ (VoucherDecline::AlreadyTaken { serial, .. }
            | VoucherDecline::TakenByPeer { serial, .. }
            | VoucherDecline::MarkedRedeemed { serial }),
        )) => Row {
            outcome: Outcome::Already.name(),
            title_ja: "受付済みの券です".into(),
            title_en: "Already taken".into(),
            message_ja: format!(
                "券 {serial} はすでに受け付けられています（コピーです）。受け取らないでください。"
            ),
            message_en: d.to_string(),
        },
        Err(e) => Row {
            outcome: Outcome::Refused.name(),
            title_ja: "受け付けられません".into(),
            title_en: "Refused".into(),
            message_ja: refusal_ja(e),
            message_en: e.to_string(),
        },
    }
}

fn refusal_ja(e: &OpError) -> String {
    match e {
        OpError::Voucher(d) => match d {
            VoucherDecline::NoLimits => {
                "このノードはまだハブから設定を受け取っていません。一度ハブにつないでください。".into()
            }
            VoucherDecline::NotAllowed => "この店はポイントを受け付ける設定になっていません。".into(),
            VoucherDecline::Signature(_) => {
                "券の署名が正しくありません（偽造か別の発行元）。受け取らないでください。".into()
            }
            VoucherDecline::Issuer(mykey_voucher::IssuerError::Unknown(_)) => {
                "ハブが認めていない発行元（キオスク）の券です。受け取らないでください。新しいキオスクなら、ノードを一度ハブにつないでから、もう一度撮ってください。".into()
            }
            VoucherDecline::Issuer(_) => {
                "発行元（キオスク）の認定がハブにより取り消された券です。受け取らず、自治体に問い合わせるよう伝えてください。".into()
            }
            VoucherDecline::OtherMunicipality { municipality, .. } => {
                format!("{municipality} の券です。この店では使えません。")
            }
            VoucherDecline::Expired { expires, .. } => {
                format!("有効期限（{expires}）を過ぎた券です。受け取らないでください。")
            }
            VoucherDecline::AlreadyTaken { serial, .. } => {
                format!("券 {serial} はすでに受け付けられています。")
            }
            VoucherDecline::TakenByPeer { serial, .. }
            | VoucherDecline::MarkedRedeemed { serial } => {
                format!("券 {serial} はすでに別の店で受け付けられています。")
            }
            VoucherDecline::BatchCancelled { serial } => format!(
                "券 {serial} の発行は自治体が取り消しました（紛失など）。受け取らないでください。"
            ),
            VoucherDecline::OverCap { cap, .. } => format!(
                "オフラインで受け付けられる上限（{cap}）を超えます。ノードをハブにつないでから、もう一度撮ってください。"
            ),
        },
        _ => "ノードが記録できませんでした。もう一度撮ってください。続くときは `mykey-node doctor` で確かめてください。".into(),
    }
}

/// The row for a photo from which no voucher was read.
pub fn unreadable(e: &ImageError) -> Row {
    let message_ja = match e {
        ImageError::Image(_) => "写真を読めませんでした。もう一度撮ってください。",
        ImageError::NoCode => {
            "QRコードが見つかりません。券を平らに置き、ピントを合わせ、コードが枠の3分の1ほどになるよう撮ってください。"
        }
        ImageError::Unreadable(_) => {
            "QRコードを読み取れませんでした。もっと近づき、ピントを合わせて撮り直してください。"
        }
        ImageError::NotVoucher(_) => "このQRコードはポイント券ではありません。",
    };
    Row {
        outcome: Outcome::Unreadable.name(),
        title_ja: "読み取れません".into(),
        title_en: "Not read".into(),
        message_ja: message_ja.into(),
        message_en: e.to_string(),
    }
}

/// Decodes `png` and takes each voucher in it at `now`.
pub fn take_photo(node: &mut Node, png: &[u8], now: UnixMillis) -> Answer {
    let found: Vec<SignedVoucher> = match mykey_voucher::decode_png(png) {
        Ok(f) => f,
        Err(e) => {
            return Answer {
                results: vec![unreadable(&e)],
            };
        }
    };
    let results = found
        .iter()
        .take(MAX_PER_PHOTO)
        .map(|v| {
            let r = node.redeem_voucher(v, now).map(|(_, taken)| taken);
            match &r {
                Ok(v) => tracing::info!("voucher page: taken {v}"),
                Err(e) => tracing::info!("voucher page: refused: {e}"),
            }
            row(&r)
        })
        .collect();
    Answer { results }
}

#[derive(Clone)]
struct PageState {
    node: Arc<Mutex<Node>>,
}

/// The page's routes over an open node.
pub fn router(node: Node) -> Router {
    Router::new()
        .route("/", get(page))
        .route("/redeem", post(redeem))
        .layer(DefaultBodyLimit::max(MAX_UPLOAD_BYTES))
        .with_state(PageState {
            node: Arc::new(Mutex::new(node)),
        })
}

async fn page() -> Response {
    (
        [(header::CACHE_CONTROL, "no-store")],
        Html(include_str!("voucher_page.html")),
    )
        .into_response()
}

/// `POST /redeem`: the photo as a PNG body; the answer is [`Answer`] as
/// JSON (200 whatever became of the vouchers: each row says).
async fn redeem(State(st): State<PageState>, body: axum::body::Bytes) -> Response {
    let node = st.node.clone();
    let answer = tokio::task::spawn_blocking(move || {
        let mut n = node
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        take_photo(&mut n, &body, crate::net::unix_now())
    })
    .await;
    match answer {
        Ok(a) => ([(header::CACHE_CONTROL, "no-store")], axum::Json(a)).into_response(),
        Err(_) => StatusCode::INTERNAL_SERVER_ERROR.into_response(),
    }
}

/// Why the page could not start.
#[derive(Debug, thiserror::Error)]
pub enum PageError {
    /// Not an address.
    #[error("--listen {0:?} is not an address like {DEFAULT_ADDR}")]
    Address(String),
    /// Binding failed.
    #[error(
        "cannot serve the voucher page on {addr}: {source}; another program holds it: choose another address with --listen ADDR (e.g. --listen 0.0.0.0:0 for any free port)"
    )]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
}

/// Binds `addr` (in use is an error, never another port).
pub async fn bind(addr: &str) -> Result<tokio::net::TcpListener, PageError> {
    let parsed: SocketAddr = addr
        .parse()
        .map_err(|_| PageError::Address(addr.to_owned()))?;
    tokio::net::TcpListener::bind(parsed)
        .await
        .map_err(|source| PageError::Bind {
            addr: parsed,
            source,
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use mykey_sync_proto::Points;
    use mykey_voucher::Serial;

    #[test]
    fn each_outcome_has_its_own_row() {
        let serial = Serial { batch: 1, index: 2 };
        let already = row(&Err(OpError::Voucher(VoucherDecline::AlreadyTaken {
            serial,
            seq: 3,
        })));
        assert_eq!(already.outcome, "already");
        assert!(already.message_ja.contains("1-00002"), "{already:?}");
        let over = row(&Err(OpError::Voucher(VoucherDecline::OverCap {
            serial,
            points: Points::new(500).unwrap(),
            pending: Points::new(600).unwrap(),
            cap: Points::new(1000).unwrap(),
        })));
        assert_eq!(over.outcome, "refused");
        assert!(over.message_en.contains("cap of 1000"), "{over:?}");
        assert_eq!(unreadable(&ImageError::NoCode).outcome, "error");
    }
}
