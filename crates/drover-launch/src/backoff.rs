//! How long to wait before restarting an instance that died.
//!
//! Exponential: 1 s, 2 s, 4 s, … up to 30 s, so that a server that crashes at once (bad flag,
//! GPU out of memory) does not spin, while a rare crash costs one second. An instance that had
//! stayed up for `stable` starts again from the first delay: its crash is a new incident, not
//! the next in a loop.

use std::time::Duration;

/// Restart delays.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    /// Delay after the first crash.
    pub first: Duration,
    /// Longest delay.
    pub max: Duration,
    /// Up this long, an instance's next crash starts over from `first`.
    pub stable: Duration,
}

impl Default for Backoff {
    fn default() -> Self {
        Backoff {
            first: Duration::from_secs(1),
            max: Duration::from_secs(30),
            stable: Duration::from_secs(60),
        }
    }
}

/// The delays of one instance.
#[derive(Debug, Clone)]
pub(crate) struct BackoffState {
    config: Backoff,
    next: Duration,
}

impl BackoffState {
    pub(crate) fn new(config: Backoff) -> BackoffState {
        BackoffState {
            config,
            next: config.first,
        }
    }

    /// The delay before restarting a process that ran for `up_for`.
    pub(crate) fn after_crash(&mut self, up_for: Duration) -> Duration {
        if up_for >= self.config.stable {
            self.next = self.config.first;
        }
        let delay = self.next.min(self.config.max);
        self.next = (delay * 2).min(self.config.max);
        delay
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doubles_to_the_cap_and_resets_after_a_stable_run() {
        let mut b = BackoffState::new(Backoff::default());
        let quick = Duration::from_millis(300);
        let delays: Vec<u64> = (0..7).map(|_| b.after_crash(quick).as_secs()).collect();
        assert_eq!(delays, [1, 2, 4, 8, 16, 30, 30]);
        assert_eq!(
            b.after_crash(Duration::from_secs(61)),
            Duration::from_secs(1)
        );
        assert_eq!(b.after_crash(quick), Duration::from_secs(2));
    }
}
