//! One serving process per data directory (issue 22, item 3): a second
//! `mykey-hub serve` on the same hub, or a second `mykey-node run` on the
//! same node, stops at once with the first one's pid and changes nothing;
//! the lock goes with the process, so a restart after `kill -9` works.

mod net_common;

use net_common::*;
use std::time::Duration;

fn second(name: &str, data: &std::path::Path, args: &[&str]) -> (bool, String) {
    let (ok, _, err) = run_with_stdin(name, data, args, "");
    (ok, err)
}

#[test]
fn a_second_serve_or_run_on_one_data_directory_is_refused_with_the_first_ones_pid() {
    let w = World::create(1, 0);
    let (mut hub, addr) = start_hub(&w.hub_dir, 0);
    let (ok, err) = second(
        "mykey-hub",
        &w.hub_dir,
        &[
            "serve",
            "--listen",
            "/ip4/127.0.0.1/tcp/0",
            "--http",
            "127.0.0.1:0",
        ],
    );
    assert!(!ok, "a second serve started");
    assert!(
        err.contains("mykey-hub serve is already running")
            && err.contains(&format!("pid {}", hub.pid())),
        "{err}"
    );

    let node_dir = &w.nodes[0];
    let mut run = start_node("run", node_dir, Some(&addr), &[]);
    wait_until("the node to catch up", Duration::from_secs(30), || {
        caught_up(node_dir)
    });
    let before = std::fs::read(node_dir.join("node.toml")).unwrap();
    let (ok, err) = second(
        "mykey-node",
        node_dir,
        &["run", "--listen", "/ip4/127.0.0.1/tcp/0"],
    );
    assert!(!ok, "a second run started");
    assert!(
        err.contains("mykey-node run is already running")
            && err.contains(&format!("pid {}", run.pid())),
        "{err}"
    );
    assert_eq!(std::fs::read(node_dir.join("node.toml")).unwrap(), before);
    // Reading commands need no lock and still work beside `run`.
    assert!(status(node_dir)["facility"].is_string());

    // The lock dies with its process: a restart after kill -9 serves.
    run.kill9();
    hub.kill9();
    let (_hub, addr) = start_hub(&w.hub_dir, 0);
    let _run = start_node("run again", node_dir, Some(&addr), &[]);
    wait_until(
        "the node to catch up again",
        Duration::from_secs(30),
        || caught_up(node_dir),
    );
}
