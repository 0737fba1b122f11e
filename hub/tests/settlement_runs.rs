//! Settlement runs are all or nothing (issue 13, item 5; issue 22): a
//! missing bank account closes nothing, every file a run makes is recorded
//! with its periods and written mode 0600, a file that could not be written
//! is written by the next run byte for byte, `rewrite_period` makes a
//! period's files again, names never collide, and `POST /api/economy/settle`
//! writes the same files into the serving hub's settlement directory.
#![allow(missing_docs)]

mod common;

use common::*;
use mykey_hub::economy::calendar::Date;
use mykey_hub::economy::lots::ExpiryPolicy;
use mykey_hub::economy::outputs::{OutputError, Written};
use mykey_hub::economy::zengin::{AccountKind, BankAccount, BankCode, BranchCode, BuiltinBanks};
use mykey_hub::store::economy::Party;
use mykey_sync_proto::UnixMillis;
use mykey_sync_proto::session::HubService;
use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

fn account(bank: &str, branch: &str, number: u32, holder: &str) -> BankAccount {
    BankAccount {
        bank: BankCode::parse(bank).unwrap(),
        branch: BranchCode::parse(branch).unwrap(),
        kind: AccountKind::Ordinary,
        number,
        holder: holder.into(),
    }
}

fn set(f: &mut Fixture, party: Party) {
    let (acct, code) = match &party {
        Party::Agent => (account("0009", "001", 1_234_567, "ｾｲｻﾝﾀﾞｲｺｳ"), 1_234_567_890),
        Party::Merchant(_) | Party::Donation(_) => {
            (account("0001", "004", 7_654_321, "ﾌﾞﾝｷﾖｳｼﾖｳﾃﾝ"), 1)
        }
        Party::Municipality(_) => (account("0005", "001", 111, "ﾌﾞﾝｷﾖｳｸ"), 131_059),
    };
    f.hub.set_payee(&party, &acct, code, &BuiltinBanks).unwrap();
}

/// A fixture with an exchange (municipality receipts) and a redeem at the
/// shop (a merchant payout) in June 2025, and the merchant's account only.
fn june(f: &mut Fixture) {
    enrol_card_x(&mut f.hub, 0, ExpiryPolicy::Never, T0);
    card_x_exchange(&mut f.hub, "r1", "Alice01", 4000, T0);
    let tx = f.shop.sign(redeem(f.alice, 1, 700));
    let shop = f.shop.id;
    f.hub.ingest(&shop, vec![tx], T0.plus_ms(1));
    set(f, Party::Merchant(fid("shop-1")));
}

fn september() -> UnixMillis {
    Date::new(2025, 9, 1).unwrap().start()
}

/// Every file in `dir`: name → (bytes, mode).
fn files(dir: &Path) -> BTreeMap<String, (Vec<u8>, u32)> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| {
            let e = e.unwrap();
            let mode = e.metadata().unwrap().permissions().mode() & 0o777;
            (
                e.file_name().to_string_lossy().into_owned(),
                (std::fs::read(e.path()).unwrap(), mode),
            )
        })
        .collect()
}

/// A clean run: every payee registered before the first settlement.
fn clean_run(now: UnixMillis) -> BTreeMap<String, (Vec<u8>, u32)> {
    let mut f = Fixture::new();
    june(&mut f);
    set(&mut f, Party::Agent);
    set(&mut f, Party::Municipality(muni()));
    let out = f.dir.path().join("clean");
    let run = f.hub.settle(&out, &BuiltinBanks, now, false).unwrap();
    assert_eq!(run.run, Some(1));
    assert_eq!(
        run.closed.len(),
        6,
        "June, July, August of both municipalities"
    );
    files(&out)
}

