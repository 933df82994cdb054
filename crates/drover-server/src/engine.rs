//! The contract between the HTTP front and an inference engine.

use tokio::sync::mpsc;

/// What `/v1/models` reports.
#[derive(Debug, Clone)]
pub struct ModelInfo {
    /// Served model name (`id`).
    pub id: String,
    /// Longest prompt + completion the engine accepts, in tokens.
    pub max_model_len: u32,
    /// `owned_by`, e.g. "vllm" (the simulator imitates vLLM) or "drover".
    pub owned_by: String,
}

/// Engine state as `/health` reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Health {
    /// Serving: `/health` answers 200.
    Ready,
    /// Loading or warming up: 503.
    Starting,
    /// Failed or killed: 503.
    Dead,
}

/// One chat message (text content only; content parts are flattened to text by the front).
#[derive(Debug, Clone, PartialEq)]
pub struct ChatMessage {
    /// "system", "user", "assistant" or "tool".
    pub role: String,
    /// Text content.
    pub content: String,
}

/// The request's input.
#[derive(Debug, Clone, PartialEq)]
pub enum Prompt {
    /// `/v1/chat/completions`: the engine applies its chat template.
    Chat(Vec<ChatMessage>),
    /// `/v1/completions`: raw text.
    Text(String),
}

/// Structured-output constraint from `response_format`.
#[derive(Debug, Clone, PartialEq)]
pub enum ResponseFormat {
    /// `{"type":"json_object"}`: any JSON object.
    JsonObject,
    /// `{"type":"json_schema","json_schema":{"schema":…}}`: an object valid against the schema.
    JsonSchema(serde_json::Value),
}

/// A validated generation request.
#[derive(Debug, Clone)]
pub struct GenRequest {
    /// Request id the front assigned (`chatcmpl-…` / `cmpl-…`).
    pub id: String,
    /// Chat messages or raw text.
    pub prompt: Prompt,
    /// Most tokens to generate; `None` = up to the context limit.
    pub max_tokens: Option<u32>,
    /// Sampling temperature (0 = greedy).
    pub temperature: Option<f32>,
    /// Nucleus sampling.
    pub top_p: Option<f32>,
    /// Sampling seed.
    pub seed: Option<u64>,
    /// Stop strings.
    pub stop: Vec<String>,
    /// Structured output.
    pub response_format: Option<ResponseFormat>,
    /// Generate exactly `max_tokens` (vLLM's `ignore_eos`).
    pub ignore_eos: bool,
    /// The whole JSON body, for engine-specific fields.
    pub raw: serde_json::Value,
}

/// Why generation ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FinishReason {
    /// EOS or a stop string.
    Stop,
    /// `max_tokens` or the context limit.
    Length,
}

impl FinishReason {
    /// As OpenAI spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            FinishReason::Stop => "stop",
            FinishReason::Length => "length",
        }
    }
}

/// Progress of one generation, in order: any number of `Token`s, then exactly one `Done` or `Error`.
///
/// Send the last `Token` and `Done` back to back (no `.await` in between): the front then puts
/// `finish_reason` on the last token's SSE chunk, as vLLM does, instead of an extra empty chunk.
#[derive(Debug, Clone, PartialEq)]
pub enum GenEvent {
    /// The first token is the end of prefill (time to first token).
    Token {
        /// Decoded text of this token (may be empty while a UTF-8 sequence is incomplete).
        text: String,
    },
    /// Generation finished.
    Done {
        /// Why.
        finish_reason: FinishReason,
        /// Tokens generated.
        completion_tokens: u32,
        /// Prompt tokens served from the prefix cache.
        cached_tokens: u32,
    },
    /// The engine failed this request (becomes a 500, or an SSE error event).
    Error(String),
}

/// A request the engine accepted. Dropping `events` aborts the generation (client went away).
#[derive(Debug)]
pub struct Generation {
    /// Prompt length in tokens, as the engine counted it.
    pub prompt_tokens: u32,
    /// The generation's events.
    pub events: mpsc::Receiver<GenEvent>,
}

/// Why the engine refused a request; the front maps these to vLLM-shaped errors.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    /// Prompt (+ max_tokens) over the context: 400 with vLLM's context-length message.
    #[error(
        "This model's maximum context length is {max_model_len} tokens. However, your request has {prompt_tokens} input tokens. Please reduce the length of the input messages."
    )]
    ContextLength {
        /// The limit.
        max_model_len: u32,
        /// The prompt's tokens.
        prompt_tokens: u32,
    },
    /// `max_tokens` too large for the prompt: 400.
    #[error(
        "'max_tokens' or 'max_completion_tokens' is too large: {max_tokens}. This model's maximum context length is {max_model_len} tokens and your request has {prompt_tokens} input tokens ({max_tokens} > {max_model_len} - {prompt_tokens})."
    )]
    MaxTokens {
        /// Requested.
        max_tokens: u32,
        /// The limit.
        max_model_len: u32,
        /// The prompt's tokens.
        prompt_tokens: u32,
    },
    /// Anything else the request asks that the engine cannot do: 400.
    #[error("{0}")]
    BadRequest(String),
    /// The engine is not serving (starting, dead, or its queue is full): 503.
    #[error("{0}")]
    Unavailable(String),
}

/// Engine-side gauges for `/metrics` (the front adds request-level counters and histograms).
#[derive(Debug, Clone, Default)]
pub struct EngineGauges {
    /// Requests in the running batch.
    pub running: u64,
    /// Requests waiting to be scheduled.
    pub waiting: u64,
    /// Fraction of KV-cache blocks in use, 0..=1.
    pub kv_cache_usage: f64,
    /// Preemptions so far.
    pub preemptions_total: u64,
    /// Prefix-cache lookups (tokens) so far.
    pub prefix_cache_queries_total: u64,
    /// Prefix-cache hits (tokens) so far.
    pub prefix_cache_hits_total: u64,
    /// KV block size in tokens (for `vllm:cache_config_info`).
    pub block_size: u32,
    /// KV blocks in total (for `vllm:cache_config_info`).
    pub num_gpu_blocks: u64,
}

/// An inference engine behind the OpenAI front.
pub trait Engine: Send + Sync + 'static {
    /// The served model.
    fn model(&self) -> ModelInfo;
    /// Current health.
    fn health(&self) -> Health;
    /// Validates and enqueues a request. Must not block: engines run on their own thread/task.
    fn submit(&self, request: GenRequest) -> Result<Generation, EngineError>;
    /// Current gauges.
    fn gauges(&self) -> EngineGauges;
}
