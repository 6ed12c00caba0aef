//! The real `keywarden` binary as an operator runs it: no configuration, a
//! fresh working directory, the first admin credential on standard output
//! exactly once, SQLite under ./data, a clean exit on SIGTERM, and the
//! command-line tools working on the same database as a running server.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

struct Running {
    child: Child,
    port: u16,
    stdout: mpsc::Receiver<String>,
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
    let mut child = keywarden(dir)
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
    let port = loop {
        let line = received
            .recv_timeout(Duration::from_secs(30))
            .expect("keywarden logs that it listens");
        if let Some(rest) = line.split("keywarden is listening").nth(1) {
            let port = rest
                .split("port=")
                .nth(1)
                .unwrap()
                .split_whitespace()
                .next()
                .unwrap();
            break port.parse().unwrap();
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
        stdout,
    }
}

impl Running {
    fn get(&self, path: &str, credential: &str) -> u16 {
        let mut stream = TcpStream::connect(("127.0.0.1", self.port)).unwrap();
        write!(
            stream,
            "GET {path} HTTP/1.1\r\nHost: x\r\nAuthorization: {credential}\r\nConnection: close\r\n\r\n"
        )
        .unwrap();
        let mut response = String::new();
        stream.read_to_string(&mut response).unwrap();
        response.split_whitespace().nth(1).unwrap().parse().unwrap()
    }

    /// SIGTERM, then the exit status and the whole standard output.
    fn stop(mut self) -> (bool, String) {
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
        (exit.success(), stdout)
    }
}

#[test]
fn first_start_prints_one_admin_credential_once_and_later_starts_print_none() {
    let dir = tempfile::tempdir().unwrap();

    let first = start(dir.path());
    assert_eq!(first.get("/health", ""), 200);
    let (clean, stdout) = first.stop();
    assert!(clean, "exit status 0 after SIGTERM");
    let mut lines = stdout.lines();
    let note = lines.next().expect("a note on standard output");
    assert!(note.contains("ONLY THIS ONCE"), "{note}");
    let credential = lines
        .next()
        .expect("the credential on its own line")
        .to_string();
    assert!(credential.starts_with("*:*.v2_"), "{credential}");
    assert!(
        dir.path().join("data/keywarden.db").exists(),
        "the default database file"
    );

    let second = start(dir.path());
    assert_eq!(second.get("/api/admin/api-tokens", &credential), 200);
    assert_eq!(second.get("/api/admin/api-tokens", "*:*.guess"), 401);
    let (clean, stdout) = second.stop();
    assert!(clean);
    assert!(
        !stdout.contains("*:*."),
        "no credential is printed again: {stdout}"
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
    let mut stream = TcpStream::connect(("127.0.0.1", server.port)).unwrap();
    write!(
        stream,
        "GET /api/admin/events HTTP/1.1\r\nHost: x\r\nAuthorization: {auditor}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    let body = response.split("\r\n\r\n").nth(1).unwrap();
    let events: serde_json::Value = serde_json::from_str(body).unwrap();
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
    assert!(stdout.contains("port: 0"), "{stdout}");
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
