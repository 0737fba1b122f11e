//! The card reader end to end: real pcscd, the vpcd virtual reader, and the
//! vjpki virtual card (tests/src/bin/vjpki.rs).
//!
//! Needs pcscd running with vpcd: `scripts/pcsc-up.sh` before `cargo test`,
//! `scripts/pcsc-down.sh` after. Without it these tests fail and say so.
//! There is one virtual reader slot, so the tests take turns on a mutex.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Mutex, MutexGuard, OnceLock};
use std::time::{Duration, Instant};

use mykey_node::card::{
    CardCert, ChainError, Challenge, Pin, PinStatus, ProveError, ReadError, Reader, ReaderError,
    Session, TransmitError, cert::CertHeaderError, cert::CertParseError, pin_status, prove,
    read_auth_cert, verify_chain,
};

const VJPKI: &str = env!("CARGO_BIN_EXE_vjpki");
const SERIAL_HEX: &str = "00C0FFEE0001";
const PIN: &str = "4321";
const VPCD_PORT: u16 = 35963;

static READER_SLOT: Mutex<()> = Mutex::new(());

/// Test certificates, made once per test run.
struct Certs {
    _dir: tempfile::TempDir,
    card: PathBuf,
    other_ca: PathBuf,
}

fn certs() -> &'static Certs {
    static CERTS: OnceLock<Certs> = OnceLock::new();
    CERTS.get_or_init(|| {
        let dir = tempfile::tempdir().expect("tempdir");
        let card = dir.path().join("card");
        let other_ca = dir.path().join("other-ca");
        gen_certs(&card, SERIAL_HEX, "MyKey Test JPKI Auth CA Gen 2");
        gen_certs(&other_ca, "01", "MyKey Test JPKI Auth CA Gen 1");
        Certs {
            _dir: dir,
            card,
            other_ca,
        }
    })
}

fn gen_certs(dir: &Path, serial: &str, ca_name: &str) {
    let status = Command::new(VJPKI)
        .args([
            "gen-certs",
            "--serial",
            serial,
            "--ca-name",
            ca_name,
            "--out",
        ])
        .arg(dir)
        .status()
        .expect("run vjpki gen-certs");
    assert!(
        status.success(),
        "vjpki gen-certs failed (is openssl installed?)"
    );
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

/// The vpcd reader that listens on 35963 (vpcd's first slot).
fn vpcd_reader(pcsc: &Reader) -> String {
    let readers = pcsc.list().expect("list readers");
    readers
        .iter()
        .find(|r| r.starts_with("Virtual PCD") && r.ends_with("00 00"))
        .or_else(|| readers.iter().find(|r| r.starts_with("Virtual PCD")))
        .cloned()
        .unwrap_or_else(|| {
            panic!("no vpcd reader in {readers:?}: install vsmartcard-vpcd and restart pcscd (scripts/pcsc-up.sh)")
        })
}

/// A running virtual card; removed (process killed) on drop.
struct VCard {
    child: Child,
    log: PathBuf,
    _dir: tempfile::TempDir,
}

impl VCard {
    fn start_with(cert: &Path, extra: &[&str]) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let log = dir.path().join("apdu.log");
        let card = &certs().card;
        let child = Command::new(VJPKI)
            .arg("serve")
            .arg("--cert")
            .arg(cert)
            .arg("--ca-cert")
            .arg(card.join("ca.der"))
            .arg("--key")
            .arg(card.join("auth.key.pem"))
            .args(["--pin", PIN, "--vpcd", &format!("127.0.0.1:{VPCD_PORT}")])
            .arg("--log")
            .arg(&log)
            .args(extra)
            .stdout(Stdio::null())
            .spawn()
            .expect("spawn vjpki");
        VCard {
            child,
            log,
            _dir: dir,
        }
    }

    fn apdus(&self) -> Vec<String> {
        std::fs::read_to_string(&self.log)
            .unwrap_or_default()
            .lines()
            .filter_map(|l| l.strip_prefix("> ").map(str::to_owned))
            .collect()
    }
}

