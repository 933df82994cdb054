//! `drover run` arguments + environment → a validated plan. Pure: the environment comes in
//! as a function, so the seed's variables are tested without touching the process's.

use std::path::PathBuf;

use drover_client::BackendAddr;
use drover_io::{RequestDefaults, Shard};
use drover_job::{InputSource, OutputMode};
use drover_sched::{Mode, StreamPolicy};
use serde_json::{Map, Value};

use super::args::{EndpointArg, ModeArg, RunArgs, StreamArg};

/// The mode before the fleet size is known.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ModeChoice {
    /// Serial.
    Serial,
    /// Concurrent with N, or with the number of backends.
    Concurrent(Option<usize>),
    /// Adaptive.
    Adaptive,
}

impl ModeChoice {
    /// The mode for a fleet of `backends`.
    pub fn resolve(self, backends: usize) -> Mode {
        match self {
            ModeChoice::Serial => Mode::Serial,
            ModeChoice::Concurrent(n) => Mode::Concurrent(n.unwrap_or(backends).max(1)),
            ModeChoice::Adaptive => Mode::Adaptive,
        }
    }
}

/// Where the backends come from.
#[derive(Debug, Clone, PartialEq)]
pub enum BackendSource {
    /// A fixed list.
    List(Vec<BackendAddr>),
    /// Nothing given: the embedded engine.
    Embedded,
}

/// A validated `drover run`.
#[derive(Debug)]
pub struct RunPlan {
    /// Tasks.
    pub input: InputSource,
    /// Results.
    pub output: PathBuf,
    /// Fresh / overwrite / resume.
    pub output_mode: OutputMode,
    /// Backends.
    pub backends: BackendSource,
    /// `dns://name:port` entries, resolved and re-resolved at run time.
    pub dns: Vec<(String, u16)>,
    /// `--backends-file`.
    pub backends_file: Option<PathBuf>,
    /// Where the backend list came from, for the banner.
    pub backends_from: &'static str,
    /// Mode.
    pub mode: ModeChoice,
    /// What set the mode, for the banner.
    pub mode_from: String,
    /// `--model`.
    pub model: Option<String>,
    /// Request defaults (model filled in after discovery).
    pub defaults: RequestDefaults,
    /// `--template`.
    pub template: Option<PathBuf>,
    /// The API key's value and the variable it came from.
    pub api_key: Option<(String, String)>,
    /// `--shard`.
    pub shard: Option<Shard>,
    /// Stream policy.
    pub stream: StreamPolicy,
}

/// A usage or configuration error (exit 2).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct UsageError(pub String);

fn usage(msg: impl Into<String>) -> UsageError {
    UsageError(msg.into())
}

fn env_bool(env: &dyn Fn(&str) -> Option<String>, name: &str) -> Result<Option<bool>, UsageError> {
    let Some(v) = env(name) else { return Ok(None) };
    match v.trim().to_ascii_lowercase().as_str() {
        "" => Ok(None),
        "1" | "true" | "yes" | "on" => Ok(Some(true)),
        "0" | "false" | "no" | "off" => Ok(Some(false)),
        _ => Err(usage(format!(
            "{name}={v:?} is not a boolean: use true or false"
        ))),
    }
}

fn split_list(s: &str) -> impl Iterator<Item = &str> {
    s.split([',', ' ']).map(str::trim).filter(|x| !x.is_empty())
}

