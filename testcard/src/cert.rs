//! Test keys and certificates: a JPKI-like user-authentication CA and the
//! card certificates it signs (X.509 v3, RSA-2048, sha256WithRSAEncryption),
//! built with the rsa crate so tests and the simulation need no openssl
//! and no files.
//!
//! Key generation is the slow part (an RSA-2048 key takes a large share of
//! a second), so a caller makes few keys and many certificates: a
//! certificate costs one signature.

use rand_chacha::ChaCha20Rng;
use rand_chacha::rand_core::SeedableRng;
use rsa::pkcs8::EncodePublicKey;
use rsa::{Pkcs1v15Sign, RsaPrivateKey, RsaPublicKey};
use sha2::{Digest, Sha256};

use crate::der::{self, oid};

/// DER prefix of a SHA-256 DigestInfo (RFC 8017 §9.2 note 1).
const SHA256_DIGEST_INFO_PREFIX: [u8; 19] = [
    0x30, 0x31, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x01, 0x05,
    0x00, 0x04, 0x20,
];

/// Making a test key or certificate failed.
#[derive(Debug, thiserror::Error)]
pub enum CertError {
    /// RSA key generation or signing failed.
    #[error("RSA operation failed: {0}")]
    Rsa(#[from] rsa::Error),
    /// The public key could not be encoded.
    #[error("the public key could not be DER-encoded: {0}")]
    PublicKey(#[from] rsa::pkcs8::spki::Error),
    /// The serial is empty or longer than 20 bytes (RFC 5280 §4.1.2.2).
    #[error("a certificate serial is 1 to 20 bytes, got {0}")]
    Serial(usize),
}

/// An RSA-2048 key made deterministically from `seed` (ChaCha20): the same
/// seed gives the same key on every machine.
pub fn key_from_seed(seed: [u8; 32]) -> Result<RsaPrivateKey, CertError> {
    let mut rng = ChaCha20Rng::from_seed(seed);
    Ok(RsaPrivateKey::new(&mut rng, 2048)?)
}

/// A test CA: its key, its name and its self-signed certificate.
#[derive(Clone)]
pub struct TestCa {
    key: RsaPrivateKey,
    name: Vec<u8>,
    cert: Vec<u8>,
}

impl std::fmt::Debug for TestCa {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "TestCa({} byte certificate)", self.cert.len())
    }
}

impl TestCa {
    /// A CA named like the JPKI user-authentication CA with `common_name`
    /// (vary it to model a second CA generation), valid between the two
    /// Unix times (seconds).
    pub fn new(
        key: RsaPrivateKey,
        common_name: &str,
        not_before_unix: i64,
        not_after_unix: i64,
    ) -> Result<TestCa, CertError> {
        let name = der::name(&[
            (oid::COUNTRY, "JP"),
            (oid::ORGANIZATION, "MyKey Test"),
            (oid::ORG_UNIT, "JPKI for user authentication"),
            (oid::COMMON_NAME, common_name),
        ]);
        // basicConstraints: critical, cA TRUE.
        let basic = der::seq(&[
            oid::BASIC_CONSTRAINTS,
            &der::boolean(true),
            &der::octet_string(&der::seq(&[&der::boolean(true)])),
        ]);
        let extensions = der::explicit(3, &der::seq(&[&basic]));
        let public = RsaPublicKey::from(&key);
        let cert = sign_cert(
            &key,
            &[1],
            &name,
            &name,
            &public,
            (not_before_unix, not_after_unix),
            Some(&extensions),
        )?;
        Ok(TestCa { key, name, cert })
    }

    /// The CA's self-signed certificate (DER): what a node or hub trusts.
    pub fn cert_der(&self) -> &[u8] {
        &self.cert
    }

    /// The CA's name (DER): the issuer of every certificate it signs, and so
    /// the issuer half of every card key.
    pub fn name_der(&self) -> &[u8] {
        &self.name
    }

