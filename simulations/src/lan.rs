//! The festival LAN in place of libp2p: stalls offer their signed
//! transactions to the peers they reach with the real `/mykey/lan/1`
//! messages (`mykey_node::net::lan::LanRequest::Offer`, encoded to bytes),
//! which the receiving node takes with the node's own handler
//! (`mykey_node::net::lan::answer_request`, as its run loop does) and
//! answers with how far it holds the sender's chain; and any stall
//! whose WAN link is up carries what it holds for others to the hub on a
//! second connection (`Hello` as itself, then `Push` of others'
//! transactions: the hub's `ingest` accepts transactions signed by nodes
//! other than the carrier). Until healing the carrier takes what it was
//! gossiped (`relay`); after healing, what its core still counts
//! (`Node::peer_txs_undelivered`, as the node's run loop does).

use crate::hub_host::HubCore;
use crate::net::Dir;
use crate::world::{AtTime, Failure, Kind, Watched, World};
use mykey_node::net::lan::{LanRequest, LanResponse, MAX_OFFER_TXS};
use mykey_sync_proto::session::HubSession;
use mykey_sync_proto::tx::MAX_TX_PAYLOAD_BYTES;
use mykey_sync_proto::wire::{Hello, MAX_PUSH_TXS, Outcome, Push, Request, Response};
use mykey_sync_proto::{SignedTx, TxPayload, UnixMillis, codec};

/// Upper bound of transactions in one carried push.
const MAX_BATCH: usize = 500;

impl<H: HubCore> World<H> {
    pub(crate) fn on_gossip(&mut self, n: usize) -> Result<(), Failure> {
        let t = self.now;
        let Some((gossip_ms, _)) = self.plan.lan_relay else {
            return Ok(());
        };
        if self.healed_at.is_none() {
            self.push(t + gossip_ms, Kind::Gossip(n));
        }
        if !self.nodes[n].is_up() {
            return Ok(());
        }
        let peers: Vec<usize> = (0..self.nodes.len())
            .filter(|m| self.net.lan_reach(n, *m))
            .collect();
        for m in peers {
            self.offer(n, m)?;
        }
        Ok(())
    }

    /// Node `n` offers peer `m` what it lacks of `n`'s chain, as the run
    /// loop's `gossip` does: an empty offer while it does not know how far
    /// the peer holds it (the answer says), else its transactions from the
    /// first one the peer lacks.
    fn offer(&mut self, n: usize, m: usize) -> Result<(), Failure> {
        let t = self.now;
        let Some(core) = &self.nodes[n].core else {
            return Ok(());
        };
        let last = core.sync_position().at(t)?.0;
        let txs = match self.peer_has[n].get(&m).copied() {
            None => vec![],
            Some(h) if last > h => core.outbox_from(h + 1, MAX_OFFER_TXS).at(t)?,
            Some(_) => return Ok(()),
        };
        let bytes = LanRequest::Offer { txs }.encode();
        for at in self.net.send_lan(n, m, bytes.len(), t) {
            self.push(at, Kind::LanDeliver(m, n, bytes.clone()));
        }
        Ok(())
    }

    /// A `/mykey/lan/1` request from `from` reaches `to`: the node's own
    /// handler takes it and its answer goes back; what `to` took of
    /// `from`'s chain joins what it carries to the hub.
    pub(crate) fn on_lan_deliver(
        &mut self,
        to: usize,
        from: usize,
        request: Vec<u8>,
    ) -> Result<(), Failure> {
        let t = self.now;
        // Its peers' pending spends count against each wallet until the hub
        // reports their progress (bounded mode), and a right given to it
        // counts once (strict mode, see `strict`).
        let Some(answer) = self.take_lan_request(to, from, &request)? else {
            return Ok(());
        };
        let bytes = answer.encode();
        for at in self.net.send_lan(to, from, bytes.len(), t) {
            self.push(at, Kind::LanAnswer(from, to, bytes.clone()));
        }
        // The sender's own outbox in seq order: the first seq places them
        // all (the handler checked each is the sender's and authentic).
        let Ok(LanRequest::Offer { txs }) = LanRequest::decode(&request) else {
            return Ok(());
        };
        let Some(seq0) = txs.first().and_then(|tx| {
            codec::decode_canonical::<TxPayload>("tx", tx.payload_bytes(), MAX_TX_PAYLOAD_BYTES)
                .ok()
                .map(|p| p.seq)
        }) else {
            return Ok(());
        };
        for (i, tx) in txs.into_iter().enumerate() {
            let seq = seq0 + i as u64;
            if seq > self.relay_done[to].get(&from).copied().unwrap_or(0) {
                self.relay[to].entry((from, seq)).or_insert(tx);
            }
        }
        Ok(())
    }

