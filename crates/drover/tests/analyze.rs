//! End-to-end tests of the analysis pipeline (`drover run --schema/--fields/--table`): the real
//! binary against `drover sim` and in-process test servers on 127.0.0.1:0.

#[path = "common/analyze_csv.rs"]
mod analyze_csv;
#[path = "common/analyze_server.rs"]
mod analyze_server;
mod common;
#[path = "common/sim_process.rs"]
mod sim_process;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use analyze_server::{AnswerServer, Reply, repair_rounds, task_text};
use common::{code, drover, read_output, run, stderr, write_lines};
use drover_answer::REPAIR_LEAD;
use serde_json::{Value, json};

const SCHEMA: &str = r#"{
  "title": "review",
  "type": "object",
  "properties": {
    "sentiment": {"type": "string", "enum": ["positive", "negative", "mixed"]},
    "rating": {"type": "integer", "minimum": 1, "maximum": 5},
    "recommend": {"type": "boolean"},
    "topic": {"type": "string", "maxLength": 24},
    "price": {"type": "number"}
  },
  "required": ["sentiment", "rating", "recommend", "topic"],
  "additionalProperties": false
}"#;

fn schema_file(dir: &Path) -> PathBuf {
    let p = dir.join("schema.json");
    std::fs::write(&p, SCHEMA).unwrap();
    p
}

fn validator() -> jsonschema::Validator {
    jsonschema::validator_for(&serde_json::from_str(SCHEMA).unwrap()).unwrap()
}

/// `n` prompt tasks `t{i}` with the text `{word} {i}`.
fn tasks(dir: &Path, n: usize, word: &str) -> PathBuf {
    write_lines(
        dir,
        "in.jsonl",
        &(0..n)
            .map(|i| json!({"id": format!("t{i}"), "prompt": format!("{word} {i}")}).to_string())
            .collect::<Vec<_>>(),
    )
}

/// The task index from its text (`… {i}`); `None` for drover's own health probes ("ping").
fn index_of(text: &str) -> Option<usize> {
    text.rsplit(' ').next().and_then(|n| n.parse().ok())
}

fn valid_answer() -> String {
    r#"{"sentiment": "positive", "rating": 4, "recommend": true, "topic": "battery"}"#.into()
}

