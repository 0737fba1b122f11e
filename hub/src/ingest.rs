//! Ingest of signed transactions and the hub side of the sync protocol.
//!
//! A push is applied in one storage transaction, durable before the receipts
//! are returned. Per transaction: verify the signature, check the signer is
//! enrolled and not revoked, check its chain (a replay answers the stored
//! receipt and changes nothing; a gap or fork is refused and reported), then
//! decide with [`crate::rules`]. Chain-level refusals change nothing and stop
//! that signer's later transactions in the push; business refusals consume
//! the seq. Then facts: a confirmed balance per touched holder, then the
//! progress of each signer, so a node applying facts in order never sees
//! progress before the balance that includes it.

use crate::bounds::{BasisCheck, ProofCheck, SpendBounds};
use crate::facts::{emit, emit_all};
use crate::hub::Hub;
use crate::ledger;
use crate::model::{
    Balance, ChainHead, Incident, IncidentKind, LedgerAccount, NodeContact, NodeRecord,
};
use crate::par::par_chunks;
use crate::rules::{self, ChainVerdict, Context, Effects, LinkChange, TransferContext};
use crate::store::bounds::{QuarantineRow, QuarantineState, SpendRow};
use crate::store::{StoreError, StoreTx, retry_conflicts};
use mykey_sync_proto::session::HubService;
use mykey_sync_proto::tx::MAX_TX_PAYLOAD_BYTES;
use mykey_sync_proto::wire::{
    BalanceSnapshot, Facts, Hello, MAX_PUSH_TXS, Outcome, Receipt, Receipts, Refusal, RejectReason,
    ShardList, ShardSync, Welcome,
};
use mykey_sync_proto::{
    AccountId, FactBody, MunicipalityCode, NodeId, Points, Scope, SignedTx, TxBody, TxPayload,
    UnixMillis, VerifiedTx, VerifyError, codec,
};
use std::collections::HashMap;
use std::collections::hash_map::Entry;

/// Bound of the hub's cache of decompressed node keys.
const MAX_CACHED_KEYS: usize = 100_000;
/// Transactions per ed25519 batch check: large enough for most of the
/// batch gain, small enough that a batch failed by one forgery costs
/// little to check again one by one.
const VERIFY_BATCH_TXS: usize = 256;
/// The smallest batch a push is split into to use more threads.
const MIN_VERIFY_BATCH_TXS: usize = 64;

/// A push whose signatures were checked (in ed25519 batches, on the hub's
/// threads), each transaction beside the answer `SignedTx::verify` would
/// give: made by [`Hub::check_push`], applied by [`Hub::ingest_checked`].
/// A long push is checked whole once and then applied in slices
/// ([`CheckedPush::split_off`]), so every slice's verification has used all
/// cores before the single writer applies it.
#[derive(Debug)]
pub struct CheckedPush {
    txs: Vec<SignedTx>,
    verified: Vec<Result<VerifiedTx, VerifyError>>,
}

impl CheckedPush {
    /// Transactions in the push.
    pub fn len(&self) -> usize {
        self.txs.len()
    }

    /// True if the push holds none.
    pub fn is_empty(&self) -> bool {
        self.txs.is_empty()
    }

    /// Keeps the first `at` transactions and returns the rest, in order.
    pub fn split_off(&mut self, at: usize) -> CheckedPush {
        let at = at.min(self.txs.len());
        CheckedPush {
            txs: self.txs.split_off(at),
            verified: self.verified.split_off(at),
        }
    }
}

/// What ingest tracks per signer during one push.
struct Signer {
    record: Option<NodeRecord>,
    head: ChainHead,
    /// A chain-level refusal happened: skip the signer's later transactions.
    stopped: bool,
    /// The chain advanced in this push.
    advanced: bool,
}

impl Hub {
    /// Opens a session for a node (see [`HubService::open`]), with storage errors surfaced.
    pub fn try_open(
        &mut self,
        hello: &Hello,
        now: UnixMillis,
    ) -> Result<Result<Welcome, Refusal>, StoreError> {
        retry_conflicts("session", || self.try_open_once(hello, now))
    }

