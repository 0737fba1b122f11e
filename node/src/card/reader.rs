//! PC/SC access: the pcscd context, readers, waiting for a card, and a card
//! session that sends [`Apdu`]s with a deadline.
//!
//! Timeouts: pcsc-lite's `SCardTransmit` has no timeout of its own and blocks
//! for as long as the reader driver does (a card that stops answering can
//! hang it for good). So each [`Session`] owns a worker thread that owns the
//! `pcsc::Card`; [`Session::transmit`] hands it the command and waits on a
//! channel with `recv_timeout`. On a deadline the session is marked dead and
//! the worker is abandoned: it ends by itself when pcscd finally returns, and
//! the node carries on. Waiting for a card uses `SCardGetStatusChange` with a
//! timeout, which blocks in pcscd rather than polling.

use std::ffi::CString;
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use pcsc::{Context, Protocols, ReaderState, Scope, ShareMode, State};
use zeroize::Zeroizing;

use super::apdu::{Apdu, Response};

/// Default deadline for one APDU. Signing on a real card over a contactless
/// reader takes up to about a second; five leaves room without letting a dead
/// card stall the counter for long.
pub const DEFAULT_APDU_TIMEOUT: Duration = Duration::from_secs(5);

/// How long to wait for pcscd to confirm a removal after an ambiguous
/// failure. pcscd polls presence every 400 ms.
const REMOVAL_CHECK: Duration = Duration::from_millis(1000);

/// Opening pcscd or finding a reader failed.
#[derive(Debug, thiserror::Error)]
pub enum ReaderError {
    /// pcscd is not running.
    #[error(
        "the smart card service (pcscd) is not running: start it (e.g. scripts/pcsc-up.sh or `pcscd`) and try again"
    )]
    NoService(#[source] pcsc::Error),
    /// No reader is connected.
    #[error("no card reader is connected: plug in a reader and try again")]
    NoReader,
    /// The reader asked for is not connected.
    #[error(
        "card reader {name:?} is not connected (connected: {available}): check the cable or the --reader name"
    )]
    ReaderNotFound {
        /// The name asked for.
        name: String,
        /// The readers that are connected, comma-separated.
        available: String,
    },
    /// Any other PC/SC failure.
    #[error("the smart card service failed: {0}; restart pcscd if this persists")]
    Pcsc(#[source] pcsc::Error),
}

/// Waiting for a card on a reader failed.
#[derive(Debug, thiserror::Error)]
pub enum WaitError {
    /// pcscd is not running or stopped while waiting.
    #[error(
        "the smart card service (pcscd) stopped: start it again; the node keeps waiting for it"
    )]
    NoService(#[source] pcsc::Error),
    /// The reader was unplugged or is unknown.
    #[error("card reader {0:?} was unplugged: plug it back in")]
    ReaderUnplugged(String),
    /// Any other PC/SC failure.
    #[error("waiting for a card failed: {0}; restart pcscd if this persists")]
    Pcsc(#[source] pcsc::Error),
}

/// Connecting to the card on a reader failed.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    /// pcscd is not running.
    #[error("the smart card service (pcscd) is not running: start it and tap again")]
    NoService(#[source] pcsc::Error),
    /// The card left before the connection was made.
    #[error(
        "no card on the reader (it may have been removed): tap the card again and hold it still"
    )]
    NoCard(#[source] pcsc::Error),
    /// The reader was unplugged.
    #[error("the card reader was unplugged: plug it back in and tap again")]
    ReaderUnplugged(#[source] pcsc::Error),
    /// The card gives no usable answer to reset.
    #[error(
        "the card does not respond: it may be damaged, or not a smart card; try again or use another card"
    )]
    Unresponsive(#[source] pcsc::Error),
    /// The worker thread for the session could not start.
    #[error("could not start the card session thread: the system is short of resources")]
    Thread(#[source] std::io::Error),
    /// Any other PC/SC failure.
    #[error("connecting to the card failed: {0}; tap again, or restart pcscd if this persists")]
    Pcsc(#[source] pcsc::Error),
}

/// Sending one APDU failed. Which command it was is in the error of the
/// operation that wraps this.
#[derive(Debug, thiserror::Error)]
pub enum TransmitError {
    /// pcscd stopped.
    #[error("the smart card service (pcscd) stopped: start it again and tap again")]
    NoService(#[source] pcsc::Error),
    /// The card was removed (or reset) while it was being read.
    #[error(
        "the card was removed while it was being read: tap it again and hold it still until it is done"
    )]
    CardRemoved(#[source] Option<pcsc::Error>),
    /// The reader was unplugged.
    #[error(
        "the card reader was unplugged while the card was being read: plug it back in and tap again"
    )]
    ReaderUnplugged(#[source] pcsc::Error),
    /// No answer within the deadline.
    #[error("the card did not answer within {} ms: take it off the reader and tap again", timeout.as_millis())]
    Timeout {
        /// The deadline that passed.
        timeout: Duration,
    },
    /// An earlier command timed out; this session cannot be used any more.
    #[error(
        "the card stopped answering earlier in this session: take it off the reader and tap again"
    )]
    SessionDead,
    /// The answer was shorter than a status word.
    #[error("the card's answer was malformed ({0} bytes): tap again")]
    ShortResponse(usize),
    /// Any other PC/SC failure.
    #[error("talking to the card failed: {0}; tap again")]
    Pcsc(#[source] pcsc::Error),
}

