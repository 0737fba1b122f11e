//! The hub's side of the replicated cache: shard documents derived from the
//! fact log, and the automerge sync that nodes drive through
//! `Request::Shards` / `Request::ShardSync`.
//!
//! Every document is a function of the log: a fixed actor per (hub, shard,
//! epoch), one change per shard per storage transaction that wrote to it
//! (the facts' `batch`), stamped with the facts' `issued_at`; an epoch after
//! a compaction starts from a base document holding the latest item of each
//! key up to `base_seq`, stamped with the epoch's start. So the documents
//! are kept in memory only, rebuilt lazily after a restart with the same
//! change hashes, and nodes' copies keep merging.
//!
//! The hub's sync states are read-only: nothing a node sends is applied to
//! the hub's documents.

use crate::hub::Hub;
use crate::shard_book::{HubShard, ScopeDocs, ShardBook};

use crate::model::NodeRecord;
pub use crate::shard_book::DEFAULT_ITEMS_PER_SHARD;
use crate::store::{PlacedFact, ShardEpochRow, StoreError, StoreTx};
use mykey_cache::{ShardDoc, SyncState, hub_actor};
use mykey_sync_proto::shard::{
    Epoch, MAX_BUCKETS, ShardHead, ShardId, ShardScope, buckets_for, buckets_of, normalise_buckets,
    scope_of_key, shard_at,
};
use mykey_sync_proto::wire::{MAX_SHARD_MESSAGE_BYTES, Refusal, ShardList, ShardSync};
use mykey_sync_proto::{MunicipalityCode, NodeId, Scope, UnixMillis};
use std::collections::BTreeMap;

/// A scope gets a new epoch on its own once one of its shards holds more
/// than this many times the target ([`Hub::shard_tick`]).
pub const GROWTH_FACTOR: u64 = 2;
/// Rows read from the log at a time while building documents.
const READ_CHUNK: u32 = 5_000;
/// Sync states kept (per node and shard); past this they are all dropped and
/// rebuilt on the next message (a Bloom-filter exchange, nothing lost).
const MAX_SYNC_STATES: usize = 100_000;

/// What a node may sync: its municipality's deny and municipality shards,
/// its facility's shards.
fn fact_scopes_of(n: &NodeRecord) -> [Scope; 2] {
    [
        Scope::Municipality(n.municipality),
        Scope::Facility(n.facility.clone()),
    ]
}

impl ShardBook {
    /// Forgets a node's sync states (a new session starts them afresh).
    pub(crate) fn forget_node(&mut self, node: &NodeId) {
        self.states.retain(|(n, _), _| n != node);
    }

    fn layout(&self, st: &mut dyn StoreTx, scope: &Scope) -> Result<ShardEpochRow, StoreError> {
        Ok(st.shard_epoch(scope)?.unwrap_or(ShardEpochRow {
            epoch: 0,
            buckets: 1,
            base_seq: 0,
            started_at: UnixMillis(0),
        }))
    }

    /// Brings the documents of `scope` up to the log end `through`, opening
    /// (or reopening, after an epoch change) them first.
    fn ensure(
        &mut self,
        st: &mut dyn StoreTx,
        hub: &NodeId,
        scope: &Scope,
        through: u64,
    ) -> Result<&mut ScopeDocs, StoreError> {
        let layout = self.layout(st, scope)?;
        let stale = self
            .scopes
            .get(scope)
            .is_none_or(|s| s.layout != layout || s.applied > through);
        if stale {
            let docs = open_epoch(st, hub, scope, &layout)?;
            self.scopes.insert(scope.clone(), docs);
            // States of the old epoch are of no use.
            self.states
                .retain(|(_, s), _| &s.scope.fact_scope() != scope);
        }
        let docs = self.scopes.get_mut(scope).expect("just inserted");
        catch_up(st, hub, scope, docs, through)?;
        Ok(docs)
    }
}

