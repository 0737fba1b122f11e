//! The operator dashboard in a real browser: a running `mykey-hub serve`
//! with three nodes in different states (one healthy and connected, one
//! silent for three days, one whose transaction the hub rejected), loaded in
//! Debian's headless Chromium through playwright-core (`tests/dashboard/`),
//! logged in, and read back from the DOM; screenshots go to
//! `target/test-artifacts/`. `/metrics` is scraped and parsed as Prometheus
//! text format, and the JSON API is read with a bearer token.
//!
//! Needs: `/usr/bin/chromium` (`apt-get install -y chromium fonts-noto-cjk`),
//! Node.js with `npm ci --prefix tests/dashboard`, and the binaries
//! (`cargo build -p mykey-node -p mykey-hub --bins`). Missing parts fail the
//! test with the command that installs them; nothing is skipped.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod net_common;

use mykey_hub::{Facility, FacilityKind, Hub, NodePolicy};
use mykey_node::config::{DataDir, NodeConfig};
use mykey_sync_proto::wire::Hello;
use mykey_sync_proto::{
    FacilityId, MunicipalityCode, MyKeyId, NodeId, OpKind, ProgramId, UnixMillis,
};
use net_common::{
    Proc, bin, card, card_arg, caught_up, node_cli, now, pts, start_node, status, wait_until,
};
use serde_json::Value;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

const OPERATOR: &str = "ops-tanaka";
const PASSWORD: &str = "sakura-2026-hub";
const DAY_MS: u64 = 24 * 3600 * 1000;
const CHROMIUM: &str = "/usr/bin/chromium";

fn repo_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_owned()
}

/// `target/test-artifacts`, beside the binaries' profile directory.
fn artifacts_dir() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    // target/<profile>/deps/<test> → target/
    let target = exe.ancestors().nth(3).unwrap().to_owned();
    let dir = target.join("test-artifacts");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn require_browser() -> PathBuf {
    assert!(
        Path::new(CHROMIUM).is_file(),
        "{CHROMIUM} is missing: the dashboard test needs a real browser. \
         Install it with `apt-get install -y chromium fonts-noto-cjk` (scripts/test.sh does)."
    );
    let js = repo_dir().join("tests/dashboard");
    assert!(
        js.join("node_modules/playwright-core/package.json")
            .is_file(),
        "playwright-core is missing: run `npm ci --prefix tests/dashboard` (scripts/test.sh does)"
    );
    let node = Command::new("node").arg("--version").output();
    assert!(
        node.is_ok_and(|o| o.status.success()),
        "Node.js is missing: the dashboard test drives Chromium with playwright-core under node"
    );
    js
}

/// The three nodes and what they are.
struct Setup {
    hub_dir: PathBuf,
    healthy: (PathBuf, NodeId),
    silent: NodeId,
    rejecting: (PathBuf, NodeId),
    taito_card: String,
    token: String,
    _root: tempfile::TempDir,
}

fn muni(code: &str) -> MunicipalityCode {
    MunicipalityCode::parse(code).unwrap()
}

