//! Vouchers a holder makes of their points at a kiosk node (issue 17 part
//! 1(a)), with the real binaries on 127.0.0.1: the hub vouches for the
//! kiosk (`mykey-hub voucher issuer add`), the kiosk's `mykey-node run`
//! learns its issuer number, the virtual JPKI card signs the issue through
//! the node's real card path (`prove_voucher_issue`, as a reader loop does
//! after the PIN) into the kiosk's outbox while `run` is stopped, the
//! vouchers come out as the receipt printer's ESC/POS raster and as PNGs, a
//! shop node offline takes one from its printed PNG (`mykey-node voucher
//! redeem --image`), both nodes' `run` carry their transactions to the hub,
//! and `mykey-hub settle` pays the shop the voucher once while the wallet
//! was debited once.

mod net_common;

use mykey_node::card::{Pin, prove_voucher_issue};
use mykey_node::config::DataDir;
use mykey_sync_proto::{MyKeyId, ProgramId};
use mykey_tests::card::{InProcessCard, IssuedCard, issued_card};
use mykey_voucher::ExpiryDate;
use net_common::*;
use std::path::Path;
use std::time::Duration;

fn statement_points(statements: &str, kind: &str, party: &str) -> u64 {
    statements
        .lines()
        .filter_map(|l| {
            let mut w = l.split_whitespace();
            (w.next()? == kind && w.next()? == party)
                .then(|| w.next()?.parse::<u64>().ok())
                .flatten()
        })
        .sum()
}

fn payee(hub: &Path, who: &[&str], number: &str, holder: &str) {
    let mut args = vec!["payee", "set"];
    args.extend_from_slice(who);
    args.extend_from_slice(&[
        "--bank", "0001", "--branch", "001", "--number", number, "--holder", holder,
    ]);
    if who == ["--agent"] {
        args.extend_from_slice(&["--code", "1234567890"]);
    }
    hub_cli(hub, &args);
}

