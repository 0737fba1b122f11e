//! The liability report at the legal base dates (issue 6 item 6): the
//! unused balance per municipality and per programme or operator as it stood
//! in the books at the end of 31 March and 30 September, replayed from the
//! ledger, and the deposit above ¥10M. A real hub on SQLite in a temp dir.
#![allow(missing_docs)]

mod common;

use common::*;
use mykey_hub::economy::calendar::Date;
use mykey_hub::economy::liability::{BaseDateFigures, LiabilityReport};
use mykey_hub::economy::lots::ExpiryPolicy;
use mykey_hub::{Hub, TransferKind};
use mykey_sync_proto::{MyKeyId, ProgramId, UnixMillis};

/// Noon JST on a day of 2026.
fn at(month: u32, day: u32) -> UnixMillis {
    Date::new(2026, month, day)
        .unwrap()
        .start()
        .plus_ms(12 * 3_600_000)
}
fn health() -> ProgramId {
    ProgramId::parse("health").unwrap()
}
fn exchange(hub: &mut Hub, id: &str, who: &str, operator_points: u64, now: UnixMillis) {
    card_x_exchange(hub, id, who, operator_points, now);
}
fn grant(hub: &mut Hub, who: mykey_sync_proto::AccountId, p: &ProgramId, n: u64, now: UnixMillis) {
    hub.admin_grant(who, p, pts(n), now).unwrap();
}
fn figures<'a>(r: &'a LiabilityReport, date: &str) -> &'a BaseDateFigures {
    bunkyo(r)
        .base_dates
        .iter()
        .find(|b| b.date.to_string() == date)
        .unwrap_or_else(|| panic!("no base date {date} in the report"))
}
/// Two programmes and an exchange operator in Bunkyo, across the base dates
/// of fiscal 2025 and 2026:
/// - volunteer points expire at the end of their fiscal year (31 March
///   24:00 JST), health points a fiscal year later, exchanged points 30 days
///   after their 3-day holding period ends (whenever the release is posted).
/// - 31 March 2026: alice's volunteer lot (12M, 5M spent on 25 March)
///   expires exactly as the base date ends; the expiry job posts it a second
///   later, so the books still hold it at the cut, but it is not unused.
///   Bob's exchange of 29 March is still held: it counts, under its operator.
///   Carol's offline overdraft is debt: shown, not deducted.
/// - A spend bob's node made on 30 March reaches the hub on 5 April.
/// - 30 September 2026: 30M unused across the two programmes: deposit 10M.
#[test]
fn base_date_figures_per_programme_replayed_from_the_ledger() {
    let mut f = Fixture::new();
    f.unbounded_shop();
    let volunteer = program();
    f.hub
        .fund_program(&volunteer, pts(24_000_000), at(1, 5))
        .unwrap();
    f.hub
        .create_program(&health(), muni(), pts(18_000_000), at(1, 5))
        .unwrap();
    f.hub
        .set_program_expiry(&volunteer, ExpiryPolicy::FiscalYearEnd { years: 0 })
        .unwrap();
    f.hub
        .set_program_expiry(&health(), ExpiryPolicy::FiscalYearEnd { years: 1 })
        .unwrap();
    enrol_card_x(&mut f.hub, 3, ExpiryPolicy::Days { days: 30 }, at(1, 5));
    let carol = f
        .hub
        .register_account(
            &MyKeyId::parse("Carol03").unwrap(),
            muni(),
            &card(3),
            at(1, 5),
        )
        .unwrap();
    let (alice, bob) = (f.alice, f.bob);

    // Fiscal 2025.
    grant(&mut f.hub, alice, &volunteer, 12_000_000, at(1, 10)); // expires 2026-04-01 00:00 JST
    grant(&mut f.hub, bob, &health(), 15_000_000, at(1, 10)); // expires 2027-04-01 00:00 JST
    exchange(&mut f.hub, "a1", "Alice01", 1_000_000, at(1, 20)); // 500,000 held to 23 Jan
    assert_eq!(f.hub.release_held(at(1, 24)).unwrap(), 1); // lot expires 22 Feb
    grant(&mut f.hub, alice, &health(), 3_000_000, at(2, 1));
    f.spend(alice, 1, 200_000, at(2, 10), at(2, 10)); // takes the exchanged lot first
    let run = f.hub.run_expiry(at(3, 1)).unwrap(); // its other 300,000 expire, posted before the base date
    assert_eq!(run.points, 300_000);
    f.spend(carol, 3, 1_000, at(3, 15), at(3, 15)); // nothing to spend: 1,000 debt
    exchange(&mut f.hub, "a2", "Alice01", 4_000_000, at(3, 20)); // 2,000,000 held to 23 March
    assert_eq!(f.hub.release_held(at(3, 24)).unwrap(), 1); // lot expires 22 April
    f.spend(alice, 1, 5_000_000, at(3, 25), at(3, 25)); // volunteer 12M -> 7M
    exchange(&mut f.hub, "b1", "Bob02", 2_000_000, at(3, 29)); // 1,000,000 held to 1 April noon

    // The day ends; the expiry job runs a second later.
    let base_end = Date::new(2026, 3, 31).unwrap().end();
    let run = f.hub.run_expiry(base_end.plus_ms(1_000)).unwrap();
    assert_eq!(run.points, 7_000_000, "alice's volunteer lot expired");

    let april = f.hub.liability_report(at(4, 2)).unwrap();
    let march31 = figures(&april, "2026-03-31").clone();
    assert_eq!(march31.as_of, base_end);
    // health: alice 3M + bob 15M; card-x: alice 2M + bob's 1M held.
    assert_eq!(march31.unused_points, 21_000_000);
    assert_eq!(march31.unused_yen(), 21_000_000);
    assert_eq!(march31.held_points, 1_000_000);
    assert_eq!(march31.expired_not_posted_points, 7_000_000);
    assert_eq!(march31.debts_points, 1_000);
    // (21,000,000 - 10,000,000) / 2, split 18:3 with the remainder to health.
    assert_eq!(march31.deposit_required_yen, 5_500_000);
    assert_eq!(
        base_date_rows(&march31),
        [
            ("program:health".to_owned(), 18_000_000, 0, 0, 4_714_286),
            ("program:volunteer".to_owned(), 0, 0, 7_000_000, 0),
            (
                "operator:card-x".to_owned(),
                3_000_000,
                1_000_000,
                0,
                785_714
            ),
        ]
    );
    // The previous base date: nothing had been credited yet.
    let sept25 = figures(&april, "2025-09-30");
    assert_eq!((sept25.unused_points, sept25.deposit_required_yen), (0, 0));
    assert!(sept25.by_source.is_empty());

    // Fiscal 2026. Bob's node spent 500,000 offline on 30 March; the hub
    // gets it on 5 April and posts it then (it takes bob's exchanged lot).
    assert_eq!(f.hub.release_held(at(4, 2)).unwrap(), 1); // bob's lot expires 1 May
    f.spend(bob, 2, 500_000, at(3, 30), at(4, 5));
    let late = f
        .hub
        .transfers(0, u32::MAX)
        .unwrap()
        .into_iter()
        .rfind(|t| t.kind == TransferKind::Redeem)
        .unwrap();
    assert_eq!((late.node_time, late.hub_time), (Some(at(3, 30)), at(4, 5)));
    grant(&mut f.hub, bob, &volunteer, 12_000_000, at(4, 10)); // expires 2027-04-01 00:00 JST
    let run = f.hub.run_expiry(at(5, 3)).unwrap(); // alice 2M (22 April) and bob 500,000 (1 May)
    assert_eq!(run.points, 2_500_000);
    f.spend(alice, 1, 1_000_000, at(10, 2), at(10, 2)); // after the base date

    let october = f.hub.liability_report(at(10, 5)).unwrap();
    let sept30 = figures(&october, "2026-09-30");
    assert_eq!(sept30.unused_points, 30_000_000);
    assert_eq!(
        (
            sept30.held_points,
            sept30.expired_not_posted_points,
            sept30.debts_points
        ),
        (0, 0, 1_000)
    );
    assert_eq!(sept30.deposit_required_yen, 10_000_000);
    assert_eq!(
        base_date_rows(sept30),
        [
            ("program:health".to_owned(), 18_000_000, 0, 0, 6_000_000),
            ("program:volunteer".to_owned(), 12_000_000, 0, 0, 4_000_000),
        ]
    );
    // The late spend, the expiries and the grants after 31 March, all posted
    // after it, leave its figures exactly as they were reported in April.
    assert_eq!(figures(&october, "2026-03-31"), &march31);
    // Today's outstanding points are not the base date's.
    assert_eq!(bunkyo(&october).wallets, 29_000_000);

    // The same figures in the CSV and JSON outputs.
    let csv = october.to_csv();
    assert!(
        csv.starts_with("municipality,section,key,detail,points,yen\r\n"),
        "{csv}"
    );
    for line in [
        "131059,base-date-unused,2026-09-30,,30000000,30000000",
        "131059,base-date-unused,2026-09-30,program:health,18000000,18000000",
        "131059,base-date-unused,2026-09-30,program:volunteer,12000000,12000000",
        "131059,base-date-deposit,2026-09-30,,,10000000",
        "131059,base-date-deposit-share,2026-09-30,program:health,,6000000",
        "131059,base-date-deposit-share,2026-09-30,program:volunteer,,4000000",
        "131059,base-date-unused,2026-03-31,operator:card-x,3000000,3000000",
        "131059,base-date-held,2026-03-31,operator:card-x,1000000,1000000",
        "131059,base-date-expired-not-posted,2026-03-31,program:volunteer,7000000,7000000",
        "131059,base-date-debts,2026-03-31,,1000,1000",
        "131059,base-date-deposit,2026-03-31,,,5500000",
        "131016,base-date-deposit,2026-09-30,,,0",
    ] {
        assert!(
            csv.contains(&format!("{line}\r\n")),
            "missing {line}:\n{csv}"
        );
    }
    let json = october.to_json();
    assert_eq!(json["yen_per_point"], 1);
    let b = &json["municipalities"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["municipality"] == "131059")
        .unwrap()["base_dates"][0];
    assert_eq!(b["date"], "2026-09-30");
    assert_eq!(b["unused_yen"], 30_000_000);
    assert_eq!(b["deposit_required_yen"], 10_000_000);
    assert_eq!(b["by_source"][1]["source"], "program:volunteer");
    assert_eq!(b["by_source"][1]["unused_points"], 12_000_000);
    assert_eq!(b["by_source"][1]["unused_share_percent"], 40.0);
    assert_eq!(b["by_source"][1]["deposit_share_yen"], 4_000_000);
    f.hub.check_conservation().unwrap();
}

