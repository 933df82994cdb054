//! Aggregate generation throughput of the embedded engine at several concurrency levels.
//!
//! ```text
//! cargo run --release -p drover-engine --example throughput -- [--model PATH] [--levels 1,4,8,16]
//!     [--max-tokens 64] [--repeat 3] [--threads N] [--http]
//! ```
//!
//! Every request generates exactly `--max-tokens` tokens (`ignore_eos`), greedy, each from a
//! different chat prompt, all submitted at once; throughput = generated tokens / wall time from
//! the first submit to the last token. The engine has as many slots as the largest level, so every
//! level runs fully batched. `--http` measures the same through the OpenAI front on a loopback
//! port (non-streaming /v1/chat/completions), i.e. what `drover run` sees.

use std::io::{Read, Write};
use std::sync::Arc;
use std::time::Instant;

use drover_engine::{EngineConfig, LlamaEngine};
use drover_server::{ChatMessage, Engine, GenEvent, GenRequest, Prompt};

const QUESTIONS: [&str; 8] = [
    "What is the capital of France? Answer in one sentence.",
    "Give me three tips for staying healthy.",
    "Explain what a computer is to a child.",
    "Write a short poem about the sea.",
    "What is photosynthesis?",
    "Name three famous painters.",
    "Why is the sky blue?",
    "How do I boil an egg?",
];

struct Args {
    model: Option<String>,
    levels: Vec<usize>,
    max_tokens: u32,
    repeat: usize,
    threads: Option<usize>,
    http: bool,
}

fn parse_args() -> Args {
    let mut args = Args {
        model: None,
        levels: vec![1, 4, 8, 16],
        max_tokens: 64,
        repeat: 3,
        threads: None,
        http: false,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || it.next().unwrap_or_else(|| panic!("{flag} needs a value"));
        match flag.as_str() {
            "--model" => args.model = Some(value()),
            "--levels" => {
                args.levels = value()
                    .split(',')
                    .map(|v| v.trim().parse().expect("--levels 1,4,8"))
                    .collect()
            }
            "--max-tokens" => args.max_tokens = value().parse().expect("--max-tokens N"),
            "--repeat" => args.repeat = value().parse().expect("--repeat N"),
            "--threads" => args.threads = Some(value().parse().expect("--threads N")),
            "--http" => args.http = true,
            other => panic!("unknown argument {other}"),
        }
    }
    args
}

fn main() {
    let args = parse_args();
    let model =
        args.model.clone().map(Into::into).unwrap_or_else(|| {
            EngineConfig::default_model_path().unwrap_or_else(|e| panic!("{e}"))
        });
    let parallel = *args.levels.iter().max().expect("at least one level");
    let config = EngineConfig {
        parallel,
        ctx: 512,
        threads: args.threads,
        ..EngineConfig::new(model)
    };
    let threads = config.effective_threads();
    println!(
        "model {} | threads {threads} | openmp {} | slots {parallel} | {} new tokens per request | median of {}",
        config.model.display(),
        cfg!(feature = "openmp"),
        args.max_tokens,
        args.repeat
    );
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let (engine, url, _server) = if args.http {
        let (url, server) = runtime
            .block_on(drover_engine::spawn_local(config))
            .expect("spawn_local");
        (Arc::clone(server.engine()), Some(url), Some(server))
    } else {
        (LlamaEngine::load(config).expect("load"), None, None)
    };
    // Warm-up: first-touch of the mmapped weights and llama.cpp's graph allocation.
    run_level(&engine, url.as_deref(), 1, 8);

    let mut base = None;
    println!(
        "{:>8} {:>14} {:>16} {:>10}",
        "streams", "aggregate tok/s", "per-stream tok/s", "vs 1"
    );
    for &level in &args.levels {
        let mut runs: Vec<f64> = (0..args.repeat)
            .map(|_| run_level(&engine, url.as_deref(), level, args.max_tokens))
            .collect();
        runs.sort_by(f64::total_cmp);
        let median = runs[runs.len() / 2];
        // Relative to one stream's speed (the first level's per-stream rate).
        let base = *base.get_or_insert(median / level as f64);
        let ratio = median / base;
        println!(
            "{level:>8} {median:>14.1} {:>16.1} {ratio:>9.2}x   (runs: {})",
            median / level as f64,
            runs.iter()
                .map(|r| format!("{r:.1}"))
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    let stats = engine.stats();
    println!(
        "engine: {} decode steps, peak {} sequences in one step",
        stats.steps, stats.peak_batch_sequences
    );
}

/// Runs `level` concurrent requests; returns aggregate generated tokens per second.
fn run_level(engine: &Arc<LlamaEngine>, url: Option<&str>, level: usize, max_tokens: u32) -> f64 {
    let start = Instant::now();
    let tokens: u64 = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..level)
            .map(|i| {
                let question = QUESTIONS[i % QUESTIONS.len()];
                let model = engine.model().id;
                scope.spawn(move || match url {
                    Some(url) => via_http(url, &model, question, max_tokens),
                    None => via_engine(engine, question, max_tokens),
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("request thread"))
            .sum()
    });
    assert_eq!(
        tokens,
        level as u64 * u64::from(max_tokens),
        "every request must generate exactly max_tokens"
    );
    tokens as f64 / start.elapsed().as_secs_f64()
}

fn via_engine(engine: &LlamaEngine, question: &str, max_tokens: u32) -> u64 {
    let request = GenRequest {
        id: "bench".into(),
        prompt: Prompt::Chat(vec![ChatMessage {
            role: "user".into(),
            content: question.into(),
        }]),
        max_tokens: Some(max_tokens),
        temperature: Some(0.0),
        top_p: None,
        seed: None,
        stop: vec![],
        response_format: None,
        ignore_eos: true,
        raw: serde_json::json!({}),
    };
    let mut generation = engine.submit(request).expect("submit");
    while let Some(event) = generation.events.blocking_recv() {
        match event {
            GenEvent::Token { .. } => {}
            GenEvent::Done {
                completion_tokens, ..
            } => return u64::from(completion_tokens),
            GenEvent::Error(e) => panic!("generation failed: {e}"),
        }
    }
    panic!("the engine closed the stream without Done")
}

/// One non-streaming chat completion over a plain HTTP/1.1 connection; returns completion tokens.
fn via_http(url: &str, model: &str, question: &str, max_tokens: u32) -> u64 {
    let addr = url.trim_start_matches("http://");
    let body = serde_json::json!({
        "model": model,
        "messages": [{"role": "user", "content": question}],
        "max_tokens": max_tokens,
        "temperature": 0,
        "ignore_eos": true,
    })
    .to_string();
    let mut stream = std::net::TcpStream::connect(addr).expect("connect");
    write!(
        stream,
        "POST /v1/chat/completions HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .expect("send");
    let mut response = String::new();
    stream.read_to_string(&mut response).expect("read");
    let (head, body) = response.split_once("\r\n\r\n").expect("HTTP response");
    assert!(head.starts_with("HTTP/1.1 200"), "{head}\n{body}");
    let json: serde_json::Value = serde_json::from_str(body).expect("JSON body");
    json["usage"]["completion_tokens"]
        .as_u64()
        .expect("usage.completion_tokens")
}
