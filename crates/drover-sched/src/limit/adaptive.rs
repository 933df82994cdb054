//! The adaptive per-backend limit: find the concurrency at which a backend's throughput stops
//! growing, and follow it as the mix changes.
//!
//! An LLM server batches every request in flight into each decode step, so its output token
//! rate grows with concurrency until compute, KV-cache bandwidth or KV-cache capacity runs out;
//! past that point more requests only wait (vLLM never rejects for load, `vllm-facts.md` §1).
//! The controller therefore climbs the throughput curve rather than a latency target:
//!
//! 1. **Startup** (TCP slow start, RFC 5681 §3.1, applied to concurrency): double the limit each
//!    measuring epoch while the token rate still grows by a margin. When the server publishes its
//!    KV-cache size (vLLM `cache_config_info`), the first limit is sized from it, so short jobs run
//!    near saturation from the start.
//! 2. **Steady**: every few epochs probe ×1.25 (kept only if throughput rises) or ×0.8 (kept only
//!    if throughput holds) — the probing cycle of BBR (Cardwell et al., "BBR: Congestion-Based
//!    Congestion Control", ACM Queue 2016), with throughput as the bandwidth estimate.
//! 3. **Ceiling**: when the server says requests are queueing (`num_requests_waiting` > 0 on two
//!    scrapes) or its KV cache is above 90 %, the limit is cut to what actually runs, whatever
//!    the throughput says — the feedback vLLM's own data-parallel balancer uses
//!    (`waiting·4 + running`). A 429/503 cuts it by a quarter (AIMD's decrease).
//!
//! Throughput comes from the best live source: the server's generated-token counter, else
//! tokens counted as streamed answers arrive, else tokens of completed answers (which lag by a
//! request's latency, so epochs are then two latencies long and the first half is discarded).
//! An epoch in which the backend was not kept full says nothing about its capacity and changes
//! nothing. The controller is pure: time and load come in as [`Observation`]s.

use std::time::{Duration, Instant};

/// Controller settings; defaults are documented in `docs/scheduling.md`.
#[derive(Debug, Clone)]
pub struct AdaptiveConfig {
    /// First limit when the server does not say how large its KV cache is.
    pub initial: usize,
    /// Smallest limit.
    pub min: usize,
    /// Largest limit.
    pub max: usize,
    /// Shortest measuring epoch.
    pub min_epoch: Duration,
    /// Share of an epoch, after a change, before throughput is measured.
    pub settle_fraction: f64,
    /// Gain a doubling must bring to keep doubling, judged on throughput alone.
    pub growth_gain: f64,
    /// The same when the server's queue and KV cache guard the ceiling.
    pub growth_gain_guarded: f64,
    /// Gain a ×1.25 probe must bring to be kept.
    pub probe_gain: f64,
    /// Loss a ×0.8 probe may cost and still be kept.
    pub probe_loss: f64,
    /// KV-cache use to stay under.
    pub kv_ceiling: f64,
    /// Steady epochs between probes.
    pub probe_every: u32,
}

impl Default for AdaptiveConfig {
    fn default() -> Self {
        AdaptiveConfig {
            initial: 16,
            min: 1,
            max: 1024,
            min_epoch: Duration::from_millis(300),
            settle_fraction: 0.3,
            growth_gain: 0.10,
            growth_gain_guarded: 0.03,
            probe_gain: 0.03,
            probe_loss: 0.005,
            kv_ceiling: 0.90,
            probe_every: 4,
        }
    }
}

/// The latest scrape of a backend's metrics.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ServerView {
    /// When it was scraped.
    pub at: Option<Instant>,
    /// Requests running in the server.
    pub running: Option<f64>,
    /// Requests queued in the server.
    pub waiting: Option<f64>,
    /// KV-cache use, 0–1.
    pub kv_usage: Option<f64>,
    /// Generated tokens so far (counter).
    pub generation_tokens: Option<f64>,
    /// KV-cache size in tokens.
    pub kv_capacity_tokens: Option<f64>,
}

