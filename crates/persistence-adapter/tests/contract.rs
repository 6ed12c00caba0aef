//! The repository contract: every case runs against a fresh database per test.
//! Each backend instantiates the same cases through `contract_suite!`.
#![expect(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test helpers fail the test loudly"
)]

use std::sync::Arc;

use chrono::Duration;
use keywarden_application::{ApiTokenRepository, RepositoryError, StoredCredential};
use keywarden_domain::fixtures::{self, at};
use keywarden_domain::{
    ApiToken, AuditEvent, Credential, Environment, EnvironmentName, EventType, Project, ProjectId,
    TokenRef, TokenType,
};

/// A fresh repository plus a way to break it behind its back (for atomicity).
#[async_trait::async_trait]
pub trait Fixture: Send + Sync {
    fn repository(&self) -> Arc<dyn ApiTokenRepository>;
    /// Executes raw SQL on a separate connection.
    async fn execute(&self, sql: &str);
}

fn projects() -> Vec<Project> {
    ["default", "other"]
        .into_iter()
        .map(|id| Project {
            id: ProjectId::parse(id).unwrap(),
            name: id.to_uppercase(),
            description: Some(format!("{id} project")),
        })
        .collect()
}

fn environments() -> Vec<Environment> {
    [("development", 100), ("production", 200)]
        .into_iter()
        .map(|(name, sort_order)| Environment {
            name: EnvironmentName::parse(name).unwrap(),
            kind: name.to_string(),
            sort_order,
            enabled: true,
        })
        .collect()
}

async fn ready(fixture: &dyn Fixture) -> Arc<dyn ApiTokenRepository> {
    let repository = fixture.repository();
    repository
        .sync_catalog(projects(), environments(), true)
        .await
        .unwrap();
    repository
}

fn token(seed: u8, name: &str, projects: &[&str], created: i64) -> (ApiToken, Credential) {
    fixtures::token(seed, name, TokenType::Backend, projects, at(created))
}

fn admin(seed: u8) -> ApiToken {
    fixtures::token(seed, "admin", TokenType::Admin, &["*"], at(0)).0
}

async fn insert(repository: &dyn ApiTokenRepository, token: &ApiToken) -> ApiToken {
    repository
        .insert(
            token.clone(),
            AuditEvent::token_created(token, "tester", at(0)),
            100,
        )
        .await
        .unwrap()
}

/// The token with this selector, if any.
async fn find(
    repository: &dyn ApiTokenRepository,
    selector: keywarden_domain::Selector,
) -> Result<Option<ApiToken>, RepositoryError> {
    Ok(repository.find_many(vec![selector]).await?.pop())
}

async fn all_events(repository: &dyn ApiTokenRepository) -> Vec<keywarden_domain::StoredEvent> {
    repository.events(None, 1000).await.unwrap()
}

pub async fn inserted_tokens_read_back_whole(fixture: &dyn Fixture) {
    let repository = ready(fixture).await;
    let (one, _) = token(1, "one", &["other", "default"], 10);
    let (two, _) = token(2, "two", &["*"], 20);
    let stored = insert(repository.as_ref(), &one).await;
    assert_eq!(stored.revision(), 1);
    insert(repository.as_ref(), &two).await;

    let found = find(repository.as_ref(), one.selector())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(found, one.clone().with_revision(1));
    assert_eq!(found.projects().ids(), vec!["default", "other"]);

    let listed = repository.list().await.unwrap();
    let names: Vec<_> = listed.iter().map(|t| t.name().as_str()).collect();
    assert_eq!(names, vec!["two", "one"], "newest first");

    assert_eq!(
        repository.find_by_name("one").await.unwrap(),
        vec![found.clone()]
    );
    let ghost = keywarden_domain::Selector::from_bytes([9; 16]);
    let mut many = repository
        .find_many(vec![two.selector(), ghost, one.selector()])
        .await
        .unwrap();
    many.sort_by_key(|t| t.name().as_str().to_string());
    assert_eq!(many.len(), 2, "missing selectors are absent");
    assert_eq!(many[0], found);
    assert!(
        repository.find_by_name("ONE").await.unwrap().is_empty(),
        "case-sensitive"
    );
    assert!(find(
        repository.as_ref(),
        keywarden_domain::Selector::from_bytes([9; 16])
    )
    .await
    .unwrap()
    .is_none());
}

