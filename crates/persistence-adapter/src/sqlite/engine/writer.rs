//! Group commit: one thread owns the only write connection and commits the
//! writes queued while the previous commit ran in one transaction, each in a
//! savepoint of its own. For a database that admits one writer at a time
//! (SQLite), this turns N commits — each a WAL append, a WAL-index update and
//! a cache reset on every other connection — into one, without changing what
//! any caller sees: a write's answer is sent only after the transaction that
//! holds it has committed, and a write that fails rolls back to its savepoint
//! without touching its neighbours.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use diesel::Connection;
use keywarden_application::{error_chain, RepositoryError};
use tokio::sync::oneshot;
use tracing::warn;

use super::Clock;
use crate::error::TxError;

/// What a queued write hands back after running: called once with whether
/// its transaction committed.
type Completion = Box<dyn FnOnce(Result<(), &str>) + Send>;

/// A write waiting in the queue.
trait Queued<C>: Send {
    /// Runs the write inside the batch's transaction.
    fn run(self: Box<Self>, conn: &mut C) -> Completion;
    /// Answers without running: the batch could not start.
    fn refuse(self: Box<Self>, why: RepositoryError);
}

type Job<C> = Box<dyn Queued<C>>;

type Answer<T> = oneshot::Receiver<Result<T, RepositoryError>>;

struct Pending<T, F> {
    work: F,
    answer: oneshot::Sender<Result<T, RepositoryError>>,
}

impl<C, T, F> Queued<C> for Pending<T, F>
where
    C: Connection,
    T: Send + 'static,
    F: FnOnce(&mut C) -> Result<T, TxError> + Send,
{
    fn run(self: Box<Self>, conn: &mut C) -> Completion {
        let Pending { work, answer } = *self;
        let outcome = conn
            .transaction::<T, TxError, _>(work)
            .map_err(RepositoryError::from);
        Box::new(move |committed: Result<(), &str>| {
            let outcome = match (outcome, committed) {
                (Ok(_), Err(why)) => Err(not_committed(why)),
                (outcome, _) => outcome,
            };
            // The caller may have given up waiting; the write stands.
            let _ = answer.send(outcome);
        })
    }

    fn refuse(self: Box<Self>, why: RepositoryError) {
        let _ = self.answer.send(Err(why));
    }
}

/// The answer to a write whose batch did not commit. Unavailable: nothing
/// was written, and the same write may succeed later (say, once another
/// process releases the lock that outlasted the busy timeout).
fn not_committed(why: &str) -> RepositoryError {
    RepositoryError::Unavailable(format!("the write was not committed: {why}").into())
}

/// Opens the write connection, and opens it again after a failure.
pub(crate) type Connect<C> = Box<dyn FnMut() -> Result<C, RepositoryError> + Send>;

/// The body of one batch: runs every queued write.
pub(crate) type Batch<'a, C> = &'a mut dyn FnMut(&mut C) -> Result<(), TxError>;

