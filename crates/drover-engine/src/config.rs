//! What the engine loads and how big it is, and where the default model lives.

use std::path::{Path, PathBuf};

use crate::EngineError;

/// File name of the default model inside `<cache>/models/` (written by `scripts/fetch-model.sh`).
pub const DEFAULT_MODEL_FILE: &str = "SmolLM2-135M-Instruct.Q4_1.gguf";

/// Default number of sequences decoded together.
pub const DEFAULT_PARALLEL: usize = 8;

/// Default context per sequence, in tokens.
pub const DEFAULT_CTX: u32 = 2048;

/// Upper bound on `parallel`: llama.cpp's own `LLAMA_MAX_SEQ` is 256.
const MAX_PARALLEL: usize = 256;

/// Smallest useful per-sequence context: a chat template alone takes tens of tokens.
const MIN_CTX: u32 = 64;

/// How to load the embedded engine.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EngineConfig {
    /// The GGUF model file.
    pub model: PathBuf,
    /// Sequences decoded together in one batch (llama.cpp sequence ids); default 8.
    pub parallel: usize,
    /// Context per sequence, in tokens (prompt + completion); default 2048.
    pub ctx: u32,
    /// CPU threads for llama.cpp; `None` = [`default_threads`] (all cores but one).
    pub threads: Option<usize>,
    /// Served model id; `None` = the model file's stem.
    pub model_name: Option<String>,
}

impl EngineConfig {
    /// A configuration for `model` with the default sizes.
    pub fn new(model: impl Into<PathBuf>) -> Self {
        EngineConfig {
            model: model.into(),
            parallel: DEFAULT_PARALLEL,
            ctx: DEFAULT_CTX,
            threads: None,
            model_name: None,
        }
    }

    /// The model to use when `--model` is not given: `DROVER_MODEL` if set, else the default model
    /// in the cache. Fails, naming `scripts/fetch-model.sh`, when the cached model is missing.
    pub fn default_model_path() -> Result<PathBuf, EngineError> {
        if let Some(path) = std::env::var_os("DROVER_MODEL").filter(|v| !v.is_empty()) {
            // An explicit choice: let loading report it if it is missing, naming this path.
            return Ok(PathBuf::from(path));
        }
        let cached = Self::cached_model_path();
        if cached.is_file() {
            Ok(cached)
        } else {
            Err(EngineError::NoDefaultModel { searched: cached })
        }
    }

    /// Where `scripts/fetch-model.sh` puts the default model: `$DROVER_CACHE_DIR`, else
    /// `$XDG_CACHE_HOME/drover`, else `~/.cache/drover`, then `models/SmolLM2-135M-Instruct.Q4_1.gguf`.
    pub fn cached_model_path() -> PathBuf {
        let env = |name: &str| {
            std::env::var_os(name)
                .filter(|v| !v.is_empty())
                .map(PathBuf::from)
        };
        let cache = env("DROVER_CACHE_DIR")
            .or_else(|| env("XDG_CACHE_HOME").map(|x| x.join("drover")))
            .or_else(|| env("HOME").map(|h| h.join(".cache").join("drover")))
            .unwrap_or_else(|| PathBuf::from(".cache/drover"));
        cache.join("models").join(DEFAULT_MODEL_FILE)
    }

    /// The id `/v1/models` reports: `model_name`, else the file stem.
    pub fn served_name(&self) -> String {
        if let Some(name) = self.model_name.as_ref().filter(|n| !n.is_empty()) {
            return name.clone();
        }
        self.model
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_else(|| "model".to_owned())
    }

    /// CPU threads llama.cpp will use.
    pub fn effective_threads(&self) -> usize {
        self.threads.unwrap_or_else(default_threads)
    }

    /// Total KV cells: every sequence can reach its full context at once, so admission never has
    /// to wait for KV space (one slot = one sequence's worth of cells).
    pub fn n_ctx(&self) -> Result<u32, EngineError> {
        u32::try_from(self.parallel)
            .ok()
            .and_then(|p| p.checked_mul(self.ctx))
            .filter(|n| i32::try_from(*n).is_ok())
            .ok_or_else(|| {
                EngineError::Config(format!(
                    "parallel {} x ctx {} is too large",
                    self.parallel, self.ctx
                ))
            })
    }

