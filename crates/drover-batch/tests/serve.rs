//! The batch server in-process, over an in-process `drover sim` fleet on port 0: the HTTP surface
//! (keys, uploads, errors), expiry, and a graceful restart mid-batch.

use std::collections::HashMap;
use std::path::Path;
use std::time::{Duration, Instant};

use drover_batch::{BatchError, BatchServer, ServerConfig};
use drover_client::{BackendAddr, Client, ClientConfig};
use drover_sched::DispatchConfig;
use drover_sched::limit::AdaptiveConfig;
use drover_sim::{Fleet, SimConfig};
use serde_json::{Value, json};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

struct Running {
    url: String,
    stop: oneshot::Sender<()>,
    done: JoinHandle<Result<(), BatchError>>,
}

async fn fleet(time_scale: f64, preset: &str) -> Fleet {
    let mut c = SimConfig::preset(preset).unwrap();
    c.time_scale = time_scale;
    c.params.max_num_seqs = c.params.max_num_seqs.min(64);
    Fleet::start("127.0.0.1", &[0, 0], vec![c]).await.unwrap()
}

async fn serve(dir: &Path, fleet: &Fleet, key: Option<&str>, max_upload: u64) -> Running {
    serve_with(dir, fleet, key, max_upload, DispatchConfig::default()).await
}

async fn serve_with(
    dir: &Path,
    fleet: &Fleet,
    key: Option<&str>,
    max_upload: u64,
    dispatch: DispatchConfig,
) -> Running {
    let client = Client::new(ClientConfig::default()).unwrap();
    let addrs = fleet
        .urls()
        .iter()
        .map(|u| BackendAddr::parse(u).unwrap())
        .collect();
    let found = drover_job::discover(&client, addrs, None, Duration::from_secs(10))
        .await
        .unwrap();
    let config = ServerConfig {
        data_dir: dir.to_path_buf(),
        api_key: key.map(str::to_string),
        max_upload_bytes: max_upload,
        dispatch,
        client,
        backends: found.backends,
        membership: None,
        model: found.model,
        grace: Duration::from_secs(2),
        drain: Duration::from_secs(30),
    };
    let server = BatchServer::open(config).unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let (stop, stopped) = oneshot::channel::<()>();
    let done = tokio::spawn(server.serve(listener, async move {
        let _ = stopped.await;
    }));
    Running { url, stop, done }
}

impl Running {
    async fn shutdown(self) {
        let _ = self.stop.send(());
        tokio::time::timeout(Duration::from_secs(30), self.done)
            .await
            .expect("server stops")
            .unwrap()
            .unwrap();
    }
}

struct Http {
    http: reqwest::Client,
    base: String,
    key: Option<String>,
}

impl Http {
    fn new(base: &str, key: Option<&str>) -> Http {
        Http {
            http: reqwest::Client::new(),
            base: base.to_string(),
            key: key.map(str::to_string),
        }
    }

    async fn send(&self, req: reqwest::RequestBuilder) -> (u16, String) {
        let req = match &self.key {
            Some(k) => req.bearer_auth(k),
            None => req,
        };
        let resp = req.send().await.unwrap();
        let status = resp.status().as_u16();
        (status, resp.text().await.unwrap())
    }

    async fn json(&self, req: reqwest::RequestBuilder) -> (u16, Value) {
        let (s, t) = self.send(req).await;
        (
            s,
            serde_json::from_str(&t).unwrap_or_else(|e| panic!("{e}: {t}")),
        )
    }

    async fn upload_as(&self, purpose: &str, data: &[u8]) -> (u16, Value) {
        let b = "xxBOUNDARYxx";
        let mut body = format!("--{b}\r\nContent-Disposition: form-data; name=\"purpose\"\r\n\r\n{purpose}\r\n--{b}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"in.jsonl\"\r\n\r\n").into_bytes();
        body.extend_from_slice(data);
        body.extend_from_slice(format!("\r\n--{b}--\r\n").as_bytes());
        let req = self
            .http
            .post(format!("{}/v1/files", self.base))
            .header("content-type", format!("multipart/form-data; boundary={b}"))
            .body(body);
        self.json(req).await
    }

    async fn upload(&self, data: &[u8]) -> String {
        let (s, f) = self.upload_as("batch", data).await;
        assert_eq!(s, 200, "{f}");
        f["id"].as_str().unwrap().to_string()
    }

