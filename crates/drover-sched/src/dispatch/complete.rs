//! What an attempt's report does to its task: accept, repair, retry elsewhere, or fail.

use std::cmp::Reverse;
use std::sync::Arc;
use std::time::{Duration, Instant};

use drover_client::Answer;
use drover_types::{Failure, Usage};

use super::attempt::{AttemptResult, Done};
use super::{Dispatcher, LastFailure, secs};
use crate::check::Verdict;
use crate::limit::Limit;
use crate::view::{DispatchEvent, Finished, Outcome};

/// Overload answers a task may get before it fails anyway (a server that only ever says
/// "slow down" must not hold a task forever).
const MAX_OVERLOAD_RETRIES: u32 = 100;

impl Dispatcher {
    pub(super) fn on_done(&mut self, done: Done) {
        // Reports of attempts the loop cancelled itself arrive as `Lost`: their ids are gone.
        let Some(rec) = self.attempts.remove(&done.attempt) else {
            return;
        };
        let b = rec.backend;
        self.backends[b].in_flight -= 1;
        self.in_flight -= 1;
        self.refresh_avail(b);
        let Some(ts) = self.tasks.get_mut(&rec.task) else {
            return;
        };
        ts.forget(done.attempt);
        match done.result {
            AttemptResult::Answered { answer, verdict } => {
                let be = &mut self.backends[b];
                be.breaker.on_success();
                be.latency = Some(ewma(be.latency, secs(done.elapsed)));
                if let Some(t) = answer.ttft {
                    be.ttft = Some(ewma(be.ttft, secs(t)));
                }
                match verdict.unwrap_or(Verdict::Accept { answer: None }) {
                    Verdict::Accept { answer: parsed } => {
                        self.finish_success(
                            rec.task,
                            b,
                            &rec.request_id,
                            rec.hedge,
                            answer,
                            parsed,
                            done.elapsed,
                        );
                    }
                    Verdict::Repair { body } => {
                        ts.repairs += 1;
                        ts.body = body;
                        self.cancel_siblings(rec.task);
                        self.urgent.push_front(rec.task);
                    }
                    Verdict::Reject { message } => {
                        ts.last_failure = Some(LastFailure {
                            failure: Failure::InvalidAnswer,
                            message,
                            body: None,
                            backend: b,
                            request_id: rec.request_id,
                        });
                        self.finish_failed(rec.task, Some(done.elapsed));
                    }
                }
            }
            AttemptResult::Failed(err) => {
                let live = ts.live;
                self.blame(b, &err.failure, &err.message);
                let Some(ts) = self.tasks.get_mut(&rec.task) else {
                    return;
                };
                ts.last_failure = Some(LastFailure {
                    failure: err.failure,
                    message: err.message,
                    body: err.body,
                    backend: b,
                    request_id: rec.request_id,
                });
                if live == 0 {
                    self.retry_or_fail(rec.task, b, Some(done.elapsed));
                }
            }
            AttemptResult::Lost => {
                ts.last_failure = Some(LastFailure {
                    failure: Failure::Reset,
                    message: "attempt ended without a result".into(),
                    body: None,
                    backend: b,
                    request_id: rec.request_id,
                });
                if ts.live == 0 {
                    self.retry_or_fail(rec.task, b, Some(done.elapsed));
                }
            }
        }
    }

    /// Feeds a failure to the backend's breaker and limit.
    fn blame(&mut self, b: usize, failure: &Failure, message: &str) {
        let now = Instant::now();
        let be = &mut self.backends[b];
        if matches!(failure, Failure::Overloaded { .. }) {
            if let Limit::Adaptive(a) = &mut be.limit {
                a.on_overload(now);
            }
        }
        if be.breaker.on_failure(failure, message, now) {
            if *failure == Failure::Timeout {
                // Requests outlive their deadline: the backend accepts work but does not do it.
                be.breaker.mark_stalled();
            }
            let reason = format!("{failure}: {message}");
            self.eject(b, reason);
        }
        self.refresh(b);
    }

    /// Takes a backend out: its in-flight attempts are cancelled and their tasks sent elsewhere at once.
    pub(super) fn eject(&mut self, b: usize, reason: String) {
        let label = self.backends[b].label.to_string();
        self.emit(DispatchEvent::Ejected {
            backend: label,
            reason: reason.clone(),
        });
        let victims: Vec<u64> = self
            .attempts
            .iter()
            .filter(|(_, r)| r.backend == b)
            .map(|(a, _)| *a)
            .collect();
        for a in victims {
            let Some(rec) = self.cancel_attempt(a) else {
                continue;
            };
            let Some(ts) = self.tasks.get_mut(&rec.task) else {
                continue;
            };
            if ts.last_failure.is_none() {
                ts.last_failure = Some(LastFailure {
                    failure: Failure::Reset,
                    message: format!("backend ejected: {reason}"),
                    body: None,
                    backend: b,
                    request_id: rec.request_id.clone(),
                });
            }
            if ts.live == 0 {
                ts.avoid = Some(b);
                if self.stopping {
                    self.tasks.remove(&rec.task);
                    self.report.unfinished += 1;
                } else if ts.attempts < self.cfg.retry.attempts {
                    self.urgent.push_back(rec.task);
                    self.report.retries += 1;
                } else {
                    self.finish_failed(rec.task, None);
                }
            }
        }
        self.refresh(b);
    }

