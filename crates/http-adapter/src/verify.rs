//! The routes services and proxies use to check tokens (verification.md):
//! `POST /edge/validate`, the shape Unleash Edge reads, and `/api/verify`,
//! forward authentication for nginx `auth_request`, Caddy `forward_auth` and
//! the like. Both answer from the `TokenVerification` port; this module owns
//! their request parsing, headers, status codes and outcome metrics.

use actix_web::http::header::{HeaderName, HeaderValue, CACHE_CONTROL, WWW_AUTHENTICATE};
use actix_web::{web, HttpRequest, HttpResponse, ResponseError};
use keywarden_application::{Refusal, TokenVerification, VerifiedToken};
use keywarden_domain::{format_millis, AcceptedTypes, OutOfScope, RequiredScope, TokenType};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;

use crate::auth::credential;
use crate::error::{ApiError, ErrorKind};
use crate::extract::{json_value, percent_decode, typed_body};
use crate::openapi::ErrorBody;
use crate::presentation::{wire_type, Shown};

pub(crate) type Verification = web::Data<dyn TokenVerification>;

/// `/edge/validate` reads bodies up to this size whatever the server-wide
/// limit is, so 1,000 credentials always fit.
const EDGE_BODY_LIMIT: usize = 256 * 1024;
/// The most credentials one `/edge/validate` request may ask about.
const EDGE_MAX_TOKENS: usize = 1000;

const X_TOKEN_ID: HeaderName = HeaderName::from_static("x-token-id");
const X_TOKEN_NAME: HeaderName = HeaderName::from_static("x-token-name");
const X_TOKEN_TYPE: HeaderName = HeaderName::from_static("x-token-type");
const X_TOKEN_ENVIRONMENT: HeaderName = HeaderName::from_static("x-token-environment");
const X_TOKEN_PROJECTS: HeaderName = HeaderName::from_static("x-token-projects");

/// A token's type as this part of the contract reports it: read, so `client`
/// for backend tokens.
fn reported_type(token_type: TokenType) -> &'static str {
    wire_type(token_type, Shown::OnRead)
}

/// Counts one verification outcome. Labels are fixed strings: never a
/// credential, never a token name.
fn count(endpoint: &'static str, result: &'static str) {
    metrics::counter!("keywarden_verifications_total", "endpoint" => endpoint, "result" => result)
        .increment(1);
}

/// The credentials Unleash Edge asks about.
#[derive(Debug, Deserialize, ToSchema)]
pub(crate) struct EdgeValidateRequest {
    /// Credentials, at most 1,000.
    #[schema(max_items = 1000)]
    tokens: Vec<String>,
}

/// One valid credential, as Unleash answers it.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct EdgeToken {
    /// The credential as sent.
    token: String,
    /// `client` (backend and client tokens), `frontend` or `admin`.
    #[serde(rename = "type")]
    #[schema(example = "client")]
    token_type: &'static str,
    /// `["*"]` for all projects.
    projects: Vec<String>,
    /// `*` for admin tokens.
    environment: String,
}

/// The valid credentials among those sent, in request order.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct EdgeValidateResponse {
    tokens: Vec<EdgeToken>,
}

/// The checks the body itself cannot express to serde: the contract's bound,
/// and a 400 naming the first entry that is not a string.
fn edge_request(body: Value) -> Result<EdgeValidateRequest, ApiError> {
    let Some(entries) = body.get("tokens") else {
        return Err(ApiError::bad_data(
            "/body/tokens",
            "The body must be an object with a tokens array.",
        ));
    };
    let Some(entries) = entries.as_array() else {
        return Err(ApiError::bad_data(
            "/body/tokens",
            "tokens must be an array of strings.",
        ));
    };
    if entries.len() > EDGE_MAX_TOKENS {
        return Err(ApiError::bad_data(
            "/body/tokens",
            format!(
                "tokens has {} entries: at most {EDGE_MAX_TOKENS} are accepted per request.",
                entries.len()
            ),
        ));
    }
    if let Some(index) = entries.iter().position(|entry| !entry.is_string()) {
        return Err(ApiError::bad_data(
            &format!("/body/tokens/{index}"),
            format!("tokens[{index}] is not a string."),
        ));
    }
    typed_body(body)
}

