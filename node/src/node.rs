//! The node's operations: each decides with the offline rules, signs, and
//! commits durably before it reports done; plus the glue a sync driver calls
//! (outbox batches, receipts, facts).

use crate::card::VerifiedCardProof;
use crate::card::jpki::{VerifiedDonationProof, VerifiedVoucherIssueProof};
use crate::key::NodeKey;
use crate::lan_rules;
use crate::rules::{self, Decline, SpendView};
use crate::store::{
    CardRow, NumberRow, OutboxCounts, OutboxRow, RightCredit, Store, StoreError, WithdrawnRight,
};
use mykey_sync_proto::wire::{Facts, Outcome, Receipts};
use mykey_sync_proto::{
    AccountId, CardKey, CardStatus, Donate, DonationBinding, FacilityCardLink, FacilityCardNumber,
    FactBody, Grant, KioskIssue, KioskIssueError, MunicipalityCode, MyKeyId, NodeId, NodeLimits,
    OpKind, Points, ProgramId, Redeem, RedeemBinding, RightAccept, RightTransfer, SignedTx, TxBody,
    TxId, TxPayload, UnixMillis, VerifiedTx, VoucherIssueBinding, codec,
};
use std::path::Path;
use tracing::{debug, info, warn};

/// What a tapped card resolves to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Lookup {
    /// Registered and usable.
    Found {
        /// The holder's account.
        account: AccountId,
        /// The holder's alias.
        my_key_id: MyKeyId,
        /// The holder's base municipality.
        municipality: MunicipalityCode,
        /// This facility's card numbers of the holder.
        numbers: Vec<NumberRow>,
    },
    /// Registered in another municipality than this node's: a visitor, who
    /// has no points of this town here but may hold this facility's card
    /// numbers.
    Visitor {
        /// The holder's account.
        account: AccountId,
        /// The holder's base municipality.
        home: MunicipalityCode,
        /// This facility's card numbers of the holder.
        numbers: Vec<NumberRow>,
    },
    /// Not registered (or not yet known to this node).
    NotRegistered,
    /// On the deny list.
    Suspended,
    /// Replaced by a renewed card.
    Superseded,
}

/// The most open donation programmes a node lists (a kiosk's screen of
/// choices; a municipality runs a few at a time).
pub const MAX_DONATION_PROGRAMMES: usize = 12;

/// An operation that did not happen.
#[derive(Debug, thiserror::Error)]
pub enum OpError {
    /// The offline rules declined it.
    #[error("declined: {0}")]
    Declined(#[from] Decline),
    /// The card is not registered.
    #[error("card is not registered: the holder must register a My Key ID first")]
    NotRegistered,
    /// The card is registered in another municipality: this town's points
    /// are neither granted nor spent on it here.
    #[error(
        "this card is registered in municipality {home}, not here: no points of this town are granted or spent on it (its points are used at counters of {home})"
    )]
    Visitor {
        /// The holder's base municipality.
        home: MunicipalityCode,
    },
    /// The number is already linked to this account.
    #[error("facility card number {0} is already linked to this holder")]
    AlreadyLinked(FacilityCardNumber),
    /// The number is not linked to this account.
    #[error("facility card number {0} is not linked to this holder")]
    NotLinked(FacilityCardNumber),
    /// Rights move only in strict mode.
    #[error("municipality {0} is not in strict mode: there are no spend rights to give")]
    NotStrict(MunicipalityCode),
    /// A right given to the node itself.
    #[error("a right can only be given to another node: name a LAN peer's node id")]
    TransferToSelf,
    /// The node holds no hub-signed grant for the right it would give.
    #[error(
        "this node holds no hub-signed grant for that right: sync with the hub once, then give it again"
    )]
    NoGrant,
    /// The card proof was made for another transaction (another seq, time,
    /// amount or card: the chain moved on since the PIN was entered).
    #[error(
        "the PIN proof was made for another transaction (the node signed something else meanwhile): tap the card and enter the PIN again"
    )]
    ProofNotForThis,
    /// A voucher refused by the offline checks.
    #[error(transparent)]
    Voucher(#[from] crate::voucher::VoucherDecline),
    /// The donation programme is not one the hub told this node is open in
    /// its municipality.
    #[error(
        "donation programme {0} is not open here (the hub has not declared it for this municipality, or closed it): choose one the kiosk lists"
    )]
    NoSuchDonationProgramme(ProgramId),
    /// A donation beyond what the holder has here (the hub-confirmed
    /// balance less the redeems and donations pending here and at LAN peers).
    #[error(
        "a donation of {points} is more than the {available} available to give here: choose a smaller amount"
    )]
    DonationBeyondBalance {
        /// Asked.
        points: Points,
        /// Available.
        available: Points,
    },
    /// This node is no voucher issuer the hub vouched for (or it was withdrawn).
    #[error(
        "this node is not a voucher issuer of its municipality (or the hub withdrew it): the hub's operator runs `mykey-hub voucher issuer add --node <this node's id>`, then let the node sync once"
    )]
    NotVoucherIssuer,
    /// The node has used every kiosk batch number (65,535).
    #[error(
        "this node has issued all {} kiosk voucher batches it can number: ask the hub's operator to vouch for another node",
        u16::MAX
    )]
    KioskBatchesExhausted,
    /// The vouchers asked for do not hold together.
    #[error("{0}: choose the amount and the vouchers again")]
    BadVoucherIssue(#[from] KioskIssueError),
    /// The last valid day is past, or further than the hub takes.
    #[error(
        "the vouchers' last valid day must be from today to {} days on: choose another",
        mykey_sync_proto::MAX_KIOSK_VOUCHER_DAYS
    )]
    BadVoucherExpiry,
    /// Vouchers beyond what the holder has here.
    #[error(
        "vouchers of {points} are more than the {available} available here: choose a smaller amount"
    )]
    VouchersBeyondBalance {
        /// Asked.
        points: Points,
        /// Available.
        available: Points,
    },
    /// The store failed: nothing was done.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// A completed, durably committed operation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Done {
    /// The transaction's seq.
    pub seq: u64,
    /// Its id.
    pub tx: TxId,
}

/// Facts that were refused.
#[derive(Debug, thiserror::Error)]
pub enum FactsError {
    /// A fact did not verify against the hub key: the batch was dropped.
    #[error(
        "fact #{index} of the batch is not authentic: {source}; nothing from this batch was applied"
    )]
    NotAuthentic {
        /// Its index.
        index: usize,
        /// Why.
        #[source]
        source: mykey_sync_proto::FactError,
    },
    /// The store failed: nothing was applied.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Transactions from a LAN peer that were refused.
#[derive(Debug, thiserror::Error)]
pub enum PeerTxsError {
    /// A signature did not verify: the batch was dropped.
    #[error(
        "transaction #{index} from the peer is not authentic: {source}; nothing from this batch was stored"
    )]
    NotAuthentic {
        /// Its index.
        index: usize,
        /// Why.
        #[source]
        source: mykey_sync_proto::VerifyError,
    },
    /// A signer is not on a LAN roster with this node.
    #[error(
        "transactions signed by {} are refused: no LAN roster from the hub names both that node and this one (the hub operator adds stalls with `mykey-hub lan roster`); nothing from this batch was stored", .signer.short()
    )]
    NotOnRoster {
        /// The signer.
        signer: NodeId,
    },
    /// The store failed: nothing was stored.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Facts about this node for status displays.
