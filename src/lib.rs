//! The jobs service: configuration, the wiring of stores, the HTTP API and the application
//! that binaries and tests run. Business rules live in `domain`, storage and read models in
//! `projections`; this crate connects them to the outside world.
//!
//! Its layers, each using only those after it:
//!
//! - [`app`], [`config`], [`telemetry`] — start-up: settings, the stores, logging and
//!   metrics, wiring everything below; [`admin`] — the commands of `jobs-admin`;
//! - [`http`] — the router and handlers; every error answer is a problem (`http::problem`
//!   holds the catalogue, `http::error::ApiError` decides which);
//! - [`webhooks`] — subscriptions' delivery: targets, signatures, the deliverer;
//! - [`auth`] — clients, secrets and tokens;
//! - [`service`] — runs commands through the `Job` aggregate with retries, and answers
//!   queries; it fails with its own `ServiceError`, which `http` maps to problems.

pub mod admin;
pub mod app;
pub mod auth;
pub mod config;
pub mod http;
pub mod service;
pub mod telemetry;
pub mod webhooks;

pub use app::{Application, StartError};
pub use config::Settings;
