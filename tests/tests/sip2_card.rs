//! The SIP2 bridge end to end, as a library wires it: the real `mykey-node
//! sip2` binary, a card tapped on the reader paired with the self-check
//! machine (real pcscd, the vpcd virtual reader, the vjpki virtual card), and
//! on either side SIP2 software we did not write: a library system built on
//! pysip2 (tests/sip2/ils.py) and a self-check machine played by the Sip2
//! client (tests/sip2/machine.py), both from PyPI.
//!
//! Needs pcscd with vpcd (`scripts/pcsc-up.sh`), the Python peers
//! (`scripts/sip2-py.sh`, into target/sip2-venv) and the node binary
//! (`cargo build -p mykey-node`); without them these tests fail and say so.
//! They use vpcd's second slot (TCP 35964) like card_watch.rs (test binaries
//! run one after another); inside this file the tests take turns on a mutex.

mod sip2_common;

use mykey_node::card::{CardCert, Reader};
use sip2_common::{Known, library_node};
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const VJPKI: &str = env!("CARGO_BIN_EXE_vjpki");
const VPCD_PORT: u16 = 35964;
static SLOT: Mutex<()> = Mutex::new(());

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn python() -> PathBuf {
    let p = workspace().join("target/sip2-venv/bin/python");
    assert!(
        p.is_file(),
        "{} is missing: run scripts/sip2-py.sh (installs pysip2 and Sip2 from PyPI) first",
        p.display()
    );
    p
}

fn node_bin() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let dir = exe.parent().unwrap().parent().unwrap();
    let p = dir.join("mykey-node");
    assert!(
        p.is_file(),
        "{} is missing: run `cargo build -p mykey-node` first",
        p.display()
    );
    p
}

