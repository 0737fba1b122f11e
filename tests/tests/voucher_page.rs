//! The shop's phone page (issue 17 part 4) in a real headless Chromium
//! (tests/dashboard/voucher_page.mjs): the hub issues a batch as PNGs; the
//! shop node learns its limits and goes offline; `mykey-node voucher page`
//! serves the page and the browser hands it photos through its
//! `<input type=file accept=image/* capture>`, as a phone's camera app
//! would: voucher 1 is taken, the same photo again is answered as taken
//! before, a voucher signed by another key is refused and says why, and a
//! photo with no code says so. Back online, the hub pays voucher 1 once.
//!
//! Needs Chromium and `npm ci --prefix tests/dashboard`; build the binaries
//! first (`cargo build -p mykey-node -p mykey-hub --bins`).

mod browser_common;
mod net_common;

use browser_common::Browser;
use net_common::*;
use std::process::Command;
use std::time::Duration;

#[test]
fn a_phone_photo_of_a_voucher_is_taken_once_through_the_page() {
    let w = World::create(1, 0);
    let shop = w.nodes[0].as_path();
    let print = w.root.path().join("print");
    let out = hub_cli(
        &w.hub_dir,
        &[
            "voucher",
            "issue",
            "--programme",
            "health",
            "--count",
            "1",
            "--points",
            "500",
            "--expires",
            "2099-03-31",
            "--out",
            print.to_str().unwrap(),
            "--png",
        ],
    );
    assert!(out.contains("issued voucher batch 1"), "{out}");
    let photo = print.join("voucher-1-00001.png");
    // A look-alike signed by someone else, and a photo with no code.
    let genuine = mykey_voucher::decode_png(&std::fs::read(&photo).unwrap()).unwrap()[0].clone();
    let forged = mykey_voucher::VoucherBody {
        serial: mykey_voucher::Serial { batch: 1, index: 2 },
        ..genuine.body
    }
    .sign(&ed25519_dalek::SigningKey::from_bytes(&[9; 32]));
    let forged_png = w.root.path().join("forged.png");
    std::fs::write(&forged_png, mykey_voucher::voucher_png(&forged, 8)).unwrap();
    let blank_png = w.root.path().join("blank.png");
    image::GrayImage::from_pixel(400, 400, image::Luma([255]))
        .save(&blank_png)
        .unwrap();

    {
        let (mut hub, addr) = start_hub(&w.hub_dir, 0);
        let mut n = start_node("shop", shop, Some(&addr), &[]);
        wait_until("shop caught up", Duration::from_secs(60), || {
            caught_up(shop)
        });
        n.terminate();
        hub.terminate();
    }

    let page = Proc::spawn(
        "voucher-page",
        Command::new(bin("mykey-node"))
            .arg("--data")
            .arg(shop)
            .args(["voucher", "page", "--listen", "127.0.0.1:0"]),
    );
    let line = page.line_starting("voucher page on ", Duration::from_secs(30));
    let url = line.trim_start_matches("voucher page on ").to_owned();

    let photos = [&photo, &photo, &forged_png, &blank_png];
    let args: Vec<String> = std::iter::once(url)
        .chain(photos.iter().map(|p| p.to_str().unwrap().to_owned()))
        .collect();
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let mut b = Browser::start("voucher_page.mjs", &args);
    let first = b.at("page");
    assert_eq!(first["lang"], "ja", "{first}");
    assert_eq!(first["input"]["accept"], "image/*", "{first}");
    assert_eq!(first["input"]["type"], "file", "{first}");
    assert!(first["input"]["capture"].is_string(), "{first}");
    b.go();

    let taken = b.at("photo0");
    assert_eq!(taken["outcomes"], serde_json::json!(["taken"]), "{taken}");
    assert!(
        taken["text"].as_str().unwrap().contains("受付完了 500 pt"),
        "{taken}"
    );
    b.go();
    let again = b.at("photo1");
    assert_eq!(again["outcomes"], serde_json::json!(["already"]), "{again}");
    assert!(
        again["text"].as_str().unwrap().contains("1-00001"),
        "{again}"
    );
    b.go();
    let forged = b.at("photo2");
    assert_eq!(
        forged["outcomes"],
        serde_json::json!(["refused"]),
        "{forged}"
    );
    assert!(
        forged["text"].as_str().unwrap().contains("署名"),
        "{forged}"
    );
    b.go();
    let blank = b.at("photo3");
    assert_eq!(blank["outcomes"], serde_json::json!(["error"]), "{blank}");
    assert!(
        blank["text"]
            .as_str()
            .unwrap()
            .contains("QRコードが見つかりません"),
        "{blank}"
    );
    b.go();
    drop(b);
    drop(page);

    // One redemption in the node's chain; the hub pays it once.
    assert_eq!(status(shop)["pending"], 1);
    {
        let (mut hub, addr) = start_hub(&w.hub_dir, 0);
        let mut n = start_node("shop", shop, Some(&addr), &[]);
        wait_until("shop caught up", Duration::from_secs(60), || {
            caught_up(shop)
        });
        n.terminate();
        hub.terminate();
    }
    let list = hub_cli(&w.hub_dir, &["voucher", "list"]);
    assert!(list.contains("redeemed 1 (500 pt)"), "{list}");
}
