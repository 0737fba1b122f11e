//! The hub's serving loop is fair (issue 13, item 6): a node pushing 1,000
//! transactions does not hold up another node's small push. Real
//! `mykey-hub serve`, real libp2p on 127.0.0.1, two enrolled node keys.
//!
//! The bound, and why: the hub applies a push `push_budget_txs` at a time
//! (50 here), one turn per node, round robin, and a node has at most one
//! turn at the storage worker. A small push that arrives while a heavy push
//! is being applied waits for the heavy node's turn in progress, then is
//! served before the heavy node's next turn. So it is answered before the
//! heavy push completes, and at most a couple of turns (≤ 2 × 50) of the
//! heavy push are applied between its arrival and its own transaction. The
//! assertion allows 10 turns (500 transactions) for the time between the
//! test seeing the heavy push started and the small push reaching the hub;
//! a hub that applies a push whole (as before) puts all 1,000 ahead of it.
//!
//! The exchange API writes through the same worker (its own lane, taken in
//! turn with the nodes'), so an exchange sent at the same moment is bound
//! the same way. The dashboard reads on its own SQLite connection and never
//! waits for the worker, so a dashboard request sent during the heavy push
//! is answered while at most the same number of the heavy push's
//! transactions are applied (a hub that serves HTTP and storage on one
//! thread answers it only after the whole push).

mod net_common;

use ed25519_dalek::SigningKey;
use mykey_hub::access::{Role, Scope};
use mykey_hub::economy::exchange::{
    ExchangeOperator, ExchangeRequest, OperatorId, Rate, SignedExchange,
};
use mykey_hub::economy::lots::ExpiryPolicy;
use mykey_hub::{Hub, TransferKind};
use mykey_node::NodeKey;
use mykey_sync_proto::wire::{Hello, Push, Request, Response};
use mykey_sync_proto::{FacilityId, NodeId, TxId};
use mykey_tests::sync_client::{Signer, SyncClient, redeem};
use net_common::*;
use std::time::{Duration, Instant};

const BUDGET: usize = 50;
const HEAVY: usize = 1000;

fn hello(node: NodeId) -> Request {
    Request::Hello(Hello {
        node,
        node_time: now(),
        last_seq: 0,
        fact_cursor: 0,
        software: "net_fair".into(),
    })
}

async fn client(w: &World, i: usize, addr: &str) -> (SyncClient, Signer) {
    let key = NodeKey::load_or_create(&w.nodes[i].join("node.key")).unwrap();
    let signer = Signer::new(key.signing_key().clone());
    let c = SyncClient::connect(key.signing_key(), addr).await.unwrap();
    match c.ask(&hello(signer.node)).await {
        Ok(Response::Welcome(_)) => {}
        other => panic!("node {i} not welcomed: {other:?}"),
    }
    (c, signer)
}

/// `POST /operator/v1/exchange` on a fresh connection: (status, body).
fn exchange(http: std::net::SocketAddr, op: &OperatorId, key: &SigningKey) -> (u16, String) {
    use std::io::{Read, Write};
    let req = SignedExchange::sign(
        op,
        &ExchangeRequest {
            request_id: "during-the-heavy-push".into(),
            my_key_id: "holder1".into(),
            operator_points: 100,
            municipality: None,
            requested_at: now().0,
            donate_to: None,
        },
        key,
    );
    let mut s = std::net::TcpStream::connect(http).unwrap();
    let head = format!(
        "POST /operator/v1/exchange HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\nX-MyKey-Operator: {}\r\n\
         X-MyKey-Signature: {}\r\n\r\n",
        req.body.len(),
        op.as_str(),
        hex::encode(req.signature)
    );
    s.write_all(head.as_bytes()).unwrap();
    s.write_all(&req.body).unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    (out[9..12].parse().unwrap(), out)
}

/// `GET path` with a bearer token on a fresh connection: (status, body).
fn get(http: std::net::SocketAddr, path: &str, token: &str) -> (u16, String) {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(http).unwrap();
    let head = format!(
        "GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\
         Authorization: Bearer {token}\r\n\r\n"
    );
    s.write_all(head.as_bytes()).unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    (out[9..12].parse().unwrap(), out)
}

fn processed(hub: &mut Hub, node: &NodeId) -> u64 {
    hub.chain_head(node).unwrap().processed_seq
}

