//! The LAN side of the run loop: static peers dialled with backoff, offers
//! of this node's own transactions ([`super::super::lan`]), answers to
//! peers' offers, and carrying peers' transactions to the hub.

use super::{HubLink, Runner};
use crate::net::backoff::Backoff;
use crate::net::config::NetConfig;
use crate::net::lan::{self, LanRequest, LanResponse, MAX_OFFER_TXS, crosses_lan};
use libp2p::request_response::{self, OutboundRequestId, ResponseChannel};
use libp2p::swarm::dial_opts::{DialOpts, PeerCondition};
use libp2p::{Multiaddr, PeerId};
use mykey_net::{Frame, node_id_of};
use mykey_sync_proto::session::MAX_SHARD_EXCHANGES;
use mykey_sync_proto::shard::{Epoch, ShardId};
use mykey_sync_proto::wire::{Push, Request, Response, ShardSync};
use mykey_sync_proto::{NodeId, UnixMillis};
use std::collections::VecDeque;
use tokio::time::Instant;
use tracing::{debug, info, warn};

/// Refused LAN peers remembered (to log each once at warn), at most.
const MAX_REFUSED_REMEMBERED: usize = 1024;

/// What the loop knows of one LAN peer.
pub(super) struct LanPeer {
    pub(super) node: NodeId,
    /// Our own address book for it (static peers); empty for peers that dialled us.
    pub(super) addrs: Vec<Multiaddr>,
    pub(super) connected: bool,
    /// When to dial next (static peers that are not connected nor being dialled).
    pub(super) retry_at: Option<Instant>,
    pub(super) backoff: Backoff,
    pub(super) in_flight: Option<OutboundRequestId>,
    /// How far the peer holds our chain, as it last said.
    pub(super) peer_has: Option<u64>,
    /// Shards still to merge with the peer in this round (deny first).
    pub(super) shard_queue: VecDeque<(ShardId, Epoch)>,
    /// The shard being merged: exchanges so far, and whether the peer's
    /// last answer carried a message.
    pub(super) shard_turn: Option<(ShardId, Epoch, u32, bool)>,
    /// When to start the next round of shard merges.
    pub(super) next_shards_at: Instant,
}

impl LanPeer {
    pub(super) fn new(node: NodeId, addrs: Vec<Multiaddr>, net: &NetConfig, seed: u64) -> LanPeer {
        LanPeer {
            node,
            retry_at: (!addrs.is_empty()).then(Instant::now),
            addrs,
            connected: false,
            backoff: Backoff::new(
                NetConfig::ms(net.backoff_base_ms),
                NetConfig::ms(net.backoff_cap_ms),
                seed,
            ),
            in_flight: None,
            peer_has: None,
            shard_queue: VecDeque::new(),
            shard_turn: None,
            next_shards_at: Instant::now(),
        }
    }
}

impl Runner {
    /// Dials static peers that are due.
    pub(super) fn maybe_dial_peers(&mut self) {
        let now = Instant::now();
        for (peer, p) in self.lan.iter_mut() {
            if p.connected || p.addrs.is_empty() || p.retry_at.is_none_or(|t| t > now) {
                continue;
            }
            p.retry_at = None;
            let opts = DialOpts::peer_id(*peer)
                .addresses(p.addrs.clone())
                .condition(PeerCondition::DisconnectedAndNotDialing)
                .build();
            if let Err(e) = self.swarm.dial(opts) {
                debug!(%peer, "cannot dial LAN peer: {e}");
                p.retry_at = Some(now + p.backoff.next_delay());
            }
        }
    }

    /// The earliest instant a LAN timer is due.
    pub(super) fn lan_deadline(&self) -> Option<Instant> {
        let retry = self.lan.values().filter_map(|p| p.retry_at).min();
        let gossip = self
            .lan
            .values()
            .any(|p| p.connected)
            .then_some(self.next_gossip_at);
        [retry, gossip, self.relay_due_at()]
            .into_iter()
            .flatten()
            .min()
    }

    /// When the next carried push may go, if one may go at all: the hub
    /// link is up, no carried push is in flight and the node's own session
    /// is caught up. Not before: a relay instant kept in the past while one
    /// of these waits would wake the run loop at once, over and over (it
    /// spun a core through every catch-up).
    fn relay_due_at(&self) -> Option<Instant> {
        relay_due_at(
            self.link == HubLink::Up,
            self.relay_in_flight.is_some(),
            self.session.is_caught_up(),
            self.next_relay_at,
        )
    }

