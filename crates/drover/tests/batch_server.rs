//! End-to-end tests of `drover batch-server` against in-process `drover sim` fleets (loopback,
//! port 0): the official `openai` client through the whole Batch API flow; kill -9 mid-batch and
//! restart, exactly once; two batches sharing the fleet.

#[path = "common/batch_proc.rs"]
mod batch_proc;
mod common;
#[path = "common/python.rs"]
mod python;

use std::collections::HashMap;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use batch_proc::{Api, counts, is_terminal, requests};
use common::fleet::{SimFleet, slow_preset};
use common::repo;
use serde_json::Value;

/// The project venv's Python with the `openai` client, or a failure saying how to get it.
fn python() -> PathBuf {
    python::python_with(&["openai"])
}

/// Output lines of a JSONL text.
fn lines(text: &str) -> Vec<Value> {
    text.lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("bad result line {l:?}: {e}")))
        .collect()
}

/// The result lines of a finished batch: output file then error file.
fn results(api: &Api, batch: &Value) -> Vec<Value> {
    let mut out = Vec::new();
    for key in ["output_file_id", "error_file_id"] {
        if let Some(id) = batch[key].as_str() {
            out.extend(lines(&api.content(id)));
        }
    }
    out
}

/// Sum of `vllm:request_success_total` over a fleet, and whether anything is running or waiting.
fn fleet_metrics(api: &Api, fleet: &SimFleet) -> (f64, f64) {
    let (mut done, mut busy) = (0.0, 0.0);
    for url in fleet.fleet.as_ref().unwrap().urls() {
        for line in api.get_text(&format!("{url}/metrics")).lines() {
            let value = || {
                line.rsplit(' ')
                    .next()
                    .and_then(|v| v.parse::<f64>().ok())
                    .unwrap_or(0.0)
            };
            if line.starts_with("vllm:request_success_total{") {
                done += value();
            } else if line.starts_with("vllm:num_requests_running{")
                || line.starts_with("vllm:num_requests_waiting{")
            {
                busy += value();
            }
        }
    }
    (done, busy)
}

