//! End to end: the rest of the API-token resource (list, get by name, create,
//! delete), audit events, projects and environments, last-seen, and the
//! service endpoints (contract §4–§7).

use keywarden::settings::ProjectSettings;
use keywarden_test_support::app::{random_part, spawn_app, spawn_with};
use keywarden_test_support::http::encode;
use serde_json::{json, Value};

fn with_other_project(settings: &mut keywarden::Settings) {
    settings.projects.push(ProjectSettings {
        id: "other".into(),
        name: "Other".into(),
        description: Some("another project".into()),
    });
}

fn is_millis_utc(value: &Value) -> bool {
    value
        .as_str()
        .is_some_and(|text| text.len() == 24 && text.ends_with('Z') && text.as_bytes()[19] == b'.')
}

#[actix_web::test]
async fn create_answers_201_with_the_credential_once_and_reads_show_only_the_selector() {
    let app = spawn_app().await;
    let response = app
        .post_json(
            "/api/admin/api-tokens",
            &app.admin,
            &json!({"tokenName": "my sdk", "type": "Backend", "environment": "production",
                    "expiresAt": "2040-01-01T00:00:00Z"}),
        )
        .await;
    assert_eq!(response.status, 201, "{}", response.body);
    assert_eq!(
        response.headers["location"],
        "/api/admin/api-tokens/my%20sdk"
    );
    let created = response.json();
    let secret = created["secret"].as_str().unwrap();
    let (prefix, rest) = secret.split_once(':').unwrap();
    assert_eq!(prefix, "*");
    let (environment, body) = rest.split_once('.').unwrap();
    assert_eq!(environment, "production");
    assert!(
        body.starts_with("v2_") && body.len() == 3 + 22 + 1 + 43,
        "{body}"
    );
    assert_eq!(created["type"], "backend", "stored lower-case");
    assert_eq!(created["project"], "*");
    assert_eq!(created["projects"], json!(["*"]));
    assert_eq!(created["expiresAt"], "2040-01-01T00:00:00.000Z");
    assert!(is_millis_utc(&created["createdAt"]));
    assert_eq!(created["seenAt"], json!(null));
    assert_eq!(created["alias"], json!(null));
    assert_eq!(created["secure"], true);

    let listed = app
        .get("/api/admin/api-tokens/my%20sdk", &app.admin)
        .await
        .json();
    let token = &listed["tokens"][0];
    assert_eq!(token["secret"], &body[3..25], "reads carry the selector");
    let mut expected = created.clone();
    expected["secret"] = token["secret"].clone();
    expected["type"] = json!("client"); // as Unleash reads a backend token back
    assert_eq!(token, &expected);
    let everything = app.get("/api/admin/api-tokens", &app.admin).await.body;
    assert!(!everything.contains(random_part(secret)));
}

#[actix_web::test]
async fn create_keeps_the_type_name_given_and_honours_projects() {
    let app = spawn_with(&[], with_other_project).await;
    let cases = [
        (
            json!({"tokenName": "a", "type": "client"}),
            "client",
            json!(["*"]),
            "*",
            "*:development.",
        ),
        (
            json!({"tokenName": "b", "type": "FRONTEND", "projects": ["other", "default", "other"]}),
            "frontend",
            json!(["default", "other"]),
            "default,other",
            "[]:development.",
        ),
        (
            json!({"tokenName": "c", "type": "backend", "project": "other"}),
            "backend",
            json!(["other"]),
            "other",
            "other:development.",
        ),
        (
            json!({"tokenName": "d", "type": "backend", "project": "*"}),
            "backend",
            json!(["*"]),
            "*",
            "*:development.",
        ),
        (
            json!({"tokenName": "e", "type": "backend", "projects": ["default", "*"]}),
            "backend",
            json!(["*"]),
            "*",
            "*:development.",
        ),
        (
            json!({"tokenName": "f", "type": "backend", "secret": "*:*.chosen", "alias": "x"}),
            "backend",
            json!(["*"]),
            "*",
            "*:development.v2_",
        ),
        (
            json!({"username": "g", "type": "client", "environment": "production"}),
            "client",
            json!(["*"]),
            "*",
            "*:production.",
        ),
    ];
    for (body, token_type, projects, project, prefix) in cases {
        let response = app
            .post_json("/api/admin/api-tokens", &app.admin, &body)
            .await;
        assert_eq!(response.status, 201, "{body}: {}", response.body);
        let created = response.json();
        assert_eq!(created["type"], token_type, "{body}");
        assert_eq!(created["projects"], projects, "{body}");
        assert_eq!(created["project"], project, "{body}");
        assert!(
            created["secret"].as_str().unwrap().starts_with(prefix),
            "{body}: {created}"
        );
    }
}

