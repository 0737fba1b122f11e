//! The kiosk's touch-screen page on loopback: `GET /` (the page, Japanese
//! first with an English switch, large type and an on-screen keypad),
//! `GET /screen.json` (what the screen shows now; the page polls it, so a
//! card's leaving clears the screen without a reload) and `POST /key?k=`
//! (a keypad or keyboard key: `0`-`9`, a letter `a`-`z` / `A`-`Z`, `back`,
//! `ok`; a menu button: `history`, `set_id`, `link-N`, `unlink-N`, `donate`,
//! `programme-N`, `menu`). The body of `/screen.json` is
//! this module's own shape, built from [`Screen`], never stored.

use std::net::SocketAddr;
use std::sync::mpsc::Sender;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::extract::{Query, State};
use axum::http::{StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use mykey_sync_proto::holder::{HolderAction, HolderDone, HolderHistory, Movement};
use serde::Deserialize;
use serde_json::{Value, json};

use super::screen::{
    Choice, Donation, DonationOffer, DonationReceipt, DonationRefusal, Effect, Input, Kiosk,
    Notice, OfflineView, Receipt, Screen, Task, VoucherReceipt, VoucherRefusal,
};

/// Where the kiosk page listens unless `--listen` says otherwise (the
/// status page of `mykey-node run` is on 8781).
pub const DEFAULT_ADDR: &str = "127.0.0.1:8782";

/// The page's shared state.
#[derive(Clone)]
struct PageState {
    kiosk: Arc<Mutex<Kiosk>>,
    effects: Sender<Effect>,
}

/// The page's routes.
pub fn router(kiosk: Arc<Mutex<Kiosk>>, effects: Sender<Effect>) -> Router {
    Router::new()
        .route("/", get(page))
        .route("/screen.json", get(screen))
        .route("/key", post(key))
        .with_state(PageState { kiosk, effects })
}

/// Why the page could not start.
#[derive(Debug, thiserror::Error)]
pub enum PageError {
    /// Not an address.
    #[error("--listen {0:?} is not an address like {DEFAULT_ADDR}")]
    Address(String),
    /// Not a loopback address.
    #[error(
        "--listen {0} is not a loopback address: the kiosk page serves the screen beside it only, e.g. --listen 127.0.0.1:8782"
    )]
    NotLoopback(SocketAddr),
    /// Binding failed.
    #[error(
        "cannot serve the kiosk page on {addr}: {source}; another kiosk (or another program) holds it: choose another address with --listen ADDR (e.g. --listen 127.0.0.1:0 for any free port)"
    )]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
}

/// Binds `addr` (a loopback address; in use is an error, never another port).
pub async fn bind(addr: &str) -> Result<tokio::net::TcpListener, PageError> {
    let parsed: SocketAddr = addr
        .parse()
        .map_err(|_| PageError::Address(addr.to_owned()))?;
    if !parsed.ip().is_loopback() {
        return Err(PageError::NotLoopback(parsed));
    }
    tokio::net::TcpListener::bind(parsed)
        .await
        .map_err(|source| PageError::Bind {
            addr: parsed,
            source,
        })
}

async fn page() -> Response {
    (
        [(header::CACHE_CONTROL, "no-store")],
        Html(include_str!("page.html")),
    )
        .into_response()
}

async fn screen(State(st): State<PageState>) -> Response {
    let body = {
        let k = st.kiosk.lock().unwrap_or_else(|e| e.into_inner());
        screen_json(k.screen())
    };
    (
        [
            (header::CONTENT_TYPE, "application/json"),
            (header::CACHE_CONTROL, "no-store"),
        ],
        body.to_string(),
    )
        .into_response()
}

#[derive(Deserialize)]
struct KeyQuery {
    k: String,
}

