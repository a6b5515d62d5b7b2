//! Bulk reads and inserts for a SQLite rebuild, straight through SQLite's C API on sqlx's
//! own connection: one prepared statement, stepped once per row, its values read or bound
//! in place. Going through sqlx costs several copies of every value and a hand-off between
//! threads per row, and bounds a rebuild to a fraction of what SQLite can do; here rows go
//! in and out at SQLite's own speed.
//!
//! While the handle is locked the statements run on the calling task's thread, blocking
//! it: a rebuild batch takes milliseconds, and jobs-admin's runtime has nothing else to do
//! meanwhile. Not for the server's request paths.
//!
//! Also here, as the crate's only other FFI: [`interrupt_guard`], which stops a query on
//! sqlx's worker thread from outside it.

use crate::error::StoreError;
use libsqlite3_sys as ffi;
use sqlx::sqlite::LockedSqliteHandle;
use std::ffi::{c_int, CStr};
use std::marker::PhantomData;
use std::ptr::NonNull;

/// A guard that interrupts whatever statement the connection runs when it is dropped
/// before [`crate::store::QueryGuard::finished`]: the query its caller stopped waiting for
/// (it timed out, or its request went away), which would otherwise run on sqlx's worker
/// thread to its end.
///
/// The caller must keep the connection checked out until the guard is gone (declare the
/// guard after the connection): `sqlite3_interrupt` may be called from any thread, but
/// not on a connection that is closed or closing, and on a connection handed on it could
/// stop someone else's statement.
pub(super) async fn interrupt_guard(
    connection: &mut sqlx::SqliteConnection,
) -> Result<crate::store::QueryGuard, StoreError> {
    let handle = Interruptible(connection.lock_handle().await?.as_raw_handle());
    Ok(crate::store::QueryGuard::stopping(move || {
        handle.interrupt()
    }))
}

/// A connection's handle, kept only to interrupt it.
struct Interruptible(NonNull<ffi::sqlite3>);

// SAFETY: the handle is used for `sqlite3_interrupt` alone, which SQLite documents as safe to
// call from any thread while the connection is open; `interrupt_guard`'s caller keeps it
// open (checked out) for as long as the guard lives.
unsafe impl Send for Interruptible {}

impl Interruptible {
    fn interrupt(self) {
        // SAFETY: see `impl Send`: the connection is open, and this is all that is done.
        unsafe { ffi::sqlite3_interrupt(self.0.as_ptr()) }
    }
}

/// One value of a row or of a query's parameters.
pub(super) enum Value<'a> {
    Text(&'a str),
    Integer(i64),
    Null,
}

impl<'a> From<Option<&'a str>> for Value<'a> {
    fn from(text: Option<&'a str>) -> Self {
        text.map_or(Value::Null, Value::Text)
    }
}

/// Runs `sql` (an INSERT whose parameters `$1`…`$N` take a row's values) once per row, on
/// the connection's current transaction.
pub(super) async fn insert_rows<'a, const N: usize>(
    connection: &mut sqlx::SqliteConnection,
    sql: &str,
    rows: impl Iterator<Item = [Value<'a>; N]>,
) -> Result<(), StoreError> {
    let mut handle = connection.lock_handle().await?;
    let statement = Statement::prepare(&mut handle, sql)?;
    for row in rows {
        statement.bind(&row)?;
        statement.run()?;
    }
    Ok(())
}

