//! What can stop a fleet from being planned or started.

use std::path::PathBuf;
use std::time::Duration;

use crate::event::ExitInfo;

/// Planning or starting a fleet failed.
#[derive(Debug, thiserror::Error)]
pub enum LaunchError {
    /// A setting is unusable; `flag` names the command-line flag that sets it.
    #[error("{flag}: {message}")]
    Invalid {
        /// The flag, e.g. `--gpus`.
        flag: &'static str,
        /// What is wrong and how to fix it.
        message: String,
    },
    /// `--gpus auto` could not list the GPUs.
    #[error("--gpus auto: {0}")]
    GpuQuery(String),
    /// A port the fleet needs is taken: an instance there would fail after loading its model,
    /// or worse, readiness would be checked against whatever already listens there.
    #[error(
        "port {port} on {host} is in use ({source}); stop what listens there, pick another --base-port, \
         or use --base-port 0 for free ports"
    )]
    PortInUse {
        /// The address.
        host: String,
        /// The port.
        port: u16,
        /// The bind error.
        #[source]
        source: std::io::Error,
    },
    /// No free port could be found with `--base-port 0`.
    #[error("cannot pick a free port on {host} ({source}); check --host")]
    NoFreePort {
        /// The address.
        host: String,
        /// The bind error.
        #[source]
        source: std::io::Error,
    },
    /// The log directory cannot be created.
    #[error("cannot create the log directory {} ({source}); pick another with --log-dir", path.display())]
    LogDir {
        /// The directory.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The supervisor thread or its runtime could not start.
    #[error("cannot start the supervisor: {0}")]
    Supervisor(#[source] std::io::Error),
    /// An instance did not get through its start-up; the details were reported as an
    /// [`Event::StartFailed`](crate::Event::StartFailed).
    #[error("instance {index} ({name}) {why}")]
    StartFailed {
        /// The instance.
        index: usize,
        /// Its name, e.g. `vllm-8001`.
        name: String,
        /// What happened.
        why: StartFailure,
    },
    /// The fleet was stopped before every instance was ready.
    #[error("stopped before the fleet was ready")]
    Stopped,
}

/// Why an instance did not start.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StartFailure {
    /// The program could not be executed at all.
    Spawn {
        /// The OS error.
        error: String,
        /// What to do about it.
        hint: String,
    },
    /// It exited before it was ready.
    Exited(ExitInfo),
    /// It was still not ready when the ready timeout ran out.
    TimedOut(Duration),
}

impl std::fmt::Display for StartFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StartFailure::Spawn { error, hint } => {
                write!(f, "could not be started: {error} ({hint})")
            }
            StartFailure::Exited(exit) => write!(f, "exited ({exit}) during start-up"),
            StartFailure::TimedOut(after) => write!(
                f,
                "was not ready after {} (/health and /v1/models did not both answer); raise --ready-timeout \
                 if the model takes longer to load",
                humantime::format_duration(*after)
            ),
        }
    }
}
