//! `drover sim`: vLLM-faithful simulated instances in one process, with fault injection.
//!
//! Flags are parsed by clap (no I/O), turned into a validated [`Plan`] (one `SimConfig` per
//! instance), and run: bind every port, print one line per instance, serve until SIGINT/SIGTERM.

use std::io::Write as _;
use std::time::Duration;

use clap::Args;
use drover_sim::{Fleet, OutputLen, SimConfig};

use crate::exit;

/// Arguments of `drover sim`.
#[derive(Debug, Clone, Args)]
#[command(
    after_help = "Presets (--preset): llama-3.1-8b-h100 (default), llama-3.1-8b-a100-40gb, \
    llama-2-7b-h100-64gb, qwen2.5-0.5b-cpu-2core, hf-cb-1b-h100, instant. `drover sim --list-presets` prints their parameters \
    (* = the first point of a measured batch curve).\n\
    Per-request faults for tests: header `X-Drover-Sim-Fault: 500|429|hang|garbage|reset|slow`."
)]
pub struct SimArgs {
    /// Ports, one instance each: `8001-8004`, `8001,8002`, or `0,0` for any free ports.
    #[arg(long, default_value = "8001", value_parser = parse_ports)]
    ports: Ports,
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1")]
    host: String,
    /// Engine-model preset.
    #[arg(long, default_value = drover_sim::DEFAULT_PRESET)]
    preset: String,
    /// Served model name (default: the preset's model).
    #[arg(long)]
    model: Option<String>,
    /// Print the presets and their parameters, then exit.
    #[arg(long)]
    list_presets: bool,
    /// Multiplier on simulated durations: 0.01 runs 100x faster than real time.
    #[arg(long, default_value_t = 1.0)]
    time_scale: f64,
    /// Relative speed per instance, e.g. `1,1,1,0.33` (one value applies to all).
    #[arg(long, value_delimiter = ',')]
    speed_factors: Vec<f64>,
    /// Seed of the random draws (instance i uses seed + i).
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Output length of requests without max_tokens: `fixed:N` or `uniform:LO-HI`. When given,
    /// requests with max_tokens also end early at a length drawn from it (unless ignore_eos).
    #[arg(long, value_parser = parse_output_len)]
    output_len: Option<OutputLen>,
    /// Require `Authorization: Bearer KEY` on /v1/* (as `vllm serve --api-key`).
    #[arg(long)]
    api_key: Option<String>,

    /// Serve no `/metrics`, like transformers serve or llama-server without `--metrics`
    /// (clients then see the load only in the answers).
    #[arg(long)]
    no_metrics: bool,

    #[command(flatten)]
    engine: EngineFlags,
    #[command(flatten)]
    faults: FaultFlags,
}

