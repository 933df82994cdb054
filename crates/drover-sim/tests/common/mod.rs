//! Helpers shared by the simulator's integration tests.
#![allow(dead_code)]

use std::time::Duration;

use drover_sim::{Fleet, SimConfig};
use serde_json::{Value, json};

/// The default preset, 100× faster than real time.
pub fn fast() -> SimConfig {
    SimConfig {
        time_scale: 0.01,
        ..SimConfig::default()
    }
}

pub async fn fleet(configs: Vec<SimConfig>) -> Fleet {
    let ports = vec![0; configs.len()];
    Fleet::start("127.0.0.1", &ports, configs)
        .await
        .expect("fleet starts")
}

pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(20))
        .build()
        .unwrap()
}

pub fn chat(content: &str, max_tokens: u32) -> Value {
    json!({"messages": [{"role": "user", "content": content}], "max_tokens": max_tokens})
}

/// POSTs `body` to `url/path`; returns status, headers and the body text.
pub async fn post(
    client: &reqwest::Client,
    url: &str,
    path: &str,
    body: &Value,
) -> (u16, reqwest::header::HeaderMap, String) {
    post_with(client, url, path, body, None)
        .await
        .expect("request completes")
}

pub async fn post_with(
    client: &reqwest::Client,
    url: &str,
    path: &str,
    body: &Value,
    fault: Option<&str>,
) -> reqwest::Result<(u16, reqwest::header::HeaderMap, String)> {
    let mut request = client.post(format!("{url}{path}")).json(body);
    if let Some(fault) = fault {
        request = request.header(drover_sim::FAULT_HEADER, fault);
    }
    let response = request.send().await?;
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    Ok((status, headers, response.text().await?))
}

pub async fn get(
    client: &reqwest::Client,
    url: &str,
    path: &str,
) -> reqwest::Result<(u16, String)> {
    let response = client.get(format!("{url}{path}")).send().await?;
    Ok((response.status().as_u16(), response.text().await?))
}

/// The value of an unlabelled-by-reason sample `name{…}` in a Prometheus text.
pub fn metric(text: &str, name: &str) -> f64 {
    text.lines()
        .find(|l| l.starts_with(name) && l[name.len()..].starts_with('{'))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no sample {name} in\n{text}"))
}

/// `sim-` + the first 8 hex digits of xxh3-64 of `text`.
pub fn digest(text: &str) -> String {
    let hex = format!("{:016x}", xxhash_rust::xxh3::xxh3_64(text.as_bytes()));
    format!("sim-{}", &hex[..8])
}
