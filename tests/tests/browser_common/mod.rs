//! The real-browser rig the page tests share: Debian's Chromium driven by a
//! paced Node.js script in `tests/dashboard` (its `browser.mjs` gives the
//! scripts `launch` and `step`). The script prints one JSON line per step
//! and waits for `go` on stdin; the Rust test reads each step, checks it and
//! lets the script go on. (kiosk_browser.rs and dashboard_live.rs still
//! carry their own copies of this.)

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc::{Receiver, channel};
use std::time::Duration;

use serde_json::Value;

/// Debian's Chromium.
pub const CHROMIUM: &str = "/usr/bin/chromium";

/// The workspace root.
pub fn repo_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_owned()
}

/// `tests/dashboard`, after checking that Chromium and playwright-core are there.
pub fn require_browser() -> PathBuf {
    assert!(
        Path::new(CHROMIUM).is_file(),
        "{CHROMIUM} is missing: install it with `apt-get install -y chromium fonts-noto-cjk` (scripts/test.sh does)"
    );
    let js = repo_dir().join("tests/dashboard");
    assert!(
        js.join("node_modules/playwright-core/package.json")
            .is_file(),
        "playwright-core is missing: run `npm ci --prefix tests/dashboard` (scripts/test.sh does)"
    );
    js
}

/// A browser script, one step at a time; killed on drop.
pub struct Browser {
    child: Child,
    stdin: ChildStdin,
    lines: Receiver<String>,
}

impl Browser {
    /// `node SCRIPT ARGS` in `tests/dashboard`.
    pub fn start(script: &str, args: &[&str]) -> Browser {
        let js = require_browser();
        let mut child = Command::new("node")
            .current_dir(&js)
            .arg(script)
            .args(args)
            .env("CHROMIUM", CHROMIUM)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("Node.js runs the browser script");
        let stdin = child.stdin.take().unwrap();
        let out = child.stdout.take().unwrap();
        let (tx, lines) = channel();
        std::thread::spawn(move || {
            for l in BufReader::new(out).lines().map_while(Result::ok) {
                let _ = tx.send(l);
            }
        });
        Browser {
            child,
            stdin,
            lines,
        }
    }

    /// Waits (90 s at most) for step `name` and returns what the script saw.
    pub fn at(&mut self, name: &str) -> Value {
        loop {
            let line = self
                .lines
                .recv_timeout(Duration::from_secs(90))
                .unwrap_or_else(|_| panic!("the browser did not reach step {name}"));
            if let Ok(v) = serde_json::from_str::<Value>(&line)
                && v["step"] == name
            {
                return v;
            }
            eprintln!("[browser] {line}");
        }
    }

    /// Lets the script go on to its next step.
    pub fn go(&mut self) {
        writeln!(self.stdin, "go").unwrap();
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
