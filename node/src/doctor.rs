//! `mykey-node doctor`: what a person checks when a counter misbehaves, in
//! one command. Each check is a line, `ok`, `warn` or `fail`, with what was
//! found and what to do ([`mykey_net::doctor`]).
//!
//! It changes nothing: it never creates a key or a store (a missing
//! `node.key` is a failure to restore, not a file to make), and it asks the
//! hub with one bounded `Hello`, the first message of every sync session,
//! for reachability, enrolment and the hub's clock.

use std::path::Path;
use std::time::Duration;

use futures::StreamExt as _;
use libp2p::request_response::{self, Message};
use libp2p::swarm::SwarmEvent;
use mykey_net::doctor::{Check, Level, disk, mode};
use mykey_net::{Behaviour, BehaviourEvent, Frame, LinkTiming, peer_id_of};
use mykey_sync_proto::wire::{Hello, Request, Response};
use mykey_sync_proto::{NodeId, UnixMillis};

use crate::config::DataDir;
use crate::net::config::{NetConfig, parse_addr};
use crate::net::unix_now;

/// How long the hub has to answer before it counts as unreachable.
pub const HUB_TIMEOUT: Duration = Duration::from_secs(5);
/// Enrolment ending within this many days is a warning.
const EXPIRY_WARN_DAYS: u64 = 14;
/// A clock this far off the hub's is a warning, and this far a failure
/// (transaction times and enrolment expiry are judged by the clocks).
const SKEW_WARN_MS: u64 = 5_000;
const SKEW_FAIL_MS: u64 = 60_000;

