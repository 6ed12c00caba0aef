//! The token lifecycle over HTTP (lifecycle.md §1–§3), on SQLite or, with
//! `KEYWARDEN_TEST_BACKEND=postgres`, PostgreSQL: rotation with an overlap,
//! the lifetime policy, and paging the whole audit trail. The two-instance
//! case needs `TEST_POSTGRES_URL` and is skipped without it.
#![expect(clippy::unwrap_used, reason = "test helpers fail the test loudly")]

use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{SecondsFormat, Utc};
use keywarden_test_support::app::{spawn_on, spawn_with, TestApp};
use keywarden_test_support::http::Response;
use keywarden_test_support::TestDatabase;
use serde_json::{json, Value};

fn rfc3339(at: chrono::DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::Millis, true)
}

async fn rotate(app: &TestApp, token: &str, body: Value) -> Response {
    app.post_json(
        &format!("/api/admin/api-tokens/{token}/rotate"),
        &app.admin,
        &body,
    )
    .await
}

/// Rotates `token` with an overlap until `previous`; the 201 response.
async fn rotate_until(app: &TestApp, token: &str, previous: chrono::DateTime<Utc>) -> Response {
    let response = rotate(app, token, json!({"previousExpiresAt": rfc3339(previous)})).await;
    assert_eq!(response.status, 201, "{}", response.body);
    response
}

/// The selector of the generated admin token.
async fn admin_selector(app: &TestApp) -> String {
    app.tokens()
        .await
        .into_iter()
        .find(|t| t["type"] == "admin")
        .unwrap()["secret"]
        .as_str()
        .unwrap()
        .to_string()
}

/// A backend token answers 403 on the Admin API while valid, 401 once not.
async fn status_of(app: &TestApp, credential: &str) -> u16 {
    app.get("/api/admin/api-tokens", credential).await.status
}

/// Waits, by the clock, until `at` has passed (the behaviour under test is
/// time itself: there is no other signal to wait for).
async fn sleep_until(at: chrono::DateTime<Utc>) {
    let left = (at - Utc::now()).to_std().unwrap_or_default();
    actix_web::rt::time::sleep(left + Duration::from_millis(5)).await;
}

#[actix_web::test]
async fn both_credentials_work_during_the_overlap_and_the_old_one_stops_after_it() {
    let app = spawn_with(&[], |_| {}).await;
    let expires_at = Utc::now() + chrono::Duration::days(30);
    let (selector, old) = app
        .create(json!({"tokenName": "sdk", "type": "backend", "projects": ["default"], "expiresAt": rfc3339(expires_at)}))
        .await;
    let previous = Utc::now() + chrono::Duration::milliseconds(1500);
    let response = rotate_until(&app, &selector, previous).await;
    assert_eq!(response.headers["location"], "/api/admin/api-tokens/sdk");
    let body = response.json();
    let new = body["secret"].as_str().unwrap().to_string();
    assert!(new.starts_with("default:development.v2_"), "{new}");
    assert_eq!(body["rotatedFrom"], selector.as_str());
    assert_eq!(body["tokenName"], "sdk");
    assert_eq!(body["type"], "backend");
    assert_eq!(body["projects"], json!(["default"]));
    // The lifetime (30 days) is carried over from now.
    let new_expiry: chrono::DateTime<Utc> = body["expiresAt"].as_str().unwrap().parse().unwrap();
    assert!(new_expiry > expires_at);

    assert_eq!(status_of(&app, &old).await, 403);
    assert_eq!(status_of(&app, &new).await, 403);
    sleep_until(previous).await;
    assert_eq!(
        status_of(&app, &old).await,
        401,
        "refused right after the overlap"
    );
    assert_eq!(status_of(&app, &new).await, 403);
    assert_eq!(
        app.token(&selector).await["expiresAt"],
        rfc3339(previous).as_str()
    );

    // The audit trail tells the story.
    let page = app
        .get(
            "/api/admin/search/events?type=IS:api-token-created&limit=1",
            &app.admin,
        )
        .await
        .json();
    assert_eq!(page["events"][0]["data"]["rotatedFrom"], selector.as_str());
    let updated = app
        .get(
            "/api/admin/search/events?type=IS:api-token-updated",
            &app.admin,
        )
        .await
        .json();
    assert_eq!(updated["events"][0]["data"]["secret"], selector.as_str());
    assert_eq!(updated["total"], 1);
}

