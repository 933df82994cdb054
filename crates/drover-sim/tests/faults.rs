//! Fault injection: per-request faults (header and rates), slow start, kill/revive, stall.

mod common;

use std::time::{Duration, Instant};

use common::*;
use drover_sim::{Faults, SimConfig};
use serde_json::{Value, json};

fn with_faults(faults: Faults) -> SimConfig {
    SimConfig { faults, ..fast() }
}

#[tokio::test]
async fn header_forces_each_fault() {
    let config = with_faults(Faults {
        slow_delay: Duration::from_millis(300),
        ..Faults::default()
    });
    let fleet = fleet(vec![config]).await;
    let url = &fleet.urls()[0];
    let c = client();
    let body = chat("x", 2);

    let (status, _, text) = post_with(&c, url, "/v1/chat/completions", &body, Some("500"))
        .await
        .unwrap();
    assert_eq!(status, 500);
    let v: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(
        (v["error"]["code"].as_u64(), v["error"]["type"].as_str()),
        (Some(500), Some("InternalServerError"))
    );

    let (status, headers, _) = post_with(&c, url, "/v1/chat/completions", &body, Some("429"))
        .await
        .unwrap();
    assert_eq!(status, 429);
    assert_eq!(headers["retry-after"], "1");

    let (status, headers, text) =
        post_with(&c, url, "/v1/chat/completions", &body, Some("garbage"))
            .await
            .unwrap();
    assert_eq!(status, 200);
    assert_eq!(headers["content-type"], "application/json");
    assert!(
        serde_json::from_str::<Value>(&text).is_err(),
        "garbage must not parse: {text}"
    );

    let start = Instant::now();
    let (status, _, _) = post_with(&c, url, "/v1/chat/completions", &body, Some("slow"))
        .await
        .unwrap();
    assert_eq!(status, 200);
    assert!(start.elapsed() >= Duration::from_millis(300));

    let err = post_with(&c, url, "/v1/chat/completions", &body, Some("reset"))
        .await
        .unwrap_err();
    assert!(
        !err.is_timeout() && !err.is_status(),
        "a reset is a transport error: {err:?}"
    );

    let impatient = reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_millis(300))
        .build()
        .unwrap();
    let err = post_with(&impatient, url, "/v1/chat/completions", &body, Some("hang"))
        .await
        .unwrap_err();
    assert!(err.is_timeout(), "{err:?}");

    let (status, _, text) = post_with(&c, url, "/v1/chat/completions", &body, Some("explode"))
        .await
        .unwrap();
    assert_eq!(status, 400);
    assert!(text.contains("use 500, 429, hang, garbage, reset or slow"));

    // Faults touch only generation requests; the instance itself is fine.
    assert_eq!(get(&c, url, "/health").await.unwrap().0, 200);
    let (status, _, _) = post(&c, url, "/v1/chat/completions", &body).await;
    assert_eq!(status, 200);
    fleet.shutdown().await;
}

#[tokio::test]
async fn rates_are_seeded_and_close_to_their_probability() {
    let faults = Faults {
        fail_rate: 0.2,
        rate_limit_rate: 0.1,
        retry_after: Duration::from_millis(2500),
        ..Faults::default()
    };
    let run = |seed: u64| {
        let faults = faults.clone();
        async move {
            let fleet = fleet(vec![SimConfig {
                seed,
                ..with_faults(faults)
            }])
            .await;
            let c = client();
            let mut statuses = Vec::new();
            for i in 0..300 {
                let (status, headers, _) = post(
                    &c,
                    &fleet.urls()[0],
                    "/v1/completions",
                    &json!({"prompt": format!("{i}"), "max_tokens": 1}),
                )
                .await;
                if status == 429 {
                    assert_eq!(
                        headers["retry-after"], "3",
                        "Retry-After rounds up to whole seconds"
                    );
                }
                statuses.push(status);
            }
            fleet.shutdown().await;
            statuses
        }
    };
    let a = run(7).await;
    let count = |s: &[u16], code| s.iter().filter(|&&x| x == code).count();
    assert!(
        (35..=85).contains(&count(&a, 500)),
        "{} 500s of 300 at rate 0.2",
        count(&a, 500)
    );
    assert!(
        (12..=50).contains(&count(&a, 429)),
        "{} 429s of 300 at rate 0.1",
        count(&a, 429)
    );
    assert_eq!(count(&a, 200) + count(&a, 500) + count(&a, 429), 300);
    assert_eq!(a, run(7).await, "same seed, same faults");
    assert_ne!(a, run(8).await);
}

#[tokio::test]
async fn slow_start_answers_503_then_serves() {
    let fleet = fleet(vec![with_faults(Faults {
        slow_start: Duration::from_millis(400),
        ..Faults::default()
    })])
    .await;
    let url = &fleet.urls()[0];
    let c = client();
    assert_eq!(get(&c, url, "/health").await.unwrap(), (503, String::new()));
    let (status, _, text) = post(&c, url, "/v1/chat/completions", &chat("x", 1)).await;
    assert_eq!(status, 503, "{text}");
    assert_eq!(
        serde_json::from_str::<Value>(&text).unwrap()["error"]["code"],
        503
    );
    tokio::time::sleep(Duration::from_millis(450)).await;
    assert_eq!(get(&c, url, "/health").await.unwrap().0, 200);
    assert_eq!(
        post(&c, url, "/v1/chat/completions", &chat("x", 1)).await.0,
        200
    );
    fleet.shutdown().await;
}

