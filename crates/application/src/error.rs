//! Errors of the use cases and of the storage port. The HTTP adapter maps
//! `AppError` to status codes; nothing here knows about them.

use keywarden_domain::DomainError;
use thiserror::Error;

pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// `outer: inner: innermost`: an error with every cause, on one line (for
/// logs and messages, where only the outermost `Display` would hide why).
pub fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut cause = error.source();
    while let Some(inner) = cause {
        text.push_str(": ");
        text.push_str(&inner.to_string());
        cause = inner.source();
    }
    text
}

/// What a repository can report. Adapters map their driver's errors into these
/// once, so the service can tell "try later" from "this is a bug".
#[derive(Debug, Error)]
pub enum RepositoryError {
    /// The database cannot be reached or is too busy; retrying may succeed.
    #[error("storage unavailable")]
    Unavailable(#[source] BoxError),
    /// The write collided with stored data (a unique or foreign key).
    #[error("conflict: {0}")]
    Conflict(String),
    /// Inserting would exceed the configured number of tokens.
    #[error("the limit of {0} tokens is reached")]
    LimitExceeded(u32),
    /// A stored row no longer satisfies the domain's rules.
    #[error("stored data is invalid: {0}")]
    Corrupt(String),
    #[error("storage failure")]
    Internal(#[source] BoxError),
}

/// The outcome of a use case that did not succeed.
#[derive(Debug, Error)]
pub enum AppError {
    /// Input breaks a rule. `field` names the request field (camelCase, as the
    /// contract spells it) when one field is to blame.
    #[error("{message}")]
    Validation {
        message: String,
        field: Option<&'static str>,
    },
    #[error("{0}")]
    LimitExceeded(String),
    /// Unknown, deleted or expired credential.
    #[error("invalid credential")]
    Unauthorized,
    /// A valid credential of a type that may not use this API.
    #[error("invalid token: expected a different token type for this endpoint")]
    Forbidden,
    #[error("{0}")]
    NotFound(String),
    /// A write collided with stored data (a storage detail, not for clients).
    #[error("{0}")]
    Conflict(String),
    /// The resource's state forbids the request (e.g. a token already
    /// rotated); the message is for the client.
    #[error("{0}")]
    StateConflict(String),
    #[error("service unavailable")]
    Unavailable(#[source] BoxError),
    #[error("internal error")]
    Internal(#[source] BoxError),
}

impl AppError {
    pub fn validation(message: impl Into<String>, field: Option<&'static str>) -> Self {
        Self::Validation {
            message: message.into(),
            field,
        }
    }
}

/// A broken domain rule as the use cases report it, naming the request field
/// to blame when there is one.
pub(crate) fn invalid(error: DomainError, field: Option<&'static str>) -> AppError {
    AppError::validation(error.to_string(), field)
}

impl From<RepositoryError> for AppError {
    fn from(error: RepositoryError) -> Self {
        match error {
            RepositoryError::Unavailable(cause) => Self::Unavailable(cause),
            RepositoryError::Conflict(message) => Self::Conflict(message),
            RepositoryError::LimitExceeded(limit) => Self::LimitExceeded(format!(
                "Failed to create token: the limit of {limit} API tokens is reached"
            )),
            corrupt @ RepositoryError::Corrupt(_) => Self::Internal(Box::new(corrupt)),
            RepositoryError::Internal(cause) => Self::Internal(cause),
        }
    }
}
