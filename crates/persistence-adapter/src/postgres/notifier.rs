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
use diesel::{Connection, RunQueryDsl};
use keywarden_application::{BackgroundTask, Stop};
use tokio::sync::Notify;
use tracing::warn;

use super::pool::PgPool;
use super::Announce;
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

/// Sends what the writes of this process committed, one batch per
/// `interval`, and what is pending when stopped.
pub struct ChangeNotifier {
    announcements: Arc<Announcements>,
    pool: PgPool,
    interval: Duration,
}

impl ChangeNotifier {
    pub(crate) fn new(announcements: Arc<Announcements>, pool: PgPool, interval: Duration) -> Self {
        announcements.batched.store(true, Ordering::Release);
        Self {
            announcements,
            pool,
            interval,
        }
    }

    async fn flush(&self) {
        let selectors = self.announcements.take();
        if !selectors.is_empty() {
            send(&self.pool, selectors).await;
        }
    }
}

#[async_trait]
impl BackgroundTask for ChangeNotifier {
    async fn run(self: Box<Self>, mut stop: Stop) {
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

/// Sends the notifications in one transaction. A failure is logged, not
/// retried: the other instances' periodic resync covers it.
async fn send(pool: &PgPool, selectors: Vec<String>) {
    let count = selectors.len();
    let sent = with_connection(pool, move |conn| {
        conn.transaction::<_, crate::error::TxError, _>(|conn| {
            // Nothing here needs to survive a crash (the resync covers a lost
            // notification), so the commit need not wait for a WAL flush
            // while it holds the notification queue's lock.
            diesel::sql_query("SET LOCAL synchronous_commit = off").execute(conn)?;
            for payload in payloads(&selectors) {
                Announce(&payload).execute(conn)?;
            }
            Ok(())
        })
    })
    .await;
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
