//! The holder's own read of their points (issue 19): a fresh challenge,
//! then balances, expiries and transfer history for the holder who proves
//! the card with its PIN.
//!
//! A driver over the layers below: storage (`store::holder::HolderTx`,
//! `BoundsTx::card_public_key`, the economy's exchange records and lots),
//! `ledger.rs` for balances, and `mykey_jpki::verify_holder_proof` (the
//! redeem proof's check, over a holder binding). It reads and never writes:
//! the challenge is stateless (signed by the hub key, good for
//! `HOLDER_CHALLENGE_TTL_MS`), so a kiosk's read leaves nothing at the hub
//! either, and the answer is made from the ledger, which has no field for
//! what was bought.
//!
//! A proof can be replayed by whoever saw it (the node that carried it)
//! within the challenge's two minutes, for the same answer it already saw.

use crate::hub::Hub;
use crate::ledger;
use crate::model::{LedgerAccount, Transfer, TransferKind};
use crate::store::holder::is_holders;
use crate::store::{StoreError, StoreTx};
use mykey_sync_proto::holder::{
    ChallengeError, ExpiryLine, HistoryEntry, HolderAction, HolderBinding, HolderChallenge,
    HolderHistory, HolderRefusal, HolderRequest, HolderResponse, MAX_EXPIRY_LINES,
    MAX_HISTORY_ENTRIES, MAX_HISTORY_MUNICIPALITIES, Movement, MunicipalityBalance,
    SignedHolderChallenge,
};
use mykey_sync_proto::{
    AccountId, CardKey, CardSignature, CardStatus, NodeId, PointOperator, Points, UnixMillis,
};
use std::collections::BTreeMap;
use tracing::{info, warn};

impl Hub {
    /// Answers a holder request that `node` carried (the transport-
    /// authenticated peer). Logs the card's short hash and the outcome,
    /// never what the answer holds.
    pub fn holder_request(
        &mut self,
        node: &NodeId,
        req: HolderRequest,
        now: UnixMillis,
    ) -> HolderResponse {
        match req {
            HolderRequest::LinkRequests(ask) => self.link_request_ask(node, ask, now),
            HolderRequest::Challenge { card } => match nonce() {
                Some(nonce) => HolderResponse::Challenge(SignedHolderChallenge::sign(
                    HolderChallenge {
                        node: *node,
                        card,
                        issued_at: now,
                        nonce,
                    },
                    self.key.signing_key(),
                )),
                None => HolderResponse::Refused(HolderRefusal::Unavailable),
            },
            HolderRequest::History {
                challenge,
                proof,
                max_entries,
            } => {
                let card = challenge.challenge.card.clone();
                let answer = self.holder_history(node, challenge, &proof, max_entries, now);
                match answer {
                    Ok(Ok(h)) => {
                        info!(node = %node.short(), card = %card.short(), "holder history read");
                        HolderResponse::History(h)
                    }
                    Ok(Err(refusal)) => {
                        info!(node = %node.short(), card = %card.short(), %refusal, "holder history refused");
                        HolderResponse::Refused(refusal)
                    }
                    Err(e) => {
                        warn!(node = %node.short(), card = %card.short(), error = %e, "holder history: store");
                        HolderResponse::Refused(HolderRefusal::Unavailable)
                    }
                }
            }
            HolderRequest::Order {
                order,
                proof,
                certificate,
            } => self.holder_order(node, order, proof, certificate, now),
            HolderRequest::MyKeyIdFree { my_key_id } => {
                match self
                    .store
                    .begin_read()
                    .and_then(|mut st| st.account_by_my_key_id(&my_key_id))
                {
                    Ok(owner) => HolderResponse::MyKeyIdFree(owner.is_none()),
                    Err(e) => {
                        warn!(node = %node.short(), error = %e, "holder ID check: store");
                        HolderResponse::Refused(HolderRefusal::Unavailable)
                    }
                }
            }
        }
    }

