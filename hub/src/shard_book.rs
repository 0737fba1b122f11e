//! The hub's replicated-cache state in memory: each scope's shard documents
//! at its epoch and the sync states per node and shard. [`crate::Hub`] holds
//! one; [`crate::shards`] derives the documents from the fact log and syncs
//! them with nodes.

use crate::store::ShardEpochRow;
use mykey_cache::{ShardDoc, SyncState};
use mykey_sync_proto::NodeId;
use mykey_sync_proto::Scope;
use mykey_sync_proto::shard::{Epoch, ShardId};
use std::collections::{BTreeMap, HashMap};

/// Items per shard the hub aims at when it picks a bucket count (DESIGN §7).
pub const DEFAULT_ITEMS_PER_SHARD: u64 = 10_000;

/// The hub's shard documents and sync states, in memory.
pub(crate) struct ShardBook {
    pub(crate) scopes: HashMap<Scope, ScopeDocs>,
    pub(crate) states: HashMap<(NodeId, ShardId), (Epoch, SyncState)>,
    /// Items per shard aimed at when an epoch chooses its bucket count.
    pub(crate) items_per_shard: u64,
    /// `Hub::shard_tick` has looked at the scopes written through this
    /// hub_seq (0 after a start: it looks at every scope once).
    pub(crate) grown_checked_through: u64,
}

impl Default for ShardBook {
    fn default() -> Self {
        ShardBook {
            scopes: HashMap::new(),
            states: HashMap::new(),
            items_per_shard: DEFAULT_ITEMS_PER_SHARD,
            grown_checked_through: 0,
        }
    }
}

/// One scope's documents at its current epoch.
pub(crate) struct ScopeDocs {
    pub(crate) layout: ShardEpochRow,
    /// The log is turned into changes through this hub_seq.
    pub(crate) applied: u64,
    pub(crate) docs: BTreeMap<ShardId, HubShard>,
}

/// One shard's document and the last hub_seq written to it.
pub(crate) struct HubShard {
    pub(crate) doc: ShardDoc,
    pub(crate) last_seq: u64,
}