/// The documents of `scope` in `layout`'s epoch: the base, nothing after it.
fn open_epoch(
    st: &mut dyn StoreTx,
    hub: &NodeId,
    scope: &Scope,
    layout: &ShardEpochRow,
) -> Result<ScopeDocs, StoreError> {
    let mut docs = ScopeDocs {
        layout: layout.clone(),
        applied: layout.base_seq,
        docs: BTreeMap::new(),
    };
    if layout.epoch == 0 {
        docs.applied = 0;
        return Ok(docs);
    }
    // The latest fact of each key up to base_seq, per shard, in key order.
    let mut latest: BTreeMap<String, PlacedFact> = BTreeMap::new();
    let mut after = 0;
    loop {
        let rows = st.placed_facts(scope, after, layout.base_seq, READ_CHUNK)?;
        let n = rows.len();
        for r in rows {
            after = r.hub_seq;
            latest.insert(r.item.clone(), r);
        }
        if n < READ_CHUNK as usize {
            break;
        }
    }
    let mut per_shard: BTreeMap<ShardId, Vec<PlacedFact>> = BTreeMap::new();
    for (key, f) in latest {
        if let Some(s) = scope_of_key(scope, &key) {
            per_shard
                .entry(shard_at(s, f.bucket_hash, layout.buckets))
                .or_default()
                .push(f);
        }
    }
    for (shard, facts) in per_shard {
        let mut doc = ShardDoc::for_writer(hub_actor(hub, &shard, layout.epoch));
        doc.put_batch(
            facts.iter().map(|f| (f.item.as_str(), f.signed.as_slice())),
            time_of(layout.started_at),
        );
        let last_seq = facts.iter().map(|f| f.hub_seq).max().unwrap_or(0);
        docs.docs.insert(shard, HubShard { doc, last_seq });
    }
    Ok(docs)
}

fn time_of(t: UnixMillis) -> i64 {
    i64::try_from(t.0).unwrap_or(i64::MAX)
}

/// Turns the log after `docs.applied` (through `through`) into changes: one
/// per shard per batch.
fn catch_up(
    st: &mut dyn StoreTx,
    hub: &NodeId,
    scope: &Scope,
    docs: &mut ScopeDocs,
    through: u64,
) -> Result<(), StoreError> {
    if docs.applied >= through {
        return Ok(());
    }
    let mut after = docs.applied;
    let mut batch: Option<u64> = None;
    let mut pending: BTreeMap<ShardId, Vec<PlacedFact>> = BTreeMap::new();
    loop {
        let rows = st.placed_facts(scope, after, through, READ_CHUNK)?;
        let n = rows.len();
        for r in rows {
            after = r.hub_seq;
            if batch != Some(r.batch) {
                flush(hub, docs, &mut pending);
                batch = Some(r.batch);
            }
            if let Some(s) = scope_of_key(scope, &r.item) {
                let shard = shard_at(s, r.bucket_hash, docs.layout.buckets);
                pending.entry(shard).or_default().push(r);
            }
        }
        if n < READ_CHUNK as usize {
            break;
        }
    }
    flush(hub, docs, &mut pending);
    docs.applied = through;
    Ok(())
}

fn flush(hub: &NodeId, docs: &mut ScopeDocs, pending: &mut BTreeMap<ShardId, Vec<PlacedFact>>) {
    let epoch = docs.layout.epoch;
    for (shard, facts) in std::mem::take(pending) {
        let Some(first) = facts.first() else { continue };
        let time = time_of(first.issued_at);
        let entry = docs.docs.entry(shard.clone()).or_insert_with(|| HubShard {
            doc: ShardDoc::for_writer(hub_actor(hub, &shard, epoch)),
            last_seq: 0,
        });
        entry.doc.put_batch(
            facts.iter().map(|f| (f.item.as_str(), f.signed.as_slice())),
            time,
        );
        entry.last_seq = entry
            .last_seq
            .max(facts.iter().map(|f| f.hub_seq).max().unwrap_or(0));
    }
}

/// The record of `node` if it may sync shards, else why its request is refused.
fn enrolled(
    st: &mut dyn StoreTx,
    node: &NodeId,
) -> Result<Result<NodeRecord, Refusal>, StoreError> {
    Ok(match st.node(node)? {
        None => Err(Refusal::NotEnrolled),
        Some(n) if n.is_revoked() => Err(Refusal::Revoked),
        Some(n) => Ok(n),
    })
}

impl Hub {
    /// Items per shard the hub aims at when a new epoch chooses its bucket
    /// count (default [`DEFAULT_ITEMS_PER_SHARD`], at least 1). Only epochs
    /// started later use it; each epoch's bucket count is stored with it, so
    /// a restart with another target changes no existing layout.
    pub fn set_shard_target(&mut self, items_per_shard: u64) {
        self.shards.items_per_shard = items_per_shard.max(1);
    }

