//! The scheduler step: vLLM V1's `schedule()` plus one forward pass, as a pure function.
//!
//! [`step`] has no clock: it mutates the state as of the end of the step and says how long the step
//! took in simulated seconds. The driver sleeps that long (times the time scale) and then delivers
//! the tokens. The algorithm is vllm-facts §1 exactly:
//! 1. RUNNING requests first, in order, each taking `min(remaining, threshold, budget)` tokens (1
//!    for a decode, a chunk for an unfinished prefill); when its blocks cannot be allocated, the
//!    newest running request is preempted (blocks freed, recompute from 0, front of the waiting
//!    queue) until they can, or until the request preempted itself.
//! 2. WAITING requests are admitted only if nothing was preempted in this step, while
//!    `running < max_num_seqs` and budget remains: prefix-cache hits first (full blocks only, never
//!    the last token), then a prefill chunk within the budget; the first that cannot get its blocks
//!    stops admission (strict FCFS).
//! 3. The step lasts `t_fixed + max(W/BW, N·2P/F) + S·kv/BW_kv + B·t_seq` (vllm-facts §3.1), with N
//!    tokens computed, S context tokens read and B sequences scheduled (a measured batch curve,
//!    where a preset has one, stands in for `t_fixed + B·t_seq`). A sequence whose tokens are
//!    all computed samples one token; it finishes when it has its output length.

use std::collections::{HashMap, VecDeque};

use super::kv::KvCache;
use super::seq::{NewSeq, Seq, SeqId};
use crate::params::Params;

/// Every request the engine holds, and its KV cache.
#[derive(Debug)]
pub struct EngineState {
    seqs: HashMap<SeqId, Seq>,
    waiting: VecDeque<SeqId>,
    running: Vec<SeqId>,
    kv: KvCache,
    block_size: u32,
    /// Preemptions so far.
    pub preemptions: u64,
    /// Prompt tokens looked up in the prefix cache so far.
    pub prefix_queries: u64,
    /// Prompt tokens found in the prefix cache so far.
    pub prefix_hits: u64,
}

/// A request that finished in a step.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finished {
    /// Which.
    pub id: SeqId,
    /// Tokens it generated.
    pub output_tokens: u32,
    /// Prompt tokens served from the prefix cache when it was first scheduled.
    pub cached_tokens: u32,
}

/// What one step did.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct StepOutcome {
    /// How long the step took, simulated seconds (0 when nothing was scheduled).
    pub seconds: f64,
    /// Sequences scheduled (B).
    pub batch: u32,
    /// Tokens computed (N).
    pub tokens: u32,
    /// Context tokens attention read (S).
    pub context: u64,
    /// Requests that got one new token, in scheduling order.
    pub emitted: Vec<SeqId>,
    /// Requests that finished (their last token is in `emitted`).
    pub finished: Vec<Finished>,
    /// Requests preempted (sent back to waiting, to recompute).
    pub preempted: Vec<SeqId>,
}

impl EngineState {
    /// An empty engine sized by `params`.
    pub fn new(params: &Params) -> EngineState {
        EngineState {
            seqs: HashMap::new(),
            waiting: VecDeque::new(),
            running: Vec::new(),
            kv: KvCache::new(params.num_kv_blocks),
            block_size: params.block_size.max(1),
            preemptions: 0,
            prefix_queries: 0,
            prefix_hits: 0,
        }
    }

    /// Queues a request (the end of the waiting queue). Ids must be unique.
    pub fn add(&mut self, id: SeqId, new: NewSeq) {
        let previous = self.seqs.insert(id, Seq::new(new));
        assert!(previous.is_none(), "duplicate sequence id {id}");
        self.waiting.push_back(id);
    }

    /// Drops a request wherever it is and frees its blocks; false if unknown (already finished).
    pub fn abort(&mut self, id: SeqId) -> bool {
        let Some(seq) = self.seqs.remove(&id) else {
            return false;
        };
        self.kv.free(&seq.blocks);
        if let Some(i) = self.running.iter().position(|&r| r == id) {
            self.running.remove(i);
        } else if let Some(i) = self.waiting.iter().position(|&r| r == id) {
            self.waiting.remove(i);
        }
        true
    }

    /// Whether a step would schedule anything.
    pub fn has_work(&self) -> bool {
        !self.running.is_empty() || !self.waiting.is_empty()
    }

    /// Requests in the running batch.
    pub fn running(&self) -> usize {
        self.running.len()
    }

    /// Requests waiting to be scheduled.
    pub fn waiting(&self) -> usize {
        self.waiting.len()
    }

    /// Fraction of KV blocks owned by requests.
    pub fn kv_usage(&self) -> f64 {
        f64::from(self.kv.used_blocks()) / f64::from(self.kv.num_blocks().max(1))
    }

    /// KV blocks owned by requests.
    pub fn used_blocks(&self) -> u32 {
        self.kv.used_blocks()
    }

    /// Tokens generated so far by a request still in the engine.
    pub fn output_tokens(&self, id: SeqId) -> Option<u32> {
        self.seqs.get(&id).map(|s| s.output)
    }

    /// Tokens with computed KV of a request still in the engine.
    pub fn computed_tokens(&self, id: SeqId) -> Option<u32> {
        self.seqs.get(&id).map(|s| s.computed)
    }

