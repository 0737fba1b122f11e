//! The privacy guard: the only command APDUs the node can send to a card.
//!
//! [`Apdu`] is a closed enum whose variants are exactly the JPKI commands the
//! node needs (select the JPKI AP, select one of four EFs, read binary by
//! offset, PIN tries left, verify the auth PIN, sign). Its byte encoding lives
//! in one function, [`Apdu::encode`]. There is no constructor that takes raw
//! bytes, an AID or a file id, so the My Number applets (card input helper AP,
//! card face AP) and the signature certificate (EF 0001/0002, which carries
//! name and address) cannot be addressed by any code that compiles.
//!
//! Variant payloads are newtypes with private fields and validating
//! constructors, because a public `u16` offset would let a caller set P1's top
//! bit, which turns READ BINARY into "read by short EF id" and could reach the
//! signature certificate without a SELECT.

use std::fmt;
use zeroize::Zeroizing;

/// AID of the JPKI application (public key infrastructure AP).
const JPKI_AID: [u8; 10] = [0xD3, 0x92, 0xF0, 0x00, 0x26, 0x01, 0x00, 0x00, 0x00, 0x01];

pub use mykey_jpki::DigestInfo;
#[cfg(test)]
use mykey_jpki::SHA256_DIGEST_INFO_PREFIX;

/// The elementary files of the JPKI AP the node may select.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ef {
    /// EF 000A: the user-authentication certificate (public, no PIN).
    AuthCert,
    /// EF 000B: the CA certificate that issued the user-authentication certificate.
    AuthCaCert,
    /// EF 0018: the user-authentication PIN.
    AuthPin,
    /// EF 0017: the user-authentication private key.
    AuthKey,
}

impl Ef {
    fn id(self) -> [u8; 2] {
        match self {
            Ef::AuthCert => [0x00, 0x0A],
            Ef::AuthCaCert => [0x00, 0x0B],
            Ef::AuthPin => [0x00, 0x18],
            Ef::AuthKey => [0x00, 0x17],
        }
    }
}

/// A READ BINARY window: offset within the selected EF and number of bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReadRange {
    offset: u16,
    len: u16,
}

impl ReadRange {
    /// Largest offset: P1's top bit must stay clear (set, it means "short EF id").
    pub const MAX_OFFSET: u16 = 0x7FFF;
    /// Largest read in one short APDU (Le = 00 means 256).
    pub const MAX_LEN: u16 = 256;

    /// A window of `len` bytes (1..=256) at `offset` (0..=0x7FFF), or `None`.
    pub fn new(offset: u16, len: u16) -> Option<Self> {
        (offset <= Self::MAX_OFFSET && (1..=Self::MAX_LEN).contains(&len))
            .then_some(ReadRange { offset, len })
    }

    /// The offset.
    pub fn offset(self) -> u16 {
        self.offset
    }

    /// The number of bytes asked for.
    pub fn len(self) -> u16 {
        self.len
    }

    /// Always false: an empty read cannot be constructed.
    pub fn is_empty(self) -> bool {
        false
    }
}

/// A user-authentication PIN: exactly 4 ASCII digits, zeroized on drop.
///
/// Its `Debug` prints `Pin(****)` and it has no `Display`, so it cannot reach a log.
pub struct Pin(Zeroizing<[u8; 4]>);

impl Pin {
    /// Parses a PIN, ignoring a trailing newline (as typed or piped in).
    pub fn parse(text: &str) -> Result<Self, PinFormatError> {
        let digits = text.trim_end_matches(['\r', '\n']).as_bytes();
        let mut pin = Zeroizing::new([0u8; 4]);
        if digits.len() != 4 || !digits.iter().all(u8::is_ascii_digit) {
            return Err(PinFormatError);
        }
        pin.copy_from_slice(digits);
        Ok(Pin(pin))
    }
}

impl fmt::Debug for Pin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Pin(****)")
    }
}

/// A PIN that was not exactly 4 digits. Holds nothing of what was typed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the user-authentication PIN is exactly 4 digits (0-9): type it again")]
pub struct PinFormatError;

/// Every command the node can send to a card. See the module docs.
#[derive(Debug)]
pub enum Apdu {
    /// SELECT the JPKI AP by AID (also how a JPKI card is recognised).
    SelectJpkiAp,
    /// SELECT an EF of the JPKI AP by file id.
    SelectEf(Ef),
    /// READ BINARY from the selected EF.
    ReadBinary(ReadRange),
    /// VERIFY with no data: asks for the PIN tries left without spending one.
    PinTriesLeft,
    /// VERIFY the user-authentication PIN (spends a try if wrong).
    VerifyPin(Pin),
    /// JPKI sign: PKCS#1 v1.5 signature over the DigestInfo with the selected key.
    Sign(DigestInfo),
}

