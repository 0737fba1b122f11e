//! The status history against the real SQLite file: the minute's timed job
//! (`Hub::run_ticks`) samples every node once per five-minute slot from the
//! hub's own records (links, the backlog a Hello reported, refusals), the
//! samples survive closing and reopening the hub, and a week later they are
//! pruned.
#![allow(clippy::unwrap_used)]

mod common;

use common::*;
use mykey_hub::Hub;
use mykey_hub::status::history::{KEEP_MS, SLOT_MS};
use mykey_hub::ticks::Due;
use mykey_sync_proto::wire::{Hello, RejectReason};
use mykey_sync_proto::{NodeId, UnixMillis};

const MIN: u64 = 60_000;

fn hello(node: NodeId, at: UnixMillis, last_seq: u64) -> Hello {
    Hello {
        node,
        node_time: at,
        last_seq,
        fact_cursor: 1_000_000,
        software: "mykey-node/0.1.0".into(),
    }
}

/// The minute's jobs at every minute of `[from, to)`, `live` up.
fn minutes(hub: &mut Hub, from: UnixMillis, to: UnixMillis, live: &[NodeId]) {
    let due = Due {
        minute: true,
        economy: false,
    };
    let mut t = from;
    while t < to {
        let r = hub.run_ticks(due, live, t);
        assert!(r.failed.is_empty(), "{:?}", r.failed);
        t = t.plus_ms(MIN);
    }
}

#[test]
fn the_history_is_sampled_once_per_slot_survives_a_restart_and_is_pruned_after_a_week() {
    let mut f = Fixture::new();
    // A slot boundary an hour after T0.
    let start = UnixMillis((T0.0 / SLOT_MS + 12) * SLOT_MS);
    let lib = f.library.id;
    // The library comes up with three transactions the hub has not seen.
    f.hub
        .try_open(&hello(lib, start, 3), start)
        .unwrap()
        .unwrap();
    minutes(&mut f.hub, start, start.plus_ms(31 * MIN), &[lib]);
    // The shop says Hello and one of its spends is refused.
    let t = start.plus_ms(31 * MIN);
    f.hub.try_open(&hello(f.shop.id, t, 1), t).unwrap().unwrap();
    let bogus = mykey_sync_proto::AccountId::new(999).unwrap();
    let tx = f.shop.sign(redeem(bogus, 9, 10));
    let r = f.hub.try_ingest(&f.shop.id, vec![tx], t).unwrap();
    assert!(matches!(
        rejection(&outcomes(&r)[0]),
        Some(RejectReason::UnknownCard)
    ));
    minutes(&mut f.hub, t, start.plus_ms(60 * MIN), &[lib, f.shop.id]);
    // The library goes away for half an hour.
    let gone = start.plus_ms(60 * MIN);
    f.hub.note_link_closed(&lib, gone).unwrap();
    minutes(&mut f.hub, gone, start.plus_ms(91 * MIN), &[f.shop.id]);

    let all = |hub: &mut Hub| {
        hub.status_history(None, UnixMillis(0), UnixMillis(u64::MAX))
            .unwrap()
    };
    let history = all(&mut f.hub);
    let of = |id: NodeId| -> Vec<_> { history.iter().filter(|s| s.node == id).cloned().collect() };
    // The slot before the first minute's job, then slots 0..17 of the hour
    // and a half (the 18th is still running), one sample each, five minutes
    // apart.
    let library = of(lib);
    assert_eq!(library.len(), 19, "{library:#?}");
    assert_eq!(library[0].slot.0, start.0 - SLOT_MS);
    assert_eq!(library[0].up_permille, 0);
    let library = &library[1..];
    for (k, s) in library.iter().enumerate() {
        assert_eq!(s.slot, start.plus_ms(k as u64 * SLOT_MS));
        assert_eq!(u64::from(s.span_ms), SLOT_MS);
    }
    assert!(
        library[..12].iter().all(|s| s.up_permille == 1000),
        "{library:#?}"
    );
    assert!(
        library[12..].iter().all(|s| s.up_permille == 0),
        "{library:#?}"
    );
    assert!(library.iter().all(|s| s.unconfirmed == 3));
    // Sampled at the slot's end: the backlog reported at its start had
    // waited five minutes.
    assert_eq!(library[0].oldest_unconfirmed_ms, Some(SLOT_MS));
    assert_eq!(library[0].clock_skew_ms, Some(0));
    // The shop's refusal is counted in the slot it happened in, once.
    let shop = of(f.shop.id);
    let refused: Vec<(UnixMillis, u64)> = shop
        .iter()
        .filter(|s| s.refusals > 0)
        .map(|s| (s.slot, s.refusals))
        .collect();
    assert_eq!(refused, [(start.plus_ms(30 * MIN), 1)]);
    assert_eq!(shop.last().unwrap().refusals_total, 1);
    // A node never seen is sampled as down, with nothing reported.
    let centre = of(f.centre.id);
    assert_eq!(centre.len(), 19);
    assert!(
        centre
            .iter()
            .all(|s| s.up_permille == 0 && s.clock_skew_ms.is_none())
    );

    // Closed and opened again, as a restarted `serve` does: the same history,
    // and the next minute adds nothing to a slot already sampled.
    let dir = f.dir.path().join("hub");
    f.hub = Hub::open(&dir).unwrap();
    assert_eq!(all(&mut f.hub), history);
    minutes(
        &mut f.hub,
        start.plus_ms(91 * MIN),
        start.plus_ms(94 * MIN),
        &[],
    );
    assert_eq!(all(&mut f.hub), history);

    // A week and a day later: everything older than a week is gone.
    let later = start.plus_ms(KEEP_MS + 24 * 60 * MIN);
    minutes(&mut f.hub, later, later.plus_ms(MIN), &[]);
    let left = all(&mut f.hub);
    assert!(!left.is_empty());
    assert!(
        left.iter().all(|s| s.slot.0 >= later.0 - KEEP_MS),
        "{left:#?}"
    );
}

