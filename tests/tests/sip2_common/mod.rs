//! Support for the SIP2 bridge tests: a library node with cards in a real
//! SQLite store, a scripted library system (ILS) and a self-check machine
//! client, both over real TCP on 127.0.0.x.
//!
//! The scripted ILS stands for software we cannot run here (a library
//! system's SIP2 server); it records every frame it receives, so a test can
//! say what the library system saw. `sip2_card.rs` also runs an independent
//! SIP2 server and client from PyPI (pysip2, Sip2) against the real binary.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use mykey_node::config::{DataDir, NodeConfig};
use mykey_node::{Node, NodeKey};
use mykey_sip2::{Checksum, Command, Field, FieldId, Framer, Message, Sequence};
use mykey_sync_proto::wire::Facts;
use mykey_sync_proto::{
    AccountId, CardKey, CardStatus, FacilityCardNumber, FacilityId, FactBody, FactPayload,
    MunicipalityCode, MyKeyId, NodeLimits, OpKind, Points, Scope, SignedFact, UnixMillis,
};
use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub fn now() -> UnixMillis {
    mykey_net::unix_now()
}

/// What the hub has told the library node about a card.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Known {
    /// Registered with this library card number linked.
    Linked(&'static str),
    /// Registered, no library card linked.
    Unlinked,
    Suspended,
    Unknown,
}

/// A card key made up for in-process tests (the card tests read a real one).
pub fn card(serial: u8) -> CardKey {
    CardKey::new(b"test issuer".to_vec(), vec![0x42, serial]).unwrap()
}

/// A library node (facility bunkyo-lib) in a fresh data directory, with
/// `cards` as the hub told it, facts signed by a test hub key.
pub fn library_node(cards: &[(CardKey, Known)]) -> (tempfile::TempDir, Node) {
    let hub = NodeKey::from_secret([42; 32]);
    let dir = tempfile::tempdir().unwrap();
    let mut node = DataDir::new(dir.path())
        .init(&NodeConfig {
            hub_key: hub.id().to_string(),
            hub_addr: None,
        })
        .unwrap();
    let m = MunicipalityCode::parse("131059").unwrap();
    let facility = FacilityId::parse("bunkyo-lib").unwrap();
    let pts = |n| Points::new(n).unwrap();
    let mut bodies = vec![(
        Scope::Node(node.id()),
        FactBody::NodeLimits(NodeLimits {
            node: node.id(),
            facility: facility.clone(),
            municipality: m,
            allowed_ops: vec![OpKind::Link, OpKind::Unlink],
            per_card_offline_limit: pts(3000),
            node_exposure_limit: pts(20_000),
            pin_threshold: pts(2000),
            valid_until: now().plus_ms(365 * 24 * 3600 * 1000),
        }),
    )];
    for (i, (card, known)) in cards.iter().enumerate() {
        let account = AccountId::new(i as u64 + 1).unwrap();
        if *known == Known::Unknown {
            continue;
        }
        bodies.push((
            Scope::Municipality(m),
            FactBody::CardRegistered {
                card: card.clone(),
                account,
                my_key_id: MyKeyId::parse(&format!("Holder{i}")).unwrap(),
                municipality: m,
            },
        ));
        if let Known::Linked(number) = known {
            bodies.push((
                Scope::Facility(facility.clone()),
                FactBody::FacilityCard {
                    account,
                    facility: facility.clone(),
                    number: FacilityCardNumber::parse(number).unwrap(),
                    linked: true,
                },
            ));
        }
        if *known == Known::Suspended {
            bodies.push((
                Scope::Municipality(m),
                FactBody::CardStatusChanged {
                    card: card.clone(),
                    status: CardStatus::Suspended,
                },
            ));
        }
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
    assert_eq!(node.apply_facts(&facts).unwrap(), n);
    (dir, node)
}

// ---- the scripted library system ---------------------------------------------

/// How the scripted ILS behaves.
#[derive(Clone, Debug)]
pub struct IlsScript {
    /// Known patrons: library card number -> personal name (bytes in the ILS charset).
    pub patrons: HashMap<String, Vec<u8>>,
    /// The login it accepts (CN, CO); `None`: any.
    pub login: Option<(String, String)>,
    /// Close each connection after this many messages.
    pub close_after: Option<usize>,
    /// Answer the first message of each connection with a broken checksum.
    pub garble_first: bool,
    /// Read and record, never answer.
    pub silent: bool,
}

impl Default for IlsScript {
    fn default() -> Self {
        IlsScript {
            patrons: HashMap::from([("LIB-0042".to_owned(), b"Hanako Yamada".to_vec())]),
            login: None,
            close_after: None,
            garble_first: false,
            silent: false,
        }
    }
}

/// A scripted library system on 127.0.0.1: answers the SIP2 2.00 requests
/// a self-check machine sends, and records every frame it received.
pub struct Ils {
    pub addr: SocketAddr,
    received: Arc<Mutex<Vec<Vec<u8>>>>,
    connections: Arc<AtomicUsize>,
    stop: Arc<AtomicBool>,
}

impl Drop for Ils {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
    }
}

