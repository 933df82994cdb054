//! Opening the data directory and serving.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use drover_client::Client;
use drover_sched::{
    BackendSpec, Control, DispatchConfig, DispatchEvent, Dispatcher, FleetSnapshot, Wiring,
};
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tokio_util::task::TaskTracker;

use crate::api::{self, App};
use crate::error::BatchError;
use crate::lifecycle::{Ctx, DataDir};
use crate::runtime::Runtime;
use crate::store::{DB_FILE, Store};

/// OpenAI's upload limit for batch input files.
pub const DEFAULT_MAX_UPLOAD_BYTES: u64 = 200 * 1024 * 1024;

/// Tasks between the mux and the dispatcher, and the dispatcher's look-ahead: handed over, a
/// task can no longer be held back by fairness or a cancel, so these stay small. Dispatch does
/// not need more: tasks wait here only while every backend is at its limit, and the mux refills
/// them as fast as the dispatcher takes them.
const DISPATCH_INPUT: usize = 16;
const LOOKAHEAD: usize = 64;

/// Everything the server needs.
pub struct ServerConfig {
    /// `--data-dir`: the database, uploads, journals and result files.
    pub data_dir: PathBuf,
    /// Required on every `/v1` request when set.
    pub api_key: Option<String>,
    /// Largest upload, bytes.
    pub max_upload_bytes: u64,
    /// The dispatcher's policy (adaptive, retries, breakers). Its look-ahead and hedging are
    /// set here: a server's input never ends, and its queue must stay short to stay fair.
    pub dispatch: DispatchConfig,
    /// The HTTP client to the backends.
    pub client: Client,
    /// The backends discovery found.
    pub backends: Vec<BackendSpec>,
    /// Dynamic membership updates (`dns://` backends), if any.
    pub membership: Option<mpsc::Receiver<Vec<BackendSpec>>>,
    /// The model the backends serve; filled into request bodies that name none.
    pub model: Option<String>,
    /// After the shutdown signal, how long requests in flight may finish.
    pub grace: Duration,
    /// How long a cancelled or expired batch waits for its requests in flight.
    pub drain: Duration,
}

/// A batch server with its data directory open and locked.
pub struct BatchServer {
    config: ServerConfig,
    store: Store,
    dirs: DataDir,
    /// Held for the server's life: a second server on the same directory is refused.
    _lock: File,
}

