//! Rows as diesel reads them, and their conversion into domain types. Field
//! types are plain Rust types, so the same rows serve every backend; a row
//! that breaks a domain rule becomes `RepositoryError::Corrupt`, never a panic.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use diesel::{Insertable, Queryable};
use keywarden_application::{RepositoryError, StoredCredential};
use keywarden_domain::{
    Actor, ApiToken, AuditEvent, Environment, EnvironmentName, EnvironmentScope, EventType,
    Project, ProjectId, Projects, Selector, StoredEvent, TokenName, TokenType, Verifier,
};

use crate::error::corrupt;
use crate::schema::{api_token_projects, api_tokens, expiry_notices, webhook_endpoints, At};
use crate::stored_event;

/// An `api_tokens` row as it is read and written (without its `id`).
#[derive(Debug, Queryable, Insertable)]
#[diesel(table_name = api_tokens, treat_none_as_default_value = false)]
pub(crate) struct TokenRow {
    pub selector: String,
    pub verifier: Vec<u8>,
    pub token_name: String,
    pub token_type: String,
    /// All-projects tokens have no `api_token_projects` rows.
    pub all_projects: bool,
    /// NULL for every environment.
    pub environment: Option<String>,
    pub expires_at: Option<DateTime<Utc>>,
    pub created_at: At,
    pub seen_at: Option<DateTime<Utc>>,
    pub revision: i64,
}

impl TokenRow {
    /// `token` as stored at `revision`.
    pub(crate) fn of(token: &ApiToken, revision: i64) -> Self {
        Self {
            selector: token.selector().to_string(),
            verifier: token.verifier().as_bytes().to_vec(),
            token_name: token.name().as_str().to_string(),
            token_type: token.token_type().as_str().to_string(),
            all_projects: token.projects() == &Projects::All,
            environment: match token.environment() {
                EnvironmentScope::All => None,
                EnvironmentScope::Named(name) => Some(name.as_str().to_string()),
            },
            expires_at: token.expires_at(),
            created_at: At(token.created_at()),
            seen_at: token.seen_at(),
            revision,
        }
    }

    /// `projects` are the row's entries in `api_token_projects`.
    pub(crate) fn into_token(self, projects: &[String]) -> Result<ApiToken, RepositoryError> {
        let id = self.selector.clone();
        let bad = |what: String| corrupt(format!("token {id}: {what}"));
        let selector = Selector::parse(&self.selector).ok_or_else(|| bad("bad selector".into()))?;
        let verifier =
            Verifier::from_slice(&self.verifier).ok_or_else(|| bad("bad verifier".into()))?;
        let name = TokenName::parse(&self.token_name).map_err(|e| bad(e.to_string()))?;
        let token_type = TokenType::parse(&self.token_type).map_err(|e| bad(e.to_string()))?;
        let projects = scope_projects(self.all_projects, projects).map_err(bad)?;
        let environment = scope_environment(self.environment.as_deref()).map_err(bad)?;
        ApiToken::restore(
            selector,
            verifier,
            name,
            token_type,
            projects,
            environment,
            self.expires_at,
            self.created_at.0,
            self.seen_at,
            self.revision,
        )
        .map_err(|e| bad(e.to_string()))
    }
}

/// The columns authentication needs (`StoredCredential`), in that order.
#[derive(Debug, Queryable)]
pub(crate) struct CredentialRow {
    pub selector: String,
    pub verifier: Vec<u8>,
    pub token_name: String,
    pub token_type: String,
    pub all_projects: bool,
    pub environment: Option<String>,
    pub expires_at: Option<DateTime<Utc>>,
    pub revision: i64,
}

impl CredentialRow {
    /// `projects` are the row's entries in `api_token_projects`.
    fn into_credential(self, projects: &[String]) -> Result<StoredCredential, RepositoryError> {
        let bad = |what: &str| corrupt(format!("token {}: {what}", self.selector));
        Ok(StoredCredential {
            selector: Selector::parse(&self.selector).ok_or_else(|| bad("bad selector"))?,
            verifier: Verifier::from_slice(&self.verifier).ok_or_else(|| bad("bad verifier"))?,
            token_type: TokenType::parse(&self.token_type).map_err(|e| bad(&e.to_string()))?,
            projects: scope_projects(self.all_projects, projects).map_err(|e| bad(&e))?,
            environment: scope_environment(self.environment.as_deref()).map_err(|e| bad(&e))?,
            expires_at: self.expires_at,
            revision: self.revision,
            name: self.token_name,
        })
    }
}

/// The `all_projects` column and the project links as the domain's `Projects`.
fn scope_projects(all_projects: bool, links: &[String]) -> Result<Projects, String> {
    if all_projects {
        Ok(Projects::All)
    } else {
        Projects::from_ids(links).map_err(|e| e.to_string())
    }
}

/// The `environment` column (NULL for every environment) as the domain's scope.
fn scope_environment(column: Option<&str>) -> Result<EnvironmentScope, String> {
    match column {
        None => Ok(EnvironmentScope::All),
        Some(name) => EnvironmentName::parse(name)
            .map(EnvironmentScope::Named)
            .map_err(|e| e.to_string()),
    }
}

/// Joins rows with their project links (selector, project): `selector` names
/// a row's token, `build` makes it whole from its project ids.
fn join_links<R, T>(
    rows: Vec<R>,
    links: Vec<(String, String)>,
    selector: impl Fn(&R) -> &str,
    build: impl Fn(R, &[String]) -> Result<T, RepositoryError>,
) -> Result<Vec<T>, RepositoryError> {
    let mut by_selector: HashMap<String, Vec<String>> = HashMap::new();
    for (selector, project) in links {
        by_selector.entry(selector).or_default().push(project);
    }
    rows.into_iter()
        .map(|row| {
            let projects = by_selector.remove(selector(&row)).unwrap_or_default();
            build(row, &projects)
        })
        .collect()
}

