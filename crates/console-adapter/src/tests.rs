//! The console's delivery over actix's test service: types, validators,
//! security headers, redirects, and that unknown paths are left to others.

use actix_web::http::header::{self, HeaderMap};
use actix_web::http::{Method, StatusCode};
use actix_web::test::{call_service, init_service, read_body, TestRequest};
use actix_web::{web, App, HttpResponse};

use super::{configure, CONTENT_SECURITY_POLICY};

/// The console, and a fallback standing in for the JSON API's catch-all.
macro_rules! console {
    () => {
        init_service(
            App::new()
                .configure(configure)
                .default_service(web::to(|| async { HttpResponse::ImATeapot().finish() })),
        )
        .await
    };
}

fn header<'a>(headers: &'a HeaderMap, name: &str) -> &'a str {
    headers
        .get(name)
        .unwrap_or_else(|| panic!("no {name} header"))
        .to_str()
        .unwrap()
}

fn assert_secured(headers: &HeaderMap) {
    assert_eq!(
        header(headers, "content-security-policy"),
        CONTENT_SECURITY_POLICY
    );
    assert_eq!(header(headers, "x-content-type-options"), "nosniff");
    assert_eq!(header(headers, "referrer-policy"), "no-referrer");
    assert_eq!(header(headers, "x-frame-options"), "DENY");
}

#[actix_web::test]
async fn every_asset_has_its_content_type_and_the_security_headers() {
    let app = console!();
    for (path, content_type) in [
        ("/admin/", "text/html; charset=utf-8"),
        ("/admin/console.css", "text/css; charset=utf-8"),
        ("/admin/app.js", "text/javascript; charset=utf-8"),
        ("/admin/api.js", "text/javascript; charset=utf-8"),
        ("/admin/tokens.js", "text/javascript; charset=utf-8"),
        ("/admin/audit.js", "text/javascript; charset=utf-8"),
        ("/admin/dialogs.js", "text/javascript; charset=utf-8"),
        ("/admin/format.js", "text/javascript; charset=utf-8"),
        ("/admin/favicon.ico", "image/x-icon"),
        ("/favicon.ico", "image/x-icon"),
    ] {
        let response = call_service(&app, TestRequest::get().uri(path).to_request()).await;
        assert_eq!(response.status(), StatusCode::OK, "{path}");
        assert_eq!(
            header(response.headers(), "content-type"),
            content_type,
            "{path}"
        );
        assert_eq!(
            header(response.headers(), "cache-control"),
            "no-cache",
            "{path}"
        );
        assert_secured(response.headers());
        assert!(!read_body(response).await.is_empty(), "{path} is empty");
    }
}

#[actix_web::test]
async fn the_csp_forbids_inline_code_and_framing() {
    for directive in [
        "default-src 'none'",
        "script-src 'self'",
        "style-src 'self'",
        "connect-src 'self'",
        "img-src 'self'",
        "frame-ancestors 'none'",
        "base-uri 'none'",
    ] {
        assert!(CONTENT_SECURITY_POLICY.contains(directive), "{directive}");
    }
    assert!(!CONTENT_SECURITY_POLICY.contains("unsafe"));
}

#[actix_web::test]
async fn the_page_has_no_inline_script_or_style_and_names_no_other_origin() {
    let app = console!();
    let response = call_service(&app, TestRequest::get().uri("/admin/").to_request()).await;
    let page = String::from_utf8(read_body(response).await.to_vec()).unwrap();
    assert!(!page.contains("<style"), "inline style element");
    assert!(!page.contains(" style="), "inline style attribute");
    let handler = page.split(" on").skip(1).find(|rest| {
        let name: String = rest.chars().take_while(char::is_ascii_lowercase).collect();
        !name.is_empty() && rest[name.len()..].starts_with('=')
    });
    assert!(handler.is_none(), "inline event handler: on{handler:?}");
    for script in page.split("<script").skip(1) {
        assert!(script.contains("src=\"/admin/"), "inline script: {script}");
    }
    assert!(!page.contains("http://") && !page.contains("https://") && !page.contains("//cdn"));
}

