//! The HTTP face of keywarden: the Unleash Admin API routes for API tokens
//! (and the service endpoints), wired to the application's `ApiTokenUseCases`
//! port. Owns request parsing, authentication, DTOs and the mapping from
//! errors to status codes; knows nothing of storage.

mod auth;
mod dto;
mod error;
mod extract;
mod handlers;
mod limits;
mod observe;
mod openapi;
mod verify;

use std::sync::Arc;

use actix_web::middleware::from_fn;
use actix_web::web;
use keywarden_application::{ApiTokenUseCases, TokenVerification};

pub use error::{ApiError, ErrorKind};
pub use extract::BodyLimit;
pub use limits::RequestLimits;
pub use openapi::{document as openapi_document, ApiDoc};

/// Renders the Prometheus text exposition of every metric.
pub type MetricsRenderer = Arc<dyn Fn() -> String + Send + Sync>;

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

        // Every known path answers other methods with 405 and the `Allow`
        // header (RFC 9110), rather than 404.
        let only_get = |path: &'static str, handler| {
            web::resource(path)
                .route(handler)
                .default_service(web::to(not_allowed("GET")))
        };
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
                .service(only_get("/health", web::get().to(get_health)))
                .service(only_get("/ready", web::get().to(get_ready)))
                .service(only_get(
                    "/internal-backstage/prometheus",
                    web::get().to(get_metrics),
                ))
                .service(only_get("/docs/openapi.json", web::get().to(get_openapi)))
                .service(
                    web::resource("/edge/validate")
                        .post(verify::validate_edge_tokens)
                        .default_service(web::to(not_allowed("POST"))),
                )
                .service(web::resource("/api/verify").to(verify::verify_token))
                .service(
                    web::scope("/api/admin")
                        .wrap(from_fn(auth::require_admin))
                        .service(
                            web::resource("/api-tokens")
                                .get(list_api_tokens)
                                .post(create_api_token)
                                .default_service(web::to(not_allowed("GET, POST"))),
                        )
                        .service(
                            web::resource("/api-tokens/{token}")
                                .get(get_api_tokens_by_name)
                                .put(update_api_token)
                                .delete(delete_api_token)
                                .default_service(web::to(not_allowed("GET, PUT, DELETE"))),
                        )
                        .service(only_get("/events", web::get().to(list_events)))
                        .service(only_get("/projects", web::get().to(list_projects)))
                        .service(only_get("/environments", web::get().to(list_environments)))
                        .default_service(web::to(not_found)),
                )
                .default_service(web::to(not_found)),
        );
    }
}
