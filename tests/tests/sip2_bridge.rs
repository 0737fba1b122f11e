//! The SIP2 bridge in process over real TCP: a library node's real store, the
//! bridge's real driver, a scripted library system (software we cannot run
//! here; see sip2_common) and self-check machines on 127.0.0.2 and 127.0.0.3.
//! Taps are handed to the bridge as a reader loop would (card key in, the
//! store resolves it); sip2_card.rs taps a virtual card on pcscd.

mod sip2_common;

use mykey_node::sip2::config::Sip2Section;
use mykey_node::sip2::core::{MachineId, TapShown};
use mykey_node::sip2::server::{self, Running};
use mykey_node::sip2::taps::TapTarget;
use mykey_sip2::{Command, FieldId};
use sip2_common::{Ils, IlsScript, Known, Machine, card, field, library_node, req};
use std::io::Write;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

const SC1: &str = "127.0.0.2";
const SC2: &str = "127.0.0.3";

/// Output shared with the bridge (its tap lines) or the log subscriber.
#[derive(Clone, Default)]
struct Shared(Arc<Mutex<Vec<u8>>>);

impl Shared {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }
}

impl Write for Shared {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Every log line of this test binary, at the most verbose level.
fn logs() -> &'static Shared {
    static LOGS: OnceLock<Shared> = OnceLock::new();
    LOGS.get_or_init(|| {
        let logs = Shared::default();
        let w = logs.clone();
        // SIP2_TEST_LOGS=1 shows them on stderr as well (to debug a failure).
        let echo = std::env::var_os("SIP2_TEST_LOGS").is_some();
        let w = move || Tee(w.clone(), echo);
        tracing_subscriber::fmt()
            .with_max_level(tracing::Level::TRACE)
            .with_ansi(false)
            .with_writer(w)
            .init();
        logs
    })
}

struct Tee(Shared, bool);

impl Write for Tee {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if self.1 {
            let _ = std::io::stderr().write_all(buf);
        }
        self.0.write(buf)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

struct Bridge {
    running: Option<Running>,
    out: Shared,
    _dir: tempfile::TempDir,
    data: std::path::PathBuf,
}

impl Bridge {
    /// A bridge in front of `ils`, with `extra` lines of `[sip2]` and two
    /// machines: sc-1 (127.0.0.2, placeholder MYKEY, IBM850) and sc-2
    /// (127.0.0.3, empty AA, UTF-8).
    fn start(ils: &Ils, cards: &[(mykey_sync_proto::CardKey, Known)], extra: &str) -> Bridge {
        Self::start_at(ils.addr, cards, extra)
    }

