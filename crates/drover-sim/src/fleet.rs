//! Simulated instances in one process: each has its own engine, router and listener, and can be
//! killed (listener closed, connections reset, engine state lost), revived on the same port with a
//! fresh engine, or stalled (health 200, no progress).

use std::net::{SocketAddr, ToSocketAddrs};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use axum::Router;
use drover_server::{Engine, ServerOptions};
use socket2::SockRef;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::backend::{self, SimBackend};
use crate::config::SimConfig;
use crate::error::SimError;
use crate::faults::{self, FaultLayer};
use crate::rng::Draws;
use crate::server::{self, Conns};

/// How long a shutdown waits for open requests before resetting their connections.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(1);
/// How long a revive keeps trying to bind its port when something else holds it.
const REBIND_FOR: Duration = Duration::from_secs(10);

/// What `/version` reports.
const VERSION: &str = concat!("drover-sim-", env!("CARGO_PKG_VERSION"));

/// A running instance's parts; dropped by a kill.
struct Live {
    listener: Arc<TcpListener>,
    accept: JoinHandle<()>,
    conns: Arc<Conns>,
    engine: Arc<dyn SimBackend>,
    graceful: watch::Sender<bool>,
}

struct Instance {
    addr: SocketAddr,
    config: SimConfig,
    runtime: tokio::runtime::Handle,
    live: Mutex<Option<Live>>,
    /// Set by `shutdown`: a scheduled revive must not bring the instance back.
    closing: std::sync::atomic::AtomicBool,
}

/// The router of one instance: the OpenAI front over its engine, behind fault injection.
fn instance_router(engine: Arc<dyn SimBackend>, config: &SimConfig) -> Router {
    let options = ServerOptions {
        api_key: config.api_key.clone(),
        time_scale: config.time_scale,
        version: VERSION.to_string(),
        metrics: !config.hide_metrics,
        ..ServerOptions::default()
    };
    let layer = Arc::new(FaultLayer {
        faults: config.faults.clone(),
        draws: Draws::new(config.seed, 3),
    });
    let engine: Arc<dyn Engine> = engine;
    drover_server::router(engine, options)
        .layer(axum::middleware::from_fn_with_state(layer, faults::inject))
}

impl Instance {
    fn new(listener: TcpListener, config: SimConfig) -> std::io::Result<Arc<Instance>> {
        let instance = Arc::new(Instance {
            addr: listener.local_addr()?,
            config,
            runtime: tokio::runtime::Handle::current(),
            live: Mutex::new(None),
            closing: false.into(),
        });
        let live = instance.launch(listener);
        *instance.live.lock().expect("live lock") = Some(live);
        Ok(instance)
    }

    fn launch(&self, listener: TcpListener) -> Live {
        let _enter = self.runtime.enter();
        let engine = backend::start(&self.config);
        let conns = Arc::new(Conns::default());
        let (graceful, graceful_rx) = watch::channel(false);
        let listener = Arc::new(listener);
        let app = instance_router(engine.clone(), &self.config);
        let accept = server::spawn_accept(listener.clone(), app, conns.clone(), graceful_rx);
        Live {
            listener,
            accept,
            conns,
            engine,
            graceful,
        }
    }

    fn kill(&self) {
        let Some(live) = self.live.lock().expect("live lock").take() else {
            return;
        };
        // Shutting the listening socket down refuses new connections now, before the accept task
        // (which owns the descriptor too) is dropped.
        let _ = SockRef::from(&*live.listener).shutdown(std::net::Shutdown::Both);
        live.accept.abort();
        live.conns.reset_all();
        live.engine.stop();
    }

    /// Binds the port again with a fresh engine; `false` if the port is taken.
    fn try_revive(&self) -> std::io::Result<()> {
        let mut slot = self.live.lock().expect("live lock");
        if slot.is_some() || self.closing.load(std::sync::atomic::Ordering::Relaxed) {
            return Ok(());
        }
        let std_listener = server::bind(self.addr)?;
        let listener = {
            let _enter = self.runtime.enter();
            TcpListener::from_std(std_listener)?
        };
        *slot = Some(self.launch(listener));
        Ok(())
    }

