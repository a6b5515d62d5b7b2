//! The global log, rebuild and verify as the store implements them, generic over the
//! backend: the traits are defined by `log.rs`, `rebuild.rs` and `verify.rs`, which own the
//! logic; this is their database side.

use super::backend::{Backend, Store};
use super::rows::ProjectionTables;
use super::sql::{Connection, JobSql, LogSql};
use super::write::project_into;
use crate::error::StoreError;
use crate::log::{job_rows, EventLog, LogCursor, LogFilter, LoggedEvent, TransactionsAhead};
use crate::model::view::{JobView, StatusHistoryEntry, SummaryDocument};
use crate::rebuild::{ProjectionRebuild, RebuildLease, REBUILD_BATCH};
use crate::verify::{ProjectionCheck, VerifyGroup};
use async_trait::async_trait;

#[async_trait]
impl<B: Backend> EventLog for Store<B> {
    async fn transactions_ahead(&self) -> Result<Option<TransactionsAhead>, StoreError> {
        B::transactions_ahead(&self.pool).await
    }

    async fn repair_transaction_order(&self) -> Result<Option<TransactionsAhead>, StoreError> {
        B::repair_transaction_order(&self.pool).await
    }

    async fn read_after(
        &self,
        after: LogCursor,
        filter: &LogFilter,
        limit: i64,
    ) -> Result<Vec<LoggedEvent>, StoreError> {
        let mut connection = self.pool.acquire().await?;
        let sql = pick(filter, B::READ_LOG, B::READ_CUSTOMER_LOG);
        B::read_log(&mut connection, sql, after, filter, limit).await
    }

    async fn log_end(&self) -> Result<i64, StoreError> {
        B::Db::log_end(&self.pool, B::LOG_END).await
    }

    async fn held_back(
        &self,
        after: LogCursor,
        filter: &LogFilter,
        end: i64,
    ) -> Result<i64, StoreError> {
        let sql = pick(filter, B::HELD_BACK, B::CUSTOMER_HELD_BACK);
        B::Db::count_log(&self.pool, sql, after, filter, end).await
    }

    async fn head(&self) -> Result<LogCursor, StoreError> {
        B::Db::log_cursor(&self.pool, B::LOG_HEAD).await
    }

    async fn count_after(
        &self,
        after: LogCursor,
        filter: &LogFilter,
        cap: i64,
    ) -> Result<i64, StoreError> {
        let sql = pick(filter, B::COUNT_AFTER, B::CUSTOMER_COUNT_AFTER);
        B::Db::count_log(&self.pool, sql, after, filter, cap).await
    }

    async fn cursor_after(&self, position: i64) -> Result<Option<(LogCursor, bool)>, StoreError> {
        B::Db::cursor_at(&self.pool, B::CURSOR_AT, position).await
    }

    async fn aggregate_events(
        &self,
        aggregate_type: &str,
        aggregate_id: &str,
    ) -> Result<Vec<LoggedEvent>, StoreError> {
        // The whole history, whatever its size: `jobs-admin history` prints it all.
        let (after, limit, offset) = (0, i64::MAX, 0);
        let (events, _) = B::Db::aggregate_events(
            &self.pool,
            B::TRANSACTION,
            aggregate_type,
            aggregate_id,
            after,
            limit,
            offset,
            usize::MAX,
        )
        .await?;
        Ok(events)
    }

    async fn event_count(&self) -> Result<i64, StoreError> {
        B::Db::event_count(&self.pool).await
    }
}

/// The statement of a log query for the filter: every customer's, or one customer's.
fn pick(filter: &LogFilter, every: &'static str, one: &'static str) -> &'static str {
    if filter.customer_id.is_some() {
        one
    } else {
        every
    }
}

/// A pooled connection a rebuild's write relaxes (see `Backend::relax_durability`): unless
/// it was restored, it is closed when dropped rather than returned to the pool, so nothing
/// else gets it relaxed — not after a failed restore, nor after a write task aborted midway.
pub(super) struct RelaxedConnection<DB: sqlx::Database> {
    pub connection: sqlx::pool::PoolConnection<DB>,
    pub restored: bool,
}

impl<DB: sqlx::Database> RelaxedConnection<DB> {
    pub fn new(connection: sqlx::pool::PoolConnection<DB>) -> Self {
        RelaxedConnection {
            connection,
            restored: false,
        }
    }
}