pub async fn insert_records_its_event(fixture: &dyn Fixture) {
    let repository = ready(fixture).await;
    let (one, _) = token(1, "one", &["default"], 10);
    insert(repository.as_ref(), &one).await;
    let events = all_events(repository.as_ref()).await;
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].event.event_type, EventType::ApiTokenCreated);
    assert_eq!(events[0].event.created_by, "tester");
    assert_eq!(events[0].event.data, Some(one.facts()));
    assert_eq!(events[0].event.pre_data, None);
    assert_eq!(events[0].event.subject(), one.selector());
}

pub async fn insert_respects_the_limit_atomically(fixture: &dyn Fixture) {
    let repository = ready(fixture).await;
    let (one, _) = token(1, "one", &["*"], 10);
    let (two, _) = token(2, "two", &["*"], 20);
    repository
        .insert(one.clone(), AuditEvent::token_created(&one, "t", at(0)), 1)
        .await
        .unwrap();
    let refused = repository
        .insert(two.clone(), AuditEvent::token_created(&two, "t", at(0)), 1)
        .await;
    assert!(
        matches!(refused, Err(RepositoryError::LimitExceeded(1))),
        "{refused:?}"
    );
    assert_eq!(repository.list().await.unwrap().len(), 1);
    assert_eq!(all_events(repository.as_ref()).await.len(), 1);
}

pub async fn unknown_references_and_duplicates_conflict(fixture: &dyn Fixture) {
    let repository = fixture.repository();
    repository
        .sync_catalog(projects()[..1].to_vec(), environments(), true)
        .await
        .unwrap();
    let (orphan, _) = token(1, "orphan", &["other"], 10);
    let result = repository
        .insert(
            orphan.clone(),
            AuditEvent::token_created(&orphan, "t", at(0)),
            10,
        )
        .await;
    assert!(
        matches!(result, Err(RepositoryError::Conflict(_))),
        "{result:?}"
    );
    assert!(repository.list().await.unwrap().is_empty());
    assert!(
        all_events(repository.as_ref()).await.is_empty(),
        "no event without its change"
    );

    let (one, _) = token(2, "one", &["default"], 10);
    insert(repository.as_ref(), &one).await;
    let again = repository
        .insert(one.clone(), AuditEvent::token_created(&one, "t", at(0)), 10)
        .await;
    assert!(
        matches!(again, Err(RepositoryError::Conflict(_))),
        "{again:?}"
    );
    assert_eq!(all_events(repository.as_ref()).await.len(), 1);
}

pub async fn initial_tokens_go_in_once(fixture: &dyn Fixture) {
    let repository = ready(fixture).await;
    let first = vec![admin(1), token(2, "admin", &["default"], 0).0];
    assert!(repository
        .insert_initial(first, "system", at(0))
        .await
        .unwrap());
    assert!(!repository
        .insert_initial(vec![admin(3)], "system", at(1))
        .await
        .unwrap());
    assert_eq!(repository.list().await.unwrap().len(), 2);
    let events = all_events(repository.as_ref()).await;
    assert_eq!(events.len(), 2);
    assert!(events.iter().all(
        |e| e.event.event_type == EventType::ApiTokenCreated && e.event.created_by == "system"
    ));
}

pub async fn expiry_updates_write_the_change_and_its_event(fixture: &dyn Fixture) {
    let repository = ready(fixture).await;
    let (one, credential) = token(1, "one", &["default"], 10);
    insert(repository.as_ref(), &one).await;

    let change = repository
        .update_expiry(TokenRef::Selector(one.selector()), at(99), "alice", at(50))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(change.before.expires_at(), None);
    assert_eq!(change.after.expires_at(), Some(at(99)));
    assert_eq!(change.after.revision(), 2);
    assert_eq!(
        find(repository.as_ref(), one.selector()).await.unwrap(),
        Some(change.after.clone())
    );

    let by_credential = repository
        .update_expiry(
            TokenRef::parse(credential.expose_secret()),
            at(5),
            "bob",
            at(51),
        )
        .await
        .unwrap()
        .unwrap();
    assert_eq!(by_credential.after.revision(), 3);
    assert_eq!(by_credential.before, change.after);

    let events = all_events(repository.as_ref()).await;
    assert_eq!(events.len(), 3);
    let newest = &events[0].event;
    assert_eq!(newest.event_type, EventType::ApiTokenUpdated);
    assert_eq!(newest.created_by, "bob");
    assert_eq!(newest.created_at, at(51));
    assert_eq!(newest.pre_data.as_ref().unwrap().expires_at, Some(at(99)));
    assert_eq!(newest.data.as_ref().unwrap().expires_at, Some(at(5)));
    assert!(events[0].id > events[1].id);
}

