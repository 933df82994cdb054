//! `drover run`: the batch job.

pub mod analyze;
mod args;
mod embedded;
pub mod observe;
mod plan;
mod progress;
mod signals;

use std::time::Duration;

pub use args::RunArgs;
use drover_client::{BackendAddr, Client, ClientConfig};
use drover_io::{ParseConfig, Template};
use drover_job::{Job, JobError, JobSpec, OutputMode};
use drover_sched::limit::AdaptiveConfig;
use drover_sched::retry::RetryPolicy;
use drover_sched::{DispatchConfig, Mode, TimeoutPolicy};
use drover_stats::{Summary, SummaryInfo};
use plan::{BackendSource, RunPlan};

use crate::exit;

/// Runs `drover run`; returns the exit code.
pub fn main(args: RunArgs) -> u8 {
    run_on(args, Vec::new())
}

/// Runs `drover run` on `backends` (e.g. a fleet `drover launch` just started) in addition to
/// any the arguments name; returns the exit code.
pub fn run_on(mut args: RunArgs, backends: Vec<String>) -> u8 {
    args.backends.extend(backends);
    let plan = match plan::plan(&args, &|k| std::env::var(k).ok()) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("drover run: {e}");
            return exit::USAGE;
        }
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    rt.block_on(run(plan, args))
}

