//! `bank_data`: the zengin-code bank and branch table an operator gives
//! the hub (`--bank-data DIR`), parsed, looked up and written into a
//! payout file.
//!
//! Input: `banks.json`, a NUL byte, then a branch file used for every bank
//! (JSON has no raw NUL, so the split is unambiguous).
//!
//! Properties: parsing never panics and refuses with a message; every code
//! it accepts is a valid bank or branch code and looks up its own name; a
//! payout file to those banks is whole records or a clear error (names from
//! bank data may hold characters Zengin cannot carry).

use mykey_hub::economy::bankdata::{JsonBankDirectory, parse_names};
use mykey_hub::economy::zengin::{
    AccountKind, BankAccount, BankCode, BankDirectory, BranchCode, Payment, Remitter,
};
use std::collections::HashMap;

/// Banks and branches written into one payout file, at most.
const MAX_PAYEES: usize = 64;

/// `banks.json`, NUL, a branch file.
pub fn data(data: &[u8]) {
    let (banks, branches) = match data.iter().position(|b| *b == 0) {
        Some(i) => (&data[..i], &data[i + 1..]),
        None => (data, &[][..]),
    };
    let banks = match parse_names(banks, 4) {
        Ok(b) => b,
        Err(e) => {
            assert!(!e.is_empty());
            return;
        }
    };
    let branches = parse_names(branches, 3).unwrap_or_else(|e| {
        assert!(!e.is_empty());
        HashMap::new()
    });
    let dir = JsonBankDirectory::from_names(
        banks
            .iter()
            .map(|(code, name)| (code.clone(), (name.clone(), branches.clone())))
            .collect(),
    );
    assert_eq!(dir.n_banks(), banks.len());
    let mut payees = vec![];
    for (code, name) in banks.iter().take(MAX_PAYEES) {
        let bank = BankCode::parse(code).expect("an accepted bank code parses");
        assert_eq!(dir.bank_name(&bank).as_ref(), Some(name));
        for (bcode, bname) in branches.iter().take(MAX_PAYEES) {
            let branch = BranchCode::parse(bcode).expect("an accepted branch code parses");
            assert_eq!(dir.branch_name(&bank, &branch).as_ref(), Some(bname));
            if payees.len() < MAX_PAYEES {
                payees.push((bank, branch));
            }
        }
    }
    let account = |(bank, branch): (BankCode, BranchCode)| BankAccount {
        bank,
        branch,
        kind: AccountKind::Ordinary,
        number: 1_234_567,
        holder: "ｾｲｻﾝﾀﾞｲｺｳ".into(),
    };
    let Some(first) = payees.first() else {
        return;
    };
    let remitter = Remitter {
        code: 1_234_567_890,
        account: account(*first),
    };
    let payments: Vec<Payment> = payees
        .iter()
        .map(|p| Payment {
            to: account(*p),
            amount_yen: 1000,
            customer_code: 1,
        })
        .collect();
    crate::zengin::check(&remitter, (4, 30), &payments, &dir);
}

/// A `bank_data` input.
pub fn input(banks_json: &str, branches_json: &str) -> Vec<u8> {
    [banks_json.as_bytes(), &[0], branches_json.as_bytes()].concat()
}
