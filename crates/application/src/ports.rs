//! The outbound ports the use cases need, each documented as a contract that
//! every adapter (and every mock) must honour.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use keywarden_domain::{
    Actor, ApiToken, AuditEvent, Environment, EnvironmentScope, EventType, Project, Projects,
    Rotated, Rotation, RotationRefused, SecretMaterial, Selector, StoredEvent, TokenRef, TokenType,
    Verifier,
};

use crate::RepositoryError;

/// A token before and after an expiry change.
#[derive(Debug, Clone, PartialEq)]
pub struct ExpiryChange {
    pub before: ApiToken,
    pub after: ApiToken,
}

/// What became of a rotation.
#[derive(Debug, Clone)]
pub enum RotateOutcome {
    /// No token matched: nothing changed.
    NotFound,
    /// The token's state (or the request) broke a rule: nothing changed.
    Refused(RotationRefused),
    /// Committed: the old token as changed and its successor, both as stored.
    Rotated(Box<Rotated>),
}

/// Which audit events a search matches: every filter given narrows it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EventSearch {
    /// The event type is one of these.
    pub types: Option<Vec<String>>,
    /// `createdBy` is one of these.
    pub created_by: Option<Vec<String>>,
    /// Recorded at or after this instant.
    pub from: Option<DateTime<Utc>>,
    /// Recorded before this instant.
    pub before: Option<DateTime<Utc>>,
    /// Free text found, case-insensitively, in the type, the creator or the
    /// token's name.
    pub text: Option<String>,
}

/// One page of a search, newest first, and how many events match in all.
#[derive(Debug, Clone, PartialEq)]
pub struct EventPage {
    pub events: Vec<StoredEvent>,
    pub total: u64,
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
        actor: &Actor,
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
        actor: &Actor,
        at: DateTime<Utc>,
    ) -> Result<Option<ExpiryChange>, RepositoryError>;

    /// Rotates the token `target` refers to, in one transaction: reads it and
    /// the successor it already has (locked against concurrent changes),
    /// lets `rotation` decide, then stores the successor (whatever the token
    /// limit), sets the old token's expiry and successor link, and records
    /// `api-token-created` (with `rotated_from`) and `api-token-updated`, by
    /// `actor` at `rotation.now`. Of concurrent rotations of one token at
    /// most one succeeds; the others see its successor.
    ///
    /// # Errors
    /// `Conflict` when the new credential collides; `Unavailable`, `Corrupt`,
    /// `Internal`.
    async fn rotate(
        &self,
        target: TokenRef,
        rotation: Rotation,
        actor: &Actor,
    ) -> Result<RotateOutcome, RepositoryError>;

    /// Deletes the token `target` refers to and records `api-token-deleted` in
    /// one transaction. Returns the deleted token, or `None` when there was no
    /// match (and then records nothing).
    ///
    /// # Errors
    /// `Unavailable`, `Corrupt`, `Internal`.
    async fn delete(
        &self,
        target: TokenRef,
        actor: &Actor,
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

    /// The events `search` matches, newest first (id descending), skipping
    /// `offset` and returning at most `limit`, with the number matched in all.
    ///
    /// # Errors
    /// `Unavailable`, `Corrupt`, `Internal`.
    async fn search_events(
        &self,
        search: EventSearch,
        offset: u64,
        limit: u32,
    ) -> Result<EventPage, RepositoryError>;

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

    /// Expires the token `selector` names at `at` and records
    /// `api-token-updated` by `actor`, in one transaction, but only if, read
    /// for the change, it is still unexpired at `at` and unused since
    /// `cutoff` (last seen, or created if never seen, at or before it): of
    /// several instances expiring unused tokens, one records the change.
    /// `None` when nothing changed.
    ///
    /// # Errors
    /// `Unavailable`, `Corrupt`, `Internal`.
    async fn expire_unused(
        &self,
        selector: Selector,
        cutoff: DateTime<Utc>,
        actor: &Actor,
        at: DateTime<Utc>,
    ) -> Result<Option<ExpiryChange>, RepositoryError>;

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

/// Where an endpoint stands in the event log: every event after it is still
/// to be delivered. Made and compared by storage only (on PostgreSQL, commit
/// order is not id order); the dispatcher hands back what it was given.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct LogPosition {
    pub commit: i64,
    pub id: i64,
}

/// An event waiting for an endpoint, with its place in the log.
#[derive(Debug, Clone, PartialEq)]
pub struct PendingEvent {
    pub position: LogPosition,
    pub stored: StoredEvent,
}

/// An endpoint's retry state, as the instance holding it finds it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EndpointState {
    /// Failed attempts at the event after the cursor.
    pub attempts: u32,
    /// Not before this may the next attempt be made.
    pub next_attempt_at: Option<DateTime<Utc>>,
}

/// What became of the events up to a position.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivered {
    /// The cursor moves here.
    pub through: LogPosition,
    /// Events the endpoint accepted.
    pub sent: u32,
    /// Events abandoned after `notifications.give_up_after`.
    pub given_up: u32,
    /// Why the last one was given up, kept as the last error.
    pub error: Option<String>,
}

