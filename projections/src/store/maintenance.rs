//! The body of the global-log reader, rebuild and verify, shared by both stores.
//! `store_maintenance!(Store, Database)` implements [`EventLog`](crate::log::EventLog),
//! [`ProjectionRebuild`](crate::rebuild::ProjectionRebuild) and
//! [`ProjectionCheck`](crate::verify::ProjectionCheck) for a store that provides, besides
//! `pool` and `project_into` (from `job_store!`):
//!
//! - SQL: `READ_LOG` (final events after a cursor), `READ_COMMITTED` (every committed event
//!   after a cursor, for use while writers are held back), both run by `read_log`;
//!   `LOG_END`, `HELD_BACK`, `CURSOR_AT`, and `TRANSACTION` (the expression of a row's
//!   writing transaction);
//! - transaction openers: `WRITE_BEGIN` (takes the write lock at once where that matters),
//!   `SNAPSHOT_BEGIN` and `SNAPSHOT_FIRST` (one consistent snapshot for several reads);
//! - `rebuild_lease`, `create_rebuild_tables`, `add_missing_indexes`, `hold_back_writers`,
//!   `replace_live_tables`, `relax_durability`, `relax_transaction`, `rebuild_batch_written`
//!   and the bulk writes `bulk_insert_history` and `bulk_insert_summaries`, where the
//!   backends' DDL, locking and fastest writes differ.

/// The event columns every log query selects after the transaction expression.
pub(super) const EVENT_COLUMNS: &str = "position, aggregate_type, aggregate_id, sequence, \
     event_type, event_version, recorded_at, CAST(payload AS TEXT) AS payload, \
     CAST(metadata AS TEXT) AS metadata";

/// The job events among logged events, parsed, as `project_into` takes them.
pub(crate) fn job_rows(
    events: &[crate::log::LoggedEvent],
) -> Result<Vec<super::shared::EventRow<'_>>, super::StoreError> {
    Ok(pair_job_events(events, parse_job_events(events)?))
}

/// The first half of `job_rows`: the job events among `events`, parsed. Separate from the
/// second so that a rebuild can parse one batch while it folds another.
pub(crate) fn parse_job_events(
    events: &[crate::log::LoggedEvent],
) -> Result<Vec<ParsedJobEvent>, super::StoreError> {
    job_events(events)
        .map(|event| Ok((event.job_event()?, event.who())))
        .collect()
}

/// A job event and its metadata, parsed from a logged event's text.
pub(crate) type ParsedJobEvent = (domain::JobEvent, crate::metadata::EventMetadata);

/// The second half of `job_rows`: each of `parsed` (made from `events`) with its event's
/// job and sequence.
pub(crate) fn pair_job_events(
    events: &[crate::log::LoggedEvent],
    parsed: Vec<ParsedJobEvent>,
) -> Vec<super::shared::EventRow<'_>> {
    debug_assert_eq!(job_events(events).count(), parsed.len());
    job_events(events)
        .zip(parsed)
        .map(|(event, (job_event, metadata))| super::shared::EventRow {
            job_id: &event.aggregate_id,
            sequence: event.sequence,
            event: job_event,
            metadata,
        })
        .collect()
}

fn job_events(
    events: &[crate::log::LoggedEvent],
) -> impl Iterator<Item = &crate::log::LoggedEvent> {
    events
        .iter()
        .filter(|event| event.aggregate_type == domain::AGGREGATE_TYPE)
}

/// A pooled connection a rebuild's write relaxes (see `relax_durability`): unless it was
/// restored, it is closed when dropped rather than returned to the pool, so nothing else
/// gets it relaxed — not after a failed restore, nor after a write task aborted midway.
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

