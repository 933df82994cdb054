//! The Python package end to end (`pip install drover`): the wheel is built by maturin with the
//! documented command (`scripts/build-wheel.sh`, dev profile, in its own target folder
//! `<target>/python-wheel` so it stays warm between runs), installed with pip into a fresh
//! virtual environment (no network: a bin wheel has no dependencies), and
//! `tests/py/api_wheel.py` drives jobs through `drover.run` against `drover sim`: 200 tasks, a
//! DataFrame, structured answers (`schema=`) as columns, failures, the CLI's usage errors as
//! exceptions, `python -m drover`, and a slow job interrupted with SIGINT (Ctrl-C) and resumed.
//!
//! Needs the project venv's Python with maturin and pandas (`scripts/setup.sh --test`, or
//! `DROVER_PYTHON`).

#[path = "common/python.rs"]
mod python;
#[path = "common/sim_process.rs"]
mod sim_process;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use sim_process::digest;

const SEED_VARS: [&str; 9] = [
    "VLLM_PORTS",
    "USE_MULTI_VLLM",
    "USE_CONCURRENT",
    "MAX_WORKERS",
    "DROVER_BACKENDS",
    "DROVER_MODEL",
    "OPENAI_API_KEY",
    "DROVER_BIN",
    "DROVER_WHEEL_FEATURES",
];

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .unwrap()
}

/// The project venv's Python with maturin and pandas, or a failure saying how to get it.
fn python() -> PathBuf {
    python::python_with(&["maturin", "pandas"])
}

