//! Helpers for the observation tests: an in-process simulated fleet, a plain HTTP GET, the
//! official Prometheus text parser (Python `prometheus_client`), and reading a child's stderr
//! while it runs.
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use drover_sim::{Fleet, SimConfig};

/// Simulated instances on 127.0.0.1:0, served by their own runtime; stopped on drop.
pub struct Sims {
    rt: tokio::runtime::Runtime,
    fleet: Option<Fleet>,
    /// Their ports.
    pub ports: Vec<u16>,
}

impl Sims {
    /// One instance per config.
    pub fn start(configs: Vec<SimConfig>) -> Sims {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let fleet = rt
            .block_on(Fleet::start("127.0.0.1", &vec![0; configs.len()], configs))
            .expect("sim fleet starts");
        let ports = fleet.addrs().iter().map(|a| a.port()).collect();
        Sims {
            rt,
            fleet: Some(fleet),
            ports,
        }
    }

    /// `p1,p2,…` for `-b`.
    pub fn list(&self) -> String {
        self.ports
            .iter()
            .map(u16::to_string)
            .collect::<Vec<_>>()
            .join(",")
    }
}

impl Drop for Sims {
    fn drop(&mut self) {
        if let Some(f) = self.fleet.take() {
            self.rt.block_on(f.shutdown());
        }
    }
}

/// A simulated instance of the default engine model, `scale` times real time.
pub fn sim(scale: f64) -> SimConfig {
    let mut c = SimConfig::preset(drover_sim::DEFAULT_PRESET).unwrap();
    c.time_scale = scale;
    c
}

/// `GET path` over HTTP/1.1 (`Connection: close`): status code, headers (lower-cased names), body.
pub fn http_get(addr: &str, path: &str) -> (u16, Vec<(String, String)>, String) {
    let mut s = TcpStream::connect(addr).unwrap_or_else(|e| panic!("connect {addr}: {e}"));
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut raw = String::new();
    s.read_to_string(&mut raw).unwrap();
    let (head, body) = raw
        .split_once("\r\n\r\n")
        .unwrap_or_else(|| panic!("not HTTP: {raw:?}"));
    let mut lines = head.lines();
    let status = lines
        .next()
        .unwrap()
        .split(' ')
        .nth(1)
        .unwrap()
        .parse()
        .unwrap();
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect::<Vec<_>>();
    let chunked = headers
        .iter()
        .any(|(k, v)| k == "transfer-encoding" && v.contains("chunked"));
    (
        status,
        headers,
        if chunked {
            dechunk(body)
        } else {
            body.to_string()
        },
    )
}

fn dechunk(mut s: &str) -> String {
    let mut out = String::new();
    loop {
        let (size, rest) = s.split_once("\r\n").unwrap();
        let n = usize::from_str_radix(size.trim(), 16).unwrap();
        if n == 0 {
            return out;
        }
        out.push_str(&rest[..n]);
        s = &rest[n + 2..];
    }
}

/// The Python with the test peers (`scripts/setup.sh --test` makes `.venv`; `DROVER_PYTHON` overrides).
pub fn python() -> PathBuf {
    let p = std::env::var_os("DROVER_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| super::common::repo().join(".venv/bin/python"));
    assert!(
        p.exists(),
        "{} is missing: install the test tools with `scripts/setup.sh --test`",
        p.display()
    );
    p
}

/// Parses an exposition with `prometheus_client.parser` (the reference parser): a JSON list of
/// `{name, type, samples: [{name, labels, value}]}`. Panics with the parser's error.
pub fn parse_prometheus(text: &str) -> serde_json::Value {
    const SCRIPT: &str = r#"
import json, sys
from prometheus_client.parser import text_string_to_metric_families
out = []
for f in text_string_to_metric_families(sys.stdin.read()):
    out.append({"name": f.name, "type": f.type,
                "samples": [{"name": s.name, "labels": s.labels, "value": s.value} for s in f.samples]})
print(json.dumps(out))
"#;
    let mut child = Command::new(python())
        .args(["-c", SCRIPT])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run python");
    // Read both pipes while it runs: a full pipe would block it.
    let drain = |mut r: Box<dyn Read + Send>| {
        std::thread::spawn(move || {
            let mut v = Vec::new();
            let _ = r.read_to_end(&mut v);
            v
        })
    };
    let out = drain(Box::new(child.stdout.take().unwrap()));
    let err = drain(Box::new(child.stderr.take().unwrap()));
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(st) = child.try_wait().unwrap() {
            break st;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("the Prometheus parser did not finish within 30 s");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let (out, err) = (out.join().unwrap(), err.join().unwrap());
    assert!(
        status.success(),
        "prometheus_client rejected the exposition:\n{}\n---\n{text}",
        String::from_utf8_lossy(&err)
    );
    serde_json::from_slice(&out).unwrap()
}

/// Value of the sample `name` whose labels include every `(key, value)` given.
pub fn sample(families: &serde_json::Value, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    families
        .as_array()?
        .iter()
        .flat_map(|f| f["samples"].as_array().unwrap())
        .find_map(|s| {
            (s["name"] == name && labels.iter().all(|(k, v)| s["labels"][*k] == *v))
                .then(|| s["value"].as_f64().unwrap())
        })
}

/// Every sample called `name`.
pub fn samples<'a>(families: &'a serde_json::Value, name: &'a str) -> Vec<&'a serde_json::Value> {
    families
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|f| f["samples"].as_array().unwrap())
        .filter(|s| s["name"] == name)
        .collect()
}

/// A running child whose stderr lines arrive on a channel (and are kept for messages).
pub struct Watched {
    pub child: Child,
    lines: mpsc::Receiver<String>,
    pub seen: Vec<String>,
}

impl Watched {
    pub fn spawn(cmd: &mut Command) -> Watched {
        cmd.stdout(Stdio::null()).stderr(Stdio::piped());
        let mut child = cmd.spawn().expect("spawn drover");
        let stderr = child.stderr.take().unwrap();
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Watched {
            child,
            lines,
            seen: Vec::new(),
        }
    }

    /// Waits for a stderr line containing `needle`; panics after `limit`.
    pub fn wait_for(&mut self, needle: &str, limit: Duration) -> String {
        let deadline = Instant::now() + limit;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(l) => {
                    self.seen.push(l.clone());
                    if l.contains(needle) {
                        return l;
                    }
                }
                Err(_) => {
                    let _ = self.child.kill();
                    panic!(
                        "no stderr line with {needle:?} within {limit:?}; stderr so far:\n{}",
                        self.seen.join("\n")
                    );
                }
            }
        }
    }

    /// Waits for the exit; kills and panics after `limit`. Returns the code and all stderr.
    pub fn finish(mut self, limit: Duration) -> (i32, String) {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                while let Ok(l) = self.lines.recv_timeout(Duration::from_millis(200)) {
                    self.seen.push(l);
                }
                return (status.code().unwrap_or(-1), self.seen.join("\n"));
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                panic!(
                    "drover did not exit within {limit:?}; stderr:\n{}",
                    self.seen.join("\n")
                );
            }
            while let Ok(l) = self.lines.try_recv() {
                self.seen.push(l);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Watched {
    fn drop(&mut self) {
        // A failed assertion must not leave the process behind.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