    fn try_open_once(
        &mut self,
        hello: &Hello,
        now: UnixMillis,
    ) -> Result<Result<Welcome, Refusal>, StoreError> {
        let mut st = self.store.begin_for_node(&hello.node)?;
        let Some(node) = st.node(&hello.node)? else {
            tracing::warn!(node = %hello.node.short(), "refused session: node not enrolled");
            return Ok(Err(Refusal::NotEnrolled));
        };
        if node.is_revoked() {
            tracing::warn!(node = %hello.node.short(), "refused session: node revoked");
            return Ok(Err(Refusal::Revoked));
        }
        if rules::certificate_expired(&node, now) {
            tracing::warn!(node = %hello.node.short(), valid_until = node.policy.valid_until.0, "refused session: node certificate expired");
            return Ok(Err(Refusal::CertificateExpired));
        }
        let clock_skew_ms =
            i64::try_from(i128::from(hello.node_time.0) - i128::from(now.0)).unwrap_or(i64::MAX);
        st.record_contact(
            &hello.node,
            &NodeContact {
                at: now,
                clock_skew_ms,
                software: hello.software.chars().take(64).collect(),
                reported_last_seq: hello.last_seq,
                fact_cursor: hello.fact_cursor,
            },
        )?;
        st.open_link(&hello.node, hello.last_seq, now)?;
        let head = st.chain_head(&hello.node)?;
        st.commit()?;
        self.shards.forget_node(&hello.node);
        Ok(Ok(Welcome {
            hub_time: now,
            processed_seq: head.processed_seq,
        }))
    }

    /// Checks the signatures of a push (at most [`MAX_PUSH_TXS`]
    /// transactions; the rest are dropped, as the wire bound refuses them),
    /// in ed25519 batches on the hub's threads (a batch that fails is
    /// checked one by one, so each bad signature is found). Reads no store.
    pub fn check_push(&self, mut txs: Vec<SignedTx>) -> CheckedPush {
        txs.truncate(MAX_PUSH_TXS);
        let keys = &self.node_keys;
        // A push shorter than two batches still goes to every thread, in
        // smaller batches (down to MIN_VERIFY_BATCH_TXS).
        let chunk = txs
            .len()
            .div_ceil(self.threads.max(1))
            .clamp(MIN_VERIFY_BATCH_TXS, VERIFY_BATCH_TXS);
        let verified = par_chunks(&txs, chunk, self.threads, |chunk| {
            SignedTx::verify_batch(chunk, |node| keys.get(node).copied())
        });
        CheckedPush { txs, verified }
    }

    /// Applies a push (see [`HubService::ingest`]), with storage errors
    /// surfaced: on `Err` nothing of the push was applied.
    pub fn try_ingest(
        &mut self,
        carrier: &NodeId,
        txs: Vec<SignedTx>,
        now: UnixMillis,
    ) -> Result<Receipts, StoreError> {
        let checked = self.check_push(txs);
        self.try_ingest_checked(carrier, &checked, now)
    }

    /// [`HubService::ingest`] of a checked push: a storage error applies
    /// nothing and answers no receipts (the node resends the same push).
    pub fn ingest_checked(
        &mut self,
        carrier: &NodeId,
        checked: CheckedPush,
        now: UnixMillis,
    ) -> Receipts {
        match self.try_ingest_checked(carrier, &checked, now) {
            Ok(r) => r,
            Err(e) => {
                // Nothing was applied: answer no receipts, and the node
                // resends the same push later.
                tracing::error!(node = %carrier.short(), error = %e, "push not applied");
                let processed_seq = self
                    .store
                    .begin()
                    .and_then(|mut st| st.chain_head(carrier))
                    .map_or(0, |h| h.processed_seq);
                Receipts {
                    receipts: vec![],
                    processed_seq,
                }
            }
        }
    }

    /// [`Hub::try_ingest`] of a push whose signatures [`Hub::check_push`]
    /// checked. A conflict with another hub process on the same database
    /// rolls the whole push back; it is applied again from the start, on
    /// the same checked signatures.
    pub fn try_ingest_checked(
        &mut self,
        carrier: &NodeId,
        checked: &CheckedPush,
        now: UnixMillis,
    ) -> Result<Receipts, StoreError> {
        retry_conflicts("push", || self.try_ingest_once(carrier, checked, now))
    }

