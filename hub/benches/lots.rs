//! The lot fold (`Hub::sync_lots`): how long folding a backlog of wallet
//! credits and debits into lots takes, as the number of live lots per wallet
//! grows.
//!
//! Run: `cargo bench -p mykey-hub --bench lots` (release). The ledger is
//! built once per wallet count by ingesting signed grants (three programmes:
//! expiry at fiscal year end, after 90 days, never) and redeems, interleaved
//! in pushes of 500, with the clock moving an hour per push; redeems average
//! half a grant, so live lots pile up. Each round folds a fresh copy of that
//! ledger in one `sync_lots` call and prints the median over the rounds.
//!
//! Knobs (environment): `BENCH_TXS` (default 50000 credits and debits in
//! all), `BENCH_WALLETS` (comma-separated holder counts, default `2,1000`),
//! `BENCH_ROUNDS` (3).

mod common;

use common::*;
use mykey_hub::economy::lots::ExpiryPolicy;
use mykey_hub::{FacilityKind, Hub};
use mykey_sync_proto::session::HubService;
use mykey_sync_proto::wire::Outcome;
use mykey_sync_proto::{AccountId, FacilityId, Grant, OpKind, Points, ProgramId, Redeem, TxBody};
use std::path::Path;
use std::time::Instant;

const HOUR_MS: u64 = 3_600_000;
const PUSH: usize = 500;

/// A hub whose ledger holds `n_txs` wallet credits and debits over
/// `n_wallets` holders, none of them folded into lots yet.
fn build_ledger(dir: &Path, n_txs: usize, n_wallets: usize) -> Vec<AccountId> {
    let mut hub = Hub::init(dir).expect("init");
    hub.add_municipality(muni(), "Bunkyo", T0).expect("muni");
    let programs: Vec<ProgramId> = [
        ("volunteer", ExpiryPolicy::FiscalYearEnd { years: 1 }),
        ("health", ExpiryPolicy::Days { days: 90 }),
        ("childcare", ExpiryPolicy::Never),
    ]
    .into_iter()
    .map(|(name, expiry)| {
        let p = ProgramId::parse(name).expect("program");
        hub.create_program(&p, muni(), Points::new(1_000_000_000).expect("pts"), T0)
            .expect("program");
        hub.set_program_expiry(&p, expiry).expect("expiry");
        p
    })
    .collect();
    let shop_id = FacilityId::parse("shop-1").expect("id");
    let mut shop = Chain::new(100);
    let mut centre = Chain::new(200);
    site(
        &mut hub,
        "shop-1",
        FacilityKind::Shop,
        &shop,
        OpKind::Redeem,
    );
    site(
        &mut hub,
        "cc-1",
        FacilityKind::CommunityCentre,
        &centre,
        OpKind::Grant,
    );
    let accounts = holders(&mut hub, n_wallets);
    // Holders spend only what they hold (no debt), so every redeem is a
    // wallet debit the fold must consume.
    let mut balance = vec![0u64; n_wallets];
    let mut rng = Rng(7);
    let mut accepted = 0;
    let mut done = 0;
    let mut push_no = 0u64;
    while done < n_txs {
        push_no += 1;
        let now = T0.plus_ms(push_no * HOUR_MS);
        let n = PUSH.min(n_txs - done);
        let (mut grants, mut redeems) = (vec![], vec![]);
        for _ in 0..n {
            let a = (rng.next() % n_wallets as u64) as usize;
            let spend = 1 + rng.next() % 100;
            if spend <= balance[a] && rng.next().is_multiple_of(2) {
                balance[a] -= spend;
                redeems.push(shop.sign(
                    TxBody::Redeem(Redeem {
                        card: card(a),
                        account: accounts[a],
                        municipality: muni(),
                        points: Points::new(spend).expect("pts"),
                        merchant: shop_id.clone(),
                        basis: None,
                        card_proof: None,
                    }),
                    now,
                ));
            } else {
                let points = 50 + rng.next() % 101;
                balance[a] += points;
                let program = programs[(rng.next() % 3) as usize].clone();
                grants.push(centre.sign(
                    TxBody::Grant(Grant {
                        card: card(a),
                        account: accounts[a],
                        municipality: muni(),
                        program,
                        points: Points::new(points).expect("pts"),
                    }),
                    now,
                ));
            }
        }
        done += n;
        for (node, txs) in [(centre.id, grants), (shop.id, redeems)] {
            let r = hub.ingest(&node, txs, now);
            accepted += r
                .receipts
                .iter()
                .filter(|r| matches!(r.outcome, Outcome::Accepted { .. }))
                .count();
        }
    }
    assert_eq!(accepted, n_txs, "every transaction is accepted");
    accounts
}

fn main() {
    let n_txs = env("BENCH_TXS", 50_000).max(1);
    let rounds = env("BENCH_ROUNDS", 3).max(1);
    let wallets: Vec<usize> = std::env::var("BENCH_WALLETS")
        .unwrap_or_else(|_| "2,1000".into())
        .split(',')
        .map(|w| {
            w.trim()
                .parse()
                .expect("BENCH_WALLETS: numbers, comma-separated")
        })
        .collect();
    let tmp = tempfile::tempdir().expect("tempdir");
    println!(
        "lot fold benchmark: {n_txs} signed grants and redeems, one sync_lots call per round, \
         {rounds} rounds (medians)"
    );
    for n_wallets in wallets {
        let template = tmp.path().join(format!("ledger-{n_wallets}"));
        let t = Instant::now();
        let accounts = build_ledger(&template, n_txs, n_wallets.max(1));
        eprintln!(
            "built the ledger for {n_wallets} holders in {:.1} s",
            t.elapsed().as_secs_f64()
        );
        let mut secs = vec![];
        for round in 0..rounds {
            let dir = tmp.path().join(format!("round-{n_wallets}-{round}"));
            copy_dir(&template, &dir);
            let mut hub = Hub::open(&dir).expect("open");
            let t = Instant::now();
            hub.sync_lots().expect("sync lots");
            let s = t.elapsed().as_secs_f64();
            eprintln!("  {n_wallets} holders, round {round}: {s:.3} s");
            secs.push(s);
            // The lots hold exactly the wallets.
            for &a in accounts.iter().take(20) {
                let lots: u64 = hub
                    .lots_of(a, muni())
                    .expect("lots")
                    .iter()
                    .map(|l| l.remaining)
                    .sum();
                assert_eq!(lots, hub.balance(a, muni()).expect("balance").balance.get());
            }
            drop(hub);
            std::fs::remove_dir_all(&dir).ok();
        }
        let s = median(secs);
        println!(
            "  {n_wallets:>5} holders: sync_lots {s:>9.3} s  ({:>9.0} transfers/s)",
            n_txs as f64 / s
        );
    }
}
