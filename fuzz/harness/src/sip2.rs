//! `sip2_codec` and `sip2_bridge`: what a self-check machine or a library
//! system sends the node's SIP2 bridge (crate `mykey-sip2`, and the
//! bridge's deciding core `mykey_node::sip2::core`).
//!
//! `sip2_codec` input: a step byte (how many bytes each read from the
//! socket brings, 0: all at once), then the byte stream, cut by the
//! bridge's `Framer` (frames of at most [`MAX_FRAME`] bytes) and each frame
//! decoded; every frame's fields also go through both character sets.
//!
//! `sip2_bridge` input (`arbitrary`): steps on a bridge with two machines
//! (IBM850 and UTF-8, placeholder `MYKEY`) speaking to an IBM850 library
//! system, tokens on: taps of registered and refused cards, token taps,
//! frames from a machine (bytes, decoded as the bridge decodes them), the
//! library system's answers, time passing.
//!
//! Properties: nothing panics; a framer never holds more than its bound; a
//! decoded message encodes (with checksum) to a frame that decodes to the
//! same message with a valid checksum, and what it encodes to is stable;
//! the library system never receives the placeholder as a patron id, and a
//! patron id the bridge substitutes is the library card number of a card
//! tapped (or a token claimed) for that machine within the windows; a
//! refused card never reaches the library system; every message the
//! bridge sends crosses the wire.

use arbitrary::{Arbitrary, Unstructured};
use mykey_node::sip2::core::{
    Bridge, Holder, MachineId, MachineSpec, Patron, Policy, Refusal, Tap, TapShown, Verdict,
};
use mykey_sip2::{Charset, Checksum, FieldId, Framer, Message};
use mykey_sync_proto::{FacilityCardNumber, UnixMillis};

/// The bridge's frame bound in the target (the bridge's own is larger;
/// a small one reaches the bound often).
pub const MAX_FRAME: usize = 2048;
const START: UnixMillis = UnixMillis(1_764_000_000_000);
/// The machines' placeholder patron id.
pub const PLACEHOLDER: &[u8] = b"MYKEY";

/// A decoded message crosses the wire: it encodes to a frame that decodes
/// to the same message, with a valid checksum, and encoding again gives
/// the same bytes.
fn crosses_the_wire(msg: &Message) {
    let wire = msg.encode(true);
    assert_eq!(wire.last(), Some(&b'\r'));
    assert_eq!(
        wire.iter().filter(|b| **b == b'\r').count(),
        1,
        "one CR, at the end"
    );
    let back = mykey_sip2::decode(&wire).expect("an encoded message decodes");
    assert_eq!(back.checksum, Checksum::Valid);
    assert_eq!(&back.message, msg, "a message survives encode and decode");
    assert_eq!(back.message.encode(true), wire);
}

/// A step byte, then the stream.
pub fn codec(data: &[u8]) {
    let Some((step, stream)) = data.split_first() else {
        return;
    };
    let step = if *step == 0 {
        stream.len().max(1)
    } else {
        usize::from(*step)
    };
    let mut framer = Framer::new(MAX_FRAME);
    for piece in stream.chunks(step) {
        framer.push(piece);
        loop {
            match framer.next_frame() {
                Ok(Some(frame)) => {
                    assert!(frame.len() <= MAX_FRAME);
                    assert!(!frame.contains(&b'\r'));
                    frame_once(&frame);
                }
                Ok(None) => break,
                Err(e) => {
                    assert!(!e.to_string().is_empty());
                    assert_eq!(framer.pending(), 0, "a refused frame is dropped");
                }
            }
        }
        assert!(
            framer.pending() <= MAX_FRAME,
            "a framer's buffer is bounded"
        );
    }
}

fn frame_once(frame: &[u8]) {
    match mykey_sip2::decode(frame) {
        Ok(d) => {
            crosses_the_wire(&d.message);
            for charset in [Charset::Ibm850, Charset::Utf8] {
                let mut m = d.message.clone();
                m.map_values(|_, v| charset.transcode(Charset::Utf8, v));
                crosses_the_wire(&m);
                for f in d.message.fields() {
                    let text = charset.decode(f.value());
                    let _ = charset.encode(&text);
                }
            }
        }
        Err(e) => assert!(!e.to_string().is_empty()),
    }
}

