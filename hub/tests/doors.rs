//! The hub's HTTP doors under abuse, over real HTTP on 127.0.0.1 against
//! the real server (`mykey_hub::http::Door`, as `mykey-hub serve` runs it):
//! concurrent password guesses, slow and oversized requests, handler
//! panics, the operator exchange API's numbers, municipalities, caps and
//! rate, and what roles and token scopes allow.
#![allow(missing_docs)]

mod common;

use common::*;
use ed25519_dalek::SigningKey;
use mykey_hub::economy::exchange::{ExchangeOperator, OperatorId, Rate};
use mykey_hub::economy::lots::ExpiryPolicy;
use mykey_hub::http::AppConfig;
use mykey_hub::http::server::HttpLimits;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

/// An HTTP answer.
#[derive(Debug)]
struct Answer {
    status: u16,
    headers: Vec<(String, String)>,
    body: String,
}

impl Answer {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

fn parse(text: &str) -> Answer {
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((text, ""));
    let mut lines = head.lines();
    let status = lines
        .next()
        .and_then(|l| l.get(9..12))
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("not an HTTP answer: {text:?}"));
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned()))
        .collect();
    Answer {
        status,
        headers,
        body: body.to_owned(),
    }
}

/// Sends `bytes` and reads the answer to the end (at most 10 s: a server
/// that waits for more is a failure, not a hang).
fn raw(addr: SocketAddr, bytes: &[u8]) -> Answer {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.write_all(bytes).unwrap();
    let mut out = Vec::new();
    match s.read_to_end(&mut out) {
        Ok(_) => {}
        // The server may close with the request's body unread (a reset).
        Err(e) if !out.is_empty() && e.kind() == std::io::ErrorKind::ConnectionReset => {}
        Err(e) => panic!(
            "no answer within 10 s: {e} (got {:?})",
            String::from_utf8_lossy(&out)
        ),
    }
    parse(&String::from_utf8_lossy(&out))
}

