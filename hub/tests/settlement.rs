//! The points economy and settlement (issue 6): exchanges, premiums,
//! holding, lots and expiry, settlement periods, Zengin files, liabilities.
#![allow(missing_docs)]

mod common;

use common::*;
use ed25519_dalek::SigningKey;
use mykey_hub::LedgerAccount;
use mykey_hub::economy::calendar::Date;
use mykey_hub::economy::exchange::{
    Campaign, ExchangeError, ExchangeOperator, ExchangeRequest, OperatorId, Rate, SignedExchange,
};
use mykey_hub::economy::lots::ExpiryPolicy;
use mykey_hub::economy::settlement::StatementKind;
use mykey_hub::economy::zengin::{
    BankAccount, BuiltinBanks, Payment, Remitter, ZenginError, write_transfer_file,
};
use mykey_hub::store::economy::Party;
use mykey_sync_proto::session::HubService;
use mykey_sync_proto::{MunicipalityCode, UnixMillis};
use proptest::prelude::*;

const DAY: u64 = 86_400_000;

fn op_key() -> SigningKey {
    SigningKey::from_bytes(&[42; 32])
}
fn op_id() -> OperatorId {
    OperatorId::parse("card-x").unwrap()
}
fn enrol_operator(f: &mut Fixture, holding_days: u32, expiry: ExpiryPolicy) {
    f.hub
        .upsert_exchange_operator(
            &ExchangeOperator {
                id: op_id(),
                name: "Card X".into(),
                public_key: op_key().verifying_key().to_bytes(),
                rate: Rate::new(1, 2).unwrap(),
                holding_days,
                expiry,
            },
            T0,
        )
        .unwrap();
    for m in [muni(), other_muni()] {
        f.hub
            .allow_exchange(&op_id(), m, pts(1_000_000_000), T0)
            .unwrap();
    }
}
fn request(id: &str, who: &str, points: u64) -> SignedExchange {
    request_at(id, who, points, T0)
}
/// A request stamped `at` (the hub takes requests within a day of its clock).
fn request_at(id: &str, who: &str, points: u64, at: UnixMillis) -> SignedExchange {
    SignedExchange::sign(
        &op_id(),
        &ExchangeRequest {
            request_id: id.into(),
            my_key_id: who.into(),
            operator_points: points,
            municipality: None,
            requested_at: at.0,
            donate_to: None,
        },
        &op_key(),
    )
}
fn wallet(hub: &mut mykey_hub::Hub, who: mykey_sync_proto::AccountId) -> u64 {
    hub.balance(who, muni()).unwrap().balance.get()
}

#[test]
fn exchange_applies_rate_and_replays_idempotently() {
    let mut f = Fixture::new();
    enrol_operator(&mut f, 0, ExpiryPolicy::Never);
    let r = f.hub.exchange(&request("r1", "alice01", 1000), T0).unwrap();
    assert_eq!((r.record.regional.get(), r.replayed), (500, false));
    assert_eq!(wallet(&mut f.hub, f.alice), 500);
    let again = f
        .hub
        .exchange(&request("r1", "alice01", 1000), T0.plus_ms(5))
        .unwrap();
    assert!(again.replayed);
    assert_eq!(again.record, r.record);
    assert_eq!(wallet(&mut f.hub, f.alice), 500, "a replay changes nothing");
    // The same id with other content is refused.
    let e = f
        .hub
        .exchange(&request("r1", "alice01", 2000), T0)
        .unwrap_err();
    assert!(matches!(e, ExchangeError::Conflict(_)), "{e}");
    // A forged signature is refused.
    let mut forged = request("r2", "alice01", 1000);
    forged.body = serde_json::to_vec(&ExchangeRequest {
        request_id: "r2".into(),
        my_key_id: "alice01".into(),
        operator_points: 9_000_000,
        municipality: None,
        requested_at: T0.0,
        donate_to: None,
    })
    .unwrap();
    assert!(matches!(
        f.hub.exchange(&forged, T0),
        Err(ExchangeError::BadSignature(_))
    ));
    f.hub.check_conservation().unwrap();
}

