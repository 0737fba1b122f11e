//! The hub's doors under load (issue 13): the real `mykey-hub serve` on
//! loopback with nodes pushing over libp2p and a national point operator
//! calling the exchange API, alone (baseline) and with abuse: 50 dashboard
//! clients polling and 20 wrong logins a second. The two alternate for
//! `BENCH_ROUNDS` rounds (baseline, abuse, baseline, abuse, ...), so slow
//! drift of the machine falls on both alike; then one phase of the same
//! abuse plus one node pushing 1,000-transaction batches back to back.
//! Prints, per round, the exchange API's p99 and a node's push round trip
//! p99 in each condition and their ratio; then, over all rounds, p50/p99 of
//! the pooled samples of each condition and the median of the per-round
//! ratios. Goal: abuse raises exchange p99 and push p99 by at most 2×.
//! A p99 of one short phase rests on its two or three slowest samples, so
//! judge the goal by the pooled and median ratios, not by one round.
//!
//! Every push and every exchange is its own durable commit (`synchronous =
//! FULL`), so the writer's rate is bound by the disk's fsync: keep the load
//! below it (the default 200 nodes × one push per 5 s and 10 exchanges a
//! second are about 50 commits a second), or the figures measure the queue.
//!
//! ```sh
//! cargo build --release -p mykey-hub --bins -p mykey-tests --bin bench_hub_load
//! target/release/bench_hub_load
//! BENCH_SECS=10 BENCH_NODES=50 target/release/bench_hub_load    # quicker
//! BENCH_HUB_BIN=/path/to/other/mykey-hub target/release/bench_hub_load   # another build
//! ```
//!
//! Knobs (environment): `BENCH_NODES` (200), `BENCH_BATCH` (transactions
//! per push, 5), `BENCH_PUSH_MS` (each node's push interval, 5000),
//! `BENCH_EXCHANGE_RPS` (15, below the operator rate limit of 20/s), `BENCH_DASHBOARDS` (50), `BENCH_POLL_MS`
//! (each dashboard client's poll interval, 1000), `BENCH_LOGINS` (wrong
//! logins a second, 20), `BENCH_SECS` (per phase, 20), `BENCH_ROUNDS`
//! (baseline and abuse pairs, 5), `BENCH_WARMUP_SECS` (10), `BENCH_PUSH_BUDGET` (the hub's `push_budget_txs`; default: its
//! default), `BENCH_HUB_LOG` (the hub's `RUST_LOG`, `warn`; its stderr is
//! kept in memory and dropped).
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

#[path = "../../tests/net_common/mod.rs"]
mod net_common;

use ed25519_dalek::SigningKey;
use mykey_hub::access::{Role, Scope};
use mykey_hub::economy::exchange::{
    ExchangeOperator, ExchangeRequest, OperatorId, Rate, SignedExchange,
};
use mykey_hub::economy::lots::ExpiryPolicy;
use mykey_node::NodeKey;
use mykey_sync_proto::wire::{Hello, Push, Request, Response};
use mykey_sync_proto::{FacilityId, Points};
use mykey_tests::sync_client::{Signer, SyncClient, redeem};
use net_common::*;
use std::io::{Read, Write};
use std::net::SocketAddr;
use std::process::Command;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

fn env(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

const WARMUP: u8 = 0;
const BASELINE: u8 = 1;
const ABUSE: u8 = 2;
const ABUSE_HEAVY: u8 = 3;
const STOP: u8 = 4;

/// What is running (one of the constants above) and which round it is, as
/// one value: `kind | round << 8`.
fn phase_of(kind: u8, round: u16) -> u32 {
    u32::from(kind) | u32::from(round) << 8
}
fn kind_of(phase: u32) -> u8 {
    (phase & 0xff) as u8
}

/// Latencies (ms) of what started in each phase (`phase_of`), and errors.
#[derive(Default)]
struct Samples {
    push: Vec<(u32, f64)>,
    exchange: Vec<(u32, f64)>,
    push_errors: Vec<(u32, String)>,
    exchange_errors: Vec<(u32, String)>,
}

fn pct(mut v: Vec<f64>, p: f64) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_by(|a, b| a.total_cmp(b));
    let i = ((v.len() as f64 - 1.0) * p).round() as usize;
    v[i]
}

