//! One attempt of one request, and the classification of everything that can go wrong with it.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use drover_types::{Endpoint, Failure, Usage};
use serde::Deserialize;
use serde_json::value::RawValue;

use crate::addr::BackendAddr;
use crate::sse::{Chunk, SseParser, StreamAssembler, StreamError};

/// Client settings.
#[derive(Debug, Clone)]
pub struct ClientConfig {
    /// Sent as `Authorization: Bearer …`; never logged.
    pub api_key: Option<String>,
    /// Time allowed to open a connection.
    pub connect_timeout: Duration,
}

impl Default for ClientConfig {
    fn default() -> Self {
        ClientConfig {
            api_key: None,
            connect_timeout: Duration::from_secs(10),
        }
    }
}

/// The HTTP client could not be built.
#[derive(Debug, thiserror::Error)]
#[error("cannot build the HTTP client: {0}")]
pub struct ClientError(#[source] reqwest::Error);

/// The hot path's HTTP/1.1 client: hyper directly. reqwest (kept for the occasional health
/// probe) re-parsed every URL twice per request, which cost more than the whole dispatch loop.
type FastClient = hyper_util::client::legacy::Client<
    hyper_rustls::HttpsConnector<hyper_util::client::legacy::connect::HttpConnector>,
    http_body_util::Full<Bytes>,
>;

/// A shared HTTP client for every backend (one connection pool per host).
#[derive(Clone)]
pub struct Client {
    pub(crate) http: reqwest::Client,
    fast: FastClient,
    /// Model listings and metrics scrapes: the same client as `fast` with a pool of its own, so
    /// that a backend's scrapes keep one connection (the one discovery opened) and never take
    /// one its requests were about to reuse.
    control: FastClient,
    pub(crate) api_key: Option<Arc<str>>,
    auth: Option<http::HeaderValue>,
}

/// What a caller watches of its requests to one backend while they are in flight.
#[derive(Debug, Default)]
pub struct Progress {
    /// Generated tokens seen (live for streamed answers, at completion otherwise).
    pub tokens: AtomicU64,
    /// Streamed requests sent that have not produced their first token yet: queued or being
    /// prefilled in the server. For servers without metrics, this is their queue as a client
    /// sees it.
    pub awaiting_first: AtomicU64,
}

/// Counts a streamed request as awaiting its first token until it gets one or ends.
struct Awaiting<'a> {
    progress: Option<&'a Progress>,
    /// Set at the first streamed piece, for the deadline.
    started: &'a AtomicBool,
    streamed: bool,
}

impl<'a> Awaiting<'a> {
    fn start(
        progress: Option<&'a Progress>,
        streamed: bool,
        started: &'a AtomicBool,
    ) -> Awaiting<'a> {
        let progress = progress.filter(|_| streamed);
        if let Some(p) = progress {
            p.awaiting_first.fetch_add(1, Ordering::Relaxed);
        }
        Awaiting {
            progress,
            started,
            streamed,
        }
    }

    fn first_token(&mut self) {
        if self.streamed {
            self.started.store(true, Ordering::Relaxed);
        }
        if let Some(p) = self.progress.take() {
            p.awaiting_first.fetch_sub(1, Ordering::Relaxed);
        }
    }
}

/// A streamed answer still producing tokens at the deadline runs on, up to this many deadlines
/// in all: a slow engine with a full batch (one token a second per request is normal for
/// transformers' continuous batching at 500 in flight) would otherwise have every request
/// cut and resent from the start, forever. Silence longer than the idle timeout still ends it.
const STREAMING_DEADLINES: u32 = 10;

impl Drop for Awaiting<'_> {
    fn drop(&mut self) {
        self.first_token();
    }
}

/// How to send one attempt.
#[derive(Debug, Clone)]
pub struct SendOptions<'a> {
    /// The attempt's id, sent as `X-Request-Id`.
    pub request_id: &'a str,
    /// Whole-attempt deadline; a streamed answer that has started runs on past it (up to 10×)
    /// while chunks keep coming within `idle_timeout`.
    pub timeout: Duration,
    /// Stream the answer (and reassemble it).
    pub stream: bool,
    /// With `stream`: longest silence between chunks before the attempt counts as stalled.
    pub idle_timeout: Duration,
}

