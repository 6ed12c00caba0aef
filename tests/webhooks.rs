//! Lifecycle notifications end to end (lifecycle.md §4): a real HTTP
//! receiver started here gets every change, signed so that the Standard
//! Webhooks reference library accepts it, in order, also after being down for
//! a while; expiry warnings are recorded once however many instances run and
//! restart; several instances send each delivery once. On SQLite, or on
//! PostgreSQL with `KEYWARDEN_TEST_BACKEND=postgres`; the two-instance
//! delivery case needs `TEST_POSTGRES_URL`.
#![expect(clippy::unwrap_used, reason = "test helpers fail the test loudly")]

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::{SecondsFormat, Utc};
use keywarden_test_support::app::{random_part, spawn_on, spawn_with, TestApp};
use keywarden_test_support::TestDatabase;
use serde_json::{json, Value};

const SECRET: &str = "whsec_BwgJCgsMDQ4PEBESExQVFhcYGRobHB0eHyAhIiMkJSY=";

/// One request the receiver got, and what it answered.
#[derive(Clone, Debug)]
struct Delivery {
    headers: HashMap<String, String>,
    body: Vec<u8>,
    accepted: bool,
}

impl Delivery {
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap()
    }

    fn id(&self) -> &str {
        &self.headers["webhook-id"]
    }
}

/// A webhook receiver on a free port: it records every request and refuses
/// (503) the first `refuse` of them.
struct Receiver {
    url: String,
    received: Arc<Mutex<Vec<Delivery>>>,
}

impl Receiver {
    fn start(refuse: usize) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!(
            "http://127.0.0.1:{}/hooks",
            listener.local_addr().unwrap().port()
        );
        let received = Arc::new(Mutex::new(Vec::new()));
        let seen = Arc::clone(&received);
        let refused = Arc::new(AtomicUsize::new(0));
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(stream) = stream else { continue };
                let seen = Arc::clone(&seen);
                let refused = Arc::clone(&refused);
                std::thread::spawn(move || {
                    let mut reader = BufReader::new(stream.try_clone().unwrap());
                    let mut line = String::new();
                    if reader.read_line(&mut line).unwrap_or(0) == 0 {
                        return;
                    }
                    let mut headers = HashMap::new();
                    loop {
                        let mut header = String::new();
                        reader.read_line(&mut header).unwrap();
                        let header = header.trim_end();
                        if header.is_empty() {
                            break;
                        }
                        let (name, value) = header.split_once(':').unwrap();
                        headers.insert(name.trim().to_ascii_lowercase(), value.trim().to_string());
                    }
                    let length: usize = headers["content-length"].parse().unwrap();
                    let mut body = vec![0; length];
                    reader.read_exact(&mut body).unwrap();
                    let accepted = refused.fetch_add(1, Ordering::SeqCst) >= refuse;
                    seen.lock().unwrap().push(Delivery {
                        headers,
                        body,
                        accepted,
                    });
                    let status = if accepted {
                        "200 OK"
                    } else {
                        "503 Service Unavailable"
                    };
                    let mut stream = stream;
                    let _ = write!(
                        stream,
                        "HTTP/1.1 {status}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
                    );
                });
            }
        });
        Self { url, received }
    }

    /// The accepted deliveries once there are at least `n` (or after 30 s).
    async fn accepted(&self, n: usize) -> Vec<Delivery> {
        let started = Instant::now();
        loop {
            let accepted: Vec<Delivery> = self
                .received
                .lock()
                .unwrap()
                .iter()
                .filter(|d| d.accepted)
                .cloned()
                .collect();
            if accepted.len() >= n || started.elapsed() > Duration::from_secs(30) {
                return accepted;
            }
            actix_web::rt::time::sleep(Duration::from_millis(50)).await;
        }
    }

    fn all(&self) -> Vec<Delivery> {
        self.received.lock().unwrap().clone()
    }

    /// `KEYWARDEN__WEBHOOKS`, pointing at this receiver.
    fn setting(&self) -> String {
        format!(r#"[{{ url = "{}", secret = "{SECRET}" }}]"#, self.url)
    }
}

fn rfc3339(at: chrono::DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::Millis, true)
}

fn verify(delivery: &Delivery) {
    let mut headers = http::HeaderMap::new();
    for (name, value) in &delivery.headers {
        headers.insert(
            http::HeaderName::from_bytes(name.as_bytes()).unwrap(),
            http::HeaderValue::from_str(value).unwrap(),
        );
    }
    standardwebhooks::Webhook::new(SECRET)
        .unwrap()
        .verify(&delivery.body, &headers)
        .unwrap_or_else(|e| panic!("{e:?}: {delivery:?}"));
}

fn types(deliveries: &[Delivery]) -> Vec<String> {
    deliveries
        .iter()
        .map(|d| d.json()["type"].as_str().unwrap().to_string())
        .collect()
}

async fn app_with(receiver: &Receiver) -> TestApp {
    let webhooks = receiver.setting();
    spawn_with(&[("KEYWARDEN__WEBHOOKS", &webhooks)], |_| {}).await
}

