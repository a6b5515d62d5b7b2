//! The test harness: the real application on port 0 with a fresh store per test, and
//! request helpers. `backend_tests!` runs each test body once on SQLite and once on
//! PostgreSQL (a uniquely named database, dropped afterwards).
//!
//! - [`store`]: `Backend`, `TestStore` (creation, cleanup, client registration, raw SQL,
//!   `jobs-admin`), `TestClient`, `postgres_admin_url`, `created_event`.
//! - [`app`]: `TestApp` (launch, second instance, default clients, token ids), `Fixture`,
//!   and the token helpers `test_token_options`, `request_token`, `token_for_customer`,
//!   `form`.
//! - [`requests`]: the request methods of `TestApp` (`request`, `build`, `send`, `keyed`, `get`,
//!   `post`, `command`, `create_job`, `job`, `events`, `bring_to`, ...).
//! - [`process`]: the `jobs-server` binary as a process (`server_command`, `launch`,
//!   `start`, `terminate`, `kill`).
//! - [`proxy`]: `TcpProxy`, a TCP proxy to PostgreSQL a test can cut, restore, or have lose
//!   the answer to a `COMMIT`.
//! - [`reply`]: `Reply` and its assertions, command output (`stdout`, `stderr`,
//!   `succeeded`), `timestamp`, `fold_events`.
//!
//! The test files import everything from `crate::support` itself.

mod app;
mod process;
mod proxy;
mod reply;
mod requests;
mod store;

pub use app::{form, request_token, test_token_options, token_for_customer, Fixture, TestApp};
pub use process::{base_url, kill, launch, server_command, start, terminate, BINARY, PATIENCE};
pub use proxy::TcpProxy;
pub use reply::{fold_events, stderr, stdout, succeeded, timestamp, Reply};
pub use store::{created_event, postgres_admin_url, Backend, TestClient, TestStore};

/// Runs each test body on both backends: `mod name { fn sqlite(); fn postgres(); }`. The
/// body's argument is any [`Fixture`]: a running `TestApp`, or just a `TestStore`.
#[macro_export]
macro_rules! backend_tests {
    ($($(#[$doc:meta])* async fn $name:ident($arg:ident: $fixture:ty) $body:block)*) => {
        $(
            $(#[$doc])*
            mod $name {
                #[allow(unused_imports)]
                use super::*;
                use $crate::support::Fixture;

                async fn body($arg: $fixture) $body

                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn sqlite() {
                    body(<$fixture>::for_backend(Backend::Sqlite).await).await
                }

                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn postgres() {
                    body(<$fixture>::for_backend(Backend::Postgres).await).await
                }
            }
        )*
    };
}