    fn try_ingest_once(
        &mut self,
        carrier: &NodeId,
        checked: &CheckedPush,
        now: UnixMillis,
    ) -> Result<Receipts, StoreError> {
        let key = &self.key;
        let mut st = self.store.begin_for_node(carrier)?;
        st.link_seen(carrier, now)?;
        // A redeem's basis must be a balance issued before this push arrived.
        let issued_before = st.ledger_head()?;
        let mut signers: HashMap<NodeId, Signer> = HashMap::new();
        // (signed at, refusal label) of each newly processed transaction, for the counters.
        let mut observed: Vec<(UnixMillis, Option<&'static str>)> = vec![];
        // Holders whose balance moved, with their latest balance, in first-touch order.
        let mut touched: Vec<((AccountId, MunicipalityCode), Balance)> = vec![];
        let mut receipts = Vec::with_capacity(checked.txs.len());
        // Signatures were checked first (`check_push`); everything after is
        // sequential, in push order.
        for (tx, verified) in checked.txs.iter().zip(&checked.verified) {
            let v = match verified {
                Ok(v) => v,
                Err(e) => {
                    let claimed = claimed_signer(tx);
                    let reason = match &e {
                        VerifyError::Decode(d) => RejectReason::Malformed(d.to_string()),
                        VerifyError::BadSignature { .. } => RejectReason::BadSignature,
                    };
                    let (node, seq) = claimed.unwrap_or((*carrier, 0));
                    if claimed.is_some() {
                        // A forged transaction in a chain: nothing after it from
                        // that signer can be trusted to follow on.
                        signer(&mut *st, &mut signers, node)?.stopped = true;
                    }
                    reject_chain(&mut *st, &mut receipts, node, seq, tx.id(), reason, now)?;
                    continue;
                }
            };
            let p = v.payload();
            let s = signer(&mut *st, &mut signers, p.node)?;
            if s.stopped {
                continue;
            }
            let head = s.head;
            let stored = if p.seq <= head.processed_seq && p.seq > 0 {
                st.processed_tx(&p.node, p.seq)?
            } else {
                None
            };
            // A replay answers the stored verdict even if the signer was
            // revoked since: the hub did apply it, and the node must learn so.
            if let Some(done) = stored.as_ref().filter(|d| d.id == v.id()) {
                receipts.push(receipt(v, done.outcome.clone()));
                continue;
            }
            let s = signer(&mut *st, &mut signers, p.node)?;
            let record = match rules::check_signer(s.record.as_ref()) {
                Ok(r) if rules::certificate_expired(r, now) => {
                    s.stopped = true;
                    let reason = RejectReason::CertificateExpired;
                    reject_chain(&mut *st, &mut receipts, p.node, p.seq, v.id(), reason, now)?;
                    continue;
                }
                Ok(r) => r.clone(),
                Err(reason) => {
                    s.stopped = true;
                    reject_chain(&mut *st, &mut receipts, p.node, p.seq, v.id(), reason, now)?;
                    continue;
                }
            };
            match rules::check_chain(head, p, v.id(), stored.as_ref()) {
                ChainVerdict::Replay(outcome) => {
                    receipts.push(receipt(v, outcome));
                    continue;
                }
                ChainVerdict::Reject(reason) => {
                    if let Some(s) = signers.get_mut(&p.node) {
                        s.stopped = true;
                    }
                    reject_chain(&mut *st, &mut receipts, p.node, p.seq, v.id(), reason, now)?;
                    continue;
                }
                ChainVerdict::Next => {}
            }
            let ctx = load_context(&mut *st, v, &record, issued_before, &self.key.id(), now)?;
            let outcome = match rules::decide(&record, v, &ctx) {
                Ok(effects) => apply(&mut *st, key, v, &record, &ctx, effects, &mut touched, now)?,
                Err(reason) => {
                    tracing::info!(node = %p.node.short(), seq = p.seq, tx = %v.id().short(), %reason, "rejected transaction");
                    crate::voucher::kiosk::issue_refused(
                        &mut *st,
                        v,
                        ctx.voucher_issue.as_ref(),
                        &reason,
                        now,
                    )?;
                    Outcome::Rejected(reason)
                }
            };
            st.insert_processed_tx(v, &outcome, now)?;
            observed.push((
                p.created_at,
                crate::observed::counters::refusal_label(&outcome),
            ));
            if let Some(s) = signers.get_mut(&p.node) {
                s.head = ChainHead {
                    processed_seq: p.seq,
                    head: v.id(),
                };
                s.advanced = true;
            }
            receipts.push(receipt(v, outcome));
        }

        let ledger_pos = st.ledger_head()?;
        for ((account, municipality), b) in &touched {
            st.record_issued_balance(*account, *municipality, ledger_pos, *b)?;
        }
        let mut facts: Vec<(Scope, FactBody)> = touched
            .into_iter()
            .map(|((account, municipality), b)| {
                (
                    Scope::Municipality(municipality),
                    FactBody::ConfirmedBalance {
                        account,
                        municipality,
                        balance: b.balance,
                        debt: b.debt,
                        ledger_pos,
                    },
                )
            })
            .collect();
        let mut advanced: Vec<(&NodeId, &Signer)> =
            signers.iter().filter(|(_, s)| s.advanced).collect();
        advanced.sort_by_key(|(id, _)| **id);
        for (id, s) in advanced {
            st.set_chain_head(id, s.head)?;
            let Some(record) = &s.record else { continue };
            facts.push((
                Scope::Municipality(record.municipality),
                FactBody::NodeProgress {
                    node: *id,
                    through_seq: s.head.processed_seq,
                    head: s.head.head,
                },
            ));
        }
        // Keep enrolled signers' keys decompressed for their next pushes (a
        // key is a function of its bytes: the cache is never stale; it is
        // bounded, and rebuilt if it grows past the bound).
        if self.node_keys.len() > MAX_CACHED_KEYS {
            self.node_keys.clear();
        }
        for (id, s) in &signers {
            if s.record.is_some()
                && !self.node_keys.contains_key(id)
                && let Ok(k) = id.verifying_key()
            {
                self.node_keys.insert(*id, k);
            }
        }
        // Balances first, then progress: a node applying facts in hub order
        // never sees progress before the balance that includes it.
        emit_all(&mut *st, key, facts, now, self.threads)?;
        let processed_seq = match signers.get(carrier) {
            Some(s) => s.head.processed_seq,
            None => st.chain_head(carrier)?.processed_seq,
        };
        ledger::commit(st)?;
        self.observed
            .counters()
            .observe_push(&receipts, &observed, now);
        Ok(Receipts {
            receipts,
            processed_seq,
        })
    }
}

fn signer<'a>(
    st: &mut dyn StoreTx,
    signers: &'a mut HashMap<NodeId, Signer>,
    node: NodeId,
) -> Result<&'a mut Signer, StoreError> {
    match signers.entry(node) {
        Entry::Occupied(e) => Ok(e.into_mut()),
        Entry::Vacant(e) => {
            let record = st.node(&node)?;
            let head = st.chain_head(&node)?;
            Ok(e.insert(Signer {
                record,
                head,
                stopped: false,
                advanced: false,
            }))
        }
    }
}

