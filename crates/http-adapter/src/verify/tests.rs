//! Route tests for `/edge/validate` and `/api/verify` over a mocked
//! verification port: status codes, headers, bodies and the contract's limits.

use std::sync::Arc;

use actix_web::http::header::{AUTHORIZATION, CONTENT_TYPE};
use actix_web::http::{Method, StatusCode};
use actix_web::test::{self, TestRequest};
use actix_web::App;
use keywarden_application::{
    CredentialFacts, InvalidScope, MockApiTokenUseCases, MockTokenVerification, Refusal,
    TokenScope, VerifiedToken,
};
use keywarden_domain::{
    AcceptedTypes, EnvironmentName, EnvironmentScope, ProjectId, Projects, RequiredScope, Selector,
    TokenType,
};
use serde_json::{json, Value};

use crate::{configure, BodyLimit, RequestLimits};

const BACKEND: &str = "web:development.backend-secret";
const ADMIN: &str = "*:*.admin-secret";
const EXPIRED: &str = "web:development.expired";
/// A credential that needs a lookup storage cannot answer (the view loads).
const UNANSWERED: &str = "web:development.unanswered";

/// A port that refuses every credential as unknown and accepts any scope:
/// for tests of other routes that only need these routes to answer.
pub(crate) fn refusing() -> MockTokenVerification {
    let mut verification = MockTokenVerification::new();
    verification
        .expect_required_scope()
        .returning(|_, _, _| Ok(RequiredScope::of_types(AcceptedTypes::ANY)));
    verification
        .expect_verify()
        .returning(|presented, _| Err(presented.map_or(Refusal::Missing, |_| Refusal::Unknown)));
    verification
}

fn backend_facts() -> CredentialFacts {
    CredentialFacts {
        name: Arc::from("shop front ü"),
        token_type: TokenType::Backend,
        scope: Arc::new(TokenScope {
            projects: Projects::from_ids(["web", "shop"]).unwrap(),
            environment: EnvironmentScope::Named(EnvironmentName::parse("development").unwrap()),
        }),
        expires_at: Some(
            chrono::TimeZone::with_ymd_and_hms(&chrono::Utc, 2030, 1, 1, 0, 0, 0).unwrap(),
        ),
    }
}

fn admin_facts() -> CredentialFacts {
    CredentialFacts {
        name: Arc::from("root"),
        token_type: TokenType::Admin,
        scope: Arc::new(TokenScope {
            projects: Projects::All,
            environment: EnvironmentScope::All,
        }),
        expires_at: None,
    }
}

/// A port that knows a backend and an admin credential and applies the real
/// scope rules, with `development`/`production` and `web`/`shop` declared.
fn knowing() -> MockTokenVerification {
    let mut verification = MockTokenVerification::new();
    verification
        .expect_required_scope()
        .returning(|types, environment, projects| {
            let invalid = |parameter, message: String| InvalidScope { parameter, message };
            let types = match types {
                None => AcceptedTypes::SERVICE,
                Some(list) => AcceptedTypes::parse(list)
                    .map_err(|_| invalid("type", format!("type={list} is not a list of types")))?,
            };
            let environment = environment
                .map(|name| match name {
                    "development" | "production" => Ok(EnvironmentName::parse(name).unwrap()),
                    _ => Err(invalid(
                        "environment",
                        format!("Environment={name} does not exist"),
                    )),
                })
                .transpose()?;
            let projects = projects
                .iter()
                .map(|id| match id.as_str() {
                    "web" | "shop" => Ok(ProjectId::parse(id).unwrap()),
                    _ => Err(invalid("project", format!("Project={id} does not exist"))),
                })
                .collect::<Result<_, _>>()?;
            Ok(RequiredScope::new(types, environment, projects))
        });
    verification
        .expect_verify()
        .returning(|presented, required| {
            let (selector, facts) = match presented {
                None => return Err(Refusal::Missing),
                Some(BACKEND) => (Selector::from_bytes([2; 16]), backend_facts()),
                Some(ADMIN) => (Selector::from_bytes([1; 16]), admin_facts()),
                Some(EXPIRED) => return Err(Refusal::Expired),
                Some(UNANSWERED) => return Err(Refusal::Unavailable),
                Some(_) => return Err(Refusal::Unknown),
            };
            required
                .check(facts.token_type, facts.environment(), facts.projects())
                .map_err(Refusal::OutOfScope)?;
            Ok(VerifiedToken {
                selector,
                facts: Arc::new(facts),
            })
        });
    verification
}

