//! End to end: `PUT /api/admin/api-tokens/:token` and authentication, every
//! case of the contract (§1, §2, §3 and the PUT part of §4) over real HTTP.

use keywarden_test_support::app::{random_part, spawn_app, spawn_with, TestApp};
use keywarden_test_support::http::{assert_error, encode};
use serde_json::json;

const FUTURE: &str = "2040-01-01T00:00:00.000Z";
const PAST: &str = "2001-01-01T00:00:00.000Z";
const ADMIN_A: &str = "*:*.operator-admin-a";
const ADMIN_B: &str = "*:*.operator-admin-b";
const BACKEND: &str = "default:development.operator-backend";
const CLIENT: &str = "default:production.operator-client";
const FRONTEND: &str = "default:development.operator-frontend";

/// An app with operator-chosen (legacy format) tokens of every type.
async fn bootstrapped() -> TestApp {
    let mut app = spawn_with(
        &[
            ("INIT_ADMIN_API_TOKENS", &format!("{ADMIN_A},{ADMIN_B}")),
            ("INIT_BACKEND_API_TOKENS", BACKEND),
            ("INIT_CLIENT_API_TOKENS", CLIENT),
            ("INIT_FRONTEND_API_TOKENS", FRONTEND),
        ],
        |_| {},
    )
    .await;
    assert!(
        app.admin.is_empty(),
        "no credential is generated when INIT tokens exist"
    );
    app.admin = ADMIN_A.to_string();
    app
}

#[actix_web::test]
async fn put_sets_the_expiry_and_list_and_get_by_name_show_it_at_once() {
    let app = spawn_app().await;
    let (selector, _) = app
        .create(json!({"tokenName": "sdk", "type": "client"}))
        .await;

    let response = app
        .put_expiry(
            &format!("/api/admin/api-tokens/{selector}"),
            &app.admin,
            FUTURE,
        )
        .await;
    assert_eq!(response.status, 200);
    assert_eq!(response.body, "", "empty body");

    assert_eq!(app.token(&selector).await["expiresAt"], FUTURE);
    let by_name = app
        .get("/api/admin/api-tokens/sdk", &app.admin)
        .await
        .json();
    assert_eq!(by_name["tokens"][0]["expiresAt"], FUTURE);
}

#[actix_web::test]
async fn put_addresses_tokens_by_full_credential_raw_or_encoded_or_by_selector() {
    let app = spawn_with(&[], |settings| {
        settings
            .projects
            .push(keywarden::settings::ProjectSettings {
                id: "other".into(),
                name: "Other".into(),
                description: None,
            });
    })
    .await;
    let (all_selector, all_credential) = app
        .create(json!({"tokenName": "all", "type": "backend"}))
        .await;
    let (multi_selector, multi_credential) = app
        .create(json!({"tokenName": "multi", "type": "frontend", "projects": ["default", "other"]}))
        .await;
    assert!(all_credential.starts_with("*:development.v2_"));
    assert!(multi_credential.starts_with("[]:development.v2_"));

    let cases = [
        (
            all_credential.clone(),
            &all_selector,
            "2031-01-01T00:00:00.000Z",
        ),
        (
            encode(&all_credential),
            &all_selector,
            "2032-01-01T00:00:00.000Z",
        ),
        (
            all_selector.clone(),
            &all_selector,
            "2033-01-01T00:00:00.000Z",
        ),
        (
            multi_credential.clone(),
            &multi_selector,
            "2034-01-01T00:00:00.000Z",
        ),
        (
            encode(&multi_credential),
            &multi_selector,
            "2035-01-01T00:00:00.000Z",
        ),
    ];
    for (path, selector, expires_at) in cases {
        let response = app
            .put_expiry(
                &format!("/api/admin/api-tokens/{path}"),
                &app.admin,
                expires_at,
            )
            .await;
        assert_eq!(response.status, 200, "{path}: {}", response.body);
        assert_eq!(app.token(selector).await["expiresAt"], expires_at, "{path}");
    }
}

#[actix_web::test]
async fn put_on_an_unknown_token_answers_200_and_changes_nothing() {
    // The lists compared below include the admin token, whose `seenAt` a
    // periodic last-seen flush may write between them; only the shutdown
    // flush may write here.
    let app = spawn_with(&[], |settings| {
        settings.tokens.seen_flush_interval_ms = 3_600_000;
    })
    .await;
    let (selector, credential) = app
        .create(json!({"tokenName": "sdk", "type": "client"}))
        .await;
    let tokens_before = app.tokens().await;
    let events_before = app.events("").await;
    let mut wrong_secret = credential.clone();
    wrong_secret.replace_range(credential.len() - 5.., "AAAAA");
    for target in [
        "nobody".to_string(),
        "AAAAAAAAAAAAAAAAAAAAAA".to_string(),
        encode("*:development.v2_unknown"),
        encode(&wrong_secret),
    ] {
        let response = app
            .put_expiry(&format!("/api/admin/api-tokens/{target}"), &app.admin, PAST)
            .await;
        assert_eq!(response.status, 200, "{target}");
        assert_eq!(response.body, "");
    }
    assert_eq!(
        app.tokens().await,
        tokens_before,
        "nothing created or changed"
    );
    assert_eq!(app.events("").await, events_before, "no audit event");
    assert_eq!(app.token(&selector).await["expiresAt"], json!(null));
}

