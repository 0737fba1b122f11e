//! A donation made at a kiosk node reaches the recipient's payout file
//! (issue 19 part 5), with the real binaries on 127.0.0.1: the programme
//! declared with `mykey-hub donation declare`, `mykey-hub serve` and
//! `mykey-node run`, the kiosk's donation endpoint (`mykey-node kiosk`,
//! `POST /donate`, `GET /donate.json`) driven over HTTP, the virtual JPKI
//! card signing the donation through the node's real card path
//! (`prove_donation`, as the kiosk's reader loop does after the keypad's
//! OK) into the node's outbox, `run` carrying it to the hub, and
//! `mykey-hub settle` writing the donations Zengin file with the
//! recipient's line.
//!
//! The kiosk here has no card reader (pcscd's virtual slots are shared with
//! the Chromium kiosk test), so the card signs in this process through the
//! same functions the reader loop calls (`Node::donation_binding`,
//! `prove_donation`, `Node::donate`).

mod net_common;

use mykey_node::card::{Pin, ProveError, prove_donation, read_auth_cert, trust};
use mykey_node::config::DataDir;
use mykey_node::node::OpError;
use mykey_sync_proto::{MyKeyId, ProgramId};
use mykey_testcard::{TestCa, TestCard, key_from_seed};
use mykey_tests::card::InProcessCard;
use net_common::*;
use rsa::RsaPublicKey;
use std::io::{Read, Write};
use std::time::Duration;

const YEAR_S: i64 = 365 * 86_400;

/// One HTTP/1.1 request to the kiosk page: (status, body).
fn http(addr: &str, method: &str, path: &str, body: &str) -> (u16, String) {
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    let status = out[9..12].parse().unwrap();
    let body = out
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    (status, body)
}

#[test]
fn a_donation_at_the_kiosk_node_reaches_the_recipients_payout_file() {
    let w = World::create(1, 0);
    let t = now();
    let now_s = (t.0 / 1000) as i64;
    let ca = TestCa::new(
        key_from_seed([1; 32]).unwrap(),
        "MyKey Test JPKI User Authentication CA",
        now_s - 86_400,
        now_s + 10 * YEAR_S,
    )
    .unwrap();
    let chip_key = key_from_seed([2; 32]).unwrap();
    let cert_der = ca
        .issue(
            &[0x0D, 0x0A, 0x7E],
            &RsaPublicKey::from(&chip_key),
            now_s - 86_400,
            now_s + 5 * YEAR_S,
        )
        .unwrap();
    let mut card = TestCard::new(cert_der, ca.cert_der().to_vec(), chip_key, *b"4321");
    let cert = read_auth_cert(&mut InProcessCard(&mut card)).unwrap();
    let trusted = trust(cert, &[ca.cert_der().to_vec()], now_s).unwrap();
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
    let node = start_node("node", node_dir, Some(&addr), &[]);
    wait_until("the node is caught up", Duration::from_secs(30), || {
        caught_up(node_dir)
    });

    // The kiosk's donation endpoint, over HTTP.
    let ca_path = w.root.path().join("ca.der");
    std::fs::write(&ca_path, ca.cert_der()).unwrap();
    let kiosk = Proc::spawn(
        "kiosk",
        std::process::Command::new(bin("mykey-node"))
            .arg("--data")
            .arg(node_dir)
            .args([
                "kiosk",
                "--listen",
                "127.0.0.1:0",
                "--reader",
                "no reader here",
            ])
            .arg("--trusted-ca")
            .arg(&ca_path),
    );
    let line = kiosk.line_starting("kiosk page on ", Duration::from_secs(30));
    let page = line
        .trim_start_matches("kiosk page on http://")
        .trim_end_matches('/')
        .to_owned();
    let (status, html) = http(&page, "GET", "/donate", "");
    assert_eq!(status, 200);
    assert!(html.contains("寄付"), "{html}");
    for (body, says) in [
        (
            r#"{"programme":"Noto!","points":100}"#,
            "not a programme id",
        ),
        (r#"{"programme":"noto-relief","points":0}"#, "give 1 to"),
        (r#"{"programme":"noto-relief"}"#, "the body is"),
    ] {
        let (status, answer) = http(&page, "POST", "/donate", body);
        assert_eq!(status, 422, "{body}: {answer}");
        assert!(answer.contains(says), "{body}: {answer}");
    }
    let (_, chosen) = http(&page, "GET", "/donate.json", "");
    assert!(chosen.contains(r#""chosen":null"#), "{chosen}");
    let (status, _) = http(
        &page,
        "POST",
        "/donate",
        r#"{"programme":"noto-relief","points":1500}"#,
    );
    assert_eq!(status, 204);
    let (_, chosen) = http(&page, "GET", "/donate.json", "");
    assert!(
        chosen.contains(r#""programme":"noto-relief""#) && chosen.contains(r#""points":1500"#),
        "{chosen}"
    );

    // What the kiosk's reader loop does at the keypad's OK with that choice.
    let mut n = DataDir::new(node_dir).open().unwrap();
    let relief = ProgramId::parse("noto-relief").unwrap();
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
    let proof = prove_donation(
        &mut InProcessCard(&mut card),
        &trusted,
        Pin::parse("4321").unwrap(),
        binding.clone(),
    )
    .unwrap();
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
    let done = n.donate(&proof, binding.created_at).unwrap();
    drop(n);
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
    // The PIN never reaches a log.
    for p in [&node, &kiosk] {
        assert!(!p.stderr().contains("4321"), "{}", p.stderr());
    }
}