    /// Starts a new epoch, on its own, for every scope one of whose shards
    /// holds more than [`GROWTH_FACTOR`] times the target items, with a
    /// bucket count chosen for the target. Looks only at scopes written
    /// since its last call, and reads the incrementally kept `shard_fill`
    /// counts (no document is built). For the serving loop's periodic work.
    pub fn shard_tick(&mut self, now: UnixMillis) -> Result<Vec<EpochStarted>, StoreError> {
        self.shard_tick_in(None, now)
    }

    /// [`Hub::shard_tick`] for the scopes of the municipalities `towns`
    /// only (their own and their facilities'; `None`: every scope): the
    /// step a process runs for the municipalities whose leases it holds
    /// (`crate::ticks`, which looks at every scope again when it takes a
    /// new one).
    pub fn shard_tick_in(
        &mut self,
        towns: Option<&[MunicipalityCode]>,
        now: UnixMillis,
    ) -> Result<Vec<EpochStarted>, StoreError> {
        let per_shard = self.shards.items_per_shard;
        let limit = per_shard.saturating_mul(GROWTH_FACTOR);
        let mut st = self.store.begin()?;
        let through = st.last_hub_seq()?;
        let written = st.scopes_placed_after(self.shards.grown_checked_through)?;
        let mut started = vec![];
        for key in written {
            let Some(scope) = scope_of_text(&key) else {
                continue;
            };
            if let Some(towns) = towns {
                let town = match &scope {
                    Scope::Municipality(m) => Some(*m),
                    Scope::Facility(f) => st.facility(f)?.map(|f| f.municipality),
                    _ => None,
                };
                if !town.is_some_and(|m| towns.contains(&m)) {
                    continue;
                }
            }
            let layout = self.shards.layout(&mut *st, &scope)?;
            let fill = st.shard_fill(&scope)?;
            let mask = normalise_buckets(layout.buckets) - 1;
            let mut per_bucket: BTreeMap<u16, u64> = BTreeMap::new();
            for (hash, n) in &fill {
                *per_bucket.entry(hash & mask).or_default() += n;
            }
            let largest = per_bucket.values().copied().max().unwrap_or(0);
            if largest <= limit {
                continue;
            }
            let items: u64 = fill.iter().map(|(_, n)| n).sum();
            let buckets = buckets_for(items, per_shard);
            if buckets <= layout.buckets {
                tracing::warn!(
                    scope = %key, buckets = layout.buckets, largest, items,
                    "a shard holds more than twice its target items, but more buckets would not help                      (at most {MAX_BUCKETS}, or the items are skewed): nodes may be refused its sync"
                );
                continue;
            }
            let row = ShardEpochRow {
                epoch: layout.epoch + 1,
                buckets,
                base_seq: through,
                started_at: now,
            };
            st.put_shard_epoch(&scope, &row)?;
            tracing::info!(
                scope = %key, epoch = row.epoch, buckets, was_buckets = layout.buckets,
                largest_shard_items = largest, items, target = per_shard,
                "started a new shard epoch: a shard held more than {GROWTH_FACTOR} times the target items"
            );
            started.push(EpochStarted {
                scope,
                epoch: row.epoch,
                buckets,
                largest_shard_items: largest,
            });
        }
        st.commit()?;
        self.shards.grown_checked_through = through;
        Ok(started)
    }

    /// The shards `node` receives (see [`mykey_sync_proto::session::HubService::shards`]).
    pub fn shard_list(&mut self, node: &NodeId) -> Result<Result<ShardList, Refusal>, StoreError> {
        let hub = self.hub_id();
        let mut st = self.store.begin_read()?;
        let rec = match enrolled(&mut *st, node)? {
            Ok(rec) => rec,
            Err(r) => return Ok(Err(r)),
        };
        let hub_seq = st.last_hub_seq()?;
        let mut shards = vec![];
        for scope in fact_scopes_of(&rec) {
            let docs = self.shards.ensure(&mut *st, &hub, &scope, hub_seq)?;
            let layout = docs.layout.clone();
            let kinds = match &scope {
                Scope::Municipality(m) => vec![ShardScope::Deny(*m), ShardScope::Municipality(*m)],
                Scope::Facility(f) => vec![ShardScope::Facility(f.clone())],
                _ => vec![],
            };
            for kind in kinds {
                let buckets = buckets_of(&kind, layout.buckets);
                for bucket in 0..buckets {
                    let shard = ShardId {
                        scope: kind.clone(),
                        bucket,
                    };
                    let last_seq = docs.docs.get(&shard).map_or(0, |d| d.last_seq);
                    shards.push(ShardHead {
                        shard,
                        epoch: layout.epoch,
                        buckets,
                        last_seq,
                    });
                }
            }
        }
        shards.sort_by_key(|h| !h.shard.is_deny());
        Ok(Ok(ShardList { shards, hub_seq }))
    }

