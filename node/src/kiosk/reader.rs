//! The kiosk's reader loop: pcscd and the card around the pure
//! [`Kiosk`](super::screen::Kiosk).
//!
//! One thread owns pcscd, the card session and the node; it waits for a
//! card in short slices (so it notices a removal and the keypad's OK
//! between them), feeds card in / card out to the screen and performs the
//! screen's [`Effect`]: the card signs the hub's challenge after its PIN,
//! and the history is read through the running node (`POST /holder`, the
//! node's one hub link). When the hub is away the card still checks the
//! PIN (over a challenge of the kiosk's own) before the node's own figures
//! show, marked offline. Nothing of an answer is stored or logged.

use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use mykey_sync_proto::CardKey;
use mykey_sync_proto::holder::{
    HolderAction, HolderBinding, HolderOrder, HolderRefusal, HolderRequest, HolderResponse,
};

use super::offline::offline_view;
use super::orders::OrderQueue;
use super::screen::{CardSeen, Effect, Input, Kiosk, Outcome};
use crate::card::apdu::Pin;
use crate::card::cert::{CardCert, TrustedCert, trust};
use crate::card::jpki::{Challenge, ProveError, prove, prove_holder, prove_order, read_auth_cert};
use crate::card::reader::{Reader, Session};
use crate::config::DataDir;
use crate::http::client::{HolderCallError, holder};
use crate::node::Lookup;
use crate::node::Node;

/// How long one wait in pcscd lasts before the loop looks at the keypad.
const WAIT_SLICE: Duration = Duration::from_millis(200);
/// The longest pause before asking pcscd again after it was not there.
const BACKOFF_MAX: Duration = Duration::from_secs(4);
/// History entries asked for one screen.
const MAX_ENTRIES: u32 = 100;

/// What the reader loop needs.
pub struct ReaderLoop {
    /// The node's data directory (its `run` carries the hub requests).
    pub dir: DataDir,
    /// The node, for the offline view.
    pub node: Node,
    /// Reader name; the first reader if `None`.
    pub reader: Option<String>,
    /// Trusted JPKI user-authentication CA certificates (DER).
    pub trusted_ca: Vec<Vec<u8>>,
    /// Deadline for each command to the card.
    pub apdu_timeout: Duration,
    /// The screen, shared with the page.
    pub kiosk: Arc<Mutex<Kiosk>>,
    /// Effects the page's keypad produced (the OK key).
    pub effects: Receiver<Effect>,
    /// Where orders signed while the hub is away wait.
    pub queue: OrderQueue,
    /// How the kiosk's vouchers are dated and printed.
    pub vouchers: super::vouchers::VoucherSetup,
}

impl ReaderLoop {
    /// Serves cards for ever (until the effects' sender is gone).
    pub fn run(mut self) {
        let mut backoff = Duration::from_millis(250);
        let mut said: Option<String> = None;
        loop {
            let pcsc = match Reader::establish() {
                Ok(r) => r,
                Err(e) => {
                    self.problem(&mut said, &e.to_string());
                    std::thread::sleep(backoff);
                    backoff = (backoff * 2).min(BACKOFF_MAX);
                    continue;
                }
            };
            let name = match pcsc.pick(self.reader.as_deref()) {
                Ok(n) => n,
                Err(e) => {
                    self.problem(&mut said, &e.to_string());
                    std::thread::sleep(backoff);
                    backoff = (backoff * 2).min(BACKOFF_MAX);
                    continue;
                }
            };
            if said.take().is_some() || backoff == Duration::from_millis(250) {
                tracing::info!(reader = %name, "kiosk waiting for a card");
            }
            backoff = Duration::from_millis(250);
            loop {
                // Keys pressed with no card do nothing; drop their effects.
                while self.effects.try_recv().is_ok() {}
                match pcsc.wait_for_card(&name, true, WAIT_SLICE) {
                    Ok(true) => {
                        if !self.serve(&pcsc, &name) {
                            return;
                        }
                    }
                    Ok(false) => {}
                    Err(e) => {
                        self.problem(&mut said, &e.to_string());
                        break;
                    }
                }
            }
        }
    }

    fn problem(&self, said: &mut Option<String>, text: &str) {
        if said.as_deref() != Some(text) {
            tracing::warn!("card reader: {text}; the kiosk keeps trying");
            *said = Some(text.to_owned());
        }
    }

    fn generation(&self) -> super::screen::Generation {
        self.kiosk
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .generation()
    }

    fn step(&self, input: Input) -> Option<Effect> {
        self.kiosk
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .step(input)
    }

