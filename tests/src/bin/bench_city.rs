//! City scale on loopback (issue 20, goal 5): `BENCH_NODES` nodes (default
//! 1,000), each with `BENCH_PENDING` signed transactions waiting (default
//! 100), reconnect to one real `mykey-hub serve` at the same moment and push
//! them. Prints the hub's drain rate (all transactions ÷ the time from the
//! first dial to the last node caught up), beside it the floor measured in
//! the same run against the same hub: one node alone pushing
//! `BENCH_FLOOR_TXS` (default 10,000) in pushes of 1,000 (a node's default
//! `batch_txs`), once before and once after the city (the faster counts);
//! the ratio (goal ≥ 0.5); the hub's peak RSS (`VmHWM`); and a node's wait
//! from its first dial to caught up (every own transaction receipted),
//! p50 / p99 / max.
//!
//! The nodes are bare sync clients (`mykey_tests::sync_client`) on one
//! tokio thread of this process, not 1,000 `mykey-node` processes: each
//! dials, says Hello, pushes what the hub has not processed yet and waits for
//! the receipts. A dial refused at the hub's connection limits or a request
//! answered "busy" is tried again after the node's own backoff (200 ms
//! doubling to 30 s, with jitter), as `mykey-node run` does; both are counted.
//! The hub's store is on disk (the temp dir), with its default `hub.toml`
//! (durable commits, `push_budget_txs` = 200, `max_pending_connections` =
//! 128, `max_connections` = 1024). The soft limit of open files is raised to
//! the hard limit when the nodes need more (the hub inherits it).
//!
//! ```sh
//! cargo build --release -p mykey-hub --bin mykey-hub -p mykey-tests --bin bench_city
//! target/release/bench_city
//! BENCH_NODES=50 BENCH_FLOOR_TXS=2000 target/release/bench_city   # quicker
//! BENCH_MAX_PENDING=1024 target/release/bench_city   # the hub's max_pending_connections
//! ```
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

#[path = "../../tests/net_common/mod.rs"]
mod net_common;

use ed25519_dalek::SigningKey;
use mykey_hub::{Facility, FacilityKind, Hub, NodePolicy};
use mykey_sync_proto::wire::{Hello, Push, Request, Response};
use mykey_sync_proto::{FacilityId, MyKeyId, NodeId, OpKind, ProgramId, SignedTx};
use mykey_tests::sync_client::{Signer, SyncClient, redeem};
use net_common::*;
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
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

/// CPU seconds (user + system) of a process so far, from `/proc/PID/stat`.
fn cpu_secs(pid: u32) -> f64 {
    let s = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // The command name may hold spaces: the fields start after its ')'.
    let rest = s.rsplit_once(')').map_or("", |(_, r)| r);
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    // utime and stime are fields 14 and 15 of the line, 12 and 13 after ')'.
    (ticks(11) + ticks(12)) / clock_ticks()
}

/// Sets `max_pending_connections` in the hub's `hub.toml` (the rest stays
/// as it is, or the defaults when there is none yet).
fn set_max_pending(hub_dir: &std::path::Path, n: u32) {
    let path = hub_dir.join("hub.toml");
    let text = std::fs::read_to_string(&path).unwrap_or_default();
    let mut lines: Vec<String> = text
        .lines()
        .filter(|l| !l.trim_start().starts_with("max_pending_connections"))
        .map(str::to_owned)
        .collect();
    // Top-level keys come before any [table].
    let at = lines
        .iter()
        .position(|l| l.trim_start().starts_with('['))
        .unwrap_or(lines.len());
    lines.insert(at, format!("max_pending_connections = {n}"));
    std::fs::write(&path, lines.join("\n") + "\n").unwrap();
    println!("hub.toml: max_pending_connections = {n}");
}

fn clock_ticks() -> f64 {
    Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(100.0)
}

/// (soft, hard) limit of open files of this process.
fn nofile() -> (u64, u64) {
    let s = std::fs::read_to_string("/proc/self/limits").unwrap_or_default();
    let line = s.lines().find(|l| l.starts_with("Max open files"));
    let nums: Vec<u64> = line
        .map(|l| {
            l.split_whitespace()
                .filter_map(|w| w.parse().ok())
                .collect()
        })
        .unwrap_or_default();
    match nums[..] {
        [soft, hard, ..] => (soft, hard),
        _ => (1024, 1024),
    }
}