/// Runs the query `sql` with `parameters` as its `$1`…`$N` and turns each row it returns
/// into a `T` with `decode`.
pub(super) async fn select_rows<T>(
    connection: &mut sqlx::SqliteConnection,
    sql: &str,
    parameters: &[Value<'_>],
    mut decode: impl FnMut(&Row<'_>) -> Result<T, StoreError>,
) -> Result<Vec<T>, StoreError> {
    let mut handle = connection.lock_handle().await?;
    let statement = Statement::prepare(&mut handle, sql)?;
    statement.bind(parameters)?;
    let mut rows = Vec::new();
    while statement.next_row()? {
        rows.push(decode(&Row {
            statement: &statement,
        })?);
    }
    Ok(rows)
}

/// The row a query stands on; its text is borrowed from SQLite until the next step.
pub(super) struct Row<'s> {
    statement: &'s Statement<'s>,
}

impl Row<'_> {
    /// The integer in `column` (counted from 0).
    pub(super) fn integer(&self, column: c_int) -> Result<i64, StoreError> {
        let statement = self.statement.statement.as_ptr();
        // SAFETY: the statement stands on a row (`next_row` returned true) and this borrow
        // keeps it there; an out-of-range column reads as NULL, which is refused below.
        unsafe {
            match ffi::sqlite3_column_type(statement, column) {
                ffi::SQLITE_INTEGER => Ok(ffi::sqlite3_column_int64(statement, column)),
                _ => Err(self.not_a(column, "an integer")),
            }
        }
    }

    /// The UTF-8 text in `column` (counted from 0).
    pub(super) fn text(&self, column: c_int) -> Result<&str, StoreError> {
        let statement = self.statement.statement.as_ptr();
        // SAFETY: as in `integer`. `sqlite3_column_text` converts the value to text once
        // and returns a pointer that stays valid until the statement steps, resets or is
        // finalized, none of which can happen while `self` borrows it; its length comes
        // from `sqlite3_column_bytes`, called after it as SQLite's documentation asks.
        let bytes = unsafe {
            if ffi::sqlite3_column_type(statement, column) != ffi::SQLITE_TEXT {
                return Err(self.not_a(column, "text"));
            }
            let text = ffi::sqlite3_column_text(statement, column);
            let length = usize::try_from(ffi::sqlite3_column_bytes(statement, column))
                .map_err(|_| self.not_a(column, "text"))?;
            if text.is_null() {
                return Err(StoreError::Sqlite("out of memory reading a row".into()));
            }
            std::slice::from_raw_parts(text, length)
        };
        std::str::from_utf8(bytes).map_err(|_| self.not_a(column, "UTF-8 text"))
    }

    fn not_a(&self, column: c_int, kind: &str) -> StoreError {
        StoreError::Corrupt(format!("column {column} of a row read is not {kind}"))
    }
}

/// A prepared statement, finalized when dropped; it borrows the locked handle, so it
/// cannot outlive the lock (sqlx's worker takes the connection back after it).
struct Statement<'h> {
    database: NonNull<ffi::sqlite3>,
    statement: NonNull<ffi::sqlite3_stmt>,
    /// For each of the statement's parameters in SQLite's order, the index of the value it
    /// takes (`$3` takes the third: SQLite numbers `$`-named parameters by appearance).
    values: Vec<usize>,
    handle: PhantomData<&'h mut ()>,
}

