//! Support for the networked tests: a small world set up through the
//! libraries, then the real `mykey-hub serve` and `mykey-node run` binaries
//! as processes on 127.0.0.1, each killed when its guard drops.
//!
//! The binaries must be built first (`cargo build -p mykey-node -p mykey-hub
//! --bins`); they are found in the target directory beside this test.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use mykey_hub::{Facility, FacilityKind, Hub, NodePolicy};
use mykey_node::config::{DataDir, NodeConfig};
use mykey_sync_proto::{
    AccountId, CardKey, FacilityId, MunicipalityCode, MyKeyId, NodeId, OpKind, Points, ProgramId,
    UnixMillis,
};
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{Receiver, channel};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Wall-clock now, as the binaries see it.
pub fn now() -> UnixMillis {
    mykey_net::unix_now()
}

/// A binary of the workspace: beside this executable (a bench binary in
/// `target/<profile>/`) or one level up (a test in `target/<profile>/deps/`).
pub fn bin(name: &str) -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let here = exe.parent().unwrap();
    for dir in [here, here.parent().unwrap()] {
        let p = dir.join(name);
        if p.is_file() {
            return p;
        }
    }
    panic!(
        "{name} is missing next to {}: run `cargo build -p mykey-node -p mykey-hub --bins` \
         (with --release for the benchmark) first",
        exe.display()
    );
}

/// Whether `text` (a log, a prompt) shows `secret` (a PIN, an ID) as a
/// word of its own: a PIN inside a timestamp's fraction or a hex id
/// ("…14:23:40.432157Z", "ab4321cd") is not the PIN shown, and a plain
/// `contains` made the tests that check logs for PINs fail by chance.
pub fn shows_secret(text: &str, secret: &str) -> bool {
    debug_assert!(secret.chars().all(char::is_alphanumeric));
    text.split(|c: char| !c.is_alphanumeric())
        .any(|word| word == secret)
}

