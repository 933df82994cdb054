//! Run statistics. The collector is their only writer; progress bars, the Prometheus endpoint
//! and reports read them.
//!
//! - [`RunStats`]: totals, per-backend counters and latency histograms.
//! - [`series`]: per-second time series with bounded memory.
//! - [`summary`]: the end-of-run summary (terminal table and `--summary FILE.json`, whose JSON
//!   Schema is `docs/summary.schema.json`).
#![forbid(unsafe_code)]

mod record;
pub mod series;
pub mod summary;

pub use record::{BackendStats, FleetSample, Record, RunStats, SampleBackend};
pub use series::Series;
pub use summary::{Summary, SummaryInfo};
