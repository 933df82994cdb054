//! `drover run` arguments, as typed. No I/O here: [`super::plan`] validates them.

use std::path::PathBuf;

use clap::{Args, ValueEnum};

/// Dispatch mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ModeArg {
    /// Per-backend limits found automatically, load-aware routing (default).
    Adaptive,
    /// N requests in flight in total (--workers N), round robin: the seed's USE_CONCURRENT=true.
    Concurrent,
    /// One request in flight in total, round robin: the seed's USE_CONCURRENT=false.
    Serial,
}

/// Endpoint for `prompt` and template tasks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum EndpointArg {
    /// /v1/chat/completions (a user message).
    Chat,
    /// /v1/completions (raw prompt).
    Completions,
}

/// Whether attempts stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum StreamArg {
    /// Stream to backends without token metrics, to watch their rate live.
    Auto,
    /// Always.
    On,
    /// Never.
    Off,
}

/// Arguments of `drover run`.
#[derive(Debug, Args)]
#[command(
    after_help = "Environment: DROVER_BACKENDS; the seed's VLLM_PORTS, USE_MULTI_VLLM, USE_CONCURRENT, MAX_WORKERS \
(flags win). With no backend at all, the embedded engine runs the job.\n\
Exit codes: 0 all tasks succeeded, 1 some failed (each has a record), 2 usage/config error (nothing sent), 130 interrupted (resumable)."
)]
pub struct RunArgs {
    /// Tasks, one JSON object per line ('-' = stdin).
    #[arg(value_name = "INPUT")]
    pub input: PathBuf,

    /// Results file [default: INPUT's stem + .results.jsonl].
    #[arg(short = 'o', long = "output", value_name = "FILE")]
    pub output: Option<PathBuf>,

    /// Backends: 8001, host:port, http(s)://host:port[/v1], dns://name:port; comma-separated or repeated.
    #[arg(
        short = 'b',
        long = "backends",
        value_name = "LIST",
        value_delimiter = ','
    )]
    pub backends: Vec<String>,

    /// A file listing backends, one per line; re-read when it changes.
    #[arg(long, value_name = "FILE")]
    pub backends_file: Option<PathBuf>,

    /// How tasks are spread over the backends.
    #[arg(long, value_enum)]
    pub mode: Option<ModeArg>,

    /// Requests in flight in total for --mode concurrent [default: number of backends].
    #[arg(long, value_name = "N")]
    pub workers: Option<usize>,

    /// Model to request [default: what the backends' /v1/models serve].
    #[arg(long)]
    pub model: Option<String>,

    /// Default max_tokens (a task's own value wins).
    #[arg(long, value_name = "N")]
    pub max_tokens: Option<u32>,

    /// Default temperature (a task's own value wins).
    #[arg(long, value_name = "T")]
    pub temperature: Option<f64>,

    /// More request fields as a JSON object, under everything else.
    #[arg(long, value_name = "JSON")]
    pub extra_body: Option<String>,

    /// System message for prompt and template tasks.
    #[arg(long, value_name = "TEXT")]
    pub system: Option<String>,

    /// Endpoint for prompt and template tasks.
    #[arg(long, value_enum, default_value = "chat")]
    pub endpoint: EndpointArg,

    /// minijinja template rendering each input object into the user message (or a messages list).
    #[arg(long, value_name = "FILE")]
    pub template: Option<PathBuf>,

    /// Environment variable holding the API key [default: OPENAI_API_KEY when set].
    #[arg(long, value_name = "NAME")]
    pub api_key_env: Option<String>,

    /// Continue an existing output: skip answered tasks, repair a torn last line.
    #[arg(long, conflicts_with = "overwrite")]
    pub resume: bool,

    /// With --resume: also retry tasks whose lines record a failure.
    #[arg(long, requires = "resume")]
    pub retry_failed: bool,

    /// Replace an existing output.
    #[arg(long)]
    pub overwrite: bool,

    /// Attempts per task, the first included.
    #[arg(long, default_value_t = 5, value_name = "N")]
    pub attempts: u32,

    /// Deadline per attempt, e.g. 90s [default: 60s + 100ms per max_tokens].
    #[arg(long, value_name = "DURATION", value_parser = humantime::parse_duration)]
    pub timeout: Option<std::time::Duration>,

    /// With every backend down, how long to wait before failing the remaining tasks.
    #[arg(long, default_value = "10m", value_name = "DURATION", value_parser = humantime::parse_duration)]
    pub max_wait: std::time::Duration,

    /// After Ctrl-C, how long requests in flight may finish.
    #[arg(long, default_value = "30s", value_name = "DURATION", value_parser = humantime::parse_duration)]
    pub grace: std::time::Duration,

    /// Check every input line first; send nothing if any is bad.
    #[arg(long)]
    pub strict: bool,

    /// Longest input line accepted.
    #[arg(long, default_value_t = 16 << 20, value_name = "BYTES")]
    pub max_line_bytes: usize,

    /// Take only shard i of n (0-based) of the input, split by custom_id.
    #[arg(long, value_name = "i/n")]
    pub shard: Option<String>,

    /// Write the run summary as JSON (schema: docs/summary.schema.json).
    #[arg(long, value_name = "FILE")]
    pub summary: Option<PathBuf>,

    /// Stream answers from backends.
    #[arg(long, value_enum, default_value = "auto")]
    pub stream: StreamArg,

    /// Highest per-backend limit the adaptive mode may reach.
    #[arg(long, default_value_t = 1024, value_name = "N")]
    pub max_per_backend: usize,

    /// Do not hedge stragglers at the end of the input.
    #[arg(long)]
    pub no_hedge: bool,

    /// Less output (no progress, no banner).
    #[arg(short, long)]
    pub quiet: bool,

    /// Structured answers.
    #[command(flatten)]
    pub analyze: super::analyze::AnalyzeArgs,

    /// Reports and live metrics.
    #[command(flatten)]
    pub observe: super::observe::ObserveArgs,
}
