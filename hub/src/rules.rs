//! The hub's deciding code for node transactions: pure functions of what the
//! store holds, no I/O, no clock.
//!
//! The ingest driver ([`crate::ingest`]) loads a [`Context`] for each
//! verified transaction, asks [`decide`] what to do, and applies the
//! [`Effects`] in one storage transaction. The simulation and the tests call
//! the same functions.

pub mod donation;
pub mod voucher;
pub mod voucher_issue;

use crate::bounds::{BeyondBound, SpendBounds, judge_redeem};
use crate::model::{
    CardRecord, ChainHead, IncidentKind, LedgerAccount, NodeRecord, Program, TransferDraft,
    TransferKind,
};
use crate::store::ProcessedTx;
use mykey_sync_proto::FactBody;
use mykey_sync_proto::fact::CardStatus;
use mykey_sync_proto::wire::{Outcome, RejectReason};
use mykey_sync_proto::{
    AccountId, FacilityCardLink, FacilityCardNumber, FacilityId, Grant, MunicipalityCode, NodeId,
    OpKind, Points, ProgramId, Redeem, RightTransfer, TxBody, TxId, TxPayload, UnixMillis,
    VerifiedTx,
};

/// Where a transaction falls on its signer's chain.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ChainVerdict {
    /// The next transaction: decide it.
    Next,
    /// Already processed with this very id: answer the stored verdict again, change nothing.
    Replay(Outcome),
    /// A gap or a fork: refuse, change nothing.
    Reject(RejectReason),
}

/// Checks a verified transaction against its signer's chain. `stored` is the
/// transaction the hub processed at the same seq, which the caller looks up
/// when `seq <= head.processed_seq`.
pub fn check_chain(
    head: ChainHead,
    payload: &TxPayload,
    id: TxId,
    stored: Option<&ProcessedTx>,
) -> ChainVerdict {
    let seq = payload.seq;
    let expected = head.processed_seq + 1;
    if seq == 0 {
        return ChainVerdict::Reject(RejectReason::ChainGap { expected, got: 0 });
    }
    if seq < expected {
        return match stored {
            Some(s) if s.id == id => ChainVerdict::Replay(s.outcome.clone()),
            _ => ChainVerdict::Reject(RejectReason::ChainFork { seq }),
        };
    }
    if seq > expected {
        return ChainVerdict::Reject(RejectReason::ChainGap { expected, got: seq });
    }
    if payload.prev_hash != head.head {
        return ChainVerdict::Reject(RejectReason::ChainFork { seq });
    }
    ChainVerdict::Next
}

/// How long after its certificate's `valid_until` the hub still accepts a
/// node's sessions and transactions (by the hub's clock): a day, so a node
/// whose enrolment runs out while it is offline can deliver what it signed
/// before then once an operator notices; past it an operator renews the
/// enrolment (`mykey-hub node enrol` again) and the node resends.
pub const CERTIFICATE_GRACE_MS: u64 = 24 * 3_600_000;

/// Whether a node's certificate expired, grace included, at the hub's `now`.
pub fn certificate_expired(node: &NodeRecord, now: UnixMillis) -> bool {
    now.0
        > node
            .policy
            .valid_until
            .0
            .saturating_add(CERTIFICATE_GRACE_MS)
}

/// Checks the grant a right transfer carries: a `SpendRight` fact the hub
/// signed, for exactly this account, municipality, sender and right id.
/// Returns the granted points.
pub fn check_grant(body: &RightTransfer, from: NodeId, hub: &NodeId) -> Result<Points, String> {
    let v = body
        .grant
        .verify(hub)
        .map_err(|e| format!("the grant is not signed by this hub ({e})"))?;
    match &v.payload().body {
        FactBody::SpendRight {
            account,
            municipality,
            node,
            right_id,
            points,
        } if *account == body.account
            && *municipality == body.municipality
            && *node == from
            && *right_id == body.right_id =>
        {
            Ok(*points)
        }
        _ => Err(format!(
            "the grant is not right {} of {} on account {}",
            body.right_id,
            from.short(),
            body.account
        )),
    }
}

/// Checks that the signer is enrolled and not revoked.
pub fn check_signer(node: Option<&NodeRecord>) -> Result<&NodeRecord, RejectReason> {
    match node {
        None => Err(RejectReason::UnknownNode),
        Some(n) if n.is_revoked() => Err(RejectReason::RevokedNode),
        Some(n) => Ok(n),
    }
}

