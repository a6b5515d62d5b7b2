//! Read models of the jobs service, derived only from events: the job summary (one row per
//! job) and its status history, how each event changes them, and the stores that keep them
//! together with the events (PostgreSQL and SQLite). The stores write a command's events and
//! its projection rows in one transaction, so a read never lags behind an acknowledged write.

pub mod error;
pub mod log;
pub mod metadata;
pub mod paging;
pub mod rebuild;
pub mod store;
pub mod verify;
pub mod view;

pub use error::{store_unavailable, StoreError};
pub use metadata::EventMetadata;
pub use paging::{Direction, JobFilter, JobSort, Page, PageRequest};
pub use store::{connect, ClientRecord, ClientRegistry, JobQueries, JobStore, StoredEvent};
pub use view::{JobView, StatusHistoryEntry};
