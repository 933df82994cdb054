//! [`LlamaEngine`]: loading, and the [`drover_server::Engine`] contract.

use std::num::NonZeroU32;
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::mpsc as std_mpsc;

use drover_server::{
    Engine, EngineError as Refusal, EngineGauges, GenRequest, Generation, Health, ModelInfo, Prompt,
};
use llama_cpp_2::context::params::LlamaContextParams;
use llama_cpp_2::model::LlamaModel;
use llama_cpp_2::model::params::LlamaModelParams;
use llama_cpp_2::token::LlamaToken;
use tokio::sync::mpsc;

use crate::backend::backend;
use crate::gauges::{EngineStats, Shared};
use crate::grammar::grammar_for;
use crate::prompt::PromptFormatter;
use crate::request::{Admission, completion_budget};
use crate::sampling::SamplingParams;
use crate::scheduler::Scheduler;
use crate::{EngineConfig, EngineError};

/// Smallest `decode` batch: prompt chunks of this size keep prefill efficient while bounding how
/// long one step stalls the running streams (~1–2 s for 512 tokens on 2 CPU cores).
const MIN_BATCH: usize = 512;

/// The embedded llama.cpp engine: one model, one context, one scheduler thread.
///
/// Dropping the last handle lets the engine thread finish the requests in flight and exit.
pub struct LlamaEngine {
    model: Arc<LlamaModel>,
    info: ModelInfo,
    formatter: PromptFormatter,
    requests: std_mpsc::Sender<Admission>,
    shared: Arc<Shared>,
    n_ctx: u32,
    config: EngineConfig,
}

impl std::fmt::Debug for LlamaEngine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LlamaEngine")
            .field("model", &self.info.id)
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl LlamaEngine {
    /// Loads the model, allocates the KV cache and starts the engine thread; returns once the
    /// engine is ready to serve.
    pub fn load(config: EngineConfig) -> Result<Arc<LlamaEngine>, EngineError> {
        config.validate()?;
        let n_ctx = config.n_ctx()?;
        let backend = backend()?;
        let model =
            LlamaModel::load_from_file(backend, &config.model, &LlamaModelParams::default())
                .map_err(|source| EngineError::ModelLoad {
                    path: config.model.clone(),
                    source,
                })?;
        let model = Arc::new(model);
        let trained = model.n_ctx_train();
        if trained > 0 && config.ctx > trained {
            return Err(EngineError::Config(format!(
                "--ctx {} is longer than the {trained} tokens {} was trained on",
                config.ctx,
                config.model.display()
            )));
        }
        let formatter = PromptFormatter::new(&model);
        let vocab = model.vocab();
        let eog_tokens: Vec<LlamaToken> = vocab.tokens().filter(|t| vocab.is_eog(*t)).collect();

        let threads = i32::try_from(config.effective_threads()).unwrap_or(i32::MAX);
        let n_batch = MIN_BATCH.max(config.parallel);
        let params = LlamaContextParams::default()
            .with_n_ctx(NonZeroU32::new(n_ctx))
            .with_n_batch(n_batch as u32)
            .with_n_ubatch(n_batch as u32)
            .with_n_seq_max(config.parallel as u32)
            // One shared pool: without it llama.cpp splits n_ctx evenly and pads each share.
            .with_kv_unified(true)
            .with_n_threads(threads)
            .with_n_threads_batch(threads);

        let shared = Arc::new(Shared::default());
        let (requests, receiver) = std_mpsc::channel();
        let (ready_tx, ready_rx) = std_mpsc::channel();
        let thread_model = Arc::clone(&model);
        let thread_shared = Arc::clone(&shared);
        let parallel = config.parallel;
        let ctx_per_seq = config.ctx;
        std::thread::Builder::new()
            .name("drover-engine".to_owned())
            .spawn(move || {
                // Marks the engine dead however the thread ends (return or panic).
                let _dead_on_exit = DeadOnDrop(Arc::clone(&thread_shared));
                let model: &LlamaModel = &thread_model;
                let ctx = match model.new_context(backend, params) {
                    Ok(ctx) => ctx,
                    Err(source) => {
                        let _ = ready_tx.send(Err(EngineError::Context {
                            n_ctx,
                            parallel,
                            ctx: ctx_per_seq,
                            source,
                        }));
                        return;
                    }
                };
                thread_shared.set_health(Health::Ready);
                let _ = ready_tx.send(Ok(()));
                Scheduler {
                    model,
                    ctx,
                    requests: receiver,
                    shared: thread_shared,
                    parallel,
                    n_batch,
                    eog_tokens,
                }
                .run();
            })
            .map_err(|e| EngineError::Thread(format!("cannot spawn the engine thread: {e}")))?;
        ready_rx.recv().map_err(|_| {
            EngineError::Thread("the engine thread exited while loading".to_owned())
        })??;

        let info = ModelInfo {
            id: config.served_name(),
            max_model_len: config.ctx,
            owned_by: "drover".to_owned(),
        };
        tracing::info!(model = %info.id, path = %config.model.display(), parallel, ctx = config.ctx, threads, "embedded engine ready");
        Ok(Arc::new(LlamaEngine {
            model,
            info,
            formatter,
            requests,
            shared,
            n_ctx,
            config,
        }))
    }

    /// The configuration it was loaded with.
    pub fn config(&self) -> &EngineConfig {
        &self.config
    }

    /// Scheduler statistics so far.
    pub fn stats(&self) -> EngineStats {
        self.shared.stats()
    }

    /// The exact text the model sees for `prompt` (chat template applied).
    pub fn render_prompt(&self, prompt: &Prompt) -> Result<String, Refusal> {
        match prompt {
            Prompt::Chat(messages) => self.formatter.render_chat(&self.model, messages),
            Prompt::Text(text) => Ok(text.clone()),
        }
    }

    /// The prompt's tokens, as the engine counts them.
    pub fn count_tokens(&self, prompt: &Prompt) -> Result<u32, Refusal> {
        Ok(self.formatter.tokens(&self.model, prompt)?.len() as u32)
    }
}

