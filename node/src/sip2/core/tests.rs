use super::*;
use mykey_sip2::Field;

fn policy() -> Policy {
    Policy {
        tap_window_ms: 30_000,
        session_idle_ms: 180_000,
        token_window_ms: 120_000,
        token_digits: 8,
        max_token_misses: 3,
        tokens: true,
        own_login: false,
    }
}

fn machine(name: &str, placeholder: &str, charset: Charset) -> MachineSpec {
    MachineSpec {
        name: name.to_owned(),
        placeholder: placeholder.as_bytes().to_vec(),
        charset,
        login: None,
    }
}

fn bridge() -> Bridge {
    Bridge::new(
        policy(),
        vec![
            machine("sc-1", "MYKEY", Charset::Ibm850),
            machine("sc-2", "", Charset::Utf8),
        ],
        Charset::Ibm850,
    )
}

const SC1: MachineId = MachineId(0);
const SC2: MachineId = MachineId(1);

fn t(secs: u64) -> UnixMillis {
    UnixMillis(1_800_000_000_000 + secs * 1000)
}

fn number(n: &str) -> FacilityCardNumber {
    FacilityCardNumber::parse(n).unwrap()
}

fn patron(n: &str) -> Tap {
    Tap {
        card: "c0ffee42".into(),
        holder: Holder::Patron(number(n)),
    }
}

fn refused(r: Refusal) -> Tap {
    Tap {
        card: "deadbeef".into(),
        holder: Holder::Refused(r),
    }
}

fn msg(command: &str, aa: Option<&str>, extra: &[(&str, &[u8])]) -> Message {
    let command = Command::from_code(command.as_bytes().try_into().unwrap());
    let fixed = vec![b' '; command.fixed_len().unwrap()];
    let mut fields = vec![Field::new(FieldId::INSTITUTION_ID, b"lib".to_vec()).unwrap()];
    if let Some(aa) = aa {
        fields.push(Field::new(FieldId::PATRON_ID, aa.as_bytes().to_vec()).unwrap());
    }
    for (id, v) in extra {
        let id = FieldId::new(id.as_bytes().try_into().unwrap()).unwrap();
        fields.push(Field::new(id, v.to_vec()).unwrap());
    }
    Message::new(command, fixed, fields).unwrap()
}

fn forwarded_patron(v: &(Verdict, Patron)) -> Option<String> {
    match &v.0 {
        Verdict::Forward(m) => {
            Some(String::from_utf8(m.field(FieldId::PATRON_ID)?.to_vec()).unwrap())
        }
        Verdict::Answer(_) => None,
    }
}

fn answer(v: &(Verdict, Patron)) -> &Message {
    match &v.0 {
        Verdict::Answer(m) => m,
        Verdict::Forward(m) => panic!("forwarded {m:?}"),
    }
}

#[test]
fn a_tapped_card_becomes_the_library_card_number_for_a_whole_patron_session() {
    let mut b = bridge();
    assert_eq!(
        b.tap(SC1, patron("LIB-0042"), t(0)),
        TapShown::Armed {
            machine: "sc-1".into()
        }
    );
    let items: &[(&str, &[u8])] = &[("AB", b"item-1"), ("ZQ", b"vendor \x81 bytes")];
    let steps = [
        (t(5), msg("63", Some("MYKEY"), &[])),
        (t(20), msg("11", Some("MYKEY"), items)),
        (t(100), msg("29", Some("MYKEY"), items)),
        (t(150), msg("35", Some("MYKEY"), &[])),
    ];
    for (now, m) in steps {
        let v = b.from_machine(SC1, m.clone(), now);
        assert_eq!(forwarded_patron(&v).as_deref(), Some("LIB-0042"), "{m:?}");
        assert_eq!(
            v.1,
            Patron::Substituted {
                card: "c0ffee42".into()
            }
        );
        let Verdict::Forward(out) = v.0 else {
            unreachable!()
        };
        // Only AA changed: every other field, known or not, byte for byte.
        let others = |x: &Message| {
            x.fields()
                .iter()
                .filter(|f| f.id() != FieldId::PATRON_ID)
                .cloned()
                .collect::<Vec<_>>()
        };
        assert_eq!(others(&out), others(&m));
        assert_eq!(out.fixed(), m.fixed());
    }
    // The session ended with 35: the placeholder no longer stands for the card.
    let v = b.from_machine(SC1, msg("11", Some("MYKEY"), items), t(160));
    assert_eq!(v.1, Patron::NoTap);
    assert_eq!(answer(&v).fixed()[0], b'0', "checkout refused");
}

