//! Backend addresses: `8001` (→ `http://127.0.0.1:8001/v1`), `host:port`,
//! `http(s)://host:port[/prefix]` (a URL without a path gets `/v1`).

use std::fmt;
use std::str::FromStr;

use drover_types::Endpoint;

/// Where one backend answers.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct BackendAddr {
    /// The OpenAI API root, e.g. `http://10.0.0.5:8000/v1` (no trailing slash).
    pub base: String,
    /// The server root, e.g. `http://10.0.0.5:8000`, where `/health` and `/metrics` live.
    pub root: String,
    /// Short name for messages and reports, e.g. `10.0.0.5:8000`.
    pub label: String,
    /// The endpoints' URIs, parsed once: URL parsing cost more per request than the rest of
    /// the dispatcher together.
    endpoints: [http::Uri; 3],
    /// `{root}/metrics`, parsed once: a large fleet is scraped hundreds of times a second.
    metrics: http::Uri,
    /// The same, asking for vLLM's signal series only (`crate::metrics::Scraper`).
    metrics_filtered: http::Uri,
}

/// A backend string that is not an address.
#[derive(Debug, thiserror::Error)]
#[error(
    "invalid backend {input:?}: {reason}; use a port (8001), host:port, or http://host:port[/v1]"
)]
pub struct AddrError {
    /// What the user wrote.
    pub input: String,
    /// What is wrong.
    pub reason: String,
}

impl BackendAddr {
    /// Parses one backend.
    pub fn parse(input: &str) -> Result<BackendAddr, AddrError> {
        let s = input.trim();
        let bad = |reason: &str| AddrError {
            input: input.to_string(),
            reason: reason.to_string(),
        };
        if s.is_empty() {
            return Err(bad("empty"));
        }
        if s.bytes().all(|b| b.is_ascii_digit()) {
            let port = parse_port(s).ok_or_else(|| bad("port out of range"))?;
            return Self::from_parts("http", &format!("127.0.0.1:{port}"), "").map_err(|e| bad(&e));
        }
        let (scheme, rest) = match s.split_once("://") {
            Some((sc, rest)) => {
                let sc = sc.to_ascii_lowercase();
                if sc != "http" && sc != "https" {
                    return Err(bad(
                        "scheme must be http or https (dns:// names a set of backends)",
                    ));
                }
                (sc, rest)
            }
            None => ("http".to_string(), s),
        };
        let (authority, path) = match rest.find('/') {
            Some(i) => (&rest[..i], rest[i..].trim_end_matches('/')),
            None => (rest, ""),
        };
        if authority.is_empty() {
            return Err(bad("no host"));
        }
        if authority.contains('@') {
            return Err(bad(
                "credentials in URLs are not supported; pass the key with --api-key-env",
            ));
        }
        // host:port, [v6]:port, or host alone with a scheme.
        let has_port = match authority.rfind(':') {
            Some(i) if !authority[i..].contains(']') => {
                parse_port(&authority[i + 1..])
                    .ok_or_else(|| bad("port is not a number 1-65535"))?;
                true
            }
            _ => false,
        };
        if !has_port && !s.contains("://") {
            return Err(bad("no port"));
        }
        Self::from_parts(&scheme, authority, path).map_err(|e| bad(&e))
    }

    fn from_parts(scheme: &str, authority: &str, path: &str) -> Result<BackendAddr, String> {
        let path = if path.is_empty() { "/v1" } else { path };
        let root = format!("{scheme}://{authority}");
        let base = format!("{root}{path}");
        let parse = |e: Endpoint| {
            format!("{base}/{}", e.path())
                .parse::<http::Uri>()
                .map_err(|err| err.to_string())
        };
        let endpoints = [
            parse(Endpoint::ChatCompletions)?,
            parse(Endpoint::Completions)?,
            parse(Endpoint::Embeddings)?,
        ];
        let metrics = format!("{root}/metrics")
            .parse::<http::Uri>()
            .map_err(|err| err.to_string())?;
        let metrics_filtered = format!("{root}/metrics?{}", crate::metrics::vllm_filter_query())
            .parse::<http::Uri>()
            .map_err(|err| err.to_string())?;
        Ok(BackendAddr {
            base,
            label: authority.to_string(),
            root,
            endpoints,
            metrics,
            metrics_filtered,
        })
    }

