//! What the hub pays for a node's redeem: the bounds it enrolled, enforced by
//! the side that pays (DESIGN §6).
//!
//! A node, its files and its binary belong to the facility that is paid for
//! the redeems it signs, so nothing a node claims about its limits, balances
//! or the holder's PIN is taken on trust. For each redeem the hub judges,
//! from its own records:
//! - **The card proof.** Above the node's PIN threshold (the threshold the hub
//!   enrolled) the redeem must carry the card's signature over this very
//!   transaction, verified with the public key the hub kept from the card's
//!   certificate. Without it the whole spend is unproven.
//! - **The basis.** The redeem states the confirmed balance it was decided
//!   on. The hub accepts it only if it issued exactly that balance at that
//!   ledger position before the push arrived; the node's own spends on the
//!   wallet posted after that position come off it. What the basis does not
//!   cover is a spend beyond the confirmed balance (an honest node never
//!   makes one: it subtracts its own and its LAN peers' pending spends).
//! - **The at-risk part.** Of each redeem, the larger of what its basis did
//!   not cover and what becomes debt in the hub's order is at risk: the
//!   municipality pays the shop for points no holder had. Per settlement
//!   period (the hub's clock, the municipality's cycle) a node's at-risk
//!   points stay within its exposure limit, and on one card within its
//!   per-card offline limit. A per-contact window would let a node that
//!   connects every minute take its limit every minute; the period cannot
//!   be reset by anything a node does, so what settlement pays a facility
//!   for points no holder had is at most its nodes' exposure limits.
//!
//! Beyond the bound a spend is kept as signed evidence in a quarantine
//! account that settlement never pays ([`crate::quarantine`]): an operator
//! releases (pays) or rejects each item. Honest spends within the bounds are
//! paid as before: the municipality carries that bounded risk.
//!
//! Pure: no storage, no clock. The ingest driver loads a [`SpendBounds`].

use crate::model::NodePolicy;
use mykey_sync_proto::Points;

/// The basis a redeem stated, as the hub checked it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum BasisCheck {
    /// The redeem stated none (the node held no confirmed balance).
    #[default]
    Absent,
    /// The hub issued exactly this balance at the stated position before the push.
    Issued {
        /// Spendable points there.
        balance: Points,
        /// Debt there.
        debt: Points,
    },
    /// The stated balance is not one the hub issued (or not yet, or for
    /// another position): counted as no basis at all.
    NotIssued,
}

/// The card proof of a redeem, as the hub checked it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum ProofCheck {
    /// The redeem carries no proof.
    #[default]
    Absent,
    /// The proof verified with the card's registered key, for this transaction.
    Verified,
    /// The hub holds no public key for the card (registered without its
    /// certificate): a proof cannot be checked, so it counts for nothing.
    NoKey,
    /// The proof does not verify for this transaction with the card's key.
    Invalid(String),
}

/// What the hub knows about one redeem besides the ledger balances.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SpendBounds {
    /// The stated basis, checked.
    pub basis: BasisCheck,
    /// The signer's spends on the wallet posted after the basis position.
    pub own_since_basis: Points,
    /// At-risk points of the signer's spends in the current period.
    pub used_node: Points,
    /// The same on this card.
    pub used_card: Points,
    /// The card proof, checked (only looked at above the PIN threshold).
    pub proof: ProofCheck,
}

/// Why (part of) a spend is beyond the node's bounds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum BeyondBound {
    /// Above the PIN threshold without a card proof that verifies.
    CardProof {
        /// The enrolled threshold.
        threshold: Points,
        /// What was wrong with the proof.
        why: String,
    },
    /// Past the per-card offline limit for the period.
    CardLimit {
        /// The enrolled limit.
        limit: Points,
        /// At-risk points on the card before this spend.
        used: Points,
        /// At-risk points of this spend.
        at_risk: Points,
    },
    /// Past the node exposure limit for the period.
    Exposure {
        /// The enrolled limit.
        limit: Points,
        /// At-risk points at the node before this spend.
        used: Points,
        /// At-risk points of this spend.
        at_risk: Points,
    },
}