/// A successful answer.
#[derive(Debug)]
pub struct Answer {
    /// HTTP status (2xx).
    pub status: u16,
    /// The response body (reassembled when streamed).
    pub body: Box<RawValue>,
    /// Token counts.
    pub usage: Usage,
    /// Time to the first generated piece (streamed attempts only).
    pub ttft: Option<Duration>,
}

/// A failed attempt.
#[derive(Debug)]
pub struct AttemptError {
    /// The class the scheduler acts on.
    pub failure: Failure,
    /// What happened, for records and logs (the server's own message when it sent one).
    pub message: String,
    /// The server's error body, when it answered with JSON.
    pub body: Option<Box<RawValue>>,
}

impl AttemptError {
    fn new(failure: Failure, message: impl Into<String>) -> Self {
        AttemptError {
            failure,
            message: message.into(),
            body: None,
        }
    }

    /// HTTP status, when the server answered.
    pub fn status(&self) -> Option<u16> {
        match &self.failure {
            Failure::Overloaded { status, .. }
            | Failure::Server { status }
            | Failure::Rejected { status } => Some(*status),
            _ => None,
        }
    }
}

#[derive(Deserialize)]
struct Envelope<'a> {
    #[serde(default, borrow)]
    usage: Option<&'a RawValue>,
    #[serde(default, borrow)]
    choices: Option<&'a RawValue>,
    #[serde(default, borrow)]
    data: Option<&'a RawValue>,
}

impl Client {
    /// Builds the client.
    pub fn new(config: ClientConfig) -> Result<Client, ClientError> {
        let http = reqwest::Client::builder()
            .connect_timeout(config.connect_timeout)
            .tcp_nodelay(true)
            // Backends are usually on the local network; a proxy from the environment would
            // silently route loopback traffic away.
            .no_proxy()
            .pool_idle_timeout(Duration::from_secs(30))
            // Inference servers do not redirect, and the redirect layer re-parses every URL.
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(ClientError)?;
        let mut connector = hyper_util::client::legacy::connect::HttpConnector::new();
        connector.set_nodelay(true);
        connector.set_connect_timeout(Some(config.connect_timeout));
        connector.enforce_http(false);
        let https = hyper_rustls::HttpsConnectorBuilder::new()
            .with_webpki_roots()
            .https_or_http()
            .enable_http1()
            .wrap_connector(connector);
        let pool = || {
            hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
                .pool_idle_timeout(Duration::from_secs(30))
                .build(https.clone())
        };
        let (fast, control) = (pool(), pool());
        let auth = config.api_key.as_ref().and_then(|k| {
            let mut v = http::HeaderValue::from_str(&format!("Bearer {k}")).ok()?;
            v.set_sensitive(true);
            Some(v)
        });
        Ok(Client {
            http,
            fast,
            control,
            api_key: config.api_key.map(Arc::from),
            auth,
        })
    }

    pub(crate) fn get(&self, url: String) -> reqwest::RequestBuilder {
        let rb = self.http.get(url);
        match &self.api_key {
            Some(k) => rb.bearer_auth(k),
            None => rb,
        }
    }