    /// The URI of an endpoint.
    pub fn endpoint(&self, e: Endpoint) -> &http::Uri {
        &self.endpoints[match e {
            Endpoint::ChatCompletions => 0,
            Endpoint::Completions => 1,
            Endpoint::Embeddings => 2,
        }]
    }

    /// The URI of the server's Prometheus metrics, `{root}/metrics`.
    pub fn metrics_uri(&self) -> &http::Uri {
        &self.metrics
    }

    /// `{base}/{path}`, e.g. `url("chat/completions")`.
    pub fn url(&self, path: &str) -> String {
        format!("{}/{}", self.base, path)
    }

    /// `{root}/metrics?name[]=…`: only the series of vLLM's load signals.
    pub fn metrics_filtered_uri(&self) -> &http::Uri {
        &self.metrics_filtered
    }

    /// `{root}/{path}`, e.g. `root_url("health")`.
    pub fn root_url(&self, path: &str) -> String {
        format!("{}/{}", self.root, path)
    }
}

fn parse_port(s: &str) -> Option<u16> {
    s.parse::<u16>().ok().filter(|p| *p != 0)
}

impl FromStr for BackendAddr {
    type Err = AddrError;
    fn from_str(s: &str) -> Result<Self, AddrError> {
        BackendAddr::parse(s)
    }
}

impl fmt::Display for BackendAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.base)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepted_forms() {
        let a = BackendAddr::parse("8001").unwrap();
        assert_eq!(
            (a.base.as_str(), a.root.as_str(), a.label.as_str()),
            (
                "http://127.0.0.1:8001/v1",
                "http://127.0.0.1:8001",
                "127.0.0.1:8001"
            )
        );
        assert_eq!(
            BackendAddr::parse("gpu3:8000").unwrap().base,
            "http://gpu3:8000/v1"
        );
        assert_eq!(
            BackendAddr::parse("http://gpu3:8000").unwrap().base,
            "http://gpu3:8000/v1"
        );
        assert_eq!(
            BackendAddr::parse("http://gpu3:8000/v1/").unwrap().base,
            "http://gpu3:8000/v1"
        );
        assert_eq!(
            BackendAddr::parse("https://api.example.com/openai/v1")
                .unwrap()
                .base,
            "https://api.example.com/openai/v1"
        );
        assert_eq!(
            BackendAddr::parse("https://api.example.com/openai/v1")
                .unwrap()
                .root,
            "https://api.example.com"
        );
        assert_eq!(
            BackendAddr::parse("http://[::1]:9000").unwrap().label,
            "[::1]:9000"
        );
        assert_eq!(
            BackendAddr::parse("8001").unwrap().url("chat/completions"),
            "http://127.0.0.1:8001/v1/chat/completions"
        );
        assert_eq!(
            BackendAddr::parse("https://api.example.com/openai/v1")
                .unwrap()
                .metrics_uri()
                .to_string(),
            "https://api.example.com/metrics"
        );
    }

    #[test]
    fn rejected_forms_say_why() {
        for (input, why) in [
            ("", "empty"),
            ("99999", "range"),
            ("gpu3", "no port"),
            ("ftp://x:1", "scheme"),
            ("h:abc", "port"),
            ("http://u:p@h:1", "credentials"),
        ] {
            let e = BackendAddr::parse(input).unwrap_err().to_string();
            assert!(e.contains(why), "{input}: {e}");
            assert!(e.contains("host:port"), "{e}");
        }
    }
}
