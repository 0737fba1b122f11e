//! `mykey-node watch` end to end: real pcscd, the vpcd virtual reader, the
//! vjpki virtual card (tests/src/bin/vjpki.rs), and a real node with a SQLite
//! store in a temp dir, given its registrations and balances as facts signed
//! by a test hub key.
//!
//! Needs pcscd running with vpcd: `scripts/pcsc-up.sh` before `cargo test`,
//! `scripts/pcsc-down.sh` after. Without it these tests fail and say so.
//! They use vpcd's second slot (TCP 35964), so they never meet the card of
//! card_reader.rs in the first; inside this file the tests take turns on a mutex.
//! One test runs the `mykey-node` binary, which `cargo test --workspace` builds
//! (alone: `cargo build -p mykey-node` first); one starts a private pcscd in its
//! own mount namespace to stop and restart it, which needs root like
//! scripts/pcsc-up.sh.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::time::{Duration, Instant};

mod net_common;

use mykey_node::card::watch::{self, Action, Console, PinSource, Summary, WatchOptions};
use mykey_node::card::{CardCert, Reader};
use mykey_node::config::{DataDir, NodeConfig};
use mykey_node::{Node, NodeKey};
use mykey_sync_proto::wire::Facts;
use mykey_sync_proto::{
    AccountId, CardKey, CardStatus, FacilityCardNumber, FacilityId, FactBody, FactPayload,
    MunicipalityCode, MyKeyId, NodeLimits, OpKind, Points, Scope, SignedFact, TxBody, UnixMillis,
};

const VJPKI: &str = env!("CARGO_BIN_EXE_vjpki");
const PIN: &str = "4321";
const VPCD_PORT: u16 = 35964;
const LIBRARY_NUMBER: &str = "LIB-0042";

static READER_SLOT: Mutex<()> = Mutex::new(());

/// The test card's certificates, made once per test run.
struct Certs {
    _dir: tempfile::TempDir,
    card: PathBuf,
}

impl Certs {
    fn card_key(&self) -> CardKey {
        let der = std::fs::read(self.card.join("auth.der")).expect("auth.der");
        CardCert::from_der(der).expect("parse").card_key().clone()
    }
    fn ca_der(&self) -> Vec<u8> {
        std::fs::read(self.card.join("ca.der")).expect("ca.der")
    }
}

fn certs() -> &'static Certs {
    static CERTS: OnceLock<Certs> = OnceLock::new();
    CERTS.get_or_init(|| {
        let dir = tempfile::tempdir().expect("tempdir");
        let card = dir.path().join("card");
        let status = Command::new(VJPKI)
            .args(["gen-certs", "--serial", "00C0FFEE0042", "--out"])
            .arg(&card)
            .status()
            .expect("run vjpki gen-certs");
        assert!(
            status.success(),
            "vjpki gen-certs failed (is openssl installed?)"
        );
        Certs { _dir: dir, card }
    })
}

/// Fails the test with what to do when pcscd is not there.
fn pcsc_ready() -> Reader {
    let socket =
        std::env::var("PCSCLITE_CSOCK_NAME").unwrap_or_else(|_| "/run/pcscd/pcscd.comm".to_owned());
    assert!(
        Path::new(&socket).exists(),
        "pcscd is not running (no socket at {socket}): run scripts/pcsc-up.sh before these tests"
    );
    Reader::establish().unwrap_or_else(|e| {
        panic!("pcscd is not usable ({e}): run scripts/pcsc-up.sh before these tests")
    })
}

/// vpcd's second slot, the one that listens on 35964.
fn vpcd_reader(pcsc: &Reader) -> String {
    let readers = pcsc.list().expect("list readers");
    readers
        .iter()
        .find(|r| r.starts_with("Virtual PCD") && r.ends_with("00 01"))
        .cloned()
        .unwrap_or_else(|| {
            panic!("no second vpcd reader in {readers:?}: install vsmartcard-vpcd and restart pcscd (scripts/pcsc-up.sh)")
        })
}

/// A running virtual card; removed (process killed) on drop.
struct VCard {
    child: Child,
    log: PathBuf,
    _dir: tempfile::TempDir,
}

