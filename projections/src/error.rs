//! The store's error, and the one place that classifies database failures: whether the
//! database cannot be reached right now (a 503 to callers, worth retrying later), whether it
//! gave up waiting for a lock (worth retrying at once), or neither (a bug or bad data).

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("unsupported database URL: expected postgres://… or sqlite:…")]
    UnsupportedUrl,
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
    #[error("migration failed: {0}")]
    Migration(#[from] sqlx::migrate::MigrateError),
    #[error("stored data could not be read: {0}")]
    Corrupt(String),
    #[error("another rebuild of the projection is running on this store")]
    RebuildRunning,
    #[error("interrupted")]
    Interrupted,
    #[error("a background task failed: {0}")]
    Task(String),
    /// One failure of a group commit, reported to each command of the group.
    #[error(transparent)]
    Shared(std::sync::Arc<StoreError>),
    #[error("database error: {0}")]
    Sqlite(String),
    #[error("cannot take the rebuild lock: {0}")]
    Lock(#[source] std::io::Error),
    /// A query ran past the store's statement bound and was stopped.
    #[error("a query ran past its time bound and was stopped")]
    StatementTimedOut,
}

impl From<crate::model::view::UnserialisableSummary> for StoreError {
    fn from(error: crate::model::view::UnserialisableSummary) -> Self {
        StoreError::Corrupt(error.to_string())
    }
}

impl From<crate::model::fold::NotAJobId> for StoreError {
    fn from(error: crate::model::fold::NotAJobId) -> Self {
        StoreError::Corrupt(error.to_string())
    }
}

impl StoreError {
    /// Whether the database gave up waiting for a lock: worth trying again.
    pub fn is_lock_timeout(&self) -> bool {
        match self {
            StoreError::Database(sqlx::Error::Database(error)) => gave_up_waiting(error.as_ref()),
            StoreError::Shared(error) => error.is_lock_timeout(),
            _ => false,
        }
    }

    /// Whether the database cannot be reached or used right now, rather than that a query
    /// was wrong.
    pub fn is_unavailable(&self) -> bool {
        match self {
            StoreError::Database(error) => database_unavailable(error),
            StoreError::Shared(error) => error.is_unavailable(),
            StoreError::StatementTimedOut => true,
            _ => false,
        }
    }
}

/// Whether an error, or any error in its cause chain, says the database cannot be reached
/// or used right now: what callers get as 503 rather than 500. Errors come boxed through
/// cqrs-es, hence the walk down the chain.
pub fn store_unavailable(error: &(dyn std::error::Error + 'static)) -> bool {
    let mut current = Some(error);
    while let Some(error) = current {
        if let Some(error) = error.downcast_ref::<sqlx::Error>() {
            return database_unavailable(error);
        }
        if let Some(error) = error.downcast_ref::<StoreError>() {
            return error.is_unavailable();
        }
        current = error.source();
    }
    false
}

/// PostgreSQL's `query_canceled`: a statement ran past `statement_timeout` (or an operator
/// cancelled it).
const QUERY_CANCELED: &str = "57014";

/// The classification itself: the connection or the pool failed, or broke off while the
/// connection was being set up; PostgreSQL reports a connection exception (08…), that the
/// database is gone (3D000), out of connections (53300), read-only (25006: a standby, during
/// a failover), shutting down (57P01–57P03) or that a statement ran past its time bound
/// (57014: for the caller, the store could not answer in time); or SQLite's write lock stayed taken past the
/// busy timeout (another process holds it: for our callers the store is as good as gone,
/// for now). Anything else — a malformed statement, a worker that panicked — is a bug.
pub(crate) fn database_unavailable(error: &sqlx::Error) -> bool {
    match error {
        sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed => true,
        sqlx::Error::Protocol(message) => connection_set_up_broke_off(message),
        sqlx::Error::Database(db) => {
            sqlite_busy(db.as_ref())
                || db.code().is_some_and(|code| {
                    code.starts_with("08")
                        || code.starts_with("57P0")
                        || ["3D000", "53300", "25006", QUERY_CANCELED].contains(&code.as_ref())
                })
        }
        _ => false,
    }
}

/// sqlx's protocol error for a connection that closed while it asked for TLS (it reads the
/// missing answer as a zero byte): a server going away, not a bug.
fn connection_set_up_broke_off(message: &str) -> bool {
    message.starts_with("unexpected response from SSLRequest")
}

/// PostgreSQL's `lock_not_available` (a `lock_timeout` ran out).
const POSTGRES_LOCK_NOT_AVAILABLE: &str = "55P03";

/// SQLite's busy family (`SQLITE_BUSY` and its extended codes, which sqlx reports): its
/// busy timeout ran out, or a lock could not be had at all.
fn sqlite_busy(error: &dyn sqlx::error::DatabaseError) -> bool {
    sqlite_primary_code(error) == Some(5)
}

/// The primary result code (the low byte) of a SQLite error; `None` for PostgreSQL's.
fn sqlite_primary_code(error: &dyn sqlx::error::DatabaseError) -> Option<i64> {
    error.try_downcast_ref::<sqlx::sqlite::SqliteError>()?;
    let code: i64 = error.code()?.parse().ok()?;
    Some(code & 0xff)
}

/// SQLite's "table is locked" (`SQLITE_LOCKED`), which a rebuild's swap may meet.
fn sqlite_locked(error: &dyn sqlx::error::DatabaseError) -> bool {
    sqlite_primary_code(error) == Some(6)
}

/// Whether a database error means a lock was not had in time, on either backend.
fn gave_up_waiting(error: &dyn sqlx::error::DatabaseError) -> bool {
    sqlite_busy(error)
        || sqlite_locked(error)
        || error.code().as_deref() == Some(POSTGRES_LOCK_NOT_AVAILABLE)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("wrapper")]
    struct Wrapper(#[source] Inner);

    #[derive(Debug, thiserror::Error)]
    #[error("inner detail")]
    struct Inner;

    #[test]
    fn only_connection_failures_count_as_unavailable() {
        assert!(store_unavailable(&sqlx::Error::PoolTimedOut));
        let io = std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "refused");
        assert!(store_unavailable(&sqlx::Error::Io(io)));
        assert!(!store_unavailable(&sqlx::Error::RowNotFound));
        assert!(!store_unavailable(&Wrapper(Inner)));
        assert!(store_unavailable(&StoreError::Database(
            sqlx::Error::PoolClosed
        )));
        assert!(!store_unavailable(&StoreError::Corrupt("x".into())));
    }
}