#[test]
fn one_way_no_transfer_ever_credits_an_operator() {
    let mut f = Fixture::new();
    enrol_operator(&mut f, 0, ExpiryPolicy::Days { days: 30 });
    f.hub.exchange(&request("r1", "Alice01", 4000), T0).unwrap();
    f.hub.ingest(
        &f.shop.id.clone(),
        vec![f.shop.sign(redeem(f.alice, 1, 300))],
        T0.plus_ms(10),
    );
    f.hub.run_expiry(T0.plus_ms(40 * DAY)).unwrap();
    for t in f.hub.transfers(0, 10_000).unwrap() {
        assert!(
            !matches!(t.credit, LedgerAccount::OperatorReceivable(..)),
            "regional points went back to an operator: {t:?}"
        );
    }
    // The API has no reverse route: the operator router has the exchange
    // verb only, and no route anywhere names a way back.
    let src = include_str!("../src/economy/http.rs");
    let operator_router = &src[src.find("pub fn router").unwrap()..src.find("fn error").unwrap()];
    assert_eq!(operator_router.matches(".route(").count(), 1);
    for path in src
        .split(".route(\"")
        .skip(1)
        .map(|r| r.split('"').next().unwrap())
    {
        for word in ["refund", "reverse", "back", "withdraw", "return", "cash"] {
            assert!(!path.contains(word), "{path}");
        }
    }
}

#[test]
fn premium_is_capped_per_holder_and_funded_by_the_municipality() {
    let mut f = Fixture::new();
    enrol_operator(&mut f, 0, ExpiryPolicy::Never);
    f.hub
        .add_campaign(
            &Campaign {
                id: "festival".into(),
                municipality: muni(),
                operator: None,
                percent: 20,
                starts_at: T0,
                ends_at: T0.plus_ms(7 * DAY),
                cap_per_account: pts(150),
            },
            T0,
        )
        .unwrap();
    let r1 = f.hub.exchange(&request("a", "Alice01", 1000), T0).unwrap();
    assert_eq!(r1.record.premium.get(), 100);
    let r2 = f
        .hub
        .exchange(&request("b", "Alice01", 1000), T0.plus_ms(1))
        .unwrap();
    assert_eq!(r2.record.premium.get(), 50, "capped at 150 per holder");
    let r3 = f
        .hub
        .exchange(&request("c", "Alice01", 1000), T0.plus_ms(2))
        .unwrap();
    assert_eq!(r3.record.premium.get(), 0);
    let r4 = f
        .hub
        .exchange(&request("d", "Bob02", 1000), T0.plus_ms(3))
        .unwrap();
    assert_eq!(r4.record.premium.get(), 100, "the cap is per holder");
    let late = f
        .hub
        .exchange(
            &request_at("e", "Bob02", 1000, T0.plus_ms(8 * DAY)),
            T0.plus_ms(8 * DAY),
        )
        .unwrap();
    assert_eq!(late.record.premium.get(), 0, "outside the window");
    assert_eq!(wallet(&mut f.hub, f.alice), 1650);
    let funding = f.hub.transfers(0, 1000).unwrap().into_iter().filter(|t| {
        t.kind == mykey_hub::TransferKind::Premium
            && t.debit == LedgerAccount::MunicipalityFunding(muni())
    });
    assert_eq!(funding.map(|t| t.amount.get()).sum::<u64>(), 250);
    f.hub.check_conservation().unwrap();
}

#[test]
fn holding_period_keeps_points_unspendable_until_release() {
    let mut f = Fixture::new();
    enrol_operator(&mut f, 3, ExpiryPolicy::Never);
    let r = f.hub.exchange(&request("h", "Alice01", 1000), T0).unwrap();
    assert_eq!(r.record.available_at, T0.plus_ms(3 * DAY));
    assert_eq!(
        wallet(&mut f.hub, f.alice),
        0,
        "held points are not spendable"
    );
    f.hub.check_conservation().unwrap();
    assert_eq!(f.hub.release_held(T0.plus_ms(3 * DAY - 1)).unwrap(), 0);
    assert_eq!(f.hub.release_held(T0.plus_ms(3 * DAY)).unwrap(), 1);
    assert_eq!(wallet(&mut f.hub, f.alice), 500);
    assert_eq!(
        f.hub.release_held(T0.plus_ms(4 * DAY)).unwrap(),
        0,
        "released once"
    );
    f.hub.check_conservation().unwrap();
}