impl Drop for VCard {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Takes the reader slot, inserts a card, waits for pcscd to see it, connects.
/// Fields drop in order: the session disconnects before the card goes away.
struct Tap {
    session: Session,
    card: VCard,
    _slot: MutexGuard<'static, ()>,
}

fn tap(extra: &[&str]) -> Tap {
    tap_with(
        &certs().card.join("auth.der"),
        extra,
        Duration::from_secs(5),
    )
}

fn tap_with(cert: &Path, extra: &[&str], apdu_timeout: Duration) -> Tap {
    let slot = READER_SLOT.lock().unwrap_or_else(|e| e.into_inner());
    let pcsc = pcsc_ready();
    let reader = vpcd_reader(&pcsc);
    // The previous test's card must be gone before this one goes in.
    assert!(
        pcsc.wait_for_card(&reader, false, Duration::from_secs(15))
            .expect("wait empty"),
        "the reader did not become empty"
    );
    let card = VCard::start_with(cert, extra);
    assert!(
        pcsc.wait_for_card(&reader, true, Duration::from_secs(20))
            .expect("wait present"),
        "vjpki did not show up in {reader}"
    );
    let session = pcsc.connect(&reader, apdu_timeout).expect("connect");
    Tap {
        card,
        session,
        _slot: slot,
    }
}

fn pin(text: &str) -> Pin {
    Pin::parse(text).expect("pin")
}

#[test]
fn tap_reads_the_card_key() {
    let mut t = tap(&[]);
    let cert = read_auth_cert(&mut t.session).expect("read certificate");
    let key = cert.card_key();
    assert_eq!(hex::encode_upper(key.serial()), SERIAL_HEX);
    // Issuer: the raw DER subject of the test CA, taken from the CA file.
    let ca_der = std::fs::read(certs().card.join("ca.der")).expect("ca.der");
    let (_, ca) = x509_parser::parse_x509_certificate(&ca_der).expect("ca parses");
    assert_eq!(key.issuer_der(), ca.subject().as_raw());
    assert_eq!(
        key.to_string(),
        format!(
            "{}:{}",
            hex::encode(ca.subject().as_raw()),
            SERIAL_HEX.to_lowercase()
        )
    );
    assert_eq!(
        cert.der(),
        &std::fs::read(certs().card.join("auth.der")).expect("auth.der")[..]
    );
    assert!(cert.is_valid_at(mykey_net::unix_now_secs()));
}

#[test]
fn chain_check_accepts_either_configured_ca_generation_and_rejects_others() {
    let der = std::fs::read(certs().card.join("auth.der")).expect("auth.der");
    let cert = CardCert::from_der(der).expect("parse");
    let ca = std::fs::read(certs().card.join("ca.der")).expect("ca");
    let other = std::fs::read(certs().other_ca.join("ca.der")).expect("other ca");
    let now = mykey_net::unix_now_secs();
    assert_eq!(
        verify_chain(&cert, &[other.clone(), ca.clone()], now)
            .expect("chain")
            .ca_index,
        1
    );
    assert!(matches!(
        verify_chain(&cert, std::slice::from_ref(&other), now),
        Err(ChainError::UnknownIssuer)
    ));
    assert!(matches!(
        verify_chain(&cert, &[], now),
        Err(ChainError::NoTrustedCa)
    ));
    assert!(matches!(
        verify_chain(&cert, std::slice::from_ref(&ca), now + 20 * 365 * 86_400),
        Err(ChainError::Expired)
    ));
    assert!(matches!(
        verify_chain(&cert, &[vec![1, 2, 3]], now),
        Err(ChainError::BadTrustedCa { index: 0, .. })
    ));
}

#[test]
fn pin_proof_succeeds_with_the_right_pin() {
    let mut t = tap(&[]);
    let cert = read_auth_cert(&mut t.session).expect("read");
    assert_eq!(
        pin_status(&mut t.session).expect("status"),
        PinStatus::TriesLeft(3)
    );
    let challenge = Challenge::random().expect("random");
    let proof = prove(&mut t.session, &cert, pin(PIN), challenge).expect("proof");
    assert_eq!(proof.card_key(), cert.card_key());
    assert_eq!(proof.signature().len(), 256);
    cert.verify_sha256(&challenge.signed_message(), proof.signature())
        .expect("signature verifies");
}

#[test]
fn wrong_pins_show_tries_left_then_lock_the_card() {
    let mut t = tap(&[]);
    let cert = read_auth_cert(&mut t.session).expect("read");
    let c = Challenge::from_bytes([1; 32]);
    for left in [2u8, 1] {
        let err = prove(&mut t.session, &cert, pin("0000"), c).expect_err("wrong pin");
        assert!(
            matches!(err, ProveError::WrongPin { tries_left } if tries_left == left),
            "{err}"
        );
        assert!(err.to_string().contains(&format!("{left} tr")), "{err}");
        assert_eq!(
            pin_status(&mut t.session).expect("status"),
            PinStatus::TriesLeft(left)
        );
    }
    let err = prove(&mut t.session, &cert, pin("0000"), c).expect_err("third wrong pin");
    assert!(matches!(err, ProveError::Locked), "{err}");
    assert!(
        err.to_string().contains("municipal office counter"),
        "{err}"
    );
    assert_eq!(
        pin_status(&mut t.session).expect("status"),
        PinStatus::Locked
    );
    // Locked means locked: the right PIN does not help any more.
    let err = prove(&mut t.session, &cert, pin(PIN), c).expect_err("locked");
    assert!(matches!(err, ProveError::Locked), "{err}");
}

#[test]
fn a_right_pin_after_a_wrong_one_restores_the_tries() {
    let mut t = tap(&["--tries", "2"]);
    let cert = read_auth_cert(&mut t.session).expect("read");
    assert_eq!(
        pin_status(&mut t.session).expect("status"),
        PinStatus::TriesLeft(2)
    );
    let c = Challenge::from_bytes([2; 32]);
    prove(&mut t.session, &cert, pin(PIN), c).expect("proof");
    drop(t);
    let mut t = tap(&["--tries", "0"]);
    read_auth_cert(&mut t.session).expect("read");
    assert_eq!(
        pin_status(&mut t.session).expect("status"),
        PinStatus::Locked
    );
}

#[test]
fn card_removed_mid_read_is_a_typed_error() {
    // SELECT AP, SELECT EF, header, first chunk; the card leaves on the 5th.
    let mut t = tap(&["--drop-after", "4"]);
    let err = read_auth_cert(&mut t.session).expect_err("card removed");
    assert!(
        matches!(err, ReadError::Transmit(TransmitError::CardRemoved(_))),
        "wanted CardRemoved, got {err:?}"
    );
    assert!(err.to_string().contains("removed"), "{err}");
    // The node carries on: the next tap reads fine.
    drop(t);
    let mut t = tap(&[]);
    read_auth_cert(&mut t.session).expect("read after removal");
}

#[test]
fn a_card_that_stops_answering_times_out_and_the_node_carries_on() {
    let timeout = Duration::from_millis(1500);
    let mut t = tap_with(
        &certs().card.join("auth.der"),
        &["--hang-after", "3"],
        timeout,
    );
    let started = Instant::now();
    let err = read_auth_cert(&mut t.session).expect_err("hung card");
    let waited = started.elapsed();
    assert!(
        matches!(err, ReadError::Transmit(TransmitError::Timeout { .. })),
        "wanted Timeout, got {err:?}"
    );
    assert!(waited < timeout + Duration::from_secs(2), "took {waited:?}");
    assert!(matches!(
        read_auth_cert(&mut t.session),
        Err(ReadError::Transmit(TransmitError::SessionDead))
    ));
    drop(t);
    let mut t = tap(&[]);
    read_auth_cert(&mut t.session).expect("read after a hung card");
}

#[test]
fn a_card_without_jpki_is_not_a_my_number_card() {
    let mut t = tap(&["--not-jpki"]);
    let err = read_auth_cert(&mut t.session).expect_err("not jpki");
    assert!(matches!(err, ReadError::NotJpki(_)), "{err:?}");
    assert!(err.to_string().contains("not a My Number card"), "{err}");
}

#[test]
fn oversized_and_malformed_certificates_are_typed_errors() {
    let dir = tempfile::tempdir().expect("tempdir");
    let huge = dir.path().join("huge.der");
    let mut bytes = vec![0x30, 0x82, 0x7F, 0x00];
    bytes.resize(600, 0xAA);
    std::fs::write(&huge, &bytes).expect("write");
    let mut t = tap_with(&huge, &[], Duration::from_secs(5));
    let err = read_auth_cert(&mut t.session).expect_err("too large");
    assert!(
        matches!(
            err,
            ReadError::Header(CertHeaderError::TooLarge { len: 0x7F04, .. })
        ),
        "{err:?}"
    );
    assert_eq!(t.card.apdus().len(), 3, "nothing read past the header");
    drop(t);

    let junk = dir.path().join("junk.der");
    let mut bytes = vec![0x30, 0x82, 0x01, 0x2C];
    bytes.resize(0x12C + 4, 0x55);
    std::fs::write(&junk, &bytes).expect("write");
    let mut t = tap_with(&junk, &[], Duration::from_secs(5));
    let err = read_auth_cert(&mut t.session).expect_err("malformed");
    assert!(
        matches!(err, ReadError::Parse(CertParseError::X509(_))),
        "{err:?}"
    );
}

#[test]
fn unknown_reader_is_a_typed_error() {
    let pcsc = pcsc_ready();
    let err = pcsc
        .pick(Some("No Such Reader 99"))
        .expect_err("unknown reader");
    assert!(matches!(err, ReaderError::ReaderNotFound { .. }), "{err:?}");
    assert!(err.to_string().contains("Virtual PCD"), "{err}");
}

/// The allow-list, as the card saw it: every command of a whole session.
fn allowed(apdu: &str) -> bool {
    const EXACT: [&str; 6] = [
        "00A4040C0AD392F000260100000001",
        "00A4020C02000A",
        "00A4020C02000B",
        "00A4020C020018",
        "00A4020C020017",
        "00200080",
    ];
    let bytes = hex::decode(apdu).expect("log is hex");
    EXACT.contains(&apdu)
        || (bytes.len() == 5 && bytes[..2] == [0x00, 0xB0] && bytes[2] & 0x80 == 0)
        || (bytes.len() == 9 && bytes[..5] == [0x00, 0x20, 0x00, 0x80, 0x04])
        || (bytes.len() == 57 && bytes[..5] == [0x80, 0x2A, 0x00, 0x80, 51] && bytes[56] == 0)
}

/// Collects the node's log lines in memory.
#[derive(Clone, Default)]
struct LogBuf(std::sync::Arc<Mutex<Vec<u8>>>);

impl std::io::Write for LogBuf {
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

#[test]
fn a_whole_session_sends_only_allow_listed_commands_and_logs_no_pin() {
    let mut t = tap(&[]);
    let log = LogBuf::default();
    let writer = log.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::DEBUG)
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .finish();
    tracing::subscriber::with_default(subscriber, || {
        let cert = read_auth_cert(&mut t.session).expect("read");
        mykey_node::card::jpki::read_auth_ca_cert_der(&mut t.session).expect("ca cert");
        pin_status(&mut t.session).expect("status");
        let _ = prove(
            &mut t.session,
            &cert,
            pin("9999"),
            Challenge::from_bytes([3; 32]),
        );
        prove(
            &mut t.session,
            &cert,
            pin(PIN),
            Challenge::from_bytes([4; 32]),
        )
        .expect("proof");
    });
    let card_log = t.card.apdus();
    drop(t);

