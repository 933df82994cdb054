//! `--shard i/n`: a deterministic split of one input among n dispatchers.

use std::fmt;
use std::str::FromStr;

use drover_types::IdHash;

/// Shard `index` of `count`, 0-based.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shard {
    /// This dispatcher's share, `0..count`.
    pub index: u64,
    /// How many dispatchers split the input.
    pub count: u64,
}

/// A `--shard` value that is not `i/n` with `0 <= i < n`.
#[derive(Debug, thiserror::Error)]
#[error("invalid --shard {0:?}: expected i/n with 0 <= i < n, e.g. 0/4 … 3/4")]
pub struct ShardError(String);

impl Shard {
    /// Whether a task with this custom_id digest belongs to this shard. Depends only on the
    /// custom_id, so the n shards together cover every task exactly once, whatever the order.
    pub fn owns(&self, id: IdHash) -> bool {
        // Multiply-shift instead of modulo keeps all 64 bits of the digest in play.
        ((u128::from(id) * u128::from(self.count)) >> 64) as u64 == self.index
    }
}

impl FromStr for Shard {
    type Err = ShardError;

    fn from_str(s: &str) -> Result<Self, ShardError> {
        let err = || ShardError(s.to_string());
        let (i, n) = s.split_once('/').ok_or_else(err)?;
        let index: u64 = i.trim().parse().map_err(|_| err())?;
        let count: u64 = n.trim().parse().map_err(|_| err())?;
        if count == 0 || index >= count {
            return Err(err());
        }
        Ok(Shard { index, count })
    }
}

impl fmt::Display for Shard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.index, self.count)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use drover_types::id_hash;

    #[test]
    fn shards_partition_the_ids() {
        let shards: Vec<Shard> = (0..5).map(|i| Shard { index: i, count: 5 }).collect();
        let mut per = [0u32; 5];
        for k in 0..10_000 {
            let h = id_hash(&format!("task-{k}"));
            let owners: Vec<_> = shards.iter().filter(|s| s.owns(h)).collect();
            assert_eq!(owners.len(), 1);
            per[owners[0].index as usize] += 1;
        }
        // Balanced within a few percent.
        assert!(per.iter().all(|&c| (1800..2200).contains(&c)), "{per:?}");
    }

    #[test]
    fn parses_and_rejects() {
        assert_eq!(
            "2/4".parse::<Shard>().unwrap(),
            Shard { index: 2, count: 4 }
        );
        for bad in ["4/4", "1", "a/b", "0/0", "-1/3"] {
            let e = bad.parse::<Shard>().unwrap_err().to_string();
            assert!(e.contains("--shard"), "{e}");
        }
    }
}
