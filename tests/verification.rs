//! End to end: checking tokens for the services they protect
//! (verification.md §1–§3) over real HTTP, on SQLite or on PostgreSQL
//! (`KEYWARDEN_TEST_BACKEND=postgres`).

use keywarden::settings::ProjectSettings;
use keywarden_test_support::app::{spawn_with, TestApp};
use keywarden_test_support::http::{assert_error, Response};
use serde_json::{json, Value};

const ADMIN: &str = "*:*.verification-admin";
const PAST: &str = "2001-01-01T00:00:00.000Z";
const FUTURE: &str = "2040-01-01T00:00:00.000Z";

/// An app with projects `default`, `web` and `shop`, and a known admin.
async fn app() -> TestApp {
    app_with(|_| {}).await
}

async fn app_with(customize: impl FnOnce(&mut keywarden::Settings)) -> TestApp {
    let mut app = spawn_with(&[("INIT_ADMIN_API_TOKENS", ADMIN)], |settings| {
        for id in ["web", "shop"] {
            settings.projects.push(ProjectSettings {
                id: id.to_string(),
                name: id.to_string(),
                description: None,
            });
        }
        customize(settings);
    })
    .await;
    app.admin = ADMIN.to_string();
    app
}

async fn verify(app: &TestApp, query: &str, credential: Option<&str>) -> Response {
    let headers: Vec<(&str, &str)> = credential
        .map(|c| vec![("Authorization", c)])
        .unwrap_or_default();
    app.send("GET", &format!("/api/verify{query}"), &headers, None)
        .await
}

async fn edge(app: &TestApp, body: &Value) -> Response {
    app.send(
        "POST",
        "/edge/validate",
        &[("Content-Type", "application/json")],
        Some(&body.to_string()),
    )
    .await
}

#[actix_web::test]
async fn verify_answers_200_with_the_token_facts_for_a_valid_token_in_scope() {
    let app = app().await;
    let (selector, credential) = app
        .create(
            json!({"tokenName": "shop front ü", "type": "backend", "projects": ["web", "shop"],
            "environment": "production", "expiresAt": FUTURE}),
        )
        .await;
    let response = verify(
        &app,
        "?type=backend&environment=production&project=web&project=shop",
        Some(&format!("Bearer {credential}")),
    )
    .await;
    assert_eq!(response.status, 200, "{}", response.body);
    assert_eq!(response.headers["x-token-id"], selector);
    assert_eq!(response.headers["x-token-name"], "shop%20front%20%C3%BC");
    assert_eq!(response.headers["x-token-type"], "client");
    assert_eq!(response.headers["x-token-environment"], "production");
    assert_eq!(response.headers["x-token-projects"], "shop,web");
    assert_eq!(response.headers["cache-control"], "no-store");
    assert_eq!(
        response.json(),
        json!({"id": selector, "tokenName": "shop front ü", "type": "client",
            "projects": ["shop", "web"], "environment": "production", "expiresAt": FUTURE})
    );
    for method in ["HEAD", "POST", "OPTIONS", "DELETE"] {
        let response = app
            .send(
                method,
                "/api/verify",
                &[("Authorization", &credential)],
                None,
            )
            .await;
        assert_eq!(response.status, 200, "{method}");
        assert_eq!(response.headers["x-token-id"], selector, "{method}");
    }
}

#[actix_web::test]
async fn verify_refuses_missing_unknown_expired_and_deleted_credentials_at_once() {
    let app = app().await;
    let (selector, credential) = app
        .create(json!({"tokenName": "sdk", "type": "frontend"}))
        .await;
    let (gone, gone_credential) = app
        .create(json!({"tokenName": "gone", "type": "client"}))
        .await;
    assert_eq!(verify(&app, "", Some(&credential)).await.status, 200);
    assert_eq!(verify(&app, "", Some(&gone_credential)).await.status, 200);

    let path = format!("/api/admin/api-tokens/{selector}");
    assert_eq!(app.put_expiry(&path, ADMIN, PAST).await.status, 200);
    let deleted = app
        .delete(&format!("/api/admin/api-tokens/{gone}"), ADMIN)
        .await;
    assert_eq!(deleted.status, 200);

    for (credential, name) in [
        (None, "AuthenticationRequired"),
        (Some("*:development.unknown"), "UnauthorizedError"),
        (Some(credential.as_str()), "UnauthorizedError"),
        (Some(gone_credential.as_str()), "UnauthorizedError"),
    ] {
        let response = verify(&app, "", credential).await;
        assert_error(&response, 401, name);
        assert_eq!(
            response.headers["www-authenticate"], "Bearer realm=\"keywarden\"",
            "{credential:?}"
        );
        assert_eq!(response.headers["cache-control"], "no-store");
        if let Some(credential) = credential {
            assert!(!response.body.contains(credential), "{}", response.body);
        }
    }
}

