//! Paged KV cache with prefix caching, as vLLM V1's block pool keeps it (vllm-facts §1, "KV cache"
//! and "Prefix caching").
//!
//! Blocks with no owner sit in a free queue in LRU order; a freed block keeps its hash (and stays
//! a prefix-cache hit) until it is handed out again, and a hit on a free block takes it out of the
//! queue. Blocks never handed out are implicitly at the head of the queue, so an idle engine with
//! 26k blocks costs no memory until it has used them (256 simulated instances fit in one process).

use std::collections::HashMap;

/// Index of a KV block.
pub type BlockId = u32;

const NIL: u32 = u32::MAX;

/// The block pool of one engine.
#[derive(Debug)]
pub struct KvCache {
    num_blocks: u32,
    /// Blocks `fresh..num_blocks` were never used: free, uncached, taken first.
    fresh: u32,
    ref_count: Vec<u32>,
    hash: Vec<Option<u64>>,
    /// Free queue of used blocks, a doubly linked list over block ids: head = least recently freed.
    prev: Vec<u32>,
    next: Vec<u32>,
    head: u32,
    tail: u32,
    /// Blocks in the linked free queue.
    queued: u32,
    /// Block hash → the block holding it.
    cached: HashMap<u64, BlockId>,
}

impl KvCache {
    /// A pool of `num_blocks` empty blocks.
    pub fn new(num_blocks: u32) -> KvCache {
        KvCache {
            num_blocks,
            fresh: 0,
            ref_count: Vec::new(),
            hash: Vec::new(),
            prev: Vec::new(),
            next: Vec::new(),
            head: NIL,
            tail: NIL,
            queued: 0,
            cached: HashMap::new(),
        }
    }

    /// Blocks in total.
    pub fn num_blocks(&self) -> u32 {
        self.num_blocks
    }

    /// Blocks that can be handed out now (never used, or freed).
    pub fn free_blocks(&self) -> u32 {
        (self.num_blocks - self.fresh) + self.queued
    }

    /// Blocks owned by at least one request.
    pub fn used_blocks(&self) -> u32 {
        self.num_blocks - self.free_blocks()
    }

    /// The longest run of cached blocks matching `hashes` from the start (a prefix-cache hit).
    pub fn lookup(&self, hashes: &[u64]) -> Vec<BlockId> {
        hashes
            .iter()
            .map_while(|h| self.cached.get(h).copied())
            .collect()
    }

    /// Whether `hits` (from [`lookup`](Self::lookup)) plus `new_blocks` fresh ones can be owned now:
    /// a hit on a free block uses up a free block too.
    pub fn can_allocate(&self, hits: &[BlockId], new_blocks: u32) -> bool {
        let free_hits = hits
            .iter()
            .filter(|&&b| self.ref_count[b as usize] == 0)
            .count() as u32;
        new_blocks + free_hits <= self.free_blocks()
    }

    /// Takes ownership of cached blocks (one more reference each).
    pub fn touch(&mut self, hits: &[BlockId]) {
        for &b in hits {
            if self.ref_count[b as usize] == 0 {
                self.unlink(b);
            }
            self.ref_count[b as usize] += 1;
        }
    }

    /// Hands out `n` blocks into `out`, least recently freed first; a reused block loses its hash.
    /// Callers check [`can_allocate`](Self::can_allocate) first.
    pub fn allocate(&mut self, n: u32, out: &mut Vec<BlockId>) {
        assert!(
            n <= self.free_blocks(),
            "allocate({n}) with {} free blocks",
            self.free_blocks()
        );
        for _ in 0..n {
            let b = if self.fresh < self.num_blocks {
                let b = self.fresh;
                self.fresh += 1;
                self.ref_count.push(0);
                self.hash.push(None);
                self.prev.push(NIL);
                self.next.push(NIL);
                b
            } else {
                let b = self.head;
                self.unlink(b);
                if let Some(h) = self.hash[b as usize].take()
                    && self.cached.get(&h) == Some(&b)
                {
                    self.cached.remove(&h);
                }
                b
            };
            self.ref_count[b as usize] = 1;
            out.push(b);
        }
    }

