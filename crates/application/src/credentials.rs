//! `Credentials`: the credential authority of a serving process. It owns the
//! in-memory credential view, the last-seen batch and reloads, answers
//! authentication from memory, and keeps the view exact as changes commit here
//! or are reported from other instances. Until the first full load completes
//! (the process already serves then), a credential the view lacks is looked up
//! in storage once and kept: the one exception to "no database round trip".

use std::collections::HashSet;
use std::sync::Arc;

use async_trait::async_trait;
use keywarden_domain::{AcceptedTypes, ApiToken, Credential, RequiredScope, Selector};
use tokio::sync::watch;

use crate::seen::SeenTracker;
use crate::usecases::{CredentialAuthority, ExternalChange, Principal};
use crate::verify::{self, Refusal, VerifiedToken};
use crate::view::{CredentialView, Rejection};
use crate::{ApiTokenRepository, AppError, Clock};

/// How long a check of an operator-chosen credential waits for the view to
/// finish loading before it answers 503: such a credential cannot be looked
/// up by selector.
const LOAD_WAIT: std::time::Duration = std::time::Duration::from_secs(5);

/// The credential view with what keeps it exact and what authentication
/// records beside it.
pub(crate) struct Credentials {
    repository: Arc<dyn ApiTokenRepository>,
    clock: Arc<dyn Clock>,
    view: CredentialView,
    seen: SeenTracker,
    /// Reloads run one at a time: each relies on the previous one's mark.
    reloading: tokio::sync::Mutex<()>,
    /// Becomes true once a full load has completed, and stays true.
    loaded: watch::Sender<bool>,
}

impl Credentials {
    /// An empty view: [`CredentialAuthority::refresh_view`] fills it.
    pub(crate) fn new(repository: Arc<dyn ApiTokenRepository>, clock: Arc<dyn Clock>) -> Self {
        Self {
            repository,
            clock,
            view: CredentialView::default(),
            seen: SeenTracker::default(),
            reloading: tokio::sync::Mutex::new(()),
            loaded: watch::Sender::new(false),
        }
    }

    /// Whether the view has been loaded in full at least once.
    pub(crate) fn is_loaded(&self) -> bool {
        *self.loaded.borrow()
    }

    /// Checks a presented credential against `required` (the check admin
    /// authentication and verification share); a valid one is recorded as
    /// seen now, in scope or not.
    pub(crate) async fn check(
        &self,
        presented: &str,
        required: &RequiredScope,
    ) -> Result<VerifiedToken, Refusal> {
        let now = self.clock.now();
        let (embedded, verifier) = Credential::new(presented).key();
        let mut found = self.view.check(embedded, &verifier, now);
        if matches!(found, Err(Rejection::Unknown)) && !self.is_loaded() {
            match embedded {
                Some(selector) => self.look_up(selector).await?,
                // An operator-chosen credential carries no selector to look
                // up by; such tokens are few, so it waits for the view.
                None => self.wait_until_loaded().await?,
            }
            found = self.view.check(embedded, &verifier, now);
        }
        verify::admit(&self.seen, now, found, required)
    }

    /// Waits, a bounded time, for the first full load of the view.
    async fn wait_until_loaded(&self) -> Result<(), Refusal> {
        let mut loaded = self.loaded.subscribe();
        let waited = tokio::time::timeout(LOAD_WAIT, loaded.wait_for(|done| *done))
            .await
            .map(|outcome| outcome.is_ok());
        match waited {
            Ok(true) => Ok(()),
            _ => Err(Refusal::Unavailable),
        }
    }

    /// Brings one token from storage into a view that is still loading. It
    /// enters like any change (newest revision wins, tombstones stay), so a
    /// write or a deletion applied meanwhile is never undone; a selector
    /// storage does not know leaves nothing behind.
    async fn look_up(&self, selector: Selector) -> Result<(), Refusal> {
        metrics::counter!("keywarden_credential_lookups_total").increment(1);
        let found = self
            .repository
            .find_many(vec![selector])
            .await
            .map_err(|error| {
                tracing::warn!(error = %error, "could not look up a credential while the view loads");
                Refusal::Unavailable
            })?;
        for token in &found {
            self.view.apply(token);
        }
        Ok(())
    }