/// The signer and seq a transaction claims, if its payload decodes at all.
fn claimed_signer(tx: &SignedTx) -> Option<(NodeId, u64)> {
    let p: TxPayload = codec::decode_canonical(
        "transaction payload",
        tx.payload_bytes(),
        MAX_TX_PAYLOAD_BYTES,
    )
    .ok()?;
    Some((p.node, p.seq))
}

fn receipt(v: &VerifiedTx, outcome: Outcome) -> Receipt {
    Receipt {
        node: v.payload().node,
        seq: v.payload().seq,
        tx: Some(v.id()),
        outcome,
    }
}

fn reject_chain(
    st: &mut dyn StoreTx,
    receipts: &mut Vec<Receipt>,
    node: NodeId,
    seq: u64,
    tx: mykey_sync_proto::TxId,
    reason: RejectReason,
    now: UnixMillis,
) -> Result<(), StoreError> {
    tracing::warn!(node = %node.short(), seq, tx = %tx.short(), %reason, "refused transaction at chain level");
    st.record_incident(&Incident {
        at: now,
        kind: IncidentKind::ChainRejected,
        node: Some(node),
        seq: Some(seq),
        tx: Some(tx),
        detail: reason.to_string(),
    })?;
    receipts.push(Receipt {
        node,
        seq,
        tx: Some(tx),
        outcome: Outcome::Rejected(reason),
    });
    Ok(())
}

