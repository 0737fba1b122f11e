//! `card_answers` and `card_cert`: what a card (or anything on the reader
//! pretending to be one) answers the node, and the certificates it hands
//! over (`mykey_node::card`).
//!
//! `card_answers` input: a flags byte (1: also read the CA certificate and
//! check the chain against it; 2: ask the PIN tries left; 4: make the PIN
//! proof with PIN 1234 and a fixed challenge), then the card's answers in
//! order, each a u16 length and the raw R-APDU; when they run out the card
//! is gone.
//!
//! `card_cert` input: the time of the check (i64 seconds, big-endian), the
//! user-authentication certificate (u16 length, DER), then the CA
//! certificate (DER).
//!
//! `card_proof` input: the card's public key as the hub keeps it (u16
//! length, DER SubjectPublicKeyInfo), then a signed transaction: the hub's
//! check of a redeem's PIN proof (`mykey_jpki::verify_redeem_proof`) over
//! the redeem's binding. A proof that verifies must not verify for the
//! same redeem with another seq or amount.
//!
//! Properties: nothing panics and every failure is an error value with a
//! message; a session sends a bounded number of commands; the APDU log
//! never shows the PIN; a proof is made only for the certificate read, over
//! the node's challenge; a certificate read is never above its cap.

use crate::Input;
use mykey_jpki::verify_redeem_proof;
use mykey_node::card::apdu::{Apdu, Response};
use mykey_node::card::cert::{CardCert, MAX_CERT_BYTES, cert_total_len, rfc3339, verify_chain};
use mykey_node::card::jpki::{self, Challenge};
use mykey_node::card::{CardChannel, Pin, TransmitError};
use mykey_sync_proto::{Points, RedeemBinding, SignedTx, TxBody};

/// The most commands one `card_answers` run may send: two certificate
/// reads (each SELECT, header and at most 16 chunks) and the PIN steps.
const MAX_APDUS: usize = 48;
/// The challenge of the PIN proof.
pub const CHALLENGE: [u8; 32] = [7; 32];
/// The PIN of the PIN proof.
pub const PIN: &str = "1234";

/// A card whose answers come from the input.
struct Scripted<'a> {
    answers: Input<'a>,
    sent: Vec<String>,
}

impl CardChannel for Scripted<'_> {
    fn transmit(&mut self, apdu: &Apdu) -> Result<Response, TransmitError> {
        self.sent.push(apdu.to_string());
        assert!(self.sent.len() <= MAX_APDUS, "a card session is bounded");
        let raw = self.answers.chunk().ok_or(TransmitError::SessionDead)?;
        Response::parse(raw).ok_or(TransmitError::ShortResponse(raw.len()))
    }
}

/// Flags, then the card's answers.
pub fn answers(data: &[u8]) {
    let Some((flags, rest)) = data.split_first() else {
        return;
    };
    let mut card = Scripted {
        answers: Input::new(rest),
        sent: vec![],
    };
    let cert = match jpki::read_auth_cert(&mut card) {
        Ok(cert) => {
            assert!(cert.der().len() <= MAX_CERT_BYTES);
            Some(cert)
        }
        Err(e) => {
            assert!(!e.to_string().is_empty());
            None
        }
    };
    if flags & 1 != 0 {
        match jpki::read_auth_ca_cert_der(&mut card) {
            Ok(der) => {
                assert!(der.len() <= MAX_CERT_BYTES);
                if let Some(cert) = &cert {
                    let now = cert.not_before_unix().saturating_add(1);
                    if let Err(e) = verify_chain(cert, &[der], now) {
                        assert!(!e.to_string().is_empty());
                    }
                }
            }
            Err(e) => assert!(!e.to_string().is_empty()),
        }
    }
    if flags & 2 != 0
        && let Err(e) = jpki::pin_status(&mut card)
    {
        assert!(!e.to_string().is_empty());
    }
    if flags & 4 != 0
        && let Some(cert) = &cert
    {
        let pin = Pin::parse(PIN).expect("a 4-digit PIN");
        match jpki::prove(&mut card, cert, pin, Challenge::from_bytes(CHALLENGE)) {
            Ok(proof) => {
                assert_eq!(proof.card_key(), cert.card_key());
                assert_eq!(proof.challenge().as_bytes(), &CHALLENGE);
                cert.verify_sha256(&proof.challenge().signed_message(), proof.signature())
                    .expect("a proof's signature verifies");
            }
            Err(e) => assert!(!e.to_string().is_empty()),
        }
    }
    for line in &card.sent {
        assert!(
            !line.contains("31 32 33 34"),
            "the APDU log shows no PIN: {line}"
        );
    }
}

