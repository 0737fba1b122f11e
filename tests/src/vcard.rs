//! Test certificates for the virtual JPKI card, made with the `openssl`
//! CLI, shared by `vjpki` (which serves the card to vpcd) and `fuzz-seeds`
//! (which records its answers as fuzz seeds). The card's logic itself is
//! `mykey-testcard`.

use anyhow::{Context, bail};
use std::path::Path;
use std::process::Command;

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
