//! LAN rosters at the hub: issued only for enrolled, unrevoked nodes of the
//! municipality, read back from the fact log, replaced by a later roster,
//! ended with an empty one, and re-issued without a node when it is
//! revoked. The library on a real SQLite hub, then the real `mykey-hub`
//! binary for the commands and their errors.

mod common;

use common::*;
use mykey_hub::lan::LanRosterError;
use mykey_sync_proto::fact::FactBody;
use mykey_sync_proto::{LanGroup, NodeId, OpKind, UnixMillis};

fn group(s: &str) -> LanGroup {
    LanGroup::parse(s).unwrap()
}

/// The LAN rosters `node` receives, in log order: (group, members).
fn rosters_seen(f: &mut Fixture, node: &NodeId) -> Vec<(String, Vec<NodeId>)> {
    let hub_id = f.hub.hub_id();
    f.hub
        .facts_for(node, 0, 2000, u64::MAX)
        .unwrap()
        .facts
        .iter()
        .filter_map(|s| match &s.verify(&hub_id).unwrap().payload().body {
            FactBody::LanRoster { group, members, .. } => {
                Some((group.to_string(), members.members().to_vec()))
            }
            _ => None,
        })
        .collect()
}

#[test]
fn rosters_name_enrolled_nodes_of_one_municipality_and_reach_them_as_facts() {
    let mut f = Fixture::new();
    let stall = Chain::new(31);
    f.hub
        .enrol_node(stall.id, &fid("shop-1"), policy(&[OpKind::Redeem]), T0)
        .unwrap();
    let fest = group("summer-festival");
    let line = f
        .hub
        .set_lan_roster(muni(), &fest, &[stall.id, f.shop.id, stall.id], T0)
        .unwrap();
    let mut want = vec![stall.id, f.shop.id];
    want.sort();
    assert_eq!(line.members, want, "sorted, each once");
    let (shop, library) = (f.shop.id, f.library.id);
    assert_eq!(
        rosters_seen(&mut f, &shop),
        vec![(fest.to_string(), want.clone())]
    );
    // A node of the same municipality not on the roster receives it too (it
    // learns it is not a member); it is a municipality fact.
    assert_eq!(rosters_seen(&mut f, &library).len(), 1);

    // Refusals change nothing.
    let stranger = Chain::new(40).id;
    let other = Chain::new(41);
    f.hub
        .enrol_node(other.id, &fid("shop-9"), policy(&[OpKind::Redeem]), T0)
        .unwrap();
    let revoked = Chain::new(42);
    f.hub
        .enrol_node(revoked.id, &fid("shop-1"), policy(&[OpKind::Redeem]), T0)
        .unwrap();
    f.hub.revoke_node(revoked.id, T0).unwrap();
    let cases: Vec<(Vec<NodeId>, &str)> = vec![
        (vec![f.shop.id, stranger], "is not enrolled"),
        (
            vec![f.shop.id, other.id],
            "is a node of municipality 131016, not 131059",
        ),
        (vec![f.shop.id, revoked.id], "is revoked"),
        (vec![], "no node given"),
    ];
    for (nodes, want_err) in cases {
        let e = f.hub.set_lan_roster(muni(), &fest, &nodes, T0).unwrap_err();
        assert!(e.to_string().contains(want_err), "{e}");
    }
    let many: Vec<NodeId> = (0..101u8).map(|i| Chain::new(100 + i).id).collect();
    let e = f.hub.set_lan_roster(muni(), &fest, &many, T0).unwrap_err();
    assert!(matches!(e, LanRosterError::Roster(_)), "{e}");
    let unknown = mykey_sync_proto::MunicipalityCode::parse("271004").unwrap();
    assert!(matches!(
        f.hub.set_lan_roster(unknown, &fest, &[f.shop.id], T0),
        Err(LanRosterError::UnknownMunicipality(_))
    ));
    let lines = f.hub.lan_rosters(None).unwrap();
    assert_eq!(lines.len(), 1);
    assert_eq!(
        lines[0].members, want,
        "the refused rosters were never issued"
    );

    // A later roster replaces the group's; another group stands beside it.
    let t1 = UnixMillis(T0.0 + 1000);
    f.hub
        .set_lan_roster(muni(), &fest, &[f.shop.id, f.centre.id], t1)
        .unwrap();
    f.hub
        .set_lan_roster(muni(), &group("market"), &[stall.id, f.centre.id], t1)
        .unwrap();
    f.hub
        .set_lan_roster(other_muni(), &group("market"), &[other.id], t1)
        .unwrap();
    let ours = f.hub.lan_rosters(Some(muni())).unwrap();
    let names: Vec<(String, usize)> = ours
        .iter()
        .map(|l| (l.group.to_string(), l.members.len()))
        .collect();
    assert_eq!(
        names,
        vec![("market".into(), 2), ("summer-festival".into(), 2)]
    );
    assert!(ours[1].members.contains(&f.centre.id) && !ours[1].members.contains(&stall.id));
    assert_eq!(f.hub.lan_rosters(None).unwrap().len(), 3);

    // Revoking the centre re-issues both of its rosters without it.
    f.hub.revoke_node(f.centre.id, t1).unwrap();
    let after = f.hub.lan_rosters(Some(muni())).unwrap();
    assert_eq!(after.len(), 2);
    for l in &after {
        assert!(!l.members.contains(&f.centre.id), "{l:?}");
    }
    let seen = rosters_seen(&mut f, &stall.id);
    assert_eq!(
        seen.last().unwrap(),
        &("summer-festival".to_owned(), vec![f.shop.id]),
        "nodes receive the re-issued roster"
    );

    // Ending a group: an empty roster; it is no longer listed.
    f.hub
        .clear_lan_roster(muni(), &group("market"), t1)
        .unwrap();
    let left: Vec<String> = f
        .hub
        .lan_rosters(Some(muni()))
        .unwrap()
        .iter()
        .map(|l| l.group.to_string())
        .collect();
    assert_eq!(left, vec!["summer-festival".to_owned()]);
    assert!(
        rosters_seen(&mut f, &stall.id)
            .last()
            .is_some_and(|(g, m)| g == "market" && m.is_empty())
    );
    for g in ["market", "summer"] {
        let e = f.hub.clear_lan_roster(muni(), &group(g), t1).unwrap_err();
        assert!(matches!(e, LanRosterError::NoSuchGroup { .. }), "{e}");
    }
    f.hub.check_conservation().unwrap();
}

