//! The change feed for SQLite: other processes on the same file (the
//! `keywarden` command line, a second server) write audit events for every
//! change, in commit order because SQLite serialises writers; tailing the
//! events table therefore tells this process which tokens changed, within a
//! poll interval, without missing any.

use std::collections::VecDeque;
use std::ops::RangeInclusive;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
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

use crate::schema::events;

const POLL: Duration = Duration::from_millis(200);
const BATCH: i64 = 1000;

/// Beyond this many unread ranges the oldest are forgotten; the feed then
/// reports those writes as if made elsewhere, which costs a re-read, not
/// correctness.
const MAX_OWN_RANGES: usize = 10_000;

/// The audit events this process committed, so the feed does not report them
/// back as changes made elsewhere: the credential view already holds them, and
/// re-reading every token this process writes would double the cost of a
/// write. Ranges are recorded after commit, in commit order.
#[derive(Debug, Default)]
pub(crate) struct OwnWrites {
    followed: AtomicBool,
    ranges: Mutex<VecDeque<RangeInclusive<i64>>>,
}

impl OwnWrites {
    /// Whether a feed reads the ranges (nothing is kept otherwise).
    pub(crate) fn followed(&self) -> bool {
        self.followed.load(Ordering::Relaxed)
    }

    /// Event ids `first..=last` were committed by this process.
    pub(crate) fn record(&self, first: i64, last: i64) {
        if first > last || !self.followed() {
            return;
        }
        let mut ranges = self.ranges.lock().unwrap_or_else(PoisonError::into_inner);
        match ranges.back_mut() {
            Some(previous) if *previous.end() + 1 == first => {
                *previous = *previous.start()..=last;
            }
            _ => ranges.push_back(first..=last),
        }
        if ranges.len() > MAX_OWN_RANGES {
            ranges.pop_front();
        }
    }

    /// Whether this process wrote event `id`. Ids must be asked in increasing
    /// order: ranges below `id` are dropped.
    fn is_own(&self, id: i64) -> bool {
        let mut ranges = self.ranges.lock().unwrap_or_else(PoisonError::into_inner);
        while ranges.front().is_some_and(|range| *range.end() < id) {
            ranges.pop_front();
        }
        ranges.front().is_some_and(|range| range.contains(&id))
    }
}

/// Starts tailing `path` on a thread of its own, skipping the events `own`
/// records; it ends when `changes` closes. The starting point is read before
/// this returns, so a view loaded afterwards misses nothing in between; if
/// that fails, the feed starts by asking for a full reload instead.
///
/// # Errors
/// When the thread cannot be started.
pub(crate) fn spawn(
    path: PathBuf,
    own: Arc<OwnWrites>,
    changes: UnboundedSender<ExternalChange>,
) -> std::io::Result<JoinHandle<()>> {
    own.followed.store(true, Ordering::Relaxed);
    let start = connect(&path)
        .and_then(|mut conn| Ok((last_event_id(&mut conn)?, conn)))
        .map_err(|error| warn!(error = %error, "SQLite change feed will start late"))
        .ok();
    std::thread::Builder::new()
        .name("keywarden-change-feed".into())
        .spawn(move || run(&path, &own, &changes, start))
}

fn run(
    path: &std::path::Path,
    own: &OwnWrites,
    changes: &UnboundedSender<ExternalChange>,
    start: Option<(i64, SqliteConnection)>,
) {
    let (mut position, mut conn) = match start {
        Some((position, conn)) => (Some(position), Some(conn)),
        None => (None, None),
    };
    while !changes.is_closed() {
        let outcome = match conn.take().map_or_else(|| connect(path), Ok) {
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

fn connect(path: &std::path::Path) -> Result<SqliteConnection, Box<dyn std::error::Error>> {
    let mut conn = SqliteConnection::establish(&path.to_string_lossy())?;
    conn.batch_execute("PRAGMA busy_timeout = 5000;")?;
    Ok(conn)
}

/// The id of the newest audit event (0 when there is none).
pub(super) fn last_event_id(conn: &mut SqliteConnection) -> diesel::QueryResult<i64> {
    Ok(events::table
        .select(max(events::id))
        .first::<Option<i64>>(conn)?
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
    use super::*;

    #[test]
    fn own_ranges_merge_and_are_dropped_once_passed() {
        let own = OwnWrites::default();
        own.record(1, 3);
        assert!(
            own.ranges.lock().unwrap().is_empty(),
            "nothing kept unfollowed"
        );
        own.followed.store(true, Ordering::Relaxed);
        own.record(4, 6);
        own.record(7, 7);
        own.record(9, 8); // a batch that wrote no event
        own.record(10, 12);
        assert_eq!(own.ranges.lock().unwrap().len(), 2, "4..=7 merged");
        assert!(!own.is_own(3));
        assert!(own.is_own(4) && own.is_own(7));
        assert!(!own.is_own(8), "written elsewhere");
        assert!(own.is_own(10) && own.is_own(12));
        assert!(!own.is_own(13));
        assert!(own.ranges.lock().unwrap().is_empty());
    }

    #[test]
    fn the_oldest_ranges_are_forgotten_beyond_the_cap() {
        let own = OwnWrites::default();
        own.followed.store(true, Ordering::Relaxed);
        for i in 0..=i64::try_from(MAX_OWN_RANGES).unwrap() {
            own.record(i * 2, i * 2);
        }
        assert_eq!(own.ranges.lock().unwrap().len(), MAX_OWN_RANGES);
        assert!(!own.is_own(0), "forgotten: reported, which is safe");
        assert!(own.is_own(2));
    }
}
