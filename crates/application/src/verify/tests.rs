//! Verification use-case tests over mocked ports: the answers from memory,
//! the scope requirements checked against the declared catalog, last seen.

use chrono::Duration;
use keywarden_domain::{fixtures, ApiToken, Credential, EnvironmentName};
use mockall::predicate::eq;

use super::*;
use crate::testing::{clock_at, no_secrets, now, repository, started};
use crate::{AppError, ExternalChange, MockApiTokenRepository, Started};

/// A started server whose storage holds `tokens`; `extra` adds a test's
/// expectations. Projects `default` and `other` are declared.
async fn holding(tokens: &[ApiToken], extra: impl FnOnce(&mut MockApiTokenRepository)) -> Started {
    started(
        repository(tokens.to_vec(), extra),
        clock_at(now()),
        no_secrets(),
    )
    .await
}

fn issued(seed: u8, token_type: TokenType, projects: &[&str]) -> (ApiToken, Credential) {
    let (token, credential) =
        fixtures::token(seed, &format!("token-{seed}"), token_type, projects, now());
    (fixtures::stored(&token, 1, None), credential)
}

fn scope(
    service: &Started,
    types: Option<&str>,
    environment: Option<&str>,
    projects: &[&str],
) -> Result<RequiredScope, InvalidScope> {
    let projects: Vec<String> = projects.iter().map(ToString::to_string).collect();
    service
        .verification
        .required_scope(types, environment, &projects)
}

