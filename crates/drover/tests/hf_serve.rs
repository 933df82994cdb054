//! drover against a server that behaves like `transformers serve --continuous-batching` (the
//! real engine on the lent GPU, see shared/gpu/README.md), as a user meets it, with no special
//! flags: `/v1/models` answers 500, there is no `/metrics`, unknown request fields get 422,
//! streams end without `[DONE]` (the last chunk carries finish_reason and usage), and `model`
//! must be the served path or absent. Mirrors transformers 5.17's `cli/serving` handlers.

mod common;

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use common::{code, drover, read_output, run_for, stderr, write_lines};
use serde_json::{Value, json};

const SERVED: &str = "/tmp/m1b";

/// Keys of OpenAI's CompletionCreateParamsStreaming plus transformers' own: anything else is 422.
const KNOWN: &[&str] = &[
    "messages",
    "model",
    "audio",
    "frequency_penalty",
    "function_call",
    "functions",
    "logit_bias",
    "logprobs",
    "max_completion_tokens",
    "max_tokens",
    "metadata",
    "modalities",
    "n",
    "parallel_tool_calls",
    "prediction",
    "presence_penalty",
    "reasoning_effort",
    "response_format",
    "seed",
    "service_tier",
    "stop",
    "store",
    "stream",
    "stream_options",
    "temperature",
    "tool_choice",
    "tools",
    "top_logprobs",
    "top_p",
    "user",
    "web_search_options",
    "generation_config",
    "chat_template_kwargs",
    "verbosity",
    "prompt_cache_key",
    "safety_identifier",
];

struct Hf {
    in_flight: AtomicUsize,
    max_in_flight: AtomicUsize,
    streamed: AtomicUsize,
}

fn start() -> (tokio::runtime::Runtime, String, Arc<Hf>) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let state = Arc::new(Hf {
        in_flight: AtomicUsize::new(0),
        max_in_flight: AtomicUsize::new(0),
        streamed: AtomicUsize::new(0),
    });
    let app = Router::new()
        .route("/health", get(|| async { StatusCode::OK }))
        .route(
            "/v1/models",
            get(|| async { (StatusCode::INTERNAL_SERVER_ERROR, "Internal Server Error") }),
        )
        .route("/v1/chat/completions", post(chat))
        .with_state(state.clone());
    let listener = rt
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    rt.spawn(async move { axum::serve(listener, app).await.unwrap() });
    (rt, url, state)
}

fn detail(status: StatusCode, msg: String) -> Response {
    (status, axum::Json(json!({"detail": msg}))).into_response()
}

async fn chat(State(s): State<Arc<Hf>>, axum::Json(body): axum::Json<Value>) -> Response {
    let obj = body.as_object().unwrap();
    let unexpected: Vec<&String> = obj
        .keys()
        .filter(|k| !KNOWN.contains(&k.as_str()))
        .collect();
    if !unexpected.is_empty() {
        return detail(
            StatusCode::UNPROCESSABLE_ENTITY,
            format!("Unexpected fields in the request: {unexpected:?}"),
        );
    }
    if let Some(m) = obj.get("model").and_then(Value::as_str) {
        if m != SERVED {
            return detail(
                StatusCode::BAD_REQUEST,
                format!("Server is pinned to '{SERVED}'; requested '{m}'."),
            );
        }
    }
    // Chat ignores max_completion_tokens (defaults to 1024); max_tokens counts.
    let n = obj
        .get("max_tokens")
        .and_then(Value::as_u64)
        .unwrap_or(1024) as usize;
    let now = s.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
    s.max_in_flight.fetch_max(now, Ordering::SeqCst);
    let chunk = |delta: Value, finish: Option<&str>, usage: Option<Value>| {
        let mut c = json!({"id": "req-1", "object": "chat.completion.chunk", "created": 1, "model": SERVED,
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]});
        if let Some(u) = usage {
            c["usage"] = u;
        }
        format!("data: {c}\n\n")
    };
    // Continuous batching: every request in flight gets a token every 10 ms, whatever their number.
    if obj.get("stream").and_then(Value::as_bool) == Some(true) {
        s.streamed.fetch_add(1, Ordering::SeqCst);
        let state = s.clone();
        let stream = async_stream(n, chunk, state);
        return Response::builder()
            .header("content-type", "text/event-stream")
            .body(axum::body::Body::from_stream(stream))
            .unwrap();
    }
    tokio::time::sleep(Duration::from_millis(10 * n as u64)).await;
    s.in_flight.fetch_sub(1, Ordering::SeqCst);
    axum::Json(json!({"id": "req-1", "object": "chat.completion", "created": 1, "model": SERVED,
        "choices": [{"index": 0, "message": {"role": "assistant", "content": "w ".repeat(n)}, "finish_reason": "length"}],
        "usage": {"prompt_tokens": 5, "completion_tokens": n, "total_tokens": n + 5}}))
    .into_response()
}