async fn key(State(st): State<PageState>, Query(q): Query<KeyQuery>) -> Response {
    let input = match q.k.as_str() {
        "back" => Input::Back,
        "ok" => Input::Submit,
        "history" => Input::Choose(Choice::History),
        "set_id" => Input::Choose(Choice::SetId),
        "menu" => Input::Choose(Choice::Menu),
        "donate" => Input::Choose(Choice::Donate),
        "vouchers" => Input::Choose(Choice::Vouchers),
        p if p.starts_with("split-") => match p["split-".len()..].parse::<usize>() {
            Ok(i) => Input::Choose(Choice::Split(i)),
            Err(_) => return (StatusCode::BAD_REQUEST, "split-N\n").into_response(),
        },
        p if p.starts_with("programme-") => match p["programme-".len()..].parse::<usize>() {
            Ok(i) => Input::Choose(Choice::Programme(i)),
            Err(_) => return (StatusCode::BAD_REQUEST, "programme-N\n").into_response(),
        },
        l if l.starts_with("link-") || l.starts_with("unlink-") => {
            let (kind, n) = l.split_once('-').unwrap_or_default();
            match n.parse::<usize>() {
                Ok(i) if kind == "link" => Input::Choose(Choice::Link(i)),
                Ok(i) => Input::Choose(Choice::Unlink(i)),
                Err(_) => return (StatusCode::BAD_REQUEST, "link-N or unlink-N\n").into_response(),
            }
        }
        "-" => Input::Letter(b'-'),
        d if d.len() == 1 && d.as_bytes()[0].is_ascii_digit() => {
            Input::Digit(d.as_bytes()[0] - b'0')
        }
        c if c.len() == 1 && c.as_bytes()[0].is_ascii_alphabetic() => {
            Input::Letter(c.as_bytes()[0])
        }
        _ => {
            return (
                StatusCode::BAD_REQUEST,
                "k is 0-9, a letter, back, ok, history, set_id, link-N, unlink-N, donate, programme-N, vouchers, split-N or menu\n",
            )
                .into_response();
        }
    };
    let effect = st
        .kiosk
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .step(input);
    if let Some(e) = effect {
        // The reader loop is gone only when the process is ending.
        let _ = st.effects.send(e);
    }
    StatusCode::NO_CONTENT.into_response()
}

/// What the page draws for `screen`.
pub fn screen_json(screen: &Screen) -> Value {
    match screen {
        Screen::Idle => json!({ "screen": "idle" }),
        Screen::Menu {
            my_key_id,
            links,
            elsewhere,
            donate,
            vouchers,
        } => json!({
            "screen": "menu",
            "my_key_id": my_key_id.as_ref().map(|m| m.as_str()),
            "links": links.iter().map(|f| f.to_string()).collect::<Vec<_>>(),
            "elsewhere": elsewhere.map(|m| m.to_string()),
            "donate": donate,
            "vouchers": vouchers,
        }),
        Screen::VoucherAmount { text, notice } => json!({
            "screen": "voucher_amount",
            "text": text,
            "notice": notice.as_ref().map(notice_json),
        }),
        Screen::VoucherSplit { points, options } => json!({
            "screen": "voucher_split",
            "points": points,
            "options": options.iter().map(|o| &o.denominations).collect::<Vec<_>>(),
        }),
        Screen::VoucherReceipt(r) => voucher_receipt_json(r),
        Screen::Programmes(offers) => json!({
            "screen": "programmes",
            "programmes": offers.iter().map(offer_json).collect::<Vec<_>>(),
        }),
        Screen::Amount {
            offer,
            text,
            notice,
        } => json!({
            "screen": "amount",
            "programme": offer_json(offer),
            "text": text,
            "notice": notice.as_ref().map(notice_json),
        }),
        Screen::DonationReceipt(r) => donation_receipt_json(r),
        Screen::NumberEntry {
            text,
            facility,
            link,
            notice,
        } => json!({
            "screen": "number_entry",
            "text": text,
            "facility": facility.to_string(),
            "link": link,
            "notice": notice.as_ref().map(notice_json),
        }),
        Screen::IdEntry {
            text,
            register,
            notice,
        } => json!({
            "screen": "id_entry",
            "text": text,
            "register": register,
            "notice": notice.as_ref().map(notice_json),
        }),
        Screen::Pin {
            typed,
            task,
            notice,
        } => json!({
            "screen": "pin",
            "typed": typed,
            "task": match task {
                Task::Read => json!({ "kind": "read" }),
                Task::Order(a) => action_json(a),
                Task::Donate(d) => donation_json(d),
                Task::IssueVouchers(o) => json!({
                    "kind": "vouchers",
                    "points": o.points(),
                    "denominations": o.denominations,
                }),
            },
            "notice": notice.as_ref().map(notice_json),
        }),
        Screen::Receipt(r) => receipt_json(r),
        Screen::Working => json!({ "screen": "working" }),
        Screen::Online(h) => history_json(h),
        Screen::Offline(v) => offline_json(v),
        Screen::Message(n) => json!({ "screen": "message", "notice": notice_json(n) }),
    }
}

