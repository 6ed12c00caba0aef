//! Route tests over a mocked use-case port: status codes, bodies, and the order
//! of checks (authentication → authorization → path → content type → body).

use std::sync::Arc;

use actix_web::http::header::{AUTHORIZATION, CONTENT_TYPE, LOCATION};
use actix_web::http::StatusCode;
use actix_web::test::{self, TestRequest};
use actix_web::App;
use chrono::{TimeZone, Utc};
use keywarden_application::{AppError, MockApiTokenUseCases, Principal};
use keywarden_domain::{
    Credential, EnvironmentName, EnvironmentScope, NewToken, Projects, SecretMaterial, Selector,
    TokenName, TokenRef, TokenType,
};
use mockall::predicate::eq;
use serde_json::{json, Value};

use crate::{configure, BodyLimit};

const ADMIN: &str = "*:*.admin-secret";

fn admin() -> Principal {
    Principal::token(
        Selector::from_bytes([1; 16]),
        Arc::from("root"),
        TokenType::Admin,
    )
}

/// A mock that knows one admin credential and one backend credential.
fn authenticating() -> MockApiTokenUseCases {
    let mut usecases = MockApiTokenUseCases::new();
    usecases
        .expect_authenticate_admin()
        .returning(|presented| match presented {
            ADMIN => Ok(admin()),
            "default:development.backend" => Err(AppError::Forbidden),
            _ => Err(AppError::Unauthorized),
        });
    usecases
}

/// Every route around `usecases`, with small limits and a fixed metrics text.
fn routes(
    usecases: MockApiTokenUseCases,
) -> impl FnOnce(&mut actix_web::web::ServiceConfig) + Clone {
    configure(
        Arc::new(usecases),
        Arc::new(crate::verify::tests::refusing()),
        BodyLimit(1024),
        crate::RequestLimits::default(),
        Arc::new(|| "# metrics\n".to_string()),
    )
}

async fn call(
    usecases: MockApiTokenUseCases,
    req: TestRequest,
) -> (StatusCode, Vec<u8>, Option<String>) {
    let app = test::init_service(App::new().configure(routes(usecases))).await;
    let response = test::call_service(&app, req.to_request()).await;
    let status = response.status();
    let location = response
        .headers()
        .get(LOCATION)
        .map(|v| v.to_str().unwrap().to_string());
    let body = test::read_body(response).await.to_vec();
    (status, body, location)
}

async fn call_json(usecases: MockApiTokenUseCases, req: TestRequest) -> (StatusCode, Value) {
    let (status, body, _) = call(usecases, req).await;
    let json = if body.is_empty() {
        Value::Null
    } else {
        serde_json::from_slice(&body)
            .unwrap_or_else(|_| panic!("not JSON: {}", String::from_utf8_lossy(&body)))
    };
    (status, json)
}

fn put(path: &str, body: &str) -> TestRequest {
    TestRequest::put()
        .uri(path)
        .insert_header((AUTHORIZATION, ADMIN))
        .insert_header((CONTENT_TYPE, "application/json"))
        .set_payload(body.to_string())
}

const VALID: &str = r#"{"expiresAt":"2030-01-01T00:00:00Z"}"#;