    fn retry_or_fail(&mut self, task_id: u64, b: usize, latency: Option<Duration>) {
        let Some(ts) = self.tasks.get_mut(&task_id) else {
            return;
        };
        let failure = ts
            .last_failure
            .as_ref()
            .map(|f| f.failure.clone())
            .unwrap_or(Failure::Reset);
        if self.stopping && failure.is_transient() {
            self.tasks.remove(&task_id);
            self.report.unfinished += 1;
            return;
        }
        if matches!(failure, Failure::Overloaded { .. }) {
            ts.overloaded += 1;
        }
        let counted = ts.attempts - ts.overloaded.min(ts.attempts);
        let overload_retry =
            matches!(failure, Failure::Overloaded { .. }) && ts.overloaded <= MAX_OVERLOAD_RETRIES;
        if overload_retry || self.cfg.retry.should_retry(&failure, counted) {
            ts.avoid = Some(b);
            let wait = self.cfg.retry.backoff(&failure, ts.attempts, &mut self.rng);
            tracing::debug!(target: "drover::retry", task = task_id, backend = b, ?failure, ?wait, "retry");
            self.delayed.push(Reverse((Instant::now() + wait, task_id)));
            self.report.retries += 1;
        } else {
            self.finish_failed(task_id, latency);
        }
    }

    /// Cancels the other live attempts of a task (its hedge or original).
    fn cancel_siblings(&mut self, task_id: u64) {
        let Some(ts) = self.tasks.get(&task_id) else {
            return;
        };
        let (ids, n) = (ts.live_ids, usize::from(ts.live));
        for &a in ids.iter().take(n) {
            self.cancel_attempt(a);
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn finish_success(
        &mut self,
        task_id: u64,
        b: usize,
        request_id: &str,
        hedged: bool,
        answer: Answer,
        parsed: Option<Box<serde_json::value::RawValue>>,
        latency: Duration,
    ) {
        self.cancel_siblings(task_id);
        let Some(ts) = self.tasks.remove(&task_id) else {
            return;
        };
        self.outbox.push_back(Finished {
            task: ts.task,
            outcome: Outcome::Success {
                status: answer.status,
                body: answer.body,
                answer: parsed,
            },
            request_id: request_id.to_string(),
            backend: Some(self.backends[b].label.clone()),
            backend_index: Some(b),
            attempts: ts.attempts + ts.hedges,
            repairs: ts.repairs,
            latency: Some(latency),
            ttft: answer.ttft,
            hedged,
            usage: answer.usage,
        });
    }

    pub(super) fn finish_failed(&mut self, task_id: u64, latency: Option<Duration>) {
        self.cancel_siblings(task_id);
        let Some(ts) = self.tasks.remove(&task_id) else {
            return;
        };
        let last = ts.last_failure.unwrap_or(LastFailure {
            failure: Failure::NoBackend,
            message: "no attempt was made".into(),
            body: None,
            backend: usize::MAX,
            request_id: String::new(),
        });
        let backend = self.backends.get(last.backend).map(|be| be.label.clone());
        let message = match &backend {
            Some(label) => format!("{label}: {}", last.message),
            None => last.message,
        };
        self.outbox.push_back(Finished {
            task: ts.task,
            outcome: Outcome::Failed {
                failure: last.failure,
                message,
                body: last.body,
            },
            request_id: last.request_id,
            backend: backend.map(Arc::from),
            backend_index: self.backends.get(last.backend).map(|_| last.backend),
            attempts: ts.attempts + ts.hedges,
            repairs: ts.repairs,
            latency,
            ttft: None,
            hedged: false,
            usage: Usage::default(),
        });
    }

    /// Fails a task because no backend came back within `--max-wait`.
    pub(super) fn fail_no_backend(&mut self, task_id: u64) {
        if let Some(ts) = self.tasks.get_mut(&task_id) {
            let waited = humantime::format_duration(self.cfg.max_wait);
            ts.last_failure = Some(LastFailure {
                failure: Failure::NoBackend,
                message: format!(
                    "no backend was up for {waited} (--max-wait); resume with --retry-failed once the fleet is back"
                ),
                body: None,
                backend: usize::MAX,
                request_id: String::new(),
            });
        }
        self.finish_failed(task_id, None);
    }
}

/// A mean that follows the last dozen or so samples.
fn ewma(mean: Option<f64>, x: f64) -> f64 {
    match mean {
        None => x,
        Some(m) => 0.9 * m + 0.1 * x,
    }
}
