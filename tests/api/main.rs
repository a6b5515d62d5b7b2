//! Black-box HTTP tests of the real application, each run on SQLite and on PostgreSQL.

mod support;

mod admin;
mod audit;
mod auth;
mod cancel;
mod concurrency;
mod conditional;
mod crash;
mod edge_inputs;
mod event_log;
mod feed;
mod group_commit;
mod idempotency;
mod lifecycle;
mod listing;
mod metrics;
mod openapi;
mod outages;
mod rebuild;
mod restore;
mod server;
mod snapshots;
mod traffic;
mod webhooks;