/// Overrides of the preset's engine parameters (units as in `docs/sim.md`).
#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "Engine parameters (override the preset)")]
struct EngineFlags {
    /// Longest prompt + output, tokens.
    #[arg(long)]
    max_model_len: Option<u32>,
    /// Most requests in the running batch.
    #[arg(long)]
    max_num_seqs: Option<u32>,
    /// Token budget of one step.
    #[arg(long)]
    max_num_batched_tokens: Option<u32>,
    /// KV-cache blocks.
    #[arg(long)]
    num_kv_blocks: Option<u32>,
    /// Tokens per KV block.
    #[arg(long)]
    block_size: Option<u32>,
    /// Cap on one request's prefill chunk per step, tokens (0 = none).
    #[arg(long)]
    long_prefill_token_threshold: Option<u32>,
    /// Turn prefix caching off.
    #[arg(long)]
    no_prefix_caching: bool,
    /// Answer 503 once this many requests wait (0 = unbounded, vLLM's default).
    #[arg(long)]
    max_num_queued_reqs: Option<u32>,
    /// Per-step fixed cost, e.g. `0.7ms`.
    #[arg(long, value_parser = parse_duration)]
    t_fixed: Option<Duration>,
    /// Per-sequence cost per step, e.g. `4.4us`.
    #[arg(long, value_parser = parse_duration)]
    t_seq: Option<Duration>,
    /// Measured step time by batch size, `B:TIME,…` ascending, e.g. `1:45ms,16:113ms,64:141ms`:
    /// replaces `--t-fixed` + B·`--t-seq` (linear between points).
    #[arg(long, value_parser = parse_batch_curve)]
    batch_curve: Option<BatchCurve>,
    /// Delay before the first step after the engine was idle for `--idle-after`, e.g. `2.3s`.
    #[arg(long, value_parser = parse_duration)]
    idle_wake: Option<Duration>,
    /// How long an engine must be idle before `--idle-wake` applies.
    #[arg(long, value_parser = parse_duration)]
    idle_after: Option<Duration>,
    /// HTTP + tokenization overhead before scheduling, e.g. `8ms`.
    #[arg(long, value_parser = parse_duration)]
    api_overhead: Option<Duration>,
    /// Uniform jitter on --api-overhead, as a fraction (0.1 = ±10%).
    #[arg(long)]
    api_overhead_jitter: Option<f64>,
    /// Weight bytes read per step, B (e.g. 15e9).
    #[arg(long)]
    weight_bytes: Option<f64>,
    /// Active parameters (a token costs 2·P FLOP).
    #[arg(long)]
    active_params: Option<f64>,
    /// Effective weight-read bandwidth, B/s (e.g. 2.6e12).
    #[arg(long)]
    hbm_bw: Option<f64>,
    /// Effective KV-read bandwidth, B/s.
    #[arg(long)]
    kv_bw: Option<f64>,
    /// Achieved FLOP/s.
    #[arg(long)]
    flops: Option<f64>,
    /// KV-cache bytes per token, B.
    #[arg(long)]
    kv_bytes_per_token: Option<f64>,
}

/// Fault injection.
#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "Fault injection")]
struct FaultFlags {
    /// Probability of a 500 per request.
    #[arg(long, default_value_t = 0.0)]
    fail_rate: f64,
    /// Probability of a 429 (with Retry-After) per request.
    #[arg(long, default_value_t = 0.0)]
    rate_limit_rate: f64,
    /// Retry-After of those 429s.
    #[arg(long, default_value = "1s", value_parser = parse_duration)]
    retry_after: Duration,
    /// Probability that a request is accepted and never answered.
    #[arg(long, default_value_t = 0.0)]
    hang_rate: f64,
    /// Probability of a 200 whose body is not JSON.
    #[arg(long, default_value_t = 0.0)]
    garbage_rate: f64,
    /// Probability of a connection reset.
    #[arg(long, default_value_t = 0.0)]
    reset_rate: f64,
    /// Probability of an answer delayed by --slow-delay.
    #[arg(long, default_value_t = 0.0)]
    slow_rate: f64,
    /// Extra delay of slow answers.
    #[arg(long, default_value = "2s", value_parser = parse_duration)]
    slow_delay: Duration,
    /// /health and requests answer 503 for this long after start.
    #[arg(long, value_parser = parse_duration)]
    slow_start: Option<Duration>,
    /// Kill instances this long after start (listener closed, connections reset).
    #[arg(long, value_parser = parse_duration)]
    kill_after: Option<Duration>,
    /// Revive killed instances this long after the kill (fresh engine).
    #[arg(long, value_parser = parse_duration)]
    revive_after: Option<Duration>,
    /// Which instances --kill-after applies to (indices, e.g. `1` or `0,2`; default all).
    #[arg(long, value_parser = parse_indices)]
    kill_instances: Option<Indices>,
    /// Stall instances this long after start (health 200, no progress).
    #[arg(long, value_parser = parse_duration)]
    stall_after: Option<Duration>,
    /// End the stall after this long (default: never).
    #[arg(long, value_parser = parse_duration)]
    stall_for: Option<Duration>,
    /// Which instances --stall-after applies to (default all).
    #[arg(long, value_parser = parse_indices)]
    stall_instances: Option<Indices>,
    /// Ignore the X-Drover-Sim-Fault request header.
    #[arg(long)]
    no_fault_header: bool,
}

fn parse_duration(s: &str) -> Result<Duration, String> {
    humantime::parse_duration(s)
        .map_err(|e| format!("{e}: write a duration like 250ms, 0.7ms, 4.4us or 10s"))
}

