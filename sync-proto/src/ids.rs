//! Validating newtypes for every identifier and amount in the system.
//!
//! Each type checks its input in its constructor (`parse`/`new`), so a value
//! that exists is valid. Display forms are what operators see; `short()` forms
//! are what logs see.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::fmt;

/// An identifier or amount that failed validation.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdError {
    /// The card key's issuer was empty or too long.
    #[error("card issuer must be 1..={max} bytes of DER, got {len}")]
    CardIssuerLength {
        /// Bytes given.
        len: usize,
        /// Upper bound.
        max: usize,
    },
    /// The card key's serial was empty or too long.
    #[error("card serial must be 1..={max} bytes, got {len}")]
    CardSerialLength {
        /// Bytes given.
        len: usize,
        /// Upper bound.
        max: usize,
    },
    /// A card key in text form was not `ISSUER_HEX:SERIAL_HEX`.
    #[error("card key must be written ISSUER_HEX:SERIAL_HEX (both hexadecimal), got {0:?}")]
    CardKeyText(String),
    /// A My Key ID had a bad length or character.
    #[error("My Key ID must be 3 to 32 ASCII letters and digits, got {0:?}")]
    MyKeyId(String),
    /// A municipality code was not six digits.
    #[error("municipality code must be 6 digits, got {0:?}")]
    MunicipalityFormat(String),
    /// A municipality code's check digit did not match.
    #[error("municipality code {code} has check digit {got}, expected {expected}")]
    MunicipalityCheckDigit {
        /// The code as given.
        code: String,
        /// Its last digit.
        got: u32,
        /// The digit the first five imply.
        expected: u32,
    },
    /// A slug-like id (facility, programme) had a bad length or character.
    #[error("{kind} must be 1 to 32 characters of a-z, 0-9 and '-', got {value:?}")]
    Slug {
        /// Which kind of id.
        kind: &'static str,
        /// The value given.
        value: String,
    },
    /// A facility card number had a bad length or character.
    #[error("facility card number must be 1 to 32 ASCII letters, digits or '-', got {0:?}")]
    FacilityCardNumber(String),
    /// A hex string did not decode to the expected number of bytes.
    #[error("{kind} must be {len} bytes of hex, got {value:?}")]
    Hex {
        /// Which kind of id.
        kind: &'static str,
        /// Expected length in bytes.
        len: usize,
        /// The value given.
        value: String,
    },
    /// A node id was not a valid ed25519 public key.
    #[error("node id is not a valid ed25519 public key")]
    NodeKey,
    /// A points amount was not a whole non-negative number.
    #[error("points must be a whole number from 0 to {max}, got {value:?}")]
    Points {
        /// Upper bound.
        max: u64,
        /// The value given.
        value: String,
    },
    /// An account id was zero or not a number.
    #[error("account id must be a positive whole number, got {0:?}")]
    Account(String),
}

fn short_hash(parts: &[&[u8]]) -> String {
    let mut h = Sha256::new();
    for p in parts {
        h.update((p.len() as u32).to_be_bytes());
        h.update(p);
    }
    hex::encode(&h.finalize()[..4])
}

/// Identifies a My Number card: the (issuer, serial) of its JPKI
/// user-authentication certificate. Two CA generations exist, so the issuer is
/// part of the key. The serial is public data: a card key identifies, it does
/// not prove.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "CardKeyRaw")]
pub struct CardKey {
    #[serde(with = "serde_bytes")]
    issuer: Vec<u8>,
    #[serde(with = "serde_bytes")]
    serial: Vec<u8>,
}

#[derive(Deserialize)]
struct CardKeyRaw {
    #[serde(with = "serde_bytes")]
    issuer: Vec<u8>,
    #[serde(with = "serde_bytes")]
    serial: Vec<u8>,
}

impl TryFrom<CardKeyRaw> for CardKey {
    type Error = IdError;
    fn try_from(raw: CardKeyRaw) -> Result<Self, IdError> {
        CardKey::new(raw.issuer, raw.serial)
    }
}

impl CardKey {
    /// Longest accepted DER issuer name.
    pub const MAX_ISSUER_BYTES: usize = 512;
    /// X.509 serials are at most 20 bytes (RFC 5280 §4.1.2.2).
    pub const MAX_SERIAL_BYTES: usize = 20;

