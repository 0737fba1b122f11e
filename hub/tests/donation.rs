//! Donation programmes (issue 19 part 5): a municipality declares one with
//! the recipient's bank account; a holder donates at a kiosk with the
//! card's PIN signature (the hub decides from what it verifies, and refuses
//! forged, replayed, closed, unknown and overdrawn donations changing
//! nothing); an operator exchanges points straight into one over the real
//! HTTP API; settlement pays the recipient in a Zengin file, the holder's
//! history shows each donation, the liability report shows what is unpaid,
//! and the ledger's conservation check passes throughout.

mod common;

use common::pki::{Pki, TestCard};
use common::*;
use ed25519_dalek::SigningKey;
use mykey_hub::donation::{Declaration, DonationError};
use mykey_hub::economy::exchange::{
    ExchangeOperator, ExchangeRequest, OperatorId, Rate, SignedExchange,
};
use mykey_hub::economy::lots::ExpiryPolicy;
use mykey_hub::economy::settlement::StatementKind;
use mykey_hub::economy::zengin::BuiltinBanks;
use mykey_hub::{FacilityKind, LedgerAccount};
use mykey_sync_proto::holder::{
    HolderAction, HolderBinding, HolderHistory, HolderRequest, HolderResponse, Movement,
};
use mykey_sync_proto::session::HubService;
use mykey_sync_proto::wire::{Outcome, RejectReason};
use mykey_sync_proto::{
    AccountId, CardKey, Donate, DonationBinding, MyKeyId, NodeId, OpKind, PointOperator, ProgramId,
    SignedTx, TxBody, UnixMillis,
};

fn relief() -> ProgramId {
    ProgramId::parse("noto-relief").unwrap()
}

fn declaration(id: ProgramId) -> Declaration {
    Declaration {
        id,
        municipality: muni(),
        recipient: "能登町 災害義援金".into(),
        account: account("0001", "004", 2_468_024, "ﾉﾄﾁﾖｳ"),
        customer_code: 17,
    }
}

struct Setup {
    f: Fixture,
    kiosk: Chain,
    carol: AccountId,
    carol_card: TestCard,
    other_card: TestCard,
    _dir: tempfile::TempDir,
}

/// The fixture, a kiosk node at the town hall, Carol registered with her
/// certificate and 5000 pt, and the relief programme declared.
fn setup() -> Setup {
    let dir = tempfile::tempdir().unwrap();
    let pki = Pki::new(dir.path());
    let carol_card = pki.card("0C0FFEE001");
    let other_card = pki.card("0C0FFEE002");
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
    f.hub
        .declare_donation(&declaration(relief()), &BuiltinBanks, T0)
        .unwrap();
    Setup {
        f,
        kiosk,
        carol,
        carol_card,
        other_card,
        _dir: dir,
    }
}

fn donate(account: AccountId, card: CardKey, points: u64, programme: ProgramId) -> Donate {
    Donate {
        card,
        account,
        municipality: muni(),
        points: pts(points),
        programme,
        // Replaced by `proved`.
        card_proof: mykey_sync_proto::CardSignature::new(vec![0; 256]).unwrap(),
    }
}

/// Signs the kiosk's next donation with `signer`'s proof over `bound`
/// (normally the donation's own binding).
fn proved(
    kiosk: &mut Chain,
    d: Donate,
    signer: &TestCard,
    bound: Option<DonationBinding>,
) -> SignedTx {
    let created_at = T0.plus_ms(kiosk.seq + 1);
    let own = DonationBinding::new(kiosk.id, kiosk.seq + 1, created_at, &d);
    let proof = signer.sign_message(&bound.as_ref().unwrap_or(&own).signed_message());
    kiosk.sign(TxBody::Donate(Donate {
        card_proof: proof,
        ..d
    }))
}

fn wallet(f: &mut Fixture, a: AccountId) -> u64 {
    f.hub.balance(a, muni()).unwrap().balance.get()
}

fn donated(f: &mut Fixture, a: AccountId) -> u64 {
    f.hub
        .transfers(0, u32::MAX)
        .unwrap()
        .iter()
        .filter(|t| t.credit == LedgerAccount::Donated(a, relief(), muni()))
        .map(|t| t.amount.get())
        .sum()
}