/// What the hub knows that a decision needs; the driver fills the parts the
/// transaction's kind asks for ([`Needs`]).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Context {
    /// The card the transaction names.
    pub card: Option<CardRecord>,
    /// The programme a grant names.
    pub program: Option<Program>,
    /// Whether the account a link names exists.
    pub account_exists: bool,
    /// The holder's wallet in the transaction's municipality.
    pub wallet: Points,
    /// The holder's debt there.
    pub debt: Points,
    /// The programme's budget (negative when overdrawn).
    pub budget: i128,
    /// The account a facility card number is linked to now.
    pub linked_to: Option<AccountId>,
    /// Strict mode is on in the transaction's municipality.
    pub strict: bool,
    /// The signer's reserved points (its spend right) on the redeeming account.
    pub escrow: Points,
    /// A right transfer the transaction makes or carries.
    pub transfer: Option<TransferContext>,
    /// A redeem's basis, card proof and the signer's period use ([`crate::bounds`]).
    pub bounds: SpendBounds,
    /// A redeemed voucher, its batch and earlier redemptions.
    pub voucher: Option<voucher::VoucherContext>,
    /// A donation's programme and checked card proof.
    pub donation: Option<donation::DonationContext>,
    /// A kiosk voucher issue's issuer, checked card proof and batch.
    pub voucher_issue: Option<voucher_issue::IssueContext>,
}

/// What the hub knows about a right transfer ([`TxBody::RightTransfer`] in
/// its sender's chain, or carried by [`TxBody::RightAccept`] in its receiver's).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TransferContext {
    /// The transfer transaction's id (the sender's).
    pub tx: TxId,
    /// Its sender (the signer of the transfer).
    pub from: NodeId,
    /// The sender's record.
    pub from_node: Option<NodeRecord>,
    /// What the transfer says.
    pub body: RightTransfer,
    /// The receiver's record.
    pub to_node: Option<NodeRecord>,
    /// The sender's reserved points on the account.
    pub from_escrow: Points,
    /// The reservation already moved (the transfer's other copy came first).
    pub applied: bool,
    /// The hub-signed grant the transfer carries, checked: the granted points,
    /// or why it is not a grant of this right ([`check_grant`]).
    pub grant: Result<Points, String>,
}

/// Which parts of [`Context`] a transaction needs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Needs {
    /// Look up this card.
    pub card: Option<mykey_sync_proto::CardKey>,
    /// Look up this programme and its budget.
    pub program: Option<(ProgramId, MunicipalityCode)>,
    /// Look up this holder's wallet and debt.
    pub wallet: Option<(AccountId, MunicipalityCode)>,
    /// Check this account exists.
    pub account: Option<AccountId>,
    /// Look up this facility card number.
    pub facility_card: Option<(FacilityId, FacilityCardNumber)>,
    /// Look up strict mode and the signer's reserved points on this account.
    pub escrow: Option<(AccountId, MunicipalityCode)>,
}

/// What [`decide`] needs loaded for `body`.
pub fn needs(body: &TxBody) -> Needs {
    let mut n = Needs {
        card: None,
        program: None,
        wallet: None,
        account: None,
        facility_card: None,
        escrow: None,
    };
    match body {
        TxBody::Redeem(r) => {
            n.card = Some(r.card.clone());
            n.wallet = Some((r.account, r.municipality));
            n.escrow = Some((r.account, r.municipality));
        }
        TxBody::Grant(g) => {
            n.card = Some(g.card.clone());
            n.wallet = Some((g.account, g.municipality));
            n.program = Some((g.program.clone(), g.municipality));
        }
        TxBody::LinkFacilityCard(l) | TxBody::UnlinkFacilityCard(l) => {
            n.account = Some(l.account);
            n.facility_card = Some((l.facility.clone(), l.number.clone()));
        }
        // The driver loads the transfer context itself (it verifies a carried transfer).
        TxBody::RightTransfer(_) | TxBody::RightAccept(_) => {}
        // The driver loads the voucher context itself (`voucher::redeem::load`).
        TxBody::RedeemVoucher(_) => {}
        // The driver loads the programme and checks the proof (`donation::load`).
        TxBody::Donate(d) => {
            n.card = Some(d.card.clone());
            n.wallet = Some((d.account, d.municipality));
        }
        // The driver loads the issuer, the batch and the proof (`voucher::kiosk::load`).
        TxBody::IssueVouchers(k) => {
            n.card = Some(k.card.clone());
            n.wallet = Some((k.account, k.municipality));
        }
    }
    n
}

