//! `mykey-hub store copy`: a SQLite hub's rows into an empty PostgreSQL
//! database, in one PostgreSQL transaction.
//!
//! The schema comes from this backend's migrations; then every table is
//! copied row for row (`COPY … FROM STDIN BINARY`), in an order that keeps
//! foreign keys satisfied, with each value checked against the column's
//! PostgreSQL type. Ids, positions and hashes are copied as they are, the
//! identity columns are advanced past the copied ids, and the `counters`
//! rows (`hub_seq`, the ledger position) are set to the copied heads. The
//! rows are then read back and both sides' figures (rows and an
//! order-independent SHA-256 per table, the ledger audit, the heads) go to
//! the caller's check; only if it passes is the transaction committed, so a
//! failure anywhere leaves the target as it was.

use super::conn::Conn;
use super::{ConnectError, DatabaseUrl, PgStore, PgTx, migrations};
use crate::model::Posted;
use crate::store::{LedgerAudit, LedgerStore, SqliteStore, StoreError, StoreTx};
use mykey_sync_proto::NodeId;
use postgres::NoTls;
use postgres::binary_copy::BinaryCopyInWriter;
use postgres::fallible_iterator::FallibleIterator;
use postgres::types::{ToSql, Type};
use rusqlite::types::ValueRef;
use sha2::{Digest, Sha256};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::Path;

/// Tables the copy does not take from SQLite: the PostgreSQL backend's own
/// bookkeeping, written by the migrations and by the copy itself, and the
/// leases by which several serve processes share the timed jobs.
const PG_ONLY: [&str; 4] = ["mykey_schema", "counters", "hub_identity", "leases"];

/// Columns only PostgreSQL has, each nullable: the copy leaves them NULL.
/// `node_links.holder` names the serve process that holds a link, and a
/// SQLite hub is one process (its open links are closed at the next start).
const PG_ONLY_COLUMNS: [(&str, &str); 1] = [("node_links", "holder")];

/// Rows between two progress reports.
const PROGRESS_EVERY: u64 = 20_000;

/// Why a copy failed. The PostgreSQL database is as it was before.
#[derive(Debug, thiserror::Error)]
pub enum CopyError {
    /// The server could not be reached, or the database is unusable.
    #[error(transparent)]
    Connect(#[from] ConnectError),
    /// The target holds a hub or mykey tables already.
    #[error(
        "the database at {0} is not empty (it holds a hub, or another program's mykey \
         tables); give the copy an empty database of its own: nothing was written"
    )]
    NotEmpty(String),
    /// The SQLite hub and this build's PostgreSQL schema differ.
    #[error(
        "the SQLite hub and this build's PostgreSQL schema differ ({0}); run the copy with \
         the mykey-hub that last served the hub: nothing was written"
    )]
    Schema(String),
    /// A stored value is not of its column's type.
    #[error(
        "{table}.{column} holds {found} in row {row} where the hub keeps {wanted}: the \
         SQLite file was changed outside the hub; restore it from a backup (the PostgreSQL \
         database was left as it was)"
    )]
    BadValue {
        /// The table.
        table: String,
        /// The column.
        column: String,
        /// Which row (1-based, in the order read).
        row: u64,
        /// What was found.
        found: &'static str,
        /// What the column keeps.
        wanted: &'static str,
    },
    /// The figures of the two sides differ, or one side's ledger is broken.
    #[error("the copy does not check out: {0}; the PostgreSQL database was left as it was")]
    Check(String),
    /// Reading SQLite or writing PostgreSQL failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<super::conn::Error> for CopyError {
    fn from(e: super::conn::Error) -> Self {
        CopyError::Store(e.into())
    }
}

impl From<rusqlite::Error> for CopyError {
    fn from(e: rusqlite::Error) -> Self {
        CopyError::Store(e.into())
    }
}

impl From<postgres::Error> for CopyError {
    fn from(e: postgres::Error) -> Self {
        CopyError::Store(e.into())
    }
}

/// One table's rows on one side.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TableFigures {
    /// How many.
    pub rows: u64,
    /// The sum (mod 2^256) of the SHA-256 of each row's canonical encoding:
    /// independent of row order, so the two engines need not sort alike.
    pub digest: [u8; 32],
}

