//! `mykey-node doctor` and `mykey-hub doctor` (issue 22, item 4), and what
//! `mykey-node run` says when the hub link drops and comes back. The real
//! binaries as processes, a real hub on loopback, temp dirs.

mod net_common;

use net_common::*;
use std::os::unix::fs::PermissionsExt as _;
use std::process::Command;
use std::time::Duration;

/// Runs `doctor` (`--json` too); returns success, the text and the JSON.
fn doctor(name: &str, data: &std::path::Path) -> (bool, String, serde_json::Value) {
    let run = |json: bool| {
        let mut cmd = Command::new(bin(name));
        cmd.arg("--data").arg(data).arg("doctor");
        if name == "mykey-node" {
            cmd.args(["--hub-timeout-s", "3"]);
        }
        if json {
            cmd.arg("--json");
        }
        cmd.env("NO_COLOR", "1").output().unwrap()
    };
    let text = run(false);
    let json = run(true);
    assert_eq!(text.status.success(), json.status.success());
    let v: serde_json::Value = serde_json::from_slice(&json.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&json.stdout)));
    assert_eq!(v["ok"].as_bool(), Some(text.status.success()));
    (
        text.status.success(),
        String::from_utf8_lossy(&text.stdout).into_owned() + &String::from_utf8_lossy(&text.stderr),
        v,
    )
}

fn level<'a>(v: &'a serde_json::Value, name: &str) -> &'a str {
    v["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == name)
        .unwrap_or_else(|| panic!("no {name} check in {v}"))["level"]
        .as_str()
        .unwrap()
}

#[test]
fn node_doctor_with_the_hub_down_says_why_and_who_tries_again() {
    let w = World::create(1, 0);
    let dir = &w.nodes[0];
    // An address where nobody listens: a port taken and given back.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    write_net_toml(
        dir,
        &format!("hub_addrs = [\"/ip4/127.0.0.1/tcp/{port}\"]\nbackoff_cap_ms = 2000\n"),
    );
    let key = std::fs::read(dir.join("node.key")).unwrap();
    let (ok, text, v) = doctor("mykey-node", dir);
    assert!(!ok, "{text}");
    assert_eq!(level(&v, "hub"), "fail", "{text}");
    assert!(text.contains("fail hub: cannot reach"), "{text}");
    assert!(text.contains(&format!("127.0.0.1/tcp/{port}")), "{text}");
    assert!(text.contains("nothing tries again: start it"), "{text}");
    // Never synced: not enrolled as far as it knows, and says how.
    assert_eq!(level(&v, "enrolled"), "warn", "{text}");
    assert!(text.contains("mykey-hub node enrol --node"), "{text}");
    for ok_check in ["data directory", "config", "key", "store", "disk"] {
        assert_eq!(level(&v, ok_check), "ok", "{ok_check}: {text}");
    }
    assert!(
        v["checks"]
            .as_array()
            .unwrap()
            .iter()
            .all(|c| c["found"] != "")
    );

    // With `run` going, the doctor says that run tries again, and run's
    // own log says the hub is unreachable and when the next try is.
    let mut run = start_node("run", dir, None, &[]);
    wait_until(
        "run to log the unreachable hub",
        Duration::from_secs(30),
        || run.stderr().contains("cannot reach the hub"),
    );
    let log = run.stderr();
    assert!(
        log.contains("down for") && log.contains("next try in"),
        "{log}"
    );
    let (_, text, _) = doctor("mykey-node", dir);
    assert!(
        text.contains(&format!("mykey-node run (pid {}) tries again", run.pid())),
        "{text}"
    );
    run.terminate();

    // A key others can read: a failure, with the chmod; nothing re-created.
    let key_path = dir.join("node.key");
    std::fs::set_permissions(&key_path, std::fs::Permissions::from_mode(0o644)).unwrap();
    let (ok, text, v) = doctor("mykey-node", dir);
    assert!(!ok);
    assert_eq!(level(&v, "key"), "fail", "{text}");
    assert!(text.contains("chmod 600"), "{text}");
    std::fs::set_permissions(&key_path, std::fs::Permissions::from_mode(0o600)).unwrap();
    // A missing key is a failure to restore, and doctor makes no new one.
    std::fs::rename(&key_path, dir.join("node.key.bak")).unwrap();
    let (ok, text, _) = doctor("mykey-node", dir);
    assert!(!ok && text.contains("restore it from a backup"), "{text}");
    assert!(!key_path.exists(), "doctor created a key");
    std::fs::rename(dir.join("node.key.bak"), &key_path).unwrap();
    assert_eq!(std::fs::read(&key_path).unwrap(), key);
}

