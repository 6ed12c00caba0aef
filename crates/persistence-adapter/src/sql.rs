//! The repository port over any SQL backend, written once: `SqlRepository<D>`
//! runs the statements of `crate::statements` in transactions, and the
//! backend `D` supplies what differs between databases through the sealed
//! [`Dialect`] trait: its connection type, how a set of reads sees one state,
//! how a write is executed (SQLite's go through the group-commit `Writer`,
//! PostgreSQL's run concurrently, each in a transaction on a pooled
//! connection), how rows read for a change are locked, the lock taken before
//! counting tokens, and how a change is announced to other instances.
//!
//! This replaces a `macro_rules!` that stamped the repository out once per
//! backend: with one schema for both backends (`crate::schema`) the queries
//! no longer differ, so plain generic code over a trait serves both, the
//! compiler checks each backend against the trait, and its errors and
//! go-to-definition point at real code. (Why the statements are generic over
//! the connection rather than a diesel `MultiConnection`: `crate::statements`.)

use std::future::Future;
use std::ops::Deref;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use diesel::r2d2::{ConnectionManager, Pool, R2D2Connection};
use keywarden_application::{
    ApiTokenRepository, EventPage, EventSearch, ExpiryChange, LogPosition, RepositoryError,
    RotateOutcome, StoredCredential,
};
use keywarden_domain::{
    truncate_to_millis, Actor, ApiToken, AuditEvent, Environment, EventType, Project, Rotation,
    Selector, StoredEvent, TokenRef,
};

use crate::error::{pool_unavailable, TxError};
use crate::rows::{assemble, assemble_credentials, project_links, EventRow, TokenRow};
use crate::schema::At;
use crate::statements::{self as st, Executes, Loads, Statements};
use crate::stored_event;

/// Bound parameters per statement stay well below every backend's cap.
pub(crate) const IN_CHUNK: usize = 500;

/// Events of one type after a log position, and how many.
pub(crate) type Backlog = (String, i64);

/// What a database backend supplies to `SqlRepository`. Crate-private, so
/// only this crate's backends can be one.
pub(crate) trait Dialect: Send + Sync + 'static {
    /// The backend's diesel connection.
    type Conn: Statements + R2D2Connection + Send + 'static;

    /// The pool reads run on.
    fn pool(&self) -> &Pool<ConnectionManager<Self::Conn>>;

    /// Runs `work` so that all its statements see one snapshot.
    fn read_transaction<T, F>(conn: &mut Self::Conn, work: F) -> Result<T, TxError>
    where
        F: FnOnce(&mut Self::Conn) -> Result<T, TxError>;

    /// Runs `work` in a transaction that other writers of the same token
    /// cannot interleave with, and answers once it has committed.
    fn write<T, F>(&self, work: F) -> impl Future<Output = Result<T, RepositoryError>> + Send
    where
        T: Send + 'static,
        F: FnOnce(&mut Self::Conn) -> Result<T, TxError> + Send + 'static;

    /// The rows of the token with `selector`, locked until commit where
    /// writers run concurrently: concurrent changes to one token then apply
    /// one after the other, each seeing the previous one's result.
    fn rows_for_change(conn: &mut Self::Conn, selector: String) -> Result<Vec<TokenRow>, TxError>;

    /// Taken before counting tokens in order to insert more.
    fn lock_token_count(conn: &mut Self::Conn) -> Result<(), TxError>;

    /// Where the event log ends now: an endpoint whose cursor is here
    /// receives every event committed from now on.
    fn log_end(conn: &mut Self::Conn) -> Result<LogPosition, TxError>;

    /// Up to `limit` events after `after` in log order. `settled`: only
    /// events none of which an event committing later could precede (what
    /// the outbox reads, so that its cursor never steps past an event it has
    /// not seen); otherwise whatever is visible now (for reports).
    fn events_after(
        conn: &mut Self::Conn,
        after: LogPosition,
        limit: i64,
        settled: bool,
    ) -> Result<Vec<EventRow>, TxError>;

    /// Per event type, how many events are after `after`.
    fn backlog_after(conn: &mut Self::Conn, after: LogPosition) -> Result<Vec<Backlog>, TxError>;

    /// Tells other instances that these tokens changed, after their
    /// transaction committed. Never fails the write: a lost announcement is
    /// what the periodic resync is for.
    fn committed(&self, selectors: Vec<String>) -> impl Future<Output = ()> + Send;
}

