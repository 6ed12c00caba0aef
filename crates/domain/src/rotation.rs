//! Rotation with an overlap window: a token is replaced by a successor that
//! copies its name, type, projects and environment, while the old credential
//! keeps working until `previousExpiresAt`. The rules — one successor per
//! token, no rotating an expired token, an overlap that never extends the old
//! token's life, the lifetime carried over — are checked here, against the
//! token as storage holds it at the moment of the change.

use chrono::{DateTime, Utc};
use thiserror::Error;

use crate::policy::{LifetimePolicy, PolicyViolation};
use crate::{format_millis, ApiToken, Credential, NewToken, SecretMaterial, Selector};

/// Why a rotation is refused.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum RotationRefused {
    /// Where admin tokens may not be made (the Admin API), they may not be rotated.
    #[error("Admin tokens cannot be rotated through the API: use `keywarden tokens rotate`")]
    AdminToken,
    #[error("previousExpiresAt must not be later than the token's own expiry, {}", format_millis(.0))]
    OverlapBeyondExpiry(DateTime<Utc>),
    #[error("the token has already expired")]
    AlreadyExpired,
    #[error("the token was already rotated (to {0}): rotate its successor instead")]
    AlreadyRotated(Selector),
    #[error("{0}")]
    Policy(#[from] PolicyViolation),
}

impl RotationRefused {
    /// Refusals caused by the token's state rather than by the request.
    pub fn is_conflict(&self) -> bool {
        matches!(self, Self::AlreadyExpired | Self::AlreadyRotated(_))
    }
}

/// A rotation asked for at `now`, with the randomness for the new credential;
/// applied to the old token by [`Rotation::apply`] inside the transaction
/// that stores it, so the rules see the token as committed.
#[derive(Debug)]
pub struct Rotation {
    pub previous_expires_at: DateTime<Utc>,
    /// The new token's expiry; `None` for the default.
    pub expires_at: Option<DateTime<Utc>>,
    pub policy: LifetimePolicy,
    pub admin_allowed: bool,
    pub material: SecretMaterial,
    pub now: DateTime<Utc>,
}

/// The outcome: the old token with its shortened life, its successor, and the
/// successor's credential (to be shown once).
#[derive(Debug, Clone)]
pub struct Rotated {
    pub retired: ApiToken,
    pub successor: ApiToken,
    pub credential: Credential,
}

