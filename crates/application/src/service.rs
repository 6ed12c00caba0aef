//! `ApiTokenService`: the use cases over the ports. It owns the in-memory
//! credential view and the last-seen batch, and keeps the view exact by
//! applying every change it commits.

use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use keywarden_domain::{
    AcceptedTypes, ApiToken, AuditEvent, Credential, DomainError, Environment, EnvironmentScope,
    EventType, NewToken, Project, Projects, RequiredScope, StoredEvent, TokenName, TokenRef,
    TokenType,
};
use tracing::{info, warn};

use crate::seen::SeenTracker;
use crate::usecases::{ApiTokenUseCases, CreateToken, EventQuery, Principal};
use crate::verify::{Refusal, VerifiedToken};
use crate::view::CredentialView;
use crate::{ApiTokenRepository, AppError, Clock, RepositoryError, SecretGenerator};

/// Name recorded as the creator of bootstrap tokens.
const BOOTSTRAP_ACTOR: &str = "system";
/// Name given to bootstrap tokens, as Unleash does.
const BOOTSTRAP_TOKEN_NAME: &str = "admin";
const DEFAULT_ENVIRONMENT: &str = "development";
const DEFAULT_EVENT_LIMIT: u32 = 100;
const MAX_EVENT_LIMIT: u32 = 1000;

#[derive(Debug, Clone)]
pub struct ServiceSettings {
    /// The most tokens that may exist; creating one more is refused.
    pub token_limit: u32,
    /// Declared reference data, made to exist in storage at start.
    pub projects: Vec<Project>,
    pub environments: Vec<Environment>,
}

/// Changes made by another instance sharing the database, as a change feed
/// reports them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ExternalChange {
    /// These tokens were created, changed or deleted.
    Tokens(Vec<keywarden_domain::Selector>),
    /// Changes may have been missed (the feed reconnected): reload everything.
    Unknown,
}

/// An operator-chosen credential to insert on first start.
#[derive(Debug, Clone)]
pub struct InitToken {
    pub token_type: TokenType,
    pub credential: Credential,
}

/// What start-up did about the first tokens.
#[derive(Debug)]
pub enum Bootstrap {
    /// Tokens existed already; nothing was inserted.
    AlreadyInitialised,
    /// The operator's init tokens were inserted.
    Inserted(usize),
    /// No init tokens were given: this admin credential was made, and must be
    /// shown to the operator now because it is never available again.
    Generated(Credential),
}

/// The declared projects and environments, for checking references.
#[derive(Debug, Clone)]
pub(crate) struct Catalog {
    pub(crate) projects: Vec<Project>,
    pub(crate) environments: Vec<Environment>,
}

impl Catalog {
    fn find_environment(&self, name: &str) -> Result<EnvironmentScope, AppError> {
        self.environments
            .iter()
            .find(|env| env.name.as_str() == name)
            .map(|env| EnvironmentScope::Named(env.name.clone()))
            .ok_or_else(|| {
                AppError::validation(
                    format!("Environment={name} does not exist"),
                    Some("environment"),
                )
            })
    }

    fn check_projects_exist(&self, projects: &Projects) -> Result<(), AppError> {
        if let Projects::Listed(ids) = projects {
            for id in ids {
                if !self.projects.iter().any(|project| project.id == *id) {
                    return Err(AppError::validation(
                        format!("Project={} does not exist", id.as_str()),
                        Some("projects"),
                    ));
                }
            }
        }
        Ok(())
    }

    fn init_token(
        &self,
        init: &InitToken,
        name: TokenName,
        now: DateTime<Utc>,
    ) -> Result<ApiToken, AppError> {
        let context = |e: DomainError| {
            AppError::validation(
                format!("invalid {} bootstrap token: {e}", init.token_type),
                None,
            )
        };
        let (projects, environment) = init.credential.declared_scope().map_err(context)?;
        self.check_projects_exist(&projects)?;
        if let EnvironmentScope::Named(env) = &environment {
            self.find_environment(env.as_str())?;
        }
        let new =
            NewToken::new(name, init.token_type, projects, environment, None).map_err(context)?;
        Ok(new.with_credential(&init.credential, now))
    }
}

