//! `mykey-node`: the edge node's command line.

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};
use mykey_node::config::{DataDir, NodeConfig};
use mykey_node::node::Lookup;
use mykey_sync_proto::{AccountId, FacilityCardNumber, NodeId, Points, ProgramId, UnixMillis};
use std::path::PathBuf;

/// MyKey Edge node: serves card lookups and points at a facility, online or not.
#[derive(Parser)]
#[command(name = "mykey-node", version, about)]
struct Cli {
    /// The node's data directory (key, store, config).
    #[arg(
        long,
        global = true,
        default_value = "./node-data",
        env = "MYKEY_NODE_DATA"
    )]
    data: PathBuf,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Create the data directory, the node key (mode 0600) and the store.
    Init {
        /// The hub's id (its public key, hex), as `mykey-hub init` printed it;
        /// with --hub-addr …/p2p/PEER_ID any prefix of it (4 or more digits), or none.
        #[arg(long, required_unless_present = "hub_addr")]
        hub_key: Option<String>,
        /// The hub's address (libp2p multiaddr), if known; as `mykey-hub serve`
        /// prints it, its /p2p peer id holds the hub id.
        #[arg(long)]
        hub_addr: Option<String>,
    },
    /// Print this node's id (its public key) for enrolment at the hub.
    Id,
    /// Look up a card in the local cache.
    Lookup {
        /// Card key as ISSUER_HEX:SERIAL_HEX.
        #[arg(long)]
        card: String,
    },
    /// Link a facility card number to the card's holder.
    Link {
        /// Card key as ISSUER_HEX:SERIAL_HEX.
        #[arg(long)]
        card: String,
        /// The facility card number.
        #[arg(long)]
        number: String,
    },
    /// Unlink a facility card number.
    Unlink {
        /// Card key as ISSUER_HEX:SERIAL_HEX.
        #[arg(long)]
        card: String,
        /// The facility card number.
        #[arg(long)]
        number: String,
    },
    /// Grant points from a programme.
    Grant {
        /// Card key as ISSUER_HEX:SERIAL_HEX.
        #[arg(long)]
        card: String,
        /// Programme id.
        #[arg(long)]
        program: String,
        /// Points.
        #[arg(long)]
        points: String,
    },
    /// Spend points (without a PIN proof: amounts above the PIN threshold are
    /// declined; use `mykey-node watch` at a reader for those).
    Redeem {
        /// Card key as ISSUER_HEX:SERIAL_HEX.
        #[arg(long)]
        card: String,
        /// Points.
        #[arg(long)]
        points: String,
    },
    /// Strict mode: give part of this node's spend right on a holder's points to a LAN peer
    /// (a signed transfer the peer takes from the LAN while `mykey-node run` is up).
    GiveRight {
        /// The holder's account, as listings print it (A12) or its number (12).
        #[arg(long)]
        account: String,
        /// The receiving node's id (`mykey-node id` on that node), or a unique
        /// prefix of 4+ hex digits among this node's LAN roster peers.
        #[arg(long)]
        to: String,
        /// Points.
        #[arg(long)]
        points: String,
        /// How long to wait for a connected peer to take the transfer
        /// before reporting it queued, in seconds.
        #[arg(long, default_value_t = 10)]
        wait_s: u64,
    },
    /// Strict mode: show this node's spend right on a holder's points.
    Right {
        /// The holder's account, as listings print it (A12) or its number (12).
        #[arg(long)]
        account: String,
    },
    /// Show the node's sync and outbox status.
    Status {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Check this node: data directory and key modes, enrolment and its
    /// expiry, strict mode, the hub (reachable? knows us? its clock), card
    /// readers, disk; one line each, ok/warn/fail with what to do. Exits 1
    /// on any fail; changes nothing.
    Doctor {
        /// Print JSON.
        #[arg(long)]
        json: bool,
        /// How long the hub has to answer, in seconds.
        #[arg(long, default_value_t = mykey_node::doctor::HUB_TIMEOUT.as_secs())]
        hub_timeout_s: u64,
    },
    /// Printed QR point vouchers.
    #[command(subcommand)]
    Voucher(VoucherCommand),
    /// Card reader commands.
    #[command(subcommand)]
    Card(mykey_node::card::cli::CardCommand),
    /// Serve card taps at the counter: look up the holder (library) or take
    /// points (shop: amount, PIN above the hub's threshold, redeem).
    Watch(mykey_node::card::watch::WatchArgs),
    /// Bridge self-check machines (SIP2) to the library system: a tapped card
    /// becomes its library card number (see `[sip2]` in node.toml).
    Sip2(mykey_node::sip2::cli::Sip2Args),
    /// The holder's own counter: a touch-screen page on loopback (default
    /// 127.0.0.1:8782, Japanese with an English switch, an on-screen PIN
    /// keypad) beside a card reader. A holder taps their card and enters the
    /// PIN to see their balance per municipality, what expires when and
    /// their history, read from the hub through the running `mykey-node run`
    /// of this data directory; with the hub away, what this node holds,
    /// marked offline. Taking the card away clears the screen. Nothing of
    /// the history is stored or logged here.
    Kiosk(mykey_node::kiosk::KioskArgs),
    /// Card links holders asked for at a kiosk, waiting for this node's
    /// facility to confirm them (where its kiosk link policy at the hub is
    /// `confirm`): list, confirm or refuse, online through the `mykey-node
    /// run` of this data directory, signed with this node's key.
    #[command(subcommand)]
    LinkRequests(mykey_node::link_requests::LinkRequestsCmd),
    /// Run the node: sync with the hub (and LAN peers) until SIGINT or SIGTERM.
    Run {
        /// Listen here for LAN peers (multiaddr; repeatable) instead of net.toml's `listen`.
        #[arg(long)]
        listen: Vec<String>,
        /// Also dial the hub here (multiaddr; repeatable), besides node.toml's `hub_addr`.
        #[arg(long)]
        hub_addr: Vec<String>,
        /// A LAN peer to dial (`/ip4/…/tcp/…/p2p/<peer id>`; repeatable), besides net.toml's `peers`.
        #[arg(long)]
        peer: Vec<String>,
        /// Serve the local status page here [default: 127.0.0.1:8781; in use is an error].
        #[arg(long, value_name = "ADDR")]
        http: Option<String>,
    },
}

