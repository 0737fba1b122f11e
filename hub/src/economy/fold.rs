//! The lot fold: the ledger's wallet credits and debits folded into lots
//! from a stored cursor, and the `UpcomingExpiry` fact a wallet's lots call
//! for. Ingest knows nothing of it; the economy tick, the expiry job and the
//! wallet-credit path ([`crate::wallet`]) ask for it.

use super::lots::{self, ExpiryPolicy, Lot, LotFold, LotSource, LotTerms, LotWrite};
use crate::ledger;
use crate::model::{LedgerAccount, TransferKind};
use crate::store::{StoreError, StoreTx};
use mykey_sync_proto::fact::FactBody;
use mykey_sync_proto::{AccountId, MunicipalityCode, UnixMillis};
use std::collections::HashSet;

/// Transfers read per page when folding the ledger into lots.
const LOT_PAGE: u32 = 1000;

/// Most lots a fold pass holds in memory (~150 bytes each): past it, the
/// changed lots are written and the wallets reloaded when next debited.
const LOT_FOLD_MAX: usize = 200_000;

/// Folds transfers after the lot cursor into the lots, marking the wallets
/// they touch for the next expiry check (`Hub::economy_tick`).
pub(crate) fn sync_lots(st: &mut dyn StoreTx) -> Result<(), StoreError> {
    sync_lots_bounded(st, LOT_FOLD_MAX)
}

/// [`sync_lots`] holding at most about `max_lots` lots in memory.
fn sync_lots_bounded(st: &mut dyn StoreTx, max_lots: usize) -> Result<(), StoreError> {
    let mut cursor = st.lot_cursor()?;
    let mut fold = LotFold::default();
    let mut marked: HashSet<lots::WalletKey> = HashSet::new();
    loop {
        let page = st.transfers(cursor, LOT_PAGE)?;
        let Some(last) = page.last().map(|t| t.pos) else {
            break;
        };
        for t in &page {
            let (credited, debited) = lots::wallet_side(t);
            if let Some(w @ (account, m)) = credited {
                let lot = Lot::credited_by(t, w, lot_terms(st, t)?);
                // A wallet not debited yet in this pass need not be loaded:
                // its new lot goes straight to the store, where a later
                // debit's load finds it.
                if fold.is_loaded(&w) {
                    fold.credit(lot);
                } else {
                    st.insert_lot(&lot)?;
                }
                if marked.insert(w) {
                    st.mark_expiry_dirty(account, m)?;
                }
            }
            if let Some(w @ (account, m)) = debited {
                if !fold.is_loaded(&w) {
                    let live = st.live_lots(account, m)?;
                    fold.load(w, live);
                }
                fold.debit(&w, t.amount.get());
                if marked.insert(w) {
                    st.mark_expiry_dirty(account, m)?;
                }
            }
            if fold.n_lots() > max_lots {
                write_lots(st, std::mem::take(&mut fold))?;
            }
            // Marking a wallet again is harmless; remembering them all is not.
            if marked.len() > max_lots {
                marked.clear();
            }
        }
        cursor = last;
    }
    write_lots(st, fold)?;
    st.set_lot_cursor(cursor)
}

fn write_lots(st: &mut dyn StoreTx, fold: LotFold) -> Result<(), StoreError> {
    for w in fold.into_writes() {
        match w {
            LotWrite::Insert(lot) => st.insert_lot(&lot)?,
            LotWrite::Remaining { pos, remaining } => st.set_lot_remaining(pos, remaining)?,
        }
    }
    Ok(())
}

/// The `UpcomingExpiry` fact nodes should learn for a wallet, if it differs
/// from the last one emitted for it (recorded here). Folds the ledger into the
/// lots first, so call it after the wallet's transfers are posted.
pub(crate) fn expiry_fact(
    st: &mut dyn StoreTx,
    account: AccountId,
    m: MunicipalityCode,
) -> Result<Option<FactBody>, StoreError> {
    sync_lots(st)?;
    let now = earliest_expiry(&st.live_lots(account, m)?);
    let before = st.expiry_notice(account, m)?;
    // Nothing has ever expired here and nothing will: nodes need no fact.
    if before.unwrap_or((0, UnixMillis(0))) == now {
        return Ok(None);
    }
    st.set_expiry_notice(account, m, now)?;
    let (points, expires_at) = now;
    // A wallet's lots sum to its balance, which is a `Points`.
    let points = ledger::points_of(i128::from(points)).ok_or_else(|| StoreError::Corrupt {
        what: "lots",
        detail: format!("the lots of {account} in {m} hold {points} pt"),
    })?;
    Ok(Some(FactBody::UpcomingExpiry {
        account,
        municipality: m,
        points,
        expires_at,
    }))
}

/// The points of the earliest-expiring lots and when they expire
/// (`(0, UnixMillis(0))` when nothing expires).
pub fn earliest_expiry(live: &[Lot]) -> (u64, UnixMillis) {
    let Some(first) = live.iter().filter_map(|l| l.expires_at).min() else {
        return (0, UnixMillis(0));
    };
    let points = live
        .iter()
        .filter(|l| l.expires_at == Some(first))
        .map(|l| l.remaining)
        .sum();
    (points, first)
}

