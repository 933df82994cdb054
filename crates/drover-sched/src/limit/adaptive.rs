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
//!    KV-cache size (vLLM `cache_config_info`), the first limit is what fits in it, so short jobs
//!    run at saturation from the start.
//! 2. **Steady**: with the server's queue and KV cache in view, keep stepping ×1.25 towards the KV
//!    ceiling as long as a step does not cost throughput — for a batch job, a fuller batch is
//!    never worse until the cache is full. Without them, probe ×1.25 every few epochs and keep
//!    it only for a clear gain, averaged over two epochs — the probing cycle of BBR (Cardwell et
//!    al., "BBR: Congestion-Based Congestion Control", ACM Queue 2016), with throughput as the
//!    bandwidth estimate.
//! 3. **Ceiling**: when the server says requests are queueing (`num_requests_waiting` > 0 for two
//!    seconds while `running` stops growing) or its KV cache is above 90 %, the limit is cut to
//!    what actually runs, whatever
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
    /// Drover's own view of a server without metrics: `waiting` counts streamed requests with
    /// no first token yet, `running` the rest. A client cannot tell a queue from a burst of
    /// prompts being prefilled, so that queue must persist much longer to count as a ceiling.
    pub from_client: bool,
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
    /// Once the whole input is read: the tasks left (queued or in flight) per backend taking
    /// work. A limit above it has nothing to hold, and reaching it sends the rest of the job.
    pub work_share: Option<usize>,
    /// Whether some backend of the fleet has shown that its server batches
    /// ([`AdaptiveLimit::batches_shown`]).
    pub fleet_batches: bool,
}

/// Where the controller is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// Doubling.
    Startup,
    /// Holding and probing.
    Steady,
}

#[derive(Debug, Clone)]
struct Epoch {
    started: Instant,
    settle_at: Instant,
    end_at: Instant,
    len: Duration,
    first: Option<(Instant, f64)>,
    last_tokens: Option<f64>,
    /// Readings in the measuring window that showed new tokens.
    advances: u32,
    /// The first and the latest of those readings.
    first_advance: Option<(Instant, f64)>,
    last_advance: Option<(Instant, f64)>,
    ticks: u32,
    full_ticks: u32,
}

/// A change being judged: the limit and rate before it.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Trial {
    base_limit: f64,
    base_rate: f64,
    /// Rates measured since the change.
    rates: [f64; 2],
    measured: usize,
    /// Epochs to average before judging.
    needed: usize,
    /// The change is kept when the mean rate since is at least this share of `base_rate`.
    keep_at: f64,
}

/// The server's queue has been non-empty since `since`, with `running` at most `running_max`.
#[derive(Debug, Clone, Copy)]
struct QueueWatch {
    since: Instant,
    running_start: f64,
    running_max: f64,
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
    trial: Option<Trial>,
    steady_epochs: u32,
    /// Epochs to hold still after a cut.
    cooldown: u32,
    /// Mean request latency (s), for epochs measured on completions.
    latency: Option<f64>,
    /// Mean time to first token (s) of streamed answers: a request sent after a change adds
    /// tokens only this long after it.
    ttft: Option<f64>,
    /// Mean interval between scrapes (s).
    scrape_period: Option<f64>,
    last_scrape: Option<Instant>,
    queue: Option<QueueWatch>,
    /// Since when the server has held less than half of what drover has in flight.
    unheld_since: Option<Instant>,
    /// No trim before this (after a trim that cost throughput).
    trim_after: Option<Instant>,
    sized_from_kv: bool,
    last_rate: Option<f64>,
    /// When the limit last changed (or was first observed).
    changed_at: Option<Instant>,
    /// See [`AdaptiveLimit::batches_shown`].
    batches_shown: bool,
    /// A ceiling signal (server queue, KV cache, overload) has cut the limit.
    ceiling_seen: bool,
    /// The limit has been raised to the work left per backend once the input was all read.
    share_taken: bool,
}

/// How long the server's queue must stay non-empty, with `running` not growing, before it
/// counts as the ceiling. Shorter queues are a burst of prompts being prefilled in chunks.
const QUEUE_PERSISTS: Duration = Duration::from_secs(2);

/// The same for drover's own view ([`ServerView::from_client`]): a slow engine (transformers'
/// continuous batching on a busy GPU) can take several seconds to prefill a burst of prompts
/// and send their first tokens (TTFT p99 of 6 s measured on an H200).
const CLIENT_QUEUE_PERSISTS: Duration = Duration::from_secs(15);

/// How long the server must hold less than half of drover's requests before the limit is
/// trimmed to what it holds.
const UNHELD_PERSISTS: Duration = Duration::from_secs(2);

/// After a trim that cost throughput, how long before trimming again.
const TRIM_BACKOFF: Duration = Duration::from_secs(60);

/// Readings with new tokens an epoch needs when drover counts streamed tokens itself.
const CLIENT_MIN_ADVANCES: u32 = 12;

