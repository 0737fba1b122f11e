//! Vouchers a holder makes of their points at a kiosk (issue 17 part
//! 1(a)), on whichever backend `common::init_hub` chose (SQLite, or
//! PostgreSQL when `MYKEY_PG_URL` is set): the kiosk node the hub vouched
//! for signs a `TxBody::IssueVouchers` with the card's PIN signature over
//! exactly it; the hub moves the points from the wallet to the voucher
//! float and records the kiosk batch; a shop's redemption of one of its
//! vouchers is paid from the float once; the unredeemed rest goes back to
//! the wallet at expiry, once. Every hostile issue (forged or missing
//! proof, amount not the vouchers' sum, over the balance, a replayed or
//! re-batched issue, a node never vouched for) and every unbacked voucher
//! (a voucher its batch did not record) is refused and moves nothing. A
//! redemption that reaches the hub before its kiosk's issue is held, paying
//! nothing, and decided in hub order when the issue arrives; one whose issue
//! never comes is reported once its last day has passed. The ledger's
//! conservation check holds throughout.

mod common;

use common::pki::{Pki, TestCard};
use common::*;
use mykey_hub::voucher::{self, issuers};
use mykey_hub::{FacilityKind, LedgerAccount};
use mykey_sync_proto::holder::{
    HolderAction, HolderBinding, HolderHistory, HolderRequest, HolderResponse, Movement,
};
use mykey_sync_proto::session::HubService;
use mykey_sync_proto::wire::Outcome;
use mykey_sync_proto::{
    AccountId, CardKey, CardSignature, KioskIssue, MyKeyId, OpKind, SignedTx, TxBody, UnixMillis,
    VoucherIssueBinding, VoucherRedeem,
};
use mykey_voucher::{ExpiryDate, Issuer, Serial, SignedVoucher, VoucherBody};

const DAY: u64 = 86_400_000;

struct Setup {
    f: Fixture,
    kiosk: Chain,
    issuer: u16,
    carol: AccountId,
    carol_card: TestCard,
    other_card: TestCard,
    _dir: tempfile::TempDir,
}

/// The fixture, a kiosk node at the town hall vouched for as voucher
/// issuer, and Carol registered with her certificate and 5000 pt.
fn setup() -> Setup {
    let dir = tempfile::tempdir().unwrap();
    let pki = Pki::new(dir.path());
    let carol_card = pki.card("0C0FFEE011");
    let other_card = pki.card("0C0FFEE012");
    let mut f = Fixture::new();
    let carol = f
        .hub
        .register_account_with_certificate(
            &MyKeyId::parse("Carol03").unwrap(),
            muni(),
            &pki.trusted(&carol_card),
            T0,
        )
        .unwrap();
    f.hub.admin_grant(carol, &program(), pts(5000), T0).unwrap();
    f.hub
        .add_facility(
            &mykey_hub::admin::facility(
                fid("hall-1"),
                muni(),
                FacilityKind::CommunityCentre,
                "Town hall",
            ),
            T0,
        )
        .unwrap();
    let kiosk = Chain::new(61);
    f.hub
        .enrol_node(kiosk.id, &fid("hall-1"), policy(&[OpKind::Redeem]), T0)
        .unwrap();
    let issuer = issuers::vouch(&mut f.hub, kiosk.id, T0).unwrap();
    Setup {
        f,
        kiosk,
        issuer,
        carol,
        carol_card,
        other_card,
        _dir: dir,
    }
}

fn last_day() -> u16 {
    u16::try_from(T0.0 / DAY + 30).unwrap()
}

fn issue(account: AccountId, card: CardKey, denominations: &[u32], batch: u16) -> KioskIssue {
    KioskIssue {
        card,
        account,
        municipality: muni(),
        points: pts(denominations.iter().map(|d| u64::from(*d)).sum()),
        denominations: denominations.to_vec(),
        batch,
        expires_days: last_day(),
        // Replaced by `proved`.
        card_proof: CardSignature::new(vec![0; 256]).unwrap(),
    }
}

/// Signs the chain's next issue with `signer`'s proof over its own binding.
fn proved(chain: &mut Chain, k: KioskIssue, signer: &TestCard) -> SignedTx {
    let created_at = T0.plus_ms(chain.seq + 1);
    let own = VoucherIssueBinding::new(chain.id, chain.seq + 1, created_at, &k);
    let card_proof = signer.sign_message(&own.signed_message());
    chain.sign(TxBody::IssueVouchers(KioskIssue { card_proof, ..k }))
}

