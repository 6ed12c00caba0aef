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
mod ports;
mod seen;
#[cfg(test)]
mod testing;
mod tokens;
mod usecases;
mod verify;
mod view;

pub use assembly::{operator, start, Adapters, ServiceSettings, Started};
pub use background::{
    stop_signal, BackgroundTask, ChangeFollower, PeriodicResync, SeenFlusher, Stop, Stopper,
    ViewLoader,
};
pub use bootstrap::{check_init_token_strength, check_init_tokens, Bootstrap, InitToken};
pub use error::{error_chain, AppError, BoxError, RepositoryError};
pub use ports::{
    ApiTokenRepository, Clock, EventPage, EventSearch, ExpiryChange, RotateOutcome,
    SecretGenerator, StoredCredential,
};
#[cfg(any(test, feature = "mocks"))]
pub use ports::{MockApiTokenRepository, MockClock, MockSecretGenerator};
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
