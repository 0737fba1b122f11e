//! mDNS discovery on a real interface: two network namespaces joined by a
//! veth pair (made and removed by this test; needs root and iproute2). The
//! nodes know no addresses of each other, find each other by mDNS, link up,
//! and each sees the other's pending spends.

mod net_common;

use mykey_node::config::DataDir;
use net_common::*;
use std::process::Command;
use std::time::Duration;

/// Two namespaces and a veth pair between them, deleted on drop.
struct Netns {
    names: [String; 2],
}

fn ip(args: &[&str]) {
    let out = Command::new("ip")
        .args(args)
        .output()
        .expect("iproute2 `ip` is needed (apt-get install iproute2)");
    assert!(
        out.status.success(),
        "ip {args:?} failed (this test needs root): {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

impl Netns {
    fn create() -> Netns {
        let id = std::process::id();
        let names = [format!("mk{id}a"), format!("mk{id}b")];
        let (va, vb) = (format!("mk{id}va"), format!("mk{id}vb"));
        let ns = Netns { names };
        let [a, b] = &ns.names;
        ip(&["netns", "add", a]);
        ip(&["netns", "add", b]);
        ip(&["link", "add", &va, "type", "veth", "peer", "name", &vb]);
        ip(&["link", "set", &va, "netns", a]);
        ip(&["link", "set", &vb, "netns", b]);
        for (n, dev, addr) in [(a, &va, "10.199.0.1/24"), (b, &vb, "10.199.0.2/24")] {
            ip(&["-n", n, "addr", "add", addr, "dev", dev]);
            ip(&["-n", n, "link", "set", dev, "up"]);
            ip(&["-n", n, "link", "set", "lo", "up"]);
            ip(&["-n", n, "route", "add", "224.0.0.0/4", "dev", dev]);
        }
        ns
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        for n in &self.names {
            let _ = Command::new("ip").args(["netns", "del", n]).status();
        }
    }
}

fn run_in(ns: &str, name: &str, dir: &std::path::Path) -> Proc {
    let p = Proc::spawn(
        name,
        Command::new("ip")
            .args(["netns", "exec", ns])
            .arg(bin("mykey-node"))
            .arg("--data")
            .arg(dir)
            .args(["run", "--listen", "/ip4/0.0.0.0/tcp/0"]),
    );
    p.line_starting("listening on ", Duration::from_secs(30));
    p
}

#[test]
fn nodes_in_two_namespaces_find_each_other_by_mdns() {
    let w = World::create(2, 1);
    let (a_dir, b_dir) = (&w.nodes[0], &w.nodes[1]);
    // First contact with the hub on loopback, for limits and cards.
    {
        let (mut hub, addr) = start_hub(&w.hub_dir, 0);
        let mut nodes: Vec<Proc> = [a_dir, b_dir]
            .iter()
            .map(|d| start_node("first sync", d, Some(&addr), &[]))
            .collect();
        for d in [a_dir, b_dir] {
            wait_until("first sync", Duration::from_secs(30), || caught_up(d));
        }
        for n in &mut nodes {
            assert!(n.terminate().success());
        }
        assert!(hub.terminate().success());
    }
    for d in [a_dir, b_dir] {
        write_net_toml(
            d,
            "mdns = true\nmdns_query_interval_ms = 1000\ngossip_ms = 100\n",
        );
    }
    let ns = Netns::create();
    let a = run_in(&ns.names[0], "A", a_dir);
    let b = run_in(&ns.names[1], "B", b_dir);
    wait_until("discovery by mDNS", Duration::from_secs(60), || {
        a.stderr().contains("found a LAN peer by mDNS")
            && b.stderr().contains("found a LAN peer by mDNS")
            && a.stderr().contains("LAN peer connected")
            && b.stderr().contains("LAN peer connected")
    });
    assert!(
        a.stderr().contains("10.199.0.2"),
        "A found B on the veth address"
    );

    let card = card_arg(&w.holders[0].0);
    let out = node_cli(a_dir, &["redeem", "--card", &card, "--points", "1234"]);
    assert!(out.starts_with("redeemed"), "{out}");
    wait_until(
        "B to see A's pending spend",
        Duration::from_secs(30),
        || {
            let n = DataDir::new(b_dir).open().unwrap();
            let (_, _, pending) = n.balance(w.holders[0].1, bunkyo()).unwrap();
            pending.get() == 1234
        },
    );
    drop((a, b));
}
