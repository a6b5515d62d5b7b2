//! The body shared by both stores. `job_store!(Store, Database)` implements the write side
//! (`PersistedEventRepository`) and the read side (`JobQueries`) for a store struct that has
//! `pool` and `delegate` fields and an `exclusive_writer` method. The SQL is written once: `$N` placeholders and
//! `ON CONFLICT` upserts mean the same text on PostgreSQL and SQLite.

/// Appends one event; the store's own columns (position, transaction id) take defaults.
pub(super) const INSERT_EVENT: &str = "INSERT INTO events \
     (aggregate_type, aggregate_id, sequence, event_type, event_version, payload, metadata, recorded_at) \
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8)";

/// The projection tables a write goes to: the live ones, or the ones a rebuild fills.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProjectionTables {
    pub summary: &'static str,
    pub history: &'static str,
}

impl ProjectionTables {
    pub const LIVE: ProjectionTables = ProjectionTables {
        summary: "job_summary",
        history: "job_status_history",
    };
    pub const REBUILD: ProjectionTables = ProjectionTables {
        summary: "rebuild_job_summary",
        history: "rebuild_job_status_history",
    };
    /// The live tables a SQLite swap has just replaced, until they are dropped after its
    /// commit: freeing their pages takes a while, and need not hold writers back.
    pub const REPLACED: ProjectionTables = ProjectionTables {
        summary: "replaced_job_summary",
        history: "replaced_job_status_history",
    };

    /// Both tables' names.
    pub fn names(self) -> [&'static str; 2] {
        [self.summary, self.history]
    }

    /// Each live table with the rebuild table that takes its place.
    pub fn live_and_rebuild() -> [(&'static str, &'static str); 2] {
        let (live, rebuild) = (Self::LIVE, Self::REBUILD);
        [
            (live.summary, rebuild.summary),
            (live.history, rebuild.history),
        ]
    }
}

/// One job event on its way into the projection, read and parsed.
pub(crate) struct EventRow<'a> {
    pub job_id: &'a str,
    pub sequence: i64,
    pub event: domain::JobEvent,
    pub metadata: crate::metadata::EventMetadata,
}

/// Rows per multi-row statement: well below SQLite's 32766 bound parameters at ten columns.
pub(super) const ROWS_PER_STATEMENT: usize = 500;

pub(super) const SUMMARY_COLUMNS: &str = "(job_id, customer_id, status, type_id, contact_id, \
     reference, created_at, updated_at, version, document)";

pub(super) const SUMMARY_UPSERT: &str = " ON CONFLICT (job_id) DO UPDATE SET \
     customer_id = excluded.customer_id, status = excluded.status, type_id = excluded.type_id, \
     contact_id = excluded.contact_id, reference = excluded.reference, \
     created_at = excluded.created_at, updated_at = excluded.updated_at, \
     version = excluded.version, document = excluded.document";

pub(super) const SELECT_JOB: &str =
    "SELECT document FROM job_summary WHERE job_id = $1 AND customer_id = $2";

pub(super) const SELECT_EVENTS_PAGE: &str =
    "SELECT sequence, event_type, event_version, recorded_at, payload, metadata \
     FROM events WHERE aggregate_type = $1 AND aggregate_id = $2 \
     ORDER BY sequence LIMIT $3 OFFSET $4";

/// The payload of a stored event without cqrs-es's `{"EventType": …}` wrapper.
pub(crate) fn unwrap_payload(payload: serde_json::Value, event_type: &str) -> serde_json::Value {
    match payload {
        serde_json::Value::Object(mut map) if map.len() == 1 && map.contains_key(event_type) => {
            map.remove(event_type).unwrap_or_default()
        }
        other => other,
    }
}

/// Where a fold finds and keeps the summaries it works on: a plain map for one command, the
/// rebuild's bounded cache for a replay.
pub(crate) trait ViewSlots {
    /// Whether the job's summary (or its absence) is already held.
    fn holds(&self, job_id: &str) -> bool;
    /// The job's summary, held from now on (`None` until its creation is folded).
    fn slot(&mut self, job_id: &str) -> &mut Option<crate::view::JobView>;
}

impl ViewSlots for std::collections::HashMap<String, Option<crate::view::JobView>> {
    fn holds(&self, job_id: &str) -> bool {
        self.contains_key(job_id)
    }

    fn slot(&mut self, job_id: &str) -> &mut Option<crate::view::JobView> {
        self.entry(job_id.to_owned()).or_default()
    }
}

/// The jobs of `events` that `views` does not hold yet, each once, in order of appearance.
pub(crate) fn unseen_jobs<'e>(views: &impl ViewSlots, events: &[EventRow<'e>]) -> Vec<&'e str> {
    let mut seen = std::collections::HashSet::new();
    events
        .iter()
        .map(|event| event.job_id)
        .filter(|id| !views.holds(id) && seen.insert(*id))
        .collect()
}

