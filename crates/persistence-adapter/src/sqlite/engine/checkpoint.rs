//! Checkpointing the WAL. A background thread checkpoints often, so that the
//! bulk of the copying and syncing happens off the write path; the writer
//! checkpoints between batches now and then, right after a background
//! checkpoint, when little is left to copy, which lets the WAL start over;
//! and once writes pause it cuts the WAL file back.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{RecvTimeoutError, Sender};
use std::sync::Arc;
use std::time::{Duration, Instant};

use diesel::connection::SimpleConnection;
use diesel::SqliteConnection;

use super::{connect_writer, Clock, WriteEngineTuning};
use crate::sqlite::pool::Connector;

/// Checkpoints the WAL into the database file. PASSIVE never waits: frames a
/// reader still needs stay for the next run, and when another checkpoint is
/// running this one simply does not happen.
fn checkpoint(conn: &mut SqliteConnection) {
    report_checkpoint(conn.batch_execute("PRAGMA wal_checkpoint(PASSIVE);"));
}

/// Once writes pause: checkpoint everything and cut the WAL file back to
/// nothing. Without waiting: with a reader still on the WAL this is a PASSIVE
/// checkpoint, and the file shrinks at the next pause.
pub(super) fn checkpoint_and_truncate(conn: &mut SqliteConnection, busy_timeout: Duration) {
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
/// writer can run its own right after one.
pub(super) struct BackgroundCheckpoints {
    clock: Arc<dyn Clock>,
    origin: Instant,
    /// Microseconds after `origin`; 0 for never.
    done: AtomicU64,
}

impl BackgroundCheckpoints {
    pub(super) fn new(clock: Arc<dyn Clock>) -> Self {
        let origin = clock.now();
        Self {
            clock,
            origin,
            done: AtomicU64::new(0),
        }
    }

    fn finished(&self) {
        let since = self.clock.now().saturating_duration_since(self.origin);
        let micros = u64::try_from(since.as_micros()).unwrap_or(u64::MAX);
        self.done.store(micros.max(1), Ordering::Relaxed);
    }

    /// How long ago the background checkpointer finished, if ever.
    fn since(&self) -> Option<Duration> {
        match self.done.load(Ordering::Relaxed) {
            0 => None,
            micros => Some(
                self.clock
                    .now()
                    .saturating_duration_since(self.origin)
                    .saturating_sub(Duration::from_micros(micros)),
            ),
        }
    }
}

/// When the writer checkpoints (which lets the WAL restart). Run right after
/// a background checkpoint finished, it only copies the few frames appended
/// since: otherwise it could have up to a checkpoint interval of writes to
/// copy and sync while every write waits.
pub(super) struct CheckpointPolicy {
    fresh: Duration,
    overdue: Duration,
    background: Arc<BackgroundCheckpoints>,
    clock: Arc<dyn Clock>,
    /// When the writer last checkpointed.
    last: Instant,
}

impl CheckpointPolicy {
    pub(super) fn new(
        tuning: &WriteEngineTuning,
        background: Arc<BackgroundCheckpoints>,
        clock: Arc<dyn Clock>,
    ) -> Self {
        Self {
            fresh: tuning.checkpoint_fresh,
            overdue: tuning.checkpoint_overdue,
            background,
            last: clock.now(),
            clock,
        }
    }

    /// Whether the writer should checkpoint now.
    fn due(&self) -> bool {
        let fresh = self
            .background
            .since()
            .is_some_and(|since| since <= self.fresh);
        fresh || self.clock.now().saturating_duration_since(self.last) >= self.overdue
    }

    /// The writer's maintenance step: checkpoints when due, declines
    /// otherwise (to be asked again after the next batch).
    pub(super) fn into_maintenance(
        mut self,
    ) -> Box<dyn FnMut(&mut SqliteConnection) -> bool + Send> {
        Box::new(move |conn| {
            if !self.due() {
                return false;
            }
            checkpoint(conn);
            self.last = self.clock.now();
            true
        })
    }
}

/// Starts a thread that checkpoints the WAL every `every` beside the writer,
/// on a connection of its own, and tells `background` when it finished. It
/// stops when the returned sender is dropped.
///
/// # Errors
/// When the thread cannot be started.
pub(super) fn start_checkpointer(
    connector: Connector,
    every: Duration,
    background: Arc<BackgroundCheckpoints>,
) -> std::io::Result<Sender<()>> {
    let (stop, stopped) = std::sync::mpsc::channel::<()>();
    std::thread::Builder::new()
        .name("keywarden-sqlite-checkpoint".into())
        .spawn(move || {
            let mut conn = None;
            let database = std::fs::File::open(connector.path()).ok();
            while let Err(RecvTimeoutError::Timeout) = stopped.recv_timeout(every) {
                if conn.is_none() {
                    conn = connect_writer(&connector).ok();
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
                    background.finished();
                }
            }
        })?;
    Ok(stop)
}

#[cfg(test)]
mod tests {
    use super::super::testing::FakeClock;
    use super::super::tests::busy_timeout_of;
    use super::*;

    #[test]
    fn truncating_restores_the_configured_busy_timeout() {
        let dir = tempfile::tempdir().unwrap();
        let timeout = Duration::from_millis(321);
        let mut conn = connect_writer(&Connector::new(dir.path().join("kw.db"), timeout)).unwrap();
        checkpoint_and_truncate(&mut conn, timeout);
        assert_eq!(busy_timeout_of(&mut conn), 321);
    }

    fn policy(clock: &Arc<FakeClock>) -> (CheckpointPolicy, Arc<BackgroundCheckpoints>) {
        let clock: Arc<dyn Clock> = clock.clone();
        let background = Arc::new(BackgroundCheckpoints::new(Arc::clone(&clock)));
        let policy = CheckpointPolicy::new(
            &WriteEngineTuning::default(),
            Arc::clone(&background),
            clock,
        );
        (policy, background)
    }

    #[test]
    fn the_writer_checkpoints_right_after_a_background_checkpoint() {
        let clock = Arc::new(FakeClock::new());
        let (policy, background) = policy(&clock);
        clock.advance(Duration::from_secs(1));
        assert!(!policy.due(), "no background checkpoint yet");
        background.finished();
        assert!(policy.due(), "just finished");
        clock.advance(Duration::from_millis(15));
        assert!(policy.due(), "still fresh at 15 ms");
        clock.advance(Duration::from_millis(1));
        assert!(!policy.due(), "stale at 16 ms");
    }

    #[test]
    fn the_writer_checkpoints_anyway_once_overdue() {
        let clock = Arc::new(FakeClock::new());
        let (policy, background) = policy(&clock);
        background.finished();
        clock.advance(Duration::from_secs(5) - Duration::from_millis(1));
        assert!(!policy.due(), "stale and not yet overdue");
        clock.advance(Duration::from_millis(1));
        assert!(policy.due(), "overdue after 5 s");
    }

    #[test]
    fn a_checkpoint_resets_the_overdue_wait() {
        let dir = tempfile::tempdir().unwrap();
        let connector = Connector::new(dir.path().join("kw.db"), Duration::from_secs(5));
        let mut conn = connect_writer(&connector).unwrap();
        let clock = Arc::new(FakeClock::new());
        let (policy, _) = policy(&clock);
        let mut maintain = policy.into_maintenance();
        assert!(!maintain(&mut conn), "declined: nothing is due");
        clock.advance(Duration::from_secs(5));
        assert!(maintain(&mut conn), "overdue: checkpointed");
        assert!(!maintain(&mut conn), "and not again right away");
        clock.advance(Duration::from_secs(5));
        assert!(maintain(&mut conn));
    }
}
