//! `mykey-node kiosk`: the flags, the page and the reader loop together.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context as _;

use super::orders::OrderQueue;
use super::page::{DEFAULT_ADDR, bind, router};
use super::reader::ReaderLoop;
use super::screen::Kiosk;
use crate::card::reader::DEFAULT_APDU_TIMEOUT;
use crate::config::DataDir;

/// How often the queue of orders signed offline is offered to the hub.
const DRAIN_EVERY: Duration = Duration::from_secs(2);

/// `mykey-node kiosk`.
#[derive(Debug, clap::Args)]
pub struct KioskArgs {
    /// Serve the kiosk page here (loopback only; in use is an error).
    #[arg(long, value_name = "ADDR", default_value = DEFAULT_ADDR)]
    listen: String,
    /// Reader name (as `card readers` prints it); the first reader if omitted.
    #[arg(long)]
    reader: Option<String>,
    /// Trusted JPKI user-auth CA certificate (DER or PEM); repeat for each
    /// CA generation. A card whose certificate does not chain to one is not read.
    #[arg(long = "trusted-ca", value_name = "FILE", required = true)]
    trusted_ca: Vec<PathBuf>,
    /// A facility whose card numbers holders may link and unlink here
    /// (repeatable; a button each on the menu). The hub links at once where
    /// the facility's kiosk link policy is `auto`; under `confirm` the link
    /// waits for the facility's node (`mykey-node link-requests`) and the
    /// receipt says so. Unlinking is at once.
    #[arg(long = "link-facility", value_name = "FACILITY")]
    link_facility: Vec<String>,
    /// Deadline for each command to the card, in milliseconds.
    #[arg(long, default_value_t = DEFAULT_APDU_TIMEOUT.as_millis() as u64)]
    apdu_timeout_ms: u64,
    /// The receipt printer for vouchers (ESC/POS, 58 mm): a device such as
    /// /dev/usb/lp0, or a file the raster is appended to. Without it the
    /// vouchers are shown on the screen only.
    #[arg(long, value_name = "PATH")]
    printer: Option<PathBuf>,
    /// Days the kiosk's vouchers are valid, from the day of issue (the hub
    /// takes at most 366).
    #[arg(long, default_value_t = super::vouchers::DEFAULT_VOUCHER_DAYS,
          value_parser = clap::value_parser!(u16).range(1..=i64::from(mykey_sync_proto::MAX_KIOSK_VOUCHER_DAYS)))]
    voucher_days: u16,
}

/// Runs the kiosk on the node in `dir` until the process is stopped.
pub fn run_cli(dir: &DataDir, args: KioskArgs) -> anyhow::Result<()> {
    let trusted_ca = args
        .trusted_ca
        .iter()
        .map(|p| crate::card::cli::load_cert_file(p))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let node = dir.open()?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the kiosk's page runtime")?;
    let listener = rt.block_on(bind(&args.listen))?;
    let local = listener.local_addr()?;
    let links = args
        .link_facility
        .iter()
        .map(|f| mykey_sync_proto::FacilityId::parse(f))
        .collect::<Result<Vec<_>, _>>()
        .context("--link-facility")?;
    let kiosk = Arc::new(Mutex::new(Kiosk::with_links(links)));
    let (effects_tx, effects) = std::sync::mpsc::channel();
    let queue = OrderQueue::of(dir);
    let reader = ReaderLoop {
        queue: queue.clone(),
        dir: dir.clone(),
        node,
        reader: args.reader,
        trusted_ca,
        apdu_timeout: Duration::from_millis(args.apdu_timeout_ms),
        kiosk: kiosk.clone(),
        effects,
        vouchers: super::vouchers::VoucherSetup {
            valid_days: args.voucher_days,
            printer: args.printer,
        },
    };
    std::thread::Builder::new()
        .name("kiosk-reader".into())
        .spawn(move || reader.run())
        .context("cannot start the kiosk's reader thread")?;
    let sender = dir.clone();
    std::thread::Builder::new()
        .name("kiosk-orders".into())
        .spawn(move || {
            loop {
                if !queue.is_empty() {
                    queue.drain(|r| crate::http::client::holder(&sender, r));
                }
                std::thread::sleep(DRAIN_EVERY);
            }
        })
        .context("cannot start the kiosk's order sender")?;
    let app = router(kiosk, effects_tx);
    println!("kiosk page on http://{local}/");
    if crate::http::client::live_status(dir).is_none() {
        println!(
            "note: no `mykey-node run` answers on this data directory, so the kiosk shows only what the node holds (offline) until it runs"
        );
    }
    rt.block_on(async move { axum::serve(listener, app).await })
        .context("the kiosk page stopped")?;
    Ok(())
}