#[actix_web::test]
async fn rotation_refusals_follow_the_contract() {
    let app = spawn_with(&[], |_| {}).await;
    let soon = Utc::now() + chrono::Duration::hours(1);
    let (selector, _) = app
        .create(json!({"tokenName": "sdk", "type": "client", "expiresAt": rfc3339(soon)}))
        .await;
    let later = rfc3339(soon + chrono::Duration::seconds(1));
    let response = rotate(&app, &selector, json!({"previousExpiresAt": later})).await;
    assert_eq!(response.status, 400, "{}", response.body);
    assert_eq!(
        response.json()["details"][0]["path"],
        "/body/previousExpiresAt"
    );
    let response = rotate(&app, &selector, json!({})).await;
    assert_eq!(response.status, 400);
    assert_eq!(
        response.json()["details"][0]["path"],
        "/body/previousExpiresAt"
    );
    let response = rotate(&app, &selector, json!({"previousExpiresAt": "tomorrow"})).await;
    assert_eq!(response.status, 400);
    // Admin tokens: the command line only.
    let admin_selector = admin_selector(&app).await;
    let now = rfc3339(Utc::now());
    let response = rotate(&app, &admin_selector, json!({"previousExpiresAt": now})).await;
    assert_eq!(
        (response.status, response.error_name()),
        (400, "BadDataError".into())
    );
    let response = rotate(&app, "nosuchtoken", json!({"previousExpiresAt": now})).await;
    assert_eq!(
        (response.status, response.error_name()),
        (404, "NotFoundError".into())
    );
    // One successor per token.
    assert_eq!(
        rotate(&app, &selector, json!({"previousExpiresAt": now}))
            .await
            .status,
        201
    );
    let response = rotate(&app, &selector, json!({"previousExpiresAt": now})).await;
    assert_eq!(response.status, 409, "{}", response.body);
    assert!(response.json()["message"]
        .as_str()
        .unwrap()
        .contains("already"));
}

#[actix_web::test]
async fn rotation_is_allowed_at_the_token_limit() {
    // The generated admin token and one more.
    let app = spawn_with(&[], |settings| settings.tokens.limit = 2).await;
    let (selector, _) = app
        .create(json!({"tokenName": "sdk", "type": "backend"}))
        .await;
    let now = rfc3339(Utc::now());
    let response = rotate(&app, &selector, json!({"previousExpiresAt": now})).await;
    assert_eq!(response.status, 201, "{}", response.body);
}

