//! Use-case tests over mocked ports: which port calls each use case makes, with
//! which arguments, and which error each failure becomes.

use std::sync::Arc;

use chrono::{DateTime, Duration, TimeZone, Utc};
use keywarden_domain::{
    fixtures, ApiToken, Credential, Environment, EnvironmentName, EventType, Project, ProjectId,
    Projects, TokenRef, TokenType,
};
use mockall::predicate::{always, eq};

use super::*;
use crate::{
    ExpiryChange, MockApiTokenRepository, MockClock, MockSecretGenerator, RepositoryError,
    StoredCredential,
};

fn now() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2030, 1, 1, 12, 0, 0).unwrap()
}

fn settings() -> ServiceSettings {
    ServiceSettings {
        token_limit: 10,
        projects: vec![project("default"), project("other")],
        environments: vec![environment("development"), environment("production")],
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

fn token(
    seed: u8,
    token_type: TokenType,
    expires_at: Option<DateTime<Utc>>,
) -> (ApiToken, Credential) {
    let (token, credential) =
        fixtures::token(seed, &format!("token-{seed}"), token_type, &["*"], now());
    (fixtures::stored(&token, 0, expires_at), credential)
}

fn clock_at(at: DateTime<Utc>) -> Arc<MockClock> {
    let mut clock = MockClock::new();
    clock.expect_now().return_const(at);
    Arc::new(clock)
}

/// Start-up mints an admin credential in case the database is empty, so every
/// service needs a generator even when the test creates nothing.
fn no_secrets() -> Arc<MockSecretGenerator> {
    generator(200)
}

/// A repository that knows only the declared projects and environments.
fn catalog_only() -> MockApiTokenRepository {
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
fn repository(
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

async fn service(
    repository: Arc<MockApiTokenRepository>,
    clock: Arc<MockClock>,
    secrets: Arc<MockSecretGenerator>,
) -> ApiTokenService {
    let (service, bootstrap) =
        ApiTokenService::start(repository, clock, secrets, settings(), Vec::new())
            .await
            .unwrap();
    assert!(matches!(bootstrap, Bootstrap::AlreadyInitialised));
    service
}

// ---- authentication -------------------------------------------------------

#[tokio::test]
async fn admin_tokens_authenticate_without_touching_storage() {
    let (admin, credential) = token(1, TokenType::Admin, None);
    let service = service(
        repository(vec![admin], |_| {}),
        clock_at(now()),
        no_secrets(),
    )
    .await;
    let principal = service
        .authenticate_admin(credential.expose_secret())
        .unwrap();
    assert_eq!(principal.name(), "token-1");
    assert_eq!(principal.token_type(), TokenType::Admin);
}

#[tokio::test]
async fn other_token_types_are_forbidden() {
    let tokens: Vec<_> = [TokenType::Client, TokenType::Backend, TokenType::Frontend]
        .into_iter()
        .enumerate()
        .map(|(i, t)| token(i as u8 + 1, t, None))
        .collect();
    let stored = tokens.iter().map(|(t, _)| t.clone()).collect();
    let service = service(repository(stored, |_| {}), clock_at(now()), no_secrets()).await;
    for (_, credential) in &tokens {
        assert!(matches!(
            service.authenticate_admin(credential.expose_secret()),
            Err(AppError::Forbidden)
        ));
    }
}

#[tokio::test]
async fn unknown_and_expired_credentials_are_unauthorized() {
    let (expired, expired_credential) = token(1, TokenType::Admin, Some(now()));
    let service = service(
        repository(vec![expired], |_| {}),
        clock_at(now()),
        no_secrets(),
    )
    .await;
    for presented in [
        expired_credential.expose_secret(),
        "*:*.unknown",
        "",
        "Basic abc",
    ] {
        assert!(
            matches!(
                service.authenticate_admin(presented),
                Err(AppError::Unauthorized)
            ),
            "{presented:?}"
        );
    }
}

#[tokio::test]
async fn successful_authentication_is_flushed_as_last_seen() {
    let (admin, credential) = token(1, TokenType::Admin, None);
    let selector = admin.selector();
    let repository = repository(vec![admin], |repository| {
        repository
            .expect_record_seen()
            .with(eq(vec![(selector, now())]))
            .times(1)
            .returning(|_| Ok(()));
    });
    let service = service(repository, clock_at(now()), no_secrets()).await;
    service
        .authenticate_admin(credential.expose_secret())
        .unwrap();
    service
        .authenticate_admin(credential.expose_secret())
        .unwrap();
    assert_eq!(service.flush_seen().await.unwrap(), 1);
    assert_eq!(
        service.flush_seen().await.unwrap(),
        0,
        "nothing left to write"
    );
}

#[tokio::test]
async fn a_failed_seen_flush_is_retried_next_time() {
    let (admin, credential) = token(1, TokenType::Admin, None);
    let repository = repository(vec![admin], |repository| {
        let mut calls = 0;
        repository
            .expect_record_seen()
            .times(2)
            .returning(move |_| {
                calls += 1;
                if calls == 1 {
                    Err(RepositoryError::Unavailable("down".into()))
                } else {
                    Ok(())
                }
            });
    });
    let service = service(repository, clock_at(now()), no_secrets()).await;
    service
        .authenticate_admin(credential.expose_secret())
        .unwrap();
    assert!(matches!(
        service.flush_seen().await,
        Err(AppError::Unavailable(_))
    ));
    assert_eq!(service.flush_seen().await.unwrap(), 1);
}

// ---- update expiry --------------------------------------------------------

#[tokio::test]
async fn update_expiry_writes_through_the_repository_and_takes_effect_at_once() {
    let (admin, admin_credential) = token(1, TokenType::Admin, None);
    let (target, target_credential) = token(2, TokenType::Admin, None);
    let past = now() - Duration::seconds(1);
    let before = fixtures::stored(&target, 1, None);
    let after = fixtures::stored(&target, 2, Some(past));
    let selector = target.selector();
    let repository = repository(vec![admin, before.clone()], move |repository| {
        repository
            .expect_update_expiry()
            .with(
                eq(TokenRef::Selector(selector)),
                eq(past),
                eq("token-1"),
                eq(now()),
            )
            .times(1)
            .returning(move |_, _, _, _| {
                Ok(Some(ExpiryChange {
                    before: before.clone(),
                    after: after.clone(),
                }))
            });
    });
    let service = service(repository, clock_at(now()), no_secrets()).await;
    let actor = service
        .authenticate_admin(admin_credential.expose_secret())
        .unwrap();
    assert!(service
        .authenticate_admin(target_credential.expose_secret())
        .is_ok());

    service
        .update_expiry(&actor, TokenRef::Selector(selector), past)
        .await
        .unwrap();

    assert!(matches!(
        service.authenticate_admin(target_credential.expose_secret()),
        Err(AppError::Unauthorized)
    ));
}

#[tokio::test]
async fn update_expiry_of_an_unknown_token_succeeds_and_changes_nothing() {
    let (admin, credential) = token(1, TokenType::Admin, None);
    let repository = repository(vec![admin], |repository| {
        repository
            .expect_update_expiry()
            .times(1)
            .returning(|_, _, _, _| Ok(None));
    });
    let service = service(repository, clock_at(now()), no_secrets()).await;
    let actor = Principal::operator("cli");
    service
        .update_expiry(&actor, TokenRef::parse("nobody"), now())
        .await
        .unwrap();
    assert!(service
        .authenticate_admin(credential.expose_secret())
        .is_ok());
}

#[tokio::test]
async fn storage_failures_are_reported_as_such() {
    let repository = repository(Vec::new(), |repository| {
        repository
            .expect_update_expiry()
            .returning(|_, _, _, _| Err(RepositoryError::Unavailable("pool timed out".into())));
        repository
            .expect_delete()
            .returning(|_, _, _| Err(RepositoryError::Corrupt("bad row".into())));
    });
    let service = service(repository, clock_at(now()), no_secrets()).await;
    let actor = Principal::operator("cli");
    let target = TokenRef::parse("x");
    assert!(matches!(
        service.update_expiry(&actor, target, now()).await,
        Err(AppError::Unavailable(_))
    ));
    assert!(matches!(
        service.delete_token(&actor, target).await,
        Err(AppError::Internal(_))
    ));
}

// ---- create ---------------------------------------------------------------

fn create_request(token_type: &str) -> CreateToken {
    CreateToken {
        token_name: "sdk".to_string(),
        token_type: token_type.to_string(),
        ..CreateToken::default()
    }
}

fn generator(seed: u8) -> Arc<MockSecretGenerator> {
    let mut secrets = MockSecretGenerator::new();
    secrets
        .expect_generate()
        .returning(move || Ok(fixtures::material(seed)));
    Arc::new(secrets)
}

#[tokio::test]
async fn create_issues_a_credential_stores_it_with_its_event_and_lets_it_authenticate() {
    let repository = repository(Vec::new(), |repository| {
        repository
            .expect_insert()
            .withf(|token, event, limit| {
                event.event_type == EventType::ApiTokenCreated
                    && event.created_by == "alice"
                    && event.data.as_ref().map(|d| d.selector) == Some(token.selector())
                    && *limit == 10
            })
            .times(1)
            .returning(|token, _, _| Ok(fixtures::stored(&token, 1, token.expires_at())));
    });
    let service = service(repository, clock_at(now()), generator(9)).await;
    let request = CreateToken {
        environment: Some("production".to_string()),
        projects: Some(vec!["other".into(), "default".into(), "other".into()]),
        ..create_request("Backend")
    };
    let (token, credential) = service
        .create_token(&Principal::operator("alice"), request)
        .await
        .unwrap();
    assert_eq!(token.token_type(), TokenType::Backend);
    assert_eq!(token.projects().ids(), vec!["default", "other"]);
    assert!(credential.expose_secret().starts_with("[]:production.v2_"));
    assert!(matches!(
        service.authenticate_admin(credential.expose_secret()),
        Err(AppError::Forbidden)
    ));
}

#[tokio::test]
async fn create_defaults_and_the_singular_project() {
    let repository = repository(Vec::new(), |repository| {
        repository
            .expect_insert()
            .returning(|token, _, _| Ok(token));
    });
    let service = service(repository, clock_at(now()), generator(3)).await;
    let actor = Principal::operator("cli");
    let (token, _) = service
        .create_token(&actor, create_request("client"))
        .await
        .unwrap();
    assert_eq!(token.projects(), &Projects::All);
    assert_eq!(token.environment().as_str(), "development");

    let request = CreateToken {
        project: Some("default".into()),
        ..create_request("frontend")
    };
    let (token, _) = service.create_token(&actor, request).await.unwrap();
    assert_eq!(token.projects().ids(), vec!["default"]);

    let request = CreateToken {
        projects: Some(vec!["default".into(), "*".into()]),
        ..create_request("frontend")
    };
    let (token, _) = service.create_token(&actor, request).await.unwrap();
    assert_eq!(token.projects(), &Projects::All);
}

#[tokio::test]
async fn create_rejects_bad_requests_naming_the_field() {
    let service = service(
        repository(Vec::new(), |_| {}),
        clock_at(now()),
        no_secrets(),
    )
    .await;
    let actor = Principal::operator("cli");
    let cases = [
        (create_request("admin"), "type", "Admin tokens"),
        (create_request("root"), "type", "\"root\""),
        (
            CreateToken {
                token_name: " ".into(),
                ..create_request("client")
            },
            "tokenName",
            "tokenName",
        ),
        (
            CreateToken {
                environment: Some("staging".into()),
                ..create_request("client")
            },
            "environment",
            "Environment=staging does not exist",
        ),
        (
            CreateToken {
                environment: Some("*".into()),
                ..create_request("backend")
            },
            "environment",
            "backend tokens need a concrete environment",
        ),
        (
            CreateToken {
                projects: Some(vec!["nope".into()]),
                ..create_request("client")
            },
            "projects",
            "Project=nope does not exist",
        ),
        (
            CreateToken {
                project: Some("nope".into()),
                ..create_request("client")
            },
            "project",
            "Project=nope does not exist",
        ),
        (
            CreateToken {
                projects: Some(Vec::new()),
                ..create_request("client")
            },
            "projects",
            "at least one project",
        ),
        (
            CreateToken {
                projects: Some(vec!["default".into()]),
                project: Some("default".into()),
                ..create_request("client")
            },
            "projects",
            "not both",
        ),
    ];
    for (request, expected_field, expected_message) in cases {
        match service.create_token(&actor, request.clone()).await {
            Err(AppError::Validation { message, field }) => {
                assert_eq!(field, Some(expected_field), "{request:?}");
                assert!(
                    message.contains(expected_message),
                    "{message:?} for {request:?}"
                );
            }
            other => panic!("{request:?} gave {other:?}"),
        }
    }
}

#[tokio::test]
async fn create_beyond_the_limit_is_refused() {
    let repository = repository(Vec::new(), |repository| {
        repository
            .expect_insert()
            .returning(|_, _, limit| Err(RepositoryError::LimitExceeded(limit)));
    });
    let service = service(repository, clock_at(now()), generator(4)).await;
    let result = service
        .create_token(&Principal::operator("cli"), create_request("client"))
        .await;
    assert!(matches!(result, Err(AppError::LimitExceeded(message)) if message.contains("10")));
}

// ---- delete ---------------------------------------------------------------

#[tokio::test]
async fn delete_revokes_at_once() {
    let (victim, credential) = token(7, TokenType::Admin, None);
    let deleted = victim.clone();
    let repository = repository(vec![victim], move |repository| {
        repository
            .expect_delete()
            .with(always(), eq("cli"), eq(now()))
            .times(1)
            .returning(move |_, _, _| Ok(Some(deleted.clone())));
    });
    let service = service(repository, clock_at(now()), no_secrets()).await;
    assert!(service
        .authenticate_admin(credential.expose_secret())
        .is_ok());
    service
        .delete_token(
            &Principal::operator("cli"),
            TokenRef::parse(credential.expose_secret()),
        )
        .await
        .unwrap();
    assert!(matches!(
        service.authenticate_admin(credential.expose_secret()),
        Err(AppError::Unauthorized)
    ));
}

// ---- events ---------------------------------------------------------------

#[tokio::test]
async fn event_limits_default_and_are_capped() {
    let repository = repository(Vec::new(), |repository| {
        repository
            .expect_events()
            .with(eq(None), eq(100))
            .times(1)
            .returning(|_, _| Ok(Vec::new()));
        repository
            .expect_events()
            .with(eq(Some(EventType::ApiTokenCreated)), eq(1000))
            .times(1)
            .returning(|_, _| Ok(Vec::new()));
    });
    let service = service(repository, clock_at(now()), no_secrets()).await;
    service.events(EventQuery::default()).await.unwrap();
    let unknown = EventQuery {
        event_type: Some("feature-created\u{0}".into()),
        limit: None,
    };
    assert!(
        service.events(unknown).await.unwrap().is_empty(),
        "never queried"
    );
    service
        .events(EventQuery {
            event_type: Some("api-token-created".into()),
            limit: Some(5000),
        })
        .await
        .unwrap();
}

// ---- bootstrap ------------------------------------------------------------

fn empty_database(expect: impl Fn(&[ApiToken]) + Send + 'static) -> MockApiTokenRepository {
    let mut repository = catalog_only();
    repository
        .expect_insert_initial()
        .withf(move |tokens, actor, _| {
            expect(tokens);
            actor == "system"
        })
        .times(1)
        .returning(|_, _, _| Ok(true));
    repository.expect_credentials().returning(|| Ok(Vec::new()));
    repository
}

#[tokio::test]
async fn first_start_without_init_tokens_generates_one_admin_credential() {
    let repository = empty_database(|tokens| {
        assert_eq!(tokens.len(), 1);
        assert_eq!(tokens[0].token_type(), TokenType::Admin);
        assert_eq!(tokens[0].name().as_str(), "admin");
    });
    let (_, bootstrap) = ApiTokenService::start(
        Arc::new(repository),
        clock_at(now()),
        generator(5),
        settings(),
        Vec::new(),
    )
    .await
    .unwrap();
    match bootstrap {
        Bootstrap::Generated(credential) => {
            assert!(credential.expose_secret().starts_with("*:*.v2_"))
        }
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn init_tokens_are_inserted_with_their_declared_scope() {
    let repository = empty_database(|tokens| {
        assert_eq!(tokens.len(), 2);
        assert_eq!(tokens[1].token_type(), TokenType::Client);
        assert_eq!(tokens[1].environment().as_str(), "production");
        assert_eq!(tokens[1].projects().ids(), vec!["default"]);
    });
    let init = vec![
        InitToken {
            token_type: TokenType::Admin,
            credential: Credential::new("*:*.operator-admin"),
        },
        InitToken {
            token_type: TokenType::Client,
            credential: Credential::new("default:production.operator-client"),
        },
    ];
    let (_, bootstrap) = ApiTokenService::start(
        Arc::new(repository),
        clock_at(now()),
        no_secrets(),
        settings(),
        init,
    )
    .await
    .unwrap();
    assert!(matches!(bootstrap, Bootstrap::Inserted(2)));
}

#[tokio::test]
async fn init_tokens_that_break_the_rules_stop_start_up() {
    for (token_type, text, expected) in [
        (TokenType::Admin, "*:development.x", "admin tokens must"),
        (TokenType::Backend, "*:staging.x", "Environment=staging"),
        (TokenType::Backend, "nope:development.x", "Project=nope"),
        (TokenType::Frontend, "*:*.x", "need a concrete environment"),
        (TokenType::Backend, "not-a-credential", "must look like"),
    ] {
        let repository = catalog_only();
        let init = vec![InitToken {
            token_type,
            credential: Credential::new(text),
        }];
        let result = ApiTokenService::start(
            Arc::new(repository),
            clock_at(now()),
            no_secrets(),
            settings(),
            init,
        )
        .await;
        match result {
            Err(AppError::Validation { message, .. }) => {
                assert!(message.contains(expected), "{message:?} for {text}")
            }
            Err(other) => panic!("{text}: {other:?}"),
            Ok(_) => panic!("{text} was accepted"),
        }
    }
}

// ---- changes made by other instances ---------------------------------------

#[tokio::test]
async fn external_changes_are_fetched_and_applied() {
    let (expiring, expiring_credential) = token(1, TokenType::Admin, None);
    let (deleted, deleted_credential) = token(2, TokenType::Admin, None);
    let (created, created_credential) = token(3, TokenType::Admin, None);
    let stored = vec![
        fixtures::stored(&expiring, 1, None),
        fixtures::stored(&deleted, 1, None),
    ];
    let expired_now = fixtures::stored(&expiring, 2, Some(now() - Duration::seconds(1)));
    let created_elsewhere = fixtures::stored(&created, 1, None);
    let (a, b, c) = (expiring.selector(), deleted.selector(), created.selector());
    let repository = repository(stored, move |repository| {
        repository
            .expect_find_many()
            .withf(move |selectors| selectors == &vec![a, b, c])
            .times(1)
            .returning(move |_| Ok(vec![expired_now.clone(), created_elsewhere.clone()]));
    });
    let service = service(repository, clock_at(now()), no_secrets()).await;
    assert!(service
        .authenticate_admin(deleted_credential.expose_secret())
        .is_ok());
    assert!(service
        .authenticate_admin(created_credential.expose_secret())
        .is_err());

    service
        .apply_external(ExternalChange::Tokens(vec![a, b, c]))
        .await
        .unwrap();

    for (credential, usable) in [
        (&expiring_credential, false),
        (&deleted_credential, false),
        (&created_credential, true),
    ] {
        assert_eq!(
            service
                .authenticate_admin(credential.expose_secret())
                .is_ok(),
            usable
        );
    }
}

#[tokio::test]
async fn an_unknown_external_change_reloads_everything() {
    let (admin, credential) = token(1, TokenType::Admin, None);
    let mut calls = 0;
    let reloaded = fixtures::stored(&admin, 1, None);
    let mut repository = catalog_only();
    repository
        .expect_insert_initial()
        .returning(|_, _, _| Ok(false));
    repository.expect_credentials().times(2).returning(move || {
        calls += 1;
        Ok(if calls == 1 {
            Vec::new()
        } else {
            vec![StoredCredential::from(&reloaded)]
        })
    });
    let service = service(Arc::new(repository), clock_at(now()), no_secrets()).await;
    assert!(service
        .authenticate_admin(credential.expose_secret())
        .is_err());
    service
        .apply_external(ExternalChange::Unknown)
        .await
        .unwrap();
    assert!(service
        .authenticate_admin(credential.expose_secret())
        .is_ok());
}

// ---- the operator (command line) --------------------------------------------

#[tokio::test]
async fn operators_may_create_admin_tokens_which_default_to_star_star() {
    let repository = repository(Vec::new(), |repository| {
        repository
            .expect_insert()
            .returning(|token, _, _| Ok(token));
    });
    let service = service(repository, clock_at(now()), generator(6)).await;
    let operator = Principal::operator("cli");
    let (token, credential) = service
        .create_operator_token(&operator, create_request("admin"))
        .await
        .unwrap();
    assert_eq!(token.token_type(), TokenType::Admin);
    assert!(credential.expose_secret().starts_with("*:*.v2_"));
    let narrowed = CreateToken {
        environment: Some("development".into()),
        ..create_request("admin")
    };
    assert!(matches!(
        service.create_operator_token(&operator, narrowed).await,
        Err(AppError::Validation { .. })
    ));
    // The same request over the API is refused.
    assert!(matches!(
        service
            .create_token(&operator, create_request("admin"))
            .await,
        Err(AppError::Validation {
            field: Some("type"),
            ..
        })
    ));
}

#[test]
fn init_tokens_can_be_checked_without_storage() {
    let good = [InitToken {
        token_type: TokenType::Backend,
        credential: Credential::new("default:production.x"),
    }];
    assert!(ApiTokenService::check_init_tokens(&settings(), &good).is_ok());
    let bad = [InitToken {
        token_type: TokenType::Admin,
        credential: Credential::new("default:*.x"),
    }];
    assert!(ApiTokenService::check_init_tokens(&settings(), &bad).is_err());
}
