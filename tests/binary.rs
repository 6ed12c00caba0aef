//! The real `keywarden` binary as an operator runs it: no configuration, a
//! fresh working directory, the first admin credential on standard output
//! exactly once, SQLite under ./data, a clean exit on SIGTERM, and the
//! command-line tools working on the same database as a running server.
#![expect(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test helpers fail the test loudly"
)]

use std::io::{BufRead, BufReader, Read};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use keywarden_test_support::http::{self, Response};

struct Running {
    child: Child,
    port: u16,
    /// The start-up log line saying where it listens.
    listening: String,
    stdout: mpsc::Receiver<String>,
    stderr: mpsc::Receiver<String>,
}

/// The binary in `dir` with nothing configured but a loopback port.
fn keywarden(dir: &Path) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_keywarden"));
    command
        .current_dir(dir)
        .env_clear()
        .env("HTTP_HOST", "127.0.0.1")
        .env("HTTP_PORT", "0")
        .env("RUST_LOG", "info");
    command
}

/// Runs a one-off command; returns (success, stdout, stderr).
fn run(dir: &Path, args: &[&str]) -> (bool, String, String) {
    let output = keywarden(dir).args(args).output().unwrap();
    (
        output.status.success(),
        String::from_utf8(output.stdout).unwrap(),
        String::from_utf8(output.stderr).unwrap(),
    )
}

fn start(dir: &Path) -> Running {
    start_with(dir, &[])
}

fn start_with(dir: &Path, vars: &[(&str, &str)]) -> Running {
    let mut child = keywarden(dir)
        .envs(vars.iter().copied())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let (lines, received) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let _ = lines.send(line);
        }
    });
    let (port, listening) = loop {
        let line = received
            .recv_timeout(Duration::from_secs(30))
            .expect("keywarden logs that it listens");
        // `port=4300` in text logs, `"port":4300` in JSON ones.
        if let Some(rest) = line.split("keywarden is listening").nth(1) {
            let port: String = rest
                .split("port")
                .nth(1)
                .unwrap()
                .chars()
                .skip_while(|c| !c.is_ascii_digit())
                .take_while(char::is_ascii_digit)
                .collect();
            break (port.parse().unwrap(), line);
        }
    };
    // Standard output is read to its end in the background; it ends when the
    // process exits, and `stop` collects it then.
    let mut pipe = child.stdout.take().unwrap();
    let (text, stdout) = mpsc::channel();
    std::thread::spawn(move || {
        let mut buffer = String::new();
        let _ = pipe.read_to_string(&mut buffer);
        let _ = text.send(buffer);
    });
    Running {
        child,
        port,
        listening,
        stdout,
        stderr: received,
    }
}

/// A test that fails half-way must not leave its server running.
impl Drop for Running {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

impl Running {
    /// Reads the log until a line contains `needle`; returns that line.
    fn wait_for_log(&self, needle: &str) -> String {
        loop {
            let line = self
                .stderr
                .recv_timeout(Duration::from_secs(30))
                .unwrap_or_else(|_| panic!("no log line with {needle:?}"));
            if line.contains(needle) {
                return line;
            }
        }
    }

    fn get(&self, path: &str, credential: &str) -> u16 {
        self.request("GET", path, credential, None).status
    }

