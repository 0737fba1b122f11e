//! The dashboard's snapshot of every node ([`Hub::fleet`]) and the
//! `/metrics` text over it, for a hub with hundreds of nodes: what each page
//! load, refresh and scrape costs.
//!
//! Run: `cargo bench -p mykey-hub --bench fleet` (release). Knobs
//! (environment): `BENCH_NODES` (default 500), `BENCH_MUNIS` (10),
//! `BENCH_ROUNDS` (20). Prints the median and the worst round.

use mykey_hub::admin::facility;
use mykey_hub::status::assess::Thresholds;
use mykey_hub::{FacilityKind, Hub, NodePolicy};
use mykey_sync_proto::wire::Hello;
use mykey_sync_proto::{FacilityId, MunicipalityCode, NodeId, OpKind, Points, UnixMillis};
use std::time::Instant;

const T0: UnixMillis = UnixMillis(1_800_000_000_000);
const HOUR: u64 = 3_600_000;

fn env(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// A valid municipality code from a 5-digit base: the check digit the
/// parser accepts.
fn municipality(base: u32) -> MunicipalityCode {
    (0..10)
        .find_map(|d| MunicipalityCode::parse(&format!("{base:05}{d}")).ok())
        .expect("some check digit fits")
}

fn node_id(i: usize) -> NodeId {
    let mut seed = [7u8; 32];
    seed[..8].copy_from_slice(&(i as u64).to_le_bytes());
    NodeId::from_bytes(
        ed25519_dalek::SigningKey::from_bytes(&seed)
            .verifying_key()
            .to_bytes(),
    )
    .expect("an ed25519 key")
}

fn main() {
    let n_nodes = env("BENCH_NODES", 500);
    let n_munis = env("BENCH_MUNIS", 10).max(1);
    let rounds = env("BENCH_ROUNDS", 20).max(1);
    let dir = tempfile::tempdir().expect("a temp dir");
    let mut hub = Hub::init(&dir.path().join("hub")).expect("a hub");
    let munis: Vec<MunicipalityCode> = (0..n_munis)
        .map(|i| municipality(13101 + i as u32))
        .collect();
    for (i, m) in munis.iter().enumerate() {
        hub.add_municipality(*m, &format!("municipality {i}"), T0)
            .expect("add municipality");
    }
    let kinds = FacilityKind::ALL;
    for i in 0..n_nodes {
        let m = munis[i % n_munis];
        let fid = FacilityId::parse(&format!("f-{i}")).expect("an id");
        hub.add_facility(
            &facility(
                fid.clone(),
                m,
                kinds[i % kinds.len()],
                &format!("facility {i}"),
            ),
            T0,
        )
        .expect("add facility");
        let policy = NodePolicy {
            allowed_ops: vec![OpKind::Redeem],
            per_card_offline_limit: Points::new(1000).expect("points"),
            node_exposure_limit: Points::new(10_000).expect("points"),
            offline_voucher_cap: Points::new(10_000).expect("points"),
            pin_threshold: Points::new(1000).expect("points"),
            valid_until: T0.plus_ms(365 * 24 * HOUR),
        };
        hub.enrol_node(node_id(i), &fid, policy, T0).expect("enrol");
    }
    // Every node said Hello at some point of the last three days; a third
    // reconnected several times.
    for i in 0..n_nodes {
        let sessions = if i % 3 == 0 { 5 } else { 1 };
        for k in 0..sessions {
            let at = T0.plus_ms(HOUR + (i as u64 * 7 + k * 3) % (72 * HOUR));
            let hello = Hello {
                node: node_id(i),
                node_time: at,
                last_seq: (i % 4) as u64,
                fact_cursor: (i % 50) as u64,
                software: "mykey-node/0.1.0".into(),
            };
            let _ = hub.try_open(&hello, at).expect("open");
        }
    }
    let th = Thresholds::default();
    let now = T0.plus_ms(73 * HOUR);
    let mut fleet_ms = vec![];
    let mut metrics_ms = vec![];
    let mut n_alerts = 0;
    for _ in 0..rounds {
        let t = Instant::now();
        let fleet = hub.fleet(&th, now).expect("fleet");
        fleet_ms.push(t.elapsed().as_secs_f64() * 1000.0);
        n_alerts = fleet.nodes.iter().map(|r| r.assessment.alerts.len()).sum();
        let t = Instant::now();
        let text = mykey_hub::http::metrics::render(
            &fleet,
            &hub.observed().counters().snapshot(),
            &Default::default(),
        );
        metrics_ms.push(t.elapsed().as_secs_f64() * 1000.0);
        assert!(text.contains("mykey_hub_nodes{state=\"alert\"}"));
    }
    let stats = |v: &mut Vec<f64>| {
        v.sort_by(f64::total_cmp);
        (v[v.len() / 2], v[v.len() - 1])
    };
    let (fm, fw) = stats(&mut fleet_ms);
    let (mm, mw) = stats(&mut metrics_ms);
    println!(
        "fleet snapshot of {n_nodes} nodes in {n_munis} municipalities ({n_alerts} alerts): \
         median {fm:.1} ms, worst {fw:.1} ms over {rounds} rounds"
    );
    println!("/metrics text over it: median {mm:.2} ms, worst {mw:.2} ms");
}