fn summary(path: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

/// Records keyed by custom_id.
fn by_id(records: &[Value]) -> BTreeMap<String, Value> {
    records
        .iter()
        .map(|r| (r["custom_id"].as_str().unwrap().to_string(), r.clone()))
        .collect()
}

/// A table cell as drover writes it: strings as they are, other values as JSON, missing empty.
fn cell(v: Option<&Value>) -> String {
    match v {
        None | Some(Value::Null) => String::new(),
        Some(Value::String(s)) => s.clone(),
        Some(other) => other.to_string(),
    }
}

#[test]
fn simulator_answers_validate_and_fill_table_and_summary() {
    let sim = sim_process::start(&["--ports", "0,0", "--preset", "instant"], 2);
    let dir = tempfile::tempdir().unwrap();
    let n = 40;
    let input = tasks(dir.path(), n, "review number");
    let (out, table, sum) = (
        dir.path().join("out.jsonl"),
        dir.path().join("table.csv"),
        dir.path().join("summary.json"),
    );
    let o = run(drover()
        .arg("run")
        .arg(&input)
        .args(["-b", &sim.urls.join(",")])
        .arg("--schema")
        .arg(schema_file(dir.path()))
        .arg("--table")
        .arg(&table)
        .arg("-o")
        .arg(&out)
        .arg("--summary")
        .arg(&sum));
    let err = stderr(&o);
    assert_eq!(code(&o), 0, "{err}");
    assert!(
        err.contains(&format!(
            "[step 3/6] parse: {n} answers parsed, {n} valid at first try"
        )),
        "{err}"
    );
    assert!(
        err.contains("response_format json_schema sent (every backend runs vLLM)"),
        "{err}"
    );
    assert!(
        err.contains(&format!(
            "[step 5/6] aggregate: table {} ({n} rows, input order)",
            table.display()
        )),
        "{err}"
    );

    // Every record carries a schema-valid answer that belongs to its task (the simulator puts the
    // digest of the prompt in the first free string).
    let v = validator();
    let records = by_id(&read_output(&out));
    assert_eq!(records.len(), n);
    for i in 0..n {
        let r = &records[&format!("t{i}")];
        let answer = &r["drover"]["answer"];
        assert!(v.is_valid(answer), "{r}");
        assert!(r["drover"].get("repairs").is_none(), "{r}");
        assert_eq!(
            answer["topic"],
            sim_process::digest(&format!("review number {i}")),
            "{r}"
        );
    }

    // The table: input order, one row per task, the same values as the answers.
    let rows = analyze_csv::parse(&std::fs::read_to_string(&table).unwrap());
    assert_eq!(
        rows[0],
        [
            "custom_id",
            "sentiment",
            "rating",
            "recommend",
            "topic",
            "price",
            "error"
        ]
    );
    assert_eq!(rows.len(), n + 1);
    for (i, row) in rows[1..].iter().enumerate() {
        let answer = &records[&format!("t{i}")]["drover"]["answer"];
        let expect: Vec<String> = std::iter::once(format!("t{i}"))
            .chain(
                ["sentiment", "rating", "recommend", "topic", "price"]
                    .iter()
                    .map(|f| cell(answer.get(*f))),
            )
            .chain(std::iter::once(String::new()))
            .collect();
        assert_eq!(row, &expect, "row {i}");
    }

    // The summary's counts are the answers' counts.
    let s = summary(&sum);
    for field in ["sentiment", "rating", "recommend", "topic"] {
        let mut expect: BTreeMap<String, u64> = BTreeMap::new();
        for r in records.values() {
            *expect
                .entry(cell(r["drover"]["answer"].get(field)))
                .or_default() += 1;
        }
        let got: BTreeMap<String, u64> = s["answers"][field]["counts"]
            .as_object()
            .unwrap_or_else(|| panic!("no counts for {field}: {s}"))
            .iter()
            .filter(|(_, n)| n.as_u64() != Some(0))
            .map(|(k, n)| (k.clone(), n.as_u64().unwrap()))
            .collect();
        assert_eq!(got, expect, "{field}");
        assert_eq!(
            (
                s["answers"][field]["present"].as_u64(),
                s["answers"][field]["missing"].as_u64()
            ),
            (Some(n as u64), Some(0))
        );
    }
    let ratings: Vec<f64> = records
        .values()
        .map(|r| r["drover"]["answer"]["rating"].as_f64().unwrap())
        .collect();
    let mean = ratings.iter().sum::<f64>() / ratings.len() as f64;
    assert!(
        (s["answers"]["rating"]["mean"].as_f64().unwrap() - mean).abs() < 1e-9,
        "{s}"
    );
    assert_eq!(sim.terminate(Duration::from_secs(5)).code(), Some(0));
}

/// What the test server answers first, by task index: four kinds of unusable answers.
fn first_bad_answer(i: usize) -> String {
    match i % 4 {
        0 => "I loved it, five stars!".into(),
        1 => r#"{"sentiment": "positive", "rating": 5,}"#.into(),
        2 => "```json\n{\"sentiment\": \"great\", \"rating\": 9, \"recommend\": \"yes\", \"topic\": \"fit\"}\n```".into(),
        _ => r#"Sure: {"sentiment": "positive", "rating": "#.into(),
    }
}

/// The problem drover must report for each kind.
fn expected_problem(i: usize) -> &'static str {
    match i % 4 {
        0 => "the answer holds no JSON object",
        1 => "the JSON object is not valid JSON",
        2 => "at /rating: 9 is greater than the maximum of 5",
        _ => "the JSON object is not closed",
    }
}

/// Answers badly until the conversation holds a repair message, then validly (inside prose).
fn repairing_server() -> AnswerServer {
    AnswerServer::start(false, |body| {
        let Some(i) = index_of(&task_text(body)) else {
            return Reply::Text(valid_answer());
        };
        if repair_rounds(body, REPAIR_LEAD) == 0 {
            Reply::Text(first_bad_answer(i))
        } else {
            Reply::Text(format!(
                "Sorry! Here is the fixed answer:\n{}",
                valid_answer()
            ))
        }
    })
}