/// Raises the soft limit of open files to the hard one when `need` is
/// above it (children such as the hub inherit it); exits with what to do
/// when even the hard limit is too low.
fn raise_nofile(need: u64) {
    let (soft, hard) = nofile();
    if soft >= need {
        return;
    }
    if hard < need {
        eprintln!(
            "{need} open files are needed and the hard limit is {hard}: raise it \
             (ulimit -Hn, or LimitNOFILE= in a unit) or lower BENCH_NODES"
        );
        std::process::exit(2);
    }
    let ok = Command::new("prlimit")
        .args([
            "--pid",
            &std::process::id().to_string(),
            &format!("--nofile={hard}:{hard}"),
        ])
        .status()
        .is_ok_and(|s| s.success());
    if !ok || nofile().0 < need {
        eprintln!(
            "could not raise the soft limit of open files from {soft} to {hard} \
             (prlimit from util-linux is used): run `ulimit -n {hard}` first"
        );
        std::process::exit(2);
    }
    println!("raised the soft limit of open files from {soft} to {hard}");
}

fn pct(v: &[f64], p: f64) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    let mut v = v.to_vec();
    v.sort_by(|a, b| a.total_cmp(b));
    v[((v.len() as f64 - 1.0) * p).round() as usize]
}

/// One simulated node: its key and its pending, signed transactions.
struct CityNode {
    key: SigningKey,
    node: NodeId,
    txs: Vec<SignedTx>,
}

/// A hub with `n` shop nodes (node `n` is the floor's) and one holder per
/// node; every node's transactions signed in advance.
fn setup(
    root: &std::path::Path,
    n: usize,
    per_node: usize,
    floor_txs: usize,
) -> (std::path::PathBuf, Vec<CityNode>) {
    let hub_dir = root.join("hub");
    let t = now();
    let mut hub = Hub::init_with(&hub_dir, None).unwrap();
    let m = bunkyo();
    hub.add_municipality(m, "Bunkyo-ku", t).unwrap();
    let program = ProgramId::parse("health").unwrap();
    hub.create_program(&program, m, pts(1_000_000_000), t)
        .unwrap();
    let mut nodes = Vec::with_capacity(n + 1);
    for i in 0..=n {
        let mut seed = [7u8; 32];
        seed[..8].copy_from_slice(&(i as u64).to_le_bytes());
        let key = SigningKey::from_bytes(&seed);
        let shop = FacilityId::parse(&format!("shop-{i}")).unwrap();
        hub.add_facility(
            &Facility {
                id: shop.clone(),
                municipality: m,
                kind: FacilityKind::Shop,
                name: format!("shop {i}"),
            },
            t,
        )
        .unwrap();
        let mut signer = Signer::new(key.clone());
        hub.enrol_node(
            signer.node,
            &shop,
            NodePolicy {
                allowed_ops: vec![OpKind::Redeem],
                per_card_offline_limit: pts(1_000_000),
                node_exposure_limit: pts(10_000_000),
                pin_threshold: pts(10_000_000),
                valid_until: t.plus_ms(365 * 24 * 3600 * 1000),
                offline_voucher_cap: pts(10_000_000),
            },
            t,
        )
        .unwrap();
        let card = card(0x1000 + i as u32);
        let n_txs = if i == n { 2 * floor_txs } else { per_node };
        let account = hub
            .register_account(&MyKeyId::parse(&format!("holder{i}")).unwrap(), m, &card, t)
            .unwrap();
        hub.admin_grant(account, &program, pts(n_txs as u64), t)
            .unwrap();
        let txs = (0..n_txs)
            .map(|_| signer.sign(redeem(&card, account, m, 1, &shop), t))
            .collect();
        nodes.push(CityNode {
            key,
            node: signer.node,
            txs,
        });
    }
    (hub_dir, nodes)
}

/// Retries of the nodes: dials that failed, requests answered "busy" or lost.
#[derive(Default)]
struct Retries {
    dials: AtomicU64,
    busy: AtomicU64,
    lost: AtomicU64,
}

/// The node's backoff (net.toml defaults: 200 ms doubling to 30 s), with
/// jitter drawn from the node's index and the attempt.
fn backoff(index: usize, attempt: u32) -> Duration {
    let base = 200u64 << attempt.min(8);
    let ms = base.min(30_000);
    let h = (index as u64 ^ u64::from(attempt) << 32).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    Duration::from_millis(ms / 2 + (h >> 33) % (ms / 2).max(1))
}

