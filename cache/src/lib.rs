//! The replicated cache's automerge side (DESIGN §7): a [`ShardDoc`] is one
//! shard's automerge document, whose root map holds item key → canonical
//! bytes of a hub-signed fact; [`SyncState`] is the automerge sync state with
//! one peer, persisted between sessions.
//!
//! This crate decides nothing: which items belong where and whether an item
//! may be used is `mykey_sync_proto::shard` (the read rule); storage is the
//! node's and the hub's. It exists apart from `sync-proto` because automerge
//! draws OS randomness (`ActorId::random`) in its constructors.
//!
//! Determinism at the hub: the hub builds every document from its fact log
//! with a fixed actor per (hub, shard, epoch) ([`hub_actor`]) and each
//! change's time taken from the facts, so a rebuild after a restart makes the
//! same changes with the same hashes and nodes' documents keep merging.
#![forbid(unsafe_code)]
#![cfg_attr(not(test), deny(clippy::unwrap_used))]
#![deny(missing_docs)]

use automerge::sync::SyncDoc;
use automerge::transaction::{CommitOptions, Transactable};
use automerge::{ActorId, AutoCommit, ChangeHash, ROOT, ReadDoc, ScalarValue, Value};
use mykey_sync_proto::NodeId;
use mykey_sync_proto::shard::{Epoch, ShardId};
use sha2::{Digest, Sha256};
use std::collections::BTreeSet;

/// A change hash (heads identify a document's state).
pub type Head = [u8; 32];

/// Why a document or sync operation failed.
#[derive(Debug, thiserror::Error)]
pub enum CacheError {
    /// Stored or received document bytes did not load.
    #[error("shard document does not load ({0}): drop it and sync the shard again")]
    Load(#[source] Box<automerge::AutomergeError>),
    /// A sync message did not decode.
    #[error("shard sync message does not decode: {0}")]
    Message(String),
    /// A sync message decoded but could not be applied.
    #[error("shard sync message could not be applied: {0}")]
    Apply(#[source] Box<automerge::AutomergeError>),
    /// A stored sync state did not decode.
    #[error("stored shard sync state does not decode: {0}; it is reset on the next sync")]
    State(String),
}

/// The fixed automerge actor of the hub's document for `shard` in `epoch`.
pub fn hub_actor(hub: &NodeId, shard: &ShardId, epoch: Epoch) -> [u8; 16] {
    let mut h = Sha256::new();
    h.update(b"mykey-edge/shard-actor/v1\0");
    h.update(hub.as_bytes());
    h.update(shard.to_string().as_bytes());
    h.update(epoch.to_be_bytes());
    let d = h.finalize();
    let mut a = [0u8; 16];
    a.copy_from_slice(&d[..16]);
    a
}

/// One shard's document.
pub struct ShardDoc {
    doc: AutoCommit,
}

impl std::fmt::Debug for ShardDoc {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ShardDoc({} keys)", self.len())
    }
}

impl Default for ShardDoc {
    fn default() -> Self {
        ShardDoc::new()
    }
}

impl ShardDoc {
    /// An empty document for a reader (a node): it never writes, so its
    /// actor does not matter.
    pub fn new() -> ShardDoc {
        ShardDoc {
            doc: AutoCommit::new(),
        }
    }

    /// An empty document that the hub writes as `actor` ([`hub_actor`]).
    pub fn for_writer(actor: [u8; 16]) -> ShardDoc {
        ShardDoc {
            doc: AutoCommit::new().with_actor(ActorId::from(actor)),
        }
    }

    /// Loads saved bytes (a full save followed by any incremental saves).
    pub fn load(bytes: &[u8]) -> Result<ShardDoc, CacheError> {
        let doc = AutoCommit::load(bytes).map_err(|e| CacheError::Load(Box::new(e)))?;
        Ok(ShardDoc { doc })
    }

    /// Writes items (key, signed fact bytes) as one change stamped `time_ms`.
    /// Nothing to write makes no change.
    pub fn put_batch<'a>(
        &mut self,
        items: impl IntoIterator<Item = (&'a str, &'a [u8])>,
        time_ms: i64,
    ) -> Option<Head> {
        let mut n = 0;
        for (k, v) in items {
            self.doc
                .put(ROOT, k, ScalarValue::Bytes(v.to_vec()))
                .expect("putting bytes into the root map cannot fail");
            n += 1;
        }
        if n == 0 {
            return None;
        }
        self.doc
            .commit_with(CommitOptions::default().with_time(time_ms))
            .map(|h| h.0)
    }