    /// Authenticates a caller of the Admin API: the shared check, admin
    /// tokens only.
    ///
    /// # Errors
    /// As for [`crate::ApiTokenUseCases::authenticate_admin`].
    pub(crate) async fn authenticate_admin(&self, presented: &str) -> Result<Principal, AppError> {
        const ADMIN_API: RequiredScope = RequiredScope::of_types(AcceptedTypes::ADMIN);
        let (outcome, result) = match self.check(presented, &ADMIN_API).await {
            Ok(token) => (
                "ok",
                Ok(Principal::token(
                    token.selector,
                    Arc::clone(&token.facts.name),
                    token.facts.token_type,
                )),
            ),
            Err(Refusal::OutOfScope(_)) => ("wrong_type", Err(AppError::Forbidden)),
            Err(Refusal::Unavailable) => (
                "unavailable",
                Err(AppError::Unavailable(
                    "the credential could not be looked up".into(),
                )),
            ),
            Err(refusal) => (refusal.label(), Err(AppError::Unauthorized)),
        };
        metrics::counter!("keywarden_authentications_total", "outcome" => outcome).increment(1);
        result
    }

    /// What start-up used to learn by listing every token before serving
    /// (seconds at a million tokens): how many there are, and whether an
    /// admin token can use the Admin API. Logged before the view counts as
    /// loaded, so `/ready` answering 200 means it is in the log.
    fn report_first_load(&self) {
        let tokens = self.view.len();
        tracing::info!(tokens, "credential view loaded");
        if !self.view.has_usable_admin(self.clock.now()) {
            tracing::warn!(
                "no admin token can use the Admin API; create one with: \
                 keywarden tokens create --type admin --name <name>"
            );
        }
    }

    /// A create or update this process committed.
    pub(crate) fn committed(&self, token: &ApiToken) {
        self.view.apply(token);
    }

    /// The verifier of the live token with `selector`, as the view holds it.
    pub(crate) fn verifier_of(&self, selector: Selector) -> Option<keywarden_domain::Verifier> {
        self.view.verifier_of(selector)
    }

    /// A delete this process committed.
    pub(crate) fn deleted(&self, selector: Selector) {
        self.view.remove(selector);
    }
}

#[async_trait]
impl CredentialAuthority for Credentials {
    async fn refresh_view(&self) -> Result<(), AppError> {
        let _one_at_a_time = self.reloading.lock().await;
        let mark = self.view.mark();
        let credentials = self.repository.credentials().await?;
        self.view.reload(&credentials, mark);
        drop(credentials);
        if !self.is_loaded() {
            self.report_first_load();
        }
        self.loaded.send_replace(true);
        metrics::counter!("keywarden_credential_reloads_total").increment(1);
        Ok(())
    }

    async fn apply_external(&self, change: ExternalChange) -> Result<(), AppError> {
        match change {
            ExternalChange::Tokens(selectors) => {
                metrics::counter!("keywarden_external_changes_total")
                    .increment(selectors.len() as u64);
                // One read for the whole batch; a selector with no token left
                // was deleted.
                let found = self.repository.find_many(selectors.clone()).await?;
                let present: HashSet<_> = found.iter().map(ApiToken::selector).collect();
                for token in &found {
                    self.view.apply(token);
                }
                for selector in selectors {
                    if !present.contains(&selector) {
                        self.view.remove(selector);
                    }
                }
                Ok(())
            }
            ExternalChange::Unknown => self.refresh_view().await,
        }
    }

    async fn flush_seen(&self) -> Result<usize, AppError> {
        let batch = self.seen.take();
        if batch.is_empty() {
            return Ok(0);
        }
        let count = batch.len();
        if let Err(error) = self.repository.record_seen(batch.clone()).await {
            self.seen.restore(batch);
            metrics::counter!("keywarden_seen_flushes_total", "result" => "error").increment(1);
            return Err(error.into());
        }
        metrics::counter!("keywarden_seen_flushes_total", "result" => "ok").increment(1);
        metrics::counter!("keywarden_seen_tokens_written_total").increment(count as u64);
        Ok(count)
    }

    fn credential_count(&self) -> usize {
        self.view.len()
    }

    async fn loaded(&self) {
        let mut loaded = self.loaded.subscribe();
        // The sender lives as long as `self`, so waiting cannot fail.
        let _ = loaded.wait_for(|loaded| *loaded).await;
    }
}

#[cfg(test)]
mod tests;
