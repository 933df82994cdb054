//! drover's scraper against the exporter vLLM serves `/metrics` with (Python
//! `prometheus_client`, `tests/py/vllm_exporter.py`): it asks for the signals' series only,
//! and where the answer to that is empty (several API servers: the multiprocess collector)
//! it reads everything, without losing a signal.

#[path = "common/python.rs"]
mod python;
use std::io::{BufRead, BufReader, Read};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use drover_client::{BackendAddr, Client, ClientConfig, EngineKind, LoadSignals, Scraper};

/// The project venv's Python with `prometheus_client`, or a failure saying how to get it.
fn python() -> PathBuf {
    python::python_with(&["prometheus_client"])
}

/// The exporter in `mode`, killed on drop; `requests` reads what it served.
struct Exporter {
    child: Child,
    port: u16,
}

impl Exporter {
    fn start(mode: &str) -> Exporter {
        let script =
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/py/vllm_exporter.py");
        let mut child = Command::new(python())
            .arg(script)
            .arg(mode)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("python runs");
        let mut first = String::new();
        BufReader::new(child.stdout.as_mut().unwrap())
            .read_line(&mut first)
            .expect("the exporter's first line");
        let port = first
            .strip_prefix("PORT ")
            .and_then(|p| p.trim().parse().ok())
            .unwrap_or_else(|| panic!("expected `PORT n`, got {first:?}"));
        Exporter { child, port }
    }

    /// Every request served: (query string, bytes answered). Stops the exporter.
    fn requests(mut self) -> Vec<(String, usize)> {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
        let mut out = String::new();
        self.child
            .stdout
            .take()
            .unwrap()
            .read_to_string(&mut out)
            .unwrap();
        out.lines()
            .map(|l| {
                let (q, n) = l.rsplit_once('|').expect("query|bytes");
                (q.to_string(), n.parse().unwrap())
            })
            .collect()
    }
}

impl Drop for Exporter {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// What the exporter's fixed values read as.
fn expected() -> LoadSignals {
    LoadSignals {
        engine: EngineKind::Vllm,
        running: Some(5.0),
        waiting: Some(2.0),
        kv_usage: Some(0.25),
        generation_tokens: Some(1234.0),
        kv_capacity_tokens: Some(16_000.0),
    }
}

/// A full scrape of the exporter in `mode`, then three by one `Scraper`: each must read every
/// signal. Returns what the exporter served and whether the scraper still filters.
async fn three_scrapes(mode: &str) -> (Vec<(String, usize)>, bool) {
    let exporter = Exporter::start(mode);
    let addr = BackendAddr::parse(&exporter.port.to_string()).unwrap();
    let client = Client::new(ClientConfig::default()).unwrap();
    // One full scrape first, to compare sizes with.
    let full = client.scrape(&addr, Duration::from_secs(10)).await.unwrap();
    assert_eq!(full, Some(expected()), "{mode}: full scrape");
    let mut scraper = Scraper::default();
    for i in 1..=3 {
        let got = scraper
            .scrape(&client, &addr, Duration::from_secs(10))
            .await
            .unwrap_or_else(|e| panic!("{mode}: scrape {i}: {e}"));
        assert_eq!(got, Some(expected()), "{mode}: scrape {i}");
    }
    let filtering = scraper.is_filtering();
    (exporter.requests(), filtering)
}

/// The names asked for: vLLM's signals, `name[]` percent-encoded as prometheus_client decodes it.
const FILTER: &str = "name%5B%5D=vllm:num_requests_running&name%5B%5D=vllm:num_requests_waiting\
&name%5B%5D=vllm:kv_cache_usage_perc&name%5B%5D=vllm:gpu_cache_usage_perc\
&name%5B%5D=vllm:generation_tokens_total&name%5B%5D=vllm:cache_config_info";

#[tokio::test]
async fn one_api_server_is_asked_for_the_signals_only() {
    let (served, filtering) = three_scrapes("single").await;
    let queries: Vec<&str> = served.iter().map(|(q, _)| q.as_str()).collect();
    assert_eq!(queries, ["", FILTER, FILTER, FILTER], "{served:?}");
    // The exporter answered the question: everything but the signals' series left out.
    let (full, filtered) = (served[0].1, served[1].1);
    assert!(
        filtered * 3 < full,
        "filtered answer {filtered} bytes, full {full}"
    );
    assert!(filtering);
}

#[tokio::test]
async fn an_empty_filtered_answer_is_read_again_in_full_and_not_asked_again() {
    let (served, filtering) = three_scrapes("multiproc").await;
    let queries: Vec<&str> = served.iter().map(|(q, _)| q.as_str()).collect();
    // The scraper's first, filtered answer is empty (the multiprocess collector lists no
    // names): that scrape is redone in full, and the later ones ask for everything at once.
    assert_eq!(queries, ["", FILTER, "", "", ""], "{served:?}");
    assert_eq!(
        served[1].1, 0,
        "prometheus_client's filtered multiprocess answer"
    );
    assert!(!filtering);
}
