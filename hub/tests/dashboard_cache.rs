//! The dashboard's reads kept in memory (`AppConfig::dashboard_cache`,
//! issue 13's load goal): many pollers share one computation, a write made
//! through the HTTP side is seen at once, and a change made elsewhere (a
//! node's push on the writer, a CLI process) is seen once the cached read
//! is older than the setting; with zero, every request reads the store.

mod common;

use common::*;
use mykey_hub::Hub;
use mykey_hub::http::{AppConfig, AppState};
use mykey_hub::status::assess::Thresholds;
use mykey_sync_proto::OpKind;
use std::time::Duration;

fn state(f: &Fixture, dashboard_cache: Duration) -> AppState {
    let hub = Hub::open(&f.dir.path().join("hub")).unwrap();
    AppState::with_config(
        hub,
        Thresholds::default(),
        AppConfig {
            dashboard_cache,
            ..AppConfig::default()
        },
    )
}

fn block_on<T>(fut: impl std::future::Future<Output = T>) -> T {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(fut)
}

/// Enrols one more node at the shop with `hub` (not through the state), on
/// a thread of its own: a store call blocks, and the PostgreSQL client must
/// not block a runtime's thread (the serving hub calls it from its storage
/// worker and `spawn_blocking` only).
fn enrol_another(hub: &mut Hub, seed: u8) {
    std::thread::scope(|s| s.spawn(|| enrol_node(hub, seed)).join().unwrap());
}

fn enrol_node(hub: &mut Hub, seed: u8) {
    hub.enrol_node(
        Chain::new(seed).id,
        &fid("shop-1"),
        policy(&[OpKind::Redeem]),
        T0,
    )
    .unwrap();
}

#[test]
fn a_change_made_elsewhere_shows_once_the_cached_read_is_old_enough() {
    let mut f = Fixture::new();
    let cached = state(&f, Duration::from_secs(3600));
    let uncached = state(&f, Duration::ZERO);
    block_on(async {
        let before = cached.fleet(T0).await.unwrap().nodes.len();
        assert_eq!(uncached.fleet(T0).await.unwrap().nodes.len(), before);
        enrol_another(&mut f.hub, 90);
        // Within the hour the cached read is served; uncached sees the node.
        assert_eq!(cached.fleet(T0).await.unwrap().nodes.len(), before);
        assert_eq!(uncached.fleet(T0).await.unwrap().nodes.len(), before + 1);
    });
    // A short setting: the change shows once the read is that old.
    let short = state(&f, Duration::from_millis(50));
    block_on(async {
        let n = short.fleet(T0).await.unwrap().nodes.len();
        enrol_another(&mut f.hub, 91);
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        loop {
            if short.fleet(T0).await.unwrap().nodes.len() == n + 1 {
                break;
            }
            assert!(std::time::Instant::now() < deadline, "never refreshed");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    });
}

#[test]
fn a_write_through_the_http_side_is_seen_at_once() {
    let f = Fixture::new();
    let cached = state(&f, Duration::from_secs(3600));
    block_on(async {
        let before = cached.fleet(T0).await.unwrap().nodes.len();
        cached
            .with_writer(|hub| {
                enrol_another(hub, 92);
                Ok(())
            })
            .await
            .unwrap();
        assert_eq!(cached.fleet(T0).await.unwrap().nodes.len(), before + 1);
    });
}

#[test]
fn concurrent_pollers_share_one_read() {
    let mut f = Fixture::new();
    let cached = state(&f, Duration::from_secs(3600));
    block_on(async {
        let first = cached.fleet(T0).await.unwrap();
        enrol_another(&mut f.hub, 93);
        // Fifty at once: all served the read in memory, none the new node.
        let polls: Vec<_> = (0..50)
            .map(|_| {
                let s = cached.clone();
                tokio::spawn(async move { s.fleet(T0).await.unwrap() })
            })
            .collect();
        for p in polls {
            assert_eq!(p.await.unwrap(), first);
        }
    });
}

#[test]
fn an_operator_exchange_keeps_the_pages_cached_read() {
    use ed25519_dalek::SigningKey;
    use mykey_hub::economy::exchange::{
        ExchangeOperator, ExchangeRequest, OperatorId, Rate, SignedExchange,
    };
    use mykey_hub::economy::lots::ExpiryPolicy;
    let mut f = Fixture::new();
    let token = f.api_token();
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
    let addr = serve_with(
        &f,
        AppConfig {
            dashboard_cache: Duration::from_secs(3600),
            ..AppConfig::default()
        },
        Default::default(),
        None,
    );
    let auth = [("Authorization", format!("Bearer {token}"))];
    let nodes = || {
        let (status, body) = request(addr, "GET", "/api/nodes", &auth, b"");
        assert_eq!(status, 200, "{body}");
        let v: serde_json::Value = serde_json::from_str(&body).unwrap();
        v["nodes"].as_array().map(Vec::len).unwrap()
    };
    let before = nodes();
    enrol_another(&mut f.hub, 94);
    // Exchanges (a machine client's writes no page waits to show) leave the
    // cached read in place: 50 pollers do not each read the fleet again
    // after every exchange.
    for i in 0..3 {
        let s = SignedExchange::sign(
            &op,
            &ExchangeRequest {
                request_id: format!("req-{i}"),
                my_key_id: "Alice01".into(),
                operator_points: 10,
                municipality: None,
                requested_at: mykey_hub::net::unix_now().0,
                donate_to: None,
            },
            &key,
        );
        let headers = [
            ("X-MyKey-Operator", s.operator.to_string()),
            ("X-MyKey-Signature", hex::encode(s.signature)),
        ];
        let (status, body) = request(addr, "POST", "/operator/v1/exchange", &headers, &s.body);
        assert_eq!(status, 200, "{body}");
        assert_eq!(nodes(), before, "the exchange cleared the cached read");
    }
    // The exchanges were applied all the same.
    assert_eq!(f.hub.balance(f.alice, muni()).unwrap().balance.get(), 30);
}
