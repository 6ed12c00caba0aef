//! keywarden's use cases: managing API tokens and authenticating the callers
//! of the Admin API. The outbound ports (storage, clock, randomness) and the
//! inbound port the HTTP adapter drives are defined here as traits; adapters
//! implement or call them, and nothing in this crate knows HTTP or SQL.

mod error;
mod ports;
mod seen;
mod service;
mod usecases;
mod verify;
mod view;

pub use error::{error_chain, AppError, BoxError, RepositoryError};
pub use ports::{ApiTokenRepository, Clock, ExpiryChange, SecretGenerator, StoredCredential};
#[cfg(any(test, feature = "mocks"))]
pub use ports::{MockApiTokenRepository, MockClock, MockSecretGenerator};
pub use service::{ApiTokenService, Bootstrap, ExternalChange, InitToken, ServiceSettings};
#[cfg(any(test, feature = "mocks"))]
pub use usecases::MockApiTokenUseCases;
pub use usecases::{ApiTokenUseCases, CreateToken, EventQuery, Principal};
#[cfg(any(test, feature = "mocks"))]
pub use verify::MockTokenVerification;
pub use verify::{InvalidScope, Refusal, TokenFacts, TokenVerification, VerifiedToken};
