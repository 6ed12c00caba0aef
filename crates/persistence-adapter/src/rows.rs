//! Rows as diesel reads them, and their conversion into domain types. Field
//! types are plain Rust types, so the same rows serve every backend; a row
//! that breaks a domain rule becomes `RepositoryError::Corrupt`, never a panic.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use diesel::Queryable;
use keywarden_application::{RepositoryError, StoredCredential};
use keywarden_domain::{
    Actor, ApiToken, AuditEvent, Environment, EnvironmentName, EnvironmentScope, EventType,
    Project, ProjectId, Projects, Selector, StoredEvent, TokenName, TokenType, Verifier,
};

use crate::error::corrupt;
use crate::stored_event;

#[derive(Debug, Queryable)]
pub(crate) struct TokenRow {
    pub selector: String,
    pub verifier: Vec<u8>,
    pub token_name: String,
    pub token_type: String,
    pub all_projects: bool,
    pub environment: Option<String>,
    pub expires_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub seen_at: Option<DateTime<Utc>>,
    pub revision: i64,
}

impl TokenRow {
    /// `projects` are the row's entries in `api_token_projects`.
    pub(crate) fn into_token(self, projects: &[String]) -> Result<ApiToken, RepositoryError> {
        let id = self.selector.clone();
        let bad = |what: String| corrupt(format!("token {id}: {what}"));
        let selector = Selector::parse(&self.selector).ok_or_else(|| bad("bad selector".into()))?;
        let verifier =
            Verifier::from_slice(&self.verifier).ok_or_else(|| bad("bad verifier".into()))?;
        let name = TokenName::parse(&self.token_name).map_err(|e| bad(e.to_string()))?;
        let token_type = TokenType::parse(&self.token_type).map_err(|e| bad(e.to_string()))?;
        let projects = if self.all_projects {
            Projects::All
        } else {
            Projects::from_ids(projects).map_err(|e| bad(e.to_string()))?
        };
        let environment = match self.environment {
            None => EnvironmentScope::All,
            Some(name) => EnvironmentScope::Named(
                EnvironmentName::parse(&name).map_err(|e| bad(e.to_string()))?,
            ),
        };
        ApiToken::restore(
            selector,
            verifier,
            name,
            token_type,
            projects,
            environment,
            self.expires_at,
            self.created_at,
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
    pub expires_at: Option<DateTime<Utc>>,
    pub revision: i64,
}

impl TryFrom<CredentialRow> for StoredCredential {
    type Error = RepositoryError;

    fn try_from(row: CredentialRow) -> Result<Self, RepositoryError> {
        let bad = |what: &str| corrupt(format!("token {}: {what}", row.selector));
        Ok(Self {
            selector: Selector::parse(&row.selector).ok_or_else(|| bad("bad selector"))?,
            verifier: Verifier::from_slice(&row.verifier).ok_or_else(|| bad("bad verifier"))?,
            token_type: TokenType::parse(&row.token_type).map_err(|e| bad(&e.to_string()))?,
            expires_at: row.expires_at,
            revision: row.revision,
            name: row.token_name,
        })
    }
}

/// Joins token rows with their project links (selector, project).
pub(crate) fn assemble(
    rows: Vec<TokenRow>,
    links: Vec<(String, String)>,
) -> Result<Vec<ApiToken>, RepositoryError> {
    let mut by_selector: HashMap<String, Vec<String>> = HashMap::new();
    for (selector, project) in links {
        by_selector.entry(selector).or_default().push(project);
    }
    rows.into_iter()
        .map(|row| {
            let projects = by_selector.remove(&row.selector).unwrap_or_default();
            row.into_token(&projects)
        })
        .collect()
}

/// The project ids to link a token to (none for all-projects tokens).
pub(crate) fn project_links(token: &ApiToken) -> Vec<(String, String)> {
    match token.projects() {
        Projects::All => Vec::new(),
        Projects::Listed(ids) => ids
            .iter()
            .map(|id| (token.selector().to_string(), id.as_str().to_string()))
            .collect(),
    }
}

/// The `environment` column: NULL for every environment.
pub(crate) fn environment_column(token: &ApiToken) -> Option<String> {
    match token.environment() {
        EnvironmentScope::All => None,
        EnvironmentScope::Named(name) => Some(name.as_str().to_string()),
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
    pub created_by_token_id: Option<String>,
}

impl EventRow {
    pub(crate) fn into_event(self) -> Result<StoredEvent, RepositoryError> {
        let id = self.id;
        let bad = |what: String| corrupt(format!("event {id}: {what}"));
        let event_type = EventType::parse(&self.event_type)
            .ok_or_else(|| bad(format!("unknown type {:?}", self.event_type)))?;
        let subject = Selector::parse(&self.selector)
            .ok_or_else(|| bad(format!("bad selector {:?}", self.selector)))?;
        let created_by_token = match &self.created_by_token_id {
            None => None,
            Some(text) => Some(
                Selector::parse(text).ok_or_else(|| bad(format!("bad acting token {text:?}")))?,
            ),
        };
        let facts = |text: Option<String>| stored_event::decode(self.format, text.as_deref());
        Ok(StoredEvent {
            id,
            event: AuditEvent::restore(
                subject,
                event_type,
                Actor {
                    name: self.created_by,
                    token: created_by_token,
                },
                self.created_at,
                facts(self.data).map_err(bad)?,
                facts(self.pre_data).map_err(bad)?,
            ),
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