    /// A card key from the certificate's DER-encoded issuer name and serial bytes.
    pub fn new(issuer_der: Vec<u8>, serial: Vec<u8>) -> Result<Self, IdError> {
        if issuer_der.is_empty() || issuer_der.len() > Self::MAX_ISSUER_BYTES {
            return Err(IdError::CardIssuerLength {
                len: issuer_der.len(),
                max: Self::MAX_ISSUER_BYTES,
            });
        }
        if serial.is_empty() || serial.len() > Self::MAX_SERIAL_BYTES {
            return Err(IdError::CardSerialLength {
                len: serial.len(),
                max: Self::MAX_SERIAL_BYTES,
            });
        }
        Ok(CardKey {
            issuer: issuer_der,
            serial,
        })
    }

    /// Parses the text form `ISSUER_HEX:SERIAL_HEX` (as `Display` prints it).
    /// The serial may be written as openssl prints one: upper or lower case,
    /// bytes separated by colons or spaces, an odd number of digits. Its
    /// bytes are kept as written; [`CardKey::canonical`] and
    /// [`CardKey::same_card`] compare serials as the numbers they are.
    pub fn parse(text: &str) -> Result<Self, IdError> {
        let bad = || IdError::CardKeyText(text.to_owned());
        let (i, s) = text.trim().split_once(':').ok_or_else(bad)?;
        let issuer = hex::decode(i.trim()).map_err(|_| bad())?;
        let mut digits: String = s
            .chars()
            .filter(|c| !matches!(c, ':' | ' ' | '\t'))
            .collect();
        if digits.len() % 2 == 1 {
            digits.insert(0, '0');
        }
        let serial = hex::decode(&digits).map_err(|_| bad())?;
        CardKey::new(issuer, serial)
    }

    /// The key with its serial in DER's one form of a positive integer:
    /// no leading zero byte, except one before a first byte of 0x80 or more
    /// (what a certificate holds, and `mykey-node card read` prints).
    pub fn canonical(&self) -> CardKey {
        let first = self
            .serial
            .iter()
            .position(|b| *b != 0)
            .unwrap_or(self.serial.len().saturating_sub(1));
        let mut serial = self.serial[first..].to_vec();
        if serial.first().is_some_and(|b| *b >= 0x80) && serial.len() < Self::MAX_SERIAL_BYTES {
            serial.insert(0, 0);
        }
        CardKey {
            issuer: self.issuer.clone(),
            serial,
        }
    }

    /// Whether both keys name one card: the same issuer and the same serial
    /// number, however many leading zero bytes either was written with.
    pub fn same_card(&self, other: &CardKey) -> bool {
        fn number(s: &[u8]) -> &[u8] {
            let first = s.iter().position(|b| *b != 0).unwrap_or(s.len());
            &s[first..]
        }
        self.issuer == other.issuer && number(&self.serial) == number(&other.serial)
    }

    /// Every spelling of this card's key that differs only in leading zero
    /// bytes of the serial (at most [`CardKey::MAX_SERIAL_BYTES`]), shortest first.
    pub fn spellings(&self) -> Vec<CardKey> {
        let first = self
            .serial
            .iter()
            .position(|b| *b != 0)
            .unwrap_or(self.serial.len().saturating_sub(1));
        let number = &self.serial[first..];
        (0..=Self::MAX_SERIAL_BYTES.saturating_sub(number.len()))
            .map(|zeros| {
                let mut serial = vec![0; zeros];
                serial.extend_from_slice(number);
                CardKey {
                    issuer: self.issuer.clone(),
                    serial,
                }
            })
            .collect()
    }

    /// The DER-encoded issuer name.
    pub fn issuer_der(&self) -> &[u8] {
        &self.issuer
    }

    /// The certificate serial number bytes (big-endian, as in the certificate).
    pub fn serial(&self) -> &[u8] {
        &self.serial
    }

    /// Eight hex digits of a hash: the only form of a card key that may appear in logs.
    pub fn short(&self) -> String {
        short_hash(&[&self.issuer, &self.serial])
    }
}

