//! Counter operations: what staff and card holders do at a node, with the
//! card reader's faults (a card pulled mid-operation, wrong PINs that lock
//! the card after three tries). Each operation calls the node core exactly as
//! the node's HTTP handler would, then tells the session about the new seq.
//! Above the PIN threshold the holder's virtual card (`cards.rs`) is on the
//! reader: the node's real card path reads and chains its certificate and
//! has it sign the redeem's binding, as `mykey-node watch` does.

use crate::cards::{self, OnReader};
use crate::hub_host::HubCore;
use crate::plan::{Op, OpSpec};
use crate::world::{Acked, AtTime, Failure, World, fail};
use mykey_node::card::{Pin, ProveError, VerifiedCardProof, prove_redeem, read_auth_cert, trust};
use mykey_node::rules::Decline;
use mykey_node::{Done, Lookup, OpError};
use mykey_sync_proto::{FacilityCardNumber, Points, RedeemBinding};

fn decline_name(e: &OpError) -> String {
    match e {
        OpError::Declined(d) => match d {
            Decline::ZeroAmount => "zero amount",
            Decline::NotEnrolled => "node not enrolled yet",
            Decline::CertificateExpired => "node certificate expired (clock)",
            Decline::NodeRevoked => "node revoked",
            Decline::NotAllowed(_) => "operation not allowed",
            Decline::CardSuspended => "card suspended",
            Decline::CardSuperseded => "card superseded",
            Decline::PinRequired { .. } => "PIN required (wrong PIN)",
            Decline::InsufficientBalance { .. } => "insufficient balance",
            Decline::CardOfflineLimit { .. } => "per-card offline limit",
            Decline::NodeExposureLimit { .. } => "node exposure limit",
            Decline::NoRight { .. } => "strict: no right at this stall",
        }
        .to_owned(),
        OpError::NotRegistered => "card not known to node yet".to_owned(),
        OpError::Visitor { .. } => "card of another municipality".to_owned(),
        OpError::AlreadyLinked(_) => "already linked".to_owned(),
        OpError::NotLinked(_) => "not linked".to_owned(),
        OpError::NotStrict(_) => "not in strict mode".to_owned(),
        OpError::TransferToSelf => "right transfer to itself".to_owned(),
        OpError::NoGrant => "no hub grant for the right".to_owned(),
        OpError::ProofNotForThis => "PIN proof made for another transaction".to_owned(),
        OpError::Voucher(_) => "voucher refused".to_owned(),
        OpError::DonationBeyondBalance { .. } => "donation beyond the balance".to_owned(),
        OpError::NoSuchDonationProgramme(_) => "donation programme not open here".to_owned(),
        OpError::NotVoucherIssuer => "node not a voucher issuer".to_owned(),
        OpError::KioskBatchesExhausted => "kiosk batch numbers used up".to_owned(),
        OpError::BadVoucherIssue(_) => "vouchers do not hold together".to_owned(),
        OpError::BadVoucherExpiry => "voucher expiry out of range".to_owned(),
        OpError::VouchersBeyondBalance { .. } => "vouchers beyond the balance".to_owned(),
        OpError::Store(_) => "store".to_owned(),
    }
}