#[actix_web::test]
async fn verify_refuses_tokens_outside_the_required_scope_naming_what_is_missing() {
    let app = app().await;
    let (_, backend) = app
        .create(json!({"tokenName": "sdk", "type": "backend", "projects": ["web"]}))
        .await;
    for (query, named) in [
        ("?environment=production", "environment production"),
        ("?project=shop", "project shop"),
        ("?project=web&project=shop", "project shop"),
        ("?type=frontend,admin", "client tokens"),
    ] {
        let response = verify(&app, query, Some(&backend)).await;
        assert_error(&response, 403, "ForbiddenError");
        let message = response.json()["message"].as_str().unwrap().to_string();
        assert!(message.contains(named), "{query}: {message}");
        assert!(
            !message.contains(keywarden_test_support::app::random_part(&backend)),
            "{query}"
        );
        assert_eq!(response.headers["cache-control"], "no-store");
    }
    // Admin credentials pass only where admin is listed; `*` matches anything.
    assert_error(&verify(&app, "", Some(ADMIN)).await, 403, "ForbiddenError");
    let response = verify(
        &app,
        "?type=admin&environment=production&project=shop",
        Some(ADMIN),
    )
    .await;
    assert_eq!(response.status, 200, "{}", response.body);
    assert_eq!(response.headers["x-token-projects"], "*");
    assert_eq!(response.headers["x-token-environment"], "*");
}

#[actix_web::test]
async fn verify_names_unknown_parameters_and_values_with_400() {
    let app = app().await;
    for (query, named) in [
        ("?enviroment=production", "enviroment"),
        ("?type=backend,fronted", "fronted"),
        ("?environment=staging", "staging"),
        ("?project=web&project=blog", "blog"),
    ] {
        let response = verify(&app, query, Some(ADMIN)).await;
        assert_error(&response, 400, "BadDataError");
        let message = response.json()["message"].as_str().unwrap().to_string();
        assert!(message.contains(named), "{query}: {message}");
        assert_eq!(response.headers["cache-control"], "no-store");
    }
}

#[actix_web::test]
async fn two_authorization_headers_are_unauthorized_on_verify_and_admin_routes() {
    let app = app().await;
    let headers = [("Authorization", ADMIN), ("Authorization", ADMIN)];
    for target in ["/api/verify?type=admin", "/api/admin/api-tokens"] {
        let response = app.send("GET", target, &headers, None).await;
        assert_error(&response, 401, "UnauthorizedError");
    }
}

#[actix_web::test]
async fn edge_validate_lists_valid_credentials_in_order_and_leaves_out_the_rest() {
    let app = app().await;
    let (_, backend) = app
        .create(json!({"tokenName": "sdk", "type": "backend", "projects": ["web"]}))
        .await;
    let (_, frontend) = app
        .create(json!({"tokenName": "ui", "type": "frontend", "environment": "production"}))
        .await;
    let (expiring, expiring_credential) = app
        .create(json!({"tokenName": "old", "type": "client"}))
        .await;
    let path = format!("/api/admin/api-tokens/{expiring}");
    assert_eq!(app.put_expiry(&path, ADMIN, PAST).await.status, 200);

    let body =
        json!({"tokens": [frontend, "*:*.unknown", backend, expiring_credential, ADMIN, frontend]});
    let response = app
        .send(
            "POST",
            "/edge/validate",
            &[
                ("Content-Type", "application/json"),
                ("Authorization", "*:*.not-even-valid"),
            ],
            Some(&body.to_string()),
        )
        .await;
    assert_eq!(response.status, 200, "{}", response.body);
    let ui = json!({"token": frontend, "type": "frontend", "projects": ["*"], "environment": "production"});
    assert_eq!(
        response.json(),
        json!({"tokens": [
            ui,
            {"token": backend, "type": "client", "projects": ["web"], "environment": "development"},
            {"token": ADMIN, "type": "admin", "projects": ["*"], "environment": "*"},
            ui,
        ]})
    );
}

