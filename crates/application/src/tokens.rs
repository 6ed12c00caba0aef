//! Changing tokens: the one implementation of create, expire and delete that
//! both front doors — the Admin API and the operator's command line — use, and
//! the operator's commands themselves. The front doors differ only in their
//! [`AdminTokens`] policy and in where their catalog comes from.

use std::collections::HashSet;
use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use keywarden_domain::{
    ApiToken, AuditEvent, Credential, LifetimePolicy, NewToken, Rotated, Rotation, RotationRefused,
    TokenName, TokenRef, TokenType, Verifier,
};
use tracing::{info, warn};

use crate::catalog::{Catalog, Undeclared};
use crate::credentials::Credentials;
use crate::error::invalid;
use crate::usecases::{CreateToken, OperatorCommands, Principal, RotateToken};
use crate::{Adapters, AppError, RepositoryError, RotateOutcome, ServiceSettings};

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
    policy: LifetimePolicy,
    /// Bootstrap tokens, which the policy does not bind, by verifier: an
    /// operator-chosen credential's identifier is random, not derived.
    exempt: HashSet<[u8; 32]>,
}

/// A policy violation as the request's fault, naming the field.
fn against_policy(error: impl std::fmt::Display, field: &'static str) -> AppError {
    AppError::validation(error.to_string(), Some(field))
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
            policy: LifetimePolicy::default(),
            exempt: HashSet::new(),
        }
    }

    /// Applies `policy` to every change but those of the `exempt` tokens.
    /// The current time, from the clock every command uses.
    pub(crate) fn now(&self) -> chrono::DateTime<chrono::Utc> {
        self.adapters.clock.now()
    }

    pub(crate) fn with_policy(self, policy: LifetimePolicy, exempt: HashSet<[u8; 32]>) -> Self {
        Self {
            policy,
            exempt,
            ..self
        }
    }

    /// Whether `target` is a bootstrap token. A selector is known by the
    /// view; without one (one-off commands) no token is exempt.
    fn is_exempt(&self, target: &TokenRef) -> bool {
        let verifier = match target {
            TokenRef::Credential { verifier, .. } => Some(*verifier),
            TokenRef::Selector(selector) => self
                .credentials
                .as_ref()
                .and_then(|credentials| credentials.verifier_of(*selector)),
        };
        verifier.is_some_and(|verifier: Verifier| self.exempt.contains(verifier.as_bytes()))
    }

    /// The tokens that break the lifetime policy (made before it changed).
    ///
    /// # Errors
    /// Storage errors.
    pub(crate) async fn violating_policy(&self) -> Result<Vec<ApiToken>, AppError> {
        let mut tokens = self.list().await?;
        tokens.retain(|token| {
            !self.exempt.contains(token.verifier().as_bytes()) && self.policy.violated_by(token)
        });
        Ok(tokens)
    }

    /// Rotates the token `target` refers to (lifecycle §1): the policy is
    /// checked against the request first, then storage applies the rotation's
    /// rules to the token as committed, in the transaction that stores it.
    ///
    /// # Errors
    /// As for [`crate::ApiTokenUseCases::rotate_token`].
    pub(crate) async fn rotate(
        &self,
        actor: &Principal,
        target: TokenRef,
        request: RotateToken,
    ) -> Result<Rotated, AppError> {
        let now = self.adapters.clock.now();
        let policy = if self.is_exempt(&target) {
            LifetimePolicy::default()
        } else {
            self.policy
        };
        if let Some(expires_at) = request.expires_at {
            policy
                .check(Some(expires_at), now)
                .map_err(|e| against_policy(e, "expiresAt"))?;
        }
        let material = self
            .adapters
            .secrets
            .generate()
            .map_err(AppError::Internal)?;
        let rotation = Rotation {
            previous_expires_at: request.previous_expires_at,
            expires_at: request.expires_at,
            policy,
            admin_allowed: self.admin_tokens == AdminTokens::Allowed,
            material,
            now,
        };
        let rotated = match self
            .adapters
            .repository
            .rotate(target, rotation, &actor.actor())
            .await?
        {
            RotateOutcome::Rotated(rotated) => *rotated,
            RotateOutcome::NotFound => {
                return Err(AppError::NotFound(
                    "Could not find an API token with that credential or selector.".to_string(),
                ))
            }
            RotateOutcome::Refused(refused) => return Err(refusal(refused)),
        };
        if let Some(credentials) = &self.credentials {
            credentials.committed(&rotated.retired);
            credentials.committed(&rotated.successor);
        }
        info!(
            selector = %rotated.retired.selector(),
            successor = %rotated.successor.selector(),
            actor = actor.name(),
            "token rotated"
        );
        Ok(rotated)
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
        let now = self.adapters.clock.now();
        let expires_at = self
            .policy
            .resolve(request.expires_at, None, now)
            .map_err(|e| against_policy(e, "expiresAt"))?;
        let new = NewToken::new(name, token_type, projects, environment, expires_at)
            .map_err(|e| invalid(e, None))?;
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
        // Checked before the token is looked up: the answer does not tell
        // whether it exists.
        if !self.is_exempt(&target) {
            self.policy
                .check(Some(expires_at), now)
                .map_err(|e| against_policy(e, "expiresAt"))?;
        }
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

/// A refused rotation: the token's state is a conflict, the request's
/// content a validation error naming its field.
fn refusal(refused: RotationRefused) -> AppError {
    let field = match &refused {
        RotationRefused::AlreadyExpired | RotationRefused::AlreadyRotated(_) => {
            return AppError::StateConflict(refused.to_string())
        }
        RotationRefused::AdminToken => None,
        RotationRefused::OverlapBeyondExpiry(_) => Some("previousExpiresAt"),
        RotationRefused::Policy(_) => Some("expiresAt"),
    };
    AppError::validation(refused.to_string(), field)
}

/// The operator's commands. Opening them touches no storage; each command
/// writes only what it must.
pub(crate) struct Operator {
    tokens: Tokens,
    declared: Catalog,
}

impl Operator {
    pub(crate) fn new(adapters: Adapters, settings: &ServiceSettings, declared: Catalog) -> Self {
        Self {
            tokens: Tokens::new(adapters, settings.token_limit, AdminTokens::Allowed, None)
                .with_policy(settings.lifetime, HashSet::new()),
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

    async fn rotate_token(
        &self,
        actor: &Principal,
        target: TokenRef,
        request: RotateToken,
    ) -> Result<Rotated, AppError> {
        self.tokens.rotate(actor, target, request).await
    }

    async fn tokens_violating_policy(&self) -> Result<Vec<ApiToken>, AppError> {
        self.tokens.violating_policy().await
    }
}

#[cfg(test)]
mod tests;