    /// Drops one reference to each block. Like vLLM, the request's tail blocks are queued first so
    /// that they are evicted before its prefix, which other requests are more likely to share.
    pub fn free(&mut self, blocks: &[BlockId]) {
        for &b in blocks.iter().rev() {
            let rc = &mut self.ref_count[b as usize];
            debug_assert!(*rc > 0, "double free of block {b}");
            *rc -= 1;
            if *rc == 0 {
                self.push_tail(b);
            }
        }
    }

    /// Records that `block` (full and computed) holds the tokens hashed to `hash`. If another block
    /// already holds that hash, the first one stays the cached copy, as in vLLM.
    pub fn register(&mut self, block: BlockId, hash: u64) {
        if self.hash[block as usize].is_some() {
            return;
        }
        if let std::collections::hash_map::Entry::Vacant(e) = self.cached.entry(hash) {
            e.insert(block);
            self.hash[block as usize] = Some(hash);
        }
    }

    fn unlink(&mut self, b: BlockId) {
        let (p, n) = (self.prev[b as usize], self.next[b as usize]);
        if p == NIL {
            self.head = n;
        } else {
            self.next[p as usize] = n;
        }
        if n == NIL {
            self.tail = p;
        } else {
            self.prev[n as usize] = p;
        }
        self.prev[b as usize] = NIL;
        self.next[b as usize] = NIL;
        self.queued -= 1;
    }

    fn push_tail(&mut self, b: BlockId) {
        self.prev[b as usize] = self.tail;
        self.next[b as usize] = NIL;
        if self.tail == NIL {
            self.head = b;
        } else {
            self.next[self.tail as usize] = b;
        }
        self.tail = b;
        self.queued += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn allocate_free_and_reuse_lru() {
        let mut kv = KvCache::new(4);
        let mut a = Vec::new();
        kv.allocate(3, &mut a);
        assert_eq!(a, vec![0, 1, 2]);
        assert_eq!((kv.used_blocks(), kv.free_blocks()), (3, 1));
        kv.register(0, 100);
        kv.register(1, 101);
        kv.free(&a);
        assert_eq!(kv.free_blocks(), 4);
        // The never-used block goes first, then the freed ones tail-first (2, 1, 0).
        let mut b = Vec::new();
        kv.allocate(2, &mut b);
        assert_eq!(b, vec![3, 2]);
        assert_eq!(
            kv.lookup(&[100, 101]),
            vec![0, 1],
            "freed blocks keep their hash"
        );
        kv.allocate(1, &mut b);
        assert_eq!(b[2], 1);
        assert_eq!(
            kv.lookup(&[100, 101]),
            vec![0],
            "reallocation evicts the hash"
        );
    }

    #[test]
    fn hits_on_free_blocks_count_against_capacity() {
        let mut kv = KvCache::new(2);
        let mut a = Vec::new();
        kv.allocate(2, &mut a);
        kv.register(a[0], 7);
        kv.free(&a);
        let hits = kv.lookup(&[7, 8]);
        assert_eq!(hits, vec![a[0]]);
        assert!(kv.can_allocate(&hits, 1));
        assert!(!kv.can_allocate(&hits, 2));
        kv.touch(&hits);
        assert_eq!(kv.free_blocks(), 1);
        let mut more = Vec::new();
        kv.allocate(1, &mut more);
        assert_eq!(more, vec![a[1]]);
        assert_eq!(kv.lookup(&[7]), vec![a[0]], "an owned block stays cached");
    }

    #[test]
    fn shared_blocks_need_every_owner_to_free() {
        let mut kv = KvCache::new(3);
        let mut a = Vec::new();
        kv.allocate(1, &mut a);
        kv.register(a[0], 1);
        kv.touch(&a);
        kv.free(&a);
        assert_eq!(kv.used_blocks(), 1);
        kv.free(&a);
        assert_eq!(kv.used_blocks(), 0);
    }
}