impl Ils {
    pub fn start(script: IlsScript) -> Ils {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        Self::serve(listener, script, None)
    }

    /// Serves on `listener`; with `tls`, every connection is TLS.
    pub fn serve(
        listener: TcpListener,
        script: IlsScript,
        tls: Option<Arc<rustls::ServerConfig>>,
    ) -> Ils {
        let addr = listener.local_addr().unwrap();
        listener.set_nonblocking(true).unwrap();
        let received = Arc::new(Mutex::new(Vec::new()));
        let connections = Arc::new(AtomicUsize::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let (r, c, s) = (received.clone(), connections.clone(), stop.clone());
        std::thread::spawn(move || {
            while !s.load(Ordering::SeqCst) {
                let stream = match listener.accept() {
                    Ok((stream, _)) => stream,
                    Err(_) => {
                        std::thread::sleep(Duration::from_millis(20));
                        continue;
                    }
                };
                stream.set_nonblocking(false).unwrap();
                c.fetch_add(1, Ordering::SeqCst);
                let (r, script, tls) = (r.clone(), script.clone(), tls.clone());
                std::thread::spawn(move || match tls {
                    None => ils_connection(stream, &script, &r),
                    Some(cfg) => {
                        let conn = rustls::ServerConnection::new(cfg).unwrap();
                        ils_connection(rustls::StreamOwned::new(conn, stream), &script, &r)
                    }
                });
            }
        });
        Ils {
            addr,
            received,
            connections,
            stop,
        }
    }

    /// Every frame received so far.
    pub fn received(&self) -> Vec<Vec<u8>> {
        self.received.lock().unwrap().clone()
    }

    /// The patron ids (AA) of every frame received.
    pub fn patron_ids(&self) -> Vec<String> {
        self.received()
            .iter()
            .filter_map(|f| {
                let m = Message::decode(f).ok()?.message;
                Some(String::from_utf8_lossy(m.field(FieldId::PATRON_ID)?).into_owned())
            })
            .collect()
    }

    /// Commands received, in order.
    pub fn commands(&self) -> Vec<String> {
        self.received()
            .iter()
            .map(|f| String::from_utf8_lossy(&f[..2.min(f.len())]).into_owned())
            .collect()
    }

    pub fn connections(&self) -> usize {
        self.connections.load(Ordering::SeqCst)
    }
}

fn ils_connection<S: Read + Write>(mut s: S, script: &IlsScript, log: &Mutex<Vec<Vec<u8>>>) {
    let mut framer = Framer::new(64 * 1024);
    let mut buf = [0u8; 4096];
    let mut served = 0usize;
    let mut last = Vec::new();
    loop {
        let frame = loop {
            if let Some(f) = framer.next_frame().unwrap() {
                break f;
            }
            match s.read(&mut buf) {
                Ok(0) | Err(_) => return,
                Ok(n) => framer.push(&buf[..n]),
            }
        };
        log.lock().unwrap().push(frame.clone());
        if script.silent {
            continue;
        }
        let Ok(d) = Message::decode(&frame) else {
            let _ = s.write_all(b"96\r");
            continue;
        };
        if d.message.command() == Command::RequestAcsResend {
            // Resend the last answer, as the spec asks.
            if s.write_all(&last).and_then(|()| s.flush()).is_err() {
                return;
            }
            continue;
        }
        let mut answer = ils_answer(&d.message, script);
        answer.set_sequence(d.message.sequence());
        let mut bytes = answer.encode(d.checksum == Checksum::Valid);
        last = bytes.clone();
        if script.garble_first && served == 0 && d.checksum == Checksum::Valid {
            // Break the checksum's last digit.
            let i = bytes.len() - 2;
            bytes[i] = if bytes[i] == b'0' { b'1' } else { b'0' };
        }
        served += 1;
        if s.write_all(&bytes).and_then(|()| s.flush()).is_err() {
            return;
        }
        if script.close_after.is_some_and(|n| served >= n) {
            return;
        }
    }
}

const DATE: &[u8; 18] = b"20261203    120000";

fn ils_answer(req: &Message, script: &IlsScript) -> Message {
    let aa = req.field(FieldId::PATRON_ID).unwrap_or_default().to_vec();
    let known = script
        .patrons
        .get(&String::from_utf8_lossy(&aa).into_owned());
    let ok = if known.is_some() { b'1' } else { b'0' };
    let yn = if known.is_some() { b"Y" } else { b"N" };
    let name = known.cloned().unwrap_or_default();
    let f = |id: &[u8; 2], v: &[u8]| Field::new(FieldId::new(*id).unwrap(), v.to_vec()).unwrap();
    let ao = f(b"AO", req.field(FieldId::INSTITUTION_ID).unwrap_or(b"lib"));
    let ab = req.field(FieldId::ITEM_ID).unwrap_or_default().to_vec();
    let (command, fixed, fields): (Command, Vec<u8>, Vec<Field>) = match req.command() {
        Command::Login => {
            let ok = match &script.login {
                None => true,
                Some((u, p)) => {
                    req.field(FieldId::LOGIN_USER) == Some(u.as_bytes())
                        && req.field(FieldId::LOGIN_PASSWORD) == Some(p.as_bytes())
                }
            };
            (
                Command::LoginResponse,
                vec![if ok { b'1' } else { b'0' }],
                vec![],
            )
        }
        Command::ScStatus => (
            Command::AcsStatus,
            [&b"YYYYYY030003"[..], DATE, b"2.00"].concat(),
            vec![ao, f(b"AM", b"Scripted ILS"), f(b"BX", b"YYYYYYYYYYYYYYYY")],
        ),
        Command::PatronStatus => (
            Command::PatronStatusResponse,
            [&b"              000"[..], DATE].concat(),
            vec![ao, f(b"AA", &aa), f(b"AE", &name), f(b"BL", yn)],
        ),
        Command::PatronInformation => (
            Command::PatronInformationResponse,
            [&b"              000"[..], DATE, b"000000010000000000000000"].concat(),
            vec![ao, f(b"AA", &aa), f(b"AE", &name), f(b"BL", yn)],
        ),
        Command::Checkout => (
            Command::CheckoutResponse,
            [&[ok, b'N', b'N', b'Y'][..], DATE].concat(),
            vec![
                ao,
                f(b"AA", &aa),
                f(b"AB", &ab),
                f(b"AJ", b"A Title"),
                f(b"AH", b"20261224    235900"),
            ],
        ),
        Command::Checkin => (
            Command::CheckinResponse,
            [&b"1YNN"[..], DATE].concat(),
            vec![ao, f(b"AB", &ab), f(b"AQ", b"main")],
        ),
        Command::Renew => (
            Command::RenewResponse,
            [&[ok, b'Y', b'N', b'N'][..], DATE].concat(),
            vec![
                ao,
                f(b"AA", &aa),
                f(b"AB", &ab),
                f(b"AJ", b"A Title"),
                f(b"AH", b"20270107    235900"),
            ],
        ),
        Command::ItemInformation => (
            Command::ItemInformationResponse,
            [&b"030001"[..], DATE].concat(),
            vec![f(b"AB", &ab), f(b"AJ", b"A Title")],
        ),
        Command::EndSession => (
            Command::EndSessionResponse,
            [&b"Y"[..], DATE].concat(),
            vec![ao, f(b"AA", &aa)],
        ),
        Command::FeePaid => (
            Command::FeePaidResponse,
            [&b"Y"[..], DATE].concat(),
            vec![ao, f(b"AA", &aa)],
        ),
        _ => (Command::RequestScResend, vec![], vec![]),
    };
    Message::new(command, fixed, fields).unwrap()
}

// ---- a self-check machine ----------------------------------------------------

/// A self-check machine's connection from a 127.0.0.x address of its own.
pub struct Machine {
    stream: TcpStream,
    framer: Framer,
    seq: Sequence,
    pub checksums: bool,
}

impl Machine {
    pub fn connect(from: &str, to: SocketAddr) -> Machine {
        let socket =
            socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
        let local: SocketAddr = format!("{from}:0").parse().unwrap();
        socket.bind(&local.into()).unwrap();
        socket
            .connect_timeout(&to.into(), Duration::from_secs(5))
            .unwrap();
        let stream: TcpStream = socket.into();
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        Machine {
            stream,
            framer: Framer::new(1 << 20),
            seq: Sequence::new(0).unwrap(),
            checksums: true,
        }
    }

