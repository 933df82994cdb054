//! `drover batch-server`: the OpenAI Batch API (`/v1/files`, `/v1/batches`) over a fleet.
//!
//! Arguments and environment → a validated plan (pure, tested below) → discovery → the server
//! (`drover-batch`) on a bound listener until SIGINT/SIGTERM.

use std::io::Write;
use std::net::IpAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::Args;
use drover_batch::{BatchServer, DEFAULT_MAX_UPLOAD_BYTES, ServerConfig};
use drover_client::{BackendAddr, Client, ClientConfig};
use drover_sched::limit::AdaptiveConfig;
use drover_sched::retry::RetryPolicy;
use drover_sched::{DispatchConfig, Mode, StreamPolicy, TimeoutPolicy};

use crate::exit;

/// Arguments of `drover batch-server`.
#[derive(Debug, Args)]
#[command(
    after_help = "Environment: DROVER_BACKENDS or the seed's VLLM_PORTS when -b is not given; \
DROVER_BATCH_API_KEY for --api-key.\n\
The server prints `drover batch-server: listening on http://HOST:PORT` once it accepts requests, and stops \
on SIGINT/SIGTERM (requests in flight get --grace; unfinished batches resume on the next start).\n\
Exit codes: 0 stopped by a signal, 1 the server failed, 2 usage/config error."
)]
pub struct BatchServerArgs {
    /// Backends: 8001, host:port, http(s)://host:port[/v1], dns://name:port; comma-separated or repeated.
    #[arg(
        short = 'b',
        long = "backends",
        value_name = "LIST",
        value_delimiter = ','
    )]
    pub backends: Vec<String>,

    /// Where the database, uploads, journals and result files live (created if missing).
    #[arg(long, value_name = "DIR")]
    pub data_dir: PathBuf,

    /// Address to listen on. Anything but loopback requires --api-key.
    #[arg(long, default_value = "127.0.0.1")]
    pub host: String,

    /// Port to listen on (0: any free port).
    #[arg(long, default_value_t = 8080)]
    pub port: u16,

    /// Key clients must send as `Authorization: Bearer KEY` [required unless --host is loopback].
    #[arg(
        long,
        value_name = "KEY",
        env = "DROVER_BATCH_API_KEY",
        hide_env_values = true
    )]
    pub api_key: Option<String>,

    /// Model to request [default: what the backends' /v1/models serve].
    #[arg(long)]
    pub model: Option<String>,

    /// Largest upload accepted (OpenAI's limit is 200 MB).
    #[arg(long, default_value_t = DEFAULT_MAX_UPLOAD_BYTES, value_name = "BYTES")]
    pub max_upload_bytes: u64,

    /// Attempts per request, the first included.
    #[arg(long, default_value_t = 5, value_name = "N")]
    pub attempts: u32,

    /// Deadline per attempt, e.g. 90s [default: 60s + 100ms per max_tokens].
    #[arg(long, value_name = "DURATION", value_parser = humantime::parse_duration)]
    pub timeout: Option<Duration>,

    /// Highest per-backend limit the adaptive mode may reach.
    #[arg(long, default_value_t = 1024, value_name = "N")]
    pub max_per_backend: usize,

    /// After SIGINT/SIGTERM, how long requests in flight may finish.
    #[arg(long, default_value = "10s", value_name = "DURATION", value_parser = humantime::parse_duration)]
    pub grace: Duration,

    /// How long a cancelled or expired batch waits for its requests in flight before it ends.
    #[arg(long, default_value = "10m", value_name = "DURATION", value_parser = humantime::parse_duration)]
    pub cancel_grace: Duration,

    /// Environment variable holding the key the backends expect (vLLM's --api-key).
    #[arg(long, value_name = "NAME")]
    pub backend_api_key_env: Option<String>,
}

/// A validated `drover batch-server`.
#[derive(Debug)]
struct Plan {
    backends: Vec<BackendAddr>,
    dns: Vec<(String, u16)>,
    backends_from: &'static str,
    api_key: Option<String>,
    backend_key: Option<String>,
}

fn split_list(s: &str) -> impl Iterator<Item = &str> {
    s.split([',', ' ']).map(str::trim).filter(|x| !x.is_empty())
}

