//! The OpenAPI document (`/api/openapi.json`) against what the hub serves:
//! every `/api/…` and `/operator/…` route in the sources is documented with
//! its methods and nothing else is, and each documented route, called on a
//! running app with a token (or, for the operators' exchange, a signature),
//! answers with fields its documented schema names.
#![allow(missing_docs)]

mod common;

use common::*;
use mykey_hub::economy::exchange::{ExchangeRequest, SignedExchange};
use mykey_hub::economy::lots::ExpiryPolicy;
use mykey_hub::http::openapi::openapi_document;
use mykey_sync_proto::session::HubService;
use serde_json::Value;
use std::collections::BTreeSet;
use std::path::Path;

const METHODS: [&str; 5] = ["get", "post", "put", "patch", "delete"];

/// `(method, path)` of every `.route("/api/…", …)` call under `dir`.
fn routes_in_sources(dir: &Path, out: &mut BTreeSet<(String, String)>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            routes_in_sources(&path, out);
            continue;
        }
        if path.extension().is_none_or(|e| e != "rs") {
            continue;
        }
        let src = std::fs::read_to_string(&path).unwrap();
        for (at, _) in src.match_indices(".route(") {
            let call = &src[at + ".route(".len()..];
            let route = call.trim_start();
            assert!(
                route.starts_with('"'),
                "{}: a route's path is not a string literal, so this test cannot see it: {}",
                path.display(),
                &route[..route.len().min(60)]
            );
            let route = &route[1..route[1..].find('"').unwrap() + 1];
            // The rest of the call: up to its closing parenthesis.
            let mut depth = 1;
            let end = call
                .char_indices()
                .find(|&(_, c)| {
                    match c {
                        '(' => depth += 1,
                        ')' => depth -= 1,
                        _ => {}
                    }
                    depth == 0
                })
                .unwrap()
                .0;
            let args = &call[..end];
            // The dashboard's API and the operators' exchange route, served
            // on the same address; not the dashboard's pages.
            if !route.starts_with("/api/") && !route.starts_with("/operator/") {
                continue;
            }
            let mut n = 0;
            for m in METHODS {
                for (i, _) in args.match_indices(&format!("{m}(")) {
                    let before = args[..i].chars().last();
                    if before.is_none_or(|c| !(c.is_alphanumeric() || c == '_')) {
                        out.insert((m.to_owned(), route.to_owned()));
                        n += 1;
                    }
                }
            }
            assert!(n > 0, "{}: no method found for {route}", path.display());
        }
    }
}

fn documented(doc: &Value) -> BTreeSet<(String, String)> {
    let mut out = BTreeSet::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for method in item.as_object().unwrap().keys() {
            assert!(
                METHODS.contains(&method.as_str()),
                "{path}: {method} is not a method"
            );
            out.insert((method.clone(), path.clone()));
        }
    }
    out
}

#[test]
fn every_api_route_the_hub_serves_is_documented_and_nothing_else() {
    let mut served = BTreeSet::new();
    routes_in_sources(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("src"),
        &mut served,
    );
    // The scan sees the routes of both API modules.
    for (method, known) in [
        ("get", "/api/nodes"),
        ("get", "/api/economy/liabilities"),
        ("get", "/api/openapi.json"),
        ("post", "/operator/v1/exchange"),
    ] {
        assert!(
            served.contains(&(method.to_owned(), known.to_owned())),
            "the source scan missed {method} {known}: {served:?}"
        );
    }
    let doc = documented(&openapi_document());
    let missing: Vec<_> = served.difference(&doc).collect();
    let extra: Vec<_> = doc.difference(&served).collect();
    assert!(
        missing.is_empty(),
        "routes served but not in the OpenAPI document (add them where it is built): {missing:?}"
    );
    assert!(
        extra.is_empty(),
        "routes in the OpenAPI document that nothing serves: {extra:?}"
    );
}

