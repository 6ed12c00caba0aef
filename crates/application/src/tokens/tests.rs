//! The operator's commands over mocked ports: admin tokens allowed, the same
//! rules otherwise, and no write a command does not need.

use std::sync::Arc;

use keywarden_domain::{Actor, TokenRef, TokenType};
use mockall::predicate::eq;

use crate::testing::{
    adapters, clock_at, create_request, generator, no_secrets, now, repository, settings, started,
    token,
};
use crate::{operator, AppError, CreateToken, MockApiTokenRepository, Principal};

#[tokio::test]
async fn operators_may_create_admin_tokens_which_default_to_star_star() {
    let repository = repository(Vec::new(), |repository| {
        repository
            .expect_insert()
            .returning(|token, _, _| Ok(token));
    });
    let commands = operator(
        adapters(Arc::clone(&repository), clock_at(now()), generator(6)),
        &settings(),
    );
    let operator = Principal::operator("cli");
    let (token, credential) = commands
        .create_token(&operator, create_request("admin"))
        .await
        .unwrap();
    assert_eq!(token.token_type(), TokenType::Admin);
    assert!(credential.expose_secret().starts_with("*:*.v2_"));
    let narrowed = CreateToken {
        environment: Some("development".into()),
        ..create_request("admin")
    };
    assert!(matches!(
        commands.create_token(&operator, narrowed).await,
        Err(AppError::Validation { .. })
    ));
    // The same request over the API is refused.
    let app = started(repository, clock_at(now()), generator(6)).await;
    assert!(matches!(
        app.usecases
            .create_token(&operator, create_request("admin"))
            .await,
        Err(AppError::Validation {
            field: Some("type"),
            ..
        })
    ));
}

#[tokio::test]
async fn creating_adds_the_declared_catalog_and_removes_nothing() {
    let declared = settings();
    let mut repository = MockApiTokenRepository::new();
    repository
        .expect_sync_catalog()
        .with(
            eq(declared.projects.clone()),
            eq(declared.environments.clone()),
            eq(false),
        )
        .times(1)
        .returning(|_, _, _| Ok(()));
    repository
        .expect_projects()
        .times(1)
        .returning(|| Ok(settings().projects));
    repository
        .expect_environments()
        .times(1)
        .returning(|| Ok(settings().environments));
    repository
        .expect_insert()
        .times(1)
        .returning(|token, _, _| Ok(token));
    let commands = operator(
        adapters(Arc::new(repository), clock_at(now()), generator(2)),
        &declared,
    );
    let request = CreateToken {
        projects: Some(vec!["other".into()]),
        ..create_request("backend")
    };
    let (token, _) = commands
        .create_token(&Principal::operator("cli"), request)
        .await
        .unwrap();
    assert_eq!(token.projects().ids(), vec!["other"]);
}

/// A repository with no expectation but those given fails every other call,
/// writes included: each command may make only the calls it names.
#[tokio::test]
async fn commands_other_than_create_make_only_their_own_call() {
    let (stored, _) = token(1, TokenType::Backend, None);
    let selector = stored.selector();
    let listed = vec![stored.clone()];
    let mut repository = MockApiTokenRepository::new();
    repository
        .expect_list()
        .times(1)
        .returning(move || Ok(listed.clone()));
    repository
        .expect_update_expiry()
        .with(
            eq(TokenRef::Selector(selector)),
            eq(now()),
            eq(Actor::named("cli")),
            eq(now()),
        )
        .times(1)
        .returning(|_, _, _, _| Ok(None));
    repository
        .expect_delete()
        .with(
            eq(TokenRef::Selector(selector)),
            eq(Actor::named("cli")),
            eq(now()),
        )
        .times(1)
        .returning(move |_, _, _| Ok(Some(stored.clone())));
    let commands = operator(
        adapters(Arc::new(repository), clock_at(now()), no_secrets()),
        &settings(),
    );
    let actor = Principal::operator("cli");

    assert_eq!(commands.list_tokens().await.unwrap().len(), 1);
    assert!(!commands
        .update_expiry(&actor, TokenRef::Selector(selector), now())
        .await
        .unwrap());
    assert!(commands
        .delete_token(&actor, TokenRef::Selector(selector))
        .await
        .unwrap());
}
