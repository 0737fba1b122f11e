//! The status history's charts in a real browser, across a restart of the
//! hub: a simulated day written through the store API into a real hub's
//! SQLite file (a library's backlog rising, the node down for three hours,
//! the backlog draining when it is back), then the real `mykey-hub serve`,
//! read in Debian's headless Chromium through playwright-core
//! (`tests/dashboard/charts.mjs`): the node page's, the municipality's and
//! the sparkline's SVGs show the gap as a gap and the drain as falling
//! values. The serving hub samples the slot that ended on its own, and a
//! restarted `serve` answers with the same history (API and page).
//!
//! Needs what `dashboard.rs` needs: `/usr/bin/chromium`, Node.js with
//! `npm ci --prefix tests/dashboard`, and the binaries
//! (`cargo build -p mykey-node -p mykey-hub --bins`).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod net_common;

use mykey_hub::status::history::SLOT_MS;
use mykey_hub::store::history::HistorySample;
use mykey_hub::{Facility, FacilityKind, Hub, HubPaths, LedgerStore, NodePolicy, SqliteStore};
use mykey_sync_proto::{FacilityId, MunicipalityCode, NodeId, OpKind, UnixMillis};
use net_common::{Proc, bin, now, pts, wait_until};
use serde_json::Value;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

const OPERATOR: &str = "ops-suzuki";
const PASSWORD: &str = "hongo-2026-charts";
const CHROMIUM: &str = "/usr/bin/chromium";
const MUNI: &str = "131016";

/// The simulated day, one slot (five minutes) each: `SLOTS` slots ending
/// with the slot before the one that ended last (that one is the serving
/// hub's to write).
const SLOTS: u64 = 263;
const RISING: std::ops::Range<u64> = 60..96;
const DOWN: std::ops::Range<u64> = 96..132;
const DRAINING: std::ops::Range<u64> = 132..156;

fn len(r: &std::ops::Range<u64>) -> usize {
    (r.end - r.start) as usize
}

/// Slot `k`: (link up, backlog as last reported).
fn day(k: u64) -> (bool, u64) {
    if RISING.contains(&k) {
        (true, 5 * (k - RISING.start + 1))
    } else if DOWN.contains(&k) {
        // Down: the backlog last reported is stale; it must not be drawn.
        (false, 180)
    } else if DRAINING.contains(&k) {
        (true, 240 - 10 * (k - DRAINING.start))
    } else {
        (true, 0)
    }
}

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
        "{CHROMIUM} is missing: install it with `apt-get install -y chromium fonts-noto-cjk`"
    );
    let js = repo_dir().join("tests/dashboard");
    assert!(
        js.join("node_modules/playwright-core/package.json")
            .is_file(),
        "playwright-core is missing: run `npm ci --prefix tests/dashboard`"
    );
    js
}

/// A hub with one library node in 本郷 and the simulated day in its store;
/// returns the node and the last slot written.
fn setup(dir: &Path) -> (NodeId, UnixMillis) {
    let t = now();
    let m = MunicipalityCode::parse(MUNI).unwrap();
    let mut hub = Hub::init(dir).unwrap();
    hub.add_municipality(m, "千代田区", t).unwrap();
    let facility = FacilityId::parse("lib-hongo").unwrap();
    hub.add_facility(
        &Facility {
            id: facility.clone(),
            municipality: m,
            kind: FacilityKind::Library,
            name: "本郷図書館 <分室>".into(),
        },
        t,
    )
    .unwrap();
    let node = NodeId::from_bytes(
        ed25519_dalek::SigningKey::from_bytes(&[42; 32])
            .verifying_key()
            .to_bytes(),
    )
    .unwrap();
    // Enrolled before the day began.
    let day_start = UnixMillis((t.0 / SLOT_MS - 1 - SLOTS) * SLOT_MS);
    hub.enrol_node(
        node,
        &facility,
        NodePolicy {
            allowed_ops: vec![OpKind::Link],
            per_card_offline_limit: pts(10_000),
            node_exposure_limit: pts(100_000),
            offline_voucher_cap: pts(100_000),
            pin_threshold: pts(10_000),
            valid_until: t.plus_ms(365 * 86_400_000),
        },
        UnixMillis(day_start.0 - SLOT_MS),
    )
    .unwrap();
    hub.set_operator(OPERATOR, PASSWORD, mykey_hub::access::Role::Admin, t)
        .unwrap();
    drop(hub);

    // The day, through the storage interface, as the serving hub writes it.
    let samples: Vec<HistorySample> = (0..SLOTS)
        .map(|k| {
            let (up, backlog) = day(k);
            HistorySample {
                node,
                slot: day_start.plus_ms(k * SLOT_MS),
                span_ms: SLOT_MS as u32,
                up_permille: if up { 1000 } else { 0 },
                unconfirmed: backlog,
                oldest_unconfirmed_ms: (backlog > 0).then_some(k % 36 * SLOT_MS),
                refusals: u64::from(k == 150),
                refusals_total: u64::from(k >= 150),
                clock_skew_ms: Some(800),
            }
        })
        .collect();
    let mut store = SqliteStore::open(&HubPaths::of(dir).db).unwrap();
    let mut tx = store.begin().unwrap();
    assert_eq!(tx.insert_history(&samples).unwrap(), SLOTS);
    tx.commit().unwrap();
    (node, day_start.plus_ms((SLOTS - 1) * SLOT_MS))
}

