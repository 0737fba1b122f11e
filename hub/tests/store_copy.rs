//! `mykey-hub store copy`: a hub on SQLite moved into PostgreSQL through the
//! real binary. The copied hub answers as before (ledger, balances, chains,
//! fact log, API) and goes on from where it was; a target that is not empty,
//! a bad URL, a serving hub and a copy failing midway change nothing. The
//! tests that need a server run when `MYKEY_PG_URL` names one
//! (`scripts/test.sh` starts a throwaway cluster) and say so when skipped.

mod common;
use common::*;
use mykey_hub::store::postgres::DatabaseUrl;
use mykey_hub::store::postgres::scratch::ScratchDatabase;
use mykey_hub::{Hub, HubPaths};
use mykey_sync_proto::session::HubService;
use mykey_sync_proto::wire::Outcome;

/// `url` with a password (the test cluster's trust login ignores it).
fn with_password(url: &DatabaseUrl) -> String {
    url.expose()
        .replacen("://postgres@", "://postgres:s3cret@", 1)
}

fn server_or_skip(test: &str) -> Option<DatabaseUrl> {
    let server = pg_server();
    if server.is_none() {
        eprintln!("{test}: MYKEY_PG_URL is not set, skipped (scripts/test.sh runs it)");
    }
    server
}

/// A hub on SQLite with grants, spends, links, facts, operators and tokens.
fn busy_hub() -> Fixture {
    let mut f = Fixture::sqlite();
    register_payees(&mut f.hub);
    f.api_token();
    let centre = f.centre.id;
    let mut txs = vec![];
    for (who, n) in [(f.alice, 1), (f.bob, 2)] {
        for _ in 0..5 {
            txs.push(f.centre.sign(grant(who, n, 700)));
        }
    }
    let r = f.hub.ingest(&centre, txs, T0.plus_ms(1000));
    assert!(
        outcomes(&r)
            .iter()
            .all(|o| matches!(o, Outcome::Accepted { .. }))
    );
    f.unbounded_shop();
    for i in 0..6 {
        let (who, n) = if i % 2 == 0 { (f.alice, 1) } else { (f.bob, 2) };
        f.spend(who, n, 150, T0.plus_ms(2000 + i), T0.plus_ms(3000 + i));
    }
    let library = f.library.id;
    let link = f.library.sign(link(f.alice, "lib-1", "L-0001"));
    let r = f.hub.ingest(&library, vec![link], T0.plus_ms(4000));
    assert!(
        matches!(outcomes(&r)[..], [Outcome::Accepted { .. }]),
        "{r:?}"
    );
    // Kiosk link requests: the library's policy, one request waiting and
    // one the library refused (hub/tests/link_request.rs makes them for real).
    f.hub
        .set_kiosk_link_policy(
            &fid("lib-1"),
            mykey_hub::store::link_request::KioskLinkPolicy::Confirm,
            T0,
        )
        .unwrap();
    let asked = mykey_net::unix_now().0;
    f.raw_execute(&format!(
        "INSERT INTO link_requests (id, facility, number, account, card, requested_at, state, answered_at, answered_by)
         VALUES (1, 'lib-1', 'L-0002', {a}, '0a0b:01', {asked}, 'pending', NULL, NULL),
                (2, 'lib-1', 'L-0003', {a}, '0a0b:01', {asked}, 'refused', {asked}, x'{node}')",
        a = f.alice.get(),
        node = hex::encode(f.library.id.as_bytes()),
    ))
    .unwrap();
    f
}

/// The library node's own listing of its facility's link requests: ids.
fn waiting_link_requests(f: &mut Fixture) -> Vec<u64> {
    use mykey_sync_proto::holder::{HolderRequest, HolderResponse};
    use mykey_sync_proto::link_request::{LinkRequestAsk, LinkRequestWhat, SignedLinkRequestAsk};
    let t = mykey_net::unix_now();
    let ask = SignedLinkRequestAsk::sign(
        LinkRequestAsk {
            node: f.library.id,
            signed_at: t,
            what: LinkRequestWhat::List,
        },
        &f.library.key,
    );
    let library = f.library.id;
    match f.hub.holder(&library, HolderRequest::LinkRequests(ask), t) {
        HolderResponse::LinkRequests(l) => l.iter().map(|r| r.id).collect(),
        other => panic!("expected a listing, got {other:?}"),
    }
}

fn tables_in(url: &DatabaseUrl) -> i64 {
    let mut c = postgres::Client::connect(url.expose(), postgres::NoTls).unwrap();
    c.query_one(
        "SELECT count(*) FROM information_schema.tables WHERE table_schema = 'public'",
        &[],
    )
    .unwrap()
    .get(0)
}

