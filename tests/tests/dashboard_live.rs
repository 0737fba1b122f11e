//! The dashboard's live updates in a real browser: a running `mykey-hub
//! serve`, Debian's headless Chromium driven by playwright-core
//! (`tests/dashboard/live.mjs`) through a TCP proxy this test can cut. The
//! overview changes without a reload when a node connects; when the proxy
//! cuts every connection the page says it is reconnecting and looks stale;
//! when the proxy lets connections through again it comes back by itself
//! with what changed meanwhile. The node table fits its card at 1,280 px and
//! at 400 px. Separately, the hub answers 503 past `--max-live-streams`,
//! and a page whose stream is refused, or a browser without `EventSource`,
//! polls instead (`tests/dashboard/fallback.mjs`) and still shows changes.
//!
//! Needs what `tests/tests/dashboard.rs` needs: `/usr/bin/chromium`,
//! Node.js with `npm ci --prefix tests/dashboard`, and the binaries.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod net_common;

use mykey_hub::{Facility, FacilityKind, Hub, NodePolicy};
use mykey_node::config::{DataDir, NodeConfig};
use mykey_sync_proto::wire::Hello;
use mykey_sync_proto::{FacilityId, NodeId, OpKind, UnixMillis};
use net_common::{Proc, World, bin, bunkyo, now, pts, start_node, wait_until};
use serde_json::Value;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

const OPERATOR: &str = "ops-suzuki";
const PASSWORD: &str = "hinoki-2026-live";
const CHROMIUM: &str = "/usr/bin/chromium";
const DAY_MS: u64 = 24 * 3600 * 1000;

fn repo_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_owned()
}

fn artifacts_dir() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let dir = exe.ancestors().nth(3).unwrap().join("test-artifacts");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn require_browser() -> PathBuf {
    assert!(
        Path::new(CHROMIUM).is_file(),
        "{CHROMIUM} is missing: install it with `apt-get install -y chromium fonts-noto-cjk` (scripts/test.sh does)"
    );
    let js = repo_dir().join("tests/dashboard");
    assert!(
        js.join("node_modules/playwright-core/package.json")
            .is_file(),
        "playwright-core is missing: run `npm ci --prefix tests/dashboard` (scripts/test.sh does)"
    );
    js
}

/// Two shops whose nodes start during the test, libraries with long names
/// that never connected, and a library silent for three days that last
/// reported a long software name: a table with every kind of row.
struct Setup {
    world: World,
    silent: NodeId,
    token: String,
}

/// A library of Bunkyo named `name` with a node enrolled (not running).
fn library(world: &World, hub: &mut Hub, id: &str, name: &str) -> NodeId {
    let t = now();
    let facility = FacilityId::parse(id).unwrap();
    hub.add_facility(
        &Facility {
            id: facility.clone(),
            municipality: bunkyo(),
            kind: FacilityKind::Library,
            name: name.into(),
        },
        t,
    )
    .unwrap();
    let node = DataDir::new(world.root.path().join(id))
        .init(&NodeConfig {
            hub_key: world.hub_id.to_string(),
            hub_addr: None,
        })
        .unwrap();
    hub.enrol_node(
        node.id(),
        &facility,
        NodePolicy {
            allowed_ops: vec![OpKind::Link, OpKind::Unlink],
            per_card_offline_limit: pts(1000),
            node_exposure_limit: pts(10_000),
            offline_voucher_cap: pts(10_000),
            pin_threshold: pts(1000),
            valid_until: t.plus_ms(365 * DAY_MS),
        },
        t,
    )
    .unwrap();
    node.id()
}