#[utoipa::path(
    post,
    path = "/edge/validate",
    tag = "Verification",
    summary = "Which of these credentials are valid (what Unleash Edge asks)",
    description = "No authentication. One entry per valid credential, in request order (a credential sent twice appears twice); unknown, expired and deleted ones are left out.",
    request_body(content = EdgeValidateRequest, content_type = "application/json"),
    responses(
        (status = 200, description = "The valid credentials", body = EdgeValidateResponse),
        (status = 400, description = "Malformed JSON, tokens missing or not an array of strings, or more than 1,000 entries", body = ErrorBody),
        (status = 413, description = "Body over 256 KiB", body = ErrorBody),
        (status = 415, description = "Content-Type is not JSON", body = ErrorBody),
    )
)]
pub(crate) async fn validate_edge_tokens(
    req: HttpRequest,
    payload: web::Payload,
    verification: Verification,
) -> Result<HttpResponse, ApiError> {
    let body = json_value(&req, payload, EDGE_BODY_LIMIT).await?;
    if !body.is_object() {
        return Err(ApiError::bad_data(
            "/body",
            "The body must be a JSON object.",
        ));
    }
    let request = edge_request(body)?;
    let any = RequiredScope::of_types(AcceptedTypes::ANY);
    let mut tokens = Vec::with_capacity(request.tokens.len());
    for token in request.tokens {
        match verification.verify(Some(&token), &any).await {
            Ok(VerifiedToken { facts, .. }) => {
                count("edge_validate", "ok");
                tokens.push(EdgeToken {
                    token,
                    token_type: reported_type(facts.token_type),
                    projects: facts.projects().ids(),
                    environment: facts.environment().as_str().to_string(),
                });
            }
            Err(Refusal::Unavailable) => {
                count("edge_validate", Refusal::Unavailable.label());
                return Err(ApiError::new(
                    ErrorKind::Unavailable,
                    "The service is temporarily unavailable. Try again shortly.",
                ));
            }
            Err(refusal) => count("edge_validate", refusal.label()),
        }
    }
    Ok(HttpResponse::Ok().json(EdgeValidateResponse { tokens }))
}

/// What `/api/verify` answers for a token that passes.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct VerifiedTokenBody {
    /// The token's selector (its public identifier), as `X-Token-Id`.
    id: String,
    token_name: String,
    /// `client` (backend and client tokens), `frontend` or `admin`.
    #[serde(rename = "type")]
    #[schema(example = "client")]
    token_type: &'static str,
    /// `["*"]` for all projects.
    projects: Vec<String>,
    environment: String,
    #[schema(format = DateTime, example = "2040-01-01T00:00:00.000Z")]
    expires_at: Option<String>,
}

/// The scope a location requires, from the verify URL's query string:
/// `type` (comma-separated), `environment`, and `project` (repeatable).
fn required_scope(
    req: &HttpRequest,
    verification: &dyn TokenVerification,
) -> Result<RequiredScope, ApiError> {
    let mut types = None;
    let mut environment = None;
    let mut projects = Vec::new();
    for pair in req
        .query_string()
        .split('&')
        .filter(|pair| !pair.is_empty())
    {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        let decode = |text: &str| {
            percent_decode(text).ok_or_else(|| {
                ApiError::bad_data(
                    "/query",
                    "The query string contains an invalid percent-encoding or is not UTF-8.",
                )
            })
        };
        let (key, value) = (decode(key)?, decode(value)?);
        let once = |slot: &mut Option<String>, name: &str| {
            if slot.replace(value.clone()).is_some() {
                Err(ApiError::bad_data(
                    &format!("/query/{name}"),
                    format!("{name} is given more than once."),
                ))
            } else {
                Ok(())
            }
        };
        match key.as_str() {
            "type" => once(&mut types, "type")?,
            "environment" => once(&mut environment, "environment")?,
            "project" => projects.push(value),
            unknown => {
                return Err(ApiError::bad_data(
                    "/query",
                    format!("Unknown parameter {unknown}: use type, environment or project."),
                ))
            }
        }
    }
    verification
        .required_scope(types.as_deref(), environment.as_deref(), &projects)
        .map_err(|invalid| {
            ApiError::bad_data(&format!("/query/{}", invalid.parameter), invalid.message)
        })
}

