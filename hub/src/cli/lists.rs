//! What `mykey-hub … list` and `… show` print for every noun: each thing
//! as a [`Record`] (see [`super::output`]), read in one read transaction
//! where the store has it, through the hub's read-outs where a figure is
//! computed (balances, budgets, periods, quarantine). States that depend
//! on the time (a node's certificate, a token) are judged at the `now` given.

use super::names;
use super::output::Record;
use crate::Hub;
use crate::economy::calendar::Date;
use crate::economy::exchange::OperatorId;
use crate::model::{Incident, NodeStatus};
use crate::store::StoreError;
use crate::store::economy::Party;
use mykey_sync_proto::link_request::{LINK_REQUEST_TTL_MS, MAX_LINK_REQUESTS_LISTED};
use mykey_sync_proto::{AccountId, FacilityId, MunicipalityCode, ProgramId, UnixMillis};

/// Why a list or show failed. Nothing was changed.
#[derive(Debug, thiserror::Error)]
pub enum ShowError {
    /// Nothing has that name.
    #[error("no {what} {name}: {hint}")]
    NotFound {
        /// What was asked for.
        what: &'static str,
        /// As given.
        name: String,
        /// Where to find the names.
        hint: &'static str,
    },
    /// A name did not name one thing.
    #[error(transparent)]
    Name(#[from] names::NameError),
    /// A read-out failed.
    #[error(transparent)]
    Lookup(#[from] crate::LookupError),
    /// Storage failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

fn not_found(what: &'static str, name: impl ToString, hint: &'static str) -> ShowError {
    ShowError::NotFound {
        what,
        name: name.to_string(),
        hint,
    }
}

/// Whether a record's text field `key` is `want`.
fn is(r: &Record, key: &str, want: &str) -> bool {
    r.get(key).and_then(|v| v.as_str()) == Some(want)
}

/// The day before `end` (a period's or campaign's last day, `end` exclusive).
fn last_day(end: UnixMillis) -> String {
    Date::of(UnixMillis(end.0.saturating_sub(1))).to_string()
}

// ── municipalities ──

/// Every municipality.
pub fn municipalities(hub: &mut Hub) -> Result<Vec<Record>, ShowError> {
    let mut st = hub.store.begin_read()?;
    let mut out = vec![];
    for (m, facilities) in st.facilities()? {
        out.push(
            Record::new()
                .field("code", m.code.to_string())
                .field("name", m.name)
                .field("strict_mode", st.strict_mode(m.code)?)
                .field(
                    "settlement_cycle",
                    st.settlement_cycle(m.code)?.unwrap_or_default().name(),
                )
                .field("facilities", facilities.len()),
        );
    }
    Ok(out)
}

/// One municipality with its facilities and programmes.
pub fn municipality(
    hub: &mut Hub,
    code: MunicipalityCode,
    now: UnixMillis,
) -> Result<Record, ShowError> {
    let base = municipalities(hub)?
        .into_iter()
        .find(|r| is(r, "code", &code.to_string()))
        .ok_or_else(|| {
            not_found(
                "municipality",
                code,
                "`mykey-hub municipality list` shows them",
            )
        })?;
    let facilities = facilities(hub, Some(code), now)?;
    let programmes = programmes(hub)?
        .into_iter()
        .filter(|p| is(p, "municipality", &code.to_string()))
        .collect();
    Ok(base
        .list("facilities", facilities)
        .list("programmes", programmes))
}

// ── facilities ──

/// Every facility (of one municipality).
pub fn facilities(
    hub: &mut Hub,
    m: Option<MunicipalityCode>,
    now: UnixMillis,
) -> Result<Vec<Record>, ShowError> {
    let nodes = hub.store.begin_read()?.node_statuses()?;
    let mut st = hub.store.begin_read()?;
    let mut out = vec![];
    for (_, fs) in st.facilities()? {
        for f in fs
            .into_iter()
            .filter(|f| m.is_none_or(|m| m == f.municipality))
        {
            let n = nodes.iter().filter(|n| n.node.facility == f.id).count();
            let payee = st.payee(&Party::Merchant(f.id.clone()))?.is_some();
            let kiosk_link = st
                .kiosk_link_policy(&f.id)?
                .unwrap_or(crate::store::link_request::KioskLinkPolicy::Confirm);
            let pending = st
                .pending_link_requests(
                    &f.id,
                    UnixMillis(now.0.saturating_sub(LINK_REQUEST_TTL_MS)),
                    u32::try_from(MAX_LINK_REQUESTS_LISTED).unwrap_or(u32::MAX),
                )?
                .len();
            out.push(
                Record::new()
                    .field("id", f.id.as_str())
                    .field("municipality", f.municipality.to_string())
                    .field("kind", f.kind.name())
                    .field("name", f.name)
                    .field("nodes", n)
                    .field("payee", payee)
                    .field("kiosk_link", kiosk_link.name())
                    .field("link_requests_pending", pending),
            );
        }
    }
    Ok(out)
}

/// One facility with its nodes.
pub fn facility(hub: &mut Hub, id: &FacilityId, now: UnixMillis) -> Result<Record, ShowError> {
    let base = facilities(hub, None, now)?
        .into_iter()
        .find(|r| is(r, "id", id.as_str()))
        .ok_or_else(|| not_found("facility", id, "`mykey-hub facility list` shows them"))?;
    let nodes = nodes(hub, now)?
        .into_iter()
        .filter(|n| is(n, "facility", id.as_str()))
        .collect();
    Ok(base.list("nodes", nodes))
}

// ── nodes ──

fn node_state(n: &NodeStatus, now: UnixMillis) -> &'static str {
    if n.node.is_revoked() {
        "revoked"
    } else if n.node.policy.valid_until <= now {
        "expired"
    } else {
        "active"
    }
}

/// Every enrolled node (state as of the hub's clock now).
pub fn nodes(hub: &mut Hub, now: UnixMillis) -> Result<Vec<Record>, ShowError> {
    let statuses = hub.node_statuses()?;
    Ok(statuses
        .iter()
        .map(|n| {
            Record::new()
                .field("node", n.node.id.short())
                .field("facility", n.node.facility.as_str())
                .field("municipality", n.node.municipality.to_string())
                .field("state", node_state(n, now))
                .field("voucher_cap", n.node.policy.offline_voucher_cap.get())
                .field("processed_seq", n.chain.processed_seq)
                .opt_time("last_contact", n.last_contact.as_ref().map(|c| c.at))
                .time("valid_until", n.node.policy.valid_until)
                .field("id", n.node.id.to_string())
        })
        .collect())
}

/// One node: its policy, chain, last contact and held spends.
pub fn node(hub: &mut Hub, text: &str, now: UnixMillis) -> Result<Record, ShowError> {
    let id = names::node(hub, text)?;
    let n = hub
        .node_statuses()?
        .into_iter()
        .find(|n| n.node.id == id)
        .ok_or_else(|| not_found("enrolled node", id, "`mykey-hub nodes` lists them"))?;
    let held = hub.quarantine_summary()?.held_by_node(&id);
    let p = &n.node.policy;
    let ops: Vec<&str> = p.allowed_ops.iter().map(|o| o.name()).collect();
    let c = n.last_contact.as_ref();
    Ok(Record::new()
        .field("node", id.short())
        .field("id", id.to_string())
        .field("facility", n.node.facility.as_str())
        .field("municipality", n.node.municipality.to_string())
        .field("state", node_state(&n, now))
        .field("ops", ops)
        .field("card_limit", p.per_card_offline_limit.get())
        .field("exposure_limit", p.node_exposure_limit.get())
        .field("pin_threshold", p.pin_threshold.get())
        .field("voucher_cap", p.offline_voucher_cap.get())
        .time("enrolled_at", n.node.enrolled_at)
        .time("valid_until", p.valid_until)
        .opt_time("revoked_at", n.node.revoked_at)
        .field("processed_seq", n.chain.processed_seq)
        .field("unconfirmed", n.n_unconfirmed())
        .field("rejected", n.n_rejected)
        .field("incidents", n.n_incidents)
        .field("quarantine_held", held.items)
        .field("quarantine_held_points", held.points)
        .opt_time("last_contact", c.map(|c| c.at))
        .field("clock_skew_ms", c.map(|c| c.clock_skew_ms))
        .field("software", c.map(|c| c.software.clone())))
}

// ── operators and tokens ──

/// Every dashboard operator (never a password hash).
pub fn operators(hub: &mut Hub, now: UnixMillis) -> Result<Vec<Record>, ShowError> {
    let mut st = hub.store.begin_read()?;
    let tokens = st.api_tokens(None)?;
    Ok(st
        .operators()?
        .into_iter()
        .map(|o| {
            let live = tokens
                .iter()
                .filter(|t| t.operator == o.name && t.live(now))
                .count();
            Record::new()
                .field("name", o.name)
                .field("role", o.role.name())
                .field("municipality", o.role.municipality().map(|m| m.to_string()))
                .time("created_at", o.created_at)
                .field("live_tokens", live)
        })
        .collect())
}

/// One operator with their tokens.
pub fn operator(hub: &mut Hub, name: &str, now: UnixMillis) -> Result<Record, ShowError> {
    let base = operators(hub, now)?
        .into_iter()
        .find(|r| is(r, "name", name))
        .ok_or_else(|| not_found("operator", name, "`mykey-hub operator list` shows them"))?;
    Ok(base.list("tokens", tokens(hub, Some(name), now)?))
}

/// API tokens (of one operator), never the tokens themselves.
pub fn tokens(
    hub: &mut Hub,
    operator: Option<&str>,
    now: UnixMillis,
) -> Result<Vec<Record>, ShowError> {
    Ok(hub
        .api_tokens(operator)?
        .into_iter()
        .map(|t| {
            Record::new()
                .field("id", t.id.clone())
                .field("operator", t.operator.clone())
                .field("scope", t.scope.name())
                .field("state", t.state(now))
                .time("created_at", t.created_at)
                .opt_time("expires_at", t.expires_at)
                .opt_time("revoked_at", t.revoked_at)
        })
        .collect())
}

/// One API token by its id (or a unique prefix of it).
pub fn token(hub: &mut Hub, id: &str, now: UnixMillis) -> Result<Record, ShowError> {
    let mut fits: Vec<Record> = tokens(hub, None, now)?
        .into_iter()
        .filter(|r| {
            r.get("id")
                .and_then(|v| v.as_str())
                .is_some_and(|t| !id.is_empty() && t.starts_with(id))
        })
        .collect();
    match fits.len() {
        1 => Ok(fits.remove(0)),
        0 => Err(not_found(
            "API token",
            id,
            "`mykey-hub token list` shows their ids",
        )),
        _ => Err(names::NameError::Ambiguous {
            what: "token",
            text: id.to_owned(),
            candidates: fits
                .iter()
                .filter_map(|r| r.get("id").and_then(|v| v.as_str()).map(str::to_owned))
                .collect(),
        }
        .into()),
    }
}

// ── payees ──

fn payee_record(party: &Party, a: &crate::economy::zengin::BankAccount, code: u64) -> Record {
    Record::new()
        .field("party", party.key())
        .field("bank", a.bank.to_string())
        .field("branch", a.branch.to_string())
        .field("kind", a.kind.name())
        .field("number", a.number)
        .field("holder", a.holder.clone())
        .field("code", code)
}

/// Every party with a bank account.
pub fn payees(hub: &mut Hub) -> Result<Vec<Record>, ShowError> {
    let rows = hub.store.begin_read()?.payees()?;
    Ok(rows
        .iter()
        .map(|(p, a, code)| payee_record(p, a, *code))
        .collect())
}

/// One party's bank account.
pub fn payee(hub: &mut Hub, party: &Party) -> Result<Record, ShowError> {
    let (a, code) = hub.store.begin_read()?.payee(party)?.ok_or_else(|| {
        not_found(
            "payee",
            party.key(),
            "`mykey-hub payee set` registers one, `mykey-hub payee list` shows them",
        )
    })?;
    Ok(payee_record(party, &a, code))
}

// ── programmes ──

/// Every programme with its budget, overdraw and expiry policy.
pub fn programmes(hub: &mut Hub) -> Result<Vec<Record>, ShowError> {
    let lines = hub.programs()?;
    let mut st = hub.store.begin_read()?;
    let mut out = vec![];
    for p in lines {
        let expiry = st.program_expiry(&p.program.id)?;
        out.push(
            Record::new()
                .field("id", p.program.id.as_str())
                .field("municipality", p.program.municipality.to_string())
                .field("budget", p.budget.get())
                .field("overdrawn", p.overdrawn.get())
                .field(
                    "expiry",
                    expiry.map_or("never".to_owned(), |e| e.to_string()),
                ),
        );
    }
    Ok(out)
}

/// One programme.
pub fn programme(hub: &mut Hub, id: &ProgramId) -> Result<Record, ShowError> {
    programmes(hub)?
        .into_iter()
        .find(|r| is(r, "id", id.as_str()))
        .ok_or_else(|| not_found("programme", id, "`mykey-hub program list` shows them"))
}

// ── accounts ──

/// Every account (of one municipality).
pub fn accounts(hub: &mut Hub, m: Option<MunicipalityCode>) -> Result<Vec<Record>, ShowError> {
    let mut st = hub.store.begin_read()?;
    let mut out = vec![];
    for a in st.accounts(m)? {
        let cards = st.cards_of(a.id)?;
        let active = cards
            .iter()
            .find(|c| c.status == mykey_sync_proto::fact::CardStatus::Active)
            .map(|c| c.card.short());
        out.push(
            Record::new()
                .field("account", a.id.to_string())
                .field("my_key_id", a.my_key_id.as_str())
                .field("municipality", a.municipality.to_string())
                .field("card", active)
                .field("cards", cards.len())
                .time("created_at", a.created_at),
        );
    }
    Ok(out)
}

/// One account with its cards and balances.
pub fn account(hub: &mut Hub, id: AccountId) -> Result<Record, ShowError> {
    let a = hub.account(id)?;
    let cards = hub
        .cards_of(id)?
        .into_iter()
        .map(|c| {
            Record::new()
                .field("card", c.card.short())
                .field("status", c.status.name())
                .field("key", c.card.to_string())
        })
        .collect();
    let balances = balances(hub, id)?;
    Ok(Record::new()
        .field("account", id.to_string())
        .field("my_key_id", a.my_key_id.as_str())
        .field("municipality", a.municipality.to_string())
        .time("created_at", a.created_at)
        .list("cards", cards)
        .list("balances", balances))
}

/// A holder's balance and debt in every municipality where they hold either.
pub fn balances(hub: &mut Hub, id: AccountId) -> Result<Vec<Record>, ShowError> {
    Ok(hub
        .balances(id)?
        .into_iter()
        .map(|(m, b)| {
            Record::new()
                .field("municipality", m.to_string())
                .field("balance", b.balance.get())
                .field("debt", b.debt.get())
        })
        .collect())
}

/// Every outstanding debt.
pub fn debts(hub: &mut Hub) -> Result<Vec<Record>, ShowError> {
    Ok(hub
        .debts()?
        .into_iter()
        .map(|d| {
            Record::new()
                .field("account", d.account.to_string())
                .field("municipality", d.municipality.to_string())
                .field("debt", d.debt.get())
        })
        .collect())
}

// ── exchange operators and campaigns ──

/// Every exchange operator with the municipalities it may credit.
pub fn exchange_operators(hub: &mut Hub) -> Result<Vec<Record>, ShowError> {
    let ops = hub.exchange_operators()?;
    let mut out = vec![];
    for o in ops {
        let caps: Vec<Record> = hub
            .exchange_caps(&o.id)?
            .into_iter()
            .map(|(m, cap)| {
                Record::new()
                    .field("municipality", m.to_string())
                    .field("daily_cap", cap.get())
            })
            .collect();
        let allowed: Vec<String> = caps
            .iter()
            .filter_map(|c| {
                c.get("municipality")
                    .and_then(|v| v.as_str())
                    .map(str::to_owned)
            })
            .collect();
        out.push(
            Record::new()
                .field("id", o.id.as_str())
                .field("name", o.name)
                .field("rate", o.rate.to_string())
                .field("holding_days", o.holding_days)
                .field("expiry", o.expiry.to_string())
                .field("may_credit", allowed)
                .field("public_key", hex::encode(o.public_key))
                .list("allowances", caps),
        );
    }
    Ok(out)
}

/// One exchange operator.
pub fn exchange_operator(hub: &mut Hub, id: &OperatorId) -> Result<Record, ShowError> {
    exchange_operators(hub)?
        .into_iter()
        .find(|r| is(r, "id", id.as_str()))
        .ok_or_else(|| {
            not_found(
                "exchange operator",
                id,
                "`mykey-hub exchange-operator list` shows them",
            )
        })
}

/// Every campaign (of one municipality).
pub fn campaigns(hub: &mut Hub, m: Option<MunicipalityCode>) -> Result<Vec<Record>, ShowError> {
    let codes = match m {
        Some(m) => vec![m],
        None => hub.municipality_codes()?,
    };
    let mut out = vec![];
    for code in codes {
        for c in hub.campaigns(code)? {
            out.push(
                Record::new()
                    .field("id", c.id)
                    .field("municipality", c.municipality.to_string())
                    .field("percent", c.percent)
                    .field("first_day", Date::of(c.starts_at).to_string())
                    .field("last_day", last_day(c.ends_at))
                    .field("cap_per_holder", c.cap_per_account.get())
                    .field(
                        "operator",
                        c.operator.map_or("any".to_owned(), |o| o.to_string()),
                    ),
            );
        }
    }
    Ok(out)
}

/// One campaign by id.
pub fn campaign(hub: &mut Hub, id: &str) -> Result<Record, ShowError> {
    let mut fits: Vec<Record> = campaigns(hub, None)?
        .into_iter()
        .filter(|r| is(r, "id", id))
        .collect();
    match fits.len() {
        0 => Err(not_found(
            "campaign",
            id,
            "`mykey-hub campaign list` shows them",
        )),
        1 => Ok(fits.remove(0)),
        _ => Err(names::NameError::Ambiguous {
            what: "campaign",
            text: id.to_owned(),
            candidates: fits
                .iter()
                .filter_map(|r| {
                    r.get("municipality")
                        .map(|m| format!("{id} of {}", super::output::cell(m)))
                })
                .collect(),
        }
        .into()),
    }
}

// ── settlement periods ──

fn period_records(hub: &mut Hub, m: MunicipalityCode) -> Result<Vec<Record>, ShowError> {
    Ok(hub
        .closed_periods(m)?
        .into_iter()
        .map(|c| {
            let p = &c.period;
            let statements = c
                .statements
                .iter()
                .map(|s| {
                    Record::new()
                        .field("kind", s.kind.name())
                        .field("party", s.party.clone())
                        .field("points", s.points)
                        .field("yen", s.yen)
                        .field("transfers", s.n_transfers)
                })
                .collect();
            Record::new()
                .field("period", format!("{m}:{}", c.number))
                .field("municipality", m.to_string())
                .field("number", c.number)
                .field("first_day", Date::of(p.starts_at).to_string())
                .field("last_day", last_day(p.ends_at))
                .time("closed_at", p.closed_at)
                .field("ledger_through", p.ledger_pos)
                .field("statement_lines", c.statements.len())
                .list("statements", statements)
        })
        .collect())
}

/// Every closed settlement period (of one municipality), with statements.
pub fn periods(hub: &mut Hub, m: Option<MunicipalityCode>) -> Result<Vec<Record>, ShowError> {
    let codes = match m {
        Some(m) => vec![m],
        None => hub.municipality_codes()?,
    };
    let mut out = vec![];
    for code in codes {
        out.extend(period_records(hub, code)?);
    }
    Ok(out)
}

/// One closed period, `CODE:N` (its number) or `CODE:YYYY-MM-DD` (its first day).
pub fn period(hub: &mut Hub, m: MunicipalityCode, which: &str) -> Result<Record, ShowError> {
    period_records(hub, m)?
        .into_iter()
        .find(|r| {
            r.get("number").map(super::output::cell).as_deref() == Some(which)
                || r.get("first_day").and_then(|v| v.as_str()) == Some(which)
        })
        .ok_or_else(|| {
            not_found(
                "closed period",
                format!("{m}:{which}"),
                "`mykey-hub period list` shows them",
            )
        })
}

// ── incidents ──

/// An incident as a record, with its number.
pub fn incident_record(id: u64, i: &Incident) -> Record {
    Record::new()
        .field("id", id)
        .time("at", i.at)
        .field("kind", i.kind.name())
        .field("node", i.node.map(|n| n.short()))
        .field("seq", i.seq)
        .field("tx", i.tx.map(|t| t.to_string()))
        .field("detail", i.detail.clone())
}

/// The latest incidents, oldest first.
pub fn incidents(hub: &mut Hub, limit: u32) -> Result<Vec<Record>, ShowError> {
    let rows = hub.store.begin_read()?.numbered_incidents(limit, None)?;
    Ok(rows.iter().map(|(id, i)| incident_record(*id, i)).collect())
}

/// One incident by its number.
pub fn incident(hub: &mut Hub, id: u64) -> Result<Record, ShowError> {
    let rows = hub.store.begin_read()?.numbered_incidents(1, Some(id))?;
    rows.first()
        .map(|(id, i)| incident_record(*id, i))
        .ok_or_else(|| {
            not_found(
                "incident",
                id,
                "`mykey-hub incident list` shows their numbers",
            )
        })
}

// ── the other read-outs' --json ──

/// The LAN rosters in force (of one municipality).
pub fn lan_rosters(hub: &mut Hub, m: Option<MunicipalityCode>) -> Result<Vec<Record>, ShowError> {
    Ok(hub
        .lan_rosters(m)?
        .into_iter()
        .map(|l| {
            let members: Vec<String> = l.members.iter().map(|n| n.to_string()).collect();
            Record::new()
                .field("municipality", l.municipality.to_string())
                .field("group", l.group.to_string())
                .field("nodes", l.members.len())
                .field("fact", l.hub_seq)
                .time("issued_at", l.issued_at)
                .field("members", members)
        })
        .collect())
}

/// Strict mode's reservations in a municipality, per account and node.
pub fn escrow(hub: &mut Hub, m: MunicipalityCode) -> Result<Record, ShowError> {
    let strict = hub.strict_mode(m)?;
    let lines = hub
        .escrow_status(m)?
        .into_iter()
        .map(|l| {
            Record::new()
                .field("account", l.account.to_string())
                .field("node", l.node.short())
                .field("node_id", l.node.to_string())
                .field("reserved", l.points.get())
        })
        .collect();
    Ok(Record::new()
        .field("municipality", m.to_string())
        .field("strict_mode", strict)
        .list("reservations", lines))
}

/// A holder's exchanges, newest first.
pub fn exchanges(hub: &mut Hub, account: AccountId, limit: u32) -> Result<Vec<Record>, ShowError> {
    Ok(hub
        .exchanges_of(account, limit)?
        .into_iter()
        .map(|e| {
            Record::new()
                .time("received_at", e.received_at)
                .field("operator", e.operator.as_str())
                .field("request", e.request_id.clone())
                .field("municipality", e.municipality.to_string())
                .field("operator_points", e.operator_points)
                .field("regional", e.regional.get())
                .field("premium", e.premium.get())
                .field("campaign", e.campaign.clone())
                .time("available_at", e.available_at)
                .opt_time("released_at", e.released_at)
                .field("expiry", e.expiry.to_string())
        })
        .collect())
}

/// A holder's lots with points left in one municipality.
pub fn lots(
    hub: &mut Hub,
    account: AccountId,
    m: MunicipalityCode,
) -> Result<Vec<Record>, ShowError> {
    Ok(hub
        .lots_of(account, m)?
        .into_iter()
        .map(|l| {
            Record::new()
                .field("source", l.source.to_string())
                .field("amount", l.amount)
                .field("remaining", l.remaining)
                .time("credited_at", l.credited_at)
                .field("last_day", l.expires_at.map(last_day))
        })
        .collect())
}

/// A passed ledger check: totals, and each municipality's flows.
pub fn conservation(r: &crate::ConservationReport) -> Record {
    // Sums of points fit an i64 in any real ledger; past it, say so as text.
    let big = |v: i128| -> serde_json::Value {
        i64::try_from(v).map_or_else(|_| v.to_string().into(), Into::into)
    };
    let flows = r
        .municipalities
        .iter()
        .map(|m| {
            Record::new()
                .field("municipality", m.municipality.map(|c| c.to_string()))
                .field("credited", m.credited)
                .field("redeemed", m.redeemed)
                .field("expired", m.expired)
                .field("wallets", big(m.wallets))
                .field("debts", big(m.debts))
        })
        .collect();
    Record::new()
        .field("balanced", true)
        .field("transfers", r.n_transfers)
        .field("total", r.total)
        .list("municipalities", flows)
}
