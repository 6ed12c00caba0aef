//! Several instances on one PostgreSQL database (needs `TEST_POSTGRES_URL`;
//! skipped without it): changes made on one instance take effect on the
//! others within a second, and a database outage is a clean 503 that heals
//! by itself.

use std::sync::Arc;
use std::time::{Duration, Instant};

use keywarden_test_support::app::{spawn_on, TestApp};
use keywarden_test_support::TestDatabase;
use serde_json::json;

const ADMIN: &str = "*:*.shared-admin";
const BOUND: Duration = Duration::from_secs(1);

async fn fresh_database() -> Option<Arc<TestDatabase>> {
    TestDatabase::fresh().await.map(Arc::new)
}

async fn instance(database: &Arc<TestDatabase>) -> TestApp {
    let mut app = spawn_on(
        Some(Arc::clone(database)),
        &[("INIT_ADMIN_API_TOKENS", ADMIN)],
        |settings| settings.database.acquire_timeout_ms = 500,
    )
    .await;
    app.admin = ADMIN.to_string();
    app
}

/// Polls until `credential` gets `status` on `app`'s Admin API; returns how long it took.
async fn time_until(app: &TestApp, credential: &str, status: u16) -> Duration {
    let start = Instant::now();
    loop {
        if app.get("/api/admin/api-tokens", credential).await.status == status {
            return start.elapsed();
        }
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "never answered {status}"
        );
        actix_web::rt::time::sleep(Duration::from_millis(5)).await;
    }
}

#[actix_web::test]
async fn creates_expiries_and_deletes_reach_the_other_instance_within_a_second() {
    let Some(database) = fresh_database().await else {
        return;
    };
    let a = instance(&database).await;
    let b = instance(&database).await;

    // A backend token answers 403 while valid and 401 once it is not.
    let (selector, credential) = a
        .create(json!({"tokenName": "sdk", "type": "backend"}))
        .await;
    let seen = time_until(&b, &credential, 403).await;
    eprintln!("created on A → valid on B after {seen:?}");
    assert!(seen < BOUND, "created on A, valid on B after {seen:?}");

    let response = a
        .put_expiry(
            &format!("/api/admin/api-tokens/{selector}"),
            ADMIN,
            "2000-01-01T00:00:00Z",
        )
        .await;
    assert_eq!(response.status, 200);
    let expired = time_until(&b, &credential, 401).await;
    eprintln!("expired on A → rejected on B after {expired:?}");
    assert!(
        expired < BOUND,
        "expired on A, still valid on B for {expired:?}"
    );

    let response = a
        .put_expiry(
            &format!("/api/admin/api-tokens/{selector}"),
            ADMIN,
            "2100-01-01T00:00:00Z",
        )
        .await;
    assert_eq!(response.status, 200);
    time_until(&b, &credential, 403).await;

    assert_eq!(
        a.delete(&format!("/api/admin/api-tokens/{selector}"), ADMIN)
            .await
            .status,
        200
    );
    let deleted = time_until(&b, &credential, 401).await;
    eprintln!("deleted on A → rejected on B after {deleted:?}");
    assert!(
        deleted < BOUND,
        "deleted on A, still valid on B for {deleted:?}"
    );

    // B writes too, and A follows.
    let (_, from_b) = b
        .create(json!({"tokenName": "from-b", "type": "frontend"}))
        .await;
    let seen = time_until(&a, &from_b, 403).await;
    assert!(seen < BOUND, "created on B, valid on A after {seen:?}");
    assert_eq!(
        a.events("?type=api-token-deleted").await.len(),
        1,
        "one audit trail"
    );
}

#[actix_web::test]
async fn instances_starting_together_bootstrap_once() {
    let Some(database) = fresh_database().await else {
        return;
    };
    let (a, b) = tokio::join!(
        spawn_on(Some(Arc::clone(&database)), &[], |_| {}),
        spawn_on(Some(Arc::clone(&database)), &[], |_| {}),
    );
    let generated: Vec<&str> = [&a.admin, &b.admin]
        .into_iter()
        .filter(|credential| !credential.is_empty())
        .map(String::as_str)
        .collect();
    assert_eq!(
        generated.len(),
        1,
        "exactly one instance created the first admin token"
    );
    let admin = generated[0];
    time_until(&a, admin, 200).await;
    time_until(&b, admin, 200).await;
    let tokens = a.get("/api/admin/api-tokens", admin).await.json();
    assert_eq!(tokens["tokens"].as_array().unwrap().len(), 1);
}

#[actix_web::test]
async fn a_database_outage_is_a_503_and_service_resumes_by_itself() {
    let Some(database) = fresh_database().await else {
        return;
    };
    let app = instance(&database).await;
    let (selector, _) = app
        .create(json!({"tokenName": "sdk", "type": "client"}))
        .await;
    let target = format!("/api/admin/api-tokens/{selector}");
    let name = database.name().to_string();
    let cut_off = {
        let database = Arc::clone(&database);
        move |allow: bool| {
            let database = Arc::clone(&database);
            let name = name.clone();
            actix_web::rt::task::spawn_blocking(move || {
                database
                    .execute_on_server(&format!("ALTER DATABASE {name} ALLOW_CONNECTIONS {allow}"));
                if !allow {
                    database.execute_on_server(&format!(
                        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{name}'"
                    ));
                }
            })
        }
    };

    cut_off(false).await.unwrap();
    for _ in 0..3 {
        let start = Instant::now();
        let response = app.put_expiry(&target, ADMIN, "2040-01-01T00:00:00Z").await;
        assert_eq!(response.status, 503, "{}", response.body);
        assert_eq!(response.error_name(), "ServiceUnavailableError");
        assert!(
            start.elapsed() < Duration::from_secs(3),
            "answered within the pool timeout"
        );
    }
    let ready = app.send("GET", "/ready", &[], None).await;
    assert_eq!(ready.status, 503);
    let listed = app.get("/api/admin/api-tokens", ADMIN).await;
    assert_eq!(listed.status, 503, "{}", listed.body);
    // Authentication needs no database: a bad credential is still a 401.
    assert_eq!(
        app.get("/api/admin/api-tokens", "*:*.nope").await.status,
        401
    );

    cut_off(true).await.unwrap();
    let start = Instant::now();
    loop {
        let response = app.put_expiry(&target, ADMIN, "2040-01-01T00:00:00Z").await;
        if response.status == 200 {
            break;
        }
        assert_eq!(response.status, 503);
        assert!(
            start.elapsed() < Duration::from_secs(15),
            "service did not resume"
        );
        actix_web::rt::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(app.send("GET", "/ready", &[], None).await.status, 200);
    assert_eq!(
        app.token(&selector).await["expiresAt"],
        "2040-01-01T00:00:00.000Z"
    );
}