    /// One sync exchange (see [`mykey_sync_proto::session::HubService::shard_sync`]).
    pub fn sync_shard(
        &mut self,
        node: &NodeId,
        sync: ShardSync,
    ) -> Result<Result<ShardSync, Refusal>, StoreError> {
        let hub = self.hub_id();
        let mut st = self.store.begin_read()?;
        let rec = match enrolled(&mut *st, node)? {
            Ok(rec) => rec,
            Err(r) => return Ok(Err(r)),
        };
        let fact_scope = sync.shard.scope.fact_scope();
        let entitled = fact_scopes_of(&rec).contains(&fact_scope);
        let hub_seq = st.last_hub_seq()?;
        self.shards.ensure(&mut *st, &hub, &fact_scope, hub_seq)?;
        drop(st);
        let book = &mut self.shards;
        let docs = book.scopes.get_mut(&fact_scope).expect("ensured above");
        let buckets = buckets_of(&sync.shard.scope, docs.layout.buckets);
        if !entitled || sync.shard.bucket >= buckets || sync.shard.bucket >= MAX_BUCKETS {
            tracing::warn!(node = %node.short(), shard = %sync.shard, "refused a shard the node does not receive");
            return Ok(Err(Refusal::Protocol(format!(
                "shard {} is not one this node receives (its municipality's and facility's shards only)",
                sync.shard
            ))));
        }
        let epoch = docs.layout.epoch;
        self.observed
            .note_shard_epoch(node, &sync.shard, sync.epoch);
        if sync.epoch != epoch {
            return Ok(Ok(ShardSync {
                shard: sync.shard,
                epoch,
                message: None,
                start: false,
            }));
        }
        let doc = &mut docs
            .docs
            .entry(sync.shard.clone())
            .or_insert_with(|| HubShard {
                doc: ShardDoc::for_writer(hub_actor(&hub, &sync.shard, epoch)),
                last_seq: 0,
            })
            .doc;
        if book.states.len() >= MAX_SYNC_STATES {
            book.states.clear();
        }
        let (state_epoch, state) = book
            .states
            .entry((*node, sync.shard.clone()))
            .or_insert_with(|| (epoch, SyncState::new_read_only()));
        if *state_epoch != epoch {
            *state_epoch = epoch;
            *state = SyncState::new_read_only();
        } else if sync.start {
            *state = state.restart();
        }
        if let Some(m) = &sync.message
            && let Err(e) = doc.receive(state, m)
        {
            return Ok(Err(Refusal::Protocol(e.to_string())));
        }
        let message = doc.generate(state);
        if let Some(m) = message
            .as_ref()
            .filter(|m| m.len() > MAX_SHARD_MESSAGE_BYTES)
        {
            tracing::error!(
                shard = %sync.shard, epoch, bytes = m.len(),
                "shard sync message past the wire bound: run `mykey-hub shards compact`"
            );
            return Ok(Err(Refusal::Protocol(format!(
                "shard {} of epoch {epoch} needs a sync message of {} bytes, past the wire bound of \
                 {MAX_SHARD_MESSAGE_BYTES}: the hub operator can start a new epoch with \
                 `mykey-hub --data <hub data dir> shards compact` (the hub also starts one on its \
                 own within a minute once a shard holds more than twice its target items); the \
                 node keeps serving from its cache and tries again later",
                sync.shard,
                m.len()
            ))));
        }
        Ok(Ok(ShardSync {
            shard: sync.shard,
            epoch,
            message,
            start: false,
        }))
    }

    /// Starts a new epoch of every scope's shards: base documents with the
    /// latest item of each key, bucket counts chosen for about
    /// `items_per_shard` items each. Nodes sync the new epoch from empty.
    /// Returns the scopes compacted.
    pub fn compact_shards(&mut self, now: UnixMillis) -> Result<usize, StoreError> {
        self.compact_shards_of(None, now)
    }

