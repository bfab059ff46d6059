//! A circuit breaker per upstream.
//!
//! Closed: calls go through; `failures` consecutive failures open it. Open: calls fail fast
//! (no connection attempt, no timeout wait) until the cool-down has passed. Then one probe is let
//! through (half-open): its success closes the breaker, its failure opens it again.

use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// Breaker state, for metrics and the admin API.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BreakerState {
    /// Calls flow.
    Closed,
    /// Calls fail fast.
    Open,
    /// One probe is in flight.
    HalfOpen,
}

#[derive(Debug)]
enum Inner {
    Closed { failures: u32 },
    Open { until: Instant },
    HalfOpen,
}

/// The breaker.
#[derive(Debug)]
pub struct Breaker {
    /// Closed with no failure counted: the hot path reads this flag and takes no lock.
    healthy: AtomicBool,
    inner: Mutex<Inner>,
    threshold: u32,
    cooldown: Duration,
}

impl Breaker {
    /// A closed breaker.
    pub fn new(threshold: u32, cooldown: Duration) -> Self {
        Self {
            healthy: AtomicBool::new(true),
            inner: Mutex::new(Inner::Closed { failures: 0 }),
            threshold: threshold.max(1),
            cooldown,
        }
    }

    /// Whether a call may go out now. In the open state after the cool-down, the first caller
    /// becomes the probe.
    pub fn allow(&self) -> bool {
        if self.healthy.load(Ordering::Acquire) {
            return true;
        }
        let mut inner = self.inner.lock().expect("breaker lock poisoned");
        match *inner {
            Inner::Closed { .. } => true,
            Inner::Open { until } if Instant::now() >= until => {
                *inner = Inner::HalfOpen;
                true
            }
            Inner::Open { .. } | Inner::HalfOpen => false,
        }
    }

    /// Records a call's result.
    pub fn record(&self, success: bool) {
        if success && self.healthy.load(Ordering::Acquire) {
            return;
        }
        let mut inner = self.inner.lock().expect("breaker lock poisoned");
        *inner = match (&*inner, success) {
            (_, true) => Inner::Closed { failures: 0 },
            (Inner::Closed { failures }, false) if failures + 1 < self.threshold => Inner::Closed {
                failures: failures + 1,
            },
            (_, false) => {
                tracing::warn!("circuit breaker opened");
                Inner::Open {
                    until: Instant::now() + self.cooldown,
                }
            }
        };
        self.healthy.store(
            matches!(*inner, Inner::Closed { failures: 0 }),
            Ordering::Release,
        );
    }

    /// The state now.
    pub fn state(&self) -> BreakerState {
        match *self.inner.lock().expect("breaker lock poisoned") {
            Inner::Closed { .. } => BreakerState::Closed,
            Inner::Open { .. } => BreakerState::Open,
            Inner::HalfOpen => BreakerState::HalfOpen,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn consecutive_failures_open_the_breaker_and_a_success_resets_the_count() {
        let b = Breaker::new(3, Duration::from_secs(60));
        b.record(false);
        b.record(false);
        b.record(true);
        b.record(false);
        b.record(false);
        assert!(b.allow(), "two failures after a success keep it closed");
        b.record(false);
        assert_eq!(b.state(), BreakerState::Open);
        assert!(!b.allow());
    }

    #[test]
    fn after_the_cooldown_exactly_one_probe_goes_through_and_its_result_decides() {
        let b = Breaker::new(1, Duration::from_millis(0));
        b.record(false);
        assert!(b.allow(), "the probe");
        assert!(!b.allow(), "only one probe at a time");
        b.record(true);
        assert_eq!(b.state(), BreakerState::Closed);
        b.record(false);
        assert_eq!(b.state(), BreakerState::Open);
    }
}
