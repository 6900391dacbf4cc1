//! Access tokens: a static one from the caller, or one fetched (and refreshed
//! during long runs) from the Azure CLI, a managed identity, or a client
//! secret. Tokens and secrets never appear in errors, logs or `Debug` output.

mod jwt;
mod sources;

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use tokio::sync::Mutex;

use crate::clock::Clock;
use crate::secret::Secret;
use crate::transport::Transport;

pub use jwt::expiry as jwt_expiry;

/// Where tokens come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Credential {
    /// A token the caller gave (`"token"`).
    Static(Secret),
    /// `az account get-access-token` (`"auth":{"type":"azureCli"}`).
    AzureCli {
        /// The `az` program to run.
        program: String,
    },
    /// Azure Automation / App Service (`IDENTITY_ENDPOINT` + `IDENTITY_HEADER`)
    /// or a VM's IMDS (`"auth":{"type":"managedIdentity"}`).
    ManagedIdentity {
        /// A user-assigned identity's client id; none for the system identity.
        client_id: Option<String>,
    },
    /// `AZURE_TENANT_ID`, `AZURE_CLIENT_ID` and `AZURE_CLIENT_SECRET` against the
    /// cloud's login host (`"auth":{"type":"clientSecret"}`).
    ClientSecret,
}

impl Credential {
    /// The name errors use for this source.
    pub fn name(&self) -> &'static str {
        match self {
            Credential::Static(_) => "token",
            Credential::AzureCli { .. } => "azureCli",
            Credential::ManagedIdentity { .. } => "managedIdentity",
            Credential::ClientSecret => "clientSecret",
        }
    }
}

/// Why no usable token could be had. The message names the source and what to
/// do; it never holds a token or secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthError {
    /// The token expired and cannot be renewed (error code `TokenExpired`).
    pub expired: bool,
    /// What went wrong, for people.
    pub message: String,
}

impl AuthError {
    fn new(source: &str, message: impl Into<String>) -> AuthError {
        AuthError {
            expired: false,
            message: format!("{source}: {}", message.into()),
        }
    }
}

/// A token and when it stops working.
#[derive(Clone)]
pub(crate) struct Fetched {
    pub token: Secret,
    pub expires_at: Option<SystemTime>,
}

struct State {
    current: Option<(Fetched, SystemTime)>,
    generation: u64,
    failure: Option<AuthError>,
}

/// Hands out a valid token for one resource, fetching or refreshing it as
/// needed. Shared by every batch of a run.
pub struct TokenSource {
    credential: Credential,
    resource: String,
    login: String,
    http: Arc<dyn Transport>,
    clock: Clock,
    state: Mutex<State>,
}

/// Longest time before expiry at which a token is renewed.
const REFRESH_MARGIN: Duration = Duration::from_secs(300);

impl TokenSource {
    /// A source of tokens for `resource` (e.g. `https://management.azure.com/`),
    /// using `login` as the Entra host for client secrets. Identity endpoints
    /// are called through `http`, the engine's own transport.
    pub fn new(
        credential: Credential,
        resource: String,
        login: String,
        http: Arc<dyn Transport>,
        clock: Clock,
    ) -> TokenSource {
        TokenSource {
            credential,
            resource,
            login,
            http,
            clock,
            state: Mutex::new(State {
                current: None,
                generation: 0,
                failure: None,
            }),
        }
    }

    /// Whether a rejected token can be replaced by a fresh one.
    pub fn can_refresh(&self) -> bool {
        !matches!(self.credential, Credential::Static(_))
    }

    /// A token that is valid now, and its generation (which changes whenever a
    /// new token is fetched).
    pub async fn token(&self) -> Result<(Secret, u64), AuthError> {
        let mut st = self.state.lock().await;
        if let Some(f) = &st.failure {
            return Err(f.clone());
        }
        let now = self.clock.now();
        if let Some((t, fetched_at)) = &st.current {
            let usable = match self.credential {
                // Nothing here can renew it: it is used to its last moment
                // (the caller hands in the next one ahead of that).
                Credential::Static(_) => t.expires_at.is_none_or(|e| e > now),
                _ => !needs_refresh(t, *fetched_at, now),
            };
            if usable {
                return Ok((t.token.clone(), st.generation));
            }
            if let Credential::Static(_) = self.credential {
                return Err(expired_static(t.expires_at));
            }
        }
        self.fetch(&mut st, now).await
    }

