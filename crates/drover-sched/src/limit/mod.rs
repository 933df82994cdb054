//! Concurrency limits per backend: how many requests it may have in flight.
//!
//! - [`Limit::Unlimited`]: the seed's modes, where only the global limit (1 for serial, N for
//!   concurrent) counts.
//! - [`Limit::Adaptive`]: drover's default, [`AdaptiveLimit`] finds each backend's saturation
//!   point and follows it.

mod adaptive;

pub use adaptive::{AdaptiveConfig, AdaptiveLimit, Observation, Phase, ServerView};

/// One backend's limit.
#[derive(Debug, Clone)]
pub enum Limit {
    /// No per-backend limit.
    Unlimited,
    /// A fixed per-backend limit (`--max-per-backend` with `--mode adaptive --fixed`, tests).
    Fixed(usize),
    /// Found by the controller.
    Adaptive(Box<AdaptiveLimit>),
}

impl Limit {
    /// Requests this backend may have in flight now.
    pub fn get(&self) -> usize {
        match self {
            Limit::Unlimited => usize::MAX,
            Limit::Fixed(n) => *n,
            Limit::Adaptive(a) => a.limit(),
        }
    }

    /// The value to show in reports (`None` when unlimited).
    pub fn shown(&self) -> Option<usize> {
        match self {
            Limit::Unlimited => None,
            other => Some(other.get()),
        }
    }
}
