//! `jobs-admin`, the operator's tool: the command line and what each command does. It opens
//! the same store as the server, from the same `--database-url` / `--data-dir` settings, and
//! may run while the server does.

mod clients;
mod events;
mod keys;
mod projection;
mod table;
mod webhooks;

use crate::auth::clients::ClientAdminError;
use crate::auth::Scope;
use crate::config::{OpenError, StoreOptions};
use clap::{Parser, Subcommand, ValueEnum};
use std::io::Write;
use uuid::Uuid;

#[derive(Debug, Parser)]
#[command(
    name = "jobs-admin",
    version,
    about = "Administration of the jobs service: API clients, the audit trail and the projection"
)]
pub struct AdminCli {
    #[command(flatten)]
    pub store: StoreOptions,

    #[command(subcommand)]
    pub command: AdminCommand,
}

#[derive(Debug, Subcommand)]
pub enum AdminCommand {
    /// Manage the OAuth clients that may call the API.
    #[command(subcommand)]
    Clients(ClientsCommand),
    /// Rotate and retire the token signing keys (servers pick changes up within seconds).
    #[command(subcommand)]
    Keys(keys::KeysCommand),
    /// Show webhook subscriptions: their status, lag and delivery state.
    #[command(subcommand)]
    Webhooks(WebhooksCommand),
    /// Apply the database migrations not applied yet, and say which.
    Migrate,
    /// Show the audit trail of one job from the event store: who did what, when and why.
    History {
        /// The job's id.
        job_id: Uuid,
        #[arg(long, value_enum, default_value_t = Format::Table)]
        format: Format,
    },
    /// Write the event log (or one customer's part) to standard output as NDJSON, in commit
    /// order, one event per line with its global position.
    Export {
        /// Continue after the event at this global position (the last `position` an earlier
        /// export wrote). Default: from the first event.
        #[arg(long, value_parser = clap::value_parser!(i64).range(1..))]
        from_position: Option<i64>,
        /// Only the events of this customer's jobs.
        #[arg(long = "customer", value_parser = clap::value_parser!(i64).range(1..))]
        customer: Option<i64>,
    },
    /// Rebuild the read projection from the events while the service keeps serving.
    Rebuild,
    /// Compare every job's projection rows with its events; exit 1 on any difference.
    Verify,
    /// After a PostgreSQL dump was restored into another cluster: make events written from
    /// now on sort after the restored ones (the server refuses to start until then).
    RepairLog,
    /// Delete the idempotency keys older than the retention now (the server also does this
    /// every hour), and say how many.
    PurgeKeys {
        #[command(flatten)]
        retention: crate::config::KeyRetention,
    },
}

#[derive(Debug, Subcommand)]
pub enum ClientsCommand {
    /// Register a client. Prints its id and secret: the secret is shown only this once.
    Create {
        /// A name that tells operators whose client this is.
        #[arg(long)]
        name: String,
        /// A scope the client may hold (repeat for several).
        #[arg(long = "scope", required = true, value_enum)]
        scopes: Vec<Scope>,
        /// A customer id the client may act for (repeat for several).
        #[arg(long = "customer", required = true,
              value_parser = clap::value_parser!(i64).range(1..))]
        customers: Vec<i64>,
        #[arg(long, value_enum, default_value_t = Format::Table)]
        format: Format,
    },
    /// List the clients, oldest first (never their secrets).
    List {
        #[arg(long, value_enum, default_value_t = Format::Table)]
        format: Format,
    },
    /// Revoke a client: its tokens stop working at once, and it gets no new ones.
    Revoke {
        /// The client's id.
        id: Uuid,
    },
}

