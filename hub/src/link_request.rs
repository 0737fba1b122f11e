//! Kiosk link requests (issue 19 part 3): a facility card number a holder
//! asked to link at a kiosk, where the facility's policy is `confirm`, waits
//! at the hub until a node of that facility confirms or refuses it.
//!
//! The hub decides from what it verifies (`mykey_sync_proto::link_request`):
//! - the ask names the carrying node (the transport-authenticated peer) and
//!   verifies with that node's key, within two minutes of the hub's clock;
//! - the node is enrolled, unrevoked, unexpired and may link cards, and the
//!   request is of its own facility (another facility's request is "no such
//!   request", so a node learns nothing of other facilities' holders);
//! - a confirmation links the number in one write transaction with the
//!   `FacilityCard` fact to that facility's nodes, as the `auto` policy does;
//! - an answered or expired request changes nothing, so a repeated or
//!   replayed confirmation, or a confirmation after a refusal, doubles
//!   nothing (`hub/tests/link_request.rs`).
//!
//! The policy in force is the facility's stored one (`mykey-hub facility
//! kiosk-link`), `confirm` when none is stored; `serve --kiosk-link
//! FACILITY` overrides it to `auto` for that process.

use crate::facts::emit;
use crate::hub::Hub;
use crate::ledger;
use crate::model::NodeRecord;
use crate::store::link_request::{KioskLinkPolicy, LinkRequestRow, LinkRequestState};
use crate::store::{StoreError, StoreTx};
use mykey_sync_proto::UnixMillis;
use mykey_sync_proto::fact::{FactBody, Scope};
use mykey_sync_proto::holder::{HolderDone, HolderRefusal, HolderResponse};
use mykey_sync_proto::link_request::{
    LINK_REQUEST_TTL_MS, LinkRequest, LinkRequestAnswered, LinkRequestWhat,
    MAX_LINK_REQUESTS_LISTED, MAX_PENDING_LINK_REQUESTS_PER_ACCOUNT, SignedLinkRequestAsk,
};
use mykey_sync_proto::{AccountId, CardKey, FacilityCardNumber, FacilityId, NodeId, OpKind};
use tracing::{info, warn};

type Answer<T> = Result<Result<T, HolderRefusal>, StoreError>;

/// The kiosk link policy in force for `facility` (`overrides`: the
/// facilities `serve --kiosk-link` names).
pub(crate) fn kiosk_link_policy_in_force(
    overrides: &[FacilityId],
    st: &mut dyn StoreTx,
    facility: &FacilityId,
) -> Result<KioskLinkPolicy, StoreError> {
    if overrides.contains(facility) {
        return Ok(KioskLinkPolicy::Auto);
    }
    Ok(st
        .kiosk_link_policy(facility)?
        .unwrap_or(KioskLinkPolicy::Confirm))
}

/// Keeps a holder's kiosk link as a pending request of the facility
/// (or names the one already pending for the same number), committing
/// `st`. The caller checked the card's signature and that the number is
/// no one's.
pub(crate) fn request_link(
    mut st: Box<dyn StoreTx + '_>,
    card: &CardKey,
    account: AccountId,
    facility: &FacilityId,
    number: &FacilityCardNumber,
    now: UnixMillis,
) -> Answer<HolderDone> {
    let pending = st.pending_link_requests_of(
        account,
        since(now),
        u32::try_from(MAX_PENDING_LINK_REQUESTS_PER_ACCOUNT).unwrap_or(u32::MAX),
    )?;
    let request = match pending
        .iter()
        .find(|r| &r.facility == facility && &r.number == number)
    {
        // Asked again (or the order replayed): the same request.
        Some(r) => r.id,
        None if pending.len() as u64 >= MAX_PENDING_LINK_REQUESTS_PER_ACCOUNT => {
            return Ok(Err(HolderRefusal::TooManyLinkRequests));
        }
        None => st.insert_link_request(&LinkRequestRow {
            id: 0,
            facility: facility.clone(),
            number: number.clone(),
            account,
            card: card.canonical(),
            requested_at: now,
            state: LinkRequestState::Pending,
            answered: None,
        })?,
    };
    // Also when asked again: the caller may have claimed the order in `st`.
    st.commit()?;
    Ok(Ok(HolderDone::LinkRequested {
        request,
        account,
        facility: facility.clone(),
        number: number.clone(),
    }))
}

impl Hub {
    /// A facility node's ask about its link requests, carried by `node`.
    /// Logs the node, the ask and the outcome (never a card number).
    pub(crate) fn link_request_ask(
        &mut self,
        node: &NodeId,
        ask: SignedLinkRequestAsk,
        now: UnixMillis,
    ) -> HolderResponse {
        let what = match ask.check(node, now) {
            Ok(w) => w.clone(),
            Err(e) => {
                info!(node = %node.short(), error = %e, "link request ask refused");
                return HolderResponse::Refused(HolderRefusal::BadNodeSignature);
            }
        };
        let answer = match &what {
            LinkRequestWhat::List => self.list_link_requests(node, now).map(|r| {
                r.map(|l| {
                    info!(node = %node.short(), n = l.len(), "link requests listed");
                    HolderResponse::LinkRequests(l)
                })
            }),
            LinkRequestWhat::Confirm { id } => self
                .answer_link_request(node, *id, true, now)
                .map(|r| r.map(HolderResponse::LinkRequestAnswered)),
            LinkRequestWhat::Refuse { id } => self
                .answer_link_request(node, *id, false, now)
                .map(|r| r.map(HolderResponse::LinkRequestAnswered)),
        };
        match answer {
            Ok(Ok(r)) => r,
            Ok(Err(refusal)) => {
                info!(node = %node.short(), ?what, %refusal, "link request ask refused");
                HolderResponse::Refused(refusal)
            }
            Err(e) => {
                warn!(node = %node.short(), ?what, error = %e, "link request ask: store");
                HolderResponse::Refused(HolderRefusal::Unavailable)
            }
        }
    }

