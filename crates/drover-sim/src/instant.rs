//! The `instant` engine: every answer is complete the moment it is submitted.
//!
//! It exists to measure the dispatcher, so it must sustain tens of thousands of requests per
//! second on a core shared with the client: no task, no scheduler, no prompt hashing; a request
//! costs its token strings and one channel. Usage counts, digests and the front's metrics are the
//! same as the stepped engine's.
//!
//! With `--api-overhead D` (zero in the preset) each answer is held for D instead, counted as
//! running meanwhile, like a server that takes a fixed time per request: a client then keeps a
//! set number of requests live (rate × D) whatever the fleet's size, which is how the
//! dispatcher's cost per task is compared across fleet sizes (bench/dispatch/run.sh). The
//! `--slow-rate` fault delays before the engine instead, where the gauges do not see it.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use drover_server::{
    Engine, EngineError, EngineGauges, GenEvent, GenRequest, Generation, Health, ModelInfo,
};
use tokio::sync::mpsc;

use crate::answer::AnswerPlan;
use crate::backend::{self, Lifecycle, SimBackend};
use crate::config::SimConfig;
use crate::rng::Draws;

pub(crate) struct InstantEngine {
    config: SimConfig,
    lifecycle: Lifecycle,
    draws: Draws,
    stalled: AtomicBool,
    /// Requests submitted while stalled, answered when the stall ends.
    held: Mutex<Vec<(AnswerPlan, mpsc::Sender<GenEvent>)>>,
    /// How long each answer is held (`api_overhead`, scaled); zero: answered at once.
    hold: Duration,
    /// Answers being held.
    holding: Arc<AtomicU64>,
}

impl InstantEngine {
    pub fn new(config: SimConfig) -> InstantEngine {
        InstantEngine {
            lifecycle: Lifecycle::new(&config),
            draws: Draws::new(config.seed, 1),
            hold: config.params.api_overhead.mul_f64(config.time_scale),
            holding: Arc::default(),
            config,
            stalled: AtomicBool::new(false),
            held: Mutex::new(Vec::new()),
        }
    }
}

fn answer(plan: &AnswerPlan, tx: &mpsc::Sender<GenEvent>) {
    for i in 0..plan.tokens {
        if tx
            .try_send(GenEvent::Token {
                text: plan.token(i),
            })
            .is_err()
        {
            return;
        }
    }
    let _ = tx.try_send(GenEvent::Done {
        finish_reason: plan.finish,
        completion_tokens: plan.tokens,
        cached_tokens: 0,
    });
}

impl Engine for InstantEngine {
    fn model(&self) -> ModelInfo {
        backend::model_info(&self.config)
    }

    fn health(&self) -> Health {
        self.lifecycle.health()
    }

    fn submit(&self, request: GenRequest) -> Result<Generation, EngineError> {
        self.lifecycle.check()?;
        let admitted = backend::admit(&self.config, &request, false, self.draws.next_u64())?;
        let (tx, rx) = mpsc::channel(admitted.plan.tokens as usize + 1);
        if self.stalled.load(Ordering::Acquire) {
            self.held
                .lock()
                .expect("held lock")
                .push((admitted.plan, tx));
        } else if self.hold.is_zero() {
            answer(&admitted.plan, &tx);
        } else {
            let (hold, holding) = (self.hold, self.holding.clone());
            holding.fetch_add(1, Ordering::Relaxed);
            tokio::spawn(async move {
                tokio::time::sleep(hold).await;
                answer(&admitted.plan, &tx);
                holding.fetch_sub(1, Ordering::Relaxed);
            });
        }
        Ok(Generation {
            prompt_tokens: admitted.prompt_tokens,
            events: rx,
        })
    }

    fn gauges(&self) -> EngineGauges {
        EngineGauges {
            running: self.holding.load(Ordering::Relaxed),
            waiting: self.held.lock().expect("held lock").len() as u64,
            block_size: self.config.params.block_size,
            num_gpu_blocks: u64::from(self.config.params.num_kv_blocks),
            ..EngineGauges::default()
        }
    }
}

impl SimBackend for InstantEngine {
    fn set_stalled(&self, stalled: bool) {
        let mut held = self.held.lock().expect("held lock");
        self.stalled.store(stalled, Ordering::Release);
        if !stalled {
            for (plan, tx) in held.drain(..) {
                answer(&plan, &tx);
            }
        }
    }

    fn stop(&self) {
        self.lifecycle.stop();
        self.held.lock().expect("held lock").clear();
    }
}
