//! Hub ingest of signed transactions, durable (SQLite WAL, synchronous=FULL),
//! next to the raw ed25519 verification rates measured in the same run: the
//! floor is ed25519-dalek's `verify_batch` on all cores (issue 20, goal 3:
//! ingest on all cores ≥ 0.5 × that floor).
//!
//! Run: `cargo bench -p mykey-hub --bench ingest` (release). Prints median
//! figures over several rounds; each round ingests the same pre-signed
//! chains into a fresh copy of the same registry.
//!
//! Knobs (environment): `BENCH_TXS` (default 20000), `BENCH_ROUNDS` (5),
//! `BENCH_BATCH` (500, the node's default push size), `BENCH_ACCOUNTS` (1000),
//! `BENCH_INGEST_ONLY` (set: skip the verification loops, for profiling).
//! The floor is the faster of batches of 64 and of 256 (the hub's size).
//! On a shared machine the wall-clock figures swing with other load; the
//! per-CPU-second figures of one thread (ingest with 1 thread against
//! `verify_batch` on 1 thread) do not.

mod common;

use common::*;
use ed25519_dalek::{Signature, VerifyingKey};
use mykey_hub::{FacilityKind, Hub};
use mykey_sync_proto::session::HubService;
use mykey_sync_proto::tx::TX_DOMAIN;
use mykey_sync_proto::wire::Outcome;
use mykey_sync_proto::{
    AccountId, FacilityId, Grant, NodeId, OpKind, Points, ProgramId, Redeem, SignedTx, TxBody,
};
use std::path::Path;
use std::time::Instant;

const N_SHOPS: usize = 4;

fn build_template(dir: &Path, n_accounts: usize, shops: &[Chain]) -> Vec<AccountId> {
    let mut hub = Hub::init(dir).expect("init");
    hub.add_municipality(muni(), "Bunkyo", T0).expect("muni");
    let program = ProgramId::parse("volunteer").expect("program");
    hub.create_program(
        &program,
        muni(),
        Points::new(1_000_000_000).expect("pts"),
        T0,
    )
    .expect("program");
    for (i, shop) in shops.iter().enumerate() {
        site(
            &mut hub,
            &format!("shop-{i}"),
            FacilityKind::Shop,
            shop,
            OpKind::Redeem,
        );
    }
    let mut centre = Chain::new(200);
    site(
        &mut hub,
        "cc-1",
        FacilityKind::CommunityCentre,
        &centre,
        OpKind::Grant,
    );
    let accounts = holders(&mut hub, n_accounts);
    let grants: Vec<SignedTx> = accounts
        .iter()
        .enumerate()
        .map(|(i, a)| {
            // Signed a millisecond apart, as the chain advances.
            let at = T0.plus_ms(centre.seq + 1);
            let body = TxBody::Grant(Grant {
                card: card(i),
                account: *a,
                municipality: muni(),
                program: program.clone(),
                points: Points::new(2_500).expect("pts"),
            });
            centre.sign(body, at)
        })
        .collect();
    for batch in grants.chunks(500) {
        hub.ingest(&centre.id, batch.to_vec(), T0);
    }
    accounts
}

/// CPU time this thread has run, in seconds (Linux `schedstat`): robust to
/// other processes on a shared machine, but blind to time spent waiting
/// for fsync.
fn thread_cpu_secs() -> f64 {
    std::fs::read_to_string("/proc/thread-self/schedstat")
        .ok()
        .and_then(|s| {
            s.split_whitespace()
                .next()
                .and_then(|ns| ns.parse::<u64>().ok())
        })
        .map_or(f64::NAN, |ns| ns as f64 / 1e9)
}

/// Wall-clock and CPU-time rates of `n` items done by `f` on this thread.
fn timed(n: usize, f: impl FnOnce()) -> (f64, f64) {
    let (t, c) = (Instant::now(), thread_cpu_secs());
    f();
    let (wall, cpu) = (t.elapsed().as_secs_f64(), thread_cpu_secs() - c);
    (n as f64 / wall, n as f64 / cpu)
}