#[derive(Debug, Clone)]
pub struct Status {
    /// This node.
    pub node: NodeId,
    /// The hub key it trusts.
    pub hub: NodeId,
    /// Its certificate from the hub.
    pub limits: Option<NodeLimits>,
    /// Its offline voucher cap ([`crate::store::Reader::voucher_cap`]).
    pub voucher_cap: Option<Points>,
    /// Highest seq signed.
    pub last_seq: u64,
    /// Highest seq with every receipt stored.
    pub receipted_seq: u64,
    /// Outbox counts.
    pub outbox: OutboxCounts,
    /// Unconfirmed spend at this node.
    pub exposure: Points,
    /// Fact cursor.
    pub fact_cursor: u64,
    /// Own transactions with a reason attached (rejected, or stuck at the hub).
    pub troubled: Vec<OutboxRow>,
    /// Rejections of transactions carried for other nodes.
    pub foreign_rejections: u64,
    /// Rights received from LAN peers and withdrawn because the hub
    /// rejected this node's acceptance of them (newest first).
    pub withdrawn_rights: Vec<WithdrawnRight>,
    /// The LAN groups whose roster names this node: (municipality, group,
    /// members).
    pub lan_groups: Vec<(MunicipalityCode, String, u64)>,
    /// Whether strict mode is on for this node's municipality, as the hub
    /// last said (`None`: not enrolled yet, so no municipality known).
    pub strict: Option<(MunicipalityCode, bool)>,
}

/// A node: its key, its store, the hub key it trusts.
pub struct Node {
    pub(crate) key: NodeKey,
    pub(crate) hub: NodeId,
    pub(crate) store: Store,
    /// Shard documents, sync states and the hub's last shard list in memory.
    pub(crate) shards: crate::shards::ShardCache,
}

impl std::fmt::Debug for Node {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Node({})", self.key.id().short())
    }
}

impl Node {
    /// Opens a node on a store file with a key, trusting `hub` for facts.
    /// The hub key is recorded on first open; a different one later is refused.
    pub fn open(store_path: &Path, key: NodeKey, hub: NodeId) -> Result<Node, OpenError> {
        let mut store = Store::open(store_path)?;
        let held = store.read().meta("hub")?;
        match held {
            Some(h) if h.as_slice() != hub.as_bytes() => {
                return Err(OpenError::OtherHub {
                    held: hex::encode(&h),
                });
            }
            Some(_) => {}
            None => store.write(|w| {
                w.set_meta("hub", hub.as_bytes())?;
                w.set_meta("node", key.id().as_bytes())
            })?,
        }
        let node = store.read().meta("node")?;
        if node.as_deref() != Some(key.id().as_bytes()) {
            return Err(OpenError::OtherNode);
        }
        Ok(Node {
            key,
            hub,
            store,
            shards: Default::default(),
        })
    }

    /// This node's id.
    pub fn id(&self) -> NodeId {
        self.key.id()
    }

    /// The hub key trusted.
    pub fn hub(&self) -> NodeId {
        self.hub
    }

    /// The limits the hub gave this node, if any.
    pub fn limits(&self) -> Result<Option<NodeLimits>, StoreError> {
        self.store.read().limits()
    }

    /// Card tap → account, My Key ID and this facility's card numbers. Reads
    /// only the local cache; never leaves the node.
    pub fn lookup(&self, card: &CardKey) -> Result<Lookup, StoreError> {
        let r = self.store.read();
        match r.card_status(card)? {
            CardStatus::Suspended => return Ok(Lookup::Suspended),
            CardStatus::Superseded => return Ok(Lookup::Superseded),
            CardStatus::Active => {}
        }
        let Some(row) = r.card(card)? else {
            return Ok(Lookup::NotRegistered);
        };
        let here = r.limits()?.map(|l| l.municipality);
        if here.is_some_and(|m| m != row.municipality) {
            return Ok(Lookup::Visitor {
                numbers: r.numbers(row.account)?,
                account: row.account,
                home: row.municipality,
            });
        }
        Ok(Lookup::Found {
            numbers: r.numbers(row.account)?,
            account: row.account,
            my_key_id: row.my_key_id,
            municipality: row.municipality,
        })
    }

    /// Links a facility card number to the holder of `card`.
    pub fn link(
        &mut self,
        card: &CardKey,
        number: FacilityCardNumber,
        now: UnixMillis,
    ) -> Result<Done, OpError> {
        let me = self.id();
        self.decide_and_commit(now, |w| {
            let r = w.read();
            let (limits, row) = prepare(&r, me, card, OpKind::Link, now)?;
            if r.number_state(row.account, &number)?.as_deref() == Some("linked") {
                return Err(OpError::AlreadyLinked(number));
            }
            let body = TxBody::LinkFacilityCard(FacilityCardLink {
                account: row.account,
                facility: limits.facility,
                number: number.clone(),
            });
            Ok((body, Effect::Number(row.account, number, "pending-link")))
        })
    }

    /// Unlinks a facility card number.
    pub fn unlink(
        &mut self,
        card: &CardKey,
        number: FacilityCardNumber,
        now: UnixMillis,
    ) -> Result<Done, OpError> {
        let me = self.id();
        self.decide_and_commit(now, |w| {
            let r = w.read();
            let (limits, row) = prepare(&r, me, card, OpKind::Unlink, now)?;
            if r.number_state(row.account, &number)?.is_none() {
                return Err(OpError::NotLinked(number));
            }
            let body = TxBody::UnlinkFacilityCard(FacilityCardLink {
                account: row.account,
                facility: limits.facility,
                number: number.clone(),
            });
            Ok((body, Effect::Number(row.account, number, "pending-unlink")))
        })
    }

    /// Grants points from a programme. The points become spendable once the
    /// hub confirms them (a pending credit is never spent offline).
    pub fn grant(
        &mut self,
        card: &CardKey,
        program: ProgramId,
        points: Points,
        now: UnixMillis,
    ) -> Result<Done, OpError> {
        let me = self.id();
        self.decide_and_commit(now, |w| {
            let (limits, row) = prepare(&w.read(), me, card, OpKind::Grant, now)?;
            if points.is_zero() {
                return Err(Decline::ZeroAmount.into());
            }
            let body = TxBody::Grant(Grant {
                card: card.clone(),
                account: row.account,
                municipality: limits.municipality,
                program,
                points,
            });
            Ok((body, Effect::None))
        })
    }

    /// The redeem this node would sign next for `card` and `points` at
    /// `now`, as a card proof must bind it: the counter asks the card to
    /// sign this before calling [`Node::redeem`] with the proof.
    pub fn redeem_binding(
        &self,
        card: &CardKey,
        points: Points,
        now: UnixMillis,
    ) -> Result<RedeemBinding, OpError> {
        let r = self.store.read();
        let (limits, row) = prepare(&r, self.id(), card, OpKind::Redeem, now)?;
        let redeem = Redeem {
            card: card.clone(),
            account: row.account,
            municipality: limits.municipality,
            points,
            merchant: limits.facility,
            basis: None,
            card_proof: None,
        };
        let seq = r.last_tx()?.0 + 1;
        Ok(RedeemBinding::new(self.id(), seq, now, &redeem))
    }