/// A value of Python's `sysconfig.get_path(name)`.
fn sysconfig_path(python: &Path, name: &str) -> PathBuf {
    let out = Command::new(python)
        .args([
            "-c",
            &format!("import sysconfig; print(sysconfig.get_path({name:?}))"),
        ])
        .output()
        .expect("python runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    PathBuf::from(String::from_utf8(out.stdout).unwrap().trim())
}

/// Runs a command to completion within `limit`, output captured; panics with it otherwise.
fn run_within(cmd: &mut Command, limit: Duration, what: &str) -> Output {
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd
        .spawn()
        .unwrap_or_else(|e| panic!("{what}: cannot start: {e}"));
    // Drain both pipes while waiting, so a chatty child never blocks on a full pipe.
    let mut stdout = child.stdout.take().unwrap();
    let mut stderr = child.stderr.take().unwrap();
    let out_reader = std::thread::spawn(move || {
        let mut buf = Vec::new();
        let _ = std::io::Read::read_to_end(&mut stdout, &mut buf);
        buf
    });
    let err_reader = std::thread::spawn(move || {
        let mut buf = Vec::new();
        let _ = std::io::Read::read_to_end(&mut stderr, &mut buf);
        buf
    });
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if started.elapsed() > limit {
            let _ = child.kill();
            let _ = child.wait();
            let out = String::from_utf8_lossy(&out_reader.join().unwrap()).into_owned();
            let err = String::from_utf8_lossy(&err_reader.join().unwrap()).into_owned();
            panic!("{what} did not finish within {limit:?}\nstdout:\n{out}\nstderr:\n{err}");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    Output {
        status,
        stdout: out_reader.join().unwrap(),
        stderr: err_reader.join().unwrap(),
    }
}

fn report(out: &Output) -> String {
    format!(
        "stdout:\n{}\nstderr:\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// Builds the wheel with `scripts/build-wheel.sh` into `dist`; returns its path.
fn build_wheel(python: &Path, dist: &Path) -> PathBuf {
    let bin = PathBuf::from(env!("CARGO_BIN_EXE_drover"));
    // <target>/<profile>/drover → <target>/python-wheel: maturin's own cargo build, kept warm.
    let target = bin
        .parent()
        .and_then(Path::parent)
        .expect("target folder")
        .join("python-wheel");
    let maturin = sysconfig_path(python, "scripts").join("maturin");
    let started = Instant::now();
    let mut cmd = Command::new("bash");
    cmd.arg(repo().join("scripts/build-wheel.sh"))
        .current_dir(repo())
        .env("MATURIN", &maturin)
        .env("DROVER_WHEEL_PROFILE", "dev")
        .env("DROVER_WHEEL_OUT", dist)
        .env("CARGO_TARGET_DIR", &target)
        .env_remove("DROVER_WHEEL_FEATURES");
    let out = run_within(
        &mut cmd,
        Duration::from_secs(30 * 60),
        "scripts/build-wheel.sh",
    );
    assert!(
        out.status.success(),
        "scripts/build-wheel.sh failed\n{}",
        report(&out)
    );
    let wheel = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
    assert!(
        wheel.is_file(),
        "scripts/build-wheel.sh printed {wheel:?}, not a wheel\n{}",
        report(&out)
    );
    let name = wheel.file_name().unwrap().to_string_lossy().into_owned();
    assert!(
        name.starts_with(&format!("drover-{}-py3-none-", env!("CARGO_PKG_VERSION")))
            && name.ends_with(".whl"),
        "unexpected wheel name {name}"
    );
    eprintln!("python_api: built {name} in {:.0?}", started.elapsed());
    wheel
}

/// A fresh virtual environment with the wheel installed; returns its Python.
fn install_into_fresh_venv(python: &Path, wheel: &Path, dir: &Path) -> PathBuf {
    let venv = dir.join("venv");
    let out = run_within(
        Command::new(python).args(["-m", "venv"]).arg(&venv),
        Duration::from_secs(120),
        "python -m venv",
    );
    assert!(
        out.status.success(),
        "python -m venv failed\n{}",
        report(&out)
    );
    let vpython = venv.join("bin/python");
    let out = run_within(
        Command::new(&vpython)
            .args([
                "-m",
                "pip",
                "install",
                "--no-index",
                "--disable-pip-version-check",
                "-q",
            ])
            .arg(wheel),
        Duration::from_secs(300),
        "pip install WHEEL",
    );
    assert!(
        out.status.success(),
        "pip install {} failed\n{}",
        wheel.display(),
        report(&out)
    );
    assert!(
        venv.join("bin/drover").is_file(),
        "the wheel installed no bin/drover"
    );
    // Test peers (pandas) from the project venv, after the fresh venv's own packages.
    let purelib = sysconfig_path(&vpython, "purelib");
    std::fs::write(
        purelib.join("zz_drover_test_peers.pth"),
        format!("{}\n", sysconfig_path(python, "purelib").display()),
    )
    .unwrap();
    vpython
}

/// A `drover sim` of this build, its stderr in a file (read when the test fails); killed when dropped.
struct Sim {
    child: Child,
    urls: Vec<String>,
    log: PathBuf,
}

impl Sim {
    fn start(args: &[&str], instances: usize, log: PathBuf) -> Sim {
        let mut child = Command::new(env!("CARGO_BIN_EXE_drover"))
            .arg("sim")
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .expect("drover sim starts");
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let mut urls = Vec::new();
        while urls.len() < instances {
            let line = lines.next().and_then(Result::ok).unwrap_or_else(|| {
                panic!(
                    "drover sim {args:?} stopped before its banner: {}",
                    std::fs::read_to_string(&log).unwrap_or_default()
                )
            });
            let prefix = format!("drover sim: instance {} listening on ", urls.len());
            let rest = line
                .strip_prefix(&prefix)
                .unwrap_or_else(|| panic!("unexpected banner line {line:?}"));
            urls.push(rest.split(' ').next().unwrap().to_string());
        }
        Sim { child, urls, log }
    }

    /// Whether it still runs, and what it printed.
    fn state(&mut self) -> String {
        let status = match self.child.try_wait() {
            Ok(None) => "running".to_string(),
            Ok(Some(s)) => format!("exited: {s}"),
            Err(e) => format!("unknown: {e}"),
        };
        format!(
            "{} ({status}):\n{}",
            self.urls.join(","),
            std::fs::read_to_string(&self.log).unwrap_or_default()
        )
    }
}

impl Drop for Sim {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn wheel_installs_and_python_api_runs_resumable_jobs() {
    let python = python();
    let tmp = tempfile::tempdir().unwrap();
    let wheel = build_wheel(&python, &tmp.path().join("dist"));
    let vpython = install_into_fresh_venv(&python, &wheel, tmp.path());

    let mut fast = Sim::start(
        &["--ports", "0,0", "--preset", "instant"],
        2,
        tmp.path().join("sim-fast.log"),
    );
    let mut slow = Sim::start(
        &[
            "--ports",
            "0,0",
            "--preset",
            "llama-3.1-8b-h100",
            "--time-scale",
            "2",
            "--max-num-seqs",
            "16",
        ],
        2,
        tmp.path().join("sim-slow.log"),
    );

    let fast_prompts: Vec<String> = (0..200).map(|i| format!("python task {i}")).collect();
    let slow_prompts: Vec<String> = (0..400).map(|i| format!("slow python task {i}")).collect();
    let reviews: Vec<String> = (0..30).map(|i| format!("review number {i}")).collect();
    let rendered: Vec<String> = reviews.iter().map(|r| format!("Review: {r}")).collect();
    let digests: serde_json::Map<String, serde_json::Value> = fast_prompts
        .iter()
        .chain(&slow_prompts)
        .chain(&rendered)
        .map(|p| (p.clone(), serde_json::Value::String(digest(p))))
        .collect();
    let fixtures = tmp.path().join("fixtures.json");
    let fixture = serde_json::json!({"fast": fast_prompts, "slow": slow_prompts, "reviews": reviews, "digest": digests});
    std::fs::write(&fixtures, fixture.to_string()).unwrap();
    let work = tmp.path().join("work");
    std::fs::create_dir(&work).unwrap();

    let mut cmd = Command::new(&vpython);
    cmd.arg(repo().join("tests/py/api_wheel.py"))
        .current_dir(&work)
        .env("DROVER_TEST_FAST", fast.urls.join(","))
        .env("DROVER_TEST_SLOW", slow.urls.join(","))
        .env("DROVER_TEST_FIXTURES", &fixtures)
        .env("DROVER_TEST_WORK", &work)
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .env_remove("PYTHONPATH");
    for v in SEED_VARS {
        cmd.env_remove(v);
    }
    let started = Instant::now();
    let out = run_within(&mut cmd, Duration::from_secs(300), "tests/py/api_wheel.py");
    let text = report(&out);
    eprintln!(
        "python_api: tests/py/api_wheel.py ran in {:.0?}\n{text}",
        started.elapsed()
    );
    assert!(
        out.status.success(),
        "tests/py/api_wheel.py failed\n{text}\nsims: {}\n{}",
        fast.state(),
        slow.state()
    );
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("python api: all checks passed"),
        "{text}"
    );
}