/// A header value a proxy can copy as is: bytes outside visible ASCII, and
/// `%` itself (so decoding is unambiguous), percent-encoded.
fn header_text(text: &str) -> HeaderValue {
    let mut encoded = String::with_capacity(text.len());
    for byte in text.bytes() {
        if byte.is_ascii_graphic() && byte != b'%' {
            encoded.push(char::from(byte));
        } else {
            encoded.push_str(&format!("%{byte:02X}"));
        }
    }
    HeaderValue::from_str(&encoded).unwrap_or_else(|_| HeaderValue::from_static(""))
}

fn granted(token: &VerifiedToken) -> HttpResponse {
    let facts = &token.facts;
    let token_type = reported_type(facts.token_type);
    let projects = facts.projects().ids();
    let mut response = HttpResponse::Ok();
    response
        .insert_header((X_TOKEN_ID, header_text(&token.selector.to_string())))
        .insert_header((X_TOKEN_NAME, header_text(&facts.name)))
        .insert_header((X_TOKEN_TYPE, HeaderValue::from_static(token_type)))
        .insert_header((
            X_TOKEN_ENVIRONMENT,
            header_text(facts.environment().as_str()),
        ))
        .insert_header((X_TOKEN_PROJECTS, header_text(&projects.join(","))));
    response.json(VerifiedTokenBody {
        id: token.selector.to_string(),
        token_name: facts.name.to_string(),
        token_type,
        projects,
        environment: facts.environment().as_str().to_string(),
        expires_at: facts.expires_at.as_ref().map(format_millis),
    })
}

fn refused(refusal: &Refusal) -> HttpResponse {
    let error = match refusal {
        Refusal::Missing => ApiError::new(
            ErrorKind::AuthenticationRequired,
            "Send an API token in the Authorization header.",
        ),
        Refusal::Unknown | Refusal::Expired => ApiError::new(
            ErrorKind::Unauthorized,
            "The API token is unknown, expired or deleted.",
        ),
        Refusal::OutOfScope(OutOfScope::Type(token_type)) => ApiError::new(
            ErrorKind::OutOfScope,
            format!(
                "The token may not be used here: {} tokens are not accepted here.",
                reported_type(*token_type)
            ),
        ),
        Refusal::OutOfScope(missing) => ApiError::new(
            ErrorKind::OutOfScope,
            format!("The token may not be used here: {missing}."),
        ),
        Refusal::Unavailable => ApiError::new(
            ErrorKind::Unavailable,
            "The service is temporarily unavailable. Try again shortly.",
        ),
    };
    let mut response = error.error_response();
    if response.status() == actix_web::http::StatusCode::UNAUTHORIZED {
        response.headers_mut().insert(
            WWW_AUTHENTICATE,
            HeaderValue::from_static("Bearer realm=\"keywarden\""),
        );
    }
    response
}

