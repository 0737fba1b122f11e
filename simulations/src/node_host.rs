//! One simulated node host: the real node core (`mykey_node::Node` on a real
//! SQLite file) and the real sans-IO session (`NodeSession`), with this
//! host's clocks and connection state. A crash drops both and everything in
//! memory; a restart reopens the store file, as the binary would.

use crate::clock::HostClock;
use anyhow::Context;
use mykey_node::{Node, NodeKey};
use mykey_sync_proto::session::{NodeEvent, NodeSession, NodeSessionConfig};
use mykey_sync_proto::wire::{Receipts, Request};
use mykey_sync_proto::{FacilityId, MunicipalityCode, NodeId, UnixMillis};
use std::path::PathBuf;

/// What a pump of the session produced for the world to act on.
#[derive(Debug, Default)]
pub struct PumpOut {
    /// Requests to put on the wire.
    pub sends: Vec<Request>,
    /// Receipts the node stored (for metrics).
    pub receipts: Vec<Receipts>,
    /// The session ended: the transport closes, reconnect with backoff.
    pub closed: Option<String>,
    /// The hub refused the node.
    pub refused: Option<String>,
    /// Facts were applied.
    pub facts_applied: bool,
}

/// A node host.
pub struct SimNode {
    /// Index in the world.
    pub idx: usize,
    /// Its facility.
    pub facility: FacilityId,
    /// Its municipality.
    pub municipality: MunicipalityCode,
    /// Its key id.
    pub id: NodeId,
    secret: [u8; 32],
    hub: NodeId,
    path: PathBuf,
    /// The core; `None` while crashed.
    pub core: Option<Node>,
    /// The sync session.
    pub session: NodeSession,
    session_config: NodeSessionConfig,
    /// Its clocks.
    pub clock: HostClock,
    /// The open transport connection, if any.
    pub conn: Option<u64>,
    /// A connect attempt is scheduled.
    pub connect_pending: bool,
    /// Current reconnect backoff.
    pub backoff_ms: u64,
    /// The earliest session timer scheduled (global time).
    pub timer_at: Option<u64>,
    /// Why the hub last refused it.
    pub refused: Option<String>,
    /// The transport's next request number.
    pub next_req: u64,
    /// The request whose answer the transport awaits.
    pub awaiting: Option<u64>,
}

impl SimNode {
    /// Creates the node's store in `dir` and opens it.
    #[allow(clippy::too_many_arguments)]
    pub fn create(
        idx: usize,
        facility: FacilityId,
        municipality: MunicipalityCode,
        secret: [u8; 32],
        hub: NodeId,
        dir: &std::path::Path,
        clock: HostClock,
        session_config: NodeSessionConfig,
    ) -> anyhow::Result<SimNode> {
        let key = NodeKey::from_secret(secret);
        let id = key.id();
        let path = dir.join(format!("node-{idx}.sqlite"));
        let core = Node::open(&path, key, hub).context("open node store")?;
        Ok(SimNode {
            idx,
            facility,
            municipality,
            id,
            secret,
            hub,
            path,
            core: Some(core),
            session: NodeSession::new(id, session_config.clone()),
            session_config,
            clock,
            conn: None,
            connect_pending: false,
            backoff_ms: 1000,
            timer_at: None,
            refused: None,
            next_req: 1,
            awaiting: None,
        })
    }

    /// The node key's secret (the lying node's owner has it; the simulation
    /// uses it for nothing else).
    pub fn secret(&self) -> [u8; 32] {
        self.secret
    }

    /// The store file.
    pub fn store_path(&self) -> &std::path::Path {
        &self.path
    }

    /// True while the process runs.
    pub fn is_up(&self) -> bool {
        self.core.is_some()
    }

    /// The process dies: memory, session and connection are gone; the store
    /// file keeps what was committed.
    pub fn crash(&mut self) {
        self.core = None;
        self.session = NodeSession::new(self.id, self.session_config.clone());
        self.conn = None;
        self.timer_at = None;
    }

    /// The process starts again on its store file.
    pub fn restart(&mut self) -> anyhow::Result<()> {
        let node = Node::open(&self.path, NodeKey::from_secret(self.secret), self.hub)
            .context("reopen node store after crash")?;
        self.core = Some(node);
        self.backoff_ms = 1000;
        Ok(())
    }

    /// A transport connection `conn` is up: start the session.
    pub fn connected(&mut self, conn: u64, mono: UnixMillis) -> anyhow::Result<()> {
        let Some(core) = &self.core else {
            return Ok(());
        };
        let (last, receipted, cursor) = core.sync_position()?;
        self.conn = Some(conn);
        self.session.handle_connected(mono, last, receipted, cursor);
        Ok(())
    }

    /// The transport dropped.
    pub fn disconnected(&mut self) {
        self.conn = None;
        self.session.handle_disconnected();
    }

    /// Drains the session: feeds it outbox transactions, stores receipts and
    /// facts in the core, and collects what must go on the wire.
    pub fn pump(&mut self, mono: UnixMillis, wall: UnixMillis) -> anyhow::Result<PumpOut> {
        let mut out = PumpOut::default();
        let Some(core) = self.core.as_mut() else {
            return Ok(out);
        };
        // Bounded: a session emits a handful of events per input.
        for _ in 0..64 {
            let mut progressed = false;
            while let Some(ev) = self.session.poll_event() {
                progressed = true;
                match ev {
                    NodeEvent::Welcomed(_) => {
                        let hub = core.hub();
                        core.reset_shard_peer(&hub);
                    }
                    NodeEvent::ShardsListed(list) => {
                        let plan = core.shard_plan(&list)?;
                        self.session.provide_shard_plan(plan, mono);
                    }
                    NodeEvent::ShardTurn {
                        shard,
                        epoch,
                        received,
                        start,
                    } => {
                        let hub = core.hub();
                        let (next, got) = core
                            .shard_turn(&hub, &shard, epoch, received.as_deref(), start)
                            .context("a shard message from the hub could not be used")?;
                        if got.refused > 0 {
                            anyhow::bail!("{} shard items from the hub were refused", got.refused);
                        }
                        out.facts_applied |= got.applied > 0;
                        self.session.provide_shard_message(next, mono);
                    }
                    NodeEvent::ShardSynced(head) => core.shard_synced(&head)?,
                    NodeEvent::NeedTxs { from_seq, max } => {
                        let txs = core.outbox_from(from_seq, max)?;
                        if let Err(e) = self.session.provide_txs(txs, mono) {
                            out.closed = Some(e.to_string());
                        }
                    }
                    NodeEvent::Receipts(r) => {
                        core.apply_receipts(&r, wall)?;
                        out.receipts.push(r);
                    }
                    NodeEvent::Facts(f) => {
                        core.apply_facts(&f)
                            .context("facts from the hub were refused by the node")?;
                        out.facts_applied = true;
                    }
                    NodeEvent::Refused(r) => out.refused = Some(r.to_string()),
                    NodeEvent::Closed(e) => out.closed = Some(e.to_string()),
                }
            }
            if let Some(req) = self.session.poll_transmit() {
                progressed = true;
                out.sends.push(req);
            }
            if !progressed {
                break;
            }
        }
        if out.closed.is_some() || out.refused.is_some() {
            self.conn = None;
        }
        Ok(out)
    }
}
