//! Vouchers through the hub's storage interface, on whichever backend
//! `common::init_hub` chose (SQLite, or PostgreSQL when `MYKEY_PG_URL` is
//! set): issue a batch, redeem one voucher twice, cancel the batch. The
//! decisions themselves are unit-tested in `voucher::redeem`; this holds
//! every `VoucherTx` method of both backends to the same answers, and
//! checks the redeemed bitmap facts the shop receives.

mod common;

use common::*;
use mykey_hub::Hub;
use mykey_hub::voucher;
use mykey_sync_proto::session::HubService;
use mykey_sync_proto::wire::Outcome;
use mykey_sync_proto::{FactBody, NodeId, Scope, TxBody, VoucherRedeem};
use mykey_voucher::ExpiryDate;

#[test]
fn a_batch_is_issued_redeemed_once_paid_and_cancelled_on_either_backend() {
    let mut f = Fixture::new();
    let expires = ExpiryDate::from_days(u16::try_from(T0.0 / 86_400_000 + 365).unwrap());
    let issued = voucher::issue(&mut f.hub, &program(), 3, pts(500), expires, T0).unwrap();
    assert_eq!(issued.batch.id, 1);
    assert_eq!(issued.vouchers.len(), 3);
    let second = voucher::issue(&mut f.hub, &program(), 1, pts(100), expires, T0).unwrap();
    assert_eq!(second.batch.id, 2, "batch ids count up");
    assert_eq!(
        voucher::batch(&mut f.hub, 1).unwrap().unwrap(),
        issued.batch,
        "the batch reads back as recorded"
    );

    let take = |f: &mut Fixture, at: u64| {
        f.shop.sign_dated(
            TxBody::RedeemVoucher(VoucherRedeem {
                voucher: issued.vouchers[0].to_bytes().to_vec(),
                merchant: fid("shop-1"),
            }),
            T0.plus_ms(at),
        )
    };
    // The first redemption is paid from the float.
    let first = take(&mut f, 1);
    let r = f.hub.ingest(&f.shop.id, vec![first], T0.plus_ms(5));
    assert!(rejection(&r.receipts[0].outcome).is_none(), "{r:?}");
    // The same voucher again, signed before the hub had the first (offline):
    // an incident, paid within the node's cap, not counted as the batch's.
    let again = take(&mut f, 2);
    let r = f.hub.ingest(&f.shop.id, vec![again], T0.plus_ms(10));
    assert!(rejection(&r.receipts[0].outcome).is_none(), "{r:?}");

    // One bitmap fact, after the first redemption only: index 1 set.
    let shop = f.shop.id;
    assert_eq!(marks(&mut f.hub, &shop), vec![(1, 0, false, vec![0b1])]);

    let batches = voucher::batches(&mut f.hub).unwrap();
    assert_eq!(batches.len(), 2);
    let (b, paid, n) = &batches[0];
    assert_eq!((b.id, paid.get(), *n), (1, 500, 1), "one voucher paid once");
    let (b, paid, n) = &batches[1];
    assert_eq!((b.id, paid.get(), *n), (2, 0, 0));

    // The dashboard's voucher incidents: both signed redemptions, the
    // node, and the payment within the cap; another municipality's staff
    // see none of it.
    {
        use mykey_hub::access::{Role, Scope};
        let admin = f.api_token();
        let other = f.token_for("sapporo", Role::Staff(other_muni()), Scope::Admin);
        let addr = serve(&f);
        let (status, page) = request(addr, "GET", "/vouchers?lang=en", &bearer(&admin), b"");
        assert_eq!(status, 200, "{page}");
        assert_eq!(page.matches("data-serial=\"1-00001\"").count(), 1, "{page}");
        assert!(page.contains("data-verdict=\"paid\""), "{page}");
        assert!(page.contains("paid in full within the cap"), "{page}");
        assert!(
            page.contains(&format!("data-node=\"{}\"", f.shop.id)),
            "{page}"
        );
        let mut signed = 0;
        for row in batches_rows(&mut f) {
            assert!(
                page.contains(&hex_of(&row)),
                "a signed redemption is missing"
            );
            signed += 1;
        }
        assert_eq!(signed, 2);
        let (status, page) = request(addr, "GET", "/vouchers?lang=en", &bearer(&other), b"");
        assert_eq!(status, 200, "{page}");
        assert!(page.contains("No voucher was redeemed twice"), "{page}");
    }

    // Cancelling returns the two unredeemed vouchers' points; once only.
    let back = voucher::cancel(&mut f.hub, 1, T0.plus_ms(20)).unwrap();
    assert_eq!(back.get(), 1_000);
    assert!(voucher::cancel(&mut f.hub, 1, T0.plus_ms(21)).is_err());
    // The cancellation marks the batch's (one) chunk, keeping its bits.
    assert_eq!(
        marks(&mut f.hub, &shop),
        vec![(1, 0, false, vec![0b1]), (1, 0, true, vec![0b1])]
    );
    assert!(
        voucher::batch(&mut f.hub, 1)
            .unwrap()
            .unwrap()
            .cancelled_at
            .is_some()
    );
    f.hub.check_conservation().unwrap();
}