/// Something that carries allow-listed APDUs to a card: a PC/SC [`Session`],
/// or a fake card in unit tests.
pub trait CardChannel {
    /// Sends one command and returns the card's answer.
    fn transmit(&mut self, apdu: &Apdu) -> Result<Response, TransmitError>;
}

/// A connection to pcscd.
pub struct Reader {
    ctx: Context,
}

impl Reader {
    /// Connects to pcscd.
    pub fn establish() -> Result<Self, ReaderError> {
        let ctx = Context::establish(Scope::User).map_err(|e| match e {
            pcsc::Error::NoService | pcsc::Error::ServiceStopped => ReaderError::NoService(e),
            e => ReaderError::Pcsc(e),
        })?;
        Ok(Reader { ctx })
    }

    /// Names of the connected readers (may be empty).
    pub fn list(&self) -> Result<Vec<String>, ReaderError> {
        match self.ctx.list_readers_owned() {
            Ok(names) => Ok(names
                .into_iter()
                .map(|n| n.to_string_lossy().into_owned())
                .collect()),
            Err(pcsc::Error::NoReadersAvailable) => Ok(Vec::new()),
            Err(e @ (pcsc::Error::NoService | pcsc::Error::ServiceStopped)) => {
                Err(ReaderError::NoService(e))
            }
            Err(e) => Err(ReaderError::Pcsc(e)),
        }
    }

    /// The reader called `name`, or the first one if `name` is `None`.
    pub fn pick(&self, name: Option<&str>) -> Result<String, ReaderError> {
        let readers = self.list()?;
        match name {
            None => readers.into_iter().next().ok_or(ReaderError::NoReader),
            Some(name) if readers.iter().any(|r| r == name) => Ok(name.to_owned()),
            Some(_) if readers.is_empty() => Err(ReaderError::NoReader),
            Some(name) => Err(ReaderError::ReaderNotFound {
                name: name.to_owned(),
                available: readers.join(", "),
            }),
        }
    }

    /// Blocks in pcscd until a card is on `reader` (`present`) or off it
    /// (`!present`), or `timeout` passes. Returns whether the wanted state was reached.
    pub fn wait_for_card(
        &self,
        reader: &str,
        present: bool,
        timeout: Duration,
    ) -> Result<bool, WaitError> {
        wait_for_state(&self.ctx, reader, present, timeout)
    }

    /// Connects to the card on `reader` (shared mode, T=0 or T=1). Each APDU
    /// of the session gets `apdu_timeout`.
    pub fn connect(&self, reader: &str, apdu_timeout: Duration) -> Result<Session, ConnectError> {
        let name = CString::new(reader)
            .map_err(|_| ConnectError::ReaderUnplugged(pcsc::Error::UnknownReader))?;
        let card = self
            .ctx
            .connect(&name, ShareMode::Shared, Protocols::ANY)
            .map_err(|e| match e {
                pcsc::Error::NoService | pcsc::Error::ServiceStopped => ConnectError::NoService(e),
                pcsc::Error::NoSmartcard | pcsc::Error::RemovedCard | pcsc::Error::ResetCard => {
                    ConnectError::NoCard(e)
                }
                pcsc::Error::UnknownReader | pcsc::Error::ReaderUnavailable => {
                    ConnectError::ReaderUnplugged(e)
                }
                pcsc::Error::UnresponsiveCard
                | pcsc::Error::UnpoweredCard
                | pcsc::Error::InvalidAtr
                | pcsc::Error::ProtoMismatch => ConnectError::Unresponsive(e),
                e => ConnectError::Pcsc(e),
            })?;
        Session::start(card, self.ctx.clone(), reader.to_owned(), apdu_timeout)
    }
}

