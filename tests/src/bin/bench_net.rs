//! Networked sync benchmarks with the real binaries on loopback (DESIGN §12):
//!
//! 1. reconcile N pending transactions (default 10,000) after an outage:
//!    the hub is down while a node signs them, then comes back on the same
//!    port; time from the node's (re)connection to "caught up", and from the
//!    hub's restart; beside it the floor (issue 20, goal 1): ed25519 batch
//!    verification of the same transactions on all cores plus as many
//!    durable one-row SQLite commits as the catch-up makes (one at the hub
//!    and one at the node per push), measured in this process after the
//!    run, and the ratio;
//! 2. bytes on the wire for that catch-up: TCP payload of the connection
//!    (noise + yamux + frames, from `ss`) and application frames, against the
//!    canonical bytes of the signed transactions and facts themselves;
//! 3. node RSS after it pulled M cards (default 100,000) from the hub.
//!
//! ```sh
//! cargo build --release -p mykey-node -p mykey-hub --bins
//! cargo run --release -p mykey-tests --bin bench_net
//! BENCH_TXS=2000 BENCH_CARDS=20000 cargo run --release -p mykey-tests --bin bench_net   # quicker
//! BENCH_BATCH=500 cargo run --release -p mykey-tests --bin bench_net   # transactions per push (default 1000)
//! MYKEY_PROC_LOG=info,mykey_hub::net=debug BENCH_LOGS=/tmp cargo run --release -p mykey-tests --bin bench_net   # the catch-up's logs, with each turn's time
//! ```
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

#[path = "../../tests/net_common/mod.rs"]
mod net_common;

use ed25519_dalek::{Signature, VerifyingKey};
use mykey_node::config::DataDir;
use mykey_sync_proto::tx::TX_DOMAIN;
use mykey_sync_proto::{MyKeyId, SignedTx, codec};
use net_common::*;
use std::process::Command;
use std::time::{Duration, Instant};

fn env(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Seconds of the day of a tracing line's timestamp (`2026-…T15:53:56.170751Z …`).
fn log_secs(line: &str) -> Option<f64> {
    let t = line.split('T').nth(1)?.split('Z').next()?;
    let mut parts = t.split(':');
    let h: f64 = parts.next()?.parse().ok()?;
    let m: f64 = parts.next()?.parse().ok()?;
    let s: f64 = parts.next()?.parse().ok()?;
    Some(h * 3600.0 + m * 60.0 + s)
}

fn last_line_with<'a>(log: &'a str, needle: &str) -> Option<&'a str> {
    log.lines().rev().find(|l| l.contains(needle))
}

/// (bytes the hub received, bytes it sent) on its established TCP connections.
fn tcp_bytes(hub_port: u16) -> (u64, u64) {
    let out = Command::new("ss")
        .args([
            "-tinH",
            "state",
            "established",
            &format!("( sport = :{hub_port} )"),
        ])
        .output()
        .expect("ss (iproute2) is needed for the wire-bytes figure");
    let text = String::from_utf8_lossy(&out.stdout);
    let field = |name: &str| -> u64 {
        text.split_whitespace()
            .filter_map(|w| w.strip_prefix(name))
            .filter_map(|v| v.parse::<u64>().ok())
            .sum()
    };
    (field("bytes_received:"), field("bytes_sent:"))
}

