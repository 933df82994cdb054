//! Serving one instance's router on a listener, with every connection tracked so that it can be
//! reset (RST, as a crashed server's kernel would send) one at a time or all at once.
//!
//! `axum::serve` hides its connections, so the simulator runs its own accept loop: each accepted
//! socket is duplicated (the duplicate lets another task set `SO_LINGER 0` on it), served by hyper
//! on its own task, and registered in [`Conns`]. Resetting sets linger 0 and aborts the task; when
//! the task drops the socket the kernel sends RST.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use axum::Router;
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use socket2::SockRef;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::{AbortHandle, JoinHandle};
use tower::ServiceExt;

/// Open connections of one listener.
#[derive(Default)]
pub(crate) struct Conns {
    next_id: AtomicU64,
    open: Mutex<HashMap<u64, Conn>>,
}

struct Conn {
    /// A duplicate of the served socket's descriptor.
    socket: std::net::TcpStream,
    task: AbortHandle,
}

/// Lets a request reset the connection it arrived on (the `reset` fault).
#[derive(Clone)]
pub(crate) struct ConnHandle {
    id: u64,
    conns: Weak<Conns>,
}

impl ConnHandle {
    /// Resets this connection.
    pub fn reset(&self) {
        if let Some(conns) = self.conns.upgrade() {
            conns.reset(self.id);
        }
    }
}

impl Conns {
    /// Open connections.
    pub fn len(&self) -> usize {
        self.open.lock().expect("conns lock").len()
    }

    fn reset(&self, id: u64) {
        let conn = self.open.lock().expect("conns lock").remove(&id);
        if let Some(conn) = conn {
            abort(conn);
        }
    }

    /// Resets every open connection.
    pub fn reset_all(&self) {
        let all: Vec<Conn> = self
            .open
            .lock()
            .expect("conns lock")
            .drain()
            .map(|(_, c)| c)
            .collect();
        all.into_iter().for_each(abort);
    }
}

fn abort(conn: Conn) {
    // Linger 0 makes the last close of the socket an RST instead of a FIN.
    let _ = SockRef::from(&conn.socket).set_linger(Some(Duration::ZERO));
    conn.task.abort();
}

/// Removes a connection from [`Conns`] when its task ends, however it ends.
struct Registered {
    id: u64,
    conns: Arc<Conns>,
}

impl Drop for Registered {
    fn drop(&mut self) {
        self.conns.open.lock().expect("conns lock").remove(&self.id);
    }
}

/// Binds `addr` with `SO_REUSEADDR`, so that a killed instance can bind its port again at once.
pub(crate) fn bind(addr: SocketAddr) -> std::io::Result<std::net::TcpListener> {
    let socket = socket2::Socket::new(
        socket2::Domain::for_address(addr),
        socket2::Type::STREAM,
        None,
    )?;
    socket.set_reuse_address(true)?;
    socket.bind(&addr.into())?;
    socket.listen(4096)?;
    socket.set_nonblocking(true)?;
    Ok(socket.into())
}

/// Accepts connections on `listener` and serves `app` on each until `graceful` turns true; then
/// stops accepting and asks every connection to finish its request and close.
pub(crate) fn spawn_accept(
    listener: Arc<TcpListener>,
    app: Router,
    conns: Arc<Conns>,
    graceful: watch::Receiver<bool>,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        let mut stop = graceful.clone();
        loop {
            let accepted = tokio::select! {
                accepted = listener.accept() => accepted,
                () = stopped(&mut stop) => return,
            };
            let stream = match accepted {
                Ok((stream, _)) => stream,
                Err(err) if is_per_connection(&err) => continue,
                Err(err) => {
                    // Out of descriptors and the like: back off instead of spinning.
                    tracing::warn!("drover sim: accept failed: {err}");
                    tokio::time::sleep(Duration::from_millis(20)).await;
                    continue;
                }
            };
            if let Err(err) = register(stream, &app, &conns, &graceful) {
                tracing::debug!("drover sim: dropping a connection: {err}");
            }
        }
    })
}

fn is_per_connection(err: &std::io::Error) -> bool {
    use std::io::ErrorKind::*;
    matches!(
        err.kind(),
        ConnectionAborted | ConnectionReset | Interrupted | WouldBlock
    )
}

fn register(
    stream: TcpStream,
    app: &Router,
    conns: &Arc<Conns>,
    graceful: &watch::Receiver<bool>,
) -> std::io::Result<()> {
    stream.set_nodelay(true)?;
    let std_stream = stream.into_std()?;
    let duplicate = std_stream.try_clone()?;
    let stream = TcpStream::from_std(std_stream)?;
    let id = conns.next_id.fetch_add(1, Ordering::Relaxed);
    let handle = ConnHandle {
        id,
        conns: Arc::downgrade(conns),
    };
    // Registered under the lock, so that a connection that ends at once still finds its entry.
    let mut open = conns.open.lock().expect("conns lock");
    let guard = Registered {
        id,
        conns: conns.clone(),
    };
    let task = tokio::spawn(serve_connection(
        stream,
        app.clone(),
        handle,
        graceful.clone(),
        guard,
    ));
    open.insert(
        id,
        Conn {
            socket: duplicate,
            task: task.abort_handle(),
        },
    );
    Ok(())
}

async fn serve_connection(
    stream: TcpStream,
    app: Router,
    handle: ConnHandle,
    mut graceful: watch::Receiver<bool>,
    _registered: Registered,
) {
    let service = hyper::service::service_fn(move |mut request: hyper::Request<Incoming>| {
        request.extensions_mut().insert(handle.clone());
        app.clone().oneshot(request)
    });
    let connection =
        hyper::server::conn::http1::Builder::new().serve_connection(TokioIo::new(stream), service);
    tokio::pin!(connection);
    tokio::select! {
        _ = connection.as_mut() => {}
        () = stopped(&mut graceful) => {
            connection.as_mut().graceful_shutdown();
            let _ = connection.await;
        }
    }
}

/// Resolves once `graceful` is true (or its sender is gone).
async fn stopped(graceful: &mut watch::Receiver<bool>) {
    let _ = graceful.wait_for(|&s| s).await;
}
