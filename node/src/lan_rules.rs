//! LAN trust (DESIGN §6), as pure decisions: what a node takes from a LAN
//! peer. Anyone can join a stall's LAN and a node key can leak, so a peer's
//! word counts only as far as the hub's signature backs it:
//!
//! - a right transfer is credited only within the hub-signed `SpendRight`
//!   it carries, for exactly that sender, holder, municipality and right,
//!   less what the same sender already gave this node under that right;
//! - a peer's pending spends count against holders only up to a cap per
//!   signer ([`peer_spend_cap`]).
//!
//! No store and no clock: the caller reads the tally and the limits.

use mykey_sync_proto::{FactBody, NodeId, NodeLimits, Points, RightTransfer};

/// Why a peer's right transfer was not credited: which check, with figures.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RightRefusal {
    /// The transfer is for another municipality than this node's.
    #[error("the right is on points of municipality {got}, not this node's {ours}")]
    OtherMunicipality {
        /// The transfer's municipality.
        got: mykey_sync_proto::MunicipalityCode,
        /// This node's.
        ours: mykey_sync_proto::MunicipalityCode,
    },
    /// A transfer of zero points.
    #[error("the transfer moves zero points")]
    Zero,
    /// The carried grant is not signed by the hub this node trusts.
    #[error("its grant is not signed by the hub ({0})")]
    GrantNotAuthentic(String),
    /// The carried fact is not a spend right.
    #[error("its grant is not a SpendRight fact")]
    NotASpendRight,
    /// The grant is for another node, holder, municipality or right.
    #[error("its grant is for another {what} than the transfer names")]
    GrantMismatch {
        /// Which field differs: `node`, `account`, `municipality` or `right id`.
        what: &'static str,
    },
    /// More than the grant leaves after what the sender already gave here.
    #[error(
        "it gives {asked} under right #{right_id}, which granted the sender {granted}, of which {given} was already given to this node"
    )]
    BeyondGrant {
        /// The right.
        right_id: u64,
        /// What the hub granted the sender.
        granted: Points,
        /// What the sender already gave this node under it.
        given: Points,
        /// What this transfer gives.
        asked: Points,
    },
}

/// Checks a right transfer from `sender` to this node (of municipality
/// `ours`) against the hub-signed grant it carries and the `given` points
/// the same sender already gave this node under the same right. Returns
/// the points to credit.
pub fn check_right_transfer(
    t: &RightTransfer,
    sender: &NodeId,
    ours: mykey_sync_proto::MunicipalityCode,
    hub: &NodeId,
    given: Points,
) -> Result<Points, RightRefusal> {
    if t.municipality != ours {
        return Err(RightRefusal::OtherMunicipality {
            got: t.municipality,
            ours,
        });
    }
    if t.points.is_zero() {
        return Err(RightRefusal::Zero);
    }
    let grant = t
        .grant
        .verify(hub)
        .map_err(|e| RightRefusal::GrantNotAuthentic(e.to_string()))?;
    let FactBody::SpendRight {
        account,
        municipality,
        node,
        right_id,
        points: granted,
    } = &grant.payload().body
    else {
        return Err(RightRefusal::NotASpendRight);
    };
    let mismatch = |what| Err(RightRefusal::GrantMismatch { what });
    if node != sender {
        return mismatch("node");
    }
    if *account != t.account {
        return mismatch("account");
    }
    if *municipality != t.municipality {
        return mismatch("municipality");
    }
    if *right_id != t.right_id {
        return mismatch("right id");
    }
    let within = given
        .checked_add(t.points)
        .is_some_and(|total| total <= *granted);
    if !within {
        return Err(RightRefusal::BeyondGrant {
            right_id: *right_id,
            granted: *granted,
            given,
            asked: t.points,
        });
    }
    Ok(t.points)
}