#[test]
fn a_hub_copied_to_postgres_answers_the_same_and_goes_on_from_where_it_was() {
    let Some(server) = server_or_skip("copy") else {
        return;
    };
    let db = ScratchDatabase::create(&server).unwrap();
    let url = with_password(db.url());
    let mut f = busy_hub();
    let data = f.dir.path().join("hub");
    let nodes = [f.shop.id, f.library.id, f.centre.id];
    let before = snapshot(&mut f.hub, &nodes);
    assert_eq!(waiting_link_requests(&mut f), vec![1]);
    let conservation = f.hub.check_conservation().unwrap();
    let balances = (
        f.hub.balances(f.alice).unwrap(),
        f.hub.balances(f.bob).unwrap(),
    );
    let ledger_check = ok(&data, &["ledger", "check"]);
    let hub_db = std::fs::read(data.join("hub.db")).unwrap();

    let out = ok(
        &data,
        &[
            "store",
            "copy",
            "--from",
            data.to_str().unwrap(),
            "--to",
            &url,
            "--switch",
        ],
    );
    assert!(!out.contains("s3cret"), "{out}");
    assert!(out.contains("postgres:***@"), "{out}");
    assert!(out.contains("ledger balanced and conserved"), "{out}");
    assert!(out.contains("now runs on PostgreSQL"), "{out}");
    // The SQLite file is the backup of this moment, untouched.
    assert_eq!(std::fs::read(data.join("hub.db")).unwrap(), hub_db);
    assert!(
        Hub::database_of(&HubPaths::of(&data)).unwrap().is_some(),
        "store.toml names the database"
    );

    // The same figures from PostgreSQL, through the binary and the library.
    assert_eq!(ok(&data, &["ledger", "check"]), ledger_check);
    f.hub = Hub::open(&data).unwrap();
    assert_eq!(snapshot(&mut f.hub, &nodes), before);
    assert_eq!(waiting_link_requests(&mut f), vec![1]);
    {
        let mut c = postgres::Client::connect(db.url().expose(), postgres::NoTls).unwrap();
        let refused = c
            .query_one(
                "SELECT state, answered_by FROM link_requests WHERE id = 2",
                &[],
            )
            .unwrap();
        assert_eq!(refused.get::<_, String>(0), "refused");
        assert_eq!(
            refused.get::<_, Vec<u8>>(1),
            f.library.id.as_bytes().to_vec()
        );
        let policy: String = c
            .query_one("SELECT policy FROM facility_kiosk_links", &[])
            .unwrap()
            .get(0);
        assert_eq!(policy, "confirm");
    }
    assert_eq!(f.hub.check_conservation().unwrap(), conservation);
    assert_eq!(
        (
            f.hub.balances(f.alice).unwrap(),
            f.hub.balances(f.bob).unwrap()
        ),
        balances
    );

    // It goes on: the chains continue, the next ledger position, hub_seq
    // and account id follow the copied ones.
    let centre = f.centre.id;
    let tx = f.centre.sign(grant(f.alice, 1, 50));
    let r = f.hub.ingest(&centre, vec![tx], T0.plus_ms(9000));
    assert!(
        matches!(outcomes(&r)[..], [Outcome::Accepted { .. }]),
        "{r:?}"
    );
    let after = snapshot(&mut f.hub, &nodes);
    assert!(after.n_transfers > before.n_transfers);
    assert!(after.last_fact > before.last_fact, "{after:?}");
    let carol = f
        .hub
        .register_account(
            &mykey_sync_proto::MyKeyId::parse("Carol03").unwrap(),
            muni(),
            &card(3),
            T0.plus_ms(9500),
        )
        .unwrap();
    assert!(carol.get() > f.bob.get(), "{carol:?} after {:?}", f.bob);
    f.hub.check_conservation().unwrap();

    // The API answers from PostgreSQL (the token was copied too).
    let token = {
        let mut c = postgres::Client::connect(db.url().expose(), postgres::NoTls).unwrap();
        let n: i64 = c
            .query_one("SELECT count(*) FROM api_tokens", &[])
            .unwrap()
            .get(0);
        assert_eq!(n, 1);
        f.api_token()
    };
    let addr = serve(&f);
    let (status, body) = request(addr, "GET", "/api/nodes", &bearer(&token), b"");
    assert_eq!(status, 200, "{body}");
    assert!(body.contains(&f.shop.id.to_string()[..8]), "{body}");

    // And the real `mykey-hub serve` starts on it and answers.
    let shop = f.shop.id.to_string();
    drop(f.hub);
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_mykey-hub"))
        .arg("--data")
        .arg(&data)
        .args([
            "serve",
            "--listen",
            "/ip4/127.0.0.1/tcp/0",
            "--http",
            "127.0.0.1:0",
        ])
        .env("RUST_LOG", "warn")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let out = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        use std::io::BufRead;
        for l in std::io::BufReader::new(out).lines().map_while(Result::ok) {
            let _ = tx.send(l);
        }
    });
    let http = loop {
        let line = rx
            .recv_timeout(std::time::Duration::from_secs(60))
            .expect("serve prints its dashboard address within 60 s");
        if let Some(a) = line.strip_prefix("dashboard on http://") {
            break a.trim_end_matches('/').parse().unwrap();
        }
    };
    let (status, body) = request(http, "GET", "/api/nodes", &bearer(&token), b"");
    let _ = child.kill();
    let _ = child.wait();
    assert_eq!(status, 200, "{body}");
    assert!(body.contains(&shop[..8]), "{body}");
}