impl Apdu {
    /// The command bytes. The one place APDUs are encoded; zeroized on drop
    /// because a VERIFY carries the PIN.
    pub fn encode(&self) -> Zeroizing<Vec<u8>> {
        let mut out = Zeroizing::new(Vec::with_capacity(64));
        match self {
            Apdu::SelectJpkiAp => {
                // P2 0C: no response data wanted.
                out.extend_from_slice(&[0x00, 0xA4, 0x04, 0x0C, JPKI_AID.len() as u8]);
                out.extend_from_slice(&JPKI_AID);
            }
            Apdu::SelectEf(ef) => {
                out.extend_from_slice(&[0x00, 0xA4, 0x02, 0x0C, 0x02]);
                out.extend_from_slice(&ef.id());
            }
            Apdu::ReadBinary(range) => {
                let [hi, lo] = range.offset.to_be_bytes();
                // Short Le: 256 is encoded as 00; the range type bounds len to 1..=256.
                out.extend_from_slice(&[0x00, 0xB0, hi, lo, (range.len % 256) as u8]);
            }
            Apdu::PinTriesLeft => out.extend_from_slice(&[0x00, 0x20, 0x00, 0x80]),
            Apdu::VerifyPin(pin) => {
                out.extend_from_slice(&[0x00, 0x20, 0x00, 0x80, 0x04]);
                out.extend_from_slice(&pin.0[..]);
            }
            Apdu::Sign(info) => {
                out.extend_from_slice(&[0x80, 0x2A, 0x00, 0x80, info.as_bytes().len() as u8]);
                out.extend_from_slice(info.as_bytes());
                out.push(0x00);
            }
        }
        out
    }

    /// Short name of the command, for logs and error messages.
    pub fn name(&self) -> &'static str {
        match self {
            Apdu::SelectJpkiAp => "SELECT JPKI AP",
            Apdu::SelectEf(Ef::AuthCert) => "SELECT EF 000A (auth cert)",
            Apdu::SelectEf(Ef::AuthCaCert) => "SELECT EF 000B (auth CA cert)",
            Apdu::SelectEf(Ef::AuthPin) => "SELECT EF 0018 (auth PIN)",
            Apdu::SelectEf(Ef::AuthKey) => "SELECT EF 0017 (auth key)",
            Apdu::ReadBinary(_) => "READ BINARY",
            Apdu::PinTriesLeft => "VERIFY (tries left)",
            Apdu::VerifyPin(_) => "VERIFY PIN",
            Apdu::Sign(_) => "SIGN",
        }
    }
}

/// Hex of the command bytes with the PIN digits replaced by `**`: the form
/// every sent APDU is logged in.
impl fmt::Display for Apdu {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // VERIFY's data field (after the 5 header bytes) is the PIN.
        let redact_from = match self {
            Apdu::VerifyPin(_) => 5,
            _ => usize::MAX,
        };
        for (i, b) in self.encode().iter().enumerate() {
            if i > 0 {
                f.write_str(" ")?;
            }
            if i >= redact_from {
                f.write_str("**")?;
            } else {
                write!(f, "{b:02X}")?;
            }
        }
        Ok(())
    }
}

/// A card's answer: response data and the status word.
#[derive(Clone, PartialEq, Eq)]
pub struct Response {
    /// Response data (without the status word).
    pub data: Vec<u8>,
    /// The status word SW1 SW2.
    pub sw: StatusWord,
}

impl Response {
    /// Splits a raw R-APDU; `None` if it is shorter than a status word.
    pub fn parse(raw: &[u8]) -> Option<Self> {
        let split = raw.len().checked_sub(2)?;
        let (data, sw) = raw.split_at(split);
        Some(Response {
            data: data.to_vec(),
            sw: StatusWord(u16::from_be_bytes([sw[0], sw[1]])),
        })
    }
}

impl fmt::Debug for Response {
    // Response data can be a signature or a certificate: log its length only.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Response({} bytes, {})", self.data.len(), self.sw)
    }
}

/// An ISO 7816-4 status word.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct StatusWord(pub u16);

/// What a status word means for the commands the node sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    /// 9000.
    Ok,
    /// 6282: end of file reached before Le bytes were read.
    EndOfFile,
    /// 63Cx with x > 0: a PIN check failed or was queried; x tries left.
    TriesLeft(u8),
    /// 63C0, 6983, 6984: the PIN is blocked.
    Locked,
    /// 6982: security status not satisfied (e.g. sign before VERIFY).
    SecurityNotSatisfied,
    /// 6A82: file or application not found.
    NotFound,
    /// 6B00: offset outside the file.
    WrongOffset,
    /// Anything else.
    Other(StatusWord),
}

impl StatusWord {
    /// 9000.
    pub const OK: StatusWord = StatusWord(0x9000);

    /// Classifies the status word.
    pub fn status(self) -> Status {
        match self.0 {
            0x9000 => Status::Ok,
            0x6282 => Status::EndOfFile,
            0x63C0 | 0x6983 | 0x6984 => Status::Locked,
            sw @ 0x63C1..=0x63CF => Status::TriesLeft((sw & 0x0F) as u8),
            0x6982 => Status::SecurityNotSatisfied,
            0x6A82 => Status::NotFound,
            0x6B00 => Status::WrongOffset,
            _ => Status::Other(self),
        }
    }
}