impl std::fmt::Display for BeyondBound {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            BeyondBound::CardProof { threshold, why } => {
                write!(
                    f,
                    "above the PIN threshold of {threshold} without a valid card proof ({why})"
                )
            }
            BeyondBound::CardLimit {
                limit,
                used,
                at_risk,
            } => write!(
                f,
                "past the per-card offline limit of {limit} this period ({used} already at risk on the card, {at_risk} more asked)"
            ),
            BeyondBound::Exposure {
                limit,
                used,
                at_risk,
            } => write!(
                f,
                "past the node exposure limit of {limit} this period ({used} already at risk at the node, {at_risk} more asked)"
            ),
        }
    }
}

impl BeyondBound {
    /// Short stable name, for storage, metrics and the API.
    pub fn name(&self) -> &'static str {
        match self {
            BeyondBound::CardProof { .. } => "card-proof",
            BeyondBound::CardLimit { .. } => "card-limit",
            BeyondBound::Exposure { .. } => "exposure-limit",
        }
    }
}

/// The hub's judgement of one redeem.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Judgement {
    /// Points paid to the merchant (escrow, then wallet, then debt).
    pub paid: Points,
    /// Points held in quarantine, and why.
    pub quarantined: Option<(Points, BeyondBound)>,
    /// At-risk points this spend adds to the node's and the card's period use.
    pub at_risk: Points,
    /// The part the stated basis did not cover (reported, part of the at-risk measure).
    pub beyond_basis: Points,
}

