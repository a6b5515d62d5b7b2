//! Who may do what (SPEC §2): OAuth 2.0 client credentials. Registered clients trade their
//! id and secret for a signed, short-lived access token ([`Authenticator::issue_token`]);
//! every `/v1` request presents one ([`Authenticator::authenticate`]), and the token's
//! scopes and customers decide what it may touch. A revoked client's tokens stop working
//! within half a second on every server: requests check the registry, not just the
//! signature, trusting what it said for at most that long ([`recent`]).

pub mod clients;
pub mod keys;
pub mod recent;
pub mod secrets;
pub mod tokens;

use projections::{ClientRegistry, StoreError};
use secrets::{HashError, SecretHasher};
use std::sync::Arc;
use tokens::{IssuedToken, TokenKeys};
use uuid::Uuid;

/// What a token may be used for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, clap::ValueEnum)]
pub enum Scope {
    /// Every `GET` under `/v1/jobs`.
    #[value(name = "jobs:read")]
    JobsRead,
    /// Every change under `/v1/jobs`.
    #[value(name = "jobs:write")]
    JobsWrite,
    /// Everything under `/v1/webhooks`.
    #[value(name = "webhooks:manage")]
    WebhooksManage,
}

impl Scope {
    pub const ALL: [Scope; 3] = [Scope::JobsRead, Scope::JobsWrite, Scope::WebhooksManage];

    pub fn as_str(self) -> &'static str {
        match self {
            Scope::JobsRead => "jobs:read",
            Scope::JobsWrite => "jobs:write",
            Scope::WebhooksManage => "webhooks:manage",
        }
    }

    pub fn parse(text: &str) -> Option<Scope> {
        Scope::ALL.into_iter().find(|scope| scope.as_str() == text)
    }

    /// The scopes in a stable order, each once.
    pub fn canonical(scopes: &[Scope]) -> Vec<Scope> {
        let mut scopes = scopes.to_vec();
        scopes.sort();
        scopes.dedup();
        scopes
    }

    /// The OAuth form: names separated by single spaces, in a stable order.
    pub fn join(scopes: &[Scope]) -> String {
        Scope::canonical(scopes)
            .iter()
            .map(|scope| scope.as_str())
            .collect::<Vec<_>>()
            .join(" ")
    }
}

impl std::fmt::Display for Scope {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The authenticated caller of a request: a client, through one of its tokens.
#[derive(Debug, Clone)]
pub struct Caller {
    pub client_id: Uuid,
    pub token_id: String,
    pub scopes: Vec<Scope>,
    pub customers: Vec<i64>,
}

impl Caller {
    pub fn has_scope(&self, scope: Scope) -> bool {
        self.scopes.contains(&scope)
    }

    pub fn may_act_for(&self, customer_id: i64) -> bool {
        self.customers.contains(&customer_id)
    }
}

/// Why a token was not accepted. Each is a 401.
#[derive(Debug, thiserror::Error)]
pub enum TokenRejection {
    #[error("the access token has expired; request a new one")]
    Expired,
    #[error("the access token is not yet valid")]
    NotYetValid,
    #[error("the access token's client has been revoked")]
    ClientRevoked,
    #[error("the access token is not valid")]
    Invalid,
}

impl TokenRejection {
    /// A stable name for metrics.
    pub fn label(&self) -> &'static str {
        match self {
            TokenRejection::Expired => "expired",
            TokenRejection::NotYetValid => "not_yet_valid",
            TokenRejection::ClientRevoked => "client_revoked",
            TokenRejection::Invalid => "invalid_token",
        }
    }
}

/// A token request the token endpoint has parsed: who claims to ask, and for what.
pub struct TokenRequest {
    pub client_id: String,
    pub client_secret: String,
    /// The scope names asked for; `None` asks for everything the client holds.
    pub scope: Option<Vec<String>>,
}

