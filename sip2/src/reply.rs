//! Responses a bridge sends itself, in place of the library system: a
//! patron refused, a login answered, a resend requested, the system offline.
//!
//! Each is the minimal valid message for its command: the fixed fields the
//! spec requires and the variable fields it marks required, echoing the
//! request's institution, patron id and item id.

use crate::command::Command;
use crate::message::{Field, FieldId, Message};

/// Patron status for a refused patron: charge, renewal, recall and hold
/// privileges denied.
const REFUSED_STATUS: &[u8; 14] = b"YYYY          ";
const DEFAULT_LANGUAGE: &[u8; 3] = b"000";

/// The answer to a patron request the bridge refuses: patron not valid
/// (`BL` N) where the response has it, the operation not done (`ok` 0)
/// where it has that, and `screen_message` for the patron. `None` for a
/// request that names no patron (checkin, item information, status, login).
pub fn patron_refused(
    request: &Message,
    screen_message: &[u8],
    date: &[u8; 18],
) -> Option<Message> {
    let language = match request.command() {
        Command::PatronStatus | Command::PatronInformation => request
            .fixed()
            .get(..3)
            .map_or(DEFAULT_LANGUAGE.to_vec(), <[u8]>::to_vec),
        _ => DEFAULT_LANGUAGE.to_vec(),
    };
    let echo = |id: FieldId| request.field(id).unwrap_or_default().to_vec();
    let institution = echo(FieldId::INSTITUTION_ID);
    let patron = echo(FieldId::PATRON_ID);
    let mut fixed = Vec::new();
    let mut fields = vec![(FieldId::INSTITUTION_ID, institution)];
    let response = request.command().response()?;
    match request.command() {
        Command::PatronStatus | Command::BlockPatron | Command::PatronEnable => {
            fixed.extend_from_slice(REFUSED_STATUS);
            fixed.extend_from_slice(&language);
            fixed.extend_from_slice(date);
            fields.extend([
                (FieldId::PATRON_ID, patron),
                (FieldId::PERSONAL_NAME, Vec::new()),
                (FieldId::VALID_PATRON, b"N".to_vec()),
            ]);
        }
        Command::PatronInformation => {
            fixed.extend_from_slice(REFUSED_STATUS);
            fixed.extend_from_slice(&language);
            fixed.extend_from_slice(date);
            fixed.extend_from_slice(b"000000000000000000000000");
            fields.extend([
                (FieldId::PATRON_ID, patron),
                (FieldId::PERSONAL_NAME, Vec::new()),
                (FieldId::VALID_PATRON, b"N".to_vec()),
            ]);
        }
        Command::Checkout | Command::Renew => {
            // ok 0, renewal N, magnetic media unknown, desensitize N
            fixed.extend_from_slice(b"0NUN");
            fixed.extend_from_slice(date);
            fields.extend([
                (FieldId::PATRON_ID, patron),
                (FieldId::ITEM_ID, echo(FieldId::ITEM_ID)),
                (FieldId::TITLE_ID, Vec::new()),
            ]);
        }
        Command::EndSession | Command::FeePaid => {
            fixed.push(b'N');
            fixed.extend_from_slice(date);
            fields.push((FieldId::PATRON_ID, patron));
        }
        Command::Hold => {
            fixed.extend_from_slice(b"0N");
            fixed.extend_from_slice(date);
            fields.push((FieldId::PATRON_ID, patron));
        }
        Command::RenewAll => {
            fixed.extend_from_slice(b"000000000");
            fixed.extend_from_slice(date);
        }
        _ => return None,
    }
    fields.push((FieldId::SCREEN_MESSAGE, screen_message.to_vec()));
    build(response, fixed, fields)
}

/// The answer to an end-session request when there is no session to end:
/// ended (`Y`).
pub fn session_ended(request: &Message, date: &[u8; 18]) -> Option<Message> {
    if request.command() != Command::EndSession {
        return None;
    }
    let mut fixed = vec![b'Y'];
    fixed.extend_from_slice(date);
    let echo = |id: FieldId| request.field(id).unwrap_or_default().to_vec();
    build(
        Command::EndSessionResponse,
        fixed,
        vec![
            (FieldId::INSTITUTION_ID, echo(FieldId::INSTITUTION_ID)),
            (FieldId::PATRON_ID, echo(FieldId::PATRON_ID)),
        ],
    )
}

/// A login response (94): `ok` or refused.
pub fn login_response(ok: bool) -> Message {
    bare(Command::LoginResponse, vec![if ok { b'1' } else { b'0' }])
}

/// Request SC resend (96): the answer to a frame whose checksum was wrong.
pub fn request_sc_resend() -> Message {
    bare(Command::RequestScResend, Vec::new())
}

/// Request ACS resend (97).
pub fn request_acs_resend() -> Message {
    bare(Command::RequestAcsResend, Vec::new())
}