    fn list_link_requests(&mut self, node: &NodeId, now: UnixMillis) -> Answer<Vec<LinkRequest>> {
        let mut st = self.store.begin_read()?;
        let record = match linking_node(&mut *st, node, now)? {
            Ok(r) => r,
            Err(refusal) => return Ok(Err(refusal)),
        };
        let rows = st.pending_link_requests(
            &record.facility,
            since(now),
            u32::try_from(MAX_LINK_REQUESTS_LISTED).unwrap_or(u32::MAX),
        )?;
        Ok(Ok(rows.into_iter().map(wire).collect()))
    }

    fn answer_link_request(
        &mut self,
        node: &NodeId,
        id: u64,
        confirm: bool,
        now: UnixMillis,
    ) -> Answer<LinkRequestAnswered> {
        let mut st = self.store.begin()?;
        let record = match linking_node(&mut *st, node, now)? {
            Ok(r) => r,
            Err(refusal) => return Ok(Err(refusal)),
        };
        let Some(req) = st
            .link_request(id)?
            .filter(|r| r.facility == record.facility)
        else {
            return Ok(Err(HolderRefusal::NoSuchLinkRequest));
        };
        if req.state != LinkRequestState::Pending || req.requested_at.0 < since(now).0 {
            return Ok(Err(HolderRefusal::LinkRequestClosed));
        }
        if confirm {
            match st.facility_card(&req.facility, &req.number)? {
                // Linked to someone else since: the facility refuses it, or
                // sorts it out with the other holder first.
                Some(a) if a != req.account => return Ok(Err(HolderRefusal::NumberTaken)),
                // Linked already (at the counter): nothing more to tell.
                Some(_) => {}
                None => {
                    st.link_facility_card(&req.facility, &req.number, req.account, now)?;
                    // Card numbers go to that facility's nodes only (DESIGN §9).
                    emit(
                        &mut *st,
                        &self.key,
                        Scope::Facility(req.facility.clone()),
                        FactBody::FacilityCard {
                            account: req.account,
                            facility: req.facility.clone(),
                            number: req.number.clone(),
                            linked: true,
                        },
                        now,
                    )?;
                }
            }
        }
        let state = if confirm {
            LinkRequestState::Confirmed
        } else {
            LinkRequestState::Refused
        };
        st.answer_link_request(id, state, now, node)?;
        ledger::commit(st)?;
        info!(node = %node.short(), request = id, state = state.name(), "link request answered");
        Ok(Ok(LinkRequestAnswered {
            request: wire(req),
            confirmed: confirm,
        }))
    }
}

/// The asking node's record, when it may answer its facility's requests.
fn linking_node(st: &mut dyn StoreTx, node: &NodeId, now: UnixMillis) -> Answer<NodeRecord> {
    match st.node(node)? {
        Some(r)
            if !r.is_revoked()
                && r.policy.valid_until.0 > now.0
                && r.policy.allows(OpKind::Link) =>
        {
            Ok(Ok(r))
        }
        _ => Ok(Err(HolderRefusal::NodeNotEnrolled)),
    }
}

/// The oldest request time still open at `now`.
fn since(now: UnixMillis) -> UnixMillis {
    UnixMillis(now.0.saturating_sub(LINK_REQUEST_TTL_MS))
}

fn wire(r: LinkRequestRow) -> LinkRequest {
    LinkRequest {
        id: r.id,
        facility: r.facility,
        number: r.number,
        account: r.account,
        card: r.card,
        requested_at: r.requested_at,
    }
}

/// Why a facility's kiosk link policy was not set.
#[derive(Debug, thiserror::Error)]
pub enum SetKioskLinkError {
    /// No such facility.
    #[error("there is no facility {0}: `mykey-hub facility list` shows them")]
    UnknownFacility(FacilityId),
    /// The store failed; nothing changed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl Hub {
    /// Sets how a facility takes card links asked at a kiosk: `auto` links
    /// at once, `confirm` waits for one of its nodes. Requests already
    /// pending stay pending.
    pub fn set_kiosk_link_policy(
        &mut self,
        facility: &FacilityId,
        policy: KioskLinkPolicy,
        now: UnixMillis,
    ) -> Result<(), SetKioskLinkError> {
        let mut st = self.store.begin()?;
        if st.facility(facility)?.is_none() {
            return Err(SetKioskLinkError::UnknownFacility(facility.clone()));
        }
        st.set_kiosk_link_policy(facility, policy, now)?;
        st.commit()?;
        info!(%facility, policy = policy.name(), "kiosk link policy set");
        Ok(())
    }
}
