//! Scraping a real HTTP server's `/metrics` over loopback: the key is sent, a refusal or an
//! exposition without known names is `None`, a silent server is an error within the timeout.

use std::time::{Duration, Instant};

use axum::Router;
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use axum::routing::get;
use drover_client::{BackendAddr, Client, ClientConfig, EngineKind, Scraper};
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

/// A server whose `/metrics` answers `answer(query)`; returns its address and the queries
/// it was asked, in order.
async fn recording(
    answer: fn(&str) -> Vec<u8>,
) -> (BackendAddr, std::sync::Arc<std::sync::Mutex<Vec<String>>>) {
    let queries = std::sync::Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    let seen = queries.clone();
    let app = Router::new().route(
        "/metrics",
        get(move |uri: axum::http::Uri| {
            let seen = seen.clone();
            async move {
                let query = uri.query().unwrap_or_default().to_string();
                let body = answer(&query);
                seen.lock().unwrap().push(query);
                body
            }
        }),
    );
    (serve(app).await, queries)
}

/// Scrapes `addr` three times with one `Scraper`; each must read `want` (running, waiting,
/// tokens). Returns whether it still asks for the signals only.
async fn three_scrapes(addr: &BackendAddr, want: (f64, Option<f64>, Option<f64>)) -> bool {
    let client = client(None);
    let mut scraper = Scraper::default();
    for i in 1..=3 {
        let s = scraper
            .scrape(&client, addr, Duration::from_secs(5))
            .await
            .unwrap()
            .expect("signals");
        assert_eq!(
            (s.running, s.waiting, s.generation_tokens),
            (Some(want.0), want.1, want.2),
            "scrape {i}"
        );
    }
    scraper.is_filtering()
}

const FILTERED: &str = "name%5B%5D=vllm:";

#[tokio::test]
async fn a_filtered_answer_short_of_a_signal_is_read_again_in_full_and_not_asked_again() {
    // Answers `name[]` with only some of the series asked for (say, metrics that come from
    // two registries): the scraper must not lose the others.
    let (addr, queries) = recording(|q| {
        if q.is_empty() {
            exposition()
        } else {
            b"vllm:num_requests_running{engine=\"0\"} 7.0\n".to_vec()
        }
    })
    .await;
    assert!(!three_scrapes(&addr, (7.0, Some(1.0), Some(420.0))).await);
    let queries = queries.lock().unwrap().clone();
    assert!(queries[0].starts_with(FILTERED), "{queries:?}");
    assert_eq!(queries[1..], ["", "", ""]);
}

#[tokio::test]
async fn a_filtered_answer_with_the_signals_a_full_one_has_is_asked_again() {
    // A vLLM that gives no KV-cache figures, and answers `name[]` the way prometheus_client
    // does: the filtered answer lacks only what the full one lacks.
    let (addr, queries) = recording(|q| {
        let mut body = b"vllm:num_requests_running 7.0\nvllm:num_requests_waiting 1.0\n".to_vec();
        if q.is_empty() {
            body.extend_from_slice(b"vllm:e2e_request_latency_seconds_count 9.0\n");
        }
        body
    })
    .await;
    assert!(three_scrapes(&addr, (7.0, Some(1.0), None)).await);
    let queries = queries.lock().unwrap().clone();
    assert_eq!(queries.len(), 4, "{queries:?}");
    assert!(queries[0].starts_with(FILTERED) && queries[2..].iter().all(|q| q == &queries[0]));
    assert_eq!(queries[1], "");
}

#[tokio::test]
async fn a_server_that_ignores_the_question_is_read_in_full_from_its_first_answer() {
    // llama.cpp answers everything whatever is asked: its first answer is the whole
    // exposition, and the question is not asked again.
    let (addr, queries) =
        recording(|_| b"llamacpp:requests_processing 2\nllamacpp:requests_deferred 5\n".to_vec())
            .await;
    assert!(!three_scrapes(&addr, (2.0, Some(5.0), None)).await);
    let queries = queries.lock().unwrap().clone();
    assert!(queries[0].starts_with(FILTERED), "{queries:?}");
    assert_eq!(queries[1..], ["", ""]);
}
