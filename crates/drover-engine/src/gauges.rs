//! Counters the engine thread writes and the HTTP side reads, without locks.

use std::sync::atomic::{AtomicU8, AtomicU64, Ordering::Relaxed};

use drover_server::{EngineGauges, Health};

/// Engine state shared between the engine thread and [`crate::LlamaEngine`].
#[derive(Debug, Default)]
pub(crate) struct Shared {
    /// Sequences holding a slot (prefilling or decoding).
    pub running: AtomicU64,
    /// Requests submitted but not yet in a slot.
    pub waiting: AtomicU64,
    /// KV cells in use: the sum of every running sequence's position.
    pub kv_used: AtomicU64,
    /// 0 = starting, 1 = ready, 2 = dead.
    health: AtomicU8,
    /// `decode` calls so far.
    pub steps: AtomicU64,
    /// Most sequences that took part in a single `decode`.
    pub peak_batch_sequences: AtomicU64,
    /// Tokens sampled so far (all requests).
    pub generated_tokens: AtomicU64,
    /// Prompt tokens prefilled so far.
    pub prompt_tokens: AtomicU64,
}

impl Shared {
    pub fn set_health(&self, health: Health) {
        self.health.store(
            match health {
                Health::Starting => 0,
                Health::Ready => 1,
                Health::Dead => 2,
            },
            Relaxed,
        );
    }

    pub fn health(&self) -> Health {
        match self.health.load(Relaxed) {
            0 => Health::Starting,
            1 => Health::Ready,
            _ => Health::Dead,
        }
    }

    pub fn gauges(&self, n_ctx: u32) -> EngineGauges {
        EngineGauges {
            running: self.running.load(Relaxed),
            waiting: self.waiting.load(Relaxed),
            kv_cache_usage: (self.kv_used.load(Relaxed) as f64 / f64::from(n_ctx.max(1))).min(1.0),
            // llama.cpp allocates KV per token cell, so a "block" is one cell.
            block_size: 1,
            num_gpu_blocks: u64::from(n_ctx),
            ..EngineGauges::default()
        }
    }

    pub fn stats(&self) -> EngineStats {
        EngineStats {
            steps: self.steps.load(Relaxed),
            peak_batch_sequences: self.peak_batch_sequences.load(Relaxed),
            generated_tokens: self.generated_tokens.load(Relaxed),
            prompt_tokens: self.prompt_tokens.load(Relaxed),
        }
    }
}

/// Cumulative scheduler statistics (for benchmarks and tests; `/metrics` has the gauges).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct EngineStats {
    /// `decode` calls (scheduler steps) so far.
    pub steps: u64,
    /// Most sequences that shared a single `decode` call: > 1 means requests were batched.
    pub peak_batch_sequences: u64,
    /// Tokens sampled so far, over all requests.
    pub generated_tokens: u64,
    /// Prompt tokens prefilled so far.
    pub prompt_tokens: u64,
}
