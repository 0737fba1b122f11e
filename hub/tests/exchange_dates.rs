//! Exchanged points are judged by the exchange's own dates, not by when the
//! release job happened to post them (issue 23): their expiry counts from
//! the end of the holding period, a base date's "held" is the holding
//! period's end against the base date, the sources and the expiry schedule
//! add up to the outstanding total with held points in them, and the
//! exchange answer shows the spendable and the held balance side by side.
//!
//! One season is played on two hubs (real SQLite in temp dirs) with the same
//! requests at the same hub times: one runs the release job as each holding
//! period ends, the other only after the hub clock has passed every holding
//! end and the fiscal year end of 31 March 2027.
#![allow(missing_docs)]

mod common;

use common::*;
use mykey_hub::economy::calendar::Date;
use mykey_hub::economy::exchange::ExchangeReceipt;
use mykey_hub::economy::liability::{BaseDateFigures, LiabilityReport, MunicipalityLiability};
use mykey_hub::economy::lots::ExpiryPolicy;
use mykey_sync_proto::{AccountId, ProgramId, UnixMillis};

/// Noon JST.
fn at(year: i32, month: u32, day: u32) -> UnixMillis {
    Date::new(year, month, day)
        .unwrap()
        .start()
        .plus_ms(12 * 3_600_000)
}
/// The end of a day (00:00 JST of the next): when points expiring on it expire.
fn end_of(year: i32, month: u32, day: u32) -> UnixMillis {
    Date::new(year, month, day).unwrap().end()
}
fn health() -> ProgramId {
    ProgramId::parse("health").unwrap()
}
/// When the release job runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Job {
    /// As each holding period ends.
    OnTime,
    /// Once, on 2 April 2027: after every holding end and the fiscal year end.
    Late,
}

/// What a season shows.
struct Season {
    f: Fixture,
    /// The answers to Alice's exchanges of 28 September and 2 October 2026.
    receipts: Vec<ExchangeReceipt>,
    /// The report made on 3 October 2026 and on 3 April 2027.
    october: LiabilityReport,
    april: LiabilityReport,
    /// Alice's lots on 2 April 2027, before her spend.
    alice_before_spend: Vec<LotView>,
}

/// A lot as (source, credited, left, expires at).
type LotView = (String, u64, u64, Option<UnixMillis>);

/// Card X exchanges at rate 1/2 with 3 days' holding, its points expiring at
/// the end of the next fiscal year (`fy+1`); health grants expire at the end
/// of their fiscal year, volunteer grants a year later.
/// - Alice: 20M health on 1 Sep 2026 (expires as 31 March 2027 ends);
///   exchanges 5M on 28 Sep 2026 (spendable 1 Oct) and 5M on 2 Oct 2026
///   (spendable 5 Oct).
/// - Bob: 8M volunteer on 1 Nov 2026; exchanges 5M on 27 March 2027
///   (spendable 30 March) and 5M on 29 March 2027 (spendable 1 April, in
///   fiscal 2027: held at the base date).
fn season(job: Job) -> Season {
    let mut f = Fixture::new();
    f.unbounded_shop();
    f.hub
        .create_program(&health(), muni(), pts(20_000_000), at(2026, 8, 1))
        .unwrap();
    f.hub
        .fund_program(&program(), pts(8_000_000), at(2026, 8, 1))
        .unwrap();
    f.hub
        .set_program_expiry(&health(), ExpiryPolicy::FiscalYearEnd { years: 0 })
        .unwrap();
    f.hub
        .set_program_expiry(&program(), ExpiryPolicy::FiscalYearEnd { years: 1 })
        .unwrap();
    enrol_card_x(
        &mut f.hub,
        3,
        ExpiryPolicy::FiscalYearEnd { years: 1 },
        at(2026, 8, 1),
    );
    let exchange = |f: &mut Fixture, id: &str, who: &str, now: UnixMillis| {
        card_x_exchange(&mut f.hub, id, who, 10_000_000, now)
    };
    let on_time = |f: &mut Fixture, now: UnixMillis| {
        if job == Job::OnTime {
            f.hub.run_expiry(now).unwrap();
        }
    };
    let (alice, bob) = (f.alice, f.bob);
    let mut receipts = vec![];

    f.hub
        .admin_grant(alice, &health(), pts(20_000_000), at(2026, 9, 1))
        .unwrap();
    receipts.push(exchange(&mut f, "a1", "Alice01", at(2026, 9, 28)));
    on_time(&mut f, at(2026, 10, 1));
    receipts.push(exchange(&mut f, "a2", "Alice01", at(2026, 10, 2)));
    let october = f.hub.liability_report(at(2026, 10, 3)).unwrap();
    on_time(&mut f, at(2026, 10, 5));
    f.hub
        .admin_grant(bob, &program(), pts(8_000_000), at(2026, 11, 1))
        .unwrap();
    exchange(&mut f, "b1", "Bob02", at(2027, 3, 27));
    exchange(&mut f, "b2", "Bob02", at(2027, 3, 29));
    on_time(&mut f, at(2027, 3, 30));
    on_time(&mut f, at(2027, 4, 1));
    // The late hub's job: everything at once, after 31 March 2027.
    f.hub.run_expiry(at(2027, 4, 2)).unwrap();
    let alice_before_spend = lots(&mut f, alice);
    // Alice spends 6M: her earliest-expiring lots first, as on either hub.
    f.spend(alice, 1, 6_000_000, at(2027, 4, 3), at(2027, 4, 3));
    let april = f.hub.liability_report(at(2027, 4, 3)).unwrap();
    f.hub.check_conservation().unwrap();
    Season {
        f,
        receipts,
        october,
        april,
        alice_before_spend,
    }
}

