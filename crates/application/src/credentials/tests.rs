//! The credential authority over mocked ports: authentication from memory,
//! last-seen batches, and other instances' changes.

use std::sync::Arc;

use chrono::Duration;
use keywarden_domain::{fixtures, TokenType};
use mockall::predicate::eq;

use crate::testing::{catalog_only, clock_at, no_secrets, now, repository, started, token};
use crate::{AppError, ExternalChange, RepositoryError, StoredCredential};

// ---- authentication -------------------------------------------------------

#[tokio::test]
async fn admin_tokens_authenticate_without_touching_storage() {
    let (admin, credential) = token(1, TokenType::Admin, None);
    let app = started(
        repository(vec![admin], |_| {}),
        clock_at(now()),
        no_secrets(),
    )
    .await;
    let principal = app
        .usecases
        .authenticate_admin(credential.expose_secret())
        .await
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
    let app = started(repository(stored, |_| {}), clock_at(now()), no_secrets()).await;
    for (_, credential) in &tokens {
        assert!(matches!(
            app.usecases
                .authenticate_admin(credential.expose_secret())
                .await,
            Err(AppError::Forbidden)
        ));
    }
}

#[tokio::test]
async fn unknown_and_expired_credentials_are_unauthorized() {
    let (expired, expired_credential) = token(1, TokenType::Admin, Some(now()));
    let app = started(
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
                app.usecases.authenticate_admin(presented).await,
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
    let app = started(repository, clock_at(now()), no_secrets()).await;
    app.usecases
        .authenticate_admin(credential.expose_secret())
        .await
        .unwrap();
    app.usecases
        .authenticate_admin(credential.expose_secret())
        .await
        .unwrap();
    assert_eq!(app.credentials.flush_seen().await.unwrap(), 1);
    assert_eq!(
        app.credentials.flush_seen().await.unwrap(),
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
    let app = started(repository, clock_at(now()), no_secrets()).await;
    app.usecases
        .authenticate_admin(credential.expose_secret())
        .await
        .unwrap();
    assert!(matches!(
        app.credentials.flush_seen().await,
        Err(AppError::Unavailable(_))
    ));
    assert_eq!(app.credentials.flush_seen().await.unwrap(), 1);
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
    let app = started(repository, clock_at(now()), no_secrets()).await;
    assert!(app
        .usecases
        .authenticate_admin(deleted_credential.expose_secret())
        .await
        .is_ok());
    assert!(app
        .usecases
        .authenticate_admin(created_credential.expose_secret())
        .await
        .is_err());

    app.credentials
        .apply_external(ExternalChange::Tokens(vec![a, b, c]))
        .await
        .unwrap();

    for (credential, usable) in [
        (&expiring_credential, false),
        (&deleted_credential, false),
        (&created_credential, true),
    ] {
        assert_eq!(
            app.usecases
                .authenticate_admin(credential.expose_secret())
                .await
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
    let app = started(Arc::new(repository), clock_at(now()), no_secrets()).await;
    assert!(app
        .usecases
        .authenticate_admin(credential.expose_secret())
        .await
        .is_err());
    app.credentials
        .apply_external(ExternalChange::Unknown)
        .await
        .unwrap();
    assert!(app
        .usecases
        .authenticate_admin(credential.expose_secret())
        .await
        .is_ok());
}

// ---- serving while the view loads ------------------------------------------

/// A repository that holds `stored` (what `find_many` sees now) and answers
/// `credentials()` with `snapshot` only once `release` has a message: until
/// then the load blocks its thread (its own, in the test), as a long read of
/// a large table would.
fn loading_repository(
    stored: Vec<keywarden_domain::ApiToken>,
    snapshot: Vec<keywarden_domain::ApiToken>,
    release: std::sync::mpsc::Receiver<()>,
    lookups: Arc<std::sync::atomic::AtomicUsize>,
) -> Arc<crate::MockApiTokenRepository> {
    let mut repository = catalog_only();
    repository
        .expect_insert_initial()
        .returning(|_, _, _| Ok(false));
    repository.expect_ping().returning(|| Ok(()));
    let release = std::sync::Mutex::new(release);
    let snapshot: Vec<StoredCredential> = snapshot.iter().map(StoredCredential::from).collect();
    repository.expect_credentials().returning(move || {
        release.lock().unwrap().recv().unwrap();
        Ok(snapshot.clone())
    });
    repository.expect_find_many().returning(move |selectors| {
        lookups.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        Ok(stored
            .iter()
            .filter(|token| selectors.contains(&token.selector()))
            .cloned()
            .collect())
    });
    Arc::new(repository)
}

#[tokio::test]
async fn while_the_view_loads_storage_answers_for_what_it_lacks_and_nothing_is_undone() {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use crate::testing::{adapters, settings};
    use crate::{start, BackgroundTask, ViewLoader};

    let (valid, valid_credential) = token(1, TokenType::Admin, None);
    let (expired, expired_credential) = token(2, TokenType::Admin, Some(now()));
    let (deleted, deleted_credential) = token(3, TokenType::Admin, None);
    let (release, released) = std::sync::mpsc::channel();
    let lookups = Arc::new(AtomicUsize::new(0));
    // The snapshot was read before `deleted` went: the load must not bring it back.
    let repository = loading_repository(
        vec![valid.clone(), expired.clone()],
        vec![valid, expired, deleted.clone()],
        released,
        Arc::clone(&lookups),
    );
    let app = start(
        adapters(repository, clock_at(now()), no_secrets()),
        settings(),
        Vec::new(),
    )
    .await
    .unwrap();
    let (stopper, stop) = crate::stop_signal();
    let loader = ViewLoader::new(Arc::clone(&app.credentials));
    let loader = std::thread::spawn(move || {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
            .block_on(Box::new(loader).run(stop));
    });

    assert!(matches!(
        app.usecases.ready().await,
        Err(AppError::Unavailable(_))
    ));
    for _ in 0..2 {
        let principal = app
            .usecases
            .authenticate_admin(valid_credential.expose_secret())
            .await
            .expect("a valid credential passes while the view loads");
        assert_eq!(principal.name(), "token-1");
    }
    assert_eq!(
        lookups.load(Ordering::SeqCst),
        1,
        "looked up once, then kept"
    );
    assert!(matches!(
        app.usecases
            .authenticate_admin(expired_credential.expose_secret())
            .await,
        Err(AppError::Unauthorized)
    ));
    // Another instance deletes the token; the change feed reports it.
    app.credentials
        .apply_external(ExternalChange::Tokens(vec![deleted.selector()]))
        .await
        .unwrap();
    assert!(matches!(
        app.usecases
            .authenticate_admin(deleted_credential.expose_secret())
            .await,
        Err(AppError::Unauthorized)
    ));

    release.send(()).unwrap();
    app.credentials.loaded().await;
    loader.join().unwrap();
    drop(stopper);
    app.usecases.ready().await.unwrap();
    let before = lookups.load(Ordering::SeqCst);
    app.usecases
        .authenticate_admin(valid_credential.expose_secret())
        .await
        .unwrap();
    for presented in [
        deleted_credential.expose_secret(),
        expired_credential.expose_secret(),
        "*:*.unknown",
    ] {
        assert!(
            matches!(
                app.usecases.authenticate_admin(presented).await,
                Err(AppError::Unauthorized)
            ),
            "{presented:?}"
        );
    }
    assert_eq!(
        lookups.load(Ordering::SeqCst),
        before,
        "a complete view answers from memory"
    );
}

#[tokio::test]
async fn a_lookup_that_storage_cannot_answer_is_unavailable_not_a_refusal() {
    use crate::start;
    use crate::testing::{adapters, settings};
    use keywarden_domain::{AcceptedTypes, RequiredScope};

    let mut repository = catalog_only();
    repository
        .expect_insert_initial()
        .returning(|_, _, _| Ok(false));
    repository
        .expect_find_many()
        .returning(|_| Err(RepositoryError::Unavailable("down".into())));
    let app = start(
        adapters(Arc::new(repository), clock_at(now()), no_secrets()),
        settings(),
        Vec::new(),
    )
    .await
    .unwrap();
    assert!(matches!(
        app.usecases.authenticate_admin("*:*.anything").await,
        Err(AppError::Unavailable(_))
    ));
    assert_eq!(
        app.verification
            .verify(
                Some("*:*.anything"),
                &RequiredScope::of_types(AcceptedTypes::ANY)
            )
            .await,
        Err(crate::Refusal::Unavailable)
    );
}
