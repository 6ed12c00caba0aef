//! `Credentials`: the credential authority of a serving process. It owns the
//! in-memory credential view, the last-seen batch and reloads, answers
//! authentication from memory, and keeps the view exact as changes commit here
//! or are reported from other instances.

use std::collections::HashSet;
use std::sync::Arc;

use async_trait::async_trait;
use keywarden_domain::{AcceptedTypes, ApiToken, RequiredScope, Selector};

use crate::seen::SeenTracker;
use crate::usecases::{CredentialAuthority, ExternalChange, Principal};
use crate::verify::{self, Refusal, VerifiedToken};
use crate::view::CredentialView;
use crate::{ApiTokenRepository, AppError, Clock};

/// The credential view with what keeps it exact and what authentication
/// records beside it.
pub(crate) struct Credentials {
    repository: Arc<dyn ApiTokenRepository>,
    clock: Arc<dyn Clock>,
    view: CredentialView,
    seen: SeenTracker,
    /// Reloads run one at a time: each relies on the previous one's mark.
    reloading: tokio::sync::Mutex<()>,
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
        }
    }

    /// Checks a presented credential against `required` (the check admin
    /// authentication and verification share); a valid one is recorded as
    /// seen now, in scope or not.
    pub(crate) fn check(
        &self,
        presented: &str,
        required: &RequiredScope,
    ) -> Result<VerifiedToken, Refusal> {
        verify::check(
            &self.view,
            &self.seen,
            self.clock.now(),
            presented,
            required,
        )
    }

    /// Authenticates a caller of the Admin API: the shared check, admin
    /// tokens only.
    ///
    /// # Errors
    /// As for [`crate::ApiTokenUseCases::authenticate_admin`].
    pub(crate) fn authenticate_admin(&self, presented: &str) -> Result<Principal, AppError> {
        const ADMIN_API: RequiredScope = RequiredScope::of_types(AcceptedTypes::ADMIN);
        let (outcome, result) = match self.check(presented, &ADMIN_API) {
            Ok(token) => (
                "ok",
                Ok(Principal::token(
                    token.selector,
                    Arc::clone(&token.facts.name),
                    token.facts.token_type,
                )),
            ),
            Err(Refusal::OutOfScope(_)) => ("wrong_type", Err(AppError::Forbidden)),
            Err(refusal) => (refusal.label(), Err(AppError::Unauthorized)),
        };
        metrics::counter!("keywarden_authentications_total", "outcome" => outcome).increment(1);
        result
    }

    /// A create or update this process committed.
    pub(crate) fn committed(&self, token: &ApiToken) {
        self.view.apply(token);
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
}

#[cfg(test)]
mod tests;
