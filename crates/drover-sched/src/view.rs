//! What the dispatcher tells the rest of the job: finished tasks (to the collector), notable
//! events (to the terminal), and a snapshot of the fleet (to progress, metrics and reports).

use std::sync::Arc;
use std::time::{Duration, Instant};

use drover_client::{BackendAddr, LoadSignals, Scraper};
use drover_types::{Failure, Task, Usage};
use serde_json::value::RawValue;

/// A backend as discovery left it.
#[derive(Debug, Clone)]
pub struct BackendSpec {
    /// Where it answers.
    pub addr: BackendAddr,
    /// Its metrics at start, when it has any we understand.
    pub signals: Option<LoadSignals>,
    /// Discovery's scraper, which the scrape loop goes on with: what it learned of how the
    /// backend answers a filtered scrape is not asked again.
    pub scraper: Scraper,
}

/// How a task ended.
#[derive(Debug)]
pub enum Outcome {
    /// The backend answered and the answer was accepted.
    Success {
        /// HTTP status.
        status: u16,
        /// The response body.
        body: Box<RawValue>,
        /// The structured answer, when checked.
        answer: Option<Box<RawValue>>,
    },
    /// No acceptable answer.
    Failed {
        /// Class of the last failure.
        failure: Failure,
        /// What went wrong, in words.
        message: String,
        /// The server's error body, when it sent one.
        body: Option<Box<RawValue>>,
    },
}

/// A task that is done, for the collector to record.
#[derive(Debug)]
pub struct Finished {
    /// The task.
    pub task: Arc<Task>,
    /// How it ended.
    pub outcome: Outcome,
    /// The id of the attempt that ended it.
    pub request_id: String,
    /// The backend of that attempt (label), if one was used.
    pub backend: Option<Arc<str>>,
    /// Index of that backend in the snapshot.
    pub backend_index: Option<usize>,
    /// Attempts made (hedges included).
    pub attempts: u32,
    /// Repairs made.
    pub repairs: u32,
    /// Wall time of the final attempt.
    pub latency: Option<Duration>,
    /// Time to first token of the final attempt (streamed only).
    pub ttft: Option<Duration>,
    /// Whether a hedge produced the answer.
    pub hedged: bool,
    /// Token counts of the answer.
    pub usage: Usage,
}

/// Things a person watching the run should hear about.
#[derive(Debug, Clone)]
pub enum DispatchEvent {
    /// A backend was taken out of rotation.
    Ejected {
        /// Its label.
        backend: String,
        /// Why.
        reason: String,
    },
    /// A backend passed its probe and is back.
    Readmitted {
        /// Its label.
        backend: String,
    },
    /// Every backend is out; dispatch waits.
    AllDown {
        /// How long it will wait before failing the rest.
        max_wait: Duration,
    },
    /// A backend is back after all were down.
    Recovered,
    /// `--max-wait` passed with every backend down: the remaining tasks fail.
    GaveUp,
    /// A backend joined (dynamic membership).
    Joined {
        /// Its label.
        backend: String,
    },
    /// A backend left and is draining.
    Left {
        /// Its label.
        backend: String,
    },
}

/// A backend's state for display.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BackendState {
    /// Taking work.
    Up,
    /// Ejected, waiting for a probe.
    Out,
    /// Being probed.
    Probing,
    /// Removed from membership; finishing its work.
    Draining,
    /// Gone.
    Removed,
}

impl BackendState {
    /// Short name.
    pub fn name(self) -> &'static str {
        match self {
            BackendState::Up => "up",
            BackendState::Out => "out",
            BackendState::Probing => "probing",
            BackendState::Draining => "draining",
            BackendState::Removed => "removed",
        }
    }
}

/// One backend in a snapshot.
#[derive(Debug, Clone)]
pub struct BackendStatus {
    /// Label.
    pub label: Arc<str>,
    /// State.
    pub state: BackendState,
    /// drover's requests in flight.
    pub in_flight: usize,
    /// Its limit, when it has one.
    pub limit: Option<usize>,
    /// Times it was ejected.
    pub ejections: u64,
    /// Whether attempts to it stream.
    pub streaming: bool,
    /// Engine kind from its metrics, if known.
    pub engine: Option<&'static str>,
    /// Last measured token rate (controller), tokens/s.
    pub tokens_per_s: Option<f64>,
    /// Generated tokens drover has seen from it so far, counted as streamed pieces arrive
    /// (including those of attempts still running or abandoned), else at completion.
    pub tokens_seen: u64,
    /// Server-side running / waiting / KV use from the last scrape.
    pub server_running: Option<f64>,
    /// Server-side queue.
    pub server_waiting: Option<f64>,
    /// Server-side KV use.
    pub server_kv: Option<f64>,
}

/// The fleet at one moment.
#[derive(Debug, Clone, Default)]
pub struct FleetSnapshot {
    /// When taken.
    pub at: Option<Instant>,
    /// Every backend ever seen, by index.
    pub backends: Vec<BackendStatus>,
    /// Requests in flight in total.
    pub in_flight: usize,
    /// Tasks read but not yet sent (queued, waiting to retry).
    pub queued: usize,
    /// Retries scheduled so far.
    pub retries: u64,
    /// Hedges sent so far.
    pub hedges: u64,
    /// Whether the whole input has been read.
    pub input_done: bool,
    /// Since when every backend has been down, if they are.
    pub all_down_since: Option<Instant>,
}