#[actix_web::test]
async fn a_past_date_expires_a_token_for_the_very_next_request() {
    let app = bootstrapped().await;
    assert_eq!(app.get("/api/admin/api-tokens", ADMIN_B).await.status, 200);

    let response = app
        .put_expiry(
            &format!("/api/admin/api-tokens/{}", encode(ADMIN_B)),
            ADMIN_A,
            PAST,
        )
        .await;
    assert_eq!(response.status, 200);

    let rejected = app.get("/api/admin/api-tokens", ADMIN_B).await;
    assert_error(&rejected, 401, "UnauthorizedError");
    // Still listed, with its expiry: expired tokens are not deleted.
    let listed = app.tokens().await;
    assert!(listed.iter().any(|t| t["expiresAt"] == PAST));

    // Moving the expiry back into the future revives it, just as immediately.
    let expired_selector = listed.iter().find(|t| t["expiresAt"] == PAST).unwrap()["secret"]
        .as_str()
        .unwrap()
        .to_string();
    let response = app
        .put_expiry(
            &format!("/api/admin/api-tokens/{expired_selector}"),
            ADMIN_A,
            FUTURE,
        )
        .await;
    assert_eq!(response.status, 200);
    assert_eq!(app.get("/api/admin/api-tokens", ADMIN_B).await.status, 200);
}

#[actix_web::test]
async fn an_admin_can_expire_itself() {
    let app = bootstrapped().await;
    let response = app
        .put_expiry(&format!("/api/admin/api-tokens/{ADMIN_A}"), ADMIN_A, PAST)
        .await;
    assert_eq!(response.status, 200);
    assert_error(
        &app.get("/api/admin/api-tokens", ADMIN_A).await,
        401,
        "UnauthorizedError",
    );
}

#[actix_web::test]
async fn put_converts_offsets_to_utc_and_truncates_to_milliseconds() {
    let app = spawn_app().await;
    let (selector, _) = app
        .create(json!({"tokenName": "sdk", "type": "client"}))
        .await;
    let target = format!("/api/admin/api-tokens/{selector}");
    for (sent, stored) in [
        ("2030-06-01T12:00:00+02:00", "2030-06-01T10:00:00.000Z"),
        ("2030-06-01T12:00:00.123456789Z", "2030-06-01T12:00:00.123Z"),
        ("2030-06-01T00:30:00-05:30", "2030-06-01T06:00:00.000Z"),
    ] {
        assert_eq!(
            app.put_expiry(&target, &app.admin, sent).await.status,
            200,
            "{sent}"
        );
        assert_eq!(app.token(&selector).await["expiresAt"], stored, "{sent}");
    }
}

#[actix_web::test]
async fn put_ignores_extra_fields_and_changes_only_the_expiry() {
    let app = spawn_app().await;
    let (selector, _) = app
        .create(json!({"tokenName": "sdk", "type": "client"}))
        .await;
    let before = app.token(&selector).await;
    let body = json!({
        "expiresAt": FUTURE, "tokenName": "renamed", "type": "admin",
        "projects": ["other"], "environment": "production", "secret": "x"
    });
    let response = app
        .send(
            "PUT",
            &format!("/api/admin/api-tokens/{selector}"),
            &[
                ("Authorization", &app.admin),
                ("Content-Type", "application/json"),
            ],
            Some(&body.to_string()),
        )
        .await;
    assert_eq!(response.status, 200);
    let mut expected = before;
    expected["expiresAt"] = json!(FUTURE);
    assert_eq!(app.token(&selector).await, expected);
}

