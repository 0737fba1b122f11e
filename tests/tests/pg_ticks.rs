//! The timed jobs on PostgreSQL with two `mykey-hub serve` processes on one
//! database and several municipalities: each process holds the leases of
//! its share of the municipalities (`ticks/<code>`), each municipality's
//! expiry runs in exactly one process, and once one process is killed
//! (SIGKILL) the other takes its municipalities over when their leases
//! lapse, still running each municipality's expiry once.
//!
//! The hubs tick each second with three-second leases (`hub.toml`'s
//! `tick_interval_ms`, `tick_lease_ms`). Points granted two days back
//! under a programme whose points expire after a day are due at the next
//! tick.
//!
//! Needs a PostgreSQL server: `MYKEY_PG_URL` (scripts/test.sh starts a
//! throwaway cluster and sets it); without it the test says it is skipped.
//! The binaries must be built first (`cargo build -p mykey-node -p
//! mykey-hub --bins`).

mod net_common;

use mykey_hub::Hub;
use mykey_hub::economy::lots::ExpiryPolicy;
use mykey_hub::store::postgres::DatabaseUrl;
use mykey_hub::store::postgres::scratch::ScratchDatabase;
use mykey_sync_proto::{AccountId, MunicipalityCode, MyKeyId, ProgramId, UnixMillis};
use net_common::*;
use std::collections::BTreeMap;
use std::os::unix::fs::DirBuilderExt;
use std::path::Path;
use std::time::Duration;

/// The municipalities besides the world's Bunkyo.
const TOWNS: [&str; 4] = ["131016", "131024", "131032", "131041"];
/// Points each grant gives (and each expiry takes).
const GRANT: u64 = 100;
const DAY_MS: u64 = 24 * 3_600_000;

fn server() -> Option<DatabaseUrl> {
    let url = std::env::var("MYKEY_PG_URL")
        .ok()
        .filter(|u| !u.is_empty())?;
    Some(DatabaseUrl::parse(&url).expect("MYKEY_PG_URL is a postgres:// URL"))
}

/// A data directory for one serving process of the hub: its key and
/// `store.toml`, and fast ticks with short leases.
fn process_dir(from: &Path, to: &Path) {
    if to != from {
        std::fs::DirBuilder::new().mode(0o700).create(to).unwrap();
        for f in ["hub.key", "store.toml"] {
            std::fs::copy(from.join(f), to.join(f)).unwrap();
        }
    }
    std::fs::write(
        to.join("hub.toml"),
        "tick_interval_ms = 1000\ntick_lease_ms = 3000\n",
    )
    .unwrap();
}

/// The leases on the municipalities' and the global jobs: name → holder
/// (expired ones left out).
fn leases(c: &mut postgres::Client) -> BTreeMap<String, String> {
    c.query(
        "SELECT name, holder FROM leases
         WHERE name LIKE 'ticks/%' AND expires_at > clock_timestamp()",
        &[],
    )
    .unwrap()
    .iter()
    .map(|r| (r.get(0), r.get(1)))
    .collect()
}

/// Expiry transfers per municipality.
fn expiries(c: &mut postgres::Client) -> BTreeMap<i64, i64> {
    c.query(
        "SELECT a.municipality, count(*) FROM transfers t
         JOIN ledger_accounts a ON a.id = t.debit
         WHERE t.kind = 'expiry' GROUP BY a.municipality",
        &[],
    )
    .unwrap()
    .iter()
    .map(|r| (r.get(0), r.get(1)))
    .collect()
}

/// Which hub process holds a lease: its pid in the holder name.
fn holder_pid(holder: &str) -> u32 {
    holder.rsplit('/').next().unwrap().parse().unwrap()
}

/// How many times `hub` logged the expiry of points of municipality `m`.
fn expired_in(hub: &Proc, m: &str) -> usize {
    hub.stderr()
        .lines()
        .filter(|l| l.contains("points expired") && l.contains(&format!("municipality={m}")))
        .count()
}