    /// Sends one attempt of a task's body to `backend`.
    ///
    /// `progress` (optional) counts tokens as streamed pieces arrive and requests still waiting
    /// for their first token, so the caller can watch the backend while requests are in flight.
    pub async fn send(
        &self,
        backend: &BackendAddr,
        endpoint: Endpoint,
        body: &Bytes,
        opts: &SendOptions<'_>,
        progress: Option<&Progress>,
    ) -> Result<Answer, AttemptError> {
        let stream = opts.stream && endpoint.generates();
        let tokens = progress.map(|p| &p.tokens);
        let started = AtomicBool::new(false);
        let mut awaiting = Awaiting::start(progress, stream, &started);
        let payload = if stream {
            with_stream_fields(body)
        } else {
            body.clone()
        };
        let mut req = http::Request::post(backend.endpoint(endpoint).clone())
            .header(http::header::CONTENT_TYPE, "application/json")
            .header("x-request-id", opts.request_id);
        if let Some(a) = &self.auth {
            req = req.header(http::header::AUTHORIZATION, a.clone());
        }
        let req = req.body(http_body_util::Full::new(payload)).map_err(|e| {
            AttemptError::new(
                Failure::Rejected { status: 0 },
                format!("cannot build the request: {e}"),
            )
        })?;
        let work = async {
            let resp = self.fast.request(req).await.map_err(classify_request)?;
            let status = resp.status().as_u16();
            if !(200..300).contains(&status) {
                let retry_after = resp
                    .headers()
                    .get(http::header::RETRY_AFTER)
                    .and_then(parse_retry_after);
                let bytes = read_all(resp.into_body()).await.unwrap_or_default();
                return Err(http_error(status, retry_after, &bytes));
            }
            // A server may ignore `stream` and answer with plain JSON: take it as it comes.
            let is_sse = resp
                .headers()
                .get(http::header::CONTENT_TYPE)
                .and_then(|v| v.to_str().ok())
                .is_some_and(|v| v.starts_with("text/event-stream"));
            if stream && is_sse {
                read_stream(
                    resp.into_body(),
                    status,
                    endpoint,
                    opts.idle_timeout,
                    tokens,
                    &mut awaiting,
                )
                .await
            } else {
                awaiting.first_token();
                let bytes = read_all(resp.into_body()).await.map_err(classify_body)?;
                let (body, usage) = check_body(&bytes, endpoint)?;
                if let Some(t) = tokens {
                    t.fetch_add(usage.completion_tokens, Ordering::Relaxed);
                }
                Ok(Answer {
                    status,
                    body,
                    usage,
                    ttft: None,
                })
            }
        };
        let mut work = std::pin::pin!(work);
        if let Ok(r) = tokio::time::timeout(opts.timeout, work.as_mut()).await {
            return r;
        }
        if !started.load(Ordering::Relaxed) {
            return Err(AttemptError::new(
                Failure::Timeout,
                format!("no complete answer within {}", humanize(opts.timeout)),
            ));
        }
        let rest = opts.timeout * (STREAMING_DEADLINES - 1);
        match tokio::time::timeout(rest, work).await {
            Ok(r) => r,
            Err(_) => Err(AttemptError::new(
                Failure::Timeout,
                format!(
                    "still streaming after {} ({STREAMING_DEADLINES} × the attempt deadline)",
                    humanize(opts.timeout * STREAMING_DEADLINES)
                ),
            )),
        }
    }

    /// `GET uri` over the control pool: status and whole body within `timeout`.
    pub(crate) async fn fetch(
        &self,
        uri: &http::Uri,
        timeout: Duration,
    ) -> Result<(u16, Bytes), FetchError> {
        let mut req = http::Request::get(uri.clone());
        if let Some(a) = &self.auth {
            req = req.header(http::header::AUTHORIZATION, a.clone());
        }
        let req = req
            .body(http_body_util::Full::new(Bytes::new()))
            .map_err(|e| FetchError::Other(format!("cannot build the request: {e}")))?;
        let work = async {
            let resp = self.control.request(req).await.map_err(|e| {
                if e.is_connect() {
                    FetchError::Connect(error_chain(&e))
                } else {
                    FetchError::Other(error_chain(&e))
                }
            })?;
            let status = resp.status().as_u16();
            let body = read_all(resp.into_body())
                .await
                .map_err(|e| FetchError::Other(error_chain(&e)))?;
            Ok((status, body))
        };
        tokio::time::timeout(timeout, work)
            .await
            .map_err(|_| FetchError::Timeout(format!("no answer within {}", humanize(timeout))))?
    }

    /// `GET /health`: whether the backend says it is serving.
    pub async fn health(
        &self,
        backend: &BackendAddr,
        timeout: Duration,
    ) -> Result<(), AttemptError> {
        let req = self.get(backend.root_url("health")).timeout(timeout).send();
        let resp = req.await.map_err(classify_transport)?;
        let status = resp.status().as_u16();
        if (200..300).contains(&status) {
            Ok(())
        } else {
            Err(AttemptError::new(
                Failure::from_status(status, None),
                format!("/health answered HTTP {status}"),
            ))
        }
    }
}

/// Puts `"stream":true` and usage reporting in front of a body that drover stripped of them.
fn with_stream_fields(body: &Bytes) -> Bytes {
    const PREFIX: &[u8] = br#"{"stream":true,"stream_options":{"include_usage":true}"#;
    let rest = &body[1..]; // skip '{'
    let mut out = Vec::with_capacity(PREFIX.len() + body.len() + 1);
    out.extend_from_slice(PREFIX);
    if rest.iter().find(|b| !b.is_ascii_whitespace()) != Some(&b'}') {
        out.push(b',');
    }
    out.extend_from_slice(rest);
    Bytes::from(out)
}

