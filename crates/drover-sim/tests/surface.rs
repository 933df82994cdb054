//! The simulator over HTTP: answers, usage, streaming, prefix caching, timing, overload, fleets.

mod common;

use std::time::{Duration, Instant};

use common::*;
use drover_sim::{OutputLen, SimConfig};
use serde_json::{Value, json};

#[tokio::test]
async fn chat_and_completion_answers_belong_to_their_prompts() {
    let fleet = fleet(vec![fast()]).await;
    let url = &fleet.urls()[0];
    let c = client();
    let (status, _, body) = post(&c, url, "/v1/chat/completions", &chat("what is 2+2?", 7)).await;
    assert_eq!(status, 200, "{body}");
    let v: Value = serde_json::from_str(&body).unwrap();
    let text = v["choices"][0]["message"]["content"].as_str().unwrap();
    assert!(text.starts_with(&digest("what is 2+2?")), "{text}");
    assert_eq!(text.split(' ').count(), 7, "one word per token: {text}");
    assert_eq!(v["choices"][0]["finish_reason"], "length");
    assert_eq!(v["usage"]["completion_tokens"], 7);
    // 12 characters = 3 tokens, plus 4 of chat template.
    assert_eq!(v["usage"]["prompt_tokens"], 3 + 4);
    assert_eq!(v["model"], "meta-llama/Llama-3.1-8B-Instruct");

    let (status, _, body) = post(
        &c,
        url,
        "/v1/completions",
        &json!({"prompt": "once upon", "max_tokens": 3}),
    )
    .await;
    assert_eq!(status, 200);
    let v: Value = serde_json::from_str(&body).unwrap();
    assert!(
        v["choices"][0]["text"]
            .as_str()
            .unwrap()
            .starts_with(&digest("once upon"))
    );
    assert_eq!(v["usage"]["prompt_tokens"], 3);
    fleet.shutdown().await;
}

#[tokio::test]
async fn output_length_without_max_tokens_follows_the_distribution() {
    let config = SimConfig {
        output_len: OutputLen::Uniform(5, 9),
        ..fast()
    };
    let fleet = fleet(vec![config]).await;
    let c = client();
    let body = json!({"messages": [{"role": "user", "content": "x"}]});
    for _ in 0..5 {
        let (_, _, text) = post(&c, &fleet.urls()[0], "/v1/chat/completions", &body).await;
        let v: Value = serde_json::from_str(&text).unwrap();
        let n = v["usage"]["completion_tokens"].as_u64().unwrap();
        assert!((5..=9).contains(&n), "{n}");
        assert_eq!(v["choices"][0]["finish_reason"], "stop", "an EOS ended it");
    }
    fleet.shutdown().await;
}

#[tokio::test]
async fn streaming_sends_one_chunk_per_token_then_usage() {
    let fleet = fleet(vec![fast()]).await;
    let c = client();
    let mut body = chat("stream me", 5);
    body["stream"] = json!(true);
    body["stream_options"] = json!({"include_usage": true});
    let (status, headers, text) = post(&c, &fleet.urls()[0], "/v1/chat/completions", &body).await;
    assert_eq!(status, 200);
    assert!(
        headers["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/event-stream")
    );
    let events: Vec<&str> = text
        .split("\n\n")
        .filter(|e| !e.is_empty())
        .map(|e| e.strip_prefix("data: ").unwrap())
        .collect();
    assert_eq!(*events.last().unwrap(), "[DONE]");
    let chunks: Vec<Value> = events[..events.len() - 1]
        .iter()
        .map(|e| serde_json::from_str(e).unwrap())
        .collect();
    assert_eq!(chunks.len(), 1 + 5 + 1, "role, 5 tokens, usage");
    let content: String = chunks[1..6]
        .iter()
        .map(|c| c["choices"][0]["delta"]["content"].as_str().unwrap())
        .collect();
    assert!(content.starts_with(&digest("stream me")));
    assert_eq!(chunks[5]["choices"][0]["finish_reason"], "length");
    assert_eq!(chunks[6]["usage"]["completion_tokens"], 5);
    fleet.shutdown().await;
}