impl fmt::Display for CardKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}:{}",
            hex::encode(&self.issuer),
            hex::encode(&self.serial)
        )
    }
}

impl fmt::Debug for CardKey {
    // Debug output ends up in logs: keep it to the short hash.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "CardKey({})", self.short())
    }
}

/// The hub's immutable internal id of a card holder.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "u64")]
pub struct AccountId(u64);

impl TryFrom<u64> for AccountId {
    type Error = IdError;
    fn try_from(raw: u64) -> Result<Self, IdError> {
        AccountId::new(raw)
    }
}

impl AccountId {
    /// An account id; zero is reserved.
    pub fn new(raw: u64) -> Result<Self, IdError> {
        if raw == 0 {
            return Err(IdError::Account("0".into()));
        }
        Ok(AccountId(raw))
    }
    /// Parses a decimal account id.
    pub fn parse(text: &str) -> Result<Self, IdError> {
        let raw: u64 = text
            .trim()
            .parse()
            .map_err(|_| IdError::Account(text.to_owned()))?;
        AccountId::new(raw).map_err(|_| IdError::Account(text.to_owned()))
    }
    /// The raw number.
    pub fn get(self) -> u64 {
        self.0
    }
}

impl fmt::Display for AccountId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "A{}", self.0)
    }
}
impl fmt::Debug for AccountId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// The holder's chosen alias: 3 to 32 ASCII letters and digits. Holders see it
/// as typed; uniqueness is case-insensitive, through [`MyKeyId::normalized`].
#[derive(Clone, Serialize, Deserialize)]
#[serde(try_from = "String")]
pub struct MyKeyId(String);

impl TryFrom<String> for MyKeyId {
    type Error = IdError;
    fn try_from(raw: String) -> Result<Self, IdError> {
        MyKeyId::parse(&raw)
    }
}

impl MyKeyId {
    /// Validates an alias.
    pub fn parse(text: &str) -> Result<Self, IdError> {
        let ok = (3..=32).contains(&text.len()) && text.bytes().all(|b| b.is_ascii_alphanumeric());
        if !ok {
            return Err(IdError::MyKeyId(text.to_owned()));
        }
        Ok(MyKeyId(text.to_owned()))
    }
    /// The alias as the holder typed it.
    pub fn as_str(&self) -> &str {
        &self.0
    }
    /// The form uniqueness is checked on.
    pub fn normalized(&self) -> String {
        self.0.to_ascii_lowercase()
    }
}

impl PartialEq for MyKeyId {
    fn eq(&self, other: &Self) -> bool {
        self.0.eq_ignore_ascii_case(&other.0)
    }
}
impl Eq for MyKeyId {}
impl std::hash::Hash for MyKeyId {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.normalized().hash(state)
    }
}
impl fmt::Display for MyKeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}
impl fmt::Debug for MyKeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "MyKeyId({})", self.0)
    }
}

/// A 6-digit Japanese local government code whose last digit is the check
/// digit (weights 6,5,4,3,2 over the first five, mod 11).
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "u32")]
pub struct MunicipalityCode(u32);

impl TryFrom<u32> for MunicipalityCode {
    type Error = IdError;
    fn try_from(raw: u32) -> Result<Self, IdError> {
        MunicipalityCode::parse(&format!("{raw:06}"))
    }
}

impl MunicipalityCode {
    /// Validates format and check digit.
    pub fn parse(text: &str) -> Result<Self, IdError> {
        let t = text.trim();
        if t.len() != 6 || !t.bytes().all(|b| b.is_ascii_digit()) {
            return Err(IdError::MunicipalityFormat(text.to_owned()));
        }
        let d: Vec<u32> = t.bytes().map(|b| u32::from(b - b'0')).collect();
        let expected = Self::check_digit([d[0], d[1], d[2], d[3], d[4]]);
        if d[5] != expected {
            return Err(IdError::MunicipalityCheckDigit {
                code: t.to_owned(),
                got: d[5],
                expected,
            });
        }
        Ok(MunicipalityCode(d.iter().fold(0, |acc, x| acc * 10 + x)))
    }