    async fn create(&self, file: &str, window: &str) -> String {
        let body = json!({"input_file_id": file, "endpoint": "/v1/chat/completions", "completion_window": window});
        let (s, b) = self
            .json(
                self.http
                    .post(format!("{}/v1/batches", self.base))
                    .json(&body),
            )
            .await;
        assert_eq!(s, 200, "{b}");
        b["id"].as_str().unwrap().to_string()
    }

    async fn get(&self, path: &str) -> (u16, Value) {
        self.json(self.http.get(format!("{}{path}", self.base)))
            .await
    }

    async fn wait(&self, id: &str, limit: Duration, until: impl Fn(&Value) -> bool) -> Value {
        let deadline = Instant::now() + limit;
        loop {
            let (s, b) = self.get(&format!("/v1/batches/{id}")).await;
            assert_eq!(s, 200, "{b}");
            if until(&b) {
                return b;
            }
            assert!(Instant::now() < deadline, "{b}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Every result line of a finished batch, by custom_id (panics on a second line for one).
    async fn results(&self, batch: &Value) -> HashMap<String, Value> {
        let mut out = HashMap::new();
        for key in ["output_file_id", "error_file_id"] {
            let Some(id) = batch[key].as_str() else {
                continue;
            };
            let (s, text) = self
                .send(
                    self.http
                        .get(format!("{}/v1/files/{id}/content", self.base)),
                )
                .await;
            assert_eq!(s, 200, "{key} {id}: {text}\nbatch: {batch}");
            for line in text.lines() {
                let v: Value = serde_json::from_str(line).unwrap();
                let cid = v["custom_id"].as_str().unwrap().to_string();
                assert!(out.insert(cid.clone(), v).is_none(), "{cid} has two lines");
            }
        }
        out
    }
}

fn requests(n: usize, max_tokens: u32) -> Vec<u8> {
    (0..n)
        .map(|i| {
            json!({"custom_id": format!("r{i}"), "method": "POST", "url": "/v1/chat/completions",
                   "body": {"messages": [{"role": "user", "content": format!("q{i}")}], "max_tokens": max_tokens}})
            .to_string()
                + "\n"
        })
        .collect::<String>()
        .into_bytes()
}

fn terminal(b: &Value) -> bool {
    matches!(
        b["status"].as_str(),
        Some("completed" | "failed" | "expired" | "cancelled")
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_http_surface_speaks_openai() {
    let fleet = fleet(0.01, "instant").await;
    let dir = tempfile::tempdir().unwrap();
    let server = serve(dir.path(), &fleet, Some("sk-k"), 4096).await;
    let anon = Http::new(&server.url, None);
    let wrong = Http::new(&server.url, Some("sk-kk"));
    let api = Http::new(&server.url, Some("sk-k"));

    let (s, _) = anon
        .send(anon.http.get(format!("{}/health", server.url)))
        .await;
    assert_eq!(s, 200, "health needs no key");
    for who in [&anon, &wrong] {
        let (s, e) = who.get("/v1/files").await;
        assert_eq!(s, 401);
        assert_eq!(e["error"]["code"], "invalid_api_key");
        assert_eq!(e["error"]["type"], "invalid_request_error");
        assert!(e["error"]["param"].is_null());
    }
    let (s, e) = api.get("/v1/nothing").await;
    assert_eq!((s, e["error"]["code"].as_str()), (404, Some("unknown_url")));

    let (s, e) = api.upload_as("batch", b"{\"custom_id\":\"a\",\"method\":\"POST\",\"url\":\"/v1/chat/completions\",\"body\":{\"messages\":[{\"role\":\"user\",\"content\":\"x\"}]}}\n[]\n").await;
    assert_eq!(s, 400, "{e}");
    assert!(
        e["error"]["message"]
            .as_str()
            .unwrap()
            .contains("line 2: expected a JSON object"),
        "{e}"
    );
    assert_eq!(e["error"]["param"], "file");
    let (s, e) = api.upload_as("fine-tune", &requests(1, 1)).await;
    assert_eq!(
        (s, e["error"]["param"].as_str()),
        (400, Some("purpose")),
        "{e}"
    );
    let (s, e) = api.upload_as("batch", &requests(200, 1)).await;
    assert_eq!(
        (s, e["error"]["code"].as_str()),
        (413, Some("file_too_large")),
        "{e}"
    );
    let (_, listed) = api.get("/v1/files").await;
    assert_eq!(
        listed["data"].as_array().unwrap().len(),
        0,
        "refused uploads leave nothing: {listed}"
    );
    assert_eq!(
        std::fs::read_dir(dir.path().join("tmp")).unwrap().count(),
        0,
        "nor a temporary file"
    );

    let data = requests(3, 4);
    let file = api.upload(&data).await;
    let (s, f) = api.get(&format!("/v1/files/{file}")).await;
    assert_eq!(
        (s, f["bytes"].as_u64(), f["purpose"].as_str()),
        (200, Some(data.len() as u64), Some("batch"))
    );
    let (s, text) = api
        .send(
            api.http
                .get(format!("{}/v1/files/{file}/content", server.url)),
        )
        .await;
    assert_eq!((s, text.as_bytes()), (200, &data[..]));

    let bad =
        json!({"input_file_id": file, "endpoint": "/v1/responses", "completion_window": "24h"});
    let (s, e) = api
        .json(
            api.http
                .post(format!("{}/v1/batches", server.url))
                .json(&bad),
        )
        .await;
    assert_eq!(
        (s, e["error"]["param"].as_str()),
        (400, Some("endpoint")),
        "{e}"
    );
    let bad = json!({"input_file_id": file, "endpoint": "/v1/chat/completions", "completion_window": "soon"});
    let (s, e) = api
        .json(
            api.http
                .post(format!("{}/v1/batches", server.url))
                .json(&bad),
        )
        .await;
    assert_eq!(
        (s, e["error"]["param"].as_str()),
        (400, Some("completion_window")),
        "{e}"
    );
    let bad = json!({"input_file_id": "file-none", "endpoint": "/v1/chat/completions", "completion_window": "24h"});
    let (s, _) = api
        .json(
            api.http
                .post(format!("{}/v1/batches", server.url))
                .json(&bad),
        )
        .await;
    assert_eq!(s, 404);

    let id = api.create(&file, "24h").await;
    let done = api.wait(&id, Duration::from_secs(30), terminal).await;
    assert_eq!(done["status"], "completed", "{done}");
    assert_eq!(
        done["request_counts"],
        json!({"total": 3, "completed": 3, "failed": 0})
    );
    assert!(
        done["error_file_id"].is_null(),
        "no failures, no error file: {done}"
    );
    assert_eq!(api.results(&done).await.len(), 3);
    let (s, e) = api
        .json(
            api.http
                .post(format!("{}/v1/batches/{id}/cancel", server.url)),
        )
        .await;
    assert_eq!(s, 409, "{e}");
    let (s, _) = api
        .json(api.http.delete(format!("{}/v1/files/{file}", server.url)))
        .await;
    assert_eq!(s, 200, "the input of an ended batch can go");
    server.shutdown().await;
    fleet.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_past_its_window_expires_with_every_line_accounted_for() {
    let fleet = fleet(1.0, "llama-3.1-8b-h100").await;
    let dir = tempfile::tempdir().unwrap();
    let server = serve(dir.path(), &fleet, None, 1 << 30).await;
    let api = Http::new(&server.url, None);
    // Answers take seconds each: the window ends with every request sent or queued, none done.
    let file = api.upload(&requests(400, 1024)).await;
    let id = api.create(&file, "2s").await;
    let done = api.wait(&id, Duration::from_secs(60), terminal).await;
    assert_eq!(done["status"], "expired", "{done}");
    assert!(
        done["expired_at"].as_i64().unwrap() >= done["expires_at"].as_i64().unwrap(),
        "{done}"
    );
    let results = api.results(&done).await;
    assert_eq!(results.len(), 400, "every request has exactly one line");
    let expired = results
        .values()
        .filter(|r| r["error"]["code"] == "batch_expired")
        .count();
    assert!(
        expired > 0,
        "a 2s window over 400 long requests leaves some unanswered"
    );
    let c = &done["request_counts"];
    assert_eq!(c["total"], 400);
    assert_eq!(
        c["completed"].as_u64().unwrap() + c["failed"].as_u64().unwrap(),
        400,
        "{done}"
    );
    server.shutdown().await;
    fleet.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_graceful_restart_mid_batch_resumes_exactly_once() {
    let fleet = fleet(1.0, "llama-3.1-8b-h100").await;
    let dir = tempfile::tempdir().unwrap();
    let server = serve(dir.path(), &fleet, None, 1 << 30).await;
    let api = Http::new(&server.url, None);
    let file = api.upload(&requests(1000, 48)).await;
    let id = api.create(&file, "24h").await;
    let mid = api
        .wait(&id, Duration::from_secs(60), |b| {
            terminal(b) || b["request_counts"]["completed"].as_u64() >= Some(200)
        })
        .await;
    assert_eq!(mid["status"], "in_progress", "{mid}");
    server.shutdown().await;

    let server = serve(dir.path(), &fleet, None, 1 << 30).await;
    let api = Http::new(&server.url, None);
    let resumed = api.wait(&id, Duration::from_secs(10), |_| true).await;
    assert!(
        resumed["request_counts"]["completed"].as_u64().unwrap() >= 200,
        "kept what was done: {resumed}"
    );
    let done = api.wait(&id, Duration::from_secs(120), terminal).await;
    assert_eq!(done["status"], "completed", "{done}");
    let results = api.results(&done).await;
    assert_eq!(results.len(), 1000);
    assert!((0..1000).all(|i| results.contains_key(&format!("r{i}"))));
    server.shutdown().await;
    fleet.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_directory_one_server() {
    let fleet = fleet(0.01, "instant").await;
    let dir = tempfile::tempdir().unwrap();
    let server = serve(dir.path(), &fleet, None, 1 << 20).await;
    let client = Client::new(ClientConfig::default()).unwrap();
    let config = ServerConfig {
        data_dir: dir.path().to_path_buf(),
        api_key: None,
        max_upload_bytes: 1,
        dispatch: DispatchConfig::default(),
        client,
        backends: Vec::new(),
        membership: None,
        model: None,
        grace: Duration::from_secs(1),
        drain: Duration::from_secs(1),
    };
    let e = BatchServer::open(config)
        .err()
        .expect("a second server on the same directory is refused");
    assert!(matches!(e, BatchError::Locked(_)), "{e}");
    server.shutdown().await;
    fleet.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn uploads_larger_than_the_json_limit_are_taken() {
    let fleet = fleet(0.01, "instant").await;
    let dir = tempfile::tempdir().unwrap();
    let server = serve(dir.path(), &fleet, None, 8 << 20).await;
    let api = Http::new(&server.url, None);
    let pad = "x".repeat(1000);
    let data: Vec<u8> = (0..2500)
        .map(|i| {
            json!({"custom_id": format!("p{i}"), "method": "POST", "url": "/v1/chat/completions",
                   "body": {"messages": [{"role": "user", "content": format!("{pad} {i}")}], "max_tokens": 1}})
            .to_string()
                + "\n"
        })
        .collect::<String>()
        .into_bytes();
    assert!(data.len() > 2 << 20);
    let file = api.upload(&data).await;
    let (s, text) = api
        .send(
            api.http
                .get(format!("{}/v1/files/{file}/content", server.url)),
        )
        .await;
    assert_eq!((s, text.len()), (200, data.len()));
    server.shutdown().await;
    fleet.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_cancelled_at_once_ends_cancelled_with_what_was_sent() {
    let fleet = fleet(1.0, "llama-3.1-8b-h100").await;
    let dir = tempfile::tempdir().unwrap();
    let dispatch = DispatchConfig {
        adaptive: AdaptiveConfig {
            max: 8,
            ..AdaptiveConfig::default()
        },
        ..DispatchConfig::default()
    };
    let server = serve_with(dir.path(), &fleet, None, 1 << 30, dispatch).await;
    let api = Http::new(&server.url, None);
    let file = api.upload(&requests(500, 256)).await;
    let id = api.create(&file, "24h").await;
    // Whether it is still validating or already running, the cancel takes.
    let (s, b) = api
        .json(
            api.http
                .post(format!("{}/v1/batches/{id}/cancel", server.url)),
        )
        .await;
    assert_eq!(s, 200, "{b}");
    assert!(
        matches!(b["status"].as_str(), Some("cancelling" | "cancelled")),
        "{b}"
    );
    let done = api.wait(&id, Duration::from_secs(60), terminal).await;
    assert_eq!(done["status"], "cancelled", "{done}");
    let c = &done["request_counts"];
    assert_eq!(c["total"], 500, "{done}");
    let recorded = c["completed"].as_u64().unwrap() + c["failed"].as_u64().unwrap();
    assert!(recorded < 500, "what was never sent has no line: {done}");
    assert_eq!(api.results(&done).await.len() as u64, recorded);
    server.shutdown().await;
    fleet.shutdown().await;
}
