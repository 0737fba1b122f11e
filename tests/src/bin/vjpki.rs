//! vjpki: a virtual JPKI (My Number) card for tests and the demo.
//!
//! `vjpki gen-certs` makes a test CA and a user-authentication certificate
//! with the `openssl` CLI. `vjpki serve` plugs the card into vpcd (the
//! vsmartcard virtual reader inside pcscd) over its socket protocol: every
//! message is a 2-byte big-endian length and a payload; a 1-byte payload is
//! control (0 power off, 1 power on, 2 reset, 4 get ATR), anything longer is a
//! command APDU to answer.
//!
//! The card is `mykey_testcard::TestCard` (the simulation and in-process
//! tests use the same logic behind the node's `CardChannel`): it answers the
//! JPKI user-authentication commands (SELECT AP, SELECT EF 000A/000B/0017/0018,
//! READ BINARY, VERIFY with a 3-try counter, sign) and `6A82` to anything else. Every APDU it receives is appended to the log
//! file as `> HEX`, so tests can hold the node to its allow-list. For fault
//! tests it can drop the connection (card removed) or stop answering (card
//! hung) after N APDUs.
#![forbid(unsafe_code)]

use std::fs::File;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::Parser;
use mykey_testcard::{ATR, MAX_TRIES, TestCard};
use mykey_tests::vcard::gen_certs;
use rsa::RsaPrivateKey;
use rsa::pkcs8::DecodePrivateKey;

#[derive(Parser)]
#[command(about = "A virtual JPKI card for vpcd")]
enum Cli {
    /// Make a test CA and a card user-authentication certificate (RSA-2048) in DIR.
    GenCerts {
        /// Output directory: ca.der, ca.pem, ca.key.pem, auth.der, auth.key.pem.
        #[arg(long)]
        out: PathBuf,
        /// Serial number of the auth certificate, hex (e.g. 00C0FFEE0001).
        #[arg(long, default_value = "0A1B2C3D4E5F")]
        serial: String,
        /// Common name of the test CA (vary it to model a second CA generation).
        #[arg(long, default_value = "MyKey Test JPKI User Authentication CA")]
        ca_name: String,
        /// Reuse this directory's CA instead of making one (same issuer, new card).
        #[arg(long)]
        reuse_ca: bool,
    },
    /// Connect to vpcd and act as a card until killed or told to drop.
    Serve(Serve),
}

#[derive(Parser)]
struct Serve {
    /// The user-authentication certificate file served at EF 000A (any bytes).
    #[arg(long)]
    cert: PathBuf,
    /// The CA certificate served at EF 000B.
    #[arg(long)]
    ca_cert: Option<PathBuf>,
    /// PKCS#8 PEM private key the card signs with.
    #[arg(long)]
    key: PathBuf,
    /// The 4-digit user-authentication PIN.
    #[arg(long, default_value = "1234")]
    pin: String,
    /// PIN tries left at start (0 = locked).
    #[arg(long, default_value_t = MAX_TRIES)]
    tries: u8,
    /// Append every APDU received to this file.
    #[arg(long)]
    log: Option<PathBuf>,
    /// vpcd address.
    #[arg(long, default_value = "127.0.0.1:35963")]
    vpcd: String,
    /// Close the connection (card removed) instead of answering APDU number N+1.
    #[arg(long)]
    drop_after: Option<u64>,
    /// Stop answering (card hung) at APDU number N+1, keeping the connection.
    #[arg(long)]
    hang_after: Option<u64>,
    /// Answer 6A82 to the JPKI SELECT too: a smart card that is not a My Number card.
    #[arg(long)]
    not_jpki: bool,
    /// Seconds to keep trying to reach vpcd.
    #[arg(long, default_value_t = 20)]
    connect_secs: u64,
}

fn main() -> anyhow::Result<()> {
    match Cli::parse() {
        Cli::GenCerts {
            out,
            serial,
            ca_name,
            reuse_ca,
        } => gen_certs(&out, &serial, &ca_name, reuse_ca),
        Cli::Serve(args) => serve(args),
    }
}

