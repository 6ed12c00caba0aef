//! Every statement the repository runs, written once against the one schema
//! (`crate::schema`), and [`Statements`]: what a connection type must be able
//! to run for the repository to work on it.
//!
//! diesel proves per query type that a query runs on a backend, so code
//! generic over the connection has to name each query's type in a bound.
//! `#[dsl::auto_type]` names them (each constructor below also defines a type
//! alias of its own name), and `Statements` states every bound once, as
//! supertraits, which Rust carries to each generic caller; the compiler checks
//! them for SQLite and PostgreSQL at the two `impl Statements` lines. (diesel's
//! `MultiConnection` would not need the bounds, but it cannot express
//! `ON CONFLICT`, and our pools and the SQLite group-commit writer hold the
//! backends' own connection types.) The statements whose types `auto_type`
//! cannot name (the `ON CONFLICT` upserts), or that must stay prepared on a
//! connection for throughput (`SetExpiry`), are written out as
//! `QueryFragment`s generic over the backend.

use chrono::{DateTime, Utc};
use diesel::backend::Backend;
use diesel::dsl;
use diesel::prelude::*;
use diesel::query_builder::{AstPass, QueryFragment, QueryId};
use diesel::query_dsl::methods::ExecuteDsl;
use diesel::query_dsl::LoadQuery;
use diesel::serialize::ToSql;
use diesel::sql_types::{BigInt, Bool, HasSqlType, Integer, Nullable, Text};
use diesel::{PgConnection, SqliteConnection};

use crate::rows::{
    CredentialRow, EndpointRow, EnvironmentRow, EventRow, LinkRow, NewEndpoint, NoticeRow,
    ProjectRow, TokenRow,
};
use crate::schema::sql_types::UtcTime;
use crate::schema::{
    api_token_projects, api_tokens, environments, events, expiry_notices, projects,
    webhook_endpoints, At,
};

/// A connection that loads rows `U` with query `Q`.
pub(crate) trait Loads<Q, U> {
    fn load_rows(&mut self, query: Q) -> QueryResult<Vec<U>>;
}

impl<C, Q, U> Loads<Q, U> for C
where
    C: Connection,
    Q: RunQueryDsl<C> + LoadQuery<'static, C, U>,
{
    fn load_rows(&mut self, query: Q) -> QueryResult<Vec<U>> {
        query.load(self)
    }
}

/// A connection that executes statement `Q`, answering the rows it changed.
pub(crate) trait Executes<Q> {
    fn run(&mut self, statement: Q) -> QueryResult<usize>;
}

impl<C, Q> Executes<Q> for C
where
    C: Connection,
    Q: RunQueryDsl<C> + ExecuteDsl<C>,
{
    fn run(&mut self, statement: Q) -> QueryResult<usize> {
        statement.execute(self)
    }
}

/// Everything the repository runs, as one capability of a connection type.
pub(crate) trait Statements:
    Connection
    + Loads<tokens_with_selector, TokenRow>
    + Loads<selector_of_verifier, String>
    + Loads<tokens_in, TokenRow>
    + Loads<tokens_named, TokenRow>
    + Loads<all_tokens, TokenRow>
    + Loads<links_of, (String, String)>
    + Loads<links_in, (String, String)>
    + Loads<all_links, (String, String)>
    + Loads<credentials, CredentialRow>
    + Loads<token_count, i64>
    + Loads<any_token, i64>
    + Loads<newest_events, EventRow>
    + Loads<newest_events_of_type, EventRow>
    + Loads<successor_of, Option<String>>
    + Loads<SearchEvents, EventRow>
    + Loads<CountEvents, i64>
    + Loads<catalog_projects, ProjectRow>
    + Loads<catalog_environments, EnvironmentRow>
    + Executes<insert_token>
    + Executes<insert_links>
    + Executes<insert_event>
    + Executes<delete_token>
    + Executes<mark_seen>
    + Executes<set_successor>
    + Executes<prune_projects>
    + Executes<prune_environments>
    + for<'a> Executes<SetExpiry<'a>>
    + for<'a> Executes<UpsertProject<'a>>
    + for<'a> Executes<UpsertEnvironment<'a>>
    + Executes<diesel::query_builder::SqlQuery>
    + Loads<known_endpoints, String>
    + Loads<endpoint_state, (i32, Option<DateTime<Utc>>)>
    + Loads<endpoint_rows, EndpointRow>
    + Loads<expiring_tokens, (String, Option<DateTime<Utc>>)>
    + Loads<notices_of, (String, String, DateTime<Utc>)>
    + Executes<insert_endpoint>
    + Executes<claim_endpoint>
    + Executes<release_endpoint>
    + Executes<advance_endpoint>
    + Executes<endpoint_failed>
    + Executes<insert_notices>
{
}