/// `mykey-hub serve` with the dashboard on a free loopback port; returns the
/// process and the dashboard's base URL.
fn start_hub(data: &Path) -> (Proc, String) {
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
    let line = p.line_starting("dashboard on ", Duration::from_secs(30));
    let url = line["dashboard on ".len()..]
        .trim_end_matches('/')
        .to_owned();
    (p, url)
}

/// A plain HTTP/1.1 GET with a bearer token: (status, body).
fn get(base: &str, path: &str, token: &str) -> (u16, String) {
    let hostport = base.trim_start_matches("http://");
    let mut s = TcpStream::connect(hostport).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {hostport}\r\nAuthorization: Bearer {token}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut raw = vec![];
    s.read_to_end(&mut raw).unwrap();
    let text = String::from_utf8(raw).unwrap();
    let (head, body) = text.split_once("\r\n\r\n").unwrap();
    let status: u16 = head.split(' ').nth(1).unwrap().parse().unwrap();
    let body = if head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        let (mut rest, mut out) = (body, String::new());
        loop {
            let (size, tail) = rest.split_once("\r\n").unwrap();
            let n = usize::from_str_radix(size.trim(), 16).unwrap();
            if n == 0 {
                break out;
            }
            out.push_str(&tail[..n]);
            rest = &tail[n + 2..];
        }
    } else {
        body.to_owned()
    };
    (status, body)
}

fn history(url: &str, node: &NodeId, token: &str) -> Vec<Value> {
    let (code, body) = get(url, &format!("/api/nodes/{node}/history?window=24h"), token);
    assert_eq!(code, 200, "{body}");
    let v: Value = serde_json::from_str(&body).unwrap();
    v["samples"].as_array().unwrap().clone()
}

/// The stretches of known values in a chart's `data-values`, as `(start, values)`.
fn runs(values: &Value) -> Vec<(usize, Vec<f64>)> {
    let mut out: Vec<(usize, Vec<f64>)> = vec![];
    let mut prev_known = false;
    for (i, v) in values.as_array().unwrap().iter().enumerate() {
        match v.as_f64() {
            Some(x) if prev_known => out.last_mut().unwrap().1.push(x),
            Some(x) => out.push((i, vec![x])),
            None => {}
        }
        prev_known = !v.is_null();
    }
    out
}

/// A chart of the browser's answer shows the day: two stretches of line
/// around the three hours down, rising before, draining after.
fn shows_gap_and_drain(c: &Value, what: &str) {
    assert_eq!(c["runs"], 2, "{what}: {c}");
    assert_eq!(c["run_paths"], 2, "{what}: {c}");
    assert!(c["down_bands"].as_u64().unwrap() >= 1, "{what}: {c}");
    let r = runs(&c["values"]);
    assert_eq!(r.len(), 2, "{what}: {c}");
    let (before_start, before) = &r[0];
    let (after_start, after) = &r[1];
    let down = after_start - (before_start + before.len());
    assert_eq!(down, len(&DOWN), "{what}: three hours of gap: {c}");
    // Rising up to the outage: the last values before the gap climb.
    let tail = &before[before.len() - len(&RISING)..];
    assert!(tail.windows(2).all(|w| w[1] > w[0]), "{what}: {tail:?}");
    assert_eq!(tail.last(), Some(&180.0), "{what}");
    // Draining after: from the peak down to zero, never up.
    let drain = &after[..=len(&DRAINING)];
    assert_eq!(drain[0], 240.0, "{what}: {drain:?}");
    assert!(drain.windows(2).all(|w| w[1] < w[0]), "{what}: {drain:?}");
    assert_eq!(drain.last(), Some(&0.0), "{what}");
}

