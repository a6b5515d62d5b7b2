//! `jobs-admin webhooks list`: every customer's webhook subscriptions with their delivery
//! state and lag (the customer's events after the checkpoint, counted now), so an operator
//! sees which receivers are behind or failing without reading the database.

use super::table::{short_time, write_table};
use super::{AdminError, Format};
use crate::webhooks::delivery::{lag_of, LAG_CAP};
use crate::webhooks::time_of;
use projections::webhooks::Subscription;
use projections::JobStore;
use serde_json::json;
use std::io::Write;

pub async fn list(
    store: &JobStore,
    customer: Option<i64>,
    format: Format,
    out: &mut impl Write,
) -> Result<(), AdminError> {
    let subscriptions = store.webhooks().subscriptions(customer).await?;
    let log = store.log();
    let mut rows = Vec::with_capacity(subscriptions.len());
    for subscription in subscriptions {
        let lag = lag_of(log.as_ref(), &subscription).await?;
        rows.push((subscription, lag));
    }
    match format {
        Format::Json => {
            let list: Vec<_> = rows
                .iter()
                .map(|(subscription, lag)| subscription_json(subscription, *lag))
                .collect();
            writeln!(out, "{:#}", json!(list))?;
        }
        Format::Table if rows.is_empty() => writeln!(out, "no webhook subscriptions")?,
        Format::Table => {
            let table: Vec<[String; 8]> = rows
                .iter()
                .map(|(subscription, lag)| {
                    [
                        subscription.id.to_string(),
                        subscription.customer_id.to_string(),
                        subscription.status.as_str().to_owned(),
                        lag_text(*lag),
                        subscription.delivered.to_string(),
                        subscription.attempts.to_string(),
                        subscription
                            .lease_owner
                            .as_ref()
                            .and(subscription.lease_until_ms)
                            .map_or_else(|| "-".to_owned(), |ms| short_time(time_of(ms))),
                        subscription.url.clone(),
                    ]
                })
                .collect();
            write_table(
                out,
                [
                    "id",
                    "customer",
                    "status",
                    "lag",
                    "delivered",
                    "failed_attempts",
                    "leased_until",
                    "url",
                ],
                &table,
            )?;
        }
    }
    Ok(())
}

fn lag_text(lag: i64) -> String {
    if lag >= LAG_CAP {
        format!("{LAG_CAP}+")
    } else {
        lag.to_string()
    }
}

fn subscription_json(subscription: &Subscription, lag: i64) -> serde_json::Value {
    json!({
        "id": subscription.id,
        "customerId": subscription.customer_id,
        "url": subscription.url,
        "eventTypes": subscription.event_types,
        "status": subscription.status.as_str(),
        "lag": lag,
        "lagCapped": lag >= LAG_CAP,
        "delivered": subscription.delivered,
        "failedAttempts": subscription.attempts,
        "failingSince": subscription.failing_since_ms.map(time_of),
        "nextAttemptAt": subscription.next_attempt_ms.map(time_of),
        "leaseOwner": subscription.lease_owner,
        "leasedUntil": subscription.lease_until_ms.map(time_of),
        "createdAt": time_of(subscription.created_at_ms),
    })
}
