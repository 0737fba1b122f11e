//! `mykey-node kiosk` end to end (issue 19): the real `mykey-hub serve`,
//! `mykey-node run` and `mykey-node kiosk` as processes on 127.0.0.1, the
//! vjpki virtual card on a real pcscd + vpcd (vpcd's second slot, TCP 35964,
//! as card_watch.rs: test binaries run one after another), and the kiosk
//! page in a real headless Chromium (tests/dashboard/kiosk.mjs) that types
//! the PIN by clicking the on-screen keypad. A wrong PIN says the tries
//! left; the right one shows the history from the hub; the card's leaving
//! clears the screen; with the hub stopped the node's own figures show,
//! marked offline; the history's exchange operator is in none of the
//! node's files or logs.
//!
//! A new holder's own orders (tests/dashboard/kiosk_orders.mjs): the My Key
//! ID typed on the on-screen keyboard (the rules said at once), registered
//! with the card's PIN, changed (a taken ID refused, the old one still the
//! holder's at the hub), a card pulled mid-action leaving nothing, an order
//! signed with the hub away shown pending and carried out when it returns,
//! the offline figures, and a card locked by three wrong PINs.
//!
//! Needs pcscd with vpcd (`scripts/pcsc-up.sh`), Chromium and
//! `npm ci --prefix tests/dashboard`; build the binaries first
//! (`cargo build -p mykey-node -p mykey-hub --bins`).

mod net_common;

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::Mutex;
use std::sync::mpsc::{Receiver, channel};
use std::time::Duration;

use mykey_hub::economy::exchange::{
    ExchangeOperator, ExchangeRequest, OperatorId, Rate, SignedExchange,
};
use mykey_hub::economy::lots::ExpiryPolicy;
use mykey_node::card::{CardCert, Reader, trust};
use mykey_node::config::DataDir;
use mykey_node::http::client::{HolderCallError, holder};
use mykey_node::kiosk::orders::OrderQueue;
use mykey_node::node::Lookup;
use mykey_sync_proto::holder::HolderRequest;
use mykey_sync_proto::{MyKeyId, ProgramId};
use net_common::*;
use serde_json::Value;

const VJPKI: &str = env!("CARGO_BIN_EXE_vjpki");
const CHROMIUM: &str = "/usr/bin/chromium";
const PIN: &str = "4321";
const VPCD_PORT: u16 = 35964;
/// The exchange operator of the holder's history: only the hub knows it.
const OPERATOR: &str = "far-away-air";

/// vpcd's second slot holds one card at a time: the tests take turns.
static SLOT: Mutex<()> = Mutex::new(());

fn slot() -> std::sync::MutexGuard<'static, ()> {
    SLOT.lock().unwrap_or_else(|e| e.into_inner())
}

fn repo_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_owned()
}

/// The vjpki card on vpcd's second slot; removed (process killed) on drop.
struct VCard(Child);

impl VCard {
    fn insert(certs: &Path) -> VCard {
        VCard(
            Command::new(VJPKI)
                .arg("serve")
                .arg("--cert")
                .arg(certs.join("auth.der"))
                .arg("--ca-cert")
                .arg(certs.join("ca.der"))
                .arg("--key")
                .arg(certs.join("auth.key.pem"))
                .args(["--pin", PIN, "--vpcd", &format!("127.0.0.1:{VPCD_PORT}")])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("spawn vjpki"),
        )
    }
}

impl Drop for VCard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The browser script, one step at a time.
struct Browser {
    child: Child,
    stdin: ChildStdin,
    lines: Receiver<String>,
}

impl Browser {
    fn start(script: &str, url: &str) -> Browser {
        let js = repo_dir().join("tests/dashboard");
        assert!(
            Path::new(CHROMIUM).is_file(),
            "{CHROMIUM} is missing: apt-get install -y chromium fonts-noto-cjk"
        );
        assert!(
            js.join("node_modules/playwright-core/package.json")
                .is_file(),
            "playwright-core is missing: run `npm ci --prefix tests/dashboard`"
        );
        let mut child = Command::new("node")
            .current_dir(&js)
            .arg(script)
            .arg(url)
            .env("CHROMIUM", CHROMIUM)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("Node.js runs the browser script");
        let stdin = child.stdin.take().unwrap();
        let out = child.stdout.take().unwrap();
        let (tx, lines) = channel();
        std::thread::spawn(move || {
            for l in BufReader::new(out).lines().map_while(Result::ok) {
                let _ = tx.send(l);
            }
        });
        Browser {
            child,
            stdin,
            lines,
        }
    }