pub async fn expiry_updates_of_unknown_tokens_change_nothing(fixture: &dyn Fixture) {
    let repository = ready(fixture).await;
    let (one, credential) = token(1, "one", &["default"], 10);
    insert(repository.as_ref(), &one).await;
    let mut wrong = credential.expose_secret().to_string();
    wrong.pop();
    wrong.push(if credential.expose_secret().ends_with('A') {
        'B'
    } else {
        'A'
    });
    for target in [
        TokenRef::parse("nobody"),
        TokenRef::Selector(keywarden_domain::Selector::from_bytes([8; 16])),
        // Right selector, wrong secret: not the same token.
        TokenRef::Credential {
            selector: one.selector(),
            verifier: Credential::new(wrong).verifier(),
        },
    ] {
        let change = repository
            .update_expiry(target, at(1), "alice", at(2))
            .await
            .unwrap();
        assert!(change.is_none(), "{target:?}");
    }
    assert_eq!(
        find(repository.as_ref(), one.selector())
            .await
            .unwrap()
            .unwrap()
            .revision(),
        1
    );
    assert_eq!(all_events(repository.as_ref()).await.len(), 1);
}

pub async fn a_failing_event_write_rolls_the_change_back(fixture: &dyn Fixture) {
    let repository = ready(fixture).await;
    let (one, _) = token(1, "one", &["default"], 10);
    insert(repository.as_ref(), &one).await;
    fixture.execute("DROP TABLE events").await;
    let result = repository
        .update_expiry(TokenRef::Selector(one.selector()), at(99), "alice", at(50))
        .await;
    assert!(result.is_err());
    let (two, _) = token(2, "two", &["default"], 10);
    assert!(repository
        .insert(two.clone(), AuditEvent::token_created(&two, "t", at(0)), 10)
        .await
        .is_err());
    assert!(repository
        .delete(TokenRef::Selector(one.selector()), "alice", at(50))
        .await
        .is_err());
    let unchanged = find(repository.as_ref(), one.selector())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(unchanged.expires_at(), None);
    assert_eq!(unchanged.revision(), 1);
    assert!(find(repository.as_ref(), two.selector())
        .await
        .unwrap()
        .is_none());
}

pub async fn credentials_are_those_of_the_stored_tokens(fixture: &dyn Fixture) {
    let repository = ready(fixture).await;
    assert!(repository.credentials().await.unwrap().is_empty());
    let (one, _) = token(1, "one", &["default"], 10);
    let (two, _) = token(2, "two", &["*"], 20);
    let (three, _) = token(3, "three", &["*"], 30);
    for token in [&one, &two, &three] {
        insert(repository.as_ref(), token).await;
    }
    let changed = repository
        .update_expiry(TokenRef::Selector(two.selector()), at(500), "alice", at(40))
        .await
        .unwrap()
        .unwrap()
        .after;
    repository
        .delete(TokenRef::Selector(three.selector()), "alice", at(50))
        .await
        .unwrap()
        .unwrap();
    let mut credentials = repository.credentials().await.unwrap();
    credentials.sort_by_key(|credential| credential.name.clone());
    let expected: Vec<StoredCredential> = [one.with_revision(1), changed]
        .iter()
        .map(StoredCredential::from)
        .collect();
    assert_eq!(credentials, expected);
    assert_eq!(credentials[1].revision, 2);
    assert_eq!(credentials[1].expires_at, Some(at(500)));
}

pub async fn deletes_remove_the_token_and_record_it(fixture: &dyn Fixture) {
    let repository = ready(fixture).await;
    let (one, _) = token(1, "one", &["default", "other"], 10);
    insert(repository.as_ref(), &one).await;
    let deleted = repository
        .delete(TokenRef::Selector(one.selector()), "alice", at(60))
        .await
        .unwrap();
    assert_eq!(deleted, Some(one.clone().with_revision(1)));
    assert!(find(repository.as_ref(), one.selector())
        .await
        .unwrap()
        .is_none());
    assert!(repository
        .delete(TokenRef::Selector(one.selector()), "alice", at(61))
        .await
        .unwrap()
        .is_none());
    let events = all_events(repository.as_ref()).await;
    assert_eq!(events.len(), 2, "no event for deleting nothing");
    assert_eq!(events[0].event.event_type, EventType::ApiTokenDeleted);
    assert_eq!(events[0].event.pre_data, Some(one.facts()));
    assert_eq!(events[0].event.data, None);
    assert_eq!(events[0].event.subject(), one.selector());
    // The links went with the token, so the projects are free to go too.
    repository
        .sync_catalog(Vec::new(), environments(), true)
        .await
        .unwrap();
    assert!(repository.projects().await.unwrap().is_empty());
}

