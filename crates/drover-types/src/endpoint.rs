use std::fmt;

/// The OpenAI endpoints a task can target.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Endpoint {
    #[default]
    ChatCompletions,
    Completions,
    Embeddings,
}

/// A batch line named an endpoint drover does not serve.
#[derive(Debug, thiserror::Error)]
#[error("unsupported url {0:?}: use /v1/chat/completions, /v1/completions or /v1/embeddings")]
pub struct UnknownEndpoint(pub String);

impl Endpoint {
    /// The path below the backend's `/v1` root, e.g. `chat/completions`.
    pub fn path(self) -> &'static str {
        match self {
            Endpoint::ChatCompletions => "chat/completions",
            Endpoint::Completions => "completions",
            Endpoint::Embeddings => "embeddings",
        }
    }

    /// The URL as OpenAI batch lines spell it.
    pub fn url(self) -> &'static str {
        match self {
            Endpoint::ChatCompletions => "/v1/chat/completions",
            Endpoint::Completions => "/v1/completions",
            Endpoint::Embeddings => "/v1/embeddings",
        }
    }

    /// Parses a batch line's `url` (with or without the `/v1` prefix).
    pub fn from_url(url: &str) -> Result<Self, UnknownEndpoint> {
        let path = url.trim_end_matches('/');
        let path = path.strip_prefix("/v1").unwrap_or(path);
        match path {
            "/chat/completions" => Ok(Endpoint::ChatCompletions),
            "/completions" => Ok(Endpoint::Completions),
            "/embeddings" => Ok(Endpoint::Embeddings),
            _ => Err(UnknownEndpoint(url.to_string())),
        }
    }

    /// Whether responses carry generated tokens (and can be streamed).
    pub fn generates(self) -> bool {
        !matches!(self, Endpoint::Embeddings)
    }
}

impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.url())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_urls_with_and_without_v1() {
        assert_eq!(
            Endpoint::from_url("/v1/chat/completions").unwrap(),
            Endpoint::ChatCompletions
        );
        assert_eq!(
            Endpoint::from_url("/completions").unwrap(),
            Endpoint::Completions
        );
        assert_eq!(
            Endpoint::from_url("/v1/embeddings/").unwrap(),
            Endpoint::Embeddings
        );
        let err = Endpoint::from_url("/v1/responses").unwrap_err();
        assert!(err.to_string().contains("/v1/responses"));
    }
}
