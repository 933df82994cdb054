//! Sampling parameters of one request, validated.
//!
//! The OpenAI fields come from [`GenRequest`]; vLLM's extra sampling fields (`top_k`, `min_p`,
//! `repetition_penalty`) are read from the raw body, so clients that tune vLLM get the same knobs.
//! Ranges and messages follow vLLM's `SamplingParams` validation, so a request refused by vLLM is
//! refused here with the same 400.

use drover_server::{EngineError as Refusal, GenRequest};

/// llama.cpp's `LLAMA_DEFAULT_SEED`: asks `dist` for a random seed, so it is never passed on.
const LLAMA_RANDOM_SEED: u32 = u32::MAX;

/// How one request picks its next token.
#[derive(Debug, Clone, PartialEq)]
pub struct SamplingParams {
    /// 0 = greedy.
    pub temperature: f32,
    /// Nucleus mass, 1 = off.
    pub top_p: f32,
    /// Candidates kept, 0 = off.
    pub top_k: i32,
    /// Minimum probability relative to the best token, 0 = off.
    pub min_p: f32,
    /// OpenAI frequency penalty, 0 = off.
    pub frequency_penalty: f32,
    /// OpenAI presence penalty, 0 = off.
    pub presence_penalty: f32,
    /// vLLM/HF repetition penalty, 1 = off.
    pub repetition_penalty: f32,
    /// Seed for `dist` (a fresh random one when the request has none).
    pub seed: u32,
}

impl SamplingParams {
    /// Validates the request's sampling fields.
    pub fn from_request(request: &GenRequest) -> Result<Self, Refusal> {
        let raw_f32 = |name: &str| {
            request
                .raw
                .get(name)
                .and_then(serde_json::Value::as_f64)
                .map(|v| v as f32)
        };
        let params = SamplingParams {
            // Absent means greedy (OpenAI's default is 1): batch jobs want repeatable answers, and a
            // small model sampled at temperature 1 drifts off topic within a sentence.
            temperature: request.temperature.unwrap_or(0.0),
            top_p: request.top_p.unwrap_or(1.0),
            top_k: request
                .raw
                .get("top_k")
                .and_then(serde_json::Value::as_i64)
                .map_or(0, |k| {
                    k.clamp(i64::from(i32::MIN), i64::from(i32::MAX)) as i32
                }),
            min_p: raw_f32("min_p").unwrap_or(0.0),
            frequency_penalty: raw_f32("frequency_penalty").unwrap_or(0.0),
            presence_penalty: raw_f32("presence_penalty").unwrap_or(0.0),
            repetition_penalty: raw_f32("repetition_penalty").unwrap_or(1.0),
            seed: request.seed.map_or_else(random_seed, fold_seed),
        };
        params.validate()?;
        Ok(params)
    }

    fn validate(&self) -> Result<(), Refusal> {
        let bad = |msg: String| Err(Refusal::BadRequest(msg));
        if !(self.temperature >= 0.0 && self.temperature.is_finite()) {
            return bad(format!(
                "temperature must be non-negative, got {}.",
                self.temperature
            ));
        }
        if !(self.top_p > 0.0 && self.top_p <= 1.0) {
            return bad(format!("top_p must be in (0, 1], got {}.", self.top_p));
        }
        if self.top_k < -1 {
            return bad(format!(
                "top_k must be -1 (disable), or at least 1, got {}.",
                self.top_k
            ));
        }
        if !(0.0..=1.0).contains(&self.min_p) {
            return bad(format!("min_p must be in [0, 1], got {}.", self.min_p));
        }
        if !(-2.0..=2.0).contains(&self.frequency_penalty) {
            return bad(format!(
                "frequency_penalty must be in [-2, 2], got {}.",
                self.frequency_penalty
            ));
        }
        if !(-2.0..=2.0).contains(&self.presence_penalty) {
            return bad(format!(
                "presence_penalty must be in [-2, 2], got {}.",
                self.presence_penalty
            ));
        }
        if !(self.repetition_penalty > 0.0 && self.repetition_penalty.is_finite()) {
            return bad(format!(
                "repetition_penalty must be greater than zero, got {}.",
                self.repetition_penalty
            ));
        }
        Ok(())
    }