#[test]
fn official_openai_client_runs_the_whole_flow() {
    let python = python();
    let mut config = slow_preset(1.0);
    // Small enough that a ~3000-token prompt is refused (400), as vLLM refuses it.
    config.params.max_model_len = 2048;
    let fleet = SimFleet::start(2, config);
    let dir = tempfile::tempdir().unwrap();
    // A small per-backend limit keeps most of the large batch unsent when it is cancelled.
    let server = batch_proc::start(
        &fleet.backends(),
        dir.path(),
        &["--api-key", "sk-e2e-key", "--max-per-backend", "64"],
    );
    let mut child = Command::new(python)
        .arg(repo().join("tests/py/batch_openai.py"))
        .args([server.url.as_str(), "sk-e2e-key"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("python runs");
    let deadline = Instant::now() + Duration::from_secs(300);
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let out = child.wait_with_output().unwrap();
    let report = format!(
        "stdout:\n{}\nstderr:\n{}\nserver stderr:\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
        server.stderr()
    );
    assert!(
        out.status.success(),
        "tests/py/batch_openai.py failed\n{report}"
    );
    assert!(report.contains("all checks passed"), "{report}");
    eprint!("{}", String::from_utf8_lossy(&out.stdout));
    let status = server.terminate(Duration::from_secs(30));
    assert_eq!(status.code(), Some(0), "SIGTERM stops the server cleanly");
}

#[test]
fn kill_9_mid_batch_then_restart_completes_exactly_once() {
    const N: usize = 2000;
    let fleet = SimFleet::start(2, slow_preset(1.0));
    let dir = tempfile::tempdir().unwrap();
    let mut server = batch_proc::start(&fleet.backends(), dir.path(), &[]);
    let api = Api::new(&server.url, None);
    let (status, file) = api.upload("big.jsonl", &requests("k", N, 64));
    assert_eq!(status, 200, "{file}");
    let (status, batch) = api.create(file["id"].as_str().unwrap());
    assert_eq!(status, 200, "{batch}");
    let id = batch["id"].as_str().unwrap().to_string();

    // Kill while it is well under way but not done.
    let running = api.wait(
        &id,
        Duration::from_secs(120),
        |_| {},
        |b| is_terminal(b) || counts(b).1 >= (N as u64) * 2 / 5,
    );
    assert_eq!(
        running["status"], "in_progress",
        "the batch must still run when it is killed: {running}"
    );
    server.kill9();
    let done_at_kill = counts(&running).1;

    // What the journal holds is what a restart must not send again.
    let journal = dir.path().join("batches").join(&id).join("results.jsonl");
    let text = std::fs::read(&journal).unwrap();
    let journaled = text.iter().filter(|&&b| b == b'\n').count();
    assert!(
        journaled as u64 >= done_at_kill,
        "{journaled} lines in the journal, {done_at_kill} reported before the kill"
    );
    assert!(journaled < N, "the kill must land mid-batch");

    // Let the fleet finish (or drop) what the killed server had sent, then count from there.
    let settle = Instant::now() + Duration::from_secs(60);
    let before = loop {
        let (done, busy) = fleet_metrics(&api, &fleet);
        if busy == 0.0 {
            break done;
        }
        assert!(
            Instant::now() < settle,
            "the fleet never drained after the kill"
        );
        std::thread::sleep(Duration::from_millis(100));
    };

    let server = batch_proc::start(&fleet.backends(), dir.path(), &[]);
    let api = Api::new(&server.url, None);
    let done = api.wait(&id, Duration::from_secs(180), |_| {}, is_terminal);
    assert_eq!(
        done["status"],
        "completed",
        "{done}\nserver stderr:\n{}",
        server.stderr()
    );
    assert_eq!(counts(&done), (N as u64, N as u64, 0), "{done}");

    let results = results(&api, &done);
    let mut seen: HashMap<String, usize> = HashMap::new();
    for r in &results {
        assert!(r["error"].is_null(), "{r}");
        *seen
            .entry(r["custom_id"].as_str().unwrap().to_string())
            .or_default() += 1;
    }
    let twice: Vec<_> = seen.iter().filter(|(_, n)| **n > 1).collect();
    assert!(
        twice.is_empty(),
        "custom_ids with more than one line: {twice:?}"
    );
    let missing: Vec<String> = (0..N)
        .map(|i| format!("k{i}"))
        .filter(|k| !seen.contains_key(k))
        .collect();
    assert!(missing.is_empty(), "custom_ids without a line: {missing:?}");
    assert_eq!(results.len(), N);

    let (after, _) = fleet_metrics(&api, &fleet);
    let sent_after = (after - before) as usize;
    eprintln!(
        "killed at {done_at_kill} reported, {journaled} journaled; the restart sent {sent_after} of {N}"
    );
    assert!(
        sent_after <= N - journaled,
        "the restart sent {sent_after} requests; only the {} lines without a result needed sending",
        N - journaled
    );
    assert!(
        !journal.exists(),
        "the journal is removed once the output and error files hold every line"
    );
    assert_eq!(server.terminate(Duration::from_secs(30)).code(), Some(0));
}

#[test]
fn two_batches_share_the_fleet() {
    const N: usize = 1200;
    let fleet = SimFleet::start(2, slow_preset(1.0));
    let dir = tempfile::tempdir().unwrap();
    // A per-backend limit well under the batches' size: tasks wait for dispatch, and the order
    // they are handed over in is what decides who progresses.
    let server = batch_proc::start(&fleet.backends(), dir.path(), &["--max-per-backend", "32"]);
    let api = Api::new(&server.url, None);
    let mut ids = Vec::new();
    let files: Vec<String> = ["a", "b"]
        .iter()
        .map(|p| {
            let (status, f) = api.upload(&format!("{p}.jsonl"), &requests(p, N, 32));
            assert_eq!(status, 200, "{f}");
            f["id"].as_str().unwrap().to_string()
        })
        .collect();
    for f in &files {
        let (status, b) = api.create(f);
        assert_eq!(status, 200, "{b}");
        ids.push(b["id"].as_str().unwrap().to_string());
    }

    // Poll both; note whether they were ever seen progressing together.
    let mut together = false;
    let deadline = Instant::now() + Duration::from_secs(180);
    let done = loop {
        let (a, b) = (api.batch(&ids[0]), api.batch(&ids[1]));
        let progressing =
            |x: &Value| x["status"] == "in_progress" && counts(x).1 > 0 && counts(x).1 < N as u64;
        together |= progressing(&a) && progressing(&b);
        if is_terminal(&a) && is_terminal(&b) {
            break [a, b];
        }
        assert!(
            Instant::now() < deadline,
            "batches did not finish: {a}\n{b}"
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    for b in &done {
        assert_eq!(b["status"], "completed", "{b}");
        assert_eq!(counts(b), (N as u64, N as u64, 0), "{b}");
    }
    assert!(
        together,
        "the two batches were never seen progressing at the same time"
    );

    // Completion timelines from the result lines: when one batch finished, the other was well on.
    let times: Vec<Vec<u64>> = done
        .iter()
        .map(|b| {
            let mut t: Vec<u64> = results(&api, b)
                .iter()
                .map(|r| r["drover"]["finished_at"].as_u64().unwrap())
                .collect();
            t.sort_unstable();
            assert_eq!(t.len(), N);
            t
        })
        .collect();
    let (first, other) = if times[0][N - 1] <= times[1][N - 1] {
        (&times[0], &times[1])
    } else {
        (&times[1], &times[0])
    };
    let first_end = first[N - 1];
    let other_then = other.iter().filter(|&&t| t <= first_end).count();
    eprintln!("when the first batch finished, the other had {other_then} of {N} results");
    assert!(
        other_then * 2 >= N,
        "when the first batch finished, the other had only {other_then} of {N} results: the fleet was not shared"
    );
    let first_quarter = first[N / 4];
    assert!(
        other[0] <= first_quarter,
        "the second batch got its first result only after the first was a quarter done: it waited its turn"
    );
    assert_eq!(server.terminate(Duration::from_secs(30)).code(), Some(0));
}
