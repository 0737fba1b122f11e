//! Storage for the points economy: exchange operators, campaigns, exchange
//! requests, expiry policies, lots, settlement periods and statements,
//! payees' bank accounts.
//!
//! A supertrait of [`super::StoreTx`] like [`super::status::StatusTx`],
//! with the same transaction contract. Periods, statements and recorded
//! settlement outputs are immutable once written (SQLite: triggers), like
//! transfers; an output only gains the time it was first written.

use super::StoreError;
use crate::economy::types::{
    BankAccount, Campaign, Cycle, ExchangeOperator, ExchangeRecord, ExpiryPolicy, Lot, OperatorId,
    Period, RecordedOutput, Statement,
};
use mykey_sync_proto::{AccountId, MunicipalityCode, Points, ProgramId, TxId, UnixMillis};

/// Who a bank account belongs to.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Party {
    /// A merchant (facility), paid for points redeemed at it.
    Merchant(mykey_sync_proto::FacilityId),
    /// A municipality, receiving exchange money.
    Municipality(MunicipalityCode),
    /// The settlement agent that sends the transfers (its 依頼人コード).
    Agent,
    /// A donation programme's recipient, paid what holders gave to it.
    Donation(ProgramId),
}

impl Party {
    /// Storage key.
    pub fn key(&self) -> String {
        match self {
            Party::Merchant(f) => format!("merchant:{f}"),
            Party::Municipality(m) => format!("municipality:{m}"),
            Party::Agent => "agent".to_owned(),
            Party::Donation(p) => format!("donation:{p}"),
        }
    }

    /// The party a storage key names (the inverse of [`Party::key`]).
    pub fn from_key(key: &str) -> Option<Party> {
        if key == "agent" {
            return Some(Party::Agent);
        }
        if let Some(p) = key.strip_prefix("donation:") {
            return ProgramId::parse(p).ok().map(Party::Donation);
        }
        if let Some(f) = key.strip_prefix("merchant:") {
            return mykey_sync_proto::FacilityId::parse(f)
                .ok()
                .map(Party::Merchant);
        }
        key.strip_prefix("municipality:")
            .and_then(|m| MunicipalityCode::parse(m).ok())
            .map(Party::Municipality)
    }
}

/// Economy storage; see the module docs.
pub trait EconomyTx {
    /// Adds or replaces an exchange operator.
    fn upsert_exchange_operator(
        &mut self,
        op: &ExchangeOperator,
        now: UnixMillis,
    ) -> Result<(), StoreError>;
    /// An exchange operator by id.
    fn exchange_operator(
        &mut self,
        id: &OperatorId,
    ) -> Result<Option<ExchangeOperator>, StoreError>;
    /// Every exchange operator.
    fn exchange_operators(&mut self) -> Result<Vec<ExchangeOperator>, StoreError>;
    /// Lets an exchange operator credit a municipality's holders, up to
    /// `daily_cap` points (regional and premium) a JST day; replaces the cap.
    fn allow_exchange(
        &mut self,
        op: &OperatorId,
        m: MunicipalityCode,
        daily_cap: Points,
        now: UnixMillis,
    ) -> Result<(), StoreError>;
    /// Withdraws that; false if it was not allowed.
    fn disallow_exchange(
        &mut self,
        op: &OperatorId,
        m: MunicipalityCode,
    ) -> Result<bool, StoreError>;
    /// The daily cap of an operator in a municipality (`None`: not allowed there).
    fn exchange_cap(
        &mut self,
        op: &OperatorId,
        m: MunicipalityCode,
    ) -> Result<Option<Points>, StoreError>;
    /// Every municipality an operator may credit, with its cap.
    fn exchange_caps(
        &mut self,
        op: &OperatorId,
    ) -> Result<Vec<(MunicipalityCode, Points)>, StoreError>;
    /// Points an operator credited in a municipality on the JST day starting at `day_start`.
    fn exchange_volume(
        &mut self,
        op: &OperatorId,
        m: MunicipalityCode,
        day_start: UnixMillis,
    ) -> Result<u64, StoreError>;
    /// Adds to that.
    fn add_exchange_volume(
        &mut self,
        op: &OperatorId,
        m: MunicipalityCode,
        day_start: UnixMillis,
        points: u64,
    ) -> Result<(), StoreError>;

