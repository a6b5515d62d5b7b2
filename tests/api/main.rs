//! Black-box HTTP tests of the real application, each run on SQLite and on PostgreSQL.

mod support;

mod cancel;
mod concurrency;