async fn run(plan: RunPlan, args: RunArgs) -> u8 {
    let say = |msg: String| {
        if !args.quiet {
            eprintln!("{msg}");
        }
    };
    let client = match Client::new(ClientConfig {
        api_key: plan.api_key.as_ref().map(|k| k.0.clone()),
        ..ClientConfig::default()
    }) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("drover run: {e}");
            return exit::USAGE;
        }
    };
    let template = match &plan.template {
        Some(path) => match Template::load(path) {
            Ok(t) => Some(t),
            Err(e) => {
                eprintln!("drover run: {e}");
                return exit::USAGE;
            }
        },
        None => None,
    };

    // [step 1] the fleet.
    let mut _embedded = None;
    let sources = drover_job::membership::Sources {
        fixed: match &plan.backends {
            BackendSource::List(l) => l.clone(),
            BackendSource::Embedded => Vec::new(),
        },
        file: plan.backends_file.clone(),
        dns: plan.dns.clone(),
    };
    let addrs: Vec<BackendAddr> = match &plan.backends {
        BackendSource::List(_) if sources.is_dynamic() => {
            match wait_for_members(&sources, args.max_wait, &say).await {
                Ok(a) => a,
                Err(e) => {
                    eprintln!("drover run: {e}");
                    return exit::USAGE;
                }
            }
        }
        BackendSource::List(l) => l.clone(),
        BackendSource::Embedded => {
            say("drover: no backend given (-b, DROVER_BACKENDS, VLLM_PORTS): starting the embedded engine".into());
            match embedded::start().await {
                Ok(e) => {
                    say(format!("drover: {} at {}", e.description, e.url));
                    let addr = BackendAddr::parse(&e.url).expect("engine URL parses");
                    _embedded = Some(e);
                    vec![addr]
                }
                Err(e) => {
                    eprintln!("drover run: {e}");
                    return exit::USAGE;
                }
            }
        }
    };
    let fleet = match drover_job::discover(
        &client,
        addrs,
        plan.model.as_deref(),
        Duration::from_secs(10),
    )
    .await
    {
        Ok(f) => f,
        Err(e) => {
            eprintln!("drover run: {e}");
            return exit::USAGE;
        }
    };
    for (b, why) in &fleet.left_out {
        eprintln!("drover: warning: backend {b} left out: {why}");
    }
    let mode = plan.mode.resolve(fleet.backends.len());

    let analysis = match analyze::setup(&args.analyze, &fleet) {
        Ok(a) => a,
        Err(e) => {
            eprintln!("drover run: {e}");
            return exit::USAGE;
        }
    };
    let steps = if analysis.active { 6 } else { 3 };
    let mut defaults = plan.defaults.clone();
    defaults.model = fleet.model.clone();
    for (k, v) in &analysis.extra_body {
        defaults
            .extra_body
            .entry(k.clone())
            .or_insert_with(|| v.clone());
    }
    let probe_body = serde_json::to_vec(&serde_json::json!({
        "model": fleet.model,
        "messages": [{"role": "user", "content": "ping"}],
        "max_tokens": 1,
    }))
    .ok()
    .map(bytes_from);
    let dispatch = DispatchConfig {
        mode,
        retry: RetryPolicy {
            attempts: args.attempts,
            ..RetryPolicy::default()
        },
        adaptive: AdaptiveConfig {
            max: args.max_per_backend,
            ..AdaptiveConfig::default()
        },
        timeout: TimeoutPolicy {
            fixed: args.timeout,
            ..TimeoutPolicy::default()
        },
        stream: plan.stream,
        max_wait: args.max_wait,
        hedge: !args.no_hedge,
        probe_body,
        lookahead: if mode == Mode::Adaptive { 2048 } else { 256 },
        ..DispatchConfig::default()
    };
    let spec = JobSpec {
        input: plan.input.clone(),
        output: plan.output.clone(),
        output_mode: plan.output_mode,
        parse: ParseConfig { defaults, template },
        max_line_bytes: args.max_line_bytes,
        shard: plan.shard,
        strict: args.strict,
        dispatch,
        client: client.clone(),
        backends: fleet.backends.clone(),
        membership: sources.is_dynamic().then(|| {
            drover_job::membership::watch(
                client.clone(),
                sources.clone(),
                fleet.model.clone(),
                fleet.backends.clone(),
                Duration::from_secs(2),
            )
        }),
        checker: analysis.checker.clone(),
        answers: analysis.sink.clone(),
        sync_every: Duration::from_secs(1),
    };
    let (job, handles) = match Job::prepare(spec) {
        Ok(j) => j,
        Err(e) => {
            eprintln!("drover run: {e}");
            return exit::USAGE;
        }
    };

    // Banner, in the seed's spirit: which instances, which mode.
    let labels: Vec<&str> = fleet
        .backends
        .iter()
        .map(|b| b.addr.label.as_str())
        .collect();
    say(format!(
        "drover {}: {} backend{} ({}): {}",
        env!("CARGO_PKG_VERSION"),
        labels.len(),
        if labels.len() == 1 { "" } else { "s" },
        if plan.backends_from.is_empty() {
            "embedded"
        } else {
            plan.backends_from
        },
        labels.join(", ")
    ));
    say(format!(
        "  model: {}{}",
        fleet
            .model
            .as_deref()
            .unwrap_or("(not listed by the backends; requests name none)"),
        fleet
            .max_model_len
            .map(|l| format!(" (max_model_len {l})"))
            .unwrap_or_default()
    ));
    say(format!(
        "  mode: {} ({})",
        describe_mode(mode, args.max_per_backend),
        plan.mode_from
    ));
    let total = handles
        .progress
        .total
        .load(std::sync::atomic::Ordering::Relaxed);
    say(format!(
        "  input: {}{} → output: {}{}",
        plan.input.display(),
        if total > 0 {
            format!(" ({total} tasks)")
        } else {
            String::new()
        },
        plan.output.display(),
        match plan.output_mode {
            OutputMode::Resume { retry_failed: true } => " (resume, retrying failed)",
            OutputMode::Resume { .. } => " (resume)",
            OutputMode::Overwrite => " (overwrite)",
            OutputMode::Fresh => "",
        }
    ));
    if let Some((_, var)) = &plan.api_key {
        say(format!("  api key: from ${var}"));
    }
    say(format!(
        "[step 1/{steps}] load and validate tasks: {}",
        if args.strict {
            "every line checked (--strict)"
        } else {
            "lines are checked as they are read"
        }
    ));
    say(format!("[step 2/{steps}] dispatch tasks"));

    let observer = match observe::start(
        &args.observe,
        observe::Live {
            progress: &handles.progress,
            snapshot: &handles.snapshot,
            stats: &handles.stats,
        },
    )
    .await
    {
        Ok(o) => o,
        Err(e) => {
            eprintln!("drover run: {e}");
            return exit::USAGE;
        }
    };
    signals::watch(handles.control.clone(), args.grace, resume_command());
    let display = progress::Display::start(
        mode.name().to_string(),
        handles.progress.clone(),
        handles.snapshot.clone(),
        handles.events,
        args.quiet,
    );
    let result = job.run().await;
    display.finish().await;
    let result = match result {
        Ok(r) => r,
        Err(JobError::Output { path, source }) => {
            eprintln!(
                "drover run: cannot write output {}: {source}",
                path.display()
            );
            return 1;
        }
        Err(e) => {
            eprintln!("drover run: {e}");
            return exit::USAGE;
        }
    };

    match analyze::finish(&args.analyze, &analysis, &plan.output) {
        Ok(Some(lines)) => say(lines),
        Ok(None) => {}
        Err(e) => eprintln!("drover run: {e}"),
    }
    say(format!("[step {steps}/{steps}] report"));
    let info = SummaryInfo {
        mode: mode.name().to_string(),
        concurrency: mode.global_limit(),
        model: fleet.model.clone(),
        input: plan.input.display(),
        output: plan.output.display().to_string(),
        started_at: Some(result.started_at),
        wall: result.wall,
        skipped_done: result.read.skipped_done,
        unfinished: result.dispatch.unfinished,
        retries: result.dispatch.retries,
        hedges: result.dispatch.hedges,
        interrupted: result.interrupted,
    };
    let mut summary = Summary::build(&result.stats, &info);
    summary.answers = result.answers.clone();
    if let Some(r) = &result.resume {
        if r.torn_bytes > 0 || r.failed_dropped > 0 || r.succeeded + r.failed_kept > 0 {
            say(format!(
                "drover: resumed: {} lines kept{}{}",
                r.succeeded + r.failed_kept,
                if r.failed_dropped > 0 {
                    format!(", {} failed lines to retry", r.failed_dropped)
                } else {
                    String::new()
                },
                if r.torn_bytes > 0 {
                    format!(", torn last line repaired ({} bytes)", r.torn_bytes)
                } else {
                    String::new()
                },
            ));
        }
    }
    if !args.quiet {
        eprint!("{}", summary.to_text());
    }
    if let Err(e) = observe::finish(&args.observe, observer, &result.stats, &summary).await {
        eprintln!("drover run: {e}");
    }
    if let Some(path) = &args.summary {
        let text = serde_json::to_string_pretty(&summary).expect("summary serializes");
        if let Err(e) = std::fs::write(path, text + "\n") {
            eprintln!("drover run: cannot write --summary {}: {e}", path.display());
        }
    }
    if result.interrupted {
        eprintln!(
            "drover: interrupted with {} task(s) unfinished; every finished task is in {}. Resume with:\n  {}",
            result.dispatch.unfinished,
            plan.output.display(),
            resume_command()
        );
        return exit::INTERRUPTED;
    }
    // The exit code speaks for the whole output: failures kept from an earlier run count too.
    let kept = result.resume.map_or(0, |r| r.failed_kept);
    if summary.tasks.failed + kept > 0 {
        say(format!(
            "drover: {} task(s) failed{}; each has a record in {} (retry them with --resume --retry-failed)",
            summary.tasks.failed + kept,
            if kept > 0 {
                format!(" ({kept} in earlier runs)")
            } else {
                String::new()
            },
            plan.output.display()
        ));
        return exit::TASKS_FAILED;
    }
    exit::OK
}

