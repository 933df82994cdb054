//! Seeing a run: `--report FILE.html` and `--metrics-addr ADDR` (live Prometheus endpoint).

use std::path::PathBuf;

use clap::Args;

/// Observation options.
#[derive(Debug, Args, Default)]
pub struct ObserveArgs {
    /// Write a self-contained HTML report with charts at the end (not implemented yet).
    #[arg(long, value_name = "FILE.html", hide = true)]
    pub report: Option<PathBuf>,
}

/// Live observation running alongside the job.
pub struct Observer;

/// What the observer may read while the job runs.
pub struct Live<'a> {
    /// Counters.
    pub progress: &'a std::sync::Arc<drover_job::Progress>,
    /// The fleet.
    pub snapshot: &'a std::sync::Arc<std::sync::Mutex<drover_sched::FleetSnapshot>>,
    /// Statistics.
    pub stats: &'a std::sync::Arc<std::sync::Mutex<drover_stats::RunStats>>,
}

/// Starts live observation (the metrics endpoint), before the job runs.
pub async fn start(_args: &ObserveArgs, _live: Live<'_>) -> Result<Observer, String> {
    Ok(Observer)
}

/// After the job: stops the endpoint and writes the report.
pub async fn finish(
    _args: &ObserveArgs,
    _observer: Observer,
    _stats: &drover_stats::RunStats,
    _summary: &drover_stats::Summary,
) -> Result<(), String> {
    Ok(())
}
