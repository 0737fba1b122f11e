//! Canonical encoding: postcard over the wire types, with a round-trip check
//! on decode so that exactly one byte string encodes each value. Signatures
//! and hashes are only ever computed over bytes this module produced or
//! accepted as canonical.

use serde::{Serialize, de::DeserializeOwned};

/// Bytes that did not decode to the expected type, or not canonically.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// The bytes were longer than the type allows.
    #[error("{what} is {len} bytes, above the limit of {max}")]
    TooLong {
        /// What was being decoded.
        what: &'static str,
        /// Bytes given.
        len: usize,
        /// Upper bound.
        max: usize,
    },
    /// The bytes were truncated or malformed.
    #[error("{what} is malformed: {source}")]
    Malformed {
        /// What was being decoded.
        what: &'static str,
        /// The decoder's complaint.
        #[source]
        source: postcard::Error,
    },
    /// The bytes decoded but are not the canonical encoding of what they hold
    /// (trailing bytes, over-long integers).
    #[error("{what} is not canonically encoded")]
    NotCanonical {
        /// What was being decoded.
        what: &'static str,
    },
    /// A field decoded but is not a valid value of its type.
    #[error("{what} holds an invalid value: {source}")]
    Invalid {
        /// What was being decoded.
        what: &'static str,
        /// Which validation failed.
        #[source]
        source: crate::IdError,
    },
}

/// Encodes a value. Encoding an in-memory value cannot fail for our types
/// (no maps with non-string keys, no unsized sequences), so a failure is a
/// programmer error.
pub fn encode<T: Serialize>(value: &T) -> Vec<u8> {
    #[allow(clippy::expect_used)]
    postcard::to_allocvec(value).expect("postcard encoding of a wire type cannot fail")
}

/// Decodes `bytes` as `T`, refusing anything over `max` bytes and anything
/// that does not re-encode to exactly the same bytes.
pub fn decode_canonical<T: Serialize + DeserializeOwned>(
    what: &'static str,
    bytes: &[u8],
    max: usize,
) -> Result<T, DecodeError> {
    if bytes.len() > max {
        return Err(DecodeError::TooLong {
            what,
            len: bytes.len(),
            max,
        });
    }
    let value: T =
        postcard::from_bytes(bytes).map_err(|source| DecodeError::Malformed { what, source })?;
    if encode(&value) != bytes {
        return Err(DecodeError::NotCanonical { what });
    }
    Ok(value)
}
