//! End-to-end tests of the `drover sim` binary: banner, the official `openai` client, fault flags,
//! and clean exits.

#[path = "common/python.rs"]
mod python;
#[path = "common/sim_process.rs"]
mod sim_process;

use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use sim_process::{digest, http, run_to_exit, start};

const SECOND: Duration = Duration::from_secs(1);

fn chat_body(content: &str, max_tokens: u32) -> String {
    format!(r#"{{"messages":[{{"role":"user","content":"{content}"}}],"max_tokens":{max_tokens}}}"#)
}

/// The project venv's Python with the test peers, or a failure saying how to get it.
fn python() -> PathBuf {
    python::python_with(&["openai", "prometheus_client", "jsonschema"])
}

#[test]
fn official_openai_client_against_drover_sim() {
    let python = python();
    let sim = start(&["--ports", "0,0", "--time-scale", "0.01"], 2);
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/py/sim_openai.py");
    let digests: Vec<String> = [
        "hello from python",
        "once upon a time",
        "stream please",
        "rate this",
    ]
    .iter()
    .map(|p| format!("\"{p}\":\"{}\"", digest(p)))
    .collect();
    let out = Command::new(python)
        .arg(script)
        .args(&sim.urls)
        .env("DROVER_SIM_DIGESTS", format!("{{{}}}", digests.join(",")))
        .output()
        .expect("python runs");
    let report = format!(
        "stdout:\n{}\nstderr:\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success(),
        "tests/py/sim_openai.py failed\n{report}"
    );
    assert!(
        report.contains("all checks passed against 2 instance(s)"),
        "{report}"
    );
    assert_eq!(sim.terminate(5 * SECOND).code(), Some(0));
}

#[test]
fn sigterm_exits_zero_even_with_requests_open() {
    let sim = start(&["--ports", "0", "--hang-rate", "1"], 1);
    let url = sim.urls[0].clone();
    let hung = std::thread::spawn(move || {
        http(
            &url,
            "POST",
            "/v1/chat/completions",
            Some(&chat_body("x", 1)),
            &[],
            10 * SECOND,
        )
    });
    std::thread::sleep(Duration::from_millis(200));
    let start = Instant::now();
    assert_eq!(sim.terminate(5 * SECOND).code(), Some(0));
    assert!(
        start.elapsed() < 3 * SECOND,
        "shutdown waited {:?}",
        start.elapsed()
    );
    assert!(
        hung.join().unwrap().is_err(),
        "the hung request is cut, not answered"
    );
}

#[test]
fn bad_flags_exit_2_and_name_the_flag() {
    for (args, flag) in [
        (vec!["--max-num-seqs", "0"], "--max-num-seqs"),
        (vec!["--preset", "gpt-5"], "--preset"),
        (
            vec!["--ports", "0,0", "--speed-factors", "1,1,1"],
            "--speed-factors",
        ),
        (vec!["--fail-rate", "1.5"], "--fail-rate"),
        (vec!["--t-fixed", "soon"], "--t-fixed"),
        (vec!["--ports", "80-70"], "--ports"),
    ] {
        let (code, stderr) = run_to_exit(&args);
        assert_eq!(code, 2, "{args:?}: {stderr}");
        assert!(
            stderr.contains(flag),
            "{args:?} should name {flag}: {stderr}"
        );
    }
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port().to_string();
    let (code, stderr) = run_to_exit(&["--ports", &port]);
    assert_eq!(code, 2, "{stderr}");
    assert!(
        stderr.contains("cannot listen") && stderr.contains("--ports"),
        "{stderr}"
    );
    let (code, _) = run_to_exit(&["--list-presets"]);
    assert_eq!(code, 0);
}

#[test]
fn fault_flags() {
    let body = chat_body("faulty", 2);
    let post = |url: &str, timeout| {
        http(
            url,
            "POST",
            "/v1/chat/completions",
            Some(&body),
            &[],
            timeout,
        )
    };

    let sim = start(&["--ports", "0", "--fail-rate", "1"], 1);
    let a = post(&sim.urls[0], 5 * SECOND).unwrap();
    assert_eq!(a.status, 500);
    assert!(a.body.contains(r#""code":500"#), "{}", a.body);
    assert_eq!(
        http(&sim.urls[0], "GET", "/health", None, &[], SECOND)
            .unwrap()
            .status,
        200,
        "faults spare /health"
    );
    drop(sim);

    let sim = start(
        &[
            "--ports",
            "0",
            "--rate-limit-rate",
            "1",
            "--retry-after",
            "2s",
        ],
        1,
    );
    let a = post(&sim.urls[0], 5 * SECOND).unwrap();
    assert_eq!((a.status, a.header("retry-after")), (429, Some("2")));
    drop(sim);

    let sim = start(&["--ports", "0", "--garbage-rate", "1"], 1);
    let a = post(&sim.urls[0], 5 * SECOND).unwrap();
    assert_eq!(a.status, 200);
    assert!(
        !a.body.is_empty() && !a.body.trim_end().ends_with('}'),
        "not JSON: {}",
        a.body
    );
    drop(sim);

    let sim = start(&["--ports", "0", "--hang-rate", "1"], 1);
    let err = post(&sim.urls[0], Duration::from_millis(300)).unwrap_err();
    assert!(
        matches!(
            err.kind(),
            std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
        ),
        "{err:?}"
    );
    drop(sim);

    // Per-request header, on an instance without rates.
    let sim = start(&["--ports", "0", "--time-scale", "0.01"], 1);
    let url = &sim.urls[0];
    let forced = |fault: &str| {
        http(
            url,
            "POST",
            "/v1/chat/completions",
            Some(&body),
            &[("x-drover-sim-fault", fault)],
            5 * SECOND,
        )
    };
    assert_eq!(forced("500").unwrap().status, 500);
    assert_eq!(forced("429").unwrap().status, 429);
    assert!(forced("reset").is_err(), "reset is a transport error");
    let ok = post(url, 5 * SECOND).unwrap();
    assert_eq!(ok.status, 200);
    assert!(ok.body.contains(&digest("faulty")), "{}", ok.body);
}

#[test]
fn slow_start_then_ready() {
    let sim = start(
        &[
            "--ports",
            "0",
            "--slow-start",
            "700ms",
            "--time-scale",
            "0.01",
        ],
        1,
    );
    let url = &sim.urls[0];
    assert_eq!(
        http(url, "GET", "/health", None, &[], SECOND)
            .unwrap()
            .status,
        503
    );
    let refused = http(
        url,
        "POST",
        "/v1/completions",
        Some(r#"{"prompt":"x","max_tokens":1}"#),
        &[],
        SECOND,
    )
    .unwrap();
    assert_eq!(refused.status, 503);
    std::thread::sleep(Duration::from_millis(800));
    assert_eq!(
        http(url, "GET", "/health", None, &[], SECOND)
            .unwrap()
            .status,
        200
    );
}

#[test]
fn timed_kill_revive_and_stall() {
    let sim = start(
        &[
            "--ports",
            "0,0",
            "--time-scale",
            "0.01",
            "--kill-after",
            "300ms",
            "--revive-after",
            "400ms",
            "--kill-instances",
            "1",
        ],
        2,
    );
    let health =
        |i: usize| http(&sim.urls[i], "GET", "/health", None, &[], SECOND).map(|a| a.status);
    assert_eq!(health(1).unwrap(), 200);
    std::thread::sleep(Duration::from_millis(450));
    assert!(
        health(1).is_err(),
        "instance 1 is killed: connection refused"
    );
    assert_eq!(
        health(0).unwrap(),
        200,
        "--kill-instances 1 spares instance 0"
    );
    std::thread::sleep(Duration::from_millis(450));
    assert_eq!(health(1).unwrap(), 200, "revived on the same port");
    drop(sim);

    let sim = start(
        &[
            "--ports",
            "0",
            "--time-scale",
            "0.01",
            "--stall-after",
            "0s",
            "--stall-for",
            "800ms",
        ],
        1,
    );
    std::thread::sleep(Duration::from_millis(100));
    let url = &sim.urls[0];
    assert_eq!(
        http(url, "GET", "/health", None, &[], SECOND)
            .unwrap()
            .status,
        200
    );
    let stuck = http(
        url,
        "POST",
        "/v1/chat/completions",
        Some(&chat_body("x", 2)),
        &[],
        Duration::from_millis(300),
    );
    assert!(stuck.is_err(), "a stalled engine does not answer");
    let start = Instant::now();
    let a = http(
        url,
        "POST",
        "/v1/chat/completions",
        Some(&chat_body("x", 2)),
        &[],
        5 * SECOND,
    )
    .unwrap();
    assert_eq!(a.status, 200, "progress resumes after --stall-for");
    assert!(start.elapsed() > Duration::from_millis(100));
}
