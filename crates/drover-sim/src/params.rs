//! Engine-model parameters and the table of presets (vllm-facts §6, "Presets").
//!
//! Every preset lives in [`PRESETS`] and nowhere else. Physical quantities are kept as physical
//! inputs (bytes, bytes/s, FLOP/s) so that a preset reads like the spec's table and a flag can
//! change one input (say, `--hbm-bw`) without recomputing the others; [`StepCosts`] derives the
//! per-step terms of the step-time formula from them once.

use std::time::Duration;

/// Parameters of one simulated engine. Units are in each field's doc.
#[derive(Debug, Clone, PartialEq)]
pub struct Params {
    /// Longest prompt + output one request may hold, tokens.
    pub max_model_len: u32,
    /// KV-cache bytes per token over all layers, B (Llama-3.1-8B BF16: 131,072).
    pub kv_bytes_per_token: f64,
    /// Weight bytes read once per step, B.
    pub weight_bytes: f64,
    /// Active non-embedding parameters; a token costs 2·P FLOP.
    pub active_params: f64,
    /// Effective memory bandwidth for weight reads, B/s.
    pub hbm_bw: f64,
    /// Effective bandwidth of attention's KV reads, B/s.
    pub kv_bw: f64,
    /// Achieved GEMM throughput, FLOP/s.
    pub flops: f64,
    /// Per-step CPU, launch and sampler cost.
    pub t_fixed: Duration,
    /// Per-scheduled-sequence bookkeeping cost per step.
    pub t_seq: Duration,
    /// HTTP, tokenization and detokenization before a request reaches the scheduler.
    pub api_overhead: Duration,
    /// Uniform jitter on `api_overhead`, as a fraction (0.1 = ±10%).
    pub api_overhead_jitter: f64,
    /// KV block size, tokens (vLLM: 16).
    pub block_size: u32,
    /// KV blocks on the device (capacity = blocks × block_size tokens).
    pub num_kv_blocks: u32,
    /// Most requests in the running batch.
    pub max_num_seqs: u32,
    /// Token budget of one step (decode tokens + prefill chunks).
    pub max_num_batched_tokens: u32,
    /// Cap on one request's prefill chunk per step, tokens; 0 = no cap.
    pub long_prefill_token_threshold: u32,
    /// Reuse full 16-token blocks of earlier prompts.
    pub enable_prefix_caching: bool,
    /// Reject with 503 when this many requests wait; 0 = unbounded (vLLM's default).
    pub max_num_queued_reqs: u32,
    /// A measured per-step time by batch size (sequences scheduled), ascending in batch size.
    /// When set it replaces `t_fixed + B·t_seq`: engines whose steps are dominated by host-side
    /// work (transformers' continuous batching) grow sublinearly in B, which no linear term
    /// fits. Linear between points; the first point's time below it; the last segment's slope
    /// beyond the last point.
    pub batch_curve: Vec<(u32, Duration)>,
    /// Extra delay before the first step after the engine was idle for at least `idle_after`
    /// (measured on transformers serve: a lone request after idleness is seconds slower than
    /// the same request on a busy instance). Zero = none (vLLM).
    pub idle_wake: Duration,
    /// How long an engine must have been idle for `idle_wake` to apply.
    pub idle_after: Duration,
}

impl Params {
    /// Duration of one step that computes `tokens` tokens for `seqs` sequences whose attention
    /// reads `context` tokens in total, in seconds: the formula of [`StepCosts`], with the
    /// measured batch curve in place of `t_fixed + B·t_seq` where there is one.
    pub fn step_seconds(&self, tokens: u64, seqs: u64, context: u64) -> f64 {
        let costs = StepCosts::of(self);
        match interpolate(&self.batch_curve, seqs) {
            Some(overhead) => overhead + costs.work_seconds(tokens, context),
            None => costs.step_seconds(tokens, seqs, context),
        }
    }
}

