//! The body shared by both stores. `job_store!(Store, Database)` implements the write side
//! (`PersistedEventRepository`) and the read side (`JobQueries`) for a store struct that has
//! `pool` and `delegate` fields and an `exclusive_writer` method. The SQL is written once: `$N` placeholders and
//! `ON CONFLICT` upserts mean the same text on PostgreSQL and SQLite.

/// Appends one event; the store's own columns (position, transaction id) take defaults.
pub(super) const INSERT_EVENT: &str = "INSERT INTO events \
     (aggregate_type, aggregate_id, sequence, event_type, event_version, payload, metadata, recorded_at) \
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8)";

pub(super) const SELECT_SUMMARY_DOCUMENT: &str =
    "SELECT document FROM job_summary WHERE job_id = $1";

pub(super) const UPSERT_SUMMARY: &str = "INSERT INTO job_summary \
     (job_id, customer_id, status, type_id, contact_id, reference, created_at, updated_at, version, document) \
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) \
     ON CONFLICT (job_id) DO UPDATE SET \
     customer_id = excluded.customer_id, status = excluded.status, type_id = excluded.type_id, \
     contact_id = excluded.contact_id, reference = excluded.reference, \
     created_at = excluded.created_at, updated_at = excluded.updated_at, \
     version = excluded.version, document = excluded.document";

pub(super) const INSERT_STATUS_HISTORY: &str = "INSERT INTO job_status_history \
     (job_id, sequence, status, occurred_at, comment, actor) VALUES ($1, $2, $3, $4, $5, $6) \
     ON CONFLICT (job_id, sequence) DO NOTHING";

pub(super) const SELECT_JOB: &str =
    "SELECT document FROM job_summary WHERE job_id = $1 AND customer_id = $2";

pub(super) const SELECT_EVENTS_PAGE: &str =
    "SELECT sequence, event_type, event_version, recorded_at, payload, metadata \
     FROM events WHERE aggregate_type = $1 AND aggregate_id = $2 \
     ORDER BY sequence LIMIT $3 OFFSET $4";

/// The payload of a stored event without cqrs-es's `{"EventType": …}` wrapper.
pub(super) fn unwrap_payload(payload: serde_json::Value, event_type: &str) -> serde_json::Value {
    match payload {
        serde_json::Value::Object(mut map) if map.len() == 1 && map.contains_key(event_type) => {
            map.remove(event_type).unwrap_or_default()
        }
        other => other,
    }
}

