//! A holder registers their card and changes their My Key ID at a node's
//! kiosk (issue 19), proved by the card's PIN signature: the hub decides
//! from the certificate chain and the signature it verifies, and a node
//! owner without the card cannot register a card nor change anyone's ID.

mod common;

use common::pki::{Pki, TestCard};
use common::*;
use mykey_hub::Hub;
use mykey_sync_proto::holder::{
    HolderAction, HolderBinding, HolderChallenge, HolderDone, HolderOrder, HolderRefusal,
    HolderRequest, HolderResponse, SignedHolderChallenge,
};
use mykey_sync_proto::session::HubService;
use mykey_sync_proto::{CardKey, CardSignature, MyKeyId, NodeId, UnixMillis};

fn id(s: &str) -> MyKeyId {
    MyKeyId::parse(s).unwrap()
}

fn now() -> UnixMillis {
    mykey_net::unix_now()
}

fn key_of(card: &TestCard) -> CardKey {
    card.cert.card_key().clone()
}

/// A new order: its own nonce, as a node gives each (two orders signed in
/// the same millisecond are still two).
fn order(node: NodeId, card: &TestCard, action: HolderAction) -> HolderOrder {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(1);
    let mut nonce = [7; 16];
    nonce[..8].copy_from_slice(&NEXT.fetch_add(1, Ordering::Relaxed).to_le_bytes());
    HolderOrder {
        node,
        card: key_of(card),
        signed_at: now(),
        nonce,
        action,
    }
}

fn signed(card: &TestCard, o: &HolderOrder) -> CardSignature {
    card.sign_message(&o.signed_message())
}

/// `node` carries `o` with `proof` (and `card`'s certificate when given).
fn carry(
    hub: &mut Hub,
    node: NodeId,
    o: HolderOrder,
    proof: CardSignature,
    cert_of: Option<&TestCard>,
) -> HolderResponse {
    hub.holder(
        &node,
        HolderRequest::Order {
            order: o,
            proof,
            certificate: cert_of.map(|c| c.cert.der().to_vec()),
        },
        now(),
    )
}

fn refusal(r: HolderResponse) -> HolderRefusal {
    match r {
        HolderResponse::Refused(x) => x,
        other => panic!("expected a refusal, got {other:?}"),
    }
}

fn done(r: HolderResponse) -> HolderDone {
    match r {
        HolderResponse::Done(d) => d,
        other => panic!("expected it done, got {other:?}"),
    }
}

