//! Storage for keywarden: diesel implementations of the application's
//! `ApiTokenRepository` port. The backend is chosen from the database URL's
//! scheme; each backend embeds its own migrations and applies them at start.

mod error;
mod rows;
mod sqlite;
mod url;

pub use sqlite::{SqliteOptions, SqliteRepository};
pub use url::{DatabaseUrl, UrlError};