/// A base date's figures, without the ledger position (the two hubs posted
/// their releases at different positions).
fn figures(r: &LiabilityReport, date: &str) -> BaseDateFigures {
    let b = bunkyo(r)
        .base_dates
        .iter()
        .find(|b| b.date.to_string() == date)
        .unwrap_or_else(|| panic!("no base date {date} in the report"));
    BaseDateFigures {
        ledger_pos: 0,
        ..b.clone()
    }
}
/// A holder's lots as (source, credited, left, expires at), in the order
/// they are spent.
fn lots(f: &mut Fixture, who: AccountId) -> Vec<LotView> {
    f.hub
        .lots_of(who, muni())
        .unwrap()
        .into_iter()
        .map(|l| (l.source.to_string(), l.amount, l.remaining, l.expires_at))
        .collect()
}
/// Every breakdown of today's outstanding points adds up to it.
fn assert_breakdowns_add_up(m: &MunicipalityLiability) {
    let outstanding = u64::try_from(m.wallets + m.held).unwrap();
    assert_eq!(m.by_source.values().sum::<u64>(), outstanding, "by source");
    assert_eq!(
        m.expiry_schedule.values().sum::<u64>() + m.never_expiring.values().sum::<u64>(),
        outstanding,
        "expiry schedule"
    );
    assert_eq!(
        m.held_by_source.values().sum::<u64>(),
        u64::try_from(m.held).unwrap(),
        "held by source"
    );
}

#[test]
fn expiry_counts_from_the_end_of_the_holding_period_whenever_the_release_is_posted() {
    let mut on_time = season(Job::OnTime);
    let mut late = season(Job::Late);
    let (alice, bob) = (on_time.f.alice, on_time.f.bob);
    let fy2027_end = Some(end_of(2028, 3, 31));
    let fy2028_end = Some(end_of(2029, 3, 31));
    let card_x_source = "operator:card-x".to_owned();
    // Alice's exchanges of 28 Sep and 2 Oct 2026 were spendable from 1 and 5
    // October (fiscal 2026): fy+1 ends 31 March 2028, though the late hub
    // released them in fiscal 2027 (her health lot had expired by then).
    let want_alice = vec![
        (card_x_source.clone(), 5_000_000, 5_000_000, fy2027_end),
        (card_x_source.clone(), 5_000_000, 5_000_000, fy2027_end),
    ];
    assert_eq!(late.alice_before_spend, want_alice);
    assert_eq!(on_time.alice_before_spend, want_alice);
    // The spend took the first one and 1M of the second, on either hub.
    let want_alice = vec![(card_x_source.clone(), 5_000_000, 4_000_000, fy2027_end)];
    assert_eq!(lots(&mut late.f, alice), want_alice);
    assert_eq!(lots(&mut on_time.f, alice), want_alice);
    // Bob's exchange of 27 March 2027 was spendable on 30 March (fiscal
    // 2026); the one of 29 March on 1 April (fiscal 2027): its points are
    // the holder's to spend for a full fiscal year more, not cut short by
    // the days they were held.
    let want_bob = vec![
        (
            "program:volunteer".to_owned(),
            8_000_000,
            8_000_000,
            fy2027_end,
        ),
        (card_x_source.clone(), 5_000_000, 5_000_000, fy2027_end),
        (card_x_source.clone(), 5_000_000, 5_000_000, fy2028_end),
    ];
    assert_eq!(lots(&mut late.f, bob), want_bob);
    assert_eq!(lots(&mut on_time.f, bob), want_bob);
    // The records say so too.
    let a2 = late
        .f
        .hub
        .exchange_record(&card_x(), "a2")
        .unwrap()
        .unwrap();
    assert_eq!(a2.available_at, at(2026, 10, 5));
    assert_eq!(a2.expires_at(), fy2027_end);
    assert_eq!(
        a2.released_at,
        Some(at(2027, 4, 2)),
        "the late hub released it in fiscal 2027"
    );
}

