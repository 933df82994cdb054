//! `/metrics` in Prometheus text format, with vLLM's metric names, labels and buckets.
//!
//! This module is the one place that knows metric names (vllm-facts §5). Request-level counters
//! and histograms are measured here, by the front, from each generation's event stream, so every
//! engine gets them for free; gauges (running, waiting, KV usage, preemptions, prefix cache) come
//! from [`Engine::gauges`](crate::Engine::gauges). Every series carries `engine="0"` and
//! `model_name`, as vLLM V1 does.
//!
//! Recording is lock-free (atomics), because the simulator's `instant` preset answers tens of
//! thousands of requests per second through this path.

use std::fmt::Write as _;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use crate::engine::{EngineGauges, FinishReason};

/// Time to first token buckets (s), from vLLM's `loggers.py`.
const TTFT_BUCKETS: &[f64] = &[
    0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0,
    20.0, 40.0, 80.0, 160.0, 640.0, 2560.0,
];
/// Inter-token latency buckets (s).
const ITL_BUCKETS: &[f64] = &[
    0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0, 20.0,
    40.0, 80.0,
];
/// End-to-end request latency buckets (s).
const E2E_BUCKETS: &[f64] = &[
    0.3, 0.5, 0.8, 1.0, 1.5, 2.0, 2.5, 5.0, 10.0, 15.0, 20.0, 30.0, 40.0, 50.0, 60.0, 120.0, 240.0,
    480.0, 960.0, 1920.0, 7680.0,
];

/// `finished_reason` label values of `vllm:request_success_total`, in vLLM's spelling.
const FINISH_LABELS: [&str; 4] = ["stop", "length", "abort", "error"];
const ABORT: usize = 2;
const ERROR: usize = 3;

fn finish_index(reason: FinishReason) -> usize {
    match reason {
        FinishReason::Stop => 0,
        FinishReason::Length => 1,
    }
}

/// A Prometheus histogram with fixed upper bounds, updated with atomics.
struct Histogram {
    bounds: Vec<f64>,
    /// Per-bucket (not cumulative) counts; the last one is `+Inf`.
    buckets: Vec<AtomicU64>,
    /// Sum of observations, as `f64` bits.
    sum: AtomicU64,
    count: AtomicU64,
}

impl Histogram {
    fn new(bounds: Vec<f64>) -> Histogram {
        let buckets = (0..=bounds.len()).map(|_| AtomicU64::new(0)).collect();
        Histogram {
            bounds,
            buckets,
            sum: AtomicU64::new(0f64.to_bits()),
            count: AtomicU64::new(0),
        }
    }

    fn observe(&self, value: f64) {
        let i = self.bounds.partition_point(|&b| b < value);
        self.buckets[i].fetch_add(1, Ordering::Relaxed);
        self.count.fetch_add(1, Ordering::Relaxed);
        let _ = self
            .sum
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |bits| {
                Some((f64::from_bits(bits) + value).to_bits())
            });
    }

    fn render(&self, out: &mut String, name: &str, help: &str, labels: &str) {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} histogram");
        let mut cumulative = 0u64;
        for (i, bucket) in self.buckets.iter().enumerate() {
            cumulative += bucket.load(Ordering::Relaxed);
            match self.bounds.get(i) {
                Some(b) => {
                    let _ = writeln!(out, "{name}_bucket{{{labels},le=\"{b:?}\"}} {cumulative}.0");
                }
                None => {
                    let _ = writeln!(out, "{name}_bucket{{{labels},le=\"+Inf\"}} {cumulative}.0");
                }
            }
        }
        let _ = writeln!(
            out,
            "{name}_count{{{labels}}} {}.0",
            self.count.load(Ordering::Relaxed)
        );
        let _ = writeln!(
            out,
            "{name}_sum{{{labels}}} {:?}",
            f64::from_bits(self.sum.load(Ordering::Relaxed))
        );
    }
}

/// Token-count buckets: the 1-2-5 series up to `max`, as vLLM builds them.
fn token_buckets(max: u32) -> Vec<f64> {
    let mut out = Vec::new();
    let mut decade = 1u64;
    'outer: loop {
        for m in [1, 2, 5] {
            let b = decade * m;
            if b > u64::from(max.max(1)) {
                break 'outer;
            }
            out.push(b as f64);
        }
        decade *= 10;
    }
    out
}