/// A batch curve (one clap value, so that `Vec` does not mean "repeated flag").
#[derive(Debug, Clone, PartialEq)]
struct BatchCurve(Vec<(u32, Duration)>);

/// `1:45ms,16:113ms,64:141ms`.
fn parse_batch_curve(s: &str) -> Result<BatchCurve, String> {
    s.split(',')
        .map(|point| {
            let (b, t) = point.trim().split_once(':').ok_or_else(|| {
                format!("{point:?} is not BATCH:TIME: write points like 1:45ms,16:113ms")
            })?;
            let b = b
                .trim()
                .parse::<u32>()
                .map_err(|_| format!("{b:?} is not a batch size (a whole number of sequences)"))?;
            Ok((b, parse_duration(t.trim())?))
        })
        .collect::<Result<_, String>>()
        .map(BatchCurve)
}

fn parse_output_len(s: &str) -> Result<OutputLen, String> {
    s.parse()
}

/// A list of ports (one clap value, so that `Vec` does not mean "repeated flag").
#[derive(Debug, Clone, PartialEq)]
struct Ports(Vec<u16>);

/// A list of instance indices.
#[derive(Debug, Clone, PartialEq)]
struct Indices(Vec<usize>);

/// `8001-8004`, `8001,8002`, `0,0,0`, or a mix.
fn parse_ports(s: &str) -> Result<Ports, String> {
    let mut ports = Vec::new();
    for part in s.split(',').map(str::trim) {
        let port = |p: &str| {
            p.trim()
                .parse::<u16>()
                .map_err(|_| format!("{p:?} is not a port (0-65535)"))
        };
        match part.split_once('-') {
            Some((a, b)) => {
                let (a, b) = (port(a)?, port(b)?);
                if a > b || a == 0 {
                    return Err(format!(
                        "{part:?} is not a port range: write LOW-HIGH, e.g. 8001-8004"
                    ));
                }
                ports.extend(a..=b);
            }
            None => ports.push(port(part)?),
        }
    }
    Ok(Ports(ports))
}

/// `1`, `0,2`, `0-3`.
fn parse_indices(s: &str) -> Result<Indices, String> {
    let mut out = Vec::new();
    for part in s.split(',').map(str::trim) {
        let index = |p: &str| {
            p.trim()
                .parse::<usize>()
                .map_err(|_| format!("{p:?} is not an instance index (0, 1, ...)"))
        };
        match part.split_once('-') {
            Some((a, b)) => out.extend(index(a)?..=index(b)?),
            None => out.push(index(part)?),
        }
    }
    Ok(Indices(out))
}

/// What to run: validated, one config per instance.
#[derive(Debug)]
struct Plan {
    host: String,
    ports: Vec<u16>,
    configs: Vec<SimConfig>,
}

