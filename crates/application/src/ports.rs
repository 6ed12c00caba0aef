//! The outbound ports the use cases need, each documented as a contract that
//! every adapter (and every mock) must honour.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use keywarden_domain::{
    ApiToken, AuditEvent, Environment, EnvironmentScope, EventType, Project, Projects,
    SecretMaterial, Selector, StoredEvent, TokenRef, TokenType, Verifier,
};

use crate::RepositoryError;

/// A token before and after an expiry change.
#[derive(Debug, Clone, PartialEq)]
pub struct ExpiryChange {
    pub before: ApiToken,
    pub after: ApiToken,
}

/// What authentication needs of a stored token: loading only this, rather
/// than whole tokens, keeps start-up and full reloads cheap on large tables.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredCredential {
    pub selector: Selector,
    pub verifier: Verifier,
    pub name: String,
    pub token_type: TokenType,
    /// Kept in memory so a verification needs no database round trip.
    pub projects: Projects,
    pub environment: EnvironmentScope,
    pub expires_at: Option<DateTime<Utc>>,
    pub revision: i64,
}

impl From<&ApiToken> for StoredCredential {
    fn from(token: &ApiToken) -> Self {
        Self {
            selector: token.selector(),
            verifier: *token.verifier(),
            name: token.name().as_str().to_string(),
            token_type: token.token_type(),
            projects: token.projects().clone(),
            environment: token.environment().clone(),
            expires_at: token.expires_at(),
            revision: token.revision(),
        }
    }
}

/// Durable storage of tokens, their reference data and their audit trail.
///
/// Every method that changes a token writes the matching audit event in the
/// same transaction: both are stored or neither is. Tokens returned carry the
/// revision storage gave them (it grows with every change to the token).
#[cfg_attr(any(test, feature = "mocks"), mockall::automock)]
#[async_trait]
pub trait ApiTokenRepository: Send + Sync {
    /// Adds the declared projects and environments that are missing and
    /// updates changed ones. With `prune`, also removes those no longer
    /// declared, unless tokens still reference them.
    ///
    /// # Errors
    /// `Unavailable` when storage cannot be reached; `Internal` otherwise.
    async fn sync_catalog(
        &self,
        projects: Vec<Project>,
        environments: Vec<Environment>,
        prune: bool,
    ) -> Result<(), RepositoryError>;

    /// Every stored token, newest first.
    ///
    /// # Errors
    /// `Unavailable`, `Corrupt` for a row that breaks the domain's rules, `Internal`.
    async fn list(&self) -> Result<Vec<ApiToken>, RepositoryError>;

    /// The credential of every stored token, in no particular order.
    ///
    /// # Errors
    /// As for [`ApiTokenRepository::list`].
    async fn credentials(&self) -> Result<Vec<StoredCredential>, RepositoryError>;

    /// Tokens whose name equals `name` exactly (case-sensitive), newest first.
    ///
    /// # Errors
    /// As for [`ApiTokenRepository::list`].
    async fn find_by_name(&self, name: &str) -> Result<Vec<ApiToken>, RepositoryError>;

    /// The tokens with these selectors; selectors with no token are absent
    /// from the answer.
    ///
    /// # Errors
    /// As for [`ApiTokenRepository::list`].
    async fn find_many(&self, selectors: Vec<Selector>) -> Result<Vec<ApiToken>, RepositoryError>;

    /// Stores a new token and `event` unless that would make more than `limit`
    /// tokens. Returns the token as stored.
    ///
    /// # Errors
    /// `LimitExceeded(limit)`; `Conflict` when the selector or verifier is taken
    /// or a referenced project or environment does not exist; `Unavailable`; `Internal`.
    async fn insert(
        &self,
        token: ApiToken,
        event: AuditEvent,
        limit: u32,
    ) -> Result<ApiToken, RepositoryError>;

    /// Stores `tokens` with one `api-token-created` event each (by `actor`), but
    /// only if no token is stored yet; atomically, so of several instances
    /// starting together exactly one inserts. Returns whether it inserted.
    ///
    /// # Errors
    /// `Conflict` for duplicate credentials or unknown projects/environments;
    /// `Unavailable`; `Internal`.
    async fn insert_initial(
        &self,
        tokens: Vec<ApiToken>,
        actor: &str,
        at: DateTime<Utc>,
    ) -> Result<bool, RepositoryError>;

    /// Sets the expiry of the token `target` refers to and records
    /// `api-token-updated` (by `actor`, at `at`) in one transaction. A
    /// credential reference whose verifier does not match is no match. Returns
    /// `None`, and changes nothing, when there is no match.
    ///
    /// # Errors
    /// `Unavailable`, `Corrupt`, `Internal`.
    async fn update_expiry(
        &self,
        target: TokenRef,
        expires_at: DateTime<Utc>,
        actor: &str,
        at: DateTime<Utc>,
    ) -> Result<Option<ExpiryChange>, RepositoryError>;

    /// Deletes the token `target` refers to and records `api-token-deleted` in
    /// one transaction. Returns the deleted token, or `None` when there was no
    /// match (and then records nothing).
    ///
    /// # Errors
    /// `Unavailable`, `Corrupt`, `Internal`.
    async fn delete(
        &self,
        target: TokenRef,
        actor: &str,
        at: DateTime<Utc>,
    ) -> Result<Option<ApiToken>, RepositoryError>;

    /// Records when tokens last authenticated. Later instants win; selectors
    /// of tokens deleted meanwhile are ignored. Does not count as a change
    /// (no event, no new revision).
    ///
    /// # Errors
    /// `Unavailable`, `Internal`.
    async fn record_seen(
        &self,
        seen: Vec<(Selector, DateTime<Utc>)>,
    ) -> Result<(), RepositoryError>;

    /// Audit events, newest first, optionally only of one type, at most `limit`.
    ///
    /// # Errors
    /// `Unavailable`, `Corrupt`, `Internal`.
    async fn events(
        &self,
        event_type: Option<EventType>,
        limit: u32,
    ) -> Result<Vec<StoredEvent>, RepositoryError>;

    /// The declared projects, in id order.
    ///
    /// # Errors
    /// `Unavailable`, `Corrupt`, `Internal`.
    async fn projects(&self) -> Result<Vec<Project>, RepositoryError>;

    /// The declared environments, by sort order then name.
    ///
    /// # Errors
    /// `Unavailable`, `Corrupt`, `Internal`.
    async fn environments(&self) -> Result<Vec<Environment>, RepositoryError>;

    /// Succeeds when storage answers a trivial query.
    ///
    /// # Errors
    /// `Unavailable` otherwise.
    async fn ping(&self) -> Result<(), RepositoryError>;
}

/// The current time. A port so tests can stand still or jump.
#[cfg_attr(any(test, feature = "mocks"), mockall::automock)]
pub trait Clock: Send + Sync {
    fn now(&self) -> DateTime<Utc>;
}

/// Randomness for new credentials. Implementations must use a
/// cryptographically secure source (the operating system's CSPRNG).
#[cfg_attr(any(test, feature = "mocks"), mockall::automock)]
pub trait SecretGenerator: Send + Sync {
    /// # Errors
    /// When the source of randomness fails; no credential may be made then.
    fn generate(&self) -> Result<SecretMaterial, crate::BoxError>;
}