fn type_of(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(n) if n.is_i64() || n.is_u64() => "integer",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

/// Where `v` strays from `schema`: a field the schema does not name, a
/// value of another type, a value outside an enum.
fn strays(doc: &Value, schema: &Value, v: &Value, at: &str, out: &mut Vec<String>) {
    let schema = match schema["$ref"].as_str() {
        Some(r) => {
            let name = r.strip_prefix("#/components/schemas/").unwrap();
            let s = &doc["components"]["schemas"][name];
            assert!(s.is_object(), "{at}: {r} is not in components/schemas");
            s
        }
        None => schema,
    };
    if let Some(values) = schema["enum"].as_array() {
        if !values.contains(v) {
            out.push(format!("{at}: {v} is not one of {values:?}"));
        }
        return;
    }
    let types: Vec<&str> = match &schema["type"] {
        Value::String(t) => vec![t.as_str()],
        Value::Array(ts) => ts.iter().filter_map(Value::as_str).collect(),
        _ => vec![],
    };
    let t = type_of(v);
    let fits =
        types.is_empty() || types.contains(&t) || (t == "integer" && types.contains(&"number"));
    if !fits {
        out.push(format!("{at}: a {t}, documented as {types:?}"));
        return;
    }
    match v {
        Value::Object(o) => {
            let Some(props) = schema["properties"].as_object() else {
                return;
            };
            for (k, x) in o {
                match props.get(k) {
                    Some(s) => strays(doc, s, x, &format!("{at}.{k}"), out),
                    None => out.push(format!("{at}.{k} is not documented")),
                }
            }
        }
        Value::Array(items) => {
            for (i, x) in items.iter().enumerate() {
                strays(doc, &schema["items"], x, &format!("{at}[{i}]"), out);
            }
        }
        _ => {}
    }
}

/// (method, documented path, target, body, headers) of one call.
type Call = (
    &'static str,
    String,
    String,
    Vec<u8>,
    Vec<(&'static str, String)>,
);

#[test]
fn each_documented_route_answers_with_the_fields_it_documents() {
    let mut f = Fixture::new();
    let token = f.api_token();
    // Some of everything: a grant (a lot, a base-date source), a spend, a
    // refused spend (a rejection on the shop's node), a closed period.
    f.hub
        .admin_grant(f.alice, &program(), pts(900), T0)
        .unwrap();
    let spend = f.shop.sign(redeem(f.alice, 1, 200));
    let unknown = f.shop.sign(redeem(f.bob, 9, 50));
    // Two spends above the PIN threshold without a card proof: held.
    let held = [
        f.shop.sign(redeem(f.bob, 2, 1500)),
        f.shop.sign(redeem(f.bob, 2, 1600)),
    ];
    let shop = f.shop.id;
    f.hub.ingest(&shop, vec![spend, unknown], T0.plus_ms(1));
    f.hub.ingest(&shop, held.to_vec(), T0.plus_ms(1));
    let held: Vec<u64> = f
        .hub
        .quarantined(&Default::default())
        .unwrap()
        .iter()
        .map(|q| q.id)
        .collect();
    assert_eq!(held.len(), 2, "both spends are held");
    f.hub
        .close_periods_through_now(muni(), T0.plus_ms(2))
        .unwrap();
    // Strict mode with Alice's points reserved for the shop's right.
    f.hub.set_strict_mode(muni(), true, T0.plus_ms(3)).unwrap();
    f.hub
        .escrow_grant(muni(), &[shop], Some(&[f.alice]), T0.plus_ms(3))
        .unwrap();
    // An operator with a 3-day holding period.
    enrol_card_x(&mut f.hub, 3, ExpiryPolicy::FiscalYearEnd { years: 1 }, T0);
    let op = card_x();
    let exchange = SignedExchange::sign(
        &op,
        &ExchangeRequest {
            request_id: "openapi-1".into(),
            my_key_id: "Bob02".into(),
            operator_points: 1000,
            municipality: None,
            // The served route applies it at the hub's real clock.
            requested_at: mykey_net::unix_now().0,
            donate_to: None,
        },
        &card_x_key(),
    );
    // Releasing a held spend pays shop-1 in the open period: the settle
    // call below needs every payee.
    register_payees(&mut f.hub);
    // A status history sample of every node near the served route's clock.
    assert!(f.hub.sample_history(mykey_net::unix_now()).unwrap() > 0);
    let addr = serve(&f);

    // One call per documented route: a new route needs its line here.
    let calls: Vec<(&str, String, String, &str)> = vec![
        ("get", "/api/nodes".into(), "/api/nodes".into(), ""),
        (
            "get",
            "/api/nodes/{id}".into(),
            format!("/api/nodes/{shop}"),
            "",
        ),
        (
            "get",
            "/api/nodes/{id}/history".into(),
            format!("/api/nodes/{shop}/history?window=7d"),
            "",
        ),
        ("get", "/api/alerts".into(), "/api/alerts".into(), ""),
        (
            "get",
            "/api/liabilities".into(),
            "/api/liabilities".into(),
            "",
        ),
        (
            "get",
            "/api/settlement".into(),
            "/api/settlement".into(),
            "",
        ),
        (
            "get",
            "/api/escrow".into(),
            "/api/escrow?municipality=131059".into(),
            "",
        ),
        (
            "get",
            "/api/openapi.json".into(),
            "/api/openapi.json".into(),
            "",
        ),
        (
            "get",
            "/api/economy/liabilities".into(),
            "/api/economy/liabilities".into(),
            "",
        ),
        (
            "get",
            "/api/economy/periods".into(),
            "/api/economy/periods?municipality=131059".into(),
            "",
        ),
        (
            "get",
            "/api/economy/lots".into(),
            format!("/api/economy/lots?municipality=131059&account={}", f.alice),
            "",
        ),
        (
            "get",
            "/api/quarantine".into(),
            "/api/quarantine?state=all".into(),
            "",
        ),
        (
            "get",
            "/api/quarantine/{id}".into(),
            format!("/api/quarantine/{}", held[0]),
            "",
        ),
        (
            "post",
            "/api/quarantine/{id}/release".into(),
            format!("/api/quarantine/{}/release", held[0]),
            r#"{"why": "the holder confirmed the sale"}"#,
        ),
        (
            "post",
            "/api/quarantine/{id}/reject".into(),
            format!("/api/quarantine/{}/reject", held[1]),
            r#"{"why": "no such sale"}"#,
        ),
        (
            "post",
            "/api/economy/settle".into(),
            "/api/economy/settle".into(),
            r#"{"through_now": true}"#,
        ),
        (
            "post",
            "/api/economy/expire".into(),
            "/api/economy/expire".into(),
            "{}",
        ),
    ];
    // Behind the login, and the operators' route, signed instead.
    let mut calls: Vec<Call> = calls
        .into_iter()
        .map(|(m, p, t, b)| (m, p, t, b.as_bytes().to_vec(), bearer(&token)))
        .collect();
    calls.push((
        "post",
        "/operator/v1/exchange".into(),
        "/operator/v1/exchange".into(),
        exchange.body.clone(),
        vec![
            ("X-MyKey-Operator", op.to_string()),
            ("X-MyKey-Signature", hex::encode(exchange.signature)),
        ],
    ));
    let doc = openapi_document();
    let called: BTreeSet<(String, String)> = calls
        .iter()
        .map(|(m, p, _, _, _)| (m.to_string(), p.clone()))
        .collect();
    assert_eq!(
        called,
        documented(&doc),
        "call each documented route once here"
    );
    let mut problems = vec![];
    let mut answers = std::collections::BTreeMap::new();
    for (method, path, target, body, headers) in &calls {
        let (status, answer) = request(addr, &method.to_uppercase(), target, headers, body);
        assert_eq!(status, 200, "{method} {target}: {answer}");
        let v: Value = serde_json::from_str(&answer).unwrap();
        let schema = &doc["paths"][path][method]["responses"]["200"]["content"]["application/json"]
            ["schema"];
        assert!(schema.is_object(), "{method} {path}: no 200 schema");
        strays(&doc, schema, &v, &format!("{method} {path}"), &mut problems);
        answers.insert(path.clone(), v);
    }
    assert!(
        problems.is_empty(),
        "answers stray from the OpenAPI document:\n{}",
        problems.join("\n")
    );

    // The history's samples were there to check against the schema.
    let history = &answers["/api/nodes/{id}/history"];
    assert!(
        !history["samples"].as_array().unwrap().is_empty(),
        "{history}"
    );

    // The liability report's base-date figures are documented field by field.
    let base = &doc["components"]["schemas"]["BaseDateLiability"]["properties"];
    for field in [
        "unused_points",
        "unused_yen",
        "deposit_required_yen",
        "by_source",
    ] {
        assert!(base[field]["description"].is_string(), "{field}");
    }
    // The exchange answer's two balances are documented and side by side:
    // Bob's 500 exchanged points are held, not spendable.
    let receipt = &doc["components"]["schemas"]["ExchangeReceipt"]["properties"];
    for field in ["balance", "held_balance", "available_at"] {
        assert!(receipt[field]["description"].is_string(), "{field}");
    }
    let answer = &answers["/operator/v1/exchange"];
    assert_eq!(
        (answer["balance"].as_u64(), answer["held_balance"].as_u64()),
        (Some(0), Some(500)),
        "{answer}"
    );
    let (_, answer) = request(
        addr,
        "GET",
        "/api/economy/liabilities",
        &bearer(&token),
        b"",
    );
    let v: Value = serde_json::from_str(&answer).unwrap();
    let bunkyo = v["municipalities"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["municipality"] == "131059")
        .unwrap();
    let rows = &bunkyo["base_dates"][0]["by_source"];
    assert!(
        !rows.as_array().unwrap().is_empty(),
        "the grant shows as a per-source row, so its fields were checked: {v}"
    );
}