#[test]
fn base_date_figures_judge_holding_by_its_end_not_by_the_release_posting() {
    let on_time = season(Job::OnTime);
    let late = season(Job::Late);
    let march = figures(&late.april, "2027-03-31");
    assert_eq!(figures(&on_time.april, "2027-03-31"), march);
    // card-x: Alice's 10M and Bob's 27 March 5M were spendable at the end of
    // 31 March (on the late hub still in the held account then); Bob's 29
    // March 5M was still held. Alice's health 20M expired as the day ended,
    // its expiry posted on 1 or 2 April.
    assert_eq!(march.as_of, end_of(2027, 3, 31));
    assert_eq!(
        (
            march.unused_points,
            march.held_points,
            march.expired_not_posted_points,
            march.debts_points
        ),
        (28_000_000, 5_000_000, 20_000_000, 0)
    );
    // (28M - 10M) / 2, split 8:20 with the remainder to volunteer.
    assert_eq!(march.deposit_required_yen, 9_000_000);
    assert_eq!(
        base_date_rows(&march),
        [
            ("program:health".to_owned(), 0, 0, 20_000_000, 0),
            ("program:volunteer".to_owned(), 8_000_000, 0, 0, 2_571_429),
            (
                "operator:card-x".to_owned(),
                20_000_000,
                5_000_000,
                0,
                6_428_571
            ),
        ]
    );
    // 30 September 2026, as reported on 3 October and again in April: Alice's
    // first exchange (spendable 1 October) was held.
    let sept = figures(&late.october, "2026-09-30");
    for r in [&on_time.october, &on_time.april, &late.april] {
        assert_eq!(figures(r, "2026-09-30"), sept);
    }
    assert_eq!(
        (
            sept.unused_points,
            sept.held_points,
            sept.deposit_required_yen
        ),
        (25_000_000, 5_000_000, 7_500_000)
    );
    assert_eq!(
        base_date_rows(&sept),
        [
            ("program:health".to_owned(), 20_000_000, 0, 0, 6_000_000),
            (
                "operator:card-x".to_owned(),
                5_000_000,
                5_000_000,
                0,
                1_500_000
            ),
        ]
    );
    // The same figures in the CSV.
    let csv = late.april.to_csv();
    for line in [
        "131059,base-date-unused,2027-03-31,,28000000,28000000",
        "131059,base-date-held,2027-03-31,,5000000,5000000",
        "131059,base-date-held,2027-03-31,operator:card-x,5000000,5000000",
        "131059,base-date-unused,2027-03-31,operator:card-x,20000000,20000000",
        "131059,base-date-deposit,2027-03-31,,,9000000",
    ] {
        assert!(
            csv.contains(&format!("{line}\r\n")),
            "missing {line}:\n{csv}"
        );
    }
}

