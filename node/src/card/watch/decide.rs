//! The pure step of a tap: what to do next from what is known so far.
//!
//! [`decide`] reads no clock, card or console; [`super::console`] gathers the
//! facts it asks for and calls it again until it says [`Next::Done`].

use mykey_sync_proto::{
    FacilityId, MunicipalityCode, MyKeyId, NodeLimits, OpKind, Points, TxId, UnixMillis,
};

use crate::node::Lookup;
use crate::rules::Decline;
use crate::store::NumberRow;

/// What the facility does with a tap.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Action {
    /// Library counter: show the holder's card number at this facility.
    Lookup,
    /// Shop: ask the amount, PIN above the threshold, redeem points.
    Redeem,
}

impl Action {
    /// The facility's usual action: a shop where the hub allows redeeming,
    /// else a lookup counter.
    pub fn default_for(limits: Option<&NodeLimits>) -> Action {
        match limits {
            Some(l) if l.allowed_ops.contains(&OpKind::Redeem) => Action::Redeem,
            _ => Action::Lookup,
        }
    }
}

/// The amount for a sale, as far as it is known.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Amount {
    /// Not asked yet.
    NotAsked,
    /// The counter gave no amount (empty line, end of input): no sale.
    NoSale,
    /// This many points.
    Given(Points),
}

/// The PIN proof, as far as it went.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Proof {
    /// Not run (yet).
    NotTried,
    /// PIN verified, signature checked against a trusted certificate.
    Ok,
    /// Wrong PIN; the card counts down.
    WrongPin {
        /// Tries left before the card locks.
        tries_left: u8,
    },
    /// The card's PIN is locked.
    Locked,
    /// The card's certificate does not chain to a trusted JPKI CA (or none is
    /// configured), so a PIN proof from it would prove nothing.
    Untrusted(String),
    /// No well-formed PIN was entered; nothing was sent to the card.
    NotEntered,
}

/// Everything known about one tap: the input of [`decide`].
#[derive(Debug, Clone, Copy)]
pub struct TapFacts<'a> {
    /// What the facility does.
    pub action: Action,
    /// What the card resolved to in the cache.
    pub lookup: &'a Lookup,
    /// The hub-given limits, if the node has them.
    pub limits: Option<&'a NodeLimits>,
    /// The sale amount.
    pub amount: Amount,
    /// The PIN proof.
    pub proof: &'a Proof,
}

/// What to do next with a tap.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Next {
    /// Nothing more: show this.
    Done(Outcome),
    /// Ask the counter for the amount.
    AskAmount {
        /// The holder, to show while asking.
        my_key_id: MyKeyId,
    },
    /// Run the PIN proof before redeeming this amount.
    ProvePin {
        /// The amount, above the threshold.
        amount: Points,
        /// The threshold it is above.
        threshold: Points,
    },
    /// Ask the node to redeem (its offline rules still have the last word).
    Redeem {
        /// The amount.
        amount: Points,
        /// Whether the holder proved possession with the PIN.
        card_proof: bool,
    },
}

/// How a tap ended, as the counter sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// A registered holder (lookup counter).
    Registered {
        /// The holder's alias.
        my_key_id: MyKeyId,
        /// This facility's card numbers of the holder.
        numbers: Vec<NumberRow>,
        /// This facility, if the node knows it.
        facility: Option<FacilityId>,
    },
    /// The card is registered in another municipality: no points of this
    /// town, but this facility's card numbers if it has any.
    Visitor {
        /// The holder's base municipality.
        home: MunicipalityCode,
        /// This facility's card numbers of the holder.
        numbers: Vec<NumberRow>,
        /// This facility, if the node knows it.
        facility: Option<FacilityId>,
    },
    /// The card has no My Key ID (or this node has not heard of it yet).
    NotRegistered,
    /// The card is on the deny list.
    Suspended,
    /// The card was replaced by a renewed one.
    Superseded,
    /// The counter gave no amount.
    NoSale,
    /// Wrong PIN: nothing redeemed.
    WrongPin {
        /// Tries left.
        tries_left: u8,
    },
    /// PIN locked: nothing redeemed.
    PinLocked,
    /// No usable PIN was entered: nothing redeemed.
    NoPin,
    /// The certificate is not trusted: nothing redeemed.
    Untrusted(String),
    /// Points redeemed and durably committed.
    Redeemed {
        /// The amount.
        amount: Points,
        /// Whether the PIN proof was made.
        card_proof: bool,
        /// The transaction's seq.
        seq: u64,
        /// Its id.
        tx: TxId,
        /// What the node now sees as spendable, if it could tell.
        available: Option<Points>,
        /// The holder's earliest-expiring points and when, if the hub said.
        expiring: Option<(Points, UnixMillis)>,
    },
    /// The offline rules declined the redeem, with their figures.
    Declined(Decline),
}

