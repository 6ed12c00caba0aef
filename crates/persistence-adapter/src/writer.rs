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
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use diesel::Connection;
use keywarden_application::{error_chain, RepositoryError};
use tokio::sync::oneshot;
use tracing::warn;

use crate::error::{map_diesel, TxError};

/// A batch larger than this commits and the rest waits for the next one, so
/// one batch cannot hold every caller's answer for long.
const MAX_BATCH: usize = 256;

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
                (Ok(_), Err(why)) => Err(RepositoryError::Unavailable(
                    format!("the write was not committed: {why}").into(),
                )),
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

/// The queue of writes. Cloning shares it; the thread ends when the last
/// clone is dropped, after finishing what was queued.
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
    /// Starts the writer's thread. The connection is opened lazily, so an
    /// unreachable database fails the writes, not the start.
    ///
    /// # Errors
    /// When the thread cannot be started.
    pub(crate) fn start(
        name: &str,
        connect: Connect<C>,
        begin: Begin<C>,
        mut maintenance: Maintenance<C>,
    ) -> std::io::Result<(Self, JoinHandle<()>)> {
        let (queue, jobs) = mpsc::channel();
        let thread = std::thread::Builder::new()
            .name(name.to_string())
            .spawn(move || run(&jobs, connect, begin, &mut maintenance))?;
        Ok((Self { queue }, thread))
    }

    /// Queues `work` and waits until the batch holding it has committed.
    /// `work` runs inside a savepoint: when it fails, only its own changes
    /// are undone.
    pub(crate) async fn write<T, F>(&self, work: F) -> Result<T, RepositoryError>
    where
        T: Send + 'static,
        F: FnOnce(&mut C) -> Result<T, TxError> + Send + 'static,
    {
        let (answer, answered) = oneshot::channel();
        let job: Job<C> = Box::new(Pending { work, answer });
        self.queue
            .send(job)
            .map_err(|_| RepositoryError::Unavailable("the database writer has stopped".into()))?;
        answered.await.map_err(|_| {
            RepositoryError::Internal("the database writer failed while running this write".into())
        })?
    }
}

