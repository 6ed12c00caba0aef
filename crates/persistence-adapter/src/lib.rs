//! Storage for keywarden: diesel implementations of the application's
//! `ApiTokenRepository` port. The backend is chosen from the database URL's
//! scheme; each backend embeds its own migrations and applies them at start.
//!
//! Layout: `schema` (the tables, one definition for both backends),
//! `statements` (every statement, written once), `sql` (the port over any
//! backend, and the `Dialect` trait a backend implements), `sqlite` and
//! `postgres` (the two dialects: opening, transactions, locking, change
//! feeds), `rows` and `stored_event` (what rows and stored audit events
//! hold, and their conversion into domain types).

mod error;
mod postgres;
mod rows;
mod schema;
mod sql;
mod sqlite;
mod statements;
mod stored_event;
#[cfg(any(test, feature = "test-support"))]
pub mod testing;
mod url;

pub use postgres::{PostgresOptions, PostgresRepository};
pub use sqlite::{SqliteOptions, SqliteRepository, WriteEngineTuning};

/// The embedded migrations of each backend (`migrations/<backend>`).
pub mod migrations {
    pub use crate::postgres::MIGRATIONS as POSTGRES;
    pub use crate::sqlite::MIGRATIONS as SQLITE;
}
pub use url::{DatabaseUrl, UrlError};