#[test]
fn without_a_tap_the_placeholder_never_reaches_the_library_system() {
    let mut b = bridge();
    for code in ["23", "63", "11", "29", "37", "15", "25", "65", "01"] {
        let v = b.from_machine(SC1, msg(code, Some("MYKEY"), &[("AB", b"item-9")]), t(0));
        assert_eq!(v.1, Patron::NoTap, "{code}");
        let a = answer(&v);
        assert_eq!(
            a.field(FieldId::SCREEN_MESSAGE),
            Some(NO_TAP.as_bytes()),
            "{code}"
        );
    }
    // End session with nothing to end: ended, here.
    let v = b.from_machine(SC1, msg("35", Some("MYKEY"), &[]), t(0));
    assert_eq!(answer(&v).fixed()[0], b'Y');
}

#[test]
fn refused_cards_are_answered_here_with_patron_invalid() {
    for r in [
        Refusal::Unknown,
        Refusal::Suspended,
        Refusal::Replaced,
        Refusal::Expired,
        Refusal::NoLibraryCard,
        Refusal::Visitor,
    ] {
        let mut b = bridge();
        assert_eq!(b.tap(SC1, refused(r), t(0)), TapShown::Refused(r));
        let v = b.from_machine(SC1, msg("63", Some("MYKEY"), &[]), t(1));
        assert_eq!(
            v.1,
            Patron::Refused {
                card: "deadbeef".into(),
                refusal: r
            }
        );
        let a = answer(&v);
        assert_eq!(a.command(), Command::PatronInformationResponse);
        assert_eq!(a.field(FieldId::VALID_PATRON), Some(&b"N"[..]));
        assert_eq!(
            a.field(FieldId::SCREEN_MESSAGE),
            Some(r.screen_message().as_bytes())
        );
        // ...and the next message has no session either.
        let v = b.from_machine(SC1, msg("11", Some("MYKEY"), &[]), t(2));
        assert_eq!(v.1, Patron::NoTap);
    }
}

#[test]
fn windows_close() {
    let mut b = bridge();
    b.tap(SC1, patron("LIB-0042"), t(0));
    // Too late for the tap.
    assert_eq!(
        b.from_machine(SC1, msg("63", Some("MYKEY"), &[]), t(31)).1,
        Patron::NoTap
    );
    // A session idles out.
    b.tap(SC1, patron("LIB-0042"), t(100));
    assert!(
        forwarded_patron(&b.from_machine(SC1, msg("63", Some("MYKEY"), &[]), t(101))).is_some()
    );
    assert!(
        forwarded_patron(&b.from_machine(SC1, msg("11", Some("MYKEY"), &[]), t(281))).is_some()
    );
    assert_eq!(
        b.from_machine(SC1, msg("11", Some("MYKEY"), &[]), t(462)).1,
        Patron::NoTap
    );
}

#[test]
fn a_tap_belongs_to_its_machine_only() {
    let mut b = bridge();
    b.tap(SC1, patron("LIB-0042"), t(0));
    // sc-2's placeholder is an empty AA; it was not tapped.
    assert_eq!(
        b.from_machine(SC2, msg("63", Some(""), &[]), t(1)).1,
        Patron::NoTap
    );
    assert!(forwarded_patron(&b.from_machine(SC1, msg("63", Some("MYKEY"), &[]), t(2))).is_some());
}

#[test]
fn a_new_tap_or_a_scanned_library_card_ends_the_old_session() {
    let mut b = bridge();
    b.tap(SC1, patron("LIB-0042"), t(0));
    b.from_machine(SC1, msg("63", Some("MYKEY"), &[]), t(1));
    b.tap(SC1, patron("LIB-0077"), t(10));
    let v = b.from_machine(SC1, msg("63", Some("MYKEY"), &[]), t(11));
    assert_eq!(forwarded_patron(&v).as_deref(), Some("LIB-0077"));
    // A library card scanned the old way passes as scanned, and ends the session.
    let v = b.from_machine(SC1, msg("63", Some("LIB-9999"), &[]), t(12));
    assert_eq!(forwarded_patron(&v).as_deref(), Some("LIB-9999"));
    assert_eq!(v.1, Patron::AsSent);
    assert_eq!(
        b.from_machine(SC1, msg("11", Some("MYKEY"), &[]), t(13)).1,
        Patron::NoTap
    );
}

#[test]
fn messages_without_a_patron_pass_untouched() {
    let mut b = bridge();
    for code in ["99", "09", "17", "93"] {
        let m = msg(code, None, &[("AB", b"item-1"), ("CN", b"user")]);
        assert_eq!(
            b.from_machine(SC1, m.clone(), t(0)).0,
            Verdict::Forward(m),
            "{code}"
        );
    }
}