#[tokio::test]
async fn a_heavy_push_does_not_hold_up_another_nodes_small_push() {
    let w = World::create(2, 2);
    std::fs::write(
        w.hub_dir.join("hub.toml"),
        format!("push_budget_txs = {BUDGET}\n"),
    )
    .unwrap();
    let op = OperatorId::parse("card-x").unwrap();
    let op_key = SigningKey::from_bytes(&[42; 32]);
    let mut hub = w.open_hub();
    hub.upsert_exchange_operator(
        &ExchangeOperator {
            id: op.clone(),
            name: "Card X".into(),
            public_key: op_key.verifying_key().to_bytes(),
            rate: Rate::new(1, 1).unwrap(),
            holding_days: 0,
            expiry: ExpiryPolicy::Never,
        },
        now(),
    )
    .unwrap();
    hub.allow_exchange(&op, bunkyo(), pts(1_000_000), now())
        .unwrap();
    hub.set_operator("watcher", "a password for the watcher", Role::Viewer, now())
        .unwrap();
    let token = hub
        .new_api_token("watcher", Scope::Read, None, now())
        .unwrap()
        .token;
    drop(hub);
    let http = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let hub_proc = Proc::spawn(
        "hub",
        std::process::Command::new(bin("mykey-hub"))
            .arg("--data")
            .arg(&w.hub_dir)
            .args(["serve", "--listen", "/ip4/127.0.0.1/tcp/0"])
            .args(["--http", &http.to_string()]),
    );
    let addr = hub_proc
        .line_starting("listening on ", Duration::from_secs(30))
        .trim_start_matches("listening on ")
        .to_owned();
    let (heavy, mut heavy_chain) = client(&w, 0, &addr).await;
    let (small, mut small_chain) = client(&w, 1, &addr).await;
    let m = bunkyo();
    let (card0, acct0) = &w.holders[0];
    let (card1, acct1) = &w.holders[1];
    let shop0 = FacilityId::parse("shop-0").unwrap();
    let shop1 = FacilityId::parse("shop-1").unwrap();
    let t = now();
    let heavy_txs: Vec<_> = (0..HEAVY)
        .map(|_| heavy_chain.sign(redeem(card0, *acct0, m, 1, &shop0), t))
        .collect();
    let heavy_ids: Vec<TxId> = heavy_txs.iter().map(|tx| tx.id()).collect();
    let small_tx = small_chain.sign(redeem(card1, *acct1, m, 1, &shop1), t);
    let small_id = small_tx.id();

    // The heavy push starts; the test waits until the hub has applied its
    // first slice (read from the database beside the serving hub).
    let heavy_answer = tokio::spawn({
        let heavy = heavy.clone();
        async move { heavy.ask(&Request::Push(Push { txs: heavy_txs })).await }
    });
    let mut db = w.open_hub();
    let end = Instant::now() + Duration::from_secs(60);
    let seen = loop {
        let n = processed(&mut db, &heavy_chain.node);
        if n > 0 {
            break n;
        }
        assert!(Instant::now() < end, "the heavy push never started");
        tokio::time::sleep(Duration::from_millis(2)).await;
    };
    assert!(
        seen < HEAVY as u64,
        "the heavy push was applied whole ({seen}) before any other node could be served"
    );
    // A dashboard client polls node status meanwhile; the heavy push's
    // progress is read before it sends and after it is answered.
    let polled = tokio::task::spawn_blocking({
        let hub_dir = w.hub_dir.clone();
        let node = heavy_chain.node;
        move || {
            let mut db = Hub::open(&hub_dir).unwrap();
            let before = processed(&mut db, &node);
            let answer = get(http, "/api/nodes", &token);
            (before, processed(&mut db, &node), answer)
        }
    });
    let exchanged = tokio::task::spawn_blocking({
        let op = op.clone();
        move || exchange(http, &op, &op_key)
    });
    let answer = small
        .ask(&Request::Push(Push {
            txs: vec![small_tx],
        }))
        .await;
    let (status, body) = exchanged.await.unwrap();
    assert_eq!(status, 200, "{body}");
    let (before, after, (status, body)) = polled.await.unwrap();
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("\"nodes\""), "{body}");
    eprintln!(
        "dashboard: {} heavy transactions applied while it was answered",
        after - before
    );
    assert!(
        after - before <= 10 * BUDGET as u64,
        "{} heavy transactions were applied while the dashboard waited ({before} before it asked)",
        after - before
    );
    match &answer {
        Ok(Response::Receipts(r)) => assert_eq!(r.processed_seq, 1, "{r:?}"),
        other => panic!("small push: {other:?}"),
    }
    let heavy_done = heavy_answer.await.unwrap();
    match &heavy_done {
        Ok(Response::Receipts(r)) => {
            assert_eq!(r.len(), HEAVY);
            assert_eq!(r.processed_seq, HEAVY as u64);
        }
        other => panic!("heavy push: {other:?}"),
    }

    // Where the small push's redeem landed among the heavy push's.
    let transfers = db.transfers(0, u32::MAX).unwrap();
    let pos_of = |id: &TxId| {
        transfers
            .iter()
            .find(|t| t.origin_tx.as_ref() == Some(id))
            .map(|t| t.pos)
            .unwrap()
    };
    let small_pos = pos_of(&small_id);
    let heavy_before = heavy_ids.iter().filter(|id| pos_of(id) < small_pos).count();
    eprintln!(
        "heavy push: {seen} applied when the small push was sent, {heavy_before} before the small push's redeem (of {HEAVY}, {BUDGET} per turn)"
    );
    assert!(
        heavy_before < HEAVY,
        "the small push waited for the whole heavy push"
    );
    assert!(
        heavy_before as u64 <= seen + 10 * BUDGET as u64,
        "{heavy_before} heavy transactions went ahead of the small push; {seen} were applied when it was sent"
    );
    let exchange_pos = transfers
        .iter()
        .find(|t| t.kind == TransferKind::Exchange)
        .map(|t| t.pos)
        .unwrap();
    let heavy_before_exchange = heavy_ids
        .iter()
        .filter(|id| pos_of(id) < exchange_pos)
        .count();
    eprintln!("{heavy_before_exchange} heavy transactions before the exchange");
    assert!(
        heavy_before_exchange < HEAVY && heavy_before_exchange as u64 <= seen + 10 * BUDGET as u64,
        "{heavy_before_exchange} heavy transactions went ahead of the exchange; {seen} were applied when it was sent"
    );
}
