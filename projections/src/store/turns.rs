//! Turns for the queries whose cost a caller chooses (job lists: deep pages, filters). Each
//! customer runs at most [`LISTS_PER_CUSTOMER`] at once and queues for the rest, so one
//! tenant's expensive lists hold at most that many of the pool's connections; and all
//! lists together hold at most a quarter of the pool (half of what the stash leaves), so
//! that a client acting for many customers cannot take the rest either — the client
//! registry, idempotency keys and rebuilds always find connections.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// Lists one customer may run at once.
pub const LISTS_PER_CUSTOMER: usize = 2;

/// The customers with lists running or waiting, each with its semaphore, and the lists'
/// share of the pool.
pub struct CustomerTurns {
    customers: Mutex<HashMap<i64, Arc<Semaphore>>>,
    all: Arc<Semaphore>,
}

/// A customer's turn: held while its query runs.
pub struct Turn {
    permit: Option<OwnedSemaphorePermit>,
    _share: Option<OwnedSemaphorePermit>,
    customer: i64,
    turns: Arc<CustomerTurns>,
}

impl CustomerTurns {
    /// Turns for a pool of `pool_size` connections.
    pub fn for_pool(pool_size: usize) -> Self {
        CustomerTurns {
            customers: Mutex::default(),
            all: Arc::new(Semaphore::new((pool_size / 4).max(1))),
        }
    }

    /// Waits for one of `customer`'s turns, then for the lists' share of the pool (each
    /// fairly: first come, first served).
    pub async fn take(self: &Arc<Self>, customer: i64) -> Turn {
        let semaphore = self
            .lock()
            .entry(customer)
            .or_insert_with(|| Arc::new(Semaphore::new(LISTS_PER_CUSTOMER)))
            .clone();
        // Never closed, so acquiring cannot fail; were it to, the query runs unbounded
        // rather than fails.
        let permit = semaphore.acquire_owned().await.ok();
        let share = self.all.clone().acquire_owned().await.ok();
        Turn {
            permit,
            _share: share,
            customer,
            turns: self.clone(),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<i64, Arc<Semaphore>>> {
        self.customers
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    #[cfg(test)]
    fn customers(&self) -> usize {
        self.lock().len()
    }
}

impl Drop for Turn {
    /// Gives the turn back, and forgets the customer when no one else holds or awaits its
    /// semaphore (the map only references it then), so the map follows the customers that
    /// are listing right now.
    fn drop(&mut self) {
        drop(self.permit.take());
        let mut customers = self.turns.lock();
        if customers
            .get(&self.customer)
            .is_some_and(|semaphore| Arc::strong_count(semaphore) == 1)
        {
            customers.remove(&self.customer);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test]
    async fn a_customer_waits_for_its_own_turns_only() {
        let turns = Arc::new(CustomerTurns::for_pool(16));
        let held: Vec<Turn> = futures_join(&turns, 7, LISTS_PER_CUSTOMER).await;
        let waiting = tokio::time::timeout(Duration::from_millis(50), turns.take(7)).await;
        assert!(waiting.is_err(), "a third list of customer 7 waits");
        let other = tokio::time::timeout(Duration::from_millis(50), turns.take(8)).await;
        assert!(other.is_ok(), "customer 8 is not held up by customer 7");
        drop(other);
        drop(held);
        let again = tokio::time::timeout(Duration::from_millis(50), turns.take(7)).await;
        assert!(again.is_ok(), "turns given back are taken again");
    }

    #[tokio::test]
    async fn all_lists_together_hold_a_quarter_of_the_pool() {
        let turns = Arc::new(CustomerTurns::for_pool(8));
        let first = turns.take(1).await;
        let second = turns.take(2).await;
        let third = tokio::time::timeout(Duration::from_millis(50), turns.take(3)).await;
        assert!(third.is_err(), "two lists of an 8-connection pool at once");
        drop(first);
        let third = tokio::time::timeout(Duration::from_millis(50), turns.take(3)).await;
        assert!(third.is_ok());
        drop(second);
    }

    #[tokio::test]
    async fn customers_are_forgotten_once_their_turns_are_all_back() {
        let turns = Arc::new(CustomerTurns::for_pool(16));
        let first = turns.take(1).await;
        let second = turns.take(1).await;
        let third = tokio::spawn({
            let turns = turns.clone();
            async move { turns.take(1).await }
        });
        tokio::time::sleep(Duration::from_millis(20)).await;
        drop(first);
        let third = third.await.unwrap();
        assert_eq!(turns.customers(), 1, "still in use");
        drop(second);
        drop(third);
        assert_eq!(turns.customers(), 0);
    }

    async fn futures_join(turns: &Arc<CustomerTurns>, customer: i64, count: usize) -> Vec<Turn> {
        let mut held = Vec::new();
        for _ in 0..count {
            held.push(turns.take(customer).await);
        }
        held
    }
}