/// A change to the facility card links.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LinkChange {
    /// Link the number to the account.
    Link(FacilityCardLink),
    /// Remove the link.
    Unlink(FacilityCardLink),
}

/// What applying a transaction does.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Effects {
    /// Transfers to post, in order.
    pub transfers: Vec<TransferDraft>,
    /// Debt recorded because the balance fell short.
    pub debt_created: Points,
    /// The holder balance to report in the receipt and a confirmed-balance fact.
    pub touched: Option<(AccountId, MunicipalityCode)>,
    /// A facility card link change.
    pub link: Option<LinkChange>,
    /// Things to report to operators (the transaction is still accepted).
    pub notes: Vec<(IncidentKind, String)>,
    /// A right transfer whose reservation these transfers move (recorded so
    /// the transfer's other copy changes nothing).
    pub right_transfer: Option<TxId>,
    /// Points of a redeem held in quarantine (beyond the node's bounds), and why.
    pub quarantine: Option<(Points, BeyondBound)>,
    /// At-risk points a redeem adds to its node's and card's period use.
    pub at_risk: Points,
    /// A voucher redemption to record (paid or not).
    pub voucher: Option<crate::store::voucher::VoucherRedemptionRow>,
    /// A kiosk voucher batch to record.
    pub kiosk_batch: Option<crate::store::voucher::KioskBatchRow>,
    /// A kiosk voucher redemption to hold until its issue arrives.
    pub voucher_held: Option<crate::store::voucher::HeldRedemptionRow>,
}

/// Decides a verified transaction from an enrolled, unrevoked signer that is
/// next on its chain. `Err` is a business rejection: it consumes the seq.
pub fn decide(node: &NodeRecord, tx: &VerifiedTx, ctx: &Context) -> Result<Effects, RejectReason> {
    let p = tx.payload();
    let op = p.body.kind();
    if !node.policy.allows(op) {
        return Err(RejectReason::NotAllowed(format!(
            "{} (facility {} is not allowed it)",
            op.name(),
            node.facility
        )));
    }
    let origin = (tx.id(), p.created_at);
    match &p.body {
        TxBody::Redeem(r) => decide_redeem(node, r, ctx, origin),
        TxBody::Grant(g) => decide_grant(node, g, ctx, origin),
        TxBody::LinkFacilityCard(l) => decide_link(node, l, ctx, OpKind::Link),
        TxBody::UnlinkFacilityCard(l) => decide_link(node, l, ctx, OpKind::Unlink),
        TxBody::RightTransfer(_) | TxBody::RightAccept(_) => decide_right_transfer(node, tx, ctx),
        TxBody::RedeemVoucher(r) => match &ctx.voucher {
            Some(v) => voucher::decide(node, tx, r, v),
            None => Err(RejectReason::NotAllowed(
                "the voucher's context was not loaded".to_owned(),
            )),
        },
        TxBody::Donate(d) => match &ctx.donation {
            Some(c) => donation::decide(node, d, ctx.card.as_ref(), ctx.wallet, c, origin),
            None => Err(RejectReason::NotAllowed(
                "the donation's context was not loaded".to_owned(),
            )),
        },
        TxBody::IssueVouchers(k) => match &ctx.voucher_issue {
            Some(c) => voucher_issue::decide(node, k, ctx.card.as_ref(), ctx.wallet, c, origin),
            None => Err(RejectReason::NotAllowed(
                "the kiosk voucher issue's context was not loaded".to_owned(),
            )),
        },
    }
}

