//! Each backend's own kept-alive HTTP/1.1 connections.
//!
//! Why not hyper-util's pool: it keeps every host's idle connections in one map under one
//! lock, keyed by scheme and authority (hashed with SipHash, the authority a byte at a time),
//! and drops a host's entry whenever its idle list empties, to allocate it again on the next
//! return. With one busy backend the list rarely empties; with 256 backends holding four
//! requests each it empties every few requests, so drover's cost per task grew with the fleet
//! (`docs/benchmarks.md`, #10). Here a backend owns its connections: a checkout pops its own
//! stack, and nothing is hashed, allocated or shared with other backends.

use std::future::poll_fn;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use bytes::Bytes;
use hyper::body::Incoming;
use hyper::client::conn::http1;
use tower_service::Service;

/// Request bodies: always whole.
pub(crate) type Body = http_body_util::Full<Bytes>;

/// Opens connections, with TLS for `https` backends.
pub(crate) type Connector =
    hyper_rustls::HttpsConnector<hyper_util::client::legacy::connect::HttpConnector>;

type Sender = http1::SendRequest<Body>;

/// An idle connection older than this is closed rather than reused. Servers usually close
/// theirs sooner (uvicorn after 5 s); a connection the server closed is noticed and skipped.
const IDLE_FOR: Duration = Duration::from_secs(30);

/// One backend's idle connections, the most recently used on top: a busy backend keeps
/// reusing a few warm ones, and the rest age out at the bottom.
#[derive(Default)]
pub(crate) struct Pool {
    idle: Mutex<Vec<(Sender, Instant)>>,
}

impl std::fmt::Debug for Pool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let idle = self.idle.lock().map_or(0, |v| v.len());
        f.debug_struct("Pool").field("idle", &idle).finish()
    }
}

/// Why a request got no response.
#[derive(Debug)]
pub(crate) enum SendError {
    /// No connection could be opened.
    Connect(Box<dyn std::error::Error + Send + Sync>),
    /// The connection broke before the response's head arrived.
    Broken(hyper::Error),
}

/// The connection a response came on. [`Lease::release`] it once the response's body has been
/// read to its end; dropped instead, it closes.
pub(crate) struct Lease<'p> {
    pool: &'p Pool,
    sender: Sender,
}

impl Lease<'_> {
    /// Returns the connection to its backend's pool for the next request.
    pub(crate) fn release(self) {
        self.pool.put(self.sender, Instant::now());
    }
}

impl Pool {
    /// Sends `req` (origin-form URI, `Host` set) over an idle connection, or a new one to
    /// `root` when none is left. A request that an idle connection could not take (the server
    /// closed it meanwhile; hyper hands the request back unsent) goes to the next one, as
    /// hyper-util's client does.
    pub(crate) async fn send(
        &self,
        connector: &Connector,
        root: &http::Uri,
        mut req: http::Request<Body>,
    ) -> Result<(http::Response<Incoming>, Lease<'_>), SendError> {
        while let Some(mut sender) = self.take(Instant::now()) {
            if sender.ready().await.is_err() {
                continue;
            }
            match sender.try_send_request(req).await {
                Ok(resp) => return Ok((resp, self.lease(sender))),
                Err(mut e) => match e.take_message() {
                    Some(unsent) => req = unsent,
                    None => return Err(SendError::Broken(e.into_error())),
                },
            }
        }
        // Boxed: a connect's state (TCP, TLS, handshake) is most of this future's size, and
        // this future is inside every attempt's task, copied whole when the task is spawned
        // and again when it ends. Connects are rare; the copies were once per task.
        let mut sender = Box::pin(connect(connector, root)).await?;
        let resp = sender.send_request(req).await.map_err(SendError::Broken)?;
        Ok((resp, self.lease(sender)))
    }

    fn lease(&self, sender: Sender) -> Lease<'_> {
        Lease { pool: self, sender }
    }

    /// The most recently used idle connection that is still open; expired ones are closed.
    fn take(&self, now: Instant) -> Option<Sender> {
        let mut idle = self.idle.lock().unwrap_or_else(|e| e.into_inner());
        while let Some((sender, since)) = idle.pop() {
            if now.saturating_duration_since(since) >= IDLE_FOR {
                // The top is the newest: everything below is older still.
                idle.clear();
                return None;
            }
            if !sender.is_closed() {
                return Some(sender);
            }
        }
        None
    }

    fn put(&self, sender: Sender, now: Instant) {
        if sender.is_closed() {
            return;
        }
        let mut idle = self.idle.lock().unwrap_or_else(|e| e.into_inner());
        // The oldest sits at the bottom; one that expired goes now rather than at the next
        // checkout that reaches it (a backend that went quiet keeps none open for long).
        if idle
            .first()
            .is_some_and(|(_, since)| now.saturating_duration_since(*since) >= IDLE_FOR)
        {
            idle.retain(|(_, since)| now.saturating_duration_since(*since) < IDLE_FOR);
        }
        idle.push((sender, now));
    }

    /// How many idle connections the backend has (tests).
    #[cfg(test)]
    pub(crate) fn idle(&self) -> usize {
        self.idle.lock().map_or(0, |v| v.len())
    }
}