#[test]
fn a_missing_bank_account_closes_nothing_and_the_rerun_writes_what_a_clean_run_writes() {
    let now = september();
    let mut f = Fixture::new();
    june(&mut f);
    let out = f.dir.path().join("out");
    let e = f.hub.settle(&out, &BuiltinBanks, now, false).unwrap_err();
    // Every party to fix is named at once.
    match &e {
        OutputError::NoBankAccount(who) => assert_eq!(
            who,
            &[
                "municipality 131059".to_owned(),
                "the settlement agent".to_owned()
            ]
        ),
        other => panic!("expected missing accounts, got {other}"),
    }
    assert!(e.to_string().contains("nothing was closed"), "{e}");
    assert!(f.hub.closed_periods(muni()).unwrap().is_empty());
    assert!(
        files(&out).is_empty(),
        "no file of a run that closed nothing"
    );

    set(&mut f, Party::Agent);
    set(&mut f, Party::Municipality(muni()));
    let run = f.hub.settle(&out, &BuiltinBanks, now, false).unwrap();
    assert_eq!(run.closed.len(), 6);
    let written = files(&out);
    let names: Vec<&str> = written.keys().map(String::as_str).collect();
    assert_eq!(
        names,
        [
            "liabilities-20250901-r0001.csv",
            "liabilities-20250901-r0001.json",
            "payouts-131059-20250601-p0001.zengin",
            "receipts-131059-20250601-p0001.zengin",
            "statements-131059-20250601-p0001.csv",
            "statements-131059-20250701-p0002.csv",
            "statements-131059-20250801-p0003.csv",
            "statements-131016-20250601-p0001.csv",
            "statements-131016-20250701-p0002.csv",
            "statements-131016-20250801-p0003.csv",
        ]
        .into_iter()
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .collect::<Vec<_>>()
    );
    assert_eq!(written, clean_run(now), "byte for byte, mode for mode");
    for (name, (_, mode)) in &written {
        assert_eq!(*mode, 0o600, "{name}");
    }
    let dir_mode = std::fs::metadata(&out).unwrap().permissions().mode() & 0o777;
    assert_eq!(dir_mode, 0o700);
    // A receipts file pays the municipality 2000 yen from the agent.
    let receipts = &written["receipts-131059-20250601-p0001.zengin"].0;
    assert_eq!(receipts.len(), 4 * 122);
    assert!(String::from_utf8_lossy(&receipts[..122]).contains("1234567890"));

    // Nothing is due any more: a rerun closes and writes nothing.
    let again = f.hub.settle(&out, &BuiltinBanks, now, false).unwrap();
    assert_eq!(
        (again.run, again.closed.len(), again.files.len()),
        (None, 0, 0)
    );
    f.hub.check_conservation().unwrap();
}

#[test]
fn a_recorded_file_that_was_not_written_is_written_by_the_next_run_byte_for_byte() {
    let now = september();
    let mut f = Fixture::new();
    june(&mut f);
    set(&mut f, Party::Agent);
    set(&mut f, Party::Municipality(muni()));
    // The run records its periods and files, then stops before writing any
    // (a crash, a full disk).
    let (run, closed) = f.hub.record_settlement(&BuiltinBanks, now, false).unwrap();
    assert_eq!((run, closed.len()), (Some(1), 6));
    let out = f.dir.path().join("out");
    let rerun = f.hub.settle(&out, &BuiltinBanks, now, false).unwrap();
    assert_eq!(rerun.run, None, "nothing closes twice");
    assert_eq!(rerun.files.len(), 10);
    assert!(
        rerun
            .files
            .iter()
            .all(|w| w.run == 1 && w.how == Written::New)
    );
    assert_eq!(files(&out), clean_run(now));

    // A file written once is not made again by a later run...
    let payouts = out.join("payouts-131059-20250601-p0001.zengin");
    let original = std::fs::read(&payouts).unwrap();
    std::fs::remove_file(&payouts).unwrap();
    let later = f.hub.settle(&out, &BuiltinBanks, now, false).unwrap();
    assert!(later.files.is_empty());
    assert!(
        !payouts.exists(),
        "a payout file is never sent twice by accident"
    );
    // ...but on request, for its period, by number or by first day.
    let (period, rewritten) = f.hub.rewrite_period(muni(), "1", &out, now).unwrap();
    assert_eq!(period.number, 1);
    let how: BTreeMap<String, Written> = rewritten
        .iter()
        .map(|w| {
            (
                w.path.file_name().unwrap().to_string_lossy().into_owned(),
                w.how,
            )
        })
        .collect();
    assert_eq!(how["payouts-131059-20250601-p0001.zengin"], Written::New);
    assert_eq!(
        how["statements-131059-20250601-p0001.csv"],
        Written::AlreadyThere
    );
    assert_eq!(std::fs::read(&payouts).unwrap(), original);
    let mode = std::fs::metadata(&payouts).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    // A file that differs from the record is never silently overwritten by
    // a run; a rewrite replaces it.
    std::fs::write(&payouts, b"edited").unwrap();
    let (_, rewritten) = f
        .hub
        .rewrite_period(muni(), "2025-06-01", &out, now)
        .unwrap();
    assert!(rewritten.iter().any(|w| w.how == Written::Replaced));
    assert_eq!(std::fs::read(&payouts).unwrap(), original);
    let e = f.hub.rewrite_period(muni(), "9", &out, now).unwrap_err();
    assert!(e.to_string().contains("131059:1 (2025-06-01)"), "{e}");
}