    /// Until `/ready` answers 200: the view has loaded and said so in the log.
    fn wait_until_ready(&self) {
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        while self.get("/ready", "") != 200 {
            assert!(std::time::Instant::now() < deadline, "never ready");
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// One request with a JSON body, if any.
    fn request(&self, method: &str, path: &str, credential: &str, body: Option<&str>) -> Response {
        http::send(self.port, method, path, &headers(credential), body)
    }

    /// SIGTERM, then the exit status and the whole standard output.
    fn stop(self) -> (bool, String) {
        let (clean, stdout, _) = self.stop_with_logs();
        (clean, stdout)
    }

    /// SIGTERM, then the exit status, standard output, and the log lines
    /// written after start-up.
    fn stop_with_logs(mut self) -> (bool, String, Vec<String>) {
        let status = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
        let exit = self.child.wait().unwrap();
        let stdout = self
            .stdout
            .recv_timeout(Duration::from_secs(10))
            .expect("standard output closes at exit");
        let logs =
            std::iter::from_fn(|| self.stderr.recv_timeout(Duration::from_secs(10)).ok()).collect();
        (exit.success(), stdout, logs)
    }
}

/// The mode bits of a file.
fn mode(path: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

#[test]
fn first_start_writes_one_admin_credential_to_a_private_file_and_later_starts_none() {
    let dir = tempfile::tempdir().unwrap();

    let first = start(dir.path());
    let file = dir.path().join("data/initial-admin-token");
    let note = first.wait_for_log("initial-admin-token");
    assert!(
        note.contains(file.to_str().unwrap()),
        "the log names the file: {note}"
    );
    assert_eq!(first.get("/health", ""), 200);
    let (clean, stdout, logs) = first.stop_with_logs();
    assert!(clean, "exit status 0 after SIGTERM");
    assert!(
        stdout.is_empty(),
        "standard output is no terminal: nothing is printed: {stdout}"
    );
    assert_eq!(mode(&file), 0o600);
    let contents = std::fs::read_to_string(&file).unwrap();
    let credential = contents.lines().next().unwrap().to_string();
    assert!(credential.starts_with("*:*.v2_"), "{credential}");
    assert!(
        !note.contains(&credential[4..])
            && logs.iter().all(|line| !line.contains(&credential[4..])),
        "{logs:?}"
    );
    assert!(
        dir.path().join("data/keywarden.db").exists(),
        "the default database file"
    );
    std::fs::remove_file(&file).unwrap();

    let second = start(dir.path());
    assert_eq!(second.get("/api/admin/api-tokens", &credential), 200);
    assert_eq!(second.get("/api/admin/api-tokens", "*:*.guess"), 401);
    let (clean, stdout) = second.stop();
    assert!(clean);
    assert!(
        !stdout.contains("*:*.") && !file.exists(),
        "no credential is shown again: {stdout}"
    );
}

fn wait_for(running: &Running, credential: &str, status: u16) -> Duration {
    let start = std::time::Instant::now();
    while running.get("/api/admin/api-tokens", credential) != status {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "never answered {status}"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    start.elapsed()
}

#[test]
fn the_command_line_manages_tokens_of_a_running_server() {
    let dir = tempfile::tempdir().unwrap();
    let (ok, stdout, _) = run(dir.path(), &["migrate"]);
    assert!(ok, "{stdout}");

    // The first admin token, made without HTTP: the last line is the credential.
    let (ok, stdout, stderr) = run(
        dir.path(),
        &["tokens", "create", "--type", "admin", "--name", "ops"],
    );
    assert!(ok, "{stderr}");
    let admin = stdout.lines().last().unwrap().to_string();
    assert!(admin.starts_with("*:*.v2_"), "{stdout}");

    let server = start(dir.path());
    assert_eq!(
        server.get("/api/admin/api-tokens", &admin),
        200,
        "the CLI's admin token works"
    );

    // A token made while the server runs is usable there at once.
    let (ok, stdout, _) = run(
        dir.path(),
        &[
            "tokens",
            "create",
            "--type",
            "backend",
            "--name",
            "sdk",
            "--projects",
            "default",
            "--expires-in",
            "30d",
        ],
    );
    assert!(ok);
    let backend = stdout.lines().last().unwrap().to_string();
    assert!(backend.starts_with("default:development.v2_"), "{stdout}");
    let seen = wait_for(&server, &backend, 403);
    assert!(
        seen < Duration::from_secs(1),
        "created by the CLI, valid after {seen:?}"
    );

    let (ok, stdout, _) = run(dir.path(), &["tokens", "list"]);
    assert!(ok);
    assert!(stdout.starts_with("SELECTOR"), "{stdout}");
    assert!(
        stdout.contains(" sdk ") && stdout.contains(" ops "),
        "{stdout}"
    );
    assert!(
        !stdout.contains(&backend[backend.len() - 43..]),
        "no secret is listed"
    );

    // Expiring and deleting from the command line reach the running server within a second.
    let (ok, _, _) = run(dir.path(), &["tokens", "expire", &backend]);
    assert!(ok);
    let expired = wait_for(&server, &backend, 401);
    assert!(
        expired < Duration::from_secs(1),
        "expired by the CLI, rejected after {expired:?}"
    );
    let (ok, _, _) = run(dir.path(), &["tokens", "delete", &admin]);
    assert!(ok);
    let deleted = wait_for(&server, &admin, 401);
    assert!(
        deleted < Duration::from_secs(1),
        "deleted by the CLI, rejected after {deleted:?}"
    );

    let (ok, _, stderr) = run(dir.path(), &["tokens", "delete", &admin]);
    assert!(!ok, "deleting nothing is reported");
    assert!(stderr.contains("no token matches"), "{stderr}");
    let (ok, _, stderr) = run(
        dir.path(),
        &["tokens", "create", "--type", "root", "--name", "x"],
    );
    assert!(!ok);
    assert!(stderr.contains("root"), "{stderr}");
    let (clean, stdout) = server.stop();
    assert!(clean);
    assert!(
        !stdout.contains("*:*."),
        "a database with tokens bootstraps nothing: {stdout}"
    );

    // Every change above is in the audit trail, by `cli`.
    let (ok, stdout, _) = run(
        dir.path(),
        &["tokens", "create", "--type", "admin", "--name", "auditor"],
    );
    assert!(ok);
    let auditor = stdout.lines().last().unwrap().to_string();
    let server = start(dir.path());
    let events = server
        .request("GET", "/api/admin/events", &auditor, None)
        .json();
    let by: Vec<_> = events["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["type"].as_str().unwrap().to_string(),
                e["createdBy"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert_eq!(by.len(), 5, "{by:?}");
    assert!(by.iter().all(|(_, actor)| actor == "cli"), "{by:?}");
    server.stop();
}

#[test]
fn config_check_validates_and_redacts() {
    let dir = tempfile::tempdir().unwrap();
    let output = keywarden(dir.path())
        .args(["config", "check"])
        .env("INIT_ADMIN_API_TOKENS", "*:*.very-secret-bootstrap")
        .env("DATABASE_URL", "postgres://kw:hunter2@db.example/kw")
        .output()
        .unwrap();
    let stdout = String::from_utf8(output.stdout).unwrap();
    assert!(output.status.success(), "{stdout}");
    assert!(stdout.contains("configuration is valid"));
    assert!(stdout.contains("port = 0  # env HTTP_PORT"), "{stdout}");
    assert!(
        !stdout.contains("very-secret-bootstrap") && !stdout.contains("hunter2"),
        "{stdout}"
    );

    let output = keywarden(dir.path())
        .args(["config", "check"])
        .env("INIT_ADMIN_API_TOKENS", "*:development.admin-with-env")
        .output()
        .unwrap();
    assert!(!output.status.success());
    let output = keywarden(dir.path())
        .args(["config", "check"])
        .env("HTTP_PORT", "http")
        .output()
        .unwrap();
    assert!(!output.status.success());
    assert!(String::from_utf8(output.stderr)
        .unwrap()
        .contains("invalid configuration"));
}

#[test]
fn help_lists_every_command() {
    let dir = tempfile::tempdir().unwrap();
    let (ok, stdout, _) = run(dir.path(), &["--help"]);
    assert!(ok);
    for command in ["serve", "migrate", "tokens", "config"] {
        assert!(stdout.contains(command), "{command}: {stdout}");
    }
    let (ok, stdout, _) = run(dir.path(), &["tokens", "--help"]);
    assert!(ok);
    for command in ["create", "list", "expire", "delete"] {
        assert!(stdout.contains(command), "{command}: {stdout}");
    }
}

#[test]
fn logs_have_one_line_per_request_with_an_id_and_never_a_credential() {
    for format in ["text", "json"] {
        let dir = tempfile::tempdir().unwrap();
        let server = start_with(dir.path(), &[("KEYWARDEN__LOG__FORMAT", format)]);
        let (ok, stdout, _) = run(
            dir.path(),
            &["tokens", "create", "--type", "admin", "--name", "ops"],
        );
        assert!(ok);
        let admin = stdout.lines().last().unwrap().to_string();
        std::thread::sleep(Duration::from_millis(400)); // the change feed's poll
        let secret = &admin[admin.len() - 43..];
        let response = server.request(
            "PUT",
            &format!("/api/admin/api-tokens/{admin}"),
            &admin,
            Some(r#"{"expiresAt":"2040-01-01T00:00:00Z"}"#),
        );
        assert_eq!(response.status, 200, "{response:?}");
        assert!(
            response.headers.contains_key("x-request-id"),
            "{response:?}"
        );
        assert_eq!(
            server.get("/api/admin/api-tokens", "*:*.wrong-guess-secret"),
            401
        );
        let (clean, _, logs) = server.stop_with_logs();
        assert!(clean);
        assert!(
            logs.iter().all(|line| !line.contains(secret)),
            "a credential was logged"
        );
        assert!(
            logs.iter().all(|line| !line.contains("wrong-guess-secret")),
            "a guess was logged"
        );
        let requests: Vec<&String> = logs
            .iter()
            .filter(|line| line.contains("/api/admin/api-tokens/{token}"))
            .collect();
        assert_eq!(requests.len(), 1, "{logs:#?}");
        assert!(requests[0].contains("request_id"), "{}", requests[0]);
        if format == "json" {
            for line in &logs {
                let parsed: serde_json::Value =
                    serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"));
                assert!(parsed["level"].is_string(), "{line}");
            }
            let put: serde_json::Value = serde_json::from_str(requests[0]).unwrap();
            assert_eq!(put["status"], 200);
            assert_eq!(put["method"], "PUT");
        }
    }
}

/// The most events one `GET /api/admin/events` answers.
const EVENTS_PAGE: usize = 1000;

/// Sends one PUT of `expires` to `token`; `Some(true)` when answered 200,
/// `Some(false)` for another answer, `None` when no answer came.
fn put_expiry(port: u16, token: &str, admin: &str, expires: &str) -> Option<bool> {
    let body = format!(r#"{{"expiresAt":"{expires}"}}"#);
    let request = http::request_text(
        "PUT",
        &format!("/api/admin/api-tokens/{token}"),
        &headers(admin),
        Some(&body),
    );
    let response = http::try_exchange(port, request.as_bytes())?;
    assert!(
        response.status < 500,
        "a server error during shutdown: {response:?}"
    );
    Some(response.status == 200)
}

/// An admin request's headers.
fn headers(credential: &str) -> [(&str, &str); 2] {
    [
        ("Authorization", credential),
        ("Content-Type", "application/json"),
    ]
}

#[test]
fn sigterm_under_load_loses_no_acknowledged_request() {
    let dir = tempfile::tempdir().unwrap();
    let create = |args: &[&str]| {
        let (ok, stdout, stderr) = run(dir.path(), args);
        assert!(ok, "{stderr}");
        stdout.lines().last().unwrap().to_string()
    };
    let admin = create_admin(dir.path(), "ops");
    // One token per client: each client's writes are sequential, so the token's
    // final expiry must be its last acknowledged one, or the one after it that
    // was in flight when the server stopped.
    let targets: Vec<String> = (0..4)
        .map(|i| {
            create(&[
                "tokens",
                "create",
                "--type",
                "backend",
                "--name",
                &format!("t{i}"),
            ])
        })
        .collect();
    let server = start(dir.path());
    let port = server.port;
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    // Each PUT, answered or not, records at most one event; capping the PUTs at
    // the events endpoint's largest page lets one page hold the whole trail.
    let budget = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(EVENTS_PAGE));
    let clients: Vec<_> = targets
        .iter()
        .cloned()
        .map(|target| {
            let admin = admin.clone();
            let stop = std::sync::Arc::clone(&stop);
            let budget = std::sync::Arc::clone(&budget);
            std::thread::spawn(move || {
                let mut acknowledged = Vec::new();
                let mut in_flight = None;
                for n in 0..3000u32 {
                    let spent = budget.fetch_update(
                        std::sync::atomic::Ordering::Relaxed,
                        std::sync::atomic::Ordering::Relaxed,
                        |left| left.checked_sub(1),
                    );
                    if stop.load(std::sync::atomic::Ordering::Relaxed) || spent.is_err() {
                        break;
                    }
                    let expires = format!(
                        "2040-01-01T{:02}:{:02}:{:02}.000Z",
                        n / 3600,
                        n / 60 % 60,
                        n % 60
                    );
                    match put_expiry(port, &target, &admin, &expires) {
                        Some(true) => acknowledged.push(expires),
                        Some(false) => {}
                        None => {
                            in_flight = Some(expires);
                            break;
                        }
                    }
                }
                (target, acknowledged, in_flight)
            })
        })
        .collect();
    std::thread::sleep(Duration::from_millis(300));
    let (clean, _) = server.stop();
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let outcomes: Vec<_> = clients.into_iter().map(|c| c.join().unwrap()).collect();
    assert!(clean, "exit status 0 after SIGTERM under load");

    let server = start(dir.path());
    let tokens = server
        .request("GET", "/api/admin/api-tokens", &admin, None)
        .json();
    for (target, acknowledged, in_flight) in &outcomes {
        assert!(!acknowledged.is_empty(), "the load ran");
        let token = tokens["tokens"]
            .as_array()
            .unwrap()
            .iter()
            .find(|t| target.contains(t["secret"].as_str().unwrap()))
            .unwrap();
        let stored = token["expiresAt"].as_str().unwrap().to_string();
        let last = acknowledged.last().unwrap();
        assert!(
            &stored == last || Some(&stored) == in_flight.as_ref(),
            "acknowledged {last} but stored {stored}"
        );
    }
    // And the audit trail holds exactly the acknowledged changes, in order,
    // plus at most the one each client had in flight.
    let events = server
        .request(
            "GET",
            &format!("/api/admin/events?type=api-token-updated&limit={EVENTS_PAGE}"),
            &admin,
            None,
        )
        .json();
    let events = events["events"].as_array().unwrap();
    for (target, acknowledged, in_flight) in &outcomes {
        // Newest first on the wire; oldest first here, as the client sent them.
        let recorded: Vec<&str> = events
            .iter()
            .rev()
            .filter(|e| target.contains(e["data"]["secret"].as_str().unwrap()))
            .map(|e| e["data"]["expiresAt"].as_str().unwrap())
            .collect();
        let (committed, unanswered) = recorded.split_at(acknowledged.len().min(recorded.len()));
        assert_eq!(
            committed, acknowledged,
            "every acknowledged change is recorded, in order"
        );
        assert!(
            unanswered.is_empty() || unanswered == [in_flight.as_deref().unwrap_or("none")],
            "only the change in flight may be recorded besides: {unanswered:?}"
        );
    }
    server.stop();
}

#[test]
fn an_online_backup_restores_to_a_working_database() {
    let dir = tempfile::tempdir().unwrap();
    let admin = create_admin(dir.path(), "ops");
    let server = start(dir.path());
    let backup = dir.path().join("backup.db");
    let (ok, stdout, stderr) = run(dir.path(), &["backup", backup.to_str().unwrap()]);
    assert!(ok, "{stderr}");
    assert!(stdout.contains("wrote a copy"), "{stdout}");
    let (ok, _, stderr) = run(dir.path(), &["backup", backup.to_str().unwrap()]);
    assert!(!ok, "an existing file is never overwritten");
    assert!(!stderr.is_empty());
    server.stop();

    let restored = tempfile::tempdir().unwrap();
    std::fs::create_dir(restored.path().join("data")).unwrap();
    std::fs::copy(&backup, restored.path().join("data/keywarden.db")).unwrap();
    let server = start(restored.path());
    assert_eq!(server.get("/api/admin/api-tokens", &admin), 200);
    let (_, stdout) = server.stop();
    assert!(
        stdout.is_empty(),
        "a restored database bootstraps nothing: {stdout}"
    );
}

#[test]
fn a_start_that_cannot_listen_creates_no_credential_it_cannot_show() {
    let dir = tempfile::tempdir().unwrap();
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port().to_string();
    let output = keywarden(dir.path())
        .env("HTTP_PORT", &port)
        .output()
        .unwrap();
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("cannot listen"));
    assert!(
        !dir.path().join("data/keywarden.db").exists(),
        "no database, so no token, was created"
    );
    drop(taken);
    let server = start(dir.path());
    server.wait_for_log("initial-admin-token");
    assert_eq!(server.get("/health", ""), 200);
    server.stop();
    let shown = std::fs::read_to_string(dir.path().join("data/initial-admin-token")).unwrap();
    assert!(
        shown.starts_with("*:*.v2_"),
        "the next start still creates and shows one"
    );
}

#[test]
fn a_misspelt_setting_stops_start_up_with_one_line_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    for args in [&["config", "check"][..], &[]] {
        let output = keywarden(dir.path())
            .env("KEYWARDEN__SERVER__PROT", "8080")
            .args(args)
            .output()
            .unwrap();
        assert!(!output.status.success(), "{args:?} refuses the setting");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(stderr.lines().count(), 1, "{args:?}: {stderr}");
        assert!(stderr.contains("`prot`"), "{args:?}: {stderr}");
    }
    assert!(
        !dir.path().join("data").exists(),
        "nothing was created before the configuration was read"
    );
}

/// Creates an admin token named `name` with the command line; returns its
/// credential.
fn create_admin(dir: &Path, name: &str) -> String {
    let (ok, stdout, stderr) = run(
        dir,
        &[
            "tokens",
            "create",
            "--type",
            "admin",
            "--name",
            name,
            "--create-database",
        ],
    );
    assert!(ok, "{stderr}");
    stdout.lines().last().unwrap().to_string()
}

/// The SQLite file's content and modification time, and what its
/// write-ahead log holds (none when it is gone): a write changes the log, or
/// the file if checkpointed.
fn database_state(dir: &Path) -> (Vec<u8>, std::time::SystemTime, Vec<u8>) {
    let data = dir.join("data");
    let file = data.join("keywarden.db");
    (
        std::fs::read(&file).unwrap(),
        std::fs::metadata(&file).unwrap().modified().unwrap(),
        std::fs::read(data.join("keywarden.db-wal")).unwrap_or_default(),
    )
}

#[test]
fn listing_tokens_writes_nothing_to_the_database() {
    let dir = tempfile::tempdir().unwrap();
    create_admin(dir.path(), "ops");
    // Closing the database checkpoints what the create left in the log.
    let (ok, _, stderr) = run(dir.path(), &["migrate"]);
    assert!(ok, "{stderr}");
    let before = database_state(dir.path());
    // A project declared since then is not added by a command that creates
    // nothing.
    std::fs::write(
        dir.path().join("later.toml"),
        "[[projects]]\nid = \"default\"\nname = \"Default\"\n\n\
         [[projects]]\nid = \"later\"\nname = \"Later\"\n",
    )
    .unwrap();
    let (ok, stdout, stderr) = run(dir.path(), &["tokens", "list", "--config", "later.toml"]);
    assert!(ok, "{stderr}");
    assert!(stdout.contains(" ops "), "{stdout}");
    assert!(
        database_state(dir.path()) == before,
        "tokens list changed the database or its write-ahead log"
    );
}

#[test]
fn stopping_the_server_writes_the_last_seen_times() {
    let dir = tempfile::tempdir().unwrap();
    let admin = create_admin(dir.path(), "ops");
    // No periodic flush comes during the test: only the one at shutdown can
    // write the time.
    let server = start_with(
        dir.path(),
        &[("KEYWARDEN__TOKENS__SEEN_FLUSH_INTERVAL_MS", "3600000")],
    );
    assert_eq!(server.get("/api/admin/api-tokens", &admin), 200);
    let (clean, _) = server.stop();
    assert!(clean);

    let (ok, stdout, _) = run(dir.path(), &["tokens", "list"]);
    assert!(ok);
    let row = stdout
        .lines()
        .find(|line| line.contains(" ops "))
        .unwrap_or_else(|| panic!("{stdout}"));
    let seen = row.split_whitespace().last().unwrap();
    assert_ne!(seen, "-", "last seen was never written: {stdout}");
}

#[test]
fn commands_name_their_database_and_never_create_one_by_mistake() {
    let dir = tempfile::tempdir().unwrap();
    let database = dir.path().join("data/keywarden.db");
    for args in [
        &["backup", "b.db"][..],
        &["tokens", "list"],
        &["tokens", "delete", "AAAAAAAAAAAAAAAAAAAAAA"],
        &["tokens", "create", "--type", "admin", "--name", "ops"],
    ] {
        let (ok, _, stderr) = run(dir.path(), args);
        assert!(!ok, "{args:?} works on a database that does not exist");
        assert!(
            stderr.contains(database.to_str().unwrap())
                && stderr.contains("DATABASE_URL")
                && stderr.contains("--create-database"),
            "{args:?}: {stderr}"
        );
        assert!(!dir.path().join("data").exists(), "{args:?} created it");
        assert!(!dir.path().join("b.db").exists());
    }
    let (ok, _, stderr) = run(dir.path(), &["migrate"]);
    assert!(ok, "{stderr}");
    assert!(
        stderr.contains(&format!("database {}", database.display())),
        "{stderr}"
    );
    let (ok, _, stderr) = run(dir.path(), &["tokens", "list"]);
    assert!(ok, "{stderr}");
    assert!(stderr.contains(database.to_str().unwrap()), "{stderr}");

    let output = keywarden(dir.path())
        .args(["tokens", "list"])
        .env("DATABASE_URL", "postgres://kw:hunter2@127.0.0.1:1/kw")
        .env("KEYWARDEN__DATABASE__ACQUIRE_TIMEOUT_MS", "100")
        .output()
        .unwrap();
    let stderr = String::from_utf8(output.stderr).unwrap();
    assert!(
        stderr.contains("postgres://kw:<redacted>@127.0.0.1:1/kw") && !stderr.contains("hunter2"),
        "{stderr}"
    );
}

#[test]
fn start_up_says_where_it_is_and_how_to_recover_without_an_admin() {
    let dir = tempfile::tempdir().unwrap();
    let admin = create_admin(dir.path(), "ops");
    let server = start(dir.path());
    let database = dir.path().join("data/keywarden.db");
    for part in [
        format!("127.0.0.1:{}", server.port),
        database.display().to_string(),
    ] {
        assert!(
            server.listening.contains(&part),
            "{part}: {}",
            server.listening
        );
    }
    assert_eq!(server.get("/health", ""), 200);
    server.wait_until_ready();
    let (_, _, logs) = server.stop_with_logs();
    assert!(
        logs.iter()
            .any(|line| line.contains("credential view loaded") && line.contains("tokens=1")),
        "{logs:?}"
    );
    assert!(
        !logs.iter().any(|line| line.contains("tokens create")),
        "{logs:?}"
    );

    let (ok, _, stderr) = run(dir.path(), &["tokens", "expire", &admin]);
    assert!(ok, "{stderr}");
    let server = start(dir.path());
    assert_eq!(server.get("/health", ""), 200);
    server.wait_until_ready();
    let (_, _, logs) = server.stop_with_logs();
    assert!(
        logs.iter().any(|line| line.contains("WARN")
            && line.contains("keywarden tokens create --type admin --name")),
        "{logs:?}"
    );
}

#[test]
fn files_are_private_and_a_database_others_may_write_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path());
    assert_eq!(server.get("/health", ""), 200);
    let data = dir.path().join("data");
    assert_eq!(mode(&data), 0o700);
    for file in ["keywarden.db", "keywarden.db-wal", "keywarden.db-shm"] {
        assert_eq!(mode(&data.join(file)), 0o600, "{file}");
    }
    let (ok, _, stderr) = run(dir.path(), &["backup", "copy.db"]);
    assert!(ok, "{stderr}");
    assert_eq!(mode(&dir.path().join("copy.db")), 0o600);
    server.stop();

    use std::os::unix::fs::PermissionsExt;
    let database = data.join("keywarden.db");
    let set = |mode| std::fs::set_permissions(&database, std::fs::Permissions::from_mode(mode));
    set(0o644).unwrap();
    let (ok, _, stderr) = run(dir.path(), &["tokens", "list"]);
    assert!(ok, "{stderr}");
    assert!(stderr.contains("readable by every user"), "{stderr}");
    set(0o666).unwrap();
    let output = keywarden(dir.path()).output().unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8(output.stderr).unwrap();
    assert!(
        stderr.contains("writable by every user") && stderr.contains(database.to_str().unwrap()),
        "{stderr}"
    );
}

#[test]
fn guessable_init_tokens_stop_the_start_unless_allowed() {
    let dir = tempfile::tempdir().unwrap();
    let weak = (
        "INIT_ADMIN_API_TOKENS",
        "*:*.unleash-insecure-admin-api-token",
    );
    let output = keywarden(dir.path()).env(weak.0, weak.1).output().unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8(output.stderr).unwrap();
    assert!(
        stderr.contains("INIT_ADMIN_API_TOKENS") && !stderr.contains("unleash-insecure"),
        "{stderr}"
    );
    assert!(
        !dir.path().join("data").exists(),
        "refused before opening anything"
    );
    let (ok, _, stderr) = run(dir.path(), &["config", "check"]);
    assert!(ok, "{stderr}");

    let server = start_with(
        dir.path(),
        &[weak, ("KEYWARDEN__BOOTSTRAP__ALLOW_WEAK_TOKENS", "true")],
    );
    assert_eq!(server.get("/api/admin/api-tokens", weak.1), 200);
    server.stop();
    let output = keywarden(dir.path())
        .env(weak.0, weak.1)
        .env("KEYWARDEN__BOOTSTRAP__ALLOW_WEAK_TOKENS", "true")
        .args(["config", "check"])
        .output()
        .unwrap();
    let stderr = String::from_utf8(output.stderr).unwrap();
    assert!(output.status.success(), "{stderr}");
    assert!(
        stderr.contains("WARN") && stderr.contains("INIT_ADMIN_API_TOKENS"),
        "{stderr}"
    );
}

#[test]
fn the_command_line_prefers_selectors_and_warns_about_credentials() {
    let dir = tempfile::tempdir().unwrap();
    let admin = create_admin(dir.path(), "ops");
    let (_, stdout, _) = run(dir.path(), &["tokens", "list"]);
    let selector = stdout
        .lines()
        .nth(1)
        .unwrap()
        .split_whitespace()
        .next()
        .unwrap()
        .to_string();
    let (ok, _, stderr) = run(
        dir.path(),
        &[
            "tokens",
            "expire",
            &selector,
            "--at",
            "2040-01-01T00:00:00Z",
        ],
    );
    assert!(ok, "{stderr}");
    assert!(!stderr.contains("warning"), "{stderr}");
    let (ok, _, stderr) = run(dir.path(), &["tokens", "delete", &admin]);
    assert!(ok, "{stderr}");
    assert!(
        stderr.contains("warning") && stderr.contains("selector") && !stderr.contains(&admin),
        "{stderr}"
    );
}

#[test]
fn a_request_body_that_stops_arriving_times_out() {
    let dir = tempfile::tempdir().unwrap();
    let admin = create_admin(dir.path(), "ops");
    let server = start_with(
        dir.path(),
        &[("KEYWARDEN__SERVER__CLIENT_REQUEST_TIMEOUT_MS", "300")],
    );
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", server.port)).unwrap();
    // A safety net only: the server's answer is the signal.
    stream
        .set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    use std::io::Write;
    write!(
        stream,
        "PUT /api/admin/api-tokens/AAAAAAAAAAAAAAAAAAAAAA HTTP/1.1\r\nHost: x\r\n\
         Authorization: {admin}\r\nContent-Type: application/json\r\n\
         Content-Length: 40\r\n\r\n{{\"expiresAt\""
    )
    .unwrap();
    let mut response = String::new();
    let _ = stream.read_to_string(&mut response);
    assert!(response.starts_with("HTTP/1.1 408"), "{response}");
    assert!(response.contains("RequestTimeoutError"), "{response}");
    server.stop();
}

#[test]
fn migrate_says_what_it_applied() {
    let dir = tempfile::tempdir().unwrap();
    let (ok, _, stderr) = run(dir.path(), &["migrate"]);
    assert!(ok, "{stderr}");
    assert!(
        stderr.contains("applied migration version=20261128000001"),
        "{stderr}"
    );
    let (ok, _, stderr) = run(dir.path(), &["migrate"]);
    assert!(ok, "{stderr}");
    assert!(
        stderr.contains("no migration was pending") && !stderr.contains("applied migration"),
        "{stderr}"
    );
}

#[test]
fn config_check_survives_a_reader_that_goes_away() {
    let dir = tempfile::tempdir().unwrap();
    let mut child = keywarden(dir.path())
        .args(["config", "check"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Closing our end before it writes: every write it makes meets a closed pipe.
    drop(child.stdout.take());
    let output = child.wait_with_output().unwrap();
    let stderr = String::from_utf8(output.stderr).unwrap();
    assert!(output.status.success(), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
}

#[test]
fn documented_counters_exist_at_zero_from_start_up() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path());
    let response = server.request("GET", "/internal-backstage/prometheus", "", None);
    assert_eq!(response.status, 200);
    let text = response.body;
    for series in [
        "keywarden_authentications_total{outcome=\"unknown\"} 0",
        "keywarden_authentications_total{outcome=\"wrong_type\"} 0",
        "keywarden_db_pool_timeouts_total 0",
        "keywarden_external_changes_total 0",
        "keywarden_seen_flushes_total{result=\"error\"} 0",
    ] {
        assert!(text.contains(series), "{series}: {text}");
    }
    server.stop();
}
