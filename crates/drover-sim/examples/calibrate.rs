//! Calibration of the simulator against vllm-facts §6 ("Calibration checks"), over HTTP.
//!
//! Starts one simulated instance in this process per measurement and drives it with closed-loop
//! streaming clients at a fixed concurrency C (each client sends its next request as soon as the
//! previous one ends). Prompts are random text (no prefix-cache hits) of ISL·4 characters sent to
//! `/v1/completions` (so the prompt is exactly ISL tokens) with `max_tokens` = OSL; both get ±6%
//! uniform jitter so that requests do not move in lock-step, as in the spec's model runs.
//!
//! Time: the instance runs `--time-scale S` (default 0.25, four times faster than real time) and
//! every wall-clock measurement is divided by S, so the table is in simulated (= real GPU) time.
//! Throughput counts tokens that arrive inside the measuring window; TPOT is the decode time inside
//! the window over the inter-token intervals inside it (mean over all intervals, and the median of
//! per-request values); TTFT is over requests that start inside it.
//!
//! Run: `cargo run --release -p drover-sim --example calibrate [-- --time-scale 0.25] [--quick]`
//! (or `bench/sim/calibrate.sh`). Exits 1 if a check is outside its tolerance (±20%).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use drover_sim::{Fleet, SimConfig};
use tokio::sync::Mutex;

struct Opts {
    time_scale: f64,
    /// Shorter windows: a smoke run, noisier numbers.
    quick: bool,
    /// Run only these checks (1-5); all when empty.
    only: Vec<u32>,
}

/// What one closed-loop run measured, in simulated time.
#[derive(Debug, Clone, Default)]
struct Measured {
    /// Output tokens per simulated second.
    tok_s: f64,
    /// Mean time per output token (decode time over inter-token intervals, all requests), s.
    tpot: f64,
    /// Median time per output token, s.
    tpot_p50: f64,
    /// Mean time to first token, s.
    ttft: f64,
    /// Highest `vllm:num_requests_waiting` seen / its time average.
    max_waiting: f64,
    mean_waiting: f64,
    /// Highest `vllm:num_requests_running` seen.
    max_running: f64,
    /// Non-200 answers.
    failures: u64,
    /// Requests that finished.
    finished: usize,
}

/// One request, as the client saw it.
struct Sample {
    start: Instant,
    /// First token (end of prefill).
    first: Option<Instant>,
    /// Whether `[DONE]` arrived (else: cut at the end of the run).
    complete: bool,
    /// Decode tokens inside the window: the first one's arrival, the last one's, and the
    /// number of inter-token intervals between them.
    decode_first: Option<Instant>,
    decode_last: Option<Instant>,
    intervals: u64,
}

/// Prompt and output lengths of the requests.
#[derive(Clone, Copy)]
enum Lengths {
    /// ISL/OSL with ±6% uniform jitter (the spec's §3.4 model runs).
    Jitter(u32, u32),
    /// Log-normal lengths with these means and a coefficient of variation of 0.8, a stand-in for
    /// ShareGPT's long-tailed conversations (the spec's §3.2 validation against the real sweep).
    ShareGpt(u32, u32),
}

impl Lengths {
    fn means(self) -> (u32, u32) {
        match self {
            Lengths::Jitter(i, o) | Lengths::ShareGpt(i, o) => (i, o),
        }
    }

    fn draw(self, rng: &mut u64) -> (u32, u32) {
        let mut uniform = || {
            *rng = next(*rng);
            ((*rng >> 11) as f64 + 0.5) / (1u64 << 53) as f64
        };
        match self {
            Lengths::Jitter(i, o) => {
                let mut j =
                    |x: u32| ((f64::from(x) * (0.94 + 0.12 * uniform())).round() as u32).max(1);
                (j(i), j(o))
            }
            Lengths::ShareGpt(i, o) => {
                let sigma2 = (1.0f64 + 0.8 * 0.8).ln();
                let mut ln = |mean: u32, cap: f64| {
                    let z =
                        (-2.0 * uniform().ln()).sqrt() * (std::f64::consts::TAU * uniform()).cos();
                    let x = ((f64::from(mean)).ln() - sigma2 / 2.0 + sigma2.sqrt() * z).exp();
                    x.clamp(4.0, cap).round() as u32
                };
                (ln(i, 1024.0), ln(o, 2048.0))
            }
        }
    }
}