    fn start_at(
        upstream: std::net::SocketAddr,
        cards: &[(mykey_sync_proto::CardKey, Known)],
        extra: &str,
    ) -> Bridge {
        logs();
        let (dir, node) = library_node(cards);
        let text = format!(
            "listen = \"127.0.0.1:0\"\nupstream = \"{upstream}\"\nmessage_timeout_secs = 1\nupstream_timeout_secs = 2\n{extra}\n\
             [[machine]]\nname = \"sc-1\"\naddr = \"{SC1}\"\nplaceholder = \"MYKEY\"\n\
             [[machine]]\nname = \"sc-2\"\naddr = \"{SC2}\"\ncharset = \"utf-8\"\n"
        );
        let config = Sip2Section::from_table(text.parse().unwrap())
            .unwrap()
            .check()
            .unwrap();
        let out = Shared::default();
        let running = server::start(config, node, Box::new(out.clone()), false).unwrap();
        Bridge {
            running: Some(running),
            out,
            data: dir.path().to_owned(),
            _dir: dir,
        }
    }
    fn addr(&self) -> std::net::SocketAddr {
        self.running.as_ref().unwrap().local_addr()
    }
    fn tap(&self, machine: usize, card: &mykey_sync_proto::CardKey) -> TapShown {
        self.running
            .as_ref()
            .unwrap()
            .handle()
            .tap_card(TapTarget::Machine(MachineId(machine)), card, true)
            .unwrap()
    }
}

impl Drop for Bridge {
    fn drop(&mut self) {
        if let Some(r) = self.running.take() {
            r.stop();
        }
    }
}

#[test]
fn a_tapped_card_borrows_renews_and_returns_as_its_library_card_number() {
    let ils = Ils::start(IlsScript::default());
    let hanako = card(1);
    let b = Bridge::start(&ils, &[(hanako.clone(), Known::Linked("LIB-0042"))], "");
    let mut sc = Machine::connect(SC1, b.addr());
    assert_eq!(
        sc.ask(&req::login("sc1", "pw")).fixed(),
        b"1",
        "login passed through"
    );
    assert_eq!(sc.ask(&req::status()).command(), Command::AcsStatus);
    assert_eq!(
        b.tap(0, &hanako),
        TapShown::Armed {
            machine: "sc-1".into()
        }
    );
    assert!(b.out.text().contains("sc-1: card"), "{}", b.out.text());

    let info = sc.ask(&req::patron_info("MYKEY"));
    assert_eq!(field(&info, b"AE"), "Hanako Yamada");
    assert_eq!(field(&info, b"BL"), "Y");
    let out = sc.ask(&req::checkout("MYKEY", "ITEM-0001"));
    assert_eq!(out.fixed()[0], b'1', "checked out");
    assert_eq!(field(&out, b"AB"), "ITEM-0001");
    assert_eq!(
        sc.ask(&req::item_info("ITEM-0001")).command(),
        Command::ItemInformationResponse
    );
    assert_eq!(
        sc.ask(&req::renew("MYKEY", "ITEM-0001")).fixed()[0],
        b'1',
        "renewed"
    );
    assert_eq!(
        sc.ask(&req::checkin("ITEM-0001")).fixed()[0],
        b'1',
        "checked in"
    );
    assert_eq!(sc.ask(&req::end_session("MYKEY")).fixed()[0], b'Y');

    // The library system saw the library card number, never the placeholder.
    let ids = ils.patron_ids();
    assert_eq!(ids, vec!["LIB-0042"; 4], "{ids:?}");
    assert_eq!(
        ils.commands(),
        ["93", "99", "63", "11", "17", "29", "09", "35"]
    );
    // After the end of the session the placeholder is nobody again.
    let refused = sc.ask(&req::checkout("MYKEY", "ITEM-0002"));
    assert_eq!(refused.fixed()[0], b'0');
    assert_eq!(
        ils.received().len(),
        8,
        "the refused checkout never reached the library system"
    );
}

#[test]
fn suspended_unknown_and_unlinked_cards_are_answered_by_the_bridge() {
    let ils = Ils::start(IlsScript::default());
    let cards = [
        (card(1), Known::Suspended),
        (card(2), Known::Unknown),
        (card(3), Known::Unlinked),
    ];
    let b = Bridge::start(&ils, &cards, "");
    let mut sc = Machine::connect(SC2, b.addr());
    for (c, why) in [
        (card(1), "suspended"),
        (card(2), "not registered"),
        (card(3), "No library card is linked"),
    ] {
        for request in [req::patron_status(""), req::patron_info("")] {
            // Each placeholder after a tap is told why (and the next one: tap first).
            assert!(matches!(b.tap(1, &c), TapShown::Refused(_)));
            let a = sc.ask(&request);
            assert_eq!(field(&a, b"BL"), "N", "{why}");
            assert!(
                field(&a, b"AF").contains(why),
                "{why}: {}",
                field(&a, b"AF")
            );
        }
    }
    // No tap at all: tap first.
    let a = sc.ask(&req::checkout("", "ITEM-0003"));
    assert!(
        field(&a, b"AF").contains("Tap your My Number card"),
        "{}",
        field(&a, b"AF")
    );
    assert!(
        ils.received().is_empty(),
        "the library system heard of none of these"
    );
}

#[test]
fn patron_names_reach_each_machine_in_its_character_set() {
    // The library system speaks UTF-8 here; sc-1 is IBM850, sc-2 UTF-8.
    let name = "Müller, Jürgen 山田";
    let mut script = IlsScript::default();
    script
        .patrons
        .insert("LIB-0042".into(), name.as_bytes().to_vec());
    let ils = Ils::start(script);
    let hanako = card(1);
    let b = Bridge::start(
        &ils,
        &[(hanako.clone(), Known::Linked("LIB-0042"))],
        "upstream_charset = \"utf-8\"",
    );
    let mut utf8 = Machine::connect(SC2, b.addr());
    b.tap(1, &hanako);
    let a = utf8.ask(&req::patron_info(""));
    assert_eq!(a.field(FieldId::PERSONAL_NAME), Some(name.as_bytes()));
    let mut cp850 = Machine::connect(SC1, b.addr());
    b.tap(0, &hanako);
    let a = cp850.ask(&req::patron_info("MYKEY"));
    assert_eq!(
        a.field(FieldId::PERSONAL_NAME),
        Some(&b"M\x81ller, J\x81rgen ??"[..])
    );
    // A screen message typed in IBM850 reaches the UTF-8 library system as UTF-8.
    cp850.ask_bytes(b"23000201612031    120000AOlib|AAMYKEY|AFGr\x81\xE1e|");
    let last = ils.received().pop().unwrap();
    let m = mykey_sip2::Message::decode(&last).unwrap().message;
    assert_eq!(m.field(FieldId::SCREEN_MESSAGE), Some("Grüße".as_bytes()));
}

#[test]
fn garbage_a_huge_line_and_half_a_message_never_take_the_bridge_down() {
    let ils = Ils::start(IlsScript::default());
    let b = Bridge::start(&ils, &[], "max_message_bytes = 4096");
    let mut good = Machine::connect(SC1, b.addr());
    assert_eq!(good.ask(&req::status()).command(), Command::AcsStatus);

    // Garbage: a resend request each time, then the door.
    let mut bad = Machine::connect(SC2, b.addr());
    bad.send_raw(b"\x00\x01garbage|||\r");
    assert_eq!(bad.read_frame().unwrap(), b"96");
    for _ in 0..9 {
        bad.send_raw(b"X\r");
    }
    assert!(
        bad.closed_within(Duration::from_secs(5)),
        "ten bad frames close it"
    );
    assert_eq!(good.ask(&req::status()).command(), Command::AcsStatus);

    // A 1 MiB line.
    let mut huge = Machine::connect(SC2, b.addr());
    let _ = huge.try_send(&vec![b'A'; 1 << 20]);
    assert!(
        huge.closed_within(Duration::from_secs(5)),
        "an over-long line closes it"
    );
    assert_eq!(good.ask(&req::status()).command(), Command::AcsStatus);

    // Half a message, then silence.
    let mut half = Machine::connect(SC2, b.addr());
    half.send_raw(b"9900802.");
    assert!(
        half.closed_within(Duration::from_secs(5)),
        "a half message times out"
    );
    assert_eq!(good.ask(&req::status()).command(), Command::AcsStatus);
    // A new machine connection is served as ever.
    let mut again = Machine::connect(SC2, b.addr());
    assert_eq!(again.ask(&req::status()).command(), Command::AcsStatus);
}

#[test]
fn checksum_errors_are_answered_with_a_resend_request_and_lenient_forms_accepted() {
    let ils = Ils::start(IlsScript::default());
    let b = Bridge::start(&ils, &[], "");
    let mut sc = Machine::connect(SC1, b.addr());
    sc.send_raw(b"9900802.00AY1AZ0000\r");
    // 96 with its own checksum: 0x10000 - ('9' + '6' + 'A' + 'Z') = FEF6.
    assert_eq!(sc.read_frame().unwrap(), b"96AZFEF6");
    assert!(ils.received().is_empty());
    // Lower case, no zero padding, CRLF: accepted; answered in the spec's form.
    let body = b"9900802.00AY2AZ";
    let sum = mykey_sip2::message::checksum_of(body);
    let mut frame = body.to_vec();
    frame.extend_from_slice(format!("{sum:x}\r\n").as_bytes());
    sc.send_raw(&frame);
    let answer = sc.read_frame().unwrap();
    let d = mykey_sip2::Message::decode(&answer).unwrap();
    assert_eq!(d.message.command(), Command::AcsStatus);
    assert_eq!(d.checksum, mykey_sip2::Checksum::Valid);
    assert!(
        answer[answer.len() - 4..]
            .iter()
            .all(|b| b.is_ascii_digit() || b.is_ascii_uppercase())
    );
}

#[test]
fn a_lost_library_system_link_is_reopened_with_the_login_replayed() {
    let script = IlsScript {
        close_after: Some(2),
        login: Some(("sc1".into(), "pw".into())),
        garble_first: true,
        ..IlsScript::default()
    };
    let ils = Ils::start(script);
    let b = Bridge::start(&ils, &[], "");
    let mut sc = Machine::connect(SC1, b.addr());
    assert_eq!(sc.ask(&req::login("sc1", "pw")).fixed(), b"1");
    for _ in 0..4 {
        assert_eq!(sc.ask(&req::status()).command(), Command::AcsStatus);
    }
    assert!(ils.connections() >= 2, "reconnected");
    let commands = ils.commands();
    assert!(
        commands.contains(&"97".to_owned()),
        "a garbled answer was asked again: {commands:?}"
    );
    assert!(
        commands.iter().filter(|c| *c == "93").count() >= 2,
        "login replayed: {commands:?}"
    );
}

#[test]
fn with_the_library_system_down_status_says_off_line() {
    // A port nobody listens on.
    let down = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap()
    };
    let b = Bridge::start_at(down, &[], "");
    let mut sc = Machine::connect(SC1, b.addr());
    let status = sc.ask(&req::status());
    assert_eq!(status.command(), Command::AcsStatus);
    assert_eq!(status.fixed()[0], b'N', "off line");
    // A checkout cannot be answered: the machine is told by a closed connection.
    sc.send_raw(
        &mykey_sip2::Message::decode(req::checkout("LIB-1", "ITEM-1").as_bytes())
            .unwrap()
            .message
            .encode(false),
    );
    assert!(sc.closed_within(Duration::from_secs(10)));
}

