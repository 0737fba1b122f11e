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
//! Needs pcscd with vpcd (`scripts/pcsc-up.sh`), Chromium and
//! `npm ci --prefix tests/dashboard`; build the binaries first
//! (`cargo build -p mykey-node -p mykey-hub --bins`).

mod net_common;

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc::{Receiver, channel};
use std::time::Duration;

use mykey_hub::economy::exchange::{
    ExchangeOperator, ExchangeRequest, OperatorId, Rate, SignedExchange,
};
use mykey_hub::economy::lots::ExpiryPolicy;
use mykey_node::card::{CardCert, Reader, trust};
use mykey_node::config::DataDir;
use mykey_node::http::client::{HolderCallError, holder};
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
    fn start(url: &str) -> Browser {
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
            .arg("kiosk.mjs")
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

    let mut b = Browser::start(&url);
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