impl<H: HubCore> World<H> {
    pub(crate) fn on_op(&mut self, spec: OpSpec) -> Result<bool, Failure> {
        let t = self.now;
        let n = spec.node;
        if matches!(spec.op, Op::Redeem(_)) {
            self.metrics.redeem_asked += 1;
        }
        if !self.nodes[n].is_up() {
            *self.metrics.aborted.entry("node down").or_default() += 1;
            return Ok(false);
        }
        if self.rng.chance(self.plan.card_faults.pulled) && !matches!(spec.op, Op::Lookup) {
            // The reader lost the card before the node was asked to commit:
            // nothing happened, the staff sees "tap again".
            *self.metrics.aborted.entry("card pulled").or_default() += 1;
            return Ok(false);
        }
        let card = self.holders[spec.holder].card.clone();
        let wall = self.nodes[n].clock.wall(t);
        let result: Result<Option<Done>, OpError> = match spec.op {
            Op::Lookup => {
                let core = self.core(n)?;
                let found = core.lookup(&card).at(t)?;
                self.metrics.lookups += 1;
                if let Lookup::Found { account, .. } = found
                    && account != self.holders[spec.holder].account
                {
                    return fail(
                        t,
                        format!("node {n} resolves a card to another holder's account"),
                    );
                }
                Ok(None)
            }
            Op::Link => {
                let h = &mut self.holders[spec.holder];
                h.links += 1;
                let number = format!("L{}-{}-{}", n, spec.holder, h.links);
                let number = FacilityCardNumber::parse(&number).at(t)?;
                self.core_mut(n)?.link(&card, number, wall).map(Some)
            }
            Op::Grant(p) => {
                let program = self.program.clone();
                let pts = Points::new(p).at(t)?;
                self.core_mut(n)?.grant(&card, program, pts, wall).map(Some)
            }
            Op::Redeem(p) => return self.redeem(spec, p),
        };
        self.finish(spec, result)
    }

    fn redeem(&mut self, spec: OpSpec, p: u64) -> Result<bool, Failure> {
        let t = self.now;
        let n = spec.node;
        let card = self.holders[spec.holder].card.clone();
        let pin_threshold = self.limits[n].pin_threshold.get();
        // Above the threshold the holder types a PIN: the wrong one now and
        // then (drawn from the seed); the card counts the tries.
        let mut wrong_pin = None;
        if p > pin_threshold {
            if self.holders[spec.holder].pin_tries_left == 0 {
                *self.metrics.aborted.entry("card PIN locked").or_default() += 1;
                return Ok(false);
            }
            wrong_pin = Some(self.rng.chance(self.plan.card_faults.wrong_pin));
        }
        if self.plan.strict {
            self.gather_rights(n, spec.holder, p)?;
        }
        let wall = self.nodes[n].clock.wall(t);
        let pts = Points::new(p).at(t)?;
        // The card signs the binding of the very redeem the node signs next
        // (after any right the stall just received). A wrong PIN gives no
        // proof; the counter still asks the node, which must refuse.
        let proof = match wrong_pin {
            None => None,
            Some(wrong) => match self.core(n)?.redeem_binding(&card, pts, wall) {
                Ok(binding) => self.card_proof(n, spec.holder, binding, wrong)?,
                // The node declines the redeem below, with its reason.
                Err(_) => None,
            },
        };
        let result = self
            .core_mut(n)?
            .redeem(&card, pts, proof.as_ref(), wall)
            .map(Some);
        if let Ok(Some(done)) = &result {
            self.honest_redeems.insert(done.tx, (n, p));
        }
        if let Err(OpError::Declined(Decline::NoRight { .. })) = &result {
            let why = self.no_right_reason(spec.holder, p)?;
            *self.metrics.declines.entry(why.into()).or_default() += 1;
            return Ok(false);
        }
        let committed_bytes = match &result {
            Ok(Some(done)) => self.tx_len(n, done.seq)?,
            _ => 0,
        };
        if let Ok(Some(done)) = &result
            && self.crash_inside_op(n)
        {
            // Committed, then the process died before the counter heard:
            // the person sees "tap again". The transaction is durable, so
            // it counts as signed and the hub must process it exactly once.
            *self.metrics.signed.entry("redeem").or_default() += 1;
            self.metrics.tx_bytes += committed_bytes;
            self.metrics.committed_unheard += 1;
            self.acked.insert(
                done.tx,
                Acked {
                    node: n,
                    seq: done.seq,
                    signed_at: t,
                },
            );
            self.spent_at[spec.holder].insert(n);
            return Ok(false);
        }
        if let Ok(Some(_)) = &result {
            if p > pin_threshold && proof.is_none() {
                return fail(
                    t,
                    format!("node {n} took {p} pt above the PIN threshold without a PIN"),
                );
            }
            self.spent_at[spec.holder].insert(n);
        }
        self.finish(spec, result)
    }