    /// Serves the card on the reader until it leaves; false when the page
    /// is gone.
    fn serve(&mut self, pcsc: &Reader, name: &str) -> bool {
        let read = pcsc
            .connect(name, self.apdu_timeout)
            .map_err(|e| e.to_string())
            .and_then(|mut s| {
                read_auth_cert(&mut s)
                    .map(|c| (s, c))
                    .map_err(|e| e.to_string())
            });
        let (mut session, cert) = match read {
            Ok(x) => x,
            Err(e) => {
                tracing::warn!("card not read: {e}");
                return self.wait_out(pcsc, name);
            }
        };
        let card = cert.card_key().clone();
        let span = tracing::info_span!("kiosk", card = %card.short());
        let _guard = span.enter();
        tracing::info!("card in");
        let (my_key_id, elsewhere) = match self.node.lookup(&card) {
            Ok(Lookup::Found { my_key_id, .. }) => (Some(my_key_id), None),
            Ok(Lookup::Visitor { home, .. }) => (None, Some(home)),
            _ => (None, None),
        };
        let programmes = super::donate::offers(&self.node);
        let issues_vouchers = super::vouchers::offered(&self.node);
        self.step(Input::CardIn(CardSeen {
            card,
            my_key_id,
            elsewhere,
            programmes,
            issues_vouchers,
        }));
        loop {
            match self.effects.recv_timeout(WAIT_SLICE) {
                Ok(Effect::Read {
                    generation,
                    card,
                    pin,
                }) => {
                    let outcome = self.read(&mut session, &cert, &card, pin);
                    self.step(Input::Answer(generation, outcome));
                }
                Ok(Effect::CheckId {
                    generation,
                    my_key_id,
                }) => {
                    let req = HolderRequest::MyKeyIdFree { my_key_id };
                    let free = match holder(&self.dir, &req) {
                        Ok(HolderResponse::MyKeyIdFree(free)) => Some(free),
                        // Offline or unanswered: the hub decides when the order arrives.
                        _ => None,
                    };
                    self.step(Input::Answer(generation, Outcome::IdChecked(free)));
                }
                Ok(Effect::Order {
                    generation,
                    card,
                    pin,
                    action,
                }) => {
                    let outcome = self.order(&mut session, &cert, card, pin, action);
                    self.step(Input::Answer(generation, outcome));
                }
                Ok(Effect::Donate {
                    generation,
                    card,
                    pin,
                    donation,
                }) => {
                    // A donation asked under an earlier turn is never given.
                    if generation == self.generation() {
                        let outcome = super::donate::donate(
                            &mut self.node,
                            &self.trusted_ca,
                            &mut session,
                            &cert,
                            &card,
                            pin,
                            &donation,
                        );
                        self.step(Input::Answer(generation, outcome));
                    }
                }
                Ok(Effect::IssueVouchers {
                    generation,
                    card,
                    pin,
                    order,
                }) => {
                    // Vouchers asked under an earlier turn are never made.
                    if generation == self.generation() {
                        let outcome = super::vouchers::issue(
                            &mut self.node,
                            &self.trusted_ca,
                            &self.vouchers,
                            &mut session,
                            &cert,
                            &card,
                            pin,
                            &order,
                        );
                        self.step(Input::Answer(generation, outcome));
                    }
                }
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => return false,
            }
            match pcsc.wait_for_card(name, false, Duration::ZERO) {
                Ok(false) => {}
                Ok(true) | Err(_) => {
                    tracing::info!("card out");
                    self.step(Input::CardOut);
                    return true;
                }
            }
        }
    }

    /// Waits until an unreadable card leaves.
    fn wait_out(&self, pcsc: &Reader, name: &str) -> bool {
        loop {
            match pcsc.wait_for_card(name, false, WAIT_SLICE) {
                Ok(false) => {}
                Ok(true) | Err(_) => return true,
            }
        }
    }

    fn trusted(&self, cert: &CardCert) -> Option<TrustedCert> {
        let now_s = i64::try_from(crate::net::unix_now().0 / 1000).unwrap_or(i64::MAX);
        let t = trust(cert.clone(), &self.trusted_ca, now_s).ok();
        if t.is_none() {
            tracing::warn!("the card's certificate does not chain to a trusted CA (--trusted-ca)");
        }
        t
    }

