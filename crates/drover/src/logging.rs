//! Diagnostics through `tracing`: `-v` (info), `-vv` (debug), `-vvv` (trace), or a filter in
//! `DROVER_LOG` (e.g. `DROVER_LOG=drover::limit=debug`); `--log-format json` for machines.
//! Logs go to stderr; secrets are never logged (API keys are kept out of every event).

use clap::ValueEnum;
use tracing_subscriber::EnvFilter;

/// Log line format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

/// Installs the subscriber.
pub fn init(verbose: u8, format: LogFormat) {
    let filter = match std::env::var("DROVER_LOG") {
        Ok(f) if !f.is_empty() => EnvFilter::new(f),
        _ => EnvFilter::new(match verbose {
            0 => "warn",
            1 => "info",
            2 => "debug",
            _ => "trace",
        }),
    };
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _ = match format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().try_init(),
    };
}
