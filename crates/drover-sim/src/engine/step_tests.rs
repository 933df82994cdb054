//! Unit tests of the step function: no clock, no runtime.

use std::time::Duration;

use super::*;
use crate::engine::seq::chain_hash;
use crate::params::StepCosts;

fn params() -> Params {
    Params {
        max_model_len: 4096,
        kv_bytes_per_token: 1000.0,
        weight_bytes: 1e9,
        active_params: 1e9,
        hbm_bw: 1e12, // W/BW = 1 ms
        kv_bw: 1e9,   // 1 µs per context token
        flops: 2e13,  // 2P/F = 100 µs per token
        t_fixed: Duration::from_micros(500),
        t_seq: Duration::from_micros(10),
        api_overhead: Duration::ZERO,
        api_overhead_jitter: 0.0,
        block_size: 16,
        num_kv_blocks: 1000,
        max_num_seqs: 256,
        max_num_batched_tokens: 2048,
        long_prefill_token_threshold: 0,
        enable_prefix_caching: true,
        max_num_queued_reqs: 0,
        batch_curve: Vec::new(),
        idle_wake: Duration::ZERO,
        idle_after: Duration::ZERO,
    }
}

/// A request whose prompt tokens are `seed, seed+1, …` (same seed = same prompt).
fn request(prompt: u32, output: u32, seed: u64) -> NewSeq {
    let ids: Vec<u64> = (0..u64::from(prompt))
        .map(|t| seed * 1_000_000 + t)
        .collect();
    let mut block_hashes = Vec::new();
    let mut prev = 0;
    for block in ids.chunks_exact(16) {
        prev = chain_hash(prev, block.iter().copied());
        block_hashes.push(prev);
    }
    let tail_ids = ids[block_hashes.len() * 16..].to_vec();
    NewSeq {
        prompt_tokens: prompt,
        output_tokens: output,
        block_hashes,
        tail_ids,
        output_seed: seed,
    }
}

fn formula(p: &Params, tokens: u64, seqs: u64, context: u64) -> f64 {
    StepCosts::of(p).step_seconds(tokens, seqs, context)
}

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() < 1e-12
}

#[test]
fn idle_engine_takes_no_time() {
    let mut s = EngineState::new(&params());
    assert!(!s.has_work());
    assert_eq!(step(&mut s, &params()), StepOutcome::default());
}

#[test]
fn running_sequences_decode_together_and_step_time_follows_the_formula() {
    let p = params();
    let mut s = EngineState::new(&p);
    for id in 0..4 {
        s.add(id, request(32, 3, id));
    }
    // Prefill of all four in one step: each samples its first token.
    let prefill = step(&mut s, &p);
    assert_eq!(
        (prefill.batch, prefill.tokens, prefill.context),
        (4, 128, 128)
    );
    assert_eq!(prefill.emitted, vec![0, 1, 2, 3]);
    assert!(close(
        prefill.seconds,
        0.5e-3 + (128.0 * 100e-6f64).max(1e-3) + 128.0 * 1e-6 + 4.0 * 10e-6
    ));
    // Decode: one token each, context 33 each; weight-bound (4 tokens · 100 µs < 1 ms).
    let decode = step(&mut s, &p);
    assert_eq!((decode.batch, decode.tokens, decode.context), (4, 4, 132));
    assert!(close(
        decode.seconds,
        0.5e-3 + 1e-3 + 132.0 * 1e-6 + 4.0 * 10e-6
    ));
    assert!(close(decode.seconds, formula(&p, 4, 4, 132)));
    // One sequence alone decodes faster: the step grows with the batch per the formula.
    let mut alone = EngineState::new(&p);
    alone.add(9, request(32, 3, 9));
    step(&mut alone, &p);
    let single = step(&mut alone, &p);
    assert!(close(
        decode.seconds - single.seconds,
        3.0 * (33.0 * 1e-6 + 10e-6)
    ));
    let last = step(&mut s, &p);
    assert_eq!(last.finished.len(), 4);
    assert!(last.finished.iter().all(|f| f.output_tokens == 3));
    assert!(!s.has_work());
    assert_eq!(s.used_blocks(), 0, "finished requests free their blocks");
}