    /// Waits for step `name` and returns what the script saw.
    fn at(&mut self, name: &str) -> Value {
        loop {
            let line = self
                .lines
                .recv_timeout(Duration::from_secs(90))
                .unwrap_or_else(|_| panic!("the browser did not reach step {name}"));
            if let Ok(v) = serde_json::from_str::<Value>(&line)
                && v["step"] == name
            {
                return v;
            }
            eprintln!("[browser] {line}");
        }
    }

    /// Lets the script go on to its next step.
    fn go(&mut self) {
        writeln!(self.stdin, "go").unwrap();
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The vpcd reader of the second slot.
fn vpcd_reader() -> (Reader, String) {
    let pcsc = Reader::establish()
        .unwrap_or_else(|e| panic!("pcscd is not usable ({e}): run scripts/pcsc-up.sh"));
    let readers = pcsc.list().expect("list readers");
    let name = readers
        .iter()
        .find(|r| r.starts_with("Virtual PCD") && r.ends_with("00 01"))
        .cloned()
        .unwrap_or_else(|| panic!("no second vpcd reader in {readers:?}: run scripts/pcsc-up.sh"));
    (pcsc, name)
}

fn files_holding(dir: &Path, needle: &str) -> Vec<PathBuf> {
    let mut found = vec![];
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            found.extend(files_holding(&path, needle));
        } else if let Ok(bytes) = std::fs::read(&path)
            && bytes.windows(needle.len()).any(|w| w == needle.as_bytes())
        {
            found.push(path);
        }
    }
    found
}