    fn holder_history(
        &mut self,
        node: &NodeId,
        challenge: SignedHolderChallenge,
        proof: &CardSignature,
        max_entries: u32,
        now: UnixMillis,
    ) -> Result<Result<HolderHistory, HolderRefusal>, StoreError> {
        let card = challenge.challenge.card.clone();
        if let Err(e) = challenge.check(&self.key.id(), node, &card, now) {
            return Ok(Err(match e {
                ChallengeError::Stale => HolderRefusal::StaleChallenge,
                ChallengeError::NotOurs | ChallengeError::Elsewhere => {
                    HolderRefusal::ForeignChallenge
                }
            }));
        }
        let mut st = self.store.begin_read()?;
        let Some((record, key)) = card_any_spelling(&mut *st, &card)? else {
            return Ok(Err(HolderRefusal::UnknownCard));
        };
        if record.status != CardStatus::Active {
            return Ok(Err(HolderRefusal::CardNotActive));
        }
        let Some(public_key) = st.card_public_key(&key)? else {
            return Ok(Err(HolderRefusal::NoCardKey));
        };
        let binding = HolderBinding {
            challenge,
            action: HolderAction::ReadHistory,
        };
        if mykey_jpki::verify_holder_proof(&public_key, &binding, proof).is_err() {
            return Ok(Err(HolderRefusal::BadProof));
        }
        let Some(account) = st.account(record.account)? else {
            return Err(StoreError::Corrupt {
                what: "card's account",
                detail: format!("{} names no account", record.account),
            });
        };
        let max = max_entries.clamp(1, MAX_HISTORY_ENTRIES);
        let (entries, more) = history(&mut *st, record.account, max)?;
        Ok(Ok(HolderHistory {
            account: account.id,
            my_key_id: account.my_key_id,
            as_of: now,
            balances: balances(&mut *st, record.account)?,
            entries,
            more,
        }))
    }
}

/// A card record under any spelling of its serial, with the spelling stored.
fn card_any_spelling(
    st: &mut dyn StoreTx,
    card: &CardKey,
) -> Result<Option<(crate::model::CardRecord, CardKey)>, StoreError> {
    for k in card.spellings() {
        if let Some(c) = st.card(&k)? {
            return Ok(Some((c, k)));
        }
    }
    Ok(None)
}

fn nonce() -> Option<[u8; 16]> {
    let mut n = [0u8; 16];
    getrandom::fill(&mut n).ok()?;
    Some(n)
}

/// Balances and expiries in every municipality the holder has points in.
fn balances(
    st: &mut dyn StoreTx,
    account: AccountId,
) -> Result<Vec<MunicipalityBalance>, StoreError> {
    let mut out = Vec::new();
    for m in st
        .holder_municipalities(account)?
        .into_iter()
        .take(MAX_HISTORY_MUNICIPALITIES)
    {
        let wallet = ledger::wallet_balance(st, account, m)?;
        let (reserved, _) = ledger::reserved_balance(st, account, m)?;
        let held = ledger::held_balance(st, account, m)?;
        let mut by_date: BTreeMap<UnixMillis, u64> = BTreeMap::new();
        for lot in st.live_lots(account, m)? {
            if let Some(at) = lot.expires_at {
                *by_date.entry(at).or_default() += lot.remaining;
            }
        }
        let expiries = by_date
            .into_iter()
            .filter_map(|(expires_at, n)| {
                Some(ExpiryLine {
                    points: Points::new(n).ok().filter(|p| *p > Points::ZERO)?,
                    expires_at,
                })
            })
            .take(MAX_EXPIRY_LINES)
            .collect();
        let spendable =
            wallet
                .balance
                .checked_add(reserved)
                .ok_or_else(|| StoreError::Corrupt {
                    what: "holder balance",
                    detail: format!("wallet and reserved points of {account} overflow"),
                })?;
        out.push(MunicipalityBalance {
            municipality: m,
            spendable,
            held,
            debt: wallet.debt,
            expiries,
        });
    }
    Ok(out)
}