#[test]
fn tokens_are_one_time_and_expire() {
    let mut b = bridge();
    let shown = b.tap_for_token(patron("LIB-0042"), "12345678".into(), t(0));
    assert_eq!(
        shown,
        TapShown::Token {
            digits: "12345678".into(),
            until: t(120)
        }
    );
    let v = b.from_machine(SC2, msg("63", Some("12345678"), &[]), t(5));
    assert_eq!(forwarded_patron(&v).as_deref(), Some("LIB-0042"));
    // The session continues on the machine's placeholder...
    let v = b.from_machine(SC2, msg("11", Some(""), &[]), t(6));
    assert_eq!(forwarded_patron(&v).as_deref(), Some("LIB-0042"));
    // ...but the token is spent.
    let v = b.from_machine(SC1, msg("63", Some("12345678"), &[]), t(7));
    assert_eq!(forwarded_patron(&v).as_deref(), Some("12345678"));
    assert_eq!(v.1, Patron::AsSent);
    // An expired token is not taken.
    b.tap_for_token(patron("LIB-0042"), "87654321".into(), t(10));
    let v = b.from_machine(SC1, msg("63", Some("87654321"), &[]), t(131));
    assert_eq!(v.1, Patron::AsSent);
    // A refused card gets no token.
    assert_eq!(
        b.tap_for_token(refused(Refusal::Suspended), "11112222".into(), t(0)),
        TapShown::Refused(Refusal::Suspended)
    );
}

#[test]
fn guessing_tokens_locks_the_machine_out_of_tokens() {
    let mut b = bridge();
    b.tap_for_token(patron("LIB-0042"), "12345678".into(), t(0));
    for guess in ["00000001", "00000002", "00000003"] {
        assert_eq!(
            b.from_machine(SC1, msg("63", Some(guess), &[]), t(1)).1,
            Patron::AsSent
        );
    }
    // Locked: even the right token is not taken at this machine...
    assert_eq!(
        b.from_machine(SC1, msg("63", Some("12345678"), &[]), t(2))
            .1,
        Patron::AsSent
    );
    // ...but still at another one.
    let v = b.from_machine(SC2, msg("63", Some("12345678"), &[]), t(3));
    assert_eq!(forwarded_patron(&v).as_deref(), Some("LIB-0042"));
}

#[test]
fn character_sets_are_translated_between_machine_and_library_system() {
    let mut b = bridge();
    b.tap(SC2, patron("LIB-0042"), t(0));
    // sc-2 speaks UTF-8, the library system IBM850.
    let v = b.from_machine(
        SC2,
        msg("63", Some(""), &[("AF", "Grüße".as_bytes())]),
        t(1),
    );
    let Verdict::Forward(out) = v.0 else { panic!() };
    assert_eq!(
        out.field(FieldId::SCREEN_MESSAGE),
        Some(&b"Gr\x81\xE1e"[..])
    );
    let resp = msg("64", Some("LIB-0042"), &[("AE", b"M\x81ller, J\x81rgen")]);
    let back = b.from_upstream(SC2, resp.clone());
    assert_eq!(
        back.field(FieldId::PERSONAL_NAME),
        Some("Müller, Jürgen".as_bytes())
    );
    // sc-1 speaks IBM850 like the library system: bytes pass as they are.
    assert_eq!(b.from_upstream(SC1, resp.clone()), resp);
}

#[test]
fn the_bridge_answers_logins_when_it_logs_in_itself() {
    let mut p = policy();
    p.own_login = true;
    let mut m = machine("sc-1", "MYKEY", Charset::Ibm850);
    m.login = Some((b"sc".to_vec(), b"pw".to_vec()));
    let mut b = Bridge::new(p, vec![m], Charset::Ibm850);
    let login = |user: &[u8], pw: &[u8]| {
        let fields = vec![
            Field::new(FieldId::LOGIN_USER, user.to_vec()).unwrap(),
            Field::new(FieldId::LOGIN_PASSWORD, pw.to_vec()).unwrap(),
        ];
        Message::new(Command::Login, b"00".to_vec(), fields).unwrap()
    };
    assert_eq!(
        answer(&b.from_machine(SC1, login(b"sc", b"pw"), t(0))).fixed(),
        b"1"
    );
    assert_eq!(
        answer(&b.from_machine(SC1, login(b"sc", b"no"), t(0))).fixed(),
        b"0"
    );
}
