//! The repository contract: every case runs against a fresh database per test.
//! Each backend instantiates the same cases through `contract_suite!`.
#![expect(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test helpers fail the test loudly"
)]

use std::sync::Arc;

use chrono::Duration;
use keywarden_application::{
    ApiTokenRepository, Delivered, EndpointState, EventSearch, ExpiryNotice, NotificationStore,
    RepositoryError, RotateOutcome, StoredCredential,
};
use keywarden_domain::fixtures::{self, at};
use keywarden_domain::{
    Actor, ApiToken, AuditEvent, Credential, Environment, EnvironmentName, EventType,
    LifetimePolicy, Project, ProjectId, Rotation, RotationRefused, TokenRef, TokenType,
};

/// A fresh repository plus a way to break it behind its back (for atomicity).
#[async_trait::async_trait]
pub trait Fixture: Send + Sync {
    fn repository(&self) -> Arc<dyn ApiTokenRepository>;
    /// The same database's notification store.
    fn notifications(&self) -> Arc<dyn NotificationStore>;
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
            AuditEvent::token_created(token, &Actor::named("tester"), at(0)),
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
        .insert(
            one.clone(),
            AuditEvent::token_created(&one, &Actor::named("t"), at(0)),
            1,
        )
        .await
        .unwrap();
    let refused = repository
        .insert(
            two.clone(),
            AuditEvent::token_created(&two, &Actor::named("t"), at(0)),
            1,
        )
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
            AuditEvent::token_created(&orphan, &Actor::named("t"), at(0)),
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
        .insert(
            one.clone(),
            AuditEvent::token_created(&one, &Actor::named("t"), at(0)),
            10,
        )
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
        .insert_initial(first, &Actor::named("system"), at(0))
        .await
        .unwrap());
    assert!(!repository
        .insert_initial(vec![admin(3)], &Actor::named("system"), at(1))
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
        .update_expiry(
            TokenRef::Selector(one.selector()),
            at(99),
            &Actor::named("alice"),
            at(50),
        )
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
            &Actor::named("bob"),
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
            selector: Some(one.selector()),
            verifier: Credential::new(wrong).verifier(),
        },
    ] {
        let change = repository
            .update_expiry(target, at(1), &Actor::named("alice"), at(2))
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

/// An operator-chosen credential embeds no selector: its token, stored under a
/// random one, is found by the credential's verifier.
pub async fn legacy_tokens_are_changed_by_their_full_credential(fixture: &dyn Fixture) {
    let repository = ready(fixture).await;
    let legacy = Credential::new("*:*.an-operator-chosen-secret");
    let random = keywarden_domain::Selector::from_bytes([77; 16]);
    let token = keywarden_domain::NewToken::new(
        admin(1).name().clone(),
        TokenType::Admin,
        keywarden_domain::Projects::All,
        keywarden_domain::EnvironmentScope::All,
        None,
    )
    .unwrap()
    .with_credential(&legacy, random, at(0));
    assert!(repository
        .insert_initial(vec![token], &Actor::named("system"), at(0))
        .await
        .unwrap());
    let other = Credential::new("*:*.another-operator-chosen-secret");
    let change = repository
        .update_expiry(
            TokenRef::parse(other.expose_secret()),
            at(1),
            &Actor::named("alice"),
            at(2),
        )
        .await
        .unwrap();
    assert!(change.is_none());
    let acting = keywarden_domain::Selector::from_bytes([78; 16]);
    let change = repository
        .update_expiry(
            TokenRef::parse(legacy.expose_secret()),
            at(1),
            &Actor::token("admin", acting),
            at(2),
        )
        .await
        .unwrap()
        .expect("found by its verifier");
    assert_eq!(change.after.selector(), random);
    let events = all_events(repository.as_ref()).await;
    assert_eq!(
        (
            events[0].event.created_by.as_str(),
            events[0].event.created_by_token
        ),
        ("admin", Some(acting)),
        "the acting token's identifier is stored beside its name"
    );
    assert_eq!(events[1].event.created_by_token, None, "system");
    let deleted = repository
        .delete(
            TokenRef::parse(legacy.expose_secret()),
            &Actor::named("alice"),
            at(3),
        )
        .await
        .unwrap();
    assert_eq!(deleted.map(|t| t.selector()), Some(random));
}

pub async fn a_failing_event_write_rolls_the_change_back(fixture: &dyn Fixture) {
    let repository = ready(fixture).await;
    let (one, _) = token(1, "one", &["default"], 10);
    insert(repository.as_ref(), &one).await;
    fixture.execute("DROP TABLE events").await;
    let result = repository
        .update_expiry(
            TokenRef::Selector(one.selector()),
            at(99),
            &Actor::named("alice"),
            at(50),
        )
        .await;
    assert!(result.is_err());
    let (two, _) = token(2, "two", &["default"], 10);
    assert!(repository
        .insert(
            two.clone(),
            AuditEvent::token_created(&two, &Actor::named("t"), at(0)),
            10
        )
        .await
        .is_err());
    assert!(repository
        .delete(
            TokenRef::Selector(one.selector()),
            &Actor::named("alice"),
            at(50)
        )
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
        .update_expiry(
            TokenRef::Selector(two.selector()),
            at(500),
            &Actor::named("alice"),
            at(40),
        )
        .await
        .unwrap()
        .unwrap()
        .after;
    repository
        .delete(
            TokenRef::Selector(three.selector()),
            &Actor::named("alice"),
            at(50),
        )
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
        .delete(
            TokenRef::Selector(one.selector()),
            &Actor::named("alice"),
            at(60),
        )
        .await
        .unwrap();
    assert_eq!(deleted, Some(one.clone().with_revision(1)));
    assert!(find(repository.as_ref(), one.selector())
        .await
        .unwrap()
        .is_none());
    assert!(repository
        .delete(
            TokenRef::Selector(one.selector()),
            &Actor::named("alice"),
            at(61)
        )
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
            .update_expiry(
                TokenRef::Selector(t.selector()),
                at(9),
                &Actor::named("a"),
                at(9),
            )
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
                        .update_expiry(
                            TokenRef::Selector(selector),
                            at(i * 100 + j),
                            &Actor::named("w"),
                            at(0),
                        )
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

fn rotation(seed: u8, previous: i64, now: i64) -> Rotation {
    Rotation {
        previous_expires_at: at(previous),
        expires_at: None,
        policy: LifetimePolicy::default(),
        admin_allowed: false,
        material: fixtures::material(seed),
        now: at(now),
    }
}

pub async fn rotation_stores_the_successor_and_shortens_the_old_token(fixture: &dyn Fixture) {
    let repository = ready(fixture).await;
    let (old, _) = token(1, "ci", &["default", "other"], 10);
    let old = insert(
        repository.as_ref(),
        &fixtures::stored(&old, 0, Some(at(1010))),
    )
    .await;
    // At the limit (one token, limit irrelevant): a rotation still goes in.
    let RotateOutcome::Rotated(rotated) = repository
        .rotate(
            TokenRef::Selector(old.selector()),
            rotation(50, 500, 100),
            &Actor::named("alice"),
        )
        .await
        .unwrap()
    else {
        panic!("not rotated")
    };
    let stored_old = find(repository.as_ref(), old.selector())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(stored_old, rotated.retired);
    assert_eq!(stored_old.expires_at(), Some(at(500)));
    assert_eq!(stored_old.revision(), 2);
    let successor = find(repository.as_ref(), rotated.successor.selector())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(successor, rotated.successor);
    assert_eq!(successor.name(), old.name());
    assert_eq!(successor.projects(), old.projects());
    // The lifetime (1000 s) carried over from now.
    assert_eq!(successor.expires_at(), Some(at(1100)));
    let credentials = repository.credentials().await.unwrap();
    assert!(
        credentials
            .iter()
            .any(|c| c.selector == successor.selector()
                && c.verifier == rotated.credential.verifier())
    );
    let events = all_events(repository.as_ref()).await;
    let [updated, created, ..] = events.as_slice() else {
        panic!("{events:?}")
    };
    assert_eq!(updated.event.event_type, EventType::ApiTokenUpdated);
    assert_eq!(updated.event.subject(), old.selector());
    assert_eq!(
        updated.event.data.as_ref().unwrap().expires_at,
        Some(at(500))
    );
    assert_eq!(created.event.event_type, EventType::ApiTokenCreated);
    assert_eq!(created.event.subject(), successor.selector());
    assert_eq!(created.event.rotated_from, Some(old.selector()));
    assert_eq!(created.event.created_by, "alice");
    // One successor per token, ever.
    let again = repository
        .rotate(
            TokenRef::Selector(old.selector()),
            rotation(51, 500, 100),
            &Actor::named("alice"),
        )
        .await
        .unwrap();
    assert!(
        matches!(again, RotateOutcome::Refused(RotationRefused::AlreadyRotated(s)) if s == successor.selector())
    );
    let (unknown, _) = token(9, "nobody", &["default"], 10);
    assert!(matches!(
        repository
            .rotate(
                TokenRef::Selector(unknown.selector()),
                rotation(52, 500, 100),
                &Actor::named("alice")
            )
            .await
            .unwrap(),
        RotateOutcome::NotFound
    ));
    assert_eq!(all_events(repository.as_ref()).await.len(), 3);
}

pub async fn a_failed_rotation_leaves_no_trace(fixture: &dyn Fixture) {
    let repository = ready(fixture).await;
    let (old, _) = token(1, "ci", &["default"], 10);
    insert(repository.as_ref(), &old).await;
    // The successor's insert succeeds; the event after it fails.
    fixture.execute("DROP TABLE events").await;
    assert!(repository
        .rotate(
            TokenRef::Selector(old.selector()),
            rotation(50, 500, 100),
            &Actor::named("alice")
        )
        .await
        .is_err());
    let tokens = repository.list().await.unwrap();
    assert_eq!(tokens.len(), 1);
    assert_eq!(tokens[0].expires_at(), None);
    assert_eq!(tokens[0].revision(), 1);
}

pub async fn concurrent_rotations_make_one_successor(fixture: &dyn Fixture) {
    let repository = ready(fixture).await;
    let (old, _) = token(1, "ci", &["default"], 10);
    insert(repository.as_ref(), &old).await;
    let rotations: Vec<_> = (0..20u8)
        .map(|i| {
            let repository = Arc::clone(&repository);
            let selector = old.selector();
            tokio::spawn(async move {
                repository
                    .rotate(
                        TokenRef::Selector(selector),
                        rotation(100 + i, 500, 100),
                        &Actor::named("w"),
                    )
                    .await
                    .unwrap()
            })
        })
        .collect();
    let mut rotated = 0;
    for outcome in rotations {
        match outcome.await.unwrap() {
            RotateOutcome::Rotated(_) => rotated += 1,
            RotateOutcome::Refused(RotationRefused::AlreadyRotated(_)) => {}
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(rotated, 1);
    assert_eq!(repository.list().await.unwrap().len(), 2);
    assert_eq!(all_events(repository.as_ref()).await.len(), 3);
}

pub async fn search_pages_through_every_event_once(fixture: &dyn Fixture) {
    let repository = ready(fixture).await;
    let mut written = 0;
    for seed in 1..=12u8 {
        let (one, _) = token(seed, &format!("Token-{seed}"), &["default"], 10);
        let actor = Actor::named(if seed % 3 == 0 { "alice" } else { "bob" });
        repository
            .insert(
                one.clone(),
                AuditEvent::token_created(&one, &actor, at(i64::from(seed) * 86_400)),
                100,
            )
            .await
            .unwrap();
        repository
            .update_expiry(
                TokenRef::Selector(one.selector()),
                at(5),
                &actor,
                at(i64::from(seed) * 86_400 + 1),
            )
            .await
            .unwrap();
        written += 2;
    }
    let search = |search: EventSearch, offset: u64, limit: u32| {
        let repository = Arc::clone(&repository);
        async move {
            repository
                .search_events(search, offset, limit)
                .await
                .unwrap()
        }
    };
    let mut ids = Vec::new();
    let mut offset = 0;
    loop {
        let page = search(EventSearch::default(), offset, 5).await;
        assert_eq!(page.total, written);
        if page.events.is_empty() {
            break;
        }
        offset += page.events.len() as u64;
        ids.extend(page.events.iter().map(|e| e.id));
    }
    let mut expected: Vec<i64> = all_events(repository.as_ref())
        .await
        .iter()
        .map(|e| e.id)
        .collect();
    assert_eq!(ids, expected, "newest first, each once");
    expected.sort_unstable();
    expected.dedup();
    assert_eq!(expected.len() as u64, written);

    let by = |who: &str| EventSearch {
        created_by: Some(vec![who.to_string()]),
        ..EventSearch::default()
    };
    assert_eq!(search(by("alice"), 0, 100).await.total, 8);
    let types = EventSearch {
        types: Some(vec!["api-token-created".into()]),
        ..by("bob")
    };
    let page = search(types, 0, 3).await;
    assert_eq!((page.total, page.events.len()), (8, 3));
    assert!(page
        .events
        .iter()
        .all(|e| e.event.event_type == EventType::ApiTokenCreated));
    // Days 2 and 3: both events of tokens 2 and 3.
    let days = EventSearch {
        from: Some(at(2 * 86_400)),
        before: Some(at(4 * 86_400)),
        ..EventSearch::default()
    };
    assert_eq!(search(days, 0, 100).await.total, 4);
    // Free text: the token name, case-insensitively; LIKE's wildcards are literal.
    let text = |t: &str| EventSearch {
        text: Some(t.to_string()),
        ..EventSearch::default()
    };
    assert_eq!(search(text("token-1"), 0, 100).await.total, 2 * 4); // 1, 10, 11, 12
    assert_eq!(search(text("ALICE"), 0, 100).await.total, 8);
    assert_eq!(search(text("updated"), 0, 100).await.total, 12);
    assert_eq!(search(text("%"), 0, 100).await.total, 0);
    assert_eq!(search(text("token_1"), 0, 100).await.total, 0);
    let none = EventSearch {
        types: Some(Vec::new()),
        ..EventSearch::default()
    };
    assert_eq!(search(none, 0, 100).await.total, 0);

    // Ids need not follow the instants (another instance's clock): an event
    // written last but dated day 2 is in the day range, newest by id.
    let (late, _) = token(40, "late", &["default"], 10);
    repository
        .insert(
            late.clone(),
            AuditEvent::token_created(&late, &Actor::named("bob"), at(2 * 86_400 + 5)),
            100,
        )
        .await
        .unwrap();
    let days = EventSearch {
        from: Some(at(2 * 86_400)),
        before: Some(at(4 * 86_400)),
        ..EventSearch::default()
    };
    let in_days: Vec<i64> = all_events(repository.as_ref())
        .await
        .into_iter()
        .filter(|e| e.event.created_at >= at(2 * 86_400) && e.event.created_at < at(4 * 86_400))
        .map(|e| e.id)
        .collect();
    assert_eq!(in_days.len(), 5);
    let first = search(days.clone(), 0, 3).await;
    let rest = search(days, 3, 3).await;
    let paged: Vec<i64> = first
        .events
        .iter()
        .chain(&rest.events)
        .map(|e| e.id)
        .collect();
    assert_eq!(paged, in_days);
    assert_eq!(first.events[0].event.subject(), late.selector());
}

const HOOK: &str = "http://127.0.0.1:9/hook";

async fn claim(store: &dyn NotificationStore, owner: &str, now: i64) -> Option<EndpointState> {
    store
        .claim_endpoint(HOOK.into(), owner.into(), at(now), at(now + 8))
        .await
        .unwrap()
}

/// The pending events once at least `n` are there: on PostgreSQL, other
/// tests' transactions on the same server may hold the outbox back a moment.
async fn settled(
    store: &dyn NotificationStore,
    n: usize,
) -> Vec<keywarden_application::PendingEvent> {
    for _ in 0..100 {
        let pending = store.pending_events(HOOK.into(), 100).await.unwrap();
        if pending.len() >= n {
            return pending;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    panic!("fewer than {n} events pending after 5 s");
}

async fn pending_ids(store: &dyn NotificationStore) -> Vec<i64> {
    store
        .pending_events(HOOK.into(), 100)
        .await
        .unwrap()
        .iter()
        .map(|p| p.stored.id)
        .collect()
}

async fn an_endpoint_gets_the_events_recorded_after_it_registered(fixture: &dyn Fixture) {
    let repository = ready(fixture).await;
    let store = fixture.notifications();
    insert(repository.as_ref(), &token(1, "before", &["default"], 0).0).await;
    store
        .register_endpoints(vec![HOOK.into()], at(1))
        .await
        .unwrap();
    assert_eq!(pending_ids(store.as_ref()).await, Vec::<i64>::new());
    let (after, _) = token(2, "after", &["default"], 2);
    insert(repository.as_ref(), &after).await;
    repository
        .update_expiry(
            TokenRef::Selector(after.selector()),
            at(99),
            &Actor::named("t"),
            at(3),
        )
        .await
        .unwrap();
    // On PostgreSQL, other tests' transactions on the same server may hold
    // the outbox back for a moment (it waits for older transactions).
    // PostgreSQL registers at the oldest transaction still running on the
    // server, so an event committed just before may be included (never one
    // after missed): compare what follows "before".
    let after_registering = |pending: &[keywarden_application::PendingEvent]| {
        pending
            .iter()
            .filter(|p| p.stored.event.subject() == after.selector())
            .cloned()
            .collect::<Vec<_>>()
    };
    let mut pending = Vec::new();
    for _ in 0..100 {
        pending = after_registering(&store.pending_events(HOOK.into(), 100).await.unwrap());
        if pending.len() == 2 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let kinds: Vec<_> = pending.iter().map(|p| p.stored.event.event_type).collect();
    assert_eq!(
        kinds,
        [EventType::ApiTokenCreated, EventType::ApiTokenUpdated]
    );
    assert!(pending[0].position < pending[1].position);
    // The limit holds (fewer only while another test's transaction runs).
    assert!(store.pending_events(HOOK.into(), 1).await.unwrap().len() <= 1);
    // Registering again keeps the cursor.
    store
        .register_endpoints(vec![HOOK.into()], at(4))
        .await
        .unwrap();
    assert!(claim(store.as_ref(), "a", 5).await.is_some());
    let delivered = Delivered {
        through: pending[0].position,
        sent: 1,
        given_up: 0,
        error: None,
    };
    assert!(store
        .record_delivered(HOOK.into(), "a".into(), delivered, at(5))
        .await
        .unwrap());
    let left: Vec<i64> = settled(store.as_ref(), 1)
        .await
        .iter()
        .map(|p| p.stored.id)
        .collect();
    assert_eq!(left, [pending[1].stored.id]);
    let status = &store
        .endpoint_statuses(vec![(HOOK.into(), None), ("http://unknown/".into(), None)])
        .await
        .unwrap();
    assert_eq!(status.len(), 1, "unregistered endpoints are absent");
    assert_eq!((status[0].backlog, status[0].sent), (1, 1));
    let only_created = store
        .endpoint_statuses(vec![(HOOK.into(), Some(vec!["api-token-created".into()]))])
        .await
        .unwrap();
    assert_eq!(
        only_created[0].backlog, 0,
        "the backlog counts the types taken"
    );
}

async fn one_instance_holds_an_endpoint_while_its_lease_runs(fixture: &dyn Fixture) {
    ready(fixture).await;
    let store = fixture.notifications();
    assert_eq!(claim(store.as_ref(), "a", 0).await, None, "unregistered");
    store
        .register_endpoints(vec![HOOK.into()], at(0))
        .await
        .unwrap();
    assert!(claim(store.as_ref(), "a", 0).await.is_some());
    assert!(
        claim(store.as_ref(), "b", 1).await.is_none(),
        "a's lease runs to 8"
    );
    assert!(
        claim(store.as_ref(), "a", 2).await.is_some(),
        "renewed, to 10"
    );
    assert!(claim(store.as_ref(), "b", 9).await.is_none());
    assert!(
        claim(store.as_ref(), "b", 11).await.is_some(),
        "a's lease ran out"
    );
    let state = EndpointState {
        attempts: 1,
        next_attempt_at: None,
    };
    let lost = store
        .record_failure(HOOK.into(), "a".into(), state, "x".into(), at(11))
        .await
        .unwrap();
    assert!(!lost, "a no longer holds it: nothing recorded");
    store
        .release_endpoint(HOOK.into(), "b".into())
        .await
        .unwrap();
    assert!(
        claim(store.as_ref(), "a", 12).await.is_some(),
        "released: free at once"
    );
}

async fn failed_attempts_are_kept_until_a_delivery_clears_them(fixture: &dyn Fixture) {
    let repository = ready(fixture).await;
    let store = fixture.notifications();
    store
        .register_endpoints(vec![HOOK.into()], at(0))
        .await
        .unwrap();
    insert(repository.as_ref(), &token(1, "t", &["default"], 0).0).await;
    claim(store.as_ref(), "a", 0).await.unwrap();
    let failed = EndpointState {
        attempts: 3,
        next_attempt_at: Some(at(60)),
    };
    assert!(store
        .record_failure(
            HOOK.into(),
            "a".into(),
            failed,
            "answered HTTP 503".into(),
            at(1)
        )
        .await
        .unwrap());
    assert_eq!(
        claim(store.as_ref(), "a", 2).await,
        Some(failed),
        "kept across claims"
    );
    let status = store
        .endpoint_statuses(vec![(HOOK.into(), None)])
        .await
        .unwrap();
    assert_eq!(status[0].last_error.as_deref(), Some("answered HTTP 503"));
    assert_eq!(status[0].oldest_pending_at, Some(at(0)));
    assert_eq!(
        status[0].held_by.as_deref(),
        Some("a"),
        "the lease runs (to 2030)"
    );
    let pending = settled(store.as_ref(), 1).await;
    let given_up = Delivered {
        through: pending[0].position,
        sent: 0,
        given_up: 1,
        error: Some("gave up".into()),
    };
    assert!(store
        .record_delivered(HOOK.into(), "a".into(), given_up, at(3))
        .await
        .unwrap());
    assert_eq!(
        claim(store.as_ref(), "a", 4).await,
        Some(EndpointState {
            attempts: 0,
            next_attempt_at: None
        })
    );
    let status = store
        .endpoint_statuses(vec![(HOOK.into(), None)])
        .await
        .unwrap();
    assert_eq!((status[0].given_up, status[0].backlog), (1, 0));
    assert_eq!(status[0].last_error.as_deref(), Some("gave up"));
}

async fn expiry_notices_are_recorded_once_per_token_threshold_and_expiry(fixture: &dyn Fixture) {
    let repository = ready(fixture).await;
    let store = fixture.notifications();
    let (soon, _) = token(1, "soon", &["default"], 0);
    let soon = insert(repository.as_ref(), &soon.with_expiry(at(1000))).await;
    insert(
        repository.as_ref(),
        &token(2, "later", &["default"], 0).0.with_expiry(at(5000)),
    )
    .await;
    insert(repository.as_ref(), &token(3, "never", &["default"], 0).0).await;
    let candidates = store.expiry_candidates(at(2000)).await.unwrap();
    assert_eq!(candidates.len(), 1);
    assert_eq!(
        (candidates[0].selector, candidates[0].expires_at),
        (soon.selector(), at(1000))
    );
    assert!(candidates[0].noticed.is_empty());
    let notice = |labels: &[&str], event: Option<AuditEvent>| ExpiryNotice {
        selector: soon.selector(),
        expires_at: at(1000),
        labels: labels.iter().map(ToString::to_string).collect(),
        event,
    };
    let warning = AuditEvent::token_expiring(&soon, "1d", at(500));
    let written = store
        .record_expiry_notices(vec![notice(&["1d", "7d"], Some(warning.clone()))])
        .await
        .unwrap();
    assert_eq!(written, 1);
    let again = store
        .record_expiry_notices(vec![notice(&["1d", "7d"], Some(warning))])
        .await
        .unwrap();
    assert_eq!(again, 0, "recorded once, however often asked");
    let mut noticed = store.expiry_candidates(at(2000)).await.unwrap()[0]
        .noticed
        .clone();
    noticed.sort();
    assert_eq!(noticed, ["1d", "7d"]);
    let expiring = repository
        .events(Some(EventType::ApiTokenExpiring), 10)
        .await
        .unwrap();
    assert_eq!(expiring.len(), 1);
    assert_eq!(expiring[0].event.threshold.as_deref(), Some("1d"));
    assert_eq!(expiring[0].event.created_by, "system");
    let expired = AuditEvent::token_expired(&soon, at(1000));
    assert_eq!(
        store
            .record_expiry_notices(vec![notice(&["expired"], Some(expired))])
            .await
            .unwrap(),
        1
    );
    assert!(
        store.expiry_candidates(at(2000)).await.unwrap().is_empty(),
        "done with it"
    );
    // A new expiry arms the notices again; one for the old expiry records nothing.
    repository
        .update_expiry(
            TokenRef::Selector(soon.selector()),
            at(1500),
            &Actor::named("t"),
            at(600),
        )
        .await
        .unwrap();
    let rearmed = store.expiry_candidates(at(2000)).await.unwrap();
    assert_eq!(
        (rearmed[0].expires_at, rearmed[0].noticed.len()),
        (at(1500), 0)
    );
    let stale = AuditEvent::token_expiring(&soon, "7d", at(700));
    assert_eq!(
        store
            .record_expiry_notices(vec![notice(&["7d"], Some(stale))])
            .await
            .unwrap(),
        0
    );
}

async fn only_unused_unexpired_tokens_are_expired_as_unused(fixture: &dyn Fixture) {
    let repository = ready(fixture).await;
    let system = Actor::named("system");
    let idle = insert(repository.as_ref(), &token(1, "idle", &["default"], 0).0).await;
    let used = insert(repository.as_ref(), &token(2, "used", &["default"], 0).0).await;
    let gone = insert(
        repository.as_ref(),
        &token(3, "gone", &["default"], 0).0.with_expiry(at(50)),
    )
    .await;
    repository
        .record_seen(vec![(used.selector(), at(80))])
        .await
        .unwrap();
    let cutoff = at(60);
    let change = repository
        .expire_unused(idle.selector(), cutoff, &system, at(100))
        .await
        .unwrap()
        .expect("idle since creation at 0");
    assert_eq!(change.after.expires_at(), Some(at(100)));
    for (token, why) in [
        (&used, "seen at 80"),
        (&gone, "already expired"),
        (&idle, "expired just now"),
    ] {
        let outcome = repository
            .expire_unused(token.selector(), cutoff, &system, at(100))
            .await
            .unwrap();
        assert!(outcome.is_none(), "{why}");
    }
    let updates = repository
        .events(Some(EventType::ApiTokenUpdated), 10)
        .await
        .unwrap();
    assert_eq!(updates.len(), 1, "one event, for the one change");
    assert_eq!(updates[0].event.created_by, "system");
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
                legacy_tokens_are_changed_by_their_full_credential,
                a_failing_event_write_rolls_the_change_back,
                credentials_are_those_of_the_stored_tokens,
                deletes_remove_the_token_and_record_it,
                last_seen_keeps_the_latest_instant,
                events_filter_and_page,
                catalog_sync_keeps_what_tokens_use,
                corrupt_rows_are_reported_not_trusted,
                concurrent_writers_all_succeed,
                rotation_stores_the_successor_and_shortens_the_old_token,
                a_failed_rotation_leaves_no_trace,
                concurrent_rotations_make_one_successor,
                search_pages_through_every_event_once,
                an_endpoint_gets_the_events_recorded_after_it_registered,
                one_instance_holds_an_endpoint_while_its_lease_runs,
                failed_attempts_are_kept_until_a_delivery_clears_them,
                expiry_notices_are_recorded_once_per_token_threshold_and_expiry,
                only_unused_unexpired_tokens_are_expired_as_unused,
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

        fn notifications(&self) -> Arc<dyn keywarden_application::NotificationStore> {
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

        fn notifications(&self) -> Arc<dyn keywarden_application::NotificationStore> {
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

/// PostgreSQL assigns ids (and transaction ids) before commit, not in commit
/// order: an event committed while an older transaction still runs must not
/// be delivered before that transaction's events, or the cursor would step
/// past them for good.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_outbox_waits_for_older_transactions_still_running() {
    use diesel::connection::SimpleConnection;
    use diesel::Connection;
    use keywarden_persistence_adapter::testing::TestDatabase;
    use keywarden_persistence_adapter::{PostgresOptions, PostgresRepository};

    let Some(database) = TestDatabase::fresh().await else {
        return;
    };
    let repository = Arc::new(
        PostgresRepository::open(database.url().to_string(), PostgresOptions::default())
            .await
            .unwrap(),
    );
    repository
        .sync_catalog(projects(), environments(), true)
        .await
        .unwrap();
    let store: Arc<dyn NotificationStore> = repository.clone();
    store
        .register_endpoints(vec![HOOK.into()], at(0))
        .await
        .unwrap();
    let (slow, _) = token(1, "slow", &["default"], 0);
    let (begun, begun_rx) = std::sync::mpsc::channel();
    let (finish, finish_rx) = std::sync::mpsc::channel::<()>();
    let url = database.url().to_string();
    let selector = slow.selector().to_string();
    let older = std::thread::spawn(move || {
        let mut conn = diesel::PgConnection::establish(&url).unwrap();
        conn.batch_execute(&format!(
            "BEGIN; INSERT INTO events (event_type, created_by, created_at, selector, format) \
             VALUES ('api-token-deleted', 'older', now(), '{selector}', 1);"
        ))
        .unwrap();
        begun.send(()).unwrap();
        finish_rx.recv().unwrap();
        conn.batch_execute("COMMIT;").unwrap();
    });
    begun_rx.recv().unwrap();
    let (quick, _) = token(2, "quick", &["default"], 0);
    insert(repository.as_ref(), &quick).await;
    for _ in 0..10 {
        assert_eq!(
            pending_ids(store.as_ref()).await,
            Vec::<i64>::new(),
            "held back while the older transaction runs"
        );
        tokio::time::sleep(std::time::Duration::from_millis(30)).await;
    }
    finish.send(()).unwrap();
    older.join().unwrap();
    let pending = settled(store.as_ref(), 2).await;
    let creators: Vec<_> = pending
        .iter()
        .map(|p| p.stored.event.created_by.as_str())
        .collect();
    assert_eq!(creators, ["older", "tester"], "in transaction order");
    assert!(
        pending[0].stored.id < pending[1].stored.id,
        "committed last with the lower id: a cursor over ids alone, having passed the \
         quick one, would never have sent it"
    );
}
