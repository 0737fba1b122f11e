//! Ingest with 1, 2 and 4 `mykey-hub serve` processes on one PostgreSQL
//! (issue 16, part 6).
//!
//! For each process count, a fresh database on the server `MYKEY_PG_URL`
//! names gets a hub with `BENCH_MUNIS` municipalities and `BENCH_NODES`
//! shop nodes (node i in municipality i mod M, with one holder of its own);
//! P data directories share the hub key and the database, and P real
//! `mykey-hub serve` processes run on them. Node i talks to process i mod P
//! only: nodes of every municipality reach every process. Each node says
//! Hello, then pushes `BENCH_BATCH` signed 1-point redeems back to back
//! (closed loop) for `BENCH_SECS` after `BENCH_WARMUP_SECS`. Prints per
//! process count the accepted transactions a second, the push round trip's
//! p50 and p99, and the ratio of ingest against one process; then the bytes
//! PostgreSQL keeps per accepted redeem (`pg_total_relation_size` of every
//! table over the transactions stored, and `pg_database_size`).
//!
//! Every process takes the hub's write lock per storage transaction, so
//! today's global advisory lock serialises the processes' writes and the
//! ratio shows what that costs; per-municipality locks let writes of
//! different municipalities run at once, which this bench measures
//! unchanged once they land. On a machine of few cores, the hub processes,
//! PostgreSQL and this bench's nodes share them: the figure is the
//! machine's, not the design's.
//!
//! ```sh
//! cargo build --release -p mykey-hub --bins -p mykey-tests --bin bench_pg
//! MYKEY_PG_URL=$(bash scripts/pg-up.sh) target/release/bench_pg; bash scripts/pg-down.sh
//! BENCH_SECS=5 BENCH_PROCS=1,2 target/release/bench_pg   # quicker
//! ```
//!
//! Knobs (environment): `BENCH_PROCS` (process counts, `1,2,4`),
//! `BENCH_MUNIS` (8), `BENCH_NODES` (32), `BENCH_BATCH` (transactions per
//! push, 20), `BENCH_SECS` (measured, 15), `BENCH_WARMUP_SECS` (3).
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

use ed25519_dalek::SigningKey;
use mykey_hub::model::{Facility, FacilityKind, NodePolicy};
use mykey_hub::store::postgres::DatabaseUrl;
use mykey_hub::store::postgres::scratch::ScratchDatabase;
use mykey_hub::{Hub, HubPaths};
use mykey_sync_proto::wire::{Hello, Push, Request, Response};
use mykey_sync_proto::{
    AccountId, CardKey, FacilityId, MunicipalityCode, MyKeyId, NodeId, OpKind, Points, ProgramId,
    UnixMillis,
};
use mykey_tests::sync_client::{Signer, SyncClient, redeem};
use std::io::{BufRead, BufReader};
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

