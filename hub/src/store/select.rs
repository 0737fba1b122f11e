//! Which backend a data directory uses: `store.toml` (mode 0600, since the
//! URL may carry a password) names a PostgreSQL database; without it the
//! hub is on SQLite (`hub.db`), the default.

use super::postgres::DatabaseUrl;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

#[derive(serde::Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
struct StoreConfig {
    database: String,
}

/// Writes `store.toml` naming `url` (created new, mode 0600).
pub fn write(path: &Path, url: &DatabaseUrl) -> std::io::Result<()> {
    let text = toml::to_string(&StoreConfig {
        database: url.expose().to_owned(),
    })
    .map_err(std::io::Error::other)?;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)?;
    f.write_all(text.as_bytes())?;
    f.sync_all()
}

/// Reads the database `store.toml` names; the error says what is wrong
/// (never with the password).
pub fn read(path: &Path) -> Result<DatabaseUrl, String> {
    let text = std::fs::read_to_string(path).map_err(|e| e.to_string())?;
    let config: StoreConfig =
        toml::from_str(&text).map_err(|e| format!("not a store config ({})", e.message()))?;
    DatabaseUrl::parse(&config.database).map_err(|e| e.to_string())
}
