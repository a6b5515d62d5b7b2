//! Work that arrives together, done together: the waiting room of group commit and of
//! grouped lookups. Each item (a decided command's commit, a job lookup) waits here; a
//! worker task takes everything waiting as one group and does it at once — one transaction
//! for commits (`write.rs`), one query for lookups (`read.rs`) — then takes the next group.
//! Nothing waits on purpose: an item that arrives while no worker is busy is done at once,
//! alone; the ones arriving while a group is being done form the next group. So under load
//! one round trip (and, for commits, one flush to disk) serves many requests, and at rest
//! each request costs what it did on its own.
//!
//! Workers are tasks of their own, not the requests' tasks: a request that is dropped (its
//! client hung up) cannot take the group it was serving down with it.

use std::collections::VecDeque;
use std::future::Future;
use std::sync::{Arc, Mutex, MutexGuard};

/// The items waiting for a worker, and how many workers run.
pub(super) struct GroupQueue<T> {
    state: Mutex<QueueState<T>>,
    /// How many groups may be worked on at once.
    workers: usize,
    /// The most items one group holds.
    max_group: usize,
}

struct QueueState<T> {
    waiting: VecDeque<T>,
    running: usize,
}

impl<T: Send + 'static> GroupQueue<T> {
    pub fn new(workers: usize, max_group: usize) -> Self {
        Self {
            state: Mutex::new(QueueState {
                waiting: VecDeque::new(),
                running: 0,
            }),
            workers: workers.max(1),
            max_group: max_group.max(1),
        }
    }

    /// Queues `item`; starts a worker doing `work` on groups if one may start. `work` must
    /// answer every item of each group it is given.
    pub fn submit<W, F>(self: &Arc<Self>, item: T, work: W)
    where
        W: Fn(Vec<T>) -> F + Send + Sync + 'static,
        F: Future<Output = ()> + Send + 'static,
    {
        if self.push(item) {
            start_worker(self.clone(), Arc::new(work));
        }
    }

    /// Queues an item; returns whether the caller must start a worker (none was free).
    #[must_use]
    fn push(&self, item: T) -> bool {
        let mut state = self.lock();
        state.waiting.push_back(item);
        let start = state.running < self.workers;
        if start {
            state.running += 1;
        }
        start
    }

    /// The next group for a running worker, oldest first; `None` when nothing waits, and
    /// the worker has stopped counting as running (decided under the same lock as
    /// [`Self::push`], so no item is left waiting without a worker).
    fn next_group(&self) -> Option<Vec<T>> {
        let mut state = self.lock();
        if state.waiting.is_empty() {
            state.running -= 1;
            return None;
        }
        let take = state.waiting.len().min(self.max_group);
        Some(state.waiting.drain(..take).collect())
    }

    /// A worker stopped without [`Self::next_group`] saying so (it panicked); returns
    /// whether items are waiting, so a worker must start in its place.
    fn worker_lost(&self) -> bool {
        let mut state = self.lock();
        state.running -= 1;
        let replace = !state.waiting.is_empty();
        if replace {
            state.running += 1;
        }
        replace
    }

    /// The state is a queue and a count, each left whole by every critical section, so a
    /// panic elsewhere while the lock was held cannot have broken it.
    fn lock(&self) -> MutexGuard<'_, QueueState<T>> {
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// Starts a worker: it works on groups while items wait.
fn start_worker<T, W, F>(queue: Arc<GroupQueue<T>>, work: Arc<W>)
where
    T: Send + 'static,
    W: Fn(Vec<T>) -> F + Send + Sync + 'static,
    F: Future<Output = ()> + Send + 'static,
{
    tokio::spawn(async move {
        let mut running = RunningWorker {
            queue: &queue,
            work: &work,
            stopped: false,
        };
        while let Some(group) = queue.next_group() {
            work(group).await;
        }
        running.stopped = true;
    });
}

