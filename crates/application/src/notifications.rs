//! Lifecycle notifications (lifecycle §4): the webhook dispatcher, one
//! [`BackgroundTask`] per configured endpoint, which delivers the audit
//! trail's events after the endpoint's cursor at least once and in order,
//! retrying with capped, jittered exponential backoff and giving up only
//! after `give_up_after`; the expiry watch, which records expiry warnings;
//! and the reaper of unused tokens. What is durable (the cursor, the notices)
//! is the [`NotificationStore`]'s; how a message looks on the wire and is
//! signed is the [`WebhookSender`]'s.

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use keywarden_domain::{
    Actor, Announcement, AuditEvent, EventType, ExpiryWarnings, StoredEvent, SYSTEM,
};
use tracing::{debug, info, warn};

use crate::background::{BackgroundTask, Stop};
use crate::credentials::Credentials;
use crate::ports::{Delivered, EndpointState, ExpiryNotice, NotificationStore};
use crate::{ApiTokenRepository, Clock, RepositoryError};

#[cfg(test)]
mod tests;

/// How long a claim on an endpoint lasts without renewal. An instance killed
/// mid-delivery holds its endpoints at most this long.
const LEASE: Duration = Duration::from_millis(6500);
/// A claim is renewed before a send once less than this is left, so that
/// no send outlasts it (the sender's timeout is shorter).
const RENEW_BELOW: Duration = Duration::from_millis(5500);
/// How often an idle dispatcher looks for new events.
const POLL: Duration = Duration::from_millis(250);
/// Events read per round.
const BATCH: u32 = 100;
/// The first retry waits about this long; each next one twice as long…
const FIRST_RETRY: Duration = Duration::from_secs(1);
/// …but never longer than this.
const LONGEST_RETRY: Duration = Duration::from_secs(600);
/// How often unused tokens are looked for.
const REAP_EVERY: Duration = Duration::from_secs(60);

/// An HMAC key for signing deliveries; `Debug` never shows it.
#[derive(Clone, PartialEq, Eq)]
pub struct SigningKey(Vec<u8>);

impl SigningKey {
    pub fn new(bytes: Vec<u8>) -> Self {
        Self(bytes)
    }

    pub fn expose(&self) -> &[u8] {
        &self.0
    }
}

impl fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SigningKey(<redacted>)")
    }
}

/// A configured webhook endpoint (`[[webhooks]]`).
#[derive(Debug, Clone)]
pub struct Endpoint {
    pub url: String,
    pub key: SigningKey,
    /// The event types it takes; `None`: all.
    pub events: Option<Vec<EventType>>,
}

impl Endpoint {
    pub fn takes(&self, kind: EventType) -> bool {
        self.events
            .as_ref()
            .is_none_or(|kinds| kinds.contains(&kind))
    }

    /// The URL as metrics and logs may show it: no user, password or query.
    pub fn label(&self) -> String {
        redact_endpoint(&self.url)
    }
}

/// `scheme://host[:port]/path` of `url`: what identifies an endpoint to a
/// person, without the credentials a URL may carry.
pub fn redact_endpoint(url: &str) -> String {
    let (scheme, rest) = url.split_once("://").unwrap_or(("", url));
    let rest = rest.split(['?', '#']).next().unwrap_or("");
    let rest = match rest.split_once('/') {
        Some((authority, path)) => {
            let host = authority.rsplit('@').next().unwrap_or(authority);
            format!("{host}/{path}")
        }
        None => rest.rsplit('@').next().unwrap_or(rest).to_string(),
    };
    format!("{scheme}://{rest}")
}

/// What lifecycle notifications are configured to do.
#[derive(Debug, Clone)]
pub struct NotificationSettings {
    pub endpoints: Vec<Endpoint>,
    /// A delivery failing this long after its event was recorded is given up.
    pub give_up_after: chrono::Duration,
    pub expiry_warnings: ExpiryWarnings,
    /// How often the expiry watch looks (notices are due within 60 s).
    pub expiry_check_interval: Duration,
    /// Tokens unused this long are expired (`tokens.expire_unused_after`).
    pub expire_unused_after: Option<chrono::Duration>,
}

/// Why a delivery failed, for the endpoint's last error: the status the
/// endpoint answered or the transport's failure; never the payload.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct DeliveryError(pub String);

/// Sends one event to one endpoint, signed, and says whether it accepted it
/// (a 2xx answer within the sender's timeout).
#[cfg_attr(any(test, feature = "mocks"), mockall::automock)]
#[async_trait]
pub trait WebhookSender: Send + Sync {
    /// # Errors
    /// Any answer but 2xx, a timeout, or a transport error.
    async fn send(
        &self,
        endpoint: &Endpoint,
        event: &StoredEvent,
        attempt_at: DateTime<Utc>,
    ) -> Result<(), DeliveryError>;
}