    assert!(card_log.len() >= 15, "session too short: {card_log:?}");
    for apdu in &card_log {
        assert!(allowed(apdu), "not allow-listed: {apdu}");
        for forbidden in ["D39210003100010104", "00A4020C020001", "00A4020C020002"] {
            assert!(!apdu.contains(forbidden), "forbidden command {apdu}");
        }
    }
    // The node logged every command it sent, with the PIN redacted.
    let node_log = String::from_utf8(log.0.lock().expect("log").clone()).expect("utf-8");
    let sent: Vec<&str> = node_log.lines().filter(|l| l.contains("card <-")).collect();
    assert_eq!(sent.len(), card_log.len(), "{node_log}");
    let verifies: Vec<&&str> = sent
        .iter()
        .filter(|l| l.contains("00 20 00 80 04"))
        .collect();
    assert_eq!(verifies.len(), 2, "{node_log}");
    for line in verifies {
        assert!(line.contains("00 20 00 80 04 ** ** ** **"), "{line}");
    }
    assert!(
        !node_log.contains("00 20 00 80 04 3"),
        "a PIN digit reached the log"
    );
}

/// pcscd not running: a typed `NoService` error, and the process goes on.
/// pcsc-lite reads its socket path once per process, so this runs itself
/// again as a child pointed at a socket that does not exist.
#[test]
fn pcscd_not_running_is_no_service_and_the_process_keeps_running() {
    const CHILD: &str = "MYKEY_CARD_TEST_NO_SERVICE_CHILD";
    if std::env::var_os(CHILD).is_some() {
        for _ in 0..3 {
            let err = Reader::establish().err().expect("no pcscd at that socket");
            assert!(matches!(err, ReaderError::NoService(_)), "{err:?}");
            assert!(err.to_string().contains("pcscd"), "{err}");
            println!("still running after: {err}");
        }
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let out = Command::new(std::env::current_exe().expect("test exe"))
        .args([
            "--exact",
            "pcscd_not_running_is_no_service_and_the_process_keeps_running",
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
    assert_eq!(stdout.matches("still running after").count(), 3, "{stdout}");
    assert!(stdout.contains("not running"), "{stdout}");
}
