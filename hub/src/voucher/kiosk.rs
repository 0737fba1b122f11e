//! Vouchers a holder turns their points into at a kiosk (issue 17 part
//! 1(a)): the kiosk node signs them with its own key under the issuer
//! number the hub vouched for it with (`issuers.rs`), and its
//! `TxBody::IssueVouchers`, with the card's PIN proof, moves the points
//! from the holder's wallet to the municipality's voucher float and records
//! the kiosk batch (`rules::voucher_issue` decides it). A redemption of a
//! kiosk voucher is then paid from the float like a printed one's, once
//! its batch row backs it (`redeem.rs`, `rules::voucher`).
//!
//! At expiry the batch's unredeemed points go back from the float to the
//! holder's wallet ([`expire_due_in`], run with the hub batches' expiry).
//!
//! A holder may spend a voucher before the kiosk's issue reaches the hub
//! (the kiosk offline, the shop online first). Such a redemption is held,
//! paying nothing, in hub order; the transaction that records the batch
//! decides every held one ([`decide_held`]) as if it had arrived then, in
//! that order, so a shop is paid once the issue arrives and a copy is still
//! an incident. A redemption still held on its voucher's last day (or
//! [`MAX_KIOSK_VOUCHER_DAYS`] after it was held) is reported to the
//! operators once, and stays held ([`report_held_due`]).

use crate::bounds::ProofCheck;
use crate::key::HubKey;
use crate::model::{
    CardRecord, Incident, IncidentKind, LedgerAccount, TransferDraft, TransferKind,
};
use crate::rules::voucher_issue::IssueContext;
use crate::store::voucher::{HeldRedemptionRow, VoucherRedemptionRow};
use crate::store::{StoreError, StoreTx};
use mykey_sync_proto::{
    MAX_KIOSK_VOUCHER_DAYS, MunicipalityCode, Points, SignedTx, TxBody, UnixMillis, VerifiedTx,
    VoucherIssueBinding,
};
use mykey_voucher::{ExpiryDate, Issuer, Serial};

/// Held redemptions the operators' report reads in one step at most.
const MAX_HELD_READ: u32 = 10_000;

/// Loads what the decision on an `IssueVouchers` needs (`None` for other
/// bodies): the signer's issuer statement, the batch recorded before under
/// the same number, and the card proof checked with the key the hub kept
/// when the card was registered, bound to this transaction.
pub(crate) fn load(
    st: &mut dyn StoreTx,
    v: &VerifiedTx,
    card: Option<&CardRecord>,
    now: UnixMillis,
) -> Result<Option<IssueContext>, StoreError> {
    let TxBody::IssueVouchers(k) = &v.payload().body else {
        return Ok(None);
    };
    let p = v.payload();
    let issuer = st.voucher_issuers()?.into_iter().find(|r| r.node == p.node);
    let earlier = match issuer
        .as_ref()
        .and_then(|i| Issuer::node_batch(i.issuer, k.batch))
    {
        Some(batch) => st.kiosk_batch(batch)?,
        None => None,
    };
    // Only a card of the named account can give its points: the rules
    // refuse the rest before the proof matters.
    let proof = if card.is_some_and(|c| c.account == k.account) {
        match st.card_public_key(&k.card)? {
            None => ProofCheck::NoKey,
            Some(key) => {
                let binding = VoucherIssueBinding::new(p.node, p.seq, p.created_at, k);
                match mykey_jpki::verify_voucher_issue_proof(&key, &binding, &k.card_proof) {
                    Ok(()) => ProofCheck::Verified,
                    Err(e) => ProofCheck::Invalid(e.to_string()),
                }
            }
        }
    } else {
        ProofCheck::Absent
    };
    Ok(Some(IssueContext {
        issuer,
        proof,
        earlier,
        received_at: now,
    }))
}

