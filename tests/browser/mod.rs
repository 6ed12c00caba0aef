//! A real headless Chromium driven over WebDriver (Debian's `chromium` and
//! `chromium-driver`), for the console's end-to-end tests. Without the
//! browser the tests skip with a note, except under `CI=true`, where a
//! missing browser is a failure.

#![expect(clippy::expect_used, reason = "a test harness fails the test loudly")]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fantoccini::elements::Element;
use fantoccini::wd::WebDriverCompatibleCommand;
use fantoccini::{Client, ClientBuilder, Locator};
use hyper_util::client::legacy::connect::HttpConnector;
use serde_json::{json, Value};

const CHROMIUM: &str = "/usr/bin/chromium";
const CHROMEDRIVER: &str = "/usr/bin/chromedriver";
/// How long a page may take to reach a state the test waits for.
const PATIENCE: Duration = Duration::from_secs(15);

pub struct Browser {
    pub client: Client,
    base: String,
    driver: Child,
    driver_port: u16,
    session: String,
    _profile: tempfile::TempDir,
}

/// The WebDriver log endpoint ChromeDriver keeps (`goog:loggingPrefs`); it
/// returns, and forgets, what the browser logged since the last call.
#[derive(Debug)]
struct BrowserLog;

impl WebDriverCompatibleCommand for BrowserLog {
    fn endpoint(
        &self,
        base_url: &url::Url,
        session_id: Option<&str>,
    ) -> Result<url::Url, url::ParseError> {
        base_url.join(&format!(
            "session/{}/se/log",
            session_id.unwrap_or_default()
        ))
    }

