//! Time series for reports: fixed-width buckets (1 s to start). When a run outgrows
//! [`MAX_ROWS`] buckets, neighbours are merged and the width doubles, so memory stays bounded
//! (about 40 bytes per backend per row) however long the run.

use std::time::{Duration, Instant};

use crate::record::FleetSample;

/// Most buckets kept.
pub const MAX_ROWS: usize = 720;

/// Per-backend figures in one bucket.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct BackendRow {
    /// Tasks answered.
    pub completions: u32,
    /// Tasks failed.
    pub errors: u32,
    /// Tokens generated.
    pub tokens: u64,
    /// Sum of sampled in-flight counts.
    pub in_flight_sum: f32,
    /// Sum of sampled limits.
    pub limit_sum: f32,
    /// Samples taken.
    pub samples: u16,
    /// Samples that had a limit.
    pub limit_samples: u16,
    /// Sum of answered attempts' latencies, seconds.
    pub latency_sum: f64,
}

impl BackendRow {
    /// Mean in-flight count over the bucket.
    pub fn in_flight(&self) -> Option<f32> {
        (self.samples > 0).then(|| self.in_flight_sum / f32::from(self.samples))
    }

    /// Mean limit over the bucket.
    pub fn limit(&self) -> Option<f32> {
        (self.limit_samples > 0).then(|| self.limit_sum / f32::from(self.limit_samples))
    }

    /// Mean latency of the answers in the bucket, seconds.
    pub fn mean_latency(&self) -> Option<f64> {
        (self.completions > 0).then(|| self.latency_sum / f64::from(self.completions))
    }

    fn merge(&mut self, o: &BackendRow) {
        self.completions += o.completions;
        self.errors += o.errors;
        self.tokens += o.tokens;
        self.in_flight_sum += o.in_flight_sum;
        self.limit_sum += o.limit_sum;
        self.samples = self.samples.saturating_add(o.samples);
        self.limit_samples = self.limit_samples.saturating_add(o.limit_samples);
        self.latency_sum += o.latency_sum;
    }
}

/// One bucket.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Row {
    /// Tasks answered, all backends.
    pub completions: u32,
    /// Tasks failed, all backends (bad input lines included).
    pub errors: u32,
    /// Tokens generated, all backends.
    pub tokens: u64,
    /// Sum of answered attempts' latencies, seconds.
    pub latency_sum: f64,
    /// Per backend, by index.
    pub backends: Vec<BackendRow>,
    /// Failed tasks by error code (those recorded through [`Series::record_outcome`]).
    pub error_codes: Vec<(&'static str, u32)>,
}

impl Row {
    /// Mean latency of the answers in the bucket, seconds.
    pub fn mean_latency(&self) -> Option<f64> {
        (self.completions > 0).then(|| self.latency_sum / f64::from(self.completions))
    }

    /// Failures of one code in the bucket.
    pub fn errors_of(&self, code: &str) -> u32 {
        self.error_codes
            .iter()
            .find(|(c, _)| *c == code)
            .map_or(0, |(_, n)| *n)
    }

    /// Adds another bucket's figures to this one (neighbours merged into a wider bucket).
    pub fn merge(&mut self, o: &Row) {
        self.completions += o.completions;
        self.errors += o.errors;
        self.tokens += o.tokens;
        self.latency_sum += o.latency_sum;
        if self.backends.len() < o.backends.len() {
            self.backends
                .resize_with(o.backends.len(), BackendRow::default);
        }
        for (a, b) in self.backends.iter_mut().zip(&o.backends) {
            a.merge(b);
        }
        for &(code, n) in &o.error_codes {
            self.count_code(code, n);
        }
    }

    fn count_code(&mut self, code: &'static str, n: u32) {
        match self.error_codes.iter_mut().find(|(c, _)| *c == code) {
            Some((_, k)) => *k += n,
            None => self.error_codes.push((code, n)),
        }
    }
}

/// The series.
#[derive(Debug, Clone)]
pub struct Series {
    started: Instant,
    width: Duration,
    rows: Vec<Row>,
}

impl Series {
    /// An empty series starting at `started`.
    pub fn new(started: Instant) -> Series {
        Series {
            started,
            width: Duration::from_secs(1),
            rows: Vec::new(),
        }
    }

    /// Bucket width now.
    pub fn width(&self) -> Duration {
        self.width
    }

    /// The buckets; bucket `i` covers `[i·width, (i+1)·width)` after the start.
    pub fn rows(&self) -> &[Row] {
        &self.rows
    }

    fn row(&mut self, now: Instant) -> &mut Row {
        let mut i = (now.saturating_duration_since(self.started).as_secs_f64()
            / self.width.as_secs_f64()) as usize;
        while i >= MAX_ROWS {
            self.halve();
            i /= 2;
        }
        if self.rows.len() <= i {
            self.rows.resize_with(i + 1, Row::default);
        }
        &mut self.rows[i]
    }

