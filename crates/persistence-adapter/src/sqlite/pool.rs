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

fn url_of(path: &Path) -> Result<String, RepositoryError> {
    path.to_str()
        .map(str::to_string)
        .ok_or_else(|| RepositoryError::Unavailable("the database path is not UTF-8".into()))
}

/// The connection this process writes through. It does not checkpoint on
/// commit: once readers keep the WAL from resetting, SQLite's automatic
/// checkpoint retries on almost every commit, on the write path. Instead a
/// background thread checkpoints often (copying and syncing beside the
/// writer), and the writer's thread checkpoints what is left now and then
/// between batches, which lets the WAL start over: a checkpoint that races the
/// writer's appends never catches up, and the WAL would grow without bound.
/// The WAL file is reused rather than truncated while writes go on
/// (truncating it stalled the next commit for 30–50 ms), and is cut back once
/// writes pause.
pub(crate) fn connect_writer(
    path: &Path,
    options: &SqliteOptions,
) -> Result<SqliteConnection, RepositoryError> {
    let mut conn = SqliteConnection::establish(&url_of(path)?)
        .map_err(|e| RepositoryError::Unavailable(Box::new(e)))?;
    Pragmas {
        busy_timeout_ms: options.busy_timeout.as_millis(),
    }
    .apply(&mut conn)
    .and_then(|()| conn.batch_execute("PRAGMA wal_autocheckpoint = 0;"))
    .map_err(crate::error::map_diesel)?;
    Ok(conn)
}

/// Checkpoints the WAL into the database file. PASSIVE never waits: frames a
/// reader still needs stay for the next run, and when another checkpoint is
/// running this one simply does not happen.
pub(crate) fn checkpoint(conn: &mut SqliteConnection) {
    report_checkpoint(conn.batch_execute("PRAGMA wal_checkpoint(PASSIVE);"));
}

/// Once writes pause: checkpoint everything and cut the WAL file back to
/// nothing. Without waiting: with a reader still on the WAL this is a PASSIVE
/// checkpoint, and the file shrinks at the next pause.
pub(crate) fn checkpoint_and_truncate(conn: &mut SqliteConnection, busy_timeout: Duration) {
    let outcome = conn.batch_execute("PRAGMA busy_timeout = 0; PRAGMA wal_checkpoint(TRUNCATE);");
    let restored = conn.batch_execute(&format!(
        "PRAGMA busy_timeout = {};",
        busy_timeout.as_millis()
    ));
    report_checkpoint(outcome);
    report_checkpoint(restored);
}

/// A checkpoint that found the database busy is skipped, not a failure.
fn report_checkpoint(outcome: diesel::QueryResult<()>) {
    if let Err(error) = outcome {
        if !crate::error::is_busy(&error.to_string()) {
            tracing::warn!(error = %error, "WAL checkpoint failed");
        }
    }
}

/// When the background checkpointer last finished a checkpoint, so that the
/// writer can run its own right after one, when little is left to copy.
#[derive(Debug)]
pub(crate) struct CheckpointClock {
    origin: std::time::Instant,
    /// Microseconds after `origin`; 0 for never.
    background_done: std::sync::atomic::AtomicU64,
}

impl Default for CheckpointClock {
    fn default() -> Self {
        Self {
            origin: std::time::Instant::now(),
            background_done: std::sync::atomic::AtomicU64::new(0),
        }
    }
}

impl CheckpointClock {
    fn background_finished(&self) {
        let micros = u64::try_from(self.origin.elapsed().as_micros()).unwrap_or(u64::MAX);
        self.background_done
            .store(micros.max(1), std::sync::atomic::Ordering::Relaxed);
    }

    /// How long ago the background checkpointer finished, if ever.
    pub(crate) fn since_background(&self) -> Option<Duration> {
        match self
            .background_done
            .load(std::sync::atomic::Ordering::Relaxed)
        {
            0 => None,
            micros => Some(
                self.origin
                    .elapsed()
                    .saturating_sub(Duration::from_micros(micros)),
            ),
        }
    }
}

/// How often the background checkpointer runs.
const BACKGROUND_CHECKPOINT_EVERY: Duration = Duration::from_millis(100);

/// Starts a thread that checkpoints the WAL beside the writer, so that the
/// bulk of the copying and syncing happens off the write path; the writer's
/// own, rarer checkpoints then have little left to do. It stops when the
/// returned sender is dropped.
///
/// # Errors
/// When the thread cannot be started.
pub(crate) fn start_checkpointer(
    path: std::path::PathBuf,
    clock: std::sync::Arc<CheckpointClock>,
) -> std::io::Result<(std::sync::mpsc::Sender<()>, std::thread::JoinHandle<()>)> {
    let (stop, stopped) = std::sync::mpsc::channel::<()>();
    let thread = std::thread::Builder::new()
        .name("keywarden-sqlite-checkpoint".into())
        .spawn(move || {
            let mut conn = None;
            let database = std::fs::File::open(&path).ok();
            while let Err(std::sync::mpsc::RecvTimeoutError::Timeout) =
                stopped.recv_timeout(BACKGROUND_CHECKPOINT_EVERY)
            {
                if conn.is_none() {
                    conn = connect_writer(&path, &SqliteOptions::default()).ok();
                }
                if let Some(live) = conn.as_mut() {
                    checkpoint(live);
                    // A checkpoint that the writer's appends overtake copies
                    // pages but leaves syncing the file to whichever checkpoint
                    // reaches the WAL's end — the writer's, which would then
                    // flush a second of random pages while every write waits.
                    // Flushing them here keeps that wait short.
                    if let Some(database) = &database {
                        let _ = database.sync_data();
                    }
                    clock.background_finished();
                }
            }
        })?;
    Ok((stop, thread))
}

/// Blocking: creates the folder and file if needed, switches the file to WAL
/// once (before the pool opens all its connections at the same moment),
/// applies pending migrations and builds the pool.
pub(crate) fn open(path: &Path, options: &SqliteOptions) -> Result<SqlitePool, RepositoryError> {
    if let Some(folder) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(folder).map_err(|e| RepositoryError::Unavailable(Box::new(e)))?;
    }
    let url = url_of(path)?;
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
