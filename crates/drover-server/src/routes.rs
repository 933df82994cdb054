//! The routes and their handlers.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::body::Body;
use axum::extract::{Query, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use http_body_util::LengthLimitError;

use crate::ServerOptions;
use crate::engine::{Engine, Health, ModelInfo};
use crate::error::ApiError;
use crate::generate;
use crate::metrics::{self, Metrics, RequestMeter};
use crate::request::{self, ApiKind};
use crate::response::AnswerHead;

struct AppState {
    engine: Arc<dyn Engine>,
    options: ServerOptions,
    metrics: Arc<Metrics>,
    /// Read once: the served model does not change while the router lives.
    model: ModelInfo,
    /// `created` of `/v1/models`.
    created: u64,
    ids: IdSource,
}

/// Unique response ids without a random-number generator on the hot path: a per-process base
/// mixed with a counter.
struct IdSource {
    base: u64,
    counter: AtomicU64,
}

impl IdSource {
    fn new() -> IdSource {
        // Routers in one process (a simulated fleet) must not share ids either.
        static ROUTERS: AtomicU64 = AtomicU64::new(0);
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(0);
        let router = ROUTERS.fetch_add(1, Ordering::Relaxed);
        let base = splitmix64(nanos ^ (u64::from(std::process::id()) << 32) ^ splitmix64(router));
        IdSource {
            base,
            counter: AtomicU64::new(0),
        }
    }

    fn next(&self, prefix: &str) -> String {
        let n = self.counter.fetch_add(1, Ordering::Relaxed);
        let hi = splitmix64(self.base ^ n);
        let lo = splitmix64(hi ^ 0x9e37_79b9_7f4a_7c15);
        drover_types::request_id(prefix, (u128::from(hi) << 64) | u128::from(lo))
    }
}

/// SplitMix64: a cheap, well-mixed 64-bit hash.
fn splitmix64(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

pub(crate) fn build(engine: Arc<dyn Engine>, options: ServerOptions) -> Router {
    let model = engine.model();
    let metrics = Arc::new(Metrics::new(
        &model.id,
        model.max_model_len,
        options.time_scale,
    ));
    let state = Arc::new(AppState {
        engine,
        options,
        metrics,
        model,
        created: unix_now(),
        ids: IdSource::new(),
    });
    let v1 = Router::new()
        .route("/v1/models", get(models))
        .route("/v1/chat/completions", post(chat))
        .route("/v1/completions", post(completions))
        .route_layer(middleware::from_fn_with_state(state.clone(), auth));
    let mut root = Router::new()
        .route("/health", get(health))
        .route("/version", get(version));
    if state.options.metrics {
        root = root.route("/metrics", get(metrics_text));
    }
    root.merge(v1).fallback(not_found).with_state(state)
}

async fn auth(State(state): State<Arc<AppState>>, request: Request, next: Next) -> Response {
    if let Some(key) = &state.options.api_key {
        let given = request
            .headers()
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok());
        let ok = given
            .and_then(|v| v.strip_prefix("Bearer "))
            .is_some_and(|token| token.trim() == key);
        if !ok {
            return ApiError::unauthorized().into_response();
        }
    }
    next.run(request).await
}

async fn health(State(state): State<Arc<AppState>>) -> StatusCode {
    match state.engine.health() {
        Health::Ready => StatusCode::OK,
        Health::Starting | Health::Dead => StatusCode::SERVICE_UNAVAILABLE,
    }
}

async fn version(State(state): State<Arc<AppState>>) -> Response {
    json_response(serde_json::json!({ "version": state.options.version }).to_string())
}

/// The exposition; `?name[]=…` (repeated) keeps only those samples, as vLLM's exporter does.
async fn metrics_text(
    State(state): State<Arc<AppState>>,
    Query(params): Query<Vec<(String, String)>>,
) -> Response {
    let mut text = state.metrics.render(&state.engine.gauges());
    // prometheus_client's `parse_qs` drops empty values; with no names it answers everything.
    let names: Vec<&str> = params
        .iter()
        .filter(|(k, v)| k == "name[]" && !v.is_empty())
        .map(|(_, v)| v.as_str())
        .collect();
    if !names.is_empty() {
        text = metrics::restrict(&text, &names);
    }
    let mut response = text.into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
    );
    response
}

async fn models(State(state): State<Arc<AppState>>) -> Response {
    let m = &state.model;
    let body = serde_json::json!({
        "object": "list",
        "data": [{
            "id": m.id,
            "object": "model",
            "created": state.created,
            "owned_by": m.owned_by,
            "root": m.id,
            "parent": null,
            "max_model_len": m.max_model_len,
            "permission": [],
        }],
    });
    json_response(body.to_string())
}

/// FastAPI's answer for unknown paths, which is what vLLM sends.
async fn not_found() -> Response {
    (
        StatusCode::NOT_FOUND,
        json_response(r#"{"detail":"Not Found"}"#.to_string()),
    )
        .into_response()
}

fn json_response(body: String) -> Response {
    let mut response = body.into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}

async fn chat(State(state): State<Arc<AppState>>, headers: HeaderMap, body: Body) -> Response {
    generate(state, ApiKind::Chat, headers, body).await
}

async fn completions(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    generate(state, ApiKind::Completion, headers, body).await
}

async fn read_body(
    headers: &HeaderMap,
    body: Body,
    limit: usize,
) -> Result<axum::body::Bytes, ApiError> {
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|len| len > limit as u64) {
        return Err(ApiError::too_large(limit));
    }
    axum::body::to_bytes(body, limit).await.map_err(|err| {
        let over = std::error::Error::source(&err).is_some_and(|s| s.is::<LengthLimitError>());
        if over {
            ApiError::too_large(limit)
        } else {
            ApiError::bad_request(format!("could not read the request body: {err}"))
        }
    })
}

async fn generate(state: Arc<AppState>, kind: ApiKind, headers: HeaderMap, body: Body) -> Response {
    let arrival = Instant::now();
    let bytes = match read_body(&headers, body, state.options.max_body_bytes).await {
        Ok(bytes) => bytes,
        Err(err) => return err.into_response(),
    };
    let id = state.ids.next(kind.id_prefix());
    let parsed = match request::parse(kind, &bytes, id) {
        Ok(parsed) => parsed,
        Err(err) => return err.into_response(),
    };
    if let Some(model) = &parsed.model
        && model != &state.model.id
    {
        return ApiError::model_not_found(model).into_response();
    }
    let head = AnswerHead {
        kind,
        id: parsed.request.id.clone(),
        created: unix_now(),
        model: parsed
            .model
            .clone()
            .unwrap_or_else(|| state.model.id.clone()),
    };
    let mut meter = RequestMeter::start(state.metrics.clone(), arrival);
    let generation = match state.engine.submit(parsed.request) {
        Ok(generation) => generation,
        Err(err) => {
            meter.refused();
            return ApiError::from(err).into_response();
        }
    };
    meter.accepted(generation.prompt_tokens);
    if parsed.stream {
        generate::streaming(
            head,
            generation,
            meter,
            parsed.include_usage,
            parsed.continuous_usage,
        )
    } else {
        generate::full(head, generation, meter).await
    }
}