/// The next step for a tap. Pure: every input is in `facts`.
pub fn decide(facts: &TapFacts<'_>) -> Next {
    let (my_key_id, numbers) = match facts.lookup {
        Lookup::NotRegistered => return Next::Done(Outcome::NotRegistered),
        Lookup::Visitor { home, numbers, .. } => {
            return Next::Done(Outcome::Visitor {
                home: *home,
                numbers: numbers.clone(),
                facility: facts.limits.map(|l| l.facility.clone()),
            });
        }
        Lookup::Suspended => return Next::Done(Outcome::Suspended),
        Lookup::Superseded => return Next::Done(Outcome::Superseded),
        Lookup::Found {
            my_key_id, numbers, ..
        } => (my_key_id, numbers),
    };
    if facts.action == Action::Lookup {
        return Next::Done(Outcome::Registered {
            my_key_id: my_key_id.clone(),
            numbers: numbers.clone(),
            facility: facts.limits.map(|l| l.facility.clone()),
        });
    }
    let amount = match facts.amount {
        Amount::NotAsked => {
            return Next::AskAmount {
                my_key_id: my_key_id.clone(),
            };
        }
        Amount::NoSale => return Next::Done(Outcome::NoSale),
        Amount::Given(a) if a.is_zero() => {
            return Next::Done(Outcome::Declined(Decline::ZeroAmount));
        }
        Amount::Given(a) => a,
    };
    // Without limits the node declines anyway (not enrolled); no PIN for that.
    let threshold = match facts.limits {
        Some(l) if amount > l.pin_threshold => l.pin_threshold,
        _ => {
            return Next::Redeem {
                amount,
                card_proof: *facts.proof == Proof::Ok,
            };
        }
    };
    match facts.proof {
        Proof::NotTried => Next::ProvePin { amount, threshold },
        Proof::Ok => Next::Redeem {
            amount,
            card_proof: true,
        },
        Proof::WrongPin { tries_left } => Next::Done(Outcome::WrongPin {
            tries_left: *tries_left,
        }),
        Proof::Locked => Next::Done(Outcome::PinLocked),
        Proof::Untrusted(why) => Next::Done(Outcome::Untrusted(why.clone())),
        Proof::NotEntered => Next::Done(Outcome::NoPin),
    }
}

/// "card number N" or "card numbers N, M", each unconfirmed one marked.
fn number_list(numbers: &[NumberRow]) -> String {
    let list = numbers
        .iter()
        .map(|n| match n.confirmed {
            true => n.number.to_string(),
            false => format!("{} (not yet confirmed by the hub)", n.number),
        })
        .collect::<Vec<_>>()
        .join(", ");
    let noun = if numbers.len() == 1 {
        "card number"
    } else {
        "card numbers"
    };
    format!("{noun} {list}")
}