/// The newest `max` movements, and whether older ones exist.
fn history(
    st: &mut dyn StoreTx,
    account: AccountId,
    max: u32,
) -> Result<(Vec<HistoryEntry>, bool), StoreError> {
    let transfers = st.holder_transfers(account, None, max + 1)?;
    let more = transfers.len() > max as usize;
    let mut out = Vec::new();
    for t in transfers.into_iter().take(max as usize) {
        if let Some(e) = entry(st, account, &t)? {
            out.push(e);
        }
    }
    Ok((out, more))
}

/// What one transfer means to the holder (`None`: a move between their own
/// accounts, or the premium leg of an exchange shown with it).
fn entry(
    st: &mut dyn StoreTx,
    account: AccountId,
    t: &Transfer,
) -> Result<Option<HistoryEntry>, StoreError> {
    let mut points = t.amount;
    let movement = match (t.kind, &t.debit, &t.credit) {
        (TransferKind::Grant, LedgerAccount::ProgramBudget(p, _), _) => Movement::Grant {
            programme: p.clone(),
        },
        (TransferKind::KioskVoucherIssue, ..) => Movement::Vouchers { returned: false },
        (TransferKind::KioskVoucherReturn, ..) => Movement::Vouchers { returned: true },
        (TransferKind::Donation, _, LedgerAccount::Donated(_, p, _)) => Movement::Donation {
            programme: p.clone(),
            operator: None,
        },
        (
            TransferKind::Exchange,
            LedgerAccount::OperatorReceivable(o, _),
            LedgerAccount::Donated(_, p, _),
        ) => Movement::Donation {
            programme: p.clone(),
            operator: Some(operator(o)?),
        },
        (TransferKind::Exchange, debit, _) => {
            let record = match t.origin_tx {
                Some(o) => st.exchange_by_origin(&o)?,
                None => None,
            };
            match record {
                Some(r) => {
                    points = r.regional.checked_add(r.premium).unwrap_or(r.regional);
                    Movement::ExchangeIn {
                        operator: operator(r.operator.as_str())?,
                        operator_points: r.operator_points,
                        regional: r.regional,
                        premium: r.premium,
                        available_at: r.available_at,
                    }
                }
                None => {
                    let LedgerAccount::OperatorReceivable(o, _) = debit else {
                        return Ok(None);
                    };
                    Movement::ExchangeIn {
                        operator: operator(o)?,
                        operator_points: 0,
                        regional: t.amount,
                        premium: Points::ZERO,
                        available_at: t.hub_time,
                    }
                }
            }
        }
        // Shown with its exchange (`ExchangeIn::premium`).
        (TransferKind::Premium, ..) => return Ok(None),
        (TransferKind::Release, ..) => Movement::Released,
        (
            TransferKind::Redeem | TransferKind::RedeemOnDebt,
            _,
            LedgerAccount::MerchantPayable(f, _),
        ) => Movement::Redemption {
            place: f.clone(),
            signed_at: t.node_time,
            on_debt: t.kind == TransferKind::RedeemOnDebt,
        },
        (TransferKind::DebtRecovery, ..) => Movement::DebtRecovery,
        (TransferKind::Expiry, ..) => Movement::Expiry,
        (TransferKind::Correction, _, credit) => Movement::Correction {
            credit: is_holders(credit, account),
        },
        // Strict mode's reservations move points between the holder's own
        // accounts; quarantine and funding never touch them.
        _ => return Ok(None),
    };
    Ok(Some(HistoryEntry {
        pos: t.pos,
        at: t.hub_time,
        municipality: t.debit.municipality(),
        points,
        movement,
    }))
}

fn operator(id: &str) -> Result<PointOperator, StoreError> {
    PointOperator::parse(id).map_err(|e| StoreError::Corrupt {
        what: "exchange operator id",
        detail: e.to_string(),
    })
}
