//! Character sets of SIP2 peers: IBM850 (code page 850, the SIP2 default)
//! and UTF-8.
//!
//! Field values travel as bytes; text is made only where the bridge must read
//! or write it (its own screen messages, or a peer whose character set differs
//! from the other side's).

use std::fmt;
use std::str::FromStr;

/// A peer's character set.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Charset {
    /// IBM code page 850 (the SIP2 default).
    #[default]
    Ibm850,
    /// UTF-8.
    Utf8,
}

/// Code page 850, bytes 0x80 to 0xFF (0x00 to 0x7F are ASCII).
const CP850_HIGH: [char; 128] = [
    '\u{00C7}', '\u{00FC}', '\u{00E9}', '\u{00E2}', '\u{00E4}', '\u{00E0}', '\u{00E5}', '\u{00E7}',
    '\u{00EA}', '\u{00EB}', '\u{00E8}', '\u{00EF}', '\u{00EE}', '\u{00EC}', '\u{00C4}', '\u{00C5}',
    '\u{00C9}', '\u{00E6}', '\u{00C6}', '\u{00F4}', '\u{00F6}', '\u{00F2}', '\u{00FB}', '\u{00F9}',
    '\u{00FF}', '\u{00D6}', '\u{00DC}', '\u{00F8}', '\u{00A3}', '\u{00D8}', '\u{00D7}', '\u{0192}',
    '\u{00E1}', '\u{00ED}', '\u{00F3}', '\u{00FA}', '\u{00F1}', '\u{00D1}', '\u{00AA}', '\u{00BA}',
    '\u{00BF}', '\u{00AE}', '\u{00AC}', '\u{00BD}', '\u{00BC}', '\u{00A1}', '\u{00AB}', '\u{00BB}',
    '\u{2591}', '\u{2592}', '\u{2593}', '\u{2502}', '\u{2524}', '\u{00C1}', '\u{00C2}', '\u{00C0}',
    '\u{00A9}', '\u{2563}', '\u{2551}', '\u{2557}', '\u{255D}', '\u{00A2}', '\u{00A5}', '\u{2510}',
    '\u{2514}', '\u{2534}', '\u{252C}', '\u{251C}', '\u{2500}', '\u{253C}', '\u{00E3}', '\u{00C3}',
    '\u{255A}', '\u{2554}', '\u{2569}', '\u{2566}', '\u{2560}', '\u{2550}', '\u{256C}', '\u{00A4}',
    '\u{00F0}', '\u{00D0}', '\u{00CA}', '\u{00CB}', '\u{00C8}', '\u{0131}', '\u{00CD}', '\u{00CE}',
    '\u{00CF}', '\u{2518}', '\u{250C}', '\u{2588}', '\u{2584}', '\u{00A6}', '\u{00CC}', '\u{2580}',
    '\u{00D3}', '\u{00DF}', '\u{00D4}', '\u{00D2}', '\u{00F5}', '\u{00D5}', '\u{00B5}', '\u{00FE}',
    '\u{00DE}', '\u{00DA}', '\u{00DB}', '\u{00D9}', '\u{00FD}', '\u{00DD}', '\u{00AF}', '\u{00B4}',
    '\u{00AD}', '\u{00B1}', '\u{2017}', '\u{00BE}', '\u{00B6}', '\u{00A7}', '\u{00F7}', '\u{00B8}',
    '\u{00B0}', '\u{00A8}', '\u{00B7}', '\u{00B9}', '\u{00B3}', '\u{00B2}', '\u{25A0}', '\u{00A0}',
];

impl Charset {
    /// Text from a field's bytes. Bytes that are not text in this character
    /// set (broken UTF-8) become U+FFFD.
    pub fn decode(self, bytes: &[u8]) -> String {
        match self {
            Charset::Utf8 => String::from_utf8_lossy(bytes).into_owned(),
            Charset::Ibm850 => bytes
                .iter()
                .map(|b| match *b {
                    0..=0x7F => char::from(*b),
                    high => CP850_HIGH[usize::from(high - 0x80)],
                })
                .collect(),
        }
    }

