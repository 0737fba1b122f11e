//! The node's side of the replicated cache (DESIGN §7): shard documents kept
//! in SQLite (a full save plus incremental chunks per epoch), the automerge
//! sync state per peer and shard, and the materialisation of received items
//! into the lookup tables.
//!
//! Every received item is checked with the read rule
//! ([`mykey_sync_proto::shard::verify_item`]: hub signature, and the fact's
//! own shard and key) and applied only above its key's `hub_seq` high-water
//! mark. The document bytes, the sync state and the materialised rows are
//! written in one SQLite transaction, so a crash loses nothing or replays it
//! idempotently. Only a few documents stay in memory.

use crate::node::{Node, apply_fact};
use crate::store::{HeldShard, StoreError};
use mykey_cache::{CacheError, ShardDoc, SyncState};
use mykey_sync_proto::shard::{Epoch, ShardHead, ShardId, ShardScope, buckets_of, verify_item};
use mykey_sync_proto::wire::ShardList;
use mykey_sync_proto::{NodeId, codec};
use std::collections::HashMap;
use tracing::{debug, warn};

/// Documents kept in memory at most (each ≤ ~10k items, ~10 MB).
const MAX_DOCS_IN_MEMORY: usize = 3;
/// Incremental chunks after which a document is saved whole again.
const MAX_CHUNKS: usize = 64;

/// What a node keeps in memory of its shards.
#[derive(Default)]
pub(crate) struct ShardCache {
    /// The hub's last shard list.
    listed: HashMap<ShardId, ShardHead>,
    /// Recently used documents, most recent last.
    docs: Vec<(ShardId, Epoch, ShardDoc, usize)>,
    /// Sync states of the open sessions, per peer and shard.
    states: HashMap<(NodeId, ShardId), (Epoch, SyncState)>,
}

/// A shard exchange that failed.
#[derive(Debug, thiserror::Error)]
pub enum ShardError {
    /// The document or message was unusable.
    #[error(transparent)]
    Cache(#[from] CacheError),
    /// The store failed: nothing of this message was kept.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// What one received sync message changed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Received {
    /// Items applied to the lookup tables.
    pub applied: usize,
    /// Items refused by the read rule (forged, moved, or a log fact).
    pub refused: usize,
}

impl Node {
    /// Starts afresh with `peer` (a new session): its in-memory sync states
    /// are dropped; the stored ones are loaded on the next exchange.
    pub fn reset_shard_peer(&mut self, peer: &NodeId) {
        self.shards.states.retain(|(p, _), _| p != peer);
    }

    /// The shards of the hub's list that this node must sync: those whose
    /// epoch or last write differs from what it holds. Deny shards first.
    pub fn shard_plan(&mut self, list: &ShardList) -> Result<Vec<ShardId>, StoreError> {
        self.shards.listed = list
            .shards
            .iter()
            .map(|h| (h.shard.clone(), h.clone()))
            .collect();
        let mut plan = vec![];
        let mut empty = vec![];
        {
            let r = self.store.read();
            for h in &list.shards {
                let held = r.held_shard(&codec::encode(&h.shard))?;
                let same = held
                    .as_ref()
                    .is_some_and(|x| x.epoch == h.epoch && x.last_seq == h.last_seq);
                if same {
                    continue;
                }
                if h.last_seq == 0 && held.as_ref().is_none_or(|x| x.epoch < h.epoch) {
                    // Nothing written yet: held as empty, so LAN peers can
                    // merge into it (a first suspension crosses the LAN).
                    empty.push(h.clone());
                } else {
                    plan.push(h.shard.clone());
                }
            }
        }
        for h in &empty {
            self.shard_synced(h)?;
        }
        plan.sort_by_key(|s| !s.is_deny());
        Ok(plan)
    }

    /// What this node holds of each shard.
    pub fn held_shards(&self) -> Result<Vec<(ShardId, HeldShard)>, StoreError> {
        let rows = self.store.read().held_shards()?;
        rows.into_iter()
            .map(|(s, h)| {
                codec::decode_canonical("shard id", &s, 4096)
                    .map(|s: ShardId| (s, h))
                    .map_err(|e| StoreError::Corrupt {
                        table: "shards_held",
                        detail: e.to_string(),
                    })
            })
            .collect()
    }