#[test]
fn invalid_first_answers_are_repaired_once() {
    let server = repairing_server();
    let dir = tempfile::tempdir().unwrap();
    let n = 12;
    let input = tasks(dir.path(), n, "rate item");
    let out = dir.path().join("out.jsonl");
    let o = run(drover()
        .arg("run")
        .arg(&input)
        .args(["-b", &server.url])
        .arg("--schema")
        .arg(schema_file(dir.path()))
        .arg("-o")
        .arg(&out));
    let err = stderr(&o);
    assert_eq!(code(&o), 0, "{err}");
    assert!(
        err.contains(&format!(
            "[step 3/6] parse: {n} answers parsed, 0 valid at first try"
        )),
        "{err}"
    );
    assert!(
        err.contains(&format!(
            "[step 4/6] repair: {n} repaired ({n} rounds), 0 still invalid after 2 repairs"
        )),
        "{err}"
    );
    // No metrics: auto does not send response_format.
    assert!(
        err.contains("response_format json_schema not sent"),
        "{err}"
    );
    assert!(
        server
            .bodies()
            .iter()
            .all(|b| b.get("response_format").is_none())
    );

    let v = validator();
    for r in read_output(&out) {
        assert!(r["error"].is_null(), "{r}");
        assert_eq!(r["drover"]["repairs"], 1, "{r}");
        assert_eq!(
            r["drover"]["answer"],
            serde_json::from_str::<Value>(&valid_answer()).unwrap()
        );
        assert!(v.is_valid(&r["drover"]["answer"]));
    }
    for i in 0..n {
        let seen = server.requests_for(&format!("rate item {i}"));
        assert_eq!(seen.len(), 2, "task {i}: {seen:?}");
        let repair = seen
            .iter()
            .find(|b| repair_rounds(b, REPAIR_LEAD) == 1)
            .expect("a repair request");
        let msgs = repair["messages"].as_array().unwrap();
        assert_eq!(msgs.len(), 3, "{repair}");
        assert_eq!(
            msgs[1],
            json!({"role": "assistant", "content": first_bad_answer(i)})
        );
        let note = msgs[2]["content"].as_str().unwrap();
        assert!(note.contains(expected_problem(i)), "task {i}: {note}");
        assert!(
            note.contains("Reply with only a JSON object that matches this schema"),
            "{note}"
        );
    }
}

#[test]
fn completions_prompts_are_repaired_by_appending() {
    let server = repairing_server();
    let dir = tempfile::tempdir().unwrap();
    // A completion prompt ends where the answer starts; the task's own text is its first line.
    let lines: Vec<String> = (0..4)
        .map(|i| {
            json!({"id": format!("t{i}"), "prompt": format!("rate item {i}\nJSON:")}).to_string()
        })
        .collect();
    let input = write_lines(dir.path(), "in.jsonl", &lines);
    let out = dir.path().join("out.jsonl");
    let o = run(drover()
        .arg("run")
        .arg(&input)
        .args(["-b", &server.url, "--endpoint", "completions"])
        .arg("--schema")
        .arg(schema_file(dir.path()))
        .arg("-o")
        .arg(&out));
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert!(
        read_output(&out)
            .iter()
            .all(|r| r["drover"]["repairs"] == 1)
    );
    for i in 0..4 {
        let seen = server.requests_for(&format!("rate item {i}"));
        assert_eq!(seen.len(), 2);
        let prompt = seen
            .iter()
            .map(|b| b["prompt"].as_str().unwrap())
            .find(|p| p.contains(REPAIR_LEAD))
            .unwrap();
        let head = format!(
            "rate item {i}\nJSON:{}\n\n{REPAIR_LEAD}",
            first_bad_answer(i)
        );
        assert!(prompt.starts_with(&head), "task {i}: {prompt:?}");
        assert!(prompt.contains(expected_problem(i)), "{prompt:?}");
    }
}