/// The repository over backend `D`; its own methods (opening it, following
/// changes) are `D`'s, reached through `Deref`.
#[derive(Clone)]
pub struct SqlRepository<D>(D);

impl<D> SqlRepository<D> {
    pub(crate) fn new(database: D) -> Self {
        Self(database)
    }
}

impl<D> Deref for SqlRepository<D> {
    type Target = D;

    fn deref(&self) -> &D {
        &self.0
    }
}

/// Runs `work` on a connection from `pool`, on the blocking pool.
pub(crate) async fn with_connection<C, T, F>(
    pool: &Pool<ConnectionManager<C>>,
    work: F,
) -> Result<T, RepositoryError>
where
    C: R2D2Connection + Send + 'static,
    T: Send + 'static,
    F: FnOnce(&mut C) -> Result<T, TxError> + Send + 'static,
{
    let pool = pool.clone();
    tokio::task::spawn_blocking(move || {
        let waiting = std::time::Instant::now();
        let conn = pool.get();
        metrics::histogram!("keywarden_db_pool_wait_seconds")
            .record(waiting.elapsed().as_secs_f64());
        let state = pool.state();
        metrics::gauge!("keywarden_db_pool_connections", "state" => "open")
            .set(f64::from(state.connections));
        metrics::gauge!("keywarden_db_pool_connections", "state" => "idle")
            .set(f64::from(state.idle_connections));
        let mut conn = conn.map_err(pool_unavailable)?;
        match work(&mut conn).map_err(RepositoryError::from) {
            // Whatever the driver called it, a failure that left the
            // connection broken means the database went away.
            Err(RepositoryError::Internal(cause)) if R2D2Connection::is_broken(&mut *conn) => {
                Err(RepositoryError::Unavailable(cause))
            }
            outcome => outcome,
        }
    })
    .await
    .map_err(|e| RepositoryError::Internal(Box::new(e)))?
}

/// Several statements that must see one state.
pub(crate) async fn read<D, T, F>(database: &D, work: F) -> Result<T, RepositoryError>
where
    D: Dialect,
    T: Send + 'static,
    F: FnOnce(&mut D::Conn) -> Result<T, TxError> + Send + 'static,
{
    with_connection(database.pool(), |conn| D::read_transaction(conn, work)).await
}

/// Loads `query`'s rows and converts each into what the port returns.
fn load_as<C, Q, R, T>(conn: &mut C, query: Q) -> Result<Vec<T>, TxError>
where
    C: Loads<Q, R>,
    T: TryFrom<R, Error = RepositoryError>,
{
    Ok(conn
        .load_rows(query)?
        .into_iter()
        .map(T::try_from)
        .collect::<Result<_, _>>()?)
}

fn links_of<C: Statements>(
    conn: &mut C,
    selectors: &[String],
) -> Result<Vec<(String, String)>, TxError> {
    let mut links = Vec::new();
    for chunk in selectors.chunks(IN_CHUNK) {
        // `IN (…)` is prepared anew for every length; the usual single token
        // gets a statement the connection can keep.
        links.extend(match chunk {
            [one] => conn.load_rows(st::links_of(one.clone()))?,
            many => conn.load_rows(st::links_in(many.to_vec()))?,
        });
    }
    Ok(links)
}

fn load_tokens<C: Statements>(conn: &mut C, rows: Vec<TokenRow>) -> Result<Vec<ApiToken>, TxError> {
    // All-projects tokens have no links: ask only about the others.
    let selectors: Vec<String> = rows
        .iter()
        .filter(|row| !row.all_projects)
        .map(|row| row.selector.clone())
        .collect();
    let links = links_of(conn, &selectors)?;
    Ok(assemble(rows, links)?)
}