/// The curve's time at batch size `b`, seconds; `None` for an empty curve. Batch sizes are
/// strictly ascending ([`crate::SimConfig::validate`] checks).
fn interpolate(curve: &[(u32, Duration)], b: u64) -> Option<f64> {
    let first = curve.first()?;
    let b = b as f64;
    if curve.len() == 1 || b <= f64::from(first.0) {
        return Some(first.1.as_secs_f64());
    }
    // The segment holding b, or the last one for b beyond the curve.
    let i = curve
        .windows(2)
        .position(|w| b <= f64::from(w[1].0))
        .unwrap_or(curve.len() - 2);
    let (b0, t0) = (f64::from(curve[i].0), curve[i].1.as_secs_f64());
    let (b1, t1) = (f64::from(curve[i + 1].0), curve[i + 1].1.as_secs_f64());
    Some((t0 + (t1 - t0) * (b - b0) / (b1 - b0)).max(0.0))
}

/// One preset: a name, the served model it imitates, and its parameters.
#[derive(Debug, Clone)]
pub struct Preset {
    /// `--preset` name.
    pub name: &'static str,
    /// Default `--model` (what `/v1/models` serves).
    pub model: &'static str,
    /// What the numbers come from.
    pub source: &'static str,
    /// Answer at once, without the engine loop (the `instant` preset).
    pub instant: bool,
    /// Serve `/metrics` (vLLM does; transformers serve does not).
    pub metrics: bool,
    /// Default output length, tokens, when a request has no `max_tokens`.
    pub default_output_len: u32,
    /// The parameters.
    pub params: Params,
}

const fn ms(x: u64) -> Duration {
    Duration::from_micros(x * 1000)
}

fn h100_8b() -> Params {
    Params {
        max_model_len: 131_072,
        kv_bytes_per_token: 131_072.0,
        weight_bytes: 15.0e9,
        active_params: 7.5e9,
        hbm_bw: 2.6e12,
        kv_bw: 1.9e12,
        flops: 450e12,
        t_fixed: Duration::from_micros(700),
        t_seq: Duration::from_nanos(4_400),
        api_overhead: ms(8),
        api_overhead_jitter: 0.1,
        block_size: 16,
        num_kv_blocks: 26_300,
        max_num_seqs: 1024,
        max_num_batched_tokens: 8192,
        long_prefill_token_threshold: 0,
        enable_prefix_caching: true,
        max_num_queued_reqs: 0,
        batch_curve: Vec::new(),
        idle_wake: Duration::ZERO,
        idle_after: Duration::ZERO,
    }
}

/// transformers' continuous batching on a 1.1B model, four instances on one H100 (fit in
/// docs/benchmarks.md). Its steps are host-bound: the per-step time is the measured curve (each
/// instance's share of the GPU at B = C/4 sequences, C in flight over the four), and the device
/// terms only add prefill work. A lone request after idleness starts 2.3 s late.
fn hf_cb_1b_h100() -> Params {
    Params {
        max_model_len: 8192,
        // 22 layers × 4 KV heads × 64 dims × (K, V) × 2 B.
        kv_bytes_per_token: 22_528.0,
        weight_bytes: 2.2e9,
        active_params: 1.1e9,
        hbm_bw: 2.6e12,
        kv_bw: 1.9e12,
        flops: 200e12,
        t_fixed: Duration::ZERO,
        t_seq: Duration::ZERO,
        api_overhead: ms(10),
        api_overhead_jitter: 0.1,
        block_size: 16,
        // --cb-num-blocks 1500 did not bind at 256 sequences per instance (1024 in flight).
        num_kv_blocks: 24_000,
        max_num_seqs: 4096,
        max_num_batched_tokens: 8192,
        long_prefill_token_threshold: 0,
        enable_prefix_caching: false,
        max_num_queued_reqs: 0,
        batch_curve: vec![
            (1, Duration::from_micros(44_700)),
            (4, Duration::from_micros(94_400)),
            (16, Duration::from_micros(113_000)),
            (64, Duration::from_micros(141_000)),
            (256, Duration::from_micros(485_000)),
        ],
        idle_wake: Duration::from_millis(2260),
        idle_after: Duration::from_secs(1),
    }
}

