//! One handler per route, named `<verb>_<resource>`. Each reads its inputs in
//! the contract's order (path, then content type, then body), calls one use
//! case and shapes the answer; errors go through `ApiError`.

use actix_web::http::header::{HeaderValue, ALLOW, LOCATION};
use actix_web::{web, HttpRequest, HttpResponse, ResponseError};
use keywarden_application::{ApiTokenUseCases, EventQuery};
use keywarden_domain::TokenRef;
use serde_json::json;

use crate::auth::Acting;
use crate::dto::{
    self, CreateTokenRequest, EnvironmentList, EventList, ProjectList, TokenList,
    UpdateExpiryRequest,
};
use crate::error::{ApiError, ErrorKind};
use crate::extract::{json_body, last_segment};
use crate::openapi::{
    AdminResponses, ApiTokenList, ApiTokenSchema, ErrorBody, Health, StorageUnavailable,
};

pub(crate) type UseCases = web::Data<dyn ApiTokenUseCases>;

#[utoipa::path(
    put,
    path = "/api/admin/api-tokens/{token}",
    tag = "API tokens",
    summary = "Set when a token expires",
    description = "A past instant expires the token for its very next request. An unknown token is not an error: nothing is created or changed.",
    params(("token" = String, Path, description = "The full credential or its selector, raw or percent-encoded")),
    request_body(content = UpdateExpiryRequest, content_type = "application/json"),
    responses(
        (status = 200, description = "Expiry set, or no token matched; empty body"),
        (status = 400, description = "Bad percent-encoding, malformed JSON, or a missing or invalid expiresAt", body = ErrorBody),
        AdminResponses,
        (status = 413, description = "Body over the size limit", body = ErrorBody),
        (status = 415, description = "Content-Type is not JSON", body = ErrorBody),
        StorageUnavailable,
    ),
    security(("adminToken" = []))
)]
pub(crate) async fn update_api_token(
    Acting(actor): Acting,
    req: HttpRequest,
    payload: web::Payload,
    usecases: UseCases,
) -> Result<HttpResponse, ApiError> {
    let target = TokenRef::parse(&last_segment(&req)?);
    let body: UpdateExpiryRequest = json_body(&req, payload).await?;
    usecases
        .update_expiry(&actor, target, body.expires_at)
        .await?;
    Ok(HttpResponse::Ok().finish())
}

#[utoipa::path(
    get,
    path = "/api/admin/api-tokens",
    tag = "API tokens",
    summary = "Every token, newest first, expired ones included",
    params(("unusedFor" = Option<String>, Query,
        description = "Only tokens not used for this long (an ISO 8601 duration such as P90D; never-used tokens count from creation)")),
    responses(
        (status = 200, description = "The tokens", body = ApiTokenList),
        (status = 400, description = "unusedFor is not an ISO 8601 duration", body = ErrorBody),
        AdminResponses,
        StorageUnavailable,
    ),
    security(("adminToken" = []))
)]
pub(crate) async fn list_api_tokens(
    req: HttpRequest,
    usecases: UseCases,
) -> Result<HttpResponse, ApiError> {
    let tokens = match crate::lifecycle::unused_for(req.query_string())? {
        Some(unused_for) => usecases.unused_tokens(unused_for).await?,
        None => usecases.list_tokens().await?,
    };
    Ok(HttpResponse::Ok().json(TokenList::of(&tokens)))
}

#[utoipa::path(
    get,
    path = "/api/admin/api-tokens/{token}",
    tag = "API tokens",
    summary = "Tokens whose name is exactly this (case-sensitive)",
    params(("token" = String, Path, description = "A token name, percent-encoded")),
    responses(
        (status = 200, description = "The matching tokens, possibly none", body = ApiTokenList),
        (status = 400, description = "Bad percent-encoding", body = ErrorBody),
        AdminResponses,
        StorageUnavailable,
    ),
    security(("adminToken" = []))
)]
pub(crate) async fn get_api_tokens_by_name(
    req: HttpRequest,
    usecases: UseCases,
) -> Result<HttpResponse, ApiError> {
    let name = last_segment(&req)?;
    let tokens = usecases.tokens_named(&name).await?;
    Ok(HttpResponse::Ok().json(TokenList::of(&tokens)))
}

