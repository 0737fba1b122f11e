//! What the kiosk shows offline (issue 19): what the node already holds for
//! a card, from its store, after real syncs with an in-process hub; and
//! that reading it writes nothing.

use mykey_hub::economy::lots::ExpiryPolicy;
use mykey_node::kiosk::offline::offline_view;
use mykey_sync_proto::UnixMillis;
use mykey_tests::world::{World, bunkyo, card, health, pts};

const STALL: usize = 2;

#[test]
fn offline_the_kiosk_shows_the_nodes_confirmed_balance_expiry_and_pending_spends() {
    let dir = tempfile::tempdir().unwrap();
    let mut w = World::create(dir.path(), UnixMillis(1_750_000_000_000)).unwrap();
    let (hanako, key) = (w.holders[0].account, w.holders[0].card.clone());
    w.hub
        .set_program_expiry(&health(), ExpiryPolicy::FiscalYearEnd { years: 0 })
        .unwrap();
    w.hub
        .admin_grant(hanako, &health(), pts(1200), w.now)
        .unwrap();
    assert_eq!(
        offline_view(&w.sites[STALL].node, &key)
            .unwrap()
            .map(|v| v.balance),
        None,
        "a node that never synced knows no holder"
    );
    w.sync_all().unwrap();
    // A spend the hub has not confirmed yet shows as pending.
    w.sites[STALL]
        .node
        .redeem(&key, pts(200), None, w.now)
        .unwrap();
    let before = store_bytes(&w.sites[STALL].dir);
    let v = offline_view(&w.sites[STALL].node, &key).unwrap().unwrap();
    assert_eq!(v.account, hanako);
    assert_eq!(v.my_key_id.as_ref().map(|m| m.as_str()), Some("Hanako"));
    assert_eq!(v.municipality, bunkyo());
    assert_eq!(
        (v.balance, v.debt, v.pending),
        (pts(1200), pts(0), pts(200))
    );
    let (points, _) = v.expiry.expect("the expiry the hub told");
    assert_eq!(points, pts(1200));
    // Reading wrote nothing.
    assert_eq!(store_bytes(&w.sites[STALL].dir), before);
    // A card the node does not know shows nothing.
    assert!(
        offline_view(&w.sites[STALL].node, &card(0x9999))
            .unwrap()
            .is_none()
    );
}

/// The store's files (database, WAL, shared memory index) and their bytes.
fn store_bytes(dir: &std::path::Path) -> Vec<(String, Vec<u8>)> {
    let mut out: Vec<(String, Vec<u8>)> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("node.sqlite") && !n.ends_with("-shm"))
        })
        .map(|p| (p.display().to_string(), std::fs::read(&p).unwrap()))
        .collect();
    out.sort();
    assert!(!out.is_empty(), "no store files in {}", dir.display());
    out
}