impl Engine for LlamaEngine {
    fn model(&self) -> ModelInfo {
        self.info.clone()
    }

    fn health(&self) -> Health {
        self.shared.health()
    }

    /// Validates and tokenises on the caller's thread (llama.cpp tokenisation only reads the
    /// vocabulary), so refusals are immediate 400s; the engine thread only schedules.
    fn submit(&self, request: GenRequest) -> Result<Generation, Refusal> {
        if self.shared.health() != Health::Ready {
            return Err(Refusal::Unavailable(
                "the embedded engine is not running".to_owned(),
            ));
        }
        let tokens = self.formatter.tokens(&self.model, &request.prompt)?;
        let prompt_tokens = u32::try_from(tokens.len()).unwrap_or(u32::MAX);
        let max_tokens =
            completion_budget(prompt_tokens, request.max_tokens, self.info.max_model_len)?;
        let sampling = SamplingParams::from_request(&request)?;
        let grammar = request
            .response_format
            .as_ref()
            .map(grammar_for)
            .transpose()?;
        // Room for every event a generation can send, so the engine thread never blocks on a
        // slow client (see `Sequence::send`).
        let (events_tx, events) = mpsc::channel(max_tokens as usize + 2);
        let admission = Admission {
            id: request.id,
            tokens,
            max_tokens,
            sampling,
            grammar,
            stop: request.stop,
            ignore_eos: request.ignore_eos,
            events: events_tx,
        };
        self.shared.waiting.fetch_add(1, Relaxed);
        if self.requests.send(admission).is_err() {
            self.shared.waiting.fetch_sub(1, Relaxed);
            return Err(Refusal::Unavailable(
                "the embedded engine has stopped".to_owned(),
            ));
        }
        Ok(Generation {
            prompt_tokens,
            events,
        })
    }

    fn gauges(&self) -> EngineGauges {
        self.shared.gauges(self.n_ctx)
    }
}

/// Sets [`Health::Dead`] when the engine thread ends, including by panic.
struct DeadOnDrop(Arc<Shared>);

impl Drop for DeadOnDrop {
    fn drop(&mut self) {
        self.0.set_health(Health::Dead);
        self.0.running.store(0, Relaxed);
    }
}