#[utoipa::path(
    post,
    path = "/api/admin/api-tokens",
    tag = "API tokens",
    summary = "Create a client, backend or frontend token",
    description = "The response is the only time the full credential (`secret`) is shown.",
    request_body(content = CreateTokenRequest, content_type = "application/json"),
    responses(
        (status = 201, description = "Created; `secret` is the full credential", body = ApiTokenSchema,
            headers(("Location" = String, description = "The token's get-by-name URL"))),
        (status = 400, description = "Invalid request, unknown environment or project, or the token limit reached (ExceedsLimitError)", body = ErrorBody),
        AdminResponses,
        (status = 413, description = "Body over the size limit", body = ErrorBody),
        (status = 415, description = "Content-Type is not JSON", body = ErrorBody),
        StorageUnavailable,
    ),
    security(("adminToken" = []))
)]
pub(crate) async fn create_api_token(
    Acting(actor): Acting,
    req: HttpRequest,
    payload: web::Payload,
    usecases: UseCases,
) -> Result<HttpResponse, ApiError> {
    let request = json_body::<CreateTokenRequest>(&req, payload)
        .await?
        .into_command()?;
    let (token, credential) = usecases.create_token(&actor, request).await?;
    Ok(HttpResponse::Created()
        .insert_header((
            LOCATION,
            format!(
                "/api/admin/api-tokens/{}",
                percent_encode(token.name().as_str())
            ),
        ))
        .json(dto::created(&token, &credential)))
}

#[utoipa::path(
    delete,
    path = "/api/admin/api-tokens/{token}",
    tag = "API tokens",
    summary = "Delete a token; answers 200 whether or not it existed",
    params(("token" = String, Path, description = "The full credential or its selector, raw or percent-encoded")),
    responses(
        (status = 200, description = "Deleted, or no token matched; empty body"),
        (status = 400, description = "Bad percent-encoding", body = ErrorBody),
        AdminResponses,
        StorageUnavailable,
    ),
    security(("adminToken" = []))
)]
pub(crate) async fn delete_api_token(
    Acting(actor): Acting,
    req: HttpRequest,
    usecases: UseCases,
) -> Result<HttpResponse, ApiError> {
    let target = TokenRef::parse(&last_segment(&req)?);
    usecases.delete_token(&actor, target).await?;
    Ok(HttpResponse::Ok().finish())
}

/// `?type=` and `?limit=`, each at most once, so a 400 can name the one to
/// blame; other parameters are ignored.
fn event_query(query: &str) -> Result<EventQuery, ApiError> {
    let limit_error = || {
        ApiError::bad_data(
            "/query/limit",
            "limit must be a whole number of at least 0.",
        )
    };
    let pairs = web::Query::<Vec<(String, String)>>::from_query(query)
        .map_err(|_| ApiError::bad_data("/query", "The query string is not valid."))?
        .into_inner();
    let (mut event_type, mut limit) = (None, None);
    for (name, value) in pairs {
        let slot = match name.as_str() {
            "type" => &mut event_type,
            "limit" => &mut limit,
            _ => continue,
        };
        if slot.replace(value).is_some() {
            return Err(ApiError::bad_data(
                &format!("/query/{name}"),
                format!("{name} may be given only once."),
            ));
        }
    }
    let limit = match limit {
        None => None,
        Some(text) => match text.parse::<i64>() {
            // The use case caps it at 1000 anyway.
            Ok(limit) if limit >= 0 => Some(u32::try_from(limit).unwrap_or(u32::MAX)),
            _ => return Err(limit_error()),
        },
    };
    Ok(EventQuery { event_type, limit })
}

#[utoipa::path(
    get,
    path = "/api/admin/events",
    tag = "Admin",
    summary = "Audit events, newest first",
    params(
        ("type" = Option<String>, Query, description = "Only events of this type, e.g. api-token-updated"),
        ("limit" = Option<i64>, Query, minimum = 0, description = "At most this many (default 100; larger values give 1000)"),
    ),
    responses(
        (status = 200, description = "The events", body = EventList),
        (status = 400, description = "limit is not a whole number, or a parameter is repeated", body = ErrorBody),
        AdminResponses,
        StorageUnavailable,
    ),
    security(("adminToken" = []))
)]
pub(crate) async fn list_events(
    req: HttpRequest,
    usecases: UseCases,
) -> Result<HttpResponse, ApiError> {
    let events = usecases.events(event_query(req.query_string())?).await?;
    Ok(HttpResponse::Ok().json(EventList::of(events)))
}

