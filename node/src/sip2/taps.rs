//! Taps: the tap loop of each reader the bridge uses, and how a card
//! resolves in the node's store.
//!
//! A reader paired with a machine arms that machine; a token reader shows a
//! one-time token. Both read only the card's user-authentication certificate
//! (its card key and validity), through the same JPKI-only commands as
//! `mykey-node watch`.

use super::core::{Holder, MachineId, Refusal};
use super::server::Handle;
use crate::card::read_auth_cert;
use crate::card::reader::{DEFAULT_APDU_TIMEOUT, Reader};
use crate::node::{Lookup, Node};
use crate::store::StoreError;
use mykey_sync_proto::CardKey;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

/// Where a reader's taps go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TapTarget {
    /// The reader is paired with this machine.
    Machine(MachineId),
    /// The reader shows one-time tokens, good at any machine.
    Token,
}

/// What a card is at this facility: its library card number, or why the
/// bridge refuses it. A registered card with an expired certificate is
/// refused; a confirmed number is preferred to one the hub has not yet
/// confirmed.
pub fn resolve(node: &Node, card: &CardKey, cert_valid: bool) -> Result<Holder, StoreError> {
    Ok(match node.lookup(card)? {
        Lookup::NotRegistered => Holder::Refused(Refusal::Unknown),
        Lookup::Suspended => Holder::Refused(Refusal::Suspended),
        Lookup::Superseded => Holder::Refused(Refusal::Replaced),
        Lookup::Found { .. } | Lookup::Visitor { .. } if !cert_valid => {
            Holder::Refused(Refusal::Expired)
        }
        Lookup::Found { numbers, .. } => patron(&numbers, Refusal::NoLibraryCard),
        // A visitor from another town borrows with this library's card too.
        Lookup::Visitor { numbers, .. } => patron(&numbers, Refusal::Visitor),
    })
}

fn patron(numbers: &[crate::store::NumberRow], none: Refusal) -> Holder {
    let best = numbers
        .iter()
        .find(|n| n.confirmed)
        .or_else(|| numbers.first());
    match best {
        Some(n) => Holder::Patron(n.number.clone()),
        None => Holder::Refused(none),
    }
}

const WAIT_SLICE: Duration = Duration::from_millis(500);
const BACKOFF_FIRST: Duration = Duration::from_millis(250);
const BACKOFF_MAX: Duration = Duration::from_secs(8);

/// Serves taps on `reader` until `stop` is set: waits in pcscd (no
/// polling), reads the card key, hands it to the bridge, waits for the card
/// to leave. Reader trouble is said once and retried with backoff.
pub fn reader_loop(handle: Arc<Handle>, reader: String, target: TapTarget, stop: Arc<AtomicBool>) {
    let mut backoff = BACKOFF_FIRST;
    let mut said: Option<String> = None;
    let say = |said: &mut Option<String>, text: String| {
        if said.as_deref() != Some(text.as_str()) {
            tracing::warn!(reader = %reader, "{text}");
            *said = Some(text);
        }
    };
    let pause = |backoff: &mut Duration| {
        let mut left = *backoff;
        while !left.is_zero() && !stop.load(Ordering::SeqCst) {
            let step = left.min(Duration::from_millis(100));
            std::thread::sleep(step);
            left -= step;
        }
        *backoff = (*backoff * 2).min(BACKOFF_MAX);
    };
    while !stop.load(Ordering::SeqCst) {
        let pcsc = match Reader::establish() {
            Ok(r) => r,
            Err(e) => {
                say(
                    &mut said,
                    format!("{e}; the SIP2 bridge keeps serving scanned library cards and retries"),
                );
                pause(&mut backoff);
                continue;
            }
        };
        loop {
            if stop.load(Ordering::SeqCst) {
                return;
            }
            match pcsc.wait_for_card(&reader, true, WAIT_SLICE) {
                Ok(false) => backoff = BACKOFF_FIRST,
                Ok(true) => {
                    said = None;
                    tap(&handle, &pcsc, &reader, target);
                    // The same card must leave before the next tap counts.
                    while !stop.load(Ordering::SeqCst) {
                        match pcsc.wait_for_card(&reader, false, WAIT_SLICE) {
                            Ok(true) | Err(_) => break,
                            Ok(false) => {}
                        }
                    }
                }
                Err(e) => {
                    say(&mut said, format!("reader {reader}: {e}"));
                    pause(&mut backoff);
                    break;
                }
            }
        }
    }
}

fn tap(handle: &Handle, pcsc: &Reader, reader: &str, target: TapTarget) {
    let mut session = match pcsc.connect(reader, DEFAULT_APDU_TIMEOUT) {
        Ok(s) => s,
        Err(e) => return handle.say(&format!("card not read: {e}")),
    };
    let cert = match read_auth_cert(&mut session) {
        Ok(c) => c,
        Err(e) => return handle.say(&format!("card not read: {e}")),
    };
    let now_unix = mykey_net::unix_now_secs();
    if let Err(e) = handle.tap_card(target, cert.card_key(), cert.is_valid_at(now_unix)) {
        handle.say(&format!("node error, tap not served: {e}"));
    }
}
