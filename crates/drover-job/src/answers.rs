//! A hook for structured answers: the collector hands every accepted answer to it, for the
//! aggregates in the summary and the table (`--schema`).

use drover_types::Task;
use serde_json::value::RawValue;

/// Receives structured answers as tasks finish.
pub trait AnswerSink: Send + Sync + 'static {
    /// A task's accepted structured answer.
    fn accept(&self, task: &Task, answer: &RawValue);
    /// A task finished without an accepted answer.
    fn reject(&self, task: &Task);
    /// The aggregates, for the summary.
    fn summary(&self) -> Option<serde_json::Value>;
}
