//! `jobs-admin`, the operator's tool: the command line and what each command does. It opens
//! the same store as the server, from the same `--database-url` / `--data-dir` settings, and
//! may run while the server does.

use crate::auth::clients::{create_client, revoke_client, ClientAdminError};
use crate::auth::secrets::SecretHasher;
use crate::auth::Scope;
use crate::config::{OpenError, StoreOptions};
use clap::{Parser, Subcommand, ValueEnum};
use projections::ClientRecord;
use serde_json::json;
use std::io::Write;
use uuid::Uuid;

#[derive(Debug, Parser)]
#[command(
    name = "jobs-admin",
    version,
    about = "Administration of the jobs service: API clients and the store"
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
        #[arg(long, value_enum, default_value_t = Format::Text)]
        format: Format,
    },
    /// List the clients, oldest first (never their secrets).
    List {
        #[arg(long, value_enum, default_value_t = Format::Text)]
        format: Format,
    },
    /// Revoke a client: its tokens stop working at once, and it gets no new ones.
    Revoke {
        /// The client's id.
        id: Uuid,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    /// Aligned text for people.
    Text,
    /// JSON for programs.
    Json,
}

#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    #[error(transparent)]
    Open(#[from] OpenError),
    #[error(transparent)]
    Clients(#[from] ClientAdminError),
    #[error("cannot write the output: {0}")]
    Output(#[from] std::io::Error),
    #[error("cannot prepare password hashing: {0}")]
    Hasher(#[from] crate::auth::secrets::HashError),
}

/// Runs one command, writing its report to `out`.
pub async fn run(cli: AdminCli, out: &mut impl Write) -> Result<(), AdminError> {
    let store = cli.store.open().await?;
    let registry = store.clients();
    match cli.command {
        AdminCommand::Clients(ClientsCommand::Create {
            name,
            scopes,
            customers,
            format,
        }) => {
            let hasher = SecretHasher::new()?;
            let created =
                create_client(registry.as_ref(), &hasher, &name, &scopes, &customers).await?;
            let client = &created.client;
            match format {
                Format::Json => {
                    let mut body = client_json(client);
                    body["clientSecret"] = json!(created.secret);
                    writeln!(out, "{body:#}")?;
                }
                Format::Text => {
                    writeln!(out, "client_id:     {}", client.id)?;
                    writeln!(out, "client_secret: {}", created.secret)?;
                    writeln!(out, "name:          {}", client.name)?;
                    writeln!(out, "scopes:        {}", client.scopes.join(" "))?;
                    writeln!(out, "customers:     {}", join_ids(&client.customer_ids))?;
                    writeln!(
                        out,
                        "The secret is shown only now; only its hash is stored. Keep it safe."
                    )?;
                }
            }
        }
        AdminCommand::Clients(ClientsCommand::List { format }) => {
            let clients = registry.clients().await.map_err(ClientAdminError::from)?;
            match format {
                Format::Json => {
                    let list: Vec<_> = clients.iter().map(client_json).collect();
                    writeln!(out, "{:#}", json!(list))?;
                }
                Format::Text => write_table(out, &clients)?,
            }
        }
        AdminCommand::Clients(ClientsCommand::Revoke { id }) => {
            let client = revoke_client(registry.as_ref(), id, domain::now()).await?;
            let at = client
                .revoked_at
                .map(|at| at.to_rfc3339())
                .unwrap_or_default();
            writeln!(
                out,
                "client {} ({}) is revoked since {at}",
                client.id, client.name
            )?;
        }
    }
    Ok(())
}

fn client_json(client: &ClientRecord) -> serde_json::Value {
    json!({
        "clientId": client.id,
        "name": client.name,
        "scopes": client.scopes,
        "customerIds": client.customer_ids,
        "createdAt": client.created_at,
        "revokedAt": client.revoked_at,
    })
}

fn join_ids(ids: &[i64]) -> String {
    ids.iter().map(i64::to_string).collect::<Vec<_>>().join(" ")
}

fn write_table(out: &mut impl Write, clients: &[ClientRecord]) -> std::io::Result<()> {
    if clients.is_empty() {
        return writeln!(out, "no clients; add one with `jobs-admin clients create`");
    }
    let header = [
        "CLIENT ID",
        "NAME",
        "SCOPES",
        "CUSTOMERS",
        "CREATED",
        "REVOKED",
    ]
    .map(String::from);
    let rows: Vec<[String; 6]> = clients
        .iter()
        .map(|client| {
            [
                client.id.to_string(),
                client.name.clone(),
                client.scopes.join(" "),
                join_ids(&client.customer_ids),
                client.created_at.format("%Y-%m-%d %H:%M:%SZ").to_string(),
                client
                    .revoked_at
                    .map(|at| at.format("%Y-%m-%d %H:%M:%SZ").to_string())
                    .unwrap_or_else(|| "-".into()),
            ]
        })
        .collect();
    let mut widths = header.clone().map(|cell| cell.chars().count());
    for row in &rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    for row in std::iter::once(&header).chain(&rows) {
        let cells: Vec<String> = row
            .iter()
            .zip(widths)
            .map(|(cell, width)| format!("{cell:<width$}"))
            .collect();
        writeln!(out, "{}", cells.join("  ").trim_end())?;
    }
    Ok(())
}
