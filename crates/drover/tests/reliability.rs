//! Never lose a task: kill -9 and resume, faulty fleets, a fleet that goes away and comes
//! back, bad input, Ctrl-C. Every test checks the output holds each task exactly once.

mod common;

use std::collections::HashMap;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use common::fleet::{SimFleet, slow_preset};
use common::{code, drover, read_output, run_for, stderr, write_lines};
use drover_sim::SimConfig;
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use serde_json::Value;

fn tasks(n: usize, max_tokens: u32) -> Vec<String> {
    (0..n)
        .map(|i| {
            format!(
                r#"{{"id":"task-{i}","prompt":"question number {i}","max_tokens":{max_tokens}}}"#
            )
        })
        .collect()
}

/// Each custom_id → how many lines it has, and whether all of them are successes.
fn tally(out: &[Value]) -> (HashMap<String, usize>, usize) {
    let mut seen = HashMap::new();
    let mut failed = 0;
    for l in out {
        *seen
            .entry(l["custom_id"].as_str().unwrap().to_string())
            .or_insert(0) += 1;
        if !l["error"].is_null() {
            failed += 1;
        }
    }
    (seen, failed)
}

fn assert_exactly_once(out: &[Value], n: usize) {
    let (seen, failed) = tally(out);
    let dup: Vec<_> = seen
        .iter()
        .filter(|(_, c)| **c > 1)
        .map(|(k, c)| format!("{k}×{c}"))
        .collect();
    assert!(dup.is_empty(), "duplicated: {dup:?}");
    assert_eq!(seen.len(), n, "every task has a line");
    assert_eq!(failed, 0, "all successful");
    for i in 0..n {
        assert!(seen.contains_key(&format!("task-{i}")), "task-{i} missing");
    }
}

fn spawn(cmd: &mut std::process::Command) -> Child {
    cmd.stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn drover")
}

