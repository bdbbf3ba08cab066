//! The circuit breaker behind every retry of the background work (creating
//! the next segment, writing held records): after a failure it waits, twice
//! as long after each further failure, up to a maximum.

use std::time::Duration;

use jiff::{SignedDuration, Timestamp};

use crate::stats::FallbackState;

/// Exponential backoff with the three circuit-breaker states: closed (no
/// failure), open (failed; wait until `open_until`), half-open (the wait
/// is over; the next attempt decides).
#[derive(Debug)]
pub(crate) struct Breaker {
    pub(crate) failures: u32,
    pub(crate) open_until: Option<Timestamp>,
    min: Duration,
    max: Duration,
}

impl Breaker {
    pub(crate) fn new(min: Duration, max: Duration) -> Breaker {
        Breaker {
            failures: 0,
            open_until: None,
            min,
            max,
        }
    }

    pub(crate) fn allow(&self, now: Timestamp) -> bool {
        self.open_until.is_none_or(|t| now >= t)
    }

    pub(crate) fn fail(&mut self, now: Timestamp) {
        self.failures = self.failures.saturating_add(1);
        let shift = self.failures.saturating_sub(1).min(20);
        let backoff = self.min.saturating_mul(1 << shift).min(self.max);
        let d = SignedDuration::try_from(backoff).unwrap_or(SignedDuration::MAX);
        self.open_until = Some(now.checked_add(d).unwrap_or(Timestamp::MAX));
    }

    pub(crate) fn succeed(&mut self) {
        self.failures = 0;
        self.open_until = None;
    }

    pub(crate) fn state(&self, now: Timestamp) -> FallbackState {
        match self.open_until {
            None => FallbackState::Closed,
            Some(t) if now < t => FallbackState::Open,
            Some(_) => FallbackState::HalfOpen,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(secs: i64) -> Timestamp {
        Timestamp::from_second(secs).unwrap()
    }

    #[test]
    fn backoff_doubles_up_to_the_maximum_and_success_closes_it() {
        let mut b = Breaker::new(Duration::from_secs(1), Duration::from_secs(5));
        assert!(b.allow(at(0)));
        assert_eq!(b.state(at(0)), FallbackState::Closed);
        b.fail(at(100));
        assert_eq!(b.open_until, Some(at(101)));
        assert!(!b.allow(at(100)));
        assert_eq!(b.state(at(100)), FallbackState::Open);
        assert!(b.allow(at(101)));
        assert_eq!(b.state(at(101)), FallbackState::HalfOpen);
        b.fail(at(101));
        assert_eq!(b.open_until, Some(at(103)));
        b.fail(at(103));
        assert_eq!(b.open_until, Some(at(107)));
        b.fail(at(107));
        // 8 s, capped at 5 s.
        assert_eq!(b.open_until, Some(at(112)));
        b.succeed();
        assert_eq!(b.failures, 0);
        assert_eq!(b.state(at(112)), FallbackState::Closed);
    }

    #[test]
    fn a_storm_of_failures_never_overflows() {
        let mut b = Breaker::new(Duration::from_secs(1), Duration::MAX);
        for _ in 0..10_000 {
            b.fail(at(0));
        }
        assert!(b.open_until.is_some());
        assert!(!b.allow(at(0)));
    }
}