/// Validates the arguments against the environment.
pub fn plan(args: &RunArgs, env: &dyn Fn(&str) -> Option<String>) -> Result<RunPlan, UsageError> {
    let (input, output) = if args.input.as_os_str() == "-" {
        let out = args
            .output
            .clone()
            .ok_or_else(|| usage("reading tasks from stdin ('-'): name the output with -o FILE"))?;
        (InputSource::Stdin, out)
    } else {
        let out = args
            .output
            .clone()
            .unwrap_or_else(|| default_output(&args.input));
        (InputSource::Path(args.input.clone()), out)
    };
    if let InputSource::Path(p) = &input {
        if p == &output {
            return Err(usage(format!(
                "the output {} would overwrite the input: choose another -o",
                output.display()
            )));
        }
    }
    let output_mode = if args.resume {
        OutputMode::Resume {
            retry_failed: args.retry_failed,
        }
    } else if args.overwrite {
        OutputMode::Overwrite
    } else {
        OutputMode::Fresh
    };

    // Backends: flags, then DROVER_BACKENDS, then the seed's VLLM_PORTS.
    let (raw, mut backends_from): (Vec<String>, &'static str) = if !args.backends.is_empty() {
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
        (Vec::new(), "")
    };
    let mut list = Vec::new();
    let mut dns = Vec::new();
    for b in &raw {
        if let Some(rest) = b.strip_prefix("dns://") {
            let (name, port) = rest
                .rsplit_once(':')
                .and_then(|(n, p)| Some((n.to_string(), p.parse::<u16>().ok()?)))
                .ok_or_else(|| usage(format!("invalid backend {b:?}: dns:// needs name:port, e.g. dns://vllm.default.svc:8000")))?;
            dns.push((name, port));
        } else {
            list.push(
                BackendAddr::parse(b).map_err(|e| usage(format!("{e} (from {backends_from})")))?,
            );
        }
    }
    if env_bool(env, "USE_MULTI_VLLM")? == Some(false) && list.len() > 1 {
        list.truncate(1);
        backends_from = "USE_MULTI_VLLM=false: first backend only";
    }
    let backends = if list.is_empty() && dns.is_empty() && args.backends_file.is_none() {
        BackendSource::Embedded
    } else {
        BackendSource::List(list)
    };

    // Mode: --mode, else the seed's variables, else adaptive.
    let max_workers = match env("MAX_WORKERS").filter(|v| !v.trim().is_empty()) {
        Some(v) => Some(
            v.trim()
                .parse::<usize>()
                .ok()
                .filter(|n| *n > 0)
                .ok_or_else(|| usage(format!("MAX_WORKERS={v:?} is not a positive number")))?,
        ),
        None => None,
    };
    let workers = args.workers.or(max_workers);
    if args.workers == Some(0) {
        return Err(usage("--workers must be at least 1"));
    }
    let use_concurrent = env_bool(env, "USE_CONCURRENT")?;
    let (mode, mode_from) = match args.mode {
        Some(ModeArg::Serial) => (ModeChoice::Serial, "--mode serial".to_string()),
        Some(ModeArg::Concurrent) => (
            ModeChoice::Concurrent(workers),
            "--mode concurrent".to_string(),
        ),
        Some(ModeArg::Adaptive) => {
            if args.workers.is_some() {
                return Err(usage(
                    "--workers sets the total for --mode concurrent; adaptive mode finds its own limits (drop --workers or add --mode concurrent)",
                ));
            }
            (ModeChoice::Adaptive, "--mode adaptive".to_string())
        }
        None if use_concurrent == Some(false) => {
            (ModeChoice::Serial, "USE_CONCURRENT=false".to_string())
        }
        None if args.workers.is_some() => {
            (ModeChoice::Concurrent(workers), "--workers".to_string())
        }
        None if max_workers.is_some() => (
            ModeChoice::Concurrent(workers),
            format!("MAX_WORKERS={}", max_workers.unwrap_or(0)),
        ),
        None if use_concurrent == Some(true) => (
            ModeChoice::Concurrent(workers),
            "USE_CONCURRENT=true".to_string(),
        ),
        None => (ModeChoice::Adaptive, "default".to_string()),
    };

    let extra_body: Map<String, Value> = match &args.extra_body {
        None => Map::new(),
        Some(s) => match serde_json::from_str::<Value>(s) {
            Ok(Value::Object(m)) => m,
            Ok(_) => {
                return Err(usage(
                    "--extra-body must be a JSON object, e.g. '{\"top_p\":0.9}'",
                ));
            }
            Err(e) => return Err(usage(format!("--extra-body is not JSON: {e}"))),
        },
    };
    let defaults = RequestDefaults {
        model: None,
        max_tokens: args.max_tokens,
        temperature: args.temperature,
        extra_body,
        system: args.system.clone(),
        completions: args.endpoint == EndpointArg::Completions,
    };

    let api_key = match &args.api_key_env {
        Some(name) => match env(name) {
            Some(v) if !v.is_empty() => Some((v, name.clone())),
            _ => {
                return Err(usage(format!(
                    "--api-key-env {name}: the environment variable {name} is not set"
                )));
            }
        },
        None => env("OPENAI_API_KEY")
            .filter(|v| !v.is_empty())
            .map(|v| (v, "OPENAI_API_KEY".to_string())),
    };
    let shard = args
        .shard
        .as_deref()
        .map(str::parse::<Shard>)
        .transpose()
        .map_err(|e| usage(e.to_string()))?;
    if args.attempts == 0 {
        return Err(usage("--attempts must be at least 1"));
    }
    if args.max_per_backend == 0 {
        return Err(usage("--max-per-backend must be at least 1"));
    }
    let stream = match args.stream {
        StreamArg::Auto => StreamPolicy::Auto,
        StreamArg::On => StreamPolicy::Always,
        StreamArg::Off => StreamPolicy::Never,
    };
    Ok(RunPlan {
        input,
        output,
        output_mode,
        backends,
        dns,
        backends_file: args.backends_file.clone(),
        backends_from,
        mode,
        mode_from,
        model: args.model.clone(),
        defaults,
        template: args.template.clone(),
        api_key,
        shard,
        stream,
    })
}