fn plan(args: &SimArgs) -> Result<Plan, String> {
    let mut base = SimConfig::preset(&args.preset).map_err(|e| format!("--preset: {e}"))?;
    if let Some(model) = &args.model {
        base.model = model.clone();
    }
    base.time_scale = args.time_scale;
    base.api_key = args.api_key.clone();
    // A preset of a server without /metrics keeps them hidden.
    base.hide_metrics |= args.no_metrics;
    if let Some(len) = args.output_len {
        base.output_len = len;
        base.sample_eos = true;
    }
    let e = &args.engine;
    let p = &mut base.params;
    macro_rules! set {
        ($($field:ident),*) => { $( if let Some(v) = e.$field { p.$field = v; } )* };
    }
    set!(
        max_model_len,
        max_num_seqs,
        max_num_batched_tokens,
        num_kv_blocks,
        block_size,
        long_prefill_token_threshold
    );
    set!(
        max_num_queued_reqs,
        t_fixed,
        t_seq,
        api_overhead,
        api_overhead_jitter
    );
    set!(
        weight_bytes,
        active_params,
        hbm_bw,
        kv_bw,
        flops,
        kv_bytes_per_token
    );
    set!(idle_wake, idle_after);
    if let Some(curve) = &e.batch_curve {
        p.batch_curve.clone_from(&curve.0);
    }
    if e.no_prefix_caching {
        p.enable_prefix_caching = false;
    }
    let f = &args.faults;
    base.faults = drover_sim::Faults {
        fail_rate: f.fail_rate,
        rate_limit_rate: f.rate_limit_rate,
        retry_after: f.retry_after,
        hang_rate: f.hang_rate,
        garbage_rate: f.garbage_rate,
        reset_rate: f.reset_rate,
        slow_rate: f.slow_rate,
        slow_delay: f.slow_delay,
        slow_start: f.slow_start.unwrap_or_default(),
        kill_after: f.kill_after,
        revive_after: f.revive_after,
        stall_after: f.stall_after,
        stall_for: f.stall_for,
        honor_header: !f.no_fault_header,
    };
    base.validate().map_err(|e| e.to_string())?;

    let n = args.ports.0.len();
    if n == 0 {
        return Err("--ports: give at least one port".into());
    }
    let speeds = match args.speed_factors.len() {
        0 => vec![1.0; n],
        1 => vec![args.speed_factors[0]; n],
        k if k == n => args.speed_factors.clone(),
        k => {
            return Err(format!(
                "--speed-factors: {k} values for {n} instances: give one per instance, or one for all"
            ));
        }
    };
    let check = |flag: &str, list: &Option<Indices>| -> Result<(), String> {
        match list.iter().flat_map(|l| &l.0).find(|&&i| i >= n) {
            Some(i) => Err(format!(
                "{flag}: instance {i} does not exist (there are {n}, numbered from 0)"
            )),
            None => Ok(()),
        }
    };
    check("--kill-instances", &f.kill_instances)?;
    check("--stall-instances", &f.stall_instances)?;
    let picked = |list: &Option<Indices>, i: usize| list.as_ref().is_none_or(|l| l.0.contains(&i));
    let mut configs = Vec::with_capacity(n);
    for (i, speed) in speeds.into_iter().enumerate() {
        let mut c = base.clone();
        c.speed_factor = speed;
        c.seed = args.seed.wrapping_add(i as u64);
        if !picked(&f.kill_instances, i) {
            c.faults.kill_after = None;
            c.faults.revive_after = None;
        }
        if !picked(&f.stall_instances, i) {
            c.faults.stall_after = None;
            c.faults.stall_for = None;
        }
        c.validate().map_err(|e| e.to_string())?;
        configs.push(c);
    }
    Ok(Plan {
        host: args.host.clone(),
        ports: args.ports.0.clone(),
        configs,
    })
}

fn print_presets() {
    println!(
        "{:<24} {:<34} {:>9} {:>9} {:>9} {:>8} {:>7} {:>6} {:>6} {:>8}",
        "preset",
        "model",
        "t_fixed",
        "W/BW",
        "2P/F",
        "KV/tok",
        "blocks",
        "seqs",
        "budget",
        "max_len"
    );
    for p in drover_sim::presets() {
        if p.instant {
            println!(
                "{:<24} {:<34} answers at once, no engine model ({})",
                p.name, p.model, p.source
            );
            continue;
        }
        let c = drover_sim::StepCosts::of(&p.params);
        let fixed = match p.params.batch_curve.first() {
            Some(&(_, t)) => format!("{:.1}ms*", t.as_secs_f64() * 1e3),
            None => format!("{:.2}ms", c.t_fixed * 1e3),
        };
        println!(
            "{:<24} {:<34} {fixed:>9} {:>7.2}ms {:>7.1}us {:>6.0}ns {:>7} {:>6} {:>6} {:>8}",
            p.name,
            p.model,
            c.t_weights * 1e3,
            c.t_flop * 1e6,
            c.t_kv * 1e9,
            p.params.num_kv_blocks,
            p.params.max_num_seqs,
            p.params.max_num_batched_tokens,
            p.params.max_model_len,
        );
    }
}

/// Runs `drover sim`; returns the exit code.
pub fn main(args: SimArgs) -> u8 {
    let _ = tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()),
        )
        .try_init();
    if args.list_presets {
        print_presets();
        return exit::OK;
    }
    let plan = match plan(&args) {
        Ok(plan) => plan,
        Err(message) => {
            eprintln!("drover sim: error: {message}");
            return exit::USAGE;
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(err) => {
            eprintln!("drover sim: error: cannot start the async runtime: {err}");
            return exit::USAGE;
        }
    };
    runtime.block_on(run(plan))
}