    /// Like [`Hub::compact_shards`], for one fact scope only (`None`: all).
    pub fn compact_shards_of(
        &mut self,
        only: Option<&Scope>,
        now: UnixMillis,
    ) -> Result<usize, StoreError> {
        let per_shard = self.shards.items_per_shard;
        let mut st = self.store.begin()?;
        let through = st.last_hub_seq()?;
        let keys = st.fact_scopes()?;
        let mut n = 0;
        for key in keys {
            let Some(scope) = scope_of_text(&key) else {
                continue;
            };
            if only.is_some_and(|o| *o != scope) {
                continue;
            }
            let layout = self.shards.layout(&mut *st, &scope)?;
            let items: u64 = st.shard_fill(&scope)?.iter().map(|(_, n)| n).sum();
            st.put_shard_epoch(
                &scope,
                &ShardEpochRow {
                    epoch: layout.epoch + 1,
                    buckets: buckets_for(items, per_shard),
                    base_seq: through,
                    started_at: now,
                },
            )?;
            n += 1;
        }
        st.commit()?;
        tracing::info!(scopes = n, through, "started a new shard epoch");
        Ok(n)
    }

    /// The items of a shard as the hub holds them (key → signed fact bytes),
    /// for convergence checks.
    pub fn shard_items(
        &mut self,
        shard: &ShardId,
    ) -> Result<(Epoch, BTreeMap<String, Vec<u8>>), StoreError> {
        self.with_shard_docs(shard, |docs| {
            let items = docs.docs.get(shard).map_or_else(BTreeMap::new, |d| {
                d.doc
                    .keys()
                    .into_iter()
                    .filter_map(|k| d.doc.values(&k).into_iter().next().map(|v| (k, v)))
                    .collect()
            });
            (docs.layout.epoch, items)
        })
    }

    /// The heads of the hub's document of a shard (tests: rebuilds match).
    pub fn shard_heads(&mut self, shard: &ShardId) -> Result<Vec<[u8; 32]>, StoreError> {
        self.with_shard_docs(shard, |docs| {
            docs.docs
                .get_mut(shard)
                .map_or_else(Vec::new, |d| d.doc.heads())
        })
    }

    /// Reads the documents of `shard`'s scope, brought up to the log's end.
    fn with_shard_docs<T>(
        &mut self,
        shard: &ShardId,
        f: impl FnOnce(&mut ScopeDocs) -> T,
    ) -> Result<T, StoreError> {
        let hub = self.hub_id();
        let mut st = self.store.begin_read()?;
        let through = st.last_hub_seq()?;
        let docs = self
            .shards
            .ensure(&mut *st, &hub, &shard.scope.fact_scope(), through)?;
        Ok(f(docs))
    }

    /// Drops the in-memory documents: the next request rebuilds them from
    /// the log, as after a restart.
    pub fn drop_shard_docs(&mut self) {
        self.shards.scopes.clear();
        self.shards.states.clear();
    }
}

/// A new epoch [`Hub::shard_tick`] started on its own.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EpochStarted {
    /// The fact scope whose shards were split.
    pub scope: Scope,
    /// The new epoch.
    pub epoch: Epoch,
    /// Its bucket count.
    pub buckets: u16,
    /// Items of the largest shard that made it necessary.
    pub largest_shard_items: u64,
}

/// Parses [`scope_key`]'s forms of municipality and facility scopes.
fn scope_of_text(key: &str) -> Option<Scope> {
    if let Some(m) = key.strip_prefix("m:") {
        return mykey_sync_proto::MunicipalityCode::parse(m)
            .ok()
            .map(Scope::Municipality);
    }
    if let Some(f) = key.strip_prefix("f:") {
        return mykey_sync_proto::FacilityId::parse(f)
            .ok()
            .map(Scope::Facility);
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::scope_key;

    #[test]
    fn scope_texts_round_trip() {
        let m = Scope::Municipality(mykey_sync_proto::MunicipalityCode::parse("131059").unwrap());
        assert_eq!(scope_of_text(&scope_key(&m)), Some(m));
        let f = Scope::Facility(mykey_sync_proto::FacilityId::parse("lib-1").unwrap());
        assert_eq!(scope_of_text(&scope_key(&f)), Some(f));
        assert_eq!(scope_of_text("all"), None);
    }
}
