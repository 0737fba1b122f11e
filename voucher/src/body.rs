//! The voucher body, its canonical bytes, and its signature.
//!
//! A voucher is [`BODY_BYTES`] bytes of fixed-width big-endian fields and the
//! issuer's 64-byte ed25519 signature over `VOUCHER_DOMAIN || body`: 81
//! bytes, so its digits fit QR version 5 at level M. Fixed widths make the
//! encoding canonical by construction: each value has exactly one byte
//! string, and [`VoucherBody::from_bytes`] refuses any byte string that does
//! not decode to a valid value (an unknown version, a bad municipality code).
//!
//! Only [`SignedVoucher::verify`] makes a [`VerifiedVoucher`], so code that
//! redeems cannot skip the signature.

use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey};
use mykey_sync_proto::ids::{MunicipalityCode, Points, UnixMillis};
use std::fmt;

/// Domain separation: a voucher signature can never be replayed as a
/// transaction, a fact or anything else the hub key signs.
pub const VOUCHER_DOMAIN: &[u8] = b"mykey-edge/voucher/v1\0";
/// The body format this crate writes and reads.
pub const VERSION: u8 = 1;
/// Bytes of the body's fields.
pub const BODY_BYTES: usize = 17;
/// Bytes of a whole voucher: the body and its signature.
pub const VOUCHER_BYTES: usize = BODY_BYTES + 64;
/// Japan has one time zone; a voucher expires at the end of its date there.
const JST_OFFSET_SECS: i64 = 9 * 3600;

/// A voucher's serial: its batch and its index in the batch. Unique per
/// issuing hub, so the hub and nodes key redemptions by it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Serial {
    /// The batch the hub recorded.
    pub batch: u32,
    /// 1-based position in the batch.
    pub index: u16,
}

impl fmt::Display for Serial {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match crate::Issuer::of_batch(self.batch) {
            crate::Issuer::Hub => write!(f, "{}-{:05}", self.batch, self.index),
            // A kiosk's: its issuer number, its own batch.
            crate::Issuer::Node { issuer, batch } => {
                write!(f, "k{issuer}.{batch}-{:05}", self.index)
            }
        }
    }
}

/// A civil date (the voucher's last valid day, in Japan), as days since
/// 1970-01-01. Two bytes reach the year 2149.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ExpiryDate(u16);

impl ExpiryDate {
    /// From days since 1970-01-01.
    pub fn from_days(days: u16) -> ExpiryDate {
        ExpiryDate(days)
    }

    /// Parses `YYYY-MM-DD`.
    pub fn parse(text: &str) -> Result<ExpiryDate, DateError> {
        let bad = || DateError(text.to_owned());
        let t = text.trim();
        let mut parts = t.split('-');
        let (Some(y), Some(m), Some(d), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(bad());
        };
        if y.len() != 4 || m.len() != 2 || d.len() != 2 {
            return Err(bad());
        }
        let y: i64 = y.parse().map_err(|_| bad())?;
        let m: u32 = m.parse().map_err(|_| bad())?;
        let d: u32 = d.parse().map_err(|_| bad())?;
        if !(1..=12).contains(&m) || d == 0 || d > mykey_civil::days_in_month(y, m) {
            return Err(bad());
        }
        let days = mykey_civil::days_from_civil(y, m, d);
        u16::try_from(days).map(ExpiryDate).map_err(|_| bad())
    }

    /// Days since 1970-01-01.
    pub fn days(self) -> u16 {
        self.0
    }

    /// True once the date has passed in Japan.
    pub fn has_passed(self, now: UnixMillis) -> bool {
        let secs = i64::try_from(now.0 / 1000).unwrap_or(i64::MAX);
        let today = secs.saturating_add(JST_OFFSET_SECS).div_euclid(86_400);
        today > i64::from(self.0)
    }
}

impl fmt::Display for ExpiryDate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (y, m, d) = mykey_civil::civil_from_days(i64::from(self.0));
        write!(f, "{y:04}-{m:02}-{d:02}")
    }
}

/// A date that is not a valid `YYYY-MM-DD` between 1970 and 2149.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0:?} is not a date: write it as YYYY-MM-DD, between 1970-01-01 and 2149-06-06")]
pub struct DateError(pub String);

