//! Peers that should not be served: a key the hub never enrolled, and an
//! enrolled key that sends garbage, another protocol version, oversized and
//! truncated frames. Each is refused with a reason (and logged by the hub);
//! the hub keeps serving an honest node throughout.

mod net_common;

use futures::StreamExt;
use libp2p::request_response::{Event, Message};
use libp2p::swarm::SwarmEvent;
use libp2p::swarm::dial_opts::DialOpts;
use libp2p::{Multiaddr, PeerId, Swarm};
use mykey_net::{BehaviourEvent as BaseEvent, Frame, peer_id_of};
use mykey_node::NodeKey;
use mykey_node::net::transport::{Behaviour, BehaviourEvent, TransportConfig, build_swarm};
use mykey_sync_proto::UnixMillis;
use mykey_sync_proto::wire::{Hello, Refusal, Request, Response};
use net_common::*;
use std::time::Duration;

#[test]
fn unenrolled_node_is_refused_and_told_why() {
    let w = World::create(1, 1);
    let stranger = w.stranger();
    let (hub, addr) = start_hub(&w.hub_dir, 0);
    let honest = start_node("honest", &w.nodes[0], Some(&addr), &[]);
    let intruder = start_node("stranger", &stranger, Some(&addr), &[]);
    wait_until(
        "the hub to log the refusal",
        Duration::from_secs(30),
        || {
            hub.stderr()
                .contains("dropping peer: this node's key is not enrolled")
        },
    );
    wait_until("the stranger to hear why", Duration::from_secs(30), || {
        intruder.stderr().contains("the hub refused this node")
    });
    wait_until("the honest node to sync", Duration::from_secs(30), || {
        caught_up(&w.nodes[0])
    });
    assert_eq!(
        intruder
            .stderr()
            .matches("the hub refused this node")
            .count(),
        1,
        "a refused node waits before it tries again"
    );
    assert!(
        status(&stranger)["facility"].is_null(),
        "nothing reached the stranger"
    );
    drop(honest);
}

/// Sends one frame to the hub and waits for the answer.
async fn ask(swarm: &mut Swarm<Behaviour>, hub: PeerId, frame: Frame) -> Result<Response, String> {
    let id = swarm.behaviour_mut().base.sync.send_request(&hub, frame);
    let wait = async {
        loop {
            match swarm.select_next_some().await {
                SwarmEvent::Behaviour(BehaviourEvent::Base(BaseEvent::Sync(Event::Message {
                    message:
                        Message::Response {
                            request_id,
                            response,
                        },
                    ..
                }))) if request_id == id => {
                    let bytes = response.into_message()?;
                    return Response::decode(&bytes).map_err(|e| e.to_string());
                }
                SwarmEvent::Behaviour(BehaviourEvent::Base(BaseEvent::Sync(
                    Event::OutboundFailure {
                        request_id, error, ..
                    },
                ))) if request_id == id => return Err(error.to_string()),
                _ => {}
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(20), wait)
        .await
        .map_err(|_| "no answer within 20 s".to_owned())?
}

fn refusal(r: Result<Response, String>) -> Refusal {
    match r {
        Ok(Response::Refused(r)) => r,
        other => panic!("expected a refusal, got {other:?}"),
    }
}

#[tokio::test]
async fn garbage_oversized_truncated_and_wrong_version_are_refused_while_others_are_served() {
    let w = World::create(2, 1);
    std::fs::write(w.hub_dir.join("hub.toml"), "max_bad_frames = 20\n").unwrap();
    let (hub_proc, addr) = start_hub(&w.hub_dir, 0);
    let honest_dir = w.nodes[0].clone();
    let _honest = start_node("honest", &honest_dir, Some(&addr), &[]);

    // The attacker holds an enrolled key (node 1): the transport lets it in.
    let key = NodeKey::load_or_create(&w.nodes[1].join("node.key")).unwrap();
    let mut swarm =
        build_swarm(key.signing_key(), "attacker", &TransportConfig::default()).unwrap();
    let hub = peer_id_of(&w.hub_id);
    let mut base: Multiaddr = addr.parse().unwrap();
    base.pop();
    swarm
        .dial(DialOpts::peer_id(hub).addresses(vec![base]).build())
        .unwrap();

    // Another protocol version.
    let mut v9 = Request::PullFacts(mykey_sync_proto::wire::PullFacts {
        after: 0,
        max: 1,
        upto: 0,
    })
    .encode();
    v9[0..2].copy_from_slice(&9u16.to_be_bytes());
    assert!(matches!(
        refusal(ask(&mut swarm, hub, Frame::Message(v9)).await),
        Refusal::Version { got: 9, .. }
    ));
    // Garbage after a valid version.
    let r = refusal(
        ask(
            &mut swarm,
            hub,
            Frame::Message(
                [
                    &mykey_sync_proto::wire::PROTOCOL_VERSION.to_be_bytes()[..],
                    &[0xff, 0xfe, 0x00, 0x42],
                ]
                .concat(),
            ),
        )
        .await,
    );
    assert!(matches!(r, Refusal::Protocol(_)), "{r:?}");
    // Too short to hold a version.
    let r = refusal(ask(&mut swarm, hub, Frame::Message(vec![7])).await);
    assert!(matches!(r, Refusal::Protocol(_)), "{r:?}");
    // A length prefix far above the cap: refused without reading the body.
    let mut huge = 0xffff_fff0u32.to_be_bytes().to_vec();
    huge.extend([0u8; 64]);
    let r = refusal(ask(&mut swarm, hub, Frame::Raw(huge)).await);
    assert!(
        matches!(&r, Refusal::Protocol(t) if t.contains("above the limit")),
        "{r:?}"
    );
    // A frame that ends early.
    let r = refusal(ask(&mut swarm, hub, Frame::Raw(vec![0, 0, 0, 100, 0, 1, 2])).await);
    assert!(
        matches!(&r, Refusal::Protocol(t) if t.contains("cut short")),
        "{r:?}"
    );
    // A Hello that names another node than the authenticated key.
    let hello = Request::Hello(Hello {
        node: w.node_ids[0],
        node_time: UnixMillis(0),
        last_seq: 0,
        fact_cursor: 0,
        software: "attacker".into(),
    });
    let r = refusal(ask(&mut swarm, hub, Frame::Message(hello.encode())).await);
    assert!(
        matches!(&r, Refusal::Protocol(t) if t.contains("authenticated")),
        "{r:?}"
    );
    // A request before Hello.
    let pull = Request::PullFacts(mykey_sync_proto::wire::PullFacts {
        after: 0,
        max: 10,
        upto: 0,
    });
    let r = refusal(ask(&mut swarm, hub, Frame::Message(pull.encode())).await);
    assert!(
        matches!(&r, Refusal::Protocol(t) if t.contains("Hello")),
        "{r:?}"
    );

    // The hub logged the reasons and still serves the honest node.
    let log = hub_proc.stderr();
    assert!(log.contains("refused a message"), "{log}");
    wait_until(
        "the honest node's first sync",
        Duration::from_secs(30),
        || caught_up(&honest_dir),
    );
    let (card, _) = &w.holders[0];
    let out = node_cli(
        &honest_dir,
        &["redeem", "--card", &card_arg(card), "--points", "5"],
    );
    assert!(out.starts_with("redeemed"), "{out}");
    wait_until(
        "the honest node's redeem to be receipted",
        Duration::from_secs(30),
        || caught_up(&honest_dir),
    );
}