impl<'h> Statement<'h> {
    /// Prepares `sql`, one statement (anything after it is refused, not ignored).
    fn prepare(
        handle: &'h mut LockedSqliteHandle<'_>,
        sql: &str,
    ) -> Result<Statement<'h>, StoreError> {
        let database = handle.as_raw_handle();
        let length = c_int::try_from(sql.len())
            .map_err(|_| StoreError::Sqlite("statement too long".into()))?;
        let mut statement = std::ptr::null_mut();
        let mut tail: *const std::ffi::c_char = std::ptr::null();
        // SAFETY: `database` is the open connection sqlx has handed over (its worker waits
        // while the handle is locked, which `'h` outlasts); the text is passed with its
        // length, so it needs no terminating NUL; `statement` receives a new statement or
        // stays null; `tail` receives a pointer into `sql` where the first statement ends.
        let code = unsafe {
            ffi::sqlite3_prepare_v2(
                database.as_ptr(),
                sql.as_ptr().cast(),
                length,
                &mut statement,
                &mut tail,
            )
        };
        check(database, code)?;
        let statement = NonNull::new(statement)
            .ok_or_else(|| StoreError::Sqlite("an empty statement".into()))?;
        let mut prepared = Statement {
            database,
            statement,
            values: Vec::new(),
            handle: PhantomData,
        };
        if !tail.is_null() {
            // `tail` points into `sql` (or just past it): what follows the statement.
            let offset = (tail as usize).saturating_sub(sql.as_ptr() as usize);
            let rest = sql.get(offset..).unwrap_or_default().trim();
            if !rest.is_empty() {
                return Err(StoreError::Sqlite(format!(
                    "more than one statement: {rest:?}"
                )));
            }
        }
        prepared.values = prepared.parameter_values()?;
        Ok(prepared)
    }

    /// Which value each parameter takes, from its name (`$N` or `?N`).
    fn parameter_values(&self) -> Result<Vec<usize>, StoreError> {
        let statement = self.statement.as_ptr();
        // SAFETY: the statement is prepared; the count covers every parameter it has.
        let count = unsafe { ffi::sqlite3_bind_parameter_count(statement) };
        (1..=count)
            .map(|parameter| {
                // SAFETY: `parameter` is in 1..=count; the name (NUL-terminated, owned by
                // the statement, null for a nameless `?`) is read before anything else
                // happens to the statement.
                let name = unsafe {
                    let name = ffi::sqlite3_bind_parameter_name(statement, parameter);
                    (!name.is_null()).then(|| CStr::from_ptr(name).to_string_lossy())
                };
                name.as_deref()
                    .and_then(|name| name.strip_prefix(['$', '?']))
                    .and_then(|number| number.parse::<usize>().ok())
                    .and_then(|number| number.checked_sub(1))
                    .ok_or_else(|| {
                        StoreError::Sqlite(format!("parameter {parameter} is not named $N"))
                    })
            })
            .collect()
    }

    /// Binds `values` to the statement's parameters (as numbered in `values`). Text is
    /// bound in place, not copied, so it must outlive the statement: `insert_rows` and
    /// `select_rows` borrow it for longer than the statement they prepare lives.
    fn bind(&self, values: &[Value<'_>]) -> Result<(), StoreError> {
        let statement = self.statement.as_ptr();
        for (index, &taken) in self.values.iter().enumerate() {
            let value = values.get(taken).ok_or_else(|| {
                StoreError::Sqlite(format!("no value for parameter ${}", taken + 1))
            })?;
            let position = c_int::try_from(index + 1)
                .map_err(|_| StoreError::Sqlite("too many parameters".into()))?;
            // SAFETY: `statement` is prepared and not running; text is passed with its
            // length and SQLITE_STATIC: SQLite reads it in place while stepping, and it
            // outlives the statement (see above).
            let code = unsafe {
                match value {
                    Value::Text(text) => {
                        let length = c_int::try_from(text.len())
                            .map_err(|_| StoreError::Sqlite("a value too long".into()))?;
                        ffi::sqlite3_bind_text(
                            statement,
                            position,
                            text.as_ptr().cast(),
                            length,
                            ffi::SQLITE_STATIC(),
                        )
                    }
                    Value::Integer(number) => ffi::sqlite3_bind_int64(statement, position, *number),
                    Value::Null => ffi::sqlite3_bind_null(statement, position),
                }
            };
            check(self.database, code)?;
        }
        Ok(())
    }

    /// Runs a bound statement that returns no rows and resets it for the next.
    fn run(&self) -> Result<(), StoreError> {
        let statement = self.statement.as_ptr();
        // SAFETY: every parameter is bound; the statement belongs to this connection.
        let code = unsafe { ffi::sqlite3_step(statement) };
        // SAFETY: resetting a stepped statement is always allowed; its code repeats the
        // step's, which is checked just below.
        unsafe { ffi::sqlite3_reset(statement) };
        match code {
            ffi::SQLITE_DONE => Ok(()),
            code => Err(error(self.database, code)),
        }
    }

    /// Steps a bound query to its next row: false when there is none left.
    fn next_row(&self) -> Result<bool, StoreError> {
        // SAFETY: every parameter is bound; no borrowed row (`Row`) outlives this call,
        // since a `Row` borrows the statement only inside the decode of one row.
        match unsafe { ffi::sqlite3_step(self.statement.as_ptr()) } {
            ffi::SQLITE_ROW => Ok(true),
            ffi::SQLITE_DONE => Ok(false),
            code => Err(error(self.database, code)),
        }
    }
}

impl Drop for Statement<'_> {
    fn drop(&mut self) {
        // SAFETY: the statement was prepared by `prepare` and is finalized only here.
        unsafe { ffi::sqlite3_finalize(self.statement.as_ptr()) };
    }
}

fn check(database: NonNull<ffi::sqlite3>, code: c_int) -> Result<(), StoreError> {
    match code {
        ffi::SQLITE_OK => Ok(()),
        code => Err(error(database, code)),
    }
}

/// The connection's error message for a failed call.
fn error(database: NonNull<ffi::sqlite3>, code: c_int) -> StoreError {
    // SAFETY: `sqlite3_errmsg` returns a NUL-terminated string owned by the connection,
    // valid until the next call on it; it is copied at once.
    let message = unsafe { CStr::from_ptr(ffi::sqlite3_errmsg(database.as_ptr())) };
    StoreError::Sqlite(format!("{} (code {code})", message.to_string_lossy()))
}

#[cfg(test)]
mod tests {
    use super::{insert_rows, select_rows, Value};
    use crate::store::StoreError;
    use sqlx::Connection;