/// What a voucher says.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct VoucherBody {
    /// The first byte of the issuer's public key: tells which key to try
    /// when a hub has rotated its key (checked, not trusted).
    pub key_hint: u8,
    /// Whose points.
    pub municipality: MunicipalityCode,
    /// Batch and index.
    pub serial: Serial,
    /// Face value (at most `u32::MAX` points: no voucher is worth more).
    pub points: u32,
    /// The last day it can be redeemed.
    pub expires: ExpiryDate,
}

impl VoucherBody {
    /// The body's canonical bytes.
    pub fn to_bytes(&self) -> [u8; BODY_BYTES] {
        let mut out = [0u8; BODY_BYTES];
        out[0] = VERSION;
        out[1] = self.key_hint;
        out[2..5].copy_from_slice(&self.municipality.get().to_be_bytes()[1..]);
        out[5..9].copy_from_slice(&self.serial.batch.to_be_bytes());
        out[9..11].copy_from_slice(&self.serial.index.to_be_bytes());
        out[11..15].copy_from_slice(&self.points.to_be_bytes());
        out[15..17].copy_from_slice(&self.expires.0.to_be_bytes());
        out
    }

    /// Reads canonical bytes; refuses an unknown version or invalid field.
    pub fn from_bytes(b: &[u8; BODY_BYTES]) -> Result<VoucherBody, BodyError> {
        if b[0] != VERSION {
            return Err(BodyError::Version(b[0]));
        }
        let muni = u32::from_be_bytes([0, b[2], b[3], b[4]]);
        let municipality =
            MunicipalityCode::try_from(muni).map_err(|_| BodyError::Municipality(muni))?;
        let index = u16::from_be_bytes([b[9], b[10]]);
        if index == 0 {
            return Err(BodyError::Index);
        }
        let points = u32::from_be_bytes([b[11], b[12], b[13], b[14]]);
        if points == 0 {
            return Err(BodyError::Points);
        }
        Ok(VoucherBody {
            key_hint: b[1],
            municipality,
            serial: Serial {
                batch: u32::from_be_bytes([b[5], b[6], b[7], b[8]]),
                index,
            },
            points,
            expires: ExpiryDate(u16::from_be_bytes([b[15], b[16]])),
        })
    }

    /// The face value as the ledger's amount type.
    pub fn points(&self) -> Points {
        // u32 is far below Points::MAX.
        Points::new(u64::from(self.points)).unwrap_or(Points::ZERO)
    }

    /// Signs with the issuer's key (whose first byte becomes the key hint).
    pub fn sign(mut self, key: &SigningKey) -> SignedVoucher {
        self.key_hint = key.verifying_key().to_bytes()[0];
        let signature = key.sign(&signed_bytes(&self)).to_bytes();
        SignedVoucher {
            body: self,
            signature,
        }
    }
}

fn signed_bytes(body: &VoucherBody) -> Vec<u8> {
    let mut m = Vec::with_capacity(VOUCHER_DOMAIN.len() + BODY_BYTES);
    m.extend_from_slice(VOUCHER_DOMAIN);
    m.extend_from_slice(&body.to_bytes());
    m
}

/// A body whose bytes are not a voucher this version reads.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BodyError {
    /// The first byte names a format this build does not read.
    #[error("voucher format {0} is not one this node reads (it reads format 1): update mykey-node")]
    Version(u8),
    /// The municipality field is not a valid code.
    #[error("the voucher's municipality {0:06} is not a valid code")]
    Municipality(u32),
    /// Index 0 is never issued.
    #[error("the voucher's index is 0, which is never issued")]
    Index,
    /// A zero-point voucher is never issued.
    #[error("the voucher is worth 0 points, which is never issued")]
    Points,
}

/// A voucher as read: a body and a signature not yet checked.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct SignedVoucher {
    /// What it says.
    pub body: VoucherBody,
    /// The issuer's ed25519 signature over `VOUCHER_DOMAIN || body`.
    pub signature: [u8; 64],
}

impl SignedVoucher {
    /// The whole voucher's bytes.
    pub fn to_bytes(&self) -> [u8; VOUCHER_BYTES] {
        let mut out = [0u8; VOUCHER_BYTES];
        out[..BODY_BYTES].copy_from_slice(&self.body.to_bytes());
        out[BODY_BYTES..].copy_from_slice(&self.signature);
        out
    }

