//! The engine behind the OpenAI front on a loopback port, inside the current process: what
//! `drover run` starts when no backend is configured.

use std::sync::Arc;

use drover_server::{Engine, ServerOptions};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use crate::{EngineConfig, EngineError, LlamaEngine};

/// A running in-process server; dropping it (or [`LocalServer::shutdown`]) stops it.
#[derive(Debug)]
pub struct LocalServer {
    engine: Arc<LlamaEngine>,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<std::io::Result<()>>>,
}

impl LocalServer {
    /// The engine being served (for its model name, stats and gauges).
    pub fn engine(&self) -> &Arc<LlamaEngine> {
        &self.engine
    }

    /// Stops accepting, lets open requests finish (the front's shutdown grace), and waits.
    pub async fn shutdown(mut self) -> Result<(), EngineError> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        match self.task.take() {
            Some(task) => match task.await {
                Ok(result) => result.map_err(|source| EngineError::Io {
                    context: "serving the embedded engine".into(),
                    source,
                }),
                Err(e) => Err(EngineError::Thread(format!(
                    "the embedded server task failed: {e}"
                ))),
            },
            None => Ok(()),
        }
    }
}

impl Drop for LocalServer {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

/// Loads the engine, binds 127.0.0.1:0 and serves it in the background on the current tokio
/// runtime; returns the base URL (`http://127.0.0.1:PORT`, no `/v1`) and the server's handle.
pub async fn spawn_local(config: EngineConfig) -> Result<(String, LocalServer), EngineError> {
    // Loading maps the model and allocates the KV cache: blocking work, off the async workers.
    let engine = tokio::task::spawn_blocking(move || LlamaEngine::load(config))
        .await
        .map_err(|e| EngineError::Thread(format!("loading the engine panicked: {e}")))??;
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", 0))
        .await
        .map_err(|source| EngineError::Io {
            context: "binding 127.0.0.1:0 for the embedded engine".into(),
            source,
        })?;
    let addr = listener.local_addr().map_err(|source| EngineError::Io {
        context: "reading the embedded engine's address".into(),
        source,
    })?;
    let (stop, stopped) = oneshot::channel::<()>();
    let served: Arc<dyn Engine> = engine.clone();
    let task = tokio::spawn(drover_server::serve(
        listener,
        served,
        ServerOptions::default(),
        async move {
            // Either an explicit stop or the handle being dropped.
            let _ = stopped.await;
        },
    ));
    Ok((
        format!("http://{addr}"),
        LocalServer {
            engine,
            stop: Some(stop),
            task: Some(task),
        },
    ))
}