/// The most a single LAN peer's unconfirmed spends count here, across all
/// holders: this node's own exposure limit (zero before the hub enrolled
/// this node). An honest stall never holds more unconfirmed spend than its
/// exposure limit, and the stalls of one group are enrolled alike, so the
/// cap rarely bites an honest peer (where it does, this node may allow a
/// spend the peer already took: debt bounded by this node's own limits, the
/// risk bounded mode accepts); what it bounds is how much of the holders'
/// balances a lying or leaked peer key can freeze, to what this node could
/// have exposed itself.
pub fn peer_spend_cap(limits: Option<&NodeLimits>) -> Points {
    limits.map_or(Points::ZERO, |l| l.node_exposure_limit)
}

/// Whether a peer's spend of `points` fits under the cap, given what of
/// the same signer already counts here.
pub fn within_peer_cap(counted: Points, points: Points, cap: Points) -> bool {
    counted.checked_add(points).is_some_and(|t| t <= cap)
}

#[cfg(test)]
mod tests {
    use super::*;
    use ed25519_dalek::SigningKey;
    use mykey_sync_proto::{
        AccountId, FactPayload, MunicipalityCode, Scope, SignedFact, UnixMillis,
    };

    fn id(k: &SigningKey) -> NodeId {
        NodeId::from_bytes(k.verifying_key().to_bytes()).unwrap()
    }
    fn p(n: u64) -> Points {
        Points::new(n).unwrap()
    }
    fn m() -> MunicipalityCode {
        MunicipalityCode::parse("131059").unwrap()
    }

    struct Case {
        name: &'static str,
        /// Edits the grant body (or replaces it).
        grant: fn(&mut FactBody),
        /// Sign with a key other than the hub's.
        forged: bool,
        given: u64,
        asked: u64,
        want: Result<u64, &'static str>,
    }

    #[test]
    fn a_transfer_is_credited_only_within_its_hub_signed_grant() {
        let hub = SigningKey::from_bytes(&[1; 32]);
        let sender = SigningKey::from_bytes(&[2; 32]);
        let other = SigningKey::from_bytes(&[3; 32]);
        let other_id = id(&other);
        let cases = [
            Case {
                name: "within the grant",
                grant: |_| {},
                forged: false,
                given: 0,
                asked: 400,
                want: Ok(400),
            },
            Case {
                name: "exactly what is left after earlier gifts",
                grant: |_| {},
                forged: false,
                given: 600,
                asked: 400,
                want: Ok(400),
            },
            Case {
                name: "beyond what is left",
                grant: |_| {},
                forged: false,
                given: 601,
                asked: 400,
                want: Err("already given to this node"),
            },
            Case {
                name: "beyond the grant at once",
                grant: |_| {},
                forged: false,
                given: 0,
                asked: 1_000_000,
                want: Err("already given to this node"),
            },
            Case {
                name: "signed by another key",
                grant: |_| {},
                forged: true,
                given: 0,
                asked: 1,
                want: Err("not signed by the hub"),
            },
            Case {
                name: "granted to another node",
                grant: |b| {
                    if let FactBody::SpendRight { node, .. } = b {
                        *node = NodeId::from_bytes(
                            SigningKey::from_bytes(&[3; 32]).verifying_key().to_bytes(),
                        )
                        .unwrap();
                    }
                },
                forged: false,
                given: 0,
                asked: 1,
                want: Err("node"),
            },
            Case {
                name: "on another holder",
                grant: |b| {
                    if let FactBody::SpendRight { account, .. } = b {
                        *account = AccountId::new(8).unwrap();
                    }
                },
                forged: false,
                given: 0,
                asked: 1,
                want: Err("account"),
            },
            Case {
                name: "in another municipality",
                grant: |b| {
                    if let FactBody::SpendRight { municipality, .. } = b {
                        *municipality = MunicipalityCode::parse("011002").unwrap();
                    }
                },
                forged: false,
                given: 0,
                asked: 1,
                want: Err("municipality"),
            },
            Case {
                name: "another right",
                grant: |b| {
                    if let FactBody::SpendRight { right_id, .. } = b {
                        *right_id = 6;
                    }
                },
                forged: false,
                given: 0,
                asked: 1,
                want: Err("right id"),
            },
            Case {
                name: "not a spend right",
                grant: |b| {
                    *b = FactBody::StrictMode {
                        municipality: MunicipalityCode::parse("131059").unwrap(),
                        strict: true,
                    }
                },
                forged: false,
                given: 0,
                asked: 1,
                want: Err("SpendRight"),
            },
        ];
        assert_ne!(other_id, id(&sender));
        for c in cases {
            let mut body = FactBody::SpendRight {
                account: AccountId::new(7).unwrap(),
                municipality: m(),
                node: id(&sender),
                right_id: 5,
                points: p(1000),
            };
            (c.grant)(&mut body);
            let payload = FactPayload {
                hub_seq: 9,
                issued_at: UnixMillis(1),
                scope: Scope::Node(id(&sender)),
                body,
            };
            let signer = if c.forged { &other } else { &hub };
            let t = RightTransfer {
                account: AccountId::new(7).unwrap(),
                municipality: m(),
                to: other_id,
                points: p(c.asked),
                right_id: 5,
                grant: SignedFact::sign(&payload, signer),
            };
            let got = check_right_transfer(&t, &id(&sender), m(), &id(&hub), p(c.given));
            match (got, c.want) {
                (Ok(n), Ok(want)) => assert_eq!(n.get(), want, "{}", c.name),
                (Err(e), Err(word)) => assert!(e.to_string().contains(word), "{}: {e}", c.name),
                (got, want) => panic!("{}: got {got:?}, want {want:?}", c.name),
            }
        }
    }