#[test]
fn a_holder_reads_their_history_at_the_kiosk_online_and_offline() {
    let _slot = slot();
    let (pcsc, reader) = vpcd_reader();
    let present = |want: bool| {
        assert!(
            pcsc.wait_for_card(&reader, want, Duration::from_secs(20))
                .unwrap(),
            "the reader did not become {}",
            if want { "busy" } else { "empty" }
        )
    };
    present(false);

    let w = World::create(1, 0);
    let certs = w.root.path().join("card");
    let ok = Command::new(VJPKI)
        .args(["gen-certs", "--serial", "00C0FFEE0019", "--out"])
        .arg(&certs)
        .status()
        .expect("run vjpki gen-certs");
    assert!(
        ok.success(),
        "vjpki gen-certs failed (is openssl installed?)"
    );
    let t = now();
    let now_s = (t.0 / 1000) as i64;
    let ca_der = std::fs::read(certs.join("ca.der")).unwrap();
    let cert = CardCert::from_der(std::fs::read(certs.join("auth.der")).unwrap()).unwrap();
    let trusted = trust(cert, &[ca_der], now_s).unwrap();
    {
        let mut hub = w.open_hub();
        let akiko = hub
            .register_account_with_certificate(
                &MyKeyId::parse("Akiko").unwrap(),
                bunkyo(),
                &trusted,
                t,
            )
            .unwrap();
        hub.admin_grant(akiko, &ProgramId::parse("health").unwrap(), pts(1234), t)
            .unwrap();
        let operator = OperatorId::parse(OPERATOR).unwrap();
        let operator_key = ed25519_dalek::SigningKey::from_bytes(&[42; 32]);
        hub.upsert_exchange_operator(
            &ExchangeOperator {
                id: operator.clone(),
                name: "Far Away Air".into(),
                public_key: operator_key.verifying_key().to_bytes(),
                rate: Rate::new(1, 1).unwrap(),
                holding_days: 0,
                expiry: ExpiryPolicy::Never,
            },
            t,
        )
        .unwrap();
        hub.allow_exchange(&operator, bunkyo(), pts(1_000_000), t)
            .unwrap();
        let signed = SignedExchange::sign(
            &operator,
            &ExchangeRequest {
                request_id: "mile-1".into(),
                my_key_id: "Akiko".into(),
                operator_points: 8642,
                municipality: None,
                requested_at: t.0,
                donate_to: None,
            },
            &operator_key,
        );
        hub.exchange(&signed, t).unwrap();
    }
    let node_dir = &w.nodes[0];
    let (mut hub, addr) = start_hub(&w.hub_dir, 0);
    let node = start_node("node", node_dir, Some(&addr), &[]);
    wait_until("the node is caught up", Duration::from_secs(30), || {
        caught_up(node_dir)
    });

    let kiosk = Proc::spawn(
        "kiosk",
        Command::new(bin("mykey-node"))
            .arg("--data")
            .arg(node_dir)
            .args(["kiosk", "--listen", "127.0.0.1:0", "--reader", &reader])
            .arg("--trusted-ca")
            .arg(certs.join("ca.der")),
    );
    let line = kiosk.line_starting("kiosk page on ", Duration::from_secs(30));
    let url = line.trim_start_matches("kiosk page on ").to_owned();

    let mut b = Browser::start("kiosk.mjs", &url);
    let idle = b.at("idle");
    assert_eq!(idle["lang"], "ja");
    assert!(idle["text"].as_str().unwrap().contains("カード"), "{idle}");

    let card = VCard::insert(&certs);
    present(true);
    b.go();
    let wrong = b.at("wrong_pin");
    assert!(
        wrong["notice"].as_str().unwrap().contains("あと2回"),
        "{wrong}"
    );
    // Large enough to touch and read at arm's length.
    assert!(wrong["key"]["font_px"].as_f64().unwrap() >= 40.0, "{wrong}");
    assert!(wrong["key"]["height"].as_f64().unwrap() >= 80.0, "{wrong}");
    assert!(wrong["body_px"].as_f64().unwrap() >= 28.0, "{wrong}");

    b.go();
    let online = b.at("online");
    let text = online["text"].as_str().unwrap();
    assert!(text.contains("Akiko"), "{text}");
    assert!(text.contains(OPERATOR), "{text}");
    // 1234 granted + 8642 exchanged, in Bunkyo.
    assert!(text.contains("9,876") && text.contains("131059"), "{text}");
    assert!(text.contains("付与（health）"), "{text}");
    assert_eq!(online["balance_rows"], 2, "{online}");
    assert_eq!(online["history_rows"], 3, "{online}");
    let english = online["english"].as_str().unwrap();
    assert!(english.contains("Granted (health)"), "{english}");

    drop(card);
    present(false);
    b.go();
    let cleared = b.at("cleared");
    let text = cleared["text"].as_str().unwrap();
    assert!(
        !text.contains("Akiko") && !text.contains(OPERATOR) && !text.contains("9,876"),
        "{text}"
    );

    // The hub stops: once the node says offline, the kiosk shows the
    // node's own figures, marked offline.
    hub.terminate();
    let dir = DataDir::new(node_dir);
    let ask = HolderRequest::Challenge {
        card: trusted.cert().card_key().clone(),
    };
    wait_until("the node says offline", Duration::from_secs(30), || {
        matches!(holder(&dir, &ask), Err(HolderCallError::Offline))
    });
    let card = VCard::insert(&certs);
    present(true);
    b.go();
    let offline = b.at("offline");
    assert_eq!(offline["mark"], "オフライン", "{offline}");
    let text = offline["text"].as_str().unwrap();
    assert!(text.contains("9,876") && text.contains("Akiko"), "{text}");
    assert!(!text.contains(OPERATOR), "{text}");

    drop(card);
    present(false);
    b.go();
    let cleared = b.at("cleared_offline");
    assert!(
        !cleared["text"].as_str().unwrap().contains("9,876"),
        "{cleared}"
    );
    b.go();

    // Nothing of the history stays on the node: not in its files, not in
    // the logs of run or the kiosk.
    assert_eq!(files_holding(node_dir, OPERATOR), Vec::<PathBuf>::new());
    for p in [&node, &kiosk] {
        assert!(!p.stderr().contains(OPERATOR), "{}", p.stderr());
        assert!(!p.stderr().contains("8642"), "{}", p.stderr());
    }
}

/// Makes a vjpki card's certificates (and its own CA) in `dir`.
fn gen_certs(dir: &Path, serial: &str) -> PathBuf {
    let ok = Command::new(VJPKI)
        .args(["gen-certs", "--serial", serial, "--out"])
        .arg(dir)
        .status()
        .expect("run vjpki gen-certs");
    assert!(
        ok.success(),
        "vjpki gen-certs failed (is openssl installed?)"
    );
    dir.to_owned()
}

/// The My Key ID `node` knows for `card`.
fn known_id(node: &Path, card: &mykey_sync_proto::CardKey) -> Option<String> {
    match DataDir::new(node).open().ok()?.lookup(card).ok()? {
        Lookup::Found { my_key_id, .. } => Some(my_key_id.to_string()),
        _ => None,
    }
}

fn text_of(v: &Value, field: &str) -> String {
    v[field]
        .as_str()
        .unwrap_or_else(|| panic!("no {field} in {v}"))
        .to_owned()
}

