//! Request and response bodies in the contract's camelCase. Each request body
//! is one type that serde reads and utoipa describes, so the served document
//! states the rules the server applies; unknown fields are ignored.

use chrono::{DateTime, Utc};
use keywarden_application::CreateToken;
use keywarden_domain::{
    format_millis, parse_offset_date_time, ApiToken, Credential, Environment, EventType, Project,
    StoredEvent, TokenFacts, TokenName, TokenType,
};
use serde::de::Error as _;
use serde::{Deserialize, Deserializer, Serialize};
use utoipa::openapi::schema::{Object, ObjectBuilder, Type};
use utoipa::ToSchema;

use crate::error::ApiError;
use crate::presentation::{wire_type, Shown};

// ---- request bodies ---------------------------------------------------------
//
// One type per body: serde reads it (through `extract::json_body`, which names
// the field to blame) and utoipa describes it, each rule stated once below.

/// A token's new expiry (`PUT /api/admin/api-tokens/:token`); a past
/// instant expires the token now. Unknown fields are ignored.
#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct UpdateExpiryRequest {
    #[serde(deserialize_with = "date_time")]
    #[schema(schema_with = date_time_schema)]
    pub expires_at: DateTime<Utc>,
}

/// A new client, backend or frontend token (`POST /api/admin/api-tokens`).
/// Unknown fields, a client-chosen `secret` among them, are ignored; `null`
/// stands for "not given", as in Unleash.
#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct CreateTokenRequest {
    #[schema(schema_with = token_name_schema, required = true)]
    token_name: Option<String>,
    /// The older name Unleash still accepts for `tokenName`; undocumented.
    #[schema(ignore)]
    username: Option<String>,
    #[serde(rename = "type")]
    #[schema(schema_with = token_type_schema)]
    token_type: String,
    /// Default `development`.
    environment: Option<String>,
    /// Default `["*"]`.
    #[schema(min_items = 1)]
    projects: Option<Vec<String>>,
    /// One project id (or `*`); not together with `projects`.
    project: Option<String>,
    #[serde(default, deserialize_with = "optional_date_time")]
    #[schema(schema_with = optional_date_time_schema)]
    expires_at: Option<DateTime<Utc>>,
}

impl CreateTokenRequest {
    /// The use case's request; its rules (known environment, the name, …)
    /// are the application's.
    pub(crate) fn into_command(self) -> Result<CreateToken, ApiError> {
        let token_name = self
            .token_name
            .or(self.username)
            .ok_or_else(|| ApiError::bad_data("/body/tokenName", "tokenName is required."))?;
        Ok(CreateToken {
            token_name,
            token_type: self.token_type,
            environment: self.environment,
            projects: self.projects,
            project: self.project,
            expires_at: self.expires_at,
        })
    }
}

const DATE_TIME_HINT: &str =
    "must be a date-time with a UTC offset, such as 2030-01-01T00:00:00Z or 2030-01-01T02:00:00+02:00";

/// RFC 3339 with an offset, converted to UTC and truncated to milliseconds.
pub(crate) fn date_time<'de, D: Deserializer<'de>>(d: D) -> Result<DateTime<Utc>, D::Error> {
    optional_date_time(d)?.ok_or_else(|| D::Error::custom(DATE_TIME_HINT))
}

pub(crate) fn optional_date_time<'de, D: Deserializer<'de>>(
    d: D,
) -> Result<Option<DateTime<Utc>>, D::Error> {
    match Option::<String>::deserialize(d).map_err(|_| D::Error::custom(DATE_TIME_HINT))? {
        None => Ok(None),
        Some(text) => parse_offset_date_time(&text)
            .map(Some)
            .ok_or_else(|| D::Error::custom(format!("{DATE_TIME_HINT}; got {text:?}"))),
    }
}