async fn run(plan: Plan) -> u8 {
    let preset = plan.configs[0].preset.clone();
    let fleet = match Fleet::start(&plan.host, &plan.ports, plan.configs).await {
        Ok(fleet) => fleet,
        Err(err) => {
            eprintln!("drover sim: error: {err} (pick free ports with --ports, or 0 for any)");
            return exit::USAGE;
        }
    };
    // An IPv6 literal needs brackets in a URL.
    let host = if plan.host.contains(':') {
        format!("[{}]", plan.host)
    } else {
        plan.host.clone()
    };
    {
        let mut out = std::io::stdout().lock();
        for (i, addr) in fleet.addrs().iter().enumerate() {
            let _ = writeln!(
                out,
                "drover sim: instance {i} listening on http://{host}:{} (preset {preset})",
                addr.port()
            );
        }
        let _ = out.flush();
    }
    wait_for_signal().await;
    eprintln!("drover sim: stopping");
    fleet.shutdown().await;
    exit::OK
}

async fn wait_for_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        args: SimArgs,
    }

    fn args(flags: &[&str]) -> Result<SimArgs, clap::Error> {
        Cli::try_parse_from(std::iter::once("sim").chain(flags.iter().copied())).map(|c| c.args)
    }

    #[test]
    fn ports_and_indices() {
        assert_eq!(
            parse_ports("8001-8004").unwrap().0,
            vec![8001, 8002, 8003, 8004]
        );
        assert_eq!(
            parse_ports("8001,9000-9001,0").unwrap().0,
            vec![8001, 9000, 9001, 0]
        );
        assert!(parse_ports("9000-8000").is_err());
        assert!(parse_ports("http").unwrap_err().contains("not a port"));
        assert_eq!(parse_indices("0,2-3").unwrap().0, vec![0, 2, 3]);
    }

    #[test]
    fn flags_become_per_instance_configs() {
        let a = args(&[
            "--ports",
            "0,0,0,0",
            "--speed-factors",
            "1,1,1,0.33",
            "--max-num-seqs",
            "64",
            "--t-fixed",
            "0.7ms",
            "--kill-after",
            "10s",
            "--revive-after",
            "5s",
            "--kill-instances",
            "1",
            "--seed",
            "5",
            "--output-len",
            "uniform:50-400",
            "--hbm-bw",
            "3e12",
        ])
        .unwrap();
        let p = plan(&a).unwrap();
        assert_eq!(p.configs.len(), 4);
        assert_eq!(p.configs[3].speed_factor, 0.33);
        assert_eq!(p.configs[0].params.max_num_seqs, 64);
        assert_eq!(p.configs[0].params.t_fixed, Duration::from_micros(700));
        assert_eq!(p.configs[0].params.hbm_bw, 3e12);
        assert_eq!(
            p.configs[1].faults.kill_after,
            Some(Duration::from_secs(10))
        );
        assert_eq!(p.configs[0].faults.kill_after, None);
        assert_eq!(p.configs[2].seed, 7);
        assert!(p.configs[0].sample_eos);
    }

    #[test]
    fn bad_flags_name_the_flag_and_the_fix() {
        let err = |flags: &[&str]| plan(&args(flags).unwrap()).unwrap_err();
        assert!(err(&["--preset", "gpt"]).starts_with("--preset: unknown preset"));
        assert!(err(&["--ports", "0,0", "--speed-factors", "1,2,3"]).contains("one per instance"));
        assert!(err(&["--max-num-seqs", "0"]).starts_with("--max-num-seqs:"));
        assert!(err(&["--fail-rate", "2"]).starts_with("--fail-rate:"));
        assert!(
            err(&[
                "--ports",
                "0",
                "--kill-after",
                "1s",
                "--kill-instances",
                "3"
            ])
            .contains("instance 3 does not exist")
        );
        assert!(err(&["--revive-after", "1s"]).starts_with("--revive-after:"));
        assert!(
            args(&["--t-fixed", "fast"])
                .unwrap_err()
                .to_string()
                .contains("--t-fixed")
        );
        assert!(
            args(&["--output-len", "lots"])
                .unwrap_err()
                .to_string()
                .contains("fixed:N")
        );
    }
}
