//! `mykey-node watch`: the counter's tap loop.
//!
//! Waits for a card (blocking in pcscd, no polling), reads its card key,
//! looks it up in the node's cache and does what the facility does at its
//! counter: a library shows the holder's card number; a shop asks the
//! amount, runs the PIN proof above the hub's threshold, and redeems.
//!
//! What to do next is decided by [`decide`], a pure function of what is known
//! about the tap so far ([`TapFacts`]); [`run`] is the I/O around it: pcscd,
//! the card, the console and the node. Reader trouble never ends the loop:
//! a removed or foreign card prints a line and the next tap is served; a
//! stopped pcscd prints one line and is retried with backoff.
//!
//! - [`decide`](mod@decide): the pure step, [`decide()`] over [`TapFacts`].
//! - [`console`]: the loop around it (pcscd, the card, the console, the node).
//! - [`cli`]: the `mykey-node watch` flags.

use std::io::{BufRead, Write};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use mykey_sync_proto::{OpKind, Points, UnixMillis};

use super::reader::DEFAULT_APDU_TIMEOUT;
use crate::node::Node;
use crate::store::StoreError;

pub mod cli;
pub mod console;
pub mod decide;

pub use cli::{WatchArgs, run_cli};
pub use decide::{Action, Amount, Next, Outcome, Proof, TapFacts, decide};

/// A flag another thread sets to end [`run`] at its next check (within
/// about half a second).
#[derive(Debug, Clone, Default)]
pub struct Stop(Arc<AtomicBool>);

impl Stop {
    /// Asks the loop to end.
    pub fn stop(&self) {
        self.0.store(true, Ordering::SeqCst);
    }
    pub(super) fn is_set(&self) -> bool {
        self.0.load(Ordering::SeqCst)
    }
}

/// Where the PIN comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PinSource {
    /// A hidden prompt on the terminal.
    Terminal,
    /// The next line of the console input (scripts and tests).
    Input,
}

/// How the loop runs.
#[derive(Debug, Clone)]
pub struct WatchOptions {
    /// Reader name; the first reader if `None`.
    pub reader: Option<String>,
    /// The action; the facility's default if `None`.
    pub action: Option<Action>,
    /// A fixed amount for every sale (unattended); else asked per tap.
    pub amount: Option<Points>,
    /// Where the PIN comes from.
    pub pin: PinSource,
    /// Stop after this many taps.
    pub max_taps: Option<u64>,
    /// Trusted JPKI user-auth CA certificates (DER), for PIN proofs.
    pub trusted_ca: Vec<Vec<u8>>,
    /// Deadline for each command to the card.
    pub apdu_timeout: Duration,
    /// Ends the loop when set.
    pub stop: Stop,
}

impl Default for WatchOptions {
    fn default() -> Self {
        WatchOptions {
            reader: None,
            action: None,
            amount: None,
            pin: PinSource::Terminal,
            max_taps: None,
            trusted_ca: Vec::new(),
            apdu_timeout: DEFAULT_APDU_TIMEOUT,
            stop: Stop::default(),
        }
    }
}

/// The counter's console: amounts and PINs come in, results go out, prompts
/// go to their own stream so the results stay clean for scripts.
pub struct Console<'a> {
    /// Amounts (and the PIN with [`PinSource::Input`]), one per line.
    pub input: &'a mut dyn BufRead,
    /// One line per tap result and per reader problem.
    pub out: &'a mut dyn Write,
    /// Prompts.
    pub prompt: &'a mut dyn Write,
}

/// The loop could not start or could not write.
#[derive(Debug, thiserror::Error)]
pub enum WatchError {
    /// The chosen action is not allowed at this facility.
    #[error(
        "this facility may not {op} (the hub allows: {allowed}): run watch with --action lookup"
    )]
    NotAllowed {
        /// The operation.
        op: &'static str,
        /// What is allowed.
        allowed: String,
    },
    /// Reading the node's limits failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The console output is gone.
    #[error("could not write to the console: {0}")]
    Output(#[source] std::io::Error),
}

/// What a run did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Summary {
    /// Cards that arrived on the reader.
    pub taps: u64,
}

/// Serves taps until `max_taps`, `stop`, or for ever.
pub fn run(
    node: &mut Node,
    opts: &WatchOptions,
    console: Console<'_>,
    clock: &mut dyn FnMut() -> UnixMillis,
) -> Result<Summary, WatchError> {
    let limits = node.limits()?;
    let action = opts
        .action
        .unwrap_or_else(|| Action::default_for(limits.as_ref()));
    if let (Action::Redeem, Some(l)) = (action, &limits)
        && !l.allowed_ops.contains(&OpKind::Redeem)
    {
        return Err(WatchError::NotAllowed {
            op: OpKind::Redeem.name(),
            allowed: l
                .allowed_ops
                .iter()
                .map(|o| o.name())
                .collect::<Vec<_>>()
                .join(", "),
        });
    }
    console::Watcher::new(node, opts, action, console, clock).run()
}

/// Serves exactly one tap (waits for it as long as it takes).
pub fn run_once(
    node: &mut Node,
    opts: &WatchOptions,
    console: Console<'_>,
    clock: &mut dyn FnMut() -> UnixMillis,
) -> Result<Summary, WatchError> {
    let opts = WatchOptions {
        max_taps: Some(1),
        ..opts.clone()
    };
    run(node, &opts, console, clock)
}