#[actix_web::test]
async fn the_lifetime_policy_names_its_limit_before_looking_tokens_up() {
    let app = spawn_with(&[], |settings| {
        settings.tokens.max_lifetime = Some("1d".into());
    })
    .await;
    let beyond = rfc3339(Utc::now() + chrono::Duration::days(2));
    let response = app
        .post_json(
            "/api/admin/api-tokens",
            &app.admin,
            &json!({"tokenName": "long", "type": "backend", "expiresAt": beyond}),
        )
        .await;
    assert_eq!(response.status, 400, "{}", response.body);
    let error = response.json();
    assert_eq!(error["name"], "BadDataError");
    assert_eq!(error["details"][0]["path"], "/body/expiresAt");
    assert!(error["message"].as_str().unwrap().contains("1d"), "{error}");
    // Even for a token that does not exist.
    let response = app
        .put_expiry("/api/admin/api-tokens/nosuchtoken", &app.admin, &beyond)
        .await;
    assert_eq!(response.status, 400, "{}", response.body);
    // No expiry asked for: capped at the maximum.
    let response = app
        .post_json(
            "/api/admin/api-tokens",
            &app.admin,
            &json!({"tokenName": "default", "type": "backend"}),
        )
        .await;
    assert_eq!(response.status, 201, "{}", response.body);
    let expiry: chrono::DateTime<Utc> = response.json()["expiresAt"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(expiry <= Utc::now() + chrono::Duration::days(1));
    // The first-run admin token is exempt.
    let admin_selector = admin_selector(&app).await;
    let response = app
        .put_expiry(
            &format!("/api/admin/api-tokens/{admin_selector}"),
            &app.admin,
            &beyond,
        )
        .await;
    assert_eq!(response.status, 200, "{}", response.body);
}

#[actix_web::test]
async fn paging_the_audit_trail_returns_every_event_exactly_once() {
    let app = spawn_with(&[], |_| {}).await;
    for i in 0..7 {
        let (selector, _) = app
            .create(json!({"tokenName": format!("t{i}"), "type": "backend"}))
            .await;
        if i % 2 == 0 {
            assert_eq!(
                app.delete(&format!("/api/admin/api-tokens/{selector}"), &app.admin)
                    .await
                    .status,
                200
            );
        }
    }
    let everything = app.events("?limit=1000").await;
    let mut ids = Vec::new();
    let mut offset = 0;
    loop {
        let response = app
            .get(
                &format!("/api/admin/search/events?offset={offset}&limit=3"),
                &app.admin,
            )
            .await;
        assert_eq!(response.status, 200, "{}", response.body);
        let page = response.json();
        assert_eq!(page["total"], everything.len());
        let events = page["events"].as_array().unwrap();
        if events.is_empty() {
            break;
        }
        offset += events.len();
        ids.extend(events.iter().map(|e| e["id"].as_i64().unwrap()));
    }
    let expected: Vec<i64> = everything
        .iter()
        .map(|e| e["id"].as_i64().unwrap())
        .collect();
    assert_eq!(ids, expected);

    let today = Utc::now().format("%Y-%m-%d").to_string();
    let filtered = app
        .get(
            &format!("/api/admin/search/events?type=IS_ANY_OF:api-token-deleted&createdBy=IS:admin&from=IS:{today}&to=IS:{today}&query=T"),
            &app.admin,
        )
        .await
        .json();
    assert_eq!(filtered["total"], 4, "{filtered}");
    let default_page = app.get("/api/admin/search/events", &app.admin).await.json();
    assert_eq!(
        default_page["events"].as_array().unwrap().len(),
        everything.len().min(50)
    );

    // What no stored event can hold (NUL) matches nothing; the last day
    // there is bounds nothing.
    for query in [
        "query=%00",
        "createdBy=IS:a%00b",
        "type=IS_ANY_OF:x,%00",
        "to=IS:9999-12-31",
        "offset=18446744073709551615",
    ] {
        let response = app
            .get(&format!("/api/admin/search/events?{query}"), &app.admin)
            .await;
        assert_eq!(response.status, 200, "{query}: {}", response.body);
    }
    for (query, name) in [
        ("type=api-token-created", "type"),
        ("createdBy=admin", "createdBy"),
        ("from=IS:2030-13-01", "from"),
        ("to=yesterday", "to"),
        ("limit=-1", "limit"),
        ("offset=x", "offset"),
    ] {
        let response = app
            .get(&format!("/api/admin/search/events?{query}"), &app.admin)
            .await;
        assert_eq!(response.status, 400, "{query}");
        assert_eq!(response.error_name(), "BadDataError");
        assert_eq!(
            response.json()["details"][0]["path"],
            format!("/query/{name}")
        );
    }
}

#[actix_web::test]
async fn the_overlap_ends_on_every_instance_within_a_second() {
    const ADMIN: &str = "*:*.shared-admin-for-both-instances-of-this-test";
    let Some(database) = actix_web::rt::task::spawn_blocking(TestDatabase::create)
        .await
        .unwrap()
        .map(Arc::new)
    else {
        return;
    };
    let instance = || async {
        let mut app = spawn_on(
            Some(Arc::clone(&database)),
            &[("INIT_ADMIN_API_TOKENS", ADMIN)],
            |_| {},
        )
        .await;
        app.admin = ADMIN.to_string();
        app
    };
    let a = instance().await;
    let b = instance().await;
    let (selector, old) = a
        .create(json!({"tokenName": "sdk", "type": "backend"}))
        .await;
    let previous = Utc::now() + chrono::Duration::seconds(2);
    let new = rotate_until(&a, &selector, previous).await.json()["secret"]
        .as_str()
        .unwrap()
        .to_string();
    // Both work on both during the overlap (the new one once B heard of it).
    let start = Instant::now();
    while status_of(&b, &new).await != 403 {
        assert!(
            start.elapsed() < Duration::from_secs(1),
            "B never learnt the new token"
        );
        actix_web::rt::time::sleep(Duration::from_millis(5)).await;
    }
    for app in [&a, &b] {
        assert_eq!(status_of(app, &old).await, 403);
    }
    sleep_until(previous).await;
    for app in [&a, &b] {
        let start = Instant::now();
        while status_of(app, &old).await != 401 {
            assert!(start.elapsed() < Duration::from_secs(1), "old still valid");
            actix_web::rt::time::sleep(Duration::from_millis(5)).await;
        }
        assert_eq!(status_of(app, &new).await, 403);
    }
}