/// The token `target` refers to, if it exists and a given credential matches,
/// read for a change (see `Dialect::rows_for_change`). A credential without
/// an embedded selector is looked up by its verifier first.
fn resolve_for_change<D: Dialect>(
    conn: &mut D::Conn,
    target: TokenRef,
) -> Result<Option<ApiToken>, TxError> {
    let selector = match (target.selector(), target.verifier()) {
        (Some(selector), _) => selector.to_string(),
        (None, Some(verifier)) => {
            let found = conn.load_rows(st::selector_of_verifier(verifier.as_bytes().to_vec()))?;
            match found.into_iter().next() {
                Some(selector) => selector,
                None => return Ok(None),
            }
        }
        (None, None) => return Ok(None),
    };
    let rows = D::rows_for_change(conn, selector)?;
    Ok(load_tokens(conn, rows)?
        .pop()
        .filter(|token| target.matches(token.verifier())))
}

/// One change to the token `target` refers to: reads it for the change,
/// lets `change` apply it (answering the event that records it and the
/// port's answer) and records the event. `None` when there is no such token.
fn change_token<D: Dialect, T>(
    conn: &mut D::Conn,
    target: TokenRef,
    change: impl FnOnce(&mut D::Conn, ApiToken) -> Result<Option<(AuditEvent, T)>, TxError>,
) -> Result<Option<T>, TxError> {
    let Some(before) = resolve_for_change::<D>(conn, target)? else {
        return Ok(None);
    };
    let Some((event, answer)) = change(conn, before)? else {
        return Ok(None);
    };
    insert_event(conn, &event)?;
    Ok(Some(answer))
}

/// Sets the expiry of the token `target` refers to and records
/// `api-token-updated`, if `applies` to the token as read for the change.
async fn change_expiry<D: Dialect>(
    database: &D,
    target: TokenRef,
    expires_at: DateTime<Utc>,
    actor: &Actor,
    at: DateTime<Utc>,
    applies: impl FnOnce(&ApiToken) -> bool + Send + 'static,
) -> Result<Option<ExpiryChange>, RepositoryError> {
    let actor = actor.clone();
    let change = database
        .write(move |conn| {
            change_token::<D, _>(conn, target, |conn, before| {
                if !applies(&before) {
                    return Ok(None);
                }
                let after = set_expiry(conn, &before, before.with_expiry(expires_at))?;
                let event = AuditEvent::token_updated(&before, &after, &actor, at);
                Ok(Some((event, ExpiryChange { before, after })))
            })
        })
        .await?;
    announce_change(database, change.as_ref().map(|change| &change.after)).await;
    Ok(change)
}

fn insert_token<C: Statements>(conn: &mut C, token: &ApiToken) -> Result<ApiToken, TxError> {
    let revision = 1;
    conn.run(st::insert_token(TokenRow::of(token, revision)))?;
    let links = project_links(token);
    if !links.is_empty() {
        conn.run(st::insert_links(links))?;
    }
    Ok(token.clone().with_revision(revision))
}

/// Announces the change to `token`, if a change was made.
async fn announce_change<D: Dialect>(database: &D, token: Option<&ApiToken>) {
    if let Some(token) = token {
        database.committed(vec![token.selector().to_string()]).await;
    }
}

pub(crate) fn insert_event<C: Statements>(conn: &mut C, event: &AuditEvent) -> Result<(), TxError> {
    conn.run(st::insert_event(st::NewEvent {
        event_type: event.event_type.as_str().to_string(),
        created_by: event.created_by.clone(),
        created_at: At(event.created_at),
        data: stored_event::encode(
            event.data.as_ref(),
            stored_event::Annotations {
                rotated_from: event.rotated_from,
                threshold: event.threshold.clone(),
            },
        )?,
        pre_data: stored_event::encode(
            event.pre_data.as_ref(),
            stored_event::Annotations::default(),
        )?,
        selector: event.subject().to_string(),
        format: stored_event::CURRENT_FORMAT,
        token_name: event
            .data
            .as_ref()
            .or(event.pre_data.as_ref())
            .map(|facts| facts.name.as_str().to_string()),
        created_by_token_id: event.created_by_token.map(|selector| selector.to_string()),
    }))?;
    Ok(())
}

