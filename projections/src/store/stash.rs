//! Connections kept at hand for the hot paths, so that a query costs one round trip.
//!
//! sqlx pings every connection handed back to its pool (`PoolConnection`'s release always
//! runs `ping`) in a task of its own: for a lookup or a commit, that is a second round trip
//! and a task wake-up after the real one — about 8% of a loaded server's CPU when profiled.
//! The ping is there because a connection whose query future was dropped half way may be
//! out of step with its server. So a hot path takes a connection from here (or from the
//! pool when none is kept), and only hands it back with [`ConnectionStash::keep`] once its
//! work finished cleanly — then the connection is in step by construction. A connection
//! that met an error, or whose future was dropped, is simply dropped and goes back through
//! sqlx's release, ping and all.
//!
//! The hot paths hold at most half the pool's connections (a fair semaphore's permits,
//! kept idle here or in use), so the rest of the store — lists, keys, the registry — always
//! finds the other half in the pool; and a hot path asks the pool only when fewer than its
//! share exist, never racing it for a connection another hot path is about to keep.

use sqlx::pool::PoolConnection;
use sqlx::{Database, Pool};
use std::ops::{Deref, DerefMut};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// Idle connections of the hot paths, last kept first taken (the warmest one).
pub(super) struct ConnectionStash<DB: Database> {
    idle: Mutex<Vec<Kept<DB>>>,
    /// One per connection the hot paths may hold, idle or in use; first come first served.
    permits: Arc<Semaphore>,
    /// The pool's limits, which sqlx applies only to connections handed back to it: a kept
    /// connection idle longer than `idle_timeout`, or held longer than `max_lifetime`, is
    /// handed back instead of used (a firewall may have dropped it meanwhile).
    idle_timeout: Option<Duration>,
    max_lifetime: Option<Duration>,
}

/// A connection idle in the stash.
struct Kept<DB: Database> {
    connection: PoolConnection<DB>,
    /// When the stash took it from the pool.
    since: Instant,
    /// When it was last kept.
    idle_since: Instant,
}

/// A connection a hot path holds, with its permit.
pub(super) struct StashedConnection<DB: Database> {
    connection: PoolConnection<DB>,
    since: Instant,
    permit: OwnedSemaphorePermit,
}

impl<DB: Database> ConnectionStash<DB> {
    /// A stash for connections of `pool`, holding at most half of them.
    pub fn new(pool: &Pool<DB>) -> Self {
        let options = pool.options();
        let share = (options.get_max_connections() as usize / 2).max(1);
        Self {
            idle: Mutex::new(Vec::new()),
            permits: Arc::new(Semaphore::new(share)),
            idle_timeout: options.get_idle_timeout(),
            max_lifetime: options.get_max_lifetime(),
        }
    }

    /// A kept connection, or one from `pool` while the hot paths hold fewer than their
    /// share; otherwise waits for one to be kept or dropped.
    pub async fn take(&self, pool: &Pool<DB>) -> Result<StashedConnection<DB>, sqlx::Error> {
        let permit = self
            .permits
            .clone()
            .acquire_owned()
            .await
            .map_err(|_| sqlx::Error::PoolClosed)?; // never closed
        let kept = self.fresh_kept();
        let (connection, since) = match kept {
            Some(kept) => (kept.connection, kept.since),
            None => (pool.acquire().await?, Instant::now()),
        };
        Ok(StashedConnection {
            connection,
            since,
            permit,
        })
    }

    /// The warmest kept connection within the pool's limits; those past them are handed
    /// back to the pool (whose release pings them, and closes them if they are too old).
    fn fresh_kept(&self) -> Option<Kept<DB>> {
        let past = |limit: Option<Duration>, since: Instant| {
            limit.is_some_and(|limit| since.elapsed() > limit)
        };
        let stale = |kept: &Kept<DB>| {
            past(self.idle_timeout, kept.idle_since) || past(self.max_lifetime, kept.since)
        };
        let mut idle = self.lock();
        if !idle.iter().any(stale) {
            return idle.pop();
        }
        let (handed_back, fresh): (Vec<_>, Vec<_>) =
            std::mem::take(&mut *idle).into_iter().partition(stale);
        *idle = fresh;
        let warmest = idle.pop();
        drop(idle);
        drop(handed_back); // outside the lock: each hand-back spawns a task
        warmest
    }

