//! Architecture invariants checked from `cargo metadata` and the sources:
//! - `sync-proto` depends on no I/O runtime, network stack, database or OS
//!   randomness, and reads no clock;
//! - `node` and `hub` never depend on each other;
//! - `mykey-net` (the libp2p code both share) depends on neither of them;
//! - `mykey-sip2` (the SIP2 codec) is as pure as `sync-proto`: no I/O, no
//!   clock, no randomness, and no dependency on the node;
//! - `mykey-civil` (calendar arithmetic) depends on nothing, so the pure
//!   crates may share it.
//! - `mykey-voucher` (printed QR vouchers) is as pure as `sync-proto` and of
//!   the workspace depends on `sync-proto` and `civil` only, so any node
//!   verifies a voucher offline with the same code the hub signed it with;
//! - in the hub, drivers never import drivers, and storage imports row types,
//!   never logic;
//! - the hub's HTTP route modules (API, login, pages, metrics, the economy's
//!   and the quarantine's routes) never import each other or the top that
//!   composes them, only the layers below (state, sessions, scope, page frame);
//! - `hub/src` keeps no mutable process-wide statics (locks, atomics, cells
//!   in a `static`): state is a value passed to whoever needs it.

use std::collections::{BTreeSet, HashMap};
use std::path::Path;
use std::process::Command;

