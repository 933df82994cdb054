//! `drover probe`: what each backend is and how loaded it is, before (or while) a run uses it.
//!
//! Every backend is probed in parallel with read-only GETs: a TCP connect (reachability and
//! its latency), `/health`, `/v1/models` (ids, `max_model_len`), `/version`, `/metrics` (engine
//! metric names and live load), Ollama's `/api/version` and `/api/tags`, TGI's `/info`, and
//! llama.cpp's `/props` and `/slots`. The engine kind is decided from what answered, strongest
//! evidence first ([`decide`]); the evidence is printed with `--json` so a wrong guess can be
//! understood. The metric names themselves live in `drover_client::metrics`.
//!
//! Exit status: 0 when every backend is reachable, 1 when some are not, 2 on usage errors.

use std::time::{Duration, Instant};

use clap::Args;
use drover_client::metrics::parse_metrics;
use drover_client::{BackendAddr, EngineKind};
use serde::Serialize;
use serde_json::Value;

use crate::exit;

/// Arguments of `drover probe`.
#[derive(Debug, Args)]
#[command(after_help = "Exit codes: 0 every backend reachable, 1 some unreachable, 2 usage error.")]
pub struct ProbeArgs {
    /// Backends: 8001, host:port, http(s)://host:port[/v1], dns://name:port [default: DROVER_BACKENDS, then VLLM_PORTS].
    #[arg(
        short = 'b',
        long = "backends",
        value_name = "LIST",
        value_delimiter = ','
    )]
    pub backends: Vec<String>,

    /// Print JSON (an array, one object per backend) instead of a table.
    #[arg(long)]
    pub json: bool,

    /// Time allowed for the connection and for each request.
    #[arg(long, default_value = "5s", value_name = "DURATION", value_parser = humantime::parse_duration)]
    pub timeout: Duration,

    /// Environment variable holding the API key [default: OPENAI_API_KEY when set].
    #[arg(long, value_name = "NAME")]
    pub api_key_env: Option<String>,
}

/// What one backend answered.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Probe {
    /// host:port.
    pub backend: String,
    /// The OpenAI API root probed.
    pub url: String,
    /// Whether a TCP connection opened.
    pub reachable: bool,
    /// How long the connection took to open, milliseconds.
    pub connect_ms: Option<f64>,
    /// Why it is unreachable (or what else went wrong).
    pub error: Option<String>,
    /// `ok`, `HTTP 503`, `none` (no /health endpoint), or the failure.
    pub health: Option<String>,
    /// vLLM, SGLang, llama.cpp, TGI, Ollama or other.
    pub engine: Option<&'static str>,
    /// The engine's version, when it tells.
    pub engine_version: Option<String>,
    /// What the engine kind was decided from.
    pub evidence: Vec<String>,
    /// Served models.
    pub models: Vec<ModelOut>,
    /// Why the models could not be listed.
    pub models_error: Option<String>,
    /// Longest prompt + output, tokens (largest over the served models).
    pub max_model_len: Option<u64>,
    /// Live load, when the backend publishes it.
    pub load: Option<Load>,
}

/// One served model.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct ModelOut {
    /// The id requests name.
    pub id: String,
    /// Its context length, when listed.
    pub max_model_len: Option<u64>,
}

/// Live load.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Load {
    /// Requests being processed.
    pub running: Option<f64>,
    /// Requests queued in the server.
    pub waiting: Option<f64>,
    /// KV-cache use, 0–1.
    pub kv_usage: Option<f64>,
    /// `metrics` or `slots` (llama.cpp without --metrics).
    pub source: &'static str,
}

