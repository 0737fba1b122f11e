use super::*;
use proptest::prelude::*;

fn decode_ok(frame: &[u8]) -> Decoded {
    Message::decode(frame).unwrap_or_else(|e| panic!("{:?}: {e}", String::from_utf8_lossy(frame)))
}

#[test]
fn the_checksum_matches_a_published_example() {
    // From the Sip2 client for Python (PyPI `Sip2`), whose comment gives EB80.
    let prefix =
        b"09N20160419    12200820160419    122008APReading Room 1|AO830|AB830$28170815|AC|AY2AZ";
    assert_eq!(checksum_of(prefix), 0xEB80);
    let mut frame = prefix.to_vec();
    frame.extend_from_slice(b"EB80\r");
    let d = decode_ok(&frame);
    assert_eq!(d.checksum, Checksum::Valid);
    assert_eq!(d.message.command(), Command::Checkin);
    assert_eq!(d.message.sequence(), Sequence::new(2));
    assert_eq!(
        d.message.field(FieldId::ITEM_ID),
        Some(&b"830$28170815"[..])
    );
    assert_eq!(d.message.field(FieldId::TERMINAL_PASSWORD), Some(&b""[..]));
    assert_eq!(d.message.encode(true), frame);
}

#[test]
fn lenient_forms_real_peers_send_are_accepted() {
    let base = b"2300120261203    120000AOlib|AA123|AC|AD|AY1AZ".to_vec();
    let sum = checksum_of(&base);
    let canonical = {
        let mut f = base.clone();
        f.extend_from_slice(format!("{sum:04X}\r").as_bytes());
        f
    };
    let want = decode_ok(&canonical);
    let forms: Vec<Vec<u8>> = vec![
        // lower case
        [&base[..], format!("{sum:04x}\r").as_bytes()].concat(),
        // CRLF
        [&base[..], format!("{sum:04X}\r\n").as_bytes()].concat(),
        // no terminator at all
        [&base[..], format!("{sum:04X}").as_bytes()].concat(),
    ];
    for f in forms {
        assert_eq!(decode_ok(&f), want, "{:?}", String::from_utf8_lossy(&f));
    }
    // No zero padding: a message whose checksum is below 0x1000.
    let mut n = 0u32;
    loop {
        let filler = "x".repeat(n as usize);
        let mut b =
            format!("2300120261203    120000AOlib|AA123|ZZ{filler}|AC|AD|AY1AZ").into_bytes();
        let sum = checksum_of(&b);
        if sum < 0x1000 {
            b.extend_from_slice(format!("{sum:X}\r").as_bytes());
            let d = decode_ok(&b);
            assert_eq!(d.checksum, Checksum::Valid);
            assert_eq!(
                d.message.field(FieldId::new(*b"ZZ").unwrap()),
                Some(filler.as_bytes())
            );
            // Sent back in the spec's form: four digits.
            let out = d.message.encode(true);
            assert_eq!(&out[out.len() - 5..], format!("{sum:04X}\r").as_bytes());
            break;
        }
        n += 1;
        assert!(n < 2_000, "no small checksum found");
    }
    // A delimiter between AY and AZ, and a missing final delimiter.
    let mut b = b"2300120261203    120000AOlib|AA123|AY1|AZ".to_vec();
    b.extend_from_slice(format!("{:04X}\r", checksum_of(&b)).as_bytes());
    let d = decode_ok(&b);
    assert_eq!(d.message.sequence(), Sequence::new(1));
    assert_eq!(d.message.fields().len(), 2);
    let d = decode_ok(b"2300120261203    120000AOlib|AA123\r");
    assert_eq!(d.message.field(FieldId::PATRON_ID), Some(&b"123"[..]));
    assert_eq!(d.checksum, Checksum::Absent);
}

#[test]
fn a_wrong_checksum_is_an_error() {
    let mut b = b"9900302.00AY1AZ".to_vec();
    let sum = checksum_of(&b).wrapping_add(1);
    b.extend_from_slice(format!("{sum:04X}\r").as_bytes());
    assert_eq!(Message::decode(&b), Err(DecodeError::Checksum));
}

