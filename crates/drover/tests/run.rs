//! End-to-end tests of `drover run` against in-process servers on port 0.

mod common;

use std::collections::HashSet;
use std::time::Duration;

use common::server::{Behavior, TestServer, bodies_by_text, fleet};
use common::{code, drover, prompt_tasks, read_output, run, stderr, write_lines};
use serde_json::Value;

fn ports(servers: &[TestServer]) -> String {
    servers
        .iter()
        .map(|s| s.port.to_string())
        .collect::<Vec<_>>()
        .join(",")
}

fn ids(out: &[Value]) -> HashSet<String> {
    out.iter()
        .map(|l| l["custom_id"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn prompt_tasks_get_one_result_line_each() {
    let (servers, record) = fleet(2, Behavior::default());
    let dir = tempfile::tempdir().unwrap();
    let input = write_lines(dir.path(), "tasks.jsonl", &prompt_tasks(30, "hello"));
    let o = run(drover()
        .arg("run")
        .arg(&input)
        .args(["-b", &ports(&servers), "-q"]));
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let out = read_output(&dir.path().join("tasks.results.jsonl"));
    assert_eq!(out.len(), 30);
    assert_eq!(ids(&out).len(), 30);
    for line in &out {
        assert!(line["id"].as_str().unwrap().starts_with("batch_req_"));
        assert!(line["error"].is_null());
        assert_eq!(line["response"]["status_code"], 200);
        let id = line["custom_id"].as_str().unwrap();
        let n = &id[1..];
        assert_eq!(
            line["response"]["body"]["choices"][0]["message"]["content"],
            format!("echo: hello {n}")
        );
        assert!(
            line["response"]["request_id"]
                .as_str()
                .unwrap()
                .starts_with("req_")
        );
        assert_eq!(
            line["drover"]["line"].as_u64().unwrap(),
            n.parse::<u64>().unwrap() + 1
        );
        // drover's own fields live under one key, never beside OpenAI's.
        let keys: HashSet<&str> = line
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        assert_eq!(
            keys,
            HashSet::from(["id", "custom_id", "response", "error", "drover"])
        );
    }
    // The model discovered on the fleet is filled in; nothing but the message is sent. This
    // backend publishes no metrics, so drover streams to watch its rate (and takes the plain
    // JSON this server answers anyway).
    let sent = bodies_by_text(&record);
    assert_eq!(
        sent["hello 3"],
        serde_json::json!({"model": "test-model", "messages": [{"role": "user", "content": "hello 3"}], "stream": true, "stream_options": {"include_usage": true}})
    );
}

#[test]
fn every_input_shape() {
    let (servers, record) = fleet(1, Behavior::default());
    let dir = tempfile::tempdir().unwrap();
    let lines = vec![
        r#"{"custom_id":"b-chat","method":"POST","url":"/v1/chat/completions","body":{"messages":[{"role":"user","content":"batch chat"}],"max_tokens":9,"logprobs":true}}"#.to_string(),
        r#"{"custom_id":"b-cmpl","method":"POST","url":"/v1/completions","body":{"prompt":"batch completion","model":"test-model"}}"#.to_string(),
        r#"{"custom_id":"b-emb","method":"POST","url":"/v1/embeddings","body":{"input":"embed me"}}"#.to_string(),
        r#"{"id":"msgs","messages":[{"role":"system","content":"sys"},{"role":"user","content":"messages shape"}],"temperature":0.3}"#.to_string(),
        r#"{"custom_id":"p","prompt":"prompt shape","label":"not sent"}"#.to_string(),
    ];
    let input = write_lines(dir.path(), "in.jsonl", &lines);
    let out_path = dir.path().join("out.jsonl");
    let o = run(drover().arg("run").arg(&input).args([
        "-o",
        out_path.to_str().unwrap(),
        "-b",
        &ports(&servers),
        "--max-tokens",
        "50",
        "--temperature",
        "0.7",
        "--stream",
        "off",
        "-q",
    ]));
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let out = read_output(&out_path);
    assert_eq!(
        ids(&out),
        HashSet::from(["b-chat", "b-cmpl", "b-emb", "msgs", "p"].map(String::from))
    );
    let emb = out.iter().find(|l| l["custom_id"] == "b-emb").unwrap();
    assert_eq!(emb["response"]["body"]["data"][0]["embedding"][0], 0.1);

    let sent = bodies_by_text(&record);
    // Batch body passed through, model and defaults filled in under the task's own values.
    assert_eq!(
        sent["batch chat"],
        serde_json::json!({"messages":[{"role":"user","content":"batch chat"}],"max_tokens":9,"logprobs":true,"model":"test-model","temperature":0.7})
    );
    assert_eq!(sent["batch completion"]["prompt"], "batch completion");
    assert_eq!(sent["messages shape"]["temperature"], 0.3);
    assert_eq!(sent["messages shape"]["messages"][0]["role"], "system");
    assert_eq!(
        sent["prompt shape"],
        serde_json::json!({"messages":[{"role":"user","content":"prompt shape"}],"model":"test-model","max_tokens":50,"temperature":0.7})
    );
}

#[test]
fn template_and_system_and_completions_endpoint() {
    let (servers, record) = fleet(1, Behavior::default());
    let dir = tempfile::tempdir().unwrap();
    let tmpl = dir.path().join("t.j2");
    std::fs::write(
        &tmpl,
        "Classify the review: {{ review }} ({{ stars }} stars)",
    )
    .unwrap();
    let input = write_lines(
        dir.path(),
        "reviews.jsonl",
        &[r#"{"id":"r1","review":"great","stars":5}"#.into()],
    );
    let o = run(drover().arg("run").arg(&input).args([
        "-b",
        &ports(&servers),
        "--template",
        tmpl.to_str().unwrap(),
        "--system",
        "Answer in one word.",
        "-q",
    ]));
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let sent = bodies_by_text(&record);
    let body = &sent["Classify the review: great (5 stars)"];
    assert_eq!(
        body["messages"][0],
        serde_json::json!({"role":"system","content":"Answer in one word."})
    );

    // A template rendering a JSON array is the whole messages list.
    let tmpl2 = dir.path().join("m.j2");
    std::fs::write(&tmpl2, r#"[{"role":"user","content":{{ review|tojson }}},{"role":"assistant","content":"ok"},{"role":"user","content":"again"}]"#).unwrap();
    let out2 = dir.path().join("o2.jsonl");
    let o = run(drover().arg("run").arg(&input).args([
        "-o",
        out2.to_str().unwrap(),
        "-b",
        &ports(&servers),
        "--template",
        tmpl2.to_str().unwrap(),
        "-q",
    ]));
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert_eq!(
        bodies_by_text(&record)["again"]["messages"]
            .as_array()
            .unwrap()
            .len(),
        3
    );

    // --endpoint completions sends prompts to /v1/completions.
    let out3 = dir.path().join("o3.jsonl");
    let input3 = write_lines(
        dir.path(),
        "p.jsonl",
        &[r#"{"id":"c1","prompt":"Once upon"}"#.into()],
    );
    let o = run(drover().arg("run").arg(&input3).args([
        "-o",
        out3.to_str().unwrap(),
        "-b",
        &ports(&servers),
        "--endpoint",
        "completions",
        "-q",
    ]));
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert_eq!(
        read_output(&out3)[0]["response"]["body"]["object"],
        "text_completion"
    );
}

#[test]
fn serial_mode_keeps_one_request_in_flight_in_total() {
    for (args, env) in [
        (vec!["--mode", "serial"], vec![]),
        (vec![], vec![("USE_CONCURRENT", "false")]),
    ] {
        let (servers, record) = fleet(
            3,
            Behavior {
                delay: Duration::from_millis(30),
                ..Behavior::default()
            },
        );
        let dir = tempfile::tempdir().unwrap();
        let input = write_lines(dir.path(), "t.jsonl", &prompt_tasks(12, "s"));
        let mut cmd = drover();
        cmd.arg("run")
            .arg(&input)
            .args(["-b", &ports(&servers), "-q"])
            .args(&args);
        for (k, v) in &env {
            cmd.env(k, v);
        }
        let o = run(&mut cmd);
        assert_eq!(code(&o), 0, "{}", stderr(&o));
        assert_eq!(
            record.max(),
            1,
            "serial ({args:?} {env:?}) must never overlap requests"
        );
        assert_eq!(record.requests(), 12);
        // Round robin: each instance gets its turn.
        for s in &servers {
            assert_eq!(s.own(), 4);
        }
    }
}

#[test]
fn concurrent_mode_caps_the_total_at_n() {
    for (args, env) in [
        (vec!["--mode", "concurrent", "--workers", "3"], vec![]),
        (
            vec![],
            vec![("USE_CONCURRENT", "true"), ("MAX_WORKERS", "3")],
        ),
        (vec![], vec![("MAX_WORKERS", "3")]),
    ] {
        let (servers, record) = fleet(
            2,
            Behavior {
                delay: Duration::from_millis(60),
                ..Behavior::default()
            },
        );
        let dir = tempfile::tempdir().unwrap();
        let input = write_lines(dir.path(), "t.jsonl", &prompt_tasks(30, "c"));
        let mut cmd = drover();
        cmd.arg("run")
            .arg(&input)
            .args(["-b", &ports(&servers), "-q"])
            .args(&args);
        for (k, v) in &env {
            cmd.env(k, v);
        }
        let o = run(&mut cmd);
        assert_eq!(code(&o), 0, "{}", stderr(&o));
        assert_eq!(
            record.max(),
            3,
            "concurrent 3 ({args:?} {env:?}): at most 3 in flight, and it does use 3"
        );
        assert_eq!(record.requests(), 30);
    }
}

#[test]
fn seed_ports_and_first_only() {
    let (servers, record) = fleet(3, Behavior::default());
    let dir = tempfile::tempdir().unwrap();
    let input = write_lines(dir.path(), "t.jsonl", &prompt_tasks(9, "v"));
    let o = run(drover()
        .arg("run")
        .arg(&input)
        .env("VLLM_PORTS", ports(&servers))
        .env("USE_MULTI_VLLM", "false")
        .env("USE_CONCURRENT", "true"));
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert_eq!(record.requests(), 9);
    assert_eq!(
        (servers[0].own(), servers[1].own(), servers[2].own()),
        (9, 0, 0)
    );
    let err = stderr(&o);
    assert!(
        err.contains("USE_MULTI_VLLM=false"),
        "banner names why one backend: {err}"
    );
    assert!(err.contains("concurrent: 1 requests in flight"), "{err}");
}

#[test]
fn adaptive_mode_goes_beyond_one_per_backend() {
    let (servers, record) = fleet(
        2,
        Behavior {
            delay: Duration::from_millis(100),
            ..Behavior::default()
        },
    );
    let dir = tempfile::tempdir().unwrap();
    let input = write_lines(dir.path(), "t.jsonl", &prompt_tasks(200, "a"));
    let o = run(drover()
        .arg("run")
        .arg(&input)
        .args(["-b", &ports(&servers)]));
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert!(
        record.max() > 8,
        "adaptive keeps many requests in flight: max {}",
        record.max()
    );
    assert!(stderr(&o).contains("mode: adaptive"));
    assert_eq!(read_output(&dir.path().join("t.results.jsonl")).len(), 200);
}

#[test]
fn bad_lines_get_records_and_exit_1() {
    let (servers, _) = fleet(1, Behavior::default());
    let dir = tempfile::tempdir().unwrap();
    let mut lines = prompt_tasks(3, "ok");
    lines.insert(1, "{not json".into());
    lines.push(r#"{"id":"t0","prompt":"duplicate"}"#.into());
    lines.push(r#"{"id":"x","prompt":7}"#.into());
    lines.push(String::new());
    lines.push(r#"["array"]"#.into());
    let input = write_lines(dir.path(), "t.jsonl", &lines);
    let o = run(drover()
        .arg("run")
        .arg(&input)
        .args(["-b", &ports(&servers), "-q"]));
    assert_eq!(code(&o), 1, "{}", stderr(&o));
    let out = read_output(&dir.path().join("t.results.jsonl"));
    assert_eq!(out.len(), 7, "one line per non-empty input line");
    let by_line = |n: u64| {
        out.iter()
            .find(|l| l["drover"]["line"] == n)
            .unwrap_or_else(|| panic!("no record for line {n}"))
    };
    assert_eq!(by_line(2)["error"]["code"], "invalid_input");
    assert!(
        by_line(2)["error"]["message"]
            .as_str()
            .unwrap()
            .starts_with("line 2: invalid JSON")
    );
    assert_eq!(by_line(5)["error"]["code"], "duplicate_custom_id");
    assert!(
        by_line(5)["error"]["message"]
            .as_str()
            .unwrap()
            .contains("first seen on line 1")
    );
    assert_eq!(by_line(6)["custom_id"], "x");
    assert!(
        by_line(6)["error"]["message"]
            .as_str()
            .unwrap()
            .contains("\"prompt\" must be a string")
    );
    assert_eq!(by_line(8)["custom_id"], "line-8");
    assert!(by_line(1)["error"].is_null());
}

#[test]
fn rejected_task_is_not_retried_and_keeps_the_server_message() {
    let (servers, record) = fleet(2, Behavior::default());
    let dir = tempfile::tempdir().unwrap();
    let input = write_lines(
        dir.path(),
        "t.jsonl",
        &[
            r#"{"id":"big","prompt":"REJECT me"}"#.into(),
            r#"{"id":"fine","prompt":"FAIL_ONCE then fine"}"#.into(),
        ],
    );
    let o = run(drover()
        .arg("run")
        .arg(&input)
        .args(["-b", &ports(&servers), "-q"]));
    assert_eq!(code(&o), 1, "{}", stderr(&o));
    let out = read_output(&dir.path().join("t.results.jsonl"));
    let big = out.iter().find(|l| l["custom_id"] == "big").unwrap();
    assert_eq!(big["error"]["code"], "invalid_request");
    assert!(
        big["error"]["message"]
            .as_str()
            .unwrap()
            .contains("maximum context length is 4096"),
        "{big}"
    );
    assert_eq!(big["response"]["status_code"], 400);
    assert_eq!(big["response"]["body"]["error"]["type"], "BadRequestError");
    assert_eq!(big["drover"]["attempts"], 1);
    let fine = out.iter().find(|l| l["custom_id"] == "fine").unwrap();
    assert!(fine["error"].is_null(), "a 500 is retried: {fine}");
    assert_eq!(fine["drover"]["attempts"], 2);
    assert_eq!(record.requests(), 3);
}

#[test]
fn unreachable_backend_is_a_usage_error_naming_the_url() {
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let dir = tempfile::tempdir().unwrap();
    let input = write_lines(dir.path(), "t.jsonl", &prompt_tasks(2, "x"));
    let o = run(drover()
        .arg("run")
        .arg(&input)
        .args(["-b", &port.to_string()]));
    assert_eq!(code(&o), 2);
    let err = stderr(&o);
    assert!(
        err.contains(&format!("http://127.0.0.1:{port}/v1")) && err.contains("cannot reach"),
        "{err}"
    );
    assert!(
        !dir.path().join("t.results.jsonl").exists()
            || read_output(&dir.path().join("t.results.jsonl")).is_empty()
    );
}

#[test]
fn wrong_path_suggests_v1() {
    let s = TestServer::start(
        Behavior {
            prefix: "/api/v1".into(),
            ..Behavior::default()
        },
        Default::default(),
    );
    let dir = tempfile::tempdir().unwrap();
    let input = write_lines(dir.path(), "t.jsonl", &prompt_tasks(1, "x"));
    let o = run(drover()
        .arg("run")
        .arg(&input)
        .args(["-b", &format!("{}/api", s.url)]));
    assert_eq!(code(&o), 2);
    assert!(stderr(&o).contains("forget /v1"), "{}", stderr(&o));
}

#[test]
fn model_not_found_lists_what_is_served() {
    let (servers, _) = fleet(1, Behavior::default());
    let dir = tempfile::tempdir().unwrap();
    let input = write_lines(dir.path(), "t.jsonl", &prompt_tasks(1, "x"));
    let o =
        run(drover()
            .arg("run")
            .arg(&input)
            .args(["-b", &ports(&servers), "--model", "llama-70b"]));
    assert_eq!(code(&o), 2);
    let err = stderr(&o);
    assert!(
        err.contains("\"llama-70b\" is not served") && err.contains("serves test-model"),
        "{err}"
    );
}

#[test]
fn a_backend_serving_another_model_is_left_out() {
    let record = std::sync::Arc::new(common::server::Record::default());
    let a = TestServer::start(Behavior::default(), record.clone());
    let b = TestServer::start(Behavior::default(), record.clone());
    let odd = TestServer::start(
        Behavior {
            model: Some("other".into()),
            ..Behavior::default()
        },
        record.clone(),
    );
    let dir = tempfile::tempdir().unwrap();
    let input = write_lines(dir.path(), "t.jsonl", &prompt_tasks(10, "x"));
    let o = run(drover()
        .arg("run")
        .arg(&input)
        .args(["-b", &format!("{},{},{}", a.port, b.port, odd.port)]));
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert_eq!(odd.own(), 0, "never mixed in");
    assert!(
        stderr(&o).contains(&format!(
            "127.0.0.1:{} left out: serves other, not test-model",
            odd.port
        )),
        "{}",
        stderr(&o)
    );
}

#[test]
fn existing_output_needs_resume_or_overwrite() {
    let (servers, _) = fleet(1, Behavior::default());
    let dir = tempfile::tempdir().unwrap();
    let input = write_lines(dir.path(), "t.jsonl", &prompt_tasks(3, "x"));
    std::fs::write(dir.path().join("t.results.jsonl"), "").unwrap();
    let o = run(drover()
        .arg("run")
        .arg(&input)
        .args(["-b", &ports(&servers)]));
    assert_eq!(code(&o), 2);
    let err = stderr(&o);
    assert!(
        err.contains("--resume") && err.contains("--overwrite"),
        "{err}"
    );
    let o =
        run(drover()
            .arg("run")
            .arg(&input)
            .args(["-b", &ports(&servers), "--overwrite", "-q"]));
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert_eq!(read_output(&dir.path().join("t.results.jsonl")).len(), 3);
}

#[test]
fn unreadable_input_and_bad_flags_exit_2() {
    let o = run(drover().args([
        "run",
        "/nonexistent/tasks.jsonl",
        "-b",
        "9",
        "-o",
        "/tmp/drover-never.jsonl",
    ]));
    assert_eq!(code(&o), 2, "{}", stderr(&o));
    let o = run(drover().args(["run", "x.jsonl", "--mode", "sometimes"]));
    assert_eq!(code(&o), 2);
    let o = run(drover().args(["run", "x.jsonl", "-b", "nohost"]));
    assert_eq!(code(&o), 2);
    assert!(stderr(&o).contains("no port"), "{}", stderr(&o));
}

#[test]
fn api_key_is_sent_and_never_printed() {
    let (servers, record) = fleet(
        1,
        Behavior {
            api_key: Some("sk-secret-123".into()),
            ..Behavior::default()
        },
    );
    let dir = tempfile::tempdir().unwrap();
    let input = write_lines(dir.path(), "t.jsonl", &prompt_tasks(2, "k"));
    let summary = dir.path().join("s.json");
    let o = run(drover()
        .arg("run")
        .arg(&input)
        .args([
            "-b",
            &ports(&servers),
            "--api-key-env",
            "MY_KEY",
            "--summary",
            summary.to_str().unwrap(),
        ])
        .env("MY_KEY", "sk-secret-123"));
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert!(
        record
            .auth
            .lock()
            .unwrap()
            .iter()
            .all(|a| a.as_deref() == Some("Bearer sk-secret-123"))
    );
    let everything = format!(
        "{}{}{}{}",
        stderr(&o),
        String::from_utf8_lossy(&o.stdout),
        std::fs::read_to_string(dir.path().join("t.results.jsonl")).unwrap(),
        std::fs::read_to_string(&summary).unwrap()
    );
    assert!(!everything.contains("sk-secret"), "the key leaked");
    assert!(stderr(&o).contains("api key: from $MY_KEY"));
    // Without the key the fleet refuses, and drover says what to do.
    let o = run(drover().arg("run").arg(&input).args([
        "-b",
        &ports(&servers),
        "-o",
        dir.path().join("o2.jsonl").to_str().unwrap(),
    ]));
    assert_eq!(code(&o), 2);
    assert!(stderr(&o).contains("--api-key-env"), "{}", stderr(&o));
}

/// `drover run -` on `backends`, writing `out`, with stdin and stderr piped.
fn run_from_stdin(backends: &str, out: &std::path::Path, extra: &[&str]) -> std::process::Child {
    drover()
        .args([
            "run",
            "-",
            "-o",
            out.to_str().unwrap(),
            "-b",
            backends,
            "-q",
        ])
        .args(extra)
        .stdin(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap()
}

/// A producer that writes tasks to stdin as it makes them gets their answers as it goes: the
/// reader takes room in the dispatcher's queue a batch at a time, but sends each task the
/// moment it is parsed.
#[test]
fn stdin_tasks_are_answered_while_the_input_is_still_open() {
    let (servers, _) = fleet(1, Behavior::default());
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("o.jsonl");
    let mut child = run_from_stdin(&ports(&servers), &out, &[]);
    use std::io::Write;
    let mut stdin = child.stdin.take().unwrap();
    let tasks = prompt_tasks(5, "live");
    for l in &tasks[..3] {
        writeln!(stdin, "{l}").unwrap();
    }
    stdin.flush().unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    let answered = || {
        std::fs::read_to_string(&out)
            .map(|t| t.lines().count())
            .unwrap_or(0)
    };
    while answered() < 3 {
        assert!(
            std::time::Instant::now() < deadline,
            "the first 3 tasks were not answered within 30 s while stdin stayed open ({} lines)",
            answered()
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    for l in &tasks[3..] {
        writeln!(stdin, "{l}").unwrap();
    }
    drop(stdin);
    let o = child.wait_with_output().unwrap();
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let ids: std::collections::BTreeSet<String> = read_output(&out)
        .iter()
        .map(|v| v["custom_id"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(ids.len(), 5, "{ids:?}");
}

#[test]
fn stdin_input_and_summary_json() {
    let (servers, _) = fleet(2, Behavior::default());
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("o.jsonl");
    let summary = dir.path().join("s.json");
    let mut child = run_from_stdin(
        &ports(&servers),
        &out,
        &["--summary", summary.to_str().unwrap()],
    );
    {
        use std::io::Write;
        let mut stdin = child.stdin.take().unwrap();
        for l in prompt_tasks(20, "stdin") {
            writeln!(stdin, "{l}").unwrap();
        }
    }
    let o = child.wait_with_output().unwrap();
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert_eq!(read_output(&out).len(), 20);
    let s: Value = serde_json::from_str(&std::fs::read_to_string(&summary).unwrap()).unwrap();
    let schema: Value = serde_json::from_str(
        &std::fs::read_to_string(common::repo().join("docs/summary.schema.json")).unwrap(),
    )
    .unwrap();
    let v = jsonschema::validator_for(&schema).unwrap();
    let errors: Vec<String> = v.iter_errors(&s).map(|e| e.to_string()).collect();
    assert!(errors.is_empty(), "{errors:?}");
    assert_eq!(s["tasks"]["succeeded"], 20);
    assert_eq!(s["backends"].as_array().unwrap().len(), 2);
    assert_eq!(s["input"], "-");
}