#[test]
fn a_new_holder_registers_and_changes_their_my_key_id_at_the_kiosk() {
    let _slot = slot();
    let (pcsc, reader) = vpcd_reader();
    let present = |want: bool| {
        assert!(
            pcsc.wait_for_card(&reader, want, Duration::from_secs(20))
                .unwrap(),
            "the reader did not become {}",
            if want { "busy" } else { "empty" }
        )
    };
    present(false);

    let w = World::create(1, 0);
    let certs = gen_certs(&w.root.path().join("card"), "00C0FFEE0020");
    let other = gen_certs(&w.root.path().join("other"), "00C0FFEE0021");
    let hana_card = CardCert::from_der(std::fs::read(certs.join("auth.der")).unwrap())
        .unwrap()
        .card_key()
        .clone();
    let (taken_by, lib_dir) = {
        let mut hub = w.open_hub();
        let (lib_dir, _) = w.add_library(&mut hub, bunkyo(), "lib-1");
        let taken = hub
            .register_account(
                &MyKeyId::parse("Taken1").unwrap(),
                bunkyo(),
                &card(0x77),
                now(),
            )
            .unwrap();
        (taken, lib_dir)
    };
    let ca = certs.join("ca.der");
    let ca_arg = ca.to_str().unwrap();
    let serve_args = ["--trusted-ca", ca_arg, "--kiosk-link", "lib-1"];
    let (mut hub, addr) = start_hub_with(&w.hub_dir, 0, &serve_args);
    let node_dir = &w.nodes[0];
    let mut node = start_node("node", node_dir, Some(&addr), &[]);
    let library = start_node("library", &lib_dir, Some(&addr), &[]);
    wait_until("the nodes are caught up", Duration::from_secs(30), || {
        caught_up(node_dir) && caught_up(&lib_dir)
    });
    let kiosk = Proc::spawn(
        "kiosk",
        Command::new(bin("mykey-node"))
            .arg("--data")
            .arg(node_dir)
            .args(["kiosk", "--listen", "127.0.0.1:0", "--reader", &reader])
            .arg("--trusted-ca")
            .arg(&ca)
            .arg("--trusted-ca")
            .arg(other.join("ca.der"))
            .args(["--link-facility", "lib-1"]),
    );
    let line = kiosk.line_starting("kiosk page on ", Duration::from_secs(30));
    let url = line.trim_start_matches("kiosk page on ").to_owned();
    let mut b = Browser::start("kiosk_orders.mjs", &url);
    b.at("idle");

    // A new card: the rules are said before any PIN.
    let card = VCard::insert(&certs);
    present(true);
    b.go();
    let bad = b.at("bad_id");
    assert!(
        text_of(&bad, "menu").contains("登録されていません"),
        "{bad}"
    );
    assert!(text_of(&bad, "notice").contains("英数字3〜32文字"), "{bad}");
    b.go();
    let reg = b.at("registered");
    assert!(text_of(&reg, "task").contains("Hana7"), "{reg}");
    assert!(text_of(&reg, "wrong").contains("あと2回"), "{reg}");
    assert_eq!(reg["status"], "status-done", "{reg}");
    assert!(text_of(&reg, "text").contains("Hana7"), "{reg}");
    // A receipt, printable: printed, the buttons are hidden.
    assert_eq!(reg["printed"]["receipt"], true, "{reg}");
    assert_eq!(reg["printed"]["buttons"], false, "{reg}");
    // The node learns it from the hub's facts.
    wait_until("the node knows Hana7", Duration::from_secs(30), || {
        known_id(node_dir, &hana_card).as_deref() == Some("Hana7")
    });

    // A change: a taken ID is refused and kept for correcting; a free one is done.
    b.go();
    let taken = b.at("taken");
    assert!(text_of(&taken, "menu").contains("Hana7"), "{taken}");
    assert!(
        text_of(&taken, "notice").contains("使われています"),
        "{taken}"
    );
    assert_eq!(taken["text"], "Taken1", "{taken}");
    b.go();
    let changed = b.at("changed");
    let task = text_of(&changed, "task");
    assert!(
        task.contains("Hana7") && task.contains("Hana8"),
        "{changed}"
    );
    assert_eq!(changed["status"], "status-done", "{changed}");
    wait_until("the node knows Hana8", Duration::from_secs(30), || {
        known_id(node_dir, &hana_card).as_deref() == Some("Hana8")
    });

    // A library card linked at the kiosk: the library's node finds it.
    b.go();
    let linked = b.at("linked");
    assert!(text_of(&linked, "menu").contains("lib-1"), "{linked}");
    assert!(text_of(&linked, "task").contains("L-042"), "{linked}");
    assert_eq!(linked["status"], "status-done", "{linked}");
    let lib_number = || match DataDir::new(&lib_dir)
        .open()
        .unwrap()
        .lookup(&hana_card)
        .unwrap()
    {
        Lookup::Found { numbers, .. } => numbers
            .iter()
            .filter(|n| n.confirmed)
            .map(|n| n.number.to_string())
            .collect::<Vec<_>>(),
        other => panic!("the library does not know Hana: {other:?}"),
    };
    wait_until(
        "the library's node finds L-042",
        Duration::from_secs(30),
        || lib_number() == ["L-042"],
    );
    let out = Command::new(bin("mykey-node"))
        .arg("--data")
        .arg(&lib_dir)
        .args(["lookup", "--card", &hana_card.to_string()])
        .output()
        .unwrap();
    let out = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.contains("My Key ID Hana8") && out.contains("facility card number L-042"),
        "{out}"
    );
    b.go();
    let unlinked = b.at("unlinked");
    assert_eq!(unlinked["status"], "status-done", "{unlinked}");
    wait_until(
        "the library's node forgets L-042",
        Duration::from_secs(30),
        || lib_number().is_empty(),
    );

    // The card pulled with an ID typed and the PIN half typed.
    b.go();
    b.at("half_typed");
    drop(card);
    present(false);
    b.go();
    let pulled = b.at("pulled");
    assert!(!text_of(&pulled, "text").contains("Hana"), "{pulled}");

    // The hub away: the order is signed and pending; the figures are the node's.
    hub.terminate();
    let dir = DataDir::new(node_dir);
    let ask = HolderRequest::Challenge {
        card: hana_card.clone(),
    };
    wait_until("the node says offline", Duration::from_secs(30), || {
        matches!(holder(&dir, &ask), Err(HolderCallError::Offline))
    });
    let card = VCard::insert(&certs);
    present(true);
    b.go();
    let pending = b.at("pending");
    assert!(text_of(&pending, "menu").contains("Hana8"), "{pending}");
    assert_eq!(pending["status"], "status-pending", "{pending}");
    assert!(text_of(&pending, "text").contains("Hana10"), "{pending}");
    assert!(
        text_of(&pending, "english").contains("Pending"),
        "{pending}"
    );
    assert_eq!(pending["mark"], "オフライン", "{pending}");
    assert!(text_of(&pending, "offline").contains("Hana8"), "{pending}");
    let queue = OrderQueue::of(&dir);
    assert_eq!(queue.len(), 1);
    drop(card);
    present(false);
    b.go();
    let cleared = b.at("cleared");
    assert!(!text_of(&cleared, "text").contains("Hana"), "{cleared}");

    // Another card, PIN unknown to the person holding it: locked on the third try.
    let locked = VCard::insert(&other);
    present(true);
    b.go();
    let l = b.at("locked");
    assert!(l["tries"][0].as_str().unwrap().contains("あと2回"), "{l}");
    assert!(l["tries"][1].as_str().unwrap().contains("あと1回"), "{l}");
    assert!(text_of(&l, "text").contains("ロックされています"), "{l}");
    drop(locked);
    present(false);
    b.go();
    b.at("end");
    b.go();

    // The link returns: the pending order is carried out, and the queue empties.
    let (mut hub, _) = start_hub_with(&w.hub_dir, port_of(&addr), &serve_args);
    wait_until(
        "the queued order is carried out",
        Duration::from_secs(60),
        || queue.is_empty() && known_id(node_dir, &hana_card).as_deref() == Some("Hana10"),
    );
    hub.terminate();
    node.terminate();

    // At the hub: every ID Hana had is still hers; the pulled one is nobody's.
    let mut h = w.open_hub();
    let hana = h
        .resolve_my_key_id(&MyKeyId::parse("Hana10").unwrap())
        .unwrap();
    for old in ["Hana7", "Hana8"] {
        assert_eq!(
            h.resolve_my_key_id(&MyKeyId::parse(old).unwrap()).unwrap(),
            hana
        );
    }
    assert!(
        h.resolve_my_key_id(&MyKeyId::parse("Hana9").unwrap())
            .is_err()
    );
    assert_eq!(
        h.resolve_my_key_id(&MyKeyId::parse("Taken1").unwrap())
            .unwrap(),
        taken_by
    );
    // Nothing of the pulled action, and no PIN, on the node or in the logs.
    assert_eq!(files_holding(node_dir, "Hana9"), Vec::<PathBuf>::new());
    for p in [&node, &kiosk, &library] {
        for secret in ["4321", "9999", "Hana9"] {
            assert!(
                !net_common::shows_secret(&p.stderr(), secret),
                "{secret}: {}",
                p.stderr()
            );
        }
    }
}

