//! One request inside the engine, and the block hashes that make its prefix shareable.

use super::kv::BlockId;

/// Engine-local request id.
pub type SeqId = u64;

/// A request as the scheduler receives it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewSeq {
    /// Prompt length, tokens.
    pub prompt_tokens: u32,
    /// Tokens to generate before the request finishes (≥ 1).
    pub output_tokens: u32,
    /// Chain hashes of the prompt's full blocks (see [`chain_hash`]); empty when prefix caching is off.
    pub block_hashes: Vec<u64>,
    /// Token ids after the last full prompt block (fewer than a block).
    pub tail_ids: Vec<u64>,
    /// Seeds the ids of generated tokens, so that identical requests produce identical blocks.
    pub output_seed: u64,
}

/// SplitMix64 finalizer: a cheap, well-mixed 64-bit hash.
pub fn mix64(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// The hash of a block given the previous block's hash (0 for the first) and its token ids: a
/// chain, like vLLM's, so equal hashes mean equal prefixes up to and including this block.
pub fn chain_hash(prev: u64, ids: impl IntoIterator<Item = u64>) -> u64 {
    ids.into_iter()
        .fold(mix64(prev ^ 0x5bd1_e995), |acc, id| mix64(acc ^ id))
}

/// A request's scheduling state.
#[derive(Debug)]
pub(crate) struct Seq {
    pub prompt: u32,
    pub target: u32,
    /// Tokens generated so far (kept across preemption: recompute replays them as prompt).
    pub output: u32,
    /// Tokens whose KV is computed (0 after preemption).
    pub computed: u32,
    pub blocks: Vec<BlockId>,
    /// Blocks of `blocks` already registered in the prefix cache.
    pub registered: u32,
    /// Known chain hashes of full blocks.
    hashes: Vec<u64>,
    full_prompt_blocks: u32,
    tail_ids: Vec<u64>,
    output_seed: u64,
    /// Prompt tokens served from the prefix cache at first admission (`cached_tokens` in usage).
    pub cached_tokens: Option<u32>,
}

impl Seq {
    pub fn new(new: NewSeq) -> Seq {
        let full_prompt_blocks = new.block_hashes.len() as u32;
        Seq {
            prompt: new.prompt_tokens,
            target: new.output_tokens.max(1),
            output: 0,
            computed: 0,
            blocks: Vec::new(),
            registered: 0,
            hashes: new.block_hashes,
            full_prompt_blocks,
            tail_ids: new.tail_ids,
            output_seed: new.output_seed,
            cached_tokens: None,
        }
    }

    /// Prompt plus generated tokens: what a (re)computation has to cover.
    pub fn num_tokens(&self) -> u32 {
        self.prompt + self.output
    }

    /// Hashes of the first `blocks` full blocks, extending the chain over generated tokens as needed.
    /// Only blocks whose tokens are all known can be asked for.
    pub fn hashes(&mut self, blocks: u32, block_size: u32) -> &[u64] {
        while (self.hashes.len() as u32) < blocks {
            let j = self.hashes.len() as u32;
            let prev = self.hashes.last().copied().unwrap_or(0);
            let first = j * block_size;
            debug_assert!(
                first + block_size <= self.num_tokens(),
                "block {j} is not full yet"
            );
            let ids = (first..first + block_size).map(|t| self.token_id(t, block_size));
            let h = chain_hash(prev, ids);
            self.hashes.push(h);
        }
        &self.hashes[..blocks as usize]
    }

    fn token_id(&self, t: u32, block_size: u32) -> u64 {
        if t < self.prompt {
            self.tail_ids[(t - self.full_prompt_blocks * block_size) as usize]
        } else {
            mix64(self.output_seed ^ u64::from(t - self.prompt))
        }
    }
}
