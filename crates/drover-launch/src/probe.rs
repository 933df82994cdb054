//! Readiness: an instance is ready when `/health` answers 2xx *and* `/v1/models` answers.
//! vLLM and SGLang answer `/health` before the API is usable on some versions, and a server
//! that answers only one of them cannot take a job. "Answers" is an HTTP answer of the API
//! itself: `transformers serve` is ready while its models list fails with 500, and a 404 means
//! the API is not there (wrong path, or not up yet).

use std::time::Duration;

use drover_client::{BackendAddr, Client, DiscoveryError};

/// Each request of a probe may take this long: a server busy loading may answer slowly, but a
/// probe must not outlive the next one.
pub(crate) const PROBE_TIMEOUT: Duration = Duration::from_secs(2);

/// Whether the server at `addr` is ready. A models list refused for a missing API key counts
/// as ready: the server is up, and the key is the job's business (`drover run --api-key-env`).
/// So does one the server fails to produce (HTTP 5xx): `drover run` then requests no model.
pub(crate) async fn ready(client: &Client, addr: &BackendAddr) -> bool {
    if client.health(addr, PROBE_TIMEOUT).await.is_err() {
        return false;
    }
    match client.models(addr, PROBE_TIMEOUT).await {
        Ok(_) | Err(DiscoveryError::Unauthorized { .. }) => true,
        Err(DiscoveryError::Unlisted { detail, .. }) => detail.starts_with("HTTP 5"),
        Err(_) => false,
    }
}
