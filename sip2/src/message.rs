//! One SIP2 message: decoding a frame, encoding the spec's form, the checksum.
//!
//! A message is its [`Command`], its fixed fields as raw bytes (their length
//! is the command's), its variable fields in wire order, and an optional
//! sequence number. Field values are bytes, never re-encoded text, so a field
//! the bridge does not touch (including one whose identifier nobody here
//! knows) leaves exactly as it came.
//!
//! The checksum (`AZ`) is four hex digits: the two's complement of the low 16
//! bits of the sum of every byte from the first through the `Z` of `AZ`. A
//! frame carries a valid checksum when that sum plus the checksum's value is
//! zero modulo 2^16.

use crate::command::Command;
use std::fmt;

const DELIMITER: u8 = b'|';
const CR: u8 = b'\r';
const LF: u8 = b'\n';

/// A variable field's two-character identifier.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct FieldId([u8; 2]);

impl FieldId {
    /// AA: patron identifier.
    pub const PATRON_ID: FieldId = FieldId(*b"AA");
    /// AB: item identifier.
    pub const ITEM_ID: FieldId = FieldId(*b"AB");
    /// AC: terminal password.
    pub const TERMINAL_PASSWORD: FieldId = FieldId(*b"AC");
    /// AD: patron password.
    pub const PATRON_PASSWORD: FieldId = FieldId(*b"AD");
    /// AE: personal name.
    pub const PERSONAL_NAME: FieldId = FieldId(*b"AE");
    /// AF: screen message.
    pub const SCREEN_MESSAGE: FieldId = FieldId(*b"AF");
    /// AG: print line.
    pub const PRINT_LINE: FieldId = FieldId(*b"AG");
    /// AH: due date.
    pub const DUE_DATE: FieldId = FieldId(*b"AH");
    /// AJ: title identifier.
    pub const TITLE_ID: FieldId = FieldId(*b"AJ");
    /// AM: library name.
    pub const LIBRARY_NAME: FieldId = FieldId(*b"AM");
    /// AN: terminal location.
    pub const TERMINAL_LOCATION: FieldId = FieldId(*b"AN");
    /// AO: institution id.
    pub const INSTITUTION_ID: FieldId = FieldId(*b"AO");
    /// AY: sequence number (carried in [`Message::sequence`], never as a field).
    pub const SEQUENCE: FieldId = FieldId(*b"AY");
    /// AZ: checksum (written by [`Message::encode`], never a field).
    pub const CHECKSUM: FieldId = FieldId(*b"AZ");
    /// BL: valid patron (Y or N).
    pub const VALID_PATRON: FieldId = FieldId(*b"BL");
    /// BX: supported messages.
    pub const SUPPORTED_MESSAGES: FieldId = FieldId(*b"BX");
    /// CN: login user id.
    pub const LOGIN_USER: FieldId = FieldId(*b"CN");
    /// CO: login password.
    pub const LOGIN_PASSWORD: FieldId = FieldId(*b"CO");
    /// CP: location code.
    pub const LOCATION_CODE: FieldId = FieldId(*b"CP");
    /// CQ: valid patron password (Y or N).
    pub const VALID_PATRON_PASSWORD: FieldId = FieldId(*b"CQ");

    /// Two bytes that are neither the delimiter nor a line end.
    pub fn new(bytes: [u8; 2]) -> Result<FieldId, FieldError> {
        if bytes.iter().any(|b| matches!(*b, DELIMITER | CR | LF)) {
            return Err(FieldError::Id);
        }
        Ok(FieldId(bytes))
    }

    /// The two bytes.
    pub fn as_bytes(&self) -> [u8; 2] {
        self.0
    }
}

impl fmt::Debug for FieldId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "FieldId({self})")
    }
}

impl fmt::Display for FieldId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let [a, b] = self.0;
        if a.is_ascii_graphic() && b.is_ascii_graphic() {
            write!(f, "{}{}", a as char, b as char)
        } else {
            write!(f, "0x{a:02x}{b:02x}")
        }
    }
}

/// A variable field: an identifier and a value that holds neither the
/// delimiter nor a CR.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Field {
    id: FieldId,
    value: Vec<u8>,
}

/// Field values are not printed: they can be item ids, names or passwords.
impl fmt::Debug for Field {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Field({}, {} bytes)", self.id, self.value.len())
    }
}

