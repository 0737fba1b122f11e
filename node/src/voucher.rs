//! Printed QR point vouchers taken at this node (issue 17 part 4): the
//! offline checks, pure. The node verifies the hub's signature with the hub
//! id it was enrolled with (no network), then refuses a voucher that has
//! expired, that it has taken before, that a LAN peer took (its pending
//! redemption came over the LAN), that the hub's redeemed bitmap marks (or
//! of a batch the hub cancelled), or that would take its vouchers not yet
//! receipted by the hub past its offline voucher cap (the hub's
//! `NodeVoucherCap` fact, set at enrolment; its exposure limit from a hub
//! that sent none). The hub pays the first redemption of a voucher anywhere;
//! a later one is an incident it pays only within the node's cap.

use mykey_sync_proto::fact::NodeLimits;
use mykey_sync_proto::{MunicipalityCode, NodeId, OpKind, Points, SignedTx, TxBody, UnixMillis};
use mykey_voucher::{
    ExpiryDate, IssuerError, Serial, SignedVoucher, VOUCHER_BYTES, VerifiedVoucher, VerifyError,
    VouchedIssuer,
};

/// Why this node refused a voucher (nothing was recorded).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VoucherDecline {
    /// The node has no limits from the hub yet.
    #[error(
        "this node has no limits from its hub yet: connect it to the hub once (`mykey-node run`) before taking vouchers"
    )]
    NoLimits,
    /// The node is not allowed to take points.
    #[error("this node's facility is not allowed to take points, so it cannot take vouchers")]
    NotAllowed,
    /// The signature does not hold.
    #[error("{0}")]
    Signature(VerifyError),
    /// A kiosk-issued voucher whose issuer the hub never vouched for here,
    /// or withdrew, or whose signature does not hold.
    #[error("{0}")]
    Issuer(IssuerError),
    /// Another municipality's voucher.
    #[error("voucher {serial} is {municipality}'s, this node takes {here}'s only: refuse it")]
    OtherMunicipality {
        /// Its serial.
        serial: Serial,
        /// Whose.
        municipality: MunicipalityCode,
        /// This node's.
        here: MunicipalityCode,
    },
    /// Past its date.
    #[error("voucher {serial} expired on {expires}: refuse it")]
    Expired {
        /// Its serial.
        serial: Serial,
        /// Its last valid day.
        expires: ExpiryDate,
    },
    /// Taken here before.
    #[error("voucher {serial} was already taken here (seq {seq}): refuse it, it is a copy")]
    AlreadyTaken {
        /// Its serial.
        serial: Serial,
        /// The seq that took it.
        seq: u64,
    },
    /// Taken by a LAN peer (its redemption reached this node on the LAN).
    #[error(
        "voucher {serial} was already taken by LAN peer {peer} (seq {seq}): refuse it, it is a copy"
    )]
    TakenByPeer {
        /// Its serial.
        serial: Serial,
        /// The peer.
        peer: NodeId,
        /// The peer's seq that took it.
        seq: u64,
    },
    /// The hub's redeemed bitmap marks it.
    #[error("the hub says voucher {serial} was already redeemed: refuse it, it is a copy")]
    MarkedRedeemed {
        /// Its serial.
        serial: Serial,
    },
    /// The hub cancelled its batch.
    #[error(
        "voucher {serial}'s batch was cancelled by the municipality (a lost or withdrawn sheet): refuse it"
    )]
    BatchCancelled {
        /// Its serial.
        serial: Serial,
    },
    /// Past the offline voucher cap.
    #[error(
        "taking voucher {serial} ({points}) would put {pending} + {points} of vouchers the hub has not confirmed past this node's offline voucher cap of {cap}: let the node reach the hub (`mykey-node run`) so it confirms them, then scan it again (the hub's operator sets the cap: `mykey-hub node enrol … --voucher-cap`)"
    )]
    OverCap {
        /// Its serial.
        serial: Serial,
        /// Its value.
        points: Points,
        /// Voucher points not yet receipted.
        pending: Points,
        /// The cap.
        cap: Points,
    },
}