impl Statements for SqliteConnection {}
impl Statements for PgConnection {}

// ---- reads ------------------------------------------------------------------

/// The columns `TokenRow` reads, in its field order.
#[dsl::auto_type]
fn token_columns() -> _ {
    (
        api_tokens::selector,
        api_tokens::verifier,
        api_tokens::token_name,
        api_tokens::token_type,
        api_tokens::all_projects,
        api_tokens::environment,
        api_tokens::expires_at,
        api_tokens::created_at,
        api_tokens::seen_at,
        api_tokens::revision,
    )
}

#[dsl::auto_type]
fn tokens() -> _ {
    api_tokens::table.select(token_columns())
}

/// Newest first; insertion order breaks ties within a millisecond.
#[dsl::auto_type]
fn newest_tokens_first() -> _ {
    (api_tokens::created_at.desc(), api_tokens::id.desc())
}

#[dsl::auto_type]
pub(crate) fn tokens_with_selector(selector: String) -> _ {
    tokens().filter(api_tokens::selector.eq(selector))
}

/// How a credential that embeds no selector finds its token (`verifier` is
/// unique and indexed).
#[dsl::auto_type]
pub(crate) fn selector_of_verifier(verifier: Vec<u8>) -> _ {
    api_tokens::table
        .filter(api_tokens::verifier.eq(verifier))
        .select(api_tokens::selector)
}

#[dsl::auto_type]
pub(crate) fn tokens_in(selectors: Vec<String>) -> _ {
    tokens().filter(api_tokens::selector.eq_any(selectors))
}

#[dsl::auto_type]
pub(crate) fn tokens_named(name: String) -> _ {
    tokens()
        .filter(api_tokens::token_name.eq(name))
        .order(newest_tokens_first())
}

#[dsl::auto_type]
pub(crate) fn all_tokens() -> _ {
    tokens().order(newest_tokens_first())
}

#[dsl::auto_type]
pub(crate) fn all_links() -> _ {
    api_token_projects::table.select((api_token_projects::selector, api_token_projects::project))
}

#[dsl::auto_type]
pub(crate) fn links_of(selector: String) -> _ {
    all_links().filter(api_token_projects::selector.eq(selector))
}

#[dsl::auto_type]
pub(crate) fn links_in(selectors: Vec<String>) -> _ {
    all_links().filter(api_token_projects::selector.eq_any(selectors))
}

#[dsl::auto_type]
pub(crate) fn credentials() -> _ {
    api_tokens::table.select((
        api_tokens::selector,
        api_tokens::verifier,
        api_tokens::token_name,
        api_tokens::token_type,
        api_tokens::all_projects,
        api_tokens::environment,
        api_tokens::expires_at,
        api_tokens::revision,
    ))
}

#[dsl::auto_type]
pub(crate) fn token_count() -> _ {
    api_tokens::table.count()
}

/// The id of some token, if there is one: whether the table is empty
/// without counting it (a count reads every row, ~tens of ms at 1M).
#[dsl::auto_type]
pub(crate) fn any_token() -> _ {
    api_tokens::table.select(api_tokens::id).limit(1_i64)
}

#[dsl::auto_type]
pub(crate) fn newest_events(limit: i64) -> _ {
    events::table.order(events::id.desc()).limit(limit)
}

#[dsl::auto_type]
pub(crate) fn newest_events_of_type(event_type: String, limit: i64) -> _ {
    events::table
        .filter(events::event_type.eq(event_type))
        .order(events::id.desc())
        .limit(limit)
}

/// The token `selector` was rotated to, if any (one row per stored token).
#[dsl::auto_type]
pub(crate) fn successor_of(selector: String) -> _ {
    api_tokens::table
        .select(api_tokens::successor)
        .filter(api_tokens::selector.eq(selector))
}