struct Answer {
    status: StatusCode,
    headers: actix_web::http::header::HeaderMap,
    body: Value,
}

async fn call(verification: MockTokenVerification, req: TestRequest) -> Answer {
    let app = test::init_service(App::new().configure(configure(
        Arc::new(MockApiTokenUseCases::new()),
        Arc::new(verification),
        BodyLimit(1024),
        RequestLimits::default(),
        Arc::new(String::new),
    )))
    .await;
    let response = test::call_service(&app, req.to_request()).await;
    let status = response.status();
    let headers = response.headers().clone();
    let bytes = test::read_body(response).await;
    let body = if bytes.is_empty() {
        Value::Null
    } else {
        serde_json::from_slice(&bytes)
            .unwrap_or_else(|_| panic!("not JSON: {}", String::from_utf8_lossy(&bytes)))
    };
    Answer {
        status,
        headers,
        body,
    }
}

fn header<'a>(answer: &'a Answer, name: &str) -> Option<&'a str> {
    answer.headers.get(name).map(|v| v.to_str().unwrap())
}

fn verify(query: &str, credential: Option<&str>) -> TestRequest {
    let req = TestRequest::get().uri(&format!("/api/verify{query}"));
    match credential {
        Some(credential) => req.insert_header((AUTHORIZATION, credential)),
        None => req,
    }
}

fn edge(body: &str) -> TestRequest {
    TestRequest::post()
        .uri("/edge/validate")
        .insert_header((CONTENT_TYPE, "application/json"))
        .set_payload(body.to_string())
}

// ---- /api/verify ------------------------------------------------------------

#[actix_web::test]
async fn a_valid_token_in_scope_gets_200_with_headers_and_body() {
    let answer = call(knowing(), verify("", Some(&format!("Bearer {BACKEND}")))).await;
    assert_eq!(answer.status, StatusCode::OK);
    let id = Selector::from_bytes([2; 16]).to_string();
    assert_eq!(header(&answer, "x-token-id"), Some(id.as_str()));
    assert_eq!(
        header(&answer, "x-token-name"),
        Some("shop%20front%20%C3%BC")
    );
    assert_eq!(header(&answer, "x-token-type"), Some("client"));
    assert_eq!(header(&answer, "x-token-environment"), Some("development"));
    assert_eq!(header(&answer, "x-token-projects"), Some("shop,web"));
    assert_eq!(header(&answer, "cache-control"), Some("no-store"));
    assert_eq!(
        answer.body,
        json!({
            "id": id, "tokenName": "shop front ü", "type": "client",
            "projects": ["shop", "web"], "environment": "development",
            "expiresAt": "2030-01-01T00:00:00.000Z"
        })
    );
}

#[actix_web::test]
async fn every_method_verifies_alike() {
    for method in ["GET", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "HEAD"] {
        let req = verify("", Some(BACKEND))
            .method(Method::from_bytes(method.as_bytes()).unwrap())
            .insert_header((CONTENT_TYPE, "text/plain"))
            .set_payload("ignored");
        let answer = call(knowing(), req).await;
        assert_eq!(answer.status, StatusCode::OK, "{method}");
        assert_eq!(header(&answer, "x-token-type"), Some("client"), "{method}");
    }
}

#[actix_web::test]
async fn admin_tokens_pass_only_where_admin_is_listed() {
    let answer = call(knowing(), verify("", Some(ADMIN))).await;
    assert_eq!(answer.status, StatusCode::FORBIDDEN);
    assert_eq!(answer.body["name"], "ForbiddenError");
    assert!(answer.body["id"].is_string());
    assert!(answer.body["message"]
        .as_str()
        .unwrap()
        .contains("admin tokens are not accepted here"));
    let answer = call(knowing(), verify("?type=admin", Some(ADMIN))).await;
    assert_eq!(answer.status, StatusCode::OK);
    assert_eq!(header(&answer, "x-token-environment"), Some("*"));
    assert_eq!(header(&answer, "x-token-projects"), Some("*"));
    assert_eq!(answer.body["expiresAt"], Value::Null);
}