#[derive(Arbitrary, Debug)]
enum Card {
    /// A holder with library card `LIB-000n`.
    Patron(u8),
    Unknown,
    Suspended,
    Replaced,
    Expired,
    NoLibrary,
}

#[derive(Arbitrary, Debug)]
enum Op {
    /// A card tapped on machine 0 or 1's reader (or a machine not configured).
    Tap { machine: u8, card: Card },
    /// A card tapped on the token reader; the token's digits.
    Token { card: Card, digits: u32 },
    /// A frame from a machine.
    Frame { machine: u8, frame: Vec<u8> },
    /// A frame from a machine naming a patron (the placeholder, a token, or as given).
    Patron {
        machine: u8,
        command: u8,
        patron: PatronId,
    },
    /// The library system answers a machine.
    Upstream { machine: u8, frame: Vec<u8> },
    /// Time passes (seconds).
    Tick(u16),
    /// Shutdown forgets everything.
    Forget,
}

#[derive(Arbitrary, Debug)]
enum PatronId {
    Placeholder,
    /// The last token handed out (if any).
    LastToken,
    Typed(Vec<u8>),
}

#[derive(Arbitrary, Debug)]
struct Case {
    ops: Vec<Op>,
}

const MAX_OPS: usize = 64;
/// Requests that carry a patron id: patron status, checkout, renew, end session, patron info.
const PATRON_FRAMES: [&[u8]; 5] = [
    b"2300120261203    120000AOlib|AA",
    b"11YN20261203    120000                  AOlib|ABitem-1|AA",
    b"29NN20261203    120000                  AOlib|ABitem-1|AA",
    b"3520261203    120000AOlib|AA",
    b"6300120261203    120000          AOlib|AA",
];

fn number(i: u8) -> FacilityCardNumber {
    FacilityCardNumber::parse(&format!("LIB-{:04}", i % 8)).expect("a card number")
}

fn holder(card: &Card) -> Holder {
    match card {
        Card::Patron(i) => Holder::Patron(number(*i)),
        Card::Unknown => Holder::Refused(Refusal::Unknown),
        Card::Suspended => Holder::Refused(Refusal::Suspended),
        Card::Replaced => Holder::Refused(Refusal::Replaced),
        Card::Expired => Holder::Refused(Refusal::Expired),
        Card::NoLibrary => Holder::Refused(Refusal::NoLibraryCard),
    }
}

