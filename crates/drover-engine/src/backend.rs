//! The process-wide llama.cpp backend.
//!
//! `LlamaBackend::init` succeeds once per process and its `Drop` de-initialises llama.cpp, so the
//! backend lives in a global that is never dropped: two engines in one process (tests, or a
//! `drover run` that starts one after another) share it.

use std::sync::OnceLock;

use llama_cpp_2::llama_backend::LlamaBackend;

use crate::EngineError;

static BACKEND: OnceLock<LlamaBackend> = OnceLock::new();

/// The initialised backend, initialising it on first use.
///
/// llama.cpp's own log lines go nowhere unless `DROVER_LLAMA_LOG` is set: they are verbose and
/// would interleave with drover's output.
pub(crate) fn backend() -> Result<&'static LlamaBackend, EngineError> {
    if let Some(backend) = BACKEND.get() {
        return Ok(backend);
    }
    // Several threads may race here; `init` lets exactly one win and the others see it in the cell.
    static INIT: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _guard = INIT.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    if let Some(backend) = BACKEND.get() {
        return Ok(backend);
    }
    let mut backend = LlamaBackend::init().map_err(EngineError::Backend)?;
    if std::env::var_os("DROVER_LLAMA_LOG").is_none() {
        backend.void_logs();
    }
    Ok(BACKEND.get_or_init(|| backend))
}