/// What this node knows of earlier redemptions, offline.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Known {
    /// Its own: serial and seq.
    pub here: Vec<(Serial, u64)>,
    /// Its LAN peers' (pending or not): serial, peer and seq.
    pub peers: Vec<(Serial, NodeId, u64)>,
    /// The hub's bitmap marks the voucher's index redeemed.
    pub marked: bool,
    /// The hub cancelled the voucher's batch.
    pub cancelled: bool,
}

/// The signer, serial and seq of each voucher in `taken` (`RedeemVoucher`
/// transactions); others are left out.
pub fn redemptions(taken: &[SignedTx]) -> Vec<(NodeId, Serial, u64)> {
    taken
        .iter()
        .filter_map(|t| {
            let v = t.verify().ok()?;
            let p = v.payload();
            let TxBody::RedeemVoucher(r) = &p.body else {
                return None;
            };
            let bytes: &[u8; VOUCHER_BYTES] = r.voucher.as_slice().try_into().ok()?;
            let v = SignedVoucher::from_bytes(bytes).ok()?;
            Some((p.node, v.body.serial, p.seq))
        })
        .collect()
}

/// The serial and seq of each voucher in `taken` (this node's own
/// `RedeemVoucher` transactions).
pub fn serials_taken(taken: &[SignedTx]) -> Vec<(Serial, u64)> {
    taken
        .iter()
        .filter_map(|t| {
            // The node's own transactions: they verify with its key.
            let v = t.verify().ok()?;
            let p = v.payload();
            let TxBody::RedeemVoucher(r) = &p.body else {
                return None;
            };
            let bytes: &[u8; VOUCHER_BYTES] = r.voucher.as_slice().try_into().ok()?;
            let v = SignedVoucher::from_bytes(bytes).ok()?;
            Some((v.body.serial, p.seq))
        })
        .collect()
}

/// The offline checks on one voucher; `issuer` is what the node holds of
/// the kiosk a node-issued voucher names (`Reader::voucher_issuer`, `None`
/// for the hub's own or an issuer it never heard of), `cap` the node's
/// offline voucher cap (`Reader::voucher_cap`).
#[allow(clippy::too_many_arguments)]
pub fn decide(
    v: &SignedVoucher,
    hub: &NodeId,
    issuer: Option<VouchedIssuer>,
    limits: Option<&NodeLimits>,
    cap: Option<Points>,
    known: &Known,
    pending: Points,
    now: UnixMillis,
) -> Result<VerifiedVoucher, VoucherDecline> {
    let limits = limits.ok_or(VoucherDecline::NoLimits)?;
    let cap = cap.ok_or(VoucherDecline::NoLimits)?;
    if !limits.allowed_ops.contains(&OpKind::Redeem) {
        return Err(VoucherDecline::NotAllowed);
    }
    let key = hub
        .verifying_key()
        .map_err(|_| VoucherDecline::Signature(VerifyError::OtherIssuer))?;
    let verified = v.verify_issued(&key, |_| issuer).map_err(|e| match e {
        IssuerError::Signature(e) => VoucherDecline::Signature(e),
        e => VoucherDecline::Issuer(e),
    })?;
    let b = verified.body();
    let serial = b.serial;
    if b.municipality != limits.municipality {
        return Err(VoucherDecline::OtherMunicipality {
            serial,
            municipality: b.municipality,
            here: limits.municipality,
        });
    }
    if b.expires.has_passed(now) {
        return Err(VoucherDecline::Expired {
            serial,
            expires: b.expires,
        });
    }
    if let Some((_, seq)) = known.here.iter().find(|(s, _)| *s == serial) {
        return Err(VoucherDecline::AlreadyTaken { serial, seq: *seq });
    }
    if let Some((_, peer, seq)) = known.peers.iter().find(|(s, _, _)| *s == serial) {
        return Err(VoucherDecline::TakenByPeer {
            serial,
            peer: *peer,
            seq: *seq,
        });
    }
    if known.cancelled {
        return Err(VoucherDecline::BatchCancelled { serial });
    }
    if known.marked {
        return Err(VoucherDecline::MarkedRedeemed { serial });
    }
    let points = b.points();
    if pending.checked_add(points).is_none_or(|sum| sum > cap) {
        return Err(VoucherDecline::OverCap {
            serial,
            points,
            pending,
            cap,
        });
    }
    Ok(verified)
}

