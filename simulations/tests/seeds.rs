//! Fixed seeds of every scenario, small size, for CI in debug builds; and
//! the regression seeds of bugs the simulation found. `SIM_SEED=<n>` runs
//! that seed of every scenario instead (a failure prints it, with the
//! release command that replays it).

use mykey_simulations::run_one;
use mykey_simulations::scenarios::Scenario;

fn check(scenario: Scenario, seed: u64) {
    if let Err(e) = run_one(scenario, seed, false) {
        panic!("{e}");
    }
}

fn seeds() -> Vec<u64> {
    match std::env::var("SIM_SEED").ok().and_then(|s| s.parse().ok()) {
        Some(seed) => vec![seed],
        None => vec![1, 2],
    }
}

#[test]
fn rural_library() {
    for seed in seeds() {
        check(Scenario::RuralLibrary, seed);
    }
}

#[test]
fn festival_bounded() {
    for seed in seeds() {
        check(Scenario::Festival, seed);
    }
}

#[test]
fn festival_strict_has_no_debt() {
    for seed in seeds() {
        let m = run_one(Scenario::FestivalStrict, seed, false).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            m.debt_created, 0,
            "SIM_SEED={seed}: strict mode created debt"
        );
    }
}

#[test]
fn city_day() {
    for seed in seeds() {
        check(Scenario::CityDay, seed);
    }
}

#[test]
fn hub_outage() {
    for seed in seeds() {
        check(Scenario::HubOutage, seed);
    }
}

#[test]
fn same_seed_same_run() {
    let a = run_one(Scenario::RuralLibrary, 7, false).unwrap_or_else(|e| panic!("{e}"));
    let b = run_one(Scenario::RuralLibrary, 7, false).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(a.events, b.events);
    assert_eq!(a.signed, b.signed);
    assert_eq!(a.lag_ms, b.lag_ms);
    assert_eq!(a.wan_bytes, b.wan_bytes);
}
