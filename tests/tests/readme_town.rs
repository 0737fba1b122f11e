//! README.md's "A whole town, step by step" (issue 22, item 8), run as it
//! stands: every `sh` block of that section, in order, as one bash script
//! (`set -euo pipefail`), from the repository's root, with the real
//! binaries, pcscd with the vpcd reader and the virtual card, the hub and
//! two nodes on loopback. A step that fails, or a section that no longer
//! walks the whole town, fails the test.

mod net_common;

use net_common::bin;
use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const SECTION: &str = "## A whole town, step by step";

/// The `sh` blocks of the section, in order.
fn town_blocks(readme: &str) -> Vec<String> {
    let start = readme
        .find(SECTION)
        .unwrap_or_else(|| panic!("README.md has no section {SECTION:?}"));
    let body = &readme[start + SECTION.len()..];
    let body = &body[..body.find("\n## ").unwrap_or(body.len())];
    let mut blocks = Vec::new();
    let mut lines = body.lines();
    while let Some(line) = lines.next() {
        if line.trim_end() == "```sh" {
            let block: Vec<&str> = lines
                .by_ref()
                .take_while(|l| l.trim_end() != "```")
                .collect();
            blocks.push(block.join("\n"));
        }
    }
    blocks
}

/// The script's process group, killed when the test ends however it ends
/// (the hub, the nodes and the virtual card it left in the background).
struct Group(Child);

impl Drop for Group {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-KILL", "--", &format!("-{}", self.0.id())])
            .stderr(Stdio::null())
            .status();
        let _ = self.0.wait();
    }
}

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

#[test]
fn the_readme_walks_a_whole_town() {
    let root = root();
    let readme = std::fs::read_to_string(root.join("README.md")).unwrap();
    let blocks = town_blocks(&readme);
    let script = blocks.join("\n");
    // The section must still walk the whole town the issue names, not a
    // shorter path that happens to run.
    for step in [
        "mykey-hub init",
        "municipality add",
        "facility add",
        "program create",
        " grant ",
        "payee set --merchant",
        "payee set --agent",
        "card read",
        "account register",
        "node enrol",
        " serve ",
        " run ",
        " link ",
        " watch --once",
        "--pin-stdin",
        " settle ",
        "statements",
        "api/nodes",
    ] {
        assert!(
            script.contains(step),
            "the town's blocks no longer do {step:?}:\n{script}"
        );
    }

    // Binaries next to this test (a CARGO_TARGET_DIR elsewhere too), vjpki
    // among them; the README's own PATH line comes first in the script.
    let bins = bin("mykey-hub").parent().unwrap().to_path_buf();
    let path = format!(
        "{}:{}",
        bins.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("town.out");
    let file = std::fs::File::create(&out).unwrap();
    let child = Command::new("bash")
        .arg("-c")
        .arg(format!("set -euo pipefail\n{script}\n"))
        .current_dir(&root)
        .env("PATH", path)
        .env("TMPDIR", tmp.path()) // the town's `mktemp -d` lands in this test's temp dir
        .env("NO_COLOR", "1")
        .stdin(Stdio::null())
        .stdout(file.try_clone().unwrap())
        .stderr(file)
        .process_group(0)
        .spawn()
        .unwrap();
    let mut group = Group(child);
    let deadline = Instant::now() + Duration::from_secs(240);
    let status = loop {
        if let Some(s) = group.0.try_wait().unwrap() {
            break Some(s);
        }
        if Instant::now() > deadline {
            break None;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let text = std::fs::read_to_string(&out).unwrap_or_default();
    let status = status.unwrap_or_else(|| panic!("the town did not finish within 240 s:\n{text}"));
    assert!(
        status.success(),
        "a step of the town failed ({status}):\n{text}"
    );

    // What each step should have said.
    for said in [
        "card number LIB-0042",
        "redeemed 2500 pt with PIN",
        "merchant-payout",
        "shotengai-1",
        "\"nodes\"",
    ] {
        assert!(
            text.contains(said),
            "the town's output lacks {said:?}:\n{text}"
        );
    }
    // The hub's balance after the shop pushed, and the settlement's files.
    assert!(
        text.contains("131059: balance 2500 pt"),
        "no 2500 pt balance at the hub in:\n{text}"
    );
    assert!(
        text.lines()
            .any(|l| l.starts_with("payouts-131059-") && l.ends_with(".zengin")),
        "`ls settlement` shows no Zengin payout file:\n{text}"
    );
}