fn setup() -> Setup {
    let root = tempfile::tempdir().unwrap();
    let hub_dir = root.path().join("hub");
    let t = now();
    let mut hub = Hub::init(&hub_dir).unwrap();
    let (bunkyo, taito) = (muni("131059"), muni("131067"));
    hub.add_municipality(bunkyo, "文京区", t).unwrap();
    hub.add_municipality(taito, "台東区", t).unwrap();
    let health = ProgramId::parse("health").unwrap();
    let volunteer = ProgramId::parse("volunteer").unwrap();
    hub.create_program(&health, bunkyo, pts(5_000_000), t)
        .unwrap();
    hub.create_program(&volunteer, taito, pts(2_000_000), t)
        .unwrap();

    let mut enrol = |id: &str, m, kind, name: &str, ops: Vec<OpKind>| {
        let facility = FacilityId::parse(id).unwrap();
        hub.add_facility(
            &Facility {
                id: facility.clone(),
                municipality: m,
                kind,
                name: name.to_owned(),
            },
            t,
        )
        .unwrap();
        let dir = root.path().join(id);
        let node = DataDir::new(&dir)
            .init(&NodeConfig {
                hub_key: hub.hub_id().to_string(),
                hub_addr: None,
            })
            .unwrap();
        hub.enrol_node(
            node.id(),
            &facility,
            NodePolicy {
                allowed_ops: ops,
                per_card_offline_limit: pts(10_000),
                node_exposure_limit: pts(100_000),
                offline_voucher_cap: pts(100_000),
                pin_threshold: pts(10_000),
                valid_until: t.plus_ms(365 * DAY_MS),
            },
            t,
        )
        .unwrap();
        (dir, node.id())
    };
    let healthy = enrol(
        "lib-koishikawa",
        bunkyo,
        FacilityKind::Library,
        "小石川図書館",
        vec![OpKind::Link],
    );
    let silent = enrol(
        "lib-sendagi",
        bunkyo,
        FacilityKind::Library,
        "千駄木図書館",
        vec![OpKind::Link],
    );
    let rejecting = enrol(
        "shop-ueno",
        taito,
        FacilityKind::Shop,
        "上野 いろは堂",
        vec![OpKind::Redeem, OpKind::Grant],
    );

    let c1 = card(0x2001);
    let a1 = hub
        .register_account(&MyKeyId::parse("hanako").unwrap(), bunkyo, &c1, t)
        .unwrap();
    hub.admin_grant(a1, &health, pts(3_000), t).unwrap();
    let c2 = card(0x2002);
    let a2 = hub
        .register_account(&MyKeyId::parse("taro").unwrap(), taito, &c2, t)
        .unwrap();
    hub.admin_grant(a2, &volunteer, pts(1_500), t).unwrap();
    // Bunkyo runs a settlement now; Taito has none yet.
    hub.close_periods_through_now(bunkyo, t).unwrap();

    // The silent library last said Hello three days ago.
    let then = UnixMillis(t.0 - 3 * DAY_MS);
    let welcome = hub
        .try_open(
            &Hello {
                node: silent.1,
                node_time: then,
                last_seq: 0,
                fact_cursor: 0,
                software: "mykey-node/0.1.0".into(),
            },
            then,
        )
        .unwrap();
    assert!(welcome.is_ok(), "{welcome:?}");

    hub.set_operator(OPERATOR, PASSWORD, mykey_hub::access::Role::Admin, t)
        .unwrap();
    let token = hub
        .new_api_token(OPERATOR, mykey_hub::access::Scope::Admin, None, t)
        .unwrap()
        .token;
    Setup {
        hub_dir,
        healthy,
        silent: silent.1,
        rejecting,
        taito_card: card_arg(&c2),
        token,
        _root: root,
    }
}

/// `mykey-hub serve` with the dashboard on a free loopback port; returns the
/// process, the libp2p address and the dashboard's base URL.
fn start_hub(data: &Path) -> (Proc, String, String) {
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
            ]),
    );
    let (mut addr, mut url) = (None, None);
    while addr.is_none() || url.is_none() {
        // The two lines come from two tasks, in either order.
        let line = p.line_starting("", Duration::from_secs(30));
        if let Some(a) = line.strip_prefix("listening on ") {
            addr = Some(a.to_owned());
        } else if let Some(u) = line.strip_prefix("dashboard on ") {
            url = Some(u.trim_end_matches('/').to_owned());
        }
    }
    (p, addr.unwrap(), url.unwrap())
}

/// A plain HTTP/1.1 GET; returns (status, content type, body).
fn get(base: &str, path: &str, token: Option<&str>) -> (u16, String, String) {
    let hostport = base.trim_start_matches("http://");
    let mut s = TcpStream::connect(hostport).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    let auth = token.map_or_else(String::new, |t| format!("Authorization: Bearer {t}\r\n"));
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {hostport}\r\n{auth}Connection: close\r\n\r\n"
    )
    .unwrap();
    let mut raw = vec![];
    s.read_to_end(&mut raw).unwrap();
    let text = String::from_utf8(raw).unwrap();
    let (head, body) = text.split_once("\r\n\r\n").unwrap();
    let status: u16 = head.split(' ').nth(1).unwrap().parse().unwrap();
    let header = |name: &str| {
        head.lines()
            .find_map(|l| {
                l.split_once(':')
                    .filter(|(k, _)| k.eq_ignore_ascii_case(name))
            })
            .map(|(_, v)| v.trim().to_owned())
    };
    let body = if header("transfer-encoding").as_deref() == Some("chunked") {
        dechunk(body)
    } else {
        body.to_owned()
    };
    (status, header("content-type").unwrap_or_default(), body)
}

fn dechunk(mut body: &str) -> String {
    let mut out = String::new();
    loop {
        let (size, rest) = body.split_once("\r\n").unwrap();
        let n = usize::from_str_radix(size.trim(), 16).unwrap();
        if n == 0 {
            return out;
        }
        out.push_str(&rest[..n]);
        body = &rest[n + 2..];
    }
}