pub struct ApiTokenService {
    repository: Arc<dyn ApiTokenRepository>,
    clock: Arc<dyn Clock>,
    secrets: Arc<dyn SecretGenerator>,
    token_limit: u32,
    catalog: Catalog,
    view: CredentialView,
    seen: SeenTracker,
    /// Reloads run one at a time: each relies on the previous one's mark.
    reloading: tokio::sync::Mutex<()>,
}

impl ApiTokenService {
    /// Makes storage ready for serving: declared projects and environments,
    /// first tokens on an empty database, and the credential view loaded.
    ///
    /// # Errors
    /// `Validation` for an init token that breaks the rules or names unknown
    /// reference data; storage errors as they come.
    pub async fn start(
        repository: Arc<dyn ApiTokenRepository>,
        clock: Arc<dyn Clock>,
        secrets: Arc<dyn SecretGenerator>,
        settings: ServiceSettings,
        init_tokens: Vec<InitToken>,
    ) -> Result<(Self, Bootstrap), AppError> {
        let service = Self::with_catalog(repository, clock, secrets, settings, true).await?;
        let bootstrap = service.bootstrap(init_tokens).await?;
        service.refresh_view().await?;
        Ok((service, bootstrap))
    }

    /// The service for one-off commands: declared projects and environments
    /// are added (none removed: a running server may still offer them), no
    /// bootstrap, and an empty credential view.
    ///
    /// # Errors
    /// Storage errors as they come.
    pub async fn open(
        repository: Arc<dyn ApiTokenRepository>,
        clock: Arc<dyn Clock>,
        secrets: Arc<dyn SecretGenerator>,
        settings: ServiceSettings,
    ) -> Result<Self, AppError> {
        Self::with_catalog(repository, clock, secrets, settings, false).await
    }

    async fn with_catalog(
        repository: Arc<dyn ApiTokenRepository>,
        clock: Arc<dyn Clock>,
        secrets: Arc<dyn SecretGenerator>,
        settings: ServiceSettings,
        prune: bool,
    ) -> Result<Self, AppError> {
        repository
            .sync_catalog(settings.projects, settings.environments, prune)
            .await?;
        let projects = repository.projects().await?;
        let environments = repository.environments().await?;
        Ok(Self {
            repository,
            clock,
            secrets,
            token_limit: settings.token_limit,
            catalog: Catalog {
                projects,
                environments,
            },
            view: CredentialView::default(),
            seen: SeenTracker::default(),
            reloading: tokio::sync::Mutex::new(()),
        })
    }

    /// On an empty database, inserts the operator's init tokens or, without
    /// any, one generated admin token. Does nothing when tokens exist.
    ///
    /// # Errors
    /// `Validation` for an init token that breaks the rules or names unknown
    /// reference data; storage errors as they come.
    pub async fn bootstrap(&self, init_tokens: Vec<InitToken>) -> Result<Bootstrap, AppError> {
        let now = self.clock.now();
        let name = TokenName::parse(BOOTSTRAP_TOKEN_NAME).map_err(|e| invalid(e, None))?;
        let mut generated = None;
        let tokens = if init_tokens.is_empty() {
            let new = NewToken::new(
                name,
                TokenType::Admin,
                Projects::All,
                EnvironmentScope::All,
                None,
            )
            .map_err(|e| invalid(e, None))?;
            let (token, credential) = new.issue(&self.fresh_material()?, now);
            generated = Some(credential);
            vec![token]
        } else {
            init_tokens
                .iter()
                .map(|init| self.catalog.init_token(init, name.clone(), now))
                .collect::<Result<Vec<_>, _>>()?
        };
        let count = tokens.len();
        if !self
            .repository
            .insert_initial(tokens, BOOTSTRAP_ACTOR, now)
            .await?
        {
            return Ok(Bootstrap::AlreadyInitialised);
        }
        Ok(match generated {
            Some(credential) => Bootstrap::Generated(credential),
            None => Bootstrap::Inserted(count),
        })
    }