    /// Why a LAN peer is not admitted now (`None`: it is; see
    /// [`lan::admission`]).
    pub(super) fn lan_refusal(&self, node: &NodeId) -> Option<String> {
        lan::admission(&self.node, node)
    }

    /// Refuses a LAN peer: logs why (at warn once per peer until it is
    /// admitted, then at debug) and closes the connection.
    fn refuse_peer(&mut self, peer: PeerId, node: NodeId, why: &str) {
        // Bounded: a stranger with ever new keys only makes the log louder.
        if self.refused_peers.len() >= MAX_REFUSED_REMEMBERED {
            self.refused_peers.clear();
        }
        if self.refused_peers.insert(peer) {
            warn!(peer = %node.short(), "refused LAN peer: {why}");
        } else {
            debug!(peer = %node.short(), "refused LAN peer again: {why}");
        }
        let _ = self.swarm.disconnect_peer_id(peer);
    }

    pub(super) fn on_peer_connected(&mut self, peer: PeerId) {
        let Some(node) = node_id_of(&peer) else {
            warn!(%peer, "dropping peer: its key is not ed25519, so it cannot be a node");
            let _ = self.swarm.disconnect_peer_id(peer);
            return;
        };
        if let Some(why) = self.lan_refusal(&node) {
            // A static or mDNS peer stays in the book and is dialled again
            // with backoff: a new roster admits it without a restart.
            if let Some(p) = self.lan.get_mut(&peer) {
                p.connected = false;
                p.in_flight = None;
            }
            self.refuse_peer(peer, node, &why);
            return;
        }
        self.refused_peers.remove(&peer);
        let net = &self.net;
        let seed =
            self.seed ^ u64::from_le_bytes(node.as_bytes()[..8].try_into().unwrap_or([0; 8]));
        let p = self
            .lan
            .entry(peer)
            .or_insert_with(|| LanPeer::new(node, vec![], net, seed));
        p.connected = true;
        p.retry_at = None;
        p.backoff.reset();
        p.peer_has = None;
        p.in_flight = None;
        p.shard_queue.clear();
        p.shard_turn = None;
        p.next_shards_at = Instant::now();
        self.node.reset_shard_peer(&node);
        info!(peer = %node.short(), "LAN peer connected");
        self.next_gossip_at = Instant::now();
    }

    pub(super) fn on_peer_closed(&mut self, peer: PeerId) {
        let Some(p) = self.lan.get_mut(&peer) else {
            return;
        };
        if p.connected {
            info!(peer = %p.node.short(), "LAN peer gone");
        } else {
            // A dial the peer refused (or never finished): not news each time.
            debug!(peer = %p.node.short(), "LAN peer connection closed before admission");
        }
        p.connected = false;
        p.in_flight = None;
        p.shard_queue.clear();
        p.shard_turn = None;
        if p.addrs.is_empty() {
            self.lan.remove(&peer);
        } else {
            p.retry_at = Some(Instant::now() + p.backoff.next_delay());
        }
    }

    /// mDNS found or lost peers: keep their addresses in our own book, dial new ones.
    pub(super) fn on_mdns_event(&mut self, ev: libp2p::mdns::Event) {
        let me = *self.swarm.local_peer_id();
        match ev {
            libp2p::mdns::Event::Discovered(found) => {
                for (peer, addr) in found {
                    if peer == self.hub_peer || peer == me {
                        continue;
                    }
                    let Some(node) = node_id_of(&peer) else {
                        continue;
                    };
                    let (net, seed) = (&self.net, self.seed ^ self.lan.len() as u64);
                    let p = self
                        .lan
                        .entry(peer)
                        .or_insert_with(|| LanPeer::new(node, vec![], net, seed));
                    if !p.addrs.contains(&addr) {
                        info!(peer = %node.short(), %addr, "found a LAN peer by mDNS");
                        p.addrs.push(addr);
                    }
                    if !p.connected && p.retry_at.is_none() {
                        p.retry_at = Some(Instant::now());
                    }
                }
            }
            libp2p::mdns::Event::Expired(gone) => {
                for (peer, addr) in gone {
                    if let Some(p) = self.lan.get_mut(&peer) {
                        p.addrs.retain(|a| *a != addr);
                        if p.addrs.is_empty() && !p.connected {
                            self.lan.remove(&peer);
                        }
                    }
                }
            }
        }
    }

    pub(super) fn on_peer_dial_failed(&mut self, peer: PeerId) {
        if let Some(p) = self.lan.get_mut(&peer)
            && !p.connected
            && !p.addrs.is_empty()
        {
            p.retry_at = Some(Instant::now() + p.backoff.next_delay());
        }
    }

