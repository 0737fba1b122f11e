//! The virtual JPKI card's logic, shared by `vjpki` (which serves it to
//! vpcd) and `fuzz-seeds` (which records its answers as fuzz seeds): test
//! certificates made with the `openssl` CLI, and the card's answers to the
//! JPKI user-authentication commands.

use anyhow::{Context, bail};
use rsa::{Pkcs1v15Sign, RsaPrivateKey};
use std::path::Path;
use std::process::Command;

const JPKI_AID: [u8; 10] = [0xD3, 0x92, 0xF0, 0x00, 0x26, 0x01, 0x00, 0x00, 0x00, 0x01];
/// PIN tries of a fresh card.
pub const MAX_TRIES: u8 = 3;

fn openssl(args: &[&str]) -> anyhow::Result<()> {
    let out = Command::new("openssl")
        .args(args)
        .output()
        .context("could not run openssl: install it (apt-get install openssl)")?;
    if !out.status.success() {
        bail!(
            "openssl {} failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(())
}

/// Makes a test CA (unless `reuse_ca`) and a user-authentication
/// certificate with serial `serial` (hex) in `out`: ca.der, ca.pem,
/// ca.key.pem, auth.der, auth.key.pem.
pub fn gen_certs(out: &Path, serial: &str, ca_name: &str, reuse_ca: bool) -> anyhow::Result<()> {
    std::fs::create_dir_all(out)?;
    let p = |name: &str| out.join(name).to_string_lossy().into_owned();
    if !reuse_ca {
        let subj = format!("/C=JP/O=MyKey Test/OU=JPKI for user authentication/CN={ca_name}");
        openssl(&[
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-sha256",
            "-days",
            "3650",
            "-subj",
            &subj,
            "-keyout",
            &p("ca.key.pem"),
            "-out",
            &p("ca.pem"),
            "-addext",
            "basicConstraints=critical,CA:TRUE",
            "-addext",
            "keyUsage=critical,keyCertSign,cRLSign",
        ])?;
        openssl(&[
            "x509",
            "-in",
            &p("ca.pem"),
            "-outform",
            "DER",
            "-out",
            &p("ca.der"),
        ])?;
    }
    // JPKI user-auth certificates carry no name or address: a bare subject.
    openssl(&[
        "req",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-sha256",
        "-subj",
        "/C=JP/CN=MYKEY TEST CARD",
        "-keyout",
        &p("auth.key.pem"),
        "-out",
        &p("auth.csr"),
    ])?;
    let serial = format!("0x{}", serial.trim_start_matches("0x"));
    openssl(&[
        "x509",
        "-req",
        "-in",
        &p("auth.csr"),
        "-CA",
        &p("ca.pem"),
        "-CAkey",
        &p("ca.key.pem"),
        "-set_serial",
        &serial,
        "-days",
        "1825",
        "-sha256",
        "-out",
        &p("auth.pem"),
    ])?;
    openssl(&[
        "x509",
        "-in",
        &p("auth.pem"),
        "-outform",
        "DER",
        "-out",
        &p("auth.der"),
    ])?;
    Ok(())
}

/// What the card has selected and whether the PIN was verified.
pub struct Card {
    auth_cert: Vec<u8>,
    ca_cert: Vec<u8>,
    key: RsaPrivateKey,
    pin: [u8; 4],
    tries: u8,
    not_jpki: bool,
    ap_selected: bool,
    ef: Option<[u8; 2]>,
    verified: bool,
}

impl Card {
    /// A card serving `auth_cert` (EF 000A) and `ca_cert` (EF 000B), signing
    /// with `key` once `pin` was verified; `tries` PIN tries left (0: locked);
    /// `not_jpki` makes it answer 6A82 to the JPKI SELECT too.
    pub fn new(
        auth_cert: Vec<u8>,
        ca_cert: Vec<u8>,
        key: RsaPrivateKey,
        pin: [u8; 4],
        tries: u8,
        not_jpki: bool,
    ) -> Card {
        Card {
            auth_cert,
            ca_cert,
            key,
            pin,
            tries: tries.min(MAX_TRIES),
            not_jpki,
            ap_selected: false,
            ef: None,
            verified: false,
        }
    }

    /// Power off, power on or reset: nothing selected, PIN not verified.
    pub fn reset(&mut self) {
        self.ap_selected = false;
        self.ef = None;
        self.verified = false;
    }

    /// The R-APDU (data and status word) to a command APDU.
    pub fn answer(&mut self, apdu: &[u8]) -> Vec<u8> {
        let sw = |sw: u16| sw.to_be_bytes().to_vec();
        match apdu {
            [0x00, 0xA4, 0x04, 0x0C, 0x0A, aid @ ..] if aid == JPKI_AID && !self.not_jpki => {
                self.reset();
                self.ap_selected = true;
                sw(0x9000)
            }
            [0x00, 0xA4, 0x02, 0x0C, 0x02, hi, lo] if self.ap_selected => match [*hi, *lo] {
                ef @ ([0x00, 0x0A] | [0x00, 0x0B] | [0x00, 0x17] | [0x00, 0x18]) => {
                    self.ef = Some(ef);
                    sw(0x9000)
                }
                _ => sw(0x6A82),
            },
            [0x00, 0xB0, p1, p2, le] if *p1 & 0x80 == 0 => {
                let file = match self.ef {
                    Some([0x00, 0x0A]) => &self.auth_cert,
                    Some([0x00, 0x0B]) => &self.ca_cert,
                    Some(_) => return sw(0x6986),
                    None => return sw(0x6A82),
                };
                let offset = usize::from(u16::from_be_bytes([*p1, *p2]));
                let want = if *le == 0 { 256 } else { usize::from(*le) };
                if offset >= file.len() {
                    return sw(0x6B00);
                }
                let end = (offset + want).min(file.len());
                let mut out = file[offset..end].to_vec();
                out.extend(sw(if end - offset < want { 0x6282 } else { 0x9000 }));
                out
            }
            [0x00, 0x20, 0x00, 0x80] if self.ef == Some([0x00, 0x18]) => match self.tries {
                0 => sw(0x6983),
                _ if self.verified => sw(0x9000),
                n => sw(0x63C0 | u16::from(n)),
            },
            [0x00, 0x20, 0x00, 0x80, 0x04, pin @ ..] if self.ef == Some([0x00, 0x18]) => {
                if self.tries == 0 {
                    return sw(0x6983);
                }
                if pin == self.pin {
                    self.tries = MAX_TRIES;
                    self.verified = true;
                    sw(0x9000)
                } else {
                    self.tries -= 1;
                    self.verified = false;
                    sw(0x63C0 | u16::from(self.tries))
                }
            }
            [0x80, 0x2A, 0x00, 0x80, lc, rest @ ..]
                if self.ef == Some([0x00, 0x17]) && rest.len() == usize::from(*lc) + 1 =>
            {
                if !self.verified {
                    return sw(0x6982);
                }
                let data = &rest[..usize::from(*lc)];
                match self.key.sign(Pkcs1v15Sign::new_unprefixed(), data) {
                    Ok(mut sig) => {
                        sig.extend(sw(0x9000));
                        sig
                    }
                    Err(_) => sw(0x6A80),
                }
            }
            _ => sw(0x6A82),
        }
    }
}
