//! Run statistics. The collector is their only writer; progress bars, the Prometheus endpoint
//! and reports read them.
//!
//! - [`RunStats`]: totals, per-backend counters and latency histograms.
//! - [`series`]: per-second time series with bounded memory.
//! - [`summary`]: the end-of-run summary (terminal table and `--summary FILE.json`, whose JSON
//!   Schema is `docs/summary.schema.json`).
//! - [`report`]: the self-contained HTML report (`--report FILE.html`), charts as inline SVG.
//! - [`prometheus`]: the text exposition of a running job (`--metrics-addr`).
#![forbid(unsafe_code)]

pub mod prometheus;
mod record;
pub mod report;
pub mod series;
pub mod summary;

pub use record::{BackendStats, FleetSample, Record, RunStats, SampleBackend};
pub use series::Series;
pub use summary::{Summary, SummaryInfo};
