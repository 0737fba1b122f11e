//! JPKI operations over a [`CardChannel`]: recognise the card, read the
//! user-authentication certificate, query PIN tries, and the card proof.
//!
//! The only proof of possession is a [`CardProof`], which only [`prove`] makes,
//! and only after the signature verified against the certificate's key.

use sha2::{Digest, Sha256};

use super::apdu::{Apdu, DigestInfo, Ef, Pin, ReadRange, Response, Status, StatusWord};
use super::cert::TrustedCert;
use super::cert::{CardCert, CertHeaderError, CertParseError, MAX_CERT_BYTES, cert_total_len};
use super::reader::{CardChannel, TransmitError};
use mykey_sync_proto::holder::{HolderBinding, HolderOrder};
use mykey_sync_proto::{
    CardKey, CardSignature, DonationBinding, RedeemBinding, VoucherIssueBinding,
};

/// Domain separation for proofs: the card signs SHA-256(context ‖ challenge),
/// so a proof made here is useless as a login to any other JPKI service.
pub const PROOF_CONTEXT: &[u8] = mykey_sync_proto::card_proof::CARD_PROOF_CONTEXT;

/// Reading the card's certificate failed.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    /// Talking to the card failed.
    #[error(transparent)]
    Transmit(#[from] TransmitError),
    /// SELECT of the JPKI AP was refused.
    #[error(
        "this card is not a My Number card (it has no JPKI application, status {0}): use a My Number card"
    )]
    NotJpki(StatusWord),
    /// A command was refused.
    #[error(
        "the card refused {step} (status {sw}): tap again; if it keeps failing the card may be damaged"
    )]
    Refused {
        /// Which command.
        step: &'static str,
        /// The status word.
        sw: StatusWord,
    },
    /// The certificate's length header is unusable.
    #[error(transparent)]
    Header(#[from] CertHeaderError),
    /// The file ended before the length the header announced.
    #[error(
        "the card's certificate ends after {got} of {want} bytes: tap again; if it keeps failing the card may be damaged"
    )]
    Truncated {
        /// Bytes read.
        got: usize,
        /// Bytes announced.
        want: usize,
    },
    /// The certificate does not parse.
    #[error(transparent)]
    Parse(#[from] CertParseError),
}

/// The PIN state of the user-authentication PIN.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PinStatus {
    /// This many tries before the card locks.
    TriesLeft(u8),
    /// Already verified in this card session.
    Verified,
    /// Locked after three wrong PINs.
    Locked,
}

/// Querying the PIN state failed.
#[derive(Debug, thiserror::Error)]
pub enum PinStatusError {
    /// Talking to the card failed.
    #[error(transparent)]
    Transmit(#[from] TransmitError),
    /// A command was refused.
    #[error(
        "the card refused {step} (status {sw}): tap again; if it keeps failing the card may be damaged"
    )]
    Refused {
        /// Which command.
        step: &'static str,
        /// The status word.
        sw: StatusWord,
    },
}

/// The card proof failed.
#[derive(Debug, thiserror::Error)]
pub enum ProveError {
    /// Talking to the card failed.
    #[error(transparent)]
    Transmit(#[from] TransmitError),
    /// The PIN is locked.
    #[error(
        "the card's user-authentication PIN is locked after three wrong tries: the holder must go to the municipal office counter to reset it"
    )]
    Locked,
    /// The PIN was wrong.
    #[error("wrong PIN: {tries_left} {} left before the card locks; the holder should check the PIN before trying again", if *tries_left == 1 { "try" } else { "tries" })]
    WrongPin {
        /// Tries left.
        tries_left: u8,
    },
    /// A command was refused.
    #[error(
        "the card refused {step} (status {sw}): tap again; if it keeps failing the card may be damaged"
    )]
    Refused {
        /// Which command.
        step: &'static str,
        /// The status word.
        sw: StatusWord,
    },
    /// The redeem to prove names another card than the one on the reader.
    #[error("the card on the reader is not the card of this redeem: tap the holder's card again")]
    OtherCard,
    /// The card answered a signature of an impossible length.
    #[error("the card's signature has an impossible length: {0}")]
    SignatureLength(#[source] mykey_sync_proto::card_proof::CardSignatureError),
    /// The signature does not verify with the certificate's key.
    #[error(
        "the card's signature does not match its certificate: the card is not genuine or is damaged; do not accept it"
    )]
    BadSignature(#[source] rsa::Error),
}

