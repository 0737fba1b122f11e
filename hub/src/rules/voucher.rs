//! The decision on a voucher a node redeemed (`TxBody::RedeemVoucher`,
//! issue 17 part 5), pure like the rest of `rules`; `voucher::redeem::load`
//! reads its [`VoucherContext`] inside the ingest transaction.
//!
//! The first redemption of a voucher in hub order pays the node's facility
//! from the voucher float. A later one (a photocopy, or two shops offline
//! at once) is an incident naming both signed redemptions; it is paid only
//! if the node signed it before the hub had the first (it could not have
//! known), by its signed time and by the hub's own link records
//! ([`offline_by_links`]: a node's owner sets its clock, not the hub's
//! records of when it was connected), and only within the node's offline
//! voucher cap (`NodePolicy::offline_voucher_cap`, set at enrolment) less
//! what its earlier incidents were paid. That
//! money comes from the batch's programme, not from the float, which held
//! the voucher's points once.

use super::Effects;
use crate::model::{IncidentKind, LedgerAccount, NodeRecord, TransferDraft, TransferKind};
use crate::store::status::LinkSpan;
use crate::store::voucher::{
    HeldRedemptionRow, KioskBatchRow, VoucherBatchRow, VoucherRedemptionRow,
};
use mykey_sync_proto::wire::RejectReason;
use mykey_sync_proto::{NodeId, Points, UnixMillis, VerifiedTx, VoucherRedeem};
use mykey_voucher::{Issuer, SignedVoucher, VOUCHER_BYTES, VerifiedVoucher, VouchedIssuer};

/// What the decision on one voucher redemption needs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VoucherContext {
    /// The voucher, verified with the hub's key, or why not.
    pub voucher: Result<VerifiedVoucher, String>,
    /// Its batch, if the hub issued it.
    pub batch: Option<VoucherBatchRow>,
    /// Its kiosk batch, if a kiosk issued it and the issuing transaction
    /// reached the hub.
    pub kiosk: Option<KioskBacking>,
    /// Its earlier redemptions, in hub order.
    pub earlier: Vec<VoucherRedemptionRow>,
    /// What the signing node's earlier incidents were paid.
    pub incident_paid: Points,
    /// The signing node's links to the hub up at or after the first
    /// redemption (or the cancellation), oldest first.
    pub links: Vec<LinkSpan>,
    /// The hub's clock now: the node signed the redemption no later.
    pub received_at: UnixMillis,
}

/// A kiosk batch as a redemption of one of its vouchers needs it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KioskBacking {
    /// The batch the kiosk's issuing transaction recorded.
    pub row: KioskBatchRow,
    /// The holder's wallet and debt now (the wallet pays a voucher of an
    /// expired batch; ingest reports the balance after).
    pub wallet: crate::model::Balance,
}

/// Whether a kiosk batch recorded this voucher: its index within the
/// batch, the same points, expiry and municipality.
pub(crate) fn backs(row: &KioskBatchRow, b: &mykey_voucher::VoucherBody) -> Result<(), String> {
    let Some(points) = usize::from(b.serial.index)
        .checked_sub(1)
        .and_then(|i| row.denominations.get(i))
    else {
        return Err(format!(
            "its kiosk batch holds {} vouchers, not an index {}",
            row.denominations.len(),
            b.serial.index
        ));
    };
    if *points != b.points
        || row.expires_days != b.expires.days()
        || row.municipality != b.municipality
    {
        return Err(format!(
            "its kiosk batch recorded voucher {} as {} pt of {} through day {}, not {} pt of {} through day {}",
            b.serial.index,
            points,
            row.municipality,
            row.expires_days,
            b.points,
            b.municipality,
            b.expires.days()
        ));
    }
    Ok(())
}

