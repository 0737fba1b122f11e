//! Printed QR point vouchers issued by the hub (issue 17, part 1(b)): the
//! real `mykey-hub` binary on a town in a temp data directory issues a
//! batch, writes its A4 sheets (PDF, SVG) and PNGs; a PNG decodes back to a
//! voucher the hub's key verifies; the points sit in the voucher float of
//! the balanced ledger and in the liability report until the batch is
//! cancelled.

mod net_common;

use mykey_tests::world::World;
use net_common::{hub_cli, now, refused};
use serde_json::Value;
use std::path::Path;

fn liabilities(hub: &Path) -> Value {
    let out = hub_cli(hub, &["report", "liabilities", "--format", "json"]);
    serde_json::from_str(&out).unwrap()
}

fn vouchers_outstanding(hub: &Path) -> i64 {
    liabilities(hub)["municipalities"][0]["vouchers_outstanding"]
        .as_i64()
        .unwrap()
}

/// `ledger check` fails (and `hub_cli` panics) on an unbalanced ledger.
fn balanced(hub: &Path) {
    hub_cli(hub, &["ledger", "check"]);
}

#[test]
fn issue_print_decode_cancel() {
    let root = tempfile::tempdir().unwrap();
    let w = World::create(root.path(), now()).unwrap();
    let hub_id = w.hub.hub_id();
    drop(w);
    let hub = root.path().join("hub");
    let out_dir = root.path().join("print");
    let out = hub_cli(
        &hub,
        &[
            "voucher",
            "issue",
            "--programme",
            "health",
            "--count",
            "21",
            "--points",
            "500",
            "--expires",
            "2099-03-31",
            "--out",
            out_dir.to_str().unwrap(),
            "--png",
        ],
    );
    assert!(out.contains("issued voucher batch 1: 21 × 500 pt"), "{out}");

    // The sheets: a two-page PDF (20 a page), one SVG a page with the face.
    let pdf = std::fs::read(out_dir.join("vouchers-1.pdf")).unwrap();
    assert!(pdf.starts_with(b"%PDF-1.4") && pdf.ends_with(b"%%EOF\n"));
    assert!(String::from_utf8_lossy(&pdf).contains("/Count 2"));
    let svg = std::fs::read_to_string(out_dir.join("vouchers-1-2.svg")).unwrap();
    for face in [
        "500 pt",
        "valid through 2099-03-31",
        "serial 1-00021",
        "municipality 131059",
    ] {
        assert!(svg.contains(face), "{face}");
    }

    // A printed PNG reads back as voucher 1-00007, signed by this hub.
    let png = std::fs::read(out_dir.join("voucher-1-00007.png")).unwrap();
    let read = mykey_voucher::decode_png(&png).unwrap();
    assert_eq!(read.len(), 1);
    let key = hub_id.verifying_key().unwrap();
    let v = read[0].verify(&key).unwrap();
    assert_eq!(
        (
            v.body().serial.batch,
            v.body().serial.index,
            v.body().points
        ),
        (1, 7, 500)
    );
    // A digit changed in its text is refused before the signature.
    let mut text = mykey_voucher::to_text(&read[0]).into_bytes();
    text[40] = if text[40] == b'0' { b'1' } else { b'0' };
    assert!(mykey_voucher::parse(std::str::from_utf8(&text).unwrap()).is_err());

    // Printed again: the same bytes (deterministic signatures).
    let again = root.path().join("again");
    hub_cli(
        &hub,
        &["voucher", "print", "1", "--out", again.to_str().unwrap()],
    );
    assert_eq!(std::fs::read(again.join("vouchers-1.pdf")).unwrap(), pdf);

    // One voucher for a receipt printer: its ESC/POS raster, read back into
    // an image, decodes to voucher 1-00021, which verifies.
    let out = hub_cli(
        &hub,
        &[
            "voucher",
            "print",
            "1",
            "--format",
            "escpos",
            "--index",
            "21",
            "--out",
            again.to_str().unwrap(),
        ],
    );
    assert!(out.contains("voucher-1-00021.escpos"), "{out}");
    let escpos = std::fs::read(again.join("voucher-1-00021.escpos")).unwrap();
    let png = mykey_voucher::escpos_raster_png(&escpos).expect("a GS v 0 raster");
    let read = mykey_voucher::decode_png(&png).unwrap();
    assert_eq!(read.len(), 1);
    assert_eq!(read[0].body.serial.to_string(), "1-00021");
    assert!(read[0].verify(&key).is_ok());
    let err = refused(
        "mykey-hub",
        &hub,
        &[
            "voucher",
            "print",
            "1",
            "--format",
            "escpos",
            "--index",
            "22",
            "--out",
            again.to_str().unwrap(),
        ],
    );
    assert!(err.contains("has 21 vouchers, not 22"), "{err}");

    // The books: 21 × 500 in the voucher float, balanced.
    assert_eq!(vouchers_outstanding(&hub), 10_500);
    balanced(&hub);
    let list = hub_cli(&hub, &["voucher", "list"]);
    assert!(list.contains("batch 1") && list.contains("open"), "{list}");

    // More than the budget holds: refused, nothing recorded.
    let err = refused(
        "mykey-hub",
        &hub,
        &[
            "voucher",
            "issue",
            "--programme",
            "health",
            "--count",
            "1000",
            "--points",
            "5000",
            "--expires",
            "2099-03-31",
            "--out",
            out_dir.to_str().unwrap(),
        ],
    );
    assert!(
        err.contains("programme health has") && err.contains("fund it first"),
        "{err}"
    );
    assert_eq!(vouchers_outstanding(&hub), 10_500);
    // An expiry in the past: refused.
    let err = refused(
        "mykey-hub",
        &hub,
        &[
            "voucher",
            "issue",
            "--programme",
            "health",
            "--count",
            "1",
            "--points",
            "5",
            "--expires",
            "2020-01-01",
            "--out",
            out_dir.to_str().unwrap(),
        ],
    );
    assert!(err.contains("already passed"), "{err}");

    // Cancelled: the float returns to the programme; twice is refused.
    let out = hub_cli(&hub, &["voucher", "cancel", "1"]);
    assert!(out.contains("10500 pt back"), "{out}");
    assert_eq!(vouchers_outstanding(&hub), 0);
    balanced(&hub);
    let err = refused("mykey-hub", &hub, &["voucher", "cancel", "1"]);
    assert!(err.contains("already cancelled"), "{err}");
    assert!(hub_cli(&hub, &["voucher", "list"]).contains("cancelled"));
}