#[actix_web::test]
async fn every_change_reaches_the_endpoint_signed_in_order_without_a_credential() {
    let receiver = Receiver::start(0);
    let app = app_with(&receiver).await;
    let (selector, credential) = app
        .create(json!({"tokenName": "ci", "type": "backend", "environment": "development"}))
        .await;
    let later = rfc3339(Utc::now() + chrono::Duration::days(30));
    let response = app
        .put_expiry(
            &format!("/api/admin/api-tokens/{selector}"),
            &app.admin,
            &later,
        )
        .await;
    assert_eq!(response.status, 200);
    let previous = rfc3339(Utc::now() + chrono::Duration::days(10));
    let rotated = app
        .post_json(
            &format!("/api/admin/api-tokens/{selector}/rotate"),
            &app.admin,
            &json!({"previousExpiresAt": previous}),
        )
        .await;
    assert_eq!(rotated.status, 201, "{}", rotated.body);
    let successor = rotated.json()["secret"].as_str().unwrap().to_string();
    assert_eq!(
        app.delete(&format!("/api/admin/api-tokens/{selector}"), &app.admin)
            .await
            .status,
        200
    );

    let delivered = receiver.accepted(6).await;
    assert_eq!(
        types(&delivered),
        [
            "api-token-created", // the first start's admin token
            "api-token-created",
            "api-token-updated",
            "api-token-created", // the successor…
            "api-token-updated", // …and the old token's shortened expiry
            "api-token-deleted",
        ]
    );
    let events = app.events("?limit=100").await;
    let mut recorded: Vec<i64> = events.iter().map(|e| e["id"].as_i64().unwrap()).collect();
    recorded.sort_unstable();
    let sent: Vec<i64> = delivered
        .iter()
        .map(|d| d.json()["data"]["eventId"].as_i64().unwrap())
        .collect();
    assert_eq!(sent, recorded, "every event, once, in order");
    for delivery in &delivered {
        verify(delivery);
        let body = String::from_utf8(delivery.body.clone()).unwrap();
        for secret in [&app.admin, &credential, &successor] {
            assert!(
                !body.contains(random_part(secret)),
                "a credential in {body}"
            );
        }
        assert_eq!(delivery.headers["content-type"], "application/json");
    }
    let updated = delivered[2].json();
    assert_eq!(updated["data"]["token"]["expiresAt"], later.as_str());
    assert!(updated["data"]["preToken"]["expiresAt"].is_null());
    assert_eq!(updated["data"]["createdBy"], "admin");
    assert_eq!(delivered[5].json()["data"]["token"]["tokenName"], "ci");

    // Unused tokens: never seen, counted from creation.
    let all = app
        .get("/api/admin/api-tokens?unusedFor=P0D", &app.admin)
        .await
        .json();
    assert_eq!(
        all["tokens"].as_array().unwrap().len(),
        2,
        "admin and successor"
    );
    let none = app
        .get("/api/admin/api-tokens?unusedFor=PT1H", &app.admin)
        .await
        .json();
    assert_eq!(none["tokens"], json!([]));
    let bad = app
        .get("/api/admin/api-tokens?unusedFor=90d", &app.admin)
        .await;
    assert_eq!(bad.status, 400);
    assert_eq!(bad.json()["details"][0]["path"], "/query/unusedFor");
}