/// Longest wait, after a change, for the server to run what was sent before measuring anyway.
const MAX_SETTLE: Duration = Duration::from_secs(10);

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
            trial: None,
            steady_epochs: 0,
            cooldown: 0,
            latency: None,
            ttft: None,
            scrape_period: None,
            last_scrape: None,
            queue: None,
            unheld_since: None,
            trim_after: None,
            sized_from_kv: false,
            last_rate: None,
            changed_at: None,
            batches_shown: false,
            ceiling_seen: false,
            share_taken: false,
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

    /// Whether the limit is still being found: in startup, with a change in the last `within`
    /// (a startup epoch that never ends — a backend starved of tokens by its neighbours — no
    /// longer counts as finding anything).
    pub fn ramping(&self, now: Instant, within: Duration) -> bool {
        self.phase == Phase::Startup
            && self
                .changed_at
                .is_none_or(|t| now.saturating_duration_since(t) < within)
    }

    /// Whether this backend has shown that its server batches: a startup step raised its
    /// throughput by the startup's growth margin, the server published its KV-cache size, or,
    /// once the input is all read, it ran a whole first limit at once ([`Self::see_full_batch`]).
    pub fn batches_shown(&self) -> bool {
        self.batches_shown
    }

    /// The last measured throughput (tokens/s), if any.
    pub fn last_rate(&self) -> Option<f64> {
        self.last_rate
    }

    /// The backend's mean latency of answers and time to their first token (streamed), in
    /// seconds, as the dispatcher keeps them per answer; given before each tick's
    /// [`Self::observe`], which sizes epochs by them. (Not per answer: that would touch this
    /// controller's memory once per task, which a large fleet pays for in cache misses.)
    pub fn set_latencies(&mut self, latency: Option<f64>, ttft: Option<f64>) {
        self.latency = latency;
        self.ttft = ttft;
    }

    /// What [`Self::set_latencies`] last gave (tests).
    #[cfg(test)]
    pub(crate) fn latencies(&self) -> (Option<f64>, Option<f64>) {
        (self.latency, self.ttft)
    }

    /// The backend said it is overloaded (429, or 503 with Retry-After).
    pub fn on_overload(&mut self, now: Instant) {
        self.cut(self.limit * 0.75, now, "server overloaded");
    }

    /// The backend was ejected and came back: start over from half the limit it had.
    pub fn on_readmitted(&mut self, now: Instant) {
        let l = (self.limit / 2.0).max(self.cfg.initial as f64);
        self.set(l, now, "re-admitted");
        self.phase = Phase::Startup;
        self.prev = None;
    }

    fn set(&mut self, limit: f64, now: Instant, why: &'static str) {
        let new = limit.clamp(self.cfg.min as f64, self.cfg.max as f64);
        tracing::debug!(target: "drover::limit", from = self.limit, to = new, phase = ?self.phase, rate = ?self.last_rate, why, "limit change");
        self.limit = new;
        self.changed_at = Some(now);
        self.epoch = Some(Epoch::new(now));
    }

    /// Moves the limit to `target` as a trial: after `needed` epochs, it is undone unless their
    /// mean rate is at least `keep_at` × `rate` (the rate before the change).
    fn try_limit(
        &mut self,
        target: f64,
        rate: f64,
        (needed, keep_at): (usize, f64),
        now: Instant,
        why: &'static str,
    ) {
        self.trial = Some(Trial {
            base_limit: self.limit,
            base_rate: rate,
            rates: [0.0; 2],
            measured: 0,
            needed,
            keep_at,
        });
        self.set(target, now, why);
    }

    /// Lowers the limit for a ceiling signal and holds it a while.
    fn cut(&mut self, limit: f64, now: Instant, why: &'static str) {
        if limit < self.limit {
            self.set(limit, now, why);
        }
        self.phase = Phase::Steady;
        self.trial = None;
        self.cooldown = 4;
        self.ceiling_seen = true;
    }

    fn guarded(obs: &Observation<'_>) -> bool {
        obs.server
            .is_some_and(|s| s.waiting.is_some() || s.kv_usage.is_some())
    }

    /// The end of a short job: once the whole input is read and some server of the fleet has
    /// shown that it batches, a backend still finding its limit — in startup, or with no server
    /// figures to bound it — takes the work left per backend at once (within 16× its limit
    /// unless its server runs all it holds), once. Its own measurements cannot be trusted to
    /// get it there in time: on instances sharing a GPU, a neighbour's jump (its prompts'
    /// prefill) reads as this backend's overshoot, and an epoch of a few engine steps is noise
    /// (measured on an H100: two of four instances stuck at 16–256 while the others held 375
    /// each, the job 1.5× slower than sending it all). What is beyond the server's batch only
    /// waits in its queue, where the queue rule still cuts it; a backend already cut by a
    /// ceiling signal is left alone.
    fn take_share(&mut self, obs: &Observation<'_>) {
        let Some(share) = obs.work_share else { return };
        let unbounded = obs.server.is_none_or(|s| s.from_client);
        if self.share_taken
            || self.ceiling_seen
            || !(obs.fleet_batches || self.batches_shown)
            || !(self.phase == Phase::Startup || unbounded)
        {
            return;
        }
        // A server that runs all it holds may take the whole share; one that queues part of
        // it (fixed slots) at most 16× its limit.
        let runs_all = Self::running_share(obs).is_some_and(|r| r >= 0.75);
        let share = share as f64;
        if share < self.limit + 1.0 || (share > 16.0 * self.limit && !runs_all) {
            return;
        }
        self.share_taken = true;
        let target = share
            .min(self.limit * self.kv_room(obs).max(1.0))
            .min(self.cfg.max as f64);
        if target >= self.limit + 1.0 {
            self.trial = None;
            self.prev = None;
            self.phase = Phase::Steady;
            self.set(
                target,
                obs.now,
                "the rest of the job: the fleet's servers batch",
            );
        }
    }

    /// A job already read needs no measured step to show that a server batches: one that runs
    /// every request of a full first limit at once (each has had tokens and none waits, in
    /// the server's gauges or drover's own view) decodes them in one batch, while a server
    /// with fewer slots shows the rest waiting (llama.cpp with 4 slots runs 4 of 16). The two
    /// measured startup epochs cost seconds on a slow engine (transformers on an H100: 2–3 s
    /// of a 58 s job, 16 then 32 in flight while a fixed 2,048 ran everything).
    fn see_full_batch(&mut self, obs: &Observation<'_>) {
        if self.batches_shown || self.phase != Phase::Startup || obs.work_share.is_none() {
            return;
        }
        let held = obs.in_flight as f64;
        let full = held >= (self.cfg.initial as f64).max(0.9 * self.limit);
        let none_waits = obs.server.and_then(|s| s.waiting).is_some_and(|w| w < 1.0);
        if full && none_waits && Self::running_share(obs).is_some_and(|r| r >= 0.9) {
            self.batches_shown = true;
        }
    }

    /// The share of drover's requests on this backend that its server runs, in its gauges or
    /// drover's own view; `None` without figures or with nothing in flight.
    fn running_share(obs: &Observation<'_>) -> Option<f64> {
        let held = obs.in_flight as f64;
        let running = obs.server?.running?;
        (held >= 1.0).then(|| running / held)
    }

    fn epoch_len(&self, obs: &Observation<'_>) -> Duration {
        let min = self.cfg.min_epoch.as_secs_f64();
        let secs = if obs.server.is_some_and(|s| s.generation_tokens.is_some()) {
            min.max(3.0 * self.scrape_period.unwrap_or(0.1))
        } else if obs.client_tokens_live {
            // Requests sent after a change stream tokens only after their first-token delay.
            min.max(3.0 * self.ttft.unwrap_or(0.0))
        } else {
            min.max(2.0 * self.latency.unwrap_or(0.0))
        };
        Duration::from_secs_f64(secs)
    }

    /// The server's own generated-token counter and when it was scraped, if it has one.
    fn server_reading(obs: &Observation<'_>) -> Option<(Instant, f64)> {
        obs.server.and_then(|s| Some((s.at?, s.generation_tokens?)))
    }

    /// The freshest token count and when it was true.
    fn reading(obs: &Observation<'_>) -> (Instant, f64) {
        Self::server_reading(obs).unwrap_or((obs.now, obs.client_tokens as f64))
    }

    /// Feeds one tick; returns the new limit when it changed.
    pub fn observe(&mut self, obs: &Observation<'_>) -> Option<usize> {
        let before = self.limit();
        self.changed_at.get_or_insert(obs.now);
        self.apply_server_signals(obs);
        self.see_full_batch(obs);
        self.take_share(obs);
        let len = self.epoch_len(obs);
        let settle_fraction = self.cfg.settle_fraction;
        let ttft = self.ttft.unwrap_or(0.0);
        let full = obs.backlog || obs.in_flight as f64 >= 0.9 * self.limit() as f64;
        let (t, tokens) = Self::reading(obs);
        // Tokens drover counts as streamed answers arrive come in bursts, one per engine step
        // for every request in the batch, and are read once a tick: a window of a few steps
        // reads ±1 burst, 20-50 % at small batches (on an H100: a doubling from 16 to 32
        // read as a fall of half, on three instances at once). A dozen steps keep that within
        // a few per cent; a server's counter, scraped, needs only a few readings.
        let min_advances = if obs.client_tokens_live && Self::server_reading(obs).is_none() {
            CLIENT_MIN_ADVANCES
        } else {
            3
        };
        let ep = self.epoch.get_or_insert_with(|| Epoch::new(obs.now));
        if ep.ticks == 0 {
            ep.len = len;
            let settle = len.mul_f64(settle_fraction).max(Duration::from_secs_f64(
                if obs.client_tokens_live { ttft } else { 0.0 },
            ));
            ep.settle_at = obs.now + settle;
            ep.end_at = obs.now + len;
        }
        ep.ticks += 1;
        ep.full_ticks += u32::from(full);
        // Measure only once what was sent after a change is running: a burst of new prompts
        // is prefilled (and queued) first, and that transient is not the new limit's rate.
        let caught_up = obs
            .server
            .and_then(|s| s.waiting)
            .is_none_or(|w| w <= 0.1 * obs.in_flight as f64)
            || obs.now.duration_since(ep.started) >= MAX_SETTLE;
        if ep.first.is_none() {
            if t >= ep.settle_at && caught_up {
                ep.first = Some((t, tokens));
                ep.last_tokens = Some(tokens);
            }
        } else if ep.last_tokens.is_some_and(|l| tokens > l) {
            ep.advances += 1;
            ep.last_tokens = Some(tokens);
            ep.first_advance.get_or_insert((t, tokens));
            ep.last_advance = Some((t, tokens));
        }
        // A token counter that moves in big steps (long engine steps, completion counts) needs
        // a few advances before a rate means anything; don't wait forever for them. Both
        // clocks run from the start of the measurement, which may come late after a long settle:
        // measured from the epoch's start, a window shorter than one engine step could close
        // with no token in it and read as zero throughput.
        let measured = ep
            .first
            .map_or(Duration::ZERO, |(t0, _)| t.saturating_duration_since(t0));
        let enough = ep.advances >= min_advances || measured >= ep.len * 4;
        let measured_long_enough = measured >= ep.len.mul_f64(1.0 - settle_fraction);
        if obs.now >= ep.end_at && enough && measured_long_enough {
            let ep = self.epoch.take().expect("present");
            let kept_full = ep.full_ticks * 5 >= ep.ticks * 4;
            // No token in the whole window says the engine was stalled (a long prefill, a
            // pause), not what this limit yields: such an epoch changes nothing.
            // From the first burst to the last, when there are enough: whole engine steps,
            // with no part-step at either end.
            let between_advances = match (ep.advances >= 3, ep.first_advance, ep.last_advance) {
                (true, Some(from), Some(to)) => rate_between(from, to),
                _ => None,
            };
            let rate = between_advances.or_else(|| {
                ep.first
                    .filter(|_| ep.advances > 0)
                    .and_then(|from| rate_between(from, (t, tokens)))
            });
            self.epoch = Some(Epoch::new(obs.now));
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

        // Size the first limit from the KV cache: as many tasks as fit, counting each at its full
        // max_tokens (an upper bound: answers that stop early leave room). For a batch job a
        // full batch is the fastest start; the throughput checks still apply from here.
        if !self.sized_from_kv && self.phase == Phase::Startup && self.prev.is_none() {
            if let (Some(cap), Some(per_task)) = (s.kv_capacity_tokens, obs.task_tokens) {
                if per_task > 0.0 {
                    self.sized_from_kv = true;
                    self.batches_shown = true;
                    let fit = self.cfg.kv_ceiling * cap / per_task;
                    let l = fit.max(self.cfg.initial as f64);
                    if l > self.limit {
                        self.set(l, obs.now, "sized from the KV cache");
                    }
                    // Doubling past what fits would only queue in the server; from here the
                    // steady rules grow the limit if answers turn out shorter than max_tokens.
                    self.phase = Phase::Steady;
                }
            }
        }

        // A queue in the server is a ceiling only when the server stopped admitting: requests
        // also queue while a burst of prompts is prefilled in chunks, and then `running` grows.
        let in_flight = obs.in_flight as f64;
        let running = s.running.unwrap_or(0.0);
        let waiting = s.waiting.unwrap_or(0.0);
        let persists = if s.from_client {
            CLIENT_QUEUE_PERSISTS
        } else {
            QUEUE_PERSISTS
        };
        if waiting >= 1.0 {
            let q = self.queue.get_or_insert(QueueWatch {
                since: at,
                running_start: running,
                running_max: running,
            });
            q.running_max = q.running_max.max(running);
            if q.running_max > q.running_start + 0.5 {
                *q = QueueWatch {
                    since: at,
                    running_start: running,
                    running_max: running,
                };
            } else if at.saturating_duration_since(q.since) >= persists
                && in_flight >= self.limit * 0.9
            {
                // What the server ran while the queue persisted, not this one reading: between
                // a slot's last token and the next request's first, drover's own view counts
                // that slot as waiting (on a 4-slot server with slow prefills it read 1 of 4,
                // and the limit sat at 1 for a minute and a half).
                let ran = q.running_max.min(in_flight);
                self.queue = None;
                let running_ours = (in_flight - waiting).max(ran).max(self.cfg.min as f64);
                self.cut(running_ours, obs.now, "server queue persists");
            }
        } else {
            self.queue = None;
        }
        self.trim_unheld(s, at, in_flight, obs.now);
        if let Some(kv) = s.kv_usage {
            if kv > self.cfg.kv_ceiling && in_flight > 0.0 {
                self.cut(
                    in_flight * self.cfg.kv_ceiling / kv,
                    obs.now,
                    "KV cache nearly full",
                );
            }
        }
    }

    /// Requests drover counts in flight that the server neither runs nor queues are on the wire
    /// or finished and waiting for drover to read them: the client, not the server, is the
    /// bottleneck (a fast server, a busy dispatcher), and each costs a connection's memory for
    /// nothing. When the server holds less than half of them for a while, the limit is trimmed
    /// to twice what it holds, as a trial that is undone if throughput falls by 5 %.
    fn trim_unheld(&mut self, s: &ServerView, at: Instant, in_flight: f64, now: Instant) {
        let (Some(running), Some(waiting), false) = (s.running, s.waiting, s.from_client) else {
            return;
        };
        let held = running + waiting;
        let floor = self.cfg.initial as f64;
        let unheld =
            in_flight >= 0.9 * self.limit && in_flight > 2.0 * floor && held < 0.5 * in_flight;
        if !unheld || self.trial.is_some() || self.trim_after.is_some_and(|t| now < t) {
            self.unheld_since = None;
            return;
        }
        let since = *self.unheld_since.get_or_insert(at);
        if at.saturating_duration_since(since) < UNHELD_PERSISTS {
            return;
        }
        self.unheld_since = None;
        // Only as a trial against a measured rate: without one, nothing could undo it.
        let Some(rate) = self.last_rate else { return };
        self.try_limit(
            (2.0 * held).max(floor),
            rate,
            (2, 0.95),
            now,
            "the server holds less than half of what is in flight",
        );
        self.phase = Phase::Steady;
    }

    /// How much the limit could grow before the KV cache reaches its ceiling, judged from the
    /// cache use of what actually runs (∞ without KV figures).
    fn kv_room(&self, obs: &Observation<'_>) -> f64 {
        let Some(s) = obs.server else {
            return f64::INFINITY;
        };
        match (s.kv_usage, s.running) {
            (Some(kv), Some(running)) if kv > 0.01 && running >= 1.0 => {
                let per_request = kv / running;
                self.cfg.kv_ceiling / (per_request * self.limit.max(1.0))
            }
            (Some(kv), _) if kv > 0.01 => self.cfg.kv_ceiling / kv,
            _ => f64::INFINITY,
        }
    }

    /// Whether the server is running (nearly) everything drover sent it: only then does its KV
    /// use show what the current limit costs. During a burst of prefills it lags behind.
    fn server_caught_up(&self, obs: &Observation<'_>) -> bool {
        match obs.server.and_then(|s| s.running) {
            Some(running) => {
                running >= 0.9 * obs.in_flight as f64 && obs.in_flight as f64 >= 0.9 * self.limit
            }
            None => true,
        }
    }

    fn decide(&mut self, rate: f64, guarded: bool, obs: &Observation<'_>) {
        if let Some(mut trial) = self.trial.take() {
            trial.rates[trial.measured.min(1)] = rate;
            trial.measured += 1;
            if trial.measured < trial.needed {
                self.trial = Some(trial);
                return;
            }
            let mean = trial.rates[..trial.needed].iter().sum::<f64>() / trial.needed as f64;
            if mean < trial.base_rate * trial.keep_at {
                if trial.base_limit > self.limit {
                    // A trim that cost throughput: what drover holds is not idle (a server
                    // behind a balancer whose metrics show one replica). Don't trim again soon.
                    self.trim_after = Some(obs.now + TRIM_BACKOFF);
                }
                self.set(trial.base_limit, obs.now, "change did not pay");
                self.cooldown = 2;
            }
            return;
        }
        if self.cooldown > 0 {
            self.cooldown -= 1;
            return;
        }
        match self.phase {
            Phase::Startup => {
                let need = if guarded {
                    self.cfg.growth_gain_guarded
                } else {
                    self.cfg.growth_gain
                };
                match self.prev {
                    Some((prev_limit, prev_rate)) if rate < prev_rate * (1.0 + need) => {
                        if rate < prev_rate * 0.90 {
                            // Throughput fell: the step overshot. Halve it (TCP's decrease on
                            // loss), never below the last good limit: after a model jump of up
                            // to 8× the fall is often the new prompts' prefill, or instances
                            // sharing a GPU slowing each other, and reverting all the way threw
                            // away most of a right step (on an H100: 256 → 32, then a minute of
                            // ×1.25 steps back up).
                            let back = prev_limit.max(self.limit / 2.0);
                            self.set(back, obs.now, "doubling overshot");
                        }
                        self.phase = Phase::Steady;
                    }
                    prev => {
                        // The gain that lets this backend jump to its share lets the others
                        // (`take_share`): one measurement, one rule.
                        self.batches_shown |= prev.is_some();
                        let step = match prev {
                            Some(p) => startup_step(p, (self.limit, rate)),
                            None => 2.0,
                        };
                        self.prev = Some((self.limit, rate));
                        let mut target = self.limit * step;
                        // The rest of a job already read fits in one more step: once a step has
                        // shown that the server batches (a measured gain), send it all rather
                        // than climb for several more epochs — on a slow engine each lasts
                        // seconds, and a short job then ends before the climb does. Bounded by
                        // 16× the limit; the queue rule still cuts a server that only queues.
                        if let (Some(_), Some(share)) = (prev, obs.work_share) {
                            target = target.max((share as f64).min(self.limit * 16.0));
                            self.share_taken |= target >= share as f64;
                        }
                        // Nor any further: a limit above the work left per backend has nothing
                        // to hold but what the other backends should take (on an H100, one
                        // backend doubling to 1,024 took most of a 1,500-task job).
                        if let Some(share) = obs.work_share {
                            target = target.min((share as f64).max(self.limit));
                        }
                        let target = target
                            .min(self.limit * self.kv_room(obs).max(1.0))
                            .min(self.cfg.max as f64);
                        if target < self.limit + 1.0 {
                            self.phase = Phase::Steady;
                        } else {
                            self.set(target, obs.now, "startup doubling");
                        }
                    }
                }
            }
            Phase::Steady if guarded => {
                // The server guards the ceiling (queue, KV): keep its batch as full as fits,
                // backing off only if a step up costs throughput.
                let room = self.kv_room(obs);
                // Drover's own view always shows a few requests awaiting their first token;
                // there the level test of `server_caught_up` is the queue check.
                let no_queue = self.queue.is_none() || obs.server.is_some_and(|s| s.from_client);
                if room > 1.2
                    && no_queue
                    && self.server_caught_up(obs)
                    && self.limit < self.cfg.max as f64
                {
                    // Drover's own view has no KV figure to stop at, and a slow batch engine
                    // (transformers on a shared GPU) makes each epoch seconds long: while
                    // tasks wait, double, leaving the ceiling to the queue rule and the undo.
                    let client = obs.server.is_some_and(|s| s.from_client);
                    let step = if client && obs.backlog { 2.0 } else { 1.25 };
                    let target = (self.limit * step)
                        .max(self.limit + 1.0)
                        .min(self.limit * room);
                    let why = "filling towards the KV ceiling";
                    self.try_limit(target, rate, (1, 0.90), obs.now, why);
                }
            }
            Phase::Steady => {
                // No server signals: probe upwards now and then, keep only a clear gain.
                self.steady_epochs += 1;
                if self.steady_epochs % self.cfg.probe_every == 0
                    && self.limit < self.cfg.max as f64
                {
                    let target = (self.limit * 1.25).max(self.limit + 1.0);
                    let keep_at = 1.0 + self.cfg.probe_gain;
                    self.try_limit(target, rate, (2, keep_at), obs.now, "probing up");
                }
            }
        }
    }
}