/// Escapes a Prometheus label value.
fn escape_label(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// What vLLM's exporter (prometheus_client) answers to `/metrics?name[]=a&name[]=b`: only the
/// samples named (a histogram's `…_bucket`, `…_count` and `…_sum` are names of their own), each
/// family's `# HELP` and `# TYPE` before its first kept sample. drover's scraper asks this way
/// (`drover_client::Scraper`), so the simulator answers as vLLM does.
pub(crate) fn restrict(text: &str, names: &[&str]) -> String {
    let mut out = String::new();
    // The current family's comment lines, written only if one of its samples is kept.
    let mut header: Vec<&str> = Vec::new();
    for line in text.lines() {
        if line.starts_with('#') {
            if line.starts_with("# HELP ") {
                header.clear();
            }
            header.push(line);
            continue;
        }
        let name = line.split(['{', ' ']).next().unwrap_or_default();
        if names.contains(&name) {
            for h in header.drain(..) {
                out.push_str(h);
                out.push('\n');
            }
            out.push_str(line);
            out.push('\n');
        }
    }
    out
}

/// Request-level metrics of one served model.
pub(crate) struct Metrics {
    /// `engine="0",model_name="…"`, pre-rendered.
    labels: String,
    /// Wall seconds per reported second (see [`ServerOptions::time_scale`](crate::ServerOptions)).
    time_scale: f64,
    prompt_tokens: AtomicU64,
    generation_tokens: AtomicU64,
    success: [AtomicU64; 4],
    ttft: Histogram,
    itl: Histogram,
    e2e: Histogram,
    prompt_len: Histogram,
    generation_len: Histogram,
}

impl Metrics {
    pub(crate) fn new(model: &str, max_model_len: u32, time_scale: f64) -> Metrics {
        Metrics {
            labels: format!("engine=\"0\",model_name=\"{}\"", escape_label(model)),
            time_scale: if time_scale > 0.0 && time_scale.is_finite() {
                time_scale
            } else {
                1.0
            },
            prompt_tokens: AtomicU64::new(0),
            generation_tokens: AtomicU64::new(0),
            success: Default::default(),
            ttft: Histogram::new(TTFT_BUCKETS.to_vec()),
            itl: Histogram::new(ITL_BUCKETS.to_vec()),
            e2e: Histogram::new(E2E_BUCKETS.to_vec()),
            prompt_len: Histogram::new(token_buckets(max_model_len)),
            generation_len: Histogram::new(token_buckets(max_model_len)),
        }
    }

    fn seconds(&self, since: Instant, until: Instant) -> f64 {
        until.duration_since(since).as_secs_f64() / self.time_scale
    }

    /// The whole exposition: engine gauges first, then the front's counters and histograms.
    pub(crate) fn render(&self, gauges: &EngineGauges) -> String {
        let l = &self.labels;
        let mut out = String::with_capacity(16 * 1024);
        let gauge = |out: &mut String, name: &str, help: &str, value: f64| {
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} gauge\n{name}{{{l}}} {value:?}"
            );
        };
        let counter = |out: &mut String, name: &str, help: &str, value: u64| {
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} counter\n{name}{{{l}}} {value}.0"
            );
        };
        gauge(
            &mut out,
            "vllm:num_requests_running",
            "Number of requests in model execution batches.",
            gauges.running as f64,
        );
        gauge(
            &mut out,
            "vllm:num_requests_waiting",
            "Number of requests waiting to be processed.",
            gauges.waiting as f64,
        );
        gauge(
            &mut out,
            "vllm:kv_cache_usage_perc",
            "KV-cache usage. 1 means 100 percent usage.",
            gauges.kv_cache_usage,
        );
        gauge(
            &mut out,
            "vllm:gpu_cache_usage_perc",
            "GPU KV-cache usage. 1 means 100 percent usage (deprecated: use vllm:kv_cache_usage_perc).",
            gauges.kv_cache_usage,
        );
        let _ = writeln!(
            out,
            "# HELP vllm:cache_config_info Information of the LLMEngine CacheConfig\n# TYPE vllm:cache_config_info gauge\n\
             vllm:cache_config_info{{block_size=\"{}\",enable_prefix_caching=\"True\",{l},num_gpu_blocks=\"{}\"}} 1.0",
            gauges.block_size, gauges.num_gpu_blocks
        );
        counter(
            &mut out,
            "vllm:num_preemptions_total",
            "Cumulative number of preemption from the engine.",
            gauges.preemptions_total,
        );
        counter(
            &mut out,
            "vllm:prefix_cache_queries_total",
            "Prefix cache queries, in terms of number of queried tokens.",
            gauges.prefix_cache_queries_total,
        );
        counter(
            &mut out,
            "vllm:prefix_cache_hits_total",
            "Prefix cache hits, in terms of number of cached tokens.",
            gauges.prefix_cache_hits_total,
        );
        counter(
            &mut out,
            "vllm:prompt_tokens_total",
            "Number of prefill tokens processed.",
            self.prompt_tokens.load(Ordering::Relaxed),
        );
        counter(
            &mut out,
            "vllm:generation_tokens_total",
            "Number of generation tokens processed.",
            self.generation_tokens.load(Ordering::Relaxed),
        );
        let _ = writeln!(
            out,
            "# HELP vllm:request_success_total Count of successfully processed requests.\n# TYPE vllm:request_success_total counter"
        );
        for (label, count) in FINISH_LABELS.iter().zip(&self.success) {
            let _ = writeln!(
                out,
                "vllm:request_success_total{{{l},finished_reason=\"{label}\"}} {}.0",
                count.load(Ordering::Relaxed)
            );
        }
        self.ttft.render(
            &mut out,
            "vllm:time_to_first_token_seconds",
            "Histogram of time to first token in seconds.",
            l,
        );
        self.itl.render(
            &mut out,
            "vllm:inter_token_latency_seconds",
            "Histogram of inter-token latency in seconds.",
            l,
        );
        self.itl.render(
            &mut out,
            "vllm:time_per_output_token_seconds",
            "Histogram of time per output token in seconds (deprecated: use vllm:inter_token_latency_seconds).",
            l,
        );
        self.e2e.render(
            &mut out,
            "vllm:e2e_request_latency_seconds",
            "Histogram of e2e request latency in seconds.",
            l,
        );
        self.prompt_len.render(
            &mut out,
            "vllm:request_prompt_tokens",
            "Number of prefill tokens processed.",
            l,
        );
        self.generation_len.render(
            &mut out,
            "vllm:request_generation_tokens",
            "Number of generation tokens processed.",
            l,
        );
        out
    }
}