/// Brings one node's chain to the hub, `txs` being its seqs `first_seq..`
/// (the hub has processed those before): dial, Hello, push what the hub has
/// not processed in pushes of `batch`, until every one is receipted.
async fn catch_up(
    index: usize,
    n: &CityNode,
    first_seq: u64,
    txs: &[SignedTx],
    addr: &str,
    batch: usize,
    retries: &Retries,
) -> Result<(), String> {
    let last_seq = first_seq + txs.len() as u64 - 1;
    let mut attempt = 0u32;
    loop {
        let client = match SyncClient::connect(&n.key, addr).await {
            Ok(c) => c,
            Err(_) => {
                retries.dials.fetch_add(1, Ordering::Relaxed);
                tokio::time::sleep(backoff(index, attempt)).await;
                attempt += 1;
                continue;
            }
        };
        'session: loop {
            let hello = Request::Hello(Hello {
                node: n.node,
                node_time: now(),
                last_seq,
                fact_cursor: 0,
                software: "bench_city".into(),
            });
            let mut done = match client.ask(&hello).await {
                Ok(Response::Welcome(w)) => w.processed_seq,
                Ok(Response::Refused(r)) if r.to_string().contains("busy") => {
                    retries.busy.fetch_add(1, Ordering::Relaxed);
                    tokio::time::sleep(backoff(index, attempt)).await;
                    attempt += 1;
                    continue 'session;
                }
                Ok(other) => return Err(format!("node {index}: Hello answered {other:?}")),
                Err(_) => {
                    retries.lost.fetch_add(1, Ordering::Relaxed);
                    break 'session;
                }
            };
            loop {
                if done >= last_seq {
                    return Ok(());
                }
                let first = (done + 1).saturating_sub(first_seq) as usize;
                let push = txs[first..(first + batch).min(txs.len())].to_vec();
                match client.ask(&Request::Push(Push { txs: push })).await {
                    Ok(Response::Receipts(r)) => {
                        if r.processed_seq <= done {
                            return Err(format!(
                                "node {index}: a push left processed_seq at {}",
                                r.processed_seq
                            ));
                        }
                        done = r.processed_seq;
                    }
                    Ok(Response::Refused(r)) if r.to_string().contains("busy") => {
                        retries.busy.fetch_add(1, Ordering::Relaxed);
                        tokio::time::sleep(backoff(index, attempt)).await;
                        attempt += 1;
                        continue 'session;
                    }
                    Ok(other) => return Err(format!("node {index}: Push answered {other:?}")),
                    Err(_) => {
                        retries.lost.fetch_add(1, Ordering::Relaxed);
                        break 'session;
                    }
                }
            }
        }
        tokio::time::sleep(backoff(index, attempt)).await;
        attempt += 1;
    }
}