#[test]
fn spending_takes_the_earliest_expiry_first_and_expiry_moves_the_rest() {
    let mut f = Fixture::new();
    // Operator points last 30 days; programme grants to the fiscal year end.
    enrol_operator(&mut f, 0, ExpiryPolicy::Days { days: 30 });
    f.hub
        .set_program_expiry(&program(), ExpiryPolicy::FiscalYearEnd { years: 0 })
        .unwrap();
    f.hub
        .admin_grant(f.alice, &program(), pts(400), T0)
        .unwrap();
    f.hub
        .exchange(&request("x", "Alice01", 600), T0.plus_ms(1))
        .unwrap(); // 300, expires T0+30d
    // A spend of 200 takes the exchanged lot (earlier expiry), not the grant.
    f.hub.ingest(
        &f.shop.id.clone(),
        vec![f.shop.sign(redeem(f.alice, 1, 200))],
        T0.plus_ms(2),
    );
    let lots = f.hub.lots_of(f.alice, muni()).unwrap();
    assert_eq!(
        lots.iter().map(|l| l.remaining).collect::<Vec<_>>(),
        vec![100, 400]
    );
    let soon = f
        .hub
        .upcoming_expiries(f.alice, muni(), T0.plus_ms(31 * DAY))
        .unwrap();
    assert_eq!(soon, vec![(T0.plus_ms(1 + 30 * DAY), 100)]);
    let run = f.hub.run_expiry(T0.plus_ms(30 * DAY + 1)).unwrap();
    assert_eq!((run.n_lots, run.points), (1, 100));
    assert_eq!(wallet(&mut f.hub, f.alice), 400);
    // The grant expires at the end of the fiscal year (31 March 2026, T0 is June 2025).
    let fy_end = Date::new(2026, 3, 31).unwrap().end();
    assert_eq!(
        f.hub.run_expiry(UnixMillis(fy_end.0 - 1)).unwrap().points,
        0
    );
    assert_eq!(f.hub.run_expiry(fy_end).unwrap().points, 400);
    assert_eq!(wallet(&mut f.hub, f.alice), 0);
    let report = f.hub.check_conservation().unwrap();
    assert_eq!(
        report.municipalities.iter().map(|m| m.expired).sum::<u64>(),
        500
    );
}

fn month_start(y: i32, m: u32) -> UnixMillis {
    Date::new(y, m, 1).unwrap().start()
}

#[test]
fn closed_periods_never_change_and_late_offline_spends_land_in_the_open_period() {
    let mut f = Fixture::new();
    enrol_operator(&mut f, 0, ExpiryPolicy::Never);
    let june = T0; // 2025-06-15
    f.hub
        .exchange(&request("j", "Alice01", 2000), june)
        .unwrap();
    f.hub.ingest(
        &f.shop.id.clone(),
        vec![f.shop.sign(redeem(f.alice, 1, 300))],
        june.plus_ms(1),
    );
    // Signed offline in June, but it reaches the hub only in July.
    let late = f.shop.sign(redeem(f.alice, 1, 50));
    let closed = f.hub.close_periods(muni(), month_start(2025, 7)).unwrap();
    assert_eq!(closed.len(), 1);
    let june_statements = closed[0].statements.clone();
    let payout = |s: &[mykey_hub::economy::settlement::Statement]| {
        s.iter()
            .find(|l| l.kind == StatementKind::MerchantPayout)
            .map(|l| l.yen)
    };
    assert_eq!(payout(&june_statements), Some(300));
    let invoice = june_statements
        .iter()
        .find(|l| l.kind == StatementKind::OperatorInvoice)
        .unwrap();
    assert_eq!(
        (invoice.party.as_str(), invoice.points, invoice.yen),
        ("card-x", 1000, 1000)
    );
    let july = month_start(2025, 7).plus_ms(DAY);
    f.hub.ingest(&f.shop.id.clone(), vec![late], july);
    let t = f
        .hub
        .transfers(0, 1000)
        .unwrap()
        .into_iter()
        .last()
        .unwrap();
    assert_eq!(
        (t.hub_time, t.node_time),
        (july, Some(T0.plus_ms(2))),
        "both timestamps kept"
    );
    // Closing again does not touch June; July closes with the late spend.
    assert!(f.hub.close_periods(muni(), july).unwrap().is_empty());
    let all = f.hub.closed_periods(muni()).unwrap();
    assert_eq!(all[0].statements, june_statements);
    let july_closed = f.hub.close_periods(muni(), month_start(2025, 8)).unwrap();
    assert_eq!(payout(&july_closed[0].statements), Some(50));
    assert_eq!(
        f.hub.closed_periods(muni()).unwrap()[0].statements,
        june_statements
    );
    // The database refuses edits of closed periods.
    assert!(f.raw_execute("UPDATE statements SET yen = 1").is_err());
    assert!(f.raw_execute("DELETE FROM periods").is_err());
}