    /// Offers each connected peer what it lacks of our chain.
    pub(super) fn gossip(&mut self) {
        if Instant::now() < self.next_gossip_at {
            return;
        }
        self.next_gossip_at = Instant::now() + NetConfig::ms(self.net.gossip_ms);
        // A roster that changed drops a peer it no longer names.
        let connected: Vec<(PeerId, NodeId)> = self
            .lan
            .iter()
            .filter(|(_, p)| p.connected)
            .map(|(id, p)| (*id, p.node))
            .collect();
        for (peer, node) in connected {
            if let Some(why) = self.lan_refusal(&node) {
                if let Some(p) = self.lan.get_mut(&peer) {
                    p.connected = false;
                    p.in_flight = None;
                    p.shard_queue.clear();
                    p.shard_turn = None;
                }
                self.refuse_peer(peer, node, &format!("no longer admitted: {why}"));
            }
        }
        let last = self.known_seq;
        let peers: Vec<PeerId> = self
            .lan
            .iter()
            .filter(|(_, p)| p.connected && p.in_flight.is_none())
            .map(|(id, _)| *id)
            .collect();
        for peer in peers {
            // Shards first (the deny shard leads every round), then offers.
            if self.start_shard_merge(peer) {
                continue;
            }
            let Some(p) = self.lan.get(&peer) else {
                continue;
            };
            let txs = match p.peer_has {
                None => vec![],
                Some(h) if last > h => match self.node.outbox_from(h + 1, MAX_OFFER_TXS) {
                    Ok(t) => t,
                    Err(e) => {
                        warn!("cannot read the outbox for a LAN peer: {e}");
                        continue;
                    }
                },
                Some(_) => continue,
            };
            let n = txs.len();
            let id = self
                .swarm
                .behaviour_mut()
                .lan
                .send_request(&peer, Frame::Message(LanRequest::Offer { txs }.encode()));
            if let Some(p) = self.lan.get_mut(&peer) {
                p.in_flight = Some(id);
                debug!(peer = %p.node.short(), txs = n, "offered transactions");
            }
        }
    }

    pub(super) fn on_lan_event(
        &mut self,
        ev: request_response::Event<Frame, Frame>,
        now: UnixMillis,
    ) {
        use request_response::{Event, Message};
        match ev {
            Event::Message {
                peer,
                message:
                    Message::Request {
                        request, channel, ..
                    },
                ..
            } => self.on_lan_request(peer, request, channel, now),
            Event::Message {
                peer,
                message:
                    Message::Response {
                        request_id,
                        response,
                    },
                ..
            } => {
                let Some(p) = self.lan.get(&peer) else {
                    return;
                };
                if p.in_flight != Some(request_id) {
                    return;
                }
                let node = p.node;
                let refusal = if p.connected {
                    self.lan_refusal(&node)
                } else {
                    Some("it is not an admitted LAN peer".to_owned())
                };
                let Some(p) = self.lan.get_mut(&peer) else {
                    return;
                };
                p.in_flight = None;
                if let Some(why) = refusal {
                    // Its answer does not reach the store.
                    p.shard_turn = None;
                    p.shard_queue.clear();
                    warn!(peer = %node.short(), "dropped a LAN peer's answer: {why}");
                    return;
                }
                let answer = response
                    .into_message()
                    .and_then(|b| LanResponse::decode(&b).map_err(|e| e.to_string()));
                match answer {
                    Ok(LanResponse::Ack { have_through }) => {
                        let more = have_through < self.known_seq
                            && p.peer_has.is_none_or(|h| have_through > h);
                        p.peer_has = Some(have_through);
                        if more {
                            self.next_gossip_at = Instant::now();
                        }
                    }
                    Ok(LanResponse::Refused(why)) => {
                        // A refused shard merge ends the round with this peer.
                        p.shard_turn = None;
                        p.shard_queue.clear();
                        warn!(peer = %p.node.short(), "LAN peer refused our request: {why}")
                    }
                    Ok(LanResponse::ShardSync(s)) => self.on_shard_answer(peer, s),
                    Err(why) => warn!(peer = %p.node.short(), "bad answer from LAN peer: {why}"),
                }
            }
            Event::OutboundFailure {
                peer,
                request_id,
                error,
                ..
            } => {
                if let Some(p) = self.lan.get_mut(&peer)
                    && p.in_flight == Some(request_id)
                {
                    p.in_flight = None;
                    p.shard_turn = None;
                    p.shard_queue.clear();
                    debug!(peer = %p.node.short(), "LAN request failed: {error}");
                }
            }
            Event::InboundFailure { peer, error, .. } => {
                debug!(%peer, "LAN request failed: {error}");
            }
            Event::ResponseSent { .. } => {}
        }
    }