/// How long to wait before attempt `attempts + 1` after `attempts` failed
/// ones: doubling from [`FIRST_RETRY`], capped at [`LONGEST_RETRY`], then
/// drawn from its upper half (`jitter` in [0, 1)) so that endpoints failing
/// together do not retry in lockstep.
pub fn backoff(attempts: u32, jitter: f64) -> Duration {
    let doubled = FIRST_RETRY.saturating_mul(1 << attempts.saturating_sub(1).min(20));
    let capped = doubled.min(LONGEST_RETRY);
    capped.mul_f64(0.5 + 0.5 * jitter.clamp(0.0, 1.0))
}

fn jitter() -> f64 {
    let mut byte = [0u8; 2];
    // Jitter need not be unpredictable, only spread: a failure leaves 0.5.
    if getrandom::fill(&mut byte).is_err() {
        return 0.5;
    }
    f64::from(u16::from_le_bytes(byte)) / f64::from(u16::MAX)
}

fn to_chrono(duration: Duration) -> chrono::Duration {
    chrono::Duration::from_std(duration).unwrap_or(chrono::Duration::MAX)
}

/// An identifier for this process's claims on endpoints.
pub fn instance_id() -> String {
    let nanos = Utc::now().timestamp_subsec_nanos();
    format!("{}-{nanos:08x}", std::process::id())
}

/// Delivers one endpoint's events, while this instance holds it.
pub struct Dispatcher {
    endpoint: Endpoint,
    label: String,
    owner: String,
    store: Arc<dyn NotificationStore>,
    sender: Arc<dyn WebhookSender>,
    clock: Arc<dyn Clock>,
    give_up_after: chrono::Duration,
    /// Until when this instance's claim runs, as far as it knows.
    held_until: Option<DateTime<Utc>>,
    state: EndpointState,
}

/// What one round found.
enum Round {
    /// Nothing to do now.
    Idle,
    /// More may be waiting: go again at once.
    More,
}

impl Dispatcher {
    pub fn new(
        endpoint: Endpoint,
        owner: String,
        store: Arc<dyn NotificationStore>,
        sender: Arc<dyn WebhookSender>,
        clock: Arc<dyn Clock>,
        give_up_after: chrono::Duration,
    ) -> Self {
        Self {
            label: endpoint.label(),
            endpoint,
            owner,
            store,
            sender,
            clock,
            give_up_after,
            held_until: None,
            state: EndpointState {
                attempts: 0,
                next_attempt_at: None,
            },
        }
    }

    /// Holds the endpoint for at least `RENEW_BELOW` more; false when another
    /// instance holds it.
    async fn hold(&mut self) -> Result<bool, RepositoryError> {
        let now = self.clock.now();
        if self
            .held_until
            .is_some_and(|until| until - now > to_chrono(RENEW_BELOW))
        {
            return Ok(true);
        }
        let until = now + to_chrono(LEASE);
        match self
            .store
            .claim_endpoint(self.endpoint.url.clone(), self.owner.clone(), now, until)
            .await?
        {
            Some(state) => {
                if self.held_until.is_none() {
                    debug!(endpoint = %self.label, "this instance delivers to the endpoint");
                }
                self.held_until = Some(until);
                self.state = state;
                Ok(true)
            }
            None => {
                self.held_until = None;
                Ok(false)
            }
        }
    }

    fn lost(&mut self) {
        warn!(endpoint = %self.label, "another instance took over the endpoint");
        self.held_until = None;
    }

    fn count(&self, result: &'static str, n: u32) {
        metrics::counter!(
            "keywarden_webhook_deliveries_total",
            "endpoint" => self.label.clone(),
            "result" => result
        )
        .increment(u64::from(n));
    }

    fn oldest_pending(&self, oldest: Option<&StoredEvent>) {
        let age = oldest.map_or(0.0, |stored| {
            (self.clock.now() - stored.event.created_at)
                .to_std()
                .map_or(0.0, |age| age.as_secs_f64())
        });
        metrics::gauge!(
            "keywarden_webhook_oldest_pending_seconds",
            "endpoint" => self.label.clone()
        )
        .set(age);
    }

    async fn advance(&mut self, delivered: Delivered) -> Result<bool, RepositoryError> {
        let moved = self
            .store
            .record_delivered(
                self.endpoint.url.clone(),
                self.owner.clone(),
                delivered,
                self.clock.now(),
            )
            .await?;
        if moved {
            self.state = EndpointState {
                attempts: 0,
                next_attempt_at: None,
            };
        } else {
            self.lost();
        }
        Ok(moved)
    }