    /// Spends points, under the offline rules. Above the PIN threshold the
    /// holder's proof is needed: a [`VerifiedCardProof`] bound to exactly
    /// this redeem (see [`Node::redeem_binding`]); the redeem carries its
    /// signature, which the hub verifies with the card's registered key.
    /// Balances, pending spends, limits and rights are read, the spend is
    /// decided, signed and committed in one IMMEDIATE transaction, so a fact
    /// batch written meanwhile by another process cannot make it stale.
    pub fn redeem(
        &mut self,
        card: &CardKey,
        points: Points,
        proof: Option<&VerifiedCardProof>,
        now: UnixMillis,
    ) -> Result<Done, OpError> {
        let me = self.id();
        self.decide_and_commit(now, |w| {
            let r = w.read();
            let (limits, row) = prepare(&r, me, card, OpKind::Redeem, now)?;
            let m = limits.municipality;
            let (confirmed_balance, confirmed_debt) = r.balance(row.account, m)?;
            let strict = r.strict(m)?;
            let view = SpendView {
                confirmed_balance,
                confirmed_debt,
                pending_on_account: r.pending_on_account(row.account, m)?,
                card_unconfirmed_here: r.pending_on_card(card)?,
                node_exposure: r.exposure()?,
                right: if strict {
                    Some(r.right(row.account, m)?.0)
                } else {
                    None
                },
            };
            let mut redeem = Redeem {
                card: card.clone(),
                account: row.account,
                municipality: m,
                points,
                merchant: limits.facility.clone(),
                basis: r.basis(row.account, m)?,
                card_proof: None,
            };
            let proof = match proof {
                Some(p) => {
                    let seq = r.last_tx()?.0 + 1;
                    if p.binding() != &RedeemBinding::new(me, seq, now, &redeem) {
                        return Err(OpError::ProofNotForThis);
                    }
                    redeem.card_proof = Some(p.signature().clone());
                    Some(p)
                }
                None => None,
            };
            let status = r.card_status(card)?;
            if let Err(d) = rules::decide_redeem(&limits, status, &view, points, proof) {
                info!(node = %me.short(), card = %card.short(), %points, "redeem declined: {d}");
                return Err(d.into());
            }
            let effect = if strict {
                Effect::SpendRight(row.account, m, points)
            } else {
                Effect::None
            };
            Ok((TxBody::Redeem(redeem), effect))
        })
    }

    /// The donation this node would sign next for `card` at `now`, as the
    /// card's PIN proof must bind it: the kiosk asks the card to sign this
    /// before calling [`Node::donate`] with the proof.
    pub fn donation_binding(
        &self,
        card: &CardKey,
        programme: ProgramId,
        points: Points,
        now: UnixMillis,
    ) -> Result<DonationBinding, OpError> {
        let r = self.store.read();
        let (limits, row) = prepare(&r, self.id(), card, OpKind::Redeem, now)?;
        let d = Donate {
            card: card.clone(),
            account: row.account,
            municipality: limits.municipality,
            points,
            programme,
            card_proof: mykey_sync_proto::CardSignature::new(vec![0])
                .map_err(|_| OpError::ProofNotForThis)?,
        };
        let seq = r.last_tx()?.0 + 1;
        Ok(DonationBinding::new(self.id(), seq, now, &d))
    }

    /// The open donation programmes of this node's municipality, as the hub
    /// last told them (empty before the node has its limits).
    pub fn donation_programmes(
        &self,
    ) -> Result<Vec<(ProgramId, mykey_sync_proto::DonationRecipient)>, StoreError> {
        let r = self.store.read();
        match r.limits()? {
            Some(l) => r.open_donation_programmes(l.municipality, MAX_DONATION_PROGRAMMES),
            None => Ok(vec![]),
        }
    }

    /// Gives points to a donation programme (issue 19), with the card's PIN
    /// proof bound to exactly this donation ([`Node::donation_binding`]).
    /// The node checks what it can (the card, its town, the amount against
    /// the hub-confirmed balance less what is pending here) and signs it
    /// into the outbox; the hub decides the rest (the proof, the programme
    /// open) and refuses it whole, moving nothing, if they fail.
    pub fn donate(
        &mut self,
        proof: &VerifiedDonationProof,
        now: UnixMillis,
    ) -> Result<Done, OpError> {
        let me = self.id();
        let b = proof.binding().clone();
        self.decide_and_commit(now, |w| {
            let r = w.read();
            let (limits, row) = prepare(&r, me, &b.card, OpKind::Redeem, now)?;
            if b.points.is_zero() {
                return Err(Decline::ZeroAmount.into());
            }
            let d = Donate {
                card: b.card.clone(),
                account: row.account,
                municipality: limits.municipality,
                points: b.points,
                programme: b.programme.clone(),
                card_proof: proof.signature().clone(),
            };
            let seq = r.last_tx()?.0 + 1;
            if DonationBinding::new(me, seq, now, &d) != b {
                return Err(OpError::ProofNotForThis);
            }
            let m = limits.municipality;
            if !r
                .open_donation_programmes(m, MAX_DONATION_PROGRAMMES)?
                .iter()
                .any(|(p, _)| *p == b.programme)
            {
                return Err(OpError::NoSuchDonationProgramme(b.programme.clone()));
            }
            let (confirmed, _) = r.balance(row.account, m)?;
            // Pending redeems and donations, own and LAN peers'.
            let available = confirmed.saturating_sub(r.pending_on_account(row.account, m)?);
            if b.points > available {
                return Err(OpError::DonationBeyondBalance {
                    points: b.points,
                    available,
                });
            }
            info!(node = %me.short(), card = %b.card.short(), points = %b.points, programme = %b.programme, "donation signed");
            Ok((TxBody::Donate(d), Effect::None))
        })
    }

    /// The kiosk voucher issue this node would sign next for `card` at
    /// `now` (issue 17 part 1(a)): the vouchers' points and last valid day
    /// as chosen, the next kiosk batch and seq, as the card's PIN proof must
    /// bind them. The kiosk asks the card to sign this before calling
    /// [`Node::issue_vouchers`] with the proof.
    pub fn voucher_issue_binding(
        &self,
        card: &CardKey,
        denominations: Vec<u32>,
        expires: mykey_voucher::ExpiryDate,
        now: UnixMillis,
    ) -> Result<VoucherIssueBinding, OpError> {
        let r = self.store.read();
        let (limits, row) = prepare(&r, self.id(), card, OpKind::Redeem, now)?;
        let k = KioskIssue {
            card: card.clone(),
            account: row.account,
            municipality: limits.municipality,
            // Saturated: `check` refuses anything that large.
            points: Points::new(
                denominations
                    .iter()
                    .map(|d| u64::from(*d))
                    .sum::<u64>()
                    .min(Points::MAX),
            )
            .map_err(|_| OpError::ProofNotForThis)?,
            denominations,
            batch: next_kiosk_batch(&r)?,
            expires_days: expires.days(),
            card_proof: mykey_sync_proto::CardSignature::new(vec![0])
                .map_err(|_| OpError::ProofNotForThis)?,
        };
        k.check()?;
        let seq = r.last_tx()?.0 + 1;
        Ok(VoucherIssueBinding::new(self.id(), seq, now, &k))
    }