    /// Starts (or continues) a round of shard merges with `peer`; true when
    /// a request went out.
    fn start_shard_merge(&mut self, peer: PeerId) -> bool {
        let Some(p) = self.lan.get_mut(&peer) else {
            return false;
        };
        if p.shard_turn.is_none() && p.shard_queue.is_empty() {
            if Instant::now() < p.next_shards_at {
                return false;
            }
            p.next_shards_at = Instant::now() + NetConfig::ms(self.net.gossip_ms.max(1) * 4);
            match self.node.held_shards() {
                Ok(held) => {
                    let mut q: Vec<_> = held
                        .into_iter()
                        .filter(|(s, _)| crosses_lan(s))
                        .map(|(s, h)| (s, h.epoch))
                        .collect();
                    q.sort_by_key(|(s, _)| !s.is_deny());
                    p.shard_queue = q.into();
                }
                Err(e) => {
                    warn!("cannot read the held shards: {e}");
                    return false;
                }
            }
        }
        self.next_shard_request(peer, None)
    }

    /// Sends the next message of the shard merge with `peer`, first taking
    /// the peer's answer `received` (if any) into the shard.
    fn next_shard_request(&mut self, peer: PeerId, received: Option<ShardSync>) -> bool {
        for _ in 0..64 {
            let Some(p) = self.lan.get_mut(&peer) else {
                return false;
            };
            let node = p.node;
            if p.shard_turn.is_none() {
                let Some((shard, epoch)) = p.shard_queue.pop_front() else {
                    return false;
                };
                p.shard_turn = Some((shard, epoch, 0, false));
            }
            let Some((shard, epoch, exchanges, _)) = p.shard_turn.clone() else {
                return false;
            };
            let message = received.as_ref().and_then(|r| r.message.as_deref());
            let start = exchanges == 0 && received.is_none();
            let next = match self.node.shard_turn(&node, &shard, epoch, message, start) {
                Ok((next, got)) => {
                    if got.applied > 0 {
                        info!(peer = %node.short(), shard = %shard, items = got.applied, "merged a LAN peer's shard items");
                    }
                    next
                }
                Err(e) => {
                    warn!(peer = %node.short(), shard = %shard, "shard merge with a LAN peer failed: {e}");
                    None
                }
            };
            let Some(p) = self.lan.get_mut(&peer) else {
                return false;
            };
            let peer_sent = received.as_ref().is_some_and(|r| r.message.is_some());
            let done =
                (next.is_none() && exchanges > 0 && !peer_sent) || exchanges >= MAX_SHARD_EXCHANGES;
            if done {
                p.shard_turn = None;
                if received.is_some() {
                    // The next shard starts fresh, without the old answer.
                    return self.next_shard_request(peer, None);
                }
                continue;
            }
            p.shard_turn = Some((shard.clone(), epoch, exchanges + 1, peer_sent));
            let req = LanRequest::ShardSync(ShardSync {
                shard,
                epoch,
                message: next,
                start: exchanges == 0,
            });
            let id = self
                .swarm
                .behaviour_mut()
                .lan
                .send_request(&peer, Frame::Message(req.encode()));
            p.in_flight = Some(id);
            return true;
        }
        false
    }

    fn on_shard_answer(&mut self, peer: PeerId, s: ShardSync) {
        let ok = self
            .lan
            .get(&peer)
            .and_then(|p| p.shard_turn.as_ref())
            .is_some_and(|(shard, epoch, _, _)| *shard == s.shard && *epoch == s.epoch);
        if !ok {
            if let Some(p) = self.lan.get_mut(&peer) {
                p.shard_turn = None;
            }
            return;
        }
        self.next_shard_request(peer, Some(s));
    }

    fn on_lan_request(
        &mut self,
        peer: PeerId,
        frame: Frame,
        channel: ResponseChannel<Frame>,
        now: UnixMillis,
    ) {
        let answer = match self.answer_lan(peer, frame, now) {
            Ok(a) => a,
            Err(why) => {
                let who = node_id_of(&peer).map_or_else(|| peer.to_string(), |n| n.short());
                warn!(peer = %who, "refused a LAN request: {why}");
                LanResponse::Refused(why)
            }
        };
        let _ = self
            .swarm
            .behaviour_mut()
            .lan
            .send_response(channel, Frame::Message(answer.encode()));
    }