#[actix_web::test]
async fn create_rejects_bad_requests_with_named_fields() {
    let app = spawn_app().await;
    let cases = [
        (
            json!({"tokenName": "x", "type": "admin"}),
            "/body/type",
            "Admin tokens",
        ),
        (
            json!({"tokenName": "x", "type": "root"}),
            "/body/type",
            "root",
        ),
        (json!({"tokenName": "x"}), "/body/type", "type"),
        (json!({"type": "client"}), "/body/tokenName", "tokenName"),
        (
            json!({"tokenName": "", "type": "client"}),
            "/body/tokenName",
            "tokenName",
        ),
        (
            json!({"tokenName": "x", "type": "client", "environment": "staging"}),
            "/body/environment",
            "Environment=staging does not exist",
        ),
        (
            json!({"tokenName": "x", "type": "client", "environment": "*"}),
            "/body/environment",
            "concrete environment",
        ),
        (
            json!({"tokenName": "x", "type": "client", "projects": ["nope"]}),
            "/body/projects",
            "Project=nope does not exist",
        ),
        (
            json!({"tokenName": "x", "type": "client", "project": "nope"}),
            "/body/project",
            "Project=nope does not exist",
        ),
        (
            json!({"tokenName": "x", "type": "client", "projects": ["*", "nope"]}),
            "/body/projects",
            "Project=nope does not exist",
        ),
        (
            json!({"tokenName": "x", "type": "client", "projects": []}),
            "/body/projects",
            "at least one project",
        ),
        (
            json!({"tokenName": "x", "type": "client", "projects": ["default"], "project": "default"}),
            "/body/projects",
            "not both",
        ),
        (
            json!({"tokenName": "x", "type": "client", "projects": "default"}),
            "/body/projects",
            "array",
        ),
        (
            json!({"tokenName": "x", "type": "client", "expiresAt": "tomorrow"}),
            "/body/expiresAt",
            "expiresAt",
        ),
        (json!(["tokenName"]), "/body", "object"),
    ];
    for (body, pointer, needle) in cases {
        let response = app
            .post_json("/api/admin/api-tokens", &app.admin, &body)
            .await;
        assert_eq!(response.status, 400, "{body}: {}", response.body);
        let error = response.json();
        assert_eq!(error["name"], "BadDataError", "{body}");
        assert_eq!(error["details"][0]["path"], pointer, "{body}: {error}");
        assert!(
            error["message"].as_str().unwrap().contains(needle),
            "{body}: {error}"
        );
    }
    let malformed = app
        .send(
            "POST",
            "/api/admin/api-tokens",
            &[
                ("Authorization", &app.admin),
                ("Content-Type", "application/json"),
            ],
            Some("{\"tokenName\":"),
        )
        .await;
    assert_eq!(malformed.status, 400);
    assert_eq!(malformed.error_name(), "BadDataError");
    let wrong_type = app
        .send(
            "POST",
            "/api/admin/api-tokens",
            &[
                ("Authorization", &app.admin),
                ("Content-Type", "text/plain"),
            ],
            Some("{}"),
        )
        .await;
    assert_eq!(wrong_type.status, 415);
    assert_eq!(
        app.tokens().await.len(),
        1,
        "only the bootstrap admin exists"
    );
}

