//! `SqliteRepository`: the repository port over one SQLite file. The queries
//! are shared with every backend (`crate::sql`); this module opens the file
//! and, as SQLite's `Dialect`, says how SQLite transactions serialise.

mod feed;
mod pool;

use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use std::thread::JoinHandle;

use diesel::{RunQueryDsl, SqliteConnection};
use keywarden_application::{ExternalChange, RepositoryError};
use tokio::sync::mpsc::UnboundedSender;

use self::feed::{last_event_id, OwnWrites};
pub use self::pool::SqliteOptions;
use self::pool::SqlitePool;
pub use self::pool::MIGRATIONS;
use crate::error::TxError;
use crate::rows::TokenRow;
use crate::sql::{Dialect, SqlRepository};
use crate::statements::{self, Loads};
use crate::writer::{Maintenance, Writer};

/// How often the writer checkpoints the WAL while writing, which lets the WAL
/// start over: it then stays within about a second of writes, so opening the
/// file after a crash stays quick. (A background thread checkpoints more
/// often, so these have little left to copy.)
const CHECKPOINT_EVERY: Duration = Duration::from_secs(1);

/// The repository over one SQLite file.
pub type SqliteRepository = SqlRepository<SqliteDatabase>;

impl SqliteRepository {
    /// Opens (creating if needed) the database file, migrates it and pools it.
    ///
    /// # Errors
    /// `Unavailable` when the file cannot be opened; `Internal` when a
    /// migration fails.
    pub async fn open(path: PathBuf, options: SqliteOptions) -> Result<Self, RepositoryError> {
        SqliteDatabase::open(path, options).await.map(Self::new)
    }
}

/// SQLite's side of `SqliteRepository`: the file, its pool and its writer.
#[derive(Clone)]
pub struct SqliteDatabase {
    /// Readers: WAL lets them run beside the writer, each on its snapshot.
    pool: SqlitePool,
    /// SQLite admits one writer; others retry in its busy handler, which
    /// sleeps 1 to 100 ms between tries even when the lock is long free. So
    /// this process writes through one connection on one thread, which also
    /// commits the writes that queued meanwhile together (group commit).
    writer: Writer<SqliteConnection>,
    /// Stops the background checkpointer when the last clone is dropped.
    _checkpoints: Arc<std::sync::mpsc::Sender<()>>,
    path: PathBuf,
    own_writes: Arc<OwnWrites>,
}

impl SqliteDatabase {
    /// Opens (creating if needed) the database file, migrates it and pools it.
    ///
    /// # Errors
    /// `Unavailable` when the file cannot be opened; `Internal` when a
    /// migration fails.
    pub async fn open(path: PathBuf, options: SqliteOptions) -> Result<Self, RepositoryError> {
        let (opened, writer_options) = (path.clone(), options.clone());
        let busy_timeout = options.busy_timeout;
        let pool = tokio::task::spawn_blocking(move || pool::open(&opened, &options))
            .await
            .map_err(|e| RepositoryError::Internal(Box::new(e)))??;
        let thread_failed = |e: std::io::Error| RepositoryError::Internal(Box::new(e));
        let writing = path.clone();
        let clock = Arc::new(pool::CheckpointClock::default());
        let own_writes = Arc::new(OwnWrites::default());
        let own = Arc::clone(&own_writes);
        let (writer, _) = Writer::start(
            "keywarden-sqlite-writer",
            Box::new(move || pool::connect_writer(&writing, &writer_options)),
            Box::new(move |conn, batch| {
                if !own.followed() {
                    return Self::write_transaction(conn, batch);
                }
                // The writer excludes every other: the events this batch adds
                // are exactly those between the highest id before and after.
                let (first, last) = Self::write_transaction(conn, |conn| {
                    let before = last_event_id(conn)?;
                    batch(conn)?;
                    Ok((before + 1, last_event_id(conn)?))
                })?;
                own.record(first, last);
                Ok(())
            }),
            Maintenance {
                every: CHECKPOINT_EVERY,
                due: writer_checkpoint(Arc::clone(&clock)),
                idle: Box::new(move |conn| pool::checkpoint_and_truncate(conn, busy_timeout)),
            },
        )
        .map_err(thread_failed)?;
        let (checkpoints, _) =
            pool::start_checkpointer(path.clone(), clock).map_err(thread_failed)?;
        Ok(Self {
            pool,
            writer,
            _checkpoints: Arc::new(checkpoints),
            path,
            own_writes,
        })
    }

