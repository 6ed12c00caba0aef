//! Verification use-case tests over mocked ports: the answers from memory,
//! the scope requirements checked against the declared catalog, last seen.

use std::sync::Arc;

use chrono::{DateTime, Duration, Utc};
use keywarden_domain::{
    fixtures, ApiToken, Credential, Environment, EnvironmentName, Project, ProjectId,
};
use mockall::predicate::eq;

use super::*;
use crate::{
    ApiTokenUseCases, AppError, ExternalChange, MockApiTokenRepository, MockClock,
    MockSecretGenerator, ServiceSettings, StoredCredential,
};

fn now() -> DateTime<Utc> {
    fixtures::at(0)
}

fn settings() -> ServiceSettings {
    let environment = |name: &str| Environment {
        name: EnvironmentName::parse(name).unwrap(),
        kind: name.to_string(),
        sort_order: 1,
        enabled: true,
    };
    let project = |id: &str| Project {
        id: ProjectId::parse(id).unwrap(),
        name: id.to_string(),
        description: None,
    };
    ServiceSettings {
        token_limit: 10,
        projects: vec![project("web"), project("shop")],
        environments: vec![environment("development"), environment("production")],
    }
}

/// A service whose storage holds `tokens`; `extra` adds a test's expectations.
/// Every answer below comes from memory: storage expects no other call.
async fn holding(
    tokens: &[ApiToken],
    extra: impl FnOnce(&mut MockApiTokenRepository),
) -> ApiTokenService {
    let mut repository = MockApiTokenRepository::new();
    repository.expect_sync_catalog().returning(|_, _, _| Ok(()));
    repository
        .expect_projects()
        .returning(|| Ok(settings().projects));
    repository
        .expect_environments()
        .returning(|| Ok(settings().environments));
    repository
        .expect_insert_initial()
        .returning(|_, _, _| Ok(false));
    let credentials: Vec<StoredCredential> = tokens.iter().map(StoredCredential::from).collect();
    repository
        .expect_credentials()
        .times(1)
        .returning(move || Ok(credentials.clone()));
    extra(&mut repository);
    let mut clock = MockClock::new();
    clock.expect_now().return_const(now());
    let mut secrets = MockSecretGenerator::new();
    secrets
        .expect_generate()
        .returning(|| Ok(fixtures::material(200)));
    let (service, _) = ApiTokenService::start(
        Arc::new(repository),
        Arc::new(clock),
        Arc::new(secrets),
        settings(),
        Vec::new(),
    )
    .await
    .unwrap();
    service
}

fn issued(seed: u8, token_type: TokenType, projects: &[&str]) -> (ApiToken, Credential) {
    let (token, credential) =
        fixtures::token(seed, &format!("token-{seed}"), token_type, projects, now());
    (fixtures::stored(&token, 1, None), credential)
}

fn scope(
    service: &ApiTokenService,
    types: Option<&str>,
    environment: Option<&str>,
    projects: &[&str],
) -> Result<RequiredScope, InvalidScope> {
    let projects: Vec<String> = projects.iter().map(|p| p.to_string()).collect();
    service.required_scope(types, environment, &projects)
}

#[tokio::test]
async fn a_valid_credential_reports_its_public_facts() {
    let (token, credential) = issued(1, TokenType::Backend, &["web"]);
    let service = holding(std::slice::from_ref(&token), |_| {}).await;
    let verified = service
        .verify(
            Some(credential.expose_secret()),
            &scope(&service, None, None, &[]).unwrap(),
        )
        .unwrap();
    assert_eq!(verified.selector, token.selector());
    assert_eq!(&*verified.facts.name, "token-1");
    assert_eq!(verified.facts.token_type, TokenType::Backend);
    assert_eq!(verified.facts.projects, *token.projects());
    assert_eq!(verified.facts.environment.as_str(), "development");
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
        .apply_external(ExternalChange::Tokens(vec![gone.selector()]))
        .await
        .unwrap();
    let any = RequiredScope::of_types(AcceptedTypes::ANY);
    assert_eq!(service.verify(None, &any), Err(Refusal::Missing));
    assert_eq!(
        service.verify(Some("*:development.nope"), &any),
        Err(Refusal::Unknown)
    );
    assert_eq!(
        service.verify(Some(credential.expose_secret()), &any),
        Err(Refusal::Expired)
    );
    assert_eq!(
        service.verify(Some(gone_credential.expose_secret()), &any),
        Err(Refusal::Unknown)
    );
}

#[tokio::test]
async fn out_of_scope_names_what_is_missing() {
    let (admin_token, admin) = issued(1, TokenType::Admin, &["*"]);
    let (web_token, web) = issued(2, TokenType::Client, &["web"]);
    let service = holding(&[admin_token, web_token], |_| {}).await;
    let default = scope(&service, None, None, &[]).unwrap();
    assert_eq!(
        service.verify(Some(admin.expose_secret()), &default),
        Err(Refusal::OutOfScope(OutOfScope::Type(TokenType::Admin)))
    );
    let production = scope(&service, Some("client"), Some("production"), &[]).unwrap();
    assert_eq!(
        service.verify(Some(web.expose_secret()), &production),
        Err(Refusal::OutOfScope(OutOfScope::Environment(
            EnvironmentName::parse("production").unwrap()
        )))
    );
    let shop = scope(
        &service,
        Some("backend"),
        Some("development"),
        &["web", "shop"],
    )
    .unwrap();
    assert_eq!(
        service.verify(Some(web.expose_secret()), &shop),
        Err(Refusal::OutOfScope(OutOfScope::Project(
            ProjectId::parse("shop").unwrap()
        )))
    );
    let admin_only = scope(&service, Some("admin"), Some("production"), &["shop"]).unwrap();
    assert!(service
        .verify(Some(admin.expose_secret()), &admin_only)
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
        (None, None, vec!["web", "blog"], "project", "Project=blog"),
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
        .verify(Some(credential.expose_secret()), &default)
        .is_err());
    assert_eq!(service.flush_seen().await.unwrap(), 1);
    assert_eq!(
        service.verify(Some("unknown"), &default),
        Err(Refusal::Unknown)
    );
    assert_eq!(
        service.flush_seen().await.unwrap(),
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
        .authenticate_admin(admin_credential.expose_secret())
        .unwrap();
    assert_eq!(principal.name(), "token-1");
    assert!(matches!(
        service.authenticate_admin(frontend_credential.expose_secret()),
        Err(AppError::Forbidden)
    ));
    assert!(matches!(
        service.authenticate_admin("*:*.unknown"),
        Err(AppError::Unauthorized)
    ));
}