#[utoipa::path(
    get,
    path = "/api/admin/projects",
    tag = "Admin",
    summary = "The declared projects",
    responses(
        (status = 200, description = "The projects", body = ProjectList),
        AdminResponses,
    ),
    security(("adminToken" = []))
)]
pub(crate) async fn list_projects(usecases: UseCases) -> HttpResponse {
    HttpResponse::Ok().json(ProjectList::of(usecases.projects()))
}

#[utoipa::path(
    get,
    path = "/api/admin/environments",
    tag = "Admin",
    summary = "The declared environments",
    responses(
        (status = 200, description = "The environments", body = EnvironmentList),
        AdminResponses,
    ),
    security(("adminToken" = []))
)]
pub(crate) async fn list_environments(usecases: UseCases) -> HttpResponse {
    HttpResponse::Ok().json(EnvironmentList::of(usecases.environments()))
}

#[utoipa::path(
    get,
    path = "/health",
    tag = "Operations",
    summary = "Liveness",
    responses((status = 200, description = "The process serves requests", body = Health))
)]
pub(crate) async fn get_health() -> HttpResponse {
    HttpResponse::Ok().json(json!({"health": "GOOD"}))
}

#[utoipa::path(
    get,
    path = "/ready",
    tag = "Operations",
    summary = "Readiness: the database answers",
    responses(
        (status = 200, description = "Ready", body = Health),
        (status = 503, description = "The database does not answer", body = ErrorBody),
    )
)]
pub(crate) async fn get_ready(usecases: UseCases) -> Result<HttpResponse, ApiError> {
    usecases.ready().await?;
    Ok(HttpResponse::Ok().json(json!({"health": "GOOD"})))
}

#[utoipa::path(
    get,
    path = "/internal-backstage/prometheus",
    tag = "Operations",
    summary = "Prometheus metrics",
    responses((status = 200, description = "Metrics in the Prometheus text format", body = String, content_type = "text/plain"))
)]
pub(crate) async fn get_metrics(
    render: web::Data<dyn Fn() -> String + Send + Sync>,
) -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4; charset=utf-8")
        .body(render())
}

#[utoipa::path(
    get,
    path = "/docs/openapi.json",
    tag = "Operations",
    summary = "This OpenAPI document",
    responses((status = 200, description = "The OpenAPI 3 document", body = Object))
)]
pub(crate) async fn get_openapi(usecases: UseCases) -> HttpResponse {
    // Rendered per request: it names the declared environments and projects.
    let environments: Vec<String> = usecases
        .environments()
        .iter()
        .map(|environment| environment.name.as_str().to_string())
        .collect();
    let projects: Vec<String> = usecases
        .projects()
        .iter()
        .map(|project| project.id.as_str().to_string())
        .collect();
    HttpResponse::Ok()
        .content_type("application/json")
        .body(crate::openapi::document_for(&environments, &projects))
}

pub(crate) async fn not_found(req: HttpRequest) -> HttpResponse {
    ApiError::new(
        ErrorKind::NotFound,
        format!("Could not find {} {}.", req.method(), req.path()),
    )
    .error_response()
}

/// A handler answering 405 with the methods the resource does allow.
pub(crate) fn not_allowed(
    allow: HeaderValue,
) -> impl Fn(HttpRequest) -> std::future::Ready<HttpResponse> + Clone + 'static {
    move |req: HttpRequest| {
        let mut response = ApiError::new(
            ErrorKind::MethodNotAllowed,
            format!("{} is not supported on {}.", req.method(), req.path()),
        )
        .error_response();
        response.headers_mut().insert(ALLOW, allow.clone());
        std::future::ready(response)
    }
}

/// `OPTIONS`: 204 with the methods the resource allows.
pub(crate) fn options(
    allow: HeaderValue,
) -> impl Fn() -> std::future::Ready<HttpResponse> + Clone + 'static {
    move || {
        std::future::ready(
            HttpResponse::NoContent()
                .insert_header((ALLOW, allow.clone()))
                .finish(),
        )
    }
}

/// Percent-encodes everything but RFC 3986 unreserved characters.
pub(crate) fn percent_encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || b"-._~".contains(&byte) {
            out.push(byte as char);
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests;