/// The [`LotTerms`] of a wallet credit: a grant's from its programme's
/// policy and the hub time of the grant; an exchange's (its immediate credit,
/// premium or later release) from the exchange's own record, so a release
/// posted late opens the same lot as one posted on time.
fn lot_terms(st: &mut dyn StoreTx, t: &crate::model::Transfer) -> Result<LotTerms, StoreError> {
    let other = LotTerms {
        source: LotSource::Other,
        expires_at: None,
    };
    match (&t.debit, t.kind) {
        (LedgerAccount::ProgramBudget(p, _), _) => {
            let policy = st.program_expiry(p)?.unwrap_or(ExpiryPolicy::Never);
            Ok(LotTerms::posted(
                LotSource::Program(p.clone()),
                policy,
                t.hub_time,
            ))
        }
        (_, TransferKind::Exchange | TransferKind::Premium | TransferKind::Release) => {
            let Some(origin) = t.origin_tx else {
                return Ok(other);
            };
            let Some(e) = st.exchange_by_origin(&origin)? else {
                return Ok(other);
            };
            Ok(LotTerms {
                expires_at: e.expires_at(),
                source: LotSource::Operator(e.operator),
            })
        }
        _ => Ok(other),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Hub;
    use crate::key::HubKey;
    use crate::model::{Transfer, TransferDraft};
    use mykey_sync_proto::{FacilityId, Points, ProgramId};

    /// The fold as it was: every debit reloads the wallet's live lots.
    fn sync_lots_reloading(st: &mut dyn StoreTx) -> Result<(), StoreError> {
        let mut cursor = st.lot_cursor()?;
        loop {
            let page: Vec<Transfer> = st.transfers(cursor, LOT_PAGE)?;
            let Some(last) = page.last().map(|t| t.pos) else {
                break;
            };
            for t in &page {
                let (credited, debited) = lots::wallet_side(t);
                if let Some(w @ (account, m)) = credited {
                    let terms = lot_terms(st, t)?;
                    st.insert_lot(&Lot::credited_by(t, w, terms))?;
                    st.mark_expiry_dirty(account, m)?;
                }
                if let Some((account, m)) = debited {
                    let live = st.live_lots(account, m)?;
                    for (pos, remaining) in lots::consume(&live, t.amount.get()) {
                        st.set_lot_remaining(pos, remaining)?;
                    }
                    st.mark_expiry_dirty(account, m)?;
                }
            }
            cursor = last;
        }
        st.set_lot_cursor(cursor)
    }

    fn muni() -> MunicipalityCode {
        MunicipalityCode::parse("131059").unwrap()
    }

    fn hub_with_programs() -> Hub {
        let mut hub = Hub::in_memory(HubKey::from_secret_bytes(&[3; 32])).unwrap();
        hub.add_municipality(muni(), "Bunkyo", UnixMillis(0))
            .unwrap();
        for (p, policy) in [
            ("volunteer", ExpiryPolicy::Days { days: 2 }),
            ("health", ExpiryPolicy::Days { days: 9 }),
            ("childcare", ExpiryPolicy::Never),
        ] {
            let p = ProgramId::parse(p).unwrap();
            hub.create_program(&p, muni(), Points::new(1_000_000).unwrap(), UnixMillis(0))
                .unwrap();
            hub.set_program_expiry(&p, policy).unwrap();
        }
        hub
    }

    /// Posts `ops` (holder, grant or spend, points, programme, sync after)
    /// and folds with `sync` where asked; returns every live lot and the
    /// wallets marked for an expiry check.
    fn run(
        ops: &[(u64, bool, u64, usize, bool)],
        sync: fn(&mut dyn StoreTx) -> Result<(), StoreError>,
    ) -> (Vec<Lot>, Vec<(AccountId, MunicipalityCode)>) {
        let mut hub = hub_with_programs();
        let programs = ["volunteer", "health", "childcare"].map(|p| ProgramId::parse(p).unwrap());
        let shop = FacilityId::parse("shop-1").unwrap();
        let mut balance = [0u64; 3];
        let mut st = hub.store.begin().unwrap();
        for (i, &(holder, grant, points, program, then_sync)) in ops.iter().enumerate() {
            let now = UnixMillis(i as u64 * 3_600_000);
            let wallet = LedgerAccount::Wallet(AccountId::new(holder + 1).unwrap(), muni());
            let h = holder as usize;
            let (debit, credit, amount, kind) = if grant {
                balance[h] += points;
                let budget = LedgerAccount::ProgramBudget(programs[program].clone(), muni());
                (budget, wallet, points, TransferKind::Grant)
            } else {
                let amount = points.min(balance[h]);
                balance[h] -= amount;
                let payable = LedgerAccount::MerchantPayable(shop.clone(), muni());
                (wallet, payable, amount, TransferKind::Redeem)
            };
            if amount > 0 {
                let draft = TransferDraft {
                    debit,
                    credit,
                    amount: Points::new(amount).unwrap(),
                    kind,
                    origin_tx: None,
                    node_time: None,
                };
                st.post(&draft, now).unwrap();
            }
            if then_sync {
                sync(&mut *st).unwrap();
            }
        }
        sync(&mut *st).unwrap();
        let lots = st.all_live_lots(u32::MAX).unwrap();
        let dirty = st.take_expiry_dirty(None, u32::MAX).unwrap();
        (lots, dirty)
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig { cases: 32, ..Default::default() })]

        /// Holding wallets' lots in memory (within a small bound, so some
        /// passes write back and reload midway) ends exactly as reloading
        /// them for every debit.
        #[test]
        fn the_fold_in_memory_matches_reloading_for_every_debit(
            ops in proptest::collection::vec(
                (0..3u64, proptest::bool::ANY, 1..300u64, 0..3usize, proptest::bool::weighted(0.1)),
                1..120,
            )
        ) {
            let reloading = run(&ops, sync_lots_reloading);
            let bounded = run(&ops, |st| sync_lots_bounded(st, 3));
            let unbounded = run(&ops, sync_lots);
            proptest::prop_assert_eq!(&bounded, &reloading);
            proptest::prop_assert_eq!(&unbounded, &reloading);
        }
    }
}
