//! Choosing and opening the storage adapter the database URL names, and the
//! change feed that goes with it. The one place that names concrete adapters.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use keywarden_application::{error_chain, Adapters, ApiTokenRepository, ExternalChange};
use keywarden_persistence_adapter::{
    ChangeNotifier, DatabaseUrl, PostgresRepository, SqliteRepository,
};
use tokio::sync::mpsc::{unbounded_channel, UnboundedReceiver};

use crate::{OsRandom, Settings, StartupError, SystemClock};

enum Backend {
    Sqlite(SqliteRepository),
    Postgres(PostgresRepository),
}

pub(crate) struct Storage {
    repository: Arc<dyn ApiTokenRepository>,
    backend: Backend,
}

impl Storage {
    /// Connects and applies pending migrations.
    pub async fn open(settings: &Settings) -> Result<Self, StartupError> {
        match DatabaseUrl::parse(&settings.database.url)? {
            DatabaseUrl::Sqlite(path) => {
                let repository = SqliteRepository::open(path, settings.sqlite_options())
                    .await
                    .map_err(StartupError::Database)?;
                Ok(Self {
                    repository: Arc::new(repository.clone()),
                    backend: Backend::Sqlite(repository),
                })
            }
            DatabaseUrl::Postgres(url) => {
                let repository = PostgresRepository::open(url, settings.postgres_options())
                    .await
                    .map_err(StartupError::Database)?;
                Ok(Self {
                    repository: Arc::new(repository.clone()),
                    backend: Backend::Postgres(repository),
                })
            }
        }
    }

    /// What the use cases run over: this repository, and the system's clock
    /// and randomness.
    pub fn adapters(&self) -> Adapters {
        Adapters {
            repository: Arc::clone(&self.repository),
            clock: Arc::new(SystemClock),
            secrets: Arc::new(OsRandom),
        }
    }

    /// Starts the feed of changes other processes make to this database.
    pub fn follow_changes(&self) -> Result<UnboundedReceiver<ExternalChange>, StartupError> {
        let (sender, receiver) = unbounded_channel();
        match &self.backend {
            Backend::Sqlite(repository) => repository.follow_changes(sender),
            Backend::Postgres(repository) => repository.follow_changes(sender),
        }
        .map_err(StartupError::ChangeFeed)?;
        Ok(receiver)
    }

    /// The task that announces this process's writes to other instances,
    /// where there are other instances to tell.
    pub fn change_notifier(&self, settings: &Settings) -> Option<ChangeNotifier> {
        match &self.backend {
            Backend::Sqlite(..) => None,
            Backend::Postgres(repository) => Some(repository.change_notifier(
                Duration::from_millis(settings.database.notify_interval_ms.max(1)),
            )),
        }
    }

    /// How often to reload every credential besides following the feed: only
    /// where a notification can be lost without the feed noticing.
    pub fn periodic_resync(&self, settings: &Settings) -> Option<Duration> {
        match self.backend {
            // Tailing the events table misses nothing: writers are serialised.
            Backend::Sqlite(..) => None,
            Backend::Postgres(_) => Some(Duration::from_secs(
                settings.database.resync_interval_secs.max(1),
            )),
        }
    }
}

impl Storage {
    /// An online copy of the database, for SQLite. PostgreSQL has its own
    /// tools (`pg_dump`, base backups), which keywarden does not replace.
    pub async fn backup(&self, target: PathBuf) -> Result<(), String> {
        match &self.backend {
            Backend::Sqlite(repository) => {
                repository.backup(target).await.map_err(|e| error_chain(&e))
            }
            Backend::Postgres(_) => {
                Err("backups of PostgreSQL are made with pg_dump or base backups".to_string())
            }
        }
    }
}
