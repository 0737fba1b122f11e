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

use std::io::{BufRead, Write};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use anyhow::Context as _;
use mykey_sync_proto::{
    CardKey, FacilityId, MyKeyId, NodeLimits, OpKind, Points, TxId, UnixMillis,
};
use zeroize::Zeroizing;

use super::apdu::Pin;
use super::cert::{CardCert, trust};
use super::jpki::{
    PinStatus, ProveError, VerifiedCardProof, pin_status, prove_redeem, read_auth_cert,
};
use super::reader::{DEFAULT_APDU_TIMEOUT, Reader, ReaderError, WaitError};
use crate::config::DataDir;
use crate::node::{Lookup, Node, OpError};
use crate::rules::Decline;
use crate::store::{NumberRow, StoreError};

/// How long one wait in pcscd lasts before the loop checks whether to stop.
const WAIT_SLICE: Duration = Duration::from_millis(500);
/// First and longest pause before asking pcscd again after it was not there.
const BACKOFF_FIRST: Duration = Duration::from_millis(250);
const BACKOFF_MAX: Duration = Duration::from_secs(8);
/// Said once while pcscd is away.
const NO_SERVICE: &str = "the smart card service (pcscd) is not running: start it (e.g. scripts/pcsc-up.sh); watch keeps retrying and serves taps as soon as it is back";
/// Tries at typing an amount or a well-formed PIN before the tap is given up.
const MAX_ENTRY_TRIES: u32 = 3;

/// What the facility does with a tap.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Action {
    /// Library counter: show the holder's card number at this facility.
    Lookup,
    /// Shop: ask the amount, PIN above the threshold, redeem points.
    Redeem,
}

impl Action {
    /// The facility's usual action: a shop where the hub allows redeeming,
    /// else a lookup counter.
    pub fn default_for(limits: Option<&NodeLimits>) -> Action {
        match limits {
            Some(l) if l.allowed_ops.contains(&OpKind::Redeem) => Action::Redeem,
            _ => Action::Lookup,
        }
    }
}

/// The amount for a sale, as far as it is known.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Amount {
    /// Not asked yet.
    NotAsked,
    /// The counter gave no amount (empty line, end of input): no sale.
    NoSale,
    /// This many points.
    Given(Points),
}

/// The PIN proof, as far as it went.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Proof {
    /// Not run (yet).
    NotTried,
    /// PIN verified, signature checked against a trusted certificate.
    Ok,
    /// Wrong PIN; the card counts down.
    WrongPin {
        /// Tries left before the card locks.
        tries_left: u8,
    },
    /// The card's PIN is locked.
    Locked,
    /// The card's certificate does not chain to a trusted JPKI CA (or none is
    /// configured), so a PIN proof from it would prove nothing.
    Untrusted(String),
    /// No well-formed PIN was entered; nothing was sent to the card.
    NotEntered,
}

/// Everything known about one tap: the input of [`decide`].
#[derive(Debug, Clone, Copy)]
pub struct TapFacts<'a> {
    /// What the facility does.
    pub action: Action,
    /// What the card resolved to in the cache.
    pub lookup: &'a Lookup,
    /// The hub-given limits, if the node has them.
    pub limits: Option<&'a NodeLimits>,
    /// The sale amount.
    pub amount: Amount,
    /// The PIN proof.
    pub proof: &'a Proof,
}

/// What to do next with a tap.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Next {
    /// Nothing more: show this.
    Done(Outcome),
    /// Ask the counter for the amount.
    AskAmount {
        /// The holder, to show while asking.
        my_key_id: MyKeyId,
    },
    /// Run the PIN proof before redeeming this amount.
    ProvePin {
        /// The amount, above the threshold.
        amount: Points,
        /// The threshold it is above.
        threshold: Points,
    },
    /// Ask the node to redeem (its offline rules still have the last word).
    Redeem {
        /// The amount.
        amount: Points,
        /// Whether the holder proved possession with the PIN.
        card_proof: bool,
    },
}

