//! A facility's answer to a holder's kiosk link request (issue 19 part 3).
//!
//! A holder asks at a kiosk to link a facility card number (a library card)
//! to their account ([`crate::holder::HolderAction::LinkFacilityCard`]).
//! Where the facility's policy at the hub is `confirm`, the hub keeps the
//! request pending ([`crate::holder::HolderDone::LinkRequested`]) and the
//! facility's own nodes list, confirm or refuse it. They ask online, through
//! the running node's link ([`crate::holder::HolderRequest::LinkRequests`]):
//! pending requests are few, short-lived and answered at a staffed counter,
//! so a fact per request to every node of the facility would add state to
//! each node's store for what one person reads once.
//!
//! Each ask is signed with the node's key ([`SignedLinkRequestAsk`]), over
//! its own domain and the node's clock, on top of the transport's
//! authentication: the node's local HTTP route that carries holder requests
//! needs no login (a holder's request is proved by the card), so what a
//! facility decides must carry the node's own signature. The hub accepts an
//! ask only when it names the carrying node, its signature verifies with
//! that node's key, its clock is within [`LINK_ASK_TTL_MS`] of the hub's,
//! and the node is enrolled, unrevoked and of the request's facility.
//! A replayed ask changes nothing: an answered request stays answered.

use crate::codec;
use crate::ids::{AccountId, CardKey, FacilityCardNumber, FacilityId, NodeId, UnixMillis};
use crate::tx::signing_input;
use ed25519_dalek::{Signature, Signer, SigningKey, Verifier};
use serde::{Deserialize, Serialize};

/// Domain of a node's signature over a [`LinkRequestAsk`].
pub const LINK_ASK_DOMAIN: &[u8] = b"mykey-edge/link-request-ask/v1\0";
/// How far an ask's clock may be from the hub's, either way.
pub const LINK_ASK_TTL_MS: u64 = 120_000;
/// How long a pending link request waits for the facility: 14 days, then
/// it expires and changes nothing (the holder asks again).
pub const LINK_REQUEST_TTL_MS: u64 = 14 * 24 * 3_600_000;
/// Upper bound of requests in one listing (oldest first).
pub const MAX_LINK_REQUESTS_LISTED: usize = 200;
/// Upper bound of one account's pending requests.
pub const MAX_PENDING_LINK_REQUESTS_PER_ACCOUNT: u64 = 8;

/// What a facility's node asks about its pending link requests.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub enum LinkRequestWhat {
    /// The facility's pending requests, oldest first.
    List,
    /// Link the request's number to the request's account.
    Confirm {
        /// The request's id.
        id: u64,
    },
    /// Close the request with nothing linked.
    Refuse {
        /// The request's id.
        id: u64,
    },
}

/// A facility node's ask, signed with its key.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LinkRequestAsk {
    /// The asking node (the hub refuses the ask from any other peer).
    pub node: NodeId,
    /// The node's clock when it signed.
    pub signed_at: UnixMillis,
    /// What it asks.
    pub what: LinkRequestWhat,
}

/// A [`LinkRequestAsk`] with the node's signature.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SignedLinkRequestAsk {
    /// The ask.
    pub ask: LinkRequestAsk,
    /// The node's ed25519 signature over `LINK_ASK_DOMAIN || canonical(ask)`.
    #[serde(with = "serde_bytes")]
    pub signature: [u8; 64],
}

/// Why an ask's signature was not accepted.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum AskError {
    /// Not signed by the node it names.
    #[error("not signed by the node it names")]
    BadSignature,
    /// Made by another node than the one that carried it.
    #[error("carried by another node")]
    Elsewhere,
    /// Its clock is more than [`LINK_ASK_TTL_MS`] from the hub's.
    #[error("its clock is too far from the hub's")]
    Stale,
}

impl SignedLinkRequestAsk {
    /// Signs `ask` with the node's key.
    pub fn sign(ask: LinkRequestAsk, node_key: &SigningKey) -> Self {
        let bytes = codec::encode(&ask);
        let signature = node_key
            .sign(&signing_input(LINK_ASK_DOMAIN, &bytes))
            .to_bytes();
        SignedLinkRequestAsk { ask, signature }
    }

