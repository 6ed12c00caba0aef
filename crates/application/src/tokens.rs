//! Changing tokens: the one implementation of create, expire and delete that
//! both front doors — the Admin API and the operator's command line — use, and
//! the operator's commands themselves. The front doors differ only in their
//! [`AdminTokens`] policy and in where their catalog comes from.

use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use keywarden_domain::{
    ApiToken, AuditEvent, Credential, NewToken, TokenName, TokenRef, TokenType,
};
use tracing::{info, warn};

use crate::catalog::{Catalog, Undeclared};
use crate::credentials::Credentials;
use crate::error::invalid;
use crate::usecases::{CreateToken, OperatorCommands, Principal};
use crate::{Adapters, AppError, RepositoryError};

/// Whether a front door may create admin tokens.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum AdminTokens {
    /// The Admin API: admin tokens come from configuration or the operator.
    Refused,
    /// The operator, who needs no admin token to make the first one.
    Allowed,
}

/// Create, expire, delete and list, with the rules and audit events both
/// front doors share.
pub(crate) struct Tokens {
    adapters: Adapters,
    token_limit: u32,
    admin_tokens: AdminTokens,
    /// The view that authenticates in this process, kept exact with every
    /// change committed here; `None` where nothing authenticates (one-off
    /// commands).
    credentials: Option<Arc<Credentials>>,
}

impl Tokens {
    pub(crate) fn new(
        adapters: Adapters,
        token_limit: u32,
        admin_tokens: AdminTokens,
        credentials: Option<Arc<Credentials>>,
    ) -> Self {
        Self {
            adapters,
            token_limit,
            admin_tokens,
            credentials,
        }
    }

    /// Creates a token whose references `catalog` resolves.
    ///
    /// # Errors
    /// As for [`crate::ApiTokenUseCases::create_token`].
    pub(crate) async fn create(
        &self,
        catalog: &Catalog,
        actor: &Principal,
        request: CreateToken,
    ) -> Result<(ApiToken, Credential), AppError> {
        let token_type =
            TokenType::parse(&request.token_type).map_err(|e| invalid(e, Some("type")))?;
        if token_type.is_admin() && self.admin_tokens == AdminTokens::Refused {
            return Err(AppError::validation(
                "Admin tokens cannot be created through the API: use INIT_ADMIN_API_TOKENS or the keywarden command line",
                Some("type"),
            ));
        }
        let name =
            TokenName::parse(&request.token_name).map_err(|e| invalid(e, Some("tokenName")))?;
        let environment =
            catalog.resolve_environment(token_type, request.environment.as_deref())?;
        let projects = catalog.resolve_projects(&request)?;
        let new = NewToken::new(name, token_type, projects, environment, request.expires_at)
            .map_err(|e| invalid(e, None))?;
        let now = self.adapters.clock.now();
        let scope = format!(
            "Environment={} or a project of {}",
            new.environment().as_str(),
            new.projects().joined()
        );
        let material = self
            .adapters
            .secrets
            .generate()
            .map_err(AppError::Internal)?;
        let (token, credential) = new.issue(&material, now);
        let event = AuditEvent::token_created(&token, &actor.actor(), now);
        let stored = match self
            .adapters
            .repository
            .insert(token, event, self.token_limit)
            .await
        {
            // The checks above passed against this catalog, so another
            // instance (or a configuration change) removed the entry.
            Err(RepositoryError::Conflict(detail)) => {
                warn!(detail, "a new token referenced reference data that is gone");
                return Err(AppError::validation(
                    format!("{scope} does not exist any longer"),
                    None,
                ));
            }
            outcome => outcome?,
        };
        if let Some(credentials) = &self.credentials {
            credentials.committed(&stored);
        }
        info!(selector = %stored.selector(), token_type = %token_type, actor = actor.name(), "token created");
        Ok((stored, credential))
    }

    /// # Errors
    /// As for [`crate::ApiTokenUseCases::update_expiry`].
    pub(crate) async fn update_expiry(
        &self,
        actor: &Principal,
        target: TokenRef,
        expires_at: DateTime<Utc>,
    ) -> Result<bool, AppError> {
        let now = self.adapters.clock.now();
        let change = self
            .adapters
            .repository
            .update_expiry(target, expires_at, &actor.actor(), now)
            .await?;
        let Some(change) = change else {
            return Ok(false);
        };
        if let Some(credentials) = &self.credentials {
            credentials.committed(&change.after);
        }
        info!(selector = %change.after.selector(), actor = actor.name(), "token expiry updated");
        Ok(true)
    }

    /// # Errors
    /// As for [`crate::ApiTokenUseCases::delete_token`].
    pub(crate) async fn delete(
        &self,
        actor: &Principal,
        target: TokenRef,
    ) -> Result<bool, AppError> {
        let now = self.adapters.clock.now();
        let Some(deleted) = self
            .adapters
            .repository
            .delete(target, &actor.actor(), now)
            .await?
        else {
            return Ok(false);
        };
        if let Some(credentials) = &self.credentials {
            credentials.deleted(deleted.selector());
        }
        info!(selector = %deleted.selector(), actor = actor.name(), "token deleted");
        Ok(true)
    }

    /// # Errors
    /// As for [`crate::ApiTokenUseCases::list_tokens`].
    pub(crate) async fn list(&self) -> Result<Vec<ApiToken>, AppError> {
        Ok(self.adapters.repository.list().await?)
    }
}

/// The operator's commands. Opening them touches no storage; each command
/// writes only what it must.
pub(crate) struct Operator {
    tokens: Tokens,
    declared: Catalog,
}

impl Operator {
    pub(crate) fn new(adapters: Adapters, token_limit: u32, declared: Catalog) -> Self {
        Self {
            tokens: Tokens::new(adapters, token_limit, AdminTokens::Allowed, None),
            declared,
        }
    }
}

#[async_trait]
impl OperatorCommands for Operator {
    async fn create_token(
        &self,
        actor: &Principal,
        request: CreateToken,
    ) -> Result<(ApiToken, Credential), AppError> {
        // A token may name what the configuration declares before any server
        // has synced it; nothing is removed, as a running server may still
        // offer it.
        let catalog = Catalog::sync(
            self.tokens.adapters.repository.as_ref(),
            self.declared.clone(),
            Undeclared::Keep,
        )
        .await?;
        self.tokens.create(&catalog, actor, request).await
    }

    async fn list_tokens(&self) -> Result<Vec<ApiToken>, AppError> {
        self.tokens.list().await
    }

    async fn update_expiry(
        &self,
        actor: &Principal,
        target: TokenRef,
        expires_at: DateTime<Utc>,
    ) -> Result<bool, AppError> {
        self.tokens.update_expiry(actor, target, expires_at).await
    }

    async fn delete_token(&self, actor: &Principal, target: TokenRef) -> Result<bool, AppError> {
        self.tokens.delete(actor, target).await
    }
}

#[cfg(test)]
mod tests;