#[test]
fn chunked_prefill_stays_within_the_token_budget() {
    let p = Params {
        max_num_batched_tokens: 64,
        ..params()
    };
    let mut s = EngineState::new(&p);
    s.add(1, request(20, 10, 1));
    step(&mut s, &p); // 1's prefill
    s.add(2, request(150, 2, 2));
    // 1 decodes (1 token) first; 2 gets the remaining 63-token chunk.
    let a = step(&mut s, &p);
    assert_eq!((a.tokens, a.batch), (64, 2));
    assert_eq!(a.emitted, vec![1], "an unfinished prefill samples nothing");
    assert_eq!(s.computed_tokens(2), Some(63));
    let b = step(&mut s, &p);
    assert_eq!(b.tokens, 64);
    assert_eq!(s.computed_tokens(2), Some(126));
    let c = step(&mut s, &p);
    assert_eq!(c.tokens, 1 + 24);
    assert_eq!(
        c.emitted,
        vec![1, 2],
        "the last chunk samples the first token"
    );
    assert_eq!(
        c.context,
        23 + 150,
        "attention reads each sequence's whole context"
    );
}

#[test]
fn long_prefill_threshold_caps_each_chunk() {
    let p = Params {
        long_prefill_token_threshold: 40,
        ..params()
    };
    let mut s = EngineState::new(&p);
    s.add(1, request(100, 1, 1));
    assert_eq!(step(&mut s, &p).tokens, 40);
}

#[test]
fn max_num_seqs_caps_the_batch_and_the_rest_waits() {
    let p = Params {
        max_num_seqs: 2,
        ..params()
    };
    let mut s = EngineState::new(&p);
    for id in 0..5 {
        s.add(id, request(16, 4, id));
    }
    let out = step(&mut s, &p);
    assert_eq!(out.batch, 2);
    assert_eq!((s.running(), s.waiting()), (2, 3));
}

/// Six 16-token blocks; two requests with 2-block prompts growing into a third block each.
fn tight() -> Params {
    Params {
        num_kv_blocks: 6,
        enable_prefix_caching: false,
        ..params()
    }
}

#[test]
fn preempts_the_newest_when_kv_is_full_and_recomputes_from_zero() {
    let p = tight();
    let mut s = EngineState::new(&p);
    s.add(1, request(32, 40, 1));
    s.add(2, request(32, 40, 2));
    step(&mut s, &p); // both prefilled: 4 blocks, 1 token each
    // Tokens 33..48 need a third block each: 6 blocks.
    let mut steps = 0;
    let preempting = loop {
        let out = step(&mut s, &p);
        steps += 1;
        assert!(steps < 40, "no preemption happened");
        if !out.preempted.is_empty() {
            break out;
        }
    };
    // Request 1 needed a fourth block; the newest (2) gave its blocks back.
    assert_eq!(preempting.preempted, vec![2]);
    assert_eq!(preempting.emitted, vec![1]);
    assert_eq!(
        s.computed_tokens(2),
        Some(0),
        "preemption discards the KV: recompute"
    );
    let generated = s.output_tokens(2).unwrap();
    assert!(generated > 0, "generated tokens are kept");
    assert_eq!((s.running(), s.waiting()), (1, 1));
    assert_eq!(s.preemptions, 1);
    // 1 keeps its blocks; 2 needs 4 blocks to recompute and gets them once 1 has finished.
    let resume = loop {
        let out = step(&mut s, &p);
        if s.computed_tokens(2).is_some_and(|c| c > 0) {
            break out;
        }
    };
    assert_eq!(
        resume.tokens,
        32 + generated,
        "prompt and generated tokens are recomputed"
    );
    assert_eq!(s.output_tokens(2), Some(generated + 1));
}

