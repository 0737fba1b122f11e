//! The decision on vouchers a holder made of their points at a kiosk
//! (`TxBody::IssueVouchers`, issue 17 part 1(a)), pure like the rest of
//! `rules`; `voucher::kiosk::load` reads its [`IssueContext`] inside the
//! ingest transaction.
//!
//! Like a donation, nothing here is taken on the node's word: the node's
//! owner controls the node, its key and its files, and a key can leak. The
//! hub debits the wallet only from its own records (the confirmed balance,
//! never debt) and only with the card's PIN signature over exactly this
//! issue (checked with the key kept at registration), from a node it vouched
//! for as voucher issuer and has not withdrawn, for a kiosk batch it has not
//! recorded before (so a replayed or re-batched issue is refused), with
//! denominations that add up to the points and an expiry within
//! [`MAX_KIOSK_VOUCHER_DAYS`]. Anything else is refused whole and moves nothing.

use super::Effects;
use crate::bounds::ProofCheck;
use crate::model::{CardRecord, LedgerAccount, NodeRecord, TransferDraft, TransferKind};
use crate::store::voucher::{KioskBatchRow, VoucherIssuerRow};
use mykey_sync_proto::fact::CardStatus;
use mykey_sync_proto::wire::RejectReason;
use mykey_sync_proto::{KioskIssue, MAX_KIOSK_VOUCHER_DAYS, Points, TxId, UnixMillis};
use mykey_voucher::{ExpiryDate, Issuer};

const DAY_MS: u64 = 86_400_000;

/// What the decision on a kiosk issue needs, loaded in the ingest
/// transaction (`voucher::kiosk::load`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IssueContext {
    /// The signer's voucher issuer statement, if the hub ever made one.
    pub issuer: Option<VoucherIssuerRow>,
    /// The card proof checked with the card's registered key.
    pub proof: ProofCheck,
    /// The kiosk batch of that number recorded before, if any.
    pub earlier: Option<KioskBatchRow>,
    /// The hub's clock now.
    pub received_at: UnixMillis,
}

/// Decides a verified `IssueVouchers` from an enrolled node. `Err` is a
/// business rejection: it consumes the seq and moves nothing.
pub fn decide(
    node: &NodeRecord,
    k: &KioskIssue,
    card: Option<&CardRecord>,
    wallet: Points,
    ctx: &IssueContext,
    (tx, node_time): (TxId, UnixMillis),
) -> Result<Effects, RejectReason> {
    let now = ctx.received_at;
    let refuse = |why: String| Err(RejectReason::NotAllowed(why));
    if let Err(e) = k.check() {
        return refuse(format!("kiosk voucher issue refused: {e}"));
    }
    if k.municipality != node.municipality {
        return Err(RejectReason::WrongMunicipality(k.municipality));
    }
    let card = card.ok_or(RejectReason::UnknownCard)?;
    if card.account != k.account {
        return Err(RejectReason::WrongAccount(k.account));
    }
    match card.status {
        CardStatus::Active => {}
        CardStatus::Suspended => return Err(RejectReason::CardSuspended),
        other => return refuse(format!("kiosk voucher issue on a {} card", other.name())),
    }
    match &ctx.proof {
        ProofCheck::Verified => {}
        ProofCheck::Absent => return refuse("kiosk voucher issue without a card proof".to_owned()),
        ProofCheck::NoKey => {
            return refuse(
                "kiosk voucher issue proof cannot be checked: the hub holds no certificate key for the card"
                    .to_owned(),
            );
        }
        ProofCheck::Invalid(e) => return refuse(format!("kiosk voucher issue proof refused: {e}")),
    }
    let issuer = match &ctx.issuer {
        Some(i) if i.node == node.id && i.withdrawn_at.is_none() => i.issuer,
        Some(i) if i.node == node.id => {
            return refuse(format!(
                "node {} was voucher issuer {} and was withdrawn: it issues no vouchers",
                node.id.short(),
                i.issuer
            ));
        }
        _ => {
            return refuse(format!(
                "node {} is not a voucher issuer (`mykey-hub voucher issuer add --node`)",
                node.id.short()
            ));
        }
    };
    let Some(batch) = Issuer::node_batch(issuer, k.batch) else {
        return refuse(format!("issuer number {issuer} is out of range"));
    };
    if let Some(e) = &ctx.earlier {
        return refuse(format!(
            "kiosk batch {} of issuer {issuer} was issued already (tx {}): a batch is issued once",
            k.batch,
            e.tx.short()
        ));
    }
    let expires = ExpiryDate::from_days(k.expires_days);
    // By the node's clock, as a redemption's: an issue that reaches the hub
    // after its last day is recorded and expires at the next tick, so
    // vouchers a shop took in time are still paid.
    if expires.has_passed(node_time) {
        return refuse(format!("the vouchers' last valid day {expires} has passed"));
    }
    let latest = now.0 / DAY_MS + u64::from(MAX_KIOSK_VOUCHER_DAYS);
    if u64::from(k.expires_days) > latest {
        return refuse(format!(
            "the vouchers' last valid day {expires} is more than {MAX_KIOSK_VOUCHER_DAYS} days away"
        ));
    }
    if k.points > wallet {
        return refuse(format!(
            "kiosk voucher issue of {} beyond the confirmed balance {} of {}",
            k.points, wallet, k.account
        ));
    }
    Ok(Effects {
        touched: Some((k.account, k.municipality)),
        transfers: vec![TransferDraft {
            debit: LedgerAccount::Wallet(k.account, k.municipality),
            credit: LedgerAccount::VoucherFloat(k.municipality),
            amount: k.points,
            kind: TransferKind::KioskVoucherIssue,
            origin_tx: Some(tx),
            node_time: Some(node_time),
        }],
        kiosk_batch: Some(KioskBatchRow {
            batch,
            issuer,
            node: node.id,
            tx,
            account: k.account,
            municipality: k.municipality,
            points: k.points,
            denominations: k.denominations.clone(),
            expires_days: k.expires_days,
            // The hub's clock: set when applied.
            issued_at: now,
            expired_at: None,
        }),
        ..Effects::default()
    })
}
