//! The stepped engine: runs [`step`] against the clock, one task per instance.
//!
//! `submit` validates and plans a request and drops it in an inbox; after `api_overhead` (scaled)
//! it joins the waiting queue. The loop takes a step, sleeps its duration (simulated seconds ×
//! time scale ÷ speed factor), then delivers the step's tokens. An idle or stalled engine waits on
//! a `Notify` and costs nothing.
//!
//! Sleeping: tokio's timer ticks in milliseconds, while a scaled step can be a few microseconds.
//! The loop keeps a virtual clock (the end of the last step) and sleeps only when that clock is
//! more than [`MIN_SLEEP`] ahead of the wall clock; steps that end in the past run back to back.
//! So each step's end is rounded to the timer, but the sum of step times stays exact. The virtual
//! clock restarts at "now" after idleness, and never lags more than [`MAX_DEBT`] behind.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use drover_server::{
    Engine, EngineError, EngineGauges, GenEvent, GenRequest, Generation, Health, ModelInfo,
};
use tokio::sync::{Notify, mpsc};
use tokio::task::JoinHandle;

use crate::answer::AnswerPlan;
use crate::backend::{self, Lifecycle, SimBackend};
use crate::config::SimConfig;
use crate::engine::{EngineState, NewSeq, SeqId, step};
use crate::rng::Draws;

/// Shorter waits than this are not slept: they are carried as debt into the next step.
pub const MIN_SLEEP: Duration = Duration::from_micros(50);
/// The virtual clock never lags the wall clock by more than this (after a stall of the process).
pub const MAX_DEBT: Duration = Duration::from_millis(10);
/// How often the loop looks for requests whose client went away.
const ABORT_SCAN: Duration = Duration::from_millis(10);

struct Pending {
    id: SeqId,
    ready_at: Instant,
    seq: NewSeq,
    live: Live,
}

/// The delivery side of a request.
struct Live {
    tx: mpsc::Sender<GenEvent>,
    plan: AnswerPlan,
    sent: u32,
}

#[derive(Default)]
struct Gauges {
    running: AtomicU64,
    waiting: AtomicU64,
    kv_usage_bits: AtomicU64,
    preemptions: AtomicU64,
    prefix_queries: AtomicU64,
    prefix_hits: AtomicU64,
}

struct Shared {
    config: SimConfig,
    lifecycle: Lifecycle,
    inbox: Mutex<Vec<Pending>>,
    /// Requests submitted and not yet in the scheduler (for `max_num_queued_reqs`).
    in_transit: AtomicU64,
    wake: Notify,
    stalled: AtomicBool,
    gauges: Gauges,
    next_id: AtomicU64,
    length_draws: Draws,
    jitter_draws: Draws,
}

/// The stepped simulated engine.
pub(crate) struct SimEngine {
    shared: Arc<Shared>,
    task: Mutex<Option<JoinHandle<()>>>,
}

impl SimEngine {
    /// Starts the engine loop on the current runtime.
    pub fn start(config: SimConfig) -> Arc<SimEngine> {
        let shared = Arc::new(Shared {
            lifecycle: Lifecycle::new(&config),
            length_draws: Draws::new(config.seed, 1),
            jitter_draws: Draws::new(config.seed, 2),
            config,
            inbox: Mutex::new(Vec::new()),
            in_transit: AtomicU64::new(0),
            wake: Notify::new(),
            stalled: AtomicBool::new(false),
            gauges: Gauges::default(),
            next_id: AtomicU64::new(0),
        });
        let task = tokio::spawn(run(shared.clone()));
        Arc::new(SimEngine {
            shared,
            task: Mutex::new(Some(task)),
        })
    }
}

impl Engine for SimEngine {
    fn model(&self) -> ModelInfo {
        backend::model_info(&self.shared.config)
    }

    fn health(&self) -> Health {
        self.shared.lifecycle.health()
    }

    fn submit(&self, request: GenRequest) -> Result<Generation, EngineError> {
        let s = &self.shared;
        s.lifecycle.check()?;
        let admitted = backend::admit(
            &s.config,
            &request,
            s.config.params.enable_prefix_caching,
            s.length_draws.next_u64(),
        )?;
        let limit = u64::from(s.config.params.max_num_queued_reqs);
        if limit > 0
            && s.gauges.waiting.load(Ordering::Relaxed) + s.in_transit.load(Ordering::Relaxed)
                >= limit
        {
            return Err(EngineError::Unavailable(format!(
                "drover sim: {limit} requests are already waiting (--max-num-queued-reqs)"
            )));
        }
        let p = &s.config.params;
        let jitter = 1.0 + p.api_overhead_jitter * (2.0 * s.jitter_draws.next_f64() - 1.0);
        let overhead =
            Duration::from_secs_f64(p.api_overhead.as_secs_f64() * jitter * s.config.time_scale);
        let tokens = admitted
            .tokens
            .unwrap_or_else(|| crate::tokens::PromptTokens {
                count: admitted.prompt_tokens,
                block_hashes: Vec::new(),
                tail_ids: Vec::new(),
            });
        let (tx, rx) = mpsc::channel(admitted.plan.tokens as usize + 2);
        let pending = Pending {
            id: s.next_id.fetch_add(1, Ordering::Relaxed),
            ready_at: Instant::now() + overhead,
            seq: NewSeq {
                prompt_tokens: tokens.count,
                output_tokens: admitted.plan.tokens,
                block_hashes: tokens.block_hashes,
                tail_ids: tokens.tail_ids,
                output_seed: xxhash_rust::xxh3::xxh3_64(admitted.plan.label().as_bytes()),
            },
            live: Live {
                tx,
                plan: admitted.plan,
                sent: 0,
            },
        };
        s.in_transit.fetch_add(1, Ordering::Relaxed);
        s.inbox.lock().expect("inbox lock").push(pending);
        s.wake.notify_one();
        Ok(Generation {
            prompt_tokens: admitted.prompt_tokens,
            events: rx,
        })
    }