    /// Turns a holder's points into vouchers (issue 17 part 1(a)), with the
    /// card's PIN proof bound to exactly this issue
    /// ([`Node::voucher_issue_binding`]). The node checks what it can (the
    /// card, its town, that the hub vouched for it as voucher issuer, the
    /// vouchers' split and last day, the amount against the hub-confirmed
    /// balance less what is pending here) and, in one write transaction,
    /// signs the issue into the outbox, where it counts against the wallet
    /// until the hub answers, and takes the kiosk batch number. The
    /// vouchers, signed with the node's key under its issuer number, are
    /// returned only once that is durable; they are made again, byte for
    /// byte, from the issue ([`kiosk_vouchers`]). The hub decides the rest
    /// and refuses the issue whole if it fails, and then the vouchers too.
    pub fn issue_vouchers(
        &mut self,
        proof: &VerifiedVoucherIssueProof,
        now: UnixMillis,
    ) -> Result<(Done, Vec<mykey_voucher::SignedVoucher>), OpError> {
        let me = self.id();
        let b = proof.binding().clone();
        let mut made = None;
        let done = self.decide_and_commit(now, |w| {
            let r = w.read();
            let (limits, row) = prepare(&r, me, &b.card, OpKind::Redeem, now)?;
            let m = limits.municipality;
            let k = KioskIssue {
                card: b.card.clone(),
                account: row.account,
                municipality: m,
                points: b.points,
                denominations: b.denominations.clone(),
                batch: next_kiosk_batch(&r)?,
                expires_days: b.expires_days,
                card_proof: proof.signature().clone(),
            };
            let seq = r.last_tx()?.0 + 1;
            if VoucherIssueBinding::new(me, seq, now, &k) != b {
                return Err(OpError::ProofNotForThis);
            }
            k.check()?;
            let expires = mykey_voucher::ExpiryDate::from_days(k.expires_days);
            let latest = now.0 / 86_400_000 + u64::from(mykey_sync_proto::MAX_KIOSK_VOUCHER_DAYS);
            if expires.has_passed(now) || u64::from(k.expires_days) > latest {
                return Err(OpError::BadVoucherExpiry);
            }
            let issuer = r.own_voucher_issuer(m, &me)?.ok_or(OpError::NotVoucherIssuer)?;
            let (confirmed, _) = r.balance(row.account, m)?;
            // Pending redeems, donations and issues, own and LAN peers'.
            let available = confirmed.saturating_sub(r.pending_on_account(row.account, m)?);
            if k.points > available {
                return Err(OpError::VouchersBeyondBalance {
                    points: k.points,
                    available,
                });
            }
            made = Some((k.clone(), issuer));
            info!(node = %me.short(), card = %b.card.short(), points = %k.points, batch = k.batch, n = k.denominations.len(), "kiosk vouchers signed");
            Ok((TxBody::IssueVouchers(k.clone()), Effect::KioskBatch(k.batch)))
        })?;
        // Signed once the issue is durable, so no voucher exists that the
        // outbox does not hold.
        let (k, issuer) = made.ok_or(OpError::NotVoucherIssuer)?;
        Ok((done, kiosk_vouchers(&k, issuer, &self.key)))
    }

    /// Takes a printed voucher (issue 17 part 4), offline: the hub's
    /// signature, expiry, this node's own redemptions and its offline voucher
    /// cap are checked and a `RedeemVoucher` is signed into the outbox in one
    /// write transaction.
    pub fn redeem_voucher(
        &mut self,
        v: &mykey_voucher::SignedVoucher,
        now: UnixMillis,
    ) -> Result<(Done, mykey_voucher::VerifiedVoucher), OpError> {
        let hub = self.hub();
        let mut taken_voucher = None;
        let done = self.decide_and_commit(now, |w| {
            let r = w.read();
            let limits = r.limits()?;
            let known = voucher_known(&r, v.body.serial)?;
            let issuer = match (v.issuer(), limits.as_ref()) {
                (mykey_voucher::Issuer::Node { issuer, .. }, Some(l)) => {
                    r.voucher_issuer(l.municipality, issuer)?
                }
                _ => None,
            };
            let verified = crate::voucher::decide(
                v,
                &hub,
                issuer,
                limits.as_ref(),
                r.voucher_cap()?,
                &known,
                r.vouchers_pending()?,
                now,
            )?;
            let merchant = limits
                .map(|l| l.facility)
                .ok_or(crate::voucher::VoucherDecline::NoLimits)?;
            taken_voucher = Some(verified);
            Ok((
                TxBody::RedeemVoucher(mykey_sync_proto::VoucherRedeem {
                    voucher: v.to_bytes().to_vec(),
                    merchant,
                }),
                Effect::None,
            ))
        })?;
        let verified =
            taken_voucher.ok_or(OpError::Voucher(crate::voucher::VoucherDecline::NoLimits))?;
        Ok((done, verified))
    }

    /// The issuer number the hub vouched for this node with, unless
    /// withdrawn (`None` also before the node has its limits).
    pub fn own_voucher_issuer(&self) -> Result<Option<u16>, StoreError> {
        let r = self.store.read();
        match r.limits()? {
            Some(l) => r.own_voucher_issuer(l.municipality, &self.id()),
            None => Ok(None),
        }
    }

    /// What this node holds of kiosk issuer `issuer` of its municipality
    /// (the hub's `VoucherIssuer` statement); `None` if it holds none, or
    /// is not enrolled yet.
    pub fn voucher_issuer(
        &self,
        issuer: u16,
    ) -> Result<Option<mykey_voucher::VouchedIssuer>, StoreError> {
        let r = self.store.read();
        match r.limits()? {
            Some(l) => r.voucher_issuer(l.municipality, issuer),
            None => Ok(None),
        }
    }

    /// What this node knows, offline, of earlier redemptions of the voucher
    /// `serial`: its own, its LAN peers', the hub's bitmap and cancellation.
    pub fn voucher_known(
        &self,
        serial: mykey_voucher::Serial,
    ) -> Result<crate::voucher::Known, StoreError> {
        voucher_known(&self.store.read(), serial)
    }

    /// Strict mode: gives `points` of this node's right on a wallet to
    /// another node of the municipality (a LAN peer), as a signed
    /// transaction in this node's chain; the peer takes it from the LAN.
    pub fn transfer_right(
        &mut self,
        account: AccountId,
        to: NodeId,
        points: Points,
        now: UnixMillis,
    ) -> Result<Done, OpError> {
        let me = self.id();
        self.decide_and_commit(now, |w| {
            let r = w.read();
            let limits = r.limits()?;
            let revoked = r.is_revoked(&me)?;
            let limits = rules::check_node(limits.as_ref(), revoked, OpKind::Redeem, now)?.clone();
            let m = limits.municipality;
            if points.is_zero() {
                return Err(Decline::ZeroAmount.into());
            }
            if !r.strict(m)? {
                return Err(OpError::NotStrict(m));
            }
            if to == me {
                return Err(OpError::TransferToSelf);
            }
            // Only hub-granted points move on: see `Reader::right_parts`.
            let (_, right_id, own) = r.right_parts(account, m)?;
            if points > own {
                return Err(Decline::NoRight {
                    right: own,
                    asked: points,
                }
                .into());
            }
            let grant = r
                .right_grant(account, m, right_id)?
                .ok_or(OpError::NoGrant)?;
            let body = TxBody::RightTransfer(RightTransfer {
                account,
                municipality: m,
                to,
                points,
                right_id,
                grant,
            });
            Ok((body, Effect::GiveRight(account, m, points)))
        })
    }

    /// Strict mode: how much of its right on a wallet this node may give a
    /// peer (the hub-granted part; see `Reader::right_parts`).
    pub fn giveable_right(
        &self,
        account: AccountId,
        municipality: MunicipalityCode,
    ) -> Result<Points, StoreError> {
        Ok(self.store.read().right_parts(account, municipality)?.2)
    }

    /// Strict mode: this node's remaining right on a wallet, and whether
    /// the municipality is in strict mode.
    pub fn right(
        &self,
        account: AccountId,
        municipality: MunicipalityCode,
    ) -> Result<(Points, bool), StoreError> {
        let r = self.store.read();
        Ok((r.right(account, municipality)?.0, r.strict(municipality)?))
    }

