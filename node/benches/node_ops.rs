//! Node benchmarks (DESIGN §12, issue 20 goal 4), printed as figures with
//! their floors, not asserted:
//! - card tap → facility card number from the cache at 1M cached links
//!   (card I/O excluded): goal p99 ≤ 100 µs;
//! - offline redeem (decide, sign, durable commit) against its floor, one
//!   fsync'd one-row commit (WAL, `synchronous=FULL`) in a scratch SQLite
//!   file beside the store, sampled alternately with the redeems in this
//!   process: goal redeem p99 ≤ 1.5 × the floor's p99;
//! - redeems with history (the shape of `bench_net`'s outage: 10,000
//!   redeems on 50 cards, every one still pending): the rate, and the p50
//!   of the first and the last 1,000, which stay level when nothing a
//!   redeem does grows with the pending history.
//!
//! Run: `cargo bench -p mykey-node --bench node_ops` (env `BENCH_CARDS` to
//! change the cache size, default 1,000,000; `BENCH_REDEEMS`, default
//! 5,000; `BENCH_HISTORY`, default 10,000; `BENCH_DIR`, default `.`, where
//! the files go: put it on the disk the node uses).

use mykey_node::node::Lookup;
use mykey_node::{Node, NodeKey};
use mykey_sync_proto::{
    AccountId, CardKey, FacilityCardNumber, FacilityId, MunicipalityCode, MyKeyId, NodeLimits,
    OpKind, Points, UnixMillis, codec,
};
use rusqlite::{Connection, TransactionBehavior, params};
use std::path::Path;
use std::time::Instant;

fn card(i: u64) -> CardKey {
    CardKey::new(
        b"0\x1a1\x0b0\t\x06\x03U\x04\x06\x13\x02JP1\x0b0\t\x06\x03U\x04\n\x0c\x02CA".to_vec(),
        i.to_be_bytes().to_vec(),
    )
    .expect("valid card key")
}

fn env(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

/// Prints a line of figures; returns (p50, p99) in µs.
fn report(name: &str, mut us: Vec<f64>) -> (f64, f64) {
    us.sort_by(|a, b| a.total_cmp(b));
    let (p50, p99) = (percentile(&us, 0.5), percentile(&us, 0.99));
    println!(
        "{name:<48} n={:<7} p50={p50:>8.1} µs  p99={p99:>8.1} µs  max={:>8.1} µs",
        us.len(),
        us[us.len() - 1]
    );
    (p50, p99)
}

/// A node whose limits allow every op with room to spare, its cache filled
/// with `n_cards` linked cards in one bulk transaction, the first
/// `n_funded` of them with a confirmed balance.
fn filled_node(path: &Path, n_cards: u64, n_funded: u64) -> Node {
    let key = NodeKey::from_secret([7; 32]);
    let hub = NodeKey::from_secret([9; 32]).id();
    let me = key.id();
    let mut node = Node::open(path, key, hub).expect("open");
    let muni = MunicipalityCode::parse("131059").expect("code");
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
                if i <= n_funded {
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
    node
}

/// The floor of a durable write: a scratch SQLite file with the store's
/// durability settings, one row per committed transaction.
struct Floor {
    conn: Connection,
    next: i64,
}

impl Floor {
    fn open(path: &Path) -> Floor {
        let conn = Connection::open(path).expect("floor db");
        conn.pragma_update(None, "journal_mode", "WAL")
            .expect("wal");
        conn.pragma_update(None, "synchronous", "FULL")
            .expect("full");
        conn.execute_batch("CREATE TABLE rows (k INTEGER PRIMARY KEY, v BLOB NOT NULL)")
            .expect("table");
        Floor { conn, next: 1 }
    }

    /// One row (about a signed redeem's size), committed durably.
    fn commit_one(&mut self) {
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .expect("begin");
        tx.prepare_cached("INSERT INTO rows(k, v) VALUES (?1, ?2)")
            .expect("prepare")
            .execute(params![self.next, [0x5au8; 200].as_slice()])
            .expect("insert");
        tx.commit().expect("commit");
        self.next += 1;
    }
}

fn main() {
    let n_cards = env("BENCH_CARDS", 1_000_000);
    let n_redeems = env("BENCH_REDEEMS", 5_000);
    let n_history = env("BENCH_HISTORY", 10_000);
    let dir = tempfile::tempdir_in(std::env::var("BENCH_DIR").unwrap_or_else(|_| ".".into()))
        .expect("temp dir");
    let t0 = Instant::now();
    let mut node = filled_node(&dir.path().join("node.sqlite"), n_cards, 10_000);
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
    let (_, lookup_p99) = report(&format!("lookup at {n_cards} cached cards"), us);
    println!(
        "  lookup p99 {lookup_p99:.1} µs = {:.2} × the goal's 100 µs (goal ≤ 1)",
        lookup_p99 / 100.0
    );

    // Offline redeems against the floor, sampled alternately so both see
    // the same disk.
    let mut floor = Floor::open(&dir.path().join("floor.sqlite"));
    let (mut redeem_us, mut floor_us) = (vec![], vec![]);
    for k in 0..n_redeems {
        let t = Instant::now();
        floor.commit_one();
        floor_us.push(t.elapsed().as_secs_f64() * 1e6);
        let c = card(1 + k % 10_000.min(n_cards));
        let t = Instant::now();
        node.redeem(&c, Points::new(1).expect("p"), None, UnixMillis(1_000 + k))
            .expect("redeem");
        redeem_us.push(t.elapsed().as_secs_f64() * 1e6);
    }
    let (r50, r99) = report("offline redeem (decide, sign, durable commit)", redeem_us);
    let (f50, f99) = report("floor: one-row fsync'd commit (WAL, FULL)", floor_us);
    println!(
        "  redeem / floor: p50 {:.2}×, p99 {:.2}× (goal p99 ≤ 1.5×)",
        r50 / f50,
        r99 / f99
    );
    drop(node);

    // History: bench_net's shape (50 cards, every redeem still pending).
    let mut node = filled_node(&dir.path().join("history.sqlite"), 50, 50);
    let mut us = Vec::with_capacity(n_history as usize);
    let t0 = Instant::now();
    for k in 0..n_history {
        let t = Instant::now();
        node.redeem(
            &card(1 + k % 50),
            Points::new(1).expect("p"),
            None,
            UnixMillis(1_000 + k),
        )
        .expect("redeem");
        us.push(t.elapsed().as_secs_f64() * 1e6);
    }
    let rate = n_history as f64 / t0.elapsed().as_secs_f64();
    let window = us.len().min(1_000);
    let first = report(
        &format!("redeem, the first {window} of {n_history} on 50 cards"),
        us[..window].to_vec(),
    );
    let last = report(
        &format!("redeem, the last {window} (all pending)"),
        us[us.len() - window..].to_vec(),
    );
    println!(
        "  {rate:.0} redeems/s; last / first p50 {:.2}× (level: ≈ 1)",
        last.0 / first.0
    );
}