/// A right transfer, from the sender's chain or carried in the receiver's:
/// the first copy to arrive moves the reservation from the sender's escrow
/// to the receiver's, the other is accepted and changes nothing. A transfer
/// beyond what the sender holds moves what there is and is reported.
fn decide_right_transfer(
    node: &NodeRecord,
    tx: &VerifiedTx,
    ctx: &Context,
) -> Result<Effects, RejectReason> {
    let refuse = |why: String| Err(RejectReason::NotAllowed(why));
    let Some(t) = &ctx.transfer else {
        return refuse("the carried right transfer is not an authentic transfer".to_owned());
    };
    let b = &t.body;
    let signer = tx.payload().node;
    let carried = matches!(tx.payload().body, TxBody::RightAccept(_));
    if carried && b.to != signer {
        return refuse(format!(
            "right transfer to {} accepted by {}",
            b.to.short(),
            signer.short()
        ));
    }
    if !carried && t.from != signer {
        return refuse("a node transfers only its own rights".to_owned());
    }
    if b.municipality != node.municipality {
        return Err(RejectReason::WrongMunicipality(b.municipality));
    }
    if b.to == t.from {
        return refuse("a right transfer to the sender itself".to_owned());
    }
    let same_town = |n: &Option<NodeRecord>| {
        n.as_ref()
            .is_some_and(|n| !n.is_revoked() && n.municipality == b.municipality)
    };
    if !same_town(&t.from_node) || !same_town(&t.to_node) {
        return refuse(format!(
            "right transfer between {} and {}: both must be enrolled, unrevoked nodes of {}",
            t.from.short(),
            b.to.short(),
            b.municipality
        ));
    }
    match &t.grant {
        Err(why) => return refuse(format!("right transfer without a valid hub grant: {why}")),
        Ok(granted) if b.points > *granted => {
            return refuse(format!(
                "right transfer of {} beyond the {} its grant (right {}) gave",
                b.points, granted, b.right_id
            ));
        }
        Ok(_) => {}
    }
    if t.applied || b.points.is_zero() {
        return Ok(Effects::default());
    }
    // All or nothing: a transfer beyond what the sender still holds at the
    // hub is refused, and the receiver withdraws the right it credited.
    if b.points > t.from_escrow {
        return refuse(format!(
            "node {} gave {} of its right on {} to {} but holds {} at the hub",
            t.from.short(),
            b.points,
            b.account,
            b.to.short(),
            t.from_escrow
        ));
    }
    Ok(Effects {
        right_transfer: Some(t.tx),
        transfers: vec![TransferDraft {
            debit: LedgerAccount::Escrow(b.account, b.municipality, t.from),
            credit: LedgerAccount::Escrow(b.account, b.municipality, b.to),
            amount: b.points,
            kind: TransferKind::RightMove,
            origin_tx: Some(t.tx),
            node_time: Some(tx.payload().created_at),
        }],
        ..Effects::default()
    })
}

fn card_of_account(
    card: Option<&CardRecord>,
    account: AccountId,
) -> Result<&CardRecord, RejectReason> {
    let card = card.ok_or(RejectReason::UnknownCard)?;
    if card.account != account {
        return Err(RejectReason::WrongAccount(account));
    }
    Ok(card)
}

fn decide_redeem(
    node: &NodeRecord,
    r: &Redeem,
    ctx: &Context,
    (tx, node_time): (TxId, UnixMillis),
) -> Result<Effects, RejectReason> {
    if r.merchant != node.facility {
        return Err(RejectReason::NotAllowed(format!(
            "redeem for merchant {} signed by a node of facility {}",
            r.merchant, node.facility
        )));
    }
    if r.municipality != node.municipality {
        return Err(RejectReason::WrongMunicipality(r.municipality));
    }
    let card = card_of_account(ctx.card.as_ref(), r.account)?;
    let mut effects = Effects {
        touched: Some((r.account, r.municipality)),
        ..Effects::default()
    };
    // What the hub pays is bounded by what it enrolled and can verify; the
    // rest is held as evidence (crate::bounds).
    let judged = judge_redeem(&node.policy, r.points, ctx.escrow, ctx.wallet, &ctx.bounds);
    let paid = judged.paid;
    effects.at_risk = judged.at_risk;
    if let Some((held, why)) = &judged.quarantined {
        effects.notes.push((
            IncidentKind::Quarantined,
            format!(
                "{held} of a spend of {} at {} on {} held in quarantine: {why}",
                r.points, r.merchant, r.account
            ),
        ));
        effects.transfers.push(TransferDraft {
            debit: LedgerAccount::QuarantineClaims(r.municipality),
            credit: LedgerAccount::Quarantined(r.merchant.clone(), r.municipality),
            amount: *held,
            kind: TransferKind::Quarantine,
            origin_tx: Some(tx),
            node_time: Some(node_time),
        });
    }
    effects.quarantine = judged.quarantined;
    if paid.is_zero() {
        return Ok(effects);
    }
    // The node decided offline with what it knew: the shop was promised, so
    // the hub honours the spend and reports what it should not have allowed.
    if card.status != CardStatus::Active {
        effects.notes.push((
            IncidentKind::SpendOnInactiveCard,
            format!(
                "{} honoured on {} card {} of {}",
                paid,
                card.status.name(),
                r.card.short(),
                r.account
            ),
        ));
    }
    // The signer's reserved points (strict mode) pay first, then the wallet.
    let from_right = paid.min(ctx.escrow);
    let rest = paid.saturating_sub(from_right);
    effects.debt_created = rest.saturating_sub(ctx.wallet);
    if ctx.strict && !rest.is_zero() {
        effects.notes.push((
            IncidentKind::BeyondRight,
            format!(
                "strict spend of {} at {} beyond the node's right on {} ({} held): {} from the wallet, {} as debt",
                paid,
                r.merchant,
                r.account,
                ctx.escrow,
                rest.saturating_sub(effects.debt_created),
                effects.debt_created
            ),
        ));
    }
    if ctx.debt.checked_add(effects.debt_created).is_none() {
        return Err(RejectReason::NotAllowed(format!(
            "redeem of {} would take the debt of {} past {} pt",
            r.points,
            r.account,
            Points::MAX
        )));
    }
    let paid_redeem = Redeem {
        points: rest,
        ..r.clone()
    };
    let mut legs = redeem_transfers(&paid_redeem, ctx.wallet, tx, node_time);
    if !from_right.is_zero() {
        legs.insert(
            0,
            TransferDraft {
                debit: LedgerAccount::Escrow(r.account, r.municipality, node.id),
                credit: LedgerAccount::MerchantPayable(r.merchant.clone(), r.municipality),
                amount: from_right,
                kind: TransferKind::Redeem,
                origin_tx: Some(tx),
                node_time: Some(node_time),
            },
        );
    }
    effects.transfers.extend(legs);
    if !effects.debt_created.is_zero() {
        effects.notes.push((
            IncidentKind::DebtCreated,
            format!(
                "offline spend of {} at {} found {} on {}: {} recorded as debt",
                paid, r.merchant, ctx.wallet, r.account, effects.debt_created
            ),
        ));
    }
    Ok(effects)
}