/// Whether `host` is a loopback name or address (only this machine can connect).
fn is_loopback(host: &str) -> bool {
    let h = host.trim().trim_start_matches('[').trim_end_matches(']');
    h.eq_ignore_ascii_case("localhost") || h.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

fn plan(args: &BatchServerArgs, env: &dyn Fn(&str) -> Option<String>) -> Result<Plan, String> {
    let (raw, backends_from): (Vec<String>, &'static str) = if !args.backends.is_empty() {
        (
            args.backends
                .iter()
                .flat_map(|b| split_list(b).map(str::to_string).collect::<Vec<_>>())
                .collect(),
            "-b",
        )
    } else if let Some(v) = env("DROVER_BACKENDS").filter(|v| !v.trim().is_empty()) {
        (
            split_list(&v).map(str::to_string).collect(),
            "DROVER_BACKENDS",
        )
    } else if let Some(v) = env("VLLM_PORTS").filter(|v| !v.trim().is_empty()) {
        (split_list(&v).map(str::to_string).collect(), "VLLM_PORTS")
    } else {
        return Err("no backend: pass -b (e.g. -b 8001,8002 or -b http://gpu1:8000), or set DROVER_BACKENDS or VLLM_PORTS".into());
    };
    let (mut backends, mut dns) = (Vec::new(), Vec::new());
    for b in &raw {
        if let Some(rest) = b.strip_prefix("dns://") {
            let (name, port) = rest
                .rsplit_once(':')
                .and_then(|(n, p)| Some((n.to_string(), p.parse::<u16>().ok()?)))
                .ok_or_else(|| format!("invalid backend {b:?}: dns:// needs name:port, e.g. dns://vllm.default.svc:8000"))?;
            dns.push((name, port));
        } else {
            backends
                .push(BackendAddr::parse(b).map_err(|e| format!("{e} (from {backends_from})"))?);
        }
    }
    let api_key = args.api_key.clone().filter(|k| !k.is_empty());
    if api_key.is_none() && !is_loopback(&args.host) {
        return Err(format!(
            "--host {} is reachable from other machines: set a key with --api-key KEY (or DROVER_BATCH_API_KEY), \
             or listen on 127.0.0.1",
            args.host
        ));
    }
    let backend_key = match &args.backend_api_key_env {
        Some(name) => match env(name) {
            Some(v) if !v.is_empty() => Some(v),
            _ => {
                return Err(format!(
                    "--backend-api-key-env {name}: the environment variable {name} is not set"
                ));
            }
        },
        None => None,
    };
    if args.attempts == 0 {
        return Err("--attempts must be at least 1".into());
    }
    if args.max_per_backend == 0 {
        return Err("--max-per-backend must be at least 1".into());
    }
    if args.max_upload_bytes == 0 {
        return Err("--max-upload-bytes must be at least 1".into());
    }
    Ok(Plan {
        backends,
        dns,
        backends_from,
        api_key,
        backend_key,
    })
}

/// Runs `drover batch-server`.
pub fn main(args: BatchServerArgs) -> u8 {
    let plan = match plan(&args, &|k| std::env::var(k).ok()) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("drover batch-server: {e}");
            return exit::USAGE;
        }
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    rt.block_on(run(plan, args))
}

async fn run(plan: Plan, args: BatchServerArgs) -> u8 {
    let fail = |e: &dyn std::fmt::Display| {
        eprintln!("drover batch-server: {e}");
        exit::USAGE
    };
    let client = match Client::new(ClientConfig {
        api_key: plan.backend_key.clone(),
        ..ClientConfig::default()
    }) {
        Ok(c) => c,
        Err(e) => return fail(&e),
    };
    let sources = drover_job::membership::Sources {
        fixed: plan.backends.clone(),
        file: None,
        dns: plan.dns.clone(),
    };
    let addrs = match sources.resolve().await {
        Ok(a) if !a.is_empty() => a,
        Ok(_) => return fail(&"no backend: the dns:// names resolve to no address"),
        Err(e) => return fail(&e),
    };
    let fleet = match drover_job::discover(
        &client,
        addrs,
        args.model.as_deref(),
        Duration::from_secs(10),
    )
    .await
    {
        Ok(f) => f,
        Err(e) => return fail(&e),
    };
    for (b, why) in &fleet.left_out {
        eprintln!("drover batch-server: warning: backend {b} left out: {why}");
    }
    let probe_body = serde_json::to_vec(&serde_json::json!({
        "model": fleet.model,
        "messages": [{"role": "user", "content": "ping"}],
        "max_tokens": 1,
    }))
    .ok()
    .map(bytes::Bytes::from);
    let dispatch = DispatchConfig {
        mode: Mode::Adaptive,
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
        stream: StreamPolicy::Auto,
        // The dispatcher's give-up after `max_wait` with every backend down lasts for its
        // whole life. A server must not turn an outage into failures for every later batch:
        // requests wait for the fleet, and each batch's completion window bounds the wait.
        max_wait: Duration::from_secs(10 * 365 * 24 * 3600),
        probe_body,
        ..DispatchConfig::default()
    };
    let labels: Vec<String> = fleet
        .backends
        .iter()
        .map(|b| b.addr.label.clone())
        .collect();
    let membership = (!plan.dns.is_empty()).then(|| {
        drover_job::membership::watch(
            client.clone(),
            sources.clone(),
            fleet.model.clone(),
            fleet.backends.clone(),
            Duration::from_secs(2),
        )
    });
    let config = ServerConfig {
        data_dir: args.data_dir.clone(),
        api_key: plan.api_key.clone(),
        max_upload_bytes: args.max_upload_bytes,
        dispatch,
        client,
        backends: fleet.backends,
        membership,
        model: fleet.model.clone(),
        grace: args.grace,
        drain: args.cancel_grace,
    };
    let server = match BatchServer::open(config) {
        Ok(s) => s,
        Err(e) => return fail(&e),
    };
    let listener = match tokio::net::TcpListener::bind((args.host.as_str(), args.port)).await {
        Ok(l) => l,
        Err(e) => {
            return fail(&format!(
                "cannot listen on {}:{}: {e}",
                args.host, args.port
            ));
        }
    };
    let addr = match listener.local_addr() {
        Ok(a) => a,
        Err(e) => return fail(&e),
    };
    eprintln!(
        "drover batch-server {}: {} backend{} ({}): {}",
        env!("CARGO_PKG_VERSION"),
        labels.len(),
        if labels.len() == 1 { "" } else { "s" },
        plan.backends_from,
        labels.join(", ")
    );
    eprintln!(
        "  model: {}",
        fleet
            .model
            .as_deref()
            .unwrap_or("(not listed by the backends; requests name their own)")
    );
    eprintln!("  data: {}", server.data_dir().display());
    eprintln!(
        "  auth: {}",
        if plan.api_key.is_some() {
            "API key required"
        } else {
            "none (loopback only)"
        }
    );
    println!("drover batch-server: listening on http://{addr}");
    let _ = std::io::stdout().flush();
    match server.serve(listener, interrupted()).await {
        Ok(()) => {
            eprintln!(
                "drover batch-server: stopped; unfinished batches resume on the next start with --data-dir {}",
                args.data_dir.display()
            );
            exit::OK
        }
        Err(e) => {
            eprintln!("drover batch-server: {e}");
            1
        }
    }
}