#[dsl::auto_type]
pub(crate) fn catalog_projects() -> _ {
    projects::table
        .select((projects::id, projects::name, projects::description))
        .order(projects::id)
}

#[dsl::auto_type]
pub(crate) fn catalog_environments() -> _ {
    environments::table
        .select((
            environments::name,
            environments::kind,
            environments::sort_order,
            environments::enabled,
        ))
        .order((environments::sort_order, environments::name))
}

// ---- writes -----------------------------------------------------------------

#[derive(Insertable)]
#[diesel(table_name = events, treat_none_as_default_value = false)]
pub(crate) struct NewEvent {
    pub event_type: String,
    pub created_by: String,
    pub created_at: At,
    pub data: Option<String>,
    pub pre_data: Option<String>,
    pub selector: String,
    pub format: i32,
    pub token_name: Option<String>,
    pub created_by_token_id: Option<String>,
}

#[dsl::auto_type]
pub(crate) fn insert_token(row: TokenRow) -> _ {
    dsl::insert_into(api_tokens::table).values(row)
}

#[dsl::auto_type]
pub(crate) fn insert_links(rows: Vec<LinkRow>) -> _ {
    dsl::insert_into(api_token_projects::table).values(rows)
}

#[dsl::auto_type]
pub(crate) fn insert_event(row: NewEvent) -> _ {
    dsl::insert_into(events::table).values(row)
}

#[dsl::auto_type]
pub(crate) fn delete_token(selector: String) -> _ {
    dsl::delete(api_tokens::table.filter(api_tokens::selector.eq(selector)))
}

/// Records the token `selector` was rotated to.
#[dsl::auto_type]
pub(crate) fn set_successor(selector: String, successor: String) -> _ {
    dsl::update(api_tokens::table.filter(api_tokens::selector.eq(selector)))
        .set(api_tokens::successor.eq(successor))
}

/// Moves `seen_at` forward to `at`, never back.
#[dsl::auto_type]
pub(crate) fn mark_seen(selector: String, at: At) -> _ {
    dsl::update(
        api_tokens::table
            .filter(api_tokens::selector.eq(selector))
            .filter(api_tokens::seen_at.is_null().or(api_tokens::seen_at.lt(at))),
    )
    .set(api_tokens::seen_at.eq(at))
}

/// Deletes the projects not in `keep` that no token links to.
#[dsl::auto_type]
pub(crate) fn prune_projects(keep: Vec<String>) -> _ {
    dsl::delete(
        projects::table
            .filter(dsl::not(projects::id.eq_any(keep)))
            .filter(dsl::not(projects::id.eq_any(
                api_token_projects::table.select(api_token_projects::project),
            ))),
    )
}

/// Deletes the environments not in `keep` that no token is bound to.
#[dsl::auto_type]
pub(crate) fn prune_environments(keep: Vec<String>) -> _ {
    dsl::delete(
        environments::table
            .filter(dsl::not(environments::name.eq_any(keep)))
            .filter(dsl::not(
                environments::name.nullable().eq_any(
                    api_tokens::table
                        .select(api_tokens::environment)
                        .filter(api_tokens::environment.is_not_null()),
                ),
            )),
    )
}

/// `UPDATE api_tokens SET expires_at = ?, revision = revision + 1
/// WHERE selector = ?`, written out so that the connection keeps it
/// prepared: diesel prepares its `update` builder anew every time, and this
/// is the statement every PUT runs.
pub(crate) struct SetExpiry<'a> {
    pub expires_at: Option<DateTime<Utc>>,
    pub selector: &'a str,
}

impl QueryId for SetExpiry<'_> {
    type QueryId = SetExpiry<'static>;
    const HAS_STATIC_QUERY_ID: bool = true;
}

impl<DB> QueryFragment<DB> for SetExpiry<'_>
where
    DB: Backend + HasSqlType<UtcTime>,
    DateTime<Utc>: ToSql<UtcTime, DB>,
    str: ToSql<Text, DB>,
{
    fn walk_ast<'b>(&'b self, mut out: AstPass<'_, 'b, DB>) -> QueryResult<()> {
        out.push_sql("UPDATE api_tokens SET expires_at = ");
        out.push_bind_param::<Nullable<UtcTime>, _>(&self.expires_at)?;
        out.push_sql(", revision = revision + 1 WHERE selector = ");
        out.push_bind_param::<Text, _>(self.selector)?;
        Ok(())
    }
}