/// The kiosk's voucher `index` of its batch `batch`, as it would print it.
fn kiosk_voucher(s: &Setup, batch: u16, index: u16, points: u32) -> SignedVoucher {
    VoucherBody {
        key_hint: 0,
        municipality: muni(),
        serial: Serial {
            batch: Issuer::node_batch(s.issuer, batch).unwrap(),
            index,
        },
        points,
        expires: ExpiryDate::from_days(last_day()),
    }
    .sign(&s.kiosk.key)
}

fn wallet(f: &mut Fixture, a: AccountId) -> u64 {
    f.hub.balance(a, muni()).unwrap().balance.get()
}

fn float(f: &mut Fixture) -> i128 {
    let a = LedgerAccount::VoucherFloat(muni());
    f.hub
        .transfers(0, u32::MAX)
        .unwrap()
        .iter()
        .map(|t| {
            i128::from(t.amount.get()) * (i128::from(t.credit == a) - i128::from(t.debit == a))
        })
        .sum()
}

/// What the shop is owed in all (credited to its payable).
fn payable(f: &mut Fixture) -> u64 {
    f.hub
        .transfers(0, u32::MAX)
        .unwrap()
        .iter()
        .filter(|t| t.credit == LedgerAccount::MerchantPayable(fid("shop-1"), muni()))
        .map(|t| t.amount.get())
        .sum()
}

fn refused(o: &Outcome) -> String {
    match o {
        Outcome::Rejected(r) => r.to_string(),
        other => panic!("expected a rejection, got {other:?}"),
    }
}

fn redeem_at_shop(
    f: &mut Fixture,
    v: &SignedVoucher,
    node_time: UnixMillis,
    now: UnixMillis,
) -> Outcome {
    let tx = f.shop.sign_dated(
        TxBody::RedeemVoucher(VoucherRedeem {
            voucher: v.to_bytes().to_vec(),
            merchant: fid("shop-1"),
        }),
        node_time,
    );
    let shop = f.shop.id;
    let r = f.hub.ingest(&shop, vec![tx], now);
    assert_eq!(r.receipts.len(), 1, "{r:?}");
    r.receipts[0].outcome.clone()
}