    /// Temperature 0 means the most likely token, as in vLLM; the other filters are then moot.
    pub fn is_greedy(&self) -> bool {
        self.temperature == 0.0
    }

    /// Any of the repetition penalties is active.
    pub fn has_penalties(&self) -> bool {
        self.frequency_penalty != 0.0
            || self.presence_penalty != 0.0
            || self.repetition_penalty != 1.0
    }
}

/// A request's 64-bit seed as the 32-bit seed llama.cpp takes; never the "random" sentinel, so
/// equal seeds give equal samples.
fn fold_seed(seed: u64) -> u32 {
    let folded = (seed ^ (seed >> 32)) as u32;
    if folded == LLAMA_RANDOM_SEED {
        folded - 1
    } else {
        folded
    }
}

/// A seed for requests without one (fresh per request, like vLLM's unseeded sampling).
fn random_seed() -> u32 {
    use std::hash::{BuildHasher, RandomState};
    fold_seed(RandomState::new().hash_one(std::time::SystemTime::now()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use drover_server::Prompt;

    fn request(body: serde_json::Value) -> GenRequest {
        GenRequest {
            id: "t".into(),
            prompt: Prompt::Text("x".into()),
            max_tokens: None,
            temperature: body
                .get("temperature")
                .and_then(|v| v.as_f64())
                .map(|v| v as f32),
            top_p: body.get("top_p").and_then(|v| v.as_f64()).map(|v| v as f32),
            seed: body.get("seed").and_then(|v| v.as_u64()),
            stop: vec![],
            response_format: None,
            ignore_eos: false,
            raw: body,
        }
    }

    #[test]
    fn defaults_are_greedy_without_filters() {
        let p = SamplingParams::from_request(&request(serde_json::json!({}))).unwrap();
        assert_eq!(
            (p.temperature, p.top_p, p.top_k, p.min_p),
            (0.0, 1.0, 0, 0.0)
        );
        assert!(p.is_greedy() && !p.has_penalties());
        let p = SamplingParams::from_request(&request(serde_json::json!({"temperature": 0.7})))
            .unwrap();
        assert!(!p.is_greedy());
    }

    #[test]
    fn temperature_zero_is_greedy_and_seed_is_stable() {
        let body = serde_json::json!({"temperature": 0.0, "seed": 42, "top_k": 5, "repetition_penalty": 1.2});
        let p = SamplingParams::from_request(&request(body.clone())).unwrap();
        assert!(p.is_greedy() && p.has_penalties());
        assert_eq!(p.top_k, 5);
        assert_eq!(
            p.seed,
            SamplingParams::from_request(&request(body)).unwrap().seed
        );
        assert_ne!(fold_seed(u64::from(u32::MAX)), LLAMA_RANDOM_SEED);
    }

    #[test]
    fn out_of_range_values_are_refused_with_vllm_messages() {
        for (body, needle) in [
            (
                serde_json::json!({"temperature": -0.5}),
                "temperature must be non-negative",
            ),
            (serde_json::json!({"top_p": 0.0}), "top_p must be in (0, 1]"),
            (serde_json::json!({"top_p": 1.5}), "top_p must be in (0, 1]"),
            (serde_json::json!({"top_k": -3}), "top_k must be -1"),
            (serde_json::json!({"min_p": 2}), "min_p must be in [0, 1]"),
            (
                serde_json::json!({"presence_penalty": 3}),
                "presence_penalty",
            ),
            (
                serde_json::json!({"frequency_penalty": -2.5}),
                "frequency_penalty",
            ),
            (
                serde_json::json!({"repetition_penalty": 0}),
                "repetition_penalty",
            ),
        ] {
            let err = SamplingParams::from_request(&request(body.clone())).unwrap_err();
            assert!(matches!(err, Refusal::BadRequest(_)), "{body}: {err}");
            assert!(err.to_string().contains(needle), "{body}: {err}");
        }
    }
}
