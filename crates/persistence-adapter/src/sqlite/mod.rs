//! `SqliteRepository`: the repository port over one SQLite file. The queries
//! are shared with every backend (`crate::sql`); this module opens the file
//! and says how SQLite transactions serialise.

mod feed;
mod pool;
mod schema;

use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use diesel::{RunQueryDsl, SqliteConnection};
use keywarden_application::RepositoryError;

pub use self::feed::SqliteChangeFeed;
pub use self::pool::SqliteOptions;
use self::pool::SqlitePool;
pub use self::pool::MIGRATIONS;
use crate::error::TxError;

#[derive(Clone)]
pub struct SqliteRepository {
    pool: SqlitePool,
    /// SQLite admits one writer; others retry in its busy handler, which
    /// sleeps 1 to 100 ms between tries even when the lock is long free.
    /// Writers of this process queue on this lock instead, woken at once.
    writer: Arc<Mutex<()>>,
}

impl SqliteRepository {
    /// Opens (creating if needed) the database file, migrates it and pools it.
    ///
    /// # Errors
    /// `Unavailable` when the file cannot be opened; `Internal` when a
    /// migration fails.
    pub async fn open(path: PathBuf, options: SqliteOptions) -> Result<Self, RepositoryError> {
        let pool = tokio::task::spawn_blocking(move || pool::open(&path, &options))
            .await
            .map_err(|e| RepositoryError::Internal(Box::new(e)))??;
        Ok(Self {
            pool,
            writer: Arc::new(Mutex::new(())),
        })
    }

    fn writer_turn(&self) -> Option<Arc<Mutex<()>>> {
        Some(Arc::clone(&self.writer))
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

impl SqliteRepository {
    /// A deferred transaction reads one snapshot (WAL).
    fn read_transaction<T, F>(conn: &mut SqliteConnection, work: F) -> Result<T, TxError>
    where
        F: FnOnce(&mut SqliteConnection) -> Result<T, TxError>,
    {
        diesel::Connection::transaction(conn, work)
    }

    /// IMMEDIATE takes SQLite's write lock at BEGIN, so writers queue on
    /// `busy_timeout` instead of failing to upgrade a read lock mid-transaction.
    fn write_transaction<T, F>(conn: &mut SqliteConnection, work: F) -> Result<T, TxError>
    where
        F: FnOnce(&mut SqliteConnection) -> Result<T, TxError>,
    {
        conn.immediate_transaction(work)
    }

    /// The IMMEDIATE transaction already excludes every other writer.
    fn lock_token(_: &mut SqliteConnection, _selector: &str) -> Result<(), TxError> {
        Ok(())
    }

    fn lock_token_count(_: &mut SqliteConnection) -> Result<(), TxError> {
        Ok(())
    }

    /// One process per SQLite file: there is no other instance to tell.
    fn announce(_: &mut SqliteConnection, _selector: &str) -> Result<(), TxError> {
        Ok(())
    }
}

crate::sql::sql_repository!(SqliteRepository, SqliteConnection, super::schema);
