//! A running fleet: the handle the caller holds, and the supervisor thread behind it.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::mpsc::{Receiver, sync_channel};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::Duration;

use drover_client::{Client, ClientConfig};
use nix::sys::signal::Signal;
use tokio_util::sync::CancellationToken;

use crate::backoff::Backoff;
use crate::error::LaunchError;
use crate::event::Event;
use crate::plan::InstanceSpec;
use crate::process;
use crate::supervise::{self, Ctx};

/// What to run and how to watch it.
#[derive(Debug, Clone)]
pub struct FleetSpec {
    /// The instances, from [`crate::FleetRequest::instances`].
    pub instances: Vec<InstanceSpec>,
    /// Where `<name>.log` of each instance goes (created if missing).
    pub log_dir: PathBuf,
    /// How long an instance may take from spawn to ready (a 70B model can take many minutes).
    pub ready_timeout: Duration,
    /// How long a stopped instance may take to exit before SIGKILL.
    pub grace: Duration,
    /// Restart delays after crashes.
    pub backoff: Backoff,
    /// Pause between readiness probes of a starting instance.
    pub probe_interval: Duration,
    /// Linux: have the kernel SIGTERM each instance if the supervisor dies (see the crate docs).
    pub parent_death_signal: bool,
}

impl FleetSpec {
    /// Defaults: ready timeout 20 min, grace 10 s, backoff 1 s doubling to 30 s, probes every
    /// 500 ms, parent-death signal on.
    pub fn new(instances: Vec<InstanceSpec>, log_dir: PathBuf) -> FleetSpec {
        FleetSpec {
            instances,
            log_dir,
            ready_timeout: Duration::from_secs(20 * 60),
            grace: Duration::from_secs(10),
            backoff: Backoff::default(),
            probe_interval: Duration::from_millis(500),
            parent_death_signal: true,
        }
    }
}

/// How teardown went.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Teardown {
    /// Instances that exited within the grace.
    pub stopped: usize,
    /// Pids of instances whose groups needed SIGKILL.
    pub killed: Vec<u32>,
    /// Pids that had not even died of SIGKILL when teardown gave up waiting (left to the kernel).
    pub unreaped: Vec<u32>,
}

/// Live process groups by instance index: what [`Stopper`] and the panic guard can reach from
/// any thread.
#[derive(Debug, Clone, Default)]
pub(crate) struct Registry(Arc<Mutex<BTreeMap<usize, u32>>>);

impl Registry {
    pub(crate) fn insert(&self, index: usize, pgid: u32) {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(index, pgid);
    }

    /// Forget a group *before* its leader is reaped, so that its number is never signalled
    /// after it could have been recycled.
    pub(crate) fn remove(&self, index: usize) {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(&index);
    }

    fn pids(&self) -> Vec<(usize, u32)> {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
            .map(|(i, p)| (*i, *p))
            .collect()
    }

    fn signal_all(&self, signal: Signal) {
        for pgid in self
            .0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .values()
        {
            process::signal_group(*pgid, signal);
        }
    }
}

/// Stops a fleet from any thread (a signal handler's, say).
#[derive(Debug, Clone)]
pub struct Stopper {
    cancel: CancellationToken,
    registry: Registry,
}

impl Stopper {
    /// Asks the supervisor to stop: no more restarts, then the usual teardown (SIGTERM, grace,
    /// SIGKILL). Returns at once.
    pub fn stop(&self) {
        self.cancel.cancel();
    }

    /// Sends SIGTERM to every instance's process group now, without waiting for the supervisor:
    /// for when this process is about to exit without its teardown.
    pub fn terminate_now(&self) {
        self.registry.signal_all(Signal::SIGTERM);
    }

    /// Sends SIGKILL to every instance's process group now (a second Ctrl-C during teardown).
    pub fn kill_now(&self) {
        self.registry.signal_all(Signal::SIGKILL);
    }
}

