//! `mykey-hub quarantine …` and the card-certificate helpers of `account
//! register` / `card add` / `card certificate`. `main.rs` flattens
//! [`BoundsCmd`] into its commands and calls [`run`].

use crate::store::bounds::{QuarantineFilter, QuarantineRow, QuarantineState};
use crate::{Hub, OpenError, StoreError};
use clap::Subcommand;
use mykey_jpki::{CardCert, ChainError, TrustedCert};
use mykey_sync_proto::{FacilityId, MunicipalityCode, UnixMillis};
use std::path::{Path, PathBuf};

/// Quarantine subcommands.
#[derive(Subcommand, Debug)]
pub enum BoundsCmd {
    /// Spends held beyond nodes' enrolled bounds: list, release (pay) or reject.
    #[command(subcommand)]
    Quarantine(QuarantineCmd),
}

/// `mykey-hub quarantine …`.
#[derive(Subcommand, Debug)]
pub enum QuarantineCmd {
    /// List quarantined spends (held ones by default).
    List {
        /// Only this municipality's.
        #[arg(long, value_parser = parse_muni)]
        municipality: Option<MunicipalityCode>,
        /// Only this facility's.
        #[arg(long, value_parser = parse_facility)]
        facility: Option<FacilityId>,
        /// Only this node's (its id or a unique prefix, as `mykey-hub nodes` prints it).
        #[arg(long)]
        node: Option<String>,
        /// held, released, rejected or all.
        #[arg(long, default_value = "held", value_parser = parse_state)]
        state: StateFilter,
        /// One JSON object per line.
        #[arg(long)]
        json: bool,
    },
    /// Pay a held spend: it is posted as a redeem now (the holder's wallet,
    /// then debt) and paid in the open settlement period.
    Release {
        /// The item's number (from `quarantine list`).
        #[arg(long)]
        id: u64,
        /// Who decides (recorded and logged).
        #[arg(long)]
        by: String,
        /// Why (recorded and logged).
        #[arg(long)]
        why: String,
    },
    /// Refuse a held spend for good: it is never paid.
    Reject {
        /// The item's number (from `quarantine list`).
        #[arg(long)]
        id: u64,
        /// Who decides (recorded and logged).
        #[arg(long)]
        by: String,
        /// Why (recorded and logged).
        #[arg(long)]
        why: String,
    },
}

/// Which states `quarantine list` shows.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StateFilter(Option<QuarantineState>);

fn parse_state(s: &str) -> Result<StateFilter, String> {
    if s == "all" {
        return Ok(StateFilter(None));
    }
    QuarantineState::parse(s)
        .map(|st| StateFilter(Some(st)))
        .ok_or_else(|| format!("unknown state {s:?}: use held, released, rejected or all"))
}
fn parse_muni(s: &str) -> Result<MunicipalityCode, String> {
    MunicipalityCode::parse(s).map_err(|e| e.to_string())
}
fn parse_facility(s: &str) -> Result<FacilityId, String> {
    FacilityId::parse(s).map_err(|e| e.to_string())
}

