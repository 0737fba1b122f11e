//! A holder's kiosk link request confirmed by the facility (issue 19 part
//! 3), with the real binaries on 127.0.0.1: the operator sets the library's
//! policy to `confirm` (`mykey-hub facility kiosk-link`), the virtual JPKI
//! card signs the holder's link order through the node's card path at
//! another facility's node, the library's running node lists and confirms
//! it (`mykey-node link-requests`), another library's node cannot, and the
//! library's node then finds the number in its lookup of the card.

mod net_common;

use mykey_node::card::{Pin, prove_order};
use mykey_node::config::DataDir;
use mykey_node::http::client::holder;
use mykey_sync_proto::holder::{
    HolderAction, HolderDone, HolderOrder, HolderRequest, HolderResponse,
};
use mykey_sync_proto::{FacilityCardNumber, FacilityId, MyKeyId};
use mykey_tests::card::{InProcessCard, IssuedCard, issued_card};
use net_common::*;
use std::time::Duration;

#[test]
fn the_library_confirms_a_kiosk_link_and_its_running_node_finds_the_card() {
    let w = World::create(1, 0);
    let t = now();
    let now_s = (t.0 / 1000) as i64;
    let IssuedCard {
        mut card, trusted, ..
    } = issued_card(&[0x0A, 0x1B, 0x2D], *b"4321", now_s);
    let card_key = trusted.cert().card_key().clone();
    let (lib_dir, lib2_dir) = {
        let mut hub = w.open_hub();
        hub.register_account_with_certificate(
            &MyKeyId::parse("Hanako").unwrap(),
            bunkyo(),
            &trusted,
            t,
        )
        .unwrap();
        let (lib, _) = w.add_library(&mut hub, bunkyo(), "lib-1");
        let (lib2, _) = w.add_library(&mut hub, bunkyo(), "lib-2");
        (lib, lib2)
    };
    let said = hub_cli(
        &w.hub_dir,
        &[
            "facility",
            "kiosk-link",
            "--id",
            "lib-1",
            "--policy",
            "confirm",
        ],
    );
    assert!(said.contains("wait for one of its nodes"), "{said}");
    let shown = hub_cli(&w.hub_dir, &["facility", "show", "--id", "lib-1", "--json"]);
    let shown: serde_json::Value = serde_json::from_str(&shown).unwrap();
    assert_eq!(shown["kiosk_link"], "confirm", "{shown}");
    let bad = refused(
        "mykey-hub",
        &w.hub_dir,
        &[
            "facility",
            "kiosk-link",
            "--id",
            "lib-1",
            "--policy",
            "sometimes",
        ],
    );
    assert!(bad.contains("use auto or confirm"), "{bad}");

    // No running node: said at once, with what to do.
    let offline = refused("mykey-node", &lib_dir, &["link-requests", "list"]);
    assert!(offline.contains("start `mykey-node run`"), "{offline}");

    let (mut hub, addr) = start_hub(&w.hub_dir, 0);
    let kiosk_dir = &w.nodes[0];
    let _kiosk = start_node("kiosk", kiosk_dir, Some(&addr), &[]);
    let _lib = start_node("lib-1", &lib_dir, Some(&addr), &[]);
    let _lib2 = start_node("lib-2", &lib2_dir, Some(&addr), &[]);
    for d in [kiosk_dir, &lib_dir, &lib2_dir] {
        wait_until("the node is caught up", Duration::from_secs(30), || {
            caught_up(d)
        });
    }

    // The holder signs the link at the kiosk with the card's PIN.
    let order = HolderOrder {
        node: w.node_ids[0],
        card: card_key.clone(),
        signed_at: now(),
        nonce: [5; 16],
        action: HolderAction::LinkFacilityCard {
            facility: FacilityId::parse("lib-1").unwrap(),
            number: FacilityCardNumber::parse("L-042").unwrap(),
        },
    };
    let proof = prove_order(
        &mut InProcessCard(&mut card),
        &trusted,
        Pin::parse("4321").unwrap(),
        &order,
    )
    .unwrap();
    let answer = holder(
        &DataDir::new(kiosk_dir),
        &HolderRequest::Order {
            order,
            proof,
            certificate: None,
        },
    )
    .unwrap();
    let HolderResponse::Done(HolderDone::LinkRequested { request, .. }) = answer else {
        panic!("expected a pending request, got {answer:?}");
    };

    let list = node_cli(&lib_dir, &["link-requests", "list"]);
    assert!(
        list.starts_with("1 link request waiting for lib-1:\n"),
        "{list}"
    );
    assert!(
        list.contains(&format!("#{request}  number L-042  account ")),
        "{list}"
    );
    let lookup = |dir: &std::path::Path| node_cli(dir, &["lookup", "--card", &card_arg(&card_key)]);
    assert!(
        lookup(&lib_dir).contains("no card number of this facility linked"),
        "{}",
        lookup(&lib_dir)
    );

    // Another library's node: no such request; nothing changes.
    assert_eq!(
        node_cli(&lib2_dir, &["link-requests", "list"]),
        "no link requests waiting for this facility\n"
    );
    let id = request.to_string();
    let other = refused("mykey-node", &lib2_dir, &["link-requests", "confirm", &id]);
    assert!(
        other.contains("no link request with this number"),
        "{other}"
    );

    // The library confirms; once only.
    let done = node_cli(&lib_dir, &["link-requests", "confirm", &format!("#{id}")]);
    assert!(
        done.starts_with(&format!(
            "confirmed #{id}: lib-1 card number L-042 is linked"
        )),
        "{done}"
    );
    let again = refused("mykey-node", &lib_dir, &["link-requests", "confirm", &id]);
    assert!(again.contains("answered already"), "{again}");
    assert_eq!(
        node_cli(&lib_dir, &["link-requests", "list"]),
        "no link requests waiting for this facility\n"
    );

    // The running library node learns the number from the hub's fact.
    wait_until(
        "the library's node finds the number",
        Duration::from_secs(30),
        || lookup(&lib_dir).contains("facility card number L-042"),
    );
    // The other library never hears of it.
    assert!(
        lookup(&lib2_dir).contains("no card number of this facility linked"),
        "{}",
        lookup(&lib2_dir)
    );
    hub.terminate();
}
