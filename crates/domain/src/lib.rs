//! keywarden's domain: API tokens as the Unleash Admin API defines them, their
//! credentials (the v2 format and operator-chosen legacy secrets), and the audit
//! events that record changes to them. Plain data and rules only: no I/O, no
//! async, no framework types, so every rule is testable on its own.

mod audit;
mod catalog;
mod credential;
mod error;
#[cfg(any(test, feature = "test-support"))]
pub mod fixtures;
mod scope;
mod time;
mod token;

pub use audit::{AuditEvent, EventType, StoredEvent, TokenFacts};
pub use catalog::{Environment, Project};
pub use credential::{Credential, SecretMaterial, Selector, TokenRef, Verifier};
pub use error::DomainError;
pub use scope::{AcceptedTypes, OutOfScope, RequiredScope};
pub use time::{format_millis, parse_offset_date_time, representable, truncate_to_millis};
pub use token::{
    ApiToken, EnvironmentName, EnvironmentScope, NewToken, ProjectId, Projects, TokenName,
    TokenType,
};
