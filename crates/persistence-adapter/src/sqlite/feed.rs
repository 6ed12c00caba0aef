//! The change feed for SQLite: other processes on the same file (the
//! `keywarden` command line, a second server) write audit events for every
//! change, in commit order because SQLite serialises writers; tailing the
//! events table therefore tells this process which tokens changed, within a
//! poll interval, without missing any.

use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use diesel::dsl::max;
use diesel::prelude::*;
use diesel::query_builder::QueryFragment;
use diesel::query_dsl::LoadQuery;
use diesel::sqlite::Sqlite;
use diesel::SqliteConnection;
use keywarden_application::ExternalChange;
use keywarden_domain::Selector;
use tokio::sync::mpsc::UnboundedSender;
use tracing::warn;

use super::engine::OwnWrites;
use super::pool::Connector;
use crate::schema::events;

const POLL: Duration = Duration::from_millis(200);
const BATCH: i64 = 1000;

/// Starts tailing the database on a thread of its own, skipping the events `own`
/// records; it ends when `changes` closes. The starting point is read before
/// this returns, so a view loaded afterwards misses nothing in between; if
/// that fails, the feed starts by asking for a full reload instead.
///
/// # Errors
/// When the thread cannot be started.
pub(crate) fn spawn(
    connector: Connector,
    own: Arc<OwnWrites>,
    changes: UnboundedSender<ExternalChange>,
) -> std::io::Result<JoinHandle<()>> {
    own.follow();
    let start = connect(&connector)
        .and_then(|mut conn| Ok((last_event_id(&mut conn)?, conn)))
        .map_err(|error| warn!(error = %error, "SQLite change feed will start late"))
        .ok();
    std::thread::Builder::new()
        .name("keywarden-change-feed".into())
        .spawn(move || run(&connector, &own, &changes, start))
}

fn run(
    connector: &Connector,
    own: &OwnWrites,
    changes: &UnboundedSender<ExternalChange>,
    start: Option<(i64, SqliteConnection)>,
) {
    let (mut position, mut conn) = match start {
        Some((position, conn)) => (Some(position), Some(conn)),
        None => (None, None),
    };
    while !changes.is_closed() {
        let outcome = match conn.take().map_or_else(|| connect(connector), Ok) {
            Ok(conn) => tail(conn, own, changes, &mut position),
            Err(error) => Err(error),
        };
        match outcome {
            Ok(()) => return,
            Err(error) => {
                warn!(error = %error, "SQLite change feed failed; retrying");
                std::thread::sleep(POLL);
            }
        }
    }
}

pub(super) fn connect(
    connector: &Connector,
) -> Result<SqliteConnection, Box<dyn std::error::Error>> {
    Ok(connector.open()?)
}

/// `SELECT MAX(id) FROM events`, with no bound parameter. The writer runs it
/// twice per batch, so it must stay prepared: `.first()` would add
/// `LIMIT ?`, and SQLite (3.47 and later) plans a bound `LIMIT` from its
/// value and so re-prepares the statement every time that parameter is
/// bound again, i.e. on every run: with `.first()` this query was 75k of
/// the 320k instructions of a PUT committed alone (callgrind), 7k without.
fn newest_event_id(
) -> impl LoadQuery<'static, SqliteConnection, Option<i64>> + QueryFragment<Sqlite> {
    events::table.select(max(events::id))
}

/// The id of the newest audit event (0 when there is none).
pub(super) fn last_event_id(conn: &mut SqliteConnection) -> diesel::QueryResult<i64> {
    Ok(newest_event_id()
        .get_result::<Option<i64>>(conn)?
        .unwrap_or(0))
}

/// Returns `Ok` when the receiving side has gone.
fn tail(
    mut conn: SqliteConnection,
    own: &OwnWrites,
    changes: &UnboundedSender<ExternalChange>,
    position: &mut Option<i64>,
) -> Result<(), Box<dyn std::error::Error>> {
    let mut last = match *position {
        Some(last) => last,
        None => {
            let last = last_event_id(&mut conn)?;
            // Changes between the service's load and this point are unknown.
            if changes.send(ExternalChange::Unknown).is_err() {
                return Ok(());
            }
            last
        }
    };
    loop {
        *position = Some(last);
        if changes.is_closed() {
            return Ok(());
        }
        // The subject column, never the stored JSON: the feed must not depend
        // on a format a newer version may have written.
        let rows = events::table
            .select((events::id, events::selector))
            .filter(events::id.gt(last))
            .order(events::id)
            .limit(BATCH)
            .load::<(i64, String)>(&mut conn)?;
        let full = rows.len() as i64 == BATCH;
        let mut selectors = Vec::new();
        let mut unreadable = false;
        for (id, selector) in rows {
            last = last.max(id);
            if own.is_own(id) {
                continue;
            }
            // An event this version cannot read must not stop the feed: skip
            // it, and reload everything instead of guessing what it changed.
            match Selector::parse(&selector) {
                Some(selector) if !selectors.contains(&selector) => selectors.push(selector),
                Some(_) => {}
                None => {
                    warn!(event = id, "skipping an audit event with a bad selector");
                    unreadable = true;
                }
            }
        }
        let change = if unreadable {
            Some(ExternalChange::Unknown)
        } else {
            (!selectors.is_empty()).then_some(ExternalChange::Tokens(selectors))
        };
        if change.is_some_and(|change| changes.send(change).is_err()) {
            return Ok(());
        }
        if !full {
            std::thread::sleep(POLL);
        }
    }
}

#[cfg(test)]
mod tests {
    use diesel::connection::SimpleConnection;
    use diesel::debug_query;

    use super::*;

    #[test]
    fn the_newest_event_id_binds_nothing_so_it_stays_prepared() {
        let sql = debug_query::<Sqlite, _>(&newest_event_id()).to_string();
        assert!(sql.ends_with("-- binds: []"), "{sql}");
        assert!(!sql.contains("LIMIT"), "{sql}");
    }

    #[test]
    fn the_newest_event_id_is_the_highest_or_zero() {
        let mut conn = SqliteConnection::establish(":memory:").unwrap();
        conn.batch_execute("CREATE TABLE events (id INTEGER PRIMARY KEY, selector TEXT NOT NULL);")
            .unwrap();
        assert_eq!(last_event_id(&mut conn).unwrap(), 0);
        conn.batch_execute("INSERT INTO events (id, selector) VALUES (3, 'a'), (7, 'b');")
            .unwrap();
        assert_eq!(last_event_id(&mut conn).unwrap(), 7);
    }
}
