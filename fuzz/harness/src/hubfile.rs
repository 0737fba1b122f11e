//! Fresh hubs fast: a target's fixed world is built once per thread into a
//! hub file (the schema alone takes most of a millisecond-scale run), and
//! each input gets a copy of that file, opened with `Hub::open`, so every
//! input still starts from the same state. Files live in `/dev/shm` when
//! there is one.

use mykey_hub::{Hub, HubKey};
use std::cell::RefCell;
use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;

/// The hub's secret key in every fixture (hex of 32 bytes of 0x48).
const KEY_HEX: &str = "4848484848484848484848484848484848484848484848484848484848484848";

struct Template {
    dir: PathBuf,
    db: Vec<u8>,
}

thread_local! {
    static TEMPLATE: RefCell<Option<Template>> = const { RefCell::new(None) };
}

fn write_key(path: &std::path::Path) {
    std::fs::write(path, KEY_HEX).expect("key file");
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).expect("key mode");
}

/// A new empty directory `PREFIX-PID-N` for one thread's files, in
/// `/dev/shm` when there is one. libFuzzer ends the process with `exit`,
/// which runs no thread-local destructor, so a run's directory outlives it:
/// each new one first removes those whose process is gone.
pub(crate) fn scratch_dir(prefix: &str) -> PathBuf {
    let base = if std::path::Path::new("/dev/shm").is_dir() {
        PathBuf::from("/dev/shm")
    } else {
        std::env::temp_dir()
    };
    remove_orphans(&base, prefix);
    static N: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let dir = base.join(format!("{prefix}-{}-{n}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("scratch directory");
    dir
}

/// Removes `base/PREFIX-PID-N` directories whose process no longer runs.
fn remove_orphans(base: &std::path::Path, prefix: &str) {
    let Ok(entries) = std::fs::read_dir(base) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(rest) = name.to_str().and_then(|n| n.strip_prefix(prefix)) else {
            continue;
        };
        let Some((pid, n)) = rest.strip_prefix('-').and_then(|r| r.split_once('-')) else {
            continue;
        };
        let (Ok(pid), Ok(_)) = (pid.parse::<u32>(), n.parse::<u64>()) else {
            continue;
        };
        if !std::path::Path::new(&format!("/proc/{pid}")).exists() {
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
}

/// A hub holding what `build` made, with the key [`KEY_HEX`]; `build`
/// runs once per thread (the same `build` must be passed every time).
pub fn hub(build: fn(&mut Hub)) -> Hub {
    TEMPLATE.with(|t| {
        let mut t = t.borrow_mut();
        let t = t.get_or_insert_with(|| {
            let dir = scratch_dir("mykey-fuzz");
            let path = dir.join("template.sqlite");
            drop(Hub::init(&path).expect("template hub"));
            write_key(&dir.join("template.key"));
            let mut hub = Hub::open(&path).expect("template hub opens");
            assert_eq!(hub.hub_id(), HubKey::from_secret_bytes(&[0x48; 32]).id());
            build(&mut hub);
            // Closing checkpoints the WAL into the file.
            drop(hub);
            let db = std::fs::read(&path).expect("template bytes");
            Template { dir, db }
        });
        let path = t.dir.join("run.sqlite");
        for ext in ["sqlite-wal", "sqlite-shm"] {
            let _ = std::fs::remove_file(path.with_extension(ext));
        }
        std::fs::write(&path, &t.db).expect("hub file");
        write_key(&path.with_extension("key"));
        Hub::open(&path).expect("a copy of the template opens")
    })
}

#[cfg(test)]
mod tests {
    use super::scratch_dir;

    #[test]
    fn a_dead_process_s_scratch_directory_is_removed_and_a_live_one_kept() {
        let base = std::env::temp_dir();
        let prefix = format!("mykey-fuzz-orphan-test{}", std::process::id());
        // No process has a pid this large (the kernel's limit is 2^22).
        let dead = base.join(format!("{prefix}-4294967290-0"));
        let live = base.join(format!("{prefix}-1-0"));
        let other = base.join(format!("{prefix}-x-0"));
        for d in [&dead, &live, &other] {
            std::fs::create_dir_all(d).unwrap();
        }
        super::remove_orphans(&base, &prefix);
        assert!(!dead.exists(), "the dead process's directory stays");
        assert!(live.exists(), "pid 1's directory was removed");
        assert!(
            other.exists(),
            "a name that is not PREFIX-PID-N was removed"
        );
        for d in [&live, &other] {
            std::fs::remove_dir_all(d).unwrap();
        }
        let mine = scratch_dir(&prefix);
        assert!(mine.is_dir());
        std::fs::remove_dir_all(mine).unwrap();
    }
}