    /// Decides, signs the next transaction and commits it with its local
    /// effect, all in one IMMEDIATE write transaction: `decide` reads what
    /// it needs through the writer, so nothing it saw can change before the
    /// commit.
    fn decide_and_commit(
        &mut self,
        now: UnixMillis,
        decide: impl FnOnce(&crate::store::Writer<'_>) -> Result<(TxBody, Effect), OpError>,
    ) -> Result<Done, OpError> {
        let key = &self.key;
        let (done, kind) = self.store.write(|w| {
            let (body, effect) = decide(w)?;
            let kind = body.name();
            let done = sign_into(w, key, body, now)?;
            match effect {
                Effect::None => {}
                Effect::Number(account, number, state) => {
                    w.set_number(account, &number, Some(state))?
                }
                Effect::SpendRight(account, m, points) => {
                    w.debit_right(account, m, points, false)?
                }
                Effect::GiveRight(account, m, points) => w.debit_right(account, m, points, true)?,
                Effect::KioskBatch(batch) => {
                    w.set_meta(KIOSK_BATCH_META, &u64::from(batch).to_be_bytes())?
                }
            }
            Ok::<_, OpError>((done, kind))
        })?;
        info!(node = %self.id().short(), seq = done.seq, tx = %done.tx.short(), "{kind} committed");
        Ok(done)
    }

    // ---- sync glue -------------------------------------------------------

    /// (highest seq signed, highest seq with all receipts stored, fact cursor):
    /// what a session needs on connect.
    pub fn sync_position(&self) -> Result<(u64, u64, u64), StoreError> {
        let r = self.store.read();
        Ok((
            r.last_tx()?.0,
            r.receipted_seq()?,
            r.meta_u64("fact_cursor")?,
        ))
    }

    /// Outbox transactions from a seq.
    pub fn outbox_from(&self, from_seq: u64, max: usize) -> Result<Vec<SignedTx>, StoreError> {
        self.store.read().outbox_from(from_seq, max)
    }

    /// Stores receipts durably.
    pub fn apply_receipts(
        &mut self,
        receipts: &Receipts,
        now: UnixMillis,
    ) -> Result<(), StoreError> {
        let me = self.id();
        self.store.write(|w| {
            for rc in &receipts.receipts {
                if rc.node != me {
                    if let Outcome::Rejected(reason) = &rc.outcome {
                        // The hub names the transaction of every rejection.
                        if let Some(tx) = &rc.tx {
                            w.put_rejection(tx, &rc.node, rc.seq, &reason.to_string(), now)?;
                        }
                        if reason.is_chain_level() {
                            // The hub will not take this chain from here: its
                            // spends stop counting and are not carried again.
                            warn!(node = %me.short(), peer = %rc.node.short(), seq = rc.seq, "the hub refused a LAN peer's chain: {reason}; its spends from here on no longer count against holders");
                            w.put_peer_refusal(&rc.node, rc.seq, &reason.to_string(), now)?;
                        }
                    }
                    continue;
                }
                match &rc.outcome {
                    Outcome::Accepted {
                        ledger_pos,
                        balance,
                        debt_created,
                        quarantined,
                    } => {
                        // The hub held part of the spend as evidence: the
                        // facility is not paid for it unless an operator
                        // releases it. Shown with the node's troubled rows.
                        let held = (!quarantined.is_zero()).then(|| {
                            warn!(node = %me.short(), seq = rc.seq, %quarantined, "hub held part of a redeem in quarantine");
                            format!(
                                "{quarantined} held in quarantine at the hub (beyond this node's enrolled bounds): not paid unless an operator releases it"
                            )
                        });
                        w.set_outbox_outcome(
                            rc.seq,
                            rc.tx.as_ref(),
                            "accepted",
                            held.as_deref(),
                            Some(*ledger_pos),
                            Some(*debt_created),
                            now,
                        )?;
                        if let Some(b) = balance {
                            w.put_balance(b.account, b.municipality, b.balance, b.debt, *ledger_pos)?;
                        }
                        settle_number(w, rc.seq, true)?;
                    }
                    Outcome::Rejected(reason) if reason.is_chain_level() => {
                        // The hub did not consume the seq: keep it pending, show why.
                        warn!(node = %me.short(), seq = rc.seq, "hub cannot process own transaction: {reason}");
                        w.set_outbox_reason(rc.seq, &reason.to_string())?;
                    }
                    Outcome::Rejected(reason) => {
                        warn!(node = %me.short(), seq = rc.seq, "hub rejected: {reason}");
                        let text = reason.to_string();
                        w.set_outbox_outcome(rc.seq, rc.tx.as_ref(), "rejected", Some(&text), None, None, now)?;
                        settle_number(w, rc.seq, false)?;
                        if let Some(wd) = w.withdraw_right_credit(rc.seq, &text, now)? {
                            warn!(
                                node = %me.short(), seq = rc.seq, from = %wd.credit.sender.short(),
                                account = %wd.credit.account, points = %wd.credit.points,
                                shortfall = %wd.shortfall,
                                "the hub rejected this node's acceptance of a LAN peer's right: withdrawn ({} already spent)",
                                wd.shortfall
                            );
                        }
                    }
                }
            }
            Ok(())
        })
    }

    /// Verifies and applies facts in order, then stores the cursor, in one
    /// durable transaction. One forged fact drops the whole batch.
    pub fn apply_facts(&mut self, facts: &Facts) -> Result<usize, FactsError> {
        let mut verified = Vec::with_capacity(facts.facts.len());
        for (index, f) in facts.facts.iter().enumerate() {
            let v = f
                .verify(&self.hub)
                .map_err(|source| FactsError::NotAuthentic { index, source })?;
            verified.push(v);
        }
        let me = self.id();
        let n = verified.len();
        self.store.write(|w| {
            // The facility can arrive in this very batch (first sync), so it is
            // tracked as facts apply, not read once up front.
            let mut facility = w.read().limits()?.map(|l| l.facility);
            for v in &verified {
                apply_fact(w, me, &mut facility, v)?;
            }
            let cursor = w.read().meta_u64("fact_cursor")?.max(facts.cursor);
            w.set_meta("fact_cursor", &cursor.to_be_bytes())?;
            Ok::<_, StoreError>(())
        })?;
        Ok(n)
    }

    // ---- LAN peers -------------------------------------------------------

    /// Verifies and stores transactions signed by LAN peers, so their pending
    /// spends count against balances here and this node can carry them to the
    /// hub. The whole batch is refused if one signature fails or one signer is
    /// not on a LAN roster with this node; this node's own transactions and
    /// those of revoked keys are skipped. A signer's spends are taken while
    /// what counts of that signer stays within the per-signer cap
    /// ([`lan_rules::peer_spend_cap`]): at the first one beyond it, the rest
    /// of that signer's batch is left out (it stays unheld, so the peer
    /// offers it again once the hub confirmed its earlier spends). A right
    /// given to this node is credited only within the hub-signed grant it
    /// carries ([`lan_rules::check_right_transfer`]); otherwise it is stored
    /// (it is in the sender's chain) but credits nothing, and the reason is
    /// logged. Returns how many were new.
    pub fn accept_peer_txs(
        &mut self,
        txs: &[SignedTx],
        now: UnixMillis,
    ) -> Result<usize, PeerTxsError> {
        let mut verified = Vec::with_capacity(txs.len());
        for (index, tx) in txs.iter().enumerate() {
            let v = tx
                .verify()
                .map_err(|source| PeerTxsError::NotAuthentic { index, source })?;
            verified.push(v);
        }
        self.accept_verified_peer_txs(&verified, now)
    }

    /// [`Node::accept_peer_txs`] for transactions whose signatures the
    /// caller has checked already (a LAN offer's handler verifies each to
    /// check its signer, and verifying again cost as much again: about half
    /// of a festival simulation's time went to LAN offers).
    pub fn accept_verified_peer_txs(
        &mut self,
        verified: &[VerifiedTx],
        now: UnixMillis,
    ) -> Result<usize, PeerTxsError> {
        let me = self.id();
        let hub = self.hub;
        let key = &self.key;
        let mut accepted = 0;
        let n = self.store.write(|w| {
            for v in verified {
                let signer = v.payload().node;
                if signer != me && !w.read().shares_roster(&signer)? {
                    return Err(PeerTxsError::NotOnRoster { signer });
                }
            }
            let mut n = 0;
            let limits = w.read().limits()?;
            let municipality_here = limits.as_ref().map(|l| l.municipality);
            let cap = lan_rules::peer_spend_cap(limits.as_ref());
            let mut over_cap: Vec<NodeId> = vec![];
            for v in verified {
                let p = v.payload();
                if p.node == me || w.read().is_revoked(&p.node)? || over_cap.contains(&p.node) {
                    continue;
                }
                let (account, municipality, points) = match &p.body {
                    TxBody::Redeem(r) => (Some(r.account), Some(r.municipality), r.points),
                    TxBody::Grant(g) => (Some(g.account), Some(g.municipality), g.points),
                    TxBody::LinkFacilityCard(l) | TxBody::UnlinkFacilityCard(l) => {
                        (Some(l.account), None, Points::ZERO)
                    }
                    TxBody::RightTransfer(t) => (Some(t.account), Some(t.municipality), t.points),
                    TxBody::RightAccept(_) | TxBody::RedeemVoucher(_) => (None, None, Points::ZERO),
                    TxBody::Donate(d) => (Some(d.account), Some(d.municipality), d.points),
                    TxBody::IssueVouchers(k) => (Some(k.account), Some(k.municipality), k.points),
                };
                // A peer's donations count against wallets like its spends,
                // so they share its cap.
                if let TxBody::Redeem(_) | TxBody::Donate(_) | TxBody::IssueVouchers(_) = &p.body
                    && !w.read().peer_tx_held(&p.node, p.seq)?
                {
                    let counted = w.read().peer_pending(&p.node)?;
                    if !lan_rules::within_peer_cap(counted, points, cap) {
                        warn!(
                            node = %me.short(), peer = %p.node.short(), seq = p.seq,
                            "left out a LAN peer's spend of {points}: {counted} of its spends already count here, and one peer's may count at most {cap} (this node's exposure limit); it is offered again once the hub confirms earlier ones"
                        );
                        over_cap.push(p.node);
                        continue;
                    }
                }
                // A right given to this node counts once (by the transfer's
                // id), in its own municipality, within the hub's grant, and
                // is acknowledged in this node's chain with the sender's
                // signed transfer, so the hub moves the reservation before
                // any spend that relies on it.
                if let TxBody::RightTransfer(t) = &p.body
                    && t.to == me
                    && !w.read().right_event_seen(v.id().as_bytes())?
                {
                    let checked = match municipality_here {
                        None => Err("this node has no limits from the hub yet".to_owned()),
                        Some(ours) => {
                            let given = w.read().right_tally(&p.node, t.right_id)?;
                            lan_rules::check_right_transfer(t, &p.node, ours, &hub, given)
                                .map_err(|e| e.to_string())
                        }
                    };
                    match checked {
                        Ok(points) => {
                            w.note_right_event(v.id().as_bytes(), "transfer", points, now)?;
                            w.credit_right(t.account, t.municipality, points, 0)?;
                            w.add_right_tally(&p.node, t.right_id, points)?;
                            let accept = TxBody::RightAccept(RightAccept {
                                transfer: v.signed().clone(),
                            });
                            let done = sign_into(w, key, accept, now)?;
                            w.put_right_credit(
                                done.seq,
                                &RightCredit {
                                    sender: p.node,
                                    right_id: t.right_id,
                                    account: t.account,
                                    municipality: t.municipality,
                                    points,
                                },
                            )?;
                            accepted += 1;
                            info!(node = %me.short(), from = %p.node.short(), %points, right = t.right_id, "right received on the LAN");
                        }
                        Err(why) => {
                            // Counted as seen, so a resent offer is not logged again.
                            w.note_right_event(v.id().as_bytes(), "refused", Points::ZERO, now)?;
                            warn!(node = %me.short(), from = %p.node.short(), points = %t.points, right = t.right_id, "refused a right from a LAN peer, nothing credited: {why}");
                        }
                    }
                }
                let kind = p.body.name();
                if w.put_peer_tx(
                    &p.node,
                    p.seq,
                    v.signed(),
                    kind,
                    account,
                    municipality,
                    points,
                    now,
                )? {
                    n += 1;
                }
            }
            Ok::<_, PeerTxsError>(n)
        })?;
        if n > 0 {
            debug!(node = %me.short(), new = n, rights_received = accepted, "stored LAN peers' transactions");
        }
        Ok(n)
    }

    /// Whether a LAN peer may be admitted: the latest roster of some group
    /// names both it and this node, and its key is not revoked.
    pub fn lan_admits(&self, peer: &NodeId) -> Result<bool, StoreError> {
        let r = self.store.read();
        Ok(*peer != self.id() && !r.is_revoked(peer)? && r.shares_roster(peer)?)
    }

    /// The highest seq of a peer's chain held here without a gap (counting
    /// from what the hub has processed of it).
    pub fn peer_have_through(&self, node: &NodeId) -> Result<u64, StoreError> {
        self.store.read().peer_have_through(node)
    }

    /// Peers' transactions to carry to the hub, at most `max`, fair across
    /// signers (`turn` rotates which signer comes first; see
    /// `Reader::peer_txs_undelivered`); junk never gets here.
    pub fn peer_txs_undelivered(
        &self,
        max: usize,
        turn: usize,
    ) -> Result<Vec<SignedTx>, StoreError> {
        self.store.read().peer_txs_undelivered(max, turn)
    }

    /// A card named as a person would: its key in any spelling of its
    /// serial (the one this node knows it by is returned), or a unique
    /// prefix (4+ hex digits) of the short hash listings print.
    pub fn resolve_card(&self, text: &str) -> Result<CardKey, CardNameError> {
        let r = self.store.read();
        if let Ok(key) = CardKey::parse(text) {
            return Ok(r.known_spelling(&key)?.unwrap_or(key));
        }
        let t = text.trim().to_ascii_lowercase();
        if !(4..=8).contains(&t.len()) || !t.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(CardNameError::NotACard(text.to_owned()));
        }
        let mut found = r.cards_by_hash_prefix(&t)?;
        match found.len() {
            1 => Ok(found.remove(0)),
            0 => Err(CardNameError::Unknown(t)),
            _ => Err(CardNameError::Ambiguous(
                t,
                found
                    .iter()
                    .map(|k| k.short())
                    .collect::<Vec<_>>()
                    .join(", "),
            )),
        }
    }

