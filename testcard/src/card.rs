//! The card's logic: raw command APDU bytes in, raw response bytes out.
//!
//! It answers the JPKI user-authentication commands (SELECT AP, SELECT EF
//! 000A/000B/0017/0018, READ BINARY, VERIFY with a 3-try counter, sign) and
//! `6A82` to anything else, as a real card answers commands for files it
//! does not hold.

use rsa::{Pkcs1v15Sign, RsaPrivateKey};

/// The JPKI application's AID.
pub const JPKI_AID: [u8; 10] = [0xD3, 0x92, 0xF0, 0x00, 0x26, 0x01, 0x00, 0x00, 0x00, 0x01];
/// A plain T=1 ATR, as contactless readers synthesise something similar.
pub const ATR: [u8; 5] = [0x3B, 0x80, 0x80, 0x01, 0x01];
/// PIN tries before the card locks.
pub const MAX_TRIES: u8 = 3;

const EF_AUTH_CERT: [u8; 2] = [0x00, 0x0A];
const EF_AUTH_CA_CERT: [u8; 2] = [0x00, 0x0B];
const EF_AUTH_KEY: [u8; 2] = [0x00, 0x17];
const EF_AUTH_PIN: [u8; 2] = [0x00, 0x18];

/// A virtual JPKI card: its files, key, PIN and what is selected.
pub struct TestCard {
    auth_cert: Vec<u8>,
    ca_cert: Vec<u8>,
    key: RsaPrivateKey,
    pin: [u8; 4],
    tries: u8,
    not_jpki: bool,
    ap_selected: bool,
    ef: Option<[u8; 2]>,
    verified: bool,
}

impl std::fmt::Debug for TestCard {
    // Never the key or the PIN.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TestCard")
            .field("tries", &self.tries)
            .field("not_jpki", &self.not_jpki)
            .finish_non_exhaustive()
    }
}

impl TestCard {
    /// A card serving `auth_cert` at EF 000A and `ca_cert` at EF 000B (any
    /// bytes: a broken card is a test too), signing with `key`, with the
    /// 4-digit `pin` and [`MAX_TRIES`] tries.
    pub fn new(auth_cert: Vec<u8>, ca_cert: Vec<u8>, key: RsaPrivateKey, pin: [u8; 4]) -> Self {
        TestCard {
            auth_cert,
            ca_cert,
            key,
            pin,
            tries: MAX_TRIES,
            not_jpki: false,
            ap_selected: false,
            ef: None,
            verified: false,
        }
    }

    /// Starts with `tries` PIN tries left (0: locked; capped at [`MAX_TRIES`]).
    pub fn with_tries(mut self, tries: u8) -> Self {
        self.tries = tries.min(MAX_TRIES);
        self
    }

    /// Answers `6A82` to the JPKI SELECT too: a smart card that is not a My
    /// Number card.
    pub fn not_jpki(mut self) -> Self {
        self.not_jpki = true;
        self
    }

    /// PIN tries left (0: locked).
    pub fn tries_left(&self) -> u8 {
        self.tries
    }

    /// The card is powered off or reset: nothing selected, PIN not verified.
    pub fn reset(&mut self) {
        self.ap_selected = false;
        self.ef = None;
        self.verified = false;
    }