/// The steps.
pub fn bridge(data: &[u8]) {
    let Ok(case) = Case::arbitrary_take_rest(Unstructured::new(data)) else {
        return;
    };
    let policy = Policy {
        tap_window_ms: 60_000,
        session_idle_ms: 300_000,
        token_window_ms: 120_000,
        token_digits: 6,
        max_token_misses: 5,
        tokens: true,
        own_login: false,
    };
    let machines = [Charset::Ibm850, Charset::Utf8]
        .into_iter()
        .enumerate()
        .map(|(i, charset)| MachineSpec {
            name: format!("sc-{i}"),
            placeholder: PLACEHOLDER.to_vec(),
            charset,
            login: None,
        })
        .collect();
    let mut bridge = Bridge::new(policy, machines, Charset::Ibm850);
    let mut now = START;
    // Library card numbers the bridge may put in front of the library
    // system: those of patrons tapped or handed a token.
    let mut known: Vec<Vec<u8>> = vec![];
    let mut last_token: Option<String> = None;
    for op in case.ops.into_iter().take(MAX_OPS) {
        match op {
            Op::Tap { machine, card } => {
                let h = holder(&card);
                if let Holder::Patron(n) = &h {
                    known.push(n.as_str().as_bytes().to_vec());
                }
                let shown = bridge.tap(
                    MachineId(usize::from(machine % 3)),
                    Tap {
                        card: "c0ffee".into(),
                        holder: h.clone(),
                    },
                    now,
                );
                match h {
                    // A reader paired with no configured machine refuses every card.
                    _ if machine % 3 == 2 => {
                        assert_eq!(shown, TapShown::Refused(Refusal::Unknown));
                    }
                    Holder::Refused(r) => {
                        assert_eq!(shown, TapShown::Refused(r), "a refused card is shown so");
                    }
                    Holder::Patron(_) => assert!(matches!(shown, TapShown::Armed { .. })),
                }
            }
            Op::Token { card, digits } => {
                let h = holder(&card);
                if let Holder::Patron(n) = &h {
                    known.push(n.as_str().as_bytes().to_vec());
                }
                let digits = format!("{:06}", digits % 1_000_000);
                match bridge.tap_for_token(
                    Tap {
                        card: "c0ffee".into(),
                        holder: h,
                    },
                    digits.clone(),
                    now,
                ) {
                    TapShown::Token { digits: d, until } => {
                        assert_eq!(d, digits);
                        assert!(until > now);
                        last_token = Some(d);
                    }
                    TapShown::Refused(_) => {}
                    TapShown::Armed { .. } => panic!("a token tap arms no machine"),
                }
            }
            Op::Frame { machine, frame } => {
                if let Ok(d) = mykey_sip2::decode(&frame) {
                    from_machine(&mut bridge, machine, d.message, now, &known);
                }
            }
            Op::Patron {
                machine,
                command,
                patron,
            } => {
                let id: Vec<u8> = match patron {
                    PatronId::Placeholder => PLACEHOLDER.to_vec(),
                    PatronId::LastToken => last_token.clone().unwrap_or_default().into_bytes(),
                    PatronId::Typed(b) => b,
                };
                let mut frame = PATRON_FRAMES[usize::from(command) % PATRON_FRAMES.len()].to_vec();
                frame.extend_from_slice(&id);
                frame.push(b'|');
                if let Ok(d) = mykey_sip2::decode(&frame) {
                    from_machine(&mut bridge, machine, d.message, now, &known);
                }
            }
            Op::Upstream { machine, frame } => {
                if let Ok(d) = mykey_sip2::decode(&frame) {
                    let to_machine =
                        bridge.from_upstream(MachineId(usize::from(machine % 3)), d.message);
                    crosses_the_wire(&to_machine);
                }
            }
            Op::Tick(s) => now = now.plus_ms(u64::from(s) * 1000),
            Op::Forget => bridge.forget_all(),
        }
    }
}

fn from_machine(
    bridge: &mut Bridge,
    machine: u8,
    msg: Message,
    now: UnixMillis,
    known: &[Vec<u8>],
) {
    let machine = MachineId(usize::from(machine % 3));
    let sent_patron = msg.field(FieldId::PATRON_ID).map(<[u8]>::to_vec);
    let (verdict, patron) = bridge.from_machine(machine, msg, now);
    match &verdict {
        Verdict::Forward(m) => {
            crosses_the_wire(m);
            let upstream = m.field(FieldId::PATRON_ID);
            if m.command().carries_patron() {
                assert_ne!(
                    upstream,
                    Some(PLACEHOLDER),
                    "the library system never sees the placeholder"
                );
            }
            match &patron {
                Patron::Substituted { .. } => {
                    let id = upstream.expect("a substituted patron id");
                    assert!(
                        known.iter().any(|k| k == id),
                        "the bridge substituted a card number nobody tapped"
                    );
                }
                Patron::Refused { .. } | Patron::NoTap => {
                    panic!("a refused or untapped patron reached the library system: {patron:?}")
                }
                Patron::AsSent => assert!(
                    !m.command().carries_patron() || sent_patron.as_deref() != Some(PLACEHOLDER),
                    "a placeholder is never passed on as sent"
                ),
            }
        }
        Verdict::Answer(m) => crosses_the_wire(m),
    }
}

/// A `sip2_codec` input.
pub fn codec_input(step: u8, frames: &[&[u8]]) -> Vec<u8> {
    let mut out = vec![step];
    for f in frames {
        out.extend_from_slice(f);
        out.push(b'\r');
    }
    out
}

/// `frame` as a peer that numbers and checksums its messages sends it
/// (sequence `seq`, `AZ`, no CR), if it decodes.
pub fn with_checksum(frame: &[u8], seq: u8) -> Option<Vec<u8>> {
    let mut m = mykey_sip2::decode(frame).ok()?.message;
    m.set_sequence(mykey_sip2::Sequence::new(seq));
    let mut wire = m.encode(true);
    wire.pop();
    Some(wire)
}
