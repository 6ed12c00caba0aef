//! `AdminApi`: the use cases the Admin API drives ([`ApiTokenUseCases`]),
//! composed from the credential authority, the shared token commands (admin
//! tokens refused) and the catalog synced at start.

use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use keywarden_domain::{
    ApiToken, Credential, Environment, EventType, Project, Rotated, StoredEvent, TokenName,
    TokenRef,
};
use tracing::warn;

use crate::catalog::Catalog;
use crate::credentials::Credentials;
use crate::tokens::Tokens;
use crate::usecases::{
    ApiTokenUseCases, CreateToken, EventQuery, Principal, RotateToken, SearchQuery,
};
use crate::{ApiTokenRepository, AppError, EventPage};

const DEFAULT_EVENT_LIMIT: u32 = 100;
const MAX_EVENT_LIMIT: u32 = 1000;
/// Unleash's event search pages 50 at a time by default.
const DEFAULT_SEARCH_LIMIT: u32 = 50;

/// The Admin API's use cases over one serving process's state.
pub(crate) struct AdminApi {
    pub(crate) repository: Arc<dyn ApiTokenRepository>,
    pub(crate) credentials: Arc<Credentials>,
    pub(crate) tokens: Tokens,
    pub(crate) catalog: Catalog,
}

#[async_trait]
impl ApiTokenUseCases for AdminApi {
    async fn authenticate_admin(&self, presented: &str) -> Result<Principal, AppError> {
        self.credentials.authenticate_admin(presented).await
    }

    async fn update_expiry(
        &self,
        actor: &Principal,
        target: TokenRef,
        expires_at: DateTime<Utc>,
    ) -> Result<bool, AppError> {
        self.tokens.update_expiry(actor, target, expires_at).await
    }

    async fn list_tokens(&self) -> Result<Vec<ApiToken>, AppError> {
        self.tokens.list().await
    }

    async fn unused_tokens(&self, unused_for: chrono::Duration) -> Result<Vec<ApiToken>, AppError> {
        // Sightings still batched in memory count as use.
        if let Err(error) = crate::CredentialAuthority::flush_seen(self.credentials.as_ref()).await
        {
            warn!(error = %error, "listing unused tokens without the latest sightings");
        }
        let cutoff = self
            .tokens
            .now()
            .checked_sub_signed(unused_for)
            .unwrap_or(DateTime::<Utc>::MIN_UTC);
        let mut tokens = self.tokens.list().await?;
        tokens.retain(|token| token.seen_at().unwrap_or(token.created_at()) <= cutoff);
        Ok(tokens)
    }

    async fn tokens_named(&self, name: &str) -> Result<Vec<ApiToken>, AppError> {
        // No stored token has a name that is not a valid one (e.g. with NUL).
        if TokenName::parse(name).is_err() {
            return Ok(Vec::new());
        }
        Ok(self.repository.find_by_name(name).await?)
    }

    async fn create_token(
        &self,
        actor: &Principal,
        request: CreateToken,
    ) -> Result<(ApiToken, Credential), AppError> {
        self.tokens.create(&self.catalog, actor, request).await
    }

    async fn delete_token(&self, actor: &Principal, target: TokenRef) -> Result<bool, AppError> {
        self.tokens.delete(actor, target).await
    }

    async fn events(&self, query: EventQuery) -> Result<Vec<StoredEvent>, AppError> {
        let limit = query
            .limit
            .unwrap_or(DEFAULT_EVENT_LIMIT)
            .min(MAX_EVENT_LIMIT);
        // Only these types exist; any other filter matches nothing, and is
        // never sent to storage.
        let event_type = match query.event_type.as_deref().map(EventType::parse) {
            None => None,
            Some(Some(known)) => Some(known),
            Some(None) => return Ok(Vec::new()),
        };
        Ok(self.repository.events(event_type, limit).await?)
    }

    async fn rotate_token(
        &self,
        actor: &Principal,
        target: TokenRef,
        request: RotateToken,
    ) -> Result<Rotated, AppError> {
        self.tokens.rotate(actor, target, request).await
    }

    async fn search_events(&self, query: SearchQuery) -> Result<EventPage, AppError> {
        let limit = query
            .limit
            .unwrap_or(DEFAULT_SEARCH_LIMIT)
            .min(MAX_EVENT_LIMIT);
        // No stored text holds a NUL (names refuse control characters, and
        // PostgreSQL cannot store one): such a filter matches nothing, and
        // is never sent to storage.
        let search = &query.search;
        let values = [&search.types, &search.created_by]
            .into_iter()
            .flatten()
            .flatten()
            .chain(&search.text);
        if values.into_iter().any(|value| value.contains('\0')) {
            return Ok(EventPage {
                events: Vec::new(),
                total: 0,
            });
        }
        Ok(self
            .repository
            .search_events(query.search, query.offset.unwrap_or(0), limit)
            .await?)
    }

    fn projects(&self) -> Vec<Project> {
        self.catalog.projects().to_vec()
    }

    fn environments(&self) -> Vec<Environment> {
        self.catalog.environments().to_vec()
    }

    async fn ready(&self) -> Result<(), AppError> {
        self.repository.ping().await.map_err(|error| {
            warn!(error = %error, "readiness check failed");
            AppError::from(error)
        })?;
        if self.credentials.is_loaded() {
            Ok(())
        } else {
            Err(AppError::Unavailable(
                "the credential view is still loading".into(),
            ))
        }
    }
}

#[cfg(test)]
mod tests;
