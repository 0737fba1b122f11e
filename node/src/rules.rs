//! The offline rules (DESIGN §6): pure decisions over what the node knows.
//! No clock, no store: the caller gathers a [`SpendView`] and passes `now`.

use crate::card::VerifiedCardProof;
use mykey_sync_proto::{CardStatus, NodeLimits, OpKind, Points, UnixMillis};

/// What the node knows about a spend it is asked to make.
#[derive(Debug, Clone, Default)]
pub struct SpendView {
    /// Confirmed balance from the hub.
    pub confirmed_balance: Points,
    /// Confirmed debt from the hub (offline overdraft not yet recovered).
    pub confirmed_debt: Points,
    /// Every pending spend the node knows of on this account: its own
    /// unconfirmed redeems and those of LAN peers merged into its cache.
    pub pending_on_account: Points,
    /// This card's unconfirmed spend at this node.
    pub card_unconfirmed_here: Points,
    /// All unconfirmed spend at this node.
    pub node_exposure: Points,
    /// Strict mode: this node's remaining spend right on the account, which
    /// replaces the balance check (the hub reserved exactly these points).
    pub right: Option<Points>,
}

/// Why a spend was declined: which rule, with the figures.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Decline {
    /// The amount was zero.
    #[error("nothing to redeem: the amount is zero")]
    ZeroAmount,
    /// The node has no certificate from the hub yet.
    #[error(
        "this node has no limits from the hub yet: connect it to the hub once before taking points"
    )]
    NotEnrolled,
    /// The node's certificate expired.
    #[error("this node's certificate from the hub expired: reconnect to the hub to renew it")]
    CertificateExpired,
    /// The node key was revoked.
    #[error("this node's key is revoked: contact the hub operator")]
    NodeRevoked,
    /// The facility may not perform this operation.
    #[error("this facility may not {0}")]
    NotAllowed(&'static str),
    /// The card is on the deny list.
    #[error("card is suspended (reported lost): the holder must go to the municipal counter")]
    CardSuspended,
    /// The card was replaced by a renewed one.
    #[error("card was replaced by a renewed card: use the new card")]
    CardSuperseded,
    /// The PIN proof is needed above the threshold.
    #[error("spends above {threshold} need the card PIN")]
    PinRequired {
        /// The threshold.
        threshold: Points,
    },
    /// Confirmed balance minus pending spends is too low.
    #[error(
        "insufficient points: confirmed {confirmed}, debt {debt}, pending {pending}, available {available}, asked {asked}"
    )]
    InsufficientBalance {
        /// Confirmed balance.
        confirmed: Points,
        /// Confirmed debt.
        debt: Points,
        /// Pending spends known.
        pending: Points,
        /// What is left.
        available: Points,
        /// What was asked.
        asked: Points,
    },
    /// The card's offline limit at this node would be exceeded.
    #[error(
        "card offline limit at this node: limit {limit}, already unconfirmed {used}, asked {asked}"
    )]
    CardOfflineLimit {
        /// The limit.
        limit: Points,
        /// Already used since the last confirmation.
        used: Points,
        /// Asked.
        asked: Points,
    },
    /// Strict mode: the node's right on the holder's points is too small.
    #[error(
        "strict mode: this node may spend {right} of the holder's points, asked {asked}; another stall may hold more (it can give part of its right on the LAN), or the hub can grant more"
    )]
    NoRight {
        /// The node's remaining right.
        right: Points,
        /// Asked.
        asked: Points,
    },
    /// The node's exposure limit would be exceeded.
    #[error("node exposure limit: limit {limit}, already unconfirmed {used}, asked {asked}")]
    NodeExposureLimit {
        /// The limit.
        limit: Points,
        /// Unconfirmed at this node.
        used: Points,
        /// Asked.
        asked: Points,
    },
}

/// Checks the node may perform `op` at all.
pub fn check_node(
    limits: Option<&NodeLimits>,
    revoked: bool,
    op: OpKind,
    now: UnixMillis,
) -> Result<&NodeLimits, Decline> {
    if revoked {
        return Err(Decline::NodeRevoked);
    }
    let limits = limits.ok_or(Decline::NotEnrolled)?;
    if now > limits.valid_until {
        return Err(Decline::CertificateExpired);
    }
    if !limits.allowed_ops.contains(&op) {
        return Err(Decline::NotAllowed(op.name()));
    }
    Ok(limits)
}

/// Checks a card may be used for value.
pub fn check_card(status: CardStatus) -> Result<(), Decline> {
    match status {
        CardStatus::Active => Ok(()),
        CardStatus::Suspended => Err(Decline::CardSuspended),
        CardStatus::Superseded => Err(Decline::CardSuperseded),
    }
}

