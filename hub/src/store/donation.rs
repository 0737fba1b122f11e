//! Storage for donation programmes (`crate::donation`): what a
//! municipality declared (the recipient named, open or closed), and what
//! its holders' donated accounts hold in all.
//!
//! A supertrait of [`super::StoreTx`] with the same transaction contract.
//! The recipient's bank account is a payee like a merchant's
//! ([`super::economy::Party::Donation`]); the donations themselves are
//! ledger transfers into `LedgerAccount::Donated`, so there is no table of
//! donations.

use super::StoreError;
use mykey_sync_proto::{MunicipalityCode, ProgramId, UnixMillis};

/// A declared donation programme.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DonationProgramRow {
    /// Its id (the namespace of grant programmes is kept apart by the driver).
    pub id: ProgramId,
    /// The municipality whose points it takes.
    pub municipality: MunicipalityCode,
    /// Who receives the money, as holders see it (e.g. the disaster-hit town).
    pub recipient: String,
    /// When it was declared.
    pub opened_at: UnixMillis,
    /// When it was closed, if so: no donation after.
    pub closed_at: Option<UnixMillis>,
}

/// Donation storage; see the module docs.
pub trait DonationTx {
    /// Adds a programme.
    fn insert_donation_program(&mut self, p: &DonationProgramRow) -> Result<(), StoreError>;
    /// A programme by id.
    fn donation_program(
        &mut self,
        id: &ProgramId,
    ) -> Result<Option<DonationProgramRow>, StoreError>;
    /// Every programme, by id.
    fn donation_programs(&mut self) -> Result<Vec<DonationProgramRow>, StoreError>;
    /// Closes an open programme (no-op if closed).
    fn close_donation_program(&mut self, id: &ProgramId, at: UnixMillis) -> Result<(), StoreError>;
    /// Points ever donated to `program` (the sum of its donated accounts'
    /// balances; nothing is ever debited from them).
    fn donated_total(&mut self, program: &ProgramId) -> Result<u64, StoreError>;
}