/// The kiosk batches of `m` (`None`: all) past their last valid day (JST)
/// and not returned yet give their unredeemed points back from the voucher
/// float to the holder's wallet, once each (the batch is marked in the same
/// transaction). A redemption signed in time that reaches the hub later is
/// paid from the wallet (`rules::voucher`).
pub(crate) fn expire_due_in(
    st: &mut dyn StoreTx,
    m: Option<MunicipalityCode>,
    now: UnixMillis,
) -> Result<Vec<super::ExpiredBatch>, StoreError> {
    report_held_due(st, m, now)?;
    let mut out = vec![];
    for b in st.kiosk_batches_unexpired()? {
        if m.is_some_and(|m| m != b.municipality)
            || !ExpiryDate::from_days(b.expires_days).has_passed(now)
        {
            continue;
        }
        let (paid, _) = st.voucher_batch_paid(b.batch)?;
        let back = Points::new(b.points.get().saturating_sub(paid.get())).unwrap_or(Points::ZERO);
        st.expire_kiosk_batch(b.batch, now)?;
        if !back.is_zero() {
            st.post(
                &TransferDraft {
                    debit: LedgerAccount::VoucherFloat(b.municipality),
                    credit: LedgerAccount::Wallet(b.account, b.municipality),
                    amount: back,
                    kind: TransferKind::KioskVoucherReturn,
                    origin_tx: Some(b.tx),
                    node_time: None,
                },
                now,
            )?;
        }
        tracing::info!(batch = b.batch, %back, "kiosk voucher batch expired: its unredeemed points went back to the holder's wallet");
        out.push(super::ExpiredBatch {
            batch: b.batch,
            back,
        });
    }
    Ok(out)
}

/// Points in kiosk vouchers of `m` not yet redeemed nor returned (part of
/// the voucher float).
pub fn outstanding(st: &mut dyn StoreTx, m: MunicipalityCode) -> Result<u64, StoreError> {
    let mut sum = 0u64;
    for b in st.kiosk_batches_unexpired()? {
        if b.municipality != m {
            continue;
        }
        let (paid, _) = st.voucher_batch_paid(b.batch)?;
        sum = sum.saturating_add(b.points.get().saturating_sub(paid.get()));
    }
    Ok(sum)
}

/// Decides the held redemptions of `batch`'s vouchers, in hub order, in
/// the transaction that has just recorded the batch: each as
/// `rules::voucher` decides a redemption arriving then, with the hub's
/// clock of when it was held as its place in hub order (so the first is
/// paid from the float, a copy is an incident judged against it). One the
/// batch does not back (a voucher the issue did not record, a leaked
/// kiosk key) is an incident and pays nothing.
pub(crate) fn decide_held(
    st: &mut dyn StoreTx,
    key: &HubKey,
    batch: u32,
    now: UnixMillis,
) -> Result<(), StoreError> {
    let hub = key.id();
    for h in st.held_redemptions(batch)? {
        st.delete_held_redemption(&h.tx)?;
        let corrupt = |detail: String| StoreError::Corrupt {
            what: "voucher_redemptions_held.signed",
            detail,
        };
        let v = SignedTx::from_bytes(&h.signed)
            .map_err(|e| corrupt(e.to_string()))?
            .verify()
            .map_err(|e| corrupt(e.to_string()))?;
        let TxBody::RedeemVoucher(r) = &v.payload().body else {
            return Err(corrupt(format!("tx {} is not a voucher redemption", h.tx)));
        };
        let node = st
            .node(&h.node)?
            .ok_or_else(|| corrupt(format!("node {} is not enrolled", h.node.short())))?;
        let ctx = super::redeem::load(st, &v, &hub, h.held_at)?
            .ok_or_else(|| corrupt(format!("tx {} is not a voucher redemption", h.tx)))?;
        let serial = Serial {
            batch: h.batch,
            index: h.index,
        };
        let effects = match crate::rules::voucher::decide(&node, &v, r, &ctx) {
            Ok(e) if e.voucher_held.is_none() => e,
            Ok(_) => {
                return Err(corrupt(format!(
                    "voucher {serial} is held again after its batch was recorded"
                )));
            }
            Err(why) => {
                record(
                    st,
                    &h,
                    now,
                    IncidentKind::VoucherUnbacked,
                    format!(
                        "held redemption of voucher {serial} by node {} seq {} (tx {}) not paid: its kiosk's issue arrived and does not back it: {why}",
                        h.node.short(),
                        h.seq,
                        h.tx.short()
                    ),
                )?;
                continue;
            }
        };
        for t in &effects.transfers {
            st.post(t, now)?;
        }
        if let Some(row) = &effects.voucher {
            st.insert_voucher_redemption(&VoucherRedemptionRow {
                at: h.held_at,
                ..row.clone()
            })?;
            if !row.incident {
                super::marks::emit_redeemed(st, key, row.batch, row.index, now)?;
            }
            tracing::info!(batch = h.batch, index = h.index, node = %h.node.short(), seq = h.seq, paid = %row.paid, incident = row.incident, "held kiosk voucher redemption decided: its issue arrived");
        }
        for (kind, detail) in effects.notes {
            record(
                st,
                &h,
                now,
                kind,
                format!("{detail} (held until its kiosk's issue arrived)"),
            )?;
        }
    }
    Ok(())
}

