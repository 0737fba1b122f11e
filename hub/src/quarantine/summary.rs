//! The quarantine's read model: held and decided spends summed per
//! municipality, facility and node, from one read of the store's totals.
//! The dashboard, `/metrics`, `mykey-hub nodes`, the status model and the
//! liability report read it; it knows storage rows only.

use crate::store::bounds::{QuarantineState, QuarantineTotal};
use mykey_sync_proto::{FacilityId, MunicipalityCode, NodeId};
use std::collections::BTreeMap;

/// Spends summed: how many and their points.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Sum {
    /// How many spends.
    pub items: u64,
    /// Their points.
    pub points: u64,
}

impl Sum {
    fn add(&mut self, t: &QuarantineTotal) {
        self.items += t.items;
        self.points = self.points.saturating_add(t.points);
    }
}

/// One facility's quarantine.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FacilityQuarantine {
    /// Whose points.
    pub municipality: MunicipalityCode,
    /// The facility that would be paid.
    pub facility: FacilityId,
    /// Held now.
    pub held: Sum,
    /// Released by an operator (paid).
    pub released: Sum,
    /// Rejected by an operator (never paid).
    pub rejected: Sum,
}

/// Every quarantined spend summed, from one read (see `Hub::quarantine_summary`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct QuarantineSummary {
    totals: Vec<QuarantineTotal>,
}

impl QuarantineSummary {
    /// The summary of these totals.
    pub fn new(totals: Vec<QuarantineTotal>) -> QuarantineSummary {
        QuarantineSummary { totals }
    }

    fn sum(&self, keep: impl Fn(&QuarantineTotal) -> bool) -> Sum {
        let mut s = Sum::default();
        for t in self.totals.iter().filter(|t| keep(t)) {
            s.add(t);
        }
        s
    }

    /// What a node's spends have held now.
    pub fn held_by_node(&self, node: &NodeId) -> Sum {
        self.sum(|t| t.node == *node && t.state == QuarantineState::Held)
    }

    /// What is held now in a municipality.
    pub fn held_in(&self, m: MunicipalityCode) -> Sum {
        self.sum(|t| t.municipality == m && t.state == QuarantineState::Held)
    }

    /// Every decision so far in one state (`Released` or `Rejected`).
    pub fn decided(&self, state: &QuarantineState) -> Sum {
        self.sum(|t| t.state == *state)
    }

    /// Each facility that ever had a spend quarantined, by municipality and facility.
    pub fn by_facility(&self) -> Vec<FacilityQuarantine> {
        let mut out: BTreeMap<(u32, &str), FacilityQuarantine> = BTreeMap::new();
        for t in &self.totals {
            let f = out
                .entry((t.municipality.get(), t.facility.as_str()))
                .or_insert_with(|| FacilityQuarantine {
                    municipality: t.municipality,
                    facility: t.facility.clone(),
                    held: Sum::default(),
                    released: Sum::default(),
                    rejected: Sum::default(),
                });
            match t.state {
                QuarantineState::Held => f.held.add(t),
                QuarantineState::Released => f.released.add(t),
                QuarantineState::Rejected => f.rejected.add(t),
            }
        }
        out.into_values().collect()
    }

    /// Keeps only the spends of the municipalities `keep` allows (a staff
    /// operator's view).
    pub fn retain_municipality(&mut self, keep: impl Fn(MunicipalityCode) -> bool) {
        self.totals.retain(|t| keep(t.municipality));
    }
}
