//! One serving process per data directory and role: `mykey-node run`,
//! `mykey-node watch` and `mykey-hub serve` each hold an exclusive lock on a
//! file in their data directory while they run, so a second one started by
//! mistake stops with "already served by pid N" instead of sharing ports,
//! overwriting the first's status address or racing it for the store.
//!
//! The lock is the operating system's (`flock` through [`File::try_lock`]):
//! it goes away with the process, even after `kill -9` or a power cut, so a
//! stale lock file never blocks a restart. The file holds the holder's pid,
//! for the message only.

use std::fs::{File, OpenOptions};
use std::io::{Read as _, Seek as _, SeekFrom, Write as _};
use std::path::{Path, PathBuf};

/// A held lock; released when dropped (or when the process ends).
#[derive(Debug)]
pub struct DirLock {
    _file: File,
    path: PathBuf,
}

/// Why a lock could not be taken.
#[derive(Debug, thiserror::Error)]
pub enum LockError {
    /// Another process holds it.
    #[error(
        "{role} is already running on {dir} (pid {pid}): stop that one first, or give this one another data directory",
        dir = .dir.display(),
        pid = .pid.map_or_else(|| "unknown".to_owned(), |p| p.to_string())
    )]
    Held {
        /// What holds it (`mykey-node run`, …).
        role: String,
        /// The data directory.
        dir: PathBuf,
        /// The holder's pid, if it wrote one.
        pid: Option<u32>,
    },
    /// The lock file could not be opened or written.
    #[error("could not lock {path}: {source}", path = .path.display())]
    Io {
        /// The lock file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
}

impl DirLock {
    /// Takes the lock `<dir>/<name>.lock` for `role` (a name for messages,
    /// e.g. "mykey-node run"), without waiting.
    pub fn acquire(dir: &Path, name: &str, role: &str) -> Result<DirLock, LockError> {
        let path = dir.join(format!("{name}.lock"));
        let io = |source| LockError::Io {
            path: path.clone(),
            source,
        };
        let mut opts = OpenOptions::new();
        opts.read(true).write(true).create(true).truncate(false);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut opts, 0o600);
        let mut file = opts.open(&path).map_err(io)?;
        match file.try_lock() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => {
                let mut text = String::new();
                let _ = file.read_to_string(&mut text);
                return Err(LockError::Held {
                    role: role.to_owned(),
                    dir: dir.to_owned(),
                    pid: text.trim().parse().ok(),
                });
            }
            Err(std::fs::TryLockError::Error(e)) => return Err(io(e)),
        }
        file.set_len(0).map_err(io)?;
        file.seek(SeekFrom::Start(0)).map_err(io)?;
        writeln!(file, "{}", std::process::id()).map_err(io)?;
        Ok(DirLock { _file: file, path })
    }

    /// The lock file.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_holder_is_told_the_first_ones_pid_and_the_lock_frees_on_drop() {
        let dir = tempfile::tempdir().unwrap();
        let first = DirLock::acquire(dir.path(), "run", "mykey-node run").unwrap();
        let err = DirLock::acquire(dir.path(), "run", "mykey-node run").unwrap_err();
        match &err {
            LockError::Held { pid, .. } => assert_eq!(*pid, Some(std::process::id())),
            other => panic!("{other}"),
        }
        assert!(err.to_string().contains("already running"), "{err}");
        // Another role on the same directory is no conflict.
        let _watch = DirLock::acquire(dir.path(), "watch", "mykey-node watch").unwrap();
        drop(first);
        // Free again. A process another test thread is starting can hold a
        // copy of the descriptor (and so the lock) between its fork and its
        // exec, which closes it: wait for that, briefly, rather than fail.
        let until = std::time::Instant::now() + std::time::Duration::from_secs(10);
        loop {
            match DirLock::acquire(dir.path(), "run", "mykey-node run") {
                Ok(_) => break,
                Err(LockError::Held { .. }) if std::time::Instant::now() < until => {
                    std::thread::sleep(std::time::Duration::from_millis(10));
                }
                Err(e) => panic!("the lock did not free after its holder was dropped: {e}"),
            }
        }
    }
}
