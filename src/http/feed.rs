//! `GET /v1/events`: the change feed. A customer's events across all its jobs, in commit
//! order, read from the global log by the reader `jobs-admin export` uses: it returns only
//! events nothing can still commit before, so a feed followed by its cursors never skips
//! an event that commits late and never repeats one. `wait` holds a request that finds
//! nothing new until something arrives, so a mirror need not poll hard.

use crate::http::access::{Authorized, Read};
use crate::http::cursors::FeedCursor;
use crate::http::error::ApiError;
use crate::http::extract::{CustomerIdHeader, QueryPairs};
use crate::http::query::{FeedPaging, QueryParams};
use crate::http::AppState;
use crate::webhooks::event::FeedEvent;
use axum::extract::State;
use axum::Json;
use projections::log::LogFilter;
use serde::Serialize;
use std::time::Duration;
use tokio::time::Instant;
use utoipa::ToSchema;

/// How often a waiting feed request looks for new events, when no commit of this server
/// wakes it sooner (commits of other servers sharing the database).
const FEED_POLL: Duration = Duration::from_millis(200);

/// The longest a request is held: under the 30 s request timeout, whatever `wait` says.
const LONGEST_HOLD: Duration = Duration::from_secs(29);

/// A page of the feed.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct FeedPage {
    /// Up to `limit` events, oldest first; empty when nothing newer has committed (within
    /// `wait`).
    pub items: Vec<FeedEvent>,
    /// Where to continue: pass it as `cursor` for the events after these. Always present
    /// (an empty page's is the cursor it was asked with), so a mirror keeps the last one
    /// and asks again.
    pub next_cursor: String,
}

/// The customer's events, in commit order.
///
/// Every event of the customer's jobs, across all of them, in the order they committed:
/// follow `nextCursor` to see each exactly once, including events whose transaction
/// committed after a later one's (they are held back until nothing can still commit before
/// them). So an empty page means "nothing more yet", never "the end": on PostgreSQL a
/// committed event waits while any older transaction of the database server is still
/// open. Another customer's events are never shown. With `wait=N`, a request that finds
/// nothing new is held up to N seconds (at most 29) until something shows.
#[utoipa::path(get, path = "/v1/events", tag = "jobs",
    params(CustomerIdHeader, FeedPaging),
    responses(
        (status = 200, description = "A page of the customer's events", body = FeedPage),
        (status = 400, description = "Invalid Customer-Id, cursor, limit or wait (`/problems/invalid-customer-id`, `/problems/invalid-paging`, `/problems/invalid-query`)", body = crate::http::problem::Problem, content_type = "application/problem+json"),
        (status = 500, description = "Unexpected error", body = crate::http::problem::Problem, content_type = "application/problem+json"),
    ))]
pub async fn change_feed(
    State(app): State<AppState>,
    access: Authorized<Read>,
    QueryPairs(pairs): QueryPairs,
) -> Result<Json<FeedPage>, ApiError> {
    let mut params = QueryParams::new(pairs);
    let asked = params.feed_paging()?;
    params.finish()?;
    let filter = LogFilter {
        customer_id: Some(access.customer.get()),
    };
    let held_until = Instant::now() + asked.wait.min(LONGEST_HOLD);
    let commits = app.service.commit_signal();
    let events = loop {
        // Taken before the read, so a commit between the read and the wait wakes it.
        let mut watch = commits.watch(access.customer.get());
        let events = app
            .service
            .log()
            .read_after(asked.after, &filter, asked.limit)
            .await?;
        let now = Instant::now();
        if !events.is_empty() || now >= held_until {
            break events;
        }
        tokio::select! {
            _ = watch.committed() => {}
            _ = tokio::time::sleep(FEED_POLL.min(held_until - now)) => {}
        }
    };
    let next = events.last().map_or(asked.after, |event| event.cursor);
    Ok(Json(FeedPage {
        items: events.iter().map(FeedEvent::from_logged).collect(),
        next_cursor: FeedCursor::at(next),
    }))
}