/// A worker between start and stop; should it stop otherwise (a panic), another starts in
/// its place for the items still waiting.
struct RunningWorker<'a, T: Send + 'static, W, F>
where
    W: Fn(Vec<T>) -> F + Send + Sync + 'static,
    F: Future<Output = ()> + Send + 'static,
{
    queue: &'a Arc<GroupQueue<T>>,
    work: &'a Arc<W>,
    stopped: bool,
}

impl<T, W, F> Drop for RunningWorker<'_, T, W, F>
where
    T: Send + 'static,
    W: Fn(Vec<T>) -> F + Send + Sync + 'static,
    F: Future<Output = ()> + Send + 'static,
{
    fn drop(&mut self) {
        // Outside a runtime (it is shutting down) there is nothing to start a worker on.
        if !self.stopped
            && self.queue.worker_lost()
            && tokio::runtime::Handle::try_current().is_ok()
        {
            start_worker(self.queue.clone(), self.work.clone());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use tokio::sync::oneshot;

    const MAX: usize = 128;

    fn ids(group: &[&'static str]) -> Vec<&'static str> {
        group.to_vec()
    }

    #[test]
    fn items_arriving_while_a_group_is_worked_on_form_the_next_group() {
        let queue = GroupQueue::new(1, MAX);
        assert!(queue.push("a"), "the first item starts a worker");
        assert_eq!(ids(&queue.next_group().unwrap()), ["a"]);
        assert!(!queue.push("b"), "one worker runs already");
        assert!(!queue.push("c"));
        assert_eq!(ids(&queue.next_group().unwrap()), ["b", "c"]);
        assert!(
            queue.next_group().is_none(),
            "nothing waits: the worker stops"
        );
        assert!(queue.push("d"), "so the next item starts one again");
    }

    #[test]
    fn as_many_workers_run_as_allowed_and_a_group_is_bounded() {
        let queue = GroupQueue::new(2, MAX);
        assert!(queue.push("a".to_owned()));
        assert!(queue.push("b".to_owned()));
        for n in 0..MAX + 5 {
            assert!(!queue.push(n.to_string()));
        }
        assert_eq!(queue.next_group().unwrap().len(), MAX);
        assert_eq!(queue.next_group().unwrap().len(), 7);
        assert!(queue.next_group().is_none(), "one worker stops");
        assert!(queue.push("c".to_owned()), "so another may start");
        assert!(!queue.push("d".to_owned()), "but not a third");
    }

    #[test]
    fn a_lost_worker_is_replaced_while_items_wait() {
        let queue = GroupQueue::new(1, MAX);
        assert!(queue.push("a"));
        let _group = queue.next_group().unwrap();
        assert!(!queue.push("b"));
        assert!(queue.worker_lost(), "b waits: a new worker must start");
        assert_eq!(ids(&queue.next_group().unwrap()), ["b"]);
        assert!(queue.next_group().is_none());
        assert!(queue.push("c"));
        let _group = queue.next_group().unwrap();
        assert!(!queue.worker_lost(), "nothing waits");
        assert!(queue.push("d"), "and no worker counts as running");
    }

    #[tokio::test]
    async fn a_worker_that_panics_is_replaced_and_every_item_is_answered() {
        let queue = Arc::new(GroupQueue::new(1, 2));
        let groups = Arc::new(AtomicUsize::new(0));
        let mut answers = Vec::new();
        for n in 0..6 {
            let (answer, heard) = oneshot::channel::<usize>();
            answers.push(heard);
            let groups = groups.clone();
            queue.submit(
                (n, answer),
                move |group: Vec<(usize, oneshot::Sender<usize>)>| {
                    let groups = groups.clone();
                    async move {
                        // The first group's worker dies before answering.
                        if groups.fetch_add(1, Ordering::SeqCst) == 0 {
                            panic!("a worker fails");
                        }
                        for (n, answer) in group {
                            let _ = answer.send(n);
                        }
                    }
                },
            );
        }
        let mut heard = Vec::new();
        for answer in answers {
            heard.push(answer.await.ok());
        }
        // The failed group's items hear nothing (their senders were dropped): they learn
        // their outcome is unknown; every later item is answered by a replacement worker.
        assert_eq!(heard, [None, None, Some(2), Some(3), Some(4), Some(5)]);
    }
}