/// A random challenge chosen by the node for one proof.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Challenge([u8; 32]);

impl Challenge {
    /// A fresh challenge from the OS.
    pub fn random() -> Result<Self, getrandom::Error> {
        let mut bytes = [0u8; 32];
        getrandom::fill(&mut bytes)?;
        Ok(Challenge(bytes))
    }

    /// A given challenge (tests and the simulation).
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        Challenge(bytes)
    }

    /// The raw bytes.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// What the card signs: the context and the challenge.
    pub fn signed_message(&self) -> Vec<u8> {
        [PROOF_CONTEXT, &self.0[..]].concat()
    }
}

/// Proof that the holder of the card with this key entered the PIN and the
/// card signed the node's challenge. Only [`prove`] makes one.
#[derive(Clone)]
pub struct CardProof {
    card_key: CardKey,
    challenge: Challenge,
    signature: Vec<u8>,
}

impl CardProof {
    /// The card that made the proof.
    pub fn card_key(&self) -> &CardKey {
        &self.card_key
    }
    /// The challenge it signed.
    pub fn challenge(&self) -> &Challenge {
        &self.challenge
    }
    /// The signature over [`Challenge::signed_message`].
    pub fn signature(&self) -> &[u8] {
        &self.signature
    }
}

impl std::fmt::Debug for CardProof {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "CardProof({})", self.card_key.short())
    }
}

/// The holder's PIN proof for one redeem: the card of a certificate that
/// chained to a trusted JPKI CA signed this redeem's [`RedeemBinding`], and
/// the signature verified against that certificate. Only [`prove_redeem`]
/// makes one, so no caller (the counter loop, a future HTTP, SIP2 or voucher
/// path) can assert a proof it does not have; `Node::redeem` takes this
/// value and signs exactly the bound redeem.
#[derive(Clone)]
pub struct VerifiedCardProof {
    binding: RedeemBinding,
    signature: CardSignature,
}

impl VerifiedCardProof {
    /// The redeem the proof is bound to.
    pub fn binding(&self) -> &RedeemBinding {
        &self.binding
    }
    /// The card's signature, as the redeem carries it.
    pub fn signature(&self) -> &CardSignature {
        &self.signature
    }

    /// A value for the offline rules' own unit tests, which look only at
    /// whether a proof is present (never compiled outside this crate's tests).
    #[cfg(test)]
    pub(crate) fn for_rules_tests() -> Self {
        let redeem = mykey_sync_proto::Redeem {
            card: CardKey::new(vec![1], vec![2]).expect("card key"),
            account: mykey_sync_proto::AccountId::new(1).expect("account"),
            municipality: mykey_sync_proto::MunicipalityCode::parse("131059").expect("code"),
            points: mykey_sync_proto::Points::ZERO,
            merchant: mykey_sync_proto::FacilityId::parse("shop").expect("facility"),
            basis: None,
            card_proof: None,
        };
        let node = ed25519_dalek::SigningKey::from_bytes(&[1; 32]).verifying_key();
        VerifiedCardProof {
            binding: RedeemBinding::new(
                mykey_sync_proto::NodeId::from_bytes(node.to_bytes()).expect("node"),
                1,
                mykey_sync_proto::UnixMillis(0),
                &redeem,
            ),
            signature: CardSignature::new(vec![0; 256]).expect("signature"),
        }
    }
}

impl std::fmt::Debug for VerifiedCardProof {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "VerifiedCardProof({} seq {})",
            self.binding.card.short(),
            self.binding.seq
        )
    }
}

/// SELECTs the JPKI AP. Success is how a JPKI card is recognised: contactless
/// readers make up their own ATR, so the ATR says nothing.
pub fn select_jpki(chan: &mut impl CardChannel) -> Result<(), ReadError> {
    let r = chan.transmit(&Apdu::SelectJpkiAp)?;
    match r.sw.status() {
        Status::Ok => Ok(()),
        _ => Err(ReadError::NotJpki(r.sw)),
    }
}

