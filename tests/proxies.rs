//! End to end through real reverse proxies: nginx (`auth_request`) and Caddy
//! (`forward_auth`), each started in the foreground on a free port with the
//! configuration the README shows (`docs/examples/`), in front of a small
//! upstream that echoes the `X-Token-Name` it received, with keywarden behind
//! them. Without nginx or Caddy installed these tests say so and pass; with
//! `CI=true` a missing proxy fails them.
#![expect(clippy::unwrap_used, reason = "test helpers fail the test loudly")]

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use keywarden_test_support::app::{spawn_on, spawn_with, TestApp};
use keywarden_test_support::http::Response;
use keywarden_test_support::TestDatabase;
use serde_json::json;

const ADMIN: &str = "*:*.proxies-admin";
const PAST: &str = "2001-01-01T00:00:00.000Z";
/// Addresses the example configurations use, replaced by the test's own.
const EXAMPLE_LISTEN: &str = "8080";
const EXAMPLE_KEYWARDEN: &str = "127.0.0.1:4242";
const EXAMPLE_UPSTREAM: &str = "127.0.0.1:3000";

#[derive(Debug, Clone, Copy)]
enum Kind {
    Nginx,
    Caddy,
}

impl Kind {
    const ALL: [Self; 2] = [Self::Nginx, Self::Caddy];

    fn binary(self) -> &'static str {
        match self {
            Self::Nginx => "/usr/sbin/nginx",
            Self::Caddy => "/usr/bin/caddy",
        }
    }

    fn example(self) -> &'static str {
        match self {
            Self::Nginx => "nginx.conf",
            Self::Caddy => "Caddyfile",
        }
    }

    /// Whether this proxy can run here. Missing: a printed note locally, a
    /// failure in CI.
    fn available(self) -> bool {
        if Path::new(self.binary()).exists() {
            return true;
        }
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "{} is missing: .ci/run installs nginx and caddy",
            self.binary()
        );
        eprintln!(
            "NOTE: skipping the {self:?} test: {} is not installed (apt-get install nginx caddy)",
            self.binary()
        );
        false
    }
}

/// A running proxy; killed (and reaped) when dropped.
struct Proxy {
    child: Child,
    port: u16,
    dir: tempfile::TempDir,
    kind: Kind,
}

impl Drop for Proxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .map(|address| address.port())
        .unwrap()
}

/// The README's configuration with the test's addresses put in.
fn example(kind: Kind, listen: u16, keywarden: u16, upstream: u16) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("docs/examples")
        .join(kind.example());
    let text = std::fs::read_to_string(&path).unwrap();
    for placeholder in [EXAMPLE_LISTEN, EXAMPLE_KEYWARDEN, EXAMPLE_UPSTREAM] {
        assert!(
            text.contains(placeholder),
            "{path:?} no longer uses {placeholder}"
        );
    }
    text.replace(EXAMPLE_KEYWARDEN, &format!("127.0.0.1:{keywarden}"))
        .replace(EXAMPLE_UPSTREAM, &format!("127.0.0.1:{upstream}"))
        // An address with a scheme: Caddy would serve a bare IP over HTTPS.
        .replace(
            &format!("\n:{EXAMPLE_LISTEN} {{"),
            &format!("\nhttp://127.0.0.1:{listen} {{"),
        )
        .replace(
            &format!("listen {EXAMPLE_LISTEN};"),
            &format!("listen 127.0.0.1:{listen};"),
        )
}

/// Everything nginx writes goes into `dir`.
fn nginx_config(dir: &Path, server: &str) -> String {
    let d = dir.display();
    format!(
        "daemon off;\nmaster_process off;\nworker_processes 1;\npid {d}/nginx.pid;\n\
         error_log {d}/error.log info;\nevents {{ worker_connections 64; }}\nhttp {{\n\
         access_log {d}/access.log;\nclient_body_temp_path {d}/body;\nproxy_temp_path {d}/proxy;\n\
         fastcgi_temp_path {d}/fastcgi;\nuwsgi_temp_path {d}/uwsgi;\nscgi_temp_path {d}/scgi;\n\
         {server}\n}}\n"
    )
}

