//! Request and response bodies in the contract's camelCase. Requests are
//! checked field by field from parsed JSON so each error names its field
//! (`/body/expiresAt`) and unknown fields are ignored.

use chrono::{DateTime, Utc};
use keywarden_application::CreateToken;
use keywarden_domain::{
    format_millis, parse_offset_date_time, ApiToken, Credential, Environment, Project, StoredEvent,
    TokenFacts,
};
use serde::Serialize;
use serde_json::{Map, Value};
use utoipa::ToSchema;

use crate::error::ApiError;

const DATE_TIME_HINT: &str =
    "must be a date-time with a UTC offset, such as 2030-01-01T00:00:00Z or 2030-01-01T02:00:00+02:00";

fn object(body: Value) -> Result<Map<String, Value>, ApiError> {
    match body {
        Value::Object(map) => Ok(map),
        _ => Err(ApiError::bad_data(
            "/body",
            "The request body must be a JSON object.",
        )),
    }
}

fn date_time(value: &Value, field: &str) -> Result<DateTime<Utc>, ApiError> {
    let path = format!("/body/{field}");
    match value {
        Value::String(text) => parse_offset_date_time(text).ok_or_else(|| {
            ApiError::bad_data(&path, format!("{field} {DATE_TIME_HINT}; got {text:?}."))
        }),
        _ => Err(ApiError::bad_data(
            &path,
            format!("{field} {DATE_TIME_HINT}."),
        )),
    }
}

/// `PUT /api/admin/api-tokens/:token` → the new expiry.
pub(crate) fn update_expiry(body: Value) -> Result<DateTime<Utc>, ApiError> {
    let body = object(body)?;
    match body.get("expiresAt") {
        None | Some(Value::Null) => Err(ApiError::bad_data(
            "/body/expiresAt",
            "expiresAt is required: send {\"expiresAt\": \"2030-01-01T00:00:00Z\"}.",
        )),
        Some(value) => date_time(value, "expiresAt"),
    }
}

fn optional_string(body: &Map<String, Value>, field: &str) -> Result<Option<String>, ApiError> {
    match body.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(text)) => Ok(Some(text.clone())),
        Some(_) => Err(ApiError::bad_data(
            &format!("/body/{field}"),
            format!("{field} must be a string."),
        )),
    }
}

fn required_string(body: &Map<String, Value>, field: &str) -> Result<String, ApiError> {
    optional_string(body, field)?.ok_or_else(|| {
        ApiError::bad_data(&format!("/body/{field}"), format!("{field} is required."))
    })
}

/// `POST /api/admin/api-tokens` → the create request, types checked; the
/// rules (known environment, …) are the application's.
pub(crate) fn create_token(body: Value) -> Result<CreateToken, ApiError> {
    let body = object(body)?;
    // `username` is the older name Unleash still accepts for `tokenName`.
    let token_name = match optional_string(&body, "tokenName")? {
        Some(name) => name,
        None => optional_string(&body, "username")?
            .ok_or_else(|| ApiError::bad_data("/body/tokenName", "tokenName is required."))?,
    };
    let projects = match body.get("projects") {
        None | Some(Value::Null) => None,
        Some(Value::Array(items)) => Some(
            items
                .iter()
                .map(|item| match item {
                    Value::String(id) => Ok(id.clone()),
                    _ => Err(ApiError::bad_data(
                        "/body/projects",
                        "projects must be an array of project ids.",
                    )),
                })
                .collect::<Result<Vec<_>, _>>()?,
        ),
        Some(_) => {
            return Err(ApiError::bad_data(
                "/body/projects",
                "projects must be an array of project ids.",
            ))
        }
    };
    let expires_at = match body.get("expiresAt") {
        None | Some(Value::Null) => None,
        Some(value) => Some(date_time(value, "expiresAt")?),
    };
    Ok(CreateToken {
        token_name,
        token_type: required_string(&body, "type")?,
        environment: optional_string(&body, "environment")?,
        projects,
        project: optional_string(&body, "project")?,
        expires_at,
    })
}

/// A token as the contract shows it on reads, in events and (with the whole
/// credential as `secret`) once on creation. Otherwise `secret` carries the
/// selector, never the credential.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct TokenBody {
    secret: String,
    token_name: String,
    #[serde(rename = "type")]
    token_type: &'static str,
    project: String,
    projects: Vec<String>,
    environment: String,
    expires_at: Option<String>,
    created_at: String,
    seen_at: Option<String>,
    /// Always null (kept for Unleash's shape).
    alias: Option<String>,
    /// Always true.
    secure: bool,
}

