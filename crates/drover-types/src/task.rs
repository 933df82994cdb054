use std::sync::Arc;

use bytes::Bytes;

use crate::Endpoint;

/// One unit of work: a request body bound for one endpoint, and where it came from.
///
/// The body is serialized once, by the input reader, so that retries and hedges resend the
/// same bytes and the dispatcher never touches JSON.
#[derive(Debug, Clone)]
pub struct Task {
    /// 1-based line number in the input.
    pub line: u64,
    /// The caller's key for this task; unique within a job.
    pub custom_id: Arc<str>,
    /// Which endpoint the body is for.
    pub endpoint: Endpoint,
    /// The JSON request body, complete (model and defaults filled in), without `stream`.
    pub body: Bytes,
    /// Rough prompt size in tokens (characters / 4), for routing and longest-first order.
    pub prompt_tokens_est: u32,
    /// The request's `max_tokens` (or `max_completion_tokens`), when it sets one.
    pub max_tokens: Option<u32>,
    /// Which job the task belongs to when one dispatcher serves several (the batch server's
    /// batches); 0 for a single job.
    pub group: u32,
}

impl Task {
    /// Estimated work in tokens: decode dominates, so output counts in full and the prompt
    /// at a fraction (prefill runs ~10-50x faster per token than decode).
    pub fn cost_estimate(&self) -> u64 {
        u64::from(self.max_tokens.unwrap_or(256)) + u64::from(self.prompt_tokens_est) / 16
    }
}
