//! One simulated node host: the real node core (`mykey_node::Node` on a real
//! SQLite file) and the real sans-IO session (`NodeSession`), with this
//! host's clocks and connection state. A crash drops both and everything in
//! memory; a restart reopens the store file, as the binary would.

use crate::clock::HostClock;
use anyhow::Context;
use mykey_node::net::driver::{DriveError, Ended, drain_events};
use mykey_node::{Node, NodeKey};
use mykey_sync_proto::session::{NodeSession, NodeSessionConfig};
use mykey_sync_proto::wire::Request;
use mykey_sync_proto::{FacilityId, MunicipalityCode, NodeId, UnixMillis};
use std::path::PathBuf;

/// What a pump of the session produced for the world to act on.
#[derive(Debug, Default)]
pub struct PumpOut {
    /// Requests to put on the wire.
    pub sends: Vec<Request>,
    /// Receipts the node stored.
    pub receipts: u64,
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

    /// Drains the session with the node binary's own glue
    /// (`mykey_node::net::driver::drain_events`: outbox transactions to the
    /// session, receipts, facts and shard messages to the core) and collects
    /// what must go on the wire, as the run loop's `pump` does.
    pub fn pump(&mut self, mono: UnixMillis, wall: UnixMillis) -> anyhow::Result<PumpOut> {
        let mut out = PumpOut::default();
        let Some(core) = self.core.as_mut() else {
            return Ok(out);
        };
        // Bounded: a session emits a handful of events per input.
        for _ in 0..64 {
            let d = match drain_events(&mut self.session, core, mono, wall) {
                Ok(d) => d,
                // The session refused what the store handed it: the binary
                // drops the hub link and reconnects with backoff.
                Err(DriveError::Session(e)) => {
                    out.closed = Some(e.to_string());
                    break;
                }
                Err(e) => {
                    return Err(anyhow::Error::new(e)
                        .context("the node could not use what its hub session delivered"));
                }
            };
            // The simulated hub is honest: every shard item it serves verifies.
            if d.refused_items > 0 {
                anyhow::bail!("{} shard items from the hub were refused", d.refused_items);
            }
            out.facts_applied |= d.facts > 0;
            out.receipts += d.receipts;
            match d.ended {
                Some(Ended::Refused(r)) => {
                    out.refused = Some(r.to_string());
                    break;
                }
                Some(Ended::Closed(e)) => {
                    out.closed = Some(e.to_string());
                    break;
                }
                None => {}
            }
            let Some(req) = self.session.poll_transmit() else {
                break;
            };
            out.sends.push(req);
        }
        if out.closed.is_some() || out.refused.is_some() {
            self.conn = None;
        }
        Ok(out)
    }
}