/// ACS status (98) saying the library system is off line: nothing may be
/// done until it is back.
pub fn acs_offline(institution: &[u8], date: &[u8; 18]) -> Message {
    // on-line N, checkin N, checkout N, renewal N, status update N, off-line N,
    // timeout 000, retries 000, date, protocol 2.00
    let mut fixed = b"NNNNNN000000".to_vec();
    fixed.extend_from_slice(date);
    fixed.extend_from_slice(b"2.00");
    build(
        Command::AcsStatus,
        fixed,
        vec![
            (FieldId::INSTITUTION_ID, institution.to_vec()),
            (FieldId::SUPPORTED_MESSAGES, b"NNNNNNNNNNNNNNNN".to_vec()),
        ],
    )
    .unwrap_or_else(|| bare(Command::AcsStatus, Vec::new()))
}

fn bare(command: Command, fixed: Vec<u8>) -> Message {
    // Fixed lengths are ours and right; fall back to an unknown-shaped message
    // rather than panic if a table entry ever disagrees.
    Message::new(command, fixed.clone(), Vec::new()).unwrap_or_else(|_| {
        Message::new(Command::Unknown(command.code()), fixed, Vec::new())
            .unwrap_or_else(|_| unreachable_message())
    })
}

fn unreachable_message() -> Message {
    // An unknown command with an empty body is always valid.
    match Message::new(Command::Unknown(*b"96"), Vec::new(), Vec::new()) {
        Ok(m) => m,
        Err(_) => unreachable!("an empty unknown message is valid"),
    }
}

fn build(command: Command, fixed: Vec<u8>, fields: Vec<(FieldId, Vec<u8>)>) -> Option<Message> {
    let fields = fields
        .into_iter()
        .map(|(id, v)| Field::new(id, v))
        .collect::<Result<Vec<_>, _>>()
        .ok()?;
    Message::new(command, fixed, fields).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::message::Checksum;

    const DATE: &[u8; 18] = b"20261203   Z120000";

    fn request(frame: &[u8]) -> Message {
        Message::decode(frame).unwrap().message
    }

    #[test]
    fn every_patron_request_gets_a_valid_refusal() {
        let requests: Vec<&[u8]> = vec![
            b"2300120261203    120000AOlib|AAMYKEY|AC|AD|",
            b"6300120261203    120000          AOlib|AAMYKEY|AC|",
            b"11YN20261203    120000                  AOlib|AAMYKEY|ABitem-1|AC|",
            b"29NN20261203    120000                  AOlib|AAMYKEY|ABitem-1|",
            b"3520261203    120000AOlib|AAMYKEY|",
            b"3720261203    1200000100USDBV1.00|AOlib|AAMYKEY|",
            b"01N20261203    120000AOlib|ALlost|AAMYKEY|AC|",
            b"15+20261203    120000AOlib|AAMYKEY|",
            b"2520261203    120000AOlib|AAMYKEY|",
            b"6520261203    120000AOlib|AAMYKEY|",
        ];
        for frame in requests {
            let req = request(frame);
            let resp = patron_refused(&req, b"Tap your card again", DATE)
                .unwrap_or_else(|| panic!("no refusal for {}", req.command()));
            assert_eq!(Some(resp.command()), req.command().response());
            let bytes = resp.encode(true);
            let back = Message::decode(&bytes).unwrap();
            assert_eq!(back.checksum, Checksum::Valid);
            assert_eq!(back.message, resp);
            assert_eq!(
                resp.field(FieldId::SCREEN_MESSAGE),
                Some(&b"Tap your card again"[..])
            );
            if resp
                .fields()
                .iter()
                .any(|f| f.id() == FieldId::VALID_PATRON)
            {
                assert_eq!(resp.field(FieldId::VALID_PATRON), Some(&b"N"[..]));
            }
            if req.command() != Command::RenewAll {
                assert_eq!(resp.field(FieldId::PATRON_ID), Some(&b"MYKEY"[..]));
            }
        }
    }

    #[test]
    fn requests_without_a_patron_are_not_refused_here() {
        for frame in [
            &b"9900302.00"[..],
            b"09N20261203    12000020261203    120000APx|AOlib|ABitem|",
        ] {
            assert!(patron_refused(&request(frame), b"x", DATE).is_none());
        }
    }

    #[test]
    fn fixed_answers_are_well_formed() {
        for m in [
            login_response(true),
            login_response(false),
            request_sc_resend(),
            request_acs_resend(),
            acs_offline(b"lib", DATE),
        ] {
            let back = Message::decode(&m.encode(false)).unwrap().message;
            assert_eq!(back, m);
            assert!(!matches!(m.command(), Command::Unknown(_)), "{m:?}");
        }
        let end = session_ended(&request(b"3520261203    120000AOlib|AAMYKEY|"), DATE).unwrap();
        assert_eq!(end.fixed()[0], b'Y');
    }
}
