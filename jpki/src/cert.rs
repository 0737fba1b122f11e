//! The JPKI user-authentication certificate: its length header, the card key
//! and public key taken from it, and the chain check against the trusted
//! JPKI user-auth CA certificates (the node's config, the hub's registration).
//!
//! All of this is pure: bytes in, values or typed errors out. The time for the
//! chain check is an argument, so tests and the simulation choose it.

use mykey_sync_proto::{CardKey, IdError};
use rsa::pkcs8::DecodePublicKey;
use rsa::{Pkcs1v15Sign, RsaPublicKey, traits::PublicKeyParts};
use sha2::{Digest, Sha256};
use x509_parser::oid_registry::{OID_PKCS1_RSAENCRYPTION, OID_PKCS1_SHA256WITHRSA};
use x509_parser::prelude::{FromDer, X509Certificate, X509Error};

use crate::digest::DigestInfo;

/// Largest certificate the node reads. JPKI auth certificates are ~1.5 KB;
/// the cap bounds what a broken or hostile card can make the node allocate.
pub const MAX_CERT_BYTES: usize = 4096;

/// A certificate's DER length header could not be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CertHeaderError {
    /// The file does not start like a DER certificate (`30 82 HH LL`).
    #[error(
        "the certificate file does not start with a DER SEQUENCE header (got {got}): the card may be damaged; ask the holder to have it checked at the municipal counter"
    )]
    NotDer {
        /// The bytes found, in hex.
        got: String,
    },
    /// The header announces more than [`MAX_CERT_BYTES`].
    #[error(
        "the card announces a {len}-byte certificate, more than the {max}-byte limit: this is not a JPKI user-authentication certificate"
    )]
    TooLarge {
        /// Announced total length (header included).
        len: usize,
        /// The limit.
        max: usize,
    },
}

/// Total certificate length (header included) from its first 4 bytes.
pub fn cert_total_len(header: &[u8]) -> Result<usize, CertHeaderError> {
    match header {
        [0x30, 0x82, hi, lo, ..] => {
            let len = usize::from(u16::from_be_bytes([*hi, *lo])) + 4;
            if len > MAX_CERT_BYTES {
                return Err(CertHeaderError::TooLarge {
                    len,
                    max: MAX_CERT_BYTES,
                });
            }
            Ok(len)
        }
        // Long form with 3+ length bytes: at least 64 KiB.
        [0x30, 0x83..=0x84, ..] => Err(CertHeaderError::TooLarge {
            len: 0x1_0000,
            max: MAX_CERT_BYTES,
        }),
        _ => Err(CertHeaderError::NotDer {
            got: hex::encode(&header[..header.len().min(4)]),
        }),
    }
}

/// The certificate bytes could not be turned into a card identity.
#[derive(Debug, thiserror::Error)]
pub enum CertParseError {
    /// Not a parseable X.509 certificate.
    #[error(
        "the card's certificate is not a valid X.509 certificate: the card may be damaged; ask the holder to have it checked at the municipal counter"
    )]
    X509(#[source] X509Error),
    /// Bytes after the certificate.
    #[error("the card's certificate has {0} stray bytes after it: the card may be damaged")]
    TrailingBytes(usize),
    /// The issuer or serial is outside what a card key allows.
    #[error("the certificate's issuer or serial cannot be a card key")]
    CardKey(#[source] IdError),
    /// The key is not RSA 2048..=4096 bits.
    #[error(
        "the certificate's public key is not an RSA key of 2048 to 4096 bits: this is not a JPKI user-authentication certificate"
    )]
    PublicKey(#[source] Option<rsa::pkcs8::spki::Error>),
}

/// The parts of a JPKI user-authentication certificate the node uses.
#[derive(Clone)]
pub struct CardCert {
    der: Vec<u8>,
    card_key: CardKey,
    not_before_unix: i64,
    not_after_unix: i64,
    public_key: RsaPublicKey,
    public_key_der: Vec<u8>,
}

impl CardCert {
    /// Parses a DER certificate (exactly one, nothing after it).
    pub fn from_der(der: Vec<u8>) -> Result<Self, CertParseError> {
        let (rest, cert) = X509Certificate::from_der(&der).map_err(|e| {
            CertParseError::X509(match e {
                x509_parser::nom::Err::Error(e) | x509_parser::nom::Err::Failure(e) => e,
                x509_parser::nom::Err::Incomplete(_) => X509Error::InvalidCertificate,
            })
        })?;
        if !rest.is_empty() {
            return Err(CertParseError::TrailingBytes(rest.len()));
        }
        let card_key = CardKey::new(cert.issuer().as_raw().to_vec(), cert.raw_serial().to_vec())
            .map_err(CertParseError::CardKey)?;
        let spki = cert.public_key();
        if spki.algorithm.algorithm != OID_PKCS1_RSAENCRYPTION {
            return Err(CertParseError::PublicKey(None));
        }
        let public_key = RsaPublicKey::from_public_key_der(spki.raw)
            .map_err(|e| CertParseError::PublicKey(Some(e)))?;
        if !(2048..=4096).contains(&(public_key.size() * 8)) {
            return Err(CertParseError::PublicKey(None));
        }
        let validity = cert.validity();
        let (not_before_unix, not_after_unix) = (
            validity.not_before.timestamp(),
            validity.not_after.timestamp(),
        );
        Ok(CardCert {
            card_key,
            not_before_unix,
            not_after_unix,
            public_key,
            public_key_der: spki.raw.to_vec(),
            der,
        })
    }