/// Selects the JPKI AP and reads and parses the user-authentication certificate.
pub fn read_auth_cert(chan: &mut impl CardChannel) -> Result<CardCert, ReadError> {
    select_jpki(chan)?;
    let der = read_ef(chan, Ef::AuthCert)?;
    Ok(CardCert::from_der(der)?)
}

/// Reads the raw DER of the CA certificate stored on the card (EF 000B).
/// The JPKI AP must be selected.
pub fn read_auth_ca_cert_der(chan: &mut impl CardChannel) -> Result<Vec<u8>, ReadError> {
    read_ef(chan, Ef::AuthCaCert)
}

fn read_ef(chan: &mut impl CardChannel, ef: Ef) -> Result<Vec<u8>, ReadError> {
    let select = Apdu::SelectEf(ef);
    let step = select.name();
    let r = chan.transmit(&select)?;
    if r.sw != StatusWord::OK {
        return Err(ReadError::Refused { step, sw: r.sw });
    }
    let header = read_chunk(chan, 0, 4)?;
    let total = cert_total_len(&header)?;
    let mut der = Vec::with_capacity(total);
    der.extend_from_slice(&header);
    if der.len() < 4 {
        return Err(ReadError::Truncated {
            got: der.len(),
            want: total,
        });
    }
    // Bounded: total <= MAX_CERT_BYTES, and every round either grows `der`
    // or returns.
    while der.len() < total {
        let want = (total - der.len()).min(usize::from(ReadRange::MAX_LEN));
        let chunk = read_chunk(chan, der.len(), want)?;
        if chunk.is_empty() {
            return Err(ReadError::Truncated {
                got: der.len(),
                want: total,
            });
        }
        let take = chunk.len().min(total - der.len());
        der.extend_from_slice(&chunk[..take]);
    }
    assert!(der.len() <= MAX_CERT_BYTES, "cert read past its cap");
    Ok(der)
}

fn read_chunk(
    chan: &mut impl CardChannel,
    offset: usize,
    len: usize,
) -> Result<Vec<u8>, ReadError> {
    let bad_range = || ReadError::Truncated {
        got: offset,
        want: offset + len,
    };
    let offset = u16::try_from(offset).map_err(|_| bad_range())?;
    let len = u16::try_from(len).map_err(|_| bad_range())?;
    let range = ReadRange::new(offset, len).ok_or_else(bad_range)?;
    let r: Response = chan.transmit(&Apdu::ReadBinary(range))?;
    match r.sw.status() {
        Status::Ok | Status::EndOfFile => Ok(r.data),
        // Offset past the end: the file is shorter than announced.
        Status::WrongOffset => Ok(Vec::new()),
        _ => Err(ReadError::Refused {
            step: "READ BINARY",
            sw: r.sw,
        }),
    }
}

/// Asks how many PIN tries are left, without spending one. The JPKI AP must
/// be selected.
pub fn pin_status(chan: &mut impl CardChannel) -> Result<PinStatus, PinStatusError> {
    let select = Apdu::SelectEf(Ef::AuthPin);
    let r = chan.transmit(&select)?;
    if r.sw != StatusWord::OK {
        return Err(PinStatusError::Refused {
            step: select.name(),
            sw: r.sw,
        });
    }
    let r = chan.transmit(&Apdu::PinTriesLeft)?;
    match r.sw.status() {
        Status::TriesLeft(n) => Ok(PinStatus::TriesLeft(n)),
        Status::Locked => Ok(PinStatus::Locked),
        Status::Ok => Ok(PinStatus::Verified),
        _ => Err(PinStatusError::Refused {
            step: Apdu::PinTriesLeft.name(),
            sw: r.sw,
        }),
    }
}

