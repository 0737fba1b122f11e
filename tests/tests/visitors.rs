//! Visitors (issue 22, item 6): a card registered in another municipality is
//! told "registered elsewhere" at a library of this town, never "not
//! registered" (which would send a registered person to register again),
//! and the library still finds the card number it linked for the visitor.
//! An unknown card is still "not registered". The real `mykey-hub serve`
//! and `mykey-node run`, SQLite files, libp2p on 127.0.0.1; the node learns
//! cards from its municipality's shards only.

mod net_common;

use mykey_sync_proto::{MunicipalityCode, MyKeyId};
use net_common::*;
use std::path::{Path, PathBuf};
use std::time::Duration;

fn sapporo() -> MunicipalityCode {
    MunicipalityCode::parse("011002").unwrap()
}

fn chiyoda() -> MunicipalityCode {
    MunicipalityCode::parse("131016").unwrap()
}

/// A library of `m` with a node allowed to link card numbers, enrolled.
fn library(w: &World, hub: &mut mykey_hub::Hub, m: MunicipalityCode, name: &str) -> PathBuf {
    w.add_library(hub, m, name).0
}

fn lookup(dir: &Path, c: &str) -> String {
    node_cli(dir, &["lookup", "--card", c])
}

#[test]
fn a_visitor_is_registered_elsewhere_and_keeps_this_librarys_card_number() {
    let w = World::create(0, 0);
    let mut hub = w.open_hub();
    let t = now();
    hub.add_municipality(sapporo(), "Sapporo-shi", t).unwrap();
    let bunkyo_lib = library(&w, &mut hub, bunkyo(), "bunkyo-library");
    // A holder of Sapporo, registered there.
    let visitor = card(0x5A9);
    hub.register_account(&MyKeyId::parse("sapporo1").unwrap(), sapporo(), &visitor, t)
        .unwrap();
    // A town added after the registration learns the visitor's card too.
    hub.add_municipality(chiyoda(), "Chiyoda-ku", t).unwrap();
    let chiyoda_lib = library(&w, &mut hub, chiyoda(), "chiyoda-library");
    drop(hub);

    let (_hub, addr) = start_hub(&w.hub_dir, 0);
    let _a = start_node("bunkyo-library", &bunkyo_lib, Some(&addr), &[]);
    let _c = start_node("chiyoda-library", &chiyoda_lib, Some(&addr), &[]);
    let v = card_arg(&visitor);
    for dir in [&bunkyo_lib, &chiyoda_lib] {
        wait_until(
            "the library to know the visitor's card",
            Duration::from_secs(60),
            || lookup(dir, &v).contains("registered elsewhere"),
        );
        let out = lookup(dir, &v);
        assert!(out.contains("home municipality 011002"), "{out}");
        assert!(out.contains("no points of this town"), "{out}");
        assert!(!out.contains("not registered"), "{out}");
        assert!(!out.contains("register a My Key ID"), "{out}");
    }
    // A card nobody registered is still not registered.
    let unknown = lookup(&bunkyo_lib, &card_arg(&card(0xDEAD)));
    assert!(unknown.contains("not registered"), "{unknown}");

    // The library links its own card number for the visitor; it finds it
    // again once the hub confirmed it.
    let out = node_cli(&bunkyo_lib, &["link", "--card", &v, "--number", "LIB-0777"]);
    assert!(out.contains("linked"), "{out}");
    wait_until(
        "the hub to confirm the visitor's number",
        Duration::from_secs(60),
        || {
            let out = lookup(&bunkyo_lib, &v);
            out.contains("facility card number LIB-0777") && !out.contains("not yet confirmed")
        },
    );
    let out = lookup(&bunkyo_lib, &v);
    assert!(out.contains("registered elsewhere"), "{out}");
    // The other town's library holds no number of this facility.
    let out = lookup(&chiyoda_lib, &v);
    assert!(
        out.contains("no card number of this facility linked"),
        "{out}"
    );
}

#[test]
fn a_visitor_spends_no_points_of_this_town() {
    let w = World::create(1, 0);
    let mut hub = w.open_hub();
    let t = now();
    hub.add_municipality(sapporo(), "Sapporo-shi", t).unwrap();
    let visitor = card(0x5AA);
    hub.register_account(&MyKeyId::parse("sapporo2").unwrap(), sapporo(), &visitor, t)
        .unwrap();
    drop(hub);
    let (_hub, addr) = start_hub(&w.hub_dir, 0);
    let shop = &w.nodes[0];
    let _n = start_node("shop", shop, Some(&addr), &[]);
    let v = card_arg(&visitor);
    wait_until(
        "the shop to know the visitor's card",
        Duration::from_secs(60),
        || lookup(shop, &v).contains("registered elsewhere"),
    );
    let before = status(shop)["last_seq"].clone();
    let err = refused(
        "mykey-node",
        shop,
        &["redeem", "--card", &v, "--points", "10"],
    );
    assert!(
        err.contains("registered in municipality 011002, not here"),
        "{err}"
    );
    assert!(!err.contains("register a My Key ID"), "{err}");
    assert_eq!(status(shop)["last_seq"], before, "nothing was signed");
}