fn load_context(
    st: &mut dyn StoreTx,
    v: &VerifiedTx,
    signer: &NodeRecord,
    issued_before: u64,
    hub: &NodeId,
    now: UnixMillis,
) -> Result<Context, StoreError> {
    let needs = rules::needs(&v.payload().body);
    let mut ctx = Context::default();
    if let Some(card) = &needs.card {
        ctx.card = st.card(card)?;
    }
    if let Some((account, m)) = needs.wallet {
        // Only a card that resolves to the account can move its points; the
        // rules reject the rest before looking at balances.
        if ctx.card.as_ref().is_some_and(|c| c.account == account) {
            let b = ledger::wallet_balance(st, account, m)?;
            ctx.wallet = b.balance;
            ctx.debt = b.debt;
        }
    }
    if let Some((program, m)) = &needs.program {
        ctx.program = st.program(program)?;
        let budget = LedgerAccount::ProgramBudget(program.clone(), *m);
        ctx.budget = budget.balance(st.posted(&budget)?);
    }
    if let Some(account) = needs.account {
        ctx.account_exists = st.account(account)?.is_some();
    }
    if let Some((facility, number)) = &needs.facility_card {
        ctx.linked_to = st.facility_card(facility, number)?;
    }
    if let Some((account, m)) = needs.escrow {
        ctx.strict = st.strict_mode(m)?;
        ctx.escrow = ledger::escrow_balance(st, account, m, signer.id)?;
    }
    if let TxBody::Redeem(r) = &v.payload().body
        && ctx.card.as_ref().is_some_and(|c| c.account == r.account)
    {
        ctx.bounds = load_bounds(st, v, r, signer, issued_before, now)?;
    }
    ctx.voucher = crate::voucher::redeem::load(st, v, hub, now)?;
    // A kiosk voucher of an expired batch is paid from its holder's wallet:
    // that wallet is the one the decision touches.
    if let Some(k) = ctx.voucher.as_ref().and_then(|c| c.kiosk.as_ref()) {
        ctx.wallet = k.wallet.balance;
        ctx.debt = k.wallet.debt;
    }
    ctx.donation = crate::donation::load(st, v, ctx.card.as_ref())?;
    ctx.voucher_issue = crate::voucher::kiosk::load(st, v, ctx.card.as_ref(), now)?;
    let transfer = match &v.payload().body {
        TxBody::RightTransfer(_) => Some(v.clone()),
        // A carried transfer that does not verify leaves no context: the
        // rules refuse the accept.
        TxBody::RightAccept(a) => a.transfer.verify().ok(),
        _ => None,
    };
    if let Some(t) = transfer
        && let TxBody::RightTransfer(body) = &t.payload().body
    {
        let from = t.payload().node;
        ctx.transfer = Some(TransferContext {
            tx: t.id(),
            from,
            from_node: st.node(&from)?,
            to_node: st.node(&body.to)?,
            from_escrow: ledger::escrow_balance(st, body.account, body.municipality, from)?,
            applied: st.right_transfer_applied(&t.id())?,
            grant: rules::check_grant(body, from, hub),
            body: body.clone(),
        });
    }
    Ok(ctx)
}

/// What the bounds of a redeem need from the store ([`crate::bounds`]): the
/// stated basis checked against the balances the hub issued before this
/// push, the signer's spends on the wallet since, its at-risk use in the
/// current settlement period, and the card proof checked with the card's
/// registered key.
fn load_bounds(
    st: &mut dyn StoreTx,
    v: &VerifiedTx,
    r: &mykey_sync_proto::Redeem,
    signer: &NodeRecord,
    issued_before: u64,
    now: UnixMillis,
) -> Result<SpendBounds, StoreError> {
    let node = v.payload().node;
    let (basis, own_since_basis) = match r.basis {
        None => (BasisCheck::Absent, Points::ZERO),
        Some(b) => {
            let issued = (b.ledger_pos <= issued_before)
                .then(|| st.issued_balance(r.account, r.municipality, b.ledger_pos))
                .transpose()?
                .flatten();
            match issued {
                Some(i) if i.balance == b.balance && i.debt == b.debt => (
                    BasisCheck::Issued {
                        balance: b.balance,
                        debt: b.debt,
                    },
                    st.spent_since(&node, r.account, r.municipality, b.ledger_pos)?,
                ),
                _ => (BasisCheck::NotIssued, Points::ZERO),
            }
        }
    };
    let period_start = period_start(st, r.municipality, now)?;
    let (used_node, used_card) = st.at_risk_used(&node, &r.card, period_start)?;
    let proof = if r.points <= signer.policy.pin_threshold {
        ProofCheck::Absent
    } else {
        match &r.card_proof {
            None => ProofCheck::Absent,
            Some(sig) => match st.card_public_key(&r.card)? {
                None => ProofCheck::NoKey,
                Some(key) => {
                    let binding = mykey_sync_proto::RedeemBinding::new(
                        node,
                        v.payload().seq,
                        v.payload().created_at,
                        r,
                    );
                    match mykey_jpki::verify_redeem_proof(&key, &binding, sig) {
                        Ok(()) => ProofCheck::Verified,
                        Err(e) => ProofCheck::Invalid(e.to_string()),
                    }
                }
            },
        }
    };
    Ok(SpendBounds {
        basis,
        own_since_basis,
        used_node,
        used_card,
        proof,
    })
}

