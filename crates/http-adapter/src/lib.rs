//! The HTTP face of keywarden: the Unleash Admin API routes for API tokens
//! (and the service endpoints), wired to the application's `ApiTokenUseCases`
//! port. Owns request parsing, authentication, DTOs and the mapping from
//! errors to status codes; knows nothing of storage.

mod auth;
mod dto;
mod error;
mod extract;
mod handlers;
mod lifecycle;
mod limits;
mod observe;
mod openapi;
mod presentation;
mod verify;
mod webhooks;

use std::sync::Arc;

use actix_web::http::header::HeaderValue;
use actix_web::http::Method;
use actix_web::middleware::from_fn;
use actix_web::{guard, web, Resource, Route};
use keywarden_application::{ApiTokenUseCases, TokenVerification};

pub use error::{ApiError, ErrorKind};
pub use extract::{BodyLimit, BodyReadTimeout};
pub use limits::RequestLimits;
pub use openapi::{document as openapi_document, ApiDoc};
pub use webhooks::{message_body, message_id, signature, HttpWebhookSender};

/// Renders the Prometheus text exposition of every metric.
pub type MetricsRenderer = Arc<dyn Fn() -> String + Send + Sync>;

/// One path and the handler for each method it answers. Every `GET` also
/// answers `HEAD` (actix-http sends the GET's headers, `Content-Length`
/// included, and drops the body); `OPTIONS` answers 204 with `Allow`; any
/// other method 405 with `Allow` and the error body (RFC 9110), rather than
/// 404. A path that answers every method (`/api/verify`) is a plain
/// `web::resource(..).to(..)` instead.
fn endpoint(path: &str, routes: Vec<(Method, Route)>) -> Resource {
    let mut allow = Vec::new();
    let mut resource = web::resource(path);
    for (method, route) in routes {
        allow.push(method.to_string());
        resource = resource.route(if method == Method::GET {
            allow.push(Method::HEAD.to_string());
            route.guard(guard::Any(guard::Get()).or(guard::Head()))
        } else {
            route.guard(guard::Method(method))
        });
    }
    allow.push(Method::OPTIONS.to_string());
    // Method names are tokens, always a valid header value.
    let allow = HeaderValue::from_str(&allow.join(", ")).unwrap_or(HeaderValue::from_static(""));
    resource
        .route(
            web::route()
                .guard(guard::Options())
                .to(handlers::options(allow.clone())),
        )
        .default_service(web::to(handlers::not_allowed(allow)))
}

/// Registers every route on an `App`, around `usecases` and `verification`.
pub fn configure(
    usecases: Arc<dyn ApiTokenUseCases>,
    verification: Arc<dyn TokenVerification>,
    body_limit: BodyLimit,
    request_limits: RequestLimits,
    metrics: MetricsRenderer,
) -> impl FnOnce(&mut web::ServiceConfig) + Clone {
    move |cfg| {
        use handlers::*;

        let get = |path: &str, handler: Route| endpoint(path, vec![(Method::GET, handler)]);
        cfg.app_data(web::Data::from(usecases))
            .app_data(web::Data::from(verification))
            .app_data(body_limit)
            .app_data(request_limits)
            .app_data(web::Data::from(metrics));
        // One scope around everything so every request, matched or not, is observed.
        cfg.service(
            web::scope("")
                .wrap(from_fn(limits::enforce))
                .wrap(from_fn(observe::observe))
                .service(get("/health", web::to(get_health)))
                .service(get("/ready", web::to(get_ready)))
                .service(get("/internal-backstage/prometheus", web::to(get_metrics)))
                .service(get("/docs/openapi.json", web::to(get_openapi)))
                .service(endpoint(
                    "/edge/validate",
                    vec![(Method::POST, web::to(verify::validate_edge_tokens))],
                ))
                .service(web::resource("/api/verify").to(verify::verify_token))
                .service(
                    web::scope("/api/admin")
                        .wrap(from_fn(auth::require_admin))
                        .service(endpoint(
                            "/api-tokens",
                            vec![
                                (Method::GET, web::to(list_api_tokens)),
                                (Method::POST, web::to(create_api_token)),
                            ],
                        ))
                        .service(endpoint(
                            "/api-tokens/{token}",
                            vec![
                                (Method::GET, web::to(get_api_tokens_by_name)),
                                (Method::PUT, web::to(update_api_token)),
                                (Method::DELETE, web::to(delete_api_token)),
                            ],
                        ))
                        .service(endpoint(
                            "/api-tokens/{token}/rotate",
                            vec![(Method::POST, web::to(lifecycle::rotate_api_token))],
                        ))
                        .service(get("/events", web::to(list_events)))
                        .service(get("/search/events", web::to(lifecycle::search_events)))
                        .service(get("/projects", web::to(list_projects)))
                        .service(get("/environments", web::to(list_environments)))
                        .default_service(web::to(not_found)),
                )
                .default_service(web::to(not_found)),
        );
    }
}