/// The shortest date-time with an offset, `2030-01-01T00:00:00Z`: tells a
/// client (or a fuzzer) that a date alone will not do.
const SHORTEST_DATE_TIME: usize = 20;

pub(crate) fn date_time_schema() -> Object {
    ObjectBuilder::new()
        .schema_type(Type::String)
        .format(Some(utoipa::openapi::SchemaFormat::KnownFormat(
            utoipa::openapi::KnownFormat::DateTime,
        )))
        .min_length(Some(SHORTEST_DATE_TIME))
        .description(Some(
            "RFC 3339 with a UTC offset; stored in UTC with millisecond precision.",
        ))
        .examples(["2040-01-01T00:00:00Z"])
        .build()
}

pub(crate) fn optional_date_time_schema() -> Object {
    let mut schema = date_time_schema();
    schema.schema_type = [Type::String, Type::Null].into_iter().collect();
    schema
}

/// Unicode `White_Space`, what `str::trim` strips (ECMA-262's `\s` differs:
/// it has U+FEFF, which is not white space).
const WHITE_SPACE: &[(char, char)] = &[
    ('\u{9}', '\u{D}'),
    (' ', ' '),
    ('\u{85}', '\u{85}'),
    ('\u{A0}', '\u{A0}'),
    ('\u{1680}', '\u{1680}'),
    ('\u{2000}', '\u{200A}'),
    ('\u{2028}', '\u{2029}'),
    ('\u{202F}', '\u{202F}'),
    ('\u{205F}', '\u{205F}'),
    ('\u{3000}', '\u{3000}'),
];

/// General category `Cc`, what `char::is_control` means.
const CONTROL: &[(char, char)] = &[('\u{0}', '\u{1F}'), ('\u{7F}', '\u{9F}')];

/// `TokenName`'s rule as an ECMA-262 pattern: no control character, and at
/// least one that is not white space.
fn token_name_pattern() -> String {
    fn class(ranges: &[(char, char)]) -> String {
        let escape = |c: char| format!("\\u{:04X}", u32::from(c));
        ranges
            .iter()
            .map(|&(first, last)| match first == last {
                true => escape(first),
                false => format!("{}-{}", escape(first), escape(last)),
            })
            .collect()
    }
    let control = class(CONTROL);
    let white_space = class(WHITE_SPACE);
    format!("^[^{control}]*[^{control}{white_space}][^{control}]*$")
}

fn token_name_schema() -> Object {
    ObjectBuilder::new()
        .schema_type(Type::String)
        .min_length(Some(1))
        .max_length(Some(TokenName::MAX_CHARS))
        .pattern(Some(token_name_pattern()))
        .description(Some(
            "Not unique. Printable: no control characters, not only white space.",
        ))
        .build()
}

/// The types a request may create, in any case (`Client`), as Unleash's own
/// document states it: `[Cc][Ll]…`.
fn token_type_schema() -> Object {
    let any_case = |name: &str| -> String {
        name.chars()
            .map(|c| format!("[{}{}]", c.to_ascii_uppercase(), c))
            .collect()
    };
    let names: Vec<String> = [TokenType::Client, TokenType::Backend, TokenType::Frontend]
        .into_iter()
        .map(|kind| any_case(kind.as_str()))
        .collect();
    ObjectBuilder::new()
        .schema_type(Type::String)
        .pattern(Some(format!("^({})$", names.join("|"))))
        .description(Some("`client`, `backend` or `frontend`, in any case."))
        .build()
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
    /// Only for a rotation's successor, as created: the old token's selector.
    #[serde(skip_serializing_if = "Option::is_none")]
    rotated_from: Option<String>,
}

