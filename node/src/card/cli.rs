//! `mykey-node card ...`: a scriptable check of any reader and card.
//!
//! `card read` prints the card key and certificate validity; with `--prove`
//! it also runs the card proof. The PIN comes from a hidden prompt on the
//! terminal or, for scripts, one line of stdin (`--pin-stdin`); never from the
//! command line, where it would land in shell history and `ps`.

use std::io::BufRead;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context as _, bail};
use zeroize::Zeroizing;

use super::apdu::Pin;
use super::cert::{CardCert, ChainError, rfc3339, verify_chain};
use super::jpki::{Challenge, PinStatus, ProveError, pin_status, prove, read_auth_cert};
use super::reader::{DEFAULT_APDU_TIMEOUT, Reader};

/// Card reader commands.
#[derive(Debug, clap::Subcommand)]
pub enum CardCommand {
    /// List the connected card readers.
    Readers {
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Read the My Number card on a reader: card key and certificate validity.
    Read {
        /// Reader name (as `card readers` prints it); the first reader if omitted.
        #[arg(long)]
        reader: Option<String>,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
        /// Also prove possession: PIN, then the card signs a fresh challenge.
        #[arg(long)]
        prove: bool,
        /// Read the PIN from one line of stdin instead of a hidden prompt.
        #[arg(long, requires = "prove")]
        pin_stdin: bool,
        /// Seconds to wait for a card to be tapped.
        #[arg(long, default_value_t = 10)]
        wait_secs: u64,
        /// Trusted JPKI user-auth CA certificate (DER or PEM); repeat for each
        /// CA generation. Without it the chain is not checked.
        #[arg(long = "trusted-ca", value_name = "FILE")]
        trusted_ca: Vec<PathBuf>,
        /// Also write the card's user-authentication certificate (DER) to
        /// FILE, for `mykey-hub account register --cert` (a new file only).
        #[arg(long, value_name = "FILE")]
        cert_out: Option<PathBuf>,
        /// Deadline for each command to the card, in milliseconds.
        #[arg(long, default_value_t = DEFAULT_APDU_TIMEOUT.as_millis() as u64)]
        apdu_timeout_ms: u64,
    },
}

/// Runs a card command, printing to stdout.
pub fn run(cmd: CardCommand) -> anyhow::Result<()> {
    match cmd {
        CardCommand::Readers { json } => readers(json),
        CardCommand::Read {
            reader,
            json,
            prove,
            pin_stdin,
            wait_secs,
            trusted_ca,
            cert_out,
            apdu_timeout_ms,
        } => read(ReadArgs {
            reader,
            json,
            prove,
            pin_stdin,
            wait: Duration::from_secs(wait_secs),
            trusted_ca,
            cert_out,
            apdu_timeout: Duration::from_millis(apdu_timeout_ms),
        }),
    }
}

fn readers(json: bool) -> anyhow::Result<()> {
    let names = Reader::establish()?.list()?;
    if json {
        println!("{}", serde_json::json!({ "readers": names }));
    } else if names.is_empty() {
        println!("no card reader is connected");
    } else {
        names.iter().for_each(|n| println!("{n}"));
    }
    Ok(())
}

struct ReadArgs {
    reader: Option<String>,
    json: bool,
    prove: bool,
    pin_stdin: bool,
    wait: Duration,
    trusted_ca: Vec<PathBuf>,
    cert_out: Option<PathBuf>,
    apdu_timeout: Duration,
}

fn read(args: ReadArgs) -> anyhow::Result<()> {
    let trusted = args
        .trusted_ca
        .iter()
        .map(|p| load_cert_file(p.as_path()))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let pcsc = Reader::establish()?;
    let reader = pcsc.pick(args.reader.as_deref())?;
    if !pcsc.wait_for_card(&reader, true, args.wait)? {
        bail!(
            "no card was tapped on {reader:?} within {} s: place the card on the reader and run again",
            args.wait.as_secs()
        );
    }
    let mut session = pcsc.connect(&reader, args.apdu_timeout)?;
    let cert = read_auth_cert(&mut session)?;
    let now = mykey_net::unix_now_secs();
    tracing::info!(card = %cert.card_key().short(), "card read");
    if let Some(path) = &args.cert_out {
        write_new_file(path, cert.der()).with_context(|| {
            format!(
                "could not write the certificate to {}: give a new file name",
                path.display()
            )
        })?;
        eprintln!("certificate written to {}", path.display());
    }

    let chain = match trusted.is_empty() {
        true => None,
        false => Some(verify_chain(&cert, &trusted, now)),
    };
    let mut report = Report::new(&reader, &cert, now, chain);

    if args.prove {
        let status = pin_status(&mut session)?;
        report.pin = Some(status);
        if status == PinStatus::Locked {
            report.print(args.json);
            return Err(ProveError::Locked.into());
        }
        if let PinStatus::TriesLeft(n) = status {
            eprintln!("PIN tries left: {n}");
        }
        let pin = read_pin(args.pin_stdin)?;
        let challenge = Challenge::random()
            .map_err(|e| anyhow::anyhow!("the OS gave no random challenge ({e}): retry"))?;
        match prove(&mut session, &cert, pin, challenge) {
            Ok(proof) => {
                tracing::info!(card = %proof.card_key().short(), "card proof verified");
                report.proof = Some(Ok(()));
            }
            Err(e) => {
                report.proof = Some(Err(e.to_string()));
                report.print(args.json);
                return Err(e.into());
            }
        }
    }
    report.print(args.json);
    Ok(())
}

fn read_pin(from_stdin: bool) -> anyhow::Result<Pin> {
    let line = if from_stdin {
        let mut line = Zeroizing::new(String::new());
        std::io::stdin()
            .lock()
            .read_line(&mut line)
            .context("could not read the PIN from stdin")?;
        line
    } else {
        // rpassword reads /dev/tty with echo off, so the PIN is never shown.
        Zeroizing::new(
            rpassword::prompt_password("User-authentication PIN (4 digits): ").context(
                "could not read the PIN from the terminal: run in a terminal, or use --pin-stdin",
            )?,
        )
    };
    Ok(Pin::parse(&line)?)
}

pub(crate) fn load_cert_file(path: &std::path::Path) -> anyhow::Result<Vec<u8>> {
    let bytes = std::fs::read(path)
        .with_context(|| format!("could not read trusted CA certificate {}", path.display()))?;
    if bytes.starts_with(b"-----BEGIN") {
        let (_, pem) = x509_parser::pem::parse_x509_pem(&bytes).map_err(|_| {
            anyhow::anyhow!(
                "{} is not a PEM certificate: give a DER or PEM file",
                path.display()
            )
        })?;
        return Ok(pem.contents);
    }
    Ok(bytes)
}

/// Writes `bytes` to a file that must not exist yet (never overwrites).
fn write_new_file(path: &std::path::Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write as _;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(path)?;
    f.write_all(bytes)?;
    f.sync_all()
}

/// What `card read` found, printed at the end (also on a failed proof).
struct Report {
    reader: String,
    card_key: String,
    issuer_hex: String,
    serial_hex: String,
    short: String,
    not_before: String,
    not_after: String,
    valid_now: bool,
    chain: Option<Result<usize, String>>,
    pin: Option<PinStatus>,
    proof: Option<Result<(), String>>,
}

impl Report {
    fn new(
        reader: &str,
        cert: &CardCert,
        now: i64,
        chain: Option<Result<super::cert::ChainOk, ChainError>>,
    ) -> Self {
        let key = cert.card_key();
        Report {
            reader: reader.to_owned(),
            card_key: key.to_string(),
            issuer_hex: hex::encode(key.issuer_der()),
            serial_hex: hex::encode(key.serial()),
            short: key.short(),
            not_before: rfc3339(cert.not_before_unix()),
            not_after: rfc3339(cert.not_after_unix()),
            valid_now: cert.is_valid_at(now),
            chain: chain.map(|c| c.map(|ok| ok.ca_index).map_err(|e| e.to_string())),
            pin: None,
            proof: None,
        }
    }

