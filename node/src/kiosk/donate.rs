//! The reader loop's side of a kiosk donation (issue 19 part 5): the
//! screen's [`Effect::Donate`](super::screen::Effect::Donate) after the PIN.
//! The card signs this very donation ([`DonationBinding`]) and the node
//! signs a `TxBody::Donate` into its outbox, which `mykey-node run` carries
//! to the hub; the hub decides it from what it verifies (the card's
//! signature with the key it kept, the programme declared and open, the
//! confirmed balance) and refuses it whole otherwise. Nothing is stored but
//! the signed transaction itself.
//!
//! [`DonationBinding`]: mykey_sync_proto::DonationBinding

use mykey_sync_proto::CardKey;

use super::screen::{Donation, DonationOffer, DonationRefusal, Outcome};
use crate::card::apdu::Pin;
use crate::card::cert::CardCert;
use crate::card::jpki::prove_donation;
use crate::card::reader::Session;
use crate::node::{Node, OpError};

/// The open programmes the node holds, for the screen (none on a store
/// error, which is logged).
pub(super) fn offers(node: &Node) -> Vec<DonationOffer> {
    match node.donation_programmes() {
        Ok(list) => list
            .into_iter()
            .map(|(programme, recipient)| DonationOffer {
                programme,
                recipient,
            })
            .collect(),
        Err(e) => {
            tracing::warn!("node store: {e}; no donation programmes offered");
            vec![]
        }
    }
}

/// The donation the screen asked for: the card signs exactly this donation
/// after its PIN (its certificate checked against `trusted_ca`, DER), then
/// the node signs it into the outbox.
pub(super) fn donate(
    node: &mut Node,
    trusted_ca: &[Vec<u8>],
    session: &mut Session,
    cert: &CardCert,
    card: &CardKey,
    pin: Pin,
    donation: &Donation,
) -> Outcome {
    let now = crate::net::unix_now();
    let trusted = match super::proof::trusted_now(cert, trusted_ca) {
        Ok(t) => t,
        Err(refused) => return refused,
    };
    let programme = donation.offer.programme.clone();
    let binding = match node.donation_binding(card, programme.clone(), donation.points, now) {
        Ok(b) => b,
        Err(e) => return not_made(e),
    };
    let proof = match prove_donation(session, &trusted, pin, binding) {
        Ok(p) => p,
        Err(e) => return super::proof::failed(e),
    };
    let place = match node.limits() {
        Ok(Some(l)) => l.facility,
        Ok(None) => return Outcome::NotDonated(DonationRefusal::NotHere),
        Err(e) => {
            tracing::warn!("node store: {e}");
            return Outcome::NotDonated(DonationRefusal::NotHere);
        }
    };
    match node.donate(&proof, now) {
        Ok(done) => {
            tracing::info!(seq = done.seq, %programme, "donation signed at the kiosk");
            Outcome::Donated {
                seq: done.seq,
                place,
                at: now,
            }
        }
        Err(e) => not_made(e),
    }
}

fn not_made(e: OpError) -> Outcome {
    match e {
        OpError::NotRegistered => Outcome::NotRegistered,
        OpError::DonationBeyondBalance { available, .. } => {
            Outcome::NotDonated(DonationRefusal::BeyondBalance { available })
        }
        OpError::NoSuchDonationProgramme(_) => {
            Outcome::NotDonated(DonationRefusal::ProgrammeClosed)
        }
        e => {
            tracing::warn!("donation not made: {e}");
            Outcome::NotDonated(DonationRefusal::NotHere)
        }
    }
}
