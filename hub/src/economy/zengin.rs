//! Payout files in the Zengin 総合振込 (general transfer) fixed-length
//! format: 120-byte records, header `1` (type 21), data `2`, trailer `8`,
//! end `9`; numeric fields right-aligned and zero-padded, text fields
//! left-aligned and space-padded, names in half-width katakana and capitals,
//! encoded in Shift_JIS with CRLF after each record.
//!
//! Text that cannot be written (kanji, `ｦ`, lower-case after conversion
//! fails, a name longer than its field) is refused with the field and the
//! character: a payout file is never written with a mangled payee name.
//!
//! Bank and branch codes are checked against a [`BankDirectory`]: the
//! maintained zengin-code table read at run time
//! ([`crate::economy::bankdata::JsonBankDirectory`], `--bank-data DIR`), or
//! [`BuiltinBanks`], a small excerpt of it for tests and the demo. The
//! `zengin` crate (which embeds the same data) was not taken as a
//! dependency: it compiles 16 MB of JSON into the binary and parses all of
//! it at start.

pub use super::types::{AccountKind, BankAccount, BankCode, BranchCode};

/// Record length in bytes, without the line end.
pub const RECORD_BYTES: usize = 120;

/// Looks up bank and branch names by code (maintained data, e.g. zengin-code).
pub trait BankDirectory {
    /// The bank's name in katakana, if the code exists.
    fn bank_name(&self, bank: &BankCode) -> Option<String>;
    /// The branch's name in katakana, if the bank has it.
    fn branch_name(&self, bank: &BankCode, branch: &BranchCode) -> Option<String>;
}

impl BankCode {
    /// Exactly four digits.
    pub fn parse(text: &str) -> Result<BankCode, ZenginError> {
        digits(text, 4)
            .map(BankCode)
            .ok_or_else(|| ZenginError::BadCode {
                what: "bank code (4 digits)",
                value: text.to_owned(),
            })
    }
}

impl BranchCode {
    /// Exactly three digits.
    pub fn parse(text: &str) -> Result<BranchCode, ZenginError> {
        digits(text, 3)
            .map(BranchCode)
            .ok_or_else(|| ZenginError::BadCode {
                what: "branch code (3 digits)",
                value: text.to_owned(),
            })
    }
}

fn digits(text: &str, n: usize) -> Option<u16> {
    (text.len() == n && text.bytes().all(|b| b.is_ascii_digit()))
        .then(|| text.parse().ok())
        .flatten()
}

/// The party that sends the transfers (the settlement agent).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Remitter {
    /// 依頼人コード given by the bank (up to 10 digits).
    pub code: u64,
    /// Its account (the holder is the 依頼人名).
    pub account: BankAccount,
}

/// One transfer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Payment {
    /// Where to.
    pub to: BankAccount,
    /// Yen.
    pub amount_yen: u64,
    /// 顧客コード1 (up to 10 digits): e.g. the merchant's number.
    pub customer_code: u64,
}

/// Why a payout file could not be written.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum ZenginError {
    /// A code is not the right number of digits.
    #[error("{what} {value:?} is not valid")]
    BadCode {
        /// Which code.
        what: &'static str,
        /// The value given.
        value: String,
    },
    /// The bank code is not in the bank data.
    #[error("bank code {0} is not a known financial institution; check the payee's bank details")]
    UnknownBank(BankCode),
    /// The branch code is not a branch of that bank.
    #[error("branch {branch} does not exist at bank {bank}; check the payee's bank details")]
    UnknownBranch {
        /// The bank.
        bank: BankCode,
        /// The branch.
        branch: BranchCode,
    },
    /// A character cannot be written in a Zengin text field.
    #[error(
        "{field} {text:?} cannot be encoded: {ch:?} is not allowed (use katakana, capitals, digits, \
         space and ( ) - .); register the name as the bank holds it, in katakana"
    )]
    Unencodable {
        /// Which field.
        field: &'static str,
        /// The text.
        text: String,
        /// The first character that cannot be written.
        ch: char,
    },
    /// A text is longer than its field after conversion.
    #[error("{field} {text:?} is {len} half-width characters; the field holds {max}")]
    TooLong {
        /// Which field.
        field: &'static str,
        /// The text.
        text: String,
        /// Its converted length.
        len: usize,
        /// The field width.
        max: usize,
    },
    /// The transfer date is not a day of the year.
    #[error(
        "transfer date {month}/{day} (month/day) is not a day of the year; give the month (1-12) and a day of it"
    )]
    BadDate {
        /// The month given.
        month: u32,
        /// The day given.
        day: u32,
    },
    /// A number does not fit its field.
    #[error("{field} {value} does not fit in {width} digits")]
    TooLarge {
        /// Which field.
        field: &'static str,
        /// The value.
        value: u64,
        /// The field width.
        width: usize,
    },
}