/// The start of the settlement period of `m` that `now` falls in (the hub's
/// clock and the municipality's cycle): the window of the at-risk bounds.
fn period_start(
    st: &mut dyn StoreTx,
    m: MunicipalityCode,
    now: UnixMillis,
) -> Result<UnixMillis, StoreError> {
    let cycle = st.settlement_cycle(m)?.unwrap_or_default();
    Ok(cycle.period_of(now).0.start())
}

#[allow(clippy::too_many_arguments)]
fn apply(
    st: &mut dyn StoreTx,
    key: &crate::key::HubKey,
    v: &VerifiedTx,
    signer: &NodeRecord,
    ctx: &Context,
    effects: Effects,
    touched: &mut Vec<((AccountId, MunicipalityCode), Balance)>,
    now: UnixMillis,
) -> Result<Outcome, StoreError> {
    let p = v.payload();
    let mut ledger_pos = None;
    for t in &effects.transfers {
        ledger_pos = Some(st.post(t, now)?);
    }
    if let TxBody::Redeem(r) = &p.body {
        let pos = match ledger_pos {
            Some(pos) => pos,
            None => st.ledger_head()?,
        };
        let period_start = period_start(st, r.municipality, now)?;
        st.record_spend(&SpendRow {
            node: p.node,
            seq: p.seq,
            account: r.account,
            municipality: r.municipality,
            card: r.card.clone(),
            points: r.points,
            ledger_pos: pos,
            period_start,
            at_risk: effects.at_risk,
        })?;
        if let Some((held, why)) = &effects.quarantine {
            st.insert_quarantine(&QuarantineRow {
                id: 0,
                tx: v.id(),
                node: p.node,
                seq: p.seq,
                facility: signer.facility.clone(),
                municipality: r.municipality,
                account: r.account,
                card: r.card.clone(),
                points: *held,
                rule: why.name().to_owned(),
                detail: why.to_string(),
                held_at: now,
                state: QuarantineState::Held,
                decided_by: None,
                why: None,
                decided_at: None,
            })?;
        }
    }
    if let Some(t) = &effects.right_transfer {
        st.mark_right_transfer(t, now)?;
    }
    if let Some(r) = &effects.voucher {
        st.insert_voucher_redemption(&crate::store::voucher::VoucherRedemptionRow {
            at: now,
            ..r.clone()
        })?;
        if !r.incident {
            crate::voucher::marks::emit_redeemed(st, key, r.batch, r.index, now)?;
        }
    }
    if let Some(h) = &effects.voucher_held {
        tracing::info!(node = %p.node.short(), seq = p.seq, batch = h.batch, index = h.index, "kiosk voucher redemption held: its issuing transaction has not reached the hub");
        st.insert_held_redemption(&crate::store::voucher::HeldRedemptionRow {
            held_at: now,
            ..h.clone()
        })?;
    }
    if let Some(b) = &effects.kiosk_batch {
        st.insert_kiosk_batch(&crate::store::voucher::KioskBatchRow {
            issued_at: now,
            ..b.clone()
        })?;
        // Shops that took its vouchers before it arrived are decided now.
        crate::voucher::kiosk::decide_held(st, key, b.batch, now)?;
    }
    let ledger_pos = match ledger_pos {
        Some(pos) => pos,
        None => st.ledger_head()?,
    };
    if let Some(change) = &effects.link {
        let (l, linked) = match change {
            LinkChange::Link(l) => {
                st.link_facility_card(&l.facility, &l.number, l.account, now)?;
                (l, true)
            }
            LinkChange::Unlink(l) => {
                st.unlink_facility_card(&l.facility, &l.number)?;
                (l, false)
            }
        };
        // Card numbers go to that facility's nodes only (DESIGN §9).
        emit(
            st,
            key,
            Scope::Facility(l.facility.clone()),
            FactBody::FacilityCard {
                account: l.account,
                facility: l.facility.clone(),
                number: l.number.clone(),
                linked,
            },
            now,
        )?;
    }
    for (kind, detail) in effects.notes {
        tracing::warn!(node = %p.node.short(), seq = p.seq, tx = %v.id().short(), kind = kind.name(), "{detail}");
        st.record_incident(&Incident {
            at: now,
            kind,
            node: Some(p.node),
            seq: Some(p.seq),
            tx: Some(v.id()),
            detail,
        })?;
    }
    let balance = match effects.touched {
        None => None,
        Some((account, municipality)) => {
            // The rules only touch a holder after resolving the card to the
            // account, so the context holds the balance before the transfers.
            let before = Balance {
                balance: ctx.wallet,
                debt: ctx.debt,
            };
            let b = ledger::balance_after(before, account, municipality, &effects.transfers)?;
            debug_assert_eq!(b, ledger::wallet_balance(st, account, municipality)?);
            st.record_issued_balance(account, municipality, ledger_pos, b)?;
            match touched
                .iter_mut()
                .find(|(k, _)| *k == (account, municipality))
            {
                Some((_, latest)) => *latest = b,
                None => touched.push(((account, municipality), b)),
            }
            Some(BalanceSnapshot {
                account,
                municipality,
                balance: b.balance,
                debt: b.debt,
            })
        }
    };
    Ok(Outcome::Accepted {
        ledger_pos,
        balance,
        debt_created: effects.debt_created,
        quarantined: effects.quarantine.as_ref().map_or(Points::ZERO, |q| q.0),
    })
}

