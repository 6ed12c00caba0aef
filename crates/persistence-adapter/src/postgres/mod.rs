//! `PostgresRepository`: the repository port over PostgreSQL, for several
//! keywarden instances sharing one database. The queries are shared with every
//! backend (`crate::sql`); this module says how PostgreSQL writes serialise
//! under READ COMMITTED (row locks, an advisory lock around counting) and
//! announces every change with `NOTIFY` for the other instances, after
//! commit (`notifier`).

mod listener;
mod notifier;
mod pool;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use diesel::prelude::*;
use diesel::sql_types::{BigInt, Text};
use diesel::PgConnection;
use keywarden_application::{LogPosition, RepositoryError};

use self::notifier::Announcements;
pub use self::notifier::ChangeNotifier;
pub use self::pool::PostgresOptions;
pub use self::pool::MIGRATIONS;
use self::pool::{OwnBackends, PgPool};
use crate::error::TxError;
use crate::rows::{EventRow, TokenRow};
use crate::sql::{with_connection, Backlog, Dialect, SqlRepository};
use crate::statements;

/// The channel on which changes are announced (the payload is a
/// comma-separated list of selectors).
pub(crate) const CHANGES_CHANNEL: &str = "keywarden_token_changes";
/// Advisory lock keys: arbitrary, fixed, and distinct.
pub(crate) const MIGRATION_LOCK: i64 = 0x6b77_0001;
const TOKEN_COUNT_LOCK: i64 = 0x6b77_0002;

/// Seconds libpq waits to connect unless the URL says otherwise: a server
/// that silently drops packets must not hang a connection attempt.
const CONNECT_TIMEOUT_SECS: u32 = 5;

/// Initialises OpenSSL, which libpq uses, without its exit-time cleanup.
/// Left to libpq, the first connection registers OpenSSL's `atexit` handler,
/// which frees its global state while the listener's thread may still be
/// inside libpq at process exit ("double free or corruption", seen once in
/// ~40 runs of the two-instance tests). Must run before any connection.
pub(crate) fn init_tls() {
    openssl_sys::init();
}

/// The URL with libpq's `connect_timeout` set if it is not already.
pub(crate) fn with_connect_timeout(url: &str) -> String {
    if url.contains("connect_timeout=") {
        return url.to_string();
    }
    let separator = if url.contains('?') { '&' } else { '?' };
    format!("{url}{separator}connect_timeout={CONNECT_TIMEOUT_SECS}")
}

/// The repository over a PostgreSQL database several instances may share.
pub type PostgresRepository = SqlRepository<PostgresDatabase>;

impl PostgresRepository {
    /// Connects, applies pending migrations (one instance at a time) and pools
    /// connections.
    ///
    /// # Errors
    /// `Unavailable` when the server cannot be reached; `Internal` when a
    /// migration fails.
    pub async fn open(url: String, options: PostgresOptions) -> Result<Self, RepositoryError> {
        PostgresDatabase::open(url, options).await.map(Self::new)
    }
}

/// PostgreSQL's side of `PostgresRepository`: the pool and what listening
/// for other instances' changes needs.
#[derive(Clone)]
pub struct PostgresDatabase {
    pool: PgPool,
    url: String,
    /// The pool's statement timeout, for the listener's connection too.
    statement_timeout: Duration,
    own: Arc<OwnBackends>,
    announcements: Arc<Announcements>,
}

impl PostgresDatabase {
    /// Connects, applies pending migrations (one instance at a time) and pools
    /// connections.
    ///
    /// # Errors
    /// `Unavailable` when the server cannot be reached; `Internal` when a
    /// migration fails.
    pub async fn open(url: String, options: PostgresOptions) -> Result<Self, RepositoryError> {
        let url = with_connect_timeout(&url);
        let (opened, own) = (url.clone(), Arc::new(OwnBackends::default()));
        let (backends, statement_timeout) = (Arc::clone(&own), options.statement_timeout);
        let pool = tokio::task::spawn_blocking(move || pool::open(&opened, &options, backends))
            .await
            .map_err(|e| RepositoryError::Internal(Box::new(e)))??;
        Ok(Self {
            pool,
            url,
            statement_timeout,
            own,
            announcements: Arc::default(),
        })
    }

    /// The task that announces this process's writes in batches, one per
    /// `interval`; until it is taken, each write announces itself.
    pub fn change_notifier(&self, interval: Duration) -> ChangeNotifier {
        let (url, statement_timeout) = self.listener_settings();
        ChangeNotifier::new(
            Arc::clone(&self.announcements),
            notifier::Session {
                url,
                statement_timeout,
                own: Arc::clone(&self.own),
            },
            interval,
        )
    }

    /// Starts following the changes other instances announce, delivered to
    /// `changes` (this instance's own announcements are skipped).
    ///
    /// # Errors
    /// When the listener's thread cannot be started.
    pub fn follow_changes(
        &self,
        changes: tokio::sync::mpsc::UnboundedSender<keywarden_application::ExternalChange>,
    ) -> std::io::Result<std::thread::JoinHandle<()>> {
        let (url, statement_timeout) = self.listener_settings();
        listener::spawn(url, statement_timeout, Arc::clone(&self.own), changes)
    }

    /// Where the listener and the notifier connect, and their statement timeout.
    fn listener_settings(&self) -> (String, Duration) {
        (self.url.clone(), self.statement_timeout)
    }
}

impl Dialect for PostgresDatabase {
    type Conn = PgConnection;

    fn pool(&self) -> &PgPool {
        &self.pool
    }

    /// READ COMMITTED gives each statement its own snapshot: a token deleted
    /// between reading it and reading its projects would look corrupt.
    fn read_transaction<T, F>(conn: &mut PgConnection, work: F) -> Result<T, TxError>
    where
        F: FnOnce(&mut PgConnection) -> Result<T, TxError>,
    {
        conn.build_transaction()
            .repeatable_read()
            .read_only()
            .run(work)
    }

