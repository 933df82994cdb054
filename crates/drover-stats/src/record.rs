//! Counting finished tasks.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use drover_types::{ErrorCode, Usage};
use hdrhistogram::Histogram;

use crate::series::Series;

/// One finished task, as the statistics see it.
#[derive(Debug, Clone)]
pub struct Record {
    /// Backend index (snapshot order), if an attempt was made.
    pub backend: Option<usize>,
    /// Backend label, if an attempt was made (shared with the dispatcher's: no copy per task).
    pub backend_label: Option<Arc<str>>,
    /// `None` on success.
    pub error: Option<ErrorCode>,
    /// Final attempt's wall time.
    pub latency: Option<Duration>,
    /// Final attempt's time to first token (streamed).
    pub ttft: Option<Duration>,
    /// Tokens.
    pub usage: Usage,
    /// Attempts made.
    pub attempts: u32,
    /// Won by a hedge.
    pub hedged: bool,
}

/// One backend in a fleet sample.
#[derive(Debug, Clone)]
pub struct SampleBackend {
    /// Label.
    pub label: String,
    /// Requests in flight.
    pub in_flight: usize,
    /// Limit, if any.
    pub limit: Option<usize>,
    /// State name.
    pub state: &'static str,
    /// Times ejected.
    pub ejections: u64,
    /// Engine, if known.
    pub engine: Option<&'static str>,
}

/// The fleet at one moment (from the dispatcher's snapshot).
#[derive(Debug, Clone, Default)]
pub struct FleetSample {
    /// Backends by index.
    pub backends: Vec<SampleBackend>,
}

/// Counters for one backend.
///
/// Laid out for a large fleet: every answer lands on a backend whose statistics have gone cold
/// since its last one, so what an answer touches — the counters and the latency it adds — is
/// kept in the struct's first cache line, and latencies wait there to be folded into the
/// histograms (10–26 KB each, spanning pages) [`UNFOLDED`] at a time (docs/benchmarks.md,
/// #10).
#[derive(Debug, Clone)]
#[repr(C, align(64))]
pub struct BackendStats {
    /// Tasks finished successfully here.
    pub ok: u64,
    /// Prompt tokens of answers.
    pub prompt_tokens: u64,
    /// Generated tokens of answers.
    pub completion_tokens: u64,
    /// Answers won by hedges.
    pub hedge_wins: u64,
    /// How many of `unfolded` are latencies not yet in `latency_us`.
    unfolded_len: u8,
    /// Whether `label` is set: checked on every answer, so kept in this line rather than
    /// read from the `String` further down.
    labelled: bool,
    /// Latencies (µs) not yet in `latency_us`.
    unfolded: [u32; UNFOLDED],
    /// Label.
    pub label: String,
    /// Engine, if known.
    pub engine: Option<&'static str>,
    /// Tasks whose final attempt failed here.
    pub failed: u64,
    /// Failures by code.
    pub errors: BTreeMap<&'static str, u64>,
    /// Latency of answered attempts, microseconds: see [`Self::latency_us`].
    latency_us: Histogram<u64>,
    /// Time to first token of streamed answers, microseconds: see [`Self::ttft_us`]. Made on
    /// the first streamed answer (most backends stream none: 26 KB each saved).
    ttft_us: Option<Histogram<u64>>,
    /// Times to first token (µs) not yet in `ttft_us`.
    unfolded_ttft: Vec<u32>,
    /// Times ejected (from the last sample).
    pub ejections: u64,
    /// Limit at the last sample.
    pub last_limit: Option<usize>,
    /// Sum and count of sampled in-flight counts while the job had work, for the mean.
    pub in_flight_sum: u64,
    /// Samples counted in `in_flight_sum`.
    pub in_flight_samples: u64,
}

/// Latencies a backend holds before folding them into its histogram: as many as fill the
/// first cache line after the counters.
const UNFOLDED: usize = 7;

