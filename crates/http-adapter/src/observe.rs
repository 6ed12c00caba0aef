//! Per-request observability: a request id (taken from `x-request-id` when the
//! client sent a sane one), one log line per request, and request counts and
//! latency histograms by route and status. Routes are logged by pattern
//! (`/api/admin/api-tokens/{token}`), never by path: paths can carry credentials.

use std::collections::HashSet;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{OnceLock, PoisonError, RwLock};
use std::time::Instant;

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::{HeaderName, HeaderValue};
use actix_web::middleware::Next;
use tracing::{info, Instrument};
use uuid::Uuid;

const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

fn request_id(req: &ServiceRequest) -> String {
    req.headers()
        .get(&REQUEST_ID)
        .and_then(|value| value.to_str().ok())
        .filter(|id| {
            !id.is_empty()
                && id.len() <= 64
                && id
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
        })
        .map_or_else(generated_id, str::to_string)
}

/// A random per-process prefix and a counter: unique like a UUID for the
/// purpose of finding one request in the logs, without asking the kernel for
/// randomness on every request.
fn generated_id() -> String {
    static PREFIX: OnceLock<String> = OnceLock::new();
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let prefix = PREFIX.get_or_init(|| Uuid::new_v4().simple().to_string()[..12].to_string());
    format!("{prefix}-{:x}", NEXT.fetch_add(1, Ordering::Relaxed))
}

/// Route patterns as `&'static str`, so labelling a metric allocates
/// nothing. The set is bounded: patterns are the routes the service defines.
fn interned(pattern: Option<String>) -> &'static str {
    static KNOWN: OnceLock<RwLock<HashSet<&'static str>>> = OnceLock::new();
    let Some(pattern) = pattern else {
        return "unmatched";
    };
    let known = KNOWN.get_or_init(RwLock::default);
    if let Some(found) = known
        .read()
        .unwrap_or_else(PoisonError::into_inner)
        .get(pattern.as_str())
    {
        return found;
    }
    let mut known = known.write().unwrap_or_else(PoisonError::into_inner);
    if let Some(found) = known.get(pattern.as_str()) {
        return found;
    }
    let leaked: &'static str = Box::leak(pattern.into_boxed_str());
    known.insert(leaked);
    leaked
}

/// Status codes as label values without formatting each time.
fn status_label(status: u16) -> metrics::SharedString {
    match status {
        200 => "200".into(),
        201 => "201".into(),
        204 => "204".into(),
        400 => "400".into(),
        401 => "401".into(),
        403 => "403".into(),
        404 => "404".into(),
        other => other.to_string().into(),
    }
}

pub(crate) async fn observe<B: MessageBody + 'static>(
    req: ServiceRequest,
    next: Next<B>,
) -> Result<ServiceResponse<B>, actix_web::Error> {
    let started = Instant::now();
    let id = request_id(&req);
    // A fixed set: clients choose the method, and every label value is a series.
    let method: &'static str = match req.method().as_str() {
        "GET" => "GET",
        "POST" => "POST",
        "PUT" => "PUT",
        "DELETE" => "DELETE",
        "PATCH" => "PATCH",
        "HEAD" => "HEAD",
        "OPTIONS" => "OPTIONS",
        _ => "other",
    };
    let span = tracing::info_span!("request", request_id = %id);
    let mut response = next.call(req).instrument(span).await?;
    let route = interned(response.request().match_pattern());
    let status = response.status().as_u16();
    let elapsed = started.elapsed();
    if let Ok(value) = HeaderValue::from_str(&id) {
        response.headers_mut().insert(REQUEST_ID, value);
    }
    metrics::counter!(
        "keywarden_http_requests_total",
        "method" => method,
        "route" => route,
        "status" => status_label(status)
    )
    .increment(1);
    metrics::histogram!(
        "keywarden_http_request_duration_seconds",
        "method" => method,
        "route" => route
    )
    .record(elapsed.as_secs_f64());
    info!(
        request_id = %id,
        method = %method,
        route = %route,
        status,
        latency_ms = elapsed.as_secs_f64() * 1000.0,
        "request"
    );
    Ok(response)
}