    /// Answers a LAN request with the one handler ([`lan::answer_request`]),
    /// only from a peer this loop admitted; a peer the rosters no longer
    /// admit is dropped.
    fn answer_lan(
        &mut self,
        peer: PeerId,
        frame: Frame,
        now: UnixMillis,
    ) -> Result<LanResponse, String> {
        let node = self
            .lan
            .get(&peer)
            .filter(|p| p.connected)
            .map(|p| p.node)
            .ok_or_else(|| {
                "this node has not admitted you as a LAN peer: the hub's LAN roster must name both nodes"
                    .to_owned()
            })?;
        let bytes = frame.into_message()?;
        match lan::answer_request(&mut self.node, &node, &bytes, now) {
            Ok(answer) => Ok(answer),
            Err(lan::LanRefusal::NotAdmitted(why)) => {
                let _ = self.swarm.disconnect_peer_id(peer);
                Err(format!("you are no longer admitted as a LAN peer: {why}"))
            }
            Err(lan::LanRefusal::Bad(why)) => Err(why),
        }
    }

    /// With a live, caught-up hub session, carries peers' transactions that
    /// the hub has not reported as processed.
    pub(super) fn maybe_relay(&mut self) {
        if self.relay_due_at().is_none_or(|t| Instant::now() < t) {
            return;
        }
        self.next_relay_at = Instant::now() + NetConfig::ms(self.net.relay_interval_ms);
        self.relay_turn = self.relay_turn.wrapping_add(1);
        let txs = match self
            .node
            .peer_txs_undelivered(crate::net::lan::MAX_OFFER_TXS, self.relay_turn)
        {
            Ok(t) if t.is_empty() => return,
            Ok(t) => t,
            Err(e) => {
                warn!("cannot read peers' transactions: {e}");
                return;
            }
        };
        let n = txs.len();
        let id = self.send_to_hub(Request::Push(Push { txs }).encode());
        debug!(txs = n, "carrying LAN peers' transactions to the hub");
        self.relay_in_flight = Some(id);
    }

    /// The hub answered a carried push.
    pub(super) fn on_relay_answer(&mut self, frame: Frame, now: UnixMillis) {
        self.relay_in_flight = None;
        let resp = frame
            .into_message()
            .and_then(|b| Response::decode(&b).map_err(|e| e.to_string()));
        match resp {
            Ok(Response::Receipts(ranges)) => {
                // `Response::decode` checked the ranges against this bound.
                let r = match ranges.expand(mykey_sync_proto::wire::MAX_PUSH_TXS) {
                    Ok(r) => r,
                    Err(e) => {
                        warn!("bad receipts for carried transactions: {e}");
                        return;
                    }
                };
                let accepted = r
                    .receipts
                    .iter()
                    .filter(|x| {
                        matches!(x.outcome, mykey_sync_proto::wire::Outcome::Accepted { .. })
                    })
                    .count();
                info!(
                    carried = r.receipts.len(),
                    accepted, "delivered LAN peers' transactions"
                );
                if let Err(e) = self.node.apply_receipts(&r, now) {
                    warn!("cannot store receipts of carried transactions: {e}");
                }
            }
            Ok(Response::Refused(r)) => warn!("the hub refused carried transactions: {r}"),
            Ok(_) => warn!("unexpected answer to carried transactions"),
            Err(why) => warn!("bad answer to carried transactions: {why}"),
        }
    }
}

/// [`Runner::relay_due_at`] on its inputs.
fn relay_due_at(
    link_up: bool,
    relay_in_flight: bool,
    caught_up: bool,
    next_relay_at: Instant,
) -> Option<Instant> {
    (link_up && !relay_in_flight && caught_up).then_some(next_relay_at)
}

#[cfg(test)]
mod tests {
    use super::relay_due_at;
    use tokio::time::Instant;

    #[test]
    fn a_relay_that_cannot_go_sets_no_deadline() {
        let past = Instant::now();
        assert_eq!(relay_due_at(true, false, true, past), Some(past));
        // Each of these would otherwise leave a deadline in the past that
        // wakes the run loop at once, again and again.
        assert_eq!(relay_due_at(true, false, false, past), None, "catching up");
        assert_eq!(
            relay_due_at(true, true, true, past),
            None,
            "carried push in flight"
        );
        assert_eq!(
            relay_due_at(false, false, true, past),
            None,
            "hub link down"
        );
    }
}
