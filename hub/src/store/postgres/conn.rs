//! A thin statement layer over one PostgreSQL transaction: cached prepared
//! statements, typed parameters, rows read by position with errors instead
//! of panics.
//!
//! Its calls have the shape of the SQLite backend's (`prepare_cached`,
//! `query_row`, `optional`, `query_map`), so each area reads the same in
//! both backends and only the SQL differs.

use crate::store::StoreError;
use postgres::Statement;
use postgres::types::{FromSql, ToSql};
use std::collections::HashMap;

/// A failure of one statement.
#[derive(Debug, thiserror::Error)]
pub(super) enum Error {
    /// The server or the client failed.
    #[error(transparent)]
    Pg(#[from] postgres::Error),
    /// A query that must return a row returned none.
    #[error("the query returned no row")]
    NoRows,
}

impl From<Error> for StoreError {
    fn from(e: Error) -> Self {
        StoreError::Backend {
            source: Box::new(e),
        }
    }
}

impl From<postgres::Error> for StoreError {
    fn from(e: postgres::Error) -> Self {
        Error::Pg(e).into()
    }
}

/// A value this backend binds: only types whose PostgreSQL type matches the
/// schema's (`BIGINT`, `TEXT`, `BYTEA`, `BOOLEAN`). `u32` is deliberately
/// absent: postgres binds it as an `oid`, which a `BIGINT` column refuses at
/// run time; the compiler refuses it here instead.
pub(super) trait Sql: ToSql + Sync {}
impl Sql for i64 {}
impl Sql for bool {}
impl Sql for String {}
impl Sql for &str {}
impl Sql for Vec<u8> {}
impl Sql for &[u8] {}
impl<T: Sql> Sql for Option<T> {}
impl<T: Sql> Sql for &T {}

/// One bound parameter.
pub(super) fn p<T: Sql>(v: &T) -> &(dyn ToSql + Sync) {
    v
}

/// Parameters of a statement, like rusqlite's `params!`.
macro_rules! params {
    ($($x:expr),* $(,)?) => {
        &[$($crate::store::postgres::conn::p(&$x)),*] as &[&(dyn ::postgres::types::ToSql + Sync)]
    };
}
pub(super) use params;

/// What a statement can be bound with: `params![..]` or an array of one type.
pub(super) trait Params {
    fn bind(&self) -> Vec<&(dyn ToSql + Sync)>;
}

impl Params for &[&(dyn ToSql + Sync)] {
    fn bind(&self) -> Vec<&(dyn ToSql + Sync)> {
        self.to_vec()
    }
}

impl<T: Sql, const N: usize> Params for [T; N] {
    fn bind(&self) -> Vec<&(dyn ToSql + Sync)> {
        self.iter().map(|v| v as &(dyn ToSql + Sync)).collect()
    }
}

/// A row of a result.
pub(super) struct Row(postgres::Row);

impl Row {
    /// Column `i` as `T` (an error, not a panic, if its type differs).
    pub(super) fn get<I, T>(&self, i: I) -> Result<T, Error>
    where
        I: postgres::row::RowIndex + std::fmt::Display,
        T: for<'b> FromSql<'b>,
    {
        Ok(self.0.try_get(i)?)
    }
}

/// Reads a row into a tuple of its columns in order.
pub(super) fn tuple<T: FromRow>(r: &Row) -> Result<T, Error> {
    T::from_row(r)
}

/// A tuple read from a row.
pub(super) trait FromRow: Sized {
    fn from_row(r: &Row) -> Result<Self, Error>;
}

macro_rules! from_row {
    ($($t:ident $i:tt),*) => {
        impl<$($t: for<'b> FromSql<'b>),*> FromRow for ($($t,)*) {
            fn from_row(r: &Row) -> Result<Self, Error> {
                Ok(($(r.get::<_, $t>($i)?,)*))
            }
        }
    };
}
from_row!(A 0);
from_row!(A 0, B 1);
from_row!(A 0, B 1, C 2);
from_row!(A 0, B 1, C 2, D 3);
from_row!(A 0, B 1, C 2, D 3, E 4);
from_row!(A 0, B 1, C 2, D 3, E 4, F 5);
from_row!(A 0, B 1, C 2, D 3, E 4, F 5, G 6);
from_row!(A 0, B 1, C 2, D 3, E 4, F 5, G 6, H 7);
from_row!(A 0, B 1, C 2, D 3, E 4, F 5, G 6, H 7, I 8);
from_row!(A 0, B 1, C 2, D 3, E 4, F 5, G 6, H 7, I 8, J 9);
from_row!(A 0, B 1, C 2, D 3, E 4, F 5, G 6, H 7, I 8, J 9, K 10);
from_row!(A 0, B 1, C 2, D 3, E 4, F 5, G 6, H 7, I 8, J 9, K 10, L 11);
from_row!(A 0, B 1, C 2, D 3, E 4, F 5, G 6, H 7, I 8, J 9, K 10, L 11, M 12);
from_row!(A 0, B 1, C 2, D 3, E 4, F 5, G 6, H 7, I 8, J 9, K 10, L 11, M 12, N 13);
from_row!(A 0, B 1, C 2, D 3, E 4, F 5, G 6, H 7, I 8, J 9, K 10, L 11, M 12, N 13, O 14);
from_row!(A 0, B 1, C 2, D 3, E 4, F 5, G 6, H 7, I 8, J 9, K 10, L 11, M 12, N 13, O 14, P 15);
from_row!(A 0, B 1, C 2, D 3, E 4, F 5, G 6, H 7, I 8, J 9, K 10, L 11, M 12, N 13, O 14, P 15, Q 16);
from_row!(A 0, B 1, C 2, D 3, E 4, F 5, G 6, H 7, I 8, J 9, K 10, L 11, M 12, N 13, O 14, P 15, Q 16, R 17);

/// `Option` for a row that may be missing, like rusqlite's `optional`.
pub(super) trait OptionalExtension<T> {
    fn optional(self) -> Result<Option<T>, Error>;
}

impl<T> OptionalExtension<T> for Result<T, Error> {
    fn optional(self) -> Result<Option<T>, Error> {
        match self {
            Ok(v) => Ok(Some(v)),
            Err(Error::NoRows) => Ok(None),
            Err(e) => Err(e),
        }
    }
}

/// One open transaction and the connection's prepared statements.
pub(super) struct Conn<'a> {
    pub(super) tx: postgres::Transaction<'a>,
    stmts: &'a mut HashMap<String, Statement>,
}

