//! Verification: is a presented credential valid, and may it enter a place
//! with this required scope? Answered from the in-memory credential view
//! alone (no database round trip, except while the view first loads).
//! Admin authentication is the same check with "admin tokens only" as the
//! scope, so both share [`admit`].

use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use keywarden_domain::{
    AcceptedTypes, EnvironmentScope, OutOfScope, ProjectId, Projects, RequiredScope, Selector,
    TokenType,
};

use crate::catalog::Catalog;
use crate::credentials::Credentials;
use crate::seen::SeenTracker;
use crate::view::Rejection;

/// What the credential view holds of a token beside its verifier: what a
/// verification may tell its caller. (Not the domain's `TokenFacts`, the
/// fuller record audit events carry.)
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CredentialFacts {
    pub name: Arc<str>,
    pub token_type: TokenType,
    /// Shared by every token with the same projects and environment.
    pub scope: Arc<TokenScope>,
    pub expires_at: Option<DateTime<Utc>>,
}

impl CredentialFacts {
    pub fn projects(&self) -> &Projects {
        &self.scope.projects
    }

    pub fn environment(&self) -> &EnvironmentScope {
        &self.scope.environment
    }
}

/// Where a token is valid: its projects and environment. The credential view
/// keeps one of each distinct scope, however many tokens have it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct TokenScope {
    pub projects: Projects,
    pub environment: EnvironmentScope,
}

/// A credential that passed: its token's selector and public facts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedToken {
    pub selector: Selector,
    pub facts: Arc<CredentialFacts>,
}

/// Why a credential was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// No credential was presented.
    Missing,
    /// No live token has this credential (never had, or deleted).
    Unknown,
    Expired,
    /// Valid, but not for this place.
    OutOfScope(OutOfScope),
    /// The view is still loading and storage could not be asked: no answer.
    Unavailable,
}

impl Refusal {
    /// A fixed label for metrics: never anything the caller sent.
    pub fn label(&self) -> &'static str {
        match self {
            Self::Missing => "missing",
            Self::Unknown => "unknown",
            Self::Expired => "expired",
            Self::OutOfScope(_) => "out_of_scope",
            Self::Unavailable => "unavailable",
        }
    }
}

/// A required scope that names something that does not exist: which query
/// parameter, and a message naming the value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InvalidScope {
    pub parameter: &'static str,
    pub message: String,
}

impl InvalidScope {
    fn new(parameter: &'static str, message: String) -> Self {
        Self { parameter, message }
    }
}

/// The verification use cases, for services and proxies that tokens protect.
#[cfg_attr(any(test, feature = "mocks"), mockall::automock)]
#[async_trait]
pub trait TokenVerification: Send + Sync {
    /// Builds a required scope from its textual parts: `types` a
    /// comma-separated list (default `backend,frontend`), `environment` and
    /// `projects` checked against the declared catalog.
    ///
    /// # Errors
    /// `InvalidScope` naming the first unknown type, environment or project.
    fn required_scope<'a>(
        &self,
        types: Option<&'a str>,
        environment: Option<&'a str>,
        projects: &[String],
    ) -> Result<RequiredScope, InvalidScope>;

    /// Checks a presented credential against `required`, from memory. A valid
    /// credential counts as seen, in scope or not.
    ///
    /// # Errors
    /// The `Refusal` saying why it may not pass.
    // `'a` is named for mockall's sake.
    async fn verify<'a>(
        &self,
        presented: Option<&'a str>,
        required: &RequiredScope,
    ) -> Result<VerifiedToken, Refusal>;
}

/// The one credential check after the view lookup: expiry, last seen, then
/// scope.
pub(crate) fn admit(
    seen: &SeenTracker,
    now: DateTime<Utc>,
    found: Result<(Selector, Arc<CredentialFacts>), Rejection>,
    required: &RequiredScope,
) -> Result<VerifiedToken, Refusal> {
    let (selector, facts) = found.map_err(|rejection| match rejection {
        Rejection::Unknown => Refusal::Unknown,
        Rejection::Expired => Refusal::Expired,
    })?;
    seen.record(selector, now);
    required
        .check(facts.token_type, facts.environment(), facts.projects())
        .map_err(Refusal::OutOfScope)?;
    Ok(VerifiedToken { selector, facts })
}

/// Verification over a serving process's credential authority and the
/// catalog synced at start.
pub(crate) struct Verification {
    pub(crate) credentials: Arc<Credentials>,
    pub(crate) catalog: Catalog,
}

#[async_trait]
impl TokenVerification for Verification {
    fn required_scope(
        &self,
        types: Option<&str>,
        environment: Option<&str>,
        projects: &[String],
    ) -> Result<RequiredScope, InvalidScope> {
        let types = match types {
            None => AcceptedTypes::SERVICE,
            Some(list) => AcceptedTypes::parse(list).map_err(|_| {
                InvalidScope::new(
                    "type",
                    format!("type={list} is not a list of backend, client, frontend or admin"),
                )
            })?,
        };
        let catalog = &self.catalog;
        let environment = environment
            .map(|name| {
                catalog
                    .environments()
                    .iter()
                    .find(|declared| declared.name.as_str() == name)
                    .map(|declared| declared.name.clone())
                    .ok_or_else(|| {
                        InvalidScope::new(
                            "environment",
                            format!("Environment={name} does not exist"),
                        )
                    })
            })
            .transpose()?;
        let projects = projects
            .iter()
            .map(|id| {
                catalog
                    .projects()
                    .iter()
                    .find(|declared| declared.id.as_str() == id)
                    .map(|declared| declared.id.clone())
                    .ok_or_else(|| {
                        InvalidScope::new("project", format!("Project={id} does not exist"))
                    })
            })
            .collect::<Result<Vec<ProjectId>, _>>()?;
        Ok(RequiredScope::new(types, environment, projects))
    }

    async fn verify<'a>(
        &self,
        presented: Option<&'a str>,
        required: &RequiredScope,
    ) -> Result<VerifiedToken, Refusal> {
        let presented = presented.ok_or(Refusal::Missing)?;
        self.credentials.check(presented, required).await
    }
}

#[cfg(test)]
mod tests;