fn login(addr: SocketAddr, name: &str, password: &str) -> Answer {
    let body = format!("name={name}&password={password}");
    raw(
        addr,
        format!(
            "POST /login HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\
             Content-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        )
        .as_bytes(),
    )
}

fn get(addr: SocketAddr, path: &str, headers: &[(&str, String)]) -> Answer {
    let mut req = format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n");
    for (k, v) in headers {
        req += &format!("{k}: {v}\r\n");
    }
    raw(addr, format!("{req}\r\n").as_bytes())
}

fn post(addr: SocketAddr, path: &str, headers: &[(&str, String)], body: &[u8]) -> Answer {
    let mut req = format!(
        "POST {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (k, v) in headers {
        req += &format!("{k}: {v}\r\n");
    }
    let mut bytes = format!("{req}\r\n").into_bytes();
    bytes.extend_from_slice(body);
    raw(addr, &bytes)
}

fn retry_after(a: &Answer) -> u64 {
    a.header("retry-after")
        .unwrap_or_else(|| panic!("no Retry-After: {a:?}"))
        .parse()
        .unwrap()
}

// ---- logins ------------------------------------------------------------

#[test]
fn concurrent_wrong_logins_hit_the_lockout_and_get_429_with_retry_after() {
    let mut f = Fixture::new();
    f.api_token(); // operator `ops`, password "correct horse battery"
    let addr = serve(&f);
    let barrier = std::sync::Arc::new(std::sync::Barrier::new(30));
    let guesses: Vec<_> = (0..30)
        .map(|i| {
            let b = barrier.clone();
            std::thread::spawn(move || {
                b.wait();
                login(addr, "ops", &format!("guess-number-{i}"))
            })
        })
        .collect();
    let answers: Vec<Answer> = guesses.into_iter().map(|t| t.join().unwrap()).collect();
    let n = |s: u16| answers.iter().filter(|a| a.status == s).count();
    // Five failures per name in a minute: the rest were refused before any
    // password check, however close together they came.
    assert_eq!(
        (n(401), n(429)),
        (5, 25),
        "{:?}",
        answers.iter().map(|a| a.status).collect::<Vec<_>>()
    );
    for a in answers.iter().filter(|a| a.status == 429) {
        assert!((1..=60).contains(&retry_after(a)), "{a:?}");
    }
    // Even the right password waits out the lockout.
    let a = login(addr, "ops", "correct+horse+battery");
    assert_eq!(a.status, 429, "{a:?}");
    assert!(a.header("set-cookie").is_none());
}

#[test]
fn unknown_names_are_answered_like_known_ones_and_addresses_are_limited() {
    let mut f = Fixture::new();
    f.api_token();
    let addr = serve(&f);
    let known = login(addr, "ops", "wrong-password");
    let unknown = login(addr, "nobody-here", "wrong-password");
    assert_eq!((known.status, unknown.status), (401, 401));
    assert_eq!(
        known.body, unknown.body,
        "the answer must not tell names apart"
    );
    // An unknown name is locked out after as many failures as a known one.
    for _ in 0..4 {
        assert_eq!(login(addr, "nobody-here", "wrong-password").status, 401);
    }
    assert_eq!(login(addr, "nobody-here", "wrong-password").status, 429);
    // One address may fail 20 times a minute, whatever names it tries; this
    // one has 6 failures so far (the refused attempt took none).
    for i in 0..14 {
        let a = login(addr, &format!("junk{i}"), "wrong-password");
        assert_eq!(a.status, 401, "attempt {i}: {a:?}");
    }
    let a = login(addr, "junk-next", "wrong-password");
    assert_eq!(a.status, 429, "{a:?}");
    assert!(retry_after(&a) >= 1);
    // The lockout is per address and name, not a crash: the login page still answers.
    assert_eq!(get(addr, "/login", &[]).status, 200);
}

#[test]
fn a_right_password_logs_in_and_the_session_ends_when_the_operator_is_removed() {
    let mut f = Fixture::new();
    let token = f.api_token();
    let addr = serve(&f);
    let a = login(addr, "ops", "correct+horse+battery");
    assert_eq!(a.status, 303, "{a:?}");
    let cookie = a.header("set-cookie").unwrap().to_owned();
    assert!(cookie.starts_with("mykey_session="), "{cookie}");
    assert!(
        cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"),
        "{cookie}"
    );
    assert!(
        !cookie.contains("Secure"),
        "plain HTTP on loopback: {cookie}"
    );
    let session = cookie.split(';').next().unwrap().to_owned();
    assert_eq!(
        get(addr, "/api/nodes", &[("Cookie", session.clone())]).status,
        200
    );
    assert!(f.hub.remove_operator("ops").unwrap());
    assert_eq!(get(addr, "/api/nodes", &[("Cookie", session)]).status, 401);
    assert_eq!(get(addr, "/api/nodes", &bearer(&token)).status, 401);
}

// ---- the server's bounds -------------------------------------------------

#[test]
fn slow_header_sockets_are_closed_within_the_timeout_and_connections_are_capped() {
    let f = Fixture::new();
    let limits = HttpLimits {
        header_read_timeout: Duration::from_secs(2),
        max_connections: 8,
        ..HttpLimits::default()
    };
    let addr = serve_with(&f, AppConfig::default(), limits, None);
    let started = Instant::now();
    // Half send part of their headers, half nothing at all.
    let slow: Vec<TcpStream> = (0..8)
        .map(|i| {
            let mut s = TcpStream::connect(addr).unwrap();
            if i % 2 == 0 {
                s.write_all(b"GET /login HTTP/1.1\r\nHost: x\r\nX-Slow: ")
                    .unwrap();
            }
            s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
            s
        })
        .collect();
    // Every slot is taken (the server accepts in connection order): a ninth
    // connection is closed as soon as it is accepted, long before the
    // header timeout would have closed it.
    let mut ninth = TcpStream::connect(addr).unwrap();
    ninth
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut buf = [0u8; 64];
    let n = ninth.read(&mut buf).unwrap_or(0);
    assert_eq!(n, 0, "the ninth connection was served");
    assert!(
        started.elapsed() < Duration::from_millis(1500),
        "the ninth waited"
    );
    for mut s in slow {
        // Closed (EOF, perhaps after a 408), not left open for minutes.
        let mut out = Vec::new();
        match s.read_to_end(&mut out) {
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => {}
            Err(e) => panic!("a slow-header socket stayed open: {e}"),
        }
    }
    let waited = started.elapsed();
    assert!(waited < Duration::from_secs(6), "closed after {waited:?}");
    // The slots are free again.
    assert_eq!(get(addr, "/login", &[]).status, 200);
}

#[test]
fn a_huge_declared_content_length_is_refused_at_once_unread() {
    let f = Fixture::new();
    let config = AppConfig {
        body_timeout: Duration::from_secs(1),
        ..AppConfig::default()
    };
    let addr = serve_with(&f, config, HttpLimits::default(), None);
    for path in ["/operator/v1/exchange", "/login", "/api/economy/settle"] {
        let started = Instant::now();
        // Headers only: the server must answer without waiting for a terabyte.
        let a = raw(
            addr,
            format!(
                "POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n\
                 Content-Length: 1000000000000\r\n\r\n"
            )
            .as_bytes(),
        );
        assert_eq!(a.status, 413, "{path}: {a:?}");
        assert!(started.elapsed() < Duration::from_secs(2), "{path}");
    }
    // A chunked body past the exchange route's 4096 bytes.
    let chunk = "x".repeat(5000);
    let a = raw(
        addr,
        format!(
            "POST /operator/v1/exchange HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\
             X-MyKey-Operator: card-x\r\nX-MyKey-Signature: 00\r\n\r\n{:x}\r\n{chunk}\r\n0\r\n\r\n",
            chunk.len()
        )
        .as_bytes(),
    );
    assert_eq!(a.status, 413, "{a:?}");
    // A body that stops coming is cut at the body timeout.
    let started = Instant::now();
    let a = raw(
        addr,
        b"POST /login HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded\r\n\
          Content-Length: 100\r\n\r\nname=ops",
    );
    assert_eq!(a.status, 408, "{a:?}");
    assert!(started.elapsed() < Duration::from_secs(5));
}

async fn boom() -> &'static str {
    panic!("secret detail 4242")
}