    fn revive(self: &Arc<Self>) {
        if let Err(err) = self.try_revive() {
            tracing::warn!(
                "drover sim: cannot bind {} again yet ({err}); retrying",
                self.addr
            );
            let weak = Arc::downgrade(self);
            self.runtime.spawn(async move {
                let until = Instant::now() + REBIND_FOR;
                while Instant::now() < until {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    let Some(instance) = weak.upgrade() else {
                        return;
                    };
                    match instance.try_revive() {
                        Ok(()) => return,
                        Err(err) if Instant::now() >= until => {
                            tracing::error!(
                                "drover sim: giving up reviving {}: {err}",
                                instance.addr
                            );
                        }
                        Err(_) => {}
                    }
                }
            });
        }
    }

    fn stall(&self, stalled: bool) {
        if let Some(live) = self.live.lock().expect("live lock").as_ref() {
            live.engine.set_stalled(stalled);
        }
    }

    /// Stops accepting, lets open requests finish for [`SHUTDOWN_GRACE`], resets the rest.
    async fn shutdown(&self) {
        self.closing
            .store(true, std::sync::atomic::Ordering::Relaxed);
        let Some(live) = self.live.lock().expect("live lock").take() else {
            return;
        };
        let _ = live.graceful.send(true);
        let _ = live.accept.await;
        let deadline = Instant::now() + SHUTDOWN_GRACE;
        while live.conns.len() > 0 && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        live.conns.reset_all();
        live.engine.stop();
    }

    /// Starts the instance's timed faults (kill/revive, stall) as background tasks.
    fn schedule(self: &Arc<Self>) -> Vec<JoinHandle<()>> {
        let f = &self.config.faults;
        let mut tasks = Vec::new();
        if let Some(kill_after) = f.kill_after {
            let (weak, revive_after) = (Arc::downgrade(self), f.revive_after);
            tasks.push(tokio::spawn(async move {
                tokio::time::sleep(kill_after).await;
                let Some(instance) = weak.upgrade() else {
                    return;
                };
                tracing::info!("drover sim: killing {} (--kill-after)", instance.addr);
                instance.kill();
                drop(instance);
                if let Some(revive_after) = revive_after {
                    tokio::time::sleep(revive_after).await;
                    if let Some(instance) = weak.upgrade() {
                        tracing::info!("drover sim: reviving {} (--revive-after)", instance.addr);
                        instance.revive();
                    }
                }
            }));
        }
        if let Some(stall_after) = f.stall_after {
            let (weak, stall_for) = (Arc::downgrade(self), f.stall_for);
            tasks.push(tokio::spawn(async move {
                tokio::time::sleep(stall_after).await;
                with(&weak, |i| i.stall(true));
                if let Some(stall_for) = stall_for {
                    tokio::time::sleep(stall_for).await;
                    with(&weak, |i| i.stall(false));
                }
            }));
        }
        tasks
    }
}

fn with(weak: &Weak<Instance>, f: impl FnOnce(&Instance)) {
    if let Some(instance) = weak.upgrade() {
        f(&instance);
    }
}

/// N simulated instances serving in the background.
pub struct Fleet {
    instances: Vec<Arc<Instance>>,
    scheduled: Vec<JoinHandle<()>>,
}