#[actix_web::test]
async fn a_receiver_that_was_down_gets_everything_in_order() {
    // The first three attempts fail: retries after about 1, 2 and 4 s.
    let receiver = Receiver::start(3);
    let app = app_with(&receiver).await;
    for name in ["one", "two", "three"] {
        app.create(json!({"tokenName": name, "type": "client", "environment": "development"}))
            .await;
    }
    let delivered = receiver.accepted(4).await;
    let names: Vec<String> = delivered
        .iter()
        .map(|d| {
            d.json()["data"]["token"]["tokenName"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    assert_eq!(names, ["admin", "one", "two", "three"]);
    let attempts = receiver.all();
    assert!(attempts[..3].iter().all(|d| !d.accepted));
    assert!(
        attempts[..4].iter().all(|d| d.id() == delivered[0].id()),
        "each retry of the first delivery carries its webhook-id; nothing overtakes it"
    );
    for delivery in &delivered {
        verify(delivery);
    }
    let status = app.get("/internal-backstage/prometheus", "").await;
    assert!(
        status.body.contains("keywarden_webhook_deliveries_total"),
        "{}",
        status.body
    );
}

/// Another instance on `app`'s database (its SQLite file, or PostgreSQL database).
async fn instance_on(app: &TestApp, vars: &[(&str, &str)]) -> TestApp {
    let file = app.dir.path().join("kw.db");
    spawn_on(app.database.clone(), vars, |settings| {
        if app.database.is_none() {
            settings.database.url = format!("sqlite://{}", file.display());
        }
    })
    .await
}

async fn count(app: &TestApp, kind: &str, selector: &str) -> usize {
    app.events(&format!("?type={kind}&limit=1000"))
        .await
        .iter()
        .filter(|e| e["data"]["secret"] == selector)
        .count()
}

#[actix_web::test]
async fn expiry_warnings_are_recorded_once_across_instances_and_restarts() {
    let fast = [("KEYWARDEN__NOTIFICATIONS__EXPIRY_CHECK_INTERVAL_MS", "50")];
    let first = spawn_with(&fast, |_| {}).await;
    let mut second = instance_on(&first, &fast).await;
    second.admin = first.admin.clone();
    let expires = Utc::now() + chrono::Duration::milliseconds(1500);
    let (selector, _) = first
        .create(
            json!({"tokenName": "short", "type": "client", "environment": "development",
            "expiresAt": rfc3339(expires)}),
        )
        .await;
    let settle = |at: chrono::DateTime<Utc>| {
        let left = (at - Utc::now()).to_std().unwrap_or_default();
        actix_web::rt::time::sleep(left + Duration::from_millis(700))
    };
    settle(expires).await;
    let mut third = instance_on(&first, &fast).await;
    third.admin = first.admin.clone();
    actix_web::rt::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        count(&first, "api-token-expiring", &selector).await,
        1,
        "one warning: 1d, the tightest"
    );
    assert_eq!(count(&first, "api-token-expired", &selector).await, 1);
    let warning = first
        .events("?type=api-token-expiring&limit=1")
        .await
        .remove(0);
    assert_eq!(
        (warning["threshold"].as_str(), warning["createdBy"].as_str()),
        (Some("1d"), Some("system"))
    );

    // A new expiry arms them again.
    let renewed = Utc::now() + chrono::Duration::milliseconds(800);
    let response = second
        .put_expiry(
            &format!("/api/admin/api-tokens/{selector}"),
            &second.admin,
            &rfc3339(renewed),
        )
        .await;
    assert_eq!(response.status, 200, "{}", response.body);
    settle(renewed).await;
    assert_eq!(count(&third, "api-token-expiring", &selector).await, 2);
    assert_eq!(count(&third, "api-token-expired", &selector).await, 2);
}

#[actix_web::test]
async fn two_instances_on_one_postgres_database_send_each_delivery_once() {
    let Some(database) = TestDatabase::fresh().await else {
        return;
    };
    let database = Arc::new(database);
    let receiver = Receiver::start(0);
    let webhooks = receiver.setting();
    let vars = [("KEYWARDEN__WEBHOOKS", webhooks.as_str())];
    let a = spawn_on(Some(Arc::clone(&database)), &vars, |_| {}).await;
    let mut b = spawn_on(Some(Arc::clone(&database)), &vars, |_| {}).await;
    b.admin = a.admin.clone();
    for i in 0..10 {
        for (app, side) in [(&a, "a"), (&b, "b")] {
            app.create(json!({"tokenName": format!("{side}{i}"), "type": "client",
                "environment": "development"}))
                .await;
        }
    }
    let delivered = receiver.accepted(21).await;
    assert_eq!(delivered.len(), 21, "the admin token and twenty more");
    // Settle: a duplicate would come after the originals.
    actix_web::rt::time::sleep(Duration::from_secs(1)).await;
    let all = receiver.all();
    let mut ids: Vec<&str> = all.iter().map(Delivery::id).collect();
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len(), all.len(), "each delivery sent once");
    let sent: Vec<i64> = all
        .iter()
        .map(|d| d.json()["data"]["eventId"].as_i64().unwrap())
        .collect();
    let mut sorted = sent.clone();
    sorted.sort_unstable();
    assert_eq!(sent, sorted, "in order");
}

#[actix_web::test]
async fn tokens_unused_too_long_are_expired_by_system() {
    let flush = [("KEYWARDEN__TOKENS__SEEN_FLUSH_INTERVAL_MS", "10")];
    let first = spawn_with(&flush, |_| {}).await;
    let (idle, _) = first
        .create(json!({"tokenName": "idle", "type": "client", "environment": "development"}))
        .await;
    actix_web::rt::time::sleep(Duration::from_millis(3300)).await;
    // The admin token is used now (and the sighting written), the other not.
    first.tokens().await;
    actix_web::rt::time::sleep(Duration::from_millis(100)).await;
    let reaping = [
        ("KEYWARDEN__TOKENS__SEEN_FLUSH_INTERVAL_MS", "10"),
        ("KEYWARDEN__TOKENS__EXPIRE_UNUSED_AFTER", "3s"),
    ];
    let mut second = instance_on(&first, &reaping).await;
    second.admin = first.admin.clone();
    let started = Instant::now();
    while first.token(&idle).await["expiresAt"].is_null() {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "the idle token was not expired"
        );
        actix_web::rt::time::sleep(Duration::from_millis(50)).await;
    }
    let updates = second.events("?type=api-token-updated&limit=10").await;
    assert_eq!(updates.len(), 1, "only the idle token: {updates:?}");
    assert_eq!(
        (
            updates[0]["createdBy"].as_str(),
            updates[0]["data"]["secret"].as_str()
        ),
        (Some("system"), Some(idle.as_str()))
    );
    assert_eq!(
        second
            .get("/api/admin/api-tokens", &second.admin)
            .await
            .status,
        200,
        "the admin token was used"
    );
}