#[test]
fn a_holder_registers_then_changes_their_id_and_the_old_one_stays_theirs() {
    let dir = tempfile::tempdir().unwrap();
    let pki = Pki::new(dir.path());
    let dave = pki.card("0D0FFEE001");
    let erin = pki.card("0E0FFEE001");
    let mut f = Fixture::new();
    f.hub.set_trusted_ca(vec![pki.ca_der.clone()]);
    let kiosk = f.library.id;

    let reg = order(
        kiosk,
        &dave,
        HolderAction::Register {
            my_key_id: id("Dave04"),
        },
    );
    let proof = signed(&dave, &reg);
    let HolderDone::Registered {
        account,
        my_key_id,
        municipality,
    } = done(carry(
        &mut f.hub,
        kiosk,
        reg.clone(),
        proof.clone(),
        Some(&dave),
    ))
    else {
        panic!("expected a registration");
    };
    assert_eq!((my_key_id, municipality), (id("Dave04"), muni()));
    assert_eq!(f.hub.resolve_my_key_id(&id("dave04")).unwrap(), account);
    // The same order again registers nothing twice.
    assert_eq!(
        refusal(carry(&mut f.hub, kiosk, reg, proof, Some(&dave))),
        HolderRefusal::AlreadyRegistered
    );

    // The change is verified with the key kept at registration.
    let change = order(
        kiosk,
        &dave,
        HolderAction::ChangeMyKeyId {
            from: id("Dave04"),
            to: id("Dave05"),
        },
    );
    let proof = signed(&dave, &change);
    assert_eq!(
        done(carry(
            &mut f.hub,
            kiosk,
            change.clone(),
            proof.clone(),
            None
        )),
        HolderDone::MyKeyIdChanged {
            account,
            from: id("Dave04"),
            to: id("Dave05"),
        }
    );
    assert_eq!(f.hub.account(account).unwrap().my_key_id.as_str(), "Dave05");
    // The old ID stays resolvable (audit) ...
    assert_eq!(f.hub.resolve_my_key_id(&id("Dave04")).unwrap(), account);
    // ... and a replay of the order changes nothing.
    assert_eq!(
        refusal(carry(&mut f.hub, kiosk, change, proof, None)),
        HolderRefusal::Replayed
    );
    assert_eq!(f.hub.account(account).unwrap().my_key_id.as_str(), "Dave05");

    // Asked before signing: taken in any case, free otherwise.
    for (asked, free) in [("DAVE04", false), ("dave05", false), ("Zed99", true)] {
        assert_eq!(
            f.hub.holder(
                &kiosk,
                HolderRequest::MyKeyIdFree {
                    my_key_id: id(asked)
                },
                now()
            ),
            HolderResponse::MyKeyIdFree(free),
            "{asked}"
        );
    }
    // Neither ID can be taken by anyone else, in any case.
    for taken in ["DAVE04", "dave05"] {
        let o = order(
            kiosk,
            &erin,
            HolderAction::Register {
                my_key_id: id(taken),
            },
        );
        let p = signed(&erin, &o);
        assert_eq!(
            refusal(carry(&mut f.hub, kiosk, o, p, Some(&erin))),
            HolderRefusal::MyKeyIdTaken,
            "{taken}"
        );
    }
    let o = order(
        kiosk,
        &erin,
        HolderAction::Register {
            my_key_id: id("Erin01"),
        },
    );
    let p = signed(&erin, &o);
    let HolderDone::Registered { account: e, .. } =
        done(carry(&mut f.hub, kiosk, o, p, Some(&erin)))
    else {
        panic!("expected a registration");
    };
    let o = order(
        kiosk,
        &erin,
        HolderAction::ChangeMyKeyId {
            from: id("Erin01"),
            to: id("Dave04"),
        },
    );
    let p = signed(&erin, &o);
    assert_eq!(
        refusal(carry(&mut f.hub, kiosk, o, p, None)),
        HolderRefusal::MyKeyIdTaken
    );
    assert_eq!(f.hub.resolve_my_key_id(&id("Dave04")).unwrap(), account);
    assert_eq!(f.hub.account(e).unwrap().my_key_id.as_str(), "Erin01");
    f.hub.check_conservation().unwrap();
}