impl Field {
    /// A field; the value must hold neither `|` nor CR.
    pub fn new(id: FieldId, value: impl Into<Vec<u8>>) -> Result<Field, FieldError> {
        let value = value.into();
        if value.iter().any(|b| matches!(*b, DELIMITER | CR)) {
            return Err(FieldError::Value(id));
        }
        Ok(Field { id, value })
    }
    /// The identifier.
    pub fn id(&self) -> FieldId {
        self.id
    }
    /// The value's bytes, as they came.
    pub fn value(&self) -> &[u8] {
        &self.value
    }
}

/// A field that cannot be written.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FieldError {
    /// An identifier with a delimiter or line end in it.
    #[error("a field identifier may not hold '|', CR or LF")]
    Id,
    /// A value with a delimiter or CR in it.
    #[error("the value of field {0} holds '|' or CR, which would end the field or the message")]
    Value(FieldId),
}

/// A message that cannot be built.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MessageError {
    /// The fixed fields have the wrong length for the command.
    #[error("command {command} has {want} bytes of fixed fields, not {got}")]
    FixedLength {
        /// The command.
        command: Command,
        /// Its fixed length.
        want: usize,
        /// What was given.
        got: usize,
    },
    /// A CR in the fixed fields would end the message.
    #[error("the fixed fields of command {0} hold a CR")]
    FixedCr(Command),
}

/// A sequence number (`AY`): one digit, 0 to 9.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Sequence(u8);

impl Sequence {
    /// A sequence number; `None` above 9.
    pub fn new(n: u8) -> Option<Sequence> {
        (n <= 9).then_some(Sequence(n))
    }
    /// The digit's value.
    pub fn get(self) -> u8 {
        self.0
    }
    /// The next number, wrapping after 9.
    pub fn next(self) -> Sequence {
        Sequence((self.0 + 1) % 10)
    }
}

/// Whether a decoded frame carried a checksum (a wrong one is an error).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Checksum {
    /// No `AZ` at the end.
    Absent,
    /// An `AZ` that adds up.
    Valid,
}

/// A decoded frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decoded {
    /// The message.
    pub message: Message,
    /// Whether the frame carried a (valid) checksum.
    pub checksum: Checksum,
}

/// A frame that is not a SIP2 message. The text never quotes the frame's
/// bytes: they can be item ids, names or passwords.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// Fewer than two bytes: no command.
    #[error("a SIP2 message needs at least its two-character command")]
    TooShort,
    /// The first two bytes are not a command (two ASCII letters or digits).
    #[error("a SIP2 message starts with a two-character command (letters or digits)")]
    Command,
    /// A CR inside the frame.
    #[error("a CR at byte {at} inside the message: a frame ends at its first CR")]
    InnerCr {
        /// Where.
        at: usize,
    },
    /// The checksum does not add up.
    #[error(
        "checksum error: the AZ field does not match the message's bytes (the sender should resend)"
    )]
    Checksum,
    /// The frame ends inside the command's fixed fields.
    #[error("command {command} needs {want} bytes of fixed fields, the message has {got}")]
    FixedTruncated {
        /// The command.
        command: Command,
        /// Its fixed length.
        want: usize,
        /// What the frame held.
        got: usize,
    },
    /// A field identifier is cut short or holds a delimiter.
    #[error("a variable field at byte {at} has no two-character identifier")]
    FieldId {
        /// Where.
        at: usize,
    },
}

/// One SIP2 message.
#[derive(Clone, PartialEq, Eq)]
pub struct Message {
    command: Command,
    fixed: Vec<u8>,
    fields: Vec<Field>,
    sequence: Option<Sequence>,
}

/// Shows the command and field identifiers, never the values.
impl fmt::Debug for Message {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Message")
            .field("command", &self.command)
            .field("fixed_bytes", &self.fixed.len())
            .field("fields", &self.fields)
            .field("sequence", &self.sequence)
            .finish()
    }
}

impl Message {
    /// A message. For a known command `fixed` must have its fixed length; for
    /// an unknown one it is the whole body after the command (passed on as is).
    pub fn new(
        command: Command,
        fixed: impl Into<Vec<u8>>,
        fields: Vec<Field>,
    ) -> Result<Message, MessageError> {
        let fixed = fixed.into();
        if let Some(want) = command.fixed_len()
            && fixed.len() != want
        {
            return Err(MessageError::FixedLength {
                command,
                want,
                got: fixed.len(),
            });
        }
        if fixed.contains(&CR) {
            return Err(MessageError::FixedCr(command));
        }
        let fields = match command.fixed_len() {
            Some(_) => fields,
            // An unknown command's layout is not known: it has no fields of its own.
            None => Vec::new(),
        };
        Ok(Message {
            command,
            fixed,
            fields,
            sequence: None,
        })
    }