#[test]
fn a_kiosk_issue_is_decided_from_what_the_hub_verifies_and_its_vouchers_are_paid_once() {
    let mut s = setup();
    let key = s.carol_card.cert.card_key().clone();
    let id = s.kiosk.id;

    // Carol turns 1000 pt into three vouchers with her PIN.
    let good = proved(
        &mut s.kiosk,
        issue(s.carol, key.clone(), &[500, 300, 200], 1),
        &s.carol_card,
    );
    let r = s.f.hub.ingest(&id, vec![good.clone()], T0.plus_ms(100));
    assert!(
        matches!(r.receipts[0].outcome, Outcome::Accepted { .. }),
        "{r:?}"
    );
    assert_eq!(wallet(&mut s.f, s.carol), 4000);
    assert_eq!(float(&mut s.f), 1000);
    s.f.hub.check_conservation().unwrap();
    let report = s.f.hub.liability_report(T0.plus_ms(200)).unwrap();
    assert_eq!(bunkyo(&report).kiosk_vouchers, 1000);

    // The same transaction again is a duplicate: nothing moves twice.
    let r = s.f.hub.ingest(&id, vec![good], T0.plus_ms(150));
    assert!(
        matches!(r.receipts[0].outcome, Outcome::Accepted { .. }),
        "{r:?}"
    );
    assert_eq!(wallet(&mut s.f, s.carol), 4000);

    // Each hostile issue is refused and moves nothing.
    let before = snapshot(&mut s.f.hub, &[id]);
    let mut sum_not_points = issue(s.carol, key.clone(), &[500, 500], 2);
    sum_not_points.points = pts(900);
    let cases: Vec<(SignedTx, &str)> = vec![
        // Another card's signature.
        (
            proved(
                &mut s.kiosk,
                issue(s.carol, key.clone(), &[500], 2),
                &s.other_card,
            ),
            "does not verify",
        ),
        // A leaked node key issuing without the holder: no valid proof.
        (
            s.kiosk.sign(TxBody::IssueVouchers(issue(
                s.carol,
                key.clone(),
                &[1000],
                2,
            ))),
            "does not verify",
        ),
        // The amount is not the vouchers' sum (the card signed exactly that).
        (
            proved(&mut s.kiosk, sum_not_points, &s.carol_card),
            "add up to 1000 points, but the issue takes 900",
        ),
        // More than the confirmed balance (4000 left).
        (
            proved(
                &mut s.kiosk,
                issue(s.carol, key.clone(), &[2000, 2000, 500], 2),
                &s.carol_card,
            ),
            "beyond the confirmed balance",
        ),
        // A new issue under the batch number already issued (a replay with
        // a fresh proof, or a node re-batching).
        (
            proved(
                &mut s.kiosk,
                issue(s.carol, key.clone(), &[100], 1),
                &s.carol_card,
            ),
            "was issued already",
        ),
        // Too many vouchers.
        (
            proved(
                &mut s.kiosk,
                issue(s.carol, key.clone(), &[1; 21], 2),
                &s.carol_card,
            ),
            "1 to 20 vouchers",
        ),
    ];
    for (tx, says) in cases {
        let r = s.f.hub.ingest(&id, vec![tx], T0.plus_ms(300));
        let why = refused(&r.receipts[0].outcome);
        assert!(why.contains(says), "{why} (wanted {says:?})");
    }
    // A node the hub never vouched for, with a valid proof.
    {
        let shop = s.f.shop.id;
        let mut shop_chain = std::mem::replace(&mut s.f.shop, Chain::new(11));
        let tx = proved(
            &mut shop_chain,
            issue(s.carol, key.clone(), &[100], 1),
            &s.carol_card,
        );
        let r = s.f.hub.ingest(&shop, vec![tx], T0.plus_ms(300));
        let why = refused(&r.receipts[0].outcome);
        assert!(why.contains("is not a voucher issuer"), "{why}");
        s.f.shop = shop_chain;
    }
    let after = snapshot(&mut s.f.hub, &[id]);
    assert_eq!(after.totals, before.totals, "refusals moved points");
    assert_eq!(after.n_transfers, before.n_transfers);
    assert_eq!(wallet(&mut s.f, s.carol), 4000);

    // The shop takes voucher 1 (500 pt): paid from the float, once.
    let v1 = kiosk_voucher(&s, 1, 1, 500);
    let o = redeem_at_shop(&mut s.f, &v1, T0.plus_ms(400), T0.plus_ms(500));
    assert!(matches!(o, Outcome::Accepted { .. }), "{o:?}");
    assert_eq!(float(&mut s.f), 500);
    assert_eq!(payable(&mut s.f), 500);
    // Again, signed after the hub had the first: an incident, not paid.
    let o = redeem_at_shop(&mut s.f, &v1, T0.plus_ms(600), T0.plus_ms(700));
    assert!(matches!(o, Outcome::Accepted { .. }), "{o:?}");
    assert_eq!(payable(&mut s.f), 500);

    // Unbacked kiosk vouchers are refused, whatever the kiosk key signs
    // (a batch whose issue has not reached the hub is held instead: see
    // `a_redemption_before_its_kiosk_issue_is_held_then_decided_in_hub_order`).
    for (v, says) in [
        // More points than the batch recorded for that index.
        (
            kiosk_voucher(&s, 1, 2, 3000),
            "its kiosk batch recorded voucher 2 as 300",
        ),
        // An index beyond the batch.
        (kiosk_voucher(&s, 1, 4, 100), "holds 3 vouchers"),
    ] {
        let o = redeem_at_shop(&mut s.f, &v, T0.plus_ms(800), T0.plus_ms(900));
        let why = refused(&o);
        assert!(why.contains(says), "{why} (wanted {says:?})");
    }
    assert_eq!(payable(&mut s.f), 500);
    s.f.hub.check_conservation().unwrap();

    // Past the last valid day the unredeemed 500 pt go back to Carol's
    // wallet, once.
    let after_expiry = UnixMillis((u64::from(last_day()) + 2) * DAY);
    let done = voucher::expire_due(&mut s.f.hub, after_expiry).unwrap();
    assert_eq!(done.len(), 1, "{done:?}");
    assert_eq!(done[0].back.get(), 500);
    assert_eq!(done[0].batch, Issuer::node_batch(s.issuer, 1).unwrap());
    assert!(
        voucher::expire_due(&mut s.f.hub, after_expiry.plus_ms(DAY))
            .unwrap()
            .is_empty()
    );
    assert_eq!(wallet(&mut s.f, s.carol), 4500);
    assert_eq!(float(&mut s.f), 0);
    let report = s.f.hub.liability_report(after_expiry).unwrap();
    assert_eq!(bunkyo(&report).kiosk_vouchers, 0);
    s.f.hub.check_conservation().unwrap();

    // Voucher 2, taken by a shop offline in time and reported after the
    // expiry: still paid, now from the wallet its points went back to.
    let v2 = kiosk_voucher(&s, 1, 2, 300);
    let o = redeem_at_shop(
        &mut s.f,
        &v2,
        UnixMillis(u64::from(last_day()) * DAY),
        after_expiry.plus_ms(2 * DAY),
    );
    assert!(matches!(o, Outcome::Accepted { .. }), "{o:?}");
    assert_eq!(payable(&mut s.f), 800);
    assert_eq!(wallet(&mut s.f, s.carol), 4200);
    s.f.hub.check_conservation().unwrap();

    // Carol's own history shows the issue and the return, nothing bought.
    let history = history_of(&mut s.f, &s.carol_card, after_expiry.plus_ms(3 * DAY));
    let vouchers: Vec<(u64, bool)> = history
        .entries
        .iter()
        .filter_map(|e| match e.movement {
            Movement::Vouchers { returned } => Some((e.points.get(), returned)),
            _ => None,
        })
        .collect();
    assert_eq!(vouchers, vec![(500, true), (1000, false)], "{history:?}");
}

