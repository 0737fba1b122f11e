//! The dashboard's view of shard epochs: what a node last synced, and the
//! "shard epoch behind" alert once the hub compacted and the node has not
//! caught up (recorded in the hub's `Observed`, without a durable write).

mod common;

use common::*;
use mykey_hub::status::assess::{Alert, Thresholds};
use mykey_sync_proto::UnixMillis;
use mykey_sync_proto::session::HubService;
use mykey_sync_proto::shard::{ShardId, ShardScope};
use mykey_sync_proto::wire::{Hello, ShardSync};

/// The shop says Hello; the municipality shard it will sync.
fn hello_shop(f: &mut Fixture) -> ShardId {
    f.hub
        .open(
            &Hello {
                node: f.shop.id,
                node_time: T0,
                last_seq: 0,
                fact_cursor: 0,
                software: "t".into(),
            },
            T0,
        )
        .unwrap();
    ShardId {
        scope: ShardScope::Municipality(muni()),
        bucket: 0,
    }
}

#[test]
fn a_node_an_epoch_behind_is_shown_and_alerted() {
    let mut f = Fixture::new();
    f.hub.admin_grant(f.alice, &program(), pts(10), T0).unwrap();
    let shard = hello_shop(&mut f);
    let sync = |epoch| ShardSync {
        shard: shard.clone(),
        epoch,
        message: None,
        start: true,
    };
    f.hub.shard_sync(&f.shop.id, sync(0), T0).unwrap();
    let th = Thresholds::default();
    let row = |f: &mut Fixture| {
        f.hub
            .fleet(&th, UnixMillis(T0.0 + 1000))
            .unwrap()
            .nodes
            .into_iter()
            .find(|r| r.status.node.id == f.shop.id)
            .unwrap()
    };
    let r = row(&mut f);
    assert_eq!(r.shard_epochs.len(), 1);
    assert_eq!((r.shard_epochs[0].held, r.shard_epochs[0].current), (0, 0));
    assert!(
        !r.assessment
            .alerts
            .iter()
            .any(|a| matches!(a, Alert::ShardEpochBehind { .. }))
    );

    f.hub.compact_shards(T0).unwrap();
    let r = row(&mut f);
    assert!(
        r.assessment.alerts.iter().any(|a| matches!(
            a,
            Alert::ShardEpochBehind {
                held: 0,
                current: 1,
                ..
            }
        )),
        "{:?}",
        r.assessment.alerts
    );
    // The node syncs the new epoch: the alert goes.
    f.hub.shard_sync(&f.shop.id, sync(1), T0).unwrap();
    let r = row(&mut f);
    assert!(
        !r.assessment
            .alerts
            .iter()
            .any(|a| matches!(a, Alert::ShardEpochBehind { .. }))
    );
    // The node page shows it.
    let d = f
        .hub
        .node_detail(&f.shop.id, &th, UnixMillis(T0.0 + 1000))
        .unwrap()
        .unwrap();
    assert_eq!(d.row.shard_epochs[0].shard, "muni:131059/0");
}

/// `serve` opens two hubs on one database (the writer and the dashboard's
/// reader) and gives both one `Observed`: the reader shows the epochs the
/// writer saw. A hub opened without it starts with nothing, so nothing
/// leaks between hubs (or tests) through the process.
#[test]
fn a_hub_sees_what_another_observed_only_when_given_its_observed() {
    let mut f = Fixture::new();
    let shard = hello_shop(&mut f);
    f.hub
        .shard_sync(
            &f.shop.id,
            ShardSync {
                shard,
                epoch: 0,
                message: None,
                start: true,
            },
            T0,
        )
        .unwrap();
    let th = Thresholds::default();
    let epochs_seen_by = |hub: &mut mykey_hub::Hub| {
        hub.fleet(&th, UnixMillis(T0.0 + 1000))
            .unwrap()
            .nodes
            .into_iter()
            .find(|r| r.status.node.id == f.shop.id)
            .unwrap()
            .shard_epochs
            .len()
    };
    let data = f.dir.path().join("hub");
    let mut sharing = mykey_hub::Hub::open(&data)
        .unwrap()
        .observing(f.hub.observed().clone());
    let mut alone = mykey_hub::Hub::open(&data).unwrap();
    assert_eq!(epochs_seen_by(&mut sharing), 1);
    assert_eq!(epochs_seen_by(&mut alone), 0);
}
