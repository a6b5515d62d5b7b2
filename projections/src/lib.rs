//! Read models of the jobs service, derived only from events: the job summary (one row per
//! job) and its status history, how each event changes them, and the stores that keep them
//! together with the events (PostgreSQL and SQLite). The stores write a command's events and
//! its projection rows in one transaction, so a read never lags behind an acknowledged write.
//!
//! The modules are layers, each using only those above it:
//!
//! 1. [`model`] — pure: the views, the one fold of events into them, event metadata,
//!    paging. No database.
//! 2. [`error`] — the store's error, and the one classification of database failures.
//! 3. [`log`] — the global log in commit order: cursor, logged event, the reader trait;
//!    [`idempotency`] — idempotency keys' claims and stored answers, and their trait;
//!    [`webhooks`] — webhook subscriptions and their delivery state, and their trait.
//! 4. [`rebuild`] and [`verify`] — replaying the log into fresh tables and swapping them in;
//!    folding every job and comparing. They define what they need of a store as traits.
//! 5. [`store`] — the two databases, implementing those traits, the write path and the read
//!    side: a `Backend` trait says what differs between PostgreSQL and SQLite, and the rest
//!    is ordinary code generic over it. The OAuth client registry lives here too: it shares
//!    the pool, the migrations and SQLite's writer queue.

pub mod model;

pub mod error;

pub mod log;

pub mod idempotency;
pub mod webhooks;

pub mod rebuild;
pub mod verify;

pub mod store;

pub use error::{store_unavailable, StoreError};
pub use model::metadata::{self, EventMetadata};
pub use model::paging::{
    self, Direction, JobFilter, JobKey, JobSort, Page, PageRequest, SequencePage,
};
pub use model::view::{self, JobView, StatusHistoryEntry};
pub use store::{connect, ClientRecord, ClientRegistry, JobQueries, JobStore, StoredEvent};
