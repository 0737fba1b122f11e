//! The demo: a hub and three nodes (a library, a community centre, a festival
//! stall) on embedded defaults, in a fresh data directory, through a short
//! day: registrations, lookups, grants, an outage with offline redemptions
//! (including a cross-node double spend), reconnection, a lost card, and a
//! summary. Real stores, real signatures, nothing canned.

use anyhow::{Context, Result, bail};
use clap::Parser;
use mykey_node::node::{Lookup, OpError};
use mykey_sync_proto::session::HubService;
use mykey_sync_proto::wire::{Outcome, RejectReason};
use mykey_sync_proto::{FacilityCardNumber, SignedTx, TxBody, TxPayload};
use mykey_tests::harness::SyncReport;
use mykey_tests::world::{World, bunkyo, health, pts, volunteer};
use std::path::PathBuf;

/// Runs the MyKey Edge demo day.
#[derive(Parser)]
#[command(name = "mykey-demo", about)]
struct Args {
    /// Where to put the hub's and the nodes' data (must not exist yet, or be
    /// empty; `--fresh` removes it first).
    #[arg(long, default_value = "./demo-data")]
    data: PathBuf,
    /// Remove the data directory first if it exists.
    #[arg(long)]
    fresh: bool,
    /// After the day, serve the hub's operator dashboard (prints
    /// `dashboard on http://…` and a login) until Ctrl-C.
    #[arg(long, value_name = "ADDR", num_args = 0..=1, default_missing_value = "127.0.0.1:8780")]
    dashboard: Option<String>,
}

const LIB: usize = 0;
const CC: usize = 1;
const STALL: usize = 2;

#[derive(Default)]
struct Tally {
    accepted: u64,
    rejected: u64,
    bytes: u64,
}

impl Tally {
    fn add(&mut self, r: &SyncReport) {
        self.accepted += r.receipts - r.rejected;
        self.rejected += r.rejected;
        self.bytes += r.bytes_up + r.bytes_down;
    }
}

fn say(text: &str) {
    println!("  {text}");
}

fn lookup_line(l: &Lookup) -> String {
    match l {
        Lookup::Found {
            my_key_id, numbers, ..
        } => {
            let nums: Vec<String> = numbers
                .iter()
                .map(|n| {
                    format!(
                        "{}{}",
                        n.number,
                        if n.confirmed { "" } else { " (unconfirmed)" }
                    )
                })
                .collect();
            if nums.is_empty() {
                format!("{my_key_id}: registered, no card number of this facility")
            } else {
                format!("{my_key_id}: card number {}", nums.join(", "))
            }
        }
        Lookup::NotRegistered => "not registered".into(),
        Lookup::Suspended => "SUSPENDED (reported lost)".into(),
        Lookup::Superseded => "replaced by a renewed card".into(),
        Lookup::Visitor { home, .. } => format!("registered elsewhere (home {home})"),
    }
}

