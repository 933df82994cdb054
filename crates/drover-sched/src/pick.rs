//! Picking a backend for the next task: pure functions of the backends' load and an injected
//! RNG, so they are tested deterministically.
//!
//! - Round robin (the seed's `MultiVLLMClient.get_next_client()`): the next backend in turn,
//!   whatever its load.
//! - Power of two choices (Mitzenmacher, "The Power of Two Choices in Randomized Load
//!   Balancing", 2001; the balancer of Finagle and tower): sample two backends with spare
//!   capacity, take the less loaded by outstanding/limit. It avoids herding onto one "best"
//!   backend from stale load figures, costs O(1) whatever the fleet size, and — because every
//!   backend is filled to its own limit — gives each backend work in proportion to how fast
//!   it completes it.

use rand::RngExt;

/// Backends that can take a task now, kept both as a dense list (uniform sampling in O(1))
/// and as a bitset (next-in-turn in O(n/64)).
#[derive(Debug, Clone, Default)]
pub struct AvailSet {
    dense: Vec<u32>,
    pos: Vec<u32>,
    bits: Vec<u64>,
}

const ABSENT: u32 = u32::MAX;

impl AvailSet {
    /// Makes room for backend ids `< n`.
    pub fn grow(&mut self, n: usize) {
        if self.pos.len() < n {
            self.pos.resize(n, ABSENT);
            self.bits.resize(n.div_ceil(64), 0);
        }
    }

    /// Marks `id` available or not.
    pub fn set(&mut self, id: usize, available: bool) {
        self.grow(id + 1);
        let present = self.pos[id] != ABSENT;
        if available && !present {
            self.pos[id] = self.dense.len() as u32;
            self.dense.push(id as u32);
            self.bits[id / 64] |= 1 << (id % 64);
        } else if !available && present {
            let at = self.pos[id] as usize;
            let last = *self.dense.last().expect("present implies non-empty");
            self.dense.swap_remove(at);
            if last as usize != id {
                self.pos[last as usize] = at as u32;
            }
            self.pos[id] = ABSENT;
            self.bits[id / 64] &= !(1 << (id % 64));
        }
    }

    /// Whether `id` is available.
    pub fn contains(&self, id: usize) -> bool {
        self.pos.get(id).is_some_and(|&p| p != ABSENT)
    }

    /// How many are available.
    pub fn len(&self) -> usize {
        self.dense.len()
    }

    /// Whether none is available.
    pub fn is_empty(&self) -> bool {
        self.dense.is_empty()
    }

    /// The first available id at or after `from`, wrapping around.
    pub fn next_from(&self, from: usize) -> Option<usize> {
        if self.dense.is_empty() {
            return None;
        }
        let n = self.bits.len();
        let from = if from >= n * 64 { 0 } else { from };
        let (start_word, start_bit) = (from / 64, from % 64);
        // The starting word, masked to bits at or after `from`; then whole words; then the
        // starting word's low bits last.
        let masked = self.bits[start_word] & (!0u64 << start_bit);
        if masked != 0 {
            return Some(start_word * 64 + masked.trailing_zeros() as usize);
        }
        for k in 1..=n {
            let w = (start_word + k) % n;
            let word = if w == start_word {
                self.bits[w] & !(!0u64 << start_bit)
            } else {
                self.bits[w]
            };
            if word != 0 {
                return Some(w * 64 + word.trailing_zeros() as usize);
            }
        }
        None
    }

    /// A uniformly random available id.
    pub fn sample(&self, rng: &mut impl rand::Rng) -> Option<usize> {
        if self.dense.is_empty() {
            return None;
        }
        Some(self.dense[rng.random_range(0..self.dense.len())] as usize)
    }
}

/// Round robin over available backends, skipping `avoid` when another is available.
pub fn round_robin(avail: &AvailSet, cursor: &mut usize, avoid: Option<usize>) -> Option<usize> {
    let first = avail.next_from(*cursor)?;
    let pick = match avoid {
        Some(a) if a == first && avail.len() > 1 => avail.next_from(first + 1)?,
        _ => first,
    };
    *cursor = pick + 1;
    Some(pick)
}

/// Power of two choices: two distinct random candidates, the one with the lower `load(id)`
/// wins (ties go to the first sampled); `avoid` loses to any other candidate.
pub fn p2c(
    avail: &AvailSet,
    rng: &mut impl rand::Rng,
    avoid: Option<usize>,
    load: impl Fn(usize) -> f64,
) -> Option<usize> {
    let a = avail.sample(rng)?;
    if avail.len() == 1 {
        return Some(a);
    }
    let mut b = avail.sample(rng)?;
    // Redraw a few times for a distinct second candidate; in a 2-backend fleet that takes ~2 draws.
    for _ in 0..4 {
        if b != a {
            break;
        }
        b = avail.sample(rng)?;
    }
    let score = |id: usize| {
        if Some(id) == avoid {
            f64::INFINITY
        } else {
            load(id)
        }
    };
    Some(if score(b) < score(a) { b } else { a })
}

/// One backend as [`end_share`] sees it.
#[derive(Debug, Clone, Copy)]
pub struct ShareView {
    /// Requests it has in flight.
    pub in_flight: usize,
    /// Whether its limit is still being found (the adaptive controller's startup).
    pub growing: bool,
}

