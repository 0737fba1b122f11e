//! A link that dies without a word: the hub process is frozen (SIGSTOP), so
//! its TCP connection stays open but nothing answers. The node's pings fail,
//! it drops the link, keeps serving from its store, and reconciles once the
//! hub thaws (SIGCONT).

mod net_common;

use net_common::*;
use std::process::Command;
use std::time::Duration;

fn signal(p: &Proc, sig: &str) {
    let ok = Command::new("kill")
        .args([sig, &p.pid().to_string()])
        .status()
        .unwrap()
        .success();
    assert!(ok, "kill {sig} {}", p.pid());
}

#[test]
fn frozen_hub_is_detected_and_the_node_reconciles_after_it_thaws() {
    let w = World::create(1, 1);
    let dir = &w.nodes[0];
    write_net_toml(
        dir,
        "ping_interval_ms = 300\nping_timeout_ms = 1000\nbackoff_base_ms = 50\nbackoff_cap_ms = 500\n",
    );
    let (hub, addr) = start_hub(&w.hub_dir, 0);
    let node = start_node("node", dir, Some(&addr), &[]);
    wait_until("first sync", Duration::from_secs(30), || caught_up(dir));

    signal(&hub, "-STOP");
    wait_until(
        "the node to notice the dead link",
        Duration::from_secs(30),
        || {
            let log = node.stderr();
            log.contains("ping failed") && log.contains("hub link lost")
        },
    );
    let card = card_arg(&w.holders[0].0);
    let out = node_cli(dir, &["redeem", "--card", &card, "--points", "42"]);
    assert!(out.starts_with("redeemed"), "{out}");
    assert_eq!(status(dir)["pending"], 1);

    signal(&hub, "-CONT");
    wait_until(
        "reconciliation after the thaw",
        Duration::from_secs(60),
        || caught_up(dir),
    );
}

/// CPU seconds (user + system) a process has used, from /proc/PID/stat.
fn cpu_secs(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    // Fields after the command name (which may hold spaces), from field 3 on.
    let rest = &stat[stat.rfind(')').unwrap() + 2..];
    let f: Vec<u64> = rest
        .split_whitespace()
        .map(|x| x.parse().unwrap_or(0))
        .collect();
    // utime and stime are fields 14 and 15 (clock ticks, 100 per second).
    (f[11] + f[12]) as f64 / 100.0
}

/// A node whose push waits on a hub that does not answer sleeps until an
/// event or a timer: it used to spin a core through every catch-up, woken
/// at once by a relay deadline left in the past.
#[test]
fn a_node_waiting_on_its_hub_does_not_spin() {
    let w = World::create(1, 1);
    let dir = &w.nodes[0];
    // Pings far apart: the link stays up while the push waits. A carried
    // push may go every 300 ms once the node is caught up.
    write_net_toml(
        dir,
        "ping_interval_ms = 20000\nping_timeout_ms = 20000\nrelay_interval_ms = 300\n",
    );
    let (hub, addr) = start_hub(&w.hub_dir, 0);
    let node = start_node("node", dir, Some(&addr), &[]);
    wait_until("first sync", Duration::from_secs(30), || caught_up(dir));

    signal(&hub, "-STOP");
    let card = card_arg(&w.holders[0].0);
    let out = node_cli(dir, &["redeem", "--card", &card, "--points", "42"]);
    assert!(out.starts_with("redeemed"), "{out}");
    // The node sees the new seq within its outbox poll (250 ms) and
    // pushes it; the frozen hub never answers (request timeout 15 s). By
    // then the relay's next instant has passed too.
    std::thread::sleep(Duration::from_millis(1000));
    let (t, before) = (std::time::Instant::now(), cpu_secs(node.pid()));
    std::thread::sleep(Duration::from_secs(2));
    let used = cpu_secs(node.pid()) - before;
    let wall = t.elapsed().as_secs_f64();
    assert_eq!(status(dir)["pending"], 1, "still waiting on the hub");
    assert!(
        !node.stderr().contains("hub link lost"),
        "the link stayed up while measuring"
    );
    // Spinning took a whole core (about 2 s here); waiting takes almost none.
    assert!(
        used < 0.4,
        "the node used {used:.2} CPU s in {wall:.2} s while waiting on the hub"
    );
    signal(&hub, "-CONT");
    wait_until(
        "reconciliation after the thaw",
        Duration::from_secs(60),
        || caught_up(dir),
    );
}