    fn blocks_for(&self, tokens: u32) -> u32 {
        tokens.div_ceil(self.block_size)
    }

    /// Frees the newest running request's blocks and puts it at the front of the waiting queue.
    fn preempt_newest(&mut self) -> SeqId {
        let victim = self.running.pop().expect("preempt with an empty batch");
        let seq = self.seqs.get_mut(&victim).expect("running request exists");
        self.kv.free(&seq.blocks);
        seq.blocks.clear();
        seq.computed = 0;
        seq.registered = 0;
        self.waiting.push_front(victim);
        self.preemptions += 1;
        victim
    }
}

/// One engine step; see the module doc.
pub fn step(state: &mut EngineState, params: &Params) -> StepOutcome {
    let bs = state.block_size;
    let threshold = params.long_prefill_token_threshold;
    let chunk = |remaining: u32, budget: u32| {
        let n = if threshold > 0 {
            remaining.min(threshold)
        } else {
            remaining
        };
        n.min(budget)
    };
    let mut budget = params.max_num_batched_tokens.max(1);
    // (request, tokens computed this step, tokens computed before)
    let mut scheduled: Vec<(SeqId, u32, u32)> = Vec::new();
    let mut out = StepOutcome::default();

    // 1. Running requests, oldest first.
    let mut i = 0;
    while i < state.running.len() && budget > 0 {
        let id = state.running[i];
        let seq = &state.seqs[&id];
        let (before, n) = (seq.computed, chunk(seq.num_tokens() - seq.computed, budget));
        let need = state
            .blocks_for(before + n)
            .saturating_sub(seq.blocks.len() as u32);
        loop {
            if need <= state.kv.free_blocks() {
                let seq = state.seqs.get_mut(&id).expect("running request exists");
                state.kv.allocate(need, &mut seq.blocks);
                scheduled.push((id, n, before));
                budget -= n;
                i += 1;
                break;
            }
            let victim = state.preempt_newest();
            out.preempted.push(victim);
            if victim == id {
                break;
            }
        }
    }

    // 2. Waiting requests, only if nothing was preempted.
    while out.preempted.is_empty()
        && budget > 0
        && (state.running.len() as u64) < u64::from(params.max_num_seqs)
        && let Some(&id) = state.waiting.front()
    {
        let seq = state.seqs.get_mut(&id).expect("waiting request exists");
        let num_tokens = seq.num_tokens();
        let hits = if params.enable_prefix_caching {
            // The last token is always recomputed: it produces the next token's logits.
            let hashable = (num_tokens - 1) / bs;
            state.kv.lookup(seq.hashes(hashable, bs))
        } else {
            Vec::new()
        };
        let hit_tokens = hits.len() as u32 * bs;
        let n = chunk(num_tokens - hit_tokens, budget);
        let need = (hit_tokens + n).div_ceil(bs) - hits.len() as u32;
        if !state.kv.can_allocate(&hits, need) {
            break;
        }
        state.kv.touch(&hits);
        seq.blocks.clone_from(&hits);
        state.kv.allocate(need, &mut seq.blocks);
        seq.computed = hit_tokens;
        seq.registered = hits.len() as u32;
        seq.cached_tokens.get_or_insert(hit_tokens);
        if params.enable_prefix_caching {
            state.prefix_queries += u64::from(num_tokens);
            state.prefix_hits += u64::from(hit_tokens);
        }
        state.waiting.pop_front();
        state.running.push(id);
        scheduled.push((id, n, hit_tokens));
        budget -= n;
    }

    if scheduled.is_empty() {
        return out;
    }

    // 3. The forward pass, then post-processing.
    out.batch = scheduled.len() as u32;
    out.tokens = scheduled.iter().map(|&(_, n, _)| n).sum();
    out.context = scheduled
        .iter()
        .map(|&(_, n, before)| u64::from(before + n))
        .sum();
    out.seconds = params.step_seconds(u64::from(out.tokens), u64::from(out.batch), out.context);
    for &(id, n, _) in &scheduled {
        let seq = state.seqs.get_mut(&id).expect("scheduled request exists");
        seq.computed += n;
        if params.enable_prefix_caching {
            let full = seq.computed / bs;
            if full > seq.registered {
                let first = seq.registered as usize;
                let hashes = seq.hashes(full, bs)[first..].to_vec();
                for (block, hash) in seq.blocks[first..full as usize].iter().zip(hashes) {
                    state.kv.register(*block, hash);
                }
                seq.registered = full;
            }
        }
        if seq.computed == seq.num_tokens() {
            seq.output += 1;
            out.emitted.push(id);
            if seq.output >= seq.target {
                out.finished.push(Finished {
                    id,
                    output_tokens: seq.output,
                    cached_tokens: seq.cached_tokens.unwrap_or(0),
                });
            }
        }
    }
    for f in &out.finished {
        let seq = state.seqs.remove(&f.id).expect("finished request exists");
        state.kv.free(&seq.blocks);
    }
    if !out.finished.is_empty() {
        let done: std::collections::HashSet<SeqId> = out.finished.iter().map(|f| f.id).collect();
        state.running.retain(|id| !done.contains(id));
    }
    out
}

#[cfg(test)]
#[path = "step_tests.rs"]
mod tests;