/// 1 µs .. 1 h at `digits` significant digits (3 for the job's totals). Each backend's has 2
/// (1 %), plenty for its percentiles: at 3, a backend's two took 376 KB (96 MB over 256
/// backends).
fn histogram(digits: u8) -> Histogram<u64> {
    Histogram::new_with_bounds(1, 3_600_000_000, digits).expect("valid bounds")
}

/// A backend's: 2 significant digits, with counts only up to the largest value recorded yet
/// (hdrhistogram grows them): about 10 KB for answers of tens of milliseconds, 20 KB for tens
/// of seconds, where the whole hour took 26 KB from the start — memory that every backend
/// of a large fleet faulted in at start (values are clamped to the hour by `micros`).
fn backend_histogram() -> Histogram<u64> {
    Histogram::new(BACKEND_DIGITS).expect("valid precision")
}

const JOB_DIGITS: u8 = 3;
const BACKEND_DIGITS: u8 = 2;

impl BackendStats {
    fn new(label: String) -> Self {
        BackendStats {
            ok: 0,
            prompt_tokens: 0,
            completion_tokens: 0,
            hedge_wins: 0,
            unfolded_len: 0,
            labelled: !label.is_empty(),
            unfolded: [0; UNFOLDED],
            label,
            engine: None,
            failed: 0,
            errors: BTreeMap::new(),
            latency_us: backend_histogram(),
            ttft_us: None,
            unfolded_ttft: Vec::new(),
            ejections: 0,
            last_limit: None,
            in_flight_sum: 0,
            in_flight_samples: 0,
        }
    }

    fn add_latency(&mut self, us: u64) {
        self.unfolded[usize::from(self.unfolded_len)] = us as u32;
        self.unfolded_len += 1;
        if usize::from(self.unfolded_len) == UNFOLDED {
            self.fold();
        }
    }

    fn add_ttft(&mut self, us: u64) {
        self.unfolded_ttft.push(us as u32);
        if self.unfolded_ttft.len() == UNFOLDED {
            self.fold();
        }
    }

    /// Moves the waiting samples into the histograms.
    fn fold(&mut self) {
        for &us in &self.unfolded[..usize::from(self.unfolded_len)] {
            let _ = self.latency_us.record(u64::from(us));
        }
        self.unfolded_len = 0;
        if !self.unfolded_ttft.is_empty() {
            let h = self.ttft_us.get_or_insert_with(backend_histogram);
            for us in self.unfolded_ttft.drain(..) {
                let _ = h.record(u64::from(us));
            }
        }
    }

    /// Latency of answered attempts, microseconds, every answer counted (a copy only while
    /// some wait to be folded, between two samples of a running job).
    pub fn latency_us(&self) -> Cow<'_, Histogram<u64>> {
        with_unfolded(
            Cow::Borrowed(&self.latency_us),
            &self.unfolded[..usize::from(self.unfolded_len)],
        )
    }

    /// Time to first token of streamed answers, microseconds, every answer counted; `None`
    /// before the backend's first streamed answer.
    pub fn ttft_us(&self) -> Option<Cow<'_, Histogram<u64>>> {
        let h = match &self.ttft_us {
            Some(h) => Cow::Borrowed(h),
            None if self.unfolded_ttft.is_empty() => return None,
            None => Cow::Owned(backend_histogram()),
        };
        Some(with_unfolded(h, &self.unfolded_ttft))
    }
}

/// `h` with `unfolded` recorded into it: copied only when there are any.
fn with_unfolded<'a>(mut h: Cow<'a, Histogram<u64>>, unfolded: &[u32]) -> Cow<'a, Histogram<u64>> {
    for &us in unfolded {
        let _ = h.to_mut().record(u64::from(us));
    }
    h
}

/// Everything counted during a run.
#[derive(Debug, Clone)]
pub struct RunStats {
    /// When the run started.
    pub started: Instant,
    /// Tasks that succeeded.
    pub ok: u64,
    /// Tasks that failed (records written), by code.
    pub errors: BTreeMap<&'static str, u64>,
    /// Tasks that failed.
    pub failed: u64,
    /// Prompt tokens.
    pub prompt_tokens: u64,
    /// Generated tokens.
    pub completion_tokens: u64,
    /// Answers won by hedges.
    pub hedge_wins: u64,
    /// Tasks that needed more than one attempt.
    pub retried_tasks: u64,
    /// Per backend, by index.
    pub backends: Vec<BackendStats>,
    /// Latency of all answered attempts, microseconds.
    pub latency_us: Histogram<u64>,
    /// Time series.
    pub series: Series,
}

