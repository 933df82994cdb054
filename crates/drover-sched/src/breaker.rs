//! A circuit breaker per backend: ejected after consecutive failures that blame it, probed
//! with growing pauses while out, re-admitted when a probe succeeds. Pure: time is passed in.

use std::time::{Duration, Instant};

use drover_types::Failure;

/// Breaker settings.
#[derive(Debug, Clone)]
pub struct BreakerConfig {
    /// Consecutive failures (blaming the backend) that eject it.
    pub threshold: u32,
    /// Consecutive connection failures that eject it (a refused connection is strong evidence).
    pub connect_threshold: u32,
    /// First pause before probing an ejected backend.
    pub min_open: Duration,
    /// Longest pause between probes.
    pub max_open: Duration,
}

impl Default for BreakerConfig {
    fn default() -> Self {
        BreakerConfig {
            threshold: 5,
            connect_threshold: 2,
            min_open: Duration::from_millis(500),
            max_open: Duration::from_secs(15),
        }
    }
}

/// Why a backend is out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OutReason {
    /// Too many failures in a row; the last one's message.
    Failing(String),
    /// Accepts requests but makes no progress.
    Stalled,
}

/// Where the breaker stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BreakerState {
    /// Taking traffic.
    Closed,
    /// Ejected; the next probe is due at `retry_at`.
    Open {
        /// Why it is out.
        reason: OutReason,
        /// When the next probe may start.
        retry_at: Instant,
        /// The pause that led to `retry_at` (doubles on each failed probe).
        pause: Duration,
    },
    /// A probe is running.
    Probing {
        /// Why it is out.
        reason: OutReason,
        /// The pause used before this probe.
        pause: Duration,
    },
}

/// One backend's breaker.
#[derive(Debug, Clone)]
pub struct Breaker {
    cfg: BreakerConfig,
    state: BreakerState,
    consecutive: u32,
    consecutive_connect: u32,
    ejections: u64,
}

impl Breaker {
    /// A closed breaker.
    pub fn new(cfg: BreakerConfig) -> Breaker {
        Breaker {
            cfg,
            state: BreakerState::Closed,
            consecutive: 0,
            consecutive_connect: 0,
            ejections: 0,
        }
    }

    /// Current state.
    pub fn state(&self) -> &BreakerState {
        &self.state
    }

    /// Whether the backend takes traffic.
    pub fn is_closed(&self) -> bool {
        self.state == BreakerState::Closed
    }

    /// Times this backend was ejected.
    pub fn ejections(&self) -> u64 {
        self.ejections
    }

    /// A request succeeded.
    pub fn on_success(&mut self) {
        self.consecutive = 0;
        self.consecutive_connect = 0;
    }

    /// A request failed. Returns true when this failure ejects the backend.
    pub fn on_failure(&mut self, failure: &Failure, message: &str, now: Instant) -> bool {
        if !failure.blames_backend() || !self.is_closed() {
            return false;
        }
        self.consecutive += 1;
        if *failure == Failure::Connect {
            self.consecutive_connect += 1;
        } else {
            self.consecutive_connect = 0;
        }
        if self.consecutive >= self.cfg.threshold
            || self.consecutive_connect >= self.cfg.connect_threshold
        {
            self.open(
                OutReason::Failing(message.to_string()),
                self.cfg.min_open,
                now,
            );
            return true;
        }
        false
    }

    /// Records that the backend, just ejected, was ejected for making no progress (its
    /// requests time out): re-admission then needs a real answer, not only `/health`.
    pub fn mark_stalled(&mut self) {
        if let BreakerState::Open { reason, .. } = &mut self.state {
            *reason = OutReason::Stalled;
        }
    }

    /// Ejects a backend that makes no progress. Returns true if it was taking traffic.
    pub fn quarantine(&mut self, now: Instant) -> bool {
        if !self.is_closed() {
            return false;
        }
        self.open(OutReason::Stalled, self.cfg.min_open, now);
        true
    }

