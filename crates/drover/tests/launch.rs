//! End-to-end tests of `drover launch`: real child processes (`drover sim`, a fake `vllm`,
//! shell commands) on loopback ports picked with `--base-port 0`, checked through the
//! launcher's status lines, the job's output and `/proc` (nothing may be left behind).

mod common;
#[path = "common/launch_proc.rs"]
mod launch_proc;
#[path = "common/sim_process.rs"]
mod sim_process;

use std::collections::HashSet;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use common::{drover, prompt_tasks, read_output, write_lines};
use launch_proc::{assert_no_leftovers, count_lines, send, start};

const BIN: &str = env!("CARGO_BIN_EXE_drover");
const SECOND: Duration = Duration::from_secs(1);

/// `drover launch ARGS` with a clean environment. Default log directories go under Cargo's
/// directory for test files, not the machine's /tmp.
fn launch(args: &[&str]) -> Command {
    let mut c = drover();
    c.arg("launch")
        .args(args)
        .env("TMPDIR", env!("CARGO_TARGET_TMPDIR"));
    c
}

/// Ports from the `-b` list the launcher prints on stdout once the fleet is ready.
fn ports(backends: &str) -> Vec<u16> {
    backends
        .split(',')
        .map(|p| {
            p.parse()
                .unwrap_or_else(|_| panic!("not a port list: {backends:?}"))
        })
        .collect()
}

/// Whether a server answers `/v1/models` with 200.
fn answers(port: u16) -> bool {
    sim_process::http(
        &format!("http://127.0.0.1:{port}"),
        "GET",
        "/v1/models",
        None,
        &[],
        2 * SECOND,
    )
    .is_ok_and(|a| a.status == 200)
}