    /// Reads a whole voucher's bytes (the signature is not checked).
    pub fn from_bytes(b: &[u8; VOUCHER_BYTES]) -> Result<SignedVoucher, BodyError> {
        let mut body = [0u8; BODY_BYTES];
        body.copy_from_slice(&b[..BODY_BYTES]);
        let mut signature = [0u8; 64];
        signature.copy_from_slice(&b[BODY_BYTES..]);
        Ok(SignedVoucher {
            body: VoucherBody::from_bytes(&body)?,
            signature,
        })
    }

    /// Checks the signature against the issuer's key. The only way to a
    /// [`VerifiedVoucher`].
    pub fn verify(&self, issuer: &VerifyingKey) -> Result<VerifiedVoucher, VerifyError> {
        if issuer.to_bytes()[0] != self.body.key_hint {
            return Err(VerifyError::OtherIssuer);
        }
        issuer
            .verify_strict(
                &signed_bytes(&self.body),
                &Signature::from_bytes(&self.signature),
            )
            .map_err(|_| VerifyError::Signature)?;
        Ok(VerifiedVoucher(self.clone()))
    }
}

/// A voucher whose signature failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VerifyError {
    /// The key hint names another key than this hub's.
    #[error(
        "this voucher was not issued by this node's hub (another key signed it): refuse it and ask the holder where it came from"
    )]
    OtherIssuer,
    /// The signature does not match the body.
    #[error(
        "the voucher's signature does not match what it says: it was altered or forged; refuse it"
    )]
    Signature,
}

/// A voucher whose signature the issuer's key verified.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct VerifiedVoucher(SignedVoucher);

impl VerifiedVoucher {
    /// What it says.
    pub fn body(&self) -> &VoucherBody {
        &self.0.body
    }
    /// The signed voucher, to carry as evidence.
    pub fn signed(&self) -> &SignedVoucher {
        &self.0
    }
}

impl fmt::Display for VerifiedVoucher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let b = self.body();
        write!(
            f,
            "voucher {} of {}: {} pt, valid through {}",
            b.serial, b.municipality, b.points, b.expires
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) fn sample() -> VoucherBody {
        VoucherBody {
            key_hint: 0,
            municipality: MunicipalityCode::parse("131059").unwrap(),
            serial: Serial { batch: 7, index: 3 },
            points: 500,
            expires: ExpiryDate::parse("2027-03-31").unwrap(),
        }
    }

    #[test]
    fn round_trip_and_verify() {
        let k = SigningKey::from_bytes(&[5; 32]);
        let v = sample().sign(&k);
        let back = SignedVoucher::from_bytes(&v.to_bytes()).unwrap();
        assert_eq!(back, v);
        assert_eq!(back.verify(&k.verifying_key()).unwrap().body(), &v.body);
    }

    #[test]
    fn any_flipped_bit_is_refused() {
        let k = SigningKey::from_bytes(&[5; 32]);
        let bytes = sample().sign(&k).to_bytes();
        for i in 0..VOUCHER_BYTES * 8 {
            let mut b = bytes;
            b[i / 8] ^= 1 << (i % 8);
            if let Ok(v) = SignedVoucher::from_bytes(&b) {
                assert!(v.verify(&k.verifying_key()).is_err(), "bit {i}");
            }
        }
    }

    #[test]
    fn another_key_is_refused() {
        let v = sample().sign(&SigningKey::from_bytes(&[5; 32]));
        let other = SigningKey::from_bytes(&[6; 32]).verifying_key();
        assert!(v.verify(&other).is_err());
    }

    #[test]
    fn dates() {
        let d = ExpiryDate::parse("2027-03-31").unwrap();
        assert_eq!(d.to_string(), "2027-03-31");
        for bad in [
            "2027-02-29",
            "2027-13-01",
            "27-03-31",
            "2027/03/31",
            "1969-12-31",
            "",
        ] {
            assert!(ExpiryDate::parse(bad).is_err(), "{bad}");
        }
        // 2027-03-31 23:59 JST is 14:59 UTC: still valid; 15:00 UTC is the next day.
        let end = (i64::from(d.days()) * 86_400 + 15 * 3600) as u64 * 1000;
        assert!(!d.has_passed(UnixMillis(end - 1000)));
        assert!(d.has_passed(UnixMillis(end)));
    }
}
