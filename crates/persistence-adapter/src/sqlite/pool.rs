//! Opening a SQLite database: the file and its folder, WAL mode, migrations,
//! and a pool whose every connection gets the same PRAGMAs.

use std::path::Path;
use std::time::Duration;

use diesel::connection::SimpleConnection;
use diesel::r2d2::{ConnectionManager, CustomizeConnection, Pool};
use diesel::{Connection, SqliteConnection};
use diesel_migrations::{embed_migrations, EmbeddedMigrations, MigrationHarness};
use keywarden_application::RepositoryError;

pub(crate) type SqlitePool = Pool<ConnectionManager<SqliteConnection>>;

pub const MIGRATIONS: EmbeddedMigrations = embed_migrations!("../../migrations/sqlite");

/// How the pool behaves.
#[derive(Debug, Clone)]
pub struct SqliteOptions {
    /// Connections kept open; readers run in parallel under WAL.
    pub max_connections: u32,
    /// How long a request waits for a free connection before `Unavailable`.
    pub acquire_timeout: Duration,
    /// How long SQLite waits on a lock held by another writer.
    pub busy_timeout: Duration,
}

impl Default for SqliteOptions {
    fn default() -> Self {
        Self {
            max_connections: 8,
            acquire_timeout: Duration::from_secs(5),
            busy_timeout: Duration::from_secs(5),
        }
    }
}

/// `busy_timeout` comes first so the other PRAGMAs already wait on locks.
#[derive(Debug)]
struct Pragmas {
    busy_timeout_ms: u128,
}

impl Pragmas {
    fn apply(&self, conn: &mut SqliteConnection) -> diesel::QueryResult<()> {
        conn.batch_execute(&format!(
            "PRAGMA busy_timeout = {};
             PRAGMA journal_mode = WAL;
             PRAGMA synchronous = NORMAL;
             PRAGMA foreign_keys = ON;",
            self.busy_timeout_ms
        ))
    }
}

impl CustomizeConnection<SqliteConnection, diesel::r2d2::Error> for Pragmas {
    fn on_acquire(&self, conn: &mut SqliteConnection) -> Result<(), diesel::r2d2::Error> {
        self.apply(conn).map_err(diesel::r2d2::Error::QueryError)
    }
}

/// Blocking: creates the folder and file if needed, switches the file to WAL
/// once (before the pool opens all its connections at the same moment),
/// applies pending migrations and builds the pool.
pub(crate) fn open(path: &Path, options: &SqliteOptions) -> Result<SqlitePool, RepositoryError> {
    if let Some(folder) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(folder).map_err(|e| RepositoryError::Unavailable(Box::new(e)))?;
    }
    let url = path
        .to_str()
        .ok_or_else(|| RepositoryError::Unavailable("the database path is not UTF-8".into()))?
        .to_string();
    let pragmas = Pragmas {
        busy_timeout_ms: options.busy_timeout.as_millis(),
    };
    let mut first =
        SqliteConnection::establish(&url).map_err(|e| RepositoryError::Unavailable(Box::new(e)))?;
    pragmas
        .apply(&mut first)
        .map_err(crate::error::map_diesel)?;
    first
        .run_pending_migrations(MIGRATIONS)
        .map_err(RepositoryError::Internal)?;
    drop(first);
    Pool::builder()
        .max_size(options.max_connections)
        .connection_timeout(options.acquire_timeout)
        .test_on_check_out(false)
        .connection_customizer(Box::new(pragmas))
        .build(ConnectionManager::new(url))
        .map_err(|e| RepositoryError::Unavailable(Box::new(e)))
}