#[test]
fn never_valid_answers_fail_after_exactly_n_repairs() {
    let bad = r#"{"sentiment": "positive", "rating": 9, "recommend": true, "topic": "x"}"#;
    let server = AnswerServer::start(false, move |body| {
        if task_text(body).contains("GOOD") {
            Reply::Text(valid_answer())
        } else {
            Reply::Text(bad.to_string())
        }
    });
    let dir = tempfile::tempdir().unwrap();
    let lines: Vec<String> = ["bad 0", "GOOD 1", "bad 2", "GOOD 3", "bad 4"]
        .iter()
        .enumerate()
        .map(|(i, p)| json!({"id": format!("t{i}"), "prompt": p}).to_string())
        .collect();
    let input = write_lines(dir.path(), "in.jsonl", &lines);
    let (out, table, sum) = (
        dir.path().join("out.jsonl"),
        dir.path().join("t.csv"),
        dir.path().join("s.json"),
    );
    let o = run(drover()
        .arg("run")
        .arg(&input)
        .args(["-b", &server.url, "--repair", "3"])
        .arg("--schema")
        .arg(schema_file(dir.path()))
        .arg("--table")
        .arg(&table)
        .arg("-o")
        .arg(&out)
        .arg("--summary")
        .arg(&sum));
    let err = stderr(&o);
    assert_eq!(code(&o), 1, "{err}");
    assert!(
        err.contains("[step 4/6] repair: 0 repaired, 3 still invalid after 3 repairs"),
        "{err}"
    );

    let records = by_id(&read_output(&out));
    for id in ["t0", "t2", "t4"] {
        let r = &records[id];
        assert_eq!(r["error"]["code"], "invalid_answer", "{r}");
        let message = r["error"]["message"].as_str().unwrap();
        // The dispatcher puts the backend first: "127.0.0.1:PORT: the answer …".
        assert!(message.contains(": the answer does not match the schema after 3 repairs: at /rating: 9 is greater than the maximum of 5"), "{message}");
        assert!(
            message.ends_with(&format!("last answer: {bad}")),
            "{message}"
        );
        assert_eq!(r["drover"]["repairs"], 3, "{r}");
        assert!(r["drover"].get("answer").is_none());
        let text = format!("bad {}", &id[1..]);
        assert_eq!(
            server.requests_for(&text).len(),
            4,
            "{id}: one request and three repairs"
        );
    }
    for (id, text) in [("t1", "GOOD 1"), ("t3", "GOOD 3")] {
        assert!(records[id]["error"].is_null());
        assert_eq!(server.requests_for(text).len(), 1);
    }

    let rows = analyze_csv::parse(&std::fs::read_to_string(&table).unwrap());
    assert_eq!(rows[1], ["t0", "", "", "", "", "", "invalid_answer"]);
    assert_eq!(rows[2], ["t1", "positive", "4", "true", "battery", "", ""]);
    assert_eq!(rows[5], ["t4", "", "", "", "", "", "invalid_answer"]);
    let s = summary(&sum);
    assert_eq!(
        s["answers"]["rating"],
        json!({"counts": {"1": 0, "2": 0, "3": 0, "4": 2, "5": 0}, "min": 4, "mean": 4.0, "max": 4, "present": 2, "missing": 3})
    );
    assert_eq!(s["tasks"]["failed"], 3, "{s}");
}

/// The known set: what task `i` answers.
fn known(i: usize) -> Value {
    let sentiment = ["positive", "negative", "mixed"][i % 3];
    let topic = ["battery", "fit", "price", "noise"][i % 4];
    json!({
        "sentiment": sentiment,
        "rating": 1 + i % 5,
        "recommend": i.is_multiple_of(2),
        "topic": topic,
        "price": i as f64 * 0.5 + 0.25,
    })
}