/// Runs a batch's body in the backend's write transaction, once per batch.
pub(crate) type Begin<C> = Box<dyn FnMut(&mut C, Batch<'_, C>) -> Result<(), TxError> + Send>;

/// Housekeeping on the write connection between batches (a WAL checkpoint):
/// `due` after each batch once `every` has passed since it last ran (it may
/// decline, returning `false`, to be asked again after the next batch), and
/// `idle` once when the queue has been empty for `every` after a write.
/// Running it on the writer's own thread means no write is appended while it
/// runs.
pub(crate) struct Maintenance<C> {
    pub every: Duration,
    pub due: Box<dyn FnMut(&mut C) -> bool + Send>,
    pub idle: Box<dyn FnMut(&mut C) + Send>,
}

/// The queue of writes. Cloning shares it; the writer's loop ends when the
/// last clone is dropped, after finishing what was queued.
pub(crate) struct Writer<C> {
    queue: Sender<Job<C>>,
}

impl<C> Clone for Writer<C> {
    fn clone(&self) -> Self {
        Self {
            queue: self.queue.clone(),
        }
    }
}

impl<C: Connection + 'static> Writer<C> {
    /// A queue and the loop that serves it, not yet running: `Batches::spawn`
    /// runs it on a thread of its own, a test steps it by hand.
    pub(crate) fn new(
        connect: Connect<C>,
        begin: Begin<C>,
        maintenance: Maintenance<C>,
        clock: Arc<dyn Clock>,
        max_batch: usize,
    ) -> (Self, Batches<C>) {
        let (queue, jobs) = mpsc::channel();
        let maintained = clock.now();
        let batches = Batches {
            jobs,
            conn: None,
            connect,
            begin,
            maintenance,
            clock,
            max_batch: max_batch.max(1),
            maintained,
            written: false,
        };
        (Self { queue }, batches)
    }

    /// Queues `work` and waits until the batch holding it has committed.
    /// `work` runs inside a savepoint: when it fails, only its own changes
    /// are undone.
    pub(crate) async fn write<T, F>(&self, work: F) -> Result<T, RepositoryError>
    where
        T: Send + 'static,
        F: FnOnce(&mut C) -> Result<T, TxError> + Send + 'static,
    {
        self.queue(work)?.await.map_err(|_| {
            RepositoryError::Internal("the database writer failed while running this write".into())
        })?
    }

    /// Queues `work`; its answer arrives once its batch has run.
    fn queue<T, F>(&self, work: F) -> Result<Answer<T>, RepositoryError>
    where
        T: Send + 'static,
        F: FnOnce(&mut C) -> Result<T, TxError> + Send + 'static,
    {
        let (answer, answered) = oneshot::channel();
        let job: Job<C> = Box::new(Pending { work, answer });
        self.queue
            .send(job)
            .map_err(|_| RepositoryError::Unavailable("the database writer has stopped".into()))?;
        Ok(answered)
    }
}

/// The writer's side of the queue: the write connection and what decides
/// when its batches run and when it is maintained.
pub(crate) struct Batches<C> {
    jobs: Receiver<Job<C>>,
    conn: Option<C>,
    connect: Connect<C>,
    begin: Begin<C>,
    maintenance: Maintenance<C>,
    clock: Arc<dyn Clock>,
    max_batch: usize,
    /// When maintenance last ran (or writing started, or last paused).
    maintained: Instant,
    /// Whether a batch ran since writes last paused.
    written: bool,
}

impl<C: Connection + 'static> Batches<C> {
    /// Runs the loop on a thread named `name`.
    ///
    /// # Errors
    /// When the thread cannot be started.
    pub(crate) fn spawn(self, name: &str) -> std::io::Result<JoinHandle<()>> {
        std::thread::Builder::new()
            .name(name.to_string())
            .spawn(move || self.run())
    }

    fn run(mut self) {
        loop {
            // Waiting for the queue, not the clock: a pause in writes is the
            // real time the queue stays empty.
            let next = if self.written {
                self.jobs.recv_timeout(self.maintenance.every)
            } else {
                self.jobs.recv().map_err(|_| RecvTimeoutError::Disconnected)
            };
            match next {
                Ok(first) => self.batch(first),
                Err(RecvTimeoutError::Timeout) => self.pause(),
                // Every `Writer` is gone and the queue is empty.
                Err(RecvTimeoutError::Disconnected) => break,
            }
        }
        if self.written {
            self.pause();
        }
    }

    /// One batch step: takes `first` and the writes queued behind it (up to
    /// the batch limit), runs them in one transaction, each in its own
    /// savepoint, answers each once the transaction has committed (or not),
    /// then maintains the connection if that is due.
    fn batch(&mut self, first: Job<C>) {
        let mut batch = Vec::with_capacity(16);
        batch.push(first);
        while batch.len() < self.max_batch {
            match self.jobs.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
        let size = batch.len();
        let started = Instant::now();
        let live = match self.conn.take().map_or_else(&mut self.connect, Ok) {
            Ok(live) => live,
            Err(error) => {
                warn!(error = %error, "cannot open the database for writing");
                let why = error_chain(&error);
                for job in batch {
                    job.refuse(RepositoryError::Unavailable(why.clone().into()));
                }
                return;
            }
        };
        self.conn = commit_batch(live, batch, &mut self.begin);
        self.written = true;
        metrics::histogram!("keywarden_db_write_batch_size").record(size as f64);
        metrics::histogram!("keywarden_db_write_batch_seconds")
            .record(started.elapsed().as_secs_f64());
        let now = self.clock.now();
        if now.saturating_duration_since(self.maintained) >= self.maintenance.every {
            if let Some(conn) = self.conn.as_mut() {
                if (self.maintenance.due)(conn) {
                    self.maintained = self.clock.now();
                }
            }
        }
    }

    /// Writes have paused: the idle maintenance, once.
    fn pause(&mut self) {
        if let Some(conn) = self.conn.as_mut() {
            (self.maintenance.idle)(conn);
        }
        (self.maintained, self.written) = (self.clock.now(), false);
    }
}