/// What the dispatcher knows about one backend at one tick.
#[derive(Debug, Clone)]
pub struct Observation<'a> {
    /// Now.
    pub now: Instant,
    /// drover's requests in flight on this backend.
    pub in_flight: usize,
    /// Whether tasks were waiting for capacity since the last tick.
    pub backlog: bool,
    /// Generated tokens of this backend seen by drover, cumulative.
    pub client_tokens: u64,
    /// Whether `client_tokens` grows as tokens stream (rather than at completion).
    pub client_tokens_live: bool,
    /// Latest scrape, when the backend has metrics.
    pub server: Option<&'a ServerView>,
    /// Mean size of recent tasks in tokens (prompt + output), for sizing against the KV cache.
    pub task_tokens: Option<f64>,
}

/// Where the controller is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// Doubling.
    Startup,
    /// Holding and probing.
    Steady,
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Probe {
    Up { base_limit: f64, base_rate: f64 },
    Down { base_limit: f64, base_rate: f64 },
}

#[derive(Debug, Clone)]
struct Epoch {
    settle_at: Instant,
    end_at: Instant,
    first: Option<(Instant, f64)>,
    ticks: u32,
    full_ticks: u32,
}

/// The controller for one backend.
#[derive(Debug, Clone)]
pub struct AdaptiveLimit {
    cfg: AdaptiveConfig,
    limit: f64,
    phase: Phase,
    epoch: Option<Epoch>,
    /// Startup: the last epoch's (limit, rate).
    prev: Option<(f64, f64)>,
    probe: Option<Probe>,
    steady_epochs: u32,
    probe_up_next: bool,
    /// Mean request latency (s), for epochs measured on completions.
    latency: Option<f64>,
    /// Mean interval between scrapes (s).
    scrape_period: Option<f64>,
    last_scrape: Option<Instant>,
    waiting_strikes: u32,
    sized_from_kv: bool,
    last_rate: Option<f64>,
}

impl AdaptiveLimit {
    /// A controller at its initial limit.
    pub fn new(cfg: AdaptiveConfig) -> AdaptiveLimit {
        let limit = cfg.initial.clamp(cfg.min, cfg.max) as f64;
        AdaptiveLimit {
            cfg,
            limit,
            phase: Phase::Startup,
            epoch: None,
            prev: None,
            probe: None,
            steady_epochs: 0,
            probe_up_next: true,
            latency: None,
            scrape_period: None,
            last_scrape: None,
            waiting_strikes: 0,
            sized_from_kv: false,
            last_rate: None,
        }
    }

    /// The limit now.
    pub fn limit(&self) -> usize {
        (self.limit.floor() as usize).clamp(self.cfg.min, self.cfg.max)
    }

    /// The phase now.
    pub fn phase(&self) -> Phase {
        self.phase
    }

    /// The last measured throughput (tokens/s), if any.
    pub fn last_rate(&self) -> Option<f64> {
        self.last_rate
    }

    /// A request completed after `latency`.
    pub fn on_latency(&mut self, latency: Duration) {
        let l = latency.as_secs_f64();
        self.latency = Some(match self.latency {
            None => l,
            Some(m) => 0.9 * m + 0.1 * l,
        });
    }

    /// The backend said it is overloaded (429, or 503 with Retry-After).
    pub fn on_overload(&mut self, now: Instant) {
        self.set(self.limit * 0.75, now);
        self.phase = Phase::Steady;
    }

    /// The backend was ejected and came back: start over from half the limit it had.
    pub fn on_readmitted(&mut self, now: Instant) {
        let l = (self.limit / 2.0).max(self.cfg.initial as f64);
        self.set(l, now);
        self.phase = Phase::Startup;
        self.prev = None;
    }

    fn set(&mut self, limit: f64, now: Instant) {
        self.limit = limit.clamp(self.cfg.min as f64, self.cfg.max as f64);
        self.probe = None;
        self.start_epoch(now);
    }

    fn guarded(obs: &Observation<'_>) -> bool {
        obs.server.is_some_and(|s| s.waiting.is_some() || s.kv_usage.is_some())
    }

