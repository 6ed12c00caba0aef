//! Scope rules: what a protected place (the Admin API, a location behind a
//! reverse proxy) requires of a token, and whether a token meets it. A place
//! accepts some token types, and may require one environment and some
//! projects; a token with environment `*` matches any environment, and one
//! with projects `*` covers every project.

use std::fmt;

use crate::token::{EnvironmentName, EnvironmentScope, ProjectId, Projects, TokenType};
use crate::DomainError;

/// The token types a place accepts. `client` and `backend` are one type here:
/// both mean "server SDK token".
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AcceptedTypes {
    server: bool,
    frontend: bool,
    admin: bool,
}

impl AcceptedTypes {
    /// Every type: for answers that report a token's type rather than require one.
    pub const ANY: Self = Self {
        server: true,
        frontend: true,
        admin: true,
    };
    /// Only admin tokens: the Admin API.
    pub const ADMIN: Self = Self {
        server: false,
        frontend: false,
        admin: true,
    };
    /// Server and frontend tokens, not admin ones: an admin credential passes
    /// only where a place asks for it.
    pub const SERVICE: Self = Self {
        server: true,
        frontend: true,
        admin: false,
    };

    /// A comma-separated list of `backend`, `client`, `frontend`, `admin` (any case).
    ///
    /// # Errors
    /// `InvalidTokenType` naming the first entry that is none of these (an
    /// empty entry included).
    pub fn parse(list: &str) -> Result<Self, DomainError> {
        let mut accepted = Self {
            server: false,
            frontend: false,
            admin: false,
        };
        for name in list.split(',') {
            match TokenType::parse(name.trim())? {
                TokenType::Client | TokenType::Backend => accepted.server = true,
                TokenType::Frontend => accepted.frontend = true,
                TokenType::Admin => accepted.admin = true,
            }
        }
        Ok(accepted)
    }

    pub fn accepts(self, token_type: TokenType) -> bool {
        match token_type {
            TokenType::Client | TokenType::Backend => self.server,
            TokenType::Frontend => self.frontend,
            TokenType::Admin => self.admin,
        }
    }
}

/// Why a valid token may not enter a place. Names only public facts (a type,
/// an environment, a project), never anything about the credential.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OutOfScope {
    Type(TokenType),
    Environment(EnvironmentName),
    Project(ProjectId),
}

impl fmt::Display for OutOfScope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Type(token_type) => write!(f, "{token_type} tokens are not accepted here"),
            Self::Environment(name) => {
                write!(
                    f,
                    "the token is not valid for environment {}",
                    name.as_str()
                )
            }
            Self::Project(id) => write!(f, "the token does not cover project {}", id.as_str()),
        }
    }
}

/// What a place requires of a token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequiredScope {
    types: AcceptedTypes,
    environment: Option<EnvironmentName>,
    projects: Vec<ProjectId>,
}

impl RequiredScope {
    pub fn new(
        types: AcceptedTypes,
        environment: Option<EnvironmentName>,
        projects: Vec<ProjectId>,
    ) -> Self {
        Self {
            types,
            environment,
            projects,
        }
    }

    /// Only a type requirement: any environment, any project.
    pub const fn of_types(types: AcceptedTypes) -> Self {
        Self {
            types,
            environment: None,
            projects: Vec::new(),
        }
    }