/// Decides a spend of `asked` points. Order matters only for which reason is
/// shown first; every rule must pass.
pub fn decide_redeem(
    limits: &NodeLimits,
    card: CardStatus,
    view: &SpendView,
    asked: Points,
    proof: Option<&VerifiedCardProof>,
) -> Result<(), Decline> {
    if asked.is_zero() {
        return Err(Decline::ZeroAmount);
    }
    check_card(card)?;
    if asked > limits.pin_threshold && proof.is_none() {
        return Err(Decline::PinRequired {
            threshold: limits.pin_threshold,
        });
    }
    let available = view
        .confirmed_balance
        .saturating_sub(view.confirmed_debt)
        .saturating_sub(view.pending_on_account);
    if let Some(right) = view.right {
        if asked > right {
            return Err(Decline::NoRight { right, asked });
        }
    } else if asked > available {
        return Err(Decline::InsufficientBalance {
            confirmed: view.confirmed_balance,
            debt: view.confirmed_debt,
            pending: view.pending_on_account,
            available,
            asked,
        });
    }
    let within = |used: Points, limit: Points| used.checked_add(asked).is_some_and(|t| t <= limit);
    if !within(view.card_unconfirmed_here, limits.per_card_offline_limit) {
        return Err(Decline::CardOfflineLimit {
            limit: limits.per_card_offline_limit,
            used: view.card_unconfirmed_here,
            asked,
        });
    }
    if !within(view.node_exposure, limits.node_exposure_limit) {
        return Err(Decline::NodeExposureLimit {
            limit: limits.node_exposure_limit,
            used: view.node_exposure,
            asked,
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use mykey_sync_proto::{FacilityId, MunicipalityCode, NodeId};

    fn p(n: u64) -> Points {
        Points::new(n).unwrap()
    }

    fn test_proof() -> VerifiedCardProof {
        VerifiedCardProof::for_rules_tests()
    }

    fn limits() -> NodeLimits {
        NodeLimits {
            node: NodeId::from_bytes(
                ed25519_dalek::SigningKey::from_bytes(&[1; 32])
                    .verifying_key()
                    .to_bytes(),
            )
            .unwrap(),
            facility: FacilityId::parse("shop").unwrap(),
            municipality: MunicipalityCode::parse("131059").unwrap(),
            allowed_ops: vec![OpKind::Redeem],
            per_card_offline_limit: p(3000),
            node_exposure_limit: p(10_000),
            pin_threshold: p(1000),
            valid_until: UnixMillis(100),
        }
    }

    #[test]
    fn table() {
        let view = |bal, debt, pend, card, node| SpendView {
            confirmed_balance: p(bal),
            confirmed_debt: p(debt),
            pending_on_account: p(pend),
            card_unconfirmed_here: p(card),
            node_exposure: p(node),
            right: None,
        };
        let l = limits();
        use CardStatus::*;
        let cases: Vec<(SpendView, CardStatus, u64, bool, Option<&str>)> = vec![
            (view(5000, 0, 0, 0, 0), Active, 500, false, None),
            (view(5000, 0, 0, 0, 0), Active, 0, false, Some("zero")),
            (
                view(5000, 0, 0, 0, 0),
                Suspended,
                500,
                false,
                Some("suspended"),
            ),
            (
                view(5000, 0, 0, 0, 0),
                Superseded,
                500,
                false,
                Some("replaced"),
            ),
            (view(5000, 0, 0, 0, 0), Active, 1500, false, Some("PIN")),
            (view(5000, 0, 0, 0, 0), Active, 1500, true, None),
            (
                view(5000, 0, 4000, 0, 0),
                Active,
                1500,
                true,
                Some("insufficient"),
            ),
            (
                view(5000, 4000, 0, 0, 0),
                Active,
                1500,
                true,
                Some("insufficient"),
            ),
            (
                view(9000, 0, 0, 2000, 2000),
                Active,
                1001,
                true,
                Some("card offline"),
            ),
            (view(9000, 0, 0, 2000, 2000), Active, 1000, true, None),
            (
                view(9000, 0, 0, 0, 9500),
                Active,
                501,
                false,
                Some("exposure"),
            ),
        ];
        for (i, (v, st, asked, proof, want)) in cases.into_iter().enumerate() {
            let pr = test_proof();
            let got = decide_redeem(&l, st, &v, p(asked), proof.then_some(&pr));
            match want {
                None => assert!(got.is_ok(), "case {i}: {got:?}"),
                Some(w) => {
                    let msg = got
                        .expect_err(&format!("case {i} should decline"))
                        .to_string();
                    assert!(msg.contains(w), "case {i}: {msg}");
                }
            }
        }
    }

    #[test]
    fn strict_mode_spends_only_within_the_right() {
        let l = limits();
        let view = |right: u64, card: u64| SpendView {
            // The wallet's balance is reserved for rights: zero here.
            confirmed_balance: p(0),
            right: Some(p(right)),
            card_unconfirmed_here: p(card),
            ..SpendView::default()
        };
        assert!(decide_redeem(&l, CardStatus::Active, &view(800, 0), p(800), None).is_ok());
        assert_eq!(
            decide_redeem(
                &l,
                CardStatus::Active,
                &view(800, 0),
                p(801),
                Some(&test_proof())
            ),
            Err(Decline::NoRight {
                right: p(800),
                asked: p(801)
            })
        );
        // The bounded-risk limits still apply on top of the right.
        let msg = decide_redeem(&l, CardStatus::Active, &view(9000, 2500), p(600), None)
            .unwrap_err()
            .to_string();
        assert!(msg.contains("card offline limit"), "{msg}");
        // Without a right (bounded mode) the zero balance declines.
        let bounded = SpendView {
            right: None,
            ..view(800, 0)
        };
        assert!(matches!(
            decide_redeem(&l, CardStatus::Active, &bounded, p(1), None),
            Err(Decline::InsufficientBalance { .. })
        ));
    }

    #[test]
    fn node_checks() {
        let l = limits();
        assert_eq!(
            check_node(None, false, OpKind::Redeem, UnixMillis(0)).unwrap_err(),
            Decline::NotEnrolled
        );
        assert!(check_node(Some(&l), false, OpKind::Redeem, UnixMillis(50)).is_ok());
        assert_eq!(
            check_node(Some(&l), false, OpKind::Grant, UnixMillis(50)).unwrap_err(),
            Decline::NotAllowed("grant")
        );
        assert_eq!(
            check_node(Some(&l), false, OpKind::Redeem, UnixMillis(101)).unwrap_err(),
            Decline::CertificateExpired
        );
        assert_eq!(
            check_node(Some(&l), true, OpKind::Redeem, UnixMillis(50)).unwrap_err(),
            Decline::NodeRevoked
        );
    }
}