/// Why a quarantine command failed.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    /// The hub did not open.
    #[error(transparent)]
    Open(#[from] OpenError),
    /// Storage failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The decision was refused.
    #[error(transparent)]
    Decide(#[from] super::DecideError),
    /// A name did not name one thing.
    #[error(transparent)]
    Name(#[from] crate::cli::names::NameError),
}

/// Runs a quarantine subcommand on the hub at `data`.
pub fn run(data: &Path, cmd: &BoundsCmd, now: UnixMillis) -> Result<(), CliError> {
    let BoundsCmd::Quarantine(cmd) = cmd;
    let mut hub = Hub::open(data)?;
    match cmd {
        QuarantineCmd::List {
            municipality,
            facility,
            node,
            state,
            json,
        } => {
            let node = node
                .as_deref()
                .map(|n| crate::cli::names::node(&mut hub, n))
                .transpose()?;
            let items = hub.quarantined(&QuarantineFilter {
                municipality: *municipality,
                facility: facility.clone(),
                node,
                state: state.0.clone(),
            })?;
            if items.is_empty() && !json {
                println!("no quarantined spends match");
            }
            for q in &items {
                if *json {
                    println!("{}", item_json_jst(q));
                } else {
                    println!("{}", item_line(q));
                }
            }
        }
        QuarantineCmd::Release { id, by, why } => {
            let q = hub.release_quarantined(*id, by, why, now)?;
            println!(
                "released #{id}: {} paid to {} in the open settlement period (decided by {by})",
                q.points, q.facility
            );
        }
        QuarantineCmd::Reject { id, by, why } => {
            let q = hub.reject_quarantined(*id, by, why, now)?;
            println!(
                "rejected #{id}: {} at {} will never be paid (decided by {by})",
                q.points, q.facility
            );
        }
    }
    Ok(())
}

/// One line of `quarantine list`.
pub fn item_line(q: &QuarantineRow) -> String {
    let decided = match (&q.decided_by, &q.why) {
        (Some(by), Some(why)) => format!(" by {by}: {why}"),
        _ => String::new(),
    };
    format!(
        "#{:<5} {:<8} {:>12}  {} {}  node {} seq {}  account {}  card {}  {}{}",
        q.id,
        q.state.name(),
        q.points.to_string(),
        q.municipality,
        q.facility,
        q.node.short(),
        q.seq,
        q.account,
        q.card.short(),
        q.detail,
        decided
    )
}

/// One quarantined spend as JSON (the CLI's `--json` and the API share it).
pub fn item_json(q: &QuarantineRow) -> serde_json::Value {
    serde_json::json!({
        "id": q.id,
        "state": q.state.name(),
        "points": q.points.get(),
        "municipality": q.municipality.to_string(),
        "facility": q.facility.as_str(),
        "node": q.node.to_string(),
        "seq": q.seq,
        "tx": q.tx.to_string(),
        "account": q.account.get(),
        "card": q.card.short(),
        "rule": q.rule,
        "detail": q.detail,
        "held_at": q.held_at.0,
        "decided_by": q.decided_by,
        "why": q.why,
        "decided_at": q.decided_at.map(|t| t.0),
    })
}

/// [`item_json`] with its times in JST ISO form, as every CLI listing
/// prints them (the API keeps epoch milliseconds, as its schema says).
fn item_json_jst(q: &QuarantineRow) -> serde_json::Value {
    use crate::economy::calendar::iso_jst;
    let mut v = item_json(q);
    v["held_at"] = iso_jst(q.held_at).into();
    v["decided_at"] = q.decided_at.map(iso_jst).into();
    v
}

/// Why a card certificate file could not be used.
#[derive(Debug, thiserror::Error)]
pub enum CertFileError {
    /// A file did not read.
    #[error("could not read {path}: {source}")]
    Read {
        /// Which file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// A PEM file without a certificate.
    #[error("{0} is PEM but holds no certificate: give the DER or PEM certificate file")]
    Pem(PathBuf),
    /// A file that is no X.509 certificate.
    #[error("{0} is not an X.509 certificate: give the JPKI CA's certificate file (DER or PEM)")]
    NotCertificate(PathBuf),
    /// The card certificate does not parse.
    #[error("{path} is not a JPKI user-authentication certificate: {source}")]
    Parse {
        /// Which file.
        path: PathBuf,
        /// Why.
        #[source]
        source: mykey_jpki::CertParseError,
    },
    /// No CA given.
    #[error(
        "a card certificate is kept only after its chain is checked: give the JPKI user-authentication CA certificates with --trusted-ca FILE (repeatable)"
    )]
    NoTrustedCa,
    /// The chain check failed.
    #[error(transparent)]
    Chain(#[from] ChainError),
    /// The certificate is of another card than the one named.
    #[error(
        "the certificate is of card {cert}, not of the card given with --card ({card}): give the holder's own certificate"
    )]
    OtherCard {
        /// The certificate's card.
        cert: String,
        /// The card named.
        card: String,
    },
}

fn read_der(path: &Path) -> Result<Vec<u8>, CertFileError> {
    let bytes = std::fs::read(path).map_err(|source| CertFileError::Read {
        path: path.to_owned(),
        source,
    })?;
    if bytes.starts_with(b"-----BEGIN") {
        let (_, pem) = x509_parser::pem::parse_x509_pem(&bytes)
            .map_err(|_| CertFileError::Pem(path.to_owned()))?;
        return Ok(pem.contents);
    }
    Ok(bytes)
}

/// Loads a card's user-authentication certificate (DER or PEM, as
/// `mykey-node card read` or the card's EF 000A gives it) and checks it
/// chains to one of the trusted JPKI CA certificates at `now`.
pub fn load_trusted_cert(
    cert: &Path,
    trusted_ca: &[PathBuf],
    now: UnixMillis,
) -> Result<TrustedCert, CertFileError> {
    if trusted_ca.is_empty() {
        return Err(CertFileError::NoTrustedCa);
    }
    let parsed = CardCert::from_der(read_der(cert)?).map_err(|source| CertFileError::Parse {
        path: cert.to_owned(),
        source,
    })?;
    let cas = trusted_ca
        .iter()
        .map(|p| read_der(p))
        .collect::<Result<Vec<_>, _>>()?;
    let now_unix = i64::try_from(now.0 / 1000).unwrap_or(i64::MAX);
    Ok(mykey_jpki::trust(parsed, &cas, now_unix)?)
}

/// Reads trusted JPKI CA certificates (DER or PEM) for `mykey-hub serve
/// --trusted-ca`, each checked to be an X.509 certificate.
pub fn load_trusted_cas(paths: &[PathBuf]) -> Result<Vec<Vec<u8>>, CertFileError> {
    paths
        .iter()
        .map(|p| {
            let der = read_der(p)?;
            x509_parser::parse_x509_certificate(&der)
                .map_err(|_| CertFileError::NotCertificate(p.to_owned()))?;
            Ok(der)
        })
        .collect()
}

/// [`load_trusted_cert`], also checking it is the certificate of `card` when one is named.
pub fn load_card_cert(
    cert: &Path,
    trusted_ca: &[PathBuf],
    card: Option<&mykey_sync_proto::CardKey>,
    now: UnixMillis,
) -> Result<TrustedCert, CertFileError> {
    let t = load_trusted_cert(cert, trusted_ca, now)?;
    if let Some(c) = card
        && c != t.cert().card_key()
    {
        return Err(CertFileError::OtherCard {
            cert: t.cert().card_key().short(),
            card: c.short(),
        });
    }
    Ok(t)
}