#[test]
fn twice_monthly_cycle() {
    let mut f = Fixture::new();
    f.hub
        .set_settlement_cycle(muni(), mykey_hub::economy::settlement::Cycle::TwiceMonthly)
        .unwrap();
    f.hub.admin_grant(f.alice, &program(), pts(10), T0).unwrap();
    let closed = f.hub.close_periods(muni(), month_start(2025, 7)).unwrap();
    let starts: Vec<String> = closed
        .iter()
        .map(|c| Date::of(c.period.starts_at).to_string())
        .collect();
    // The ledger starts 2025-06-16 JST (T0): the second half of June.
    assert_eq!(starts, ["2025-06-16"]);
}

#[test]
fn golden_zengin_file() {
    let remitter = Remitter {
        code: 1_234_567_890,
        account: account("0009", "001", 1_234_567, "ｾｲｻﾝﾀﾞｲｺｳ(ｶ"),
    };
    let payments = [
        Payment {
            to: account("0001", "004", 7_654_321, "ﾌﾞﾝｷﾖｳｼﾖｳﾃﾝ"),
            amount_yen: 12_345,
            customer_code: 1,
        },
        Payment {
            to: account("9900", "018", 42, "やまだ　たろう"),
            amount_yen: 300,
            customer_code: 22,
        },
    ];
    let bytes = write_transfer_file(&remitter, (7, 10), &payments, &BuiltinBanks).unwrap();
    // Hand-built, field by field (widths in brackets), then Shift_JIS.
    let pad = |s: &str, w: usize| format!("{s}{}", " ".repeat(w - s.chars().count()));
    let header = [
        "1",
        "21",
        "0",
        "1234567890", // 区分[1] 種別[2] コード区分[1] 依頼人コード[10]
        &pad("ｾｲｻﾝﾀﾞｲｺｳ(ｶ", 40),
        "0710", // 依頼人名[40] 振込指定日[4]
        "0009",
        &pad("ﾐﾂｲｽﾐﾄﾓ", 15), // 仕向銀行[4][15]
        "001",
        &pad("ｼﾞﾝﾎﾞｳﾁﾖｳ", 15), // 仕向支店[3][15]
        "1",
        "1234567",
        &" ".repeat(17), // 預金種目[1] 口座番号[7] ダミー[17]
    ]
    .concat();
    let data1 = [
        "2",
        "0001",
        &pad("ﾐｽﾞﾎ", 15),
        "004",
        &pad("ﾏﾙﾉｳﾁﾁﾕｳｵｳ", 15),
        "0000", // 銀行 支店 手形交換所[4]
        "1",
        "7654321",
        &pad("ﾌﾞﾝｷﾖｳｼﾖｳﾃﾝ", 30),
        "0000012345", // 種目 口座 受取人[30] 金額[10]
        "0",
        "0000000001",
        "0000000000",
        "7",
        " ",
        &" ".repeat(7), // 新規 顧客1 顧客2 振込区分 識別 ダミー
    ]
    .concat();
    let data2 = [
        "2",
        "9900",
        &pad("ﾕｳﾁﾖ", 15),
        "018",
        &pad("ｾﾞﾛｲﾁﾊﾁ", 15),
        "0000",
        "1",
        "0000042",
        &pad("ﾔﾏﾀﾞ ﾀﾛｳ", 30),
        "0000000300",
        "0",
        "0000000022",
        "0000000000",
        "7",
        " ",
        &" ".repeat(7),
    ]
    .concat();
    let trailer = ["8", "000002", "000000012645", &" ".repeat(101)].concat();
    let end = ["9", &" ".repeat(119)].concat();
    let mut want = vec![];
    for r in [header, data1, data2, trailer, end] {
        let (b, _, bad) = encoding_rs::SHIFT_JIS.encode(&r);
        assert!(!bad);
        assert_eq!(b.len(), 120, "{r}");
        want.extend_from_slice(&b);
        want.extend_from_slice(b"\r\n");
    }
    assert_eq!(bytes, want);
    assert_eq!(bytes.len(), 5 * 122);
    // Spot checks of the Shift_JIS bytes: ﾐ is 0xD0, ﾞ is 0xDE.
    assert_eq!(&bytes[..4], b"1210");
    assert_eq!(bytes[122 + 5], 0xD0);
    assert_eq!(bytes[122 + 7], 0xDE);
}

