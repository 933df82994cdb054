//! `drover launch`: start, watch and stop a local fleet — the seed's `run_multi_vllm.sh` in one
//! command.
//!
//! Flags are parsed by clap (no I/O), turned into a [`Plan`] (GPUs listed, ports checked, the
//! `--run` job parsed: every mistake is reported before anything starts), then the fleet runs
//! on `drover_launch`'s supervisor thread. The main thread either waits for a signal (no
//! `--run`) or runs the job with [`crate::cmd::run::run_on`] on the fleet's URLs; a small
//! thread turns SIGINT/SIGTERM into the right action for the current phase.

use std::io::Write as _;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use clap::{Args, Parser, ValueEnum};
use drover_launch::gpus::{self, GpuArg};
use drover_launch::{
    Engine, Event, Fleet, FleetRequest, FleetSpec, LaunchError, StopOutcome, Stopper, Template,
};

use crate::cmd::run::RunArgs;
use crate::exit;

/// The server each instance runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum EngineArg {
    /// `vllm serve MODEL --host H --port P` (one per GPU by default).
    Vllm,
    /// `python3 -m sglang.launch_server --model-path MODEL --host H --port P` (one per GPU by default).
    Sglang,
    /// llama.cpp's `llama-server -m MODEL --host H --port P`.
    #[value(name = "llama-server")]
    LlamaServer,
    /// `drover serve [--model GGUF] --host H --port P` (the embedded engine).
    Drover,
    /// `drover sim --ports P --host H [--model NAME]` (simulated vLLM, no GPU).
    Sim,
}

/// Arguments of `drover launch`.
#[derive(Debug, Args)]
#[command(
    group = clap::ArgGroup::new("server").required(true).args(["engine", "cmd"]),
    after_help = "Examples:\n  \
    drover launch --engine vllm --model meta-llama/Llama-3.1-8B-Instruct --gpus 0,1,2,3 -- --max-model-len 8192\n  \
    drover launch --engine vllm --model M --gpus auto --run 'tasks.jsonl -o results.jsonl'\n  \
    drover launch --cmd 'my-server --port {port} --device cuda:{gpu}' --gpus 0,1\n\
    Without --run the fleet stays up (crashed instances are restarted) until Ctrl-C or SIGTERM; stdout gets one \
    line, the backend list for `drover run -b`, once every instance is ready.\n\
    Exit codes: with --run, the job's (0, 1, 2, 130); otherwise 0 when stopped by Ctrl-C/SIGTERM after the fleet \
    was ready, 2 for a bad flag or an instance that failed to start (its log tail and command line are printed), \
    130 when stopped before the fleet was ready."
)]
pub struct LaunchArgs {
    /// Server to run on every instance.
    #[arg(long, value_enum)]
    engine: Option<EngineArg>,

    /// Any other server: a command line with {port} (required), {gpu}, {model}, {host}, {index}.
    /// Split into words like a shell would, but never run by one.
    #[arg(long, value_name = "TEMPLATE")]
    cmd: Option<String>,

    /// Model to serve (a name or a path; required for vllm, sglang and llama-server).
    #[arg(long, value_name = "MODEL")]
    model: Option<String>,

    /// GPUs, one instance each (× --per-gpu): `0,1,2,3`, `0+1,2+3` (two GPUs per instance), or
    /// `auto` (nvidia-smi) [default for vllm and sglang: auto].
    #[arg(long, value_name = "LIST|auto")]
    gpus: Option<String>,

    /// Instances without GPUs [default: 1 (vllm, sglang: one per GPU)].
    #[arg(long, value_name = "N", conflicts_with = "gpus")]
    instances: Option<usize>,

    /// Instances sharing each GPU (split its memory with the engine's own flag, e.g.
    /// `-- --gpu-memory-utilization 0.45`).
    #[arg(long, value_name = "K")]
    per_gpu: Option<usize>,

    /// Port of the first instance; the others follow. 0 picks free ports.
    #[arg(long, default_value_t = 8001, value_name = "PORT")]
    base_port: u16,

    /// Address the instances listen on.
    #[arg(long, default_value = "127.0.0.1", value_name = "ADDR")]
    host: String,

    /// Where each instance's log goes (`<engine>-<port>.log`) [default: a new temporary directory].
    #[arg(long, value_name = "DIR")]
    log_dir: Option<PathBuf>,

    /// How long an instance may take to load and answer /health and /v1/models.
    #[arg(long, default_value = "20m", value_name = "DURATION", value_parser = parse_duration)]
    ready_timeout: Duration,

