//! Scraping a real HTTP server's `/metrics` over loopback: the key is sent, a refusal or an
//! exposition without known names is `None`, a silent server is an error within the timeout.

use std::time::{Duration, Instant};

use axum::Router;
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use axum::routing::get;
use drover_client::{BackendAddr, Client, ClientConfig, EngineKind};
use tokio::net::TcpListener;

/// A vLLM exposition as served, with a histogram line that is not UTF-8 (a label value in
/// another encoding): the lines drover reads must still be read.
fn exposition() -> Vec<u8> {
    let mut body =
        b"# HELP vllm:num_requests_running Number of requests in model execution batches.
# TYPE vllm:num_requests_running gauge
vllm:num_requests_running{engine=\"0\",model_name=\"m\"} 7.0
vllm:num_requests_waiting{engine=\"0\",model_name=\"m\"} 1.0
"
        .to_vec();
    body.extend_from_slice(
        b"vllm:e2e_request_latency_seconds_bucket{le=\"0.3\",model_name=\"m\xff\"} 4.0\n",
    );
    body.extend_from_slice(b"vllm:generation_tokens_total{engine=\"0\",model_name=\"m\"} 420.0\n");
    body
}

async fn metrics(headers: HeaderMap) -> impl IntoResponse {
    let key = headers.get("authorization").and_then(|v| v.to_str().ok());
    if key != Some("Bearer sk-scrape") {
        return (StatusCode::UNAUTHORIZED, Vec::new());
    }
    (StatusCode::OK, exposition())
}

async fn serve(app: Router) -> BackendAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move { axum::serve(listener, app).await });
    BackendAddr::parse(&port.to_string()).unwrap()
}

fn client(key: Option<&str>) -> Client {
    Client::new(ClientConfig {
        api_key: key.map(String::from),
        ..ClientConfig::default()
    })
    .unwrap()
}

#[tokio::test]
async fn scrape_sends_the_key_and_reads_past_lines_that_are_not_text() {
    let addr = serve(Router::new().route("/metrics", get(metrics))).await;
    let s = client(Some("sk-scrape"))
        .scrape(&addr, Duration::from_secs(5))
        .await
        .unwrap()
        .expect("signals");
    assert_eq!(s.engine, EngineKind::Vllm);
    assert_eq!(
        (s.running, s.waiting, s.generation_tokens),
        (Some(7.0), Some(1.0), Some(420.0))
    );
    // Refused without the key: no signals (the backend is then driven from drover's own view).
    let none = client(None)
        .scrape(&addr, Duration::from_secs(5))
        .await
        .unwrap();
    assert_eq!(none, None);
}

#[tokio::test]
async fn scrape_of_a_silent_server_fails_within_its_timeout() {
    let addr = serve(Router::new().route(
        "/metrics",
        get(|| async {
            tokio::time::sleep(Duration::from_secs(30)).await;
            "vllm:num_requests_running 1\n"
        }),
    ))
    .await;
    let start = Instant::now();
    let err = client(None)
        .scrape(&addr, Duration::from_millis(300))
        .await
        .unwrap_err();
    assert!(err.contains("no answer within"), "{err}");
    assert!(
        start.elapsed() < Duration::from_secs(10),
        "{:?}",
        start.elapsed()
    );
}
