//! What a fleet reports while it runs: one [`Event`] per change of an instance's state.

use std::path::PathBuf;
use std::time::Duration;

use crate::error::StartFailure;

/// How a process ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExitInfo {
    /// It exited with this code.
    Code(i32),
    /// A signal ended it (the number).
    Signal(i32),
    /// It is gone but its status could not be read.
    Unknown,
}

impl std::fmt::Display for ExitInfo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match *self {
            ExitInfo::Code(c) => write!(f, "code {c}"),
            ExitInfo::Signal(s) => match nix::sys::signal::Signal::try_from(s) {
                Ok(sig) => write!(f, "signal {s}, {}", sig.as_str()),
                Err(_) => write!(f, "signal {s}"),
            },
            ExitInfo::Unknown => f.write_str("status unknown"),
        }
    }
}

/// How an instance went away at teardown.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StopOutcome {
    /// It (and everything in its process group) exited within the grace.
    Exited(ExitInfo),
    /// The grace ran out; its process group was killed with SIGKILL.
    Killed,
}

/// A change in the fleet. `index` is the instance's position, `name` its log name
/// (e.g. `vllm-8001`).
#[derive(Debug, Clone)]
pub enum Event {
    /// A process was started for the instance (`attempt` 0 is the first start).
    Starting {
        /// The instance.
        index: usize,
        /// Its name.
        name: String,
        /// The process id (also its process group id).
        pid: u32,
        /// 0 for the first start, then one more per restart.
        attempt: u32,
        /// The command line, shell-quoted, environment first.
        command: String,
    },
    /// `/health` and `/v1/models` answered.
    Ready {
        /// The instance.
        index: usize,
        /// Its name.
        name: String,
        /// The process id.
        pid: u32,
        /// 0 for the first start, then one more per restart.
        attempt: u32,
        /// Time from spawn to ready.
        after: Duration,
    },
    /// The instance did not get through its first start-up; the fleet will not be ready.
    StartFailed {
        /// The instance.
        index: usize,
        /// Its name.
        name: String,
        /// What happened.
        why: StartFailure,
        /// The last lines it wrote (from this start only).
        log_tail: Vec<String>,
        /// Its log file.
        log: PathBuf,
        /// The command line, shell-quoted, environment first.
        command: String,
    },
    /// A ready instance died (or a restart did not come up); it is started again after `restart_in`.
    Crashed {
        /// The instance.
        index: usize,
        /// Its name.
        name: String,
        /// The process id that died.
        pid: u32,
        /// What happened.
        why: String,
        /// How long it had run.
        up_for: Duration,
        /// The delay before the next start (exponential backoff).
        restart_in: Duration,
        /// The last lines it wrote.
        log_tail: Vec<String>,
        /// Its log file.
        log: PathBuf,
    },
    /// Teardown began.
    Stopping {
        /// Processes being stopped.
        count: usize,
        /// How long they may take before SIGKILL.
        grace: Duration,
    },
    /// An instance is gone.
    Stopped {
        /// The instance.
        index: usize,
        /// Its name.
        name: String,
        /// The process id.
        pid: u32,
        /// How it went.
        outcome: StopOutcome,
    },
}
