//! A voucher as digits only, the form its QR code carries (numeric mode).
//!
//! Keyboard-wedge scanners type what they read into whatever has the focus,
//! through the keyboard layout and, in Japan, often an input method: digits
//! survive that, punctuation does not. So the 81 bytes become 11 chunks of 7
//! bytes, each written as 17 decimal digits, then the last 4 bytes as 10
//! digits, then two check digits (ISO 7064 MOD 97-10, as in an IBAN) over
//! all of them: [`TEXT_DIGITS`] digits, within QR version 5's 202 at level M.
//!
//! The check digits catch every single changed digit and every swap of two
//! neighbours before the signature is tried, so a misread gets "scan again"
//! rather than "forged". A chunk above its byte range is refused, so each
//! voucher has exactly one text.
//!
//! [`parse`] accepts what a wedge scanner or a person's copy sends: spaces,
//! tabs and line ends around it (a trailing CR or LF), full-width digits
//! (U+FF10–U+FF19, from a Japanese input method) and the ideographic space.
//! Anything else is refused with the character and its position.

use crate::body::{BodyError, SignedVoucher, VOUCHER_BYTES};

/// Bytes per full chunk, and the digits that write one (2^56 < 10^17).
const CHUNK_BYTES: usize = 7;
const CHUNK_DIGITS: usize = 17;
/// The last 4 bytes (2^32 < 10^10).
const TAIL_BYTES: usize = VOUCHER_BYTES % CHUNK_BYTES;
const TAIL_DIGITS: usize = 10;
const FULL_CHUNKS: usize = VOUCHER_BYTES / CHUNK_BYTES;
/// Digits before the check digits.
const DATA_DIGITS: usize = FULL_CHUNKS * CHUNK_DIGITS + TAIL_DIGITS;
/// Digits in a voucher's text.
pub const TEXT_DIGITS: usize = DATA_DIGITS + 2;
/// Characters [`parse`] looks at before refusing a line as too long (a
/// scanner that never sends a line end must not make it read forever).
pub const MAX_LINE_CHARS: usize = 1024;

const _: () = assert!(TAIL_BYTES == 4);
// QR version 5 at level M holds 202 digits in numeric mode.
const _: () = assert!(TEXT_DIGITS <= 202);

/// The voucher's text: [`TEXT_DIGITS`] ASCII digits.
pub fn to_text(v: &SignedVoucher) -> String {
    let bytes = v.to_bytes();
    let mut out = String::with_capacity(TEXT_DIGITS);
    for chunk in bytes.chunks(CHUNK_BYTES) {
        let mut n: u64 = 0;
        for b in chunk {
            n = n << 8 | u64::from(*b);
        }
        let width = if chunk.len() == CHUNK_BYTES {
            CHUNK_DIGITS
        } else {
            TAIL_DIGITS
        };
        out.push_str(&format!("{n:0width$}"));
    }
    let check = 98 - mod97(out.bytes().chain(*b"00"));
    out.push_str(&format!("{check:02}"));
    out
}

/// Reads a voucher's text as a scanner or a person sends it. Checks the
/// check digits, not the signature ([`SignedVoucher::verify`] does that).
pub fn parse(line: &str) -> Result<SignedVoucher, ParseError> {
    let mut digits = Vec::with_capacity(TEXT_DIGITS);
    let trimmed = line.trim_matches(is_space);
    if trimmed.is_empty() {
        return Err(ParseError::Empty);
    }
    for (at, ch) in trimmed.chars().enumerate() {
        if at >= MAX_LINE_CHARS {
            return Err(ParseError::Length { got: at + 1 });
        }
        let d = match ch {
            '0'..='9' => ch as u32 - '0' as u32,
            '\u{FF10}'..='\u{FF19}' => ch as u32 - 0xFF10,
            _ => {
                return Err(ParseError::Character { ch, at: at + 1 });
            }
        };
        // d < 10: the cast cannot truncate.
        digits.push(b'0' + d as u8);
    }
    if digits.len() != TEXT_DIGITS {
        return Err(ParseError::Length { got: digits.len() });
    }
    // The check digits must be the ones `to_text` writes (02 to 98): "00"
    // and "01" pass the MOD 97 test wherever "97" and "98" do, and would
    // give one voucher two texts.
    let (data, check) = digits.split_at(DATA_DIGITS);
    let expected = 98 - mod97(data.iter().copied().chain(*b"00"));
    let got = check.iter().fold(0u32, |n, c| n * 10 + u32::from(c - b'0'));
    if got != expected {
        return Err(ParseError::Checksum);
    }
    let mut bytes = [0u8; VOUCHER_BYTES];
    let mut d = &digits[..DATA_DIGITS];
    for (i, out) in bytes.chunks_mut(CHUNK_BYTES).enumerate() {
        let width = if out.len() == CHUNK_BYTES {
            CHUNK_DIGITS
        } else {
            TAIL_DIGITS
        };
        let n = d[..width]
            .iter()
            .fold(0u64, |n, c| n * 10 + u64::from(c - b'0'));
        d = &d[width..];
        if n >> (8 * out.len()) != 0 {
            return Err(ParseError::Chunk { chunk: i + 1 });
        }
        let be = n.to_be_bytes();
        out.copy_from_slice(&be[8 - out.len()..]);
    }
    SignedVoucher::from_bytes(&bytes).map_err(ParseError::Body)
}