    pub fn send_raw(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).unwrap();
    }

    /// Sends what it can; the bridge may close the connection meanwhile.
    pub fn try_send(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        self.stream.write_all(bytes)
    }

    /// The next frame from the bridge; `None` if it closed the connection.
    pub fn read_frame(&mut self) -> Option<Vec<u8>> {
        let mut buf = [0u8; 4096];
        loop {
            if let Some(f) = self.framer.next_frame().unwrap() {
                return Some(f);
            }
            match self.stream.read(&mut buf) {
                Ok(0) => return None,
                Ok(n) => self.framer.push(&buf[..n]),
                Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return None,
                Err(e) => panic!("no answer from the bridge: {e}"),
            }
        }
    }

    /// Sends a request and returns the answer, checking its checksum and sequence.
    pub fn ask(&mut self, frame: &str) -> Message {
        self.ask_bytes(frame.as_bytes())
    }

    pub fn ask_bytes(&mut self, body: &[u8]) -> Message {
        let mut m = Message::decode(body).unwrap().message;
        self.seq = self.seq.next();
        m.set_sequence(Some(self.seq));
        self.send_raw(&m.encode(self.checksums));
        let frame = self.read_frame().expect("the bridge closed the connection");
        let d = Message::decode(&frame).unwrap();
        if self.checksums {
            assert_eq!(
                d.checksum,
                Checksum::Valid,
                "{:?}",
                String::from_utf8_lossy(&frame)
            );
            assert_eq!(d.message.sequence(), Some(self.seq));
        }
        d.message
    }