/// The card proof: VERIFY the PIN, have the card sign the challenge with the
/// user-authentication key, and check the signature against `cert`. The JPKI
/// AP must be selected (as [`read_auth_cert`] leaves it). Never retries a PIN.
pub fn prove(
    chan: &mut impl CardChannel,
    cert: &CardCert,
    pin: Pin,
    challenge: Challenge,
) -> Result<CardProof, ProveError> {
    let refused = |apdu: &Apdu, sw| ProveError::Refused {
        step: apdu.name(),
        sw,
    };
    let select_pin = Apdu::SelectEf(Ef::AuthPin);
    let r = chan.transmit(&select_pin)?;
    if r.sw != StatusWord::OK {
        return Err(refused(&select_pin, r.sw));
    }
    let verify = Apdu::VerifyPin(pin);
    let r = chan.transmit(&verify)?;
    match r.sw.status() {
        Status::Ok => {}
        Status::TriesLeft(tries_left) => return Err(ProveError::WrongPin { tries_left }),
        Status::Locked => return Err(ProveError::Locked),
        _ => return Err(refused(&verify, r.sw)),
    }
    drop(verify);

    let select_key = Apdu::SelectEf(Ef::AuthKey);
    let r = chan.transmit(&select_key)?;
    if r.sw != StatusWord::OK {
        return Err(refused(&select_key, r.sw));
    }
    let message = challenge.signed_message();
    let hash: [u8; 32] = Sha256::digest(&message).into();
    let sign = Apdu::Sign(DigestInfo::sha256(&hash));
    let r = chan.transmit(&sign)?;
    if r.sw != StatusWord::OK {
        return Err(refused(&sign, r.sw));
    }
    cert.verify_sha256(&message, &r.data)
        .map_err(ProveError::BadSignature)?;
    Ok(CardProof {
        card_key: cert.card_key().clone(),
        challenge,
        signature: r.data,
    })
}

/// The card proof for one redeem: [`prove`] over the challenge of
/// `binding`, with a certificate that chained to a trusted CA. The binding
/// must name this card (a programmer error otherwise, refused as
/// [`ProveError::OtherCard`]).
pub fn prove_redeem(
    chan: &mut impl CardChannel,
    cert: &TrustedCert,
    pin: Pin,
    binding: RedeemBinding,
) -> Result<VerifiedCardProof, ProveError> {
    let signature = prove_bound(chan, cert, pin, &binding.card, binding.challenge())?;
    Ok(VerifiedCardProof { binding, signature })
}

/// A card's proof over one donation (issue 19): like [`VerifiedCardProof`]
/// for a donation's binding. Only [`prove_donation`] makes one, and
/// `Node::donate` signs exactly the bound donation.
#[derive(Clone)]
pub struct VerifiedDonationProof {
    binding: DonationBinding,
    signature: CardSignature,
}

impl VerifiedDonationProof {
    /// The donation the proof is bound to.
    pub fn binding(&self) -> &DonationBinding {
        &self.binding
    }
    /// The card's signature, as the donation carries it.
    pub fn signature(&self) -> &CardSignature {
        &self.signature
    }
}

/// The card proof for one donation: [`prove`] over the challenge of
/// `binding`, with a certificate that chained to a trusted CA; the binding
/// must name this card ([`ProveError::OtherCard`] otherwise).
pub fn prove_donation(
    chan: &mut impl CardChannel,
    cert: &TrustedCert,
    pin: Pin,
    binding: DonationBinding,
) -> Result<VerifiedDonationProof, ProveError> {
    let signature = prove_bound(chan, cert, pin, &binding.card, binding.challenge())?;
    Ok(VerifiedDonationProof { binding, signature })
}

/// A card's proof over one kiosk voucher issue (issue 17 part 1(a)): like
/// [`VerifiedDonationProof`] for an issue's binding. Only
/// [`prove_voucher_issue`] makes one, and `Node::issue_vouchers` signs
/// exactly the bound issue.
#[derive(Clone)]
pub struct VerifiedVoucherIssueProof {
    binding: VoucherIssueBinding,
    signature: CardSignature,
}

impl VerifiedVoucherIssueProof {
    /// The issue the proof is bound to.
    pub fn binding(&self) -> &VoucherIssueBinding {
        &self.binding
    }
    /// The card's signature, as the issue carries it.
    pub fn signature(&self) -> &CardSignature {
        &self.signature
    }
}

