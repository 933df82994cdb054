//! [`SimConfig`]: everything one simulated instance needs, built from a preset plus overrides.

use crate::answer::LengthPolicy;
use crate::error::SimError;
use crate::faults::Faults;
use crate::output_len::OutputLen;
use crate::params::{Params, presets};

/// The default preset.
pub const DEFAULT_PRESET: &str = "llama-3.1-8b-h100";

/// One instance's configuration. Fields are public so that callers (the CLI, tests) override
/// what they need after [`SimConfig::preset`]; [`SimConfig::validate`] checks the result.
#[derive(Debug, Clone)]
pub struct SimConfig {
    /// Preset the parameters came from (shown in the banner).
    pub preset: String,
    /// Served model name (`/v1/models`, `model` of answers).
    pub model: String,
    /// Engine-model parameters.
    pub params: Params,
    /// Answer at once, without the engine loop (the `instant` preset).
    pub instant: bool,
    /// Output length for requests without `max_tokens`, tokens.
    pub output_len: OutputLen,
    /// Also draw an EOS from `output_len` for requests with `max_tokens` (see [`LengthPolicy`]).
    pub sample_eos: bool,
    /// Multiplier on every simulated duration: 0.01 runs 100× faster than real time.
    pub time_scale: f64,
    /// Relative speed of this instance: step times are divided by it (0.33 = three times slower).
    pub speed_factor: f64,
    /// Seed of this instance's random draws (fault rates, output lengths, API jitter).
    pub seed: u64,
    /// Fault injection.
    pub faults: Faults,
    /// When set, `/v1/*` requires `Authorization: Bearer <api_key>` (as `vllm serve --api-key`).
    pub api_key: Option<String>,
    /// Serve no `/metrics` (like transformers serve or llama-server without `--metrics`).
    pub hide_metrics: bool,
}

impl Default for SimConfig {
    fn default() -> SimConfig {
        SimConfig::preset(DEFAULT_PRESET).expect("the default preset exists")
    }
}

impl SimConfig {
    /// The configuration of preset `name`, with no faults, real time and seed 0.
    pub fn preset(name: &str) -> Result<SimConfig, SimError> {
        let all = presets();
        let Some(p) = all.iter().find(|p| p.name == name) else {
            let known = all.iter().map(|p| p.name).collect::<Vec<_>>().join(", ");
            return Err(SimError::UnknownPreset {
                name: name.to_string(),
                known,
            });
        };
        Ok(SimConfig {
            preset: p.name.to_string(),
            model: p.model.to_string(),
            params: p.params.clone(),
            instant: p.instant,
            output_len: OutputLen::Fixed(p.default_output_len),
            sample_eos: false,
            time_scale: 1.0,
            speed_factor: 1.0,
            seed: 0,
            faults: Faults::default(),
            api_key: None,
            hide_metrics: !p.metrics,
        })
    }

    /// The length policy of answers.
    pub fn length_policy(&self) -> LengthPolicy {
        LengthPolicy {
            output_len: self.output_len,
            sample_eos: self.sample_eos,
        }
    }

    /// Checks every parameter; errors name the flag that sets it.
    pub fn validate(&self) -> Result<(), SimError> {
        let p = &self.params;
        let positive = |field: &'static str, x: f64, unit: &str| {
            if x > 0.0 && x.is_finite() {
                Ok(())
            } else {
                Err(SimError::invalid(
                    field,
                    format!("must be a positive number of {unit}, got {x}"),
                ))
            }
        };
        if self.model.is_empty() {
            return Err(SimError::invalid(
                "--model",
                "the served model name must not be empty",
            ));
        }
        positive(
            "--time-scale",
            self.time_scale,
            "simulated-to-real seconds (e.g. 0.01 = 100x faster)",
        )?;
        positive(
            "--speed-factors",
            self.speed_factor,
            "relative speed (1 = the preset, 0.5 = half as fast)",
        )?;
        positive("--kv-bytes-per-token", p.kv_bytes_per_token, "bytes")?;
        positive("--weight-bytes", p.weight_bytes, "bytes")?;
        positive("--active-params", p.active_params, "parameters")?;
        positive("--hbm-bw", p.hbm_bw, "bytes/s")?;
        positive("--kv-bw", p.kv_bw, "bytes/s")?;
        positive("--flops", p.flops, "FLOP/s")?;
        if !(0.0..1.0).contains(&p.api_overhead_jitter) {
            return Err(SimError::invalid(
                "--api-overhead-jitter",
                format!(
                    "must be a fraction in [0, 1), got {}",
                    p.api_overhead_jitter
                ),
            ));
        }
        for (field, value) in [
            ("--max-model-len", p.max_model_len),
            ("--block-size", p.block_size),
            ("--num-kv-blocks", p.num_kv_blocks),
            ("--max-num-seqs", p.max_num_seqs),
            ("--max-num-batched-tokens", p.max_num_batched_tokens),
        ] {
            if value == 0 {
                return Err(SimError::invalid(field, "must be at least 1"));
            }
        }
        if p.batch_curve.windows(2).any(|w| w[0].0 >= w[1].0)
            || p.batch_curve.first().is_some_and(|&(b, _)| b == 0)
        {
            return Err(SimError::invalid(
                "--batch-curve",
                "batch sizes must start at 1 or more and strictly increase, e.g. 1:45ms,16:110ms,64:140ms",
            ));
        }
        let capacity = u64::from(p.num_kv_blocks) * u64::from(p.block_size);
        if !self.instant && u64::from(p.max_model_len) > capacity {
            return Err(SimError::invalid(
                "--max-model-len",
                format!(
                    "{} tokens do not fit in the KV cache ({} blocks x {} = {capacity} tokens), as vLLM refuses to start: \
                     lower --max-model-len or raise --num-kv-blocks",
                    p.max_model_len, p.num_kv_blocks, p.block_size
                ),
            ));
        }
        self.faults.validate()
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn presets_validate_and_unknown_names_list_the_known_ones() {
        for p in presets() {
            SimConfig::preset(p.name).unwrap().validate().unwrap();
        }
        let err = SimConfig::preset("gpt-9").unwrap_err().to_string();
        assert!(
            err.contains("gpt-9") && err.contains("llama-3.1-8b-h100") && err.contains("instant"),
            "{err}"
        );
        assert_eq!(SimConfig::default().preset, DEFAULT_PRESET);
    }

    #[test]
    fn invalid_values_name_their_flag() {
        let mut c = SimConfig::default();
        c.params.max_model_len = 10_000_000;
        assert!(
            c.validate()
                .unwrap_err()
                .to_string()
                .starts_with("--max-model-len:")
        );
        let c = SimConfig {
            time_scale: 0.0,
            ..SimConfig::default()
        };
        assert!(
            c.validate()
                .unwrap_err()
                .to_string()
                .starts_with("--time-scale:")
        );
        let mut c = SimConfig::default();
        c.params.batch_curve = vec![
            (16, Duration::from_millis(5)),
            (4, Duration::from_millis(9)),
        ];
        assert!(
            c.validate()
                .unwrap_err()
                .to_string()
                .starts_with("--batch-curve:")
        );
        let mut c = SimConfig::default();
        c.params.max_num_seqs = 0;
        assert!(
            c.validate()
                .unwrap_err()
                .to_string()
                .starts_with("--max-num-seqs:")
        );
    }
}
