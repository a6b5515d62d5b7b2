//! The read side and the client registry (its writes too, which queue like the write
//! path's), generic over the backend: each lookup is one of the shared statements in
//! `sql/`, scoped to the caller's customer. Lookups of one job by id — every GET of a job
//! and every command's 404 check — arriving together share one query.

use super::backend::{Backend, CrateOnly, QueryGuard, Store};
use super::clients::{ClientRecord, ClientRegistry};
use super::group::GroupQueue;
use super::queries::{JobQueries, StoredEvent};
use super::rows::ProjectionTables;
use super::sql::{ClientSql, JobSql, LogSql};
use crate::error::StoreError;
use crate::model::paging::{Direction, JobFilter, JobKey, Page, PageRequest, SequencePage};
use crate::model::view::{JobView, StatusHistoryEntry};
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use tokio::sync::oneshot;
use uuid::Uuid;

/// A job lookup waiting for its group, and where its answer goes.
pub(super) struct Lookup {
    customer_id: i64,
    job_id: Uuid,
    answer: oneshot::Sender<Result<Option<JobView>, StoreError>>,
}

/// Grouped lookups' queue: one group at a time. A group's query costs little more for 200
/// jobs than for one, so a single worker, whose groups grow while it queries, serves more
/// lookups than several with small groups: with 32 clients reading on two cores, one
/// worker answered 18–19k reads/s (p99 4–5 ms) on PostgreSQL, where two answered 14–17k and
/// four 13k (p99 7 ms); on SQLite 19k against 16k.
pub(super) fn lookup_queue() -> GroupQueue<Lookup> {
    GroupQueue::new(1, 256)
}

impl<B: Backend> Store<B> {
    /// The summaries of the jobs `ids` (those that have one).
    async fn load_views(&self, ids: &[&str]) -> Result<Vec<JobView>, StoreError> {
        let mut connection = self.connections.take(&self.pool).await?;
        let views = B::Db::load_views(&mut connection, ProjectionTables::LIVE, ids).await?;
        self.connections.keep(connection);
        Ok(views)
    }

    /// Answers a group of lookups with one query for the jobs they name; each sees its job
    /// only if it is its customer's.
    async fn look_up_group(&self, group: Vec<Lookup>) {
        let job_ids: Vec<Uuid> = group
            .iter()
            .map(|lookup| lookup.job_id)
            .collect::<HashSet<_>>()
            .into_iter()
            .collect();
        let found = self.find_views(&job_ids).await;
        for lookup in group {
            let view = match found.get(&lookup.job_id) {
                Some(Ok(view)) => Ok(view
                    .as_ref()
                    .filter(|view| view.customer_id == lookup.customer_id)
                    .cloned()),
                Some(Err(error)) => Err(StoreError::Shared(error.clone())),
                None => Ok(None), // not reached: every job asked for has its entry
            };
            let _ = lookup.answer.send(view);
        }
    }

    /// For each of the jobs `job_ids`, its summary (if it has one) or the error reading it:
    /// one query for all of them — or, should a summary not read, one per job, so that it
    /// fails only the lookups of its own job.
    async fn find_views(&self, job_ids: &[Uuid]) -> HashMap<Uuid, ViewOrError> {
        let ids: Vec<String> = job_ids.iter().map(Uuid::to_string).collect();
        let ids: Vec<&str> = ids.iter().map(String::as_str).collect();
        match self.load_views(&ids).await {
            Ok(views) => {
                let mut views: HashMap<Uuid, JobView> =
                    views.into_iter().map(|view| (view.id, view)).collect();
                job_ids
                    .iter()
                    .map(|job_id| (*job_id, Ok(views.remove(job_id))))
                    .collect()
            }
            Err(error) if error.is_unavailable() || ids.len() == 1 => {
                let error = Arc::new(error);
                job_ids
                    .iter()
                    .map(|job_id| (*job_id, Err(error.clone())))
                    .collect()
            }
            Err(_) => {
                let mut per_job = HashMap::new();
                for (job_id, id) in job_ids.iter().zip(&ids) {
                    let found = self.load_views(&[id]).await;
                    let view = found
                        .map(|views| views.into_iter().next())
                        .map_err(Arc::new);
                    per_job.insert(*job_id, view);
                }
                per_job
            }
        }
    }
}

/// A job's summary as a group's lookup found it: none, one, or the error reading it
/// (shared by every lookup of that job).
type ViewOrError = Result<Option<JobView>, Arc<StoreError>>;

/// A pooled connection running a query whose caller may stop waiting for it (a timeout, or
/// its request went away, dropping this). Unfinished when dropped, its stop runs first —
/// SQLite interrupts the statement — and then the connection is closed rather than handed
/// back: PostgreSQL notices the closed socket within `client_connection_check_interval`
/// (set with the session bounds) and cancels the query.
struct Watched<DB: sqlx::Database> {
    /// Declared before the connection, so that even a guard still armed when the fields
    /// drop runs while the connection is checked out.
    stop: QueryGuard,
    connection: sqlx::pool::PoolConnection<DB>,
    finished: bool,
}

