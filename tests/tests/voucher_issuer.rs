//! Kiosk-issued vouchers' trust path (issue 17 part 1(a), the part built so
//! far), with the real binaries: the hub vouches for a kiosk node as voucher
//! issuer 1 (`mykey-hub voucher issuer add`); a shop node learns the hub's
//! statement with its sync, then offline takes a voucher the kiosk's own key
//! signed (from its PNG) and refuses one signed by another key claiming
//! issuer 1 and one naming issuer 2, which the hub never vouched for; the
//! hub, having no issuing transaction for it yet, holds the redemption
//! (`mykey-hub voucher held`); once the hub withdraws the issuer, the shop
//! refuses the kiosk's next voucher.

mod net_common;

use mykey_node::config::DataDir;
use mykey_voucher::{ExpiryDate, Issuer, Serial, SignedVoucher, VoucherBody};
use net_common::{World, caught_up, hub_cli, run_with_stdin, start_hub, start_node, wait_until};
use std::path::Path;
use std::time::Duration;

/// One `run` of the shop until it has pushed everything and holds the
/// hub's statement of issuer 1 as `withdrawn`.
fn sync_node(hub_dir: &Path, node: &Path, withdrawn: bool) {
    let (mut hub, addr) = start_hub(hub_dir, 0);
    let mut p = start_node("shop", node, Some(&addr), &[]);
    wait_until("node caught up", Duration::from_secs(60), || {
        caught_up(node)
    });
    wait_until("the issuer statement", Duration::from_secs(60), || {
        let n = DataDir::new(node).open().unwrap();
        n.voucher_issuer(1)
            .unwrap()
            .is_some_and(|v| v.withdrawn == withdrawn)
    });
    p.terminate();
    hub.terminate();
}

fn voucher(issuer: u16, index: u16, key: &ed25519_dalek::SigningKey) -> SignedVoucher {
    VoucherBody {
        key_hint: 0,
        municipality: mykey_sync_proto::MunicipalityCode::parse("131059").unwrap(),
        serial: Serial {
            batch: Issuer::node_batch(issuer, 1).unwrap(),
            index,
        },
        points: 300,
        expires: ExpiryDate::parse("2099-03-31").unwrap(),
    }
    .sign(key)
}

/// Redeems `v` at `shop` from a PNG of it, as a shop's photo would.
fn redeem_png(shop: &Path, dir: &Path, v: &SignedVoucher) -> (bool, String, String) {
    let png = dir.join(format!("{}.png", v.body.serial));
    std::fs::write(&png, mykey_voucher::voucher_png(v, 8)).unwrap();
    run_with_stdin(
        "mykey-node",
        shop,
        &["voucher", "redeem", "--image", png.to_str().unwrap()],
        "",
    )
}

#[test]
fn a_shop_checks_a_kiosks_voucher_with_the_hubs_statement_offline() {
    let w = World::create(2, 0);
    let (shop, kiosk_dir) = (w.nodes[0].as_path(), w.nodes[1].as_path());
    let kiosk_id = w.node_ids[1].to_string();
    let kiosk = mykey_node::key::NodeKey::load_or_create(&kiosk_dir.join("node.key")).unwrap();
    assert_eq!(kiosk.id(), w.node_ids[1]);
    let out = hub_cli(
        &w.hub_dir,
        &["voucher", "issuer", "add", "--node", &kiosk_id],
    );
    assert!(out.contains("is voucher issuer 1"), "{out}");
    let list = hub_cli(&w.hub_dir, &["voucher", "issuer", "list"]);
    assert!(
        list.contains(&kiosk_id) && list.contains("vouched"),
        "{list}"
    );
    let again = net_common::refused(
        "mykey-hub",
        &w.hub_dir,
        &["voucher", "issuer", "add", "--node", &kiosk_id],
    );
    assert!(again.contains("already"), "{again}");

    sync_node(&w.hub_dir, shop, false);
    let dir = w.root.path().join("photos");
    std::fs::create_dir_all(&dir).unwrap();

    // Offline: the kiosk's voucher is taken.
    let (ok, out, err) = redeem_png(shop, &dir, &voucher(1, 1, kiosk.signing_key()));
    assert!(ok, "{err}");
    assert!(
        out.contains("taken: voucher k1.1-00001 of 131059: 300 pt"),
        "{out}"
    );
    // Another key claiming issuer 1: forged.
    let forger = ed25519_dalek::SigningKey::from_bytes(&[42; 32]);
    let (ok, _, err) = redeem_png(shop, &dir, &voucher(1, 2, &forger));
    assert!(!ok && err.contains("altered or forged"), "{err}");
    // Issuer 2: the hub never vouched for it.
    let (ok, _, err) = redeem_png(shop, &dir, &voucher(2, 1, kiosk.signing_key()));
    assert!(!ok && err.contains("never vouched for"), "{err}");

    // At the hub: no issuing transaction backs it yet, so it is held,
    // paying nothing, until the kiosk's issue arrives (it never does here).
    sync_node(&w.hub_dir, shop, false);
    let status: serde_json::Value =
        serde_json::from_str(&net_common::node_cli(shop, &["status", "--json"])).unwrap();
    assert_eq!(
        status["troubled"].as_array().map(Vec::len),
        Some(0),
        "{status:#}"
    );
    let held = hub_cli(&w.hub_dir, &["voucher", "held"]);
    assert!(
        held.contains("voucher k1.1-00001 131059 redeemed by node")
            && held.contains("valid through 2099-03-31"),
        "{held}"
    );

    // Withdrawn: the shop refuses the kiosk's next voucher once it knows.
    let out = hub_cli(
        &w.hub_dir,
        &["voucher", "issuer", "withdraw", "--node", &kiosk_id],
    );
    assert!(out.contains("withdrew voucher issuer 1"), "{out}");
    sync_node(&w.hub_dir, shop, true);
    let (ok, _, err) = redeem_png(shop, &dir, &voucher(1, 3, kiosk.signing_key()));
    assert!(!ok && err.contains("which the hub withdrew"), "{err}");
    hub_cli(&w.hub_dir, &["ledger", "check"]);
}