#[test]
fn a_target_that_is_not_empty_is_refused_and_unchanged() {
    let Some(server) = server_or_skip("not empty") else {
        return;
    };
    let db = ScratchDatabase::create(&server).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let other = dir.path().join("other");
    ok(&other, &["init", "--database", db.url().expose()]);
    ok(
        &other,
        &[
            "municipality",
            "add",
            "--code",
            "131016",
            "--name",
            "Chiyoda",
        ],
    );
    let tables = tables_in(db.url());
    let owner = {
        let mut c = postgres::Client::connect(db.url().expose(), postgres::NoTls).unwrap();
        let k: Vec<u8> = c
            .query_one("SELECT hub_key FROM hub_identity", &[])
            .unwrap()
            .get(0);
        k
    };

    let f = busy_hub();
    let data = f.dir.path().join("hub");
    let err = fails(
        &data,
        &[
            "store",
            "copy",
            "--from",
            data.to_str().unwrap(),
            "--to",
            db.url().expose(),
            "--switch",
        ],
    );
    assert!(err.contains("is not empty"), "{err}");
    assert!(err.contains("nothing was written"), "{err}");
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    assert_eq!(tables_in(db.url()), tables);
    let mut c = postgres::Client::connect(db.url().expose(), postgres::NoTls).unwrap();
    let k: Vec<u8> = c
        .query_one("SELECT hub_key FROM hub_identity", &[])
        .unwrap()
        .get(0);
    assert_eq!(k, owner);
    let n: i64 = c
        .query_one("SELECT count(*) FROM municipalities", &[])
        .unwrap()
        .get(0);
    assert_eq!(n, 1, "the other hub's rows are as they were");
    assert!(!data.join("store.toml").exists());
    // The other hub still opens on it.
    ok(&other, &["ledger", "check"]);
}

#[test]
fn a_copy_failing_midway_leaves_the_target_empty() {
    let Some(server) = server_or_skip("midway") else {
        return;
    };
    let db = ScratchDatabase::create(&server).unwrap();
    let f = busy_hub();
    let data = f.dir.path().join("hub");
    // `nodes` is copied after the ledger and the fact log: a value SQLite
    // takes and PostgreSQL's column refuses stops the copy there.
    f.raw_execute(
        "UPDATE nodes SET allowed_ops = x'ff00' WHERE rowid = (SELECT MAX(rowid) FROM nodes)",
    )
    .unwrap();
    let out = hub(
        &data,
        &[
            "store",
            "copy",
            "--from",
            data.to_str().unwrap(),
            "--to",
            db.url().expose(),
            "--switch",
        ],
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{err}");
    assert!(err.contains("nodes.allowed_ops holds bytes"), "{err}");
    assert!(err.contains("left as it was"), "{err}");
    // It stopped after the ledger and the fact log were copied.
    assert!(err.contains("copied transfers: 17 rows"), "{err}");
    assert!(err.contains("copied facts: "), "{err}");
    assert_eq!(tables_in(db.url()), 0, "no table is left behind");
    assert!(!mykey_hub::store::PgStore::holds_a_hub(db.url()).unwrap());
    assert!(!data.join("store.toml").exists());
}

#[test]
fn a_bad_url_is_one_redacted_message_and_changes_nothing() {
    let f = Fixture::sqlite();
    let data = f.dir.path().join("hub");
    let from = data.to_str().unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let unreachable = format!("postgres://hub:s3cret@127.0.0.1:{port}/hub");
    for (url, says) in [
        ("mysql://u:s3cret@h/d", "postgres://USER"),
        ("postgres://u:s3cret@127.0.0.1", "names no database"),
        (unreachable.as_str(), "could not connect to PostgreSQL"),
    ] {
        let err = fails(
            &data,
            &["store", "copy", "--from", from, "--to", url, "--switch"],
        );
        assert!(err.contains(says), "{url}: {err}");
        assert!(!err.contains("s3cret"), "{err}");
        assert_eq!(err.trim().lines().count(), 1, "{err}");
        assert!(!data.join("store.toml").exists());
    }
}

#[test]
fn a_serving_hub_or_no_hub_is_refused() {
    let f = Fixture::sqlite();
    let data = f.dir.path().join("hub");
    let from = data.to_str().unwrap();
    let url = "postgres://hub:s3cret@127.0.0.1:9/hub";
    let lock = mykey_hub::hub_serve_lock(&data).unwrap();
    let err = fails(&data, &["store", "copy", "--from", from, "--to", url]);
    assert!(err.contains("mykey-hub serve is already running"), "{err}");
    assert!(err.contains("copied while it is stopped"), "{err}");
    drop(lock);
    let empty = f.dir.path().join("nothing");
    let err = fails(
        &data,
        &[
            "store",
            "copy",
            "--from",
            empty.to_str().unwrap(),
            "--to",
            url,
        ],
    );
    assert!(err.contains("no hub on SQLite"), "{err}");
}