#[test]
fn aggregation_of_a_known_set_in_summary_and_table() {
    let n = 30;
    let refused = [7, 19];
    let server = AnswerServer::start(true, move |body| {
        let Some(i) = index_of(&task_text(body)) else {
            return Reply::Text(valid_answer());
        };
        if refused.contains(&i) {
            return Reply::BadRequest;
        }
        let answer = known(i).to_string();
        // Some answers in prose, some in fences; later tasks answer sooner, so the output is in
        // (roughly) reverse order and the table has to restore the input order.
        let text = match i % 3 {
            0 => answer,
            1 => format!("Here you go:\n```json\n{answer}\n```"),
            _ => format!("My analysis: {answer} (done)"),
        };
        Reply::Slow(text, Duration::from_millis(((n - i) * 15) as u64))
    });
    let dir = tempfile::tempdir().unwrap();
    let input = tasks(dir.path(), n, "item");
    let (out, table, sum) = (
        dir.path().join("out.jsonl"),
        dir.path().join("t.jsonl"),
        dir.path().join("s.json"),
    );
    let o = run(drover()
        .arg("run")
        .arg(&input)
        .args(["-b", &server.url, "--mode", "concurrent", "--workers", "30"])
        .arg("--schema")
        .arg(schema_file(dir.path()))
        .args(["--fields", "rating,sentiment,recommend,price"])
        .arg("--table")
        .arg(&table)
        .arg("-o")
        .arg(&out)
        .arg("--summary")
        .arg(&sum));
    let err = stderr(&o);
    assert_eq!(code(&o), 1, "two tasks are refused: {err}");
    assert!(
        err.contains("response_format json_schema sent (every backend runs vLLM)"),
        "{err}"
    );
    let bodies = server.bodies();
    assert!(
        bodies
            .iter()
            .all(|b| b["response_format"]["json_schema"]["schema"]
                == serde_json::from_str::<Value>(SCHEMA).unwrap())
    );
    assert!(
        bodies
            .iter()
            .all(|b| b["response_format"]["json_schema"]["name"] == "review")
    );
    let output = read_output(&out);
    assert_ne!(
        output[0]["custom_id"], "t0",
        "the output should be in completion order, not input order"
    );

    // Hand-counted over i in 0..30 without 7 and 19 (both odd, i%3 == 1, i%5 = 2 and 4).
    let s = summary(&sum);
    let a = &s["answers"];
    assert_eq!(
        a["sentiment"],
        json!({"counts": {"positive": 10, "negative": 8, "mixed": 10}, "present": 28, "missing": 2})
    );
    assert_eq!(
        a["recommend"],
        json!({"counts": {"true": 15, "false": 13}, "present": 28, "missing": 2})
    );
    assert_eq!(
        a["rating"]["counts"],
        json!({"1": 6, "2": 6, "3": 5, "4": 6, "5": 5})
    );
    assert_eq!(
        (a["rating"]["min"].as_i64(), a["rating"]["max"].as_i64()),
        (Some(1), Some(5))
    );
    assert!(
        (a["rating"]["mean"].as_f64().unwrap() - 82.0 / 28.0).abs() < 1e-9,
        "{a}"
    );
    assert_eq!(
        (a["price"]["min"].as_f64(), a["price"]["max"].as_f64()),
        (Some(0.25), Some(14.75))
    );
    assert!(
        (a["price"]["mean"].as_f64().unwrap() - ((435.0 - 26.0) * 0.5 / 28.0 + 0.25)).abs() < 1e-9,
        "{a}"
    );
    assert!(
        a["price"].get("counts").is_none() && a.get("topic").is_none(),
        "{a}"
    );

    // The table: input order, the chosen columns in the chosen order, failures with their code.
    let rows: Vec<Value> = std::fs::read_to_string(&table)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(rows.len(), n);
    for (i, row) in rows.iter().enumerate() {
        let keys: Vec<&String> = row.as_object().unwrap().keys().collect();
        assert_eq!(keys.len(), 6, "{row}");
        let expect = if refused.contains(&i) {
            json!({"custom_id": format!("t{i}"), "rating": null, "sentiment": null, "recommend": null, "price": null, "error": "invalid_request"})
        } else {
            let k = known(i);
            json!({"custom_id": format!("t{i}"), "rating": k["rating"], "sentiment": k["sentiment"], "recommend": k["recommend"], "price": k["price"], "error": null})
        };
        assert_eq!(row, &expect, "row {i}");
    }
    // Column order as --fields gave it.
    let first = std::fs::read_to_string(&table)
        .unwrap()
        .lines()
        .next()
        .unwrap()
        .to_string();
    let order: Vec<usize> = [
        "custom_id",
        "rating",
        "sentiment",
        "recommend",
        "price",
        "error",
    ]
    .iter()
    .map(|k| first.find(&format!("\"{k}\"")).unwrap())
    .collect();
    assert!(order.windows(2).all(|w| w[0] < w[1]), "{first}");
}

