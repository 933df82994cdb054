//! What the two simulated engines (the stepped model and `instant`) share: admission of a request
//! (validation, token count, answer plan), start-up state, and the control surface the fleet uses.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use drover_server::{Engine, EngineError, GenRequest, Health, ModelInfo};

use crate::answer::AnswerPlan;
use crate::config::SimConfig;
use crate::tokens::{self, PromptTokens};

/// A simulated engine as the fleet drives it.
pub(crate) trait SimBackend: Engine {
    /// Stops (or resumes) all progress; health stays 200.
    fn set_stalled(&self, stalled: bool);
    /// Stops the engine for good: pending requests get no more events.
    fn stop(&self);
}

/// Starts the engine `config` asks for (its task, if it has one, runs on the current runtime).
pub(crate) fn start(config: &SimConfig) -> Arc<dyn SimBackend> {
    if config.instant {
        Arc::new(crate::instant::InstantEngine::new(config.clone()))
    } else {
        crate::driver::SimEngine::start(config.clone())
    }
}

/// A request that passed validation.
pub(crate) struct Admitted {
    pub prompt_tokens: u32,
    /// Block hashes, when asked for.
    pub tokens: Option<PromptTokens>,
    pub plan: AnswerPlan,
}

/// Validates `request` like vLLM's front end and plans its answer; `hash_blocks` also hashes the
/// prompt for prefix caching, `draw` feeds the output-length distribution.
pub(crate) fn admit(
    config: &SimConfig,
    request: &GenRequest,
    hash_blocks: bool,
    draw: u64,
) -> Result<Admitted, EngineError> {
    let max_model_len = config.params.max_model_len;
    let (prompt_tokens, tokens) = if hash_blocks {
        let t = tokens::tokenize(&request.prompt, config.params.block_size);
        (t.count, Some(t))
    } else {
        (tokens::count(&request.prompt), None)
    };
    if prompt_tokens >= max_model_len {
        return Err(EngineError::ContextLength {
            max_model_len,
            prompt_tokens,
        });
    }
    if let Some(max_tokens) = request.max_tokens
        && u64::from(prompt_tokens) + u64::from(max_tokens) > u64::from(max_model_len)
    {
        return Err(EngineError::MaxTokens {
            max_tokens,
            max_model_len,
            prompt_tokens,
        });
    }
    let plan = AnswerPlan::new(
        request,
        max_model_len - prompt_tokens,
        config.length_policy(),
        draw,
    );
    Ok(Admitted {
        prompt_tokens,
        tokens,
        plan,
    })
}

/// Start-up and stop state shared by both engines.
pub(crate) struct Lifecycle {
    /// `/health` answers 503 and requests are refused until then (`--slow-start`).
    ready_at: Instant,
    stopped: AtomicBool,
}

impl Lifecycle {
    pub fn new(config: &SimConfig) -> Lifecycle {
        Lifecycle {
            ready_at: Instant::now() + config.faults.slow_start,
            stopped: AtomicBool::new(false),
        }
    }

    pub fn health(&self) -> Health {
        if self.stopped.load(Ordering::Relaxed) {
            Health::Dead
        } else if Instant::now() < self.ready_at {
            Health::Starting
        } else {
            Health::Ready
        }
    }

    /// `Err` when requests must be refused (503).
    pub fn check(&self) -> Result<(), EngineError> {
        match self.health() {
            Health::Ready => Ok(()),
            Health::Starting => Err(EngineError::Unavailable(
                "drover sim: the engine is still starting".into(),
            )),
            Health::Dead => Err(EngineError::Unavailable(
                "drover sim: the engine was stopped".into(),
            )),
        }
    }

    pub fn stop(&self) {
        self.stopped.store(true, Ordering::Relaxed);
    }
}

/// What `/v1/models` says about `config`.
pub(crate) fn model_info(config: &SimConfig) -> ModelInfo {
    ModelInfo {
        id: config.model.clone(),
        max_model_len: config.params.max_model_len,
        owned_by: "vllm".into(),
    }
}
