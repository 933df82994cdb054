//! Starting the real `drover sim` binary and talking raw HTTP/1.1 to it (no client library, so
//! that the bytes on the wire are what the test sees).
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// A running `drover sim`; killed when dropped.
pub struct SimProcess {
    child: Child,
    /// `http://127.0.0.1:PORT` per instance, from the banner lines.
    pub urls: Vec<String>,
}

/// Starts `drover sim ARGS` and waits for one banner line per instance (`instances` of them).
pub fn start(args: &[&str], instances: usize) -> SimProcess {
    let mut child = Command::new(env!("CARGO_BIN_EXE_drover"))
        .arg("sim")
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("drover starts");
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
    let mut urls = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(20);
    while urls.len() < instances {
        let left = deadline.saturating_duration_since(Instant::now());
        let line = match rx.recv_timeout(left) {
            Ok(line) => line,
            Err(_) => {
                let _ = child.kill();
                let mut err = String::new();
                let _ = child.stderr.take().unwrap().read_to_string(&mut err);
                panic!(
                    "drover sim printed {} of {instances} banner lines; stderr:\n{err}",
                    urls.len()
                );
            }
        };
        let prefix = format!("drover sim: instance {} listening on ", urls.len());
        let rest = line
            .strip_prefix(&prefix)
            .unwrap_or_else(|| panic!("unexpected banner line {line:?}"));
        let (url, preset) = rest.split_once(' ').expect("url and preset");
        assert!(
            preset.starts_with("(preset ") && preset.ends_with(')'),
            "{line:?}"
        );
        urls.push(url.to_string());
    }
    SimProcess { child, urls }
}

impl SimProcess {
    /// Sends SIGTERM and waits for the exit status.
    pub fn terminate(mut self, within: Duration) -> ExitStatus {
        let pid = self.child.id().to_string();
        let sent = Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .expect("kill runs");
        assert!(sent.success());
        let deadline = Instant::now() + within;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "drover sim did not exit within {within:?} of SIGTERM"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for SimProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs `drover sim ARGS` to completion (for flags that make it exit): (code, stderr).
pub fn run_to_exit(args: &[&str]) -> (i32, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_drover"))
        .arg("sim")
        .args(args)
        .output()
        .expect("drover runs");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// A raw HTTP answer.
#[derive(Debug)]
pub struct Answer {
    pub status: u16,
    /// Header lines, lower-cased names.
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl Answer {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

/// One HTTP/1.1 request on a fresh connection (`Connection: close`); `Err` on a transport error
/// or when no answer comes within `timeout`.
pub fn http(
    url: &str,
    method: &str,
    path: &str,
    body: Option<&str>,
    extra: &[(&str, &str)],
    timeout: Duration,
) -> std::io::Result<Answer> {
    let addr = url.strip_prefix("http://").expect("http url");
    let mut stream = TcpStream::connect(addr)?;
    stream.set_read_timeout(Some(timeout))?;
    let body = body.unwrap_or("");
    let mut request = format!(
        "{method} {path} HTTP/1.1\r\nhost: {addr}\r\nconnection: close\r\ncontent-type: application/json\r\ncontent-length: {}\r\n",
        body.len()
    );
    for (name, value) in extra {
        request.push_str(&format!("{name}: {value}\r\n"));
    }
    request.push_str("\r\n");
    request.push_str(body);
    stream.write_all(request.as_bytes())?;
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw)?;
    let raw = String::from_utf8_lossy(&raw).into_owned();
    let (head, rest) = raw
        .split_once("\r\n\r\n")
        .ok_or_else(|| std::io::Error::other(format!("no HTTP head in {raw:?}")))?;
    let mut lines = head.lines();
    let status = lines
        .next()
        .and_then(|l| l.split(' ').nth(1))
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    let chunked = headers
        .iter()
        .any(|(n, v)| n == "transfer-encoding" && v.contains("chunked"));
    let body = if chunked {
        dechunk(rest)
    } else {
        rest.to_string()
    };
    Ok(Answer {
        status,
        headers,
        body,
    })
}

fn dechunk(mut rest: &str) -> String {
    let mut out = String::new();
    while let Some((size, after)) = rest.split_once("\r\n") {
        let Ok(n) = usize::from_str_radix(size.trim(), 16) else {
            break;
        };
        if n == 0 || after.len() < n {
            break;
        }
        out.push_str(&after[..n]);
        rest = after[n..].trim_start_matches("\r\n");
    }
    out
}

/// `sim-` + the first 8 hex digits of xxh3-64 of `text`: the label of its answer.
pub fn digest(text: &str) -> String {
    format!(
        "sim-{}",
        &format!("{:016x}", xxhash_rust::xxh3::xxh3_64(text.as_bytes()))[..8]
    )
}
