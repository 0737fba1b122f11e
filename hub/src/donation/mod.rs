//! Donation programmes (issue 19): a municipality declares one (relief for
//! a named disaster-hit town, say) with the recipient's bank account;
//! holders give points to it at a kiosk (`TxBody::Donate`, proved by the
//! card's PIN signature and decided by `rules::donation`), and national
//! point operators exchange points straight into it (`"donate_to"` in an
//! exchange request, [`crate::economy::exchange`]).
//!
//! A donation moves points to `LedgerAccount::Donated(holder, programme,
//! municipality)`, one account per holder and programme, so the holder's
//! history shows it whichever way it came. Settlement pays each programme's
//! recipient what was donated in the period (statement line
//! `donation-payout`, a `donations-*.zengin` file); the liability report
//! shows what was donated and not yet paid.
//!
//! Declaring and closing a programme tell the municipality's nodes in the
//! same transaction (`FactBody::DonationProgramme`: id, recipient text,
//! open or closed; never the bank account), so a kiosk lists the open
//! programmes offline too.
//!
//! A driver over storage (`store::donation::DonationTx`, the payees of
//! `store::economy`); `cli.rs` is `mykey-hub donation declare|close|list`.

pub mod cli;

use crate::economy::settlement::StatementKind;
use crate::economy::zengin::{self, BankDirectory, Payment, Remitter};
use crate::hub::Hub;
use crate::model::CardRecord;
use crate::rules::donation::DonationContext;
use crate::store::donation::DonationProgramRow;
use crate::store::economy::Party;
use crate::store::{StoreError, StoreTx};
use mykey_sync_proto::tx::VerifiedTx;
use mykey_sync_proto::{
    DonationBinding, DonationRecipient, FactBody, MunicipalityCode, ProgramId, Scope, TxBody,
    UnixMillis,
};

/// Longest recipient text (characters): the bound of the fact that tells
/// the municipality's nodes.
pub const MAX_RECIPIENT_CHARS: usize = DonationRecipient::MAX_CHARS;

/// What an operator declares.
#[derive(Clone, Debug)]
pub struct Declaration {
    /// The programme's id.
    pub id: ProgramId,
    /// The municipality whose points it takes.
    pub municipality: MunicipalityCode,
    /// Who receives the money, as holders read it.
    pub recipient: String,
    /// The recipient's bank account.
    pub account: zengin::BankAccount,
    /// The recipient's customer code in payout files.
    pub customer_code: u64,
}

/// Why a donation programme was not declared or closed. Nothing changed.
#[derive(Debug, thiserror::Error)]
pub enum DonationError {
    /// The recipient text is empty, too long or has control characters.
    #[error(
        "the recipient {0:?} must be 1 to {MAX_RECIPIENT_CHARS} characters without control characters (e.g. \"能登町 災害義援金\")"
    )]
    BadRecipient(String),
    /// The municipality is not registered.
    #[error("municipality {0} is not registered; add it first with `mykey-hub municipality add`")]
    UnknownMunicipality(MunicipalityCode),
    /// A donation programme of that id exists.
    #[error(
        "donation programme {0} already exists; choose another id, or see `mykey-hub donation list`"
    )]
    Exists(ProgramId),
    /// A grant programme has that id.
    #[error(
        "{0} is a grant programme's id; give the donation programme an id of its own (e.g. {0}-relief)"
    )]
    GrantProgramId(ProgramId),
    /// No donation programme of that id.
    #[error("donation programme {0} does not exist; see `mykey-hub donation list`")]
    UnknownProgram(ProgramId),
    /// The programme is closed already.
    #[error("donation programme {0} is closed already")]
    Closed(ProgramId),
    /// The recipient's bank account cannot be written in a payout file.
    #[error("the recipient's bank account cannot be used in a payout file")]
    BankAccount(#[source] zengin::ZenginError),
    /// Storage failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// A programme with what was given to it and what settlement paid.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DonationLine {
    /// The programme.
    pub program: DonationProgramRow,
    /// Points donated in all.
    pub donated: u64,
    /// Points settlement paid to the recipient (closed periods).
    pub paid: u64,
}

impl Hub {
    /// Declares a donation programme with its recipient's bank account, in
    /// one transaction (the account is checked as `payee set` checks it).
    pub fn declare_donation(
        &mut self,
        d: &Declaration,
        banks: &dyn BankDirectory,
        now: UnixMillis,
    ) -> Result<DonationProgramRow, DonationError> {
        let Ok(recipient) = DonationRecipient::parse(d.recipient.trim()) else {
            return Err(DonationError::BadRecipient(d.recipient.clone()));
        };
        check_bank_account(&d.account, d.customer_code, banks)?;
        let mut st = self.store.begin()?;
        if st.municipality(d.municipality)?.is_none() {
            return Err(DonationError::UnknownMunicipality(d.municipality));
        }
        if st.donation_program(&d.id)?.is_some() {
            return Err(DonationError::Exists(d.id.clone()));
        }
        if st.program(&d.id)?.is_some() {
            return Err(DonationError::GrantProgramId(d.id.clone()));
        }
        let row = DonationProgramRow {
            id: d.id.clone(),
            municipality: d.municipality,
            recipient: recipient.as_str().to_owned(),
            opened_at: now,
            closed_at: None,
        };
        st.insert_donation_program(&row)?;
        st.set_payee(&Party::Donation(d.id.clone()), &d.account, d.customer_code)?;
        tell_nodes(&mut *st, &self.key, &row, recipient, true, now)?;
        st.commit()?;
        tracing::info!(programme = %d.id, municipality = %d.municipality, "donation programme declared");
        Ok(row)
    }