/// Every preset, the default first.
pub fn presets() -> Vec<Preset> {
    vec![
        Preset {
            name: "llama-3.1-8b-h100",
            model: "meta-llama/Llama-3.1-8B-Instruct",
            source: "vllm-facts §6: BF16 on one H100-80GB, vLLM V1 defaults (1024 seqs / 8192 tokens)",
            instant: false,
            metrics: true,
            default_output_len: 128,
            params: h100_8b(),
        },
        Preset {
            name: "llama-3.1-8b-a100-40gb",
            model: "meta-llama/Llama-3.1-8B-Instruct",
            source: "vllm-facts §6: BF16 on one A100-40GB, vLLM defaults for non-H100 GPUs (256 / 2048)",
            instant: false,
            metrics: true,
            default_output_len: 128,
            params: Params {
                // 7,900 blocks hold 126k tokens: vLLM refuses 131,072 on this card, so the
                // usual --max-model-len 32768 is the preset's.
                max_model_len: 32_768,
                hbm_bw: 1.21e12,
                flops: 140e12,
                // 131,072 B / 112 ns per context token.
                kv_bw: 1.17e12,
                num_kv_blocks: 7_900,
                max_num_seqs: 256,
                max_num_batched_tokens: 2048,
                ..h100_8b()
            },
        },
        Preset {
            name: "llama-2-7b-h100-64gb",
            model: "meta-llama/Llama-2-7b-hf",
            source: "vllm-facts §3.2/§6: the 'Mind the Memory Gap' sweep (H100-64GB, vLLM V0 fork); validation only",
            instant: false,
            metrics: true,
            default_output_len: 128,
            params: Params {
                max_model_len: 4096,
                kv_bytes_per_token: 524_288.0,
                weight_bytes: 13.5e9,
                active_params: 6.5e9,
                hbm_bw: 1.31e12,
                // BW / 1.25.
                kv_bw: 1.048e12,
                flops: 450e12,
                t_fixed: Duration::from_micros(500),
                t_seq: Duration::from_nanos(4_400),
                api_overhead: Duration::ZERO,
                api_overhead_jitter: 0.0,
                num_kv_blocks: 5_659,
                max_num_seqs: 256,
                max_num_batched_tokens: 2048,
                ..h100_8b()
            },
        },
        Preset {
            name: "qwen2.5-0.5b-cpu-2core",
            model: "Qwen/Qwen2.5-0.5B-Instruct",
            source: "vllm-facts §6: roofline guess for vLLM's CPU backend on 2 cores (uncalibrated)",
            instant: false,
            metrics: true,
            default_output_len: 128,
            params: Params {
                max_model_len: 32_768,
                kv_bytes_per_token: 12_288.0,
                weight_bytes: 0.99e9,
                active_params: 0.5e9,
                hbm_bw: 15e9,
                // 12,288 B / 1.1 µs per context token.
                kv_bw: 11.2e9,
                flops: 0.2e12,
                t_fixed: ms(5),
                t_seq: Duration::from_micros(50),
                api_overhead: ms(2),
                api_overhead_jitter: 0.1,
                num_kv_blocks: 21_800,
                max_num_seqs: 128,
                max_num_batched_tokens: 2048,
                ..h100_8b()
            },
        },
        Preset {
            name: "hf-cb-1b-h100",
            model: "/tmp/m1b",
            source: "measured: 4 `transformers serve --continuous-batching` instances sharing one H100 \
                     (1.1B Llama-shaped, bf16; bench/gpu/curve.sh, bench/gpu/results/h100-curve)",
            instant: false,
            // transformers serve has no /metrics: clients see the load only in the answers.
            metrics: false,
            default_output_len: 128,
            params: hf_cb_1b_h100(),
        },
        Preset {
            name: "instant",
            model: "drover-sim-instant",
            source: "no engine model: answers at once, to measure the dispatcher itself",
            instant: true,
            metrics: true,
            default_output_len: 16,
            params: Params {
                max_model_len: 131_072,
                api_overhead: Duration::ZERO,
                api_overhead_jitter: 0.0,
                max_num_seqs: u32::MAX,
                ..h100_8b()
            },
        },
    ]
}

