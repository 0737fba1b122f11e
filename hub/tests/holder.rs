//! The holder's own read of their points (issue 19): the hub answers only
//! for the card that signed its fresh challenge with the key kept at
//! registration, from the ledger it already keeps, and nothing in its
//! schema or its answer can say what was bought.

mod common;

use common::pki::{Pki, TestCard};
use common::*;
use mykey_hub::economy::lots::ExpiryPolicy;
use mykey_sync_proto::holder::{
    HOLDER_CHALLENGE_TTL_MS, HolderAction, HolderBinding, HolderHistory, HolderRefusal,
    HolderRequest, HolderResponse, Movement, SignedHolderChallenge,
};
use mykey_sync_proto::session::{HubService, HubSession};
use mykey_sync_proto::wire::{Hello, Request, Response};
use mykey_sync_proto::{AccountId, CardKey, MyKeyId, NodeId, Redeem, TxBody, UnixMillis};

const DAY: u64 = 86_400_000;

struct Setup {
    f: Fixture,
    carol: AccountId,
    carol_card: TestCard,
    pki: Pki,
    _dir: tempfile::TempDir,
}

fn setup() -> Setup {
    let dir = tempfile::tempdir().unwrap();
    let pki = Pki::new(dir.path());
    let carol_card = pki.card("0C0FFEE001");
    let mut f = Fixture::new();
    let carol = f
        .hub
        .register_account_with_certificate(
            &MyKeyId::parse("Carol03").unwrap(),
            muni(),
            &pki.trusted(&carol_card),
            T0,
        )
        .unwrap();
    Setup {
        f,
        carol,
        carol_card,
        pki,
        _dir: dir,
    }
}

fn key_of(card: &TestCard) -> CardKey {
    card.cert.card_key().clone()
}

fn challenge(
    f: &mut Fixture,
    node: NodeId,
    card: CardKey,
    now: UnixMillis,
) -> SignedHolderChallenge {
    match f.hub.holder(&node, HolderRequest::Challenge { card }, now) {
        HolderResponse::Challenge(c) => c,
        other => panic!("expected a challenge, got {other:?}"),
    }
}

fn signed_by(card: &TestCard, c: &SignedHolderChallenge) -> mykey_sync_proto::CardSignature {
    card.sign_message(
        &HolderBinding {
            challenge: c.clone(),
            action: HolderAction::ReadHistory,
        }
        .signed_message(),
    )
}

/// What a node asking for `card`, signed by `signer`, gets back at `now`.
fn read_as(
    f: &mut Fixture,
    node: NodeId,
    card: CardKey,
    signer: &TestCard,
    now: UnixMillis,
) -> HolderResponse {
    let c = challenge(f, node, card, now);
    let proof = signed_by(signer, &c);
    f.hub.holder(
        &node,
        HolderRequest::History {
            challenge: c,
            proof,
            max_entries: 100,
        },
        now,
    )
}

fn history(r: HolderResponse) -> HolderHistory {
    match r {
        HolderResponse::History(h) => h,
        other => panic!("expected a history, got {other:?}"),
    }
}

fn refusal(r: HolderResponse) -> HolderRefusal {
    match r {
        HolderResponse::Refused(x) => x,
        other => panic!("expected a refusal, got {other:?}"),
    }
}