    async fn connection() -> sqlx::SqliteConnection {
        let mut connection = sqlx::SqliteConnection::connect("sqlite::memory:")
            .await
            .unwrap();
        sqlx::query("CREATE TABLE t (id INTEGER NOT NULL, name TEXT, note ANY)")
            .execute(&mut connection)
            .await
            .unwrap();
        connection
    }

    #[tokio::test]
    async fn rows_go_in_and_come_out_by_parameter_number() {
        let mut connection = connection().await;
        let names = ["één", "two\0with a NUL", "three"];
        // `$2` comes first in the text: values are taken by number, not by place.
        let rows = names
            .iter()
            .zip(1..)
            .map(|(name, id)| [Value::Integer(id), Value::Text(name)]);
        insert_rows(
            &mut connection,
            "INSERT INTO t (name, id) VALUES ($2, $1)",
            rows,
        )
        .await
        .unwrap();
        let read = select_rows(
            &mut connection,
            "SELECT id, name FROM t WHERE id >= $2 AND ($1 IS NULL OR name <> $1) ORDER BY id",
            &[Value::Text("three"), Value::Integer(1)],
            |row| Ok((row.integer(0)?, row.text(1)?.to_owned())),
        )
        .await
        .unwrap();
        assert_eq!(
            read,
            vec![(1, names[0].to_owned()), (2, names[1].to_owned())]
        );
        let everything = select_rows(
            &mut connection,
            "SELECT count(*) FROM t WHERE $1 IS NULL",
            &[Value::Null],
            |row| row.integer(0),
        )
        .await
        .unwrap();
        assert_eq!(everything, vec![3]);
    }

    #[tokio::test]
    async fn a_value_of_another_kind_is_an_error_not_a_guess() {
        let mut connection = connection().await;
        sqlx::query("INSERT INTO t VALUES (1, NULL, x'ff'), (2, 'two', 7)")
            .execute(&mut connection)
            .await
            .unwrap();
        for (sql, expected) in [
            (
                "SELECT name FROM t WHERE id = 1",
                "column 0 of a row read is not text",
            ),
            (
                "SELECT note FROM t WHERE id = 1",
                "column 0 of a row read is not text",
            ),
            (
                "SELECT CAST(note AS TEXT) FROM t WHERE id = 1",
                "not UTF-8 text",
            ),
            (
                "SELECT note FROM t WHERE id = 2",
                "column 0 of a row read is not text",
            ),
        ] {
            let read = select_rows(&mut connection, sql, &[], |row| {
                row.text(0).map(str::to_owned)
            })
            .await;
            assert!(
                matches!(&read, Err(StoreError::Corrupt(message)) if message.contains(expected)),
                "{sql}: {read:?}"
            );
        }
        let read = select_rows(
            &mut connection,
            "SELECT name FROM t WHERE id = 2",
            &[],
            |row| row.integer(0),
        )
        .await;
        assert!(matches!(read, Err(StoreError::Corrupt(_))), "{read:?}");
    }

    #[tokio::test]
    async fn what_cannot_run_as_written_is_refused() {
        let mut connection = connection().await;
        let missing = select_rows(&mut connection, "SELECT $2", &[Value::Integer(1)], |row| {
            row.integer(0)
        })
        .await;
        assert!(
            matches!(&missing, Err(StoreError::Sqlite(message)) if message.contains("no value for parameter $2")),
            "{missing:?}"
        );
        let nameless = select_rows(&mut connection, "SELECT ?", &[Value::Integer(1)], |row| {
            row.integer(0)
        })
        .await;
        assert!(
            matches!(nameless, Err(StoreError::Sqlite(_))),
            "{nameless:?}"
        );
        let failing = select_rows(&mut connection, "SELECT * FROM missing", &[], |row| {
            row.integer(0)
        })
        .await;
        assert!(
            matches!(&failing, Err(StoreError::Sqlite(message)) if message.contains("no such table")),
            "{failing:?}"
        );
        let two = select_rows(&mut connection, "SELECT 1; SELECT 2", &[], |row| {
            row.integer(0)
        })
        .await;
        assert!(
            matches!(&two, Err(StoreError::Sqlite(message)) if message.contains("more than one statement: \"SELECT 2\"")),
            "{two:?}"
        );
        let one = select_rows(&mut connection, "SELECT 1;\n ", &[], |row| row.integer(0)).await;
        assert_eq!(one.unwrap(), vec![1]);
    }
}