/// State of one streamed answer while its chunks arrive.
struct StreamRead<'t, 'a> {
    awaiting: &'t mut Awaiting<'a>,
    start: Instant,
    asm: StreamAssembler,
    pieces: u64,
    ttft: Option<Duration>,
    done: bool,
    failure: Option<StreamError>,
    tokens: Option<&'t AtomicU64>,
}

impl StreamRead<'_, '_> {
    fn on_event(&mut self, data: &[u8]) {
        if self.failure.is_some() || self.done {
            return;
        }
        match self.asm.push(data) {
            Ok(Chunk::Tokens(n)) if n > 0 => {
                self.awaiting.first_token();
                let start = self.start;
                self.ttft.get_or_insert_with(|| start.elapsed());
                self.pieces += u64::from(n);
                if let Some(t) = self.tokens {
                    t.fetch_add(u64::from(n), Ordering::Relaxed);
                }
            }
            Ok(Chunk::Tokens(_)) => {}
            Ok(Chunk::Done) => self.done = true,
            Err(e) => self.failure = Some(e),
        }
    }
}

async fn read_stream(
    mut body: hyper::body::Incoming,
    status: u16,
    endpoint: Endpoint,
    idle: Duration,
    tokens: Option<&AtomicU64>,
    awaiting: &mut Awaiting<'_>,
) -> Result<Answer, AttemptError> {
    use http_body_util::BodyExt;
    let mut parser = SseParser::default();
    let mut st = StreamRead {
        awaiting,
        start: Instant::now(),
        asm: StreamAssembler::new(endpoint),
        pieces: 0,
        ttft: None,
        done: false,
        failure: None,
        tokens,
    };
    loop {
        match tokio::time::timeout(idle, body.frame()).await {
            Err(_) => {
                return Err(AttemptError::new(
                    Failure::Timeout,
                    format!("stream stalled: nothing for {}", humanize(idle)),
                ));
            }
            Ok(Some(Err(e))) => {
                // A server that closes without [DONE] after the final chunk is done, not broken.
                if st.asm.is_finished() {
                    break;
                }
                return Err(classify_body(e));
            }
            Ok(None) => break,
            Ok(Some(Ok(frame))) => {
                if let Ok(bytes) = frame.into_data() {
                    parser.feed(&bytes, &mut |d| st.on_event(d));
                }
            }
        }
        if st.done || st.failure.is_some() {
            break;
        }
    }
    parser.finish(&mut |d| st.on_event(d));
    match st.failure {
        Some(StreamError::Garbage(m)) => return Err(AttemptError::new(Failure::Garbage, m)),
        Some(StreamError::Server(m)) => {
            return Err(AttemptError::new(Failure::Server { status: 500 }, m));
        }
        None => {}
    }
    if !st.done && !st.asm.is_finished() {
        return Err(AttemptError::new(
            Failure::Reset,
            "stream ended before the answer was complete",
        ));
    }
    // Reconcile the live count with the server's usage.
    let (body, usage) = st.asm.finish(st.pieces);
    if let Some(t) = tokens
        && usage.completion_tokens > st.pieces
    {
        t.fetch_add(usage.completion_tokens - st.pieces, Ordering::Relaxed);
    }
    let body = serde_json::value::to_raw_value(&body).expect("serializable");
    Ok(Answer {
        status,
        body,
        usage,
        ttft: st.ttft,
    })
}

/// The whole body.
async fn read_all(body: hyper::body::Incoming) -> Result<Bytes, hyper::Error> {
    use http_body_util::BodyExt;
    Ok(body.collect().await?.to_bytes())
}

