//! The change feed: a dedicated connection that `LISTEN`s for changes other
//! instances announce and forwards them to the application, so each
//! instance's credential view learns of them within a poll interval. When the
//! connection drops it reconnects and asks for a full reload, since
//! notifications sent meanwhile are lost.

use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use diesel::{Connection, PgConnection, RunQueryDsl};
use keywarden_application::ExternalChange;
use keywarden_domain::Selector;
use tokio::sync::mpsc::UnboundedSender;
use tracing::{info, warn};

use super::notifier::SEPARATOR;
use super::pool::{set_statement_timeout, OwnBackends};
use super::CHANGES_CHANNEL;

/// How often pending notifications are read: the bound on how stale another
/// instance's change can be here (plus one query to fetch it). Reading them
/// is one non-blocking `recv` on the connection's socket.
const POLL: Duration = Duration::from_millis(10);
/// Silence on a connection is checked this often, to notice a dead peer.
const KEEPALIVE: Duration = Duration::from_secs(5);
const RETRY: Duration = Duration::from_millis(500);

/// Starts listening on a thread of its own; it ends when `changes` closes.
/// The first `LISTEN` runs before this returns, so a view loaded afterwards
/// misses nothing in between; if it fails, the listener keeps trying in the
/// background and asks for a full reload once it listens.
pub(crate) fn spawn(
    url: String,
    statement_timeout: Duration,
    own: Arc<OwnBackends>,
    changes: UnboundedSender<ExternalChange>,
) -> std::io::Result<JoinHandle<()>> {
    let first = connect(&url, statement_timeout)
        .map_err(|error| warn!(error = %error, "change feed will start late"))
        .ok();
    std::thread::Builder::new()
        .name("keywarden-change-feed".into())
        .spawn(move || run(&url, statement_timeout, &own, &changes, first))
}

fn run(
    url: &str,
    statement_timeout: Duration,
    own: &OwnBackends,
    changes: &UnboundedSender<ExternalChange>,
    first: Option<PgConnection>,
) {
    let mut connected_before = false;
    let mut first = first;
    while !changes.is_closed() {
        let listening_since_start = first.is_some();
        let mut conn = match first
            .take()
            .map_or_else(|| connect(url, statement_timeout), Ok)
        {
            Ok(conn) => conn,
            Err(error) => {
                warn!(error = %error, "change feed cannot connect; retrying");
                std::thread::sleep(RETRY);
                continue;
            }
        };
        if connected_before {
            info!("change feed reconnected");
        }
        connected_before = true;
        // Whatever happened while not listening is unknown: reload.
        if !listening_since_start && changes.send(ExternalChange::Unknown).is_err() {
            return;
        }
        match listen(&mut conn, own, changes) {
            Ok(()) => return,
            Err(error) => warn!(error = %error, "change feed connection lost; reconnecting"),
        }
    }
}

/// The listener's connection, with the statement timeout of every other.
fn connect(
    url: &str,
    statement_timeout: Duration,
) -> Result<PgConnection, Box<dyn std::error::Error>> {
    super::init_tls();
    let mut conn = PgConnection::establish(&super::with_connect_timeout(url))?;
    set_statement_timeout(&mut conn, statement_timeout)?;
    diesel::sql_query(format!("LISTEN {CHANGES_CHANNEL}")).execute(&mut conn)?;
    Ok(conn)
}

/// Returns `Ok` when the receiving side has gone, `Err` when the connection did.
fn listen(
    conn: &mut PgConnection,
    own: &OwnBackends,
    changes: &UnboundedSender<ExternalChange>,
) -> Result<(), diesel::result::Error> {
    let mut last_check = Instant::now();
    loop {
        let mut selectors = Vec::new();
        for notification in conn.notifications_iter() {
            let notification = notification?;
            // This instance's own write: its view already holds it.
            if own.contains(notification.process_id) {
                continue;
            }
            selectors.extend(
                notification
                    .payload
                    .split(SEPARATOR)
                    .filter_map(Selector::parse),
            );
        }
        if !selectors.is_empty() && changes.send(ExternalChange::Tokens(selectors)).is_err() {
            return Ok(());
        }
        if changes.is_closed() {
            return Ok(());
        }
        if last_check.elapsed() >= KEEPALIVE {
            diesel::sql_query("SELECT 1").execute(conn)?;
            last_check = Instant::now();
        }
        std::thread::sleep(POLL);
    }
}

#[cfg(test)]
mod tests {
    use diesel::sql_types::Text;
    use diesel::QueryableByName;

    use super::*;
    use crate::postgres::{PostgresOptions, PostgresRepository};
    use crate::testing::TestDatabase;

    #[derive(QueryableByName)]
    struct Setting {
        #[diesel(sql_type = Text)]
        statement_timeout: String,
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_listener_takes_the_configured_statement_timeout() {
        let Some(database) = TestDatabase::create() else {
            return;
        };
        let options = PostgresOptions {
            statement_timeout: Duration::from_millis(1234),
            ..PostgresOptions::default()
        };
        let repository = PostgresRepository::open(database.url().to_string(), options)
            .await
            .unwrap();
        let (url, timeout) = repository.listener_settings();
        let shown = tokio::task::spawn_blocking(move || {
            let mut conn = connect(&url, timeout).unwrap();
            diesel::sql_query("SHOW statement_timeout")
                .get_result::<Setting>(&mut conn)
                .unwrap()
                .statement_timeout
        })
        .await
        .unwrap();
        assert_eq!(shown, "1234ms");
    }
}
