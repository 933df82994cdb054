//! End-to-end tests of `drover serve`: the real binary with the embedded llama.cpp engine and the
//! real default model, checked with the official `openai` Python client and raw HTTP.
//!
//! Needs the model and the Python test peers: `scripts/setup.sh --test` (or `DROVER_MODEL` and
//! `DROVER_PYTHON`). Each generation is bounded by a small `max_tokens`.

#[path = "common/python.rs"]
mod python;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, mpsc};
use std::time::{Duration, Instant};

/// Per-request context the tests serve with: small, so the over-context prompt stays small too.
const CTX: u32 = 512;

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// `DROVER_MODEL`, else the cached default model, else a failure that says how to get it.
fn model() -> PathBuf {
    let path = std::env::var_os("DROVER_MODEL")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            let cache = std::env::var_os("DROVER_CACHE_DIR")
                .map(PathBuf::from)
                .or_else(|| {
                    std::env::var_os("XDG_CACHE_HOME").map(|x| PathBuf::from(x).join("drover"))
                })
                .unwrap_or_else(|| {
                    PathBuf::from(std::env::var_os("HOME").expect("HOME")).join(".cache/drover")
                });
            cache.join("models/SmolLM2-135M-Instruct.Q4_1.gguf")
        });
    assert!(
        path.is_file(),
        "the engine tests need the model at {}: run `scripts/setup.sh --test` (or set DROVER_MODEL)",
        path.display()
    );
    path
}

/// The project venv's Python with the test peers, or a failure saying how to get it.
fn python() -> PathBuf {
    python::python_with(&["openai", "jsonschema"])
}

/// One server at a time: engines running side by side on a small CI machine only slow each
/// other down.
static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

/// A running `drover serve`; killed when dropped.
struct Serve {
    child: Child,
    _turn: MutexGuard<'static, ()>,
    /// `http://127.0.0.1:PORT`.
    url: String,
    /// `127.0.0.1:PORT`.
    addr: String,
}

impl Serve {
    fn start(extra: &[&str]) -> Serve {
        let turn = ONE_AT_A_TIME
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        // One llama.cpp thread: ggml's spinning barriers collapse when its threads outnumber the
        // free cores, which on a shared CI machine they often do (docs/engine.md).
        let mut child = Command::new(env!("CARGO_BIN_EXE_drover"))
            .args([
                "serve",
                "--port",
                "0",
                "--ctx",
                &CTX.to_string(),
                "--parallel",
                "8",
                "--threads",
                "1",
            ])
            .args(extra)
            .env("DROVER_MODEL", model())
            .env_remove("DROVER_API_KEY")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("drover starts");
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
        let Ok(line) = rx.recv_timeout(Duration::from_secs(60)) else {
            let _ = child.kill();
            let mut err = String::new();
            let _ = child.stderr.take().unwrap().read_to_string(&mut err);
            panic!("drover serve printed no ready line within 60 s; stderr:\n{err}");
        };
        let rest = line
            .strip_prefix("drover serve: listening on ")
            .unwrap_or_else(|| panic!("unexpected line {line:?}"));
        let (url, details) = rest.split_once(' ').expect("url and details");
        assert!(
            details.starts_with("(model SmolLM2-135M-Instruct.Q4_1, parallel 8, ctx 512)"),
            "{line:?}"
        );
        let addr = url.strip_prefix("http://").expect("http URL").to_owned();
        Serve {
            child,
            _turn: turn,
            url: url.to_owned(),
            addr,
        }
    }

    /// SIGTERM, then the exit status (the server must stop by itself).
    fn terminate(mut self) -> ExitStatus {
        let pid = self.child.id().to_string();
        assert!(
            Command::new("kill")
                .args(["-TERM", &pid])
                .status()
                .expect("kill runs")
                .success()
        );
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(Instant::now() < deadline, "drover serve ignored SIGTERM");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One HTTP/1.1 exchange on a fresh connection; returns (status, body).
fn http(
    addr: &str,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> (u16, String) {
    let mut stream = TcpStream::connect(addr).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(120)))
        .unwrap();
    let mut request = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    if !body.is_empty() {
        request += "Content-Type: application/json\r\n";
    }
    for (name, value) in headers {
        request += &format!("{name}: {value}\r\n");
    }
    request += "\r\n";
    request += body;
    stream.write_all(request.as_bytes()).expect("send");
    let mut response = Vec::new();
    stream.read_to_end(&mut response).expect("read");
    let response = String::from_utf8_lossy(&response).into_owned();
    let (head, body) = response
        .split_once("\r\n\r\n")
        .unwrap_or_else(|| panic!("not HTTP: {response:?}"));
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("bad status line: {head}"));
    (status, body.to_owned())
}

/// `vllm:num_requests_running` from `/metrics`.
fn running(addr: &str) -> Option<u64> {
    let (status, body) = http(addr, "GET", "/metrics", &[], "");
    assert_eq!(status, 200, "{body}");
    body.lines()
        .find(|l| l.starts_with("vllm:num_requests_running"))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse::<f64>().ok())
        .map(|v| v as u64)
}