    /// A card's user-authentication certificate (DER) with this `serial`
    /// (big-endian bytes, 1 to 20) for `card_key`, valid between the two
    /// Unix times (seconds). JPKI user-auth certificates carry no name or
    /// address: the subject is bare.
    pub fn issue(
        &self,
        serial: &[u8],
        card_key: &RsaPublicKey,
        not_before_unix: i64,
        not_after_unix: i64,
    ) -> Result<Vec<u8>, CertError> {
        let subject = der::name(&[(oid::COUNTRY, "JP"), (oid::COMMON_NAME, "MYKEY TEST CARD")]);
        sign_cert(
            &self.key,
            serial,
            &self.name,
            &subject,
            card_key,
            (not_before_unix, not_after_unix),
            None,
        )
    }
}

fn sign_cert(
    signer: &RsaPrivateKey,
    serial: &[u8],
    issuer: &[u8],
    subject: &[u8],
    public: &RsaPublicKey,
    (not_before, not_after): (i64, i64),
    extensions: Option<&[u8]>,
) -> Result<Vec<u8>, CertError> {
    if serial.is_empty() || serial.len() > 20 {
        return Err(CertError::Serial(serial.len()));
    }
    let alg = der::seq(&[oid::SHA256_WITH_RSA, &der::null()]);
    let spki = public.to_public_key_der()?;
    let validity = der::seq(&[&der::time(not_before), &der::time(not_after)]);
    let version = der::explicit(0, &der::uint(&[2]));
    let serial = der::uint(serial);
    let mut parts: Vec<&[u8]> = vec![
        &version,
        &serial,
        &alg,
        issuer,
        &validity,
        subject,
        spki.as_bytes(),
    ];
    if let Some(e) = extensions {
        parts.push(e);
    }
    let tbs = der::seq(&parts);
    let hash = Sha256::digest(&tbs);
    let mut info = SHA256_DIGEST_INFO_PREFIX.to_vec();
    info.extend_from_slice(&hash);
    let signature = signer.sign(Pkcs1v15Sign::new_unprefixed(), &info)?;
    Ok(der::seq(&[&tbs, &alg, &der::bit_string(&signature)]))
}

#[cfg(test)]
mod tests {
    use super::*;
    use x509_parser::prelude::{FromDer, X509Certificate};

    #[test]
    fn certificates_parse_and_name_their_issuer() {
        let ca_key = key_from_seed([3; 32]).expect("ca key");
        let card_key = key_from_seed([4; 32]).expect("card key");
        let ca = TestCa::new(ca_key, "MyKey Test CA", 1_700_000_000, 2_000_000_000).expect("ca");
        let (_, parsed_ca) = X509Certificate::from_der(ca.cert_der()).expect("ca parses");
        assert!(parsed_ca.is_ca());
        assert_eq!(parsed_ca.subject().as_raw(), ca.name_der());
        let der = ca
            .issue(
                &[0x80, 0x01],
                &RsaPublicKey::from(&card_key),
                1_700_000_000,
                1_900_000_000,
            )
            .expect("issue");
        let (rest, cert) = X509Certificate::from_der(&der).expect("card parses");
        assert!(rest.is_empty());
        assert_eq!(cert.issuer().as_raw(), ca.name_der());
        assert_eq!(cert.raw_serial(), [0x00, 0x80, 0x01]);
        assert_eq!(cert.validity().not_after.timestamp(), 1_900_000_000);
        // The CA's signature verifies over the TBS bytes.
        let hash = Sha256::digest(cert.tbs_certificate.as_ref());
        let mut info = SHA256_DIGEST_INFO_PREFIX.to_vec();
        info.extend_from_slice(&hash);
        RsaPublicKey::from(&ca.key)
            .verify(
                Pkcs1v15Sign::new_unprefixed(),
                &info,
                &cert.signature_value.data,
            )
            .expect("signature verifies");
        assert!(matches!(
            ca.issue(&[], &RsaPublicKey::from(&card_key), 0, 1),
            Err(CertError::Serial(0))
        ));
    }

    #[test]
    fn the_same_seed_gives_the_same_key() {
        let a = key_from_seed([9; 32]).expect("a");
        let b = key_from_seed([9; 32]).expect("b");
        assert_eq!(RsaPublicKey::from(&a), RsaPublicKey::from(&b));
    }
}
