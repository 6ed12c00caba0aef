//! What the use-case tests share: fixed time, declared reference data, tokens,
//! and mocked ports that accept start-up.

use std::sync::Arc;

use chrono::{DateTime, TimeZone, Utc};
use keywarden_domain::{
    fixtures, ApiToken, Credential, Environment, EnvironmentName, Project, ProjectId, TokenType,
};

use crate::{
    start, Adapters, Bootstrap, CreateToken, MockApiTokenRepository, MockClock,
    MockSecretGenerator, ServiceSettings, Started, StoredCredential,
};

pub(crate) fn now() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2030, 1, 1, 12, 0, 0).unwrap()
}

pub(crate) fn settings() -> ServiceSettings {
    ServiceSettings {
        token_limit: 10,
        projects: vec![project("default"), project("other")],
        environments: vec![environment("development"), environment("production")],
        lifetime: keywarden_domain::LifetimePolicy::default(),
    }
}

fn project(id: &str) -> Project {
    Project {
        id: ProjectId::parse(id).unwrap(),
        name: id.to_string(),
        description: None,
    }
}

fn environment(name: &str) -> Environment {
    Environment {
        name: EnvironmentName::parse(name).unwrap(),
        kind: name.to_string(),
        sort_order: 1,
        enabled: true,
    }
}

pub(crate) fn token(
    seed: u8,
    token_type: TokenType,
    expires_at: Option<DateTime<Utc>>,
) -> (ApiToken, Credential) {
    let (token, credential) =
        fixtures::token(seed, &format!("token-{seed}"), token_type, &["*"], now());
    (fixtures::stored(&token, 0, expires_at), credential)
}

pub(crate) fn clock_at(at: DateTime<Utc>) -> Arc<MockClock> {
    let mut clock = MockClock::new();
    clock.expect_now().return_const(at);
    Arc::new(clock)
}

pub(crate) fn generator(seed: u8) -> Arc<MockSecretGenerator> {
    let mut secrets = MockSecretGenerator::new();
    secrets
        .expect_generate()
        .returning(move || Ok(fixtures::material(seed)));
    Arc::new(secrets)
}

/// Start-up mints an admin credential in case the database is empty, so every
/// service needs a generator even when the test creates nothing.
pub(crate) fn no_secrets() -> Arc<MockSecretGenerator> {
    generator(200)
}

/// A repository that knows only the declared projects and environments.
pub(crate) fn catalog_only() -> MockApiTokenRepository {
    let mut repository = MockApiTokenRepository::new();
    repository.expect_sync_catalog().returning(|_, _, _| Ok(()));
    repository
        .expect_projects()
        .returning(|| Ok(settings().projects));
    repository
        .expect_environments()
        .returning(|| Ok(settings().environments));
    repository
}

/// A repository that accepts start-up (catalog sync, an already-initialised
/// database) and holds `stored`. `extra` adds the expectations of one test.
pub(crate) fn repository(
    stored: Vec<ApiToken>,
    extra: impl FnOnce(&mut MockApiTokenRepository),
) -> Arc<MockApiTokenRepository> {
    let mut repository = catalog_only();
    repository
        .expect_insert_initial()
        .returning(|_, _, _| Ok(false));
    let credentials: Vec<StoredCredential> = stored.iter().map(StoredCredential::from).collect();
    repository
        .expect_credentials()
        .returning(move || Ok(credentials.clone()));
    repository
        .expect_list()
        .returning(move || Ok(stored.clone()));
    extra(&mut repository);
    Arc::new(repository)
}

pub(crate) fn adapters(
    repository: Arc<MockApiTokenRepository>,
    clock: Arc<MockClock>,
    secrets: Arc<MockSecretGenerator>,
) -> Adapters {
    Adapters {
        repository,
        clock,
        secrets,
    }
}

/// The use cases of a started server over an already-initialised database.
pub(crate) async fn started(
    repository: Arc<MockApiTokenRepository>,
    clock: Arc<MockClock>,
    secrets: Arc<MockSecretGenerator>,
) -> Started {
    let started = start(adapters(repository, clock, secrets), settings(), Vec::new())
        .await
        .unwrap();
    assert!(matches!(started.bootstrap, Bootstrap::AlreadyInitialised));
    started.credentials.refresh_view().await.unwrap();
    started
}

pub(crate) fn create_request(token_type: &str) -> CreateToken {
    CreateToken {
        token_name: "sdk".to_string(),
        token_type: token_type.to_string(),
        ..CreateToken::default()
    }
}