    /// How long instances may take to exit after SIGTERM before they are killed.
    #[arg(long, default_value = "10s", value_name = "DURATION", value_parser = parse_duration)]
    grace: Duration,

    /// Once the fleet is ready, run this `drover run` job on it, then stop the fleet and exit
    /// with the job's code, e.g. --run 'tasks.jsonl -o results.jsonl'.
    #[arg(long, value_name = "RUN ARGS")]
    run: Option<String>,

    /// Arguments for every instance's server, after `--` (e.g. `-- --max-model-len 8192`);
    /// {port}, {gpu}, {model}, {host} and {index} are filled in.
    #[arg(last = true, value_name = "ENGINE ARGS")]
    extra: Vec<String>,
}

fn parse_duration(s: &str) -> Result<Duration, String> {
    humantime::parse_duration(s).map_err(|e| format!("{e}: write a duration like 90s, 20m or 1h"))
}

/// `drover run` arguments inside `--run`.
#[derive(Debug, Parser)]
#[command(name = "drover run", disable_version_flag = true)]
struct RunCli {
    #[command(flatten)]
    run: RunArgs,
}

/// What to do, validated.
struct Plan {
    spec: FleetSpec,
    engine: String,
    job: Option<RunArgs>,
    /// `-b` value naming the fleet.
    backends: String,
}

fn plan(args: LaunchArgs) -> Result<Plan, String> {
    // The job first: a typo in it must not cost a 10-minute model load.
    let job = match &args.run {
        Some(text) => Some(parse_run(text)?),
        None => None,
    };
    let engine = match (args.engine, &args.cmd) {
        (_, Some(t)) => Engine::Custom(Template::parse(t).map_err(|e| e.to_string())?),
        (Some(EngineArg::Vllm), None) => Engine::Vllm,
        (Some(EngineArg::Sglang), None) => Engine::Sglang,
        (Some(EngineArg::LlamaServer), None) => Engine::LlamaServer,
        (Some(e @ (EngineArg::Drover | EngineArg::Sim)), None) => {
            let exe = std::env::current_exe().map_err(|err| {
                format!("--engine: cannot find this drover executable to start instances ({err})")
            })?;
            if e == EngineArg::Drover {
                Engine::Drover { exe }
            } else {
                Engine::Sim { exe }
            }
        }
        (None, None) => {
            return Err(
                "name the server with --engine (vllm, sglang, llama-server, drover, sim) or --cmd"
                    .into(),
            );
        }
    };
    let gpu_arg = match &args.gpus {
        Some(s) => Some(gpus::parse(s).map_err(|e| e.to_string())?),
        None if args.instances.is_none() && engine.one_per_gpu_by_default() => Some(GpuArg::Auto),
        None => None,
    };
    let gpus = match gpu_arg {
        Some(GpuArg::Auto) => Some(gpus::detect().map_err(|e| match &args.gpus {
            Some(_) => e.to_string(),
            None => format!("{e} (vllm and sglang default to --gpus auto: one instance per GPU)"),
        })?),
        Some(GpuArg::List(l)) => Some(l),
        None => None,
    };
    let request = FleetRequest {
        engine: engine.clone(),
        model: args.model.clone(),
        gpus,
        instances: args.instances,
        per_gpu: args.per_gpu,
        host: args.host.clone(),
        extra: args.extra.clone(),
    };
    let count = request.layout().map_err(|e| e.to_string())?.len();
    let ports = drover_launch::ports::assign(&args.host, args.base_port, count)
        .map_err(|e| e.to_string())?;
    let instances = request.instances(&ports).map_err(|e| e.to_string())?;
    let log_dir = match args.log_dir {
        Some(d) => d,
        None => tempfile::Builder::new()
            .prefix("drover-launch-")
            .tempdir()
            .map_err(|e| {
                format!(
                    "cannot create a log directory in {} ({e}); name one with --log-dir",
                    std::env::temp_dir().display()
                )
            })?
            .keep(),
    };
    let backends = instances
        .iter()
        .map(|i| match i.url.strip_prefix("http://127.0.0.1:") {
            Some(port) => port.to_string(),
            None => i.url.trim_start_matches("http://").to_string(),
        })
        .collect::<Vec<_>>()
        .join(",");
    let mut spec = FleetSpec::new(instances, log_dir);
    spec.ready_timeout = args.ready_timeout;
    spec.grace = args.grace;
    Ok(Plan {
        spec,
        engine: engine.name(),
        job,
        backends,
    })
}