/// Runs `drover probe`.
pub fn main(args: ProbeArgs) -> u8 {
    let env = |k: &str| std::env::var(k).ok().filter(|v| !v.trim().is_empty());
    let raw: Vec<String> = if !args.backends.is_empty() {
        args.backends.clone()
    } else if let Some(v) = env("DROVER_BACKENDS").or_else(|| env("VLLM_PORTS")) {
        v.split([',', ' ']).map(str::to_string).collect()
    } else {
        eprintln!("drover probe: name the backends: -b 8001,8002 (or DROVER_BACKENDS)");
        return exit::USAGE;
    };
    let raw: Vec<String> = raw
        .iter()
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .collect();
    let mut targets = Vec::new();
    for b in &raw {
        match b.strip_prefix("dns://") {
            Some(rest) => match rest
                .rsplit_once(':')
                .and_then(|(n, p)| Some((n.to_string(), p.parse::<u16>().ok()?)))
            {
                Some((name, port)) => targets.push(Target::Dns(name, port)),
                None => {
                    eprintln!(
                        "drover probe: invalid backend {b:?}: dns:// needs name:port, e.g. dns://vllm.default.svc:8000"
                    );
                    return exit::USAGE;
                }
            },
            None => match BackendAddr::parse(b) {
                Ok(a) => targets.push(Target::Addr(Box::new(a))),
                Err(e) => {
                    eprintln!("drover probe: {e}");
                    return exit::USAGE;
                }
            },
        }
    }
    let key = match &args.api_key_env {
        Some(name) => match env(name) {
            Some(k) => Some(k),
            None => {
                eprintln!(
                    "drover probe: --api-key-env {name}: the environment variable {name} is not set"
                );
                return exit::USAGE;
            }
        },
        None => env("OPENAI_API_KEY"),
    };
    let http = match reqwest::Client::builder()
        .no_proxy()
        .connect_timeout(args.timeout)
        .timeout(args.timeout)
        .build()
    {
        Ok(c) => c,
        Err(e) => {
            eprintln!("drover probe: cannot build the HTTP client: {e}");
            return exit::USAGE;
        }
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    let probes = rt.block_on(async {
        let mut addrs = Vec::new();
        let mut failed = Vec::new();
        for t in targets {
            match t {
                Target::Addr(a) => addrs.push(*a),
                Target::Dns(name, port) => match tokio::net::lookup_host((name.as_str(), port))
                    .await
                {
                    Ok(found) => addrs
                        .extend(found.filter_map(|sa| BackendAddr::parse(&sa.to_string()).ok())),
                    Err(e) => failed.push(unreachable(
                        format!("dns://{name}:{port}"),
                        String::new(),
                        format!("cannot resolve {name}: {e}"),
                    )),
                },
            }
        }
        let ctx = Ctx {
            http,
            key,
            timeout: args.timeout,
        };
        let mut probes = futures::future::join_all(addrs.iter().map(|a| probe(&ctx, a))).await;
        probes.extend(failed);
        probes
    });
    if args.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&probes).expect("probes serialize")
        );
    } else {
        print!("{}", table(&probes));
    }
    if probes.iter().all(|p| p.reachable) {
        exit::OK
    } else {
        exit::TASKS_FAILED
    }
}

enum Target {
    Addr(Box<BackendAddr>),
    Dns(String, u16),
}

struct Ctx {
    http: reqwest::Client,
    /// Sent as a bearer token; never printed.
    key: Option<String>,
    timeout: Duration,
}

/// One GET's outcome: the status and body, or why there is none.
#[derive(Debug, Default)]
struct Got {
    status: Option<u16>,
    body: String,
    error: Option<String>,
}

impl Got {
    fn ok(&self) -> bool {
        self.status.is_some_and(|s| (200..300).contains(&s))
    }
    fn json(&self) -> Option<Value> {
        if self.ok() {
            serde_json::from_str(&self.body).ok()
        } else {
            None
        }
    }
}

async fn get(ctx: &Ctx, url: String) -> Got {
    let mut rb = ctx.http.get(&url);
    if let Some(k) = &ctx.key {
        rb = rb.bearer_auth(k);
    }
    let got = match rb.send().await {
        Ok(resp) => {
            let status = resp.status().as_u16();
            match resp.text().await {
                Ok(body) => Got {
                    status: Some(status),
                    body,
                    error: None,
                },
                Err(e) => Got {
                    status: Some(status),
                    body: String::new(),
                    error: Some(chain(&e)),
                },
            }
        }
        Err(e) => Got {
            status: None,
            body: String::new(),
            error: Some(chain(&e)),
        },
    };
    tracing::debug!(%url, status = ?got.status, error = ?got.error, "probe GET");
    got
}

