//! Micro-benchmark of `ApiTokenUseCases::authenticate_admin`: the in-memory
//! credential view (a `HashMap` behind an `RwLock`) at 1k and 1M tokens, plus
//! the SHA-256, selector parsing and last-seen bookkeeping each call does.
//! The use cases are started over `MockApiTokenRepository` (feature `mocks`),
//! which is only called at start-up; the clock and the secret generator are
//! tiny real implementations so no mock bookkeeping lands in the measured path.
//!
//! Run: `cargo bench -p keywarden-application --features mocks --bench authenticate`
#![expect(
    clippy::unwrap_used,
    reason = "a benchmark set-up that fails should stop the run"
)]

use std::hint::black_box;
use std::sync::Arc;

use chrono::{DateTime, TimeZone, Utc};
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};
use keywarden_application::{
    start, Adapters, ApiTokenUseCases, AppError, BoxError, Clock, InitToken,
    MockApiTokenRepository, SecretGenerator, ServiceSettings, StoredCredential,
};
use keywarden_domain::{
    ApiToken, Credential, Environment, EnvironmentName, EnvironmentScope, NewToken, Project,
    ProjectId, Projects, SecretMaterial, TokenName, TokenType,
};

/// The legacy (non-v2) admin credential the HTTP benchmarks bootstrap with.
const LEGACY_ADMIN: &str = "*:*.bench-admin-secret";
/// How many distinct stored credentials the "backend" case rotates over, so
/// lookups at 1M tokens are not all served from one warm cache line.
const ROTATION: usize = 4096;

fn created_at() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 28, 10, 0, 0).unwrap()
}

struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> DateTime<Utc> {
        Utc::now()
    }
}

/// Start-up asks for material in case the database is empty; it is not.
struct FixedSecrets;

impl SecretGenerator for FixedSecrets {
    fn generate(&self) -> Result<SecretMaterial, BoxError> {
        Ok(material(u64::MAX))
    }
}

fn material(i: u64) -> SecretMaterial {
    let mut selector = [0u8; 16];
    selector[..8].copy_from_slice(&i.to_le_bytes());
    selector[8..].copy_from_slice(&i.wrapping_mul(0x9e37_79b9_7f4a_7c15).to_le_bytes());
    let mut random = [0u8; 32];
    random[..8].copy_from_slice(&i.to_be_bytes());
    SecretMaterial { selector, random }
}

fn development() -> EnvironmentScope {
    EnvironmentScope::Named(EnvironmentName::parse("development").unwrap())
}

fn token(i: u64, token_type: TokenType) -> (ApiToken, Credential) {
    let environment = if token_type.is_admin() {
        EnvironmentScope::All
    } else {
        development()
    };
    let (token, credential) = NewToken::new(
        TokenName::parse(&format!("bench-{i}")).unwrap(),
        token_type,
        Projects::All,
        environment,
        None,
    )
    .unwrap()
    .issue(&material(i), created_at());
    (token.with_revision(1), credential)
}

struct Fixture {
    service: Arc<dyn ApiTokenUseCases>,
    v2_admin: Credential,
    backend: Vec<Credential>,
}

/// A service whose view holds `size` tokens: one v2 admin, one legacy admin,
/// and backend tokens for the rest.
fn fixture(size: usize) -> Fixture {
    let (v2_admin_token, v2_admin) = token(0, TokenType::Admin);
    let legacy = NewToken::new(
        TokenName::parse("admin").unwrap(),
        TokenType::Admin,
        Projects::All,
        EnvironmentScope::All,
        None,
    )
    .unwrap()
    .with_credential(&Credential::new(LEGACY_ADMIN), created_at())
    .with_revision(1);
    let mut stored = Vec::with_capacity(size);
    stored.push(v2_admin_token);
    stored.push(legacy);
    let mut backend = Vec::with_capacity(ROTATION);
    let backend_count = size.saturating_sub(2);
    let stride = (backend_count / ROTATION).max(1);
    for i in 0..backend_count {
        let (token, credential) = token(i as u64 + 1, TokenType::Backend);
        stored.push(token);
        if i % stride == 0 && backend.len() < ROTATION {
            backend.push(credential);
        }
    }

    let settings = ServiceSettings {
        token_limit: u32::MAX,
        projects: vec![Project {
            id: ProjectId::parse("default").unwrap(),
            name: "Default".into(),
            description: None,
        }],
        environments: vec![Environment {
            name: EnvironmentName::parse("development").unwrap(),
            kind: "development".into(),
            sort_order: 100,
            enabled: true,
        }],
    };
    let mut repository = MockApiTokenRepository::new();
    repository.expect_sync_catalog().returning(|_, _, _| Ok(()));
    let projects = settings.projects.clone();
    repository
        .expect_projects()
        .returning(move || Ok(projects.clone()));
    let environments = settings.environments.clone();
    repository
        .expect_environments()
        .returning(move || Ok(environments.clone()));
    repository
        .expect_insert_initial()
        .returning(|_, _, _| Ok(false));
    let credentials: Vec<StoredCredential> = stored.iter().map(StoredCredential::from).collect();
    repository
        .expect_credentials()
        .times(1)
        .return_once(move || Ok(credentials));

    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let started = runtime
        .block_on(start(
            Adapters {
                repository: Arc::new(repository),
                clock: Arc::new(SystemClock),
                secrets: Arc::new(FixedSecrets),
            },
            settings,
            Vec::<InitToken>::new(),
        ))
        .unwrap();
    assert_eq!(started.credentials.credential_count(), size.max(2));
    Fixture {
        service: started.usecases,
        v2_admin,
        backend,
    }
}

fn authenticate(c: &mut Criterion) {
    let mut group = c.benchmark_group("authenticate_admin");
    for (label, size) in [("1k", 1_000), ("1M", 1_000_000)] {
        let fixture = fixture(size);
        let service = &fixture.service;

        let v2_admin = fixture.v2_admin.expose_secret().to_string();
        group.bench_function(BenchmarkId::new("v2 admin (200)", label), |b| {
            b.iter(|| service.authenticate_admin(black_box(&v2_admin)).unwrap());
        });
        group.bench_function(BenchmarkId::new("legacy admin (200)", label), |b| {
            b.iter(|| service.authenticate_admin(black_box(LEGACY_ADMIN)).unwrap());
        });

        let backend: Vec<String> = fixture
            .backend
            .iter()
            .map(|c| c.expose_secret().to_string())
            .collect();
        let mut next = 0usize;
        group.bench_function(BenchmarkId::new("backend, rotating (403)", label), |b| {
            b.iter(|| {
                next = (next + 1) % backend.len();
                let outcome = service.authenticate_admin(black_box(&backend[next]));
                assert!(matches!(outcome, Err(AppError::Forbidden)));
            });
        });

        // A well-formed v2 credential whose selector is not stored.
        let unknown = token(u64::MAX - 1, TokenType::Admin)
            .1
            .expose_secret()
            .to_string();
        group.bench_function(BenchmarkId::new("unknown v2 (401)", label), |b| {
            b.iter(|| {
                let outcome = service.authenticate_admin(black_box(&unknown));
                assert!(matches!(outcome, Err(AppError::Unauthorized)));
            });
        });
        group.bench_function(BenchmarkId::new("unknown legacy (401)", label), |b| {
            b.iter(|| {
                let outcome = service.authenticate_admin(black_box("*:*.wrong-secret"));
                assert!(matches!(outcome, Err(AppError::Unauthorized)));
            });
        });
    }
    group.finish();
}

criterion_group!(benches, authenticate);
criterion_main!(benches);