/// Runs one batch in one transaction and answers every job in it. Returns the
/// connection unless it can no longer be trusted (a panic mid-transaction).
fn commit_batch<C: Connection>(mut conn: C, batch: Vec<Job<C>>, begin: &mut Begin<C>) -> Option<C> {
    let size = batch.len();
    let mut completions: Vec<Completion> = Vec::with_capacity(size);
    let mut batch = batch.into_iter();
    let committed = catch_unwind(AssertUnwindSafe(|| {
        begin(&mut conn, &mut |conn| {
            for job in batch.by_ref() {
                completions.push(job.run(conn));
            }
            Ok(())
        })
    }));
    match committed {
        Ok(Ok(())) => {
            for complete in completions {
                complete(Ok(()));
            }
            Some(conn)
        }
        Ok(Err(error)) => {
            let why = error_chain(&RepositoryError::from(error));
            warn!(error = %why, writes = size, "a batch of writes was not committed");
            for complete in completions {
                complete(Err(&why));
            }
            // The transaction did not begin (say, the lock outlasted the
            // busy timeout): these writes never ran.
            for job in batch {
                job.refuse(not_committed(&why));
            }
            Some(conn)
        }
        // Jobs not yet answered see their answer channel close (an internal
        // error); dropping the connection rolls its transaction back.
        Err(_) => {
            tracing::error!("a write panicked; its batch was rolled back");
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Duration;

    use diesel::connection::SimpleConnection;
    use diesel::sql_types::BigInt;
    use diesel::{QueryableByName, RunQueryDsl, SqliteConnection};

    use super::super::testing::FakeClock;
    use super::super::SystemClock;
    use super::*;

    #[derive(QueryableByName)]
    struct Count {
        #[diesel(sql_type = BigInt)]
        n: i64,
    }

    fn database() -> (tempfile::TempDir, std::path::PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("writer.db");
        let mut conn = SqliteConnection::establish(path.to_str().unwrap()).unwrap();
        conn.batch_execute(
            "PRAGMA journal_mode = WAL; CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT NOT NULL);",
        )
        .unwrap();
        (dir, path)
    }

    fn connect(path: &std::path::Path) -> Connect<SqliteConnection> {
        let url = path.to_str().unwrap().to_string();
        Box::new(move || {
            SqliteConnection::establish(&url).map_err(|e| RepositoryError::Unavailable(Box::new(e)))
        })
    }

    fn rows(path: &std::path::Path) -> Vec<String> {
        #[derive(QueryableByName)]
        struct Row {
            #[diesel(sql_type = diesel::sql_types::Text)]
            v: String,
        }
        let mut conn = SqliteConnection::establish(path.to_str().unwrap()).unwrap();
        let mut rows: Vec<String> = diesel::sql_query("SELECT v FROM t")
            .load::<Row>(&mut conn)
            .unwrap()
            .into_iter()
            .map(|row| row.v)
            .collect();
        rows.sort();
        rows
    }

    fn insert(conn: &mut SqliteConnection, v: &str) -> Result<(), TxError> {
        diesel::sql_query("INSERT INTO t (v) VALUES (?)")
            .bind::<diesel::sql_types::Text, _>(v)
            .execute(conn)?;
        Ok(())
    }

    fn immediate() -> Begin<SqliteConnection> {
        Box::new(|conn: &mut SqliteConnection, batch: Batch<'_, _>| {
            conn.immediate_transaction(batch)
        })
    }

    fn no_maintenance() -> Maintenance<SqliteConnection> {
        Maintenance {
            every: Duration::from_secs(3600),
            due: Box::new(|_| true),
            idle: Box::new(|_| {}),
        }
    }

    /// A writer whose loop the test steps by hand.
    fn stepped(
        connect: Connect<SqliteConnection>,
        begin: Begin<SqliteConnection>,
        maintenance: Maintenance<SqliteConnection>,
        clock: Arc<dyn Clock>,
    ) -> (Writer<SqliteConnection>, Batches<SqliteConnection>) {
        Writer::new(connect, begin, maintenance, clock, 256)
    }

    /// A writer running on its thread, as in production.
    fn started(
        connect: Connect<SqliteConnection>,
        begin: Begin<SqliteConnection>,
    ) -> Writer<SqliteConnection> {
        let (writer, batches) = stepped(connect, begin, no_maintenance(), Arc::new(SystemClock));
        batches.spawn("test-writer").unwrap();
        writer
    }

    /// One batch step over whatever is queued now.
    fn step(batches: &mut Batches<SqliteConnection>) {
        let first = batches.jobs.try_recv().expect("a write is queued");
        batches.batch(first);
    }

    /// Queues `n` inserts, of "0", "1", …
    fn queue_numbered(writer: &Writer<SqliteConnection>, n: usize) -> Vec<Answer<()>> {
        (0..n)
            .map(|i| {
                writer
                    .queue(move |conn| insert(conn, &i.to_string()))
                    .unwrap()
            })
            .collect()
    }

    fn answer<T>(mut answer: Answer<T>) -> Result<T, RepositoryError> {
        answer.try_recv().expect("answered by the step")
    }

    #[test]
    fn queued_writes_commit_together_and_a_failing_one_fails_alone() {
        let (_dir, path) = database();
        let begins = Arc::new(AtomicUsize::new(0));
        let counted = Arc::clone(&begins);
        let (writer, mut batches) = stepped(
            connect(&path),
            Box::new(move |conn: &mut SqliteConnection, batch: Batch<'_, _>| {
                counted.fetch_add(1, Ordering::SeqCst);
                conn.immediate_transaction(batch)
            }),
            no_maintenance(),
            Arc::new(SystemClock),
        );
        let answers: Vec<_> = (0..40)
            .map(|i| {
                writer
                    .queue(move |conn| {
                        insert(conn, &format!("w{i:02}"))?;
                        if i == 7 {
                            // Fails after writing: its row must go, and only its row.
                            Err(RepositoryError::Conflict("no".into()).into())
                        } else {
                            Ok(())
                        }
                    })
                    .unwrap()
            })
            .collect();
        step(&mut batches);
        assert_eq!(begins.load(Ordering::SeqCst), 1, "one transaction");
        let mut failed = Vec::new();
        for (i, answered) in answers.into_iter().enumerate() {
            if let Err(error) = answer(answered) {
                assert!(matches!(error, RepositoryError::Conflict(_)), "{error}");
                failed.push(i);
            }
        }
        assert_eq!(failed, vec![7], "only the failing write failed");
        let expected: Vec<String> = (0..40)
            .filter(|i| *i != 7)
            .map(|i| format!("w{i:02}"))
            .collect();
        assert_eq!(rows(&path), expected);
    }

    #[test]
    fn a_batch_takes_at_most_the_limit_and_leaves_the_rest_queued() {
        let (_dir, path) = database();
        let (writer, mut batches) = Writer::new(
            connect(&path),
            immediate(),
            no_maintenance(),
            Arc::new(SystemClock),
            3,
        );
        let answers = queue_numbered(&writer, 5);
        step(&mut batches);
        assert_eq!(rows(&path).len(), 3);
        step(&mut batches);
        assert_eq!(rows(&path).len(), 5);
        for answered in answers {
            answer(answered).unwrap();
        }
    }

    #[test]
    fn maintenance_runs_when_due_and_once_writes_pause() {
        let (_dir, path) = database();
        let clock = Arc::new(FakeClock::new());
        let asked = Arc::new(AtomicUsize::new(0));
        let maintained = Arc::new(AtomicUsize::new(0));
        let idle = Arc::new(AtomicUsize::new(0));
        let (a, m, i) = (
            Arc::clone(&asked),
            Arc::clone(&maintained),
            Arc::clone(&idle),
        );
        let every = Duration::from_millis(50);
        let (writer, mut batches) = stepped(
            connect(&path),
            immediate(),
            Maintenance {
                every,
                // Declines every other time: it is asked again after the next batch.
                due: Box::new(move |_| {
                    let accept = a.fetch_add(1, Ordering::SeqCst) % 2 == 1;
                    if accept {
                        m.fetch_add(1, Ordering::SeqCst);
                    }
                    accept
                }),
                idle: Box::new(move |_| {
                    i.fetch_add(1, Ordering::SeqCst);
                }),
            },
            clock.clone(),
        );
        let write = |batches: &mut Batches<SqliteConnection>, v: &str| {
            let v = v.to_string();
            let answered = writer.queue(move |conn| insert(conn, &v)).unwrap();
            step(batches);
            answer(answered).unwrap();
        };

        write(&mut batches, "a");
        assert_eq!(asked.load(Ordering::SeqCst), 0, "not due yet");
        clock.advance(every - Duration::from_millis(1));
        write(&mut batches, "b");
        assert_eq!(asked.load(Ordering::SeqCst), 0, "still not due");
        clock.advance(Duration::from_millis(1));
        write(&mut batches, "c");
        assert_eq!(asked.load(Ordering::SeqCst), 1, "due: asked");
        assert_eq!(maintained.load(Ordering::SeqCst), 0, "and declined");
        write(&mut batches, "d");
        assert_eq!(asked.load(Ordering::SeqCst), 2, "declined: asked again");
        assert_eq!(maintained.load(Ordering::SeqCst), 1);
        write(&mut batches, "e");
        assert_eq!(asked.load(Ordering::SeqCst), 2, "ran: not due again yet");
        clock.advance(every);
        write(&mut batches, "f");
        assert_eq!(asked.load(Ordering::SeqCst), 3, "due again after `every`");
        assert_eq!(idle.load(Ordering::SeqCst), 0);

        batches.pause();
        assert_eq!(
            idle.load(Ordering::SeqCst),
            1,
            "idle maintenance once writes pause"
        );
        assert!(!batches.written);
        clock.advance(every);
        write(&mut batches, "g");
        assert_eq!(
            asked.load(Ordering::SeqCst),
            4,
            "a pause counts as maintained: due again `every` after it"
        );
    }

    #[test]
    fn the_loop_maintains_once_when_the_last_writer_goes() {
        let (_dir, path) = database();
        let idle = Arc::new(AtomicUsize::new(0));
        let counted = Arc::clone(&idle);
        let (writer, batches) = stepped(
            connect(&path),
            immediate(),
            Maintenance {
                every: Duration::from_secs(3600),
                due: Box::new(|_| true),
                idle: Box::new(move |_| {
                    counted.fetch_add(1, Ordering::SeqCst);
                }),
            },
            Arc::new(SystemClock),
        );
        let answered = writer.queue(|conn| insert(conn, "x")).unwrap();
        drop(writer);
        // The queue is closed with one write in it: the loop runs it, then
        // maintains, then ends.
        batches.spawn("test-writer").unwrap().join().unwrap();
        answer(answered).unwrap();
        assert_eq!(idle.load(Ordering::SeqCst), 1);
    }

    fn failing_commit(
        conn: &mut SqliteConnection,
        batch: Batch<'_, SqliteConnection>,
    ) -> Result<(), TxError> {
        conn.immediate_transaction(|conn| {
            batch(conn)?;
            // As if COMMIT failed: the transaction rolls back.
            Err::<(), TxError>(RepositoryError::Unavailable("disk full".into()).into())
        })
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn when_the_batch_does_not_commit_no_write_reports_success() {
        let (_dir, path) = database();
        let writer = started(connect(&path), Box::new(failing_commit));
        let outcome = writer.write(|conn| insert(conn, "x")).await;
        let error = outcome.expect_err("an uncommitted write must not succeed");
        assert!(matches!(error, RepositoryError::Unavailable(_)), "{error}");
        let cause = std::error::Error::source(&error).unwrap().to_string();
        assert!(cause.contains("disk full"), "{cause}");
        assert!(rows(&path).is_empty());
    }

    #[test]
    fn a_batch_that_cannot_begin_answers_every_write_unavailable() {
        let (_dir, path) = database();
        let busy = |url: &str| {
            let mut conn = SqliteConnection::establish(url).unwrap();
            conn.batch_execute("PRAGMA busy_timeout = 50;").unwrap();
            Ok(conn)
        };
        let url = path.to_str().unwrap().to_string();
        let (writer, mut batches) = stepped(
            Box::new(move || busy(&url)),
            immediate(),
            no_maintenance(),
            Arc::new(SystemClock),
        );
        let mut holder = SqliteConnection::establish(path.to_str().unwrap()).unwrap();
        holder.batch_execute("BEGIN IMMEDIATE;").unwrap();
        let answers = queue_numbered(&writer, 3);
        step(&mut batches);
        for answered in answers {
            let error = answer(answered).expect_err("the lock is held elsewhere");
            let cause = error_chain(&error);
            assert!(matches!(error, RepositoryError::Unavailable(_)), "{cause}");
            assert!(cause.contains("database is locked"), "{cause}");
        }
        holder.batch_execute("ROLLBACK;").unwrap();
        let answered = writer.queue(|conn| insert(conn, "after")).unwrap();
        step(&mut batches);
        answer(answered).unwrap();
        assert_eq!(rows(&path), vec!["after".to_string()]);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_panicking_write_fails_its_batch_and_the_writer_goes_on() {
        let (_dir, path) = database();
        let writer = started(connect(&path), immediate());
        let outcome = writer
            .write(|conn| -> Result<(), TxError> {
                insert(conn, "before the panic")?;
                panic!("a bug");
            })
            .await;
        assert!(matches!(outcome, Err(RepositoryError::Internal(_))));
        writer.write(|conn| insert(conn, "after")).await.unwrap();
        assert_eq!(rows(&path), vec!["after".to_string()]);
        let count = diesel::sql_query("SELECT count(*) AS n FROM t")
            .get_result::<Count>(&mut SqliteConnection::establish(path.to_str().unwrap()).unwrap())
            .unwrap();
        assert_eq!(count.n, 1);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn an_unreachable_database_fails_writes_without_stopping_the_writer() {
        let (_dir, path) = database();
        let missing = path.with_file_name("missing-dir").join("x.db");
        let mut first = true;
        let good = connect(&path);
        let mut good = Some(good);
        let bad = connect(&missing);
        let mut bad = Some(bad);
        let flaky: Connect<SqliteConnection> = Box::new(move || {
            if std::mem::take(&mut first) {
                (bad.take().unwrap())()
            } else {
                (good.as_mut().unwrap())()
            }
        });
        let writer = started(flaky, immediate());
        let outcome = writer.write(|conn| insert(conn, "lost")).await;
        assert!(matches!(outcome, Err(RepositoryError::Unavailable(_))));
        writer.write(|conn| insert(conn, "kept")).await.unwrap();
        assert_eq!(rows(&path), vec!["kept".to_string()]);
    }
}