/// Names of all presets, for error messages and `--help`.
pub fn preset_names() -> Vec<&'static str> {
    presets().iter().map(|p| p.name).collect()
}

/// The terms of the step-time formula (vllm-facts §3.1), in seconds, derived once from [`Params`]:
/// `T = t_fixed + max(t_weights, N·t_flop) + S·t_kv + B·t_seq`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct StepCosts {
    /// Per step.
    pub t_fixed: f64,
    /// Reading the weights once: W / BW.
    pub t_weights: f64,
    /// GEMM time per scheduled token: 2·P / F.
    pub t_flop: f64,
    /// Attention KV read per context token: kv_bytes / BW_kv.
    pub t_kv: f64,
    /// Per scheduled sequence.
    pub t_seq: f64,
}

impl StepCosts {
    /// Derives the terms from `params`.
    pub fn of(params: &Params) -> StepCosts {
        StepCosts {
            t_fixed: params.t_fixed.as_secs_f64(),
            t_weights: params.weight_bytes / params.hbm_bw,
            t_flop: 2.0 * params.active_params / params.flops,
            t_kv: params.kv_bytes_per_token / params.kv_bw,
            t_seq: params.t_seq.as_secs_f64(),
        }
    }

    /// Duration of one step that computes `tokens` tokens for `seqs` sequences whose attention
    /// reads `context` tokens in total, in seconds.
    pub fn step_seconds(&self, tokens: u64, seqs: u64, context: u64) -> f64 {
        self.t_fixed + self.work_seconds(tokens, context) + seqs as f64 * self.t_seq
    }

    /// The device's share of a step: weights or GEMMs, and attention's KV reads, in seconds.
    pub fn work_seconds(&self, tokens: u64, context: u64) -> f64 {
        self.t_weights.max(tokens as f64 * self.t_flop) + context as f64 * self.t_kv
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn preset(name: &str) -> Preset {
        presets().into_iter().find(|p| p.name == name).unwrap()
    }

    #[test]
    fn derived_terms_match_the_spec_table() {
        let close = |a: f64, b: f64, tol: f64| (a - b).abs() <= tol * b;
        let h100 = StepCosts::of(&preset("llama-3.1-8b-h100").params);
        assert!(close(h100.t_weights, 5.77e-3, 0.01), "{h100:?}");
        assert!(close(h100.t_flop, 33.3e-6, 0.01));
        assert!(close(h100.t_kv, 69e-9, 0.01));
        let a100 = StepCosts::of(&preset("llama-3.1-8b-a100-40gb").params);
        assert!(close(a100.t_weights, 12.4e-3, 0.01));
        assert!(close(a100.t_flop, 107e-6, 0.01));
        assert!(close(a100.t_kv, 112e-9, 0.01));
        let l2 = StepCosts::of(&preset("llama-2-7b-h100-64gb").params);
        assert!(close(l2.t_weights, 10.3e-3, 0.01));
        assert!(close(l2.t_flop, 28.9e-6, 0.01));
        assert!(close(l2.t_kv, 0.5e-6, 0.01));
        let cpu = StepCosts::of(&preset("qwen2.5-0.5b-cpu-2core").params);
        assert!(close(cpu.t_weights, 66e-3, 0.01));
        assert!(close(cpu.t_flop, 5e-3, 0.01));
        assert!(close(cpu.t_kv, 1.1e-6, 0.01));
    }

    #[test]
    fn every_preset_fits_one_max_length_request() {
        for p in presets() {
            let capacity = u64::from(p.params.num_kv_blocks) * u64::from(p.params.block_size);
            assert!(u64::from(p.params.max_model_len) <= capacity, "{}", p.name);
        }
        assert_eq!(presets()[0].name, "llama-3.1-8b-h100");
    }
}