    /// Starts following changes other processes make to the file (the
    /// command line, another server), delivered to `changes`; this process's
    /// own writes are not reported.
    ///
    /// # Errors
    /// When the feed's thread cannot be started.
    pub fn follow_changes(
        &self,
        changes: UnboundedSender<ExternalChange>,
    ) -> std::io::Result<JoinHandle<()>> {
        feed::spawn(self.path.clone(), Arc::clone(&self.own_writes), changes)
    }

    /// Writes a consistent copy of the live database to `target` (which must
    /// not exist) with `VACUUM INTO`, without stopping writers for long.
    ///
    /// # Errors
    /// `Unavailable` when no connection is free; `Internal` when SQLite cannot
    /// write the copy (e.g. the file exists).
    pub async fn backup(&self, target: PathBuf) -> Result<(), RepositoryError> {
        let pool = self.pool.clone();
        tokio::task::spawn_blocking(move || {
            let mut conn = pool.get().map_err(crate::error::pool_unavailable)?;
            diesel::sql_query("VACUUM INTO ?")
                .bind::<diesel::sql_types::Text, _>(target.to_string_lossy())
                .execute(&mut conn)
                .map_err(crate::error::map_diesel)?;
            Ok(())
        })
        .await
        .map_err(|e| RepositoryError::Internal(Box::new(e)))?
    }
}

impl Dialect for SqliteDatabase {
    type Conn = SqliteConnection;

    fn pool(&self) -> &SqlitePool {
        &self.pool
    }

    /// A deferred transaction reads one snapshot (WAL).
    fn read_transaction<T, F>(conn: &mut SqliteConnection, work: F) -> Result<T, TxError>
    where
        F: FnOnce(&mut SqliteConnection) -> Result<T, TxError>,
    {
        diesel::Connection::transaction(conn, work)
    }

    /// Through the one writer (see `writer`), which commits queued writes
    /// together in one `write_transaction`, each in a savepoint.
    fn write<T, F>(&self, work: F) -> impl Future<Output = Result<T, RepositoryError>> + Send
    where
        T: Send + 'static,
        F: FnOnce(&mut SqliteConnection) -> Result<T, TxError> + Send + 'static,
    {
        self.writer.write(work)
    }

    /// The writer excludes every other writer: nothing to lock.
    fn rows_for_change(
        conn: &mut SqliteConnection,
        selector: String,
    ) -> Result<Vec<TokenRow>, TxError> {
        Ok(conn.load_rows(statements::tokens_with_selector(selector))?)
    }

    fn lock_token_count(_: &mut SqliteConnection) -> Result<(), TxError> {
        Ok(())
    }

    /// One process per SQLite file: there is no other instance to tell.
    fn announce(_: &mut SqliteConnection, _selector: &str) -> Result<(), TxError> {
        Ok(())
    }
}

impl SqliteDatabase {
    /// IMMEDIATE takes SQLite's write lock at BEGIN, so writers queue on
    /// `busy_timeout` instead of failing to upgrade a read lock mid-transaction.
    fn write_transaction<T, F>(conn: &mut SqliteConnection, work: F) -> Result<T, TxError>
    where
        F: FnOnce(&mut SqliteConnection) -> Result<T, TxError>,
    {
        conn.immediate_transaction(work)
    }
}

/// Background checkpoints just finished are this fresh at most when the
/// writer takes its turn right after one.
const FRESH: Duration = Duration::from_millis(15);
/// The writer checkpoints anyway when no background checkpoint has finished
/// lately (say, it failed to connect).
const OVERDUE: Duration = Duration::from_secs(5);

/// The writer's checkpoint, which lets the WAL restart. Run right after a
/// background one finished, it only copies the few frames appended since:
/// otherwise it could have up to a checkpoint interval of writes to copy and
/// sync while every write waits.
fn writer_checkpoint(
    clock: Arc<pool::CheckpointClock>,
) -> Box<dyn FnMut(&mut SqliteConnection) -> bool + Send> {
    let mut last = std::time::Instant::now();
    Box::new(move |conn| {
        let fresh = clock.since_background().is_some_and(|since| since <= FRESH);
        if !fresh && last.elapsed() < OVERDUE {
            return false;
        }
        pool::checkpoint(conn);
        last = std::time::Instant::now();
        true
    })
}
