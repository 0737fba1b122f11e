//! A card holder's own history through a running node (issue 19): the
//! real `mykey-hub serve` and `mykey-node run` on 127.0.0.1, the request
//! carried by the node's loopback `POST /holder` over its one hub link, the
//! virtual JPKI card signing the hub's challenge through the node's real
//! card path (`prove_holder`) after its PIN; with the hub stopped the node
//! says "offline" at once.

mod net_common;

use mykey_hub::economy::exchange::{
    ExchangeOperator, ExchangeRequest, OperatorId, Rate, SignedExchange,
};
use mykey_hub::economy::lots::ExpiryPolicy;
use mykey_node::card::{Pin, ProveError, prove_holder};
use mykey_node::config::DataDir;
use mykey_node::http::client::{HolderCallError, holder};
use mykey_sync_proto::holder::{
    HolderAction, HolderBinding, HolderRefusal, HolderRequest, HolderResponse, Movement,
};
use mykey_sync_proto::{MyKeyId, ProgramId};
use mykey_tests::card::{InProcessCard, IssuedCard, issued_card};
use net_common::*;
use std::time::Duration;

/// The exchange operator of the holder's history.
const OPERATOR: &str = "far-away-air";

#[test]
fn a_holder_reads_their_history_through_the_running_node_and_offline_is_said() {
    let w = World::create(1, 0);
    let t = now();
    let now_s = (t.0 / 1000) as i64;
    let IssuedCard {
        mut card, trusted, ..
    } = issued_card(&[0x0A, 0x1B, 0x2C], *b"4321", now_s);
    let card_key = trusted.cert().card_key().clone();
    {
        let mut hub = w.open_hub();
        let akiko = hub
            .register_account_with_certificate(
                &MyKeyId::parse("Akiko").unwrap(),
                bunkyo(),
                &trusted,
                t,
            )
            .unwrap();
        hub.admin_grant(akiko, &ProgramId::parse("health").unwrap(), pts(1234), t)
            .unwrap();
        // An exchange only the hub knows of: the node never holds its
        // operator or its figures, so finding them in the node's files or
        // log would mean the history was kept there.
        let operator = OperatorId::parse(OPERATOR).unwrap();
        let operator_key = ed25519_dalek::SigningKey::from_bytes(&[42; 32]);
        hub.upsert_exchange_operator(
            &ExchangeOperator {
                id: operator.clone(),
                name: "Far Away Air".into(),
                public_key: operator_key.verifying_key().to_bytes(),
                rate: Rate::new(1, 1).unwrap(),
                holding_days: 0,
                expiry: ExpiryPolicy::Never,
            },
            t,
        )
        .unwrap();
        hub.allow_exchange(&operator, bunkyo(), pts(1_000_000), t)
            .unwrap();
        let signed = SignedExchange::sign(
            &operator,
            &ExchangeRequest {
                request_id: "mile-1".into(),
                my_key_id: "Akiko".into(),
                operator_points: 8642,
                municipality: None,
                requested_at: t.0,
                donate_to: None,
            },
            &operator_key,
        );
        hub.exchange(&signed, t).unwrap();
    }
    let node_dir = &w.nodes[0];
    let dir = DataDir::new(node_dir);

    // No node running: offline, said at once.
    let ask = HolderRequest::Challenge {
        card: card_key.clone(),
    };
    assert!(matches!(holder(&dir, &ask), Err(HolderCallError::Offline)));

    let (mut hub, addr) = start_hub(&w.hub_dir, 0);
    let node = start_node("node", node_dir, Some(&addr), &[]);
    wait_until("the node is caught up", Duration::from_secs(30), || {
        caught_up(node_dir)
    });

    let HolderResponse::Challenge(c) = holder(&dir, &ask).unwrap() else {
        panic!("expected a challenge")
    };
    assert_eq!(c.challenge.node, w.node_ids[0]);
    let binding = HolderBinding {
        challenge: c.clone(),
        action: HolderAction::ReadHistory,
    };
    // A wrong PIN: the card signs nothing and says how many tries are left.
    let err = prove_holder(
        &mut InProcessCard(&mut card),
        &trusted,
        Pin::parse("1111").unwrap(),
        &binding,
    )
    .unwrap_err();
    assert!(
        matches!(err, ProveError::WrongPin { tries_left: 2 }),
        "{err}"
    );
    let proof = prove_holder(
        &mut InProcessCard(&mut card),
        &trusted,
        Pin::parse("4321").unwrap(),
        &binding,
    )
    .unwrap();

    // A proof is bound to its challenge: with another challenge it reads nothing.
    let HolderResponse::Challenge(other) = holder(&dir, &ask).unwrap() else {
        panic!("expected a challenge")
    };
    let wrong = holder(
        &dir,
        &HolderRequest::History {
            challenge: other,
            proof: proof.clone(),
            max_entries: 50,
        },
    )
    .unwrap();
    assert_eq!(wrong, HolderResponse::Refused(HolderRefusal::BadProof));

    let HolderResponse::History(h) = holder(
        &dir,
        &HolderRequest::History {
            challenge: c,
            proof,
            max_entries: 50,
        },
    )
    .unwrap() else {
        panic!("expected the history")
    };
    assert_eq!(h.my_key_id.as_str(), "Akiko");
    assert_eq!(h.balances.len(), 1);
    assert_eq!(h.balances[0].spendable.get(), 1234 + 8642);
    assert_eq!(h.entries.len(), 2);
    assert!(
        matches!(&h.entries[0].movement, Movement::ExchangeIn { operator, operator_points: 8642, .. } if operator.as_str() == OPERATOR),
        "{:?}",
        h.entries[0]
    );
    assert!(
        matches!(&h.entries[1].movement, Movement::Grant { programme } if programme.as_str() == "health"),
        "{:?}",
        h.entries[1]
    );

    // Nothing of the history stays on the node: not in its files (store,
    // WAL), not in its log.
    for entry in std::fs::read_dir(node_dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_file() {
            let bytes = std::fs::read(&path).unwrap();
            assert!(
                !bytes
                    .windows(OPERATOR.len())
                    .any(|w| w == OPERATOR.as_bytes()),
                "{} holds the history's exchange operator",
                path.display()
            );
        }
    }
    assert!(!node.stderr().contains(OPERATOR), "{}", node.stderr());
    assert!(!node.stderr().contains("8642"), "{}", node.stderr());

    // The hub stops: the node answers "offline" (not a hang) once its link is down.
    hub.terminate();
    wait_until("the node says offline", Duration::from_secs(30), || {
        matches!(holder(&dir, &ask), Err(HolderCallError::Offline))
    });
}
