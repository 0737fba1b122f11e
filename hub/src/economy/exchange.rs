//! The operator exchange: a national point operator turns a holder's
//! operator points into a municipality's regional points.
//!
//! A request is the exact JSON body the operator sends, signed with its
//! enrolled ed25519 key (the signature covers those bytes, so nothing needs
//! re-encoding). It is idempotent by (operator, request id): a replay with
//! the same bytes answers the stored result; other bytes under the same id
//! are refused. The hub applies the operator's rate, the best active
//! campaign premium of the target municipality (percent, window, cap per
//! holder, funded by the municipality) and the operator's holding period.
//!
//! An operator credits only the municipalities it is allowed for
//! ([`Hub::allow_exchange`]), each up to a daily cap of points (regional
//! and premium, per JST day of the hub's clock); a request's `requested_at`
//! must lie within [`ExchangePolicy::window_ms`] of the hub's clock, and
//! every number in it is checked before anything is stored.
//!
//! One way only: there is no request, transfer kind or ledger path that
//! turns regional points back into operator points.

use crate::economy::calendar::Date;
use crate::hub::Hub;
use crate::model::{Balance, LedgerAccount, TransferDraft, TransferKind};
use crate::store::StoreError;
use crate::{ledger, wallet};
use ed25519_dalek::{Signature, Signer, SigningKey, Verifier, VerifyingKey};
use mykey_sync_proto::{AccountId, MunicipalityCode, MyKeyId, Points, ProgramId, TxId, UnixMillis};
use sha2::{Digest, Sha256};

pub use super::types::{Campaign, ExchangeOperator, ExchangeRecord, OperatorId, Rate};

/// Largest request body the hub reads.
pub const MAX_REQUEST_BYTES: usize = 4096;
/// Most operator points one request may exchange (as [`Points::MAX`]).
pub const MAX_OPERATOR_POINTS: u64 = Points::MAX;
/// Latest `requested_at` accepted: the end of the year 9999, in Unix ms
/// (stored as a signed 64-bit integer, whatever the hub's clock says).
pub const MAX_REQUESTED_AT_MS: u64 = 253_402_300_799_999;
/// How far `requested_at` may be from the hub's clock by default: 24 hours.
pub const DEFAULT_WINDOW_MS: u64 = MS_PER_DAY;
const MS_PER_DAY: u64 = 86_400_000;
/// Held exchanges released per storage transaction.
const RELEASE_BATCH: u32 = 500;

impl OperatorId {
    /// Validates the id.
    pub fn parse(text: &str) -> Result<OperatorId, ExchangeError> {
        let ok = (1..=32).contains(&text.len())
            && !text.starts_with('-')
            && text
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
        if ok {
            Ok(OperatorId(text.to_owned()))
        } else {
            Err(ExchangeError::BadOperatorId(text.to_owned()))
        }
    }
}

/// What an operator sends: the JSON request body.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExchangeRequest {
    /// The operator's id for this request (1-64 printable ASCII); repeat it to retry.
    pub request_id: String,
    /// The holder's My Key ID (current or former).
    pub my_key_id: String,
    /// Operator points to exchange.
    pub operator_points: u64,
    /// Target municipality code (default: the holder's base municipality).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub municipality: Option<String>,
    /// The operator's clock, in milliseconds since the epoch.
    pub requested_at: u64,
    /// A donation programme to give the points to, straight away (issue 19):
    /// the holder's regional points go to the programme, never to their
    /// wallet (no campaign premium, no holding period); the municipality
    /// defaults to the programme's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub donate_to: Option<String>,
}

/// A request body with the operator's signature over exactly those bytes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SignedExchange {
    /// The operator.
    pub operator: OperatorId,
    /// The JSON body.
    pub body: Vec<u8>,
    /// ed25519 signature of `body`.
    pub signature: [u8; 64],
}

impl SignedExchange {
    /// Encodes and signs a request (operators' client side, tests, demo).
    pub fn sign(
        operator: &OperatorId,
        request: &ExchangeRequest,
        key: &SigningKey,
    ) -> SignedExchange {
        let body = serde_json::to_vec(request).unwrap_or_default();
        let signature = key.sign(&body).to_bytes();
        SignedExchange {
            operator: operator.clone(),
            body,
            signature,
        }
    }
}