pub async fn last_seen_keeps_the_latest_instant(fixture: &dyn Fixture) {
    let repository = ready(fixture).await;
    let (one, _) = token(1, "one", &["default"], 10);
    insert(repository.as_ref(), &one).await;
    let ghost = keywarden_domain::Selector::from_bytes([7; 16]);
    repository
        .record_seen(vec![(one.selector(), at(30)), (ghost, at(30))])
        .await
        .unwrap();
    repository
        .record_seen(vec![(one.selector(), at(20))])
        .await
        .unwrap();
    let seen = find(repository.as_ref(), one.selector())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(seen.seen_at(), Some(at(30)));
    assert_eq!(seen.revision(), 1, "last-seen is not a change");
    repository
        .record_seen(vec![(
            one.selector(),
            at(40) + Duration::microseconds(1500),
        )])
        .await
        .unwrap();
    let seen = find(repository.as_ref(), one.selector())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(seen.seen_at(), Some(at(40) + Duration::milliseconds(1)));
    assert_eq!(all_events(repository.as_ref()).await.len(), 1);
}

pub async fn events_filter_and_page(fixture: &dyn Fixture) {
    let repository = ready(fixture).await;
    for seed in 1..=3 {
        let (t, _) = token(seed, "t", &["default"], i64::from(seed));
        insert(repository.as_ref(), &t).await;
        let change = repository
            .update_expiry(TokenRef::Selector(t.selector()), at(9), "a", at(9))
            .await
            .unwrap()
            .expect("the token exists");
        assert_eq!(change.after.expires_at(), Some(at(9)));
    }
    let updated = repository
        .events(Some(EventType::ApiTokenUpdated), 1000)
        .await
        .unwrap();
    assert_eq!(updated.len(), 3);
    assert!(updated
        .iter()
        .all(|e| e.event.event_type == EventType::ApiTokenUpdated));
    let page = repository.events(None, 2).await.unwrap();
    assert_eq!(page.len(), 2);
    assert!(page[0].id > page[1].id);
    assert!(repository
        .events(Some(EventType::ApiTokenDeleted), 10)
        .await
        .unwrap()
        .is_empty());
}

pub async fn catalog_sync_keeps_what_tokens_use(fixture: &dyn Fixture) {
    let repository = ready(fixture).await;
    let (one, _) = token(1, "one", &["other"], 10);
    insert(repository.as_ref(), &one).await;
    let renamed = vec![Project {
        id: ProjectId::parse("default").unwrap(),
        name: "Renamed".into(),
        description: None,
    }];
    repository
        .sync_catalog(renamed.clone(), environments()[1..].to_vec(), true)
        .await
        .unwrap();
    let stored = repository.projects().await.unwrap();
    let ids: Vec<_> = stored.iter().map(|p| p.id.as_str()).collect();
    assert_eq!(ids, vec!["default", "other"], "other is still referenced");
    assert_eq!(stored[0], renamed[0]);
    let names: Vec<_> = repository
        .environments()
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.name.as_str().to_string())
        .collect();
    assert_eq!(
        names,
        vec!["development", "production"],
        "development is still referenced"
    );
    repository.ping().await.unwrap();
}

pub async fn corrupt_rows_are_reported_not_trusted(fixture: &dyn Fixture) {
    let repository = ready(fixture).await;
    let (one, _) = token(1, "one", &["*"], 10);
    insert(repository.as_ref(), &one).await;
    fixture
        .execute("UPDATE api_tokens SET selector = 'not-a-selector'")
        .await;
    assert!(matches!(
        repository.list().await,
        Err(RepositoryError::Corrupt(_))
    ));
    assert!(matches!(
        repository.credentials().await,
        Err(RepositoryError::Corrupt(_))
    ));
}

