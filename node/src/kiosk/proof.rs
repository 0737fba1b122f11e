//! What a donation and a voucher issue at the kiosk share on the reader
//! loop's side: the card's certificate checked against the trusted CAs now,
//! and a failed card proof said as the screen's outcome.

use super::screen::Outcome;
use crate::card::cert::{CardCert, TrustedCert, trust};
use crate::card::jpki::ProveError;

/// The card's certificate chained to `trusted_ca` (DER) now, or the
/// refusal the screen shows.
pub(super) fn trusted_now(cert: &CardCert, trusted_ca: &[Vec<u8>]) -> Result<TrustedCert, Outcome> {
    let now_s = i64::try_from(crate::net::unix_now().0 / 1000).unwrap_or(i64::MAX);
    trust(cert.clone(), trusted_ca, now_s).map_err(|_| {
        tracing::warn!("the card's certificate does not chain to a trusted CA (--trusted-ca)");
        Outcome::Refused(mykey_sync_proto::holder::HolderRefusal::UntrustedCertificate)
    })
}

/// What the screen shows for a card proof that failed.
pub(super) fn failed(e: ProveError) -> Outcome {
    match e {
        ProveError::WrongPin { tries_left } => Outcome::WrongPin(tries_left),
        ProveError::Locked => Outcome::Locked,
        e => {
            tracing::warn!("card proof: {e}");
            Outcome::CardFailed
        }
    }
}