/// Runs every check on the node in `dir`.
pub fn run(dir: &DataDir, hub_timeout: Duration) -> Vec<Check> {
    let mut checks = vec![];
    let root = dir.root();
    if !root.is_dir() {
        checks.push(Check::fail(
            "data directory",
            format!("no node data directory at {}", root.display()),
            format!(
                "create one with `mykey-node init --data {} --hub-key HEX`, or give --data the right directory",
                root.display()
            ),
        ));
        return checks;
    }
    checks.push(mode("data directory", root, 0o700, Level::Warn));
    let config = match dir.config() {
        Ok(c) => c,
        Err(e) => {
            checks.push(Check::fail("config", e.to_string(), ""));
            return checks;
        }
    };
    checks.push(Check::ok(
        "config",
        format!("{} reads", dir.config_path().display()),
    ));
    let key = mode("key", &dir.key_path(), 0o600, Level::Fail);
    let key_ok = key.level != Level::Fail;
    checks.push(key);
    if !key_ok {
        // Opening the node would make a new key: never here.
        return checks;
    }
    let mut node = match dir.open() {
        Ok(n) => n,
        Err(e) => {
            checks.push(Check::fail("store", e.to_string(), ""));
            return checks;
        }
    };
    let now = unix_now();
    let status = node.status();
    let limits = node.limits().ok().flatten();
    match &status {
        Ok(s) => checks.push(Check::ok(
            "store",
            format!(
                "node.sqlite opens: {} signed, {} receipted by the hub, {} waiting to be sent",
                s.last_seq, s.receipted_seq, s.outbox.pending
            ),
        )),
        Err(e) => checks.push(Check::fail("store", e.to_string(), "")),
    }
    checks.push(match &limits {
        Some(l) => Check::ok(
            "enrolled",
            format!(
                "facility {} of municipality {}, may {}",
                l.facility,
                l.municipality,
                l.allowed_ops
                    .iter()
                    .map(|o| o.name())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        ),
        None => Check::warn(
            "enrolled",
            "this node has no certificate from the hub yet",
            format!(
                "enrol node {} at the hub (mykey-hub node enrol --node {} --facility …), then let `mykey-node run` reach it",
                node.id(),
                node.id()
            ),
        ),
    });
    if let Some(l) = &limits {
        checks.push(expiry(l.valid_until, now));
    }
    if let Some(l) = &limits {
        let strict = node.store_mut().read().strict(l.municipality).ok();
        let withdrawn = status.as_ref().map_or(0, |s| s.withdrawn_rights.len());
        checks.push(match (strict, withdrawn) {
            (Some(true), 0) => Check::ok(
                "strict mode",
                format!(
                    "on for {}: redeems spend rights the hub gave this node",
                    l.municipality
                ),
            ),
            (Some(true), n) => Check::warn(
                "strict mode",
                format!(
                    "on for {}; {n} received rights were withdrawn by the hub",
                    l.municipality
                ),
                "see `mykey-node status` for which, and ask the giving node's staff",
            ),
            (Some(false), _) => Check::ok(
                "strict mode",
                format!(
                    "off for {}: spends follow the bounded offline limits",
                    l.municipality
                ),
            ),
            (None, _) => Check::warn(
                "strict mode",
                "could not read the mode",
                "run `mykey-node status`",
            ),
        });
    }
    let (hub_check, skew) = hub(dir, &config.hub_addr, &node, hub_timeout);
    checks.push(hub_check);
    if let Some(skew) = skew {
        checks.push(clock(skew));
    }
    checks.push(readers());
    checks.push(disk(root));
    checks
}

fn expiry(valid_until: UnixMillis, now: UnixMillis) -> Check {
    let day = crate::expiry::last_day(valid_until);
    if valid_until <= now {
        return Check::fail(
            "certificate",
            format!("the hub's certificate of this node ended on {day}: every redeem is declined"),
            "ask the hub operator to renew the enrolment (mykey-hub node enrol … again), then let `mykey-node run` reach the hub",
        );
    }
    let days = (valid_until.0 - now.0) / 86_400_000;
    let found = format!("valid through {day} ({days} days left)");
    if days < EXPIRY_WARN_DAYS {
        return Check::warn(
            "certificate",
            found,
            "ask the hub operator to renew the enrolment before then",
        );
    }
    Check::ok("certificate", found)
}

fn clock(skew_ms: i64) -> Check {
    let found = format!(
        "this clock is {} s {} the hub's",
        skew_ms.unsigned_abs() as f64 / 1000.0,
        if skew_ms >= 0 { "ahead of" } else { "behind" }
    );
    let todo = "set the time by NTP (timedatectl set-ntp true)";
    match skew_ms.unsigned_abs() {
        s if s >= SKEW_FAIL_MS => Check::fail("clock", found, todo),
        s if s >= SKEW_WARN_MS => Check::warn("clock", found, todo),
        _ => Check::ok("clock", found),
    }
}

/// The hub: reachable, enrolled, and its clock; with the skew (node minus
/// hub, ms) when it answered.
fn hub(
    dir: &DataDir,
    hub_addr: &Option<String>,
    node: &crate::node::Node,
    timeout: Duration,
) -> (Check, Option<i64>) {
    let hub = node.hub();
    let peer = peer_id_of(&hub);
    let net = match NetConfig::load(dir.root()) {
        Ok(n) => n,
        Err(e) => return (Check::fail("hub", e.to_string(), ""), None),
    };
    let mut addrs = vec![];
    for text in hub_addr.iter().chain(&net.hub_addrs) {
        match parse_addr(text).and_then(|a| crate::net::run::strip_peer(a, &peer)) {
            Ok(a) => addrs.push(a),
            Err(e) => return (Check::fail("hub", e, "fix hub_addr in node.toml"), None),
        }
    }
    if addrs.is_empty() {
        return (
            Check::warn(
                "hub",
                "no hub address: the node serves from its store and never syncs",
                "set hub_addr in node.toml (the `listening on …` line of mykey-hub serve)",
            ),
            None,
        );
    }
    let retry = retry_note(dir.root(), &net);
    let (last_seq, _, fact_cursor) = node.sync_position().unwrap_or((0, 0, 0));
    let hello = Hello {
        node: node.id(),
        node_time: unix_now(),
        last_seq,
        fact_cursor,
        software: concat!("mykey-node-doctor/", env!("CARGO_PKG_VERSION")).to_owned(),
    };
    let key = match crate::key::NodeKey::load_or_create(&dir.key_path()) {
        Ok(k) => k,
        Err(e) => return (Check::fail("hub", e.to_string(), ""), None),
    };
    let shown = addrs
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(", ");
    let sent_at = unix_now();
    let answer = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())
        .and_then(|rt| rt.block_on(ask_hub(key.signing_key(), hub, addrs, hello, timeout)));
    let back_at = unix_now();
    match answer {
        Ok(Response::Welcome(w)) => {
            // The hub read its clock about halfway through the exchange.
            let mid = sent_at.0 / 2 + back_at.0 / 2;
            let skew = i64::try_from(mid).unwrap_or(i64::MAX)
                - i64::try_from(w.hub_time.0).unwrap_or(i64::MAX);
            (
                Check::ok(
                    "hub",
                    format!(
                        "{} answered at {shown} in {} ms and knows this node",
                        hub.short(),
                        back_at.0.saturating_sub(sent_at.0)
                    ),
                ),
                Some(skew),
            )
        }
        Ok(Response::Refused(r)) => (
            Check::fail(
                "hub",
                format!("{} at {shown} refused this node: {r}", hub.short()),
                "",
            ),
            None,
        ),
        Ok(other) => (
            Check::warn(
                "hub",
                format!(
                    "{} at {shown} answered {other:?}, not a welcome",
                    hub.short()
                ),
                "check that hub_addr points at a MyKey hub",
            ),
            None,
        ),
        Err(why) => (
            Check::fail(
                "hub",
                format!("cannot reach {} at {shown}: {why}", hub.short()),
                format!("check the hub runs and the network between; {retry}"),
            ),
            None,
        ),
    }
}