fn unreachable(backend: String, url: String, error: String) -> Probe {
    Probe {
        backend,
        url,
        reachable: false,
        connect_ms: None,
        error: Some(error),
        health: None,
        engine: None,
        engine_version: None,
        evidence: Vec::new(),
        models: Vec::new(),
        models_error: None,
        max_model_len: None,
        load: None,
    }
}

async fn probe(ctx: &Ctx, addr: &BackendAddr) -> Probe {
    let authority = addr
        .root
        .split_once("://")
        .map_or(addr.root.as_str(), |(_, a)| a);
    let target = if authority
        .rsplit_once(':')
        .is_some_and(|(_, p)| !p.contains(']'))
    {
        authority.to_string()
    } else {
        format!(
            "{authority}:{}",
            if addr.root.starts_with("https") {
                443
            } else {
                80
            }
        )
    };
    let start = Instant::now();
    match tokio::time::timeout(ctx.timeout, tokio::net::TcpStream::connect(target.as_str())).await {
        Ok(Ok(_)) => {}
        Ok(Err(e)) => return unreachable(addr.label.clone(), addr.base.clone(), e.to_string()),
        Err(_) => {
            return unreachable(
                addr.label.clone(),
                addr.base.clone(),
                format!(
                    "no connection within {}",
                    humantime::format_duration(ctx.timeout)
                ),
            );
        }
    }
    let connect_ms = start.elapsed().as_secs_f64() * 1000.0;
    let r = |p: &str| addr.root_url(p);
    let (health, models, version, metrics, ollama, tags, info, props, slots) = tokio::join!(
        get(ctx, r("health")),
        get(ctx, addr.url("models")),
        get(ctx, r("version")),
        get(ctx, r("metrics")),
        get(ctx, r("api/version")),
        get(ctx, r("api/tags")),
        get(ctx, r("info")),
        get(ctx, r("props")),
        get(ctx, r("slots")),
    );
    let seen = Seen {
        metrics: metrics.ok().then_some(metrics.body.as_str()),
        models: models.json(),
        version: version.json(),
        ollama_version: ollama.json(),
        ollama_tags: tags.json(),
        tgi_info: info.json(),
        llama_props: props.json(),
        llama_slots: slots.json(),
    };
    let d = decide(&seen);
    let health_text = match (&health.status, &health.error) {
        (Some(200..=299), _) => "ok".to_string(),
        // Ollama has no /health; its API answering is its health.
        (Some(404), _) if d.engine == EngineKind::Ollama => "ok".to_string(),
        (Some(404), _) => "none".to_string(),
        (Some(s), _) => format!("HTTP {s}"),
        (None, Some(e)) => e.clone(),
        (None, None) => "-".to_string(),
    };
    let models_error = match (&models.status, &models.error) {
        _ if !d.models.is_empty() => None,
        (Some(401 | 403), _) => Some(format!(
            "{} answered HTTP {}: the API key is missing or wrong (--api-key-env)",
            addr.url("models"),
            models.status.unwrap_or(0)
        )),
        (Some(s), _) if !models.ok() => Some(format!("{} answered HTTP {s}", addr.url("models"))),
        (_, Some(e)) => Some(e.clone()),
        _ => Some("no model listed".into()),
    };
    Probe {
        backend: addr.label.clone(),
        url: addr.base.clone(),
        reachable: true,
        connect_ms: Some((connect_ms * 100.0).round() / 100.0),
        error: None,
        health: Some(health_text),
        engine: Some(d.engine.name()),
        engine_version: d.version,
        evidence: d.evidence,
        max_model_len: d
            .models
            .iter()
            .filter_map(|m| m.max_model_len)
            .max()
            .or(d.context),
        models: d.models,
        models_error,
        load: d.load,
    }
}

