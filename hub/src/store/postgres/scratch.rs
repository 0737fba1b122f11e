//! Throwaway databases for tests: each test of the hub on PostgreSQL gets a
//! database of its own on the server `MYKEY_PG_URL` names, dropped after.

use super::{ConnectError, DatabaseUrl};
use postgres::NoTls;

/// A database made for one test, dropped (with its connections) on drop.
pub struct ScratchDatabase {
    server: DatabaseUrl,
    name: String,
    url: DatabaseUrl,
}

impl ScratchDatabase {
    /// Creates an empty database with a fresh name on `server`'s server.
    pub fn create(server: &DatabaseUrl) -> Result<ScratchDatabase, ConnectError> {
        let mut bytes = [0u8; 8];
        getrandom::fill(&mut bytes).map_err(|e| {
            ConnectError::Store(crate::store::StoreError::Backend {
                source: Box::new(std::io::Error::other(e.to_string())),
            })
        })?;
        let name = format!("mykey_test_{}", hex::encode(bytes));
        let mut client = connect(server)?;
        client
            .batch_execute(&format!("CREATE DATABASE {name}"))
            .map_err(crate::store::StoreError::from)?;
        let url = with_database(server, &name);
        Ok(ScratchDatabase {
            server: server.clone(),
            name,
            url,
        })
    }

    /// Where the database is.
    pub fn url(&self) -> &DatabaseUrl {
        &self.url
    }
}

impl Drop for ScratchDatabase {
    fn drop(&mut self) {
        if let Ok(mut c) = connect(&self.server) {
            let _ = c.batch_execute(&format!(
                "DROP DATABASE IF EXISTS {} WITH (FORCE)",
                self.name
            ));
        }
    }
}

fn connect(url: &DatabaseUrl) -> Result<postgres::Client, ConnectError> {
    url.config()
        .connect(NoTls)
        .map_err(|source| ConnectError::Unreachable {
            url: url.to_string(),
            source,
        })
}

/// `url` with its database replaced by `name`.
fn with_database(url: &DatabaseUrl, name: &str) -> DatabaseUrl {
    let raw = url.expose();
    let after_scheme = raw.find("://").map_or(0, |i| i + 3);
    let path = raw[after_scheme..]
        .find('/')
        .map_or(raw.len(), |i| after_scheme + i);
    let query = raw[path..].find('?').map_or("", |i| &raw[path + i..]);
    let made = format!("{}/{name}{query}", &raw[..path]);
    DatabaseUrl::parse(&made).unwrap_or_else(|_| url.clone())
}
