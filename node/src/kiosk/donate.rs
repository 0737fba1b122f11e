//! Donation at the kiosk (issue 19 part 5): the holder chooses a donation
//! programme and an amount, then enters the PIN on the keypad as for a
//! read; the card signs this very donation ([`DonationBinding`]) and the
//! node signs a `TxBody::Donate` into its outbox, which `mykey-node run`
//! carries to the hub. The hub decides it from what it verifies (the card's
//! signature with the key it kept, the programme declared and open, the
//! confirmed balance) and refuses it whole otherwise.
//!
//! Routes beside the page's ([`routes`]): `GET /donate` (the donation
//! screen: programme, amount, then the keypad), `POST /donate` (JSON
//! `{"programme": "...", "points": N}`: what the next OK on the keypad
//! gives, for the card on the reader) and `GET /donate.json` (what is
//! chosen and the last donation's receipt or why it was not made). The
//! choice and the receipt are cleared when the card leaves; nothing is
//! stored but the signed transaction itself.
//!
//! The reader loop asks [`Desk::take`] when the keypad's OK comes: with a
//! choice it calls [`donate`] instead of reading the history.

use std::sync::{Arc, Mutex};

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use mykey_sync_proto::{CardKey, Points, ProgramId};
use serde::Deserialize;
use serde_json::json;

use super::reader::ReaderLoop;
use super::screen::Outcome;
use crate::card::apdu::Pin;
use crate::card::cert::{CardCert, trust};
use crate::card::jpki::{ProveError, prove_donation};
use crate::card::reader::Session;
use crate::node::OpError;

/// Most points one kiosk donation gives (a mistyped amount stops here).
pub const MAX_DONATION_POINTS: u64 = 100_000;

/// What the holder chose to give.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Intent {
    /// The donation programme.
    pub programme: ProgramId,
    /// How many points.
    pub points: Points,
}

/// The last donation at this kiosk, for the screen.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Receipt {
    /// Signed into the outbox; the hub decides it when `run` carries it.
    Signed {
        /// What was given.
        intent: Intent,
        /// The transaction's seq in the node's chain.
        seq: u64,
    },
    /// Not made, and why (what to do is in the text).
    NotMade(String),
}

#[derive(Debug, Default)]
struct DeskState {
    intent: Option<Intent>,
    last: Option<Receipt>,
}

/// The donation choice and receipt shared by the page and the reader loop.
#[derive(Clone, Debug, Default)]
pub struct Desk(Arc<Mutex<DeskState>>);

impl Desk {
    fn with<T>(&self, f: impl FnOnce(&mut DeskState) -> T) -> T {
        f(&mut self.0.lock().unwrap_or_else(|e| e.into_inner()))
    }
    /// The choice for the OK just pressed, taken (so it is given once).
    pub fn take(&self) -> Option<Intent> {
        self.with(|s| s.intent.take())
    }
    /// The card left: forget the choice and the receipt.
    pub fn clear(&self) {
        self.with(|s| *s = DeskState::default());
    }
    fn record(&self, r: Receipt) {
        self.with(|s| s.last = Some(r));
    }
}