    fn epoch_len(&self, obs: &Observation<'_>) -> Duration {
        let min = self.cfg.min_epoch.as_secs_f64();
        let secs = if obs.server.is_some_and(|s| s.generation_tokens.is_some()) {
            min.max(3.0 * self.scrape_period.unwrap_or(0.1))
        } else if obs.client_tokens_live {
            min
        } else {
            min.max(2.0 * self.latency.unwrap_or(0.0))
        };
        Duration::from_secs_f64(secs)
    }

    fn start_epoch(&mut self, now: Instant) {
        // Length is fixed at the first tick of the epoch, when the observation is known.
        self.epoch = Some(Epoch { settle_at: now, end_at: now, first: None, ticks: 0, full_ticks: 0 });
    }

    /// The freshest token count and when it was true.
    fn reading(obs: &Observation<'_>) -> (Instant, f64) {
        match obs.server.and_then(|s| Some((s.at?, s.generation_tokens?))) {
            Some(r) => r,
            None => (obs.now, obs.client_tokens as f64),
        }
    }

    /// Feeds one tick; returns the new limit when it changed.
    pub fn observe(&mut self, obs: &Observation<'_>) -> Option<usize> {
        let before = self.limit();
        self.apply_server_signals(obs);
        if self.epoch.is_none() {
            self.start_epoch(obs.now);
        }
        let len = self.epoch_len(obs);
        let settle = len.mul_f64(self.cfg.settle_fraction);
        let full = obs.backlog || obs.in_flight as f64 >= 0.9 * self.limit().min(self.cfg.max) as f64;
        let (t, tokens) = Self::reading(obs);
        let ep = self.epoch.as_mut().expect("started above");
        if ep.ticks == 0 {
            ep.settle_at = obs.now + settle;
            ep.end_at = obs.now + len;
        }
        ep.ticks += 1;
        ep.full_ticks += u32::from(full);
        if ep.first.is_none() && t >= ep.settle_at {
            ep.first = Some((t, tokens));
        }
        if obs.now >= ep.end_at {
            let ep = self.epoch.take().expect("present");
            let kept_full = ep.full_ticks * 5 >= ep.ticks * 4;
            let rate = ep.first.and_then(|(t0, k0)| {
                let dt = t.saturating_duration_since(t0).as_secs_f64();
                (dt > 0.0).then(|| (tokens - k0).max(0.0) / dt)
            });
            self.start_epoch(obs.now);
            if let (true, Some(rate)) = (kept_full, rate) {
                self.last_rate = Some(rate);
                self.decide(rate, Self::guarded(obs), obs);
            }
        }
        let after = self.limit();
        (after != before).then_some(after)
    }

    fn apply_server_signals(&mut self, obs: &Observation<'_>) {
        let Some(s) = obs.server else { return };
        let Some(at) = s.at else { return };
        if self.last_scrape == Some(at) {
            return;
        }
        if let Some(prev) = self.last_scrape {
            let d = at.saturating_duration_since(prev).as_secs_f64();
            self.scrape_period = Some(match self.scrape_period {
                None => d,
                Some(p) => 0.8 * p + 0.2 * d,
            });
        }
        self.last_scrape = Some(at);

        // Size the first limit from the KV cache: half of what fits, so startup still climbs.
        if !self.sized_from_kv && self.phase == Phase::Startup && self.prev.is_none() {
            if let (Some(cap), Some(per_task)) = (s.kv_capacity_tokens, obs.task_tokens) {
                if per_task > 0.0 {
                    self.sized_from_kv = true;
                    let fit = self.cfg.kv_ceiling * cap / per_task;
                    let l = (fit / 2.0).max(self.cfg.initial as f64);
                    if l > self.limit {
                        self.set(l, obs.now);
                    }
                }
            }
        }

        let in_flight = obs.in_flight as f64;
        if s.waiting.unwrap_or(0.0) >= 1.0 {
            self.waiting_strikes += 1;
            if self.waiting_strikes >= 2 && in_flight >= self.limit * 0.9 {
                let running_ours = (in_flight - s.waiting.unwrap_or(0.0)).max(self.cfg.min as f64);
                if running_ours < self.limit {
                    self.set(running_ours, obs.now);
                    self.phase = Phase::Steady;
                }
            }
        } else {
            self.waiting_strikes = 0;
        }
        if let Some(kv) = s.kv_usage {
            if kv > self.cfg.kv_ceiling && in_flight > 0.0 {
                let fits = in_flight * self.cfg.kv_ceiling / kv;
                if fits < self.limit {
                    self.set(fits, obs.now);
                    self.phase = Phase::Steady;
                }
            }
        }
    }

