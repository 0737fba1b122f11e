//! The LAN side of the run loop: static peers dialled with backoff, offers
//! of this node's own transactions ([`super::super::lan`]), answers to
//! peers' offers, and carrying peers' transactions to the hub.

use super::{HubLink, Runner};
use crate::net::backoff::Backoff;
use crate::net::config::NetConfig;
use crate::net::lan::{LanRequest, LanResponse, MAX_OFFER_TXS};
use libp2p::request_response::{self, OutboundRequestId, ResponseChannel};
use libp2p::swarm::dial_opts::{DialOpts, PeerCondition};
use libp2p::{Multiaddr, PeerId};
use mykey_net::{Frame, node_id_of};
use mykey_sync_proto::wire::{Push, Request, Response};
use mykey_sync_proto::{NodeId, UnixMillis};
use tokio::time::Instant;
use tracing::{debug, info, warn};

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
        let relay = (self.link == HubLink::Up).then_some(self.next_relay_at);
        [retry, gossip, relay].into_iter().flatten().min()
    }

    pub(super) fn on_peer_connected(&mut self, peer: PeerId) {
        let Some(node) = node_id_of(&peer) else {
            warn!(%peer, "dropping peer: its key is not ed25519, so it cannot be a node");
            let _ = self.swarm.disconnect_peer_id(peer);
            return;
        };
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
        info!(peer = %node.short(), "LAN peer connected");
        self.next_gossip_at = Instant::now();
    }

    pub(super) fn on_peer_closed(&mut self, peer: PeerId) {
        let Some(p) = self.lan.get_mut(&peer) else {
            return;
        };
        info!(peer = %p.node.short(), "LAN peer gone");
        p.connected = false;
        p.in_flight = None;
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
        let last = self.known_seq;
        let peers: Vec<PeerId> = self
            .lan
            .iter()
            .filter(|(_, p)| p.connected && p.in_flight.is_none())
            .map(|(id, _)| *id)
            .collect();
        for peer in peers {
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
            } => self.on_offer(peer, request, channel, now),
            Event::Message {
                peer,
                message:
                    Message::Response {
                        request_id,
                        response,
                    },
                ..
            } => {
                let Some(p) = self.lan.get_mut(&peer) else {
                    return;
                };
                if p.in_flight != Some(request_id) {
                    return;
                }
                p.in_flight = None;
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
                        warn!(peer = %p.node.short(), "LAN peer refused our offer: {why}")
                    }
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
                    debug!(peer = %p.node.short(), "offer failed: {error}");
                }
            }
            Event::InboundFailure { peer, error, .. } => {
                debug!(%peer, "LAN request failed: {error}");
            }
            Event::ResponseSent { .. } => {}
        }
    }

    fn on_offer(
        &mut self,
        peer: PeerId,
        frame: Frame,
        channel: ResponseChannel<Frame>,
        now: UnixMillis,
    ) {
        let answer = match self.answer_offer(peer, frame, now) {
            Ok(have_through) => LanResponse::Ack { have_through },
            Err(why) => {
                warn!(%peer, "refused a LAN offer: {why}");
                LanResponse::Refused(why)
            }
        };
        let _ = self
            .swarm
            .behaviour_mut()
            .lan
            .send_response(channel, Frame::Message(answer.encode()));
    }

    fn answer_offer(&mut self, peer: PeerId, frame: Frame, now: UnixMillis) -> Result<u64, String> {
        let node = self
            .lan
            .get(&peer)
            .map(|p| p.node)
            .ok_or_else(|| "offer from a peer that is not a connected LAN peer".to_owned())?;
        let bytes = frame.into_message()?;
        let LanRequest::Offer { txs } = LanRequest::decode(&bytes).map_err(|e| e.to_string())?;
        for tx in &txs {
            let v = tx
                .verify()
                .map_err(|e| format!("transaction not authentic: {e}"))?;
            if v.payload().node != node {
                return Err(format!(
                    "offered a transaction signed by {}, not by the peer {}: nodes offer only their own",
                    v.payload().node.short(),
                    node.short()
                ));
            }
        }
        if !txs.is_empty() {
            let n = self
                .node
                .accept_peer_txs(&txs, now)
                .map_err(|e| e.to_string())?;
            if n > 0 {
                info!(peer = %node.short(), new = n, "stored a LAN peer's transactions");
            }
        }
        self.node
            .peer_have_through(&node)
            .map_err(|e| format!("store: {e}"))
    }

    /// With a live, caught-up hub session, carries peers' transactions that
    /// the hub has not reported as processed.
    pub(super) fn maybe_relay(&mut self) {
        if self.link != HubLink::Up
            || self.relay_in_flight.is_some()
            || !self.session.is_caught_up()
            || Instant::now() < self.next_relay_at
        {
            return;
        }
        self.next_relay_at = Instant::now() + NetConfig::ms(self.net.relay_interval_ms);
        let txs = match self
            .node
            .peer_txs_undelivered(crate::net::lan::MAX_OFFER_TXS)
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
            Ok(Response::Receipts(r)) => {
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