#[actix_web::test]
async fn creating_beyond_the_limit_is_refused() {
    let app = spawn_with(&[("UNLEASH_API_TOKENS_LIMIT", "2")], |_| {}).await;
    app.create(json!({"tokenName": "one", "type": "client"}))
        .await;
    let response = app
        .post_json(
            "/api/admin/api-tokens",
            &app.admin,
            &json!({"tokenName": "two", "type": "client"}),
        )
        .await;
    assert_eq!(response.status, 400, "{}", response.body);
    assert_eq!(response.error_name(), "ExceedsLimitError");
    assert_eq!(app.tokens().await.len(), 2);
    assert_eq!(
        app.events("?type=api-token-created").await.len(),
        2,
        "bootstrap + one"
    );
}

#[actix_web::test]
async fn list_is_newest_first_and_get_by_name_is_exact() {
    let app = spawn_app().await;
    for name in ["alpha", "Alpha", "alpha", "ünïcode name"] {
        app.create(json!({"tokenName": name, "type": "client"}))
            .await;
    }
    let names: Vec<_> = app
        .tokens()
        .await
        .iter()
        .map(|t| t["tokenName"].clone())
        .collect();
    assert_eq!(names.len(), 5);
    assert_eq!(names[0], "ünïcode name");
    assert_eq!(names[4], "admin");
    let alpha = app
        .get("/api/admin/api-tokens/alpha", &app.admin)
        .await
        .json();
    assert_eq!(alpha["tokens"].as_array().unwrap().len(), 2);
    let capital = app
        .get("/api/admin/api-tokens/Alpha", &app.admin)
        .await
        .json();
    assert_eq!(capital["tokens"].as_array().unwrap().len(), 1);
    let unicode = app
        .get(
            &format!("/api/admin/api-tokens/{}", encode("ünïcode name")),
            &app.admin,
        )
        .await
        .json();
    assert_eq!(unicode["tokens"][0]["tokenName"], "ünïcode name");
    let none = app.get("/api/admin/api-tokens/nobody", &app.admin).await;
    assert_eq!(none.status, 200);
    assert_eq!(none.json(), json!({"tokens": []}));
}

#[actix_web::test]
async fn delete_answers_200_either_way_and_revokes_at_once() {
    let app = spawn_app().await;
    let (selector, credential) = app
        .create(json!({"tokenName": "doomed", "type": "backend"}))
        .await;
    let (_, other) = app
        .create(json!({"tokenName": "doomed-too", "type": "backend"}))
        .await;
    assert_eq!(
        app.get("/api/admin/api-tokens", &credential).await.status,
        403,
        "valid, wrong type"
    );

    let response = app
        .send(
            "DELETE",
            &format!("/api/admin/api-tokens/{selector}"),
            &[
                ("Authorization", &app.admin),
                ("Content-Type", "text/plain"),
            ],
            Some("ignored"),
        )
        .await;
    assert_eq!((response.status, response.body.as_str()), (200, ""));
    assert_eq!(
        app.get("/api/admin/api-tokens", &credential).await.status,
        401,
        "deleted"
    );
    assert_eq!(
        app.delete(&format!("/api/admin/api-tokens/{selector}"), &app.admin)
            .await
            .status,
        200
    );
    assert_eq!(
        app.delete("/api/admin/api-tokens/never-existed", &app.admin)
            .await
            .status,
        200
    );
    assert_eq!(
        app.delete(&format!("/api/admin/api-tokens/{other}"), &app.admin)
            .await
            .status,
        200
    );
    assert_eq!(app.tokens().await.len(), 1);

    let deleted = app.events("?type=api-token-deleted").await;
    assert_eq!(deleted.len(), 2, "one event per token actually deleted");
    assert_eq!(deleted[1]["preData"]["secret"], selector);
    assert_eq!(deleted[1]["data"], json!(null));
    assert_eq!(deleted[1]["createdBy"], "admin");
}