#[test]
fn node_doctor_with_the_hub_up_checks_enrolment_expiry_and_clock() {
    let w = World::create(1, 0);
    let dir = &w.nodes[0];
    let (_hub, addr) = start_hub(&w.hub_dir, 0);
    write_net_toml(dir, &format!("hub_addrs = [\"{addr}\"]\n"));
    let mut run = start_node("run", dir, None, &[]);
    wait_until("first sync", Duration::from_secs(30), || caught_up(dir));
    run.terminate();
    let (ok, text, v) = doctor("mykey-node", dir);
    assert!(ok, "{text}");
    assert_eq!(level(&v, "hub"), "ok", "{text}");
    assert!(text.contains("knows this node"), "{text}");
    assert_eq!(level(&v, "enrolled"), "ok", "{text}");
    assert!(text.contains("facility shop-0"), "{text}");
    assert_eq!(level(&v, "certificate"), "ok", "{text}");
    assert!(text.contains("days left"), "{text}");
    assert_eq!(level(&v, "clock"), "ok", "{text}");
    assert_eq!(level(&v, "strict mode"), "ok", "{text}");
    // Every line is one of the three levels, then a name and what was found.
    for line in text.lines().filter(|l| !l.is_empty()) {
        let head = line.split_whitespace().next().unwrap();
        assert!(["ok", "warn", "fail"].contains(&head), "{line}");
    }

    // A node the hub does not know: refused, said as such.
    let stranger = w.stranger();
    write_net_toml(&stranger, &format!("hub_addrs = [\"{addr}\"]\n"));
    let (ok, text, _) = doctor("mykey-node", &stranger);
    assert!(!ok);
    assert!(
        text.contains("refused this node") && text.contains("enrol"),
        "{text}"
    );
}

#[test]
fn run_logs_when_the_hub_link_drops_and_comes_back() {
    let w = World::create(1, 0);
    let dir = &w.nodes[0];
    write_net_toml(dir, "backoff_base_ms = 100\nbackoff_cap_ms = 500\n");
    let (mut hub, addr) = start_hub(&w.hub_dir, 0);
    let port = port_of(&addr);
    let mut run = start_node("run", dir, Some(&addr), &[]);
    wait_until("first sync", Duration::from_secs(30), || caught_up(dir));
    hub.terminate();
    wait_until("the loss to be logged", Duration::from_secs(30), || {
        run.stderr().contains("hub link lost")
    });
    let log = run.stderr();
    let lost = log.lines().find(|l| l.contains("hub link lost")).unwrap();
    assert!(
        lost.contains("WARN") && lost.contains("next try in"),
        "{lost}"
    );
    let (_hub, _) = start_hub(&w.hub_dir, port);
    wait_until("the link to come back", Duration::from_secs(30), || {
        run.stderr().contains("hub link back after")
    });
    let log = run.stderr();
    let back = log.lines().find(|l| l.contains("hub link back")).unwrap();
    assert!(back.contains("WARN") && back.contains("s down"), "{back}");
    run.terminate();
}

#[test]
fn hub_doctor_checks_its_house_and_knows_its_own_serve() {
    let w = World::create(1, 0);
    let (ok, text, v) = doctor("mykey-hub", &w.hub_dir);
    // No payees yet: settlement cannot pay; a warning, not a failure.
    assert_eq!(level(&v, "payees"), "warn", "{text}");
    for ok_check in ["data directory", "key", "store", "disk"] {
        assert_eq!(level(&v, ok_check), "ok", "{ok_check}: {text}");
    }
    assert!(ok, "{text}");

    // Its own serve holds the addresses: fine, named with its pid.
    let (mut hub, addr) = start_hub(&w.hub_dir, 0);
    let (ok, text, v) = doctor("mykey-hub", &w.hub_dir);
    assert!(ok, "{text}");
    assert_eq!(level(&v, "listen"), "ok", "{text}");
    assert!(text.contains(&format!("pid {}", hub.pid())), "{text}");
    hub.terminate();

    // Someone else on the configured libp2p port: a failure naming it.
    let port = port_of(&addr);
    std::fs::write(
        w.hub_dir.join("hub.toml"),
        std::fs::read_to_string(w.hub_dir.join("hub.toml"))
            .unwrap()
            .lines()
            .map(|l| {
                if l.starts_with("listen") {
                    format!("listen = [\"/ip4/127.0.0.1/tcp/{port}\"]")
                } else {
                    l.to_owned()
                }
            })
            .collect::<Vec<_>>()
            .join("\n")
            + "\n",
    )
    .unwrap();
    let _squatter = std::net::TcpListener::bind(("127.0.0.1", port)).unwrap();
    let (ok, text, v) = doctor("mykey-hub", &w.hub_dir);
    assert!(!ok, "{text}");
    assert_eq!(level(&v, "listen"), "fail", "{text}");
    assert!(text.contains(&format!("127.0.0.1/tcp/{port}")), "{text}");
    assert!(text.contains("--listen"), "{text}");

    // A key others can read.
    let key = std::fs::read_dir(&w.hub_dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.extension().is_some_and(|e| e == "key"))
        .unwrap();
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o644)).unwrap();
    let (_, text, v) = doctor("mykey-hub", &w.hub_dir);
    assert_eq!(level(&v, "key"), "fail", "{text}");
    assert!(text.contains("chmod 600"), "{text}");
}
