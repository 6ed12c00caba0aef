//! End-to-end harness: the real application (settings → adapters → server)
//! on port 0 over a temporary SQLite file, driven over plain TCP so tests
//! control every byte of the request line, headers and body.

#![allow(dead_code)]

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;

use keywarden::{Application, Settings};
use keywarden_persistence_adapter::testing::TestDatabase;
use serde_json::Value;

pub struct TestApp {
    pub port: u16,
    /// The admin credential the first start generated.
    pub admin: String,
    pub dir: tempfile::TempDir,
    /// Set when the suite runs on PostgreSQL (`KEYWARDEN_TEST_BACKEND=postgres`).
    pub database: Option<std::sync::Arc<TestDatabase>>,
}

#[derive(Debug)]
pub struct Response {
    pub status: u16,
    pub headers: HashMap<String, String>,
    pub body: String,
}

impl Response {
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| {
            panic!(
                "status {} body is not JSON ({e}): {:?}",
                self.status, self.body
            )
        })
    }

    /// The `name` of an error body.
    pub fn error_name(&self) -> String {
        self.json()["name"].as_str().unwrap_or_default().to_string()
    }
}

pub async fn spawn_app() -> TestApp {
    spawn_with(&[], |_| {}).await
}

/// Starts the application with extra environment variables and settings
/// changes, on a fresh database: a SQLite file, or a PostgreSQL database when
/// `KEYWARDEN_TEST_BACKEND=postgres` (and `TEST_POSTGRES_URL`) are set.
pub async fn spawn_with(vars: &[(&str, &str)], customize: impl FnOnce(&mut Settings)) -> TestApp {
    let database = if std::env::var("KEYWARDEN_TEST_BACKEND").as_deref() == Ok("postgres") {
        let database = actix_web::rt::task::spawn_blocking(TestDatabase::create)
            .await
            .unwrap()
            .expect("KEYWARDEN_TEST_BACKEND=postgres needs TEST_POSTGRES_URL");
        Some(std::sync::Arc::new(database))
    } else {
        None
    };
    spawn_on(database, vars, customize).await
}

/// Starts an instance on `database` (several may share one), or on a fresh
/// SQLite file when `None`.
pub async fn spawn_on(
    database: Option<std::sync::Arc<TestDatabase>>,
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
        let mut request =
            format!("{method} {target} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n");
        for (name, value) in headers {
            request.push_str(&format!("{name}: {value}\r\n"));
        }
        if let Some(body) = body {
            request.push_str(&format!("Content-Length: {}\r\n", body.len()));
        }
        request.push_str("\r\n");
        request.push_str(body.unwrap_or_default());
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

fn exchange(port: u16, request: &[u8]) -> Response {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
    stream.write_all(request).unwrap();
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).unwrap();
    let text = String::from_utf8_lossy(&raw).to_string();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let mut lines = head.lines();
    let status = lines
        .next()
        .and_then(|line| line.split_whitespace().nth(1))
        .and_then(|code| code.parse().ok())
        .unwrap_or_else(|| panic!("no status line in {text:?}"));
    let headers = lines
        .filter_map(|line| line.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    Response {
        status,
        headers,
        body: body.to_string(),
    }
}

/// `%XX`-encodes every byte that is not unreserved.
pub fn encode(text: &str) -> String {
    text.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

/// The random part of a v2 credential, to search for where it must not be.
pub fn random_part(credential: &str) -> &str {
    &credential[credential.len() - 43..]
}

/// `response` is an error with the contract's full body (api-tokens.md §3).
pub fn assert_error(response: &Response, status: u16, name: &str) {
    assert_eq!(response.status, status, "{}", response.body);
    let body = response.json();
    assert_eq!(body["name"], name, "{body}");
    assert!(
        body["id"].as_str().is_some_and(|id| id.len() == 36),
        "{body}"
    );
    assert!(
        body["message"].as_str().is_some_and(|m| !m.is_empty()),
        "{body}"
    );
    assert_eq!(body["details"][0]["message"], body["message"], "{body}");
}