#[test]
fn a_library_system_that_does_not_answer_times_out() {
    let ils = Ils::start(IlsScript {
        silent: true,
        ..IlsScript::default()
    });
    let hanako = card(1);
    let b = Bridge::start(&ils, &[(hanako.clone(), Known::Linked("LIB-0042"))], "");
    let mut sc = Machine::connect(SC1, b.addr());
    // upstream_timeout_secs = 2: status is answered off line after it...
    let started = std::time::Instant::now();
    assert_eq!(sc.ask(&req::status()).fixed()[0], b'N');
    assert!(started.elapsed() >= Duration::from_secs(2));
    // ...a checkout is not answered at all: the machine sees the connection close.
    b.tap(0, &hanako);
    let m = mykey_sip2::Message::decode(req::patron_info("MYKEY").as_bytes()).unwrap();
    sc.send_raw(&m.message.encode(false));
    assert!(sc.closed_within(Duration::from_secs(10)));
    assert_eq!(ils.patron_ids(), ["LIB-0042"], "it did arrive");
}

#[test]
fn the_bridge_can_log_in_with_its_own_credentials() {
    let script = IlsScript {
        login: Some(("mykey".into(), "secret".into())),
        ..IlsScript::default()
    };
    let ils = Ils::start(script);
    let b = Bridge::start(
        &ils,
        &[],
        "login_user = \"mykey\"\nlogin_password = \"secret\"",
    );
    let mut sc = Machine::connect(SC1, b.addr());
    assert_eq!(
        sc.ask(&req::login("whatever", "x")).fixed(),
        b"1",
        "answered by the bridge"
    );
    assert_eq!(sc.ask(&req::status()).command(), Command::AcsStatus);
    let first = mykey_sip2::Message::decode(&ils.received()[0])
        .unwrap()
        .message;
    assert_eq!(first.field(FieldId::LOGIN_USER), Some(&b"mykey"[..]));
    assert_eq!(ils.commands(), ["93", "99"]);
}

