//! Lots and expiry: every credit to a wallet is a lot with an expiry from
//! its programme's or its exchange's policy ([`LotTerms`]); every debit of
//! a wallet (redeem, debt recovery, expiry) consumes the lots with the
//! earliest expiry first.
//!
//! Lots are a fold over the ledger: a credit to a wallet opens a lot, a
//! debit [`consume`]s the holder's live lots in [`consumption_order`]. The driver
//! ([`crate::Hub::sync_lots`]) walks transfers after a stored cursor, so
//! ingest (which knows nothing of lots) never has to change, and the fold
//! is exact: a debit consumes only lots credited before it. Within one
//! pass the driver keeps each debited wallet's live lots in a [`LotFold`]
//! (loaded once, in consumption order) and writes back only the lots that
//! changed, so a wallet with many lots costs no more per debit than one
//! with few.

use crate::model::{LedgerAccount, Transfer};
use mykey_sync_proto::UnixMillis;
use std::collections::{BTreeMap, HashMap};

pub use super::types::{ExpiryPolicy, Lot, LotSource, LotTerms, WalletKey};

#[cfg(test)]
const MS_PER_DAY: u64 = 86_400_000;

/// Whose wallet a transfer credits, and whose it debits. Points reserved
/// for strict mode's spend rights (`LedgerAccount::Escrow`) stay in the
/// holder's lots: reserving, moving and returning them changes no lot, and a
/// spend from a reservation uses up lots like a spend from the wallet.
pub fn wallet_side(t: &Transfer) -> (Option<WalletKey>, Option<WalletKey>) {
    let w = |a: &LedgerAccount| match a {
        LedgerAccount::Wallet(acct, m) | LedgerAccount::Escrow(acct, m, _) => Some((*acct, *m)),
        _ => None,
    };
    let (credited, debited) = (w(&t.credit), w(&t.debit));
    if credited.is_some() && credited == debited {
        return (None, None);
    }
    (credited, debited)
}

/// Consumes `amount` from `live` (already in consumption order: earliest
/// expiry first, never-expiring last, then credit order). Returns the new
/// remaining points of each lot touched. Panics if the lots hold less than
/// the amount: a wallet never goes below zero, and every credit is a lot.
pub fn consume<'a>(live: impl IntoIterator<Item = &'a Lot>, amount: u64) -> Vec<(u64, u64)> {
    let mut left = amount;
    let mut out = vec![];
    for lot in live {
        if left == 0 {
            break;
        }
        let take = lot.remaining.min(left);
        left -= take;
        out.push((lot.pos, lot.remaining - take));
    }
    assert_eq!(
        left, 0,
        "wallet debit of {amount} exceeds its lots: the lots are out of step with the ledger"
    );
    out
}

/// The key that orders lots for consumption: earliest expiry first, those
/// that never expire last, then credit order.
pub type ConsumptionKey = (bool, Option<UnixMillis>, u64);

/// A lot's [`ConsumptionKey`].
pub fn consumption_key(l: &Lot) -> ConsumptionKey {
    (l.expires_at.is_none(), l.expires_at, l.pos)
}

/// The order in which lots are consumed.
pub fn consumption_order(lots: &mut [Lot]) {
    lots.sort_by_key(consumption_key);
}

/// The live lots of the wallets a fold pass has debited, held in memory in
/// consumption order, with what changed since they were loaded. Pure: the
/// driver loads a wallet's stored live lots before its first debit
/// ([`LotFold::load`]) and stores [`LotFold::into_writes`] at the end.
#[derive(Debug, Default)]
pub struct LotFold {
    wallets: HashMap<WalletKey, BTreeMap<ConsumptionKey, FoldLot>>,
    /// Lots a debit used up: out of consumption, still to be written.
    emptied: Vec<FoldLot>,
    n_lots: usize,
}

#[derive(Debug)]
struct FoldLot {
    lot: Lot,
    /// Credited before this pass (the store holds a row for it).
    stored: bool,
    /// `remaining` differs from the stored row (or there is none yet).
    changed: bool,
}

/// What brings the stored lots up to a [`LotFold`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LotWrite {
    /// A lot credited during the pass, with its remaining points by its end.
    Insert(Lot),
    /// A stored lot's new remaining points.
    Remaining {
        /// The lot.
        pos: u64,
        /// Its points left.
        remaining: u64,
    },
}

impl LotFold {
    /// Whether the wallet's lots are held here.
    pub fn is_loaded(&self, w: &WalletKey) -> bool {
        self.wallets.contains_key(w)
    }

    /// Holds a wallet's stored live lots (in any order). Panics if the wallet
    /// is held already: its lots here may be newer than the stored ones.
    pub fn load(&mut self, w: WalletKey, live: Vec<Lot>) {
        assert!(!self.is_loaded(&w), "a wallet's lots are loaded once");
        self.n_lots += live.len();
        let lots = live
            .into_iter()
            .map(|lot| {
                assert_eq!((lot.account, lot.municipality), w, "lot of another wallet");
                let key = consumption_key(&lot);
                let held = FoldLot {
                    lot,
                    stored: true,
                    changed: false,
                };
                (key, held)
            })
            .collect();
        self.wallets.insert(w, lots);
    }

