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

/// Enrols one more node at the shop with `hub` (not through the state).
fn enrol_another(hub: &mut Hub, seed: u8) {
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