    /// Keeps `connection` for the next taker. Only for a connection whose last statement
    /// finished without error, outside any transaction.
    pub fn keep(&self, connection: StashedConnection<DB>) {
        let StashedConnection {
            connection,
            since,
            permit,
        } = connection;
        self.lock().push(Kept {
            connection,
            since,
            idle_since: Instant::now(),
        });
        // Only now, so that the next permit's holder finds the connection.
        drop(permit);
    }

    /// The list is left whole by every critical section (a push or a pop), so a panic
    /// elsewhere while it was locked cannot have broken it.
    fn lock(&self) -> MutexGuard<'_, Vec<Kept<DB>>> {
        self.idle
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

impl<DB: Database> Deref for StashedConnection<DB> {
    type Target = PoolConnection<DB>;

    fn deref(&self) -> &Self::Target {
        &self.connection
    }
}

impl<DB: Database> DerefMut for StashedConnection<DB> {
    fn deref_mut(&mut self) -> &mut Self::Target {
        &mut self.connection
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures::FutureExt;
    use sqlx::sqlite::{SqlitePool, SqlitePoolOptions};
    use sqlx::Sqlite;

    // A temporary table is its connection's own, so it tells that connection apart from
    // the others (the pool's connections share one in-memory database).
    async fn pool_of_four(idle_timeout: Option<Duration>) -> SqlitePool {
        SqlitePoolOptions::new()
            .max_connections(4)
            .idle_timeout(idle_timeout)
            .connect("sqlite::memory:")
            .await
            .unwrap()
    }

    async fn mark(connection: &mut StashedConnection<Sqlite>) {
        sqlx::query("CREATE TEMP TABLE marked (x INTEGER)")
            .execute(&mut ***connection)
            .await
            .unwrap();
    }

    async fn is_marked(connection: &mut StashedConnection<Sqlite>) -> bool {
        sqlx::query("SELECT x FROM marked")
            .fetch_all(&mut ***connection)
            .await
            .is_ok()
    }

    #[tokio::test]
    async fn hot_paths_hold_half_the_pool_and_wait_their_turn() {
        let pool = pool_of_four(None).await;
        let stash = ConnectionStash::new(&pool);
        let mut first = stash.take(&pool).await.unwrap();
        let _second = stash.take(&pool).await.unwrap();
        let mut third = Box::pin(stash.take(&pool));
        assert!((&mut third).now_or_never().is_none(), "a third taker waits");

        // The rest of the store still finds its half in the pool.
        let _others = (pool.acquire().await.unwrap(), pool.acquire().await.unwrap());

        mark(&mut first).await;
        stash.keep(first);
        assert_eq!(stash.lock().len(), 1, "kept, not handed back to the pool");
        let mut third = third.await.unwrap();
        assert!(stash.lock().is_empty());
        assert!(
            is_marked(&mut third).await,
            "the waiter is given the kept connection"
        );
    }

    #[tokio::test]
    async fn a_dropped_connection_frees_its_place_and_is_not_kept() {
        let pool = pool_of_four(None).await;
        let stash = ConnectionStash::new(&pool);
        let dropped = stash.take(&pool).await.unwrap();
        let _held = stash.take(&pool).await.unwrap();
        drop(dropped); // as when a query failed or its future was dropped
        assert!(
            stash.lock().is_empty(),
            "the dropped connection is not kept"
        );
        // Its place is free: a taker gets a connection (a generous bound, not a timing).
        let next = tokio::time::timeout(std::time::Duration::from_secs(30), stash.take(&pool));
        assert!(
            next.await.is_ok_and(|taken| taken.is_ok()),
            "its place is free"
        );
    }

    #[tokio::test]
    async fn a_connection_idle_past_the_pools_limit_is_handed_back_not_used() {
        let pool = pool_of_four(Some(Duration::from_millis(50))).await;
        let stash = ConnectionStash::new(&pool);
        let mut old = stash.take(&pool).await.unwrap();
        mark(&mut old).await;
        stash.keep(old);
        let mut warm = stash.take(&pool).await.unwrap();
        assert!(
            is_marked(&mut warm).await,
            "a connection kept a moment ago is used"
        );
        stash.keep(warm);
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert!(
            stash.fresh_kept().is_none(),
            "past the idle timeout it is not used"
        );
        assert!(stash.lock().is_empty(), "and not kept either");
    }
}
