//! Output lines, in OpenAI's batch output format with drover's extras under `drover`
//! (docs/output-format.md): one line per task, `error` null exactly on success, a backend's
//! error body kept in `response`. Shared by `drover run`'s collector and the batch server.

use drover_sched::{Finished, Outcome};
use drover_types::{ErrorCode, ErrorRecord, Failure, Meta, OutputLine, ResponsePart, request_id};
use rand::rngs::SmallRng;
use rand::{RngExt, SeedableRng};

/// Makes output lines; owns the randomness of their ids.
pub struct LineMaker {
    rng: SmallRng,
}

impl Default for LineMaker {
    fn default() -> Self {
        Self::new()
    }
}

impl LineMaker {
    /// A maker with a fresh random seed.
    pub fn new() -> LineMaker {
        LineMaker {
            rng: SmallRng::from_rng(&mut rand::rng()),
        }
    }

    fn id(&mut self) -> String {
        request_id("batch_req_", self.rng.random())
    }

    /// The line of a finished task.
    pub fn finished(&mut self, f: Finished) -> OutputLine {
        let meta = |answer| Meta {
            line: f.task.line,
            backend: f.backend.as_ref().map(|b| b.to_string()),
            attempts: f.attempts,
            latency_ms: f.latency.map(|l| l.as_millis() as u64),
            hedged: f.hedged,
            repairs: f.repairs,
            finished_at: Some(unix_ms()),
            answer,
        };
        let id = self.id();
        match f.outcome {
            Outcome::Success {
                status,
                body,
                answer,
            } => OutputLine {
                id,
                custom_id: f.task.custom_id.to_string(),
                response: Some(ResponsePart {
                    status_code: status,
                    request_id: f.request_id.clone(),
                    body,
                }),
                error: None,
                drover: Some(meta(answer)),
            },
            Outcome::Failed {
                failure,
                message,
                body,
            } => {
                let response = match (body, failure_status(&failure)) {
                    (Some(body), Some(status)) => Some(ResponsePart {
                        status_code: status,
                        request_id: f.request_id.clone(),
                        body,
                    }),
                    _ => None,
                };
                OutputLine {
                    id,
                    custom_id: f.task.custom_id.to_string(),
                    response,
                    error: Some(ErrorRecord {
                        code: failure.code(),
                        message,
                    }),
                    drover: Some(meta(None)),
                }
            }
        }
    }

    /// The line of an input line that never became a request (or a request that never ran).
    pub fn unsent(
        &mut self,
        line: u64,
        custom_id: String,
        code: ErrorCode,
        message: String,
    ) -> OutputLine {
        OutputLine {
            id: self.id(),
            custom_id,
            response: None,
            error: Some(ErrorRecord { code, message }),
            drover: Some(Meta {
                line,
                finished_at: Some(unix_ms()),
                ..Meta::default()
            }),
        }
    }
}

/// The HTTP status a failure carries, when the backend answered.
pub fn failure_status(f: &Failure) -> Option<u16> {
    match f {
        Failure::Overloaded { status, .. }
        | Failure::Server { status }
        | Failure::Rejected { status } => Some(*status),
        _ => None,
    }
}

/// Now, Unix milliseconds.
pub fn unix_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}
