//! A holder's own orders (issue 19): registering their card and changing
//! their My Key ID at a node's kiosk, proved by the card's PIN signature.
//!
//! The hub decides from what it verifies, never from what the node says:
//! - the order names the node that carried it (the transport-authenticated
//!   peer) and the card;
//! - a registration carries the card's certificate, whose chain the hub
//!   checks against its own trusted JPKI CAs before it verifies the card's
//!   signature with the certificate's key; the account's municipality is
//!   the node's, as the hub enrolled it;
//! - a change is verified with the key the hub kept at registration, and is
//!   carried out only while the account still has the ID the order was
//!   signed against (checked in the write transaction), so a replayed or
//!   stale order changes nothing;
//! - every order that changes something is claimed by its challenge in the
//!   transaction that carries it out (`holder_orders_done`): a node that kept
//!   a signed link, unlink or ID change cannot play it again later, after the
//!   holder undid it;
//! - the old ID stays the account's, resolvable and never anyone else's
//!   (`Hub::change_my_key_id`'s rule);
//! - a facility card number is linked at once only for a facility whose
//!   policy at the hub is `auto` (`mykey-hub facility kiosk-link FACILITY
//!   auto`, or `serve --kiosk-link FACILITY`); for any other the order
//!   becomes a pending request that the facility's node confirms or refuses
//!   (`crate::link_request`). Unlinking one's own number is always the
//!   holder's, at once.
//!
//! A node owner without the card and its PIN cannot register a card, nor
//! change anyone's ID (`hub/tests/holder_order.rs`).

use crate::admin::{ChangeMyKeyIdError, RegisterError};
use crate::facts::emit;
use crate::hub::Hub;
use crate::ledger;
use crate::link_request::{kiosk_link_policy_in_force, request_link};
use crate::model::CardRecord;
use crate::store::StoreError;
use crate::store::link_request::KioskLinkPolicy;
use mykey_jpki::{CardCert, verify_holder_order};
use mykey_sync_proto::fact::{FactBody, Scope};
use mykey_sync_proto::holder::{
    HolderAction, HolderDone, HolderOrder, HolderRefusal, HolderResponse, MAX_CERTIFICATE_BYTES,
};
use mykey_sync_proto::{
    CardSignature, CardStatus, FacilityCardNumber, FacilityId, MyKeyId, NodeId, UnixMillis,
};
use tracing::{info, warn};

impl Hub {
    /// Carries out a holder's order that `node` carried. Logs the node, the
    /// card's short hash and the outcome.
    pub(crate) fn holder_order(
        &mut self,
        node: &NodeId,
        order: HolderOrder,
        proof: CardSignature,
        certificate: Option<Vec<u8>>,
        now: UnixMillis,
    ) -> HolderResponse {
        let card = order.card.clone();
        let answer = if &order.node != node {
            Ok(Err(HolderRefusal::ForeignChallenge))
        } else {
            match order.action.clone() {
                HolderAction::ReadHistory => Ok(Err(HolderRefusal::ReadNeedsChallenge)),
                HolderAction::Register { my_key_id } => {
                    self.holder_register(node, &order, &proof, certificate, &my_key_id, now)
                }
                HolderAction::ChangeMyKeyId { from, to } => {
                    self.holder_change(&order, &proof, &from, &to, now)
                }
                HolderAction::LinkFacilityCard { facility, number } => {
                    self.holder_link(&order, &proof, &facility, &number, true, now)
                }
                HolderAction::UnlinkFacilityCard { facility, number } => {
                    self.holder_link(&order, &proof, &facility, &number, false, now)
                }
            }
        };
        match answer {
            Ok(Ok(done)) => {
                info!(node = %node.short(), card = %card.short(), "holder order carried out");
                HolderResponse::Done(done)
            }
            Ok(Err(refusal)) => {
                info!(node = %node.short(), card = %card.short(), %refusal, "holder order refused");
                HolderResponse::Refused(refusal)
            }
            Err(e) => {
                warn!(node = %node.short(), card = %card.short(), error = %e, "holder order: store");
                HolderResponse::Refused(HolderRefusal::Unavailable)
            }
        }
    }

    fn holder_register(
        &mut self,
        node: &NodeId,
        order: &HolderOrder,
        proof: &CardSignature,
        certificate: Option<Vec<u8>>,
        my_key_id: &MyKeyId,
        now: UnixMillis,
    ) -> Result<Result<HolderDone, HolderRefusal>, StoreError> {
        if self.trusted_ca.is_empty() {
            return Ok(Err(HolderRefusal::NoRegistrationHere));
        }
        let Some(der) = certificate.filter(|d| d.len() <= MAX_CERTIFICATE_BYTES) else {
            return Ok(Err(HolderRefusal::UntrustedCertificate));
        };
        let Ok(cert) = CardCert::from_der(der) else {
            return Ok(Err(HolderRefusal::UntrustedCertificate));
        };
        let now_s = i64::try_from(now.0 / 1000).unwrap_or(i64::MAX);
        let Ok(trusted) = mykey_jpki::trust(cert, &self.trusted_ca, now_s) else {
            return Ok(Err(HolderRefusal::UntrustedCertificate));
        };
        if !order
            .card
            .spellings()
            .iter()
            .any(|k| k == trusted.cert().card_key())
        {
            return Ok(Err(HolderRefusal::ForeignChallenge));
        }
        if verify_holder_order(trusted.cert().public_key_der(), order, proof).is_err() {
            return Ok(Err(HolderRefusal::BadProof));
        }
        let record = {
            let mut st = self.store.begin_read()?;
            for k in order.card.spellings() {
                if st.card(&k)?.is_some() {
                    return Ok(Err(HolderRefusal::AlreadyRegistered));
                }
            }
            st.node(node)?
        };
        let Some(record) = record else {
            return Ok(Err(HolderRefusal::Unavailable));
        };
        match self.register_account_with_certificate(my_key_id, record.municipality, &trusted, now)
        {
            Ok(account) => Ok(Ok(HolderDone::Registered {
                account,
                my_key_id: my_key_id.clone(),
                municipality: record.municipality,
            })),
            Err(RegisterError::MyKeyIdTaken(_)) => Ok(Err(HolderRefusal::MyKeyIdTaken)),
            Err(RegisterError::CardTaken(..)) => Ok(Err(HolderRefusal::AlreadyRegistered)),
            Err(RegisterError::UnknownMunicipality(_)) => Ok(Err(HolderRefusal::Unavailable)),
            Err(RegisterError::Store(e)) => Err(e),
        }
    }