#[cfg(test)]
mod tests {
    use super::*;
    use ed25519_dalek::SigningKey;
    use mykey_sync_proto::FacilityId;
    use mykey_voucher::VoucherBody;

    fn hub() -> (SigningKey, NodeId) {
        let k = SigningKey::from_bytes(&[7; 32]);
        let id = NodeId::from_bytes(k.verifying_key().to_bytes()).unwrap();
        (k, id)
    }

    /// Limits whose exposure limit (50,000) is far above the voucher cap
    /// the checks get (1,000): the cap is the voucher cap's own.
    fn limits(ops: Vec<OpKind>) -> NodeLimits {
        NodeLimits {
            node: hub().1,
            facility: FacilityId::parse("shop-1").unwrap(),
            municipality: MunicipalityCode::parse("131059").unwrap(),
            allowed_ops: ops,
            per_card_offline_limit: Points::new(1000).unwrap(),
            node_exposure_limit: Points::new(50_000).unwrap(),
            pin_threshold: Points::new(1000).unwrap(),
            valid_until: UnixMillis(u64::MAX),
        }
    }

    fn voucher(muni: &str, index: u16) -> SignedVoucher {
        VoucherBody {
            key_hint: 0,
            municipality: MunicipalityCode::parse(muni).unwrap(),
            serial: Serial { batch: 1, index },
            points: 500,
            expires: ExpiryDate::from_days(100),
        }
        .sign(&hub().0)
    }

    #[test]
    fn offline_checks() {
        let (_, hub_id) = hub();
        let day = |d: u64| UnixMillis(d * 86_400_000);
        let ok = limits(vec![OpKind::Redeem]);
        let cap = Some(Points::new(1000).unwrap());
        let v = voucher("131059", 1);
        let decide_with =
            |v: &SignedVoucher, l: Option<&NodeLimits>, known: &Known, pending: u64, now| {
                decide(
                    v,
                    &hub_id,
                    None,
                    l,
                    cap,
                    known,
                    Points::new(pending).unwrap(),
                    now,
                )
            };
        let none = Known::default();
        assert!(decide_with(&v, Some(&ok), &none, 500, day(10)).is_ok());
        let refusals: Vec<(VoucherDecline, Result<VerifiedVoucher, VoucherDecline>)> = vec![
            (
                VoucherDecline::NoLimits,
                decide_with(&v, None, &none, 0, day(10)),
            ),
            (
                VoucherDecline::NoLimits,
                decide(
                    &v,
                    &hub_id,
                    None,
                    Some(&ok),
                    None,
                    &none,
                    Points::ZERO,
                    day(10),
                ),
            ),
            (
                VoucherDecline::NotAllowed,
                decide_with(&v, Some(&limits(vec![OpKind::Link])), &none, 0, day(10)),
            ),
            (
                VoucherDecline::OverCap {
                    serial: v.body.serial,
                    points: Points::new(500).unwrap(),
                    pending: Points::new(501).unwrap(),
                    cap: Points::new(1000).unwrap(),
                },
                decide_with(&v, Some(&ok), &none, 501, day(10)),
            ),
            (
                VoucherDecline::Expired {
                    serial: v.body.serial,
                    expires: v.body.expires,
                },
                decide_with(&v, Some(&ok), &none, 0, day(101)),
            ),
            (
                VoucherDecline::AlreadyTaken {
                    serial: v.body.serial,
                    seq: 4,
                },
                decide_with(
                    &v,
                    Some(&ok),
                    &Known {
                        here: vec![(v.body.serial, 4)],
                        ..Known::default()
                    },
                    0,
                    day(10),
                ),
            ),
            (
                VoucherDecline::TakenByPeer {
                    serial: v.body.serial,
                    peer: hub_id,
                    seq: 9,
                },
                decide_with(
                    &v,
                    Some(&ok),
                    &Known {
                        peers: vec![(v.body.serial, hub_id, 9)],
                        ..Known::default()
                    },
                    0,
                    day(10),
                ),
            ),
            (
                VoucherDecline::MarkedRedeemed {
                    serial: v.body.serial,
                },
                decide_with(
                    &v,
                    Some(&ok),
                    &Known {
                        marked: true,
                        ..Known::default()
                    },
                    0,
                    day(10),
                ),
            ),
            (
                VoucherDecline::BatchCancelled {
                    serial: v.body.serial,
                },
                decide_with(
                    &v,
                    Some(&ok),
                    &Known {
                        cancelled: true,
                        ..Known::default()
                    },
                    0,
                    day(10),
                ),
            ),
            (
                VoucherDecline::OtherMunicipality {
                    serial: v.body.serial,
                    municipality: MunicipalityCode::parse("011002").unwrap(),
                    here: MunicipalityCode::parse("131059").unwrap(),
                },
                decide_with(&voucher("011002", 1), Some(&ok), &none, 0, day(10)),
            ),
        ];
        for (want, got) in refusals {
            assert_eq!(got, Err(want));
        }
        let forged = VoucherBody { ..v.body }.sign(&SigningKey::from_bytes(&[8; 32]));
        assert!(matches!(
            decide_with(&forged, Some(&ok), &none, 0, day(10)),
            Err(VoucherDecline::Signature(_))
        ));
    }