fn main() -> Result<()> {
    tracing_subscriber_init();
    let args = Args::parse();
    if args.data.exists() {
        let empty = std::fs::read_dir(&args.data)?.next().is_none();
        if args.fresh {
            std::fs::remove_dir_all(&args.data)
                .with_context(|| format!("removing {}", args.data.display()))?;
        } else if !empty {
            bail!(
                "{} already holds data: pass --fresh to start over, or --data DIR for another place",
                args.data.display()
            );
        }
    }
    std::fs::create_dir_all(&args.data)?;
    let start = mykey_net::unix_now();
    let mut tally = Tally::default();

    println!("MyKey Edge demo — data in {}", args.data.display());
    println!(
        "\n09:00  The hub registers Bunkyo-ku (131059), three facilities, and enrols their nodes."
    );
    let mut w = World::create(&args.data, start)?;
    for s in &w.sites {
        say(&format!(
            "{:<17} node {}  facility {}",
            s.name,
            s.node.id().short(),
            s.facility
        ));
    }
    let (hanako, taro, jiro) = (
        w.holders[0].account,
        w.holders[1].account,
        w.holders[2].account,
    );
    let cards: Vec<_> = w.holders.iter().map(|h| h.card.clone()).collect();
    say("Hanako, Taro and Jiro register My Key IDs; Hanako earns 3000 health points.");
    w.hub.admin_grant(hanako, &health(), pts(3000), w.now)?;
    w.hub.admin_grant(jiro, &health(), pts(800), w.now)?;
    let r = w.sync_all()?;
    tally.add(&r);
    say(&format!(
        "every node syncs: {} facts (limits, registrations, balances), {} bytes",
        r.facts,
        r.bytes_up + r.bytes_down
    ));

    println!("\n10:00  Online counter work.");
    let n = FacilityCardNumber::parse("LIB-0001")?;
    w.sites[LIB].node.link(&cards[0], n, w.now)?;
    say("library links Hanako's library card LIB-0001");
    w.sites[CC]
        .node
        .grant(&cards[1], volunteer(), pts(500), w.now)?;
    say("community centre grants Taro 500 volunteer points");
    tally.add(&w.sync_all()?);
    say(&format!(
        "library tap: {}",
        lookup_line(&w.sites[LIB].node.lookup(&cards[0])?)
    ));
    say(&format!(
        "hub: Taro's confirmed balance {}",
        w.hub.balance(taro, bunkyo())?.balance
    ));

    println!("\n11:00  The WAN goes down for 8 hours. Every node keeps serving from its cache.");
    w.advance_ms(8 * 3600 * 1000);
    say(&format!(
        "library tap (offline): {}",
        lookup_line(&w.sites[LIB].node.lookup(&cards[0])?)
    ));
    let d = w.sites[STALL]
        .node
        .redeem(&cards[0], pts(1900), None, w.now)?;
    say(&format!(
        "festival stall: Hanako spends 1900 points offline (seq {})",
        d.seq
    ));
    let d = w.sites[CC].node.redeem(&cards[0], pts(1800), None, w.now)?;
    say(&format!(
        "community centre: Hanako spends 1800 points offline (seq {}) — each node saw 3000 confirmed",
        d.seq
    ));
    match w.sites[STALL]
        .node
        .redeem(&cards[0], pts(1500), None, w.now)
    {
        Err(OpError::Declined(dc)) => say(&format!("festival stall declines a further 1500: {dc}")),
        other => bail!("the stall should have declined, got {other:?}"),
    }
    match w.sites[STALL]
        .node
        .redeem(&cards[2], pts(2500), None, w.now)
    {
        Err(OpError::Declined(dc)) => say(&format!("festival stall declines Jiro's 2500: {dc}")),
        other => bail!("the stall should have declined, got {other:?}"),
    }
    w.sites[STALL]
        .node
        .redeem(&cards[2], pts(600), None, w.now)?;
    say("festival stall: Jiro spends 600 points offline");
    let bound: u64 = [STALL, CC]
        .iter()
        .map(|&i| w.sites[i].policy.per_card_offline_limit.get())
        .sum();

    println!("\n19:00  The link is back. Nodes push their outboxes; the hub answers receipts.");
    w.advance_ms(60_000);
    for i in [STALL, CC, LIB, STALL, CC, LIB] {
        let r = w.sync(i)?;
        tally.add(&r);
        if r.receipts > 0 {
            say(&format!(
                "{:<17} {} receipts ({} rejected), {} facts, {} bytes",
                w.sites[i].name,
                r.receipts,
                r.rejected,
                r.facts,
                r.bytes_up + r.bytes_down
            ));
        }
    }
    let b = w.hub.balance(hanako, bunkyo())?;
    say(&format!(
        "hub honoured both of Hanako's spends: balance {}, debt {} (recorded and reported, never dropped)",
        b.balance, b.debt
    ));

    println!("\n19:30  Taro reports his card lost. The suspension reaches the stall first.");
    w.hub.suspend_card(&cards[1], w.now)?;
    tally.add(&w.sync(STALL)?);
    match w.sites[STALL].node.redeem(&cards[1], pts(100), None, w.now) {
        Err(e) => say(&format!("festival stall: Taro's card refused: {e}")),
        Ok(_) => bail!("a suspended card was accepted"),
    }

    println!("\n19:45  Someone tries a forged transaction through the library's link.");
    let stolen = w.sites[STALL].node.outbox_from(1, 1)?;
    let v = stolen
        .first()
        .context("the stall has a transaction")?
        .verify()?;
    let mut forged_payload: TxPayload = v.payload().clone();
    if let TxBody::Redeem(r) = &mut forged_payload.body {
        r.points = pts(19_000);
    }
    let forged = SignedTx::from_raw_parts(
        mykey_sync_proto::codec::encode(&forged_payload),
        stolen[0].signature_bytes(),
    );
    let lib = w.sites[LIB].node.id();
    let r = w.hub.ingest(&lib, vec![forged], w.now);
    w.sites[LIB].node.apply_receipts(&r, w.now)?;
    match &r.receipts[0].outcome {
        Outcome::Rejected(reason @ RejectReason::BadSignature) => {
            tally.rejected += 1;
            say(&format!(
                "hub rejects it: {reason}; the library stores the reason"
            ))
        }
        other => bail!("a forged transaction was not rejected: {other:?}"),
    }

    println!("\n20:00  The municipality closes the settlement period.");
    let settlement_dir = args.data.join("settlement");
    let run = settle(&mut w, &settlement_dir)?;
    for c in &run.closed {
        let day = mykey_hub::economy::calendar::Date::of;
        let yen: u64 = c.statements.iter().map(|s| s.yen).sum();
        say(&format!(
            "closed {} period {} to {} (JST): {} statement lines, ¥{yen} to pay out",
            c.period.municipality,
            day(c.period.starts_at),
            day(c.period.ends_at),
            c.statements.len()
        ));
    }
    for f in &run.files {
        say(&format!("wrote {}", f.path.display()));
    }

    println!("\nSummary");
    let debt = w.hub.total_debt()?;
    let report = w.hub.check_conservation()?;
    let mut pending = 0;
    for s in &w.sites {
        let st = s.node.status()?;
        pending += st.outbox.pending;
        say(&format!(
            "{:<17} signed {:>2}, accepted {:>2}, rejected {:>2}, pending {}",
            s.name, st.last_seq, st.outbox.accepted, st.outbox.rejected, st.outbox.pending
        ));
    }
    say(&format!(
        "transactions accepted {}, rejected {}; bytes on the wire {}",
        tally.accepted, tally.rejected, tally.bytes
    ));
    say(&format!(
        "debt from offline spending {debt} pt, bound (sum of the per-card offline limits that allowed it) {bound} pt: {}",
        if debt <= bound {
            "within bound"
        } else {
            "OVER BOUND"
        }
    ));
    for m in &report.municipalities {
        let name = m
            .municipality
            .map(|c| c.to_string())
            .unwrap_or_else(|| "(none)".into());
        say(&format!(
            "conservation {name}: credited {} − redeemed {} − expired {} = {} = wallets {} − debts {}",
            m.credited,
            m.redeemed,
            m.expired,
            i128::from(m.credited) - i128::from(m.redeemed) - i128::from(m.expired),
            m.wallets,
            m.debts
        ));
    }
    say(&format!(
        "ledger: {} transfers, debits = credits = {} pt: balanced",
        report.n_transfers, report.total
    ));
    if pending != 0 || debt > bound {
        bail!("the demo day did not reconcile");
    }
    println!(
        "\nData left in {} (hub/, bunkyo-lib/, bunkyo-cc/, fest-stall-1/): try `mykey-node --data {}/bunkyo-lib status`.",
        args.data.display(),
        args.data.display()
    );
    if let Some(addr) = &args.dashboard {
        let password = mykey_hub::http::auth::random_password()?;
        w.hub
            .set_operator("demo", &password, mykey_hub::access::Role::Admin, w.now)?;
        println!("\nOperator dashboard: log in as demo / {password} (Ctrl-C to stop).");
        let opts = mykey_hub::http::DashboardOptions {
            http: Some(addr.clone()),
            ..Default::default()
        };
        mykey_hub::http::serve_dashboard_blocking(&args.data.join("hub"), &opts)?;
    }
    Ok(())
}