impl<C> RunQueryDsl<C> for SetExpiry<'_> {}

/// Inserts a project or updates the one with its id. (Both backends accept
/// this `ON CONFLICT` clause; `auto_type` cannot name diesel's upsert types.)
pub(crate) struct UpsertProject<'a> {
    pub id: &'a str,
    pub name: &'a str,
    pub description: Option<&'a str>,
    pub created_at: DateTime<Utc>,
}

impl QueryId for UpsertProject<'_> {
    type QueryId = UpsertProject<'static>;
    const HAS_STATIC_QUERY_ID: bool = true;
}

impl<DB> QueryFragment<DB> for UpsertProject<'_>
where
    DB: Backend + HasSqlType<UtcTime>,
    DateTime<Utc>: ToSql<UtcTime, DB>,
    str: ToSql<Text, DB>,
{
    fn walk_ast<'b>(&'b self, mut out: AstPass<'_, 'b, DB>) -> QueryResult<()> {
        out.push_sql("INSERT INTO projects (id, name, description, created_at) VALUES (");
        out.push_bind_param::<Text, _>(self.id)?;
        out.push_sql(", ");
        out.push_bind_param::<Text, _>(self.name)?;
        out.push_sql(", ");
        out.push_bind_param::<Nullable<Text>, _>(&self.description)?;
        out.push_sql(", ");
        out.push_bind_param::<UtcTime, _>(&self.created_at)?;
        out.push_sql(
            ") ON CONFLICT (id) DO UPDATE SET name = excluded.name, \
             description = excluded.description",
        );
        Ok(())
    }
}

impl<C> RunQueryDsl<C> for UpsertProject<'_> {}

/// Inserts an environment or updates the one with its name.
pub(crate) struct UpsertEnvironment<'a> {
    pub name: &'a str,
    pub kind: &'a str,
    pub sort_order: i32,
    pub enabled: bool,
    pub created_at: DateTime<Utc>,
}

impl QueryId for UpsertEnvironment<'_> {
    type QueryId = UpsertEnvironment<'static>;
    const HAS_STATIC_QUERY_ID: bool = true;
}

impl<DB> QueryFragment<DB> for UpsertEnvironment<'_>
where
    DB: Backend + HasSqlType<UtcTime> + HasSqlType<Bool>,
    DateTime<Utc>: ToSql<UtcTime, DB>,
    str: ToSql<Text, DB>,
    i32: ToSql<Integer, DB>,
    bool: ToSql<Bool, DB>,
{
    fn walk_ast<'b>(&'b self, mut out: AstPass<'_, 'b, DB>) -> QueryResult<()> {
        out.push_sql(
            "INSERT INTO environments (name, kind, sort_order, enabled, created_at) VALUES (",
        );
        out.push_bind_param::<Text, _>(self.name)?;
        out.push_sql(", ");
        out.push_bind_param::<Text, _>(self.kind)?;
        out.push_sql(", ");
        out.push_bind_param::<Integer, _>(&self.sort_order)?;
        out.push_sql(", ");
        out.push_bind_param::<Bool, _>(&self.enabled)?;
        out.push_sql(", ");
        out.push_bind_param::<UtcTime, _>(&self.created_at)?;
        out.push_sql(
            ") ON CONFLICT (name) DO UPDATE SET kind = excluded.kind, \
             sort_order = excluded.sort_order, enabled = excluded.enabled",
        );
        Ok(())
    }
}

impl<C> RunQueryDsl<C> for UpsertEnvironment<'_> {}

// ---- search -------------------------------------------------------------------

/// The audit-trail search's filters; each present one narrows the result.
/// Written out as SQL (with bound parameters) so that only the filters given
/// reach the planner, which then picks the index that serves them.
#[derive(Debug, Clone, Default)]
pub(crate) struct EventFilters {
    pub types: Option<Vec<String>>,
    pub created_by: Option<Vec<String>>,
    pub from: Option<DateTime<Utc>>,
    /// Exclusive.
    pub before: Option<DateTime<Utc>>,
    /// A lower-case `LIKE` pattern, `\` escaping.
    pub text: Option<String>,
}