/// Verifies the request's credential against the scope in its query string.
async fn verify_request(req: &HttpRequest, verification: &dyn TokenVerification) -> HttpResponse {
    let required = match required_scope(req, verification) {
        Ok(required) => required,
        Err(error) => return error.error_response(),
    };
    let presented = match credential(req.headers()) {
        Ok(presented) => Some(presented),
        Err(error) if error.kind() == ErrorKind::AuthenticationRequired => None,
        // Not text, or several Authorization headers: no credential to look up.
        Err(_) => {
            count("verify", Refusal::Unknown.label());
            return refused(&Refusal::Unknown);
        }
    };
    match verification.verify(presented, &required).await {
        Ok(token) => {
            count("verify", "ok");
            granted(&token)
        }
        Err(refusal) => {
            count("verify", refusal.label());
            refused(&refusal)
        }
    }
}

#[utoipa::path(
    method(get, post, put, delete, patch, head, options),
    path = "/api/verify",
    tag = "Verification",
    summary = "Forward authentication: is this request's token valid here?",
    description = "Any method; a request body is ignored. The credential is the Authorization header (raw or Bearer). The query string names the scope the protected location requires. On 200 the X-Token-* headers describe the token (values outside visible ASCII percent-encoded) for the proxy to copy upstream. Every answer carries Cache-Control: no-store.",
    params(
        ("type" = Option<String>, Query, description = "Accepted types, comma-separated: backend (same as client), frontend, admin. Default backend,frontend"),
        ("environment" = Option<String>, Query, description = "The token's environment must be this one (tokens for * match any)"),
        ("project" = Option<Vec<String>>, Query, explode = true, description = "Every listed project must be covered (tokens for * cover all)"),
        ("Authorization" = Option<String>, Header, description = "The API token, raw or as Bearer <token>"),
    ),
    responses(
        (status = 200, description = "Valid and in scope", body = VerifiedTokenBody, headers(
            ("X-Token-Id" = String, description = "The token's selector"),
            ("X-Token-Name" = String, description = "The token's name"),
            ("X-Token-Type" = String, description = "client, frontend or admin"),
            ("X-Token-Environment" = String, description = "The token's environment (* for all)"),
            ("X-Token-Projects" = String, description = "Projects, comma-joined (* for all)"),
        )),
        (status = 400, description = "An unknown query parameter, type, environment or project", body = ErrorBody),
        (status = 401, description = "No credential, or an unknown, expired or deleted one", body = ErrorBody,
            headers(("WWW-Authenticate" = String, description = "Bearer realm=\"keywarden\""))),
        (status = 403, description = "Valid, but outside the required scope", body = ErrorBody),
    )
)]
pub(crate) async fn verify_token(req: HttpRequest, verification: Verification) -> HttpResponse {
    let mut response = verify_request(&req, verification.get_ref()).await;
    response
        .headers_mut()
        .insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

/// Names, in the served document, the values `/api/verify` accepts in its
/// query string, so a client (or a fuzzer) can tell what will be accepted.
pub(crate) fn declare_scope_values(
    document: &mut Value,
    environments: &[String],
    projects: &[String],
) {
    let Some(operations) = document
        .pointer_mut("/paths/~1api~1verify")
        .and_then(Value::as_object_mut)
    else {
        return;
    };
    for operation in operations.values_mut() {
        let Some(parameters) = operation["parameters"].as_array_mut() else {
            continue;
        };
        for parameter in parameters {
            // Owned: the schema beside it is borrowed mutably.
            let name = parameter["name"].as_str().unwrap_or_default().to_string();
            let schema = &mut parameter["schema"];
            match name.as_str() {
                "type" => {
                    schema["enum"] = serde_json::json!([
                        "backend",
                        "client",
                        "frontend",
                        "admin",
                        "backend,frontend",
                        null
                    ]);
                }
                "environment" if !environments.is_empty() => {
                    let mut names: Vec<Value> =
                        environments.iter().map(|n| n.as_str().into()).collect();
                    names.push(Value::Null);
                    schema["enum"] = names.into();
                }
                "project" if !projects.is_empty() => {
                    schema["items"]["enum"] = serde_json::json!(projects);
                }
                _ => {}
            }
        }
    }
}

#[cfg(test)]
pub(crate) mod tests;