#[test]
fn charts_show_the_gap_and_the_drain_and_survive_a_restart_of_the_hub() {
    let js = require_browser();
    let root = tempfile::tempdir().unwrap();
    let dir = root.path().join("hub");
    let (node, last_written) = setup(&dir);
    let token = {
        let mut hub = Hub::open(&dir).unwrap();
        hub.new_api_token(OPERATOR, mykey_hub::access::Scope::Read, None, now())
            .unwrap()
            .token
    };

    let (mut hub, url) = start_hub(&dir);
    let before = history(&url, &node, &token);
    assert_eq!(before.len() as u64, SLOTS, "the whole day is in the window");
    let (code, body) = get(
        &url,
        &format!("/api/nodes/{node}/history?window=1y"),
        &token,
    );
    assert_eq!(code, 400);
    assert!(body.contains("window=24h or window=7d"), "{body}");
    let (code, body) = get(&url, &format!("/nodes/{node}?window=1y"), &token);
    assert_eq!(code, 400, "{body}");
    assert!(body.contains("window=24h or window=7d"), "{body}");

    // The browser.
    let artifacts = artifacts_dir();
    let out = Command::new("node")
        .current_dir(&js)
        .arg("charts.mjs")
        .args([&url, OPERATOR, "-"])
        .arg(&artifacts)
        .args([&node.to_string(), MUNI])
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

    let node_day = &b["node_day"];
    shows_gap_and_drain(&node_day["unconfirmed"], "the node's day");
    shows_gap_and_drain(&b["municipality_day"], "the municipality's day");
    shows_gap_and_drain(&b["sparkline"], "the sparkline");
    // Reachability: a bar for every slot the node was up, none while down.
    let reach = &node_day["reachable"];
    assert_eq!(
        reach["bars"].as_u64().unwrap(),
        SLOTS - len(&DOWN) as u64,
        "{reach}"
    );
    assert_eq!(reach["runs"], 2, "{reach}");
    assert_eq!(b["municipality_reachable"]["runs"], 2, "{b}");
    // The other charts break at the same place; the refusal is one bar.
    for m in ["oldest-unconfirmed", "clock-skew"] {
        assert_eq!(node_day[m]["runs"], 2, "{m}: {}", node_day[m]);
    }
    assert_eq!(node_day["refusals"]["bars"], 1, "{}", node_day["refusals"]);
    // Axes in Japan time, every three hours; the chart is drawn at size.
    let labels = node_day["unconfirmed"]["x_labels"].as_array().unwrap();
    assert_eq!(labels.len(), 8, "{labels:?}");
    for l in labels {
        let hour: u32 = l.as_str().unwrap()[..2].parse().unwrap();
        assert_eq!(hour % 3, 0, "{labels:?}");
        assert!(l.as_str().unwrap().ends_with(":00"), "{labels:?}");
    }
    assert!(node_day["unconfirmed"]["width"].as_f64().unwrap() > 250.0);
    // The week: half-hour buckets, the same outage still a gap, peak 240.
    let week = &b["node_week"];
    assert_eq!(week["window"], "7d");
    assert_eq!(week["runs"], 2, "{week}");
    assert!(week["nodata_bands"].as_u64().unwrap() >= 1, "{week}");
    let peak = week["values"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(Value::as_f64)
        .fold(0.0, f64::max);
    assert_eq!(peak, 240.0, "{week}");

    // The serving hub samples the slot that ended on its own (its first
    // minute's jobs): the node never connected, so it is down there.
    wait_until(
        "the serving hub's own sample",
        Duration::from_secs(150),
        || {
            history(&url, &node, &token)
                .iter()
                .any(|s| s["at_ms"].as_u64().unwrap() > last_written.0)
        },
    );
    let sampled = history(&url, &node, &token);
    let own = sampled
        .iter()
        .find(|s| s["at_ms"].as_u64().unwrap() > last_written.0)
        .unwrap();
    assert_eq!(own["up_permille"], 0, "{own}");

    // Restarted: the same history, on the API and on the page.
    hub.terminate();
    let (_hub, url) = start_hub(&dir);
    let after = history(&url, &node, &token);
    let window_start = after[0]["at_ms"].as_u64().unwrap();
    let kept: Vec<&Value> = sampled
        .iter()
        .filter(|s| s["at_ms"].as_u64().unwrap() >= window_start)
        .collect();
    assert_eq!(after.iter().collect::<Vec<_>>(), kept);
    let (code, page) = get(&url, &format!("/nodes/{node}"), &token);
    assert_eq!(code, 200, "{page}");
    let svg_at = page
        .find(r#"data-metric="unconfirmed" data-window="24h""#)
        .expect("the node page's backlog chart");
    let svg = &page[svg_at..svg_at + page[svg_at..].find('>').unwrap()];
    assert!(svg.contains(r#"data-runs="2""#), "{svg}");
    // The facility's name is escaped where the page shows it.
    assert!(page.contains("本郷図書館 &lt;分室&gt;"), "{page}");
    assert!(!page.contains("<分室>"));
    for shot in [
        "charts-node-24h.png",
        "charts-node-7d.png",
        "charts-overview.png",
    ] {
        let len = std::fs::metadata(artifacts.join(shot)).map_or(0, |m| m.len());
        assert!(len > 10_000, "{shot} is missing or empty");
    }
}