fn async_stream(
    n: usize,
    chunk: impl Fn(Value, Option<&str>, Option<Value>) -> String + Send + 'static,
    state: Arc<Hf>,
) -> impl futures::Stream<Item = Result<String, std::io::Error>> {
    futures::stream::unfold(0usize, move |i| {
        let out = if i == 0 {
            Some(chunk(
                json!({"role": "assistant", "content": ""}),
                None,
                None,
            ))
        } else if i <= n {
            Some(chunk(json!({"content": "w "}), None, None))
        } else if i == n + 1 {
            state.in_flight.fetch_sub(1, Ordering::SeqCst);
            // The last chunk: finish_reason and usage, and no `data: [DONE]` after it.
            Some(chunk(
                json!({}),
                Some("length"),
                Some(json!({"prompt_tokens": 5, "completion_tokens": n, "total_tokens": n + 5})),
            ))
        } else {
            None
        };
        async move {
            if i > 0 && i <= n {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            out.map(|c| (Ok(c), i + 1))
        }
    })
}

#[test]
fn runs_adaptive_on_client_side_signals_alone() {
    let (_rt, url, state) = start();
    let dir = tempfile::tempdir().unwrap();
    let tasks: Vec<String> = (0..600)
        .map(|i| format!(r#"{{"id":"h{i}","prompt":"tell me {i}","max_tokens":20}}"#))
        .collect();
    let input = write_lines(dir.path(), "t.jsonl", &tasks);
    let summary = dir.path().join("s.json");
    let o = run_for(
        drover()
            .arg("run")
            .arg(&input)
            .args(["-b", &url, "--summary", summary.to_str().unwrap()]),
        Duration::from_secs(90),
    );
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let err = stderr(&o);
    assert!(
        err.contains("not listed by the backends"),
        "no model from /v1/models, so none is named: {err}"
    );
    let out = read_output(&dir.path().join("t.results.jsonl"));
    assert_eq!(out.len(), 600);
    let ids: HashSet<&str> = out
        .iter()
        .map(|l| l["custom_id"].as_str().unwrap())
        .collect();
    assert_eq!(ids.len(), 600);
    let first = &out[0]["response"]["body"];
    assert_eq!(
        first["object"], "chat.completion",
        "streams are reassembled: {first}"
    );
    assert_eq!(
        first["choices"][0]["message"]["content"]
            .as_str()
            .unwrap()
            .len(),
        40
    );
    assert_eq!(first["choices"][0]["finish_reason"], "length");
    assert_eq!(first["usage"]["completion_tokens"], 20);
    assert_eq!(
        state.streamed.load(Ordering::SeqCst),
        600,
        "no /metrics: drover streams to watch the token rate"
    );
    let s: Value = serde_json::from_str(&std::fs::read_to_string(&summary).unwrap()).unwrap();
    let b = &s["backends"][0];
    assert!(
        b["ttft_ms"]["p50"].as_f64().is_some(),
        "streamed answers have a time to first token"
    );
    let limit = b["final_limit"].as_u64().unwrap();
    assert!(
        limit > 16,
        "the limit grew from throughput alone (final {limit})"
    );
    assert!(state.max_in_flight.load(Ordering::SeqCst) > 16);
}

#[test]
fn unknown_fields_and_wrong_model_are_task_errors_with_the_servers_words() {
    let (_rt, url, _state) = start();
    let dir = tempfile::tempdir().unwrap();
    let input = write_lines(
        dir.path(),
        "t.jsonl",
        &[
            r#"{"custom_id":"a","method":"POST","url":"/v1/chat/completions","body":{"messages":[{"role":"user","content":"hi"}],"max_tokens":4,"ignore_eos":true}}"#.into(),
            r#"{"id":"b","prompt":"fine","max_tokens":4}"#.into(),
        ],
    );
    let o = run_for(
        drover().arg("run").arg(&input).args(["-b", &url, "-q"]),
        Duration::from_secs(60),
    );
    assert_eq!(code(&o), 1, "{}", stderr(&o));
    let out = read_output(&dir.path().join("t.results.jsonl"));
    let a = out.iter().find(|l| l["custom_id"] == "a").unwrap();
    assert_eq!(a["error"]["code"], "invalid_request");
    assert!(
        a["error"]["message"]
            .as_str()
            .unwrap()
            .contains("Unexpected fields in the request"),
        "{a}"
    );
    assert_eq!(a["response"]["status_code"], 422);
    assert_eq!(a["drover"]["attempts"], 1, "a 422 is not retried");
    assert!(out.iter().find(|l| l["custom_id"] == "b").unwrap()["error"].is_null());

    // Naming a model the server is not pinned to: the server's own message, per task.
    let o = run_for(
        drover().arg("run").arg(&input).args([
            "-b",
            &url,
            "--model",
            "llama",
            "-o",
            dir.path().join("o2.jsonl").to_str().unwrap(),
            "-q",
        ]),
        Duration::from_secs(60),
    );
    assert_eq!(code(&o), 1);
    let out = read_output(&dir.path().join("o2.jsonl"));
    let b = out.iter().find(|l| l["custom_id"] == "b").unwrap();
    assert!(
        b["error"]["message"]
            .as_str()
            .unwrap()
            .contains("pinned to '/tmp/m1b'"),
        "{b}"
    );
    // The served path works.
    let o = run_for(
        drover().arg("run").arg(&input).args([
            "-b",
            &url,
            "--model",
            SERVED,
            "-o",
            dir.path().join("o3.jsonl").to_str().unwrap(),
            "-q",
        ]),
        Duration::from_secs(60),
    );
    assert_eq!(code(&o), 1, "only the ignore_eos task fails");
}
