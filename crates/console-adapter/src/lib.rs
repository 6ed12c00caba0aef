//! The admin console: an inbound adapter that serves static pages compiled
//! into the binary. The pages are a client of the public JSON API and
//! nothing else, so this crate owns only delivery: the asset table, content
//! types, validators (`ETag` → 304) and the security headers every console
//! response carries. It never sees a credential.

use std::sync::LazyLock;

use actix_web::http::header::{
    self, HeaderName, HeaderValue, CACHE_CONTROL, CONTENT_TYPE, ETAG, IF_NONE_MATCH, LOCATION,
};
use actix_web::{guard, web, HttpRequest, HttpResponse, HttpResponseBuilder, ResponseError};
use keywarden_http_adapter::{ApiError, ErrorKind};
use sha2::{Digest, Sha256};

/// Where the console lives; `/` and `/admin` redirect here.
pub const CONSOLE_PATH: &str = "/admin/";

/// Same-origin only, nothing inline: a token manager must not run a script
/// it did not ship, nor be framed for clickjacking.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; \
    style-src 'self'; img-src 'self'; connect-src 'self'; font-src 'self'; \
    manifest-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

const SECURITY_HEADERS: [(&str, &str); 5] = [
    ("content-security-policy", CONTENT_SECURITY_POLICY),
    ("x-content-type-options", "nosniff"),
    ("referrer-policy", "no-referrer"),
    ("x-frame-options", "DENY"),
    ("cross-origin-opener-policy", "same-origin"),
];

/// One file compiled into the binary, served at `path`.
struct Asset {
    path: &'static str,
    content_type: &'static str,
    body: &'static [u8],
}

const HTML: &str = "text/html; charset=utf-8";
const CSS: &str = "text/css; charset=utf-8";
const JS: &str = "text/javascript; charset=utf-8";
const ICON: &str = "image/x-icon";

macro_rules! asset {
    ($path:literal, $file:literal, $type:expr) => {
        Asset {
            path: $path,
            content_type: $type,
            body: include_bytes!(concat!("../assets/", $file)),
        }
    };
}

const ASSETS: [Asset; 10] = [
    asset!("/admin/", "index.html", HTML),
    asset!("/admin/console.css", "console.css", CSS),
    asset!("/admin/app.js", "app.js", JS),
    asset!("/admin/api.js", "api.js", JS),
    asset!("/admin/format.js", "format.js", JS),
    asset!("/admin/tokens.js", "tokens.js", JS),
    asset!("/admin/dialogs.js", "dialogs.js", JS),
    asset!("/admin/audit.js", "audit.js", JS),
    asset!("/admin/favicon.ico", "favicon.ico", ICON),
    // Browsers ask for the icon at the root whatever the page says.
    asset!("/favicon.ico", "favicon.ico", ICON),
];

/// A strong validator per asset, computed once: the assets cannot change
/// while the binary runs.
static ETAGS: LazyLock<Vec<HeaderValue>> = LazyLock::new(|| {
    ASSETS
        .iter()
        .map(|asset| {
            let digest = Sha256::digest(asset.body);
            let hex: String = digest[..12].iter().map(|b| format!("{b:02x}")).collect();
            HeaderValue::from_str(&format!("\"{hex}\"")).unwrap_or(HeaderValue::from_static("\"\""))
        })
        .collect()
});

/// Registers the console's routes. Register it before the JSON API's
/// `configure`: that one ends in a catch-all scope.
pub fn configure(cfg: &mut web::ServiceConfig) {
    for (index, asset) in ASSETS.iter().enumerate() {
        cfg.service(
            page(asset.path).route(get_or_head().to(move |req: HttpRequest| {
                std::future::ready(serve(&ASSETS[index], &ETAGS[index], &req))
            })),
        );
    }
    for from in ["/", "/admin"] {
        cfg.service(page(from).route(get_or_head().to(|| {
            std::future::ready(
                secured(HttpResponse::Found())
                    .insert_header((LOCATION, CONSOLE_PATH))
                    .finish(),
            )
        })));
    }
}

fn get_or_head() -> actix_web::Route {
    web::route().guard(guard::Any(guard::Get()).or(guard::Head()))
}

/// A console path: `GET`/`HEAD` as routed by the caller, `OPTIONS` 204 and
/// any other method 405, both with `Allow`, like every JSON API path.
fn page(path: &str) -> actix_web::Resource {
    const ALLOW: &str = "GET, HEAD, OPTIONS";
    web::resource(path)
        .route(web::route().guard(guard::Options()).to(|| {
            std::future::ready(
                secured(HttpResponse::NoContent())
                    .insert_header((header::ALLOW, ALLOW))
                    .finish(),
            )
        }))
        .default_service(web::to(|req: HttpRequest| {
            let mut response = ApiError::new(
                ErrorKind::MethodNotAllowed,
                format!("{} is not supported on {}.", req.method(), req.path()),
            )
            .error_response();
            let headers = response.headers_mut();
            headers.insert(header::ALLOW, HeaderValue::from_static(ALLOW));
            for (name, value) in SECURITY_HEADERS {
                headers.insert(
                    HeaderName::from_static(name),
                    HeaderValue::from_static(value),
                );
            }
            std::future::ready(response)
        }))
}

fn secured(status: HttpResponseBuilder) -> HttpResponseBuilder {
    let mut builder = status;
    for header in SECURITY_HEADERS {
        builder.insert_header(header);
    }
    builder
}

/// The asset, or 304 when the client already holds this version. Names are
/// not content-hashed, so every use revalidates (`no-cache`): a new binary's
/// pages are never mixed with an old one's scripts.
fn serve(asset: &Asset, etag: &HeaderValue, req: &HttpRequest) -> HttpResponse {
    let fresh = req
        .headers()
        .get_all(IF_NONE_MATCH)
        .filter_map(|value| value.to_str().ok())
        .any(|value| matches_etag(value, etag.as_bytes()));
    let mut response = secured(if fresh {
        HttpResponse::NotModified()
    } else {
        HttpResponse::Ok()
    });
    response
        .insert_header((ETAG, etag.clone()))
        .insert_header((CACHE_CONTROL, "no-cache"));
    if fresh {
        return response.finish();
    }
    response
        .insert_header((CONTENT_TYPE, asset.content_type))
        .body(asset.body)
}

/// `If-None-Match` uses the weak comparison (RFC 9110 §13.1.2): `*`, or any
/// listed tag equal to ours once a `W/` prefix is dropped.
fn matches_etag(header: &str, etag: &[u8]) -> bool {
    header
        .split(',')
        .map(str::trim)
        .any(|candidate| candidate == "*" || candidate.trim_start_matches("W/").as_bytes() == etag)
}

#[cfg(test)]
mod tests;