impl EventFilters {
    /// The day range alone, for the id bounds below.
    fn walk_days<'b, DB>(&'b self, out: &mut AstPass<'_, 'b, DB>) -> QueryResult<()>
    where
        DB: Backend + HasSqlType<UtcTime>,
        DateTime<Utc>: ToSql<UtcTime, DB>,
    {
        if let Some(from) = &self.from {
            out.push_sql(" AND created_at >= ");
            out.push_bind_param::<UtcTime, _>(from)?;
        }
        if let Some(before) = &self.before {
            out.push_sql(" AND created_at < ");
            out.push_bind_param::<UtcTime, _>(before)?;
        }
        Ok(())
    }

    /// `FROM events WHERE …`. With `id_bounds`, a day range also bounds
    /// `id` by the smallest and largest id it holds (read from the
    /// `(created_at, id)` index): exact whatever the order of ids and
    /// instants, and it lets a newest-first page walk the primary key from
    /// the range's newest event instead of sorting the whole range.
    fn walk<'b, DB>(&'b self, out: &mut AstPass<'_, 'b, DB>, id_bounds: bool) -> QueryResult<()>
    where
        DB: Backend + HasSqlType<UtcTime>,
        DateTime<Utc>: ToSql<UtcTime, DB>,
        String: ToSql<Text, DB>,
    {
        out.push_sql(" FROM events WHERE 1 = 1");
        if id_bounds && (self.from.is_some() || self.before.is_some()) {
            for (bound, aggregate) in [(" AND id >= ", "MIN"), (" AND id <= ", "MAX")] {
                out.push_sql(bound);
                out.push_sql("(SELECT ");
                out.push_sql(aggregate);
                out.push_sql("(id) FROM events WHERE 1 = 1");
                self.walk_days(out)?;
                out.push_sql(")");
            }
        }
        for (column, values) in [
            ("event_type", &self.types),
            ("created_by", &self.created_by),
        ] {
            let Some(values) = values else { continue };
            out.push_sql(" AND ");
            out.push_sql(column);
            out.push_sql(" IN (");
            for (i, value) in values.iter().enumerate() {
                if i > 0 {
                    out.push_sql(", ");
                }
                out.push_bind_param::<Text, _>(value)?;
            }
            // An empty list matches nothing.
            if values.is_empty() {
                out.push_sql("NULL");
            }
            out.push_sql(")");
        }
        self.walk_days(out)?;
        if let Some(text) = &self.text {
            for (i, column) in ["event_type", "created_by", "token_name"]
                .iter()
                .enumerate()
            {
                out.push_sql(if i == 0 { " AND (LOWER(" } else { " OR LOWER(" });
                out.push_sql(column);
                out.push_sql(") LIKE ");
                out.push_bind_param::<Text, _>(text)?;
                out.push_sql(" ESCAPE '\\'");
            }
            out.push_sql(")");
        }
        Ok(())
    }
}

/// One page of the search, newest first.
pub(crate) struct SearchEvents {
    pub filters: EventFilters,
    pub offset: i64,
    pub limit: i64,
}

/// How many events the search matches in all.
pub(crate) struct CountEvents {
    pub filters: EventFilters,
}

impl QueryId for SearchEvents {
    type QueryId = ();
    // The SQL differs with the filters given: never cache it by type.
    const HAS_STATIC_QUERY_ID: bool = false;
}

impl QueryId for CountEvents {
    type QueryId = ();
    const HAS_STATIC_QUERY_ID: bool = false;
}

impl diesel::query_builder::Query for SearchEvents {
    type SqlType = <events::table as diesel::query_builder::AsQuery>::SqlType;
}

impl diesel::query_builder::Query for CountEvents {
    type SqlType = BigInt;
}