    /// The current heads.
    pub fn heads(&mut self) -> Vec<Head> {
        self.doc.get_heads().into_iter().map(|h| h.0).collect()
    }

    /// Number of keys in the root map.
    pub fn len(&self) -> usize {
        self.doc.length(ROOT)
    }

    /// True when no key is set.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Every value at `key` (more than one when writers conflicted); the
    /// reader picks among them with the read rule.
    pub fn values(&self, key: &str) -> Vec<Vec<u8>> {
        match self.doc.get_all(ROOT, key) {
            Ok(vals) => vals
                .into_iter()
                .filter_map(|(v, _)| match v {
                    Value::Scalar(s) => match s.as_ref() {
                        ScalarValue::Bytes(b) => Some(b.clone()),
                        _ => None,
                    },
                    _ => None,
                })
                .collect(),
            Err(_) => vec![],
        }
    }

    /// Every key.
    pub fn keys(&self) -> Vec<String> {
        self.doc.keys(ROOT).collect()
    }

    /// A full, compressed save.
    pub fn save(&mut self) -> Vec<u8> {
        self.doc.save()
    }

    /// The changes since the last save or incremental save (to append to
    /// stored bytes; [`ShardDoc::load`] takes the concatenation).
    pub fn save_incremental(&mut self) -> Vec<u8> {
        self.doc.save_incremental()
    }

    /// The changes after `heads`.
    pub fn save_after(&mut self, heads: &[Head]) -> Vec<u8> {
        let hs: Vec<ChangeHash> = heads.iter().map(|h| ChangeHash(*h)).collect();
        self.doc.save_after(&hs)
    }

    /// The next sync message for the peer of `state`, if any.
    pub fn generate(&mut self, state: &mut SyncState) -> Option<Vec<u8>> {
        self.doc
            .sync()
            .generate_sync_message(&mut state.0)
            .map(|m| m.encode())
    }

    /// Receives a peer's sync message; returns the keys whose values the
    /// received changes touched (to materialise only those).
    pub fn receive(
        &mut self,
        state: &mut SyncState,
        message: &[u8],
    ) -> Result<BTreeSet<String>, CacheError> {
        let msg = automerge::sync::Message::decode(message)
            .map_err(|e| CacheError::Message(e.to_string()))?;
        let before = self.doc.get_heads();
        self.doc
            .sync()
            .receive_sync_message(&mut state.0, msg)
            .map_err(|e| CacheError::Apply(Box::new(e)))?;
        let after = self.doc.get_heads();
        if before == after {
            return Ok(BTreeSet::new());
        }
        let mut keys = BTreeSet::new();
        for p in self.doc.diff(&before, &after) {
            match p.action {
                automerge::PatchAction::PutMap { key, .. }
                | automerge::PatchAction::DeleteMap { key } => {
                    keys.insert(key);
                }
                _ => {}
            }
        }
        Ok(keys)
    }
}

/// The automerge sync state with one peer about one shard.
#[derive(Debug, Default)]
pub struct SyncState(automerge::sync::State);

impl SyncState {
    /// A fresh state (first contact).
    pub fn new() -> SyncState {
        SyncState(automerge::sync::State::new())
    }

    /// A state that sends its changes but never applies the peer's: the hub
    /// side, which no node may write into.
    pub fn new_read_only() -> SyncState {
        SyncState(automerge::sync::State::new_read_only())
    }

    /// The part worth keeping across sessions (the shared heads).
    pub fn encode(&self) -> Vec<u8> {
        self.0.encode()
    }

    /// The same peer's state for a new exchange: only the shared heads are
    /// kept (as [`SyncState::encode`] keeps them), so nothing of an earlier
    /// exchange's in-flight bookkeeping carries over, and the Bloom filter
    /// still covers only the changes since the last sync.
    pub fn restart(&self) -> SyncState {
        let read_only = self.0.read_only;
        let mut s = SyncState::decode(&self.encode()).unwrap_or_default();
        s.0.set_read_only(read_only);
        s
    }

    /// Restores [`SyncState::encode`].
    pub fn decode(bytes: &[u8]) -> Result<SyncState, CacheError> {
        automerge::sync::State::decode(bytes)
            .map(SyncState)
            .map_err(|e| CacheError::State(e.to_string()))
    }
}

#[cfg(test)]
mod tests;
