use super::*;
use mykey_sync_proto::MunicipalityCode;
use mykey_sync_proto::shard::ShardScope;

fn shard() -> ShardId {
    ShardId {
        scope: ShardScope::Municipality(MunicipalityCode::parse("131059").unwrap()),
        bucket: 0,
    }
}

fn hub_id() -> NodeId {
    let k = ed25519_dalek::SigningKey::from_bytes(&[7; 32]);
    NodeId::from_bytes(k.verifying_key().to_bytes()).unwrap()
}

/// Builds a hub document from batches of (key, value).
fn build(batches: &[Vec<(String, Vec<u8>)>]) -> ShardDoc {
    let mut d = ShardDoc::for_writer(hub_actor(&hub_id(), &shard(), 0));
    for (i, b) in batches.iter().enumerate() {
        d.put_batch(
            b.iter().map(|(k, v)| (k.as_str(), v.as_slice())),
            1000 + i as i64,
        );
    }
    d
}

fn batches(n: usize, per: usize) -> Vec<Vec<(String, Vec<u8>)>> {
    (0..n)
        .map(|b| {
            (0..per)
                .map(|i| (format!("k/{}", (b * 7 + i) % 50), vec![b as u8; 150]))
                .collect()
        })
        .collect()
}

/// Runs the request/response loop the sessions run: the node sends, the hub
/// answers, until neither has anything. Returns (rounds, bytes, keys touched).
fn sync(hub: &mut ShardDoc, node: &mut ShardDoc, ns: &mut SyncState) -> (u32, usize, usize) {
    let mut hs = SyncState::new_read_only();
    let (mut rounds, mut bytes, mut touched) = (0, 0, 0);
    let mut hub_sent = true;
    loop {
        let m = node.generate(ns);
        if m.is_none() && !hub_sent {
            break;
        }
        rounds += 1;
        assert!(rounds < 20, "sync does not terminate");
        if let Some(m) = &m {
            bytes += m.len();
            hub.receive(&mut hs, m).unwrap();
        }
        let r = hub.generate(&mut hs);
        hub_sent = r.is_some();
        if let Some(r) = r {
            bytes += r.len();
            touched += node.receive(ns, &r).unwrap().len();
        }
    }
    (rounds, bytes, touched)
}

#[test]
fn a_rebuild_makes_the_same_changes() {
    let b = batches(30, 5);
    let mut one = build(&b);
    let mut two = build(&b);
    assert_eq!(one.heads(), two.heads());
    // A node that synced from the first build keeps merging with the rebuild.
    let mut node = ShardDoc::new();
    let mut ns = SyncState::new();
    sync(&mut one, &mut node, &mut ns);
    let mut more = b.clone();
    more.push(vec![("k/new".into(), vec![9; 10])]);
    let mut rebuilt = build(&more);
    let (_, _, touched) = sync(&mut rebuilt, &mut node, &mut ns);
    assert_eq!(touched, 1, "only the new key arrives");
    assert_eq!(node.heads(), rebuilt.heads());
}

#[test]
fn a_reader_syncs_loads_incrementally_and_never_writes_into_the_hub() {
    let b = batches(40, 5);
    let mut hub = build(&b[..20]);
    let mut node = ShardDoc::new();
    let mut ns = SyncState::new();
    let (_, _, touched) = sync(&mut hub, &mut node, &mut ns);
    assert_eq!(touched, hub.len());
    let mut stored = node.save();
    // Later batches arrive; the node appends only the increment.
    let mut hub = build(&b);
    let mut ns = SyncState::decode(&ns.encode()).unwrap();
    sync(&mut hub, &mut node, &mut ns);
    stored.extend(node.save_incremental());
    let mut reloaded = ShardDoc::load(&stored).unwrap();
    assert_eq!(reloaded.heads(), hub.heads());
    assert_eq!(reloaded.values("k/3"), hub.values("k/3"));
    // A reader's own write does not reach the hub (read-only state there).
    let mut rogue = ShardDoc::load(&stored).unwrap();
    rogue.put_batch([("k/3", &b"forged"[..])], 5);
    let before = hub.heads();
    let mut rs = SyncState::new();
    sync(&mut hub, &mut rogue, &mut rs);
    assert_eq!(hub.heads(), before);
    assert!(rogue.values("k/3").contains(&b"forged".to_vec()));
}

#[test]
fn bad_bytes_are_errors() {
    assert!(ShardDoc::load(b"junk").is_err());
    let mut d = ShardDoc::new();
    assert!(d.receive(&mut SyncState::new(), b"junk").is_err());
    assert!(SyncState::decode(b"\x01").is_err());
}

#[test]
fn a_catch_up_past_the_wire_bound_still_converges() {
    // 4 MiB of items written in many changes after the node last synced.
    let mut hub = ShardDoc::for_writer(hub_actor(&hub_id(), &shard(), 0));
    let mut node = ShardDoc::new();
    let mut ns = SyncState::new();
    hub.put_batch([("seed", &b"x"[..])], 1);
    sync(&mut hub, &mut node, &mut ns);
    let mut seed = 1u64;
    for b in 0..300 {
        let items: Vec<(String, Vec<u8>)> = (0..100)
            .map(|i| {
                // Incompressible values, like signatures.
                let v: Vec<u8> = (0..160)
                    .map(|_| {
                        seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1);
                        (seed >> 56) as u8
                    })
                    .collect();
                (format!("k/{b}/{i}"), v)
            })
            .collect();
        hub.put_batch(items.iter().map(|(k, v)| (k.as_str(), v.as_slice())), b);
    }
    let mut hs = SyncState::new_read_only();
    let mut largest = 0;
    loop {
        let m = node.generate(&mut ns);
        if let Some(m) = &m {
            hub.receive(&mut hs, m).unwrap();
        }
        let Some(r) = hub.generate(&mut hs) else {
            break;
        };
        largest = largest.max(r.len());
        node.receive(&mut ns, &r).unwrap();
    }
    assert_eq!(node.heads(), hub.heads());
    assert!(
        largest > 4 * 1024 * 1024,
        "this test wants a big catch-up: {largest}"
    );
}

#[test]
fn a_restarted_state_keeps_only_the_shared_heads() {
    let mut hub = build(&batches(10, 3));
    let mut node = ShardDoc::new();
    let mut ns = SyncState::new();
    sync(&mut hub, &mut node, &mut ns);
    let hs = SyncState::new_read_only().restart();
    assert!(hs.0.read_only, "read-only survives a restart");
    let again = ns.restart();
    assert_eq!(again.encode(), ns.encode());
    // A fresh exchange from the restarted state moves nothing new.
    let mut again = again;
    let (_, _, touched) = sync(&mut hub, &mut node, &mut again);
    assert_eq!(touched, 0);
}
