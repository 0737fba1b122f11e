//! A SIP2 codec with no I/O: the 3M Standard Interchange Protocol, version
//! 2.00, as self-check machines (SC) and library systems (ACS) speak it over
//! TCP.
//!
//! - [`Framer`] cuts a byte stream into frames at CR (or CRLF), with a bound
//!   on a frame's size, and says how much of a half message it holds.
//! - [`Message::decode`] parses one frame: the command, its fixed fields, its
//!   variable fields in wire order (known or not, each value kept byte for
//!   byte), the sequence number (`AY`) and the checksum (`AZ`), which is
//!   verified over the bytes as they came.
//! - [`Message::encode`] writes the spec's form: every variable field closed by
//!   `|`, `AY` and `AZ` last, four upper-case hex digits, CR.
//! - [`Charset`] turns field bytes into text and back (IBM850, the SIP2
//!   default, or UTF-8), per peer.
//! - [`reply`] builds the minimal valid response to a request, for a bridge that
//!   answers a request itself.
//!
//! Decoding is lenient where real peers differ from the spec (checksums
//! without zero padding or in lower case, a `|` before `AZ`, a missing final
//! `|`, CRLF) and strict where a mistake could change meaning: a checksum that
//! does not add up is an error, never a silently accepted frame.
//!
//! Nothing here reads a clock, opens a socket or draws randomness: times come
//! in as arguments, bytes come in and go out. [`decode`] is the entry a fuzz
//! target calls.
#![forbid(unsafe_code)]
#![cfg_attr(not(test), deny(clippy::unwrap_used))]
#![deny(missing_docs)]

pub mod charset;
pub mod command;
pub mod date;
pub mod framer;
pub mod message;
pub mod reply;

pub use charset::{Charset, UnknownCharset};
pub use command::Command;
pub use date::transaction_date;
pub use framer::{FrameTooLong, Framer};
pub use message::{
    Checksum, DecodeError, Decoded, Field, FieldError, FieldId, Message, MessageError, Sequence,
};

/// Decodes one frame (with or without its CR / CRLF terminator): the entry a
/// fuzz target calls. Never panics, whatever the bytes.
pub fn decode(frame: &[u8]) -> Result<Decoded, DecodeError> {
    Message::decode(frame)
}
