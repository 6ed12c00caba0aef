//! Putting the use cases together: what the composition root hands in (the
//! outbound adapters and the settings) and what it gets back (the inbound
//! ports), for a serving process and for one-off operator commands. The root
//! sees traits only; the types behind them stay in this crate.

use std::sync::Arc;

use keywarden_domain::{Environment, Project};

use crate::admin::AdminApi;
use crate::bootstrap::{bootstrap, Bootstrap, InitToken};
use crate::catalog::{Catalog, Undeclared};
use crate::credentials::Credentials;
use crate::tokens::{AdminTokens, Operator, Tokens};
use crate::usecases::{ApiTokenUseCases, CredentialAuthority, OperatorCommands};
use crate::verify::{TokenVerification, Verification};
use crate::{ApiTokenRepository, AppError, Clock, SecretGenerator};

/// The outbound adapters every use case runs over.
#[derive(Clone)]
pub struct Adapters {
    pub repository: Arc<dyn ApiTokenRepository>,
    pub clock: Arc<dyn Clock>,
    pub secrets: Arc<dyn SecretGenerator>,
}

#[derive(Debug, Clone)]
pub struct ServiceSettings {
    /// The most tokens that may exist; creating one more is refused.
    pub token_limit: u32,
    /// Declared reference data, made to exist in storage at start.
    pub projects: Vec<Project>,
    pub environments: Vec<Environment>,
}

impl ServiceSettings {
    fn declared(&self) -> Catalog {
        Catalog::declared(self.projects.clone(), self.environments.clone())
    }
}

/// A serving process's use cases, ready to serve.
pub struct Started {
    /// For the Admin API.
    pub usecases: Arc<dyn ApiTokenUseCases>,
    /// For the background tasks and the metrics that keep the view exact.
    pub credentials: Arc<dyn CredentialAuthority>,
    /// For the services, proxies and Unleash Edge that check tokens.
    pub verification: Arc<dyn TokenVerification>,
    /// What start-up did about the first tokens.
    pub bootstrap: Bootstrap,
}

/// Makes storage ready for serving: the declared projects and environments
/// (undeclared ones no token needs are removed), first tokens on an empty
/// database, and the credential view loaded.
///
/// # Errors
/// `Validation` for an init token that breaks the rules or names unknown
/// reference data; storage errors as they come.
pub async fn start(
    adapters: Adapters,
    settings: ServiceSettings,
    init_tokens: Vec<InitToken>,
) -> Result<Started, AppError> {
    let repository = Arc::clone(&adapters.repository);
    let catalog =
        Catalog::sync(repository.as_ref(), settings.declared(), Undeclared::Remove).await?;
    let bootstrap = bootstrap(&adapters, &catalog, init_tokens).await?;
    let credentials = Arc::new(Credentials::new(
        Arc::clone(&repository),
        Arc::clone(&adapters.clock),
    ));
    credentials.refresh_view().await?;
    let tokens = Tokens::new(
        adapters,
        settings.token_limit,
        AdminTokens::Refused,
        Some(Arc::clone(&credentials)),
    );
    let verification = Arc::new(Verification {
        credentials: Arc::clone(&credentials),
        catalog: catalog.clone(),
    });
    let usecases = Arc::new(AdminApi {
        repository,
        credentials: Arc::clone(&credentials),
        tokens,
        catalog,
    });
    Ok(Started {
        usecases,
        credentials,
        verification,
        bootstrap,
    })
}

/// The operator's commands over the configured storage. Nothing is read or
/// written until a command runs, and a command writes only what it changes.
pub fn operator(adapters: Adapters, settings: &ServiceSettings) -> Arc<dyn OperatorCommands> {
    Arc::new(Operator::new(
        adapters,
        settings.token_limit,
        settings.declared(),
    ))
}
