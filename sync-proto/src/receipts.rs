//! Receipts on the wire as ranges (issue 20, goal 2).
//!
//! The hub decides one [`Receipt`] per transaction of a push ([`Receipts`]);
//! they travel as [`ReceiptRanges`]: grouped per signing node, each group in
//! seq order, where a run of consecutive seqs accepted at evenly spaced
//! ledger positions with nothing else to say (no debt, no quarantine) is one
//! [`Run::Accepted`], and every other receipt (a rejection,
//! debt, quarantine) is listed on its own. Balance snapshots ride beside the
//! runs, only the last one per wallet in the answer, each naming the receipt
//! it belongs to.
//!
//! What the compact form leaves out, on purpose:
//! - the id of an accepted transaction: a node matches its rows by
//!   (node, seq), and the hub only accepts the chain the node signed;
//! - a balance snapshot followed by a later one of the same wallet in the
//!   same answer (the node keeps the highest ledger position anyway);
//! - a second receipt for the same (node, seq): only a push that repeats a
//!   seq draws one, and the first verdict is kept;
//! - the hub's order across signers (receipts are matched per signer).
//!
//! Decoding is hostile-input safe: [`ReceiptRanges::check`] walks the runs
//! without allocating and refuses an empty run, a run past `u64`, groups
//! whose seqs overlap or go backwards, a signer listed twice, a balance that
//! names no accepted receipt or comes out of order, and more receipts in all
//! than the caller's bound; [`ReceiptRanges::expand`] allocates only after
//! that check.

use crate::ids::{AccountId, MunicipalityCode, NodeId, Points, TxId};
use crate::wire::{BalanceSnapshot, Outcome, Receipt, Receipts, RejectReason};
use serde::{Deserialize, Serialize};
use std::collections::{HashMap, HashSet};

/// The hub's answer to a push as it travels (module docs).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReceiptRanges {
    /// One group per signing node, in the order the hub first answered it.
    pub signers: Vec<SignerRuns>,
    /// The last balance snapshot per wallet, by receipt index, ascending.
    pub balances: Vec<BalanceAt>,
    /// The highest seq of the requesting node now processed.
    pub processed_seq: u64,
}

/// One signing node's receipts, in strictly increasing seq order.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SignerRuns {
    /// The signing node.
    pub node: NodeId,
    /// Its runs; each starts after the previous one ends.
    pub runs: Vec<Run>,
}

/// Consecutive receipts of one signer.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Run {
    /// `count` (≥ 1) consecutive seqs from `seq`, all accepted with no debt
    /// and no quarantine, the k-th at ledger position `ledger_pos + k × step`.
    Accepted {
        /// The first seq.
        seq: u64,
        /// How many.
        count: u32,
        /// The first one's ledger position.
        ledger_pos: u64,
        /// The distance between neighbours' ledger positions.
        step: u64,
    },
    /// One receipt with more to say.
    One {
        /// Its seq.
        seq: u64,
        /// What the hub said.
        said: Said,
    },
}

/// A receipt that does not fit a run.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Said {
    /// Applied, with debt or quarantine.
    Accepted {
        /// The ledger position of its effect.
        ledger_pos: u64,
        /// Debt the hub recorded (offline overdraft).
        debt_created: Points,
        /// Points the hub held in quarantine.
        quarantined: Points,
    },
    /// Not applied, for this reason.
    Rejected {
        /// The transaction id, which a node keeps with a carried peer's
        /// rejection.
        tx: Option<TxId>,
        /// Why.
        reason: RejectReason,
    },
}

/// A wallet's confirmed balance after the receipt at `index` (counted over
/// the expanded receipts, signer group by signer group).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BalanceAt {
    /// Which receipt (it must be an accepted one).
    pub index: u32,
    /// The balance.
    pub balance: BalanceSnapshot,
}

/// Why a [`ReceiptRanges`] was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReceiptsError {
    /// More receipts than the bound.
    #[error("the receipts expand to more than {max} entries")]
    TooMany {
        /// Bound.
        max: usize,
    },
    /// A signer group of no runs.
    #[error("receipts of node {node}: a group with no receipts")]
    EmptyGroup {
        /// Signer (short form).
        node: String,
    },
    /// A run of no receipts.
    #[error("receipts of node {node}: empty run at seq {seq}")]
    EmptyRun {
        /// Signer (short form).
        node: String,
        /// Where.
        seq: u64,
    },
    /// A run that goes past the largest seq or ledger position.
    #[error("receipts of node {node}: run at seq {seq} overflows")]
    Overflow {
        /// Signer (short form).
        node: String,
        /// Where.
        seq: u64,
    },
    /// A run that does not start after the previous one ends.
    #[error(
        "receipts of node {node}: seq {seq} does not follow seq {after} (overlapping or out-of-order ranges)"
    )]
    OutOfOrder {
        /// Signer (short form).
        node: String,
        /// The run's first seq.
        seq: u64,
        /// The previous run's last seq.
        after: u64,
    },
    /// Two groups for one signer.
    #[error("receipts of node {node} are listed in two groups")]
    SignerTwice {
        /// Signer (short form).
        node: String,
    },
    /// A balance naming a receipt that is not there or not accepted, or
    /// not after the previous balance's.
    #[error("balance snapshot at receipt {index}: {why}")]
    BadBalance {
        /// The index it names.
        index: u32,
        /// What is wrong.
        why: &'static str,
    },
}