/// What the hub answers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ExchangeReceipt {
    /// The stored exchange.
    pub record: ExchangeRecord,
    /// True if this was a replay of an applied request.
    pub replayed: bool,
    /// The holder's spendable balance (and debt) in the municipality after
    /// it: points still in a holding period are not in it.
    pub balance: Balance,
    /// The holder's points in the municipality still in holding periods
    /// (this exchange's, if held, and any earlier ones not yet released).
    pub held: Points,
    /// The donation programme the points went to, if the request named one.
    pub donated_to: Option<ProgramId>,
}

/// The hub's terms for exchange requests.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ExchangePolicy {
    /// `requested_at` must be within this many milliseconds of the hub's clock, either way.
    pub window_ms: u64,
}

impl Default for ExchangePolicy {
    fn default() -> Self {
        ExchangePolicy {
            window_ms: DEFAULT_WINDOW_MS,
        }
    }
}

/// Why an exchange was refused. Nothing was applied.
#[derive(Debug, thiserror::Error)]
pub enum ExchangeError {
    /// Bad operator id.
    #[error("operator id {0:?} is not valid: use 1-32 of a-z, 0-9 and '-'")]
    BadOperatorId(String),
    /// The operator is not enrolled.
    #[error(
        "operator {0} is not enrolled at this hub; ask the hub operator to run `mykey-hub exchange-operator add`"
    )]
    UnknownOperator(OperatorId),
    /// The signature does not verify with the operator's key.
    #[error(
        "the request's signature does not verify with operator {0}'s enrolled key; sign the exact body bytes"
    )]
    BadSignature(OperatorId),
    /// The body is not a valid request.
    #[error("the request body is not a valid exchange request: {0}")]
    Malformed(String),
    /// The same request id was used for a different request.
    #[error("request id {0:?} was already used for a different request; use a new request id")]
    Conflict(String),
    /// The holder is unknown.
    #[error("no holder has My Key ID {0}")]
    UnknownHolder(String),
    /// The municipality is not served.
    #[error("municipality {0} is not registered at this hub")]
    UnknownMunicipality(String),
    /// Too few operator points for one regional point.
    #[error("{0} operator points give no regional point at the rate {1}; exchange more")]
    TooSmall(u64, Rate),
    /// `requested_at` is too far from the hub's clock.
    #[error(
        "requested_at {requested_at} is more than {window_ms} ms from the hub's clock ({now}); \
         send the current time in Unix milliseconds (check the sender's clock)"
    )]
    OutOfWindow {
        /// What the request said.
        requested_at: u64,
        /// The hub's clock.
        now: u64,
        /// The window.
        window_ms: u64,
    },
    /// The operator may not credit this municipality's holders.
    #[error(
        "operator {0} may not credit municipality {1}; ask the hub operator to run \
         `mykey-hub exchange-operator allow --id {0} --municipality {1} --daily-cap N`"
    )]
    NotAllowed(OperatorId, MunicipalityCode),
    /// The operator's daily cap in the municipality would be passed.
    #[error(
        "operator {operator} has credited {used} of its {cap} points today (JST) in {municipality}; \
         this request needs {wanted}: retry after 00:00 JST or ask for a higher cap"
    )]
    DailyCap {
        /// The operator.
        operator: OperatorId,
        /// Where.
        municipality: MunicipalityCode,
        /// Its cap.
        cap: u64,
        /// Credited today already.
        used: u64,
        /// What the request would credit.
        wanted: u64,
        /// When the cap resets (the next JST midnight).
        resets_at: UnixMillis,
    },
    /// `donate_to` names no declared donation programme.
    #[error(
        "donate_to {0:?} is not a donation programme at this hub; ask the municipality for the programme's id (`mykey-hub donation list`)"
    )]
    UnknownDonation(String),
    /// The donation programme is closed.
    #[error("donation programme {0} is closed and takes no more donations")]
    DonationClosed(ProgramId),
    /// The donation programme takes another municipality's points.
    #[error(
        "donation programme {programme} takes points of {programme_municipality}, not of {municipality}; leave out municipality or name {programme_municipality}"
    )]
    DonationElsewhere {
        /// The programme.
        programme: ProgramId,
        /// Whose points it takes.
        programme_municipality: MunicipalityCode,
        /// What the request named.
        municipality: MunicipalityCode,
    },
    /// Storage failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// The outcome the rules compute for a request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Quote {
    /// Regional points at the rate.
    pub regional: Points,
    /// Campaign premium.
    pub premium: Points,
    /// The campaign paying it.
    pub campaign: Option<String>,
    /// When the points become spendable.
    pub available_at: UnixMillis,
}