/// At the end of the input, the most requests one backend may hold while another is still
/// finding its limit: `share`, an even share of the work left (queued and in flight) over
/// `backends`.
///
/// Once every task is read, the tasks still queued go to whichever backends have room, and
/// with limits still ramping that is whichever controller stepped up first — over identical
/// instances a short job was split 415/415/415/256 a quarter of a second before the fourth
/// limit rose, and the biggest share set the job's end. Holding each backend to an even share
/// while some backend below it is still ramping waits at most for that backend's next startup
/// step (it then grows or settles, which lifts the cap), or 10 s without one. Shares weighted by measured
/// throughput were tried and are wrong for batch engines, whose throughput grows with their
/// batch: they fed the backend that already had the biggest. A backend that settles below its
/// share gets no reservation, so the others take the rest, and hedging evens out the tail of a
/// slower backend. `None`: no cap.
pub fn end_share(share: usize, backends: &[ShareView]) -> Option<usize> {
    if backends.len() < 2 || share == 0 {
        return None;
    }
    backends
        .iter()
        .any(|b| b.growing && b.in_flight < share)
        .then_some(share)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use rand::SeedableRng;
    use rand::rngs::SmallRng;

    #[test]
    fn avail_set_tracks_membership() {
        let mut s = AvailSet::default();
        for i in [3, 70, 5, 130] {
            s.set(i, true);
        }
        s.set(5, false);
        s.set(5, false);
        assert_eq!(s.len(), 3);
        assert!(s.contains(70) && !s.contains(5));
        assert_eq!(s.next_from(0), Some(3));
        assert_eq!(s.next_from(4), Some(70));
        assert_eq!(s.next_from(71), Some(130));
        assert_eq!(s.next_from(131), Some(3), "wraps");
    }

    #[test]
    fn round_robin_cycles_in_order_and_avoids() {
        let mut s = AvailSet::default();
        for i in 0..4 {
            s.set(i, true);
        }
        let mut cursor = 0;
        let picks: Vec<_> = (0..6)
            .map(|_| round_robin(&s, &mut cursor, None).unwrap())
            .collect();
        assert_eq!(picks, vec![0, 1, 2, 3, 0, 1]);
        assert_eq!(round_robin(&s, &mut cursor, Some(2)), Some(3));
        let mut one = AvailSet::default();
        one.set(7, true);
        assert_eq!(
            round_robin(&one, &mut cursor, Some(7)),
            Some(7),
            "the only backend is used even if avoided"
        );
    }

    #[test]
    fn p2c_prefers_the_less_loaded() {
        let mut s = AvailSet::default();
        for i in 0..8 {
            s.set(i, true);
        }
        let mut rng = SmallRng::seed_from_u64(7);
        let loads = [0.9, 0.1, 0.9, 0.9, 0.9, 0.9, 0.9, 0.9];
        let hits = (0..2000)
            .filter(|_| p2c(&s, &mut rng, None, |i| loads[i]) == Some(1))
            .count();
        // Backend 1 wins whenever it is one of the two candidates: ~2/8 of the time.
        assert!((400..600).contains(&hits), "{hits}");
        let never = (0..500)
            .filter(|_| p2c(&s, &mut rng, Some(1), |i| loads[i]) == Some(1))
            .count();
        assert!(
            never < 30,
            "avoided backend only wins when drawn twice: {never}"
        );
    }

    #[test]
    fn end_share_holds_back_work_for_a_backend_still_ramping() {
        let v = |in_flight, growing| ShareView { in_flight, growing };
        // 1,500 tasks over four identical instances (375 each); three limits rose to 512, the
        // fourth is still at 256: each may hold 375, so the fourth's share waits for its next step.
        let ramping = [v(256, true), v(256, true), v(256, true), v(256, true)];
        assert_eq!(end_share(375, &ramping), Some(375));
        // Every backend settled: no cap, whatever the split.
        let settled = [v(500, false), v(500, false), v(256, false), v(244, false)];
        assert_eq!(end_share(375, &settled), None);
        // The only ramping backend already holds its share: nothing to reserve.
        let full = [v(400, false), v(400, false), v(325, false), v(375, true)];
        assert_eq!(end_share(375, &full), None);
        // A settled backend below its share reserves nothing; a ramping one does (1,050 tasks
        // over four: 263 each).
        let one = [v(100, false), v(375, false), v(375, false), v(200, true)];
        assert_eq!(end_share(263, &one), Some(263));
        assert_eq!(end_share(0, &ramping), None);
        assert_eq!(
            end_share(10, &[v(0, true)]),
            None,
            "one backend: nothing to share"
        );
    }

    proptest! {
        /// Whatever the membership changes, the set's views agree with a model.
        #[test]
        fn avail_set_matches_model(ops in proptest::collection::vec((0usize..200, any::<bool>()), 0..300), from in 0usize..200) {
            let mut s = AvailSet::default();
            let mut model = std::collections::BTreeSet::new();
            for (id, on) in ops {
                s.set(id, on);
                if on { model.insert(id); } else { model.remove(&id); }
            }
            prop_assert_eq!(s.len(), model.len());
            let expect = model.range(from..).next().or_else(|| model.iter().next()).copied();
            prop_assert_eq!(s.next_from(from), expect);
            let mut rng = SmallRng::seed_from_u64(1);
            if let Some(x) = s.sample(&mut rng) { prop_assert!(model.contains(&x)); }
        }
    }
}
