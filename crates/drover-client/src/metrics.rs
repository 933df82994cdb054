//! Live load from a backend's Prometheus endpoint. The metric names of each engine live here
//! and nowhere else.
//!
//! | signal | vLLM | SGLang | llama.cpp server | TGI |
//! |---|---|---|---|---|
//! | running | `vllm:num_requests_running` | `sglang:num_running_reqs` | `llamacpp:requests_processing` | `tgi_batch_current_size` |
//! | waiting | `vllm:num_requests_waiting` | `sglang:num_queue_reqs` | `llamacpp:requests_deferred` | `tgi_queue_size` |
//! | KV use (0–1) | `vllm:kv_cache_usage_perc` (`…gpu_cache_usage_perc` before 0.10) | `sglang:token_usage` | `llamacpp:kv_cache_usage_ratio` | – |
//! | tokens out | `vllm:generation_tokens_total` | `sglang:generation_tokens_total` | `llamacpp:tokens_predicted_total` | `tgi_request_generated_tokens_sum` |
//! | KV size | `vllm:cache_config_info{num_gpu_blocks,block_size}` | `sglang:max_total_num_tokens` | – | – |
//!
//! Repeated scrapes ask vLLM for these series alone ([`Scraper`]).

use std::time::Duration;

use crate::addr::BackendAddr;
use crate::client::Client;

/// Which server software a backend runs, as far as its endpoints tell.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EngineKind {
    /// vLLM (or drover sim/serve, which imitate it).
    Vllm,
    /// SGLang.
    Sglang,
    /// llama.cpp's llama-server.
    LlamaCpp,
    /// Hugging Face Text Generation Inference.
    Tgi,
    /// Ollama.
    Ollama,
    /// Something else OpenAI-compatible.
    Other,
}

impl EngineKind {
    /// Display name.
    pub fn name(self) -> &'static str {
        match self {
            EngineKind::Vllm => "vLLM",
            EngineKind::Sglang => "SGLang",
            EngineKind::LlamaCpp => "llama.cpp",
            EngineKind::Tgi => "TGI",
            EngineKind::Ollama => "Ollama",
            EngineKind::Other => "other",
        }
    }
}

/// One scrape's worth of load signals (sums over label sets, e.g. data-parallel engines).
#[derive(Debug, Clone, PartialEq)]
pub struct LoadSignals {
    /// Whose metric names matched.
    pub engine: EngineKind,
    /// Requests in the running batch.
    pub running: Option<f64>,
    /// Requests queued in the server.
    pub waiting: Option<f64>,
    /// KV-cache use, 0–1 (mean over engines).
    pub kv_usage: Option<f64>,
    /// Generated tokens so far (a counter).
    pub generation_tokens: Option<f64>,
    /// KV-cache size in tokens.
    pub kv_capacity_tokens: Option<f64>,
}

struct Names {
    engine: EngineKind,
    running: &'static [&'static str],
    waiting: &'static [&'static str],
    kv: &'static [&'static str],
    generated: &'static [&'static str],
    /// The KV-cache size: vLLM gives it as labels of an info metric, SGLang as a value.
    kv_size: Option<&'static str>,
}

impl Names {
    /// Whether `parse_metrics` reads this metric for this engine.
    fn uses(&self, name: &str) -> bool {
        self.all().any(|n| n == name)
    }

    /// Every metric name this engine's signals read.
    fn all(&self) -> impl Iterator<Item = &'static str> {
        [self.running, self.waiting, self.kv, self.generated]
            .into_iter()
            .flatten()
            .copied()
            .chain(self.kv_size)
    }
}

/// vLLM's KV-cache size, as labels (`num_gpu_blocks`, `block_size`) of an info metric.
const VLLM_CACHE_CONFIG: &str = "vllm:cache_config_info";
/// SGLang's KV-cache size in tokens.
const SGLANG_KV_TOKENS: &str = "sglang:max_total_num_tokens";