/// Who tries again, and when: the running `mykey-node run`, or nobody.
fn retry_note(root: &Path, net: &NetConfig) -> String {
    match mykey_net::dirlock::DirLock::acquire(root, "run", "mykey-node run") {
        Ok(_free) => {
            "no `mykey-node run` is running here, so nothing tries again: start it".to_owned()
        }
        Err(mykey_net::dirlock::LockError::Held { pid, .. }) => format!(
            "mykey-node run (pid {}) tries again with backoff, at most {} s apart; its log says when the next try is",
            pid.map_or_else(|| "?".to_owned(), |p| p.to_string()),
            net.backoff_cap_ms / 1000
        ),
        Err(e) => e.to_string(),
    }
}

/// One `Hello` to the hub over the real transport, bounded by `timeout`.
async fn ask_hub(
    key: &ed25519_dalek::SigningKey,
    hub: NodeId,
    addrs: Vec<libp2p::Multiaddr>,
    hello: Hello,
    timeout: Duration,
) -> Result<Response, String> {
    let timing = LinkTiming {
        request_timeout: timeout,
        ..LinkTiming::default()
    };
    let agent = concat!("mykey-node-doctor/", env!("CARGO_PKG_VERSION"));
    let mut swarm =
        mykey_net::build_swarm(key, &timing, |kp| Ok(Behaviour::new(kp, agent, &timing)))
            .map_err(|e| e.to_string())?;
    let peer = peer_id_of(&hub);
    let id = swarm.behaviour_mut().sync.send_request_with_addresses(
        &peer,
        Frame::Message(Request::Hello(hello).encode()),
        addrs,
    );
    let wait = async {
        loop {
            match swarm.select_next_some().await {
                SwarmEvent::Behaviour(BehaviourEvent::Sync(request_response::Event::Message {
                    message:
                        Message::Response {
                            request_id,
                            response,
                        },
                    ..
                })) if request_id == id => {
                    let bytes = response.into_message()?;
                    return Response::decode(&bytes).map_err(|e| e.to_string());
                }
                SwarmEvent::Behaviour(BehaviourEvent::Sync(
                    request_response::Event::OutboundFailure {
                        request_id, error, ..
                    },
                )) if request_id == id => {
                    return Err(one_line(&error.to_string()));
                }
                SwarmEvent::OutgoingConnectionError { error, .. } => {
                    return Err(one_line(&error.to_string()));
                }
                _ => {}
            }
        }
    };
    match tokio::time::timeout(timeout, wait).await {
        Ok(r) => r,
        Err(_) => Err(format!("no answer within {} s", timeout.as_secs())),
    }
}

/// A dial error as a person reads it: the usual causes by name, else
/// libp2p's text on one line.
fn one_line(text: &str) -> String {
    if text.contains("Connection refused") {
        return "connection refused: nothing listens there (the hub is stopped, or the port is wrong)".to_owned();
    }
    if text.contains("No route to host") || text.contains("Network is unreachable") {
        return "no route to the hub's network".to_owned();
    }
    crate::net::run::one_line(text)
}

/// pcscd and its readers (a warning only: a node that only syncs needs none).
fn readers() -> Check {
    use crate::card::{Reader, ReaderError};
    let reader = match Reader::establish() {
        Ok(r) => r,
        Err(ReaderError::NoService(_)) => {
            return Check::warn(
                "card readers",
                "the smart card service (pcscd) is not running",
                "start it (systemctl start pcscd.socket) if this node serves a counter",
            );
        }
        Err(e) => return Check::warn("card readers", e.to_string(), ""),
    };
    match reader.list() {
        Ok(names) if names.is_empty() => Check::warn(
            "card readers",
            "pcscd runs, but no reader is connected",
            "plug in a reader if this node serves a counter",
        ),
        Ok(names) => Check::ok(
            "card readers",
            format!("pcscd runs; readers: {}", names.join(", ")),
        ),
        Err(e) => Check::warn("card readers", e.to_string(), ""),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expiry_and_skew_levels() {
        let day = 86_400_000;
        let now = UnixMillis(1_800_000_000_000);
        assert_eq!(expiry(UnixMillis(now.0 - 1), now).level, Level::Fail);
        assert_eq!(expiry(UnixMillis(now.0 + 3 * day), now).level, Level::Warn);
        assert_eq!(expiry(UnixMillis(now.0 + 90 * day), now).level, Level::Ok);
        assert_eq!(clock(1_000).level, Level::Ok);
        assert_eq!(clock(-6_000).level, Level::Warn);
        assert!(clock(-6_000).found.contains("behind"));
        assert_eq!(clock(120_000).level, Level::Fail);
    }
}
