//! Ports (issue 22, item 3): a libp2p or HTTP address in use is an error
//! that names the address and the flag to change it, never shared with the
//! holder (libp2p binds with SO_REUSEPORT) nor silently moved to another
//! port; a node nobody set up for a LAN listens on loopback only.

mod net_common;

use net_common::*;
use std::process::Command;

/// Holds `addr` for the test, or finds it held by someone else already:
/// either way nobody else can listen there while the result lives.
fn hold(addr: &str) -> Option<std::net::TcpListener> {
    std::net::TcpListener::bind(addr).ok()
}

#[test]
fn a_libp2p_port_in_use_is_refused_not_shared() {
    let a = World::create(1, 0);
    let b = World::create(1, 0);
    let (_hub, addr) = start_hub(&a.hub_dir, 0);
    let port = port_of(&addr);
    let taken = format!("/ip4/127.0.0.1/tcp/{port}");

    // Another hub on the first one's port: refused, naming it and the flag.
    let err = refused(
        "mykey-hub",
        &b.hub_dir,
        &["serve", "--listen", &taken, "--http", "127.0.0.1:0"],
    );
    assert!(
        err.contains(&format!("cannot listen on {taken}"))
            && err.contains("already in use")
            && err.contains("--listen"),
        "{err}"
    );

    // A node on the hub's port: refused the same way.
    let err = refused(
        "mykey-node",
        &b.nodes[0],
        &["run", "--listen", &taken, "--http", "127.0.0.1:0"],
    );
    assert!(
        err.contains(&format!("cannot listen on {taken}"))
            && err.contains("already in use")
            && err.contains("--listen"),
        "{err}"
    );
}

#[test]
fn an_http_port_in_use_is_an_error_never_another_port() {
    let w = World::create(1, 0);
    // An explicit address in use.
    let held = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let at = held.local_addr().unwrap().to_string();
    let err = refused(
        "mykey-hub",
        &w.hub_dir,
        &["serve", "--listen", "/ip4/127.0.0.1/tcp/0", "--http", &at],
    );
    assert!(
        err.contains(&format!("cannot serve the dashboard on {at}")) && err.contains("--http"),
        "{err}"
    );
    let err = refused(
        "mykey-node",
        &w.nodes[0],
        &["run", "--listen", "/ip4/127.0.0.1/tcp/0", "--http", &at],
    );
    assert!(
        err.contains(&format!("cannot serve the status page on {at}")) && err.contains("--http"),
        "{err}"
    );

    // The kiosk page (issue 19): the same, with its own flag.
    let ca = w.root.path().join("ca.der");
    std::fs::write(&ca, test_ca_der()).unwrap();
    let ca = ca.to_str().unwrap();
    let err = refused(
        "mykey-node",
        &w.nodes[0],
        &["kiosk", "--trusted-ca", ca, "--listen", &at],
    );
    assert!(
        err.contains(&format!("cannot serve the kiosk page on {at}")) && err.contains("--listen"),
        "{err}"
    );

    // The default addresses in use (held here, or by someone else on this
    // machine): the same error, not a quiet move to a random port.
    let _hub_default = hold(mykey_hub::http::DEFAULT_ADDR);
    let err = refused(
        "mykey-hub",
        &w.hub_dir,
        &["serve", "--listen", "/ip4/127.0.0.1/tcp/0"],
    );
    assert!(
        err.contains(&format!(
            "cannot serve the dashboard on {}",
            mykey_hub::http::DEFAULT_ADDR
        )) && err.contains("--http ADDR"),
        "{err}"
    );
    let _node_default = hold(mykey_node::http::DEFAULT_ADDR);
    let err = refused(
        "mykey-node",
        &w.nodes[0],
        &["run", "--listen", "/ip4/127.0.0.1/tcp/0"],
    );
    assert!(
        err.contains(&format!(
            "cannot serve the status page on {}",
            mykey_node::http::DEFAULT_ADDR
        )) && err.contains("--http ADDR"),
        "{err}"
    );
    let _kiosk_default = hold(mykey_node::kiosk::page::DEFAULT_ADDR);
    assert_ne!(
        mykey_node::kiosk::page::DEFAULT_ADDR,
        mykey_node::http::DEFAULT_ADDR
    );
    let err = refused("mykey-node", &w.nodes[0], &["kiosk", "--trusted-ca", ca]);
    assert!(
        err.contains(&format!(
            "cannot serve the kiosk page on {}",
            mykey_node::kiosk::page::DEFAULT_ADDR
        )) && err.contains("--listen ADDR"),
        "{err}"
    );
}

/// A CA certificate for `--trusted-ca` (the kiosk wants one to start).
fn test_ca_der() -> Vec<u8> {
    let t = (now().0 / 1000) as i64;
    mykey_testcard::TestCa::new(
        mykey_testcard::key_from_seed([1; 32]).unwrap(),
        "MyKey Test JPKI User Authentication CA",
        t - 86_400,
        t + 86_400,
    )
    .unwrap()
    .cert_der()
    .to_vec()
}

#[test]
fn a_node_listens_on_loopback_unless_the_lan_is_configured() {
    let w = World::create(1, 0);
    let dir = &w.nodes[0];
    let start = |name: &str| {
        Proc::spawn(
            name,
            Command::new(bin("mykey-node"))
                .arg("--data")
                .arg(dir)
                .args(["run", "--http", "127.0.0.1:0"]),
        )
    };
    // 127.0.0.2 is loopback too, but only a socket bound to every interface
    // (0.0.0.0) answers there; one bound to 127.0.0.1 does not.
    let answers_off_127_0_0_1 = |line: &str| {
        let port = port_of(line.trim_start_matches("listening on "));
        std::net::TcpStream::connect(("127.0.0.2", port)).is_ok()
    };
    let mut run = start("run");
    let line = run.line_starting("listening on ", std::time::Duration::from_secs(30));
    assert!(line.starts_with("listening on /ip4/127.0.0.1/"), "{line}");
    assert!(!answers_off_127_0_0_1(&line), "{line}: not loopback only");
    run.terminate();

    // mDNS on (a LAN set up in net.toml): every interface.
    write_net_toml(dir, "mdns = true\n");
    let mut run = start("run lan");
    let line = run.line_starting("listening on /ip4/", std::time::Duration::from_secs(30));
    assert!(answers_off_127_0_0_1(&line), "{line}: not every interface");
    run.terminate();
}
