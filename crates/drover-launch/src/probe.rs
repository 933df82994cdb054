//! Readiness: an instance is ready when `/health` answers 2xx *and* `/v1/models` lists its
//! models. vLLM and SGLang answer `/health` before the API is usable on some versions, and a
//! server that answers only one of them cannot take a job.

use std::time::Duration;

use drover_client::{BackendAddr, Client, DiscoveryError};

/// Each request of a probe may take this long: a server busy loading may answer slowly, but a
/// probe must not outlive the next one.
pub(crate) const PROBE_TIMEOUT: Duration = Duration::from_secs(2);

/// Whether the server at `addr` is ready. A models list refused for a missing API key counts
/// as ready: the server is up, and the key is the job's business (`drover run --api-key-env`).
pub(crate) async fn ready(client: &Client, addr: &BackendAddr) -> bool {
    if client.health(addr, PROBE_TIMEOUT).await.is_err() {
        return false;
    }
    match client.models(addr, PROBE_TIMEOUT).await {
        Ok(_) | Err(DiscoveryError::Unauthorized { .. }) => true,
        Err(_) => false,
    }
}