/// The card proof for one kiosk voucher issue: [`prove`] over the
/// challenge of `binding`, with a certificate that chained to a trusted CA;
/// the binding must name this card ([`ProveError::OtherCard`] otherwise).
pub fn prove_voucher_issue(
    chan: &mut impl CardChannel,
    cert: &TrustedCert,
    pin: Pin,
    binding: VoucherIssueBinding,
) -> Result<VerifiedVoucherIssueProof, ProveError> {
    let signature = prove_bound(chan, cert, pin, &binding.card, binding.challenge())?;
    Ok(VerifiedVoucherIssueProof { binding, signature })
}

/// [`prove`] over a transaction binding's `challenge`, with a certificate
/// that chained to a trusted CA, by the card the binding names (`card`;
/// another is a programmer error, refused as [`ProveError::OtherCard`]):
/// the card's signature as the transaction carries it.
fn prove_bound(
    chan: &mut impl CardChannel,
    cert: &TrustedCert,
    pin: Pin,
    card: &CardKey,
    challenge: [u8; 32],
) -> Result<CardSignature, ProveError> {
    if card != cert.cert().card_key() {
        return Err(ProveError::OtherCard);
    }
    let proof = prove(chan, cert.cert(), pin, Challenge::from_bytes(challenge))?;
    CardSignature::new(proof.signature).map_err(ProveError::SignatureLength)
}

/// The card proof for a card holder's own request (issue 19): [`prove`]
/// over the challenge of `binding` (the hub's challenge and the action),
/// with a certificate that chained to a trusted CA. The challenge must name
/// this card ([`ProveError::OtherCard`] otherwise).
pub fn prove_holder(
    chan: &mut impl CardChannel,
    cert: &TrustedCert,
    pin: Pin,
    binding: &HolderBinding,
) -> Result<CardSignature, ProveError> {
    if &binding.challenge.challenge.card != cert.cert().card_key() {
        return Err(ProveError::OtherCard);
    }
    let proof = prove(
        chan,
        cert.cert(),
        pin,
        Challenge::from_bytes(binding.challenge()),
    )?;
    CardSignature::new(proof.signature).map_err(ProveError::SignatureLength)
}