impl VCard {
    fn insert(extra: &[&str]) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let log = dir.path().join("apdu.log");
        let card = &certs().card;
        let child = Command::new(VJPKI)
            .arg("serve")
            .arg("--cert")
            .arg(card.join("auth.der"))
            .arg("--ca-cert")
            .arg(card.join("ca.der"))
            .arg("--key")
            .arg(card.join("auth.key.pem"))
            .args(["--pin", PIN, "--vpcd", &format!("127.0.0.1:{VPCD_PORT}")])
            .arg("--log")
            .arg(&log)
            .args(extra)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn vjpki");
        VCard {
            child,
            log,
            _dir: dir,
        }
    }

    /// PIN VERIFYs the card received (the 9-byte form that carries a PIN).
    fn pin_verifies(&self) -> usize {
        std::fs::read_to_string(&self.log)
            .unwrap_or_default()
            .lines()
            .filter(|l| l.starts_with("> 0020008004"))
            .count()
    }

    fn remove(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for VCard {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The reader slot, held for a whole test.
struct Counter {
    pcsc: Reader,
    reader: String,
    _slot: MutexGuard<'static, ()>,
}

impl Counter {
    fn take() -> Self {
        let slot = READER_SLOT.lock().unwrap_or_else(|e| e.into_inner());
        let pcsc = pcsc_ready();
        let reader = vpcd_reader(&pcsc);
        let c = Counter {
            pcsc,
            reader,
            _slot: slot,
        };
        c.wait(false);
        c
    }

    /// Inserts a card and waits until pcscd sees it.
    fn insert(&self, extra: &[&str]) -> VCard {
        self.wait(false);
        let card = VCard::insert(extra);
        self.wait(true);
        card
    }

    fn wait(&self, present: bool) {
        assert!(
            self.pcsc
                .wait_for_card(&self.reader, present, Duration::from_secs(20))
                .expect("wait for reader state"),
            "the reader did not become {}",
            if present { "busy" } else { "empty" }
        );
    }

    fn opts(&self) -> WatchOptions {
        WatchOptions {
            reader: Some(self.reader.clone()),
            pin: PinSource::Input,
            trusted_ca: vec![certs().ca_der()],
            ..WatchOptions::default()
        }
    }
}

// ---- the node ----------------------------------------------------------------

/// What the hub has told the node about the test card.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Known {
    Registered,
    Suspended,
    Superseded,
    Unknown,
}

fn pts(n: u64) -> Points {
    Points::new(n).expect("points")
}

fn now() -> UnixMillis {
    mykey_net::unix_now()
}

/// A node in a fresh data directory: a library (link, unlink) or a shop
/// (redeem) with a 2000 pt PIN threshold, and Hanako's card as `known`
/// with 5000 pt confirmed and library card number LIB-0042.
fn node(ops: &[OpKind], known: Known) -> (tempfile::TempDir, Node) {
    let hub = NodeKey::from_secret([42; 32]);
    let dir = tempfile::tempdir().expect("tempdir");
    let mut node = DataDir::new(dir.path())
        .init(&NodeConfig {
            hub_key: hub.id().to_string(),
            hub_addr: None,
        })
        .expect("init node");
    let m = MunicipalityCode::parse("131059").expect("muni");
    let facility = FacilityId::parse("bunkyo-lib").expect("facility");
    let account = AccountId::new(1).expect("account");
    let card = certs().card_key();
    let mut bodies = vec![(
        Scope::Node(node.id()),
        FactBody::NodeLimits(NodeLimits {
            node: node.id(),
            facility: facility.clone(),
            municipality: m,
            allowed_ops: ops.to_vec(),
            per_card_offline_limit: pts(3000),
            node_exposure_limit: pts(20_000),
            pin_threshold: pts(2000),
            valid_until: now().plus_ms(365 * 24 * 3600 * 1000),
        }),
    )];
    if known != Known::Unknown {
        bodies.extend([
            (
                Scope::Municipality(m),
                FactBody::CardRegistered {
                    card: card.clone(),
                    account,
                    my_key_id: MyKeyId::parse("Hanako").expect("alias"),
                    municipality: m,
                },
            ),
            (
                Scope::Municipality(m),
                FactBody::ConfirmedBalance {
                    account,
                    municipality: m,
                    balance: pts(5000),
                    debt: pts(0),
                    ledger_pos: 1,
                },
            ),
            (
                Scope::Facility(facility.clone()),
                FactBody::FacilityCard {
                    account,
                    facility,
                    number: FacilityCardNumber::parse(LIBRARY_NUMBER).expect("number"),
                    linked: true,
                },
            ),
        ]);
    }
    let status = match known {
        Known::Suspended => Some(CardStatus::Suspended),
        Known::Superseded => Some(CardStatus::Superseded),
        Known::Registered | Known::Unknown => None,
    };
    if let Some(status) = status {
        bodies.push((
            Scope::Municipality(m),
            FactBody::CardStatusChanged { card, status },
        ));
    }
    let n = bodies.len();
    let facts = Facts {
        facts: bodies
            .into_iter()
            .enumerate()
            .map(|(i, (scope, body))| {
                SignedFact::sign(
                    &FactPayload {
                        hub_seq: i as u64 + 1,
                        issued_at: UnixMillis(1),
                        scope,
                        body,
                    },
                    hub.signing_key(),
                )
            })
            .collect(),
        cursor: n as u64,
        more: false,
    };
    assert_eq!(node.apply_facts(&facts).expect("facts"), n);
    (dir, node)
}

const LIBRARY: &[OpKind] = &[OpKind::Link, OpKind::Unlink];
const SHOP: &[OpKind] = &[OpKind::Redeem];

/// The redeems the node signed: (points, card_proof).
fn redeems(node: &Node) -> Vec<(u64, bool)> {
    node.outbox_from(1, 100)
        .expect("outbox")
        .iter()
        .filter_map(
            |tx| match &tx.verify().expect("own tx verifies").payload().body {
                TxBody::Redeem(r) => Some((r.points.get(), r.card_proof.is_some())),
                _ => None,
            },
        )
        .collect()
}

// ---- running the watch loop --------------------------------------------------

/// What one run printed: results, and prompts separately.
struct Printed {
    out: String,
    prompts: String,
    summary: Summary,
}

/// Runs the watch loop for one tap on the card already on the reader.
fn tap_once(node: &mut Node, opts: &WatchOptions, input: &str) -> Printed {
    let mut input = std::io::Cursor::new(input.as_bytes().to_vec());
    let (mut out, mut prompts) = (Vec::new(), Vec::new());
    let summary = watch::run_once(
        node,
        opts,
        Console {
            input: &mut input,
            out: &mut out,
            prompt: &mut prompts,
        },
        &mut now,
    )
    .expect("watch runs");
    Printed {
        out: String::from_utf8(out).expect("utf-8"),
        prompts: String::from_utf8(prompts).expect("utf-8"),
        summary,
    }
}

/// Output shared with a watch loop running on another thread.
#[derive(Clone, Default)]
struct SharedOut(Arc<Mutex<Vec<u8>>>);

impl SharedOut {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap_or_else(|e| e.into_inner())).into_owned()
    }
    /// Waits (bounded) until the output holds `want` `times` times.
    fn wait_for(&self, want: &str, times: usize) {
        let deadline = Instant::now() + Duration::from_secs(20);
        while self.text().matches(want).count() < times {
            assert!(
                Instant::now() < deadline,
                "no {want:?} (x{times}) in the watch output:\n{}",
                self.text()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Write for SharedOut {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Runs the watch loop on its own thread until it ends by itself.
fn spawn_watch(
    mut node: Node,
    opts: WatchOptions,
    out: SharedOut,
) -> std::thread::JoinHandle<(Node, Summary)> {
    std::thread::spawn(move || {
        let mut input = std::io::empty();
        let (mut out, mut prompts) = (out, std::io::sink());
        let summary = watch::run(
            &mut node,
            &opts,
            Console {
                input: &mut input,
                out: &mut out,
                prompt: &mut prompts,
            },
            &mut now,
        )
        .expect("watch runs");
        (node, summary)
    })
}

// ---- library counter ---------------------------------------------------------

#[test]
fn library_tap_of_a_registered_card_shows_the_library_card_number() {
    let counter = Counter::take();
    let (_dir, mut node) = node(LIBRARY, Known::Registered);
    let card = counter.insert(&[]);
    let p = tap_once(&mut node, &counter.opts(), "");
    assert_eq!(p.summary.taps, 1);
    assert!(
        p.out.contains(&format!(
            "registered: My Key ID Hanako, bunkyo-lib card number {LIBRARY_NUMBER}"
        )),
        "{}",
        p.out
    );
    assert!(p.prompts.is_empty(), "a lookup asks nothing: {}", p.prompts);
    assert_eq!(card.pin_verifies(), 0, "a lookup never asks for the PIN");
    // The card key never reaches the counter's screen, only the alias.
    assert!(!p.out.contains(&certs().card_key().to_string()));
}

#[test]
fn library_tap_of_an_unregistered_card_says_where_to_register() {
    let counter = Counter::take();
    let (_dir, mut node) = node(LIBRARY, Known::Unknown);
    let _card = counter.insert(&[]);
    let p = tap_once(&mut node, &counter.opts(), "");
    assert!(p.out.contains("not registered"), "{}", p.out);
    assert!(p.out.contains("municipal counter"), "{}", p.out);
}

#[test]
fn a_suspended_card_is_refused_at_the_library_and_at_the_shop() {
    let counter = Counter::take();
    let _card = counter.insert(&[]);
    let (_dir, mut library) = node(LIBRARY, Known::Suspended);
    let p = tap_once(&mut library, &counter.opts(), "");
    assert!(p.out.contains("SUSPENDED"), "{}", p.out);
    assert!(!p.out.contains(LIBRARY_NUMBER), "{}", p.out);

    let (_dir, mut shop) = node(SHOP, Known::Suspended);
    let p = tap_once(&mut shop, &counter.opts(), "500\n");
    assert!(p.out.contains("SUSPENDED"), "{}", p.out);
    assert!(
        !p.prompts.contains("amount"),
        "no amount asked: {}",
        p.prompts
    );
    assert!(redeems(&shop).is_empty());
}

#[test]
fn a_renewed_card_is_told_to_bring_the_new_one() {
    let counter = Counter::take();
    let _card = counter.insert(&[]);
    let (_dir, mut shop) = node(SHOP, Known::Superseded);
    let p = tap_once(&mut shop, &counter.opts(), "500\n");
    assert!(p.out.contains("REPLACED"), "{}", p.out);
    assert!(p.out.contains("new card"), "{}", p.out);
    assert!(redeems(&shop).is_empty());
}

// ---- shop --------------------------------------------------------------------

#[test]
fn shop_redeems_under_the_threshold_without_a_pin() {
    let counter = Counter::take();
    let (_dir, mut shop) = node(SHOP, Known::Registered);
    let card = counter.insert(&[]);
    let p = tap_once(&mut shop, &counter.opts(), "500\n");
    assert!(
        p.out.contains("redeemed 500 pt (seq 1, tx "),
        "{}\n{}",
        p.out,
        p.prompts
    );
    assert!(p.out.contains("4500 pt left to spend"), "{}", p.out);
    assert!(
        p.prompts.contains("My Key ID Hanako: amount"),
        "{}",
        p.prompts
    );
    assert!(!p.prompts.contains("PIN"), "{}", p.prompts);
    assert_eq!(card.pin_verifies(), 0);
    assert_eq!(redeems(&shop), [(500, false)]);

    // Unattended: a fixed amount, no input at all.
    let opts = WatchOptions {
        amount: Some(pts(300)),
        ..counter.opts()
    };
    let p = tap_once(&mut shop, &opts, "");
    assert!(p.out.contains("redeemed 300 pt (seq 2"), "{}", p.out);
    // An empty line is no sale.
    let p = tap_once(&mut shop, &counter.opts(), "\n");
    assert!(p.out.contains("nothing redeemed"), "{}", p.out);
    assert_eq!(redeems(&shop), [(500, false), (300, false)]);
}

#[test]
fn shop_over_the_threshold_with_the_right_pin_redeems_with_proof() {
    let counter = Counter::take();
    let (_dir, mut shop) = node(SHOP, Known::Registered);
    let card = counter.insert(&[]);
    let p = tap_once(&mut shop, &counter.opts(), &format!("2500\n{PIN}\n"));
    assert!(
        p.out.contains("redeemed 2500 pt with PIN (seq 1"),
        "{}\n{}",
        p.out,
        p.prompts
    );
    assert!(p.prompts.contains("3 tries left"), "{}", p.prompts);
    assert!(!p.prompts.contains(PIN), "the PIN is never echoed");
    assert_eq!(card.pin_verifies(), 1);
    assert_eq!(redeems(&shop), [(2500, true)]);
}

#[test]
fn shop_over_the_threshold_declines_with_figures_when_the_balance_is_short() {
    let counter = Counter::take();
    let (_dir, mut shop) = node(SHOP, Known::Registered);
    let _card = counter.insert(&[]);
    // 5000 confirmed, but the card's offline limit here is 3000.
    let p = tap_once(&mut shop, &counter.opts(), &format!("3500\n{PIN}\n"));
    assert!(
        p.out
            .contains("declined: card offline limit at this node: limit 3000 pt, already unconfirmed 0 pt, asked 3500 pt"),
        "{}",
        p.out
    );
    assert!(redeems(&shop).is_empty());
}

#[test]
fn wrong_pins_show_tries_left_redeem_nothing_and_then_the_card_is_locked() {
    let counter = Counter::take();
    let (_dir, mut shop) = node(SHOP, Known::Registered);
    let card = counter.insert(&[]);
    for left in ["2 tries left", "1 try left"] {
        let p = tap_once(&mut shop, &counter.opts(), "2500\n0000\n");
        assert!(p.out.contains(&format!("wrong PIN: {left}")), "{}", p.out);
        assert!(p.out.contains("nothing redeemed"), "{}", p.out);
    }
    let p = tap_once(&mut shop, &counter.opts(), "2500\n0000\n");
    assert!(p.out.contains("PIN LOCKED"), "{}", p.out);
    assert!(p.out.contains("municipal office counter"), "{}", p.out);
    assert_eq!(card.pin_verifies(), 3);
    // Locked: the node sees it before asking, and never sends the PIN.
    let p = tap_once(&mut shop, &counter.opts(), &format!("2500\n{PIN}\n"));
    assert!(p.out.contains("PIN LOCKED"), "{}", p.out);
    assert!(!p.prompts.contains("PIN:"), "{}", p.prompts);
    assert_eq!(card.pin_verifies(), 3, "no PIN sent to a locked card");
    assert!(redeems(&shop).is_empty(), "nothing redeemed");
    // Small amounts need no PIN, so the holder can still shop.
    let p = tap_once(&mut shop, &counter.opts(), "800\n");
    assert!(p.out.contains("redeemed 800 pt (seq 1"), "{}", p.out);
}

#[test]
fn a_locked_card_is_told_before_any_pin_is_asked() {
    let counter = Counter::take();
    let (_dir, mut shop) = node(SHOP, Known::Registered);
    let card = counter.insert(&["--tries", "0"]);
    let p = tap_once(&mut shop, &counter.opts(), &format!("2500\n{PIN}\n"));
    assert!(p.out.contains("PIN LOCKED"), "{}", p.out);
    assert!(!p.prompts.contains("PIN:"), "{}", p.prompts);
    assert_eq!(card.pin_verifies(), 0);
    assert!(redeems(&shop).is_empty());
}

#[test]
fn without_a_trusted_ca_no_pin_is_asked_and_nothing_is_redeemed() {
    let counter = Counter::take();
    let (_dir, mut shop) = node(SHOP, Known::Registered);
    let card = counter.insert(&[]);
    let opts = WatchOptions {
        trusted_ca: Vec::new(),
        ..counter.opts()
    };
    let p = tap_once(&mut shop, &opts, &format!("2500\n{PIN}\n"));
    assert!(p.out.contains("no trusted JPKI CA given"), "{}", p.out);
    assert!(
        p.out
            .contains("NOT ACCEPTED: no trusted JPKI CA is configured"),
        "{}",
        p.out
    );
    assert!(p.out.contains("--trusted-ca"), "{}", p.out);
    assert_eq!(card.pin_verifies(), 0);
    assert!(redeems(&shop).is_empty());
}

#[test]
fn a_library_node_refuses_to_watch_as_a_shop() {
    let (_dir, mut library) = node(LIBRARY, Known::Registered);
    let opts = WatchOptions {
        action: Some(Action::Redeem),
        ..WatchOptions::default()
    };
    let mut input = std::io::empty();
    let err = watch::run(
        &mut library,
        &opts,
        Console {
            input: &mut input,
            out: &mut std::io::sink(),
            prompt: &mut std::io::sink(),
        },
        &mut now,
    )
    .expect_err("redeem is not allowed here");
    assert!(err.to_string().contains("--action lookup"), "{err}");
}

// ---- reader trouble ------------------------------------------------------------

#[test]
fn reader_errors_print_a_line_and_the_loop_serves_the_next_tap() {
    let counter = Counter::take();
    let (_dir, library) = node(LIBRARY, Known::Registered);
    let out = SharedOut::default();
    let opts = WatchOptions {
        max_taps: Some(3),
        ..counter.opts()
    };
    let watcher = spawn_watch(library, opts, out.clone());

    // A smart card that is not a My Number card.
    let card = counter.insert(&["--not-jpki"]);
    out.wait_for("not a My Number card", 1);
    card.remove();
    // Removed after four commands, in the middle of the certificate.
    // Not waited for here: the watcher may read and lose it before we look.
    counter.wait(false);
    let card = VCard::insert(&["--drop-after", "4"]);
    out.wait_for("removed while it was being read", 1);
    counter.wait(false);
    drop(card);
    // And the next tap is served.
    let _card = counter.insert(&[]);
    let (_node, summary) = watcher.join().expect("watch thread");
    assert_eq!(summary.taps, 3);
    let text = out.text();
    assert!(
        text.contains(&format!("card number {LIBRARY_NUMBER}")),
        "{text}"
    );
    assert_eq!(text.matches("card not read").count(), 2, "{text}");
}

#[test]
fn a_stop_request_ends_a_loop_waiting_for_cards() {
    let counter = Counter::take();
    let (_dir, library) = node(LIBRARY, Known::Registered);
    let out = SharedOut::default();
    let opts = counter.opts();
    let stop = opts.stop.clone();
    let watcher = spawn_watch(library, opts, out.clone());
    out.wait_for("waiting for a card on", 1);
    stop.stop();
    let (_node, summary) = watcher.join().expect("watch thread");
    assert_eq!(summary.taps, 0);
}

/// pcscd not running: one clear line, the loop keeps retrying, and the node
/// keeps answering lookups meanwhile. pcsc-lite reads its socket path once
/// per process, so this runs itself again as a child pointed at a socket
/// that does not exist.
#[test]
fn pcscd_not_running_prints_once_and_the_node_keeps_serving() {
    const CHILD: &str = "MYKEY_WATCH_TEST_NO_SERVICE_CHILD";
    if std::env::var_os(CHILD).is_some() {
        let (dir, watched) = node(LIBRARY, Known::Registered);
        let out = SharedOut::default();
        let opts = WatchOptions::default();
        let stop = opts.stop.clone();
        let watcher = spawn_watch(watched, opts, out.clone());
        // The same node, opened a second time as its API would hold it.
        let other = DataDir::new(dir.path()).open().expect("open node again");
        let card = certs().card_key();
        for _ in 0..5 {
            std::thread::sleep(Duration::from_millis(500));
            let found = other.lookup(&card).expect("lookup while pcscd is away");
            assert!(
                matches!(found, mykey_node::Lookup::Found { .. }),
                "{found:?}"
            );
            println!("node still serving lookups");
        }
        stop.stop();
        let (_node, summary) = watcher.join().expect("watch thread");
        assert_eq!(summary.taps, 0);
        print!("{}", out.text());
        return;
    }
    // Make the certificates here: the child would make its own otherwise.
    let _ = certs();
    let dir = tempfile::tempdir().expect("tempdir");
    let out = Command::new(std::env::current_exe().expect("test exe"))
        .args([
            "--exact",
            "pcscd_not_running_prints_once_and_the_node_keeps_serving",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD, "1")
        .env("PCSCLITE_CSOCK_NAME", dir.path().join("no-pcscd.comm"))
        .output()
        .expect("run child");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "child failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        stdout.matches("node still serving lookups").count(),
        5,
        "{stdout}"
    );
    // Retried with backoff over 2.5 s, but said once.
    assert_eq!(
        stdout
            .matches("the smart card service (pcscd) is not running: start it")
            .count(),
        1,
        "{stdout}"
    );
}

/// A pcscd of this test's own, so it can be stopped and started without
/// touching the one other tests use: a private mount namespace puts its
/// socket (whose path pcscd 1.9 does not let us choose) in `dir/run`, and
/// its reader.conf puts vpcd on TCP 36000 and 36001. Needs root, as
/// scripts/pcsc-up.sh does.
struct PrivatePcscd {
    dir: PathBuf,
    child: Option<Child>,
}

const PRIVATE_VPCD_PORT: u16 = 36000;

impl PrivatePcscd {
    fn new(dir: &Path) -> Self {
        std::fs::create_dir_all(dir.join("conf")).expect("conf dir");
        std::fs::create_dir_all(dir.join("run")).expect("run dir");
        std::fs::write(
            dir.join("conf/vpcd"),
            format!(
                "FRIENDLYNAME \"Virtual PCD\"\nDEVICENAME   /dev/null:0x{PRIVATE_VPCD_PORT:X}\nLIBPATH      /usr/lib/pcsc/drivers/serial/libifdvpcd.so\nCHANNELID    0x{PRIVATE_VPCD_PORT:X}\n"
            ),
        )
        .expect("reader.conf");
        PrivatePcscd {
            dir: dir.to_owned(),
            child: None,
        }
    }

    fn socket(&self) -> PathBuf {
        self.dir.join("run/pcscd.comm")
    }

    fn start(&mut self) {
        let script = format!(
            "mount --bind {run} /run/pcscd && exec pcscd --foreground -c {conf}",
            run = self.dir.join("run").display(),
            conf = self.dir.join("conf").display()
        );
        let log = std::fs::File::create(self.dir.join("pcscd.log")).expect("log");
        let child = Command::new("unshare")
            .args(["-m", "sh", "-c", &script])
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .spawn()
            .expect("run unshare (util-linux)");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(20);
        while !self.socket().exists() {
            let log = std::fs::read_to_string(self.dir.join("pcscd.log")).unwrap_or_default();
            assert!(
                Instant::now() < deadline,
                "could not start a private pcscd (this test needs root for unshare -m and mount --bind, and pcscd installed):\n{log}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Stops it as an operator would (SIGTERM), and waits until it is gone.
    fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = Command::new("kill").arg(child.id().to_string()).status();
            let _ = child.wait();
        }
    }
}

impl Drop for PrivatePcscd {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// pcscd stops while the loop waits for a card: one clear line, the node
/// keeps answering lookups, and once pcscd is back the next tap is served.
/// Runs itself again as a child pointed at a private pcscd (pcsc-lite reads
/// its socket path once per process).
#[test]
fn pcscd_stopped_mid_watch_then_restarted_serves_the_next_tap() {
    const CHILD: &str = "MYKEY_WATCH_TEST_PRIVATE_PCSCD";
    if let Some(dir) = std::env::var_os(CHILD) {
        let mut pcscd = PrivatePcscd::new(Path::new(&dir));
        pcscd.start();
        let (data, watched) = node(LIBRARY, Known::Registered);
        let out = SharedOut::default();
        let opts = WatchOptions {
            max_taps: Some(1),
            ..WatchOptions::default()
        };
        let watcher = spawn_watch(watched, opts, out.clone());
        out.wait_for("waiting for a card on Virtual PCD 00 00", 1);

        pcscd.stop();
        out.wait_for("(pcscd) is not running", 1);
        let other = DataDir::new(data.path()).open().expect("open node again");
        for _ in 0..3 {
            std::thread::sleep(Duration::from_millis(400));
            let found = other.lookup(&certs().card_key()).expect("lookup");
            assert!(matches!(found, mykey_node::Lookup::Found { .. }));
            println!("node still serving lookups");
        }

        pcscd.start();
        out.wait_for("waiting for a card on Virtual PCD 00 00", 2);
        let card = &certs().card;
        let mut vjpki = Command::new(VJPKI)
            .arg("serve")
            .arg("--cert")
            .arg(card.join("auth.der"))
            .arg("--key")
            .arg(card.join("auth.key.pem"))
            .args(["--vpcd", &format!("127.0.0.1:{PRIVATE_VPCD_PORT}")])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn vjpki");
        let joined = watcher.join();
        let _ = vjpki.kill();
        let _ = vjpki.wait();
        let (_node, summary) = joined.expect("watch thread");
        assert_eq!(summary.taps, 1);
        print!("{}", out.text());
        return;
    }
    let _ = certs();
    let dir = tempfile::tempdir().expect("tempdir");
    let out = Command::new(std::env::current_exe().expect("test exe"))
        .args([
            "--exact",
            "pcscd_stopped_mid_watch_then_restarted_serves_the_next_tap",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD, dir.path())
        .env("PCSCLITE_CSOCK_NAME", dir.path().join("run/pcscd.comm"))
        .output()
        .expect("run child");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "child failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        stdout.matches("node still serving lookups").count(),
        3,
        "{stdout}"
    );
    assert_eq!(
        stdout.matches("(pcscd) is not running").count(),
        1,
        "said once: {stdout}"
    );
    assert!(
        stdout.contains(&format!(
            "registered: My Key ID Hanako, bunkyo-lib card number {LIBRARY_NUMBER}"
        )),
        "{stdout}"
    );
}

/// A binary of the workspace, one level up from this test in `target/<profile>/deps/`.
fn bin(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("test exe");
    let dir = exe.parent().and_then(Path::parent).expect("target dir");
    let p = dir.join(name);
    assert!(
        p.is_file(),
        "{name} is missing at {}: run `cargo build -p mykey-node --bins` first",
        p.display()
    );
    p
}

/// `mykey-node watch --once --pin-stdin` on `reader`, trusting the test CA,
/// with `stdin` typed in and the log at `log`.
fn scripted_watch(dir: &Path, reader: &str, stdin: &str, log: &str) -> std::process::Output {
    let mut child = Command::new(bin("mykey-node"))
        .arg("--data")
        .arg(dir)
        .args(["watch", "--once", "--pin-stdin", "--reader", reader])
        .arg("--trusted-ca")
        .arg(certs().card.join("ca.der"))
        .env("RUST_LOG", log)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run mykey-node watch");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(stdin.as_bytes())
        .expect("write stdin");
    child.wait_with_output().expect("mykey-node watch")
}

/// The real command, scripted: stdin gives the amount and the PIN, stdout
/// has the result, and a debug log holds neither the PIN nor the card key.
#[test]
fn the_watch_command_serves_a_scripted_shop_tap_and_logs_no_pin() {
    let counter = Counter::take();
    let (dir, shop) = node(SHOP, Known::Registered);
    drop(shop);
    let _card = counter.insert(&[]);
    let out = scripted_watch(
        dir.path(),
        &counter.reader,
        &format!("2500\n{PIN}\n"),
        "debug",
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    assert!(
        stdout.contains("redeemed 2500 pt with PIN (seq 1"),
        "{stdout}\n{stderr}"
    );
    let key = certs().card_key();
    assert!(
        stderr.contains(&key.short()),
        "the log names the card by its short form"
    );
    // The VERIFY went to the card and into the log, redacted. (The PIN's
    // digits alone are no test: timestamps and ids hold any four digits.)
    assert!(
        stderr.contains("00 20 00 80 04 ** ** ** **"),
        "no redacted VERIFY in the log:\n{stderr}"
    );
    for secret in [
        "34 33 32 31".to_owned(),
        key.to_string(),
        hex::encode(key.serial()),
    ] {
        assert!(!stdout.contains(&secret), "stdout holds {secret:?}");
        assert!(
            !stderr.contains(&secret),
            "the log holds {secret:?}:\n{stderr}"
        );
    }
    let shop = DataDir::new(dir.path()).open().expect("open node");
    assert_eq!(redeems(&shop), [(2500, true)]);
}

/// Issue 22 item 5: an amount typed as a counter types it (`2,500`,
/// full-width digits) is taken; a mistyped one is asked again for the same
/// field, without repeating what was typed, so the PIN on the next line is
/// never taken as the amount nor shown.
#[test]
fn the_watch_command_asks_a_mistyped_amount_again_and_takes_2_500() {
    let counter = Counter::take();
    for (typed, want) in [
        ("2,500\n".to_owned(), 2500),
        (
            "2,5OO\n\u{ff12}\u{ff0c}\u{ff15}\u{ff10}\u{ff10}\n".to_owned(),
            2500,
        ),
    ] {
        // A node each: the card's offline limit (3000 pt) takes one 2500.
        let (dir, shop) = node(SHOP, Known::Registered);
        drop(shop);
        let _card = counter.insert(&[]);
        let out = scripted_watch(
            dir.path(),
            &counter.reader,
            &format!("{typed}{PIN}\n"),
            "warn",
        );
        let stdout = String::from_utf8_lossy(&out.stdout);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{stdout}\n{stderr}");
        assert!(
            stdout.contains(&format!("redeemed {want} pt with PIN")),
            "{typed:?}: {stdout}\n{stderr}"
        );
        let asked = stderr.matches("amount in points").count();
        let mistyped = typed.lines().count() - 1;
        assert_eq!(asked, 1 + mistyped, "{stderr}");
        if mistyped > 0 {
            assert!(stderr.contains("that is not an amount"), "{stderr}");
            assert!(!stderr.contains("2,5OO"), "what was typed is not repeated");
        }
        assert!(
            !net_common::shows_secret(&stderr, PIN) && !net_common::shows_secret(&stdout, PIN),
            "the PIN shows"
        );
        let shop = DataDir::new(dir.path()).open().expect("open node");
        assert_eq!(redeems(&shop), [(want, true)]);
    }
}

// ---- watch and run on one data directory ---------------------------------------

/// Issue 12 item 6: `mykey-node watch` serves the counter while `mykey-node
/// run` (another process, on the same data directory) commits the hub's
/// fact batches between taps: receipts and new balances after each redeem,
/// and a grant made at the hub in the middle of the day. The counter loop
/// never stops, and every redeem is decided on the balance the node held at
/// that moment (its basis), never a stale one.
#[test]
fn watch_and_run_share_a_data_directory_and_every_redeem_sees_the_latest_facts() {
    use net_common::{Proc, World, hub_cli, start_hub, start_node, wait_until};
    const TAPS: u64 = 6;
    const SPEND: u64 = 300;
    let counter = Counter::take();
    let w = World::create(1, 0);
    let m = net_common::bunkyo();
    let key = certs().card_key();
    let account = {
        let mut hub = w.open_hub();
        let t = net_common::now();
        let a = hub
            .register_account(&MyKeyId::parse("Hanako").expect("alias"), m, &key, t)
            .expect("register");
        let health = mykey_sync_proto::ProgramId::parse("health").expect("program");
        hub.admin_grant(a, &health, pts(1000), t).expect("grant");
        a
    };
    let node_dir = &w.nodes[0];
    let (_hub, addr) = start_hub(&w.hub_dir, 0);
    let _run = start_node("run", node_dir, Some(&addr), &[]);
    let balance = || {
        let node = DataDir::new(node_dir).open().expect("open node");
        node.balance(account, m).expect("balance").0.get()
    };
    wait_until(
        "the node to learn the holder",
        Duration::from_secs(30),
        || balance() == 1000,
    );
    let watch = Proc::spawn(
        "watch",
        Command::new(bin("mykey-node"))
            .arg("--data")
            .arg(node_dir)
            .args([
                "watch",
                "--action",
                "redeem",
                "--amount",
                &SPEND.to_string(),
            ])
            .args(["--max-taps", &TAPS.to_string(), "--reader", &counter.reader]),
    );
    let mut expected = 1000;
    for tap in 1..=TAPS {
        let card = counter.insert(&[]);
        let line = watch.line_containing("redeemed", Duration::from_secs(30));
        assert!(line.contains(&format!("redeemed {SPEND} pt")), "{line}");
        card.remove();
        counter.wait(false);
        expected -= SPEND;
        if tap == 3 {
            // A fact batch the counter did not cause: the hub grants more.
            hub_cli(
                &w.hub_dir,
                &["grant", "--account", &account.to_string()]
                    .into_iter()
                    .chain(["--program", "health", "--points", "1000"])
                    .collect::<Vec<_>>(),
            );
            expected += 1000;
        }
        // `run` commits the hub's answer (receipt, new balance) before the
        // next card comes.
        wait_until(
            "the hub's new balance at the node",
            Duration::from_secs(30),
            || balance() == expected,
        );
    }
    let mut watch = watch;
    let status = watch.wait_exit(Duration::from_secs(15));
    assert!(status.success(), "watch: {status}\n{}", watch.stderr());
    let node = DataDir::new(node_dir).open().expect("open node");
    let bases: Vec<u64> = node
        .outbox_from(1, 100)
        .expect("outbox")
        .iter()
        .filter_map(|tx| match &tx.verify().expect("own tx").payload().body {
            TxBody::Redeem(r) => Some(r.basis.as_ref().map_or(0, |b| b.balance.get())),
            _ => None,
        })
        .collect();
    assert_eq!(bases, [1000, 700, 400, 1100, 800, 500]);
}

/// `mykey-node card read --cert-out FILE` writes the certificate the hub
/// registers a holder with (`account register --cert`), and never
/// overwrites a file.
#[test]
fn card_read_writes_the_certificate_the_hub_registers() {
    let counter = Counter::take();
    let _card = counter.insert(&[]);
    let dir = tempfile::tempdir().expect("tempdir");
    let out = dir.path().join("hanako.der");
    let read = |file: &Path| {
        Command::new(bin("mykey-node"))
            .args(["card", "read", "--reader", &counter.reader, "--cert-out"])
            .arg(file)
            .output()
            .expect("run mykey-node card read")
    };
    let first = read(&out);
    assert!(
        first.status.success(),
        "{}",
        String::from_utf8_lossy(&first.stderr)
    );
    let written = std::fs::read(&out).expect("certificate written");
    assert_eq!(
        written,
        std::fs::read(certs().card.join("auth.der")).unwrap()
    );

    std::fs::write(&out, b"kept").unwrap();
    let again = read(&out);
    assert!(!again.status.success(), "an existing file was overwritten");
    let err = String::from_utf8_lossy(&again.stderr);
    assert!(err.contains("give a new file name"), "{err}");
    assert_eq!(std::fs::read(&out).unwrap(), b"kept");
    std::fs::write(&out, &written).unwrap();

    let hub = dir.path().join("hub");
    net_common::hub_cli(&hub, &["init"]);
    net_common::hub_cli(
        &hub,
        &[
            "municipality",
            "add",
            "--code",
            "131059",
            "--name",
            "Bunkyo-ku",
        ],
    );
    let ca = certs().card.join("ca.der");
    let registered = net_common::hub_cli(
        &hub,
        &[
            "account",
            "register",
            "--my-key-id",
            "Hanako",
            "--municipality",
            "131059",
            "--cert",
            out.to_str().unwrap(),
            "--trusted-ca",
            ca.to_str().unwrap(),
        ],
    );
    assert!(
        registered.contains(&format!(
            "with My Key ID Hanako and card {}",
            certs().card_key().short()
        )),
        "{registered}"
    );
}