impl RunStats {
    /// Empty statistics starting now.
    pub fn new(started: Instant) -> RunStats {
        RunStats {
            started,
            ok: 0,
            errors: BTreeMap::new(),
            failed: 0,
            prompt_tokens: 0,
            completion_tokens: 0,
            hedge_wins: 0,
            retried_tasks: 0,
            backends: Vec::new(),
            latency_us: histogram(JOB_DIGITS),
            series: Series::new(started),
        }
    }

    fn backend(&mut self, i: usize, label: &str) -> &mut BackendStats {
        while self.backends.len() <= i {
            self.backends.push(BackendStats::new(String::new()));
        }
        let b = &mut self.backends[i];
        if !b.labelled {
            b.label = label.to_string();
            b.labelled = true;
        }
        b
    }

    /// Counts a finished task.
    pub fn record(&mut self, r: &Record, now: Instant) {
        if r.attempts > 1 {
            self.retried_tasks += 1;
        }
        let series_backend = r.backend;
        match r.error {
            None => {
                self.ok += 1;
                self.prompt_tokens += r.usage.prompt_tokens;
                self.completion_tokens += r.usage.completion_tokens;
                self.hedge_wins += u64::from(r.hedged);
                if let Some(l) = r.latency {
                    let _ = self.latency_us.record(micros(l));
                }
            }
            Some(code) => {
                self.failed += 1;
                *self.errors.entry(code.as_str()).or_default() += 1;
            }
        }
        if let (Some(i), Some(label)) = (r.backend, &r.backend_label) {
            let b = self.backend(i, label);
            match r.error {
                None => {
                    b.ok += 1;
                    b.prompt_tokens += r.usage.prompt_tokens;
                    b.completion_tokens += r.usage.completion_tokens;
                    b.hedge_wins += u64::from(r.hedged);
                    if let Some(l) = r.latency {
                        b.add_latency(micros(l));
                    }
                    if let Some(t) = r.ttft {
                        b.add_ttft(micros(t));
                    }
                }
                Some(code) => {
                    b.failed += 1;
                    *b.errors.entry(code.as_str()).or_default() += 1;
                }
            }
        }
        self.series.record_outcome(
            now,
            series_backend,
            r.error.map(|c| c.as_str()),
            r.usage.completion_tokens,
            r.latency,
        );
    }

    /// Takes in a fleet sample (limits, in-flight), once a second or so; the backends'
    /// waiting latencies go into their histograms.
    pub fn sample(&mut self, s: &FleetSample, now: Instant, busy: bool) {
        self.settle();
        for (i, sb) in s.backends.iter().enumerate() {
            let b = self.backend(i, &sb.label);
            b.engine = sb.engine.or(b.engine);
            b.ejections = sb.ejections;
            b.last_limit = sb.limit;
            if busy {
                b.in_flight_sum += sb.in_flight as u64;
                b.in_flight_samples += 1;
            }
        }
        self.series.sample(now, s);
    }

    /// Folds every backend's waiting latencies into its histograms (readers see them
    /// either way; settled, they read the histograms without a copy).
    pub fn settle(&mut self) {
        for b in &mut self.backends {
            b.fold();
        }
    }

    /// Tasks finished (with a record) so far.
    pub fn done(&self) -> u64 {
        self.ok + self.failed
    }
}