    fn halve(&mut self) {
        let old = std::mem::take(&mut self.rows);
        for pair in old.chunks(2) {
            let mut r = pair[0].clone();
            if let Some(o) = pair.get(1) {
                r.merge(o);
            }
            self.rows.push(r);
        }
        self.width *= 2;
    }

    /// Counts one finished task.
    pub fn record(
        &mut self,
        now: Instant,
        backend: Option<usize>,
        ok: bool,
        tokens: u64,
        latency: Option<Duration>,
    ) {
        self.count(now, backend, ok, tokens, latency);
    }

    /// Counts one finished task with the code of its failure (`None`: it succeeded), so that
    /// reports can draw failures over time by code.
    pub fn record_outcome(
        &mut self,
        now: Instant,
        backend: Option<usize>,
        error: Option<&'static str>,
        tokens: u64,
        latency: Option<Duration>,
    ) {
        let row = self.count(now, backend, error.is_none(), tokens, latency);
        if let Some(code) = error {
            row.count_code(code, 1);
        }
    }

    fn count(
        &mut self,
        now: Instant,
        backend: Option<usize>,
        ok: bool,
        tokens: u64,
        latency: Option<Duration>,
    ) -> &mut Row {
        let row = self.row(now);
        if ok {
            row.completions += 1;
            row.tokens += tokens;
            row.latency_sum += latency.map_or(0.0, |l| l.as_secs_f64());
        } else {
            row.errors += 1;
        }
        if let Some(b) = backend {
            if row.backends.len() <= b {
                row.backends.resize_with(b + 1, BackendRow::default);
            }
            let br = &mut row.backends[b];
            if ok {
                br.completions += 1;
                br.tokens += tokens;
                br.latency_sum += latency.map_or(0.0, |l| l.as_secs_f64());
            } else {
                br.errors += 1;
            }
        }
        row
    }

    /// Takes in a fleet sample.
    pub fn sample(&mut self, now: Instant, s: &FleetSample) {
        let row = self.row(now);
        if row.backends.len() < s.backends.len() {
            row.backends
                .resize_with(s.backends.len(), BackendRow::default);
        }
        for (br, sb) in row.backends.iter_mut().zip(&s.backends) {
            br.in_flight_sum += sb.in_flight as f32;
            br.samples = br.samples.saturating_add(1);
            if let Some(l) = sb.limit {
                br.limit_sum += l as f32;
                br.limit_samples = br.limit_samples.saturating_add(1);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_and_bounded_growth() {
        let t0 = Instant::now();
        let mut s = Series::new(t0);
        s.record(
            t0 + Duration::from_millis(500),
            Some(1),
            true,
            10,
            Some(Duration::from_secs(1)),
        );
        s.record(t0 + Duration::from_millis(1500), Some(0), false, 0, None);
        assert_eq!(s.rows().len(), 2);
        assert_eq!(s.rows()[0].backends[1].tokens, 10);
        assert_eq!(s.rows()[1].errors, 1);
        // A long run: widths double, rows stay bounded, totals are preserved.
        for k in 0..5000u64 {
            s.record(t0 + Duration::from_secs(k), None, true, 1, None);
        }
        assert!(s.rows().len() <= MAX_ROWS);
        assert!(s.width() >= Duration::from_secs(8));
        let tokens: u64 = s.rows().iter().map(|r| r.tokens).sum();
        assert_eq!(tokens, 5010);
    }

    #[test]
    fn error_codes_and_backend_latency_survive_merging() {
        let t0 = Instant::now();
        let mut s = Series::new(t0);
        s.record_outcome(t0, Some(0), Some("timeout"), 0, None);
        s.record_outcome(
            t0 + Duration::from_secs(1),
            Some(0),
            Some("timeout"),
            0,
            None,
        );
        s.record_outcome(
            t0 + Duration::from_secs(1),
            Some(1),
            Some("server_error"),
            0,
            None,
        );
        s.record_outcome(
            t0 + Duration::from_secs(1),
            Some(1),
            None,
            4,
            Some(Duration::from_millis(500)),
        );
        assert_eq!(s.rows()[1].errors_of("timeout"), 1);
        assert_eq!(s.rows()[1].backends[1].mean_latency(), Some(0.5));
        // Push the run past MAX_ROWS so the first two buckets merge into one.
        s.record_outcome(
            t0 + Duration::from_secs(MAX_ROWS as u64),
            None,
            None,
            0,
            None,
        );
        let r = &s.rows()[0];
        assert_eq!(
            (
                r.errors_of("timeout"),
                r.errors_of("server_error"),
                r.errors
            ),
            (2, 1, 3)
        );
        assert_eq!(r.backends[1].mean_latency(), Some(0.5));
    }
}