/// What the hub's own checks say about one side.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LogFigures {
    /// The ledger recomputed from its transfers (`ledger check`'s audit).
    pub audit: LedgerAudit,
    /// The last hub_seq of the fact log.
    pub last_hub_seq: u64,
    /// The position of the last transfer.
    pub ledger_head: u64,
}

impl LogFigures {
    /// The figures of a store, read through the storage interface.
    pub fn of(st: &mut dyn StoreTx) -> Result<LogFigures, StoreError> {
        Ok(LogFigures {
            audit: st.ledger_audit()?,
            last_hub_seq: st.last_hub_seq()?,
            ledger_head: st.ledger_head()?,
        })
    }
}

/// Everything the copy compares, per side.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct StoreFigures {
    /// Per table (the PostgreSQL-only tables left out).
    pub tables: BTreeMap<String, TableFigures>,
    /// The hub's own checks.
    pub log: LogFigures,
}

/// Where a copy is.
#[derive(Clone, Copy, Debug)]
pub struct Progress<'a> {
    /// The table being copied.
    pub table: &'a str,
    /// Its rows copied so far.
    pub done: u64,
    /// Its rows in all.
    pub of: u64,
}

/// Copies the SQLite hub whose database is `db` (open as `store`) into
/// the empty database at `url`, claimed for `hub`. A second connection
/// holds SQLite's write lock for the whole copy, so the rows read and the
/// figures read through `store` are of one state. `check` sees both sides'
/// figures before the commit; its error aborts the copy. Returns the
/// target's figures.
pub fn from_sqlite(
    db: &Path,
    store: &mut SqliteStore,
    hub: &NodeId,
    url: &DatabaseUrl,
    progress: &mut dyn FnMut(Progress<'_>),
    check: &mut dyn FnMut(&StoreFigures, &StoreFigures) -> Result<(), String>,
) -> Result<StoreFigures, CopyError> {
    let mut raw = rusqlite::Connection::open(db)?;
    raw.busy_timeout(std::time::Duration::from_secs(5))?;
    let source = raw.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
    let source_log = LogFigures::of(store.begin_read()?.as_mut())?;
    copy(&source, source_log, hub, url, progress, check)
}

fn copy(
    source: &rusqlite::Connection,
    source_log: LogFigures,
    hub: &NodeId,
    url: &DatabaseUrl,
    progress: &mut dyn FnMut(Progress<'_>),
    check: &mut dyn FnMut(&StoreFigures, &StoreFigures) -> Result<(), String>,
) -> Result<StoreFigures, CopyError> {
    let redacted = url.to_string();
    if PgStore::holds_a_hub(url)? {
        return Err(CopyError::NotEmpty(redacted));
    }
    let mut client = url
        .config()
        .connect(NoTls)
        .map_err(|source| ConnectError::Unreachable {
            url: redacted.clone(),
            source,
        })?;
    let mut stmts = HashMap::new();
    let mut conn = Conn::new(client.transaction()?, &mut stmts);
    migrations::apply(&mut conn)?;
    conn.execute(
        "INSERT INTO hub_identity (hub_key) VALUES ($1)",
        [&hub.as_bytes()[..]],
    )?;
    let tables = target_tables(&mut conn)?;
    match_source(source, &tables)?;

    let mut source_figures = StoreFigures {
        tables: BTreeMap::new(),
        log: source_log,
    };
    for t in &tables {
        // Rows the migrations wrote (the ledger totals, the lot cursor)
        // are replaced by the source's.
        conn.tx.batch_execute(&format!("DELETE FROM {}", t.name))?;
        let figures = copy_table(source, &mut conn, t, progress)?;
        source_figures.tables.insert(t.name.clone(), figures);
    }
    advance_identities(&mut conn)?;
    conn.tx.batch_execute(
        "UPDATE counters SET value = (SELECT COALESCE(MAX(hub_seq), 0) FROM facts)
             WHERE name = 'hub_seq';
         UPDATE counters SET value = (SELECT COALESCE(MAX(id), 0) FROM transfers)
             WHERE name = 'ledger';",
    )?;

    let mut target_figures = StoreFigures::default();
    for t in &tables {
        target_figures
            .tables
            .insert(t.name.clone(), read_back(&mut conn, t)?);
    }
    let mut committed_ids = HashMap::new();
    let process = crate::store::process_name();
    let mut st = Box::new(PgTx {
        tx: conn,
        write: false,
        delta: Posted::default(),
        committed_ids: &mut committed_ids,
        new_ids: HashMap::new(),
        legs: HashMap::new(),
        batch: None,
        ledger_pos: None,
        hub_seq: None,
        appended: false,
        process: &process,
    });
    target_figures.log = LogFigures::of(st.as_mut())?;
    check(&source_figures, &target_figures).map_err(CopyError::Check)?;
    st.commit()?;
    Ok(target_figures)
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum ColType {
    Int,
    Bool,
    Bytes,
    Text,
}

impl ColType {
    fn of(pg: &str) -> Option<ColType> {
        Some(match pg {
            "bigint" => ColType::Int,
            "boolean" => ColType::Bool,
            "bytea" => ColType::Bytes,
            "text" => ColType::Text,
            _ => return None,
        })
    }

    fn pg(self) -> Type {
        match self {
            ColType::Int => Type::INT8,
            ColType::Bool => Type::BOOL,
            ColType::Bytes => Type::BYTEA,
            ColType::Text => Type::TEXT,
        }
    }

    fn name(self) -> &'static str {
        match self {
            ColType::Int => "an integer",
            ColType::Bool => "0 or 1",
            ColType::Bytes => "bytes",
            ColType::Text => "UTF-8 text",
        }
    }
}

struct Table {
    name: String,
    columns: Vec<(String, ColType)>,
}

impl Table {
    fn column_list(&self) -> String {
        let names: Vec<&str> = self.columns.iter().map(|(n, _)| n.as_str()).collect();
        names.join(", ")
    }
}

/// The tables the migrations made (the PostgreSQL-only ones left out), each
/// after the tables its foreign keys name.
fn target_tables(conn: &mut Conn<'_>) -> Result<Vec<Table>, CopyError> {
    let mut columns: BTreeMap<String, Vec<(String, ColType)>> = BTreeMap::new();
    let rows = conn.tx.query(
        "SELECT c.table_name::text, c.column_name::text, c.data_type::text
           FROM information_schema.columns c
           JOIN information_schema.tables t
             ON t.table_schema = c.table_schema AND t.table_name = c.table_name
          WHERE c.table_schema = current_schema() AND t.table_type = 'BASE TABLE'
          ORDER BY c.table_name, c.ordinal_position",
        &[],
    )?;
    for r in rows {
        let (table, column, ty): (String, String, String) = (r.get(0), r.get(1), r.get(2));
        if PG_ONLY.contains(&table.as_str())
            || PG_ONLY_COLUMNS.contains(&(table.as_str(), column.as_str()))
        {
            continue;
        }
        let Some(ty) = ColType::of(&ty) else {
            return Err(CopyError::Schema(format!(
                "{table}.{column} is of PostgreSQL type {ty}, which the copy does not know"
            )));
        };
        columns.entry(table).or_default().push((column, ty));
    }
    let mut deps: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for r in conn.tx.query(
        "SELECT c.conrelid::regclass::text, c.confrelid::regclass::text
           FROM pg_constraint c JOIN pg_namespace n ON n.oid = c.connamespace
          WHERE c.contype = 'f' AND n.nspname = current_schema()",
        &[],
    )? {
        let (from, to): (String, String) = (r.get(0), r.get(1));
        if from != to {
            deps.entry(from).or_default().insert(to);
        }
    }
    let mut ordered = Vec::with_capacity(columns.len());
    let mut placed = BTreeSet::new();
    while !columns.is_empty() {
        let ready: Vec<String> = columns
            .keys()
            .filter(|t| {
                deps.get(*t)
                    .is_none_or(|d| d.iter().all(|d| placed.contains(d)))
            })
            .cloned()
            .collect();
        if ready.is_empty() {
            return Err(CopyError::Schema(format!(
                "the foreign keys of {:?} form a cycle",
                columns.keys().collect::<Vec<_>>()
            )));
        }
        for name in ready {
            let cols = columns.remove(&name).unwrap_or_default();
            placed.insert(name.clone());
            ordered.push(Table {
                name,
                columns: cols,
            });
        }
    }
    Ok(ordered)
}

/// Checks the SQLite hub has exactly these tables with these columns.
fn match_source(source: &rusqlite::Connection, tables: &[Table]) -> Result<(), CopyError> {
    let mut stmt = source.prepare(
        "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'",
    )?;
    let names: BTreeSet<String> = stmt
        .query_map([], |r| r.get(0))?
        .collect::<Result<_, _>>()?;
    let wanted: BTreeSet<String> = tables.iter().map(|t| t.name.clone()).collect();
    if let Some(extra) = names.difference(&wanted).next() {
        return Err(CopyError::Schema(format!(
            "SQLite has a table {extra} that PostgreSQL lacks"
        )));
    }
    if let Some(missing) = wanted.difference(&names).next() {
        return Err(CopyError::Schema(format!(
            "SQLite lacks the table {missing}"
        )));
    }
    for t in tables {
        let mut stmt = source.prepare(&format!("PRAGMA table_info({})", t.name))?;
        let have: BTreeSet<String> = stmt
            .query_map([], |r| r.get(1))?
            .collect::<Result<_, _>>()?;
        let want: BTreeSet<String> = t.columns.iter().map(|(c, _)| c.clone()).collect();
        if have != want {
            return Err(CopyError::Schema(format!(
                "table {} has columns {have:?} in SQLite and {want:?} in PostgreSQL",
                t.name
            )));
        }
    }
    Ok(())
}

/// A value as both sides hash it (a boolean is 0 or 1, as SQLite keeps it).
enum Value {
    Null,
    Int(i64),
    Bytes(Vec<u8>),
    Text(String),
}

impl Value {
    fn hash_into(&self, h: &mut Sha256) {
        match self {
            Value::Null => h.update([0]),
            Value::Int(i) => {
                h.update([1]);
                h.update(i.to_le_bytes());
            }
            Value::Bytes(b) => {
                h.update([2]);
                h.update((b.len() as u64).to_le_bytes());
                h.update(b);
            }
            Value::Text(s) => {
                h.update([3]);
                h.update((s.len() as u64).to_le_bytes());
                h.update(s.as_bytes());
            }
        }
    }

    fn to_sql(&self, ty: ColType) -> Box<dyn ToSql + Sync> {
        match (self, ty) {
            (Value::Int(i), ColType::Bool) => Box::new(*i != 0),
            (Value::Int(i), _) => Box::new(*i),
            (Value::Bytes(b), _) => Box::new(b.clone()),
            (Value::Text(s), _) => Box::new(s.clone()),
            (Value::Null, ColType::Int) => Box::new(None::<i64>),
            (Value::Null, ColType::Bool) => Box::new(None::<bool>),
            (Value::Null, ColType::Bytes) => Box::new(None::<Vec<u8>>),
            (Value::Null, ColType::Text) => Box::new(None::<String>),
        }
    }
}

/// Adds one row's hash into a table digest (four 64-bit lanes, wrapping).
fn add_row(digest: &mut [u64; 4], row: &[Value]) {
    let mut h = Sha256::new();
    for v in row {
        v.hash_into(&mut h);
    }
    let bytes = h.finalize();
    for (lane, chunk) in digest.iter_mut().zip(bytes.chunks_exact(8)) {
        let mut b = [0u8; 8];
        b.copy_from_slice(chunk);
        *lane = lane.wrapping_add(u64::from_le_bytes(b));
    }
}

fn figures(rows: u64, digest: [u64; 4]) -> TableFigures {
    let mut out = [0u8; 32];
    for (chunk, lane) in out.chunks_exact_mut(8).zip(digest) {
        chunk.copy_from_slice(&lane.to_le_bytes());
    }
    TableFigures { rows, digest: out }
}

/// Copies one table; returns the source's figures.
fn copy_table(
    source: &rusqlite::Connection,
    conn: &mut Conn<'_>,
    t: &Table,
    progress: &mut dyn FnMut(Progress<'_>),
) -> Result<TableFigures, CopyError> {
    let of: i64 = source.query_row(&format!("SELECT COUNT(*) FROM {}", t.name), [], |r| {
        r.get(0)
    })?;
    let of = of.max(0) as u64;
    let types: Vec<Type> = t.columns.iter().map(|(_, ty)| ty.pg()).collect();
    let sink = conn.tx.copy_in(&format!(
        "COPY {} ({}) FROM STDIN BINARY",
        t.name,
        t.column_list()
    ))?;
    let mut writer = BinaryCopyInWriter::new(sink, &types);
    let mut stmt = source.prepare(&format!("SELECT {} FROM {}", t.column_list(), t.name))?;
    let mut rows = stmt.query([])?;
    let mut digest = [0u64; 4];
    let mut n = 0u64;
    progress(Progress {
        table: &t.name,
        done: 0,
        of,
    });
    while let Some(r) = rows.next()? {
        n += 1;
        let mut values = Vec::with_capacity(t.columns.len());
        for (i, (column, ty)) in t.columns.iter().enumerate() {
            let bad = |found: &'static str| CopyError::BadValue {
                table: t.name.clone(),
                column: column.clone(),
                row: n,
                found,
                wanted: ty.name(),
            };
            let v = match (r.get_ref(i)?, ty) {
                (ValueRef::Null, _) => Value::Null,
                (ValueRef::Integer(i), ColType::Int) => Value::Int(i),
                (ValueRef::Integer(i @ (0 | 1)), ColType::Bool) => Value::Int(i),
                (ValueRef::Integer(_), ColType::Bool) => return Err(bad("an integer")),
                (ValueRef::Blob(b), ColType::Bytes) => Value::Bytes(b.to_vec()),
                (ValueRef::Text(s), ColType::Text) => Value::Text(
                    String::from_utf8(s.to_vec()).map_err(|_| bad("bytes that are not UTF-8"))?,
                ),
                (ValueRef::Integer(_), _) => return Err(bad("an integer")),
                (ValueRef::Real(_), _) => return Err(bad("a real number")),
                (ValueRef::Text(_), _) => return Err(bad("text")),
                (ValueRef::Blob(_), _) => return Err(bad("bytes")),
            };
            values.push(v);
        }
        add_row(&mut digest, &values);
        let bound: Vec<Box<dyn ToSql + Sync>> = values
            .iter()
            .zip(&t.columns)
            .map(|(v, (_, ty))| v.to_sql(*ty))
            .collect();
        let refs: Vec<&(dyn ToSql + Sync)> = bound.iter().map(|b| b.as_ref()).collect();
        writer.write(&refs)?;
        if n.is_multiple_of(PROGRESS_EVERY) {
            progress(Progress {
                table: &t.name,
                done: n,
                of,
            });
        }
    }
    writer.finish()?;
    if !n.is_multiple_of(PROGRESS_EVERY) {
        progress(Progress {
            table: &t.name,
            done: n,
            of,
        });
    }
    Ok(figures(n, digest))
}

/// Reads a copied table back; returns the target's figures.
fn read_back(conn: &mut Conn<'_>, t: &Table) -> Result<TableFigures, CopyError> {
    let sql = format!("SELECT {} FROM {}", t.column_list(), t.name);
    let mut rows = conn.tx.query_raw(&sql, std::iter::empty::<i64>())?;
    let mut digest = [0u64; 4];
    let mut n = 0u64;
    while let Some(r) = rows.next()? {
        n += 1;
        let mut values = Vec::with_capacity(t.columns.len());
        for (i, (_, ty)) in t.columns.iter().enumerate() {
            let v = match ty {
                ColType::Int => r.try_get::<_, Option<i64>>(i)?.map(Value::Int),
                ColType::Bool => r
                    .try_get::<_, Option<bool>>(i)?
                    .map(|b| Value::Int(i64::from(b))),
                ColType::Bytes => r.try_get::<_, Option<Vec<u8>>>(i)?.map(Value::Bytes),
                ColType::Text => r.try_get::<_, Option<String>>(i)?.map(Value::Text),
            };
            values.push(v.unwrap_or(Value::Null));
        }
        add_row(&mut digest, &values);
    }
    Ok(figures(n, digest))
}

/// Moves every identity column's sequence past the ids copied into it, so
/// the next row the hub adds gets a fresh id.
fn advance_identities(conn: &mut Conn<'_>) -> Result<(), CopyError> {
    let rows = conn.tx.query(
        "SELECT table_name::text, column_name::text FROM information_schema.columns
          WHERE table_schema = current_schema() AND is_identity = 'YES'",
        &[],
    )?;
    for r in rows {
        let (table, column): (String, String) = (r.get(0), r.get(1));
        conn.tx.batch_execute(&format!(
            "SELECT setval(pg_get_serial_sequence('{table}', '{column}'),
                           GREATEST((SELECT MAX({column}) FROM {table}), 1),
                           (SELECT MAX({column}) FROM {table}) IS NOT NULL)"
        ))?;
    }
    Ok(())
}