#[test]
fn payee_names_and_codes_are_checked() {
    let remitter = Remitter {
        code: 1,
        account: account("0009", "001", 1, "ｴｰｼﾞｪﾝﾄ"),
    };
    let bad = |to: BankAccount| {
        write_transfer_file(
            &remitter,
            (1, 1),
            &[Payment {
                to,
                amount_yen: 1,
                customer_code: 0,
            }],
            &BuiltinBanks,
        )
        .unwrap_err()
    };
    assert!(matches!(
        bad(account("0009", "001", 1, "山田商店")),
        ZenginError::Unencodable { ch: '山', .. }
    ));
    assert!(matches!(
        bad(account("1234", "001", 1, "ﾔﾏﾀﾞ")),
        ZenginError::UnknownBank(_)
    ));
    assert!(matches!(
        bad(account("0009", "999", 1, "ﾔﾏﾀﾞ")),
        ZenginError::UnknownBranch { .. }
    ));
    let e = bad(account("0009", "001", 1, "山田商店"));
    assert!(e.to_string().contains("cannot be encoded"), "{e}");
}

#[test]
fn settlement_outputs_and_liability_report() {
    let mut f = Fixture::new();
    enrol_operator(&mut f, 0, ExpiryPolicy::FiscalYearEnd { years: 1 });
    let banks = BuiltinBanks;
    register_payees(&mut f.hub);
    assert!(
        f.hub
            .set_payee(
                &Party::Merchant(fid("shop-9")),
                &account("0001", "004", 1, "山"),
                1,
                &banks
            )
            .is_err()
    );
    f.hub.exchange(&request("o", "Alice01", 4000), T0).unwrap();
    f.hub.ingest(
        &f.shop.id.clone(),
        vec![f.shop.sign(redeem(f.alice, 1, 700))],
        T0.plus_ms(1),
    );
    let now = month_start(2025, 10);
    let out = f.dir.path().join("out");
    let run = f.hub.settle(&out, &banks, now, false).unwrap();
    let names: Vec<String> = run
        .files
        .iter()
        .map(|f| f.path.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    assert!(
        names.contains(&"payouts-131059-20250601-p0001.zengin".to_owned()),
        "{names:?}"
    );
    assert!(
        names.contains(&"receipts-131059-20250601-p0001.zengin".to_owned()),
        "{names:?}"
    );
    let payout = std::fs::read(out.join("payouts-131059-20250601-p0001.zengin")).unwrap();
    assert_eq!(payout.len(), 4 * 122);
    let report = f.hub.liability_report(now).unwrap();
    let m = report
        .municipalities
        .iter()
        .find(|m| m.municipality == muni())
        .unwrap();
    assert_eq!((m.wallets, m.held), (1300, 0));
    assert_eq!(m.by_source.get("operator:card-x"), Some(&1300));
    assert_eq!(
        m.expiry_schedule
            .get(&("2027-03".to_owned(), "operator:card-x".to_owned())),
        Some(&1300)
    );
    // Base date 2025-09-30: 1300 unused, under the threshold.
    let b = &m.base_dates[0];
    assert_eq!(b.date.to_string(), "2025-09-30");
    assert_eq!((b.unused_points, b.deposit_required_yen), (1300, 0));
    let csv = report.to_csv();
    assert!(
        csv.contains("131059,base-date-unused,2025-09-30,operator:card-x,1300,1300"),
        "{csv}"
    );
    assert!(
        csv.contains("131059,base-date-deposit,2025-09-30,,,0"),
        "{csv}"
    );
    assert!(
        names.iter().any(|n| n.ends_with(".json")) && names.iter().any(|n| n.ends_with(".csv"))
    );
}

#[test]
fn reinstatement_only_by_the_holders_municipality() {
    let mut f = Fixture::new();
    f.hub.suspend_card(&card(1), T0).unwrap();
    let e = f
        .hub
        .reinstate_card_by(other_muni(), &card(1), T0)
        .unwrap_err();
    assert!(e.to_string().contains("only 131059 can reinstate"), "{e}");
    f.hub.reinstate_card_by(muni(), &card(1), T0).unwrap();
    assert_eq!(
        f.hub.card(&card(1)).unwrap().unwrap().status.name(),
        "active"
    );
    // Old aliases stay resolvable and reserved.
    f.hub
        .change_my_key_id(
            f.alice,
            &mykey_sync_proto::MyKeyId::parse("AliceNew").unwrap(),
            T0,
        )
        .unwrap();
    assert_eq!(
        f.hub
            .resolve_my_key_id(&mykey_sync_proto::MyKeyId::parse("alice01").unwrap())
            .unwrap(),
        f.alice
    );
    assert!(
        f.hub
            .change_my_key_id(
                f.bob,
                &mykey_sync_proto::MyKeyId::parse("Alice01").unwrap(),
                T0
            )
            .is_err()
    );
}

#[test]
fn privacy_requests_carry_no_usage_fields() {
    // Every field an operator or node request can carry, by name.
    let exchange = serde_json::to_value(ExchangeRequest {
        request_id: "r".into(),
        my_key_id: "a".into(),
        operator_points: 1,
        municipality: Some("131059".into()),
        requested_at: 0,
        donate_to: None,
    })
    .unwrap();
    let mut fields: Vec<String> = exchange.as_object().unwrap().keys().cloned().collect();
    fields.sort();
    assert_eq!(
        fields,
        [
            "municipality",
            "my_key_id",
            "operator_points",
            "request_id",
            "requested_at"
        ]
    );
    // Node transactions: every field of every body, by name, is one of
    // these (no item, loan, title or other usage detail can ride along);
    // a redemption carries amount, merchant and time (the signed payload's
    // created_at) besides who pays.
    let allowed = [
        "card",
        "account",
        "municipality",
        "points",
        "merchant",
        // What the node decided a spend on: a balance the hub confirmed.
        "basis",
        "ledger_pos",
        "balance",
        "debt",
        "card_proof",
        "program",
        "facility",
        "number",
        "issuer",
        "serial",
        // Strict mode: a spend right moved between nodes, and its acceptance
        // (which carries the signed transfer itself).
        "to",
        "right_id",
        "grant",
        "transfer",
    ];
    let a = f_alice();
    for body in [
        redeem(a, 1, 1),
        grant(a, 1, 1),
        link(a, "lib-1", "L1"),
        unlink(a, "lib-1", "L1"),
        right_transfer(a),
        mykey_sync_proto::TxBody::RightAccept(mykey_sync_proto::RightAccept {
            transfer: Chain::new(5).sign(right_transfer(a)),
        }),
    ] {
        let text = format!("{body:?}");
        let names: Vec<&str> = text
            .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == ':'))
            .filter_map(|w| w.strip_suffix(':'))
            .filter(|w| !w.is_empty())
            .collect();
        assert!(!names.is_empty(), "{text}");
        for n in names {
            assert!(allowed.contains(&n), "field {n:?} in {text}");
        }
    }
    let r = format!("{:?}", redeem(a, 1, 1));
    for required in ["points", "merchant"] {
        assert!(r.contains(required), "{required} missing in {r}");
    }
}