/// How a tap ended, as the counter sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// A registered holder (lookup counter).
    Registered {
        /// The holder's alias.
        my_key_id: MyKeyId,
        /// This facility's card numbers of the holder.
        numbers: Vec<NumberRow>,
        /// This facility, if the node knows it.
        facility: Option<FacilityId>,
    },
    /// The card has no My Key ID (or this node has not heard of it yet).
    NotRegistered,
    /// The card is on the deny list.
    Suspended,
    /// The card was replaced by a renewed one.
    Superseded,
    /// The counter gave no amount.
    NoSale,
    /// Wrong PIN: nothing redeemed.
    WrongPin {
        /// Tries left.
        tries_left: u8,
    },
    /// PIN locked: nothing redeemed.
    PinLocked,
    /// No usable PIN was entered: nothing redeemed.
    NoPin,
    /// The certificate is not trusted: nothing redeemed.
    Untrusted(String),
    /// Points redeemed and durably committed.
    Redeemed {
        /// The amount.
        amount: Points,
        /// Whether the PIN proof was made.
        card_proof: bool,
        /// The transaction's seq.
        seq: u64,
        /// Its id.
        tx: TxId,
        /// What the node now sees as spendable, if it could tell.
        available: Option<Points>,
        /// The holder's earliest-expiring points and when, if the hub said.
        expiring: Option<(Points, UnixMillis)>,
    },
    /// The offline rules declined the redeem, with their figures.
    Declined(Decline),
}

/// The next step for a tap. Pure: every input is in `facts`.
pub fn decide(facts: &TapFacts<'_>) -> Next {
    let (my_key_id, numbers) = match facts.lookup {
        Lookup::NotRegistered => return Next::Done(Outcome::NotRegistered),
        Lookup::Suspended => return Next::Done(Outcome::Suspended),
        Lookup::Superseded => return Next::Done(Outcome::Superseded),
        Lookup::Found {
            my_key_id, numbers, ..
        } => (my_key_id, numbers),
    };
    if facts.action == Action::Lookup {
        return Next::Done(Outcome::Registered {
            my_key_id: my_key_id.clone(),
            numbers: numbers.clone(),
            facility: facts.limits.map(|l| l.facility.clone()),
        });
    }
    let amount = match facts.amount {
        Amount::NotAsked => {
            return Next::AskAmount {
                my_key_id: my_key_id.clone(),
            };
        }
        Amount::NoSale => return Next::Done(Outcome::NoSale),
        Amount::Given(a) if a.is_zero() => {
            return Next::Done(Outcome::Declined(Decline::ZeroAmount));
        }
        Amount::Given(a) => a,
    };
    // Without limits the node declines anyway (not enrolled); no PIN for that.
    let threshold = match facts.limits {
        Some(l) if amount > l.pin_threshold => l.pin_threshold,
        _ => {
            return Next::Redeem {
                amount,
                card_proof: *facts.proof == Proof::Ok,
            };
        }
    };
    match facts.proof {
        Proof::NotTried => Next::ProvePin { amount, threshold },
        Proof::Ok => Next::Redeem {
            amount,
            card_proof: true,
        },
        Proof::WrongPin { tries_left } => Next::Done(Outcome::WrongPin {
            tries_left: *tries_left,
        }),
        Proof::Locked => Next::Done(Outcome::PinLocked),
        Proof::Untrusted(why) => Next::Done(Outcome::Untrusted(why.clone())),
        Proof::NotEntered => Next::Done(Outcome::NoPin),
    }
}