/// What the endpoints answered (2xx bodies only).
#[derive(Debug, Default)]
struct Seen<'a> {
    metrics: Option<&'a str>,
    models: Option<Value>,
    version: Option<Value>,
    ollama_version: Option<Value>,
    ollama_tags: Option<Value>,
    tgi_info: Option<Value>,
    llama_props: Option<Value>,
    llama_slots: Option<Value>,
}

/// What the answers add up to.
#[derive(Debug)]
struct Decision {
    engine: EngineKind,
    version: Option<String>,
    evidence: Vec<String>,
    models: Vec<ModelOut>,
    /// Context length from engine-specific endpoints, when /v1/models does not list one.
    context: Option<u64>,
    load: Option<Load>,
}

/// Decides the engine kind, strongest evidence first: the metric names an engine publishes are
/// unique to it; then endpoints only one engine has (Ollama's `/api/*`, TGI's `/info`,
/// llama.cpp's `/props`); then `owned_by` in the model list, which servers fill with their name.
fn decide(s: &Seen) -> Decision {
    let str_at = |v: &Option<Value>, p: &str| {
        v.as_ref()
            .and_then(|v| v.pointer(p))
            .and_then(Value::as_str)
            .map(str::to_string)
    };
    let mut models: Vec<ModelOut> = s
        .models
        .as_ref()
        .and_then(|v| v.get("data"))
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|m| {
                    Some(ModelOut {
                        id: m.get("id")?.as_str()?.to_string(),
                        max_model_len: m.get("max_model_len").and_then(Value::as_u64),
                    })
                })
                .collect()
        })
        .unwrap_or_default();
    let owned_by: Vec<String> = s
        .models
        .as_ref()
        .and_then(|v| v.get("data"))
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|m| m.get("owned_by")?.as_str().map(str::to_lowercase))
                .collect()
        })
        .unwrap_or_default();
    let signals = s.metrics.and_then(parse_metrics);
    let is_ollama = str_at(&s.ollama_version, "/version").is_some()
        && s.ollama_tags
            .as_ref()
            .and_then(|t| t.get("models"))
            .is_some_and(Value::is_array);
    let is_tgi = str_at(&s.tgi_info, "/model_id").is_some()
        && s.tgi_info.as_ref().is_some_and(|i| {
            ["max_total_tokens", "router", "max_input_tokens"]
                .iter()
                .any(|k| i.get(k).is_some())
        });
    let is_llama = s.llama_props.as_ref().is_some_and(|p| {
        p.get("default_generation_settings").is_some() || p.get("total_slots").is_some()
    });

    let (engine, evidence) = if let Some(sig) = &signals {
        (
            sig.engine,
            format!("/metrics has {} metric names", sig.engine.name()),
        )
    } else if is_ollama {
        (
            EngineKind::Ollama,
            "/api/version and /api/tags answer (Ollama API)".to_string(),
        )
    } else if is_tgi {
        (EngineKind::Tgi, "/info describes a TGI router".to_string())
    } else if is_llama {
        (
            EngineKind::LlamaCpp,
            "/props answers (llama.cpp server)".to_string(),
        )
    } else if let Some((kind, o)) = owned_by.iter().find_map(|o| match o.as_str() {
        "vllm" => Some((EngineKind::Vllm, o)),
        "sglang" => Some((EngineKind::Sglang, o)),
        "llamacpp" => Some((EngineKind::LlamaCpp, o)),
        _ => None,
    }) {
        (kind, format!("/v1/models says owned_by \"{o}\""))
    } else {
        (
            EngineKind::Other,
            "no engine-specific endpoint or metric name answered".to_string(),
        )
    };
    let mut evidence = vec![evidence];
    if !owned_by.is_empty() && !evidence[0].contains("owned_by") {
        evidence.push(format!("/v1/models owned_by: {}", owned_by.join(", ")));
    }

    let version = match engine {
        EngineKind::Ollama => str_at(&s.ollama_version, "/version"),
        EngineKind::Tgi => str_at(&s.tgi_info, "/version"),
        EngineKind::LlamaCpp => str_at(&s.llama_props, "/build_info"),
        _ => str_at(&s.version, "/version"),
    };
    if models.is_empty() && engine == EngineKind::Ollama {
        let tags = s
            .ollama_tags
            .as_ref()
            .and_then(|t| t.get("models"))
            .and_then(Value::as_array);
        models = tags
            .map(|a| {
                a.iter()
                    .filter_map(|m| {
                        Some(ModelOut {
                            id: m.get("name")?.as_str()?.to_string(),
                            max_model_len: None,
                        })
                    })
                    .collect()
            })
            .unwrap_or_default();
    }
    let context = match engine {
        EngineKind::Tgi => s
            .tgi_info
            .as_ref()
            .and_then(|i| i.get("max_total_tokens"))
            .and_then(Value::as_u64),
        EngineKind::LlamaCpp => s.llama_props.as_ref().and_then(|p| {
            p.pointer("/default_generation_settings/n_ctx")
                .or_else(|| p.get("n_ctx"))
                .and_then(Value::as_u64)
        }),
        _ => None,
    };
    let load = match &signals {
        Some(sig) => Some(Load {
            running: sig.running,
            waiting: sig.waiting,
            kv_usage: sig.kv_usage,
            source: "metrics",
        }),
        None if engine == EngineKind::LlamaCpp => s
            .llama_slots
            .as_ref()
            .and_then(Value::as_array)
            .map(|slots| {
                // Newer servers say is_processing, older ones state 1.
                let busy = slots
                    .iter()
                    .filter(|sl| {
                        sl.get("is_processing")
                            .and_then(Value::as_bool)
                            .unwrap_or(false)
                            || sl.get("state").and_then(Value::as_u64) == Some(1)
                    })
                    .count();
                Load {
                    running: Some(busy as f64),
                    waiting: None,
                    kv_usage: None,
                    source: "slots",
                }
            }),
        None => None,
    };
    Decision {
        engine,
        version,
        evidence,
        models,
        context,
        load,
    }
}

