//! A holder asks at a kiosk to link a facility card (issue 19 part 3): where
//! the facility's policy is `confirm` (the default) the hub keeps a pending
//! request that only an enrolled, unrevoked node of that facility confirms
//! or refuses, signed with its key; `auto` links at once. Answered or
//! expired requests change nothing, and nothing is ever linked twice.

mod common;

use common::pki::{Pki, TestCard};
use common::*;
use ed25519_dalek::SigningKey;
use mykey_hub::Hub;
use mykey_hub::cli::lists;
use mykey_hub::store::link_request::KioskLinkPolicy;
use mykey_sync_proto::holder::{
    HolderAction, HolderDone, HolderOrder, HolderRefusal, HolderRequest, HolderResponse,
};
use mykey_sync_proto::link_request::{
    LINK_ASK_TTL_MS, LINK_REQUEST_TTL_MS, LinkRequest, LinkRequestAnswered, LinkRequestAsk,
    LinkRequestWhat, MAX_PENDING_LINK_REQUESTS_PER_ACCOUNT, SignedLinkRequestAsk,
};
use mykey_sync_proto::session::HubService;
use mykey_sync_proto::{
    AccountId, FacilityCardNumber, FacilityId, MyKeyId, NodeId, OpKind, UnixMillis,
};

fn now() -> UnixMillis {
    mykey_net::unix_now()
}

fn num(s: &str) -> FacilityCardNumber {
    FacilityCardNumber::parse(s).unwrap()
}

/// Each order its own nonce, as a node gives it: two orders signed in the
/// same millisecond are still two (the hub carries an order out once).
fn next_nonce() -> [u8; 16] {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(1);
    let mut nonce = [9; 16];
    nonce[..8].copy_from_slice(&NEXT.fetch_add(1, Ordering::Relaxed).to_le_bytes());
    nonce
}

/// The holder's kiosk order to link `number` at `facility`, carried by
/// `kiosk` at `at`.
fn ask_link(
    hub: &mut Hub,
    kiosk: NodeId,
    card: &TestCard,
    facility: &FacilityId,
    number: &str,
    linked: bool,
    at: UnixMillis,
) -> HolderResponse {
    let (facility, number) = (facility.clone(), num(number));
    let action = if linked {
        HolderAction::LinkFacilityCard { facility, number }
    } else {
        HolderAction::UnlinkFacilityCard { facility, number }
    };
    let order = HolderOrder {
        node: kiosk,
        card: card.cert.card_key().clone(),
        signed_at: at,
        nonce: next_nonce(),
        action,
    };
    let proof = card.sign_message(&order.signed_message());
    hub.holder(
        &kiosk,
        HolderRequest::Order {
            order,
            proof,
            certificate: None,
        },
        at,
    )
}

/// What `signer` asks in `node`'s name, signed at `signed_at`, carried by
/// `carrier` and reaching the hub at `at`.
#[allow(clippy::too_many_arguments)]
fn ask_as(
    hub: &mut Hub,
    carrier: NodeId,
    node: NodeId,
    signer: &SigningKey,
    what: LinkRequestWhat,
    signed_at: UnixMillis,
    at: UnixMillis,
) -> HolderResponse {
    let ask = SignedLinkRequestAsk::sign(
        LinkRequestAsk {
            node,
            signed_at,
            what,
        },
        signer,
    );
    hub.holder(&carrier, HolderRequest::LinkRequests(ask), at)
}

/// A node's own signed ask at `at`.
fn ask(hub: &mut Hub, node: &Chain, what: LinkRequestWhat, at: UnixMillis) -> HolderResponse {
    ask_as(hub, node.id, node.id, &node.key, what, at, at)
}

fn requested(r: HolderResponse) -> u64 {
    match r {
        HolderResponse::Done(HolderDone::LinkRequested { request, .. }) => request,
        other => panic!("expected a pending request, got {other:?}"),
    }
}

fn listed(r: HolderResponse) -> Vec<LinkRequest> {
    match r {
        HolderResponse::LinkRequests(l) => l,
        other => panic!("expected a listing, got {other:?}"),
    }
}

fn answered(r: HolderResponse) -> LinkRequestAnswered {
    match r {
        HolderResponse::LinkRequestAnswered(a) => a,
        other => panic!("expected an answer, got {other:?}"),
    }
}

