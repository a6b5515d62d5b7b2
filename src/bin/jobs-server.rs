//! `jobs-server`: parses configuration and runs the service until SIGINT/SIGTERM.

use clap::Parser;
use jobs_service::{app::shutdown_signal, Application, Settings};
use std::process::ExitCode;

#[tokio::main]
async fn main() -> ExitCode {
    jobs_service::telemetry::init();
    let settings = Settings::parse();
    let application = match Application::build(&settings).await {
        Ok(application) => application,
        Err(error) => {
            eprintln!("jobs-server: {error}");
            return ExitCode::FAILURE;
        }
    };
    match application.local_addr() {
        Ok(address) => println!(
            "jobs-server listening on http://{address} (store: {})",
            application.backend()
        ),
        Err(error) => {
            eprintln!("jobs-server: {error}");
            return ExitCode::FAILURE;
        }
    }
    match application.run_until_stopped(shutdown_signal()).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("jobs-server: {error}");
            ExitCode::FAILURE
        }
    }
}