    /// Room left under the KV ceiling, as a factor on the current in-flight count.
    fn kv_room(obs: &Observation<'_>) -> f64 {
        match obs.server.and_then(|s| s.kv_usage) {
            Some(kv) if kv > 0.01 => 0.9 / kv,
            _ => f64::INFINITY,
        }
    }

    fn decide(&mut self, rate: f64, guarded: bool, obs: &Observation<'_>) {
        match self.phase {
            Phase::Startup => {
                let need = if guarded { self.cfg.growth_gain_guarded } else { self.cfg.growth_gain };
                match self.prev {
                    Some((prev_limit, prev_rate)) if rate < prev_rate * (1.0 + need) => {
                        if rate < prev_rate * 0.95 {
                            // Throughput fell: the doubling overshot.
                            self.set(prev_limit, obs.now);
                        }
                        self.phase = Phase::Steady;
                    }
                    _ => {
                        self.prev = Some((self.limit, rate));
                        let target = (self.limit * 2.0).min(self.limit * Self::kv_room(obs).max(1.0));
                        if target.min(self.cfg.max as f64) <= self.limit {
                            self.phase = Phase::Steady;
                        } else {
                            self.set(target, obs.now);
                        }
                    }
                }
            }
            Phase::Steady => {
                if let Some(probe) = self.probe.take() {
                    match probe {
                        Probe::Up { base_limit, base_rate } if rate < base_rate * (1.0 + self.cfg.probe_gain) => {
                            self.set(base_limit, obs.now);
                        }
                        Probe::Down { base_limit, base_rate } if rate < base_rate * (1.0 - self.cfg.probe_loss) => {
                            self.set(base_limit, obs.now);
                        }
                        _ => {}
                    }
                    return;
                }
                self.steady_epochs += 1;
                if self.steady_epochs % self.cfg.probe_every != 0 {
                    return;
                }
                let up = self.probe_up_next;
                self.probe_up_next = !up;
                let base = (self.limit, rate);
                let target = if up {
                    (self.limit * 1.25).max(self.limit + 1.0).min(self.limit * Self::kv_room(obs).max(1.0))
                } else {
                    (self.limit * 0.8).min(self.limit - 1.0)
                };
                let target = target.clamp(self.cfg.min as f64, self.cfg.max as f64);
                if (target - self.limit).abs() >= 1.0 {
                    self.set(target, obs.now);
                    self.probe = Some(if up {
                        Probe::Up { base_limit: base.0, base_rate: base.1 }
                    } else {
                        Probe::Down { base_limit: base.0, base_rate: base.1 }
                    });
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A backend as a closed form: throughput `x_max·B/(B+knee)` for the `B` requests that run
    /// (at most `slots`), the rest queued; tokens arrive live.
    struct Model {
        x_max: f64,
        knee: f64,
        slots: f64,
        tokens: f64,
        metrics: bool,
    }

    impl Model {
        fn rate(&self, in_flight: f64) -> f64 {
            let b = in_flight.min(self.slots);
            self.x_max * b / (b + self.knee)
        }
    }

    /// Runs the controller for `secs` of 50 ms ticks against `m`, always with backlog.
    fn run(c: &mut AdaptiveLimit, m: &mut Model, start: Instant, secs: f64) -> Instant {
        let tick = Duration::from_millis(50);
        let mut now = start;
        let mut view = ServerView::default();
        for i in 0..(secs / 0.05) as usize {
            now += tick;
            let inf = c.limit() as f64;
            m.tokens += m.rate(inf) * 0.05;
            if m.metrics && i % 2 == 0 {
                view = ServerView {
                    at: Some(now),
                    running: Some(inf.min(m.slots)),
                    waiting: Some((inf - m.slots).max(0.0)),
                    kv_usage: Some(0.2),
                    generation_tokens: Some(m.tokens),
                    kv_capacity_tokens: None,
                };
            }
            c.observe(&Observation {
                now,
                in_flight: c.limit(),
                backlog: true,
                client_tokens: m.tokens as u64,
                client_tokens_live: true,
                server: m.metrics.then_some(&view),
                task_tokens: Some(400.0),
            });
        }
        now
    }

    #[test]
    fn climbs_to_the_plateau_on_throughput_alone() {
        let mut c = AdaptiveLimit::new(AdaptiveConfig::default());
        let mut m = Model { x_max: 10_000.0, knee: 20.0, slots: 4096.0, tokens: 0.0, metrics: false };
        run(&mut c, &mut m, Instant::now(), 30.0);
        let l = c.limit() as f64;
        assert!(m.rate(l) >= 0.85 * m.x_max, "limit {l} gives {:.0}", m.rate(l));
        assert!(l <= 1024.0);
    }

    #[test]
    fn a_server_queue_caps_the_limit_at_its_slots() {
        let mut c = AdaptiveLimit::new(AdaptiveConfig::default());
        let mut m = Model { x_max: 10_000.0, knee: 1.0, slots: 48.0, tokens: 0.0, metrics: true };
        run(&mut c, &mut m, Instant::now(), 30.0);
        let l = c.limit();
        assert!((44..=60).contains(&l), "limit {l} should sit at the 48 slots");
    }

    #[test]
    fn flat_throughput_stops_the_climb_early() {
        // A server that gains nothing past 4 in flight (e.g. llama.cpp with 4 slots, no metrics).
        let mut c = AdaptiveLimit::new(AdaptiveConfig { initial: 2, ..AdaptiveConfig::default() });
        let mut m = Model { x_max: 200.0, knee: 0.01, slots: 4.0, tokens: 0.0, metrics: false };
        run(&mut c, &mut m, Instant::now(), 30.0);
        assert!(c.limit() <= 16, "limit {}", c.limit());
        assert_eq!(c.phase(), Phase::Steady);
    }

    #[test]
    fn kv_capacity_sizes_the_first_limit() {
        let mut c = AdaptiveLimit::new(AdaptiveConfig::default());
        let now = Instant::now();
        let view = ServerView { at: Some(now), kv_capacity_tokens: Some(400_000.0), waiting: Some(0.0), ..ServerView::default() };
        let changed = c.observe(&Observation {
            now,
            in_flight: 0,
            backlog: true,
            client_tokens: 0,
            client_tokens_live: false,
            server: Some(&view),
            task_tokens: Some(400.0),
        });
        assert_eq!(changed, Some(450), "0.9 * 400k / 400 / 2");
    }

    #[test]
    fn overload_and_kv_pressure_cut_the_limit() {
        let now = Instant::now();
        let mut c = AdaptiveLimit::new(AdaptiveConfig { initial: 100, ..AdaptiveConfig::default() });
        c.on_overload(now);
        assert_eq!(c.limit(), 75);
        let view = ServerView { at: Some(now), kv_usage: Some(0.99), ..ServerView::default() };
        c.observe(&Observation { now, in_flight: 75, backlog: true, client_tokens: 0, client_tokens_live: false, server: Some(&view), task_tokens: None });
        assert_eq!(c.limit(), 68, "75 * 0.9 / 0.99");
    }

    #[test]
    fn idle_epochs_change_nothing() {
        let mut c = AdaptiveLimit::new(AdaptiveConfig::default());
        let mut now = Instant::now();
        for k in 0..200 {
            now += Duration::from_millis(50);
            c.observe(&Observation { now, in_flight: 1, backlog: false, client_tokens: k * 10, client_tokens_live: true, server: None, task_tokens: None });
        }
        assert_eq!(c.limit(), 16);
    }

    #[test]
    fn completion_counted_epochs_wait_for_latency() {
        let mut c = AdaptiveLimit::new(AdaptiveConfig::default());
        c.on_latency(Duration::from_secs(2));
        let obs = Observation { now: Instant::now(), in_flight: 16, backlog: true, client_tokens: 0, client_tokens_live: false, server: None, task_tokens: None };
        assert_eq!(c.epoch_len(&obs), Duration::from_secs(4));
    }
}