/// Decides an exchange (pure): rate, the best applicable campaign (highest
/// percent) within what is left of its per-holder cap, holding period.
/// `campaigns` pairs each campaign with the premium the holder already
/// received from it.
pub fn quote(
    op: &ExchangeOperator,
    operator_points: u64,
    campaigns: &[(Campaign, u64)],
    now: UnixMillis,
) -> Result<Quote, ExchangeError> {
    let regional = op.rate.apply(operator_points);
    if regional == 0 {
        return Err(ExchangeError::TooSmall(operator_points, op.rate));
    }
    let regional = Points::new(regional).map_err(|_| {
        ExchangeError::Malformed(format!(
            "{operator_points} operator points make more than {} regional points",
            Points::MAX
        ))
    })?;
    let mut best: Option<(u64, &Campaign)> = None;
    for (c, received) in campaigns {
        if !c.applies(&op.id, now) {
            continue;
        }
        let full = u64::try_from(u128::from(regional.get()) * u128::from(c.percent) / 100)
            .unwrap_or(u64::MAX);
        let premium = full.min(c.cap_per_account.get().saturating_sub(*received));
        if premium > 0 && best.is_none_or(|(p, _)| premium > p) {
            best = Some((premium, c));
        }
    }
    let (premium, campaign) = match best {
        Some((p, c)) => (Points::new(p).unwrap_or(Points::ZERO), Some(c.id.clone())),
        None => (Points::ZERO, None),
    };
    Ok(Quote {
        regional,
        premium,
        campaign,
        available_at: now.plus_ms(u64::from(op.holding_days) * MS_PER_DAY),
    })
}

/// Checks the signature and parses the body.
pub fn verify(
    op: &ExchangeOperator,
    signed: &SignedExchange,
) -> Result<ExchangeRequest, ExchangeError> {
    let key = VerifyingKey::from_bytes(&op.public_key)
        .map_err(|_| ExchangeError::BadSignature(op.id.clone()))?;
    key.verify(&signed.body, &Signature::from_bytes(&signed.signature))
        .map_err(|_| ExchangeError::BadSignature(op.id.clone()))?;
    if signed.body.len() > MAX_REQUEST_BYTES {
        return Err(ExchangeError::Malformed(format!(
            "body over {MAX_REQUEST_BYTES} bytes"
        )));
    }
    let req: ExchangeRequest = serde_json::from_slice(&signed.body)
        .map_err(|e| ExchangeError::Malformed(e.to_string()))?;
    let id_ok = (1..=64).contains(&req.request_id.len())
        && req.request_id.bytes().all(|b| b.is_ascii_graphic());
    if !id_ok {
        return Err(ExchangeError::Malformed(
            "request_id must be 1-64 printable ASCII characters".into(),
        ));
    }
    if req.operator_points == 0 || req.operator_points > MAX_OPERATOR_POINTS {
        return Err(ExchangeError::Malformed(format!(
            "operator_points must be from 1 to {MAX_OPERATOR_POINTS}"
        )));
    }
    if req.requested_at > MAX_REQUESTED_AT_MS {
        return Err(ExchangeError::Malformed(format!(
            "requested_at must be the operator's clock in milliseconds since 1970 (at most {MAX_REQUESTED_AT_MS}, the end of the year 9999)"
        )));
    }
    Ok(req)
}

/// The origin id of an exchange's transfers (and, with `release`, of its release).
pub fn origin_of(op: &OperatorId, request_id: &str, release: bool) -> TxId {
    let tag: &[u8] = if release {
        b"mykey-exchange-release\0"
    } else {
        b"mykey-exchange\0"
    };
    TxId::hash_of(&[tag, op.as_str().as_bytes(), b"\0", request_id.as_bytes()].concat())
}

/// Transfers that credit `points` to the holder from `debit`, then recover debt.
fn credit_transfers(
    debit: LedgerAccount,
    to: LedgerAccount,
    points: Points,
    kind: TransferKind,
    origin: TxId,
    node_time: Option<UnixMillis>,
) -> Option<TransferDraft> {
    (!points.is_zero()).then_some(TransferDraft {
        debit,
        credit: to,
        amount: points,
        kind,
        origin_tx: Some(origin),
        node_time,
    })
}