    /// The check digit for the first five digits.
    pub fn check_digit(first5: [u32; 5]) -> u32 {
        let sum: u32 = first5.iter().zip([6, 5, 4, 3, 2]).map(|(d, w)| d * w).sum();
        let r = sum % 11;
        // The ones digit of 11 - r: remainder 1 gives 0, remainder 0 gives 1.
        (11 - r) % 10
    }

    /// The code as a number.
    pub fn get(self) -> u32 {
        self.0
    }
}

impl fmt::Display for MunicipalityCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:06}", self.0)
    }
}
impl fmt::Debug for MunicipalityCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Muni({:06})", self.0)
    }
}

fn valid_slug(text: &str) -> bool {
    (1..=32).contains(&text.len())
        && text
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !text.starts_with('-')
}

macro_rules! slug_id {
    ($(#[$doc:meta])* $name:ident, $kind:literal) => {
        $(#[$doc])*
        #[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
        #[serde(try_from = "String")]
        pub struct $name(String);

        impl TryFrom<String> for $name {
            type Error = IdError;
            fn try_from(raw: String) -> Result<Self, IdError> {
                $name::parse(&raw)
            }
        }

        impl $name {
            /// Validates the id: 1 to 32 characters of a-z, 0-9 and '-'.
            pub fn parse(text: &str) -> Result<Self, IdError> {
                if !valid_slug(text) {
                    return Err(IdError::Slug { kind: $kind, value: text.to_owned() });
                }
                Ok($name(text.to_owned()))
            }
            /// The id as text.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }
        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}({})", stringify!($name), self.0)
            }
        }
    };
}

slug_id!(
    /// A facility (library, museum, shop, stall) enrolled at the hub. Merchants are facilities.
    FacilityId,
    "facility id"
);
slug_id!(
    /// A municipal grant programme (volunteer, health, child care …).
    ProgramId,
    "programme id"
);
slug_id!(
    /// A group of nodes that may trust each other on a LAN (a festival's
    /// stalls), named by the hub's roster.
    LanGroup,
    "LAN group"
);
slug_id!(
    /// A national point operator (card company, airline, carrier) as a
    /// holder's history names it: the hub's exchange operator id.
    PointOperator,
    "point operator"
);

/// A facility card number (a library card number, a point card number).
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String")]
pub struct FacilityCardNumber(String);

impl TryFrom<String> for FacilityCardNumber {
    type Error = IdError;
    fn try_from(raw: String) -> Result<Self, IdError> {
        FacilityCardNumber::parse(&raw)
    }
}

impl FacilityCardNumber {
    /// Validates: 1 to 32 ASCII letters, digits or '-'.
    pub fn parse(text: &str) -> Result<Self, IdError> {
        let ok = (1..=32).contains(&text.len())
            && text.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-');
        if !ok {
            return Err(IdError::FacilityCardNumber(text.to_owned()));
        }
        Ok(FacilityCardNumber(text.to_owned()))
    }
    /// The number as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}
impl fmt::Display for FacilityCardNumber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}
impl fmt::Debug for FacilityCardNumber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "FacilityCardNumber({})", self.0)
    }
}

/// A node's identity: its ed25519 public key. The libp2p peer id is derived
/// from the same key.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "[u8; 32]")]
pub struct NodeId([u8; 32]);

impl TryFrom<[u8; 32]> for NodeId {
    type Error = IdError;
    fn try_from(raw: [u8; 32]) -> Result<Self, IdError> {
        NodeId::from_bytes(raw)
    }
}

impl NodeId {
    /// A node id from public key bytes; rejects bytes that are not a curve point.
    pub fn from_bytes(bytes: [u8; 32]) -> Result<Self, IdError> {
        ed25519_dalek::VerifyingKey::from_bytes(&bytes).map_err(|_| IdError::NodeKey)?;
        Ok(NodeId(bytes))
    }
    /// Parses 64 hex digits.
    pub fn parse(text: &str) -> Result<Self, IdError> {
        NodeId::from_bytes(parse_hex32(text, "node id")?)
    }
    /// The public key bytes.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }
    /// The verifying key.
    pub fn verifying_key(&self) -> Result<ed25519_dalek::VerifyingKey, IdError> {
        ed25519_dalek::VerifyingKey::from_bytes(&self.0).map_err(|_| IdError::NodeKey)
    }
    /// Eight hex digits for logs and tables.
    pub fn short(&self) -> String {
        hex::encode(&self.0[..4])
    }
}
impl fmt::Display for NodeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&hex::encode(self.0))
    }
}
impl fmt::Debug for NodeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "NodeId({})", self.short())
    }
}