fn env(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn now() -> UnixMillis {
    mykey_net::unix_now()
}

fn pts(n: u64) -> Points {
    Points::new(n).unwrap()
}

/// The first `n` valid municipality codes of Tokyo's wards (13101…),
/// whatever their check digits.
fn municipalities(n: usize) -> Vec<MunicipalityCode> {
    (13101..13200)
        .filter_map(|base: u32| {
            (0..10).find_map(|d| MunicipalityCode::parse(&format!("{base}{d}")).ok())
        })
        .take(n)
        .collect()
}

/// One bench node: its key, its holder and where it redeems.
struct BenchNode {
    key: SigningKey,
    municipality: MunicipalityCode,
    card: CardKey,
    account: AccountId,
    shop: FacilityId,
}

/// A hub on `url` in `dir` with `munis` municipalities and `n` nodes.
fn build_hub(
    dir: &Path,
    url: &DatabaseUrl,
    munis: &[MunicipalityCode],
    n: usize,
) -> Vec<BenchNode> {
    let t = now();
    let mut hub = Hub::init_with(dir, Some(url)).unwrap();
    for (i, m) in munis.iter().enumerate() {
        hub.add_municipality(*m, &format!("ward {i}"), t).unwrap();
        hub.create_program(&program(i), *m, pts(1_000_000_000), t)
            .unwrap();
    }
    let mut nodes = vec![];
    for i in 0..n {
        let mi = i % munis.len();
        let m = munis[mi];
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
        let mut seed = [7u8; 32];
        seed[..8].copy_from_slice(&(i as u64 + 1).to_le_bytes());
        let key = SigningKey::from_bytes(&seed);
        let id = NodeId::from_bytes(key.verifying_key().to_bytes()).unwrap();
        hub.enrol_node(
            id,
            &shop,
            NodePolicy {
                allowed_ops: vec![OpKind::Redeem],
                per_card_offline_limit: pts(1_000_000),
                node_exposure_limit: pts(10_000_000),
                offline_voucher_cap: pts(10_000_000),
                pin_threshold: pts(10_000_000),
                valid_until: t.plus_ms(365 * 24 * 3600 * 1000),
            },
            t,
        )
        .unwrap();
        let card =
            CardKey::new(b"JPKI test CA".to_vec(), (i as u32).to_be_bytes().to_vec()).unwrap();
        let account = hub
            .register_account(&MyKeyId::parse(&format!("holder{i}")).unwrap(), m, &card, t)
            .unwrap();
        hub.admin_grant(account, &program(mi), pts(1_000_000), t)
            .unwrap();
        nodes.push(BenchNode {
            key,
            municipality: m,
            card,
            account,
            shop,
        });
    }
    nodes
}

fn program(i: usize) -> ProgramId {
    ProgramId::parse(&format!("bench{i}")).unwrap()
}

/// Another data directory of the same hub: its key and `store.toml`.
fn share(from: &Path, to: &Path) {
    std::fs::DirBuilder::new().mode(0o700).create(to).unwrap();
    let (a, b) = (HubPaths::of(from), HubPaths::of(to));
    std::fs::copy(&a.key, &b.key).unwrap();
    let (ca, cb) = (a.store_config.unwrap(), b.store_config.unwrap());
    std::fs::copy(ca, cb).unwrap();
}

/// A running `mykey-hub serve`, killed on drop.
struct Serve(Child);

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn serve(hub_bin: &Path, dir: &Path) -> (Serve, String) {
    let mut child = Command::new(hub_bin)
        .arg("--data")
        .arg(dir)
        .args([
            "serve",
            "--listen",
            "/ip4/127.0.0.1/tcp/0",
            "--http",
            "127.0.0.1:0",
        ])
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("run mykey-hub serve");
    let out = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for l in BufReader::new(out).lines().map_while(Result::ok) {
            let _ = tx.send(l);
        }
    });
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok(l) if l.starts_with("listening on ") => {
                let addr = l.trim_start_matches("listening on ").to_owned();
                // Keep draining stdout so the process never blocks on it.
                std::thread::spawn(move || for _ in rx {});
                return (Serve(child), addr);
            }
            Ok(_) => {}
            Err(_) => panic!(
                "mykey-hub serve on {} did not listen in 60 s",
                dir.display()
            ),
        }
    }
}

fn bin(name: &str) -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let p = exe.parent().unwrap().join(name);
    assert!(
        p.is_file(),
        "{name} is missing next to {}: cargo build --release -p mykey-hub --bins",
        exe.display()
    );
    p
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

struct Run {
    procs: usize,
    tx_per_s: f64,
    p50_ms: f64,
    p99_ms: f64,
    pushes: usize,
    errors: Vec<String>,
}

