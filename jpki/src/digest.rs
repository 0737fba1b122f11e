//! The SHA-256 DigestInfo a JPKI card signs and a PKCS#1 v1.5 signature covers.

use std::fmt;

/// DER prefix of a SHA-256 DigestInfo (RFC 8017 §9.2 note 1).
pub const SHA256_DIGEST_INFO_PREFIX: [u8; 19] = [
    0x30, 0x31, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x01, 0x05,
    0x00, 0x04, 0x20,
];

/// A SHA-256 DigestInfo: what the card's sign command takes, and what a
/// PKCS#1 v1.5 signature covers.
#[derive(Clone, PartialEq, Eq)]
pub struct DigestInfo([u8; 51]);

impl DigestInfo {
    /// The DigestInfo of a SHA-256 hash.
    pub fn sha256(hash: &[u8; 32]) -> Self {
        let mut bytes = [0u8; 51];
        bytes[..19].copy_from_slice(&SHA256_DIGEST_INFO_PREFIX);
        bytes[19..].copy_from_slice(hash);
        DigestInfo(bytes)
    }

    /// The DER bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }
}

impl fmt::Debug for DigestInfo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "DigestInfo({})", hex::encode(self.0))
    }
}