#[tokio::test]
async fn json_schema_answers_are_instances() {
    let fleet = fleet(vec![fast()]).await;
    let c = client();
    let mut body = chat("classify this", 200);
    body["response_format"] = json!({"type": "json_schema", "json_schema": {"name": "c", "schema": {
        "type": "object",
        "properties": {"label": {"type": "string"}, "score": {"type": "number", "minimum": 0.2, "maximum": 1}},
        "required": ["label", "score"]}}});
    let (_, _, text) = post(&c, &fleet.urls()[0], "/v1/chat/completions", &body).await;
    let v: Value = serde_json::from_str(&text).unwrap();
    let answer: Value =
        serde_json::from_str(v["choices"][0]["message"]["content"].as_str().unwrap()).unwrap();
    assert_eq!(answer["label"], digest("classify this"));
    assert_eq!(answer["score"], 0.2);
    assert_eq!(v["choices"][0]["finish_reason"], "stop");
    fleet.shutdown().await;
}

#[tokio::test]
async fn repeated_prompts_hit_the_prefix_cache() {
    let fleet = fleet(vec![fast()]).await;
    let c = client();
    let prompt = "a long shared system prompt ".repeat(40);
    let url = &fleet.urls()[0];
    let (_, _, first) = post(&c, url, "/v1/chat/completions", &chat(&prompt, 2)).await;
    let (_, _, second) = post(&c, url, "/v1/chat/completions", &chat(&prompt, 2)).await;
    let first: Value = serde_json::from_str(&first).unwrap();
    let second: Value = serde_json::from_str(&second).unwrap();
    assert_eq!(first["usage"]["prompt_tokens_details"]["cached_tokens"], 0);
    let prompt_tokens = second["usage"]["prompt_tokens"].as_u64().unwrap();
    let cached = second["usage"]["prompt_tokens_details"]["cached_tokens"]
        .as_u64()
        .unwrap();
    assert_eq!(
        cached,
        (prompt_tokens - 1) / 16 * 16,
        "every full block but the last token's"
    );
    let (_, metrics) = get(&c, url, "/metrics").await.unwrap();
    assert_eq!(
        metric(&metrics, "vllm:prefix_cache_hits_total"),
        cached as f64
    );
    assert_eq!(
        metric(&metrics, "vllm:prefix_cache_queries_total"),
        2.0 * prompt_tokens as f64
    );
    fleet.shutdown().await;
}

#[tokio::test]
async fn context_limits_are_400s_with_vllms_messages() {
    let config = SimConfig {
        params: drover_sim::Params {
            max_model_len: 100,
            ..fast().params
        },
        ..fast()
    };
    let fleet = fleet(vec![config]).await;
    let c = client();
    let url = &fleet.urls()[0];
    let (status, _, body) = post(
        &c,
        url,
        "/v1/completions",
        &json!({"prompt": "x".repeat(400)}),
    )
    .await;
    assert_eq!(status, 400);
    let v: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(
        v["error"]["message"],
        "This model's maximum context length is 100 tokens. However, your request has 100 input tokens. Please reduce the length of the input messages."
    );
    let (status, _, body) = post(
        &c,
        url,
        "/v1/completions",
        &json!({"prompt": "x".repeat(200), "max_tokens": 60}),
    )
    .await;
    assert_eq!(status, 400);
    assert!(
        body.contains("'max_tokens' or 'max_completion_tokens' is too large: 60."),
        "{body}"
    );
    fleet.shutdown().await;
}

/// Wall time of one request of `max_tokens` tokens on `fleet`'s instance `i`.
async fn timed(c: &reqwest::Client, url: &str, max_tokens: u32) -> Duration {
    let start = Instant::now();
    let (status, _, _) = post(c, url, "/v1/chat/completions", &chat("time me", max_tokens)).await;
    assert_eq!(status, 200);
    start.elapsed()
}