#[actix_web::test]
async fn events_are_newest_first_filterable_pageable_and_secret_free() {
    let app = spawn_app().await;
    let (selector, credential) = app
        .create(json!({"tokenName": "sdk", "type": "client"}))
        .await;
    app.put_expiry(
        &format!("/api/admin/api-tokens/{selector}"),
        &app.admin,
        "2040-01-01T00:00:00Z",
    )
    .await;
    app.delete(
        &format!("/api/admin/api-tokens/{}", encode(&credential)),
        &app.admin,
    )
    .await;

    let events = app.events("").await;
    let types: Vec<_> = events.iter().map(|e| e["type"].as_str().unwrap()).collect();
    assert_eq!(
        types,
        vec![
            "api-token-deleted",
            "api-token-updated",
            "api-token-created",
            "api-token-created"
        ]
    );
    assert_eq!(events[3]["createdBy"], "system", "the bootstrap admin");
    assert_eq!(events[2]["createdBy"], "admin");
    assert!(events.iter().all(|e| is_millis_utc(&e["createdAt"])));
    let ids: Vec<_> = events.iter().map(|e| e["id"].as_i64().unwrap()).collect();
    assert!(ids.windows(2).all(|w| w[0] > w[1]));

    assert_eq!(app.events("?type=api-token-updated").await.len(), 1);
    assert_eq!(app.events("?type=feature-created").await.len(), 0);
    assert_eq!(app.events("?limit=2").await.len(), 2);
    assert_eq!(app.events("?limit=2").await[0], events[0]);
    let bad_limit = app.get("/api/admin/events?limit=-1", &app.admin).await;
    assert_eq!(
        (bad_limit.status, bad_limit.error_name()),
        (400, "BadDataError".to_string())
    );

    let raw = app.get("/api/admin/events", &app.admin).await.body;
    assert!(!raw.contains(random_part(&credential)));
    assert!(!raw.contains(random_part(&app.admin)));
}

#[actix_web::test]
async fn projects_and_environments_come_from_configuration() {
    let app = spawn_with(&[], with_other_project).await;
    let projects = app.get("/api/admin/projects", &app.admin).await.json();
    assert_eq!(projects["version"], 1);
    let ids: Vec<_> = projects["projects"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["id"].clone())
        .collect();
    assert_eq!(ids, vec![json!("default"), json!("other")]);
    assert_eq!(projects["projects"][1]["name"], "Other");
    let environments = app.get("/api/admin/environments", &app.admin).await.json();
    assert_eq!(environments["version"], 1);
    assert_eq!(
        environments["environments"][0],
        json!({"name": "development", "type": "development", "enabled": true, "protected": false, "sortOrder": 100})
    );
    assert_eq!(environments["environments"][1]["name"], "production");
    assert_eq!(
        app.send("GET", "/api/admin/projects", &[], None)
            .await
            .status,
        401
    );
}