/// Checks `requested_at` against the hub's clock (pure).
pub fn check_window(
    requested_at: u64,
    now: UnixMillis,
    policy: &ExchangePolicy,
) -> Result<(), ExchangeError> {
    if requested_at.abs_diff(now.0) > policy.window_ms {
        return Err(ExchangeError::OutOfWindow {
            requested_at,
            now: now.0,
            window_ms: policy.window_ms,
        });
    }
    Ok(())
}

impl Hub {
    /// Applies an operator's signed exchange request (idempotent by request
    /// id) under the default [`ExchangePolicy`].
    pub fn exchange(
        &mut self,
        signed: &SignedExchange,
        now: UnixMillis,
    ) -> Result<ExchangeReceipt, ExchangeError> {
        self.exchange_with(signed, now, &ExchangePolicy::default())
    }

    /// Applies an operator's signed exchange request (idempotent by request
    /// id): a replay answers the stored result; a new request must be within
    /// the policy's window, for a municipality the operator is allowed for,
    /// and within its daily cap there.
    pub fn exchange_with(
        &mut self,
        signed: &SignedExchange,
        now: UnixMillis,
        policy: &ExchangePolicy,
    ) -> Result<ExchangeReceipt, ExchangeError> {
        let mut st = self.store.begin()?;
        let op = st
            .exchange_operator(&signed.operator)?
            .ok_or_else(|| ExchangeError::UnknownOperator(signed.operator.clone()))?;
        let req = verify(&op, signed)?;
        let sha: [u8; 32] = Sha256::digest(&signed.body).into();
        if let Some(done) = st.exchange(&op.id, &req.request_id)? {
            if done.request_sha256 != sha {
                return Err(ExchangeError::Conflict(req.request_id));
            }
            let balance = ledger::wallet_balance(&mut *st, done.account, done.municipality)?;
            let held = ledger::held_balance(&mut *st, done.account, done.municipality)?;
            // The same bytes as the applied request, so the same programme.
            let donated_to = req
                .donate_to
                .as_deref()
                .and_then(|p| ProgramId::parse(p).ok());
            return Ok(ExchangeReceipt {
                record: done,
                replayed: true,
                balance,
                held,
                donated_to,
            });
        }
        check_window(req.requested_at, now, policy)?;
        let my_key_id = MyKeyId::parse(&req.my_key_id)
            .map_err(|_| ExchangeError::UnknownHolder(req.my_key_id.clone()))?;
        let account = st
            .account_by_my_key_id(&my_key_id)?
            .ok_or_else(|| ExchangeError::UnknownHolder(req.my_key_id.clone()))?;
        let holder = st
            .account(account)?
            .ok_or_else(|| ExchangeError::UnknownHolder(req.my_key_id.clone()))?;
        let named = match &req.municipality {
            None => None,
            Some(code) => Some(
                MunicipalityCode::parse(code)
                    .map_err(|_| ExchangeError::UnknownMunicipality(code.clone()))?,
            ),
        };
        let donation = match &req.donate_to {
            None => None,
            Some(text) => {
                let p = ProgramId::parse(text)
                    .map_err(|_| ExchangeError::UnknownDonation(text.clone()))?;
                let row = st
                    .donation_program(&p)?
                    .ok_or_else(|| ExchangeError::UnknownDonation(text.clone()))?;
                if row.closed_at.is_some() {
                    return Err(ExchangeError::DonationClosed(p));
                }
                if let Some(m) = named.filter(|m| *m != row.municipality) {
                    return Err(ExchangeError::DonationElsewhere {
                        programme: p,
                        programme_municipality: row.municipality,
                        municipality: m,
                    });
                }
                Some(row)
            }
        };
        let m = named
            .or(donation.as_ref().map(|d| d.municipality))
            .unwrap_or(holder.municipality);
        if st.municipality(m)?.is_none() {
            return Err(ExchangeError::UnknownMunicipality(m.to_string()));
        }
        let cap = st
            .exchange_cap(&op.id, m)?
            .ok_or_else(|| ExchangeError::NotAllowed(op.id.clone(), m))?;
        let mut campaigns = vec![];
        for c in st
            .campaigns(m)?
            .into_iter()
            .filter(|c| c.applies(&op.id, now))
        {
            let received = st.premium_received(&c.id, account)?;
            campaigns.push((c, received));
        }
        let mut q = quote(&op, req.operator_points, &campaigns, now)?;
        if donation.is_some() {
            // Given away at once: no premium to entice spending, and no
            // holding period, since the holder never holds the points.
            q.premium = Points::ZERO;
            q.campaign = None;
            q.available_at = now;
        }
        let before = ledger::wallet_balance(&mut *st, account, m)?;
        let fits = before
            .balance
            .checked_add(q.regional)
            .and_then(|b| b.checked_add(q.premium));
        if donation.is_none() && fits.is_none() {
            return Err(ExchangeError::Malformed(format!(
                "the exchange would take the holder's balance past {} points",
                Points::MAX
            )));
        }
        let today = Date::of(now);
        let used = st.exchange_volume(&op.id, m, today.start())?;
        let wanted = q.regional.get().saturating_add(q.premium.get());
        if used.saturating_add(wanted) > cap.get() {
            return Err(ExchangeError::DailyCap {
                operator: op.id.clone(),
                municipality: m,
                cap: cap.get(),
                used,
                wanted,
                resets_at: today.end(),
            });
        }
        st.add_exchange_volume(&op.id, m, today.start(), wanted)?;
        let held = q.available_at > now;
        let to = match &donation {
            Some(d) => LedgerAccount::Donated(account, d.id.clone(), m),
            None if held => LedgerAccount::Held(account, m),
            None => LedgerAccount::Wallet(account, m),
        };
        let origin = origin_of(&op.id, &req.request_id, false);
        let release_origin = origin_of(&op.id, &req.request_id, true);
        let operator_time = Some(UnixMillis(req.requested_at));
        let drafts = [
            credit_transfers(
                LedgerAccount::OperatorReceivable(op.id.as_str().to_owned(), m),
                to.clone(),
                q.regional,
                TransferKind::Exchange,
                origin,
                operator_time,
            ),
            credit_transfers(
                LedgerAccount::MunicipalityFunding(m),
                to,
                q.premium,
                TransferKind::Premium,
                origin,
                operator_time,
            ),
        ];
        for d in drafts.iter().flatten() {
            st.post(d, now)?;
        }
        let record = ExchangeRecord {
            operator: op.id.clone(),
            request_id: req.request_id,
            request_sha256: sha,
            account,
            municipality: m,
            operator_points: req.operator_points,
            regional: q.regional,
            premium: q.premium,
            campaign: q.campaign,
            requested_at: UnixMillis(req.requested_at),
            received_at: now,
            available_at: q.available_at,
            released_at: None,
            origin,
            release_origin,
            expiry: op.expiry,
        };
        st.insert_exchange(&record)?;
        let balance = if held || donation.is_some() {
            ledger::wallet_balance(&mut *st, account, m)?
        } else {
            wallet::credited(&mut *st, &self.key, account, m, now)?
        };
        let held_now = ledger::held_balance(&mut *st, account, m)?;
        ledger::commit(st)?;
        let donated_to = donation.map(|d| d.id);
        tracing::info!(operator = %op.id, %account, points = q.regional.get(), premium = q.premium.get(), held, donated_to = ?donated_to, "exchange applied");
        Ok(ExchangeReceipt {
            record,
            replayed: false,
            balance,
            held: held_now,
            donated_to,
        })
    }

