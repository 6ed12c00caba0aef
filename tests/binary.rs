//! The real `keywarden` binary as an operator runs it: no configuration, a
//! fresh working directory, the first admin credential on standard output
//! exactly once, SQLite under ./data, and a clean exit on SIGTERM.

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

fn start(dir: &Path) -> Running {
    let mut child = Command::new(env!("CARGO_BIN_EXE_keywarden"))
        .current_dir(dir)
        .env_clear()
        .env("HTTP_HOST", "127.0.0.1")
        .env("HTTP_PORT", "0")
        .env("RUST_LOG", "info")
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