#[test]
fn malformed_frames_are_errors_that_quote_nothing() {
    let cases: Vec<(&[u8], DecodeError)> = vec![
        (b"", DecodeError::TooShort),
        (b"9\r", DecodeError::TooShort),
        (
            b"2300120261203\r",
            DecodeError::FixedTruncated {
                command: Command::PatronStatus,
                want: 21,
                got: 11,
            },
        ),
        (
            b"2300120261203    120000AOlib|A",
            DecodeError::FieldId { at: 29 },
        ),
        (
            b"2300120261203    120000A|lib|",
            DecodeError::FieldId { at: 23 },
        ),
        (b"99\r00302.00\r", DecodeError::InnerCr { at: 2 }),
        (b"\x00\x01garbage|\r", DecodeError::Command),
    ];
    for (frame, want) in cases {
        let got = Message::decode(frame);
        assert_eq!(
            got,
            Err(want.clone()),
            "{:?}",
            String::from_utf8_lossy(frame)
        );
        let text = want.to_string();
        assert!(!text.contains("lib"), "{text}");
    }
}

#[test]
fn a_field_ending_in_az_text_is_not_taken_for_a_checksum() {
    let d = decode_ok(b"2300120261203    120000AOlib|AFsee AZ12\r");
    assert_eq!(d.checksum, Checksum::Absent);
    assert_eq!(
        d.message.field(FieldId::SCREEN_MESSAGE),
        Some(&b"see AZ12"[..])
    );
}

#[test]
fn a_sequence_number_before_empty_segments_is_the_sequence_number() {
    // Found by the sip2_codec fuzz target: read as a field AY, it was
    // written back where the sequence number goes and read back differently.
    for frame in [
        &b"2300120261203    120000AOlib|AY3||\r"[..],
        &b"2300120261203    120000AOlib|AY3||AZ"[..],
    ] {
        let mut frame = frame.to_vec();
        if frame.ends_with(b"AZ") {
            let sum = checksum_of(&frame);
            frame.extend_from_slice(format!("{sum:04X}\r").as_bytes());
        }
        let d = decode_ok(&frame);
        assert_eq!(d.message.sequence(), Sequence::new(3));
        assert_eq!(d.message.field(FieldId::SEQUENCE), None);
        assert_eq!(d.message.field(FieldId::INSTITUTION_ID), Some(&b"lib"[..]));
        let wire = d.message.encode(true);
        assert_eq!(decode_ok(&wire).message, d.message);
    }
}

#[test]
fn unknown_commands_pass_through_whole() {
    let frame = b"XY|anything|AAgoes here\r";
    let d = decode_ok(frame);
    assert_eq!(d.message.command(), Command::Unknown(*b"XY"));
    assert!(d.message.fields().is_empty());
    assert_eq!(d.message.encode(false), frame);
}

#[test]
fn set_field_replaces_in_place() {
    let mut m = decode_ok(
        b"11YN20261203    120000                  AOlib|AAPLACEHOLDER|ABitem-1|AC|ZZodd|\r",
    )
    .message;
    m.set_field(FieldId::PATRON_ID, b"LIB-0042".to_vec())
        .unwrap();
    assert_eq!(
        m.encode(false),
        b"11YN20261203    120000                  AOlib|AALIB-0042|ABitem-1|AC|ZZodd|\r"
    );
    assert!(m.set_field(FieldId::PATRON_ID, b"a|b".to_vec()).is_err());
}

#[test]
fn debug_output_never_shows_values() {
    let m = decode_ok(
        b"11YN20261203    120000                  AOlib|AAsecret-patron|ABsecret-item|\r",
    )
    .message;
    let text = format!("{m:?}");
    assert!(!text.contains("secret"), "{text}");
}

// ---- properties ----------------------------------------------------------------

const KNOWN: &[&[u8; 2]] = &[
    b"93", b"94", b"99", b"98", b"23", b"24", b"63", b"64", b"11", b"12", b"09", b"10", b"29",
    b"30", b"17", b"18", b"35", b"36", b"37", b"38", b"01", b"15", b"16", b"19", b"20", b"25",
    b"26", b"65", b"66",
];

fn value() -> impl Strategy<Value = Vec<u8>> {
    proptest::collection::vec(
        any::<u8>().prop_filter("no | or CR", |b| *b != b'|' && *b != b'\r'),
        0..40,
    )
}

fn field_id() -> impl Strategy<Value = FieldId> {
    // Real identifiers and arbitrary ones (which no one here knows), but
    // never AY or AZ, which are the trailer's.
    prop_oneof![
        prop::sample::select(vec![
            *b"AA", *b"AB", *b"AO", *b"AC", *b"AD", *b"AE", *b"AF", *b"BL"
        ]),
        (any::<u8>(), any::<u8>()).prop_map(|(a, b)| [a, b]),
    ]
    .prop_filter_map("valid id", |b| {
        (b != *b"AY" && b != *b"AZ")
            .then(|| FieldId::new(b).ok())
            .flatten()
    })
}

