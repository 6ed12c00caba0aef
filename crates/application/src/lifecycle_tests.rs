//! Rotation, the lifetime policy and the event search over mocked ports:
//! what reaches storage, what is refused before it, and how the credential
//! view follows a rotation.

use std::sync::Arc;

use chrono::Duration;
use keywarden_domain::{
    parse_duration, Actor, ApiToken, LifetimePolicy, Rotation, TokenRef, TokenType,
};
use mockall::predicate::{always, eq};

use crate::testing::{
    adapters, clock_at, create_request, generator, now, repository, settings, token,
};
use crate::{
    start, AppError, CreateToken, EventPage, EventSearch, MockApiTokenRepository, Principal,
    RotateOutcome, RotateToken, SearchQuery, ServiceSettings, Started,
};

async fn started_with(
    repository: Arc<MockApiTokenRepository>,
    lifetime: LifetimePolicy,
) -> Started {
    let settings = ServiceSettings {
        lifetime,
        ..settings()
    };
    let started = start(
        adapters(repository, clock_at(now()), generator(7)),
        settings,
        Vec::new(),
    )
    .await
    .unwrap();
    // A server past start-up: the view is loaded, so no check falls back to
    // storage (that window has tests of its own).
    started.credentials.refresh_view().await.unwrap();
    started
}

fn max_one_day() -> LifetimePolicy {
    LifetimePolicy {
        max_lifetime: Some(parse_duration("1d").unwrap()),
        ..LifetimePolicy::default()
    }
}

fn admin() -> Principal {
    Principal::operator("alice")
}

/// What storage makes of `rotation` applied to `old`: the tokens at the
/// revisions their writes give them.
fn stored_outcome(rotation: Rotation, old: &ApiToken) -> RotateOutcome {
    match rotation.apply(old, None) {
        Ok(mut rotated) => {
            rotated.retired = rotated.retired.with_revision(old.revision() + 1);
            rotated.successor = rotated.successor.with_revision(1);
            RotateOutcome::Rotated(Box::new(rotated))
        }
        Err(refused) => RotateOutcome::Refused(refused),
    }
}

/// Storage that applies the rotation to `old`, as the real one does in its
/// transaction.
fn rotating(old: ApiToken) -> impl FnOnce(&mut MockApiTokenRepository) {
    move |repository| {
        repository
            .expect_rotate()
            .with(
                eq(TokenRef::Selector(old.selector())),
                always(),
                eq(Actor::named("alice")),
            )
            .returning(move |_, rotation, _| Ok(stored_outcome(rotation, &old)));
    }
}

#[tokio::test]
async fn a_rotation_updates_both_credentials_in_the_view() {
    let (old, old_credential) = token(1, TokenType::Backend, None);
    let app = started_with(
        repository(vec![old.clone()], rotating(old.clone())),
        LifetimePolicy::default(),
    )
    .await;
    // Known but not admin: 403 rather than 401.
    async fn known(app: &Started, secret: &str) -> bool {
        matches!(
            app.usecases.authenticate_admin(secret).await,
            Err(AppError::Forbidden)
        )
    }
    assert!(known(&app, old_credential.expose_secret()).await);
    let request = RotateToken {
        previous_expires_at: now(),
        expires_at: None,
    };
    let rotated = app
        .usecases
        .rotate_token(&admin(), TokenRef::Selector(old.selector()), request)
        .await
        .unwrap();
    assert!(known(&app, rotated.credential.expose_secret()).await);
    // Cut off at once: the overlap ended now.
    assert!(!known(&app, old_credential.expose_secret()).await);
}

#[tokio::test]
async fn admin_tokens_are_rotated_by_the_operator_only() {
    let (old, _) = token(1, TokenType::Admin, None);
    let request = RotateToken {
        previous_expires_at: now() + Duration::hours(1),
        expires_at: None,
    };
    let app = started_with(
        repository(vec![old.clone()], rotating(old.clone())),
        LifetimePolicy::default(),
    )
    .await;
    assert!(matches!(
        app.usecases
            .rotate_token(&admin(), TokenRef::Selector(old.selector()), request)
            .await,
        Err(AppError::Validation { field: None, .. })
    ));
    let commands = crate::operator(
        adapters(
            repository(vec![], rotating(old.clone())),
            clock_at(now()),
            generator(8),
        ),
        &settings(),
    );
    let rotated = commands
        .rotate_token(&admin(), TokenRef::Selector(old.selector()), request)
        .await
        .unwrap();
    assert!(rotated.successor.token_type().is_admin());
}