impl TokenBody {
    /// The one mapping from a token to its JSON: reads, events and creation
    /// all go through it, `when` saying which of Unleash's presentations applies.
    pub(crate) fn shown(facts: &TokenFacts, when: Shown) -> Self {
        Self {
            secret: facts.selector.to_string(),
            token_name: facts.name.as_str().to_string(),
            token_type: wire_type(facts.token_type, when),
            project: facts.projects.joined(),
            projects: facts.projects.ids(),
            environment: facts.environment.as_str().to_string(),
            expires_at: facts.expires_at.as_ref().map(format_millis),
            created_at: format_millis(&facts.created_at),
            seen_at: facts.seen_at.as_ref().map(format_millis),
            alias: None,
            secure: true,
            rotated_from: None,
        }
    }

    /// The token, recording the selector it was rotated from.
    pub(crate) fn rotated_from(self, from: Option<String>) -> Self {
        Self {
            rotated_from: from,
            ..self
        }
    }
}

#[derive(Serialize)]
pub(crate) struct TokenList {
    pub tokens: Vec<TokenBody>,
}

impl TokenList {
    pub(crate) fn of(tokens: &[ApiToken]) -> Self {
        Self {
            tokens: tokens
                .iter()
                .map(|token| TokenBody::shown(&token.facts(), Shown::OnRead))
                .collect(),
        }
    }
}

