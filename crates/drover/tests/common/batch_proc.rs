//! The real `drover batch-server` binary on port 0, and a small client of its HTTP API (reqwest,
//! with the multipart upload written by hand so that the bytes on the wire are plain to see).
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read};
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex, mpsc};
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use serde_json::{Value, json};

/// A running `drover batch-server`; killed when dropped.
pub struct BatchServerProc {
    child: Child,
    /// `http://127.0.0.1:PORT`, from the listening line.
    pub url: String,
    stderr: Arc<Mutex<String>>,
}

/// Starts `drover batch-server -b BACKENDS --data-dir DIR --port 0 EXTRA…` and waits for its
/// listening line.
pub fn start(backends: &str, data_dir: &Path, extra: &[&str]) -> BatchServerProc {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_drover"));
    for v in [
        "VLLM_PORTS",
        "DROVER_BACKENDS",
        "OPENAI_API_KEY",
        "DROVER_BATCH_API_KEY",
        "DROVER_LOG",
    ] {
        cmd.env_remove(v);
    }
    cmd.args([
        "batch-server",
        "-b",
        backends,
        "--port",
        "0",
        "--grace",
        "2s",
        "--data-dir",
    ])
    .arg(data_dir)
    .args(extra)
    .stdin(Stdio::null())
    .stdout(Stdio::piped())
    .stderr(Stdio::piped());
    let mut child = cmd.spawn().expect("drover starts");
    let stderr = Arc::new(Mutex::new(String::new()));
    let mut err_pipe = child.stderr.take().unwrap();
    let sink = stderr.clone();
    std::thread::spawn(move || {
        let mut buf = [0u8; 4096];
        while let Ok(n) = err_pipe.read(&mut buf) {
            if n == 0 {
                break;
            }
            sink.lock()
                .unwrap()
                .push_str(&String::from_utf8_lossy(&buf[..n]));
        }
    });
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let prefix = "drover batch-server: listening on ";
    match rx.recv_timeout(Duration::from_secs(60)) {
        Ok(line) if line.starts_with(prefix) => {
            let url = line[prefix.len()..].trim().to_string();
            assert!(url.starts_with("http://127.0.0.1:"), "{line:?}");
            BatchServerProc { child, url, stderr }
        }
        other => {
            let _ = child.kill();
            let _ = child.wait();
            std::thread::sleep(Duration::from_millis(100));
            panic!(
                "no listening line ({other:?}); stderr:\n{}",
                stderr.lock().unwrap()
            );
        }
    }
}

impl BatchServerProc {
    /// What the server wrote to stderr so far.
    pub fn stderr(&self) -> String {
        self.stderr.lock().unwrap().clone()
    }

    /// SIGKILL, and waits for the process to be gone.
    pub fn kill9(&mut self) {
        kill(Pid::from_raw(self.child.id() as i32), Signal::SIGKILL).unwrap();
        let _ = self.child.wait();
    }

