//! The one place that maps diesel's and the pool's errors to the port's
//! `RepositoryError`.

use diesel::result::{DatabaseErrorKind, Error as DieselError};
use keywarden_application::RepositoryError;

/// What a transaction body can fail with: a database error (which also makes
/// diesel roll back) or a decision of the repository itself.
#[derive(Debug)]
pub(crate) enum TxError {
    Db(DieselError),
    Repo(RepositoryError),
}

impl From<DieselError> for TxError {
    fn from(error: DieselError) -> Self {
        Self::Db(error)
    }
}

impl From<RepositoryError> for TxError {
    fn from(error: RepositoryError) -> Self {
        Self::Repo(error)
    }
}

impl From<TxError> for RepositoryError {
    fn from(error: TxError) -> Self {
        match error {
            TxError::Db(error) => map_diesel(error),
            TxError::Repo(error) => error,
        }
    }
}

pub(crate) fn map_diesel(error: DieselError) -> RepositoryError {
    match error {
        DieselError::DatabaseError(
            kind @ (DatabaseErrorKind::UniqueViolation | DatabaseErrorKind::ForeignKeyViolation),
            info,
        ) => RepositoryError::Conflict(format!("{kind:?}: {}", info.message())),
        DieselError::DatabaseError(
            DatabaseErrorKind::ClosedConnection | DatabaseErrorKind::UnableToSendCommand,
            _,
        ) => RepositoryError::Unavailable(Box::new(error)),
        DieselError::DatabaseError(_, ref info) if is_busy(info.message()) => {
            RepositoryError::Unavailable(Box::new(error))
        }
        other => RepositoryError::Internal(Box::new(other)),
    }
}

/// SQLite reports lock contention that outlasted `busy_timeout` as plain text.
pub(crate) fn is_busy(message: &str) -> bool {
    message.contains("database is locked") || message.contains("database is busy")
}

pub(crate) fn pool_unavailable(error: diesel::r2d2::PoolError) -> RepositoryError {
    metrics::counter!("keywarden_db_pool_timeouts_total").increment(1);
    RepositoryError::Unavailable(Box::new(error))
}

pub(crate) fn corrupt(what: impl std::fmt::Display) -> RepositoryError {
    RepositoryError::Corrupt(what.to_string())
}
