//! Choosing and opening the storage adapter the database URL names, and the
//! change feed that goes with it. The one place that names concrete adapters.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use keywarden_application::{ApiTokenRepository, ExternalChange};
use keywarden_persistence_adapter::{
    ChangeListener, DatabaseUrl, PostgresRepository, SqliteChangeFeed, SqliteRepository,
};
use tokio::sync::mpsc::{unbounded_channel, UnboundedReceiver};

use crate::{Settings, StartupError};

enum Backend {
    Sqlite(PathBuf),
    Postgres(String),
}

pub(crate) struct Storage {
    pub repository: Arc<dyn ApiTokenRepository>,
    backend: Backend,
}

impl Storage {
    /// Connects and applies pending migrations.
    pub async fn open(settings: &Settings) -> Result<Self, StartupError> {
        match DatabaseUrl::parse(&settings.database.url)? {
            DatabaseUrl::Sqlite(path) => Ok(Self {
                repository: Arc::new(
                    SqliteRepository::open(path.clone(), settings.sqlite_options())
                        .await
                        .map_err(StartupError::Database)?,
                ),
                backend: Backend::Sqlite(path),
            }),
            DatabaseUrl::Postgres(url) => Ok(Self {
                repository: Arc::new(
                    PostgresRepository::open(url.clone(), settings.postgres_options())
                        .await
                        .map_err(StartupError::Database)?,
                ),
                backend: Backend::Postgres(url),
            }),
        }
    }

    /// Starts the feed of changes other processes make to this database.
    pub fn follow_changes(&self) -> Result<UnboundedReceiver<ExternalChange>, StartupError> {
        let (sender, receiver) = unbounded_channel();
        match &self.backend {
            Backend::Sqlite(path) => SqliteChangeFeed::spawn(path.clone(), sender),
            Backend::Postgres(url) => ChangeListener::spawn(url.clone(), sender),
        }
        .map_err(StartupError::ChangeFeed)?;
        Ok(receiver)
    }

    /// How often to reload every credential besides following the feed: only
    /// where a notification can be lost without the feed noticing.
    pub fn periodic_resync(&self, settings: &Settings) -> Option<Duration> {
        match self.backend {
            // Tailing the events table misses nothing: writers are serialised.
            Backend::Sqlite(_) => None,
            Backend::Postgres(_) => Some(Duration::from_secs(
                settings.database.resync_interval_secs.max(1),
            )),
        }
    }
}
