//! Opening a SQLite database: the file and its folder, WAL mode, migrations,
//! a pool whose every connection gets the same PRAGMAs, and the `Connector`
//! through which every other connection (the write engine's, the feed's) is
//! opened with those PRAGMAs too. Files it creates are private to the
//! service's user (folder 0700, database and its WAL/SHM 0600) whatever the
//! umask: they hold every verifier and the audit trail.

use std::path::{Path, PathBuf};
use std::time::Duration;

use diesel::connection::SimpleConnection;
use diesel::r2d2::{ConnectionManager, CustomizeConnection, Pool};
use diesel::{Connection, SqliteConnection};
use diesel_migrations::{embed_migrations, EmbeddedMigrations, MigrationHarness};
use keywarden_application::RepositoryError;

use super::engine::WriteEngineTuning;

pub(crate) type SqlitePool = Pool<ConnectionManager<SqliteConnection>>;

pub const MIGRATIONS: EmbeddedMigrations = embed_migrations!("../../migrations/sqlite");

/// How the pool and the write engine behave.
#[derive(Debug, Clone)]
pub struct SqliteOptions {
    /// Connections kept open; readers run in parallel under WAL.
    pub max_connections: u32,
    /// How long a request waits for a free connection before `Unavailable`.
    pub acquire_timeout: Duration,
    /// How long SQLite waits on a lock held by another writer, on every
    /// connection this process opens.
    pub busy_timeout: Duration,
    /// Batching and checkpointing of the single write connection.
    pub engine: WriteEngineTuning,
}

impl Default for SqliteOptions {
    fn default() -> Self {
        Self {
            max_connections: 8,
            acquire_timeout: Duration::from_secs(5),
            busy_timeout: Duration::from_secs(5),
            engine: WriteEngineTuning::default(),
        }
    }
}

/// `busy_timeout` comes first so the other PRAGMAs already wait on locks.
#[derive(Debug, Clone, Copy)]
struct Pragmas {
    busy_timeout: Duration,
}

impl Pragmas {
    fn apply(self, conn: &mut SqliteConnection) -> diesel::QueryResult<()> {
        conn.batch_execute(&format!(
            "PRAGMA busy_timeout = {};
             PRAGMA journal_mode = WAL;
             PRAGMA synchronous = NORMAL;
             PRAGMA foreign_keys = ON;",
            self.busy_timeout.as_millis()
        ))
    }
}

impl CustomizeConnection<SqliteConnection, diesel::r2d2::Error> for Pragmas {
    fn on_acquire(&self, conn: &mut SqliteConnection) -> Result<(), diesel::r2d2::Error> {
        self.apply(conn).map_err(diesel::r2d2::Error::QueryError)
    }
}

/// Opens connections to one database file, each with the configured PRAGMAs
/// (the busy timeout above all), so no connection of this process waits on a
/// lock longer or shorter than configured.
#[derive(Debug, Clone)]
pub(crate) struct Connector {
    path: PathBuf,
    pragmas: Pragmas,
}

impl Connector {
    pub(crate) fn new(path: PathBuf, busy_timeout: Duration) -> Self {
        Self {
            path,
            pragmas: Pragmas { busy_timeout },
        }
    }

    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    pub(crate) fn busy_timeout(&self) -> Duration {
        self.pragmas.busy_timeout
    }

    /// # Errors
    /// `Unavailable` when the file cannot be opened or is locked beyond the
    /// busy timeout.
    pub(crate) fn open(&self) -> Result<SqliteConnection, RepositoryError> {
        let mut conn = SqliteConnection::establish(&url_of(&self.path)?)
            .map_err(|e| RepositoryError::Unavailable(Box::new(e)))?;
        self.pragmas
            .apply(&mut conn)
            .map_err(crate::error::map_diesel)?;
        Ok(conn)
    }
}

fn url_of(path: &Path) -> Result<String, RepositoryError> {
    path.to_str()
        .map(str::to_string)
        .ok_or_else(|| RepositoryError::Unavailable("the database path is not UTF-8".into()))
}

/// Creating files and folders only the service's user may open, with modes
/// set explicitly so the umask cannot widen them. Shared with the composition
/// root for the other files it writes beside the database (backups, the first
/// admin credential).
pub mod private_files {
    use std::fs::{DirBuilder, File, OpenOptions};
    use std::io;
    use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
    use std::path::Path;

    /// Creates `folder` and any missing parents with mode 0700; existing
    /// folders keep their mode.
    pub fn create_folder(folder: &Path) -> io::Result<()> {
        if folder.as_os_str().is_empty() || folder.exists() {
            return Ok(());
        }
        if let Some(parent) = folder.parent() {
            create_folder(parent)?;
        }
        match DirBuilder::new().mode(0o700).create(folder) {
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Ok(()),
            Err(e) => Err(e),
            Ok(()) => restrict(folder, 0o700),
        }
    }

    /// Creates a new file with mode 0600 (its folder too, 0700); fails when
    /// the file exists, so nothing is ever overwritten.
    pub fn create_file(path: &Path) -> io::Result<File> {
        if let Some(folder) = path.parent() {
            create_folder(folder)?;
        }
        let file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(path)?;
        restrict(path, 0o600)?;
        Ok(file)
    }

    /// Sets `path`'s mode exactly.
    pub fn restrict(path: &Path, mode: u32) -> io::Result<()> {
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
    }
}

/// Blocking: creates the folder and file if needed, switches the file to WAL
/// once (before the pool opens all its connections at the same moment),
/// applies pending migrations and builds the pool.
pub(crate) fn open(
    connector: &Connector,
    options: &SqliteOptions,
) -> Result<SqlitePool, RepositoryError> {
    let unavailable = |e: std::io::Error| RepositoryError::Unavailable(Box::new(e));
    let created = !connector.path.exists();
    if created {
        private_files::create_file(&connector.path).map_err(unavailable)?;
    }
    let mut first = connector.open()?;
    let applied = first.run_pending_migrations(MIGRATIONS).map_err(|error| {
        // Another process holding the lock past the busy timeout is a wait,
        // not a broken migration.
        if crate::error::is_busy(&error.to_string()) {
            RepositoryError::Unavailable(error)
        } else {
            RepositoryError::Internal(error)
        }
    })?;
    crate::report_migrations(&applied);
    drop(first);
    if created {
        // SQLite gives these the database's mode; say so rather than rely on it.
        for suffix in ["-wal", "-shm"] {
            let mut side = connector.path.clone().into_os_string();
            side.push(suffix);
            let side = PathBuf::from(side);
            if side.exists() {
                private_files::restrict(&side, 0o600).map_err(unavailable)?;
            }
        }
    }
    Pool::builder()
        .max_size(options.max_connections)
        .connection_timeout(options.acquire_timeout)
        .test_on_check_out(false)
        .connection_customizer(Box::new(connector.pragmas))
        .build(ConnectionManager::new(url_of(&connector.path)?))
        .map_err(|e| RepositoryError::Unavailable(Box::new(e)))
}