    /// PostgreSQL runs writers concurrently, each in a READ COMMITTED
    /// transaction of its own; the row and advisory locks order the ones that
    /// conflict. (Batching them in one transaction would hold row locks
    /// across unrelated writes, and two instances batching in different
    /// orders would deadlock.)
    fn write<T, F>(&self, work: F) -> impl Future<Output = Result<T, RepositoryError>> + Send
    where
        T: Send + 'static,
        F: FnOnce(&mut PgConnection) -> Result<T, TxError> + Send + 'static,
    {
        with_connection(&self.pool, move |conn| conn.transaction(work))
    }

    fn rows_for_change(
        conn: &mut PgConnection,
        selector: String,
    ) -> Result<Vec<TokenRow>, TxError> {
        Ok(statements::tokens_with_selector(selector)
            .for_update()
            .load::<TokenRow>(conn)?)
    }

    /// Counting and inserting must not interleave, or two instances could
    /// both pass the limit check (or both bootstrap an empty database).
    fn lock_token_count(conn: &mut PgConnection) -> Result<(), TxError> {
        diesel::sql_query("SELECT pg_advisory_xact_lock($1)")
            .bind::<BigInt, _>(TOKEN_COUNT_LOCK)
            .execute(conn)?;
        Ok(())
    }

    /// Events of transactions from the oldest one still running on are
    /// after this position.
    fn log_end(conn: &mut PgConnection) -> Result<LogPosition, TxError> {
        Ok(LogPosition {
            commit: oldest_running(conn)? - 1,
            id: i64::MAX,
        })
    }

    /// The fence is read first: every transaction from the cursor's up to
    /// it had ended by then, so the read after it sees all their events,
    /// and no event can later appear between the cursor and the fence.
    fn events_after(
        conn: &mut PgConnection,
        after: LogPosition,
        limit: i64,
        settled: bool,
    ) -> Result<Vec<EventRow>, TxError> {
        let fence = match settled {
            true => outbox_fence(conn, after.commit)?,
            false => i64::MAX,
        };
        Ok(statements::events_after_commit(after.commit, after.id, fence, limit).load(conn)?)
    }

    fn backlog_after(conn: &mut PgConnection, after: LogPosition) -> Result<Vec<Backlog>, TxError> {
        Ok(statements::backlog_after_commit(after.commit, after.id).load(conn)?)
    }

    fn committed(&self, selectors: Vec<String>) -> impl Future<Output = ()> + Send {
        self.announcements.committed(&self.pool, selectors)
    }
}

#[derive(diesel::QueryableByName)]
struct Fence {
    #[diesel(sql_type = BigInt)]
    fence: i64,
}

/// The oldest transaction id still running (or the next one, if none runs):
/// transactions before it can commit no more events.
fn oldest_running(conn: &mut PgConnection) -> Result<i64, TxError> {
    let row: Fence =
        diesel::sql_query("SELECT pg_snapshot_xmin(pg_current_snapshot())::text::bigint AS fence")
            .get_result(conn)?;
    Ok(row.fence)
}

/// The oldest transaction at or after `from` that is still running (or the
/// next one, if none is): below it, from `from` on, every transaction has
/// ended. Transactions running from before `from` do not hold the outbox
/// back: the cursor only ever reaches a transaction once every older one
/// had ended (see `Dialect::events_after`), so none of them is older than
/// the cursor.
fn outbox_fence(conn: &mut PgConnection, from: i64) -> Result<i64, TxError> {
    let row: Fence = diesel::sql_query(
        "WITH s AS (SELECT pg_current_snapshot() AS snap) \
         SELECT COALESCE( \
             (SELECT MIN(x::text::bigint) FROM s, pg_snapshot_xip(s.snap) AS x \
              WHERE x::text::bigint >= $1), \
             (SELECT pg_snapshot_xmax(snap)::text::bigint FROM s)) AS fence",
    )
    .bind::<BigInt, _>(from)
    .get_result(conn)?;
    Ok(row.fence)
}

/// `SELECT pg_notify(<channel>, $1)`, written out so that the connection
/// keeps it prepared (`sql_query` statements are prepared anew every time).
struct Announce<'a>(&'a str);

impl diesel::query_builder::QueryId for Announce<'_> {
    type QueryId = Announce<'static>;
    const HAS_STATIC_QUERY_ID: bool = true;
}

impl diesel::query_builder::QueryFragment<diesel::pg::Pg> for Announce<'_> {
    fn walk_ast<'b>(
        &'b self,
        mut out: diesel::query_builder::AstPass<'_, 'b, diesel::pg::Pg>,
    ) -> QueryResult<()> {
        out.push_sql("SELECT pg_notify('");
        out.push_sql(CHANGES_CHANNEL);
        out.push_sql("', ");
        out.push_bind_param::<Text, _>(self.0)?;
        out.push_sql(")");
        Ok(())
    }
}

impl RunQueryDsl<PgConnection> for Announce<'_> {}

#[cfg(test)]
mod tests {
    use super::with_connect_timeout;

    #[test]
    fn a_connect_timeout_is_added_unless_given() {
        assert_eq!(
            with_connect_timeout("postgres://h/db"),
            "postgres://h/db?connect_timeout=5"
        );
        assert_eq!(
            with_connect_timeout("postgres://h/db?sslmode=require"),
            "postgres://h/db?sslmode=require&connect_timeout=5"
        );
        assert_eq!(
            with_connect_timeout("postgres://h/db?connect_timeout=1"),
            "postgres://h/db?connect_timeout=1"
        );
    }
}
