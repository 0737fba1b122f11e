//! Moving the demo's town up (issue 16): the demo (`mykey-demo`) runs its
//! day on SQLite, then `mykey-hub store copy --switch` moves its hub into
//! an empty PostgreSQL database, checking conservation on both sides; the
//! switched hub's `ledger check` and `balance`s read the same figures from
//! PostgreSQL as they did from `hub.db`.
//!
//! Needs a PostgreSQL server: `MYKEY_PG_URL` (scripts/test.sh starts a
//! throwaway cluster and sets it); without it the test says it is skipped.
//! The hub binary must be built first (`cargo build -p mykey-node -p
//! mykey-hub --bins`); cargo builds the demo for this test.

mod net_common;

use mykey_hub::store::postgres::DatabaseUrl;
use mykey_hub::store::postgres::scratch::ScratchDatabase;
use net_common::*;
use std::path::Path;
use std::process::Command;

const DEMO: &str = env!("CARGO_BIN_EXE_mykey-demo");

fn server() -> Option<DatabaseUrl> {
    let url = std::env::var("MYKEY_PG_URL")
        .ok()
        .filter(|u| !u.is_empty())?;
    Some(DatabaseUrl::parse(&url).expect("MYKEY_PG_URL is a postgres:// URL"))
}

/// What the hub at `dir` says of its books: `ledger check`, and the
/// balances of the demo's three holders.
fn books(dir: &Path) -> String {
    let mut out = hub_cli(dir, &["ledger", "check"]);
    for who in ["Hanako", "Taro", "Jiro"] {
        out += &hub_cli(dir, &["balance", "--my-key-id", who]);
    }
    out
}

#[test]
fn the_demos_hub_moves_into_postgresql_with_its_books_unchanged() {
    let Some(server) = server() else {
        eprintln!(
            "pg_copy_demo: skipped, MYKEY_PG_URL is not set (it needs a PostgreSQL server; \
             scripts/test.sh starts one and sets it)"
        );
        return;
    };
    let root = tempfile::tempdir().unwrap();
    let demo = root.path().join("demo");
    let out = Command::new(DEMO)
        .arg("--data")
        .arg(&demo)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "the demo failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let hub = demo.join("hub");
    let on_sqlite = books(&hub);
    assert!(on_sqlite.starts_with("ledger balanced"), "{on_sqlite}");

    let db = ScratchDatabase::create(&server).unwrap();
    let out = Command::new(bin("mykey-hub"))
        .args(["store", "copy", "--from"])
        .arg(&hub)
        .args(["--to", db.url().expose(), "--switch"])
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "store copy failed: {said}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        said.contains("checked on both sides: ledger balanced and conserved"),
        "{said}"
    );
    assert!(hub.join("store.toml").exists(), "switched to PostgreSQL");

    // The same books, now read from PostgreSQL.
    assert_eq!(books(&hub), on_sqlite);
    let doctor = hub_cli(&hub, &["doctor"]);
    assert!(doctor.contains("postgres://"), "{doctor}");
    eprintln!(
        "pg_copy_demo: {}",
        said.lines().take(2).collect::<Vec<_>>().join("; ")
    );
}