    /// The card key: (issuer, serial) of this certificate.
    pub fn card_key(&self) -> &CardKey {
        &self.card_key
    }

    /// The DER bytes as read from the card.
    pub fn der(&self) -> &[u8] {
        &self.der
    }

    /// Start of validity, seconds since the Unix epoch.
    pub fn not_before_unix(&self) -> i64 {
        self.not_before_unix
    }

    /// End of validity, seconds since the Unix epoch.
    pub fn not_after_unix(&self) -> i64 {
        self.not_after_unix
    }

    /// Whether `now_unix` lies within the validity period.
    pub fn is_valid_at(&self, now_unix: i64) -> bool {
        (self.not_before_unix..=self.not_after_unix).contains(&now_unix)
    }

    /// The certificate's RSA public key.
    pub fn public_key(&self) -> &RsaPublicKey {
        &self.public_key
    }

    /// The certificate's public key as DER SubjectPublicKeyInfo: what the
    /// hub keeps to verify the card's proofs later.
    pub fn public_key_der(&self) -> &[u8] {
        &self.public_key_der
    }

    /// Checks a PKCS#1 v1.5 signature over SHA-256(`message`) with this certificate's key.
    pub fn verify_sha256(&self, message: &[u8], signature: &[u8]) -> Result<(), rsa::Error> {
        verify_sha256(&self.public_key, message, signature)
    }
}

impl std::fmt::Debug for CardCert {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CardCert")
            .field("card_key", &self.card_key)
            .field("not_before_unix", &self.not_before_unix)
            .field("not_after_unix", &self.not_after_unix)
            .finish_non_exhaustive()
    }
}

/// PKCS#1 v1.5 verification over a SHA-256 DigestInfo.
pub fn verify_sha256(
    key: &RsaPublicKey,
    message: &[u8],
    signature: &[u8],
) -> Result<(), rsa::Error> {
    let hash: [u8; 32] = Sha256::digest(message).into();
    // Unprefixed: the DigestInfo we pass is the whole expected payload, the
    // same bytes the card is asked to sign.
    key.verify(
        Pkcs1v15Sign::new_unprefixed(),
        DigestInfo::sha256(&hash).as_bytes(),
        signature,
    )
}

/// The certificate did not chain to a trusted JPKI user-auth CA.
#[derive(Debug, thiserror::Error)]
pub enum ChainError {
    /// No trusted CA certificates are configured.
    #[error(
        "no trusted JPKI user-authentication CA certificates are configured: add them to the node config to check card certificates"
    )]
    NoTrustedCa,
    /// A configured CA certificate does not parse.
    #[error(
        "trusted CA certificate #{index} in the node config is not a valid certificate: fix the node config"
    )]
    BadTrustedCa {
        /// Position in the list given.
        index: usize,
        /// Why it failed.
        #[source]
        source: X509Error,
    },
    /// No configured CA has the certificate's issuer as its subject.
    #[error(
        "the card's certificate was not issued by a trusted JPKI user-authentication CA: the card is not genuine or the node config lacks a CA generation"
    )]
    UnknownIssuer,
    /// The certificate is signed with an algorithm the node does not check.
    #[error(
        "the card's certificate is signed with an unsupported algorithm ({0}): only sha256WithRSAEncryption is accepted"
    )]
    UnsupportedAlgorithm(String),
    /// The issuer matched but the signature did not verify.
    #[error(
        "the card's certificate signature does not verify against the trusted CA: the card is not genuine"
    )]
    BadSignature(#[source] Option<rsa::Error>),
    /// The certificate or its CA is outside its validity period.
    #[error(
        "the card's certificate or its CA is not valid at this time: the certificate may have expired; the holder can renew it at the municipal counter"
    )]
    Expired,
}

/// Which trusted CA vouched for a certificate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChainOk {
    /// Index of the CA in the trusted list.
    pub ca_index: usize,
}

/// A card certificate that chained to a trusted JPKI user-auth CA at a
/// given time. Only [`trust`] makes one, so code that needs a checked
/// certificate (a card proof that will count) takes this type.
#[derive(Clone, Debug)]
pub struct TrustedCert {
    cert: CardCert,
    chain: ChainOk,
}

impl TrustedCert {
    /// The certificate.
    pub fn cert(&self) -> &CardCert {
        &self.cert
    }
    /// Which CA vouched for it.
    pub fn chain(&self) -> ChainOk {
        self.chain
    }
}

/// [`verify_chain`], keeping the certificate as a [`TrustedCert`].
pub fn trust(
    cert: CardCert,
    trusted_ca_ders: &[Vec<u8>],
    now_unix: i64,
) -> Result<TrustedCert, ChainError> {
    let chain = verify_chain(&cert, trusted_ca_ders, now_unix)?;
    Ok(TrustedCert { cert, chain })
}

