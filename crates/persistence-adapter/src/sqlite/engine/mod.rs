//! The SQLite write engine: how this process writes to its database file.
//! One thread owns the only write connection and commits queued writes
//! together (`writer`); a second thread checkpoints the WAL beside it, and the
//! writer checkpoints now and then between batches by a policy
//! (`checkpoint`); the audit events this process commits are recorded so the
//! change feed does not report them back (`own_writes`). Everything that tunes
//! it is one `WriteEngineTuning` (the busy timeout, shared with every
//! connection, is `SqliteOptions`'), and it reads time from a `Clock`, so
//! tests drive its timing without sleeping.

mod checkpoint;
mod own_writes;
mod writer;

use std::sync::Arc;
use std::time::{Duration, Instant};

use diesel::connection::SimpleConnection;
use diesel::SqliteConnection;
use keywarden_application::RepositoryError;

use self::checkpoint::{BackgroundCheckpoints, CheckpointPolicy};
pub(crate) use self::own_writes::OwnWrites;
use self::writer::Maintenance;
pub(crate) use self::writer::{Batch, Writer};
use super::feed::last_event_id;
use super::pool::Connector;
use crate::error::TxError;

/// The write engine's tuning (configuration `[database]`, SQLite only). The
/// defaults are the values the engine was measured with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WriteEngineTuning {
    /// Most writes committed in one transaction; the rest wait for the next,
    /// so one batch cannot hold every caller's answer for long.
    pub max_batch: usize,
    /// How often the writer checkpoints the WAL while writing, which lets the
    /// WAL start over: it then stays within about this much of writes, so
    /// opening the file after a crash stays quick. Writes pausing this long
    /// also cut the WAL file back.
    pub checkpoint_interval: Duration,
    /// How often the background thread checkpoints beside the writer, so the
    /// writer's own checkpoints have little left to copy.
    pub background_checkpoint_interval: Duration,
    /// The writer takes its turn only this soon after a background checkpoint
    /// finished, when few frames are left to copy.
    pub checkpoint_fresh: Duration,
    /// The writer checkpoints anyway when no background checkpoint has
    /// finished for this long (say, it failed to connect).
    pub checkpoint_overdue: Duration,
    /// Ranges of own audit events kept for the change feed; beyond it the
    /// oldest are forgotten and reported as if written elsewhere, which costs
    /// a re-read, not correctness.
    pub max_own_write_ranges: usize,
}

impl Default for WriteEngineTuning {
    fn default() -> Self {
        Self {
            max_batch: 256,
            checkpoint_interval: Duration::from_secs(1),
            background_checkpoint_interval: Duration::from_millis(100),
            checkpoint_fresh: Duration::from_millis(15),
            checkpoint_overdue: Duration::from_secs(5),
            max_own_write_ranges: 10_000,
        }
    }
}

/// A monotonic time source: the engine asks it rather than `Instant::now`,
/// so that a fake clock decides in tests when checkpoints are due.
pub(crate) trait Clock: Send + Sync {
    fn now(&self) -> Instant;
}

/// The real time.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Instant {
        Instant::now()
    }
}

/// The running engine. Cloning shares it; its threads stop once the last
/// clone is dropped, after finishing the queued writes.
#[derive(Clone)]
pub(crate) struct Engine {
    writer: Writer<SqliteConnection>,
    own_writes: Arc<OwnWrites>,
    /// Stops the background checkpointer when the last clone is dropped.
    _checkpoints: Arc<std::sync::mpsc::Sender<()>>,
}