    /// Whether the bridge closed the connection within `within`.
    pub fn closed_within(&mut self, within: Duration) -> bool {
        self.stream.set_read_timeout(Some(within)).unwrap();
        let mut buf = [0u8; 4096];
        let end = Instant::now() + within;
        while Instant::now() < end {
            match self.stream.read(&mut buf) {
                Ok(0) => return true,
                Ok(_) => {}
                Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return true,
                Err(_) => return false,
            }
        }
        false
    }
}

pub fn field(m: &Message, id: &[u8; 2]) -> String {
    String::from_utf8_lossy(m.field(FieldId::new(*id).unwrap()).unwrap_or_default()).into_owned()
}

/// SIP2 request bodies a self-check machine sends (no AY/AZ: the machine adds them).
pub mod req {
    pub const DATE: &str = "20261203    120000";
    pub fn status() -> String {
        "9900802.00".to_owned()
    }
    pub fn login(user: &str, pw: &str) -> String {
        format!("9300CN{user}|CO{pw}|CPbranch|")
    }
    pub fn patron_info(aa: &str) -> String {
        format!("63000{DATE}          AOlib|AA{aa}|AC|AD|")
    }
    pub fn patron_status(aa: &str) -> String {
        format!("23000{DATE}AOlib|AA{aa}|AC|AD|")
    }
    pub fn checkout(aa: &str, item: &str) -> String {
        format!("11NN{DATE}{DATE}AOlib|AA{aa}|AB{item}|AC|")
    }
    pub fn checkin(item: &str) -> String {
        format!("09N{DATE}{DATE}APmain|AOlib|AB{item}|AC|")
    }
    pub fn renew(aa: &str, item: &str) -> String {
        format!("29NN{DATE}{DATE}AOlib|AA{aa}|AB{item}|")
    }
    pub fn item_info(item: &str) -> String {
        format!("17{DATE}AOlib|AB{item}|")
    }
    pub fn end_session(aa: &str) -> String {
        format!("35{DATE}AOlib|AA{aa}|")
    }
}
