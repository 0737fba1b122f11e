//! [`HolderTx`] for PostgreSQL: the trait's default methods, which scan the
//! ledger through `LedgerTx::transfers` (correct on any backend, linear in
//! the ledger). A query of its own, as `store/sqlite/holder.rs` has, is
//! still to write for a national ledger.

use super::PgTx;
use crate::store::holder::HolderTx;

impl HolderTx for PgTx<'_> {}
