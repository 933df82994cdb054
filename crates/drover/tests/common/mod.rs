//! Helpers shared by the end-to-end tests: the real `drover` binary, in-process OpenAI-style
//! test servers on port 0, and small file utilities.
#![allow(dead_code)]

pub mod fleet;
pub mod server;

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Duration;

/// The repository root.
pub fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .unwrap()
}

/// `drover` with a clean environment: the seed's variables of whoever runs the tests must not leak in.
pub fn drover() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_drover"));
    for v in [
        "VLLM_PORTS",
        "USE_MULTI_VLLM",
        "USE_CONCURRENT",
        "MAX_WORKERS",
        "DROVER_BACKENDS",
        "OPENAI_API_KEY",
        "DROVER_MODEL",
    ] {
        c.env_remove(v);
    }
    c.stdin(Stdio::null());
    c
}

/// Runs a command with a deadline; panics with its output if it does not finish.
pub fn run_for(cmd: &mut Command, limit: Duration) -> Output {
    cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
    let mut child = cmd.spawn().expect("spawn drover");
    let start = std::time::Instant::now();
    loop {
        if child.try_wait().unwrap().is_some() {
            return child.wait_with_output().unwrap();
        }
        if start.elapsed() > limit {
            let _ = child.kill();
            let out = child.wait_with_output().unwrap();
            panic!(
                "drover did not finish within {limit:?}\nstdout:\n{}\nstderr:\n{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Runs with the default deadline (60 s).
pub fn run(cmd: &mut Command) -> Output {
    run_for(cmd, Duration::from_secs(60))
}

/// stderr as text.
pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Writes lines to `dir/name` and returns the path.
pub fn write_lines(dir: &Path, name: &str, lines: &[String]) -> PathBuf {
    let p = dir.join(name);
    let mut text = lines.join("\n");
    text.push('\n');
    std::fs::write(&p, text).unwrap();
    p
}

/// The output's lines, parsed.
pub fn read_output(path: &Path) -> Vec<serde_json::Value> {
    let text =
        std::fs::read_to_string(path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
    text.lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("bad output line {l:?}: {e}")))
        .collect()
}

/// `n` prompt tasks `t0..t{n-1}`.
pub fn prompt_tasks(n: usize, prompt: &str) -> Vec<String> {
    (0..n)
        .map(|i| format!(r#"{{"id":"t{i}","prompt":"{prompt} {i}"}}"#))
        .collect()
}

/// Exit code, or a panic with stderr when the process was killed.
pub fn code(o: &Output) -> i32 {
    o.status
        .code()
        .unwrap_or_else(|| panic!("killed by a signal; stderr:\n{}", stderr(o)))
}