/// `mykey-node voucher …`.
#[derive(Subcommand, Debug)]
enum VoucherCommand {
    /// Take printed vouchers, offline: one code per line on stdin (a
    /// keyboard-wedge scanner), or the codes in a photo (--image).
    Redeem {
        /// A PNG photo or scan of one or more vouchers, instead of stdin.
        #[arg(long, value_name = "PHOTO")]
        image: Option<PathBuf>,
    },
    /// Serve the shop's phone page on the LAN: a phone opens it, takes a
    /// photo of a voucher with its own camera, and the node decodes and
    /// takes it (the same offline checks as `redeem`), answering taken,
    /// taken before, or refused and why.
    Page {
        /// Serve it here (all interfaces by default, so the phone reaches
        /// it; in use is an error).
        #[arg(long, value_name = "ADDR", default_value = mykey_node::http::voucher_page::DEFAULT_ADDR)]
        listen: String,
    },
    /// Print the vouchers of an earlier kiosk issue again, when the receipt
    /// printer jammed or the receipt was lost: the same vouchers, byte for
    /// byte (the hub pays each once; a second copy taken is an incident).
    /// Refused for an issue the hub refused, and once the hub withdrew this
    /// node as voucher issuer.
    Reprint {
        /// The seq (on the kiosk's receipt screen and in the log).
        #[arg(long)]
        seq: u64,
        /// The receipt printer (a device such as /dev/usb/lp0, or a file,
        /// appended to): each voucher as ESC/POS raster.
        #[arg(long, value_name = "PATH")]
        printer: Option<PathBuf>,
        /// Also write each voucher as SVG and PNG into this directory
        /// (created if missing).
        #[arg(long, value_name = "DIR")]
        out: Option<PathBuf>,
    },
}