impl HubService for Hub {
    fn open(&mut self, hello: &Hello, now: UnixMillis) -> Result<Welcome, Refusal> {
        match self.try_open(hello, now) {
            Ok(answer) => answer,
            Err(e) => {
                tracing::error!(node = %hello.node.short(), error = %e, "could not open session");
                Err(Refusal::Protocol(
                    "the hub cannot reach its storage; try again later".into(),
                ))
            }
        }
    }

    fn ingest(&mut self, carrier: &NodeId, txs: Vec<SignedTx>, now: UnixMillis) -> Receipts {
        let checked = self.check_push(txs);
        self.ingest_checked(carrier, checked, now)
    }

    fn facts(&mut self, node: &NodeId, after: u64, max: u32, upto: u64) -> Facts {
        self.observed.note_pull(node, after);
        match self.facts_for(node, after, max, upto) {
            Ok(f) => f,
            Err(e) => {
                tracing::error!(node = %node.short(), error = %e, "could not read facts");
                Facts {
                    facts: vec![],
                    cursor: after,
                    more: false,
                }
            }
        }
    }

    fn shards(&mut self, node: &NodeId) -> Result<ShardList, Refusal> {
        self.shard_list(node).unwrap_or_else(|e| {
            tracing::error!(node = %node.short(), error = %e, "could not list shards");
            Err(Refusal::Protocol(
                "the hub cannot reach its storage; try again later".into(),
            ))
        })
    }

    fn shard_sync(
        &mut self,
        node: &NodeId,
        sync: ShardSync,
        _now: UnixMillis,
    ) -> Result<ShardSync, Refusal> {
        self.sync_shard(node, sync).unwrap_or_else(|e| {
            tracing::error!(node = %node.short(), error = %e, "could not sync a shard");
            Err(Refusal::Protocol(
                "the hub cannot reach its storage; try again later".into(),
            ))
        })
    }

    fn holder(
        &mut self,
        node: &NodeId,
        req: mykey_sync_proto::holder::HolderRequest,
        now: UnixMillis,
    ) -> mykey_sync_proto::holder::HolderResponse {
        self.holder_request(node, req, now)
    }
}
