//! The jobs service: configuration, the wiring of stores, the HTTP API and the application
//! that binaries and tests run. Business rules live in `domain`, storage and read models in
//! `projections`; this crate connects them to the outside world.

pub mod admin;
pub mod app;
pub mod auth;
pub mod config;
pub mod http;
pub mod service;
pub mod telemetry;

pub use app::{Application, StartError};
pub use config::Settings;
