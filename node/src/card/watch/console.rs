//! The counter's console loop: pcscd, the card, the console and the node
//! around the pure [`super::decide`].
//!
//! Reader trouble never ends the loop: a removed or foreign card prints a
//! line and the next tap is served; a stopped pcscd prints one line and is
//! retried with backoff.

use std::time::Duration;

use mykey_sync_proto::{CardKey, MyKeyId, NodeLimits, Points, UnixMillis};
use zeroize::Zeroizing;

use super::decide::{Action, Amount, Next, Outcome, Proof, TapFacts, decide};
use super::{Console, PinSource, Summary, WatchError, WatchOptions};
use crate::card::apdu::Pin;
use crate::card::cert::{CardCert, trust};
use crate::card::jpki::{
    PinStatus, ProveError, VerifiedCardProof, pin_status, prove_redeem, read_auth_cert,
};
use crate::card::reader::{Reader, ReaderError, Session, WaitError};
use crate::node::{Lookup, Node, OpError};

/// How long one wait in pcscd lasts before the loop checks whether to stop.
const WAIT_SLICE: Duration = Duration::from_millis(500);
/// First and longest pause before asking pcscd again after it was not there.
const BACKOFF_FIRST: Duration = Duration::from_millis(250);
const BACKOFF_MAX: Duration = Duration::from_secs(8);
/// Said once while pcscd is away.
const NO_SERVICE: &str = "the smart card service (pcscd) is not running: start it (e.g. scripts/pcsc-up.sh); watch keeps retrying and serves taps as soon as it is back";
/// Tries at typing an amount or a well-formed PIN before the tap is given up.
const MAX_ENTRY_TRIES: u32 = 3;

/// One run of the loop: the node, the options and the console it serves.
pub(super) struct Watcher<'a, 'c> {
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

impl<'a, 'c> Watcher<'a, 'c> {
    pub(super) fn new(
        node: &'a mut Node,
        opts: &'a WatchOptions,
        action: Action,
        console: Console<'c>,
        clock: &'a mut dyn FnMut() -> UnixMillis,
    ) -> Self {
        Watcher {
            node,
            opts,
            action,
            console,
            clock,
            input_closed: false,
            said: None,
        }
    }

    pub(super) fn run(&mut self) -> Result<Summary, WatchError> {
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
                        Err(OpError::Visitor { home }) => Outcome::Visitor {
                            home,
                            numbers: vec![],
                            facility: limits.as_ref().map(|l| l.facility.clone()),
                        },
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
        session: &mut Session,
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
            // What was typed is not repeated: a PIN typed one line early
            // must not show on the screen.
            match parse_amount(line) {
                Some(p) => return Ok(Amount::Given(p)),
                None => self.prompt(
                    "that is not an amount: type whole points, e.g. 500 or 2,500; the amount again\n",
                )?,
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
            Outcome::Visitor { .. } => "visitor",
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

/// An amount as a counter types it: `2500`, `2,500`, full-width digits and
/// commas (`２，５００`, from a Japanese input method), an optional `pt`.
/// Commas only group thousands, so `25,00` is refused rather than guessed.
pub fn parse_amount(text: &str) -> Option<Points> {
    let ascii: String = text
        .trim()
        .chars()
        .map(|c| match c {
            '０'..='９' => char::from(b'0' + (c as u32 - '０' as u32) as u8),
            '，' => ',',
            'ｐ' => 'p',
            'ｔ' => 't',
            other => other,
        })
        .collect();
    let digits = ascii.strip_suffix("pt").unwrap_or(&ascii).trim_end();
    let mut groups = digits.split(',');
    let first = groups.next()?;
    let rest: Vec<&str> = groups.collect();
    let well_grouped = (1..=3).contains(&first.len()) && rest.iter().all(|g| g.len() == 3);
    if !rest.is_empty() && !well_grouped {
        return None;
    }
    let plain: String = std::iter::once(first).chain(rest).collect();
    if plain.is_empty() || !plain.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Points::parse(&plain).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn amounts_as_counters_type_them() {
        let cases: &[(&str, Option<u64>)] = &[
            ("2500", Some(2500)),
            ("2,500", Some(2500)),
            (" 2,500 pt ", Some(2500)),
            ("1,000,000", Some(1_000_000)),
            ("２５００", Some(2500)),
            ("２，５００", Some(2500)),
            ("500pt", Some(500)),
            ("0", Some(0)),
            ("25,00", None),
            ("2,5000", None),
            (",500", None),
            ("2.500", None),
            ("-5", None),
            ("+5", None),
            ("", None),
            ("abc", None),
            ("2,500,", None),
        ];
        for (text, want) in cases {
            assert_eq!(parse_amount(text).map(Points::get), *want, "{text:?}");
        }
    }
}