    /// Adds a campaign (the caller checked the id is new).
    fn insert_campaign(&mut self, c: &Campaign, now: UnixMillis) -> Result<(), StoreError>;
    /// Campaigns of a municipality.
    fn campaigns(&mut self, m: MunicipalityCode) -> Result<Vec<Campaign>, StoreError>;
    /// Premium points an account has received from a campaign.
    fn premium_received(&mut self, campaign: &str, account: AccountId) -> Result<u64, StoreError>;

    /// A stored exchange by operator and request id.
    fn exchange(
        &mut self,
        op: &OperatorId,
        request_id: &str,
    ) -> Result<Option<ExchangeRecord>, StoreError>;
    /// The exchange whose ledger transfers carry this origin.
    fn exchange_by_origin(&mut self, origin: &TxId) -> Result<Option<ExchangeRecord>, StoreError>;
    /// Stores an exchange (the caller checked it is new).
    fn insert_exchange(&mut self, e: &ExchangeRecord) -> Result<(), StoreError>;
    /// Held exchanges (of municipality `m`, or all) whose holding period
    /// ended at or before `now`, at most `limit`.
    fn exchanges_due(
        &mut self,
        m: Option<MunicipalityCode>,
        now: UnixMillis,
        limit: u32,
    ) -> Result<Vec<ExchangeRecord>, StoreError>;
    /// Marks a held exchange released.
    fn mark_released(&mut self, e: &ExchangeRecord, now: UnixMillis) -> Result<(), StoreError>;
    /// An account's exchanges, newest first, at most `limit` (transfer history).
    fn exchanges_of(
        &mut self,
        account: AccountId,
        limit: u32,
    ) -> Result<Vec<ExchangeRecord>, StoreError>;

    /// Sets a programme's expiry policy.
    fn set_program_expiry(
        &mut self,
        program: &ProgramId,
        p: ExpiryPolicy,
    ) -> Result<(), StoreError>;
    /// A programme's expiry policy (`None`: never set).
    fn program_expiry(&mut self, program: &ProgramId) -> Result<Option<ExpiryPolicy>, StoreError>;

    /// The last ledger position folded into the lots.
    fn lot_cursor(&mut self) -> Result<u64, StoreError>;
    /// Moves the lot cursor.
    fn set_lot_cursor(&mut self, pos: u64) -> Result<(), StoreError>;
    /// Adds a lot.
    fn insert_lot(&mut self, lot: &Lot) -> Result<(), StoreError>;
    /// Changes a lot's remaining points.
    fn set_lot_remaining(&mut self, pos: u64, remaining: u64) -> Result<(), StoreError>;
    /// A holder's lots with points left in one municipality, oldest expiry first
    /// (lots that never expire last), then by credit order.
    fn live_lots(
        &mut self,
        account: AccountId,
        m: MunicipalityCode,
    ) -> Result<Vec<Lot>, StoreError>;
    /// Lots (of municipality `m`, or all) with points left that expired at
    /// or before `now`, at most `limit`, earliest expiry first.
    fn expired_lots(
        &mut self,
        m: Option<MunicipalityCode>,
        now: UnixMillis,
        limit: u32,
    ) -> Result<Vec<Lot>, StoreError>;
    /// Points left in one municipality's lots, summed per source and JST
    /// expiry day (days since the epoch of the last day the points can be
    /// spent; `None`: never expire).
    fn lot_schedule(
        &mut self,
        m: MunicipalityCode,
    ) -> Result<Vec<(String, Option<i64>, u64)>, StoreError>;
    /// Every lot with points left, at most `limit`, ordered by expiry.
    fn all_live_lots(&mut self, limit: u32) -> Result<Vec<Lot>, StoreError>;
    /// The last upcoming expiry told to nodes for a wallet: (points, expires_at).
    fn expiry_notice(
        &mut self,
        account: AccountId,
        m: MunicipalityCode,
    ) -> Result<Option<(u64, UnixMillis)>, StoreError>;
    /// Marks a wallet whose lots changed, for the next expiry check.
    fn mark_expiry_dirty(
        &mut self,
        account: AccountId,
        m: MunicipalityCode,
    ) -> Result<(), StoreError>;
    /// Takes (and clears) up to `limit` marked wallets (of municipality
    /// `m`, or all), in key order.
    fn take_expiry_dirty(
        &mut self,
        m: Option<MunicipalityCode>,
        limit: u32,
    ) -> Result<Vec<(AccountId, MunicipalityCode)>, StoreError>;
    /// Records the upcoming expiry told to nodes for a wallet.
    fn set_expiry_notice(
        &mut self,
        account: AccountId,
        m: MunicipalityCode,
        notice: (u64, UnixMillis),
    ) -> Result<(), StoreError>;

