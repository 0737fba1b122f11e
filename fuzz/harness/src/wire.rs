//! `wire_request` and `wire_response`: what the hub reads from a node and a
//! node reads from the hub, as the frame carries it (version prefix and
//! canonical postcard); `lan_message`: what a node reads from a LAN peer
//! (`/mykey/lan/1`, requests and answers).
//!
//! Properties: decoding never panics; a decoded message is within every
//! batch bound and re-encodes to exactly the input (one byte string per
//! value); the transactions and facts inside decode again from their own
//! bytes (or are refused there as too long: a message bounds them only as a
//! whole); a refusal for a bad message can be built and shown.

use mykey_sync_proto::codec::DecodeError;
use mykey_sync_proto::session::refusal_for_wire_error;
use mykey_sync_proto::wire::{
    MAX_FACTS_PER_ANSWER, MAX_PUSH_TXS, MAX_SHARD_MESSAGE_BYTES, MAX_SHARDS_PER_LIST,
    MAX_SOFTWARE_LEN, Request, Response, ShardSync,
};
use mykey_sync_proto::{SignedFact, SignedTx};

/// A request as a node sends it.
pub fn request(data: &[u8]) {
    match Request::decode(data) {
        Ok(r) => {
            assert_eq!(
                r.encode(),
                data,
                "a decoded request re-encodes to its bytes"
            );
            match &r {
                Request::Hello(h) => assert!(h.software.len() <= MAX_SOFTWARE_LEN),
                Request::Push(p) => {
                    assert!(p.txs.len() <= MAX_PUSH_TXS);
                    p.txs.iter().for_each(inner_tx);
                }
                Request::ShardSync(s) => shard_sync(s),
                Request::PullFacts(_) | Request::Shards | Request::Holder(_) => {}
            }
        }
        Err(e) => {
            assert!(!e.to_string().is_empty());
            assert!(!refusal_for_wire_error(&e).to_string().is_empty());
        }
    }
}

/// An answer as the hub sends it.
pub fn response(data: &[u8]) {
    match Response::decode(data) {
        Ok(r) => {
            assert_eq!(
                r.encode(),
                data,
                "a decoded response re-encodes to its bytes"
            );
            match &r {
                Response::Facts(f) => {
                    assert!(f.facts.len() <= MAX_FACTS_PER_ANSWER);
                    for fact in &f.facts {
                        // Inside a message only the message bound applies;
                        // alone, a fact has its own (smaller) one.
                        match SignedFact::from_bytes(&fact.to_bytes()) {
                            Ok(back) => assert_eq!(&back, fact),
                            Err(e) => assert!(matches!(e, DecodeError::TooLong { .. }), "{e}"),
                        }
                    }
                }
                Response::Receipts(rr) => {
                    // Decoding checked the ranges: they expand, within the
                    // bound, to one receipt per (signer, seq).
                    let r = rr.expand(MAX_PUSH_TXS).expect("decoded ranges expand");
                    assert!(r.receipts.len() <= MAX_PUSH_TXS);
                    assert_eq!(r.receipts.len(), rr.len());
                    for w in r.receipts.windows(2) {
                        assert!(w[0].node != w[1].node || w[0].seq < w[1].seq);
                    }
                    for rc in &r.receipts {
                        if let mykey_sync_proto::wire::Outcome::Rejected(reason) = &rc.outcome {
                            assert!(!reason.to_string().is_empty());
                            let _ = reason.is_chain_level();
                        }
                    }
                }
                Response::Shards(l) => assert!(l.shards.len() <= MAX_SHARDS_PER_LIST),
                Response::ShardSync(s) => shard_sync(s),
                Response::Refused(r) => assert!(!r.to_string().is_empty()),
                Response::Welcome(_) => {}
                Response::Holder(h) => {
                    if let mykey_sync_proto::holder::HolderResponse::History(h) = &**h {
                        assert!(
                            h.entries.len()
                                <= mykey_sync_proto::holder::MAX_HISTORY_ENTRIES as usize
                        );
                    }
                }
            }
        }
        Err(e) => assert!(!e.to_string().is_empty()),
    }
}

/// A LAN peer's request or answer (the same bytes are tried as both).
pub fn lan(data: &[u8]) {
    use mykey_node::net::lan::{LanRequest, LanResponse, MAX_OFFER_TXS};
    match LanRequest::decode(data) {
        Ok(r) => {
            assert_eq!(
                r.encode(),
                data,
                "a decoded LAN request re-encodes to its bytes"
            );
            match &r {
                LanRequest::Offer { txs } => {
                    assert!(txs.len() <= MAX_OFFER_TXS);
                    txs.iter().for_each(inner_tx);
                }
                LanRequest::ShardSync(s) => {
                    assert!(s.message.as_ref().map_or(0, Vec::len) <= MAX_SHARD_MESSAGE_BYTES);
                }
            }
        }
        Err(e) => assert!(!e.to_string().is_empty()),
    }
    match LanResponse::decode(data) {
        Ok(r) => assert_eq!(
            r.encode(),
            data,
            "a decoded LAN answer re-encodes to its bytes"
        ),
        Err(e) => assert!(!e.to_string().is_empty()),
    }
}

fn inner_tx(tx: &SignedTx) {
    match SignedTx::from_bytes(&tx.to_bytes()) {
        Ok(back) => assert_eq!(&back, tx),
        Err(e) => assert!(matches!(e, DecodeError::TooLong { .. }), "{e}"),
    }
    let _ = tx.verify();
}

fn shard_sync(s: &ShardSync) {
    assert!(s.message.as_ref().map_or(0, Vec::len) <= MAX_SHARD_MESSAGE_BYTES);
    assert!(s.shard.bucket < mykey_sync_proto::shard::MAX_BUCKETS);
}
