//! The inbound ports: what the Admin API ([`ApiTokenUseCases`]), the
//! operator's command line ([`OperatorCommands`]) and the serving process's
//! background work ([`CredentialAuthority`]) can ask of keywarden, and the
//! request/identity types that cross them.

use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use keywarden_domain::{
    Actor, ApiToken, Credential, Environment, Project, Rotated, Selector, StoredEvent, TokenRef,
    TokenType,
};

use crate::{AppError, EventPage, EventSearch};

/// Who is acting: an authenticated token, or the operator at the command line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    selector: Option<Selector>,
    name: Arc<str>,
    token_type: TokenType,
}

impl Principal {
    pub fn token(selector: Selector, name: Arc<str>, token_type: TokenType) -> Self {
        Self {
            selector: Some(selector),
            name,
            token_type,
        }
    }

    /// An operator with admin rights who holds no token (the CLI, bootstrap).
    pub fn operator(name: &str) -> Self {
        Self {
            selector: None,
            name: Arc::from(name),
            token_type: TokenType::Admin,
        }
    }

    /// The name recorded as `createdBy` in audit events.
    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn token_type(&self) -> TokenType {
        self.token_type
    }

    pub fn selector(&self) -> Option<Selector> {
        self.selector
    }

    /// Who audit events record: the name, and the token when one acts.
    pub fn actor(&self) -> Actor {
        Actor {
            name: self.name.to_string(),
            token: self.selector,
        }
    }
}

/// A create request as the client sent it, fields not yet validated.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct CreateToken {
    pub token_name: String,
    pub token_type: String,
    /// Defaults to `development`.
    pub environment: Option<String>,
    /// Defaults to `["*"]`.
    pub projects: Option<Vec<String>>,
    /// The documented singular form; exclusive with `projects`.
    pub project: Option<String>,
    pub expires_at: Option<DateTime<Utc>>,
}

/// A rotation as the client asked for it (lifecycle §1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RotateToken {
    /// When the current credential stops working (now or earlier: at once).
    pub previous_expires_at: DateTime<Utc>,
    /// The new credential's expiry; `None` for the default.
    pub expires_at: Option<DateTime<Utc>>,
}

/// A page of the audit-trail search (lifecycle §3).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SearchQuery {
    pub search: EventSearch,
    /// Defaults to 0.
    pub offset: Option<u64>,
    /// Defaults to 50; at most 1000.
    pub limit: Option<u32>,
}

/// Which audit events to list.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EventQuery {
    pub event_type: Option<String>,
    /// Defaults to 100; at most 1000.
    pub limit: Option<u32>,
}

/// The use cases of the API-token resource.
#[cfg_attr(any(test, feature = "mocks"), mockall::automock)]
#[async_trait]
pub trait ApiTokenUseCases: Send + Sync {
    /// Authenticates a presented credential for the Admin API, from memory
    /// (from storage for a credential the view lacks while it first loads).
    ///
    /// # Errors
    /// `Unauthorized` for an unknown, deleted or expired credential;
    /// `Forbidden` for a valid token that is not an admin token;
    /// `Unavailable` when the view is loading and storage does not answer.
    async fn authenticate_admin(&self, presented: &str) -> Result<Principal, AppError>;

    /// Sets a token's expiry (a past instant expires it now). An unknown token
    /// is not an error: nothing is created, nothing changes, and the answer is
    /// `false`.
    ///
    /// # Errors
    /// `Unavailable` or `Internal` when storage fails.
    async fn update_expiry(
        &self,
        actor: &Principal,
        target: TokenRef,
        expires_at: DateTime<Utc>,
    ) -> Result<bool, AppError>;

    /// Every token, newest first, expired ones included.
    ///
    /// # Errors
    /// `Unavailable` or `Internal` when storage fails.
    async fn list_tokens(&self) -> Result<Vec<ApiToken>, AppError>;

    /// Tokens not used for `unused_for` (last seen, or created if never
    /// seen, that long ago or longer), newest first (lifecycle §4).
    ///
    /// # Errors
    /// `Unavailable` or `Internal` when storage fails.
    async fn unused_tokens(&self, unused_for: chrono::Duration) -> Result<Vec<ApiToken>, AppError>;

    /// Tokens whose name equals `name` exactly.
    ///
    /// # Errors
    /// `Unavailable` or `Internal` when storage fails.
    async fn tokens_named(&self, name: &str) -> Result<Vec<ApiToken>, AppError>;

    /// Creates a client, backend or frontend token and returns it with its
    /// credential, which is never available again.
    ///
    /// # Errors
    /// `Validation` naming the offending field; `LimitExceeded`; `Unavailable`, `Internal`.
    async fn create_token(
        &self,
        actor: &Principal,
        request: CreateToken,
    ) -> Result<(ApiToken, Credential), AppError>;

    /// Deletes a token if it exists; `false` when none matched.
    ///
    /// # Errors
    /// `Unavailable` or `Internal` when storage fails.
    async fn delete_token(&self, actor: &Principal, target: TokenRef) -> Result<bool, AppError>;