impl std::fmt::Display for Outcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Outcome::Registered {
                my_key_id,
                numbers,
                facility,
            } => {
                let at = facility
                    .as_ref()
                    .map(|f| format!("{f} "))
                    .unwrap_or_default();
                if numbers.is_empty() {
                    return write!(
                        f,
                        "registered: My Key ID {my_key_id}; no {at}card number linked yet: link one at this counter"
                    );
                }
                let list = numbers
                    .iter()
                    .map(|n| match n.confirmed {
                        true => n.number.to_string(),
                        false => format!("{} (not yet confirmed by the hub)", n.number),
                    })
                    .collect::<Vec<_>>()
                    .join(", ");
                let noun = if numbers.len() == 1 {
                    "card number"
                } else {
                    "card numbers"
                };
                write!(f, "registered: My Key ID {my_key_id}, {at}{noun} {list}")
            }
            Outcome::NotRegistered => f.write_str(
                "not registered: this card has no My Key ID here; the holder can register one at a municipal counter",
            ),
            Outcome::Suspended => f.write_str(
                "SUSPENDED: this card was reported lost; do not accept it; the holder must go to the municipal counter",
            ),
            Outcome::Superseded => {
                f.write_str("REPLACED: this card was renewed; ask the holder for the new card")
            }
            Outcome::NoSale => f.write_str("no amount given: nothing redeemed"),
            Outcome::WrongPin { tries_left } => write!(
                f,
                "wrong PIN: {tries_left} {} left before the card locks; nothing redeemed",
                if *tries_left == 1 { "try" } else { "tries" }
            ),
            Outcome::PinLocked => f.write_str(
                "PIN LOCKED: the card's PIN is locked after three wrong tries; nothing redeemed; the holder must go to the municipal office counter to reset it",
            ),
            Outcome::NoPin => f.write_str("no PIN entered: nothing redeemed"),
            Outcome::Untrusted(why) => write!(f, "NOT ACCEPTED: {why}; nothing redeemed"),
            Outcome::Redeemed {
                amount,
                card_proof,
                seq,
                tx,
                available,
                expiring,
            } => {
                let pin = if *card_proof { " with PIN" } else { "" };
                write!(f, "redeemed {amount}{pin} (seq {seq}, tx {})", tx.short())?;
                if let Some(a) = available {
                    write!(f, "; {a} left to spend")?;
                }
                if let Some((points, at)) = expiring {
                    write!(f, "; {}", crate::expiry::line(*points, *at))?;
                }
                Ok(())
            }
            Outcome::Declined(d) => write!(f, "declined: {d}; nothing redeemed"),
        }
    }
}

/// A flag another thread sets to end [`run`] at its next check (within
/// about half a second).
#[derive(Debug, Clone, Default)]
pub struct Stop(Arc<AtomicBool>);

