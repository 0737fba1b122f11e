//! High availability on PostgreSQL: two `mykey-hub serve` processes on one
//! database, a node configured with both (`net.toml`'s `hub_addrs`) pushing
//! a few thousand redeems; the hub it talks to is killed (SIGKILL) in the
//! middle of the push, the node finishes through the other, and every
//! transaction is applied exactly once: none lost, none twice, the ledger
//! conserved, no hub_seq twice.
//!
//! Needs a PostgreSQL server: `MYKEY_PG_URL` (scripts/test.sh starts a
//! throwaway cluster and sets it); without it the test says it is skipped.
//! The binaries must be built first (`cargo build -p mykey-node -p
//! mykey-hub --bins`).

mod net_common;

use mykey_hub::Hub;
use mykey_hub::store::postgres::DatabaseUrl;
use mykey_hub::store::postgres::scratch::ScratchDatabase;
use mykey_node::config::DataDir;
use mykey_sync_proto::Points;
use net_common::*;
use std::os::unix::fs::DirBuilderExt;
use std::path::Path;
use std::time::Duration;

/// Transactions the node pushes.
const N: u64 = 3_000;
/// Kill the hub once this many are receipted (and fewer than all).
const KILL_AT: u64 = 300;

fn server() -> Option<DatabaseUrl> {
    let url = std::env::var("MYKEY_PG_URL")
        .ok()
        .filter(|u| !u.is_empty())?;
    Some(DatabaseUrl::parse(&url).expect("MYKEY_PG_URL is a postgres:// URL"))
}

/// A second data directory for the same hub: its key and `store.toml`
/// (each serving process has a directory of its own, as on two machines).
fn second_data_dir(from: &Path, to: &Path) {
    std::fs::DirBuilder::new().mode(0o700).create(to).unwrap();
    for f in ["hub.key", "store.toml"] {
        std::fs::copy(from.join(f), to.join(f)).unwrap();
    }
}

fn receipted(dir: &Path) -> u64 {
    status(dir)["receipted_seq"].as_u64().unwrap_or(0)
}

fn connections(hub: &Proc) -> usize {
    hub.stderr().matches("node connected").count()
}

#[test]
fn a_hub_killed_mid_push_loses_nothing_and_applies_nothing_twice() {
    let Some(server) = server() else {
        eprintln!(
            "pg_failover: skipped, MYKEY_PG_URL is not set (it needs a PostgreSQL server; \
             scripts/test.sh starts one and sets it)"
        );
        return;
    };
    let db = ScratchDatabase::create(&server).unwrap();
    let w = World::create_on_database(1, 4, db.url());
    let dir = &w.nodes[0];
    let hub_b_dir = w.root.path().join("hub-b");
    second_data_dir(&w.hub_dir, &hub_b_dir);
    let (hub_a, addr_a) = start_hub(&w.hub_dir, 0);
    let (hub_b, addr_b) = start_hub(&hub_b_dir, 0);
    let mut hubs = [Some(hub_a), Some(hub_b)];
    // Both hubs, no hub_addr in node.toml; pushes of 100 so the push of
    // all of them spans many round trips.
    write_net_toml(
        dir,
        &format!("hub_addrs = [\"{addr_a}\", \"{addr_b}\"]\nbatch_txs = 100\n"),
    );
    let mut node = start_node("node", dir, None, &[]);
    wait_until("first sync", Duration::from_secs(60), || caught_up(dir));
    node.terminate();

    // The redeems, signed while the node is stopped, so its first push
    // after the restart carries them all.
    {
        let mut n = DataDir::new(dir).open().unwrap();
        for i in 0..N {
            let (card, _) = &w.holders[(i % 4) as usize];
            n.redeem(card, Points::new(1).unwrap(), None, now())
                .unwrap();
        }
    }
    assert_eq!(status(dir)["pending"], N, "all {N} wait for the hub");

    let before: Vec<usize> = hubs.iter().flatten().map(connections).collect();
    let _node = start_node("node (restarted)", dir, None, &[]);
    wait_until("the push under way", Duration::from_secs(120), || {
        receipted(dir) >= KILL_AT
    });
    // The hub the node talks to is the one that admitted it again.
    let serving = hubs
        .iter()
        .flatten()
        .zip(&before)
        .position(|(h, b)| connections(h) > *b)
        .expect("one hub admitted the restarted node");
    let survivor_before = connections(hubs[1 - serving].as_ref().unwrap());
    let mut victim = hubs[serving].take().unwrap();
    victim.kill9();
    let at_kill = receipted(dir);
    assert!(
        at_kill < N,
        "the kill came mid-push ({at_kill} of {N} receipted)"
    );

    wait_until(
        "the push finished through the other hub",
        Duration::from_secs(300),
        || caught_up(dir),
    );
    let s = status(dir);
    assert_eq!(s["receipted_seq"], N, "{s}");
    let survivor = hubs[1 - serving].as_mut().unwrap();
    assert!(
        connections(survivor) > survivor_before,
        "the node went over to the other hub:\n{}",
        survivor.stderr()
    );
    survivor.terminate();
    drop(_node);

    // Exactly once, none lost.
    let txs = DataDir::new(dir)
        .open()
        .unwrap()
        .outbox_from(1, N as usize + 10)
        .unwrap();
    assert_eq!(txs.len() as u64, N);
    let mut h = Hub::open(&w.hub_dir).unwrap();
    assert_eq!(h.chain_head(&w.node_ids[0]).unwrap().processed_seq, N);
    for tx in &txs {
        assert_eq!(h.tx_applications(&tx.id()).unwrap(), 1, "tx {}", tx.id());
    }
    let spent: u64 = w
        .holders
        .iter()
        .map(|(_, a)| START_POINTS - h.balance(*a, bunkyo()).unwrap().balance.get())
        .sum();
    assert_eq!(spent, N, "each redeem of 1 point paid once");
    h.check_conservation().unwrap();
    drop(h);

    let mut c = postgres::Client::connect(db.url().expose(), postgres::NoTls).unwrap();
    let row = c
        .query_one(
            "SELECT count(*), count(DISTINCT hub_seq), COALESCE(max(hub_seq), 0) FROM facts",
            &[],
        )
        .unwrap();
    let (n, distinct, max): (i64, i64, i64) = (row.get(0), row.get(1), row.get(2));
    assert_eq!(
        (n, distinct),
        (max, max),
        "the fact log: no gap, no seq twice"
    );
    let row = c
        .query_one("SELECT count(*), count(DISTINCT id) FROM txs", &[])
        .unwrap();
    let (rows, ids): (i64, i64) = (row.get(0), row.get(1));
    assert_eq!(
        (rows, ids),
        (N as i64, N as i64),
        "each transaction stored once"
    );
    eprintln!(
        "pg_failover: {N} transactions, hub killed at {at_kill} receipted, \
         {n} facts, all applied once"
    );
}