#[test]
fn sources_and_the_expiry_schedule_add_up_to_the_outstanding_total() {
    let on_time = season(Job::OnTime);
    let late = season(Job::Late);
    let card_x_source = "operator:card-x".to_owned();
    // 3 October 2026: Alice's second exchange is in its holding period; on
    // the late hub her first one is still in the held account too.
    let (o, l) = (bunkyo(&on_time.october), bunkyo(&late.october));
    assert_eq!((o.wallets, o.held), (25_000_000, 5_000_000));
    assert_eq!((l.wallets, l.held), (20_000_000, 10_000_000));
    for m in [o, l] {
        assert_breakdowns_add_up(m);
        assert_eq!(
            m.by_source.clone().into_iter().collect::<Vec<_>>(),
            [
                ("operator:card-x".to_owned(), 10_000_000),
                ("program:health".to_owned(), 20_000_000),
            ]
        );
        // Held points at the expiry they will have: 31 March 2028.
        assert_eq!(
            m.expiry_schedule.clone().into_iter().collect::<Vec<_>>(),
            [
                (
                    ("2027-03".to_owned(), "program:health".to_owned()),
                    20_000_000
                ),
                (("2028-03".to_owned(), card_x_source.clone()), 10_000_000),
            ]
        );
    }
    assert_eq!(o.held_by_source.get(&card_x_source), Some(&5_000_000));
    assert_eq!(l.held_by_source.get(&card_x_source), Some(&10_000_000));
    // 3 April 2027, everything released and the health points expired.
    for r in [&on_time.april, &late.april] {
        let m = bunkyo(r);
        assert_eq!((m.wallets, m.held), (22_000_000, 0));
        assert_breakdowns_add_up(m);
        assert_eq!(
            m.expiry_schedule.clone().into_iter().collect::<Vec<_>>(),
            [
                (("2028-03".to_owned(), card_x_source.clone()), 9_000_000),
                (
                    ("2028-03".to_owned(), "program:volunteer".to_owned()),
                    8_000_000
                ),
                (("2029-03".to_owned(), card_x_source.clone()), 5_000_000),
            ]
        );
    }
    // In the outputs: per source with its held points, in JSON and CSV.
    let json = late.october.to_json();
    let m = json["municipalities"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["municipality"] == "131059")
        .unwrap();
    assert_eq!(m["outstanding"], 30_000_000);
    assert_eq!(m["by_source"][0]["source"], "operator:card-x");
    assert_eq!(m["by_source"][0]["points"], 10_000_000);
    assert_eq!(m["by_source"][0]["held_points"], 10_000_000);
    assert_eq!(m["by_source"][1]["held_points"], 0);
    let csv = late.october.to_csv();
    for line in [
        "131059,outstanding,held,,10000000,10000000",
        "131059,source,operator:card-x,,10000000,10000000",
        "131059,source-held,operator:card-x,,10000000,10000000",
        "131059,expiry,operator:card-x,2028-03,10000000,10000000",
    ] {
        assert!(
            csv.contains(&format!("{line}\r\n")),
            "missing {line}:\n{csv}"
        );
    }
}

#[test]
fn the_exchange_answer_shows_spendable_and_held_side_by_side() {
    let on_time = season(Job::OnTime);
    let late = season(Job::Late);
    // 28 September: Alice's 20M health points are spendable, the 5M
    // exchanged are held.
    for s in [&on_time, &late] {
        let r = &s.receipts[0];
        assert_eq!(
            (r.balance.balance.get(), r.held.get()),
            (20_000_000, 5_000_000)
        );
    }
    // 2 October: on time, the first exchange was released on 1 October; late,
    // it is still held beside the second.
    let r = &on_time.receipts[1];
    assert_eq!(
        (r.balance.balance.get(), r.held.get()),
        (25_000_000, 5_000_000)
    );
    let r = &late.receipts[1];
    assert_eq!(
        (r.balance.balance.get(), r.held.get()),
        (20_000_000, 10_000_000)
    );
    // The JSON answer carries both.
    let v = mykey_hub::economy::http::receipt_json(r);
    assert_eq!(
        (v["balance"].as_u64(), v["held_balance"].as_u64()),
        (Some(20_000_000), Some(10_000_000))
    );
}

#[test]
fn held_points_keep_the_policy_they_were_exchanged_under() {
    let mut f = Fixture::new();
    f.unbounded_shop();
    enrol_card_x(
        &mut f.hub,
        3,
        ExpiryPolicy::FiscalYearEnd { years: 1 },
        at(2026, 8, 1),
    );
    card_x_exchange(&mut f.hub, "p1", "Alice01", 1000, at(2026, 10, 2));
    // The operator's points now never expire; the held ones keep fy+1, and
    // the schedule shows them at that expiry before and after the release.
    enrol_card_x(&mut f.hub, 3, ExpiryPolicy::Never, at(2026, 10, 3));
    let schedule = |f: &mut Fixture, now| {
        let r = f.hub.liability_report(now).unwrap();
        let m = bunkyo(&r);
        assert_breakdowns_add_up(m);
        (m.expiry_schedule.clone(), m.never_expiring.clone())
    };
    let before = schedule(&mut f, at(2026, 10, 4));
    assert_eq!(
        before.0.into_iter().collect::<Vec<_>>(),
        [(("2028-03".to_owned(), "operator:card-x".to_owned()), 500)]
    );
    assert!(before.1.is_empty(), "{:?}", before.1);
    assert_eq!(f.hub.release_held(at(2026, 10, 6)).unwrap(), 1);
    let alice = f.alice;
    assert_eq!(
        lots(&mut f, alice),
        [(
            "operator:card-x".to_owned(),
            500,
            500,
            Some(end_of(2028, 3, 31))
        )]
    );
}