fn is_space(c: char) -> bool {
    c.is_whitespace() || c == '\u{3000}'
}

fn mod97(digits: impl Iterator<Item = u8>) -> u32 {
    digits.fold(0, |r, c| (r * 10 + u32::from(c - b'0')) % 97)
}

/// A line that is not a voucher's text.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    /// Nothing but spaces.
    #[error("the line is empty: scan the voucher's code")]
    Empty,
    /// A character that is neither a digit nor a space around the code.
    #[error(
        "character {at} is {ch:?}, but a voucher code is digits only: scan the voucher's QR code, not another barcode, or type only its digits"
    )]
    Character {
        /// What was there.
        ch: char,
        /// Its 1-based position after the leading spaces.
        at: usize,
    },
    /// Too few or too many digits.
    #[error(
        "the code has {got} digits, a voucher has {TEXT_DIGITS}: part was cut off or two codes ran together; scan it again"
    )]
    Length {
        /// Digits given.
        got: usize,
    },
    /// The check digits do not match: a digit was misread or changed.
    #[error(
        "the code's check digits do not match: a digit was misread or changed; scan it again, and refuse the voucher if it fails again"
    )]
    Checksum,
    /// A group of digits is beyond what its bytes can hold.
    #[error(
        "digit group {chunk} of the code is out of range: this is not a voucher this node reads"
    )]
    Chunk {
        /// The 1-based group.
        chunk: usize,
    },
    /// The bytes are not a voucher.
    #[error(transparent)]
    Body(BodyError),
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::body::{ExpiryDate, Serial, VoucherBody};
    use ed25519_dalek::SigningKey;
    use mykey_sync_proto::ids::MunicipalityCode;
    use proptest::prelude::*;

    fn voucher(batch: u32, index: u16, points: u32, days: u16, seed: u8) -> SignedVoucher {
        VoucherBody {
            key_hint: 0,
            municipality: MunicipalityCode::parse("131059").unwrap(),
            serial: Serial { batch, index },
            points,
            expires: ExpiryDate::from_days(days),
        }
        .sign(&SigningKey::from_bytes(&[seed; 32]))
    }

    #[test]
    fn text_is_digits_of_fixed_length() {
        let t = to_text(&voucher(7, 3, 500, 20_000, 1));
        assert_eq!(t.len(), TEXT_DIGITS);
        assert!(t.bytes().all(|b| b.is_ascii_digit()));
    }

    #[test]
    fn only_the_canonical_check_digits_are_accepted() {
        // "00" and "01" pass a plain MOD 97 test wherever "97" and "98" do
        // (the fuzzer found such a line): every other pair is refused, so a
        // voucher has one text.
        let mut high = 0;
        for batch in 1..=2_000u32 {
            let v = voucher(batch, 3, 500, 20_000, 1);
            let t = to_text(&v);
            let (data, check) = t.split_at(DATA_DIGITS);
            let all = batch <= 20;
            if check >= "97" {
                high += 1;
            } else if !all {
                continue;
            }
            for other in 0..100u32 {
                let line = format!("{data}{other:02}");
                if line == t {
                    assert_eq!(parse(&line).unwrap(), v);
                } else {
                    assert_eq!(
                        parse(&line),
                        Err(ParseError::Checksum),
                        "{check} -> {other:02}"
                    );
                }
            }
        }
        assert!(high > 0, "no text with check digits 97 or 98 was tried");
    }

    #[test]
    fn wedge_lines_are_accepted() {
        let v = voucher(7, 3, 500, 20_000, 1);
        let t = to_text(&v);
        let full: String = t
            .chars()
            .map(|c| char::from_u32(c as u32 - '0' as u32 + 0xFF10).unwrap())
            .collect();
        for line in [
            t.clone(),
            format!("{t}\r"),
            format!("{t}\r\n"),
            format!("  {t} \n"),
            format!("\u{3000}{full}\r"),
            full,
        ] {
            assert_eq!(parse(&line), Ok(v.clone()), "{line:?}");
        }
    }

    #[test]
    fn bad_lines_say_what() {
        let t = to_text(&voucher(7, 3, 500, 20_000, 1));
        let cases: Vec<(String, ParseError)> = vec![
            (String::new(), ParseError::Empty),
            ("\r\n".into(), ParseError::Empty),
            (
                format!("{}-{}", &t[..5], &t[5..]),
                ParseError::Character { ch: '-', at: 6 },
            ),
            (
                t[1..].to_string(),
                ParseError::Length {
                    got: TEXT_DIGITS - 1,
                },
            ),
            (
                format!("{t}{t}"),
                ParseError::Length {
                    got: 2 * TEXT_DIGITS,
                },
            ),
            (
                "9".repeat(5000),
                ParseError::Length {
                    got: MAX_LINE_CHARS + 1,
                },
            ),
        ];
        for (line, want) in cases {
            assert_eq!(parse(&line), Err(want), "{line:?}");
        }
    }

    #[test]
    fn every_single_changed_digit_is_refused_by_the_check_digits() {
        let t = to_text(&voucher(7, 3, 500, 20_000, 1));
        let mut b = t.clone().into_bytes();
        for i in 0..b.len() {
            let orig = b[i];
            for d in b'0'..=b'9' {
                if d == orig {
                    continue;
                }
                b[i] = d;
                let line = std::str::from_utf8(&b).unwrap();
                assert_eq!(parse(line), Err(ParseError::Checksum), "digit {i} -> {d}");
            }
            b[i] = orig;
        }
        // Swapped neighbours too.
        for i in 0..b.len() - 1 {
            if b[i] != b[i + 1] {
                b.swap(i, i + 1);
                assert_eq!(
                    parse(std::str::from_utf8(&b).unwrap()),
                    Err(ParseError::Checksum)
                );
                b.swap(i, i + 1);
            }
        }
    }

    #[test]
    fn out_of_range_chunk_is_refused() {
        // 17 nines exceed 7 bytes; fix the check digits so only the range fails.
        let t = to_text(&voucher(7, 3, 500, 20_000, 1));
        let mut data = format!(
            "{}{}",
            "9".repeat(CHUNK_DIGITS),
            &t[CHUNK_DIGITS..DATA_DIGITS]
        );
        let check = 98 - mod97(data.bytes().chain(*b"00"));
        data.push_str(&format!("{check:02}"));
        assert_eq!(parse(&data), Err(ParseError::Chunk { chunk: 1 }));
    }

    proptest! {
        #[test]
        fn round_trip(batch in any::<u32>(), index in 1u16.., points in 1u32.., days in any::<u16>(), seed in any::<u8>()) {
            let v = voucher(batch, index, points, days, seed);
            let t = to_text(&v);
            prop_assert_eq!(t.len(), TEXT_DIGITS);
            prop_assert_eq!(parse(&t), Ok(v));
        }

        #[test]
        fn changed_digit_never_verifies(pos in 0..TEXT_DIGITS, delta in 1u8..10) {
            let k = SigningKey::from_bytes(&[1; 32]);
            let t = to_text(&voucher(7, 3, 500, 20_000, 1));
            let mut b = t.into_bytes();
            b[pos] = b'0' + (b[pos] - b'0' + delta) % 10;
            let line = String::from_utf8(b).unwrap();
            prop_assert!(parse(&line).map(|v| v.verify(&k.verifying_key())).is_err());
        }
    }
}
