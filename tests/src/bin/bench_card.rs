//! Benchmark: tap-to-answer on the virtual card, split into card I/O and node work.
//!
//! Needs pcscd with vpcd (scripts/pcsc-up.sh) and the vjpki binary next to
//! this one. Run: `cargo build --release -p mykey-tests --bin vjpki --bin bench_card
//! && target/release/bench_card [N]`.
//!
//! A "tap" is connect + SELECT AP + SELECT EF + read the certificate + parse
//! it into a card key. Card I/O is the time inside `connect` and `transmit`
//! (pcscd, vpcd, the emulator); node work is the rest (parsing, building the
//! card key). A proof (PIN + sign + verify) is measured the same way.
#![forbid(unsafe_code)]

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use mykey_node::card::apdu::{Apdu, Response};
use mykey_node::card::{
    CardChannel, Challenge, Pin, Reader, TransmitError, pin_status, prove, read_auth_cert,
};

/// Wraps a channel and adds up the time spent in it.
struct Timed<'a, C> {
    inner: &'a mut C,
    io: Duration,
    n_apdus: u32,
}

impl<C: CardChannel> CardChannel for Timed<'_, C> {
    fn transmit(&mut self, apdu: &Apdu) -> Result<Response, TransmitError> {
        let t = Instant::now();
        let r = self.inner.transmit(apdu);
        self.io += t.elapsed();
        self.n_apdus += 1;
        r
    }
}

struct Killer(Child);
impl Drop for Killer {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn main() -> anyhow::Result<()> {
    let n: usize = std::env::args()
        .nth(1)
        .map(|a| a.parse())
        .transpose()
        .context("N must be a number")?
        .unwrap_or(300);
    let exe = std::env::current_exe()?;
    let vjpki = exe.with_file_name("vjpki");
    let dir = tempfile::tempdir()?;
    let certs = dir.path().join("certs");
    let status = Command::new(&vjpki)
        .args(["gen-certs", "--out"])
        .arg(&certs)
        .status()
        .with_context(|| format!("running {}", vjpki.display()))?;
    if !status.success() {
        bail!("vjpki gen-certs failed");
    }
    let pcsc = Reader::establish()?;
    let reader = pcsc
        .list()?
        .into_iter()
        .find(|r| r.starts_with("Virtual PCD"))
        .context("no vpcd reader: run scripts/pcsc-up.sh")?;
    if !pcsc.wait_for_card(&reader, false, Duration::from_secs(10))? {
        bail!("{reader} is not empty: another card emulator is connected");
    }
    let _card = Killer(
        Command::new(&vjpki)
            .arg("serve")
            .arg("--cert")
            .arg(certs.join("auth.der"))
            .arg("--key")
            .arg(certs.join("auth.key.pem"))
            .args(["--pin", "1234", "--tries", "3"])
            .stderr(Stdio::null())
            .spawn()?,
    );
    if !pcsc.wait_for_card(&reader, true, Duration::from_secs(20))? {
        bail!("the virtual card did not appear in {reader}");
    }

    let (mut io, mut node, mut total) = (Vec::new(), Vec::new(), Vec::new());
    let mut n_apdus = 0;
    for _ in 0..n {
        let t0 = Instant::now();
        let mut session = pcsc.connect(&reader, Duration::from_secs(5))?;
        let connect = t0.elapsed();
        let mut timed = Timed {
            inner: &mut session,
            io: Duration::ZERO,
            n_apdus: 0,
        };
        let cert = read_auth_cert(&mut timed)?;
        let key = cert.card_key().short();
        let all = t0.elapsed();
        std::hint::black_box(key);
        n_apdus = timed.n_apdus;
        io.push(connect + timed.io);
        node.push(all - connect - timed.io);
        total.push(all);
    }
    println!("tap (connect + read cert + card key), {n} taps, {n_apdus} APDUs each:");
    report("card I/O", &mut io);
    report("node work", &mut node);
    report("total", &mut total);

    let m = (n / 10).max(10);
    let (mut io, mut node) = (Vec::new(), Vec::new());
    let mut session = pcsc.connect(&reader, Duration::from_secs(5))?;
    let cert = read_auth_cert(&mut session)?;
    for _ in 0..m {
        let mut timed = Timed {
            inner: &mut session,
            io: Duration::ZERO,
            n_apdus: 0,
        };
        let t0 = Instant::now();
        pin_status(&mut timed)?;
        let pin = Pin::parse("1234")?;
        let challenge =
            Challenge::random().map_err(|e| anyhow::anyhow!("no random challenge: {e}"))?;
        prove(&mut timed, &cert, pin, challenge)?;
        let all = t0.elapsed();
        io.push(timed.io);
        node.push(all - timed.io);
    }
    println!("proof (tries left + VERIFY + sign + verify), {m} proofs:");
    report("card I/O", &mut io);
    report("node work", &mut node);
    Ok(())
}

fn report(what: &str, samples: &mut [Duration]) {
    samples.sort();
    let at = |q: f64| samples[((samples.len() - 1) as f64 * q).round() as usize];
    println!(
        "  {what:<10} median {:>9.3} ms   p99 {:>9.3} ms   max {:>9.3} ms",
        at(0.5).as_secs_f64() * 1e3,
        at(0.99).as_secs_f64() * 1e3,
        at(1.0).as_secs_f64() * 1e3,
    );
}
