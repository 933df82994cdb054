//! Which model a backend serves (`GET /v1/models`), with errors that say what to fix.

use std::time::Duration;

use serde::Deserialize;

use crate::addr::BackendAddr;
use crate::client::{Client, FetchError};

/// One served model.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct ModelInfo {
    /// The id requests must name.
    pub id: String,
    /// Context length, when the server reports it (vLLM does).
    #[serde(default)]
    pub max_model_len: Option<u64>,
    /// `owned_by`, when reported (vLLM says "vllm").
    #[serde(default)]
    pub owned_by: Option<String>,
}

/// What `/v1/models` listed.
#[derive(Debug, Clone, Deserialize)]
pub struct Models {
    /// The models, in the server's order.
    pub data: Vec<ModelInfo>,
}

/// Why a backend's models could not be listed.
#[derive(Debug, thiserror::Error)]
pub enum DiscoveryError {
    /// No connection.
    #[error("cannot reach {base}: {detail}; is the server running and listening on that address?")]
    Unreachable {
        /// The backend.
        base: String,
        /// The connection error.
        detail: String,
    },
    /// The path is wrong: the server answered 404 for the models list.
    #[error(
        "{url} answered 404: {base} does not look like an OpenAI API root; did you forget /v1 (e.g. http://host:8000/v1)?"
    )]
    WrongPath {
        /// The backend.
        base: String,
        /// The models URL.
        url: String,
    },
    /// The key was refused.
    #[error(
        "{url} answered {status}: the API key is missing or wrong; set it in an environment variable and name it with --api-key-env"
    )]
    Unauthorized {
        /// The models URL.
        url: String,
        /// 401 or 403.
        status: u16,
    },
    /// The server is up but does not list its models (some servers answer 500 here).
    #[error("{url} did not list models ({detail})")]
    Unlisted {
        /// The models URL.
        url: String,
        /// What it answered.
        detail: String,
    },
}

impl Client {
    /// Lists the models a backend serves.
    pub async fn models(
        &self,
        backend: &BackendAddr,
        timeout: Duration,
    ) -> Result<Models, DiscoveryError> {
        let url = backend.url("models");
        let uri = url
            .parse::<http::Uri>()
            .map_err(|e| DiscoveryError::Unlisted {
                url: url.clone(),
                detail: e.to_string(),
            })?;
        // Over the control pool, like the scrape that follows: the two share one connection.
        let (status, bytes) = match self.fetch(&uri, timeout).await {
            Ok(r) => r,
            Err(e @ (FetchError::Connect(_) | FetchError::Timeout(_))) => {
                return Err(DiscoveryError::Unreachable {
                    base: backend.base.clone(),
                    detail: e.to_string(),
                });
            }
            Err(e) => {
                return Err(DiscoveryError::Unlisted {
                    url,
                    detail: e.to_string(),
                });
            }
        };
        match status {
            200..=299 => {}
            404 => {
                return Err(DiscoveryError::WrongPath {
                    base: backend.base.clone(),
                    url,
                });
            }
            401 | 403 => return Err(DiscoveryError::Unauthorized { url, status }),
            _ => {
                return Err(DiscoveryError::Unlisted {
                    url,
                    detail: format!("HTTP {status}"),
                });
            }
        }
        serde_json::from_slice::<Models>(&bytes).map_err(|e| DiscoveryError::Unlisted {
            url,
            detail: format!("not a model list: {e}"),
        })
    }
}