#[actix_web::test]
async fn put_rejects_bad_bodies_with_the_field_named() {
    let app = spawn_app().await;
    let (selector, _) = app
        .create(json!({"tokenName": "sdk", "type": "client"}))
        .await;
    for target in [selector.as_str(), "unknown-token"] {
        let path = format!("/api/admin/api-tokens/{target}");
        for (body, pointer) in [
            (r#"{}"#, "/body/expiresAt"),
            (r#"{"expiresAt":null}"#, "/body/expiresAt"),
            (r#"{"expiresAt":1893456000000}"#, "/body/expiresAt"),
            (r#"{"expiresAt":"banana"}"#, "/body/expiresAt"),
            (r#"{"expiresAt":"2030-01-01"}"#, "/body/expiresAt"),
            (r#"{"expiresAt":"2030-02-30T00:00:00Z"}"#, "/body/expiresAt"),
            (r#"{"expiresAt":"2030-01-01T25:00:00Z"}"#, "/body/expiresAt"),
            (r#"{"expiresAt":"2030-01-01T00:00:00"}"#, "/body/expiresAt"),
            (
                r#"{"expiresAt":"2030-01-01T00:00:00.000"}"#,
                "/body/expiresAt",
            ),
            (
                r#"{"expiresAt":["2030-01-01T00:00:00Z"]}"#,
                "/body/expiresAt",
            ),
            (r#"["2030-01-01T00:00:00Z"]"#, "/body"),
            (r#""2030-01-01T00:00:00Z""#, "/body"),
            (r#"null"#, "/body"),
            (r#"{"expiresAt": "2030-01-01T00:00:00Z""#, "/body"),
            (r#"not json"#, "/body"),
            ("", "/body"),
        ] {
            let response = app
                .send(
                    "PUT",
                    &path,
                    &[
                        ("Authorization", &app.admin),
                        ("Content-Type", "application/json"),
                    ],
                    Some(body),
                )
                .await;
            assert_error(&response, 400, "BadDataError");
            assert_eq!(response.json()["details"][0]["path"], pointer, "{body}");
        }
    }
    assert_eq!(
        app.token(&selector).await["expiresAt"],
        json!(null),
        "nothing changed"
    );
}

#[actix_web::test]
async fn put_needs_a_json_content_type() {
    let app = spawn_app().await;
    let (selector, _) = app
        .create(json!({"tokenName": "sdk", "type": "client"}))
        .await;
    let path = format!("/api/admin/api-tokens/{selector}");
    let body = format!(r#"{{"expiresAt":"{FUTURE}"}}"#);
    for content_type in [
        None,
        Some("text/plain"),
        Some("application/x-www-form-urlencoded"),
        Some(""),
    ] {
        let mut headers = vec![("Authorization", app.admin.as_str())];
        if let Some(content_type) = content_type {
            headers.push(("Content-Type", content_type));
        }
        let response = app.send("PUT", &path, &headers, Some(&body)).await;
        assert_error(&response, 415, "ContentTypeError");
    }
    // A bad body behind a bad content type is still a 415: the type is checked first.
    let response = app
        .send(
            "PUT",
            &path,
            &[
                ("Authorization", &app.admin),
                ("Content-Type", "text/plain"),
            ],
            Some("{"),
        )
        .await;
    assert_error(&response, 415, "ContentTypeError");
    for content_type in ["application/json; charset=utf-8", "Application/JSON"] {
        let response = app
            .send(
                "PUT",
                &path,
                &[
                    ("Authorization", &app.admin),
                    ("Content-Type", content_type),
                ],
                Some(&body),
            )
            .await;
        assert_eq!(response.status, 200, "{content_type}");
    }
    assert_eq!(app.token(&selector).await["expiresAt"], FUTURE);
}

#[actix_web::test]
async fn invalid_percent_encoding_is_a_400_on_every_route() {
    let app = spawn_app().await;
    let body = format!(r#"{{"expiresAt":"{FUTURE}"}}"#);
    for target in [
        "/api/admin/api-tokens/%zz",
        "/api/admin/api-tokens/%",
        "/api/admin/api-tokens/a%E2%28",
    ] {
        for method in ["PUT", "DELETE", "GET"] {
            let response = app
                .send(
                    method,
                    target,
                    &[
                        ("Authorization", &app.admin),
                        ("Content-Type", "application/json"),
                    ],
                    Some(&body),
                )
                .await;
            assert_error(&response, 400, "BadDataError");
        }
    }
}

#[actix_web::test]
async fn authentication_cases() {
    let app = bootstrapped().await;
    let list = "/api/admin/api-tokens";
    let wrong_type =
        json!({"message": "invalid token: expected a different token type for this endpoint"});

    let no_header = app.send("GET", list, &[], None).await;
    assert_error(&no_header, 401, "AuthenticationRequired");
    for (header, status, name) in [
        ("", 401, Some("AuthenticationRequired")),
        ("   ", 401, Some("AuthenticationRequired")),
        ("Bearer", 401, Some("AuthenticationRequired")),
        ("*:*.not-a-token", 401, Some("UnauthorizedError")),
        (
            "Basic YWRtaW46dW5sZWFzaDQhbGw=",
            401,
            Some("UnauthorizedError"),
        ),
        ("Token *:*.operator-admin-a", 401, Some("UnauthorizedError")),
        (
            "*:*.operator-admin-a-and-more",
            401,
            Some("UnauthorizedError"),
        ),
        (ADMIN_A, 200, None),
        ("Bearer *:*.operator-admin-a", 200, None),
        ("bearer    *:*.operator-admin-a", 200, None),
        ("BEARER *:*.operator-admin-a  ", 200, None),
        (BACKEND, 403, None),
        (CLIENT, 403, None),
        (FRONTEND, 403, None),
    ] {
        let response = app
            .send("GET", list, &[("Authorization", header)], None)
            .await;
        assert_eq!(response.status, status, "{header:?}: {}", response.body);
        match (status, name) {
            (403, _) => assert_eq!(response.json(), wrong_type),
            (_, Some(name)) => assert_error(&response, status, name),
            _ => {}
        }
    }
}

#[actix_web::test]
async fn authentication_comes_before_path_content_type_and_body_checks() {
    let app = bootstrapped().await;
    let target = "/api/admin/api-tokens/%zz";
    for (headers, status) in [
        (vec![("Content-Type", "text/plain")], 401),
        (
            vec![
                ("Authorization", "*:*.unknown"),
                ("Content-Type", "text/plain"),
            ],
            401,
        ),
        (
            vec![("Authorization", BACKEND), ("Content-Type", "text/plain")],
            403,
        ),
    ] {
        let response = app.send("PUT", target, &headers, Some("{{{not json")).await;
        assert_eq!(response.status, status, "{headers:?}");
    }
    let response = app
        .send(
            "POST",
            "/api/admin/api-tokens",
            &[("Content-Type", "text/plain")],
            Some("{"),
        )
        .await;
    assert_error(&response, 401, "AuthenticationRequired");
}

#[actix_web::test]
async fn expired_and_deleted_credentials_are_rejected() {
    let app = bootstrapped().await;
    // Deleted on this node: the next request fails.
    assert_eq!(
        app.delete(&format!("/api/admin/api-tokens/{ADMIN_B}"), ADMIN_A)
            .await
            .status,
        200
    );
    assert_error(
        &app.get("/api/admin/api-tokens", ADMIN_B).await,
        401,
        "UnauthorizedError",
    );

    // A token created already expired never authenticates: 401, not the 403
    // its type would earn if it were valid.
    let (_, credential) = app
        .create(json!({"tokenName": "stale", "type": "backend", "expiresAt": PAST}))
        .await;
    assert_error(
        &app.get("/api/admin/api-tokens", &credential).await,
        401,
        "UnauthorizedError",
    );
    let (_, fresh) = app
        .create(json!({"tokenName": "fresh", "type": "backend"}))
        .await;
    assert_eq!(app.get("/api/admin/api-tokens", &fresh).await.status, 403);
}

#[actix_web::test]
async fn put_records_one_audit_event_with_before_and_after() {
    let app = bootstrapped().await;
    let (selector, _) = app
        .create(json!({"tokenName": "sdk", "type": "client"}))
        .await;
    let response = app
        .put_expiry(
            &format!("/api/admin/api-tokens/{selector}"),
            ADMIN_A,
            FUTURE,
        )
        .await;
    assert_eq!(response.status, 200);
    let events = app.events("?type=api-token-updated").await;
    assert_eq!(events.len(), 1);
    let event = &events[0];
    assert_eq!(event["type"], "api-token-updated");
    assert_eq!(event["createdBy"], "admin", "the acting token's name");
    assert_eq!(event["preData"]["expiresAt"], json!(null));
    assert_eq!(event["data"]["expiresAt"], FUTURE);
    assert_eq!(event["data"]["secret"], selector);
    assert_eq!(event["preData"]["tokenName"], "sdk");
}

#[actix_web::test]
async fn no_plaintext_credential_reaches_the_data_directory() {
    let app = spawn_app().await;
    if app.database.is_some() {
        return; // the files scanned here are SQLite's
    }
    let (selector, credential) = app
        .create(json!({"tokenName": "sdk", "type": "client"}))
        .await;
    app.put_expiry(
        &format!("/api/admin/api-tokens/{}", encode(&credential)),
        &app.admin,
        FUTURE,
    )
    .await;
    let secrets = [random_part(&credential), random_part(&app.admin)];
    let mut scanned = 0;
    for file in app.data_files() {
        let bytes = std::fs::read(&file).unwrap();
        scanned += bytes.len();
        for secret in secrets {
            assert!(
                !bytes.windows(secret.len()).any(|w| w == secret.as_bytes()),
                "{} holds a plaintext secret",
                file.display()
            );
        }
    }
    assert!(scanned > 0);
    // The selector is stored (it is what reads show) - proof the scan sees data.
    let all: Vec<u8> = app
        .data_files()
        .iter()
        .flat_map(|f| std::fs::read(f).unwrap())
        .collect();
    assert!(all
        .windows(selector.len())
        .any(|w| w == selector.as_bytes()));
}
