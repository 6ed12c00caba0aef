//! The queries behind `ApiTokenRepository`, written once for every diesel
//! backend. The backends differ in their `table!` schemas (timestamp types),
//! their connection types and how a write transaction serialises with others,
//! none of which a generic function can abstract over without drowning in
//! trait bounds; so `sql_repository!` stamps the same bodies out per backend.
//!
//! A backend passes, after its schema, `locking = <method>` when rows read
//! for a change must be locked until commit (`for_update` on PostgreSQL),
//! and supplies, as associated functions of its repository type:
//! - `read_transaction(conn, work)`: runs `work` so that all its statements
//!   see one snapshot;
//! - `write_transaction(conn, work)`: runs `work` in a transaction that other
//!   writers of the same token cannot interleave with;
//! - `writer(&self)`: where the database admits one writer at a time, the
//!   `Writer` every write goes through (it runs `write_transaction` once per
//!   batch of writes, each write in a savepoint); `None` where writers run
//!   concurrently, each write then being a `write_transaction` of its own;
//! - `lock_token_count(conn)`: called before counting tokens to insert more;
//! - `announce(conn, selector)`: tells other instances the token changed,
//!   effective at commit.

macro_rules! sql_repository {
    ($repository:ident, $connection:ty, $schema:path $(, locking = $locking:ident)?) => {
        mod queries {
            use async_trait::async_trait;
            use chrono::{DateTime, Utc};
            use diesel::prelude::*;
            use keywarden_application::{
                ApiTokenRepository, ExpiryChange, RepositoryError, StoredCredential,
            };
            use keywarden_domain::{
                truncate_to_millis, ApiToken, AuditEvent, Environment, EventType, Project, Projects,
                Selector, StoredEvent, TokenRef,
            };

            use super::$repository as Repository;
            use $crate::error::{pool_unavailable, TxError};
            use $crate::rows::{
                assemble, environment_column, project_links, CredentialRow, EnvironmentRow,
                EventRow, ProjectRow, TokenRow,
            };
            use $crate::stored_event;
            use $schema::{api_token_projects, api_tokens, environments, events, projects};

            type Conn = $connection;

            /// Bound parameters per statement stay well below every backend's cap.
            const IN_CHUNK: usize = 500;

            /// The columns `TokenRow` reads, in its field order.
            macro_rules! token_columns {
                () => {
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
                };
            }

            impl Repository {
                /// Runs `work` on a pooled connection, on the blocking pool.
                async fn with_connection<T, F>(&self, work: F) -> Result<T, RepositoryError>
                where
                    T: Send + 'static,
                    F: FnOnce(&mut Conn) -> Result<T, TxError> + Send + 'static,
                {
                    let pool = self.pool.clone();
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
                            Err(RepositoryError::Internal(cause))
                                if diesel::r2d2::R2D2Connection::is_broken(&mut *conn) =>
                            {
                                Err(RepositoryError::Unavailable(cause))
                            }
                            outcome => outcome,
                        }
                    })
                    .await
                    .map_err(|e| RepositoryError::Internal(Box::new(e)))?
                }

                /// Several statements that must see one state.
                async fn read<T, F>(&self, work: F) -> Result<T, RepositoryError>
                where
                    T: Send + 'static,
                    F: FnOnce(&mut Conn) -> Result<T, TxError> + Send + 'static,
                {
                    self.with_connection(|conn| Repository::read_transaction(conn, work))
                        .await
                }

                async fn write<T, F>(&self, work: F) -> Result<T, RepositoryError>
                where
                    T: Send + 'static,
                    F: FnOnce(&mut Conn) -> Result<T, TxError> + Send + 'static,
                {
                    match self.writer() {
                        Some(writer) => writer.write(work).await,
                        None => {
                            self.with_connection(|conn| Repository::write_transaction(conn, work))
                                .await
                        }
                    }
                }
            }

            fn links_of(
                conn: &mut Conn,
                selectors: &[String],
            ) -> Result<Vec<(String, String)>, TxError> {
                let mut links = Vec::new();
                let columns = (api_token_projects::selector, api_token_projects::project);
                for chunk in selectors.chunks(IN_CHUNK) {
                    // `IN (…)` is prepared anew for every length; the usual single
                    // token gets a statement the connection can keep.
                    links.extend(match chunk {
                        [one] => api_token_projects::table
                            .select(columns)
                            .filter(api_token_projects::selector.eq(one))
                            .load::<(String, String)>(conn)?,
                        many => api_token_projects::table
                            .select(columns)
                            .filter(api_token_projects::selector.eq_any(many))
                            .load::<(String, String)>(conn)?,
                    });
                }
                Ok(links)
            }

            fn load_tokens(conn: &mut Conn, rows: Vec<TokenRow>) -> Result<Vec<ApiToken>, TxError> {
                // All-projects tokens have no links: ask only about the others.
                let selectors: Vec<String> = rows
                    .iter()
                    .filter(|row| !row.all_projects)
                    .map(|row| row.selector.clone())
                    .collect();
                let links = links_of(conn, &selectors)?;
                Ok(assemble(rows, links)?)
            }

            /// Reads the token `target` refers to, if it exists and a given
            /// credential matches, locking it until commit where the backend
            /// runs writers concurrently: concurrent changes to one token then
            /// apply one after the other, each seeing the previous one's result.
            fn resolve_for_change(
                conn: &mut Conn,
                target: TokenRef,
            ) -> Result<Option<ApiToken>, TxError> {
                let rows = api_tokens::table
                    .select(token_columns!())
                    .filter(api_tokens::selector.eq(target.selector().to_string()))
                    $(.$locking())?
                    .load::<TokenRow>(conn)?;
                Ok(load_tokens(conn, rows)?
                    .pop()
                    .filter(|token| target.matches(token.verifier())))
            }

            fn insert_token(conn: &mut Conn, token: &ApiToken) -> Result<ApiToken, TxError> {
                let revision = 1;
                diesel::insert_into(api_tokens::table)
                    .values((
                        api_tokens::selector.eq(token.selector().to_string()),
                        api_tokens::verifier.eq(token.verifier().as_bytes().to_vec()),
                        api_tokens::token_name.eq(token.name().as_str()),
                        api_tokens::token_type.eq(token.token_type().as_str()),
                        api_tokens::all_projects.eq(token.projects() == &Projects::All),
                        api_tokens::environment.eq(environment_column(token)),
                        api_tokens::expires_at.eq(token.expires_at()),
                        api_tokens::created_at.eq(token.created_at()),
                        api_tokens::seen_at.eq(token.seen_at()),
                        api_tokens::revision.eq(revision),
                    ))
                    .execute(conn)?;
                let links: Vec<_> = project_links(token)
                    .into_iter()
                    .map(|(selector, project)| {
                        (
                            api_token_projects::selector.eq(selector),
                            api_token_projects::project.eq(project),
                        )
                    })
                    .collect();
                if !links.is_empty() {
                    diesel::insert_into(api_token_projects::table)
                        .values(links)
                        .execute(conn)?;
                }
                Repository::announce(conn, &token.selector().to_string())?;
                Ok(token.clone().with_revision(revision))
            }

            /// `UPDATE api_tokens SET expires_at = ?, revision = revision + 1
            /// WHERE selector = ?`, written out so that the connection keeps it
            /// prepared: diesel prepares its `update` builder anew every time,
            /// and this is the statement every PUT runs.
            struct SetExpiry {
                expires_at: Option<DateTime<Utc>>,
                selector: String,
            }

            impl diesel::query_builder::QueryId for SetExpiry {
                type QueryId = SetExpiry;
                const HAS_STATIC_QUERY_ID: bool = true;
            }

            type Backend = <Conn as diesel::Connection>::Backend;

            impl diesel::query_builder::QueryFragment<Backend> for SetExpiry {
                fn walk_ast<'b>(
                    &'b self,
                    mut out: diesel::query_builder::AstPass<'_, 'b, Backend>,
                ) -> QueryResult<()> {
                    out.push_sql("UPDATE api_tokens SET expires_at = ");
                    out.push_bind_param::<<api_tokens::expires_at as Expression>::SqlType, _>(
                        &self.expires_at,
                    )?;
                    out.push_sql(", revision = revision + 1 WHERE selector = ");
                    out.push_bind_param::<diesel::sql_types::Text, _>(&self.selector)?;
                    Ok(())
                }
            }

            impl RunQueryDsl<Conn> for SetExpiry {}

            fn insert_event(conn: &mut Conn, event: &AuditEvent) -> Result<(), TxError> {
                diesel::insert_into(events::table)
                    .values((
                        events::event_type.eq(event.event_type.as_str()),
                        events::created_by.eq(&event.created_by),
                        events::created_at.eq(event.created_at),
                        events::data.eq(stored_event::encode(event.data.as_ref())?),
                        events::pre_data.eq(stored_event::encode(event.pre_data.as_ref())?),
                        events::selector.eq(event.subject().to_string()),
                        events::format.eq(stored_event::CURRENT_FORMAT),
                    ))
                    .execute(conn)?;
                Ok(())
            }

            fn token_count(conn: &mut Conn) -> Result<i64, TxError> {
                Repository::lock_token_count(conn)?;
                Ok(api_tokens::table.count().get_result(conn)?)
            }

            #[async_trait]
            impl ApiTokenRepository for Repository {
                async fn sync_catalog(
                    &self,
                    declared_projects: Vec<Project>,
                    declared_environments: Vec<Environment>,
                    prune: bool,
                ) -> Result<(), RepositoryError> {
                    let now = truncate_to_millis(Utc::now());
                    self.write(move |conn| {
                        for project in &declared_projects {
                            diesel::insert_into(projects::table)
                                .values((
                                    projects::id.eq(project.id.as_str()),
                                    projects::name.eq(&project.name),
                                    projects::description.eq(&project.description),
                                    projects::created_at.eq(now),
                                ))
                                .on_conflict(projects::id)
                                .do_update()
                                .set((
                                    projects::name.eq(&project.name),
                                    projects::description.eq(&project.description),
                                ))
                                .execute(conn)?;
                        }
                        for environment in &declared_environments {
                            diesel::insert_into(environments::table)
                                .values((
                                    environments::name.eq(environment.name.as_str()),
                                    environments::kind.eq(&environment.kind),
                                    environments::sort_order.eq(environment.sort_order),
                                    environments::enabled.eq(environment.enabled),
                                    environments::created_at.eq(now),
                                ))
                                .on_conflict(environments::name)
                                .do_update()
                                .set((
                                    environments::kind.eq(&environment.kind),
                                    environments::sort_order.eq(environment.sort_order),
                                    environments::enabled.eq(environment.enabled),
                                ))
                                .execute(conn)?;
                        }
                        // Referenced entries stay: tokens' foreign keys need them.
                        if prune {
                            let ids: Vec<&str> =
                                declared_projects.iter().map(|p| p.id.as_str()).collect();
                            diesel::delete(
                                projects::table
                                    .filter(diesel::dsl::not(projects::id.eq_any(&ids)))
                                    .filter(diesel::dsl::not(projects::id.eq_any(
                                        api_token_projects::table.select(api_token_projects::project),
                                    ))),
                            )
                            .execute(conn)?;

                            let names: Vec<&str> = declared_environments
                                .iter()
                                .map(|e| e.name.as_str())
                                .collect();
                            diesel::delete(
                                environments::table
                                    .filter(diesel::dsl::not(environments::name.eq_any(&names)))
                                    .filter(diesel::dsl::not(
                                        environments::name.nullable().eq_any(
                                            api_tokens::table
                                                .select(api_tokens::environment)
                                                .filter(api_tokens::environment.is_not_null()),
                                        ),
                                    )),
                            )
                            .execute(conn)?;
                        }
                        Ok(())
                    })
                    .await
                }

                async fn list(&self) -> Result<Vec<ApiToken>, RepositoryError> {
                    self.read(|conn| {
                        let rows = api_tokens::table
                            .select(token_columns!())
                            .order((api_tokens::created_at.desc(), api_tokens::id.desc()))
                            .load::<TokenRow>(conn)?;
                        let links = api_token_projects::table
                            .select((api_token_projects::selector, api_token_projects::project))
                            .load::<(String, String)>(conn)?;
                        Ok(assemble(rows, links)?)
                    })
                    .await
                }

                async fn credentials(&self) -> Result<Vec<StoredCredential>, RepositoryError> {
                    self.with_connection(|conn| {
                        let rows = api_tokens::table
                            .select((
                                api_tokens::selector,
                                api_tokens::verifier,
                                api_tokens::token_name,
                                api_tokens::token_type,
                                api_tokens::expires_at,
                                api_tokens::revision,
                            ))
                            .load::<CredentialRow>(conn)?;
                        Ok(rows
                            .into_iter()
                            .map(StoredCredential::try_from)
                            .collect::<Result<_, _>>()?)
                    })
                    .await
                }

                async fn find_by_name(&self, name: &str) -> Result<Vec<ApiToken>, RepositoryError> {
                    let name = name.to_string();
                    self.read(move |conn| {
                        let rows = api_tokens::table
                            .select(token_columns!())
                            .filter(api_tokens::token_name.eq(name))
                            .order((api_tokens::created_at.desc(), api_tokens::id.desc()))
                            .load::<TokenRow>(conn)?;
                        load_tokens(conn, rows)
                    })
                    .await
                }

                async fn find_many(
                    &self,
                    selectors: Vec<Selector>,
                ) -> Result<Vec<ApiToken>, RepositoryError> {
                    let selectors: Vec<String> = selectors.iter().map(Selector::to_string).collect();
                    self.read(move |conn| {
                        let mut rows = Vec::new();
                        for chunk in selectors.chunks(IN_CHUNK) {
                            rows.extend(
                                api_tokens::table
                                    .select(token_columns!())
                                    .filter(api_tokens::selector.eq_any(chunk))
                                    .load::<TokenRow>(conn)?,
                            );
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
                    self.write(move |conn| {
                        if token_count(conn)? >= i64::from(limit) {
                            return Err(RepositoryError::LimitExceeded(limit).into());
                        }
                        let stored = insert_token(conn, &token)?;
                        insert_event(conn, &event)?;
                        Ok(stored)
                    })
                    .await
                }

                async fn insert_initial(
                    &self,
                    tokens: Vec<ApiToken>,
                    actor: &str,
                    at: DateTime<Utc>,
                ) -> Result<bool, RepositoryError> {
                    let actor = actor.to_string();
                    self.write(move |conn| {
                        if token_count(conn)? > 0 {
                            return Ok(false);
                        }
                        for token in &tokens {
                            let stored = insert_token(conn, token)?;
                            insert_event(conn, &AuditEvent::token_created(&stored, &actor, at))?;
                        }
                        Ok(true)
                    })
                    .await
                }

                async fn update_expiry(
                    &self,
                    target: TokenRef,
                    expires_at: DateTime<Utc>,
                    actor: &str,
                    at: DateTime<Utc>,
                ) -> Result<Option<ExpiryChange>, RepositoryError> {
                    let actor = actor.to_string();
                    self.write(move |conn| {
                        let Some(before) = resolve_for_change(conn, target)? else {
                            return Ok(None);
                        };
                        let selector = before.selector().to_string();
                        let after = before.with_expiry(expires_at);
                        let changed = SetExpiry {
                            expires_at: after.expires_at(),
                            selector: selector.clone(),
                        }
                        .execute(conn)?;
                        if changed != 1 {
                            return Err(RepositoryError::Internal(
                                format!("the expiry update changed {changed} rows").into(),
                            )
                            .into());
                        }
                        // The row is ours until commit (locked, or the only writer).
                        let after = after.with_revision(before.revision() + 1);
                        insert_event(
                            conn,
                            &AuditEvent::token_updated(&before, &after, &actor, at),
                        )?;
                        Repository::announce(conn, &selector)?;
                        Ok(Some(ExpiryChange { before, after }))
                    })
                    .await
                }

                async fn delete(
                    &self,
                    target: TokenRef,
                    actor: &str,
                    at: DateTime<Utc>,
                ) -> Result<Option<ApiToken>, RepositoryError> {
                    let actor = actor.to_string();
                    self.write(move |conn| {
                        let Some(before) = resolve_for_change(conn, target)? else {
                            return Ok(None);
                        };
                        let selector = before.selector().to_string();
                        diesel::delete(
                            api_tokens::table.filter(api_tokens::selector.eq(&selector)),
                        )
                        .execute(conn)?;
                        insert_event(conn, &AuditEvent::token_deleted(&before, &actor, at))?;
                        Repository::announce(conn, &selector)?;
                        Ok(Some(before))
                    })
                    .await
                }

                async fn record_seen(
                    &self,
                    seen: Vec<(Selector, DateTime<Utc>)>,
                ) -> Result<(), RepositoryError> {
                    let mut seen = seen;
                    // One order for every writer, so two instances flushing
                    // overlapping batches cannot deadlock on row locks.
                    seen.sort_unstable_by_key(|(selector, _)| *selector);
                    self.write(move |conn| {
                        for (selector, at) in seen {
                            let at = truncate_to_millis(at);
                            diesel::update(
                                api_tokens::table
                                    .filter(api_tokens::selector.eq(selector.to_string()))
                                    .filter(
                                        api_tokens::seen_at
                                            .is_null()
                                            .or(api_tokens::seen_at.lt(at)),
                                    ),
                            )
                            .set(api_tokens::seen_at.eq(at))
                            .execute(conn)?;
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
                    self.with_connection(move |conn| {
                        let mut query = events::table
                            .order(events::id.desc())
                            .limit(i64::from(limit))
                            .into_boxed();
                        if let Some(event_type) = event_type {
                            query = query.filter(events::event_type.eq(event_type.as_str()));
                        }
                        let rows = query.load::<EventRow>(conn)?;
                        Ok(rows
                            .into_iter()
                            .map(EventRow::into_event)
                            .collect::<Result<_, _>>()?)
                    })
                    .await
                }

                async fn projects(&self) -> Result<Vec<Project>, RepositoryError> {
                    self.with_connection(|conn| {
                        let rows = projects::table
                            .select((projects::id, projects::name, projects::description))
                            .order(projects::id)
                            .load::<ProjectRow>(conn)?;
                        Ok(rows
                            .into_iter()
                            .map(Project::try_from)
                            .collect::<Result<_, _>>()?)
                    })
                    .await
                }

                async fn environments(&self) -> Result<Vec<Environment>, RepositoryError> {
                    self.with_connection(|conn| {
                        let rows = environments::table
                            .select((
                                environments::name,
                                environments::kind,
                                environments::sort_order,
                                environments::enabled,
                            ))
                            .order((environments::sort_order, environments::name))
                            .load::<EnvironmentRow>(conn)?;
                        Ok(rows
                            .into_iter()
                            .map(Environment::try_from)
                            .collect::<Result<_, _>>()?)
                    })
                    .await
                }

                async fn ping(&self) -> Result<(), RepositoryError> {
                    self.with_connection(|conn| {
                        diesel::sql_query("SELECT 1").execute(conn)?;
                        Ok(())
                    })
                    .await
                }
            }
        }
    };
}

pub(crate) use sql_repository;
