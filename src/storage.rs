//! Choosing and opening the storage adapter the database URL names, and the
//! change feed that goes with it. The one place that names concrete adapters.
//! Also what an operator must see about it: which database is meant, and
//! never a new empty one where an existing one was expected.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use keywarden_application::{
    error_chain, Adapters, ApiTokenRepository, ExternalChange, NotificationStore,
};
use keywarden_persistence_adapter::{
    private_files, ChangeNotifier, DatabaseUrl, PostgresRepository, SqliteRepository,
};
use tokio::sync::mpsc::{unbounded_channel, UnboundedReceiver};

use crate::settings::redact_url;
use crate::{OsRandom, Settings, StartupError, SystemClock};

/// Whether opening may create a SQLite database that does not exist yet.
/// Only the commands meant to set one up (`serve`, `migrate`) may by default:
/// anything else run from the wrong directory would otherwise work on a new,
/// empty database and look as if every token were gone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Creation {
    Allowed,
    Refused,
}

/// The database the settings name, as an operator should read it: the
/// absolute path of a SQLite file, or the URL without its password.
pub fn describe_database(settings: &Settings) -> String {
    match DatabaseUrl::parse(&settings.database.url) {
        Ok(DatabaseUrl::Sqlite(path)) => absolute(&path).display().to_string(),
        _ => redact_url(&settings.database.url),
    }
}

/// A database others may write lets any local user plant an admin token:
/// refuse it. One others may read gives away every verifier and the audit
/// trail: say so.
fn check_file_mode(path: &Path) -> Result<(), StartupError> {
    use std::os::unix::fs::PermissionsExt;
    let Ok(metadata) = std::fs::metadata(path) else {
        return Ok(());
    };
    let mode = metadata.permissions().mode() & 0o777;
    if mode & 0o002 != 0 {
        return Err(StartupError::UnsafeDatabase {
            path: absolute(path),
            mode,
        });
    }
    if mode & 0o004 != 0 {
        tracing::warn!(
            path = %absolute(path).display(),
            mode = %format!("{mode:o}"),
            "the database is readable by every user of this host; run chmod 600 on it"
        );
    }
    Ok(())
}

fn absolute(path: &Path) -> PathBuf {
    std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf())
}

enum Backend {
    Sqlite(SqliteRepository),
    Postgres(PostgresRepository),
}

pub(crate) struct Storage {
    repository: Arc<dyn ApiTokenRepository>,
    notifications: Arc<dyn NotificationStore>,
    backend: Backend,
}

impl Storage {
    /// Connects and applies pending migrations; a missing SQLite file is
    /// created only when `creation` allows it.
    pub async fn open(settings: &Settings, creation: Creation) -> Result<Self, StartupError> {
        match DatabaseUrl::parse(&settings.database.url)? {
            DatabaseUrl::Sqlite(path) => {
                if creation == Creation::Refused && !path.exists() {
                    return Err(StartupError::NoDatabase(absolute(&path)));
                }
                check_file_mode(&path)?;
                let repository = SqliteRepository::open(path, settings.sqlite_options())
                    .await
                    .map_err(StartupError::Database)?;
                Ok(Self {
                    repository: Arc::new(repository.clone()),
                    notifications: Arc::new(repository.clone()),
                    backend: Backend::Sqlite(repository),
                })
            }
            DatabaseUrl::Postgres(url) => {
                let repository = PostgresRepository::open(url, settings.postgres_options())
                    .await
                    .map_err(StartupError::Database)?;
                Ok(Self {
                    repository: Arc::new(repository.clone()),
                    notifications: Arc::new(repository.clone()),
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

    /// The outbox and expiry notices (the same database).
    pub fn notifications(&self) -> Arc<dyn NotificationStore> {
        Arc::clone(&self.notifications)
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
    /// The copy is created with mode 0600, and never over an existing file.
    pub async fn backup(&self, target: PathBuf) -> Result<(), String> {
        match &self.backend {
            Backend::Sqlite(repository) => {
                // VACUUM INTO fills an empty file and keeps its mode.
                private_files::create_file(&target)
                    .map_err(|e| format!("cannot create {}: {e}", target.display()))?;
                let copied = repository.backup(target.clone()).await;
                copied.map_err(|e| {
                    let _ = std::fs::remove_file(&target);
                    error_chain(&e)
                })?;
                private_files::restrict(&target, 0o600).map_err(|e| e.to_string())
            }
            Backend::Postgres(_) => {
                Err("backups of PostgreSQL are made with pg_dump or base backups".to_string())
            }
        }
    }
}
