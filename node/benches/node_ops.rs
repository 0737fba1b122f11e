//! Node benchmarks (DESIGN §12), printed as figures, not asserted:
//! - card tap → facility card number from the cache at 1M cached links
//!   (card I/O excluded): goal p99 ≤ 1 ms;
//! - offline redeem (decide, sign, durable commit): goal p99 ≤ 5 ms.
//!
//! Run: `cargo bench -p mykey-node --bench node_ops` (env `BENCH_CARDS` to
//! change the cache size, default 1,000,000).

use mykey_node::node::Lookup;
use mykey_node::{Node, NodeKey};
use mykey_sync_proto::{
    AccountId, CardKey, FacilityCardNumber, FacilityId, MunicipalityCode, MyKeyId, NodeLimits,
    OpKind, Points, UnixMillis, codec,
};
use std::time::Instant;

fn card(i: u64) -> CardKey {
    CardKey::new(
        b"0\x1a1\x0b0\t\x06\x03U\x04\x06\x13\x02JP1\x0b0\t\x06\x03U\x04\n\x0c\x02CA".to_vec(),
        i.to_be_bytes().to_vec(),
    )
    .expect("valid card key")
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

fn report(name: &str, mut us: Vec<f64>) {
    us.sort_by(|a, b| a.total_cmp(b));
    println!(
        "{name:<48} n={:<7} p50={:>8.1} µs  p99={:>8.1} µs  max={:>8.1} µs",
        us.len(),
        percentile(&us, 0.5),
        percentile(&us, 0.99),
        us[us.len() - 1]
    );
}

fn main() {
    let n_cards: u64 = std::env::var("BENCH_CARDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000);
    let dir = tempfile::tempdir_in(std::env::var("BENCH_DIR").unwrap_or_else(|_| ".".into()))
        .expect("temp dir");
    let key = NodeKey::from_secret([7; 32]);
    let hub = NodeKey::from_secret([9; 32]).id();
    let me = key.id();
    let mut node = Node::open(&dir.path().join("node.sqlite"), key, hub).expect("open");
    let muni = MunicipalityCode::parse("131059").expect("code");
    let t0 = Instant::now();
    node.store_mut()
        .write(|w| {
            w.set_meta(
                "limits",
                &codec::encode(&NodeLimits {
                    node: me,
                    facility: FacilityId::parse("bench-lib").expect("id"),
                    municipality: muni,
                    allowed_ops: OpKind::ALL.to_vec(),
                    per_card_offline_limit: Points::new(1_000_000).expect("p"),
                    node_exposure_limit: Points::new(Points::MAX).expect("p"),
                    pin_threshold: Points::new(1_000_000).expect("p"),
                    valid_until: UnixMillis(u64::MAX),
                }),
            )?;
            for i in 1..=n_cards {
                let account = AccountId::new(i).expect("account");
                w.put_card(
                    &card(i),
                    &mykey_node::store::CardRow {
                        account,
                        my_key_id: MyKeyId::parse(&format!("holder{i}")).expect("id"),
                        municipality: muni,
                    },
                )?;
                w.set_number(
                    account,
                    &FacilityCardNumber::parse(&format!("LIB-{i:08}")).expect("n"),
                    Some("linked"),
                )?;
                if i <= 10_000 {
                    w.put_balance(
                        account,
                        muni,
                        Points::new(100_000).expect("p"),
                        Points::ZERO,
                        1,
                    )?;
                }
            }
            Ok::<_, mykey_node::store::StoreError>(())
        })
        .expect("fill");
    println!(
        "filled {n_cards} cached cards in {:.1} s",
        t0.elapsed().as_secs_f64()
    );

    // Lookups: a pseudo-random walk over the cache (deterministic LCG).
    let mut x: u64 = 12345;
    let mut us = Vec::with_capacity(100_000);
    for _ in 0..100_000 {
        x = x
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        let c = card(1 + (x >> 33) % n_cards);
        let t = Instant::now();
        let r = node.lookup(&c).expect("lookup");
        us.push(t.elapsed().as_secs_f64() * 1e6);
        assert!(matches!(r, Lookup::Found { ref numbers, .. } if numbers.len() == 1));
    }
    report(&format!("lookup at {n_cards} cached cards"), us);

    // Offline redeems: decide, sign, durable commit (synchronous=FULL).
    let mut us = Vec::with_capacity(2000);
    for k in 0..2000u64 {
        let c = card(1 + k % 10_000);
        let t = Instant::now();
        node.redeem(&c, Points::new(1).expect("p"), None, UnixMillis(1_000 + k))
            .expect("redeem");
        us.push(t.elapsed().as_secs_f64() * 1e6);
    }
    report("offline redeem (decide, sign, durable commit)", us);
}