    /// The nodes this node shares a LAN roster with (`give-right --to`
    /// resolves a prefix among them).
    pub fn lan_peers(&self) -> Result<Vec<NodeId>, StoreError> {
        self.store.read().lan_peers()
    }

    /// Everything a status display needs.
    pub fn status(&self) -> Result<Status, StoreError> {
        let r = self.store.read();
        let limits = r.limits()?;
        let strict = match &limits {
            Some(l) => Some((l.municipality, r.strict(l.municipality)?)),
            None => None,
        };
        Ok(Status {
            node: self.id(),
            hub: self.hub,
            strict,
            voucher_cap: r.voucher_cap()?,
            limits,
            last_seq: r.last_tx()?.0,
            receipted_seq: r.receipted_seq()?,
            outbox: r.outbox_counts()?,
            exposure: r.exposure()?,
            fact_cursor: r.meta_u64("fact_cursor")?,
            troubled: r.troubled(20)?,
            foreign_rejections: r.foreign_rejections()?,
            withdrawn_rights: r.withdrawn_rights(20)?,
            lan_groups: r.lan_groups()?,
        })
    }

    /// Confirmed balance and debt of an account, and the pending spends known.
    pub fn balance(
        &self,
        account: AccountId,
        municipality: MunicipalityCode,
    ) -> Result<(Points, Points, Points), StoreError> {
        let r = self.store.read();
        let (b, d) = r.balance(account, municipality)?;
        Ok((b, d, r.pending_on_account(account, municipality)?))
    }

    /// A wallet's earliest-expiring points and when they expire, as the hub
    /// last said (`None`: nothing known to expire).
    pub fn upcoming_expiry(
        &self,
        account: AccountId,
        municipality: MunicipalityCode,
    ) -> Result<Option<(Points, UnixMillis)>, StoreError> {
        self.store.read().upcoming_expiry(account, municipality)
    }

