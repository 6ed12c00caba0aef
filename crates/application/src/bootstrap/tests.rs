//! Bootstrap over mocked ports: the first tokens of an empty database, and
//! init tokens checked with and without storage.

use std::sync::Arc;

use keywarden_domain::{ApiToken, Credential, TokenType};

use crate::testing::{adapters, catalog_only, clock_at, generator, no_secrets, now, settings};
use crate::{
    check_init_token_strength, check_init_tokens, start, AppError, Bootstrap, InitToken,
    MockApiTokenRepository,
};

// ---- bootstrap ------------------------------------------------------------

fn empty_database(expect: impl Fn(&[ApiToken]) + Send + 'static) -> MockApiTokenRepository {
    let mut repository = catalog_only();
    repository
        .expect_insert_initial()
        .withf(move |tokens, actor, _| {
            expect(tokens);
            *actor == keywarden_domain::Actor::named("system")
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
    let started = start(
        adapters(Arc::new(repository), clock_at(now()), generator(5)),
        settings(),
        Vec::new(),
    )
    .await
    .unwrap();
    match started.bootstrap {
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
        // The identifier comes from the generator, not from the credential.
        let random = keywarden_domain::Selector::from_bytes(
            keywarden_domain::fixtures::material(200).selector,
        );
        assert!(tokens.iter().all(|token| token.selector() == random));
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
    let started = start(
        adapters(Arc::new(repository), clock_at(now()), no_secrets()),
        settings(),
        init,
    )
    .await
    .unwrap();
    assert!(matches!(started.bootstrap, Bootstrap::Inserted(2)));
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
        let result = start(
            adapters(Arc::new(repository), clock_at(now()), no_secrets()),
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

#[test]
fn init_tokens_can_be_checked_without_storage() {
    let good = [InitToken {
        token_type: TokenType::Backend,
        credential: Credential::new("default:production.x"),
    }];
    assert!(check_init_tokens(&settings(), &good).is_ok());
    let bad = [InitToken {
        token_type: TokenType::Admin,
        credential: Credential::new("default:*.x"),
    }];
    assert!(check_init_tokens(&settings(), &bad).is_err());
}

// ---- guessable init tokens --------------------------------------------------

fn init(token_type: TokenType, credential: &str) -> InitToken {
    InitToken {
        token_type,
        credential: Credential::new(credential),
    }
}

#[test]
fn guessable_init_tokens_are_refused_by_variable_never_by_value() {
    for (token_type, credential, variable) in [
        (
            TokenType::Admin,
            "*:*.unleash-insecure-admin-api-token",
            "INIT_ADMIN_API_TOKENS",
        ),
        (
            TokenType::Frontend,
            "*:development.unleash-insecure-frontend-api-token",
            "INIT_FRONTEND_API_TOKENS",
        ),
        (
            TokenType::Backend,
            "*:production.hunter2",
            "INIT_BACKEND_API_TOKENS",
        ),
        (
            TokenType::Client,
            "*:production.fifteen-chars!!",
            "INIT_CLIENT_API_TOKENS",
        ),
    ] {
        let error = check_init_token_strength(&[init(token_type, credential)], false)
            .expect_err(credential);
        let message = error.to_string();
        assert!(message.contains(variable), "{message}");
        assert!(
            !message.contains(&credential[credential.find('.').unwrap() + 1..]),
            "{message}"
        );
        let warnings = check_init_token_strength(&[init(token_type, credential)], true).unwrap();
        assert_eq!(warnings.len(), 1, "allowed, with a warning");
        assert!(warnings[0].contains(variable));
    }
}

#[test]
fn short_init_tokens_start_with_a_warning_and_long_ones_silently() {
    let short = init(TokenType::Admin, &format!("*:*.{}", "s".repeat(16)));
    let long = init(TokenType::Admin, &format!("*:*.{}", "s".repeat(32)));
    let warnings = check_init_token_strength(&[short, long.clone()], false).unwrap();
    assert_eq!(warnings.len(), 1);
    assert!(warnings[0].contains("INIT_ADMIN_API_TOKENS"));
    assert!(check_init_token_strength(&[long], false)
        .unwrap()
        .is_empty());
}