    /// The registered, active card the order names, when its signature
    /// verifies with the key kept at registration.
    fn verified_card(
        &mut self,
        order: &HolderOrder,
        proof: &CardSignature,
    ) -> Result<Result<CardRecord, HolderRefusal>, StoreError> {
        let (record, public_key) = {
            let mut st = self.store.begin_read()?;
            let mut found = None;
            for k in order.card.spellings() {
                if let Some(c) = st.card(&k)? {
                    found = Some((c, k));
                    break;
                }
            }
            let Some((record, key)) = found else {
                return Ok(Err(HolderRefusal::UnknownCard));
            };
            if record.status != CardStatus::Active {
                return Ok(Err(HolderRefusal::CardNotActive));
            }
            let Some(public_key) = st.card_public_key(&key)? else {
                return Ok(Err(HolderRefusal::NoCardKey));
            };
            (record, public_key)
        };
        if verify_holder_order(&public_key, order, proof).is_err() {
            return Ok(Err(HolderRefusal::BadProof));
        }
        Ok(Ok(record))
    }

    fn holder_change(
        &mut self,
        order: &HolderOrder,
        proof: &CardSignature,
        from: &MyKeyId,
        to: &MyKeyId,
        now: UnixMillis,
    ) -> Result<Result<HolderDone, HolderRefusal>, StoreError> {
        let record = match self.verified_card(order, proof)? {
            Ok(r) => r,
            Err(refusal) => return Ok(Err(refusal)),
        };
        let claim = order.challenge();
        match self.change_my_key_id_from(record.account, Some((from, &claim)), to, now) {
            Ok(()) => Ok(Ok(HolderDone::MyKeyIdChanged {
                account: record.account,
                from: from.clone(),
                to: to.clone(),
            })),
            Err(ChangeMyKeyIdError::Taken(_)) => Ok(Err(HolderRefusal::MyKeyIdTaken)),
            Err(ChangeMyKeyIdError::Moved { .. }) => Ok(Err(HolderRefusal::MyKeyIdMoved)),
            Err(ChangeMyKeyIdError::Replayed) => Ok(Err(HolderRefusal::Replayed)),
            Err(ChangeMyKeyIdError::UnknownAccount(_)) => Ok(Err(HolderRefusal::UnknownCard)),
            Err(ChangeMyKeyIdError::Store(e)) => Err(e),
        }
    }

    /// Links or unlinks a facility card number for the card's holder, in
    /// one write transaction with the fact that tells the facility's nodes.
    fn holder_link(
        &mut self,
        order: &HolderOrder,
        proof: &CardSignature,
        facility: &FacilityId,
        number: &FacilityCardNumber,
        linked: bool,
        now: UnixMillis,
    ) -> Result<Result<HolderDone, HolderRefusal>, StoreError> {
        let record = match self.verified_card(order, proof)? {
            Ok(r) => r,
            Err(refusal) => return Ok(Err(refusal)),
        };
        let account = record.account;
        let mut st = self.store.begin()?;
        // Claimed in the transaction that carries the order out: a refusal
        // or a failure below rolls the claim back with everything else.
        if !st.claim_holder_order(&order.challenge(), now)? {
            return Ok(Err(HolderRefusal::Replayed));
        }
        if st.facility(facility)?.is_none() {
            return Ok(Err(HolderRefusal::UnknownFacility));
        }
        let existing = st.facility_card(facility, number)?;
        if linked
            && existing.is_none()
            && kiosk_link_policy_in_force(&self.kiosk_links, &mut *st, facility)?
                == KioskLinkPolicy::Confirm
        {
            return request_link(st, &order.card, account, facility, number, now);
        }
        let change = match (linked, existing) {
            (true, Some(a)) if a != account => return Ok(Err(HolderRefusal::NumberTaken)),
            // Linked already: nothing changes, and the holder is told it is.
            (true, Some(_)) => false,
            (true, None) => {
                st.link_facility_card(facility, number, account, now)?;
                true
            }
            (false, Some(a)) if a == account => {
                st.unlink_facility_card(facility, number)?;
                true
            }
            (false, _) => return Ok(Err(HolderRefusal::NotLinked)),
        };
        if change {
            // Card numbers go to that facility's nodes only (DESIGN §9).
            emit(
                &mut *st,
                &self.key,
                Scope::Facility(facility.clone()),
                FactBody::FacilityCard {
                    account,
                    facility: facility.clone(),
                    number: number.clone(),
                    linked,
                },
                now,
            )?;
        }
        // Also when nothing changed: the claim must hold.
        ledger::commit(st)?;
        Ok(Ok(HolderDone::FacilityCard {
            account,
            facility: facility.clone(),
            number: number.clone(),
            linked,
        }))
    }
}