/// Checks that `cert` was issued and signed by one of `trusted_ca_ders`
/// (both JPKI user-auth CA generations may be listed) and that both are
/// valid at `now_unix`.
pub fn verify_chain(
    cert: &CardCert,
    trusted_ca_ders: &[Vec<u8>],
    now_unix: i64,
) -> Result<ChainOk, ChainError> {
    if trusted_ca_ders.is_empty() {
        return Err(ChainError::NoTrustedCa);
    }
    let (_, leaf) =
        X509Certificate::from_der(cert.der()).map_err(|_| ChainError::BadSignature(None))?;
    let mut last_err = ChainError::UnknownIssuer;
    for (index, ca_der) in trusted_ca_ders.iter().enumerate() {
        let (_, ca) = X509Certificate::from_der(ca_der).map_err(|e| ChainError::BadTrustedCa {
            index,
            source: match e {
                x509_parser::nom::Err::Error(e) | x509_parser::nom::Err::Failure(e) => e,
                x509_parser::nom::Err::Incomplete(_) => X509Error::InvalidCertificate,
            },
        })?;
        if ca.subject().as_raw() != leaf.issuer().as_raw() {
            continue;
        }
        match check_signed_by(&leaf, &ca) {
            Ok(()) => {}
            Err(e) => {
                last_err = e;
                continue;
            }
        }
        let ca_valid = (ca.validity().not_before.timestamp()..=ca.validity().not_after.timestamp())
            .contains(&now_unix);
        if !cert.is_valid_at(now_unix) || !ca_valid {
            return Err(ChainError::Expired);
        }
        return Ok(ChainOk { ca_index: index });
    }
    Err(last_err)
}

fn check_signed_by(leaf: &X509Certificate<'_>, ca: &X509Certificate<'_>) -> Result<(), ChainError> {
    if leaf.signature_algorithm.algorithm != OID_PKCS1_SHA256WITHRSA {
        return Err(ChainError::UnsupportedAlgorithm(
            leaf.signature_algorithm.algorithm.to_id_string(),
        ));
    }
    let ca_key = RsaPublicKey::from_public_key_der(ca.public_key().raw)
        .map_err(|_| ChainError::BadSignature(None))?;
    verify_sha256(
        &ca_key,
        leaf.tbs_certificate.as_ref(),
        &leaf.signature_value.data,
    )
    .map_err(|e| ChainError::BadSignature(Some(e)))
}

/// RFC 3339 UTC form of a Unix time (`2031-03-31T23:59:59Z`), for people and JSON.
pub fn rfc3339(unix: i64) -> String {
    let mykey_civil::DateTime {
        year,
        month,
        day,
        hour,
        minute,
        second,
    } = mykey_civil::DateTime::from_unix_secs(unix);
    format!("{year:04}-{month:02}-{day:02}T{hour:02}:{minute:02}:{second:02}Z")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cert_length_header() {
        let ok: &[(&[u8], usize)] = &[
            (&[0x30, 0x82, 0x05, 0xC0], 0x05C0 + 4),
            (&[0x30, 0x82, 0x00, 0x00], 4),
            (&[0x30, 0x82, 0x0F, 0xFC], MAX_CERT_BYTES),
        ];
        for (header, want) in ok {
            assert_eq!(cert_total_len(header), Ok(*want), "{header:02X?}");
        }
        assert_eq!(
            cert_total_len(&[0x30, 0x82, 0x0F, 0xFD]),
            Err(CertHeaderError::TooLarge {
                len: MAX_CERT_BYTES + 1,
                max: MAX_CERT_BYTES
            })
        );
        assert!(matches!(
            cert_total_len(&[0x30, 0x83, 0x01, 0x00]),
            Err(CertHeaderError::TooLarge { .. })
        ));
        for bad in [
            &[0x31, 0x82, 0x01, 0x00][..],
            &[0x30, 0x81, 0xF0, 0x00],
            &[0x30],
            &[],
        ] {
            assert!(
                matches!(cert_total_len(bad), Err(CertHeaderError::NotDer { .. })),
                "{bad:02X?}"
            );
        }
    }

    #[test]
    fn garbage_is_a_typed_parse_error() {
        let mut der = vec![0x30, 0x82, 0x00, 0x08];
        der.extend_from_slice(&[0x02, 0x01, 0x01, 0x02, 0x01, 0x01, 0x05, 0x00]);
        assert!(matches!(
            CardCert::from_der(der),
            Err(CertParseError::X509(_))
        ));
    }

    #[test]
    fn rfc3339_dates() {
        let cases = [
            (0, "1970-01-01T00:00:00Z"),
            (951_782_400, "2000-02-29T00:00:00Z"),
            (1_953_935_999, "2031-12-01T23:59:59Z"),
            (-1, "1969-12-31T23:59:59Z"),
        ];
        for (unix, want) in cases {
            assert_eq!(rfc3339(unix), want);
        }
    }
}
