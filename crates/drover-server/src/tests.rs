//! Tests of the front against a small fake engine.

use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};

use axum::body::Body;
use axum::http::{Request, StatusCode};
use http_body_util::BodyExt;
use serde_json::{Value, json};
use tokio::sync::mpsc;
use tower::ServiceExt;

use super::*;

/// What the fake engine does with the next request.
#[derive(Clone)]
enum Script {
    /// Sends these tokens then `Done`, all at once.
    Reply(Vec<&'static str>, FinishReason),
    /// Sends these tokens, then an error.
    FailAfter(Vec<&'static str>),
    /// Keeps the request open and sends nothing.
    Hold,
    /// Refuses at submit.
    Refuse(fn() -> EngineError),
}

struct FakeEngine {
    healthy: AtomicBool,
    script: Mutex<Script>,
    /// Senders of held requests, to observe whether the client went away.
    held: Mutex<Vec<mpsc::Sender<GenEvent>>>,
    last_request: Mutex<Option<GenRequest>>,
}

impl FakeEngine {
    fn new(script: Script) -> Arc<FakeEngine> {
        Arc::new(FakeEngine {
            healthy: AtomicBool::new(true),
            script: Mutex::new(script),
            held: Mutex::new(Vec::new()),
            last_request: Mutex::new(None),
        })
    }
}

impl Engine for FakeEngine {
    fn model(&self) -> ModelInfo {
        ModelInfo {
            id: "fake-model".into(),
            max_model_len: 100,
            owned_by: "drover".into(),
        }
    }

    fn health(&self) -> Health {
        if self.healthy.load(Ordering::SeqCst) {
            Health::Ready
        } else {
            Health::Starting
        }
    }

    fn submit(&self, request: GenRequest) -> Result<Generation, EngineError> {
        *self.last_request.lock().unwrap() = Some(request);
        let (tx, rx) = mpsc::channel(64);
        match self.script.lock().unwrap().clone() {
            Script::Reply(tokens, finish_reason) => {
                for t in &tokens {
                    tx.try_send(GenEvent::Token {
                        text: t.to_string(),
                    })
                    .unwrap();
                }
                let done = GenEvent::Done {
                    finish_reason,
                    completion_tokens: tokens.len() as u32,
                    cached_tokens: 2,
                };
                tx.try_send(done).unwrap();
            }
            Script::FailAfter(tokens) => {
                for t in &tokens {
                    tx.try_send(GenEvent::Token {
                        text: t.to_string(),
                    })
                    .unwrap();
                }
                tx.try_send(GenEvent::Error("boom".into())).unwrap();
            }
            Script::Hold => self.held.lock().unwrap().push(tx),
            Script::Refuse(make) => return Err(make()),
        }
        Ok(Generation {
            prompt_tokens: 7,
            events: rx,
        })
    }

    fn gauges(&self) -> EngineGauges {
        EngineGauges {
            running: 3,
            waiting: 4,
            kv_cache_usage: 0.5,
            block_size: 16,
            num_gpu_blocks: 99,
            ..Default::default()
        }
    }
}

fn reply(tokens: Vec<&'static str>) -> Arc<FakeEngine> {
    FakeEngine::new(Script::Reply(tokens, FinishReason::Length))
}

async fn call(
    app: &axum::Router,
    request: Request<Body>,
) -> (StatusCode, axum::http::HeaderMap, String) {
    let response = app.clone().oneshot(request).await.unwrap();
    let status = response.status();
    let headers = response.headers().clone();
    let body = response.into_body().collect().await.unwrap().to_bytes();
    (status, headers, String::from_utf8(body.to_vec()).unwrap())
}

fn post(path: &str, body: Value) -> Request<Body> {
    Request::post(path)
        .header("content-type", "application/json")
        .body(Body::from(body.to_string()))
        .unwrap()
}

fn get(path: &str) -> Request<Body> {
    Request::get(path).body(Body::empty()).unwrap()
}

fn chat_body() -> Value {
    json!({"model":"fake-model","messages":[{"role":"user","content":"hello"}],"max_tokens":3})
}

/// The `data:` payloads of an SSE body.
fn sse_events(body: &str) -> Vec<String> {
    assert!(
        body.ends_with("data: [DONE]\n\n"),
        "stream must end with [DONE]: {body:?}"
    );
    body.split("\n\n")
        .filter(|s| !s.is_empty())
        .map(|s| s.strip_prefix("data: ").expect("data: prefix").to_string())
        .collect()
}

#[tokio::test]
async fn chat_non_streaming() {
    let engine = reply(vec!["a", "b", "c"]);
    let app = router(engine.clone(), ServerOptions::default());
    let (status, headers, body) = call(&app, post("/v1/chat/completions", chat_body())).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(headers["content-type"], "application/json");
    let v: Value = serde_json::from_str(&body).unwrap();
    assert!(v["id"].as_str().unwrap().starts_with("chatcmpl-"));
    assert_eq!(v["object"], "chat.completion");
    assert_eq!(v["model"], "fake-model");
    assert_eq!(v["choices"][0]["message"]["content"], "abc");
    assert_eq!(v["choices"][0]["finish_reason"], "length");
    assert_eq!(
        v["usage"],
        json!({"prompt_tokens":7,"completion_tokens":3,"total_tokens":10,"prompt_tokens_details":{"cached_tokens":2}})
    );
    let seen = engine.last_request.lock().unwrap().clone().unwrap();
    assert_eq!(seen.max_tokens, Some(3));
    assert_eq!(
        seen.prompt,
        Prompt::Chat(vec![ChatMessage {
            role: "user".into(),
            content: "hello".into()
        }])
    );
}

#[tokio::test]
async fn completion_without_model_field() {
    let app = router(reply(vec!["x", "y"]), ServerOptions::default());
    let (status, _, body) = call(&app, post("/v1/completions", json!({"prompt":"p"}))).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let v: Value = serde_json::from_str(&body).unwrap();
    assert!(v["id"].as_str().unwrap().starts_with("cmpl-"));
    assert_eq!(v["object"], "text_completion");
    assert_eq!(v["choices"][0]["text"], "xy");
    assert_eq!(v["model"], "fake-model");
}

#[tokio::test]
async fn chat_streaming_with_usage() {
    let app = router(reply(vec!["a", "b"]), ServerOptions::default());
    let mut body = chat_body();
    body["stream"] = json!(true);
    body["stream_options"] = json!({"include_usage": true});
    let (status, headers, text) = call(&app, post("/v1/chat/completions", body)).await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        headers["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/event-stream")
    );
    let events = sse_events(&text);
    assert_eq!(
        events.len(),
        5,
        "role, a, b(+finish), usage, [DONE]: {events:?}"
    );
    let chunks: Vec<Value> = events[..4]
        .iter()
        .map(|e| serde_json::from_str(e).unwrap())
        .collect();
    assert_eq!(
        chunks[0]["choices"][0]["delta"],
        json!({"role":"assistant","content":""})
    );
    assert_eq!(chunks[1]["choices"][0]["delta"]["content"], "a");
    assert!(chunks[1]["choices"][0]["finish_reason"].is_null());
    assert_eq!(chunks[2]["choices"][0]["delta"]["content"], "b");
    assert_eq!(chunks[2]["choices"][0]["finish_reason"], "length");
    assert_eq!(chunks[3]["choices"], json!([]));
    assert_eq!(chunks[3]["usage"]["completion_tokens"], 2);
    assert_eq!(chunks[3]["usage"]["total_tokens"], 9);
    let ids: Vec<&Value> = chunks.iter().map(|c| &c["id"]).collect();
    assert!(ids.iter().all(|id| *id == ids[0]), "one id per stream");
    assert_eq!(events[4], "[DONE]");
}

#[tokio::test]
async fn completion_streaming_without_usage() {
    let app = router(reply(vec!["a"]), ServerOptions::default());
    let (_, _, text) = call(
        &app,
        post("/v1/completions", json!({"prompt":"p","stream":true})),
    )
    .await;
    let events = sse_events(&text);
    assert_eq!(events.len(), 2, "{events:?}");
    let chunk: Value = serde_json::from_str(&events[0]).unwrap();
    assert_eq!(chunk["object"], "text_completion");
    assert_eq!(chunk["choices"][0]["text"], "a");
    assert_eq!(chunk["choices"][0]["finish_reason"], "length");
    assert!(chunk.get("usage").is_none());
}

#[tokio::test]
async fn stream_error_midway_is_an_error_event() {
    let app = router(
        FakeEngine::new(Script::FailAfter(vec!["a"])),
        ServerOptions::default(),
    );
    let mut body = chat_body();
    body["stream"] = json!(true);
    let (_, _, text) = call(&app, post("/v1/chat/completions", body)).await;
    let events = sse_events(&text);
    let error: Value = serde_json::from_str(&events[events.len() - 2]).unwrap();
    assert_eq!(error["error"]["code"], 500);
    assert_eq!(error["error"]["message"], "boom");
    // Non-streaming: the same failure is a 500.
    let (status, _, body) = call(&app, post("/v1/chat/completions", chat_body())).await;
    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
    assert!(body.contains("\"InternalServerError\""));
}

#[tokio::test]
async fn errors_have_vllm_shape() {
    let app = router(
        reply(vec!["a"]),
        ServerOptions {
            max_body_bytes: 200,
            ..Default::default()
        },
    );
    let cases = [
        (
            post(
                "/v1/chat/completions",
                json!({"model":"other","messages":[{"role":"user","content":"x"}]}),
            ),
            404,
            "NotFoundError",
        ),
        (
            Request::post("/v1/chat/completions")
                .body(Body::from("{nope"))
                .unwrap(),
            400,
            "BadRequestError",
        ),
        (
            post(
                "/v1/chat/completions",
                json!({"messages":[{"role":"user","content":"x"}],"n":3}),
            ),
            400,
            "BadRequestError",
        ),
        (
            post("/v1/completions", json!({"prompt":"x".repeat(300)})),
            413,
            "PayloadTooLargeError",
        ),
    ];
    for (request, code, kind) in cases {
        let (status, _, body) = call(&app, request).await;
        let v: Value = serde_json::from_str(&body).unwrap();
        assert_eq!(status.as_u16(), code, "{body}");
        assert_eq!(v["error"]["code"], code);
        assert_eq!(v["error"]["type"], kind);
    }
    let (_, _, body) = call(
        &app,
        post(
            "/v1/chat/completions",
            json!({"model":"other","messages":[{"role":"user","content":"x"}]}),
        ),
    )
    .await;
    assert!(body.contains("The model `other` does not exist."));
}

#[tokio::test]
async fn engine_refusals_map_to_statuses() {
    let context = || EngineError::ContextLength {
        max_model_len: 100,
        prompt_tokens: 130,
    };
    let (status, _, body) = call(
        &router(
            FakeEngine::new(Script::Refuse(context)),
            ServerOptions::default(),
        ),
        post("/v1/chat/completions", chat_body()),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let v: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(
        v["error"]["message"],
        "This model's maximum context length is 100 tokens. However, your request has 130 input tokens. Please reduce the length of the input messages."
    );
    let busy = || EngineError::Unavailable("starting up".into());
    let (status, _, _) = call(
        &router(
            FakeEngine::new(Script::Refuse(busy)),
            ServerOptions::default(),
        ),
        post("/v1/completions", json!({"prompt":"x"})),
    )
    .await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
}

#[tokio::test]
async fn api_key_guards_v1_only() {
    let app = router(
        reply(vec!["a"]),
        ServerOptions {
            api_key: Some("k".into()),
            ..Default::default()
        },
    );
    let (status, _, body) = call(&app, post("/v1/chat/completions", chat_body())).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(
        serde_json::from_str::<Value>(&body).unwrap()["error"]["code"],
        401
    );
    let (status, _, _) = call(
        &app,
        Request::get("/v1/models")
            .header("authorization", "Bearer wrong")
            .body(Body::empty())
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (status, _, _) = call(
        &app,
        Request::get("/v1/models")
            .header("authorization", "Bearer k")
            .body(Body::empty())
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    for open in ["/health", "/metrics", "/version"] {
        assert_eq!(call(&app, get(open)).await.0, StatusCode::OK, "{open}");
    }
}

#[tokio::test]
async fn health_models_version() {
    let engine = reply(vec!["a"]);
    let app = router(engine.clone(), ServerOptions::default());
    let (status, _, body) = call(&app, get("/health")).await;
    assert_eq!((status, body.as_str()), (StatusCode::OK, ""));
    engine.healthy.store(false, Ordering::SeqCst);
    assert_eq!(
        call(&app, get("/health")).await.0,
        StatusCode::SERVICE_UNAVAILABLE
    );
    let (_, _, body) = call(&app, get("/v1/models")).await;
    let v: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["object"], "list");
    let m = &v["data"][0];
    assert_eq!(
        (
            m["id"].as_str(),
            m["object"].as_str(),
            m["owned_by"].as_str()
        ),
        (Some("fake-model"), Some("model"), Some("drover"))
    );
    assert_eq!(m["max_model_len"], 100);
    assert!(m["parent"].is_null() && m["created"].is_u64() && m["root"].is_string());
    let (_, _, body) = call(&app, get("/version")).await;
    assert!(serde_json::from_str::<Value>(&body).unwrap()["version"].is_string());
    assert_eq!(call(&app, get("/nope")).await.0, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn metrics_count_requests() {
    let app = router(reply(vec!["a", "b", "c"]), ServerOptions::default());
    call(&app, post("/v1/chat/completions", chat_body())).await;
    let mut stream = chat_body();
    stream["stream"] = json!(true);
    call(&app, post("/v1/chat/completions", stream)).await;
    let (status, headers, text) = call(&app, get("/metrics")).await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        headers["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/plain")
    );
    let labels = r#"{engine="0",model_name="fake-model"}"#;
    for line in [
        format!("vllm:num_requests_running{labels} 3.0"),
        format!("vllm:num_requests_waiting{labels} 4.0"),
        format!("vllm:kv_cache_usage_perc{labels} 0.5"),
        format!("vllm:gpu_cache_usage_perc{labels} 0.5"),
        format!("vllm:prompt_tokens_total{labels} 14.0"),
        format!("vllm:generation_tokens_total{labels} 6.0"),
        r#"vllm:request_success_total{engine="0",model_name="fake-model",finished_reason="length"} 2.0"#.to_string(),
        format!("vllm:time_to_first_token_seconds_count{labels} 2.0"),
        format!("vllm:inter_token_latency_seconds_count{labels} 4.0"),
        format!("vllm:e2e_request_latency_seconds_count{labels} 2.0"),
        format!("vllm:request_generation_tokens_sum{labels} 6.0"),
        r#"vllm:cache_config_info{block_size="16",enable_prefix_caching="True",engine="0",model_name="fake-model",num_gpu_blocks="99"} 1.0"#.to_string(),
    ] {
        assert!(text.lines().any(|l| l == line), "missing {line:?} in\n{text}");
    }
}

#[tokio::test]
async fn metrics_name_filter_keeps_only_the_named_samples() {
    let app = router(reply(vec!["a"]), ServerOptions::default());
    let (_, _, full) = call(&app, get("/metrics")).await;
    // As prometheus_client answers it: `name[]` percent-encoded or not, repeated; a
    // histogram's samples are named one by one; unknown names add nothing.
    let (status, _, text) = call(
        &app,
        get("/metrics?name%5B%5D=vllm:num_requests_running&name[]=vllm:e2e_request_latency_seconds_count&name[]=nope"),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let labels = r#"{engine="0",model_name="fake-model"}"#;
    assert_eq!(
        text.lines().collect::<Vec<_>>(),
        [
            "# HELP vllm:num_requests_running Number of requests in model execution batches.",
            "# TYPE vllm:num_requests_running gauge",
            &format!("vllm:num_requests_running{labels} 3.0"),
            "# HELP vllm:e2e_request_latency_seconds Histogram of e2e request latency in seconds.",
            "# TYPE vllm:e2e_request_latency_seconds histogram",
            &format!("vllm:e2e_request_latency_seconds_count{labels} 0.0"),
        ],
        "{text}"
    );
    // No name (an empty one is dropped, as `parse_qs` drops it): everything.
    let (_, _, all) = call(&app, get("/metrics?name[]=")).await;
    assert_eq!(all, full);
}

/// Binds port 0 and serves `engine` with [`serve`]; returns the address and the shutdown trigger.
async fn spawn_server(
    engine: Arc<FakeEngine>,
) -> (
    std::net::SocketAddr,
    tokio::sync::oneshot::Sender<()>,
    tokio::task::JoinHandle<std::io::Result<()>>,
) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let options = ServerOptions {
        shutdown_grace: Duration::from_millis(200),
        ..Default::default()
    };
    let task = tokio::spawn(serve(listener, engine, options, async move {
        let _ = rx.await;
    }));
    (addr, tx, task)
}

async fn raw_request(addr: std::net::SocketAddr, request: &str) -> tokio::net::TcpStream {
    use tokio::io::AsyncWriteExt;
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    stream.write_all(request.as_bytes()).await.unwrap();
    stream
}

async fn wait_for(what: &str, mut check: impl FnMut() -> bool) {
    for _ in 0..200 {
        if check() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("timed out waiting for {what}");
}

#[tokio::test]
async fn client_disconnect_drops_the_generation() {
    let engine = FakeEngine::new(Script::Hold);
    let (addr, stop, task) = spawn_server(engine.clone()).await;
    for stream in [false, true] {
        engine.held.lock().unwrap().clear();
        let body = json!({"messages":[{"role":"user","content":"x"}],"stream":stream}).to_string();
        let request = format!(
            "POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
            body.len()
        );
        let conn = raw_request(addr, &request).await;
        wait_for("the request to reach the engine", || {
            engine.held.lock().unwrap().len() == 1
        })
        .await;
        assert!(!engine.held.lock().unwrap()[0].is_closed());
        drop(conn);
        wait_for("the generation to be dropped", || {
            engine.held.lock().unwrap()[0].is_closed()
        })
        .await;
    }
    let _ = stop.send(());
    task.await.unwrap().unwrap();
}

#[tokio::test]
async fn serve_stops_on_shutdown_even_with_open_requests() {
    let engine = FakeEngine::new(Script::Hold);
    let (addr, stop, task) = spawn_server(engine.clone()).await;
    let body = json!({"prompt":"x"}).to_string();
    let request = format!(
        "POST /v1/completions HTTP/1.1\r\nhost: x\r\ncontent-length: {}\r\n\r\n{body}",
        body.len()
    );
    let _conn = raw_request(addr, &request).await;
    wait_for("the request to reach the engine", || {
        engine.held.lock().unwrap().len() == 1
    })
    .await;
    let _ = stop.send(());
    tokio::time::timeout(Duration::from_secs(5), task)
        .await
        .expect("serve returns after the grace period")
        .unwrap()
        .unwrap();
    assert!(
        tokio::net::TcpStream::connect(addr).await.is_err(),
        "listener closed"
    );
}