/// The `VoucherMarks` facts `node` receives, in order: (batch, chunk,
/// cancelled, bits).
fn marks(hub: &mut Hub, node: &NodeId) -> Vec<(u32, u8, bool, Vec<u8>)> {
    let id = hub.hub_id();
    let f = hub.received_facts(node, 0, 2000).unwrap();
    f.facts
        .iter()
        .map(|s| s.verify(&id).unwrap().payload().clone())
        .filter_map(|p| match p.body {
            FactBody::VoucherMarks {
                municipality,
                batch,
                chunk,
                cancelled,
                redeemed,
            } => {
                assert_eq!(p.scope, Scope::Municipality(muni()));
                assert_eq!(municipality, muni());
                Some((batch, chunk, cancelled, redeemed.as_bytes().to_vec()))
            }
            _ => None,
        })
        .collect()
}

/// The backdating attack, through the real Hello and ingest on either
/// backend: the shop is connected when the hub pays the first redemption,
/// sets its clock back and signs a copy "before" it, during the same link.
/// Its own time says offline; the hub's link record (the Hello reported an
/// earlier seq) says it was connected, so the incident is not paid.
#[test]
fn a_copy_backdated_by_a_connected_node_is_not_paid() {
    use mykey_sync_proto::wire::Hello;
    let mut f = Fixture::new();
    let expires = ExpiryDate::from_days(u16::try_from(T0.0 / 86_400_000 + 365).unwrap());
    let issued = voucher::issue(&mut f.hub, &program(), 1, pts(500), expires, T0).unwrap();
    let body = || {
        TxBody::RedeemVoucher(VoucherRedeem {
            voucher: issued.vouchers[0].to_bytes().to_vec(),
            merchant: fid("shop-1"),
        })
    };
    let shop = f.shop.id;
    f.hub
        .try_open(
            &Hello {
                node: shop,
                node_time: T0.plus_ms(100),
                last_seq: 0,
                fact_cursor: 0,
                software: "mykey-node/test".into(),
            },
            T0.plus_ms(100),
        )
        .unwrap()
        .unwrap();
    let first = f.shop.sign_dated(body(), T0.plus_ms(200));
    let r = f.hub.ingest(&shop, vec![first], T0.plus_ms(300));
    assert!(rejection(&r.receipts[0].outcome).is_none(), "{r:?}");
    // Dated before the hub had the first (300), signed and pushed at 1000
    // over the link opened at 100 with seq 0.
    let copy = f.shop.sign_dated(body(), T0.plus_ms(250));
    let r = f.hub.ingest(&shop, vec![copy], T0.plus_ms(1000));
    assert!(rejection(&r.receipts[0].outcome).is_none(), "{r:?}");
    let incidents = f.hub.incidents(10).unwrap();
    let twice: Vec<&str> = incidents
        .iter()
        .filter(|i| i.kind.name() == "voucher-redeemed-twice")
        .map(|i| i.detail.as_str())
        .collect();
    assert_eq!(twice.len(), 1, "{incidents:?}");
    assert!(
        twice[0].contains("link records") && twice[0].contains("not paid"),
        "{}",
        twice[0]
    );
    let (_, paid, n) = &voucher::batches(&mut f.hub).unwrap()[0];
    assert_eq!((paid.get(), *n), (500, 1), "paid once, to the first");
    f.hub.check_conservation().unwrap();
}

