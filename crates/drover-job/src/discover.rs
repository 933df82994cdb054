//! Before anything is sent: which backends answer, which model they serve, and what load
//! signals they publish. Problems are reported per backend, with the fix.

use std::collections::BTreeMap;
use std::time::Duration;

use drover_client::{BackendAddr, Client, DiscoveryError};
use drover_sched::BackendSpec;
use futures::future::join_all;

/// What discovery found.
#[derive(Debug)]
pub struct Fleet {
    /// The model to request; `None` when no backend lists its models (requests then omit `model`).
    pub model: Option<String>,
    /// Backends to use.
    pub backends: Vec<BackendSpec>,
    /// Backends left out, with the reason.
    pub left_out: Vec<(String, String)>,
    /// The smallest context length reported, if any.
    pub max_model_len: Option<u64>,
}

/// No usable backend.
#[derive(Debug, thiserror::Error)]
pub enum FleetError {
    /// Nothing answered.
    #[error("no backend is reachable:\n{}", list(.0))]
    NoneReachable(Vec<(String, String)>),
    /// Backends answered, but none serves the requested model.
    #[error("model {model:?} is not served by any backend:\n{}", list(.served))]
    ModelNotFound {
        /// What was asked.
        model: String,
        /// What each backend serves.
        served: Vec<(String, String)>,
    },
    /// A backend serves several models and none was chosen.
    #[error("{backend} serves several models ({models}); choose one with --model")]
    AmbiguousModel {
        /// The backend.
        backend: String,
        /// Its models.
        models: String,
    },
    /// A configuration problem named by the server (wrong path, bad key): nothing can work.
    #[error("{0}")]
    Config(String),
}

fn list(items: &[(String, String)]) -> String {
    items
        .iter()
        .map(|(b, why)| format!("  {b}: {why}"))
        .collect::<Vec<_>>()
        .join("\n")
}

struct Probe {
    addr: BackendAddr,
    models: Result<drover_client::Models, DiscoveryError>,
    signals: Option<drover_client::LoadSignals>,
    scraper: drover_client::Scraper,
}