    /// A credit to a held wallet: a new lot, written at the end.
    pub fn credit(&mut self, lot: Lot) {
        let live = self
            .wallets
            .get_mut(&(lot.account, lot.municipality))
            .expect("credit to a wallet that is not loaded");
        self.n_lots += 1;
        let key = consumption_key(&lot);
        live.insert(
            key,
            FoldLot {
                lot,
                stored: false,
                changed: true,
            },
        );
    }

    /// A debit of a held wallet: [`consume`]s its lots in consumption order.
    pub fn debit(&mut self, w: &WalletKey, amount: u64) {
        let live = self
            .wallets
            .get_mut(w)
            .expect("debit of a wallet that is not loaded");
        let moves = consume(live.values().map(|l| &l.lot), amount);
        for (held, (pos, remaining)) in live.values_mut().zip(moves) {
            assert_eq!(held.lot.pos, pos, "consume walks the lots in order");
            held.lot.remaining = remaining;
            held.changed = true;
        }
        // A debit empties lots from the front only.
        while let Some(first) = live.first_entry() {
            if first.get().lot.remaining > 0 {
                break;
            }
            self.emptied.push(first.remove());
        }
    }

    /// Lots held in memory (live and used up), for bounding a pass.
    pub fn n_lots(&self) -> usize {
        self.n_lots
    }

    /// The writes that bring the store up to this fold, in position order.
    pub fn into_writes(self) -> Vec<LotWrite> {
        let mut out: Vec<LotWrite> = self
            .wallets
            .into_values()
            .flat_map(BTreeMap::into_values)
            .chain(self.emptied)
            .filter(|l| l.changed)
            .map(|l| match l.stored {
                true => LotWrite::Remaining {
                    pos: l.lot.pos,
                    remaining: l.lot.remaining,
                },
                false => LotWrite::Insert(l.lot),
            })
            .collect();
        out.sort_by_key(|w| match w {
            LotWrite::Insert(l) => l.pos,
            LotWrite::Remaining { pos, .. } => *pos,
        });
        out
    }
}

