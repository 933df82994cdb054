//! An OpenAI-style test server, real HTTP on 127.0.0.1:0, that records what it saw: requests,
//! bodies, headers, and the highest number of requests in flight (shared across a fleet).
//!
//! Behaviour is chosen per request by words in the last user message or prompt:
//! `REJECT` → 400 with a vLLM-shaped error; `FAIL_ONCE` → 500 the first time for that text;
//! `SLOW` → an extra 300 ms.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::{Value, json};

/// What a server (or a fleet sharing it) recorded.
#[derive(Default)]
pub struct Record {
    pub in_flight: AtomicUsize,
    pub max_in_flight: AtomicUsize,
    pub requests: AtomicUsize,
    pub bodies: Mutex<Vec<Value>>,
    pub auth: Mutex<Vec<Option<String>>>,
    failed_once: Mutex<HashSet<String>>,
}

impl Record {
    pub fn max(&self) -> usize {
        self.max_in_flight.load(Ordering::SeqCst)
    }
    pub fn requests(&self) -> usize {
        self.requests.load(Ordering::SeqCst)
    }
    pub fn bodies(&self) -> Vec<Value> {
        self.bodies.lock().unwrap().clone()
    }
}

/// How one server behaves.
#[derive(Clone)]
pub struct Behavior {
    /// Served model; `None` makes /v1/models answer 500 (like transformers serve).
    pub model: Option<String>,
    /// Time each generation takes.
    pub delay: Duration,
    /// Serve under this prefix instead of /v1 (to test wrong paths).
    pub prefix: String,
    /// Require this bearer token on /v1 routes.
    pub api_key: Option<String>,
}

impl Default for Behavior {
    fn default() -> Self {
        Behavior {
            model: Some("test-model".into()),
            delay: Duration::from_millis(20),
            prefix: "/v1".into(),
            api_key: None,
        }
    }
}

struct AppState {
    behavior: Behavior,
    record: Arc<Record>,
    /// Requests this server alone received.
    own: Arc<AtomicUsize>,
}

/// A running server. Dropping it stops it.
pub struct TestServer {
    pub url: String,
    pub port: u16,
    pub own_requests: Arc<AtomicUsize>,
    _rt: Arc<tokio::runtime::Runtime>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
}

impl TestServer {
    /// Starts a server recording into `record` (shared to measure a whole fleet).
    pub fn start(behavior: Behavior, record: Arc<Record>) -> TestServer {
        let rt = Arc::new(
            tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .unwrap(),
        );
        let own = Arc::new(AtomicUsize::new(0));
        let state = Arc::new(AppState {
            behavior: behavior.clone(),
            record,
            own: own.clone(),
        });
        let p = behavior.prefix.clone();
        let app = Router::new()
            .route(&format!("{p}/models"), get(models))
            .route(&format!("{p}/chat/completions"), post(chat))
            .route(&format!("{p}/completions"), post(completions))
            .route(&format!("{p}/embeddings"), post(embeddings))
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
        TestServer {
            url: format!("http://127.0.0.1:{port}"),
            port,
            own_requests: own,
            _rt: rt,
            stop: Some(tx),
        }
    }

    /// Requests this server received.
    pub fn own(&self) -> usize {
        self.own_requests.load(Ordering::SeqCst)
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
    }
}

/// Starts `n` servers sharing one record.
pub fn fleet(n: usize, behavior: Behavior) -> (Vec<TestServer>, Arc<Record>) {
    let record = Arc::new(Record::default());
    let servers = (0..n)
        .map(|_| TestServer::start(behavior.clone(), record.clone()))
        .collect();
    (servers, record)
}

fn unauthorized(state: &AppState, headers: &HeaderMap) -> Option<Response> {
    let want = state.behavior.api_key.as_ref()?;
    let got = headers.get("authorization").and_then(|v| v.to_str().ok());
    if got == Some(&format!("Bearer {want}")) {
        return None;
    }
    Some((StatusCode::UNAUTHORIZED, axum::Json(json!({"error": {"message": "bad key", "type": "AuthenticationError", "param": null, "code": 401}}))).into_response())
}

async fn models(State(s): State<Arc<AppState>>, headers: HeaderMap) -> Response {
    if let Some(r) = unauthorized(&s, &headers) {
        return r;
    }
    match &s.behavior.model {
        Some(m) => axum::Json(json!({"object": "list", "data": [{"id": m, "object": "model", "owned_by": "test", "max_model_len": 4096}]})).into_response(),
        None => (StatusCode::INTERNAL_SERVER_ERROR, "models unavailable").into_response(),
    }
}