    /// Answers one command APDU with the response bytes (data and SW1 SW2).
    pub fn answer(&mut self, apdu: &[u8]) -> Vec<u8> {
        let sw = |sw: u16| sw.to_be_bytes().to_vec();
        match apdu {
            [0x00, 0xA4, 0x04, 0x0C, 0x0A, aid @ ..] if aid == JPKI_AID && !self.not_jpki => {
                self.reset();
                self.ap_selected = true;
                sw(0x9000)
            }
            [0x00, 0xA4, 0x02, 0x0C, 0x02, hi, lo] if self.ap_selected => match [*hi, *lo] {
                ef @ (EF_AUTH_CERT | EF_AUTH_CA_CERT | EF_AUTH_KEY | EF_AUTH_PIN) => {
                    self.ef = Some(ef);
                    sw(0x9000)
                }
                _ => sw(0x6A82),
            },
            [0x00, 0xB0, p1, p2, le] if *p1 & 0x80 == 0 => {
                let file = match self.ef {
                    Some(EF_AUTH_CERT) => &self.auth_cert,
                    Some(EF_AUTH_CA_CERT) => &self.ca_cert,
                    Some(_) => return sw(0x6986),
                    None => return sw(0x6A82),
                };
                let offset = usize::from(u16::from_be_bytes([*p1, *p2]));
                let want = if *le == 0 { 256 } else { usize::from(*le) };
                if offset >= file.len() {
                    return sw(0x6B00);
                }
                let end = (offset + want).min(file.len());
                let mut out = file[offset..end].to_vec();
                out.extend(sw(if end - offset < want { 0x6282 } else { 0x9000 }));
                out
            }
            [0x00, 0x20, 0x00, 0x80] if self.ef == Some(EF_AUTH_PIN) => match self.tries {
                0 => sw(0x6983),
                _ if self.verified => sw(0x9000),
                n => sw(0x63C0 | u16::from(n)),
            },
            [0x00, 0x20, 0x00, 0x80, 0x04, pin @ ..] if self.ef == Some(EF_AUTH_PIN) => {
                if self.tries == 0 {
                    return sw(0x6983);
                }
                if pin == self.pin {
                    self.tries = MAX_TRIES;
                    self.verified = true;
                    sw(0x9000)
                } else {
                    self.tries -= 1;
                    self.verified = false;
                    sw(0x63C0 | u16::from(self.tries))
                }
            }
            [0x80, 0x2A, 0x00, 0x80, lc, rest @ ..]
                if self.ef == Some(EF_AUTH_KEY) && rest.len() == usize::from(*lc) + 1 =>
            {
                if !self.verified {
                    return sw(0x6982);
                }
                let data = &rest[..usize::from(*lc)];
                match self.key.sign(Pkcs1v15Sign::new_unprefixed(), data) {
                    Ok(mut sig) => {
                        sig.extend(sw(0x9000));
                        sig
                    }
                    Err(_) => sw(0x6A80),
                }
            }
            _ => sw(0x6A82),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cert::{TestCa, key_from_seed};

    fn card() -> TestCard {
        let key = key_from_seed([1; 32]).expect("key");
        let ca = TestCa::new(key.clone(), "Test CA", 0, 2_000_000_000).expect("ca");
        let cert = ca
            .issue(&[1], &rsa::RsaPublicKey::from(&key), 0, 2_000_000_000)
            .expect("cert");
        TestCard::new(cert, ca.cert_der().to_vec(), key, *b"1234")
    }

    fn select(card: &mut TestCard, ef: [u8; 2]) {
        let mut ap = vec![0x00, 0xA4, 0x04, 0x0C, 0x0A];
        ap.extend(JPKI_AID);
        assert_eq!(card.answer(&ap), [0x90, 0x00]);
        assert_eq!(
            card.answer(&[0x00, 0xA4, 0x02, 0x0C, 0x02, ef[0], ef[1]]),
            [0x90, 0x00]
        );
    }

    #[test]
    fn wrong_pins_count_down_and_lock() {
        let mut c = card();
        select(&mut c, EF_AUTH_PIN);
        let cases: &[(&[u8; 4], [u8; 2])] = &[
            (b"0000", [0x63, 0xC2]),
            (b"1234", [0x90, 0x00]),
            (b"0000", [0x63, 0xC2]),
            (b"0000", [0x63, 0xC1]),
            (b"0000", [0x63, 0xC0]),
            (b"1234", [0x69, 0x83]),
        ];
        for (pin, want) in cases {
            let mut apdu = vec![0x00, 0x20, 0x00, 0x80, 0x04];
            apdu.extend(*pin);
            assert_eq!(c.answer(&apdu), want, "PIN {pin:?}");
        }
        assert_eq!(c.tries_left(), 0);
    }

    #[test]
    fn signs_only_after_the_pin() {
        let mut c = card();
        select(&mut c, EF_AUTH_KEY);
        let mut sign = vec![0x80, 0x2A, 0x00, 0x80, 51];
        sign.extend([7u8; 51]);
        sign.push(0);
        assert_eq!(c.answer(&sign), [0x69, 0x82]);
        select(&mut c, EF_AUTH_PIN);
        assert_eq!(c.answer(b"\x00\x20\x00\x80\x041234"), [0x90, 0x00]);
        assert_eq!(
            c.answer(&[0x00, 0xA4, 0x02, 0x0C, 0x02, 0x00, 0x17]),
            [0x90, 0x00]
        );
        let r = c.answer(&sign);
        assert_eq!(r.len(), 256 + 2);
        assert_eq!(&r[256..], [0x90, 0x00]);
    }

    #[test]
    fn reads_the_certificate_in_chunks_and_refuses_other_files() {
        let mut c = card();
        select(&mut c, EF_AUTH_CERT);
        let first = c.answer(&[0x00, 0xB0, 0x00, 0x00, 0x04]);
        assert_eq!(&first[..2], [0x30, 0x82]);
        assert_eq!(&first[4..], [0x90, 0x00]);
        assert_eq!(c.answer(&[0x00, 0xB0, 0x7F, 0x00, 0x04]), [0x6B, 0x00]);
        // The signature certificate's file and the My Number APs are not here.
        assert_eq!(
            c.answer(&[0x00, 0xA4, 0x02, 0x0C, 0x02, 0x00, 0x01]),
            [0x6A, 0x82]
        );
        let not = card().not_jpki();
        let mut not = not;
        let mut ap = vec![0x00, 0xA4, 0x04, 0x0C, 0x0A];
        ap.extend(JPKI_AID);
        assert_eq!(not.answer(&ap), [0x6A, 0x82]);
    }
}
