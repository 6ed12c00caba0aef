//! End to end: what an Unleash client sees that a plain reading of the
//! routes would not give it (contract §1 `type`, §7; issue 11) — a backend
//! token reads back as `client`, every GET route answers HEAD, and OPTIONS
//! names the methods a path allows.

use keywarden_test_support::app::{spawn_with, TestApp};
use keywarden_test_support::http::{encode, Response};
use serde_json::{json, Value};

/// The named token as the list and the get-by-name read show it.
async fn read_back(app: &TestApp, name: &str) -> (Value, Value) {
    let listed = app
        .tokens()
        .await
        .into_iter()
        .find(|token| token["tokenName"] == name)
        .unwrap_or_else(|| panic!("{name} is listed"));
    let by_name = app
        .get(
            &format!("/api/admin/api-tokens/{}", encode(name)),
            &app.admin,
        )
        .await
        .json();
    (listed, by_name["tokens"][0].clone())
}

#[actix_web::test]
async fn a_backend_token_reads_back_as_client_but_is_created_as_backend() {
    let app = spawn_with(&[], |_| {}).await;
    for (name, sent, created, read) in [
        ("svc", "Backend", "backend", "client"),
        ("old", "client", "client", "client"),
        ("web", "frontend", "frontend", "frontend"),
    ] {
        let response = app
            .post_json(
                "/api/admin/api-tokens",
                &app.admin,
                &json!({"tokenName": name, "type": sent}),
            )
            .await;
        assert_eq!(response.status, 201, "{}", response.body);
        assert_eq!(response.json()["type"], created, "create echoes {sent}");
        let (listed, by_name) = read_back(&app, name).await;
        assert_eq!(listed["type"], read, "list of {sent}");
        assert_eq!(by_name["type"], read, "get-by-name of {sent}");
    }

    let (svc, _) = read_back(&app, "svc").await;
    let target = format!("/api/admin/api-tokens/{}", svc["secret"].as_str().unwrap());
    let updated = app
        .put_expiry(&target, &app.admin, "2040-01-01T00:00:00Z")
        .await;
    assert_eq!(updated.status, 200, "{}", updated.body);
    assert_eq!(app.delete(&target, &app.admin).await.status, 200);

    let of_svc = |event: &&Value| {
        [&event["data"], &event["preData"]]
            .iter()
            .any(|token| token["tokenName"] == "svc")
    };
    let events: Vec<Value> = app
        .events("")
        .await
        .iter()
        .filter(of_svc)
        .cloned()
        .collect();
    let shown: Vec<(&str, &Value, &Value)> = events
        .iter()
        .map(|event| {
            (
                event["type"].as_str().unwrap(),
                &event["data"]["type"],
                &event["preData"]["type"],
            )
        })
        .collect();
    assert_eq!(
        shown,
        vec![
            ("api-token-deleted", &Value::Null, &json!("client")),
            ("api-token-updated", &json!("client"), &json!("client")),
            ("api-token-created", &json!("backend"), &Value::Null),
        ]
    );
}

/// Headers that differ between any two responses, whatever the method.
const PER_RESPONSE: [&str; 2] = ["date", "x-request-id"];

fn comparable(response: &Response, also_skip: &[&str]) -> Vec<(String, String)> {
    let mut headers: Vec<(String, String)> = response
        .headers
        .iter()
        .filter(|(name, _)| !PER_RESPONSE.contains(&name.as_str()))
        .map(|(name, value)| match also_skip.contains(&name.as_str()) {
            true => (name.clone(), "(varies)".to_string()),
            false => (name.clone(), value.clone()),
        })
        .collect();
    headers.sort();
    headers
}