/// Tokens per second between two readings of a token count, if time passed between them.
fn rate_between((t0, k0): (Instant, f64), (t1, k1): (Instant, f64)) -> Option<f64> {
    let dt = t1.saturating_duration_since(t0).as_secs_f64();
    (dt > 0.0).then(|| (k1 - k0).max(0.0) / dt)
}

/// How far to jump after two startup epochs, from a model of the server's step time.
///
/// With `L` sequences decoding together at `X` tokens/s, one step takes `s = L / X`. Two
/// measurements fit `s(L) = a + b·L` (a fixed cost per step, a cost per sequence), so
/// `X(L) = L / (a + b·L)`, which reaches 80 % of its plateau at `L = 4a/b`. A server whose fixed
/// cost dominates (a busy Python engine, a GPU far from compute-bound) is jumped towards that
/// point — up to 8× at once — instead of doubling for many epochs. Anything the fit cannot
/// explain doubles.
fn startup_step((l1, x1): (f64, f64), (l2, x2): (f64, f64)) -> f64 {
    if x1 <= 0.0 || x2 <= 0.0 || l2 <= l1 {
        return 2.0;
    }
    let (s1, s2) = (l1 / x1, l2 / x2);
    let b = (s2 - s1) / (l2 - l1);
    let a = s1 - b * l1;
    if b > 0.0 && a > 0.0 {
        ((4.0 * a / b) / l2).clamp(2.0, 8.0)
    } else {
        2.0
    }
}