impl<DB: sqlx::Database> Drop for Watched<DB> {
    fn drop(&mut self) {
        if !self.finished {
            drop(std::mem::replace(&mut self.stop, QueryGuard::none()));
            self.connection.close_on_drop();
        }
    }
}

#[async_trait]
impl<B: Backend> JobQueries for Store<B> {
    /// Lookups that arrive together are answered by one query (see `group.rs`).
    async fn job(&self, customer_id: i64, job_id: Uuid) -> Result<Option<JobView>, StoreError> {
        let (answer, receiver) = oneshot::channel();
        let store = self.clone();
        let lookup = Lookup {
            customer_id,
            job_id,
            answer,
        };
        self.lookups.submit(lookup, move |group| {
            let store = store.clone();
            async move { store.look_up_group(group).await }
        });
        receiver.await.unwrap_or_else(|_| {
            Err(StoreError::Task(
                "the task looking the job up stopped".into(),
            ))
        })
    }

    async fn list_jobs(
        &self,
        customer_id: i64,
        filter: &JobFilter,
        page: PageRequest,
        after: Option<JobKey>,
    ) -> Result<Page<JobView>, StoreError> {
        // A list's cost is the caller's choice (page depth, filters): the customer waits for
        // one of its turns, and the query is stopped past the statement bound.
        let _turn = self.list_turns.take(customer_id).await;
        let mut watched = Watched {
            stop: QueryGuard::none(),
            connection: self.pool.acquire().await?,
            finished: false,
        };
        if self.statement_bound.is_some() {
            watched.stop = B::abandonment_guard(&mut watched.connection, CrateOnly::new()).await?;
        }
        let client_side_bound = self.statement_bound.filter(|_| watched.stop.is_armed());
        let listing = B::Db::list_jobs(&mut watched.connection, customer_id, filter, page, after);
        let outcome = match client_side_bound {
            Some(bound) => match tokio::time::timeout(bound, listing).await {
                Ok(outcome) => outcome,
                // `watched` goes unfinished: the query is stopped.
                Err(_) => return Err(StoreError::StatementTimedOut),
            },
            None => listing.await,
        };
        // Finished (well or not): nothing to stop, and the connection goes back as usual.
        std::mem::replace(&mut watched.stop, QueryGuard::none()).finished();
        watched.finished = true;
        Ok(page.into_page(outcome?))
    }

    async fn status_history(
        &self,
        customer_id: i64,
        job_id: Uuid,
        direction: Direction,
        page: SequencePage,
    ) -> Result<Option<Page<StatusHistoryEntry>>, StoreError> {
        if self.job(customer_id, job_id).await?.is_none() {
            return Ok(None);
        }
        let entries =
            B::Db::status_history(&self.pool, &job_id.to_string(), direction, page).await?;
        Ok(Some(page.into_page(entries, false)))
    }

    async fn events(
        &self,
        customer_id: i64,
        job_id: Uuid,
        page: SequencePage,
    ) -> Result<Option<Page<StoredEvent>>, StoreError> {
        if self.job(customer_id, job_id).await?.is_none() {
            return Ok(None);
        }
        let (events, cut) = B::Db::aggregate_events(
            &self.pool,
            B::TRANSACTION,
            domain::AGGREGATE_TYPE,
            &job_id.to_string(),
            page.after(),
            page.page.fetch_limit(),
            page.offset(),
            SequencePage::MAX_BYTES,
        )
        .await?;
        let events = events.iter().map(StoredEvent::from_logged).collect();
        Ok(Some(page.into_page(events, cut)))
    }

    async fn ping(&self) -> Result<(), StoreError> {
        B::Db::ping(&self.pool).await
    }
}

#[async_trait]
impl<B: Backend> ClientRegistry for Store<B> {
    async fn register(&self, client: &ClientRecord) -> Result<(), StoreError> {
        let _writer = self.backend.exclusive_writer().await;
        B::Db::insert_client(&self.pool, client).await
    }

    async fn client(&self, id: Uuid) -> Result<Option<ClientRecord>, StoreError> {
        Ok(B::Db::select_clients(&self.pool, Some(id))
            .await?
            .into_iter()
            .next())
    }

    async fn clients(&self) -> Result<Vec<ClientRecord>, StoreError> {
        B::Db::select_clients(&self.pool, None).await
    }

    async fn revoke(
        &self,
        id: Uuid,
        at: DateTime<Utc>,
    ) -> Result<Option<ClientRecord>, StoreError> {
        {
            let _writer = self.backend.exclusive_writer().await;
            B::Db::revoke_client(&self.pool, id, at).await?;
        }
        self.client(id).await
    }
}