fn wait_for(child: &mut Child, limit: Duration) -> std::process::ExitStatus {
    let start = Instant::now();
    loop {
        if let Some(s) = child.try_wait().unwrap() {
            return s;
        }
        if start.elapsed() > limit {
            let _ = child.kill();
            panic!("drover did not exit within {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// SIGKILL at 20 moments of a 5,000-task job, resumed after each: exactly once, all successful.
#[test]
fn sigkill_at_random_moments_then_resume_is_exactly_once() {
    let fleet = SimFleet::start(2, slow_preset(2.0));
    let dir = tempfile::tempdir().unwrap();
    let input = write_lines(dir.path(), "t.jsonl", &tasks(5000, 32));
    let out = dir.path().join("out.jsonl");
    let mut rng = 0x2545F4914F6CDD1Du64;
    let mut killed_mid_job = 0;
    for round in 0..20 {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        let after = Duration::from_millis(250 + rng % 600);
        let mut cmd = drover();
        cmd.arg("run").arg(&input).args([
            "-o",
            out.to_str().unwrap(),
            "-b",
            &fleet.backends(),
            "-q",
        ]);
        if round > 0 {
            cmd.arg("--resume");
        }
        let mut child = spawn(&mut cmd);
        std::thread::sleep(after);
        if child.try_wait().unwrap().is_none() {
            kill(Pid::from_raw(child.id() as i32), Signal::SIGKILL).unwrap();
            killed_mid_job += 1;
        }
        let _ = child.wait();
    }
    assert!(
        killed_mid_job >= 15,
        "the kills must land mid-job (only {killed_mid_job} did): make the job longer"
    );
    let o = run_for(
        drover().arg("run").arg(&input).args([
            "-o",
            out.to_str().unwrap(),
            "-b",
            &fleet.backends(),
            "--resume",
            "-q",
        ]),
        Duration::from_secs(120),
    );
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert_exactly_once(&read_output(&out), 5000);
}

/// 10% 500s, 5% 429s with Retry-After, 1% hangs, and one instance killed mid-run and revived.
#[test]
fn faulty_fleet_with_a_killed_instance_loses_nothing() {
    let mut config = slow_preset(0.5);
    config.faults.fail_rate = 0.10;
    config.faults.rate_limit_rate = 0.05;
    config.faults.retry_after = Duration::from_secs(1);
    config.faults.hang_rate = 0.01;
    let fleet = SimFleet::start(3, config);
    let dir = tempfile::tempdir().unwrap();
    let input = write_lines(dir.path(), "t.jsonl", &tasks(1500, 24));
    let out = dir.path().join("out.jsonl");
    let summary = dir.path().join("s.json");
    let mut child = spawn(drover().arg("run").arg(&input).args([
        "-o",
        out.to_str().unwrap(),
        "-b",
        &fleet.backends(),
        "--timeout",
        "3s",
        "--attempts",
        "8",
        "--summary",
        summary.to_str().unwrap(),
        "-q",
    ]));
    std::thread::sleep(Duration::from_millis(1500));
    fleet.kill(1);
    std::thread::sleep(Duration::from_secs(3));
    fleet.revive(1);
    let status = wait_for(&mut child, Duration::from_secs(120));
    let mut err = String::new();
    std::io::Read::read_to_string(child.stderr.as_mut().unwrap(), &mut err).unwrap();
    assert_eq!(status.code(), Some(0), "{err}");
    assert_exactly_once(&read_output(&out), 1500);
    let s: Value = serde_json::from_str(&std::fs::read_to_string(&summary).unwrap()).unwrap();
    assert!(
        s["retries"].as_u64().unwrap() > 100,
        "faults were met and retried: {}",
        s["retries"]
    );
    let ejections: u64 = s["backends"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["ejections"].as_u64().unwrap())
        .sum();
    assert!(ejections >= 1, "the killed instance was ejected");
}

/// Every backend down for 20 s, then back: dispatch waits and the job completes.
#[test]
fn whole_fleet_down_for_20s_then_back() {
    let fleet = SimFleet::start(2, slow_preset(1.0));
    let dir = tempfile::tempdir().unwrap();
    let input = write_lines(dir.path(), "t.jsonl", &tasks(3000, 32));
    let out = dir.path().join("out.jsonl");
    let mut child = spawn(drover().arg("run").arg(&input).args([
        "-o",
        out.to_str().unwrap(),
        "-b",
        &fleet.backends(),
    ]));
    std::thread::sleep(Duration::from_millis(800));
    fleet.kill(0);
    fleet.kill(1);
    let down_at = Instant::now();
    std::thread::sleep(Duration::from_secs(20));
    fleet.revive(0);
    fleet.revive(1);
    let status = wait_for(&mut child, Duration::from_secs(120));
    let mut err = String::new();
    std::io::Read::read_to_string(child.stderr.as_mut().unwrap(), &mut err).unwrap();
    assert_eq!(status.code(), Some(0), "{err}");
    assert!(down_at.elapsed() >= Duration::from_secs(20));
    assert!(
        err.contains("every backend is down"),
        "the wait is announced: {err}"
    );
    assert!(err.contains("dispatch resumes"), "{err}");
    assert_exactly_once(&read_output(&out), 3000);
}

/// With --max-wait, a fleet that never comes back ends the job with failed records, not a hang.
#[test]
fn max_wait_fails_the_rest_cleanly() {
    let fleet = SimFleet::start(1, slow_preset(1.0));
    let dir = tempfile::tempdir().unwrap();
    let input = write_lines(dir.path(), "t.jsonl", &tasks(4000, 64));
    let out = dir.path().join("out.jsonl");
    let mut child = spawn(drover().arg("run").arg(&input).args([
        "-o",
        out.to_str().unwrap(),
        "-b",
        &fleet.backends(),
        "--max-wait",
        "2s",
    ]));
    std::thread::sleep(Duration::from_millis(700));
    fleet.kill(0);
    let status = wait_for(&mut child, Duration::from_secs(60));
    assert_eq!(status.code(), Some(1));
    let lines = read_output(&out);
    let (seen, failed) = tally(&lines);
    assert_eq!(seen.len(), 4000, "every task has a line");
    assert!(seen.values().all(|c| *c == 1));
    assert!(failed > 0);
    let no_backend = lines
        .iter()
        .filter(|l| l["error"]["code"] == "no_backend")
        .count();
    assert!(no_backend > 0);
    let msg = lines
        .iter()
        .find(|l| l["error"]["code"] == "no_backend")
        .unwrap()["error"]["message"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(
        msg.contains("--max-wait") && msg.contains("--retry-failed"),
        "{msg}"
    );
}

/// A corpus of malformed lines mixed with good ones.
#[test]
fn malformed_corpus_gets_a_record_per_bad_line() {
    let fleet = SimFleet::start(1, SimConfig::preset("instant").unwrap());
    let dir = tempfile::tempdir().unwrap();
    let mut bytes: Vec<u8> = Vec::new();
    let mut bad_lines = Vec::new();
    let mut good = 0;
    let bad: Vec<Vec<u8>> = vec![
        b"{\"id\":\"x\",\"prompt\":\"unterminated".to_vec(),
        b"not json at all".to_vec(),
        b"[\"an\",\"array\"]".to_vec(),
        b"42".to_vec(),
        b"{\"id\":\"m\"}".to_vec(),
        b"{\"id\":\"w\",\"prompt\":[\"list\"]}".to_vec(),
        b"{\"id\":\"v\",\"messages\":\"hi\"}".to_vec(),
        b"{\"id\":\"r\",\"messages\":[{\"content\":\"no role\"}]}".to_vec(),
        b"{\"custom_id\":\"u\",\"method\":\"POST\",\"url\":\"/v1/nope\",\"body\":{}}".to_vec(),
        b"{\"id\":\"\xff\xfe\",\"prompt\":\"bad utf-8\"}".to_vec(),
        format!("{{\"id\":\"long\",\"prompt\":\"{}\"}}", "x".repeat(5000)).into_bytes(),
    ];
    let mut line = 0;
    for (k, b) in bad.iter().enumerate() {
        for _ in 0..3 {
            line += 1;
            bytes
                .extend(format!("{{\"id\":\"good-{line}\",\"prompt\":\"fine {line}\"}}\n").bytes());
            good += 1;
        }
        bytes.extend(b"\n   \n");
        line += 2;
        line += 1;
        bytes.extend(b);
        bytes.push(b'\n');
        bad_lines.push((line, k));
    }
    let input = dir.path().join("t.jsonl");
    std::fs::write(&input, &bytes).unwrap();
    let out = dir.path().join("out.jsonl");
    let o = run_for(
        drover().arg("run").arg(&input).args([
            "-o",
            out.to_str().unwrap(),
            "-b",
            &fleet.backends(),
            "--max-line-bytes",
            "4096",
            "-q",
        ]),
        Duration::from_secs(60),
    );
    assert_eq!(code(&o), 1, "{}", stderr(&o));
    let lines = read_output(&out);
    assert_eq!(
        lines.len(),
        good + bad.len(),
        "one record per non-empty line"
    );
    for (n, k) in &bad_lines {
        let rec = lines
            .iter()
            .find(|l| l["drover"]["line"] == *n)
            .unwrap_or_else(|| panic!("no record for bad line {n}"));
        assert_eq!(
            rec["error"]["code"], "invalid_input",
            "line {n} (case {k}): {rec}"
        );
        let msg = rec["error"]["message"].as_str().unwrap();
        assert!(msg.starts_with(&format!("line {n}: ")), "{msg}");
    }
    let ok = lines.iter().filter(|l| l["error"].is_null()).count();
    assert_eq!(ok, good);
    let long = lines
        .iter()
        .find(|l| {
            l["error"]["message"]
                .as_str()
                .is_some_and(|m| m.contains("--max-line-bytes"))
        })
        .unwrap();
    assert!(
        long["error"]["message"]
            .as_str()
            .unwrap()
            .contains("over --max-line-bytes 4096")
    );
    // --strict: the same input is refused before anything is sent.
    let strict_out = dir.path().join("strict.jsonl");
    let o = run_for(
        drover().arg("run").arg(&input).args([
            "-o",
            strict_out.to_str().unwrap(),
            "-b",
            &fleet.backends(),
            "--max-line-bytes",
            "4096",
            "--strict",
        ]),
        Duration::from_secs(60),
    );
    assert_eq!(code(&o), 2);
    assert!(
        stderr(&o).contains(&format!("{} bad input line(s)", bad.len())),
        "{}",
        stderr(&o)
    );
    assert_eq!(
        std::fs::read_to_string(&strict_out).unwrap_or_default(),
        "",
        "nothing sent, nothing written"
    );
}

/// Ctrl-C: in-flight tasks finish, exit 130 with the resume command; resuming completes the
/// job exactly once. A second Ctrl-C exits at once.
#[test]
fn ctrl_c_stops_cleanly_and_resume_finishes() {
    let fleet = SimFleet::start(2, slow_preset(2.0));
    let dir = tempfile::tempdir().unwrap();
    let input = write_lines(dir.path(), "t.jsonl", &tasks(4000, 32));
    let out = dir.path().join("out.jsonl");
    let mut child = spawn(drover().arg("run").arg(&input).args([
        "-o",
        out.to_str().unwrap(),
        "-b",
        &fleet.backends(),
    ]));
    std::thread::sleep(Duration::from_millis(1200));
    kill(Pid::from_raw(child.id() as i32), Signal::SIGINT).unwrap();
    let status = wait_for(&mut child, Duration::from_secs(40));
    let mut err = String::new();
    std::io::Read::read_to_string(child.stderr.as_mut().unwrap(), &mut err).unwrap();
    assert_eq!(status.code(), Some(130), "{err}");
    assert!(
        err.contains("--resume"),
        "prints the command that resumes: {err}"
    );
    let partial = read_output(&out);
    assert!(
        !partial.is_empty() && partial.len() < 4000,
        "stopped mid-job with {} lines",
        partial.len()
    );
    let (seen, failed) = tally(&partial);
    assert_eq!(failed, 0, "no task was failed by the interruption");
    assert!(seen.values().all(|c| *c == 1));

    // Second Ctrl-C: out at once, even with requests in flight.
    let mut child = spawn(drover().arg("run").arg(&input).args([
        "-o",
        out.to_str().unwrap(),
        "-b",
        &fleet.backends(),
        "--resume",
        "--grace",
        "60s",
    ]));
    std::thread::sleep(Duration::from_millis(800));
    let pid = Pid::from_raw(child.id() as i32);
    kill(pid, Signal::SIGINT).unwrap();
    std::thread::sleep(Duration::from_millis(100));
    kill(pid, Signal::SIGINT).unwrap();
    let t = Instant::now();
    let status = wait_for(&mut child, Duration::from_secs(10));
    assert_eq!(status.code(), Some(130));
    assert!(
        t.elapsed() < Duration::from_secs(5),
        "the second Ctrl-C does not wait for the grace"
    );

    let o = run_for(
        drover().arg("run").arg(&input).args([
            "-o",
            out.to_str().unwrap(),
            "-b",
            &fleet.backends(),
            "--resume",
            "-q",
        ]),
        Duration::from_secs(120),
    );
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert_exactly_once(&read_output(&out), 4000);
}

/// A backend that accepts requests but makes no progress is quarantined; its tasks finish
/// elsewhere.
#[test]
fn stalled_backend_is_quarantined() {
    let fleet = SimFleet::start(2, slow_preset(1.0));
    let dir = tempfile::tempdir().unwrap();
    let input = write_lines(dir.path(), "t.jsonl", &tasks(2500, 32));
    let out = dir.path().join("out.jsonl");
    fleet.stall(1, true);
    let o = run_for(
        drover().arg("run").arg(&input).args([
            "-o",
            out.to_str().unwrap(),
            "-b",
            &fleet.backends(),
            "--timeout",
            "3s",
        ]),
        Duration::from_secs(120),
    );
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let err = stderr(&o);
    assert!(
        err.contains("stalled") || err.contains("no progress") || err.contains("timed out"),
        "{err}"
    );
    assert!(err.contains("taken out of rotation"), "{err}");
    assert_exactly_once(&read_output(&out), 2500);
}

/// A slow engine with a full batch streams a token a second per request: answers that keep
/// producing tokens run past the attempt deadline instead of being cut and resent forever.
#[test]
fn a_stream_still_producing_tokens_outlives_the_deadline() {
    let mut config = SimConfig::preset("llama-3.1-8b-h100").unwrap();
    config.hide_metrics = true; // so drover streams, as to transformers serve
    config.params.batch_curve = vec![(1, Duration::from_millis(150))];
    let fleet = SimFleet::start(1, config);
    let dir = tempfile::tempdir().unwrap();
    let input = write_lines(dir.path(), "t.jsonl", &tasks(4, 16));
    let out = dir.path().join("out.jsonl");
    let o = run_for(
        drover().arg("run").arg(&input).args([
            "-o",
            out.to_str().unwrap(),
            "-b",
            &fleet.backends(),
            "--timeout",
            "1s",
        ]),
        Duration::from_secs(60),
    );
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let lines = read_output(&out);
    assert_exactly_once(&lines, 4);
    for l in &lines {
        assert_eq!(l["drover"]["attempts"], 1, "{l}");
        assert!(l["drover"]["latency_ms"].as_u64().unwrap() > 2000, "{l}");
    }
}

/// --resume repairs a torn last line, skips answered tasks, and --retry-failed retries failures.
#[test]
fn resume_repairs_torn_output_and_retries_failed() {
    let fleet = SimFleet::start(1, SimConfig::preset("instant").unwrap());
    let dir = tempfile::tempdir().unwrap();
    let mut lines = tasks(50, 4);
    lines.push(r#"{"id":"bad","prompt":5}"#.into());
    let input = write_lines(dir.path(), "t.jsonl", &lines);
    let out = dir.path().join("out.jsonl");
    let o = run_for(
        drover().arg("run").arg(&input).args([
            "-o",
            out.to_str().unwrap(),
            "-b",
            &fleet.backends(),
            "-q",
        ]),
        Duration::from_secs(60),
    );
    assert_eq!(code(&o), 1);
    // Keep 30 lines, tear the 31st in half, as a crash mid-write would.
    let text = std::fs::read_to_string(&out).unwrap();
    let kept: Vec<&str> = text.lines().take(31).collect();
    let mut torn = kept[..30].join("\n");
    torn.push('\n');
    torn.push_str(&kept[30][..kept[30].len() / 2]);
    std::fs::write(&out, &torn).unwrap();
    let o = run_for(
        drover().arg("run").arg(&input).args([
            "-o",
            out.to_str().unwrap(),
            "-b",
            &fleet.backends(),
            "--resume",
        ]),
        Duration::from_secs(60),
    );
    let err = stderr(&o);
    assert!(err.contains("torn last line repaired"), "{err}");
    let after = read_output(&out);
    let (seen, failed) = tally(&after);
    assert_eq!(after.len(), 51);
    assert!(seen.values().all(|c| *c == 1), "exactly once after repair");
    assert_eq!(failed, 1, "the bad line's record is kept as done");
    assert_eq!(code(&o), 1);
    // Fixing the input and retrying failed lines answers it.
    let mut fixed = lines.clone();
    *fixed.last_mut().unwrap() = r#"{"id":"bad","prompt":"now fine"}"#.into();
    let input2 = write_lines(dir.path(), "t.jsonl", &fixed);
    let o = run_for(
        drover().arg("run").arg(&input2).args([
            "-o",
            out.to_str().unwrap(),
            "-b",
            &fleet.backends(),
            "--resume",
            "--retry-failed",
            "-q",
        ]),
        Duration::from_secs(60),
    );
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let after = read_output(&out);
    let (seen, failed) = tally(&after);
    assert_eq!((after.len(), failed), (51, 0));
    assert_eq!(seen["bad"], 1);
}