/// Converts text to the Zengin character set (half-width katakana, capitals,
/// digits, space and `( ) - .`): full-width katakana and hiragana become
/// half-width (voiced marks split off), small kana become large ones, the
/// long-vowel mark becomes `-`, full-width Latin letters and digits become
/// half-width capitals. Anything else is refused.
pub fn to_zengin_text(field: &'static str, text: &str) -> Result<String, ZenginError> {
    const FULL: &str = "アイウエオカキクケコサシスセソタチツテトナニヌネノハヒフヘホマミムメモヤユヨラリルレロワン";
    const HALF: &str = "ｱｲｳｴｵｶｷｸｹｺｻｼｽｾｿﾀﾁﾂﾃﾄﾅﾆﾇﾈﾉﾊﾋﾌﾍﾎﾏﾐﾑﾒﾓﾔﾕﾖﾗﾘﾙﾚﾛﾜﾝ";
    const VOICED: &str = "ガギグゲゴザジズゼゾダヂヅデドバビブベボ";
    const VOICED_BASE: &str = "カキクケコサシスセソタチツテトハヒフヘホ";
    const SEMI: &str = "パピプペポ";
    const SEMI_BASE: &str = "ハヒフヘホ";
    const SMALL: &str = "ァィゥェォッャュョヮヵヶヰヱ";
    const SMALL_BASE: &str = "アイウエオツヤユヨワカケイエ";
    const HALF_SMALL: &str = "ｧｨｩｪｫｯｬｭｮ";
    const HALF_SMALL_BASE: &str = "ｱｲｳｴｵﾂﾔﾕﾖ";
    let nth = |s: &str, c: char| s.chars().position(|x| x == c);
    let half = |c: char| nth(FULL, c).and_then(|i| HALF.chars().nth(i));
    let mut out = String::new();
    for c0 in text.chars() {
        // Hiragana to katakana, full-width ASCII to ASCII.
        let mut c = match c0 {
            '\u{3041}'..='\u{3096}' => char::from_u32(c0 as u32 + 0x60).unwrap_or(c0),
            '\u{FF01}'..='\u{FF5E}' => char::from_u32(c0 as u32 - 0xFEE0).unwrap_or(c0),
            '\u{3000}' => ' ',
            _ => c0,
        };
        if let Some(i) = nth(SMALL, c) {
            c = SMALL_BASE.chars().nth(i).unwrap_or(c);
        }
        if let Some(i) = nth(HALF_SMALL, c) {
            c = HALF_SMALL_BASE.chars().nth(i).unwrap_or(c);
        }
        let pushed = match c {
            'A'..='Z' | '0'..='9' | ' ' | '(' | ')' | '-' | '.' => {
                out.push(c);
                true
            }
            'a'..='z' => {
                out.push(c.to_ascii_uppercase());
                true
            }
            'ー' | '‐' | '−' | '―' | 'ｰ' => {
                out.push('-');
                true
            }
            '\u{FF71}'..='\u{FF9F}' => {
                out.push(c);
                true
            }
            'ヴ' => {
                out.push_str("ｳﾞ");
                true
            }
            _ => {
                if let Some(h) = half(c) {
                    out.push(h);
                    true
                } else if let Some(h) = nth(VOICED, c)
                    .and_then(|i| VOICED_BASE.chars().nth(i))
                    .and_then(half)
                {
                    out.push(h);
                    out.push('ﾞ');
                    true
                } else if let Some(h) = nth(SEMI, c)
                    .and_then(|i| SEMI_BASE.chars().nth(i))
                    .and_then(half)
                {
                    out.push(h);
                    out.push('ﾟ');
                    true
                } else {
                    false
                }
            }
        };
        if !pushed {
            return Err(ZenginError::Unencodable {
                field,
                text: text.to_owned(),
                ch: c0,
            });
        }
    }
    Ok(out)
}

