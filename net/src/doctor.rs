//! The shape both `mykey-node doctor` and `mykey-hub doctor` print: one
//! line per check, `ok`, `warn` or `fail`, what was found and what to do,
//! and the checks both make (file modes, disk space).

use std::os::unix::fs::PermissionsExt as _;
use std::path::Path;

/// How a check came out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Level {
    /// Nothing to do.
    Ok,
    /// Works now, but needs attention.
    Warn,
    /// Does not work: the command exits non-zero.
    Fail,
}

impl Level {
    /// `ok`, `warn` or `fail`.
    pub fn name(self) -> &'static str {
        match self {
            Level::Ok => "ok",
            Level::Warn => "warn",
            Level::Fail => "fail",
        }
    }
}

/// One line of a doctor's report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Check {
    /// What was checked (`hub`, `disk`, …).
    pub name: &'static str,
    /// How it came out.
    pub level: Level,
    /// What was found.
    pub found: String,
    /// What to do (empty when nothing).
    pub todo: String,
}

impl Check {
    /// A check that passed.
    pub fn ok(name: &'static str, found: impl Into<String>) -> Check {
        Check {
            name,
            level: Level::Ok,
            found: found.into(),
            todo: String::new(),
        }
    }
    /// A check that needs attention.
    pub fn warn(name: &'static str, found: impl Into<String>, todo: impl Into<String>) -> Check {
        Check {
            name,
            level: Level::Warn,
            found: found.into(),
            todo: todo.into(),
        }
    }
    /// A check that failed.
    pub fn fail(name: &'static str, found: impl Into<String>, todo: impl Into<String>) -> Check {
        Check {
            name,
            level: Level::Fail,
            found: found.into(),
            todo: todo.into(),
        }
    }
}

/// The report as text, one line per check: `ok   disk: …`, with `: do …`.
pub fn text(checks: &[Check]) -> String {
    let mut out = String::new();
    for c in checks {
        out.push_str(&format!("{:<4} {}: {}", c.level.name(), c.name, c.found));
        if !c.todo.is_empty() {
            out.push_str(&format!("; {}", c.todo));
        }
        out.push('\n');
    }
    out
}

/// The report as JSON: `{"ok": bool, "checks": [{name, level, found, todo}]}`.
pub fn json(checks: &[Check]) -> serde_json::Value {
    serde_json::json!({
        "ok": !any_failed(checks),
        "checks": checks.iter().map(|c| serde_json::json!({
            "name": c.name,
            "level": c.level.name(),
            "found": c.found,
            "todo": c.todo,
        })).collect::<Vec<_>>(),
    })
}

/// Whether any check failed (the command then exits non-zero).
pub fn any_failed(checks: &[Check]) -> bool {
    checks.iter().any(|c| c.level == Level::Fail)
}

/// Free space below which the data directory is a warning, and a failure.
const DISK_WARN_BYTES: u64 = 1 << 30;
const DISK_FAIL_BYTES: u64 = 100 << 20;

/// Free space where `dir` lives (from `df -Pk`, which every Linux has).
pub fn disk(dir: &Path) -> Check {
    let out = std::process::Command::new("df")
        .arg("-Pk")
        .arg(dir)
        .output();
    let free_kib = out.ok().filter(|o| o.status.success()).and_then(|o| {
        let text = String::from_utf8_lossy(&o.stdout).into_owned();
        text.lines()
            .nth(1)?
            .split_whitespace()
            .nth(3)?
            .parse::<u64>()
            .ok()
    });
    let Some(kib) = free_kib else {
        return Check::warn(
            "disk",
            format!("could not measure the free space of {}", dir.display()),
            "check it with `df -h`",
        );
    };
    let bytes = kib.saturating_mul(1024);
    let found = format!("{} MiB free on {}", bytes >> 20, dir.display());
    let todo = "free space there: SQLite cannot commit on a full disk";
    match bytes {
        b if b < DISK_FAIL_BYTES => Check::fail("disk", found, todo),
        b if b < DISK_WARN_BYTES => Check::warn("disk", found, todo),
        _ => Check::ok("disk", found),
    }
}

/// Whether `path` allows no more than `max` (e.g. 0o700 for the data
/// directory, 0o600 for a key); more is `level`.
pub fn mode(name: &'static str, path: &Path, max: u32, level: Level) -> Check {
    let mode = match std::fs::metadata(path) {
        Ok(m) => m.permissions().mode() & 0o777,
        Err(e) => {
            return Check::fail(
                name,
                format!("{}: {e}", path.display()),
                "restore it from a backup (never re-create it: it holds this installation's identity or data)",
            );
        }
    };
    let found = format!("{} is mode {mode:04o}", path.display());
    if mode & !max == 0 {
        return Check::ok(name, found);
    }
    let todo = format!(
        "others can read it: chmod {max:o} {} (run by the account that serves it)",
        path.display()
    );
    match level {
        Level::Fail => Check::fail(name, found, todo),
        _ => Check::warn(name, found, todo),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn modes_beyond_the_limit_are_reported_with_the_chmod_that_fixes_them() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("key");
        std::fs::write(&f, b"k").unwrap();
        std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o644)).unwrap();
        let c = mode("key", &f, 0o600, Level::Fail);
        assert_eq!(c.level, Level::Fail);
        assert!(c.todo.contains("chmod 600"), "{c:?}");
        std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o600)).unwrap();
        assert_eq!(mode("key", &f, 0o600, Level::Fail).level, Level::Ok);
        assert_eq!(
            mode("key", &dir.path().join("gone"), 0o600, Level::Fail).level,
            Level::Fail
        );
        assert_ne!(disk(dir.path()).found, "");
        let t = text(&[Check::warn("disk", "1 MiB free", "free space")]);
        assert_eq!(t, "warn disk: 1 MiB free; free space\n");
    }
}
