//! The OpenAPI 3 document, generated from the handlers' `#[utoipa::path]`
//! annotations and the schemas below, and served at `/docs/openapi.json`.
//! Request bodies and response DTOs carry their own schemas; the token is
//! described by `ApiTokenSchema`, which a test keeps equal to what reads
//! serialise.

use utoipa::openapi::security::{ApiKey, ApiKeyValue, SecurityScheme};
use utoipa::{IntoResponses, Modify, OpenApi, ToSchema};

use crate::dto::{
    CreateTokenRequest, EnvironmentList, EventList, ProjectList, UpdateExpiryRequest,
};
use crate::{handlers, verify};

/// A token as reads and audit events show it.
#[expect(dead_code, reason = "read by the OpenAPI derive, never built")]
#[derive(ToSchema)]
#[schema(as = ApiToken)]
#[serde(rename_all = "camelCase")]
pub(crate) struct ApiTokenSchema {
    /// The token's selector; only the create response carries the full credential here.
    #[schema(example = "*:development.v2_X8sJk2m0Q9aBcDeFgHiJkL_…")]
    secret: String,
    token_name: String,
    /// `client`, `backend`, `frontend` or `admin`. A backend token reads back as
    /// `client`, as in Unleash; only its create response says `backend`.
    #[serde(rename = "type")]
    token_type: String,
    /// `projects` joined with `,`.
    project: String,
    projects: Vec<String>,
    environment: String,
    #[schema(value_type = Option<String>, format = DateTime, example = "2040-01-01T00:00:00.000Z")]
    expires_at: Option<String>,
    #[schema(format = DateTime)]
    created_at: String,
    #[schema(value_type = Option<String>, format = DateTime)]
    seen_at: Option<String>,
    /// Always null.
    alias: Option<String>,
    /// Always true: the server holds no plaintext secret.
    secure: bool,
}

#[expect(dead_code, reason = "read by the OpenAPI derive, never built")]
#[derive(ToSchema)]
pub(crate) struct ApiTokenList {
    tokens: Vec<ApiTokenSchema>,
}

#[expect(dead_code, reason = "read by the OpenAPI derive, never built")]
#[derive(ToSchema)]
pub(crate) struct ErrorDetail {
    message: String,
    /// A JSON pointer into the request, e.g. `/body/expiresAt`.
    #[schema(nullable = false)]
    #[serde(default)]
    path: Option<String>,
}

/// Every error but the wrong-token-type 403.
#[expect(dead_code, reason = "read by the OpenAPI derive, never built")]
#[derive(ToSchema)]
pub(crate) struct ErrorBody {
    #[schema(example = "6f1c0e4e-3b0a-4c5e-9a59-0c8f1d1f3e2a")]
    id: String,
    #[schema(example = "BadDataError")]
    name: String,
    message: String,
    details: Vec<ErrorDetail>,
}

/// The 403 for a valid token of a type that may not use the Admin API.
#[expect(dead_code, reason = "read by the OpenAPI derive, never built")]
#[derive(ToSchema)]
pub(crate) struct WrongTokenType {
    #[schema(example = "invalid token: expected a different token type for this endpoint")]
    message: String,
}

/// The answers every `/api/admin` route can give before its handler runs.
#[expect(dead_code, reason = "read by the OpenAPI derive, never built")]
#[derive(IntoResponses)]
pub(crate) enum AdminResponses {
    /// No credential, or an unknown, expired or deleted one
    #[response(status = 401)]
    Unauthorized(ErrorBody),
    /// A valid token that is not an admin token
    #[response(status = 403)]
    WrongType(WrongTokenType),
}

/// The database is unavailable
#[expect(dead_code, reason = "read by the OpenAPI derive, never built")]
#[derive(IntoResponses)]
#[response(status = 503)]
pub(crate) struct StorageUnavailable(#[to_schema] ErrorBody);

#[expect(dead_code, reason = "read by the OpenAPI derive, never built")]
#[derive(ToSchema)]
pub(crate) struct Health {
    #[schema(example = "GOOD")]
    health: String,
}

struct AdminTokenAuth;

impl Modify for AdminTokenAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "adminToken",
            SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::with_description(
                "Authorization",
                "An admin API token, raw or as `Bearer <token>`",
            ))),
        );
    }
}

#[derive(OpenApi)]
#[openapi(
    info(
        title = "keywarden",
        description = "The API-token part of the Unleash Admin API, without plaintext secrets."
    ),
    paths(
        handlers::list_api_tokens,
        handlers::create_api_token,
        handlers::get_api_tokens_by_name,
        handlers::update_api_token,
        handlers::delete_api_token,
        handlers::list_events,
        handlers::list_projects,
        handlers::list_environments,
        handlers::get_health,
        handlers::get_ready,
        handlers::get_metrics,
        handlers::get_openapi,
        verify::validate_edge_tokens,
        verify::verify_token,
    ),
    components(schemas(
        ApiTokenSchema, ApiTokenList, UpdateExpiryRequest, CreateTokenRequest, ErrorBody,
        ErrorDetail, WrongTokenType, Health, EventList, ProjectList, EnvironmentList,
        verify::EdgeValidateRequest, verify::EdgeValidateResponse, verify::EdgeToken,
        verify::VerifiedTokenBody
    )),
    modifiers(&AdminTokenAuth),
    tags(
        (name = "API tokens", description = "Create, read, expire and delete API tokens"),
        (name = "Admin", description = "Audit events and reference data"),
        (name = "Verification", description = "Checking tokens, for the services they protect"),
        (name = "Operations", description = "Health, readiness, metrics and this document"),
    )
)]
pub struct ApiDoc;

/// The document as JSON, rendered once.
pub fn document() -> String {
    ApiDoc::openapi()
        .to_json()
        .unwrap_or_else(|_| "{}".to_string())
}

/// The document as this deployment serves it: the create request names the
/// declared environments and projects, so a client — or a fuzzer — can tell
/// what will be accepted. Everything else comes from the types; this adds
/// only the deployment's data and the one rule across two fields that a
/// derive cannot state (`project` and `projects` not both).
pub fn document_for(environments: &[String], projects: &[String]) -> String {
    let Ok(mut document) = serde_json::to_value(ApiDoc::openapi()) else {
        return "{}".to_string();
    };
    if let Some(create) = document.pointer_mut("/components/schemas/CreateTokenRequest") {
        let properties = &mut create["properties"];
        let ids: Vec<&str> = std::iter::once("*")
            .chain(projects.iter().map(String::as_str))
            .collect();
        // The nullable fields take `null` as well.
        let or_null = |values: &[&str]| {
            let values: Vec<Option<&str>> =
                values.iter().copied().map(Some).chain([None]).collect();
            serde_json::json!(values)
        };
        properties["projects"]["items"]["enum"] = serde_json::json!(ids);
        properties["project"]["enum"] = or_null(&ids);
        if !environments.is_empty() {
            let names: Vec<&str> = environments.iter().map(String::as_str).collect();
            properties["environment"]["enum"] = or_null(&names);
        }
        // Not both, unless one of them is null.
        create["not"] = serde_json::json!({
            "required": ["project", "projects"],
            "properties": {
                "project": { "type": "string" },
                "projects": { "type": "array" }
            }
        });
    }
    crate::verify::declare_scope_values(&mut document, environments, projects);
    serde_json::to_string(&document).unwrap_or_else(|_| "{}".to_string())
}
