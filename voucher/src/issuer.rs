//! Who signed a voucher: the hub (a municipality's printed batch) or a node
//! the hub vouches for (a holder's points turned into vouchers at a kiosk,
//! issue 17 part 1(a)).
//!
//! The serial says which. Hub batches count up from 1 and stay below
//! [`NODE_BATCH_FLAG`]; a node-issued batch number has that bit set, the
//! issuer number the hub gave the node in the next 15 bits and the node's
//! own batch counter in the low 16 bits ([`Issuer::node_batch`]). So a
//! serial stays unique across every issuer without the voucher growing: a
//! shop verifying offline looks the issuer number up in the hub-signed
//! statements it holds (`FactBody::VoucherIssuer`, replicated like the
//! redeemed bitmaps) to find the node's key.
//!
//! Why not carry the hub's certificate of the node's key in the code: a
//! certificate is at least the node's 32-byte key and the hub's 64-byte
//! signature, 96 bytes more than the 81 a voucher has, and 199 digits
//! (QR version 5 at level M, 22 mm printed) is the budget; a larger code
//! would no longer fit a receipt or read from a phone's photo as well.

use crate::body::{SignedVoucher, VerifiedVoucher, VerifyError};
use ed25519_dalek::VerifyingKey;
use std::fmt;

/// The bit of a batch number that marks a node-issued batch.
pub const NODE_BATCH_FLAG: u32 = 1 << 31;
/// Most issuer numbers the hub gives out (15 bits).
pub const MAX_ISSUER: u16 = (1 << 15) - 1;

/// Who signed a voucher, read from its batch number.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Issuer {
    /// The hub's own batch.
    Hub,
    /// A node the hub vouched for under `issuer`; `batch` is the node's own
    /// counter.
    Node {
        /// The issuer number the hub gave the node (from 1).
        issuer: u16,
        /// The node's batch (from 1).
        batch: u16,
    },
}

impl Issuer {
    /// Who issued batch `batch`.
    pub fn of_batch(batch: u32) -> Issuer {
        if batch & NODE_BATCH_FLAG == 0 {
            return Issuer::Hub;
        }
        // 15 bits and 16 bits: both fit.
        Issuer::Node {
            issuer: ((batch >> 16) & u32::from(MAX_ISSUER)) as u16,
            batch: (batch & 0xFFFF) as u16,
        }
    }

    /// The batch number of a node-issued batch; `None` for an issuer
    /// number out of range.
    pub fn node_batch(issuer: u16, batch: u16) -> Option<u32> {
        (issuer <= MAX_ISSUER)
            .then(|| NODE_BATCH_FLAG | (u32::from(issuer) << 16) | u32::from(batch))
    }
}

impl fmt::Display for Issuer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Issuer::Hub => f.write_str("the hub"),
            Issuer::Node { issuer, .. } => write!(f, "kiosk issuer {issuer}"),
        }
    }
}

/// What a verifier holds of a node issuer: its key, and whether the hub
/// withdrew it (a revoked node, or one no longer allowed to issue).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct VouchedIssuer {
    /// The node's key.
    pub key: VerifyingKey,
    /// The hub withdrew it.
    pub withdrawn: bool,
}

/// Why a voucher's issuer did not check out.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IssuerError {
    /// No hub statement names the issuer number.
    #[error(
        "this voucher names kiosk issuer {0}, which the hub never vouched for here: refuse it (if the kiosk is new, let this node reach the hub once, then scan it again)"
    )]
    Unknown(u16),
    /// The hub withdrew the issuer.
    #[error(
        "this voucher was issued by kiosk issuer {0}, which the hub withdrew (a revoked or retired node): refuse it and send the holder to the municipality"
    )]
    Withdrawn(u16),
    /// The signature does not hold.
    #[error(transparent)]
    Signature(#[from] VerifyError),
}

