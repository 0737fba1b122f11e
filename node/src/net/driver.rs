//! What a node does with each [`NodeEvent`] of its session: the one piece of
//! glue between the sans-IO session and the node's store, shared by the
//! networked loop ([`super::run`]), the in-process harness of the tests and
//! the simulation (`mykey-simulations`, `SimNode::pump`). The transport side
//! (putting [`NodeSession::poll_transmit`] on a wire, reconnecting) stays
//! with each caller.

use crate::node::{FactsError, Node};
use crate::shards::ShardError;
use crate::store::StoreError;
use mykey_sync_proto::UnixMillis;
use mykey_sync_proto::session::{NodeEvent, NodeSession, SessionError};
use mykey_sync_proto::wire::{Outcome, Refusal, Welcome};

/// Counters of what one drain did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Drained {
    /// The hub welcomed the session.
    pub welcomed: Option<Welcome>,
    /// Receipts stored.
    pub receipts: u64,
    /// Of which rejections.
    pub rejected: u64,
    /// Facts applied (from the log and from shards).
    pub facts: u64,
    /// Shard items refused by the read rule.
    pub refused_items: u64,
    /// The session ended: refused by the hub, or closed on an error.
    pub ended: Option<Ended>,
}

/// How a session ended.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Ended {
    /// The hub refused it: show the reason, do not retry soon.
    #[error("the hub refused the session: {0}")]
    Refused(Refusal),
    /// It closed on an error: reconnect with backoff.
    #[error("the session closed: {0}")]
    Closed(SessionError),
}

/// The store failed while handling an event: the session cannot go on.
#[derive(Debug, thiserror::Error)]
pub enum DriveError {
    /// Reading the outbox or storing receipts failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Facts were refused (not authentic) or could not be stored.
    #[error(transparent)]
    Facts(#[from] FactsError),
    /// A shard message could not be used or stored.
    #[error(transparent)]
    Shard(#[from] ShardError),
    /// The session refused what the store handed it.
    #[error(transparent)]
    Session(#[from] SessionError),
}

/// Handles every pending event of `session` against `node`. Stops at the
/// first event that ends the session (reported in [`Drained::ended`]).
///
/// `now` is the session's clock (its timeouts); `wall` is the wall clock the
/// store records receipts under. The binary passes the same instant twice;
/// the simulation gives each host a monotonic clock and a skewed wall clock.
///
/// A shard item the read rule refuses (forged, moved, a log fact) is counted
/// in [`Drained::refused_items`] and the exchange goes on: the store keeps
/// only what verifies, and ending the session would only fetch the same item
/// again. A caller that knows the hub is honest (the simulation) treats a
/// non-zero count as a fault.
pub fn drain_events(
    session: &mut NodeSession,
    node: &mut Node,
    now: UnixMillis,
    wall: UnixMillis,
) -> Result<Drained, DriveError> {
    let mut d = Drained::default();
    // A request ready to go is sent first (the caller polls it when this
    // returns), so the hub works on the next push while the node stores the
    // previous push's receipts; the caller drains again after sending.
    while !session.has_transmit()
        && let Some(ev) = session.poll_event()
    {
        match ev {
            NodeEvent::Welcomed(w) => {
                let hub = node.hub();
                node.reset_shard_peer(&hub);
                d.welcomed = Some(w);
            }
            NodeEvent::ShardsListed(list) => {
                let plan = node.shard_plan(&list)?;
                session.provide_shard_plan(plan, now);
            }
            NodeEvent::ShardTurn {
                shard,
                epoch,
                received,
                start,
            } => {
                let hub = node.hub();
                let (next, got) =
                    node.shard_turn(&hub, &shard, epoch, received.as_deref(), start)?;
                d.facts += got.applied as u64;
                d.refused_items += got.refused as u64;
                session.provide_shard_message(next, now);
            }
            NodeEvent::ShardSynced(head) => node.shard_synced(&head)?,
            NodeEvent::NeedTxs { from_seq, max } => {
                let txs = node.outbox_from(from_seq, max)?;
                session.provide_txs(txs, now)?;
            }
            NodeEvent::Receipts(r) => {
                d.receipts += r.receipts.len() as u64;
                d.rejected += r
                    .receipts
                    .iter()
                    .filter(|x| matches!(x.outcome, Outcome::Rejected(_)))
                    .count() as u64;
                node.apply_receipts(&r, wall)?;
            }
            NodeEvent::Facts(f) => d.facts += node.apply_facts(&f)? as u64,
            NodeEvent::Refused(r) => {
                d.ended = Some(Ended::Refused(r));
                break;
            }
            NodeEvent::Closed(e) => {
                d.ended = Some(Ended::Closed(e));
                break;
            }
        }
    }
    Ok(d)
}