#[tokio::test]
async fn a_valid_credential_reports_its_public_facts() {
    let (token, credential) = issued(1, TokenType::Backend, &["default"]);
    let service = holding(std::slice::from_ref(&token), |_| {}).await;
    let verified = service
        .verification
        .verify(
            Some(credential.expose_secret()),
            &scope(&service, None, None, &[]).unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(verified.selector, token.selector());
    assert_eq!(&*verified.facts.name, "token-1");
    assert_eq!(verified.facts.token_type, TokenType::Backend);
    assert_eq!(*verified.facts.projects(), *token.projects());
    assert_eq!(verified.facts.environment().as_str(), "development");
    assert_eq!(verified.facts.expires_at, None);
}

#[tokio::test]
async fn missing_unknown_and_expired_credentials_are_refused_as_such() {
    let (token, credential) = issued(1, TokenType::Frontend, &["*"]);
    let expired = fixtures::stored(&token, 2, Some(now() - Duration::milliseconds(1)));
    let (gone, gone_credential) = issued(2, TokenType::Frontend, &["*"]);
    let service = holding(&[expired, gone.clone()], |repository| {
        repository.expect_find_many().returning(|_| Ok(Vec::new()));
    })
    .await;
    // Deleted on another instance: the change feed reports it, storage has it no more.
    service
        .credentials
        .apply_external(ExternalChange::Tokens(vec![gone.selector()]))
        .await
        .unwrap();
    let any = RequiredScope::of_types(AcceptedTypes::ANY);
    assert_eq!(
        service.verification.verify(None, &any).await,
        Err(Refusal::Missing)
    );
    assert_eq!(
        service
            .verification
            .verify(Some("*:development.nope"), &any)
            .await,
        Err(Refusal::Unknown)
    );
    assert_eq!(
        service
            .verification
            .verify(Some(credential.expose_secret()), &any)
            .await,
        Err(Refusal::Expired)
    );
    assert_eq!(
        service
            .verification
            .verify(Some(gone_credential.expose_secret()), &any)
            .await,
        Err(Refusal::Unknown)
    );
}

#[tokio::test]
async fn out_of_scope_names_what_is_missing() {
    let (admin_token, admin) = issued(1, TokenType::Admin, &["*"]);
    let (web_token, web) = issued(2, TokenType::Client, &["default"]);
    let service = holding(&[admin_token, web_token], |_| {}).await;
    let default = scope(&service, None, None, &[]).unwrap();
    assert_eq!(
        service
            .verification
            .verify(Some(admin.expose_secret()), &default)
            .await,
        Err(Refusal::OutOfScope(OutOfScope::Type(TokenType::Admin)))
    );
    let production = scope(&service, Some("client"), Some("production"), &[]).unwrap();
    assert_eq!(
        service
            .verification
            .verify(Some(web.expose_secret()), &production)
            .await,
        Err(Refusal::OutOfScope(OutOfScope::Environment(
            EnvironmentName::parse("production").unwrap()
        )))
    );
    let shop = scope(
        &service,
        Some("backend"),
        Some("development"),
        &["default", "other"],
    )
    .unwrap();
    assert_eq!(
        service
            .verification
            .verify(Some(web.expose_secret()), &shop)
            .await,
        Err(Refusal::OutOfScope(OutOfScope::Project(
            ProjectId::parse("other").unwrap()
        )))
    );
    let admin_only = scope(&service, Some("admin"), Some("production"), &["other"]).unwrap();
    assert!(service
        .verification
        .verify(Some(admin.expose_secret()), &admin_only)
        .await
        .is_ok());
}

#[tokio::test]
async fn required_scopes_name_unknown_types_environments_and_projects() {
    let service = holding(&[], |_| {}).await;
    assert_eq!(
        scope(&service, None, None, &[]).unwrap(),
        RequiredScope::of_types(AcceptedTypes::SERVICE)
    );
    for (types, environment, projects, parameter, named) in [
        (Some("backend,fronted"), None, vec![], "type", "fronted"),
        (Some(""), None, vec![], "type", "type="),
        (
            None,
            Some("staging"),
            vec![],
            "environment",
            "Environment=staging",
        ),
        (None, Some("*"), vec![], "environment", "Environment=*"),
        (
            None,
            None,
            vec!["default", "blog"],
            "project",
            "Project=blog",
        ),
        (None, None, vec!["*"], "project", "Project=*"),
    ] {
        let error = scope(&service, types, environment, &projects).unwrap_err();
        assert_eq!(error.parameter, parameter, "{error:?}");
        assert!(error.message.contains(named), "{error:?}");
    }
}

#[tokio::test]
async fn verified_credentials_count_as_seen_whatever_the_scope() {
    let (token, credential) = issued(1, TokenType::Admin, &["*"]);
    let selector = token.selector();
    let service = holding(&[token], |repository| {
        repository
            .expect_record_seen()
            .with(eq(vec![(selector, now())]))
            .times(1)
            .returning(|_| Ok(()));
    })
    .await;
    let default = RequiredScope::of_types(AcceptedTypes::SERVICE);
    assert!(service
        .verification
        .verify(Some(credential.expose_secret()), &default)
        .await
        .is_err());
    assert_eq!(service.credentials.flush_seen().await.unwrap(), 1);
    assert_eq!(
        service.verification.verify(Some("unknown"), &default).await,
        Err(Refusal::Unknown)
    );
    assert_eq!(
        service.credentials.flush_seen().await.unwrap(),
        0,
        "unknown is never seen"
    );
}

#[tokio::test]
async fn admin_authentication_is_the_same_check_with_admin_scope() {
    let (admin, admin_credential) = issued(1, TokenType::Admin, &["*"]);
    let (frontend, frontend_credential) = issued(2, TokenType::Frontend, &["*"]);
    let service = holding(&[admin, frontend], |_| {}).await;
    let principal = service
        .usecases
        .authenticate_admin(admin_credential.expose_secret())
        .await
        .unwrap();
    assert_eq!(principal.name(), "token-1");
    assert!(matches!(
        service
            .usecases
            .authenticate_admin(frontend_credential.expose_secret())
            .await,
        Err(AppError::Forbidden)
    ));
    assert!(matches!(
        service.usecases.authenticate_admin("*:*.unknown").await,
        Err(AppError::Unauthorized)
    ));
}