fn vm(pid: u32, key: &str) -> u64 {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    s.lines()
        .find(|l| l.starts_with(key))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

/// Seconds to batch-verify `txs` (raw ed25519 `verify_batch`, batches of
/// 64, on every core) and to make `n_commits` one-row fsync'd commits (WAL,
/// `synchronous=FULL`) in a scratch SQLite file in `dir`: the floor of a catch-up.
fn floor_secs(txs: &[SignedTx], n_commits: usize, dir: &std::path::Path) -> (f64, f64) {
    let inputs: Vec<(Vec<u8>, Signature, VerifyingKey)> = txs
        .iter()
        .map(|tx| {
            let key = tx.verify().unwrap().payload().node.verifying_key().unwrap();
            let mut msg = TX_DOMAIN.to_vec();
            msg.extend_from_slice(tx.payload_bytes());
            (msg, Signature::from_bytes(&tx.signature_bytes()), key)
        })
        .collect();
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let t = Instant::now();
    std::thread::scope(|s| {
        for part in inputs.chunks(inputs.len().div_ceil(threads).max(1)) {
            s.spawn(move || {
                for b in part.chunks(64) {
                    let msgs: Vec<&[u8]> = b.iter().map(|(m, _, _)| m.as_slice()).collect();
                    let sigs: Vec<Signature> = b.iter().map(|(_, s, _)| *s).collect();
                    let keys: Vec<VerifyingKey> = b.iter().map(|(_, _, k)| *k).collect();
                    ed25519_dalek::verify_batch(&msgs, &sigs, &keys).unwrap();
                }
            });
        }
    });
    let verify_s = t.elapsed().as_secs_f64();
    let path = dir.join("floor.sqlite");
    let conn = rusqlite::Connection::open(&path).unwrap();
    conn.pragma_update(None, "journal_mode", "WAL").unwrap();
    conn.pragma_update(None, "synchronous", "FULL").unwrap();
    conn.execute_batch("CREATE TABLE t (k INTEGER PRIMARY KEY, v BLOB)")
        .unwrap();
    let t = Instant::now();
    for k in 0..n_commits {
        conn.execute(
            "INSERT INTO t (k, v) VALUES (?1, zeroblob(100))",
            [k as i64],
        )
        .unwrap();
    }
    let commit_s = t.elapsed().as_secs_f64();
    drop(conn);
    std::fs::remove_file(&path).ok();
    (verify_s, commit_s)
}

fn reconcile(n_tx: usize) {
    println!("== reconcile {n_tx} pending transactions after an outage (loopback)");
    let w = World::create(1, 50);
    let dir = &w.nodes[0];
    let batch = env("BENCH_BATCH", 1000).max(1);
    write_net_toml(
        dir,
        &format!("backoff_base_ms = 20\nbackoff_cap_ms = 200\nbatch_txs = {batch}\n"),
    );
    let (mut hub, addr) = start_hub(&w.hub_dir, 0);
    let port = port_of(&addr);
    let mut node = start_node("node", dir, Some(&addr), &[]);
    wait_until("first sync", Duration::from_secs(60), || caught_up(dir));
    hub.terminate();

    let t = Instant::now();
    {
        let mut n = DataDir::new(dir).open().unwrap();
        for k in 0..n_tx {
            let (card, _) = &w.holders[k % w.holders.len()];
            n.redeem(card, pts(1), None, now()).unwrap();
        }
    }
    let sign_s = t.elapsed().as_secs_f64();
    println!(
        "signed {n_tx} redeems offline in {sign_s:.2} s ({:.0}/s, each durable)",
        n_tx as f64 / sign_s
    );
    let cursor_before = status(dir)["fact_cursor"].as_u64().unwrap();

    let restart = Instant::now();
    let (mut hub, _) = start_hub(&w.hub_dir, port);
    let done = format!("caught up with the hub processed_seq={n_tx} ");
    let end = Instant::now() + Duration::from_secs(600);
    while !node.stderr().contains(&done) {
        assert!(Instant::now() < end, "no catch-up within 600 s");
        std::thread::sleep(Duration::from_millis(5));
    }
    let wall = restart.elapsed().as_secs_f64();
    let (up_tcp, down_tcp) = tcp_bytes(port);
    let log = node.stderr();
    let connected = last_line_with(&log, "connected to the hub").and_then(log_secs);
    let caught = last_line_with(&log, &done).and_then(log_secs);
    let session = match (connected, caught) {
        (Some(a), Some(b)) => b - a,
        _ => f64::NAN,
    };
    assert!(node.terminate().success());
    assert!(hub.terminate().success());
    if let Ok(dir) = std::env::var("BENCH_LOGS") {
        // For a timeline (with MYKEY_PROC_LOG=debug, say).
        std::fs::write(format!("{dir}/hub.log"), hub.stderr()).unwrap();
        std::fs::write(format!("{dir}/node.log"), node.stderr()).unwrap();
        println!("logs of the catch-up in {dir}/hub.log and {dir}/node.log");
    }

    // What the catch-up carried, in canonical signed bytes.
    let n = DataDir::new(dir).open().unwrap();
    let txs = n.outbox_from(1, n_tx + 10).unwrap();
    let tx_bytes: usize = txs.iter().map(|t| codec::encode(t).len()).sum();
    let mut h = w.open_hub();
    let (mut fact_bytes, mut n_facts, mut after) = (0usize, 0usize, cursor_before);
    loop {
        let f = h.received_facts(&w.node_ids[0], after, 2000).unwrap();
        n_facts += f.facts.len();
        fact_bytes += f
            .facts
            .iter()
            .map(|x| codec::encode(x).len())
            .sum::<usize>();
        after = f.cursor;
        if !f.more {
            break;
        }
    }
    let payload = (tx_bytes + fact_bytes) as f64;
    let n_commits = 2 * n_tx.div_ceil(batch);
    let (verify_s, commit_s) = floor_secs(&txs[..n_tx.min(txs.len())], n_commits, w.root.path());
    let floor = verify_s + commit_s;
    println!(
        "reconcile: {session:.3} s from connection to caught up (goal ≤ 0.5 s); {wall:.3} s from the hub's restart"
    );
    println!(
        "  floor {floor:.3} s = batch verification on all cores {verify_s:.3} s + {n_commits} fsync'd one-row commits {commit_s:.3} s; \
         ratio {:.2} (goal ≤ 2)",
        session / floor
    );
    println!(
        "  ({:.0} tx/s; signed txs {} B, facts {} ({} B))",
        n_tx as f64 / session,
        tx_bytes,
        n_facts,
        fact_bytes
    );
    println!(
        "wire (TCP payload incl. noise+yamux): up {up_tcp} B, down {down_tcp} B, total {} B = {:.2} × the signed txs and facts (goal ≤ 1.2)",
        up_tcp + down_tcp,
        (up_tcp + down_tcp) as f64 / payload
    );
    let frames = |k: &str| -> u64 {
        last_line_with(&log, &done)
            .and_then(|l| l.split_whitespace().find_map(|w| w.strip_prefix(k)))
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    println!(
        "  application frames over the node's life: up {} B, down {} B",
        frames("bytes_up="),
        frames("bytes_down=")
    );
}

fn rss(n_cards: usize) {
    println!("== node RSS with {n_cards} cached cards");
    // Registering holders one durable commit at a time is not what is
    // measured here: on tmpfs (when there is one) the fsyncs cost nothing.
    let shm = std::path::Path::new("/dev/shm");
    let w = if shm.is_dir() {
        World::create_in(shm, 1, 0)
    } else {
        World::create(1, 0)
    };
    let mut h = w.open_hub();
    let t = Instant::now();
    for i in 0..n_cards {
        let id = MyKeyId::parse(&format!("card{i}")).unwrap();
        h.register_account(&id, bunkyo(), &card(0x10_0000 + i as u32), now())
            .unwrap();
    }
    // A new shard epoch picks bucket counts for ~10k items per shard (epoch 0
    // has one bucket per scope).
    let scopes = h.compact_shards(now()).unwrap();
    drop(h);
    println!(
        "registered {n_cards} holders at the hub in {:.1} s; compacted {scopes} shard scopes",
        t.elapsed().as_secs_f64()
    );
    let dir = &w.nodes[0];
    let (mut hub, addr) = start_hub(&w.hub_dir, 0);
    let t = Instant::now();
    let mut node = start_node("node", dir, Some(&addr), &[]);
    wait_until("the cards to arrive", Duration::from_secs(900), || {
        node.stderr().contains("caught up with the hub")
    });
    let pulled = t.elapsed().as_secs_f64();
    let pid = node.pid();
    // A few lookups through the CLI while the node runs (reads the same store).
    for i in [0, n_cards / 2, n_cards - 1] {
        let out = node_cli(
            dir,
            &["lookup", "--card", &card_arg(&card(0x10_0000 + i as u32))],
        );
        assert!(out.contains("registered"), "{out}");
    }
    let (rss_kb, hwm_kb) = (vm(pid, "VmRSS:"), vm(pid, "VmHWM:"));
    println!(
        "node pulled {n_cards} cards in {pulled:.1} s; RSS {:.1} MB, peak {:.1} MB (goal ≤ 150 MB)",
        rss_kb as f64 / 1024.0,
        hwm_kb as f64 / 1024.0
    );
    assert!(node.terminate().success());
    assert!(hub.terminate().success());
}

fn main() {
    reconcile(env("BENCH_TXS", 10_000));
    rss(env("BENCH_CARDS", 100_000));
}