    /// Checks ranges and that the model file is a readable GGUF; no llama.cpp involved.
    pub fn validate(&self) -> Result<(), EngineError> {
        if !(1..=MAX_PARALLEL).contains(&self.parallel) {
            return Err(EngineError::Config(format!(
                "--parallel must be 1..={MAX_PARALLEL}, got {}",
                self.parallel
            )));
        }
        if self.ctx < MIN_CTX {
            return Err(EngineError::Config(format!(
                "--ctx must be at least {MIN_CTX} tokens, got {}",
                self.ctx
            )));
        }
        if self.threads == Some(0) {
            return Err(EngineError::Config(
                "--threads must be at least 1".to_owned(),
            ));
        }
        self.n_ctx()?;
        check_gguf(&self.model)
    }
}

/// All cores but one, at least one.
///
/// ggml synchronises its threads with spinning barriers hundreds of times per token, so a thread
/// whose partner has been descheduled burns its whole time slice waiting. With every core in use
/// by llama.cpp, anything else running (drover's own client in `drover run`, a build, another
/// engine) makes throughput collapse: on the 2-core development VM, 2 threads fell to 1.7 tok/s
/// beside other work where 1 thread kept 48 tok/s; when idle, 2 threads are only ~1.5x faster
/// than 1 (docs/benchmarks.md). Leaving a core free costs little and avoids the cliff.
pub fn default_threads() -> usize {
    std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .saturating_sub(1)
        .max(1)
}

/// Reads the first four bytes: llama.cpp's own message for a non-GGUF file is a bare null result.
fn check_gguf(path: &Path) -> Result<(), EngineError> {
    use std::io::Read;
    let unreadable = |source| EngineError::ModelUnreadable {
        path: path.to_path_buf(),
        source,
    };
    if path.is_dir() {
        return Err(unreadable(std::io::Error::new(
            std::io::ErrorKind::IsADirectory,
            "is a directory",
        )));
    }
    let mut magic = [0u8; 4];
    let mut file = std::fs::File::open(path).map_err(unreadable)?;
    match file.read_exact(&mut magic) {
        Ok(()) if &magic == b"GGUF" => Ok(()),
        Ok(()) => Err(EngineError::NotGguf {
            path: path.to_path_buf(),
        }),
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => Err(EngineError::NotGguf {
            path: path.to_path_buf(),
        }),
        Err(e) => Err(unreadable(e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn served_name_defaults_to_the_file_stem() {
        let mut config = EngineConfig::new("/models/SmolLM2-135M-Instruct.Q4_1.gguf");
        assert_eq!(config.served_name(), "SmolLM2-135M-Instruct.Q4_1");
        config.model_name = Some("smol".into());
        assert_eq!(config.served_name(), "smol");
    }

    #[test]
    fn validate_names_the_problem() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("nope.gguf");
        let err = EngineConfig::new(&missing).validate().unwrap_err();
        assert!(matches!(err, EngineError::ModelUnreadable { .. }), "{err}");
        assert!(err.to_string().contains("nope.gguf"), "{err}");

        let text = dir.path().join("model.gguf");
        std::fs::write(&text, "hello, not a model").unwrap();
        let err = EngineConfig::new(&text).validate().unwrap_err();
        assert!(matches!(err, EngineError::NotGguf { .. }), "{err}");

        let empty = dir.path().join("empty.gguf");
        std::fs::write(&empty, "").unwrap();
        assert!(matches!(
            EngineConfig::new(&empty).validate(),
            Err(EngineError::NotGguf { .. })
        ));

        let gguf = dir.path().join("ok.gguf");
        std::fs::write(&gguf, b"GGUF\x03\x00\x00\x00").unwrap();
        assert!(EngineConfig::new(&gguf).validate().is_ok());
        let config = EngineConfig {
            parallel: 0,
            ..EngineConfig::new(&gguf)
        };
        assert!(
            config
                .validate()
                .unwrap_err()
                .to_string()
                .contains("--parallel")
        );
        let config = EngineConfig {
            ctx: 8,
            ..EngineConfig::new(&gguf)
        };
        assert!(config.validate().unwrap_err().to_string().contains("--ctx"));
        let config = EngineConfig {
            parallel: 256,
            ctx: u32::MAX / 2,
            ..EngineConfig::new(&gguf)
        };
        assert!(
            config
                .validate()
                .unwrap_err()
                .to_string()
                .contains("too large")
        );
    }
}
