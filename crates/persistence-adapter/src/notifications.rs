//! The durable side of lifecycle notifications, written once for both
//! backends over `Dialect`: the webhook outbox (the `events` table read per
//! endpoint after a cursor in `webhook_endpoints`, which moves only once an
//! event is delivered or given up, so a crash or restart resends at most
//! what was in flight) and expiry notices (`expiry_notices`, whose key makes
//! each notice happen once, whatever the number of instances).

use std::collections::{HashMap, HashSet};

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use keywarden_application::{
    Delivered, EndpointState, EndpointStatus, ExpiryCandidate, ExpiryNotice, LogPosition,
    NotificationStore, PendingEvent, RepositoryError,
};
use keywarden_domain::{Selector, StoredEvent};

use crate::error::TxError;
use crate::rows::{EventRow, NewEndpoint, NoticeRow};
use crate::schema::At;
use crate::sql::{insert_event, read, with_connection, Dialect, SqlRepository, IN_CHUNK};
use crate::statements::{self as st, Executes, Loads};

fn position(row: &EventRow) -> LogPosition {
    LogPosition {
        commit: row.tx.unwrap_or(0),
        id: row.id,
    }
}

fn count(value: i64) -> u64 {
    u64::try_from(value).unwrap_or(0)
}

#[async_trait]
impl<D: Dialect> NotificationStore for SqlRepository<D> {
    async fn register_endpoints(
        &self,
        urls: Vec<String>,
        at: DateTime<Utc>,
    ) -> Result<(), RepositoryError> {
        if urls.is_empty() {
            return Ok(());
        }
        let register = |urls: Vec<String>| {
            self.write(move |conn| {
                let known: HashSet<String> = conn
                    .load_rows(st::known_endpoints(urls.clone()))?
                    .into_iter()
                    .collect();
                let end = D::log_end(conn)?;
                for url in urls.into_iter().filter(|url| !known.contains(url)) {
                    conn.run(st::insert_endpoint(NewEndpoint {
                        url,
                        cursor_tx: end.commit,
                        cursor_id: end.id,
                        registered_at: At(at),
                    }))?;
                }
                Ok(())
            })
        };
        // Two instances starting together may both find an endpoint missing;
        // the loser's insert conflicts, and its second look finds the row.
        match register(urls.clone()).await {
            Err(RepositoryError::Conflict(_)) => register(urls).await,
            outcome => outcome,
        }
    }

    async fn claim_endpoint(
        &self,
        url: String,
        owner: String,
        now: DateTime<Utc>,
        until: DateTime<Utc>,
    ) -> Result<Option<EndpointState>, RepositoryError> {
        self.write(move |conn| {
            let taken = conn.run(st::claim_endpoint(url.clone(), owner, At(now), At(until)))?;
            if taken != 1 {
                return Ok(None);
            }
            Ok(conn
                .load_rows(st::endpoint_state(url))?
                .pop()
                .map(|(attempts, next_attempt_at)| EndpointState {
                    attempts: u32::try_from(attempts).unwrap_or(0),
                    next_attempt_at,
                }))
        })
        .await
    }

    async fn release_endpoint(&self, url: String, owner: String) -> Result<(), RepositoryError> {
        self.write(move |conn| {
            conn.run(st::release_endpoint(url, owner))?;
            Ok(())
        })
        .await
    }

    async fn pending_events(
        &self,
        url: String,
        limit: u32,
    ) -> Result<Vec<PendingEvent>, RepositoryError> {
        with_connection(self.pool(), move |conn| {
            let Some(row) = conn.load_rows(st::endpoint_rows(vec![url]))?.pop() else {
                return Ok(Vec::new());
            };
            let after = LogPosition {
                commit: row.cursor_tx,
                id: row.cursor_id,
            };
            D::events_after(conn, after, i64::from(limit), true)?
                .into_iter()
                .map(|row| {
                    let position = position(&row);
                    Ok(PendingEvent {
                        position,
                        stored: StoredEvent::try_from(row)?,
                    })
                })
                .collect::<Result<_, RepositoryError>>()
                .map_err(TxError::from)
        })
        .await
    }

    async fn record_delivered(
        &self,
        url: String,
        owner: String,
        delivered: Delivered,
        at: DateTime<Utc>,
    ) -> Result<bool, RepositoryError> {
        self.write(move |conn| {
            let moved = conn.run(st::advance_endpoint(
                url.clone(),
                owner.clone(),
                delivered.through.commit,
                delivered.through.id,
                i64::from(delivered.sent),
                i64::from(delivered.given_up),
            ))?;
            if let (1, Some(error)) = (moved, delivered.error) {
                conn.run(st::endpoint_failed(url, owner, 0, None, error, At(at)))?;
            }
            Ok(moved == 1)
        })
        .await
    }

    async fn record_failure(
        &self,
        url: String,
        owner: String,
        state: EndpointState,
        error: String,
        at: DateTime<Utc>,
    ) -> Result<bool, RepositoryError> {
        self.write(move |conn| {
            let attempts = i32::try_from(state.attempts).unwrap_or(i32::MAX);
            let changed = conn.run(st::endpoint_failed(
                url,
                owner,
                attempts,
                state.next_attempt_at.map(At),
                error,
                At(at),
            ))?;
            Ok(changed == 1)
        })
        .await
    }