fn serve(args: Serve) -> anyhow::Result<()> {
    let read = |p: &Path| std::fs::read(p).with_context(|| format!("reading {}", p.display()));
    let key_pem = std::fs::read_to_string(&args.key)
        .with_context(|| format!("reading {}", args.key.display()))?;
    let pin: [u8; 4] = args
        .pin
        .as_bytes()
        .try_into()
        .context("--pin must be 4 digits")?;
    let mut card = TestCard::new(
        read(&args.cert)?,
        args.ca_cert
            .as_deref()
            .map(read)
            .transpose()?
            .unwrap_or_default(),
        RsaPrivateKey::from_pkcs8_pem(&key_pem).context("--key must be a PKCS#8 PEM RSA key")?,
        pin,
    )
    .with_tries(args.tries);
    if args.not_jpki {
        card = card.not_jpki();
    }
    let mut log = match &args.log {
        Some(p) => Some(
            File::options()
                .create(true)
                .append(true)
                .open(p)
                .with_context(|| format!("opening {}", p.display()))?,
        ),
        None => None,
    };
    let mut sock = connect(&args.vpcd, Duration::from_secs(args.connect_secs))?;
    // Without TCP_NODELAY our answers would wait for vpcd's delayed ACKs.
    sock.set_nodelay(true)?;
    eprintln!("vjpki: card inserted into vpcd at {}", args.vpcd);

    let mut n_apdus = 0u64;
    loop {
        let Some(msg) = recv(&mut sock)? else {
            eprintln!("vjpki: vpcd closed the connection");
            return Ok(());
        };
        if let [ctrl] = msg[..] {
            let note = match ctrl {
                0 => "power off",
                1 => "power on",
                2 => "reset",
                4 => "get ATR",
                _ => "unknown control",
            };
            if let Some(log) = log.as_mut() {
                writeln!(log, "# {note}")?;
            }
            if ctrl <= 2 {
                card.reset();
            }
            if ctrl == 4 {
                send(&mut sock, &ATR)?;
            }
            continue;
        }
        if let Some(log) = log.as_mut() {
            writeln!(log, "> {}", hex::encode_upper(&msg))?;
        }
        if args.drop_after.is_some_and(|n| n_apdus >= n) {
            eprintln!("vjpki: removing the card after {n_apdus} APDUs");
            return Ok(());
        }
        if args.hang_after.is_some_and(|n| n_apdus >= n) {
            eprintln!("vjpki: no longer answering after {n_apdus} APDUs");
            // Keep the socket open and silent until killed; reading keeps
            // vpcd's later messages from piling up.
            let mut sink = [0u8; 512];
            while sock.read(&mut sink)? > 0 {}
            return Ok(());
        }
        n_apdus += 1;
        let answer = card.answer(&msg);
        send(&mut sock, &answer)?;
    }
}

fn connect(addr: &str, patience: Duration) -> anyhow::Result<TcpStream> {
    let deadline = Instant::now() + patience;
    loop {
        match TcpStream::connect(addr) {
            Ok(s) => return Ok(s),
            Err(e) if Instant::now() >= deadline => {
                return Err(e).with_context(|| {
                    format!("vpcd is not listening on {addr}: start pcscd (scripts/pcsc-up.sh)")
                });
            }
            // vpcd listens once pcscd has loaded the driver; retry until then.
            Err(_) => std::thread::sleep(Duration::from_millis(50)),
        }
    }
}

fn recv(sock: &mut TcpStream) -> anyhow::Result<Option<Vec<u8>>> {
    // vpcd sends the length and the payload in two writes without
    // TCP_NODELAY, so Nagle holds the payload until the length is ACKed; a
    // delayed ACK here would stall every message by ~40 ms. Quick ACK is not
    // sticky in Linux, so ask again before every read.
    let _ = socket2::SockRef::from(&*sock).set_tcp_quickack(true);
    let mut len = [0u8; 2];
    match sock.read_exact(&mut len) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return Ok(None),
        Err(e) => return Err(e.into()),
    }
    let mut msg = vec![0u8; usize::from(u16::from_be_bytes(len))];
    let _ = socket2::SockRef::from(&*sock).set_tcp_quickack(true);
    sock.read_exact(&mut msg)?;
    Ok(Some(msg))
}

fn send(sock: &mut TcpStream, payload: &[u8]) -> anyhow::Result<()> {
    let len = u16::try_from(payload.len()).context("answer too long")?;
    let mut frame = Vec::with_capacity(payload.len() + 2);
    frame.extend_from_slice(&len.to_be_bytes());
    frame.extend_from_slice(payload);
    sock.write_all(&frame)?;
    Ok(())
}