impl From<&TokenFacts> for TokenBody {
    /// The one mapping from a token to its JSON: reads, events and creation
    /// all go through it.
    fn from(facts: &TokenFacts) -> Self {
        Self {
            secret: facts.selector.to_string(),
            token_name: facts.name.as_str().to_string(),
            token_type: facts.token_type.as_str(),
            project: facts.projects.joined(),
            projects: facts.projects.ids(),
            environment: facts.environment.as_str().to_string(),
            expires_at: facts.expires_at.as_ref().map(format_millis),
            created_at: format_millis(&facts.created_at),
            seen_at: facts.seen_at.as_ref().map(format_millis),
            alias: None,
            secure: true,
        }
    }
}

impl From<&ApiToken> for TokenBody {
    fn from(token: &ApiToken) -> Self {
        Self::from(&token.facts())
    }
}

#[derive(Serialize)]
pub(crate) struct TokenList {
    pub tokens: Vec<TokenBody>,
}

impl TokenList {
    pub(crate) fn of(tokens: &[ApiToken]) -> Self {
        Self {
            tokens: tokens.iter().map(TokenBody::from).collect(),
        }
    }
}

/// The one response that carries the whole credential.
pub(crate) fn created(token: &ApiToken, credential: &Credential) -> TokenBody {
    TokenBody {
        secret: credential.expose_secret().to_string(),
        ..TokenBody::from(token)
    }
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct EventBody {
    id: i64,
    /// `api-token-created`, `api-token-updated` or `api-token-deleted`.
    #[serde(rename = "type")]
    event_type: &'static str,
    /// The acting token's name, `cli` or `system`.
    created_by: String,
    #[schema(format = DateTime)]
    created_at: String,
    /// The token after the change.
    #[schema(value_type = Option<crate::openapi::ApiTokenSchema>)]
    data: Option<TokenBody>,
    /// The token before the change.
    #[schema(value_type = Option<crate::openapi::ApiTokenSchema>)]
    pre_data: Option<TokenBody>,
    /// Always empty.
    tags: Vec<String>,
    /// Always null (kept for Unleash's shape).
    feature_name: Option<String>,
    /// Always null.
    project: Option<String>,
    /// Always null.
    environment: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub(crate) struct EventList {
    version: u8,
    events: Vec<EventBody>,
}

impl EventList {
    pub(crate) fn of(events: Vec<StoredEvent>) -> Self {
        Self {
            version: 1,
            events: events
                .into_iter()
                .map(|stored| EventBody {
                    id: stored.id,
                    event_type: stored.event.event_type.as_str(),
                    created_by: stored.event.created_by,
                    created_at: format_millis(&stored.event.created_at),
                    data: stored.event.data.as_ref().map(TokenBody::from),
                    pre_data: stored.event.pre_data.as_ref().map(TokenBody::from),
                    tags: Vec::new(),
                    feature_name: None,
                    project: None,
                    environment: None,
                })
                .collect(),
        }
    }
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct ProjectBody {
    id: String,
    name: String,
    description: Option<String>,
    health: u8,
    feature_count: u32,
    member_count: u32,
    mode: &'static str,
    default_stickiness: &'static str,
    favorite: bool,
}

#[derive(Serialize, ToSchema)]
pub(crate) struct ProjectList {
    version: u8,
    projects: Vec<ProjectBody>,
}

impl ProjectList {
    pub(crate) fn of(projects: Vec<Project>) -> Self {
        Self {
            version: 1,
            projects: projects
                .into_iter()
                .map(|project| ProjectBody {
                    id: project.id.as_str().to_string(),
                    name: project.name,
                    description: project.description,
                    health: 100,
                    feature_count: 0,
                    member_count: 0,
                    mode: "open",
                    default_stickiness: "default",
                    favorite: false,
                })
                .collect(),
        }
    }
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct EnvironmentBody {
    name: String,
    #[serde(rename = "type")]
    kind: String,
    enabled: bool,
    protected: bool,
    sort_order: i32,
}

#[derive(Serialize, ToSchema)]
pub(crate) struct EnvironmentList {
    version: u8,
    environments: Vec<EnvironmentBody>,
}

impl EnvironmentList {
    pub(crate) fn of(environments: Vec<Environment>) -> Self {
        Self {
            version: 1,
            environments: environments
                .into_iter()
                .map(|environment| EnvironmentBody {
                    name: environment.name.as_str().to_string(),
                    kind: environment.kind,
                    enabled: environment.enabled,
                    protected: false,
                    sort_order: environment.sort_order,
                })
                .collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn path_of(error: ApiError) -> String {
        let response = actix_web::ResponseError::error_response(&error);
        assert_eq!(response.status(), 400);
        format!("{error:?}")
    }

    #[test]
    fn update_expiry_bodies() {
        assert_eq!(
            format_millis(
                &update_expiry(json!({"expiresAt": "2030-01-01T02:00:00.1234+02:00", "x": 1}))
                    .unwrap()
            ),
            "2030-01-01T00:00:00.123Z"
        );
        for (body, path) in [
            (json!({}), "/body/expiresAt"),
            (json!({"expiresAt": null}), "/body/expiresAt"),
            (json!({"expiresAt": 1893456000}), "/body/expiresAt"),
            (json!({"expiresAt": "banana"}), "/body/expiresAt"),
            (json!({"expiresAt": "2030-01-01"}), "/body/expiresAt"),
            (
                json!({"expiresAt": "2030-01-01T00:00:00"}),
                "/body/expiresAt",
            ),
            (json!([]), "/body\""),
            (json!("2030-01-01T00:00:00Z"), "/body\""),
            (json!(null), "/body\""),
        ] {
            let debug = path_of(update_expiry(body.clone()).unwrap_err());
            assert!(debug.contains(path), "{body}: {debug}");
        }
    }

    #[test]
    fn create_bodies() {
        let request = create_token(json!({
            "username": "legacy-name", "type": "client", "projects": ["a", "b"],
            "expiresAt": "2030-01-01T00:00:00Z", "secret": "*:*.chosen-by-client"
        }))
        .unwrap();
        assert_eq!(request.token_name, "legacy-name");
        assert_eq!(
            request.projects,
            Some(vec!["a".to_string(), "b".to_string()])
        );
        assert!(request.expires_at.is_some());
        for (body, path) in [
            (json!({"type": "client"}), "/body/tokenName"),
            (json!({"tokenName": 5, "type": "client"}), "/body/tokenName"),
            (json!({"tokenName": "x"}), "/body/type"),
            (
                json!({"tokenName": "x", "type": "client", "projects": "default"}),
                "/body/projects",
            ),
            (
                json!({"tokenName": "x", "type": "client", "projects": [1]}),
                "/body/projects",
            ),
            (
                json!({"tokenName": "x", "type": "client", "project": ["a"]}),
                "/body/project",
            ),
            (
                json!({"tokenName": "x", "type": "client", "environment": 3}),
                "/body/environment",
            ),
            (
                json!({"tokenName": "x", "type": "client", "expiresAt": "soon"}),
                "/body/expiresAt",
            ),
        ] {
            let debug = path_of(create_token(body.clone()).unwrap_err());
            assert!(debug.contains(path), "{body}: {debug}");
        }
    }

    #[test]
    fn token_bodies_keep_the_contract_shape_byte_for_byte() {
        use chrono::TimeZone;
        use keywarden_domain::{
            EnvironmentName, EnvironmentScope, NewToken, Projects, SecretMaterial, TokenName,
            TokenType,
        };
        let created_at = Utc.with_ymd_and_hms(2030, 1, 2, 3, 4, 5).unwrap();
        let (token, credential) = NewToken::new(
            TokenName::parse("my sdk").unwrap(),
            TokenType::Client,
            Projects::from_ids(["b", "a"]).unwrap(),
            EnvironmentScope::Named(EnvironmentName::parse("development").unwrap()),
            Some(Utc.with_ymd_and_hms(2040, 1, 1, 0, 0, 0).unwrap()),
        )
        .unwrap()
        .issue(
            &SecretMaterial {
                selector: [4; 16],
                random: [5; 32],
            },
            created_at,
        );
        let selector = token.selector().to_string();
        let tail = r#""tokenName":"my sdk","type":"client","project":"a,b","projects":["a","b"],"environment":"development","expiresAt":"2040-01-01T00:00:00.000Z","createdAt":"2030-01-02T03:04:05.000Z","seenAt":null,"alias":null,"secure":true}"#;
        assert_eq!(
            serde_json::to_string(&TokenBody::from(&token)).unwrap(),
            format!(r#"{{"secret":"{selector}",{tail}"#)
        );
        assert_eq!(
            serde_json::to_string(&created(&token, &credential)).unwrap(),
            format!(r#"{{"secret":"{}",{tail}"#, credential.expose_secret())
        );
    }
}
