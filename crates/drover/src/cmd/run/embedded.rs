//! No backend given: the job runs on the embedded llama.cpp engine, served in-process on a
//! loopback port so it goes through exactly the same client path as a remote fleet.

/// A running embedded engine; dropping it stops the server.
pub struct Embedded {
    /// Base URL (`http://127.0.0.1:PORT`).
    pub url: String,
    /// What to print in the banner.
    pub description: String,
    #[cfg(feature = "engine")]
    _server: drover_engine::LocalServer,
}

/// Starts the embedded engine with the default model (or `DROVER_MODEL`).
#[cfg(feature = "engine")]
pub async fn start() -> Result<Embedded, String> {
    let model = drover_engine::EngineConfig::default_model_path().map_err(|e| e.to_string())?;
    let config = drover_engine::EngineConfig::new(model);
    let description = format!(
        "embedded llama.cpp engine, model {} ({} parallel, {} threads)",
        config.served_name(),
        config.parallel,
        config.effective_threads()
    );
    let (url, server) = drover_engine::spawn_local(config)
        .await
        .map_err(|e| e.to_string())?;
    Ok(Embedded {
        url,
        description,
        _server: server,
    })
}

/// This build has no engine.
#[cfg(not(feature = "engine"))]
pub async fn start() -> Result<Embedded, String> {
    Err("no backend given (-b, DROVER_BACKENDS or VLLM_PORTS), and this build has no embedded engine: \
         name your backends, or rebuild with the default `engine` feature"
        .into())
}
