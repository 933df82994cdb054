//! The records the store keeps, and the batch status machine:
//!
//! ```text
//! validating ─► in_progress ─► finalizing ─► completed
//!     │              │  └──────────────────► expired     (completion window passed)
//!     ▼              ▼
//!   failed       cancelling ─► cancelled
//! ```
//! (`failed` also ends a batch whose input became unreadable mid-run.)

use serde::Serialize;

/// A batch's status, as OpenAI names them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Status {
    /// The input file is being checked.
    Validating,
    /// The input file failed its checks (see `errors`).
    Failed,
    /// Requests are being sent.
    InProgress,
    /// Every request has a result; output and error files are being written.
    Finalizing,
    /// Done; output and error files are ready.
    Completed,
    /// The completion window passed; unanswered requests are in the error file.
    Expired,
    /// Cancel requested; requests already sent are finishing.
    Cancelling,
    /// Cancelled; partial results are in the output and error files.
    Cancelled,
}

impl Status {
    /// Every status.
    pub const ALL: [Status; 8] = [
        Status::Validating,
        Status::Failed,
        Status::InProgress,
        Status::Finalizing,
        Status::Completed,
        Status::Expired,
        Status::Cancelling,
        Status::Cancelled,
    ];

    /// The name OpenAI uses.
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Validating => "validating",
            Status::Failed => "failed",
            Status::InProgress => "in_progress",
            Status::Finalizing => "finalizing",
            Status::Completed => "completed",
            Status::Expired => "expired",
            Status::Cancelling => "cancelling",
            Status::Cancelled => "cancelled",
        }
    }

    /// Parses a stored name.
    pub fn parse(s: &str) -> Option<Status> {
        Status::ALL.into_iter().find(|x| x.as_str() == s)
    }

    /// Whether nothing more will happen to the batch.
    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            Status::Failed | Status::Completed | Status::Expired | Status::Cancelled
        )
    }
}

/// How a batch that ran ended (the final status follows from it and from a pending cancel).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ending {
    /// Every request has a result.
    Completed,
    /// Cancelled: what was sent finished; the rest was never sent.
    Cancelled,
    /// The completion window passed; unanswered requests get `batch_expired` records.
    Expired,
    /// The batch could not go on (its input became unreadable, its journal unwritable).
    Failed(String),
}

impl Ending {
    /// The status it leads to, unless a cancel was pending (then `cancelled`).
    pub fn status(&self) -> Status {
        match self {
            Ending::Completed => Status::Completed,
            Ending::Cancelled => Status::Cancelled,
            Ending::Expired => Status::Expired,
            Ending::Failed(_) => Status::Failed,
        }
    }
}

/// `request_counts`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Counts {
    /// Requests in the input.
    pub total: u64,
    /// Requests answered successfully.
    pub completed: u64,
    /// Requests that failed (their lines are in the error file), expired ones included.
    pub failed: u64,
}

/// One entry of a batch's `errors` (why it failed validation).
#[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize)]
pub struct LineError {
    /// Stable code, e.g. `mismatched_endpoint`.
    pub code: String,
    /// What is wrong and how to fix it.
    pub message: String,
    /// The field at fault, if one is.
    pub param: Option<String>,
    /// 1-based line of the input file, if the error is about one.
    pub line: Option<u64>,
}

/// A file (an upload, or a batch's output or error file).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileRow {
    /// `file-…`.
    pub id: String,
    /// Size in bytes.
    pub bytes: u64,
    /// Unix seconds.
    pub created_at: i64,
    /// The name it was uploaded with (or `<batch>_output.jsonl` …).
    pub filename: String,
    /// `batch` (uploads) or `batch_output` (results).
    pub purpose: String,
    /// Where its contents are, relative to the data directory.
    pub path: String,
}

/// A batch.
#[derive(Debug, Clone, PartialEq)]
pub struct BatchRow {
    /// `batch_…`.
    pub id: String,
    /// The endpoint every request line targets, e.g. `/v1/chat/completions`.
    pub endpoint: String,
    /// The uploaded input file.
    pub input_file_id: String,
    /// As given, e.g. `24h`.
    pub completion_window: String,
    /// Where it is in its life.
    pub status: Status,
    /// Successful results, once finalized (none when nothing succeeded).
    pub output_file_id: Option<String>,
    /// Failed results, once finalized (none when nothing failed).
    pub error_file_id: Option<String>,
    /// Unix seconds.
    pub created_at: i64,
    /// When validation passed.
    pub in_progress_at: Option<i64>,
    /// When the completion window ends.
    pub expires_at: i64,
    /// When every request had a result.
    pub finalizing_at: Option<i64>,
    /// When it completed.
    pub completed_at: Option<i64>,
    /// When it failed.
    pub failed_at: Option<i64>,
    /// When it expired.
    pub expired_at: Option<i64>,
    /// When a cancel was requested.
    pub cancelling_at: Option<i64>,
    /// When the cancel finished.
    pub cancelled_at: Option<i64>,
    /// Counts as of the last status change (live counts come from the runtime while it runs).
    pub counts: Counts,
    /// The caller's metadata (a JSON object of strings), as given.
    pub metadata: Option<serde_json::Value>,
    /// Why validation failed.
    pub errors: Vec<LineError>,
    /// The model the fleet serves.
    pub model: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_names_round_trip() {
        for s in Status::ALL {
            assert_eq!(Status::parse(s.as_str()), Some(s));
        }
        assert_eq!(Status::parse("done"), None);
        assert!(Status::Cancelled.is_terminal() && !Status::Cancelling.is_terminal());
    }
}