/// Completes at the first SIGINT/SIGTERM; a second one exits at once (every journal line on
/// disk is whole, so nothing is lost: the next start resumes).
async fn interrupted() {
    wait_signal().await;
    eprintln!(
        "drover batch-server: stopping: no new requests; requests in flight get --grace (signal again to quit now)"
    );
    tokio::spawn(async {
        wait_signal().await;
        eprintln!("drover batch-server: stopping now");
        std::process::exit(i32::from(exit::INTERRUPTED));
    });
}

async fn wait_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let mut term = signal(SignalKind::terminate()).expect("SIGTERM handler");
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
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
    use std::collections::HashMap;

    #[derive(Parser)]
    struct T {
        #[command(flatten)]
        args: BatchServerArgs,
    }

    fn plan_of(argv: &[&str], env: &[(&str, &str)]) -> Result<Plan, String> {
        let mut full = vec!["drover", "--data-dir", "d"];
        full.extend_from_slice(argv);
        let args = T::try_parse_from(full).unwrap().args;
        let env: HashMap<String, String> = env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        plan(&args, &|k| env.get(k).cloned())
    }

    #[test]
    fn backends_from_flags_then_env() {
        let p = plan_of(
            &["-b", "8001,h:2", "-b", "dns://svc:8000"],
            &[("VLLM_PORTS", "9")],
        )
        .unwrap();
        assert_eq!(
            p.backends
                .iter()
                .map(|b| b.label.as_str())
                .collect::<Vec<_>>(),
            ["127.0.0.1:8001", "h:2"]
        );
        assert_eq!(p.dns, vec![("svc".to_string(), 8000)]);
        assert_eq!(
            plan_of(&[], &[("VLLM_PORTS", "8001,8002")])
                .unwrap()
                .backends_from,
            "VLLM_PORTS"
        );
        assert!(plan_of(&[], &[]).unwrap_err().contains("-b"));
    }

    #[test]
    fn a_key_is_required_off_loopback() {
        for host in ["127.0.0.1", "::1", "[::1]", "localhost", "127.0.0.2"] {
            assert!(plan_of(&["-b", "1", "--host", host], &[]).is_ok(), "{host}");
        }
        let e = plan_of(&["-b", "1", "--host", "0.0.0.0"], &[]).unwrap_err();
        assert!(
            e.contains("--api-key") && e.contains("DROVER_BATCH_API_KEY"),
            "{e}"
        );
        assert!(plan_of(&["-b", "1", "--host", "0.0.0.0", "--api-key", "k"], &[]).is_ok());
        assert_eq!(
            plan_of(&["-b", "1", "--api-key", "k"], &[])
                .unwrap()
                .api_key
                .as_deref(),
            Some("k")
        );
    }

    #[test]
    fn bad_values_name_their_flag() {
        assert!(
            plan_of(&["-b", "nope"], &[])
                .unwrap_err()
                .contains("no port")
        );
        assert!(
            plan_of(&["-b", "1", "--attempts", "0"], &[])
                .unwrap_err()
                .contains("--attempts")
        );
        assert!(
            plan_of(&["-b", "1", "--backend-api-key-env", "K"], &[])
                .unwrap_err()
                .contains("K is not set")
        );
        assert_eq!(
            plan_of(&["-b", "1", "--backend-api-key-env", "K"], &[("K", "s")])
                .unwrap()
                .backend_key
                .as_deref(),
            Some("s")
        );
    }
}