pub async fn concurrent_writers_all_succeed(fixture: &dyn Fixture) {
    let repository = ready(fixture).await;
    let (one, _) = token(1, "one", &["default"], 10);
    insert(repository.as_ref(), &one).await;
    let writers: Vec<_> = (0..16)
        .map(|i| {
            let repository = Arc::clone(&repository);
            let selector = one.selector();
            tokio::spawn(async move {
                for j in 0..10 {
                    let change = repository
                        .update_expiry(TokenRef::Selector(selector), at(i * 100 + j), "w", at(0))
                        .await
                        .unwrap()
                        .expect("the token exists");
                    assert_eq!(change.after.revision(), change.before.revision() + 1);
                }
            })
        })
        .collect();
    for writer in writers {
        writer.await.unwrap();
    }
    let stored = find(repository.as_ref(), one.selector())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(stored.revision(), 1 + 160);
    assert_eq!(all_events(repository.as_ref()).await.len(), 161);
}

/// Instantiates every case above for one backend. `$fixture` is an async
/// expression giving a fresh `Fixture` (or `None` to skip, e.g. without a server).
#[macro_export]
macro_rules! contract_suite {
    ($module:ident, $fixture:expr) => {
        mod $module {
            use super::*;
            $crate::contract_suite!(@cases $fixture;
                inserted_tokens_read_back_whole,
                insert_records_its_event,
                insert_respects_the_limit_atomically,
                unknown_references_and_duplicates_conflict,
                initial_tokens_go_in_once,
                expiry_updates_write_the_change_and_its_event,
                expiry_updates_of_unknown_tokens_change_nothing,
                a_failing_event_write_rolls_the_change_back,
                credentials_are_those_of_the_stored_tokens,
                deletes_remove_the_token_and_record_it,
                last_seen_keeps_the_latest_instant,
                events_filter_and_page,
                catalog_sync_keeps_what_tokens_use,
                corrupt_rows_are_reported_not_trusted,
                concurrent_writers_all_succeed,
            );
        }
    };
    (@cases $fixture:expr; $($case:ident),+ $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $case() {
                if let Some(fixture) = $fixture.await {
                    super::$case(&fixture).await;
                }
            }
        )+
    };
}

mod sqlite {
    use super::Fixture;
    use diesel::connection::SimpleConnection;
    use diesel::Connection;
    use keywarden_persistence_adapter::{SqliteOptions, SqliteRepository};
    use std::sync::Arc;

    pub struct SqliteFixture {
        _dir: tempfile::TempDir,
        path: std::path::PathBuf,
        repository: Arc<SqliteRepository>,
    }

    pub async fn fresh() -> Option<SqliteFixture> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("nested").join("kw.db");
        let repository = SqliteRepository::open(path.clone(), SqliteOptions::default())
            .await
            .unwrap();
        Some(SqliteFixture {
            _dir: dir,
            path,
            repository: Arc::new(repository),
        })
    }

    #[async_trait::async_trait]
    impl Fixture for SqliteFixture {
        fn repository(&self) -> Arc<dyn keywarden_application::ApiTokenRepository> {
            self.repository.clone()
        }

        async fn execute(&self, sql: &str) {
            let mut conn =
                diesel::SqliteConnection::establish(self.path.to_str().unwrap()).unwrap();
            conn.batch_execute(&format!("PRAGMA busy_timeout = 5000; {sql}"))
                .unwrap();
        }
    }
}

contract_suite!(on_sqlite, sqlite::fresh());

mod postgres {
    use super::Fixture;
    use diesel::connection::SimpleConnection;
    use diesel::Connection;
    use keywarden_persistence_adapter::testing::TestDatabase;
    use keywarden_persistence_adapter::{PostgresOptions, PostgresRepository};
    use std::sync::Arc;

    pub struct PostgresFixture {
        database: TestDatabase,
        repository: Arc<PostgresRepository>,
    }

    /// `None` (the case is skipped) without `TEST_POSTGRES_URL`.
    pub async fn fresh() -> Option<PostgresFixture> {
        let database = TestDatabase::fresh().await?;
        let repository =
            PostgresRepository::open(database.url().to_string(), PostgresOptions::default())
                .await
                .unwrap();
        Some(PostgresFixture {
            database,
            repository: Arc::new(repository),
        })
    }

    #[async_trait::async_trait]
    impl Fixture for PostgresFixture {
        fn repository(&self) -> Arc<dyn keywarden_application::ApiTokenRepository> {
            self.repository.clone()
        }

        async fn execute(&self, sql: &str) {
            let url = self.database.url().to_string();
            let sql = sql.to_string();
            tokio::task::spawn_blocking(move || {
                let mut conn = diesel::PgConnection::establish(&url).unwrap();
                conn.batch_execute(&sql).unwrap();
            })
            .await
            .unwrap();
        }
    }
}

contract_suite!(on_postgres, postgres::fresh());