#[test]
fn a_panicking_handler_answers_500_with_an_incident_id_and_no_panic_text() {
    use axum::extract::State;
    use axum::routing::get as route_get;
    use mykey_hub::http::{AppState, Door};
    let f = Fixture::new();
    let hub = mykey_hub::Hub::open(&f.dir.path().join("hub")).unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async move {
            let state = AppState::new(hub, Default::default());
            let app = axum::Router::new()
                .route("/boom", route_get(boom))
                .route(
                    "/db-boom",
                    route_get(|State(s): State<AppState>| async move {
                        let _ = s
                            .with_hub(|_| -> Result<(), mykey_hub::StoreError> {
                                panic!("secret detail 4343")
                            })
                            .await;
                        "unreachable"
                    }),
                )
                .route("/ok", route_get(|| async { "ok" }))
                .route("/stuck", route_get(std::future::pending::<&'static str>))
                .with_state(state);
            let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            tx.send(l.local_addr().unwrap()).unwrap();
            let limits = HttpLimits {
                request_timeout: Duration::from_secs(2),
                max_in_flight: 1,
                ..HttpLimits::default()
            };
            Door::new(l, None, limits).serve(app).await.unwrap();
        });
    });
    let addr = rx.recv().unwrap();
    for path in ["/boom", "/db-boom"] {
        let a = get(addr, path, &[]);
        assert_eq!(a.status, 500, "{path}: {a:?}");
        assert!(!a.body.contains("secret"), "{path}: {}", a.body);
        assert!(!a.body.contains("panick"), "{path}: {}", a.body);
        let v: serde_json::Value = serde_json::from_str(&a.body).unwrap();
        assert_eq!(v["incident"].as_str().unwrap().len(), 12, "{v}");
    }
    assert_eq!(get(addr, "/ok", &[]).status, 200, "the server serves on");
    // One request at a time here: a second one meanwhile is refused at
    // once; the stuck one is given up at the request timeout.
    let stuck = std::thread::spawn(move || get(addr, "/stuck", &[]));
    let started = Instant::now();
    let mut refused = None;
    while started.elapsed() < Duration::from_secs(2) {
        let a = get(addr, "/ok", &[]);
        if a.status == 503 {
            refused = Some(a);
            break;
        }
    }
    let refused = refused.expect("a second request while one is in flight was not refused");
    assert_eq!(retry_after(&refused), 1);
    let stuck = stuck.join().unwrap();
    assert_eq!(stuck.status, 503, "{stuck:?}");
    assert!(stuck.body.contains("too long"), "{stuck:?}");
    assert_eq!(get(addr, "/ok", &[]).status, 200);
}

