//! The statements both stores run as written: `$N` placeholders and `ON CONFLICT` upserts
//! read the same on PostgreSQL and SQLite, so this SQL exists once, generic over sqlx's
//! database. What differs between the backends is not here but in
//! [`Backend`](super::backend::Backend).
//!
//! The statements come in four groups, each a trait implemented once for every database
//! sqlx can run them on — the bounds of that one impl are the whole of what they need from
//! sqlx: [`JobSql`] (events appended, the projection written and read, the schema),
//! [`LogSql`] (the global log, and verify's snapshot reads), [`ClientSql`] (the OAuth client
//! registry), [`KeySql`] (idempotency keys), [`WebhookSql`] (webhook subscriptions). [`Sql`] gathers them; `Backend::Db` requires it, so generic store code calls
//! them without repeating a bound.

mod clients;
mod jobs;
mod keys;
mod log;
mod webhooks;

pub use clients::ClientSql;
pub use jobs::{job_list_sql, JobSql, MigrationApplied};
pub use keys::KeySql;
pub use log::LogSql;
pub use webhooks::WebhookSql;

/// The connection type of a database.
pub type Connection<DB> = <DB as sqlx::Database>::Connection;

/// Every statement both stores share.
pub trait Sql: JobSql + LogSql + ClientSql + KeySql + WebhookSql {}

impl<DB: JobSql + LogSql + ClientSql + KeySql + WebhookSql> Sql for DB {}