impl std::fmt::Display for Outcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Outcome::Registered {
                my_key_id,
                numbers,
                facility,
            } => {
                let at = facility
                    .as_ref()
                    .map(|f| format!("{f} "))
                    .unwrap_or_default();
                if numbers.is_empty() {
                    return write!(
                        f,
                        "registered: My Key ID {my_key_id}; no {at}card number linked yet: link one at this counter"
                    );
                }
                write!(
                    f,
                    "registered: My Key ID {my_key_id}, {at}{}",
                    number_list(numbers)
                )
            }
            Outcome::Visitor {
                home,
                numbers,
                facility,
            } => {
                let at = facility
                    .as_ref()
                    .map(|f| format!("{f} "))
                    .unwrap_or_default();
                write!(
                    f,
                    "registered elsewhere (home municipality {home}): no points of this town; "
                )?;
                if numbers.is_empty() {
                    write!(f, "no {at}card number linked: link one at this counter")
                } else {
                    write!(f, "{at}{}", number_list(numbers))
                }
            }
            Outcome::NotRegistered => f.write_str(
                "not registered: this card has no My Key ID here; the holder can register one at a municipal counter",
            ),
            Outcome::Suspended => f.write_str(
                "SUSPENDED: this card was reported lost; do not accept it; the holder must go to the municipal counter",
            ),
            Outcome::Superseded => {
                f.write_str("REPLACED: this card was renewed; ask the holder for the new card")
            }
            Outcome::NoSale => f.write_str("no amount given: nothing redeemed"),
            Outcome::WrongPin { tries_left } => write!(
                f,
                "wrong PIN: {tries_left} {} left before the card locks; nothing redeemed",
                if *tries_left == 1 { "try" } else { "tries" }
            ),
            Outcome::PinLocked => f.write_str(
                "PIN LOCKED: the card's PIN is locked after three wrong tries; nothing redeemed; the holder must go to the municipal office counter to reset it",
            ),
            Outcome::NoPin => f.write_str("no PIN entered: nothing redeemed"),
            Outcome::Untrusted(why) => write!(f, "NOT ACCEPTED: {why}; nothing redeemed"),
            Outcome::Redeemed {
                amount,
                card_proof,
                seq,
                tx,
                available,
                expiring,
            } => {
                let pin = if *card_proof { " with PIN" } else { "" };
                write!(f, "redeemed {amount}{pin} (seq {seq}, tx {})", tx.short())?;
                if let Some(a) = available {
                    write!(f, "; {a} left to spend")?;
                }
                if let Some((points, at)) = expiring {
                    write!(f, "; {}", crate::expiry::line(*points, *at))?;
                }
                Ok(())
            }
            Outcome::Declined(d) => write!(f, "declined: {d}; nothing redeemed"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use mykey_sync_proto::{AccountId, FacilityCardNumber, MunicipalityCode, NodeId};

    fn p(n: u64) -> Points {
        Points::new(n).unwrap()
    }

    fn limits(ops: &[OpKind]) -> NodeLimits {
        NodeLimits {
            node: NodeId::from_bytes(
                ed25519_dalek::SigningKey::from_bytes(&[1; 32])
                    .verifying_key()
                    .to_bytes(),
            )
            .unwrap(),
            facility: FacilityId::parse("bunkyo-lib").unwrap(),
            municipality: MunicipalityCode::parse("131059").unwrap(),
            allowed_ops: ops.to_vec(),
            per_card_offline_limit: p(3000),
            node_exposure_limit: p(10_000),
            pin_threshold: p(2000),
            valid_until: UnixMillis(100),
        }
    }

    fn found(numbers: &[(&str, bool)]) -> Lookup {
        Lookup::Found {
            account: AccountId::new(7).unwrap(),
            my_key_id: MyKeyId::parse("Hanako").unwrap(),
            municipality: MunicipalityCode::parse("131059").unwrap(),
            numbers: numbers
                .iter()
                .map(|(n, confirmed)| NumberRow {
                    number: FacilityCardNumber::parse(n).unwrap(),
                    confirmed: *confirmed,
                })
                .collect(),
        }
    }

    #[test]
    fn the_default_action_follows_the_allowed_operations() {
        let shop = limits(&[OpKind::Redeem]);
        let library = limits(&[OpKind::Link, OpKind::Unlink]);
        assert_eq!(Action::default_for(Some(&shop)), Action::Redeem);
        assert_eq!(Action::default_for(Some(&library)), Action::Lookup);
        assert_eq!(Action::default_for(None), Action::Lookup);
    }

    #[test]
    fn decide_table() {
        use Action::{Lookup as L, Redeem as R};
        let shop = limits(&[OpKind::Redeem]);
        let hanako = found(&[("LIB-0001", true)]);
        let visitor = Lookup::Visitor {
            account: mykey_sync_proto::AccountId::new(7).unwrap(),
            home: mykey_sync_proto::MunicipalityCode::parse("011002").unwrap(),
            numbers: vec![],
        };
        let given = |n| Amount::Given(p(n));
        let wrong = Proof::WrongPin { tries_left: 2 };
        let untrusted = Proof::Untrusted("no CA".into());
        let cases: Vec<(Action, &Lookup, Amount, &Proof, &str)> = vec![
            (L, &hanako, Amount::NotAsked, &Proof::NotTried, "registered"),
            (
                L,
                &Lookup::NotRegistered,
                Amount::NotAsked,
                &Proof::NotTried,
                "not registered",
            ),
            (
                L,
                &Lookup::Suspended,
                Amount::NotAsked,
                &Proof::NotTried,
                "suspended",
            ),
            (
                R,
                &Lookup::Suspended,
                Amount::NotAsked,
                &Proof::NotTried,
                "suspended",
            ),
            (
                R,
                &Lookup::Superseded,
                Amount::NotAsked,
                &Proof::NotTried,
                "superseded",
            ),
            (
                R,
                &Lookup::NotRegistered,
                given(10),
                &Proof::NotTried,
                "not registered",
            ),
            (L, &visitor, Amount::NotAsked, &Proof::NotTried, "visitor"),
            (R, &visitor, given(10), &Proof::NotTried, "visitor"),
            (R, &hanako, Amount::NotAsked, &Proof::NotTried, "ask amount"),
            (R, &hanako, Amount::NoSale, &Proof::NotTried, "no sale"),
            (R, &hanako, given(0), &Proof::NotTried, "zero"),
            (R, &hanako, given(2000), &Proof::NotTried, "redeem no pin"),
            (R, &hanako, given(2001), &Proof::NotTried, "prove"),
            (R, &hanako, given(2001), &Proof::Ok, "redeem with pin"),
            (R, &hanako, given(2001), &wrong, "wrong pin"),
            (R, &hanako, given(2001), &Proof::Locked, "locked"),
            (R, &hanako, given(2001), &untrusted, "untrusted"),
            (R, &hanako, given(2001), &Proof::NotEntered, "no pin"),
        ];
        for (i, (action, lookup, amount, proof, want)) in cases.into_iter().enumerate() {
            let next = decide(&TapFacts {
                action,
                lookup,
                limits: Some(&shop),
                amount,
                proof,
            });
            let got = match &next {
                Next::Done(Outcome::Registered { .. }) => "registered",
                Next::Done(Outcome::NotRegistered) => "not registered",
                Next::Done(Outcome::Visitor { .. }) => "visitor",
                Next::Done(Outcome::Suspended) => "suspended",
                Next::Done(Outcome::Superseded) => "superseded",
                Next::Done(Outcome::NoSale) => "no sale",
                Next::Done(Outcome::Declined(Decline::ZeroAmount)) => "zero",
                Next::Done(Outcome::WrongPin { tries_left: 2 }) => "wrong pin",
                Next::Done(Outcome::PinLocked) => "locked",
                Next::Done(Outcome::Untrusted(_)) => "untrusted",
                Next::Done(Outcome::NoPin) => "no pin",
                Next::AskAmount { .. } => "ask amount",
                Next::ProvePin { amount, threshold }
                    if *amount == p(2001) && *threshold == p(2000) =>
                {
                    "prove"
                }
                Next::Redeem {
                    card_proof: false, ..
                } => "redeem no pin",
                Next::Redeem {
                    card_proof: true, ..
                } => "redeem with pin",
                other => panic!("case {i}: unexpected {other:?}"),
            };
            assert_eq!(got, want, "case {i}: {next:?}");
        }
    }

    #[test]
    fn without_limits_a_sale_goes_to_the_node_which_declines_it() {
        let hanako = found(&[]);
        let next = decide(&TapFacts {
            action: Action::Redeem,
            lookup: &hanako,
            limits: None,
            amount: Amount::Given(p(5000)),
            proof: &Proof::NotTried,
        });
        assert_eq!(
            next,
            Next::Redeem {
                amount: p(5000),
                card_proof: false
            }
        );
    }

    #[test]
    fn outcomes_read_as_what_to_do() {
        let lib = FacilityId::parse("bunkyo-lib").unwrap();
        let registered = |numbers: &[(&str, bool)]| {
            let Lookup::Found {
                my_key_id, numbers, ..
            } = found(numbers)
            else {
                unreachable!()
            };
            Outcome::Registered {
                my_key_id,
                numbers,
                facility: Some(lib.clone()),
            }
        };
        let cases: Vec<(Outcome, &str)> = vec![
            (
                registered(&[("LIB-0001", true)]),
                "registered: My Key ID Hanako, bunkyo-lib card number LIB-0001",
            ),
            (
                registered(&[("LIB-0001", true), ("LIB-0002", false)]),
                "registered: My Key ID Hanako, bunkyo-lib card numbers LIB-0001, LIB-0002 (not yet confirmed by the hub)",
            ),
            (registered(&[]), "no bunkyo-lib card number linked yet"),
            (Outcome::WrongPin { tries_left: 1 }, "1 try left"),
            (Outcome::WrongPin { tries_left: 2 }, "2 tries left"),
            (Outcome::PinLocked, "municipal office counter"),
            (
                Outcome::Declined(Decline::PinRequired { threshold: p(2000) }),
                "declined: spends above 2000 pt need the card PIN; nothing redeemed",
            ),
            (Outcome::Suspended, "SUSPENDED"),
        ];
        for (outcome, want) in cases {
            let text = outcome.to_string();
            assert!(text.contains(want), "{text:?} lacks {want:?}");
        }
    }
}