/// The holder's own history, read with the card's PIN signature.
fn history_of(f: &mut Fixture, card: &TestCard, now: UnixMillis) -> HolderHistory {
    let node =
        NodeId::from_bytes(SigningKey::from_bytes(&[61; 32]).verifying_key().to_bytes()).unwrap();
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

fn refused(o: &Outcome) -> String {
    match o {
        Outcome::Rejected(r) => r.to_string(),
        other => panic!("expected a rejection, got {other:?}"),
    }
}

#[test]
fn declaring_checks_everything_and_changes_nothing_when_refused() {
    let mut f = Fixture::new();
    let cases: Vec<(Declaration, &str)> = vec![
        (
            Declaration {
                municipality: mykey_sync_proto::MunicipalityCode::parse("011002").unwrap(),
                ..declaration(relief())
            },
            "municipality 011002 is not registered",
        ),
        (
            Declaration {
                recipient: "  ".into(),
                ..declaration(relief())
            },
            "must be 1 to 80 characters",
        ),
        (
            Declaration {
                recipient: "a\nb".into(),
                ..declaration(relief())
            },
            "without control characters",
        ),
        (
            Declaration {
                account: account("9999", "004", 1, "ﾉﾄﾁﾖｳ"),
                ..declaration(relief())
            },
            "cannot be used in a payout file",
        ),
        (declaration(program()), "is a grant programme's id"),
    ];
    for (d, says) in cases {
        let e = f.hub.declare_donation(&d, &BuiltinBanks, T0).unwrap_err();
        assert!(e.to_string().contains(says), "{e} (wanted {says:?})");
        assert!(f.hub.donation_programs().unwrap().is_empty(), "{e}");
    }
    f.hub
        .declare_donation(&declaration(relief()), &BuiltinBanks, T0)
        .unwrap();
    let again = f
        .hub
        .declare_donation(&declaration(relief()), &BuiltinBanks, T0)
        .unwrap_err();
    assert!(matches!(again, DonationError::Exists(_)), "{again}");
    f.hub.close_donation(&relief(), T0).unwrap();
    let closed = f.hub.close_donation(&relief(), T0).unwrap_err();
    assert!(matches!(closed, DonationError::Closed(_)), "{closed}");
    let all = f.hub.donation_programs().unwrap();
    assert_eq!(all.len(), 1);
    assert_eq!(all[0].program.recipient, "能登町 災害義援金");
    assert!(all[0].program.closed_at.is_some());
}

/// The CLI: declare with the recipient's bank account, errors that say
/// what to do, list, close.
#[test]
fn the_cli_declares_lists_and_closes() {
    let f = Fixture::new();
    let data = f.dir.path().join("hub");
    let declare = |id: &str, m: &str, bank: &str| {
        vec![
            "donation".to_owned(),
            "declare".into(),
            "--programme".into(),
            id.into(),
            "--municipality".into(),
            m.into(),
            "--recipient".into(),
            "能登町 災害義援金".into(),
            "--bank".into(),
            bank.into(),
            "--branch".into(),
            "004".into(),
            "--number".into(),
            "2468024".into(),
            "--holder".into(),
            "ﾉﾄﾁﾖｳ".into(),
        ]
    };
    fn args(v: &[String]) -> Vec<&str> {
        v.iter().map(String::as_str).collect()
    }
    let e = fails(&data, &args(&declare("noto-relief", "011002", "0001")));
    assert!(e.contains("municipality 011002 is not registered"), "{e}");
    let e = fails(&data, &args(&declare("noto-relief", "131059", "9999")));
    assert!(e.contains("cannot be used in a payout file"), "{e}");
    let e = fails(&data, &args(&declare("Noto Relief", "131059", "0001")));
    assert!(e.contains("programme id"), "{e}");
    assert!(ok(&data, &["donation", "list"]).contains("no donation programmes"));
    let out = ok(&data, &args(&declare("noto-relief", "131059", "0001")));
    assert!(
        out.contains("donation programme noto-relief declared"),
        "{out}"
    );
    let list = ok(&data, &["donation", "list"]);
    assert!(
        list.contains("noto-relief") && list.contains("open"),
        "{list}"
    );
    let payee = ok(&data, &["payee", "show", "--donation", "noto-relief"]);
    assert!(payee.contains("2468024"), "{payee}");
    ok(&data, &["donation", "close", "--programme", "noto-relief"]);
    assert!(ok(&data, &["donation", "list"]).contains("closed"));
    let e = fails(&data, &["donation", "close", "--programme", "noto-relief"]);
    assert!(e.contains("closed already"), "{e}");
}

#[test]
fn a_kiosk_donation_is_decided_from_what_the_hub_verifies() {
    let Setup {
        mut f,
        mut kiosk,
        carol,
        carol_card,
        other_card,
        ..
    } = setup();
    let id = kiosk.id;
    let key = carol_card.cert.card_key().clone();

    // A donation with the card's PIN signature over exactly it.
    let good = proved(
        &mut kiosk,
        donate(carol, key.clone(), 1200, relief()),
        &carol_card,
        None,
    );
    let r = f.hub.ingest(&id, vec![good.clone()], T0);
    assert!(
        matches!(r.receipts[0].outcome, Outcome::Accepted { .. }),
        "{r:?}"
    );
    assert_eq!(
        (wallet(&mut f, carol), donated(&mut f, carol)),
        (3800, 1200)
    );
    f.hub.check_conservation().unwrap();

    // Each hostile donation is refused and moves nothing.
    let nodes = [id];
    let before = snapshot(&mut f.hub, &nodes);
    let replayed_proof = DonationBinding::of(good.verify().unwrap().payload()).unwrap();
    let hall_2 = {
        let mut d = donate(carol, key.clone(), 100, relief());
        d.municipality = other_muni();
        d
    };
    let cases: Vec<(SignedTx, &str)> = vec![
        // Another card's signature.
        (
            proved(
                &mut kiosk,
                donate(carol, key.clone(), 500, relief()),
                &other_card,
                None,
            ),
            "does not verify",
        ),
        // The accepted donation's proof under a new seq (a replay).
        (
            proved(
                &mut kiosk,
                donate(carol, key.clone(), 1200, relief()),
                &carol_card,
                Some(replayed_proof),
            ),
            "does not verify",
        ),
        // A proof for 100 on a donation of 3000.
        (
            {
                let small = DonationBinding::new(
                    kiosk.id,
                    kiosk.seq + 1,
                    T0.plus_ms(kiosk.seq + 1),
                    &donate(carol, key.clone(), 100, relief()),
                );
                proved(
                    &mut kiosk,
                    donate(carol, key.clone(), 3000, relief()),
                    &carol_card,
                    Some(small),
                )
            },
            "does not verify",
        ),
        // No such programme.
        (
            proved(
                &mut kiosk,
                donate(
                    carol,
                    key.clone(),
                    100,
                    ProgramId::parse("no-such").unwrap(),
                ),
                &carol_card,
                None,
            ),
            "unknown programme no-such",
        ),
        // A grant programme is not a donation programme.
        (
            proved(
                &mut kiosk,
                donate(carol, key.clone(), 100, program()),
                &carol_card,
                None,
            ),
            "unknown programme",
        ),
        // More than the balance (3800 left).
        (
            proved(
                &mut kiosk,
                donate(carol, key.clone(), 3801, relief()),
                &carol_card,
                None,
            ),
            "beyond the confirmed balance 3800",
        ),
        // Another town's points.
        (
            proved(&mut kiosk, hall_2, &carol_card, None),
            "not served by this node",
        ),
        // Someone else's account with Carol's card.
        (
            proved(
                &mut kiosk,
                donate(f.alice, key.clone(), 10, relief()),
                &carol_card,
                None,
            ),
            "does not belong to account",
        ),
    ];
    let n = cases.len();
    for (tx, says) in cases {
        let r = f.hub.ingest(&id, vec![tx], T0);
        let why = refused(&r.receipts[0].outcome);
        assert!(why.contains(says), "{why} (wanted {says:?})");
    }
    let after = snapshot(&mut f.hub, &nodes);
    assert_eq!(
        (after.totals, after.n_transfers),
        (before.totals, before.n_transfers)
    );
    assert_eq!(
        after.heads[0].1.processed_seq,
        before.heads[0].1.processed_seq + n as u64
    );

    // The exact accepted transaction again: the hub's stored answer, once.
    let r = f.hub.ingest(&id, vec![good], T0);
    assert!(!matches!(
        r.receipts.first().map(|x| &x.outcome),
        Some(Outcome::Rejected(_))
    ));
    assert_eq!(donated(&mut f, carol), 1200);

    // A node's signature forged: chain-level, nothing consumed.
    let (seq, prev) = (kiosk.seq, kiosk.prev);
    let signed = proved(
        &mut kiosk,
        donate(carol, key.clone(), 100, relief()),
        &carol_card,
        None,
    );
    let mut sig = signed.signature_bytes();
    sig[5] ^= 0x40;
    let forged = SignedTx::from_raw_parts(signed.payload_bytes().to_vec(), sig);
    (kiosk.seq, kiosk.prev) = (seq, prev);
    let r = f.hub.ingest(&id, vec![forged], T0);
    assert_eq!(
        r.receipts[0].outcome,
        Outcome::Rejected(RejectReason::BadSignature)
    );

    // A closed programme takes nothing more.
    f.hub.close_donation(&relief(), T0).unwrap();
    let late = proved(
        &mut kiosk,
        donate(carol, key, 100, relief()),
        &carol_card,
        None,
    );
    let r = f.hub.ingest(&id, vec![late], T0);
    assert!(refused(&r.receipts[0].outcome).contains("is closed"));
    assert_eq!(
        (wallet(&mut f, carol), donated(&mut f, carol)),
        (3800, 1200)
    );
    f.hub.check_conservation().unwrap();

    // The holder sees it in their own history: programme, no operator.
    let h = history_of(&mut f, &carol_card, T0);
    let d: Vec<_> = h
        .entries
        .iter()
        .filter(|e| matches!(e.movement, Movement::Donation { .. }))
        .collect();
    assert_eq!(d.len(), 1, "{:?}", h.entries);
    assert_eq!(d[0].points, pts(1200));
    assert_eq!(
        d[0].movement,
        Movement::Donation {
            programme: relief(),
            operator: None
        }
    );
}

fn enrol_operator(f: &mut Fixture) -> (OperatorId, SigningKey) {
    let key = SigningKey::from_bytes(&[7; 32]);
    let op = OperatorId::parse("air-y").unwrap();
    f.hub
        .upsert_exchange_operator(
            &ExchangeOperator {
                id: op.clone(),
                name: "Air Y".into(),
                public_key: key.verifying_key().to_bytes(),
                rate: Rate::new(1, 1).unwrap(),
                // Held for a week if kept: a donation is given at once.
                holding_days: 7,
                expiry: ExpiryPolicy::Never,
            },
            T0,
        )
        .unwrap();
    f.hub
        .allow_exchange(&op, muni(), pts(1_000_000), T0)
        .unwrap();
    (op, key)
}

fn post_exchange(
    addr: std::net::SocketAddr,
    op: &OperatorId,
    key: &SigningKey,
    id: &str,
    donate_to: Option<&str>,
) -> (u16, serde_json::Value) {
    let req = ExchangeRequest {
        request_id: id.into(),
        my_key_id: "Carol03".into(),
        operator_points: 700,
        municipality: None,
        // Whole seconds, so a replay in the same test sends the same bytes.
        requested_at: mykey_hub::net::unix_now().0 / 60_000 * 60_000,
        donate_to: donate_to.map(str::to_owned),
    };
    let s = SignedExchange::sign(op, &req, key);
    let headers = vec![
        ("X-MyKey-Operator", s.operator.to_string()),
        ("X-MyKey-Signature", hex::encode(s.signature)),
    ];
    let (status, body) = request(addr, "POST", "/operator/v1/exchange", &headers, &s.body);
    (
        status,
        serde_json::from_str(&body).unwrap_or(serde_json::Value::Null),
    )
}

/// An operator exchanges straight into the programme through the real API;
/// a kiosk donation beside it; settlement pays the recipient both in the
/// donations Zengin file, the liability report shows them unpaid until then,
/// and the holder's history shows the exchange as a donation via the operator.
#[test]
fn exchanged_and_kiosk_donations_reach_the_recipients_payout_file() {
    let Setup {
        mut f,
        mut kiosk,
        carol,
        carol_card,
        ..
    } = setup();
    register_payees(&mut f.hub);
    let (op, key) = enrol_operator(&mut f);
    let addr = serve(&f);

    let (status, v) = post_exchange(addr, &op, &key, "gift-1", Some("noto-relief"));
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["donated_to"], "noto-relief");
    assert_eq!(v["regional_points"], 700);
    assert_eq!(v["premium_points"], 0);
    assert_eq!(v["held_balance"], 0, "{v}");
    assert_eq!(v["balance"], 5000, "the wallet is untouched: {v}");
    // A replay answers the stored result and gives nothing twice.
    let (status, v) = post_exchange(addr, &op, &key, "gift-1", Some("noto-relief"));
    assert_eq!((status, v["replayed"].as_bool()), (200, Some(true)), "{v}");
    assert_eq!(donated(&mut f, carol), 700);
    // Refusals say what to do and change nothing.
    let (status, v) = post_exchange(addr, &op, &key, "gift-2", Some("no-such"));
    assert_eq!(status, 422, "{v}");
    assert!(v.to_string().contains("not a donation programme"), "{v}");
    f.hub
        .declare_donation(
            &declaration(ProgramId::parse("old-relief").unwrap()),
            &BuiltinBanks,
            T0,
        )
        .unwrap();
    f.hub
        .close_donation(&ProgramId::parse("old-relief").unwrap(), T0)
        .unwrap();
    let (status, v) = post_exchange(addr, &op, &key, "gift-3", Some("old-relief"));
    assert_eq!(status, 422, "{v}");
    assert!(v.to_string().contains("is closed"), "{v}");
    assert_eq!((wallet(&mut f, carol), donated(&mut f, carol)), (5000, 700));

    let id = kiosk.id;
    let card = carol_card.cert.card_key().clone();
    let tx = proved(
        &mut kiosk,
        donate(carol, card, 300, relief()),
        &carol_card,
        None,
    );
    let r = f.hub.ingest(&id, vec![tx], T0);
    assert!(
        matches!(r.receipts[0].outcome, Outcome::Accepted { .. }),
        "{r:?}"
    );
    f.hub.check_conservation().unwrap();

    let now = mykey_hub::net::unix_now();
    let h = history_of(&mut f, &carol_card, now);
    let via: Vec<_> = h
        .entries
        .iter()
        .filter_map(|e| match &e.movement {
            Movement::Donation { operator, .. } => Some((e.points.get(), operator.clone())),
            _ => None,
        })
        .collect();
    assert_eq!(
        via,
        vec![
            (300, None),
            (700, Some(PointOperator::parse("air-y").unwrap()))
        ]
    );

    let report = f.hub.liability_report(now).unwrap();
    assert_eq!(bunkyo(&report).donations_unpaid, 1000);
    assert!(
        report
            .to_csv()
            .contains("131059,donations-unpaid,total,,1000,1000")
    );

    let out = f.dir.path().join("out");
    let run = f.hub.settle(&out, &BuiltinBanks, now, true).unwrap();
    let paid: u64 = run
        .closed
        .iter()
        .flat_map(|c| &c.statements)
        .filter(|s| s.kind == StatementKind::DonationPayout && s.party == "noto-relief")
        .map(|s| s.yen)
        .sum();
    assert_eq!(paid, 1000);
    let file = run
        .files
        .iter()
        .find(|w| {
            w.path
                .file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with("donations-131059-")
        })
        .expect("a donations payout file");
    let bytes = std::fs::read(&file.path).unwrap();
    // Zengin data records are 120 bytes and a CRLF; the recipient's names
    // its account number (7 digits) and the amount (10 digits).
    let records: Vec<&[u8]> = bytes.chunks(122).filter(|r| r[0] == b'2').collect();
    assert_eq!(records.len(), 1);
    let rec = String::from_utf8_lossy(records[0]);
    assert!(rec.contains("2468024"), "{rec}");
    assert!(rec.contains("0000001000"), "{rec}");
    let report = f.hub.liability_report(now.plus_ms(1)).unwrap();
    assert_eq!(bunkyo(&report).donations_unpaid, 0);
    let line = f.hub.donation_programs().unwrap();
    let relief_line = line.iter().find(|l| l.program.id == relief()).unwrap();
    assert_eq!((relief_line.donated, relief_line.paid), (1000, 1000));
    f.hub.check_conservation().unwrap();
}