/// Follows one request from arrival to its end and records it; dropping it before
/// [`finish`](Self::finish) or [`fail`](Self::fail) counts an abort (the client went away).
pub(crate) struct RequestMeter {
    metrics: Arc<Metrics>,
    start: Instant,
    last_token: Option<Instant>,
    prompt_tokens: u32,
    tokens_seen: u32,
    ended: bool,
}

impl RequestMeter {
    pub(crate) fn start(metrics: Arc<Metrics>, start: Instant) -> RequestMeter {
        RequestMeter {
            metrics,
            start,
            last_token: None,
            prompt_tokens: 0,
            tokens_seen: 0,
            ended: false,
        }
    }

    /// The engine accepted the request with this many prompt tokens.
    pub(crate) fn accepted(&mut self, prompt_tokens: u32) {
        self.prompt_tokens = prompt_tokens;
    }

    /// A token arrived at `now`: the first one ends prefill (TTFT), later ones are inter-token gaps.
    pub(crate) fn token(&mut self, now: Instant) {
        let m = &self.metrics;
        match self.last_token {
            None => {
                m.ttft.observe(m.seconds(self.start, now));
                m.prompt_tokens
                    .fetch_add(u64::from(self.prompt_tokens), Ordering::Relaxed);
            }
            Some(last) => m.itl.observe(m.seconds(last, now)),
        }
        m.generation_tokens.fetch_add(1, Ordering::Relaxed);
        self.last_token = Some(now);
        self.tokens_seen += 1;
    }

