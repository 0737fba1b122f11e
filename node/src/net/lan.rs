//! `/mykey/lan/1`: what nodes of one municipality tell each other on a LAN.
//!
//! A node offers its own signed transactions to each peer it is connected
//! to, from the first one the peer lacks; the peer verifies every signature,
//! checks each is signed by the key the transport authenticated (a node
//! offers only its own chain), stores them, and answers how far it now holds
//! the sender's chain. Stored peer transactions count as pending spends in
//! the receiver's balance view until the hub reports their signer's progress,
//! and a node with a hub link carries them to the hub (the hub deduplicates
//! by id; the signature proves origin, not the carrier).
//!
//! Messages are `version (u16, big-endian) || canonical(postcard)` in the
//! same length-prefixed frames as `/mykey/sync/1`, with the same bounds.

use libp2p::StreamProtocol;
use mykey_sync_proto::SignedTx;
use mykey_sync_proto::codec::{self, DecodeError};
use mykey_sync_proto::wire::MAX_MESSAGE_BYTES;
use serde::{Deserialize, Serialize};

/// The LAN protocol.
pub const LAN_PROTOCOL: StreamProtocol = StreamProtocol::new("/mykey/lan/1");
/// Its message version.
pub const LAN_VERSION: u16 = 1;
/// Upper bound of transactions in one offer.
pub const MAX_OFFER_TXS: usize = 500;

/// What a node sends a LAN peer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum LanRequest {
    /// Some of the sender's own transactions, in seq order (empty: only
    /// asking how far the peer holds the sender's chain).
    Offer {
        /// The transactions.
        txs: Vec<SignedTx>,
    },
}

/// The answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum LanResponse {
    /// The highest seq of the sender's chain the peer now holds without a
    /// gap (counting from what the hub has processed of it, as far as the
    /// peer knows).
    Ack {
        /// That seq.
        have_through: u64,
    },
    /// The offer was refused, for this reason.
    Refused(String),
}

/// A LAN message that could not be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LanWireError {
    /// Shorter than the version prefix.
    #[error("message is truncated ({0} bytes)")]
    Truncated(usize),
    /// Another version.
    #[error("LAN protocol version {got} is not supported (this build speaks {LAN_VERSION})")]
    Version {
        /// Received.
        got: u16,
    },
    /// The body did not decode.
    #[error(transparent)]
    Decode(#[from] DecodeError),
    /// Too many transactions.
    #[error("offer holds {0} transactions, above the limit of {MAX_OFFER_TXS}")]
    TooMany(usize),
}

fn encode<T: Serialize>(v: &T) -> Vec<u8> {
    let mut out = LAN_VERSION.to_be_bytes().to_vec();
    out.extend(codec::encode(v));
    out
}

fn decode<T: Serialize + serde::de::DeserializeOwned>(
    what: &'static str,
    bytes: &[u8],
) -> Result<T, LanWireError> {
    let (v, body) = bytes
        .split_first_chunk::<2>()
        .ok_or(LanWireError::Truncated(bytes.len()))?;
    let got = u16::from_be_bytes(*v);
    if got != LAN_VERSION {
        return Err(LanWireError::Version { got });
    }
    Ok(codec::decode_canonical(what, body, MAX_MESSAGE_BYTES)?)
}

impl LanRequest {
    /// Encodes with the version prefix.
    pub fn encode(&self) -> Vec<u8> {
        encode(self)
    }
    /// Decodes and checks bounds.
    pub fn decode(bytes: &[u8]) -> Result<LanRequest, LanWireError> {
        let r: LanRequest = decode("LAN request", bytes)?;
        match &r {
            LanRequest::Offer { txs } if txs.len() > MAX_OFFER_TXS => {
                Err(LanWireError::TooMany(txs.len()))
            }
            _ => Ok(r),
        }
    }
}

impl LanResponse {
    /// Encodes with the version prefix.
    pub fn encode(&self) -> Vec<u8> {
        encode(self)
    }
    /// Decodes.
    pub fn decode(bytes: &[u8]) -> Result<LanResponse, LanWireError> {
        decode("LAN response", bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_refusals() {
        let r = LanRequest::Offer { txs: vec![] };
        assert_eq!(LanRequest::decode(&r.encode()).unwrap(), r);
        let a = LanResponse::Ack { have_through: 7 };
        assert_eq!(LanResponse::decode(&a.encode()).unwrap(), a);
        let mut v2 = r.encode();
        v2[1] = 2;
        assert_eq!(
            LanRequest::decode(&v2),
            Err(LanWireError::Version { got: 2 })
        );
        assert_eq!(LanRequest::decode(&[1]), Err(LanWireError::Truncated(1)));
        assert!(LanRequest::decode(&[0, 1, 9, 9, 9]).is_err());
    }
}