impl Engine {
    /// Starts the writer and the checkpointer. `write_transaction` begins the
    /// transaction each batch runs in. The write connection is opened
    /// lazily, so an unreachable database fails the writes, not the start.
    ///
    /// # Errors
    /// When a thread cannot be started.
    pub(crate) fn start<W>(
        connector: &Connector,
        tuning: &WriteEngineTuning,
        write_transaction: W,
    ) -> std::io::Result<Self>
    where
        W: Fn(&mut SqliteConnection, Batch<'_, SqliteConnection>) -> Result<(), TxError>
            + Send
            + 'static,
    {
        let clock: Arc<dyn Clock> = Arc::new(SystemClock);
        let background = Arc::new(BackgroundCheckpoints::new(Arc::clone(&clock)));
        let own_writes = Arc::new(OwnWrites::new(tuning.max_own_write_ranges));
        let own = Arc::clone(&own_writes);
        let (writing, truncating) = (connector.clone(), connector.busy_timeout());
        let (writer, batches) = Writer::new(
            Box::new(move || connect_writer(&writing)),
            Box::new(move |conn, batch| {
                if !own.followed() {
                    return write_transaction(conn, batch);
                }
                // The writer excludes every other: the events this batch adds
                // are exactly those between the highest id before and after.
                let mut added = (0, 0);
                write_transaction(conn, &mut |conn| {
                    let before = last_event_id(conn)?;
                    batch(conn)?;
                    added = (before + 1, last_event_id(conn)?);
                    Ok(())
                })?;
                own.record(added.0, added.1);
                Ok(())
            }),
            Maintenance {
                every: tuning.checkpoint_interval,
                due: CheckpointPolicy::new(tuning, Arc::clone(&background), Arc::clone(&clock))
                    .into_maintenance(),
                idle: Box::new(move |conn| checkpoint::checkpoint_and_truncate(conn, truncating)),
            },
            clock,
            tuning.max_batch,
        );
        batches.spawn("keywarden-sqlite-writer")?;
        let checkpoints = checkpoint::start_checkpointer(
            connector.clone(),
            tuning.background_checkpoint_interval,
            background,
        )?;
        Ok(Self {
            writer,
            own_writes,
            _checkpoints: Arc::new(checkpoints),
        })
    }

    pub(crate) fn writer(&self) -> &Writer<SqliteConnection> {
        &self.writer
    }

    pub(crate) fn own_writes(&self) -> &Arc<OwnWrites> {
        &self.own_writes
    }
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
fn connect_writer(connector: &Connector) -> Result<SqliteConnection, RepositoryError> {
    let mut conn = connector.open()?;
    conn.batch_execute("PRAGMA wal_autocheckpoint = 0;")
        .map_err(crate::error::map_diesel)?;
    Ok(conn)
}

#[cfg(test)]
pub(crate) mod testing {
    //! A clock that moves only when a test says so.

    use std::sync::{Mutex, PoisonError};
    use std::time::{Duration, Instant};

    use super::Clock;

    #[derive(Debug)]
    pub(crate) struct FakeClock(Mutex<Instant>);

    impl FakeClock {
        pub(crate) fn new() -> Self {
            Self(Mutex::new(Instant::now()))
        }

        pub(crate) fn advance(&self, by: Duration) {
            *self.0.lock().unwrap_or_else(PoisonError::into_inner) += by;
        }
    }

    impl Clock for FakeClock {
        fn now(&self) -> Instant {
            *self.0.lock().unwrap_or_else(PoisonError::into_inner)
        }
    }
}

#[cfg(test)]
mod tests {
    use diesel::sql_types::Integer;
    use diesel::{QueryableByName, RunQueryDsl};

    use super::*;
    use crate::sqlite::{feed, SqliteOptions, SqliteRepository};

    #[derive(QueryableByName)]
    struct Timeout {
        #[diesel(sql_type = Integer)]
        timeout: i32,
    }

    pub(super) fn busy_timeout_of(conn: &mut SqliteConnection) -> i32 {
        diesel::sql_query("PRAGMA busy_timeout")
            .get_result::<Timeout>(conn)
            .unwrap()
            .timeout
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn every_connection_takes_the_configured_busy_timeout() {
        let dir = tempfile::tempdir().unwrap();
        let options = SqliteOptions {
            busy_timeout: Duration::from_millis(321),
            ..SqliteOptions::default()
        };
        let repository = SqliteRepository::open(dir.path().join("kw.db"), options)
            .await
            .unwrap();
        let mut reader = repository.pool.get().unwrap();
        assert_eq!(busy_timeout_of(&mut reader), 321, "a pooled reader");
        let writer = repository
            .engine
            .writer()
            .write(|conn| Ok(busy_timeout_of(conn)))
            .await
            .unwrap();
        assert_eq!(writer, 321, "the writer's connection");
        let connector = &repository.connector;
        let mut checkpointer = connect_writer(connector).unwrap();
        assert_eq!(
            busy_timeout_of(&mut checkpointer),
            321,
            "the checkpointer's"
        );
        let mut feed = feed::connect(connector).unwrap();
        assert_eq!(busy_timeout_of(&mut feed), 321, "the change feed's");
    }
}