    /// A kiosk's voucher: taken with the key the hub vouched for, refused
    /// from an issuer number the hub never vouched for here, a withdrawn
    /// one, or signed by another key; the same cap holds.
    #[test]
    fn a_kiosk_issued_voucher_is_checked_with_the_key_the_hub_vouched_for() {
        let (_, hub_id) = hub();
        let kiosk = SigningKey::from_bytes(&[11; 32]);
        let ok = limits(vec![OpKind::Redeem]);
        let cap = Some(Points::new(1000).unwrap());
        let body = VoucherBody {
            key_hint: 0,
            municipality: MunicipalityCode::parse("131059").unwrap(),
            serial: Serial {
                batch: mykey_voucher::Issuer::node_batch(2, 1).unwrap(),
                index: 1,
            },
            points: 500,
            expires: ExpiryDate::from_days(100),
        };
        let v = body.sign(&kiosk);
        let vouched = |withdrawn| {
            Some(VouchedIssuer {
                key: kiosk.verifying_key(),
                withdrawn,
            })
        };
        let now = UnixMillis(10 * 86_400_000);
        let run = |v: &SignedVoucher, issuer, pending: u64| {
            decide(
                v,
                &hub_id,
                issuer,
                Some(&ok),
                cap,
                &Known::default(),
                Points::new(pending).unwrap(),
                now,
            )
        };
        assert!(run(&v, vouched(false), 0).is_ok());
        assert_eq!(
            run(&v, None, 0),
            Err(VoucherDecline::Issuer(IssuerError::Unknown(2)))
        );
        assert_eq!(
            run(&v, vouched(true), 0),
            Err(VoucherDecline::Issuer(IssuerError::Withdrawn(2)))
        );
        let forged = body.sign(&SigningKey::from_bytes(&[12; 32]));
        assert_eq!(
            run(&forged, vouched(false), 0),
            Err(VoucherDecline::Signature(VerifyError::Signature))
        );
        assert!(matches!(
            run(&v, vouched(false), 600),
            Err(VoucherDecline::OverCap { .. })
        ));
        assert_eq!(v.body.serial.to_string(), "k2.1-00001");
    }
}
