//! keywarden's domain: API tokens as the Unleash Admin API defines them, their
//! credentials (the v2 format and operator-chosen legacy secrets), and the audit
//! events that record changes to them. Plain data and rules only: no I/O, no
//! async, no framework types, so every rule is testable on its own.

mod audit;
mod catalog;
mod credential;
mod error;
mod expiry;
#[cfg(any(test, feature = "test-support"))]
pub mod fixtures;
mod policy;
mod rotation;
mod scope;
mod time;
mod token;

pub use audit::{Actor, AuditEvent, EventType, StoredEvent, TokenFacts, SYSTEM};
pub use catalog::{Environment, Project};
pub use credential::{
    Credential, SecretMaterial, SecretStrength, Selector, TokenRef, Verifier, MIN_SECRET_CHARS,
    RECOMMENDED_SECRET_CHARS,
};
pub use error::DomainError;
pub use expiry::{Announcement, DueNotices, ExpiryWarnings, EXPIRED_NOTICE};
pub use policy::{format_duration, parse_duration, LifetimePolicy, PolicyViolation};
pub use rotation::{Rotated, Rotation, RotationRefused};
pub use scope::{AcceptedTypes, OutOfScope, RequiredScope};
pub use time::{format_millis, parse_offset_date_time, representable, truncate_to_millis};
pub use token::{
    ApiToken, EnvironmentName, EnvironmentScope, NewToken, ProjectId, Projects, TokenName,
    TokenType,
};