/// Validates a 2xx body: JSON, with the field the endpoint returns.
fn check_body(bytes: &[u8], endpoint: Endpoint) -> Result<(Box<RawValue>, Usage), AttemptError> {
    let garbage = |why: String| AttemptError::new(Failure::Garbage, why);
    // One validating pass; the fields looked at are borrowed slices of the input.
    let env: Envelope<'_> = serde_json::from_slice(bytes)
        .map_err(|e| garbage(format!("response is not JSON: {e}: {}", snippet(bytes))))?;
    let has_payload = match endpoint {
        Endpoint::Embeddings => env.data.is_some(),
        _ => env.choices.is_some(),
    };
    if !has_payload {
        return Err(garbage(format!(
            "response has no {}: {}",
            if endpoint == Endpoint::Embeddings {
                "data"
            } else {
                "choices"
            },
            snippet(bytes)
        )));
    }
    let usage = env
        .usage
        .and_then(|u| serde_json::from_str::<Usage>(u.get()).ok())
        .unwrap_or_default();
    // Valid JSON (just parsed) is valid UTF-8; the body is kept as a raw value for the output.
    let text = std::str::from_utf8(bytes).map_err(|e| garbage(e.to_string()))?;
    let body: Box<RawValue> = serde_json::from_str(text).map_err(|e| garbage(e.to_string()))?;
    Ok((compact(body), usage))
}

/// A body pretty-printed across lines would break the output's one-line-per-task format. In
/// valid JSON a raw newline can only be whitespace between tokens, so it can simply go.
fn compact(body: Box<RawValue>) -> Box<RawValue> {
    if !body.get().bytes().any(|b| b == b'\n' || b == b'\r') {
        return body;
    }
    let text: String = body
        .get()
        .chars()
        .filter(|c| *c != '\n' && *c != '\r')
        .collect();
    RawValue::from_string(text).expect("removing whitespace keeps JSON valid")
}

fn http_error(status: u16, retry_after: Option<Duration>, bytes: &[u8]) -> AttemptError {
    let failure = Failure::from_status(status, retry_after);
    let message = format!("HTTP {status}: {}", server_message(bytes));
    let body = serde_json::from_slice::<Box<RawValue>>(bytes)
        .ok()
        .map(compact);
    AttemptError {
        failure,
        message,
        body,
    }
}

/// The server's own words: OpenAI/vLLM `error.message`, FastAPI `detail`, or the text.
fn server_message(bytes: &[u8]) -> String {
    if let Ok(v) = serde_json::from_slice::<serde_json::Value>(bytes) {
        if let Some(m) = v.pointer("/error/message").and_then(|m| m.as_str()) {
            return m.to_string();
        }
        if let Some(m) = v.get("message").and_then(|m| m.as_str()) {
            return m.to_string();
        }
        if let Some(d) = v.get("detail") {
            return match d.as_str() {
                Some(s) => s.to_string(),
                None => d.to_string(),
            };
        }
        if let Some(e) = v.get("error").and_then(|m| m.as_str()) {
            return e.to_string();
        }
    }
    snippet(bytes)
}

fn snippet(bytes: &[u8]) -> String {
    let s = String::from_utf8_lossy(bytes);
    let s = s.trim();
    if s.is_empty() {
        return "(empty body)".into();
    }
    let mut out: String = s.chars().take(200).collect();
    if s.chars().count() > 200 {
        out.push('…');
    }
    out
}

fn parse_retry_after(v: &http::HeaderValue) -> Option<Duration> {
    let s = v.to_str().ok()?.trim();
    if let Ok(secs) = s.parse::<f64>() {
        return (secs.is_finite() && secs >= 0.0)
            .then(|| Duration::from_secs_f64(secs.min(3600.0)));
    }
    let when = httpdate::parse_http_date(s).ok()?;
    Some(
        when.duration_since(std::time::SystemTime::now())
            .unwrap_or(Duration::ZERO),
    )
}

/// Transport errors: refused/unreachable → Connect; everything that broke a started exchange → Reset.
fn classify_transport(e: reqwest::Error) -> AttemptError {
    let failure = if e.is_connect() {
        Failure::Connect
    } else if e.is_timeout() {
        Failure::Timeout
    } else {
        Failure::Reset
    };
    AttemptError::new(failure, error_chain(&e))
}

/// The same for the hot path's client.
fn classify_request(e: hyper_util::client::legacy::Error) -> AttemptError {
    let failure = if e.is_connect() {
        Failure::Connect
    } else {
        Failure::Reset
    };
    AttemptError::new(failure, error_chain(&e))
}

