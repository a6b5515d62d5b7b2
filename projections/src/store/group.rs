//! Group commit's waiting room. Each command is decided on its own (`JobService`), then its
//! [`Commit`] waits here; a committer task takes everything waiting as one group and writes
//! it in one transaction (`write.rs`), then takes the next group. Nothing waits on purpose:
//! a command that arrives while no group is being written is committed at once, alone; the
//! ones arriving while a group commits form the next group. So under load a transaction —
//! and its round trips and its flush to disk — carries many commands, and at rest each
//! command costs what it did on its own.
//!
//! Committers are tasks of their own, not the requests' tasks: a request that is dropped
//! (its client hung up) cannot take the group it was writing down with it.

use super::write::{AppendError, Commit};
use std::collections::VecDeque;
use std::sync::{Mutex, MutexGuard};
use tokio::sync::oneshot;

/// A commit waiting for its group, and where its outcome goes.
pub(super) struct Waiting {
    pub commit: Commit,
    pub outcome: oneshot::Sender<Result<(), AppendError>>,
}

/// The commits waiting for a committer, and how many committers run.
pub(super) struct CommitQueue {
    state: Mutex<QueueState>,
    /// How many groups may be written at once.
    committers: usize,
}

#[derive(Default)]
struct QueueState {
    waiting: VecDeque<Waiting>,
    running: usize,
}

/// The most commits one transaction carries: enough to amortise it, few enough that a
/// group's statements stay well within the databases' parameter limits.
pub(super) const MAX_GROUP: usize = 128;

impl CommitQueue {
    pub fn new(committers: usize) -> Self {
        Self {
            state: Mutex::default(),
            committers: committers.max(1),
        }
    }

    /// Queues a commit; returns whether the caller must start a committer (none was free).
    #[must_use]
    pub fn push(&self, waiting: Waiting) -> bool {
        let mut state = self.lock();
        state.waiting.push_back(waiting);
        let start = state.running < self.committers;
        if start {
            state.running += 1;
        }
        start
    }

    /// The next group for a running committer, oldest first; `None` when nothing waits, and
    /// the committer has stopped counting as running (decided under the same lock as
    /// [`Self::push`], so no commit is left waiting without a committer).
    pub fn next_group(&self) -> Option<Vec<Waiting>> {
        let mut state = self.lock();
        if state.waiting.is_empty() {
            state.running -= 1;
            return None;
        }
        let take = state.waiting.len().min(MAX_GROUP);
        Some(state.waiting.drain(..take).collect())
    }

    /// A committer stopped without [`Self::next_group`] saying so (it panicked); returns
    /// whether commits are waiting, so a committer must start in its place.
    pub fn committer_lost(&self) -> bool {
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
    fn lock(&self) -> MutexGuard<'_, QueueState> {
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn waiting(job_id: &str) -> (Waiting, oneshot::Receiver<Result<(), AppendError>>) {
        let (outcome, receiver) = oneshot::channel();
        let commit = Commit {
            job_id: job_id.to_owned(),
            events: Vec::new(),
            snapshot: None,
            answer: None,
        };
        (Waiting { commit, outcome }, receiver)
    }

    fn ids(group: &[Waiting]) -> Vec<&str> {
        group.iter().map(|w| w.commit.job_id.as_str()).collect()
    }

    #[test]
    fn commits_arriving_while_a_group_is_written_form_the_next_group() {
        let queue = CommitQueue::new(1);
        assert!(
            queue.push(waiting("a").0),
            "the first commit starts a committer"
        );
        let first = queue.next_group().unwrap();
        assert_eq!(ids(&first), ["a"]);
        assert!(!queue.push(waiting("b").0), "one committer runs already");
        assert!(!queue.push(waiting("c").0));
        assert_eq!(ids(&queue.next_group().unwrap()), ["b", "c"]);
        assert!(
            queue.next_group().is_none(),
            "nothing waits: the committer stops"
        );
        assert!(
            queue.push(waiting("d").0),
            "so the next commit starts one again"
        );
    }

    #[test]
    fn as_many_committers_run_as_allowed_and_a_group_is_bounded() {
        let queue = CommitQueue::new(2);
        assert!(queue.push(waiting("a").0));
        assert!(queue.push(waiting("b").0));
        for n in 0..MAX_GROUP + 5 {
            assert!(!queue.push(waiting(&n.to_string()).0));
        }
        assert_eq!(queue.next_group().unwrap().len(), MAX_GROUP);
        assert_eq!(queue.next_group().unwrap().len(), 7);
        assert!(queue.next_group().is_none(), "one committer stops");
        assert!(queue.push(waiting("c").0), "so another may start");
        assert!(!queue.push(waiting("d").0), "but not a third");
    }

    #[test]
    fn a_lost_committer_is_replaced_while_commits_wait() {
        let queue = CommitQueue::new(1);
        assert!(queue.push(waiting("a").0));
        let _group = queue.next_group().unwrap();
        assert!(!queue.push(waiting("b").0));
        assert!(
            queue.committer_lost(),
            "b waits: a new committer must start"
        );
        assert_eq!(ids(&queue.next_group().unwrap()), ["b"]);
        assert!(queue.next_group().is_none());
        assert!(queue.push(waiting("c").0));
        let _group = queue.next_group().unwrap();
        assert!(!queue.committer_lost(), "nothing waits");
        assert!(
            queue.push(waiting("d").0),
            "and no committer counts as running"
        );
    }
}
