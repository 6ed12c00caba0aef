//! `SqliteRepository`: the repository port over one SQLite file. The queries
//! are shared with every backend (`crate::sql`); this module opens the file
//! and, as SQLite's `Dialect`, says how SQLite transactions serialise. How
//! writes reach the file is the write engine's (`engine`).

mod engine;
mod feed;
mod pool;

use std::future::Future;
use std::path::PathBuf;
use std::thread::JoinHandle;

use diesel::{QueryDsl, RunQueryDsl, SqliteConnection};
use keywarden_application::{ExternalChange, LogPosition, RepositoryError};
use tokio::sync::mpsc::UnboundedSender;

use self::engine::Engine;
pub use self::engine::WriteEngineTuning;
pub use self::pool::private_files;
pub use self::pool::SqliteOptions;
pub use self::pool::MIGRATIONS;
use self::pool::{Connector, SqlitePool};
use crate::error::TxError;
use crate::rows::{EventRow, TokenRow};
use crate::schema::events;
use crate::sql::{Backlog, Dialect, SqlRepository};
use crate::statements::{self, Loads};

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
    engine: Engine,
    /// Opens every other connection with the same configured PRAGMAs.
    connector: Connector,
}

impl SqliteDatabase {
    /// Opens (creating if needed) the database file, migrates it and pools it.
    ///
    /// # Errors
    /// `Unavailable` when the file cannot be opened, or another process
    /// holds its lock beyond the busy timeout; `Internal` when a migration
    /// fails.
    pub async fn open(path: PathBuf, options: SqliteOptions) -> Result<Self, RepositoryError> {
        let connector = Connector::new(path, options.busy_timeout);
        let (opening, tuning) = (connector.clone(), options.engine.clone());
        let pool = tokio::task::spawn_blocking(move || pool::open(&opening, &options))
            .await
            .map_err(|e| RepositoryError::Internal(Box::new(e)))??;
        let engine = Engine::start(&connector, &tuning, |conn, batch| {
            Self::write_transaction(conn, batch)
        })
        .map_err(|e| RepositoryError::Internal(Box::new(e)))?;
        Ok(Self {
            pool,
            engine,
            connector,
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
        feed::spawn(
            self.connector.clone(),
            std::sync::Arc::clone(self.engine.own_writes()),
            changes,
        )
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
        self.engine.writer().write(work)
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

    /// The writer assigns event ids in commit order: the id is the
    /// position, and every visible event is settled.
    fn log_end(conn: &mut SqliteConnection) -> Result<LogPosition, TxError> {
        let last: Option<i64> = events::table
            .select(diesel::dsl::max(events::id))
            .first(conn)?;
        Ok(LogPosition {
            commit: 0,
            id: last.unwrap_or(0),
        })
    }

    fn events_after(
        conn: &mut SqliteConnection,
        after: LogPosition,
        limit: i64,
        _settled: bool,
    ) -> Result<Vec<EventRow>, TxError> {
        Ok(conn.load_rows(statements::events_after_id(after.id, limit))?)
    }

    fn backlog_after(
        conn: &mut SqliteConnection,
        after: LogPosition,
    ) -> Result<Vec<Backlog>, TxError> {
        Ok(conn.load_rows(statements::backlog_after_id(after.id))?)
    }

    /// One process per SQLite file: there is no other instance to tell.
    async fn committed(&self, _selectors: Vec<String>) {}
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