    async fn round(&mut self) -> Result<Round, RepositoryError> {
        if !self.hold().await? {
            return Ok(Round::Idle);
        }
        if self
            .state
            .next_attempt_at
            .is_some_and(|at| at > self.clock.now())
        {
            return Ok(Round::Idle);
        }
        let pending = self
            .store
            .pending_events(self.endpoint.url.clone(), BATCH)
            .await?;
        let full = pending.len() == BATCH as usize;
        self.oldest_pending(
            pending
                .iter()
                .map(|p| &p.stored)
                .find(|stored| self.endpoint.takes(stored.event.event_type)),
        );
        // Events the endpoint does not take move the cursor with the next
        // write, not one write each.
        let mut skipped = None;
        for event in pending {
            if !self.endpoint.takes(event.stored.event.event_type) {
                skipped = Some(event.position);
                continue;
            }
            if !self.hold().await? {
                return Ok(Round::Idle);
            }
            let now = self.clock.now();
            match self.sender.send(&self.endpoint, &event.stored, now).await {
                Ok(()) => {
                    skipped = None;
                    if !self
                        .advance(Delivered {
                            through: event.position,
                            sent: 1,
                            given_up: 0,
                            error: None,
                        })
                        .await?
                    {
                        return Ok(Round::Idle);
                    }
                    self.count("sent", 1);
                }
                Err(error) if now - event.stored.event.created_at >= self.give_up_after => {
                    skipped = None;
                    warn!(
                        endpoint = %self.label,
                        event = event.stored.id,
                        error = %error,
                        "giving up a webhook delivery"
                    );
                    if !self
                        .advance(Delivered {
                            through: event.position,
                            sent: 0,
                            given_up: 1,
                            error: Some(format!("gave up event {}: {error}", event.stored.id)),
                        })
                        .await?
                    {
                        return Ok(Round::Idle);
                    }
                    self.count("given_up", 1);
                }
                Err(error) => {
                    // Counted before passing over skipped events, which
                    // clears the stored attempts.
                    let attempts = self.state.attempts.saturating_add(1);
                    if let Some(through) = skipped.take() {
                        if !self.advance(Delivered::skipped(through)).await? {
                            return Ok(Round::Idle);
                        }
                    }
                    let wait = backoff(attempts, jitter());
                    let state = EndpointState {
                        attempts,
                        next_attempt_at: Some(now + to_chrono(wait)),
                    };
                    debug!(
                        endpoint = %self.label,
                        event = event.stored.id,
                        attempts,
                        retry_in_ms = wait.as_millis(),
                        error = %error,
                        "webhook delivery failed"
                    );
                    self.count("failed", 1);
                    if self
                        .store
                        .record_failure(
                            self.endpoint.url.clone(),
                            self.owner.clone(),
                            state,
                            error.0,
                            now,
                        )
                        .await?
                    {
                        self.state = state;
                    } else {
                        self.lost();
                    }
                    return Ok(Round::Idle);
                }
            }
        }
        if let Some(through) = skipped {
            self.advance(Delivered::skipped(through)).await?;
        }
        Ok(if full { Round::More } else { Round::Idle })
    }
}

#[async_trait]
impl BackgroundTask for Dispatcher {
    async fn run(mut self: Box<Self>, mut stop: Stop) {
        metrics::gauge!(
            "keywarden_webhook_oldest_pending_seconds",
            "endpoint" => self.label.clone()
        )
        .set(0.0);
        for result in ["sent", "failed", "given_up"] {
            self.count(result, 0);
        }
        loop {
            let pause = match self.round().await {
                Ok(Round::More) => Duration::ZERO,
                Ok(Round::Idle) => POLL,
                Err(error) => {
                    warn!(endpoint = %self.label, error = %error, "webhook dispatcher: storage failed; will retry");
                    self.held_until = None;
                    POLL * 4
                }
            };
            tokio::select! {
                () = tokio::time::sleep(pause) => {}
                () = stop.requested() => break,
            }
        }
        if self.held_until.is_some() {
            // Another instance (or this one, restarted) may take over at once.
            if let Err(error) = self
                .store
                .release_endpoint(self.endpoint.url.clone(), self.owner.clone())
                .await
            {
                warn!(endpoint = %self.label, error = %error, "could not release the endpoint");
            }
        }
    }
}

/// Records expiry warnings as they become due (lifecycle §4), every
/// `interval`, the first time at start.
pub struct ExpiryWatch {
    store: Arc<dyn NotificationStore>,
    repository: Arc<dyn ApiTokenRepository>,
    clock: Arc<dyn Clock>,
    warnings: ExpiryWarnings,
    interval: Duration,
}