    /// Closes a donation programme: donations signed after are refused;
    /// what was given is still paid by settlement.
    pub fn close_donation(
        &mut self,
        id: &ProgramId,
        now: UnixMillis,
    ) -> Result<DonationProgramRow, DonationError> {
        let mut st = self.store.begin()?;
        let Some(mut row) = st.donation_program(id)? else {
            return Err(DonationError::UnknownProgram(id.clone()));
        };
        if row.closed_at.is_some() {
            return Err(DonationError::Closed(id.clone()));
        }
        st.close_donation_program(id, now)?;
        let recipient = DonationRecipient::parse(&row.recipient)
            .map_err(|_| DonationError::BadRecipient(row.recipient.clone()))?;
        tell_nodes(&mut *st, &self.key, &row, recipient, false, now)?;
        st.commit()?;
        row.closed_at = Some(now);
        tracing::info!(programme = %id, "donation programme closed");
        Ok(row)
    }

    /// Every donation programme with what was donated and paid.
    pub fn donation_programs(&mut self) -> Result<Vec<DonationLine>, StoreError> {
        let mut st = self.store.begin_read()?;
        let mut out = vec![];
        for program in st.donation_programs()? {
            let donated = st.donated_total(&program.id)?;
            let paid = paid(&mut *st, &program)?;
            out.push(DonationLine {
                program,
                donated,
                paid,
            });
        }
        Ok(out)
    }
}

/// The municipality's nodes learn that the programme is open or closed.
fn tell_nodes(
    st: &mut dyn StoreTx,
    key: &crate::key::HubKey,
    row: &DonationProgramRow,
    recipient: DonationRecipient,
    open: bool,
    now: UnixMillis,
) -> Result<(), StoreError> {
    crate::facts::emit(
        st,
        key,
        Scope::Municipality(row.municipality),
        FactBody::DonationProgramme {
            municipality: row.municipality,
            programme: row.id.clone(),
            recipient,
            open,
        },
        now,
    )
    .map(|_| ())
}

/// The same check `payee set` makes: the account can be written in a
/// Zengin file with this bank data.
fn check_bank_account(
    account: &zengin::BankAccount,
    code: u64,
    banks: &dyn BankDirectory,
) -> Result<(), DonationError> {
    zengin::write_transfer_file(
        &Remitter {
            code: 0,
            account: account.clone(),
        },
        (1, 1),
        &[Payment {
            to: account.clone(),
            amount_yen: 0,
            customer_code: code,
        }],
        banks,
    )
    .map(|_| ())
    .map_err(DonationError::BankAccount)
}

/// Points settlement paid to `p`'s recipient: its lines in the closed
/// periods' statements.
fn paid(st: &mut dyn StoreTx, p: &DonationProgramRow) -> Result<u64, StoreError> {
    let mut sum = 0u64;
    for period in st.periods(p.municipality)? {
        for s in st.statements(p.municipality, period.starts_at)? {
            if s.kind == StatementKind::DonationPayout && s.party == p.id.as_str() {
                sum = sum.saturating_add(s.points);
            }
        }
    }
    Ok(sum)
}

/// Points donated to programmes of `m` and not yet paid by a closed
/// settlement period (the liability report's `donations_unpaid`).
pub(crate) fn unpaid(st: &mut dyn StoreTx, m: MunicipalityCode) -> Result<u64, StoreError> {
    let mut sum = 0u64;
    for p in st.donation_programs()? {
        if p.municipality != m {
            continue;
        }
        let donated = st.donated_total(&p.id)?;
        sum = sum.saturating_add(donated.saturating_sub(paid(st, &p)?));
    }
    Ok(sum)
}

/// Loads what the decision on a `Donate` needs (`None` for other bodies):
/// the programme and the card proof checked with the key the hub kept when
/// the card was registered, bound to this transaction.
pub(crate) fn load(
    st: &mut dyn StoreTx,
    v: &VerifiedTx,
    card: Option<&CardRecord>,
) -> Result<Option<DonationContext>, StoreError> {
    use crate::bounds::ProofCheck;
    let TxBody::Donate(d) = &v.payload().body else {
        return Ok(None);
    };
    let program = st.donation_program(&d.programme)?;
    // Only a card of the named account can give its points: the rules
    // refuse the rest before the proof matters.
    let proof = if card.is_some_and(|c| c.account == d.account) {
        match st.card_public_key(&d.card)? {
            None => ProofCheck::NoKey,
            Some(key) => {
                let p = v.payload();
                let binding = DonationBinding::new(p.node, p.seq, p.created_at, d);
                match mykey_jpki::verify_donation_proof(&key, &binding, &d.card_proof) {
                    Ok(()) => ProofCheck::Verified,
                    Err(e) => ProofCheck::Invalid(e.to_string()),
                }
            }
        }
    } else {
        ProofCheck::Absent
    };
    Ok(Some(DonationContext { program, proof }))
}