impl Fleet {
    /// Binds every port on `host` (0 = any free port), then starts one instance per port with its
    /// config (`configs` has one entry per port, or a single entry for all). Nothing is left
    /// running when an error is returned.
    pub async fn start(
        host: &str,
        ports: &[u16],
        configs: Vec<SimConfig>,
    ) -> Result<Fleet, SimError> {
        if ports.is_empty() {
            return Err(SimError::invalid("--ports", "give at least one port"));
        }
        let configs = match configs.len() {
            1 => vec![configs[0].clone(); ports.len()],
            n if n == ports.len() => configs,
            n => {
                return Err(SimError::invalid(
                    "--ports",
                    format!(
                        "{} ports but {n} instance configurations: give one per port",
                        ports.len()
                    ),
                ));
            }
        };
        for config in &configs {
            config.validate()?;
        }
        let mut listeners = Vec::with_capacity(ports.len());
        for &port in ports {
            let addr = resolve(host, port)?;
            let std_listener = server::bind(addr).map_err(|source| SimError::Bind {
                addr: addr.to_string(),
                source,
            })?;
            let listener =
                TcpListener::from_std(std_listener).map_err(|source| SimError::Bind {
                    addr: addr.to_string(),
                    source,
                })?;
            listeners.push(listener);
        }
        let mut fleet = Fleet {
            instances: Vec::with_capacity(ports.len()),
            scheduled: Vec::new(),
        };
        for (listener, config) in listeners.into_iter().zip(configs) {
            let addr = listener
                .local_addr()
                .map(|a| a.to_string())
                .unwrap_or_default();
            let instance = Instance::new(listener, config)
                .map_err(|source| SimError::Bind { addr, source })?;
            fleet.scheduled.extend(instance.schedule());
            fleet.instances.push(instance);
        }
        Ok(fleet)
    }

    /// Instances in the fleet.
    pub fn len(&self) -> usize {
        self.instances.len()
    }

    /// Whether the fleet has no instance (never true for a started fleet).
    pub fn is_empty(&self) -> bool {
        self.instances.is_empty()
    }

    /// Each instance's base URL, `http://127.0.0.1:PORT`.
    pub fn urls(&self) -> Vec<String> {
        self.instances
            .iter()
            .map(|i| format!("http://{}", i.addr))
            .collect()
    }

    /// Each instance's bound address.
    pub fn addrs(&self) -> Vec<SocketAddr> {
        self.instances.iter().map(|i| i.addr).collect()
    }

    /// Each instance's configuration.
    pub fn config(&self, i: usize) -> &SimConfig {
        &self.instances[i].config
    }

    /// Kills instance `i`: its listener closes (connections are refused), open connections are
    /// reset (`SO_LINGER 0`), and its engine state is lost. Panics if `i` is out of range.
    pub fn kill(&self, i: usize) {
        self.instances[i].kill();
    }

    /// Brings a killed instance back on the same port with a fresh engine (cold prefix cache,
    /// slow start again). If the port is briefly taken, it keeps trying in the background.
    pub fn revive(&self, i: usize) {
        self.instances[i].revive();
    }

    /// Stalls (or resumes) instance `i`: `/health` still answers 200 but the engine makes no
    /// progress, so requests are accepted and hang.
    pub fn stall(&self, i: usize, stalled: bool) {
        self.instances[i].stall(stalled);
    }

    /// Stops every instance: no new connections, open requests get a short grace, then resets.
    pub async fn shutdown(self) {
        for task in &self.scheduled {
            task.abort();
        }
        let stops: Vec<_> = self
            .instances
            .iter()
            .map(|i| {
                let i = i.clone();
                tokio::spawn(async move { i.shutdown().await })
            })
            .collect();
        for stop in stops {
            let _ = stop.await;
        }
    }
}

fn resolve(host: &str, port: u16) -> Result<SocketAddr, SimError> {
    let bad = |message: String| SimError::invalid("--host", message);
    let mut addrs = (host, port)
        .to_socket_addrs()
        .map_err(|e| bad(format!("cannot resolve {host:?}: {e}")))?;
    addrs
        .next()
        .ok_or_else(|| bad(format!("{host:?} resolves to no address")))
}

/// Serves one simulated instance on an already-bound listener until `shutdown` completes
/// (per-request faults, slow start and stall apply; a timed kill closes the listener for good
/// unless a revive is configured).
pub async fn serve_instance(
    listener: TcpListener,
    config: SimConfig,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    config
        .validate()
        .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))?;
    let instance = Instance::new(listener, config)?;
    let scheduled = instance.schedule();
    shutdown.await;
    for task in &scheduled {
        task.abort();
    }
    instance.shutdown().await;
    Ok(())
}