impl<DB: sqlx::Database> Drop for RelaxedConnection<DB> {
    fn drop(&mut self) {
        if !self.restored {
            self.connection.close_on_drop();
        }
    }
}

impl<B: Backend> Store<B> {
    /// Applies every committed event after `after` to the rebuild tables, on `connection`:
    /// the last stretch of a rebuild, run while writers are held back.
    async fn catch_up_rebuild(
        connection: &mut Connection<B::Db>,
        mut after: LogCursor,
    ) -> Result<u64, StoreError> {
        let everything = LogFilter::default();
        let mut applied = 0;
        loop {
            let events = B::read_log(
                &mut *connection,
                B::READ_COMMITTED,
                after,
                &everything,
                REBUILD_BATCH,
            )
            .await?;
            let Some(last) = events.last() else {
                return Ok(applied);
            };
            after = last.cursor;
            applied += events.len() as u64;
            let rows = job_rows(&events)?;
            project_into::<B::Db>(
                &mut *connection,
                ProjectionTables::REBUILD,
                &rows,
                &Default::default(),
            )
            .await?;
        }
    }
}

#[async_trait]
impl<B: Backend> ProjectionRebuild for Store<B> {
    async fn begin_rebuild(&self) -> Result<RebuildLease, StoreError> {
        let lease = self.backend.rebuild_lease(&self.pool).await?;
        self.discard_rebuild().await?;
        B::create_rebuild_tables(&self.pool).await?;
        Ok(lease)
    }

    async fn load_rebuild_views(&self, ids: &[&str]) -> Result<Vec<JobView>, StoreError> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let mut connection = self.pool.acquire().await?;
        B::Db::load_views(&mut connection, ProjectionTables::REBUILD, ids).await
    }

    async fn write_rebuild(
        &self,
        history: &[(&str, StatusHistoryEntry)],
        new: &[SummaryDocument],
        changed: &[SummaryDocument],
    ) -> Result<(), StoreError> {
        let tables = ProjectionTables::REBUILD;
        let mut relaxed = RelaxedConnection::new(self.pool.acquire().await?);
        let connection = &mut *relaxed.connection;
        B::relax_durability(connection, true).await?;
        let written = async {
            let mut tx = sqlx::Connection::begin_with(&mut *connection, B::WRITE_BEGIN).await?;
            B::relax_transaction(&mut tx).await?;
            B::bulk_insert_history(&mut tx, tables, history).await?;
            B::bulk_insert_summaries(&mut tx, tables, new).await?;
            B::Db::upsert_summaries(&mut tx, tables, changed).await?;
            tx.commit().await?;
            Ok::<_, StoreError>(())
        }
        .await;
        // Back to full durability before the connection serves anything else, whether or
        // not the write went through.
        B::relax_durability(connection, false).await?;
        relaxed.restored = true;
        written?;
        self.backend.rebuild_batch_written(&self.pool);
        Ok(())
    }

    async fn index_rebuild_tables(&self) -> Result<(), StoreError> {
        B::add_missing_indexes(&self.pool).await
    }

    async fn swap_in_rebuild(&self, after: LogCursor) -> Result<u64, StoreError> {
        let mut tx = self.pool.begin_with(B::WRITE_BEGIN).await?;
        B::hold_back_writers(&mut tx).await?;
        let applied = Self::catch_up_rebuild(&mut tx, after).await?;
        B::replace_live_tables(&mut tx).await?;
        tx.commit().await?;
        // In a transaction of its own. Should it fail, the swap has still happened, and the
        // next rebuild drops the leftovers first.
        let _ = B::Db::drop_tables(&self.pool, ProjectionTables::REPLACED).await;
        Ok(applied)
    }

    async fn discard_rebuild(&self) -> Result<(), StoreError> {
        B::Db::drop_tables(&self.pool, ProjectionTables::REBUILD).await?;
        B::Db::drop_tables(&self.pool, ProjectionTables::REPLACED).await
    }
}

#[async_trait]
impl<B: Backend> ProjectionCheck for Store<B> {
    async fn verify_group(&self, after: &str, jobs: i64) -> Result<VerifyGroup, StoreError> {
        let (begin, first) = (B::SNAPSHOT_BEGIN, B::SNAPSHOT_FIRST);
        B::Db::verify_group(&self.pool, begin, first, B::TRANSACTION, after, jobs).await
    }
}