impl Delivered {
    /// Events the endpoint does not take, up to `through`: passed over.
    pub fn skipped(through: LogPosition) -> Self {
        Self {
            through,
            sent: 0,
            given_up: 0,
            error: None,
        }
    }
}

/// One endpoint as operators see it (`keywarden webhooks status`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EndpointStatus {
    pub url: String,
    /// Events after the cursor of the types the endpoint takes.
    pub backlog: u64,
    /// When the oldest of them was recorded.
    pub oldest_pending_at: Option<DateTime<Utc>>,
    pub attempts: u32,
    pub next_attempt_at: Option<DateTime<Utc>>,
    pub last_error: Option<String>,
    pub last_error_at: Option<DateTime<Utc>>,
    pub sent: u64,
    pub given_up: u64,
    /// The instance delivering, while its lease lasts.
    pub held_by: Option<String>,
}

/// A token whose expiry may call for notices, and the labels recorded for
/// that expiry so far.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExpiryCandidate {
    pub selector: Selector,
    pub expires_at: DateTime<Utc>,
    pub noticed: Vec<String>,
}

/// Notices to record for one token and expiry, and the event announcing them.
#[derive(Debug, Clone, PartialEq)]
pub struct ExpiryNotice {
    pub selector: Selector,
    pub expires_at: DateTime<Utc>,
    pub labels: Vec<String>,
    pub event: Option<AuditEvent>,
}

/// The durable side of lifecycle notifications (lifecycle §4): the webhook
/// outbox is the audit trail itself, read per endpoint after a cursor that
/// only moves once an event is delivered or given up; expiry notices are
/// recorded once per token, threshold and expiry by a unique key.
#[cfg_attr(any(test, feature = "mocks"), mockall::automock)]
#[async_trait]
pub trait NotificationStore: Send + Sync {
    /// Adds the endpoints not yet known, each with its cursor at the end of
    /// the log as of now: it receives the events recorded from then on.
    /// Known endpoints keep their cursor.
    ///
    /// # Errors
    /// `Unavailable`, `Internal`.
    async fn register_endpoints(
        &self,
        urls: Vec<String>,
        at: DateTime<Utc>,
    ) -> Result<(), RepositoryError>;

    /// Takes (or renews) the endpoint for `owner` until `until`, unless
    /// another owner's lease runs past `now`. `None`: someone else holds it.
    ///
    /// # Errors
    /// `Unavailable`, `Internal`.
    async fn claim_endpoint(
        &self,
        url: String,
        owner: String,
        now: DateTime<Utc>,
        until: DateTime<Utc>,
    ) -> Result<Option<EndpointState>, RepositoryError>;

    /// Gives up `owner`'s lease, so another instance may take over at once.
    ///
    /// # Errors
    /// `Unavailable`, `Internal`.
    async fn release_endpoint(&self, url: String, owner: String) -> Result<(), RepositoryError>;

    /// Up to `limit` events after the endpoint's cursor, in log order, that
    /// can no longer be preceded by an event committing later.
    ///
    /// # Errors
    /// `Unavailable`, `Corrupt`, `Internal`.
    async fn pending_events(
        &self,
        url: String,
        limit: u32,
    ) -> Result<Vec<PendingEvent>, RepositoryError>;

    /// Moves the cursor (if `owner` still holds the endpoint), counting what
    /// was sent and given up and clearing the retry state. Returns whether
    /// the lease was still `owner`'s.
    ///
    /// # Errors
    /// `Unavailable`, `Internal`.
    async fn record_delivered(
        &self,
        url: String,
        owner: String,
        delivered: Delivered,
        at: DateTime<Utc>,
    ) -> Result<bool, RepositoryError>;

    /// Records a failed attempt at the event after the cursor (if `owner`
    /// still holds the endpoint). Returns whether the lease was still `owner`'s.
    ///
    /// # Errors
    /// `Unavailable`, `Internal`.
    async fn record_failure(
        &self,
        url: String,
        owner: String,
        state: EndpointState,
        error: String,
        at: DateTime<Utc>,
    ) -> Result<bool, RepositoryError>;

    /// Each endpoint's state, for those given with the event types each takes
    /// (`None`: all); endpoints not registered are absent.
    ///
    /// # Errors
    /// `Unavailable`, `Internal`.
    async fn endpoint_statuses(
        &self,
        endpoints: Vec<(String, Option<Vec<String>>)>,
    ) -> Result<Vec<EndpointStatus>, RepositoryError>;

    /// Tokens expiring at or before `horizon` whose expired notice is not
    /// yet recorded, with the labels recorded for their current expiry.
    ///
    /// # Errors
    /// `Unavailable`, `Internal`.
    async fn expiry_candidates(
        &self,
        horizon: DateTime<Utc>,
    ) -> Result<Vec<ExpiryCandidate>, RepositoryError>;

    /// Records each notice's labels and, where its first label is new, its
    /// event, in one transaction per call; a notice whose token is gone or
    /// expires at another time by now records nothing. Returns the events
    /// written.
    ///
    /// # Errors
    /// `Unavailable`, `Internal`.
    async fn record_expiry_notices(
        &self,
        notices: Vec<ExpiryNotice>,
    ) -> Result<u32, RepositoryError>;
}
