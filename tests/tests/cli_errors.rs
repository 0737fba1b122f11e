//! Errors that help (issue 22, item 5): a broken `node.toml` names its line
//! and is never answered with a step that abandons the node's identity; a
//! decline is said once (no `Caused by:` repeating it); a password piped
//! without `--password-stdin` says so instead of `os error 6`. The real
//! binaries as processes; nothing changes when they refuse.

mod net_common;

use net_common::*;

/// Runs a command that must fail, with `stdin`; returns its stderr.
fn fails(name: &str, data: &std::path::Path, args: &[&str], stdin: &str) -> String {
    let (ok, _, err) = run_with_stdin(name, data, args, stdin);
    assert!(!ok, "{name} {args:?} succeeded: {err}");
    err
}

#[test]
fn a_broken_node_toml_names_its_line_and_never_advises_a_new_node() {
    let w = World::create(1, 0);
    let dir = &w.nodes[0];
    let id = node_cli(dir, &["id"]);
    let toml = dir.join("node.toml");
    let good = std::fs::read_to_string(&toml).unwrap();
    let key = std::fs::read(dir.join("node.key")).unwrap();

    let cases = [
        (
            format!("{good}hub_adr = \"/ip4/192.0.2.1/tcp/7400\"\n"),
            "unknown field `hub_adr`",
        ),
        (
            good.replace(
                good.lines().find(|l| l.starts_with("hub_key")).unwrap(),
                "hub_key = \"c0ffee\"",
            ),
            "`hub_key`",
        ),
        (format!("{good}hub_addr = \n"), "TOML parse error"),
    ];
    for (text, want) in cases {
        std::fs::write(&toml, &text).unwrap();
        let bad_line = text
            .lines()
            .position(|l| !good.lines().any(|g| g == l))
            .unwrap()
            + 1;
        let err = fails("mykey-node", dir, &["status"], "");
        assert!(err.contains(want), "{err}");
        assert!(err.contains(&format!("line {bad_line}")), "{err}");
        assert!(
            err.contains("fix that line") && err.contains("restore node.toml"),
            "{err}"
        );
        assert!(
            !err.contains("init") && !err.contains("fresh directory"),
            "advises abandoning the node: {err}"
        );
        // Nothing was touched: same file, same identity.
        assert_eq!(std::fs::read_to_string(&toml).unwrap(), text);
        assert_eq!(std::fs::read(dir.join("node.key")).unwrap(), key);
    }
    std::fs::write(&toml, &good).unwrap();
    assert_eq!(node_cli(dir, &["id"]), id);
}

#[test]
fn a_decline_is_said_once() {
    let w = World::create(1, 1);
    let dir = &w.nodes[0];
    // The node has never met the hub, so it has no limits: it declines.
    let card = card_arg(&w.holders[0].0);
    let err = fails(
        "mykey-node",
        dir,
        &["redeem", "--card", &card, "--points", "500"],
        "",
    );
    assert!(!err.contains("Caused by"), "{err}");
    let lines: Vec<&str> = err.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(lines.len(), 1, "one line, said once: {err}");
    let line = lines[0];
    // No part of the message is said twice.
    let parts: Vec<&str> = line.split(": ").filter(|p| p.len() > 8).collect();
    for (i, p) in parts.iter().enumerate() {
        assert!(!parts[i + 1..].contains(p), "{p:?} twice in {line}");
    }

    // The hub too: an address in use is named once, with its OS reason once.
    let held = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let at = held.local_addr().unwrap().to_string();
    let err = fails(
        "mykey-hub",
        &w.hub_dir,
        &["serve", "--listen", "/ip4/127.0.0.1/tcp/0", "--http", &at],
        "",
    );
    assert_eq!(err.matches("os error").count(), 1, "{err}");
}

#[test]
fn a_piped_password_without_the_flag_says_which_flag() {
    let w = World::create(0, 0);
    let err = fails(
        "mykey-hub",
        &w.hub_dir,
        &["operator", "add", "--name", "sato", "--role", "admin"],
        "hunter2hunter2\n",
    );
    assert!(err.contains("--password-stdin"), "{err}");
    assert!(!err.contains("os error"), "{err}");
    assert!(!err.contains("hunter2"), "{err}");
    // Nothing was changed: the operator does not exist.
    let token = ["operator", "token", "--name", "sato", "--scope", "read"];
    let err = fails("mykey-hub", &w.hub_dir, &token, "");
    assert!(err.contains("sato"), "{err}");
    // With the flag, the same pipe works.
    let (ok, _, err) = run_with_stdin(
        "mykey-hub",
        &w.hub_dir,
        &[
            "operator",
            "add",
            "--name",
            "sato",
            "--role",
            "admin",
            "--password-stdin",
        ],
        "hunter2hunter2\n",
    );
    assert!(ok, "{err}");
    hub_cli(&w.hub_dir, &token);
}