#[actix_web::test]
async fn out_of_scope_names_the_environment_or_project_never_the_credential() {
    for (query, named) in [
        ("?environment=production", "environment production"),
        (
            "?project=web&project=shop&environment=development&type=client,frontend",
            "",
        ),
        ("?project=web&project=nope", "Project=nope"),
    ] {
        let answer = call(knowing(), verify(query, Some(BACKEND))).await;
        if named.is_empty() {
            assert_eq!(answer.status, StatusCode::OK, "{query}");
            continue;
        }
        let message = answer.body["message"].as_str().unwrap();
        assert!(message.contains(named), "{query}: {message}");
        assert!(!message.contains("backend-secret"), "{query}");
        assert_eq!(
            header(&answer, "cache-control"),
            Some("no-store"),
            "{query}"
        );
    }
    let answer = call(knowing(), verify("?type=frontend", Some(BACKEND))).await;
    assert_eq!(answer.status, StatusCode::FORBIDDEN);
    assert!(answer.body["message"]
        .as_str()
        .unwrap()
        .contains("client tokens are not accepted here"));
}

#[actix_web::test]
async fn missing_unknown_and_expired_credentials_get_401_with_a_challenge() {
    for (credential, name) in [
        (None, "AuthenticationRequired"),
        (Some("Bearer "), "AuthenticationRequired"),
        (Some("*:*.unknown"), "UnauthorizedError"),
        (Some(EXPIRED), "UnauthorizedError"),
        (Some("Basic dXNlcjpwYXNz"), "UnauthorizedError"),
    ] {
        let answer = call(knowing(), verify("", credential)).await;
        assert_eq!(answer.status, StatusCode::UNAUTHORIZED, "{credential:?}");
        assert_eq!(answer.body["name"], name, "{credential:?}");
        assert_eq!(
            header(&answer, "www-authenticate"),
            Some("Bearer realm=\"keywarden\""),
            "{credential:?}"
        );
        assert_eq!(header(&answer, "cache-control"), Some("no-store"));
        assert!(header(&answer, "x-token-name").is_none());
    }
}

#[actix_web::test]
async fn several_authorization_headers_are_unauthorized() {
    let req = verify("", Some(BACKEND)).append_header((AUTHORIZATION, BACKEND));
    let answer = call(knowing(), req).await;
    assert_eq!(answer.status, StatusCode::UNAUTHORIZED);
    assert_eq!(answer.body["name"], "UnauthorizedError");
}

#[actix_web::test]
async fn bad_scopes_are_400_naming_the_parameter_or_value() {
    for (query, path, named) in [
        ("?tpye=backend", "/query", "tpye"),
        ("?type=backend,fronted", "/query/type", "fronted"),
        ("?type=", "/query/type", "type="),
        ("?environment=staging", "/query/environment", "staging"),
        ("?project=web&project=blog", "/query/project", "blog"),
        (
            "?environment=development&environment=production",
            "/query/environment",
            "more than once",
        ),
        ("?type=%ZZ", "/query", "percent-encoding"),
        ("?project=%E2%9C", "/query", "percent-encoding"),
    ] {
        // A typo in the proxy's configuration shows whatever the credential.
        for credential in [Some(BACKEND), None] {
            let answer = call(knowing(), verify(query, credential)).await;
            assert_eq!(answer.status, StatusCode::BAD_REQUEST, "{query}");
            assert_eq!(answer.body["name"], "BadDataError", "{query}");
            assert_eq!(answer.body["details"][0]["path"], path, "{query}");
            let message = answer.body["message"].as_str().unwrap();
            assert!(message.contains(named), "{query}: {message}");
            assert_eq!(header(&answer, "cache-control"), Some("no-store"));
        }
    }
    let answer = call(knowing(), verify("?project=sh%6Fp&&", Some(BACKEND))).await;
    assert_eq!(
        answer.status,
        StatusCode::OK,
        "decoded, empty pairs skipped"
    );
}

#[test]
fn header_values_are_percent_encoded_outside_visible_ascii() {
    assert_eq!(super::header_text("a-Z_0.*,~"), "a-Z_0.*,~");
    assert_eq!(super::header_text("50% off"), "50%25%20off");
    assert_eq!(super::header_text("tab\there"), "tab%09here");
    assert_eq!(super::header_text("日"), "%E6%97%A5");
}

#[test]
fn the_served_document_names_the_accepted_scope_values() {
    let mut document: Value = serde_json::from_str(&crate::openapi_document()).unwrap();
    super::declare_scope_values(&mut document, &["production".into()], &["web".into()]);
    for method in ["get", "post", "head", "options"] {
        let parameters = document["paths"]["/api/verify"][method]["parameters"]
            .as_array()
            .unwrap();
        let schema = |name: &str| {
            parameters
                .iter()
                .find(|p| p["name"] == name)
                .unwrap_or_else(|| panic!("{method} documents {name}"))["schema"]
                .clone()
        };
        assert_eq!(schema("environment")["enum"], json!(["production", null]));
        assert_eq!(schema("project")["items"]["enum"], json!(["web"]));
        assert!(schema("type")["enum"]
            .as_array()
            .unwrap()
            .contains(&json!("backend,frontend")));
    }
}