impl Rotation {
    /// Rotates `old`, whose recorded successor is `successor` (if any).
    ///
    /// # Errors
    /// The first rule the rotation breaks.
    pub fn apply(
        self,
        old: &ApiToken,
        successor: Option<Selector>,
    ) -> Result<Rotated, RotationRefused> {
        if old.token_type().is_admin() && !self.admin_allowed {
            return Err(RotationRefused::AdminToken);
        }
        if !old.is_usable_at(self.now) {
            return Err(RotationRefused::AlreadyExpired);
        }
        if let Some(successor) = successor {
            return Err(RotationRefused::AlreadyRotated(successor));
        }
        let previous_expires_at = crate::truncate_to_millis(self.previous_expires_at);
        if let Some(own) = old.expires_at().filter(|own| previous_expires_at > *own) {
            return Err(RotationRefused::OverlapBeyondExpiry(own));
        }
        let lifetime = old.expires_at().map(|at| at - old.created_at());
        let expires_at = self.policy.resolve(self.expires_at, lifetime, self.now)?;
        let new = NewToken::new(
            old.name().clone(),
            old.token_type(),
            old.projects().clone(),
            old.environment().clone(),
            expires_at,
        )
        // The old token obeys the same scope rules, so this cannot fail; if
        // it did, the scope is an admin one this door may not make.
        .map_err(|_| RotationRefused::AdminToken)?;
        let (successor, credential) = new.issue(&self.material, self.now);
        Ok(Rotated {
            retired: old.with_expiry(previous_expires_at),
            successor,
            credential,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixtures::{at, material, stored, token};
    use crate::policy::parse_duration;
    use crate::TokenType;

    fn rotation(previous: i64, expires_at: Option<i64>, now: i64) -> Rotation {
        Rotation {
            previous_expires_at: at(previous),
            expires_at: expires_at.map(at),
            policy: LifetimePolicy::default(),
            admin_allowed: false,
            material: material(9),
            now: at(now),
        }
    }

    fn backend(expires_at: Option<i64>) -> ApiToken {
        let (ci, _) = token(1, "ci", TokenType::Backend, &["default", "other"], at(0));
        stored(&ci, 3, expires_at.map(at))
    }

    #[test]
    fn the_successor_copies_the_token_and_the_old_one_ends_at_the_overlap() {
        let old = backend(None);
        let rotated = rotation(200, Some(5000), 100).apply(&old, None).unwrap();
        let new = &rotated.successor;
        assert_eq!(new.name(), old.name());
        assert_eq!(new.token_type(), old.token_type());
        assert_eq!(new.projects(), old.projects());
        assert_eq!(new.environment(), old.environment());
        assert_eq!(new.expires_at(), Some(at(5000)));
        assert_eq!(new.created_at(), at(100));
        assert_ne!(new.selector(), old.selector());
        assert_eq!(rotated.credential.selector(), Some(new.selector()));
        assert_eq!(rotated.retired.expires_at(), Some(at(200)));
        assert_eq!(rotated.retired.selector(), old.selector());
    }

    #[test]
    fn the_lifetime_is_carried_over_from_now() {
        // Lived 1000 s from creation: the successor gets 1000 s from now.
        let rotated = rotation(500, None, 400)
            .apply(&backend(Some(1000)), None)
            .unwrap();
        assert_eq!(rotated.successor.expires_at(), Some(at(1400)));
        // No expiry, no default: never.
        let rotated = rotation(500, None, 400)
            .apply(&backend(None), None)
            .unwrap();
        assert_eq!(rotated.successor.expires_at(), None);
        // Else the default lifetime, capped at the maximum.
        let mut capped = rotation(500, None, 400);
        capped.policy.default_lifetime = Some(parse_duration("2w").unwrap());
        capped.policy.max_lifetime = Some(parse_duration("1d").unwrap());
        let rotated = capped.apply(&backend(None), None).unwrap();
        assert_eq!(rotated.successor.expires_at(), Some(at(400 + 86_400)));
    }

    #[test]
    fn an_explicit_expiry_beyond_the_maximum_is_refused() {
        let mut beyond = rotation(500, Some(400 + 86_401), 400);
        beyond.policy.max_lifetime = Some(parse_duration("1d").unwrap());
        assert!(matches!(
            beyond.apply(&backend(None), None),
            Err(RotationRefused::Policy(
                PolicyViolation::BeyondMaxLifetime { .. }
            ))
        ));
    }

    #[test]
    fn a_past_overlap_cuts_the_old_token_off_now() {
        let rotated = rotation(0, None, 400).apply(&backend(None), None).unwrap();
        assert!(!rotated.retired.is_usable_at(at(400)));
    }

    #[test]
    fn the_overlap_never_extends_the_old_token() {
        let refused = rotation(1001, None, 400).apply(&backend(Some(1000)), None);
        assert_eq!(
            refused.unwrap_err(),
            RotationRefused::OverlapBeyondExpiry(at(1000))
        );
        assert!(rotation(1000, None, 400)
            .apply(&backend(Some(1000)), None)
            .is_ok());
    }

    #[test]
    fn one_successor_per_token_and_none_for_expired_ones() {
        let old = backend(Some(1000));
        let taken = rotation(500, None, 400).apply(&old, Some(old.selector()));
        assert!(matches!(taken, Err(RotationRefused::AlreadyRotated(_))));
        assert!(taken.unwrap_err().is_conflict());
        let expired = rotation(500, None, 1000).apply(&old, None);
        assert_eq!(expired.unwrap_err(), RotationRefused::AlreadyExpired);
    }

    #[test]
    fn admin_tokens_only_where_they_may_be_made() {
        let (admin, _) = token(2, "admin", TokenType::Admin, &["*"], at(0));
        let refused = rotation(500, None, 400).apply(&admin, None);
        assert_eq!(refused.unwrap_err(), RotationRefused::AdminToken);
        let mut allowed = rotation(500, None, 400);
        allowed.admin_allowed = true;
        let rotated = allowed.apply(&admin, None).unwrap();
        assert!(rotated.successor.token_type().is_admin());
        assert!(rotated.credential.expose_secret().starts_with("*:*."));
    }
}