fn refusal(r: HolderResponse) -> HolderRefusal {
    match r {
        HolderResponse::Refused(x) => x,
        other => panic!("expected a refusal, got {other:?}"),
    }
}

/// Facts the hub keeps for the library's nodes (card numbers go there only).
fn library_facts(f: &Fixture) -> u64 {
    f.raw_text("SELECT CAST(COUNT(*) AS TEXT) FROM facts WHERE scope = 'f:lib-1'")
        .parse()
        .unwrap()
}

fn link_rows(f: &Fixture) -> u64 {
    f.raw_text("SELECT CAST(COUNT(*) AS TEXT) FROM facility_cards WHERE facility = 'lib-1'")
        .parse()
        .unwrap()
}

struct World {
    f: Fixture,
    _pki_dir: tempfile::TempDir,
    carol: TestCard,
    carol_account: AccountId,
    dave: TestCard,
    dave_account: AccountId,
    lib: FacilityId,
    /// A node of another library, allowed to link.
    other_library: Chain,
}

fn world() -> World {
    let pki_dir = tempfile::tempdir().unwrap();
    let pki = Pki::new(pki_dir.path());
    let carol = pki.card("0C0FFEE001");
    let dave = pki.card("0D0FFEE001");
    let mut f = Fixture::new();
    let carol_account = f
        .hub
        .register_account_with_certificate(
            &MyKeyId::parse("Carol03").unwrap(),
            muni(),
            &pki.trusted(&carol),
            T0,
        )
        .unwrap();
    let dave_account = f
        .hub
        .register_account_with_certificate(
            &MyKeyId::parse("Dave04").unwrap(),
            muni(),
            &pki.trusted(&dave),
            T0,
        )
        .unwrap();
    let other_library = Chain::new(21);
    f.hub
        .enrol_node(
            other_library.id,
            &fid("lib-2"),
            policy(&[OpKind::Link, OpKind::Unlink]),
            T0,
        )
        .unwrap();
    World {
        f,
        _pki_dir: pki_dir,
        carol,
        carol_account,
        dave,
        dave_account,
        lib: fid("lib-1"),
        other_library,
    }
}

fn kiosk_policy(hub: &mut Hub, facility: &FacilityId) -> String {
    let r = lists::facility(hub, facility, now()).unwrap();
    r.get("kiosk_link").unwrap().as_str().unwrap().to_owned()
}

