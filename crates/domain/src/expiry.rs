//! Expiry warnings (lifecycle §4): which notices a token's expiry calls for
//! at a given instant, given those already recorded. A notice is recorded
//! once per token, threshold and expiry value; storage enforces the "once",
//! this module decides the "which".

use chrono::{DateTime, Duration, Utc};

use crate::policy::parse_duration;

/// The label recorded for the notice that a token's expiry passed. Threshold
/// labels are durations (`7d`), which never read `expired`.
pub const EXPIRED_NOTICE: &str = "expired";

/// The thresholds before expiry at which a token is announced as expiring.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExpiryWarnings {
    /// Label as the operator wrote it, and the duration; tightest first.
    thresholds: Vec<(String, Duration)>,
}

/// What to record for one token now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DueNotices {
    /// Labels to record (each at most once per token and expiry).
    pub record: Vec<String>,
    /// The event to write with them, if any.
    pub announce: Option<Announcement>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Announcement {
    /// `api-token-expiring` for this threshold label.
    Expiring(String),
    /// `api-token-expired`.
    Expired,
}

impl ExpiryWarnings {
    /// Thresholds in the operator's notation (`7d`, `1d`, `12h`); equal
    /// durations count once.
    ///
    /// # Errors
    /// The first text that is not a duration, with the reason.
    pub fn parse<S: AsRef<str>>(texts: &[S]) -> Result<Self, String> {
        let mut thresholds: Vec<(String, Duration)> = Vec::new();
        for text in texts {
            let text = text.as_ref().trim();
            let duration = parse_duration(text)?;
            if thresholds.iter().all(|(_, d)| *d != duration) {
                thresholds.push((text.to_string(), duration));
            }
        }
        thresholds.sort_by_key(|(_, d)| *d);
        Ok(Self { thresholds })
    }

    /// Expiries at or before this instant may call for a notice now.
    pub fn horizon(&self, now: DateTime<Utc>) -> DateTime<Utc> {
        let widest = self.thresholds.last().map_or(Duration::zero(), |(_, d)| *d);
        now.checked_add_signed(widest)
            .unwrap_or(DateTime::<Utc>::MAX_UTC)
    }

    /// What a token expiring at `expires_at` calls for at `now`, `noticed`
    /// being the labels already recorded for this expiry.
    ///
    /// Once expired, only the expired notice is due. Before that, every
    /// threshold the expiry is within is due, but only the tightest is
    /// announced: a token that comes within `1d` (or is created already
    /// within it) gets one warning saying `1d`, not one per wider threshold
    /// at the same moment; the wider ones are recorded silently so they never
    /// fire late.
    pub fn due(
        &self,
        expires_at: DateTime<Utc>,
        now: DateTime<Utc>,
        noticed: &[String],
    ) -> Option<DueNotices> {
        let is_noticed = |label: &str| noticed.iter().any(|n| n == label);
        if now >= expires_at {
            return (!is_noticed(EXPIRED_NOTICE)).then(|| DueNotices {
                record: vec![EXPIRED_NOTICE.to_string()],
                announce: Some(Announcement::Expired),
            });
        }
        let within: Vec<&String> = self
            .thresholds
            .iter()
            .filter(|(_, d)| expires_at.checked_sub_signed(*d).is_none_or(|at| at <= now))
            .map(|(label, _)| label)
            .collect();
        let tightest = within.first()?;
        let record: Vec<String> = within
            .iter()
            .filter(|label| !is_noticed(label))
            .map(|label| (*label).clone())
            .collect();
        if record.is_empty() {
            return None;
        }
        let announce = (!is_noticed(tightest)).then(|| Announcement::Expiring((*tightest).clone()));
        Some(DueNotices { record, announce })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixtures::at;

    fn warnings() -> ExpiryWarnings {
        ExpiryWarnings::parse(&["7d", "1d"]).unwrap()
    }

    const DAY: i64 = 86_400;

    #[test]
    fn nothing_is_due_before_the_widest_threshold() {
        assert_eq!(warnings().due(at(8 * DAY), at(0), &[]), None);
        assert_eq!(warnings().horizon(at(0)), at(7 * DAY));
    }

    #[test]
    fn each_threshold_is_announced_once_as_the_expiry_nears() {
        let w = warnings();
        let expiry = at(10 * DAY);
        let first = w.due(expiry, at(3 * DAY), &[]).unwrap();
        assert_eq!(first.record, vec!["7d".to_string()]);
        assert_eq!(first.announce, Some(Announcement::Expiring("7d".into())));
        assert_eq!(w.due(expiry, at(4 * DAY), &first.record), None);
        let second = w.due(expiry, at(9 * DAY), &first.record).unwrap();
        assert_eq!(second.record, vec!["1d".to_string()]);
        assert_eq!(second.announce, Some(Announcement::Expiring("1d".into())));
        let noticed = ["7d".to_string(), "1d".to_string()];
        let expired = w.due(expiry, at(10 * DAY), &noticed).unwrap();
        assert_eq!(expired.record, vec![EXPIRED_NOTICE.to_string()]);
        assert_eq!(expired.announce, Some(Announcement::Expired));
        let all = [
            noticed[0].clone(),
            noticed[1].clone(),
            EXPIRED_NOTICE.into(),
        ];
        assert_eq!(w.due(expiry, at(11 * DAY), &all), None);
    }

    #[test]
    fn a_token_already_within_several_thresholds_gets_one_warning_for_the_tightest() {
        let due = warnings().due(at(DAY / 2), at(0), &[]).unwrap();
        assert_eq!(due.record, vec!["1d".to_string(), "7d".to_string()]);
        assert_eq!(due.announce, Some(Announcement::Expiring("1d".into())));
        // A wider threshold added later is recorded, never announced late.
        let late = warnings().due(at(DAY / 2), at(0), &["1d".into()]).unwrap();
        assert_eq!(late.record, vec!["7d".to_string()]);
        assert_eq!(late.announce, None);
    }

    #[test]
    fn an_expired_token_gets_only_the_expired_notice() {
        let due = warnings().due(at(0), at(5), &[]).unwrap();
        assert_eq!(due.record, vec![EXPIRED_NOTICE.to_string()]);
    }

    #[test]
    fn thresholds_parse_in_the_operators_notation() {
        let w = ExpiryWarnings::parse(&["1d", "24h", "7d"]).unwrap();
        assert_eq!(w.thresholds.len(), 2, "24h is 1d: counted once");
        assert!(ExpiryWarnings::parse(&["soon"]).is_err());
        let none = ExpiryWarnings::parse::<&str>(&[]).unwrap();
        assert_eq!(none.due(at(100), at(0), &[]), None);
        assert_eq!(none.horizon(at(0)), at(0));
    }
}