/// A base date's figures come from the books as they stood then: a report
/// made long after, on a hub reopened from its file, gives the same figures,
/// and the unused balance at a base date is under the threshold until the
/// grants that pass it are posted.
#[test]
fn base_date_figures_survive_a_restart_and_only_count_what_was_posted_before() {
    let mut f = Fixture::new();
    f.unbounded_shop();
    f.hub
        .create_program(&health(), muni(), pts(25_000_000), at(1, 5))
        .unwrap();
    grant(&mut f.hub, f.alice, &health(), 10_000_000, at(9, 30));
    // Posted at 00:00 JST on 1 October, as 30 September ended: not in it.
    let end = Date::new(2026, 9, 30).unwrap().end();
    f.hub
        .admin_grant(f.bob, &health(), pts(15_000_000), end)
        .unwrap();
    let before = f.hub.liability_report(at(10, 1)).unwrap();
    let b = figures(&before, "2026-09-30");
    assert_eq!((b.unused_points, b.deposit_required_yen), (10_000_000, 0));
    drop(f.hub);
    let mut hub = Hub::open(&f.dir.path().join("hub")).unwrap();
    let later = hub.liability_report(at(12, 1)).unwrap();
    assert_eq!(figures(&later, "2026-09-30"), b);
    assert_eq!(bunkyo(&later).wallets, 25_000_000);
}