fn parse_hex32(text: &str, kind: &'static str) -> Result<[u8; 32], IdError> {
    let err = || IdError::Hex {
        kind,
        len: 32,
        value: text.to_owned(),
    };
    let v = hex::decode(text.trim()).map_err(|_| err())?;
    v.try_into().map_err(|_| err())
}

/// The id of a signed transaction or fact: SHA-256 of its canonical signed bytes.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, Default)]
pub struct TxId([u8; 32]);

impl TxId {
    /// The "no previous transaction" value that the first transaction of a chain points to.
    pub const GENESIS: TxId = TxId([0; 32]);
    /// Wraps hash bytes.
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        TxId(bytes)
    }
    /// Parses 64 hex digits.
    pub fn parse(text: &str) -> Result<Self, IdError> {
        parse_hex32(text, "transaction id").map(TxId)
    }
    /// The hash bytes.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }
    /// Eight hex digits for logs.
    pub fn short(&self) -> String {
        hex::encode(&self.0[..4])
    }
    /// SHA-256 of the given bytes.
    pub fn hash_of(bytes: &[u8]) -> Self {
        TxId(Sha256::digest(bytes).into())
    }
}
impl fmt::Display for TxId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&hex::encode(self.0))
    }
}
impl fmt::Debug for TxId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "TxId({})", self.short())
    }
}

/// An amount of points (1 point = 1 yen). Never negative; arithmetic is checked.
#[derive(
    Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, Default, Debug,
)]
#[serde(try_from = "u64")]
pub struct Points(u64);

impl TryFrom<u64> for Points {
    type Error = IdError;
    fn try_from(raw: u64) -> Result<Self, IdError> {
        Points::new(raw)
    }
}

impl Points {
    /// The largest amount any single value may hold (a trillion points): far
    /// above any real balance, far below `i64::MAX`, so sums of many amounts
    /// and conversions to SQLite's signed integers never overflow.
    pub const MAX: u64 = 1_000_000_000_000;
    /// No points.
    pub const ZERO: Points = Points(0);

    /// An amount; rejects values above [`Points::MAX`].
    pub fn new(raw: u64) -> Result<Self, IdError> {
        if raw > Self::MAX {
            return Err(IdError::Points {
                max: Self::MAX,
                value: raw.to_string(),
            });
        }
        Ok(Points(raw))
    }
    /// Parses a whole decimal amount.
    pub fn parse(text: &str) -> Result<Self, IdError> {
        let bad = || IdError::Points {
            max: Self::MAX,
            value: text.to_owned(),
        };
        let raw: u64 = text.trim().parse().map_err(|_| bad())?;
        Points::new(raw).map_err(|_| bad())
    }
    /// The raw amount.
    pub fn get(self) -> u64 {
        self.0
    }
    /// Sum, or `None` past [`Points::MAX`].
    pub fn checked_add(self, other: Points) -> Option<Points> {
        self.0
            .checked_add(other.0)
            .filter(|v| *v <= Self::MAX)
            .map(Points)
    }
    /// Difference, or `None` below zero.
    pub fn checked_sub(self, other: Points) -> Option<Points> {
        self.0.checked_sub(other.0).map(Points)
    }
    /// Difference, floored at zero.
    pub fn saturating_sub(self, other: Points) -> Points {
        Points(self.0.saturating_sub(other.0))
    }
    /// True for zero.
    pub fn is_zero(self) -> bool {
        self.0 == 0
    }
}
impl fmt::Display for Points {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} pt", self.0)
    }
}

/// Milliseconds since the Unix epoch. Time always comes from outside the
/// deciding code (a real clock in the binaries, a virtual one in tests).
#[derive(
    Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, Default, Debug,
)]
pub struct UnixMillis(pub u64);

