//! Settlement periods that ended and were not closed: what `/metrics`
//! exposes as `mykey_hub_settlement_overdue_periods`, so an operator's
//! Prometheus says when a settlement run is missing.

use crate::Hub;
use crate::store::StoreError;
use mykey_sync_proto::{MunicipalityCode, UnixMillis};

/// Counting stops here: past it the number says "far behind" well enough.
pub const MAX_OVERDUE_COUNTED: u32 = 1000;

impl Hub {
    /// Per municipality, how many of its settlement periods ended at or
    /// before `now` and are not closed yet (0 for each on time), cut the
    /// same way `close_periods` cuts them: from the end of the last closed
    /// period, or from the period holding the ledger's first transfer.
    pub fn settlement_overdue(
        &mut self,
        now: UnixMillis,
    ) -> Result<Vec<(MunicipalityCode, u32)>, StoreError> {
        let mut st = self.store.begin_read()?;
        let first = st.transfers(0, 1)?.first().map(|t| t.hub_time);
        let mut out = vec![];
        for m in st.municipalities()? {
            let cycle = st.settlement_cycle(m.code)?.unwrap_or_default();
            let start = match (st.periods(m.code)?.pop(), first) {
                (Some(p), _) => Some(p.ends_at),
                (None, Some(t)) => Some(cycle.period_of(t).0.start()),
                (None, None) => None,
            };
            let mut n = 0;
            if let Some(mut start) = start {
                while n < MAX_OVERDUE_COUNTED {
                    let end = cycle.period_of(start).1.start();
                    if end > now {
                        break;
                    }
                    n += 1;
                    start = end;
                }
            }
            out.push((m.code, n));
        }
        Ok(out)
    }
}