#[test]
fn a_holder_reads_grants_exchanges_redemptions_and_expiries_of_their_own() {
    let Setup {
        mut f,
        carol,
        carol_card,
        ..
    } = setup();
    let card = key_of(&carol_card);
    f.unbounded_shop();
    f.hub
        .set_program_expiry(&program(), ExpiryPolicy::Days { days: 30 })
        .unwrap();
    f.hub.admin_grant(carol, &program(), pts(900), T0).unwrap();
    // Someone else's points never show.
    f.hub.admin_grant(f.bob, &program(), pts(77), T0).unwrap();
    enrol_card_x(&mut f.hub, 0, ExpiryPolicy::Never, T0);
    card_x_exchange(&mut f.hub, "r-1", "Carol03", 2000, T0.plus_ms(1_000));
    let spent_at = T0.plus_ms(2_000);
    let tx = f.shop.sign_dated(
        TxBody::Redeem(Redeem {
            card: card.clone(),
            account: carol,
            municipality: muni(),
            points: pts(300),
            merchant: fid("shop-1"),
            basis: None,
            card_proof: None,
        }),
        spent_at,
    );
    let shop = f.shop.id;
    f.hub.ingest(&shop, vec![tx], T0.plus_ms(3_000));
    f.hub.economy_tick(T0.plus_ms(3_000), 8).unwrap();

    let library = f.library.id;
    // Before expiry: the grant's rest expires in 30 days (spending took the
    // oldest lot first), the exchanged points never.
    let now = T0.plus_ms(4_000);
    let h = history(read_as(&mut f, library, card.clone(), &carol_card, now));
    assert_eq!(h.account, carol);
    assert_eq!(h.my_key_id.as_str(), "Carol03");
    assert_eq!(h.balances.len(), 1);
    let b = &h.balances[0];
    assert_eq!(
        (
            b.municipality,
            b.spendable.get(),
            b.held.get(),
            b.debt.get()
        ),
        (muni(), 1600, 0, 0)
    );
    let expiries: Vec<(u64, UnixMillis)> = b
        .expiries
        .iter()
        .map(|e| (e.points.get(), e.expires_at))
        .collect();
    assert_eq!(expiries, vec![(600, T0.plus_ms(30 * DAY))]);
    let kinds: Vec<(u64, &Movement)> = h
        .entries
        .iter()
        .map(|e| (e.points.get(), &e.movement))
        .collect();
    assert_eq!(kinds.len(), 3, "{kinds:?}");
    assert!(
        matches!(kinds[0], (300, Movement::Redemption { place, signed_at: Some(t), on_debt: false })
            if place == &fid("shop-1") && *t == spent_at),
        "{kinds:?}"
    );
    assert!(
        matches!(kinds[1], (1000, Movement::ExchangeIn { operator, operator_points: 2000, regional, premium, .. })
            if operator.as_str() == "card-x" && regional.get() == 1000 && premium.get() == 0),
        "{kinds:?}"
    );
    assert!(
        matches!(kinds[2], (900, Movement::Grant { programme }) if programme == &program()),
        "{kinds:?}"
    );
    assert!(!h.more);

    // After the grant's expiry the rest is gone, and the history says so.
    let later = T0.plus_ms(31 * DAY);
    f.hub.run_expiry(later).unwrap();
    let h = history(read_as(&mut f, library, card.clone(), &carol_card, later));
    assert_eq!(h.balances[0].spendable.get(), 1000);
    assert!(h.balances[0].expiries.is_empty());
    assert!(
        matches!(h.entries[0].movement, Movement::Expiry) && h.entries[0].points.get() == 600,
        "{:?}",
        h.entries[0]
    );

    // A page: the newest entries first, and `more` says older ones exist.
    let c = challenge(&mut f, library, card.clone(), later);
    let proof = signed_by(&carol_card, &c);
    let page = history(f.hub.holder(
        &library,
        HolderRequest::History {
            challenge: c,
            proof,
            max_entries: 2,
        },
        later,
    ));
    assert_eq!(page.entries.len(), 2);
    assert!(page.more);
    assert_eq!(page.entries[0], h.entries[0]);
}

#[test]
fn only_the_cards_own_signature_over_a_fresh_challenge_of_this_node_reads() {
    let Setup {
        mut f,
        carol,
        carol_card,
        pki,
        _dir,
    } = setup();
    let card = key_of(&carol_card);
    f.hub.admin_grant(carol, &program(), pts(500), T0).unwrap();
    let (library, shop) = (f.library.id, f.shop.id);

    // Another card's key (the node owner's own card) signing for Carol's.
    let mallory = pki.card("0BADBAD001");
    assert_eq!(
        refusal(read_as(&mut f, library, card.clone(), &mallory, T0)),
        HolderRefusal::BadProof
    );

    // A challenge given to one node, carried by another.
    let c = challenge(&mut f, library, card.clone(), T0);
    let proof = signed_by(&carol_card, &c);
    let ask = |challenge: SignedHolderChallenge| HolderRequest::History {
        challenge,
        proof: proof.clone(),
        max_entries: 10,
    };
    assert_eq!(
        refusal(f.hub.holder(&shop, ask(c.clone()), T0)),
        HolderRefusal::ForeignChallenge
    );
    // A challenge edited by the node (a later time, to stretch it).
    let mut stretched = c.clone();
    stretched.challenge.issued_at = T0.plus_ms(HOLDER_CHALLENGE_TTL_MS * 10);
    assert_eq!(
        refusal(f.hub.holder(
            &library,
            ask(stretched),
            T0.plus_ms(HOLDER_CHALLENGE_TTL_MS * 10)
        )),
        HolderRefusal::ForeignChallenge
    );
    // The same challenge, too late.
    assert_eq!(
        refusal(f.hub.holder(
            &library,
            ask(c.clone()),
            T0.plus_ms(HOLDER_CHALLENGE_TTL_MS + 1)
        )),
        HolderRefusal::StaleChallenge
    );
    // In time, it reads.
    assert_eq!(
        history(
            f.hub
                .holder(&library, ask(c), T0.plus_ms(HOLDER_CHALLENGE_TTL_MS))
        )
        .account,
        carol
    );

    // A card the hub does not know, and one registered without its
    // certificate (no key to check a PIN proof with).
    let stranger = pki.card("0DDDDDD001");
    assert_eq!(
        refusal(read_as(&mut f, library, key_of(&stranger), &stranger, T0)),
        HolderRefusal::UnknownCard
    );
    assert_eq!(
        refusal(read_as(&mut f, library, common::card(1), &carol_card, T0)),
        HolderRefusal::NoCardKey
    );

    // A suspended card reads nothing.
    f.hub.suspend_card(&card, T0).unwrap();
    assert_eq!(
        refusal(read_as(&mut f, library, card.clone(), &carol_card, T0)),
        HolderRefusal::CardNotActive
    );
}