/// The donation routes, to merge beside the page's.
pub fn routes(desk: Desk) -> Router {
    Router::new()
        .route("/donate", get(page).post(choose))
        .route("/donate.json", get(status))
        .with_state(desk)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Choice {
    programme: String,
    points: u64,
}

async fn choose(State(desk): State<Desk>, body: axum::body::Bytes) -> Response {
    let bad = |m: String| {
        (
            StatusCode::UNPROCESSABLE_ENTITY,
            json!({ "error": m }).to_string(),
        )
    };
    let c: Choice = match serde_json::from_slice(&body) {
        Ok(c) => c,
        Err(e) => {
            return bad(format!(
                "the body is {{\"programme\": \"id\", \"points\": N}}: {e}"
            ))
            .into_response();
        }
    };
    let Ok(programme) = ProgramId::parse(&c.programme) else {
        return bad(format!(
            "{:?} is not a programme id (1-32 of a-z, 0-9 and '-'): choose the programme again",
            c.programme
        ))
        .into_response();
    };
    let points = match Points::new(c.points) {
        Ok(p) if !p.is_zero() && p.get() <= MAX_DONATION_POINTS => p,
        _ => {
            return bad(format!(
                "give 1 to {MAX_DONATION_POINTS} points, not {}",
                c.points
            ))
            .into_response();
        }
    };
    desk.with(|s| {
        s.intent = Some(Intent { programme, points });
        s.last = None;
    });
    StatusCode::NO_CONTENT.into_response()
}

async fn status(State(desk): State<Desk>) -> Response {
    let body = desk.with(|s| {
        json!({
            "chosen": s.intent.as_ref().map(|i| json!({
                "programme": i.programme.as_str(), "points": i.points.get(),
            })),
            "last": s.last.as_ref().map(|r| match r {
                Receipt::Signed { intent, seq } => json!({
                    "state": "signed", "programme": intent.programme.as_str(),
                    "points": intent.points.get(), "seq": seq,
                }),
                Receipt::NotMade(why) => json!({ "state": "not-made", "error": why }),
            }),
        })
    });
    (
        [
            (header::CONTENT_TYPE, "application/json"),
            (header::CACHE_CONTROL, "no-store"),
        ],
        body.to_string(),
    )
        .into_response()
}

async fn page() -> Response {
    ([(header::CACHE_CONTROL, "no-store")], Html(DONATE_HTML)).into_response()
}

/// The kiosk's donation for the OK just pressed: the card signs exactly
/// this donation after its PIN, the node signs it into the outbox. The
/// receipt (or why not) goes to the desk; the screen then shows the node's
/// figures for the card.
pub(super) fn donate(
    r: &mut ReaderLoop,
    session: &mut Session,
    cert: &CardCert,
    card: &CardKey,
    pin: Pin,
    intent: Intent,
) -> Outcome {
    let now = crate::net::unix_now();
    let now_s = i64::try_from(now.0 / 1000).unwrap_or(i64::MAX);
    let Ok(trusted) = trust(cert.clone(), &r.trusted_ca, now_s) else {
        tracing::warn!("the card's certificate does not chain to a trusted CA (--trusted-ca)");
        r.donations.record(Receipt::NotMade(
            "this card's certificate is not trusted here: ask at a municipal counter".into(),
        ));
        return Outcome::CardFailed;
    };
    let binding = match r
        .node
        .donation_binding(card, intent.programme.clone(), intent.points, now)
    {
        Ok(b) => b,
        Err(e) => return not_made(r, card, e),
    };
    let proof = match prove_donation(session, &trusted, pin, binding) {
        Ok(p) => p,
        Err(ProveError::WrongPin { tries_left }) => return Outcome::WrongPin(tries_left),
        Err(ProveError::Locked) => return Outcome::Locked,
        Err(e) => {
            tracing::warn!("card proof: {e}");
            return Outcome::CardFailed;
        }
    };
    match r.node.donate(&proof, now) {
        Ok(done) => {
            tracing::info!(seq = done.seq, programme = %intent.programme, "donation signed at the kiosk");
            r.donations.record(Receipt::Signed {
                intent,
                seq: done.seq,
            });
            figures(r, card)
        }
        Err(e) => not_made(r, card, e),
    }
}

fn not_made(r: &mut ReaderLoop, card: &CardKey, e: OpError) -> Outcome {
    if matches!(e, OpError::NotRegistered) {
        return Outcome::NotRegistered;
    }
    r.donations.record(Receipt::NotMade(e.to_string()));
    figures(r, card)
}

/// The node's figures for the card after a donation (its own store: the
/// hub learns of the donation when `run` next pushes).
fn figures(r: &ReaderLoop, card: &CardKey) -> Outcome {
    match super::offline::offline_view(&r.node, card) {
        Ok(Some(v)) => Outcome::Offline(v),
        Ok(None) => Outcome::NotRegistered,
        Err(e) => {
            tracing::warn!("node store: {e}");
            Outcome::CardFailed
        }
    }
}

const DONATE_HTML: &str = include_str!("donate.html");