/// Lots expired at `now`: those with points left whose expiry has passed.
pub fn expired(lots: &[Lot], now: UnixMillis) -> impl Iterator<Item = &Lot> {
    lots.iter()
        .filter(move |l| l.remaining > 0 && l.expires_at.is_some_and(|e| e <= now))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::economy::calendar::Date;
    use mykey_sync_proto::{AccountId, MunicipalityCode, ProgramId};

    fn lot(pos: u64, remaining: u64, expires: Option<u64>) -> Lot {
        Lot {
            pos,
            account: AccountId::new(1).unwrap(),
            municipality: MunicipalityCode::parse("131059").unwrap(),
            source: LotSource::Other,
            amount: remaining,
            remaining,
            credited_at: UnixMillis(0),
            expires_at: expires.map(UnixMillis),
        }
    }

    #[test]
    fn earliest_expiry_first_never_last() {
        let mut lots = vec![
            lot(1, 100, None),
            lot(2, 50, Some(900)),
            lot(3, 70, Some(500)),
        ];
        consumption_order(&mut lots);
        assert_eq!(
            lots.iter().map(|l| l.pos).collect::<Vec<_>>(),
            vec![3, 2, 1]
        );
        assert_eq!(consume(&lots, 100), vec![(3, 0), (2, 20)]);
        assert_eq!(
            expired(&lots, UnixMillis(500))
                .map(|l| l.pos)
                .collect::<Vec<_>>(),
            vec![3]
        );
    }

    /// A stored lot table folded the old way: every debit reloads the
    /// wallet's live lots and writes each lot it touches.
    fn reload_per_debit(table: &mut BTreeMap<u64, Lot>, w: WalletKey, amount: u64) {
        let mut live: Vec<Lot> = table
            .values()
            .filter(|l| (l.account, l.municipality) == w && l.remaining > 0)
            .cloned()
            .collect();
        consumption_order(&mut live);
        for (pos, remaining) in consume(&live, amount) {
            table.get_mut(&pos).unwrap().remaining = remaining;
        }
    }

    fn apply(table: &mut BTreeMap<u64, Lot>, fold: LotFold) {
        for w in fold.into_writes() {
            match w {
                LotWrite::Insert(l) => assert!(table.insert(l.pos, l).is_none()),
                LotWrite::Remaining { pos, remaining } => {
                    table.get_mut(&pos).unwrap().remaining = remaining;
                }
            }
        }
    }

    proptest::proptest! {
        /// Held in memory and written back (now and then, as a bounded pass
        /// does), the lots end exactly as reloading them for every debit.
        #[test]
        fn a_fold_in_memory_ends_as_reloading_per_debit(
            ops in proptest::collection::vec(
                (0..3u64, proptest::bool::ANY, 1..200u64, proptest::option::of(0..5u64), 0..8u8),
                1..200,
            )
        ) {
            let (mut old, mut new) = (BTreeMap::new(), BTreeMap::new());
            let mut fold = LotFold::default();
            let mut balance = [0u64; 3];
            for (pos, (holder, credit, points, expiry, flush)) in ops.into_iter().enumerate() {
                let pos = pos as u64 + 1;
                let w = (AccountId::new(holder + 1).unwrap(), MunicipalityCode::parse("131059").unwrap());
                if credit {
                    let l = Lot {
                        pos,
                        account: w.0,
                        municipality: w.1,
                        amount: points,
                        remaining: points,
                        expires_at: expiry.map(|e| UnixMillis(e * 100)),
                        ..lot(pos, points, None)
                    };
                    balance[holder as usize] += points;
                    old.insert(pos, l.clone());
                    if fold.is_loaded(&w) {
                        fold.credit(l);
                    } else {
                        new.insert(pos, l);
                    }
                } else {
                    let amount = points.min(balance[holder as usize]);
                    if amount == 0 {
                        continue;
                    }
                    balance[holder as usize] -= amount;
                    reload_per_debit(&mut old, w, amount);
                    if !fold.is_loaded(&w) {
                        let live = new.values().filter(|l: &&Lot| (l.account, l.municipality) == w && l.remaining > 0).cloned().collect();
                        fold.load(w, live);
                    }
                    fold.debit(&w, amount);
                }
                if flush == 0 {
                    apply(&mut new, std::mem::take(&mut fold));
                }
            }
            apply(&mut new, fold);
            proptest::prop_assert_eq!(old, new);
        }
    }

    #[test]
    fn only_changed_lots_are_written() {
        let w = (
            AccountId::new(1).unwrap(),
            MunicipalityCode::parse("131059").unwrap(),
        );
        let mut fold = LotFold::default();
        fold.load(
            w,
            vec![
                lot(1, 100, None),
                lot(2, 50, Some(900)),
                lot(3, 70, Some(500)),
            ],
        );
        fold.credit(lot(4, 30, Some(100)));
        fold.debit(&w, 60);
        fold.debit(&w, 10);
        assert_eq!(fold.n_lots(), 4);
        assert_eq!(
            fold.into_writes(),
            vec![
                LotWrite::Remaining {
                    pos: 3,
                    remaining: 30
                },
                LotWrite::Insert(Lot {
                    remaining: 0,
                    ..lot(4, 30, Some(100))
                }),
            ]
        );
    }

    #[test]
    fn policies() {
        // Credited 2026-11-24 JST; fy+1 ends 2028-03-31 24:00 JST.
        let t = Date::new(2026, 11, 24).unwrap().start();
        let fy = ExpiryPolicy::parse("fy+1").unwrap();
        assert_eq!(
            fy.expires_at(t),
            Some(Date::new(2028, 4, 1).unwrap().start())
        );
        assert_eq!(
            ExpiryPolicy::parse("180d").unwrap().expires_at(t),
            Some(t.plus_ms(180 * MS_PER_DAY))
        );
        for text in ["never", "fy+0", "fy+2", "30d"] {
            assert_eq!(ExpiryPolicy::parse(text).unwrap().to_string(), text);
        }
        assert!(ExpiryPolicy::parse("0d").is_none());
        assert!(ExpiryPolicy::parse("soon").is_none());
    }

    #[test]
    fn a_credit_opens_a_full_lot_expiring_from_hub_time() {
        let w = (
            AccountId::new(7).unwrap(),
            MunicipalityCode::parse("131059").unwrap(),
        );
        let program = ProgramId::parse("volunteer").unwrap();
        let t = Transfer {
            pos: 42,
            debit: LedgerAccount::ProgramBudget(program.clone(), w.1),
            credit: LedgerAccount::Wallet(w.0, w.1),
            amount: mykey_sync_proto::Points::new(300).unwrap(),
            kind: crate::model::TransferKind::Grant,
            origin_tx: None,
            hub_time: UnixMillis(5 * MS_PER_DAY),
            // The node's clock never places a lot.
            node_time: Some(UnixMillis(1)),
        };
        for (policy, expires_at) in [
            (ExpiryPolicy::Never, None),
            (
                ExpiryPolicy::Days { days: 2 },
                Some(UnixMillis(7 * MS_PER_DAY)),
            ),
        ] {
            let source = LotSource::Program(program.clone());
            let terms = LotTerms::posted(source.clone(), policy, t.hub_time);
            assert_eq!(
                Lot::credited_by(&t, w, terms),
                Lot {
                    pos: 42,
                    account: w.0,
                    municipality: w.1,
                    source,
                    amount: 300,
                    remaining: 300,
                    credited_at: UnixMillis(5 * MS_PER_DAY),
                    expires_at,
                },
                "{policy}"
            );
        }
    }
}