#[actix_web::test]
async fn last_seen_is_recorded_in_batches() {
    let app = spawn_with(&[], |settings| settings.tokens.seen_flush_interval_ms = 20).await;
    let admin_selector = app.tokens().await[0]["secret"]
        .as_str()
        .unwrap()
        .to_string();
    // Poll: the flush runs on its own schedule; the deadline bounds the wait.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let seen = app.token(&admin_selector).await["seenAt"].clone();
        if !seen.is_null() {
            assert!(is_millis_utc(&seen));
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "seenAt was never written"
        );
        actix_web::rt::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

#[actix_web::test]
async fn service_endpoints_answer_without_credentials() {
    let app = spawn_app().await;
    let health = app.send("GET", "/health", &[], None).await;
    assert_eq!(
        (health.status, health.json()),
        (200, json!({"health": "GOOD"}))
    );
    let ready = app.send("GET", "/ready", &[], None).await;
    assert_eq!(
        (ready.status, ready.json()),
        (200, json!({"health": "GOOD"}))
    );
    let missing = app.send("GET", "/nowhere", &[], None).await;
    assert_eq!(
        (missing.status, missing.error_name()),
        (404, "NotFoundError".to_string())
    );
}

#[actix_web::test]
async fn prometheus_metrics_cover_requests_authentication_and_storage() {
    let app = spawn_app().await;
    app.create(json!({"tokenName": "sdk", "type": "client"}))
        .await;
    app.get("/api/admin/api-tokens", "*:*.unknown").await;
    app.send("GET", "/api/admin/api-tokens", &[], None).await;
    let response = app
        .send("GET", "/internal-backstage/prometheus", &[], None)
        .await;
    assert_eq!(response.status, 200);
    assert!(response.headers["content-type"].starts_with("text/plain"));
    let text = response.body;
    for needle in [
        "keywarden_http_requests_total{method=\"POST\",route=\"/api/admin/api-tokens\",status=\"201\"}",
        "keywarden_http_request_duration_seconds_bucket{method=\"GET\",route=\"/api/admin/api-tokens\",le=\"0.001\"}",
        "keywarden_authentications_total{outcome=\"ok\"}",
        "keywarden_authentications_total{outcome=\"unknown\"}",
        "keywarden_authentications_total{outcome=\"missing\"}",
        "keywarden_credentials ",
        "keywarden_db_pool_connections{state=\"open\"}",
        "keywarden_credential_reloads_total",
    ] {
        assert!(text.contains(needle), "missing {needle} in\n{text}");
    }
    assert!(!text.contains(&app.admin), "no credential in metrics");
}

#[actix_web::test]
async fn every_response_carries_a_request_id() {
    let app = spawn_app().await;
    let generated = app.send("GET", "/health", &[], None).await;
    let next = app.send("GET", "/health", &[], None).await;
    let (first, second) = (
        &generated.headers["x-request-id"],
        &next.headers["x-request-id"],
    );
    for id in [first, second] {
        let (prefix, counter) = id.split_once('-').expect("prefix-counter");
        assert_eq!(prefix.len(), 12, "{id}");
        assert!(
            id.chars().all(|c| c == '-' || c.is_ascii_hexdigit()),
            "{id}"
        );
        assert!(!counter.is_empty(), "{id}");
    }
    assert_ne!(first, second, "each request gets its own id");
    let echoed = app
        .send("GET", "/health", &[("X-Request-Id", "trace-123")], None)
        .await;
    assert_eq!(echoed.headers["x-request-id"], "trace-123");
    let refused = app
        .send(
            "GET",
            "/nowhere",
            &[("X-Request-Id", "bad id with spaces")],
            None,
        )
        .await;
    let replaced = &refused.headers["x-request-id"];
    assert_eq!(
        replaced.split_once('-').unwrap().0,
        first.split_once('-').unwrap().0,
        "unsafe ids are replaced: {replaced}"
    );
}

#[actix_web::test]
async fn control_characters_never_reach_storage() {
    let app = spawn_app().await;
    let response = app
        .post_json(
            "/api/admin/api-tokens",
            &app.admin,
            &json!({"tokenName": "a\u{0}b", "type": "client"}),
        )
        .await;
    assert_eq!(response.status, 400, "{}", response.body);
    assert_eq!(response.json()["details"][0]["path"], "/body/tokenName");
    let by_name = app.get("/api/admin/api-tokens/a%00b", &app.admin).await;
    assert_eq!(
        (by_name.status, by_name.json()),
        (200, json!({"tokens": []}))
    );
    assert_eq!(app.events("?type=%00").await, Vec::<Value>::new());
}

#[actix_web::test]
async fn client_chosen_methods_do_not_become_metric_labels() {
    let app = spawn_app().await;
    app.send("ZZZ2", "/health", &[], None).await;
    let text = app
        .send("GET", "/internal-backstage/prometheus", &[], None)
        .await
        .body;
    assert!(!text.contains("ZZZ2"), "{text}");
    assert!(text.contains("method=\"other\""), "{text}");
}