#[test]
fn holder_requests_travel_the_session_after_hello() {
    let Setup {
        mut f, carol_card, ..
    } = setup();
    let node = f.library.id;
    let mut session = HubSession::new(node);
    let ask = Request::Holder(Box::new(HolderRequest::Challenge {
        card: key_of(&carol_card),
    }));
    assert!(matches!(
        session.handle_request(ask.clone(), T0, &mut f.hub),
        Response::Refused(_)
    ));
    let hello = Request::Hello(Hello {
        node,
        node_time: T0,
        last_seq: 0,
        fact_cursor: 0,
        software: "test".into(),
    });
    assert!(matches!(
        session.handle_request(hello, T0, &mut f.hub),
        Response::Welcome(_)
    ));
    let Response::Holder(answer) = session.handle_request(ask, T0, &mut f.hub) else {
        panic!("expected a holder answer")
    };
    let HolderResponse::Challenge(c) = *answer else {
        panic!("expected a challenge, got {answer:?}")
    };
    assert_eq!(c.challenge.node, node);
    // The bytes on the wire round-trip.
    let r = Response::Holder(Box::new(HolderResponse::Challenge(c.clone())));
    assert_eq!(Response::decode(&r.encode()).unwrap(), r);
    // A refusal of a holder request leaves the session open.
    let bad = Request::Holder(Box::new(HolderRequest::History {
        challenge: c,
        proof: mykey_sync_proto::CardSignature::new(vec![1; 256]).unwrap(),
        max_entries: 5,
    }));
    let Response::Holder(answer) = session.handle_request(bad, T0, &mut f.hub) else {
        panic!("expected a holder answer")
    };
    assert_eq!(*answer, HolderResponse::Refused(HolderRefusal::BadProof));
    assert!(session.is_open());
}

/// No table of the hub has a column for what was bought or borrowed. The
/// `item` columns that exist are the replicated cache's: a fact's item key
/// (`facts.item`) and a shard's count of them (`shard_fill.items`),
/// ARCHITECTURE "The replicated cache".
#[test]
fn the_hub_schema_has_no_column_for_an_item() {
    // Every (table, column) of the hub's schema, on whichever backend the
    // fixture chose.
    let f = Fixture::new();
    let listed = if f._db.is_some() {
        f.raw_text(
            "SELECT string_agg(table_name || '.' || column_name, ',') \
             FROM information_schema.columns WHERE table_schema = current_schema()",
        )
    } else {
        f.raw_text(
            "SELECT group_concat(m.name || '.' || p.name, ',') \
             FROM sqlite_master m JOIN pragma_table_info(m.name) p WHERE m.type = 'table'",
        )
    };
    let columns: Vec<(&str, &str)> = listed
        .split(',')
        .filter_map(|tc| tc.split_once('.'))
        .collect();
    assert!(
        columns.iter().any(|(t, _)| *t == "transfers"),
        "{columns:?}"
    );
    let banned = [
        "item", "items", "product", "products", "goods", "title", "sku", "isbn", "barcode", "book",
        "loan", "purchase", "basket", "article",
    ];
    for (t, c) in &columns {
        let lower = c.to_ascii_lowercase();
        let hit = banned
            .iter()
            .any(|b| lower == *b || lower.split('_').any(|w| w == *b));
        assert!(
            !hit || (*t == "facts" && *c == "item") || (*t == "shard_fill" && *c == "items"),
            "table {t} has a column {c:?}: the hub keeps transfers, never usage (DESIGN §9)"
        );
    }
    assert!(
        columns.len() > 100,
        "the check saw the schema ({} columns)",
        columns.len()
    );
}