/// `mykey-node voucher reprint`: the vouchers of issue `seq` again, to the
/// printer and files asked for, and each one's face and digits on stdout.
fn voucher_reprint(
    dir: &DataDir,
    seq: u64,
    printer: Option<&PathBuf>,
    out: Option<&PathBuf>,
) -> Result<()> {
    let node = dir.open()?;
    let vouchers = node.kiosk_vouchers_again(seq)?;
    for v in &vouchers {
        let [points, expiry, serial, municipality] = mykey_voucher::face_lines(v);
        println!("{serial}: {points}, {expiry}, {municipality}");
        println!("  {}", mykey_voucher::to_text(v));
    }
    if let Some(p) = printer {
        mykey_node::kiosk::vouchers::print(p, &vouchers)
            .with_context(|| format!("writing to the printer {}", p.display()))?;
        println!("sent {} vouchers to {}", vouchers.len(), p.display());
    }
    if let Some(d) = out {
        std::fs::create_dir_all(d).with_context(|| format!("creating {}", d.display()))?;
        for v in &vouchers {
            let name = format!("voucher-{}", v.body.serial);
            let svg = d.join(format!("{name}.svg"));
            std::fs::write(&svg, mykey_voucher::voucher_svg(v))
                .with_context(|| format!("writing {}", svg.display()))?;
            let png = d.join(format!("{name}.png"));
            std::fs::write(&png, mykey_voucher::voucher_png(v, 8))
                .with_context(|| format!("writing {}", png.display()))?;
        }
        println!(
            "wrote {} vouchers as SVG and PNG into {}",
            vouchers.len(),
            d.display()
        );
    }
    Ok(())
}

/// `mykey-node voucher page`: serves until the process is stopped.
fn voucher_page(dir: &DataDir, listen: &str) -> Result<()> {
    use mykey_node::http::voucher_page::{bind, router};
    let node = dir.open()?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the voucher page's runtime")?;
    let listener = rt.block_on(bind(listen))?;
    let local = listener.local_addr()?;
    println!("voucher page on http://{local}/");
    if local.ip().is_unspecified() {
        println!(
            "open it on the shop's phone at http://<this machine's LAN address>:{}/",
            local.port()
        );
    }
    let app = router(node);
    rt.block_on(async move { axum::serve(listener, app).await })
        .context("the voucher page stopped")?;
    Ok(())
}

/// Takes each voucher; a refused one is said on stderr and the rest go on.
/// Fails at the end if any was refused.
fn voucher_redeem(dir: &DataDir, image: Option<&PathBuf>) -> Result<()> {
    let mut node = dir.open()?;
    let mut take = |v: &mykey_voucher::SignedVoucher| match node.redeem_voucher(v, now()) {
        Ok((d, taken)) => {
            println!("taken: {taken} (seq {}, tx {})", d.seq, d.tx.short());
            true
        }
        Err(e) => {
            eprintln!("refused: {e}");
            false
        }
    };
    let mut refused = 0u64;
    match image {
        Some(path) => {
            let bytes =
                std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
            let found = mykey_voucher::decode_png(&bytes).context("--image")?;
            for v in &found {
                if !take(v) {
                    refused += 1;
                }
            }
        }
        None => {
            use std::io::{BufRead, Read};
            let stdin = std::io::stdin();
            let mut line = String::new();
            let mut input = stdin.lock();
            loop {
                line.clear();
                // A scanner that never sends a line end cannot make us read without bound.
                let n = Read::by_ref(&mut input)
                    .take(mykey_voucher::MAX_LINE_CHARS as u64 * 4)
                    .read_line(&mut line)
                    .context("reading stdin")?;
                if n == 0 {
                    break;
                }
                if line.trim().is_empty() {
                    continue;
                }
                match mykey_voucher::parse(&line) {
                    Ok(v) => {
                        if !take(&v) {
                            refused += 1;
                        }
                    }
                    Err(e) => {
                        eprintln!("refused: {e}");
                        refused += 1;
                    }
                }
            }
        }
    }
    if refused > 0 {
        anyhow::bail!(
            "{refused} voucher(s) refused (each said why above); nothing was recorded for them"
        );
    }
    Ok(())
}

fn now() -> UnixMillis {
    mykey_net::unix_now()
}