/// Joins token rows with their project links (selector, project).
pub(crate) fn assemble(
    rows: Vec<TokenRow>,
    links: Vec<(String, String)>,
) -> Result<Vec<ApiToken>, RepositoryError> {
    join_links(rows, links, |row| &row.selector, TokenRow::into_token)
}

/// Joins credential rows with their project links (selector, project).
pub(crate) fn assemble_credentials(
    rows: Vec<CredentialRow>,
    links: Vec<(String, String)>,
) -> Result<Vec<StoredCredential>, RepositoryError> {
    join_links(
        rows,
        links,
        |row| &row.selector,
        CredentialRow::into_credential,
    )
}

/// An `api_token_projects` row: the token with `selector` reaches `project`.
#[derive(Debug, Insertable)]
#[diesel(table_name = api_token_projects)]
pub(crate) struct LinkRow {
    pub selector: String,
    pub project: String,
}

/// The rows linking a token to its projects (none for all-projects tokens).
pub(crate) fn project_links(token: &ApiToken) -> Vec<LinkRow> {
    match token.projects() {
        Projects::All => Vec::new(),
        Projects::Listed(ids) => ids
            .iter()
            .map(|id| LinkRow {
                selector: token.selector().to_string(),
                project: id.as_str().to_string(),
            })
            .collect(),
    }
}

/// An `events` row, in column order.
#[derive(Debug, Queryable)]
pub(crate) struct EventRow {
    pub id: i64,
    pub event_type: String,
    pub created_by: String,
    pub created_at: DateTime<Utc>,
    pub data: Option<String>,
    pub pre_data: Option<String>,
    pub selector: String,
    pub format: i32,
    /// Read for search only (it is in `data`/`pre_data` as well).
    pub _token_name: Option<String>,
    pub created_by_token_id: Option<String>,
    /// PostgreSQL's writing transaction (`None` on SQLite): see the outbox.
    pub tx: Option<i64>,
}

impl TryFrom<EventRow> for StoredEvent {
    type Error = RepositoryError;

    fn try_from(row: EventRow) -> Result<Self, RepositoryError> {
        let id = row.id;
        let bad = |what: String| corrupt(format!("event {id}: {what}"));
        let event_type = EventType::parse(&row.event_type)
            .ok_or_else(|| bad(format!("unknown type {:?}", row.event_type)))?;
        let subject = Selector::parse(&row.selector)
            .ok_or_else(|| bad(format!("bad selector {:?}", row.selector)))?;
        let created_by_token = match &row.created_by_token_id {
            None => None,
            Some(text) => Some(
                Selector::parse(text).ok_or_else(|| bad(format!("bad acting token {text:?}")))?,
            ),
        };
        let facts = |text: Option<&str>| stored_event::decode(row.format, text);
        let annotations =
            stored_event::decode_annotations(row.format, row.data.as_deref()).map_err(bad)?;
        Ok(StoredEvent {
            id,
            event: AuditEvent::restore(
                subject,
                event_type,
                Actor {
                    name: row.created_by,
                    token: created_by_token,
                },
                row.created_at,
                facts(row.data.as_deref()).map_err(bad)?,
                facts(row.pre_data.as_deref()).map_err(bad)?,
            )
            .rotated_from(annotations.rotated_from)
            .with_threshold(annotations.threshold),
        })
    }
}

#[derive(Debug, Queryable)]
pub(crate) struct ProjectRow {
    pub id: String,
    pub name: String,
    pub description: Option<String>,
}

impl TryFrom<ProjectRow> for Project {
    type Error = RepositoryError;

    fn try_from(row: ProjectRow) -> Result<Self, Self::Error> {
        Ok(Project {
            id: ProjectId::parse(&row.id).map_err(corrupt)?,
            name: row.name,
            description: row.description,
        })
    }
}

#[derive(Debug, Queryable)]
pub(crate) struct EnvironmentRow {
    pub name: String,
    pub kind: String,
    pub sort_order: i32,
    pub enabled: bool,
}

impl TryFrom<EnvironmentRow> for Environment {
    type Error = RepositoryError;

    fn try_from(row: EnvironmentRow) -> Result<Self, Self::Error> {
        Ok(Environment {
            name: EnvironmentName::parse(&row.name).map_err(corrupt)?,
            kind: row.kind,
            sort_order: row.sort_order,
            enabled: row.enabled,
        })
    }
}

/// A new `webhook_endpoints` row: its cursor where the log ends now.
#[derive(Debug, Insertable)]
#[diesel(table_name = webhook_endpoints)]
pub(crate) struct NewEndpoint {
    pub url: String,
    pub cursor_tx: i64,
    pub cursor_id: i64,
    pub registered_at: At,
}

/// A `webhook_endpoints` row as `statements::endpoint_rows` reads it.
#[derive(Debug, Queryable)]
pub(crate) struct EndpointRow {
    pub url: String,
    pub cursor_tx: i64,
    pub cursor_id: i64,
    pub attempts: i32,
    pub next_attempt_at: Option<DateTime<Utc>>,
    pub last_error: Option<String>,
    pub last_error_at: Option<DateTime<Utc>>,
    pub sent: i64,
    pub given_up: i64,
    pub lease_owner: Option<String>,
    pub lease_until: Option<DateTime<Utc>>,
}

/// An `expiry_notices` row.
#[derive(Debug, Insertable)]
#[diesel(table_name = expiry_notices)]
pub(crate) struct NoticeRow {
    pub selector: String,
    pub threshold: String,
    pub expires_at: At,
}
