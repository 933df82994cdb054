//! Seeded, lock-free random draws: the n-th draw of a stream is a hash of (seed, n).
//!
//! Each instance owns its streams, so a run is reproducible for a given seed and arrival order,
//! and drawing costs one atomic increment (the `instant` path draws per request).

use std::sync::atomic::{AtomicU64, Ordering};

use crate::engine::mix64;

/// A stream of uniformly distributed 64-bit numbers.
#[derive(Debug)]
pub struct Draws {
    seed: u64,
    counter: AtomicU64,
}

impl Draws {
    /// Stream `stream` of `seed` (different purposes use different streams).
    pub fn new(seed: u64, stream: u64) -> Draws {
        Draws {
            seed: mix64(seed ^ mix64(stream)),
            counter: AtomicU64::new(0),
        }
    }

    /// The next number.
    pub fn next_u64(&self) -> u64 {
        mix64(
            self.seed
                ^ self
                    .counter
                    .fetch_add(1, Ordering::Relaxed)
                    .wrapping_mul(0x9e37_79b9_7f4a_7c15),
        )
    }

    /// The next number in [0, 1).
    pub fn next_f64(&self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seeded_and_roughly_uniform() {
        let a: Vec<u64> = (0..5)
            .map({
                let d = Draws::new(1, 0);
                move |_| d.next_u64()
            })
            .collect();
        let b: Vec<u64> = (0..5)
            .map({
                let d = Draws::new(1, 0);
                move |_| d.next_u64()
            })
            .collect();
        assert_eq!(a, b);
        let other = Draws::new(2, 0);
        assert_ne!(a[0], other.next_u64());
        let d = Draws::new(3, 1);
        let below: usize = (0..10_000).filter(|_| d.next_f64() < 0.25).count();
        assert!((2200..2800).contains(&below), "{below}");
    }
}