fn notice_json(n: &Notice) -> Value {
    match n {
        Notice::ShortPin => json!({ "kind": "short_pin" }),
        Notice::WrongPin { tries_left } => json!({ "kind": "wrong_pin", "tries_left": tries_left }),
        Notice::Locked => json!({ "kind": "locked" }),
        Notice::NotRegistered => json!({ "kind": "not_registered" }),
        Notice::Refused(r) => json!({
            "kind": "refused",
            "reason": format!("{r:?}"),
            "text": r.to_string(),
        }),
        Notice::CardFailed => json!({ "kind": "card_failed" }),
        Notice::BadId => json!({ "kind": "bad_id" }),
        Notice::IdTaken => json!({ "kind": "id_taken" }),
        Notice::BadNumber => json!({ "kind": "bad_number" }),
        Notice::BadAmount => json!({ "kind": "bad_amount" }),
        Notice::NotDonated(DonationRefusal::BeyondBalance { available }) => {
            json!({ "kind": "beyond_balance", "available": available.get() })
        }
        Notice::NotDonated(DonationRefusal::ProgrammeClosed) => {
            json!({ "kind": "programme_closed" })
        }
        Notice::NotDonated(DonationRefusal::NotHere) => json!({ "kind": "donation_not_here" }),
        Notice::BadVoucherAmount => json!({ "kind": "bad_voucher_amount" }),
        Notice::NotIssued(VoucherRefusal::BeyondBalance { available }) => {
            json!({ "kind": "vouchers_beyond_balance", "available": available.get() })
        }
        Notice::NotIssued(VoucherRefusal::NotHere) => json!({ "kind": "vouchers_not_here" }),
    }
}

/// A kiosk issue's receipt: each voucher as its QR code (SVG, with its
/// face in text), the time and the place; whether the printer took them.
fn voucher_receipt_json(r: &VoucherReceipt) -> Value {
    json!({
        "screen": "voucher_receipt",
        "vouchers": r.vouchers.iter().map(|v| json!({
            "serial": v.body.serial.to_string(),
            "points": v.body.points,
            "expires": v.body.expires.to_string(),
            "svg": mykey_voucher::voucher_svg(v),
        })).collect::<Vec<_>>(),
        "place": r.place.to_string(),
        "seq": r.seq,
        "at": r.at.0,
        "printed": r.printed,
    })
}

fn offer_json(o: &DonationOffer) -> Value {
    json!({ "id": o.programme.as_str(), "recipient": o.recipient.as_str() })
}

fn donation_json(d: &Donation) -> Value {
    json!({
        "kind": "donate",
        "programme": d.offer.programme.as_str(),
        "recipient": d.offer.recipient.as_str(),
        "points": d.points.get(),
    })
}

/// A donation's receipt: points, programme, time and place (the kiosk's
/// facility); signed, so the hub decides it when the node next syncs.
/// Nothing bought is in it.
fn donation_receipt_json(r: &DonationReceipt) -> Value {
    json!({
        "screen": "receipt",
        "action": donation_json(&r.donation),
        "status": "signed",
        "place": r.place.to_string(),
        "seq": r.seq,
        "at": r.at.0,
    })
}

