//! `drover bench`: the seed's comparison table, measured. One task set, one fleet, run in
//! serial mode, concurrent mode with N = number of instances (the seed's advice), adaptive
//! mode, and optionally a fixed-concurrency sweep. With `--sim N` every run gets a fresh
//! simulated fleet (cold caches, same seed), so runs do not help each other.

use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use clap::Args;
use drover_client::{BackendAddr, Client, ClientConfig};
use drover_io::{ParseConfig, RequestDefaults};
use drover_job::{InputSource, Job, JobSpec, OutputMode};
use drover_sched::{DispatchConfig, Mode};
use drover_sim::{Fleet, SimConfig};
use serde::Serialize;

use crate::exit;

/// Arguments of `drover bench`.
#[derive(Debug, Args)]
pub struct BenchArgs {
    /// Tasks to run (JSONL, as for `drover run`) [default: synthetic tasks, see --tasks].
    #[arg(value_name = "INPUT")]
    pub input: Option<PathBuf>,

    /// Backends to measure (as for `drover run`).
    #[arg(
        short = 'b',
        long = "backends",
        value_name = "LIST",
        value_delimiter = ',',
        conflicts_with = "sim"
    )]
    pub backends: Vec<String>,

    /// Measure N simulated instances, started in-process (fresh for every run).
    #[arg(long, value_name = "N")]
    pub sim: Option<usize>,

    /// Simulator preset (with --sim).
    #[arg(long, default_value = drover_sim::DEFAULT_PRESET)]
    pub preset: String,

    /// Simulator time scale (with --sim): 0.1 runs 10x faster than real time.
    #[arg(long, default_value_t = 1.0)]
    pub time_scale: f64,

    /// Relative speed per simulated instance, e.g. 1,1,1,0.33 (with --sim).
    #[arg(long, value_name = "LIST", value_delimiter = ',')]
    pub speed_factors: Vec<f64>,

    /// Synthetic tasks to generate.
    #[arg(long, default_value_t = 2000, value_name = "N")]
    pub tasks: usize,

    /// Prompt length of synthetic tasks, tokens (≈ 4 characters each).
    #[arg(long, default_value_t = 230, value_name = "N")]
    pub prompt_tokens: usize,

    /// Prompt length of the second half of the synthetic tasks (a job whose mix changes midway).
    #[arg(long, value_name = "N")]
    pub second_half_prompt_tokens: Option<usize>,

    /// max_tokens of synthetic tasks.
    #[arg(long, default_value_t = 200, value_name = "N")]
    pub max_tokens: u32,

    /// Modes to run, in order: serial, concurrent, adaptive.
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "serial,concurrent,adaptive"
    )]
    pub modes: Vec<String>,

    /// Requests in flight in total for the concurrent mode [default: number of instances].
    #[arg(long, value_name = "N")]
    pub workers: Option<usize>,

    /// Also run the concurrent mode at each of these totals, e.g. 1,4,16,64,256.
    #[arg(long, value_delimiter = ',', value_name = "LIST")]
    pub sweep: Vec<usize>,

    /// Longest a single run may take; a slower run is stopped and rated on what it finished.
    #[arg(long, default_value = "10m", value_parser = humantime::parse_duration)]
    pub budget: Duration,

    /// Model to request [default: what the backends serve].
    #[arg(long)]
    pub model: Option<String>,

    /// Seed for synthetic prompts and the simulator.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,

    /// Write the results as JSON.
    #[arg(long, value_name = "FILE")]
    pub json: Option<PathBuf>,

    /// Write a self-contained HTML report: the comparison table and each run's curves.
    #[arg(long, value_name = "FILE.html")]
    pub report: Option<PathBuf>,
}