fn run<C: Connection>(
    jobs: &Receiver<Job<C>>,
    mut connect: Connect<C>,
    mut begin: Begin<C>,
    maintenance: &mut Maintenance<C>,
) {
    let mut conn: Option<C> = None;
    let mut maintained = Instant::now();
    let mut written = false;
    loop {
        let next = if written {
            jobs.recv_timeout(maintenance.every)
        } else {
            jobs.recv().map_err(|_| RecvTimeoutError::Disconnected)
        };
        let first = match next {
            Ok(job) => job,
            Err(RecvTimeoutError::Timeout) => {
                if let Some(conn) = conn.as_mut() {
                    (maintenance.idle)(conn);
                }
                (maintained, written) = (Instant::now(), false);
                continue;
            }
            // Every `Writer` is gone and the queue is empty.
            Err(RecvTimeoutError::Disconnected) => break,
        };
        let mut batch = Vec::with_capacity(16);
        batch.push(first);
        while batch.len() < MAX_BATCH {
            match jobs.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
        let size = batch.len();
        let started = Instant::now();
        let live = match conn.take().map_or_else(&mut connect, Ok) {
            Ok(live) => live,
            Err(error) => {
                warn!(error = %error, "cannot open the database for writing");
                let why = error_chain(&error);
                for job in batch {
                    job.refuse(RepositoryError::Unavailable(why.clone().into()));
                }
                continue;
            }
        };
        conn = commit_batch(live, batch, &mut begin);
        written = true;
        metrics::histogram!("keywarden_db_write_batch_size").record(size as f64);
        metrics::histogram!("keywarden_db_write_batch_seconds")
            .record(started.elapsed().as_secs_f64());
        if maintained.elapsed() >= maintenance.every {
            if let Some(conn) = conn.as_mut() {
                if (maintenance.due)(conn) {
                    maintained = Instant::now();
                }
            }
        }
    }
    if let (true, Some(conn)) = (written, conn.as_mut()) {
        (maintenance.idle)(conn);
    }
}

/// Runs one batch in one transaction and answers every job in it. Returns the
/// connection unless it can no longer be trusted (a panic mid-transaction).
fn commit_batch<C: Connection>(mut conn: C, batch: Vec<Job<C>>, begin: &mut Begin<C>) -> Option<C> {
    let mut completions: Vec<Completion> = Vec::with_capacity(batch.len());
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
            let why = error_chain(&RepositoryError::from(match error {
                TxError::Db(error) => TxError::Repo(map_diesel(error)),
                other => other,
            }));
            for complete in completions {
                complete(Err(&why));
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

    static BEGINS: AtomicUsize = AtomicUsize::new(0);

    fn counting_begin(
        conn: &mut SqliteConnection,
        batch: Batch<'_, SqliteConnection>,
    ) -> Result<(), TxError> {
        BEGINS.fetch_add(1, Ordering::SeqCst);
        conn.immediate_transaction(batch)
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn queued_writes_commit_together_and_a_failing_one_fails_alone() {
        let (_dir, path) = database();
        let (writer, _) = Writer::start(
            "test-writer",
            connect(&path),
            Box::new(counting_begin),
            no_maintenance(),
        )
        .unwrap();
        // The first write holds the thread so that the others queue behind it.
        let queue = writer.clone();
        let blocker = async move {
            queue
                .write(|conn| {
                    std::thread::sleep(Duration::from_millis(200));
                    insert(conn, "first")
                })
                .await
        };
        let mut writes = vec![tokio::spawn(blocker)];
        tokio::time::sleep(Duration::from_millis(50)).await;
        for i in 0..40 {
            let queue = writer.clone();
            let write = async move {
                queue
                    .write(move |conn| {
                        insert(conn, &format!("w{i:02}"))?;
                        if i == 7 {
                            // Fails after writing: its row must go, and only its row.
                            Err(RepositoryError::Conflict("no".into()).into())
                        } else {
                            Ok(())
                        }
                    })
                    .await
            };
            writes.push(tokio::spawn(write));
        }
        let begins_before = BEGINS.load(Ordering::SeqCst);
        let mut failed = Vec::new();
        for (i, write) in writes.into_iter().enumerate() {
            if let Err(error) = write.await.unwrap() {
                assert!(matches!(error, RepositoryError::Conflict(_)), "{error}");
                failed.push(i);
            }
        }
        assert_eq!(failed, vec![8], "only the failing write failed");
        let expected: Vec<String> = std::iter::once("first".to_string())
            .chain((0..40).filter(|i| *i != 7).map(|i| format!("w{i:02}")))
            .collect();
        let mut expected = expected;
        expected.sort();
        assert_eq!(rows(&path), expected);
        let batches = BEGINS.load(Ordering::SeqCst);
        assert!(
            batches <= begins_before + 2,
            "40 queued writes took {} transactions",
            batches - begins_before + 1
        );
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

    static MAINTAINED: AtomicUsize = AtomicUsize::new(0);
    static IDLE: AtomicUsize = AtomicUsize::new(0);
    static ASKED: AtomicUsize = AtomicUsize::new(0);

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn maintenance_runs_when_due_and_once_writes_pause() {
        let (_dir, path) = database();
        let (writer, _) = Writer::start(
            "test-writer",
            connect(&path),
            immediate(),
            Maintenance {
                every: Duration::from_millis(50),
                // Declines every other time: it is asked again after the next batch.
                due: Box::new(|_| {
                    ASKED.fetch_add(1, Ordering::SeqCst) % 2 == 1
                        && MAINTAINED.fetch_add(1, Ordering::SeqCst) < usize::MAX
                }),
                idle: Box::new(|_| {
                    IDLE.fetch_add(1, Ordering::SeqCst);
                }),
            },
        )
        .unwrap();
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert_eq!(MAINTAINED.load(Ordering::SeqCst), 0, "nothing written yet");
        // Writes spread over more than `every`: maintenance runs between them.
        for i in 0..8 {
            writer
                .write(move |conn| insert(conn, &format!("{i}")))
                .await
                .unwrap();
            tokio::time::sleep(Duration::from_millis(15)).await;
        }
        let during = MAINTAINED.load(Ordering::SeqCst);
        assert!(during >= 1, "maintenance ran {during} times during writes");
        let asked = ASKED.load(Ordering::SeqCst);
        assert!(
            asked >= 2 * during,
            "declined runs are asked again: {asked} for {during}"
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert_eq!(
            IDLE.load(Ordering::SeqCst),
            1,
            "idle maintenance once writes pause"
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert_eq!(IDLE.load(Ordering::SeqCst), 1, "and not again while idle");
        assert_eq!(MAINTAINED.load(Ordering::SeqCst), during);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn when_the_batch_does_not_commit_no_write_reports_success() {
        let (_dir, path) = database();
        let (writer, _) = Writer::start(
            "test-writer",
            connect(&path),
            Box::new(failing_commit),
            no_maintenance(),
        )
        .unwrap();
        let outcome = writer.write(|conn| insert(conn, "x")).await;
        let error = outcome.expect_err("an uncommitted write must not succeed");
        assert!(matches!(error, RepositoryError::Unavailable(_)), "{error}");
        let cause = std::error::Error::source(&error).unwrap().to_string();
        assert!(cause.contains("disk full"), "{cause}");
        assert!(rows(&path).is_empty());
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_panicking_write_fails_its_batch_and_the_writer_goes_on() {
        let (_dir, path) = database();
        let (writer, _) =
            Writer::start("test-writer", connect(&path), immediate(), no_maintenance()).unwrap();
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
        let (writer, _) =
            Writer::start("test-writer", flaky, immediate(), no_maintenance()).unwrap();
        let outcome = writer.write(|conn| insert(conn, "lost")).await;
        assert!(matches!(outcome, Err(RepositoryError::Unavailable(_))));
        writer.write(|conn| insert(conn, "kept")).await.unwrap();
        assert_eq!(rows(&path), vec!["kept".to_string()]);
    }
}
