//! Turns per customer for the queries whose cost a caller chooses (job lists: deep pages,
//! filters on unindexed columns). Each customer runs at most [`LISTS_PER_CUSTOMER`] at
//! once and queues for the rest, so one tenant's expensive lists hold at most that many of
//! the pool's connections, and every other tenant finds the others free.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// Lists one customer may run at once.
pub const LISTS_PER_CUSTOMER: usize = 2;

/// The customers with lists running or waiting, each with its semaphore.
#[derive(Default)]
pub struct CustomerTurns {
    customers: Mutex<HashMap<i64, Arc<Semaphore>>>,
}

/// A customer's turn: held while its query runs.
pub struct Turn {
    permit: Option<OwnedSemaphorePermit>,
    customer: i64,
    turns: Arc<CustomerTurns>,
}

impl CustomerTurns {
    /// Waits for one of `customer`'s turns (fairly: first come, first served).
    pub async fn take(self: &Arc<Self>, customer: i64) -> Turn {
        let semaphore = self
            .lock()
            .entry(customer)
            .or_insert_with(|| Arc::new(Semaphore::new(LISTS_PER_CUSTOMER)))
            .clone();
        // Never closed, so acquiring cannot fail; were it to, the query runs unbounded
        // rather than fails.
        let permit = semaphore.acquire_owned().await.ok();
        Turn {
            permit,
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
        let turns = Arc::new(CustomerTurns::default());
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
    async fn customers_are_forgotten_once_their_turns_are_all_back() {
        let turns = Arc::new(CustomerTurns::default());
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