impl ReceiptRanges {
    /// The compact form of the hub's receipts (module docs).
    pub fn from_receipts(r: &Receipts) -> ReceiptRanges {
        // Group per signer, first appearance first; within, by seq, first
        // verdict per seq kept.
        let mut order: Vec<NodeId> = Vec::new();
        let mut groups: HashMap<NodeId, Vec<usize>> = HashMap::new();
        for (i, rc) in r.receipts.iter().enumerate() {
            groups
                .entry(rc.node)
                .or_insert_with(|| {
                    order.push(rc.node);
                    Vec::new()
                })
                .push(i);
        }
        // The snapshot with the highest ledger position per wallet (the last
        // applied on ties) is the one kept.
        let mut last: HashMap<(AccountId, MunicipalityCode), (u64, usize)> = HashMap::new();
        for (i, rc) in r.receipts.iter().enumerate() {
            if let Outcome::Accepted {
                ledger_pos,
                balance: Some(b),
                ..
            } = &rc.outcome
            {
                let e = last
                    .entry((b.account, b.municipality))
                    .or_insert((*ledger_pos, i));
                if *ledger_pos >= e.0 {
                    *e = (*ledger_pos, i);
                }
            }
        }
        let keep: HashSet<usize> = last.values().map(|(_, i)| *i).collect();

        let mut signers = Vec::with_capacity(order.len());
        let mut balances = Vec::new();
        let mut index: u32 = 0;
        for node in order {
            let mut list = groups.remove(&node).unwrap_or_default();
            // Stable: the first verdict per seq leads and is the one kept.
            list.sort_by_key(|&i| r.receipts[i].seq);
            list.dedup_by_key(|i| r.receipts[*i].seq);
            let mut runs: Vec<Run> = Vec::new();
            for i in list {
                let rc = &r.receipts[i];
                let snapshot = match &rc.outcome {
                    Outcome::Accepted {
                        balance: Some(b), ..
                    } if keep.contains(&i) => Some(b.clone()),
                    _ => None,
                };
                match &rc.outcome {
                    Outcome::Accepted {
                        ledger_pos,
                        debt_created,
                        quarantined,
                        ..
                    } if debt_created.is_zero() && quarantined.is_zero() => {
                        if !extend_run(runs.last_mut(), rc.seq, *ledger_pos) {
                            runs.push(Run::Accepted {
                                seq: rc.seq,
                                count: 1,
                                ledger_pos: *ledger_pos,
                                step: 0,
                            });
                        }
                    }
                    Outcome::Accepted {
                        ledger_pos,
                        debt_created,
                        quarantined,
                        ..
                    } => runs.push(Run::One {
                        seq: rc.seq,
                        said: Said::Accepted {
                            ledger_pos: *ledger_pos,
                            debt_created: *debt_created,
                            quarantined: *quarantined,
                        },
                    }),
                    Outcome::Rejected(reason) => runs.push(Run::One {
                        seq: rc.seq,
                        said: Said::Rejected {
                            tx: rc.tx,
                            reason: reason.clone(),
                        },
                    }),
                }
                if let Some(balance) = snapshot {
                    balances.push(BalanceAt { index, balance });
                }
                index += 1;
            }
            signers.push(SignerRuns { node, runs });
        }
        ReceiptRanges {
            signers,
            balances,
            processed_seq: r.processed_seq,
        }
    }

    /// Checks the structure (module docs) without allocating and answers
    /// how many receipts it expands to, at most `max`.
    pub fn check(&self, max: usize) -> Result<usize, ReceiptsError> {
        let mut total: u64 = 0;
        // No group is empty, so there are at most `max + 1` groups when the
        // scan for a signer listed twice runs: bounded, if quadratic.
        for (g, s) in self.signers.iter().enumerate() {
            let node = || s.node.short().to_string();
            let mut after: Option<u64> = None;
            if s.runs.is_empty() {
                return Err(ReceiptsError::EmptyGroup { node: node() });
            }
            for run in &s.runs {
                let (seq, last) = run_span(run).ok_or_else(|| match run {
                    Run::Accepted { seq, count: 0, .. } => ReceiptsError::EmptyRun {
                        node: node(),
                        seq: *seq,
                    },
                    Run::Accepted { seq, .. } | Run::One { seq, .. } => ReceiptsError::Overflow {
                        node: node(),
                        seq: *seq,
                    },
                })?;
                if let Some(after) = after
                    && seq <= after
                {
                    return Err(ReceiptsError::OutOfOrder {
                        node: node(),
                        seq,
                        after,
                    });
                }
                after = Some(last);
                total += last - seq + 1;
                if total > max as u64 {
                    return Err(ReceiptsError::TooMany { max });
                }
            }
            if self.signers[..g].iter().any(|o| o.node == s.node) {
                return Err(ReceiptsError::SignerTwice { node: node() });
            }
        }
        let mut previous: Option<u32> = None;
        for b in &self.balances {
            let bad = |why| ReceiptsError::BadBalance {
                index: b.index,
                why,
            };
            if previous.is_some_and(|p| b.index <= p) {
                return Err(bad("not after the previous snapshot's receipt"));
            }
            previous = Some(b.index);
            if u64::from(b.index) >= total {
                return Err(bad("no such receipt"));
            }
            if !self.accepted_at(b.index) {
                return Err(bad("the receipt is a rejection"));
            }
        }
        Ok(total as usize)
    }

