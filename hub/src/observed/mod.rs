//! What a serving process observes of its nodes without a durable write:
//! each node's latest fact pull, the shard epochs it last synced, and the
//! ingest counters `/metrics` shows.
//!
//! One [`Observed`] is made per process and handed to every [`crate::Hub`]
//! that should see the same nodes: `mykey-hub serve` gives its writing hub
//! (ingest, shard sync) and the dashboard's reading hub the same one
//! ([`crate::Hub::observing`]), so the dashboard shows what the writer saw.
//! Any other hub starts with a fresh one, so tests share nothing.
//!
//! It depends on nothing of the hub's above it, so the [`crate::Hub`] that
//! holds it and the drivers that record into it import downwards only.

pub mod counters;

use counters::Counters;
use mykey_sync_proto::NodeId;
use mykey_sync_proto::shard::ShardId;
use std::collections::BTreeMap;
use std::sync::{Mutex, MutexGuard, PoisonError};

/// A process's observations of its nodes (see the module doc).
#[derive(Debug, Default)]
pub struct Observed {
    /// The fact cursor each node last pulled after. A node pulls every few
    /// seconds: recording each in the database would cost a durable write
    /// each. One entry per node that pulled.
    pulls: Mutex<BTreeMap<NodeId, u64>>,
    /// The shard epochs each node last synced (as `pulls`: recorded at each
    /// shard sync without a durable write), at most
    /// [`mykey_sync_proto::wire::MAX_SHARDS_PER_LIST`] per node.
    shard_epochs: Mutex<BTreeMap<NodeId, BTreeMap<ShardId, u32>>>,
    /// Ingest outcomes, refusal reasons and the sync lag.
    counters: Counters,
}

/// A lock whose holder panicked still guards plain maps that were never
/// left half-written (each update is one insert).
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Observed {
    /// A node asked for facts after `after` (its cursor).
    pub fn note_pull(&self, node: &NodeId, after: u64) {
        let mut p = lock(&self.pulls);
        let c = p.entry(*node).or_default();
        *c = (*c).max(after);
    }

    /// The highest cursor `node` pulled after, if it pulled.
    pub fn pulled(&self, node: &NodeId) -> Option<u64> {
        lock(&self.pulls).get(node).copied()
    }

    /// A node synced `shard` in `epoch`.
    pub fn note_shard_epoch(&self, node: &NodeId, shard: &ShardId, epoch: u32) {
        let mut m = lock(&self.shard_epochs);
        let per = m.entry(*node).or_default();
        // Bounded: a node syncs at most its list's shards.
        if per.len() < mykey_sync_proto::wire::MAX_SHARDS_PER_LIST || per.contains_key(shard) {
            per.insert(shard.clone(), epoch);
        }
    }

    /// The epoch `node` last synced of each shard it synced.
    pub fn shard_epochs_of(&self, node: &NodeId) -> Vec<(ShardId, u32)> {
        lock(&self.shard_epochs)
            .get(node)
            .map(|m| m.iter().map(|(s, e)| (s.clone(), *e)).collect())
            .unwrap_or_default()
    }

    /// The ingest counters.
    pub fn counters(&self) -> &Counters {
        &self.counters
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use mykey_sync_proto::shard::ShardScope;

    fn node(b: u8) -> NodeId {
        let key = ed25519_dalek::SigningKey::from_bytes(&[b; 32]);
        NodeId::from_bytes(key.verifying_key().to_bytes()).unwrap()
    }

    #[test]
    fn two_values_share_nothing_and_a_pull_cursor_only_grows() {
        let (a, b) = (Observed::default(), Observed::default());
        a.note_pull(&node(1), 7);
        a.note_pull(&node(1), 3);
        assert_eq!(a.pulled(&node(1)), Some(7));
        assert_eq!(b.pulled(&node(1)), None);
        a.counters().push_handled();
        assert_eq!(a.counters().snapshot().pushes, 1);
        assert_eq!(b.counters().snapshot().pushes, 0);
    }

    #[test]
    fn shard_epochs_per_node_are_bounded_by_the_list() {
        let o = Observed::default();
        let max = mykey_sync_proto::wire::MAX_SHARDS_PER_LIST;
        let shard = |bucket| ShardId {
            scope: ShardScope::Deny(mykey_sync_proto::MunicipalityCode::try_from(131059).unwrap()),
            bucket,
        };
        for i in 0..=max {
            o.note_shard_epoch(&node(2), &shard(i as u16), 1);
        }
        assert_eq!(o.shard_epochs_of(&node(2)).len(), max);
        // A shard already held is updated even at the bound.
        o.note_shard_epoch(&node(2), &shard(0), 4);
        assert!(o.shard_epochs_of(&node(2)).contains(&(shard(0), 4)));
        assert!(o.shard_epochs_of(&node(3)).is_empty());
    }
}