/// Sets a locked token's expiry as `after` has it; returns `after` at the
/// revision this makes.
fn set_expiry<C: Statements>(
    conn: &mut C,
    before: &ApiToken,
    after: ApiToken,
) -> Result<ApiToken, TxError> {
    let changed = conn.run(st::SetExpiry {
        expires_at: after.expires_at(),
        selector: &before.selector().to_string(),
    })?;
    if changed != 1 {
        return Err(RepositoryError::Internal(
            format!("the expiry update changed {changed} rows").into(),
        )
        .into());
    }
    // The row is ours until commit (locked, or the only writer).
    Ok(after.with_revision(before.revision() + 1))
}

/// `%`, `_` and `\` are literal in a search's free text: a `LIKE` pattern that
/// finds `text` anywhere, case-insensitively.
fn contains_pattern(text: &str) -> String {
    let mut pattern = String::from("%");
    for c in text.to_lowercase().chars() {
        if matches!(c, '%' | '_' | '\\') {
            pattern.push('\\');
        }
        pattern.push(c);
    }
    pattern.push('%');
    pattern
}

fn token_count<D: Dialect>(conn: &mut D::Conn) -> Result<i64, TxError> {
    D::lock_token_count(conn)?;
    Ok(conn.load_rows(st::token_count())?.pop().unwrap_or(0))
}

#[async_trait]
impl<D: Dialect> ApiTokenRepository for SqlRepository<D> {
    async fn sync_catalog(
        &self,
        declared_projects: Vec<Project>,
        declared_environments: Vec<Environment>,
        prune: bool,
    ) -> Result<(), RepositoryError> {
        let now = truncate_to_millis(Utc::now());
        self.0
            .write(move |conn| {
                for project in &declared_projects {
                    conn.run(st::UpsertProject {
                        id: project.id.as_str(),
                        name: &project.name,
                        description: project.description.as_deref(),
                        created_at: now,
                    })?;
                }
                for environment in &declared_environments {
                    conn.run(st::UpsertEnvironment {
                        name: environment.name.as_str(),
                        kind: &environment.kind,
                        sort_order: environment.sort_order,
                        enabled: environment.enabled,
                        created_at: now,
                    })?;
                }
                // Referenced entries stay: tokens' foreign keys need them.
                if prune {
                    conn.run(st::prune_projects(
                        declared_projects
                            .iter()
                            .map(|p| p.id.as_str().to_string())
                            .collect(),
                    ))?;
                    conn.run(st::prune_environments(
                        declared_environments
                            .iter()
                            .map(|e| e.name.as_str().to_string())
                            .collect(),
                    ))?;
                }
                Ok(())
            })
            .await
    }

    async fn list(&self) -> Result<Vec<ApiToken>, RepositoryError> {
        read(&self.0, |conn| {
            let rows = conn.load_rows(st::all_tokens())?;
            let links = conn.load_rows(st::all_links())?;
            Ok(assemble(rows, links)?)
        })
        .await
    }

    async fn credentials(&self) -> Result<Vec<StoredCredential>, RepositoryError> {
        // One snapshot: the scope is part of what verification answers from memory.
        read(&self.0, |conn| {
            let rows = conn.load_rows(st::credentials())?;
            let links = conn.load_rows(st::all_links())?;
            Ok(assemble_credentials(rows, links)?)
        })
        .await
    }

    async fn find_by_name(&self, name: &str) -> Result<Vec<ApiToken>, RepositoryError> {
        let name = name.to_string();
        read(&self.0, move |conn| {
            let rows = conn.load_rows(st::tokens_named(name))?;
            load_tokens(conn, rows)
        })
        .await
    }

