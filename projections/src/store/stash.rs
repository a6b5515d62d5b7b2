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
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// Idle connections of the hot paths, last kept first taken (the warmest one).
pub(super) struct ConnectionStash<DB: Database> {
    idle: Mutex<Vec<PoolConnection<DB>>>,
    /// One per connection the hot paths may hold, idle or in use; first come first served.
    permits: Arc<Semaphore>,
}

/// A connection a hot path holds, with its permit.
pub(super) struct StashedConnection<DB: Database> {
    connection: PoolConnection<DB>,
    permit: OwnedSemaphorePermit,
}

impl<DB: Database> ConnectionStash<DB> {
    /// A stash for connections of `pool`, holding at most half of them.
    pub fn new(pool: &Pool<DB>) -> Self {
        let share = (pool.options().get_max_connections() as usize / 2).max(1);
        Self {
            idle: Mutex::new(Vec::new()),
            permits: Arc::new(Semaphore::new(share)),
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
        let kept = self.lock().pop();
        let connection = match kept {
            Some(connection) => connection,
            None => pool.acquire().await?,
        };
        Ok(StashedConnection { connection, permit })
    }

    /// Keeps `connection` for the next taker. Only for a connection whose last statement
    /// finished without error, outside any transaction.
    pub fn keep(&self, connection: StashedConnection<DB>) {
        let StashedConnection { connection, permit } = connection;
        self.lock().push(connection);
        // Only now, so that the next permit's holder finds the connection.
        drop(permit);
    }

    /// The list is left whole by every critical section (a push or a pop), so a panic
    /// elsewhere while it was locked cannot have broken it.
    fn lock(&self) -> MutexGuard<'_, Vec<PoolConnection<DB>>> {
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

    // Each connection to `sqlite::memory:` has a database of its own, so a table one
    // connection made tells that connection apart from the others.
    async fn pool_of_four() -> SqlitePool {
        SqlitePoolOptions::new()
            .max_connections(4)
            .connect("sqlite::memory:")
            .await
            .unwrap()
    }

    async fn mark(connection: &mut StashedConnection<Sqlite>) {
        sqlx::query("CREATE TABLE marked (x INTEGER)")
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
        let pool = pool_of_four().await;
        let stash = ConnectionStash::new(&pool);
        let mut first = stash.take(&pool).await.unwrap();
        let _second = stash.take(&pool).await.unwrap();
        let mut third = Box::pin(stash.take(&pool));
        assert!((&mut third).now_or_never().is_none(), "a third taker waits");

        // The rest of the store still finds its half in the pool.
        let _others = (pool.acquire().await.unwrap(), pool.acquire().await.unwrap());

        mark(&mut first).await;
        stash.keep(first);
        let mut third = third.await.unwrap();
        assert!(
            is_marked(&mut third).await,
            "the waiter is given the kept connection"
        );
    }

    #[tokio::test]
    async fn a_dropped_connection_frees_its_place_and_is_not_kept() {
        let pool = pool_of_four().await;
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
}
