//! The node's data directory is closed to others: `mykey-node init` makes
//! it 0700 and every file in it 0600 (the store holds card-to-account links
//! and balances), and opening it again closes what someone opened.
#![allow(missing_docs)]

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;

const HUB_KEY: &str = "3b6a27bcceb6a42d62a3a8d02a6f0d73653215771de243a63ac048a18b59da29";

fn mode(p: &Path) -> u32 {
    std::fs::metadata(p).unwrap().permissions().mode() & 0o777
}

fn node(data: &Path, args: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_mykey-node"))
        .arg("--data")
        .arg(data)
        .args(args)
        .env_remove("RUST_LOG")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// Every file in the directory with its mode.
fn modes(dir: &Path) -> Vec<(String, u32)> {
    let mut v: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| {
            let p = e.unwrap().path();
            (
                p.file_name().unwrap().to_string_lossy().into_owned(),
                mode(&p),
            )
        })
        .collect();
    v.sort();
    v
}

#[test]
fn init_makes_the_directory_0700_and_its_files_0600() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("node-data");
    node(&data, &["init", "--hub-key", HUB_KEY]);
    assert_eq!(mode(&data), 0o700);
    let files = modes(&data);
    let names: Vec<&str> = files.iter().map(|(n, _)| n.as_str()).collect();
    for expected in ["node.key", "node.sqlite", "node.toml"] {
        assert!(names.contains(&expected), "{names:?}");
    }
    for (name, m) in &files {
        assert_eq!(*m, 0o600, "{name} has mode {m:o}");
    }
    // The store's write-ahead log and index, once a command has used it.
    node(&data, &["id"]);
    for (name, m) in modes(&data) {
        assert_eq!(m, 0o600, "{name} has mode {m:o}");
    }
}

#[test]
fn opening_closes_a_loosened_directory_and_store() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("node-data");
    // A directory made beforehand by someone else's tool, world-readable.
    std::fs::create_dir(&data).unwrap();
    std::fs::set_permissions(&data, std::fs::Permissions::from_mode(0o755)).unwrap();
    node(&data, &["init", "--hub-key", HUB_KEY]);
    assert_eq!(mode(&data), 0o700);
    std::fs::set_permissions(&data, std::fs::Permissions::from_mode(0o755)).unwrap();
    for f in ["node.sqlite", "node.toml"] {
        std::fs::set_permissions(data.join(f), std::fs::Permissions::from_mode(0o644)).unwrap();
    }
    node(&data, &["id"]);
    assert_eq!(mode(&data), 0o700);
    for (name, m) in modes(&data) {
        assert_eq!(m, 0o600, "{name} has mode {m:o}");
    }
}