    fn print(&self, json: bool) {
        if json {
            println!("{}", self.json());
            return;
        }
        println!("reader:     {}", self.reader);
        println!("card key:   {}", self.card_key);
        println!("  issuer:   {}", self.issuer_hex);
        println!("  serial:   {}", self.serial_hex);
        println!("  short:    {}", self.short);
        println!(
            "validity:   {} .. {} ({})",
            self.not_before,
            self.not_after,
            if self.valid_now {
                "valid now"
            } else {
                "NOT valid now"
            }
        );
        match &self.chain {
            None => println!("chain:      not checked (no --trusted-ca)"),
            Some(Ok(i)) => println!("chain:      trusted (CA #{i})"),
            Some(Err(e)) => println!("chain:      FAILED: {e}"),
        }
        match self.pin {
            None => {}
            Some(PinStatus::TriesLeft(1)) => println!("PIN:        1 try left"),
            Some(PinStatus::TriesLeft(n)) => println!("PIN:        {n} tries left"),
            Some(PinStatus::Verified) => println!("PIN:        already verified"),
            Some(PinStatus::Locked) => println!(
                "PIN:        LOCKED: the holder must go to the municipal office counter to reset it"
            ),
        }
        match &self.proof {
            None => {}
            Some(Ok(())) => println!("proof:      ok (PIN verified, signature checked)"),
            Some(Err(e)) => println!("proof:      FAILED: {e}"),
        }
    }

    fn json(&self) -> serde_json::Value {
        let pin = self.pin.map(|p| match p {
            PinStatus::TriesLeft(n) => serde_json::json!({ "state": "ok", "tries_left": n }),
            PinStatus::Verified => serde_json::json!({ "state": "verified" }),
            PinStatus::Locked => serde_json::json!({ "state": "locked", "tries_left": 0 }),
        });
        let chain = match &self.chain {
            None => serde_json::json!({ "checked": false }),
            Some(Ok(i)) => serde_json::json!({ "checked": true, "ok": true, "ca_index": i }),
            Some(Err(e)) => serde_json::json!({ "checked": true, "ok": false, "error": e }),
        };
        let proof = self.proof.as_ref().map(|p| match p {
            Ok(()) => serde_json::json!({ "ok": true }),
            Err(e) => serde_json::json!({ "ok": false, "error": e }),
        });
        serde_json::json!({
            "reader": self.reader,
            "card_key": self.card_key,
            "issuer_hex": self.issuer_hex,
            "serial_hex": self.serial_hex,
            "short": self.short,
            "not_before": self.not_before,
            "not_after": self.not_after,
            "valid_now": self.valid_now,
            "chain": chain,
            "pin": pin,
            "proof": proof,
        })
    }
}