/// A time, a certificate and its CA.
pub fn cert(data: &[u8]) {
    let mut input = Input::new(data);
    let (Some(now), Some(leaf)) = (input.u64(), input.chunk()) else {
        return;
    };
    let now = now as i64;
    let ca = input.rest();
    match cert_total_len(leaf) {
        Ok(len) => assert!((4..=MAX_CERT_BYTES).contains(&len)),
        Err(e) => assert!(!e.to_string().is_empty()),
    }
    let _ = rfc3339(now);
    match CardCert::from_der(leaf.to_vec()) {
        Ok(cert) => {
            assert_eq!(cert.der(), leaf);
            let _ = (
                rfc3339(cert.not_before_unix()),
                rfc3339(cert.not_after_unix()),
            );
            let _ = cert.is_valid_at(now);
            let _ = cert.verify_sha256(b"challenge", ca);
            assert!(verify_chain(&cert, &[], now).is_err());
            match verify_chain(&cert, &[ca.to_vec()], now) {
                Ok(ok) => {
                    assert_eq!(ok.ca_index, 0);
                    assert!(cert.is_valid_at(now));
                }
                Err(e) => assert!(!e.to_string().is_empty()),
            }
        }
        Err(e) => assert!(!e.to_string().is_empty()),
    }
}

/// A card's registered public key (u16 length, DER), then a signed
/// transaction whose redeem carries the card proof.
pub fn proof(data: &[u8]) {
    let mut input = Input::new(data);
    let Some(key) = input.chunk() else {
        return;
    };
    let Ok(tx) = SignedTx::from_bytes(input.rest()) else {
        return;
    };
    let Ok(v) = tx.verify() else {
        return;
    };
    let (Some(binding), TxBody::Redeem(redeem)) =
        (RedeemBinding::of(v.payload()), &v.payload().body)
    else {
        return;
    };
    let Some(signature) = &redeem.card_proof else {
        return;
    };
    match verify_redeem_proof(key, &binding, signature) {
        Ok(()) => {
            // The proof is bound to this redeem: no other seq, amount or node.
            let mut other = binding.clone();
            other.seq ^= 1;
            assert!(verify_redeem_proof(key, &other, signature).is_err());
            let mut other = binding.clone();
            other.points = Points::new(binding.points.get() ^ 1).unwrap_or(Points::ZERO);
            assert!(verify_redeem_proof(key, &other, signature).is_err());
        }
        Err(e) => assert!(!e.to_string().is_empty()),
    }
}

/// A `card_proof` input.
pub fn proof_input(public_key_der: &[u8], tx: &SignedTx) -> Vec<u8> {
    let mut out = u16::try_from(public_key_der.len())
        .expect("a short key")
        .to_be_bytes()
        .to_vec();
    out.extend_from_slice(public_key_der);
    out.extend_from_slice(&tx.to_bytes());
    out
}

/// A `card_answers` input.
pub fn answers_input(flags: u8, answers: &[Vec<u8>]) -> Vec<u8> {
    let mut out = vec![flags];
    for a in answers {
        out.extend_from_slice(
            &u16::try_from(a.len())
                .expect("a short answer")
                .to_be_bytes(),
        );
        out.extend_from_slice(a);
    }
    out
}

/// A `card_cert` input.
pub fn cert_input(now: i64, leaf: &[u8], ca: &[u8]) -> Vec<u8> {
    let mut out = now.to_be_bytes().to_vec();
    out.extend_from_slice(
        &u16::try_from(leaf.len())
            .expect("a short cert")
            .to_be_bytes(),
    );
    out.extend_from_slice(leaf);
    out.extend_from_slice(ca);
    out
}
