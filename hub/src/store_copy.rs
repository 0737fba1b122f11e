//! `mykey-hub store copy`: moving a town's hub from SQLite up to PostgreSQL.
//!
//! The copy holds the hub's serve lock (a serving hub is refused, and no
//! `serve` starts during the copy) and a SQLite write transaction (no other
//! command changes the hub underneath it), copies every table into an empty
//! database in one PostgreSQL transaction
//! ([`crate::store::postgres::copy`]), and commits only when both sides
//! agree: rows and a digest per table, the ledger audit of `ledger check`
//! balanced and conserved on each side and equal, the fact log's count and
//! last hub_seq (no gap), the ledger head.
//!
//! The data directory is left as it was (`hub.db` untouched) unless
//! `--switch` is given: then `store.toml` is written naming the database,
//! so every later command, `serve` included, uses PostgreSQL, and `hub.db`
//! stays beside it as the backup of the moment of the copy.

use crate::hub::{HubPaths, serve_lock};
use crate::key::{HubKey, KeyError};
use crate::store::postgres::copy::{self, CopyError, Progress, StoreFigures};
use crate::store::postgres::{ConnectError, DatabaseUrl, PgStore, UrlError};
use crate::store::{SqliteStore, StoreError};
use mykey_net::dirlock::LockError;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Instant;

/// `mykey-hub store …`.
#[derive(clap::Subcommand, Debug)]
pub enum StoreCmd {
    /// Copy a hub on SQLite into an empty PostgreSQL database, checking
    /// ledger conservation, the fact log and every table on both sides
    /// (refused while the hub serves; a failure leaves the database as it
    /// was). The data directory is unchanged unless --switch.
    Copy {
        /// The hub's data directory (its hub.db is read, never changed).
        #[arg(long, value_name = "DIR")]
        from: PathBuf,
        /// The empty database: postgres://USER[:PASSWORD]@HOST[:PORT]/DATABASE.
        #[arg(long, value_name = "URL")]
        to: String,
        /// After a good copy, write DIR/store.toml so the hub runs on
        /// PostgreSQL from now on (hub.db stays as the backup of this moment).
        #[arg(long)]
        switch: bool,
    },
}

/// Why `store copy` did not copy.
#[derive(Debug, thiserror::Error)]
pub enum StoreCopyError {
    /// The URL is not a PostgreSQL URL.
    #[error(transparent)]
    Url(#[from] UrlError),
    /// No SQLite hub there.
    #[error("no hub on SQLite at {0}: give --from the data directory of a hub (its hub.db)")]
    NotAHub(PathBuf),
    /// The hub is on PostgreSQL already.
    #[error("{0} already keeps its store in PostgreSQL (store.toml): there is nothing to copy")]
    AlreadyOnPostgres(PathBuf),
    /// `--switch` needs a data directory to write `store.toml` into.
    #[error(
        "--switch needs a data directory, not a database file ({0}); copy without --switch, \
         or name the data directory"
    )]
    SwitchNeedsDirectory(PathBuf),
    /// The hub serves (or another copy runs).
    #[error("{0}; a hub is copied while it is stopped")]
    Serving(#[from] LockError),
    /// The hub's key is unusable.
    #[error(transparent)]
    Key(#[from] KeyError),
    /// The SQLite hub could not be read.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The copy failed; the target is as it was.
    #[error(transparent)]
    Copy(#[from] CopyError),
    /// The copy committed but does not open as this hub.
    #[error("the copy at {url} was made but does not open as this hub: {source}")]
    Reopen {
        /// Where (password redacted).
        url: String,
        /// Why.
        #[source]
        source: ConnectError,
    },
    /// `store.toml` could not be written.
    #[error(
        "the copy is made, but {path} could not be written ({source}); the hub still runs \
         on hub.db: write the file by hand (database = \"postgres://…\", mode 0600)"
    )]
    WriteConfig {
        /// The file.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
}

/// What a good copy did.
#[derive(Debug)]
pub struct CopyReport {
    /// The target's figures (equal to the source's).
    pub figures: StoreFigures,
    /// Whether `store.toml` now names the database.
    pub switched: bool,
    /// How long it took.
    pub elapsed: std::time::Duration,
}

/// Runs `mykey-hub store …`, printing what it did.
pub fn run(cmd: &StoreCmd) -> Result<(), StoreCopyError> {
    let StoreCmd::Copy { from, to, switch } = cmd;
    let url = DatabaseUrl::parse(to)?;
    let mut stderr = std::io::stderr();
    let mut last = Instant::now();
    let mut progress = |p: Progress<'_>| {
        // A line as each table with rows is done, and every few seconds
        // while a long one is copied.
        if p.of > 0 && p.done == p.of {
            let _ = writeln!(stderr, "copied {}: {} rows", p.table, p.done);
            last = Instant::now();
        } else if p.done > 0 && last.elapsed().as_secs() >= 2 {
            let _ = writeln!(stderr, "copying {}: {}/{} rows", p.table, p.done, p.of);
            last = Instant::now();
        }
    };
    let report = copy_hub(from, &url, *switch, &mut progress)?;
    let f = &report.figures;
    let rows: u64 = f.tables.values().map(|t| t.rows).sum();
    println!(
        "copied the hub at {} to {url} in {:.1} s: {} tables, {rows} rows",
        from.display(),
        report.elapsed.as_secs_f64(),
        f.tables.len()
    );
    println!(
        "checked on both sides: ledger balanced and conserved ({} transfers, {} pt, head {}), \
         fact log {} facts up to hub_seq {}, every table's rows and digest equal",
        f.log.audit.n_transfers,
        f.log.audit.transfers,
        f.log.ledger_head,
        f.tables.get("facts").map_or(0, |t| t.rows),
        f.log.last_hub_seq
    );
    for (name, t) in f.tables.iter().filter(|(_, t)| t.rows > 0) {
        println!("  {name}: {} rows", t.rows);
    }
    if report.switched {
        println!(
            "{} now runs on PostgreSQL (store.toml); hub.db stays as the backup of this moment",
            from.display()
        );
    } else {
        println!(
            "{} is unchanged and still runs on hub.db; run the copy with --switch (on an empty \
             database) to move it",
            from.display()
        );
    }
    Ok(())
}