/// Registers the bank accounts settlement pays into (the agent that sends the
/// transfers, every merchant that took points, the municipality), then
/// closes the open period through the demo's clock and writes the payout
/// files and reports.
fn settle(
    w: &mut World,
    dir: &std::path::Path,
) -> Result<mykey_hub::economy::outputs::SettlementRun> {
    use mykey_hub::economy::zengin::{
        AccountKind, BankAccount, BankCode, BranchCode, BuiltinBanks,
    };
    use mykey_hub::store::economy::Party;
    use mykey_sync_proto::FacilityId;
    let acct = |bank: &str, branch: &str, number: u32, holder: &str| -> Result<BankAccount> {
        Ok(BankAccount {
            bank: BankCode::parse(bank)?,
            branch: BranchCode::parse(branch)?,
            kind: AccountKind::Ordinary,
            number,
            holder: holder.into(),
        })
    };
    let payees = [
        (
            Party::Agent,
            acct("0009", "001", 1_234_567, "ｾｲｻﾝﾀﾞｲｺｳ")?,
            1_234_567_890,
        ),
        (
            Party::Merchant(FacilityId::parse("fest-stall-1")?),
            acct("0001", "004", 7_654_321, "ﾏﾂﾘﾔﾀｲ")?,
            1,
        ),
        (
            Party::Merchant(FacilityId::parse("bunkyo-cc")?),
            acct("0001", "005", 1_111_111, "ﾌﾞﾝｷﾖｳｺﾐﾕﾆﾃｲｾﾝﾀ-")?,
            2,
        ),
        (
            Party::Municipality(bunkyo()),
            acct("0005", "001", 2_222_222, "ﾌﾞﾝｷﾖｳｸ")?,
            131_059,
        ),
    ];
    for (party, account, code) in &payees {
        w.hub.set_payee(party, account, *code, &BuiltinBanks)?;
    }
    // The demo's clock runs ahead of real time: settle at its `now`.
    Ok(w.hub.settle(dir, &BuiltinBanks, w.now, true)?)
}

fn tracing_subscriber_init() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("error"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
}