#[test]
fn a_hostile_node_cannot_register_a_card_nor_change_anyones_id() {
    let dir = tempfile::tempdir().unwrap();
    let pki = Pki::new(dir.path());
    let carol = pki.card("0C0FFEE001");
    let mallory = pki.card("0BADBAD001");
    let frank = pki.card("0F0FFEE001");
    let mut f = Fixture::new();
    let carol_account = f
        .hub
        .register_account_with_certificate(&id("Carol03"), muni(), &pki.trusted(&carol), T0)
        .unwrap();
    let kiosk = f.library.id;
    let hostile = f.shop.id;

    // No trusted CA: no card is registered from a node at all.
    let o = order(
        kiosk,
        &frank,
        HolderAction::Register {
            my_key_id: id("Frank1"),
        },
    );
    let p = signed(&frank, &o);
    assert_eq!(
        refusal(carry(&mut f.hub, kiosk, o, p, Some(&frank))),
        HolderRefusal::NoRegistrationHere
    );
    f.hub.set_trusted_ca(vec![pki.ca_der.clone()]);

    let change_to = |node, to: &str| {
        order(
            node,
            &carol,
            HolderAction::ChangeMyKeyId {
                from: id("Carol03"),
                to: id(to),
            },
        )
    };
    // Carol's card, signed by the hostile owner's own card.
    let o = change_to(hostile, "Evil01");
    let p = signed(&mallory, &o);
    assert_eq!(
        refusal(carry(&mut f.hub, hostile, o, p, None)),
        HolderRefusal::BadProof
    );
    // Carol's own signature, with the new ID rewritten.
    let o = change_to(hostile, "Carol04");
    let p = signed(&carol, &o);
    let mut rewritten = o.clone();
    rewritten.action = HolderAction::ChangeMyKeyId {
        from: id("Carol03"),
        to: id("Evil01"),
    };
    assert_eq!(
        refusal(carry(&mut f.hub, hostile, rewritten, p, None)),
        HolderRefusal::BadProof
    );
    // An order Carol signed at the kiosk, carried by another node.
    let o = change_to(kiosk, "Evil01");
    let p = signed(&carol, &o);
    assert_eq!(
        refusal(carry(&mut f.hub, hostile, o, p, None)),
        HolderRefusal::ForeignChallenge
    );
    // Carol's signature to read her history, presented as an order.
    let c = SignedHolderChallenge::sign(
        HolderChallenge {
            node: hostile,
            card: key_of(&carol),
            issued_at: now(),
            nonce: [7; 16],
        },
        &ed25519_dalek::SigningKey::from_bytes(&[1; 32]),
    );
    let read = carol.sign_message(
        &HolderBinding {
            challenge: c,
            action: HolderAction::ReadHistory,
        }
        .signed_message(),
    );
    assert_eq!(
        refusal(carry(
            &mut f.hub,
            hostile,
            change_to(hostile, "Evil01"),
            read,
            None
        )),
        HolderRefusal::BadProof
    );
    // A read is never an order.
    let o = order(hostile, &carol, HolderAction::ReadHistory);
    let p = signed(&carol, &o);
    assert_eq!(
        refusal(carry(&mut f.hub, hostile, o, p, None)),
        HolderRefusal::ReadNeedsChallenge
    );

    // Registering Frank's card (its certificate is public) without it.
    let o = order(
        hostile,
        &frank,
        HolderAction::Register {
            my_key_id: id("Evil02"),
        },
    );
    let p = signed(&mallory, &o);
    assert_eq!(
        refusal(carry(&mut f.hub, hostile, o.clone(), p, Some(&frank))),
        HolderRefusal::BadProof
    );
    // Mallory's certificate and signature, for Frank's card.
    let p = signed(&mallory, &o);
    assert_eq!(
        refusal(carry(&mut f.hub, hostile, o.clone(), p, Some(&mallory))),
        HolderRefusal::ForeignChallenge
    );
    // A certificate of the owner's own making (another CA).
    let own = Pki::new(&dir.path().join("own-ca"));
    let forged = own.card("0F0FFEE001");
    let p = signed(&forged, &o);
    assert_eq!(
        refusal(carry(&mut f.hub, hostile, o.clone(), p, Some(&forged))),
        HolderRefusal::UntrustedCertificate
    );
    assert_eq!(
        refusal(carry(
            &mut f.hub,
            hostile,
            o,
            signed(&frank, &order(hostile, &frank, HolderAction::ReadHistory)),
            None
        )),
        HolderRefusal::UntrustedCertificate
    );
    // Carol's card registered again under another ID.
    let o = order(
        hostile,
        &carol,
        HolderAction::Register {
            my_key_id: id("Evil03"),
        },
    );
    let p = signed(&mallory, &o);
    assert_eq!(
        refusal(carry(&mut f.hub, hostile, o, p, Some(&carol))),
        HolderRefusal::BadProof
    );

    assert_eq!(
        f.hub.account(carol_account).unwrap().my_key_id.as_str(),
        "Carol03"
    );
    for evil in ["Evil01", "Evil02", "Evil03"] {
        assert!(f.hub.resolve_my_key_id(&id(evil)).is_err(), "{evil}");
    }
    assert!(f.hub.card(&key_of(&frank)).unwrap().is_none());
}

