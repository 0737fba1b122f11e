//! Several hub processes' worth of hubs on one PostgreSQL database: pushes
//! through either are applied once each with the ledger conserved, a
//! conflict between writers is retried a bounded number of times, and the
//! timed jobs of each municipality run in the one hub holding its lease,
//! spread over the hubs, and move when a lease lapses. Needs
//! a server: they run when `MYKEY_PG_URL` names one (`scripts/test.sh`
//! starts a throwaway cluster) and say so when skipped.

mod common;
use common::{Chain, Fixture, T0, fid, grant, muni, other_muni, pg_server, policy};
use mykey_hub::status::assess::Thresholds;
use mykey_hub::ticks::Due;
use mykey_hub::{Hub, StoreError};
use mykey_sync_proto::wire::{Hello, Outcome};
use mykey_sync_proto::{OpKind, SignedTx, UnixMillis};
use std::time::{Duration, Instant};

/// The fixture on PostgreSQL, or `None` (and why) when no server is named.
fn on_postgres(test: &str) -> Option<Fixture> {
    if pg_server().is_none() {
        eprintln!("{test}: skipped, MYKEY_PG_URL is not set (scripts/test.sh sets it)");
        return None;
    }
    Some(Fixture::new())
}

/// A second hub on the fixture's data directory: another process's view
/// of the same database.
fn second_hub(f: &Fixture) -> Hub {
    Hub::open(&f.dir.path().join("hub")).unwrap()
}

fn grants(chain: &mut Chain, account: mykey_sync_proto::AccountId, n: usize) -> Vec<SignedTx> {
    (0..n).map(|_| chain.sign(grant(account, 1, 1))).collect()
}

fn accepted(r: &mykey_sync_proto::wire::Receipts) -> usize {
    r.receipts
        .iter()
        .filter(|r| matches!(r.outcome, Outcome::Accepted { .. }))
        .count()
}

#[test]
fn pushes_through_two_hubs_at_once_are_applied_once_each() {
    let Some(mut f) = on_postgres("pushes_through_two_hubs_at_once_are_applied_once_each") else {
        return;
    };
    // A second granting node, pushing through the second hub.
    let mut other = Chain::new(21);
    f.hub
        .enrol_node(other.id, &fid("lib-2"), policy(&[OpKind::Grant]), T0)
        .unwrap();
    let (alice, centre_id, other_id) = (f.alice, f.centre.id, other.id);
    let ours = grants(&mut f.centre, alice, 300);
    let theirs = grants(&mut other, alice, 300);
    let mut a = second_hub(&f);
    let mut b = second_hub(&f);
    let ours_again = ours.clone();
    let funded = f.hub.check_conservation().unwrap().total;
    std::thread::scope(|s| {
        // Hub a: the centre's chain, in pushes of 20.
        let ta = s.spawn(move || {
            for (i, push) in ours.chunks(20).enumerate() {
                let r = a
                    .try_ingest(&centre_id, push.to_vec(), T0.plus_ms(i as u64))
                    .unwrap();
                assert_eq!(accepted(&r), push.len());
            }
        });
        // Hub b: the other node's chain, and the centre's pushes again (a
        // node that lost its answers resends through another hub).
        let tb = s.spawn(move || {
            for (i, (push, again)) in theirs.chunks(20).zip(ours_again.chunks(20)).enumerate() {
                let r = b
                    .try_ingest(&other_id, push.to_vec(), T0.plus_ms(i as u64))
                    .unwrap();
                assert_eq!(accepted(&r), push.len());
                b.try_ingest(&centre_id, again.to_vec(), T0.plus_ms(i as u64))
                    .unwrap();
            }
        });
        ta.join().unwrap();
        tb.join().unwrap();
    });
    assert_eq!(f.hub.chain_head(&centre_id).unwrap().processed_seq, 300);
    assert_eq!(f.hub.chain_head(&other_id).unwrap().processed_seq, 300);
    assert_eq!(f.hub.balance(alice, muni()).unwrap().balance.get(), 600);
    let report = f.hub.check_conservation().unwrap();
    assert_eq!(report.total, funded + 600, "each grant posted once");
    // The fact log has no gap and no position twice.
    let (n, max, distinct) = (
        f.raw_text("SELECT count(*)::text FROM facts"),
        f.raw_text("SELECT max(hub_seq)::text FROM facts"),
        f.raw_text("SELECT count(DISTINCT hub_seq)::text FROM facts"),
    );
    assert_eq!((&n, &distinct), (&max, &max), "facts: {n} rows, max {max}");
    let txs = f.raw_text("SELECT count(*)::text FROM txs");
    assert_eq!(txs, "600");
}