impl ExpiryWatch {
    pub fn new(
        store: Arc<dyn NotificationStore>,
        repository: Arc<dyn ApiTokenRepository>,
        clock: Arc<dyn Clock>,
        warnings: ExpiryWarnings,
        interval: Duration,
    ) -> Self {
        Self {
            store,
            repository,
            clock,
            warnings,
            interval,
        }
    }

    /// One look: records what is due now; returns the events written.
    ///
    /// # Errors
    /// Storage errors; nothing due is lost, it is found again next time.
    pub async fn check(&self) -> Result<u32, RepositoryError> {
        let now = self.clock.now();
        let candidates = self
            .store
            .expiry_candidates(self.warnings.horizon(now))
            .await?;
        let due: Vec<_> = candidates
            .into_iter()
            .filter_map(|c| {
                let due = self.warnings.due(c.expires_at, now, &c.noticed)?;
                Some((c, due))
            })
            .collect();
        if due.is_empty() {
            return Ok(0);
        }
        let announced: Vec<_> = due
            .iter()
            .filter(|(_, due)| due.announce.is_some())
            .map(|(c, _)| c.selector)
            .collect();
        let tokens: HashMap<_, _> = self
            .repository
            .find_many(announced)
            .await?
            .into_iter()
            .map(|token| (token.selector(), token))
            .collect();
        let notices = due
            .into_iter()
            .map(|(candidate, due)| {
                let event = match (due.announce, tokens.get(&candidate.selector)) {
                    (Some(Announcement::Expiring(label)), Some(token)) => {
                        Some(AuditEvent::token_expiring(token, &label, now))
                    }
                    (Some(Announcement::Expired), Some(token)) => {
                        Some(AuditEvent::token_expired(token, now))
                    }
                    _ => None,
                };
                ExpiryNotice {
                    selector: candidate.selector,
                    expires_at: candidate.expires_at,
                    labels: due.record,
                    event,
                }
            })
            // A notice announced for a token deleted meanwhile records nothing.
            .filter(|notice| notice.event.is_some() || !notice.labels.is_empty())
            .collect();
        self.store.record_expiry_notices(notices).await
    }
}

#[async_trait]
impl BackgroundTask for ExpiryWatch {
    async fn run(self: Box<Self>, mut stop: Stop) {
        loop {
            match self.check().await {
                Ok(0) => {}
                Ok(written) => info!(events = written, "recorded expiry warnings"),
                Err(error) => {
                    warn!(error = %error, "could not check for expiring tokens; will retry")
                }
            }
            tokio::select! {
                () = tokio::time::sleep(self.interval) => {}
                () = stop.requested() => break,
            }
        }
    }
}

/// Expires tokens unused for `unused_for` (`tokens.expire_unused_after`),
/// with an `api-token-updated` event by `system`.
pub struct UnusedTokenReaper {
    repository: Arc<dyn ApiTokenRepository>,
    credentials: Arc<Credentials>,
    clock: Arc<dyn Clock>,
    unused_for: chrono::Duration,
}

impl UnusedTokenReaper {
    pub(crate) fn new(
        repository: Arc<dyn ApiTokenRepository>,
        credentials: Arc<Credentials>,
        clock: Arc<dyn Clock>,
        unused_for: chrono::Duration,
    ) -> Self {
        Self {
            repository,
            credentials,
            clock,
            unused_for,
        }
    }

    /// One look: expires what is unused now; returns how many.
    ///
    /// # Errors
    /// Storage errors.
    pub async fn reap(&self) -> Result<usize, crate::AppError> {
        // Sightings batched in memory count: a token used a second ago is used.
        crate::CredentialAuthority::flush_seen(self.credentials.as_ref()).await?;
        let now = self.clock.now();
        let cutoff = now - self.unused_for;
        let actor = Actor::named(SYSTEM);
        let mut expired = 0;
        for token in self.repository.list().await? {
            let last_used = token.seen_at().unwrap_or(token.created_at());
            if last_used > cutoff || token.expires_at().is_some_and(|at| at <= now) {
                continue;
            }
            if let Some(change) = self
                .repository
                .expire_unused(token.selector(), cutoff, &actor, now)
                .await?
            {
                self.credentials.committed(&change.after);
                info!(token = %change.after.name().as_str(), "expired a token unused since {last_used}");
                expired += 1;
            }
        }
        Ok(expired)
    }
}

#[async_trait]
impl BackgroundTask for UnusedTokenReaper {
    async fn run(self: Box<Self>, mut stop: Stop) {
        loop {
            if let Err(error) = self.reap().await {
                warn!(error = %error, "could not expire unused tokens; will retry");
            }
            tokio::select! {
                () = tokio::time::sleep(REAP_EVERY) => {}
                () = stop.requested() => break,
            }
        }
    }
}