fn main() {
    let n_nodes = env("BENCH_NODES", 1000).max(1);
    let per_node = env("BENCH_PENDING", 100).max(1);
    let floor_txs = env("BENCH_FLOOR_TXS", 10_000).max(1);
    let floor_batch = 1000;
    let limit = Duration::from_secs(env("BENCH_TIMEOUT_SECS", 1800) as u64);
    // A socket per node here and one at the hub, plus the hub's files.
    raise_nofile(2 * n_nodes as u64 + 512);
    println!(
        "== city scale: {n_nodes} nodes × {per_node} pending transactions reconnect to one hub at once (loopback)"
    );
    let root = tempfile::tempdir_in(std::env::temp_dir()).unwrap();
    let t = Instant::now();
    let (hub_dir, nodes) = setup(root.path(), n_nodes, per_node, floor_txs);
    println!(
        "set up {} enrolled nodes and holders, {} transactions signed, in {:.1} s",
        n_nodes + 1,
        n_nodes * per_node + 2 * floor_txs,
        t.elapsed().as_secs_f64()
    );
    if let Ok(n) = std::env::var("BENCH_MAX_PENDING") {
        set_max_pending(&hub_dir, n.parse().expect("BENCH_MAX_PENDING is a number"));
    }
    let (hub, addr) = start_hub(&hub_dir, 0);
    let hub_pid = hub.pid();
    let me = std::process::id();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let retries = Arc::new(Retries::default());
    let nodes = Arc::new(nodes);

    // The floor: one node alone, `floor_txs` in pushes of 1,000, timed from
    // its dial (a few milliseconds of the whole).
    let floor_run = |part: usize| {
        let floor_node = &nodes[n_nodes];
        let txs = &floor_node.txs[part * floor_txs..(part + 1) * floor_txs];
        let first_seq = (part * floor_txs) as u64 + 1;
        rt.block_on(async {
            let r = Retries::default();
            let t = Instant::now();
            catch_up(n_nodes, floor_node, first_seq, txs, &addr, floor_batch, &r)
                .await
                .unwrap();
            t.elapsed().as_secs_f64()
        })
    };
    let floor_before = floor_run(0);
    let hwm_before = vm_kb(hub_pid, "VmHWM:");

    // The city: every node at once.
    let (hub_cpu0, me_cpu0) = (cpu_secs(hub_pid), cpu_secs(me));
    let start = Instant::now();
    let waits: Vec<Result<f64, String>> = rt.block_on(async {
        let addr = Arc::new(addr.clone());
        let mut tasks = Vec::with_capacity(n_nodes);
        for i in 0..n_nodes {
            let (nodes, addr, retries) = (nodes.clone(), addr.clone(), retries.clone());
            tasks.push(tokio::spawn(async move {
                let t = Instant::now();
                let n = &nodes[i];
                catch_up(i, n, 1, &n.txs, &addr, floor_batch, &retries).await?;
                Ok::<f64, String>(t.elapsed().as_secs_f64())
            }));
        }
        let mut out = Vec::with_capacity(n_nodes);
        for task in tasks {
            let r =
                match tokio::time::timeout_at(tokio::time::Instant::from_std(start + limit), task)
                    .await
                {
                    Ok(Ok(r)) => r,
                    Ok(Err(e)) => Err(format!("a node's task failed: {e}")),
                    Err(_) => Err(format!("not caught up within {limit:?}")),
                };
            out.push(r);
        }
        out
    });
    let drain_s = start.elapsed().as_secs_f64();
    let (hub_cpu, me_cpu) = (cpu_secs(hub_pid) - hub_cpu0, cpu_secs(me) - me_cpu0);
    let hwm_city = vm_kb(hub_pid, "VmHWM:");
    let rss_after = vm_kb(hub_pid, "VmRSS:");
    let failed: Vec<&String> = waits.iter().filter_map(|r| r.as_ref().err()).collect();
    let waits: Vec<f64> = waits
        .iter()
        .filter_map(|r| r.as_ref().ok().copied())
        .collect();

    // The floor again, after the city (the hub's store is larger now).
    let floor_after = if failed.is_empty() {
        floor_run(1)
    } else {
        f64::NAN
    };
    drop(hub);

    let floor_s = floor_before.min(floor_after);
    let floor_rate = floor_txs as f64 / floor_s;
    let drained = waits.len() * per_node;
    let drain_rate = drained as f64 / drain_s;
    println!(
        "floor: one node alone pushes {floor_txs} in pushes of {floor_batch}: {floor_before:.3} s before the city \
         ({:.0} tx/s), {floor_after:.3} s after ({:.0} tx/s); the faster counts: {floor_rate:.0} tx/s",
        floor_txs as f64 / floor_before,
        floor_txs as f64 / floor_after
    );
    println!(
        "drain: {} of {n_nodes} nodes caught up, {drained} transactions in {drain_s:.3} s from the first dial \
         = {drain_rate:.0} tx/s; ratio to the floor {:.2} (goal ≥ 0.5)",
        waits.len(),
        drain_rate / floor_rate
    );
    println!(
        "  a node's wait, first dial to caught up: p50 {:.3} s, p99 {:.3} s, max {:.3} s",
        pct(&waits, 0.5),
        pct(&waits, 0.99),
        pct(&waits, 1.0)
    );
    println!(
        "  retries: {} dials refused or failed, {} requests answered busy, {} sessions lost",
        retries.dials.load(Ordering::Relaxed),
        retries.busy.load(Ordering::Relaxed),
        retries.lost.load(Ordering::Relaxed)
    );
    println!(
        "  CPU during the drain: hub {hub_cpu:.1} s, the {n_nodes} clients (this process) {me_cpu:.1} s, \
         on {} cores",
        std::thread::available_parallelism().map_or(1, |n| n.get())
    );
    println!(
        "hub RSS: peak {:.1} MB (before the city {:.1} MB), {:.1} MB after the drain",
        hwm_city as f64 / 1024.0,
        hwm_before as f64 / 1024.0,
        rss_after as f64 / 1024.0
    );
    if let Some(first) = failed.first() {
        println!("{} nodes did not catch up; first: {first}", failed.len());
        std::process::exit(1);
    }
}