/// Splits `--run`'s text like a shell and parses it as `drover run` arguments.
fn parse_run(text: &str) -> Result<RunArgs, String> {
    let words = shlex::split(text).ok_or_else(|| {
        format!(
            "--run: cannot split {text:?} into words: a quote is not closed or a backslash ends it"
        )
    })?;
    RunCli::try_parse_from(std::iter::once("drover run".to_string()).chain(words))
        .map(|c| c.run)
        .map_err(|e| format!("--run: {}", e.render().to_string().trim_end()))
}

/// Where the main thread is, for the signal thread.
const STARTING: u8 = 0;
const UP: u8 = 1;
const JOB: u8 = 2;
const STOPPING: u8 = 3;

/// Runs `drover launch`; returns the exit code.
pub fn main(args: LaunchArgs) -> u8 {
    let plan = match plan(args) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("drover launch: {e}");
            return exit::USAGE;
        }
    };
    let phase = Arc::new(AtomicU8::new(STARTING));
    let (signal_tx, signals) = mpsc::channel();
    // Before any child exists: a Ctrl-C from now on is ours to handle, never a silent death.
    let stoppers = match watch_signals(phase.clone(), signal_tx) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("drover launch: cannot watch for signals: {e}");
            return exit::USAGE;
        }
    };
    let spec = &plan.spec;
    let ports: Vec<String> = spec
        .instances
        .iter()
        .map(|i| i.slot.port.to_string())
        .collect();
    eprintln!(
        "drover launch: {} × {} on {} (port{} {}); logs in {}; ready timeout {}, grace {}",
        spec.instances.len(),
        plan.engine,
        spec.instances[0].slot.host,
        if ports.len() == 1 { "" } else { "s" },
        ports.join(","),
        spec.log_dir.display(),
        humantime::format_duration(spec.ready_timeout),
        humantime::format_duration(spec.grace),
    );
    let log_dir = spec.log_dir.clone();
    let started = Instant::now();
    let mut fleet = match Fleet::start(plan.spec, print_event) {
        Ok(f) => f,
        Err(e) => {
            eprintln!("drover launch: {e}");
            return exit::USAGE;
        }
    };
    let stopper = fleet.stopper();
    *stoppers
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(stopper.clone());
    install_abort_hook(stopper);

    let code = match fleet.wait_ready() {
        Err(LaunchError::Stopped) => {
            eprintln!("drover launch: interrupted before the fleet was ready");
            exit::INTERRUPTED
        }
        Err(e) => {
            eprintln!(
                "drover launch: {e}; stopping the others (logs in {})",
                log_dir.display()
            );
            exit::USAGE
        }
        Ok(()) => {
            eprintln!(
                "drover launch: fleet ready after {}: -b {}",
                secs(started.elapsed()),
                plan.backends
            );
            match plan.job {
                Some(job) => {
                    phase.store(JOB, Ordering::SeqCst);
                    // run_on builds its own runtime: this thread has none, so it may.
                    let code = crate::cmd::run::run_on(job, fleet.urls().to_vec());
                    phase.store(STOPPING, Ordering::SeqCst);
                    eprintln!("drover launch: job finished (exit {code}); stopping the fleet");
                    code
                }
                None => {
                    let mut out = std::io::stdout().lock();
                    let _ = writeln!(out, "{}", plan.backends);
                    let _ = out.flush();
                    drop(out);
                    eprintln!(
                        "drover launch: use it with `drover run TASKS -b {}`; crashed instances are restarted; \
                         Ctrl-C or SIGTERM stops the fleet",
                        plan.backends
                    );
                    phase.store(UP, Ordering::SeqCst);
                    let _ = signals.recv();
                    exit::OK
                }
            }
        }
    };
    phase.store(STOPPING, Ordering::SeqCst);
    let report = fleet.shutdown();
    if !report.unreaped.is_empty() {
        eprintln!(
            "drover launch: warning: pids {:?} did not exit even after SIGKILL (stuck in the kernel?)",
            report.unreaped
        );
    }
    eprintln!(
        "drover launch: fleet stopped; logs in {}",
        log_dir.display()
    );
    code
}

/// Signals this close together are one request to stop, not "stop, then kill".
const SAME_REQUEST: Duration = Duration::from_millis(500);

/// The stopper, once the fleet exists (a signal can come before).
type StopperSlot = Arc<std::sync::Mutex<Option<Stopper>>>;

