//! OpenAI-compatible HTTP front shared by `drover sim` and `drover serve`.
//!
//! The HTTP surface (routes, request validation, SSE framing, vLLM-shaped errors, request-level
//! Prometheus metrics with vLLM's names) lives here once; an [`Engine`] only turns a validated
//! [`GenRequest`] into a stream of [`GenEvent`]s and reports its own gauges.
//!
//! Routes, as vLLM has them (vllm-facts §5):
//! - `GET /health`: 200 with an empty body when the engine is [`Health::Ready`], 503 otherwise;
//! - `GET /version`: `{"version":…}`; `GET /metrics`: Prometheus text;
//! - `GET /v1/models`, `POST /v1/chat/completions`, `POST /v1/completions` (with `"stream":true`
//!   as SSE). With [`ServerOptions::api_key`] set, `/v1/*` needs `Authorization: Bearer KEY`.
//!
//! Streaming: a chat stream opens with a `{"role":"assistant","content":""}` delta, then one chunk
//! per [`GenEvent::Token`]; the last token's chunk carries `finish_reason` when the engine queues
//! `Done` right behind it (send both without awaiting in between); if `Done` comes later, it gets
//! a chunk of its own with empty content. Then the optional usage chunk and `data: [DONE]`.
#![forbid(unsafe_code)]

mod engine;
mod error;
mod generate;
mod metrics;
mod request;
mod response;
mod routes;

use std::sync::Arc;
use std::time::Duration;

pub use engine::{
    ChatMessage, Engine, EngineError, EngineGauges, FinishReason, GenEvent, GenRequest, Generation,
    Health, ModelInfo, Prompt, ResponseFormat,
};
pub use error::ApiError;

/// How the front behaves; the engine decides everything about generation.
#[derive(Debug, Clone)]
pub struct ServerOptions {
    /// When set, `/v1/*` requires `Authorization: Bearer <api_key>` (401 otherwise);
    /// `/health`, `/metrics` and `/version` stay open, as in vLLM.
    pub api_key: Option<String>,
    /// Largest accepted request body, in bytes (413 above it). Default 8 MiB.
    pub max_body_bytes: usize,
    /// Wall-clock seconds per reported second in the latency histograms of `/metrics`: the
    /// simulator runs `--time-scale 0.01` a hundred times faster than real time and sets this to
    /// 0.01 so that its metrics read in simulated seconds. 1.0 (the default) for real engines.
    pub time_scale: f64,
    /// What `GET /version` reports.
    pub version: String,
    /// After the shutdown signal, how long [`serve`] waits for open requests before returning.
    pub shutdown_grace: Duration,
    /// Serve `GET /metrics`. Off imitates servers without a Prometheus endpoint (transformers
    /// serve, llama-server without `--metrics`), whose load a client sees only in its answers.
    pub metrics: bool,
}

impl Default for ServerOptions {
    fn default() -> ServerOptions {
        ServerOptions {
            api_key: None,
            max_body_bytes: 8 * 1024 * 1024,
            time_scale: 1.0,
            version: concat!("drover-", env!("CARGO_PKG_VERSION")).to_string(),
            shutdown_grace: Duration::from_secs(5),
            metrics: true,
        }
    }
}

/// The OpenAI-compatible routes over `engine`.
pub fn router(engine: Arc<dyn Engine>, options: ServerOptions) -> axum::Router {
    routes::build(engine, options)
}

/// Serves [`router`] on an already-bound listener until `shutdown` completes, then stops accepting,
/// lets open requests finish for at most [`ServerOptions::shutdown_grace`], and returns.
pub async fn serve(
    listener: tokio::net::TcpListener,
    engine: Arc<dyn Engine>,
    options: ServerOptions,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let grace = options.shutdown_grace;
    let (signalled_tx, signalled_rx) = tokio::sync::oneshot::channel::<()>();
    let signal = async move {
        shutdown.await;
        let _ = signalled_tx.send(());
    };
    let server = axum::serve(listener, router(engine, options)).with_graceful_shutdown(signal);
    let deadline = async move {
        if signalled_rx.await.is_err() {
            // The server ended by itself; never fire.
            std::future::pending::<()>().await;
        }
        tokio::time::sleep(grace).await;
    };
    tokio::select! {
        result = server.into_future() => result,
        () = deadline => {
            tracing::warn!("shutdown grace of {grace:?} elapsed with requests still open; stopping anyway");
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests;