fn api_nodes(url: &str, token: &str) -> Vec<Value> {
    let (code, _, body) = get(url, "/api/nodes", Some(token));
    assert_eq!(code, 200, "{body}");
    let v: Value = serde_json::from_str(&body).unwrap();
    v["nodes"].as_array().unwrap().clone()
}

fn node_json<'a>(nodes: &'a [Value], id: &NodeId) -> &'a Value {
    let id = id.to_string();
    nodes.iter().find(|n| n["id"] == id.as_str()).unwrap()
}

fn alert_kinds(n: &Value) -> Vec<String> {
    n["alerts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["kind"].as_str().unwrap().to_owned())
        .collect()
}

fn metric(scrape: &prometheus_parse::Scrape, name: &str, label: Option<(&str, &str)>) -> f64 {
    let s = scrape
        .samples
        .iter()
        .find(|s| s.metric == name && label.is_none_or(|(k, v)| s.labels.get(k) == Some(v)))
        .unwrap_or_else(|| panic!("no sample {name} {label:?} in /metrics"));
    match s.value {
        prometheus_parse::Value::Counter(v)
        | prometheus_parse::Value::Gauge(v)
        | prometheus_parse::Value::Untyped(v) => v,
        ref other => panic!("{name} is not a plain value: {other:?}"),
    }
}

#[test]
fn dashboard_in_a_real_browser_finds_the_silent_and_the_rejecting_node() {
    let js = require_browser();
    let w = setup();
    let (_hub, hub_addr, url) = start_hub(&w.hub_dir);

    // Nothing is public.
    for path in ["/", "/api/nodes", "/metrics", "/nodes/00"] {
        let (code, _, _) = get(&url, path, None);
        assert!(
            code == 303 || code == 401,
            "{path} answered {code} without login"
        );
    }
    let (code, _, _) = get(&url, "/api/nodes", Some("mkh_forged"));
    assert_eq!(code, 401);

    let _a = start_node("healthy", &w.healthy.0, Some(&hub_addr), &[]);
    let _c = start_node("rejecting", &w.rejecting.0, Some(&hub_addr), &[]);
    wait_until("both nodes caught up", Duration::from_secs(60), || {
        caught_up(&w.healthy.0) && caught_up(&w.rejecting.0)
    });
    // A grant from a programme the hub does not know: the hub rejects it.
    node_cli(
        &w.rejecting.0,
        &[
            "grant",
            "--card",
            &w.taito_card,
            "--program",
            "no-such-programme",
            "--points",
            "100",
        ],
    );
    wait_until(
        "the rejection receipted at the node",
        Duration::from_secs(60),
        || status(&w.rejecting.0)["rejected"] == 1,
    );
    wait_until(
        "the dashboard's API shows the three states",
        Duration::from_secs(60),
        || {
            let nodes = api_nodes(&url, &w.token);
            node_json(&nodes, &w.healthy.1)["health"] == "healthy"
                && node_json(&nodes, &w.healthy.1)["connected"] == true
                && node_json(&nodes, &w.silent)["health"] == "alert"
                && node_json(&nodes, &w.rejecting.1)["health"] == "alert"
        },
    );
    let nodes = api_nodes(&url, &w.token);
    assert_eq!(nodes.len(), 3);
    assert_eq!(alert_kinds(node_json(&nodes, &w.silent)), ["silent"]);
    assert_eq!(
        alert_kinds(node_json(&nodes, &w.rejecting.1)),
        ["rejections"]
    );
    assert!(alert_kinds(node_json(&nodes, &w.healthy.1)).is_empty());
    let silent = node_json(&nodes, &w.silent);
    assert_eq!(silent["facility_name"], "千駄木図書館");
    assert!(now().0 - silent["last_contact_ms"].as_u64().unwrap() >= 3 * DAY_MS - 60_000);
    assert_eq!(node_json(&nodes, &w.rejecting.1)["rejected_total"], 1);
    assert_eq!(
        node_json(&nodes, &w.rejecting.1)["last_refusal_reason"],
        "unknown-program"
    );
    // Connected a moment ago: one session in the last day, reachable for
    // part of the time since it was enrolled.
    assert_eq!(node_json(&nodes, &w.healthy.1)["sessions_24h"], 1);
    let reach = node_json(&nodes, &w.healthy.1)["reachable_permille_24h"]
        .as_u64()
        .unwrap();
    assert!(reach > 0 && reach <= 1000, "{reach}");

    let (code, _, body) = get(
        &url,
        &format!("/api/nodes/{}", w.rejecting.1),
        Some(&w.token),
    );
    assert_eq!(code, 200, "{body}");
    let detail: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(detail["rejections"][0]["reason"], "unknown-program");
    assert!(!detail["sessions"].as_array().unwrap().is_empty());

    let (code, _, body) = get(&url, "/api/liabilities", Some(&w.token));
    assert_eq!(code, 200);
    let l: Value = serde_json::from_str(&body).unwrap();
    let wallets: Vec<i64> = l["liabilities"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x["wallets"].as_i64().unwrap())
        .collect();
    assert_eq!(wallets, [3_000, 1_500]);
    let (code, _, body) = get(&url, "/api/settlement", Some(&w.token));
    assert_eq!(code, 200, "{body}");
    let st: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(st["settlement"][0]["periods_closed"], 1, "{st}");
    assert!(st["settlement"][1]["latest"].is_null(), "{st}");
    let (code, _, body) = get(&url, "/api/openapi.json", Some(&w.token));
    assert_eq!(code, 200);
    let doc: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(doc["openapi"], "3.1.0");

    // /metrics, parsed as Prometheus text format.
    let (code, ctype, body) = get(&url, "/metrics", Some(&w.token));
    assert_eq!(code, 200, "{body}");
    assert!(ctype.starts_with("text/plain; version=0.0.4"), "{ctype}");
    std::fs::write(artifacts_dir().join("metrics.txt"), &body).unwrap();
    let scrape = prometheus_parse::Scrape::parse(body.lines().map(|l| Ok(l.to_owned()))).unwrap();
    assert_eq!(
        metric(&scrape, "mykey_hub_nodes", Some(("state", "alert"))),
        2.0
    );
    assert_eq!(
        metric(&scrape, "mykey_hub_nodes", Some(("state", "healthy"))),
        1.0
    );
    assert_eq!(
        metric(&scrape, "mykey_hub_alerts", Some(("kind", "silent"))),
        1.0
    );
    assert_eq!(
        metric(&scrape, "mykey_hub_alerts", Some(("kind", "rejections"))),
        1.0
    );
    assert_eq!(
        metric(
            &scrape,
            "mykey_hub_rejections_total",
            Some(("reason", "unknown-program"))
        ),
        1.0
    );
    assert_eq!(
        metric(
            &scrape,
            "mykey_hub_transactions_total",
            Some(("outcome", "rejected"))
        ),
        1.0
    );
    let silent_age = scrape
        .samples
        .iter()
        .find(|s| {
            s.metric == "mykey_hub_node_last_contact_age_seconds"
                && s.labels.get("node") == Some(w.silent.short().as_str())
        })
        .expect("the silent node's last contact age");
    assert!(
        matches!(silent_age.value, prometheus_parse::Value::Gauge(v) if v >= (3 * DAY_MS / 1000) as f64 - 60.0),
        "{silent_age:?}"
    );
    let lag = scrape
        .samples
        .iter()
        .find(|s| s.metric == "mykey_hub_sync_lag_seconds")
        .expect("the sync lag histogram");
    match &lag.value {
        prometheus_parse::Value::Histogram(buckets) => {
            assert!(
                buckets.windows(2).all(|w| w[0].count <= w[1].count),
                "{buckets:?}"
            );
            assert!(
                buckets
                    .iter()
                    .any(|b| b.less_than.is_infinite() && b.count >= 1.0),
                "{buckets:?}"
            );
        }
        other => panic!("mykey_hub_sync_lag_seconds is not a histogram: {other:?}"),
    }

    // The node's own view: `mykey-node status` reads the running node's
    // local status page for the link facts.
    let a = status(&w.healthy.0);
    assert_eq!(a["running"], true, "{a}");
    assert_eq!(a["hub_link"], "up", "{a}");
    let c = status(&w.rejecting.0);
    assert_eq!(c["rejected"], 1, "{c}");
    assert!(c["last_receipt_at_ms"].as_u64().is_some(), "{c}");
    let text = node_cli(&w.rejecting.0, &["status"]);
    assert!(text.contains("hub link: up"), "{text}");
    let page_url = std::fs::read_to_string(w.healthy.0.join("status.url")).unwrap();
    let page_url = page_url.trim().trim_end_matches('/');
    let (code, _, page) = get(page_url, "/", None);
    assert_eq!(code, 200);
    assert!(
        page.contains("ハブとの接続") && page.contains("接続中"),
        "{page}"
    );
    std::fs::write(artifacts_dir().join("node-status.html"), &page).unwrap();

    // The browser.
    let artifacts = artifacts_dir();
    let out = Command::new("node")
        .current_dir(&js)
        .arg("check.mjs")
        .args([&url, OPERATOR, "-"])
        .arg(&artifacts)
        .arg(page_url)
        .env("DASHBOARD_PASSWORD", PASSWORD)
        .env("CHROMIUM", CHROMIUM)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "the browser run failed: {stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let b: Value = serde_json::from_str(stdout.lines().last().unwrap()).unwrap();
    assert_eq!(b["login_url"], "/login");
    assert_eq!(b["login_lang"], "ja");
    assert_eq!(b["bad_login_error"], "運用者名またはパスワードが違います。");
    assert_eq!(b["lang"], "ja");
    assert_eq!(b["title"], "MyKey Edge ハブ運用ダッシュボード");
    assert!(
        b["nodes_heading"]
            .as_str()
            .unwrap()
            .starts_with("ノード一覧"),
        "{b}"
    );
    let rows = b["rows"].as_array().unwrap();
    assert_eq!(rows.len(), 3, "{b}");
    let row = |id: &NodeId| {
        let id = id.to_string();
        rows.iter()
            .find(|r| r["node"] == id.as_str())
            .unwrap_or_else(|| panic!("no row for {id}: {b}"))
    };
    assert_eq!(row(&w.healthy.1)["health"], "healthy");
    assert_eq!(row(&w.healthy.1)["last_contact"], "接続中");
    assert_eq!(row(&w.silent)["health"], "alert");
    assert_eq!(row(&w.silent)["alerts"], serde_json::json!(["silent"]));
    assert!(
        row(&w.silent)["last_contact"]
            .as_str()
            .unwrap()
            .starts_with("3日"),
        "{b}"
    );
    assert!(
        row(&w.silent)["facility"]
            .as_str()
            .unwrap()
            .contains("千駄木図書館")
    );
    assert_eq!(
        row(&w.rejecting.1)["alerts"],
        serde_json::json!(["rejections"])
    );
    assert_eq!(row(&w.rejecting.1)["rejected"], "1 / 1");
    // Worst first: the two alerting nodes above the healthy one.
    assert_eq!(rows[2]["node"], w.healthy.1.to_string());

    let alerts = b["alerts"].as_array().unwrap();
    let has_alert = |kind: &str, id: &NodeId| {
        alerts
            .iter()
            .any(|a| a["kind"] == kind && a["node"] == id.to_string().as_str())
    };
    assert!(has_alert("silent", &w.silent), "{b}");
    assert!(has_alert("rejections", &w.rejecting.1), "{b}");
    assert_eq!(alerts.len(), 2, "{b}");
    assert!(
        alerts
            .iter()
            .any(|a| a["text"].as_str().unwrap().contains("無通信")),
        "{b}"
    );
    // The rejection alert says why, in Japanese.
    assert!(
        alerts
            .iter()
            .any(|a| a["text"].as_str().unwrap().contains("登録されていない事業")),
        "{b}"
    );

    assert_eq!(b["live_refreshed"], true);
    assert_eq!(
        b["settlement"],
        serde_json::json!({"131059": "closed", "131067": "none"}),
        "{b}"
    );
    let ids = |v: &Value| -> Vec<String> {
        let mut v: Vec<String> = v
            .as_array()
            .unwrap()
            .iter()
            .map(|x| x.as_str().unwrap().to_owned())
            .collect();
        v.sort();
        v
    };
    let sorted = |mut v: Vec<String>| {
        v.sort();
        v
    };
    assert_eq!(
        ids(&b["rows_alert_filter"]),
        sorted(vec![w.silent.to_string(), w.rejecting.1.to_string()])
    );
    assert_eq!(
        ids(&b["rows_municipality_filter"]),
        sorted(vec![w.silent.to_string(), w.healthy.1.to_string()])
    );
    assert_eq!(b["rows_sorted_last_contact"][0], w.silent.to_string());
    assert_eq!(b["en_lang"], "en");
    assert!(
        b["en_nodes_heading"].as_str().unwrap().starts_with("Nodes"),
        "{b}"
    );
    assert_eq!(b["detail_reasons"], serde_json::json!(["unknown-program"]));
    assert_eq!(b["detail_alerts"], serde_json::json!(["rejections"]));
    assert_eq!(b["after_logout"], "/login");
    assert_eq!(b["node_page_hub_link"], "接続中", "{b}");
    for shot in [
        "dashboard-ja.png",
        "dashboard-en.png",
        "dashboard-node.png",
        "node-status-page.png",
    ] {
        let p = artifacts.join(shot);
        let len = std::fs::metadata(&p).map_or(0, |m| m.len());
        assert!(len > 10_000, "{} is missing or empty", p.display());
    }
}