/// The shop is online before the kiosk: its redemption of voucher 1, and a
/// copy of it signed later, reach the hub before the kiosk's issue. Both are
/// held (accepted, nothing paid, nothing taken from the wallet). When the
/// issue arrives, the same transaction records the batch and decides them in
/// hub order: the first is paid from the float, the copy is an incident
/// (signed after the hub had the first: not paid). A voucher of a batch
/// whose issue never comes stays held and is reported once, after its last
/// day.
#[test]
fn a_redemption_before_its_kiosk_issue_is_held_then_decided_in_hub_order() {
    let mut s = setup();
    let key = s.carol_card.cert.card_key().clone();
    let kiosk = s.kiosk.id;
    // The kiosk signs the issue offline: it stays in the kiosk's outbox.
    let issue_tx = proved(
        &mut s.kiosk,
        issue(s.carol, key.clone(), &[500, 300], 1),
        &s.carol_card,
    );
    let v1 = kiosk_voucher(&s, 1, 1, 500);
    let before = snapshot(&mut s.f.hub, &[kiosk]);
    let o = redeem_at_shop(&mut s.f, &v1, T0.plus_ms(400), T0.plus_ms(500));
    assert!(matches!(o, Outcome::Accepted { .. }), "{o:?}");
    let o = redeem_at_shop(&mut s.f, &v1, T0.plus_ms(600), T0.plus_ms(700));
    assert!(matches!(o, Outcome::Accepted { .. }), "{o:?}");
    let held = voucher::held(&mut s.f.hub, 10).unwrap();
    assert_eq!(held.len(), 2, "{held:?}");
    assert!(held.iter().all(|h| h.index == 1 && h.reported_at.is_none()));
    assert_eq!(
        (held[0].held_at, held[1].held_at),
        (T0.plus_ms(500), T0.plus_ms(700))
    );
    let after = snapshot(&mut s.f.hub, &[kiosk]);
    assert_eq!(
        after.totals, before.totals,
        "a held redemption moved points"
    );
    assert_eq!(after.n_transfers, before.n_transfers);
    assert_eq!(payable(&mut s.f), 0);
    assert_eq!(wallet(&mut s.f, s.carol), 5000);

    // The kiosk comes online: its issue is applied and decides both.
    let r = s.f.hub.ingest(&kiosk, vec![issue_tx], T0.plus_ms(1000));
    assert!(
        matches!(r.receipts[0].outcome, Outcome::Accepted { .. }),
        "{r:?}"
    );
    assert!(voucher::held(&mut s.f.hub, 10).unwrap().is_empty());
    assert_eq!(wallet(&mut s.f, s.carol), 4200);
    assert_eq!(payable(&mut s.f), 500, "the first paid once, the copy not");
    assert_eq!(float(&mut s.f), 300);
    let incidents = s.f.hub.incidents(10).unwrap();
    let twice: Vec<_> = incidents
        .iter()
        .filter(|i| i.kind == mykey_hub::IncidentKind::VoucherRedeemedTwice)
        .collect();
    assert_eq!(twice.len(), 1, "{incidents:?}");
    assert!(
        twice[0].detail.contains("not paid") && twice[0].detail.contains("held until"),
        "{}",
        twice[0].detail
    );
    s.f.hub.check_conservation().unwrap();

    // A voucher of batch 2, whose issue never reaches the hub: held, and
    // reported once after its last day; nothing paid.
    let lost = kiosk_voucher(&s, 2, 1, 700);
    let o = redeem_at_shop(&mut s.f, &lost, T0.plus_ms(1100), T0.plus_ms(1200));
    assert!(matches!(o, Outcome::Accepted { .. }), "{o:?}");
    // Batch 4: a shop takes its voucher, then the kiosk's issue of it is
    // refused (signed with another card's proof): the held redemption is
    // reported at once, and stays held.
    let unbacked = |f: &mut Fixture| {
        f.hub
            .incidents(50)
            .unwrap()
            .into_iter()
            .filter(|i| i.kind == mykey_hub::IncidentKind::VoucherUnbacked)
            .count()
    };
    let v4 = kiosk_voucher(&s, 4, 1, 400);
    let o = redeem_at_shop(&mut s.f, &v4, T0.plus_ms(1210), T0.plus_ms(1220));
    assert!(matches!(o, Outcome::Accepted { .. }), "{o:?}");
    assert_eq!(unbacked(&mut s.f), 0);
    let bad = proved(
        &mut s.kiosk,
        issue(s.carol, key.clone(), &[400], 4),
        &s.other_card,
    );
    let r = s.f.hub.ingest(&kiosk, vec![bad], T0.plus_ms(1230));
    assert!(
        refused(&r.receipts[0].outcome).contains("does not verify"),
        "{r:?}"
    );
    assert_eq!(unbacked(&mut s.f), 1, "reported when its issue was refused");
    assert_eq!(voucher::held(&mut s.f.hub, 10).unwrap().len(), 2);

    // The kiosk is withdrawn as issuer (its key may have leaked): voucher 2
    // of the batch it recorded before is still backed by Carol's points and
    // paid; a voucher of a batch it never recorded is refused, not held.
    issuers::withdraw(&mut s.f.hub, kiosk, T0.plus_ms(1240)).unwrap();
    let v2 = kiosk_voucher(&s, 1, 2, 300);
    let o = redeem_at_shop(&mut s.f, &v2, T0.plus_ms(1250), T0.plus_ms(1260));
    assert!(matches!(o, Outcome::Accepted { .. }), "{o:?}");
    assert_eq!(payable(&mut s.f), 800);
    let unrecorded = kiosk_voucher(&s, 3, 1, 100);
    let o = redeem_at_shop(&mut s.f, &unrecorded, T0.plus_ms(1270), T0.plus_ms(1280));
    assert!(refused(&o).contains("withdrew"), "{o:?}");
    assert_eq!(voucher::held(&mut s.f.hub, 10).unwrap().len(), 2);

    voucher::expire_due(&mut s.f.hub, T0.plus_ms(2 * DAY)).unwrap();
    assert_eq!(
        unbacked(&mut s.f),
        1,
        "batch 2 reported before its last day"
    );
    let after_expiry = UnixMillis((u64::from(last_day()) + 2) * DAY);
    voucher::expire_due(&mut s.f.hub, after_expiry).unwrap();
    voucher::expire_due(&mut s.f.hub, after_expiry.plus_ms(DAY)).unwrap();
    assert_eq!(unbacked(&mut s.f), 2, "each reported once");
    let held = voucher::held(&mut s.f.hub, 10).unwrap();
    assert_eq!(held.len(), 2);
    assert_eq!(held[0].reported_at, Some(after_expiry), "batch 2");
    assert_eq!(held[1].reported_at, Some(T0.plus_ms(1230)), "batch 4");
    assert_eq!(payable(&mut s.f), 800);
    s.f.hub.check_conservation().unwrap();
}

/// The holder's own history, read with the card's PIN signature.
fn history_of(f: &mut Fixture, card: &TestCard, now: UnixMillis) -> HolderHistory {
    let node = Chain::new(61).id;
    let key = card.cert.card_key().clone();
    let HolderResponse::Challenge(c) =
        f.hub
            .holder(&node, HolderRequest::Challenge { card: key }, now)
    else {
        panic!("no challenge")
    };
    let proof = card.sign_message(
        &HolderBinding {
            challenge: c.clone(),
            action: HolderAction::ReadHistory,
        }
        .signed_message(),
    );
    match f.hub.holder(
        &node,
        HolderRequest::History {
            challenge: c,
            proof,
            max_entries: 100,
        },
        now,
    ) {
        HolderResponse::History(h) => h,
        other => panic!("expected a history, got {other:?}"),
    }
}