    /// One turn of a shard exchange with `peer`: receive its message (if
    /// any), materialise what changed, persist document, state and rows in
    /// one transaction, and return this node's next message.
    ///
    /// `start` begins an exchange: the sync state with the peer restarts
    /// from what was stored (its shared heads).
    pub fn shard_turn(
        &mut self,
        peer: &NodeId,
        shard: &ShardId,
        epoch: Epoch,
        received: Option<&[u8]>,
        start: bool,
    ) -> Result<(Option<Vec<u8>>, Received), ShardError> {
        let shard_bytes = codec::encode(shard);
        let buckets = self.buckets_for(shard, &shard_bytes)?;
        let mut idx = self.load_doc(shard, epoch, &shard_bytes)?;
        let key = (*peer, shard.clone());
        if start
            || self
                .shards
                .states
                .get(&key)
                .is_none_or(|(e, _)| *e != epoch)
        {
            let stored = self.store.read().shard_state(peer, &shard_bytes, epoch)?;
            let state = match stored.map(|b| SyncState::decode(&b)) {
                Some(Ok(s)) => s,
                Some(Err(e)) => {
                    warn!(shard = %shard, "{e}");
                    SyncState::new()
                }
                None => SyncState::new(),
            };
            self.shards.states.insert(key.clone(), (epoch, state));
        }
        let mut got = Received::default();
        if let Some(msg) = received {
            let (_, _, doc, chunks) = &mut self.shards.docs[idx];
            let (_, state) = self.shards.states.get_mut(&key).expect("inserted above");
            let changed = doc.receive(state, msg)?;
            // Verify every changed key: the best genuine, correctly placed
            // fact per key (the highest hub_seq) is a candidate.
            let mut facts = vec![];
            for k in &changed {
                let mut best = None;
                for v in doc.values(k) {
                    match verify_item(shard, buckets, k, &v, &self.hub) {
                        Ok(f) => {
                            if best
                                .as_ref()
                                .is_none_or(|b: &mykey_sync_proto::VerifiedFact| {
                                    b.payload().hub_seq < f.payload().hub_seq
                                })
                            {
                                best = Some(f);
                            }
                        }
                        Err(e) => {
                            got.refused += 1;
                            warn!(node = %self.key.id().short(), shard = %shard, "refused a shard item: {e}");
                        }
                    }
                }
                facts.extend(best);
            }
            let whole = *chunks == 0 || *chunks >= MAX_CHUNKS;
            let bytes = if whole {
                doc.save()
            } else {
                doc.save_incremental()
            };
            *chunks = if whole { 1 } else { *chunks + 1 };
            let state_bytes = state.encode();
            let me = self.key.id();
            let facility = match &shard.scope {
                ShardScope::Facility(f) => Some(f.clone()),
                _ => None,
            };
            let applied = self.store.write(|w| {
                let mut fac = w.read().limits()?.map(|l| l.facility).or(facility);
                let mut n = 0;
                for f in &facts {
                    n += usize::from(apply_fact(w, me, &mut fac, f)?);
                }
                if !bytes.is_empty() {
                    w.put_shard_chunk(&shard_bytes, epoch, &bytes, whole)?;
                }
                w.put_shard_state(peer, &shard_bytes, epoch, &state_bytes)?;
                Ok::<_, StoreError>(n)
            })?;
            got.applied = applied;
            debug!(shard = %shard, changed = changed.len(), applied, "shard message received");
        }
        idx = idx.min(self.shards.docs.len() - 1);
        let (_, _, doc, _) = &mut self.shards.docs[idx];
        let (_, state) = self.shards.states.get_mut(&key).expect("inserted above");
        Ok((doc.generate(state), got))
    }

    /// The hub says both sides are in sync: record it; a new epoch replaces
    /// the old one's document and states.
    pub fn shard_synced(&mut self, head: &ShardHead) -> Result<(), StoreError> {
        let shard_bytes = codec::encode(&head.shard);
        self.store.write(|w| {
            w.put_held_shard(
                &shard_bytes,
                &HeldShard {
                    epoch: head.epoch,
                    buckets: head.buckets,
                    last_seq: head.last_seq,
                },
            )
        })?;
        self.shards
            .docs
            .retain(|(s, e, _, _)| !(s == &head.shard && *e < head.epoch));
        Ok(())
    }

    /// The items of a shard's document this node holds (key → the values
    /// at that key), for convergence checks.
    pub fn shard_items(
        &mut self,
        shard: &ShardId,
        epoch: Epoch,
    ) -> Result<std::collections::BTreeMap<String, Vec<Vec<u8>>>, ShardError> {
        let idx = self.load_doc(shard, epoch, &codec::encode(shard))?;
        let doc = &self.shards.docs[idx].2;
        Ok(doc
            .keys()
            .into_iter()
            .map(|k| {
                let v = doc.values(&k);
                (k, v)
            })
            .collect())
    }

    /// The heads of this node's document of a shard (convergence checks).
    pub fn shard_heads(
        &mut self,
        shard: &ShardId,
        epoch: Epoch,
    ) -> Result<Vec<[u8; 32]>, ShardError> {
        let idx = self.load_doc(shard, epoch, &codec::encode(shard))?;
        Ok(self.shards.docs[idx].2.heads())
    }

    /// Epochs of a shard with a document stored.
    pub fn shard_doc_epochs(&self, shard: &ShardId) -> Result<Vec<Epoch>, StoreError> {
        self.store.read().shard_doc_epochs(&codec::encode(shard))
    }

    fn buckets_for(&self, shard: &ShardId, shard_bytes: &[u8]) -> Result<u16, StoreError> {
        let b = match self.shards.listed.get(shard) {
            Some(h) => h.buckets,
            None => self
                .store
                .read()
                .held_shard(shard_bytes)?
                .map_or(1, |h| h.buckets),
        };
        Ok(buckets_of(&shard.scope, b))
    }

    /// Index of the document in memory, loaded from SQLite if needed.
    fn load_doc(
        &mut self,
        shard: &ShardId,
        epoch: Epoch,
        shard_bytes: &[u8],
    ) -> Result<usize, ShardError> {
        let docs = &mut self.shards.docs;
        if let Some(i) = docs
            .iter()
            .position(|(s, e, _, _)| s == shard && *e == epoch)
        {
            let d = docs.remove(i);
            docs.push(d);
            return Ok(docs.len() - 1);
        }
        let (bytes, chunks) = self.store.read().shard_chunks(shard_bytes, epoch)?;
        let doc = if bytes.is_empty() {
            ShardDoc::new()
        } else {
            ShardDoc::load(&bytes)?
        };
        if docs.len() >= MAX_DOCS_IN_MEMORY {
            docs.remove(0);
        }
        docs.push((shard.clone(), epoch, doc, chunks));
        Ok(docs.len() - 1)
    }
}
