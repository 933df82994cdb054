//! The analysis pipeline on the embedded llama.cpp engine (feature `engine`): a slice of
//! `examples/analyze` with no backend, answers constrained by the schema's grammar
//! (`response_format` is sent because the engine reports vLLM metric names).

mod common;

use std::path::PathBuf;
use std::time::Duration;

use common::{code, drover, read_output, repo, run_for, stderr};
use serde_json::Value;

/// Tasks taken from the example (the first ones: a mix of positive, negative and mixed reviews);
/// one batch of the engine's 8 parallel sequences.
const SLICE: usize = 8;

/// The model the engine loads, or a failure that says how to get it.
fn model() -> PathBuf {
    let path = std::env::var_os("DROVER_MODEL")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            let home = std::env::var_os("HOME")
                .map(PathBuf::from)
                .unwrap_or_default();
            home.join(".cache/drover/models/SmolLM2-135M-Instruct.Q4_1.gguf")
        });
    assert!(
        path.is_file(),
        "model {} is missing: run scripts/setup.sh (it fetches SmolLM2-135M-Instruct.Q4_1.gguf) or point DROVER_MODEL at a GGUF file",
        path.display()
    );
    path
}

#[test]
fn example_slice_on_the_embedded_model_gives_schema_valid_answers() {
    let model = model();
    let example = repo().join("examples/analyze");
    let dir = tempfile::tempdir().unwrap();
    let all = std::fs::read_to_string(example.join("tasks.jsonl")).unwrap();
    let lines: Vec<&str> = all.lines().take(SLICE).collect();
    assert_eq!(
        lines.len(),
        SLICE,
        "examples/analyze/tasks.jsonl has fewer than {SLICE} tasks"
    );
    let input = dir.path().join("slice.jsonl");
    std::fs::write(&input, lines.join("\n") + "\n").unwrap();
    let (out, table, summary) = (
        dir.path().join("out.jsonl"),
        dir.path().join("table.csv"),
        dir.path().join("summary.json"),
    );

    let o = run_for(
        drover()
            .env("DROVER_MODEL", &model)
            .arg("run")
            .arg(&input)
            .arg("--template")
            .arg(example.join("template.j2"))
            .arg("--schema")
            .arg(example.join("schema.json"))
            .arg("--table")
            .arg(&table)
            .arg("-o")
            .arg(&out)
            .arg("--summary")
            .arg(&summary)
            // On 2 shared CPU cores the grammar-constrained batch can take minutes; the default
            // attempt deadline (60 s + 100 ms per max_tokens) would cut it and retry the work.
            .args(["--timeout", "8m"]),
        Duration::from_secs(540),
    );
    let err = stderr(&o);
    assert_eq!(code(&o), 0, "{err}");
    for step in 1..=6 {
        assert!(
            err.contains(&format!("[step {step}/6]")),
            "no step {step} banner:\n{err}"
        );
    }
    assert!(
        err.contains("response_format json_schema sent"),
        "the engine should get the schema:\n{err}"
    );

    // Every answer is valid against the schema, checked here by an independent validator.
    let schema: Value =
        serde_json::from_str(&std::fs::read_to_string(example.join("schema.json")).unwrap())
            .unwrap();
    let validator = jsonschema::validator_for(&schema).unwrap();
    let records = read_output(&out);
    assert_eq!(records.len(), SLICE);
    for r in &records {
        assert!(r["error"].is_null(), "{r}");
        let answer = &r["drover"]["answer"];
        assert!(validator.is_valid(answer), "invalid answer {answer} in {r}");
    }

    // The table follows the input order and holds the same answers.
    let text = std::fs::read_to_string(&table).unwrap();
    let rows: Vec<&str> = text.split("\r\n").filter(|l| !l.is_empty()).collect();
    assert_eq!(rows[0], "custom_id,sentiment,rating,recommend,topic,error");
    assert_eq!(rows.len(), SLICE + 1);
    for (i, row) in rows[1..].iter().enumerate() {
        assert!(
            row.starts_with(&format!("rev-{:03},", i + 1)),
            "row {i}: {row}"
        );
    }

    // The summary counts every task once per field.
    let s: Value = serde_json::from_str(&std::fs::read_to_string(&summary).unwrap()).unwrap();
    let sentiment = &s["answers"]["sentiment"];
    let counted: u64 = sentiment["counts"]
        .as_object()
        .unwrap()
        .values()
        .map(|n| n.as_u64().unwrap())
        .sum();
    assert_eq!(
        (counted, sentiment["present"].as_u64()),
        (SLICE as u64, Some(SLICE as u64)),
        "{s}"
    );
    let rating = &s["answers"]["rating"];
    let (min, max) = (
        rating["min"].as_f64().unwrap(),
        rating["max"].as_f64().unwrap(),
    );
    assert!(
        (1.0..=5.0).contains(&min) && (1.0..=5.0).contains(&max) && min <= max,
        "{rating}"
    );
}