/// Whether the LAN peer `to` holds this node's chain through `seq`, as the
/// running node (`mykey-node run` on this data directory) last heard from
/// it: waits up to `wait_s` while the peer is connected, and says which.
/// An account as listings print it (`A12`) or as its number (`12`).
fn account_arg(text: &str) -> anyhow::Result<AccountId> {
    let t = text.trim();
    let digits = t.strip_prefix(['A', 'a']).unwrap_or(t);
    AccountId::parse(digits).map_err(|_| {
        anyhow::anyhow!(
            "--account {text:?} is not an account: give it as `mykey-hub account list` prints it (A12) or its number (12)"
        )
    })
}

/// A LAN peer by its full id, or by a unique prefix (4 hex digits or more)
/// of a node on one of this node's LAN rosters.
fn peer_arg(text: &str, peers: &[NodeId]) -> anyhow::Result<NodeId> {
    let t = text.trim().to_ascii_lowercase();
    if t.len() == 64 {
        return NodeId::parse(&t).context("--to (copy it from `mykey-node id` on the peer)");
    }
    if t.len() < 4 || !t.bytes().all(|b| b.is_ascii_hexdigit()) {
        anyhow::bail!(
            "--to {text:?} is not a node id: give the peer's id (`mykey-node id` on the peer) or 4 or more of its first hex digits"
        );
    }
    let found: Vec<&NodeId> = peers
        .iter()
        .filter(|p| p.to_string().starts_with(&t))
        .collect();
    match found.as_slice() {
        [one] => Ok(**one),
        [] => anyhow::bail!(
            "no node on this node's LAN rosters has an id starting with {t} (`mykey-node status` shows the groups; a peer joins one with `mykey-hub lan roster`)"
        ),
        many => anyhow::bail!(
            "{t} names {} LAN peers: {}; give more digits",
            many.len(),
            many.iter()
                .map(|p| p.to_string()[..12].to_owned())
                .collect::<Vec<_>>()
                .join(", ")
        ),
    }
}