/// The transfers of a redemption: what the wallet holds pays first, the
/// rest is debt on the holder.
pub fn redeem_transfers(
    r: &Redeem,
    wallet: Points,
    tx: TxId,
    node_time: UnixMillis,
) -> Vec<TransferDraft> {
    wallet_pays(
        (r.account, r.municipality),
        r.points,
        wallet,
        &r.merchant,
        (tx, node_time),
    )
}

/// `points` paid to `merchant` from a holder's wallet holding `wallet`:
/// the wallet first, the rest on the holder's debt.
pub fn wallet_pays(
    (account, m): (AccountId, MunicipalityCode),
    points: Points,
    wallet: Points,
    merchant: &FacilityId,
    (tx, node_time): (TxId, UnixMillis),
) -> Vec<TransferDraft> {
    let from_wallet = points.get().min(wallet.get());
    let on_debt = points.get() - from_wallet;
    let payable = LedgerAccount::MerchantPayable(merchant.clone(), m);
    let mut out = vec![];
    for (amount, debit, kind) in [
        (
            from_wallet,
            LedgerAccount::Wallet(account, m),
            TransferKind::Redeem,
        ),
        (
            on_debt,
            LedgerAccount::Debt(account, m),
            TransferKind::RedeemOnDebt,
        ),
    ] {
        if let Some(amount) = Points::new(amount).ok().filter(|a| !a.is_zero()) {
            out.push(TransferDraft {
                debit,
                credit: payable.clone(),
                amount,
                kind,
                origin_tx: Some(tx),
                node_time: Some(node_time),
            });
        }
    }
    out
}

fn decide_grant(
    node: &NodeRecord,
    g: &Grant,
    ctx: &Context,
    (tx, node_time): (TxId, UnixMillis),
) -> Result<Effects, RejectReason> {
    if g.municipality != node.municipality {
        return Err(RejectReason::WrongMunicipality(g.municipality));
    }
    match &ctx.program {
        Some(p) if p.id == g.program && p.municipality == g.municipality => {}
        _ => return Err(RejectReason::UnknownProgram(g.program.to_string())),
    }
    card_of_account(ctx.card.as_ref(), g.account)?;
    if ctx.wallet.checked_add(g.points).is_none() {
        return Err(RejectReason::NotAllowed(format!(
            "grant of {} would take the balance of {} past {} pt",
            g.points,
            g.account,
            Points::MAX
        )));
    }
    let mut effects = Effects {
        touched: Some((g.account, g.municipality)),
        transfers: grant_transfers(
            &g.program,
            g.account,
            g.municipality,
            g.points,
            ctx.wallet,
            ctx.debt,
            Some((tx, node_time)),
        ),
        ..Effects::default()
    };
    if ctx.budget < i128::from(g.points.get()) {
        effects.notes.push((
            IncidentKind::ProgramOverdrawn,
            format!(
                "grant of {} to {} overdrew programme {} (budget was {} pt)",
                g.points, g.account, g.program, ctx.budget
            ),
        ));
    }
    Ok(effects)
}

