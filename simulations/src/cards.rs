//! Holders' My Number cards: a virtual JPKI card per holder
//! (`mykey_testcard::TestCard`) behind the node's `CardChannel`, so a spend
//! above the PIN threshold runs the node's real card path: the certificate
//! read over APDUs, the chain check against the test CA (`trust`), the PIN
//! and the card's signature over the redeem's binding (`prove_redeem`).
//!
//! Keys: RSA key generation is the slow part (a large share of a second per
//! key in release), and certificates cost one CA signature each. So the
//! process makes three keys once, from fixed seeds (the same on every
//! machine): the test CA's, one card key that every holder's card shares,
//! and the lying node's own card key (a genuine card of another person, for
//! forged proofs). Each holder's card has its own certificate and serial,
//! so its card key (issuer, serial) is its own; certificates are made when a
//! card is first read and kept for the process, since they depend on
//! nothing but the holder and the card generation. A shared card key is
//! enough here because a proof binds the card key: a signature made for one
//! holder's redeem does not verify for another's, whichever key made it.
//! What the sharing does hide (a genuine card of holder A signing a binding
//! that names holder B) is tried with the liar's own, distinct key.

use mykey_node::card::apdu::{Apdu, Response};
use mykey_node::card::{CardChannel, TransmitError};
use mykey_sync_proto::CardKey;
use mykey_testcard::{TestCa, TestCard, key_from_seed};
use rsa::RsaPrivateKey;
use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};

/// The test CA's validity starts a year before the simulation's epoch and
/// lasts ten years; cards are valid five years from a month before.
const YEAR_S: i64 = 365 * 86_400;

/// The card material of the process: the CA, the card keys, the
/// certificates made so far.
pub struct CardKit {
    ca: TestCa,
    holder_key: RsaPrivateKey,
    holder_public_der: Vec<u8>,
    liar_key: RsaPrivateKey,
    epoch_s: i64,
    certs: Mutex<CertCache>,
}

/// Certificates by (holder, card generation).
type CertCache = HashMap<(usize, usize), Arc<Vec<u8>>>;

static KIT: OnceLock<Result<CardKit, String>> = OnceLock::new();

/// The process's card kit (made on first use: three RSA keys).
pub fn kit() -> Result<&'static CardKit, String> {
    KIT.get_or_init(|| CardKit::new().map_err(|e| format!("{e:#}")))
        .as_ref()
        .map_err(Clone::clone)
}

impl CardKit {
    fn new() -> anyhow::Result<CardKit> {
        let epoch_s = (crate::clock::EPOCH_MS / 1000) as i64;
        let ca = TestCa::new(
            key_from_seed(*b"mykey-sim test JPKI auth CA key.")?,
            "MyKey Sim JPKI User Authentication CA",
            epoch_s - YEAR_S,
            epoch_s + 10 * YEAR_S,
        )?;
        let holder_key = key_from_seed(*b"mykey-sim holders' card key.....")?;
        let liar_key = key_from_seed(*b"mykey-sim the liar's own card...")?;
        let holder_public_der = {
            use rsa::pkcs8::EncodePublicKey;
            rsa::RsaPublicKey::from(&holder_key)
                .to_public_key_der()?
                .as_bytes()
                .to_vec()
        };
        Ok(CardKit {
            ca,
            holder_key,
            holder_public_der,
            liar_key,
            epoch_s,
            certs: Mutex::new(HashMap::new()),
        })
    }

    /// The trusted JPKI CA certificates (what nodes and the hub trust).
    pub fn trusted_cas(&self) -> Vec<Vec<u8>> {
        vec![self.ca.cert_der().to_vec()]
    }

    /// Holder `h`'s card of generation `g` (0: the first; renewals count
    /// up): its key (issuer, serial), as the certificate names it. The
    /// serial starts with 0x01, so its DER content is these very bytes.
    pub fn card_key(&self, h: usize, g: usize) -> anyhow::Result<CardKey> {
        Ok(CardKey::new(self.ca.name_der().to_vec(), serial(h, g))?)
    }

