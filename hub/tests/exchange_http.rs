//! The operator exchange API over HTTP: signed requests, idempotent replay,
//! refusals, and no route back.
#![allow(missing_docs)]

mod common;

use common::*;
use ed25519_dalek::SigningKey;
use mykey_hub::economy::exchange::{
    ExchangeOperator, ExchangeRequest, OperatorId, Rate, SignedExchange,
};
use mykey_hub::economy::lots::ExpiryPolicy;

fn post(
    addr: std::net::SocketAddr,
    path: &str,
    headers: &[(&str, String)],
    body: &[u8],
) -> (u16, String) {
    request(addr, "POST", path, headers, body)
}

fn signed_headers(s: &SignedExchange) -> Vec<(&'static str, String)> {
    vec![
        ("X-MyKey-Operator", s.operator.to_string()),
        ("X-MyKey-Signature", hex::encode(s.signature)),
    ]
}

#[test]
fn exchange_over_http() {
    let mut f = Fixture::new();
    let key = SigningKey::from_bytes(&[7; 32]);
    let op = OperatorId::parse("air-y").unwrap();
    f.hub
        .upsert_exchange_operator(
            &ExchangeOperator {
                id: op.clone(),
                name: "Air Y".into(),
                public_key: key.verifying_key().to_bytes(),
                rate: Rate::new(1, 1).unwrap(),
                holding_days: 0,
                expiry: ExpiryPolicy::Never,
            },
            T0,
        )
        .unwrap();
    f.hub
        .allow_exchange(&op, muni(), pts(1_000_000), T0)
        .unwrap();
    let addr = serve(&f);
    let req = ExchangeRequest {
        request_id: "req-1".into(),
        my_key_id: "Alice01".into(),
        operator_points: 700,
        municipality: None,
        requested_at: mykey_hub::net::unix_now().0,
        donate_to: None,
    };
    let s = SignedExchange::sign(&op, &req, &key);
    let (status, body) = post(addr, "/operator/v1/exchange", &signed_headers(&s), &s.body);
    assert_eq!(status, 200, "{body}");
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(
        (v["regional_points"].as_u64(), v["replayed"].as_bool()),
        (Some(700), Some(false))
    );
    let (status, body) = post(addr, "/operator/v1/exchange", &signed_headers(&s), &s.body);
    assert_eq!(status, 200);
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&body).unwrap()["replayed"],
        true
    );
    // Other bytes under the same request id.
    let s2 = SignedExchange::sign(
        &op,
        &ExchangeRequest {
            operator_points: 5,
            ..req.clone()
        },
        &key,
    );
    assert_eq!(
        post(
            addr,
            "/operator/v1/exchange",
            &signed_headers(&s2),
            &s2.body
        )
        .0,
        409
    );
    // A signature by another key.
    let forged = SignedExchange::sign(
        &op,
        &ExchangeRequest {
            request_id: "req-2".into(),
            ..req.clone()
        },
        &SigningKey::from_bytes(&[8; 32]),
    );
    assert_eq!(
        post(
            addr,
            "/operator/v1/exchange",
            &signed_headers(&forged),
            &forged.body
        )
        .0,
        401
    );
    // An unknown holder.
    let s3 = SignedExchange::sign(
        &op,
        &ExchangeRequest {
            request_id: "req-3".into(),
            my_key_id: "Nobody9".into(),
            ..req.clone()
        },
        &key,
    );
    assert_eq!(
        post(
            addr,
            "/operator/v1/exchange",
            &signed_headers(&s3),
            &s3.body
        )
        .0,
        422
    );
    // A body with a field the API does not have (e.g. what the points would buy) is refused.
    let extra = br#"{"request_id":"req-4","my_key_id":"Alice01","operator_points":1,"requested_at":0,"item":"book"}"#;
    let sig = ed25519_dalek::Signer::sign(&key, extra).to_bytes();
    let h = vec![
        ("X-MyKey-Operator", op.to_string()),
        ("X-MyKey-Signature", hex::encode(sig)),
    ];
    assert_eq!(post(addr, "/operator/v1/exchange", &h, extra).0, 422);
    // No way back: there is no reverse route (it falls to the dashboard's login).
    let (status, _) = post(addr, "/operator/v1/refund", &signed_headers(&s), &s.body);
    assert_ne!(status, 200);
    let balance = f.hub.balance(f.alice, muni()).unwrap().balance.get();
    assert_eq!(balance, 700);
}

#[test]
fn municipality_api_behind_login() {
    let mut f = Fixture::new();
    let token = f.api_token();
    f.hub
        .admin_grant(f.alice, &program(), pts(250), T0)
        .unwrap();
    let addr = serve(&f);
    let auth = vec![("Authorization", format!("Bearer {token}"))];
    assert_eq!(
        request(addr, "GET", "/api/economy/liabilities", &[], b"").0,
        401
    );
    let (status, body) = request(addr, "GET", "/api/economy/liabilities", &auth, b"");
    assert_eq!(status, 200, "{body}");
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    let bunkyo = v["municipalities"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["municipality"] == "131059")
        .unwrap();
    assert_eq!(bunkyo["wallets"], 250);
    // The grant (at T0, mid-2025) was in the books at both base dates shown.
    let last = &bunkyo["base_dates"][0];
    assert_eq!(last["unused_yen"], 250, "{last}");
    assert_eq!(last["deposit_required_yen"], 0, "{last}");
    assert_eq!(
        last["by_source"][0]["source"], "program:volunteer",
        "{last}"
    );
    assert_eq!(last["by_source"][0]["unused_points"], 250, "{last}");
    let (status, csv) = request(
        addr,
        "GET",
        "/api/economy/liabilities?format=csv",
        &auth,
        b"",
    );
    assert_eq!(status, 200);
    assert!(
        csv.contains("131059,outstanding,wallets,,250,250\r\n"),
        "{csv}"
    );
    let (status, body) = request(
        addr,
        "POST",
        "/api/economy/settle",
        &auth,
        br#"{"through_now": true}"#,
    );
    assert_eq!(status, 200, "{body}");
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert!(!v["closed"].as_array().unwrap().is_empty(), "{body}");
    let (status, body) = request(
        addr,
        "GET",
        "/api/economy/periods?municipality=131059",
        &auth,
        b"",
    );
    assert_eq!(status, 200);
    assert!(body.contains("\"statements\""), "{body}");
    let (status, body) = request(
        addr,
        "GET",
        &format!("/api/economy/lots?municipality=131059&account={}", f.alice),
        &auth,
        b"",
    );
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("program:volunteer"), "{body}");
    let (status, _) = request(addr, "POST", "/api/economy/expire", &auth, b"{}");
    assert_eq!(status, 200);
}