    /// Raw store access for tests and fault injection.
    #[doc(hidden)]
    pub fn store_mut(&mut self) -> &mut Store {
        &mut self.store
    }
}

/// The local change an operation commits with its transaction.
enum Effect {
    /// Nothing beyond the outbox row.
    None,
    /// A facility card number's local state.
    Number(AccountId, FacilityCardNumber, &'static str),
    /// Strict mode: a spend from this node's right.
    SpendRight(AccountId, MunicipalityCode, Points),
    /// Strict mode: part of the hub-granted right given to a peer.
    GiveRight(AccountId, MunicipalityCode, Points),
    /// A kiosk voucher batch number taken.
    KioskBatch(u16),
}

/// The kiosk batch number this node gives its next voucher issue.
fn next_kiosk_batch(r: &crate::store::Reader<'_>) -> Result<u16, OpError> {
    u16::try_from(r.meta_u64(KIOSK_BATCH_META)? + 1).map_err(|_| OpError::KioskBatchesExhausted)
}

/// Why the vouchers of a kiosk issue were not made again
/// ([`Node::kiosk_vouchers_again`]).
#[derive(Debug, thiserror::Error)]
pub enum ReprintError {
    /// No own transaction of that seq.
    #[error("this node signed no seq {0}")]
    NoSuchSeq(u64),
    /// Another kind of transaction.
    #[error("seq {seq} is a {kind}, not a voucher issue (`mykey-node status` shows recent seqs)")]
    NotAnIssue {
        /// The seq asked for.
        seq: u64,
        /// What it is.
        kind: &'static str,
    },
    /// The hub refused the issue: its vouchers are worth nothing.
    #[error(
        "the hub refused the voucher issue of seq {seq} ({reason}): its vouchers are worth nothing, so none are printed"
    )]
    Refused {
        /// The seq asked for.
        seq: u64,
        /// The hub's reason.
        reason: String,
    },
    /// The node is no voucher issuer now.
    #[error(
        "this node is not a voucher issuer now (the hub withdrew it, or its statement has not arrived): shops would refuse its vouchers, so none are printed"
    )]
    NotIssuer,
    /// The node store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl Node {
    /// The vouchers of this node's kiosk issue `seq`, signed again (the same
    /// bytes: ed25519 is deterministic), for a receipt that jammed or was
    /// lost. Nothing is written: the hub pays each voucher once whatever
    /// the copies, and refuses the rest of a batch it never recorded.
    pub fn kiosk_vouchers_again(
        &self,
        seq: u64,
    ) -> Result<Vec<mykey_voucher::SignedVoucher>, ReprintError> {
        let Some(signed) = self.outbox_from(seq, 1)?.into_iter().find(|t| {
            t.verify()
                .is_ok_and(|v| v.payload().seq == seq && v.payload().node == self.id())
        }) else {
            return Err(ReprintError::NoSuchSeq(seq));
        };
        let v = signed.verify().map_err(|_| ReprintError::NoSuchSeq(seq))?;
        let TxBody::IssueVouchers(k) = &v.payload().body else {
            return Err(ReprintError::NotAnIssue {
                seq,
                kind: v.payload().body.kind().name(),
            });
        };
        if let Some((status, reason)) = self.store.read().outbox_status(seq)?
            && status == "rejected"
        {
            return Err(ReprintError::Refused {
                seq,
                reason: reason.unwrap_or_default(),
            });
        }
        let issuer = self.own_voucher_issuer()?.ok_or(ReprintError::NotIssuer)?;
        Ok(kiosk_vouchers(k, issuer, &self.key))
    }
}

/// Where the node keeps the last kiosk batch number it issued.
const KIOSK_BATCH_META: &str = "kiosk_voucher_batch";

/// The vouchers of a kiosk issue, signed with the node's key under the
/// issuer number the hub gave it: the same bytes each time (ed25519 is
/// deterministic), so a lost receipt is printed again from the outbox.
pub fn kiosk_vouchers(
    k: &KioskIssue,
    issuer: u16,
    key: &NodeKey,
) -> Vec<mykey_voucher::SignedVoucher> {
    let Some(batch) = mykey_voucher::Issuer::node_batch(issuer, k.batch) else {
        return vec![];
    };
    (1u16..)
        .zip(&k.denominations)
        .map(|(index, points)| {
            mykey_voucher::VoucherBody {
                key_hint: 0,
                municipality: k.municipality,
                serial: mykey_voucher::Serial { batch, index },
                points: *points,
                expires: mykey_voucher::ExpiryDate::from_days(k.expires_days),
            }
            .sign(key.signing_key())
        })
        .collect()
}

/// Node, certificate and card checks shared by every operation.
fn prepare(
    r: &crate::store::Reader<'_>,
    me: NodeId,
    card: &CardKey,
    op: OpKind,
    now: UnixMillis,
) -> Result<(NodeLimits, CardRow), OpError> {
    let limits = r.limits()?;
    let revoked = r.is_revoked(&me)?;
    let limits = rules::check_node(limits.as_ref(), revoked, op, now)?.clone();
    rules::check_card(r.card_status(card)?)?;
    let row = r.card(card)?.ok_or(OpError::NotRegistered)?;
    // A visitor's card may get this facility's card number, nothing else.
    if row.municipality != limits.municipality && !matches!(op, OpKind::Link | OpKind::Unlink) {
        return Err(OpError::Visitor {
            home: row.municipality,
        });
    }
    Ok((limits, row))
}

/// Signs the next transaction of the chain and appends it to the outbox,
/// inside the caller's write transaction.
fn sign_into(
    w: &crate::store::Writer<'_>,
    key: &NodeKey,
    body: TxBody,
    now: UnixMillis,
) -> Result<Done, StoreError> {
    let (last_seq, prev_hash) = w.read().last_tx()?;
    let seq = last_seq + 1;
    let (card, account, municipality, points) = match &body {
        TxBody::Redeem(r) => (
            Some(&r.card),
            Some(r.account),
            Some(r.municipality),
            r.points,
        ),
        TxBody::Grant(g) => (
            Some(&g.card),
            Some(g.account),
            Some(g.municipality),
            g.points,
        ),
        TxBody::LinkFacilityCard(l) | TxBody::UnlinkFacilityCard(l) => {
            (None, Some(l.account), None, Points::ZERO)
        }
        TxBody::RightTransfer(t) => (None, Some(t.account), Some(t.municipality), t.points),
        TxBody::RightAccept(_) => (None, None, None, Points::ZERO),
        TxBody::Donate(d) => (
            Some(&d.card),
            Some(d.account),
            Some(d.municipality),
            d.points,
        ),
        TxBody::IssueVouchers(k) => (
            Some(&k.card),
            Some(k.account),
            Some(k.municipality),
            k.points,
        ),
        TxBody::RedeemVoucher(r) => {
            // The outbox keeps the voucher's value, so the offline voucher
            // cap sums it (`vouchers_pending`); the node made these bytes.
            let v = <&[u8; mykey_voucher::VOUCHER_BYTES]>::try_from(r.voucher.as_slice())
                .ok()
                .and_then(|b| mykey_voucher::SignedVoucher::from_bytes(b).ok());
            match v {
                Some(v) => (None, None, Some(v.body.municipality), v.body.points()),
                None => (None, None, None, Points::ZERO),
            }
        }
    };
    let payload = TxPayload {
        node: key.id(),
        seq,
        prev_hash,
        created_at: now,
        body: body.clone(),
    };
    let tx = SignedTx::sign(&payload, key.signing_key());
    w.append_outbox(
        seq,
        &tx,
        body.name(),
        now,
        card,
        account,
        municipality,
        points,
    )?;
    Ok(Done { seq, tx: tx.id() })
}