const ENGINES: [Names; 4] = [
    Names {
        engine: EngineKind::Vllm,
        running: &["vllm:num_requests_running"],
        waiting: &["vllm:num_requests_waiting"],
        kv: &["vllm:kv_cache_usage_perc", "vllm:gpu_cache_usage_perc"],
        generated: &["vllm:generation_tokens_total"],
        kv_size: Some(VLLM_CACHE_CONFIG),
    },
    Names {
        engine: EngineKind::Sglang,
        running: &["sglang:num_running_reqs"],
        waiting: &["sglang:num_queue_reqs"],
        kv: &["sglang:token_usage"],
        generated: &["sglang:generation_tokens_total"],
        kv_size: Some(SGLANG_KV_TOKENS),
    },
    Names {
        engine: EngineKind::LlamaCpp,
        running: &["llamacpp:requests_processing"],
        waiting: &["llamacpp:requests_deferred"],
        kv: &["llamacpp:kv_cache_usage_ratio"],
        generated: &["llamacpp:tokens_predicted_total"],
        kv_size: None,
    },
    Names {
        engine: EngineKind::Tgi,
        running: &["tgi_batch_current_size"],
        waiting: &["tgi_queue_size"],
        kv: &[],
        generated: &["tgi_request_generated_tokens_sum"],
        kv_size: None,
    },
];

/// The sample lines whose metric name passes `wanted`: name, labels (raw), value.
///
/// A line's name is checked before anything else of it is parsed: an exposition is mostly
/// histogram buckets no signal uses (a vLLM one is about 17 KB, of which a handful of lines
/// matter), and at 256 backends the fleet is scraped 250 times a second.
fn samples<'a>(
    text: &'a str,
    wanted: impl Fn(&str) -> bool + 'a,
) -> impl Iterator<Item = (&'a str, &'a str, f64)> {
    text.lines().filter_map(move |line| {
        let line = line.trim_ascii();
        if line.is_empty() || line.starts_with('#') {
            return None;
        }
        let i = line
            .bytes()
            .position(|b| matches!(b, b'{' | b' ' | b'\t'))?;
        if !wanted(&line[..i]) {
            return None;
        }
        let (name, labels, rest) = if line.as_bytes()[i] == b'{' {
            let close = label_end(&line[i..])? + i;
            (&line[..i], &line[i + 1..close], &line[close + 1..])
        } else {
            (&line[..i], "", &line[i..])
        };
        let value = rest.split_whitespace().next()?.parse::<f64>().ok()?;
        Some((name, labels, value))
    })
}

/// Index of the `}` closing a label set that starts at byte 0 (quotes may hold braces).
fn label_end(s: &str) -> Option<usize> {
    let (mut in_quotes, mut escaped) = (false, false);
    for (i, c) in s.char_indices().skip(1) {
        match c {
            _ if escaped => escaped = false,
            '\\' if in_quotes => escaped = true,
            '"' => in_quotes = !in_quotes,
            '}' if !in_quotes => return Some(i),
            _ => {}
        }
    }
    None
}

fn label<'a>(labels: &'a str, key: &str) -> Option<&'a str> {
    let mut rest = labels;
    while let Some(eq) = rest.find('=') {
        let k = rest[..eq].trim().trim_start_matches(',').trim();
        let after = &rest[eq + 1..];
        let after = after.strip_prefix('"')?;
        let end = after.find('"')?;
        if k == key {
            return Some(&after[..end]);
        }
        rest = &after[end + 1..];
    }
    None
}

/// One engine's signals while the exposition is read.
#[derive(Default)]
struct Found {
    running: Option<f64>,
    waiting: Option<f64>,
    kv_usage: Option<f64>,
    /// KV-use samples added (the deprecated vLLM alias counts only when alone).
    kv_n: u32,
    generation_tokens: Option<f64>,
    kv_capacity_tokens: Option<f64>,
}

