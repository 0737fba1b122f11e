//! `mykey-hub`: the hub's command line for operators.
//!
//! Every command works on a data directory (`--data`, default `./hub-data`)
//! made by `mykey-hub init`. Logs go to stderr (`RUST_LOG` respected); the
//! hub key never appears in them.

use anyhow::{Context, bail};
use clap::{Args, Parser, Subcommand};
use mykey_hub::admin::facility;
use mykey_hub::cli::{lists, names, output};
use mykey_hub::{FacilityKind, Hub, NodePolicy};
use mykey_sync_proto::{
    AccountId, FacilityId, LanGroup, MunicipalityCode, MyKeyId, NodeId, OpKind, Points, ProgramId,
    UnixMillis,
};
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Parser, Debug)]
#[command(
    name = "mykey-hub",
    version,
    about = "The MyKey Edge hub: registry, ledger and node enrolment"
)]
struct Cli {
    /// The hub's data directory (or a path ending in .db for the database file).
    #[arg(long, global = true, default_value = "./hub-data", value_name = "DIR")]
    data: PathBuf,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum OperatorCmd {
    /// Add an operator (or set a new password, and with --role a new role);
    /// the password is read from the terminal, or from the first line of
    /// stdin with --password-stdin.
    Add {
        /// Login name.
        #[arg(long)]
        name: String,
        /// viewer (reads everything, changes nothing), staff (one
        /// municipality's data only; with --municipality) or admin
        /// (everything). Required for a new operator.
        #[arg(long, value_name = "ROLE")]
        role: Option<String>,
        /// The municipality a staff operator works for.
        #[arg(long, value_parser = parse_muni)]
        municipality: Option<MunicipalityCode>,
        /// Read the password from stdin instead of prompting.
        #[arg(long)]
        password_stdin: bool,
    },
    /// Make an API token for an operator (for scripts and Prometheus:
    /// `Authorization: Bearer <token>`); printed once, stored hashed.
    Token {
        /// Login name.
        #[arg(long)]
        name: String,
        /// read (/metrics and node status only), staff (status and reports,
        /// no actions) or admin (whatever the operator's role allows).
        #[arg(long, value_parser = parse_scope)]
        scope: mykey_hub::access::Scope,
        /// How long it works (e.g. 90d, 12h), or never.
        #[arg(long, default_value = "90d", value_name = "DURATION|never")]
        expires: String,
    },
    /// List API tokens (never the tokens themselves): id, operator, scope, expiry, state.
    Tokens {
        /// Only this operator's.
        #[arg(long)]
        name: Option<String>,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// List operators: name, role, municipality, live tokens.
    List {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Show an operator with their tokens.
    Show {
        /// Login name.
        #[arg(long)]
        name: String,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Revoke an API token by the id `operator tokens` shows; it stops at once.
    Revoke {
        /// The token's id (12 hex digits).
        #[arg(long)]
        token: String,
    },
    /// Remove an operator with all their tokens; their sessions end at once.
    Remove {
        /// Login name.
        #[arg(long)]
        name: String,
    },
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Create a data directory with a fresh hub key and an empty database; prints the hub id.
    Init {
        /// Keep the hub's store in this PostgreSQL database
        /// (`postgres://USER[:PASSWORD]@HOST[:PORT]/DATABASE`, which must
        /// hold no hub yet) instead of SQLite's `hub.db`; written to the data
        /// directory's `store.toml` (mode 0600) and used by every later command.
        #[arg(long, value_name = "URL")]
        database: Option<String>,
    },
    /// Print the hub id (the public key nodes verify facts with).
    Id,
    /// Check this hub: data directory and key modes, the store, the listen
    /// addresses (free, or held by its own serve), the settlement agent's
    /// payee, disk; one line each, ok/warn/fail with what to do. Exits 1 on
    /// any fail; changes nothing.
    Doctor {
        /// Print JSON.
        #[arg(long)]
        json: bool,
        /// The dashboard address serve would take.
        #[arg(long, value_name = "ADDR", default_value = mykey_hub::http::DEFAULT_ADDR)]
        http: String,
    },
    /// Serve nodes over libp2p until SIGINT or SIGTERM; prints `listening on <addr>/p2p/<peer id>`
    /// and `dashboard on http://ADDR/` (https with --tls-cert; operator dashboard, JSON API,
    /// /metrics, the operator exchange API).
    Serve {
        /// Listen here (multiaddr; repeatable) instead of hub.toml's `listen`.
        #[arg(long, value_name = "MULTIADDR")]
        listen: Vec<String>,
        /// Serve the dashboard here [default: 127.0.0.1:8780; in use is an error].
        #[arg(long, value_name = "ADDR")]
        http: Option<String>,
        /// Alert when a kind of facility is silent longer than this (repeatable; defaults:
        /// library, museum, sports-hall 6h; community-centre, shop 24h; stall 72h).
        #[arg(long, value_name = "KIND=DURATION")]
        silent_after: Vec<String>,
        /// Alert when a node's clock differs from the hub's by more than this at Hello.
        #[arg(long, value_name = "DURATION", default_value = "2m")]
        max_clock_skew: String,
        /// Live dashboard views (event streams of open overview and node pages) served at
        /// once; one more is refused and its page refreshes every few seconds instead.
        #[arg(long, value_name = "N", default_value_t = mykey_hub::http::AppConfig::default().max_live_streams)]
        max_live_streams: usize,
        /// A trusted JPKI user-authentication CA certificate (DER or PEM;
        /// repeatable, both generations): with it, holders may register
        /// their cards at a node's kiosk (`mykey-node kiosk`).
        #[arg(long, value_name = "FILE")]
        trusted_ca: Vec<PathBuf>,
        /// Link this facility's card numbers at once when holders ask at a
        /// kiosk, whatever its stored policy, for this process only
        /// (repeatable; an override: the policy is set with `mykey-hub
        /// facility kiosk-link`).
        #[arg(long, value_name = "FACILITY")]
        kiosk_link: Vec<String>,
        #[command(flatten)]
        doors: Doors,
    },
    /// Municipalities.
    #[command(subcommand)]
    Municipality(MunicipalityCmd),
    /// Strict mode spend rights (escrow): grant, release, status.
    #[command(subcommand)]
    Escrow(EscrowCmd),
    /// Facilities (libraries, shops, stalls, community centres).
    #[command(subcommand)]
    Facility(FacilityCmd),
    /// Enrol or revoke node keys.
    #[command(subcommand)]
    Node(NodeCmd),
    /// LAN rosters: which nodes may trust each other on a LAN (a festival's stalls).
    #[command(subcommand)]
    Lan(LanCmd),
    /// List every node with its sync status.
    Nodes {
        /// Print JSON (the fields of `node list --json`).
        #[arg(long)]
        json: bool,
    },
    /// Operator accounts for the dashboard.
    #[command(subcommand)]
    Operator(OperatorCmd),
    /// Operators' API tokens (never the tokens themselves).
    #[command(subcommand)]
    Token(TokenCmd),
    /// Closed settlement periods and their statements.
    #[command(subcommand)]
    Period(PeriodCmd),
    /// Incidents (refused chains, debts created, overdrawn programmes), by number.
    #[command(subcommand)]
    Incident(IncidentCmd),
    /// Card holders' accounts.
    #[command(subcommand)]
    Account(AccountCmd),
    /// Card keys: renewal, suspension, reinstatement.
    #[command(subcommand)]
    Card(CardCmd),
    /// Grant programmes.
    #[command(subcommand)]
    Program(ProgramCmd),
    /// Grant points to a holder from a programme (hub-side).
    Grant {
        #[command(flatten)]
        who: Who,
        /// The programme paying.
        #[arg(long, value_parser = parse_program)]
        program: ProgramId,
        /// How many points.
        #[arg(long, value_parser = parse_points)]
        points: Points,
    },
    /// Show a holder's balances and debts.
    Balance {
        #[command(flatten)]
        who: Who,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// List outstanding debts from offline overdraft.
    Debts {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Ledger checks.
    #[command(subcommand)]
    Ledger(LedgerCmd),
    /// The replicated cache's shards.
    #[command(subcommand)]
    Shards(ShardsCmd),
    /// Show recent incidents (refused chains, debts created, overdrawn programmes).
    Incidents {
        /// How many.
        #[arg(long, default_value_t = 50)]
        limit: u32,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Points economy and settlement (exchange operators, campaigns, expiry, payees, settle, reports).
    #[command(flatten)]
    Economy(mykey_hub::economy::cli::EconomyCmd),
    /// The hub's store: copy a hub on SQLite into PostgreSQL.
    #[command(subcommand)]
    Store(mykey_hub::store_copy::StoreCmd),
    /// Spends held beyond nodes' enrolled bounds.
    #[command(flatten)]
    Bounds(mykey_hub::quarantine::cli::BoundsCmd),
    /// Printed QR point vouchers: issue a batch, print it, list, cancel.
    #[command(subcommand)]
    Voucher(mykey_hub::voucher::cli::VoucherCmd),
    /// Donation programmes: declare one with its recipient's bank account, close, list.
    #[command(subcommand)]
    Donation(mykey_hub::donation::cli::DonationCmd),
}

/// How the dashboard's HTTP side is served.
#[derive(Args, Debug)]
struct Doors {
    /// Serve HTTPS with this PEM certificate chain (with --tls-key).
    #[arg(long, value_name = "FILE", requires = "tls_key")]
    tls_cert: Option<PathBuf>,
    /// The PEM private key of --tls-cert.
    #[arg(long, value_name = "FILE", requires = "tls_cert")]
    tls_key: Option<PathBuf>,
    /// Serve plain HTTP on an address other than loopback (passwords and
    /// session cookies cross the network in clear: a trusted network only).
    #[arg(long, conflicts_with = "tls_cert")]
    insecure_http: bool,
    /// An operator's exchange request must be stamped (requested_at) within
    /// this of the hub's clock, either way.
    #[arg(long, value_name = "DURATION", default_value = "24h")]
    exchange_window: String,
}

#[derive(Subcommand, Debug)]
enum MunicipalityCmd {
    /// Register a municipality by its 6-digit local government code.
    Add {
        /// The code, with check digit (e.g. 131059).
        #[arg(long, value_parser = parse_muni)]
        code: MunicipalityCode,
        /// Its name.
        #[arg(long)]
        name: String,
    },
    /// List municipalities: code, name, strict mode, settlement cycle, facilities.
    List {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Show a municipality with its facilities and programmes.
    Show {
        /// The code.
        #[arg(long, value_parser = parse_muni)]
        code: MunicipalityCode,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Turn strict mode (escrow spend rights, DESIGN §6) on or off; its nodes learn it by a fact.
    Strict {
        /// The municipality.
        #[arg(long, value_parser = parse_muni)]
        code: MunicipalityCode,
        /// On.
        #[arg(long, conflicts_with = "off", required_unless_present = "off")]
        on: bool,
        /// Off.
        #[arg(long)]
        off: bool,
        /// Turn strict mode on even though nodes still hold transactions the
        /// hub has not received (the command lists them): their offline
        /// spends then arrive under strict rules, find no right and are
        /// recorded as beyond-right incidents.
        #[arg(long, requires = "on")]
        force: bool,
    },
}

#[derive(Subcommand, Debug)]
enum EscrowCmd {
    /// Split each account's spendable balance among a group of nodes as spend rights.
    Grant {
        /// The municipality (in strict mode).
        #[arg(long, value_parser = parse_muni)]
        municipality: MunicipalityCode,
        /// The nodes that share the rights (comma-separated node ids or unique prefixes).
        #[arg(long, value_delimiter = ',', required = true)]
        nodes: Vec<String>,
        /// Only these accounts (comma-separated: A2, 2 or My Key IDs).
        #[arg(
            long,
            value_delimiter = ',',
            conflicts_with = "all",
            required_unless_present = "all"
        )]
        accounts: Vec<String>,
        /// Every account with points in the municipality.
        #[arg(long)]
        all: bool,
    },
    /// End rights: unused reserved points return to the wallets; nodes drop their rights.
    Release {
        /// The municipality.
        #[arg(long, value_parser = parse_muni)]
        municipality: MunicipalityCode,
        /// Only these nodes' rights (comma-separated node ids or unique prefixes; default: all).
        #[arg(long, value_delimiter = ',')]
        nodes: Vec<String>,
    },
    /// Show the points reserved for each node and account.
    Status {
        /// The municipality.
        #[arg(long, value_parser = parse_muni)]
        municipality: MunicipalityCode,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand, Debug)]
enum FacilityCmd {
    /// Register a facility of a municipality.
    Add {
        /// Its id (a-z, 0-9, '-').
        #[arg(long, value_parser = parse_facility)]
        id: FacilityId,
        /// Its municipality.
        #[arg(long, value_parser = parse_muni)]
        municipality: MunicipalityCode,
        /// library, museum, sports-hall, community-centre, shop or stall.
        #[arg(long, value_parser = parse_kind)]
        kind: FacilityKind,
        /// Its name.
        #[arg(long)]
        name: String,
    },
    /// List facilities: id, municipality, kind, name, nodes, payee, kiosk link
    /// policy, link requests waiting.
    List {
        /// Only this municipality's.
        #[arg(long, value_parser = parse_muni)]
        municipality: Option<MunicipalityCode>,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Show a facility with its nodes.
    Show {
        /// Its id.
        #[arg(long, value_parser = parse_facility)]
        id: FacilityId,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Set how the facility takes card links holders ask for at a kiosk:
    /// `auto` links at once; `confirm` (the default) keeps each as a request
    /// that one of the facility's nodes confirms or refuses (`mykey-node
    /// link-requests`). Unlinking at a kiosk is always at once.
    KioskLink {
        /// The facility.
        #[arg(long, value_parser = parse_facility)]
        id: FacilityId,
        /// auto or confirm.
        #[arg(long, value_parser = parse_kiosk_link)]
        policy: mykey_hub::store::link_request::KioskLinkPolicy,
    },
}

#[derive(Subcommand, Debug)]
enum NodeCmd {
    /// Enrol a node key at a facility with its permissions and offline limits.
    Enrol {
        /// The node id (64 hex digits, from `mykey-node id`).
        #[arg(long, value_parser = parse_node)]
        node: NodeId,
        /// Its facility.
        #[arg(long, value_parser = parse_facility)]
        facility: FacilityId,
        /// Allowed operations, comma-separated: redeem,grant,link,unlink.
        #[arg(long, value_parser = parse_ops)]
        ops: OpList,
        /// Points one card may spend offline at this node since the last confirmation.
        #[arg(long, value_parser = parse_points)]
        card_limit: Points,
        /// All unconfirmed spend the node may accept.
        #[arg(long, value_parser = parse_points)]
        exposure_limit: Points,
        /// Spends above this need the card PIN.
        #[arg(long, value_parser = parse_points)]
        pin_threshold: Points,
        /// Points of printed vouchers the node may take offline before the
        /// hub confirms them, and the most its double-redeem incidents are
        /// paid in all (default: 10,000, or the exposure limit if lower).
        #[arg(long, value_parser = parse_points)]
        voucher_cap: Option<Points>,
        /// Days the node's certificate stays valid.
        #[arg(long, default_value_t = 365)]
        valid_days: u64,
    },
    /// Revoke a node key: its sessions and transactions are refused from now on.
    Revoke {
        /// The node id, or a unique prefix of it (4 or more hex digits).
        #[arg(long)]
        node: String,
    },
    /// List enrolled nodes: short id, facility, state, offline voucher cap, last contact, full id.
    List {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Show a node: policy, certificate validity, chain, last contact, held spends.
    Show {
        /// The node id, or a unique prefix of it (4 or more hex digits).
        #[arg(long)]
        node: String,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand, Debug)]
enum LanCmd {
    /// Issue (or replace) a LAN group's roster: its nodes admit each other as LAN peers,
    /// and no one else; `--clear` ends the group.
    Roster {
        /// The municipality whose nodes they are.
        #[arg(long, value_parser = parse_muni)]
        municipality: MunicipalityCode,
        /// The group's name (a-z, 0-9, '-'), e.g. summer-festival.
        #[arg(long, value_parser = parse_group)]
        group: LanGroup,
        /// Its nodes (comma-separated node ids or unique prefixes; at most 100): enrolled, unrevoked nodes of the municipality.
        #[arg(
            long,
            value_delimiter = ',',
            conflicts_with = "clear",
            required_unless_present = "clear"
        )]
        nodes: Vec<String>,
        /// End the group: its nodes no longer admit each other (unless another group names them both).
        #[arg(long)]
        clear: bool,
    },
    /// List the rosters in force, from the fact log.
    Rosters {
        /// Only this municipality's.
        #[arg(long, value_parser = parse_muni)]
        municipality: Option<MunicipalityCode>,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand, Debug)]
enum AccountCmd {
    /// Register a holder with a My Key ID and their card.
    Register {
        /// The holder's alias (3-32 letters and digits).
        #[arg(long, value_parser = parse_my_key_id)]
        my_key_id: MyKeyId,
        /// The holder's base municipality.
        #[arg(long, value_parser = parse_muni)]
        municipality: MunicipalityCode,
        #[command(flatten)]
        card: CardArgs,
    },
    /// Show an account with its cards and balances.
    Show {
        #[command(flatten)]
        who: Who,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// List accounts: id, My Key ID, municipality, active card, created.
    List {
        /// Only this municipality's holders.
        #[arg(long, value_parser = parse_muni)]
        municipality: Option<MunicipalityCode>,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Give an account a new My Key ID (the old one stays reserved).
    Rename {
        /// The account (A2, 2, or its current My Key ID).
        #[arg(long)]
        account: String,
        /// The new alias.
        #[arg(long, value_parser = parse_my_key_id)]
        my_key_id: MyKeyId,
    },
}

#[derive(Subcommand, Debug)]
enum CardCmd {
    /// Link a renewed or reissued card to an account (its old card becomes superseded).
    Add {
        /// The account (A2, 2 or a My Key ID).
        #[arg(long)]
        account: String,
        #[command(flatten)]
        card: CardArgs,
    },
    /// Keep the public key of a registered card's certificate (a card
    /// registered with --card only), so the hub verifies its PIN proofs.
    Certificate {
        /// The card's user-authentication certificate (DER or PEM).
        #[arg(long, value_name = "FILE")]
        cert: PathBuf,
        /// A trusted JPKI user-authentication CA certificate (repeatable; both generations).
        #[arg(long, value_name = "FILE", required = true)]
        trusted_ca: Vec<PathBuf>,
    },
    /// Suspend a lost card everywhere.
    Suspend {
        /// The card: its key or a unique prefix of its card hash (4 or more hex digits).
        #[arg(long)]
        card: String,
    },
    /// Reinstate a suspended card (a municipality action: the holder's own municipality).
    Reinstate {
        /// The card: its key or a unique prefix of its card hash (4 or more hex digits).
        #[arg(long)]
        card: String,
        /// The municipality acting (must be the holder's base municipality).
        #[arg(long, value_parser = parse_muni)]
        municipality: MunicipalityCode,
    },
}

/// A card named by its certificate (preferred: the hub keeps its public key
/// and verifies the card's PIN proofs) or by its key alone.
#[derive(Args, Debug)]
#[group(required = true, multiple = true)]
struct CardArgs {
    /// The card key, ISSUER_HEX:SERIAL_HEX (`mykey-node card read` prints it;
    /// the serial may be written as openssl prints it, e.g. `3A:0F:…`).
    /// With --cert, it must be the certificate's card.
    #[arg(long)]
    card: Option<String>,
    /// The card's user-authentication certificate (DER or PEM, from
    /// `mykey-node card read --cert-out FILE`); checked against --trusted-ca.
    #[arg(long, value_name = "FILE")]
    cert: Option<PathBuf>,
    /// A trusted JPKI user-authentication CA certificate (repeatable; needed with --cert).
    #[arg(long, value_name = "FILE")]
    trusted_ca: Vec<PathBuf>,
}

impl CardArgs {
    /// The card key, and its checked certificate when one was given.
    fn resolve(
        &self,
        now: UnixMillis,
    ) -> anyhow::Result<(mykey_sync_proto::CardKey, Option<mykey_jpki::TrustedCert>)> {
        let card = self
            .card
            .as_deref()
            .map(names::card_key_to_register)
            .transpose()?;
        match (card, &self.cert) {
            (card, Some(path)) => {
                let t = mykey_hub::quarantine::cli::load_card_cert(
                    path,
                    &self.trusted_ca,
                    card.as_ref(),
                    now,
                )?;
                Ok((t.cert().card_key().clone(), Some(t)))
            }
            (Some(card), None) => {
                if !self.trusted_ca.is_empty() {
                    bail!("--trusted-ca checks a certificate: give the card's --cert FILE too");
                }
                Ok((card, None))
            }
            (None, None) => bail!("name the card with --cert FILE (preferred) or --card KEY"),
        }
    }
}

#[derive(Subcommand, Debug)]
enum ProgramCmd {
    /// Create a programme funded by its municipality.
    Create {
        /// Its id (a-z, 0-9, '-').
        #[arg(long, value_parser = parse_program)]
        id: ProgramId,
        /// Its municipality.
        #[arg(long, value_parser = parse_muni)]
        municipality: MunicipalityCode,
        /// Initial budget in points.
        #[arg(long, value_parser = parse_points)]
        budget: Points,
    },
    /// Add to a programme's budget.
    Fund {
        /// The programme.
        #[arg(long, value_parser = parse_program)]
        id: ProgramId,
        /// Points to add.
        #[arg(long, value_parser = parse_points)]
        points: Points,
    },
    /// List programmes with remaining budget and overdraw.
    List {
        /// Print JSON (with each programme's expiry policy).
        #[arg(long)]
        json: bool,
    },
    /// Show a programme: budget, overdraw, expiry policy.
    Show {
        /// The programme.
        #[arg(long, value_parser = parse_program)]
        id: ProgramId,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand, Debug)]
enum TokenCmd {
    /// List API tokens: id, operator, scope, state, created, expires.
    List {
        /// Only this operator's.
        #[arg(long)]
        name: Option<String>,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Show one API token by its id (or a unique prefix of it).
    Show {
        /// The token's id, as `token list` prints it.
        #[arg(long)]
        token: String,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand, Debug)]
enum IncidentCmd {
    /// List the latest incidents with their numbers, oldest first.
    List {
        /// How many.
        #[arg(long, default_value_t = 50)]
        limit: u32,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Show one incident by its number.
    Show {
        /// Its number, as `incident list` prints it.
        #[arg(long)]
        id: u64,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand, Debug)]
enum PeriodCmd {
    /// List closed settlement periods: number, days, when closed, statement lines.
    List {
        /// Only this municipality's.
        #[arg(long, value_parser = parse_muni)]
        municipality: Option<MunicipalityCode>,
        /// Print JSON (with each period's statements).
        #[arg(long)]
        json: bool,
    },
    /// Show a closed period with its statements.
    Show {
        /// CODE:N (the period number `period list` prints) or CODE:YYYY-MM-DD (its first day).
        #[arg(long, value_name = "PERIOD")]
        period: String,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand, Debug)]
enum ShardsCmd {
    /// Start a new epoch of every shard: fresh base documents holding the
    /// latest item per key (nodes switch once they hold them).
    Compact,
}

#[derive(Subcommand, Debug)]
enum LedgerCmd {
    /// Recompute every total and check conservation per municipality.
    Check {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
}

/// Names a holder by account id or by My Key ID.
#[derive(Args, Debug)]
#[group(required = true, multiple = false)]
struct Who {
    /// The account: A12, 12, or its My Key ID.
    #[arg(long)]
    account: Option<String>,
    /// The holder's My Key ID (current or former).
    #[arg(long, value_parser = parse_my_key_id)]
    my_key_id: Option<MyKeyId>,
}

#[derive(Clone, Debug)]
struct OpList(Vec<OpKind>);

fn parse_scope(s: &str) -> Result<mykey_hub::access::Scope, String> {
    mykey_hub::access::Scope::parse(s).map_err(|e| e.to_string())
}
fn parse_muni(s: &str) -> Result<MunicipalityCode, String> {
    MunicipalityCode::parse(s).map_err(|e| e.to_string())
}
fn parse_group(s: &str) -> Result<LanGroup, String> {
    LanGroup::parse(s).map_err(|e| e.to_string())
}
fn parse_facility(s: &str) -> Result<FacilityId, String> {
    FacilityId::parse(s).map_err(|e| e.to_string())
}
fn parse_program(s: &str) -> Result<ProgramId, String> {
    ProgramId::parse(s).map_err(|e| e.to_string())
}
fn parse_points(s: &str) -> Result<Points, String> {
    Points::parse(s).map_err(|e| e.to_string())
}
fn parse_node(s: &str) -> Result<NodeId, String> {
    NodeId::parse(s.trim()).map_err(|e| format!("{e} (copy it from `mykey-node id`)"))
}
fn parse_my_key_id(s: &str) -> Result<MyKeyId, String> {
    MyKeyId::parse(s).map_err(|e| e.to_string())
}
fn parse_kiosk_link(s: &str) -> Result<mykey_hub::store::link_request::KioskLinkPolicy, String> {
    mykey_hub::store::link_request::KioskLinkPolicy::parse(s)
        .ok_or_else(|| format!("unknown kiosk link policy {s:?}; use auto or confirm"))
}
fn parse_kind(s: &str) -> Result<FacilityKind, String> {
    FacilityKind::parse(s).ok_or_else(|| {
        let names: Vec<_> = FacilityKind::ALL.iter().map(|k| k.name()).collect();
        format!(
            "unknown facility kind {s:?}; use one of {}",
            names.join(", ")
        )
    })
}
fn parse_ops(s: &str) -> Result<OpList, String> {
    let mut ops = vec![];
    for name in s.split(',').map(str::trim).filter(|n| !n.is_empty()) {
        let op = OpKind::parse(name).ok_or_else(|| {
            format!("unknown operation {name:?}; use a comma-separated list of redeem, grant, link, unlink")
        })?;
        if !ops.contains(&op) {
            ops.push(op);
        }
    }
    if ops.is_empty() {
        return Err("give at least one operation: redeem, grant, link or unlink".into());
    }
    Ok(OpList(ops))
}

fn now() -> UnixMillis {
    mykey_net::unix_now()
}

/// `YYYY-MM-DD HH:MM` in JST.
fn fmt_jst(t: UnixMillis) -> String {
    let d = mykey_hub::economy::calendar::jst_date_time(t);
    format!(
        "{:04}-{:02}-{:02} {:02}:{:02}",
        d.year, d.month, d.day, d.hour, d.minute
    )
}

fn open(cli: &Cli) -> anyhow::Result<Hub> {
    Ok(Hub::open(&cli.data)?)
}

/// Holds the serve lock while `mykey-hub serve` runs: `serve.lock` in the
/// data directory (`<name>.serve.lock` beside a `.db` file given directly),
/// so a second `serve` on the same hub stops with the first one's pid
/// instead of listening beside it.
fn serve_lock(data: &std::path::Path) -> anyhow::Result<mykey_net::dirlock::DirLock> {
    Ok(mykey_hub::hub_serve_lock(data)?)
}

fn resolve(hub: &mut Hub, who: &Who) -> anyhow::Result<AccountId> {
    match (&who.account, &who.my_key_id) {
        (Some(a), _) => Ok(names::account(hub, a)?),
        (None, Some(m)) => Ok(hub.resolve_my_key_id(m)?),
        (None, None) => bail!("name the holder with --account or --my-key-id"),
    }
}

fn run(cli: Cli) -> anyhow::Result<()> {
    let t = now();
    match &cli.command {
        Command::Init { database } => {
            let url = database
                .as_deref()
                .map(mykey_hub::store::postgres::DatabaseUrl::parse)
                .transpose()?;
            let hub = Hub::init_with(&cli.data, url.as_ref())?;
            match &url {
                Some(url) => println!("initialised hub at {} on {url}", cli.data.display()),
                None => println!("initialised hub at {}", cli.data.display()),
            }
            println!("hub id: {}", hub.hub_id());
            println!("give this hub id to every node (it verifies the hub's facts with it)");
        }
        Command::Id => println!("{}", open(&cli)?.hub_id()),
        Command::Doctor { json, http } => {
            // This hub's own serve holds its addresses: not a conflict.
            let serving = match serve_lock(&cli.data) {
                Ok(_free) => None,
                Err(e) => match e.downcast_ref::<mykey_net::dirlock::LockError>() {
                    Some(mykey_net::dirlock::LockError::Held { pid, .. }) => Some(format!(
                        "mykey-hub serve (pid {})",
                        pid.map_or_else(|| "?".to_owned(), |p| p.to_string())
                    )),
                    _ => None,
                },
            };
            let checks = mykey_hub::doctor::run(&cli.data, http, serving.as_deref());
            if *json {
                println!("{}", mykey_net::doctor::json(&checks));
            } else {
                print!("{}", mykey_net::doctor::text(&checks));
            }
            if mykey_net::doctor::any_failed(&checks) {
                bail!("doctor found a failure (the `fail` lines above say what to do)");
            }
        }
        Command::Serve {
            listen,
            http,
            silent_after,
            max_clock_skew,
            max_live_streams,
            trusted_ca,
            kiosk_link,
            doors,
        } => {
            let trusted_ca = mykey_hub::quarantine::cli::load_trusted_cas(trusted_ca)?;
            let kiosk_links = kiosk_link
                .iter()
                .map(|f| mykey_sync_proto::FacilityId::parse(f))
                .collect::<Result<Vec<_>, _>>()
                .context("--kiosk-link")?;
            let mut thresholds = mykey_hub::status::assess::Thresholds::default();
            for s in silent_after {
                thresholds
                    .set_silent_after_text(s)
                    .map_err(|e| anyhow::anyhow!("--silent-after {e}"))?;
            }
            thresholds.max_clock_skew_ms =
                mykey_hub::status::assess::parse_duration_ms(max_clock_skew)
                    .map_err(|e| anyhow::anyhow!("--max-clock-skew {e}"))?;
            let mut hub = open(&cli)?;
            let _lock = serve_lock(&cli.data)?;
            if hub.n_operators()? == 0 {
                eprintln!(
                    "no dashboard operator yet: add one with `mykey-hub operator add --name NAME`"
                );
            }
            drop(hub);
            let window_ms = mykey_hub::status::assess::parse_duration_ms(&doors.exchange_window)
                .map_err(|e| anyhow::anyhow!("--exchange-window {e}"))?;
            let tls = match (&doors.tls_cert, &doors.tls_key) {
                (Some(cert), Some(key)) => Some(mykey_hub::http::server::TlsFiles {
                    cert: cert.clone(),
                    key: key.clone(),
                }),
                _ => None,
            };
            let dashboard = mykey_hub::http::DashboardOptions {
                http: http.clone(),
                thresholds,
                tls,
                insecure_http: doors.insecure_http,
                app: mykey_hub::http::AppConfig {
                    exchange: mykey_hub::economy::exchange::ExchangePolicy { window_ms },
                    max_live_streams: *max_live_streams,
                    ..Default::default()
                },
                ..Default::default()
            };
            mykey_hub::net::serve::serve_blocking(
                &cli.data,
                listen,
                dashboard,
                trusted_ca,
                kiosk_links,
            )?
        }
        Command::Operator(OperatorCmd::Add {
            name,
            role,
            municipality,
            password_stdin,
        }) => {
            let mut hub = open(&cli)?;
            let role = match (role, hub.operator_role(name)?) {
                (Some(r), _) => mykey_hub::access::Role::parse(r, *municipality)?,
                (None, Some(current)) if municipality.is_none() => current,
                (None, _) => bail!(
                    "give --role viewer, --role staff --municipality CODE or --role admin; nothing was changed"
                ),
            };
            let password = if *password_stdin {
                let mut line = String::new();
                std::io::stdin()
                    .read_line(&mut line)
                    .context("reading the password from stdin")?;
                line.trim_end_matches(['\r', '\n']).to_owned()
            } else {
                // A piped password would be ignored for the terminal, or fail
                // as "os error 6" with no terminal at all.
                let tty = "the password is read from the terminal, and stdin is not one: \
                           to pipe it, add --password-stdin; nothing was changed";
                if !std::io::IsTerminal::is_terminal(&std::io::stdin()) {
                    bail!(tty);
                }
                let p = rpassword::prompt_password("password: ").context(tty)?;
                if rpassword::prompt_password("again: ").context(tty)? != p {
                    bail!("the passwords differ; nothing was changed");
                }
                p
            };
            hub.set_operator(name, &password, role, t)?;
            println!("operator {name} ({role}) can log in to the dashboard");
        }
        Command::Operator(OperatorCmd::Token {
            name,
            scope,
            expires,
        }) => {
            let expires_at = if expires == "never" {
                None
            } else {
                let ms = mykey_hub::status::assess::parse_duration_ms(expires)
                    .map_err(|e| anyhow::anyhow!("--expires {e}, or never"))?;
                Some(t.plus_ms(ms))
            };
            let made = open(&cli)?.new_api_token(name, *scope, expires_at, t)?;
            println!("{}", made.token);
            let until = expires_at.map_or("never expires".to_owned(), |e| {
                format!("expires {} JST", fmt_jst(e))
            });
            eprintln!(
                "token {} of {name}: scope {scope}, {until}; keep it secret: it is shown only once",
                made.info.id
            );
        }
        Command::Operator(OperatorCmd::Tokens { name, json: true })
        | Command::Token(TokenCmd::List { name, json: true }) => {
            let records = lists::tokens(&mut open(&cli)?, name.as_deref(), t)?;
            output::print_list(true, &records, "");
        }
        Command::Operator(OperatorCmd::Tokens { name, json: false }) => {
            let tokens = open(&cli)?.api_tokens(name.as_deref())?;
            if tokens.is_empty() {
                println!("no API tokens; make one with `mykey-hub operator token`");
            }
            println!(
                "{:<12}  {:<16} {:<6} {:<8} {:<17} {:<17}",
                "id", "operator", "scope", "state", "created (JST)", "expires (JST)"
            );
            for tk in tokens {
                println!(
                    "{:<12}  {:<16} {:<6} {:<8} {:<17} {:<17}",
                    tk.id,
                    tk.operator,
                    tk.scope.name(),
                    tk.state(t),
                    fmt_jst(tk.created_at),
                    tk.expires_at.map_or("never".to_owned(), fmt_jst)
                );
            }
        }
        Command::Token(TokenCmd::List { name, json: false }) => {
            let records = lists::tokens(&mut open(&cli)?, name.as_deref(), t)?;
            output::print_list(
                false,
                &records,
                "no API tokens; make one with `mykey-hub operator token`",
            );
        }
        Command::Token(TokenCmd::Show { token, json }) => {
            output::print_one(*json, &lists::token(&mut open(&cli)?, token, t)?);
        }
        Command::Operator(OperatorCmd::List { json }) => {
            let records = lists::operators(&mut open(&cli)?, t)?;
            output::print_list(
                *json,
                &records,
                "no operators; add one with `mykey-hub operator add --name NAME --role admin`",
            );
        }
        Command::Operator(OperatorCmd::Show { name, json }) => {
            output::print_one(*json, &lists::operator(&mut open(&cli)?, name, t)?);
        }
        Command::Operator(OperatorCmd::Revoke { token }) => {
            if !open(&cli)?.revoke_api_token(token, t)? {
                bail!(
                    "no unrevoked token has id {token:?}; `mykey-hub operator tokens` lists them"
                );
            }
            println!("token {token} revoked: it stops working at once");
        }
        Command::Operator(OperatorCmd::Remove { name }) => {
            if !open(&cli)?.remove_operator(name)? {
                bail!("no operator named {name:?}; nothing was changed");
            }
            println!("operator {name} removed with their tokens; their sessions end at once");
        }
        Command::Municipality(MunicipalityCmd::Add { code, name }) => {
            open(&cli)?.add_municipality(*code, name, t)?;
            println!("added municipality {code} {name}");
        }
        Command::Municipality(MunicipalityCmd::List { json }) => {
            let records = lists::municipalities(&mut open(&cli)?)?;
            output::print_list(
                *json,
                &records,
                "no municipalities; add one with `mykey-hub municipality add --code CODE --name NAME`",
            );
        }
        Command::Municipality(MunicipalityCmd::Show { code, json }) => {
            output::print_one(*json, &lists::municipality(&mut open(&cli)?, *code, t)?);
        }
        Command::Municipality(MunicipalityCmd::Strict {
            code, on, force, ..
        }) => {
            open(&cli)?.switch_strict_mode(*code, *on, *force, t)?;
            let word = if *on { "on" } else { "off" };
            println!("strict mode {word} for {code}");
        }
        Command::Escrow(EscrowCmd::Grant {
            municipality,
            nodes,
            accounts,
            all,
        }) => {
            let mut hub = open(&cli)?;
            let nodes = names::nodes(&mut hub, nodes)?;
            let accounts = names::accounts(&mut hub, accounts)?;
            let only = (!*all).then_some(accounts.as_slice());
            let s = hub.escrow_grant(*municipality, &nodes, only, t)?;
            println!(
                "granted {} rights over {} accounts: {} pt reserved among {} nodes",
                s.rights,
                s.accounts,
                s.points,
                nodes.len()
            );
        }
        Command::Escrow(EscrowCmd::Release {
            municipality,
            nodes,
        }) => {
            let mut hub = open(&cli)?;
            let nodes = names::nodes(&mut hub, nodes)?;
            let only = (!nodes.is_empty()).then_some(nodes.as_slice());
            let s = hub.escrow_release(*municipality, only, t)?;
            println!(
                "released {} rights: {} pt back to {} wallets",
                s.rights, s.points, s.accounts
            );
        }
        Command::Escrow(EscrowCmd::Status {
            municipality,
            json: true,
        }) => {
            output::print_one(true, &lists::escrow(&mut open(&cli)?, *municipality)?);
        }
        Command::Escrow(EscrowCmd::Status {
            municipality,
            json: false,
        }) => {
            let mut hub = open(&cli)?;
            let strict = hub.strict_mode(*municipality)?;
            println!(
                "{municipality}: strict mode {}",
                if strict { "on" } else { "off" }
            );
            for l in hub.escrow_status(*municipality)? {
                println!(
                    "  account {}  node {}  {} reserved",
                    l.account,
                    l.node.short(),
                    l.points
                );
            }
        }
        Command::Facility(FacilityCmd::Add {
            id,
            municipality,
            kind,
            name,
        }) => {
            open(&cli)?.add_facility(&facility(id.clone(), *municipality, *kind, name), t)?;
            println!("added {kind} {id} ({name}) in {municipality}");
        }
        Command::Facility(FacilityCmd::List { municipality, json }) => {
            let records = lists::facilities(&mut open(&cli)?, *municipality, t)?;
            output::print_list(
                *json,
                &records,
                "no facilities; add one with `mykey-hub facility add`",
            );
        }
        Command::Facility(FacilityCmd::Show { id, json }) => {
            output::print_one(*json, &lists::facility(&mut open(&cli)?, id, t)?);
        }
        Command::Facility(FacilityCmd::KioskLink { id, policy }) => {
            open(&cli)?.set_kiosk_link_policy(id, *policy, t)?;
            match policy {
                mykey_hub::store::link_request::KioskLinkPolicy::Auto => {
                    println!("{id}: card links asked at a kiosk are made at once")
                }
                mykey_hub::store::link_request::KioskLinkPolicy::Confirm => println!(
                    "{id}: card links asked at a kiosk wait for one of its nodes to confirm them (`mykey-node link-requests list`)"
                ),
            }
        }
        Command::Node(NodeCmd::List { json }) | Command::Nodes { json: json @ true } => {
            let records = lists::nodes(&mut open(&cli)?, t)?;
            output::print_list(
                *json,
                &records,
                "no nodes enrolled; enrol one with `mykey-hub node enrol`",
            );
        }
        Command::Node(NodeCmd::Show { node, json }) => {
            output::print_one(*json, &lists::node(&mut open(&cli)?, node, t)?);
        }
        Command::Node(NodeCmd::Enrol {
            node,
            facility,
            ops,
            card_limit,
            exposure_limit,
            pin_threshold,
            voucher_cap,
            valid_days,
        }) => {
            let mut hub = open(&cli)?;
            let valid_until = t.plus_ms(valid_days.saturating_mul(86_400_000));
            let voucher_cap = voucher_cap
                .unwrap_or_else(|| mykey_hub::model::default_voucher_cap(*exposure_limit));
            hub.enrol_node(
                *node,
                facility,
                NodePolicy {
                    allowed_ops: ops.0.clone(),
                    per_card_offline_limit: *card_limit,
                    node_exposure_limit: *exposure_limit,
                    pin_threshold: *pin_threshold,
                    valid_until,
                    offline_voucher_cap: voucher_cap,
                },
                t,
            )?;
            let names: Vec<_> = ops.0.iter().map(|o| o.name()).collect();
            println!(
                "enrolled node {} at {facility}: {}; card limit {card_limit}, exposure limit {exposure_limit}, PIN above {pin_threshold}, offline voucher cap {voucher_cap}; valid {valid_days} days",
                node.short(),
                names.join(",")
            );
            println!(
                "the node receives its certificate with its next sync; configure it with hub id {}",
                hub.hub_id()
            );
        }
        Command::Node(NodeCmd::Revoke { node }) => {
            let mut hub = open(&cli)?;
            let node = names::node(&mut hub, node)?;
            hub.revoke_node(node, t)?;
            println!(
                "revoked node {}; every node learns it with priority",
                node.short()
            );
        }
        Command::Lan(LanCmd::Roster {
            municipality,
            group,
            nodes,
            clear,
        }) => {
            let mut hub = open(&cli)?;
            if *clear {
                let seq = hub.clear_lan_roster(*municipality, group, t)?;
                println!(
                    "ended LAN group {group} of {municipality} (fact #{seq}); its nodes stop admitting each other as they learn it"
                );
            } else {
                let nodes = names::nodes(&mut hub, nodes)?;
                let line = hub.set_lan_roster(*municipality, group, &nodes, t)?;
                println!(
                    "LAN roster {group} of {municipality}: {} nodes (fact #{}); they admit each other as LAN peers once they learn it",
                    line.members.len(),
                    line.hub_seq
                );
                for n in &line.members {
                    println!("  {n}");
                }
            }
        }
        Command::Lan(LanCmd::Rosters {
            municipality,
            json: true,
        }) => {
            output::print_list(
                true,
                &lists::lan_rosters(&mut open(&cli)?, *municipality)?,
                "",
            );
        }
        Command::Lan(LanCmd::Rosters {
            municipality,
            json: false,
        }) => {
            let lines = open(&cli)?.lan_rosters(*municipality)?;
            if lines.is_empty() {
                println!(
                    "no LAN rosters: nodes admit no LAN peers; issue one with `mykey-hub lan roster`"
                );
            }
            for l in lines {
                println!(
                    "{} {}: {} nodes (fact #{}, issued {})",
                    l.municipality,
                    l.group,
                    l.members.len(),
                    l.hub_seq,
                    mykey_hub::economy::calendar::iso_jst(l.issued_at)
                );
                for n in &l.members {
                    println!("  {n}");
                }
            }
        }
        Command::Nodes { json: false } => {
            let mut hub = open(&cli)?;
            let nodes = hub.node_statuses()?;
            let quarantine = hub.quarantine_summary()?;
            if nodes.is_empty() {
                println!("no nodes enrolled; enrol one with `mykey-hub node enrol`");
            }
            println!(
                "{:<10} {:<16} {:<7} {:<9} {:>9} {:>11} {:>8} {:>9} {:>22} {:>10}  software",
                "node",
                "facility",
                "muni",
                "state",
                "processed",
                "unconfirmed",
                "rejected",
                "incidents",
                "quarantine_held",
                "skew_ms"
            );
            for n in nodes {
                let state = if n.node.is_revoked() {
                    "revoked"
                } else if n.node.policy.valid_until <= t {
                    "expired"
                } else {
                    "active"
                };
                let (contact, skew, software) = match &n.last_contact {
                    Some(c) => (
                        format!("{} s ago", t.since(c.at) / 1000),
                        c.clock_skew_ms.to_string(),
                        c.software.clone(),
                    ),
                    None => ("never".to_owned(), "-".to_owned(), "-".to_owned()),
                };
                // Spends held beyond the node's bounds: `quarantine list --node`.
                let held = quarantine.held_by_node(&n.node.id);
                let held = if held.items == 0 {
                    "-".to_owned()
                } else {
                    format!("{} ({} pt)", held.items, held.points)
                };
                println!(
                    "{:<10} {:<16} {:<7} {:<9} {:>9} {:>11} {:>8} {:>9} {:>22} {:>10}  {software} (last contact {contact})",
                    n.node.id.short(),
                    n.node.facility.as_str(),
                    n.node.municipality.to_string(),
                    state,
                    n.chain.processed_seq,
                    n.n_unconfirmed(),
                    n.n_rejected,
                    n.n_incidents,
                    held,
                    skew,
                );
            }
        }
        Command::Account(AccountCmd::Register {
            my_key_id,
            municipality,
            card,
        }) => {
            let (key, cert) = card.resolve(t)?;
            let mut hub = open(&cli)?;
            let id = match &cert {
                Some(c) => hub.register_account_with_certificate(my_key_id, *municipality, c, t)?,
                None => hub.register_account(my_key_id, *municipality, &key, t)?,
            };
            println!(
                "registered account {id} with My Key ID {my_key_id} and card {}",
                key.short()
            );
            if cert.is_none() {
                eprintln!(
                    "note: no certificate given, so the hub cannot verify this card's PIN proofs and pays no spend above a node's PIN threshold; keep it with `mykey-hub card certificate --cert FILE --trusted-ca FILE`"
                );
            }
        }
        Command::Account(AccountCmd::Show { who, json: true }) => {
            let mut hub = open(&cli)?;
            let id = resolve(&mut hub, who)?;
            output::print_one(true, &lists::account(&mut hub, id)?);
        }
        Command::Account(AccountCmd::List { municipality, json }) => {
            let records = lists::accounts(&mut open(&cli)?, *municipality)?;
            output::print_list(
                *json,
                &records,
                "no accounts; register a holder with `mykey-hub account register`",
            );
        }
        Command::Account(AccountCmd::Show { who, json: false }) => {
            let mut hub = open(&cli)?;
            let id = resolve(&mut hub, who)?;
            let a = hub.account(id)?;
            println!(
                "account {id}: My Key ID {}, base municipality {}",
                a.my_key_id, a.municipality
            );
            for c in hub.cards_of(id)? {
                println!("  card {} {}", c.card.short(), c.status.name());
            }
            print_balances(&mut hub, id)?;
        }
        Command::Account(AccountCmd::Rename { account, my_key_id }) => {
            let mut hub = open(&cli)?;
            let account = names::account(&mut hub, account)?;
            hub.change_my_key_id(account, my_key_id, t)?;
            println!(
                "account {account} is now {my_key_id}; the old My Key ID stays reserved to it"
            );
        }
        Command::Card(CardCmd::Add { account, card }) => {
            let (key, cert) = card.resolve(t)?;
            let mut hub = open(&cli)?;
            let account = names::account(&mut hub, account)?;
            match &cert {
                Some(c) => hub.add_card_with_certificate(account, c, t)?,
                None => hub.add_card(account, &key, t)?,
            }
            println!(
                "card {} linked to account {account}; its previous card is superseded",
                key.short()
            );
        }
        Command::Card(CardCmd::Certificate { cert, trusted_ca }) => {
            let c = mykey_hub::quarantine::cli::load_trusted_cert(cert, trusted_ca, t)?;
            let account = open(&cli)?.set_card_certificate(&c, t)?;
            println!(
                "kept the certificate key of card {} (account {account}): its PIN proofs now count",
                c.cert().card_key().short()
            );
        }
        Command::Card(CardCmd::Suspend { card }) => {
            let mut hub = open(&cli)?;
            let card = names::card(&mut hub, card)?.card;
            hub.suspend_card(&card, t)?;
            println!(
                "card {} suspended; nodes learn it first with their next sync",
                card.short()
            );
        }
        Command::Card(CardCmd::Reinstate { card, municipality }) => {
            let mut hub = open(&cli)?;
            let card = names::card(&mut hub, card)?.card;
            hub.reinstate_card_by(*municipality, &card, t)?;
            println!("card {} reinstated", card.short());
        }
        Command::Program(ProgramCmd::Create {
            id,
            municipality,
            budget,
        }) => {
            open(&cli)?.create_program(id, *municipality, *budget, t)?;
            println!("created programme {id} of {municipality} with budget {budget}");
        }
        Command::Program(ProgramCmd::Fund { id, points }) => {
            open(&cli)?.fund_program(id, *points, t)?;
            println!("added {points} to programme {id}");
        }
        Command::Program(ProgramCmd::List { json: true }) => {
            output::print_list(true, &lists::programmes(&mut open(&cli)?)?, "");
        }
        Command::Program(ProgramCmd::Show { id, json }) => {
            output::print_one(*json, &lists::programme(&mut open(&cli)?, id)?);
        }
        Command::Program(ProgramCmd::List { json: false }) => {
            for p in open(&cli)?.programs()? {
                println!(
                    "{:<20} {}  budget {:>14}  overdrawn {:>10}",
                    p.program.id.as_str(),
                    p.program.municipality,
                    p.budget.to_string(),
                    p.overdrawn.to_string()
                );
            }
        }
        Command::Grant {
            who,
            program,
            points,
        } => {
            let mut hub = open(&cli)?;
            let id = resolve(&mut hub, who)?;
            let b = hub.admin_grant(id, program, *points, t)?;
            println!(
                "granted {points} from {program} to {id}: balance {}, debt {}",
                b.balance, b.debt
            );
        }
        Command::Balance { who, json: true } => {
            let mut hub = open(&cli)?;
            let id = resolve(&mut hub, who)?;
            output::print_list(true, &lists::balances(&mut hub, id)?, "");
        }
        Command::Balance { who, json: false } => {
            let mut hub = open(&cli)?;
            let id = resolve(&mut hub, who)?;
            print_balances(&mut hub, id)?;
        }
        Command::Debts { json: true } => {
            output::print_list(true, &lists::debts(&mut open(&cli)?)?, "");
        }
        Command::Debts { json: false } => {
            let debts = open(&cli)?.debts()?;
            if debts.is_empty() {
                println!("no outstanding debt");
            }
            for d in debts {
                println!(
                    "{:<8} {}  debt {}",
                    d.account.to_string(),
                    d.municipality,
                    d.debt
                );
            }
        }
        Command::Shards(ShardsCmd::Compact) => {
            let n = open(&cli)?
                .compact_shards(t)
                .context("could not start a new shard epoch")?;
            println!("started a new shard epoch for {n} scopes");
        }
        Command::Ledger(LedgerCmd::Check { json: true }) => {
            let report = open(&cli)?
                .check_conservation()
                .context("the ledger check failed")?;
            output::print_one(true, &lists::conservation(&report));
        }
        Command::Ledger(LedgerCmd::Check { json: false }) => {
            let report = open(&cli)?
                .check_conservation()
                .context("the ledger check failed")?;
            println!(
                "ledger balanced: {} transfers, {} pt debited = credited",
                report.n_transfers, report.total
            );
            for m in report.municipalities {
                let code = m.municipality.map(|c| c.to_string()).unwrap_or_default();
                println!(
                    "  {code}: credited {} − redeemed {} − expired {} = wallets {} − debts {}",
                    m.credited, m.redeemed, m.expired, m.wallets, m.debts
                );
            }
        }
        Command::Economy(cmd) => mykey_hub::economy::cli::run(&cli.data, cmd, t)?,
        Command::Store(cmd) => mykey_hub::store_copy::run(cmd)?,
        Command::Bounds(cmd) => mykey_hub::quarantine::cli::run(&cli.data, cmd, t)?,
        Command::Voucher(cmd) => mykey_hub::voucher::cli::run(&cli.data, cmd, t)?,
        Command::Donation(cmd) => mykey_hub::donation::cli::run(&cli.data, cmd, t)?,
        Command::Incidents { limit, json: true } => {
            output::print_list(true, &lists::incidents(&mut open(&cli)?, *limit)?, "");
        }
        Command::Incident(IncidentCmd::List { limit, json }) => {
            let records = lists::incidents(&mut open(&cli)?, *limit)?;
            output::print_list(*json, &records, "no incidents");
        }
        Command::Incident(IncidentCmd::Show { id, json }) => {
            output::print_one(*json, &lists::incident(&mut open(&cli)?, *id)?);
        }
        Command::Incidents { limit, json: false } => {
            let incidents = open(&cli)?.incidents(*limit)?;
            if incidents.is_empty() {
                println!("no incidents");
            }
            for i in incidents {
                let node = i.node.map(|n| n.short()).unwrap_or_else(|| "-".into());
                let seq = i.seq.map(|s| s.to_string()).unwrap_or_else(|| "-".into());
                println!(
                    "{} {:<24} node {node} seq {seq}: {}",
                    mykey_hub::economy::calendar::iso_jst(i.at),
                    i.kind.name(),
                    i.detail
                );
            }
        }
        Command::Period(PeriodCmd::List { municipality, json }) => {
            let records = lists::periods(&mut open(&cli)?, *municipality)?;
            output::print_list(
                *json,
                &records,
                "no closed settlement periods; `mykey-hub settle` closes ended ones",
            );
        }
        Command::Period(PeriodCmd::Show { period, json }) => {
            let (m, which) = period.split_once(':').ok_or_else(|| {
                anyhow::anyhow!(
                    "--period {period:?}: give CODE:N (e.g. 131059:3) or CODE:YYYY-MM-DD (the period's first day)"
                )
            })?;
            let m = parse_muni(m).map_err(|e| anyhow::anyhow!("--period: {e}"))?;
            output::print_one(*json, &lists::period(&mut open(&cli)?, m, which)?);
        }
    }
    Ok(())
}

fn print_balances(hub: &mut Hub, id: AccountId) -> anyhow::Result<()> {
    let balances = hub.balances(id)?;
    if balances.is_empty() {
        println!("  no points yet");
    }
    for (m, b) in balances {
        let (reserved, nodes) = hub.reserved(id, m)?;
        let reserved = if reserved.is_zero() {
            String::new()
        } else {
            format!(", reserved {reserved} (strict-mode rights of {nodes} nodes)")
        };
        println!("  {m}: balance {}{reserved}, debt {}", b.balance, b.debt);
    }
    Ok(())
}

fn main() -> ExitCode {
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
    let cli = Cli::parse();
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("mykey-hub: {}", mykey_net::report::error_line(e.as_ref()));
            ExitCode::FAILURE
        }
    }
}
