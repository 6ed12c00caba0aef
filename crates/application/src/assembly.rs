//! Putting the use cases together: what the composition root hands in (the
//! outbound adapters and the settings) and what it gets back (the inbound
//! ports), for a serving process and for one-off operator commands. The root
//! sees traits only; the types behind them stay in this crate.

use std::sync::Arc;

use std::collections::HashSet;

use keywarden_domain::{Environment, LifetimePolicy, Project};

use crate::admin::AdminApi;
use crate::background::BackgroundTask;
use crate::bootstrap::{bootstrap, Bootstrap, InitToken};
use crate::catalog::{Catalog, Undeclared};
use crate::credentials::Credentials;
use crate::notifications::{
    instance_id, Dispatcher, ExpiryWatch, NotificationSettings, UnusedTokenReaper, WebhookSender,
};
use crate::ports::{EndpointStatus, NotificationStore};
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
    /// The lifetime rules new expiries obey (bootstrap tokens are exempt).
    pub lifetime: LifetimePolicy,
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
    /// For the notification tasks ([`Started::notification_tasks`]).
    view: Arc<Credentials>,
    adapters: Adapters,
}

/// A background task and the name it runs under.
pub type NamedTask = (&'static str, Box<dyn BackgroundTask>);

impl Started {
    /// The lifecycle notification loops `settings` call for: a dispatcher
    /// per webhook endpoint (registered beforehand by [`register_webhooks`]),
    /// the expiry watch, and the reaper of unused tokens if configured.
    /// `sender` may be `None` only when no endpoint is configured.
    pub fn notification_tasks(
        &self,
        store: Arc<dyn NotificationStore>,
        sender: Option<Arc<dyn WebhookSender>>,
        settings: &NotificationSettings,
    ) -> Vec<NamedTask> {
        let owner = instance_id();
        let mut tasks: Vec<NamedTask> = Vec::new();
        if let Some(sender) = &sender {
            for endpoint in &settings.endpoints {
                tasks.push((
                    "webhook-dispatcher",
                    Box::new(Dispatcher::new(
                        endpoint.clone(),
                        owner.clone(),
                        Arc::clone(&store),
                        Arc::clone(sender),
                        Arc::clone(&self.adapters.clock),
                        settings.give_up_after,
                    )),
                ));
            }
        }
        tasks.push((
            "expiry-watch",
            Box::new(ExpiryWatch::new(
                Arc::clone(&store),
                Arc::clone(&self.adapters.repository),
                Arc::clone(&self.adapters.clock),
                settings.expiry_warnings.clone(),
                settings.expiry_check_interval,
            )),
        ));
        if let Some(unused_for) = settings.expire_unused_after {
            tasks.push((
                "unused-tokens",
                Box::new(UnusedTokenReaper::new(
                    Arc::clone(&self.adapters.repository),
                    Arc::clone(&self.view),
                    Arc::clone(&self.adapters.clock),
                    unused_for,
                )),
            ));
        }
        tasks
    }
}

/// Makes every configured webhook endpoint known to storage, each new one
/// with its cursor at the end of the event log. Called before [`start`], so
/// the first start's bootstrap events reach the endpoints too.
///
/// # Errors
/// Storage errors.
pub async fn register_webhooks(
    store: &dyn NotificationStore,
    clock: &dyn Clock,
    settings: &NotificationSettings,
) -> Result<(), AppError> {
    let urls = settings.endpoints.iter().map(|e| e.url.clone()).collect();
    Ok(store.register_endpoints(urls, clock.now()).await?)
}

/// Each configured endpoint's delivery state, for operators.
///
/// # Errors
/// Storage errors.
pub async fn webhook_status(
    store: &dyn NotificationStore,
    settings: &NotificationSettings,
) -> Result<Vec<EndpointStatus>, AppError> {
    let endpoints = settings
        .endpoints
        .iter()
        .map(|endpoint| {
            let types = endpoint
                .events
                .as_ref()
                .map(|kinds| kinds.iter().map(|kind| kind.as_str().to_string()).collect());
            (endpoint.url.clone(), types)
        })
        .collect();
    Ok(store.endpoint_statuses(endpoints).await?)
}

/// Makes storage ready for serving: the declared projects and environments
/// (undeclared ones no token needs are removed) and first tokens on an empty
/// database. The credential view starts empty, so start-up does not grow with
/// the table: a [`crate::ViewLoader`] fills it while the process already
/// serves, looking up meanwhile what the view lacks.
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
    // Bootstrap tokens are the operator's own: the policy does not bind them.
    let mut exempt: HashSet<_> = init_tokens
        .iter()
        .map(|init| *init.credential.key().1.as_bytes())
        .collect();
    let bootstrap = bootstrap(&adapters, &catalog, init_tokens).await?;
    if let Bootstrap::Generated(credential) = &bootstrap {
        exempt.insert(*credential.key().1.as_bytes());
    }
    let view_adapters = adapters.clone();
    let credentials = Arc::new(Credentials::new(
        Arc::clone(&repository),
        Arc::clone(&adapters.clock),
    ));
    let tokens = Tokens::new(
        adapters,
        settings.token_limit,
        AdminTokens::Refused,
        Some(Arc::clone(&credentials)),
    )
    .with_policy(settings.lifetime, exempt);
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
    let authority: Arc<dyn CredentialAuthority> = credentials.clone();
    Ok(Started {
        usecases,
        credentials: authority,
        verification,
        bootstrap,
        view: credentials,
        adapters: view_adapters,
    })
}

/// The operator's commands over the configured storage. Nothing is read or
/// written until a command runs, and a command writes only what it changes.
pub fn operator(adapters: Adapters, settings: &ServiceSettings) -> Arc<dyn OperatorCommands> {
    Arc::new(Operator::new(adapters, settings, settings.declared()))
}