/// Tracks in-flight counts for the duration of a request.
struct Flight(Arc<Record>);

impl Flight {
    fn new(r: &Arc<Record>) -> Flight {
        let now = r.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
        r.max_in_flight.fetch_max(now, Ordering::SeqCst);
        r.requests.fetch_add(1, Ordering::SeqCst);
        Flight(r.clone())
    }
}

impl Drop for Flight {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::SeqCst);
    }
}

async fn behave(
    s: &AppState,
    headers: &HeaderMap,
    body: &Value,
    text: &str,
) -> Result<(), Response> {
    s.own.fetch_add(1, Ordering::SeqCst);
    s.record.bodies.lock().unwrap().push(body.clone());
    s.record.auth.lock().unwrap().push(
        headers
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string),
    );
    if let Some(r) = unauthorized(s, headers) {
        return Err(r);
    }
    let mut delay = s.behavior.delay;
    if text.contains("SLOW") {
        delay += Duration::from_millis(300);
    }
    tokio::time::sleep(delay).await;
    if text.contains("REJECT") {
        return Err((
            StatusCode::BAD_REQUEST,
            axum::Json(json!({"error": {"message": "This model's maximum context length is 4096 tokens. However, your request has 9999 input tokens. Please reduce the length of the input messages.", "type": "BadRequestError", "param": null, "code": 400}})),
        )
            .into_response());
    }
    if text.contains("FAIL_ONCE")
        && s.record
            .failed_once
            .lock()
            .unwrap()
            .insert(text.to_string())
    {
        return Err((StatusCode::INTERNAL_SERVER_ERROR, "boom").into_response());
    }
    Ok(())
}

fn usage(prompt: &str, out: &str) -> Value {
    let p = (prompt.len() / 4).max(1);
    let c = out.split_whitespace().count().max(1);
    json!({"prompt_tokens": p, "completion_tokens": c, "total_tokens": p + c})
}

async fn chat(
    State(s): State<Arc<AppState>>,
    headers: HeaderMap,
    axum::Json(body): axum::Json<Value>,
) -> Response {
    let _f = Flight::new(&s.record);
    let last = body["messages"]
        .as_array()
        .and_then(|m| m.last())
        .and_then(|m| m["content"].as_str())
        .unwrap_or("")
        .to_string();
    if let Err(r) = behave(&s, &headers, &body, &last).await {
        return r;
    }
    let content = format!("echo: {last}");
    axum::Json(json!({
        "id": "chatcmpl-test", "object": "chat.completion", "created": 1, "model": body["model"],
        "choices": [{"index": 0, "message": {"role": "assistant", "content": content}, "finish_reason": "stop"}],
        "usage": usage(&last, &content),
    }))
    .into_response()
}

async fn completions(
    State(s): State<Arc<AppState>>,
    headers: HeaderMap,
    axum::Json(body): axum::Json<Value>,
) -> Response {
    let _f = Flight::new(&s.record);
    let prompt = body["prompt"].as_str().unwrap_or("").to_string();
    if let Err(r) = behave(&s, &headers, &body, &prompt).await {
        return r;
    }
    let text = format!("echo: {prompt}");
    axum::Json(json!({
        "id": "cmpl-test", "object": "text_completion", "created": 1, "model": body["model"],
        "choices": [{"index": 0, "text": text, "finish_reason": "stop"}],
        "usage": usage(&prompt, &text),
    }))
    .into_response()
}

async fn embeddings(
    State(s): State<Arc<AppState>>,
    headers: HeaderMap,
    axum::Json(body): axum::Json<Value>,
) -> Response {
    let _f = Flight::new(&s.record);
    if let Err(r) = behave(&s, &headers, &body, "").await {
        return r;
    }
    axum::Json(json!({"object": "list", "data": [{"object": "embedding", "index": 0, "embedding": [0.1, 0.2]}], "model": body["model"], "usage": {"prompt_tokens": 2, "total_tokens": 2}}))
        .into_response()
}

/// Bodies received, by the task text they carried (for checking what was sent).
pub fn bodies_by_text(record: &Record) -> HashMap<String, Value> {
    record
        .bodies()
        .into_iter()
        .filter_map(|b| {
            let text = b["messages"]
                .as_array()
                .and_then(|m| m.last())
                .and_then(|m| m["content"].as_str())
                .or_else(|| b["prompt"].as_str())?
                .to_string();
            Some((text, b))
        })
        .collect()
}