/// Writes a 総合振込 file: header, one data record per payment, trailer,
/// end, each 120 bytes of Shift_JIS followed by CRLF. `transfer_date` is
/// the (month, day) the transfers are to be made.
pub fn write_transfer_file(
    remitter: &Remitter,
    transfer_date: (u32, u32),
    payments: &[Payment],
    banks: &dyn BankDirectory,
) -> Result<Vec<u8>, ZenginError> {
    let (month, day) = transfer_date;
    // Any year: 29 February is a day of some years.
    let days_in = [31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31];
    let is_day = (1..=12).contains(&month) && (1..=days_in[month as usize - 1]).contains(&day);
    if !is_day {
        return Err(ZenginError::BadDate { month, day });
    }
    let mut records: Vec<String> = vec![];
    let from = &remitter.account;
    let (from_bank, from_branch) = bank_names(banks, from)?;
    let mut h = Record::new();
    h.text("データ区分", "1", 1)?;
    h.num("種別コード", 21, 2)?;
    h.num("コード区分", 0, 1)?;
    h.num("依頼人コード", remitter.code, 10)?;
    h.name("依頼人名", &from.holder, 40)?;
    h.num("振込指定日", u64::from(month * 100 + day), 4)?;
    h.text("仕向銀行番号", &from.bank.to_string(), 4)?;
    h.name("仕向銀行名", &from_bank, 15)?;
    h.text("仕向支店番号", &from.branch.to_string(), 3)?;
    h.name("仕向支店名", &from_branch, 15)?;
    h.text("預金種目", &from.kind.digit().to_string(), 1)?;
    h.num("口座番号", u64::from(from.number), 7)?;
    h.text("ダミー", "", 17)?;
    records.push(h.finish());
    let mut total: u64 = 0;
    for p in payments {
        let to = &p.to;
        let (bank, branch) = bank_names(banks, to)?;
        let mut d = Record::new();
        d.text("データ区分", "2", 1)?;
        d.text("被仕向銀行番号", &to.bank.to_string(), 4)?;
        d.name("被仕向銀行名", &bank, 15)?;
        d.text("被仕向支店番号", &to.branch.to_string(), 3)?;
        d.name("被仕向支店名", &branch, 15)?;
        d.num("手形交換所番号", 0, 4)?;
        d.text("預金種目", &to.kind.digit().to_string(), 1)?;
        d.num("口座番号", u64::from(to.number), 7)?;
        d.name("受取人名", &to.holder, 30)?;
        d.num("振込金額", p.amount_yen, 10)?;
        d.num("新規コード", 0, 1)?;
        d.num("顧客コード1", p.customer_code, 10)?;
        d.num("顧客コード2", 0, 10)?;
        d.num("振込区分", 7, 1)?;
        d.text("識別表示", "", 1)?;
        d.text("ダミー", "", 7)?;
        records.push(d.finish());
        total = total.saturating_add(p.amount_yen);
    }
    let mut t = Record::new();
    t.text("データ区分", "8", 1)?;
    t.num("合計件数", payments.len() as u64, 6)?;
    t.num("合計金額", total, 12)?;
    t.text("ダミー", "", 101)?;
    records.push(t.finish());
    let mut e = Record::new();
    e.text("データ区分", "9", 1)?;
    e.text("ダミー", "", 119)?;
    records.push(e.finish());

    let mut out = Vec::with_capacity(records.len() * (RECORD_BYTES + 2));
    for r in records {
        let (bytes, _, unmappable) = encoding_rs::SHIFT_JIS.encode(&r);
        // Every character passed `to_zengin_text`: one byte each in Shift_JIS.
        assert!(
            !unmappable && bytes.len() == RECORD_BYTES,
            "zengin record is {} bytes: {r:?}",
            bytes.len()
        );
        out.extend_from_slice(&bytes);
        out.extend_from_slice(b"\r\n");
    }
    Ok(out)
}

fn bank_names(banks: &dyn BankDirectory, a: &BankAccount) -> Result<(String, String), ZenginError> {
    let bank = banks
        .bank_name(&a.bank)
        .ok_or(ZenginError::UnknownBank(a.bank))?;
    let branch = banks
        .branch_name(&a.bank, &a.branch)
        .ok_or(ZenginError::UnknownBranch {
            bank: a.bank,
            branch: a.branch,
        })?;
    Ok((bank, branch))
}

/// A record being filled field by field; every field is counted in
/// half-width characters (= Shift_JIS bytes after conversion).
struct Record(String, usize);

impl Record {
    fn new() -> Record {
        Record(String::with_capacity(RECORD_BYTES * 3), 0)
    }
    fn num(&mut self, field: &'static str, value: u64, width: usize) -> Result<(), ZenginError> {
        let s = format!("{value:0width$}");
        if s.len() > width {
            return Err(ZenginError::TooLarge {
                field,
                value,
                width,
            });
        }
        self.push(&s, width);
        Ok(())
    }
    fn text(&mut self, field: &'static str, value: &str, width: usize) -> Result<(), ZenginError> {
        self.name(field, value, width)
    }
    fn name(&mut self, field: &'static str, value: &str, width: usize) -> Result<(), ZenginError> {
        let s = to_zengin_text(field, value)?;
        let len = s.chars().count();
        if len > width {
            return Err(ZenginError::TooLong {
                field,
                text: value.to_owned(),
                len,
                max: width,
            });
        }
        self.push(&s, width);
        Ok(())
    }
    fn push(&mut self, s: &str, width: usize) {
        self.0.push_str(s);
        for _ in s.chars().count()..width {
            self.0.push(' ');
        }
        self.1 += width;
    }
    fn finish(self) -> String {
        assert_eq!(
            self.1, RECORD_BYTES,
            "zengin record layout adds up to {}",
            self.1
        );
        self.0
    }
}