fn setup() -> Setup {
    let world = World::create(2, 1);
    let mut hub = world.open_hub();
    let t = now();
    library(
        &world,
        &mut hub,
        "lib-koishikawa-central-annex-2f",
        "文京区立小石川図書館 中央館 別館2階 こども読書コーナー",
    );
    library(
        &world,
        &mut hub,
        "lib-sendagi-reading-room-east",
        "Bunkyo Sendagi Community Reading Room (East Wing, Saturday counter)",
    );
    let silent = library(&world, &mut hub, "lib-hongo", "本郷図書館");
    let then = UnixMillis(t.0 - 3 * DAY_MS);
    hub.try_open(
        &Hello {
            node: silent,
            node_time: then,
            last_seq: 0,
            fact_cursor: 0,
            software: "mykey-node/0.1.0-rc.7+build.20261204.librarypc-with-a-long-tag".into(),
        },
        then,
    )
    .unwrap()
    .unwrap();
    hub.set_operator(OPERATOR, PASSWORD, mykey_hub::access::Role::Admin, t)
        .unwrap();
    let token = hub
        .new_api_token(OPERATOR, mykey_hub::access::Scope::Admin, None, t)
        .unwrap()
        .token;
    drop(hub);
    Setup {
        world,
        silent,
        token,
    }
}

/// `mykey-hub serve` with `extra` flags; (process, libp2p address, dashboard URL).
fn serve(data: &Path, extra: &[&str]) -> (Proc, String, String) {
    let p = Proc::spawn(
        "hub",
        Command::new(bin("mykey-hub"))
            .arg("--data")
            .arg(data)
            .args([
                "serve",
                "--listen",
                "/ip4/127.0.0.1/tcp/0",
                "--http",
                "127.0.0.1:0",
            ])
            .args(extra),
    );
    let (mut addr, mut url) = (None, None);
    while addr.is_none() || url.is_none() {
        let line = p.line_starting("", Duration::from_secs(30));
        if let Some(a) = line.strip_prefix("listening on ") {
            addr = Some(a.to_owned());
        } else if let Some(u) = line.strip_prefix("dashboard on ") {
            url = Some(u.trim_end_matches('/').to_owned());
        }
    }
    (p, addr.unwrap(), url.unwrap())
}

/// A TCP proxy to the dashboard that the test can cut (every connection
/// closed, new ones closed as they arrive) and mend.
struct Proxy {
    port: u16,
    up: Arc<AtomicBool>,
    open: Arc<Mutex<Vec<TcpStream>>>,
}

impl Proxy {
    fn to(target: SocketAddr) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let up = Arc::new(AtomicBool::new(true));
        let open: Arc<Mutex<Vec<TcpStream>>> = Arc::default();
        let (up2, open2) = (up.clone(), open.clone());
        std::thread::spawn(move || {
            for client in listener.incoming() {
                let Ok(client) = client else { continue };
                if !up2.load(Ordering::SeqCst) {
                    let _ = client.shutdown(Shutdown::Both);
                    continue;
                }
                let Ok(server) = TcpStream::connect(target) else {
                    continue;
                };
                {
                    let mut o = open2.lock().unwrap();
                    o.push(client.try_clone().unwrap());
                    o.push(server.try_clone().unwrap());
                }
                for (mut from, mut to) in [
                    (client.try_clone().unwrap(), server.try_clone().unwrap()),
                    (server, client),
                ] {
                    std::thread::spawn(move || {
                        let _ = std::io::copy(&mut from, &mut to);
                        let _ = to.shutdown(Shutdown::Write);
                    });
                }
            }
        });
        Proxy { port, up, open }
    }

    fn cut(&self) {
        self.up.store(false, Ordering::SeqCst);
        for s in self.open.lock().unwrap().drain(..) {
            let _ = s.shutdown(Shutdown::Both);
        }
    }

    fn mend(&self) {
        self.up.store(true, Ordering::SeqCst);
    }
}

/// The browser script, paced line by line.
struct Browser {
    child: std::process::Child,
    out: BufReader<std::process::ChildStdout>,
}

impl Browser {
    /// `node SCRIPT ARGS` in `tests/dashboard`, with the operator's password
    /// in its environment.
    fn spawn(js: &Path, script: &str, args: &[String]) -> Browser {
        let mut child = Command::new("node")
            .current_dir(js)
            .arg(script)
            .args(args)
            .env("DASHBOARD_PASSWORD", PASSWORD)
            .env("CHROMIUM", CHROMIUM)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("node (Node.js) runs the browser script");
        let out = BufReader::new(child.stdout.take().expect("piped stdout"));
        Browser { child, out }
    }

