//! Errors of the simulator library.

/// What can go wrong configuring or starting simulated instances.
#[derive(Debug, thiserror::Error)]
pub enum SimError {
    /// `--preset` names no preset.
    #[error("unknown preset {name:?}: use one of {known}")]
    UnknownPreset {
        /// What was asked for.
        name: String,
        /// The presets that exist, comma-separated.
        known: String,
    },
    /// A parameter is out of range; `field` is the flag that sets it.
    #[error("{field}: {message}")]
    Invalid {
        /// The flag, e.g. `--max-num-seqs`.
        field: &'static str,
        /// What is wrong and how to fix it.
        message: String,
    },
    /// A listener could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// host:port.
        addr: String,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
}

impl SimError {
    pub(crate) fn invalid(field: &'static str, message: impl Into<String>) -> SimError {
        SimError::Invalid {
            field,
            message: message.into(),
        }
    }
}
