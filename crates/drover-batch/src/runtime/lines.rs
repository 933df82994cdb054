//! Result lines, in OpenAI's batch output format with drover's extras under `drover`
//! (docs/output-format.md). This mirrors `drover-job`'s collector, which keeps its conversion
//! private; the two must stay in step (one line per request, `error` null exactly on success,
//! a backend's error body kept in `response`).

use drover_sched::{Finished, Outcome};
use drover_types::{ErrorCode, ErrorRecord, Failure, Meta, OutputLine, ResponsePart, request_id};
use rand::rngs::SmallRng;
use rand::{RngExt, SeedableRng};
use serde::Serialize;

use crate::ids::now_ms;

/// The error code of requests the completion window left unanswered (OpenAI's).
pub(crate) const BATCH_EXPIRED: &str = "batch_expired";

/// Makes result lines; owns the randomness of their ids.
pub(crate) struct LineMaker {
    rng: SmallRng,
}

impl LineMaker {
    pub(crate) fn new() -> LineMaker {
        LineMaker { rng: SmallRng::from_rng(&mut rand::rng()) }
    }

    fn id(&mut self) -> String {
        request_id("batch_req_", self.rng.random())
    }

    /// The line of a finished task.
    pub(crate) fn finished(&mut self, f: Finished) -> OutputLine {
        let meta = |answer| Meta {
            line: f.task.line,
            backend: f.backend.as_ref().map(|b| b.to_string()),
            attempts: f.attempts,
            latency_ms: f.latency.map(|l| l.as_millis() as u64),
            hedged: f.hedged,
            repairs: f.repairs,
            finished_at: Some(now_ms()),
            answer,
        };
        let id = self.id();
        match f.outcome {
            Outcome::Success { status, body, answer } => OutputLine {
                id,
                custom_id: f.task.custom_id.to_string(),
                response: Some(ResponsePart { status_code: status, request_id: f.request_id.clone(), body }),
                error: None,
                drover: Some(meta(answer)),
            },
            Outcome::Failed { failure, message, body } => {
                let response = match (body, failure_status(&failure)) {
                    (Some(body), Some(status)) => Some(ResponsePart { status_code: status, request_id: f.request_id.clone(), body }),
                    _ => None,
                };
                OutputLine {
                    id,
                    custom_id: f.task.custom_id.to_string(),
                    response,
                    error: Some(ErrorRecord { code: failure.code(), message }),
                    drover: Some(meta(None)),
                }
            }
        }
    }

    /// The line of an input line that is not a request.
    pub(crate) fn invalid(&mut self, line: u64, custom_id: String, code: ErrorCode, message: String) -> OutputLine {
        OutputLine {
            id: self.id(),
            custom_id,
            response: None,
            error: Some(ErrorRecord { code, message }),
            drover: Some(Meta { line, finished_at: Some(now_ms()), ..Meta::default() }),
        }
    }

    /// The line of a request the completion window left unanswered, serialized with its newline.
    /// (`batch_expired` is OpenAI's code and not one of drover's own [`ErrorCode`]s.)
    pub(crate) fn expired(&mut self, line: u64, custom_id: &str) -> Vec<u8> {
        #[derive(Serialize)]
        struct Expired<'a> {
            id: String,
            custom_id: &'a str,
            response: Option<()>,
            error: ExpiredError,
            drover: Meta,
        }
        #[derive(Serialize)]
        struct ExpiredError {
            code: &'static str,
            message: &'static str,
        }
        let record = Expired {
            id: self.id(),
            custom_id,
            response: None,
            error: ExpiredError { code: BATCH_EXPIRED, message: "This request could not be executed before the completion window expired." },
            drover: Meta { line, finished_at: Some(now_ms()), ..Meta::default() },
        };
        let mut out = serde_json::to_vec(&record).expect("line serializes");
        out.push(b'\n');
        out
    }
}

fn failure_status(f: &Failure) -> Option<u16> {
    match f {
        Failure::Overloaded { status, .. } | Failure::Server { status } | Failure::Rejected { status } => Some(*status),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expired_lines_read_back_as_failed_results() {
        let bytes = LineMaker::new().expired(7, "a\"b");
        let v: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
        assert_eq!(v["custom_id"], "a\"b");
        assert_eq!(v["response"], serde_json::Value::Null);
        assert_eq!(v["error"]["code"], BATCH_EXPIRED);
        assert_eq!(v["drover"]["line"], 7);
        assert!(v["id"].as_str().unwrap().starts_with("batch_req_"));
        assert!(bytes.ends_with(b"\n") && bytes.iter().filter(|&&b| b == b'\n').count() == 1);
    }
}