/// Handles SIGINT and SIGTERM on a thread of its own, by phase:
/// - starting or up: stop the fleet (the main thread then tears it down);
/// - during the job: `drover run` drains on the first signal and exits at once on the second,
///   without running our teardown — so on the second, the instances get SIGTERM right here;
/// - stopping: a signal (other than a duplicate of the one that began it) kills what is left
///   at once.
fn watch_signals(phase: Arc<AtomicU8>, main: mpsc::Sender<()>) -> std::io::Result<StopperSlot> {
    use tokio::signal::unix::{SignalKind, signal};
    let slot: StopperSlot = Arc::default();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let (mut int, mut term) = {
        let _entered = rt.enter();
        (
            signal(SignalKind::interrupt())?,
            signal(SignalKind::terminate())?,
        )
    };
    let stoppers = slot.clone();
    std::thread::Builder::new().name("drover-launch-signals".into()).spawn(move || {
        rt.block_on(async move {
            let mut during_job = 0;
            let mut stopping_since: Option<Instant> = None;
            loop {
                tokio::select! {
                    _ = int.recv() => {}
                    _ = term.recv() => {}
                }
                let stopper = stoppers.lock().unwrap_or_else(std::sync::PoisonError::into_inner).clone();
                // `timeout` and some process managers send SIGTERM to the process and then to its
                // group: one request, delivered twice, must not escalate to SIGKILL.
                if stopping_since.is_some_and(|t| t.elapsed() < SAME_REQUEST) {
                    continue;
                }
                match phase.load(Ordering::SeqCst) {
                    JOB => {
                        during_job += 1;
                        if during_job > 1
                            && let Some(s) = &stopper
                        {
                            s.terminate_now();
                        }
                    }
                    STOPPING => {
                        eprintln!("drover launch: interrupted during teardown: killing the instances now");
                        if let Some(s) = &stopper {
                            s.kill_now();
                        }
                    }
                    _ => {
                        stopping_since = Some(Instant::now());
                        phase.store(STOPPING, Ordering::SeqCst);
                        eprintln!("drover launch: stopping the fleet (Ctrl-C again kills it at once)");
                        if let Some(s) = &stopper {
                            s.stop();
                        }
                    }
                }
                let _ = main.send(());
            }
        });
    })?;
    Ok(slot)
}

/// With `panic = "abort"` no destructor runs, so the fleet's drop guard cannot stop the
/// instances; the hook sends them SIGTERM before the abort. (With unwinding, dropping the
/// [`Fleet`] does the full teardown and no hook is needed.)
fn install_abort_hook(stopper: Stopper) {
    if cfg!(panic = "abort") {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            stopper.terminate_now();
            previous(info);
        }));
    }
}

/// One status line (or a few) per event, on stderr.
fn print_event(event: Event) {
    let mut err = std::io::stderr().lock();
    let tag = |index: usize, name: &str| format!("drover launch: [{index}] {name}");
    let _ = match event {
        Event::Starting {
            index,
            name,
            pid,
            attempt: 0,
            command,
        } => {
            writeln!(err, "{} starting (pid {pid}): {command}", tag(index, &name))
        }
        Event::Starting {
            index,
            name,
            pid,
            attempt,
            ..
        } => {
            writeln!(
                err,
                "{} restarting (pid {pid}, restart {attempt})",
                tag(index, &name)
            )
        }
        Event::Ready {
            index,
            name,
            pid,
            attempt: 0,
            after,
        } => {
            writeln!(
                err,
                "{} ready after {} (pid {pid})",
                tag(index, &name),
                secs(after)
            )
        }
        Event::Ready {
            index,
            name,
            pid,
            after,
            ..
        } => {
            writeln!(
                err,
                "{} restarted: ready after {} (pid {pid})",
                tag(index, &name),
                secs(after)
            )
        }
        Event::StartFailed {
            index,
            name,
            why,
            log_tail,
            log,
            command,
        } => {
            let _ = writeln!(err, "{} {why}", tag(index, &name));
            if log_tail.is_empty() {
                let _ = writeln!(err, "  its log {} is empty", log.display());
            } else {
                let _ = writeln!(err, "  last {} lines of {}:", log_tail.len(), log.display());
                for line in &log_tail {
                    let _ = writeln!(err, "  | {line}");
                }
            }
            writeln!(err, "  command: {command}")
        }
        Event::Crashed {
            index,
            name,
            why,
            up_for,
            restart_in,
            log_tail,
            log,
            ..
        } => {
            let _ = writeln!(
                err,
                "{} crashed: {why} after {} up; restarting in {} (log {})",
                tag(index, &name),
                secs(up_for),
                secs(restart_in),
                log.display()
            );
            let shown = log_tail.len().saturating_sub(5);
            for line in &log_tail[shown..] {
                let _ = writeln!(err, "  | {line}");
            }
            Ok(())
        }
        Event::Stopping { count, grace } => writeln!(
            err,
            "drover launch: stopping {count} instance{} (SIGTERM; SIGKILL after {})",
            if count == 1 { "" } else { "s" },
            humantime::format_duration(grace)
        ),
        Event::Stopped {
            index,
            name,
            pid,
            outcome: StopOutcome::Exited(exit),
        } => {
            writeln!(err, "{} stopped (pid {pid}, {exit})", tag(index, &name))
        }
        Event::Stopped {
            index,
            name,
            pid,
            outcome: StopOutcome::Killed,
        } => {
            writeln!(
                err,
                "{} killed with SIGKILL after the grace (pid {pid})",
                tag(index, &name)
            )
        }
    };
}

