//! Both CLIs in a pipeline whose reader has gone (`mykey-hub … | head`):
//! a quiet exit 141, never a panic (exit 101 and a panic message), and no
//! colour codes in what they log to a file.

mod net_common;

use net_common::{bin, hub_cli};
use std::process::{Command, Stdio};

/// Runs `cmd` with stdout a pipe nobody reads: the reader end is closed
/// before the process starts, so its first write fails.
fn into_closed_pipe(cmd: &mut Command) -> (Option<i32>, String) {
    let (reader, writer) = std::io::pipe().unwrap();
    drop(reader);
    let out = cmd
        .stdout(Stdio::from(writer))
        .stderr(Stdio::piped())
        .output()
        .unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn a_closed_pipe_ends_both_clis_quietly() {
    let dir = tempfile::tempdir().unwrap();
    let hub = dir.path().join("hub");
    hub_cli(&hub, &["init"]);
    let (code, err) = into_closed_pipe(
        Command::new(bin("mykey-hub"))
            .arg("--data")
            .arg(&hub)
            .arg("id"),
    );
    assert_eq!(code, Some(141), "{err}");
    assert!(!err.contains("panicked"), "{err}");

    let node = dir.path().join("node");
    let hub_id = hub_cli(&hub, &["id"]);
    let out = Command::new(bin("mykey-node"))
        .arg("--data")
        .arg(&node)
        .args(["init", "--hub-key", hub_id.trim()])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let (code, err) = into_closed_pipe(
        Command::new(bin("mykey-node"))
            .arg("--data")
            .arg(&node)
            .arg("id"),
    );
    assert_eq!(code, Some(141), "{err}");
    assert!(!err.contains("panicked"), "{err}");
}

#[test]
fn logs_to_a_file_carry_no_colour_codes() {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(bin("mykey-hub"))
        .arg("--data")
        .arg(dir.path().join("hub"))
        .arg("init")
        .env("RUST_LOG", "debug")
        .env_remove("NO_COLOR")
        .output()
        .unwrap();
    assert!(out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!err.is_empty(), "a debug log was expected");
    assert!(
        !err.contains('\u{1b}'),
        "colour codes in a log file:\n{err}"
    );
}