#[tokio::test]
async fn time_scale_and_speed_factors_scale_latency() {
    // 200 decode steps of ≈6.5 ms at 1/20 of real time ≈ 66 ms; half speed ≈ 132 ms.
    let scaled = SimConfig {
        time_scale: 0.05,
        ..SimConfig::default()
    };
    let slow = SimConfig {
        speed_factor: 0.5,
        ..scaled.clone()
    };
    let fleet = fleet(vec![scaled, slow]).await;
    let c = client();
    timed(&c, &fleet.urls()[0], 1).await; // warm the connection pool
    let fast_wall = timed(&c, &fleet.urls()[0], 200).await.as_secs_f64();
    let slow_wall = timed(&c, &fleet.urls()[1], 200).await.as_secs_f64();
    let expected = (8e-3 + 200.0 * 6.51e-3) * 0.05;
    assert!(
        (fast_wall / expected - 1.0).abs() < 0.3,
        "measured {fast_wall:.4}s, model {expected:.4}s"
    );
    let ratio = slow_wall / fast_wall;
    assert!(
        (1.6..2.4).contains(&ratio),
        "speed factor 0.5 should double step times: ratio {ratio:.2}"
    );
    fleet.shutdown().await;
}

#[tokio::test]
async fn overload_queues_and_never_rejects() {
    // 2000 clients on one 8B/H100 instance (1024 seqs): all succeed, half of them wait.
    let config = SimConfig {
        time_scale: 0.2,
        ..SimConfig::default()
    };
    let fleet = fleet(vec![config]).await;
    let url = fleet.urls()[0].clone();
    let c = reqwest::Client::builder()
        .no_proxy()
        .pool_max_idle_per_host(2100)
        .timeout(Duration::from_secs(60))
        .build()
        .unwrap();
    let watcher = {
        let (c, url) = (c.clone(), url.clone());
        tokio::spawn(async move {
            let (mut max_running, mut max_waiting) = (0.0f64, 0.0f64);
            for _ in 0..400 {
                if let Ok((_, text)) = get(&c, &url, "/metrics").await {
                    max_running = max_running.max(metric(&text, "vllm:num_requests_running"));
                    max_waiting = max_waiting.max(metric(&text, "vllm:num_requests_waiting"));
                    if max_waiting > 0.0 && max_running >= 1024.0 {
                        break;
                    }
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            (max_running, max_waiting)
        })
    };
    let mut requests = tokio::task::JoinSet::new();
    for i in 0..2000 {
        let (c, url) = (c.clone(), url.clone());
        requests.spawn(async move {
            post(
                &c,
                &url,
                "/v1/chat/completions",
                &chat(&format!("request {i}"), 64),
            )
            .await
            .0
        });
    }
    let mut ok = 0;
    while let Some(status) = requests.join_next().await {
        assert_eq!(status.unwrap(), 200);
        ok += 1;
    }
    assert_eq!(ok, 2000);
    let (max_running, max_waiting) = watcher.await.unwrap();
    assert_eq!(
        max_running, 1024.0,
        "the batch fills up to max_num_seqs and no further"
    );
    assert!(max_waiting > 0.0, "the rest waits");
    let (_, text) = get(&c, &url, "/metrics").await.unwrap();
    assert_eq!(metric_reason(&text, "length"), 2000.0);
    fleet.shutdown().await;
}

fn metric_reason(text: &str, reason: &str) -> f64 {
    let needle = format!("finished_reason=\"{reason}\"}} ");
    text.lines()
        .find(|l| l.starts_with("vllm:request_success_total") && l.contains(&needle))
        .and_then(|l| l.rsplit(' ').next()?.parse().ok())
        .unwrap()
}

#[tokio::test]
async fn instant_preset_answers_without_delay() {
    let config = SimConfig::preset("instant").unwrap();
    let fleet = fleet(vec![config]).await;
    let c = client();
    let body = json!({"messages": [{"role": "user", "content": "quick"}]});
    let start = Instant::now();
    for _ in 0..200 {
        let (status, _, text) = post(&c, &fleet.urls()[0], "/v1/chat/completions", &body).await;
        assert_eq!(status, 200);
        let v: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(v["usage"]["completion_tokens"], 16);
        assert!(
            v["choices"][0]["message"]["content"]
                .as_str()
                .unwrap()
                .starts_with(&digest("quick"))
        );
    }
    assert!(
        start.elapsed() < Duration::from_secs(5),
        "{:?}",
        start.elapsed()
    );
    let (_, metrics) = get(&c, &fleet.urls()[0], "/metrics").await.unwrap();
    assert_eq!(metric(&metrics, "vllm:generation_tokens_total"), 3200.0);
    fleet.shutdown().await;
}

#[tokio::test]
async fn instant_with_an_api_overhead_holds_each_answer_and_counts_it_running() {
    let mut config = SimConfig::preset("instant").unwrap();
    config.params.api_overhead = Duration::from_secs(1);
    let fleet = fleet(vec![config]).await;
    let url = fleet.urls()[0].clone();
    let c = client();
    let mut answers = tokio::task::JoinSet::new();
    for i in 0..8 {
        let (c, url) = (c.clone(), url.clone());
        answers.spawn(async move {
            let start = Instant::now();
            let body = json!({"messages": [{"role": "user", "content": format!("held {i}")}]});
            let (status, _, _) = post(&c, &url, "/v1/chat/completions", &body).await;
            (status, start.elapsed())
        });
    }
    // All eight are held at once, and the server's gauge says so (what drover's controller
    // reads: a hold outside the gauges would look like a server holding nothing).
    let mut running = 0.0;
    for _ in 0..30 {
        let (_, metrics) = get(&c, &url, "/metrics").await.unwrap();
        running = metric(&metrics, "vllm:num_requests_running");
        if running == 8.0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(running, 8.0);
    while let Some(done) = answers.join_next().await {
        let (status, took) = done.unwrap();
        assert_eq!(status, 200);
        assert!(took >= Duration::from_secs(1), "answered after {took:?}");
    }
    let (_, metrics) = get(&c, &url, "/metrics").await.unwrap();
    assert_eq!(metric(&metrics, "vllm:num_requests_running"), 0.0);
    fleet.shutdown().await;
}

#[tokio::test]
async fn a_fleet_of_256_instances_serves() {
    let fleet = fleet(vec![fast(); 256]).await;
    assert_eq!(fleet.len(), 256);
    let urls = fleet.urls();
    let mut distinct = urls.clone();
    distinct.sort();
    distinct.dedup();
    assert_eq!(distinct.len(), 256);
    let c = client();
    let mut tasks = tokio::task::JoinSet::new();
    for url in urls {
        let c = c.clone();
        tasks.spawn(async move {
            assert_eq!(get(&c, &url, "/health").await.unwrap().0, 200);
            post(
                &c,
                &url,
                "/v1/completions",
                &json!({"prompt": url.clone(), "max_tokens": 2}),
            )
            .await
            .0
        });
    }
    while let Some(status) = tasks.join_next().await {
        assert_eq!(status.unwrap(), 200);
    }
    fleet.shutdown().await;
}

/// transformers serve's measured quirk: a lone request after idleness starts late
/// (`idle_wake`); one that follows closely does not.
#[tokio::test]
async fn an_idle_engine_wakes_late_and_a_busy_one_does_not() {
    let mut config = fast();
    config.params.idle_wake = Duration::from_millis(400);
    config.params.idle_after = Duration::from_millis(200);
    config.time_scale = 1.0;
    let fleet = fleet(vec![config]).await;
    let (c, url) = (client(), fleet.urls()[0].clone());
    tokio::time::sleep(Duration::from_millis(300)).await;
    let timed = |c: reqwest::Client, url: String| async move {
        let t = Instant::now();
        let (status, _, body) = post(&c, &url, "/v1/chat/completions", &chat("x", 2)).await;
        assert_eq!(status, 200, "{body}");
        t.elapsed()
    };
    let after_idle = timed(c.clone(), url.clone()).await;
    let right_after = timed(c.clone(), url.clone()).await;
    assert!(after_idle >= Duration::from_millis(400), "{after_idle:?}");
    assert!(right_after < Duration::from_millis(400), "{right_after:?}");
    fleet.shutdown().await;
}