    /// Makes held exchanged points spendable once their holding period has
    /// ended. Returns how many exchanges were released.
    pub fn release_held(&mut self, now: UnixMillis) -> Result<u64, StoreError> {
        Ok(self.release_batches(None, now, usize::MAX)?.0)
    }

    /// Releases at most `max_batches` batches of held exchanges (of
    /// municipality `m`, or all); returns how many were released and
    /// whether more are due.
    pub(crate) fn release_batches(
        &mut self,
        m: Option<MunicipalityCode>,
        now: UnixMillis,
        max_batches: usize,
    ) -> Result<(u64, bool), StoreError> {
        let mut n = 0;
        for _ in 0..max_batches {
            let mut st = self.store.begin()?;
            let due = st.exchanges_due(m, now, RELEASE_BATCH)?;
            if due.is_empty() {
                return Ok((n, false));
            }
            for e in &due {
                let points = e.regional.checked_add(e.premium).unwrap_or(e.regional);
                st.post(
                    &TransferDraft {
                        debit: LedgerAccount::Held(e.account, e.municipality),
                        credit: LedgerAccount::Wallet(e.account, e.municipality),
                        amount: points,
                        kind: TransferKind::Release,
                        origin_tx: Some(e.release_origin),
                        node_time: None,
                    },
                    now,
                )?;
                st.mark_released(e, now)?;
                wallet::credited(&mut *st, &self.key, e.account, e.municipality, now)?;
                n += 1;
            }
            ledger::commit(st)?;
            if due.len() < RELEASE_BATCH as usize {
                return Ok((n, false));
            }
        }
        Ok((n, true))
    }