impl Epoch {
    fn new(now: Instant) -> Epoch {
        Epoch {
            started: now,
            settle_at: now,
            end_at: now,
            len: Duration::ZERO,
            first: None,
            last_tokens: None,
            advances: 0,
            first_advance: None,
            last_advance: None,
            ticks: 0,
            full_ticks: 0,
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
        /// Share of what runs that the server's gauges show (1 = all; less = requests on the
        /// wire, or a balancer's metrics of one replica).
        held: f64,
    }

    impl Model {
        fn rate(&self, in_flight: f64) -> f64 {
            let b = in_flight.min(self.slots);
            self.x_max * b / (b + self.knee)
        }
    }

    /// A tick with tasks waiting and tokens streamed live, the rest as given.
    fn backlogged<'a>(
        now: Instant,
        in_flight: usize,
        server: Option<&'a ServerView>,
        work_share: Option<usize>,
        fleet_batches: bool,
    ) -> Observation<'a> {
        Observation {
            now,
            in_flight,
            backlog: true,
            client_tokens: 0,
            client_tokens_live: true,
            server,
            task_tokens: None,
            work_share,
            fleet_batches,
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
                    running: Some(inf.min(m.slots) * m.held),
                    waiting: Some((inf - m.slots).max(0.0) * m.held),
                    kv_usage: Some(0.2),
                    generation_tokens: Some(m.tokens),
                    kv_capacity_tokens: None,
                    from_client: false,
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
                work_share: None,
                fleet_batches: false,
            });
        }
        now
    }

    #[test]
    fn climbs_to_the_plateau_on_throughput_alone() {
        let mut c = AdaptiveLimit::new(AdaptiveConfig::default());
        let mut m = Model {
            x_max: 10_000.0,
            knee: 20.0,
            slots: 4096.0,
            tokens: 0.0,
            metrics: false,
            held: 1.0,
        };
        run(&mut c, &mut m, Instant::now(), 30.0);
        let l = c.limit() as f64;
        assert!(
            m.rate(l) >= 0.85 * m.x_max,
            "limit {l} gives {:.0}",
            m.rate(l)
        );
        assert!(l <= 1024.0);
    }

    #[test]
    fn a_server_queue_caps_the_limit_at_its_slots() {
        let mut c = AdaptiveLimit::new(AdaptiveConfig::default());
        let mut m = Model {
            x_max: 10_000.0,
            knee: 1.0,
            slots: 48.0,
            tokens: 0.0,
            metrics: true,
            held: 1.0,
        };
        run(&mut c, &mut m, Instant::now(), 30.0);
        let l = c.limit();
        assert!(
            (44..=60).contains(&l),
            "limit {l} should sit at the 48 slots"
        );
    }

    #[test]
    fn a_queue_cut_keeps_the_slots_the_server_ran_while_it_persisted() {
        // Drover's own view of a 4-slot server without metrics: 4 of 32 have tokens, the rest
        // wait. At the tick the queue has persisted long enough (15 s), one slot is between
        // answers (its next request still prefilling): the cut is to the 4 slots, not to 1.
        let t0 = Instant::now();
        let mut c = AdaptiveLimit::new(AdaptiveConfig::default());
        c.limit = 32.0;
        c.phase = Phase::Steady;
        let mut cut = None;
        for k in 0..=300u32 {
            let now = t0 + Duration::from_millis(50) * k;
            let running = if k == 300 { 1.0 } else { 4.0 };
            let view = ServerView {
                at: Some(now),
                running: Some(running),
                waiting: Some(32.0 - running),
                from_client: true,
                ..ServerView::default()
            };
            if let Some(l) = c.observe(&backlogged(now, 32, Some(&view), None, false)) {
                cut = Some((k, l));
            }
        }
        assert_eq!(cut, Some((300, 4)));
    }

    #[test]
    fn a_server_that_holds_nothing_gets_a_trimmed_limit() {
        // An answer-at-once server and a busy dispatcher: the server runs nothing for long, the
        // requests drover counts in flight wait on the wire or in drover, and more of them only
        // cost memory. The KV-sized start (1024) is trimmed to the floor and stays there.
        let mut c = AdaptiveLimit::new(AdaptiveConfig {
            initial: 1024,
            ..AdaptiveConfig::default()
        });
        let mut m = Model {
            x_max: 50_000.0,
            knee: 0.01,
            slots: 1e9,
            tokens: 0.0,
            metrics: true,
            held: 0.0,
        };
        run(&mut c, &mut m, Instant::now(), 30.0);
        assert_eq!(c.limit(), 1024, "nothing to trim towards below the floor");
        let mut c = AdaptiveLimit::new(AdaptiveConfig::default());
        c.set(1024.0, Instant::now(), "test");
        c.phase = Phase::Steady;
        run(&mut c, &mut m, Instant::now(), 30.0);
        assert_eq!(c.limit(), 16);
    }

    #[test]
    fn a_trim_that_costs_throughput_is_undone_and_not_retried_soon() {
        // Metrics of one replica behind a balancer: the server shows a quarter of what runs,
        // and the throughput does depend on all of it.
        let mut c = AdaptiveLimit::new(AdaptiveConfig::default());
        let start = Instant::now();
        c.set(512.0, start, "test");
        c.phase = Phase::Steady;
        let mut m = Model {
            x_max: 10_000.0,
            knee: 256.0,
            slots: 4096.0,
            tokens: 0.0,
            metrics: true,
            held: 0.25,
        };
        let (mut now, mut trims, mut last) = (start, 0, c.limit());
        for _ in 0..500 {
            now = run(&mut c, &mut m, now, 0.1);
            trims += usize::from(c.limit() < last);
            last = c.limit();
        }
        assert_eq!(trims, 1, "tried once in 50 s");
        assert!(c.limit() >= 512, "and undone: limit {}", c.limit());
    }

    #[test]
    fn flat_throughput_stops_the_climb_early() {
        // A server that gains nothing past 4 in flight (e.g. llama.cpp with 4 slots, no metrics).
        let mut c = AdaptiveLimit::new(AdaptiveConfig {
            initial: 2,
            ..AdaptiveConfig::default()
        });
        let mut m = Model {
            x_max: 200.0,
            knee: 0.01,
            slots: 4.0,
            tokens: 0.0,
            metrics: false,
            held: 1.0,
        };
        run(&mut c, &mut m, Instant::now(), 30.0);
        assert!(c.limit() <= 16, "limit {}", c.limit());
        assert_eq!(c.phase(), Phase::Steady);
    }

    #[test]
    fn kv_capacity_sizes_the_first_limit() {
        let mut c = AdaptiveLimit::new(AdaptiveConfig::default());
        let now = Instant::now();
        let view = ServerView {
            at: Some(now),
            kv_capacity_tokens: Some(400_000.0),
            waiting: Some(0.0),
            ..ServerView::default()
        };
        let changed = c.observe(&Observation {
            now,
            in_flight: 0,
            backlog: true,
            client_tokens: 0,
            client_tokens_live: false,
            server: Some(&view),
            task_tokens: Some(400.0),
            work_share: None,
            fleet_batches: false,
        });
        assert_eq!(changed, Some(900), "0.9 * 400k / 400");
    }

    #[test]
    fn overload_and_kv_pressure_cut_the_limit() {
        let now = Instant::now();
        let mut c = AdaptiveLimit::new(AdaptiveConfig {
            initial: 100,
            ..AdaptiveConfig::default()
        });
        c.on_overload(now);
        assert_eq!(c.limit(), 75);
        let view = ServerView {
            at: Some(now),
            kv_usage: Some(0.99),
            ..ServerView::default()
        };
        c.observe(&Observation {
            now,
            in_flight: 75,
            backlog: true,
            client_tokens: 0,
            client_tokens_live: false,
            server: Some(&view),
            task_tokens: None,
            work_share: None,
            fleet_batches: false,
        });
        assert_eq!(c.limit(), 68, "75 * 0.9 / 0.99");
        assert_eq!(c.phase(), Phase::Steady);
    }

    #[test]
    fn idle_epochs_change_nothing() {
        let mut c = AdaptiveLimit::new(AdaptiveConfig::default());
        let mut now = Instant::now();
        for k in 0..200 {
            now += Duration::from_millis(50);
            c.observe(&Observation {
                now,
                in_flight: 1,
                backlog: false,
                client_tokens: k * 10,
                client_tokens_live: true,
                server: None,
                task_tokens: None,
                work_share: None,
                fleet_batches: false,
            });
        }
        assert_eq!(c.limit(), 16);
    }

    #[test]
    fn startup_jumps_where_the_fixed_cost_dominates() {
        // s(L) = 50 ms + 1 ms·L: 16 → 16/66ms, 32 → 32/82ms; 80 % of the plateau at L = 200.
        let x = |l: f64| l / (0.050 + 0.001 * l);
        let step = startup_step((16.0, x(16.0)), (32.0, x(32.0)));
        assert!((step - 200.0 / 32.0).abs() < 0.01, "{step}");
        // Throughput proportional to L with no fixed cost: doubling.
        assert_eq!(startup_step((16.0, 160.0), (32.0, 320.0)), 2.0);
        // A flat server (a queue in front of fixed slots) gets no jump beyond doubling.
        assert_eq!(startup_step((16.0, 400.0), (32.0, 400.0)), 2.0);
    }

    #[test]
    fn a_fall_after_a_startup_jump_halves_the_limit_not_back_to_the_start() {
        let now = Instant::now();
        let obs = Observation {
            now,
            in_flight: 256,
            backlog: true,
            client_tokens: 0,
            client_tokens_live: true,
            server: None,
            task_tokens: None,
            work_share: None,
            fleet_batches: false,
        };
        // An 8× model jump (32 → 256) whose next epoch reads 30 % less: back to 128, not 32.
        let mut c = AdaptiveLimit::new(AdaptiveConfig::default());
        c.limit = 256.0;
        c.prev = Some((32.0, 274.0));
        c.decide(190.0, false, &obs);
        assert_eq!((c.limit(), c.phase()), (128, Phase::Steady));
        // A plain doubling that overshot goes back to the last good limit, as before.
        let mut c = AdaptiveLimit::new(AdaptiveConfig::default());
        c.limit = 64.0;
        c.prev = Some((32.0, 274.0));
        c.decide(190.0, false, &obs);
        assert_eq!(c.limit(), 32);
        // Growth that merely stalls keeps the limit.
        let mut c = AdaptiveLimit::new(AdaptiveConfig::default());
        c.limit = 256.0;
        c.prev = Some((32.0, 274.0));
        c.decide(280.0, false, &obs);
        assert_eq!((c.limit(), c.phase()), (256, Phase::Steady));
    }

    #[test]
    fn a_job_already_read_is_sent_in_one_step_once_the_server_shows_it_batches() {
        let now = Instant::now();
        let obs = |work_share| backlogged(now, 32, None, work_share, false);
        // 16 → 32 doubled the rate: the 375 tasks per backend left go out at once.
        let mut c = AdaptiveLimit::new(AdaptiveConfig::default());
        c.limit = 32.0;
        c.prev = Some((16.0, 100.0));
        c.decide(200.0, false, &obs(Some(375)));
        assert_eq!(c.limit(), 375);
        // Without a measured gain yet (the first step), a plain doubling.
        let mut c = AdaptiveLimit::new(AdaptiveConfig::default());
        c.limit = 16.0;
        c.decide(100.0, false, &obs(Some(375)));
        assert_eq!(c.limit(), 32);
        // A share far above the limit: at most 16× at once.
        let mut c = AdaptiveLimit::new(AdaptiveConfig::default());
        c.limit = 32.0;
        c.prev = Some((16.0, 100.0));
        c.decide(200.0, false, &obs(Some(5000)));
        assert_eq!(c.limit(), 512);
        // No step past the work left per backend: at the share, startup ends.
        let mut c = AdaptiveLimit::new(AdaptiveConfig::default());
        c.limit = 375.0;
        c.prev = Some((32.0, 300.0));
        c.decide(900.0, false, &obs(Some(300)));
        assert_eq!((c.limit(), c.phase()), (375, Phase::Steady));
        let mut c = AdaptiveLimit::new(AdaptiveConfig::default());
        c.limit = 64.0;
        c.prev = Some((32.0, 300.0));
        c.decide(600.0, false, &obs(Some(100)));
        assert_eq!((c.limit(), c.phase()), (100, Phase::Startup));
        // The input not all read yet: the model step (doubling here).
        let mut c = AdaptiveLimit::new(AdaptiveConfig::default());
        c.limit = 32.0;
        c.prev = Some((16.0, 100.0));
        c.decide(200.0, false, &obs(None));
        assert_eq!(c.limit(), 64);
    }

    #[test]
    fn a_job_already_read_goes_out_once_the_server_runs_a_whole_first_limit() {
        let now = Instant::now();
        let view = |running: f64, waiting: f64, from_client| ServerView {
            at: Some(now),
            running: Some(running),
            waiting: Some(waiting),
            from_client,
            ..ServerView::default()
        };
        let obs =
            |server, in_flight, work_share| backlogged(now, in_flight, server, work_share, false);
        // All 16 of the first limit stream tokens and 375 tasks per backend are left: they all
        // go at once, before any epoch has ended, and the backend shows the fleet it batches.
        let all = view(16.0, 0.0, true);
        let mut c = AdaptiveLimit::new(AdaptiveConfig::default());
        assert_eq!(c.observe(&obs(Some(&all), 16, Some(375))), Some(375));
        assert!(c.batches_shown());
        assert_eq!(c.phase(), Phase::Steady);
        // The same from a server's own gauges (vLLM without its KV size).
        let mut c = AdaptiveLimit::new(AdaptiveConfig::default());
        let gauges = view(16.0, 0.0, false);
        assert_eq!(c.observe(&obs(Some(&gauges), 16, Some(375))), Some(375));
        // Not yet: the first tokens have not come (prefill), the limit is not full, the input
        // is not all read, or no figures at all.
        let not_yet = [
            (Some(view(0.0, 16.0, true)), 16, Some(375)),
            (Some(view(8.0, 0.0, true)), 8, Some(375)),
            (Some(all.clone()), 16, None),
            (None, 16, Some(375)),
        ];
        for (server, in_flight, share) in &not_yet {
            let mut c = AdaptiveLimit::new(AdaptiveConfig::default());
            assert_eq!(c.observe(&obs(server.as_ref(), *in_flight, *share)), None);
            assert!(!c.batches_shown());
        }
        // Fixed slots: 4 of 16 run and the rest wait. Nothing shown; the measured climb decides.
        let mut c = AdaptiveLimit::new(AdaptiveConfig::default());
        let slots = view(4.0, 12.0, true);
        for _ in 0..3 {
            assert_eq!(c.observe(&obs(Some(&slots), 16, Some(375))), None);
        }
        assert!(!c.batches_shown());
        // Only in startup: a backend settled by the measured climb keeps its rules.
        let mut c = AdaptiveLimit::new(AdaptiveConfig::default());
        c.phase = Phase::Steady;
        assert_eq!(c.observe(&obs(Some(&all), 16, Some(375))), None);
    }

    #[test]
    fn a_backend_whose_own_steps_showed_no_gain_takes_its_share_once_the_fleet_batches() {
        let now = Instant::now();
        let client = ServerView {
            at: Some(now),
            running: Some(16.0),
            waiting: Some(0.0),
            from_client: true,
            ..ServerView::default()
        };
        let metrics = ServerView {
            from_client: false,
            ..client.clone()
        };
        let obs = |server, work_share, fleet_batches| {
            backlogged(now, 16, server, work_share, fleet_batches)
        };
        // A neighbour's jump read as this backend's overshoot: back to 16, steady, on drover's
        // own view. The fleet has shown batching and 375 tasks per backend are left: all go.
        let settled = || {
            let mut c = AdaptiveLimit::new(AdaptiveConfig::default());
            c.phase = Phase::Steady;
            c
        };
        let mut c = settled();
        assert_eq!(c.observe(&obs(Some(&client), Some(375), true)), Some(375));
        assert_eq!(c.phase(), Phase::Steady);
        // Once only: a later cut is not undone by the same rule.
        c.limit = 100.0;
        assert_eq!(c.observe(&obs(Some(&client), Some(300), true)), None);
        // Nothing yet shows the fleet batches, or the input is not all read: nothing.
        let mut c = settled();
        assert_eq!(c.observe(&obs(Some(&client), Some(375), false)), None);
        assert_eq!(c.observe(&obs(Some(&client), None, true)), None);
        // A server that queues part of what it holds (fixed slots: 4 of 16 running) takes at
        // most 16× its limit; wait until the share fits.
        let slots = ServerView {
            running: Some(4.0),
            waiting: Some(12.0),
            ..client.clone()
        };
        assert_eq!(c.observe(&obs(Some(&slots), Some(375), true)), None);
        assert_eq!(c.observe(&obs(Some(&slots), Some(200), true)), Some(200));
        // A backend a ceiling signal has cut keeps its limit.
        let mut c = settled();
        c.on_overload(now);
        assert_eq!(c.observe(&obs(Some(&client), Some(375), true)), None);
        // A settled backend whose server publishes its figures follows them, not this rule;
        // one still in startup takes its share.
        let mut c = settled();
        assert_eq!(c.observe(&obs(Some(&metrics), Some(375), true)), None);
        let mut c = AdaptiveLimit::new(AdaptiveConfig::default());
        assert_eq!(c.observe(&obs(Some(&metrics), Some(375), true)), Some(375));
        // A startup step with the gain that keeps startup going is what shows it: 10 % on
        // throughput alone, 3 % with queue figures (drover's own view has them).
        let mut c = AdaptiveLimit::new(AdaptiveConfig::default());
        assert!(!c.batches_shown());
        c.limit = 32.0;
        c.prev = Some((16.0, 100.0));
        c.decide(105.0, false, &obs(None, None, false));
        assert!(!c.batches_shown(), "5 % is not enough on throughput alone");
        let mut c = AdaptiveLimit::new(AdaptiveConfig::default());
        c.limit = 32.0;
        c.prev = Some((16.0, 100.0));
        c.decide(105.0, true, &obs(None, None, false));
        assert!(c.batches_shown(), "5 % is enough with queue figures");
        let mut c = AdaptiveLimit::new(AdaptiveConfig::default());
        c.limit = 32.0;
        c.prev = Some((16.0, 100.0));
        c.decide(150.0, false, &obs(None, None, false));
        assert!(c.batches_shown());
    }

    #[test]
    fn streamed_tokens_arriving_in_step_bursts_read_at_the_true_rate() {
        // A batch engine: every `step` all 16 requests get a token; drover reads the count
        // once a 50 ms tick. True rate 16 / 70 ms = 228.6 tokens/s.
        let cfg = AdaptiveConfig {
            max: 16,
            ..AdaptiveConfig::default()
        };
        let mut c = AdaptiveLimit::new(cfg);
        let step = Duration::from_millis(70);
        let t0 = Instant::now();
        let mut rates = Vec::new();
        for k in 1..600u32 {
            let now = t0 + Duration::from_millis(50) * k;
            let steps = (now - t0).as_nanos() / step.as_nanos();
            c.observe(&Observation {
                now,
                in_flight: 16,
                backlog: true,
                client_tokens: 16 * steps as u64,
                client_tokens_live: true,
                server: None,
                task_tokens: None,
                work_share: None,
                fleet_batches: false,
            });
            if let Some(r) = c.last_rate().filter(|r| rates.last() != Some(r)) {
                rates.push(r);
            }
        }
        assert!(rates.len() >= 5, "{rates:?}");
        for r in rates {
            assert!((r / (16.0 / 0.070) - 1.0).abs() < 0.05, "{r}");
        }
    }

    #[test]
    fn a_startup_without_a_step_for_a_while_no_longer_counts_as_ramping() {
        let t0 = Instant::now();
        let within = Duration::from_secs(10);
        let mut c = AdaptiveLimit::new(AdaptiveConfig::default());
        assert!(c.ramping(t0, within));
        c.set(64.0, t0, "test");
        assert!(c.ramping(t0 + Duration::from_secs(9), within));
        assert!(!c.ramping(t0 + Duration::from_secs(11), within));
        c.phase = Phase::Steady;
        assert!(!c.ramping(t0, within), "a settled limit is not ramping");
    }

    #[test]
    fn streamed_epochs_wait_for_first_tokens() {
        let mut c = AdaptiveLimit::new(AdaptiveConfig::default());
        c.set_latencies(None, Some(1.0));
        let obs = Observation {
            now: Instant::now(),
            in_flight: 16,
            backlog: true,
            client_tokens: 0,
            client_tokens_live: true,
            server: None,
            task_tokens: None,
            work_share: None,
            fleet_batches: false,
        };
        assert_eq!(c.epoch_len(&obs), Duration::from_secs(3));
    }

    #[test]
    fn completion_counted_epochs_wait_for_latency() {
        let mut c = AdaptiveLimit::new(AdaptiveConfig::default());
        c.set_latencies(Some(2.0), None);
        let obs = Observation {
            now: Instant::now(),
            in_flight: 16,
            backlog: true,
            client_tokens: 0,
            client_tokens_live: false,
            server: None,
            task_tokens: None,
            work_share: None,
            fleet_batches: false,
        };
        assert_eq!(c.epoch_len(&obs), Duration::from_secs(4));
    }

    /// A slow engine without metrics (transformers' continuous batching): steps of 0.9 s, and
    /// after each change several seconds before the new requests' first tokens. Windows that
    /// close between two steps must not read as zero throughput, and the long prefill must not
    /// count as a queue: the limit only climbs while throughput grows with it.
    #[test]
    fn slow_steps_and_long_prefills_do_not_read_as_overload() {
        let mut c = AdaptiveLimit::new(AdaptiveConfig::default());
        let start = Instant::now();
        let (tick, step) = (Duration::from_millis(50), Duration::from_millis(900));
        let (mut now, mut next_step, mut tokens) = (start, start + step, 0u64);
        let mut changed_at = start;
        let mut limits = vec![c.limit()];
        while now < start + Duration::from_secs(90) {
            now += tick;
            let in_flight = c.limit();
            // Throughput grows with the batch up to 1024 (one token per sequence per step).
            if now >= next_step {
                tokens += in_flight.min(1024) as u64;
                next_step += step;
            }
            let prefilling = now.duration_since(changed_at) < Duration::from_secs(4);
            let waiting = if prefilling {
                in_flight as f64 / 2.0
            } else {
                0.0
            };
            let view = ServerView {
                at: Some(now),
                running: Some(in_flight as f64 - waiting),
                waiting: Some(waiting),
                from_client: true,
                ..ServerView::default()
            };
            let obs = Observation {
                now,
                in_flight,
                backlog: true,
                client_tokens: tokens,
                client_tokens_live: true,
                server: Some(&view),
                task_tokens: Some(330.0),
                work_share: None,
                fleet_batches: false,
            };
            if c.observe(&obs).is_some() {
                changed_at = now;
                limits.push(c.limit());
            }
        }
        // Up to the plateau (1024 = the configured maximum) it only climbs; around it, probes
        // may come and go.
        let climb = limits
            .iter()
            .position(|&l| l >= 900)
            .unwrap_or_else(|| panic!("never reached the plateau: {limits:?}"));
        assert!(
            limits[..=climb].windows(2).all(|w| w[1] > w[0]),
            "the limit went down on the way up: {limits:?}"
        );
        assert!(c.limit() >= 900, "ended at {} ({limits:?})", c.limit());
    }
}