#[test]
fn a_token_typed_at_the_machine_stands_for_the_card() {
    let ils = Ils::start(IlsScript::default());
    let hanako = card(1);
    let b = Bridge::start(
        &ils,
        &[(hanako.clone(), Known::Linked("LIB-0042"))],
        "token_readers = [\"desk reader\"]\ntoken_digits = 6",
    );
    let shown = b
        .running
        .as_ref()
        .unwrap()
        .handle()
        .tap_card(TapTarget::Token, &hanako, true)
        .unwrap();
    let TapShown::Token { digits, .. } = shown else {
        panic!("{shown:?}")
    };
    assert_eq!(digits.len(), 6);
    assert!(
        b.out.text().contains(&format!("token {digits}")),
        "{}",
        b.out.text()
    );
    let mut sc = Machine::connect(SC2, b.addr());
    assert_eq!(field(&sc.ask(&req::patron_info(&digits)), b"BL"), "Y");
    sc.ask(&req::checkout("", "ITEM-0009"));
    assert_eq!(ils.patron_ids(), ["LIB-0042", "LIB-0042"]);
    // Used once: typed again it is just a number the library system does not know.
    let mut other = Machine::connect(SC1, b.addr());
    assert_eq!(field(&other.ask(&req::patron_info(&digits)), b"BL"), "N");
}