    fn open(&mut self, reason: OutReason, pause: Duration, now: Instant) {
        self.ejections += 1;
        self.consecutive = 0;
        self.consecutive_connect = 0;
        self.state = BreakerState::Open {
            reason,
            retry_at: now + pause,
            pause,
        };
    }

    /// If a probe is due, moves to probing and returns the reason the backend is out.
    pub fn start_probe(&mut self, now: Instant) -> Option<OutReason> {
        match &self.state {
            BreakerState::Open {
                reason,
                retry_at,
                pause,
            } if *retry_at <= now => {
                let reason = reason.clone();
                self.state = BreakerState::Probing {
                    reason: reason.clone(),
                    pause: *pause,
                };
                Some(reason)
            }
            _ => None,
        }
    }

    /// A probe's result. Returns true when the backend is re-admitted.
    pub fn probe_result(&mut self, ok: bool, now: Instant) -> bool {
        let BreakerState::Probing { reason, pause } = &self.state else {
            return false;
        };
        if ok {
            self.state = BreakerState::Closed;
            return true;
        }
        let pause = (*pause * 2).min(self.cfg.max_open);
        self.state = BreakerState::Open {
            reason: reason.clone(),
            retry_at: now + pause,
            pause,
        };
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg() -> BreakerConfig {
        BreakerConfig {
            threshold: 3,
            connect_threshold: 2,
            min_open: Duration::from_secs(1),
            max_open: Duration::from_secs(4),
        }
    }

    #[test]
    fn opens_after_consecutive_failures_only() {
        let t = Instant::now();
        let mut b = Breaker::new(cfg());
        let f = Failure::Server { status: 500 };
        assert!(!b.on_failure(&f, "x", t));
        assert!(!b.on_failure(&f, "x", t));
        b.on_success();
        assert!(!b.on_failure(&f, "x", t));
        assert!(!b.on_failure(&f, "x", t));
        assert!(b.on_failure(&f, "boom", t));
        assert_eq!(
            b.state(),
            &BreakerState::Open {
                reason: OutReason::Failing("boom".into()),
                retry_at: t + Duration::from_secs(1),
                pause: Duration::from_secs(1)
            }
        );
        assert_eq!(b.ejections(), 1);
    }

    #[test]
    fn refused_connections_open_sooner_and_overload_never() {
        let t = Instant::now();
        let mut b = Breaker::new(cfg());
        assert!(!b.on_failure(&Failure::Connect, "refused", t));
        assert!(b.on_failure(&Failure::Connect, "refused", t));
        let mut b = Breaker::new(cfg());
        for _ in 0..10 {
            assert!(!b.on_failure(
                &Failure::Overloaded {
                    status: 429,
                    retry_after: None
                },
                "slow down",
                t
            ));
            assert!(!b.on_failure(&Failure::Rejected { status: 400 }, "bad", t));
        }
        assert!(b.is_closed());
    }

    #[test]
    fn probes_back_off_and_readmit() {
        let t = Instant::now();
        let mut b = Breaker::new(cfg());
        b.quarantine(t);
        assert_eq!(b.start_probe(t), None, "not due yet");
        let t1 = t + Duration::from_secs(1);
        assert_eq!(b.start_probe(t1), Some(OutReason::Stalled));
        assert!(!b.probe_result(false, t1));
        assert!(
            matches!(b.state(), BreakerState::Open { pause, .. } if *pause == Duration::from_secs(2))
        );
        let t3 = t1 + Duration::from_secs(2);
        b.start_probe(t3).unwrap();
        b.probe_result(false, t3);
        let t7 = t3 + Duration::from_secs(4);
        b.start_probe(t7).unwrap();
        b.probe_result(false, t7);
        assert!(
            matches!(b.state(), BreakerState::Open { pause, .. } if *pause == Duration::from_secs(4)),
            "capped"
        );
        let t11 = t7 + Duration::from_secs(4);
        b.start_probe(t11).unwrap();
        assert!(b.probe_result(true, t11));
        assert!(b.is_closed());
    }
}