    /// Peer `from` answered node `n`'s offer: how far it now holds `n`'s
    /// chain. More to send goes at once, as in the run loop.
    pub(crate) fn on_lan_answer(
        &mut self,
        n: usize,
        from: usize,
        bytes: Vec<u8>,
    ) -> Result<(), Failure> {
        let t = self.now;
        let Some(core) = &self.nodes[n].core else {
            return Ok(());
        };
        let Ok(LanResponse::Ack { have_through }) = LanResponse::decode(&bytes) else {
            return Ok(());
        };
        let last = core.sync_position().at(t)?.0;
        let before = self.peer_has[n].insert(from, have_through);
        let more = have_through < last && before.is_none_or(|h| have_through > h);
        if more && self.net.lan_reach(n, from) {
            self.offer(n, from)?;
        }
        Ok(())
    }

    pub(crate) fn on_carry(&mut self, n: usize) -> Result<(), Failure> {
        let t = self.now;
        let Some((_, carry_ms)) = self.plan.lan_relay else {
            return Ok(());
        };
        self.push(t + carry_ms, Kind::Carry(n));
        if !self.nodes[n].is_up() || !self.net.can_connect(n) {
            return Ok(());
        }
        let txs: Vec<SignedTx> = if self.healed_at.is_none() {
            self.relay[n].values().take(MAX_BATCH).cloned().collect()
        } else {
            // Every link is back and each node pushes its own; a stall still
            // carries what its core counts of its peers' and the hub has not
            // reported processed or refused, as the node's `maybe_relay`
            // does (a forked chain's spends are refused only when carried).
            let turn = self.relay_turn[n];
            self.relay_turn[n] = turn.wrapping_add(1);
            self.core(n)?.peer_txs_undelivered(MAX_BATCH, turn).at(t)?
        };
        if txs.is_empty() {
            return Ok(());
        }
        let hello = Request::Hello(Hello {
            node: self.nodes[n].id,
            node_time: self.nodes[n].clock.wall(t),
            last_seq: 0,
            fact_cursor: 0,
            software: "mykey-sim-carrier".into(),
        });
        let push = Request::Push(Push { txs });
        // One message holding both requests: the carrier's short session.
        let mut bytes = hello.encode();
        let split = bytes.len();
        bytes.extend(push.encode());
        let mut framed = (split as u32).to_be_bytes().to_vec();
        framed.extend(bytes);
        for at in self.net.send_wan(n, Dir::Up, framed.len(), t) {
            self.push(at, Kind::CarryToHub(n, framed.clone()));
        }
        Ok(())
    }

    pub(crate) fn on_carry_to_hub(&mut self, n: usize, framed: Vec<u8>) -> Result<bool, Failure> {
        let t = self.now;
        if !self.net.wan_passes(n, Dir::Up) {
            return Ok(false);
        }
        let (len, rest) = framed.split_at(4.min(framed.len()));
        let split = u32::from_be_bytes(len.try_into().unwrap_or([0; 4])) as usize;
        let (hello, push) = rest.split_at(split.min(rest.len()));
        let hello = Request::decode(hello).at(t)?;
        let push = Request::decode(push).at(t)?;
        let mut session = HubSession::new(self.nodes[n].id);
        let now = self.hub_clock.wall(t);
        let welcome = session.handle_request(hello, now, &mut self.hub);
        if !matches!(welcome, Response::Welcome(_)) {
            return Ok(false);
        }
        let mut watched = Watched::new(&mut self.hub);
        let resp = session.handle_request(push, now, &mut watched);
        let decided = watched.decided;
        self.note_hub_receipts(&decided);
        let bytes = resp.encode();
        for at in self.net.send_wan(n, Dir::Down, bytes.len(), t) {
            self.push(at, Kind::CarryBack(n, bytes.clone()));
        }
        Ok(true)
    }

    pub(crate) fn on_carry_back(&mut self, n: usize, bytes: Vec<u8>) -> Result<(), Failure> {
        let t = self.now;
        if !self.nodes[n].is_up() || !self.net.wan_passes(n, Dir::Down) {
            return Ok(());
        }
        let Response::Receipts(ranges) = Response::decode(&bytes).at(t)? else {
            return Ok(());
        };
        let r = ranges.expand(MAX_PUSH_TXS).at(t)?;
        for rc in &r.receipts {
            let chain_level = matches!(&rc.outcome, Outcome::Rejected(x) if x.is_chain_level());
            if chain_level {
                continue;
            }
            if let Some(origin) = self.nodes.iter().position(|x| x.id == rc.node) {
                self.relay[n].remove(&(origin, rc.seq));
                let done = self.relay_done[n].entry(origin).or_default();
                *done = (*done).max(rc.seq);
            }
        }
        // The carrier stores rejections of what it carried (the core's
        // foreign-rejection table).
        let wall: UnixMillis = self.nodes[n].clock.wall(t);
        self.core_mut(n)?.apply_receipts(&r, wall).at(t)?;
        Ok(())
    }
}