#[test]
fn each_municipality_expires_once_in_one_process_and_moves_when_it_dies() {
    let Some(server) = server() else {
        eprintln!(
            "pg_ticks: skipped, MYKEY_PG_URL is not set (it needs a PostgreSQL server; \
             scripts/test.sh starts one and sets it)"
        );
        return;
    };
    let db = ScratchDatabase::create(&server).unwrap();
    let w = World::create_on_database(0, 0, db.url());
    let t = now();
    let mut towns: Vec<MunicipalityCode> = vec![bunkyo()];
    let mut holders: Vec<(MunicipalityCode, AccountId, ProgramId)> = vec![];
    {
        let mut h: Hub = w.open_hub();
        for code in TOWNS {
            let m = MunicipalityCode::parse(code).unwrap();
            h.add_municipality(m, &format!("town {code}"), t).unwrap();
            towns.push(m);
        }
        for (i, &m) in towns.iter().enumerate() {
            let p = ProgramId::parse(&format!("flash-{m}")).unwrap();
            h.create_program(&p, m, pts(1_000_000), t).unwrap();
            h.set_program_expiry(&p, ExpiryPolicy::Days { days: 1 })
                .unwrap();
            let a = h
                .register_account(
                    &MyKeyId::parse(&format!("resident{i}")).unwrap(),
                    m,
                    &card(0x2000 + i as u32),
                    t,
                )
                .unwrap();
            holders.push((m, a, p));
        }
    }
    let hub_b_dir = w.root.path().join("hub-b");
    // The test's own hub (grants, checks) on a directory no process serves.
    let admin_dir = w.root.path().join("admin");
    process_dir(&w.hub_dir, &w.hub_dir);
    process_dir(&w.hub_dir, &hub_b_dir);
    process_dir(&w.hub_dir, &admin_dir);
    let (hub_a, _) = start_hub(&w.hub_dir, 0);
    let (hub_b, _) = start_hub(&hub_b_dir, 0);
    let mut c = postgres::Client::connect(db.url().expose(), postgres::NoTls).unwrap();
    let names = towns.len() + 1;

    // The leases spread: every one held, each process its share (3 of 6).
    let pids = [hub_a.pid(), hub_b.pid()];
    wait_until("the leases shared out", Duration::from_secs(60), || {
        let l = leases(&mut c);
        let per: Vec<usize> = pids
            .iter()
            .map(|p| l.values().filter(|h| holder_pid(h) == *p).count())
            .collect();
        l.len() == names && per == [names / 2, names / 2]
    });
    let before = leases(&mut c);

    // Points granted in every municipality, dated two days back under a
    // one-day expiry, expire at the next tick.
    let grant_all = |holders: &[(MunicipalityCode, AccountId, ProgramId)]| {
        let mut h = Hub::open(&admin_dir).unwrap();
        let back = UnixMillis(now().0 - 2 * DAY_MS);
        for (_, a, p) in holders {
            h.admin_grant(*a, p, pts(GRANT), back).unwrap();
        }
    };
    grant_all(&holders);
    wait_until(
        "every municipality's points expired",
        Duration::from_secs(60),
        || {
            let e = expiries(&mut c);
            towns.iter().all(|m| e.get(&i64::from(m.get())) == Some(&1))
        },
    );
    // Each municipality's expiry ran in the one process holding its lease.
    for m in &towns {
        let holder = &before[&format!("ticks/{m}")];
        let (runner, other) = if holder_pid(holder) == pids[0] {
            (&hub_a, &hub_b)
        } else {
            (&hub_b, &hub_a)
        };
        assert_eq!(
            (
                expired_in(runner, &m.to_string()),
                expired_in(other, &m.to_string())
            ),
            (1, 0),
            "municipality {m}'s expiry ran once, in {holder}"
        );
    }
    assert_eq!(leases(&mut c), before, "the leases stayed where they were");

    // a dies without a word: b takes its municipalities over once their
    // leases lapse, and expires their next points, once each.
    let mut hub_a = hub_a;
    hub_a.kill9();
    let a_towns: Vec<MunicipalityCode> = towns
        .iter()
        .copied()
        .filter(|m| holder_pid(&before[&format!("ticks/{m}")]) == pids[0])
        .collect();
    assert!(!a_towns.is_empty());
    grant_all(&holders);
    wait_until("b holds every lease", Duration::from_secs(60), || {
        let l = leases(&mut c);
        l.len() == names && l.values().all(|h| holder_pid(h) == pids[1])
    });
    wait_until(
        "every municipality's points expired again",
        Duration::from_secs(60),
        || {
            let e = expiries(&mut c);
            towns.iter().all(|m| e.get(&i64::from(m.get())) == Some(&2))
        },
    );
    for m in &a_towns {
        assert_eq!(
            expired_in(&hub_b, &m.to_string()),
            1,
            "b ran {m}'s expiry after taking it over"
        );
    }
    let mut hub_b = hub_b;
    hub_b.terminate();
    assert!(
        leases(&mut c).is_empty(),
        "a clean stop gives its leases up"
    );

    // Exactly once: every granted point expired once, none twice.
    let mut h = Hub::open(&admin_dir).unwrap();
    for (m, a, _) in &holders {
        assert_eq!(h.balance(*a, *m).unwrap().balance.get(), 0, "{m}");
    }
    h.check_conservation().unwrap();
    let e = expiries(&mut c);
    assert_eq!(e.values().sum::<i64>(), 2 * towns.len() as i64, "{e:?}");
    eprintln!(
        "pg_ticks: {} municipalities over 2 processes ({} taken over after the kill), \
         each expiry ran once",
        towns.len(),
        a_towns.len()
    );
}
