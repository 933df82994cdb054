//! `drover launch --engine drover`: a job on two real `drover serve` instances (the embedded
//! llama.cpp engine with the default model), then a clean teardown.
//!
//! Needs the `engine` feature and the model (`scripts/setup.sh --test`, or `DROVER_MODEL`).

mod common;
#[path = "common/launch_proc.rs"]
mod launch_proc;

use std::collections::HashSet;
use std::path::PathBuf;
use std::time::Duration;

use common::{drover, prompt_tasks, read_output, write_lines};
use launch_proc::{assert_no_leftovers, start};

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
        "this test needs the model at {}: run `scripts/setup.sh --test` (or set DROVER_MODEL)",
        path.display()
    );
    path
}

#[test]
fn a_job_runs_on_two_drover_serve_instances_and_both_are_stopped() {
    let model = model();
    let dir = tempfile::tempdir().unwrap();
    let input = write_lines(
        dir.path(),
        "tasks.jsonl",
        &prompt_tasks(12, "Say hello to number"),
    );
    let output = dir.path().join("out.jsonl");
    let run = format!("{} -o {} --max-tokens 8", input.display(), output.display());
    let logs = dir.path().join("logs");
    let mut cmd = drover();
    cmd.args([
        "launch",
        "--log-dir",
        logs.to_str().unwrap(),
        "--engine",
        "drover",
        "--instances",
        "2",
        "--base-port",
        "0",
        "--ready-timeout",
        "5m",
    ])
    .arg("--model")
    .arg(&model)
    .args([
        "--run",
        &run,
        "--",
        "--threads",
        "1",
        "--parallel",
        "2",
        "--ctx",
        "512",
    ]);
    let mut l = start(&mut cmd);
    let status = l.wait(Duration::from_secs(600));
    let err = l.stderr();
    assert_eq!(status.code(), Some(0), "{err}");
    let ready = err
        .lines()
        .filter(|l| l.contains(" ready after ") && l.contains("(pid "))
        .count();
    assert_eq!(ready, 2, "{err}");
    assert!(err.contains(" serve --model "), "{err}");

    let out = read_output(&output);
    assert_eq!(out.len(), 12, "{err}");
    let ids: HashSet<&str> = out
        .iter()
        .map(|o| o["custom_id"].as_str().unwrap())
        .collect();
    assert_eq!(ids.len(), 12);
    let mut backends = HashSet::new();
    for o in &out {
        assert_eq!(o["response"]["status_code"], 200, "{o}");
        let text = o["response"]["body"]["choices"][0]["message"]["content"]
            .as_str()
            .unwrap_or_default();
        assert!(!text.is_empty(), "empty answer: {o}");
        backends.insert(o["drover"]["backend"].as_str().unwrap().to_string());
    }
    assert_eq!(backends.len(), 2, "both instances took work: {backends:?}");
    assert_eq!(err.matches(" stopped (pid ").count(), 2, "{err}");
    assert_no_leftovers(&l.all_pids(), Duration::from_secs(2));
}
