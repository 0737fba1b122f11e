//! A donation made at a kiosk node reaches the recipient's payout file
//! (issue 19 part 5), with the real binaries on 127.0.0.1: the programme
//! declared with `mykey-hub donation declare` and told to the town's nodes
//! as a hub fact (the node lists it open, then closed), `mykey-hub serve`
//! and `mykey-node run`, the virtual JPKI card signing the donation through
//! the node's real card path (`prove_donation`, as the kiosk's reader loop
//! does after the keypad's PIN) into the node's outbox while `run` is
//! stopped, a redeem offline refused because the pending donation counts
//! against the wallet, `run` carrying it to the hub, and `mykey-hub settle`
//! writing the donations Zengin file with the recipient's line.
//!
//! The card signs in this process through the same functions the kiosk's
//! reader loop calls (`Node::donation_binding`, `prove_donation`,
//! `Node::donate`); the kiosk itself, in Chromium with the card on pcscd,
//! is `kiosk_browser.rs`.

mod net_common;

use mykey_node::card::{Pin, ProveError, prove_donation};
use mykey_node::config::DataDir;
use mykey_node::node::OpError;
use mykey_node::rules::Decline;
use mykey_sync_proto::{MyKeyId, ProgramId};
use mykey_tests::card::{InProcessCard, IssuedCard, issued_card};
use net_common::*;
use std::time::Duration;

