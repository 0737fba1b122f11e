//! `exchange_body`: an operator's `POST /operator/v1/exchange` (its two
//! headers and the JSON body) read as the route reads it and applied by a
//! real hub (in-memory SQLite) with a holder, an operator and a campaign.
//!
//! Input: the `X-MyKey-Operator` header (u8 length), the
//! `X-MyKey-Signature` header (u8 length), a knobs byte (the operator's
//! rate, its holding days, whether a campaign runs, its daily cap), then
//! the body. The body is applied twice: with the signature as sent (almost always bad),
//! and signed with the operator's enrolled key, so the JSON reaches the
//! hub's checks.
//!
//! Properties: nothing panics (the hub serves other operators and the
//! nodes from the same process); a refusal has a message and is never
//! answered 200; an applied exchange credits the rate's points, answers
//! the same record to a replay of the same bytes, and keeps the ledger
//! balanced (conservation) before and after the holding period ends.

use crate::Input;
use ed25519_dalek::{Signer, SigningKey};
use mykey_hub::economy::exchange::{
    Campaign, ExchangeOperator, OperatorId, Rate, SignedExchange, verify,
};
use mykey_hub::economy::http::{signed_exchange, status_of};
use mykey_hub::economy::lots::ExpiryPolicy;
use mykey_hub::{Hub, HubKey};
use mykey_sync_proto::{CardKey, MunicipalityCode, MyKeyId, Points, UnixMillis};

/// The hub's clock for every request.
const NOW: UnixMillis = UnixMillis(1_764_000_000_000);
const DAY_MS: u64 = 86_400_000;
/// The enrolled operator.
pub const OPERATOR: &str = "card-x";

/// The operator's signing key.
pub fn operator_key() -> SigningKey {
    SigningKey::from_bytes(&[0x0e; 32])
}

fn rate_of(knobs: u8) -> Rate {
    let (num, den) = [(1, 1), (1, 2), (3, 1), (1, 1_000_000_000)][usize::from(knobs & 3)];
    Rate::new(num, den).expect("a positive rate")
}

/// The enrolled operator `card-x`: its rate and holding days from the knobs.
fn operator(knobs: u8) -> ExchangeOperator {
    ExchangeOperator {
        id: OperatorId::parse(OPERATOR).expect("operator id"),
        name: "Card X".into(),
        public_key: operator_key().verifying_key().to_bytes(),
        rate: rate_of(knobs),
        holding_days: [0, 1, 3, 30][usize::from(knobs >> 2 & 3)],
        expiry: ExpiryPolicy::FiscalYearEnd { years: 1 },
    }
}

/// A hub with Bunkyo-ku and Sapporo, holder `hanako`, operator `card-x`
/// allowed in Bunkyo-ku (knobs bit 5: a 5,000-point daily cap) and
/// (knobs bit 4) a 10 % campaign.
fn fixture(knobs: u8) -> Hub {
    let mut hub = Hub::in_memory(HubKey::from_secret_bytes(&[0x48; 32])).expect("in-memory hub");
    let bunkyo = MunicipalityCode::parse("131059").expect("code");
    let sapporo = MunicipalityCode::parse("011002").expect("code");
    hub.add_municipality(bunkyo, "Bunkyo-ku", NOW)
        .expect("municipality");
    hub.add_municipality(sapporo, "Sapporo", NOW)
        .expect("municipality");
    let card = CardKey::new(vec![0x30, 0], vec![1]).expect("card key");
    hub.register_account(&MyKeyId::parse("hanako").expect("id"), bunkyo, &card, NOW)
        .expect("holder");
    hub.upsert_exchange_operator(&operator(knobs), NOW)
        .expect("operator");
    // Allowed in Bunkyo-ku only (Sapporo answers 403), under a daily cap
    // some requests reach (knobs bit 5).
    let cap = if knobs & 32 != 0 { 5_000 } else { Points::MAX };
    hub.allow_exchange(
        &operator(knobs).id,
        bunkyo,
        Points::new(cap).expect("points"),
        NOW,
    )
    .expect("allowance");
    if knobs & 16 != 0 {
        hub.add_campaign(
            &Campaign {
                id: "festival".into(),
                municipality: bunkyo,
                operator: None,
                percent: 10,
                starts_at: UnixMillis(0),
                ends_at: NOW.plus_ms(DAY_MS),
                cap_per_account: Points::new(5_000).expect("points"),
            },
            NOW,
        )
        .expect("campaign");
    }
    hub
}

/// Two headers, knobs, then the body.
pub fn body(data: &[u8]) {
    let mut input = Input::new(data);
    let (Some(op), Some(sig), Some(knobs)) = (input.short_chunk(), input.short_chunk(), input.u8())
    else {
        return;
    };
    let body = input.rest();
    // A header value the HTTP layer cannot read as text is a missing one.
    let text = |b| std::str::from_utf8(b).ok();
    let as_sent = match signed_exchange(text(op), text(sig), body.to_vec()) {
        Ok(s) => Some(s),
        Err(message) => {
            assert!(!message.is_empty());
            None
        }
    };
    let signed = SignedExchange {
        operator: OperatorId::parse(OPERATOR).expect("operator id"),
        body: body.to_vec(),
        signature: operator_key().sign(body).to_bytes(),
    };
    // The pure checks first; only what passes them needs a hub (a fresh
    // one per input, so runs do not depend on earlier inputs).
    let op = operator(knobs);
    let mut to_apply = vec![];
    for s in as_sent.into_iter().chain([signed]) {
        match verify(&op, &s) {
            Ok(_) => to_apply.push(s),
            Err(e) => {
                assert!(!e.to_string().is_empty());
                assert_ne!(status_of(&e).as_u16(), 200);
            }
        }
    }
    if to_apply.is_empty() {
        return;
    }
    let mut hub = fixture(knobs);
    for s in &to_apply {
        apply(&mut hub, s, knobs);
    }
    hub.check_conservation()
        .expect("the ledger balances after exchanges");
    hub.release_held(NOW.plus_ms(31 * DAY_MS)).expect("release");
    hub.check_conservation()
        .expect("the ledger balances after the holding period");
}

fn apply(hub: &mut Hub, signed: &SignedExchange, knobs: u8) {
    match hub.exchange(signed, NOW) {
        Ok(r) => {
            assert!(!r.replayed || r.record.received_at == NOW);
            if !r.replayed {
                assert_eq!(
                    r.record.regional.get(),
                    rate_of(knobs).apply(r.record.operator_points),
                    "the operator's rate is applied"
                );
            }
            let again = hub.exchange(signed, NOW).expect("a replay answers");
            assert!(again.replayed);
            assert_eq!(again.record, r.record, "a replay answers the stored record");
        }
        Err(e) => {
            assert!(!e.to_string().is_empty());
            assert_ne!(status_of(&e).as_u16(), 200);
        }
    }
}

/// An `exchange_body` input.
pub fn input(operator: &str, signature_hex: &str, knobs: u8, body: &[u8]) -> Vec<u8> {
    let mut out = vec![u8::try_from(operator.len()).expect("a short header")];
    out.extend_from_slice(operator.as_bytes());
    out.push(u8::try_from(signature_hex.len()).expect("a short header"));
    out.extend_from_slice(signature_hex.as_bytes());
    out.push(knobs);
    out.extend_from_slice(body);
    out
}
