//! An OpenAI-style test server for the analysis tests, real HTTP on 127.0.0.1:0, whose answers
//! a closure decides from the request (so a test can answer garbage first and valid JSON once the
//! conversation holds drover's repair message). It records every request body and, when asked,
//! publishes vLLM metric names (so `--structured auto` treats it as vLLM).
#![allow(dead_code)]

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::{Value, json};

/// What the closure tells the server to do with one request.
pub enum Reply {
    /// Answer with this text as the assistant content (or completion text).
    Text(String),
    /// Answer with this text after a delay.
    Slow(String, Duration),
    /// Refuse with 400 (a task error, not retried).
    BadRequest,
}

type Decide = dyn Fn(&Value) -> Reply + Send + Sync;

struct AppState {
    decide: Arc<Decide>,
    bodies: Arc<Mutex<Vec<Value>>>,
    vllm_metrics: bool,
}

/// A running server; dropping it stops it.
pub struct AnswerServer {
    pub url: String,
    bodies: Arc<Mutex<Vec<Value>>>,
    _rt: tokio::runtime::Runtime,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
}

impl AnswerServer {
    /// Starts a server answering with `decide`; `vllm_metrics` serves vLLM names on /metrics.
    pub fn start(
        vllm_metrics: bool,
        decide: impl Fn(&Value) -> Reply + Send + Sync + 'static,
    ) -> AnswerServer {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let bodies = Arc::new(Mutex::new(Vec::new()));
        let state = Arc::new(AppState {
            decide: Arc::new(decide),
            bodies: bodies.clone(),
            vllm_metrics,
        });
        let app = Router::new()
            .route("/v1/models", get(models))
            .route("/v1/chat/completions", post(chat))
            .route("/v1/completions", post(completions))
            .route("/metrics", get(metrics))
            .route("/health", get(|| async { StatusCode::OK }))
            .with_state(state);
        let listener = rt
            .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
            .unwrap();
        let port = listener.local_addr().unwrap().port();
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        rt.spawn(async move {
            axum::serve(listener, app)
                .with_graceful_shutdown(async move {
                    let _ = rx.await;
                })
                .await
                .unwrap();
        });
        AnswerServer {
            url: format!("http://127.0.0.1:{port}"),
            bodies,
            _rt: rt,
            stop: Some(tx),
        }
    }

    /// Every generation request received, in arrival order.
    pub fn bodies(&self) -> Vec<Value> {
        self.bodies.lock().unwrap().clone()
    }

    /// Requests whose task text (first user message or prompt start) is exactly `text`.
    pub fn requests_for(&self, text: &str) -> Vec<Value> {
        self.bodies()
            .into_iter()
            .filter(|b| task_text(b) == text)
            .collect()
    }
}

impl Drop for AnswerServer {
    fn drop(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
    }
}

/// The task's own text: the first user message (chat) or the prompt's first line (completions),
/// unchanged by repairs, which only append.
pub fn task_text(body: &Value) -> String {
    if let Some(msgs) = body["messages"].as_array() {
        return msgs
            .iter()
            .find(|m| m["role"] == "user")
            .and_then(|m| m["content"].as_str())
            .unwrap_or("")
            .to_string();
    }
    body["prompt"]
        .as_str()
        .unwrap_or("")
        .lines()
        .next()
        .unwrap_or("")
        .to_string()
}

/// How many repair messages (`marker`) the conversation holds.
pub fn repair_rounds(body: &Value, marker: &str) -> usize {
    match body["messages"].as_array() {
        Some(msgs) => msgs
            .iter()
            .filter(|m| {
                m["role"] == "user" && m["content"].as_str().is_some_and(|c| c.contains(marker))
            })
            .count(),
        None => body["prompt"]
            .as_str()
            .unwrap_or("")
            .matches(marker)
            .count(),
    }
}

async fn models() -> Response {
    axum::Json(json!({"object": "list", "data": [{"id": "test-model", "object": "model", "owned_by": "test", "max_model_len": 4096}]}))
        .into_response()
}

async fn metrics(State(s): State<Arc<AppState>>) -> Response {
    if !s.vllm_metrics {
        return StatusCode::NOT_FOUND.into_response();
    }
    "# TYPE vllm:num_requests_running gauge\nvllm:num_requests_running{model_name=\"test-model\"} 0\n\
     vllm:num_requests_waiting{model_name=\"test-model\"} 0\n"
        .into_response()
}

async fn reply(s: &AppState, body: &Value) -> Result<String, Response> {
    s.bodies.lock().unwrap().push(body.clone());
    match (s.decide)(body) {
        Reply::Text(t) => Ok(t),
        Reply::Slow(t, d) => {
            tokio::time::sleep(d).await;
            Ok(t)
        }
        Reply::BadRequest => Err((
            StatusCode::BAD_REQUEST,
            axum::Json(json!({"error": {"message": "refused by the test server", "type": "BadRequestError", "param": null, "code": 400}})),
        )
            .into_response()),
    }
}

fn usage(text: &str) -> Value {
    let c = text.split_whitespace().count().max(1);
    json!({"prompt_tokens": 10, "completion_tokens": c, "total_tokens": 10 + c})
}

async fn chat(State(s): State<Arc<AppState>>, axum::Json(body): axum::Json<Value>) -> Response {
    match reply(&s, &body).await {
        Ok(content) => axum::Json(json!({
            "id": "chatcmpl-test", "object": "chat.completion", "created": 1, "model": body["model"],
            "choices": [{"index": 0, "message": {"role": "assistant", "content": content}, "finish_reason": "stop"}],
            "usage": usage(&content),
        }))
        .into_response(),
        Err(r) => r,
    }
}

async fn completions(
    State(s): State<Arc<AppState>>,
    axum::Json(body): axum::Json<Value>,
) -> Response {
    match reply(&s, &body).await {
        Ok(text) => axum::Json(json!({
            "id": "cmpl-test", "object": "text_completion", "created": 1, "model": body["model"],
            "choices": [{"index": 0, "text": text, "finish_reason": "stop"}],
            "usage": usage(&text),
        }))
        .into_response(),
        Err(r) => r,
    }
}