/// One HTTP/1.1 request on a fresh connection: (status, body).
fn http(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, String)],
    body: &[u8],
) -> Result<(u16, String), String> {
    let mut s = std::net::TcpStream::connect(addr).map_err(|e| e.to_string())?;
    s.set_read_timeout(Some(Duration::from_secs(60))).ok();
    let mut req = format!(
        "{method} {path} HTTP/1.1\r\nHost: bench\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (k, v) in headers {
        req += &format!("{k}: {v}\r\n");
    }
    req += "\r\n";
    s.write_all(req.as_bytes()).map_err(|e| e.to_string())?;
    s.write_all(body).map_err(|e| e.to_string())?;
    let mut out = Vec::new();
    s.read_to_end(&mut out).map_err(|e| e.to_string())?;
    let out = String::from_utf8_lossy(&out).into_owned();
    let status = out
        .get(9..12)
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| format!("no HTTP answer: {out:.80}"))?;
    let body = out
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    Ok((status, body))
}

fn main() {
    let n_nodes = env("BENCH_NODES", 200) as usize;
    let batch = env("BENCH_BATCH", 5) as usize;
    let push_ms = env("BENCH_PUSH_MS", 5000);
    let exchange_rps = env("BENCH_EXCHANGE_RPS", 15).max(1);
    let dashboards = env("BENCH_DASHBOARDS", 50) as usize;
    let poll_ms = env("BENCH_POLL_MS", 1000);
    let logins = env("BENCH_LOGINS", 20);
    let secs = env("BENCH_SECS", 20);
    let rounds = env("BENCH_ROUNDS", 5).clamp(1, 1000) as u16;
    let warmup = env("BENCH_WARMUP_SECS", 10);

    // A hub with one shop node per client, one holder per node (and the
    // heavy node's), an exchange operator, 25 dashboard operators and a token;
    // no LAN roster (a roster names at most 100 nodes, and nodes here only
    // talk to the hub).
    let w = World::create_with_roster(&std::env::temp_dir(), n_nodes + 1, n_nodes + 1, 0);
    let op_key = SigningKey::from_bytes(&[42; 32]);
    let op = OperatorId::parse("card-x").unwrap();
    if let Ok(budget) = std::env::var("BENCH_PUSH_BUDGET") {
        std::fs::write(
            w.hub_dir.join("hub.toml"),
            format!("push_budget_txs = {budget}\n"),
        )
        .unwrap();
    }
    let token = {
        let mut hub = w.open_hub();
        let t = now();
        hub.upsert_exchange_operator(
            &ExchangeOperator {
                id: op.clone(),
                name: "Card X".into(),
                public_key: op_key.verifying_key().to_bytes(),
                rate: Rate::new(1, 1).unwrap(),
                holding_days: 0,
                expiry: ExpiryPolicy::Never,
            },
            t,
        )
        .unwrap();
        for i in 0..25 {
            hub.set_operator(&format!("op{i}"), "the right password here", Role::Admin, t)
                .unwrap();
        }
        hub.allow_exchange(&op, bunkyo(), Points::new(1_000_000_000).unwrap(), t)
            .unwrap();
        hub.new_api_token("op0", Scope::Admin, None, t)
            .unwrap()
            .token
    };
    let hub_bin = std::env::var_os("BENCH_HUB_BIN")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| bin("mykey-hub"));
    let hub = Proc::spawn(
        "hub",
        Command::new(&hub_bin)
            .arg("--data")
            .arg(&w.hub_dir)
            .args([
                "serve",
                "--listen",
                "/ip4/127.0.0.1/tcp/0",
                "--http",
                "127.0.0.1:0",
            ])
            .env(
                "RUST_LOG",
                std::env::var("BENCH_HUB_LOG").unwrap_or_else(|_| "warn".into()),
            ),
    );
    let addr = hub
        .line_starting("listening on ", Duration::from_secs(60))
        .trim_start_matches("listening on ")
        .to_owned();
    let http_addr: SocketAddr = hub
        .line_starting("dashboard on http://", Duration::from_secs(60))
        .trim_start_matches("dashboard on http://")
        .trim_end_matches('/')
        .parse()
        .unwrap();
    println!(
        "hub load: {} ({}), {n_nodes} nodes × {batch} tx every {push_ms} ms, exchange {exchange_rps}/s; \
         abuse: {dashboards} dashboard clients every {poll_ms} ms, {logins} wrong logins/s; \
         {rounds} rounds of baseline then abuse, {secs} s per phase",
        hub_bin.display(),
        std::env::var("BENCH_HUB_BIN").map_or("this build", |_| "BENCH_HUB_BIN")
    );

    let phase = Arc::new(AtomicU32::new(phase_of(WARMUP, 0)));
    let samples = Arc::new(Mutex::new(Samples::default()));

    // The exchange API: one operator, `exchange_rps` requests a second.
    let mut threads = vec![];
    {
        let (phase, samples, op, op_key) =
            (phase.clone(), samples.clone(), op.clone(), op_key.clone());
        let holders = n_nodes;
        threads.push(std::thread::spawn(move || {
            let every = Duration::from_micros(1_000_000 / exchange_rps);
            let mut i = 0u64;
            let mut next = Instant::now();
            while kind_of(phase.load(Ordering::Relaxed)) != STOP {
                next += every;
                let p = phase.load(Ordering::Relaxed);
                let req = SignedExchange::sign(
                    &op,
                    &ExchangeRequest {
                        request_id: format!("bench-{i}"),
                        my_key_id: format!("holder{}", i as usize % holders),
                        operator_points: 10,
                        municipality: None,
                        requested_at: now().0,
                        donate_to: None,
                    },
                    &op_key,
                );
                i += 1;
                let t = Instant::now();
                let r = http(
                    http_addr,
                    "POST",
                    "/operator/v1/exchange",
                    &[
                        ("Content-Type", "application/json".into()),
                        ("X-MyKey-Operator", op.as_str().to_owned()),
                        ("X-MyKey-Signature", hex::encode(req.signature)),
                    ],
                    &req.body,
                );
                let ms = t.elapsed().as_secs_f64() * 1000.0;
                let mut s = samples.lock().unwrap();
                match r {
                    Ok((200, _)) => s.exchange.push((p, ms)),
                    Ok((status, body)) => {
                        s.exchange_errors.push((p, format!("{status} {body:.120}")))
                    }
                    Err(e) => s.exchange_errors.push((p, e)),
                }
                drop(s);
                std::thread::sleep(next.saturating_duration_since(Instant::now()));
            }
        }));
    }
    // Abuse: dashboard clients, each polling the overview and the nodes API.
    let polls = Arc::new(AtomicU64::new(0));
    for d in 0..dashboards {
        let (phase, polls, token) = (phase.clone(), polls.clone(), token.clone());
        threads.push(std::thread::spawn(move || {
            // Spread the clients over the interval.
            std::thread::sleep(Duration::from_millis(
                poll_ms * d as u64 / dashboards.max(1) as u64,
            ));
            loop {
                match kind_of(phase.load(Ordering::Relaxed)) {
                    STOP => return,
                    ABUSE | ABUSE_HEAVY => {
                        let path = if d.is_multiple_of(2) {
                            "/"
                        } else {
                            "/api/nodes"
                        };
                        let auth = [("Authorization", format!("Bearer {token}"))];
                        if matches!(http(http_addr, "GET", path, &auth, b""), Ok((200, _))) {
                            polls.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                    _ => {}
                }
                std::thread::sleep(Duration::from_millis(poll_ms));
            }
        }));
    }
    // Abuse: wrong logins, known operator names and unknown ones in turn.
    let login_answers = Arc::new(Mutex::new(std::collections::BTreeMap::<u16, u64>::new()));
    {
        let (phase, answers) = (phase.clone(), login_answers.clone());
        threads.push(std::thread::spawn(move || {
            let every = Duration::from_micros(1_000_000 / logins.max(1));
            let mut i = 0u64;
            let mut next = Instant::now();
            loop {
                next += every;
                match kind_of(phase.load(Ordering::Relaxed)) {
                    STOP => return,
                    ABUSE | ABUSE_HEAVY if logins > 0 => {
                        let name = if i.is_multiple_of(2) {
                            format!("op{}", (i / 2) % 25)
                        } else {
                            format!("nobody{i}")
                        };
                        i += 1;
                        let form = format!("name={name}&password=guess{i}");
                        let status = http(
                            http_addr,
                            "POST",
                            "/login",
                            &[("Content-Type", "application/x-www-form-urlencoded".into())],
                            form.as_bytes(),
                        )
                        .map_or(0, |(s, _)| s);
                        *answers.lock().unwrap().entry(status).or_default() += 1;
                    }
                    _ => {}
                }
                std::thread::sleep(next.saturating_duration_since(Instant::now()));
            }
        }));
    }

    // The nodes, on one tokio thread: each says Hello, then pushes a batch
    // of 1-point redeems every `push_ms` (started at spread-out offsets).
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let heavy_pushes = Arc::new(AtomicU64::new(0));
    rt.block_on(async {
        let m = bunkyo();
        let mut tasks = vec![];
        for i in 0..=n_nodes {
            let key = NodeKey::load_or_create(&w.nodes[i].join("node.key")).unwrap();
            let mut signer = Signer::new(key.signing_key().clone());
            let client = SyncClient::connect(key.signing_key(), &addr).await.unwrap();
            let hello = Request::Hello(Hello {
                node: signer.node,
                node_time: now(),
                last_seq: 0,
                fact_cursor: 0,
                software: "bench".into(),
            });
            match client.ask(&hello).await {
                Ok(Response::Welcome(_)) => {}
                other => panic!("node {i} not welcomed: {other:?}"),
            }
            let (card, account) = w.holders[i].clone();
            let shop = FacilityId::parse(&format!("shop-{i}")).unwrap();
            let (phase, samples, heavy_pushes) =
                (phase.clone(), samples.clone(), heavy_pushes.clone());
            let heavy = i == n_nodes;
            tasks.push(tokio::spawn(async move {
                if heavy {
                    loop {
                        match kind_of(phase.load(Ordering::Relaxed)) {
                            STOP => return,
                            ABUSE_HEAVY => {
                                let t = now();
                                let txs = (0..1000)
                                    .map(|_| signer.sign(redeem(&card, account, m, 1, &shop), t))
                                    .collect();
                                if matches!(
                                    client.ask(&Request::Push(Push { txs })).await,
                                    Ok(Response::Receipts(_))
                                ) {
                                    heavy_pushes.fetch_add(1, Ordering::Relaxed);
                                }
                            }
                            _ => tokio::time::sleep(Duration::from_millis(50)).await,
                        }
                    }
                }
                tokio::time::sleep(Duration::from_millis(
                    push_ms * i as u64 / n_nodes.max(1) as u64,
                ))
                .await;
                let mut tick = tokio::time::interval(Duration::from_millis(push_ms));
                loop {
                    tick.tick().await;
                    let p = phase.load(Ordering::Relaxed);
                    if kind_of(p) == STOP {
                        return;
                    }
                    let t = now();
                    let txs = (0..batch)
                        .map(|_| signer.sign(redeem(&card, account, m, 1, &shop), t))
                        .collect();
                    let start = Instant::now();
                    let r = client.ask(&Request::Push(Push { txs })).await;
                    let ms = start.elapsed().as_secs_f64() * 1000.0;
                    let mut s = samples.lock().unwrap();
                    match r {
                        Ok(Response::Receipts(r)) if r.processed_seq == signer.seq => {
                            s.push.push((p, ms))
                        }
                        Ok(other) => {
                            s.push_errors
                                .push((p, format!("{other:?}").chars().take(120).collect()));
                            return;
                        }
                        Err(e) => {
                            s.push_errors.push((p, e));
                            return;
                        }
                    }
                }
            }));
        }
        let run = |p: u32, s: u64| {
            let phase = phase.clone();
            async move {
                phase.store(p, Ordering::Relaxed);
                tokio::time::sleep(Duration::from_secs(s)).await;
            }
        };
        run(phase_of(WARMUP, 0), warmup).await;
        for round in 0..rounds {
            eprintln!("round {}/{rounds}", round + 1);
            run(phase_of(BASELINE, round), secs).await;
            run(phase_of(ABUSE, round), secs).await;
        }
        run(phase_of(ABUSE_HEAVY, 0), secs).await;
        phase.store(phase_of(STOP, 0), Ordering::Relaxed);
        for t in tasks {
            let _ = tokio::time::timeout(Duration::from_secs(60), t).await;
        }
    });
    for t in threads {
        let _ = t.join();
    }
    // With BENCH_HUB_LOG=…mykey_hub=debug, how long turns held the writer.
    let took: Vec<f64> = hub
        .stderr()
        .lines()
        .filter(|l| l.contains("took_ms=") && l.contains("push"))
        .filter_map(|l| {
            l.split("took_ms=")
                .nth(1)?
                .split_whitespace()
                .next()?
                .parse()
                .ok()
        })
        .collect();
    drop(hub);
    if !took.is_empty() {
        println!(
            "push turns at the writer: {} turns, p50 {:.0} ms, p99 {:.0} ms, max {:.0} ms",
            took.len(),
            pct(took.clone(), 0.5),
            pct(took.clone(), 0.99),
            pct(took, 1.0)
        );
    }

    let s = samples.lock().unwrap();
    let of = |v: &[(u32, f64)], keep: &dyn Fn(u32) -> bool| {
        v.iter()
            .filter(|(q, _)| keep(*q))
            .map(|(_, ms)| *ms)
            .collect::<Vec<f64>>()
    };
    let errors_in = |keep: &dyn Fn(u32) -> bool| {
        s.push_errors.iter().filter(|(q, _)| keep(*q)).count()
            + s.exchange_errors.iter().filter(|(q, _)| keep(*q)).count()
    };
    println!(
        "{:<7} {:>22} {:>22} {:>24}",
        "round", "baseline exch/push p99", "abuse exch/push p99", "ratio exch/push (≤ ×2)"
    );
    let (mut ex_ratios, mut pu_ratios) = (vec![], vec![]);
    for round in 0..rounds {
        let p99 = |kind: u8| {
            let keep = |q: u32| q == phase_of(kind, round);
            (
                pct(of(&s.exchange, &keep), 0.99),
                pct(of(&s.push, &keep), 0.99),
            )
        };
        let (b, a) = (p99(BASELINE), p99(ABUSE));
        let r = (a.0 / b.0, a.1 / b.1);
        ex_ratios.push(r.0);
        pu_ratios.push(r.1);
        println!(
            "{:<7} {:>9.1} / {:>7.1} ms {:>9.1} / {:>7.1} ms {:>13.2} / ×{:<5.2}",
            round + 1,
            b.0,
            b.1,
            a.0,
            a.1,
            r.0,
            r.1
        );
    }
    println!(
        "{:<36} {:>9} {:>9} {:>9} {:>9} {:>8} {:>8} {:>7}",
        "all rounds, pooled",
        "exch p50",
        "exch p99",
        "push p50",
        "push p99",
        "pushes",
        "exchgs",
        "errors"
    );
    let mut base = (f64::NAN, f64::NAN);
    for (kind, name) in [
        (BASELINE, "baseline: nodes + exchange"),
        (ABUSE, "+ dashboards and wrong logins"),
        (ABUSE_HEAVY, "+ a node pushing 1,000 at a time"),
    ] {
        let keep = |q: u32| kind_of(q) == kind;
        let (ex, pu) = (of(&s.exchange, &keep), of(&s.push, &keep));
        let (ex99, pu99) = (pct(ex.clone(), 0.99), pct(pu.clone(), 0.99));
        if kind == BASELINE {
            base = (ex99, pu99);
        }
        println!(
            "{name:<36} {:>7.1}ms {:>7.1}ms {:>7.1}ms {:>7.1}ms {:>8} {:>8} {:>7}",
            pct(ex.clone(), 0.5),
            ex99,
            pct(pu.clone(), 0.5),
            pu99,
            pu.len(),
            ex.len(),
            errors_in(&keep)
        );
        if kind != BASELINE {
            println!(
                "{:<36} exchange p99 ×{:.2}, push p99 ×{:.2} against the pooled baseline{}",
                "",
                ex99 / base.0,
                pu99 / base.1,
                if kind == ABUSE {
                    " (goal: ≤ ×2)"
                } else {
                    " (beyond the goal: item 6's bound)"
                }
            );
        }
    }
    println!(
        "median over {rounds} rounds of abuse p99 / the same round's baseline p99: exchange ×{:.2}, push ×{:.2} (goal: ≤ ×2)",
        pct(ex_ratios, 0.5),
        pct(pu_ratios, 0.5)
    );
    println!(
        "dashboard polls answered 200: {}; wrong logins by answer: {:?}; heavy pushes of 1,000 applied: {}",
        polls.load(Ordering::Relaxed),
        login_answers.lock().unwrap(),
        heavy_pushes.load(Ordering::Relaxed)
    );
    for (what, errs) in [("push", &s.push_errors), ("exchange", &s.exchange_errors)] {
        if let Some((p, e)) = errs.first() {
            println!(
                "{} {what} error(s), first (phase {} round {}): {e}",
                errs.len(),
                kind_of(*p),
                (p >> 8) + 1
            );
        }
    }
}