    /// Holder `h`'s certificate of generation `g` (DER), made once per process.
    pub fn cert(&self, h: usize, g: usize) -> anyhow::Result<Arc<Vec<u8>>> {
        let mut certs = self.certs.lock().map_err(|_| {
            anyhow::anyhow!("a simulation thread panicked holding the certificates")
        })?;
        if let Some(c) = certs.get(&(h, g)) {
            return Ok(c.clone());
        }
        let der = Arc::new(self.ca.issue(
            &serial(h, g),
            &rsa::RsaPublicKey::from(&self.holder_key),
            self.epoch_s - 30 * 86_400,
            self.epoch_s + 5 * YEAR_S,
        )?);
        certs.insert((h, g), der.clone());
        Ok(der)
    }

    /// Holder `h`'s certificate of generation `g`, parsed and chained to the
    /// CA (what registration and renewal at the hub take).
    pub fn trusted_cert(&self, h: usize, g: usize) -> anyhow::Result<mykey_jpki::TrustedCert> {
        let cert = mykey_jpki::CardCert::from_der(self.cert(h, g)?.as_ref().clone())?;
        Ok(mykey_jpki::trust(cert, &self.trusted_cas(), self.epoch_s)?)
    }

    /// Holder `h`'s card of generation `g` with `tries` PIN tries left.
    pub fn card(&self, h: usize, g: usize, tries: u8) -> anyhow::Result<TestCard> {
        Ok(TestCard::new(
            self.cert(h, g)?.as_ref().clone(),
            self.ca.cert_der().to_vec(),
            self.holder_key.clone(),
            pin(h),
        )
        .with_tries(tries))
    }

    /// The public key (DER SubjectPublicKeyInfo) of every holder's card:
    /// what the hub keeps from the certificate and checks proofs with.
    pub fn holder_public_key_der(&self) -> &[u8] {
        &self.holder_public_der
    }

    /// The liar's own genuine card key (another person's card), which signs
    /// forged proofs.
    pub fn liar_card_key(&self) -> &RsaPrivateKey {
        &self.liar_key
    }
}

/// Holder `h`'s 4-digit PIN.
pub fn pin(h: usize) -> [u8; 4] {
    let n = (h * 7919 + 1234) % 10_000;
    let s = format!("{n:04}");
    let mut out = [0u8; 4];
    out.copy_from_slice(s.as_bytes());
    out
}

/// A 4-digit PIN that is not holder `h`'s.
pub fn wrong_pin(h: usize) -> [u8; 4] {
    let mut p = pin(h);
    p[3] = if p[3] == b'9' { b'0' } else { p[3] + 1 };
    p
}

fn serial(h: usize, g: usize) -> Vec<u8> {
    let mut s = vec![0x01];
    s.extend((h as u64 + 1).to_be_bytes());
    s.extend((g as u32).to_be_bytes());
    s
}

/// A card on the counter's reader, in process: the node's APDUs in their
/// real encoding, the card's raw answer through the real response parser.
pub struct OnReader<'a>(pub &'a mut TestCard);

impl CardChannel for OnReader<'_> {
    fn transmit(&mut self, apdu: &Apdu) -> Result<Response, TransmitError> {
        let raw = self.0.answer(&apdu.encode());
        Response::parse(&raw).ok_or(TransmitError::ShortResponse(raw.len()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_card_read_over_apdus_has_the_key_the_world_registers() {
        let kit = kit().expect("kit");
        let mut card = kit.card(4, 1, 3).expect("card");
        let cert = mykey_node::card::read_auth_cert(&mut OnReader(&mut card)).expect("read");
        assert_eq!(cert.card_key(), &kit.card_key(4, 1).expect("key"));
        assert_eq!(cert.public_key_der(), kit.holder_public_key_der());
        let now = kit.epoch_s;
        mykey_node::card::trust(cert, &kit.trusted_cas(), now).expect("chains to the CA");
        assert_ne!(pin(4), wrong_pin(4));
    }
}
