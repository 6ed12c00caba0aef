//! Opening PostgreSQL: migrations under an advisory lock (instances starting
//! together migrate once), then a pool that fails fast when the server is gone.

use std::collections::HashSet;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use diesel::connection::SimpleConnection;
use diesel::r2d2::{ConnectionManager, CustomizeConnection, Pool};
use diesel::sql_types::BigInt;
use diesel::{Connection, PgConnection, QueryableByName, RunQueryDsl};
use diesel_migrations::{embed_migrations, EmbeddedMigrations, MigrationHarness};
use keywarden_application::RepositoryError;

use super::MIGRATION_LOCK;
use crate::error::map_diesel;

pub(crate) type PgPool = Pool<ConnectionManager<PgConnection>>;

pub const MIGRATIONS: EmbeddedMigrations = embed_migrations!("../../migrations/postgres");

#[derive(Debug, Clone)]
pub struct PostgresOptions {
    pub max_connections: u32,
    /// How long a request waits for a connection before `Unavailable` (503):
    /// while the server is down, this bounds every request's wait.
    pub acquire_timeout: Duration,
    /// The longest any statement may run; a query stuck on a dead network or
    /// a lock fails instead of holding its request forever.
    pub statement_timeout: Duration,
}

impl Default for PostgresOptions {
    fn default() -> Self {
        Self {
            max_connections: 8,
            acquire_timeout: Duration::from_secs(5),
            statement_timeout: Duration::from_secs(10),
        }
    }
}

/// The server processes behind this instance's pooled connections: a
/// notification sent by one of them announces this instance's own write.
#[derive(Debug, Default)]
pub(crate) struct OwnBackends(Mutex<HashSet<i32>>);

impl OwnBackends {
    pub(crate) fn contains(&self, process_id: i32) -> bool {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .contains(&process_id)
    }

    pub(super) fn set(&self, process_id: i32, present: bool) {
        let mut backends = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        if present {
            backends.insert(process_id);
        } else {
            backends.remove(&process_id);
        }
    }
}

#[derive(QueryableByName)]
struct BackendPid {
    #[diesel(sql_type = diesel::sql_types::Integer)]
    pid: i32,
}

pub(super) fn backend_pid(conn: &mut PgConnection) -> diesel::QueryResult<i32> {
    Ok(diesel::sql_query("SELECT pg_backend_pid() AS pid")
        .get_result::<BackendPid>(conn)?
        .pid)
}

/// Applies the configured statement timeout to a session: every connection
/// but the migrating one (which may wait long on another instance's
/// migration) gets it.
pub(super) fn set_statement_timeout(
    conn: &mut PgConnection,
    timeout: Duration,
) -> diesel::QueryResult<()> {
    conn.batch_execute(&format!("SET statement_timeout = {}", timeout.as_millis()))
}

#[derive(Debug)]
struct SessionSettings {
    statement_timeout: Duration,
    own: Arc<OwnBackends>,
}

impl CustomizeConnection<PgConnection, diesel::r2d2::Error> for SessionSettings {
    fn on_acquire(&self, conn: &mut PgConnection) -> Result<(), diesel::r2d2::Error> {
        set_statement_timeout(conn, self.statement_timeout)
            .and_then(|()| backend_pid(conn))
            .map(|pid| self.own.set(pid, true))
            .map_err(diesel::r2d2::Error::QueryError)
    }

    /// A broken connection cannot say its process id; it stays listed, which
    /// only matters if the server reuses the id, and the periodic resync
    /// repairs what that could hide.
    fn on_release(&self, mut conn: PgConnection) {
        if let Ok(pid) = backend_pid(&mut conn) {
            self.own.set(pid, false);
        }
    }
}

fn unavailable(error: impl std::error::Error + Send + Sync + 'static) -> RepositoryError {
    RepositoryError::Unavailable(Box::new(error))
}

/// Blocking.
pub(crate) fn open(
    url: &str,
    options: &PostgresOptions,
    own: Arc<OwnBackends>,
) -> Result<PgPool, RepositoryError> {
    super::init_tls();
    let mut conn = PgConnection::establish(url).map_err(unavailable)?;
    migrate(&mut conn)?;
    Pool::builder()
        .max_size(options.max_connections)
        // One connection before serving, the rest as load asks for them:
        // opening all of them first delayed the first answer by a connect
        // (and TLS negotiation) each.
        .min_idle(Some(1))
        .connection_timeout(options.acquire_timeout)
        // A round trip per checkout would double the cost of a request; broken
        // connections are noticed when used, and the pool then replaces them.
        .test_on_check_out(false)
        .connection_customizer(Box::new(SessionSettings {
            statement_timeout: options.statement_timeout,
            own,
        }))
        .build(ConnectionManager::new(url))
        .map_err(unavailable)
}

pub(crate) fn migrate(conn: &mut PgConnection) -> Result<(), RepositoryError> {
    diesel::sql_query("SELECT pg_advisory_lock($1)")
        .bind::<BigInt, _>(MIGRATION_LOCK)
        .execute(conn)
        .map_err(map_diesel)?;
    let outcome = conn
        .run_pending_migrations(MIGRATIONS)
        .map(|applied| crate::report_migrations(&applied))
        .map_err(RepositoryError::Internal);
    diesel::sql_query("SELECT pg_advisory_unlock($1)")
        .bind::<BigInt, _>(MIGRATION_LOCK)
        .execute(conn)
        .map_err(map_diesel)?;
    outcome
}