/// Makes the next `n` inserts into `txs` fail with SQLSTATE `code` (a
/// sequence counts them: its count survives the rolled-back attempts).
fn fail_next_inserts(f: &Fixture, n: i64, code: &str) {
    f.raw_execute("CREATE SEQUENCE IF NOT EXISTS test_attempts")
        .unwrap();
    f.raw_execute("SELECT setval('test_attempts', 1, false)")
        .unwrap();
    f.raw_execute(&format!(
        "CREATE OR REPLACE FUNCTION test_conflict() RETURNS trigger LANGUAGE plpgsql AS $f$
         BEGIN
           IF nextval('test_attempts') <= {n} THEN
             RAISE EXCEPTION 'test: conflict' USING ERRCODE = '{code}';
           END IF;
           RETURN NEW;
         END $f$"
    ))
    .unwrap();
    f.raw_execute(
        "CREATE OR REPLACE TRIGGER test_conflict BEFORE INSERT ON txs
         FOR EACH ROW EXECUTE FUNCTION test_conflict()",
    )
    .unwrap();
}

fn attempts(f: &Fixture) -> u64 {
    f.raw_text(
        "SELECT (last_value - CASE WHEN is_called THEN 0 ELSE 1 END)::text FROM test_attempts",
    )
    .parse()
    .unwrap()
}

#[test]
fn a_push_that_meets_a_conflict_is_retried_a_bounded_number_of_times() {
    let Some(mut f) = on_postgres("a_push_that_meets_a_conflict_is_retried") else {
        return;
    };
    let (alice, centre) = (f.alice, f.centre.id);

    // Two deadlocks, then it goes through: applied once.
    fail_next_inserts(&f, 2, "40P01");
    let txs = grants(&mut f.centre, alice, 1);
    let r = f.hub.try_ingest(&centre, txs, T0).unwrap();
    assert_eq!(accepted(&r), 1);
    assert_eq!(attempts(&f), 3, "two failed attempts and the one that held");
    assert_eq!(f.hub.chain_head(&centre).unwrap().processed_seq, 1);
    assert_eq!(f.raw_text("SELECT count(*)::text FROM txs"), "1");

    // Serialization failures every time: it gives up after the bound, with
    // nothing applied.
    fail_next_inserts(&f, 1_000, "40001");
    let txs = grants(&mut f.centre, alice, 1);
    let e = f.hub.try_ingest(&centre, txs.clone(), T0).unwrap_err();
    assert!(e.is_conflict(), "{e}");
    assert_eq!(attempts(&f), u64::from(mykey_hub::store::CONFLICT_ATTEMPTS));
    assert_eq!(f.hub.chain_head(&centre).unwrap().processed_seq, 1);
    assert_eq!(f.hub.balance(alice, muni()).unwrap().balance.get(), 1);

    // Other errors are not conflicts, and are not retried.
    fail_next_inserts(&f, 1_000, "P0001");
    let e = f.hub.try_ingest(&centre, txs, T0).unwrap_err();
    assert!(!e.is_conflict(), "{e}");
    assert_eq!(attempts(&f), 1);
    let plain = StoreError::Corrupt {
        what: "x",
        detail: "y".into(),
    };
    assert!(!plain.is_conflict());
}

/// The leases on the timed jobs, as `name=holder` lines in name order,
/// with their expiry when `with_expiry`.
fn leases(f: &Fixture, with_expiry: bool) -> String {
    let expiry = if with_expiry {
        "|| '@' || expires_at::text"
    } else {
        ""
    };
    f.raw_text(&format!(
        "SELECT COALESCE(string_agg(name || '=' || holder {expiry}, ' ' ORDER BY name), '')
         FROM leases WHERE name LIKE 'ticks/%'"
    ))
}