/// A running fleet. Dropping it stops the fleet and waits for the teardown, so that a panic
/// unwinding through the owner leaves no process behind.
pub struct Fleet {
    thread: Option<JoinHandle<Teardown>>,
    stopper: Stopper,
    ready: Option<Receiver<Result<(), LaunchError>>>,
    urls: Vec<String>,
}

/// Kills every group if the supervisor thread panics: its processes would otherwise outlive
/// their only owner.
struct PanicGuard(Registry);

impl Drop for PanicGuard {
    fn drop(&mut self) {
        if std::thread::panicking() {
            self.0.signal_all(Signal::SIGKILL);
        }
    }
}

impl Fleet {
    /// Starts every instance on a supervisor thread and returns at once; `on_event` is called on
    /// that thread for every [`Event`].
    pub fn start(
        spec: FleetSpec,
        on_event: impl Fn(Event) + Send + 'static,
    ) -> Result<Fleet, LaunchError> {
        std::fs::create_dir_all(&spec.log_dir).map_err(|source| LaunchError::LogDir {
            path: spec.log_dir.clone(),
            source,
        })?;
        let client = Client::new(ClientConfig {
            connect_timeout: Duration::from_secs(2),
            ..ClientConfig::default()
        })
        .map_err(|e| LaunchError::Supervisor(std::io::Error::other(e)))?;
        let urls = spec.instances.iter().map(|i| i.url.clone()).collect();
        let stopper = Stopper {
            cancel: CancellationToken::new(),
            registry: Registry::default(),
        };
        let (ready_tx, ready_rx) = sync_channel(1);
        let ctx = Ctx {
            spec,
            client,
            cancel: stopper.cancel.clone(),
            registry: stopper.registry.clone(),
            emit: Box::new(on_event),
        };
        let thread = std::thread::Builder::new()
            .name("drover-launch".into())
            .spawn(move || {
                let _guard = PanicGuard(ctx.registry.clone());
                let rt = match tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                {
                    Ok(rt) => rt,
                    Err(e) => {
                        let _ = ready_tx.try_send(Err(LaunchError::Supervisor(e)));
                        return Teardown::default();
                    }
                };
                rt.block_on(supervise::run(ctx, ready_tx))
            })
            .map_err(LaunchError::Supervisor)?;
        Ok(Fleet {
            thread: Some(thread),
            stopper,
            ready: Some(ready_rx),
            urls,
        })
    }

    /// Blocks until every instance is ready (`Ok`), one fails its start-up, or the fleet is
    /// stopped. After the first call it answers `Ok` only if the first call did.
    pub fn wait_ready(&mut self) -> Result<(), LaunchError> {
        let Some(rx) = self.ready.take() else {
            return Err(LaunchError::Stopped);
        };
        // A dropped sender means the supervisor ended (or panicked) without a verdict.
        let result = rx.recv().unwrap_or(Err(LaunchError::Stopped));
        if result.is_ok() {
            let (tx, rx) = sync_channel(1);
            let _ = tx.send(Ok(()));
            self.ready = Some(rx);
        }
        result
    }

    /// Each instance's URL (`http://127.0.0.1:PORT`), in instance order.
    pub fn urls(&self) -> &[String] {
        &self.urls
    }

    /// The pid (= process group) of each instance running now, by instance index.
    pub fn pids(&self) -> Vec<(usize, u32)> {
        self.stopper.registry.pids()
    }

    /// A handle that stops the fleet from another thread.
    pub fn stopper(&self) -> Stopper {
        self.stopper.clone()
    }

    /// Stops every instance (SIGTERM, grace, SIGKILL) and waits until all are reaped.
    pub fn shutdown(mut self) -> Teardown {
        self.stop_and_join()
    }

    fn stop_and_join(&mut self) -> Teardown {
        self.stopper.stop();
        match self.thread.take().map(JoinHandle::join) {
            Some(Ok(report)) => report,
            // The guard killed every group as the supervisor unwound.
            Some(Err(_)) => Teardown::default(),
            None => Teardown::default(),
        }
    }
}

impl Drop for Fleet {
    fn drop(&mut self) {
        self.stop_and_join();
    }
}