fn main() {
    let n_txs = env("BENCH_TXS", 20_000);
    let rounds = env("BENCH_ROUNDS", 5).max(1);
    let batch = env("BENCH_BATCH", 500).clamp(1, 1000);
    let n_accounts = env("BENCH_ACCOUNTS", 1000).max(1);
    let tmp = tempfile::tempdir().expect("tempdir");
    let template = tmp.path().join("template");
    let mut shops: Vec<Chain> = (0..N_SHOPS).map(|i| Chain::new(100 + i as u8)).collect();
    let accounts = build_template(&template, n_accounts, &shops);

    // The workload: redeems of 1..=300 points by random holders at random
    // shops (some overdraw: the hub honours them as debt).
    let mut rng = Rng(42);
    let mut per_shop: Vec<Vec<SignedTx>> = vec![vec![]; N_SHOPS];
    for _ in 0..n_txs {
        let s = (rng.next() % N_SHOPS as u64) as usize;
        let a = (rng.next() % n_accounts as u64) as usize;
        let points = Points::new(1 + rng.next() % 300).expect("pts");
        let at = T0.plus_ms(shops[s].seq + 1);
        let tx = shops[s].sign(
            TxBody::Redeem(Redeem {
                card: card(a),
                account: accounts[a],
                municipality: muni(),
                points,
                merchant: FacilityId::parse(&format!("shop-{s}")).expect("id"),
                basis: None,
                card_proof: None,
            }),
            at,
        );
        per_shop[s].push(tx);
    }
    // Pushes as nodes send them: each node's chain in batches, nodes interleaved.
    let mut pushes: Vec<(NodeId, Vec<SignedTx>)> = vec![];
    let chunks: Vec<Vec<&[SignedTx]>> =
        per_shop.iter().map(|c| c.chunks(batch).collect()).collect();
    for i in 0..chunks.iter().map(Vec::len).max().unwrap_or(0) {
        for (s, c) in chunks.iter().enumerate() {
            if let Some(b) = c.get(i) {
                pushes.push((shops[s].id, b.to_vec()));
            }
        }
    }
    let all: Vec<&SignedTx> = per_shop.iter().flatten().collect();
    let keys: Vec<VerifyingKey> = shops.iter().map(|c| c.key.verifying_key()).collect();

    let threads = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .min(8);
    let inputs: Vec<(usize, Vec<u8>, Signature)> = all
        .iter()
        .map(|tx| {
            let v = tx.verify().expect("valid");
            let s = shops
                .iter()
                .position(|c| c.id == v.payload().node)
                .expect("shop");
            let mut msg = TX_DOMAIN.to_vec();
            msg.extend_from_slice(tx.payload_bytes());
            (s, msg, Signature::from_bytes(&tx.signature_bytes()))
        })
        .collect();
    let raw_verify = |items: &[(usize, Vec<u8>, Signature)]| {
        for (s, msg, sig) in items {
            keys[*s].verify_strict(msg, sig).expect("verifies");
        }
    };
    let mut raw1 = vec![];
    let mut raw1_cpu = vec![];
    let mut verify1_cpu = vec![];
    let mut ingest1_cpu = vec![];
    let mut ratio1_cpu = vec![];
    let mut rawn = vec![];
    let mut batchn = vec![];
    let mut ratio_batch = vec![];
    let mut batch1_cpu = vec![];
    let mut ratio_batch_cpu = vec![];
    let mut verify1 = vec![];
    let mut check_push = vec![];
    let mut ingest1 = vec![];
    let mut ingestn = vec![];
    let mut ratio1 = vec![];
    let mut ration = vec![];
    let mut round_no = 0;
    let mut ingest_round = |n_threads: usize| -> (f64, f64) {
        round_no += 1;
        let dir = tmp.path().join(format!("round-{round_no}"));
        copy_dir(&template, &dir);
        let mut hub = Hub::open(&dir).expect("open");
        hub.set_threads(n_threads);
        let mut accepted = 0usize;
        let rate = timed(n_txs, || {
            for (carrier, txs) in &pushes {
                let r = hub.ingest(carrier, txs.clone(), T0.plus_ms(round_no));
                accepted += r
                    .receipts
                    .iter()
                    .filter(|r| matches!(r.outcome, Outcome::Accepted { .. }))
                    .count();
            }
        });
        assert_eq!(accepted, n_txs, "every transaction is accepted");
        let report = hub.check_conservation().expect("conserved");
        assert!(report.n_transfers as usize > n_txs);
        drop(hub);
        std::fs::remove_dir_all(&dir).ok();
        rate
    };
    for round in 0..rounds {
        // Raw ed25519: verify_strict over the same signed bytes with the key at hand.
        if std::env::var_os("BENCH_INGEST_ONLY").is_some() {
            // For profiling the hub alone.
            ingest_round(1);
            continue;
        }
        let (r1, r1c) = timed(inputs.len(), || raw_verify(&inputs));
        let t = Instant::now();
        std::thread::scope(|s| {
            for chunk in inputs.chunks(inputs.len().div_ceil(threads)) {
                s.spawn(|| raw_verify(chunk));
            }
        });
        let rn = inputs.len() as f64 / t.elapsed().as_secs_f64();
        // The floor: ed25519 batch checks over the same bytes on all cores.
        let batch_rate = |per_batch: usize| {
            let t = Instant::now();
            std::thread::scope(|s| {
                for chunk in inputs.chunks(inputs.len().div_ceil(threads)) {
                    s.spawn(|| {
                        for b in chunk.chunks(per_batch) {
                            let msgs: Vec<&[u8]> = b.iter().map(|(_, m, _)| m.as_slice()).collect();
                            let sigs: Vec<Signature> = b.iter().map(|(_, _, s)| *s).collect();
                            let ks: Vec<VerifyingKey> =
                                b.iter().map(|(k, _, _)| keys[*k]).collect();
                            ed25519_dalek::verify_batch(&msgs, &sigs, &ks).expect("batch verifies");
                        }
                    });
                }
            });
            inputs.len() as f64 / t.elapsed().as_secs_f64()
        };
        let (b64, b256) = (batch_rate(64), batch_rate(256));
        let (_, b1c) = timed(inputs.len(), || {
            for b in inputs.chunks(256) {
                let msgs: Vec<&[u8]> = b.iter().map(|(_, m, _)| m.as_slice()).collect();
                let sigs: Vec<Signature> = b.iter().map(|(_, _, s)| *s).collect();
                let ks: Vec<VerifyingKey> = b.iter().map(|(k, _, _)| keys[*k]).collect();
                ed25519_dalek::verify_batch(&msgs, &sigs, &ks).expect("batch verifies");
            }
        });
        let bn = b64.max(b256);
        // SignedTx::verify: decode (validating the node key), hash, verify.
        let (v1, v1c) = timed(all.len(), || {
            for tx in &all {
                std::hint::black_box(tx.verify().expect("valid"));
            }
        });
        // The hub's own check of the same pushes (decode, key, batch
        // verification on all its threads), without applying them.
        let checked = {
            let mut hub = Hub::open(&template).expect("open");
            if let Ok(t) = std::env::var("BENCH_CHECK_THREADS") {
                hub.set_threads(t.parse().expect("threads"));
            }
            let t = Instant::now();
            for (_, txs) in &pushes {
                std::hint::black_box(hub.check_push(txs.clone()));
            }
            n_txs as f64 / t.elapsed().as_secs_f64()
        };
        let (i1, i1c) = ingest_round(1);
        let (i_n, _) = ingest_round(threads);
        check_push.push(checked);
        eprintln!(
            "round {round}: raw verify {r1:.0}/s ({threads} threads: {rn:.0}/s; batches of 64: {b64:.0}/s, of 256: {b256:.0}/s), SignedTx::verify {v1:.0}/s, Hub::check_push {checked:.0}/s, \
             ingest {i1:.0} tx/s ({threads} threads: {i_n:.0} tx/s); per CPU second: raw {r1c:.0}, \
             SignedTx::verify {v1c:.0}, ingest {i1c:.0}"
        );
        raw1_cpu.push(r1c);
        batch1_cpu.push(b1c);
        ratio_batch_cpu.push(i1c / b1c);
        verify1_cpu.push(v1c);
        ingest1_cpu.push(i1c);
        ratio1_cpu.push(i1c / r1c);
        raw1.push(r1);
        rawn.push(rn);
        batchn.push(bn);
        ratio_batch.push(i_n / bn);
        verify1.push(v1);
        ingest1.push(i1);
        ingestn.push(i_n);
        ratio1.push(i1 / r1);
        ration.push(i_n / r1);
    }
    println!(
        "hub ingest benchmark: {n_txs} signed redeems, {N_SHOPS} nodes, {n_accounts} holders, \
         pushes of {batch}, durable (WAL, synchronous=FULL), {rounds} rounds (medians)"
    );
    println!("  wall clock:");
    println!(
        "  raw ed25519 verify_strict, 1 thread     : {:>9.0} /s",
        median(raw1)
    );
    println!(
        "  raw ed25519 verify_strict, {threads} threads    : {:>9.0} /s",
        median(rawn)
    );
    println!(
        "  raw ed25519 verify_batch, {threads} threads     : {:>9.0} /s   (the floor)",
        median(batchn)
    );
    println!(
        "  SignedTx::verify, 1 thread              : {:>9.0} /s",
        median(verify1)
    );
    println!(
        "  Hub::check_push, {threads} threads            : {:>9.0} /s   (the hub's check of the same pushes, not applied)",
        median(check_push)
    );
    println!(
        "  hub ingest, 1 thread                    : {:>9.0} tx/s",
        median(ingest1)
    );
    println!(
        "  hub ingest, {threads} threads for signatures : {:>9.0} tx/s",
        median(ingestn)
    );
    println!(
        "  ratio ingest(1 thread) / raw(1 thread)  : {:>9.2}",
        median(ratio1)
    );
    println!(
        "  ratio ingest({threads} threads) / raw(1 thread) : {:>9.2}",
        median(ration)
    );
    println!(
        "  ratio ingest({threads} threads) / verify_batch({threads} threads) : {:>5.2} (goal >= 0.50)",
        median(ratio_batch)
    );
    println!(
        "  per CPU second of the measuring thread (immune to other load; excludes fsync waits):"
    );
    println!(
        "  raw ed25519 verify_strict               : {:>9.0} /s",
        median(raw1_cpu)
    );
    println!(
        "  raw ed25519 verify_batch (256)          : {:>9.0} /s",
        median(batch1_cpu)
    );
    println!(
        "  SignedTx::verify                        : {:>9.0} /s",
        median(verify1_cpu)
    );
    println!(
        "  hub ingest, 1 thread                    : {:>9.0} tx/s",
        median(ingest1_cpu)
    );
    println!(
        "  ratio ingest / raw verify               : {:>9.2}",
        median(ratio1_cpu)
    );
    println!(
        "  ratio ingest / verify_batch             : {:>9.2} (goal 3, on all cores: >= 0.50)",
        median(ratio_batch_cpu)
    );
}