impl Stop {
    /// Asks the loop to end.
    pub fn stop(&self) {
        self.0.store(true, Ordering::SeqCst);
    }
    fn is_set(&self) -> bool {
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
    let mut w = Watcher {
        node,
        opts,
        action,
        console,
        clock,
        input_closed: false,
        said: None,
    };
    w.run()
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

struct Watcher<'a, 'c> {
    node: &'a mut Node,
    opts: &'a WatchOptions,
    action: Action,
    console: Console<'c>,
    clock: &'a mut dyn FnMut() -> UnixMillis,
    input_closed: bool,
    /// The last reader problem printed, so a lasting one prints once.
    said: Option<String>,
}

/// Why a wait ended without a card.
enum Waited {
    Card(Reader, String),
    Stopped,
}

impl Watcher<'_, '_> {
    fn run(&mut self) -> Result<Summary, WatchError> {
        let mut summary = Summary::default();
        let action = match self.action {
            Action::Lookup => "lookup",
            Action::Redeem => "redeem",
        };
        tracing::info!(node = %self.node.id().short(), action, "watching for card taps");
        if self.node.limits()?.is_none() {
            self.say(
                "note: this node has no limits from the hub yet (connect it to the hub once): it knows no cards, and redeems are declined",
            )?;
        }
        if self.action == Action::Redeem && self.opts.trusted_ca.is_empty() {
            self.say(
                "note: no trusted JPKI CA given (--trusted-ca), so PIN proofs cannot be accepted: amounts above the PIN threshold will be refused",
            )?;
        }
        let mut pcsc: Option<Reader> = None;
        loop {
            if self.opts.max_taps.is_some_and(|m| summary.taps >= m) {
                return Ok(summary);
            }
            let (reader, name) = match self.wait_for_tap(pcsc.take())? {
                Waited::Card(reader, name) => (reader, name),
                Waited::Stopped => return Ok(summary),
            };
            summary.taps += 1;
            self.tap(&reader, &name)?;
            if self.opts.max_taps.is_some_and(|m| summary.taps >= m) {
                return Ok(summary);
            }
            // The same card must leave before the next tap counts.
            match self.wait_for_removal(&reader, &name)? {
                true => pcsc = Some(reader),
                false => return Ok(summary),
            }
        }
    }

    /// Blocks until a card is on the reader, reconnecting to pcscd with
    /// backoff while it is away.
    fn wait_for_tap(&mut self, mut pcsc: Option<Reader>) -> Result<Waited, WatchError> {
        let mut backoff = BACKOFF_FIRST;
        let mut announced = false;
        loop {
            if self.opts.stop.is_set() {
                return Ok(Waited::Stopped);
            }
            let reader = match pcsc.take() {
                Some(r) => r,
                None => match Reader::establish() {
                    Ok(r) => r,
                    Err(ReaderError::NoService(_)) => {
                        self.problem(NO_SERVICE, "pcscd unavailable")?;
                        self.pause(&mut backoff);
                        continue;
                    }
                    Err(e) => {
                        self.problem(&e.to_string(), "pcscd unavailable")?;
                        self.pause(&mut backoff);
                        continue;
                    }
                },
            };
            let name = match reader.pick(self.opts.reader.as_deref()) {
                Ok(n) => n,
                Err(ReaderError::NoService(_)) => {
                    self.problem(NO_SERVICE, "pcscd unavailable")?;
                    self.pause(&mut backoff);
                    continue;
                }
                Err(e) => {
                    let keep = !matches!(e, ReaderError::Pcsc(_));
                    self.problem(&e.to_string(), "no reader")?;
                    pcsc = keep.then_some(reader);
                    self.pause(&mut backoff);
                    continue;
                }
            };
            if !announced || self.said.is_some() {
                self.said = None;
                announced = true;
                self.say(&format!("waiting for a card on {name}"))?;
            }
            match reader.wait_for_card(&name, true, WAIT_SLICE) {
                Ok(true) => return Ok(Waited::Card(reader, name)),
                Ok(false) => {
                    backoff = BACKOFF_FIRST;
                    pcsc = Some(reader);
                }
                // Reconnect; NO_SERVICE is said there if pcscd stays away.
                // (pcscd dying under a wait shows as a communication error.)
                Err(WaitError::NoService(_) | WaitError::Pcsc(pcsc::Error::CommError)) => {
                    self.pause(&mut backoff)
                }
                Err(e) => {
                    let keep = matches!(e, WaitError::ReaderUnplugged(_));
                    self.problem(&e.to_string(), "waiting failed")?;
                    pcsc = keep.then_some(reader);
                    self.pause(&mut backoff);
                }
            }
        }
    }

    /// Blocks until the card leaves; false if asked to stop meanwhile.
    fn wait_for_removal(&mut self, reader: &Reader, name: &str) -> Result<bool, WatchError> {
        while !self.opts.stop.is_set() {
            match reader.wait_for_card(name, false, WAIT_SLICE) {
                Ok(true) => return Ok(true),
                Ok(false) => {}
                // The reader or pcscd went away: the card is as good as gone,
                // and wait_for_tap deals with the rest.
                Err(_) => return Ok(true),
            }
        }
        Ok(false)
    }

    /// Serves one card that is on the reader.
    fn tap(&mut self, reader: &Reader, name: &str) -> Result<(), WatchError> {
        let mut session = match reader.connect(name, self.opts.apdu_timeout) {
            Ok(s) => s,
            Err(e) => return self.say(&format!("card not read: {e}")),
        };
        let cert = match read_auth_cert(&mut session) {
            Ok(c) => c,
            Err(e) => return self.say(&format!("card not read: {e}")),
        };
        let card = cert.card_key().clone();
        let span = tracing::info_span!("tap", card = %card.short());
        let _guard = span.enter();
        let (lookup, limits) = match self
            .node
            .lookup(&card)
            .and_then(|l| Ok((l, self.node.limits()?)))
        {
            Ok(x) => x,
            Err(e) => return self.say(&format!("node error, card not served: {e}")),
        };
        let mut amount = Amount::NotAsked;
        let mut proof = Proof::NotTried;
        // The card's signature over the redeem being made (with Proof::Ok).
        let mut verified = None;
        // Each step adds a fact decide() had not got, so four steps end it.
        for _ in 0..4 {
            let facts = TapFacts {
                action: self.action,
                lookup: &lookup,
                limits: limits.as_ref(),
                amount,
                proof: &proof,
            };
            match decide(&facts) {
                Next::Done(outcome) => return self.show(&card, &outcome),
                Next::AskAmount { my_key_id } => {
                    amount = self.ask_amount(&my_key_id)?;
                }
                Next::ProvePin { amount, threshold } => {
                    let now_unix = i64::try_from((self.clock)().0 / 1000).unwrap_or(i64::MAX);
                    match self.prove(&mut session, &cert, amount, threshold, now_unix)? {
                        Some((p, v)) => (proof, verified) = (p, v),
                        None => return Ok(()),
                    }
                }
                Next::Redeem { amount, card_proof } => {
                    let (now, proof) = match (card_proof, &verified) {
                        (true, Some(v)) => (v.binding().created_at, Some(v)),
                        _ => ((self.clock)(), None),
                    };
                    let outcome = match self.node.redeem(&card, amount, proof, now) {
                        Ok(done) => Outcome::Redeemed {
                            amount,
                            card_proof,
                            seq: done.seq,
                            tx: done.tx,
                            available: self.available(&lookup, limits.as_ref()),
                            expiring: self.expiring(&lookup, limits.as_ref()),
                        },
                        Err(OpError::Declined(d)) => Outcome::Declined(d),
                        Err(OpError::NotRegistered) => Outcome::NotRegistered,
                        Err(e) => {
                            return self.say(&format!("node error, nothing redeemed: {e}"));
                        }
                    };
                    return self.show(&card, &outcome);
                }
            }
        }
        unreachable!("decide() did not finish a tap in four steps");
    }

    /// The PIN proof, with the chain checked first so no PIN is asked for a
    /// card whose proof could not count. The card signs the very redeem the
    /// node will sign next (its seq, time, wallet and amount), so the proof
    /// counts for that transaction only. `None`: a card error was printed.
    fn prove(
        &mut self,
        session: &mut super::reader::Session,
        cert: &CardCert,
        amount: Points,
        threshold: Points,
        now_unix: i64,
    ) -> Result<Option<(Proof, Option<VerifiedCardProof>)>, WatchError> {
        if self.opts.trusted_ca.is_empty() {
            return Ok(Some((Proof::Untrusted(
                "no trusted JPKI CA is configured, so a PIN proof would prove nothing: start watch with --trusted-ca FILE".into(),
            ), None)));
        }
        let trusted = match trust(cert.clone(), &self.opts.trusted_ca, now_unix) {
            Ok(t) => t,
            Err(e) => return Ok(Some((Proof::Untrusted(e.to_string()), None))),
        };
        let tries = match pin_status(session) {
            Ok(PinStatus::Locked) => return Ok(Some((Proof::Locked, None))),
            Ok(PinStatus::TriesLeft(n)) => Some(n),
            Ok(PinStatus::Verified) => None,
            Err(e) => {
                self.say(&format!("card not read: {e}"))?;
                return Ok(None);
            }
        };
        let tries = tries.map(|n| format!(", {n} {} left", if n == 1 { "try" } else { "tries" }));
        let note = format!(
            "{amount} is above {threshold}: the holder enters the card PIN{}",
            tries.unwrap_or_default()
        );
        let Some(pin) = self.ask_pin(&note)? else {
            return Ok(Some((Proof::NotEntered, None)));
        };
        // The time is taken once the PIN is in, so the redeem is signed
        // with the same time the card signed.
        let binding = match self
            .node
            .redeem_binding(cert.card_key(), amount, (self.clock)())
        {
            Ok(b) => b,
            Err(e) => {
                self.say(&format!("nothing redeemed: {e}"))?;
                return Ok(None);
            }
        };
        match prove_redeem(session, &trusted, pin, binding) {
            Ok(p) => {
                tracing::info!(card = %cert.card_key().short(), "card proof verified");
                Ok(Some((Proof::Ok, Some(p))))
            }
            Err(ProveError::WrongPin { tries_left }) => {
                Ok(Some((Proof::WrongPin { tries_left }, None)))
            }
            Err(ProveError::Locked) => Ok(Some((Proof::Locked, None))),
            Err(e) => {
                self.say(&format!("card proof failed, nothing redeemed: {e}"))?;
                Ok(None)
            }
        }
    }

    fn ask_amount(&mut self, my_key_id: &MyKeyId) -> Result<Amount, WatchError> {
        if let Some(a) = self.opts.amount {
            return Ok(Amount::Given(a));
        }
        for _ in 0..MAX_ENTRY_TRIES {
            let text = format!("My Key ID {my_key_id}: amount in points (empty line: no sale): ");
            let Some(line) = self.read_line(&text)? else {
                return Ok(Amount::NoSale);
            };
            let line = line.trim();
            if line.is_empty() {
                return Ok(Amount::NoSale);
            }
            match Points::parse(line) {
                Ok(p) => return Ok(Amount::Given(p)),
                Err(_) => self.prompt(&format!(
                    "{line:?} is not an amount: type whole points, e.g. 500\n"
                ))?,
            }
        }
        Ok(Amount::NoSale)
    }

    fn ask_pin(&mut self, note: &str) -> Result<Option<Pin>, WatchError> {
        self.prompt(&format!("{note}\n"))?;
        for _ in 0..MAX_ENTRY_TRIES {
            let line = match self.opts.pin {
                PinSource::Input => match self.read_line("PIN: ")? {
                    Some(l) => Zeroizing::new(l),
                    None => return Ok(None),
                },
                // rpassword reads /dev/tty with echo off, so the PIN is never shown.
                PinSource::Terminal => match rpassword::prompt_password("PIN (4 digits): ") {
                    Ok(l) => Zeroizing::new(l),
                    Err(e) => {
                        self.say(&format!(
                            "could not read the PIN from the terminal ({e}): run in a terminal, or use --pin-stdin"
                        ))?;
                        return Ok(None);
                    }
                },
            };
            match Pin::parse(line.trim()) {
                Ok(pin) => return Ok(Some(pin)),
                Err(e) => self.prompt(&format!("{e}; nothing was sent to the card\n"))?,
            }
        }
        Ok(None)
    }

    /// One line of console input; `None` once the input has ended.
    fn read_line(&mut self, prompt: &str) -> Result<Option<String>, WatchError> {
        if self.input_closed {
            return Ok(None);
        }
        self.prompt(prompt)?;
        let mut line = String::new();
        match self.console.input.read_line(&mut line) {
            Ok(0) | Err(_) => {
                self.input_closed = true;
                Ok(None)
            }
            Ok(_) => Ok(Some(line)),
        }
    }

    fn available(&self, lookup: &Lookup, limits: Option<&NodeLimits>) -> Option<Points> {
        let (Lookup::Found { account, .. }, Some(l)) = (lookup, limits) else {
            return None;
        };
        let (balance, debt, pending) = self.node.balance(*account, l.municipality).ok()?;
        Some(balance.saturating_sub(debt).saturating_sub(pending))
    }

    fn expiring(
        &self,
        lookup: &Lookup,
        limits: Option<&NodeLimits>,
    ) -> Option<(Points, UnixMillis)> {
        let (Lookup::Found { account, .. }, Some(l)) = (lookup, limits) else {
            return None;
        };
        self.node
            .upcoming_expiry(*account, l.municipality)
            .ok()
            .flatten()
    }

    fn show(&mut self, card: &CardKey, outcome: &Outcome) -> Result<(), WatchError> {
        let kind = match outcome {
            Outcome::Registered { .. } => "registered",
            Outcome::NotRegistered => "not registered",
            Outcome::Suspended => "suspended",
            Outcome::Superseded => "superseded",
            Outcome::NoSale => "no sale",
            Outcome::WrongPin { .. } => "wrong pin",
            Outcome::PinLocked => "pin locked",
            Outcome::NoPin => "no pin",
            Outcome::Untrusted(_) => "untrusted",
            Outcome::Redeemed { .. } => "redeemed",
            Outcome::Declined(_) => "declined",
        };
        tracing::info!(card = %card.short(), outcome = kind, "tap served");
        self.say(&outcome.to_string())
    }

    /// Prints a lasting reader problem once, until things recover.
    fn problem(&mut self, text: &str, what: &str) -> Result<(), WatchError> {
        if self.said.as_deref() == Some(text) {
            return Ok(());
        }
        // info, not warn: the line below already shows on the console.
        tracing::info!("{what}: {text}");
        self.say(text)?;
        self.said = Some(text.to_owned());
        Ok(())
    }

    /// Sleeps for the backoff (in short steps, so a stop is seen) and doubles it.
    fn pause(&self, backoff: &mut Duration) {
        let mut left = *backoff;
        while !left.is_zero() && !self.opts.stop.is_set() {
            let step = left.min(Duration::from_millis(100));
            std::thread::sleep(step);
            left -= step;
        }
        *backoff = (*backoff * 2).min(BACKOFF_MAX);
    }

    fn say(&mut self, line: &str) -> Result<(), WatchError> {
        writeln!(self.console.out, "{line}")
            .and_then(|()| self.console.out.flush())
            .map_err(WatchError::Output)
    }

    fn prompt(&mut self, text: &str) -> Result<(), WatchError> {
        write!(self.console.prompt, "{text}")
            .and_then(|()| self.console.prompt.flush())
            .map_err(WatchError::Output)
    }
}

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
        .map(Points::parse)
        .transpose()
        .context("--amount")?;
    let trusted_ca = args
        .trusted_ca
        .iter()
        .map(|p| super::cli::load_cert_file(p))
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
    let mut clock = || {
        let ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
        UnixMillis(ms)
    };
    run(&mut node, &opts, console, &mut clock)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use mykey_sync_proto::{AccountId, FacilityCardNumber, MunicipalityCode, NodeId};

    fn p(n: u64) -> Points {
        Points::new(n).unwrap()
    }

    fn limits(ops: &[OpKind]) -> NodeLimits {
        NodeLimits {
            node: NodeId::from_bytes(
                ed25519_dalek::SigningKey::from_bytes(&[1; 32])
                    .verifying_key()
                    .to_bytes(),
            )
            .unwrap(),
            facility: FacilityId::parse("bunkyo-lib").unwrap(),
            municipality: MunicipalityCode::parse("131059").unwrap(),
            allowed_ops: ops.to_vec(),
            per_card_offline_limit: p(3000),
            node_exposure_limit: p(10_000),
            pin_threshold: p(2000),
            valid_until: UnixMillis(100),
        }
    }

    fn found(numbers: &[(&str, bool)]) -> Lookup {
        Lookup::Found {
            account: AccountId::new(7).unwrap(),
            my_key_id: MyKeyId::parse("Hanako").unwrap(),
            municipality: MunicipalityCode::parse("131059").unwrap(),
            numbers: numbers
                .iter()
                .map(|(n, confirmed)| NumberRow {
                    number: FacilityCardNumber::parse(n).unwrap(),
                    confirmed: *confirmed,
                })
                .collect(),
        }
    }

    #[test]
    fn the_default_action_follows_the_allowed_operations() {
        let shop = limits(&[OpKind::Redeem]);
        let library = limits(&[OpKind::Link, OpKind::Unlink]);
        assert_eq!(Action::default_for(Some(&shop)), Action::Redeem);
        assert_eq!(Action::default_for(Some(&library)), Action::Lookup);
        assert_eq!(Action::default_for(None), Action::Lookup);
    }

    #[test]
    fn decide_table() {
        use Action::{Lookup as L, Redeem as R};
        let shop = limits(&[OpKind::Redeem]);
        let hanako = found(&[("LIB-0001", true)]);
        let given = |n| Amount::Given(p(n));
        let wrong = Proof::WrongPin { tries_left: 2 };
        let untrusted = Proof::Untrusted("no CA".into());
        let cases: Vec<(Action, &Lookup, Amount, &Proof, &str)> = vec![
            (L, &hanako, Amount::NotAsked, &Proof::NotTried, "registered"),
            (
                L,
                &Lookup::NotRegistered,
                Amount::NotAsked,
                &Proof::NotTried,
                "not registered",
            ),
            (
                L,
                &Lookup::Suspended,
                Amount::NotAsked,
                &Proof::NotTried,
                "suspended",
            ),
            (
                R,
                &Lookup::Suspended,
                Amount::NotAsked,
                &Proof::NotTried,
                "suspended",
            ),
            (
                R,
                &Lookup::Superseded,
                Amount::NotAsked,
                &Proof::NotTried,
                "superseded",
            ),
            (
                R,
                &Lookup::NotRegistered,
                given(10),
                &Proof::NotTried,
                "not registered",
            ),
            (R, &hanako, Amount::NotAsked, &Proof::NotTried, "ask amount"),
            (R, &hanako, Amount::NoSale, &Proof::NotTried, "no sale"),
            (R, &hanako, given(0), &Proof::NotTried, "zero"),
            (R, &hanako, given(2000), &Proof::NotTried, "redeem no pin"),
            (R, &hanako, given(2001), &Proof::NotTried, "prove"),
            (R, &hanako, given(2001), &Proof::Ok, "redeem with pin"),
            (R, &hanako, given(2001), &wrong, "wrong pin"),
            (R, &hanako, given(2001), &Proof::Locked, "locked"),
            (R, &hanako, given(2001), &untrusted, "untrusted"),
            (R, &hanako, given(2001), &Proof::NotEntered, "no pin"),
        ];
        for (i, (action, lookup, amount, proof, want)) in cases.into_iter().enumerate() {
            let next = decide(&TapFacts {
                action,
                lookup,
                limits: Some(&shop),
                amount,
                proof,
            });
            let got = match &next {
                Next::Done(Outcome::Registered { .. }) => "registered",
                Next::Done(Outcome::NotRegistered) => "not registered",
                Next::Done(Outcome::Suspended) => "suspended",
                Next::Done(Outcome::Superseded) => "superseded",
                Next::Done(Outcome::NoSale) => "no sale",
                Next::Done(Outcome::Declined(Decline::ZeroAmount)) => "zero",
                Next::Done(Outcome::WrongPin { tries_left: 2 }) => "wrong pin",
                Next::Done(Outcome::PinLocked) => "locked",
                Next::Done(Outcome::Untrusted(_)) => "untrusted",
                Next::Done(Outcome::NoPin) => "no pin",
                Next::AskAmount { .. } => "ask amount",
                Next::ProvePin { amount, threshold }
                    if *amount == p(2001) && *threshold == p(2000) =>
                {
                    "prove"
                }
                Next::Redeem {
                    card_proof: false, ..
                } => "redeem no pin",
                Next::Redeem {
                    card_proof: true, ..
                } => "redeem with pin",
                other => panic!("case {i}: unexpected {other:?}"),
            };
            assert_eq!(got, want, "case {i}: {next:?}");
        }
    }

    #[test]
    fn without_limits_a_sale_goes_to_the_node_which_declines_it() {
        let hanako = found(&[]);
        let next = decide(&TapFacts {
            action: Action::Redeem,
            lookup: &hanako,
            limits: None,
            amount: Amount::Given(p(5000)),
            proof: &Proof::NotTried,
        });
        assert_eq!(
            next,
            Next::Redeem {
                amount: p(5000),
                card_proof: false
            }
        );
    }

    #[test]
    fn outcomes_read_as_what_to_do() {
        let lib = FacilityId::parse("bunkyo-lib").unwrap();
        let registered = |numbers: &[(&str, bool)]| {
            let Lookup::Found {
                my_key_id, numbers, ..
            } = found(numbers)
            else {
                unreachable!()
            };
            Outcome::Registered {
                my_key_id,
                numbers,
                facility: Some(lib.clone()),
            }
        };
        let cases: Vec<(Outcome, &str)> = vec![
            (
                registered(&[("LIB-0001", true)]),
                "registered: My Key ID Hanako, bunkyo-lib card number LIB-0001",
            ),
            (
                registered(&[("LIB-0001", true), ("LIB-0002", false)]),
                "registered: My Key ID Hanako, bunkyo-lib card numbers LIB-0001, LIB-0002 (not yet confirmed by the hub)",
            ),
            (registered(&[]), "no bunkyo-lib card number linked yet"),
            (Outcome::WrongPin { tries_left: 1 }, "1 try left"),
            (Outcome::WrongPin { tries_left: 2 }, "2 tries left"),
            (Outcome::PinLocked, "municipal office counter"),
            (
                Outcome::Declined(Decline::PinRequired { threshold: p(2000) }),
                "declined: spends above 2000 pt need the card PIN; nothing redeemed",
            ),
            (Outcome::Suspended, "SUSPENDED"),
        ];
        for (outcome, want) in cases {
            let text = outcome.to_string();
            assert!(text.contains(want), "{text:?} lacks {want:?}");
        }
    }
}