/// One measured run.
#[derive(Debug, Clone, Serialize)]
pub struct Row {
    /// serial, concurrent or adaptive.
    pub mode: String,
    /// What the run was (e.g. "concurrent N=4", "sweep 256").
    pub label: String,
    /// Instances in the fleet.
    pub instances: usize,
    /// Total in-flight cap, if fixed.
    pub concurrency: Option<usize>,
    /// Limits the adaptive mode ended with, per backend.
    pub final_limits: Vec<Option<usize>>,
    /// Tasks finished.
    pub tasks_done: u64,
    /// Tasks in the set.
    pub tasks_total: u64,
    /// Whether the budget stopped it early.
    pub partial: bool,
    /// Wall time, seconds.
    pub wall_s: f64,
    /// Finished tasks per second.
    pub tasks_per_s: f64,
    /// Generated tokens per second.
    pub output_tokens_per_s: f64,
    /// Failed tasks.
    pub failed: u64,
    /// Mean latency, seconds.
    pub mean_latency_s: Option<f64>,
    /// Tasks answered by each backend, by index: how evenly the mode spread the work.
    pub tasks_per_backend: Vec<u64>,
    /// Tasks that needed more than one attempt.
    pub retried_tasks: u64,
    /// Hedges (copies of slow requests) sent.
    pub hedges: u64,
    /// Answers won by a hedge.
    pub hedge_wins: u64,
}

/// Runs `drover bench`.
pub fn main(args: BenchArgs) -> u8 {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    match rt.block_on(bench(args)) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("drover bench: {e}");
            exit::USAGE
        }
    }
}

enum Point {
    Mode(Mode, String),
}

