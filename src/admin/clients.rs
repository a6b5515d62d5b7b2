//! `jobs-admin clients create | list | revoke`.

use super::table::{short_time, write_table};
use super::{AdminError, ClientsCommand, Format};
use crate::auth::clients::{create_client, revoke_client, ClientAdminError};
use crate::auth::secrets::SecretHasher;
use projections::{ClientRecord, JobStore};
use serde_json::json;
use std::io::Write;

pub async fn run(
    store: &JobStore,
    command: ClientsCommand,
    out: &mut impl Write,
) -> Result<(), AdminError> {
    let registry = store.clients();
    match command {
        ClientsCommand::Create {
            name,
            scopes,
            customers,
            format,
        } => {
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
                Format::Table => {
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
        ClientsCommand::List { format } => {
            let clients = registry.clients().await.map_err(ClientAdminError::from)?;
            match format {
                Format::Json => {
                    let list: Vec<_> = clients.iter().map(client_json).collect();
                    writeln!(out, "{:#}", json!(list))?;
                }
                Format::Table if clients.is_empty() => {
                    writeln!(out, "no clients; add one with `jobs-admin clients create`")?;
                }
                Format::Table => {
                    let rows: Vec<[String; 6]> = clients
                        .iter()
                        .map(|client| {
                            [
                                client.id.to_string(),
                                client.name.clone(),
                                client.scopes.join(" "),
                                join_ids(&client.customer_ids),
                                short_time(client.created_at),
                                client
                                    .revoked_at
                                    .map(short_time)
                                    .unwrap_or_else(|| "-".into()),
                            ]
                        })
                        .collect();
                    let header = [
                        "CLIENT ID",
                        "NAME",
                        "SCOPES",
                        "CUSTOMERS",
                        "CREATED",
                        "REVOKED",
                    ];
                    write_table(out, header, &rows)?;
                }
            }
        }
        ClientsCommand::Revoke { id } => {
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