#[test]
fn a_sim_fleet_survives_a_killed_instance_mid_job_and_leaves_nothing_behind() {
    let dir = tempfile::tempdir().unwrap();
    let input = write_lines(dir.path(), "tasks.jsonl", &prompt_tasks(300, "launch"));
    let output = dir.path().join("out.jsonl");
    let logs = dir.path().join("logs");
    // ~0.65 s per answer (100 tokens of the 8B-on-H100 preset), 8 in flight per instance: the
    // job takes ~8 s, long enough to kill an instance and see it come back.
    let run = format!(
        "{} -o {} --mode concurrent --workers 24 --max-tokens 100",
        input.display(),
        output.display()
    );
    let mut l = start(&mut launch(&[
        "--engine",
        "sim",
        "--instances",
        "3",
        "--base-port",
        "0",
        "--grace",
        "5s",
        "--log-dir",
        logs.to_str().unwrap(),
        "--run",
        &run,
        "--",
        "--preset",
        "llama-3.1-8b-h100",
    ]));
    l.wait_for("fleet ready after", 60 * SECOND);
    let first = l.instance_pids();
    assert_eq!(first.len(), 3, "{}", l.stderr());
    let victim = first[&1][0];
    let deadline = Instant::now() + 60 * SECOND;
    while count_lines(&output) < 45 {
        assert!(
            Instant::now() < deadline,
            "the job did not start answering; stderr:\n{}",
            l.stderr()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let answered_before_kill = count_lines(&output);
    send(victim, "KILL");
    let status = l.wait(120 * SECOND);
    let err = l.stderr();
    assert_eq!(status.code(), Some(0), "stderr:\n{err}");

    // The launcher saw the crash and restarted the instance on the same port.
    let name = err
        .lines()
        .find_map(|s| {
            s.strip_prefix("drover launch: [1] ")
                .and_then(|r| r.split(' ').next())
        })
        .unwrap()
        .to_string();
    let port = name.strip_prefix("sim-").unwrap();
    assert!(
        err.contains(&format!("[1] {name} crashed: exited (signal 9, SIGKILL)")),
        "{err}"
    );
    assert!(
        err.contains(&format!("[1] {name} restarted: ready after")),
        "{err}"
    );
    let pids = l.instance_pids();
    assert_eq!(pids[&1].len(), 2, "one restart: {pids:?}");
    assert_ne!(pids[&1][1], victim);
    assert_eq!(pids[&0].len(), 1);
    assert_eq!(pids[&2].len(), 1);
    // The dispatcher saw it leave and come back.
    let label = format!("127.0.0.1:{port}");
    assert!(
        err.contains(&format!("backend {label} taken out of rotation")),
        "{err}"
    );
    assert!(err.contains(&format!("backend {label} is back")), "{err}");

    // Every task answered exactly once, some of the late ones by the restarted instance.
    let out = read_output(&output);
    assert_eq!(out.len(), 300);
    let ids: HashSet<&str> = out
        .iter()
        .map(|o| o["custom_id"].as_str().unwrap())
        .collect();
    assert_eq!(ids.len(), 300);
    for o in &out {
        assert_eq!(o["response"]["status_code"], 200, "{o}");
    }
    let late_on_restarted = out[answered_before_kill + 30..]
        .iter()
        .filter(|o| {
            o["drover"]["backend"]
                .as_str()
                .is_some_and(|b| b.contains(&label))
        })
        .count();
    assert!(
        late_on_restarted > 0,
        "the restarted instance answered nothing after coming back"
    );

    // Teardown: every instance stopped, nothing left.
    assert!(err.contains("drover launch: stopping 3 instances"), "{err}");
    assert_eq!(err.matches(" stopped (pid ").count(), 3, "{err}");
    assert_no_leftovers(&l.all_pids(), 2 * SECOND);
    // One log per instance, the restart appended to the same file.
    let log = std::fs::read_to_string(logs.join(format!("{name}.log"))).unwrap();
    assert_eq!(log.matches("==> drover launch: ").count(), 2, "{log}");
}

#[test]
fn sigterm_stops_a_kept_up_fleet_and_exits_0() {
    let mut l = start(&mut launch(&[
        "--engine",
        "sim",
        "--instances",
        "2",
        "--base-port",
        "0",
        "--",
        "--preset",
        "instant",
    ]));
    let backends = l.wait_stdout(60 * SECOND);
    let ports = ports(&backends);
    assert_eq!(ports.len(), 2);
    for p in &ports {
        assert!(answers(*p), "instance on {p} does not answer");
    }
    assert!(
        l.stderr().contains("drover launch: fleet ready after"),
        "{}",
        l.stderr()
    );
    let pids = l.all_pids();
    let asked = Instant::now();
    l.signal("TERM");
    let status = l.wait(20 * SECOND);
    assert_eq!(status.code(), Some(0), "{}", l.stderr());
    // sims exit at once on SIGTERM: well inside the 10 s default grace.
    assert!(asked.elapsed() < 8 * SECOND, "took {:?}", asked.elapsed());
    assert_eq!(
        l.stderr().matches(" stopped (pid ").count(),
        2,
        "{}",
        l.stderr()
    );
    assert_no_leftovers(&pids, 2 * SECOND);
    for p in &ports {
        assert!(!answers(*p), "port {p} still answers");
    }
}

#[test]
fn a_process_group_that_ignores_sigterm_is_killed_after_the_grace() {
    // sh ignores SIGTERM and so does its `sleep` (ignored signals are inherited); the sim it
    // started exits on SIGTERM, which leaves the group alive until SIGKILL.
    let script = r#"sh -c 'trap "" TERM; "$DROVER_BIN" sim --ports "$1" --preset instant & while :; do sleep 1; done' srv {port}"#;
    let mut cmd = launch(&["--cmd", script, "--base-port", "0", "--grace", "2s"]);
    cmd.env("DROVER_BIN", BIN);
    let mut l = start(&mut cmd);
    l.wait_stdout(60 * SECOND);
    let pids = l.all_pids();
    let asked = Instant::now();
    l.signal("INT");
    let status = l.wait(30 * SECOND);
    let took = asked.elapsed();
    assert_eq!(status.code(), Some(0), "{}", l.stderr());
    assert!(took >= 2 * SECOND && took < 8 * SECOND, "took {took:?}");
    assert!(
        l.stderr().contains("killed with SIGKILL after the grace"),
        "{}",
        l.stderr()
    );
    assert_no_leftovers(&pids, 2 * SECOND);
}

/// A directory on `PATH` holding the fake `vllm` (and `extra` scripts), plus where it records.
struct FakeVllm {
    dir: tempfile::TempDir,
}

impl FakeVllm {
    fn new(extra: &[(&str, &str)]) -> FakeVllm {
        let dir = tempfile::tempdir().unwrap();
        let bin = dir.path().join("bin");
        std::fs::create_dir_all(&bin).unwrap();
        std::fs::create_dir_all(dir.path().join("records")).unwrap();
        let fixture = common::repo().join("tests/fixtures/launch/vllm");
        install(
            &bin.join("vllm"),
            &std::fs::read_to_string(&fixture).unwrap(),
        );
        for (name, text) in extra {
            install(&bin.join(name), text);
        }
        // A directory the injected `rm -rf x` would remove, were a shell ever involved.
        std::fs::create_dir_all(dir.path().join("work/x")).unwrap();
        FakeVllm { dir }
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut c = launch(args);
        let path = format!(
            "{}:{}",
            self.dir.path().join("bin").display(),
            std::env::var("PATH").unwrap_or_default()
        );
        c.env("PATH", path)
            .env("DROVER_BIN", BIN)
            .env("DROVER_FAKE_VLLM_RECORD", self.dir.path().join("records"))
            .current_dir(self.dir.path().join("work"));
        c
    }

    /// The recorded argv (after the program) and environment line of the instance on `port`.
    fn record(&self, port: u16) -> (Vec<String>, String) {
        let base = self.dir.path().join(format!("records/vllm-{port}"));
        let argv = std::fs::read(base.with_extension("argv")).unwrap();
        let argv = argv
            .split(|b| *b == 0)
            .filter(|a| !a.is_empty())
            .map(|a| String::from_utf8(a.to_vec()).unwrap())
            .collect();
        let env = std::fs::read_to_string(base.with_extension("env")).unwrap();
        (argv, env.trim().to_string())
    }
}

fn install(path: &Path, text: &str) {
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::write(path, text).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).unwrap();
}

#[test]
fn vllm_gets_the_exact_command_line_and_one_gpu_each_without_a_shell() {
    let fake = FakeVllm::new(&[]);
    let model = "my/model; rm -rf x";
    let mut l = start(&mut fake.command(&[
        "--engine",
        "vllm",
        "--model",
        model,
        "--gpus",
        "0,1",
        "--per-gpu",
        "1",
        "--base-port",
        "0",
        "--",
        "--max-model-len",
        "4096",
    ]));
    let ports = ports(&l.wait_stdout(60 * SECOND));
    assert_eq!(ports.len(), 2);
    for (gpu, port) in ports.iter().enumerate() {
        let (argv, env) = fake.record(*port);
        let port = port.to_string();
        assert_eq!(
            argv,
            [
                "serve",
                model,
                "--host",
                "127.0.0.1",
                "--port",
                &port,
                "--max-model-len",
                "4096"
            ]
        );
        assert_eq!(env, format!("CUDA_VISIBLE_DEVICES={gpu}"));
        // The status line shows a command that can be pasted into a shell as is.
        let shown = format!(
            "CUDA_VISIBLE_DEVICES={gpu} vllm serve 'my/model; rm -rf x' --host 127.0.0.1 --port {port}"
        );
        assert!(l.stderr().contains(&shown), "{}", l.stderr());
    }
    assert!(
        fake.dir.path().join("work/x").is_dir(),
        "the model name reached a shell"
    );
    let pids = l.all_pids();
    l.signal("TERM");
    assert_eq!(l.wait(20 * SECOND).code(), Some(0), "{}", l.stderr());
    assert_no_leftovers(&pids, 2 * SECOND);
}

#[test]
fn vllm_defaults_to_one_instance_per_gpu_from_nvidia_smi() {
    let fake = FakeVllm::new(&[("nvidia-smi", "#!/bin/sh\nprintf '0\\n1\\n2\\n'\n")]);
    let mut l = start(&mut fake.command(&["--engine", "vllm", "--model", "m", "--base-port", "0"]));
    let ports = ports(&l.wait_stdout(60 * SECOND));
    let gpus: Vec<String> = ports.iter().map(|p| fake.record(*p).1).collect();
    assert_eq!(
        gpus,
        [
            "CUDA_VISIBLE_DEVICES=0",
            "CUDA_VISIBLE_DEVICES=1",
            "CUDA_VISIBLE_DEVICES=2"
        ]
    );
    drop(l);
}

#[test]
fn an_instance_that_exits_during_start_up_shows_its_log_and_command_and_stops_the_rest() {
    // Instance 1 fails like a server that cannot load its model; instance 0 is a healthy sim.
    let script = r#"sh -c 'if [ "$1" = 1 ]; then echo "loading weights"; echo "CUDA out of memory" >&2; exit 3; fi; exec "$DROVER_BIN" sim --ports "$2" --preset instant' srv {index} {port}"#;
    let mut cmd = launch(&[
        "--cmd",
        script,
        "--instances",
        "2",
        "--base-port",
        "0",
        "--ready-timeout",
        "60s",
    ]);
    cmd.env("DROVER_BIN", BIN);
    let mut l = start(&mut cmd);
    let status = l.wait(60 * SECOND);
    let err = l.stderr();
    assert_eq!(status.code(), Some(2), "{err}");
    let line = err
        .lines()
        .find(|s| s.contains("exited (code 3) during start-up"))
        .unwrap_or_else(|| panic!("{err}"));
    assert!(line.starts_with("drover launch: [1] sh-"), "{line}");
    assert!(
        err.contains("  | loading weights\n  | CUDA out of memory"),
        "{err}"
    );
    let port = line.split("sh-").nth(1).unwrap().split(' ').next().unwrap();
    assert!(
        err.contains("  command: sh -c 'if [ \"$1\" = 1 ]; then")
            && err.contains(&format!("' srv 1 {port}")),
        "{err}"
    );
    assert!(
        l.stdout_lines().is_empty(),
        "never ready, so no backend list"
    );
    assert_no_leftovers(&l.all_pids(), 2 * SECOND);
}

#[test]
fn mistakes_are_reported_before_anything_starts() {
    let empty = tempfile::tempdir().unwrap();
    let check = |cmd: &mut Command, expect: &str| {
        let o = common::run_for(cmd, 30 * SECOND);
        let err = common::stderr(&o);
        assert_eq!(o.status.code(), Some(2), "{err}");
        assert!(err.contains(expect), "expected {expect:?} in:\n{err}");
        assert!(!err.contains(" starting (pid "), "{err}");
    };
    // A missing engine names what to install.
    let mut c = launch(&[
        "--engine",
        "llama-server",
        "--model",
        "m.gguf",
        "--base-port",
        "0",
    ]);
    c.env("PATH", empty.path());
    let o = common::run_for(&mut c, 30 * SECOND);
    let err = common::stderr(&o);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(
        err.contains("could not be started")
            && err.contains("put llama.cpp's `llama-server` on PATH"),
        "{err}"
    );
    // A taken port, before any model loads.
    let busy = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = busy.local_addr().unwrap().port().to_string();
    check(
        &mut launch(&["--engine", "sim", "--base-port", &port]),
        &format!("port {port} on 127.0.0.1 is in use"),
    );
    // A bad job, before the fleet starts.
    check(
        &mut launch(&[
            "--engine",
            "sim",
            "--base-port",
            "0",
            "--run",
            "tasks.jsonl --mode fastest",
        ]),
        "--run: ",
    );
    check(
        &mut launch(&["--engine", "vllm", "--gpus", "0", "--base-port", "0"]),
        "--model: --engine vllm needs",
    );
    let mut c = launch(&["--engine", "vllm", "--model", "m", "--base-port", "0"]);
    c.env("PATH", empty.path());
    check(&mut c, "--gpus auto: nvidia-smi is not on PATH");
}

#[test]
fn run_multi_vllm_example_is_one_launch_line() {
    let text = std::fs::read_to_string(common::repo().join("examples/run_multi_vllm.sh")).unwrap();
    let commands: Vec<&str> = text
        .lines()
        .filter(|l| l.trim_start().starts_with("exec drover launch"))
        .collect();
    assert_eq!(commands.len(), 1, "{text}");
    assert!(text.contains("--run"), "{text}");
    let status = Command::new("sh")
        .arg("-n")
        .arg(common::repo().join("examples/run_multi_vllm.sh"))
        .status()
        .unwrap();
    assert!(status.success(), "the example is not valid sh");
}

#[test]
fn a_launcher_killed_with_sigkill_still_takes_its_instances_down() {
    // SIGKILL runs no cleanup; the parent-death signal (Linux) is the backstop: sims exit on
    // the SIGTERM the kernel sends them.
    let mut l = start(&mut launch(&[
        "--engine",
        "sim",
        "--instances",
        "2",
        "--base-port",
        "0",
        "--",
        "--preset",
        "instant",
    ]));
    let ports = ports(&l.wait_stdout(60 * SECOND));
    let pids = l.all_pids();
    l.signal("KILL");
    l.wait(10 * SECOND);
    assert_no_leftovers(&pids, 10 * SECOND);
    for p in &ports {
        assert!(!answers(*p), "port {p} still answers");
    }
}

#[test]
fn the_leftover_check_sees_a_live_process_group() {
    use std::os::unix::process::CommandExt as _;
    let mut child = Command::new("sh")
        .args(["-c", "sleep 30 & wait"])
        .process_group(0)
        .spawn()
        .unwrap();
    let group = child.id();
    let deadline = Instant::now() + 10 * SECOND;
    // sh and its sleep: both in the group.
    while launch_proc::leftovers(&[group]).len() < 2 {
        assert!(
            Instant::now() < deadline,
            "{:?}",
            launch_proc::leftovers(&[group])
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = Command::new("kill")
        .args(["-KILL", "--", &format!("-{group}")])
        .status();
    let _ = child.wait();
    assert_no_leftovers(&[group], 5 * SECOND);
}