/// Blocks in pcscd until the card is on (`present`) or off `reader`, or `timeout` passes.
fn wait_for_state(
    ctx: &Context,
    reader: &str,
    present: bool,
    timeout: Duration,
) -> Result<bool, WaitError> {
    let unplugged = || WaitError::ReaderUnplugged(reader.to_owned());
    let name = CString::new(reader).map_err(|_| unplugged())?;
    let mut states = [ReaderState::new(name, State::UNAWARE)];
    let deadline = Instant::now() + timeout;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match ctx.get_status_change(left, &mut states) {
            Ok(()) => {}
            Err(pcsc::Error::Timeout) => return Ok(false),
            Err(pcsc::Error::UnknownReader | pcsc::Error::ReaderUnavailable) => {
                return Err(unplugged());
            }
            Err(e @ (pcsc::Error::NoService | pcsc::Error::ServiceStopped)) => {
                return Err(WaitError::NoService(e));
            }
            Err(e) => return Err(WaitError::Pcsc(e)),
        }
        let state = states[0].event_state();
        if state.intersects(State::UNKNOWN | State::UNAVAILABLE | State::IGNORE) {
            return Err(unplugged());
        }
        // MUTE: a card is there but gave no ATR; treat as absent so the
        // caller keeps waiting instead of failing on connect.
        let is_present = state.contains(State::PRESENT) && !state.contains(State::MUTE);
        if is_present == present {
            return Ok(true);
        }
        if left.is_zero() {
            return Ok(false);
        }
        states[0].sync_current_state();
    }
}

enum Job {
    Transmit(Zeroizing<Vec<u8>>),
    /// Disconnect; reset the card if a PIN was verified in this session.
    Close {
        reset: bool,
    },
}
type Answer = Result<Vec<u8>, pcsc::Error>;

/// A connection to one card. Dropping it disconnects.
pub struct Session {
    jobs: Option<mpsc::Sender<Job>>,
    answers: mpsc::Receiver<Answer>,
    apdu_timeout: Duration,
    dead: bool,
    pin_verified: bool,
    worker: Option<thread::JoinHandle<()>>,
    ctx: Context,
    reader: String,
}

impl Session {
    fn start(
        card: pcsc::Card,
        ctx: Context,
        reader: String,
        apdu_timeout: Duration,
    ) -> Result<Self, ConnectError> {
        let (jobs, job_rx) = mpsc::channel::<Job>();
        let (answer_tx, answers) = mpsc::channel::<Answer>();
        let worker = thread::Builder::new()
            .name("card-transmit".into())
            .spawn(move || {
                let mut buf = [0u8; pcsc::MAX_BUFFER_SIZE_EXTENDED];
                let mut reset = false;
                for job in job_rx {
                    match job {
                        Job::Transmit(apdu) => {
                            let answer = card.transmit(&apdu, &mut buf).map(<[u8]>::to_vec);
                            drop(apdu);
                            if answer_tx.send(answer).is_err() {
                                break;
                            }
                        }
                        Job::Close { reset: r } => {
                            reset = r;
                            break;
                        }
                    }
                }
                // Reset only after a VERIFY, so the card does not stay
                // unlocked for the next application; otherwise leave it, which
                // spares a reset per tap and, when the card is already gone,
                // a failed reset that leaves pcscd's reader state stale.
                let disposition = if reset {
                    pcsc::Disposition::ResetCard
                } else {
                    pcsc::Disposition::LeaveCard
                };
                let _ = card.disconnect(disposition);
            })
            .map_err(ConnectError::Thread)?;
        Ok(Session {
            jobs: Some(jobs),
            answers,
            apdu_timeout,
            dead: false,
            pin_verified: false,
            worker: Some(worker),
            ctx,
            reader,
        })
    }

