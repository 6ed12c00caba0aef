//! The catalog: the projects and environments tokens may name. It owns making
//! storage hold the declared reference data, and resolving a request's or an
//! init token's references against what storage holds.

use chrono::{DateTime, Utc};
use keywarden_domain::{
    ApiToken, DomainError, Environment, EnvironmentScope, NewToken, Project, Projects, Selector,
    TokenName, TokenType,
};

use crate::bootstrap::InitToken;
use crate::error::invalid;
use crate::usecases::CreateToken;
use crate::{ApiTokenRepository, AppError};

const DEFAULT_ENVIRONMENT: &str = "development";

/// What a sync does about stored entries that are no longer declared.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Undeclared {
    /// Removed unless tokens still reference them: a server starting owns the
    /// catalog.
    Remove,
    /// Left alone: a one-off command must not take away what a running server
    /// may still offer.
    Keep,
}

/// The projects and environments known to this process.
#[derive(Debug, Clone)]
pub(crate) struct Catalog {
    projects: Vec<Project>,
    environments: Vec<Environment>,
}

impl Catalog {
    /// The declared reference data itself, without storage.
    pub(crate) fn declared(projects: Vec<Project>, environments: Vec<Environment>) -> Self {
        Self {
            projects,
            environments,
        }
    }

    /// Makes storage hold the declared projects and environments, then reads
    /// back what it holds (entries kept for tokens' sake included).
    ///
    /// # Errors
    /// Storage errors as they come.
    pub(crate) async fn sync(
        repository: &dyn ApiTokenRepository,
        declared: Self,
        undeclared: Undeclared,
    ) -> Result<Self, AppError> {
        repository
            .sync_catalog(
                declared.projects,
                declared.environments,
                undeclared == Undeclared::Remove,
            )
            .await?;
        Ok(Self {
            projects: repository.projects().await?,
            environments: repository.environments().await?,
        })
    }

    pub(crate) fn projects(&self) -> &[Project] {
        &self.projects
    }

    pub(crate) fn environments(&self) -> &[Environment] {
        &self.environments
    }

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

    /// The token an init token stands for, its scope checked against the catalog.
    ///
    /// # Errors
    /// `Validation` for a credential that breaks the rules or names unknown
    /// reference data.
    /// `identifier` becomes the selector of a credential that embeds none;
    /// it must be random.
    pub(crate) fn init_token(
        &self,
        init: &InitToken,
        name: TokenName,
        identifier: Selector,
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
        Ok(new.with_credential(&init.credential, identifier, now))
    }

    /// The projects a create request names, each one known.
    ///
    /// # Errors
    /// `Validation` naming `project` or `projects`.
    pub(crate) fn resolve_projects(&self, request: &CreateToken) -> Result<Projects, AppError> {
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

    /// The environment a create request names, or the type's default.
    ///
    /// # Errors
    /// `Validation` naming `environment`.
    pub(crate) fn resolve_environment(
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
            name => self.find_environment(name),
        }
    }
}
