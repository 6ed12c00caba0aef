//! The lifetime policy: how long a token may live (`max_lifetime`), the
//! lifetime it gets when none is asked for (`default_lifetime`), and whether
//! it must expire at all (`require_expiry`). Also the operator's duration
//! notation (`90s 15m 12h 30d 2w`) in which these are configured.

use chrono::{DateTime, Duration, Utc};
use thiserror::Error;

use crate::ApiToken;

/// A duration as configuration and the command line write it: a whole
/// number and one unit of `s`, `m`, `h`, `d` or `w` (`90s`, `30d`, `2w`).
///
/// # Errors
/// A message saying what is wrong, for the operator.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let hint = || format!("{text:?} is not a duration: write e.g. 90s, 15m, 12h, 30d or 2w");
    let text = text.trim();
    let unit = text.chars().last().ok_or_else(hint)?;
    let amount: i64 = text[..text.len() - unit.len_utf8()]
        .parse()
        .ok()
        .filter(|n| *n > 0)
        .ok_or_else(hint)?;
    let seconds = match unit {
        's' => 1,
        'm' => 60,
        'h' => 3_600,
        'd' => 86_400,
        'w' => 604_800,
        _ => return Err(hint()),
    };
    amount
        .checked_mul(seconds)
        .and_then(Duration::try_seconds)
        // No token outlives year 9999 anyway; longer is a typo.
        .filter(|d| *d <= Duration::days(3_000_000))
        .ok_or_else(hint)
}

/// `30d`, `12h`, …: a duration in the largest unit that divides it, as the
/// operator would write it back.
pub fn format_duration(duration: Duration) -> String {
    let seconds = duration.num_seconds();
    for (unit, size) in [("w", 604_800), ("d", 86_400), ("h", 3_600), ("m", 60)] {
        if seconds != 0 && seconds % size == 0 {
            return format!("{}{unit}", seconds / size);
        }
    }
    format!("{seconds}s")
}

/// Why an expiry is refused; the message names the limit.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum PolicyViolation {
    #[error("expiresAt is beyond the maximum token lifetime of {} (tokens.max_lifetime): it must be at most {}", format_duration(*max), crate::format_millis(latest))]
    BeyondMaxLifetime {
        max: Duration,
        latest: DateTime<Utc>,
    },
    #[error("tokens must expire (tokens.require_expiry): give an expiresAt")]
    ExpiryRequired,
}

/// The lifetime rules new expiries obey. The default policy allows anything.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LifetimePolicy {
    pub max_lifetime: Option<Duration>,
    pub default_lifetime: Option<Duration>,
    pub require_expiry: bool,
}

impl LifetimePolicy {
    /// The latest expiry allowed for a change made at `now`.
    fn latest(&self, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
        self.max_lifetime.map(|max| {
            now.checked_add_signed(max)
                .unwrap_or(DateTime::<Utc>::MAX_UTC)
        })
    }

    /// Checks an expiry asked for at `now` (`None`: never).
    ///
    /// # Errors
    /// Beyond `now + max_lifetime`, or none when one is required.
    pub fn check(
        &self,
        expires_at: Option<DateTime<Utc>>,
        now: DateTime<Utc>,
    ) -> Result<(), PolicyViolation> {
        match (expires_at, self.latest(now)) {
            (Some(at), Some(latest)) if at > latest => Err(PolicyViolation::BeyondMaxLifetime {
                max: self.max_lifetime.unwrap_or_default(),
                latest,
            }),
            (None, _) if self.require_expiry => Err(PolicyViolation::ExpiryRequired),
            _ => Ok(()),
        }
    }

    /// The expiry of a token made at `now` with none asked for: `fallback`
    /// (a lifetime the caller prefers, e.g. the rotated token's), else
    /// `default_lifetime`, else never; capped at `max_lifetime`.
    pub fn default_expiry(
        &self,
        fallback: Option<Duration>,
        now: DateTime<Utc>,
    ) -> Option<DateTime<Utc>> {
        let wanted = fallback.or(self.default_lifetime).map(|lifetime| {
            now.checked_add_signed(lifetime)
                .unwrap_or(DateTime::<Utc>::MAX_UTC)
        });
        match (wanted, self.latest(now)) {
            (Some(wanted), Some(latest)) => Some(wanted.min(latest)),
            (wanted, latest) => wanted.or(latest),
        }
    }

    /// The expiry a create or rotate at `now` gets: the one asked for, which
    /// must obey the policy, or the default.
    ///
    /// # Errors
    /// As for [`LifetimePolicy::check`].
    pub fn resolve(
        &self,
        requested: Option<DateTime<Utc>>,
        fallback: Option<Duration>,
        now: DateTime<Utc>,
    ) -> Result<Option<DateTime<Utc>>, PolicyViolation> {
        let expires_at = requested.or_else(|| self.default_expiry(fallback, now));
        self.check(expires_at, now)?;
        Ok(expires_at.map(crate::truncate_to_millis))
    }

