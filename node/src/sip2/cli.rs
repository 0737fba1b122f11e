//! `mykey-node sip2`: runs the SIP2 bridge on the node's data directory.

use super::config::Sip2Section;
use super::server;
use crate::config::DataDir;
use anyhow::Context as _;

/// `mykey-node sip2`.
#[derive(Debug, clap::Args)]
pub struct Sip2Args {
    /// Where self-check machines connect (`HOST:PORT`), instead of `[sip2] listen`.
    #[arg(long, value_name = "ADDR")]
    listen: Option<String>,
    /// The library system's SIP2 address (`HOST:PORT`), instead of `[sip2] upstream`.
    #[arg(long, value_name = "HOST:PORT")]
    upstream: Option<String>,
    /// Read no card readers: patrons use scanned library cards only (for trying the bridge out).
    #[arg(long)]
    no_readers: bool,
}

/// Runs the bridge until the process is stopped. It holds no state worth
/// saving: sessions and tokens are in memory and end with it.
pub fn run_cli(dir: &DataDir, args: Sip2Args) -> anyhow::Result<()> {
    let mut section = match dir.section("sip2")? {
        Some(t) => Sip2Section::from_table(t)?,
        None => Sip2Section::default(),
    };
    if let Some(l) = args.listen {
        section.listen = l;
    }
    if let Some(u) = args.upstream {
        section.upstream = Some(u);
    }
    let config = section.check()?;
    let node = dir.open()?;
    let readers: Vec<String> = config
        .machines
        .iter()
        .filter_map(|(m, _, r)| r.as_ref().map(|r| format!("{r} -> {}", m.name)))
        .chain(
            config
                .token_readers
                .iter()
                .map(|r| format!("{r} -> tokens")),
        )
        .collect();
    let running = server::start(config, node, Box::new(std::io::stdout()), !args.no_readers)
        .context("the SIP2 bridge did not start")?;
    println!("sip2 bridge listening on {}", running.local_addr());
    if args.no_readers || readers.is_empty() {
        println!(
            "no card reader in use: configure [[sip2.machine]] reader or token_readers in node.toml"
        );
    } else {
        println!("readers: {}", readers.join(", "));
    }
    running.wait();
    Ok(())
}