    /// Bytes for text; a character this set cannot hold becomes `?`.
    pub fn encode(self, text: &str) -> Vec<u8> {
        match self {
            Charset::Utf8 => text.as_bytes().to_vec(),
            Charset::Ibm850 => text.chars().map(cp850_byte).collect(),
        }
    }

    /// The same text in another character set (`?` where `to` cannot hold a
    /// character). Bytes pass unchanged when both sets are the same.
    pub fn transcode(self, to: Charset, bytes: &[u8]) -> Vec<u8> {
        if self == to {
            return bytes.to_vec();
        }
        to.encode(&self.decode(bytes))
    }

    /// The name used in configuration.
    pub fn name(self) -> &'static str {
        match self {
            Charset::Ibm850 => "ibm850",
            Charset::Utf8 => "utf-8",
        }
    }
}

fn cp850_byte(c: char) -> u8 {
    if c.is_ascii() {
        return c as u8;
    }
    CP850_HIGH
        .iter()
        .position(|h| *h == c)
        .and_then(|i| u8::try_from(i + 0x80).ok())
        .unwrap_or(b'?')
}

/// A character set name that is not one of ours.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown character set {0:?}: use \"ibm850\" (the SIP2 default) or \"utf-8\"")]
pub struct UnknownCharset(pub String);

impl FromStr for Charset {
    type Err = UnknownCharset;
    fn from_str(s: &str) -> Result<Charset, UnknownCharset> {
        match s.to_ascii_lowercase().replace(['-', '_'], "").as_str() {
            "ibm850" | "cp850" | "850" => Ok(Charset::Ibm850),
            "utf8" => Ok(Charset::Utf8),
            _ => Err(UnknownCharset(s.to_owned())),
        }
    }
}

impl fmt::Display for Charset {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn known_code_page_850_bytes() {
        let cases: &[(&str, &[u8])] = &[
            ("M\u{FC}ller", b"M\x81ller"),
            ("\u{C7}a \u{E9}t\u{E9}", b"\x80a \x82t\x82"),
            ("\u{DF}", b"\xE1"),
            ("\u{A0}", b"\xFF"),
            ("\u{2591}", b"\xB0"),
        ];
        for (text, bytes) in cases {
            assert_eq!(Charset::Ibm850.encode(text), *bytes, "{text}");
            assert_eq!(Charset::Ibm850.decode(bytes), *text);
        }
    }

    #[test]
    fn what_850_cannot_hold_becomes_a_question_mark() {
        assert_eq!(
            Charset::Ibm850.encode("\u{5C71}\u{7530} Hanako"),
            b"?? Hanako"
        );
        assert_eq!(
            Charset::Utf8.transcode(Charset::Ibm850, "J\u{FC}rgen".as_bytes()),
            b"J\x81rgen"
        );
        assert_eq!(
            Charset::Ibm850.transcode(Charset::Utf8, b"J\x81rgen"),
            "J\u{FC}rgen".as_bytes()
        );
    }

    #[test]
    fn names_parse() {
        for (name, want) in [
            ("IBM850", Charset::Ibm850),
            ("cp850", Charset::Ibm850),
            ("utf-8", Charset::Utf8),
            ("UTF8", Charset::Utf8),
        ] {
            assert_eq!(name.parse::<Charset>(), Ok(want));
        }
        assert!(
            "latin1"
                .parse::<Charset>()
                .unwrap_err()
                .to_string()
                .contains("ibm850")
        );
    }

    proptest! {
        /// Every byte is a character of 850 and comes back as the same byte.
        #[test]
        fn cp850_round_trips_every_byte(bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
            let text = Charset::Ibm850.decode(&bytes);
            prop_assert_eq!(Charset::Ibm850.encode(&text), bytes);
        }
    }
}