impl<DB> QueryFragment<DB> for SearchEvents
where
    DB: Backend + HasSqlType<UtcTime>,
    DateTime<Utc>: ToSql<UtcTime, DB>,
    String: ToSql<Text, DB>,
    i64: ToSql<BigInt, DB>,
{
    fn walk_ast<'b>(&'b self, mut out: AstPass<'_, 'b, DB>) -> QueryResult<()> {
        out.unsafe_to_cache_prepared();
        out.push_sql(
            "SELECT id, event_type, created_by, created_at, data, pre_data, selector, format, token_name, \
             created_by_token_id, tx",
        );
        self.filters.walk(&mut out, true)?;
        out.push_sql(" ORDER BY id DESC LIMIT ");
        out.push_bind_param::<BigInt, _>(&self.limit)?;
        out.push_sql(" OFFSET ");
        out.push_bind_param::<BigInt, _>(&self.offset)?;
        Ok(())
    }
}

impl<DB> QueryFragment<DB> for CountEvents
where
    DB: Backend + HasSqlType<UtcTime>,
    DateTime<Utc>: ToSql<UtcTime, DB>,
    String: ToSql<Text, DB>,
{
    fn walk_ast<'b>(&'b self, mut out: AstPass<'_, 'b, DB>) -> QueryResult<()> {
        out.unsafe_to_cache_prepared();
        out.push_sql("SELECT COUNT(*)");
        self.filters.walk(&mut out, false)
    }
}

impl<C> RunQueryDsl<C> for SearchEvents {}
impl<C> RunQueryDsl<C> for CountEvents {}

// ---- notifications (lifecycle §4) --------------------------------------------

#[dsl::auto_type]
pub(crate) fn known_endpoints(urls: Vec<String>) -> _ {
    webhook_endpoints::table
        .select(webhook_endpoints::url)
        .filter(webhook_endpoints::url.eq_any(urls))
}

#[dsl::auto_type]
pub(crate) fn insert_endpoint(row: NewEndpoint) -> _ {
    dsl::insert_into(webhook_endpoints::table).values(row)
}

/// Takes the endpoint for `owner` unless another owner's lease is still
/// running at `now`; changes one row when taken.
#[dsl::auto_type]
pub(crate) fn claim_endpoint(url: String, owner: String, now: At, until: At) -> _ {
    let owner_again: String = owner.clone();
    dsl::update(
        webhook_endpoints::table
            .filter(webhook_endpoints::url.eq(url))
            .filter(
                webhook_endpoints::lease_owner
                    .is_null()
                    .or(webhook_endpoints::lease_owner.eq(owner_again))
                    .or(webhook_endpoints::lease_until.is_null())
                    .or(webhook_endpoints::lease_until.lt(now)),
            ),
    )
    .set((
        webhook_endpoints::lease_owner.eq(owner),
        webhook_endpoints::lease_until.eq(until),
    ))
}

#[dsl::auto_type]
pub(crate) fn endpoint_state(url: String) -> _ {
    webhook_endpoints::table
        .select((
            webhook_endpoints::attempts,
            webhook_endpoints::next_attempt_at,
        ))
        .filter(webhook_endpoints::url.eq(url))
}

/// The endpoint `url`, only while `owner` holds it: every change an
/// instance makes to an endpoint is conditional on its lease.
#[dsl::auto_type]
fn held_endpoint(url: String, owner: String) -> _ {
    webhook_endpoints::table
        .filter(webhook_endpoints::url.eq(url))
        .filter(webhook_endpoints::lease_owner.eq(owner))
}

#[dsl::auto_type]
pub(crate) fn release_endpoint(url: String, owner: String) -> _ {
    let none: Option<String> = None;
    let never: Option<At> = None;
    let held: held_endpoint = held_endpoint(url, owner);
    dsl::update(held).set((
        webhook_endpoints::lease_owner.eq(none),
        webhook_endpoints::lease_until.eq(never),
    ))
}

/// Moves the cursor of an endpoint `owner` holds, counting what was sent
/// and given up and clearing the retry state.
#[dsl::auto_type]
pub(crate) fn advance_endpoint(
    url: String,
    owner: String,
    commit: i64,
    id: i64,
    sent: i64,
    given_up: i64,
) -> _ {
    let never: Option<At> = None;
    let held: held_endpoint = held_endpoint(url, owner);
    dsl::update(held).set((
        webhook_endpoints::cursor_tx.eq(commit),
        webhook_endpoints::cursor_id.eq(id),
        webhook_endpoints::attempts.eq(0_i32),
        webhook_endpoints::next_attempt_at.eq(never),
        webhook_endpoints::sent.eq(webhook_endpoints::sent + sent),
        webhook_endpoints::given_up.eq(webhook_endpoints::given_up + given_up),
    ))
}

