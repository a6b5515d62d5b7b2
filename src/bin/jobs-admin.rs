//! `jobs-admin`: parses the command line and runs one administration command.

use clap::Parser;
use jobs_service::admin::{run, AdminCli};
use std::process::ExitCode;

#[tokio::main]
async fn main() -> ExitCode {
    let cli = AdminCli::parse();
    let mut out = std::io::stdout().lock();
    match run(cli, &mut out).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("jobs-admin: {error}");
            ExitCode::from(error.exit_code())
        }
    }
}
