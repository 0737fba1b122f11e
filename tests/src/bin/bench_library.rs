//! A big-city library's first sync (issue 20, goal 6): the hub holds
//! `BENCH_CARDS` registered cards (default 1,000,000) in compacted shards; a
//! fresh library node (`mykey-node run`, link and unlink only) connects and
//! pulls them. Prints the time from the node's start to "caught up with the
//! hub", the node's RSS (now and peak, `VmHWM`), and beside it a floor
//! measured in the same run on the same filesystem: the same number of rows
//! of the node's `cards` table shape (key, account, MyKey ID, municipality,
//! with its account index) written to a scratch SQLite file in one
//! transaction; then the ratio. Also what the node received and keeps (the
//! application bytes it logged, its shard documents' bytes, its `cards` rows).
//!
//! Everything lives under /dev/shm when there is one (as `bench_net`'s RSS
//! section): registering a million holders one durable commit at a time is
//! set-up, not the figure.
//!
//! ```sh
//! cargo build --release -p mykey-node --bin mykey-node -p mykey-hub --bin mykey-hub -p mykey-tests --bin bench_library
//! target/release/bench_library
//! BENCH_CARDS=100000 target/release/bench_library   # quicker
//! ```
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

#[path = "../../tests/net_common/mod.rs"]
mod net_common;

use mykey_sync_proto::MyKeyId;
use net_common::*;
use std::path::Path;
use std::time::{Duration, Instant};

fn env(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// A value of `/proc/PID/status` in kB (`VmHWM:`, `VmRSS:`).
fn vm_kb(pid: u32, key: &str) -> u64 {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    s.lines()
        .find(|l| l.starts_with(key))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

/// Seconds to write `n` rows shaped as the node's `cards` table (WITHOUT
/// ROWID, with its account index) in one durable transaction, in a scratch
/// SQLite file in `dir`.
fn floor_secs(n: usize, dir: &Path) -> f64 {
    let path = dir.join("floor.sqlite");
    let conn = rusqlite::Connection::open(&path).unwrap();
    conn.pragma_update(None, "journal_mode", "WAL").unwrap();
    conn.pragma_update(None, "synchronous", "FULL").unwrap();
    conn.execute_batch(
        "CREATE TABLE cards (
            card BLOB PRIMARY KEY,
            account INTEGER NOT NULL,
            my_key_id TEXT NOT NULL,
            municipality INTEGER NOT NULL
         ) WITHOUT ROWID;
         CREATE INDEX cards_account ON cards(account);",
    )
    .unwrap();
    let t = Instant::now();
    conn.execute_batch("BEGIN").unwrap();
    {
        let mut ins = conn
            .prepare("INSERT INTO cards (card, account, my_key_id, municipality) VALUES (?1, ?2, ?3, ?4)")
            .unwrap();
        for i in 0..n {
            // Keys arrive in hash order, not in the order of the accounts.
            let c = card(0x10_0000 + i as u32);
            let key = (i as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15).to_be_bytes();
            let mut blob = c.to_string().into_bytes();
            blob[..8].copy_from_slice(&key);
            ins.execute(rusqlite::params![
                blob,
                i as i64 + 1,
                format!("card{i}"),
                131059
            ])
            .unwrap();
        }
    }
    conn.execute_batch("COMMIT").unwrap();
    let s = t.elapsed().as_secs_f64();
    drop(conn);
    for ext in ["", "-wal", "-shm"] {
        std::fs::remove_file(format!("{}{ext}", path.display())).ok();
    }
    s
}

/// (rows of `cards`, bytes of `shard_docs`) in the node's store.
fn node_store_figures(dir: &Path) -> (i64, i64) {
    let db = dir.join("node.sqlite");
    let conn =
        rusqlite::Connection::open_with_flags(&db, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
            .unwrap();
    let one = |sql: &str| {
        conn.query_row(sql, [], |r| r.get::<_, i64>(0))
            .unwrap_or(-1)
    };
    (
        one("SELECT count(*) FROM cards"),
        one("SELECT coalesce(sum(length(bytes)), 0) FROM shard_docs"),
    )
}

fn main() {
    let n_cards = env("BENCH_CARDS", 1_000_000).max(1);
    println!("== a library's first sync of {n_cards} cached cards (loopback)");
    let shm = Path::new("/dev/shm");
    let w = if shm.is_dir() {
        World::create_in(shm, 0, 0)
    } else {
        World::create(0, 0)
    };
    let mut h = w.open_hub();
    let (dir, _) = w.add_library(&mut h, bunkyo(), "library-central");
    let t = Instant::now();
    for i in 0..n_cards {
        let id = MyKeyId::parse(&format!("card{i}")).unwrap();
        h.register_account(&id, bunkyo(), &card(0x10_0000 + i as u32), now())
            .unwrap();
        if (i + 1) % 100_000 == 0 {
            eprintln!(
                "registered {} of {n_cards} ({:.0} s)",
                i + 1,
                t.elapsed().as_secs_f64()
            );
        }
    }
    // A new shard epoch picks bucket counts for ~10k items per shard (epoch 0
    // has one bucket per scope).
    let scopes = h.compact_shards(now()).unwrap();
    drop(h);
    println!(
        "set up: registered {n_cards} holders at the hub in {:.1} s; compacted {scopes} shard scopes",
        t.elapsed().as_secs_f64()
    );

    let (mut hub, addr) = start_hub(&w.hub_dir, 0);
    let t = Instant::now();
    let mut node = start_node("library", &dir, Some(&addr), &[]);
    let limit = Duration::from_secs(env("BENCH_TIMEOUT_SECS", 3600) as u64);
    wait_until("the cards to arrive", limit, || {
        node.stderr().contains("caught up with the hub")
    });
    let pulled = t.elapsed().as_secs_f64();
    let pid = node.pid();
    let (rss_kb, hwm_kb) = (vm_kb(pid, "VmRSS:"), vm_kb(pid, "VmHWM:"));
    // A few lookups through the CLI while the node runs (reads the same store).
    for i in [0, n_cards / 2, n_cards - 1] {
        let out = node_cli(
            &dir,
            &["lookup", "--card", &card_arg(&card(0x10_0000 + i as u32))],
        );
        assert!(out.contains("registered"), "card {i}: {out}");
    }
    let bytes_down: u64 = node
        .stderr()
        .lines()
        .rev()
        .find(|l| l.contains("caught up with the hub"))
        .and_then(|l| {
            l.split_whitespace()
                .find_map(|w| w.strip_prefix("bytes_down="))
        })
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    assert!(node.terminate().success());
    assert!(hub.terminate().success());
    let (rows, doc_bytes) = node_store_figures(&dir);

    let floor = floor_secs(n_cards, w.root.path());
    println!(
        "first sync: {pulled:.1} s from the node's start to caught up; node RSS {:.1} MB, peak {:.1} MB",
        rss_kb as f64 / 1024.0,
        hwm_kb as f64 / 1024.0
    );
    println!(
        "  floor: {n_cards} rows of the cards table's shape in one transaction, same filesystem: {floor:.2} s; \
         ratio {:.1}",
        pulled / floor
    );
    println!(
        "  the node received {:.1} MB of application frames ({:.0} B a card); keeps {rows} cards rows and \
         {:.1} MB of shard documents",
        bytes_down as f64 / 1e6,
        bytes_down as f64 / n_cards as f64,
        doc_bytes as f64 / 1e6
    );
}