fn right_transfer(a: mykey_sync_proto::AccountId) -> mykey_sync_proto::TxBody {
    mykey_sync_proto::TxBody::RightTransfer(mykey_sync_proto::RightTransfer {
        account: a,
        municipality: muni(),
        to: Chain::new(6).id,
        points: pts(5),
        right_id: 1,
        // The field names are what this test looks at; the grant's bytes
        // are opaque in a Debug print.
        grant: mykey_sync_proto::SignedFact::from_raw_parts(vec![1], [0; 64]),
    })
}

fn f_alice() -> mykey_sync_proto::AccountId {
    mykey_sync_proto::AccountId::new(1).unwrap()
}

#[derive(Clone, Debug)]
enum Op {
    Exchange(bool, u64),
    Grant(bool, u64),
    Redeem(bool, u64),
    Advance(u64),
    Expire,
    Release,
    Settle,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        (any::<bool>(), 1..5_000u64).prop_map(|(w, p)| Op::Exchange(w, p)),
        (any::<bool>(), 1..2_000u64).prop_map(|(w, p)| Op::Grant(w, p)),
        (any::<bool>(), 1..1_500u64).prop_map(|(w, p)| Op::Redeem(w, p)),
        (1..20u64).prop_map(Op::Advance),
        Just(Op::Expire),
        Just(Op::Release),
        Just(Op::Settle),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    #[test]
    fn conservation_through_exchanges_grants_redeems_expiries_and_settlements(ops in proptest::collection::vec(op(), 1..40)) {
        let mut f = Fixture::new();
        let holding = u32::from(ops.len() % 2 == 0) * 2;
        enrol_operator(&mut f, holding, ExpiryPolicy::Days { days: 10 });
        f.hub.set_program_expiry(&program(), ExpiryPolicy::Days { days: 25 }).unwrap();
        f.hub.add_campaign(&Campaign {
            id: "c".into(), municipality: muni(), operator: None, percent: 10,
            starts_at: T0, ends_at: T0.plus_ms(30 * DAY), cap_per_account: pts(300),
        }, T0).unwrap();
        let mut now = T0;
        // Base-date figures as first reported: later steps must not change them.
        let mut reported = std::collections::BTreeMap::new();
        let (shop, centre) = (f.shop.id, f.centre.id);
        for (i, o) in ops.iter().enumerate() {
            now = now.plus_ms(1);
            let (alice, bob) = (f.alice, f.bob);
            let who = |w: bool| if w { (alice, 1u8, "Alice01") } else { (bob, 2u8, "Bob02") };
            match o.clone() {
                Op::Exchange(w, p) => { let (_, _, n) = who(w); let _ = f.hub.exchange(&request_at(&format!("q{i}"), n, p, now), now); }
                Op::Grant(w, p) => { let (a, c, _) = who(w); let tx = f.centre.sign(grant(a, c, p)); f.hub.ingest(&centre, vec![tx], now); }
                Op::Redeem(w, p) => { let (a, c, _) = who(w); let tx = f.shop.sign(redeem(a, c, p)); f.hub.ingest(&shop, vec![tx], now); }
                Op::Advance(d) => now = now.plus_ms(d * DAY),
                Op::Expire => { f.hub.run_expiry(now).unwrap(); }
                Op::Release => { f.hub.release_held(now).unwrap(); }
                Op::Settle => { f.hub.close_periods(muni(), now).unwrap(); }
            }
            f.hub.check_conservation().map_err(|e| TestCaseError::fail(e.to_string()))?;
            let report = f.hub.liability_report(now).unwrap();
            prop_assert!(report.municipalities.iter().all(|m| m.held >= 0 && m.wallets >= 0));
            for m in &report.municipalities {
                for b in &m.base_dates {
                    let first = reported.entry((m.municipality, b.date)).or_insert_with(|| b.clone());
                    prop_assert_eq!(&*first, b, "a passed base date changed");
                }
            }
            // Lots always hold exactly the wallet.
            for a in [f.alice, f.bob] {
                let lots: u64 = f.hub.lots_of(a, muni()).unwrap().iter().map(|l| l.remaining).sum();
                prop_assert_eq!(lots, f.hub.balance(a, muni()).unwrap().balance.get());
            }
        }
        // Statements of all closed periods never exceed what the ledger holds.
        let closed = f.hub.close_periods(muni(), now.plus_ms(400 * DAY)).unwrap();
        let _ = closed;
        let mut invoiced = 0;
        for c in f.hub.closed_periods(muni()).unwrap() {
            invoiced += c.statements.iter().filter(|s| s.kind == StatementKind::OperatorInvoice).map(|s| s.yen).sum::<u64>();
        }
        let exchanged: u64 = f.hub.transfers(0, 100_000).unwrap().iter()
            .filter(|t| t.kind == mykey_hub::TransferKind::Exchange).map(|t| t.amount.get()).sum();
        prop_assert_eq!(invoiced, exchanged);
        let _ = MunicipalityCode::parse("131059");
    }
}

