//! Each backend keeps its connections open for the next request, over a real HTTP server on
//! loopback that counts the connections it accepts: requests reuse theirs whatever the
//! answer's status or form, and scrapes, model listings and health checks share one of their
//! own.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use axum::Router;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::{get, post};
use axum::serve::ListenerExt;
use bytes::Bytes;
use drover_client::{BackendAddr, Client, ClientConfig, SendOptions};
use drover_types::{Endpoint, Failure};
use tokio::net::TcpListener;

const ANSWER: &str = r#"{"choices":[{"index":0,"message":{"role":"assistant","content":"ok"}}],"usage":{"prompt_tokens":3,"completion_tokens":1}}"#;

/// A streamed answer as vLLM sends it, ending with `[DONE]` (transformers' server sends none).
const STREAM: &str = concat!(
    "data: {\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":\"ok\"}}]}\n\n",
    "data: {\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"stop\"}],\"usage\":{\"prompt_tokens\":3,\"completion_tokens\":1}}\n\n",
    "data: [DONE]\n\n",
);

async fn chat(body: Bytes) -> impl IntoResponse {
    let text = String::from_utf8_lossy(&body);
    if text.contains("\"fail\"") {
        return (
            StatusCode::BAD_REQUEST,
            [("content-type", "application/json")],
            r#"{"error":{"message":"bad prompt"}}"#.to_string(),
        );
    }
    if text.contains("\"stream\":true") {
        let sse = if text.contains("\"no_done\"") {
            STREAM.trim_end_matches("data: [DONE]\n\n")
        } else {
            STREAM
        };
        return (
            StatusCode::OK,
            [("content-type", "text/event-stream")],
            sse.to_string(),
        );
    }
    (
        StatusCode::OK,
        [("content-type", "application/json")],
        ANSWER.to_string(),
    )
}

/// Serves the routes a backend has; returns its address and the count of accepted connections.
async fn serve() -> (BackendAddr, Arc<AtomicUsize>) {
    let app = Router::new()
        .route("/v1/chat/completions", post(chat))
        .route("/v1/models", get(|| async { r#"{"data":[{"id":"m"}]}"# }))
        .route("/health", get(|| async { "" }))
        .route(
            "/metrics",
            get(|| async { "vllm:num_requests_running{model_name=\"m\"} 1.0\n" }),
        );
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let accepted = Arc::new(AtomicUsize::new(0));
    let count = accepted.clone();
    let listener = listener.tap_io(move |_| {
        count.fetch_add(1, Ordering::SeqCst);
    });
    tokio::spawn(async move { axum::serve(listener, app).await });
    (BackendAddr::parse(&port.to_string()).unwrap(), accepted)
}

fn opts(stream: bool) -> SendOptions<'static> {
    SendOptions {
        request_id: "req-1",
        timeout: Duration::from_secs(10),
        stream,
        idle_timeout: Duration::from_secs(10),
    }
}

async fn chat_once(client: &Client, addr: &BackendAddr, body: &'static str, stream: bool) {
    let r = client
        .send(
            addr,
            Endpoint::ChatCompletions,
            &Bytes::from_static(body.as_bytes()),
            &opts(stream),
            None,
        )
        .await;
    match body.contains("\"fail\"") {
        true => assert_eq!(r.unwrap_err().failure, Failure::Rejected { status: 400 }),
        false => assert_eq!(r.unwrap().usage.completion_tokens, 1),
    }
}

#[tokio::test]
async fn requests_reuse_their_connection_whatever_the_answer() {
    let (addr, accepted) = serve().await;
    let client = Client::new(ClientConfig::default());
    for i in 0..40 {
        let body = match i % 4 {
            0 | 2 => r#"{"messages":[]}"#,
            1 => r#"{"messages":[],"fail":1}"#,
            _ => r#"{"messages":[],"no_done":1}"#,
        };
        chat_once(&client, &addr, body, i % 4 >= 2).await;
    }
    assert_eq!(
        accepted.load(Ordering::SeqCst),
        1,
        "40 requests one after the other: plain, rejected and streamed answers (with and without [DONE]) all on one connection"
    );
}

#[tokio::test]
async fn concurrent_requests_open_what_they_need_once() {
    let (addr, accepted) = serve().await;
    let client = Client::new(ClientConfig::default());
    for _ in 0..3 {
        let wave = (0..8).map(|_| chat_once(&client, &addr, r#"{"messages":[]}"#, false));
        futures::future::join_all(wave).await;
    }
    let n = accepted.load(Ordering::SeqCst);
    assert!(
        (1..=8).contains(&n),
        "three waves of 8 at once must reuse the first wave's connections: {n} accepted"
    );
}

#[tokio::test]
async fn control_requests_share_one_connection_of_their_own() {
    let (addr, accepted) = serve().await;
    let client = Client::new(ClientConfig::default());
    chat_once(&client, &addr, r#"{"messages":[]}"#, false).await;
    for _ in 0..5 {
        assert_eq!(
            client
                .models(&addr, Duration::from_secs(5))
                .await
                .unwrap()
                .data[0]
                .id,
            "m"
        );
        assert!(
            client
                .scrape(&addr, Duration::from_secs(5))
                .await
                .unwrap()
                .is_some()
        );
        client.health(&addr, Duration::from_secs(5)).await.unwrap();
    }
    chat_once(&client, &addr, r#"{"messages":[]}"#, false).await;
    assert_eq!(
        accepted.load(Ordering::SeqCst),
        2,
        "one for requests, one for the rest"
    );
    // A clone of the address is the same backend, with the same connections.
    let again = addr.clone();
    chat_once(&client, &again, r#"{"messages":[]}"#, false).await;
    assert_eq!(accepted.load(Ordering::SeqCst), 2);
}