#[test]
fn a_donation_at_the_kiosk_node_reaches_the_recipients_payout_file() {
    let w = World::create(1, 0);
    let t = now();
    let now_s = (t.0 / 1000) as i64;
    let IssuedCard {
        mut card, trusted, ..
    } = issued_card(&[0x0D, 0x0A, 0x7E], *b"4321", now_s);
    let card_key = trusted.cert().card_key().clone();
    {
        let mut hub = w.open_hub();
        let akiko = hub
            .register_account_with_certificate(
                &MyKeyId::parse("Akiko").unwrap(),
                bunkyo(),
                &trusted,
                t,
            )
            .unwrap();
        hub.admin_grant(akiko, &ProgramId::parse("health").unwrap(), pts(5000), t)
            .unwrap();
    }
    let hub_dir = &w.hub_dir;
    let declare = [
        "donation",
        "declare",
        "--programme",
        "noto-relief",
        "--municipality",
        "131059",
        "--recipient",
        "能登町 災害義援金",
        "--bank",
        "0001",
        "--branch",
        "004",
        "--number",
        "2468024",
        "--holder",
        "ﾉﾄﾁﾖｳ",
        "--code",
        "17",
    ];
    let out = hub_cli(hub_dir, &declare);
    assert!(out.contains("noto-relief declared"), "{out}");
    hub_cli(
        hub_dir,
        &[
            "payee",
            "set",
            "--agent",
            "--bank",
            "0009",
            "--branch",
            "001",
            "--number",
            "1234567",
            "--holder",
            "ｾｲｻﾝﾀﾞｲｺｳ",
            "--code",
            "1234567890",
        ],
    );

    let node_dir = &w.nodes[0];
    let (mut hub, addr) = start_hub(hub_dir, 0);
    let mut node = start_node("node", node_dir, Some(&addr), &[]);
    wait_until("the node is caught up", Duration::from_secs(30), || {
        caught_up(node_dir)
    });

    // The hub told the town's nodes: the kiosk lists the programme, offline too.
    node.terminate();
    let relief = ProgramId::parse("noto-relief").unwrap();
    let mut n = DataDir::new(node_dir).open().unwrap();
    let listed = n.donation_programmes().unwrap();
    assert_eq!(listed.len(), 1, "{listed:?}");
    assert_eq!(listed[0].0, relief);
    assert_eq!(listed[0].1.as_str(), "能登町 災害義援金");

    // What the kiosk's reader loop does after the PIN, with `run` stopped.
    let binding = n
        .donation_binding(&card_key, relief.clone(), pts(1500), now())
        .unwrap();
    let err = prove_donation(
        &mut InProcessCard(&mut card),
        &trusted,
        Pin::parse("1111").unwrap(),
        binding.clone(),
    )
    .err()
    .unwrap();
    assert!(
        matches!(err, ProveError::WrongPin { tries_left: 2 }),
        "{err}"
    );
    // More than the holder has here is not signed at all.
    let big = n
        .donation_binding(&card_key, relief.clone(), pts(6000), binding.created_at)
        .unwrap();
    let big_proof = prove_donation(
        &mut InProcessCard(&mut card),
        &trusted,
        Pin::parse("4321").unwrap(),
        big,
    )
    .unwrap();
    let refused = n.donate(&big_proof, binding.created_at).unwrap_err();
    assert!(
        matches!(refused, OpError::DonationBeyondBalance { .. }),
        "{refused}"
    );
    // A programme the hub never declared here is not signed.
    let unknown = n
        .donation_binding(
            &card_key,
            ProgramId::parse("elsewhere").unwrap(),
            pts(10),
            now(),
        )
        .unwrap();
    let unknown_proof = prove_donation(
        &mut InProcessCard(&mut card),
        &trusted,
        Pin::parse("4321").unwrap(),
        unknown.clone(),
    )
    .unwrap();
    let refused = n.donate(&unknown_proof, unknown.created_at).unwrap_err();
    assert!(
        matches!(refused, OpError::NoSuchDonationProgramme(_)),
        "{refused}"
    );
    let binding = n
        .donation_binding(&card_key, relief.clone(), pts(1500), now())
        .unwrap();
    let proof = prove_donation(
        &mut InProcessCard(&mut card),
        &trusted,
        Pin::parse("4321").unwrap(),
        binding.clone(),
    )
    .unwrap();
    let done = n.donate(&proof, binding.created_at).unwrap();
    // Offline, a counter on this node sees the pending donation: of the
    // 5000 confirmed, 3500 are left to spend, as if 1500 were redeemed.
    let over = n.redeem(&card_key, pts(3501), None, now()).unwrap_err();
    assert!(
        matches!(
            over,
            OpError::Declined(Decline::InsufficientBalance { available, .. }) if available == pts(3500)
        ),
        "{over}"
    );
    // A second donation beyond what is left is not signed either.
    let again = n
        .donation_binding(&card_key, relief.clone(), pts(3501), now())
        .unwrap();
    let again_proof = prove_donation(
        &mut InProcessCard(&mut card),
        &trusted,
        Pin::parse("4321").unwrap(),
        again.clone(),
    )
    .unwrap();
    assert!(matches!(
        n.donate(&again_proof, again.created_at).unwrap_err(),
        OpError::DonationBeyondBalance { available, .. } if available == pts(3500)
    ));
    drop(n);
    let node = start_node("node", node_dir, Some(&addr), &[]);
    wait_until(
        "the hub receipted the donation",
        Duration::from_secs(30),
        || {
            let s = net_common::status(node_dir);
            s["receipted_seq"].as_u64() >= Some(done.seq)
        },
    );
    hub.terminate();
    let list = hub_cli(hub_dir, &["donation", "list"]);
    assert!(list.contains("donated 1500 paid 0"), "{list}");
    let check = hub_cli(hub_dir, &["ledger", "check"]);
    assert!(check.contains("ledger balanced"), "{check}");

    let out = w.root.path().join("settlement");
    let printed = hub_cli(
        hub_dir,
        &["settle", "--through-now", "--out", out.to_str().unwrap()],
    );
    let file = std::fs::read_dir(&out)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| {
            p.file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with("donations-131059-")
        })
        .unwrap_or_else(|| panic!("no donations payout file: {printed}"));
    let bytes = std::fs::read(&file).unwrap();
    let records: Vec<String> = bytes
        .chunks(122)
        .filter(|r| r[0] == b'2')
        .map(|r| String::from_utf8_lossy(r).into_owned())
        .collect();
    assert_eq!(records.len(), 1, "{records:?}");
    assert!(
        records[0].contains("2468024") && records[0].contains("0000001500"),
        "{}",
        records[0]
    );
    let list = hub_cli(hub_dir, &["donation", "list"]);
    assert!(list.contains("donated 1500 paid 1500"), "{list}");
    // Closed: the hub tells the node, which lists it no more.
    let out = hub_cli(
        hub_dir,
        &["donation", "close", "--programme", "noto-relief"],
    );
    assert!(out.contains("noto-relief"), "{out}");
    let (mut hub, _) = start_hub(hub_dir, port_of(&addr));
    wait_until(
        "the node learns the programme closed",
        Duration::from_secs(30),
        || {
            DataDir::new(node_dir)
                .open()
                .unwrap()
                .donation_programmes()
                .unwrap()
                .is_empty()
        },
    );
    hub.terminate();
    // The PIN never reaches a log.
    assert!(
        !net_common::shows_secret(&node.stderr(), "4321"),
        "{}",
        node.stderr()
    );
}

/// The log check above finds a PIN as a word, not inside a timestamp or an id.
#[test]
fn a_secret_in_a_log_is_a_word_of_its_own() {
    use net_common::shows_secret;
    assert!(shows_secret("pin=4321 ok", "4321"));
    assert!(shows_secret("\"4321\"", "4321"));
    assert!(!shows_secret("2026-12-04T14:23:40.432157Z INFO", "4321"));
    assert!(!shows_secret("tx ab4321cd", "4321"));
}