/// Probes every backend (concurrently) and settles the model.
pub async fn discover(
    client: &Client,
    addrs: Vec<BackendAddr>,
    model: Option<&str>,
    timeout: Duration,
) -> Result<Fleet, FleetError> {
    let probes = join_all(addrs.into_iter().map(|addr| async move {
        // One after the other, so that both go over one kept-alive connection of the client's
        // control pool (which the scraper then reuses): joined, they opened two per backend
        // (512 connects and 256 idle sockets more at 256 backends). A backend whose model
        // listing failed is left out, so it is not scraped and does not wait twice.
        let models = client.models(&addr, timeout).await;
        let usable = matches!(models, Ok(_) | Err(DiscoveryError::Unlisted { .. }));
        // vLLM is asked for its signals' series only: discovery scrapes the whole fleet at
        // once. The scraper goes on to the backend's scrape loop.
        let mut scraper = drover_client::Scraper::default();
        let signals = if usable {
            scraper
                .scrape(client, &addr, timeout.min(Duration::from_secs(3)))
                .await
                .ok()
                .flatten()
        } else {
            None
        };
        Probe {
            addr,
            models,
            signals,
            scraper,
        }
    }))
    .await;

    let mut left_out = Vec::new();
    let mut up: Vec<(Probe, Option<Vec<drover_client::ModelInfo>>)> = Vec::new();
    let mut config_errors = Vec::new();
    for p in probes {
        match &p.models {
            Ok(m) => {
                let list = m.data.clone();
                up.push((p, Some(list)));
            }
            Err(DiscoveryError::Unlisted { .. }) => up.push((p, None)),
            Err(e @ (DiscoveryError::WrongPath { .. } | DiscoveryError::Unauthorized { .. })) => {
                config_errors.push((p.addr.label.clone(), e.to_string()));
            }
            Err(e) => left_out.push((p.addr.label.clone(), e.to_string())),
        }
    }
    if up.is_empty() {
        if let Some((_, msg)) = config_errors.first() {
            if config_errors.len() == left_out.len() + config_errors.len() {
                return Err(FleetError::Config(msg.clone()));
            }
        }
        left_out.extend(config_errors);
        return Err(FleetError::NoneReachable(left_out));
    }
    left_out.extend(config_errors);

    // The model: the one asked for, else the one every listing backend agrees on (majority).
    let chosen: Option<String> = match model {
        Some(m) => Some(m.to_string()),
        None => {
            let mut votes: BTreeMap<String, usize> = BTreeMap::new();
            for (p, models) in &up {
                if let Some(ms) = models {
                    match ms.len() {
                        0 => {}
                        1 => *votes.entry(ms[0].id.clone()).or_default() += 1,
                        _ => {
                            return Err(FleetError::AmbiguousModel {
                                backend: p.addr.label.clone(),
                                models: ms
                                    .iter()
                                    .map(|m| m.id.as_str())
                                    .collect::<Vec<_>>()
                                    .join(", "),
                            });
                        }
                    }
                }
            }
            votes.into_iter().max_by_key(|(_, n)| *n).map(|(m, _)| m)
        }
    };

    let mut backends = Vec::new();
    let mut served = Vec::new();
    let mut max_len: Option<u64> = None;
    for (p, models) in up {
        let ok = match (&chosen, &models) {
            (Some(m), Some(ms)) => match ms.iter().find(|x| &x.id == m) {
                Some(info) => {
                    if let Some(l) = info.max_model_len {
                        max_len = Some(max_len.map_or(l, |c| c.min(l)));
                    }
                    true
                }
                None => {
                    let have = ms
                        .iter()
                        .map(|x| x.id.as_str())
                        .collect::<Vec<_>>()
                        .join(", ");
                    served.push((p.addr.label.clone(), format!("serves {have}")));
                    left_out.push((
                        p.addr.label.clone(),
                        format!("serves {have}, not {m}; left out so models are not mixed"),
                    ));
                    false
                }
            },
            // Unlisted models (the server answers /v1/models with an error): trust it.
            _ => true,
        };
        if ok {
            backends.push(BackendSpec {
                addr: p.addr,
                signals: p.signals,
                scraper: p.scraper,
            });
        }
    }
    if backends.is_empty() {
        return Err(FleetError::ModelNotFound {
            model: chosen.unwrap_or_default(),
            served,
        });
    }
    Ok(Fleet {
        model: chosen,
        backends,
        left_out,
        max_model_len: max_len,
    })
}

#[cfg(test)]
mod tests {
    use axum::Router;
    use axum::http::Uri;
    use axum::routing::get;
    use drover_client::ClientConfig;

    use super::*;

    /// Discovery learns how a backend answers a filtered scrape, and the backend's spec (which
    /// its scrape loop goes on with) keeps that: a server whose filtered answer is empty (a
    /// multiprocess exporter) is not asked again.
    #[tokio::test]
    async fn the_backends_spec_keeps_what_discoverys_scrape_learned() {
        let app = Router::new()
            .route(
                "/v1/models",
                get(|| async { r#"{"object":"list","data":[{"id":"m","object":"model"}]}"# }),
            )
            .route(
                "/metrics",
                get(|uri: Uri| async move {
                    if uri.query().is_some() {
                        ""
                    } else {
                        "vllm:num_requests_running 7\nvllm:num_requests_waiting 1\n"
                    }
                }),
            );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        tokio::spawn(async move { axum::serve(listener, app).await });
        let client = Client::new(ClientConfig::default()).unwrap();
        let addr = BackendAddr::parse(&port.to_string()).unwrap();
        let fleet = discover(&client, vec![addr], None, Duration::from_secs(10))
            .await
            .unwrap();
        let spec = &fleet.backends[0];
        assert_eq!(spec.signals.as_ref().and_then(|s| s.running), Some(7.0));
        assert!(
            !spec.scraper.is_filtering(),
            "the scrape loop would ask the filtered question again"
        );
    }
}
