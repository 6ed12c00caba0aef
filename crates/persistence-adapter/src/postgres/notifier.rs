//! Announcing committed changes to the other instances, off the commit path.
//! A `pg_notify` inside every write transaction makes PostgreSQL serialise
//! the commits on its notification queue (docs/BENCHMARKS.md finding 14), so
//! writes only record their changed selectors here after commit, and the
//! [`ChangeNotifier`] sends them as one batch per interval. A process that
//! runs no notifier (an operator command) announces each write right after
//! its commit. A crash between commit and announcement loses the
//! announcement: the periodic resync of the other instances is the bound then.

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use async_trait::async_trait;
use diesel::{Connection, PgConnection, RunQueryDsl};
use keywarden_application::{BackgroundTask, RepositoryError, Stop};
use tokio::sync::Notify;
use tracing::warn;

use super::pool::{backend_pid, set_statement_timeout, OwnBackends, PgPool};
use super::Announce;
use crate::error::TxError;
use crate::sql::with_connection;

/// PostgreSQL refuses a notification payload of 8000 bytes or more.
const PAYLOAD_LIMIT: usize = 7999;
/// Separates the selectors in one payload (selectors never contain it).
pub(crate) const SEPARATOR: char = ',';

/// The selectors committed but not yet announced.
#[derive(Default)]
pub(crate) struct Announcements {
    pending: Mutex<BTreeSet<String>>,
    /// Whether a notifier sends them; otherwise each write announces itself.
    batched: AtomicBool,
    wake: Notify,
}