    #[test]
    fn a_transfer_of_another_municipality_or_of_nothing_is_refused_before_its_grant() {
        let hub = SigningKey::from_bytes(&[1; 32]);
        let sender = id(&SigningKey::from_bytes(&[2; 32]));
        let junk = SignedFact::from_raw_parts(vec![0], [0; 64]);
        let mut t = RightTransfer {
            account: AccountId::new(7).unwrap(),
            municipality: MunicipalityCode::parse("011002").unwrap(),
            to: sender,
            points: p(5),
            right_id: 5,
            grant: junk,
        };
        assert!(matches!(
            check_right_transfer(&t, &sender, m(), &id(&hub), Points::ZERO),
            Err(RightRefusal::OtherMunicipality { .. })
        ));
        t.municipality = m();
        t.points = Points::ZERO;
        assert_eq!(
            check_right_transfer(&t, &sender, m(), &id(&hub), Points::ZERO),
            Err(RightRefusal::Zero)
        );
        t.points = p(5);
        assert!(matches!(
            check_right_transfer(&t, &sender, m(), &id(&hub), Points::ZERO),
            Err(RightRefusal::GrantNotAuthentic(_))
        ));
    }

    #[test]
    fn the_per_signer_cap_is_this_nodes_exposure_limit() {
        assert_eq!(peer_spend_cap(None), Points::ZERO);
        let l = NodeLimits {
            node: id(&SigningKey::from_bytes(&[2; 32])),
            facility: mykey_sync_proto::FacilityId::parse("stall").unwrap(),
            municipality: m(),
            allowed_ops: vec![],
            per_card_offline_limit: p(3000),
            node_exposure_limit: p(20_000),
            pin_threshold: p(2000),
            valid_until: UnixMillis(9),
        };
        assert_eq!(peer_spend_cap(Some(&l)), p(20_000));
        assert!(within_peer_cap(p(19_000), p(1000), p(20_000)));
        assert!(!within_peer_cap(p(19_000), p(1001), p(20_000)));
        assert!(!within_peer_cap(p(Points::MAX), p(1), p(Points::MAX)));
    }
}