/// Declares donation programme `id` of Bunkyo paying account `number`.
fn declare(hub_dir: &Path, id: &str, recipient: &str, number: &str) {
    let out = hub_cli(
        hub_dir,
        &[
            "donation",
            "declare",
            "--programme",
            id,
            "--municipality",
            "131059",
            "--recipient",
            recipient,
            "--bank",
            "0001",
            "--branch",
            "004",
            "--number",
            number,
            "--holder",
            "ｷﾞｴﾝｷﾝ",
        ],
    );
    assert!(out.contains(&format!("{id} declared")), "{out}");
}

#[test]
fn a_holder_donates_at_the_kiosk_and_the_recipient_is_paid_in_settlement() {
    let _slot = slot();
    let (pcsc, reader) = vpcd_reader();
    let present = |want: bool| {
        assert!(
            pcsc.wait_for_card(&reader, want, Duration::from_secs(20))
                .unwrap(),
            "the reader did not become {}",
            if want { "busy" } else { "empty" }
        )
    };
    present(false);

    let w = World::create(1, 0);
    let certs = gen_certs(&w.root.path().join("card"), "00C0FFEE0022");
    let visitor = gen_certs(&w.root.path().join("visitor"), "00C0FFEE0023");
    let t = now();
    let now_s = (t.0 / 1000) as i64;
    let trusted_of = |dir: &Path| {
        let ca = std::fs::read(dir.join("ca.der")).unwrap();
        let cert = CardCert::from_der(std::fs::read(dir.join("auth.der")).unwrap()).unwrap();
        trust(cert, &[ca], now_s).unwrap()
    };
    let sapporo = mykey_sync_proto::MunicipalityCode::parse("011002").unwrap();
    {
        let mut hub = w.open_hub();
        let akiko = hub
            .register_account_with_certificate(
                &MyKeyId::parse("Akiko").unwrap(),
                bunkyo(),
                &trusted_of(&certs),
                t,
            )
            .unwrap();
        hub.admin_grant(akiko, &ProgramId::parse("health").unwrap(), pts(5000), t)
            .unwrap();
        hub.add_municipality(sapporo, "Sapporo", t).unwrap();
        hub.register_account_with_certificate(
            &MyKeyId::parse("Visit1").unwrap(),
            sapporo,
            &trusted_of(&visitor),
            t,
        )
        .unwrap();
    }
    let hub_dir = &w.hub_dir;
    declare(hub_dir, "noto-relief", "能登町 災害義援金", "2468024");
    declare(hub_dir, "flood-aid", "球磨村 豪雨災害義援金", "1357913");
    hub_cli(
        hub_dir,
        &[
            "payee",
            "set",
            "--agent",
            "--bank",
            "0009",
            "--branch",
            "001",
            "--number",
            "1234567",
            "--holder",
            "ｾｲｻﾝﾀﾞｲｺｳ",
            "--code",
            "1234567890",
        ],
    );
    let (mut hub, addr) = start_hub(hub_dir, 0);
    let node_dir = &w.nodes[0];
    let mut node = start_node("node", node_dir, Some(&addr), &[]);
    wait_until("the node is caught up", Duration::from_secs(30), || {
        caught_up(node_dir)
    });
    let kiosk = Proc::spawn(
        "kiosk",
        Command::new(bin("mykey-node"))
            .arg("--data")
            .arg(node_dir)
            .args(["kiosk", "--listen", "127.0.0.1:0", "--reader", &reader])
            .arg("--trusted-ca")
            .arg(certs.join("ca.der"))
            .arg("--trusted-ca")
            .arg(visitor.join("ca.der")),
    );
    let line = kiosk.line_starting("kiosk page on ", Duration::from_secs(30));
    let url = line.trim_start_matches("kiosk page on ").to_owned();
    let mut b = Browser::start("kiosk_donate.mjs", &url);
    b.at("idle");

    let card = VCard::insert(&certs);
    present(true);
    b.go();
    let d = b.at("donated");
    assert!(text_of(&d, "menu").contains("寄付"), "{d}");
    // Both programmes the hub declared, by their recipients.
    let list = text_of(&d, "list");
    assert!(
        list.contains("能登町 災害義援金") && list.contains("球磨村 豪雨災害義援金"),
        "{d}"
    );
    assert!(text_of(&d, "prompt").contains("球磨村"), "{d}");
    assert!(text_of(&d, "bad").contains("1〜100,000"), "{d}");
    assert!(text_of(&d, "beyond").contains("5,000ポイントまで"), "{d}");
    assert_eq!(d["kept"], "6,000", "{d}");
    assert!(text_of(&d, "task").contains("1,500ポイント"), "{d}");
    assert!(text_of(&d, "wrong").contains("あと2回"), "{d}");
    let receipt = text_of(&d, "receipt");
    assert!(
        receipt.contains("ポイント寄付")
            && receipt.contains("flood-aid")
            && receipt.contains("球磨村"),
        "{receipt}"
    );
    assert_eq!(d["points"], "1,500", "{d}");
    assert_eq!(d["place"], "shop-0", "{d}");
    assert_eq!(d["status"], "status-signed", "{d}");
    assert!(text_of(&d, "english").contains("Points donation"), "{d}");
    assert_eq!(d["printed"]["receipt"], true, "{d}");
    assert_eq!(d["printed"]["buttons"], false, "{d}");

    // Pulled with the PIN half typed: nothing is signed.
    b.go();
    b.at("half_typed");
    drop(card);
    present(false);
    b.go();
    let pulled = b.at("pulled");
    assert!(!text_of(&pulled, "text").contains("寄付"), "{pulled}");

    // A visitor: shown as registered elsewhere; no registration, no donation.
    let guest = VCard::insert(&visitor);
    present(true);
    b.go();
    let v = b.at("visitor");
    assert!(text_of(&v, "text").contains("011002"), "{v}");
    assert_eq!(
        (&v["set_id"], &v["donate"], &v["history"]),
        (&Value::Bool(false), &Value::Bool(false), &Value::Bool(true)),
        "{v}"
    );
    drop(guest);
    present(false);
    b.go();
    b.at("end");
    b.go();

    // `run` carries the donation; the hub takes it.
    wait_until(
        "the hub receipted the donation",
        Duration::from_secs(30),
        || {
            let s = net_common::status(node_dir);
            s["last_seq"].as_u64() >= Some(1) && s["receipted_seq"] == s["last_seq"]
        },
    );
    hub.terminate();
    node.terminate();
    let status = net_common::status(node_dir);
    assert_eq!(status["last_seq"], 1, "one donation signed: {status}");
    let list = hub_cli(hub_dir, &["donation", "list"]);
    assert!(list.contains("donated 1500 paid 0"), "{list}");
    assert!(list.contains("donated 0 paid 0"), "{list}");

    // Settlement writes the recipient's line in the donations Zengin file.
    let out = w.root.path().join("settlement");
    let printed = hub_cli(
        hub_dir,
        &["settle", "--through-now", "--out", out.to_str().unwrap()],
    );
    let file = std::fs::read_dir(&out)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| {
            p.file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with("donations-131059-")
        })
        .unwrap_or_else(|| panic!("no donations payout file: {printed}"));
    let bytes = std::fs::read(&file).unwrap();
    let records: Vec<String> = bytes
        .chunks(122)
        .filter(|r| r[0] == b'2')
        .map(|r| String::from_utf8_lossy(r).into_owned())
        .collect();
    assert_eq!(records.len(), 1, "{records:?}");
    assert!(
        records[0].contains("1357913") && records[0].contains("0000001500"),
        "{}",
        records[0]
    );
    for p in [&node, &kiosk] {
        assert!(
            !net_common::shows_secret(&p.stderr(), PIN),
            "{}",
            p.stderr()
        );
    }
}