/// Records a failed attempt (or, with the cursor moved past a given-up
/// event, why it was given up).
#[dsl::auto_type]
pub(crate) fn endpoint_failed(
    url: String,
    owner: String,
    attempts: i32,
    next_attempt_at: Option<At>,
    error: String,
    at: At,
) -> _ {
    let held: held_endpoint = held_endpoint(url, owner);
    dsl::update(held).set((
        webhook_endpoints::attempts.eq(attempts),
        webhook_endpoints::next_attempt_at.eq(next_attempt_at),
        webhook_endpoints::last_error.eq(error),
        webhook_endpoints::last_error_at.eq(at),
    ))
}

#[dsl::auto_type]
pub(crate) fn endpoint_rows(urls: Vec<String>) -> _ {
    webhook_endpoints::table
        .select((
            webhook_endpoints::url,
            webhook_endpoints::cursor_tx,
            webhook_endpoints::cursor_id,
            webhook_endpoints::attempts,
            webhook_endpoints::next_attempt_at,
            webhook_endpoints::last_error,
            webhook_endpoints::last_error_at,
            webhook_endpoints::sent,
            webhook_endpoints::given_up,
            webhook_endpoints::lease_owner,
            webhook_endpoints::lease_until,
        ))
        .filter(webhook_endpoints::url.eq_any(urls))
}

/// Tokens expiring by `horizon` whose expired notice for that expiry is
/// not recorded yet (so tokens long expired and announced are not read
/// again and again).
#[dsl::auto_type]
pub(crate) fn expiring_tokens(horizon: At) -> _ {
    let expired: &'static str = keywarden_domain::EXPIRED_NOTICE;
    api_tokens::table
        .select((api_tokens::selector, api_tokens::expires_at))
        .filter(api_tokens::expires_at.le(horizon))
        .filter(dsl::not(dsl::exists(
            expiry_notices::table
                .filter(expiry_notices::selector.eq(api_tokens::selector))
                .filter(expiry_notices::threshold.eq(expired))
                .filter(
                    expiry_notices::expires_at
                        .nullable()
                        .eq(api_tokens::expires_at),
                ),
        )))
}

#[dsl::auto_type]
pub(crate) fn notices_of(selectors: Vec<String>) -> _ {
    expiry_notices::table
        .select((
            expiry_notices::selector,
            expiry_notices::threshold,
            expiry_notices::expires_at,
        ))
        .filter(expiry_notices::selector.eq_any(selectors))
}

#[dsl::auto_type]
pub(crate) fn insert_notices(rows: Vec<NoticeRow>) -> _ {
    dsl::insert_into(expiry_notices::table).values(rows)
}

/// SQLite's outbox order: one writer assigns ids in commit order.
#[dsl::auto_type]
pub(crate) fn events_after_id(id: i64, limit: i64) -> _ {
    events::table
        .filter(events::id.gt(id))
        .order(events::id)
        .limit(limit)
}

/// PostgreSQL's outbox order: (writing transaction, id), after `(commit,
/// id)` and only for transactions older than `fence` (every transaction
/// still running), which can gain no more rows.
#[dsl::auto_type]
pub(crate) fn events_after_commit(commit: i64, id: i64, fence: i64, limit: i64) -> _ {
    events::table
        .filter(events::tx.ge(commit))
        .filter(events::tx.gt(commit).or(events::id.gt(id)))
        .filter(events::tx.lt(fence))
        .order((events::tx, events::id))
        .limit(limit)
}

/// Per event type after a position, how many (SQLite order).
#[dsl::auto_type]
pub(crate) fn backlog_after_id(id: i64) -> _ {
    events::table
        .filter(events::id.gt(id))
        .group_by(events::event_type)
        .select((events::event_type, dsl::count_star()))
}

/// As `backlog_after_id`, in PostgreSQL's order (no fence: a count).
#[dsl::auto_type]
pub(crate) fn backlog_after_commit(commit: i64, id: i64) -> _ {
    events::table
        .filter(events::tx.ge(commit))
        .filter(events::tx.gt(commit).or(events::id.gt(id)))
        .group_by(events::event_type)
        .select((events::event_type, dsl::count_star()))
}