    async fn find_many(&self, selectors: Vec<Selector>) -> Result<Vec<ApiToken>, RepositoryError> {
        let selectors: Vec<String> = selectors.iter().map(Selector::to_string).collect();
        read(&self.0, move |conn| {
            let mut rows = Vec::new();
            for chunk in selectors.chunks(IN_CHUNK) {
                rows.extend(conn.load_rows(st::tokens_in(chunk.to_vec()))?);
            }
            load_tokens(conn, rows)
        })
        .await
    }

    async fn insert(
        &self,
        token: ApiToken,
        event: AuditEvent,
        limit: u32,
    ) -> Result<ApiToken, RepositoryError> {
        let stored = self
            .0
            .write(move |conn| {
                if token_count::<D>(conn)? >= i64::from(limit) {
                    return Err(RepositoryError::LimitExceeded(limit).into());
                }
                let stored = insert_token(conn, &token)?;
                insert_event(conn, &event)?;
                Ok(stored)
            })
            .await?;
        self.0.committed(vec![stored.selector().to_string()]).await;
        Ok(stored)
    }

    async fn insert_initial(
        &self,
        tokens: Vec<ApiToken>,
        actor: &Actor,
        at: DateTime<Utc>,
    ) -> Result<bool, RepositoryError> {
        let actor = actor.clone();
        let selectors = tokens.iter().map(|t| t.selector().to_string()).collect();
        let inserted = self
            .0
            .write(move |conn| {
                // Bootstrap runs before the first request is answered: it
                // asks whether any token exists, not how many.
                D::lock_token_count(conn)?;
                if !conn.load_rows(st::any_token())?.is_empty() {
                    return Ok(false);
                }
                for token in &tokens {
                    let stored = insert_token(conn, token)?;
                    insert_event(conn, &AuditEvent::token_created(&stored, &actor, at))?;
                }
                Ok(true)
            })
            .await?;
        if inserted {
            self.0.committed(selectors).await;
        }
        Ok(inserted)
    }

    async fn update_expiry(
        &self,
        target: TokenRef,
        expires_at: DateTime<Utc>,
        actor: &Actor,
        at: DateTime<Utc>,
    ) -> Result<Option<ExpiryChange>, RepositoryError> {
        change_expiry(&self.0, target, expires_at, actor, at, |_| true).await
    }

    async fn rotate(
        &self,
        target: TokenRef,
        rotation: Rotation,
        actor: &Actor,
    ) -> Result<RotateOutcome, RepositoryError> {
        let actor = actor.clone();
        let outcome = self
            .0
            .write(move |conn| {
                let Some(old) = resolve_for_change::<D>(conn, target)? else {
                    return Ok(RotateOutcome::NotFound);
                };
                let selector = old.selector().to_string();
                let successor = conn
                    .load_rows(st::successor_of(selector.clone()))?
                    .pop()
                    .flatten()
                    .map(|text| {
                        Selector::parse(&text).ok_or_else(|| {
                            RepositoryError::Corrupt(format!(
                                "token {selector}: bad successor {text:?}"
                            ))
                        })
                    })
                    .transpose()?;
                let at = rotation.now;
                let mut rotated = match rotation.apply(&old, successor) {
                    Ok(rotated) => rotated,
                    Err(refused) => return Ok(RotateOutcome::Refused(refused)),
                };
                // No limit: the overlap must never block a rotation.
                rotated.successor = insert_token(conn, &rotated.successor)?;
                insert_event(
                    conn,
                    &AuditEvent::token_rotated(&rotated.successor, &old, &actor, at),
                )?;
                rotated.retired = set_expiry(conn, &old, rotated.retired)?;
                conn.run(st::set_successor(
                    selector.clone(),
                    rotated.successor.selector().to_string(),
                ))?;
                insert_event(
                    conn,
                    &AuditEvent::token_updated(&old, &rotated.retired, &actor, at),
                )?;
                Ok(RotateOutcome::Rotated(Box::new(rotated)))
            })
            .await?;
        if let RotateOutcome::Rotated(rotated) = &outcome {
            let changed = [&rotated.retired, &rotated.successor];
            self.0
                .committed(changed.map(|token| token.selector().to_string()).to_vec())
                .await;
        }
        Ok(outcome)
    }