#[test]
fn confirm_keeps_a_request_that_only_the_facilitys_node_confirms_once() {
    let mut w = world();
    let f = &mut w.f;
    let kiosk = f.shop.id;
    let t = now();

    // No policy set: confirm.
    assert_eq!(kiosk_policy(&mut f.hub, &w.lib), "confirm");
    let facts_before = library_facts(f);
    let id = requested(ask_link(
        &mut f.hub, kiosk, &w.carol, &w.lib, "L-042", true, t,
    ));
    // Asked again (a new order): the same request, nothing more.
    assert_eq!(
        requested(ask_link(
            &mut f.hub, kiosk, &w.carol, &w.lib, "L-042", true, t
        )),
        id
    );
    assert!(
        f.hub
            .facility_numbers(&w.lib, w.carol_account)
            .unwrap()
            .is_empty()
    );
    assert_eq!(library_facts(f), facts_before, "a request tells no node");

    // The library's node sees it; another library's node does not.
    let list = listed(ask(&mut f.hub, &f.library, LinkRequestWhat::List, t));
    assert_eq!(list.len(), 1);
    let r = &list[0];
    assert_eq!(
        (
            r.id,
            &r.facility,
            r.number.as_str(),
            r.account,
            r.requested_at
        ),
        (id, &w.lib, "L-042", w.carol_account, t)
    );
    assert!(r.card.same_card(w.carol.cert.card_key()));
    assert!(listed(ask(&mut f.hub, &w.other_library, LinkRequestWhat::List, t)).is_empty());

    // Hostile senders change nothing.
    let confirm = LinkRequestWhat::Confirm { id };
    // A node of another facility.
    assert_eq!(
        refusal(ask(&mut f.hub, &w.other_library, confirm.clone(), t)),
        HolderRefusal::NoSuchLinkRequest
    );
    // A node of no linking right (the shop), a revoked node of the library.
    assert_eq!(
        refusal(ask(&mut f.hub, &f.shop, confirm.clone(), t)),
        HolderRefusal::NodeNotEnrolled
    );
    let revoked = Chain::new(22);
    f.hub
        .enrol_node(revoked.id, &w.lib, policy(&[OpKind::Link]), T0)
        .unwrap();
    f.hub.revoke_node(revoked.id, t).unwrap();
    assert_eq!(
        refusal(ask(&mut f.hub, &revoked, confirm.clone(), t)),
        HolderRefusal::NodeNotEnrolled
    );
    // A key the hub never enrolled.
    let stranger = Chain::new(23);
    assert_eq!(
        refusal(ask(&mut f.hub, &stranger, confirm.clone(), t)),
        HolderRefusal::NodeNotEnrolled
    );
    // The library's name with another key; the library's signed ask carried
    // by another node; the library's ask signed too long ago.
    let lib_id = f.library.id;
    assert_eq!(
        refusal(ask_as(
            &mut f.hub,
            lib_id,
            lib_id,
            &w.other_library.key,
            confirm.clone(),
            t,
            t
        )),
        HolderRefusal::BadNodeSignature
    );
    let other_id = w.other_library.id;
    assert_eq!(
        refusal(ask_as(
            &mut f.hub,
            other_id,
            lib_id,
            &f.library.key,
            confirm.clone(),
            t,
            t
        )),
        HolderRefusal::BadNodeSignature
    );
    let stale = UnixMillis(t.0 - LINK_ASK_TTL_MS - 1);
    assert_eq!(
        refusal(ask_as(
            &mut f.hub,
            lib_id,
            lib_id,
            &f.library.key,
            confirm.clone(),
            stale,
            t
        )),
        HolderRefusal::BadNodeSignature
    );
    assert!(
        f.hub
            .facility_numbers(&w.lib, w.carol_account)
            .unwrap()
            .is_empty()
    );
    assert_eq!(library_facts(f), facts_before);

    // The library's node confirms: linked, and its nodes are told once.
    let a = answered(ask(&mut f.hub, &f.library, confirm.clone(), t));
    assert!(a.confirmed);
    assert_eq!((a.request.id, a.request.number.as_str()), (id, "L-042"));
    assert_eq!(
        f.hub.facility_numbers(&w.lib, w.carol_account).unwrap(),
        vec![num("L-042")]
    );
    assert_eq!(library_facts(f), facts_before + 1);
    let links = link_rows(f);
    // Confirmed twice, or refused after: closed, nothing doubled.
    for what in [confirm.clone(), LinkRequestWhat::Refuse { id }] {
        assert_eq!(
            refusal(ask(&mut f.hub, &f.library, what, t)),
            HolderRefusal::LinkRequestClosed
        );
    }
    assert_eq!(library_facts(f), facts_before + 1);
    assert_eq!(link_rows(f), links);
    assert!(listed(ask(&mut f.hub, &f.library, LinkRequestWhat::List, t)).is_empty());
    // A request for a number someone has is refused at the kiosk.
    assert_eq!(
        refusal(ask_link(
            &mut f.hub, kiosk, &w.dave, &w.lib, "L-042", true, t
        )),
        HolderRefusal::NumberTaken
    );

    // Refused, then confirmed: nothing linked.
    let id2 = requested(ask_link(
        &mut f.hub, kiosk, &w.dave, &w.lib, "L-043", true, t,
    ));
    assert_ne!(id2, id);
    let a = answered(ask(
        &mut f.hub,
        &f.library,
        LinkRequestWhat::Refuse { id: id2 },
        t,
    ));
    assert!(!a.confirmed);
    assert_eq!(
        refusal(ask(
            &mut f.hub,
            &f.library,
            LinkRequestWhat::Confirm { id: id2 },
            t
        )),
        HolderRefusal::LinkRequestClosed
    );
    assert!(
        f.hub
            .facility_numbers(&w.lib, w.dave_account)
            .unwrap()
            .is_empty()
    );
    assert_eq!(library_facts(f), facts_before + 1);
    // No such request at all.
    assert_eq!(
        refusal(ask(
            &mut f.hub,
            &f.library,
            LinkRequestWhat::Confirm { id: 999 },
            t
        )),
        HolderRefusal::NoSuchLinkRequest
    );

    // Unlinking at the kiosk is at once, whatever the policy.
    assert!(matches!(
        ask_link(&mut f.hub, kiosk, &w.carol, &w.lib, "L-042", false, t),
        HolderResponse::Done(HolderDone::FacilityCard { linked: false, .. })
    ));
    assert!(
        f.hub
            .facility_numbers(&w.lib, w.carol_account)
            .unwrap()
            .is_empty()
    );
    assert_eq!(library_facts(f), facts_before + 2);
}

