//! `shard_read`: automerge shard documents and sync messages from peers
//! (the hub, or a LAN peer), through `mykey-cache`'s `ShardDoc`, and every
//! item in them through the read rule `sync_proto::shard::verify_item`.
//!
//! Input: a mode byte, the hub key (32 bytes), the shard's bucket count
//! (u16), the shard id (u8 length, canonical bytes), then per mode:
//! - 0: an automerge sync message a node receives from a fresh state;
//! - 1: saved document bytes, as a node stores them;
//! - 2: items `(u8 length, key)(u16 length, fact payload)…` the harness
//!   signs as the hub, writes under those keys and syncs to a node;
//! - 3: a sync message the hub receives from a node (read-only state) into
//!   a document holding a few items.
//!
//! Properties: nothing panics; every value the read rule accepts is a fact
//! signed by the hub whose own placement is exactly this shard and key;
//! a harness-signed fact written under its own key passes, under another
//! key it fails; nothing a node sends changes the hub's document.

use crate::Input;
use crate::tx::{hub_key, id_of};
use mykey_cache::{ShardDoc, SyncState, hub_actor};
use mykey_sync_proto::codec::{self, decode_canonical};
use mykey_sync_proto::fact::MAX_FACT_PAYLOAD_BYTES;
use mykey_sync_proto::shard::{ShardId, placement, verify_item};
use mykey_sync_proto::{FactPayload, NodeId, SignedFact};

/// Most keys read from one document (a shard holds about 10k; inputs are small).
const MAX_KEYS: usize = 4096;
/// Sync rounds between the harness's hub and node documents.
const MAX_ROUNDS: usize = 16;

/// A mode, a header, then a message, a document or items.
pub fn read(data: &[u8]) {
    let mut input = Input::new(data);
    let (Some(mode), Some(hub), Some(buckets), Some(shard)) = (
        input.u8(),
        input.array::<32>(),
        input.u16(),
        input.short_chunk(),
    ) else {
        return;
    };
    let Ok(shard) = decode_canonical::<ShardId>("shard", shard, 256) else {
        return;
    };
    let rest = input.rest();
    match mode % 4 {
        0 => {
            let Ok(hub) = NodeId::from_bytes(*hub) else {
                return;
            };
            let mut doc = ShardDoc::new();
            let mut state = SyncState::new();
            if doc.receive(&mut state, rest).is_ok() {
                read_items(&doc, &shard, buckets, &hub);
                let _ = doc.generate(&mut state);
                let _ = SyncState::decode(&state.encode()).expect("a state encodes");
            }
        }
        1 => {
            let Ok(hub) = NodeId::from_bytes(*hub) else {
                return;
            };
            if let Ok(mut doc) = ShardDoc::load(rest) {
                read_items(&doc, &shard, buckets, &hub);
                let saved = doc.save();
                let again = ShardDoc::load(&saved).expect("a saved document loads");
                assert_eq!(again.keys(), doc.keys());
            }
        }
        2 => signed_items(rest, &shard, buckets),
        _ => hub_receives(rest, &shard),
    }
}

/// Every value of every key through the read rule.
fn read_items(doc: &ShardDoc, shard: &ShardId, buckets: u16, hub: &NodeId) -> usize {
    let mut accepted = 0;
    for key in doc.keys().into_iter().take(MAX_KEYS) {
        for value in doc.values(&key) {
            match verify_item(shard, buckets, &key, &value, hub) {
                Ok(v) => {
                    let (s, k) =
                        placement(v.payload(), buckets).expect("an accepted item is placed");
                    assert_eq!(&s, shard);
                    assert_eq!(k.as_str(), key);
                    accepted += 1;
                }
                Err(e) => assert!(!e.to_string().is_empty()),
            }
        }
    }
    accepted
}