macro_rules! store_maintenance {
    ($store:ty, $db:ty) => {
        impl $store {
            /// Drops `tables` where they exist.
            async fn drop_tables(
                &self,
                tables: super::shared::ProjectionTables,
            ) -> Result<(), $crate::store::StoreError> {
                for table in tables.names() {
                    sqlx::query(&format!("DROP TABLE IF EXISTS {table}"))
                        .execute(&self.pool)
                        .await?;
                }
                Ok(())
            }

            fn decode_events(
                rows: Vec<<$db as sqlx::Database>::Row>,
            ) -> Result<Vec<$crate::log::LoggedEvent>, sqlx::Error> {
                rows.into_iter()
                    .map(|row| $crate::log::logged_event!(row))
                    .collect()
            }

            /// Applies every committed event after `after` to the rebuild tables, on `conn`:
            /// the last stretch of a rebuild, run while writers are held back.
            async fn catch_up_rebuild(
                conn: &mut <$db as sqlx::Database>::Connection,
                mut after: $crate::log::LogCursor,
            ) -> Result<u64, $crate::store::StoreError> {
                let everything = $crate::log::LogFilter::default();
                let batch = $crate::rebuild::REBUILD_BATCH;
                let mut applied = 0;
                loop {
                    let events =
                        Self::read_log(&mut *conn, Self::READ_COMMITTED, after, &everything, batch)
                            .await?;
                    let Some(last) = events.last() else {
                        return Ok(applied);
                    };
                    after = last.cursor;
                    applied += events.len() as u64;
                    let rows = super::maintenance::job_rows(&events)?;
                    Self::project_into(conn, super::shared::ProjectionTables::REBUILD, &rows)
                        .await?;
                }
            }
        }

        #[async_trait::async_trait]
        impl $crate::log::EventLog for $store {
            async fn read_after(
                &self,
                after: $crate::log::LogCursor,
                filter: &$crate::log::LogFilter,
                limit: i64,
            ) -> Result<Vec<$crate::log::LoggedEvent>, $crate::store::StoreError> {
                let mut connection = self.pool.acquire().await?;
                Self::read_log(&mut connection, Self::READ_LOG, after, filter, limit).await
            }

            async fn log_end(&self) -> Result<i64, $crate::store::StoreError> {
                Ok(sqlx::query_scalar(Self::LOG_END)
                    .fetch_one(&self.pool)
                    .await?)
            }

            async fn held_back(
                &self,
                after: $crate::log::LogCursor,
                filter: &$crate::log::LogFilter,
                end: i64,
            ) -> Result<i64, $crate::store::StoreError> {
                Ok(sqlx::query_scalar(Self::HELD_BACK)
                    .bind(after.transaction)
                    .bind(after.position)
                    .bind(filter.customer_id.map(|id| id.to_string()))
                    .bind(end)
                    .fetch_one(&self.pool)
                    .await?)
            }

            async fn cursor_after(
                &self,
                position: i64,
            ) -> Result<Option<($crate::log::LogCursor, bool)>, $crate::store::StoreError> {
                let found: Option<(i64, i64, bool)> = sqlx::query_as(Self::CURSOR_AT)
                    .bind(position)
                    .fetch_optional(&self.pool)
                    .await?;
                Ok(found.map(|(transaction, position, is_final)| {
                    let cursor = $crate::log::LogCursor {
                        transaction,
                        position,
                    };
                    (cursor, is_final)
                }))
            }

            async fn aggregate_events(
                &self,
                aggregate_type: &str,
                aggregate_id: &str,
            ) -> Result<Vec<$crate::log::LoggedEvent>, $crate::store::StoreError> {
                let sql = format!(
                    "SELECT {} AS \"transaction\", {} FROM events \
                     WHERE aggregate_type = $1 AND aggregate_id = $2 ORDER BY sequence",
                    Self::TRANSACTION,
                    super::maintenance::EVENT_COLUMNS
                );
                let rows = sqlx::query(&sql)
                    .bind(aggregate_type)
                    .bind(aggregate_id)
                    .fetch_all(&self.pool)
                    .await?;
                Ok(Self::decode_events(rows)?)
            }

            async fn event_count(&self) -> Result<i64, $crate::store::StoreError> {
                Ok(sqlx::query_scalar("SELECT count(*) FROM events")
                    .fetch_one(&self.pool)
                    .await?)
            }
        }

        #[async_trait::async_trait]
        impl $crate::rebuild::ProjectionRebuild for $store {
            async fn begin_rebuild(
                &self,
            ) -> Result<$crate::rebuild::RebuildLease, $crate::store::StoreError> {
                let lease = self.rebuild_lease().await?;
                self.discard_rebuild().await?;
                self.create_rebuild_tables().await?;
                Ok(lease)
            }

            async fn load_rebuild_views(
                &self,
                ids: &[&str],
            ) -> Result<Vec<$crate::view::JobView>, $crate::store::StoreError> {
                if ids.is_empty() {
                    return Ok(Vec::new());
                }
                let mut connection = self.pool.acquire().await?;
                let tables = super::shared::ProjectionTables::REBUILD;
                Self::load_views(&mut connection, tables, ids).await
            }

            async fn write_rebuild(
                &self,
                history: &[(&str, $crate::view::StatusHistoryEntry)],
                new: &[$crate::rebuild::RebuiltSummary],
                changed: &[$crate::rebuild::RebuiltSummary],
            ) -> Result<(), $crate::store::StoreError> {
                let tables = super::shared::ProjectionTables::REBUILD;
                let mut relaxed =
                    super::maintenance::RelaxedConnection::new(self.pool.acquire().await?);
                let connection = &mut *relaxed.connection;
                Self::relax_durability(connection, true).await?;
                let written = async {
                    let mut tx =
                        sqlx::Connection::begin_with(&mut *connection, Self::WRITE_BEGIN).await?;
                    Self::relax_transaction(&mut tx).await?;
                    Self::bulk_insert_history(&mut tx, tables, history).await?;
                    Self::bulk_insert_summaries(&mut tx, tables, new).await?;
                    let changed: Vec<&$crate::view::JobView> =
                        changed.iter().map(|row| &row.view).collect();
                    Self::upsert_summaries(&mut tx, tables, &changed).await?;
                    tx.commit().await?;
                    Ok::<_, $crate::store::StoreError>(())
                }
                .await;
                // Back to full durability before the connection serves anything else,
                // whether or not the write went through.
                Self::relax_durability(connection, false).await?;
                relaxed.restored = true;
                written?;
                self.rebuild_batch_written();
                Ok(())
            }

            async fn index_rebuild_tables(&self) -> Result<(), $crate::store::StoreError> {
                self.add_missing_indexes().await
            }

            async fn swap_in_rebuild(
                &self,
                after: $crate::log::LogCursor,
            ) -> Result<u64, $crate::store::StoreError> {
                let mut tx = self.pool.begin_with(Self::WRITE_BEGIN).await?;
                Self::hold_back_writers(&mut tx).await?;
                let applied = Self::catch_up_rebuild(&mut tx, after).await?;
                Self::replace_live_tables(&mut tx).await?;
                tx.commit().await?;
                // In a transaction of its own. Should it fail, the swap has still happened,
                // and the next rebuild drops the leftovers first.
                let _ = self
                    .drop_tables(super::shared::ProjectionTables::REPLACED)
                    .await;
                Ok(applied)
            }

            async fn discard_rebuild(&self) -> Result<(), $crate::store::StoreError> {
                self.drop_tables(super::shared::ProjectionTables::REBUILD)
                    .await?;
                self.drop_tables(super::shared::ProjectionTables::REPLACED)
                    .await
            }
        }

        #[async_trait::async_trait]
        impl $crate::verify::ProjectionCheck for $store {
            async fn verify_group(
                &self,
                after: &str,
                jobs: i64,
            ) -> Result<$crate::verify::VerifyGroup, $crate::store::StoreError> {
                use sqlx::Row;
                let ids: Vec<String> = sqlx::query_scalar(
                    "SELECT DISTINCT aggregate_id FROM events \
                     WHERE aggregate_type = $1 AND aggregate_id > $2 \
                     ORDER BY aggregate_id LIMIT $3",
                )
                .bind(domain::AGGREGATE_TYPE)
                .bind(after)
                .bind(jobs)
                .fetch_all(&self.pool)
                .await?;
                let last_id = ids.last().filter(|_| ids.len() as i64 == jobs).cloned();

                let mut tx = self.pool.begin_with(Self::SNAPSHOT_BEGIN).await?;
                sqlx::query(Self::SNAPSHOT_FIRST).execute(&mut *tx).await?;
                let events_sql = format!(
                    "SELECT {} AS \"transaction\", {} FROM events \
                     WHERE aggregate_type = $1 AND aggregate_id > $2 \
                     AND (CAST($3 AS TEXT) IS NULL OR aggregate_id <= $3) \
                     ORDER BY aggregate_id, sequence",
                    Self::TRANSACTION,
                    super::maintenance::EVENT_COLUMNS
                );
                let rows = sqlx::query(&events_sql)
                    .bind(domain::AGGREGATE_TYPE)
                    .bind(after)
                    .bind(&last_id)
                    .fetch_all(&mut *tx)
                    .await?;
                let events = Self::decode_events(rows)?;

                let rows = sqlx::query(
                    "SELECT job_id, customer_id, status, type_id, contact_id, reference, \
                     created_at, updated_at, version, document FROM job_summary \
                     WHERE job_id > $1 AND (CAST($2 AS TEXT) IS NULL OR job_id <= $2)",
                )
                .bind(after)
                .bind(&last_id)
                .fetch_all(&mut *tx)
                .await?;
                let mut summaries = Vec::with_capacity(rows.len());
                for row in rows {
                    summaries.push($crate::verify::SummaryRow {
                        job_id: row.try_get("job_id")?,
                        customer_id: row.try_get("customer_id")?,
                        status: row.try_get("status")?,
                        type_id: row.try_get("type_id")?,
                        contact_id: row.try_get("contact_id")?,
                        reference: row.try_get("reference")?,
                        created_at: row.try_get("created_at")?,
                        updated_at: row.try_get("updated_at")?,
                        version: row.try_get("version")?,
                        document: row.try_get("document")?,
                    });
                }

                let rows = sqlx::query(
                    "SELECT job_id, sequence, status, occurred_at, comment, actor \
                     FROM job_status_history \
                     WHERE job_id > $1 AND (CAST($2 AS TEXT) IS NULL OR job_id <= $2)",
                )
                .bind(after)
                .bind(&last_id)
                .fetch_all(&mut *tx)
                .await?;
                let mut history = Vec::with_capacity(rows.len());
                for row in rows {
                    history.push($crate::verify::HistoryRow {
                        job_id: row.try_get("job_id")?,
                        sequence: row.try_get("sequence")?,
                        status: row.try_get("status")?,
                        occurred_at: row.try_get("occurred_at")?,
                        comment: row.try_get("comment")?,
                        actor: row.try_get("actor")?,
                    });
                }
                tx.commit().await?;
                Ok($crate::verify::VerifyGroup {
                    last_id,
                    events,
                    summaries,
                    history,
                })
            }
        }
    };
}