#[test]
fn a_holder_links_a_facility_card_where_the_facility_allows_and_unlinks_it() {
    use mykey_sync_proto::{FacilityCardNumber, FacilityId};
    let dir = tempfile::tempdir().unwrap();
    let pki = Pki::new(dir.path());
    let carol = pki.card("0C0FFEE001");
    let dave = pki.card("0D0FFEE001");
    let mut f = Fixture::new();
    let carol_account = f
        .hub
        .register_account_with_certificate(&id("Carol03"), muni(), &pki.trusted(&carol), T0)
        .unwrap();
    f.hub
        .register_account_with_certificate(&id("Dave04"), muni(), &pki.trusted(&dave), T0)
        .unwrap();
    let kiosk = f.shop.id;
    let lib = FacilityId::parse("lib-1").unwrap();
    let number = FacilityCardNumber::parse("L-042").unwrap();
    let link = |card: &TestCard, facility: &FacilityId, linked: bool| {
        let action = if linked {
            HolderAction::LinkFacilityCard {
                facility: facility.clone(),
                number: number.clone(),
            }
        } else {
            HolderAction::UnlinkFacilityCard {
                facility: facility.clone(),
                number: number.clone(),
            }
        };
        let o = order(kiosk, card, action);
        let p = signed(card, &o);
        (o, p)
    };

    // Unless its policy is auto, the library confirms each link itself: the
    // order becomes a pending request (hub/tests/link_request.rs).
    let (o, p) = link(&carol, &lib, true);
    assert!(matches!(
        done(carry(&mut f.hub, kiosk, o, p, None)),
        HolderDone::LinkRequested { .. }
    ));
    assert!(
        f.hub
            .facility_numbers(&lib, carol_account)
            .unwrap()
            .is_empty()
    );
    f.hub.set_kiosk_links(vec![lib.clone()]);
    let (o, p) = link(&carol, &FacilityId::parse("no-such").unwrap(), true);
    assert_eq!(
        refusal(carry(&mut f.hub, kiosk, o, p, None)),
        HolderRefusal::UnknownFacility
    );
    // Someone else's signature for Carol's card links nothing.
    let (o, _) = link(&carol, &lib, true);
    let p = signed(&dave, &o);
    assert_eq!(
        refusal(carry(&mut f.hub, kiosk, o, p, None)),
        HolderRefusal::BadProof
    );
    assert!(
        f.hub
            .facility_numbers(&lib, carol_account)
            .unwrap()
            .is_empty()
    );

    let (o, p) = link(&carol, &lib, true);
    assert_eq!(
        done(carry(&mut f.hub, kiosk, o, p, None)),
        HolderDone::FacilityCard {
            account: carol_account,
            facility: lib.clone(),
            number: number.clone(),
            linked: true,
        }
    );
    assert_eq!(
        f.hub.facility_numbers(&lib, carol_account).unwrap(),
        vec![number.clone()]
    );
    // Dave cannot take Carol's number, nor unlink it.
    for linked in [true, false] {
        let (o, p) = link(&dave, &lib, linked);
        assert_eq!(
            refusal(carry(&mut f.hub, kiosk, o, p, None)),
            if linked {
                HolderRefusal::NumberTaken
            } else {
                HolderRefusal::NotLinked
            }
        );
    }
    // Unlinking is the holder's own, whatever the facility's policy.
    f.hub.set_kiosk_links(vec![]);
    let (o, p) = link(&carol, &lib, false);
    assert!(matches!(
        done(carry(&mut f.hub, kiosk, o, p, None)),
        HolderDone::FacilityCard { linked: false, .. }
    ));
    assert!(
        f.hub
            .facility_numbers(&lib, carol_account)
            .unwrap()
            .is_empty()
    );
    let (o, p) = link(&carol, &lib, false);
    assert_eq!(
        refusal(carry(&mut f.hub, kiosk, o, p, None)),
        HolderRefusal::NotLinked
    );
}