/// Items the harness signs as the hub, synced hub → node, then read.
fn signed_items(rest: &[u8], shard: &ShardId, buckets: u16) {
    let key = hub_key();
    let hub = id_of(&key);
    let mut input = Input::new(rest);
    let mut items: Vec<(String, Vec<u8>, bool)> = vec![];
    while let (Some(k), Some(p)) = (input.short_chunk(), input.chunk()) {
        // The hub writes only keys its placement made: never an empty one.
        let Ok(k) = std::str::from_utf8(k) else {
            continue;
        };
        if k.is_empty() {
            continue;
        }
        let Ok(payload) = decode_canonical::<FactPayload>("payload", p, MAX_FACT_PAYLOAD_BYTES)
        else {
            continue;
        };
        let own =
            placement(&payload, buckets).is_some_and(|(s, key)| &s == shard && key.as_str() == k);
        let bytes = SignedFact::sign(&payload, &key).to_bytes();
        items.push((k.to_owned(), bytes, own));
    }
    let mut hub_doc = ShardDoc::for_writer(hub_actor(&hub, shard, 0));
    if hub_doc
        .put_batch(items.iter().map(|(k, v, _)| (k.as_str(), v.as_slice())), 1)
        .is_none()
    {
        return;
    }
    let mut node_doc = ShardDoc::new();
    sync(&mut hub_doc, &mut node_doc);
    assert_eq!(node_doc.keys(), hub_doc.keys(), "a sync converges");
    for (k, v, own) in &items {
        // The last write of a key wins in the hub's document.
        if node_doc.values(k).first() != Some(v) {
            continue;
        }
        let ok = verify_item(shard, buckets, k, v, &hub).is_ok();
        assert_eq!(
            ok, *own,
            "item {k}: accepted only where its placement puts it"
        );
    }
}

/// Hub and node documents sync until both are quiet (bounded).
fn sync(hub_doc: &mut ShardDoc, node_doc: &mut ShardDoc) {
    let mut hub_state = SyncState::new_read_only();
    let mut node_state = SyncState::new();
    for _ in 0..MAX_ROUNDS {
        let down = hub_doc.generate(&mut hub_state);
        if let Some(m) = &down {
            node_doc
                .receive(&mut node_state, m)
                .expect("the hub's message applies");
        }
        let up = node_doc.generate(&mut node_state);
        if let Some(m) = &up {
            hub_doc
                .receive(&mut hub_state, m)
                .expect("the node's message applies");
        }
        if down.is_none() && up.is_none() {
            return;
        }
    }
}

/// The hub receives a node's message: its document does not change.
fn hub_receives(message: &[u8], shard: &ShardId) {
    let key = hub_key();
    let hub = id_of(&key);
    let mut doc = ShardDoc::for_writer(hub_actor(&hub, shard, 0));
    let payload = FactPayload {
        hub_seq: 1,
        issued_at: mykey_sync_proto::UnixMillis(1),
        scope: shard.scope.fact_scope(),
        body: mykey_sync_proto::FactBody::StrictMode {
            municipality: mykey_sync_proto::MunicipalityCode::parse("131059").expect("code"),
            strict: true,
        },
    };
    let fact = SignedFact::sign(&payload, &key).to_bytes();
    doc.put_batch([("bal/A1/131059", fact.as_slice())], 1);
    let before = doc.heads();
    let mut state = SyncState::new_read_only();
    let _ = doc.generate(&mut state);
    let _ = doc.receive(&mut state, message);
    assert_eq!(
        doc.heads(),
        before,
        "nothing a node sends enters the hub's document"
    );
    let _ = doc.generate(&mut state);
}

/// A `shard_read` input.
pub fn input(mode: u8, hub: &NodeId, buckets: u16, shard: &ShardId, rest: &[u8]) -> Vec<u8> {
    let id = codec::encode(shard);
    let mut out = vec![mode];
    out.extend_from_slice(hub.as_bytes());
    out.extend_from_slice(&buckets.to_be_bytes());
    out.push(u8::try_from(id.len()).expect("a shard id is short"));
    out.extend(id);
    out.extend_from_slice(rest);
    out
}

/// The rest of a mode-2 input: keys and fact payloads.
pub fn items(items: &[(&str, &FactPayload)]) -> Vec<u8> {
    let mut out = vec![];
    for (k, p) in items {
        let p = codec::encode(*p);
        out.push(u8::try_from(k.len()).expect("a short key"));
        out.extend_from_slice(k.as_bytes());
        out.extend_from_slice(
            &u16::try_from(p.len())
                .expect("a short payload")
                .to_be_bytes(),
        );
        out.extend(p);
    }
    out
}
