//! A hook that judges each answer before it is accepted (structured answers, `--schema`).

use bytes::Bytes;
use drover_types::Task;
use serde_json::value::RawValue;

/// What to do with an answer.
#[derive(Debug)]
pub enum Verdict {
    /// Keep it; `answer` is the extracted structured value, if any.
    Accept {
        /// The parsed answer (goes to the output's drover namespace and the table).
        answer: Option<Box<RawValue>>,
    },
    /// Ask again with this body (the conversation plus what was wrong).
    Repair {
        /// The next request body.
        body: Bytes,
    },
    /// Give up: the task fails with this message.
    Reject {
        /// What was wrong with the last answer, the answer itself included.
        message: String,
    },
}

/// Judges answers. Runs on the attempt's task, off the dispatch loop.
pub trait AnswerCheck: Send + Sync + 'static {
    /// `body` is the request that produced `response` (the task's body after `repairs` repairs).
    fn check(&self, task: &Task, body: &Bytes, response: &RawValue, repairs: u32) -> Verdict;
}