#[test]
fn an_exhausted_budget_declines_hub_grants_but_honours_offline_ones() {
    let mut f = Fixture::new(); // budget 100,000
    f.hub
        .admin_grant(f.alice, &program(), pts(99_000), T0)
        .unwrap();
    let e = f
        .hub
        .admin_grant(f.bob, &program(), pts(2_000), T0)
        .unwrap_err();
    assert!(e.to_string().contains("1000 pt of budget left"), "{e}");
    // A node's offline grant over budget is honoured and reported.
    let centre = f.centre.id;
    let tx = f.centre.sign(grant(f.bob, 2, 2_000));
    let r = f.hub.ingest(&centre, vec![tx], T0.plus_ms(1));
    assert!(matches!(
        r.receipts[0].outcome,
        mykey_sync_proto::wire::Outcome::Accepted { .. }
    ));
    let line = f
        .hub
        .programs()
        .unwrap()
        .into_iter()
        .find(|p| p.program.id == program())
        .unwrap();
    assert_eq!(line.overdrawn.get(), 1_000);
    assert!(
        f.hub
            .incidents(10)
            .unwrap()
            .iter()
            .any(|i| i.kind == mykey_hub::IncidentKind::ProgramOverdrawn)
    );
}

#[test]
fn the_serving_loops_tick_releases_and_expires_in_bounded_steps() {
    let mut f = Fixture::new();
    enrol_operator(&mut f, 1, ExpiryPolicy::Days { days: 2 });
    f.hub.exchange(&request("t", "Alice01", 1000), T0).unwrap();
    assert!(!f.hub.economy_tick(T0.plus_ms(DAY - 1), 1).unwrap());
    assert_eq!(wallet(&mut f.hub, f.alice), 0);
    assert!(!f.hub.economy_tick(T0.plus_ms(DAY), 1).unwrap());
    assert_eq!(wallet(&mut f.hub, f.alice), 500);
    assert!(!f.hub.economy_tick(T0.plus_ms(3 * DAY), 1).unwrap());
    assert_eq!(wallet(&mut f.hub, f.alice), 0);
    f.hub.check_conservation().unwrap();
}