async fn bench(args: BenchArgs) -> Result<u8, String> {
    if args.sim.is_none() && args.backends.is_empty() {
        return Err(
            "give the fleet to measure: -b BACKENDS, or --sim N for simulated instances".into(),
        );
    }
    let instances = args.sim.unwrap_or(args.backends.len());
    if instances == 0 {
        return Err("--sim needs at least 1 instance".into());
    }
    let mut sim_config = SimConfig::preset(&args.preset).map_err(|e| e.to_string())?;
    sim_config.time_scale = args.time_scale;
    sim_config.seed = args.seed;
    if !args.speed_factors.is_empty()
        && args.speed_factors.len() != instances
        && args.speed_factors.len() != 1
    {
        return Err(format!(
            "--speed-factors has {} values for {instances} instances",
            args.speed_factors.len()
        ));
    }
    if let Some(path) = &args.report {
        crate::cmd::run::observe::check_writable(path)?;
    }
    let workers = args.workers.unwrap_or(instances);
    let mut points = Vec::new();
    for m in &args.modes {
        match m.as_str() {
            "serial" => points.push(Point::Mode(Mode::Serial, "serial".into())),
            "concurrent" => points.push(Point::Mode(
                Mode::Concurrent(workers),
                format!("concurrent N={workers}"),
            )),
            "adaptive" => points.push(Point::Mode(Mode::Adaptive, "adaptive".into())),
            other => {
                return Err(format!(
                    "--modes: unknown mode {other:?} (serial, concurrent, adaptive)"
                ));
            }
        }
    }
    for &n in &args.sweep {
        points.push(Point::Mode(
            Mode::Concurrent(n.max(1)),
            format!("fixed {n}"),
        ));
    }
    let dir = tempfile::tempdir().map_err(|e| format!("cannot create a temporary folder: {e}"))?;
    let client = Client::new(ClientConfig {
        api_key: std::env::var("OPENAI_API_KEY")
            .ok()
            .filter(|k| !k.is_empty()),
        ..ClientConfig::default()
    })
    .map_err(|e| e.to_string())?;

    eprintln!(
        "drover bench: {} task set on {}",
        match &args.input {
            Some(p) => p.display().to_string(),
            None => synthetic_description(&args),
        },
        match args.sim {
            Some(n) => format!(
                "{n} simulated instances ({}, time scale {})",
                args.preset, args.time_scale
            ),
            None => format!("{} backends", args.backends.len()),
        }
    );
    let mut rows: Vec<Row> = Vec::new();
    let mut run_stats: Vec<drover_stats::RunStats> = Vec::new();
    for (k, Point::Mode(mode, label)) in points.into_iter().enumerate() {
        let input = match &args.input {
            Some(p) => p.clone(),
            None => write_synthetic(&args, dir.path(), k as u64)?,
        };
        let fleet = match args.sim {
            Some(n) => {
                let configs = (0..n)
                    .map(|i| {
                        let mut c = sim_config.clone();
                        c.seed = args.seed + i as u64;
                        c.speed_factor = match args.speed_factors.len() {
                            0 => 1.0,
                            1 => args.speed_factors[0],
                            _ => args.speed_factors[i],
                        };
                        c
                    })
                    .collect();
                Some(
                    Fleet::start("127.0.0.1", &vec![0; n], configs)
                        .await
                        .map_err(|e| e.to_string())?,
                )
            }
            None => None,
        };
        let addrs: Vec<BackendAddr> = match &fleet {
            Some(f) => f
                .urls()
                .iter()
                .map(|u| BackendAddr::parse(u).expect("sim url"))
                .collect(),
            None => args
                .backends
                .iter()
                .map(|b| BackendAddr::parse(b).map_err(|e| e.to_string()))
                .collect::<Result<_, _>>()?,
        };
        let (row, stats) =
            run_point(&client, addrs, mode, &label, &input, dir.path(), &args).await?;
        run_stats.push(stats);
        eprintln!(
            "  {:<16} {:>6}/{:<6} in {:>7} → {:>8.1} tasks/s {:>9.0} out tok/s{}",
            row.label,
            row.tasks_done,
            row.tasks_total,
            drover_stats::summary::fmt_secs(row.wall_s),
            row.tasks_per_s,
            row.output_tokens_per_s,
            if row.partial {
                "  (stopped at the budget)"
            } else {
                ""
            }
        );
        let split: Vec<String> = row.tasks_per_backend.iter().map(u64::to_string).collect();
        eprintln!(
            "  {:<16} split {}; retried {}; hedges {} (won {})",
            "",
            split.join("/"),
            row.retried_tasks,
            row.hedges,
            row.hedge_wins
        );
        rows.push(row);
        if let Some(f) = fleet {
            f.shutdown().await;
        }
    }
    println!("{}", table(&rows));
    if let Some(path) = &args.json {
        let doc = serde_json::json!({
            "fleet": match args.sim {
                Some(n) => serde_json::json!({"sim": n, "preset": args.preset, "time_scale": args.time_scale, "speed_factors": args.speed_factors}),
                None => serde_json::json!({"backends": args.backends}),
            },
            "tasks": match &args.input {
                Some(p) => serde_json::json!({"input": p}),
                None => serde_json::json!({"synthetic": args.tasks, "prompt_tokens": args.prompt_tokens, "second_half_prompt_tokens": args.second_half_prompt_tokens, "max_tokens": args.max_tokens}),
            },
            "runs": rows,
        });
        std::fs::write(
            path,
            serde_json::to_string_pretty(&doc).expect("json") + "\n",
        )
        .map_err(|e| format!("cannot write --json {}: {e}", path.display()))?;
    }
    if let Some(path) = &args.report {
        write_report(path, &args, &rows, &run_stats)?;
    }
    Ok(exit::OK)
}

/// `--report`: the seed's table (the same cells as printed) and the runs' curves.
fn write_report(
    path: &std::path::Path,
    args: &BenchArgs,
    rows: &[Row],
    stats: &[drover_stats::RunStats],
) -> Result<(), String> {
    use drover_stats::report::{BenchReport, BenchRun, Table};
    let text = table(rows);
    let cells = |line: &str| {
        line.trim()
            .trim_matches('|')
            .split('|')
            .map(|c| c.trim().to_string())
            .collect::<Vec<_>>()
    };
    let mut lines = text
        .lines()
        .filter(|l| l.starts_with('|') && !l.starts_with("|-"));
    let headers = lines.next().map(cells).unwrap_or_default();
    let report = BenchReport {
        description: vec![
            (
                "tasks".into(),
                match &args.input {
                    Some(p) => p.display().to_string(),
                    None => synthetic_description(args),
                },
            ),
            (
                "fleet".into(),
                match args.sim {
                    Some(n) => format!(
                        "{n} simulated instances ({}, time scale {})",
                        args.preset, args.time_scale
                    ),
                    None => args.backends.join(", "),
                },
            ),
        ],
        table: Table {
            headers,
            rows: lines.map(cells).collect(),
        },
        notes: text
            .lines()
            .filter(|l| !l.starts_with('|'))
            .map(str::to_string)
            .collect(),
        runs: rows
            .iter()
            .zip(stats)
            .map(|(r, s)| BenchRun {
                label: &r.label,
                stats: s,
                wall_seconds: r.wall_s,
            })
            .collect(),
    };
    std::fs::write(path, drover_stats::report::bench_report(&report))
        .map_err(|e| format!("cannot write --report {}: {e}", path.display()))
}