/// Who backs the voucher being redeemed.
#[derive(Clone, Copy)]
enum Backing<'a> {
    Hub(&'a VoucherBatchRow),
    Kiosk(&'a KioskBacking),
    /// A vouched kiosk's voucher whose issue has not reached the hub.
    Pending,
}

/// Whether the hub's own link records show that the node signed its seq
/// `seq` while it had no link to the hub since `since` (when the hub had
/// the first redemption). A node signs a seq after every Hello that reported
/// a lower last seq, so the seq was signed before the first link whose Hello
/// reported it (or, if none did, before it reached the hub now, possibly
/// carried by a LAN peer); it was offline at the time if none of its links
/// before then was up at or after `since`. A node that connected after
/// `since` could have learnt the first redemption (the hub's bitmap), so a
/// redemption backdated by its clock is not paid.
pub fn offline_by_links(
    links: &[LinkSpan],
    since: UnixMillis,
    seq: u64,
    received_at: UnixMillis,
) -> bool {
    let signed_before = links
        .iter()
        .filter(|l| l.hello_last_seq >= seq)
        .map(|l| l.opened_at)
        .min()
        .unwrap_or(received_at);
    !links.iter().any(|l| {
        let up_until = l.closed_at.unwrap_or(l.seen_at).max(l.seen_at);
        l.opened_at < signed_before && up_until >= since
    })
}

/// The voucher a redemption carries, verified with the hub's key, or for a
/// kiosk-issued one with the key of the node the hub vouched for under the
/// issuer number its serial carries (`issuer`: what the hub holds of that
/// number, `voucher::issuers::vouched`).
pub(crate) fn read(
    r: &VoucherRedeem,
    hub: &NodeId,
    issuer: Option<VouchedIssuer>,
) -> Result<VerifiedVoucher, String> {
    let bytes: &[u8; VOUCHER_BYTES] = r.voucher.as_slice().try_into().map_err(|_| {
        format!(
            "a voucher is {VOUCHER_BYTES} bytes, not {}",
            r.voucher.len()
        )
    })?;
    let signed = SignedVoucher::from_bytes(bytes).map_err(|e| e.to_string())?;
    let key = hub.verifying_key().map_err(|e| e.to_string())?;
    signed
        .verify_issued(&key, |_| issuer)
        .map_err(|e| e.to_string())
}

/// Decides a verified `RedeemVoucher` from an enrolled node. `Err` is a
/// business rejection: it consumes the seq and pays nothing.
pub fn decide(
    node: &NodeRecord,
    tx: &VerifiedTx,
    r: &VoucherRedeem,
    ctx: &VoucherContext,
) -> Result<Effects, RejectReason> {
    let refuse = |why: String| Err(RejectReason::NotAllowed(why));
    let v = match &ctx.voucher {
        Ok(v) => v,
        Err(e) => return refuse(format!("voucher refused: {e}")),
    };
    let b = v.body();
    let m = b.municipality;
    if m != node.municipality {
        return Err(RejectReason::WrongMunicipality(m));
    }
    if r.merchant != node.facility {
        return refuse(format!(
            "a node takes vouchers for its own facility {} only, not {}",
            node.facility, r.merchant
        ));
    }
    let backing = match (Issuer::of_batch(b.serial.batch), &ctx.batch, &ctx.kiosk) {
        (Issuer::Hub, Some(batch), _) => Backing::Hub(batch),
        (Issuer::Hub, None, _) => {
            return refuse(format!(
                "voucher batch {} is unknown to this hub",
                b.serial.batch
            ));
        }
        (Issuer::Node { .. }, _, Some(k)) => {
            // A leaked kiosk key signs anything: only the vouchers its
            // issuing transaction recorded are backed by points.
            if let Err(why) = backs(&k.row, b) {
                return refuse(format!("voucher {} refused: {why}", b.serial));
            }
            Backing::Kiosk(k)
        }
        // Signed by a kiosk the hub vouched for, but its issuing transaction
        // has not reached the hub (the kiosk still offline): the points have
        // not left the wallet yet, so nothing is paid now. Held, in hub
        // order, until the issue arrives (`voucher::kiosk::decide_held`).
        (Issuer::Node { .. }, _, None) => Backing::Pending,
    };
    let cancelled_at = match backing {
        Backing::Hub(batch) => batch.cancelled_at,
        Backing::Kiosk(_) | Backing::Pending => None,
    };
    let p = tx.payload();
    if b.expires.has_passed(p.created_at) {
        return refuse(format!(
            "voucher {} expired on {} before the node took it",
            b.serial, b.expires
        ));
    }
    if let Backing::Pending = backing {
        return Ok(Effects {
            voucher_held: Some(HeldRedemptionRow {
                tx: tx.id(),
                batch: b.serial.batch,
                index: b.serial.index,
                node: p.node,
                seq: p.seq,
                municipality: m,
                last_day: b.expires.days(),
                // The hub's clock: set when applied.
                held_at: UnixMillis(0),
                reported_at: None,
                signed: tx.signed().to_bytes(),
            }),
            ..Effects::default()
        });
    }
    let points = b.points();
    let mut effects = Effects::default();
    let mut row = VoucherRedemptionRow {
        batch: b.serial.batch,
        index: b.serial.index,
        node: p.node,
        seq: p.seq,
        tx: tx.id(),
        facility: node.facility.clone(),
        paid: Points::ZERO,
        incident: false,
        node_time: p.created_at,
        // The hub's clock: set when applied.
        at: UnixMillis(0),
        signed: tx.signed().to_bytes(),
    };
    let payable = LedgerAccount::MerchantPayable(node.facility.clone(), m);
    let origin = (Some(tx.id()), Some(p.created_at));
    if ctx.earlier.is_empty() && cancelled_at.is_none() {
        // An expired batch's unredeemed points went back to the programme
        // (`voucher::expire_due`): a redemption signed in time that reaches
        // the hub later is paid from there. A kiosk batch's went back to
        // the holder's wallet: the wallet pays it (debt for what it lacks).
        let debit = match backing {
            Backing::Hub(batch) if batch.expired_at.is_some() => {
                LedgerAccount::ProgramBudget(batch.program.clone(), m)
            }
            Backing::Kiosk(k) if k.row.expired_at.is_some() => {
                let (account, (tx, node_time)) = (k.row.account, (tx.id(), p.created_at));
                effects.transfers = crate::rules::wallet_pays(
                    (account, m),
                    points,
                    k.wallet.balance,
                    &node.facility,
                    (tx, node_time),
                );
                effects.debt_created =
                    Points::new(points.get().saturating_sub(k.wallet.balance.get()))
                        .unwrap_or(points);
                effects.touched = Some((account, m));
                row.paid = points;
                effects.voucher = Some(row);
                return Ok(effects);
            }
            _ => LedgerAccount::VoucherFloat(m),
        };
        effects.transfers.push(TransferDraft {
            debit,
            credit: payable,
            amount: points,
            kind: TransferKind::VoucherRedeem,
            origin_tx: origin.0,
            node_time: origin.1,
        });
        row.paid = points;
        effects.voucher = Some(row);
        return Ok(effects);
    }
    // A second redemption, or one of a cancelled batch: an incident.
    let (before, what) = match ctx.earlier.first() {
        Some(first) => (
            first.at,
            format!(
                "first redeemed by node {} seq {} (tx {}) at facility {}",
                first.node.short(),
                first.seq,
                first.tx.short(),
                first.facility
            ),
        ),
        None => (
            cancelled_at.unwrap_or(UnixMillis(0)),
            format!("batch {} was cancelled", b.serial.batch),
        ),
    };
    let offline_then =
        p.created_at < before && offline_by_links(&ctx.links, before, p.seq, ctx.received_at);
    let cap = node.policy.offline_voucher_cap;
    let room = cap.saturating_sub(ctx.incident_paid);
    let paid = if offline_then {
        points.min(room)
    } else {
        Points::ZERO
    };
    if !paid.is_zero() {
        // A copy of a kiosk voucher is the municipality's loss: no
        // programme paid for it, and the holder paid once.
        let debit = match backing {
            Backing::Hub(batch) => LedgerAccount::ProgramBudget(batch.program.clone(), m),
            Backing::Kiosk(_) | Backing::Pending => LedgerAccount::MunicipalityFunding(m),
        };
        effects.transfers.push(TransferDraft {
            debit,
            credit: payable,
            amount: paid,
            kind: TransferKind::VoucherRedeem,
            origin_tx: origin.0,
            node_time: origin.1,
        });
    }
    let verdict = if p.created_at >= before {
        "not paid: the node signed it after the hub had the first".to_owned()
    } else if !offline_then {
        "not paid: the node's own time is before the first, but the hub's link records show it was connected since the hub had the first, so it could have known".to_owned()
    } else {
        format!(
            "paid {paid} of {points} within the node's offline voucher cap {cap} ({} used before)",
            ctx.incident_paid
        )
    };
    effects.notes.push((
        IncidentKind::VoucherRedeemedTwice,
        format!(
            "voucher {} ({points}) redeemed again by node {} seq {} (tx {}); {what}; {verdict}",
            b.serial,
            p.node.short(),
            p.seq,
            tx.id().short()
        ),
    ));
    row.paid = paid;
    row.incident = true;
    effects.voucher = Some(row);
    Ok(effects)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::NodePolicy;
    use ed25519_dalek::SigningKey;
    use mykey_sync_proto::{
        FacilityId, MunicipalityCode, OpKind, ProgramId, SignedTx, TxBody, TxId, TxPayload,
    };
    use mykey_voucher::{ExpiryDate, Serial, VoucherBody};

    const DAY_MS: u64 = 86_400_000;

    fn hub_key() -> SigningKey {
        SigningKey::from_bytes(&[7; 32])
    }

    fn node_key() -> SigningKey {
        SigningKey::from_bytes(&[9; 32])
    }

    fn node(cap: u64) -> NodeRecord {
        NodeRecord {
            id: NodeId::from_bytes(node_key().verifying_key().to_bytes()).unwrap(),
            facility: FacilityId::parse("shop-1").unwrap(),
            municipality: MunicipalityCode::parse("131059").unwrap(),
            policy: NodePolicy {
                allowed_ops: vec![OpKind::Redeem],
                per_card_offline_limit: Points::new(1000).unwrap(),
                // Far above the voucher cap: the cap is its own.
                node_exposure_limit: Points::new(1_000_000).unwrap(),
                offline_voucher_cap: Points::new(cap).unwrap(),
                pin_threshold: Points::new(1000).unwrap(),
                valid_until: UnixMillis(u64::MAX),
            },
            enrolled_at: UnixMillis(0),
            revoked_at: None,
        }
    }

    fn voucher(signer: &SigningKey) -> SignedVoucher {
        VoucherBody {
            key_hint: 0,
            municipality: MunicipalityCode::parse("131059").unwrap(),
            serial: Serial { batch: 1, index: 1 },
            points: 500,
            expires: ExpiryDate::from_days(100),
        }
        .sign(signer)
    }

    fn redeem_tx(v: &SignedVoucher, at_ms: u64) -> (VerifiedTx, VoucherRedeem) {
        let r = VoucherRedeem {
            voucher: v.to_bytes().to_vec(),
            merchant: FacilityId::parse("shop-1").unwrap(),
        };
        let n = node(0);
        let tx = SignedTx::sign(
            &TxPayload {
                node: n.id,
                seq: 1,
                prev_hash: TxId::GENESIS,
                created_at: UnixMillis(at_ms),
                body: TxBody::RedeemVoucher(r.clone()),
            },
            &node_key(),
        )
        .verify()
        .unwrap();
        (tx, r)
    }

    fn batch(cancelled: Option<u64>) -> VoucherBatchRow {
        VoucherBatchRow {
            id: 1,
            program: ProgramId::parse("health").unwrap(),
            municipality: MunicipalityCode::parse("131059").unwrap(),
            count: 1,
            points: Points::new(500).unwrap(),
            expires_days: 100,
            issued_at: UnixMillis(0),
            cancelled_at: cancelled.map(UnixMillis),
            expired_at: None,
        }
    }

    fn first_at(at_ms: u64) -> VoucherRedemptionRow {
        let (tx, _) = redeem_tx(&voucher(&hub_key()), 1);
        VoucherRedemptionRow {
            batch: 1,
            index: 1,
            node: node(0).id,
            seq: 1,
            tx: tx.id(),
            facility: FacilityId::parse("shop-0").unwrap(),
            paid: Points::new(500).unwrap(),
            incident: false,
            node_time: UnixMillis(1),
            at: UnixMillis(at_ms),
            signed: vec![],
        }
    }

    fn ctx(v: &SignedVoucher, earlier: Vec<VoucherRedemptionRow>, used: u64) -> VoucherContext {
        let hub = NodeId::from_bytes(hub_key().verifying_key().to_bytes()).unwrap();
        VoucherContext {
            voucher: read(
                &VoucherRedeem {
                    voucher: v.to_bytes().to_vec(),
                    merchant: FacilityId::parse("shop-1").unwrap(),
                },
                &hub,
                None,
            ),
            batch: Some(batch(None)),
            kiosk: None,
            earlier,
            incident_paid: Points::new(used).unwrap(),
            links: vec![],
            received_at: UnixMillis(20 * DAY_MS),
        }
    }

    fn link(opened: u64, closed: Option<u64>, hello_last_seq: u64) -> LinkSpan {
        LinkSpan {
            node: node(0).id,
            opened_at: UnixMillis(opened),
            seen_at: UnixMillis(closed.unwrap_or(20 * DAY_MS)),
            closed_at: closed.map(UnixMillis),
            hello_last_seq,
        }
    }

    #[test]
    fn offline_is_read_from_the_hubs_link_records_not_the_nodes_clock() {
        let v = voucher(&hub_key());
        let n = node(800);
        // The node signs seq 1 dated day 10; the hub had the first on day 11.
        let (tx, r) = redeem_tx(&v, 10 * DAY_MS);
        let paid = |links: Vec<LinkSpan>| {
            let mut c = ctx(&v, vec![first_at(11 * DAY_MS)], 0);
            c.links = links;
            let e = decide(&n, &tx, &r, &c).unwrap();
            (outcome(&e).0, e.notes[0].1.clone())
        };
        let cases: Vec<(&str, Vec<LinkSpan>, u64)> = vec![
            (
                "no link since the first: carried by a peer, or offline",
                vec![],
                500,
            ),
            (
                "its next Hello (day 12) already had seq 1",
                vec![link(12 * DAY_MS, None, 1)],
                500,
            ),
            (
                "a link that ended before the first counts for nothing",
                vec![
                    link(5 * DAY_MS, Some(9 * DAY_MS), 0),
                    link(12 * DAY_MS, None, 1),
                ],
                500,
            ),
            // The backdating attack: connected on day 12 (it could have read
            // the hub's bitmap), its clock set back to day 10, seq 1 signed
            // during that link.
            (
                "signed during a link opened after the first",
                vec![link(12 * DAY_MS, None, 0)],
                0,
            ),
            (
                "connected on day 12, then offline, Hello with seq 1 on day 14",
                vec![
                    link(12 * DAY_MS, Some(13 * DAY_MS), 0),
                    link(14 * DAY_MS, None, 1),
                ],
                0,
            ),
            (
                "a link open across the first",
                vec![link(10 * DAY_MS, None, 0)],
                0,
            ),
        ];
        for (what, links, want) in cases {
            let (got, note) = paid(links);
            assert_eq!(got, want, "{what}: {note}");
            if want == 0 {
                assert!(note.contains("link records"), "{what}: {note}");
            }
        }
    }

    /// (paid, from the float, incident) of a decision.
    fn outcome(e: &Effects) -> (u64, bool, bool) {
        let row = e.voucher.as_ref().unwrap();
        let from_float = e
            .transfers
            .iter()
            .any(|t| matches!(t.debit, LedgerAccount::VoucherFloat(_)));
        (row.paid.get(), from_float, row.incident)
    }

    #[test]
    fn decisions() {
        let v = voucher(&hub_key());
        let (tx, r) = redeem_tx(&v, 10 * DAY_MS);
        let n = node(800);
        // (earlier redemption applied at, cap used before) -> (paid, from float, incident)
        type Case = (Option<u64>, u64, (u64, bool, bool));
        let cases: Vec<Case> = vec![
            (None, 0, (500, true, false)),
            // Signed offline before the hub had the first: paid within the cap.
            (Some(11 * DAY_MS), 0, (500, false, true)),
            (Some(11 * DAY_MS), 500, (300, false, true)),
            (Some(11 * DAY_MS), 800, (0, false, true)),
            // Signed after the hub had the first: not paid.
            (Some(9 * DAY_MS), 0, (0, false, true)),
        ];
        for (earlier, used, want) in cases {
            let c = ctx(&v, earlier.map(first_at).into_iter().collect(), used);
            let e = decide(&n, &tx, &r, &c).unwrap();
            assert_eq!(outcome(&e), want, "earlier {earlier:?}, used {used}");
            assert_eq!(e.notes.len(), usize::from(want.2));
        }
        // A cancelled batch: an incident, paid within the cap if signed before.
        let mut c = ctx(&v, vec![], 0);
        c.batch = Some(batch(Some(11 * DAY_MS)));
        assert_eq!(
            outcome(&decide(&n, &tx, &r, &c).unwrap()),
            (500, false, true)
        );
    }

    #[test]
    fn refusals() {
        let n = node(800);
        let v = voucher(&hub_key());
        let forged = voucher(&SigningKey::from_bytes(&[8; 32]));
        let (tx, r) = redeem_tx(&forged, 10 * DAY_MS);
        assert!(decide(&n, &tx, &r, &ctx(&forged, vec![], 0)).is_err());
        // Taken after its last day (day 100).
        let (tx, r) = redeem_tx(&v, 102 * DAY_MS);
        assert!(decide(&n, &tx, &r, &ctx(&v, vec![], 0)).is_err());
        // For another facility than the node's.
        let (tx, mut r) = redeem_tx(&v, 10 * DAY_MS);
        r.merchant = FacilityId::parse("shop-0").unwrap();
        assert!(decide(&n, &tx, &r, &ctx(&v, vec![], 0)).is_err());
        // A batch the hub never issued.
        let (tx, r) = redeem_tx(&v, 10 * DAY_MS);
        let mut c = ctx(&v, vec![], 0);
        c.batch = None;
        assert!(decide(&n, &tx, &r, &c).is_err());
    }

    /// A kiosk-issued voucher at the hub: refused from an issuer number the
    /// hub never vouched for, a withdrawn one, or another key than the one
    /// it vouched for; with the vouched key it verifies, and is held, paying
    /// nothing, while its issuing transaction has not reached the hub.
    #[test]
    fn kiosk_issued_vouchers_need_a_vouched_issuer_and_wait_for_their_issue() {
        let n = node(800);
        let hub = NodeId::from_bytes(hub_key().verifying_key().to_bytes()).unwrap();
        let kiosk = SigningKey::from_bytes(&[21; 32]);
        let body = VoucherBody {
            key_hint: 0,
            municipality: MunicipalityCode::parse("131059").unwrap(),
            serial: Serial {
                batch: Issuer::node_batch(3, 1).unwrap(),
                index: 1,
            },
            points: 500,
            expires: ExpiryDate::from_days(100),
        };
        let vouched = |withdrawn| {
            Some(VouchedIssuer {
                key: kiosk.verifying_key(),
                withdrawn,
            })
        };
        let redeem = |v: &SignedVoucher| VoucherRedeem {
            voucher: v.to_bytes().to_vec(),
            merchant: FacilityId::parse("shop-1").unwrap(),
        };
        let v = body.sign(&kiosk);
        let forged = body.sign(&SigningKey::from_bytes(&[22; 32]));
        assert!(read(&redeem(&v), &hub, vouched(false)).is_ok());
        for (what, v, issuer, want) in [
            ("never vouched for", &v, None, "never vouched for"),
            ("withdrawn", &v, vouched(true), "withdrew"),
            ("another key", &forged, vouched(false), "altered or forged"),
        ] {
            let got = read(&redeem(v), &hub, issuer).unwrap_err();
            assert!(got.contains(want), "{what}: {got}");
        }
        // Verified, but no batch: its issue has not reached the hub.
        let (tx, r) = redeem_tx(&v, 10 * DAY_MS);
        let mut c = ctx(&v, vec![], 0);
        c.voucher = read(&r, &hub, vouched(false));
        c.batch = None;
        let e = decide(&n, &tx, &r, &c).unwrap();
        let held = e.voucher_held.expect("held until its issue arrives");
        assert_eq!(
            (held.batch, held.index, held.seq),
            (body.serial.batch, 1, 1)
        );
        assert_eq!(held.last_day, 100);
        assert!(e.transfers.is_empty() && e.voucher.is_none() && e.notes.is_empty());
        // Expired when the node took it: refused, not held.
        let (late, r) = redeem_tx(&v, 101 * DAY_MS);
        let mut c = ctx(&v, vec![], 0);
        c.voucher = read(&r, &hub, vouched(false));
        assert!(decide(&n, &late, &r, &c).is_err());
    }

    /// A kiosk batch backs only the vouchers it recorded: the index within
    /// it, with that voucher's points, last day and municipality.
    #[test]
    fn a_kiosk_batch_backs_only_what_it_recorded() {
        let row = KioskBatchRow {
            batch: Issuer::node_batch(3, 1).unwrap(),
            issuer: 3,
            node: node(0).id,
            tx: TxId::GENESIS,
            account: mykey_sync_proto::AccountId::new(1).unwrap(),
            municipality: MunicipalityCode::parse("131059").unwrap(),
            points: Points::new(800).unwrap(),
            denominations: vec![500, 300],
            expires_days: 100,
            issued_at: UnixMillis(0),
            expired_at: None,
        };
        let body = |index: u16, points: u32, days: u16, m: &str| VoucherBody {
            key_hint: 0,
            municipality: MunicipalityCode::parse(m).unwrap(),
            serial: Serial {
                batch: row.batch,
                index,
            },
            points,
            expires: ExpiryDate::from_days(days),
        };
        assert_eq!(backs(&row, &body(1, 500, 100, "131059")), Ok(()));
        assert_eq!(backs(&row, &body(2, 300, 100, "131059")), Ok(()));
        for (what, b, says) in [
            ("index 0", body(0, 500, 100, "131059"), "not an index 0"),
            ("beyond", body(3, 300, 100, "131059"), "holds 2 vouchers"),
            (
                "more points",
                body(2, 500, 100, "131059"),
                "voucher 2 as 300",
            ),
            ("later day", body(1, 500, 101, "131059"), "through day 100"),
            ("another town", body(1, 500, 100, "011002"), "of 131059"),
        ] {
            let got = backs(&row, &b).unwrap_err();
            assert!(got.contains(says), "{what}: {got}");
        }
    }
}