#[test]
fn vouchers_issued_at_the_kiosk_are_redeemed_offline_and_paid_once() {
    let w = World::create(2, 0);
    let (shop_dir, kiosk_dir) = (w.nodes[0].as_path(), w.nodes[1].as_path());
    let t = now();
    let IssuedCard {
        mut card, trusted, ..
    } = issued_card(&[0x0B, 0x0A, 0x7E], *b"4321", (t.0 / 1000) as i64);
    let card_key = trusted.cert().card_key().clone();
    let akiko = {
        let mut hub = w.open_hub();
        let a = hub
            .register_account_with_certificate(
                &MyKeyId::parse("Akiko").unwrap(),
                bunkyo(),
                &trusted,
                t,
            )
            .unwrap();
        hub.admin_grant(a, &ProgramId::parse("health").unwrap(), pts(5000), t)
            .unwrap();
        a
    };
    let out = hub_cli(
        &w.hub_dir,
        &[
            "voucher",
            "issuer",
            "add",
            "--node",
            &w.node_ids[1].to_string(),
        ],
    );
    assert!(out.contains("is voucher issuer 1"), "{out}");

    // Both nodes sync once: the kiosk learns its issuer number, the shop
    // the hub's statement of it.
    let (mut hub, addr) = start_hub(&w.hub_dir, 0);
    for (name, dir) in [("kiosk", kiosk_dir), ("shop", shop_dir)] {
        let mut p = start_node(name, dir, Some(&addr), &[]);
        wait_until("caught up", Duration::from_secs(60), || caught_up(dir));
        wait_until("the issuer statement", Duration::from_secs(60), || {
            DataDir::new(dir)
                .open()
                .unwrap()
                .voucher_issuer(1)
                .unwrap()
                .is_some()
        });
        p.terminate();
    }

    // At the kiosk, with `run` stopped: 1000 pt into three vouchers.
    let expires = ExpiryDate::from_days(u16::try_from(t.0 / 86_400_000 + 90).unwrap());
    let (done, vouchers) = {
        let mut n = DataDir::new(kiosk_dir).open().unwrap();
        let b = n
            .voucher_issue_binding(&card_key, vec![500, 300, 200], expires, now())
            .unwrap();
        let proof = prove_voucher_issue(
            &mut InProcessCard(&mut card),
            &trusted,
            Pin::parse("4321").unwrap(),
            b.clone(),
        )
        .unwrap();
        n.issue_vouchers(&proof, b.created_at).unwrap()
    };
    assert_eq!(vouchers.len(), 3);
    // The receipt printer's bytes and one PNG per voucher.
    let print = w.root.path().join("print");
    std::fs::create_dir_all(&print).unwrap();
    let escpos = mykey_voucher::voucher_escpos(&vouchers[0], mykey_voucher::ESCPOS_MAX_DOTS);
    let from_paper =
        mykey_voucher::decode_png(&mykey_voucher::escpos_raster_png(&escpos).unwrap()).unwrap();
    assert_eq!(from_paper, vec![vouchers[0].clone()]);
    let png = print.join("k1.1-00001.png");
    std::fs::write(&png, mykey_voucher::voucher_png(&vouchers[0], 8)).unwrap();

    // The shop, offline, takes the printed voucher once.
    let (ok, out, err) = run_with_stdin(
        "mykey-node",
        shop_dir,
        &["voucher", "redeem", "--image", png.to_str().unwrap()],
        "",
    );
    assert!(ok, "{err}");
    assert!(
        out.contains("taken: voucher k1.1-00001 of 131059: 500 pt"),
        "{out}"
    );
    let (ok, _, err) = run_with_stdin(
        "mykey-node",
        shop_dir,
        &["voucher", "redeem", "--image", png.to_str().unwrap()],
        "",
    );
    assert!(!ok, "taken twice: {err}");

    // The kiosk's issue reaches the hub, then the shop's redemption.
    let mut kiosk = start_node("kiosk", kiosk_dir, Some(&addr), &[]);
    wait_until(
        "the hub receipted the issue",
        Duration::from_secs(60),
        || status(kiosk_dir)["receipted_seq"].as_u64() >= Some(done.seq),
    );
    kiosk.terminate();
    let mut shop = start_node("shop", shop_dir, Some(&addr), &[]);
    wait_until("the shop caught up", Duration::from_secs(60), || {
        caught_up(shop_dir)
    });
    shop.terminate();
    hub.terminate();
    let troubled = status(shop_dir)["troubled"].to_string();
    assert!(!troubled.contains("voucher"), "{troubled}");
    let troubled = status(kiosk_dir)["troubled"].to_string();
    assert!(!troubled.contains("voucher"), "{troubled}");

    // The wallet was debited once, the float holds the two vouchers left.
    {
        let mut hub = w.open_hub();
        assert_eq!(hub.balance(akiko, bunkyo()).unwrap().balance, pts(4000));
        let report = hub.liability_report(now()).unwrap();
        assert_eq!(report.municipalities[0].kiosk_vouchers, 500);
        hub.check_conservation().unwrap();
    }

    // Settlement pays the shop the voucher, once.
    payee(&w.hub_dir, &["--agent"], "7654320", "ｾｲｻﾝ");
    payee(&w.hub_dir, &["--merchant", "shop-0"], "7654321", "ﾐｾｾﾞﾛ");
    payee(&w.hub_dir, &["--municipality", "131059"], "1", "ﾌﾞﾝｷﾖｳｸ");
    let out_dir = w.root.path().join("settlement");
    let out = hub_cli(
        &w.hub_dir,
        &[
            "settle",
            "--through-now",
            "--out",
            out_dir.to_str().unwrap(),
        ],
    );
    assert!(out.contains("closed"), "{out}");
    let stmts = hub_cli(&w.hub_dir, &["statements", "--municipality", "131059"]);
    assert_eq!(
        statement_points(&stmts, "merchant-payout", "shop-0"),
        500,
        "{stmts}"
    );
    let check = hub_cli(&w.hub_dir, &["ledger", "check"]);
    assert!(check.contains("ledger balanced"), "{check}");
}