/// Judges a redeem of `asked` points by a node under `policy`, with the
/// signer's `escrow` on the wallet and the wallet's `wallet` balance in the
/// hub's order.
pub fn judge_redeem(
    policy: &NodePolicy,
    asked: Points,
    escrow: Points,
    wallet: Points,
    bounds: &SpendBounds,
) -> Judgement {
    if asked > policy.pin_threshold {
        let why = match &bounds.proof {
            ProofCheck::Verified => None,
            ProofCheck::Absent => Some("none was sent".to_owned()),
            ProofCheck::NoKey => Some(
                "the hub holds no certificate key for this card: register its certificate"
                    .to_owned(),
            ),
            ProofCheck::Invalid(e) => Some(e.clone()),
        };
        if let Some(why) = why {
            return Judgement {
                paid: Points::ZERO,
                quarantined: Some((
                    asked,
                    BeyondBound::CardProof {
                        threshold: policy.pin_threshold,
                        why,
                    },
                )),
                at_risk: Points::ZERO,
                beyond_basis: Points::ZERO,
            };
        }
    }
    let rest = asked.saturating_sub(asked.min(escrow));
    let debt_part = rest.saturating_sub(rest.min(wallet));
    let cover = match bounds.basis {
        BasisCheck::Issued { balance, debt } => balance
            .saturating_sub(debt)
            .saturating_sub(bounds.own_since_basis),
        BasisCheck::Absent | BasisCheck::NotIssued => Points::ZERO,
    };
    let beyond_basis = rest.saturating_sub(rest.min(cover));
    let at_risk = beyond_basis.max(debt_part);
    let card_room = policy
        .per_card_offline_limit
        .saturating_sub(bounds.used_card);
    let node_room = policy.node_exposure_limit.saturating_sub(bounds.used_node);
    let room = card_room.min(node_room);
    let counted = at_risk.min(room);
    let over = at_risk.saturating_sub(counted);
    let quarantined = (!over.is_zero()).then(|| {
        let reason = if card_room <= node_room {
            BeyondBound::CardLimit {
                limit: policy.per_card_offline_limit,
                used: bounds.used_card,
                at_risk,
            }
        } else {
            BeyondBound::Exposure {
                limit: policy.node_exposure_limit,
                used: bounds.used_node,
                at_risk,
            }
        };
        (over, reason)
    });
    Judgement {
        paid: asked.saturating_sub(over),
        quarantined,
        at_risk: counted,
        beyond_basis,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use mykey_sync_proto::{OpKind, UnixMillis};
    use proptest::prelude::*;

    fn p(n: u64) -> Points {
        Points::new(n).unwrap()
    }

    fn policy() -> NodePolicy {
        NodePolicy {
            allowed_ops: OpKind::ALL.to_vec(),
            per_card_offline_limit: p(3000),
            node_exposure_limit: p(20_000),
            offline_voucher_cap: p(20_000),
            pin_threshold: p(2000),
            valid_until: UnixMillis(u64::MAX),
        }
    }

    fn bounds(basis: BasisCheck) -> SpendBounds {
        SpendBounds {
            basis,
            own_since_basis: Points::ZERO,
            used_node: Points::ZERO,
            used_card: Points::ZERO,
            proof: ProofCheck::Absent,
        }
    }

    fn issued(balance: u64, debt: u64) -> BasisCheck {
        BasisCheck::Issued {
            balance: p(balance),
            debt: p(debt),
        }
    }

    #[test]
    fn table() {
        // (asked, escrow, wallet, basis, own since, used node, used card, proof) -> (paid, quarantined, at risk)
        type Case = (
            u64,
            u64,
            u64,
            BasisCheck,
            u64,
            u64,
            u64,
            ProofCheck,
            (u64, u64, u64),
        );
        let cases: Vec<Case> = vec![
            // An honest covered spend: paid, nothing at risk.
            (
                500,
                0,
                900,
                issued(900, 0),
                0,
                0,
                0,
                ProofCheck::Absent,
                (500, 0, 0),
            ),
            // The wallet ran dry meanwhile (another node spent): debt within the limits, paid.
            (
                500,
                0,
                200,
                issued(900, 0),
                0,
                0,
                0,
                ProofCheck::Absent,
                (500, 0, 300),
            ),
            // The merchant's attack: no basis, no proof, 5,000,000 pt.
            (
                5_000_000,
                0,
                0,
                BasisCheck::NotIssued,
                0,
                0,
                0,
                ProofCheck::Absent,
                (0, 5_000_000, 0),
            ),
            // Below the threshold, beyond the basis: at risk up to the card limit, the rest held.
            (
                2000,
                0,
                0,
                issued(0, 0),
                0,
                0,
                2000,
                ProofCheck::Absent,
                (1000, 1000, 1000),
            ),
            // A forged basis counts as none.
            (
                2000,
                0,
                5000,
                BasisCheck::NotIssued,
                0,
                0,
                0,
                ProofCheck::Absent,
                (2000, 0, 2000),
            ),
            // Own spends since the basis come off it.
            (
                800,
                0,
                0,
                issued(1000, 0),
                500,
                0,
                0,
                ProofCheck::Absent,
                (800, 0, 800),
            ),
            // Exposure binds before the card limit.
            (
                2000,
                0,
                0,
                issued(0, 0),
                0,
                19_000,
                0,
                ProofCheck::Absent,
                (1000, 1000, 1000),
            ),
            // A verified proof above the threshold, covered.
            (
                2500,
                0,
                9000,
                issued(9000, 0),
                0,
                0,
                0,
                ProofCheck::Verified,
                (2500, 0, 0),
            ),
            // A proof that does not verify: all held.
            (
                2500,
                0,
                9000,
                issued(9000, 0),
                0,
                0,
                0,
                ProofCheck::Invalid("x".into()),
                (0, 2500, 0),
            ),
            (
                2500,
                0,
                9000,
                issued(9000, 0),
                0,
                0,
                0,
                ProofCheck::NoKey,
                (0, 2500, 0),
            ),
            // Strict: the signer's escrow pays first and is not at risk.
            (
                700,
                700,
                0,
                issued(0, 0),
                0,
                0,
                0,
                ProofCheck::Absent,
                (700, 0, 0),
            ),
            // A debt shown in the basis leaves nothing covered.
            (
                100,
                0,
                0,
                issued(0, 300),
                0,
                0,
                0,
                ProofCheck::Absent,
                (100, 0, 100),
            ),
        ];
        for (i, (asked, escrow, wallet, basis, own, un, uc, proof, want)) in
            cases.into_iter().enumerate()
        {
            let b = SpendBounds {
                basis,
                own_since_basis: p(own),
                used_node: p(un),
                used_card: p(uc),
                proof,
            };
            let j = judge_redeem(&policy(), p(asked), p(escrow), p(wallet), &b);
            let got = (
                j.paid.get(),
                j.quarantined.as_ref().map_or(0, |q| q.0.get()),
                j.at_risk.get(),
            );
            assert_eq!(got, want, "case {i}: {j:?}");
        }
    }

    #[test]
    fn reasons_name_the_binding_rule() {
        let j = judge_redeem(&policy(), p(5000), p(0), p(0), &bounds(issued(0, 0)));
        assert!(matches!(
            j.quarantined,
            Some((_, BeyondBound::CardProof { .. }))
        ));
        let j = judge_redeem(&policy(), p(2000), p(0), p(0), &{
            let mut b = bounds(issued(0, 0));
            b.used_card = p(2500);
            b
        });
        let (q, why) = j.quarantined.unwrap();
        assert_eq!(q, p(1500));
        assert!(
            why.to_string().contains("per-card offline limit of 3000"),
            "{why}"
        );
        assert_eq!(why.name(), "card-limit");
    }

    proptest! {
        /// Whatever a node claims, the paid at-risk points never exceed the
        /// room left under either limit, quarantine and payment add up to the
        /// spend, and an honest spend (covered by a genuine basis and the
        /// wallet, with a proof above the threshold) is paid in full.
        #[test]
        fn never_pays_past_the_bounds(
            asked in 0u64..10_000_000, escrow in 0u64..5000, wallet in 0u64..50_000,
            basis_kind in 0u8..3, bal in 0u64..50_000, debt in 0u64..5000, own in 0u64..50_000,
            used_node in 0u64..30_000, used_card in 0u64..5000, proof_kind in 0u8..4,
        ) {
            let basis = match basis_kind { 0 => BasisCheck::Absent, 1 => BasisCheck::NotIssued, _ => issued(bal, debt) };
            let proof = match proof_kind { 0 => ProofCheck::Absent, 1 => ProofCheck::Verified, 2 => ProofCheck::NoKey, _ => ProofCheck::Invalid("bad".into()) };
            let b = SpendBounds { basis, own_since_basis: p(own), used_node: p(used_node), used_card: p(used_card), proof: proof.clone() };
            let pol = policy();
            let j = judge_redeem(&pol, p(asked), p(escrow), p(wallet), &b);
            let q = j.quarantined.as_ref().map_or(0, |q| q.0.get());
            prop_assert_eq!(j.paid.get() + q, asked);
            let room = pol.per_card_offline_limit.saturating_sub(p(used_card)).min(pol.node_exposure_limit.saturating_sub(p(used_node)));
            prop_assert!(j.at_risk <= room);
            // What is paid beyond the escrow and the wallet (debt) is counted at risk.
            let rest = j.paid.saturating_sub(j.paid.min(p(escrow)));
            let debt_paid = rest.saturating_sub(rest.min(p(wallet)));
            prop_assert!(debt_paid <= j.at_risk, "{:?}", j);
            if asked > pol.pin_threshold.get() && proof != ProofCheck::Verified {
                prop_assert_eq!(j.paid, Points::ZERO);
            }
            let honest_cover = matches!(basis, BasisCheck::Issued { .. })
                && asked <= escrow + bal.saturating_sub(debt).saturating_sub(own)
                && asked <= escrow + wallet;
            let proved = asked <= pol.pin_threshold.get() || proof == ProofCheck::Verified;
            if honest_cover && proved {
                prop_assert_eq!(j.paid.get(), asked);
                prop_assert_eq!(j.at_risk, Points::ZERO);
            }
        }
    }
}