/// Why the token endpoint said no.
#[derive(Debug, thiserror::Error)]
pub enum TokenRequestError {
    /// Unknown client, wrong secret or revoked client: one answer for all three.
    #[error("client authentication failed")]
    InvalidClient,
    /// A scope of this service that the client does not hold.
    #[error("scope not held: {0}")]
    ScopeNotHeld(String),
    /// A name that is no scope of this service.
    #[error("unknown scope: {0}")]
    UnknownScope(String),
    #[error(transparent)]
    Failed(#[from] AuthFailure),
}

/// A failure that is not the caller's fault.
#[derive(Debug, thiserror::Error)]
pub enum AuthFailure {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Hash(#[from] HashError),
    #[error("signing a token failed: {0}")]
    Signing(#[from] jsonwebtoken::errors::Error),
}

#[derive(Debug, thiserror::Error)]
pub enum AuthenticationError {
    #[error(transparent)]
    Rejected(#[from] TokenRejection),
    #[error(transparent)]
    Failed(#[from] AuthFailure),
}

/// Issues tokens and checks them.
pub struct Authenticator {
    keys: TokenKeys,
    hasher: Arc<SecretHasher>,
    clients: Arc<dyn ClientRegistry>,
    recent: recent::RecentClients,
}

impl Authenticator {
    pub fn new(
        keys: TokenKeys,
        hasher: Arc<SecretHasher>,
        clients: Arc<dyn ClientRegistry>,
    ) -> Self {
        Self {
            keys,
            hasher,
            clients,
            recent: recent::RecentClients::default(),
        }
    }

    /// The keys tokens are signed and checked with.
    pub fn keys(&self) -> &TokenKeys {
        &self.keys
    }

    /// RFC 6749 §4.4: checks the client's credentials (always with one slow hash check, known
    /// client or not), then the scope asked for, then signs a token.
    pub async fn issue_token(
        &self,
        request: TokenRequest,
    ) -> Result<(IssuedToken, Vec<Scope>), TokenRequestError> {
        let client = match Uuid::parse_str(&request.client_id) {
            Ok(id) => self.clients.client(id).await.map_err(AuthFailure::from)?,
            Err(_) => None,
        };
        let hash = client.as_ref().map(|client| client.secret_hash.clone());
        let secret_matches = self
            .hasher
            .verify(request.client_secret, hash)
            .await
            .map_err(AuthFailure::from)?;
        let client = match client {
            Some(client) if secret_matches && !client.is_revoked() => client,
            _ => return Err(TokenRequestError::InvalidClient),
        };
        let held: Vec<Scope> = client
            .scopes
            .iter()
            .filter_map(|s| Scope::parse(s))
            .collect();
        let granted = match request.scope {
            None => held,
            Some(asked) => {
                let mut granted = Vec::with_capacity(asked.len());
                for name in &asked {
                    match Scope::parse(name) {
                        Some(scope) if held.contains(&scope) => granted.push(scope),
                        Some(_) => return Err(TokenRequestError::ScopeNotHeld(name.clone())),
                        None => return Err(TokenRequestError::UnknownScope(name.clone())),
                    }
                }
                granted
            }
        };
        let granted = Scope::canonical(&granted);
        let token = self
            .keys
            .issue(client.id, &granted, &client.customer_ids, domain::now())
            .map_err(AuthFailure::from)?;
        Ok((token, granted))
    }

    /// The caller a bearer token stands for: signed by our key, for our audience, within its
    /// lifetime, and of a client that is still registered and not revoked (as the registry
    /// said at most [`recent::FRESH_FOR`] ago), with the token's scopes and customers that
    /// the client's row still grants.
    pub async fn authenticate(&self, token: &str) -> Result<Caller, AuthenticationError> {
        use jsonwebtoken::errors::ErrorKind;
        let claims = self
            .keys
            .verify(token)
            .map_err(|error| match error.kind() {
                ErrorKind::ExpiredSignature => TokenRejection::Expired,
                ErrorKind::ImmatureSignature => TokenRejection::NotYetValid,
                _ => TokenRejection::Invalid,
            })?;
        let client_id = Uuid::parse_str(&claims.sub).map_err(|_| TokenRejection::Invalid)?;
        let standing = self
            .recent
            .standing(self.clients.as_ref(), client_id)
            .await
            .map_err(AuthFailure::from)?;
        let registered = match standing {
            recent::Standing::Active(registered) => registered,
            recent::Standing::Revoked => return Err(TokenRejection::ClientRevoked.into()),
            recent::Standing::Unknown => return Err(TokenRejection::Invalid.into()),
        };
        // What the token says, as far as the client's row still grants it: narrowing a
        // client narrows its live tokens at once, and a token minted with a leaked key
        // gets no more than its client was ever given.
        Ok(Caller {
            client_id,
            token_id: claims.jti,
            scopes: claims
                .scope
                .split(' ')
                .filter_map(Scope::parse)
                .filter(|scope| registered.scopes.contains(scope))
                .collect(),
            customers: claims
                .customers
                .into_iter()
                .filter(|customer| registered.customers.contains(customer))
                .collect(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scopes_have_one_spelling_and_one_order() {
        for scope in Scope::ALL {
            assert_eq!(Scope::parse(scope.as_str()), Some(scope));
        }
        assert_eq!(Scope::parse("jobs:admin"), None);
        assert_eq!(
            Scope::parse("JOBS:READ"),
            None,
            "scope names are case-sensitive"
        );
        assert_eq!(
            Scope::join(&[Scope::JobsWrite, Scope::JobsRead, Scope::JobsWrite]),
            "jobs:read jobs:write"
        );
    }
}
