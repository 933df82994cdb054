//! The custom_ids read so far, each with the line it was first seen on, for the
//! "duplicate custom_id, first seen on line N" record.
//!
//! This is the one structure of a run that grows with the input, so it is kept compact: a
//! sorted array of digests with a parallel array of line numbers (12 bytes a task, 12 MB at 1M
//! tasks). A `HashMap<u64, u64>` took 16 bytes an entry plus its control bytes, rounded up to a
//! power of two and doubled while it grew: 34 MB at 1M tasks, 51 MB during the last resize.
//!
//! New digests go to a small hash map first (O(1) inserts); when it is full, it is sorted and
//! merged into the arrays in place, from the back, so a merge needs no second copy of them.
//! The batch grows with the arrays, so each digest is moved about `BATCH_DIVISOR` times over
//! a run however long the input (at 1M tasks, ~0.4 GB of copying in all: well under a second).

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

use drover_types::IdHash;

/// Smallest batch merged at once: merges stay rare at small inputs.
const MIN_BATCH: usize = 1 << 14;
/// The batch is at least 1/`BATCH_DIVISOR` of the arrays: the map stays small next to them
/// while the number of merges grows only with the logarithm of the input.
const BATCH_DIVISOR: usize = 32;

/// Digests are already uniformly distributed: hashing them again is wasted work.
#[derive(Default)]
struct PassThrough(u64);

impl Hasher for PassThrough {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(b);
        }
    }
    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }
}

/// Line numbers parallel to the sorted digests. They fit 32 bits in any input whose set fits
/// in memory; past 2³² lines they widen rather than wrap.
#[derive(Debug)]
enum Lines {
    Narrow(Vec<u32>),
    Wide(Vec<u64>),
}

impl Lines {
    fn get(&self, i: usize) -> u64 {
        match self {
            Lines::Narrow(v) => u64::from(v[i]),
            Lines::Wide(v) => v[i],
        }
    }

    fn widen(&mut self) {
        if let Lines::Narrow(v) = self {
            *self = Lines::Wide(v.iter().map(|&l| u64::from(l)).collect());
        }
    }
}

/// Custom_id digests seen so far, with their first line.
#[derive(Default)]
pub(crate) struct SeenIds {
    /// Merged digests, ascending.
    sorted: Vec<IdHash>,
    /// `sorted[i]`'s line; `None` until the first merge.
    lines: Option<Lines>,
    /// Digests since the last merge.
    recent: HashMap<IdHash, u64, BuildHasherDefault<PassThrough>>,
    /// Scratch for a merge, kept to avoid reallocating it each time.
    batch: Vec<(IdHash, u64)>,
}

impl SeenIds {
    /// The line `id` was first seen on, or `None` after recording it as seen on `line`.
    pub(crate) fn first_or_insert(&mut self, id: IdHash, line: u64) -> Option<u64> {
        if let Some(&first) = self.recent.get(&id) {
            return Some(first);
        }
        if let Ok(i) = self.sorted.binary_search(&id) {
            return Some(self.lines.as_ref().expect("lines beside digests").get(i));
        }
        self.recent.insert(id, line);
        if self.recent.len() >= MIN_BATCH.max(self.sorted.len() / BATCH_DIVISOR) {
            self.merge();
        }
        None
    }

    /// Entries recorded.
    #[cfg(test)]
    fn len(&self) -> usize {
        self.sorted.len() + self.recent.len()
    }

    /// Moves `recent` into the sorted arrays.
    fn merge(&mut self) {
        self.batch.clear();
        self.batch.extend(self.recent.drain());
        self.batch.sort_unstable_by_key(|&(id, _)| id);
        let lines = self.lines.get_or_insert_with(|| Lines::Narrow(Vec::new()));
        if self.batch.iter().any(|&(_, l)| l > u64::from(u32::MAX)) {
            lines.widen();
        }
        match lines {
            Lines::Narrow(v) => merge_back(&mut self.sorted, v, &self.batch, |l| l as u32),
            Lines::Wide(v) => merge_back(&mut self.sorted, v, &self.batch, |l| l),
        }
    }
}

/// Merges the sorted `batch` into the sorted `ids` (and `lines` beside them) in place: both
/// grow by the batch's length and are filled from the back, so nothing is copied twice.
fn merge_back<L: Copy + Default>(
    ids: &mut Vec<IdHash>,
    lines: &mut Vec<L>,
    batch: &[(IdHash, u64)],
    narrow: impl Fn(u64) -> L,
) {
    let old = ids.len();
    // Exact growth: doubling would leave up to half of the largest arrays unused.
    ids.reserve_exact(batch.len());
    lines.reserve_exact(batch.len());
    ids.resize(old + batch.len(), 0);
    lines.resize(old + batch.len(), L::default());
    let (mut i, mut j, mut w) = (old, batch.len(), old + batch.len());
    while j > 0 {
        w -= 1;
        if i > 0 && ids[i - 1] > batch[j - 1].0 {
            i -= 1;
            ids[w] = ids[i];
            lines[w] = lines[i];
        } else {
            j -= 1;
            ids[w] = batch[j].0;
            lines[w] = narrow(batch[j].1);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn first_line_survives_merges() {
        let mut s = SeenIds::default();
        let n = 3 * MIN_BATCH as u64 + 17;
        // Spread digests over the whole range so merges interleave old and new entries.
        let id = |k: u64| k.wrapping_mul(0x9E37_79B9_7F4A_7C15);
        for k in 0..n {
            assert_eq!(s.first_or_insert(id(k), k + 1), None);
        }
        assert_eq!(s.len() as u64, n);
        assert!(s.sorted.len() >= 3 * MIN_BATCH, "merged");
        assert!(s.sorted.windows(2).all(|w| w[0] < w[1]));
        for k in [0, 1, 5000, MIN_BATCH as u64, n - 1] {
            assert_eq!(s.first_or_insert(id(k), n + 10), Some(k + 1));
        }
        assert_eq!(s.len() as u64, n, "a duplicate is not recorded again");
    }

    #[test]
    fn lines_past_32_bits_widen() {
        let mut s = SeenIds::default();
        let big = u64::from(u32::MAX) + 5;
        assert_eq!(s.first_or_insert(7, 3), None);
        s.merge();
        assert_eq!(s.first_or_insert(9, big), None);
        s.merge();
        assert!(matches!(s.lines, Some(Lines::Wide(_))));
        assert_eq!(s.first_or_insert(7, big + 1), Some(3));
        assert_eq!(s.first_or_insert(9, big + 1), Some(big));
    }

    proptest! {
        /// Same answers as a plain map, whatever the digests and wherever merges fall.
        #[test]
        fn agrees_with_a_map(ids in proptest::collection::vec(0u64..64, 0..300), every in 1usize..40) {
            let mut s = SeenIds::default();
            let mut m = std::collections::HashMap::new();
            for (k, &id) in ids.iter().enumerate() {
                let line = k as u64 + 1;
                let want = match m.entry(id) {
                    std::collections::hash_map::Entry::Occupied(e) => Some(*e.get()),
                    std::collections::hash_map::Entry::Vacant(e) => { e.insert(line); None }
                };
                prop_assert_eq!(s.first_or_insert(id, line), want);
                if k % every == 0 {
                    s.merge();
                }
            }
        }
    }
}