impl BatchServer {
    /// Creates the directory layout, takes the directory's lock and opens the database.
    pub fn open(config: ServerConfig) -> Result<BatchServer, BatchError> {
        let root = &config.data_dir;
        for d in [
            root.clone(),
            root.join("files"),
            root.join("batches"),
            root.join("tmp"),
        ] {
            std::fs::create_dir_all(&d).map_err(BatchError::io(&d))?;
        }
        let root = root.canonicalize().map_err(BatchError::io(root))?;
        let lock_path = root.join("lock");
        let lock = File::options()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .map_err(BatchError::io(&lock_path))?;
        match lock.try_lock() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => return Err(BatchError::Locked(root)),
            Err(std::fs::TryLockError::Error(e)) => {
                return Err(BatchError::Io {
                    path: lock_path,
                    source: e,
                });
            }
        }
        clear_dir(&root.join("tmp"));
        let store = Store::open(&root.join(DB_FILE))?;
        Ok(BatchServer {
            config,
            store,
            dirs: DataDir { root },
            _lock: lock,
        })
    }

    /// The data directory (absolute).
    pub fn data_dir(&self) -> &Path {
        &self.dirs.root
    }

    /// Resumes unfinished batches, then serves on `listener` until `shutdown` completes. Then
    /// it stops accepting requests, stops sending new ones to the fleet, gives those in flight
    /// up to the grace period, syncs every journal and returns. Whatever did not finish is
    /// resumed by the next start on the same directory.
    pub async fn serve(
        self,
        listener: TcpListener,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> Result<(), BatchError> {
        let BatchServer {
            mut config,
            store,
            dirs,
            _lock,
        } = self;
        let mut dispatch = config.dispatch.clone();
        dispatch.lookahead = LOOKAHEAD;
        // Hedges copy stragglers at the end of a job's input; a server's input has no end.
        dispatch.hedge = false;
        let (input_tx, input_rx) = mpsc::channel(DISPATCH_INPUT);
        let (finished_tx, finished_rx) = mpsc::channel(4096);
        let (events_tx, events_rx) = mpsc::unbounded_channel();
        let control = Control::default();
        let dispatcher = Dispatcher::new(
            dispatch,
            config.client.clone(),
            std::mem::take(&mut config.backends),
            None,
        );
        let dispatcher = tokio::spawn(dispatcher.run(Wiring {
            input: input_rx,
            finished: finished_tx,
            events: events_tx,
            snapshot: Arc::new(Mutex::new(FleetSnapshot::default())),
            membership: config.membership.take(),
            control: control.clone(),
        }));
        tokio::spawn(log_events(events_rx));

        let (ended_tx, ended_rx) = mpsc::unbounded_channel();
        let (handle, runtime, cmds) =
            Runtime::new(config.model.clone(), config.drain, input_tx, ended_tx);
        let runtime = tokio::spawn(runtime.run(finished_rx, cmds));
        let ctx = Arc::new(Ctx {
            store,
            dirs,
            runtime: handle,
            tasks: TaskTracker::new(),
        });
        ctx.spawn_finalizer(ended_rx);
        ctx.recover().await?;

        let app = Arc::new(App {
            ctx: ctx.clone(),
            api_key: config.api_key.clone(),
            max_upload_bytes: config.max_upload_bytes,
            model: config.model.clone(),
        });
        let grace = config.grace;
        let (signalled_tx, signalled_rx) = tokio::sync::oneshot::channel::<()>();
        let http = axum::serve(listener, api::router(app)).with_graceful_shutdown(async move {
            shutdown.await;
            let _ = signalled_tx.send(());
        });
        let http_deadline = async move {
            if signalled_rx.await.is_err() {
                std::future::pending::<()>().await;
            }
            tokio::time::sleep(grace).await;
        };
        let served = tokio::select! {
            r = http.into_future() => r.map_err(BatchError::Serve),
            () = http_deadline => {
                tracing::warn!(target: "drover::batch", "HTTP requests still open after {grace:?}; closing them");
                Ok(())
            }
        };

        // Stop sending; what is in flight finishes (and is journaled) within the grace.
        control.stop_intake.cancel();
        let abort = control.abort.clone();
        let timer = tokio::spawn(async move {
            tokio::time::sleep(grace).await;
            abort.cancel();
        });
        let report = dispatcher.await.expect("dispatcher task");
        timer.abort();
        runtime.await.expect("runtime task");
        ctx.tasks.close();
        if tokio::time::timeout(grace, ctx.tasks.wait()).await.is_err() {
            tracing::warn!(target: "drover::batch", "validation or finalization still running at exit; a restart redoes it");
        }
        tracing::info!(target: "drover::batch", unfinished = report.unfinished, "stopped; unfinished requests are resumed on restart");
        served
    }
}

/// Removes what an interrupted upload left.
fn clear_dir(dir: &Path) {
    if let Ok(entries) = std::fs::read_dir(dir) {
        for e in entries.flatten() {
            let _ = std::fs::remove_file(e.path());
        }
    }
}

async fn log_events(mut events: mpsc::UnboundedReceiver<DispatchEvent>) {
    while let Some(e) = events.recv().await {
        match e {
            DispatchEvent::Ejected { backend, reason } => {
                tracing::warn!(target: "drover::batch", "backend {backend} out: {reason}")
            }
            DispatchEvent::Readmitted { backend } => {
                tracing::warn!(target: "drover::batch", "backend {backend} back")
            }
            DispatchEvent::AllDown { .. } => {
                tracing::warn!(target: "drover::batch", "every backend is down; batches wait for one to come back")
            }
            DispatchEvent::Recovered => {
                tracing::warn!(target: "drover::batch", "a backend is back; dispatch resumes")
            }
            DispatchEvent::GaveUp => {
                tracing::error!(target: "drover::batch", "gave up waiting for a backend; remaining requests fail with no_backend")
            }
            DispatchEvent::Joined { backend } => {
                tracing::warn!(target: "drover::batch", "backend {backend} joined")
            }
            DispatchEvent::Left { backend } => {
                tracing::warn!(target: "drover::batch", "backend {backend} left; draining")
            }
        }
    }
}