#[test]
fn the_bridge_keeps_no_trace_of_what_was_borrowed() {
    let ils = Ils::start(IlsScript::default());
    let hanako = card(1);
    let b = Bridge::start(&ils, &[(hanako.clone(), Known::Linked("LIB-0042"))], "");
    let mut sc = Machine::connect(SC1, b.addr());
    let items = ["ITEM-SECRET-7731", "ITEM-SECRET-7732"];
    b.tap(0, &hanako);
    sc.ask(&req::patron_info("MYKEY"));
    for item in items {
        sc.ask(&req::checkout("MYKEY", item));
        sc.ask(&req::renew("MYKEY", item));
        sc.ask(&req::item_info(item));
        sc.ask(&req::checkin(item));
    }
    sc.ask(&req::end_session("MYKEY"));
    let title = "A Title";
    // The library system got them...
    assert!(
        ils.received()
            .iter()
            .any(|f| String::from_utf8_lossy(f).contains(items[0]))
    );
    // ...the node kept none of them: not in its store, not in its logs, not on its output.
    let mut haystacks = vec![
        ("logs".to_owned(), logs().text().into_bytes()),
        ("output".to_owned(), b.out.text().into_bytes()),
    ];
    for entry in std::fs::read_dir(&b.data).unwrap() {
        let p = entry.unwrap().path();
        haystacks.push((p.display().to_string(), std::fs::read(&p).unwrap()));
    }
    assert!(
        haystacks
            .iter()
            .any(|(n, h)| n == "logs" && String::from_utf8_lossy(h).contains("msg=11")),
        "the logs did record the checkouts"
    );
    for (name, hay) in &haystacks {
        let text = String::from_utf8_lossy(hay);
        for needle in items.iter().chain([&title, &"20261224"]) {
            assert!(!text.contains(needle), "{needle} found in {name}");
        }
    }
}

/// A CA and a certificate for `ils.test` it signed (openssl, as vjpki uses
/// it): (CA certificate, server certificate, server key), PEM files.
fn tls_cert(dir: &std::path::Path) -> (std::path::PathBuf, std::path::PathBuf, std::path::PathBuf) {
    let p = |name: &str| dir.join(name);
    let ext = p("ext.cnf");
    std::fs::write(
        &ext,
        "subjectAltName=DNS:ils.test\nbasicConstraints=CA:FALSE\n",
    )
    .unwrap();
    let ec = [
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
    ];
    let steps: Vec<Vec<std::ffi::OsString>> = vec![
        ["req", "-x509"]
            .iter()
            .chain(&ec)
            .map(Into::into)
            .chain(["-days", "2", "-subj", "/CN=Test ILS CA", "-keyout"].map(Into::into))
            .chain([p("ca.key").into(), "-out".into(), p("ca.pem").into()])
            .collect(),
        ["req"]
            .iter()
            .chain(&ec)
            .map(Into::into)
            .chain(["-subj", "/CN=ils.test", "-keyout"].map(Into::into))
            .chain([p("key.pem").into(), "-out".into(), p("leaf.csr").into()])
            .collect(),
        ["x509", "-req", "-days", "2", "-CAcreateserial", "-in"]
            .map(Into::into)
            .into_iter()
            .chain([
                p("leaf.csr").into(),
                "-CA".into(),
                p("ca.pem").into(),
                "-CAkey".into(),
                p("ca.key").into(),
            ])
            .chain([
                "-extfile".into(),
                ext.clone().into(),
                "-out".into(),
                p("cert.pem").into(),
            ])
            .collect(),
    ];
    for args in steps {
        let status = std::process::Command::new("openssl")
            .args(&args)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .status()
            .expect("openssl runs (apt-get install openssl)");
        assert!(status.success(), "openssl {args:?} failed");
    }
    (p("ca.pem"), p("cert.pem"), p("key.pem"))
}

#[test]
fn the_library_system_can_be_reached_over_tls() {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let dir = tempfile::tempdir().unwrap();
    let (ca, cert, key) = tls_cert(dir.path());
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(&cert)
        .unwrap()
        .map(|c| c.unwrap())
        .collect();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let server = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(chain, PrivateKeyDer::from_pem_file(&key).unwrap())
        .unwrap();
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let ils = Ils::serve(listener, IlsScript::default(), Some(Arc::new(server)));
    let hanako = card(1);
    let tls = format!(
        "upstream_tls = true\nupstream_ca = \"{}\"\nupstream_server_name = \"ils.test\"",
        ca.display()
    );
    let b = Bridge::start(&ils, &[(hanako.clone(), Known::Linked("LIB-0042"))], &tls);
    let mut sc = Machine::connect(SC1, b.addr());
    b.tap(0, &hanako);
    assert_eq!(
        field(&sc.ask(&req::patron_info("MYKEY")), b"AE"),
        "Hanako Yamada"
    );
    assert_eq!(ils.patron_ids(), ["LIB-0042"]);

    // A certificate that does not chain to the configured CA: no link, status off line.
    let other = tempfile::tempdir().unwrap();
    let (wrong_ca, _, _) = tls_cert(other.path());
    let tls = format!(
        "upstream_tls = true\nupstream_ca = \"{}\"\nupstream_server_name = \"ils.test\"",
        wrong_ca.display()
    );
    let b = Bridge::start(&ils, &[], &tls);
    let mut sc = Machine::connect(SC2, b.addr());
    assert_eq!(sc.ask(&req::status()).fixed()[0], b'N');
    assert_eq!(ils.patron_ids(), ["LIB-0042"]);
}