    /// Checks type, then environment, then each project in the order required.
    ///
    /// # Errors
    /// The first requirement the token does not meet.
    pub fn check(
        &self,
        token_type: TokenType,
        environment: &EnvironmentScope,
        projects: &Projects,
    ) -> Result<(), OutOfScope> {
        if !self.types.accepts(token_type) {
            return Err(OutOfScope::Type(token_type));
        }
        if let (Some(required), EnvironmentScope::Named(own)) = (&self.environment, environment) {
            if required != own {
                return Err(OutOfScope::Environment(required.clone()));
            }
        }
        if let Projects::Listed(own) = projects {
            if let Some(missing) = self.projects.iter().find(|id| !own.contains(*id)) {
                return Err(OutOfScope::Project(missing.clone()));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(name: &str) -> EnvironmentName {
        EnvironmentName::parse(name).unwrap()
    }

    fn project(id: &str) -> ProjectId {
        ProjectId::parse(id).unwrap()
    }

    fn projects(ids: &[&str]) -> Projects {
        Projects::from_ids(ids).unwrap()
    }

    fn named(name: &str) -> EnvironmentScope {
        EnvironmentScope::Named(env(name))
    }

    #[test]
    fn type_lists_parse_with_client_and_backend_as_one() {
        let parsed = AcceptedTypes::parse("client").unwrap();
        assert!(parsed.accepts(TokenType::Backend));
        assert!(parsed.accepts(TokenType::Client));
        assert!(!parsed.accepts(TokenType::Frontend));
        assert!(!parsed.accepts(TokenType::Admin));
        assert_eq!(
            AcceptedTypes::parse("backend,frontend").unwrap(),
            AcceptedTypes::SERVICE
        );
        assert_eq!(AcceptedTypes::parse("Admin").unwrap(), AcceptedTypes::ADMIN);
        assert_eq!(
            AcceptedTypes::parse("admin, frontend ,backend").unwrap(),
            AcceptedTypes::ANY
        );
    }

    #[test]
    fn unknown_or_empty_type_entries_are_named() {
        for (list, named) in [
            ("backend,fronted", "fronted"),
            ("", ""),
            ("backend,", ""),
            ("*", "*"),
        ] {
            assert_eq!(
                AcceptedTypes::parse(list),
                Err(DomainError::InvalidTokenType(named.to_string())),
                "{list:?}"
            );
        }
    }

    #[test]
    fn admin_tokens_pass_only_where_admin_is_accepted() {
        let all = EnvironmentScope::All;
        let every = Projects::All;
        let default = RequiredScope::of_types(AcceptedTypes::SERVICE);
        assert_eq!(
            default.check(TokenType::Admin, &all, &every),
            Err(OutOfScope::Type(TokenType::Admin))
        );
        assert!(RequiredScope::of_types(AcceptedTypes::ADMIN)
            .check(TokenType::Admin, &all, &every)
            .is_ok());
        assert_eq!(
            RequiredScope::of_types(AcceptedTypes::ADMIN).check(
                TokenType::Frontend,
                &named("development"),
                &every
            ),
            Err(OutOfScope::Type(TokenType::Frontend))
        );
    }

    #[test]
    fn environments_must_match_unless_the_token_has_all() {
        let required = RequiredScope::new(AcceptedTypes::ANY, Some(env("production")), vec![]);
        assert!(required
            .check(TokenType::Backend, &named("production"), &Projects::All)
            .is_ok());
        assert_eq!(
            required.check(TokenType::Backend, &named("development"), &Projects::All),
            Err(OutOfScope::Environment(env("production")))
        );
        assert!(required
            .check(TokenType::Admin, &EnvironmentScope::All, &Projects::All)
            .is_ok());
        let anywhere = RequiredScope::of_types(AcceptedTypes::ANY);
        assert!(anywhere
            .check(TokenType::Frontend, &named("development"), &Projects::All)
            .is_ok());
    }

    #[test]
    fn every_required_project_must_be_covered_and_all_covers_all() {
        let required = RequiredScope::new(
            AcceptedTypes::ANY,
            None,
            vec![project("web"), project("shop")],
        );
        let dev = named("development");
        assert!(required
            .check(TokenType::Backend, &dev, &projects(&["*"]))
            .is_ok());
        assert!(required
            .check(TokenType::Backend, &dev, &projects(&["shop", "web", "x"]))
            .is_ok());
        assert_eq!(
            required.check(TokenType::Backend, &dev, &projects(&["web"])),
            Err(OutOfScope::Project(project("shop")))
        );
        assert_eq!(
            required.check(TokenType::Backend, &dev, &projects(&["shop"])),
            Err(OutOfScope::Project(project("web")))
        );
    }

    #[test]
    fn type_is_checked_before_environment_before_projects() {
        let required = RequiredScope::new(
            AcceptedTypes::SERVICE,
            Some(env("production")),
            vec![project("web")],
        );
        let wrong_env_and_project = projects(&["shop"]);
        assert_eq!(
            required.check(
                TokenType::Admin,
                &named("development"),
                &wrong_env_and_project
            ),
            Err(OutOfScope::Type(TokenType::Admin))
        );
        assert_eq!(
            required.check(
                TokenType::Frontend,
                &named("development"),
                &wrong_env_and_project
            ),
            Err(OutOfScope::Environment(env("production")))
        );
    }

    #[test]
    fn refusals_name_what_is_missing() {
        assert_eq!(
            OutOfScope::Type(TokenType::Frontend).to_string(),
            "frontend tokens are not accepted here"
        );
        assert_eq!(
            OutOfScope::Environment(env("production")).to_string(),
            "the token is not valid for environment production"
        );
        assert_eq!(
            OutOfScope::Project(project("web")).to_string(),
            "the token does not cover project web"
        );
    }
}
