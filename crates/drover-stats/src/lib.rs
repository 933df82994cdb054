//! Run statistics: histograms, per-backend counters, summary JSON, HTML report, Prometheus exposition.
