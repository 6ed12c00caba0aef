//! The ways a token, credential or name can break the domain's invariants.

use thiserror::Error;

/// A broken invariant. Messages name the offending value, because they reach
/// administrators verbatim as the `message` of a 400.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum DomainError {
    #[error("tokenName must be non-empty printable text of at most {max} characters")]
    InvalidTokenName { max: usize },
    #[error("{0:?} is not a valid token type: use client, backend or frontend")]
    InvalidTokenType(String),
    #[error("{0:?} is not a valid project id")]
    InvalidProjectId(String),
    #[error("{0:?} is not a valid environment name")]
    InvalidEnvironmentName(String),
    #[error("projects must contain at least one project")]
    EmptyProjects,
    #[error("admin tokens must have access to all projects and all environments (*:*)")]
    AdminScope,
    #[error("{token_type} tokens need a concrete environment, not *")]
    WildcardEnvironment { token_type: &'static str },
    #[error("a credential must look like <projects>:<environment>.<secret>")]
    MalformedCredential,
    #[error("a credential naming several projects ([]) cannot be used as a bootstrap token: name one project or *")]
    AmbiguousCredentialProjects,
}