    /// Enrols or updates a national point operator.
    pub fn upsert_exchange_operator(
        &mut self,
        op: &ExchangeOperator,
        now: UnixMillis,
    ) -> Result<(), StoreError> {
        let mut st = self.store.begin()?;
        st.upsert_exchange_operator(op, now)?;
        st.commit()
    }

    /// Every enrolled operator.
    pub fn exchange_operators(&mut self) -> Result<Vec<ExchangeOperator>, StoreError> {
        self.store.begin_read()?.exchange_operators()
    }

    /// An enrolled operator.
    pub fn exchange_operator(
        &mut self,
        id: &OperatorId,
    ) -> Result<Option<ExchangeOperator>, StoreError> {
        self.store.begin_read()?.exchange_operator(id)
    }

    /// Lets an operator credit a municipality's holders, up to `daily_cap`
    /// points (regional and premium) a JST day; sets a new cap if it was
    /// allowed already.
    pub fn allow_exchange(
        &mut self,
        op: &OperatorId,
        m: MunicipalityCode,
        daily_cap: Points,
        now: UnixMillis,
    ) -> Result<(), ExchangeError> {
        let mut st = self.store.begin()?;
        if st.exchange_operator(op)?.is_none() {
            return Err(ExchangeError::UnknownOperator(op.clone()));
        }
        if st.municipality(m)?.is_none() {
            return Err(ExchangeError::UnknownMunicipality(m.to_string()));
        }
        if daily_cap.is_zero() {
            return Err(ExchangeError::Malformed(
                "a daily cap is at least 1 point; use `disallow` to stop an operator".into(),
            ));
        }
        st.allow_exchange(op, m, daily_cap, now)?;
        st.commit()?;
        Ok(())
    }

    /// Stops an operator crediting a municipality; false if it was not allowed.
    pub fn disallow_exchange(
        &mut self,
        op: &OperatorId,
        m: MunicipalityCode,
    ) -> Result<bool, StoreError> {
        let mut st = self.store.begin()?;
        let done = st.disallow_exchange(op, m)?;
        st.commit()?;
        Ok(done)
    }

    /// The municipalities an operator may credit, with their daily caps.
    pub fn exchange_caps(
        &mut self,
        op: &OperatorId,
    ) -> Result<Vec<(MunicipalityCode, Points)>, StoreError> {
        self.store.begin_read()?.exchange_caps(op)
    }

    /// Adds a campaign of a municipality.
    pub fn add_campaign(&mut self, c: &Campaign, now: UnixMillis) -> Result<(), StoreError> {
        let mut st = self.store.begin()?;
        st.insert_campaign(c, now)?;
        st.commit()
    }

    /// A municipality's campaigns.
    pub fn campaigns(&mut self, m: MunicipalityCode) -> Result<Vec<Campaign>, StoreError> {
        self.store.begin_read()?.campaigns(m)
    }

    /// A holder's exchange history (operator, points, time), newest first.
    pub fn exchanges_of(
        &mut self,
        account: AccountId,
        limit: u32,
    ) -> Result<Vec<ExchangeRecord>, StoreError> {
        self.store.begin_read()?.exchanges_of(account, limit)
    }