/// Polls `cond` until it holds or `timeout` passes.
pub fn wait_until(what: &str, timeout: Duration, mut cond: impl FnMut() -> bool) {
    let end = Instant::now() + timeout;
    while Instant::now() < end {
        if cond() {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("timed out after {timeout:?} waiting for {what}");
}

/// A child process, killed (SIGKILL) and reaped on drop; its stdout lines
/// arrive on a channel, its stderr is kept for assertions.
pub struct Proc {
    pub name: String,
    child: Option<Child>,
    lines: Receiver<String>,
    stderr: Arc<Mutex<String>>,
}

impl Proc {
    pub fn spawn(name: &str, cmd: &mut Command) -> Proc {
        // MYKEY_PROC_LOG overrides the spawned binaries' log filter (for
        // a bench's timeline, e.g. `mykey_hub::net=debug`).
        let filter =
            std::env::var("MYKEY_PROC_LOG").unwrap_or_else(|_| "info,libp2p=warn".to_owned());
        let mut child = cmd
            .env("RUST_LOG", filter)
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("spawn {name}: {e}"));
        let (tx, lines) = channel();
        let out = child.stdout.take().unwrap();
        std::thread::spawn(move || {
            for l in BufReader::new(out).lines().map_while(Result::ok) {
                let _ = tx.send(l);
            }
        });
        let stderr = Arc::new(Mutex::new(String::new()));
        let err = child.stderr.take().unwrap();
        let sink = stderr.clone();
        let label = name.to_owned();
        std::thread::spawn(move || {
            for l in BufReader::new(err).lines().map_while(Result::ok) {
                if std::env::var_os("NET_TEST_ECHO").is_some() {
                    eprintln!("[{label}] {l}");
                }
                let mut s = sink.lock().unwrap();
                s.push_str(&l);
                s.push('\n');
            }
        });
        Proc {
            name: name.to_owned(),
            child: Some(child),
            lines,
            stderr,
        }
    }

    /// The first stdout line starting with `prefix`, within `timeout`.
    pub fn line_starting(&self, prefix: &str, timeout: Duration) -> String {
        self.line_where(&format!("starting with {prefix:?}"), timeout, |l| {
            l.starts_with(prefix)
        })
    }

    /// The first stdout line containing `part`, within `timeout`.
    pub fn line_containing(&self, part: &str, timeout: Duration) -> String {
        self.line_where(&format!("containing {part:?}"), timeout, |l| {
            l.contains(part)
        })
    }

    fn line_where(&self, what: &str, timeout: Duration, want: impl Fn(&str) -> bool) -> String {
        let end = Instant::now() + timeout;
        loop {
            let left = end.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(l) if want(&l) => return l,
                Ok(_) => {}
                Err(_) => panic!(
                    "{}: no line {what} within {timeout:?}; stderr:\n{}",
                    self.name,
                    self.stderr()
                ),
            }
        }
    }

    /// Everything it wrote to stderr so far.
    pub fn stderr(&self) -> String {
        self.stderr.lock().unwrap().clone()
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().unwrap().id()
    }

    /// SIGKILL, and reap.
    pub fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Waits until it exits by itself (killed on drop if it never does).
    pub fn wait_exit(&mut self, timeout: Duration) -> std::process::ExitStatus {
        let end = Instant::now() + timeout;
        while Instant::now() < end {
            let c = self.child.as_mut().expect("running");
            if let Some(st) = c.try_wait().unwrap() {
                self.child = None;
                return st;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!(
            "{} did not exit within {timeout:?}:\n{}",
            self.name,
            self.stderr()
        );
    }

    /// SIGTERM, then wait for a clean exit.
    pub fn terminate(&mut self) -> std::process::ExitStatus {
        let mut c = self.child.take().expect("running");
        let _ = Command::new("kill")
            .args(["-TERM", &c.id().to_string()])
            .status();
        let end = Instant::now() + Duration::from_secs(15);
        loop {
            if let Some(st) = c.try_wait().unwrap() {
                return st;
            }
            if Instant::now() > end {
                let _ = c.kill();
                let _ = c.wait();
                panic!("{} did not stop on SIGTERM", self.name);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.kill9();
    }
}

/// `mykey-hub serve` on 127.0.0.1 (`port` 0: any); returns the process and
/// its dialable address with `/p2p/`.
pub fn start_hub(data: &Path, port: u16) -> (Proc, String) {
    start_hub_with(data, port, &[])
}

/// [`start_hub`] with `extra` arguments to `serve`.
pub fn start_hub_with(data: &Path, port: u16, extra: &[&str]) -> (Proc, String) {
    let p = Proc::spawn(
        "hub",
        Command::new(bin("mykey-hub"))
            .arg("--data")
            .arg(data)
            .args(["serve", "--listen", &format!("/ip4/127.0.0.1/tcp/{port}")])
            // Tests run side by side: the default dashboard port would clash.
            .args(["--http", "127.0.0.1:0"])
            .args(extra),
    );
    let line = p.line_starting("listening on ", Duration::from_secs(30));
    let addr = line.trim_start_matches("listening on ").to_owned();
    (p, addr)
}

/// The TCP port of a `/ip4/…/tcp/PORT/p2p/…` address.
pub fn port_of(addr: &str) -> u16 {
    let parts: Vec<&str> = addr.split('/').collect();
    let i = parts.iter().position(|p| *p == "tcp").unwrap();
    parts[i + 1].parse().unwrap()
}

/// `mykey-node run` with the hub at `hub_addr` (and `extra` arguments).
pub fn start_node(name: &str, data: &Path, hub_addr: Option<&str>, extra: &[&str]) -> Proc {
    start_node_at(name, data, hub_addr, extra).0
}

/// Like [`start_node`], also returning the node's own dialable address.
pub fn start_node_at(
    name: &str,
    data: &Path,
    hub_addr: Option<&str>,
    extra: &[&str],
) -> (Proc, String) {
    let mut cmd = Command::new(bin("mykey-node"));
    cmd.arg("--data")
        .arg(data)
        .args(["run", "--listen", "/ip4/127.0.0.1/tcp/0"]);
    if let Some(a) = hub_addr {
        cmd.args(["--hub-addr", a]);
    }
    cmd.args(extra);
    // Tests run side by side: the default status page port would clash.
    if !extra.contains(&"--http") {
        cmd.args(["--http", "127.0.0.1:0"]);
    }
    let p = Proc::spawn(name, &mut cmd);
    let line = p.line_starting("listening on ", Duration::from_secs(30));
    let addr = line.trim_start_matches("listening on ").to_owned();
    (p, addr)
}

/// Runs `name --data DATA ARGS` with `stdin` piped in, to completion,
/// whatever its outcome: (success, stdout, stderr).
pub fn run_with_stdin(
    name: &str,
    data: &Path,
    args: &[&str],
    stdin: &str,
) -> (bool, String, String) {
    use std::io::Write as _;
    let mut child = Command::new(bin(name))
        .arg("--data")
        .arg(data)
        .args(args)
        .env("NO_COLOR", "1")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("spawn {name}: {e}"));
    // The process may exit before reading: a closed pipe here is fine.
    let _ = child.stdin.take().unwrap().write_all(stdin.as_bytes());
    let drain = |pipe: Option<Box<dyn std::io::Read + Send>>| {
        std::thread::spawn(move || {
            let mut bytes = vec![];
            if let Some(mut pipe) = pipe {
                let _ = pipe.read_to_end(&mut bytes);
            }
            String::from_utf8_lossy(&bytes).into_owned()
        })
    };
    use std::io::Read as _;
    let stdout = drain(child.stdout.take().map(|p| Box::new(p) as _));
    let stderr = drain(child.stderr.take().map(|p| Box::new(p) as _));
    // A command run to completion ends long before this; one that does not
    // (a `serve` that should have refused to start) fails the test instead
    // of hanging it.
    let end = Instant::now() + COMMAND_LIMIT;
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() >= end {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "{name} {args:?} still ran after {COMMAND_LIMIT:?}; stderr: {}",
                stderr.join().unwrap()
            );
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    (
        status.success(),
        stdout.join().unwrap(),
        stderr.join().unwrap(),
    )
}

/// How long a command [`run_with_stdin`] runs may take before the test fails.
const COMMAND_LIMIT: Duration = Duration::from_secs(120);

/// Runs a command that must fail (at startup, say); returns its stderr.
pub fn refused(name: &str, data: &Path, args: &[&str]) -> String {
    let (ok, _, err) = run_with_stdin(name, data, args, "");
    assert!(!ok, "{name} {args:?} succeeded: {err}");
    err
}

/// Runs a `mykey-node` command to completion; returns stdout, or panics with stderr.
pub fn node_cli(data: &Path, args: &[&str]) -> String {
    cli("mykey-node", data, args)
}

/// Runs a `mykey-hub` command to completion; returns stdout, or panics with stderr.
pub fn hub_cli(data: &Path, args: &[&str]) -> String {
    cli("mykey-hub", data, args)
}

fn cli(name: &str, data: &Path, args: &[&str]) -> String {
    let out = Command::new(bin(name))
        .arg("--data")
        .arg(data)
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{name} {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// `mykey-node status --json`.
pub fn status(data: &Path) -> serde_json::Value {
    serde_json::from_str(&node_cli(data, &["status", "--json"])).unwrap()
}

/// True when the node has every own transaction receipted and knows its limits.
pub fn caught_up(data: &Path) -> bool {
    let s = status(data);
    !s["facility"].is_null() && s["pending"] == 0 && s["receipted_seq"] == s["last_seq"]
}

pub fn bunkyo() -> MunicipalityCode {
    MunicipalityCode::parse("131059").unwrap()
}

pub fn pts(n: u64) -> Points {
    Points::new(n).unwrap()
}

pub fn card(serial: u32) -> CardKey {
    CardKey::new(b"JPKI test CA".to_vec(), serial.to_be_bytes().to_vec()).unwrap()
}

/// Card key as the CLI takes it.
pub fn card_arg(c: &CardKey) -> String {
    c.to_string()
}

/// A hub directory and node directories of one municipality, ready to serve.
pub struct World {
    pub root: tempfile::TempDir,
    pub hub_dir: PathBuf,
    pub hub_id: NodeId,
    pub nodes: Vec<PathBuf>,
    pub node_ids: Vec<NodeId>,
    pub holders: Vec<(CardKey, AccountId)>,
}

/// The LAN group [`World::create`] puts its nodes on.
pub const FESTIVAL: &str = "festival";

/// Points every holder is granted at the start.
pub const START_POINTS: u64 = 1_000_000;

impl World {
    /// A hub, `n_nodes` shop nodes allowed to redeem (one facility each)
    /// on one LAN roster ([`FESTIVAL`]), and `n_holders` holders with
    /// [`START_POINTS`] each.
    pub fn create(n_nodes: usize, n_holders: usize) -> World {
        Self::create_in(&std::env::temp_dir(), n_nodes, n_holders)
    }

    /// Like [`World::create`], with the directories under `base`.
    pub fn create_in(base: &Path, n_nodes: usize, n_holders: usize) -> World {
        Self::create_with_roster(base, n_nodes, n_holders, n_nodes)
    }

    /// Like [`World::create_in`], with only the first `rostered` nodes on
    /// the [`FESTIVAL`] roster (none: no roster is issued).
    pub fn create_with_roster(
        base: &Path,
        n_nodes: usize,
        n_holders: usize,
        rostered: usize,
    ) -> World {
        Self::create_full(base, n_nodes, n_holders, rostered, None)
    }

    /// Like [`World::create`], with the hub's store on the PostgreSQL
    /// database `database` (empty) instead of SQLite.
    pub fn create_on_database(
        n_nodes: usize,
        n_holders: usize,
        database: &mykey_hub::store::postgres::DatabaseUrl,
    ) -> World {
        Self::create_full(
            &std::env::temp_dir(),
            n_nodes,
            n_holders,
            n_nodes,
            Some(database),
        )
    }

    fn create_full(
        base: &Path,
        n_nodes: usize,
        n_holders: usize,
        rostered: usize,
        database: Option<&mykey_hub::store::postgres::DatabaseUrl>,
    ) -> World {
        let root = tempfile::tempdir_in(base).unwrap();
        let hub_dir = root.path().join("hub");
        let t = now();
        let mut hub = Hub::init_with(&hub_dir, database).unwrap();
        let m = bunkyo();
        hub.add_municipality(m, "Bunkyo-ku", t).unwrap();
        let health = ProgramId::parse("health").unwrap();
        hub.create_program(&health, m, pts(1_000_000_000), t)
            .unwrap();
        let mut nodes = vec![];
        let mut node_ids = vec![];
        for i in 0..n_nodes {
            let facility = FacilityId::parse(&format!("shop-{i}")).unwrap();
            hub.add_facility(
                &Facility {
                    id: facility.clone(),
                    municipality: m,
                    kind: FacilityKind::Shop,
                    name: format!("shop {i}"),
                },
                t,
            )
            .unwrap();
            let dir = root.path().join(format!("node-{i}"));
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
                    allowed_ops: vec![OpKind::Redeem, OpKind::Grant],
                    per_card_offline_limit: pts(1_000_000),
                    node_exposure_limit: pts(10_000_000),
                    offline_voucher_cap: pts(10_000_000),
                    pin_threshold: pts(10_000_000),
                    valid_until: t.plus_ms(365 * 24 * 3600 * 1000),
                },
                t,
            )
            .unwrap();
            node_ids.push(node.id());
            nodes.push(dir);
        }
        if rostered > 0 {
            let group = mykey_sync_proto::LanGroup::parse(FESTIVAL).unwrap();
            hub.set_lan_roster(m, &group, &node_ids[..rostered], t)
                .unwrap();
        }
        let mut holders = vec![];
        for i in 0..n_holders {
            let c = card(0x1000 + i as u32);
            let a = hub
                .register_account(&MyKeyId::parse(&format!("holder{i}")).unwrap(), m, &c, t)
                .unwrap();
            hub.admin_grant(a, &health, pts(START_POINTS), t).unwrap();
            holders.push((c, a));
        }
        World {
            hub_id: hub.hub_id(),
            root,
            hub_dir,
            nodes,
            node_ids,
            holders,
        }
    }

    /// Opens the hub's database (only while no `serve` runs).
    pub fn open_hub(&self) -> Hub {
        Hub::open(&self.hub_dir).unwrap()
    }

    /// A library `name` of `m` whose node may only link and unlink card
    /// numbers, added and enrolled with `hub`; its data directory and id.
    pub fn add_library(&self, hub: &mut Hub, m: MunicipalityCode, name: &str) -> (PathBuf, NodeId) {
        let t = now();
        let facility = FacilityId::parse(name).unwrap();
        hub.add_facility(
            &Facility {
                id: facility.clone(),
                municipality: m,
                kind: FacilityKind::Library,
                name: name.into(),
            },
            t,
        )
        .unwrap();
        let dir = self.root.path().join(name);
        let node = DataDir::new(&dir)
            .init(&NodeConfig {
                hub_key: self.hub_id.to_string(),
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
                valid_until: t.plus_ms(365 * 24 * 3600 * 1000),
            },
            t,
        )
        .unwrap();
        (dir, node.id())
    }

    /// A node directory that holds a key the hub never enrolled.
    pub fn stranger(&self) -> PathBuf {
        let dir = self.root.path().join("stranger");
        DataDir::new(&dir)
            .init(&NodeConfig {
                hub_key: self.hub_id.to_string(),
                hub_addr: None,
            })
            .unwrap();
        dir
    }
}

/// Sets `net.toml` values of a node directory.
pub fn write_net_toml(dir: &Path, text: &str) {
    std::fs::write(dir.join("net.toml"), text).unwrap();
}