#[actix_web::test]
async fn put_sets_the_expiry_and_answers_200_with_an_empty_body() {
    let mut usecases = authenticating();
    let expected = Utc.with_ymd_and_hms(2030, 1, 1, 0, 0, 0).unwrap();
    usecases
        .expect_update_expiry()
        .withf(move |actor, target, at| {
            actor.name() == "root"
                && *target == TokenRef::parse("*:development.x")
                && *at == expected
        })
        .times(1)
        .returning(|_, _, _| Ok(true));
    let (status, body, _) = call(
        usecases,
        put("/api/admin/api-tokens/%2A%3Adevelopment.x", VALID),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert!(body.is_empty());
}

#[actix_web::test]
async fn put_accepts_raw_and_encoded_paths_alike() {
    for path in [
        "/api/admin/api-tokens/*:development.x",
        "/api/admin/api-tokens/%2a:development%2Ex",
    ] {
        let mut usecases = authenticating();
        usecases
            .expect_update_expiry()
            .with(
                eq(admin()),
                eq(TokenRef::parse("*:development.x")),
                mockall::predicate::always(),
            )
            .times(1)
            .returning(|_, _, _| Ok(true));
        let (status, _, _) = call(usecases, put(path, VALID)).await;
        assert_eq!(status, StatusCode::OK, "{path}");
    }
}

#[actix_web::test]
async fn put_body_and_content_type_errors() {
    let cases: Vec<(TestRequest, u16, &str, Option<&str>)> = vec![
        (
            put("/api/admin/api-tokens/x", r#"{"expiresAt":"banana"}"#),
            400,
            "BadDataError",
            Some("/body/expiresAt"),
        ),
        (
            put("/api/admin/api-tokens/x", r#"{}"#),
            400,
            "BadDataError",
            Some("/body/expiresAt"),
        ),
        (
            put("/api/admin/api-tokens/x", r#"{"expiresAt":null}"#),
            400,
            "BadDataError",
            Some("/body/expiresAt"),
        ),
        (
            put("/api/admin/api-tokens/x", r#"{"expiresAt":12}"#),
            400,
            "BadDataError",
            Some("/body/expiresAt"),
        ),
        (
            put(
                "/api/admin/api-tokens/x",
                r#"{"expiresAt":"2030-02-30T00:00:00Z"}"#,
            ),
            400,
            "BadDataError",
            Some("/body/expiresAt"),
        ),
        (
            put(
                "/api/admin/api-tokens/x",
                r#"{"expiresAt":"2030-01-01T00:00:00"}"#,
            ),
            400,
            "BadDataError",
            Some("/body/expiresAt"),
        ),
        (
            put("/api/admin/api-tokens/x", r#"[1]"#),
            400,
            "BadDataError",
            Some("/body"),
        ),
        (
            put("/api/admin/api-tokens/x", r#"{"expiresAt":"#),
            400,
            "BadDataError",
            Some("/body"),
        ),
        (
            put("/api/admin/api-tokens/x", ""),
            400,
            "BadDataError",
            Some("/body"),
        ),
        (
            put(
                "/api/admin/api-tokens/x",
                &format!(r#"{{"pad":"{}"}}"#, "x".repeat(2000)),
            ),
            413,
            "ContentTooLargeError",
            None,
        ),
        (
            put("/api/admin/api-tokens/x", VALID).insert_header((CONTENT_TYPE, "text/plain")),
            415,
            "ContentTypeError",
            None,
        ),
        (
            TestRequest::put()
                .uri("/api/admin/api-tokens/x")
                .insert_header((AUTHORIZATION, ADMIN))
                .set_payload(VALID),
            415,
            "ContentTypeError",
            None,
        ),
        // Path errors come before content-type and body errors.
        (
            put("/api/admin/api-tokens/%zz", "not json")
                .insert_header((CONTENT_TYPE, "text/plain")),
            400,
            "BadDataError",
            None,
        ),
        (
            put("/api/admin/api-tokens/%FF", VALID),
            400,
            "BadDataError",
            None,
        ),
        // Content type comes before the body.
        (
            put("/api/admin/api-tokens/x", "not json").insert_header((CONTENT_TYPE, "text/plain")),
            415,
            "ContentTypeError",
            None,
        ),
    ];
    for (req, status, name, path) in cases {
        let (actual, body) = call_json(authenticating(), req).await;
        assert_eq!(actual.as_u16(), status, "{body}");
        assert_eq!(body["name"], name, "{body}");
        assert!(body["id"].is_string(), "{body}");
        if let Some(path) = path {
            assert_eq!(body["details"][0]["path"], path, "{body}");
        }
    }
}

#[actix_web::test]
async fn authentication_comes_before_everything() {
    let bad_body = |req: TestRequest| {
        req.uri("/api/admin/api-tokens/%zz")
            .insert_header((CONTENT_TYPE, "text/plain"))
            .set_payload("{{{")
    };
    let cases = [
        (
            bad_body(TestRequest::put()),
            401,
            Some("AuthenticationRequired"),
        ),
        (
            bad_body(TestRequest::put()).insert_header((AUTHORIZATION, "")),
            401,
            Some("AuthenticationRequired"),
        ),
        (
            bad_body(TestRequest::put()).insert_header((AUTHORIZATION, "*:*.wrong")),
            401,
            Some("UnauthorizedError"),
        ),
        (
            bad_body(TestRequest::put()).insert_header((AUTHORIZATION, "Basic YWRtaW46YWRtaW4=")),
            401,
            Some("UnauthorizedError"),
        ),
        (
            bad_body(TestRequest::put())
                .insert_header((AUTHORIZATION, "default:development.backend")),
            403,
            None,
        ),
        (
            bad_body(TestRequest::post()).insert_header((AUTHORIZATION, "*:*.wrong")),
            401,
            Some("UnauthorizedError"),
        ),
        (
            TestRequest::get().uri("/api/admin/api-tokens"),
            401,
            Some("AuthenticationRequired"),
        ),
        (
            TestRequest::get().uri("/api/admin/no-such-route"),
            401,
            Some("AuthenticationRequired"),
        ),
    ];
    for (req, status, name) in cases {
        let (actual, body) = call_json(authenticating(), req).await;
        assert_eq!(actual.as_u16(), status, "{body}");
        match name {
            Some(name) => assert_eq!(body["name"], name),
            None => assert_eq!(
                body,
                json!({"message": "invalid token: expected a different token type for this endpoint"})
            ),
        }
    }
}

#[actix_web::test]
async fn bearer_credentials_authenticate() {
    let mut usecases = authenticating();
    usecases.expect_list_tokens().returning(|| Ok(Vec::new()));
    let req = TestRequest::get()
        .uri("/api/admin/api-tokens")
        .insert_header((AUTHORIZATION, format!("bearer  {ADMIN}")));
    let (status, body) = call_json(usecases, req).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body, json!({"tokens": []}));
}

#[actix_web::test]
async fn storage_outages_are_503_without_details() {
    let mut usecases = authenticating();
    usecases.expect_update_expiry().returning(|_, _, _| {
        Err(AppError::Unavailable(
            "connection refused to db.internal".into(),
        ))
    });
    let (status, body) = call_json(usecases, put("/api/admin/api-tokens/x", VALID)).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert!(!body.to_string().contains("db.internal"));
}

fn issued() -> (keywarden_domain::ApiToken, Credential) {
    NewToken::new(
        TokenName::parse("my sdk").unwrap(),
        TokenType::Client,
        Projects::from_ids(["default"]).unwrap(),
        EnvironmentScope::Named(EnvironmentName::parse("development").unwrap()),
        Some(Utc.with_ymd_and_hms(2040, 1, 1, 0, 0, 0).unwrap()),
    )
    .unwrap()
    .issue(
        &SecretMaterial {
            selector: [4; 16],
            random: [5; 32],
        },
        Utc.with_ymd_and_hms(2030, 1, 1, 0, 0, 0).unwrap(),
    )
}

#[actix_web::test]
async fn reads_show_tokens_in_the_contract_shape() {
    let (token, _) = issued();
    let mut usecases = authenticating();
    let listed = token.clone();
    usecases
        .expect_list_tokens()
        .returning(move || Ok(vec![listed.clone()]));
    usecases
        .expect_tokens_named()
        .with(eq("my sdk"))
        .returning(move |_| Ok(vec![token.clone()]));
    let expected = json!({"tokens": [{
        "secret": "BAQEBAQEBAQEBAQEBAQEBA",
        "tokenName": "my sdk",
        "type": "client",
        "project": "default",
        "projects": ["default"],
        "environment": "development",
        "expiresAt": "2040-01-01T00:00:00.000Z",
        "createdAt": "2030-01-01T00:00:00.000Z",
        "seenAt": null,
        "alias": null,
        "secure": true
    }]});
    let app = test::init_service(App::new().configure(routes(usecases))).await;
    for uri in ["/api/admin/api-tokens", "/api/admin/api-tokens/my%20sdk"] {
        let req = TestRequest::get()
            .uri(uri)
            .insert_header((AUTHORIZATION, ADMIN))
            .to_request();
        let body: Value = test::call_and_read_body_json(&app, req).await;
        assert_eq!(body, expected, "{uri}");
    }
}

#[actix_web::test]
async fn create_answers_201_with_the_credential_once() {
    let (token, credential) = issued();
    let secret = credential.expose_secret().to_string();
    let mut usecases = authenticating();
    usecases
        .expect_create_token()
        .withf(|actor, request| {
            actor.name() == "root"
                && request.token_name == "my sdk"
                && request.token_type == "client"
                && request.projects.is_none()
                && request.project.as_deref() == Some("default")
        })
        .returning(move |_, _| Ok((token.clone(), credential.clone())));
    let req = TestRequest::post()
        .uri("/api/admin/api-tokens")
        .insert_header((AUTHORIZATION, ADMIN))
        .insert_header((CONTENT_TYPE, "application/json; charset=utf-8"))
        .set_payload(
            r#"{"tokenName":"my sdk","type":"client","project":"default","secret":"mine"}"#,
        );
    let (status, body, location) = call(usecases, req).await;
    assert_eq!(status, StatusCode::CREATED);
    assert_eq!(location.as_deref(), Some("/api/admin/api-tokens/my%20sdk"));
    let body: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(body["secret"], secret);
    assert_eq!(body["tokenName"], "my sdk");
}

#[actix_web::test]
async fn create_validation_errors_name_the_field() {
    let mut usecases = authenticating();
    usecases.expect_create_token().returning(|_, _| {
        Err(AppError::validation(
            "Environment=x does not exist",
            Some("environment"),
        ))
    });
    let req = TestRequest::post()
        .uri("/api/admin/api-tokens")
        .insert_header((AUTHORIZATION, ADMIN))
        .insert_header((CONTENT_TYPE, "application/json"))
        .set_payload(r#"{"tokenName":"t","type":"client","environment":"x"}"#);
    let (status, body) = call_json(usecases, req).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["message"], "Environment=x does not exist");
    assert_eq!(body["details"][0]["path"], "/body/environment");
}

#[actix_web::test]
async fn delete_answers_200_and_ignores_the_content_type() {
    let mut usecases = authenticating();
    usecases
        .expect_delete_token()
        .with(eq(admin()), eq(TokenRef::parse("[]:development.x")))
        .times(1)
        .returning(|_, _| Ok(true));
    let req = TestRequest::delete()
        .uri("/api/admin/api-tokens/%5B%5D%3Adevelopment.x")
        .insert_header((AUTHORIZATION, ADMIN))
        .insert_header((CONTENT_TYPE, "text/plain"))
        .set_payload("whatever");
    let (status, body, _) = call(usecases, req).await;
    assert_eq!(status, StatusCode::OK);
    assert!(body.is_empty());
}

#[actix_web::test]
async fn events_pass_filters_through() {
    let mut usecases = authenticating();
    usecases
        .expect_events()
        .with(eq(keywarden_application::EventQuery {
            event_type: Some("api-token-deleted".into()),
            limit: Some(5),
        }))
        .returning(|_| Ok(Vec::new()));
    let req = TestRequest::get()
        .uri("/api/admin/events?type=api-token-deleted&limit=5")
        .insert_header((AUTHORIZATION, ADMIN));
    let (status, body) = call_json(usecases, req).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body, json!({"version": 1, "events": []}));

    let req = TestRequest::get()
        .uri("/api/admin/events?limit=lots")
        .insert_header((AUTHORIZATION, ADMIN));
    let (status, body) = call_json(authenticating(), req).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["name"], "BadDataError");
}

#[actix_web::test]
async fn event_query_errors_name_the_parameter_to_blame() {
    for (query, path) in [
        ("type=a&type=b", "/query/type"),
        ("limit=1&limit=2", "/query/limit"),
        ("limit=lots", "/query/limit"),
        ("limit=-1", "/query/limit"),
        ("type=a&limit=lots", "/query/limit"),
    ] {
        let req = TestRequest::get()
            .uri(&format!("/api/admin/events?{query}"))
            .insert_header((AUTHORIZATION, ADMIN));
        let (status, body) = call_json(authenticating(), req).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{query}: {body}");
        assert_eq!(body["details"][0]["path"], path, "{query}: {body}");
    }
    let mut usecases = authenticating();
    usecases
        .expect_events()
        .with(eq(keywarden_application::EventQuery {
            event_type: Some("api-token-created".into()),
            limit: None,
        }))
        .returning(|_| Ok(Vec::new()));
    let req = TestRequest::get()
        .uri("/api/admin/events?type=api-token-created&unknown=1&unknown=2")
        .insert_header((AUTHORIZATION, ADMIN));
    let (status, _) = call_json(usecases, req).await;
    assert_eq!(status, StatusCode::OK, "unknown parameters are ignored");
}

#[actix_web::test]
async fn service_endpoints_need_no_credential() {
    let (status, body) = call_json(
        MockApiTokenUseCases::new(),
        TestRequest::get().uri("/health"),
    )
    .await;
    assert_eq!((status, body), (StatusCode::OK, json!({"health": "GOOD"})));

    let mut usecases = MockApiTokenUseCases::new();
    usecases.expect_ready().returning(|| Ok(()));
    let (status, body) = call_json(usecases, TestRequest::get().uri("/ready")).await;
    assert_eq!((status, body), (StatusCode::OK, json!({"health": "GOOD"})));

    let mut usecases = MockApiTokenUseCases::new();
    usecases
        .expect_ready()
        .returning(|| Err(AppError::Unavailable("down".into())));
    let (status, body) = call_json(usecases, TestRequest::get().uri("/ready")).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(body["name"], "ServiceUnavailableError");
}

#[actix_web::test]
async fn unknown_routes_and_methods_answer_json() {
    let (status, body) =
        call_json(MockApiTokenUseCases::new(), TestRequest::get().uri("/nope")).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(body["name"], "NotFoundError");
    let req = TestRequest::patch()
        .uri("/api/admin/api-tokens/x")
        .insert_header((AUTHORIZATION, ADMIN));
    let (status, body) = call_json(authenticating(), req).await;
    assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(body["name"], "MethodNotAllowedError");
}

// ---- the OpenAPI document ---------------------------------------------------

/// A mock that answers every use case, so any routed request reaches a handler.
fn permissive() -> MockApiTokenUseCases {
    let mut usecases = authenticating();
    usecases.expect_list_tokens().returning(|| Ok(Vec::new()));
    usecases.expect_tokens_named().returning(|_| Ok(Vec::new()));
    usecases
        .expect_update_expiry()
        .returning(|_, _, _| Ok(false));
    usecases.expect_delete_token().returning(|_, _| Ok(false));
    usecases
        .expect_create_token()
        .returning(|_, _| Err(AppError::validation("nope", None)));
    usecases.expect_events().returning(|_| Ok(Vec::new()));
    usecases.expect_projects().returning(Vec::new);
    usecases.expect_environments().returning(Vec::new);
    usecases.expect_ready().returning(|| Ok(()));
    usecases
}

fn documented_operations() -> Vec<(String, String)> {
    let document: Value = serde_json::from_str(&crate::openapi_document()).unwrap();
    assert!(document["openapi"].as_str().unwrap().starts_with("3."));
    let mut operations = Vec::new();
    for (path, item) in document["paths"].as_object().unwrap() {
        for method in item.as_object().unwrap().keys() {
            operations.push((method.to_uppercase(), path.clone()));
        }
    }
    operations
}

#[actix_web::test]
async fn the_openapi_document_lists_exactly_the_routes_served() {
    let documented = documented_operations();
    assert!(documented.len() >= 12, "{documented:?}");
    let app = test::init_service(App::new().configure(routes(permissive()))).await;
    let paths: std::collections::BTreeSet<&String> = documented.iter().map(|(_, p)| p).collect();
    for path in paths {
        let concrete = path.replace("{token}", "x");
        for method in ["GET", "POST", "PUT", "DELETE", "PATCH"] {
            let req = TestRequest::default()
                .method(method.parse().unwrap())
                .uri(&concrete)
                .insert_header((AUTHORIZATION, ADMIN))
                .to_request();
            let status = test::call_service(&app, req).await.status();
            let served =
                status != StatusCode::NOT_FOUND && status != StatusCode::METHOD_NOT_ALLOWED;
            let is_documented = documented.iter().any(|(m, p)| m == method && p == path);
            assert_eq!(served, is_documented, "{method} {path} answered {status}");
        }
    }
}

/// The served patterns accept exactly what the server accepts: the token
/// name's for every character (U+FEFF among them, which ECMA-262's `\s`
/// would refuse), the type's for every spelling the domain takes.
#[test]
fn the_served_patterns_agree_with_the_domain() {
    let document: Value = serde_json::from_str(&crate::openapi_document()).unwrap();
    let properties = &document["components"]["schemas"]["CreateTokenRequest"]["properties"];
    let pattern = |field: &str| {
        let pattern = properties[field]["pattern"].as_str().unwrap();
        // Escapes like `\s` mean different sets in ECMA-262 and in the regex
        // crate; `\uXXXX` means the same code point in both.
        assert!(
            pattern
                .split('\\')
                .skip(1)
                .all(|after| after.starts_with('u')),
            "{field}: {pattern}"
        );
        regex::Regex::new(pattern).unwrap_or_else(|e| panic!("{field}: {e}"))
    };
    let name = pattern("tokenName");
    let accepted = |text: &str| TokenName::parse(text).is_ok();
    // Every White_Space and Cc character is in the Basic Multilingual Plane.
    let astral = (0x10000..=0x10FFFF).step_by(0x1001);
    for c in (0..=0xFFFF).chain(astral).filter_map(char::from_u32) {
        for text in [c.to_string(), format!("a{c}"), format!("{c}{c}")] {
            assert_eq!(name.is_match(&text), accepted(&text), "{text:?}");
        }
    }
    for text in [
        "\u{FEFF}",
        " x ",
        "\t",
        "a\nb",
        " \u{3000} ",
        "名前",
        "x\u{0}",
    ] {
        assert_eq!(name.is_match(text), accepted(text), "{text:?}");
    }
    let kind = pattern("type");
    for text in [
        "client", "CLIENT", "Backend", "frontend", "fRoNtEnD", "admin", "Admin", "clients",
        " client", "", "back end",
    ] {
        let creatable = TokenType::parse(text).is_ok_and(|kind| !kind.is_admin());
        assert_eq!(kind.is_match(text), creatable, "{text:?}");
    }
}

#[test]
fn the_token_schema_matches_what_reads_serialise() {
    let document: Value = serde_json::from_str(&crate::openapi_document()).unwrap();
    let properties: std::collections::BTreeSet<String> = document["components"]["schemas"]
        ["ApiToken"]["properties"]
        .as_object()
        .unwrap()
        .keys()
        .cloned()
        .collect();
    let (token, _) = issued();
    let serialised: std::collections::BTreeSet<String> = serde_json::to_value(
        crate::dto::TokenBody::shown(&token.facts(), crate::presentation::Shown::AsCreated),
    )
    .unwrap()
    .as_object()
    .unwrap()
    .keys()
    .cloned()
    .collect();
    assert_eq!(properties, serialised);
    let security = &document["components"]["securitySchemes"]["adminToken"];
    assert_eq!(security["in"], "header");
    assert_eq!(security["name"], "Authorization");
}

#[actix_web::test]
async fn oversized_targets_and_headers_are_refused_with_json() {
    let long_path = format!("/api/admin/api-tokens/{}", "a".repeat(9000));
    let (status, body) = call_json(authenticating(), TestRequest::get().uri(&long_path)).await;
    assert_eq!(status, StatusCode::URI_TOO_LONG);
    assert_eq!(body["name"], "UriTooLongError");
    let req = TestRequest::get()
        .uri("/health")
        .insert_header(("x-padding", "p".repeat(20_000)));
    let (status, body) = call_json(MockApiTokenUseCases::new(), req).await;
    assert_eq!(status, StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE);
    assert_eq!(body["name"], "HeadersTooLargeError");
}

#[test]
fn admin_routes_document_their_authentication_failures() {
    let document: Value = serde_json::from_str(&crate::openapi_document()).unwrap();
    for (path, item) in document["paths"].as_object().unwrap() {
        for (method, operation) in item.as_object().unwrap() {
            let responses = operation["responses"].as_object().unwrap();
            let admin = path.starts_with("/api/admin");
            let checks_tokens = admin || path == "/api/verify";
            assert_eq!(
                responses.contains_key("401"),
                checks_tokens,
                "{method} {path}"
            );
            assert_eq!(
                responses.contains_key("403"),
                checks_tokens,
                "{method} {path}"
            );
            assert_eq!(!operation["security"].is_null(), admin, "{method} {path}");
        }
    }
    let put = &document["paths"]["/api/admin/api-tokens/{token}"]["put"]["responses"];
    for status in ["200", "400", "413", "415", "503"] {
        assert!(put.get(status).is_some(), "PUT documents {status}");
    }
}

#[actix_web::test]
async fn other_methods_on_known_paths_answer_405_with_allow() {
    let app = test::init_service(App::new().configure(routes(permissive()))).await;
    for (method, path, allow) in [
        ("TRACE", "/health", "GET, HEAD, OPTIONS"),
        ("POST", "/ready", "GET, HEAD, OPTIONS"),
        (
            "DELETE",
            "/internal-backstage/prometheus",
            "GET, HEAD, OPTIONS",
        ),
        ("PUT", "/docs/openapi.json", "GET, HEAD, OPTIONS"),
        ("PATCH", "/api/admin/api-tokens", "GET, HEAD, POST, OPTIONS"),
        (
            "TRACE",
            "/api/admin/api-tokens/x",
            "GET, HEAD, PUT, DELETE, OPTIONS",
        ),
        ("POST", "/api/admin/events", "GET, HEAD, OPTIONS"),
        ("DELETE", "/api/admin/projects", "GET, HEAD, OPTIONS"),
        ("PUT", "/api/admin/environments", "GET, HEAD, OPTIONS"),
    ] {
        let req = TestRequest::default()
            .method(method.parse().unwrap())
            .uri(path)
            .insert_header((AUTHORIZATION, ADMIN))
            .to_request();
        let response = test::call_service(&app, req).await;
        assert_eq!(
            response.status(),
            StatusCode::METHOD_NOT_ALLOWED,
            "{method} {path}"
        );
        assert_eq!(
            response.headers().get("allow").unwrap(),
            allow,
            "{method} {path}"
        );
        let body: Value = serde_json::from_slice(&test::read_body(response).await).unwrap();
        assert_eq!(body["name"], "MethodNotAllowedError", "{method} {path}");
    }
}

/// The whole served schema of each request body — types, formats, patterns,
/// required fields, nullability — and the deployment's environments and
/// projects, so a change to a body type shows up here as a change to the
/// document clients read.
#[actix_web::test]
async fn the_served_request_body_schemas_are_exactly_these() {
    let mut usecases = MockApiTokenUseCases::new();
    usecases.expect_environments().returning(|| {
        vec![keywarden_domain::Environment {
            name: EnvironmentName::parse("production").unwrap(),
            kind: "production".into(),
            sort_order: 1,
            enabled: true,
        }]
    });
    usecases.expect_projects().returning(|| {
        vec![keywarden_domain::Project {
            id: keywarden_domain::ProjectId::parse("web").unwrap(),
            name: "Web".into(),
            description: None,
        }]
    });
    let (status, document) =
        call_json(usecases, TestRequest::get().uri("/docs/openapi.json")).await;
    assert_eq!(status, StatusCode::OK);
    let not_control = r"[^\u0000-\u001F\u007F-\u009F]";
    let token_name_pattern = format!(
        r"^{not_control}*[^\u0000-\u001F\u007F-\u009F\u0009-\u000D\u0020\u0085\u00A0\u1680\u2000-\u200A\u2028-\u2029\u202F\u205F\u3000]{not_control}*$"
    );
    let expires_at = |types: Value| {
        json!({
            "type": types,
            "format": "date-time",
            "minLength": 20,
            "description": "RFC 3339 with a UTC offset; stored in UTC with millisecond precision.",
            "examples": ["2040-01-01T00:00:00Z"]
        })
    };
    let expected = json!({
        "UpdateExpiryRequest": {
            "type": "object",
            "description": "A token's new expiry (`PUT /api/admin/api-tokens/:token`); a past\ninstant expires the token now. Unknown fields are ignored.",
            "required": ["expiresAt"],
            "properties": {"expiresAt": expires_at(json!("string"))}
        },
        "CreateTokenRequest": {
            "type": "object",
            "description": "A new client, backend or frontend token (`POST /api/admin/api-tokens`).\nUnknown fields, a client-chosen `secret` among them, are ignored; `null`\nstands for \"not given\", as in Unleash.",
            "required": ["tokenName", "type"],
            "properties": {
                "tokenName": {
                    "type": "string",
                    "minLength": 1,
                    "maxLength": 255,
                    "pattern": token_name_pattern,
                    "description": "Not unique. Printable: no control characters, not only white space."
                },
                "type": {
                    "type": "string",
                    "pattern": "^([Cc][Ll][Ii][Ee][Nn][Tt]|[Bb][Aa][Cc][Kk][Ee][Nn][Dd]|[Ff][Rr][Oo][Nn][Tt][Ee][Nn][Dd])$",
                    "description": "`client`, `backend` or `frontend`, in any case."
                },
                "environment": {
                    "type": ["string", "null"],
                    "enum": ["production", null],
                    "description": "Default `development`."
                },
                "projects": {
                    "type": ["array", "null"],
                    "items": {"type": "string", "enum": ["*", "web"]},
                    "minItems": 1,
                    "description": "Default `[\"*\"]`."
                },
                "project": {
                    "type": ["string", "null"],
                    "enum": ["*", "web", null],
                    "description": "One project id (or `*`); not together with `projects`."
                },
                "expiresAt": expires_at(json!(["string", "null"]))
            },
            "not": {
                "required": ["project", "projects"],
                "properties": {"project": {"type": "string"}, "projects": {"type": "array"}}
            }
        }
    });
    let schemas = &document["components"]["schemas"];
    for (name, schema) in expected.as_object().unwrap() {
        assert_eq!(&schemas[name], schema, "{name}");
    }
    for (path, method, name) in [
        (
            "/api/admin/api-tokens/{token}",
            "put",
            "UpdateExpiryRequest",
        ),
        ("/api/admin/api-tokens", "post", "CreateTokenRequest"),
    ] {
        assert_eq!(
            document["paths"][path][method]["requestBody"],
            json!({
                "required": true,
                "content": {"application/json": {"schema": {"$ref": format!("#/components/schemas/{name}")}}}
            }),
            "{method} {path}"
        );
    }
}