    /// The generation finished normally.
    pub(crate) fn finish(&mut self, now: Instant, reason: FinishReason, completion_tokens: u32) {
        let m = &self.metrics;
        if self.last_token.is_none() {
            // No token events (an engine that generated nothing): prefill still happened.
            m.prompt_tokens
                .fetch_add(u64::from(self.prompt_tokens), Ordering::Relaxed);
        }
        // Engines report the authoritative count; keep the counter consistent with it.
        if completion_tokens > self.tokens_seen {
            m.generation_tokens.fetch_add(
                u64::from(completion_tokens - self.tokens_seen),
                Ordering::Relaxed,
            );
        }
        m.e2e.observe(m.seconds(self.start, now));
        m.prompt_len.observe(f64::from(self.prompt_tokens));
        m.generation_len.observe(f64::from(completion_tokens));
        m.success[finish_index(reason)].fetch_add(1, Ordering::Relaxed);
        self.ended = true;
    }

    /// The engine failed the request after accepting it.
    pub(crate) fn fail(&mut self) {
        self.metrics.success[ERROR].fetch_add(1, Ordering::Relaxed);
        self.ended = true;
    }

    /// A request that never reached the engine (refused): not a finished request for vLLM.
    pub(crate) fn refused(&mut self) {
        self.ended = true;
    }
}

impl Drop for RequestMeter {
    fn drop(&mut self) {
        if !self.ended {
            self.metrics.success[ABORT].fetch_add(1, Ordering::Relaxed);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn token_buckets_follow_1_2_5() {
        assert_eq!(
            token_buckets(100),
            vec![1.0, 2.0, 5.0, 10.0, 20.0, 50.0, 100.0]
        );
        assert_eq!(token_buckets(4096).last(), Some(&2000.0));
    }

    #[test]
    fn histogram_renders_cumulative_buckets() {
        let h = Histogram::new(vec![1.0, 2.0]);
        h.observe(0.5);
        h.observe(1.0);
        h.observe(3.0);
        let mut out = String::new();
        h.render(&mut out, "x", "help", "a=\"b\"");
        assert!(out.contains("x_bucket{a=\"b\",le=\"1.0\"} 2.0\n"), "{out}");
        assert!(out.contains("x_bucket{a=\"b\",le=\"2.0\"} 2.0\n"));
        assert!(out.contains("x_bucket{a=\"b\",le=\"+Inf\"} 3.0\n"));
        assert!(out.contains("x_count{a=\"b\"} 3.0\n"));
        assert!(out.contains("x_sum{a=\"b\"} 4.5\n"));
    }

    #[test]
    fn meter_records_tokens_and_aborts() {
        let metrics = Arc::new(Metrics::new("m\"q", 1000, 0.5));
        let t0 = Instant::now();
        let mut meter = RequestMeter::start(metrics.clone(), t0);
        meter.accepted(7);
        meter.token(t0 + Duration::from_millis(10));
        meter.token(t0 + Duration::from_millis(20));
        meter.finish(t0 + Duration::from_millis(20), FinishReason::Length, 2);
        drop(meter);
        drop(RequestMeter::start(metrics.clone(), t0));
        let text = metrics.render(&EngineGauges::default());
        assert!(
            text.contains(r#"vllm:prompt_tokens_total{engine="0",model_name="m\"q"} 7.0"#),
            "{text}"
        );
        assert!(text.contains(r#"vllm:generation_tokens_total{engine="0",model_name="m\"q"} 2.0"#));
        assert!(text.contains(r#"finished_reason="length"} 1.0"#));
        assert!(text.contains(r#"finished_reason="abort"} 1.0"#));
        // 10 ms of wall time at time scale 0.5 is 20 ms of reported time: the 0.02 bucket.
        assert!(text.contains(
            r#"vllm:time_to_first_token_seconds_bucket{engine="0",model_name="m\"q",le="0.01"} 0.0"#
        ));
        assert!(text.contains(
            r#"vllm:time_to_first_token_seconds_bucket{engine="0",model_name="m\"q",le="0.02"} 1.0"#
        ));
    }
}
