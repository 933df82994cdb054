//! Tiny imitations of engines that `drover probe` must recognise without having them: the
//! endpoints Ollama and llama.cpp's llama-server answer, with the shapes they answer in.
#![allow(dead_code)]

use axum::Router;
use axum::http::StatusCode;
use axum::routing::get;
use serde_json::json;

/// Which engine to imitate.
#[derive(Debug, Clone, Copy)]
pub enum Mock {
    /// Ollama 0.6: `/api/version`, `/api/tags`, `/v1/models`; no `/health`, no `/metrics`.
    Ollama,
    /// llama-server without `--metrics`: `/health`, `/props`, `/slots` (one of two busy),
    /// `/v1/models`; `/metrics` answers 501.
    LlamaCpp,
}

/// A running imitation on 127.0.0.1:0; dropping it stops it.
pub struct MockServer {
    pub port: u16,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    _rt: tokio::runtime::Runtime,
}

impl MockServer {
    pub fn start(kind: Mock) -> MockServer {
        let app = match kind {
            Mock::Ollama => Router::new()
                .route("/", get(|| async { "Ollama is running" }))
                .route("/api/version", get(|| async { axum::Json(json!({"version": "0.6.2"})) }))
                .route(
                    "/api/tags",
                    get(|| async {
                        axum::Json(json!({"models": [
                            {"name": "llama3.2:1b", "model": "llama3.2:1b", "size": 1321098329u64, "details": {"family": "llama", "parameter_size": "1.2B"}},
                            {"name": "qwen2.5:0.5b", "model": "qwen2.5:0.5b", "size": 397821319u64, "details": {"family": "qwen2", "parameter_size": "494.03M"}}
                        ]}))
                    }),
                )
                .route(
                    "/v1/models",
                    get(|| async {
                        axum::Json(json!({"object": "list", "data": [
                            {"id": "llama3.2:1b", "object": "model", "created": 1735000000, "owned_by": "library"},
                            {"id": "qwen2.5:0.5b", "object": "model", "created": 1735000000, "owned_by": "library"}
                        ]}))
                    }),
                ),
            Mock::LlamaCpp => Router::new()
                .route("/health", get(|| async { axum::Json(json!({"status": "ok"})) }))
                .route(
                    "/props",
                    get(|| async {
                        axum::Json(json!({
                            "default_generation_settings": {"n_ctx": 8192, "params": {"temperature": 0.8}},
                            "total_slots": 2,
                            "model_path": "/models/qwen2.5-0.5b-instruct-q4_k_m.gguf",
                            "build_info": "b5000-0123abc"
                        }))
                    }),
                )
                .route(
                    "/slots",
                    get(|| async { axum::Json(json!([{"id": 0, "n_ctx": 4096, "is_processing": true}, {"id": 1, "n_ctx": 4096, "is_processing": false}])) }),
                )
                .route(
                    "/v1/models",
                    get(|| async {
                        axum::Json(json!({"object": "list", "data": [
                            {"id": "qwen2.5-0.5b-instruct-q4_k_m.gguf", "object": "model", "created": 1735000000, "owned_by": "llamacpp", "meta": {"n_ctx_train": 32768}}
                        ]}))
                    }),
                )
                .route("/metrics", get(|| async { (StatusCode::NOT_IMPLEMENTED, "This server does not support metrics endpoint.") })),
        };
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let listener = rt
            .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
            .unwrap();
        let port = listener.local_addr().unwrap().port();
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        rt.spawn(async move {
            let _ = axum::serve(listener, app)
                .with_graceful_shutdown(async move {
                    let _ = rx.await;
                })
                .await;
        });
        MockServer {
            port,
            stop: Some(tx),
            _rt: rt,
        }
    }
}

impl Drop for MockServer {
    fn drop(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
    }
}