impl Found {
    fn add(&mut self, names: &Names, name: &str, labels: &str, v: f64) {
        let add = |slot: &mut Option<f64>, v: f64| *slot = Some(slot.unwrap_or(0.0) + v);
        if names.running.contains(&name) {
            add(&mut self.running, v);
        } else if names.waiting.contains(&name) {
            add(&mut self.waiting, v);
        } else if names.kv.first() == Some(&name) || (names.kv.contains(&name) && self.kv_n == 0) {
            add(&mut self.kv_usage, v);
            self.kv_n += 1;
        } else if names.generated.contains(&name) {
            add(&mut self.generation_tokens, v);
        } else if name == VLLM_CACHE_CONFIG {
            let blocks = label(labels, "num_gpu_blocks").and_then(|b| b.parse::<f64>().ok());
            let size = label(labels, "block_size").and_then(|b| b.parse::<f64>().ok());
            if let (Some(b), Some(sz)) = (blocks, size) {
                add(&mut self.kv_capacity_tokens, b * sz);
            }
        } else if name == SGLANG_KV_TOKENS {
            add(&mut self.kv_capacity_tokens, v);
        }
    }

    /// The signals, when this engine's names appeared.
    fn signals(self, engine: EngineKind) -> Option<LoadSignals> {
        (self.running.is_some() || self.waiting.is_some() || self.generation_tokens.is_some()).then(
            || LoadSignals {
                engine,
                running: self.running,
                waiting: self.waiting,
                kv_usage: if self.kv_n > 1 {
                    self.kv_usage.map(|k| k / f64::from(self.kv_n))
                } else {
                    self.kv_usage
                },
                generation_tokens: self.generation_tokens,
                kv_capacity_tokens: self.kv_capacity_tokens,
            },
        )
    }
}

/// Every name any engine's signals read, in one flat list: most lines of an exposition are
/// turned away by a few length comparisons.
static WANTED: std::sync::LazyLock<Vec<&'static str>> =
    std::sync::LazyLock::new(|| ENGINES.iter().flat_map(Names::all).collect());

/// Reads the signals of the first engine (in the table's order) whose names appear; `None`
/// when none do. One pass over the exposition, whichever engine it is. The body is decoded
/// without a copy when it is UTF-8 (it always is in practice; a lossy decode cost more than
/// the parsing).
pub fn parse_metrics(text: impl AsRef<[u8]>) -> Option<LoadSignals> {
    let bytes = text.as_ref();
    let text = match std::str::from_utf8(bytes) {
        Ok(t) => std::borrow::Cow::Borrowed(t),
        Err(_) => String::from_utf8_lossy(bytes),
    };
    let mut found: [Found; ENGINES.len()] = Default::default();
    for (name, labels, v) in samples(&text, |n| WANTED.contains(&n)) {
        for (names, f) in ENGINES.iter().zip(&mut found) {
            if names.uses(name) {
                f.add(names, name, labels, v);
            }
        }
    }
    ENGINES
        .iter()
        .zip(found)
        .find_map(|(names, f)| f.signals(names.engine))
}

impl Client {
    /// Scrapes `/metrics`, all of it. `Ok(None)`: the backend has no metrics we understand.
    ///
    /// Over the control pool, with the URI parsed once: a scrape parses no URL and reuses the
    /// backend's one control connection.
    pub async fn scrape(
        &self,
        backend: &BackendAddr,
        timeout: Duration,
    ) -> Result<Option<LoadSignals>, String> {
        self.scrape_uri(backend.metrics_uri(), timeout).await
    }

    async fn scrape_uri(
        &self,
        uri: &http::Uri,
        timeout: Duration,
    ) -> Result<Option<LoadSignals>, String> {
        let (status, body) = self.fetch(uri, timeout).await.map_err(|e| e.to_string())?;
        if !(200..300).contains(&status) {
            return Ok(None);
        }
        Ok(parse_metrics(&body))
    }
}

