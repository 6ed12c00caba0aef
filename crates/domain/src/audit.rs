//! Audit events: what changed, who changed it, and the token before and after,
//! described by the same secret-free snapshot that reads return.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::time::serde_millis;
use crate::ApiToken;

/// A token as the contract shows it on reads (and in audit events). `secret`
/// carries the selector, never the credential.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TokenSnapshot {
    pub secret: String,
    pub token_name: String,
    #[serde(rename = "type")]
    pub token_type: String,
    pub project: String,
    pub projects: Vec<String>,
    pub environment: String,
    #[serde(with = "serde_millis::option")]
    pub expires_at: Option<DateTime<Utc>>,
    #[serde(with = "serde_millis")]
    pub created_at: DateTime<Utc>,
    #[serde(with = "serde_millis::option")]
    pub seen_at: Option<DateTime<Utc>>,
    pub alias: Option<String>,
    pub secure: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventType {
    ApiTokenCreated,
    ApiTokenUpdated,
    ApiTokenDeleted,
}

impl EventType {
    pub const ALL: [EventType; 3] = [
        Self::ApiTokenCreated,
        Self::ApiTokenUpdated,
        Self::ApiTokenDeleted,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::ApiTokenCreated => "api-token-created",
            Self::ApiTokenUpdated => "api-token-updated",
            Self::ApiTokenDeleted => "api-token-deleted",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|kind| kind.as_str() == text)
    }
}

/// One change to one token, recorded in the same transaction as the change.
#[derive(Debug, Clone, PartialEq)]
pub struct AuditEvent {
    pub event_type: EventType,
    pub created_by: String,
    pub created_at: DateTime<Utc>,
    pub data: Option<TokenSnapshot>,
    pub pre_data: Option<TokenSnapshot>,
}

impl AuditEvent {
    pub fn token_created(token: &ApiToken, actor: &str, at: DateTime<Utc>) -> Self {
        Self::new(EventType::ApiTokenCreated, actor, at, Some(token), None)
    }

    pub fn token_updated(
        before: &ApiToken,
        after: &ApiToken,
        actor: &str,
        at: DateTime<Utc>,
    ) -> Self {
        Self::new(
            EventType::ApiTokenUpdated,
            actor,
            at,
            Some(after),
            Some(before),
        )
    }

    pub fn token_deleted(before: &ApiToken, actor: &str, at: DateTime<Utc>) -> Self {
        Self::new(EventType::ApiTokenDeleted, actor, at, None, Some(before))
    }

    fn new(
        event_type: EventType,
        actor: &str,
        at: DateTime<Utc>,
        data: Option<&ApiToken>,
        pre_data: Option<&ApiToken>,
    ) -> Self {
        Self {
            event_type,
            created_by: actor.to_string(),
            created_at: crate::truncate_to_millis(at),
            data: data.map(ApiToken::snapshot),
            pre_data: pre_data.map(ApiToken::snapshot),
        }
    }
}

/// An event as read back, with the id storage gave it (ids grow over time).
#[derive(Debug, Clone, PartialEq)]
pub struct StoredEvent {
    pub id: i64,
    pub event: AuditEvent,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::TokenType;
    use chrono::TimeZone;

    #[test]
    fn event_type_names_match_unleash() {
        for kind in EventType::ALL {
            assert_eq!(EventType::parse(kind.as_str()), Some(kind));
        }
        assert_eq!(EventType::ApiTokenUpdated.as_str(), "api-token-updated");
        assert_eq!(EventType::parse("feature-created"), None);
    }

    #[test]
    fn updated_events_carry_before_and_after_without_secrets() {
        let now = Utc.with_ymd_and_hms(2030, 1, 1, 0, 0, 0).unwrap();
        let (token, credential) = crate::fixtures::token(3, "admin", TokenType::Admin, &["*"], now);
        let after = token.with_expiry(now);
        let event = AuditEvent::token_updated(&token, &after, "admin", now);
        assert_eq!(event.pre_data.as_ref().unwrap().expires_at, None);
        assert_eq!(event.data.as_ref().unwrap().expires_at, Some(now));
        let json = serde_json::to_string(&event.data).unwrap();
        let random_part = credential.expose_secret().rsplit('_').next().unwrap();
        assert!(!json.contains(random_part));
        assert!(json.contains("\"expiresAt\":\"2030-01-01T00:00:00.000Z\""));
        assert!(json.contains("\"type\":\"admin\""));
    }
}