#[test]
fn an_expired_request_changes_nothing_and_requests_per_card_are_bounded() {
    let mut w = world();
    let f = &mut w.f;
    let kiosk = f.shop.id;
    let t = now();
    let id = requested(ask_link(
        &mut f.hub, kiosk, &w.dave, &w.lib, "L-100", true, t,
    ));
    let late = UnixMillis(t.0 + LINK_REQUEST_TTL_MS + 1);
    assert!(listed(ask(&mut f.hub, &f.library, LinkRequestWhat::List, late)).is_empty());
    assert_eq!(
        refusal(ask(
            &mut f.hub,
            &f.library,
            LinkRequestWhat::Confirm { id },
            late
        )),
        HolderRefusal::LinkRequestClosed
    );
    assert!(
        f.hub
            .facility_numbers(&w.lib, w.dave_account)
            .unwrap()
            .is_empty()
    );
    // Asked again once expired: a new request.
    assert_ne!(
        requested(ask_link(
            &mut f.hub, kiosk, &w.dave, &w.lib, "L-100", true, late
        )),
        id
    );

    // At most so many pending per card, then a clear refusal.
    for i in 1..MAX_PENDING_LINK_REQUESTS_PER_ACCOUNT {
        requested(ask_link(
            &mut f.hub,
            kiosk,
            &w.dave,
            &w.lib,
            &format!("M-{i}"),
            true,
            late,
        ));
    }
    assert_eq!(
        refusal(ask_link(
            &mut f.hub, kiosk, &w.dave, &w.lib, "M-99", true, late
        )),
        HolderRefusal::TooManyLinkRequests
    );
    // Another card is not held up by Dave's.
    requested(ask_link(
        &mut f.hub, kiosk, &w.carol, &w.lib, "M-99", true, late,
    ));
}

#[test]
fn auto_links_at_once_and_the_policy_is_the_operators() {
    let mut w = world();
    let f = &mut w.f;
    let kiosk = f.shop.id;
    let t = now();
    // A pending request made under confirm stays pending when the policy changes.
    let id = requested(ask_link(
        &mut f.hub, kiosk, &w.carol, &w.lib, "L-001", true, t,
    ));
    f.hub
        .set_kiosk_link_policy(&w.lib, KioskLinkPolicy::Auto, t)
        .unwrap();
    assert_eq!(kiosk_policy(&mut f.hub, &w.lib), "auto");
    assert_eq!(kiosk_policy(&mut f.hub, &fid("lib-2")), "confirm");
    let facts_before = library_facts(f);
    assert_eq!(
        ask_link(&mut f.hub, kiosk, &w.dave, &w.lib, "L-002", true, t),
        HolderResponse::Done(HolderDone::FacilityCard {
            account: w.dave_account,
            facility: w.lib.clone(),
            number: num("L-002"),
            linked: true,
        })
    );
    assert_eq!(library_facts(f), facts_before + 1);
    assert_eq!(
        listed(ask(&mut f.hub, &f.library, LinkRequestWhat::List, t))
            .iter()
            .map(|r| r.id)
            .collect::<Vec<_>>(),
        vec![id]
    );
    // Back to confirm: a request again.
    f.hub
        .set_kiosk_link_policy(&w.lib, KioskLinkPolicy::Confirm, t)
        .unwrap();
    requested(ask_link(
        &mut f.hub, kiosk, &w.dave, &w.lib, "L-003", true, t,
    ));
    // `serve --kiosk-link` overrides the stored policy for its process.
    f.hub.set_kiosk_links(vec![w.lib.clone()]);
    assert!(matches!(
        ask_link(&mut f.hub, kiosk, &w.dave, &w.lib, "L-004", true, t),
        HolderResponse::Done(HolderDone::FacilityCard { linked: true, .. })
    ));
    // No such facility: a clear error, nothing stored.
    let err = f
        .hub
        .set_kiosk_link_policy(&fid("no-such"), KioskLinkPolicy::Auto, t)
        .unwrap_err();
    assert!(err.to_string().contains("facility list"), "{err}");
}