    /// Whether a stored token breaks the policy (it was made before it):
    /// it lives longer than `max_lifetime` from its creation (never expiring
    /// is longer than any), or never expires where expiry is required.
    pub fn violated_by(&self, token: &ApiToken) -> bool {
        let never = self.max_lifetime.map(|_| DateTime::<Utc>::MAX_UTC);
        self.check(token.expires_at().or(never), token.created_at())
            .is_err()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixtures::{at, stored, token};
    use crate::TokenType;

    fn policy(max: Option<&str>, default: Option<&str>, require: bool) -> LifetimePolicy {
        LifetimePolicy {
            max_lifetime: max.map(|d| parse_duration(d).unwrap()),
            default_lifetime: default.map(|d| parse_duration(d).unwrap()),
            require_expiry: require,
        }
    }

    #[test]
    fn durations_are_written_with_one_unit() {
        assert_eq!(parse_duration("90s"), Ok(Duration::seconds(90)));
        assert_eq!(parse_duration("15m"), Ok(Duration::minutes(15)));
        assert_eq!(parse_duration("12h"), Ok(Duration::hours(12)));
        assert_eq!(parse_duration("30d"), Ok(Duration::days(30)));
        assert_eq!(parse_duration("2w"), Ok(Duration::weeks(2)));
        for bad in [
            "",
            "d",
            "30",
            "0d",
            "-1d",
            "1.5d",
            "30D",
            "P30D",
            "1y",
            "99999999999w",
        ] {
            assert!(parse_duration(bad).is_err(), "{bad:?}");
        }
        assert_eq!(format_duration(Duration::days(365)), "365d");
        assert_eq!(format_duration(Duration::weeks(2)), "2w");
        assert_eq!(format_duration(Duration::seconds(90)), "90s");
    }

    #[test]
    fn expiries_beyond_the_maximum_are_refused_naming_it() {
        let p = policy(Some("1d"), None, false);
        assert_eq!(p.check(Some(at(86_400)), at(0)), Ok(()));
        let err = p.check(Some(at(86_401)), at(0)).unwrap_err();
        assert!(err.to_string().contains("1d"), "{err}");
        assert!(err.to_string().contains("tokens.max_lifetime"), "{err}");
        // Without a requirement, "never" is not beyond the maximum when asked for…
        assert_eq!(p.check(None, at(0)), Ok(()));
        // …but a default of never is capped at it.
        assert_eq!(p.resolve(None, None, at(0)), Ok(Some(at(86_400))));
    }

    #[test]
    fn required_expiry_refuses_never() {
        let p = policy(None, None, true);
        assert_eq!(p.check(None, at(0)), Err(PolicyViolation::ExpiryRequired));
        assert!(p
            .check(None, at(0))
            .unwrap_err()
            .to_string()
            .contains("tokens.require_expiry"));
        assert_eq!(
            p.resolve(None, None, at(0)),
            Err(PolicyViolation::ExpiryRequired)
        );
        assert_eq!(p.check(Some(at(1)), at(0)), Ok(()));
    }

    #[test]
    fn defaults_prefer_the_fallback_then_the_default_and_are_capped() {
        let p = policy(Some("30d"), Some("7d"), false);
        assert_eq!(p.resolve(None, None, at(0)), Ok(Some(at(7 * 86_400))));
        assert_eq!(
            p.resolve(None, Some(Duration::days(1)), at(0)),
            Ok(Some(at(86_400)))
        );
        assert_eq!(
            p.resolve(None, Some(Duration::days(90)), at(0)),
            Ok(Some(at(30 * 86_400)))
        );
        assert_eq!(
            LifetimePolicy::default().resolve(None, None, at(0)),
            Ok(None)
        );
        // An explicit expiry is kept as asked.
        assert_eq!(p.resolve(Some(at(5)), None, at(0)), Ok(Some(at(5))));
    }

    #[test]
    fn violations_are_measured_from_creation() {
        let (ci, _) = token(1, "ci", TokenType::Backend, &["*"], at(0));
        let p = policy(Some("1d"), None, true);
        assert!(p.violated_by(&ci));
        assert!(p.violated_by(&stored(&ci, 1, Some(at(86_401)))));
        assert!(!p.violated_by(&stored(&ci, 1, Some(at(86_400)))));
        assert!(!LifetimePolicy::default().violated_by(&ci));
        assert!(policy(Some("1d"), None, false).violated_by(&ci));
        assert!(policy(None, None, true).violated_by(&ci));
        assert!(!policy(None, Some("1d"), false).violated_by(&ci));
    }
}