/// With a backends file or dns:// names, waits (up to `--max-wait`) for the first member.
async fn wait_for_members(
    sources: &drover_job::membership::Sources,
    max_wait: Duration,
    say: &dyn Fn(String),
) -> Result<Vec<BackendAddr>, String> {
    let start = std::time::Instant::now();
    let mut announced = false;
    loop {
        let addrs = sources.resolve().await?;
        if !addrs.is_empty() {
            return Ok(addrs);
        }
        if start.elapsed() >= max_wait {
            return Err(format!(
                "no backend appeared within {} (--max-wait)",
                humantime::format_duration(max_wait)
            ));
        }
        if !announced {
            announced = true;
            say("drover: no backend listed yet (--backends-file / dns://); waiting for one".into());
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

fn bytes_from(v: Vec<u8>) -> bytes::Bytes {
    bytes::Bytes::from(v)
}

fn describe_mode(mode: Mode, max: usize) -> String {
    match mode {
        Mode::Serial => "serial: one request in flight in total, backends in turn".into(),
        Mode::Concurrent(n) => {
            format!("concurrent: {n} requests in flight in total, backends in turn")
        }
        Mode::Adaptive => format!(
            "adaptive: each backend's limit found from its throughput (up to {max}), load-aware routing"
        ),
    }
}

/// The command line that resumes this run.
fn resume_command() -> String {
    let mut parts: Vec<String> = std::env::args()
        .filter(|a| a != "--overwrite" && a != "--resume")
        .map(|a| shell_quote(&a))
        .collect();
    if parts.is_empty() {
        parts.push("drover".into());
    }
    parts.push("--resume".into());
    parts.join(" ")
}

fn shell_quote(s: &str) -> String {
    if !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./:=,@%+".contains(c))
    {
        s.to_string()
    } else {
        format!("'{}'", s.replace('\'', "'\\''"))
    }
}