fn synthetic_description(args: &BenchArgs) -> String {
    match args.second_half_prompt_tokens {
        Some(p2) => format!(
            "synthetic {} tasks ({} then {} prompt tokens, {} output tokens)",
            args.tasks, args.prompt_tokens, p2, args.max_tokens
        ),
        None => format!(
            "synthetic {} tasks ({} prompt tokens, {} output tokens)",
            args.tasks, args.prompt_tokens, args.max_tokens
        ),
    }
}

/// Writes the synthetic task set for run `k`: prompts differ between runs so no run finds
/// another's prompts in a server's prefix cache.
fn write_synthetic(args: &BenchArgs, dir: &std::path::Path, k: u64) -> Result<PathBuf, String> {
    use std::io::Write;
    const WORDS: &[&str] = &[
        "the",
        "report",
        "shows",
        "quarterly",
        "revenue",
        "growth",
        "across",
        "regions",
        "while",
        "costs",
        "remained",
        "stable",
        "analysts",
        "expect",
        "further",
        "gains",
        "in",
        "cloud",
        "services",
        "and",
        "hardware",
    ];
    let path = dir.join(format!("bench-{k}.jsonl"));
    let mut f = std::io::BufWriter::new(std::fs::File::create(&path).map_err(|e| e.to_string())?);
    let mut state = args
        .seed
        .wrapping_mul(0x9E37_79B9_7F4A_7C15)
        .wrapping_add(k + 1);
    let mut next = || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    for i in 0..args.tasks {
        let tokens = match args.second_half_prompt_tokens {
            Some(p2) if i >= args.tasks / 2 => p2,
            _ => args.prompt_tokens,
        };
        let mut prompt = format!("[run {k} task {i}] ");
        while prompt.len() < tokens * 4 {
            prompt.push_str(WORDS[(next() % WORDS.len() as u64) as usize]);
            prompt.push(' ');
        }
        prompt.truncate(tokens * 4);
        let line = serde_json::json!({"id": format!("t{i}"), "prompt": prompt, "max_tokens": args.max_tokens});
        writeln!(f, "{line}").map_err(|e| e.to_string())?;
    }
    f.flush().map_err(|e| e.to_string())?;
    Ok(path)
}