/// Copies the SQLite hub at `from` into the empty database at `url` (see
/// the module docs); with `switch`, writes `store.toml` after.
pub fn copy_hub(
    from: &Path,
    url: &DatabaseUrl,
    switch: bool,
    progress: &mut dyn FnMut(Progress<'_>),
) -> Result<CopyReport, StoreCopyError> {
    let started = Instant::now();
    let paths = HubPaths::of(from);
    if paths.store_config.as_ref().is_some_and(|c| c.exists()) {
        return Err(StoreCopyError::AlreadyOnPostgres(from.to_owned()));
    }
    if !paths.db.exists() || !paths.key.exists() {
        return Err(StoreCopyError::NotAHub(from.to_owned()));
    }
    let config = match (&paths.store_config, switch) {
        (None, true) => return Err(StoreCopyError::SwitchNeedsDirectory(from.to_owned())),
        (c, _) => c.clone(),
    };
    let _lock = serve_lock(from)?;
    let key = HubKey::read(&paths.key)?;
    // Brings the schema current, as every command does.
    let mut store = SqliteStore::open(&paths.db)?;
    let figures = copy::from_sqlite(&paths.db, &mut store, &key.id(), url, progress, &mut check)?;
    drop(store);
    PgStore::open(url, &key.id(), false).map_err(|source| StoreCopyError::Reopen {
        url: url.to_string(),
        source,
    })?;
    let switched = match config.filter(|_| switch) {
        Some(path) => {
            crate::store::select::write(&path, url)
                .map_err(|source| StoreCopyError::WriteConfig { path, source })?;
            true
        }
        None => false,
    };
    Ok(CopyReport {
        figures,
        switched,
        elapsed: started.elapsed(),
    })
}

/// Both sides agree, and each passes the hub's own ledger check.
fn check(source: &StoreFigures, target: &StoreFigures) -> Result<(), String> {
    for (side, f) in [("SQLite", source), ("PostgreSQL", target)] {
        crate::ledger::check_conservation(f.log.audit.clone())
            .map_err(|e| format!("on {side}, {e}"))?;
        let facts = f.tables.get("facts").map_or(0, |t| t.rows);
        if facts != f.log.last_hub_seq {
            return Err(format!(
                "on {side}, the fact log holds {facts} facts but its last hub_seq is {}",
                f.log.last_hub_seq
            ));
        }
    }
    if source.log != target.log {
        return Err(format!(
            "the ledger audit or heads differ: SQLite {:?}, PostgreSQL {:?}",
            source.log, target.log
        ));
    }
    for (name, s) in &source.tables {
        match target.tables.get(name) {
            Some(t) if t == s => {}
            Some(t) => {
                return Err(format!(
                    "table {name}: {} rows in SQLite, {} in PostgreSQL, or their contents differ",
                    s.rows, t.rows
                ));
            }
            None => return Err(format!("table {name} is missing in PostgreSQL")),
        }
    }
    if target.tables.len() != source.tables.len() {
        return Err("PostgreSQL has tables SQLite lacks".to_owned());
    }
    Ok(())
}