    fn method_and_body(&self, _: &url::Url) -> (http::Method, Option<String>) {
        (
            http::Method::POST,
            Some(r#"{"type":"browser"}"#.to_string()),
        )
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .expect("a free port")
        .port()
}

/// Starts Chromium for the app at `port`, or `None` (with a printed note)
/// where no browser is installed and this is not CI.
pub async fn open(port: u16, timezone: &str) -> Option<Browser> {
    if !Path::new(CHROMIUM).exists() || !Path::new(CHROMEDRIVER).exists() {
        let note = format!(
            "{CHROMIUM} or {CHROMEDRIVER} is missing; install them with `apt-get update && \
             DEBIAN_FRONTEND=noninteractive apt-get install -y chromium chromium-driver`"
        );
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "CI=true, so the browser tests must run: {note}"
        );
        eprintln!("SKIPPED: the console's browser tests: {note}");
        return None;
    }
    let driver_port = free_port();
    // Chromium inherits the zone: the tests check local → UTC conversion.
    let mut driver = Command::new(CHROMEDRIVER)
        .arg(format!("--port={driver_port}"))
        .env("TZ", timezone)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("chromedriver starts");
    let stdout = driver.stdout.take().expect("chromedriver's stdout");
    // ChromeDriver says when it listens; nothing to poll for.
    let started = actix_web::rt::task::spawn_blocking(move || {
        let mut lines = BufReader::new(stdout).lines();
        let found = lines.any(|line| line.is_ok_and(|l| l.contains("started successfully")));
        // Keep draining, so the driver never blocks on a full pipe.
        std::thread::spawn(move || lines.for_each(drop));
        found
    })
    .await
    .expect("the reader thread");
    assert!(started, "chromedriver did not start");

    let profile = tempfile::tempdir().expect("a profile directory");
    let capabilities = json!({
        "browserName": "chrome",
        "goog:chromeOptions": {
            "binary": CHROMIUM,
            "args": [
                "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic",
                "--no-first-run", "--disable-background-networking",
                "--disable-component-update", "--disable-sync",
                "--disable-dev-shm-usage", "--window-size=1440,900",
                "--lang=en-US",
                format!("--user-data-dir={}", profile.path().display()),
            ],
        },
        "goog:loggingPrefs": { "browser": "ALL" },
    });
    let capabilities = match capabilities {
        Value::Object(map) => map,
        _ => unreachable!("a JSON object"),
    };
    let client = ClientBuilder::new(HttpConnector::new())
        .capabilities(capabilities)
        .connect(&format!("http://127.0.0.1:{driver_port}"))
        .await
        .expect("a WebDriver session");
    let session = client
        .session_id()
        .await
        .expect("the session id")
        .unwrap_or_default();
    Some(Browser {
        client,
        base: format!("http://127.0.0.1:{port}"),
        driver,
        driver_port,
        session,
        _profile: profile,
    })
}

impl Drop for Browser {
    /// Ends the session (Chromium quits with it) even when a test failed,
    /// then the driver.
    fn drop(&mut self) {
        if let Ok(mut stream) = TcpStream::connect(("127.0.0.1", self.driver_port)) {
            let request = format!(
                "DELETE /session/{} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n",
                self.session
            );
            let _ = stream.set_read_timeout(Some(Duration::from_secs(10)));
            if stream.write_all(request.as_bytes()).is_ok() {
                let _ = stream.read_to_end(&mut Vec::new());
            }
        }
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

impl Browser {
    pub fn origin(&self) -> &str {
        &self.base
    }

    pub async fn goto(&self, path: &str) {
        self.client
            .goto(&format!("{}{path}", self.base))
            .await
            .unwrap_or_else(|e| panic!("open {path}: {e}"));
    }

    /// The element `css` matches, once it exists.
    pub async fn find(&self, css: &str) -> Element {
        self.client
            .wait()
            .at_most(PATIENCE)
            .for_element(Locator::Css(css))
            .await
            .unwrap_or_else(|e| panic!("no element {css}: {e}"))
    }

    pub async fn click(&self, css: &str) {
        self.find(css)
            .await
            .click()
            .await
            .unwrap_or_else(|e| panic!("click {css}: {e}"));
    }

    /// Replaces the text of an input.
    pub async fn fill(&self, css: &str, text: &str) {
        let input = self.find(css).await;
        input
            .clear()
            .await
            .unwrap_or_else(|e| panic!("clear {css}: {e}"));
        input
            .send_keys(text)
            .await
            .unwrap_or_else(|e| panic!("type into {css}: {e}"));
    }

    pub async fn select(&self, css: &str, value: &str) {
        self.find(css)
            .await
            .select_by_value(value)
            .await
            .unwrap_or_else(|e| panic!("select {value} in {css}: {e}"));
    }

    pub async fn text(&self, css: &str) -> String {
        self.find(css)
            .await
            .text()
            .await
            .unwrap_or_else(|e| panic!("text of {css}: {e}"))
    }

    /// A property (`value`, `disabled`…) of the element.
    pub async fn prop(&self, css: &str, name: &str) -> Option<String> {
        self.find(css)
            .await
            .prop(name)
            .await
            .unwrap_or_else(|e| panic!("{name} of {css}: {e}"))
    }

    /// Runs `script` (a function body; `arguments` holds `args`).
    pub async fn js(&self, script: &str, args: Vec<Value>) -> Value {
        self.client
            .execute(script, args)
            .await
            .unwrap_or_else(|e| panic!("script failed: {e}\n{script}"))
    }

    /// Waits until `expression` is truthy in the page: the page's own
    /// state is the signal, checked every few milliseconds.
    pub async fn until(&self, expression: &str) {
        let script = format!("return Boolean({expression});");
        let deadline = Instant::now() + PATIENCE;
        while self.js(&script, vec![]).await != Value::Bool(true) {
            assert!(
                Instant::now() < deadline,
                "still false after {PATIENCE:?}: {expression}"
            );
            actix_web::rt::task::yield_now().await;
        }
    }

    /// The browser's console errors since the last call (every failed
    /// request, CSP violation and uncaught exception is one).
    pub async fn console_errors(&self) -> Vec<String> {
        let log = self
            .client
            .issue_cmd(BrowserLog)
            .await
            .expect("the browser log");
        log.as_array()
            .into_iter()
            .flatten()
            .filter(|entry| entry["level"] == "SEVERE")
            .map(|entry| entry["message"].as_str().unwrap_or_default().to_string())
            .collect()
    }

    /// Every resource the page loaded, by URL.
    pub async fn loaded_resources(&self) -> Vec<String> {
        let names = self
            .js(
                "return [location.href, ...performance.getEntriesByType('resource').map(e => e.name)];",
                vec![],
            )
            .await;
        names
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|name| name.as_str().map(str::to_string))
            .collect()
    }

    /// Saves a PNG of the viewport under `target/console-screenshots/`, and
    /// into the folder `KEYWARDEN_SCREENSHOTS` names, if any.
    pub async fn screenshot(&self, name: &str) {
        let png = self.client.screenshot().await.expect("a screenshot");
        let mut folders =
            vec![PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/console-screenshots")];
        if let Some(folder) = std::env::var_os("KEYWARDEN_SCREENSHOTS") {
            folders.push(PathBuf::from(folder));
        }
        for folder in folders {
            std::fs::create_dir_all(&folder).expect("the screenshot folder");
            std::fs::write(folder.join(format!("{name}.png")), &png).expect("a PNG written");
        }
    }

    pub async fn resize(&self, width: u32, height: u32) {
        self.client
            .set_window_size(width, height)
            .await
            .expect("the window resized");
    }

    /// Signs in through the form, submitted with Enter.
    pub async fn sign_in(&self, credential: &str) {
        self.goto("/").await;
        self.fill("#credential", &format!("{credential}\u{E007}"))
            .await;
    }
}