#[derive(Debug, Subcommand)]
pub enum WebhooksCommand {
    /// List subscriptions (every customer's, or one's) with their lag: the customer's
    /// events not yet delivered or passed over, counted now (up to 100000).
    List {
        /// Only this customer's subscriptions.
        #[arg(long = "customer", value_parser = clap::value_parser!(i64).range(1..))]
        customer: Option<i64>,
        #[arg(long, value_enum, default_value_t = Format::Table)]
        format: Format,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    /// Aligned text for people.
    #[value(alias = "text")]
    Table,
    /// JSON for programs.
    Json,
}

#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    #[error(transparent)]
    Open(#[from] OpenError),
    #[error(transparent)]
    Clients(#[from] ClientAdminError),
    #[error(transparent)]
    Store(#[from] projections::StoreError),
    #[error("cannot write the output: {0}")]
    Output(#[from] std::io::Error),
    #[error("cannot prepare password hashing: {0}")]
    Hasher(#[from] crate::auth::secrets::HashError),
    #[error("no job has the id {0} in the event store")]
    UnknownJob(Uuid),
    #[error("no event has the position {0}")]
    UnknownPosition(i64),
    #[error("{0} difference(s) between the projection and the events")]
    Differences(u64),
    #[error("{0}")]
    LogAhead(projections::log::TransactionsAhead),
    #[error("interrupted; the live projection is unchanged")]
    Interrupted,
    #[error(transparent)]
    Keys(#[from] crate::auth::keys::KeyError),
    #[error("{0}")]
    KeyRetirement(String),
}

impl AdminError {
    /// 130 for Ctrl-C, as shells report a SIGINT; 1 for everything else.
    pub fn exit_code(&self) -> u8 {
        match self {
            AdminError::Interrupted => 130,
            _ => 1,
        }
    }
}

/// Runs one command, writing its report to `out` (progress goes to standard error).
pub async fn run(cli: AdminCli, out: &mut impl Write) -> Result<(), AdminError> {
    // The keys live in a file, not in the store.
    if let AdminCommand::Keys(command) = cli.command {
        return keys::run(command, &cli.store.data_dir, out);
    }
    // `migrate` reports what it applies, so it must find the migrations still pending.
    let store = match cli.command {
        AdminCommand::Migrate => cli.store.open_unmigrated().await?,
        _ => cli.store.open().await?,
    };
    // What reads the log in order cannot be trusted on a log restored from another cluster.
    if matches!(
        cli.command,
        AdminCommand::Export { .. } | AdminCommand::Rebuild | AdminCommand::Verify
    ) {
        if let Some(ahead) = store.log().transactions_ahead().await? {
            return Err(AdminError::LogAhead(ahead));
        }
    }
    match cli.command {
        AdminCommand::Keys(_) => Ok(()),
        AdminCommand::Clients(command) => clients::run(&store, command, out).await,
        AdminCommand::Webhooks(WebhooksCommand::List { customer, format }) => {
            webhooks::list(&store, customer, format, out).await
        }
        AdminCommand::Migrate => projection::migrate(&store, out).await,
        AdminCommand::History { job_id, format } => {
            events::history(store.log().as_ref(), job_id, format, out).await
        }
        AdminCommand::Export {
            from_position,
            customer,
        } => events::export(store.log().as_ref(), from_position, customer, out).await,
        AdminCommand::Rebuild => projection::rebuild(&store, out).await,
        AdminCommand::Verify => projection::verify(&store, out).await,
        AdminCommand::RepairLog => match store.log().repair_transaction_order().await? {
            Some(ahead) => {
                writeln!(
                    out,
                    "repaired: stored transaction ids reached {}, past the server's next ({}); \
                     new events now sort after them",
                    ahead.highest_stored, ahead.next
                )?;
                Ok(())
            }
            None => {
                writeln!(out, "nothing to repair: the log's order is sound")?;
                Ok(())
            }
        },
        AdminCommand::PurgeKeys { retention } => {
            let purged = store.idempotency_keys().purge(retention.duration()).await?;
            writeln!(
                out,
                "purged {purged} idempotency key(s) first seen more than {} hours ago",
                retention.hours
            )?;
            Ok(())
        }
    }
}