#[test]
fn no_admission_in_a_step_that_preempted() {
    let p = Params {
        num_kv_blocks: 6,
        ..params()
    };
    let mut s = EngineState::new(&p);
    // Same 64-token prompt: once 1's blocks are cached, 2 shares three of them.
    s.add(1, request(64, 100, 7));
    s.add(2, request(64, 100, 7));
    let first = step(&mut s, &p);
    assert_eq!(
        (first.batch, s.waiting()),
        (1, 1),
        "2 does not fit before 1's blocks are cached"
    );
    let second = step(&mut s, &p);
    assert_eq!(
        second.tokens,
        1 + 16,
        "2 hits 3 shared blocks and computes its last 16 tokens"
    );
    assert_eq!(s.used_blocks(), 6);
    // 2 needs a 5th block for its first decode: none is free, so it preempts itself.
    let third = step(&mut s, &p);
    assert_eq!(third.preempted, vec![2]);
    assert_eq!(third.emitted, vec![1]);
    assert_eq!(
        s.waiting(),
        1,
        "2 would fit again (shared and cached blocks), but not in this step"
    );
    let fourth = step(&mut s, &p);
    assert!(fourth.preempted.is_empty());
    assert_eq!(
        fourth.emitted,
        vec![1, 2],
        "admission resumes on the next step"
    );
    assert_eq!(
        fourth.tokens,
        1 + 1,
        "2 recomputes only its uncached last token"
    );
}

#[test]
fn prefix_cache_hits_skip_the_prefill_of_full_blocks() {
    let p = params();
    let mut s = EngineState::new(&p);
    s.add(1, request(40, 1, 7));
    let first = step(&mut s, &p);
    assert_eq!(first.tokens, 40);
    assert_eq!(first.finished[0].cached_tokens, 0);
    // Same prompt again: 2 full blocks (32 tokens) hit, 8 tokens computed.
    s.add(2, request(40, 1, 7));
    let second = step(&mut s, &p);
    assert_eq!(second.tokens, 8);
    assert_eq!(second.context, 40);
    assert_eq!(second.finished[0].cached_tokens, 32);
    assert_eq!((s.prefix_queries, s.prefix_hits), (80, 32));
    // A prompt of exactly two blocks hits only one: its last token must be recomputed.
    s.add(3, request(32, 1, 7));
    assert_eq!(step(&mut s, &p).tokens, 16);
    // A different prompt hits nothing.
    s.add(4, request(40, 1, 8));
    assert_eq!(step(&mut s, &p).tokens, 40);
}

#[test]
fn prefix_caching_off_computes_everything() {
    let p = Params {
        enable_prefix_caching: false,
        ..params()
    };
    let mut s = EngineState::new(&p);
    s.add(1, request(40, 1, 7));
    step(&mut s, &p);
    s.add(2, request(40, 1, 7));
    assert_eq!(step(&mut s, &p).tokens, 40);
    assert_eq!(s.prefix_queries, 0);
}

#[test]
fn overload_only_queues_and_every_request_finishes() {
    let p = Params {
        max_num_seqs: 8,
        num_kv_blocks: 64,
        ..params()
    };
    let mut s = EngineState::new(&p);
    for id in 0..100 {
        s.add(id, request(50, 20, id));
    }
    let mut finished = 0;
    let mut max_waiting = 0;
    for _ in 0..10_000 {
        if !s.has_work() {
            break;
        }
        let out = step(&mut s, &p);
        assert!(s.running() <= 8);
        max_waiting = max_waiting.max(s.waiting());
        finished += out.finished.len();
        assert!(out.finished.iter().all(|f| f.output_tokens == 20));
    }
    assert_eq!(finished, 100, "no request is ever rejected or lost");
    assert!(max_waiting >= 90);
}

#[test]
fn abort_frees_blocks_anywhere() {
    let p = Params {
        max_num_seqs: 1,
        ..params()
    };
    let mut s = EngineState::new(&p);
    s.add(1, request(64, 10, 1));
    s.add(2, request(64, 10, 2));
    step(&mut s, &p);
    assert!(s.used_blocks() > 0);
    assert!(s.abort(2), "waiting");
    assert!(s.abort(1), "running");
    assert!(!s.abort(1));
    assert_eq!(s.used_blocks(), 0);
    assert!(!s.has_work());
}