/// A receipt for a link or unlink settles the local number state: confirmed
/// on acceptance, rolled back on rejection.
fn settle_number(w: &crate::store::Writer<'_>, seq: u64, accepted: bool) -> Result<(), StoreError> {
    // Most receipts are not for links: the stored kind says so without
    // decoding and verifying the transaction (which cost a signature check
    // per receipt, most of a catch-up's time at the node).
    let kind = w.read().outbox_kind(seq)?;
    if !kind.is_some_and(|k| k == OpKind::Link.name() || k == OpKind::Unlink.name()) {
        return Ok(());
    }
    let body = own_body(w, seq)?;
    let (l, is_link) = match &body {
        Some(TxBody::LinkFacilityCard(l)) => (l, true),
        Some(TxBody::UnlinkFacilityCard(l)) => (l, false),
        _ => return Ok(()),
    };
    let state = w.read().number_state(l.account, &l.number)?;
    let next = match (is_link, accepted, state.as_deref()) {
        (true, true, Some("pending-link")) | (false, false, Some("pending-unlink")) => {
            Some(Some("linked"))
        }
        (true, false, Some("pending-link")) | (false, true, Some("pending-unlink")) => Some(None),
        _ => None,
    };
    if let Some(n) = next {
        w.set_number(l.account, &l.number, n)?;
    }
    Ok(())
}

fn own_body(w: &crate::store::Writer<'_>, seq: u64) -> Result<Option<TxBody>, StoreError> {
    let Some(tx) = w.read().outbox_from(seq, 1)?.into_iter().next() else {
        return Ok(None);
    };
    let v = tx.verify().map_err(|e| StoreError::Corrupt {
        table: "outbox",
        detail: e.to_string(),
    })?;
    Ok((v.payload().seq == seq).then(|| v.payload().body.clone()))
}

/// Why a node could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The store was made for another hub.
    #[error("this store trusts hub key {held}, not the one configured: check the node config")]
    OtherHub {
        /// The hub key held (hex).
        held: String,
    },
    /// The store belongs to another node key.
    #[error("this store belongs to another node key: use the key file it was created with")]
    OtherNode,
}

/// Applies one verified fact to the store. A keyed fact (one kept in shards,
/// whichever way it arrived) applies only if its `hub_seq` is above the key's
/// high-water mark, so an older genuine fact never rolls a key back.
pub(crate) fn apply_fact(
    w: &crate::store::Writer<'_>,
    me: NodeId,
    facility: &mut Option<mykey_sync_proto::FacilityId>,
    v: &mykey_sync_proto::VerifiedFact,
) -> Result<bool, StoreError> {
    let p = v.payload();
    if let FactBody::FacilityCard { facility: f, .. } = &p.body
        && facility.as_ref() != Some(f)
    {
        // A facility node keeps only its own facility's numbers.
        debug!(node = %me.short(), "ignored another facility's card number");
        return Ok(false);
    }
    if let Some(item) = mykey_sync_proto::shard::item_of(p)
        && !w.raise_item_mark(item.key.as_str(), p.hub_seq)?
    {
        return Ok(false);
    }
    match &p.body {
        FactBody::CardRegistered {
            card,
            account,
            my_key_id,
            municipality,
        } => w.put_card(
            card,
            &CardRow {
                account: *account,
                my_key_id: my_key_id.clone(),
                municipality: *municipality,
            },
        )?,
        FactBody::CardStatusChanged { card, status } => w.set_card_status(card, *status)?,
        FactBody::FacilityCard {
            account,
            number,
            linked,
            ..
        } => w.set_number(*account, number, linked.then_some("linked"))?,
        FactBody::ConfirmedBalance {
            account,
            municipality,
            balance,
            debt,
            ledger_pos,
        } => w.put_balance(*account, *municipality, *balance, *debt, *ledger_pos)?,
        FactBody::NodeLimits(l) => {
            if l.node == me {
                w.set_meta("limits", &codec::encode(l))?;
                *facility = Some(l.facility.clone());
            }
        }
        FactBody::NodeVoucherCap {
            node,
            offline_voucher_cap,
        } => {
            if *node == me {
                w.set_meta("voucher_cap", &offline_voucher_cap.get().to_be_bytes())?;
            }
        }
        FactBody::VoucherIssuer {
            municipality,
            issuer,
            node,
            withdrawn,
        } => {
            let mut v = node.as_bytes().to_vec();
            v.push(u8::from(*withdrawn));
            w.set_meta(
                &crate::store::voucher_issuer_key(*municipality, *issuer),
                &v,
            )?;
        }
        FactBody::NodeProgress {
            node, through_seq, ..
        } => w.put_progress(node, *through_seq)?,
        FactBody::NodeRevoked { node } => w.put_revoked(node)?,
        FactBody::UpcomingExpiry {
            account,
            municipality,
            points,
            expires_at,
        } => w.put_expiry(*account, *municipality, *points, *expires_at)?,
        FactBody::StrictMode {
            municipality,
            strict,
        } => w.set_strict(*municipality, *strict)?,
        FactBody::SpendRight {
            account,
            municipality,
            node,
            right_id,
            points,
        } => {
            let id = format!("grant:{right_id}");
            if *node == me && w.note_right_event(id.as_bytes(), "grant", *points, p.issued_at)? {
                w.credit_right(*account, *municipality, *points, *right_id)?;
                w.put_right_grant(*right_id, *account, *municipality, v.signed())?;
            }
        }
        FactBody::SpendRightReleased {
            account,
            municipality,
            node,
        } => {
            if *node == me {
                w.clear_right(*account, *municipality)?;
            }
        }
        FactBody::VoucherMarks {
            batch,
            chunk,
            cancelled,
            redeemed,
            ..
        } => w.merge_voucher_marks(*batch, *chunk, *cancelled, redeemed)?,
        FactBody::DonationProgramme {
            municipality,
            programme,
            recipient,
            open,
        } => w.put_donation_programme(*municipality, programme, recipient, *open, p.hub_seq)?,
        FactBody::LanRoster {
            municipality,
            group,
            members,
        } => {
            if w.put_roster(*municipality, group, members, p.hub_seq)? {
                info!(node = %me.short(), %group, members = members.members().len(), named = members.contains(&me), "LAN roster from the hub");
            }
        }
    }
    Ok(true)
}

fn voucher_known(
    r: &crate::store::Reader<'_>,
    serial: mykey_voucher::Serial,
) -> Result<crate::voucher::Known, StoreError> {
    let (chunk, bit) = mykey_sync_proto::voucher_mark_chunk(serial.index);
    Ok(crate::voucher::Known {
        here: crate::voucher::serials_taken(&r.vouchers_taken()?),
        peers: crate::voucher::redemptions(&r.peer_vouchers_taken()?)
            .into_iter()
            .map(|(peer, s, seq)| (s, peer, seq))
            .collect(),
        marked: r
            .voucher_marks(serial.batch, chunk)?
            .is_some_and(|(_, bits)| bits.is_set(bit)),
        cancelled: r.voucher_batch_cancelled(serial.batch)?,
    })
}

/// Why `--card` named no card ([`Node::resolve_card`]).
#[derive(Debug, thiserror::Error)]
pub enum CardNameError {
    /// Neither a card key nor a hash prefix.
    #[error(
        "{0:?} is not a card: give the card key (ISSUER_HEX:SERIAL_HEX, `mykey-node card read`) or 4 to 8 hex digits of the card hash listings print"
    )]
    NotACard(String),
    /// No known card's hash starts so.
    #[error(
        "no card this node knows has a hash starting with {0} (give the card key, or sync with the hub first)"
    )]
    Unknown(String),
    /// Several do.
    #[error("{0} names several cards ({1}): give more digits or the card key")]
    Ambiguous(String, String),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}