// ---- /edge/validate ---------------------------------------------------------

#[actix_web::test]
async fn edge_lists_valid_tokens_in_request_order_with_duplicates() {
    let body = json!({"tokens": [ADMIN, "*:*.unknown", BACKEND, EXPIRED, ADMIN]}).to_string();
    let req = edge(&body).insert_header((AUTHORIZATION, "*:*.ignored"));
    let answer = call(knowing(), req).await;
    assert_eq!(answer.status, StatusCode::OK);
    assert_eq!(
        answer.body,
        json!({"tokens": [
            {"token": ADMIN, "type": "admin", "projects": ["*"], "environment": "*"},
            {"token": BACKEND, "type": "client", "projects": ["shop", "web"], "environment": "development"},
            {"token": ADMIN, "type": "admin", "projects": ["*"], "environment": "*"},
        ]})
    );
    let answer = call(knowing(), edge(r#"{"tokens": [], "extra": 1}"#)).await;
    assert_eq!(answer.body, json!({"tokens": []}));
}

#[actix_web::test]
async fn edge_bad_bodies_are_400_naming_the_problem() {
    for (body, path) in [
        ("{not json", "/body"),
        ("[]", "/body"),
        ("\"tokens\"", "/body"),
        ("{}", "/body/tokens"),
        (r#"{"tokens": "a"}"#, "/body/tokens"),
        (r#"{"tokens": null}"#, "/body/tokens"),
        (r#"{"tokens": ["a", 5, "b"]}"#, "/body/tokens/1"),
        (r#"{"tokens": ["a", null]}"#, "/body/tokens/1"),
    ] {
        let answer = call(knowing(), edge(body)).await;
        assert_eq!(answer.status, StatusCode::BAD_REQUEST, "{body}");
        assert_eq!(answer.body["name"], "BadDataError", "{body}");
        assert_eq!(answer.body["details"][0]["path"], path, "{body}");
    }
    let answer = call(knowing(), edge(r#"{"tokens": ["a", {"x": 1}]}"#)).await;
    assert!(answer.body["message"]
        .as_str()
        .unwrap()
        .contains("tokens[1]"));
}

#[actix_web::test]
async fn edge_accepts_1000_entries_beyond_the_server_body_limit_but_not_1001() {
    let credential = "x".repeat(200);
    let thousand = json!({"tokens": vec![credential.as_str(); 1000]}).to_string();
    assert!(thousand.len() > 200_000, "well beyond BodyLimit(1024)");
    let answer = call(knowing(), edge(&thousand)).await;
    assert_eq!(answer.status, StatusCode::OK);
    let more = json!({"tokens": vec!["x"; 1001]}).to_string();
    let answer = call(knowing(), edge(&more)).await;
    assert_eq!(answer.status, StatusCode::BAD_REQUEST);
    assert!(answer.body["message"].as_str().unwrap().contains("1000"));
    let too_big = format!(r#"{{"tokens": ["{}"]}}"#, "x".repeat(256 * 1024));
    let answer = call(knowing(), edge(&too_big)).await;
    assert_eq!(answer.status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(answer.body["name"], "ContentTooLargeError");
}

#[actix_web::test]
async fn edge_needs_json_and_post() {
    let req = TestRequest::post()
        .uri("/edge/validate")
        .insert_header((CONTENT_TYPE, "text/plain"))
        .set_payload("{not even json");
    let answer = call(knowing(), req).await;
    assert_eq!(answer.status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    assert_eq!(answer.body["name"], "ContentTypeError");
    let answer = call(knowing(), TestRequest::get().uri("/edge/validate")).await;
    assert_eq!(answer.status, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(header(&answer, "allow"), Some("POST, OPTIONS"));
}

#[actix_web::test]
async fn a_credential_storage_cannot_check_yet_is_503_not_401() {
    let answer = call(knowing(), verify("", Some(UNANSWERED))).await;
    assert_eq!(answer.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(answer.body["name"], "ServiceUnavailableError");
    assert_eq!(header(&answer, "www-authenticate"), None);
    let body = format!(r#"{{"tokens": ["{BACKEND}", "{UNANSWERED}"]}}"#);
    let answer = call(knowing(), edge(&body)).await;
    assert_eq!(
        answer.status,
        StatusCode::SERVICE_UNAVAILABLE,
        "a partial list would drop a valid token"
    );
}