fn message() -> impl Strategy<Value = Message> {
    (
        prop::sample::select(KNOWN.to_vec()),
        proptest::collection::vec((field_id(), value()), 0..8),
        proptest::option::of(0u8..10),
        any::<u64>(),
    )
        .prop_map(|(code, fields, seq, fill)| {
            let command = Command::from_code(*code);
            let n = command.fixed_len().unwrap_or(0);
            // Fixed fields: printable bytes (dates, flags, counts), never CR.
            let fixed: Vec<u8> = (0..n)
                .map(|i| b' ' + ((fill >> (i % 60)) as u8 % 90))
                .collect();
            let fields = fields
                .into_iter()
                .map(|(id, v)| Field::new(id, v).unwrap())
                .collect();
            let mut m = Message::new(command, fixed, fields).unwrap();
            m.set_sequence(seq.and_then(Sequence::new));
            m
        })
}

proptest! {
    /// decode(encode(m)) == m, with and without a checksum.
    #[test]
    fn round_trip(m in message()) {
        let d = Message::decode(&m.encode(true)).unwrap();
        prop_assert_eq!(d.checksum, Checksum::Valid);
        prop_assert_eq!(&d.message, &m);
        let mut plain = m.clone();
        plain.set_sequence(None);
        let d = Message::decode(&m.encode(false)).unwrap();
        prop_assert_eq!(d.message, plain);
    }

    /// What encode writes always carries a checksum that adds up to zero.
    #[test]
    fn checksum_adds_up(m in message()) {
        let bytes = m.encode(true);
        let body = &bytes[..bytes.len() - 1];
        let digits = std::str::from_utf8(&body[body.len() - 4..]).unwrap();
        let value = u16::from_str_radix(digits, 16).unwrap();
        let sum = body[..body.len() - 4].iter().fold(0u16, |a, b| a.wrapping_add(u16::from(*b)));
        prop_assert_eq!(sum.wrapping_add(value), 0);
    }

    /// One changed byte never yields a different message with a valid checksum.
    #[test]
    fn a_changed_byte_is_caught(m in message(), at in any::<prop::sample::Index>(), to in any::<u8>()) {
        let mut bytes = m.encode(true);
        let i = at.index(bytes.len() - 1);
        prop_assume!(bytes[i] != to && to != b'\r');
        bytes[i] = to;
        if let Ok(d) = Message::decode(&bytes) {
            prop_assert!(d.checksum == Checksum::Absent || d.message == m,
                "a tampered frame decoded as another message with a valid checksum");
        }
    }

    /// Rewriting the patron id leaves every other field, known or unknown,
    /// byte for byte and in order.
    #[test]
    fn passthrough(m in message(), patron in "[A-Z0-9-]{1,20}") {
        let d = Message::decode(&m.encode(true)).unwrap().message;
        let mut out = d.clone();
        out.set_field(FieldId::PATRON_ID, patron.as_bytes().to_vec()).unwrap();
        let back = Message::decode(&out.encode(true)).unwrap().message;
        let others = |x: &Message| -> Vec<Field> {
            let mut first_aa = true;
            x.fields().iter().filter(|f| {
                if f.id() == FieldId::PATRON_ID && first_aa { first_aa = false; false } else { true }
            }).cloned().collect()
        };
        prop_assert_eq!(others(&back), others(&m));
        prop_assert_eq!(back.fixed(), m.fixed());
        prop_assert_eq!(back.field(FieldId::PATRON_ID), Some(patron.as_bytes()));
    }

    /// Canonical bytes survive decode and encode unchanged.
    #[test]
    fn canonical_bytes_are_kept(m in message()) {
        let bytes = m.encode(true);
        prop_assert_eq!(Message::decode(&bytes).unwrap().message.encode(true), bytes);
    }

    /// Any bytes at all: an answer, never a panic.
    #[test]
    fn never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
        let _ = Message::decode(&bytes);
    }
}

/// A command of unknown layout with fixed bytes: its checksum is read back
/// where `encode` wrote it (found by the fuzz target `sip2_codec`).
#[test]
fn unknown_command_checksum_is_read_back() {
    let m = Message::decode(b"E2B").unwrap().message;
    let wire = m.encode(true);
    let back = Message::decode(&wire).unwrap();
    assert_eq!(back.checksum, Checksum::Valid);
    assert_eq!(back.message, m);
}
