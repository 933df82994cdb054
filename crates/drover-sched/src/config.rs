//! Dispatcher settings: the mode (a policy of the one loop) and the knobs around it.

use std::time::Duration;

use bytes::Bytes;

use crate::breaker::BreakerConfig;
use crate::limit::AdaptiveConfig;
use crate::retry::RetryPolicy;

/// How tasks are spread over the fleet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// One request in flight in total, backends in round robin (the seed's mode 1).
    Serial,
    /// N requests in flight in total, round robin (the seed's mode 2, `MAX_WORKERS=N`).
    Concurrent(usize),
    /// Per-backend adaptive limits and load-aware picking (drover's default).
    Adaptive,
}

impl Mode {
    /// The mode's name as the CLI spells it.
    pub fn name(self) -> &'static str {
        match self {
            Mode::Serial => "serial",
            Mode::Concurrent(_) => "concurrent",
            Mode::Adaptive => "adaptive",
        }
    }

    /// The total in-flight cap, if the mode has one.
    pub fn global_limit(self) -> Option<usize> {
        match self {
            Mode::Serial => Some(1),
            Mode::Concurrent(n) => Some(n.max(1)),
            Mode::Adaptive => None,
        }
    }
}

/// Per-attempt deadline.
#[derive(Debug, Clone)]
pub struct TimeoutPolicy {
    /// `--timeout`: one deadline for every attempt.
    pub fixed: Option<Duration>,
    /// Otherwise: this much…
    pub base: Duration,
    /// …plus this much per token of `max_tokens`…
    pub per_token: Duration,
    /// …assuming this many tokens when a task sets no `max_tokens`.
    pub default_tokens: u32,
}

impl Default for TimeoutPolicy {
    fn default() -> Self {
        TimeoutPolicy {
            fixed: None,
            base: Duration::from_secs(60),
            per_token: Duration::from_millis(100),
            default_tokens: 2048,
        }
    }
}

impl TimeoutPolicy {
    /// The deadline for a task asking for `max_tokens`.
    pub fn for_task(&self, max_tokens: Option<u32>) -> Duration {
        self.fixed.unwrap_or_else(|| {
            self.base + self.per_token * max_tokens.unwrap_or(self.default_tokens)
        })
    }

    /// How long a backend may hold requests without producing a token before it counts as stalled.
    pub fn stall_after(&self) -> Duration {
        self.fixed.unwrap_or(self.base).min(Duration::from_secs(30))
    }
}

/// Whether attempts stream their answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StreamPolicy {
    /// Stream to backends without token metrics (to see their rate live), not to the others.
    Auto,
    /// Always stream.
    Always,
    /// Never stream.
    Never,
}

/// Everything the dispatcher needs besides its inputs.
#[derive(Debug, Clone)]
pub struct DispatchConfig {
    /// The policy.
    pub mode: Mode,
    /// Retries.
    pub retry: RetryPolicy,
    /// Ejection and re-admission.
    pub breaker: BreakerConfig,
    /// The adaptive controller (adaptive mode).
    pub adaptive: AdaptiveConfig,
    /// Attempt deadlines.
    pub timeout: TimeoutPolicy,
    /// Streaming.
    pub stream: StreamPolicy,
    /// How long to wait for a backend when all are down before failing the rest (`--max-wait`).
    pub max_wait: Duration,
    /// Re-send straggling tasks to idle backends at the end of the input (adaptive mode).
    pub hedge: bool,
    /// Tasks read ahead of dispatch; in adaptive mode the longest goes first.
    pub lookahead: usize,
    /// Controller and housekeeping period.
    pub tick: Duration,
    /// Metrics scrape period for backends that have metrics.
    pub scrape_interval: Duration,
    /// A tiny request proving a backend generates (re-admission of a stalled backend).
    pub probe_body: Option<Bytes>,
    /// Seed for picking and jitter.
    pub seed: u64,
}

impl Default for DispatchConfig {
    fn default() -> Self {
        DispatchConfig {
            mode: Mode::Adaptive,
            retry: RetryPolicy::default(),
            breaker: BreakerConfig::default(),
            adaptive: AdaptiveConfig::default(),
            timeout: TimeoutPolicy::default(),
            stream: StreamPolicy::Auto,
            max_wait: Duration::from_secs(600),
            hedge: true,
            lookahead: 2048,
            tick: Duration::from_millis(50),
            scrape_interval: Duration::from_millis(100),
            probe_body: None,
            seed: 0x5eed,
        }
    }
}