impl Proxy {
    fn start(kind: Kind, keywarden: u16, upstream: u16) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let port = free_port();
        let site = example(kind, port, keywarden, upstream);
        let log = |name: &str| std::fs::File::create(dir.path().join(name)).unwrap();
        let mut command = Command::new(kind.binary());
        match kind {
            Kind::Nginx => {
                let config = dir.path().join("nginx.conf");
                std::fs::write(&config, nginx_config(dir.path(), &site)).unwrap();
                command
                    .arg("-e")
                    .arg(dir.path().join("early-error.log"))
                    .arg("-p")
                    .arg(dir.path())
                    .arg("-c")
                    .arg(&config);
            }
            Kind::Caddy => {
                let config = dir.path().join("Caddyfile");
                std::fs::write(&config, format!("{{\n\tadmin off\n}}\n\n{site}")).unwrap();
                command
                    .args(["run", "--adapter", "caddyfile", "--config"])
                    .arg(&config)
                    .env("HOME", dir.path())
                    .env("XDG_DATA_HOME", dir.path().join("data"))
                    .env("XDG_CONFIG_HOME", dir.path().join("config"));
            }
        }
        let child = command
            .current_dir(dir.path())
            .stdin(Stdio::null())
            .stdout(log("stdout.log"))
            .stderr(log("stderr.log"))
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", kind.binary()));
        let mut proxy = Self {
            child,
            port,
            dir,
            kind,
        };
        proxy.wait_until_listening();
        proxy
    }

    fn wait_until_listening(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(15);
        while TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("{:?} exited ({status}):\n{}", self.kind, self.logs());
            }
            assert!(
                Instant::now() < deadline,
                "{:?} never listened:\n{}",
                self.kind,
                self.logs()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn logs(&self) -> String {
        let mut text = String::new();
        for entry in std::fs::read_dir(self.dir.path()).unwrap().flatten() {
            let path: PathBuf = entry.path();
            if path.extension().is_some_and(|ext| ext == "log") {
                let content = std::fs::read_to_string(&path).unwrap_or_default();
                text.push_str(&format!("--- {}\n{content}\n", path.display()));
            }
        }
        text
    }

    /// A client of the proxy, speaking through the e2e harness.
    fn client(&self) -> TestApp {
        TestApp {
            port: self.port,
            admin: String::new(),
            dir: tempfile::tempdir().unwrap(),
            database: None,
        }
    }
}

/// The protected service: answers 200 with the `X-Token-Name` it received
/// (`<none>` without one), one request per connection.
fn start_upstream() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            std::thread::spawn(move || echo_token_name(stream));
        }
    });
    port
}

fn echo_token_name(mut stream: TcpStream) {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        match stream.read(&mut byte) {
            Ok(1) => head.push(byte[0]),
            _ => return,
        }
    }
    let head = String::from_utf8_lossy(&head);
    let name = head
        .lines()
        .filter_map(|line| line.split_once(':'))
        .filter(|(key, _)| key.trim().eq_ignore_ascii_case("x-token-name"))
        .map(|(_, value)| value.trim().to_string())
        .collect::<Vec<_>>()
        .join(" | ");
    let body = if name.is_empty() {
        "<none>".into()
    } else {
        name
    };
    let _ = write!(
        stream,
        "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
}

async fn through(proxy: &TestApp, credential: Option<&str>) -> Response {
    let mut headers = vec![("X-Token-Name", "forged-by-the-client")];
    if let Some(credential) = credential {
        headers.push(("Authorization", credential));
    }
    proxy.send("GET", "/some/page", &headers, None).await
}

/// Starts a proxy off the async runtime (it waits for the port).
async fn proxy(kind: Kind, keywarden: u16, upstream: u16) -> Proxy {
    actix_web::rt::task::spawn_blocking(move || Proxy::start(kind, keywarden, upstream))
        .await
        .unwrap()
}

async fn keywarden() -> TestApp {
    let mut app = spawn_with(&[("INIT_ADMIN_API_TOKENS", ADMIN)], |_| {}).await;
    app.admin = ADMIN.to_string();
    app
}