/// Closed-loop streaming clients against `url` for `warmup + window` (simulated seconds).
async fn closed_loop(
    url: &str,
    c: usize,
    lengths: Lengths,
    warmup: f64,
    window: f64,
    scale: f64,
) -> Measured {
    let client = reqwest::Client::builder()
        .no_proxy()
        .pool_max_idle_per_host(c + 8)
        .build()
        .unwrap();
    let t0 = Instant::now() + Duration::from_secs_f64(warmup * scale);
    let t1 = t0 + Duration::from_secs_f64(window * scale);
    let stop = Arc::new(AtomicBool::new(false));
    let tokens_in_window = Arc::new(AtomicU64::new(0));
    let failures = Arc::new(AtomicU64::new(0));
    let samples = Arc::new(Mutex::new(Vec::<Sample>::new()));
    let mut workers = Vec::new();
    for w in 0..c {
        let (client, url, stop) = (client.clone(), url.to_string(), stop.clone());
        let (tokens_in_window, failures, samples) =
            (tokens_in_window.clone(), failures.clone(), samples.clone());
        workers.push(tokio::spawn(async move {
            let mut rng = next(w as u64 + 1);
            let mut n = 0u64;
            while !stop.load(Ordering::Relaxed) {
                let (i, o) = lengths.draw(&mut rng);
                let prompt = random_text(&mut rng, i as usize * 4, w, n);
                n += 1;
                let body = serde_json::json!({"prompt": prompt, "max_tokens": o, "stream": true});
                let start = Instant::now();
                let Ok(mut response) = client
                    .post(format!("{url}/v1/completions"))
                    .json(&body)
                    .send()
                    .await
                else {
                    failures.fetch_add(1, Ordering::Relaxed);
                    continue;
                };
                if response.status() != 200 {
                    failures.fetch_add(1, Ordering::Relaxed);
                    continue;
                }
                let mut sample = Sample {
                    start,
                    first: None,
                    complete: false,
                    decode_first: None,
                    decode_last: None,
                    intervals: 0,
                };
                while let Ok(Some(chunk)) = response.chunk().await {
                    let now = Instant::now();
                    let text = String::from_utf8_lossy(&chunk);
                    let mut k = text.matches("\"text\":").count() as u64;
                    if k > 0 && sample.first.is_none() {
                        sample.first = Some(now);
                        k -= 1;
                    }
                    if k > 0 && now >= t0 && now < t1 {
                        tokens_in_window.fetch_add(k, Ordering::Relaxed);
                        match sample.decode_first {
                            None => {
                                sample.decode_first = Some(now);
                                sample.intervals = k - 1;
                            }
                            Some(_) => sample.intervals += k,
                        }
                        sample.decode_last = Some(now);
                    }
                    if text.contains("[DONE]") {
                        sample.complete = true;
                    }
                    if stop.load(Ordering::Relaxed) {
                        break;
                    }
                }
                samples.lock().await.push(sample);
            }
        }));
    }
    // Watch the gauges meanwhile.
    let (mut max_waiting, mut sum_waiting, mut polls, mut max_running) = (0f64, 0f64, 0u32, 0f64);
    while Instant::now() < t1 {
        if let Ok(r) = client.get(format!("{url}/metrics")).send().await
            && let Ok(text) = r.text().await
        {
            let waiting = gauge(&text, "vllm:num_requests_waiting");
            max_running = max_running.max(gauge(&text, "vllm:num_requests_running"));
            if Instant::now() >= t0 {
                max_waiting = max_waiting.max(waiting);
                sum_waiting += waiting;
                polls += 1;
            }
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    stop.store(true, Ordering::Relaxed);
    for w in workers {
        let _ = w.await;
    }
    let samples = samples.lock().await;
    // Per request: its decode time in the window over its intervals. The mean weights every
    // interval alike (= mean inter-token latency), so that a request seen for a few tokens
    // cannot swing it; the median is over requests seen for at least 16 tokens.
    let decode: Vec<(f64, u64)> = samples
        .iter()
        .filter(|s| s.intervals >= 1)
        .filter_map(|s| {
            Some((
                (s.decode_last? - s.decode_first?).as_secs_f64() / scale,
                s.intervals,
            ))
        })
        .collect();
    let total_intervals: u64 = decode.iter().map(|&(_, n)| n).sum();
    let tpot = decode.iter().map(|&(t, _)| t).sum::<f64>() / total_intervals as f64;
    let mut tpots: Vec<f64> = decode
        .iter()
        .filter(|&&(_, n)| n >= 16)
        .map(|&(t, n)| t / n as f64)
        .collect();
    tpots.sort_by(f64::total_cmp);
    let ttfts: Vec<f64> = samples
        .iter()
        .filter(|s| s.start >= t0 && s.start < t1)
        .filter_map(|s| Some((s.first? - s.start).as_secs_f64() / scale))
        .collect();
    let finished = samples.iter().filter(|s| s.complete).count();
    Measured {
        tok_s: tokens_in_window.load(Ordering::Relaxed) as f64 / window,
        tpot,
        tpot_p50: tpots.get(tpots.len() / 2).copied().unwrap_or(f64::NAN),
        ttft: mean(&ttfts),
        max_waiting,
        mean_waiting: if polls > 0 {
            sum_waiting / f64::from(polls)
        } else {
            f64::NAN
        },
        max_running,
        failures: failures.load(Ordering::Relaxed),
        finished,
    }
}

fn mean(xs: &[f64]) -> f64 {
    if xs.is_empty() {
        f64::NAN
    } else {
        xs.iter().sum::<f64>() / xs.len() as f64
    }
}

fn next(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// `chars` characters, unique per (worker, request) from the first block on.
fn random_text(rng: &mut u64, chars: usize, worker: usize, n: u64) -> String {
    let mut s = format!("w{worker} r{n} ");
    while s.len() < chars {
        *rng = next(*rng);
        s.push((b'a' + (*rng % 26) as u8) as char);
    }
    s.truncate(chars.max(1));
    s
}

fn gauge(text: &str, name: &str) -> f64 {
    text.lines()
        .find(|l| l.starts_with(name) && l[name.len()..].starts_with('{'))
        .and_then(|l| l.rsplit(' ').next()?.parse().ok())
        .unwrap_or(0.0)
}

/// One instance of `config` (time-scaled), for the duration of `f`.
async fn with_instance<F, Fut, T>(mut config: SimConfig, scale: f64, f: F) -> T
where
    F: FnOnce(String) -> Fut,
    Fut: Future<Output = T>,
{
    config.time_scale = scale;
    let fleet = Fleet::start("127.0.0.1", &[0], vec![config])
        .await
        .expect("instance starts");
    let out = f(fleet.urls()[0].clone()).await;
    fleet.shutdown().await;
    out
}

struct Row {
    check: String,
    expected: String,
    measured: String,
    error: Option<f64>,
    pass: bool,
}

fn row_pct(check: impl Into<String>, expected: f64, measured: f64, unit: &str) -> Row {
    let error = measured / expected - 1.0;
    Row {
        check: check.into(),
        expected: format!("{} {unit}", fmt(expected)),
        measured: format!("{} {unit}", fmt(measured)),
        error: Some(error),
        pass: error.abs() <= 0.20,
    }
}

fn row_bool(
    check: impl Into<String>,
    expected: impl Into<String>,
    measured: impl Into<String>,
    pass: bool,
) -> Row {
    Row {
        check: check.into(),
        expected: expected.into(),
        measured: measured.into(),
        error: None,
        pass,
    }
}

fn fmt(x: f64) -> String {
    if x >= 100.0 {
        format!("{x:.0}")
    } else if x >= 10.0 {
        format!("{x:.1}")
    } else {
        format!("{x:.2}")
    }
}

#[tokio::main(flavor = "multi_thread")]
async fn main() {
    let mut opts = Opts {
        time_scale: 0.25,
        quick: false,
        only: Vec::new(),
    };
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--time-scale" => {
                opts.time_scale = args
                    .next()
                    .and_then(|v| v.parse().ok())
                    .expect("--time-scale F")
            }
            "--quick" => opts.quick = true,
            "--only" => {
                opts.only = args
                    .next()
                    .expect("--only 1,3")
                    .split(',')
                    .map(|c| c.parse().expect("a check number"))
                    .collect()
            }
            other => panic!("unknown argument {other:?}: use --time-scale F, --quick, --only 1,3"),
        }
    }
    let s = opts.time_scale;
    let q = if opts.quick { 0.4 } else { 1.0 };
    let wanted = |check: u32| opts.only.is_empty() || opts.only.contains(&check);
    let h100 = SimConfig::preset("llama-3.1-8b-h100").unwrap();
    let l2 = SimConfig::preset("llama-2-7b-h100-64gb").unwrap();
    let mut rows = Vec::new();
    let wall = Instant::now();
    let run = |config: SimConfig, c: usize, lengths: Lengths, warmup: f64, window: f64| async move {
        let m = with_instance(config, s, |url| async move {
            closed_loop(&url, c, lengths, warmup * q, window * q, s).await
        })
        .await;
        let (isl, osl) = lengths.means();
        eprintln!(
            "  C={c:<4} {isl}/{osl}: {:.0} tok/s, TPOT {:.2} ms (p50 {:.2}), TTFT {:.0} ms, running<={} waiting<={} (mean {:.2}), {} done, {} failed",
            m.tok_s,
            m.tpot * 1e3,
            m.tpot_p50 * 1e3,
            m.ttft * 1e3,
            m.max_running,
            m.max_waiting,
            m.mean_waiting,
            m.finished,
            m.failures
        );
        m
    };
    use Lengths::{Jitter, ShareGpt};

    if wanted(1) {
        eprintln!("check 1: batch 1 (llama-3.1-8b-h100, 230/200)");
        let c1 = run(h100.clone(), 1, Jitter(230, 200), 1.5, 8.0).await;
        rows.push(row_pct("1. C=1, 230/200: TPOT", 6.5, c1.tpot * 1e3, "ms"));
        rows.push(row_pct(
            "1. C=1, 230/200: output tok/s (spec: 120-160)",
            152.0,
            c1.tok_s,
            "tok/s",
        ));
    }
    let mut b1 = None;
    if wanted(2) || wanted(4) {
        // Two whole requests (≈6.7 s each), so that the mean context is the request's average.
        b1 = Some(run(h100.clone(), 1, Jitter(128, 1024), 0.1, 13.2).await);
    }
    if wanted(2) {
        eprintln!("check 2: small concurrency");
        let c4 = run(h100.clone(), 4, Jitter(230, 200), 2.0, 10.0).await;
        rows.push(row_pct(
            "2. C=4, 230/200: output tok/s",
            560.0,
            c4.tok_s,
            "tok/s",
        ));
        let b1 = b1.as_ref().unwrap();
        // Two whole waves of requests, like the baseline.
        let b16 = run(h100.clone(), 16, Jitter(128, 1024), 0.1, 14.8).await;
        let ratio = b16.tpot / b1.tpot;
        rows.push(row_bool(
            "2. C=16 vs C=1, 128/1024: TPOT ratio",
            "<= 1.15 (model 1.11)",
            format!(
                "{ratio:.3} ({:.2} / {:.2} ms)",
                b16.tpot * 1e3,
                b1.tpot * 1e3
            ),
            ratio <= 1.15,
        ));
    }
    if wanted(3) {
        eprintln!(
            "check 3: saturation shape (llama-2-7b-h100-64gb, ShareGPT-like 113/323, C = max_num_seqs)"
        );
        // Measured median TPOT per point [S11]: sets how long one request lasts.
        for (c, expected, tpot) in [
            (1usize, 92.0, 0.0108),
            (8, 637.0, 0.012),
            (32, 1782.0, 0.0175),
            (64, 2623.0, 0.0233),
            (128, 3271.0, 0.0371),
            (256, 3896.0, 0.0582),
        ] {
            let mut config = l2.clone();
            config.params.max_num_seqs = c as u32;
            let lifetime = 323.0 * tpot;
            let m = run(
                config,
                c,
                ShareGpt(113, 323),
                lifetime * 1.5,
                (lifetime * 3.0).max(10.0),
            )
            .await;
            rows.push(row_pct(
                format!("3. Llama-2-7B C={c}: output tok/s"),
                expected,
                m.tok_s,
                "tok/s",
            ));
        }
    }
    if wanted(4) {
        eprintln!("check 4: plateau and gain over one in flight (llama-3.1-8b-h100)");
        let a1 = run(h100.clone(), 1, Jitter(1024, 128), 1.0, 8.0).await;
        let a256 = run(h100.clone(), 256, Jitter(1024, 128), 15.0, 25.0).await;
        rows.push(row_pct(
            "4. 1024/128: X(256)/X(1)",
            18.0,
            a256.tok_s / a1.tok_s,
            "x",
        ));
        rows.push(row_pct("4. 1024/128: X(256)", 2638.0, a256.tok_s, "tok/s"));
        rows.push(row_pct(
            "4. 1024/128: median TPOT(256) (spec §3.4 model)",
            96.0,
            a256.tpot_p50 * 1e3,
            "ms",
        ));
        rows.push(row_bool(
            "4. 1024/128: TTFT(256)",
            "> 0.4 s (model 0.555 s)",
            format!("{:.3} s", a256.ttft),
            a256.ttft > 0.4,
        ));
        let b1 = b1.as_ref().unwrap();
        let d256 = run(h100.clone(), 256, Jitter(128, 1024), 30.0, 40.0).await;
        rows.push(row_pct(
            "4. 128/1024: X(256)/X(1)",
            67.5,
            d256.tok_s / b1.tok_s,
            "x",
        ));
        rows.push(row_pct("4. 128/1024: X(256)", 10572.0, d256.tok_s, "tok/s"));
        rows.push(row_pct(
            "4. 128/1024: median TPOT(256) (spec §3.4 model)",
            22.6,
            d256.tpot_p50 * 1e3,
            "ms",
        ));
        rows.push(row_bool(
            "4. 128/1024, C=256: num_requests_waiting",
            "0",
            format!("max {} (mean {:.2})", d256.max_waiting, d256.mean_waiting),
            d256.max_waiting == 0.0,
        ));
    }
    if wanted(5) {
        eprintln!("check 5: overload semantics (llama-3.1-8b-h100, C=2000, 230/200)");
        let over = run(h100.clone(), 2000, Jitter(230, 200), 25.0, 10.0).await;
        rows.push(row_bool(
            "5. C=2000: every request 200, running <= 1024, waiting > 0",
            "0 failures, <= 1024, > 0",
            format!(
                "{} failures ({} done), running <= {}, waiting <= {}",
                over.failures, over.finished, over.max_running, over.max_waiting
            ),
            over.failures == 0
                && over.finished > 0
                && over.max_running <= 1024.0
                && over.max_waiting > 0.0,
        ));
        let long = with_instance(h100.clone(), s, |url| async move {
            let prompt = "x".repeat(131_072 * 4 + 8);
            let start = Instant::now();
            let r = reqwest::Client::new()
                .post(format!("{url}/v1/completions"))
                .json(&serde_json::json!({"prompt": prompt, "max_tokens": 1}))
                .send()
                .await
                .unwrap();
            (
                r.status().as_u16(),
                start.elapsed(),
                r.text().await.unwrap(),
            )
        })
        .await;
        rows.push(row_bool(
            "5. prompt > max_model_len",
            "immediate 400, vLLM's message",
            format!("{} in {:.1} ms", long.0, long.1.as_secs_f64() * 1e3),
            long.0 == 400
                && long
                    .2
                    .contains("This model's maximum context length is 131072 tokens")
                && long.1 < Duration::from_secs(1),
        ));
    }

    println!("| check | expected | measured | error | pass |");
    println!("|---|---|---|---|---|");
    for r in &rows {
        let error = r
            .error
            .map_or("-".to_string(), |e| format!("{:+.1}%", e * 100.0));
        println!(
            "| {} | {} | {} | {} | {} |",
            r.check,
            r.expected,
            r.measured,
            error,
            if r.pass { "yes" } else { "**no**" }
        );
    }
    println!(
        "\ntime scale {s} (measurements converted to simulated time); wall time {:.0} s{}",
        wall.elapsed().as_secs_f64(),
        if opts.quick { "; --quick windows" } else { "" }
    );
    if rows.iter().any(|r| !r.pass) {
        std::process::exit(1);
    }
}