    /// The next step's JSON (the script waits after printing it).
    fn step(&mut self, want: &str) -> Value {
        let mut line = String::new();
        loop {
            line.clear();
            let n = self.out.read_line(&mut line).unwrap();
            assert!(n > 0, "the browser script ended before step {want:?}");
            if let Ok(v) = serde_json::from_str::<Value>(line.trim()) {
                assert_eq!(v["step"], want, "{v}");
                return v;
            }
        }
    }

    fn go(&mut self) {
        let stdin = self.child.stdin.as_mut().unwrap();
        stdin.write_all(b"go\n").unwrap();
        stdin.flush().unwrap();
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn the_overview_updates_live_survives_a_cut_and_fits_narrow_screens() {
    let js = require_browser();
    let s = setup();
    let (_hub, hub_addr, url) = serve(&s.world.hub_dir, &[]);
    let target: SocketAddr = url.trim_start_matches("http://").parse().unwrap();
    let proxy = Proxy::to(target);
    let proxied = format!("http://127.0.0.1:{}", proxy.port);
    let (a, b) = (&s.world.node_ids[0], &s.world.node_ids[1]);

    let artifacts = artifacts_dir();
    let mut browser = Browser::spawn(
        &js,
        "live.mjs",
        &[
            proxied,
            OPERATOR.into(),
            "-".into(),
            artifacts.display().to_string(),
            a.to_string(),
            b.to_string(),
        ],
    );

    let ready = browser.step("ready");
    for (size, m) in [("1280", &ready["wide"]), ("400", &ready["narrow"])] {
        let table = m["table_scroll_width"].as_u64().unwrap();
        let card = m["card_client_width"].as_u64().unwrap();
        assert!(
            table <= card,
            "at {size} px the node table ({table} px) spills out of its card ({card} px): {m}"
        );
        assert_eq!(m["last_contact_shown"], true, "{size}: {m}");
        assert_eq!(m["reachable_shown"], true, "{size}: {m}");
        assert!(
            m["document_scroll_width"].as_u64() <= m["viewport"].as_u64(),
            "at {size} px the page scrolls sideways: {m}"
        );
    }
    // At 1,280 px a table with the important columns; at 400 px a stack of
    // labelled lines.
    assert!(
        ready["wide"]["header_columns_shown"].as_u64().unwrap() >= 8,
        "{ready}"
    );
    assert_eq!(ready["wide"]["row_display"], "table-row", "{ready}");
    assert_eq!(ready["narrow"]["row_display"], "block", "{ready}");
    assert!(
        ready["narrow"]["last_contact_label"]
            .as_str()
            .unwrap()
            .contains("最終通信"),
        "{ready}"
    );

    // A node connects: the open page shows it within seconds, unreloaded.
    let _node_a = start_node("a", &s.world.nodes[0], Some(&hub_addr), &[]);
    browser.go();
    let updated = browser.step("updated");
    assert_eq!(updated["not_reloaded"], true, "{updated}");
    assert_eq!(updated["contact"], "接続中", "{updated}");

    // The network between browser and hub goes: the page says so.
    proxy.cut();
    browser.go();
    let stale = browser.step("stale");
    assert_eq!(stale["body_stale"], true, "{stale}");
    assert!(
        stale["status_text"].as_str().unwrap().contains("再接続中"),
        "{stale}"
    );

    // Meanwhile node B connects; then the network returns.
    let _node_b = start_node("b", &s.world.nodes[1], Some(&hub_addr), &[]);
    wait_until("node B's Hello at the hub", Duration::from_secs(30), || {
        net_common::caught_up(&s.world.nodes[1])
    });
    proxy.mend();
    browser.go();
    let back = browser.step("recovered");
    assert_eq!(back["not_reloaded"], true, "{back}");
    assert_eq!(back["body_stale"], false, "{back}");

    browser.go();
    let node_page = browser.step("node-page");
    assert_eq!(node_page["help_href"], "/help#alert-silent", "{node_page}");
    assert_eq!(node_page["help_title"], "Silent", "{node_page}");
    assert_eq!(
        node_page["stream"],
        format!("/events/nodes/{a}").as_str(),
        "{node_page}"
    );
    let n = &node_page["narrow"];
    assert!(
        n["table_scroll_width"].as_u64() <= n["card_client_width"].as_u64(),
        "at 400 px the node's facts spill out of their card: {n}"
    );
    let status = browser.child.wait().unwrap();
    assert!(status.success(), "the browser script failed");
}

/// What a raw `GET path` with the token answers: status line and headers,
/// and the open socket (a stream stays open).
fn open_stream(base: &str, path: &str, token: &str) -> (u16, String, TcpStream) {
    let hostport = base.trim_start_matches("http://");
    let mut s = TcpStream::connect(hostport).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {hostport}\r\nAuthorization: Bearer {token}\r\nAccept: text/event-stream\r\n\r\n"
    )
    .unwrap();
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        assert_eq!(
            s.read(&mut byte).unwrap(),
            1,
            "the hub closed before its answer"
        );
        head.push(byte[0]);
    }
    let head = String::from_utf8(head).unwrap();
    let code = head.split(' ').nth(1).unwrap().parse().unwrap();
    (code, head, s)
}