impl Announcements {
    pub(crate) async fn committed(&self, pool: &PgPool, selectors: Vec<String>) {
        if selectors.is_empty() {
            return;
        }
        if self.batched.load(Ordering::Acquire) {
            self.lock().extend(selectors);
            self.wake.notify_one();
        } else {
            send(pool, selectors).await;
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeSet<String>> {
        self.pending.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn take(&self) -> Vec<String> {
        std::mem::take(&mut *self.lock()).into_iter().collect()
    }
}

/// Where the notifier's own connection goes, and what it registers there.
pub(crate) struct Session {
    pub(crate) url: String,
    pub(crate) statement_timeout: Duration,
    /// The notifier's backend joins the pool's: this instance's listener
    /// skips what it announces.
    pub(crate) own: Arc<OwnBackends>,
}

/// The notifier's connection and its server process id.
struct Connected {
    conn: PgConnection,
    pid: i32,
}

impl Session {
    fn connect(&self) -> Result<Connected, Box<dyn std::error::Error + Send + Sync>> {
        super::init_tls();
        let mut conn = PgConnection::establish(&self.url)?;
        set_statement_timeout(&mut conn, self.statement_timeout)?;
        let pid = backend_pid(&mut conn)?;
        self.own.set(pid, true);
        Ok(Connected { conn, pid })
    }
}

/// Sends what the writes of this process committed, one batch per
/// `interval`, and what is pending when stopped. It has a connection of its
/// own: under full write load a pooled one is free only after every request
/// queued before it, which would add the pool's queue to how late other
/// instances learn of a change (tens of milliseconds at 32 connections).
pub struct ChangeNotifier {
    announcements: Arc<Announcements>,
    session: Arc<Session>,
    connected: Option<Connected>,
    interval: Duration,
}

impl ChangeNotifier {
    pub(crate) fn new(
        announcements: Arc<Announcements>,
        session: Session,
        interval: Duration,
    ) -> Self {
        announcements.batched.store(true, Ordering::Release);
        Self {
            announcements,
            session: Arc::new(session),
            connected: None,
            interval,
        }
    }

    async fn flush(&mut self) {
        let selectors = self.announcements.take();
        if selectors.is_empty() {
            return;
        }
        let count = selectors.len();
        let (session, connected) = (Arc::clone(&self.session), self.connected.take());
        let sent = tokio::task::spawn_blocking(move || {
            let mut connected = match connected.map_or_else(|| session.connect(), Ok) {
                Ok(connected) => connected,
                Err(error) => return (None, Err(error)),
            };
            match announce(&mut connected.conn, &selectors) {
                Ok(()) => (Some(connected), Ok(())),
                // Reconnect for the next batch.
                Err(error) => {
                    session.own.set(connected.pid, false);
                    (None, Err(RepositoryError::from(error).into()))
                }
            }
        })
        .await;
        let result = match sent {
            Ok((connected, result)) => {
                self.connected = connected;
                result
            }
            Err(error) => Err(error.into()),
        };
        report(count, result.map_err(|error| error.to_string()));
    }
}

#[async_trait]
impl BackgroundTask for ChangeNotifier {
    async fn run(mut self: Box<Self>, mut stop: Stop) {
        loop {
            tokio::select! {
                () = self.announcements.wake.notified() => {}
                () = stop.requested() => break,
            }
            // Whatever else commits within the interval joins this batch.
            let stopping = tokio::select! {
                () = tokio::time::sleep(self.interval) => false,
                () = stop.requested() => true,
            };
            self.flush().await;
            if stopping {
                break;
            }
        }
        self.flush().await;
        // Writes after this point announce themselves.
        self.announcements.batched.store(false, Ordering::Release);
        self.flush().await;
        if let Some(connected) = self.connected.take() {
            self.session.own.set(connected.pid, false);
        }
    }
}

/// The payloads announcing `selectors`: as few as fit under PostgreSQL's limit.
pub(crate) fn payloads(selectors: &[String]) -> Vec<String> {
    let mut payloads = Vec::new();
    let mut current = String::new();
    for selector in selectors {
        if !current.is_empty() && current.len() + 1 + selector.len() > PAYLOAD_LIMIT {
            payloads.push(std::mem::take(&mut current));
        }
        if !current.is_empty() {
            current.push(SEPARATOR);
        }
        current.push_str(selector);
    }
    if !current.is_empty() {
        payloads.push(current);
    }
    payloads
}

/// Sends the notifications in one transaction on a pooled connection: for
/// a process without a notifier.
async fn send(pool: &PgPool, selectors: Vec<String>) {
    let count = selectors.len();
    let sent = with_connection(pool, move |conn| announce(conn, &selectors)).await;
    report(count, sent.map_err(|error| error.to_string()));
}

/// Sends the notifications for `selectors` in one transaction.
fn announce(conn: &mut PgConnection, selectors: &[String]) -> Result<(), TxError> {
    conn.transaction::<_, TxError, _>(|conn| {
        // Nothing here needs to survive a crash (the resync covers a lost
        // notification), so the commit need not wait for a WAL flush
        // while it holds the notification queue's lock.
        diesel::sql_query("SET LOCAL synchronous_commit = off").execute(conn)?;
        for payload in payloads(selectors) {
            Announce(&payload).execute(conn)?;
        }
        Ok(())
    })
}

/// A failure is logged, not retried: the other instances' periodic resync
/// covers it.
fn report(count: usize, sent: Result<(), String>) {
    match sent {
        Ok(()) => metrics::counter!("keywarden_changes_announced_total").increment(count as u64),
        Err(error) => warn!(
            error = %error,
            count,
            "could not announce changes; other instances see them at their next resync"
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payloads_stay_under_the_limit_and_carry_every_selector() {
        let selectors: Vec<String> = (0..1000).map(|i| format!("{i:0>22}")).collect();
        let payloads = payloads(&selectors);
        assert!(payloads.len() > 1);
        assert!(payloads
            .iter()
            .all(|payload| payload.len() <= PAYLOAD_LIMIT));
        let carried: Vec<String> = payloads
            .iter()
            .flat_map(|payload| payload.split(SEPARATOR).map(str::to_string))
            .collect();
        assert_eq!(carried, selectors);
        assert!(super::payloads(&[]).is_empty());
    }
}