#[actix_web::test]
async fn head_answers_every_get_route_with_the_gets_status_and_headers_and_no_body() {
    // Last-seen is flushed rarely, so the list does not change between the GET and the HEAD.
    let app = spawn_with(&[], |settings| {
        settings.tokens.seen_flush_interval_ms = 3_600_000;
    })
    .await;
    app.create(json!({"tokenName": "sdk", "type": "backend"}))
        .await;
    let admin = app.admin.clone();
    let cases: Vec<(&str, &str, u16)> = vec![
        ("/health", "", 200),
        ("/ready", "", 200),
        ("/docs/openapi.json", "", 200),
        ("/internal-backstage/prometheus", "", 200),
        ("/api/admin/api-tokens", &admin, 200),
        ("/api/admin/api-tokens/sdk", &admin, 200),
        ("/api/admin/api-tokens/nobody", &admin, 200),
        ("/api/admin/api-tokens/%zz", &admin, 400),
        ("/api/admin/events", &admin, 200),
        ("/api/admin/events?limit=lots", &admin, 400),
        ("/api/admin/projects", &admin, 200),
        ("/api/admin/environments", &admin, 200),
        ("/api/admin/api-tokens", "", 401),
        ("/api/admin/api-tokens", "*:*.unknown", 401),
    ];
    for (target, credential, status) in cases {
        let headers: Vec<(&str, &str)> = match credential {
            "" => vec![],
            credential => vec![("Authorization", credential)],
        };
        let get = app.send("GET", target, &headers, None).await;
        let head = app.send("HEAD", target, &headers, None).await;
        assert_eq!(get.status, status, "GET {target}: {}", get.body);
        assert!(!get.body.is_empty(), "GET {target} has a body");
        assert_eq!(head.status, get.status, "HEAD {target}");
        assert_eq!(head.body, "", "HEAD {target} has no body");
        // Every request changes the metrics, so their length may differ.
        let varies: &[&str] = match target {
            "/internal-backstage/prometheus" => &["content-length"],
            _ => &[],
        };
        assert_eq!(
            comparable(&head, varies),
            comparable(&get, varies),
            "HEAD {target}"
        );
        assert!(head.headers.contains_key("content-length"), "HEAD {target}");
    }
    let unknown = app.send("HEAD", "/nowhere", &[], None).await;
    assert_eq!((unknown.status, unknown.body.as_str()), (404, ""));
}

#[actix_web::test]
async fn options_answers_204_with_allow_and_other_methods_405() {
    let app = spawn_with(&[], |_| {}).await;
    let reads = "GET, HEAD, OPTIONS";
    for (path, allow) in [
        ("/health", reads),
        ("/ready", reads),
        ("/docs/openapi.json", reads),
        ("/internal-backstage/prometheus", reads),
        ("/api/admin/api-tokens", "GET, HEAD, POST, OPTIONS"),
        ("/api/admin/api-tokens/x", "GET, HEAD, PUT, DELETE, OPTIONS"),
        ("/api/admin/events", reads),
        ("/api/admin/projects", reads),
        ("/api/admin/environments", reads),
    ] {
        let auth = [("Authorization", app.admin.as_str())];
        let options = app.send("OPTIONS", path, &auth, None).await;
        assert_eq!(options.status, 204, "OPTIONS {path}: {}", options.body);
        assert_eq!(options.headers["allow"], allow, "OPTIONS {path}");
        assert_eq!(options.body, "", "OPTIONS {path}");

        let patch = app.send("PATCH", path, &auth, Some("{}")).await;
        assert_eq!(patch.status, 405, "PATCH {path}");
        assert_eq!(patch.headers["allow"], allow, "PATCH {path}");
        assert_eq!(patch.error_name(), "MethodNotAllowedError", "PATCH {path}");
    }
    // The Admin API checks the credential first, for OPTIONS as for any method.
    let anonymous = app
        .send("OPTIONS", "/api/admin/api-tokens", &[], None)
        .await;
    assert_eq!(anonymous.status, 401);
    assert_eq!(anonymous.error_name(), "AuthenticationRequired");
    let unknown = app.send("OPTIONS", "/nowhere", &[], None).await;
    assert_eq!(unknown.status, 404);
    assert_eq!(unknown.error_name(), "NotFoundError");
}
