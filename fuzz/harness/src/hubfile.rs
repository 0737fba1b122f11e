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

/// A hub holding what `build` made, with the key [`KEY_HEX`]; `build`
/// runs once per thread (the same `build` must be passed every time).
pub fn hub(build: fn(&mut Hub)) -> Hub {
    TEMPLATE.with(|t| {
        let mut t = t.borrow_mut();
        let t = t.get_or_insert_with(|| {
            let base = if std::path::Path::new("/dev/shm").is_dir() {
                PathBuf::from("/dev/shm")
            } else {
                std::env::temp_dir()
            };
            static N: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
            let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let dir = base.join(format!("mykey-fuzz-{}-{n}", std::process::id()));
            let _ = std::fs::remove_dir_all(&dir);
            std::fs::create_dir_all(&dir).expect("scratch directory");
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
