//! The hub on PostgreSQL through the real `mykey-hub` binary: `init
//! --database` chooses the backend for good, what it cannot use is refused
//! with one message and nothing created, and the password never shows. The
//! tests that need a server run when `MYKEY_PG_URL` names one
//! (`scripts/test.sh` starts a throwaway cluster); the rest run always.

mod common;
use common::{fails, hub, ok, pg_server};
use mykey_hub::store::postgres::DatabaseUrl;
use mykey_hub::store::postgres::scratch::ScratchDatabase;
use std::os::unix::fs::PermissionsExt;

#[test]
fn init_refuses_a_bad_url_or_an_unreachable_server_and_creates_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("hub");
    for url in ["mysql://u:s3cret@h/d", "postgres://u:s3cret@127.0.0.1"] {
        let err = fails(&data, &["init", "--database", url]);
        assert!(err.contains("postgres://USER"), "{err}");
        assert!(!err.contains("s3cret"), "{err}");
        assert!(!data.exists(), "{url}: nothing is created");
    }
    // A port nothing listens on.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let url = format!("postgres://hub:s3cret@127.0.0.1:{port}/hub");
    let err = fails(&data, &["init", "--database", &url]);
    assert!(err.contains("could not connect to PostgreSQL"), "{err}");
    assert!(err.contains("hub:***@127.0.0.1"), "{err}");
    assert!(!err.contains("s3cret"), "{err}");
    assert!(!data.exists(), "nothing is created");
}

/// `url` with a password (the test cluster's trust login ignores it).
fn with_password(url: &DatabaseUrl) -> String {
    url.expose()
        .replacen("://postgres@", "://postgres:s3cret@", 1)
}

#[test]
fn a_hub_on_postgres_keeps_its_database_and_shares_it_with_no_other_hub() {
    let Some(server) = pg_server() else {
        eprintln!("MYKEY_PG_URL is not set: the PostgreSQL part is left to scripts/test.sh");
        return;
    };
    let db = ScratchDatabase::create(&server).unwrap();
    let url = with_password(db.url());
    assert!(
        url.contains("s3cret"),
        "the test URL carries a password: {url}"
    );
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (dir.path().join("a"), dir.path().join("b"));

    let out = ok(&a, &["init", "--database", &url]);
    assert!(out.contains("postgres:***@"), "{out}");
    assert!(!out.contains("s3cret"), "{out}");
    assert!(
        !a.join("hub.db").exists(),
        "no SQLite file beside a PostgreSQL hub"
    );
    let config = a.join("store.toml");
    let mode = std::fs::metadata(&config).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "store.toml holds the password: owner only");

    // Every later command uses the database.
    ok(
        &a,
        &[
            "municipality",
            "add",
            "--code",
            "131059",
            "--name",
            "Bunkyo",
        ],
    );
    assert!(ok(&a, &["municipality", "list"]).contains("Bunkyo"));
    let doctor = hub(&a, &["doctor"]);
    let shown = format!(
        "{}{}",
        String::from_utf8_lossy(&doctor.stdout),
        String::from_utf8_lossy(&doctor.stderr)
    );
    assert!(shown.contains("postgres:***@"), "{shown}");
    assert!(!shown.contains("s3cret"), "{shown}");

    // Another hub is refused the database, and nothing of it is made.
    let err = fails(&b, &["init", "--database", &url]);
    assert!(err.contains("already holds a hub"), "{err}");
    assert!(!err.contains("s3cret"), "{err}");
    assert!(!b.exists(), "nothing is created");
    // A's data is untouched.
    assert!(ok(&a, &["municipality", "list"]).contains("Bunkyo"));

    // A's directory with another hub's key is refused at open.
    std::fs::remove_file(a.join("hub.key")).unwrap();
    ok(&b, &["init"]);
    std::fs::copy(b.join("hub.key"), a.join("hub.key")).unwrap();
    let err = fails(&a, &["municipality", "list"]);
    assert!(err.contains("already holds hub"), "{err}");
    assert!(!err.contains("s3cret"), "{err}");
}

#[test]
fn two_hubs_on_one_database_take_positions_in_turn() {
    if pg_server().is_none() {
        eprintln!("MYKEY_PG_URL is not set: left to scripts/test.sh");
        return;
    }
    // Two connections to one database, as two processes would have: each
    // write takes the write lock and the counter rows, so ledger positions
    // stay contiguous and every grant is posted once.
    let mut f = common::Fixture::new();
    let before = f.hub.transfers(0, u32::MAX).unwrap().len();
    let mut other = mykey_hub::Hub::open(&f.dir.path().join("hub")).unwrap();
    let (alice, bob) = (f.alice, f.bob);
    std::thread::scope(|s| {
        let a = s.spawn(|| {
            for _ in 0..15 {
                f.hub
                    .admin_grant(alice, &common::program(), common::pts(1), common::T0)
                    .unwrap();
            }
        });
        for _ in 0..15 {
            other
                .admin_grant(bob, &common::program(), common::pts(2), common::T0)
                .unwrap();
        }
        a.join().unwrap();
    });
    let transfers = f.hub.transfers(0, u32::MAX).unwrap();
    let positions: Vec<u64> = transfers.iter().map(|t| t.pos).collect();
    let expected: Vec<u64> = (1..=transfers.len() as u64).collect();
    assert_eq!(positions, expected, "no gap, no repeat");
    assert!(transfers.len() >= before + 30);
    assert_eq!(
        f.hub.balance(alice, common::muni()).unwrap().balance.get(),
        15
    );
    assert_eq!(
        other.balance(bob, common::muni()).unwrap().balance.get(),
        30
    );
    f.hub.check_conservation().unwrap();
}

#[test]
fn serve_on_postgres_answers_and_stops_cleanly() {
    use std::io::{BufRead, BufReader, Read, Write};
    use std::process::{Command, Stdio};
    use std::time::Duration;
    let Some(server) = pg_server() else {
        eprintln!("MYKEY_PG_URL is not set: left to scripts/test.sh");
        return;
    };
    // The blocking client panics on a runtime's thread: serve must open,
    // use and close its stores off the runtime, through to its shutdown.
    let db = ScratchDatabase::create(&server).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("hub");
    ok(&data, &["init", "--database", db.url().expose()]);
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let http = format!("127.0.0.1:{port}");
    let mut child = Command::new(env!("CARGO_BIN_EXE_mykey-hub"))
        .arg("--data")
        .arg(&data)
        .args(["serve", "--listen", "/ip4/127.0.0.1/tcp/0", "--http", &http])
        .env_remove("RUST_LOG")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if line.starts_with("dashboard on ") {
                let _ = tx.send(());
            }
        }
    });
    let up = rx.recv_timeout(Duration::from_secs(60));
    if up.is_ok() {
        let mut tcp = std::net::TcpStream::connect(&http).unwrap();
        tcp.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        tcp.write_all(b"GET /login HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            .unwrap();
        let mut answer = String::new();
        let _ = tcp.read_to_string(&mut answer);
        assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    }
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(up.is_ok(), "serve did not start: {stderr}");
    assert!(out.status.success(), "serve failed: {stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
}