    /// The order the screen asked for: the card signs it after its PIN;
    /// it goes to the hub through the running node, or, with the hub
    /// away, waits whole in the queue (pending).
    fn order(
        &self,
        session: &mut Session,
        cert: &CardCert,
        card: CardKey,
        pin: Pin,
        action: HolderAction,
    ) -> Outcome {
        let Some(trusted) = self.trusted(cert) else {
            return Outcome::Refused(HolderRefusal::UntrustedCertificate);
        };
        let mut nonce = [0u8; 16];
        if getrandom::fill(&mut nonce).is_err() {
            return Outcome::CardFailed;
        }
        let certificate =
            matches!(action, HolderAction::Register { .. }).then(|| cert.der().to_vec());
        let order = HolderOrder {
            node: self.node.id(),
            card,
            signed_at: crate::net::unix_now(),
            nonce,
            action,
        };
        let proof = match prove_order(session, &trusted, pin, &order) {
            Ok(p) => p,
            Err(e) => return proof_failed(e),
        };
        let req = HolderRequest::Order {
            order,
            proof,
            certificate,
        };
        let at = crate::net::unix_now();
        match holder(&self.dir, &req) {
            Ok(HolderResponse::Done(d)) => Outcome::Done(d, at),
            Ok(HolderResponse::Refused(r)) => Outcome::Refused(r),
            Ok(_) => Outcome::CardFailed,
            // The hub is away (or the answer was lost: sending it again
            // changes nothing at the hub): the order waits, whole.
            Err(e) => {
                if !matches!(e, HolderCallError::Offline) {
                    tracing::warn!("holder order: {e}; queued");
                }
                match self.queue.put(&req) {
                    Ok(()) => {
                        tracing::info!("holder order queued until the hub is reachable");
                        Outcome::Queued(at)
                    }
                    Err(e) => {
                        tracing::warn!("{e}");
                        Outcome::Refused(HolderRefusal::Unavailable)
                    }
                }
            }
        }
    }

    /// The read the screen asked for: online through the running node,
    /// else what the node holds, both behind the card's PIN.
    fn read(&self, session: &mut Session, cert: &CardCert, card: &CardKey, pin: Pin) -> Outcome {
        let Some(trusted) = self.trusted(cert) else {
            return Outcome::Refused(HolderRefusal::BadProof);
        };
        let ask = HolderRequest::Challenge { card: card.clone() };
        let challenge = match holder(&self.dir, &ask) {
            Ok(HolderResponse::Challenge(c)) => c,
            Ok(HolderResponse::Refused(HolderRefusal::UnknownCard)) => {
                return Outcome::NotRegistered;
            }
            Ok(HolderResponse::Refused(r)) => return Outcome::Refused(r),
            Ok(
                HolderResponse::History(_)
                | HolderResponse::Done(_)
                | HolderResponse::MyKeyIdFree(_)
                | HolderResponse::LinkRequests(_)
                | HolderResponse::LinkRequestAnswered(_),
            ) => {
                return Outcome::CardFailed;
            }
            Err(HolderCallError::Offline) => return self.offline(session, cert, card, pin),
            Err(e) => {
                tracing::warn!("holder request: {e}");
                return Outcome::Refused(HolderRefusal::Unavailable);
            }
        };
        let binding = HolderBinding {
            challenge: challenge.clone(),
            action: HolderAction::ReadHistory,
        };
        let proof = match prove_holder(session, &trusted, pin, &binding) {
            Ok(p) => p,
            Err(e) => return proof_failed(e),
        };
        let req = HolderRequest::History {
            challenge,
            proof,
            max_entries: MAX_ENTRIES,
        };
        match holder(&self.dir, &req) {
            Ok(HolderResponse::History(h)) => Outcome::History(Box::new(h)),
            Ok(HolderResponse::Refused(HolderRefusal::UnknownCard)) => Outcome::NotRegistered,
            Ok(HolderResponse::Refused(r)) => Outcome::Refused(r),
            Ok(
                HolderResponse::Challenge(_)
                | HolderResponse::Done(_)
                | HolderResponse::MyKeyIdFree(_)
                | HolderResponse::LinkRequests(_)
                | HolderResponse::LinkRequestAnswered(_),
            ) => Outcome::CardFailed,
            // The link fell between the two requests: the PIN was checked.
            Err(HolderCallError::Offline) => self.offline_figures(card),
            Err(e) => {
                tracing::warn!("holder request: {e}");
                Outcome::Refused(HolderRefusal::Unavailable)
            }
        }
    }

    /// Offline: the card checks the PIN over a challenge of our own, then
    /// the node's figures show.
    fn offline(&self, session: &mut Session, cert: &CardCert, card: &CardKey, pin: Pin) -> Outcome {
        let Ok(challenge) = Challenge::random() else {
            return Outcome::CardFailed;
        };
        match prove(session, cert, pin, challenge) {
            Ok(_) => self.offline_figures(card),
            Err(e) => proof_failed(e),
        }
    }

    fn offline_figures(&self, card: &CardKey) -> Outcome {
        match offline_view(&self.node, card) {
            Ok(Some(v)) => Outcome::Offline(v),
            Ok(None) => Outcome::NotRegistered,
            Err(e) => {
                tracing::warn!("node store: {e}");
                Outcome::Refused(HolderRefusal::Unavailable)
            }
        }
    }
}

fn proof_failed(e: ProveError) -> Outcome {
    match e {
        ProveError::WrongPin { tries_left } => Outcome::WrongPin(tries_left),
        ProveError::Locked => Outcome::Locked,
        e => {
            tracing::warn!("card proof: {e}");
            Outcome::CardFailed
        }
    }
}