fn delivery(dir: &DataDir, me: &str, to: NodeId, seq: u64, wait_s: u64) -> String {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(wait_s);
    let peer = to.to_string();
    loop {
        let Some(live) = mykey_node::http::client::live_status(dir).filter(|l| l.node == me) else {
            return format!(
                "queued: `mykey-node run` is not running on this data directory; the transfer is in this node's chain and reaches {} when `run` connects to it on the LAN",
                to.short()
            );
        };
        let p = live.lan_peers.iter().find(|p| p.node == peer);
        if p.and_then(|p| p.holds_through).is_some_and(|h| h >= seq) {
            return format!(
                "delivered: {} acknowledged this node's chain through the transfer (seq {seq})",
                to.short()
            );
        }
        if !p.is_some_and(|p| p.connected) {
            return format!(
                "queued: {} is not connected to this node now; `mykey-node run` offers the transfer when it connects (check `mykey-node status` for LAN peers)",
                to.short()
            );
        }
        if std::time::Instant::now() >= deadline {
            return format!(
                "queued: {} is connected but has not taken the transfer within {wait_s} s; `mykey-node run` keeps offering it (check the logs of both nodes)",
                to.short()
            );
        }
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
}

fn main() -> std::process::ExitCode {
    mykey_net::pipe::exit_quietly_on_broken_pipe();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        // Colour codes only for a person at a terminal, never in log files.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr)
        .init();
    match run(Cli::parse()) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            // Each cause once (anyhow's `Caused by:` repeats what a message
            // already says).
            eprintln!("Error: {}", mykey_net::report::error_line(e.as_ref()));
            std::process::ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> Result<()> {
    let dir = DataDir::new(&cli.data);
    match cli.command {
        Command::Init { hub_key, hub_addr } => {
            let hub = mykey_net::identity::hub_id_from(hub_key.as_deref(), hub_addr.as_deref())?;
            let node = dir.init(&NodeConfig {
                hub_key: hub.to_string(),
                hub_addr,
            })?;
            println!("node id {}", node.id());
            println!(
                "data in {}; enrol this id at the hub: mykey-hub node enrol --node {} --facility …",
                dir.root().display(),
                node.id()
            );
        }
        Command::Id => println!("{}", dir.open()?.id()),
        Command::Doctor {
            json,
            hub_timeout_s,
        } => {
            let checks =
                mykey_node::doctor::run(&dir, std::time::Duration::from_secs(hub_timeout_s));
            if json {
                println!("{}", mykey_net::doctor::json(&checks));
            } else {
                print!("{}", mykey_net::doctor::text(&checks));
            }
            if mykey_net::doctor::any_failed(&checks) {
                anyhow::bail!("doctor found a failure (the `fail` lines above say what to do)");
            }
        }
        Command::Lookup { card: c } => {
            let node = dir.open()?;
            match node.lookup(&node.resolve_card(&c).context("--card")?)? {
                Lookup::Found {
                    account,
                    my_key_id,
                    municipality,
                    numbers,
                } => {
                    println!(
                        "registered: My Key ID {my_key_id}, account {account}, municipality {municipality}"
                    );
                    if let Some((points, at)) = node.upcoming_expiry(account, municipality)? {
                        println!("{}", mykey_node::expiry::line(points, at));
                    }
                    if numbers.is_empty() {
                        println!("no card number of this facility linked");
                    }
                    for n in numbers {
                        let note = if n.confirmed {
                            ""
                        } else {
                            " (not yet confirmed by the hub)"
                        };
                        println!("facility card number {}{note}", n.number);
                    }
                }
                Lookup::Visitor {
                    account,
                    home,
                    numbers,
                } => {
                    println!(
                        "registered elsewhere: account {account}, home municipality {home}; no points of this town (do not send the holder to register again)"
                    );
                    if numbers.is_empty() {
                        println!("no card number of this facility linked");
                    }
                    for n in numbers {
                        let note = if n.confirmed {
                            ""
                        } else {
                            " (not yet confirmed by the hub)"
                        };
                        println!("facility card number {}{note}", n.number);
                    }
                }
                Lookup::NotRegistered => println!(
                    "not registered: the holder can register a My Key ID at a municipal counter"
                ),
                Lookup::Suspended => println!(
                    "SUSPENDED: card reported lost; the holder must go to the municipal counter"
                ),
                Lookup::Superseded => println!("replaced: this card was renewed; use the new card"),
            }
        }
        Command::Link { card: c, number } => {
            let mut node = dir.open()?;
            let n = FacilityCardNumber::parse(&number).context("--number")?;
            let d = node.link(&node.resolve_card(&c).context("--card")?, n, now())?;
            println!("linked (seq {}, tx {})", d.seq, d.tx.short());
        }
        Command::Unlink { card: c, number } => {
            let mut node = dir.open()?;
            let n = FacilityCardNumber::parse(&number).context("--number")?;
            let d = node.unlink(&node.resolve_card(&c).context("--card")?, n, now())?;
            println!("unlinked (seq {}, tx {})", d.seq, d.tx.short());
        }
        Command::Grant {
            card: c,
            program,
            points,
        } => {
            let mut node = dir.open()?;
            let p = Points::parse(&points).context("--points")?;
            let prog = ProgramId::parse(&program).context("--program")?;
            let d = node.grant(&node.resolve_card(&c).context("--card")?, prog, p, now())?;
            println!(
                "granted {p} (seq {}, tx {}); spendable once the hub confirms",
                d.seq,
                d.tx.short()
            );
        }
        Command::Voucher(VoucherCommand::Redeem { image }) => {
            voucher_redeem(&dir, image.as_ref())?;
        }
        Command::Voucher(VoucherCommand::Page { listen }) => {
            voucher_page(&dir, &listen)?;
        }
        Command::Voucher(VoucherCommand::Reprint { seq, printer, out }) => {
            voucher_reprint(&dir, seq, printer.as_ref(), out.as_ref())?;
        }
        Command::Redeem { card: c, points } => {
            let mut node = dir.open()?;
            let p = Points::parse(&points).context("--points")?;
            let d = node.redeem(&node.resolve_card(&c).context("--card")?, p, None, now())?;
            println!("redeemed {p} (seq {}, tx {})", d.seq, d.tx.short());
        }
        Command::GiveRight {
            account,
            to,
            points,
            wait_s,
        } => {
            let mut node = dir.open()?;
            let a = account_arg(&account)?;
            let to = peer_arg(&to, &node.lan_peers()?)?;
            let p = Points::parse(&points).context("--points")?;
            let d = node.transfer_right(a, to, p, now())?;
            let me = node.id().to_string();
            drop(node);
            println!(
                "signed: {p} of the right on account {a} to {} (seq {}, tx {})",
                to.short(),
                d.seq,
                d.tx.short()
            );
            println!("{}", delivery(&dir, &me, to, d.seq, wait_s));
        }
        Command::Right { account } => {
            let node = dir.open()?;
            let a = account_arg(&account)?;
            let Some(limits) = node.limits()? else {
                anyhow::bail!(
                    "this node has no limits from the hub yet: connect it to the hub once"
                );
            };
            let m = limits.municipality;
            let (right, strict) = node.right(a, m)?;
            let giveable = node.giveable_right(a, m)?;
            if strict {
                println!(
                    "account {a} in {m}: may spend {right} here, may give {giveable} to a peer"
                );
            } else {
                println!("{m} is not in strict mode: spends follow the bounded offline limits");
            }
        }
        Command::Status { json } => {
            let node = dir.open()?;
            let s = node.status()?;
            let t = now();
            // Link facts only the running node knows (its local status page).
            let live = mykey_node::http::client::live_status(&dir)
                .filter(|l| l.node == s.node.to_string());
            if json {
                let v = serde_json::json!({
                    "node": s.node.to_string(),
                    "hub": s.hub.to_string(),
                    "facility": s.limits.as_ref().map(|l| l.facility.to_string()),
                    "municipality": s.limits.as_ref().map(|l| l.municipality.to_string()),
                    "last_seq": s.last_seq,
                    "receipted_seq": s.receipted_seq,
                    "pending": s.outbox.pending,
                    "accepted": s.outbox.accepted,
                    "rejected": s.outbox.rejected,
                    "oldest_pending_age_ms": s.outbox.oldest_pending_at.map(|a| t.since(a)),
                    "last_receipt_at_ms": s.outbox.last_receipt_at.map(|a| a.0),
                    "strict_mode": s.strict.map(|(_, on)| on),
                    "exposure_points": s.exposure.get(),
                    "voucher_cap_points": s.voucher_cap.map(|c| c.get()),
                    "fact_cursor": s.fact_cursor,
                    "troubled": s.troubled.iter().map(|r| serde_json::json!({
                        "seq": r.seq, "tx": r.tx_id.to_string(), "kind": r.kind,
                        "status": r.status, "reason": r.reason,
                    })).collect::<Vec<_>>(),
                    "foreign_rejections": s.foreign_rejections,
                    "lan_groups": s.lan_groups.iter().map(|(m, g, n)| serde_json::json!({
                        "municipality": m.to_string(), "group": g, "members": n,
                    })).collect::<Vec<_>>(),
                    "withdrawn_rights": s.withdrawn_rights.iter().map(|w| serde_json::json!({
                        "accept_seq": w.accept_seq, "from": w.credit.sender.to_string(),
                        "account": w.credit.account.get(), "points": w.credit.points.get(),
                        "already_spent": w.shortfall.get(), "reason": w.reason, "at_ms": w.at.0,
                    })).collect::<Vec<_>>(),
                    "running": live.is_some(),
                    "hub_link": live.as_ref().map(|l| l.hub_link.clone()),
                    "hub_link_since_ms": live.as_ref().map(|l| l.hub_link_since_ms),
                    "last_hub_contact_ms": live.as_ref().and_then(|l| l.last_hub_contact_ms),
                    "lan_peers": live.as_ref().map(|l| &l.lan_peers),
                });
                println!("{}", serde_json::to_string_pretty(&v)?);
            } else {
                println!("node {}  (hub {})", s.node, s.hub.short());
                match &s.limits {
                    Some(l) => println!(
                        "facility {} in {}; card offline limit {}, exposure limit {}, PIN above {}, offline voucher cap {}",
                        l.facility,
                        l.municipality,
                        l.per_card_offline_limit,
                        l.node_exposure_limit,
                        l.pin_threshold,
                        s.voucher_cap.unwrap_or(l.node_exposure_limit)
                    ),
                    None => println!("not enrolled yet: no limits from the hub (connect once)"),
                }
                match s.strict {
                    Some((m, true)) => println!(
                        "strict mode: on for {m} (spends only within the rights the hub granted this node; `mykey-node right --account A…`)"
                    ),
                    Some((m, false)) => println!(
                        "strict mode: off for {m} (spends follow the bounded offline limits)"
                    ),
                    None => {}
                }
                println!(
                    "transactions: {} signed, {} accepted, {} rejected, {} pending{}",
                    s.last_seq,
                    s.outbox.accepted,
                    s.outbox.rejected,
                    s.outbox.pending,
                    s.outbox
                        .oldest_pending_at
                        .map(|a| format!(" (oldest {} s old)", t.since(a) / 1000))
                        .unwrap_or_default()
                );
                println!(
                    "unconfirmed spend here: {}; fact cursor {}",
                    s.exposure, s.fact_cursor
                );
                if let Some(r) = s.outbox.last_receipt_at {
                    println!("last receipt from the hub {} s ago", t.since(r) / 1000);
                }
                match &live {
                    Some(l) => {
                        let since = t.0.saturating_sub(l.hub_link_since_ms) / 1000;
                        println!("hub link: {} for {since} s", l.hub_link);
                        let n_up = l.lan_peers.iter().filter(|p| p.connected).count();
                        println!(
                            "LAN peers: {n_up} connected, {} seen since start",
                            l.lan_peers.len()
                        );
                    }
                    None => println!(
                        "hub link: unknown (`mykey-node run` is not running on this data directory)"
                    ),
                }
                if s.lan_groups.is_empty() {
                    println!(
                        "LAN groups: none (no roster from the hub names this node, so it admits no LAN peer)"
                    );
                }
                for (m, g, n) in &s.lan_groups {
                    println!("LAN group {g} of {m}: {n} nodes on the roster");
                }
                for w in &s.withdrawn_rights {
                    println!(
                        "right withdrawn: {} on account {} from {} (the hub rejected this node's acceptance, seq {}: {}){}",
                        w.credit.points,
                        w.credit.account,
                        w.credit.sender.short(),
                        w.accept_seq,
                        w.reason,
                        if w.shortfall.is_zero() {
                            String::new()
                        } else {
                            format!(
                                "; {} of it was already spent, so the right is now zero",
                                w.shortfall
                            )
                        }
                    );
                }
                for r in &s.troubled {
                    println!(
                        "  seq {} {} {}: {}",
                        r.seq,
                        r.kind,
                        r.status,
                        r.reason.as_deref().unwrap_or("")
                    );
                }
            }
        }
        Command::Card(cmd) => mykey_node::card::cli::run(cmd)?,
        Command::Watch(args) => {
            let _lock = lock(&dir, "watch")?;
            mykey_node::card::watch::run_cli(&dir, args)?;
        }
        Command::LinkRequests(cmd) => mykey_node::link_requests::run_cli(&dir, &cmd)?,
        Command::Kiosk(args) => {
            let _lock = lock(&dir, "kiosk")?;
            mykey_node::kiosk::run_cli(&dir, args)?;
        }
        Command::Sip2(args) => {
            let _lock = lock(&dir, "sip2")?;
            mykey_node::sip2::cli::run_cli(&dir, args)?;
        }
        Command::Run {
            listen,
            hub_addr,
            peer,
            http,
        } => {
            let _lock = lock(&dir, "run")?;
            let mut opts = mykey_node::net::run::RunOptions::parse(&listen, &hub_addr, &peer)?;
            opts.status_http = http;
            mykey_node::net::run::run_blocking(&dir, opts)?;
        }
    }
    Ok(())
}

/// Holds `<data>/<what>.lock` while `mykey-node <what>` runs: a second one
/// on the same data directory stops with the first one's pid. `run` and
/// `watch` take different locks, since they share a directory by design.
fn lock(dir: &DataDir, what: &str) -> anyhow::Result<mykey_net::dirlock::DirLock> {
    if !dir.root().is_dir() {
        anyhow::bail!(
            "no node data directory at {}: create one with `mykey-node init --data {}`",
            dir.root().display(),
            dir.root().display()
        );
    }
    Ok(mykey_net::dirlock::DirLock::acquire(
        dir.root(),
        what,
        &format!("mykey-node {what}"),
    )?)
}