/// Vouchers made of a holder's points at the kiosk (issue 17 part 1(a),
/// tests/dashboard/kiosk_vouchers.mjs): the hub vouches for the kiosk's
/// node, the holder chooses the points and a split on the page and types
/// the PIN, the receipt shows a QR code per voucher and the receipt
/// printer (`--printer`, a file here) gets them as ESC/POS; `run` carries
/// the issue and the hub debits the wallet once.
#[test]
fn a_holder_turns_points_into_vouchers_at_the_kiosk() {
    let _slot = slot();
    let (pcsc, reader) = vpcd_reader();
    let present = |want: bool| {
        assert!(
            pcsc.wait_for_card(&reader, want, Duration::from_secs(20))
                .unwrap(),
            "the reader did not become {}",
            if want { "busy" } else { "empty" }
        )
    };
    present(false);

    let w = World::create(1, 0);
    let certs = gen_certs(&w.root.path().join("card"), "00C0FFEE0031");
    let t = now();
    let now_s = (t.0 / 1000) as i64;
    let akiko = {
        let ca = std::fs::read(certs.join("ca.der")).unwrap();
        let cert = CardCert::from_der(std::fs::read(certs.join("auth.der")).unwrap()).unwrap();
        let mut hub = w.open_hub();
        let a = hub
            .register_account_with_certificate(
                &MyKeyId::parse("Akiko").unwrap(),
                bunkyo(),
                &trust(cert, &[ca], now_s).unwrap(),
                t,
            )
            .unwrap();
        hub.admin_grant(a, &ProgramId::parse("health").unwrap(), pts(5000), t)
            .unwrap();
        a
    };
    let hub_dir = &w.hub_dir;
    let out = hub_cli(
        hub_dir,
        &[
            "voucher",
            "issuer",
            "add",
            "--node",
            &w.node_ids[0].to_string(),
        ],
    );
    assert!(out.contains("is voucher issuer 1"), "{out}");
    let (mut hub, addr) = start_hub(hub_dir, 0);
    let node_dir = &w.nodes[0];
    let mut node = start_node("node", node_dir, Some(&addr), &[]);
    wait_until("the node is caught up", Duration::from_secs(30), || {
        caught_up(node_dir)
    });
    wait_until("the issuer statement", Duration::from_secs(30), || {
        DataDir::new(node_dir)
            .open()
            .unwrap()
            .own_voucher_issuer()
            .unwrap()
            == Some(1)
    });
    let printer = w.root.path().join("printer.escpos");
    let kiosk = Proc::spawn(
        "kiosk",
        Command::new(bin("mykey-node"))
            .arg("--data")
            .arg(node_dir)
            .args(["kiosk", "--listen", "127.0.0.1:0", "--reader", &reader])
            .arg("--trusted-ca")
            .arg(certs.join("ca.der"))
            .arg("--printer")
            .arg(&printer),
    );
    let line = kiosk.line_starting("kiosk page on ", Duration::from_secs(30));
    let url = line.trim_start_matches("kiosk page on ").to_owned();
    let mut b = Browser::start("kiosk_vouchers.mjs", &url);
    b.at("idle");

    let card = VCard::insert(&certs);
    present(true);
    b.go();
    let d = b.at("issued");
    assert!(text_of(&d, "menu").contains("ポイントを券にする"), "{d}");
    assert!(text_of(&d, "bad").contains("1〜100,000"), "{d}");
    assert!(text_of(&d, "splits").contains("500 + 500 + 200"), "{d}");
    assert!(text_of(&d, "task").contains("1,200ポイントを3枚"), "{d}");
    assert!(text_of(&d, "wrong").contains("あと2回"), "{d}");
    assert_eq!(
        d["serials"],
        serde_json::json!(["k1.1-00001", "k1.1-00002", "k1.1-00003"]),
        "{d}"
    );
    assert_eq!(d["qr"], 3, "{d}");
    assert!(text_of(&d, "printed").contains("印刷しました"), "{d}");
    // The issue number staff reprint with (`mykey-node voucher reprint --seq`).
    assert_eq!(text_of(&d, "seq"), "1", "{d}");
    // The printer got the first voucher as a raster that reads back.
    let bytes = std::fs::read(&printer).unwrap();
    let png = mykey_voucher::escpos_raster_png(&bytes).expect("a raster");
    let first = mykey_voucher::decode_png(&png).unwrap();
    assert_eq!(first.len(), 1, "{first:?}");
    assert_eq!(first[0].body.serial.to_string(), "k1.1-00001");
    assert_eq!(first[0].body.points, 500);
    drop(card);
    present(false);
    b.go();
    b.at("end");
    b.go();

    // `run` carries the issue; the hub debits the wallet once.
    wait_until(
        "the hub receipted the issue",
        Duration::from_secs(30),
        || {
            let s = net_common::status(node_dir);
            s["last_seq"].as_u64() >= Some(1) && s["receipted_seq"] == s["last_seq"]
        },
    );
    hub.terminate();
    node.terminate();
    let status = net_common::status(node_dir);
    assert_eq!(status["last_seq"], 1, "one issue signed: {status}");
    let mut hub = w.open_hub();
    assert_eq!(hub.balance(akiko, bunkyo()).unwrap().balance, pts(3800));
    hub.check_conservation().unwrap();
    for p in [&node, &kiosk] {
        assert!(
            !net_common::shows_secret(&p.stderr(), PIN),
            "{}",
            p.stderr()
        );
    }
}
