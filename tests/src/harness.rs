//! An in-process link between one node and the hub, like quinn's `Pair`:
//! both sides are the production cores, every message is encoded to bytes
//! and decoded again, and the loop is bounded.

use anyhow::{Context, Result, bail};
use mykey_node::Node;
use mykey_node::net::driver::drain_events;
use mykey_sync_proto::UnixMillis;
use mykey_sync_proto::session::{HubService, HubSession, NodeSession, NodeSessionConfig};
use mykey_sync_proto::wire::{Request, Response};

/// What one sync round moved.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SyncReport {
    /// Requests sent.
    pub requests: u64,
    /// Bytes node → hub.
    pub bytes_up: u64,
    /// Bytes hub → node.
    pub bytes_down: u64,
    /// Receipts stored.
    pub receipts: u64,
    /// Of which rejections.
    pub rejected: u64,
    /// Facts applied.
    pub facts: u64,
}

/// Upper bound of request/response exchanges in one sync round.
pub const MAX_EXCHANGES: u64 = 100_000;

/// Connects `node` to `hub`, runs the session until the node is caught up
/// (everything pushed and receipted, every fact pulled), then disconnects.
pub fn sync<H: HubService>(node: &mut Node, hub: &mut H, now: UnixMillis) -> Result<SyncReport> {
    sync_with(node, hub, now, |_| false)
}

/// Like [`sync`], but `cut(n)` is asked before the n-th request is delivered;
/// returning true drops the link right there (the request is lost). Used to
/// prove that breaks at any point resume cleanly.
pub fn sync_with<H: HubService>(
    node: &mut Node,
    hub: &mut H,
    now: UnixMillis,
    mut cut: impl FnMut(u64) -> bool,
) -> Result<SyncReport> {
    sync_cut(
        node,
        hub,
        now,
        NodeSessionConfig::default(),
        |n, _| cut(n),
        |_, _| {},
    )
}

/// Like [`sync_with`], and `observe(request, answer)` sees the bytes of each
/// exchange (the fuzz seed generator keeps them as seeds).
pub fn sync_observed<H: HubService>(
    node: &mut Node,
    hub: &mut H,
    now: UnixMillis,
    mut cut: impl FnMut(u64) -> bool,
    observe: impl FnMut(&[u8], &[u8]),
) -> Result<SyncReport> {
    sync_cut(
        node,
        hub,
        now,
        NodeSessionConfig::default(),
        |n, _| cut(n),
        observe,
    )
}

/// Like [`sync_observed`] with a session `config`, and `cut(n, request)`
/// also sees the request it may drop (to cut at the k-th push, inside the
/// push window, where the previous push is applied but its receipts are not
/// stored yet).
pub fn sync_cut<H: HubService>(
    node: &mut Node,
    hub: &mut H,
    now: UnixMillis,
    config: NodeSessionConfig,
    mut cut: impl FnMut(u64, &Request) -> bool,
    mut observe: impl FnMut(&[u8], &[u8]),
) -> Result<SyncReport> {
    let mut session = NodeSession::new(node.id(), config);
    let mut hub_side = HubSession::new(node.id());
    let (last, receipted, cursor) = node.sync_position()?;
    session.handle_connected(now, last, receipted, cursor);
    let mut report = SyncReport::default();
    for _ in 0..MAX_EXCHANGES {
        let d = drain_events(&mut session, node, now, now)?;
        report.receipts += d.receipts;
        report.rejected += d.rejected;
        report.facts += d.facts;
        if let Some(end) = d.ended {
            bail!("{end}");
        }
        if let Some(req) = session.poll_transmit() {
            report.requests += 1;
            if cut(report.requests, &req) {
                session.handle_disconnected();
                return Ok(report);
            }
            let up = req.encode();
            report.bytes_up += up.len() as u64;
            let req = Request::decode(&up).context("request decodes")?;
            let resp = hub_side.handle_request(req, now, hub);
            let down = resp.encode();
            report.bytes_down += down.len() as u64;
            observe(&up, &down);
            session.handle_response(Response::decode(&down).context("response decodes")?, now)?;
            continue;
        }
        if session.is_caught_up() {
            session.handle_disconnected();
            return Ok(report);
        }
        // Nothing to send and not caught up: only a stall backoff can cause
        // this (a chain-level rejection that needs an operator).
        session.handle_disconnected();
        return Ok(report);
    }
    bail!("sync did not finish within {MAX_EXCHANGES} exchanges")
}
