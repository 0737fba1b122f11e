//! Settlement periods that ended and were not closed: what `/metrics`
//! exposes as `mykey_hub_settlement_overdue_periods`, so an operator's
//! Prometheus says when a settlement run is missing.

use crate::Hub;
use crate::economy::settlement::open_period;
use crate::store::StoreError;
use mykey_sync_proto::{MunicipalityCode, UnixMillis};

/// Counting stops here: past it the number says "far behind" well enough.
pub const MAX_OVERDUE_COUNTED: u32 = 1000;

impl Hub {
    /// Per municipality, how many of its settlement periods ended at or
    /// before `now` and are not closed yet (0 for each on time), cut from
    /// [`open_period`] as every settlement run cuts them.
    pub fn settlement_overdue(
        &mut self,
        now: UnixMillis,
    ) -> Result<Vec<(MunicipalityCode, u32)>, StoreError> {
        let mut st = self.store.begin_read()?;
        let mut out = vec![];
        for m in st.municipalities()? {
            let mut n = 0;
            if let Some(open) = open_period(&mut *st, m.code)? {
                let mut start = open.starts_at;
                while n < MAX_OVERDUE_COUNTED {
                    let end = open.cycle.period_of(start).1.start();
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