#[test]
fn the_history_api_answers_as_the_node_api_does_to_whom_may_see_it() {
    use mykey_hub::access::{Role, Scope};
    let mut f = Fixture::new();
    let now = mykey_net::unix_now();
    let lib = f.library.id;
    f.hub.try_open(&hello(lib, now, 2), now).unwrap().unwrap();
    assert!(f.hub.sample_history(now).unwrap() > 0);
    let admin = f.api_token();
    let bunkyo = f.token_for("staff-bunkyo", Role::Staff(muni()), Scope::Staff);
    let chiyoda = f.token_for("staff-chiyoda", Role::Staff(other_muni()), Scope::Staff);
    let addr = serve(&f);
    let path = format!("/api/nodes/{lib}/history");
    let (code, body) = request(addr, "GET", &path, &[], b"");
    assert_eq!(code, 401, "{body}");
    for token in [&admin, &bunkyo] {
        let (code, body) = request(addr, "GET", &path, &bearer(token), b"");
        assert_eq!(code, 200, "{body}");
        let v: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(v["window"], "24h");
        let samples = v["samples"].as_array().unwrap();
        assert_eq!(samples.len(), 1, "{v}");
        assert_eq!(samples[0]["unconfirmed"], 2, "{v}");
    }
    // Another municipality's staff: as if the node did not exist.
    let (code, body) = request(addr, "GET", &path, &bearer(&chiyoda), b"");
    assert_eq!(code, 404, "{body}");
    let (code, body) = request(
        addr,
        "GET",
        &format!("{path}?window=30d"),
        &bearer(&admin),
        b"",
    );
    assert_eq!(code, 400, "{body}");
    assert!(body.contains("window=24h or window=7d"), "{body}");
}
