//! `zengin_write`: payout files in the Zengin fixed-length format, written
//! from arbitrary payee names, bank details and amounts (`arbitrary`).
//! Names reach the writer from operators and from the bank data; amounts
//! from settlement.
//!
//! Properties: the writer either returns an error with a message or a
//! file of whole 120-byte Shift_JIS records, each followed by CRLF: a
//! header, one data record per payment carrying its amount and the payee's
//! name as [`to_zengin_text`] converts it, a trailer with the count and the
//! total, an end record.

use arbitrary::{Arbitrary, Unstructured};
use mykey_hub::economy::zengin::{
    AccountKind, BankAccount, BankCode, BankDirectory, BranchCode, BuiltinBanks, Payment,
    RECORD_BYTES, Remitter, to_zengin_text, write_transfer_file,
};

/// Characters names are drawn from besides arbitrary text: what payees'
/// names are made of, and their near misses.
const ALPHABET: &[char] = &[
    'ア', 'イ', 'ウ', 'カ', 'ガ', 'パ', 'ヴ', 'ッ', 'ャ', 'ヲ', 'ー', 'ｱ', 'ｶ', 'ﾞ', 'ﾟ', 'ｧ', 'ｦ',
    'ｰ', 'あ', 'が', 'ぱ', 'ゔ', 'ゕ', 'A', 'z', '0', ' ', '　', '(', ')', '-', '.', '&', 'Ａ',
    'ｚ', '１', '山', '\u{0}', '\u{FF9F}', '\u{FF70}', '\u{3096}',
];

#[derive(Debug)]
struct Name(String);

impl<'a> Arbitrary<'a> for Name {
    fn arbitrary(u: &mut Unstructured<'a>) -> arbitrary::Result<Self> {
        if u.arbitrary::<bool>()? {
            return Ok(Name(u.arbitrary()?));
        }
        let n = u.int_in_range(0..=45)?;
        let mut s = String::new();
        for _ in 0..n {
            s.push(*u.choose(ALPHABET)?);
        }
        Ok(Name(s))
    }
}

#[derive(Arbitrary, Debug)]
struct Account {
    bank: u16,
    branch: u16,
    kind: u8,
    number: u32,
    holder: Name,
}

#[derive(Arbitrary, Debug)]
struct Pay {
    to: Account,
    amount_yen: u64,
    customer_code: u64,
}

/// A bank table of the case's own: every code known, names from the input.
#[derive(Arbitrary, Debug)]
struct Directory {
    bank: Name,
    branch: Name,
    unknown_bank: Option<u16>,
}

impl BankDirectory for Directory {
    fn bank_name(&self, bank: &BankCode) -> Option<String> {
        let unknown = self.unknown_bank.map(|b| format!("{:04}", b % 10_000));
        (unknown != Some(bank.to_string())).then(|| self.bank.0.clone())
    }
    fn branch_name(&self, _: &BankCode, _: &BranchCode) -> Option<String> {
        Some(self.branch.0.clone())
    }
}

#[derive(Arbitrary, Debug)]
struct Case {
    remitter_code: u64,
    from: Account,
    transfer_date: (u32, u32),
    payments: Vec<Pay>,
    own_directory: Option<Directory>,
}

fn account(a: &Account) -> Option<BankAccount> {
    Some(BankAccount {
        bank: BankCode::parse(&format!("{:04}", a.bank)).ok()?,
        branch: BranchCode::parse(&format!("{:03}", a.branch)).ok()?,
        kind: [
            AccountKind::Ordinary,
            AccountKind::Current,
            AccountKind::Savings,
        ][usize::from(a.kind % 3)],
        number: a.number,
        holder: a.holder.0.clone(),
    })
}

/// Arbitrary remitter, date, payments and bank table.
pub fn write(data: &[u8]) {
    let Ok(case) = Case::arbitrary_take_rest(Unstructured::new(data)) else {
        return;
    };
    let Some(from) = account(&case.from) else {
        return;
    };
    let remitter = Remitter {
        code: case.remitter_code,
        account: from,
    };
    let payments: Vec<Payment> = case
        .payments
        .iter()
        .filter_map(|p| {
            Some(Payment {
                to: account(&p.to)?,
                amount_yen: p.amount_yen,
                customer_code: p.customer_code,
            })
        })
        .collect();
    let banks: &dyn BankDirectory = match &case.own_directory {
        Some(d) => d,
        None => &BuiltinBanks,
    };
    check(&remitter, case.transfer_date, &payments, banks);
}

/// Writes a file and holds it to the format (or the error to a message).
pub fn check(
    remitter: &Remitter,
    transfer_date: (u32, u32),
    payments: &[Payment],
    banks: &dyn BankDirectory,
) {
    let file = match write_transfer_file(remitter, transfer_date, payments, banks) {
        Ok(file) => file,
        Err(e) => {
            assert!(!e.to_string().is_empty());
            return;
        }
    };
    let line = RECORD_BYTES + 2;
    assert_eq!(
        file.len(),
        (payments.len() + 3) * line,
        "whole records, one per payment"
    );
    let records: Vec<&[u8]> = file
        .chunks(line)
        .map(|r| {
            assert_eq!(&r[RECORD_BYTES..], b"\r\n", "each record ends with CRLF");
            let r = &r[..RECORD_BYTES];
            assert!(
                r.iter().all(|b| matches!(b, 0x20..=0x7E | 0xA1..=0xDF)),
                "one-byte Shift_JIS only: {r:02X?}"
            );
            r
        })
        .collect();
    let kinds: Vec<u8> = records.iter().map(|r| r[0]).collect();
    assert_eq!(kinds[0], b'1');
    assert!(kinds[1..=payments.len()].iter().all(|k| *k == b'2'));
    assert_eq!(&kinds[payments.len() + 1..], b"89");
    let number = |r: &[u8], at: std::ops::Range<usize>| -> u64 {
        std::str::from_utf8(&r[at])
            .expect("digits")
            .parse()
            .expect("a number")
    };
    let mut total = 0u64;
    for (p, r) in payments.iter().zip(&records[1..]) {
        assert_eq!(
            number(r, 80..90),
            p.amount_yen,
            "the record carries the amount"
        );
        total = total.saturating_add(p.amount_yen);
        let (name, _, bad) = encoding_rs::SHIFT_JIS.decode(&r[50..80]);
        assert!(!bad);
        let want = to_zengin_text("受取人名", &p.to.holder).expect("a written name converts");
        assert_eq!(
            name.trim_end_matches(' '),
            want.trim_end_matches(' '),
            "the payee's name"
        );
    }
    let trailer = records[payments.len() + 1];
    assert_eq!(number(trailer, 1..7), payments.len() as u64);
    assert_eq!(number(trailer, 7..19), total);
}