    /// Checks that `carrier` made and signed it, within [`LINK_ASK_TTL_MS`]
    /// of `now` (the hub's clock).
    pub fn check(&self, carrier: &NodeId, now: UnixMillis) -> Result<&LinkRequestWhat, AskError> {
        if &self.ask.node != carrier {
            return Err(AskError::Elsewhere);
        }
        let key = carrier
            .verifying_key()
            .map_err(|_| AskError::BadSignature)?;
        let bytes = codec::encode(&self.ask);
        key.verify(
            &signing_input(LINK_ASK_DOMAIN, &bytes),
            &Signature::from_bytes(&self.signature),
        )
        .map_err(|_| AskError::BadSignature)?;
        if self.ask.signed_at.0.abs_diff(now.0) > LINK_ASK_TTL_MS {
            return Err(AskError::Stale);
        }
        Ok(&self.ask.what)
    }
}

/// A pending link request, as the facility's node lists it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LinkRequest {
    /// Its id at the hub.
    pub id: u64,
    /// The facility.
    pub facility: FacilityId,
    /// The number the holder gave.
    pub number: FacilityCardNumber,
    /// The holder's account.
    pub account: AccountId,
    /// The card the holder signed with (the counter can look it up).
    pub card: CardKey,
    /// When the hub received it.
    pub requested_at: UnixMillis,
}

/// What an answer to a link request did.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LinkRequestAnswered {
    /// The request.
    pub request: LinkRequest,
    /// True: the number is now linked to the account; false: refused,
    /// nothing linked.
    pub confirmed: bool,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(b: u8) -> SigningKey {
        SigningKey::from_bytes(&[b; 32])
    }

    fn ask(node: &SigningKey, at: u64) -> LinkRequestAsk {
        LinkRequestAsk {
            node: NodeId::from_bytes(node.verifying_key().to_bytes()).unwrap(),
            signed_at: UnixMillis(at),
            what: LinkRequestWhat::Confirm { id: 7 },
        }
    }

    #[test]
    fn a_signed_ask_checks_only_for_its_node_in_time_and_untampered() {
        let (a, b) = (key(1), key(2));
        let na = NodeId::from_bytes(a.verifying_key().to_bytes()).unwrap();
        let nb = NodeId::from_bytes(b.verifying_key().to_bytes()).unwrap();
        let s = SignedLinkRequestAsk::sign(ask(&a, 1_000_000), &a);
        assert_eq!(
            s.check(&na, UnixMillis(1_000_000 + LINK_ASK_TTL_MS)),
            Ok(&LinkRequestWhat::Confirm { id: 7 })
        );
        assert_eq!(
            s.check(&nb, UnixMillis(1_000_000)),
            Err(AskError::Elsewhere)
        );
        assert_eq!(
            s.check(&na, UnixMillis(1_000_001 + LINK_ASK_TTL_MS)),
            Err(AskError::Stale)
        );
        let mut t = s.clone();
        t.ask.what = LinkRequestWhat::Confirm { id: 8 };
        assert_eq!(
            t.check(&na, UnixMillis(1_000_000)),
            Err(AskError::BadSignature)
        );
        // Signed by another key in a's name.
        let forged = SignedLinkRequestAsk::sign(ask(&a, 1_000_000), &b);
        assert_eq!(
            forged.check(&na, UnixMillis(1_000_000)),
            Err(AskError::BadSignature)
        );
    }

    #[test]
    fn asks_round_trip_canonically_and_refuse_unknown_fields() {
        let a = key(3);
        let s = SignedLinkRequestAsk::sign(ask(&a, 5), &a);
        let bytes = codec::encode(&s);
        assert_eq!(
            codec::decode_canonical::<SignedLinkRequestAsk>("ask", &bytes, 4096).unwrap(),
            s
        );
        let mut longer = bytes.clone();
        longer.push(0);
        assert!(codec::decode_canonical::<SignedLinkRequestAsk>("ask", &longer, 4096).is_err());
    }
}
