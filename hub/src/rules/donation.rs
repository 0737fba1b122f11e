//! The decision on a donation a holder made at a kiosk (`TxBody::Donate`,
//! issue 19), pure like the rest of `rules`; `donation::load` reads its
//! [`DonationContext`] inside the ingest transaction.
//!
//! Unlike a redeem, nothing here is honoured on the node's word: no shop
//! was promised anything, so a donation the hub cannot verify is refused
//! whole and moves no point. It needs the card's PIN signature bound to
//! this very transaction (checked with the key the hub kept at
//! registration), an active card of the named account, a declared,
//! open programme of the node's municipality, and a confirmed balance that
//! covers it (never debt). A replay is the chain's business: the same seq
//! is a duplicate, another seq does not match the proof.

use super::Effects;
use crate::bounds::ProofCheck;
use crate::model::{CardRecord, LedgerAccount, NodeRecord, TransferDraft, TransferKind};
use crate::store::donation::DonationProgramRow;
use mykey_sync_proto::fact::CardStatus;
use mykey_sync_proto::wire::RejectReason;
use mykey_sync_proto::{Donate, Points, TxId, UnixMillis};

/// What the decision on a kiosk donation needs, loaded in the ingest
/// transaction (`donation::load`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DonationContext {
    /// The programme named, if declared.
    pub program: Option<DonationProgramRow>,
    /// The card proof checked with the card's registered key.
    pub proof: ProofCheck,
}

/// Decides a verified `Donate` from an enrolled node. `Err` is a business
/// rejection: it consumes the seq and moves nothing.
pub fn decide(
    node: &NodeRecord,
    d: &Donate,
    card: Option<&CardRecord>,
    wallet: Points,
    ctx: &DonationContext,
    (tx, node_time): (TxId, UnixMillis),
) -> Result<Effects, RejectReason> {
    let refuse = |why: String| Err(RejectReason::NotAllowed(why));
    if d.municipality != node.municipality {
        return Err(RejectReason::WrongMunicipality(d.municipality));
    }
    let card = card.ok_or(RejectReason::UnknownCard)?;
    if card.account != d.account {
        return Err(RejectReason::WrongAccount(d.account));
    }
    match card.status {
        CardStatus::Active => {}
        CardStatus::Suspended => return Err(RejectReason::CardSuspended),
        other => return refuse(format!("donation on a {} card", other.name())),
    }
    match &ctx.proof {
        ProofCheck::Verified => {}
        ProofCheck::Absent => return refuse("donation without a card proof".to_owned()),
        ProofCheck::NoKey => {
            return refuse(
                "donation proof cannot be checked: the hub holds no certificate key for the card"
                    .to_owned(),
            );
        }
        ProofCheck::Invalid(e) => return refuse(format!("donation proof refused: {e}")),
    }
    let Some(p) = &ctx.program else {
        return Err(RejectReason::UnknownProgram(d.programme.to_string()));
    };
    if p.municipality != d.municipality {
        return Err(RejectReason::UnknownProgram(format!(
            "{} (a programme of {}, not of {})",
            d.programme, p.municipality, d.municipality
        )));
    }
    if p.closed_at.is_some() {
        return refuse(format!("donation programme {} is closed", d.programme));
    }
    if d.points.is_zero() {
        return refuse("donation of 0 points".to_owned());
    }
    if d.points > wallet {
        return refuse(format!(
            "donation of {} beyond the confirmed balance {} of {}",
            d.points, wallet, d.account
        ));
    }
    Ok(Effects {
        touched: Some((d.account, d.municipality)),
        transfers: vec![TransferDraft {
            debit: LedgerAccount::Wallet(d.account, d.municipality),
            credit: LedgerAccount::Donated(d.account, d.programme.clone(), d.municipality),
            amount: d.points,
            kind: TransferKind::Donation,
            origin_tx: Some(tx),
            node_time: Some(node_time),
        }],
        ..Effects::default()
    })
}
