//! OpenAI-compatible HTTP front shared by `drover sim` and `drover serve`.
//!
//! The HTTP surface (routes, request validation, SSE framing, vLLM-shaped errors, request-level
//! Prometheus metrics with vLLM's names) lives here once; an [`Engine`] only turns a validated
//! [`GenRequest`] into a stream of [`GenEvent`]s and reports its own gauges.
#![forbid(unsafe_code)]

mod engine;

pub use engine::{
    ChatMessage, Engine, EngineError, EngineGauges, FinishReason, GenEvent, GenRequest, Generation, Health,
    ModelInfo, Prompt, ResponseFormat,
};