#[test]
fn a_run_through_now_closes_the_open_period_including_now() {
    let mut f = Fixture::new();
    let t = T0.plus_ms(5 * DAY);
    f.hub
        .ingest(&{ f.shop.id }, vec![f.shop.sign(redeem(f.alice, 1, 40))], t);
    let closed = f.hub.close_periods_through_now(muni(), t).unwrap();
    assert_eq!(closed.len(), 1);
    assert_eq!(closed[0].period.ends_at, t.plus_ms(1));
    let payout = closed[0]
        .statements
        .iter()
        .find(|s| s.kind == StatementKind::MerchantPayout);
    assert_eq!(payout.map(|s| s.yen), Some(40));
    // The rest of the month is the next period.
    let next = f.hub.close_periods(muni(), month_start(2025, 7)).unwrap();
    assert_eq!(
        (next[0].period.starts_at, next[0].period.ends_at),
        (t.plus_ms(1), month_start(2025, 7))
    );
    assert!(next[0].statements.is_empty());
}

/// What `/metrics` says as `mykey_hub_settlement_overdue_periods`: periods
/// that ended and were not closed, cut as `close_periods` cuts them.
#[test]
fn overdue_periods_count_what_ended_unclosed() {
    let mut f = Fixture::new();
    let overdue = |hub: &mut mykey_hub::Hub, at: UnixMillis| {
        hub.settlement_overdue(at)
            .unwrap()
            .into_iter()
            .find(|(m, _)| *m == muni())
            .map(|(_, n)| n)
    };
    enrol_operator(&mut f, 0, ExpiryPolicy::Never);
    f.hub.exchange(&request("j", "Alice01", 2000), T0).unwrap();
    let aug2 = month_start(2025, 8).plus_ms(DAY);
    assert_eq!(overdue(&mut f.hub, T0), Some(0), "June is still open");
    assert_eq!(overdue(&mut f.hub, aug2), Some(2), "June and July ended");
    f.hub.close_periods(muni(), month_start(2025, 7)).unwrap();
    assert_eq!(overdue(&mut f.hub, aug2), Some(1), "July is left");
    f.hub.close_periods(muni(), aug2).unwrap();
    assert_eq!(overdue(&mut f.hub, aug2), Some(0));
}