fn micros(d: Duration) -> u64 {
    (d.as_micros() as u64).clamp(1, 3_600_000_000)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(backend: usize, error: Option<ErrorCode>, ms: u64, tokens: u64) -> Record {
        Record {
            backend: Some(backend),
            backend_label: Some(format!("b{backend}").into()),
            error,
            latency: Some(Duration::from_millis(ms)),
            ttft: None,
            usage: Usage {
                prompt_tokens: 10,
                completion_tokens: tokens,
            },
            attempts: 1,
            hedged: false,
        }
    }

    #[test]
    fn counts_by_backend_and_code() {
        let t = Instant::now();
        let mut s = RunStats::new(t);
        s.record(&rec(0, None, 100, 5), t);
        s.record(&rec(1, None, 300, 7), t);
        s.record(&rec(1, Some(ErrorCode::ServerError), 50, 0), t);
        assert_eq!((s.ok, s.failed, s.completion_tokens), (2, 1, 12));
        assert_eq!(s.errors["server_error"], 1);
        assert_eq!(s.backends[1].ok, 1);
        assert_eq!(s.backends[1].errors["server_error"], 1);
        assert_eq!(s.backends[1].label, "b1");
        let p50 = s.backends[0].latency_us().value_at_quantile(0.5);
        assert!((99_000..=101_000).contains(&p50), "{p50}");
    }

    #[test]
    fn every_answer_is_in_the_backend_histograms_folded_or_not() {
        let t = Instant::now();
        let mut s = RunStats::new(t);
        for n in 1..=3 * UNFOLDED as u64 + 2 {
            let mut r = rec(0, None, n, 1);
            r.ttft = Some(Duration::from_millis(n));
            s.record(&r, t);
            let b = &s.backends[0];
            assert_eq!(b.latency_us().len(), n, "latency after {n} answers");
            assert_eq!(b.ttft_us().unwrap().len(), n, "ttft after {n} answers");
            assert_eq!(b.latency_us().max() / 1000, n);
        }
        assert!(
            s.backends[0].unfolded_len > 0,
            "the test should end with some unfolded"
        );
        s.settle();
        let b = &s.backends[0];
        assert_eq!(b.unfolded_len, 0);
        assert!(matches!(b.latency_us(), Cow::Borrowed(_)));
        assert_eq!(b.latency_us().len(), 3 * UNFOLDED as u64 + 2);
    }

    #[test]
    fn a_backend_without_streamed_answers_has_no_ttft_histogram() {
        let t = Instant::now();
        let mut s = RunStats::new(t);
        s.record(&rec(0, None, 5, 1), t);
        s.settle();
        assert!(s.backends[0].ttft_us.is_none() && s.backends[0].ttft_us().is_none());
        let mut r = rec(0, None, 5, 1);
        r.ttft = Some(Duration::from_millis(2));
        s.record(&r, t);
        assert_eq!(s.backends[0].ttft_us().map(|h| h.len()), Some(1));
        s.settle();
        assert_eq!(s.backends[0].ttft_us.as_ref().map(|h| h.len()), Some(1));
    }

    #[test]
    fn a_backend_histogram_spans_only_the_values_recorded() {
        let t = Instant::now();
        let mut s = RunStats::new(t);
        let hour = histogram(BACKEND_DIGITS).distinct_values();
        s.record(&rec(0, None, 20, 1), t);
        s.settle();
        let b = &s.backends[0];
        let now = b.latency_us.distinct_values();
        assert!(
            now * 2 < hour,
            "20 ms took {now} counts of the hour's {hour}"
        );
        assert_eq!(b.latency_us().value_at_quantile(0.5) / 1000, 20);
    }

    #[test]
    fn what_an_answer_touches_is_in_the_first_cache_line() {
        use std::mem::{align_of, offset_of, size_of};
        assert_eq!(align_of::<BackendStats>(), 64);
        for end in [
            offset_of!(BackendStats, ok) + size_of::<u64>(),
            offset_of!(BackendStats, prompt_tokens) + size_of::<u64>(),
            offset_of!(BackendStats, completion_tokens) + size_of::<u64>(),
            offset_of!(BackendStats, hedge_wins) + size_of::<u64>(),
            offset_of!(BackendStats, unfolded_len) + 1,
            offset_of!(BackendStats, labelled) + 1,
            offset_of!(BackendStats, unfolded) + size_of::<[u32; UNFOLDED]>(),
        ] {
            assert!(end <= 64, "a per-answer field ends at byte {end}");
        }
    }
}
