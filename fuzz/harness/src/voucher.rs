//! `voucher_text`: what a keyboard-wedge scanner, a typed copy or a phone
//! photo's QR code hands `mykey_voucher::parse` (crate `mykey-voucher`).
//!
//! Input: the line's bytes (read as UTF-8; other bytes are refused before
//! the parser, as the node's stdin reader refuses them).
//!
//! Properties: nothing panics; a line that parses is the canonical text of
//! the voucher it parsed to, up to the spaces around it and full-width
//! digits (`to_text` of the result, normalised the same way, is the line);
//! the canonical text parses back to the same voucher; its signature check
//! (against a fixed key) returns without panicking.

use ed25519_dalek::SigningKey;

/// The body of `voucher_text`.
pub fn text(data: &[u8]) {
    let Ok(line) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(v) = mykey_voucher::parse(line) else {
        return;
    };
    let canonical = mykey_voucher::to_text(&v);
    let digits: String = line
        .chars()
        .filter_map(|c| match c {
            '0'..='9' => Some(c),
            '\u{FF10}'..='\u{FF19}' => char::from_u32(c as u32 - 0xFF10 + '0' as u32),
            _ => None,
        })
        .collect();
    assert_eq!(digits, canonical, "a parsed line is the voucher's one text");
    assert_eq!(mykey_voucher::parse(&canonical).as_ref(), Ok(&v));
    let _ = v.verify(&SigningKey::from_bytes(&[1; 32]).verifying_key());
}

/// Seeds for `voucher_text`: the lines a wedge scanner sends for a real
/// voucher (as is, with CR, CRLF, full-width digits, spaces around) and the
/// near misses a parser must refuse (a changed digit, a cut code).
pub fn seeds() -> Vec<Vec<u8>> {
    use mykey_sync_proto::MunicipalityCode;
    use mykey_voucher::{ExpiryDate, Serial, VoucherBody};
    let Ok(municipality) = MunicipalityCode::parse("131059") else {
        return vec![];
    };
    let v = VoucherBody {
        key_hint: 0,
        municipality,
        serial: Serial { batch: 1, index: 1 },
        points: 500,
        expires: ExpiryDate::from_days(20_543),
    }
    .sign(&SigningKey::from_bytes(&[1; 32]));
    let t = mykey_voucher::to_text(&v);
    let full: String = t
        .chars()
        .filter_map(|c| char::from_u32(c as u32 - '0' as u32 + 0xFF10))
        .collect();
    let mut changed = t.clone().into_bytes();
    changed[100] = if changed[100] == b'9' {
        b'0'
    } else {
        changed[100] + 1
    };
    vec![
        t.clone().into_bytes(),
        format!("{t}\r").into_bytes(),
        format!("{t}\r\n").into_bytes(),
        format!("\u{3000}{full}\n").into_bytes(),
        format!("  {t} ").into_bytes(),
        changed,
        t.as_bytes()[..150].to_vec(),
    ]
}
