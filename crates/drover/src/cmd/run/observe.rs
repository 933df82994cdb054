//! Seeing a run: `--report FILE.html` (written at the end) and `--metrics-addr ADDR` (a live
//! Prometheus endpoint while the job runs). Both only read what the collector and the
//! dispatcher publish; neither can slow the job down beyond a lock held for one rendering.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use clap::Args;
use drover_job::Progress;
use drover_sched::FleetSnapshot;
use drover_stats::prometheus::{self, LiveFleet};
use drover_stats::{RunStats, SampleBackend, Summary};
use tokio::sync::oneshot;

/// Observation options.
#[derive(Debug, Args, Default)]
pub struct ObserveArgs {
    /// Write a self-contained HTML report with charts (throughput, concurrency, latency, errors) at the end.
    #[arg(long, value_name = "FILE.html")]
    pub report: Option<PathBuf>,

    /// Serve live Prometheus metrics at http://ADDR/metrics during the run (e.g. 127.0.0.1:9400; port 0 picks one).
    #[arg(long, value_name = "ADDR")]
    pub metrics_addr: Option<String>,
}

/// Live observation running alongside the job.
pub struct Observer {
    server: Option<MetricsServer>,
}

struct MetricsServer {
    stop: oneshot::Sender<()>,
    task: tokio::task::JoinHandle<()>,
}

/// What the observer may read while the job runs.
pub struct Live<'a> {
    /// Counters.
    pub progress: &'a std::sync::Arc<drover_job::Progress>,
    /// The fleet.
    pub snapshot: &'a std::sync::Arc<std::sync::Mutex<drover_sched::FleetSnapshot>>,
    /// Statistics.
    pub stats: &'a std::sync::Arc<std::sync::Mutex<drover_stats::RunStats>>,
}

#[derive(Clone)]
struct Sources {
    progress: Arc<Progress>,
    snapshot: Arc<Mutex<FleetSnapshot>>,
    stats: Arc<Mutex<RunStats>>,
}

/// Starts live observation (the metrics endpoint), before the job runs. Fails (before anything
/// is sent) when the address cannot be bound or the report could not be written.
pub async fn start(args: &ObserveArgs, live: Live<'_>) -> Result<Observer, String> {
    if let Some(path) = &args.report {
        check_writable(path)?;
    }
    let Some(addr) = &args.metrics_addr else {
        return Ok(Observer { server: None });
    };
    let listener = tokio::net::TcpListener::bind(bind_target(addr))
        .await
        .map_err(|e| format!("--metrics-addr {addr}: cannot listen: {e}"))?;
    let bound: SocketAddr = listener
        .local_addr()
        .map_err(|e| format!("--metrics-addr {addr}: {e}"))?;
    // Printed even with -q: with port 0 it is the only way to learn where to scrape.
    eprintln!("drover: metrics on http://{bound}/metrics");
    let sources = Sources {
        progress: live.progress.clone(),
        snapshot: live.snapshot.clone(),
        stats: live.stats.clone(),
    };
    let app = Router::new()
        .route("/metrics", get(metrics))
        .route(
            "/",
            get(|| async { "drover: Prometheus metrics are at /metrics\n" }),
        )
        .with_state(sources);
    let (stop, stopped) = oneshot::channel::<()>();
    let task = tokio::spawn(async move {
        let served = axum::serve(listener, app).with_graceful_shutdown(async {
            let _ = stopped.await;
        });
        if let Err(e) = served.await {
            tracing::warn!(error = %e, "metrics endpoint stopped");
        }
    });
    Ok(Observer {
        server: Some(MetricsServer { stop, task }),
    })
}

/// After the job: stops the endpoint and writes the report.
pub async fn finish(
    args: &ObserveArgs,
    observer: Observer,
    stats: &RunStats,
    summary: &Summary,
) -> Result<(), String> {
    if let Some(s) = observer.server {
        let _ = s.stop.send(());
        // A scraper holding a keep-alive connection must not keep the run from ending.
        let mut task = s.task;
        if tokio::time::timeout(Duration::from_secs(2), &mut task)
            .await
            .is_err()
        {
            task.abort();
        }
    }
    if let Some(path) = &args.report {
        let html = drover_stats::report::run_report(stats, summary);
        std::fs::write(path, html)
            .map_err(|e| format!("cannot write --report {}: {e}", path.display()))?;
        tracing::info!(path = %path.display(), "report written");
    }
    Ok(())
}

/// `9400` means `127.0.0.1:9400`: metrics stay on the machine unless a host is named.
fn bind_target(addr: &str) -> String {
    if !addr.is_empty() && addr.bytes().all(|b| b.is_ascii_digit()) {
        format!("127.0.0.1:{addr}")
    } else {
        addr.to_string()
    }
}

/// A report path in a missing folder would only fail after the whole run: say so now.
pub(crate) fn check_writable(path: &Path) -> Result<(), String> {
    let parent = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    if !parent.is_dir() {
        return Err(format!(
            "--report {}: the folder {} does not exist",
            path.display(),
            parent.display()
        ));
    }
    if path.is_dir() {
        return Err(format!(
            "--report {}: is a folder; name a file, e.g. report.html",
            path.display()
        ));
    }
    Ok(())
}

async fn metrics(State(src): State<Sources>) -> Response {
    let snap = src.snapshot.lock().expect("snapshot lock").clone();
    let live = LiveFleet {
        backends: snap
            .backends
            .iter()
            .map(|b| SampleBackend {
                label: b.label.to_string(),
                in_flight: b.in_flight,
                limit: b.limit,
                state: b.state.name(),
                ejections: b.ejections,
                engine: b.engine,
            })
            .collect(),
        in_flight: snap.in_flight,
        queued: snap.queued,
        retries: snap.retries,
        hedges: snap.hedges,
        tasks_expected: src
            .progress
            .total
            .load(std::sync::atomic::Ordering::Relaxed),
        elapsed_seconds: 0.0,
    };
    let text = {
        let mut stats = src.stats.lock().expect("stats lock");
        stats.settle();
        let live = LiveFleet {
            elapsed_seconds: stats.started.elapsed().as_secs_f64(),
            ..live
        };
        prometheus::render(&stats, &live)
    };
    (
        StatusCode::OK,
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        text,
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bare_ports_bind_to_loopback() {
        assert_eq!(bind_target("9400"), "127.0.0.1:9400");
        assert_eq!(bind_target("0.0.0.0:9400"), "0.0.0.0:9400");
        assert_eq!(bind_target("[::1]:0"), "[::1]:0");
    }

    #[test]
    fn report_paths_are_checked_before_the_run() {
        let dir = tempfile::tempdir().unwrap();
        assert!(check_writable(&dir.path().join("r.html")).is_ok());
        assert!(check_writable(Path::new("r.html")).is_ok());
        let e = check_writable(&dir.path().join("missing/r.html")).unwrap_err();
        assert!(e.contains("does not exist"), "{e}");
        assert!(
            check_writable(dir.path())
                .unwrap_err()
                .contains("is a folder")
        );
    }
}
