//! Tail hedging: once the input is used up and backends fall idle, the stragglers still in
//! flight elsewhere are sent again to the idle ones; the first answer wins and the other
//! attempt is cancelled ("The Tail at Scale", Dean & Barroso, CACM 2013).
//!
//! Not every old request is worth a copy. A request is hedged when, by the latencies each
//! backend has shown, it should finish sooner on the idle backend than where it is (a slow
//! backend's share at the end of a heterogeneous run), or when it has run far past what its
//! backend normally takes (a hung request).

use std::time::Duration;

/// A request in flight that could be hedged.
#[derive(Debug, Clone, PartialEq)]
pub struct Candidate {
    /// The attempt's id.
    pub attempt: u64,
    /// How long it has been in flight.
    pub age: Duration,
    /// What its backend usually takes for a request (latency EWMA), if known.
    pub expected: Option<Duration>,
    /// Whether its backend's live token count (server counter or streamed tokens) moved
    /// lately. Such a request is not hung: it is only older than the backend's history, which
    /// says little once its batch has grown (the first small-batch answers of a job come back
    /// in seconds, a full batch of a slow engine in a minute). Hung ones there are left to the
    /// attempt deadline, which a stream only outlives while it produces tokens.
    pub progressing: bool,
}

/// Hedge when the copy is expected to win by this factor.
const WIN_FACTOR: f64 = 1.25;
/// Hedge any request older than this many times its backend's usual latency.
const STRAGGLER_FACTOR: f64 = 3.0;

/// Picks up to `slots` attempts to hedge, most promising first. `idle_expected` is the usual
/// latency of the idle backends; `fleet_expected` stands in for backends with no history.
pub fn choose(
    mut candidates: Vec<Candidate>,
    idle_expected: Duration,
    fleet_expected: Duration,
    slots: usize,
) -> Vec<u64> {
    if slots == 0 {
        return Vec::new();
    }
    let idle = idle_expected.as_secs_f64();
    let mut scored: Vec<(f64, u64)> = candidates
        .drain(..)
        .filter_map(|c| {
            let expected = c.expected.unwrap_or(fleet_expected).as_secs_f64();
            let age = c.age.as_secs_f64();
            let remaining = (expected - age).max(0.0);
            let straggler = !c.progressing && age > STRAGGLER_FACTOR * expected.max(idle);
            (remaining > WIN_FACTOR * idle || straggler)
                .then_some((remaining.max(age - expected), c.attempt))
        })
        .collect();
    scored.sort_by(|a, b| b.0.total_cmp(&a.0));
    scored.into_iter().take(slots).map(|(_, a)| a).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn c(attempt: u64, age_ms: u64, expected_ms: Option<u64>) -> Candidate {
        Candidate {
            attempt,
            age: Duration::from_millis(age_ms),
            expected: expected_ms.map(Duration::from_millis),
            progressing: false,
        }
    }

    const S: Duration = Duration::from_secs(1);

    #[test]
    fn slow_backends_tasks_move_to_fast_idle_ones() {
        // Slow backend takes 3 s, the idle ones 1 s: a 0.5 s old request has 2.5 s to go.
        let picked = choose(
            vec![
                c(1, 500, Some(3000)),
                c(2, 2500, Some(3000)),
                c(3, 200, Some(1000)),
            ],
            S,
            S,
            10,
        );
        assert_eq!(
            picked,
            vec![1],
            "only the request with far more than 1.25 s left"
        );
    }

    #[test]
    fn equal_backends_at_the_tail_are_left_alone() {
        let picked = choose(vec![c(1, 100, Some(1000)), c(2, 900, Some(1000))], S, S, 10);
        assert!(picked.is_empty());
    }

    #[test]
    fn hung_requests_are_hedged_even_without_history() {
        let picked = choose(vec![c(7, 3500, None), c(8, 500, None)], S, S, 10);
        assert_eq!(picked, vec![7]);
        assert!(
            choose(vec![c(7, 3500, None)], S, S, 0).is_empty(),
            "no idle slot, no hedge"
        );
    }

    #[test]
    fn old_requests_of_a_backend_still_producing_tokens_are_not_hung() {
        // The backend's early answers took 5 s; its full batch now takes a minute and its
        // tokens keep coming: a 20 s old request is no straggler.
        let busy = Candidate {
            progressing: true,
            ..c(1, 20_000, Some(5000))
        };
        assert!(choose(vec![busy.clone()], S, S, 10).is_empty());
        // The same request on a backend whose tokens stopped is hedged.
        let stuck = Candidate {
            progressing: false,
            ..busy
        };
        assert_eq!(choose(vec![stuck], S, S, 10), vec![1]);
    }

    #[test]
    fn most_promising_first_and_capped() {
        let picked = choose(
            vec![
                c(1, 0, Some(2000)),
                c(2, 0, Some(5000)),
                c(3, 0, Some(4000)),
            ],
            S,
            S,
            2,
        );
        assert_eq!(picked, vec![2, 3]);
    }
}