/// The one response that carries the whole credential.
pub(crate) fn created(token: &ApiToken, credential: &Credential) -> TokenBody {
    TokenBody {
        secret: credential.expose_secret().to_string(),
        ..TokenBody::shown(&token.facts(), Shown::AsCreated)
    }
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct EventBody {
    id: i64,
    /// `api-token-created`, `api-token-updated`, `api-token-deleted`,
    /// `api-token-expiring` or `api-token-expired`.
    #[serde(rename = "type")]
    event_type: &'static str,
    /// The acting token's name, `cli` or `system`.
    created_by: String,
    /// The acting token's identifier (its selector); null for `cli` and `system`.
    created_by_token_id: Option<String>,
    #[schema(format = DateTime)]
    created_at: String,
    /// The token after the change.
    #[schema(value_type = Option<crate::openapi::ApiTokenSchema>)]
    data: Option<TokenBody>,
    /// The token before the change.
    #[schema(value_type = Option<crate::openapi::ApiTokenSchema>)]
    pre_data: Option<TokenBody>,
    /// `api-token-expiring` only: the warning threshold reached (`7d`).
    #[serde(skip_serializing_if = "Option::is_none")]
    threshold: Option<String>,
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

impl EventBody {
    pub(crate) fn of(stored: StoredEvent) -> Self {
        // The created event shows the token as the create response did.
        let when = match stored.event.event_type {
            EventType::ApiTokenCreated => Shown::AsCreated,
            _ => Shown::OnRead,
        };
        let rotated_from = stored.event.rotated_from.map(|from| from.to_string());
        EventBody {
            id: stored.id,
            event_type: stored.event.event_type.as_str(),
            created_by: stored.event.created_by,
            created_by_token_id: stored
                .event
                .created_by_token
                .map(|selector| selector.to_string()),
            created_at: format_millis(&stored.event.created_at),
            data: stored
                .event
                .data
                .as_ref()
                .map(|token| TokenBody::shown(token, when).rotated_from(rotated_from)),
            pre_data: stored
                .event
                .pre_data
                .as_ref()
                .map(|token| TokenBody::shown(token, when)),
            threshold: stored.event.threshold.clone(),
            tags: Vec::new(),
            feature_name: None,
            project: None,
            environment: None,
        }
    }
}

impl EventList {
    pub(crate) fn of(events: Vec<StoredEvent>) -> Self {
        Self {
            version: 1,
            events: events.into_iter().map(EventBody::of).collect(),
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
    use serde::de::DeserializeOwned;
    use serde_json::{json, Value};

    fn parse<T: DeserializeOwned>(body: Value) -> Result<T, ApiError> {
        crate::extract::typed_body(body)
    }

    /// The `details[].path` of a 400.
    fn path_of(error: ApiError) -> String {
        let response = actix_web::ResponseError::error_response(&error);
        assert_eq!(response.status(), 400);
        format!("{error:?}")
    }

    #[test]
    fn update_expiry_bodies() {
        let request: UpdateExpiryRequest =
            parse(json!({"expiresAt": "2030-01-01T02:00:00.1234+02:00", "x": 1})).unwrap();
        assert_eq!(
            format_millis(&request.expires_at),
            "2030-01-01T00:00:00.123Z"
        );
        for (body, path) in [
            (json!({}), "/body/expiresAt\""),
            (json!({"expiresAt": null}), "/body/expiresAt\""),
            (json!({"expiresAt": 1893456000}), "/body/expiresAt\""),
            (json!({"expiresAt": "banana"}), "/body/expiresAt\""),
            (json!({"expiresAt": "2030-01-01"}), "/body/expiresAt\""),
            (
                json!({"expiresAt": "2030-01-01T00:00:00"}),
                "/body/expiresAt\"",
            ),
            (json!([]), "/body\""),
            (json!("2030-01-01T00:00:00Z"), "/body\""),
            (json!(null), "/body\""),
        ] {
            let debug = path_of(parse::<UpdateExpiryRequest>(body.clone()).err().unwrap());
            assert!(debug.contains(path), "{body}: {debug}");
        }
    }

    #[test]
    fn create_bodies() {
        let request = parse::<CreateTokenRequest>(json!({
            "username": "legacy-name", "type": "client", "projects": ["a", "b"],
            "expiresAt": "2030-01-01T00:00:00Z", "secret": "*:*.chosen-by-client"
        }))
        .unwrap()
        .into_command()
        .unwrap();
        assert_eq!(request.token_name, "legacy-name");
        assert_eq!(
            request.projects,
            Some(vec!["a".to_string(), "b".to_string()])
        );
        assert!(request.expires_at.is_some());
        let request = parse::<CreateTokenRequest>(json!({
            "tokenName": "new", "username": "old", "type": "Backend", "environment": null,
            "project": null, "projects": null, "expiresAt": null
        }))
        .unwrap()
        .into_command()
        .unwrap();
        assert_eq!(request.token_name, "new", "tokenName wins over username");
        assert_eq!(request.token_type, "Backend");
        assert!(request.environment.is_none() && request.project.is_none());
        assert!(request.projects.is_none() && request.expires_at.is_none());
        for (body, path) in [
            (json!({"type": "client"}), "/body/tokenName\""),
            (
                json!({"tokenName": 5, "type": "client"}),
                "/body/tokenName\"",
            ),
            (json!({"tokenName": "x"}), "/body/type\""),
            (json!({"tokenName": "x", "type": null}), "/body/type\""),
            (
                json!({"tokenName": "x", "type": "client", "projects": "default"}),
                "/body/projects\"",
            ),
            (
                json!({"tokenName": "x", "type": "client", "projects": [1]}),
                "/body/projects\"",
            ),
            (
                json!({"tokenName": "x", "type": "client", "project": ["a"]}),
                "/body/project\"",
            ),
            (
                json!({"tokenName": "x", "type": "client", "environment": 3}),
                "/body/environment\"",
            ),
            (
                json!({"tokenName": "x", "type": "client", "expiresAt": "soon"}),
                "/body/expiresAt\"",
            ),
            (json!(["x"]), "/body\""),
        ] {
            let error = match parse::<CreateTokenRequest>(body.clone()) {
                Ok(request) => request.into_command().err().unwrap(),
                Err(error) => error,
            };
            let debug = path_of(error);
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
            serde_json::to_string(&TokenBody::shown(&token.facts(), Shown::AsCreated)).unwrap(),
            format!(r#"{{"secret":"{selector}",{tail}"#)
        );
        assert_eq!(
            serde_json::to_string(&created(&token, &credential)).unwrap(),
            format!(r#"{{"secret":"{}",{tail}"#, credential.expose_secret())
        );
    }
}