async fn run_point(
    client: &Client,
    addrs: Vec<BackendAddr>,
    mode: Mode,
    label: &str,
    input: &std::path::Path,
    dir: &std::path::Path,
    args: &BenchArgs,
) -> Result<(Row, drover_stats::RunStats), String> {
    let fleet = drover_job::discover(
        client,
        addrs,
        args.model.as_deref(),
        Duration::from_secs(30),
    )
    .await
    .map_err(|e| e.to_string())?;
    let instances = fleet.backends.len();
    let spec = JobSpec {
        input: InputSource::Path(input.to_path_buf()),
        output: dir.join("bench-out.jsonl"),
        output_mode: OutputMode::Overwrite,
        parse: ParseConfig {
            defaults: RequestDefaults {
                model: fleet.model.clone(),
                ..RequestDefaults::default()
            },
            template: None,
        },
        max_line_bytes: 16 << 20,
        shard: None,
        strict: false,
        dispatch: DispatchConfig {
            mode,
            lookahead: if mode == Mode::Adaptive { 2048 } else { 256 },
            ..DispatchConfig::default()
        },
        client: client.clone(),
        backends: fleet.backends,
        membership: None,
        checker: None,
        answers: None,
        sync_every: Duration::from_secs(5),
    };
    let (job, handles) = Job::prepare(spec).map_err(|e| e.to_string())?;
    let total = handles.progress.total.load(Ordering::Relaxed);
    let control = handles.control.clone();
    let budget = args.budget;
    let watchdog = tokio::spawn(async move {
        tokio::time::sleep(budget).await;
        control.stop_intake.cancel();
        control.abort.cancel();
    });
    let started = Instant::now();
    let result = job.run().await.map_err(|e| e.to_string())?;
    watchdog.abort();
    let wall = started.elapsed().as_secs_f64();
    let stats = &result.stats;
    let snap = handles.snapshot.lock().expect("snapshot").clone();
    let final_limits = snap.backends.iter().map(|b| b.limit).collect();
    // A run stopped at the budget is rated on every token the engines produced in it, those of
    // the answers still streaming included: counting finished answers only would rate a slow
    // mode whose first wave had not ended at zero.
    let seen: u64 = snap.backends.iter().map(|b| b.tokens_seen).sum();
    let tokens = if result.interrupted {
        stats.completion_tokens.max(seen)
    } else {
        stats.completion_tokens
    };
    let row = Row {
        mode: mode.name().to_string(),
        label: label.to_string(),
        instances,
        concurrency: mode.global_limit(),
        final_limits,
        tasks_done: stats.done(),
        tasks_total: total,
        partial: result.interrupted,
        wall_s: wall,
        tasks_per_s: stats.done() as f64 / wall,
        output_tokens_per_s: tokens as f64 / wall,
        failed: stats.failed,
        mean_latency_s: (!stats.latency_us.is_empty()).then(|| stats.latency_us.mean() / 1e6),
        tasks_per_backend: stats.backends.iter().map(|b| b.ok).collect(),
        retried_tasks: stats.retried_tasks,
        hedges: result.dispatch.hedges,
        hedge_wins: stats.hedge_wins,
    };
    Ok((row, result.stats))
}

/// The seed's comparison table, with measured numbers.
pub fn table(rows: &[Row]) -> String {
    let base = rows
        .iter()
        .find(|r| r.mode == "serial")
        .map(|r| r.output_tokens_per_s);
    let mut s = String::new();
    s.push_str(&format!(
        "| {:<18} | {:>9} | {:<24} | {:>14} | {:>9} | {:>8} | {:>11} | {:>8} |\n",
        "mode", "instances", "concurrency", "tasks", "wall", "tasks/s", "out tok/s", "speed-up"
    ));
    s.push_str("|--------------------|-----------|--------------------------|----------------|-----------|----------|-------------|----------|\n");
    for r in rows {
        let conc = match r.concurrency {
            Some(c) => c.to_string(),
            None => {
                let limits: Vec<String> = r
                    .final_limits
                    .iter()
                    .map(|l| l.map_or("-".into(), |l| l.to_string()))
                    .collect();
                format!("auto ({})", limits.join(","))
            }
        };
        let speedup = base
            .filter(|b| *b > 0.0)
            .map_or("-".into(), |b| format!("{:.1}x", r.output_tokens_per_s / b));
        s.push_str(&format!(
            "| {:<18} | {:>9} | {:<24} | {:>14} | {:>9} | {:>8.1} | {:>11.0} | {:>8} |\n",
            r.label,
            r.instances,
            conc,
            format!(
                "{}/{}{}",
                r.tasks_done,
                r.tasks_total,
                if r.partial { "*" } else { "" }
            ),
            drover_stats::summary::fmt_secs(r.wall_s),
            r.tasks_per_s,
            r.output_tokens_per_s,
            speedup
        ));
    }
    if rows.iter().any(|r| r.partial) {
        s.push_str("* stopped at --budget; tasks/s counts finished tasks, out tok/s every token received (streamed answers still running included)\n");
    }
    s
}
