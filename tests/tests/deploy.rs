//! What `deploy/` ships is checked against the real tools and the real hub:
//! the Prometheus rules with `promtool` (syntax, and unit tests of every
//! alert in `alerts_test.yml`), the systemd units with `systemd-analyze
//! verify` (warnings count as failures), and every metric name the rules
//! and the Grafana dashboard use against what a serving `mykey-hub` puts on
//! `/metrics`, so a renamed or dropped metric fails here.
//!
//! promtool comes from `scripts/promtool.sh` (Debian's package, extracted,
//! never installed as a service); `scripts/test.sh` passes its path in
//! `MYKEY_PROMTOOL`.

mod net_common;

use net_common::{Proc, bin, hub_cli};
use std::collections::BTreeSet;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

fn deploy() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy")
}

fn promtool() -> PathBuf {
    if let Some(p) = std::env::var_os("MYKEY_PROMTOOL") {
        return PathBuf::from(p);
    }
    let out = Command::new("bash")
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts/promtool.sh"))
        .output()
        .expect("run scripts/promtool.sh");
    assert!(
        out.status.success(),
        "scripts/promtool.sh found no promtool: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    PathBuf::from(String::from_utf8(out.stdout).unwrap().trim())
}

fn run_ok(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{cmd:?} failed:\n{text}");
    text
}

#[test]
fn the_alerting_rules_load_and_each_alert_fires_on_its_trouble() {
    let dir = deploy().join("prometheus");
    let tool = promtool();
    let checked = run_ok(
        Command::new(&tool)
            .args(["check", "rules", "alerts.yml"])
            .current_dir(&dir),
    );
    assert!(checked.contains("SUCCESS"), "{checked}");
    let tested = run_ok(
        Command::new(&tool)
            .args(["test", "rules", "alerts_test.yml"])
            .current_dir(&dir),
    );
    assert!(tested.contains("SUCCESS"), "{tested}");
}

#[test]
fn the_systemd_units_verify_without_a_warning() {
    let tmp = tempfile::tempdir().unwrap();
    let units = [
        "mykey-hub.service",
        "mykey-node.service",
        "mykey-node-watch.service",
    ];
    for u in units {
        let text = std::fs::read_to_string(deploy().join("systemd").join(u)).unwrap();
        assert!(text.contains("ProtectSystem=strict"), "{u} is not hardened");
        assert!(text.contains("User=mykey"), "{u} runs as root");
        assert!(
            text.contains("StateDirectory="),
            "{u} has no state directory"
        );
        assert!(text.contains("Restart="), "{u} does not restart");
        // The units name the installed binaries; verify checks that the
        // command exists, so point it at the ones just built.
        let local = text
            .replace(
                "/usr/local/bin/mykey-hub",
                bin("mykey-hub").to_str().unwrap(),
            )
            .replace(
                "/usr/local/bin/mykey-node",
                bin("mykey-node").to_str().unwrap(),
            );
        std::fs::write(tmp.path().join(u), local).unwrap();
    }
    let out = Command::new("systemd-analyze")
        .arg("verify")
        .args(units.map(|u| tmp.path().join(u)))
        .output()
        .expect("systemd-analyze (Debian's systemd package)");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "systemd-analyze verify:\n{err}");
    assert!(err.trim().is_empty(), "systemd-analyze warned:\n{err}");
    let sysusers = std::fs::read_to_string(deploy().join("systemd/mykey.conf")).unwrap();
    assert!(sysusers.lines().any(|l| l.starts_with("u mykey ")));
}

/// Metric names in a rules or dashboard file (`mykey_…`, without the
/// histogram series suffixes).
fn names_used(text: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let bytes = text.as_bytes();
    let mut i = 0;
    while let Some(at) = text[i..].find("mykey_") {
        let start = i + at;
        let mut end = start;
        while end < bytes.len() && (bytes[end].is_ascii_lowercase() || bytes[end] == b'_') {
            end += 1;
        }
        let name = &text[start..end];
        let base = ["_bucket", "_sum", "_count"]
            .iter()
            .find_map(|s| name.strip_suffix(s))
            .unwrap_or(name);
        out.insert(base.to_owned());
        i = end;
    }
    out
}

fn http_get(addr: &str, path: &str, token: &str) -> String {
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {token}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut body = String::new();
    s.read_to_string(&mut body).unwrap();
    assert!(body.starts_with("HTTP/1.1 200"), "{body}");
    body
}

#[test]
fn every_metric_the_rules_and_dashboard_use_is_on_metrics() {
    let dir = tempfile::tempdir().unwrap();
    let hub = dir.path().join("hub");
    hub_cli(&hub, &["init"]);
    let mut add = Command::new(bin("mykey-hub"))
        .arg("--data")
        .arg(&hub)
        .args([
            "operator",
            "add",
            "--name",
            "prometheus",
            "--role",
            "viewer",
        ])
        .arg("--password-stdin")
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    add.stdin
        .take()
        .unwrap()
        .write_all(b"a long scrape password\n")
        .unwrap();
    assert!(add.wait().unwrap().success());
    let token = hub_cli(
        &hub,
        &[
            "operator",
            "token",
            "--name",
            "prometheus",
            "--scope",
            "read",
        ],
    );
    let serve = Proc::spawn(
        "hub",
        Command::new(bin("mykey-hub"))
            .arg("--data")
            .arg(&hub)
            .args([
                "serve",
                "--listen",
                "/ip4/127.0.0.1/tcp/0",
                "--http",
                "127.0.0.1:0",
            ]),
    );
    let line = serve.line_starting("dashboard on ", Duration::from_secs(30));
    let addr = line
        .trim_start_matches("dashboard on http://")
        .trim_end_matches('/')
        .to_owned();
    let metrics = http_get(&addr, "/metrics", token.trim());
    let exposed: BTreeSet<String> = metrics
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .filter_map(|l| l.split_whitespace().next())
        .map(str::to_owned)
        .collect();
    assert!(exposed.len() >= 10, "{metrics}");
    for file in ["prometheus/alerts.yml", "grafana/mykey-hub.json"] {
        let text = std::fs::read_to_string(deploy().join(file)).unwrap();
        let used = names_used(&text);
        assert!(!used.is_empty(), "{file} names no metric");
        let missing: Vec<_> = used.difference(&exposed).collect();
        assert!(
            missing.is_empty(),
            "{file} uses {missing:?}, which /metrics does not expose (it has {exposed:?})"
        );
    }
    let dash: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(deploy().join("grafana/mykey-hub.json")).unwrap(),
    )
    .expect("the Grafana dashboard is JSON");
    assert!(dash["panels"].as_array().is_some_and(|p| p.len() >= 8));
}