#[actix_web::test]
async fn tokens_in_scope_reach_the_service_and_others_are_refused() {
    let app = keywarden().await;
    let upstream = start_upstream();
    let (_, production) = app
        .create(json!({"tokenName": "checkout service", "type": "backend", "environment": "production"}))
        .await;
    let (_, development) = app
        .create(json!({"tokenName": "dev", "type": "frontend", "environment": "development"}))
        .await;
    for kind in Kind::ALL {
        if !kind.available() {
            continue;
        }
        let running = proxy(kind, app.port, upstream).await;
        let client = running.client();

        let response = through(&client, Some(&format!("Bearer {production}"))).await;
        assert_eq!(response.status, 200, "{kind:?}: {}", response.body);
        assert_eq!(
            response.body, "checkout%20service",
            "{kind:?}: the service sees keywarden's name, not the client's"
        );

        let response = through(&client, None).await;
        assert_eq!(response.status, 401, "{kind:?}: {}", response.body);
        assert_eq!(
            response.headers.get("www-authenticate").map(String::as_str),
            Some("Bearer realm=\"keywarden\""),
            "{kind:?}"
        );
        assert_eq!(through(&client, Some("*:*.unknown")).await.status, 401);
        assert_eq!(
            through(&client, Some(&development)).await.status,
            403,
            "{kind:?}: out of scope"
        );
        assert_eq!(through(&client, Some(ADMIN)).await.status, 403, "{kind:?}");
        assert!(!running
            .logs()
            .contains(keywarden_test_support::app::random_part(&production)));
    }

    // Expired through PUT: refused by the very next request through each proxy.
    for kind in Kind::ALL {
        if !kind.available() {
            continue;
        }
        let running = proxy(kind, app.port, upstream).await;
        let client = running.client();
        let (selector, credential) = app
            .create(
                json!({"tokenName": "short-lived", "type": "client", "environment": "production"}),
            )
            .await;
        assert_eq!(through(&client, Some(&credential)).await.status, 200);
        let path = format!("/api/admin/api-tokens/{selector}");
        assert_eq!(app.put_expiry(&path, ADMIN, PAST).await.status, 200);
        let response = through(&client, Some(&credential)).await;
        assert_eq!(response.status, 401, "{kind:?}: still valid after expiry");
    }
}

#[actix_web::test]
async fn a_token_deleted_on_one_instance_is_refused_through_a_proxy_in_front_of_another() {
    let database = actix_web::rt::task::spawn_blocking(TestDatabase::create)
        .await
        .unwrap();
    let Some(database) = database.map(Arc::new) else {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "CI runs this test on PostgreSQL: set TEST_POSTGRES_URL"
        );
        eprintln!("NOTE: skipping the two-instance proxy test: TEST_POSTGRES_URL is not set");
        return;
    };
    let mut a = spawn_on(
        Some(Arc::clone(&database)),
        &[("INIT_ADMIN_API_TOKENS", ADMIN)],
        |_| {},
    )
    .await;
    a.admin = ADMIN.to_string();
    let b = spawn_on(Some(Arc::clone(&database)), &[], |_| {}).await;
    let upstream = start_upstream();
    for kind in Kind::ALL {
        if !kind.available() {
            continue;
        }
        let running = proxy(kind, b.port, upstream).await;
        let client = running.client();
        let (selector, credential) = a
            .create(json!({"tokenName": "edge", "type": "backend", "environment": "production"}))
            .await;
        // Created on A: valid through B once B has heard of it.
        let deadline = Instant::now() + Duration::from_secs(10);
        while through(&client, Some(&credential)).await.status != 200 {
            assert!(Instant::now() < deadline, "{kind:?}: never valid on B");
            actix_web::rt::time::sleep(Duration::from_millis(5)).await;
        }
        let deleted = a
            .delete(&format!("/api/admin/api-tokens/{selector}"), ADMIN)
            .await;
        assert_eq!(deleted.status, 200);
        let started = Instant::now();
        while through(&client, Some(&credential)).await.status != 401 {
            assert!(
                started.elapsed() < Duration::from_secs(1),
                "{kind:?}: deleted on A, still let through B after {:?}",
                started.elapsed()
            );
            actix_web::rt::time::sleep(Duration::from_millis(5)).await;
        }
        eprintln!(
            "{kind:?}: deleted on A → refused through B after {:?}",
            started.elapsed()
        );
    }
}

#[test]
fn the_readme_shows_the_tested_configurations_verbatim() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let readme = std::fs::read_to_string(root.join("README.md")).unwrap();
    for kind in Kind::ALL {
        let example =
            std::fs::read_to_string(root.join("docs/examples").join(kind.example())).unwrap();
        assert!(
            readme.contains(&example),
            "README.md must show docs/examples/{} as it is",
            kind.example()
        );
    }
}