/// The card proof for a holder's order (issue 19: register, change the My
/// Key ID): [`prove`] over [`HolderOrder::challenge`], with a certificate
/// that chained to a trusted CA. The order must name this card
/// ([`ProveError::OtherCard`] otherwise).
pub fn prove_order(
    chan: &mut impl CardChannel,
    cert: &TrustedCert,
    pin: Pin,
    order: &HolderOrder,
) -> Result<CardSignature, ProveError> {
    if &order.card != cert.cert().card_key() {
        return Err(ProveError::OtherCard);
    }
    let proof = prove(
        chan,
        cert.cert(),
        pin,
        Challenge::from_bytes(order.challenge()),
    )?;
    CardSignature::new(proof.signature).map_err(ProveError::SignatureLength)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A scripted card: answers each command with the next canned response
    /// and records what it was sent.
    struct Scripted {
        answers: Vec<Vec<u8>>,
        sent: Vec<String>,
    }

    impl CardChannel for Scripted {
        fn transmit(&mut self, apdu: &Apdu) -> Result<Response, TransmitError> {
            self.sent.push(apdu.to_string());
            if self.answers.is_empty() {
                return Err(TransmitError::SessionDead);
            }
            let raw = self.answers.remove(0);
            Response::parse(&raw).ok_or(TransmitError::ShortResponse(raw.len()))
        }
    }

    fn scripted(answers: &[&[u8]]) -> Scripted {
        Scripted {
            answers: answers.iter().map(|a| a.to_vec()).collect(),
            sent: Vec::new(),
        }
    }

    #[test]
    fn a_card_without_jpki_is_not_a_my_number_card() {
        let mut card = scripted(&[&[0x6A, 0x82]]);
        let err = read_auth_cert(&mut card).expect_err("not jpki");
        assert!(
            matches!(err, ReadError::NotJpki(StatusWord(0x6A82))),
            "{err}"
        );
        assert!(err.to_string().contains("not a My Number card"));
    }

    #[test]
    fn oversized_certificate_is_refused_before_reading_it() {
        let mut card = scripted(&[
            &[0x90, 0],
            &[0x90, 0],
            &[0x30, 0x82, 0x40, 0x00, 0x90, 0x00],
        ]);
        let err = read_auth_cert(&mut card).expect_err("too large");
        assert!(
            matches!(err, ReadError::Header(CertHeaderError::TooLarge { .. })),
            "{err}"
        );
        assert_eq!(card.sent.len(), 3, "no READ after the header");
    }

    #[test]
    fn certificate_shorter_than_announced_is_truncated() {
        let mut card = scripted(&[
            &[0x90, 0],
            &[0x90, 0],
            &[0x30, 0x82, 0x01, 0x00, 0x90, 0x00],
            &[0x01, 0x02, 0x62, 0x82],
            &[0x6B, 0x00],
        ]);
        let err = read_auth_cert(&mut card).expect_err("truncated");
        assert!(
            matches!(err, ReadError::Truncated { got: 6, want: 260 }),
            "{err:?}"
        );
        assert_eq!(card.sent[3], "00 B0 00 04 00");
        assert_eq!(card.sent[4], "00 B0 00 06 FE");
    }

    #[test]
    fn pin_status_maps_status_words() {
        let cases: &[(&[u8], PinStatus)] = &[
            (&[0x63, 0xC3], PinStatus::TriesLeft(3)),
            (&[0x63, 0xC1], PinStatus::TriesLeft(1)),
            (&[0x63, 0xC0], PinStatus::Locked),
            (&[0x69, 0x83], PinStatus::Locked),
            (&[0x90, 0x00], PinStatus::Verified),
        ];
        for (sw, want) in cases {
            let mut card = scripted(&[&[0x90, 0], sw]);
            assert_eq!(pin_status(&mut card).expect("status"), *want);
            assert_eq!(card.sent, ["00 A4 02 0C 02 00 18", "00 20 00 80"]);
        }
    }

    #[test]
    fn wrong_pin_reports_tries_and_never_retries() {
        let mut card = scripted(&[&[0x90, 0], &[0x63, 0xC2]]);
        let cert = test_cert();
        let pin = Pin::parse("1111").expect("pin");
        let err =
            prove(&mut card, &cert, pin, Challenge::from_bytes([7; 32])).expect_err("wrong pin");
        assert!(
            matches!(err, ProveError::WrongPin { tries_left: 2 }),
            "{err}"
        );
        assert!(err.to_string().contains("2 tries left"));
        assert_eq!(card.sent.len(), 2);
        assert_eq!(card.sent[1], "00 20 00 80 04 ** ** ** **");

        let mut card = scripted(&[&[0x90, 0], &[0x69, 0x83]]);
        let pin = Pin::parse("1111").expect("pin");
        let err = prove(&mut card, &cert, pin, Challenge::from_bytes([7; 32])).expect_err("locked");
        assert!(matches!(err, ProveError::Locked));
        assert!(err.to_string().contains("municipal office counter"));
    }

    /// A self-signed RSA-2048 certificate, fixed so the test needs no tools.
    fn test_cert() -> CardCert {
        const PEM_BODY: &str = include_str!("testdata/auth_cert.b64");
        let der = base64_decode(PEM_BODY);
        CardCert::from_der(der).expect("test cert parses")
    }

    fn base64_decode(text: &str) -> Vec<u8> {
        const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
        let mut out = Vec::new();
        let (mut acc, mut bits) = (0u32, 0u32);
        for c in text
            .bytes()
            .filter(|c| !c.is_ascii_whitespace() && *c != b'=')
        {
            let v = ALPHABET.iter().position(|a| *a == c).expect("base64") as u32;
            acc = (acc << 6) | v;
            bits += 6;
            if bits >= 8 {
                bits -= 8;
                out.push((acc >> bits) as u8);
            }
        }
        out
    }
}