    /// The receipts, one per (node, seq), signer group by signer group, after
    /// [`check`](Self::check) with bound `max`.
    pub fn expand(&self, max: usize) -> Result<Receipts, ReceiptsError> {
        let n = self.check(max)?;
        let mut receipts = Vec::with_capacity(n);
        for s in &self.signers {
            for run in &s.runs {
                match run {
                    Run::Accepted {
                        seq,
                        count,
                        ledger_pos,
                        step,
                    } => {
                        for k in 0..u64::from(*count) {
                            // `check` proved these sums fit.
                            receipts.push(Receipt {
                                node: s.node,
                                seq: seq + k,
                                tx: None,
                                outcome: Outcome::Accepted {
                                    ledger_pos: ledger_pos + k * step,
                                    balance: None,
                                    debt_created: Points::ZERO,
                                    quarantined: Points::ZERO,
                                },
                            });
                        }
                    }
                    Run::One { seq, said } => receipts.push(Receipt {
                        node: s.node,
                        seq: *seq,
                        tx: match said {
                            Said::Rejected { tx, .. } => *tx,
                            Said::Accepted { .. } => None,
                        },
                        outcome: match said {
                            Said::Accepted {
                                ledger_pos,
                                debt_created,
                                quarantined,
                            } => Outcome::Accepted {
                                ledger_pos: *ledger_pos,
                                balance: None,
                                debt_created: *debt_created,
                                quarantined: *quarantined,
                            },
                            Said::Rejected { reason, .. } => Outcome::Rejected(reason.clone()),
                        },
                    }),
                }
            }
        }
        for b in &self.balances {
            if let Some(Receipt {
                outcome: Outcome::Accepted { balance, .. },
                ..
            }) = receipts.get_mut(b.index as usize)
            {
                *balance = Some(b.balance.clone());
            }
        }
        Ok(Receipts {
            receipts,
            processed_seq: self.processed_seq,
        })
    }

    /// How many receipts this carries (saturating; for logs of checked values).
    pub fn len(&self) -> usize {
        self.signers
            .iter()
            .flat_map(|s| &s.runs)
            .map(|r| match r {
                Run::Accepted { count, .. } => *count as usize,
                Run::One { .. } => 1,
            })
            .fold(0usize, usize::saturating_add)
    }

    /// True when it carries no receipt.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// True when receipt `index` (known to exist) is an acceptance.
    fn accepted_at(&self, index: u32) -> bool {
        let mut at = u64::from(index);
        for run in self.signers.iter().flat_map(|s| &s.runs) {
            let (n, accepted) = match run {
                Run::Accepted { count, .. } => (u64::from(*count), true),
                Run::One { said, .. } => (1, matches!(said, Said::Accepted { .. })),
            };
            if at < n {
                return accepted;
            }
            at -= n;
        }
        false
    }
}

/// (first seq, last seq) of a run, or `None` for an empty run or one whose
/// seqs or ledger positions overflow.
fn run_span(run: &Run) -> Option<(u64, u64)> {
    match run {
        Run::Accepted {
            seq,
            count,
            ledger_pos,
            step,
        } => {
            let more = u64::from(count.checked_sub(1)?);
            ledger_pos.checked_add(step.checked_mul(more)?)?;
            Some((*seq, seq.checked_add(more)?))
        }
        Run::One { seq, .. } => Some((*seq, *seq)),
    }
}

/// Adds (seq, ledger_pos) to `run` when it continues it.
fn extend_run(run: Option<&mut Run>, seq: u64, pos: u64) -> bool {
    let Some(Run::Accepted {
        seq: first,
        count,
        ledger_pos,
        step,
    }) = run
    else {
        return false;
    };
    if first.checked_add(u64::from(*count)) != Some(seq) || *count == u32::MAX {
        return false;
    }
    let last_pos = *ledger_pos + *step * u64::from(*count - 1);
    let Some(gap) = pos.checked_sub(last_pos) else {
        return false;
    };
    if *count == 1 {
        *step = gap;
    } else if gap != *step {
        return false;
    }
    *count += 1;
    true
}

#[cfg(test)]
mod tests;
