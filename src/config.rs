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
    /// The store to open: the configured URL, or the SQLite file `jobs.db` in the data
    /// directory (created if missing). The file is named by path, not spliced into a URL,
    /// so any directory name works (`?` or `%` would mean something in a URL).
    pub fn store_location(&self) -> std::io::Result<StoreLocation> {
        match &self.database_url {
            Some(url) => Ok(StoreLocation::Url(url.clone())),
            None => {
                std::fs::create_dir_all(&self.data_dir)?;
                Ok(StoreLocation::SqliteFile(self.data_dir.join("jobs.db")))
            }
        }
    }
}

pub enum StoreLocation {
    Url(String),
    SqliteFile(PathBuf),
}