#[test]
fn an_unwritable_directory_closes_nothing_and_a_differing_file_is_refused() {
    let now = september();
    let mut f = Fixture::new();
    june(&mut f);
    set(&mut f, Party::Agent);
    set(&mut f, Party::Municipality(muni()));
    let blocker = f.dir.path().join("a-file");
    std::fs::write(&blocker, b"x").unwrap();
    let e = f
        .hub
        .settle(&blocker.join("out"), &BuiltinBanks, now, false)
        .unwrap_err();
    assert!(matches!(e, OutputError::Unwritable { .. }), "{e}");
    assert!(f.hub.closed_periods(muni()).unwrap().is_empty());

    // A stranger's file under a name the run will use: the periods close and
    // are recorded, the file is refused, the rest waits for the next run.
    let out = f.dir.path().join("out");
    std::fs::create_dir(&out).unwrap();
    std::fs::write(out.join("liabilities-20250901-r0001.csv"), b"not ours").unwrap();
    let e = f.hub.settle(&out, &BuiltinBanks, now, false).unwrap_err();
    assert!(matches!(e, OutputError::Differs(_)), "{e}");
    let first_written = files(&out).len() - 1;
    assert_eq!(f.hub.closed_periods(muni()).unwrap().len(), 3);
    std::fs::remove_file(out.join("liabilities-20250901-r0001.csv")).unwrap();
    let rerun = f.hub.settle(&out, &BuiltinBanks, now, false).unwrap();
    assert_eq!(rerun.run, None);
    // Those the refused run wrote before the refusal, and the rest.
    assert_eq!(rerun.files.len() + first_written, 10);
    let mut clean = clean_run(now);
    let mut got = files(&out);
    // The clean run's directory was created 0700 by settle; both hold the same files.
    assert_eq!(got.len(), clean.len());
    got.retain(|k, _| clean.contains_key(k));
    clean.retain(|k, _| got.contains_key(k));
    assert_eq!(got, clean);
}

#[test]
fn two_runs_on_one_day_never_overwrite_each_other() {
    let mut f = Fixture::new();
    june(&mut f);
    set(&mut f, Party::Agent);
    set(&mut f, Party::Municipality(muni()));
    let out = f.dir.path().join("out");
    let shop = f.shop.id;
    // Three runs within one JST day, each closing the open period through
    // its time: the second and third periods both start that day.
    let t1 = T0.plus_ms(3_600_000);
    let mut numbers = vec![];
    for i in 0..3u64 {
        let at = t1.plus_ms(i * 60_000);
        let tx = f.shop.sign(redeem(f.alice, 1, 100));
        f.hub.ingest(&shop, vec![tx], UnixMillis(at.0 - 10));
        let run = f.hub.settle(&out, &BuiltinBanks, at, true).unwrap();
        let ours: Vec<_> = run
            .closed
            .iter()
            .filter(|c| c.period.municipality == muni())
            .collect();
        assert_eq!(ours.len(), 1);
        numbers.push(ours[0].number);
    }
    assert_eq!(numbers, [1, 2, 3]);
    let day = Date::of(t1).compact();
    let names: Vec<String> = files(&out).into_keys().collect();
    for want in [
        "statements-131059-20250601-p0001.csv".to_owned(),
        format!("statements-131059-{day}-p0002.csv"),
        format!("statements-131059-{day}-p0003.csv"),
        format!("payouts-131059-{day}-p0002.zengin"),
        format!("payouts-131059-{day}-p0003.zengin"),
        format!("liabilities-{day}-r0002.json"),
        format!("liabilities-{day}-r0003.json"),
    ] {
        assert!(names.contains(&want), "{want} missing from {names:?}");
    }
}

#[test]
fn the_settle_api_writes_the_runs_files_into_the_hubs_settlement_directory() {
    let mut f = Fixture::new();
    let token = f.api_token();
    june(&mut f);
    let addr = serve(&f);
    let settle = |body: &str| {
        request(
            addr,
            "POST",
            "/api/economy/settle",
            &bearer(&token),
            body.as_bytes(),
        )
    };
    // Without the agent's and the municipality's accounts: 422, nothing closed.
    let (status, body) = settle(r#"{"through_now": true}"#);
    assert_eq!(status, 422, "{body}");
    assert!(
        body.contains("the settlement agent") && body.contains("municipality 131059"),
        "{body}"
    );
    assert!(f.hub.closed_periods(muni()).unwrap().is_empty());

    set(&mut f, Party::Agent);
    set(&mut f, Party::Municipality(muni()));
    let (status, body) = settle(r#"{"through_now": true}"#);
    assert_eq!(status, 200, "{body}");
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    let dir = f.dir.path().join("hub").join("settlement");
    assert_eq!(v["dir"], dir.display().to_string());
    assert_eq!(v["run"], 1);
    let written = files(&dir);
    let answered = v["files"].as_array().unwrap();
    assert_eq!(answered.len(), written.len());
    assert!(answered.len() >= 5, "{body}");
    for file in answered {
        let name = file["name"].as_str().unwrap();
        let (bytes, mode) = &written[name];
        assert_eq!(*mode, 0o600, "{name}");
        use sha2::Digest;
        assert_eq!(
            file["sha256"].as_str().unwrap(),
            hex::encode(sha2::Sha256::digest(bytes))
        );
    }
    // The CLI makes the very same files from the record.
    let number = v["closed"][0]["number"].as_u64().unwrap();
    let cli_dir = f.dir.path().join("cli");
    let out = ok(
        &f.dir.path().join("hub"),
        &[
            "settle",
            "--rewrite",
            &format!("131059:{number}"),
            "--out",
            cli_dir.to_str().unwrap(),
        ],
    );
    assert!(out.contains(&format!("period 131059:{number}")), "{out}");
    let from_cli = files(&cli_dir);
    assert!(!from_cli.is_empty());
    for (name, content) in &from_cli {
        assert_eq!(Some(content), written.get(name), "{name}");
    }
}
