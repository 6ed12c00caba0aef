//! The real application (settings → adapters → server) in-process on port 0,
//! over a temporary SQLite file or, with `KEYWARDEN_TEST_BACKEND=postgres`, a
//! fresh PostgreSQL database; driven through [`crate::http`].

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;

use keywarden::{Application, Settings};
use keywarden_persistence_adapter::testing::TestDatabase;
use serde_json::Value;

use crate::http::{exchange, request_text, Response};

pub struct TestApp {
    pub port: u16,
    /// The admin credential the first start generated.
    pub admin: String,
    pub dir: tempfile::TempDir,
    /// Set when the suite runs on PostgreSQL (`KEYWARDEN_TEST_BACKEND=postgres`).
    pub database: Option<Arc<TestDatabase>>,
}

pub async fn spawn_app() -> TestApp {
    spawn_with(&[], |_| {}).await
}

/// Starts the application with extra environment variables and settings
/// changes, on a fresh database: a SQLite file, or a PostgreSQL database when
/// `KEYWARDEN_TEST_BACKEND=postgres` (and `TEST_POSTGRES_URL`) are set.
pub async fn spawn_with(vars: &[(&str, &str)], customize: impl FnOnce(&mut Settings)) -> TestApp {
    let database = if std::env::var("KEYWARDEN_TEST_BACKEND").as_deref() == Ok("postgres") {
        assert!(
            std::env::var_os("TEST_POSTGRES_URL").is_some(),
            "KEYWARDEN_TEST_BACKEND=postgres needs TEST_POSTGRES_URL"
        );
        TestDatabase::fresh().await.map(Arc::new)
    } else {
        None
    };
    spawn_on(database, vars, customize).await
}

/// Starts an instance on `database` (several may share one), or on a fresh
/// SQLite file when `None`.
pub async fn spawn_on(
    database: Option<Arc<TestDatabase>>,
    vars: &[(&str, &str)],
    customize: impl FnOnce(&mut Settings),
) -> TestApp {
    let dir = tempfile::tempdir().unwrap();
    let mut env: HashMap<String, String> = vars
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let url = match &database {
        Some(database) => database.url().to_string(),
        None => format!("sqlite://{}", dir.path().join("kw.db").display()),
    };
    env.insert("DATABASE_URL".into(), url);
    env.insert("HTTP_HOST".into(), "127.0.0.1".into());
    env.insert("HTTP_PORT".into(), "0".into());
    let mut settings = Settings::load(None, env).unwrap();
    settings.server.workers = 1;
    settings.database.max_connections = 4;
    customize(&mut settings);
    let app = Application::build(settings).await.expect("the app starts");
    let port = app.port();
    let admin = app
        .generated_admin_credential()
        .map(|c| c.expose_secret().to_string())
        .unwrap_or_default();
    actix_web::rt::spawn(app.run_until_stopped());
    TestApp {
        port,
        admin,
        dir,
        database,
    }
}

impl TestApp {
    pub fn data_files(&self) -> Vec<PathBuf> {
        std::fs::read_dir(self.dir.path())
            .unwrap()
            .map(|entry| entry.unwrap().path())
            .collect()
    }

    /// Sends one request exactly as given. `target` is the raw request target.
    pub async fn send(
        &self,
        method: &str,
        target: &str,
        headers: &[(&str, &str)],
        body: Option<&str>,
    ) -> Response {
        let request = request_text(method, target, headers, body);
        let port = self.port;
        actix_web::rt::task::spawn_blocking(move || exchange(port, request.as_bytes()))
            .await
            .unwrap()
    }

    pub async fn get(&self, target: &str, credential: &str) -> Response {
        self.send("GET", target, &[("Authorization", credential)], None)
            .await
    }

    pub async fn put_expiry(&self, target: &str, credential: &str, expires_at: &str) -> Response {
        let body = format!(r#"{{"expiresAt":"{expires_at}"}}"#);
        self.send(
            "PUT",
            target,
            &[
                ("Authorization", credential),
                ("Content-Type", "application/json"),
            ],
            Some(&body),
        )
        .await
    }

    pub async fn post_json(&self, target: &str, credential: &str, body: &Value) -> Response {
        self.send(
            "POST",
            target,
            &[
                ("Authorization", credential),
                ("Content-Type", "application/json"),
            ],
            Some(&body.to_string()),
        )
        .await
    }

    pub async fn delete(&self, target: &str, credential: &str) -> Response {
        self.send("DELETE", target, &[("Authorization", credential)], None)
            .await
    }

    /// Creates a token over the API; returns (selector, full credential).
    pub async fn create(&self, body: Value) -> (String, String) {
        let response = self
            .post_json("/api/admin/api-tokens", &self.admin, &body)
            .await;
        assert_eq!(response.status, 201, "{}", response.body);
        let secret = response.json()["secret"].as_str().unwrap().to_string();
        let selector = self
            .tokens()
            .await
            .into_iter()
            .find(|t| secret.contains(t["secret"].as_str().unwrap()))
            .expect("the new token is listed")["secret"]
            .as_str()
            .unwrap()
            .to_string();
        (selector, secret)
    }

    pub async fn tokens(&self) -> Vec<Value> {
        let response = self.get("/api/admin/api-tokens", &self.admin).await;
        assert_eq!(response.status, 200, "{}", response.body);
        response.json()["tokens"].as_array().unwrap().clone()
    }

    pub async fn token(&self, selector: &str) -> Value {
        self.tokens()
            .await
            .into_iter()
            .find(|t| t["secret"] == selector)
            .unwrap_or_else(|| panic!("token {selector} is listed"))
    }

    pub async fn events(&self, query: &str) -> Vec<Value> {
        let response = self
            .get(&format!("/api/admin/events{query}"), &self.admin)
            .await;
        assert_eq!(response.status, 200, "{}", response.body);
        assert_eq!(response.json()["version"], 1);
        response.json()["events"].as_array().unwrap().clone()
    }
}

/// The random part of a v2 credential, to search for where it must not be.
pub fn random_part(credential: &str) -> &str {
    &credential[credential.len() - 43..]
}
