//! What the registry said of a client lately, so that a busy client's requests do not each
//! read its row. An answer serves for at most [`FRESH_FOR`]: a revocation, or a client's
//! scopes or customers narrowed — by `jobs-admin` or any server sharing the database — take
//! effect on every server within that, with no channel between them to fail.

use super::Scope;
use projections::{ClientRegistry, StoreError};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use uuid::Uuid;

/// How long a registry answer is trusted (issue 12: revocation within 1 s everywhere).
pub const FRESH_FOR: Duration = Duration::from_millis(500);

/// Beyond this many clients, answers that are no longer fresh are dropped; should all be
/// fresh, all are (only validly signed tokens get this far, so these are real clients).
const MOST_CLIENTS: usize = 10_000;

/// Where a client stands in the registry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Standing {
    /// Registered and not revoked, with what its row grants now.
    Active(Arc<Registered>),
    Revoked,
    Unknown,
}

/// What a client's registry row grants: a token never gets more than this, whatever it
/// says it was signed with.
#[derive(Debug, PartialEq, Eq)]
pub struct Registered {
    pub scopes: Vec<Scope>,
    /// A set: a token naming thousands of customers is checked against it per request.
    pub customers: std::collections::HashSet<i64>,
}

#[derive(Default)]
pub struct RecentClients {
    answers: Mutex<HashMap<Uuid, (Instant, Standing)>>,
}

impl RecentClients {
    /// The client's standing: as the registry said it less than [`FRESH_FOR`] ago, or as it
    /// says now.
    pub async fn standing(
        &self,
        registry: &dyn ClientRegistry,
        id: Uuid,
    ) -> Result<Standing, StoreError> {
        if let Some(standing) = self.fresh(id) {
            return Ok(standing);
        }
        let standing = match registry.client(id).await? {
            Some(client) if client.is_revoked() => Standing::Revoked,
            Some(client) => Standing::Active(Arc::new(Registered {
                scopes: client
                    .scopes
                    .iter()
                    .filter_map(|s| Scope::parse(s))
                    .collect(),
                customers: client.customer_ids.into_iter().collect(),
            })),
            None => Standing::Unknown,
        };
        self.remember(id, standing.clone());
        Ok(standing)
    }

    fn fresh(&self, id: Uuid) -> Option<Standing> {
        let answers = self
            .answers
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        answers
            .get(&id)
            .filter(|(read, _)| read.elapsed() < FRESH_FOR)
            .map(|(_, standing)| standing.clone())
    }

    fn remember(&self, id: Uuid, standing: Standing) {
        let mut answers = self
            .answers
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if answers.len() >= MOST_CLIENTS {
            answers.retain(|_, (read, _)| read.elapsed() < FRESH_FOR);
            if answers.len() >= MOST_CLIENTS {
                answers.clear();
            }
        }
        answers.insert(id, (Instant::now(), standing));
    }
}