/// The terminal table.
fn table(probes: &[Probe]) -> String {
    use std::fmt::Write as _;
    let mut s = String::new();
    let _ = writeln!(
        s,
        "{:<22} {:>9} {:<7} {:<24} {:<32} {:>8} {:>7} {:>7} {:>5}",
        "backend", "connect", "health", "engine", "model", "max len", "running", "waiting", "kv"
    );
    for p in probes {
        if !p.reachable {
            let _ = writeln!(
                s,
                "{:<22} unreachable: {}",
                cut(&p.backend, 22),
                p.error.as_deref().unwrap_or("-")
            );
            continue;
        }
        let engine = match (&p.engine, &p.engine_version) {
            (Some(e), Some(v)) => format!("{e} {v}"),
            (Some(e), None) => e.to_string(),
            _ => "-".into(),
        };
        let model = match p.models.len() {
            0 => p
                .models_error
                .as_deref()
                .map_or("-".into(), |_| "(not listed)".into()),
            1 => p.models[0].id.clone(),
            n => format!("{} (+{})", p.models[0].id, n - 1),
        };
        let num = |v: Option<f64>| v.map_or("-".into(), |v| format!("{v:.0}"));
        let load = p.load.as_ref();
        let _ = writeln!(
            s,
            "{:<22} {:>9} {:<7} {:<24} {:<32} {:>8} {:>7} {:>7} {:>5}",
            cut(&p.backend, 22),
            p.connect_ms.map_or("-".into(), |ms| format!("{ms:.1} ms")),
            cut(p.health.as_deref().unwrap_or("-"), 7),
            cut(&engine, 24),
            cut(&model, 32),
            p.max_model_len.map_or("-".into(), |l| l.to_string()),
            num(load.and_then(|l| l.running)),
            num(load.and_then(|l| l.waiting)),
            load.and_then(|l| l.kv_usage)
                .map_or("-".into(), |k| format!("{:.0}%", k * 100.0)),
        );
        if let Some(e) = &p.models_error {
            let _ = writeln!(s, "{:<22}   models: {e}", "");
        }
    }
    let up = probes.iter().filter(|p| p.reachable).count();
    let _ = writeln!(
        s,
        "{up} of {} backend{} reachable",
        probes.len(),
        if probes.len() == 1 { "" } else { "s" }
    );
    s
}