#[test]
fn official_openai_client_against_drover_serve() {
    let python = python();
    let serve = Serve::start(&[]);
    let out = Command::new(python)
        .arg(repo().join("tests/py/engine_openai.py"))
        .arg(&serve.url)
        .env("DROVER_ENGINE_CTX", CTX.to_string())
        .output()
        .expect("python runs");
    let report = format!(
        "stdout:\n{}\nstderr:\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "engine_openai.py failed\n{report}");
    for check in [
        "chat answer",
        "streamed answer",
        "json_schema answer",
        "prompt over the context",
        "8 concurrent",
    ] {
        assert!(
            report.contains(&format!("ok: {check}")),
            "missing check {check:?}\n{report}"
        );
    }
    let status = serve.terminate();
    assert_eq!(
        status.code(),
        Some(0),
        "SIGTERM must stop drover serve cleanly"
    );
}

#[test]
fn eight_concurrent_requests_decode_in_shared_batches() {
    let serve = Serve::start(&[]);
    let models = http(&serve.addr, "GET", "/v1/models", &[], "").1;
    let model: serde_json::Value = serde_json::from_str(&models).expect("models JSON");
    let model = model["data"][0]["id"]
        .as_str()
        .expect("model id")
        .to_owned();
    assert_eq!(running(&serve.addr), Some(0));

    // Poll the running gauge while the requests are in flight.
    let done = Arc::new(AtomicBool::new(false));
    let peak = Arc::new(AtomicU64::new(0));
    let poller = {
        let (addr, done, peak) = (serve.addr.clone(), done.clone(), peak.clone());
        std::thread::spawn(move || {
            while !done.load(Ordering::SeqCst) {
                if let Some(n) = running(&addr) {
                    peak.fetch_max(n, Ordering::SeqCst);
                }
                std::thread::sleep(Duration::from_millis(10));
            }
        })
    };
    let topics = [
        "the sea", "a cat", "the moon", "autumn", "a city", "a forest", "the wind", "a river",
    ];
    let answers: Vec<(String, String)> = std::thread::scope(|scope| {
        let handles: Vec<_> = topics
            .iter()
            .map(|topic| {
                let body = serde_json::json!({
                    "model": model,
                    "messages": [{"role": "user", "content": format!("Write one sentence about {topic}.")}],
                    "max_tokens": 32,
                    "temperature": 0,
                    "ignore_eos": true,
                })
                .to_string();
                let addr = serve.addr.clone();
                scope.spawn(move || {
                    let (status, body) = http(&addr, "POST", "/v1/chat/completions", &[], &body);
                    assert_eq!(status, 200, "{body}");
                    let json: serde_json::Value = serde_json::from_str(&body).expect("JSON");
                    assert_eq!(json["usage"]["completion_tokens"], 32, "{json}");
                    (topic.to_string(), json["choices"][0]["message"]["content"].as_str().unwrap_or_default().to_owned())
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("request thread"))
            .collect()
    });
    done.store(true, Ordering::SeqCst);
    poller.join().unwrap();
    for (topic, text) in &answers {
        assert!(!text.trim().is_empty(), "no text about {topic}");
    }
    // 8 requests of 32 tokens each take hundreds of decode steps if served one at a time; the
    // gauge shows them sharing the running batch instead.
    let peak = peak.load(Ordering::SeqCst);
    assert!(
        peak > 1,
        "never saw more than {peak} request running at once"
    );
    assert_eq!(
        running(&serve.addr),
        Some(0),
        "all sequences are freed afterwards"
    );
}

#[test]
fn api_key_guards_the_v1_routes() {
    let serve = Serve::start(&["--api-key", "sesame"]);
    assert_eq!(http(&serve.addr, "GET", "/v1/models", &[], "").0, 401);
    assert_eq!(
        http(
            &serve.addr,
            "GET",
            "/v1/models",
            &[("Authorization", "Bearer sesame")],
            ""
        )
        .0,
        200
    );
    assert_eq!(http(&serve.addr, "GET", "/health", &[], "").0, 200);
}

#[test]
fn loading_errors_name_the_path_and_the_fix() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("missing.gguf");
    let not_gguf = dir.path().join("notes.gguf");
    std::fs::write(&not_gguf, "just text").unwrap();
    for (path, needle) in [
        (&missing, "cannot read model file"),
        (&not_gguf, "is not a GGUF model file"),
    ] {
        let out = Command::new(env!("CARGO_BIN_EXE_drover"))
            .args(["serve", "--port", "0", "--model"])
            .arg(path)
            .stdin(Stdio::null())
            .output()
            .expect("drover runs");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{stderr}");
        assert!(
            stderr.contains(needle) && stderr.contains(&path.display().to_string()),
            "{stderr}"
        );
    }
    // No --model, no DROVER_MODEL and an empty cache: the message names the fetch script.
    let out = Command::new(env!("CARGO_BIN_EXE_drover"))
        .args(["serve", "--port", "0"])
        .env_remove("DROVER_MODEL")
        .env("DROVER_CACHE_DIR", dir.path())
        .stdin(Stdio::null())
        .output()
        .expect("drover runs");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("scripts/fetch-model.sh"), "{stderr}");
}
