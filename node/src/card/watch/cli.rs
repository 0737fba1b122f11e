//! The clap side of `mykey-node watch`: flags to [`WatchOptions`], stdin
//! and stdout to a [`Console`].

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context as _;

use super::{Action, Console, PinSource, Stop, WatchOptions, run};
use crate::card::reader::DEFAULT_APDU_TIMEOUT;
use crate::config::DataDir;

/// `mykey-node watch`.
#[derive(Debug, clap::Args)]
pub struct WatchArgs {
    /// What to do with a tap; by default `redeem` where the hub allows it, else `lookup`.
    #[arg(long, value_enum)]
    action: Option<Action>,
    /// Redeem this many points on every tap instead of asking (unattended).
    #[arg(long, value_name = "POINTS")]
    amount: Option<String>,
    /// Read the PIN from the next line of stdin instead of a hidden prompt.
    #[arg(long)]
    pin_stdin: bool,
    /// Reader name (as `card readers` prints it); the first reader if omitted.
    #[arg(long)]
    reader: Option<String>,
    /// Exit after one tap.
    #[arg(long, conflicts_with = "max_taps")]
    once: bool,
    /// Exit after this many taps.
    #[arg(long, value_name = "N")]
    max_taps: Option<u64>,
    /// Trusted JPKI user-auth CA certificate (DER or PEM); repeat for each
    /// CA generation. Needed to accept PIN proofs.
    #[arg(long = "trusted-ca", value_name = "FILE")]
    trusted_ca: Vec<PathBuf>,
    /// Deadline for each command to the card, in milliseconds.
    #[arg(long, default_value_t = DEFAULT_APDU_TIMEOUT.as_millis() as u64)]
    apdu_timeout_ms: u64,
}

/// Runs `mykey-node watch` on the node in `dir`, on stdin and stdout.
pub fn run_cli(dir: &DataDir, args: WatchArgs) -> anyhow::Result<()> {
    let amount = args
        .amount
        .as_deref()
        .map(|text| {
            super::console::parse_amount(text).with_context(|| {
                format!("--amount {text:?} is not an amount: give whole points, e.g. 500 or 2,500")
            })
        })
        .transpose()?;
    let trusted_ca = args
        .trusted_ca
        .iter()
        .map(|p| crate::card::cli::load_cert_file(p))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let opts = WatchOptions {
        reader: args.reader,
        action: args.action,
        amount,
        pin: match args.pin_stdin {
            true => PinSource::Input,
            false => PinSource::Terminal,
        },
        max_taps: if args.once { Some(1) } else { args.max_taps },
        trusted_ca,
        apdu_timeout: Duration::from_millis(args.apdu_timeout_ms),
        stop: Stop::default(),
    };
    let mut node = dir.open()?;
    let stdin = std::io::stdin();
    let mut input = stdin.lock();
    let mut out = std::io::stdout();
    let mut prompt = std::io::stderr();
    let console = Console {
        input: &mut input,
        out: &mut out,
        prompt: &mut prompt,
    };
    let mut clock = crate::net::unix_now;
    run(&mut node, &opts, console, &mut clock)?;
    Ok(())
}