/// A small excerpt of the zengin-code bank data (zengin-code/source-data,
/// as embedded by the `zengin` crate 1.1.1): enough for tests and the demo.
/// Replace with the full table through [`BankDirectory`] in production.
#[derive(Clone, Copy, Debug, Default)]
pub struct BuiltinBanks;

/// (bank code, bank name, [(branch code, branch name)]).
type BankRow = (
    &'static str,
    &'static str,
    &'static [(&'static str, &'static str)],
);

const BANKS: &[BankRow] = &[
    (
        "0001",
        "ミズホ",
        &[
            ("001", "トウキヨウ"),
            ("004", "マルノウチチユウオウ"),
            ("005", "マルノウチ"),
        ],
    ),
    (
        "0005",
        "ミツビシユ－エフジエイ",
        &[
            ("001", "ホンテン"),
            ("002", "マルノウチ"),
            ("003", "カワラマチ"),
            ("004", "センバ"),
        ],
    ),
    (
        "0009",
        "ミツイスミトモ",
        &[
            ("001", "ジンボウチヨウ"),
            ("005", "カスカベ"),
            ("007", "ニイガタ"),
            ("008", "ナガノ"),
        ],
    ),
    ("0010", "リソナ", &[]),
    (
        "9900",
        "ユウチヨ",
        &[
            ("008", "ゼロゼロハチ"),
            ("018", "ゼロイチハチ"),
            ("019", "ゼロイチキユウ"),
        ],
    ),
];

impl BankDirectory for BuiltinBanks {
    fn bank_name(&self, bank: &BankCode) -> Option<String> {
        let code = bank.to_string();
        BANKS.iter().find(|b| b.0 == code).map(|b| b.1.to_owned())
    }
    fn branch_name(&self, bank: &BankCode, branch: &BranchCode) -> Option<String> {
        let (code, br) = (bank.to_string(), branch.to_string());
        BANKS
            .iter()
            .find(|b| b.0 == code)
            .and_then(|b| b.2.iter().find(|x| x.0 == br))
            .map(|x| x.1.to_owned())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conversion_table() {
        let cases = [
            ("ミツビシユ－エフジエイ", Ok("ﾐﾂﾋﾞｼﾕ-ｴﾌｼﾞｴｲ")),
            ("やまだ　たろう", Ok("ﾔﾏﾀﾞ ﾀﾛｳ")),
            ("ｶ)ﾌﾞﾝｷﾖｳｼﾖｳﾃﾝ", Ok("ｶ)ﾌﾞﾝｷﾖｳｼﾖｳﾃﾝ")),
            ("ショップ.ｐｏｐ", Ok("ｼﾖﾂﾌﾟ.POP")),
            ("ヴァイオリン", Ok("ｳﾞｱｲｵﾘﾝ")),
            ("山田", Err('山')),
            ("ヲ", Err('ヲ')),
            ("A&B", Err('&')),
        ];
        for (input, want) in cases {
            let got = to_zengin_text("受取人名", input).map_err(|e| match e {
                ZenginError::Unencodable { ch, .. } => ch,
                other => panic!("{other}"),
            });
            assert_eq!(got.as_deref().map_err(|c| *c), want, "{input}");
        }
    }

    #[test]
    fn transfer_date_is_a_day_of_the_year() {
        let remitter = Remitter {
            code: 1,
            account: BankAccount {
                bank: BankCode::parse("0009").unwrap(),
                branch: BranchCode::parse("001").unwrap(),
                kind: AccountKind::Ordinary,
                number: 1,
                holder: "ｾｲｻﾝ".into(),
            },
        };
        for (month, day) in [
            (0, 1),
            (13, 1),
            (4, 31),
            (2, 30),
            (1, 0),
            (u32::MAX, 1),
            (1, 100),
        ] {
            assert_eq!(
                write_transfer_file(&remitter, (month, day), &[], &BuiltinBanks),
                Err(ZenginError::BadDate { month, day }),
                "{month}/{day}"
            );
        }
        for (month, day) in [(2, 29), (12, 31), (1, 1)] {
            let file = write_transfer_file(&remitter, (month, day), &[], &BuiltinBanks).unwrap();
            assert_eq!(&file[54..58], format!("{month:02}{day:02}").as_bytes());
        }
    }

    #[test]
    fn codes_are_checked() {
        assert!(BankCode::parse("123").is_err());
        assert!(BranchCode::parse("12a").is_err());
        let b = BuiltinBanks;
        assert!(b.bank_name(&BankCode::parse("0009").unwrap()).is_some());
        assert!(
            b.branch_name(
                &BankCode::parse("0009").unwrap(),
                &BranchCode::parse("002").unwrap()
            )
            .is_none()
        );
    }
}