/// The transfers of a grant: the budget credits the wallet, then the wallet
/// pays back any debt first (DESIGN §6). An overdrawn budget goes negative
/// and is reported; the holder still receives the points.
pub fn grant_transfers(
    program: &ProgramId,
    account: AccountId,
    municipality: MunicipalityCode,
    points: Points,
    wallet: Points,
    debt: Points,
    origin: Option<(TxId, UnixMillis)>,
) -> Vec<TransferDraft> {
    let mut out = vec![];
    if points.is_zero() {
        return out;
    }
    out.push(TransferDraft {
        debit: LedgerAccount::ProgramBudget(program.clone(), municipality),
        credit: LedgerAccount::Wallet(account, municipality),
        amount: points,
        kind: TransferKind::Grant,
        origin_tx: origin.map(|o| o.0),
        node_time: origin.map(|o| o.1),
    });
    let after = wallet.checked_add(points).unwrap_or(points);
    out.extend(debt_recovery(account, municipality, after, debt, origin));
    out
}

/// The debt-recovery rule (DESIGN §6: debt is recovered from later credits):
/// once a credit leaves `wallet` in the holder's wallet, as much of it as the
/// debt goes to the debt. Every wallet credit (grants from nodes and from the
/// hub, exchanges, releases of held points, escrow returned by a release)
/// follows it, through [`grant_transfers`] or the wallet-credit path (`wallet::credited`).
pub fn debt_recovery(
    account: AccountId,
    municipality: MunicipalityCode,
    wallet: Points,
    debt: Points,
    origin: Option<(TxId, UnixMillis)>,
) -> Option<TransferDraft> {
    let recover = wallet.min(debt);
    (!recover.is_zero()).then(|| TransferDraft {
        debit: LedgerAccount::Wallet(account, municipality),
        credit: LedgerAccount::Debt(account, municipality),
        amount: recover,
        kind: TransferKind::DebtRecovery,
        origin_tx: origin.map(|o| o.0),
        node_time: origin.map(|o| o.1),
    })
}

