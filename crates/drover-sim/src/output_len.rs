//! Output-length distributions (`--output-len`), for requests that do not fix `max_tokens`.

use std::fmt;
use std::str::FromStr;

/// How many tokens a request generates when its length is not set by `max_tokens`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutputLen {
    /// Always this many tokens.
    Fixed(u32),
    /// Uniform over `lo..=hi` tokens.
    Uniform(u32, u32),
}

impl OutputLen {
    /// The length for a uniformly distributed 64-bit draw `u`.
    pub fn draw(self, u: u64) -> u32 {
        match self {
            OutputLen::Fixed(n) => n,
            OutputLen::Uniform(lo, hi) => lo + (u % (u64::from(hi - lo) + 1)) as u32,
        }
    }
}

impl FromStr for OutputLen {
    type Err = String;

    /// `fixed:N`, `uniform:LO-HI`, or a bare `N`.
    fn from_str(s: &str) -> Result<OutputLen, String> {
        let bad = || {
            format!("{s:?} is not an output length: use fixed:N or uniform:LO-HI (tokens, N >= 1)")
        };
        let positive = |t: &str| t.trim().parse::<u32>().ok().filter(|&n| n >= 1);
        let (kind, rest) = s.split_once(':').unwrap_or(("fixed", s));
        match kind {
            "fixed" => positive(rest).map(OutputLen::Fixed).ok_or_else(bad),
            "uniform" => {
                let (lo, hi) = rest.split_once('-').ok_or_else(bad)?;
                match (positive(lo), positive(hi)) {
                    (Some(lo), Some(hi)) if lo <= hi => Ok(OutputLen::Uniform(lo, hi)),
                    _ => Err(bad()),
                }
            }
            _ => Err(bad()),
        }
    }
}

impl fmt::Display for OutputLen {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            OutputLen::Fixed(n) => write!(f, "fixed:{n}"),
            OutputLen::Uniform(lo, hi) => write!(f, "uniform:{lo}-{hi}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_draws() {
        assert_eq!("fixed:200".parse(), Ok(OutputLen::Fixed(200)));
        assert_eq!("64".parse(), Ok(OutputLen::Fixed(64)));
        let u: OutputLen = "uniform:50-400".parse().unwrap();
        assert_eq!(u, OutputLen::Uniform(50, 400));
        assert_eq!(u.to_string(), "uniform:50-400");
        for x in [0u64, 1, 350, 351, u64::MAX] {
            assert!((50..=400).contains(&u.draw(x)));
        }
        assert_eq!(u.draw(350), 400);
        for bad in ["fixed:0", "uniform:5-1", "uniform:5", "normal:3", "x"] {
            assert!(
                bad.parse::<OutputLen>().unwrap_err().contains("fixed:N"),
                "{bad}"
            );
        }
    }
}