/// The node that carried a holder's signed order keeps a copy: played again
/// after the holder undid it, it must change nothing (the order is claimed
/// by its challenge when carried out).
#[test]
fn a_kept_order_played_again_changes_nothing() {
    use mykey_sync_proto::{FacilityCardNumber, FacilityId};
    let dir = tempfile::tempdir().unwrap();
    let pki = Pki::new(dir.path());
    let carol = pki.card("0C0FFEE001");
    let mut f = Fixture::new();
    let carol_account = f
        .hub
        .register_account_with_certificate(&id("Carol03"), muni(), &pki.trusted(&carol), T0)
        .unwrap();
    let kiosk = f.shop.id;
    let lib = FacilityId::parse("lib-1").unwrap();
    let number = FacilityCardNumber::parse("L-042").unwrap();
    f.hub.set_kiosk_links(vec![lib.clone()]);
    let signed_order = |action: HolderAction| {
        let o = order(kiosk, &carol, action);
        let p = signed(&carol, &o);
        (o, p)
    };
    let linked = |hub: &mut Hub| hub.facility_numbers(&lib, carol_account).unwrap();

    // Carol links her library card, then unlinks it (she lost it).
    let (link_o, link_p) = signed_order(HolderAction::LinkFacilityCard {
        facility: lib.clone(),
        number: number.clone(),
    });
    assert!(matches!(
        done(carry(
            &mut f.hub,
            kiosk,
            link_o.clone(),
            link_p.clone(),
            None
        )),
        HolderDone::FacilityCard { linked: true, .. }
    ));
    // Sent twice (an answer lost on the way): the second changes nothing.
    assert_eq!(
        refusal(carry(
            &mut f.hub,
            kiosk,
            link_o.clone(),
            link_p.clone(),
            None
        )),
        HolderRefusal::Replayed
    );
    let (unlink_o, unlink_p) = signed_order(HolderAction::UnlinkFacilityCard {
        facility: lib.clone(),
        number: number.clone(),
    });
    assert!(matches!(
        done(carry(
            &mut f.hub,
            kiosk,
            unlink_o.clone(),
            unlink_p.clone(),
            None
        )),
        HolderDone::FacilityCard { linked: false, .. }
    ));
    // The node plays her old link order again: the lost card stays unlinked.
    assert_eq!(
        refusal(carry(&mut f.hub, kiosk, link_o, link_p, None)),
        HolderRefusal::Replayed
    );
    assert!(linked(&mut f.hub).is_empty());
    // She links it again (found it); her old unlink order cannot undo that.
    let (o, p) = signed_order(HolderAction::LinkFacilityCard {
        facility: lib.clone(),
        number: number.clone(),
    });
    assert!(matches!(
        done(carry(&mut f.hub, kiosk, o, p, None)),
        HolderDone::FacilityCard { linked: true, .. }
    ));
    assert_eq!(
        refusal(carry(&mut f.hub, kiosk, unlink_o, unlink_p, None)),
        HolderRefusal::Replayed
    );
    assert_eq!(linked(&mut f.hub), vec![number.clone()]);

    // An ID change, changed back, then the first order played again.
    let there = |from: &str, to: &str| {
        signed_order(HolderAction::ChangeMyKeyId {
            from: id(from),
            to: id(to),
        })
    };
    let (away_o, away_p) = there("Carol03", "Carol04");
    assert!(matches!(
        done(carry(
            &mut f.hub,
            kiosk,
            away_o.clone(),
            away_p.clone(),
            None
        )),
        HolderDone::MyKeyIdChanged { .. }
    ));
    let (back_o, back_p) = there("Carol04", "Carol03");
    assert!(matches!(
        done(carry(&mut f.hub, kiosk, back_o, back_p, None)),
        HolderDone::MyKeyIdChanged { .. }
    ));
    assert_eq!(
        refusal(carry(&mut f.hub, kiosk, away_o, away_p, None)),
        HolderRefusal::Replayed
    );
    assert_eq!(
        f.hub.account(carol_account).unwrap().my_key_id.as_str(),
        "Carol03"
    );
}