macro_rules! job_store {
    ($store:ty, $db:ty) => {
        impl $store {
            /// Appends a command's events and applies them to the projection, in one
            /// transaction: either the command happened and every read shows it, or neither.
            async fn append_and_project(
                &self,
                events: &[cqrs_es::persist::SerializedEvent],
            ) -> Result<(), cqrs_es::persist::PersistenceError> {
                use cqrs_es::persist::PersistenceError;
                let Some(first) = events.first() else {
                    return Ok(());
                };
                let error = super::persistence_error;
                let _writer = self.exclusive_writer().await;
                let mut tx = self.pool.begin().await.map_err(error)?;
                // Events first: on SQLite this takes the write lock before any read, so two
                // writers queue on the busy timeout instead of deadlocking on an upgrade.
                let recorded_at = domain::now();
                for event in events {
                    sqlx::query(super::shared::INSERT_EVENT)
                        .bind(&event.aggregate_type)
                        .bind(&event.aggregate_id)
                        .bind(event.sequence as i64)
                        .bind(&event.event_type)
                        .bind(&event.event_version)
                        .bind(&event.payload)
                        .bind(&event.metadata)
                        .bind(recorded_at)
                        .execute(&mut *tx)
                        .await
                        .map_err(error)?;
                }
                if first.aggregate_type == domain::AGGREGATE_TYPE {
                    let job_id = uuid::Uuid::parse_str(&first.aggregate_id)
                        .map_err(|e| PersistenceError::UnknownError(Box::new(e)))?;
                    let current: Option<sqlx::types::Json<$crate::view::JobView>> =
                        sqlx::query_scalar(super::shared::SELECT_SUMMARY_DOCUMENT)
                            .bind(&first.aggregate_id)
                            .fetch_optional(&mut *tx)
                            .await
                            .map_err(error)?;
                    let mut view = current.map(|json| json.0);
                    for event in events {
                        let payload: domain::JobEvent =
                            serde_json::from_value(event.payload.clone())?;
                        let metadata = $crate::metadata::EventMetadata::from_json(&event.metadata);
                        let sequence = event.sequence as i64;
                        let already_seen = view.as_ref().is_some_and(|v| sequence <= v.version);
                        view = $crate::view::project(view, job_id, sequence, &payload, &metadata);
                        if already_seen {
                            continue;
                        }
                        if let Some(entry) =
                            $crate::view::status_entry(&payload, sequence, &metadata)
                        {
                            sqlx::query(super::shared::INSERT_STATUS_HISTORY)
                                .bind(&first.aggregate_id)
                                .bind(entry.sequence)
                                .bind(entry.status.as_str())
                                .bind(entry.occurred_at)
                                .bind(&entry.comment)
                                .bind(&entry.actor)
                                .execute(&mut *tx)
                                .await
                                .map_err(error)?;
                        }
                    }
                    if let Some(view) = view {
                        sqlx::query(super::shared::UPSERT_SUMMARY)
                            .bind(view.id.to_string())
                            .bind(view.customer_id)
                            .bind(view.status.as_str())
                            .bind(view.type_id)
                            .bind(view.contact_id)
                            .bind(&view.reference)
                            .bind(view.created_at)
                            .bind(view.updated_at)
                            .bind(view.version)
                            .bind(sqlx::types::Json(&view))
                            .execute(&mut *tx)
                            .await
                            .map_err(error)?;
                    }
                }
                tx.commit().await.map_err(error)
            }
        }

        impl cqrs_es::persist::PersistedEventRepository for $store {
            async fn get_events<A: cqrs_es::Aggregate>(
                &self,
                aggregate_id: &str,
            ) -> Result<Vec<cqrs_es::persist::SerializedEvent>, cqrs_es::persist::PersistenceError>
            {
                self.delegate.get_events::<A>(aggregate_id).await
            }

            async fn get_last_events<A: cqrs_es::Aggregate>(
                &self,
                aggregate_id: &str,
                last_sequence: usize,
            ) -> Result<Vec<cqrs_es::persist::SerializedEvent>, cqrs_es::persist::PersistenceError>
            {
                self.delegate
                    .get_last_events::<A>(aggregate_id, last_sequence)
                    .await
            }

            async fn get_snapshot<A: cqrs_es::Aggregate>(
                &self,
                aggregate_id: &str,
            ) -> Result<Option<cqrs_es::persist::SerializedSnapshot>, cqrs_es::persist::PersistenceError>
            {
                self.delegate.get_snapshot::<A>(aggregate_id).await
            }

            /// Snapshots are not used (the service runs a pure event store), so only the
            /// events matter here.
            async fn persist<A: cqrs_es::Aggregate>(
                &self,
                events: &[cqrs_es::persist::SerializedEvent],
                _snapshot_update: Option<(String, serde_json::Value, usize)>,
            ) -> Result<(), cqrs_es::persist::PersistenceError> {
                self.append_and_project(events).await
            }

            async fn stream_events<A: cqrs_es::Aggregate>(
                &self,
                aggregate_id: &str,
            ) -> Result<cqrs_es::persist::ReplayStream, cqrs_es::persist::PersistenceError> {
                self.delegate.stream_events::<A>(aggregate_id).await
            }

            async fn stream_all_events<A: cqrs_es::Aggregate>(
                &self,
            ) -> Result<cqrs_es::persist::ReplayStream, cqrs_es::persist::PersistenceError> {
                self.delegate.stream_all_events::<A>().await
            }
        }

        #[async_trait::async_trait]
        impl $crate::store::JobQueries for $store {
            async fn job(
                &self,
                customer_id: i64,
                job_id: uuid::Uuid,
            ) -> Result<Option<$crate::view::JobView>, $crate::store::StoreError> {
                let document: Option<sqlx::types::Json<$crate::view::JobView>> =
                    sqlx::query_scalar(super::shared::SELECT_JOB)
                        .bind(job_id.to_string())
                        .bind(customer_id)
                        .fetch_optional(&self.pool)
                        .await?;
                Ok(document.map(|json| json.0))
            }

            async fn list_jobs(
                &self,
                customer_id: i64,
                filter: &$crate::paging::JobFilter,
                page: $crate::paging::PageRequest,
            ) -> Result<$crate::paging::Page<$crate::view::JobView>, $crate::store::StoreError>
            {
                let mut query = sqlx::QueryBuilder::<$db>::new(
                    "SELECT document FROM job_summary WHERE customer_id = ",
                );
                query.push_bind(customer_id);
                if !filter.statuses.is_empty() {
                    query.push(" AND status IN (");
                    let mut statuses = query.separated(", ");
                    for status in &filter.statuses {
                        statuses.push_bind(status.as_str());
                    }
                    query.push(")");
                }
                if let Some(type_id) = filter.type_id {
                    query.push(" AND type_id = ").push_bind(type_id);
                }
                if let Some(contact_id) = filter.contact_id {
                    query.push(" AND contact_id = ").push_bind(contact_id);
                }
                if let Some(reference) = &filter.reference {
                    query.push(" AND reference = ").push_bind(reference.clone());
                }
                if let Some(from) = filter.created_from {
                    query.push(" AND created_at >= ").push_bind(from);
                }
                if let Some(to) = filter.created_to {
                    query.push(" AND created_at < ").push_bind(to);
                }
                let column = filter.sort.column();
                let direction = filter.direction.sql();
                query.push(format!(
                    " ORDER BY {column} {direction}, job_id {direction} LIMIT "
                ));
                query.push_bind(page.fetch_limit());
                query.push(" OFFSET ").push_bind(page.offset());
                let rows: Vec<sqlx::types::Json<$crate::view::JobView>> =
                    query.build_query_scalar().fetch_all(&self.pool).await?;
                Ok(page.into_page(rows.into_iter().map(|json| json.0).collect()))
            }

            async fn status_history(
                &self,
                customer_id: i64,
                job_id: uuid::Uuid,
                direction: $crate::paging::Direction,
                page: $crate::paging::PageRequest,
            ) -> Result<
                Option<$crate::paging::Page<$crate::view::StatusHistoryEntry>>,
                $crate::store::StoreError,
            > {
                use sqlx::Row;
                if self.job(customer_id, job_id).await?.is_none() {
                    return Ok(None);
                }
                let sql = format!(
                    "SELECT sequence, status, occurred_at, comment, actor FROM job_status_history \
                     WHERE job_id = $1 ORDER BY sequence {} LIMIT $2 OFFSET $3",
                    direction.sql()
                );
                let rows = sqlx::query(&sql)
                    .bind(job_id.to_string())
                    .bind(page.fetch_limit())
                    .bind(page.offset())
                    .fetch_all(&self.pool)
                    .await?;
                let mut entries = Vec::with_capacity(rows.len());
                for row in rows {
                    let status: String = row.try_get("status")?;
                    entries.push($crate::view::StatusHistoryEntry {
                        sequence: row.try_get("sequence")?,
                        status: domain::JobStatus::parse(&status).ok_or_else(|| {
                            $crate::store::StoreError::Corrupt(format!(
                                "unknown status {status:?} in job_status_history"
                            ))
                        })?,
                        occurred_at: row.try_get("occurred_at")?,
                        comment: row.try_get("comment")?,
                        actor: row.try_get("actor")?,
                    });
                }
                Ok(Some(page.into_page(entries)))
            }

            async fn events(
                &self,
                customer_id: i64,
                job_id: uuid::Uuid,
                page: $crate::paging::PageRequest,
            ) -> Result<
                Option<$crate::paging::Page<$crate::store::StoredEvent>>,
                $crate::store::StoreError,
            > {
                use sqlx::Row;
                if self.job(customer_id, job_id).await?.is_none() {
                    return Ok(None);
                }
                let rows = sqlx::query(super::shared::SELECT_EVENTS_PAGE)
                    .bind(domain::AGGREGATE_TYPE)
                    .bind(job_id.to_string())
                    .bind(page.fetch_limit())
                    .bind(page.offset())
                    .fetch_all(&self.pool)
                    .await?;
                let mut events = Vec::with_capacity(rows.len());
                for row in rows {
                    let event_type: String = row.try_get("event_type")?;
                    let payload: serde_json::Value = row.try_get("payload")?;
                    events.push($crate::store::StoredEvent {
                        sequence: row.try_get("sequence")?,
                        payload: super::shared::unwrap_payload(payload, &event_type),
                        event_type,
                        event_version: row.try_get("event_version")?,
                        recorded_at: row.try_get("recorded_at")?,
                        metadata: row.try_get("metadata")?,
                    });
                }
                Ok(Some(page.into_page(events)))
            }

            async fn ping(&self) -> Result<(), $crate::store::StoreError> {
                sqlx::query("SELECT 1").execute(&self.pool).await?;
                Ok(())
            }
        }
    };
}
