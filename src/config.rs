//! Typed configuration. Defaults live here and only here; every setting is a flag with an
//! environment variable of the same meaning (SPEC §6).

use clap::Parser;
use std::net::SocketAddr;
use std::path::PathBuf;

#[derive(Debug, Clone, Parser)]
#[command(
    name = "jobs-server",
    version,
    about = "The jobs service: an event-sourced field-service job API"
)]
pub struct Settings {
    /// Address to listen on.
    #[arg(long, env = "JOBS_LISTEN", default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,

    /// Database URL: postgres://… or sqlite:… (default: a SQLite file in the data directory).
    #[arg(long, env = "DATABASE_URL")]
    pub database_url: Option<String>,

    /// Directory for the embedded database (and, later, generated keys).
    #[arg(long, env = "JOBS_DATA_DIR", default_value = "./data")]
    pub data_dir: PathBuf,
}

impl Settings {
    /// The database URL to use: the configured one, or the SQLite file `jobs.db` in the data
    /// directory (which is created if missing).
    pub fn resolved_database_url(&self) -> std::io::Result<String> {
        match &self.database_url {
            Some(url) => Ok(url.clone()),
            None => {
                std::fs::create_dir_all(&self.data_dir)?;
                Ok(format!(
                    "sqlite://{}",
                    self.data_dir.join("jobs.db").display()
                ))
            }
        }
    }
}
