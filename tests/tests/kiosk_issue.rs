//! Vouchers a holder makes of their points at a kiosk (issue 17 part
//! 1(a)), through the node's real card path with the virtual JPKI card in
//! process (`mykey_tests::card::InProcessCard`) and the real hub: the card
//! signs the binding of exactly the issue the node then signs; the node
//! refuses before the hub vouched for it, counts the issue against the
//! wallet until the hub answers, and hands out vouchers signed with its key
//! under its issuer number; the receipt printer's ESC/POS raster reads back
//! as the same voucher; a shop offline takes one and reaches the hub before
//! the kiosk does: the hub holds that redemption, then pays it once when the
//! kiosk's issue arrives, having taken the points from the wallet once.

mod net_common;

use mykey_node::OpError;
use mykey_node::card::{Pin, prove_voucher_issue};
use mykey_node::node::ReprintError;
use mykey_sync_proto::{MyKeyId, TxBody, UnixMillis, VoucherIssueBinding};
use mykey_tests::card::{InProcessCard, issued_card};
use mykey_tests::world::{World, bunkyo, health, pts};
use mykey_voucher::{ExpiryDate, Issuer};

const KIOSK: usize = 1;
const SHOP: usize = 2;
const DAY: u64 = 86_400_000;

#[test]
fn a_holder_turns_points_into_vouchers_at_a_kiosk_and_a_shop_is_paid_once() {
    let dir = tempfile::tempdir().unwrap();
    let start = UnixMillis(1_775_001_600_000);
    let mut w = World::create(dir.path(), start).unwrap();
    let mut c = issued_card(&[0x0A, 0x1B, 0x2C], *b"4321", (start.0 / 1000) as i64);
    let key = c.trusted.cert().card_key().clone();
    let akiko = w
        .hub
        .register_account_with_certificate(
            &MyKeyId::parse("Akiko").unwrap(),
            bunkyo(),
            &c.trusted,
            w.now,
        )
        .unwrap();
    w.hub
        .admin_grant(akiko, &health(), pts(5000), w.now)
        .unwrap();
    w.sync_all().unwrap();
    let expires = ExpiryDate::from_days(u16::try_from(start.0 / DAY + 90).unwrap());
    let kiosk_id = w.sites[KIOSK].node.id();
    let prove = |c: &mut mykey_tests::card::IssuedCard, b: VoucherIssueBinding| {
        prove_voucher_issue(
            &mut InProcessCard(&mut c.card),
            &c.trusted,
            Pin::parse("4321").unwrap(),
            b,
        )
        .unwrap()
    };

    // Before the hub vouched for the kiosk, it issues nothing.
    let node = &mut w.sites[KIOSK].node;
    let b = node
        .voucher_issue_binding(&key, vec![500, 300, 200], expires, w.now)
        .unwrap();
    let proof = prove(&mut c, b);
    let err = node.issue_vouchers(&proof, w.now).unwrap_err();
    assert!(matches!(err, OpError::NotVoucherIssuer), "{err}");
    // Vouchers that do not hold together are refused before the PIN.
    let err = node
        .voucher_issue_binding(&key, vec![500, 0], expires, w.now)
        .unwrap_err();
    assert!(matches!(err, OpError::BadVoucherIssue(_)), "{err}");

    let issuer = mykey_hub::voucher::issuers::vouch(&mut w.hub, kiosk_id, w.now).unwrap();
    w.sync(KIOSK).unwrap();

    // With the PIN, 1000 pt become three vouchers.
    let node = &mut w.sites[KIOSK].node;
    let b = node
        .voucher_issue_binding(&key, vec![500, 300, 200], expires, w.now)
        .unwrap();
    let proof = prove(&mut c, b.clone());
    let (done, vouchers) = node.issue_vouchers(&proof, w.now).unwrap();
    assert_eq!(vouchers.len(), 3);
    let vouched = node
        .voucher_issuer(issuer)
        .unwrap()
        .expect("the hub's statement");
    for (i, v) in vouchers.iter().enumerate() {
        let v = v
            .verify_issued(&w.hub.hub_id().verifying_key().unwrap(), |n| {
                (n == issuer).then_some(vouched)
            })
            .unwrap();
        let body = v.body();
        assert_eq!(body.serial.batch, Issuer::node_batch(issuer, 1).unwrap());
        assert_eq!(usize::from(body.serial.index), i + 1);
        assert_eq!(body.points, [500, 300, 200][i]);
        assert_eq!(body.expires, expires);
    }
    // The outbox holds exactly the bound issue, with the card's proof.
    let signed = node.outbox_from(done.seq, 1).unwrap().remove(0);
    let verified = signed.verify().unwrap();
    assert!(matches!(verified.payload().body, TxBody::IssueVouchers(_)));
    assert_eq!(VoucherIssueBinding::of(verified.payload()), Some(b));
    // The same proof again is for a seq gone by.
    let err = node.issue_vouchers(&proof, w.now).unwrap_err();
    assert!(matches!(err, OpError::ProofNotForThis), "{err}");
    // Pending, the issue counts against the wallet: 4000 left here.
    let b = node
        .voucher_issue_binding(&key, vec![2000, 2000, 500], expires, w.now)
        .unwrap();
    let proof = prove(&mut c, b);
    let err = node.issue_vouchers(&proof, w.now).unwrap_err();
    assert!(
        matches!(err, OpError::VouchersBeyondBalance { available, .. } if available == pts(4000)),
        "{err}"
    );

    // The receipt printer's raster reads back as the same voucher.
    let escpos = mykey_voucher::voucher_escpos(&vouchers[0], 384);
    let png = mykey_voucher::escpos_raster_png(&escpos).expect("a raster");
    let printed = mykey_voucher::decode_png(&png).unwrap();
    assert_eq!(printed, vec![vouchers[0].clone()]);

    // The receipt jammed: `mykey-node voucher reprint` makes the same
    // vouchers again from the outbox, to the printer and as files.
    let node = &w.sites[KIOSK].node;
    assert_eq!(node.kiosk_vouchers_again(done.seq).unwrap(), vouchers);
    let err = node.kiosk_vouchers_again(done.seq + 5).unwrap_err();
    assert!(matches!(err, ReprintError::NoSuchSeq(_)), "{err}");
    let again = dir.path().join("again");
    let printer = dir.path().join("printer.bin");
    let seq = done.seq.to_string();
    let kiosk_dir = w.sites[KIOSK].dir.clone();
    let out = net_common::node_cli(
        &kiosk_dir,
        &[
            "voucher",
            "reprint",
            "--seq",
            &seq,
            "--printer",
            printer.to_str().unwrap(),
            "--out",
            again.to_str().unwrap(),
        ],
    );
    assert!(
        out.contains(&format!("serial {}: 500 pt", vouchers[0].body.serial))
            && out.contains(&mykey_voucher::to_text(&vouchers[2]))
            && out.contains("sent 3 vouchers to"),
        "{out}"
    );
    let png =
        std::fs::read(again.join(format!("voucher-{}.png", vouchers[1].body.serial))).unwrap();
    assert_eq!(
        mykey_voucher::decode_png(&png).unwrap(),
        vec![vouchers[1].clone()]
    );
    let raster = std::fs::read(&printer).unwrap();
    assert_eq!(
        raster.len(),
        3 * escpos.len(),
        "three vouchers' rasters appended"
    );
    assert_eq!(
        mykey_voucher::decode_png(
            &mykey_voucher::escpos_raster_png(&raster[..escpos.len()]).unwrap()
        )
        .unwrap(),
        vec![vouchers[0].clone()]
    );

    // A shop offline learns the kiosk's statement at its next sync, then
    // takes the printed voucher without the hub.
    w.sync(SHOP).unwrap();
    w.advance_ms(60_000);
    let shop = &mut w.sites[SHOP].node;
    let (taken, _) = shop.redeem_voucher(&printed[0], w.now).unwrap();
    let again = shop.redeem_voucher(&printed[0], w.now);
    assert!(again.is_err(), "taken twice at one shop");
    let err = shop.kiosk_vouchers_again(taken.seq).unwrap_err();
    assert!(matches!(err, ReprintError::NotAnIssue { .. }), "{err}");

    // The shop reaches the hub before the kiosk: no issuing transaction
    // backs the voucher yet, so the hub holds it, paying nothing.
    let r = w.sync(SHOP).unwrap();
    assert_eq!(r.rejected, 0, "{r:?}");
    assert_eq!(mykey_hub::voucher::held(&mut w.hub, 10).unwrap().len(), 1);
    assert_eq!(w.hub.balance(akiko, bunkyo()).unwrap().balance, pts(5000));
    // Once the kiosk's issue arrives the wallet is debited once and the
    // held redemption is paid from the float …
    w.sync(KIOSK).unwrap();
    assert_eq!(w.hub.balance(akiko, bunkyo()).unwrap().balance, pts(4000));
    assert!(mykey_hub::voucher::held(&mut w.hub, 10).unwrap().is_empty());
    let report = w.hub.liability_report(w.now).unwrap();
    assert_eq!(
        report.municipalities[0].kiosk_vouchers, 500,
        "1000 issued, 500 redeemed"
    );
    w.sync(KIOSK).unwrap();
    assert_eq!(w.hub.balance(akiko, bunkyo()).unwrap().balance, pts(4000));
    // … and a shop that takes voucher 2 is paid from the float, once.
    let shop = &mut w.sites[SHOP].node;
    shop.redeem_voucher(&vouchers[1], w.now).unwrap();
    let r = w.sync(SHOP).unwrap();
    assert_eq!(r.rejected, 0, "{r:?}");
    let report = w.hub.liability_report(w.now).unwrap();
    let m = &report.municipalities[0];
    assert_eq!(m.kiosk_vouchers, 200, "1000 issued, 800 redeemed");
    assert_eq!(m.vouchers, 200);
    assert!(
        w.hub.incidents(10).unwrap().is_empty(),
        "{:?}",
        w.hub.incidents(10)
    );
    w.hub.check_conservation().unwrap();
}
