//! One handler per route, named `<verb>_<resource>`. Each reads its inputs in
//! the contract's order (path, then content type, then body), calls one use
//! case and shapes the answer; errors go through `ApiError`.

use actix_web::http::header::LOCATION;
use actix_web::{web, HttpRequest, HttpResponse, ResponseError};
use keywarden_application::{ApiTokenUseCases, EventQuery};
use keywarden_domain::TokenRef;
use serde::Deserialize;
use serde_json::json;

use crate::auth::Acting;
use crate::dto::{self, EnvironmentList, EventList, ProjectList, TokenList};
use crate::error::{ApiError, ErrorKind};
use crate::extract::{json_body, last_segment};

pub(crate) type UseCases = web::Data<dyn ApiTokenUseCases>;

pub(crate) async fn update_api_token(
    Acting(actor): Acting,
    req: HttpRequest,
    payload: web::Payload,
    usecases: UseCases,
) -> Result<HttpResponse, ApiError> {
    let target = TokenRef::parse(&last_segment(&req)?);
    let expires_at = dto::update_expiry(json_body(&req, payload).await?)?;
    usecases.update_expiry(&actor, target, expires_at).await?;
    Ok(HttpResponse::Ok().finish())
}

pub(crate) async fn list_api_tokens(usecases: UseCases) -> Result<HttpResponse, ApiError> {
    let tokens = usecases.list_tokens().await?;
    Ok(HttpResponse::Ok().json(TokenList::of(&tokens)))
}

pub(crate) async fn get_api_tokens_by_name(
    req: HttpRequest,
    usecases: UseCases,
) -> Result<HttpResponse, ApiError> {
    let name = last_segment(&req)?;
    let tokens = usecases.tokens_named(&name).await?;
    Ok(HttpResponse::Ok().json(TokenList::of(&tokens)))
}

pub(crate) async fn create_api_token(
    Acting(actor): Acting,
    req: HttpRequest,
    payload: web::Payload,
    usecases: UseCases,
) -> Result<HttpResponse, ApiError> {
    let request = dto::create_token(json_body(&req, payload).await?)?;
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

pub(crate) async fn delete_api_token(
    Acting(actor): Acting,
    req: HttpRequest,
    usecases: UseCases,
) -> Result<HttpResponse, ApiError> {
    let target = TokenRef::parse(&last_segment(&req)?);
    usecases.delete_token(&actor, target).await?;
    Ok(HttpResponse::Ok().finish())
}

#[derive(Deserialize)]
struct EventParams {
    #[serde(rename = "type")]
    event_type: Option<String>,
    limit: Option<u32>,
}

pub(crate) async fn list_events(
    req: HttpRequest,
    usecases: UseCases,
) -> Result<HttpResponse, ApiError> {
    let params = web::Query::<EventParams>::from_query(req.query_string()).map_err(|_| {
        ApiError::bad_data(
            "/query/limit",
            "limit must be a whole number between 0 and 1000.",
        )
    })?;
    let params = params.into_inner();
    let events = usecases
        .events(EventQuery {
            event_type: params.event_type,
            limit: params.limit,
        })
        .await?;
    Ok(HttpResponse::Ok().json(EventList::of(events)))
}

pub(crate) async fn list_projects(usecases: UseCases) -> HttpResponse {
    HttpResponse::Ok().json(ProjectList::of(usecases.projects()))
}

pub(crate) async fn list_environments(usecases: UseCases) -> HttpResponse {
    HttpResponse::Ok().json(EnvironmentList::of(usecases.environments()))
}

pub(crate) async fn get_health() -> HttpResponse {
    HttpResponse::Ok().json(json!({"health": "GOOD"}))
}

pub(crate) async fn get_ready(usecases: UseCases) -> Result<HttpResponse, ApiError> {
    usecases.ready().await?;
    Ok(HttpResponse::Ok().json(json!({"health": "GOOD"})))
}

pub(crate) async fn not_found(req: HttpRequest) -> HttpResponse {
    ApiError::new(
        ErrorKind::NotFound,
        format!("Could not find {} {}.", req.method(), req.path()),
    )
    .error_response()
}

pub(crate) async fn method_not_allowed(req: HttpRequest) -> HttpResponse {
    ApiError::new(
        ErrorKind::MethodNotAllowed,
        format!("{} is not supported on {}.", req.method(), req.path()),
    )
    .error_response()
}

/// Percent-encodes everything but RFC 3986 unreserved characters.
fn percent_encode(text: &str) -> String {
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
