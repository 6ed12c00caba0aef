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
mod notifications;
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

pub use postgres::{ChangeNotifier, PostgresOptions, PostgresRepository};
pub use sqlite::{private_files, SqliteOptions, SqliteRepository, WriteEngineTuning};

/// The embedded migrations of each backend (`migrations/<backend>`).
pub mod migrations {
    pub use crate::postgres::MIGRATIONS as POSTGRES;
    pub use crate::sqlite::MIGRATIONS as SQLITE;
}
pub use url::{DatabaseUrl, UrlError};

/// Says which migrations opening the database applied, so an operator running
/// `keywarden migrate` (or reading a start's log) sees what changed.
fn report_migrations(applied: &[diesel::migration::MigrationVersion<'_>]) {
    if applied.is_empty() {
        tracing::info!("no migration was pending");
    }
    for version in applied {
        tracing::info!(%version, "applied migration");
    }
}