fn action_json(a: &HolderAction) -> Value {
    match a {
        HolderAction::ReadHistory => json!({ "kind": "read" }),
        HolderAction::Register { my_key_id } => {
            json!({ "kind": "register", "my_key_id": my_key_id.as_str() })
        }
        HolderAction::ChangeMyKeyId { from, to } => {
            json!({ "kind": "change_id", "from": from.as_str(), "my_key_id": to.as_str() })
        }
        HolderAction::LinkFacilityCard { facility, number } => {
            json!({ "kind": "link", "facility": facility.to_string(), "number": number.to_string() })
        }
        HolderAction::UnlinkFacilityCard { facility, number } => {
            json!({ "kind": "unlink", "facility": facility.to_string(), "number": number.to_string() })
        }
    }
}

/// An order's receipt: what was ordered, done or pending, and when; the
/// account and municipality the hub named. Nothing bought is in it.
fn receipt_json(r: &Receipt) -> Value {
    let mut v = json!({
        "screen": "receipt",
        "action": action_json(&r.action),
        "status": match &r.done {
            // Asked: the facility's node confirms it.
            Some(HolderDone::LinkRequested { .. }) => "facility",
            Some(_) => "done",
            None => "pending",
        },
        "at": r.at.0,
    });
    match &r.done {
        Some(HolderDone::Registered {
            account,
            municipality,
            ..
        }) => {
            v["account"] = account.to_string().into();
            v["municipality"] = municipality.to_string().into();
        }
        Some(HolderDone::MyKeyIdChanged { account, .. })
        | Some(HolderDone::FacilityCard { account, .. })
        | Some(HolderDone::LinkRequested { account, .. }) => {
            v["account"] = account.to_string().into();
        }
        None => {}
    }
    v
}

fn history_json(h: &HolderHistory) -> Value {
    let balances: Vec<Value> = h
        .balances
        .iter()
        .map(|b| {
            json!({
                "municipality": b.municipality.to_string(),
                "spendable": b.spendable.get(),
                "held": b.held.get(),
                "debt": b.debt.get(),
                "expiries": b.expiries.iter().map(|e| json!({
                    "points": e.points.get(),
                    "at": e.expires_at.0,
                })).collect::<Vec<_>>(),
            })
        })
        .collect();
    let entries: Vec<Value> = h
        .entries
        .iter()
        .map(|e| {
            let mut v = json!({
                "at": e.at.0,
                "municipality": e.municipality.to_string(),
                "points": e.points.get(),
            });
            let (kind, detail) = movement_json(&e.movement);
            v["kind"] = kind.into();
            v["detail"] = detail;
            v
        })
        .collect();
    json!({
        "screen": "online",
        "my_key_id": h.my_key_id.as_str(),
        "as_of": h.as_of.0,
        "balances": balances,
        "entries": entries,
        "more": h.more,
    })
}

fn movement_json(m: &Movement) -> (&'static str, Value) {
    match m {
        Movement::Grant { programme } => ("grant", json!({ "programme": programme.to_string() })),
        Movement::ExchangeIn {
            operator,
            operator_points,
            regional,
            premium,
            available_at,
        } => (
            "exchange_in",
            json!({
                "operator": operator.to_string(),
                "operator_points": operator_points,
                "regional": regional.get(),
                "premium": premium.get(),
                "available_at": available_at.0,
            }),
        ),
        Movement::Released => ("released", json!({})),
        Movement::Redemption {
            place,
            signed_at,
            on_debt,
        } => (
            "redemption",
            json!({
                "place": place.to_string(),
                "signed_at": signed_at.map(|t| t.0),
                "on_debt": on_debt,
            }),
        ),
        Movement::DebtRecovery => ("debt_recovery", json!({})),
        Movement::Expiry => ("expiry", json!({})),
        Movement::Correction { credit } => ("correction", json!({ "credit": credit })),
        Movement::Donation {
            programme,
            operator,
        } => (
            "donation",
            json!({
                "programme": programme.to_string(),
                "operator": operator.as_ref().map(|o| o.to_string()),
            }),
        ),
        Movement::Vouchers { returned } => ("vouchers", json!({ "returned": returned })),
    }
}