    /// The deadline each APDU gets.
    pub fn apdu_timeout(&self) -> Duration {
        self.apdu_timeout
    }

    /// Whether pcscd sees the card leave within [`REMOVAL_CHECK`]. Some
    /// drivers (vpcd among them) answer a command cut short by removal with an
    /// empty response or a generic I/O error rather than "removed"; pcscd's
    /// reader state tells the two apart.
    fn card_gone(&self) -> bool {
        wait_for_state(&self.ctx, &self.reader, false, REMOVAL_CHECK).unwrap_or(false)
    }
}

impl CardChannel for Session {
    fn transmit(&mut self, apdu: &Apdu) -> Result<Response, TransmitError> {
        if self.dead {
            return Err(TransmitError::SessionDead);
        }
        // The one place bytes leave for the card: log every command, PIN redacted.
        tracing::debug!(apdu = %apdu, cmd = apdu.name(), "card <-");
        let started = Instant::now();
        let jobs = self.jobs.as_ref().ok_or(TransmitError::SessionDead)?;
        if let Apdu::VerifyPin(_) = apdu {
            self.pin_verified = true;
        }
        if jobs.send(Job::Transmit(apdu.encode())).is_err() {
            self.dead = true;
            return Err(TransmitError::SessionDead);
        }
        let raw = match self.answers.recv_timeout(self.apdu_timeout) {
            Ok(Ok(raw)) => raw,
            Ok(Err(e)) => {
                return Err(match map_transmit_error(e) {
                    TransmitError::Pcsc(e) if self.card_gone() => {
                        TransmitError::CardRemoved(Some(e))
                    }
                    other => other,
                });
            }
            Err(mpsc::RecvTimeoutError::Timeout) => {
                self.dead = true;
                tracing::warn!(
                    cmd = apdu.name(),
                    timeout_ms = self.apdu_timeout.as_millis() as u64,
                    "card did not answer"
                );
                return Err(TransmitError::Timeout {
                    timeout: self.apdu_timeout,
                });
            }
            Err(mpsc::RecvTimeoutError::Disconnected) => {
                self.dead = true;
                return Err(TransmitError::SessionDead);
            }
        };
        let Some(response) = Response::parse(&raw) else {
            return Err(if self.card_gone() {
                TransmitError::CardRemoved(None)
            } else {
                TransmitError::ShortResponse(raw.len())
            });
        };
        tracing::debug!(
            sw = %response.sw,
            len = response.data.len(),
            us = started.elapsed().as_micros() as u64,
            "card ->"
        );
        Ok(response)
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        if let Some(jobs) = self.jobs.take() {
            let _ = jobs.send(Job::Close {
                reset: self.pin_verified,
            });
        }
        if let Some(worker) = self.worker.take() {
            // A worker stuck in SCardTransmit would block the join: leave it.
            if !self.dead {
                let _ = worker.join();
            }
        }
    }
}

fn map_transmit_error(e: pcsc::Error) -> TransmitError {
    match e {
        pcsc::Error::NoService | pcsc::Error::ServiceStopped => TransmitError::NoService(e),
        pcsc::Error::RemovedCard
        | pcsc::Error::ResetCard
        | pcsc::Error::NoSmartcard
        | pcsc::Error::UnpoweredCard => TransmitError::CardRemoved(Some(e)),
        pcsc::Error::UnknownReader | pcsc::Error::ReaderUnavailable => {
            TransmitError::ReaderUnplugged(e)
        }
        e => TransmitError::Pcsc(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pcsc_errors_map_to_what_the_holder_can_do() {
        assert!(matches!(
            map_transmit_error(pcsc::Error::RemovedCard),
            TransmitError::CardRemoved(_)
        ));
        assert!(matches!(
            map_transmit_error(pcsc::Error::ResetCard),
            TransmitError::CardRemoved(_)
        ));
        assert!(matches!(
            map_transmit_error(pcsc::Error::NoService),
            TransmitError::NoService(_)
        ));
        assert!(matches!(
            map_transmit_error(pcsc::Error::ReaderUnavailable),
            TransmitError::ReaderUnplugged(_)
        ));
        assert!(matches!(
            map_transmit_error(pcsc::Error::CommError),
            TransmitError::Pcsc(_)
        ));
    }
}