    async fn delete(
        &self,
        target: TokenRef,
        actor: &Actor,
        at: DateTime<Utc>,
    ) -> Result<Option<ApiToken>, RepositoryError> {
        let actor = actor.clone();
        let deleted = self
            .0
            .write(move |conn| {
                change_token::<D, _>(conn, target, |conn, before| {
                    conn.run(st::delete_token(before.selector().to_string()))?;
                    Ok(Some((
                        AuditEvent::token_deleted(&before, &actor, at),
                        before,
                    )))
                })
            })
            .await?;
        announce_change(&self.0, deleted.as_ref()).await;
        Ok(deleted)
    }

    async fn record_seen(
        &self,
        seen: Vec<(Selector, DateTime<Utc>)>,
    ) -> Result<(), RepositoryError> {
        let mut seen = seen;
        // One order for every writer, so two instances flushing overlapping
        // batches cannot deadlock on row locks.
        seen.sort_unstable_by_key(|(selector, _)| *selector);
        self.0
            .write(move |conn| {
                for (selector, at) in seen {
                    conn.run(st::mark_seen(
                        selector.to_string(),
                        At(truncate_to_millis(at)),
                    ))?;
                }
                Ok(())
            })
            .await
    }

    async fn events(
        &self,
        event_type: Option<EventType>,
        limit: u32,
    ) -> Result<Vec<StoredEvent>, RepositoryError> {
        let limit = i64::from(limit);
        with_connection(self.0.pool(), move |conn| match event_type {
            None => load_as(conn, st::newest_events(limit)),
            Some(kind) => load_as(
                conn,
                st::newest_events_of_type(kind.as_str().to_string(), limit),
            ),
        })
        .await
    }

    async fn search_events(
        &self,
        search: EventSearch,
        offset: u64,
        limit: u32,
    ) -> Result<EventPage, RepositoryError> {
        let filters = st::EventFilters {
            types: search.types,
            created_by: search.created_by,
            from: search.from,
            before: search.before,
            text: search.text.as_deref().map(contains_pattern),
        };
        read(&self.0, move |conn| {
            let events = load_as(
                conn,
                st::SearchEvents {
                    filters: filters.clone(),
                    offset: i64::try_from(offset).unwrap_or(i64::MAX),
                    limit: i64::from(limit),
                },
            )?;
            let total = conn
                .load_rows(st::CountEvents { filters })?
                .pop()
                .unwrap_or(0);
            Ok(EventPage {
                events,
                total: u64::try_from(total).unwrap_or(0),
            })
        })
        .await
    }

    async fn projects(&self) -> Result<Vec<Project>, RepositoryError> {
        with_connection(self.0.pool(), |conn| load_as(conn, st::catalog_projects())).await
    }

    async fn environments(&self) -> Result<Vec<Environment>, RepositoryError> {
        with_connection(self.0.pool(), |conn| {
            load_as(conn, st::catalog_environments())
        })
        .await
    }

    async fn expire_unused(
        &self,
        selector: Selector,
        cutoff: DateTime<Utc>,
        actor: &Actor,
        at: DateTime<Utc>,
    ) -> Result<Option<ExpiryChange>, RepositoryError> {
        // Read for the change: another instance may have expired it, or the
        // token been used, since it was listed.
        let still_unused = move |before: &ApiToken| {
            let last_used = before.seen_at().unwrap_or(before.created_at());
            before.expires_at().is_none_or(|expiry| expiry > at) && last_used <= cutoff
        };
        change_expiry(
            &self.0,
            TokenRef::Selector(selector),
            at,
            actor,
            at,
            still_unused,
        )
        .await
    }

    async fn ping(&self) -> Result<(), RepositoryError> {
        with_connection(self.0.pool(), |conn| {
            conn.run(diesel::sql_query("SELECT 1"))?;
            Ok(())
        })
        .await
    }
}