fn cut(s: &str, n: usize) -> String {
    if s.chars().count() <= n {
        s.to_string()
    } else {
        format!("{}…", s.chars().take(n - 1).collect::<String>())
    }
}

/// `outer: inner`, so "connection refused" shows behind reqwest's wrapper.
fn chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut src = e.source();
    while let Some(inner) = src {
        let t = inner.to_string();
        if !s.contains(&t) {
            s = format!("{s}: {t}");
        }
        src = inner.source();
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn metric_names_win() {
        let d = decide(&Seen {
            metrics: Some(
                "sglang:num_running_reqs 3\nsglang:num_queue_reqs 1\nsglang:token_usage 0.5\n",
            ),
            models: Some(json!({"data": [{"id": "m", "owned_by": "vllm"}]})),
            ..Seen::default()
        });
        assert_eq!(d.engine, EngineKind::Sglang);
        assert_eq!(
            d.load,
            Some(Load {
                running: Some(3.0),
                waiting: Some(1.0),
                kv_usage: Some(0.5),
                source: "metrics"
            })
        );
        assert_eq!(d.evidence.len(), 2, "{:?}", d.evidence);
    }

    #[test]
    fn engine_endpoints_decide_without_metrics() {
        let ollama = decide(&Seen {
            ollama_version: Some(json!({"version": "0.5.7"})),
            ollama_tags: Some(json!({"models": [{"name": "llama3.2:1b"}]})),
            ..Seen::default()
        });
        assert_eq!(
            (ollama.engine, ollama.version.as_deref()),
            (EngineKind::Ollama, Some("0.5.7"))
        );
        assert_eq!(ollama.models[0].id, "llama3.2:1b");
        let tgi = decide(&Seen {
            tgi_info: Some(json!({"model_id": "x", "max_total_tokens": 4096, "version": "2.1"})),
            ..Seen::default()
        });
        assert_eq!((tgi.engine, tgi.context), (EngineKind::Tgi, Some(4096)));
        let llama = decide(&Seen {
            llama_props: Some(
                json!({"default_generation_settings": {"n_ctx": 8192}, "total_slots": 2}),
            ),
            llama_slots: Some(
                json!([{"id": 0, "is_processing": true}, {"id": 1, "is_processing": false}]),
            ),
            ..Seen::default()
        });
        assert_eq!(
            (llama.engine, llama.context),
            (EngineKind::LlamaCpp, Some(8192))
        );
        assert_eq!(llama.load.unwrap().running, Some(1.0));
        // A server that only says its name.
        let named = decide(&Seen {
            models: Some(json!({"data": [{"id": "m", "owned_by": "vllm", "max_model_len": 2048}]})),
            ..Seen::default()
        });
        assert_eq!(
            (named.engine, named.models[0].max_model_len),
            (EngineKind::Vllm, Some(2048))
        );
        // Ollama needs both endpoints: a catch-all JSON server does not pass for it.
        let generic = decide(&Seen {
            ollama_version: Some(json!({"version": "1"})),
            version: Some(json!({"version": "1"})),
            ..Seen::default()
        });
        assert_eq!(generic.engine, EngineKind::Other);
    }

    #[test]
    fn table_says_what_is_unreachable() {
        let t = table(&[unreachable(
            "127.0.0.1:9".into(),
            "http://127.0.0.1:9/v1".into(),
            "Connection refused (os error 111)".into(),
        )]);
        assert!(
            t.contains("127.0.0.1:9") && t.contains("unreachable: Connection refused"),
            "{t}"
        );
        assert!(t.contains("0 of 1 backend reachable"), "{t}");
    }
}