#[allow(clippy::too_many_arguments)]
fn run(
    server: &DatabaseUrl,
    hub_bin: &Path,
    procs: usize,
    munis: &[MunicipalityCode],
    n_nodes: usize,
    batch: usize,
    secs: u64,
    warmup: u64,
    sizes: bool,
) -> Run {
    let db = ScratchDatabase::create(server).unwrap();
    let root = tempfile::tempdir().unwrap();
    let first = root.path().join("hub-0");
    let nodes = build_hub(&first, db.url(), munis, n_nodes);
    let dirs: Vec<PathBuf> = (0..procs)
        .map(|p| {
            let d = root.path().join(format!("hub-{p}"));
            if p > 0 {
                share(&first, &d);
            }
            d
        })
        .collect();
    let served: Vec<(Serve, String)> = dirs.iter().map(|d| serve(hub_bin, d)).collect();
    let addrs: Vec<String> = served.iter().map(|(_, a)| a.clone()).collect();

    let measuring = Arc::new(AtomicBool::new(false));
    let stop = Arc::new(AtomicBool::new(false));
    let accepted = Arc::new(AtomicU64::new(0));
    let latencies = Arc::new(Mutex::new(Vec::<f64>::new()));
    let errors = Arc::new(Mutex::new(Vec::<String>::new()));
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let elapsed = rt.block_on(async {
        let mut tasks = vec![];
        for (i, node) in nodes.into_iter().enumerate() {
            let addr = addrs[i % procs].clone();
            let (measuring, stop, accepted, latencies, errors) = (
                measuring.clone(),
                stop.clone(),
                accepted.clone(),
                latencies.clone(),
                errors.clone(),
            );
            tasks.push(tokio::spawn(async move {
                let mut signer = Signer::new(node.key.clone());
                let client = match SyncClient::connect(&node.key, &addr).await {
                    Ok(c) => c,
                    Err(e) => {
                        errors.lock().unwrap().push(format!("node {i}: {e:?}"));
                        return;
                    }
                };
                let hello = Request::Hello(Hello {
                    node: signer.node,
                    node_time: now(),
                    last_seq: 0,
                    fact_cursor: 0,
                    software: "bench_pg".into(),
                });
                match client.ask(&hello).await {
                    Ok(Response::Welcome(_)) => {}
                    other => {
                        errors
                            .lock()
                            .unwrap()
                            .push(format!("node {i} not welcomed: {other:?}"));
                        return;
                    }
                }
                while !stop.load(Ordering::Relaxed) {
                    let t = now();
                    let txs = (0..batch)
                        .map(|_| {
                            signer.sign(
                                redeem(&node.card, node.account, node.municipality, 1, &node.shop),
                                t,
                            )
                        })
                        .collect();
                    let counted = measuring.load(Ordering::Relaxed);
                    let start = Instant::now();
                    let r = client.ask(&Request::Push(Push { txs })).await;
                    let ms = start.elapsed().as_secs_f64() * 1000.0;
                    match r {
                        Ok(Response::Receipts(r)) if r.processed_seq == signer.seq => {
                            if counted && measuring.load(Ordering::Relaxed) {
                                accepted.fetch_add(batch as u64, Ordering::Relaxed);
                                latencies.lock().unwrap().push(ms);
                            }
                        }
                        other => {
                            let text: String = format!("{other:?}").chars().take(160).collect();
                            errors.lock().unwrap().push(format!("node {i}: {text}"));
                            return;
                        }
                    }
                }
            }));
        }
        tokio::time::sleep(Duration::from_secs(warmup)).await;
        measuring.store(true, Ordering::Relaxed);
        let started = Instant::now();
        tokio::time::sleep(Duration::from_secs(secs)).await;
        measuring.store(false, Ordering::Relaxed);
        let elapsed = started.elapsed().as_secs_f64();
        stop.store(true, Ordering::Relaxed);
        for t in tasks {
            let _ = tokio::time::timeout(Duration::from_secs(60), t).await;
        }
        elapsed
    });
    drop(rt);
    drop(served);
    let mut l = latencies.lock().unwrap().clone();
    l.sort_by(f64::total_cmp);
    let errors = errors.lock().unwrap().clone();
    if sizes {
        print_sizes(db.url());
    }
    Run {
        procs,
        tx_per_s: accepted.load(Ordering::Relaxed) as f64 / elapsed,
        p50_ms: percentile(&l, 0.50),
        p99_ms: percentile(&l, 0.99),
        pushes: l.len(),
        errors,
    }
}