/// Why a [`Client::fetch`] got no answer.
#[derive(Debug)]
pub(crate) enum FetchError {
    /// No connection could be opened.
    Connect(String),
    /// Nothing (or not all of it) within the time allowed.
    Timeout(String),
    /// The connection broke, or the request could not be made.
    Other(String),
}

impl std::fmt::Display for FetchError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            FetchError::Connect(m) | FetchError::Timeout(m) | FetchError::Other(m) => {
                f.write_str(m)
            }
        }
    }
}

/// A response body that broke off.
fn classify_body(e: hyper::Error) -> AttemptError {
    let failure = if e.is_timeout() {
        Failure::Timeout
    } else {
        Failure::Reset
    };
    AttemptError::new(failure, error_chain(&e))
}

/// `outer: inner: innermost`, so "connection refused" is visible behind reqwest's wrapper.
pub(crate) fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut src = e.source();
    while let Some(inner) = src {
        let t = inner.to_string();
        if !s.contains(&t) {
            s.push_str(": ");
            s.push_str(&t);
        }
        src = inner.source();
    }
    s
}

pub(crate) fn humanize(d: Duration) -> String {
    humantime_like(d)
}

fn humantime_like(d: Duration) -> String {
    let ms = d.as_millis();
    if ms < 1000 {
        format!("{ms}ms")
    } else if ms % 1000 == 0 {
        format!("{}s", ms / 1000)
    } else {
        format!("{:.1}s", d.as_secs_f64())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stream_fields_go_in_front() {
        assert_eq!(
            &with_stream_fields(&Bytes::from_static(br#"{"a":1}"#))[..],
            br#"{"stream":true,"stream_options":{"include_usage":true},"a":1}"#
        );
        assert_eq!(
            &with_stream_fields(&Bytes::from_static(b"{}"))[..],
            br#"{"stream":true,"stream_options":{"include_usage":true}}"#
        );
    }

    #[test]
    fn bodies_are_checked_for_their_payload() {
        let (_, u) = check_body(
            br#"{"choices":[],"usage":{"prompt_tokens":3,"completion_tokens":4}}"#,
            Endpoint::ChatCompletions,
        )
        .unwrap();
        assert_eq!(u.completion_tokens, 4);
        assert_eq!(
            check_body(b"<html>oops", Endpoint::ChatCompletions)
                .unwrap_err()
                .failure,
            Failure::Garbage
        );
        assert_eq!(
            check_body(br#"{"error":"x"}"#, Endpoint::ChatCompletions)
                .unwrap_err()
                .failure,
            Failure::Garbage
        );
        assert!(check_body(br#"{"data":[]}"#, Endpoint::Embeddings).is_ok());
        let (b, _) = check_body(
            b"{\n  \"choices\": [\"a\\nb\"]\n}\r\n",
            Endpoint::ChatCompletions,
        )
        .unwrap();
        assert_eq!(
            b.get(),
            r#"{  "choices": ["a\nb"]}"#,
            "pretty-printed bodies become one line"
        );
    }

    #[test]
    fn server_messages_are_extracted() {
        let e = http_error(400, None, br#"{"error":{"message":"This model's maximum context length is 10 tokens.","type":"BadRequestError","param":null,"code":400}}"#);
        assert_eq!(e.failure, Failure::Rejected { status: 400 });
        assert_eq!(
            e.message,
            "HTTP 400: This model's maximum context length is 10 tokens."
        );
        assert!(e.body.is_some());
        let e = http_error(
            422,
            None,
            br#"{"detail":[{"loc":["body","ignore_eos"],"msg":"extra fields not permitted"}]}"#,
        );
        assert!(e.message.contains("extra fields not permitted"));
        let e = http_error(502, None, b"Bad Gateway");
        assert_eq!(e.message, "HTTP 502: Bad Gateway");
        assert!(e.body.is_none());
        assert!(e.failure.is_transient());
    }

    #[test]
    fn retry_after_seconds_and_dates() {
        assert_eq!(
            parse_retry_after(&http::HeaderValue::from_static("2")),
            Some(Duration::from_secs(2))
        );
        assert_eq!(
            parse_retry_after(&http::HeaderValue::from_static(
                "Wed, 21 Oct 2015 07:28:00 GMT"
            )),
            Some(Duration::ZERO)
        );
        assert_eq!(
            parse_retry_after(&http::HeaderValue::from_static("soon")),
            None
        );
    }
}