/// One backend's scrapes, which ask for vLLM's signal series only, while the answers show
/// that the server answers that question in full.
///
/// vLLM serves `/metrics` through prometheus_client, which answers `?name[]=a&name[]=b` with
/// those series alone: about 1 KB against about 17 KB (and more with every histogram vLLM
/// adds). The server renders less and drover reads less; at 256 backends the fleet is scraped
/// 250 times a second, and discovery scrapes every backend at once. Not every server answers
/// it in full:
/// - a vLLM with several API servers (`PROMETHEUS_MULTIPROC_DIR`), and every SGLang, serve a
///   multiprocess collector, which lists no names: the filtered answer is empty;
/// - llama.cpp, TGI, and vLLM builds whose `/metrics` is prometheus-fastapi-instrumentator's
///   ignore the question and answer everything, which reads the same.
///
/// So a filtered answer is trusted when it holds every signal vLLM gives, or else the same
/// signals as a full scrape of the same server. The first time it is not, that scrape is read
/// in full, and so is every later one: a server can cost drover one extra request, once, and
/// never a signal.
#[derive(Debug, Clone, Default)]
pub struct Scraper {
    filter: Filter,
}

#[derive(Debug, Clone, Default)]
enum Filter {
    /// Not asked yet.
    #[default]
    Untried,
    /// The server answers the filtered question with these signals present.
    Asking { present: [bool; 5] },
    /// It does not: always scrape everything.
    Refused,
}

/// Which of a scrape's signals are present.
fn present(s: &LoadSignals) -> [bool; 5] {
    [
        s.running.is_some(),
        s.waiting.is_some(),
        s.kv_usage.is_some(),
        s.generation_tokens.is_some(),
        s.kv_capacity_tokens.is_some(),
    ]
}

/// Which signals a scrape holds, when it is vLLM's.
fn vllm_present(s: &Option<LoadSignals>) -> Option<[bool; 5]> {
    s.as_ref()
        .filter(|s| s.engine == EngineKind::Vllm)
        .map(present)
}

/// The query asking for the series vLLM's signals read: `name[]=…` for each.
pub(crate) fn vllm_filter_query() -> String {
    let vllm = ENGINES
        .iter()
        .find(|n| n.engine == EngineKind::Vllm)
        .expect("vLLM's names");
    // `name[]` percent-encoded: `[` and `]` may not appear raw in a query (RFC 3986), and
    // prometheus_client decodes the key with `parse_qs`. Metric names need no encoding (`:`
    // is allowed in a query).
    let query: Vec<String> = vllm.all().map(|n| format!("name%5B%5D={n}")).collect();
    query.join("&")
}

impl Scraper {
    /// Scrapes `backend` once (see the type's documentation for what is asked).
    pub async fn scrape(
        &mut self,
        client: &Client,
        backend: &BackendAddr,
        timeout: Duration,
    ) -> Result<Option<LoadSignals>, String> {
        if !matches!(self.filter, Filter::Refused) {
            let got = client
                .scrape_uri(backend.metrics_filtered_uri(), timeout)
                .await?;
            let vllm = vllm_present(&got);
            match (&self.filter, vllm) {
                (Filter::Untried, Some(p)) if p.iter().all(|&x| x) => {
                    self.filter = Filter::Asking { present: p };
                    return Ok(got);
                }
                (Filter::Asking { present }, Some(p)) if p == *present => return Ok(got),
                // Another engine's names, which were not asked for: the question was
                // ignored and this is the whole exposition.
                (Filter::Untried, None) if got.is_some() => {
                    self.filter = Filter::Refused;
                    return Ok(got);
                }
                _ => {}
            }
            // Empty or short of signals: read everything, and ask again only if the full
            // answer had no more than the filtered one.
            let full = client.scrape(backend, timeout).await?;
            self.filter = match (&self.filter, vllm, vllm_present(&full)) {
                (Filter::Untried, Some(p), Some(q)) if p == q => Filter::Asking { present: p },
                _ => Filter::Refused,
            };
            return Ok(full);
        }
        client.scrape(backend, timeout).await
    }