impl<'a> Conn<'a> {
    pub(super) fn new(
        tx: postgres::Transaction<'a>,
        stmts: &'a mut HashMap<String, Statement>,
    ) -> Conn<'a> {
        Conn { tx, stmts }
    }

    /// The statement for `sql`, prepared once per connection.
    pub(super) fn prepare_cached(&mut self, sql: &str) -> Result<Stmt<'_, 'a>, Error> {
        let stmt = match self.stmts.get(sql) {
            Some(s) => s.clone(),
            None => {
                let s = self.tx.prepare(sql)?;
                self.stmts.insert(sql.to_owned(), s.clone());
                s
            }
        };
        Ok(Stmt {
            tx: &mut self.tx,
            stmt,
        })
    }

    /// A statement run rarely (audits, reports): prepared each time.
    pub(super) fn prepare(&mut self, sql: &str) -> Result<Stmt<'_, 'a>, Error> {
        let stmt = self.tx.prepare(sql)?;
        Ok(Stmt {
            tx: &mut self.tx,
            stmt,
        })
    }

    /// Runs a statement; returns how many rows it changed.
    pub(super) fn execute(&mut self, sql: &str, params: impl Params) -> Result<usize, Error> {
        self.prepare_cached(sql)?.execute(params)
    }

    /// The first row of a query, mapped by `f`.
    pub(super) fn query_row<T>(
        &mut self,
        sql: &str,
        params: impl Params,
        f: impl FnOnce(&Row) -> Result<T, Error>,
    ) -> Result<T, Error> {
        self.prepare(sql)?.query_row(params, f)
    }

    /// Runs statements without parameters (migrations).
    pub(super) fn execute_batch(&mut self, sql: &str) -> Result<(), Error> {
        Ok(self.tx.batch_execute(sql)?)
    }
}

/// A prepared statement bound to its transaction.
pub(super) struct Stmt<'s, 'a> {
    tx: &'s mut postgres::Transaction<'a>,
    stmt: Statement,
}

impl Stmt<'_, '_> {
    pub(super) fn execute(&mut self, params: impl Params) -> Result<usize, Error> {
        let n = self.tx.execute(&self.stmt, &params.bind())?;
        Ok(usize::try_from(n).unwrap_or(usize::MAX))
    }

    pub(super) fn query(&mut self, params: impl Params) -> Result<Rows, Error> {
        let rows = self.tx.query(&self.stmt, &params.bind())?;
        Ok(Rows {
            rows: rows.into_iter().map(Row).collect::<Vec<_>>().into_iter(),
            current: None,
        })
    }

    pub(super) fn query_row<T>(
        &mut self,
        params: impl Params,
        f: impl FnOnce(&Row) -> Result<T, Error>,
    ) -> Result<T, Error> {
        match self.tx.query_opt(&self.stmt, &params.bind())? {
            Some(r) => f(&Row(r)),
            None => Err(Error::NoRows),
        }
    }

    pub(super) fn query_map<T>(
        &mut self,
        params: impl Params,
        mut f: impl FnMut(&Row) -> Result<T, Error>,
    ) -> Result<std::vec::IntoIter<Result<T, Error>>, Error> {
        let rows = self.tx.query(&self.stmt, &params.bind())?;
        Ok(rows
            .into_iter()
            .map(|r| f(&Row(r)))
            .collect::<Vec<_>>()
            .into_iter())
    }
}

/// The rows of a query, read one at a time.
pub(super) struct Rows {
    rows: std::vec::IntoIter<Row>,
    current: Option<Row>,
}

impl Rows {
    #[allow(clippy::should_implement_trait)]
    pub(super) fn next(&mut self) -> Result<Option<&Row>, Error> {
        self.current = self.rows.next();
        Ok(self.current.as_ref())
    }
}