/// `0.4s`, `12.3s`, `3m 5s`.
fn secs(d: Duration) -> String {
    if d < Duration::from_secs(60) {
        format!("{:.1}s", d.as_secs_f64())
    } else {
        humantime::format_duration(Duration::from_secs(d.as_secs())).to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        args: LaunchArgs,
    }

    fn args(flags: &[&str]) -> LaunchArgs {
        Cli::try_parse_from(std::iter::once("launch").chain(flags.iter().copied()))
            .unwrap()
            .args
    }

    #[test]
    fn run_text_is_split_like_a_shell_and_parsed_as_drover_run() {
        let run = parse_run("'my tasks.jsonl' -o out.jsonl --mode concurrent --workers 8").unwrap();
        assert_eq!(run.input, PathBuf::from("my tasks.jsonl"));
        assert_eq!(run.output, Some(PathBuf::from("out.jsonl")));
        assert_eq!(run.workers, Some(8));
        let e = parse_run("tasks.jsonl --mode fastest").unwrap_err();
        assert!(e.starts_with("--run: ") && e.contains("fastest"), "{e}");
        assert!(
            parse_run("'tasks.jsonl")
                .unwrap_err()
                .contains("quote is not closed")
        );
    }

    #[test]
    fn plan_checks_everything_before_starting() {
        let e = |flags: &[&str]| plan(args(flags)).err().unwrap();
        assert!(e(&["--engine", "sim", "--run", "t.jsonl --bogus"]).starts_with("--run: "));
        assert!(
            e(&["--engine", "llama-server", "--base-port", "0"])
                .starts_with("--model: --engine llama-server needs")
        );
        assert!(e(&["--cmd", "srv --port 1", "--base-port", "0"]).contains("no {port}"));
        assert!(
            e(&["--engine", "sim", "--gpus", "0;1", "--base-port", "0"]).starts_with("--gpus: ")
        );
        assert!(
            e(&["--engine", "sim", "--per-gpu", "2", "--base-port", "0"])
                .starts_with("--per-gpu: needs --gpus")
        );
        let dir = tempfile::tempdir().unwrap();
        let p = plan(args(&[
            "--engine",
            "sim",
            "--instances",
            "2",
            "--base-port",
            "0",
            "--log-dir",
            dir.path().to_str().unwrap(),
            "--ready-timeout",
            "90s",
            "--",
            "--preset",
            "instant",
        ]))
        .unwrap();
        assert_eq!(p.spec.instances.len(), 2);
        assert_eq!(p.spec.ready_timeout, Duration::from_secs(90));
        assert_eq!(
            p.spec.instances[1].command.args[5..],
            ["--preset", "instant"]
        );
        let ports: Vec<String> = p
            .spec
            .instances
            .iter()
            .map(|i| i.slot.port.to_string())
            .collect();
        assert_eq!(p.backends, ports.join(","));
    }

    #[test]
    fn clap_shape() {
        assert!(
            Cli::try_parse_from(["launch", "--model", "m"]).is_err(),
            "--engine or --cmd is required"
        );
        assert!(Cli::try_parse_from(["launch", "--engine", "sim", "--cmd", "x {port}"]).is_err());
        assert!(
            Cli::try_parse_from([
                "launch",
                "--engine",
                "vllm",
                "--gpus",
                "0",
                "--instances",
                "2"
            ])
            .is_err()
        );
        let a = args(&[
            "--engine",
            "vllm",
            "--model",
            "m",
            "--gpus",
            "0,1",
            "--",
            "--max-model-len",
            "4096",
        ]);
        assert_eq!(a.extra, ["--max-model-len", "4096"]);
        assert_eq!(a.ready_timeout, Duration::from_secs(20 * 60));
        assert_eq!(a.grace, Duration::from_secs(10));
        assert_eq!(a.base_port, 8001);
    }
}