/// `dir/tasks.jsonl` → `dir/tasks.results.jsonl`.
fn default_output(input: &std::path::Path) -> PathBuf {
    let stem = input
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| "tasks".into());
    input.with_file_name(format!("{stem}.results.jsonl"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;
    use std::collections::HashMap;

    #[derive(Parser)]
    struct T {
        #[command(flatten)]
        run: RunArgs,
    }

    fn plan_of(argv: &[&str], env: &[(&str, &str)]) -> Result<RunPlan, UsageError> {
        let mut full = vec!["drover"];
        full.extend_from_slice(argv);
        let args = T::try_parse_from(full).unwrap().run;
        let env: HashMap<String, String> = env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        plan(&args, &|k| env.get(k).cloned())
    }

    fn ports(p: &RunPlan) -> Vec<String> {
        match &p.backends {
            BackendSource::List(l) => l.iter().map(|a| a.label.clone()).collect(),
            BackendSource::Embedded => vec![],
        }
    }

    #[test]
    fn seed_variables() {
        let env = [("VLLM_PORTS", "8001,8002,8003,8004")];
        let p = plan_of(&["in.jsonl"], &env).unwrap();
        assert_eq!(ports(&p).len(), 4);
        assert_eq!(p.mode, ModeChoice::Adaptive);
        assert_eq!(p.backends_from, "VLLM_PORTS");

        let p = plan_of(
            &["in.jsonl"],
            &[("VLLM_PORTS", "8001,8002"), ("USE_CONCURRENT", "false")],
        )
        .unwrap();
        assert_eq!(p.mode, ModeChoice::Serial);
        assert_eq!(p.mode.resolve(2), Mode::Serial);

        let p = plan_of(
            &["in.jsonl"],
            &[
                ("VLLM_PORTS", "8001,8002"),
                ("USE_CONCURRENT", "true"),
                ("MAX_WORKERS", "4"),
            ],
        )
        .unwrap();
        assert_eq!(p.mode.resolve(2), Mode::Concurrent(4));

        let p = plan_of(
            &["in.jsonl"],
            &[("VLLM_PORTS", "8001,8002,8003"), ("USE_CONCURRENT", "true")],
        )
        .unwrap();
        assert_eq!(
            p.mode.resolve(3),
            Mode::Concurrent(3),
            "the seed's advice: workers = instances"
        );

        let p = plan_of(
            &["in.jsonl"],
            &[
                ("VLLM_PORTS", "8001,8002,8003"),
                ("USE_MULTI_VLLM", "false"),
            ],
        )
        .unwrap();
        assert_eq!(ports(&p), vec!["127.0.0.1:8001"]);
    }

    #[test]
    fn flags_beat_env() {
        let env = [
            ("VLLM_PORTS", "8001,8002"),
            ("USE_CONCURRENT", "false"),
            ("MAX_WORKERS", "8"),
        ];
        let p = plan_of(
            &[
                "in.jsonl",
                "-b",
                "9001",
                "--mode",
                "concurrent",
                "--workers",
                "3",
            ],
            &env,
        )
        .unwrap();
        assert_eq!(ports(&p), vec!["127.0.0.1:9001"]);
        assert_eq!(p.mode.resolve(1), Mode::Concurrent(3));
        let p = plan_of(&["in.jsonl", "--mode", "adaptive"], &env).unwrap();
        assert_eq!(p.mode, ModeChoice::Adaptive);
        let p = plan_of(
            &["in.jsonl", "-b", "h:1,h:2", "-b", "h:3"],
            &[("DROVER_BACKENDS", "x:9")],
        )
        .unwrap();
        assert_eq!(ports(&p), vec!["h:1", "h:2", "h:3"]);
    }

    #[test]
    fn no_backend_means_embedded() {
        assert_eq!(
            plan_of(&["in.jsonl"], &[]).unwrap().backends,
            BackendSource::Embedded
        );
    }

    #[test]
    fn outputs_and_modes() {
        let p = plan_of(&["data/tasks.jsonl"], &[]).unwrap();
        assert_eq!(p.output, PathBuf::from("data/tasks.results.jsonl"));
        assert_eq!(p.output_mode, OutputMode::Fresh);
        let p = plan_of(&["t.jsonl", "--resume", "--retry-failed"], &[]).unwrap();
        assert_eq!(p.output_mode, OutputMode::Resume { retry_failed: true });
    }

    #[test]
    fn bad_values_name_the_flag_or_variable() {
        let cases: &[(&[&str], &[(&str, &str)], &str)] = &[
            (&["-"], &[], "-o FILE"),
            (&["in.jsonl", "-b", "nope"], &[], "no port"),
            (
                &["in.jsonl"],
                &[("USE_CONCURRENT", "maybe")],
                "USE_CONCURRENT",
            ),
            (&["in.jsonl"], &[("MAX_WORKERS", "zero")], "MAX_WORKERS"),
            (&["in.jsonl", "--extra-body", "[1]"], &[], "--extra-body"),
            (&["in.jsonl", "--api-key-env", "MY_KEY"], &[], "MY_KEY"),
            (&["in.jsonl", "--shard", "3/3"], &[], "--shard"),
            (&["in.jsonl", "-o", "in.jsonl"], &[], "overwrite the input"),
            (
                &["in.jsonl", "--mode", "adaptive", "--workers", "4"],
                &[],
                "--workers",
            ),
            (&["in.jsonl", "-b", "dns://svc"], &[], "dns://"),
        ];
        for (argv, env, want) in cases {
            let e = plan_of(argv, env).unwrap_err().to_string();
            assert!(e.contains(want), "{argv:?}: {e}");
        }
    }

    #[test]
    fn api_key_from_named_or_default_variable() {
        let p = plan_of(&["in.jsonl", "--api-key-env", "K"], &[("K", "sk-1")]).unwrap();
        assert_eq!(p.api_key, Some(("sk-1".into(), "K".into())));
        let p = plan_of(&["in.jsonl"], &[("OPENAI_API_KEY", "sk-2")]).unwrap();
        assert_eq!(p.api_key.unwrap().1, "OPENAI_API_KEY");
    }
}