/// Folds `events` into `views` (a job not held yet starts with no summary) and returns the
/// status-history rows they add: the one fold of the write path, the rebuild and `verify`.
pub(crate) fn fold_events<'e>(
    views: &mut impl ViewSlots,
    events: &[EventRow<'e>],
) -> Result<Vec<(&'e str, crate::view::StatusHistoryEntry)>, super::StoreError> {
    let mut history = Vec::new();
    for event in events {
        let job_id = uuid::Uuid::parse_str(event.job_id).map_err(|e| {
            super::StoreError::Corrupt(format!("job id {:?} is not a UUID: {e}", event.job_id))
        })?;
        let view = views.slot(event.job_id);
        if let Some(entry) =
            crate::view::apply_event(view, job_id, event.sequence, &event.event, &event.metadata)
        {
            history.push((event.job_id, entry));
        }
    }
    Ok(history)
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
                    let rows = events
                        .iter()
                        .map(|event| {
                            Ok(super::shared::EventRow {
                                job_id: &event.aggregate_id,
                                sequence: event.sequence as i64,
                                event: serde::Deserialize::deserialize(&event.payload)?,
                                metadata: $crate::metadata::EventMetadata::from_json(
                                    &event.metadata,
                                ),
                            })
                        })
                        .collect::<Result<Vec<_>, serde_json::Error>>()?;
                    Self::project_into(&mut tx, super::shared::ProjectionTables::LIVE, &rows)
                        .await
                        .map_err(super::store_to_persistence_error)?;
                }
                tx.commit().await.map_err(error)
            }

            /// Applies job events to the projection `tables`: folds each job's summary from
            /// its current row, adds a status-history row per status change, and writes each
            /// touched summary once. Events the projection has already seen change nothing,
            /// so applying a batch twice is harmless. The live write path and a rebuild's
            /// final catch-up share this, so both derive identical rows.
            pub(crate) async fn project_into(
                conn: &mut <$db as sqlx::Database>::Connection,
                tables: super::shared::ProjectionTables,
                events: &[super::shared::EventRow<'_>],
            ) -> Result<(), $crate::store::StoreError> {
                let mut views: std::collections::HashMap<String, Option<$crate::view::JobView>> =
                    std::collections::HashMap::new();
                let ids = super::shared::unseen_jobs(&views, events);
                for view in Self::load_views(&mut *conn, tables, &ids).await? {
                    views.insert(view.id.to_string(), Some(view));
                }
                let history = super::shared::fold_events(&mut views, events)?;
                Self::insert_history(&mut *conn, tables, &history).await?;
                let summaries: Vec<&$crate::view::JobView> = views.values().flatten().collect();
                Self::upsert_summaries(conn, tables, &summaries).await
            }

            /// The summaries of the jobs `ids` that have a row in `tables`.
            pub(crate) async fn load_views(
                conn: &mut <$db as sqlx::Database>::Connection,
                tables: super::shared::ProjectionTables,
                ids: &[&str],
            ) -> Result<Vec<$crate::view::JobView>, $crate::store::StoreError> {
                let mut views = Vec::with_capacity(ids.len());
                for ids in ids.chunks(super::shared::ROWS_PER_STATEMENT) {
                    let mut query = sqlx::QueryBuilder::<$db>::new(format!(
                        "SELECT document FROM {} WHERE job_id IN (",
                        tables.summary
                    ));
                    let mut list = query.separated(", ");
                    for id in ids {
                        list.push_bind(*id);
                    }
                    list.push_unseparated(")");
                    let rows: Vec<sqlx::types::Json<$crate::view::JobView>> =
                        query.build_query_scalar().fetch_all(&mut *conn).await?;
                    views.extend(rows.into_iter().map(|json| json.0));
                }
                Ok(views)
            }

            /// Adds status-history rows (ones already there are kept as they are).
            pub(crate) async fn insert_history(
                conn: &mut <$db as sqlx::Database>::Connection,
                tables: super::shared::ProjectionTables,
                history: &[(&str, $crate::view::StatusHistoryEntry)],
            ) -> Result<(), $crate::store::StoreError> {
                for rows in history.chunks(super::shared::ROWS_PER_STATEMENT) {
                    let mut query = sqlx::QueryBuilder::<$db>::new(format!(
                        "INSERT INTO {} (job_id, sequence, status, occurred_at, comment, actor) ",
                        tables.history
                    ));
                    query.push_values(rows, |mut row, (job_id, entry)| {
                        row.push_bind(*job_id)
                            .push_bind(entry.sequence)
                            .push_bind(entry.status.as_str())
                            .push_bind(entry.occurred_at)
                            .push_bind(entry.comment.as_deref())
                            .push_bind(entry.actor.as_str());
                    });
                    query.push(" ON CONFLICT (job_id, sequence) DO NOTHING");
                    query.build().execute(&mut *conn).await?;
                }
                Ok(())
            }

            /// Writes summaries, replacing the rows of the same jobs.
            pub(crate) async fn upsert_summaries(
                conn: &mut <$db as sqlx::Database>::Connection,
                tables: super::shared::ProjectionTables,
                summaries: &[&$crate::view::JobView],
            ) -> Result<(), $crate::store::StoreError> {
                for rows in summaries.chunks(super::shared::ROWS_PER_STATEMENT) {
                    let mut query = sqlx::QueryBuilder::<$db>::new(format!(
                        "INSERT INTO {} {} ",
                        tables.summary,
                        super::shared::SUMMARY_COLUMNS
                    ));
                    query.push_values(rows, |mut row, view| {
                        row.push_bind(view.id.to_string())
                            .push_bind(view.customer_id)
                            .push_bind(view.status.as_str())
                            .push_bind(view.type_id)
                            .push_bind(view.contact_id)
                            .push_bind(view.reference.as_deref())
                            .push_bind(view.created_at)
                            .push_bind(view.updated_at)
                            .push_bind(view.version)
                            .push_bind(sqlx::types::Json(*view));
                    });
                    query.push(super::shared::SUMMARY_UPSERT);
                    query.build().execute(&mut *conn).await?;
                }
                Ok(())
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
