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
