//! Retries: *whether* (the failure's class and the attempt budget) and *how long* to wait
//! (exponential backoff with full jitter, or the server's Retry-After when it gave one).
//!
//! Full jitter (AWS Architecture Blog, "Exponential Backoff And Jitter", 2015) spreads the
//! retries of many tasks that failed together — a backend that died with 256 requests in
//! flight — instead of sending them back in one burst.

use std::time::Duration;

use drover_types::Failure;
use rand::RngExt;

/// Retry settings.
#[derive(Debug, Clone)]
pub struct RetryPolicy {
    /// Attempts per task, the first included (`--attempts`, default 5).
    pub attempts: u32,
    /// Backoff before the first retry.
    pub base: Duration,
    /// Longest backoff.
    pub cap: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            attempts: 5,
            base: Duration::from_millis(250),
            cap: Duration::from_secs(20),
        }
    }
}

impl RetryPolicy {
    /// Whether a task that failed with `failure` after `attempts_made` attempts gets another.
    pub fn should_retry(&self, failure: &Failure, attempts_made: u32) -> bool {
        failure.is_transient() && attempts_made < self.attempts
    }

    /// How long to wait before attempt `attempts_made + 1`. A server's Retry-After wins (it
    /// knows its own queue), capped so a confused server cannot park a task for hours.
    pub fn backoff(
        &self,
        failure: &Failure,
        attempts_made: u32,
        rng: &mut impl rand::Rng,
    ) -> Duration {
        if let Failure::Overloaded {
            retry_after: Some(ra),
            ..
        } = failure
        {
            return (*ra).min(self.cap.max(Duration::from_secs(60)));
        }
        let exp = attempts_made.saturating_sub(1).min(16);
        let ceiling = self.base.saturating_mul(1 << exp).min(self.cap);
        ceiling.mul_f64(rng.random_range(0.0..=1.0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand::rngs::SmallRng;

    #[test]
    fn only_transient_failures_within_budget_retry() {
        let p = RetryPolicy::default();
        assert!(p.should_retry(&Failure::Reset, 1));
        assert!(p.should_retry(&Failure::Server { status: 500 }, 4));
        assert!(!p.should_retry(&Failure::Server { status: 500 }, 5));
        assert!(!p.should_retry(&Failure::Rejected { status: 400 }, 1));
        assert!(!p.should_retry(&Failure::InvalidAnswer, 1));
    }

    #[test]
    fn backoff_grows_is_jittered_and_capped() {
        let p = RetryPolicy {
            attempts: 20,
            base: Duration::from_millis(100),
            cap: Duration::from_secs(2),
        };
        let mut rng = SmallRng::seed_from_u64(3);
        for attempt in 1..15 {
            let ceiling = Duration::from_millis(100 * (1 << (attempt - 1).min(16)))
                .min(Duration::from_secs(2));
            for _ in 0..50 {
                assert!(p.backoff(&Failure::Reset, attempt, &mut rng) <= ceiling);
            }
        }
        let mean: f64 = (0..1000)
            .map(|_| p.backoff(&Failure::Reset, 10, &mut rng).as_secs_f64())
            .sum::<f64>()
            / 1000.0;
        assert!(
            (0.85..1.15).contains(&mean),
            "full jitter averages half the cap: {mean}"
        );
    }

    #[test]
    fn retry_after_wins() {
        let p = RetryPolicy::default();
        let mut rng = SmallRng::seed_from_u64(3);
        let f = Failure::Overloaded {
            status: 429,
            retry_after: Some(Duration::from_secs(3)),
        };
        assert_eq!(p.backoff(&f, 1, &mut rng), Duration::from_secs(3));
        let f = Failure::Overloaded {
            status: 429,
            retry_after: Some(Duration::from_secs(9999)),
        };
        assert_eq!(p.backoff(&f, 1, &mut rng), Duration::from_secs(60));
    }
}
