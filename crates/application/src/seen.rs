//! Last-seen bookkeeping: authentication records here, in memory, and a
//! periodic flush writes the batch, so no request waits on a database write.

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};

use chrono::{DateTime, Utc};
use keywarden_domain::Selector;

#[derive(Debug, Default)]
pub(crate) struct SeenTracker {
    pending: Mutex<HashMap<Selector, DateTime<Utc>>>,
}

impl SeenTracker {
    pub(crate) fn record(&self, selector: Selector, at: DateTime<Utc>) {
        let mut pending = self.pending.lock().unwrap_or_else(PoisonError::into_inner);
        let latest = pending.entry(selector).or_insert(at);
        if at > *latest {
            *latest = at;
        }
    }

    pub(crate) fn take(&self) -> Vec<(Selector, DateTime<Utc>)> {
        std::mem::take(&mut *self.pending.lock().unwrap_or_else(PoisonError::into_inner))
            .into_iter()
            .collect()
    }

    /// Puts back a batch whose write failed, without losing newer sightings.
    pub(crate) fn restore(&self, batch: Vec<(Selector, DateTime<Utc>)>) {
        for (selector, at) in batch {
            self.record(selector, at);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn keeps_the_latest_sighting_per_token() {
        let tracker = SeenTracker::default();
        let early = Utc.timestamp_opt(100, 0).unwrap();
        let late = Utc.timestamp_opt(200, 0).unwrap();
        let a = Selector::from_bytes([1; 16]);
        tracker.record(a, late);
        tracker.record(a, early);
        assert_eq!(tracker.take(), vec![(a, late)]);
        assert!(tracker.take().is_empty());
        tracker.record(a, late);
        tracker.restore(vec![(a, early)]);
        assert_eq!(tracker.take(), vec![(a, late)]);
    }
}