#[tokio::test]
async fn refusals_become_404_409_and_400_naming_the_field() {
    let (old, _) = token(1, TokenType::Backend, Some(now() + Duration::hours(1)));
    let app = started_with(
        repository(vec![old.clone()], |repository| {
            let mut outcomes = vec![
                RotateOutcome::NotFound,
                RotateOutcome::Refused(keywarden_domain::RotationRefused::AlreadyRotated(
                    old.selector(),
                )),
            ]
            .into_iter();
            let old = old.clone();
            repository.expect_rotate().returning(move |_, rotation, _| {
                Ok(outcomes
                    .next()
                    .unwrap_or_else(|| stored_outcome(rotation, &old)))
            });
        }),
        LifetimePolicy::default(),
    )
    .await;
    let actor = admin();
    let rotate = |previous| {
        app.usecases.rotate_token(
            &actor,
            TokenRef::Selector(old.selector()),
            RotateToken {
                previous_expires_at: previous,
                expires_at: None,
            },
        )
    };
    assert!(matches!(rotate(now()).await, Err(AppError::NotFound(_))));
    assert!(matches!(
        rotate(now()).await,
        Err(AppError::StateConflict(_))
    ));
    assert!(matches!(
        rotate(now() + Duration::hours(2)).await,
        Err(AppError::Validation {
            field: Some("previousExpiresAt"),
            ..
        })
    ));
}

#[tokio::test]
async fn the_policy_is_checked_before_storage_is_asked() {
    // No expectation of rotate or update_expiry: calling either fails the test.
    let app = started_with(repository(vec![], |_| {}), max_one_day()).await;
    let (unknown, _) = token(9, TokenType::Backend, None);
    let beyond = now() + Duration::days(1) + Duration::seconds(1);
    let error = app
        .usecases
        .update_expiry(&admin(), TokenRef::Selector(unknown.selector()), beyond)
        .await
        .unwrap_err();
    assert!(
        matches!(&error, AppError::Validation { field: Some("expiresAt"), message } if message.contains("1d")),
        "{error:?}"
    );
    let rotation = RotateToken {
        previous_expires_at: now(),
        expires_at: Some(beyond),
    };
    assert!(matches!(
        app.usecases
            .rotate_token(&admin(), TokenRef::Selector(unknown.selector()), rotation)
            .await,
        Err(AppError::Validation {
            field: Some("expiresAt"),
            ..
        })
    ));
    let create = CreateToken {
        expires_at: Some(beyond),
        ..create_request("backend")
    };
    assert!(matches!(
        app.usecases.create_token(&admin(), create).await,
        Err(AppError::Validation {
            field: Some("expiresAt"),
            ..
        })
    ));
}

#[tokio::test]
async fn creates_get_the_default_lifetime_capped_or_must_name_an_expiry() {
    let policy = LifetimePolicy {
        default_lifetime: Some(parse_duration("2w").unwrap()),
        ..max_one_day()
    };
    let app = started_with(
        repository(vec![], |repository| {
            repository
                .expect_insert()
                .times(1)
                .returning(|token, _, _| Ok(token));
        }),
        policy,
    )
    .await;
    let (created, _) = app
        .usecases
        .create_token(&admin(), create_request("backend"))
        .await
        .unwrap();
    assert_eq!(created.expires_at(), Some(now() + Duration::days(1)));
    let required = LifetimePolicy {
        require_expiry: true,
        ..LifetimePolicy::default()
    };
    let app = started_with(repository(vec![], |_| {}), required).await;
    let error = app
        .usecases
        .create_token(&admin(), create_request("backend"))
        .await
        .unwrap_err();
    assert!(
        matches!(&error, AppError::Validation { field: Some("expiresAt"), message } if message.contains("require_expiry")),
        "{error:?}"
    );
}

#[tokio::test]
async fn the_operator_lists_tokens_made_before_the_policy() {
    let (forever, _) = token(1, TokenType::Backend, None);
    let (short, _) = token(2, TokenType::Backend, Some(now() + Duration::hours(1)));
    let commands = crate::operator(
        adapters(
            repository(vec![forever.clone(), short], |_| {}),
            clock_at(now()),
            generator(8),
        ),
        &ServiceSettings {
            lifetime: max_one_day(),
            ..settings()
        },
    );
    let violating = commands.tokens_violating_policy().await.unwrap();
    assert_eq!(violating, vec![forever]);
}

#[tokio::test]
async fn searches_page_50_by_default_and_1000_at_most() {
    let app = started_with(
        repository(vec![], |repository| {
            let search = EventSearch {
                text: Some("ci".into()),
                ..EventSearch::default()
            };
            repository
                .expect_search_events()
                .with(eq(search.clone()), eq(0), eq(50))
                .times(1)
                .returning(|_, _, _| {
                    Ok(EventPage {
                        events: Vec::new(),
                        total: 7,
                    })
                });
            repository
                .expect_search_events()
                .with(eq(search), eq(20), eq(1000))
                .times(1)
                .returning(|_, _, _| {
                    Ok(EventPage {
                        events: Vec::new(),
                        total: 7,
                    })
                });
        }),
        LifetimePolicy::default(),
    )
    .await;
    let search = EventSearch {
        text: Some("ci".into()),
        ..EventSearch::default()
    };
    let page = app
        .usecases
        .search_events(SearchQuery {
            search: search.clone(),
            ..SearchQuery::default()
        })
        .await
        .unwrap();
    assert_eq!(page.total, 7);
    app.usecases
        .search_events(SearchQuery {
            search,
            offset: Some(20),
            limit: Some(5000),
        })
        .await
        .unwrap();
}
