//! The virtual JPKI card in process: `mykey_testcard::TestCard` behind the
//! node's [`CardChannel`], so a test runs the node's real card path
//! (`read_auth_cert`, `trust`, `prove_redeem`) without pcscd. The process
//! tests (`card_reader.rs`, `card_watch.rs`) use the same card through vpcd
//! (`vjpki serve`).

use mykey_node::card::CardChannel;
use mykey_node::card::TransmitError;
use mykey_node::card::apdu::{Apdu, Response};
use mykey_testcard::TestCard;

/// A card on an in-process reader: every command goes through the real APDU
/// encoding and the card's raw answer through the real response parser.
pub struct InProcessCard<'a>(pub &'a mut TestCard);

impl CardChannel for InProcessCard<'_> {
    fn transmit(&mut self, apdu: &Apdu) -> Result<Response, TransmitError> {
        let raw = self.0.answer(&apdu.encode());
        Response::parse(&raw).ok_or(TransmitError::ShortResponse(raw.len()))
    }
}

/// A virtual card issued by a test JPKI CA of its own, and its certificate
/// as the node's real card path reads and trusts it ([`issued_card`]).
pub struct IssuedCard {
    /// The card, to put behind [`InProcessCard`].
    pub card: TestCard,
    /// Its certificate, chained to `ca_der`.
    pub trusted: mykey_node::card::TrustedCert,
    /// The CA's certificate (DER), for `--trusted-ca` or the hub.
    pub ca_der: Vec<u8>,
}

/// A card with serial `serial` and PIN `pin`, issued a day before `now_s`
/// (seconds) by a CA valid for ten years; the card is valid for five. The
/// keys come from fixed seeds, so a test's card is the same every run.
pub fn issued_card(serial: &[u8], pin: [u8; 4], now_s: i64) -> IssuedCard {
    const YEAR_S: i64 = 365 * 86_400;
    let ca = mykey_testcard::TestCa::new(
        mykey_testcard::key_from_seed([1; 32]).expect("CA key"),
        "MyKey Test JPKI User Authentication CA",
        now_s - 86_400,
        now_s + 10 * YEAR_S,
    )
    .expect("test CA");
    let chip_key = mykey_testcard::key_from_seed([2; 32]).expect("card key");
    let cert_der = ca
        .issue(
            serial,
            &rsa::RsaPublicKey::from(&chip_key),
            now_s - 86_400,
            now_s + 5 * YEAR_S,
        )
        .expect("card certificate");
    let ca_der = ca.cert_der().to_vec();
    let mut card = TestCard::new(cert_der, ca_der.clone(), chip_key, pin);
    let cert = mykey_node::card::read_auth_cert(&mut InProcessCard(&mut card))
        .expect("the card's certificate reads");
    let trusted = mykey_node::card::trust(cert, std::slice::from_ref(&ca_der), now_s)
        .expect("the card's certificate chains to its CA");
    IssuedCard {
        card,
        trusted,
        ca_der,
    }
}