    fn gauges(&self) -> EngineGauges {
        let g = &self.shared.gauges;
        EngineGauges {
            running: g.running.load(Ordering::Relaxed),
            waiting: g.waiting.load(Ordering::Relaxed),
            kv_cache_usage: f64::from_bits(g.kv_usage_bits.load(Ordering::Relaxed)),
            preemptions_total: g.preemptions.load(Ordering::Relaxed),
            prefix_cache_queries_total: g.prefix_queries.load(Ordering::Relaxed),
            prefix_cache_hits_total: g.prefix_hits.load(Ordering::Relaxed),
            block_size: self.shared.config.params.block_size,
            num_gpu_blocks: u64::from(self.shared.config.params.num_kv_blocks),
        }
    }
}

impl SimBackend for SimEngine {
    fn set_stalled(&self, stalled: bool) {
        self.shared.stalled.store(stalled, Ordering::Release);
        self.shared.wake.notify_one();
    }

    fn stop(&self) {
        self.shared.lifecycle.stop();
        if let Some(task) = self.task.lock().expect("task lock").take() {
            task.abort();
        }
    }
}

impl Drop for SimEngine {
    fn drop(&mut self) {
        self.stop();
    }
}

fn publish(g: &Gauges, state: &EngineState) {
    g.running.store(state.running() as u64, Ordering::Relaxed);
    g.waiting.store(state.waiting() as u64, Ordering::Relaxed);
    g.kv_usage_bits
        .store(state.kv_usage().to_bits(), Ordering::Relaxed);
    g.preemptions.store(state.preemptions, Ordering::Relaxed);
    g.prefix_queries
        .store(state.prefix_queries, Ordering::Relaxed);
    g.prefix_hits.store(state.prefix_hits, Ordering::Relaxed);
}

/// The engine loop; see the module doc.
async fn run(shared: Arc<Shared>) {
    let params = shared.config.params.clone();
    let step_scale = shared.config.time_scale / shared.config.speed_factor;
    let mut state = EngineState::new(&params);
    let mut delayed: BinaryHeap<Reverse<(Instant, SeqId)>> = BinaryHeap::new();
    let mut staged: HashMap<SeqId, Pending> = HashMap::new();
    let mut live: HashMap<SeqId, Live> = HashMap::new();
    let mut clock: Option<Instant> = None;
    let mut last_scan = Instant::now();
    // Since when the engine has had nothing to do (it starts idle), for `idle_wake`.
    let mut idle_since = Some(Instant::now());
    let idle_after = params.idle_after.mul_f64(shared.config.time_scale);
    loop {
        for p in shared.inbox.lock().expect("inbox lock").drain(..) {
            delayed.push(Reverse((p.ready_at, p.id)));
            staged.insert(p.id, p);
        }
        let now = Instant::now();
        while let Some(&Reverse((ready_at, id))) = delayed.peek()
            && ready_at <= now
        {
            delayed.pop();
            shared.in_transit.fetch_sub(1, Ordering::Relaxed);
            let p = staged.remove(&id).expect("staged request");
            if !p.live.tx.is_closed() {
                state.add(id, p.seq);
                live.insert(id, p.live);
            }
        }
        if now.duration_since(last_scan) >= ABORT_SCAN {
            last_scan = now;
            live.retain(|&id, l| {
                let gone = l.tx.is_closed();
                if gone {
                    state.abort(id);
                }
                !gone
            });
        }

        let stalled = shared.stalled.load(Ordering::Acquire);
        if stalled || !state.has_work() {
            publish(&shared.gauges, &state);
            clock = None;
            idle_since.get_or_insert(now);
            match delayed.peek() {
                // Even stalled, arrivals join the waiting queue (and its gauge): only steps stop.
                Some(&Reverse((at, _))) => {
                    tokio::select! {
                        () = shared.wake.notified() => {}
                        () = tokio::time::sleep_until(at.into()) => {}
                    }
                }
                _ => shared.wake.notified().await,
            }
            continue;
        }

        // A long-idle engine is slow to take its first step (measured on transformers serve).
        if let Some(since) = idle_since.take()
            && !params.idle_wake.is_zero()
            && now.duration_since(since) >= idle_after
        {
            tokio::time::sleep(params.idle_wake.mul_f64(shared.config.time_scale)).await;
            continue;
        }

        let outcome = step(&mut state, &params);
        publish(&shared.gauges, &state);
        let wall = Duration::from_secs_f64(outcome.seconds * step_scale);
        let start = match clock {
            Some(c) => c.max(now.checked_sub(MAX_DEBT).unwrap_or(now)),
            None => now,
        };
        let end = start + wall;
        clock = Some(end);
        if end > Instant::now() + MIN_SLEEP {
            tokio::time::sleep_until(end.into()).await;
        }

        for id in outcome.emitted {
            let Some(l) = live.get_mut(&id) else { continue };
            let text = l.plan.token(l.sent);
            l.sent += 1;
            if l.tx.try_send(GenEvent::Token { text }).is_err() {
                live.remove(&id);
                state.abort(id);
            }
        }
        for f in outcome.finished {
            if let Some(l) = live.remove(&f.id) {
                let done = GenEvent::Done {
                    finish_reason: l.plan.finish,
                    completion_tokens: f.output_tokens,
                    cached_tokens: f.cached_tokens,
                };
                let _ = l.tx.try_send(done);
            }
        }
    }
}