impl fmt::Display for StatusWord {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:04X}", self.0)
    }
}

impl fmt::Debug for StatusWord {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SW {:04X}", self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex_of(apdu: &Apdu) -> String {
        hex::encode_upper(&apdu.encode()[..])
    }

    #[test]
    fn encodes_the_allow_listed_commands() {
        let cases: &[(Apdu, &str)] = &[
            (Apdu::SelectJpkiAp, "00A4040C0AD392F000260100000001"),
            (Apdu::SelectEf(Ef::AuthCert), "00A4020C02000A"),
            (Apdu::SelectEf(Ef::AuthCaCert), "00A4020C02000B"),
            (Apdu::SelectEf(Ef::AuthPin), "00A4020C020018"),
            (Apdu::SelectEf(Ef::AuthKey), "00A4020C020017"),
            (Apdu::PinTriesLeft, "00200080"),
        ];
        for (apdu, want) in cases {
            assert_eq!(hex_of(apdu), *want, "{}", apdu.name());
        }
    }

    #[test]
    fn read_binary_encodes_offset_and_short_le() {
        let cases = [
            (0u16, 4u16, "00B0000004"),
            (4, 256, "00B0000400"),
            (0x0104, 255, "00B00104FF"),
            (0x7FFF, 1, "00B07FFF01"),
        ];
        for (offset, len, want) in cases {
            let range = ReadRange::new(offset, len).expect("valid range");
            assert_eq!(hex_of(&Apdu::ReadBinary(range)), want);
        }
    }

    #[test]
    fn read_range_rejects_short_ef_offsets_and_bad_lengths() {
        // Offset 0x8000 and up would set P1's top bit: read by short EF id.
        assert_eq!(ReadRange::new(0x8000, 4), None);
        assert_eq!(ReadRange::new(0x8100, 4), None);
        assert_eq!(ReadRange::new(0, 0), None);
        assert_eq!(ReadRange::new(0, 257), None);
    }

    #[test]
    fn verify_and_sign_encoding() {
        let pin = Pin::parse("1234\n").expect("pin");
        assert_eq!(hex_of(&Apdu::VerifyPin(pin)), "002000800431323334");
        let info = DigestInfo::sha256(&[0xAB; 32]);
        let bytes = Apdu::Sign(info).encode();
        assert_eq!(&bytes[..5], &[0x80, 0x2A, 0x00, 0x80, 51]);
        assert_eq!(&bytes[5..24], &SHA256_DIGEST_INFO_PREFIX);
        assert_eq!(bytes[24..56], [0xAB; 32]);
        assert_eq!(bytes[56], 0x00);
        assert_eq!(bytes.len(), 57);
    }

    #[test]
    fn display_redacts_the_pin_and_debug_hides_it() {
        let apdu = Apdu::VerifyPin(Pin::parse("9876").expect("pin"));
        let shown = apdu.to_string();
        assert_eq!(shown, "00 20 00 80 04 ** ** ** **");
        let debugged = format!("{apdu:?}");
        assert!(!debugged.contains("9876") && !debugged.contains("39 38"));
        assert_eq!(debugged, "VerifyPin(Pin(****))");
        assert_eq!(Apdu::PinTriesLeft.to_string(), "00 20 00 80");
    }

    #[test]
    fn pin_must_be_four_digits() {
        for bad in ["", "123", "12345", "12a4", "１２３４", "12 4"] {
            assert_eq!(Pin::parse(bad).err(), Some(PinFormatError), "{bad:?}");
        }
        assert!(Pin::parse("0000").is_ok());
        assert!(Pin::parse("0000\r\n").is_ok());
    }

    #[test]
    fn status_words_map() {
        let cases = [
            (0x9000, Status::Ok),
            (0x6282, Status::EndOfFile),
            (0x63C3, Status::TriesLeft(3)),
            (0x63C1, Status::TriesLeft(1)),
            (0x63C0, Status::Locked),
            (0x6983, Status::Locked),
            (0x6984, Status::Locked),
            (0x6982, Status::SecurityNotSatisfied),
            (0x6A82, Status::NotFound),
            (0x6B00, Status::WrongOffset),
            (0x6D00, Status::Other(StatusWord(0x6D00))),
        ];
        for (sw, want) in cases {
            assert_eq!(StatusWord(sw).status(), want, "{sw:04X}");
        }
    }

    #[test]
    fn response_splits_status_word() {
        assert_eq!(Response::parse(&[0x90]), None);
        let r = Response::parse(&[0x01, 0x02, 0x63, 0xC2]).expect("response");
        assert_eq!(r.data, vec![1, 2]);
        assert_eq!(r.sw.status(), Status::TriesLeft(2));
    }
}