    /// SIGTERM, and the exit status (panics if it does not exit within `within`).
    pub fn terminate(mut self, within: Duration) -> ExitStatus {
        kill(Pid::from_raw(self.child.id() as i32), Signal::SIGTERM).unwrap();
        let deadline = Instant::now() + within;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "batch-server did not exit within {within:?} of SIGTERM; stderr:\n{}",
                self.stderr()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for BatchServerProc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A client of the batch API.
pub struct Api {
    rt: tokio::runtime::Runtime,
    http: reqwest::Client,
    base: String,
    key: Option<String>,
}

/// One JSON answer: status and body.
pub type Answer = (u16, Value);

impl Api {
    /// A client of the server at `url`.
    pub fn new(url: &str, key: Option<&str>) -> Api {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        Api {
            rt,
            http: reqwest::Client::new(),
            base: url.to_string(),
            key: key.map(str::to_string),
        }
    }

    fn send(&self, req: reqwest::RequestBuilder) -> (u16, String) {
        let req = match &self.key {
            Some(k) => req.bearer_auth(k),
            None => req,
        };
        self.rt.block_on(async {
            let resp = req
                .timeout(Duration::from_secs(60))
                .send()
                .await
                .expect("request reaches the server");
            let status = resp.status().as_u16();
            (status, resp.text().await.expect("body"))
        })
    }

    fn json(&self, req: reqwest::RequestBuilder) -> Answer {
        let (status, text) = self.send(req);
        (
            status,
            serde_json::from_str(&text).unwrap_or_else(|e| panic!("not JSON ({e}): {text}")),
        )
    }

    /// `POST /v1/files` with purpose=batch.
    pub fn upload(&self, name: &str, data: &[u8]) -> Answer {
        let boundary = "drover-test-boundary-7f3a";
        let mut body = Vec::new();
        body.extend_from_slice(
            format!(
                "--{boundary}\r\nContent-Disposition: form-data; name=\"purpose\"\r\n\r\nbatch\r\n"
            )
            .as_bytes(),
        );
        body.extend_from_slice(
            format!("--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"{name}\"\r\nContent-Type: application/jsonl\r\n\r\n")
                .as_bytes(),
        );
        body.extend_from_slice(data);
        body.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
        self.json(
            self.http
                .post(format!("{}/v1/files", self.base))
                .header(
                    "content-type",
                    format!("multipart/form-data; boundary={boundary}"),
                )
                .body(body),
        )
    }

    /// `POST /v1/batches` for the chat endpoint, 24h.
    pub fn create(&self, input_file_id: &str) -> Answer {
        let body = json!({"input_file_id": input_file_id, "endpoint": "/v1/chat/completions", "completion_window": "24h"});
        self.json(
            self.http
                .post(format!("{}/v1/batches", self.base))
                .json(&body),
        )
    }

    /// `GET /v1/batches/{id}`, which must succeed.
    pub fn batch(&self, id: &str) -> Value {
        let (status, body) = self.json(self.http.get(format!("{}/v1/batches/{id}", self.base)));
        assert_eq!(status, 200, "{body}");
        body
    }

    /// `GET /v1/files/{id}/content`, which must succeed.
    pub fn content(&self, file_id: &str) -> String {
        let (status, text) = self.send(
            self.http
                .get(format!("{}/v1/files/{file_id}/content", self.base)),
        );
        assert_eq!(status, 200, "{text}");
        text
    }

    /// Any GET, as text (e.g. a backend's /metrics).
    pub fn get_text(&self, url: &str) -> String {
        self.rt.block_on(async {
            self.http
                .get(url)
                .send()
                .await
                .unwrap()
                .text()
                .await
                .unwrap()
        })
    }

    /// Polls a batch until `until` holds; every answer is passed to `seen`.
    pub fn wait(
        &self,
        id: &str,
        limit: Duration,
        mut seen: impl FnMut(&Value),
        until: impl Fn(&Value) -> bool,
    ) -> Value {
        let deadline = Instant::now() + limit;
        loop {
            let b = self.batch(id);
            seen(&b);
            if until(&b) {
                return b;
            }
            assert!(
                Instant::now() < deadline,
                "batch {id} did not get there within {limit:?}: {b}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

/// `n` chat requests `{prefix}{i}` asking for `max_tokens`, as batch JSONL.
pub fn requests(prefix: &str, n: usize, max_tokens: u32) -> Vec<u8> {
    let mut out = String::new();
    for i in 0..n {
        let line = json!({
            "custom_id": format!("{prefix}{i}"),
            "method": "POST",
            "url": "/v1/chat/completions",
            "body": {"messages": [{"role": "user", "content": format!("request {prefix}{i}")}], "max_tokens": max_tokens},
        });
        out.push_str(&line.to_string());
        out.push('\n');
    }
    out.into_bytes()
}

/// A batch status that will not change any more.
pub fn is_terminal(b: &Value) -> bool {
    matches!(
        b["status"].as_str(),
        Some("completed" | "failed" | "expired" | "cancelled")
    )
}

/// The counts of a batch object: (total, completed, failed).
pub fn counts(b: &Value) -> (u64, u64, u64) {
    let c = &b["request_counts"];
    (
        c["total"].as_u64().unwrap(),
        c["completed"].as_u64().unwrap(),
        c["failed"].as_u64().unwrap(),
    )
}