    /// Whether the next scrape asks for vLLM's signal series only.
    pub fn is_filtering(&self) -> bool {
        !matches!(self.filter, Filter::Refused)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const VLLM: &str = r#"# HELP vllm:num_requests_running Number of requests in model execution batches.
# TYPE vllm:num_requests_running gauge
vllm:num_requests_running{engine="0",model_name="m"} 12.0
vllm:num_requests_running{engine="1",model_name="m"} 3.0
vllm:num_requests_waiting{engine="0",model_name="m"} 2.0
vllm:kv_cache_usage_perc{engine="0",model_name="m"} 0.5
vllm:gpu_cache_usage_perc{engine="0",model_name="m"} 0.5
vllm:generation_tokens_total{engine="0",model_name="m"} 12345.0
vllm:cache_config_info{block_size="16",cache_dtype="auto",engine="0",gpu_memory_utilization="0.9",num_gpu_blocks="26300"} 1.0
vllm:time_to_first_token_seconds_bucket{engine="0",le="0.001",model_name="m"} 0.0
"#;

    #[test]
    fn reads_vllm() {
        let s = parse_metrics(VLLM).unwrap();
        assert_eq!(s.engine, EngineKind::Vllm);
        assert_eq!(s.running, Some(15.0));
        assert_eq!(s.waiting, Some(2.0));
        assert_eq!(s.kv_usage, Some(0.5), "deprecated alias not double counted");
        assert_eq!(s.generation_tokens, Some(12345.0));
        assert_eq!(s.kv_capacity_tokens, Some(26300.0 * 16.0));
    }

    #[test]
    fn reads_sglang_and_llamacpp() {
        let s = parse_metrics("sglang:num_running_reqs{model_name=\"x\"} 4\nsglang:num_queue_reqs{model_name=\"x\"} 0\nsglang:token_usage 0.25\nsglang:max_total_num_tokens 90000\n").unwrap();
        assert_eq!(
            (s.engine, s.running, s.kv_usage, s.kv_capacity_tokens),
            (EngineKind::Sglang, Some(4.0), Some(0.25), Some(90000.0))
        );
        let s = parse_metrics("llamacpp:requests_processing 2\nllamacpp:requests_deferred 5\nllamacpp:tokens_predicted_total 77\n").unwrap();
        assert_eq!(
            (s.engine, s.waiting, s.generation_tokens),
            (EngineKind::LlamaCpp, Some(5.0), Some(77.0))
        );
    }

    #[test]
    fn one_pass_keeps_the_table_order_and_each_engines_own_kv_size() {
        // SGLang's lines first, then vLLM's: vLLM, first in the table, is the one read, and
        // SGLang's KV size is not taken for vLLM's.
        let text = "sglang:num_running_reqs 4\nsglang:max_total_num_tokens 90000\n\
                    vllm:num_requests_running{engine=\"0\"} 2\n";
        let s = parse_metrics(text).unwrap();
        assert_eq!(
            (s.engine, s.running, s.kv_capacity_tokens),
            (EngineKind::Vllm, Some(2.0), None)
        );
        let s = parse_metrics("tgi_queue_size 3\ntgi_batch_current_size\t5\n").unwrap();
        assert_eq!(
            (s.engine, s.running, s.waiting),
            (EngineKind::Tgi, Some(5.0), Some(3.0))
        );
    }

    #[test]
    fn unknown_metrics_are_none() {
        assert!(parse_metrics("process_cpu_seconds_total 3\n").is_none());
        assert!(parse_metrics("").is_none());
    }

    #[test]
    fn labels_with_braces_in_quotes() {
        let v: Vec<_> = samples("x{a=\"}{\",b=\"2\"} 7 1700000000\n", |_| true).collect();
        assert_eq!(v, vec![("x", "a=\"}{\",b=\"2\"", 7.0)]);
        assert_eq!(label("a=\"}{\",b=\"2\"", "b"), Some("2"));
    }
}
