//! `mykey-hub doctor`: the hub's house in one command. Each check is a
//! line, `ok`, `warn` or `fail`, with what was found and what to do
//! ([`mykey_net::doctor`]): the data directory and key modes, the store
//! (opens, schema current), the listen addresses (free, or held by this
//! hub's own `serve`), the settlement agent's payee, disk space.

use std::path::Path;

use mykey_net::doctor::{Check, Level, disk, mode};

use crate::net::config::HubNetConfig;
use crate::store::economy::Party;
use crate::{Hub, HubPaths};

/// Runs every check on the hub at `data`. `serving` names this hub's own
/// `mykey-hub serve` (`mykey-hub serve (pid N)`) when one holds the data
/// directory's lock: the addresses it listens on are then its own.
pub fn run(data: &Path, dashboard: &str, serving: Option<&str>) -> Vec<Check> {
    let mut checks = vec![];
    let paths = HubPaths::of(data);
    let home = paths.dir.clone().unwrap_or_else(|| {
        paths
            .db
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."))
            .to_owned()
    });
    if !paths.key.exists() && !paths.db.exists() {
        checks.push(Check::fail(
            "data directory",
            format!("no hub at {}", data.display()),
            format!(
                "create one with `mykey-hub init --data {}`, or give --data the right path",
                data.display()
            ),
        ));
        return checks;
    }
    if let Some(dir) = &paths.dir {
        checks.push(mode("data directory", dir, 0o700, Level::Warn));
    }
    let key = mode("key", &paths.key, 0o600, Level::Fail);
    let key_ok = key.level != Level::Fail;
    checks.push(key);
    if key_ok {
        checks.extend(store_and_payees(data));
    }
    checks.push(listen(data, dashboard, serving));
    checks.push(disk(&home));
    checks
}

fn store_and_payees(data: &Path) -> Vec<Check> {
    let mut hub = match Hub::open(data) {
        Ok(h) => h,
        Err(e) => return vec![Check::fail("store", e.to_string(), "")],
    };
    let mut checks = vec![Check::ok(
        "store",
        format!(
            "{} opens and its schema is current (hub {})",
            match Hub::database_of(&HubPaths::of(data)) {
                // Shown without its password.
                Ok(Some(url)) => url.to_string(),
                _ => HubPaths::of(data).db.display().to_string(),
            },
            hub.hub_id().short()
        ),
    )];
    let agent = hub
        .store
        .begin_read()
        .and_then(|mut st| st.payee(&Party::Agent));
    checks.push(match agent {
        Ok(Some(_)) => Check::ok("payees", "the settlement agent's account is registered"),
        Ok(None) => Check::warn(
            "payees",
            "no settlement agent account: settlement can close periods but writes no transfer file",
            "register it with `mykey-hub economy payee set --agent --bank … --branch … --number … --holder … --code …` before the first settlement",
        ),
        Err(e) => Check::fail("payees", e.to_string(), ""),
    });
    checks
}

/// The libp2p and dashboard addresses `serve` would take: free, or held
/// by this hub's own serve.
fn listen(data: &Path, dashboard: &str, serving: Option<&str>) -> Check {
    let config = match std::fs::read_to_string(HubNetConfig::path(data)) {
        Ok(text) => match toml::from_str::<HubNetConfig>(&text) {
            Ok(c) => c,
            Err(e) => {
                return Check::fail(
                    "listen",
                    format!("{}: {e}", HubNetConfig::path(data).display()),
                    "fix that line",
                );
            }
        },
        Err(_) => HubNetConfig::default(),
    };
    let shown = config
        .listen
        .iter()
        .cloned()
        .chain(std::iter::once(format!("http {dashboard}")))
        .collect::<Vec<_>>()
        .join(", ");
    if let Some(serve) = serving {
        return Check::ok("listen", format!("{shown}: held by this hub's own {serve}"));
    }
    for text in &config.listen {
        let Some(addr) = tcp_socket(text) else {
            continue;
        };
        if addr.port() != 0 && in_use(addr) {
            return Check::fail(
                "listen",
                format!("{text} is in use by another program"),
                "stop it, or choose another address with --listen or `listen` in hub.toml",
            );
        }
    }
    if let Ok(addr) = dashboard.parse::<std::net::SocketAddr>()
        && addr.port() != 0
        && in_use(addr)
    {
        return Check::fail(
            "listen",
            format!("the dashboard address {dashboard} is in use by another program"),
            "stop it, or serve with --http ADDR",
        );
    }
    Check::ok("listen", format!("{shown}: free"))
}

fn in_use(addr: std::net::SocketAddr) -> bool {
    matches!(std::net::TcpListener::bind(addr), Err(e) if e.kind() == std::io::ErrorKind::AddrInUse)
}

fn tcp_socket(text: &str) -> Option<std::net::SocketAddr> {
    mykey_net::swarm::tcp_socket(&text.parse().ok()?)
}