#[test]
fn live_streams_beyond_the_limit_are_refused_with_503_and_pages_poll() {
    let js = require_browser();
    let s = setup();
    let (_hub, hub_addr, url) = serve(&s.world.hub_dir, &["--max-live-streams", "2"]);
    let (c1, h1, s1) = open_stream(&url, "/events", &s.token);
    assert_eq!(c1, 200, "{h1}");
    assert!(h1.contains("content-type: text/event-stream"), "{h1}");
    let node = s.silent.to_string();
    let (c2, h2, _s2) = open_stream(&url, &format!("/events/nodes/{node}"), &s.token);
    assert_eq!(c2, 200, "{h2}");
    // The first message sets the browser's reconnect delay.
    // (the body is chunked: read its first chunk).
    let mut first = [0u8; 24];
    let mut s1r = s1.try_clone().unwrap();
    s1r.read_exact(&mut first).unwrap();
    let first = String::from_utf8_lossy(&first);
    assert!(first.contains("\r\nretry: 2000\n"), "{first:?}");

    let (c3, h3, mut s3) = open_stream(&url, "/events", &s.token);
    assert_eq!(c3, 503, "{h3}");
    assert!(h3.to_ascii_lowercase().contains("retry-after: 30"), "{h3}");
    let mut body = String::new();
    let _ = s3.read_to_string(&mut body);
    assert!(
        body.contains("2 live dashboard views") && body.contains("--max-live-streams"),
        "{body}"
    );
    // Pages and the API are not counted against the streams.
    let (c4, _, _) = open_stream(&url, "/api/nodes", &s.token);
    assert_eq!(c4, 200);

    // A page whose stream is refused, and one in a browser without
    // EventSource, poll instead, and still show what changes.
    let mut browser = Browser::spawn(
        &js,
        "fallback.mjs",
        &[
            url.clone(),
            OPERATOR.into(),
            "-".into(),
            s.world.node_ids[0].to_string(),
        ],
    );
    let polling = browser.step("polling");
    assert_eq!(
        polling["texts"],
        serde_json::json!(["数秒ごとに更新", "数秒ごとに更新"]),
        "{polling}"
    );
    let _node = start_node("a", &s.world.nodes[0], Some(&hub_addr), &[]);
    browser.go();
    let updated = browser.step("updated");
    assert_eq!(
        updated["not_reloaded"],
        serde_json::json!([true, true]),
        "{updated}"
    );
    assert!(browser.child.wait().unwrap().success());

    // A closed stream gives its place back (the hub notices at its next
    // write, a keep-alive at the latest).
    drop(s1r);
    s1.shutdown(Shutdown::Both).unwrap();
    drop(s1);
    wait_until(
        "a place for a new live view",
        Duration::from_secs(40),
        || open_stream(&url, "/events", &s.token).0 == 200,
    );
}
