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

use crate::bounds::ProofCheck;
use crate::model::{CardRecord, LedgerAccount, TransferDraft, TransferKind};
use crate::rules::voucher_issue::IssueContext;
use crate::store::{StoreError, StoreTx};
use mykey_sync_proto::{
    MunicipalityCode, Points, TxBody, UnixMillis, VerifiedTx, VoucherIssueBinding,
};
use mykey_voucher::{ExpiryDate, Issuer};

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