    /// A municipality's settlement cycle (`None`: the monthly default).
    fn settlement_cycle(&mut self, m: MunicipalityCode) -> Result<Option<Cycle>, StoreError>;
    /// Sets a municipality's settlement cycle.
    fn set_settlement_cycle(&mut self, m: MunicipalityCode, c: Cycle) -> Result<(), StoreError>;
    /// Sets a party's bank account.
    fn set_payee(
        &mut self,
        party: &Party,
        account: &BankAccount,
        code: u64,
    ) -> Result<(), StoreError>;
    /// A party's bank account and its customer / requester code.
    fn payee(&mut self, party: &Party) -> Result<Option<(BankAccount, u64)>, StoreError>;
    /// Every party with a bank account, by storage key.
    fn payees(&mut self) -> Result<Vec<(Party, BankAccount, u64)>, StoreError>;

    /// Closed periods of a municipality, oldest first.
    fn periods(&mut self, m: MunicipalityCode) -> Result<Vec<Period>, StoreError>;
    /// Records a closed period and its statements (immutable from then on).
    fn insert_period(&mut self, p: &Period, statements: &[Statement]) -> Result<(), StoreError>;
    /// The statements of a closed period.
    fn statements(
        &mut self,
        m: MunicipalityCode,
        starts_at: UnixMillis,
    ) -> Result<Vec<Statement>, StoreError>;
    /// Records a settlement output (immutable but for `written_at`).
    fn insert_output(&mut self, o: &RecordedOutput) -> Result<(), StoreError>;
    /// Outputs no run has written yet, in run then name order.
    fn outputs_unwritten(&mut self) -> Result<Vec<RecordedOutput>, StoreError>;
    /// The outputs of one closed period, in name order.
    fn outputs_of_period(
        &mut self,
        m: MunicipalityCode,
        starts_at: UnixMillis,
    ) -> Result<Vec<RecordedOutput>, StoreError>;
    /// Notes that an output was written whole (the first time only).
    fn mark_output_written(&mut self, name: &str, at: UnixMillis) -> Result<(), StoreError>;
    /// The number of the last settlement run that recorded outputs (0: none).
    fn last_settlement_run(&mut self) -> Result<u64, StoreError>;
    /// The last ledger position after `after` whose transfer was posted
    /// (hub clock) before `before`; `after` if none.
    fn last_pos_before(&mut self, after: u64, before: UnixMillis) -> Result<u64, StoreError>;
    /// Natural balances, per kind ("wallet", "held", "debt"), of one
    /// municipality's holder accounts from the transfers at ledger positions
    /// up to `through`.
    fn holder_totals_through(
        &mut self,
        m: MunicipalityCode,
        through: u64,
    ) -> Result<Vec<(String, i128)>, StoreError>;
    /// Every step of one municipality's wallets up to ledger position
    /// `through`, for replaying the lots as they stood there: the lots opened
    /// (from the lots table, so fold the ledger into the lots first) and the
    /// wallet debits, ordered by holder, then position (a lot before a debit
    /// of the same position).
    fn wallet_steps_through(
        &mut self,
        m: MunicipalityCode,
        through: u64,
        visit: &mut dyn FnMut(WalletStep),
    ) -> Result<(), StoreError>;
    /// The exchanges of one municipality whose points were in a held account
    /// after the transfers at positions up to `through` (credited to it, not
    /// yet released by then), each with those points, in no set order. A
    /// held transfer that names no stored exchange is [`StoreError::Corrupt`]:
    /// only exchanges credit a held account, only their releases debit it.
    fn held_exchanges_through(
        &mut self,
        m: MunicipalityCode,
        through: u64,
        visit: &mut dyn FnMut(ExchangeRecord, u64),
    ) -> Result<(), StoreError>;
}

/// One step of a wallet's history ([`EconomyTx::wallet_steps_through`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum WalletStep {
    /// A credit opened this lot (its `remaining` is today's, not the replay's).
    Credit(Lot),
    /// A debit of the wallet: a redeem, a debt recovery or an expiry.
    Debit {
        /// The holder.
        account: AccountId,
        /// The ledger position of the debiting transfer.
        pos: u64,
        /// Points debited.
        points: u64,
    },
}

impl WalletStep {
    /// Whose wallet.
    pub fn account(&self) -> AccountId {
        match self {
            WalletStep::Credit(lot) => lot.account,
            WalletStep::Debit { account, .. } => *account,
        }
    }
}
