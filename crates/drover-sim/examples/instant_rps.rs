//! How many requests per second the `instant` preset sustains: closed-loop clients on keep-alive
//! connections send small chat requests (16-token answers) for a fixed time.
//!
//! By default the instance runs in this process (client and server share the runtime and the
//! machine's cores, as in the dispatcher benchmark); `--url` measures an external `drover sim
//! --preset instant` instead.
//!
//! Run: `cargo run --release -p drover-sim --example instant_rps -- [--concurrency 64]
//! [--seconds 5] [--url http://127.0.0.1:8001] [--stream]`

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use drover_sim::{Fleet, SimConfig};

#[tokio::main(flavor = "multi_thread")]
async fn main() {
    let (mut concurrency, mut seconds, mut url, mut stream) =
        (64usize, 5.0f64, None::<String>, false);
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let mut value = || args.next().unwrap_or_else(|| panic!("{a} needs a value"));
        match a.as_str() {
            "--concurrency" => concurrency = value().parse().expect("--concurrency N"),
            "--seconds" => seconds = value().parse().expect("--seconds S"),
            "--url" => url = Some(value()),
            "--stream" => stream = true,
            other => panic!("unknown argument {other:?}"),
        }
    }
    let fleet = match &url {
        Some(_) => None,
        None => Some(
            Fleet::start(
                "127.0.0.1",
                &[0],
                vec![SimConfig::preset("instant").unwrap()],
            )
            .await
            .unwrap(),
        ),
    };
    let url = url.unwrap_or_else(|| fleet.as_ref().unwrap().urls()[0].clone());
    let client = reqwest::Client::builder()
        .no_proxy()
        .pool_max_idle_per_host(concurrency)
        .build()
        .unwrap();
    let done = Arc::new(AtomicU64::new(0));
    let failed = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let warmup = Duration::from_millis(500);
    let start = Instant::now();
    let mut workers = Vec::new();
    for w in 0..concurrency {
        let (client, url, done, failed, stop) = (
            client.clone(),
            url.clone(),
            done.clone(),
            failed.clone(),
            stop.clone(),
        );
        workers.push(tokio::spawn(async move {
            let mut n = 0u64;
            while !stop.load(Ordering::Relaxed) {
                n += 1;
                let body = serde_json::json!({
                    "model": "drover-sim-instant",
                    "messages": [{"role": "user", "content": format!("worker {w} request {n}")}],
                    "stream": stream,
                });
                let ok = match client
                    .post(format!("{url}/v1/chat/completions"))
                    .json(&body)
                    .send()
                    .await
                {
                    Ok(r) if r.status() == 200 => r
                        .bytes()
                        .await
                        .is_ok_and(|b| b.starts_with(b"{") || b.starts_with(b"data:")),
                    _ => false,
                };
                if start.elapsed() >= warmup {
                    if ok { &done } else { &failed }.fetch_add(1, Ordering::Relaxed);
                }
            }
        }));
    }
    tokio::time::sleep(warmup + Duration::from_secs_f64(seconds)).await;
    stop.store(true, Ordering::Relaxed);
    for w in workers {
        let _ = w.await;
    }
    let n = done.load(Ordering::Relaxed);
    println!(
        "instant preset: {:.0} requests/s ({n} in {seconds} s, {} failed, concurrency {concurrency}, {}, {})",
        n as f64 / seconds,
        failed.load(Ordering::Relaxed),
        if stream { "streaming" } else { "non-streaming" },
        if fleet.is_some() {
            "server in this process"
        } else {
            "external server"
        },
    );
    if let Some(fleet) = fleet {
        fleet.shutdown().await;
    }
}