/// Expiry (issue 17 part 6), on either backend: past the last valid day the
/// unredeemed points go back from the float to the programme, once; the
/// liability report's vouchers fall to zero; a redemption signed in time
/// that reaches the hub later is still paid, from the programme; a cancel
/// after expiry changes nothing.
#[test]
fn expired_vouchers_return_their_points_to_the_programme() {
    const DAY: u64 = 86_400_000;
    let mut f = Fixture::new();
    let budget = |f: &mut Fixture| {
        f.hub
            .programs()
            .unwrap()
            .into_iter()
            .find(|p| p.program.id == program())
            .unwrap()
            .budget
            .get()
    };
    let vouchers =
        |f: &mut Fixture, at: u64| bunkyo(&f.hub.liability_report(at_ms(at)).unwrap()).vouchers;
    // Valid through the day after T0 (JST).
    let expires = ExpiryDate::from_days(u16::try_from(T0.0 / DAY + 1).unwrap());
    let before = budget(&mut f);
    let issued = voucher::issue(&mut f.hub, &program(), 2, pts(500), expires, T0).unwrap();
    assert_eq!(budget(&mut f), before - 1000);
    assert_eq!(vouchers(&mut f, 1), 1000);
    // Taken at the shop in time, offline; it reaches the hub only later.
    let late = f.shop.sign_dated(
        TxBody::RedeemVoucher(VoucherRedeem {
            voucher: issued.vouchers[0].to_bytes().to_vec(),
            merchant: fid("shop-1"),
        }),
        T0.plus_ms(1000),
    );
    // Not yet past the last day: nothing expires.
    assert!(
        voucher::expire_due(&mut f.hub, T0.plus_ms(1000))
            .unwrap()
            .is_empty()
    );
    let done = voucher::expire_due(&mut f.hub, T0.plus_ms(3 * DAY)).unwrap();
    assert_eq!(done.len(), 1);
    assert_eq!((done[0].batch, done[0].back.get()), (1, 1000));
    assert!(
        voucher::expire_due(&mut f.hub, T0.plus_ms(4 * DAY))
            .unwrap()
            .is_empty(),
        "once"
    );
    assert_eq!(budget(&mut f), before);
    assert_eq!(vouchers(&mut f, 3 * DAY + 1), 0);
    assert!(matches!(
        voucher::cancel(&mut f.hub, 1, T0.plus_ms(4 * DAY)),
        Err(voucher::CancelError::Expired(1))
    ));
    let b = voucher::batch(&mut f.hub, 1).unwrap().unwrap();
    assert_eq!(b.expired_at, Some(T0.plus_ms(3 * DAY)));
    assert_eq!(b.cancelled_at, None);

    let r = f.hub.ingest(&f.shop.id, vec![late], T0.plus_ms(5 * DAY));
    assert!(rejection(&r.receipts[0].outcome).is_none(), "{r:?}");
    assert_eq!(budget(&mut f), before - 500, "paid from the programme");
    assert_eq!(vouchers(&mut f, 5 * DAY + 1), 0, "the float stays at zero");
    f.hub.check_conservation().unwrap();
}

/// The node's own offline voucher cap: stored with its policy on either
/// backend, sent to the node as a `NodeVoucherCap` fact, and what bounds
/// its double-redeem incidents' pay in all (here far below its exposure
/// limit): 300 of a first 500-point copy, nothing of a second.
#[test]
fn incidents_are_paid_within_the_nodes_own_voucher_cap() {
    use mykey_hub::NodePolicy;
    use mykey_sync_proto::OpKind;
    let mut f = Fixture::new();
    let shop = f.shop.id;
    f.hub
        .enrol_node(
            shop,
            &fid("shop-1"),
            NodePolicy {
                offline_voucher_cap: pts(300),
                ..policy(&[OpKind::Redeem])
            },
            T0,
        )
        .unwrap();
    assert_eq!(
        f.hub
            .node(&shop)
            .unwrap()
            .unwrap()
            .policy
            .offline_voucher_cap,
        pts(300),
        "the cap reads back from the store"
    );
    let id = f.hub.hub_id();
    let caps: Vec<u64> = f
        .hub
        .received_facts(&shop, 0, 2000)
        .unwrap()
        .facts
        .iter()
        .filter_map(|s| match s.verify(&id).unwrap().payload().body.clone() {
            FactBody::NodeVoucherCap {
                node,
                offline_voucher_cap,
            } if node == shop => Some(offline_voucher_cap.get()),
            _ => None,
        })
        .collect();
    assert_eq!(caps.last(), Some(&300), "the node learns its cap: {caps:?}");

    let expires = ExpiryDate::from_days(u16::try_from(T0.0 / 86_400_000 + 365).unwrap());
    let issued = voucher::issue(&mut f.hub, &program(), 2, pts(500), expires, T0).unwrap();
    // Each voucher taken twice offline, all signed before the hub had any.
    let mut txs = vec![];
    for (i, v) in [0, 0, 1, 1].into_iter().enumerate() {
        txs.push(f.shop.sign_dated(
            TxBody::RedeemVoucher(VoucherRedeem {
                voucher: issued.vouchers[v].to_bytes().to_vec(),
                merchant: fid("shop-1"),
            }),
            T0.plus_ms(1 + i as u64),
        ));
    }
    for (i, tx) in txs.into_iter().enumerate() {
        let r = f.hub.ingest(&shop, vec![tx], T0.plus_ms(100 + i as u64));
        assert!(rejection(&r.receipts[0].outcome).is_none(), "{r:?}");
    }
    let mut paid: Vec<u64> = voucher::incidents::incidents(&mut f.hub, None)
        .unwrap()
        .iter()
        .map(|i| i.again.paid.get())
        .collect();
    paid.sort();
    assert_eq!(
        paid,
        vec![0, 300],
        "the cap bounds the incidents' pay in all"
    );
    f.hub.check_conservation().unwrap();
}

