//! Audit events: what changed, who changed it, and the token's public facts
//! before and after. How an event is shown (HTTP) or stored (persistence) is
//! the adapters' business: the domain only says what it records.

use chrono::{DateTime, Utc};

use crate::{ApiToken, EnvironmentScope, Projects, Selector, TokenName, TokenType};

/// The public facts of a token at the time of an event: everything but its
/// verifier and revision, so an audit trail can never leak a credential.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenFacts {
    pub selector: Selector,
    pub name: TokenName,
    pub token_type: TokenType,
    pub projects: Projects,
    pub environment: EnvironmentScope,
    pub expires_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub seen_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventType {
    ApiTokenCreated,
    ApiTokenUpdated,
    ApiTokenDeleted,
    /// A token's expiry came within a warning threshold (lifecycle §4).
    ApiTokenExpiring,
    /// A token's expiry passed.
    ApiTokenExpired,
}

impl EventType {
    pub const ALL: [EventType; 5] = [
        Self::ApiTokenCreated,
        Self::ApiTokenUpdated,
        Self::ApiTokenDeleted,
        Self::ApiTokenExpiring,
        Self::ApiTokenExpired,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::ApiTokenCreated => "api-token-created",
            Self::ApiTokenUpdated => "api-token-updated",
            Self::ApiTokenDeleted => "api-token-deleted",
            Self::ApiTokenExpiring => "api-token-expiring",
            Self::ApiTokenExpired => "api-token-expired",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|kind| kind.as_str() == text)
    }
}

/// The actor of what keywarden does by itself (expiry warnings, expiring
/// unused tokens).
pub const SYSTEM: &str = "system";

/// Who made a change: the name audit events record (a token's name, `cli`,
/// `system`) and, when a token acted, its identifier: names are not unique
/// (every bootstrap token is called `admin`), identifiers are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Actor {
    pub name: String,
    pub token: Option<Selector>,
}

impl Actor {
    /// An actor that is not a token (`cli`, `system`).
    pub fn named(name: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            token: None,
        }
    }

    pub fn token(name: impl Into<String>, selector: Selector) -> Self {
        Self {
            name: name.into(),
            token: Some(selector),
        }
    }
}

/// One change to one token, recorded in the same transaction as the change.
/// Built by the constructors below (or `restore`), so it always names its token.
#[derive(Debug, Clone, PartialEq)]
pub struct AuditEvent {
    subject: Selector,
    pub event_type: EventType,
    pub created_by: String,
    /// The acting token's identifier; `None` for `cli` and `system`.
    pub created_by_token: Option<Selector>,
    pub created_at: DateTime<Utc>,
    pub data: Option<TokenFacts>,
    pub pre_data: Option<TokenFacts>,
    /// For a token created by rotating another: that token's selector.
    pub rotated_from: Option<Selector>,
    /// For `api-token-expiring`: the warning threshold reached, as the
    /// operator wrote it (`7d`).
    pub threshold: Option<String>,
}

impl AuditEvent {
    pub fn token_created(token: &ApiToken, actor: &Actor, at: DateTime<Utc>) -> Self {
        Self::new(
            EventType::ApiTokenCreated,
            actor,
            at,
            token,
            Some(token),
            None,
        )
    }

    /// `successor` created by rotating `from`.
    pub fn token_rotated(
        successor: &ApiToken,
        from: &ApiToken,
        actor: &Actor,
        at: DateTime<Utc>,
    ) -> Self {
        Self::token_created(successor, actor, at).rotated_from(Some(from.selector()))
    }

    /// The event, recording that its token was rotated from `from`.
    pub fn rotated_from(self, from: Option<Selector>) -> Self {
        Self {
            rotated_from: from,
            ..self
        }
    }

    pub fn token_updated(
        before: &ApiToken,
        after: &ApiToken,
        actor: &Actor,
        at: DateTime<Utc>,
    ) -> Self {
        Self::new(
            EventType::ApiTokenUpdated,
            actor,
            at,
            after,
            Some(after),
            Some(before),
        )
    }

    pub fn token_deleted(before: &ApiToken, actor: &Actor, at: DateTime<Utc>) -> Self {
        Self::new(
            EventType::ApiTokenDeleted,
            actor,
            at,
            before,
            None,
            Some(before),
        )
    }

    /// `token`'s expiry came within `threshold` (its operator's text), by `system`.
    pub fn token_expiring(token: &ApiToken, threshold: &str, at: DateTime<Utc>) -> Self {
        Self {
            threshold: Some(threshold.to_string()),
            ..Self::new(
                EventType::ApiTokenExpiring,
                &Actor::named(SYSTEM),
                at,
                token,
                Some(token),
                None,
            )
        }
    }

    /// `token`'s expiry passed, by `system`.
    pub fn token_expired(token: &ApiToken, at: DateTime<Utc>) -> Self {
        Self::new(
            EventType::ApiTokenExpired,
            &Actor::named(SYSTEM),
            at,
            token,
            Some(token),
            None,
        )
    }

    /// The event, recording the warning threshold it announces.
    pub fn with_threshold(self, threshold: Option<String>) -> Self {
        Self { threshold, ..self }
    }

    /// `data` and `pre_data` are `subject` after and before the change.
    fn new(
        event_type: EventType,
        actor: &Actor,
        at: DateTime<Utc>,
        subject: &ApiToken,
        data: Option<&ApiToken>,
        pre_data: Option<&ApiToken>,
    ) -> Self {
        Self {
            subject: subject.selector(),
            event_type,
            created_by: actor.name.clone(),
            created_by_token: actor.token,
            created_at: crate::truncate_to_millis(at),
            data: data.map(ApiToken::facts),
            pre_data: pre_data.map(ApiToken::facts),
            rotated_from: None,
            threshold: None,
        }
    }

    /// An event read back from storage, which recorded its subject beside it.
    pub fn restore(
        subject: Selector,
        event_type: EventType,
        created_by: Actor,
        created_at: DateTime<Utc>,
        data: Option<TokenFacts>,
        pre_data: Option<TokenFacts>,
    ) -> Self {
        Self {
            subject,
            event_type,
            created_by: created_by.name,
            created_by_token: created_by.token,
            created_at,
            data,
            pre_data,
            rotated_from: None,
            threshold: None,
        }
    }

    /// The token the event is about.
    pub fn subject(&self) -> Selector {
        self.subject
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
    fn updated_events_carry_before_and_after_and_name_their_token() {
        let now = Utc.with_ymd_and_hms(2030, 1, 1, 0, 0, 0).unwrap();
        let (token, _) = crate::fixtures::token(3, "admin", TokenType::Admin, &["*"], now);
        let after = token.with_expiry(now);
        let actor = Actor::token("admin", token.selector());
        let event = AuditEvent::token_updated(&token, &after, &actor, now);
        assert_eq!(event.created_by_token, Some(token.selector()));
        assert_eq!(event.pre_data, Some(token.facts()));
        assert_eq!(event.data.as_ref().unwrap().expires_at, Some(now));
        assert_eq!(event.subject(), token.selector());
        let deleted = AuditEvent::token_deleted(&after, &Actor::named("cli"), now);
        assert_eq!(deleted.created_by_token, None);
        assert_eq!(
            (&deleted.data, deleted.subject()),
            (&None, token.selector())
        );
    }
}