#[actix_web::test]
async fn a_matching_if_none_match_gets_304_without_a_body() {
    let app = console!();
    let first = call_service(&app, TestRequest::get().uri("/admin/app.js").to_request()).await;
    let etag = header(first.headers(), "etag").to_string();
    assert!(etag.starts_with('"') && etag.ends_with('"'), "{etag}");
    for sent in [
        etag.clone(),
        format!("W/{etag}"),
        format!("\"other\", {etag}"),
        "*".to_string(),
    ] {
        let again = call_service(
            &app,
            TestRequest::get()
                .uri("/admin/app.js")
                .insert_header((header::IF_NONE_MATCH, sent.as_str()))
                .to_request(),
        )
        .await;
        assert_eq!(again.status(), StatusCode::NOT_MODIFIED, "{sent}");
        assert_eq!(header(again.headers(), "etag"), etag);
        assert_secured(again.headers());
        assert!(read_body(again).await.is_empty());
    }
    let stale = call_service(
        &app,
        TestRequest::get()
            .uri("/admin/app.js")
            .insert_header((header::IF_NONE_MATCH, "\"stale\""))
            .to_request(),
    )
    .await;
    assert_eq!(stale.status(), StatusCode::OK);
}

#[actix_web::test]
async fn each_asset_has_its_own_etag() {
    let app = console!();
    let mut seen = std::collections::HashSet::new();
    for path in ["/admin/", "/admin/app.js", "/admin/console.css"] {
        let response = call_service(&app, TestRequest::get().uri(path).to_request()).await;
        assert!(seen.insert(header(response.headers(), "etag").to_string()));
    }
}

#[actix_web::test]
async fn the_root_and_admin_without_slash_redirect_to_the_console() {
    let app = console!();
    for path in ["/", "/admin"] {
        let response = call_service(&app, TestRequest::get().uri(path).to_request()).await;
        assert_eq!(response.status(), StatusCode::FOUND, "{path}");
        assert_eq!(header(response.headers(), "location"), "/admin/");
        assert_secured(response.headers());
    }
}

#[actix_web::test]
async fn head_answers_like_get_and_other_methods_get_405_with_allow() {
    let app = console!();
    let head = call_service(
        &app,
        TestRequest::default()
            .method(Method::HEAD)
            .uri("/admin/")
            .to_request(),
    )
    .await;
    assert_eq!(head.status(), StatusCode::OK);
    assert_eq!(
        header(head.headers(), "content-type"),
        "text/html; charset=utf-8"
    );

    let options = call_service(
        &app,
        TestRequest::default()
            .method(Method::OPTIONS)
            .uri("/admin/")
            .to_request(),
    )
    .await;
    assert_eq!(options.status(), StatusCode::NO_CONTENT);
    assert_eq!(header(options.headers(), "allow"), "GET, HEAD, OPTIONS");

    let post = call_service(&app, TestRequest::post().uri("/admin/app.js").to_request()).await;
    assert_eq!(post.status(), StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(header(post.headers(), "allow"), "GET, HEAD, OPTIONS");
    assert_secured(post.headers());
    let body: serde_json::Value = serde_json::from_slice(&read_body(post).await).unwrap();
    assert!(
        body["id"].is_string() && body["message"].is_string(),
        "{body}"
    );
}

#[actix_web::test]
async fn unknown_console_paths_fall_through_to_the_api() {
    let app = console!();
    for path in [
        "/admin/nope.js",
        "/admin/../Cargo.toml",
        "/api/admin/api-tokens",
    ] {
        let response = call_service(&app, TestRequest::get().uri(path).to_request()).await;
        assert_eq!(response.status(), StatusCode::IM_A_TEAPOT, "{path}");
    }
}
