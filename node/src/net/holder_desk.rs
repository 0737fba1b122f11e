//! The way from the node's loopback page to the hub for a card holder's
//! own request (issue 19): `mykey-node run` owns the one hub link (the hub
//! keeps one session per node key), so whoever serves the holder (the
//! status page's `POST /holder`, a kiosk) hands the request to the running
//! loop through a [`HolderDesk`], and the loop sends it over that link
//! beside the session and hands back the hub's answer.
//!
//! Bounded: at most [`MAX_WAITING`] requests queue for the loop and at most
//! [`MAX_IN_FLIGHT`] travel at once; past either the answer is
//! [`DeskError::Busy`]. With the link down it is [`DeskError::Offline`] at
//! once, so a kiosk shows what the node holds instead of waiting.

use mykey_sync_proto::holder::{HolderRequest, HolderResponse};
use tokio::sync::{mpsc, oneshot};

/// Requests waiting for the loop.
pub const MAX_WAITING: usize = 8;
/// Requests travelling to the hub at once.
pub const MAX_IN_FLIGHT: usize = 4;

/// Why a holder request got no answer from the hub.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum DeskError {
    /// The node has no open session with the hub.
    #[error("the hub is not reachable from this node just now")]
    Offline,
    /// Too many holder requests at once.
    #[error("too many holder requests at once: try again in a moment")]
    Busy,
    /// The hub's answer was not a holder answer (an older hub, or the
    /// session ended meanwhile).
    #[error("the hub did not answer the holder request: try again")]
    NoAnswer,
}

/// One request and where its answer goes.
#[derive(Debug)]
pub struct Ask {
    /// The request.
    pub req: HolderRequest,
    /// Where the answer goes.
    pub reply: oneshot::Sender<Result<HolderResponse, DeskError>>,
}

/// The handle the page side holds (cheap to clone).
#[derive(Clone, Debug)]
pub struct HolderDesk {
    tx: mpsc::Sender<Ask>,
}

impl HolderDesk {
    /// A desk and the receiver the running loop takes asks from.
    pub fn new() -> (HolderDesk, mpsc::Receiver<Ask>) {
        let (tx, rx) = mpsc::channel(MAX_WAITING);
        (HolderDesk { tx }, rx)
    }

    /// Sends `req` to the hub through the running loop and waits for its answer.
    pub async fn ask(&self, req: HolderRequest) -> Result<HolderResponse, DeskError> {
        let (reply, answer) = oneshot::channel();
        match self.tx.try_send(Ask { req, reply }) {
            Ok(()) => {}
            Err(mpsc::error::TrySendError::Full(_)) => return Err(DeskError::Busy),
            Err(mpsc::error::TrySendError::Closed(_)) => return Err(DeskError::Offline),
        }
        // A dropped sender: the link went down with the request in flight.
        answer.await.unwrap_or(Err(DeskError::Offline))
    }
}