#[tokio::test]
async fn kill_resets_connections_and_revive_serves_on_the_same_port() {
    // Real time: a 2000-token request takes ~13 s, so it is mid-flight when the kill comes.
    let fleet = fleet(vec![SimConfig::default(), fast()]).await;
    let url = fleet.urls()[0].clone();
    let c = client();
    assert_eq!(
        post(&c, &url, "/v1/chat/completions", &chat("warm", 1))
            .await
            .0,
        200
    );
    let in_flight = {
        let (c, url) = (c.clone(), url.clone());
        tokio::spawn(async move {
            post_with(&c, &url, "/v1/chat/completions", &chat("long", 2000), None).await
        })
    };
    tokio::time::sleep(Duration::from_millis(200)).await;
    fleet.kill(0);
    let err = tokio::time::timeout(Duration::from_secs(2), in_flight)
        .await
        .expect("reset at once")
        .unwrap()
        .unwrap_err();
    assert!(!err.is_timeout(), "{err:?}");
    let refused = get(&client(), &url, "/health").await.unwrap_err();
    assert!(refused.is_connect(), "the listener is closed: {refused:?}");
    assert_eq!(
        get(&c, &fleet.urls()[1], "/health").await.unwrap().0,
        200,
        "other instances are untouched"
    );
    fleet.kill(0); // idempotent

    fleet.revive(0);
    assert_eq!(fleet.urls()[0], url);
    assert_eq!(get(&client(), &url, "/health").await.unwrap().0, 200);
    let (status, _, text) = post(&client(), &url, "/v1/chat/completions", &chat("warm", 1)).await;
    assert_eq!(status, 200);
    let v: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(
        v["usage"]["prompt_tokens_details"]["cached_tokens"], 0,
        "a revived engine starts cold"
    );
    let (_, metrics) = get(&client(), &url, "/metrics").await.unwrap();
    assert_eq!(
        metric(&metrics, "vllm:generation_tokens_total"),
        1.0,
        "metrics restart with the engine"
    );
    fleet.shutdown().await;
}

#[tokio::test]
async fn timed_kill_and_revive() {
    let faults = Faults {
        kill_after: Some(Duration::from_millis(200)),
        revive_after: Some(Duration::from_millis(300)),
        ..Faults::default()
    };
    let fleet = fleet(vec![with_faults(faults)]).await;
    let url = &fleet.urls()[0];
    assert_eq!(get(&client(), url, "/health").await.unwrap().0, 200);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        get(&client(), url, "/health")
            .await
            .unwrap_err()
            .is_connect()
    );
    tokio::time::sleep(Duration::from_millis(350)).await;
    assert_eq!(get(&client(), url, "/health").await.unwrap().0, 200);
    fleet.shutdown().await;
}

#[tokio::test]
async fn stall_keeps_health_but_makes_no_progress() {
    for config in [fast(), SimConfig::preset("instant").unwrap()] {
        let fleet = fleet(vec![config]).await;
        let url = fleet.urls()[0].clone();
        let c = client();
        fleet.stall(0, true);
        assert_eq!(get(&c, &url, "/health").await.unwrap().0, 200);
        let pending = {
            let (c, url) = (c.clone(), url.clone());
            tokio::spawn(async move {
                post(&c, &url, "/v1/chat/completions", &chat("stuck", 3))
                    .await
                    .0
            })
        };
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert!(!pending.is_finished(), "a stalled engine answers nothing");
        let (_, metrics) = get(&c, &url, "/metrics").await.unwrap();
        assert!(metric(&metrics, "vllm:num_requests_waiting") >= 1.0);
        fleet.stall(0, false);
        let status = tokio::time::timeout(Duration::from_secs(5), pending)
            .await
            .expect("progress resumes")
            .unwrap();
        assert_eq!(status, 200);
        fleet.shutdown().await;
    }
}

#[tokio::test]
async fn timed_stall_ends() {
    let faults = Faults {
        stall_after: Some(Duration::from_millis(50)),
        stall_for: Some(Duration::from_millis(400)),
        ..Faults::default()
    };
    let fleet = fleet(vec![with_faults(faults)]).await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    let start = Instant::now();
    let (status, _, _) = post(
        &client(),
        &fleet.urls()[0],
        "/v1/chat/completions",
        &chat("x", 2),
    )
    .await;
    assert_eq!(status, 200);
    let waited = start.elapsed();
    assert!(
        waited >= Duration::from_millis(250) && waited < Duration::from_secs(3),
        "{waited:?}"
    );
    fleet.shutdown().await;
}

#[tokio::test]
async fn serve_instance_stops_on_its_shutdown_future() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(drover_sim::serve_instance(listener, fast(), async move {
        let _ = stopped.await;
    }));
    let c = client();
    assert_eq!(
        post(
            &c,
            &url,
            "/v1/completions",
            &json!({"prompt": "hi", "max_tokens": 2})
        )
        .await
        .0,
        200
    );
    // A hung request must not keep the server from stopping.
    let hung = {
        let (c, url) = (c.clone(), url.clone());
        tokio::spawn(async move {
            post_with(
                &c,
                &url,
                "/v1/completions",
                &json!({"prompt": "hi"}),
                Some("hang"),
            )
            .await
        })
    };
    tokio::time::sleep(Duration::from_millis(100)).await;
    stop.send(()).unwrap();
    tokio::time::timeout(Duration::from_secs(5), server)
        .await
        .expect("stops within the grace")
        .unwrap()
        .unwrap();
    assert!(hung.await.unwrap().is_err());
    assert!(
        get(&client(), &url, "/health")
            .await
            .unwrap_err()
            .is_connect()
    );
}