    /// Audit events, newest first.
    ///
    /// # Errors
    /// `Unavailable` or `Internal` when storage fails.
    async fn events(&self, query: EventQuery) -> Result<Vec<StoredEvent>, AppError>;

    /// Replaces a client, backend or frontend token by a successor with the
    /// same name and scope; the old credential works until
    /// `previous_expires_at`. Returns both tokens as committed and the
    /// successor's credential, which is never available again.
    ///
    /// # Errors
    /// `Validation` (an admin token, an overlap beyond the old expiry, an
    /// expiry against the policy); `NotFound`; `StateConflict` when the token
    /// has expired or was rotated already; `Unavailable`, `Internal`.
    async fn rotate_token(
        &self,
        actor: &Principal,
        target: TokenRef,
        request: RotateToken,
    ) -> Result<Rotated, AppError>;

    /// One page of the audit events a search matches, newest first, and how
    /// many match in all.
    ///
    /// # Errors
    /// `Unavailable` or `Internal` when storage fails.
    async fn search_events(&self, query: SearchQuery) -> Result<EventPage, AppError>;

    /// The declared projects.
    fn projects(&self) -> Vec<Project>;

    /// The declared environments.
    fn environments(&self) -> Vec<Environment>;

    /// Whether the service can serve requests that need storage, with the
    /// credential view loaded in full.
    ///
    /// # Errors
    /// `Unavailable` when storage does not answer or the view is still loading.
    async fn ready(&self) -> Result<(), AppError>;
}

/// What the operator's command line asks of keywarden, working on the
/// database directly. The same rules as the Admin API apply, except that
/// admin tokens may be created.
#[cfg_attr(any(test, feature = "mocks"), mockall::automock)]
#[async_trait]
pub trait OperatorCommands: Send + Sync {
    /// Creates a token of any type, admin included, after adding the declared
    /// projects and environments that storage lacks (none are removed).
    ///
    /// # Errors
    /// As for [`ApiTokenUseCases::create_token`], admin tokens aside.
    async fn create_token(
        &self,
        actor: &Principal,
        request: CreateToken,
    ) -> Result<(ApiToken, Credential), AppError>;

    /// Every token, newest first. Writes nothing.
    ///
    /// # Errors
    /// `Unavailable` or `Internal` when storage fails.
    async fn list_tokens(&self) -> Result<Vec<ApiToken>, AppError>;

    /// As [`ApiTokenUseCases::update_expiry`].
    ///
    /// # Errors
    /// `Unavailable` or `Internal` when storage fails.
    async fn update_expiry(
        &self,
        actor: &Principal,
        target: TokenRef,
        expires_at: DateTime<Utc>,
    ) -> Result<bool, AppError>;

    /// As [`ApiTokenUseCases::delete_token`].
    ///
    /// # Errors
    /// `Unavailable` or `Internal` when storage fails.
    async fn delete_token(&self, actor: &Principal, target: TokenRef) -> Result<bool, AppError>;

    /// As [`ApiTokenUseCases::rotate_token`], admin tokens included.
    ///
    /// # Errors
    /// As for [`ApiTokenUseCases::rotate_token`], admin tokens aside.
    async fn rotate_token(
        &self,
        actor: &Principal,
        target: TokenRef,
        request: RotateToken,
    ) -> Result<Rotated, AppError>;

    /// The tokens that break the lifetime policy (made before it changed).
    ///
    /// # Errors
    /// `Unavailable` or `Internal` when storage fails.
    async fn tokens_violating_policy(&self) -> Result<Vec<ApiToken>, AppError>;
}

/// Changes made by another instance sharing the database, as a change feed
/// reports them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ExternalChange {
    /// These tokens were created, changed or deleted.
    Tokens(Vec<Selector>),
    /// Changes may have been missed (the feed reconnected): reload everything.
    Unknown,
}

/// The credential view of a serving process, as its background work keeps it
/// exact: reloads, other instances' changes, and the batched last-seen times
/// authentication records.
#[cfg_attr(any(test, feature = "mocks"), mockall::automock)]
#[async_trait]
pub trait CredentialAuthority: Send + Sync {
    /// Reloads the view from storage (at start, and whenever this instance
    /// may have missed changes).
    ///
    /// # Errors
    /// Storage errors; the previous view stays in place then.
    async fn refresh_view(&self) -> Result<(), AppError>;

    /// Brings the view up to date with changes another instance made.
    ///
    /// # Errors
    /// Storage errors; the view keeps what it had.
    async fn apply_external(&self, change: ExternalChange) -> Result<(), AppError>;

    /// Writes the batched last-seen instants; returns how many. On failure
    /// the batch is kept for the next flush.
    ///
    /// # Errors
    /// Storage errors.
    async fn flush_seen(&self) -> Result<usize, AppError>;

    /// Number of live credentials in memory.
    fn credential_count(&self) -> usize;

    /// Completes once the view has been loaded in full (at once if it was).
    async fn loaded(&self);
}