fn decide_link(
    node: &NodeRecord,
    l: &FacilityCardLink,
    ctx: &Context,
    op: OpKind,
) -> Result<Effects, RejectReason> {
    if l.facility != node.facility {
        return Err(RejectReason::NotAllowed(format!(
            "{} of a card number of facility {} signed by a node of facility {}",
            op.name(),
            l.facility,
            node.facility
        )));
    }
    if !ctx.account_exists {
        return Err(RejectReason::NotAllowed(format!(
            "{} for account {}, which does not exist",
            op.name(),
            l.account
        )));
    }
    let link = match (op, ctx.linked_to) {
        (OpKind::Link, Some(a)) if a != l.account => return Err(RejectReason::NumberTaken),
        // Linking what is already linked to the same account changes nothing.
        (OpKind::Link, Some(_)) => None,
        (OpKind::Link, None) => Some(LinkChange::Link(l.clone())),
        (_, Some(a)) if a == l.account => Some(LinkChange::Unlink(l.clone())),
        _ => return Err(RejectReason::NotLinked),
    };
    Ok(Effects {
        link,
        ..Effects::default()
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::NodePolicy;
    use ed25519_dalek::SigningKey;
    use mykey_sync_proto::{CardKey, NodeId, SignedTx};

    fn muni() -> MunicipalityCode {
        MunicipalityCode::parse("131059").unwrap()
    }
    fn key() -> SigningKey {
        SigningKey::from_bytes(&[5; 32])
    }
    fn node() -> NodeRecord {
        NodeRecord {
            id: NodeId::from_bytes(key().verifying_key().to_bytes()).unwrap(),
            facility: FacilityId::parse("shop-1").unwrap(),
            municipality: muni(),
            policy: NodePolicy {
                allowed_ops: OpKind::ALL.to_vec(),
                per_card_offline_limit: Points::new(1000).unwrap(),
                node_exposure_limit: Points::new(10_000).unwrap(),
                offline_voucher_cap: Points::new(10_000).unwrap(),
                pin_threshold: Points::new(500).unwrap(),
                valid_until: UnixMillis(u64::MAX),
            },
            enrolled_at: UnixMillis(0),
            revoked_at: None,
        }
    }
    fn card() -> CardKey {
        CardKey::new(vec![1], vec![2]).unwrap()
    }
    fn acct() -> AccountId {
        AccountId::new(1).unwrap()
    }
    fn tx(seq: u64, prev: TxId, body: TxBody) -> VerifiedTx {
        let k = key();
        SignedTx::sign(
            &TxPayload {
                node: node().id,
                seq,
                prev_hash: prev,
                created_at: UnixMillis(9),
                body,
            },
            &k,
        )
        .verify()
        .unwrap()
    }
    fn redeem(points: u64) -> TxBody {
        TxBody::Redeem(Redeem {
            card: card(),
            account: acct(),
            municipality: muni(),
            points: Points::new(points).unwrap(),
            merchant: FacilityId::parse("shop-1").unwrap(),
            basis: None,
            card_proof: None,
        })
    }

    #[test]
    fn chain_verdicts() {
        let t1 = tx(1, TxId::GENESIS, redeem(1));
        let head0 = ChainHead::EMPTY;
        assert_eq!(
            check_chain(head0, t1.payload(), t1.id(), None),
            ChainVerdict::Next
        );
        let t3 = tx(3, t1.id(), redeem(1));
        assert_eq!(
            check_chain(head0, t3.payload(), t3.id(), None),
            ChainVerdict::Reject(RejectReason::ChainGap {
                expected: 1,
                got: 3
            })
        );
        let head1 = ChainHead {
            processed_seq: 1,
            head: t1.id(),
        };
        let stored = ProcessedTx {
            id: t1.id(),
            outcome: Outcome::Rejected(RejectReason::UnknownCard),
        };
        assert_eq!(
            check_chain(head1, t1.payload(), t1.id(), Some(&stored)),
            ChainVerdict::Replay(stored.outcome.clone())
        );
        let other1 = tx(1, TxId::GENESIS, redeem(2));
        assert_eq!(
            check_chain(head1, other1.payload(), other1.id(), Some(&stored)),
            ChainVerdict::Reject(RejectReason::ChainFork { seq: 1 })
        );
        let bad_prev = tx(2, TxId::GENESIS, redeem(2));
        assert_eq!(
            check_chain(head1, bad_prev.payload(), bad_prev.id(), None),
            ChainVerdict::Reject(RejectReason::ChainFork { seq: 2 })
        );
    }

    #[test]
    fn redeem_overdraft_becomes_debt() {
        let ctx = Context {
            card: Some(CardRecord {
                card: card(),
                account: acct(),
                status: CardStatus::Active,
            }),
            wallet: Points::new(300).unwrap(),
            ..Context::default()
        };
        let e = decide(&node(), &tx(1, TxId::GENESIS, redeem(500)), &ctx).unwrap();
        assert_eq!(e.debt_created.get(), 200);
        assert_eq!(e.transfers.len(), 2);
        assert_eq!(e.transfers[0].amount.get(), 300);
        assert_eq!(e.transfers[1].kind, TransferKind::RedeemOnDebt);
        assert_eq!(e.notes.len(), 1);
    }

    #[test]
    fn strict_redeem_draws_the_signers_escrow_first() {
        let ctx = |escrow: u64, strict: bool| Context {
            card: Some(CardRecord {
                card: card(),
                account: acct(),
                status: CardStatus::Active,
            }),
            wallet: Points::new(100).unwrap(),
            escrow: Points::new(escrow).unwrap(),
            strict,
            ..Context::default()
        };
        // Within the right: only the escrow pays, nothing to report.
        let e = decide(&node(), &tx(1, TxId::GENESIS, redeem(300)), &ctx(300, true)).unwrap();
        assert_eq!(e.debt_created, Points::ZERO);
        assert_eq!(e.transfers.len(), 1);
        assert_eq!(
            e.transfers[0].debit,
            LedgerAccount::Escrow(acct(), muni(), node().id)
        );
        assert!(e.notes.is_empty());
        // Beyond it (a buggy node): escrow, then wallet, then debt, reported.
        let e = decide(&node(), &tx(1, TxId::GENESIS, redeem(500)), &ctx(300, true)).unwrap();
        let legs: Vec<(u64, TransferKind)> = e
            .transfers
            .iter()
            .map(|t| (t.amount.get(), t.kind))
            .collect();
        assert_eq!(
            legs,
            vec![
                (300, TransferKind::Redeem),
                (100, TransferKind::Redeem),
                (100, TransferKind::RedeemOnDebt)
            ]
        );
        assert_eq!(e.debt_created.get(), 100);
        let kinds: Vec<IncidentKind> = e.notes.iter().map(|n| n.0).collect();
        assert_eq!(
            kinds,
            vec![IncidentKind::BeyondRight, IncidentKind::DebtCreated]
        );
    }

    #[test]
    fn business_rejections() {
        let active = Some(CardRecord {
            card: card(),
            account: AccountId::new(2).unwrap(),
            status: CardStatus::Active,
        });
        let cases: Vec<(NodeRecord, TxBody, Context, RejectReason)> = vec![
            (
                node(),
                redeem(1),
                Context::default(),
                RejectReason::UnknownCard,
            ),
            (
                node(),
                redeem(1),
                Context {
                    card: active.clone(),
                    ..Context::default()
                },
                RejectReason::WrongAccount(acct()),
            ),
            (
                NodeRecord {
                    policy: NodePolicy {
                        allowed_ops: vec![OpKind::Link],
                        ..node().policy
                    },
                    ..node()
                },
                redeem(1),
                Context::default(),
                RejectReason::NotAllowed("redeem (facility shop-1 is not allowed it)".to_owned()),
            ),
            (
                node(),
                TxBody::UnlinkFacilityCard(FacilityCardLink {
                    account: acct(),
                    facility: FacilityId::parse("shop-1").unwrap(),
                    number: FacilityCardNumber::parse("L1").unwrap(),
                }),
                Context {
                    account_exists: true,
                    ..Context::default()
                },
                RejectReason::NotLinked,
            ),
            (
                node(),
                TxBody::LinkFacilityCard(FacilityCardLink {
                    account: acct(),
                    facility: FacilityId::parse("shop-1").unwrap(),
                    number: FacilityCardNumber::parse("L1").unwrap(),
                }),
                Context {
                    account_exists: true,
                    linked_to: Some(AccountId::new(9).unwrap()),
                    ..Context::default()
                },
                RejectReason::NumberTaken,
            ),
        ];
        for (n, body, ctx, want) in cases {
            let t = tx(1, TxId::GENESIS, body.clone());
            assert_eq!(decide(&n, &t, &ctx), Err(want), "{body:?}");
        }
    }

    #[test]
    fn amounts_past_the_largest_balance_are_refused_not_panicked_on() {
        let ctx = Context {
            card: Some(CardRecord {
                card: card(),
                account: acct(),
                status: CardStatus::Active,
            }),
            wallet: Points::new(Points::MAX).unwrap(),
            debt: Points::new(Points::MAX).unwrap(),
            program: Some(Program {
                id: ProgramId::parse("volunteer").unwrap(),
                municipality: muni(),
            }),
            ..Context::default()
        };
        let g = TxBody::Grant(Grant {
            card: card(),
            account: acct(),
            municipality: muni(),
            program: ProgramId::parse("volunteer").unwrap(),
            points: Points::new(1).unwrap(),
        });
        // No PIN threshold in the way: the debt part of the paid share is
        // what would overflow.
        let n = NodeRecord {
            policy: NodePolicy {
                pin_threshold: Points::new(Points::MAX).unwrap(),
                ..node().policy
            },
            ..node()
        };
        for body in [g, redeem(Points::MAX)] {
            let mut c = ctx.clone();
            if matches!(body, TxBody::Redeem(_)) {
                c.wallet = Points::ZERO;
            }
            let r = decide(&n, &tx(1, TxId::GENESIS, body), &c);
            assert!(matches!(r, Err(RejectReason::NotAllowed(_))), "{r:?}");
        }
    }

    #[test]
    fn grant_recovers_debt_first() {
        let p = ProgramId::parse("volunteer").unwrap();
        let t = grant_transfers(
            &p,
            acct(),
            muni(),
            Points::new(100).unwrap(),
            Points::ZERO,
            Points::new(30).unwrap(),
            None,
        );
        assert_eq!(t.len(), 2);
        assert_eq!(t[1].kind, TransferKind::DebtRecovery);
        assert_eq!(t[1].amount.get(), 30);
    }
}