#[test]
fn the_lan_commands_issue_list_and_end_rosters_with_clear_errors() {
    let mut f = Fixture::new();
    let data = f.dir.path().join("hub");
    let (shop, centre) = (f.shop.id.to_string(), f.centre.id.to_string());
    let nodes = format!("{shop},{centre}");
    let out = ok(
        &data,
        &[
            "lan",
            "roster",
            "--municipality",
            "131059",
            "--group",
            "summer-festival",
            "--nodes",
            &nodes,
        ],
    );
    assert!(
        out.contains("LAN roster summer-festival of 131059: 2 nodes"),
        "{out}"
    );
    let list = ok(&data, &["lan", "rosters"]);
    assert!(list.contains("131059 summer-festival: 2 nodes"), "{list}");
    assert!(list.contains(&shop) && list.contains(&centre), "{list}");

    let stranger = Chain::new(44).id.to_string();
    let err = fails(
        &data,
        &[
            "lan",
            "roster",
            "--municipality",
            "131059",
            "--group",
            "summer-festival",
            "--nodes",
            &format!("{shop},{stranger}"),
        ],
    );
    assert!(
        err.contains("is not enrolled") && err.contains("mykey-hub node enrol"),
        "{err}"
    );
    let err = fails(
        &data,
        &[
            "lan",
            "roster",
            "--municipality",
            "131059",
            "--group",
            "Summer Festival",
            "--nodes",
            &shop,
        ],
    );
    assert!(err.contains("LAN group"), "{err}");
    let err = fails(
        &data,
        &[
            "lan",
            "roster",
            "--municipality",
            "131059",
            "--group",
            "summer-festival",
        ],
    );
    assert!(err.contains("--nodes"), "{err}");
    let err = fails(
        &data,
        &[
            "lan",
            "roster",
            "--municipality",
            "131059",
            "--group",
            "autumn",
            "--clear",
        ],
    );
    assert!(err.contains("has no LAN group autumn"), "{err}");

    ok(&data, &["node", "revoke", "--node", &centre]);
    let list = ok(&data, &["lan", "rosters", "--municipality", "131059"]);
    assert!(
        list.contains("summer-festival: 1 nodes") && !list.contains(&centre),
        "{list}"
    );
    let out = ok(
        &data,
        &[
            "lan",
            "roster",
            "--municipality",
            "131059",
            "--group",
            "summer-festival",
            "--clear",
        ],
    );
    assert!(out.contains("ended LAN group summer-festival"), "{out}");
    let list = ok(&data, &["lan", "rosters", "--municipality", "131059"]);
    assert!(list.contains("no LAN rosters"), "{list}");
    assert!(f.hub.lan_rosters(None).unwrap().is_empty());
}