#[test]
fn structured_on_off_and_table_without_schema() {
    let dir = tempfile::tempdir().unwrap();
    let input = tasks(dir.path(), 3, "item");
    let schema = schema_file(dir.path());

    // A vLLM backend, but --structured off.
    let vllm = AnswerServer::start(true, |_| Reply::Text(valid_answer()));
    let o = run(drover()
        .arg("run")
        .arg(&input)
        .args(["-b", &vllm.url, "--structured", "off"])
        .arg("--schema")
        .arg(&schema)
        .arg("-o")
        .arg(dir.path().join("a.jsonl")));
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert!(stderr(&o).contains("response_format json_schema not sent (--structured off)"));
    assert!(
        vllm.bodies()
            .iter()
            .all(|b| b.get("response_format").is_none())
    );

    // An unknown backend, but --structured on.
    let other = AnswerServer::start(false, |_| Reply::Text(valid_answer()));
    let o = run(drover()
        .arg("run")
        .arg(&input)
        .args(["-b", &other.url, "--structured", "on"])
        .arg("--schema")
        .arg(&schema)
        .arg("-o")
        .arg(dir.path().join("b.jsonl")));
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert_eq!(other.bodies().len(), 3);
    assert!(
        other
            .bodies()
            .iter()
            .all(|b| b["response_format"]["type"] == "json_schema")
    );

    // --table alone: the answer texts, in input order.
    let texts = AnswerServer::start(false, |body| {
        Reply::Text(format!("answer to {}, with \"quotes\"", task_text(body)))
    });
    let table = dir.path().join("texts.csv");
    let o = run(drover()
        .arg("run")
        .arg(&input)
        .args(["-b", &texts.url])
        .arg("--table")
        .arg(&table)
        .arg("-o")
        .arg(dir.path().join("c.jsonl")));
    let err = stderr(&o);
    assert_eq!(code(&o), 0, "{err}");
    assert!(
        err.contains("[step 3/6] parse: 3 answer texts (no --schema: not validated)"),
        "{err}"
    );
    let rows = analyze_csv::parse(&std::fs::read_to_string(&table).unwrap());
    assert_eq!(rows[0], ["custom_id", "answer", "error"]);
    for i in 0..3 {
        assert_eq!(
            rows[i + 1],
            [
                format!("t{i}"),
                format!("answer to item {i}, with \"quotes\""),
                String::new()
            ]
        );
    }
}

#[test]
fn bad_analysis_flags_are_usage_errors_and_send_nothing() {
    let server = AnswerServer::start(true, |_| Reply::Text(valid_answer()));
    let dir = tempfile::tempdir().unwrap();
    let input = tasks(dir.path(), 2, "item");
    let schema = schema_file(dir.path());
    let array_schema = dir.path().join("array.json");
    std::fs::write(&array_schema, r#"{"type": "array"}"#).unwrap();
    let not_json = dir.path().join("broken.json");
    std::fs::write(&not_json, "{\"type\": \"object\",").unwrap();
    let out = dir.path().join("out.jsonl");
    let s = |p: &Path| p.to_str().unwrap().to_string();
    let cases: Vec<(Vec<String>, &str)> = vec![
        (
            vec![
                "--schema".into(),
                s(&schema),
                "--table".into(),
                s(&dir.path().join("t.xlsx")),
            ],
            "unknown format; end the file name in .csv or .jsonl",
        ),
        (
            vec![
                "--schema".into(),
                s(&schema),
                "--table".into(),
                s(&dir.path().join("no/such/dir/t.csv")),
            ],
            "does not exist",
        ),
        (
            vec![
                "--schema".into(),
                s(&schema),
                "--fields".into(),
                "rating,nope".into(),
            ],
            "--fields: \"nope\" is not a property of the --schema (sentiment, rating, recommend, topic, price)",
        ),
        (
            vec!["--schema".into(), s(&array_schema)],
            "answers are JSON objects",
        ),
        (vec!["--schema".into(), s(&not_json)], "not JSON"),
        (
            vec!["--schema".into(), s(&dir.path().join("missing.json"))],
            "cannot read it",
        ),
        (
            vec!["--repair".into(), "1".into()],
            "--repair needs --schema FILE or --fields a,b,c",
        ),
        (
            vec!["--structured".into(), "on".into()],
            "--structured needs --schema FILE",
        ),
    ];
    for (args, want) in cases {
        let o = run(drover()
            .arg("run")
            .arg(&input)
            .args(["-b", &server.url])
            .args(&args)
            .arg("-o")
            .arg(&out));
        let err = stderr(&o);
        assert_eq!(code(&o), 2, "{args:?}: {err}");
        assert!(err.contains(want), "{args:?}: expected {want:?} in:\n{err}");
        assert!(!out.exists(), "{args:?}: the output was created");
    }
    assert!(server.bodies().is_empty(), "a request was sent");
}