fn offline_json(v: &OfflineView) -> Value {
    json!({
        "screen": "offline",
        "my_key_id": v.my_key_id.as_ref().map(|m| m.as_str()),
        "municipality": v.municipality.to_string(),
        "balance": v.balance.get(),
        "debt": v.debt.get(),
        "pending": v.pending.get(),
        "expiry": v.expiry.map(|(p, at)| json!({ "points": p.get(), "at": at.0 })),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_screen_body_names_its_screen_and_never_the_pin() {
        assert_eq!(screen_json(&Screen::Idle)["screen"], "idle");
        let pin = screen_json(&Screen::Pin {
            typed: 3,
            task: Task::Read,
            notice: Some(Notice::WrongPin { tries_left: 2 }),
        });
        assert_eq!(pin["typed"], 3);
        assert_eq!(pin["notice"]["kind"], "wrong_pin");
        assert_eq!(pin["notice"]["tries_left"], 2);
        assert_eq!(pin["task"]["kind"], "read");
    }

    #[test]
    fn a_link_the_facility_confirms_is_a_receipt_of_its_own() {
        use mykey_sync_proto::{AccountId, FacilityCardNumber, FacilityId, UnixMillis};
        let (facility, number) = (
            FacilityId::parse("lib-1").unwrap(),
            FacilityCardNumber::parse("L-042").unwrap(),
        );
        let account = AccountId::new(7).unwrap();
        let receipt = |done| {
            screen_json(&Screen::Receipt(Receipt {
                action: HolderAction::LinkFacilityCard {
                    facility: facility.clone(),
                    number: number.clone(),
                },
                done,
                at: UnixMillis(1),
            }))
        };
        let asked = receipt(Some(HolderDone::LinkRequested {
            request: 3,
            account,
            facility: facility.clone(),
            number: number.clone(),
        }));
        assert_eq!(asked["status"], "facility");
        assert_eq!(asked["account"], "A7");
        let linked = receipt(Some(HolderDone::FacilityCard {
            account,
            facility: facility.clone(),
            number: number.clone(),
            linked: true,
        }));
        assert_eq!(linked["status"], "done");
        assert_eq!(receipt(None)["status"], "pending");
    }

    #[test]
    fn a_donation_receipt_says_points_programme_time_and_place_and_nothing_else() {
        let r = screen_json(&Screen::DonationReceipt(DonationReceipt {
            donation: Donation {
                offer: DonationOffer {
                    programme: mykey_sync_proto::ProgramId::parse("noto-relief").unwrap(),
                    recipient: mykey_sync_proto::DonationRecipient::parse("能登町 災害義援金")
                        .unwrap(),
                },
                points: mykey_sync_proto::Points::new(1500).unwrap(),
            },
            place: mykey_sync_proto::FacilityId::parse("shop-0").unwrap(),
            seq: 4,
            at: mykey_sync_proto::UnixMillis(77),
        }));
        assert_eq!(r["screen"], "receipt");
        assert_eq!(r["action"]["kind"], "donate");
        assert_eq!(r["action"]["points"], 1500);
        assert_eq!(r["action"]["programme"], "noto-relief");
        assert_eq!(r["place"], "shop-0");
        assert_eq!(r["at"], 77);
        let mut keys: Vec<&str> = r.as_object().unwrap().keys().map(|k| k.as_str()).collect();
        keys.sort();
        assert_eq!(keys, ["action", "at", "place", "screen", "seq", "status"]);
        let mut action: Vec<&str> = r["action"]
            .as_object()
            .unwrap()
            .keys()
            .map(|k| k.as_str())
            .collect();
        action.sort();
        assert_eq!(action, ["kind", "points", "programme", "recipient"]);
    }
}
