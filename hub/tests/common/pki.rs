//! A test JPKI: a CA and card user-authentication certificates made with the
//! `openssl` CLI (as `vjpki gen-certs` does), and a card that signs redeem
//! bindings the way the chip does (PKCS#1 v1.5 over a SHA-256 DigestInfo).

use mykey_jpki::{CardCert, DigestInfo, TrustedCert};
use mykey_sync_proto::{CardSignature, RedeemBinding};
use rsa::pkcs8::DecodePrivateKey;
use rsa::{Pkcs1v15Sign, RsaPrivateKey};
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};
use std::process::Command;

/// A test CA in a directory.
pub struct Pki {
    pub dir: PathBuf,
    pub ca_der: Vec<u8>,
}

/// A card: its certificate and the key its chip would hold.
pub struct TestCard {
    pub cert: CardCert,
    pub key: RsaPrivateKey,
    pub cert_path: PathBuf,
}

fn openssl(dir: &Path, args: &[&str]) {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("openssl runs");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

impl Pki {
    pub fn new(dir: &Path) -> Pki {
        std::fs::create_dir_all(dir).unwrap();
        openssl(
            dir,
            &[
                "req",
                "-x509",
                "-newkey",
                "rsa:2048",
                "-nodes",
                "-keyout",
                "ca.key",
                "-out",
                "ca.pem",
                "-days",
                "3650",
                "-sha256",
                "-subj",
                "/CN=MyKey Test JPKI User Authentication CA",
            ],
        );
        openssl(
            dir,
            &["x509", "-in", "ca.pem", "-outform", "DER", "-out", "ca.der"],
        );
        Pki {
            dir: dir.to_owned(),
            ca_der: std::fs::read(dir.join("ca.der")).unwrap(),
        }
    }

    pub fn ca_path(&self) -> PathBuf {
        self.dir.join("ca.der")
    }

    /// A card certificate with this serial (hex), signed by the CA.
    pub fn card(&self, serial_hex: &str) -> TestCard {
        let d = &self.dir;
        let key = format!("card-{serial_hex}.key");
        let csr = format!("card-{serial_hex}.csr");
        let pem = format!("card-{serial_hex}.pem");
        let der = format!("card-{serial_hex}.der");
        let kder = format!("card-{serial_hex}.key.der");
        openssl(
            d,
            &[
                "req",
                "-newkey",
                "rsa:2048",
                "-nodes",
                "-keyout",
                &key,
                "-out",
                &csr,
                "-subj",
                "/CN=JPKI user authentication",
            ],
        );
        openssl(
            d,
            &[
                "x509",
                "-req",
                "-in",
                &csr,
                "-CA",
                "ca.pem",
                "-CAkey",
                "ca.key",
                "-set_serial",
                &format!("0x{serial_hex}"),
                "-days",
                "365",
                "-sha256",
                "-out",
                &pem,
            ],
        );
        openssl(d, &["x509", "-in", &pem, "-outform", "DER", "-out", &der]);
        openssl(
            d,
            &[
                "pkcs8", "-topk8", "-nocrypt", "-in", &key, "-outform", "DER", "-out", &kder,
            ],
        );
        let cert_der = std::fs::read(d.join(&der)).unwrap();
        TestCard {
            cert: CardCert::from_der(cert_der).unwrap(),
            key: RsaPrivateKey::from_pkcs8_der(&std::fs::read(d.join(&kder)).unwrap()).unwrap(),
            cert_path: d.join(der),
        }
    }

    /// The card's certificate checked against the CA now.
    pub fn trusted(&self, card: &TestCard) -> TrustedCert {
        let now = mykey_net::unix_now_secs();
        mykey_jpki::trust(card.cert.clone(), std::slice::from_ref(&self.ca_der), now).unwrap()
    }
}

impl TestCard {
    /// What the chip returns for the binding after a right PIN.
    pub fn sign(&self, binding: &RedeemBinding) -> CardSignature {
        self.sign_message(&binding.signed_message())
    }

    /// What the chip returns for any message it is given to sign (a
    /// holder binding's, issue 19) after a right PIN.
    pub fn sign_message(&self, message: &[u8]) -> CardSignature {
        let hash: [u8; 32] = Sha256::digest(message).into();
        let sig = self
            .key
            .sign(
                Pkcs1v15Sign::new_unprefixed(),
                DigestInfo::sha256(&hash).as_bytes(),
            )
            .unwrap();
        CardSignature::new(sig).unwrap()
    }
}
