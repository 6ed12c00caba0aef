//! keywarden's use cases: managing API tokens and authenticating the callers
//! of the Admin API. The outbound ports (storage, clock, randomness) and the
//! inbound ports the adapters and the composition root drive are traits
//! defined here; each job (Admin API, operator commands, the credential view,
//! bootstrap, the catalog, background loops) has its own type behind them,
//! and nothing in this crate knows HTTP or SQL.

mod admin;
mod assembly;
mod background;
mod bootstrap;
mod catalog;
mod credentials;
mod error;
#[cfg(test)]
mod lifecycle_tests;
mod notifications;
mod ports;
mod seen;
#[cfg(test)]
mod testing;
mod tokens;
mod usecases;
mod verify;
mod view;

pub use assembly::{
    operator, register_webhooks, start, webhook_status, Adapters, NamedTask, ServiceSettings,
    Started,
};
pub use background::{
    stop_signal, BackgroundTask, ChangeFollower, PeriodicResync, SeenFlusher, Stop, Stopper,
    ViewLoader,
};
pub use bootstrap::{check_init_token_strength, check_init_tokens, Bootstrap, InitToken};
pub use error::{error_chain, AppError, BoxError, RepositoryError};
#[cfg(any(test, feature = "mocks"))]
pub use notifications::MockWebhookSender;
pub use notifications::{
    backoff, instance_id, redact_endpoint, DeliveryError, Dispatcher, Endpoint, ExpiryWatch,
    NotificationSettings, SigningKey, UnusedTokenReaper, WebhookSender,
};
pub use ports::{
    ApiTokenRepository, Clock, Delivered, EndpointState, EndpointStatus, EventPage, EventSearch,
    ExpiryCandidate, ExpiryChange, ExpiryNotice, LogPosition, NotificationStore, PendingEvent,
    RotateOutcome, SecretGenerator, StoredCredential,
};
#[cfg(any(test, feature = "mocks"))]
pub use ports::{MockApiTokenRepository, MockClock, MockNotificationStore, MockSecretGenerator};
pub use usecases::{
    ApiTokenUseCases, CreateToken, CredentialAuthority, EventQuery, ExternalChange,
    OperatorCommands, Principal, RotateToken, SearchQuery,
};
#[cfg(any(test, feature = "mocks"))]
pub use usecases::{MockApiTokenUseCases, MockCredentialAuthority, MockOperatorCommands};
#[cfg(any(test, feature = "mocks"))]
pub use verify::MockTokenVerification;
pub use verify::{
    CredentialFacts, InvalidScope, Refusal, TokenScope, TokenVerification, VerifiedToken,
};