/// Kills the process when dropped.
struct Proc(Child);
impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Lines a process printed, collected on a thread.
#[derive(Clone, Default)]
struct Lines(Arc<Mutex<Vec<String>>>);
impl Lines {
    fn follow(&self, out: impl std::io::Read + Send + 'static) {
        let lines = self.0.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines() {
                let Ok(line) = line else { return };
                lines.lock().unwrap().push(line);
            }
        });
    }
    fn text(&self) -> String {
        self.0.lock().unwrap().join("\n")
    }
    /// Waits (bounded) for a line containing `want`; returns it.
    fn wait_for(&self, want: &str) -> String {
        let end = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(l) = self.0.lock().unwrap().iter().find(|l| l.contains(want)) {
                return l.clone();
            }
            assert!(
                Instant::now() < end,
                "no line with {want:?} in:\n{}",
                self.text()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

/// The virtual card's certificates (vjpki gen-certs).
fn gen_card(dir: &Path, serial: &str) -> (PathBuf, mykey_sync_proto::CardKey) {
    let card = dir.join(format!("card-{serial}"));
    let ok = Command::new(VJPKI)
        .args(["gen-certs", "--serial", serial, "--out"])
        .arg(&card)
        .status()
        .expect("run vjpki gen-certs")
        .success();
    assert!(ok, "vjpki gen-certs failed (is openssl installed?)");
    let der = std::fs::read(card.join("auth.der")).unwrap();
    let key = CardCert::from_der(der).unwrap().card_key().clone();
    (card, key)
}

/// The card on the reader; removed when dropped.
fn insert(card: &Path) -> Proc {
    let child = Command::new(VJPKI)
        .arg("serve")
        .arg("--cert")
        .arg(card.join("auth.der"))
        .arg("--ca-cert")
        .arg(card.join("ca.der"))
        .arg("--key")
        .arg(card.join("auth.key.pem"))
        .args(["--pin", "1234", "--vpcd", &format!("127.0.0.1:{VPCD_PORT}")])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn vjpki");
    Proc(child)
}

/// vpcd's second slot, after checking pcscd is there.
fn reader() -> String {
    let socket =
        std::env::var("PCSCLITE_CSOCK_NAME").unwrap_or_else(|_| "/run/pcscd/pcscd.comm".to_owned());
    assert!(
        Path::new(&socket).exists(),
        "pcscd is not running (no socket at {socket}): run scripts/pcsc-up.sh before these tests"
    );
    let pcsc = Reader::establish().expect("pcscd usable (scripts/pcsc-up.sh)");
    let readers = pcsc.list().expect("list readers");
    let name = readers
        .iter()
        .find(|r| r.starts_with("Virtual PCD") && r.ends_with("00 01"))
        .cloned()
        .unwrap_or_else(|| panic!("no second vpcd reader in {readers:?}: scripts/pcsc-up.sh"));
    assert!(
        pcsc.wait_for_card(&name, false, Duration::from_secs(20))
            .unwrap(),
        "the reader did not become empty"
    );
    name
}

/// A library system (pysip2) on a free port, writing what it saw to `seen`.
fn ils(seen: &Path) -> (Proc, u16) {
    let mut child = Command::new(python())
        .arg(workspace().join("tests/sip2/ils.py"))
        .arg(seen)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start ils.py");
    let out = Lines::default();
    out.follow(child.stdout.take().unwrap());
    let proc = Proc(child);
    let line = out.wait_for("listening ");
    let port = line
        .trim_start_matches("listening ")
        .trim()
        .parse()
        .unwrap();
    (proc, port)
}

struct Bridge {
    _proc: Proc,
    out: Lines,
    log: PathBuf,
    port: u16,
}

/// `mykey-node sip2` on `data`, paired with `reader`, in front of the ILS.
fn bridge(data: &Path, reader: &str, ils_port: u16) -> Bridge {
    let mut toml = std::fs::read_to_string(data.join("node.toml")).unwrap();
    toml.push_str(&format!(
        "\n[sip2]\nlisten = \"127.0.0.1:0\"\n\n[[sip2.machine]]\nname = \"sc-1\"\nreader = \"{reader}\"\nplaceholder = \"MYKEY\"\n"
    ));
    std::fs::write(data.join("node.toml"), toml).unwrap();
    let log = data.parent().unwrap().join("bridge.log");
    let mut child = Command::new(node_bin())
        .arg("--data")
        .arg(data)
        .args(["sip2", "--upstream", &format!("127.0.0.1:{ils_port}")])
        .env("RUST_LOG", "trace")
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .expect("start mykey-node sip2");
    let out = Lines::default();
    out.follow(child.stdout.take().unwrap());
    let proc = Proc(child);
    let line = out.wait_for("sip2 bridge listening on ");
    let port = line.rsplit(':').next().unwrap().trim().parse().unwrap();
    Bridge {
        _proc: proc,
        out,
        log,
        port,
    }
}

/// The self-check machine's visit (machine.py); its JSON result.
fn visit(b: &Bridge, item: &str) -> serde_json::Value {
    let port = b.port;
    let out = Command::new(python())
        .arg(workspace().join("tests/sip2/machine.py"))
        .args(["127.0.0.1", &port.to_string(), "MYKEY", item])
        .output()
        .expect("run machine.py");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "machine.py failed: {stdout}\n{}\nthe bridge's log:\n{}",
        String::from_utf8_lossy(&out.stderr),
        std::fs::read_to_string(&b.log).unwrap_or_default()
    );
    let line = stdout
        .lines()
        .find(|l| l.starts_with('{'))
        .expect("a JSON line");
    serde_json::from_str(line).unwrap()
}

/// The log without its colour escapes.
fn strip_ansi(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            for c in chars.by_ref() {
                if c.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// (command, patron id) of every request the library system received.
fn seen(path: &Path) -> Vec<(String, Option<String>)> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            (
                v["cmd"].as_str().unwrap().to_owned(),
                v["patron"].as_str().map(str::to_owned),
            )
        })
        .collect()
}