    /// The command.
    pub fn command(&self) -> Command {
        self.command
    }
    /// The fixed fields' bytes.
    pub fn fixed(&self) -> &[u8] {
        &self.fixed
    }
    /// The variable fields, in wire order.
    pub fn fields(&self) -> &[Field] {
        &self.fields
    }
    /// The sequence number.
    pub fn sequence(&self) -> Option<Sequence> {
        self.sequence
    }
    /// Sets the sequence number (written only with a checksum).
    pub fn set_sequence(&mut self, sequence: Option<Sequence>) {
        self.sequence = sequence;
    }
    /// The value of the first field with this identifier.
    pub fn field(&self, id: FieldId) -> Option<&[u8]> {
        self.fields.iter().find(|f| f.id == id).map(|f| f.value())
    }

    /// Replaces the value of the first field with this identifier, in place,
    /// or appends the field. Every other field stays as it was.
    pub fn set_field(&mut self, id: FieldId, value: impl Into<Vec<u8>>) -> Result<(), FieldError> {
        let field = Field::new(id, value)?;
        match self.fields.iter_mut().find(|f| f.id == id) {
            Some(f) => *f = field,
            None if self.command.fixed_len().is_some() => self.fields.push(field),
            None => {}
        }
        Ok(())
    }

    /// Rewrites every field value with `f` (e.g. to change character set). A
    /// result holding `|` or CR has those bytes replaced with `?`.
    pub fn map_values(&mut self, mut f: impl FnMut(FieldId, &[u8]) -> Vec<u8>) {
        for field in &mut self.fields {
            let mut value = f(field.id, &field.value);
            for b in &mut value {
                if matches!(*b, DELIMITER | CR) {
                    *b = b'?';
                }
            }
            field.value = value;
        }
    }

    /// The spec's form: command, fixed fields, each variable field closed by
    /// `|`, then with `checksum` the sequence number (if any) and `AZ` with four
    /// upper-case hex digits, then CR. Without `checksum` no `AY` is written.
    pub fn encode(&self, checksum: bool) -> Vec<u8> {
        let mut out = Vec::with_capacity(
            2 + self.fixed.len()
                + self.fields.iter().map(|f| 3 + f.value.len()).sum::<usize>()
                + 10,
        );
        out.extend_from_slice(&self.command.code());
        out.extend_from_slice(&self.fixed);
        for field in &self.fields {
            out.extend_from_slice(&field.id.0);
            out.extend_from_slice(&field.value);
            out.push(DELIMITER);
        }
        if checksum {
            if let Some(s) = self.sequence {
                out.extend_from_slice(b"AY");
                out.push(b'0' + s.0);
            }
            out.extend_from_slice(b"AZ");
            let sum = checksum_of(&out);
            out.extend_from_slice(format!("{sum:04X}").as_bytes());
        }
        out.push(CR);
        out
    }

