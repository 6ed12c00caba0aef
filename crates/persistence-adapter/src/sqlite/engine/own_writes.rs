//! The audit events this process committed, so the change feed does not
//! report them back as changes made elsewhere: the credential view already
//! holds them, and re-reading every token this process writes would double
//! the cost of a write. Ranges are recorded after commit, in commit order.

use std::collections::VecDeque;
use std::ops::RangeInclusive;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, PoisonError};

#[derive(Debug)]
pub(crate) struct OwnWrites {
    followed: AtomicBool,
    ranges: Mutex<VecDeque<RangeInclusive<i64>>>,
    /// Beyond this many unread ranges the oldest are forgotten; the feed then
    /// reports those writes as if made elsewhere, which costs a re-read, not
    /// correctness.
    max_ranges: usize,
}

impl OwnWrites {
    pub(crate) fn new(max_ranges: usize) -> Self {
        Self {
            followed: AtomicBool::new(false),
            ranges: Mutex::new(VecDeque::new()),
            max_ranges: max_ranges.max(1),
        }
    }

    /// From now on a feed reads the ranges (nothing is kept before).
    pub(crate) fn follow(&self) {
        self.followed.store(true, Ordering::Relaxed);
    }

    /// Whether a feed reads the ranges.
    pub(crate) fn followed(&self) -> bool {
        self.followed.load(Ordering::Relaxed)
    }

    /// Event ids `first..=last` were committed by this process.
    pub(crate) fn record(&self, first: i64, last: i64) {
        if first > last || !self.followed() {
            return;
        }
        let mut ranges = self.ranges.lock().unwrap_or_else(PoisonError::into_inner);
        match ranges.back_mut() {
            Some(previous) if *previous.end() + 1 == first => {
                *previous = *previous.start()..=last;
            }
            _ => ranges.push_back(first..=last),
        }
        if ranges.len() > self.max_ranges {
            ranges.pop_front();
        }
    }

    /// Whether this process wrote event `id`. Ids must be asked in increasing
    /// order: ranges below `id` are dropped.
    pub(crate) fn is_own(&self, id: i64) -> bool {
        let mut ranges = self.ranges.lock().unwrap_or_else(PoisonError::into_inner);
        while ranges.front().is_some_and(|range| *range.end() < id) {
            ranges.pop_front();
        }
        ranges.front().is_some_and(|range| range.contains(&id))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn own_ranges_merge_and_are_dropped_once_passed() {
        let own = OwnWrites::new(10_000);
        own.record(1, 3);
        assert!(
            own.ranges.lock().unwrap().is_empty(),
            "nothing kept unfollowed"
        );
        own.follow();
        own.record(4, 6);
        own.record(7, 7);
        own.record(9, 8); // a batch that wrote no event
        own.record(10, 12);
        assert_eq!(own.ranges.lock().unwrap().len(), 2, "4..=7 merged");
        assert!(!own.is_own(3));
        assert!(own.is_own(4) && own.is_own(7));
        assert!(!own.is_own(8), "written elsewhere");
        assert!(own.is_own(10) && own.is_own(12));
        assert!(!own.is_own(13));
        assert!(own.ranges.lock().unwrap().is_empty());
    }

    #[test]
    fn the_oldest_ranges_are_forgotten_beyond_the_cap() {
        let cap = 50;
        let own = OwnWrites::new(cap);
        own.follow();
        for i in 0..=i64::try_from(cap).unwrap() {
            own.record(i * 2, i * 2);
        }
        assert_eq!(own.ranges.lock().unwrap().len(), cap);
        assert!(!own.is_own(0), "forgotten: reported, which is safe");
        assert!(own.is_own(2));
    }
}