/// Bytes PostgreSQL keeps per stored transaction, per table and in all.
fn print_sizes(url: &DatabaseUrl) {
    let mut c = postgres::Client::connect(url.expose(), postgres::NoTls).unwrap();
    c.batch_execute("VACUUM ANALYZE").unwrap();
    let n_txs: i64 = c.query_one("SELECT count(*) FROM txs", &[]).unwrap().get(0);
    let n_transfers: i64 = c
        .query_one("SELECT count(*) FROM transfers", &[])
        .unwrap()
        .get(0);
    let rows = c
        .query(
            "SELECT relname::text, pg_total_relation_size(oid)
               FROM pg_class
              WHERE relkind = 'r' AND relnamespace = current_schema()::regnamespace
              ORDER BY 2 DESC",
            &[],
        )
        .unwrap();
    let tables: i64 = rows.iter().map(|r| r.get::<_, i64>(1)).sum();
    let database: i64 = c
        .query_one("SELECT pg_database_size(current_database())", &[])
        .unwrap()
        .get(0);
    let per = |b: i64| b as f64 / n_txs.max(1) as f64;
    println!(
        "storage: {n_txs} transactions stored ({n_transfers} transfers): tables {:.0} B per \
         transaction (database {:.0} B, with the catalog and setup rows)",
        per(tables),
        per(database)
    );
    for r in rows.iter().take(8) {
        let (name, bytes): (String, i64) = (r.get(0), r.get(1));
        println!("  {name}: {:.0} B per transaction", per(bytes));
    }
}

fn main() {
    let Some(server) = std::env::var("MYKEY_PG_URL")
        .ok()
        .filter(|u| !u.is_empty())
        .map(|u| DatabaseUrl::parse(&u).expect("MYKEY_PG_URL is a postgres:// URL"))
    else {
        eprintln!(
            "bench_pg needs a PostgreSQL server: MYKEY_PG_URL=$(bash scripts/pg-up.sh) \
             target/release/bench_pg; bash scripts/pg-down.sh"
        );
        std::process::exit(2);
    };
    let procs: Vec<usize> = std::env::var("BENCH_PROCS")
        .unwrap_or_else(|_| "1,2,4".into())
        .split(',')
        .filter_map(|p| p.trim().parse().ok())
        .filter(|p| *p > 0)
        .collect();
    let n_munis = env("BENCH_MUNIS", 8).clamp(1, 20) as usize;
    let n_nodes = env("BENCH_NODES", 32).max(1) as usize;
    let batch = env("BENCH_BATCH", 20).clamp(1, 1000) as usize;
    let secs = env("BENCH_SECS", 15).max(1);
    let warmup = env("BENCH_WARMUP_SECS", 3);
    let munis = municipalities(n_munis);
    let hub_bin = bin("mykey-hub");
    println!(
        "bench_pg: {} ({n_munis} municipalities, {n_nodes} nodes, {batch} tx per push, \
         closed loop, {secs} s measured after {warmup} s) on {server}, {} cores",
        hub_bin.display(),
        std::thread::available_parallelism().map_or(1, |n| n.get())
    );
    let mut base = None;
    let last = procs.len().saturating_sub(1);
    for (k, p) in procs.iter().enumerate() {
        let r = run(
            &server,
            &hub_bin,
            *p,
            &munis,
            n_nodes,
            batch,
            secs,
            warmup,
            k == last,
        );
        let base = *base.get_or_insert(r.tx_per_s);
        println!(
            "{} process(es): {:.0} tx/s ({:.0} per process), push p50 {:.1} ms p99 {:.1} ms \
             over {} pushes, ×{:.2} of 1 process{}",
            r.procs,
            r.tx_per_s,
            r.tx_per_s / r.procs as f64,
            r.p50_ms,
            r.p99_ms,
            r.pushes,
            r.tx_per_s / base,
            if r.errors.is_empty() {
                String::new()
            } else {
                format!("; {} node(s) stopped: {}", r.errors.len(), r.errors[0])
            }
        );
    }
}
