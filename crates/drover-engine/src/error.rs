//! Errors of loading and serving the embedded engine.
//!
//! Per-request refusals (context too long, bad sampling parameters) are the HTTP front's
//! [`drover_server::EngineError`]; this enum covers everything that stops the engine itself from
//! starting, and says how to fix it.

use std::path::PathBuf;

/// Why the embedded engine could not start or serve.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    /// No `--model`, no `DROVER_MODEL`, and the default model is not in the cache.
    #[error(
        "no model given and the default model is not at {searched}: run scripts/fetch-model.sh \
         (or scripts/setup.sh) to fetch it, or pass --model PATH.gguf / set DROVER_MODEL"
    )]
    NoDefaultModel {
        /// Where the default model was looked for.
        searched: PathBuf,
    },
    /// The model path does not exist or cannot be read.
    #[error(
        "cannot read model file {path}: {source} (pass --model PATH.gguf, or run scripts/fetch-model.sh for the default model)"
    )]
    ModelUnreadable {
        /// The model path.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The file exists but does not start with the GGUF magic.
    #[error(
        "{path} is not a GGUF model file (it does not start with the bytes \"GGUF\"); drover serve needs a llama.cpp GGUF model, e.g. from scripts/fetch-model.sh"
    )]
    NotGguf {
        /// The model path.
        path: PathBuf,
    },
    /// A configuration value is out of range.
    #[error("invalid engine configuration: {0}")]
    Config(String),
    /// llama.cpp's backend failed to initialise.
    #[error("llama.cpp backend initialisation failed: {0}")]
    Backend(#[source] llama_cpp_2::LlamaCppError),
    /// llama.cpp refused the model file.
    #[error(
        "llama.cpp could not load {path}: {source} (is it a complete GGUF file of an architecture this llama.cpp supports?)"
    )]
    ModelLoad {
        /// The model path.
        path: PathBuf,
        /// llama.cpp's error.
        #[source]
        source: llama_cpp_2::LlamaModelLoadError,
    },
    /// llama.cpp could not allocate the context (usually memory for the KV cache).
    #[error(
        "llama.cpp could not create a context of {n_ctx} tokens ({parallel} sequences x {ctx}): {source} (lower --parallel or --ctx)"
    )]
    Context {
        /// Total KV cells asked for.
        n_ctx: u32,
        /// Sequences.
        parallel: usize,
        /// Tokens per sequence.
        ctx: u32,
        /// llama.cpp's error.
        #[source]
        source: llama_cpp_2::LlamaContextLoadError,
    },
    /// The engine thread could not be started, or died while loading.
    #[error("the engine thread failed: {0}")]
    Thread(String),
    /// Binding or serving HTTP failed.
    #[error("{context}: {source}")]
    Io {
        /// What was being done.
        context: String,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
}