#[actix_web::test]
async fn edge_validate_refuses_bad_bodies_with_the_contract_errors() {
    let app = app_with(|settings| settings.server.body_limit_bytes = 1024).await;
    let response = edge(&app, &json!({"tokens": ["a", 7]})).await;
    assert_error(&response, 400, "BadDataError");
    assert_eq!(response.json()["details"][0]["path"], "/body/tokens/1");
    assert_error(
        &edge(&app, &json!({"tokens": "a"})).await,
        400,
        "BadDataError",
    );
    assert_error(&edge(&app, &json!([])).await, 400, "BadDataError");
    let malformed = app
        .send(
            "POST",
            "/edge/validate",
            &[("Content-Type", "application/json")],
            Some("{\"tokens\": ["),
        )
        .await;
    assert_error(&malformed, 400, "BadDataError");
    let text = app
        .send(
            "POST",
            "/edge/validate",
            &[("Content-Type", "text/plain")],
            Some("{}"),
        )
        .await;
    assert_error(&text, 415, "ContentTypeError");
    // 1,000 entries pass whatever server.body_limit_bytes says; 1,001 do not.
    let thousand: Vec<String> = (0..1000)
        .map(|i| format!("*:development.{i:0>120}"))
        .collect();
    let response = edge(&app, &json!({ "tokens": thousand })).await;
    assert_eq!(response.status, 200, "{}", response.body);
    assert_eq!(response.json(), json!({"tokens": []}));
    let response = edge(&app, &json!({"tokens": vec!["x"; 1001]})).await;
    assert_error(&response, 400, "BadDataError");
    let huge = format!("{{\"tokens\": [\"{}\"]}}", "x".repeat(300 * 1024));
    let response = app
        .send(
            "POST",
            "/edge/validate",
            &[("Content-Type", "application/json")],
            Some(&huge),
        )
        .await;
    assert_error(&response, 413, "ContentTooLargeError");
}

#[actix_web::test]
async fn verifications_are_seen_and_counted_without_credentials_in_labels() {
    let app = app_with(|settings| settings.tokens.seen_flush_interval_ms = 20).await;
    let (selector, credential) = app
        .create(json!({"tokenName": "metric-name-canary", "type": "backend"}))
        .await;
    assert_eq!(verify(&app, "", Some(&credential)).await.status, 200);
    assert_eq!(verify(&app, "", None).await.status, 401);
    assert_eq!(verify(&app, "", Some("*:*.nope")).await.status, 401);
    assert_eq!(
        verify(&app, "?environment=production", Some(&credential))
            .await
            .status,
        403
    );
    let response = edge(&app, &json!({"tokens": [credential]})).await;
    assert_eq!(response.status, 200);

    // Poll: the flush runs on its own schedule; the deadline bounds the wait.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while app.token(&selector).await["seenAt"].is_null() {
        assert!(
            std::time::Instant::now() < deadline,
            "seenAt was never written"
        );
        actix_web::rt::time::sleep(std::time::Duration::from_millis(20)).await;
    }

    let metrics = app
        .send("GET", "/internal-backstage/prometheus", &[], None)
        .await
        .body;
    for result in ["ok", "missing", "unknown", "out_of_scope"] {
        assert!(
            metrics
                .lines()
                .any(|line| line.starts_with("keywarden_verifications_total")
                    && line.contains("endpoint=\"verify\"")
                    && line.contains(&format!("result=\"{result}\""))),
            "{result} not counted:\n{metrics}"
        );
    }
    assert!(metrics
        .lines()
        .any(|line| line.starts_with("keywarden_verifications_total")
            && line.contains("endpoint=\"edge_validate\"")
            && line.contains("result=\"ok\"")));
    assert!(!metrics.contains("metric-name-canary"));
    assert!(!metrics.contains(keywarden_test_support::app::random_part(&credential)));
}