    /// A stored exchange.
    pub fn exchange_record(
        &mut self,
        op: &OperatorId,
        request_id: &str,
    ) -> Result<Option<ExchangeRecord>, StoreError> {
        self.store.begin_read()?.exchange(op, request_id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::economy::lots::ExpiryPolicy;

    fn op(holding_days: u32) -> ExchangeOperator {
        ExchangeOperator {
            id: OperatorId::parse("card-x").unwrap(),
            name: "Card X".into(),
            public_key: [0; 32],
            rate: Rate::new(1, 2).unwrap(),
            holding_days,
            expiry: ExpiryPolicy::Never,
        }
    }
    fn campaign(id: &str, percent: u32, cap: u64) -> Campaign {
        Campaign {
            id: id.into(),
            municipality: MunicipalityCode::parse("131059").unwrap(),
            operator: None,
            percent,
            starts_at: UnixMillis(100),
            ends_at: UnixMillis(200),
            cap_per_account: Points::new(cap).unwrap(),
        }
    }

    #[test]
    fn requested_at_must_be_within_the_window_of_the_hub_clock() {
        let p = ExchangePolicy { window_ms: 1000 };
        let now = UnixMillis(1_000_000);
        for (at, ok) in [
            (1_000_000, true),
            (999_000, true),
            (1_001_000, true),
            (998_999, false),
            (1_001_001, false),
            (0, false),
            (u64::MAX, false),
        ] {
            assert_eq!(check_window(at, now, &p).is_ok(), ok, "{at}");
        }
        // Near the ends of the clock's range nothing overflows.
        assert!(check_window(u64::MAX, UnixMillis(u64::MAX), &p).is_ok());
        assert!(check_window(0, UnixMillis(0), &p).is_ok());
    }

    #[test]
    fn operator_points_are_bounded_before_anything_else() {
        let key = SigningKey::from_bytes(&[3; 32]);
        let op = ExchangeOperator {
            public_key: key.verifying_key().to_bytes(),
            ..op(0)
        };
        for (points, ok) in [
            (0, false),
            (1, true),
            (MAX_OPERATOR_POINTS, true),
            (MAX_OPERATOR_POINTS + 1, false),
            (u64::MAX, false),
        ] {
            let req = ExchangeRequest {
                request_id: "r".into(),
                my_key_id: "a".into(),
                operator_points: points,
                municipality: None,
                requested_at: 0,
                donate_to: None,
            };
            let signed = SignedExchange::sign(&op.id, &req, &key);
            assert_eq!(verify(&op, &signed).is_ok(), ok, "{points}");
        }
    }

    #[test]
    fn rate_premium_cap_window_holding() {
        let q = quote(&op(0), 1001, &[], UnixMillis(150)).unwrap();
        assert_eq!((q.regional.get(), q.premium.get()), (500, 0));
        let cs = [
            (campaign("fest", 20, 150), 60),
            (campaign("small", 10, 1000), 0),
        ];
        let q = quote(&op(0), 1000, &cs, UnixMillis(150)).unwrap();
        // fest: 20% of 500 = 100, capped to 150 - 60 = 90; small: 50. Best: 90.
        assert_eq!((q.premium.get(), q.campaign.as_deref()), (90, Some("fest")));
        let q = quote(&op(0), 1000, &cs, UnixMillis(200)).unwrap();
        assert_eq!(q.premium.get(), 0, "window end is exclusive");
        let q = quote(&op(3), 1000, &[], UnixMillis(150)).unwrap();
        assert_eq!(q.available_at, UnixMillis(150 + 3 * MS_PER_DAY));
        assert!(matches!(
            quote(&op(0), 1, &[], UnixMillis(0)),
            Err(ExchangeError::TooSmall(1, _))
        ));
        assert!(matches!(
            quote(&op(0), u64::MAX, &[], UnixMillis(0)),
            Err(ExchangeError::Malformed(_))
        ));
    }

    #[test]
    fn figures_beyond_what_can_be_stored_are_refused() {
        let key = SigningKey::from_bytes(&[0x0e; 32]);
        let mut op = op(0);
        op.public_key = key.verifying_key().to_bytes();
        let body = |points: u64, at: u64| {
            format!(
                r#"{{"request_id": "r", "my_key_id": "hanako", "operator_points": {points}, "requested_at": {at}}}"#
            )
            .into_bytes()
        };
        let signed = |body: Vec<u8>| SignedExchange {
            operator: op.id.clone(),
            signature: key.sign(&body).to_bytes(),
            body,
        };
        let cases = [
            (1, MAX_REQUESTED_AT_MS, true),
            (MAX_OPERATOR_POINTS, 0, true),
            (0, 0, false),
            (MAX_OPERATOR_POINTS + 1, 0, false),
            (u64::MAX, 0, false),
            (1, MAX_REQUESTED_AT_MS + 1, false),
            (1, u64::MAX, false),
        ];
        for (points, at, ok) in cases {
            let r = verify(&op, &signed(body(points, at)));
            assert_eq!(r.is_ok(), ok, "{points} {at}: {r:?}");
            if let Err(e) = r {
                assert!(matches!(e, ExchangeError::Malformed(_)), "{e}");
            }
        }
    }
}
