//! Embedded llama.cpp engine with continuous batching.
//!
//! [`LlamaEngine`] loads a GGUF model and serves [`drover_server::Engine`]: requests are
//! tokenised with the model's own chat template, then decoded together by one scheduler thread
//! that owns the llama.cpp context (one sequence id per request, new requests joining between
//! steps). `drover serve` puts the shared OpenAI HTTP front on top; [`spawn_local`] does the same
//! in-process for `drover run` when no backend is configured.
//!
//! This is the one crate that links C++ (through the `llama-cpp-2` binding); it needs no `unsafe`
//! of its own.
#![forbid(unsafe_code)]

mod backend;
mod chat;
mod config;
mod engine;
mod error;
mod gauges;
mod grammar;
mod local;
mod prompt;
mod request;
mod sampling;
mod scheduler;
mod text;

pub use config::{
    DEFAULT_CTX, DEFAULT_MODEL_FILE, DEFAULT_PARALLEL, EngineConfig, default_threads,
};
pub use engine::LlamaEngine;
pub use error::EngineError;
pub use gauges::EngineStats;
pub use local::{LocalServer, spawn_local};
