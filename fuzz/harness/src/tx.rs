//! `signed_tx` and `signed_fact`: transactions (from node outboxes, pushes
//! and LAN peers) and hub-signed facts (from answers, shard items and LAN
//! peers), decoded and verified.
//!
//! `signed_tx` input: the canonical bytes of a `SignedTx`. The same bytes
//! are also tried as a `TxPayload`, which the harness signs with its own
//! node key, so payloads reach verification with a good signature.
//!
//! `signed_fact` input: the hub's public key (32 bytes), then the canonical
//! bytes of a `SignedFact` checked against it. The bytes after the key are
//! also tried as a `FactPayload`, which the harness signs with its own hub
//! key.
//!
//! Properties: decoding and verification never panic; what decodes
//! re-encodes to the same bytes; a verified transaction's id is the
//! transaction's id and its payload re-encodes to the signed bytes; a key
//! handed in for a different node never makes a signature good; a fact the
//! hub signed passes the read rule exactly where its placement puts it
//! (every bucket count), and nowhere else.

use ed25519_dalek::{SigningKey, VerifyingKey};
use mykey_sync_proto::codec::{self, decode_canonical};
use mykey_sync_proto::fact::MAX_FACT_PAYLOAD_BYTES;
use mykey_sync_proto::shard::{
    ItemKey, ShardId, buckets_of, item_of, placement, scope_of_key, verify_item,
};
use mykey_sync_proto::tx::MAX_TX_PAYLOAD_BYTES;
use mykey_sync_proto::{FactPayload, NodeId, SignedFact, SignedTx, TxBody, TxPayload};

/// The node key the harness signs payloads with.
pub fn node_key() -> SigningKey {
    SigningKey::from_bytes(&[0x4e; 32])
}

/// The hub key the harness signs facts with.
pub fn hub_key() -> SigningKey {
    SigningKey::from_bytes(&[0x48; 32])
}

/// The id of a signing key.
pub fn id_of(key: &SigningKey) -> NodeId {
    NodeId::from_bytes(key.verifying_key().to_bytes()).expect("an ed25519 key is a node id")
}

/// Bucket counts the read rule is checked under (invalid ones included:
/// they count as the power of two below).
const BUCKETS: [u16; 7] = [0, 1, 2, 3, 64, 4096, u16::MAX];

/// A signed transaction's bytes.
pub fn signed_tx(data: &[u8]) {
    if let Ok(tx) = SignedTx::from_bytes(data) {
        assert_eq!(
            tx.to_bytes(),
            data,
            "a decoded transaction re-encodes to its bytes"
        );
        check_tx(&tx);
    }
    if let Ok(mut payload) = decode_canonical::<TxPayload>("payload", data, MAX_TX_PAYLOAD_BYTES) {
        let key = node_key();
        payload.node = id_of(&key);
        if codec::encode(&payload).len() <= MAX_TX_PAYLOAD_BYTES {
            let tx = SignedTx::sign(&payload, &key);
            let v = tx
                .verify()
                .expect("a transaction the harness signed verifies");
            assert_eq!(v.payload(), &payload);
            check_tx(&tx);
        }
    }
}

fn check_tx(tx: &SignedTx) {
    let id = tx.id();
    // Another node's key offered as the signer's is ignored.
    let stranger: VerifyingKey = node_key().verifying_key();
    match tx.verify() {
        Ok(v) => {
            assert_eq!(v.id(), id);
            assert_eq!(codec::encode(v.payload()), tx.payload_bytes());
            assert_eq!(v.signed(), tx);
            let again = tx
                .verify_with(|_| Some(stranger))
                .expect("a wrong cached key never spoils a good signature");
            assert_eq!(again, v);
            assert!(!v.payload().body.name().is_empty());
            if let TxBody::RightAccept(a) = &v.payload().body {
                check_tx(&a.transfer);
            }
        }
        Err(e) => {
            assert!(!e.to_string().is_empty());
            assert!(
                tx.verify_with(|_| Some(stranger)).is_err(),
                "a wrong cached key never makes a bad signature good"
            );
        }
    }
}

/// A hub key, then a signed fact's bytes.
pub fn signed_fact(data: &[u8]) {
    let Some((hub, bytes)) = data.split_first_chunk::<32>() else {
        return;
    };
    if let (Ok(hub), Ok(fact)) = (NodeId::from_bytes(*hub), SignedFact::from_bytes(bytes)) {
        assert_eq!(
            fact.to_bytes(),
            bytes,
            "a decoded fact re-encodes to its bytes"
        );
        match fact.verify(&hub) {
            Ok(v) => check_placement(v.payload(), bytes, &hub),
            Err(e) => assert!(!e.to_string().is_empty()),
        }
    }
    if let Ok(payload) = decode_canonical::<FactPayload>("payload", bytes, MAX_FACT_PAYLOAD_BYTES) {
        let key = hub_key();
        let fact = SignedFact::sign(&payload, &key);
        let hub = id_of(&key);
        let v = fact
            .verify(&hub)
            .expect("a fact the harness signed verifies");
        assert_eq!(v.payload(), &payload);
        check_placement(&payload, &fact.to_bytes(), &hub);
        assert!(
            fact.verify(&id_of(&node_key())).is_err(),
            "a fact verifies only against its hub"
        );
    }
}

/// The read rule agrees with placement: an authentic item is accepted
/// exactly under its own shard and key.
fn check_placement(payload: &FactPayload, bytes: &[u8], hub: &NodeId) {
    let _ = payload.body.is_priority();
    let item = item_of(payload);
    for buckets in BUCKETS {
        match placement(payload, buckets) {
            Some((shard, key)) => {
                assert!(shard.bucket < buckets_of(&shard.scope, buckets));
                assert!(
                    ItemKey::from_text(key.as_str()).is_some(),
                    "item key {key} is storable"
                );
                assert_eq!(
                    scope_of_key(&payload.scope, key.as_str()),
                    Some(shard.scope.clone()),
                    "the key {key} names its own shard scope"
                );
                let v = verify_item(&shard, buckets, key.as_str(), bytes, hub)
                    .expect("an authentic item is accepted where it belongs");
                assert_eq!(v.payload(), payload);
                let elsewhere = format!("{key}x");
                assert!(verify_item(&shard, buckets, &elsewhere, bytes, hub).is_err());
                let other = ShardId {
                    scope: shard.scope.clone(),
                    bucket: shard.bucket ^ 1,
                };
                assert!(verify_item(&other, buckets, key.as_str(), bytes, hub).is_err());
            }
            None => {
                assert!(item.is_none());
                let any = ShardId {
                    scope: mykey_sync_proto::shard::ShardScope::Deny(
                        mykey_sync_proto::MunicipalityCode::parse("131059").expect("code"),
                    ),
                    bucket: 0,
                };
                assert!(verify_item(&any, buckets, "st/x", bytes, hub).is_err());
            }
        }
    }
}

/// A `signed_fact` input: the hub key and the fact.
pub fn fact_input(hub: &NodeId, fact: &SignedFact) -> Vec<u8> {
    [&hub.as_bytes()[..], &fact.to_bytes()].concat()
}

/// A `signed_fact` input for the harness-signed path: the payload alone.
pub fn fact_payload_input(hub: &NodeId, payload: &FactPayload) -> Vec<u8> {
    [&hub.as_bytes()[..], &codec::encode(payload)].concat()
}