/// Opens a connection to `root` and starts driving it.
async fn connect(connector: &Connector, root: &http::Uri) -> Result<Sender, SendError> {
    let mut connector = connector.clone();
    poll_fn(|cx| connector.poll_ready(cx))
        .await
        .map_err(SendError::Connect)?;
    let io = connector
        .call(root.clone())
        .await
        .map_err(SendError::Connect)?;
    let (sender, conn) = http1::handshake(io)
        .await
        .map_err(|e| SendError::Connect(e.into()))?;
    tokio::spawn(async move {
        if let Err(e) = conn.await {
            tracing::debug!(target: "drover::client", error = %e, "connection closed");
        }
    });
    Ok(sender)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A loopback server that answers every request on a connection with "ok" and counts the
    /// connections it accepted; it drops a connection, without a word, after `per_conn` answers.
    async fn server(
        per_conn: usize,
    ) -> (http::Uri, std::sync::Arc<std::sync::atomic::AtomicUsize>) {
        use std::sync::Arc;
        use std::sync::atomic::{AtomicUsize, Ordering};
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let accepted = Arc::new(AtomicUsize::new(0));
        let count = accepted.clone();
        tokio::spawn(async move {
            while let Ok((mut s, _)) = listener.accept().await {
                count.fetch_add(1, Ordering::SeqCst);
                tokio::spawn(async move {
                    let mut buf = Vec::new();
                    let mut served = 0;
                    let mut chunk = [0u8; 4096];
                    while served < per_conn {
                        let Ok(n) = s.read(&mut chunk).await else {
                            return;
                        };
                        if n == 0 {
                            return;
                        }
                        buf.extend_from_slice(&chunk[..n]);
                        while let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                            buf.drain(..end + 4);
                            served += 1;
                            let resp = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok";
                            if s.write_all(resp).await.is_err() {
                                return;
                            }
                        }
                    }
                });
            }
        });
        (format!("http://{addr}").parse().unwrap(), accepted)
    }

    fn connector() -> Connector {
        let mut http = hyper_util::client::legacy::connect::HttpConnector::new();
        http.enforce_http(false);
        hyper_rustls::HttpsConnectorBuilder::new()
            .with_webpki_roots()
            .https_or_http()
            .enable_http1()
            .wrap_connector(http)
    }

    fn get(root: &http::Uri) -> http::Request<Body> {
        http::Request::get("/x")
            .header(http::header::HOST, root.authority().unwrap().as_str())
            .body(Body::default())
            .unwrap()
    }

    async fn roundtrip(pool: &Pool, c: &Connector, root: &http::Uri) -> Result<Bytes, String> {
        use http_body_util::BodyExt;
        let (resp, lease) = pool
            .send(c, root, get(root))
            .await
            .map_err(|e| format!("{e:?}"))?;
        let body = resp
            .into_body()
            .collect()
            .await
            .map_err(|e| e.to_string())?;
        lease.release();
        Ok(body.to_bytes())
    }

    #[tokio::test]
    async fn a_released_connection_is_reused() {
        let (root, accepted) = server(usize::MAX).await;
        let (pool, c) = (Pool::default(), connector());
        for _ in 0..5 {
            assert_eq!(roundtrip(&pool, &c, &root).await.unwrap(), "ok");
        }
        assert_eq!(accepted.load(std::sync::atomic::Ordering::SeqCst), 1);
        assert_eq!(pool.idle(), 1);
    }

    #[tokio::test]
    async fn connections_the_server_closed_are_skipped() {
        // The server drops each connection after one answer, as a server does at its keep-alive
        // timeout: every request after the first finds a dead connection in the pool and must
        // still be answered, on a new one.
        let (root, accepted) = server(1).await;
        let (pool, c) = (Pool::default(), connector());
        for _ in 0..4 {
            assert_eq!(roundtrip(&pool, &c, &root).await.unwrap(), "ok");
            // Time for the close to reach the client, as between a server's timeout and the
            // next request.
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert_eq!(accepted.load(std::sync::atomic::Ordering::SeqCst), 4);
    }

    #[tokio::test]
    async fn an_unreleased_connection_is_not_reused() {
        let (root, accepted) = server(usize::MAX).await;
        let (pool, c) = (Pool::default(), connector());
        let (_resp, lease) = pool.send(&c, &root, get(&root)).await.unwrap();
        drop(lease);
        roundtrip(&pool, &c, &root).await.unwrap();
        assert_eq!(accepted.load(std::sync::atomic::Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn expired_connections_are_closed_not_reused() {
        let (root, accepted) = server(usize::MAX).await;
        let (pool, c) = (Pool::default(), connector());
        roundtrip(&pool, &c, &root).await.unwrap();
        // Age the idle connection past IDLE_FOR.
        {
            let mut idle = pool.idle.lock().unwrap();
            let since = &mut idle[0].1;
            *since = since.checked_sub(IDLE_FOR).unwrap();
        }
        roundtrip(&pool, &c, &root).await.unwrap();
        assert_eq!(accepted.load(std::sync::atomic::Ordering::SeqCst), 2);
        assert_eq!(pool.idle(), 1, "the expired one is gone, the new one kept");
    }

    #[test]
    fn a_send_does_not_carry_a_connect_inline() {
        // Every attempt's task holds a send; a connect's state would double its size.
        fn size<F>(_: &F) -> usize {
            std::mem::size_of::<F>()
        }
        let (pool, c) = (Pool::default(), connector());
        let root: http::Uri = "http://127.0.0.1:1".parse().unwrap();
        let send = pool.send(&c, &root, get(&root));
        let connect = connect(&c, &root);
        assert!(
            size(&send) < size(&connect),
            "{} vs {}",
            size(&send),
            size(&connect)
        );
    }

    #[tokio::test]
    async fn a_refused_connect_is_a_connect_error() {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let root: http::Uri = format!("http://{}", l.local_addr().unwrap())
            .parse()
            .unwrap();
        drop(l);
        let err = Pool::default()
            .send(&connector(), &root, get(&root))
            .await
            .err()
            .unwrap();
        assert!(matches!(err, SendError::Connect(_)), "{err:?}");
    }
}