    /// Checks bootstrap tokens against the rules and the declared projects and
    /// environments, without storage (for `keywarden config check`).
    ///
    /// # Errors
    /// `Validation` naming the first offending token.
    pub fn check_init_tokens(
        settings: &ServiceSettings,
        init_tokens: &[InitToken],
    ) -> Result<(), AppError> {
        let catalog = Catalog {
            projects: settings.projects.clone(),
            environments: settings.environments.clone(),
        };
        let name = TokenName::parse(BOOTSTRAP_TOKEN_NAME).map_err(|e| invalid(e, None))?;
        for init in init_tokens {
            catalog.init_token(init, name.clone(), chrono::DateTime::<Utc>::UNIX_EPOCH)?;
        }
        Ok(())
    }

    /// Reloads the credential view from storage (at start, and whenever this
    /// instance may have missed changes).
    ///
    /// # Errors
    /// Storage errors; the previous view stays in place then.
    pub async fn refresh_view(&self) -> Result<(), AppError> {
        let _one_at_a_time = self.reloading.lock().await;
        let mark = self.view.mark();
        let credentials = self.repository.credentials().await?;
        self.view.reload(&credentials, mark);
        metrics::counter!("keywarden_credential_reloads_total").increment(1);
        Ok(())
    }

    /// Brings the view up to date with changes another instance made.
    ///
    /// # Errors
    /// Storage errors; the view keeps what it had.
    pub async fn apply_external(&self, change: ExternalChange) -> Result<(), AppError> {
        match change {
            ExternalChange::Tokens(selectors) => {
                metrics::counter!("keywarden_external_changes_total")
                    .increment(selectors.len() as u64);
                // One read for the whole batch; a selector with no token left
                // was deleted.
                let found = self.repository.find_many(selectors.clone()).await?;
                let present: std::collections::HashSet<_> =
                    found.iter().map(ApiToken::selector).collect();
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

    /// Writes the batched last-seen instants. On failure the batch is kept for
    /// the next flush.
    ///
    /// # Errors
    /// Storage errors.
    pub async fn flush_seen(&self) -> Result<usize, AppError> {
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

    /// Number of live credentials in memory.
    pub fn credential_count(&self) -> usize {
        self.view.len()
    }

    pub(crate) fn catalog(&self) -> &Catalog {
        &self.catalog
    }

    /// The credential check admin authentication and verification share.
    pub(crate) fn check_credential(
        &self,
        presented: &str,
        required: &RequiredScope,
    ) -> Result<VerifiedToken, Refusal> {
        crate::verify::check(
            &self.view,
            &self.seen,
            self.clock.now(),
            presented,
            required,
        )
    }

    fn fresh_material(&self) -> Result<keywarden_domain::SecretMaterial, AppError> {
        self.secrets.generate().map_err(AppError::Internal)
    }

    /// Creates a token of any type, admin included: for operators at the
    /// command line, who need no admin token to make the first one.
    ///
    /// # Errors
    /// As for [`ApiTokenUseCases::create_token`].
    pub async fn create_operator_token(
        &self,
        actor: &Principal,
        request: CreateToken,
    ) -> Result<(ApiToken, Credential), AppError> {
        self.create(actor, request, true).await
    }

    async fn create(
        &self,
        actor: &Principal,
        request: CreateToken,
        allow_admin: bool,
    ) -> Result<(ApiToken, Credential), AppError> {
        let token_type =
            TokenType::parse(&request.token_type).map_err(|e| invalid(e, Some("type")))?;
        if token_type.is_admin() && !allow_admin {
            return Err(AppError::validation(
                "Admin tokens cannot be created through the API: use INIT_ADMIN_API_TOKENS or the keywarden command line",
                Some("type"),
            ));
        }
        let name =
            TokenName::parse(&request.token_name).map_err(|e| invalid(e, Some("tokenName")))?;
        let environment = self.resolve_environment(token_type, request.environment.as_deref())?;
        let projects = self.resolve_projects(&request)?;
        let new = NewToken::new(name, token_type, projects, environment, request.expires_at)
            .map_err(|e| invalid(e, None))?;
        let now = self.clock.now();
        let scope = format!(
            "Environment={} or a project of {}",
            new.environment().as_str(),
            new.projects().joined()
        );
        let (token, credential) = new.issue(&self.fresh_material()?, now);
        let event = AuditEvent::token_created(&token, actor.name(), now);
        let stored = match self.repository.insert(token, event, self.token_limit).await {
            // The checks above passed against this instance's catalog, so
            // another instance (or a configuration change) removed the entry.
            Err(RepositoryError::Conflict(detail)) => {
                warn!(detail, "a new token referenced reference data that is gone");
                return Err(AppError::validation(
                    format!("{scope} does not exist any longer"),
                    None,
                ));
            }
            outcome => outcome?,
        };
        self.view.apply(&stored);
        info!(selector = %stored.selector(), token_type = %token_type, actor = actor.name(), "token created");
        Ok((stored, credential))
    }

    fn resolve_projects(&self, request: &CreateToken) -> Result<Projects, AppError> {
        let ids = match (&request.projects, &request.project) {
            (Some(_), Some(_)) => {
                return Err(AppError::validation(
                    "Send either project or projects, not both",
                    Some("projects"),
                ))
            }
            (Some(ids), None) => ids.clone(),
            (None, Some(id)) => vec![id.clone()],
            (None, None) => vec!["*".to_string()],
        };
        let field = if request.project.is_some() {
            "project"
        } else {
            "projects"
        };
        // Checked before `*` collapses the list: a mistyped id next to `*`
        // is still a mistake.
        if let Some(unknown) = ids.iter().find(|id| {
            id.as_str() != "*"
                && !self
                    .catalog
                    .projects
                    .iter()
                    .any(|project| project.id.as_str() == id.as_str())
        }) {
            return Err(AppError::validation(
                format!("Project={unknown} does not exist"),
                Some(field),
            ));
        }
        if ids.iter().any(|id| id == "*") {
            return Ok(Projects::All);
        }
        Projects::from_ids(&ids).map_err(|e| invalid(e, Some(field)))
    }

    fn resolve_environment(
        &self,
        token_type: TokenType,
        requested: Option<&str>,
    ) -> Result<EnvironmentScope, AppError> {
        let default = if token_type.is_admin() {
            "*"
        } else {
            DEFAULT_ENVIRONMENT
        };
        match requested.unwrap_or(default) {
            "*" if token_type.is_admin() => Ok(EnvironmentScope::All),
            "*" => Err(invalid(
                DomainError::WildcardEnvironment {
                    token_type: token_type.as_str(),
                },
                Some("environment"),
            )),
            name => self.catalog.find_environment(name),
        }
    }
}

fn invalid(error: DomainError, field: Option<&'static str>) -> AppError {
    AppError::validation(error.to_string(), field)
}

#[async_trait]
impl ApiTokenUseCases for ApiTokenService {
    fn authenticate_admin(&self, presented: &str) -> Result<Principal, AppError> {
        const ADMIN_API: RequiredScope = RequiredScope::of_types(AcceptedTypes::ADMIN);
        let (outcome, result) = match self.check_credential(presented, &ADMIN_API) {
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

    async fn update_expiry(
        &self,
        actor: &Principal,
        target: TokenRef,
        expires_at: DateTime<Utc>,
    ) -> Result<bool, AppError> {
        let now = self.clock.now();
        let change = self
            .repository
            .update_expiry(target, expires_at, actor.name(), now)
            .await?;
        let Some(change) = change else {
            return Ok(false);
        };
        self.view.apply(&change.after);
        info!(selector = %change.after.selector(), actor = actor.name(), "token expiry updated");
        Ok(true)
    }

    async fn list_tokens(&self) -> Result<Vec<ApiToken>, AppError> {
        Ok(self.repository.list().await?)
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
        self.create(actor, request, false).await
    }

    async fn delete_token(&self, actor: &Principal, target: TokenRef) -> Result<bool, AppError> {
        let now = self.clock.now();
        let Some(deleted) = self.repository.delete(target, actor.name(), now).await? else {
            return Ok(false);
        };
        self.view.remove(deleted.selector());
        info!(selector = %deleted.selector(), actor = actor.name(), "token deleted");
        Ok(true)
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

    fn projects(&self) -> Vec<Project> {
        self.catalog.projects.clone()
    }

    fn environments(&self) -> Vec<Environment> {
        self.catalog.environments.clone()
    }

    async fn ready(&self) -> Result<(), AppError> {
        self.repository.ping().await.map_err(|error| {
            warn!(error = %error, "readiness check failed");
            AppError::from(error)
        })
    }
}

#[cfg(test)]
mod tests;
