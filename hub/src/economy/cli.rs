//! `mykey-hub` subcommands for municipalities and operators of the points
//! economy: exchange operators, campaigns, expiry policies, payees, the
//! expiry job, settlement runs, statements and the liability report.
//! `main.rs` flattens [`EconomyCmd`] into its commands and calls [`run`].

use crate::cli::output::print_list;
use crate::cli::{lists, names, output};
use crate::economy::bankdata::{BankDataError, JsonBankDirectory};
use crate::economy::calendar::Date;
use crate::economy::exchange::{Campaign, ExchangeOperator, OperatorId, Rate};
use crate::economy::lots::ExpiryPolicy;
use crate::economy::outputs::OutputError;
use crate::economy::settlement::{Cycle, SettleError};
use crate::economy::zengin::{
    AccountKind, BankAccount, BankCode, BankDirectory, BranchCode, BuiltinBanks,
};
use crate::store::economy::Party;
use crate::{Hub, OpenError, ProgramError, StoreError};
use clap::{Args, Subcommand};
use mykey_sync_proto::{FacilityId, MunicipalityCode, Points, ProgramId, UnixMillis};
use std::path::{Path, PathBuf};

/// Economy subcommands.
#[derive(Subcommand, Debug)]
pub enum EconomyCmd {
    /// National point operators that may exchange into regional points.
    #[command(subcommand)]
    ExchangeOperator(OperatorCmd),
    /// Exchange premium campaigns of a municipality.
    #[command(subcommand)]
    Campaign(CampaignCmd),
    /// Set when a programme's grants expire (fy+N: 31 March N fiscal years on; Nd: N days; never).
    ExpiryPolicy {
        /// The programme.
        #[arg(long, value_parser = parse_program)]
        program: ProgramId,
        /// The policy.
        #[arg(long, value_parser = parse_policy)]
        policy: ExpiryPolicy,
    },
    /// Bank accounts of merchants, municipalities and the settlement agent.
    #[command(subcommand)]
    Payee(PayeeCmd),
    /// Release held exchanged points whose holding period ended, and expire lots.
    Expire,
    /// Set a municipality's settlement cycle.
    SettlementCycle {
        /// The municipality.
        #[arg(long, value_parser = parse_muni)]
        municipality: MunicipalityCode,
        /// monthly or twice-monthly.
        #[arg(long, value_parser = parse_cycle)]
        cycle: Cycle,
    },
    /// Run settlement: expire, close every ended period (with --through-now the
    /// open one too) all or nothing, write payout files, statements and the liability
    /// report (mode 0600), and any file an earlier run could not write; print their paths.
    Settle {
        /// Where to write the files (created 0700 if missing).
        #[arg(long, value_name = "DIR", default_value = "./settlement")]
        out: PathBuf,
        /// Also close the open period at the current time.
        #[arg(long, conflicts_with = "rewrite")]
        through_now: bool,
        /// Write a closed period's recorded files again (CODE:N, the period number
        /// `settle` and `statements` print, or CODE:YYYY-MM-DD, its first day); closes nothing.
        #[arg(long, value_name = "PERIOD", value_parser = parse_period)]
        rewrite: Option<(MunicipalityCode, String)>,
        /// Bank data.
        #[command(flatten)]
        banks: BankDataArg,
    },
    /// Show a municipality's closed periods and their statements.
    Statements {
        /// The municipality.
        #[arg(long, value_parser = parse_muni)]
        municipality: MunicipalityCode,
        /// Print JSON (as `period list --json`).
        #[arg(long)]
        json: bool,
    },
    /// Reports.
    #[command(subcommand)]
    Report(ReportCmd),
    /// A holder's exchange history (operator, points, time), newest first.
    Exchanges {
        /// The account (A12, 12 or a My Key ID).
        #[arg(long)]
        account: String,
        /// How many.
        #[arg(long, default_value_t = 50)]
        limit: u32,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// A holder's lots with points left, earliest expiry first.
    Lots {
        /// The account (A12, 12 or a My Key ID).
        #[arg(long)]
        account: String,
        /// Whose points.
        #[arg(long, value_parser = parse_muni)]
        municipality: MunicipalityCode,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
}

/// Exchange operators.
#[derive(Subcommand, Debug)]
pub enum OperatorCmd {
    /// Enrol (or update) an operator with its ed25519 public key and rate.
    Add {
        /// Its id (a-z, 0-9, '-').
        #[arg(long)]
        id: String,
        /// Its name.
        #[arg(long)]
        name: String,
        /// Its ed25519 public key, 64 hex digits.
        #[arg(long)]
        public_key: String,
        /// Regional points per operator point, N/D (e.g. 1/2).
        #[arg(long, value_parser = parse_rate)]
        rate: Rate,
        /// Days before exchanged points become spendable.
        #[arg(long, default_value_t = 0)]
        holding_days: u32,
        /// When exchanged points expire (fy+N, Nd or never), counted from the end of the holding period.
        #[arg(long, value_parser = parse_policy, default_value = "never")]
        expiry: ExpiryPolicy,
    },
    /// Let an operator credit a municipality's holders, up to a daily cap
    /// (sets a new cap if it was allowed already).
    Allow {
        /// The operator's id.
        #[arg(long)]
        id: String,
        /// The municipality.
        #[arg(long, value_parser = parse_muni)]
        municipality: MunicipalityCode,
        /// Most points (regional and premium) it may credit there per JST day.
        #[arg(long, value_parser = parse_points)]
        daily_cap: Points,
    },
    /// Stop an operator crediting a municipality's holders.
    Disallow {
        /// The operator's id.
        #[arg(long)]
        id: String,
        /// The municipality.
        #[arg(long, value_parser = parse_muni)]
        municipality: MunicipalityCode,
    },
    /// List operators with the municipalities they may credit.
    List {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Show an operator: rate, holding, expiry, key, daily caps.
    Show {
        /// The operator's id.
        #[arg(long)]
        id: String,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
}

/// Campaigns.
#[derive(Subcommand, Debug)]
pub enum CampaignCmd {
    /// Add a premium campaign funded by the municipality.
    Add(CampaignArgs),
    /// List campaigns (of one municipality).
    List {
        /// Only this municipality's.
        #[arg(long, value_parser = parse_muni)]
        municipality: Option<MunicipalityCode>,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Show a campaign.
    Show {
        /// Its id.
        #[arg(long)]
        id: String,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
}

/// A new campaign.
#[derive(Args, Debug)]
pub struct CampaignArgs {
    /// Its id.
    #[arg(long)]
    id: String,
    /// The municipality that funds it.
    #[arg(long, value_parser = parse_muni)]
    municipality: MunicipalityCode,
    /// Premium in percent of the exchanged regional points.
    #[arg(long)]
    percent: u32,
    /// First day (YYYY-MM-DD, JST).
    #[arg(long, value_parser = parse_date)]
    from: Date,
    /// Last day, inclusive.
    #[arg(long, value_parser = parse_date)]
    until: Date,
    /// Most premium one holder may receive.
    #[arg(long, value_parser = parse_points)]
    cap: Points,
    /// Only exchanges from this operator.
    #[arg(long)]
    operator: Option<String>,
}

/// Payees.
#[derive(Subcommand, Debug)]
pub enum PayeeCmd {
    /// Register a bank account (checked against the bank data and the Zengin character set).
    Set(PayeeArgs),
    /// List the bank accounts of merchants, municipalities and the agent.
    List {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Show one party's bank account.
    Show(PayeeWho),
}

/// Whose bank account to show.
#[derive(Args, Debug)]
#[group(skip)]
#[command(group(
    clap::ArgGroup::new("who").required(true).multiple(false).args(["merchant", "municipality", "agent", "donation"])
))]
pub struct PayeeWho {
    /// A merchant (facility id).
    #[arg(long, value_parser = parse_facility)]
    merchant: Option<FacilityId>,
    /// A municipality.
    #[arg(long, value_parser = parse_muni)]
    municipality: Option<MunicipalityCode>,
    /// The settlement agent.
    #[arg(long)]
    agent: bool,
    /// A donation programme's recipient.
    #[arg(long, value_parser = parse_program)]
    donation: Option<ProgramId>,
    /// Print JSON.
    #[arg(long)]
    json: bool,
}

/// A bank account and its owner.
#[derive(Args, Debug)]
#[group(skip)]
#[command(group(
    clap::ArgGroup::new("who").required(true).multiple(false).args(["merchant", "municipality", "agent", "donation"])
))]
pub struct PayeeArgs {
    /// A merchant (facility id).
    #[arg(long, value_parser = parse_facility)]
    merchant: Option<FacilityId>,
    /// A municipality (receives exchange money).
    #[arg(long, value_parser = parse_muni)]
    municipality: Option<MunicipalityCode>,
    /// The settlement agent that sends the transfers.
    #[arg(long)]
    agent: bool,
    /// A donation programme's recipient (`mykey-hub donation declare` sets it first).
    #[arg(long, value_parser = parse_program)]
    donation: Option<ProgramId>,
    /// Bank code (4 digits).
    #[arg(long)]
    bank: String,
    /// Branch code (3 digits).
    #[arg(long)]
    branch: String,
    /// ordinary, current or savings.
    #[arg(long, default_value = "ordinary")]
    kind: String,
    /// Account number (up to 7 digits).
    #[arg(long)]
    number: u32,
    /// Account holder as the bank has it (katakana).
    #[arg(long)]
    holder: String,
    /// Customer code (payees) or requester code (the agent), up to 10 digits.
    #[arg(long, default_value_t = 0)]
    code: u64,
    /// Bank data.
    #[command(flatten)]
    banks: BankDataArg,
}

/// Where the bank and branch table comes from.
#[derive(Args, Debug)]
pub struct BankDataArg {
    /// The zengin-code source-data `data` directory (banks.json, branches/); without it,
    /// the small built-in excerpt is used.
    #[arg(long, env = "MYKEY_BANK_DATA", value_name = "DIR")]
    bank_data: Option<PathBuf>,
}

impl BankDataArg {
    pub(crate) fn load(&self) -> Result<Box<dyn BankDirectory>, CliError> {
        match &self.bank_data {
            Some(dir) => Ok(Box::new(JsonBankDirectory::load(dir)?)),
            None => {
                eprintln!(
                    "note: checking bank codes against the built-in excerpt; give --bank-data DIR \
                     (zengin-code source-data) for the full table"
                );
                Ok(Box::new(BuiltinBanks))
            }
        }
    }
}

/// Reports.
#[derive(Subcommand, Debug)]
pub enum ReportCmd {
    /// Outstanding points, expiry schedule and base-date deposits per municipality and programme.
    Liabilities {
        /// json or csv.
        #[arg(long, default_value = "json")]
        format: String,
    },
}

/// Why an economy command failed.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    /// Bad input.
    #[error("{0}")]
    Input(String),
    /// The hub did not open.
    #[error(transparent)]
    Open(#[from] OpenError),
    /// Storage failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A programme action failed.
    #[error(transparent)]
    Program(#[from] ProgramError),
    /// Settlement failed.
    #[error(transparent)]
    Settle(#[from] SettleError),
    /// Outputs failed.
    #[error(transparent)]
    Output(#[from] OutputError),
    /// The bank data could not be read.
    #[error(transparent)]
    BankData(#[from] BankDataError),
    /// Output could not be encoded.
    #[error(transparent)]
    Json(#[from] serde_json::Error),
    /// A name did not name one thing.
    #[error(transparent)]
    Name(#[from] names::NameError),
    /// A list or show failed.
    #[error(transparent)]
    Show(#[from] lists::ShowError),
}

/// Runs an economy command on the hub at `data`.
pub fn run(data: &Path, cmd: &EconomyCmd, now: UnixMillis) -> Result<(), CliError> {
    let mut hub = Hub::open(data)?;
    match cmd {
        EconomyCmd::ExchangeOperator(OperatorCmd::Add {
            id,
            name,
            public_key,
            rate,
            holding_days,
            expiry,
        }) => {
            let id = OperatorId::parse(id).map_err(|e| CliError::Input(e.to_string()))?;
            let key = hex::decode(public_key)
                .ok()
                .and_then(|b| <[u8; 32]>::try_from(b).ok())
                .filter(|k| ed25519_dalek::VerifyingKey::from_bytes(k).is_ok())
                .ok_or_else(|| {
                    CliError::Input(
                        "--public-key must be an ed25519 public key in 64 hex digits".into(),
                    )
                })?;
            hub.upsert_exchange_operator(
                &ExchangeOperator {
                    id: id.clone(),
                    name: name.clone(),
                    public_key: key,
                    rate: *rate,
                    holding_days: *holding_days,
                    expiry: *expiry,
                },
                now,
            )?;
            println!(
                "operator {id} enrolled: rate {rate}, holding {holding_days} day(s), expiry {expiry}"
            );
        }
        EconomyCmd::ExchangeOperator(OperatorCmd::Allow {
            id,
            municipality,
            daily_cap,
        }) => {
            let id = OperatorId::parse(id).map_err(|e| CliError::Input(e.to_string()))?;
            hub.allow_exchange(&id, *municipality, *daily_cap, now)
                .map_err(|e| CliError::Input(e.to_string()))?;
            println!("operator {id} may credit {municipality} up to {daily_cap} a day (JST)");
        }
        EconomyCmd::ExchangeOperator(OperatorCmd::Disallow { id, municipality }) => {
            let id = OperatorId::parse(id).map_err(|e| CliError::Input(e.to_string()))?;
            if !hub.disallow_exchange(&id, *municipality)? {
                return Err(CliError::Input(format!(
                    "operator {id} was not allowed to credit {municipality}; nothing was changed"
                )));
            }
            println!("operator {id} may no longer credit {municipality}");
        }
        EconomyCmd::ExchangeOperator(OperatorCmd::List { json: true }) => {
            print_list(true, &lists::exchange_operators(&mut hub)?, "");
        }
        EconomyCmd::ExchangeOperator(OperatorCmd::Show { id, json }) => {
            let id = OperatorId::parse(id).map_err(|e| CliError::Input(e.to_string()))?;
            output::print_one(*json, &lists::exchange_operator(&mut hub, &id)?);
        }
        EconomyCmd::ExchangeOperator(OperatorCmd::List { json: false }) => {
            for o in hub.exchange_operators()? {
                println!(
                    "{:<16} {:<24} rate {:<8} holding {:>3} d  expiry {:<6} key {}",
                    o.id.as_str(),
                    o.name,
                    o.rate.to_string(),
                    o.holding_days,
                    o.expiry.to_string(),
                    hex::encode(o.public_key)
                );
                let caps = hub.exchange_caps(&o.id)?;
                if caps.is_empty() {
                    println!("  may credit no municipality yet: `exchange-operator allow`");
                }
                for (m, cap) in caps {
                    println!("  may credit {m} up to {cap} a day");
                }
            }
        }
        EconomyCmd::Campaign(CampaignCmd::Add(a)) => {
            if a.until < a.from {
                return Err(CliError::Input("--until is before --from".into()));
            }
            let operator = a
                .operator
                .as_deref()
                .map(OperatorId::parse)
                .transpose()
                .map_err(|e| CliError::Input(e.to_string()))?;
            hub.add_campaign(
                &Campaign {
                    id: a.id.clone(),
                    municipality: a.municipality,
                    operator,
                    percent: a.percent,
                    starts_at: a.from.start(),
                    ends_at: a.until.end(),
                    cap_per_account: a.cap,
                },
                now,
            )?;
            println!(
                "campaign {} of {}: {}% from {} to {}, cap {} per holder",
                a.id, a.municipality, a.percent, a.from, a.until, a.cap
            );
        }
        EconomyCmd::Campaign(CampaignCmd::List {
            municipality,
            json: true,
        }) => {
            print_list(true, &lists::campaigns(&mut hub, *municipality)?, "");
        }
        EconomyCmd::Campaign(CampaignCmd::Show { id, json }) => {
            output::print_one(*json, &lists::campaign(&mut hub, id)?);
        }
        EconomyCmd::Campaign(CampaignCmd::List {
            municipality,
            json: false,
        }) => {
            let codes = match municipality {
                Some(m) => vec![*m],
                None => hub.municipality_codes()?,
            };
            let mut all = vec![];
            for m in codes {
                all.extend(hub.campaigns(m)?);
            }
            for c in all {
                let until = Date::of(UnixMillis(c.ends_at.0.saturating_sub(1)));
                println!(
                    "{:<16} {}% {}..{} cap {} operator {}",
                    c.id,
                    c.percent,
                    Date::of(c.starts_at),
                    until,
                    c.cap_per_account,
                    c.operator.map_or("any".to_owned(), |o| o.to_string())
                );
            }
        }
        EconomyCmd::ExpiryPolicy { program, policy } => {
            hub.set_program_expiry(program, *policy)?;
            println!("grants of {program} credited from now on expire: {policy}");
        }
        EconomyCmd::Payee(PayeeCmd::Set(a)) => {
            let party = match (&a.merchant, a.municipality, &a.donation) {
                (Some(f), _, _) => Party::Merchant(f.clone()),
                (None, Some(m), _) => Party::Municipality(m),
                (None, None, Some(p)) => Party::Donation(p.clone()),
                _ => Party::Agent,
            };
            let account = BankAccount {
                bank: BankCode::parse(&a.bank).map_err(|e| CliError::Input(e.to_string()))?,
                branch: BranchCode::parse(&a.branch).map_err(|e| CliError::Input(e.to_string()))?,
                kind: AccountKind::parse(&a.kind).ok_or_else(|| {
                    CliError::Input("--kind is ordinary, current or savings".into())
                })?,
                number: a.number,
                holder: a.holder.clone(),
            };
            hub.set_payee(&party, &account, a.code, &*a.banks.load()?)?;
            println!(
                "bank account of {} set: {} {} {}",
                party.key(),
                account.bank,
                account.branch,
                account.number
            );
        }
        EconomyCmd::Payee(PayeeCmd::List { json }) => {
            print_list(
                *json,
                &lists::payees(&mut hub)?,
                "no bank accounts yet; register one with `mykey-hub payee set`",
            );
        }
        EconomyCmd::Payee(PayeeCmd::Show(w)) => {
            let party = match (&w.merchant, w.municipality, &w.donation) {
                (Some(f), _, _) => Party::Merchant(f.clone()),
                (None, Some(m), _) => Party::Municipality(m),
                (None, None, Some(p)) => Party::Donation(p.clone()),
                _ => Party::Agent,
            };
            output::print_one(w.json, &lists::payee(&mut hub, &party)?);
        }
        EconomyCmd::Expire => {
            let released = hub.release_held(now)?;
            let run = hub.run_expiry(now)?;
            println!(
                "released {released} held exchange(s); expired {} pt in {} lot(s) of {} holder(s)",
                run.points, run.n_lots, run.n_holders
            );
        }
        EconomyCmd::SettlementCycle {
            municipality,
            cycle,
        } => {
            hub.set_settlement_cycle(*municipality, *cycle)?;
            println!("{municipality} settles {}", cycle.name());
        }
        EconomyCmd::Settle {
            out,
            through_now: _,
            rewrite: Some((m, which)),
            banks: _,
        } => {
            let (c, files) = hub.rewrite_period(*m, which, out, now)?;
            println!(
                "period {m}:{} ({} .. {}): {} recorded file(s)",
                c.number,
                Date::of(c.period.starts_at),
                Date::of(UnixMillis(c.period.ends_at.0.saturating_sub(1))),
                files.len()
            );
            print_files(&files);
        }
        EconomyCmd::Settle {
            out,
            through_now,
            rewrite: None,
            banks,
        } => {
            let run = hub.settle(out, &*banks.load()?, now, *through_now)?;
            match run.run {
                Some(n) => println!(
                    "expired {} pt; settlement run {n} closed {} period(s)",
                    run.expiry.points,
                    run.closed.len()
                ),
                None => println!(
                    "expired {} pt; closed 0 period(s): none has ended (--through-now closes the open one)",
                    run.expiry.points
                ),
            }
            for c in &run.closed {
                let p = &c.period;
                println!(
                    "  {} period {}: {} .. {}: {} statement line(s)",
                    p.municipality,
                    c.number,
                    Date::of(p.starts_at),
                    Date::of(UnixMillis(p.ends_at.0.saturating_sub(1))),
                    c.statements.len()
                );
            }
            let earlier = run.files.iter().filter(|f| Some(f.run) != run.run).count();
            if earlier > 0 {
                println!("{earlier} file(s) an earlier run recorded but had not written:");
            }
            for f in &run.files {
                println!("{}", f.path.display());
            }
        }
        EconomyCmd::Statements {
            municipality,
            json: true,
        } => {
            print_list(true, &lists::periods(&mut hub, Some(*municipality))?, "");
        }
        EconomyCmd::Statements {
            municipality,
            json: false,
        } => {
            for c in hub.closed_periods(*municipality)? {
                let p = &c.period;
                println!(
                    "period {}: {} .. {} (closed {}, ledger through {})",
                    c.number,
                    Date::of(p.starts_at),
                    Date::of(UnixMillis(p.ends_at.0.saturating_sub(1))),
                    crate::economy::calendar::iso_jst(p.closed_at),
                    p.ledger_pos
                );
                for s in &c.statements {
                    println!(
                        "  {:<22} {:<16} {:>12} pt {:>12} yen ({} transfers)",
                        s.kind.name(),
                        s.party,
                        s.points,
                        s.yen,
                        s.n_transfers
                    );
                }
            }
        }
        EconomyCmd::Report(ReportCmd::Liabilities { format }) => {
            let r = hub.liability_report(now)?;
            match format.as_str() {
                "json" => println!("{}", serde_json::to_string_pretty(&r.to_json())?),
                "csv" => print!("{}", r.to_csv()),
                other => {
                    return Err(CliError::Input(format!(
                        "--format {other:?}: use json or csv"
                    )));
                }
            }
        }
        EconomyCmd::Exchanges {
            account,
            limit,
            json: true,
        } => {
            let account = names::account(&mut hub, account)?;
            print_list(true, &lists::exchanges(&mut hub, account, *limit)?, "");
        }
        EconomyCmd::Lots {
            account,
            municipality,
            json: true,
        } => {
            let account = names::account(&mut hub, account)?;
            print_list(true, &lists::lots(&mut hub, account, *municipality)?, "");
        }
        EconomyCmd::Exchanges {
            account,
            limit,
            json: false,
        } => {
            let account = names::account(&mut hub, account)?;
            for e in hub.exchanges_of(account, *limit)? {
                println!(
                    "{} {:<12} {:>10} operator pt -> {:>10} + premium {:>8} in {} (request {}, spendable from {})",
                    Date::of(e.received_at),
                    e.operator.as_str(),
                    e.operator_points,
                    e.regional.to_string(),
                    e.premium.to_string(),
                    e.municipality,
                    e.request_id,
                    Date::of(e.available_at)
                );
            }
        }
        EconomyCmd::Lots {
            account,
            municipality,
            json: false,
        } => {
            let account = names::account(&mut hub, account)?;
            for l in hub.lots_of(account, *municipality)? {
                let exp = l.expires_at.map_or("never".to_owned(), |e| {
                    Date::of(UnixMillis(e.0.saturating_sub(1))).to_string()
                });
                println!(
                    "{:>12} pt of {:>12} from {:<24} expires {exp}",
                    l.remaining,
                    l.amount,
                    l.source.to_string()
                );
            }
        }
    }
    Ok(())
}

fn print_files(files: &[crate::economy::outputs::WrittenFile]) {
    for f in files {
        println!("{} ({})", f.path.display(), f.how.name());
    }
}

fn parse_period(s: &str) -> Result<(MunicipalityCode, String), String> {
    let (m, which) = s.split_once(':').ok_or_else(|| {
        format!("{s:?}: give CODE:N (e.g. 131059:3) or CODE:YYYY-MM-DD (the period's first day)")
    })?;
    Ok((parse_muni(m)?, which.to_owned()))
}

fn parse_muni(s: &str) -> Result<MunicipalityCode, String> {
    MunicipalityCode::parse(s).map_err(|e| e.to_string())
}
fn parse_program(s: &str) -> Result<ProgramId, String> {
    ProgramId::parse(s).map_err(|e| e.to_string())
}
fn parse_facility(s: &str) -> Result<FacilityId, String> {
    FacilityId::parse(s).map_err(|e| e.to_string())
}
fn parse_points(s: &str) -> Result<Points, String> {
    Points::parse(s).map_err(|e| e.to_string())
}
fn parse_policy(s: &str) -> Result<ExpiryPolicy, String> {
    ExpiryPolicy::parse(s).ok_or_else(|| {
        format!("{s:?}: use fy+N (31 March N fiscal years on), Nd (N days) or never")
    })
}
fn parse_rate(s: &str) -> Result<Rate, String> {
    Rate::parse(s)
        .ok_or_else(|| format!("{s:?}: give regional points per operator point as N/D, e.g. 1/2"))
}
fn parse_cycle(s: &str) -> Result<Cycle, String> {
    Cycle::parse(s).ok_or_else(|| format!("{s:?}: use monthly or twice-monthly"))
}
fn parse_date(s: &str) -> Result<Date, String> {
    let mut it = s.split('-').map(|p| p.parse::<u32>().ok());
    match (
        it.next().flatten(),
        it.next().flatten(),
        it.next().flatten(),
        it.next(),
    ) {
        (Some(y), Some(m), Some(d), None) => {
            Date::new(y as i32, m, d).ok_or_else(|| format!("{s:?} is not a calendar date"))
        }
        _ => Err(format!("{s:?}: give a date as YYYY-MM-DD")),
    }
}