#[test]
fn the_timed_jobs_are_shared_per_municipality_and_move_when_a_lease_lapses() {
    let Some(f) = on_postgres("the_timed_jobs_are_shared_per_municipality") else {
        return;
    };
    let minute = Due {
        minute: true,
        economy: true,
    };
    let mut both = vec![muni(), other_muni()];
    both.sort();
    let mut a = second_hub(&f);
    let mut b = second_hub(&f);
    // Two processes' worth: each its own holder name.
    a.set_lease_holder("host-a/1");
    b.set_lease_holder("host-b/2");
    a.set_lease_ms(4_000);
    b.set_lease_ms(4_000);

    // Alone, a takes every lease: both municipalities and the global jobs.
    let r = a.run_ticks(minute, &[], T0);
    assert!(r.global && r.towns == both, "{r:?}");
    // b finds none free.
    let r = b.run_ticks(minute, &[], T0);
    assert!(!r.global && r.towns.is_empty(), "{r:?}");
    // a, counting b now, keeps its share (2 of 3) and gives one town up;
    // b takes it: each municipality's jobs run in exactly one of them.
    let ra = a.run_ticks(minute, &[], T0);
    assert!(ra.global && ra.towns.len() == 1, "{ra:?}");
    let rb = b.run_ticks(minute, &[], T0);
    assert!(!rb.global && rb.towns.len() == 1, "{rb:?}");
    let (town_a, town_b) = (ra.towns[0], rb.towns[0]);
    assert_ne!(town_a, town_b);
    let mut expected = [
        format!("ticks/{town_a}=host-a/1"),
        format!("ticks/{town_b}=host-b/2"),
        "ticks/all=host-a/1".to_owned(),
    ];
    expected.sort();
    assert_eq!(leases(&f, false), expected.join(" "));

    // A tick that changes nothing writes no lease row (renewed only once
    // half their time is gone), and each municipality stays with one.
    let before = leases(&f, true);
    let (ra, rb) = (a.run_ticks(minute, &[], T0), b.run_ticks(minute, &[], T0));
    assert_eq!(leases(&f, true), before, "nothing renewed yet");
    assert_eq!((ra.towns, rb.towns), (vec![town_a], vec![town_b]));
    let deadline = Instant::now() + Duration::from_secs(10);
    while leases(&f, true) == before {
        assert!(Instant::now() < deadline, "a lease was never renewed");
        a.run_ticks(minute, &[], T0);
        b.run_ticks(minute, &[], T0);
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(
        leases(&f, false),
        expected.join(" "),
        "renewed by the same holders"
    );

    // a stops without a word (killed): b takes its leases over once they lapse.
    drop(a);
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut waited = 0;
    loop {
        let r = b.run_ticks(minute, &[], T0);
        if r.global && r.towns == both {
            break;
        }
        assert!(
            r.towns.contains(&town_b),
            "b keeps its own meanwhile: {r:?}"
        );
        assert!(Instant::now() < deadline, "b never took a's leases");
        waited += 1;
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(waited > 0, "the leases were still a's for a while");
    assert!(
        !leases(&f, false).contains("host-a/1"),
        "{}",
        leases(&f, false)
    );

    // A clean stop hands them over at once.
    let mut c = second_hub(&f);
    c.set_lease_holder("host-c/3");
    c.set_lease_ms(60_000);
    b.release_tick_leases().unwrap();
    let r = c.run_ticks(minute, &[], T0);
    assert!(r.global && r.towns == both, "{r:?}");
    let r = b.run_ticks(minute, &[], T0);
    assert!(!r.global && r.towns.is_empty(), "{r:?}");

    // A hub reopened in the same process keeps its leases.
    drop(c);
    let mut again = second_hub(&f);
    again.set_lease_holder("host-c/3");
    let r = again.run_ticks(minute, &[], T0);
    assert!(!r.towns.is_empty() || r.global, "{r:?}");
}

#[test]
fn on_sqlite_the_one_hub_always_runs_the_timed_jobs() {
    let mut f = Fixture::sqlite();
    let due = Due {
        minute: true,
        economy: true,
    };
    for _ in 0..2 {
        let r = f.hub.run_ticks(due, &[], T0);
        assert_eq!(r.towns.len(), 2, "{r:?}");
        assert!(r.global, "{r:?}");
    }
}

#[test]
fn a_process_closes_only_the_links_it_holds() {
    let Some(mut f) = on_postgres("a_process_closes_only_the_links_it_holds") else {
        return;
    };
    let node = f.shop.id;
    let hello = |t: UnixMillis| Hello {
        node,
        node_time: t,
        last_seq: 0,
        fact_cursor: 0,
        software: "test".into(),
    };
    let mut a = second_hub(&f);
    let mut b = second_hub(&f);
    a.set_lease_holder("host-a/1");
    b.set_lease_holder("host-b/2");
    // The node talks to a, its link drops and it reconnects to b; a
    // notices the drop only later (a ping timeout).
    a.try_open(&hello(T0), T0).unwrap().unwrap();
    b.try_open(&hello(T0.plus_ms(1_000)), T0.plus_ms(1_000))
        .unwrap()
        .unwrap();
    a.note_link_closed(&node, T0.plus_ms(5_000)).unwrap();
    let detail_at = |f: &mut Fixture, ms: u64| {
        f.hub
            .node_detail(&node, &Thresholds::default(), T0.plus_ms(ms))
            .unwrap()
            .unwrap()
    };
    let d = detail_at(&mut f, 6_000);
    let open: Vec<UnixMillis> = d
        .sessions
        .iter()
        .filter(|s| s.closed_at.is_none())
        .map(|s| s.opened_at)
        .collect();
    assert_eq!(open, [T0.plus_ms(1_000)], "b's link stays open: {d:?}");
    // b's own close ends it.
    b.note_link_closed(&node, T0.plus_ms(7_000)).unwrap();
    let d = detail_at(&mut f, 8_000);
    assert!(d.sessions.iter().all(|s| s.closed_at.is_some()), "{d:?}");
}