/// The kiosk's issue of a batch was refused (`why`): the redemptions held
/// for that batch are not backed by it. Each is reported once now; it stays
/// held, since only a recorded issue of that batch could back it. Nothing
/// is done for an issue refused as a batch recorded before (its held
/// redemptions were decided when it was recorded), or from a node that is
/// not the issuer.
pub(crate) fn issue_refused(
    st: &mut dyn StoreTx,
    v: &VerifiedTx,
    ctx: Option<&IssueContext>,
    why: &mykey_sync_proto::wire::RejectReason,
    now: UnixMillis,
) -> Result<(), StoreError> {
    let (p, Some(ctx)) = (v.payload(), ctx) else {
        return Ok(());
    };
    let TxBody::IssueVouchers(k) = &p.body else {
        return Ok(());
    };
    let Some(issuer) = ctx.issuer.as_ref().filter(|i| i.node == p.node) else {
        return Ok(());
    };
    let Some(batch) = Issuer::node_batch(issuer.issuer, k.batch) else {
        return Ok(());
    };
    if ctx.earlier.is_some() {
        return Ok(());
    }
    for h in st.held_redemptions(batch)? {
        if h.reported_at.is_some() {
            continue;
        }
        let serial = Serial {
            batch: h.batch,
            index: h.index,
        };
        let detail = format!(
            "redemption of kiosk voucher {serial} by node {} seq {} (tx {}) stays held: the kiosk's issue of its batch (seq {}, tx {}) was refused: {why}; nothing is paid unless an issue of that batch is recorded",
            h.node.short(),
            h.seq,
            h.tx.short(),
            p.seq,
            v.id().short()
        );
        record(st, &h, now, IncidentKind::VoucherUnbacked, detail)?;
        st.mark_held_reported(&h.tx, now)?;
    }
    Ok(())
}

/// Reports to the operators, once each, the held redemptions of `m`
/// (`None`: all) whose voucher's last day has passed, or that were held
/// [`MAX_KIOSK_VOUCHER_DAYS`] ago, with the issue still absent. They stay
/// held: if the kiosk's issue arrives later they are decided then.
pub(crate) fn report_held_due(
    st: &mut dyn StoreTx,
    m: Option<MunicipalityCode>,
    now: UnixMillis,
) -> Result<u32, StoreError> {
    let longest = u64::from(MAX_KIOSK_VOUCHER_DAYS) * 86_400_000;
    let mut reported = 0;
    // Unreported only: the rows reported before never crowd out the rest.
    for h in st.held_redemptions_all(true, MAX_HELD_READ)? {
        let due = ExpiryDate::from_days(h.last_day).has_passed(now)
            || now.0.saturating_sub(h.held_at.0) >= longest;
        if h.reported_at.is_some() || m.is_some_and(|m| m != h.municipality) || !due {
            continue;
        }
        let serial = Serial {
            batch: h.batch,
            index: h.index,
        };
        let detail = format!(
            "redemption of kiosk voucher {serial} by node {} seq {} (tx {}) held since {}: the kiosk's issuing transaction has not reached the hub by the voucher's last day {}; nothing is paid unless it arrives (the kiosk may be lost or withdrawn)",
            h.node.short(),
            h.seq,
            h.tx.short(),
            crate::economy::calendar::iso_jst(h.held_at),
            ExpiryDate::from_days(h.last_day)
        );
        record(st, &h, now, IncidentKind::VoucherUnbacked, detail)?;
        st.mark_held_reported(&h.tx, now)?;
        reported += 1;
    }
    Ok(reported)
}

fn record(
    st: &mut dyn StoreTx,
    h: &HeldRedemptionRow,
    now: UnixMillis,
    kind: IncidentKind,
    detail: String,
) -> Result<(), StoreError> {
    tracing::warn!(node = %h.node.short(), seq = h.seq, tx = %h.tx.short(), kind = kind.name(), "{detail}");
    st.record_incident(&Incident {
        at: now,
        kind,
        node: Some(h.node),
        seq: Some(h.seq),
        tx: Some(h.tx),
        detail,
    })
}
