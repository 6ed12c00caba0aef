//! Admin API use cases over mocked ports: which port calls each use case
//! makes, with which arguments, and which error each failure becomes.

use chrono::Duration;
use keywarden_domain::{fixtures, Actor, EventType, Projects, TokenRef, TokenType};
use mockall::predicate::{always, eq};

use crate::testing::{
    clock_at, create_request, generator, no_secrets, now, repository, started, token,
};
use crate::{AppError, CreateToken, EventQuery, ExpiryChange, Principal, RepositoryError};

// ---- update expiry --------------------------------------------------------

#[tokio::test]
async fn update_expiry_writes_through_the_repository_and_takes_effect_at_once() {
    let (admin, admin_credential) = token(1, TokenType::Admin, None);
    let (target, target_credential) = token(2, TokenType::Admin, None);
    let past = now() - Duration::seconds(1);
    let before = fixtures::stored(&target, 1, None);
    let after = fixtures::stored(&target, 2, Some(past));
    let selector = target.selector();
    // The audit trail names the acting token by identifier, not only by name.
    let actor = Actor::token("token-1", admin.selector());
    let repository = repository(vec![admin, before.clone()], move |repository| {
        repository
            .expect_update_expiry()
            .with(
                eq(TokenRef::Selector(selector)),
                eq(past),
                eq(actor),
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
    let app = started(repository, clock_at(now()), no_secrets()).await;
    let actor = app
        .usecases
        .authenticate_admin(admin_credential.expose_secret())
        .await
        .unwrap();
    assert!(app
        .usecases
        .authenticate_admin(target_credential.expose_secret())
        .await
        .is_ok());

    app.usecases
        .update_expiry(&actor, TokenRef::Selector(selector), past)
        .await
        .unwrap();

    assert!(matches!(
        app.usecases
            .authenticate_admin(target_credential.expose_secret())
            .await,
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
    let app = started(repository, clock_at(now()), no_secrets()).await;
    let actor = Principal::operator("cli");
    app.usecases
        .update_expiry(&actor, TokenRef::parse("nobody"), now())
        .await
        .unwrap();
    assert!(app
        .usecases
        .authenticate_admin(credential.expose_secret())
        .await
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
    let app = started(repository, clock_at(now()), no_secrets()).await;
    let actor = Principal::operator("cli");
    let target = TokenRef::parse("x");
    assert!(matches!(
        app.usecases.update_expiry(&actor, target, now()).await,
        Err(AppError::Unavailable(_))
    ));
    assert!(matches!(
        app.usecases.delete_token(&actor, target).await,
        Err(AppError::Internal(_))
    ));
}

// ---- create ---------------------------------------------------------------

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
    let app = started(repository, clock_at(now()), generator(9)).await;
    let request = CreateToken {
        environment: Some("production".to_string()),
        projects: Some(vec!["other".into(), "default".into(), "other".into()]),
        ..create_request("Backend")
    };
    let (token, credential) = app
        .usecases
        .create_token(&Principal::operator("alice"), request)
        .await
        .unwrap();
    assert_eq!(token.token_type(), TokenType::Backend);
    assert_eq!(token.projects().ids(), vec!["default", "other"]);
    assert!(credential.expose_secret().starts_with("[]:production.v2_"));
    assert!(matches!(
        app.usecases
            .authenticate_admin(credential.expose_secret())
            .await,
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
    let app = started(repository, clock_at(now()), generator(3)).await;
    let actor = Principal::operator("cli");
    let (token, _) = app
        .usecases
        .create_token(&actor, create_request("client"))
        .await
        .unwrap();
    assert_eq!(token.projects(), &Projects::All);
    assert_eq!(token.environment().as_str(), "development");

    let request = CreateToken {
        project: Some("default".into()),
        ..create_request("frontend")
    };
    let (token, _) = app.usecases.create_token(&actor, request).await.unwrap();
    assert_eq!(token.projects().ids(), vec!["default"]);

    let request = CreateToken {
        projects: Some(vec!["default".into(), "*".into()]),
        ..create_request("frontend")
    };
    let (token, _) = app.usecases.create_token(&actor, request).await.unwrap();
    assert_eq!(token.projects(), &Projects::All);
}

#[tokio::test]
async fn create_rejects_bad_requests_naming_the_field() {
    let app = started(
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
        match app.usecases.create_token(&actor, request.clone()).await {
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
    let app = started(repository, clock_at(now()), generator(4)).await;
    let result = app
        .usecases
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
            .with(always(), eq(Actor::named("cli")), eq(now()))
            .times(1)
            .returning(move |_, _, _| Ok(Some(deleted.clone())));
    });
    let app = started(repository, clock_at(now()), no_secrets()).await;
    assert!(app
        .usecases
        .authenticate_admin(credential.expose_secret())
        .await
        .is_ok());
    app.usecases
        .delete_token(
            &Principal::operator("cli"),
            TokenRef::parse(credential.expose_secret()),
        )
        .await
        .unwrap();
    assert!(matches!(
        app.usecases
            .authenticate_admin(credential.expose_secret())
            .await,
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
    let app = started(repository, clock_at(now()), no_secrets()).await;
    app.usecases.events(EventQuery::default()).await.unwrap();
    let unknown = EventQuery {
        event_type: Some("feature-created\u{0}".into()),
        limit: None,
    };
    assert!(
        app.usecases.events(unknown).await.unwrap().is_empty(),
        "never queried"
    );
    app.usecases
        .events(EventQuery {
            event_type: Some("api-token-created".into()),
            limit: Some(5000),
        })
        .await
        .unwrap();
}
