//! Backend addresses: `8001` (→ `http://127.0.0.1:8001/v1`), `host:port`,
//! `http(s)://host:port[/prefix]` (a URL without a path gets `/v1`).

use std::collections::BTreeSet;
use std::fmt;
use std::hash::{Hash, Hasher};
use std::str::FromStr;
use std::sync::{Arc, Mutex};

use drover_types::Endpoint;

use crate::pool::Pool;

/// Where one backend answers, and the connections kept open to it (shared by clones: two
/// addresses are the same backend when their API roots are).
#[derive(Debug, Clone)]
pub struct BackendAddr {
    /// The OpenAI API root, e.g. `http://10.0.0.5:8000/v1` (no trailing slash).
    pub base: String,
    /// The server root, e.g. `http://10.0.0.5:8000`, where `/health` and `/metrics` live.
    pub root: String,
    /// Short name for messages and reports, e.g. `10.0.0.5:8000`.
    pub label: String,
    /// The endpoints' paths (`/v1/chat/completions`), parsed once: URL parsing cost more per
    /// request than the rest of the dispatcher together.
    endpoints: [http::Uri; 3],
    /// `/metrics`, `/health` and the models list, parsed once: a large fleet is scraped
    /// hundreds of times a second.
    metrics: http::Uri,
    health: http::Uri,
    models: http::Uri,
    /// `root` as a URI, to connect to.
    pub(crate) root_uri: http::Uri,
    /// The `Host` header every request carries.
    pub(crate) host: http::HeaderValue,
    pub(crate) conns: Arc<Conns>,
}

/// A backend's connections: requests on theirs, and scrapes, model listings and health
/// checks on their own, so that a backend's scrapes keep one connection and never take one
/// its requests were about to reuse.
#[derive(Debug, Default)]
pub(crate) struct Conns {
    pub(crate) requests: Pool,
    pub(crate) control: Pool,
}

impl PartialEq for BackendAddr {
    fn eq(&self, other: &Self) -> bool {
        self.base == other.base
    }
}

impl Eq for BackendAddr {}

impl Hash for BackendAddr {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.base.hash(state);
    }
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
        // Requests name only the path (HTTP/1.1's origin form); the host goes in `Host`. Both
        // are static: every request clones them, and a clone of a static `Bytes` copies a
        // pointer where a shared one bumps a count in memory of its own, one more cache line
        // per backend on the hot path (paths are the same for most backends, and then one).
        let parse = |p: String| {
            p.parse::<http::Uri>()
                .map_err(|err| err.to_string())
                .map(|_| http::Uri::from_static(intern(&p)))
        };
        let endpoints = [
            parse(format!("{path}/{}", Endpoint::ChatCompletions.path()))?,
            parse(format!("{path}/{}", Endpoint::Completions.path()))?,
            parse(format!("{path}/{}", Endpoint::Embeddings.path()))?,
        ];
        let root_uri = root.parse::<http::Uri>().map_err(|err| err.to_string())?;
        let host = http::HeaderValue::from_str(authority)
            .map(|_| http::HeaderValue::from_static(intern(authority)))
            .map_err(|err| err.to_string())?;
        Ok(BackendAddr {
            label: authority.to_string(),
            endpoints,
            metrics: parse("/metrics".into())?,
            health: parse("/health".into())?,
            models: parse(format!("{path}/models"))?,
            root_uri,
            host,
            conns: Arc::default(),
            base,
            root,
        })
    }

    /// The path of an endpoint, e.g. `/v1/chat/completions`.
    pub fn endpoint(&self, e: Endpoint) -> &http::Uri {
        &self.endpoints[match e {
            Endpoint::ChatCompletions => 0,
            Endpoint::Completions => 1,
            Endpoint::Embeddings => 2,
        }]
    }

    /// The path of the server's Prometheus metrics, `/metrics`.
    pub fn metrics_uri(&self) -> &http::Uri {
        &self.metrics
    }

    /// The path of the server's health check, `/health`.
    pub(crate) fn health_uri(&self) -> &http::Uri {
        &self.health
    }

    /// The path of the models list, e.g. `/v1/models`.
    pub(crate) fn models_uri(&self) -> &http::Uri {
        &self.models
    }

    /// `{base}/{path}`, e.g. `url("chat/completions")`.
    pub fn url(&self, path: &str) -> String {
        format!("{}/{}", self.base, path)
    }

    /// `{root}/{path}`, e.g. `root_url("health")`.
    pub fn root_url(&self, path: &str) -> String {
        format!("{}/{}", self.root, path)
    }
}

/// The one `'static` copy of `s`. Each distinct string is kept for the life of the process:
/// there is one per backend host and API path ever named, a few kilobytes even for a fleet
/// whose members change all day.
fn intern(s: &str) -> &'static str {
    static SEEN: Mutex<BTreeSet<&'static str>> = Mutex::new(BTreeSet::new());
    let mut seen = SEEN.lock().unwrap_or_else(|e| e.into_inner());
    match seen.get(s) {
        Some(k) => k,
        None => {
            let k: &'static str = Box::leak(s.into());
            seen.insert(k);
            k
        }
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
            "/metrics"
        );
        let a = BackendAddr::parse("https://api.example.com/openai/v1").unwrap();
        assert_eq!(
            (
                a.endpoint(Endpoint::ChatCompletions).to_string(),
                a.models_uri().to_string(),
                a.root_uri.to_string(),
                a.host.to_str().unwrap()
            ),
            (
                "/openai/v1/chat/completions".to_string(),
                "/openai/v1/models".to_string(),
                "https://api.example.com/".to_string(),
                "api.example.com"
            )
        );
        assert_eq!(a, a.clone());
        assert_eq!(
            a,
            BackendAddr::parse("https://api.example.com/openai/v1/").unwrap()
        );
    }

    #[test]
    fn hosts_and_paths_are_kept_once() {
        let (a, b) = (
            BackendAddr::parse("http://gpu7:8000").unwrap(),
            BackendAddr::parse("gpu7:8000").unwrap(),
        );
        assert!(std::ptr::eq(a.host.as_bytes(), b.host.as_bytes()));
        let c = BackendAddr::parse("gpu8:8000").unwrap();
        let path = |x: &BackendAddr| x.endpoint(Endpoint::Embeddings).path().as_ptr();
        assert_eq!(path(&a), path(&c), "one /v1/embeddings for every backend");
        assert_eq!(c.host.to_str().unwrap(), "gpu8:8000");
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