    async fn endpoint_statuses(
        &self,
        endpoints: Vec<(String, Option<Vec<String>>)>,
    ) -> Result<Vec<EndpointStatus>, RepositoryError> {
        read(&**self, move |conn| {
            let urls = endpoints.iter().map(|(url, _)| url.clone()).collect();
            let rows = conn.load_rows(st::endpoint_rows(urls))?;
            let mut statuses = Vec::new();
            for (url, types) in endpoints {
                let Some(row) = rows.iter().find(|row| row.url == url) else {
                    continue;
                };
                let after = LogPosition {
                    commit: row.cursor_tx,
                    id: row.cursor_id,
                };
                let taken = |kind: &String| types.as_ref().is_none_or(|types| types.contains(kind));
                let backlog = D::backlog_after(conn, after)?
                    .into_iter()
                    .filter(|(kind, _)| taken(kind))
                    .map(|(_, n)| count(n))
                    .sum();
                // How far the cursor lags: when the event after it was recorded.
                let oldest = D::events_after(conn, after, 1, false)?
                    .pop()
                    .map(|row| row.created_at);
                let now = Utc::now();
                statuses.push(EndpointStatus {
                    url,
                    backlog,
                    oldest_pending_at: oldest,
                    attempts: u32::try_from(row.attempts).unwrap_or(0),
                    next_attempt_at: row.next_attempt_at,
                    last_error: row.last_error.clone(),
                    last_error_at: row.last_error_at,
                    sent: count(row.sent),
                    given_up: count(row.given_up),
                    held_by: row
                        .lease_owner
                        .clone()
                        .filter(|_| row.lease_until.is_some_and(|until| until > now)),
                });
            }
            Ok(statuses)
        })
        .await
    }

    async fn expiry_candidates(
        &self,
        horizon: DateTime<Utc>,
    ) -> Result<Vec<ExpiryCandidate>, RepositoryError> {
        read(&**self, move |conn| {
            let expiring: Vec<(String, DateTime<Utc>)> = conn
                .load_rows(st::expiring_tokens(At(horizon)))?
                .into_iter()
                .filter_map(|(selector, expires_at)| Some((selector, expires_at?)))
                .collect();
            let mut noticed: HashMap<(String, DateTime<Utc>), Vec<String>> = HashMap::new();
            let selectors: Vec<String> = expiring.iter().map(|(s, _)| s.clone()).collect();
            for chunk in selectors.chunks(IN_CHUNK) {
                for (selector, label, expires_at) in
                    conn.load_rows(st::notices_of(chunk.to_vec()))?
                {
                    noticed
                        .entry((selector, expires_at))
                        .or_default()
                        .push(label);
                }
            }
            expiring
                .into_iter()
                .map(|(text, expires_at)| {
                    let selector = Selector::parse(&text).ok_or_else(|| {
                        RepositoryError::Corrupt(format!("token with bad selector {text:?}"))
                    })?;
                    Ok(ExpiryCandidate {
                        selector,
                        expires_at,
                        noticed: noticed.remove(&(text, expires_at)).unwrap_or_default(),
                    })
                })
                .collect::<Result<_, RepositoryError>>()
                .map_err(TxError::from)
        })
        .await
    }

    async fn record_expiry_notices(
        &self,
        notices: Vec<ExpiryNotice>,
    ) -> Result<u32, RepositoryError> {
        let mut written = 0;
        // One transaction per token: on PostgreSQL, another instance
        // recording the same notice makes one of them fail on the key, and
        // only that token's notice (and event) is rolled back, to be found
        // recorded on the next round.
        for notice in notices {
            let announced = self
                .write(move |conn| {
                    let selector = notice.selector.to_string();
                    let Some(token) = D::rows_for_change(conn, selector.clone())?.pop() else {
                        return Ok(false);
                    };
                    if token.expires_at != Some(notice.expires_at) {
                        return Ok(false);
                    }
                    let recorded: HashSet<String> = conn
                        .load_rows(st::notices_of(vec![selector.clone()]))?
                        .into_iter()
                        .filter(|(_, _, at)| *at == notice.expires_at)
                        .map(|(_, label, _)| label)
                        .collect();
                    let new: Vec<NoticeRow> = notice
                        .labels
                        .iter()
                        .filter(|label| !recorded.contains(*label))
                        .map(|label| NoticeRow {
                            selector: selector.clone(),
                            threshold: label.clone(),
                            expires_at: At(notice.expires_at),
                        })
                        .collect();
                    if new.is_empty() {
                        return Ok(false);
                    }
                    conn.run(st::insert_notices(new))?;
                    let first_is_new = notice
                        .labels
                        .first()
                        .is_some_and(|label| !recorded.contains(label));
                    match notice.event.filter(|_| first_is_new) {
                        Some(event) => {
                            insert_event(conn, &event)?;
                            Ok(true)
                        }
                        None => Ok(false),
                    }
                })
                .await;
            match announced {
                Ok(true) => written += 1,
                Ok(false) => {}
                Err(RepositoryError::Conflict(_)) => {
                    tracing::debug!("another instance recorded the same expiry notice");
                }
                Err(error) => return Err(error),
            }
        }
        Ok(written)
    }
}