/// Voucher issuers (kiosks) on either backend: numbered from 1, stated to
/// the municipality's nodes as `VoucherIssuer` facts, withdrawn once (a
/// later statement of the same number), never vouched for twice; a
/// kiosk-issued voucher the hub holds no issuing transaction for is refused.
#[test]
fn voucher_issuers_are_vouched_for_stated_and_withdrawn_on_either_backend() {
    use mykey_hub::voucher::issuers::{self, IssuerError};
    let mut f = Fixture::new();
    let (kiosk, shop) = (f.centre.id, f.shop.id);
    assert_eq!(issuers::vouch(&mut f.hub, kiosk, T0).unwrap(), 1);
    assert!(matches!(
        issuers::vouch(&mut f.hub, kiosk, T0),
        Err(IssuerError::Already { issuer: 1, .. })
    ));
    assert_eq!(issuers::vouch(&mut f.hub, f.library.id, T0).unwrap(), 2);
    let stranger = NodeId::from_bytes(
        ed25519_dalek::SigningKey::from_bytes(&[77; 32])
            .verifying_key()
            .to_bytes(),
    )
    .unwrap();
    assert!(matches!(
        issuers::vouch(&mut f.hub, stranger, T0),
        Err(IssuerError::NotEnrolled(_))
    ));
    assert_eq!(
        issuers::withdraw(&mut f.hub, kiosk, T0.plus_ms(5)).unwrap(),
        1
    );
    assert!(matches!(
        issuers::withdraw(&mut f.hub, kiosk, T0.plus_ms(6)),
        Err(IssuerError::NotIssuer(_))
    ));
    assert!(matches!(
        issuers::vouch(&mut f.hub, kiosk, T0.plus_ms(7)),
        Err(IssuerError::WasWithdrawn { issuer: 1, .. })
    ));
    let rows = issuers::list(&mut f.hub).unwrap();
    let got: Vec<(u16, bool)> = rows
        .iter()
        .map(|r| (r.issuer, r.withdrawn_at.is_some()))
        .collect();
    assert_eq!(got, vec![(1, true), (2, false)]);
    assert_eq!(rows[0].node, kiosk);
    assert_eq!(rows[0].withdrawn_at, Some(T0.plus_ms(5)));

    // What the shop receives: issuer 1 vouched for, then withdrawn; issuer 2.
    let id = f.hub.hub_id();
    let stated: Vec<(u16, bool)> = f
        .hub
        .received_facts(&shop, 0, 2000)
        .unwrap()
        .facts
        .iter()
        .filter_map(|s| match s.verify(&id).unwrap().payload().body.clone() {
            FactBody::VoucherIssuer {
                issuer, withdrawn, ..
            } => Some((issuer, withdrawn)),
            _ => None,
        })
        .collect();
    assert_eq!(stated, vec![(1, false), (2, false), (1, true)]);

    // Issuer 2's voucher verifies at the hub, but no issuing transaction
    // backs it yet: held, nothing paid.
    let v = mykey_voucher::VoucherBody {
        key_hint: 0,
        municipality: muni(),
        serial: mykey_voucher::Serial {
            batch: mykey_voucher::Issuer::node_batch(2, 1).unwrap(),
            index: 1,
        },
        points: 300,
        expires: ExpiryDate::from_days(u16::try_from(T0.0 / 86_400_000 + 365).unwrap()),
    }
    .sign(&f.library.key);
    let tx = f.shop.sign_dated(
        TxBody::RedeemVoucher(VoucherRedeem {
            voucher: v.to_bytes().to_vec(),
            merchant: fid("shop-1"),
        }),
        T0.plus_ms(10),
    );
    let before = f.hub.transfers(0, u32::MAX).unwrap().len();
    let r = f.hub.ingest(&shop, vec![tx], T0.plus_ms(20));
    assert!(
        matches!(r.receipts[0].outcome, Outcome::Accepted { .. }),
        "{r:?}"
    );
    assert_eq!(f.hub.transfers(0, u32::MAX).unwrap().len(), before);
    let held = voucher::held(&mut f.hub, 10).unwrap();
    assert_eq!((held.len(), held[0].batch), (1, v.body.serial.batch));
    f.hub.check_conservation().unwrap();
}

fn at_ms(ms: u64) -> mykey_sync_proto::UnixMillis {
    T0.plus_ms(ms)
}

/// The signed bytes of batch 1's redemptions, in hub order.
fn batches_rows(f: &mut Fixture) -> Vec<Vec<u8>> {
    let mut out = vec![];
    for i in voucher::incidents::incidents(&mut f.hub, None).unwrap() {
        out.extend(i.first.map(|r| r.signed));
        out.push(i.again.signed);
    }
    out
}

fn hex_of(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
