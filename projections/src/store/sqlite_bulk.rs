//! Bulk inserts for a SQLite rebuild, straight through SQLite's C API on sqlx's own
//! connection: one prepared statement, a bind and a step per row. Going through sqlx
//! statements costs several copies of every value and bounds a rebuild to a fraction of
//! what SQLite can take; here the rows go in at SQLite's own speed.

use super::StoreError;
use libsqlite3_sys as ffi;
use std::ffi::{c_int, CStr};
use std::ptr::NonNull;

/// One value of a row.
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

/// Runs `sql` (an INSERT with `N` parameters) once per row, on the connection's current
/// transaction.
pub(super) async fn insert_rows<'a, const N: usize>(
    connection: &mut sqlx::SqliteConnection,
    sql: &str,
    rows: impl Iterator<Item = [Value<'a>; N]>,
) -> Result<(), StoreError> {
    let mut handle = connection.lock_handle().await?;
    let database = handle.as_raw_handle();
    let statement = Statement::prepare(database, sql)?;
    for row in rows {
        statement.insert(&row)?;
    }
    Ok(())
}

/// A prepared statement, finalized when dropped.
struct Statement {
    database: NonNull<ffi::sqlite3>,
    statement: NonNull<ffi::sqlite3_stmt>,
}

impl Statement {
    fn prepare(database: NonNull<ffi::sqlite3>, sql: &str) -> Result<Statement, StoreError> {
        let length = c_int::try_from(sql.len())
            .map_err(|_| StoreError::Sqlite("statement too long".into()))?;
        let mut statement = std::ptr::null_mut();
        // SAFETY: `database` is the open connection sqlx has handed over (its worker waits
        // while the handle is locked); the text is passed with its length, so it needs no
        // terminating NUL; `statement` receives a new statement or stays null.
        let code = unsafe {
            ffi::sqlite3_prepare_v2(
                database.as_ptr(),
                sql.as_ptr().cast(),
                length,
                &mut statement,
                std::ptr::null_mut(),
            )
        };
        check(database, code)?;
        let statement = NonNull::new(statement)
            .ok_or_else(|| StoreError::Sqlite("an empty statement".into()))?;
        Ok(Statement {
            database,
            statement,
        })
    }

    /// Binds one row, runs the statement and resets it for the next.
    fn insert<const N: usize>(&self, row: &[Value<'_>; N]) -> Result<(), StoreError> {
        let statement = self.statement.as_ptr();
        for (index, value) in row.iter().enumerate() {
            let position = c_int::try_from(index + 1)
                .map_err(|_| StoreError::Sqlite("too many parameters".into()))?;
            // SAFETY: `statement` is prepared and not running; text is passed with its
            // length and SQLITE_TRANSIENT, so SQLite copies it before the call returns.
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
                            ffi::SQLITE_TRANSIENT(),
                        )
                    }
                    Value::Integer(number) => ffi::sqlite3_bind_int64(statement, position, *number),
                    Value::Null => ffi::sqlite3_bind_null(statement, position),
                }
            };
            check(self.database, code)?;
        }
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
}

impl Drop for Statement {
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