#[test]
fn a_self_check_machine_lends_to_a_tapped_card_and_the_library_sees_only_its_card_number() {
    let _slot = SLOT.lock().unwrap_or_else(|e| e.into_inner());
    let reader = reader();
    let tmp = tempfile::tempdir().unwrap();
    let (card_dir, card) = gen_card(tmp.path(), "00C0FFEE5102");
    let (dir, node) = library_node(&[(card, Known::Linked("LIB-0042"))]);
    drop(node);
    let seen_file = tmp.path().join("seen.jsonl");
    let (_ils, ils_port) = ils(&seen_file);
    let b = bridge(dir.path(), &reader, ils_port);
    b.out.wait_for("readers: ");

    let _card = insert(&card_dir);
    b.out.wait_for("sc-1: card ");
    let item = "BOOK-3141592653";
    let r = visit(&b, item);
    assert_eq!(r["login"], "1", "{r}");
    assert_eq!(r["status_online"], "Y", "{r}");
    assert_eq!(r["valid_patron"], "Y", "{r}");
    assert_eq!(r["name"], "Hanako Müller", "IBM850 both ways: {r}");
    assert_eq!(r["checkout"], "1", "{r}");
    assert_eq!(r["renew"], "1", "{r}");
    assert_eq!(r["checkin"], "1", "{r}");
    assert_eq!(r["end"], "Y", "{r}");

    // The library system saw LIB-0042 for every patron request, never the placeholder.
    let seen = seen(&seen_file);
    let cmds: Vec<&str> = seen.iter().map(|(c, _)| c.as_str()).collect();
    assert_eq!(cmds, ["93", "63", "11", "29", "09", "35"], "{seen:?}");
    for (cmd, patron) in &seen {
        if let Some(p) = patron {
            assert_eq!(p, "LIB-0042", "{cmd}");
        }
    }

    // Nothing of the loan stays on the node: not its store, logs or output.
    let log = strip_ansi(&std::fs::read_to_string(&b.log).unwrap());
    assert!(
        log.contains("msg=11"),
        "the log did record the checkout (at trace level)"
    );
    let mut hay = vec![
        ("log".to_owned(), log.into_bytes()),
        ("stdout".into(), b.out.text().into_bytes()),
    ];
    for e in std::fs::read_dir(dir.path()).unwrap() {
        let p = e.unwrap().path();
        hay.push((p.display().to_string(), std::fs::read(&p).unwrap()));
    }
    for (name, bytes) in &hay {
        let text = String::from_utf8_lossy(bytes);
        for needle in [item, "Botchan", "20261224"] {
            assert!(!text.contains(needle), "{needle} found in {name}");
        }
    }
}

#[test]
fn a_suspended_card_is_answered_by_the_bridge_and_never_reaches_the_library() {
    let _slot = SLOT.lock().unwrap_or_else(|e| e.into_inner());
    let reader = reader();
    let tmp = tempfile::tempdir().unwrap();
    let (card_dir, card) = gen_card(tmp.path(), "00C0FFEE5103");
    let (dir, node) = library_node(&[(card, Known::Suspended)]);
    drop(node);
    let seen_file = tmp.path().join("seen.jsonl");
    let (_ils, ils_port) = ils(&seen_file);
    let b = bridge(dir.path(), &reader, ils_port);
    b.out.wait_for("readers: ");
    let _card = insert(&card_dir);
    let line = b.out.wait_for("sc-1: card ");
    assert!(line.contains("refused (suspended)"), "{line}");
    let r = visit(&b, "BOOK-2718281828");
    assert_eq!(r["valid_patron"], "N", "{r}");
    assert!(r["screen"].as_str().unwrap().contains("suspended"), "{r}");
    assert_eq!(r["checkout"], "0", "{r}");
    // The library system heard the login and the checkin (no patron in it), nothing else.
    let seen = seen(&seen_file);
    assert!(seen.iter().all(|(_, p)| p.is_none()), "{seen:?}");
    assert!(
        !seen.iter().any(|(c, _)| c == "11" || c == "63"),
        "{seen:?}"
    );
}
