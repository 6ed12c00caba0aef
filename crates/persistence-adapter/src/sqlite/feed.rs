//! The change feed for SQLite: other processes on the same file (the
//! `keywarden` command line, a second server) write audit events for every
//! change, in commit order because SQLite serialises writers; tailing the
//! events table therefore tells this process which tokens changed, within a
//! poll interval, without missing any.

use std::path::PathBuf;
use std::thread::JoinHandle;
use std::time::Duration;

use diesel::connection::SimpleConnection;
use diesel::dsl::max;
use diesel::prelude::*;
use diesel::SqliteConnection;
use keywarden_application::ExternalChange;
use keywarden_domain::Selector;
use tokio::sync::mpsc::UnboundedSender;
use tracing::warn;

use super::schema::events;
use crate::rows::EventRow;

const POLL: Duration = Duration::from_millis(200);
const BATCH: i64 = 1000;

pub struct SqliteChangeFeed;

impl SqliteChangeFeed {
    /// Starts tailing on a thread of its own; it ends when `changes` closes.
    ///
    /// # Errors
    /// When the thread cannot be started.
    pub fn spawn(
        path: PathBuf,
        changes: UnboundedSender<ExternalChange>,
    ) -> std::io::Result<JoinHandle<()>> {
        std::thread::Builder::new()
            .name("keywarden-change-feed".into())
            .spawn(move || run(&path, &changes))
    }
}

fn run(path: &std::path::Path, changes: &UnboundedSender<ExternalChange>) {
    let mut position = None;
    while !changes.is_closed() {
        match tail(path, changes, &mut position) {
            Ok(()) => return,
            Err(error) => {
                warn!(error = %error, "SQLite change feed failed; retrying");
                std::thread::sleep(POLL);
            }
        }
    }
}

/// Returns `Ok` when the receiving side has gone.
fn tail(
    path: &std::path::Path,
    changes: &UnboundedSender<ExternalChange>,
    position: &mut Option<i64>,
) -> Result<(), Box<dyn std::error::Error>> {
    let mut conn = SqliteConnection::establish(&path.to_string_lossy())?;
    conn.batch_execute("PRAGMA busy_timeout = 5000;")?;
    let mut last = match *position {
        Some(last) => last,
        None => {
            let last = events::table
                .select(max(events::id))
                .first::<Option<i64>>(&mut conn)?
                .unwrap_or(0);
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
        let rows = events::table
            .filter(events::id.gt(last))
            .order(events::id)
            .limit(BATCH)
            .load::<EventRow>(&mut conn)?;
        let full = rows.len() as i64 == BATCH;
        let mut selectors = Vec::new();
        let mut unreadable = false;
        for row in rows {
            last = last.max(row.id);
            // An event this version cannot read must not stop the feed: skip
            // it, and reload everything instead of guessing what it changed.
            let event = match row.into_event() {
                Ok(stored) => stored.event,
                Err(error) => {
                    warn!(error = %error, "skipping an unreadable audit event");
                    unreadable = true;
                    continue;
                }
            };
            for snapshot in [event.data, event.pre_data].into_iter().flatten() {
                if let Some(selector) = Selector::parse(&snapshot.secret) {
                    if !selectors.contains(&selector) {
                        selectors.push(selector);
                    }
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