fn metadata() -> serde_json::Value {
    let out = Command::new(env!("CARGO"))
        .args(["metadata", "--format-version", "1", "--locked"])
        .current_dir(Path::new(env!("CARGO_MANIFEST_DIR")).join(".."))
        .output()
        .expect("cargo metadata runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("metadata is JSON")
}

/// Names of every package in the normal (non-dev, non-build) dependency
/// closure of `root`, for the host platform's resolve.
fn closure(meta: &serde_json::Value, root: &str) -> BTreeSet<String> {
    let nodes = meta["resolve"]["nodes"].as_array().expect("resolve nodes");
    let by_id: HashMap<&str, &serde_json::Value> = nodes
        .iter()
        .map(|n| (n["id"].as_str().expect("id"), n))
        .collect();
    let name_of = |id: &str| -> String {
        meta["packages"]
            .as_array()
            .expect("packages")
            .iter()
            .find(|p| p["id"] == id)
            .map(|p| p["name"].as_str().expect("name").to_owned())
            .expect("package for id")
    };
    let root_id = meta["packages"]
        .as_array()
        .expect("packages")
        .iter()
        .find(|p| p["name"] == root)
        .map(|p| p["id"].as_str().expect("id").to_owned())
        .expect("root package");
    let mut seen = BTreeSet::new();
    let mut stack = vec![root_id];
    let mut names = BTreeSet::new();
    while let Some(id) = stack.pop() {
        if !seen.insert(id.clone()) {
            continue;
        }
        names.insert(name_of(&id));
        for dep in by_id[id.as_str()]["deps"].as_array().expect("deps") {
            let normal = dep["dep_kinds"]
                .as_array()
                .expect("dep kinds")
                .iter()
                .any(|k| k["kind"].is_null());
            if normal {
                stack.push(dep["pkg"].as_str().expect("pkg").to_owned());
            }
        }
    }
    names
}

/// What no pure crate may depend on.
const IMPURE: &[&str] = &[
    "tokio",
    "libp2p",
    "rusqlite",
    "getrandom",
    "rand",
    "mio",
    "socket2",
    "axum",
    "pcsc",
    "rustls",
    "mykey-net",
    "mykey-node",
    "mykey-hub",
];

/// What no pure crate's sources may call.
const IMPURE_CALLS: &[&str] = &[
    "SystemTime::now",
    "Instant::now",
    "thread_rng",
    "OsRng",
    "std::net",
    "std::fs",
];

/// Checks a crate's dependency closure and its sources against the purity rules.
fn assert_pure(package: &str, dir: &str) {
    let meta = metadata();
    let deps = closure(&meta, package);
    for banned in IMPURE {
        assert!(
            !deps.contains(*banned),
            "{package} must not depend on {banned}: {deps:?}"
        );
    }
    for (p, text) in rust_sources(dir) {
        for banned in IMPURE_CALLS {
            assert!(!text.contains(banned), "{} uses {banned}", p.display());
        }
    }
}

/// Every `.rs` file below `dir` (relative to the workspace root) with its text.
fn rust_sources(dir: &str) -> Vec<(std::path::PathBuf, String)> {
    let mut files = vec![Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join(dir)];
    let mut out = Vec::new();
    while let Some(p) = files.pop() {
        if p.is_dir() {
            files.extend(
                std::fs::read_dir(&p)
                    .expect("dir")
                    .map(|e| e.expect("entry").path()),
            );
        } else if p.extension().is_some_and(|e| e == "rs") {
            let text = std::fs::read_to_string(&p).expect("source");
            out.push((p, text));
        }
    }
    out
}

#[test]
fn sip2_codec_is_pure() {
    assert_pure("mykey-sip2", "sip2/src");
    let meta = metadata();
    let deps = closure(&meta, "mykey-sip2");
    assert!(
        !deps.contains("mykey-sync-proto"),
        "the SIP2 codec knows nothing of MyKey: {deps:?}"
    );
}

#[test]
fn voucher_codec_is_pure() {
    assert_pure("mykey-voucher", "voucher/src");
    let meta = metadata();
    let ours: BTreeSet<String> = closure(&meta, "mykey-voucher")
        .into_iter()
        .filter(|d| d.starts_with("mykey-"))
        .collect();
    let want: BTreeSet<String> = ["mykey-voucher", "mykey-sync-proto", "mykey-civil"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    assert_eq!(ours, want, "mykey-voucher's workspace dependencies");
}

#[test]
fn sync_proto_is_pure() {
    assert_pure("mykey-sync-proto", "sync-proto/src");
}

#[test]
fn node_and_hub_are_independent() {
    let meta = metadata();
    assert!(!closure(&meta, "mykey-node").contains("mykey-hub"));
    assert!(!closure(&meta, "mykey-hub").contains("mykey-node"));
}

#[test]
fn shared_net_code_depends_on_neither_side() {
    let meta = metadata();
    let deps = closure(&meta, "mykey-net");
    assert!(deps.contains("mykey-sync-proto"), "{deps:?}");
    for side in ["mykey-node", "mykey-hub"] {
        assert!(
            !deps.contains(side),
            "mykey-net must not depend on {side}: {deps:?}"
        );
    }
}

#[test]
fn jpki_is_pure_and_shared() {
    // The certificate and card-proof code the node and the hub share: no
    // I/O and neither side (rsa pulls rand for key generation, which the
    // crate never calls; its sources read no clock and draw no randomness).
    let meta = metadata();
    let deps = closure(&meta, "mykey-jpki");
    for banned in [
        "tokio",
        "libp2p",
        "rusqlite",
        "axum",
        "pcsc",
        "mykey-net",
        "mykey-node",
        "mykey-hub",
    ] {
        assert!(
            !deps.contains(banned),
            "mykey-jpki must not depend on {banned}: {deps:?}"
        );
    }
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("../jpki/src");
    for entry in std::fs::read_dir(&src).expect("jpki/src") {
        let p = entry.expect("entry").path();
        let text = std::fs::read_to_string(&p).expect("source");
        for banned in [
            "SystemTime::now",
            "Instant::now",
            "thread_rng",
            "OsRng",
            "std::net",
            "std::fs",
        ] {
            assert!(!text.contains(banned), "{} uses {banned}", p.display());
        }
    }
    for side in ["mykey-node", "mykey-hub"] {
        assert!(
            closure(&meta, side).contains("mykey-jpki") || side == "mykey-hub",
            "{side} reads cards through mykey-jpki"
        );
    }
}

/// The virtual card knows nothing of nodes or hubs: it answers APDU bytes.
#[test]
fn testcard_depends_on_no_workspace_crate() {
    let meta = metadata();
    let deps = closure(&meta, "mykey-testcard");
    assert!(deps.contains("rsa"), "{deps:?}");
    let ours: Vec<&String> = deps
        .iter()
        .filter(|d| {
            d.starts_with("mykey-") && !["mykey-testcard", "mykey-civil"].contains(&d.as_str())
        })
        .collect();
    assert!(
        ours.is_empty(),
        "mykey-testcard must not depend on workspace crates but the calendar: {ours:?}"
    );
}

/// The calendar arithmetic every crate shares, the pure ones included: no
/// dependency at all, no clock.
#[test]
fn civil_dates_depend_on_nothing() {
    assert_pure("mykey-civil", "civil/src");
    let meta = metadata();
    let deps = closure(&meta, "mykey-civil");
    assert_eq!(deps.len(), 1, "mykey-civil depends on nothing: {deps:?}");
}

/// The node's store keeps its SQL: no other node module (`node.rs` first of
/// all) runs a statement or names rusqlite, and a store `Writer` is not a
/// connection in disguise (no `Deref` to `Connection`), so every query is a
/// named store method.
#[test]
fn node_sql_stays_in_the_store() {
    let (mut read, mut store_text) = (0, String::new());
    for (p, text) in rust_sources("node/src") {
        let in_store = p.components().any(|c| c.as_os_str() == "store")
            || p.file_name().is_some_and(|n| n == "store.rs");
        if in_store {
            store_text.push_str(&text);
            continue;
        }
        read += 1;
        for sql in [
            ".execute(",
            ".execute_batch(",
            ".prepare(",
            ".prepare_cached(",
            ".query_row(",
            ".query_map(",
            "rusqlite",
        ] {
            assert!(
                !text.contains(sql),
                "{} runs SQL ({sql}): give node/src/store a named method instead",
                p.display()
            );
        }
    }
    assert!(read > 10, "node/src read: {read} files");
    assert!(
        store_text.contains("pub struct Writer"),
        "the store is where it was"
    );
    for deref in [
        "Deref for Writer",
        "Target = Connection",
        "Target = rusqlite::Connection",
    ] {
        assert!(
            !store_text.contains(deref),
            "node/src/store: a Writer hands out its connection ({deref})"
        );
    }
}

/// The hub's modules (as `a::b` paths under `crate::`) a source file names
/// outside its unit tests and comments: `crate::a::b…`, `crate::{a, b::c}`,
/// and, in a file under `economy/` or `http/`, `super::x`.
fn hub_paths_named(rel: &str) -> BTreeSet<String> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../hub/src")
        .join(rel);
    let text = std::fs::read_to_string(&path).expect("hub source");
    hub_paths_in(rel, &text)
}

/// The module that `super::` names in the hub's file `rel`, as a prefix:
/// `http/api.rs` and `http/pages/mod.rs` → `http::`.
fn super_of(rel: &str) -> String {
    let rel = rel.trim_end_matches(".rs");
    let mut parts: Vec<&str> = rel.split('/').collect();
    if parts.last() == Some(&"mod") {
        parts.pop();
    }
    parts.pop();
    parts.iter().map(|p| format!("{p}::")).collect()
}

/// [`hub_paths_named`] of `text` as the hub's file `rel`.
fn hub_paths_in(rel: &str, text: &str) -> BTreeSet<String> {
    let code: String = text
        .split("#[cfg(test)]\nmod tests")
        .next()
        .unwrap_or_default()
        .lines()
        .filter(|l| !l.trim_start().starts_with("//"))
        .collect::<Vec<_>>()
        .join("\n");
    let ident = |s: &str| -> String {
        s.split(|c: char| !(c.is_alphanumeric() || c == '_' || c == ':'))
            .next()
            .unwrap_or_default()
            .trim_end_matches(':')
            .to_owned()
    };
    let mut out = BTreeSet::new();
    let mut take = |prefix: &str, base: &str| {
        for (i, _) in code.match_indices(prefix) {
            let rest = &code[i + prefix.len()..];
            if let Some(group) = rest.strip_prefix('{') {
                let inner = group.split('}').next().unwrap_or_default();
                for item in inner.split(',') {
                    let p = ident(item.trim());
                    if !p.is_empty() {
                        out.insert(format!("{base}{p}"));
                    }
                }
            } else {
                let p = ident(rest);
                if !p.is_empty() {
                    out.insert(format!("{base}{p}"));
                }
            }
        }
    };
    take("crate::", "");
    if rel.starts_with("economy/") {
        take("super::", "economy::");
    }
    if rel.starts_with("http/") {
        take("super::", &super_of(rel));
    }
    out
}

/// The hub's drivers: each loads what it needs, decides and commits through
/// the layers below (ledger, fact log, wallet-credit path, rules, storage).
const HUB_DRIVERS: &[(&str, &str)] = &[
    ("admin.rs", "admin"),
    ("ingest.rs", "ingest"),
    ("escrow.rs", "escrow"),
    ("economy/exchange.rs", "economy::exchange"),
    ("economy/settlement.rs", "economy::settlement"),
    ("shards.rs", "shards"),
    ("lan.rs", "lan"),
    ("quarantine/mod.rs", "quarantine"),
    ("economy/liability.rs", "economy::liability"),
    ("holder.rs", "holder"),
];

/// Whether `path` names module `module` or something inside it.
fn names_module(path: &str, module: &str) -> bool {
    path == module || path.starts_with(&format!("{module}::"))
}

#[test]
fn hub_drivers_do_not_import_drivers() {
    for (file, me) in HUB_DRIVERS {
        for path in hub_paths_named(file) {
            for (_, other) in HUB_DRIVERS {
                // `quarantine::summary` is the read model below the driver.
                let below = path.starts_with("quarantine::summary");
                assert!(
                    other == me || below || !names_module(&path, other),
                    "hub/src/{file} imports the driver {other} (`crate::{path}`): \
                     move what both need into a layer below (ledger, facts, wallet, types)"
                );
            }
        }
    }
}

/// The hub's HTTP route modules (file, module): each serves its routes
/// from the layers below it; only the top (`http/mod.rs`'s `routes` and
/// `app`, `http/openapi.rs`) composes them.
const HTTP_ROUTE_MODULES: &[(&str, &str)] = &[
    ("http/api.rs", "http::api"),
    ("http/auth.rs", "http::auth"),
    ("http/metrics.rs", "http::metrics"),
    ("http/pages/mod.rs", "http::pages"),
    ("economy/http.rs", "economy::http"),
    ("quarantine/http.rs", "quarantine::http"),
];

/// What a route module may name under `crate::http`: the state, the
/// sessions, what a request may see, the node table's query, the page frame
/// and formats, the server's limits, the throttles and the languages. A
/// name taken through `http/mod.rs` (`super::AppState`) is an import of the
/// top, so it is refused too.
const HTTP_BELOW_ROUTES: &[&str] = &[
    "http::state",
    "http::session",
    "http::scope",
    "http::query",
    "http::pages::layout",
    "http::pages::format",
    "http::server",
    "http::throttle",
    "http::i18n",
];

/// Why `text`, as the route module `file` (`me`), imports another route
/// module or the top, if it does.
fn http_route_imports(file: &str, me: &str, text: &str) -> Vec<String> {
    let mut wrong = Vec::new();
    for path in hub_paths_in(file, text) {
        let other_route = HTTP_ROUTE_MODULES
            .iter()
            .any(|(_, m)| *m != me && names_module(&path, m));
        let into_http = names_module(&path, "http") && !names_module(&path, me);
        let below = HTTP_BELOW_ROUTES.iter().any(|b| names_module(&path, b));
        if !below && (other_route || into_http) {
            wrong.push(path);
        }
    }
    wrong
}

#[test]
fn hub_http_route_modules_do_not_import_each_other() {
    // The rule sees the imports that once made a circle of seven files.
    for (file, me, line) in [
        (
            "http/api.rs",
            "http::api",
            "use super::pages::{OverviewQuery, select};",
        ),
        (
            "http/pages/mod.rs",
            "http::pages",
            "use super::api::restrict_fleet;",
        ),
        (
            "http/auth.rs",
            "http::auth",
            "use super::{AppState, pages};",
        ),
        (
            "economy/http.rs",
            "economy::http",
            "use crate::http::api::not_yours;",
        ),
        (
            "quarantine/http.rs",
            "quarantine::http",
            "use crate::http::{AppState, now};",
        ),
        (
            "http/api.rs",
            "http::api",
            "let d = crate::quarantine::http::openapi(ok);",
        ),
    ] {
        assert!(
            !http_route_imports(file, me, line).is_empty(),
            "{file}: {line} is not caught"
        );
    }
    assert!(
        http_route_imports("http/api.rs", "http::api", "use super::state::AppState;").is_empty()
    );
    for (file, me) in HTTP_ROUTE_MODULES {
        let path = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../hub/src")
            .join(file);
        let text = std::fs::read_to_string(&path).expect("hub source");
        let wrong = http_route_imports(file, me, &text);
        assert!(
            wrong.is_empty(),
            "hub/src/{file} imports {wrong:?}: an HTTP route module imports only the layers \
             below the routes ({HTTP_BELOW_ROUTES:?}); move what two route modules share \
             into one of them, and compose routes in http/mod.rs"
        );
    }
}

#[test]
fn hub_storage_imports_types_never_logic() {
    // Storage may name its own modules, the row types (`model`,
    // `economy::types`) and the operator roles and token scopes it stores
    // (`access`); nothing that decides, drives or emits facts.
    let allowed = ["store", "model", "economy::types", "access"];
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../hub/src");
    let mut files = vec![dir.join("store")];
    let mut n = 0;
    while let Some(p) = files.pop() {
        if p.is_dir() {
            files.extend(
                std::fs::read_dir(&p)
                    .expect("dir")
                    .map(|e| e.expect("entry").path()),
            );
        } else if p.extension().is_some_and(|e| e == "rs") {
            let rel = p.strip_prefix(&dir).expect("under hub/src");
            let rel = rel.to_str().expect("utf-8 path");
            for path in hub_paths_named(rel) {
                assert!(
                    allowed.iter().any(|a| names_module(&path, a)),
                    "hub/src/{rel} imports `crate::{path}`: storage knows row types only"
                );
            }
            n += 1;
        }
    }
    assert!(n >= 5, "found the hub's storage sources");
}

/// What a `static` in `hub/src` may not hold: state that outlives the value
/// it belongs to and leaks between the hubs one process opens (and between
/// tests). A process's observations are a value passed in (`Observed`).
const MUTABLE_STATIC: &[&str] = &[
    "Mutex", "RwLock", "Atomic", "Cell", "Condvar", "mpsc", "Sender",
];

/// The statics `hub/src` may keep (file under `hub/src`, name), each holding
/// no state: a struct's type does not show whether it hides an atomic, so
/// every other `static` is refused until it is listed here with its reason.
const ALLOWED_STATICS: &[(&str, &str, &str)] = &[
    (
        "http/i18n.rs",
        "JA",
        "a table of Japanese labels (&'static str fields)",
    ),
    (
        "http/i18n.rs",
        "EN",
        "a table of English labels (&'static str fields)",
    ),
    (
        "http/auth.rs",
        "DUMMY",
        "the dummy password hash, a constant computed once",
    ),
];

/// One `static` item (or `thread_local!`) of a source text.
#[derive(Debug)]
struct StaticItem {
    line: usize,
    name: String,
    ty: String,
    /// `static mut`, `thread_local!`, or a type that holds a lock, an atomic
    /// or a cell (also inside a `OnceLock` or `LazyLock`).
    mutable: bool,
}

/// Every `static` and `thread_local!` in one source text.
fn statics(text: &str) -> Vec<StaticItem> {
    let mut found = vec![];
    for (i, line) in text.lines().enumerate() {
        let code = line.split("//").next().unwrap_or_default().trim_start();
        if code.contains("thread_local!") {
            found.push(StaticItem {
                line: i + 1,
                name: "thread_local!".into(),
                ty: String::new(),
                mutable: true,
            });
            continue;
        }
        let item = code
            .strip_prefix("pub(crate) ")
            .or_else(|| code.strip_prefix("pub(super) "))
            .or_else(|| code.strip_prefix("pub "))
            .unwrap_or(code);
        let Some(rest) = item.strip_prefix("static ") else {
            continue;
        };
        // The type: from the name to `=` or `;`, over as many lines as it takes.
        let tail: String = std::iter::once(rest)
            .chain(text.lines().skip(i + 1))
            .collect::<Vec<_>>()
            .join(" ");
        let decl = tail.split(['=', ';']).next().unwrap_or_default();
        let (name, ty) = decl.split_once(':').unwrap_or((decl, ""));
        let name = name.trim().trim_start_matches("mut ").trim();
        found.push(StaticItem {
            line: i + 1,
            name: name.to_owned(),
            ty: ty.trim().to_owned(),
            mutable: rest.starts_with("mut ") || MUTABLE_STATIC.iter().any(|w| ty.contains(w)),
        });
    }
    found
}

/// The statics of `file` (a path under `hub/src`) that break the rule.
fn forbidden_statics(file: &str, text: &str) -> Vec<String> {
    statics(text)
        .into_iter()
        .filter(|s| {
            s.mutable
                || !ALLOWED_STATICS
                    .iter()
                    .any(|(f, n, _)| *f == file && *n == s.name)
        })
        .map(|s| format!("{file}:{}: static {}: {}", s.line, s.name, s.ty))
        .collect()
}

#[test]
fn the_hub_keeps_no_mutable_process_wide_statics() {
    // The rule catches what it is for (the first two stood in hub/src/status).
    for bad in [
        "static PULLS: Mutex<BTreeMap<NodeId, u64>> = Mutex::new(BTreeMap::new());",
        "static COUNTERS: Counters = Counters { accepted: ZERO, rejected: ZERO };",
        "pub(crate) static SEEN: AtomicU64 = AtomicU64::new(0);",
        "static mut N: u64 = 0;",
        "static EPOCHS: LazyLock<RwLock<Vec<u32>>> = LazyLock::new(Default::default);",
        "static BOOK: OnceLock<\n    Mutex<Vec<u8>>,\n> = OnceLock::new();",
        "thread_local! { static X: RefCell<u8> = const { RefCell::new(0) }; }",
        // A listed name in another file, or a listed name turned mutable.
        "static DUMMY: OnceLock<String> = OnceLock::new();",
    ] {
        assert!(
            !forbidden_statics("status/mod.rs", bad).is_empty(),
            "missed: {bad}"
        );
    }
    assert!(
        !forbidden_statics("http/auth.rs", "static DUMMY: Mutex<String> = todo!();").is_empty()
    );
    for (file, fine) in [
        (
            "http/i18n.rs",
            "static EN: Labels = Labels { title: \"MyKey\" };",
        ),
        (
            "http/auth.rs",
            "    static DUMMY: OnceLock<String> = OnceLock::new();",
        ),
        (
            "status/mod.rs",
            "fn counters() -> &'static Counters { todo!() }",
        ),
        ("status/mod.rs", "// static OLD: Mutex<u8> was here"),
    ] {
        assert!(forbidden_statics(file, fine).is_empty(), "flagged: {fine}");
    }
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../hub/src");
    let files = rust_sources("hub/src");
    let mut found = vec![];
    for (p, text) in &files {
        let rel = p.strip_prefix(&root).expect("under hub/src");
        found.extend(forbidden_statics(&rel.to_string_lossy(), text));
    }
    let n_files = files.len();
    assert!(n_files > 50, "read only {n_files} files of hub/src");
    assert!(
        found.is_empty(),
        "hub/src holds process-wide statics that may carry state; pass the state as a \
         value (as `observed::Observed` is passed to each Hub), or list a \
         static that holds none in ALLOWED_STATICS with why:\n{}",
        found.join("\n")
    );
}