#[test]
fn steps_are_deterministic() {
    let run = || {
        let p = Params {
            num_kv_blocks: 40,
            max_num_batched_tokens: 100,
            ..params()
        };
        let mut s = EngineState::new(&p);
        for id in 0..30 {
            s.add(
                id,
                request(20 + (id as u32 * 7) % 90, 5 + (id as u32 * 3) % 40, id % 4),
            );
        }
        let mut trace = Vec::new();
        while s.has_work() {
            trace.push(step(&mut s, &p));
        }
        trace
    };
    let a = run();
    assert!(
        a.iter().any(|o| !o.preempted.is_empty()),
        "the scenario exercises preemption"
    );
    assert_eq!(a, run());
}

mod properties {
    use proptest::prelude::*;

    use super::*;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        /// Whatever the load and limits: every request finishes with exactly its output length,
        /// no step exceeds the token budget or the batch cap, and the KV cache never overflows.
        #[test]
        fn every_request_finishes_within_the_limits(
            requests in prop::collection::vec((1u32..200, 1u32..60, 0u64..4), 1..40),
            max_num_seqs in 1u32..16,
            budget in 16u32..256,
            spare_blocks in 0u32..40,
            caching in any::<bool>(),
            threshold in prop::sample::select(vec![0u32, 24]),
        ) {
            // Enough blocks for the largest request alone, plus some.
            let largest = requests.iter().map(|&(p, o, _)| (p + o).div_ceil(16)).max().unwrap();
            let p = Params {
                max_num_seqs,
                max_num_batched_tokens: budget,
                num_kv_blocks: largest + spare_blocks,
                enable_prefix_caching: caching,
                long_prefill_token_threshold: threshold,
                ..params()
            };
            let mut s = EngineState::new(&p);
            for (id, &(prompt, output, seed)) in requests.iter().enumerate() {
                s.add(id as u64, request(prompt, output, seed));
            }
            let mut generated = vec![0u32; requests.len()];
            let mut finished = vec![false; requests.len()];
            let mut steps = 0;
            while s.has_work() {
                let out = step(&mut s, &p);
                steps += 1;
                prop_assert!(steps < 100_000, "no progress");
                prop_assert!(out.tokens <= budget);
                prop_assert!(out.batch <= max_num_seqs);
                prop_assert!(s.running() as u32 <= max_num_seqs);
                prop_assert!(s.used_blocks() <= p.num_kv_blocks);
                for &id in &out.emitted {
                    generated[id as usize] += 1;
                }
                for f in &out.finished {
                    prop_assert!(!finished[f.id as usize]);
                    finished[f.id as usize] = true;
                    prop_assert_eq!(f.output_tokens, requests[f.id as usize].1);
                }
            }
            prop_assert!(finished.iter().all(|&f| f));
            for (id, &(_, output, _)) in requests.iter().enumerate() {
                prop_assert_eq!(generated[id], output, "request {}", id);
            }
            prop_assert_eq!(s.used_blocks(), 0);
        }
    }
}

#[test]
fn a_batch_curve_replaces_the_per_step_and_per_sequence_terms() {
    let ms = |x: u64| Duration::from_millis(x);
    let p = Params {
        batch_curve: vec![(1, ms(40)), (4, ms(100)), (64, ms(160))],
        ..params()
    };
    let work = |tokens: u64, context: u64| StepCosts::of(&p).work_seconds(tokens, context);
    // At, between, below and beyond the measured points (beyond: the last segment's slope).
    for (seqs, curve) in [
        (1, 0.040),
        (4, 0.100),
        (34, 0.130),
        (64, 0.160),
        (124, 0.220),
    ] {
        let got = p.step_seconds(seqs, seqs, 100);
        assert!(close(got, curve + work(seqs, 100)), "B={seqs}: {got}");
    }
    // Two decoding sequences: the step follows the curve at B = 2 (60 ms), not t_fixed + 2·t_seq.
    let mut s = EngineState::new(&p);
    s.add(1, request(16, 4, 1));
    s.add(2, request(16, 4, 2));
    step(&mut s, &p);
    let o = step(&mut s, &p);
    assert_eq!(o.batch, 2);
    assert!(close(o.seconds, 0.060 + work(2, 34)), "{}", o.seconds);
}