    fn finish(
        &mut self,
        spec: OpSpec,
        result: Result<Option<Done>, OpError>,
    ) -> Result<bool, Failure> {
        let t = self.now;
        let n = spec.node;
        match result {
            Ok(None) => Ok(false),
            Ok(Some(done)) => {
                let kind = match spec.op {
                    Op::Lookup => "lookup",
                    Op::Link => "link",
                    Op::Grant(_) => "grant",
                    Op::Redeem(_) => "redeem",
                };
                *self.metrics.signed.entry(kind).or_default() += 1;
                self.acked.insert(
                    done.tx,
                    Acked {
                        node: n,
                        seq: done.seq,
                        signed_at: t,
                    },
                );
                self.metrics.tx_bytes += self.tx_len(n, done.seq)?;
                let mono = self.nodes[n].clock.mono(t);
                self.nodes[n].session.note_local_seq(done.seq, mono);
                self.pump(n)?;
                Ok(false)
            }
            Err(OpError::Store(e)) => fail(t, format!("node {n} store failed: {e}")),
            Err(e) => {
                if matches!(spec.op, Op::Redeem(_)) {
                    *self.metrics.declines.entry(decline_name(&e)).or_default() += 1;
                } else {
                    let key: &'static str = match spec.op {
                        Op::Link => "link refused",
                        _ => "grant refused",
                    };
                    *self.metrics.aborted.entry(key).or_default() += 1;
                }
                Ok(false)
            }
        }
    }

    /// Holder `h`'s card on node `n`'s reader for a spend bound as
    /// `binding`: its certificate is read over APDUs and chained to the
    /// test CA at the node's wall time, the PIN is entered (the wrong one
    /// when `wrong`) and the card signs. `None`: the card refused the PIN.
    pub(crate) fn card_proof(
        &mut self,
        n: usize,
        h: usize,
        binding: RedeemBinding,
        wrong: bool,
    ) -> Result<Option<VerifiedCardProof>, Failure> {
        let t = self.now;
        let kit = cards::kit().at(t)?;
        let generation = self.holders[h].old_cards.len();
        let mut card = kit
            .card(h, generation, self.holders[h].pin_tries_left)
            .at(t)?;
        let now_unix = (self.nodes[n].clock.wall(t).0 / 1000) as i64;
        let digits = if wrong {
            cards::wrong_pin(h)
        } else {
            cards::pin(h)
        };
        let pin = Pin::parse(std::str::from_utf8(&digits).at(t)?).at(t)?;
        let proved = {
            let mut reader = OnReader(&mut card);
            let cert = read_auth_cert(&mut reader).at(t)?;
            let trusted = trust(cert, &kit.trusted_cas(), now_unix).at(t)?;
            prove_redeem(&mut reader, &trusted, pin, binding)
        };
        self.holders[h].pin_tries_left = card.tries_left();
        match proved {
            Ok(proof) => {
                self.metrics.card_proofs += 1;
                Ok(Some(proof))
            }
            Err(ProveError::WrongPin { .. } | ProveError::Locked) => Ok(None),
            Err(e) => fail(t, format!("node {n}: holder {h}'s card proof failed: {e}")),
        }
    }

    /// Bytes of node `n`'s signed transaction `seq`.
    fn tx_len(&self, n: usize, seq: u64) -> Result<u64, Failure> {
        let txs = self.core(n)?.outbox_from(seq, 1).at(self.now)?;
        Ok(txs.first().map_or(0, |tx| tx.to_bytes().len() as u64))
    }

    pub(crate) fn core(&self, n: usize) -> Result<&mykey_node::Node, Failure> {
        match &self.nodes[n].core {
            Some(c) => Ok(c),
            None => fail(self.now, format!("node {n} is down")),
        }
    }

    pub(crate) fn core_mut(&mut self, n: usize) -> Result<&mut mykey_node::Node, Failure> {
        let now = self.now;
        match &mut self.nodes[n].core {
            Some(c) => Ok(c),
            None => fail(now, format!("node {n} is down")),
        }
    }
}