impl SignedVoucher {
    /// Who issued it, by its serial.
    pub fn issuer(&self) -> Issuer {
        Issuer::of_batch(self.body.serial.batch)
    }

    /// Verifies with the key of whoever its serial names: the hub's, or a
    /// node's the hub vouched for (`node` looks an issuer number up in what
    /// the verifier holds). The only way to a [`VerifiedVoucher`] for a
    /// voucher that may be node-issued.
    pub fn verify_issued(
        &self,
        hub: &VerifyingKey,
        node: impl FnOnce(u16) -> Option<VouchedIssuer>,
    ) -> Result<VerifiedVoucher, IssuerError> {
        match self.issuer() {
            Issuer::Hub => Ok(self.verify(hub)?),
            Issuer::Node { issuer, .. } => {
                let v = node(issuer).ok_or(IssuerError::Unknown(issuer))?;
                if v.withdrawn {
                    return Err(IssuerError::Withdrawn(issuer));
                }
                // Another key than the one the hub vouched for: forged.
                self.verify(&v.key)
                    .map_err(|_| VerifyError::Signature.into())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{ExpiryDate, Serial, VoucherBody};
    use ed25519_dalek::SigningKey;
    use mykey_sync_proto::ids::MunicipalityCode;

    fn body(batch: u32) -> VoucherBody {
        VoucherBody {
            key_hint: 0,
            municipality: MunicipalityCode::parse("131059").unwrap(),
            serial: Serial { batch, index: 1 },
            points: 500,
            expires: ExpiryDate::from_days(100),
        }
    }

    #[test]
    fn batch_numbers_name_their_issuer() {
        assert_eq!(Issuer::of_batch(1), Issuer::Hub);
        assert_eq!(Issuer::of_batch(NODE_BATCH_FLAG - 1), Issuer::Hub);
        for (issuer, batch) in [(1, 1), (MAX_ISSUER, u16::MAX), (7, 0)] {
            let n = Issuer::node_batch(issuer, batch).unwrap();
            assert_eq!(Issuer::of_batch(n), Issuer::Node { issuer, batch });
        }
        assert_eq!(Issuer::node_batch(MAX_ISSUER + 1, 1), None);
    }

    #[test]
    fn a_node_issued_voucher_verifies_only_with_its_vouched_key() {
        let hub = SigningKey::from_bytes(&[1; 32]);
        let kiosk = SigningKey::from_bytes(&[2; 32]);
        let forger = SigningKey::from_bytes(&[3; 32]);
        let n = Issuer::node_batch(4, 1).unwrap();
        let kiosk_key = kiosk.verifying_key();
        let vouched = |withdrawn| {
            move |i: u16| {
                (i == 4).then_some(VouchedIssuer {
                    key: kiosk_key,
                    withdrawn,
                })
            }
        };
        let hub_key = hub.verifying_key();
        let v = body(n).sign(&kiosk);
        assert!(v.verify_issued(&hub_key, vouched(false)).is_ok());
        assert_eq!(
            v.verify_issued(&hub_key, vouched(true)),
            Err(IssuerError::Withdrawn(4))
        );
        assert_eq!(
            v.verify_issued(&hub_key, |_| None),
            Err(IssuerError::Unknown(4))
        );
        // A key the hub never vouched for, claiming issuer 4.
        let forged = body(n).sign(&forger);
        assert!(matches!(
            forged.verify_issued(&hub_key, vouched(false)),
            Err(IssuerError::Signature(_))
        ));
        // The hub's key does not stand in for a node's, nor a node's for the hub's.
        assert!(
            body(n)
                .sign(&hub)
                .verify_issued(&hub_key, vouched(false))
                .is_err()
        );
        assert!(
            body(1)
                .sign(&kiosk)
                .verify_issued(&hub_key, vouched(false))
                .is_err()
        );
        assert!(body(1).sign(&hub).verify_issued(&hub_key, |_| None).is_ok());
    }
}