    /// Decodes one frame, with or without its terminator (CR, CRLF or LF).
    pub fn decode(frame: &[u8]) -> Result<Decoded, DecodeError> {
        let body = strip_terminator(frame);
        if let Some(at) = body.iter().position(|b| *b == CR) {
            return Err(DecodeError::InnerCr { at });
        }
        if body.len() < 2 {
            return Err(DecodeError::TooShort);
        }
        if !body[..2].iter().all(u8::is_ascii_alphanumeric) {
            return Err(DecodeError::Command);
        }
        let command = Command::from_code([body[0], body[1]]);
        let var_start = 2 + command.fixed_len().unwrap_or(0);
        let boundary = |pos: usize| {
            pos == var_start || (pos > var_start && pos <= body.len() && body[pos - 1] == DELIMITER)
        };

        // The checksum: AZ and one to four hex digits at the very end, at a field boundary.
        let hex_run = body
            .iter()
            .rev()
            .take_while(|b| b.is_ascii_hexdigit())
            .count();
        let mut end = body.len();
        let mut checksum = Checksum::Absent;
        if (1..=4).contains(&hex_run) && body.len() >= hex_run + 2 {
            let az = body.len() - hex_run - 2;
            // A command of unknown layout has no field boundaries: its
            // checksum is wherever `encode` put it, right after the rest.
            let at_boundary = boundary(az)
                || sequence_before(body, az, &boundary).is_some()
                || command.fixed_len().is_none();
            if &body[az..az + 2] == b"AZ" && at_boundary {
                let value = body[az + 2..]
                    .iter()
                    .fold(0u32, |acc, b| (acc << 4) | hex_value(*b));
                let sum = body[..az + 2]
                    .iter()
                    .fold(0u32, |acc, b| acc.wrapping_add(u32::from(*b)));
                if (sum.wrapping_add(value)) & 0xFFFF != 0 {
                    return Err(DecodeError::Checksum);
                }
                checksum = Checksum::Valid;
                end = az;
            }
        }
        let mut sequence = None;
        if let Some((start, digit)) = sequence_before(body, end, &boundary) {
            sequence = Sequence::new(digit - b'0');
            end = start;
        }

        let fixed_end = var_start.min(end);
        if let Some(want) = command.fixed_len()
            && body.len() < var_start
        {
            return Err(DecodeError::FixedTruncated {
                command,
                want,
                got: body.len() - 2,
            });
        }
        let (fixed, mut fields) = match command.fixed_len() {
            None => (body[2..end].to_vec(), Vec::new()),
            Some(_) => (
                body[2..fixed_end].to_vec(),
                parse_fields(body, var_start, end)?,
            ),
        };
        // `AYd` as the last field, left there because empty segments
        // followed it (`AY3||`): it is the sequence number. Kept as a field,
        // `encode` would write it where the sequence number goes and the
        // message would not read back as itself.
        if sequence.is_none()
            && let Some(last) = fields.last()
            && last.id == FieldId::SEQUENCE
            && let [digit] = last.value[..]
            && digit.is_ascii_digit()
        {
            sequence = Sequence::new(digit - b'0');
            fields.pop();
        }
        Ok(Decoded {
            message: Message {
                command,
                fixed,
                fields,
                sequence,
            },
            checksum,
        })
    }
}

/// `AYd` (optionally followed by `|`) ending at `end`, at a field boundary:
/// its start and digit.
fn sequence_before(
    body: &[u8],
    end: usize,
    boundary: &dyn Fn(usize) -> bool,
) -> Option<(usize, u8)> {
    let at = |start: usize, digit_at: usize| {
        let ok =
            &body[start..start + 2] == b"AY" && body[digit_at].is_ascii_digit() && boundary(start);
        ok.then_some((start, body[digit_at]))
    };
    if end >= 4
        && body[end - 1] == DELIMITER
        && let Some(found) = at(end - 4, end - 2)
    {
        return Some(found);
    }
    if end >= 3 {
        return at(end - 3, end - 1);
    }
    None
}

fn parse_fields(body: &[u8], start: usize, end: usize) -> Result<Vec<Field>, DecodeError> {
    let mut fields = Vec::new();
    let mut at = start;
    while at < end {
        if body[at] == DELIMITER {
            // An empty segment ("||"): nothing to keep.
            at += 1;
            continue;
        }
        if at + 2 > end || body[at + 1] == DELIMITER {
            return Err(DecodeError::FieldId { at });
        }
        let id = FieldId([body[at], body[at + 1]]);
        let value_end = body[at + 2..end]
            .iter()
            .position(|b| *b == DELIMITER)
            .map_or(end, |p| at + 2 + p);
        fields.push(Field {
            id,
            value: body[at + 2..value_end].to_vec(),
        });
        // A missing final delimiter is accepted: real peers omit it.
        at = value_end + 1;
    }
    Ok(fields)
}

fn strip_terminator(frame: &[u8]) -> &[u8] {
    let frame = frame.strip_suffix(b"\n").unwrap_or(frame);
    frame.strip_suffix(b"\r").unwrap_or(frame)
}

fn hex_value(b: u8) -> u32 {
    match b {
        b'0'..=b'9' => u32::from(b - b'0'),
        b'a'..=b'f' => u32::from(b - b'a' + 10),
        b'A'..=b'F' => u32::from(b - b'A' + 10),
        _ => 0,
    }
}

/// The checksum for `bytes` (everything from the command through `AZ`).
pub fn checksum_of(bytes: &[u8]) -> u16 {
    let sum = bytes
        .iter()
        .fold(0u16, |acc, b| acc.wrapping_add(u16::from(*b)));
    sum.wrapping_neg()
}

#[cfg(test)]
mod tests;
