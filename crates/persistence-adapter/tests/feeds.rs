//! The change feeds: what one instance learns of the writes of another that
//! shares its database, and that it is not told of its own writes (its view
//! already holds them, and re-reading them would double the cost of a write).
#![expect(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test helpers fail the test loudly"
)]

use std::time::Duration;

use keywarden_application::{ApiTokenRepository, ExternalChange};
use keywarden_domain::fixtures::{self, at};
use keywarden_domain::{
    ApiToken, AuditEvent, Environment, EnvironmentName, Selector, TokenRef, TokenType,
};
use keywarden_persistence_adapter::testing::TestDatabase;
use keywarden_persistence_adapter::{
    PostgresOptions, PostgresRepository, SqliteOptions, SqliteRepository,
};
use tokio::sync::mpsc::{unbounded_channel, UnboundedReceiver};

fn development() -> Vec<Environment> {
    vec![Environment {
        name: EnvironmentName::parse("development").unwrap(),
        kind: "development".into(),
        sort_order: 1,
        enabled: true,
    }]
}

fn backend(seed: u8) -> ApiToken {
    fixtures::token(seed, "t", TokenType::Backend, &["*"], at(0)).0
}

async fn create(repository: &dyn ApiTokenRepository, token: &ApiToken) {
    repository
        .insert(
            token.clone(),
            AuditEvent::token_created(token, "tester", at(0)),
            1000,
        )
        .await
        .unwrap();
}

async fn expire(repository: &dyn ApiTokenRepository, token: &ApiToken) {
    repository
        .update_expiry(
            TokenRef::Selector(token.selector()),
            at(99),
            "tester",
            at(1),
        )
        .await
        .unwrap()
        .expect("the token exists");
}

/// Every selector reported until `wanted` is, failing after 5 s.
async fn reported_until(
    changes: &mut UnboundedReceiver<ExternalChange>,
    wanted: Selector,
) -> Vec<Selector> {
    let mut seen = Vec::new();
    tokio::time::timeout(Duration::from_secs(5), async {
        while !seen.contains(&wanted) {
            match changes.recv().await.expect("the feed stopped") {
                ExternalChange::Tokens(selectors) => seen.extend(selectors),
                ExternalChange::Unknown => {}
            }
        }
    })
    .await
    .unwrap_or_else(|_| panic!("{wanted} was not reported; saw {seen:?}"));
    seen
}

/// `here` follows; writes by `here` must not come back, writes by `there` must.
async fn own_writes_are_not_reported_back(
    here: &dyn ApiTokenRepository,
    there: &dyn ApiTokenRepository,
    mut changes: UnboundedReceiver<ExternalChange>,
) {
    here.sync_catalog(Vec::new(), development(), false)
        .await
        .unwrap();
    // Give the feed time to start before the writes it must skip or see.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mine: Vec<ApiToken> = (1..=20).map(backend).collect();
    for token in &mine {
        create(here, token).await;
        expire(here, token).await;
    }
    let theirs = backend(100);
    create(there, &theirs).await;
    let seen = reported_until(&mut changes, theirs.selector()).await;
    let echoed: Vec<_> = mine
        .iter()
        .map(ApiToken::selector)
        .filter(|selector| seen.contains(selector))
        .collect();
    assert!(echoed.is_empty(), "own writes reported back: {echoed:?}");

    // And a write of this instance after theirs is still skipped.
    let later = backend(101);
    create(here, &later).await;
    let theirs_again = backend(102);
    create(there, &theirs_again).await;
    let seen = reported_until(&mut changes, theirs_again.selector()).await;
    assert!(!seen.contains(&later.selector()), "{seen:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_feed_reports_other_processes_writes_only() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("kw.db");
    let here = SqliteRepository::open(path.clone(), SqliteOptions::default())
        .await
        .unwrap();
    let there = SqliteRepository::open(path, SqliteOptions::default())
        .await
        .unwrap();
    let (sender, changes) = unbounded_channel();
    here.follow_changes(sender).unwrap();
    own_writes_are_not_reported_back(&here, &there, changes).await;
}

/// The feed learns which token changed from the event's subject column, so an
/// event whose stored JSON it cannot read (a newer version's format) still
/// names its token instead of forcing a full reload.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_feed_reports_events_in_formats_it_cannot_read() {
    use diesel::connection::SimpleConnection;
    use diesel::Connection;

    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("kw.db");
    let here = SqliteRepository::open(path.clone(), SqliteOptions::default())
        .await
        .unwrap();
    let (sender, mut changes) = unbounded_channel();
    here.follow_changes(sender).unwrap();
    let subject = backend(7).selector();
    let mut newer = diesel::SqliteConnection::establish(path.to_str().unwrap()).unwrap();
    newer
        .batch_execute(&format!(
            "INSERT INTO events (event_type, created_by, created_at, data, pre_data, selector, format)
             VALUES ('api-token-deleted', 'newer', '2030-01-01 00:00:00+00:00', NULL,
                     '{{\"unknown\": true}}', '{subject}', 2)"
        ))
        .unwrap();
    let change = tokio::time::timeout(Duration::from_secs(5), changes.recv())
        .await
        .expect("the feed reports the event")
        .expect("the feed runs");
    assert_eq!(change, ExternalChange::Tokens(vec![subject]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_listener_reports_other_instances_writes_only() {
    let Some(database) = TestDatabase::create() else {
        return;
    };
    let open = || PostgresRepository::open(database.url().to_string(), PostgresOptions::default());
    let here = open().await.unwrap();
    let there = open().await.unwrap();
    let (sender, changes) = unbounded_channel();
    here.follow_changes(sender).unwrap();
    own_writes_are_not_reported_back(&here, &there, changes).await;
}