    /// A fresh token from the caller, for a static credential (the caller
    /// renews it, as the PowerShell module does from the Az context during long
    /// runs). It is used from the next batch on.
    pub fn hand_in(&self, token: Secret) -> Result<(), AuthError> {
        if self.can_refresh() {
            return Err(AuthError::new(
                self.credential.name(),
                "this run renews its own tokens; a token cannot be handed in",
            ));
        }
        let now = self.clock.now();
        let f = Fetched {
            expires_at: jwt::expiry(token.expose()),
            token,
        };
        if f.expires_at.is_some_and(|e| e <= now) {
            return Err(expired_static(f.expires_at));
        }
        let mut st = self.state.blocking_lock();
        st.generation += 1;
        st.current = Some((f, now));
        st.failure = None;
        Ok(())
    }

    /// The service refused the token, which nothing here can renew: every
    /// batch after this one ends at once with `why` instead of being sent, until
    /// the caller hands in another token ([`TokenSource::hand_in`]).
    pub async fn refuse(&self, why: &str) {
        if self.can_refresh() {
            return;
        }
        let mut st = self.state.lock().await;
        st.failure = Some(AuthError {
            expired: false,
            message: format!("not sent: {why}; pass a valid token"),
        });
    }

    /// Replaces the token of `generation` after the service rejected it (only
    /// once per generation, however many batches saw the rejection).
    pub async fn refresh(&self, generation: u64) -> Result<(), AuthError> {
        let mut st = self.state.lock().await;
        if st.generation != generation || !self.can_refresh() {
            return Ok(());
        }
        let now = self.clock.now();
        self.fetch(&mut st, now).await.map(|_| ())
    }

    async fn fetch(&self, st: &mut State, now: SystemTime) -> Result<(Secret, u64), AuthError> {
        let fetched = match &self.credential {
            Credential::Static(t) => {
                let f = Fetched {
                    token: t.clone(),
                    expires_at: jwt::expiry(t.expose()),
                };
                if f.expires_at.is_some_and(|e| e <= now) {
                    return Err(expired_static(f.expires_at));
                }
                Ok(f)
            }
            Credential::AzureCli { program } => {
                sources::azure_cli(program, &self.resource, now).await
            }
            Credential::ManagedIdentity { client_id } => {
                sources::managed_identity(&*self.http, &self.resource, client_id.as_deref()).await
            }
            Credential::ClientSecret => {
                sources::client_secret(&*self.http, &self.login, &self.resource, now).await
            }
        };
        let source = match &self.credential {
            Credential::Static(_) => "token",
            Credential::AzureCli { .. } => "azureCli",
            Credential::ManagedIdentity { .. } => "managedIdentity",
            Credential::ClientSecret => "clientSecret",
        };
        match fetched {
            Ok(f) => {
                let lifetime = f.expires_at.and_then(|e| e.duration_since(now).ok());
                // Which source and how long it lives; never the token.
                tracing::info!(
                    source,
                    lifetime_s = lifetime.map(|d| d.as_secs()),
                    "token fetched"
                );
                st.generation += 1;
                st.current = Some((f.clone(), now));
                Ok((f.token, st.generation))
            }
            Err(e) => {
                tracing::warn!(source, why = %e.message, "no token");
                // A source that cannot give a token now will not give one a
                // moment later: fail the rest of the run fast.
                st.failure = Some(e.clone());
                Err(e)
            }
        }
    }
}

fn needs_refresh(t: &Fetched, fetched_at: SystemTime, now: SystemTime) -> bool {
    let Some(expires_at) = t.expires_at else {
        return false;
    };
    let lifetime = expires_at.duration_since(fetched_at).unwrap_or_default();
    let margin = REFRESH_MARGIN.min(lifetime / 5);
    now + margin >= expires_at
}

fn expired_static(at: Option<SystemTime>) -> AuthError {
    let when = at
        .map(httpdate::fmt_http_date)
        .unwrap_or_else(|| "some time ago".into());
    AuthError {
        expired: true,
        message: format!("token: the access token expired ({when}); pass a fresh token, or use \"auth\" so AzBatch can renew it"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renews_a_fifth_of_the_lifetime_early_at_most_five_minutes() {
        let t0 = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000);
        let short = Fetched {
            token: Secret::new("t"),
            expires_at: Some(t0 + Duration::from_secs(100)),
        };
        assert!(!needs_refresh(&short, t0, t0 + Duration::from_secs(79)));
        assert!(needs_refresh(&short, t0, t0 + Duration::from_secs(80)));
        let hour = Fetched {
            token: Secret::new("t"),
            expires_at: Some(t0 + Duration::from_secs(3600)),
        };
        assert!(!needs_refresh(&hour, t0, t0 + Duration::from_secs(3299)));
        assert!(needs_refresh(&hour, t0, t0 + Duration::from_secs(3300)));
        let forever = Fetched {
            token: Secret::new("t"),
            expires_at: None,
        };
        assert!(!needs_refresh(
            &forever,
            t0,
            t0 + Duration::from_secs(1 << 30)
        ));
    }
}