// ---- the operator exchange API ------------------------------------------

fn operator_key() -> SigningKey {
    SigningKey::from_bytes(&[7; 32])
}
fn operator() -> OperatorId {
    OperatorId::parse("air-y").unwrap()
}
fn enrol_operator(f: &mut Fixture) {
    f.hub
        .upsert_exchange_operator(
            &ExchangeOperator {
                id: operator(),
                name: "Air Y".into(),
                public_key: operator_key().verifying_key().to_bytes(),
                rate: Rate::new(1, 1).unwrap(),
                holding_days: 0,
                expiry: ExpiryPolicy::Never,
            },
            T0,
        )
        .unwrap();
}

/// A signed request body with any JSON (numbers a typed request cannot hold).
fn signed(body: &serde_json::Value, key: &SigningKey) -> (Vec<(&'static str, String)>, Vec<u8>) {
    let bytes = serde_json::to_vec(body).unwrap();
    let sig = ed25519_dalek::Signer::sign(key, &bytes).to_bytes();
    (
        vec![
            ("X-MyKey-Operator", operator().to_string()),
            ("X-MyKey-Signature", hex::encode(sig)),
        ],
        bytes,
    )
}

fn exchange(addr: SocketAddr, body: serde_json::Value) -> Answer {
    let (h, b) = signed(&body, &operator_key());
    post(addr, "/operator/v1/exchange", &h, &b)
}

fn now_ms() -> u64 {
    mykey_hub::net::unix_now().0
}

#[test]
fn requested_at_out_of_window_or_range_and_huge_points_get_422_without_panic_text() {
    let mut f = Fixture::new();
    enrol_operator(&mut f);
    f.hub
        .allow_exchange(&operator(), muni(), pts(1_000_000), T0)
        .unwrap();
    let addr = serve(&f);
    let hour = 3_600_000u64;
    let now = now_ms();
    for (i, requested_at) in [
        0,
        u64::MAX,
        i64::MAX as u64 + 1,
        now + 25 * hour,
        now - 25 * hour,
    ]
    .into_iter()
    .enumerate()
    {
        let a = exchange(
            addr,
            serde_json::json!({"request_id": format!("w{i}"), "my_key_id": "Alice01",
                "operator_points": 100, "requested_at": requested_at}),
        );
        assert_eq!(a.status, 422, "requested_at {requested_at}: {a:?}");
        assert!(a.body.contains("requested_at"), "{a:?}");
        assert!(!a.body.contains("panick"), "{a:?}");
    }
    for points in [u64::MAX, 1_000_000_000_001, 0] {
        let a = exchange(
            addr,
            serde_json::json!({"request_id": "p", "my_key_id": "Alice01",
                "operator_points": points, "requested_at": now}),
        );
        assert_eq!(a.status, 422, "operator_points {points}: {a:?}");
        assert!(!a.body.contains("panick"), "{a:?}");
    }
    // Nothing of it was stored or credited; a request in the window is.
    assert_eq!(f.hub.balance(f.alice, muni()).unwrap().balance.get(), 0);
    let a = exchange(
        addr,
        serde_json::json!({"request_id": "ok", "my_key_id": "Alice01",
            "operator_points": 100, "requested_at": now - 23 * hour}),
    );
    assert_eq!(a.status, 200, "{a:?}");
    assert_eq!(f.hub.balance(f.alice, muni()).unwrap().balance.get(), 100);
}

#[test]
fn an_operator_credits_only_its_municipalities_within_a_daily_cap() {
    let mut f = Fixture::new();
    enrol_operator(&mut f);
    let addr = serve(&f);
    let req = |id: &str, points: u64, m: Option<&str>| {
        let mut v = serde_json::json!({"request_id": id, "my_key_id": "Alice01",
            "operator_points": points, "requested_at": now_ms()});
        if let Some(m) = m {
            v["municipality"] = m.into();
        }
        v
    };
    // Enrolled, but for no municipality yet.
    let a = exchange(addr, req("a", 100, None));
    assert_eq!(a.status, 403, "{a:?}");
    assert!(a.body.contains("exchange-operator allow"), "{a:?}");
    f.hub
        .allow_exchange(&operator(), muni(), pts(1000), T0)
        .unwrap();
    // Another municipality's holders are not its to credit.
    let a = exchange(addr, req("b", 100, Some("131016")));
    assert_eq!(a.status, 403, "{a:?}");
    assert_eq!(
        f.hub.balance(f.alice, other_muni()).unwrap().balance.get(),
        0
    );
    assert_eq!(exchange(addr, req("c", 700, None)).status, 200);
    // 700 + 400 would pass the cap of 1000 today.
    let a = exchange(addr, req("d", 400, None));
    assert_eq!(a.status, 429, "{a:?}");
    assert!(retry_after(&a) <= 86_400, "{a:?}");
    assert!(a.body.contains("700 of its 1000"), "{a:?}");
    assert_eq!(exchange(addr, req("e", 300, None)).status, 200);
    assert_eq!(f.hub.balance(f.alice, muni()).unwrap().balance.get(), 1000);
    assert!(f.hub.disallow_exchange(&operator(), muni()).unwrap());
    assert_eq!(exchange(addr, req("f", 1, None)).status, 403);
}

#[test]
fn each_operator_has_a_request_rate_that_forgers_cannot_use_up() {
    let mut f = Fixture::new();
    enrol_operator(&mut f);
    f.hub
        .allow_exchange(&operator(), muni(), pts(1_000_000), T0)
        .unwrap();
    let config = AppConfig {
        exchange_per_second: 1,
        exchange_burst: 2,
        ..AppConfig::default()
    };
    let addr = serve_with(&f, config, HttpLimits::default(), None);
    let body = serde_json::json!({"request_id": "r", "my_key_id": "Alice01",
        "operator_points": 10, "requested_at": now_ms()});
    // Requests under the operator's name with another key: refused, not counted.
    for _ in 0..5 {
        let (h, b) = signed(&body, &SigningKey::from_bytes(&[8; 32]));
        assert_eq!(post(addr, "/operator/v1/exchange", &h, &b).status, 401);
    }
    let (h, b) = signed(&body, &operator_key());
    let first = post(addr, "/operator/v1/exchange", &h, &b);
    assert_eq!(first.status, 200, "{first:?}");
    // Its own requests beyond the burst of two are over its rate (one a
    // second refills: the refusal says to wait a second).
    let over: Vec<Answer> = (0..3)
        .map(|_| post(addr, "/operator/v1/exchange", &h, &b))
        .filter(|a| a.status == 429)
        .collect();
    assert!(!over.is_empty(), "no request was over the rate");
    assert_eq!(retry_after(&over[0]), 1);
}

// ---- roles and token scopes ----------------------------------------------

#[test]
fn a_read_only_token_cannot_settle_and_scopes_and_roles_limit_what_is_seen() {
    let mut f = Fixture::new();
    f.hub
        .admin_grant(f.alice, &program(), pts(250), T0)
        .unwrap();
    // A node in the other municipality, which Bunkyo's staff must not see.
    let chiyoda = Chain::new(21);
    f.hub
        .enrol_node(
            chiyoda.id,
            &fid("shop-9"),
            policy(&[mykey_sync_proto::OpKind::Redeem]),
            T0,
        )
        .unwrap();
    let admin = f.token_for("ops", Role::Admin, Scope::Admin);
    let prometheus = f.token_for("ops", Role::Admin, Scope::Read);
    let reports = f.token_for("ops", Role::Admin, Scope::Staff);
    let viewer = f.token_for("auditor", Role::Viewer, Scope::Admin);
    let staff = f.token_for("bunkyo", Role::Staff(muni()), Scope::Admin);
    let addr = serve(&f);
    let settle = |t: &str| {
        post(
            addr,
            "/api/economy/settle",
            &bearer(t),
            br#"{"through_now": true}"#,
        )
    };
    for (who, t) in [
        ("read", &prometheus),
        ("staff scope", &reports),
        ("viewer", &viewer),
        ("staff", &staff),
    ] {
        let a = settle(t);
        assert_eq!(a.status, 403, "{who}: {a:?}");
        assert!(a.body.contains("may not"), "{who}: {a:?}");
        assert_eq!(
            post(addr, "/api/economy/expire", &bearer(t), b"{}").status,
            403,
            "{who}"
        );
    }
    assert!(
        f.hub.closed_periods(muni()).unwrap().is_empty(),
        "nothing was settled"
    );
    // The read token sees /metrics and node status, nothing else.
    assert_eq!(get(addr, "/metrics", &bearer(&prometheus)).status, 200);
    assert_eq!(get(addr, "/api/nodes", &bearer(&prometheus)).status, 200);
    assert_eq!(get(addr, "/api/alerts", &bearer(&prometheus)).status, 200);
    for path in [
        "/api/economy/liabilities",
        "/api/liabilities",
        "/api/escrow?municipality=131059",
        "/",
    ] {
        assert_eq!(get(addr, path, &bearer(&prometheus)).status, 403, "{path}");
        assert_eq!(get(addr, path, &bearer(&reports)).status, 200, "{path}");
        assert_eq!(get(addr, path, &bearer(&viewer)).status, 200, "{path}");
    }
    // Bunkyo's staff: Bunkyo's data only, no hub-wide metrics.
    assert_eq!(get(addr, "/metrics", &bearer(&staff)).status, 403);
    let nodes: serde_json::Value =
        serde_json::from_str(&get(addr, "/api/nodes", &bearer(&staff)).body).unwrap();
    let ms: Vec<&str> = nodes["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["municipality"].as_str().unwrap())
        .collect();
    assert!(
        !ms.is_empty() && ms.iter().all(|m| *m == "131059"),
        "{ms:?}"
    );
    let all: serde_json::Value =
        serde_json::from_str(&get(addr, "/api/nodes", &bearer(&viewer)).body).unwrap();
    assert_eq!(all["nodes"].as_array().unwrap().len(), ms.len() + 1);
    let other = format!("/api/nodes/{}", chiyoda.id);
    assert_eq!(get(addr, &other, &bearer(&staff)).status, 404);
    assert_eq!(get(addr, &other, &bearer(&viewer)).status, 200);
    for path in [
        "/api/escrow?municipality=131016",
        "/api/economy/periods?municipality=131016",
        "/api/economy/lots?municipality=131016&account=1",
    ] {
        assert_eq!(get(addr, path, &bearer(&staff)).status, 403, "{path}");
    }
    assert_eq!(
        get(addr, "/api/escrow?municipality=131059", &bearer(&staff)).status,
        200
    );
    let report: serde_json::Value =
        serde_json::from_str(&get(addr, "/api/economy/liabilities", &bearer(&staff)).body).unwrap();
    let listed: Vec<&str> = report["municipalities"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["municipality"].as_str().unwrap())
        .collect();
    assert_eq!(listed, ["131059"]);
    // The admin token settles.
    let a = settle(&admin);
    assert_eq!(a.status, 200, "{a:?}");
    assert!(!f.hub.closed_periods(muni()).unwrap().is_empty());
}

#[test]
fn tokens_expire_and_revoke_at_once() {
    let mut f = Fixture::new();
    f.api_token();
    // Made at T0 (mid-2025) to work for a day: long expired by the real clock.
    let old = f
        .hub
        .new_api_token("ops", Scope::Admin, Some(T0.plus_ms(86_400_000)), T0)
        .unwrap();
    let now = mykey_hub::net::unix_now();
    let live = f
        .hub
        .new_api_token("ops", Scope::Read, Some(now.plus_ms(3_600_000)), now)
        .unwrap();
    let addr = serve(&f);
    assert_eq!(get(addr, "/api/nodes", &bearer(&old.token)).status, 401);
    assert_eq!(get(addr, "/api/nodes", &bearer(&live.token)).status, 200);
    assert!(f.hub.revoke_api_token(&live.info.id, now).unwrap());
    assert!(!f.hub.revoke_api_token(&live.info.id, now).unwrap(), "once");
    let a = get(addr, "/api/nodes", &bearer(&live.token));
    assert_eq!(a.status, 401, "{a:?}");
    let states: Vec<_> = f
        .hub
        .api_tokens(Some("ops"))
        .unwrap()
        .iter()
        .map(|t| (t.id.clone(), t.state(now)))
        .collect();
    assert!(
        states.contains(&(old.info.id.clone(), "expired")),
        "{states:?}"
    );
    assert!(
        states.contains(&(live.info.id.clone(), "revoked")),
        "{states:?}"
    );
    assert!(
        f.hub
            .new_api_token("ops", Scope::Read, Some(T0), T0)
            .is_err(),
        "a token that expires as it is made"
    );
}
