//! Which database a URL names. The scheme alone decides the backend, never a
//! trial connection.

use std::fmt;
use std::path::PathBuf;

#[derive(Clone, PartialEq, Eq)]
pub enum DatabaseUrl {
    /// `sqlite://relative/path.db` or `sqlite:///absolute/path.db`.
    Sqlite(PathBuf),
    /// `postgres://…` or `postgresql://…`, kept whole for the driver.
    Postgres(String),
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UrlError {
    #[error("the database URL has no scheme: use sqlite://<path> or postgres://<host>/<db>")]
    MissingScheme,
    #[error("unsupported database scheme {0:?}: use sqlite:// or postgres://")]
    UnsupportedScheme(String),
    #[error("the sqlite:// URL names no file")]
    MissingPath,
    #[error("in-memory SQLite cannot back a connection pool: name a file")]
    InMemory,
}

impl DatabaseUrl {
    pub fn parse(url: &str) -> Result<Self, UrlError> {
        let (scheme, rest) = url.split_once("://").ok_or(UrlError::MissingScheme)?;
        match scheme.to_ascii_lowercase().as_str() {
            "sqlite" => {
                let path = rest.split('?').next().unwrap_or_default();
                match path {
                    "" => Err(UrlError::MissingPath),
                    ":memory:" => Err(UrlError::InMemory),
                    path => Ok(Self::Sqlite(PathBuf::from(path))),
                }
            }
            "postgres" | "postgresql" => Ok(Self::Postgres(url.to_string())),
            other => Err(UrlError::UnsupportedScheme(other.to_string())),
        }
    }
}

/// PostgreSQL URLs may carry a password: never print them whole.
impl fmt::Debug for DatabaseUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Sqlite(path) => write!(f, "Sqlite({})", path.display()),
            Self::Postgres(_) => f.write_str("Postgres(<redacted>)"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schemes_choose_the_backend() {
        assert_eq!(
            DatabaseUrl::parse("sqlite://data/keywarden.db"),
            Ok(DatabaseUrl::Sqlite("data/keywarden.db".into()))
        );
        assert_eq!(
            DatabaseUrl::parse("sqlite:///var/lib/kw.db"),
            Ok(DatabaseUrl::Sqlite("/var/lib/kw.db".into()))
        );
        assert!(matches!(
            DatabaseUrl::parse("postgresql://u:p@h/db?sslmode=require"),
            Ok(DatabaseUrl::Postgres(_))
        ));
        assert_eq!(DatabaseUrl::parse("data.db"), Err(UrlError::MissingScheme));
        assert_eq!(
            DatabaseUrl::parse("mysql://x"),
            Err(UrlError::UnsupportedScheme("mysql".into()))
        );
        assert_eq!(DatabaseUrl::parse("sqlite://"), Err(UrlError::MissingPath));
        assert_eq!(
            DatabaseUrl::parse("sqlite://:memory:"),
            Err(UrlError::InMemory)
        );
    }

    #[test]
    fn debug_hides_postgres_passwords() {
        let url = DatabaseUrl::parse("postgres://user:hunter2@db/kw").unwrap();
        assert!(!format!("{url:?}").contains("hunter2"));
    }
}