impl UnixMillis {
    /// `self + ms`, saturating.
    pub fn plus_ms(self, ms: u64) -> UnixMillis {
        UnixMillis(self.0.saturating_add(ms))
    }
    /// Milliseconds from `earlier` to `self`, zero if `earlier` is later.
    pub fn since(self, earlier: UnixMillis) -> u64 {
        self.0.saturating_sub(earlier.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn municipality_check_digits() {
        let cases = [
            ("131059", true), // Bunkyo-ku, the worked example in DESIGN §4
            ("131058", false),
            ("011002", true), // Sapporo
            ("131016", true), // Chiyoda-ku
            ("13105", false),
            ("13105a", false),
            ("1310590", false),
        ];
        for (code, ok) in cases {
            assert_eq!(MunicipalityCode::parse(code).is_ok(), ok, "{code}");
        }
        assert_eq!(MunicipalityCode::check_digit([1, 3, 1, 0, 5]), 9);
        assert_eq!(
            MunicipalityCode::parse("131059").unwrap().to_string(),
            "131059"
        );
    }

    #[test]
    fn my_key_id_is_case_insensitive_for_uniqueness() {
        let a = MyKeyId::parse("Hanako2024").unwrap();
        let b = MyKeyId::parse("hanako2024").unwrap();
        assert_eq!(a, b);
        assert_eq!(a.as_str(), "Hanako2024");
        for bad in ["", "ab", "has space", "ハナコ", &"x".repeat(33), "a-b"] {
            assert!(MyKeyId::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn points_are_checked() {
        let p = Points::new(10).unwrap();
        assert_eq!(p.checked_sub(Points::new(11).unwrap()), None);
        assert_eq!(Points::new(Points::MAX).unwrap().checked_add(p), None);
        assert!(Points::new(Points::MAX + 1).is_err());
        assert!(Points::parse("-5").is_err());
        assert!(Points::parse("1.5").is_err());
        assert_eq!(Points::parse("500").unwrap().get(), 500);
    }

    #[test]
    fn card_key_text_round_trip_and_short_form() {
        let k = CardKey::new(vec![0x30, 0x0b, 0x31], vec![0x01, 0x02]).unwrap();
        let text = k.to_string();
        assert_eq!(text, "300b31:0102");
        assert_eq!(CardKey::parse(&text).unwrap(), k);
        assert_eq!(k.short().len(), 8);
        assert!(!format!("{k:?}").contains("0102"));
        assert!(CardKey::new(vec![], vec![1]).is_err());
        assert!(CardKey::new(vec![1], vec![0; 21]).is_err());
        assert!(CardKey::parse("zz:01").is_err());
    }

    #[test]
    fn card_serials_as_openssl_writes_them_name_the_same_card() {
        // As a certificate holds it: a zero byte before a high first byte.
        let der = CardKey::parse("300b31:00a1b2c3").unwrap();
        for text in [
            "300b31:A1B2C3",
            "300b31:a1:b2:c3",
            "300b31:00:A1:B2:C3",
            " 300b31:a1 b2 c3 ",
            "300b31:0000a1b2c3",
        ] {
            let k = CardKey::parse(text).unwrap();
            assert!(k.same_card(&der), "{text}");
            assert_eq!(k.canonical(), der, "{text}");
            assert!(k.spellings().contains(&der), "{text}");
        }
        let low = CardKey::parse("300b31:0102").unwrap();
        assert_eq!(low.canonical(), low);
        assert_eq!(CardKey::parse("300b31:102").unwrap(), low);
        assert!(!low.same_card(&der));
        assert!(!CardKey::parse("300b32:00a1b2c3").unwrap().same_card(&der));
        assert_eq!(
            CardKey::parse("300b31:00").unwrap().canonical().serial(),
            &[0]
        );
        assert_eq!(low.spellings().len(), CardKey::MAX_SERIAL_BYTES - 1);
    }

    #[test]
    fn slugs() {
        assert!(FacilityId::parse("bunkyo-lib-1").is_ok());
        for bad in ["", "Upper", "-x", "a b", &"a".repeat(33)] {
            assert!(FacilityId::parse(bad).is_err(), "{bad}");
        }
    }
}
