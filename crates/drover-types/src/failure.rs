use std::fmt;
use std::time::Duration;

use crate::ErrorCode;

/// Why one attempt of a request failed, classified once at the client edge.
///
/// The scheduler reads only this class (and the optional retry-after); it never looks at
/// status codes or error strings. Which classes are retried is decided here and nowhere else.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Failure {
    /// No connection could be made (refused, unreachable, DNS).
    Connect,
    /// The connection broke before a full response arrived.
    Reset,
    /// No complete answer within the request timeout.
    Timeout,
    /// The server asked us to slow down (429, or 503 from a queue limit).
    Overloaded {
        /// HTTP status, 429 or 503.
        status: u16,
        /// The server's Retry-After, when it sent one.
        retry_after: Option<Duration>,
    },
    /// The server failed (5xx other than an overload 503).
    Server {
        /// HTTP status.
        status: u16,
    },
    /// A 2xx answer whose body is not the JSON the endpoint returns.
    Garbage,
    /// The server refused this request for what it is (400, 404, 413, 422, ...): resending it
    /// anywhere gives the same answer.
    Rejected {
        /// HTTP status.
        status: u16,
    },
    /// The answer arrived but failed validation against the task's schema, after repairs.
    InvalidAnswer,
    /// No backend was available within `--max-wait`.
    NoBackend,
}

impl Failure {
    /// Whether another attempt (preferably on another backend) can succeed.
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            Failure::Connect
                | Failure::Reset
                | Failure::Timeout
                | Failure::Overloaded { .. }
                | Failure::Server { .. }
                | Failure::Garbage
        )
    }

    /// Whether this failure says something about the backend's health (feeds its breaker).
    /// Overload is the backend working as designed, and a rejected task is the task's fault.
    pub fn blames_backend(&self) -> bool {
        matches!(
            self,
            Failure::Connect
                | Failure::Reset
                | Failure::Timeout
                | Failure::Server { .. }
                | Failure::Garbage
        )
    }

    /// Maps an HTTP error status to its class.
    pub fn from_status(status: u16, retry_after: Option<Duration>) -> Failure {
        match status {
            429 => Failure::Overloaded {
                status,
                retry_after,
            },
            503 if retry_after.is_some() => Failure::Overloaded {
                status,
                retry_after,
            },
            500..=599 => Failure::Server { status },
            // 408 Request Timeout is the server giving up on us: try again.
            408 => Failure::Timeout,
            _ => Failure::Rejected { status },
        }
    }

    /// The code an output record carries when this is a task's final failure.
    pub fn code(&self) -> ErrorCode {
        match self {
            Failure::Connect | Failure::Reset => ErrorCode::ConnectionError,
            Failure::Timeout => ErrorCode::Timeout,
            Failure::Overloaded { .. } => ErrorCode::RateLimited,
            Failure::Server { .. } => ErrorCode::ServerError,
            Failure::Garbage => ErrorCode::InvalidResponse,
            Failure::Rejected { .. } => ErrorCode::InvalidRequest,
            Failure::InvalidAnswer => ErrorCode::InvalidAnswer,
            Failure::NoBackend => ErrorCode::NoBackend,
        }
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Failure::Connect => f.write_str("connection failed"),
            Failure::Reset => f.write_str("connection reset"),
            Failure::Timeout => f.write_str("timed out"),
            Failure::Overloaded { status, .. } => write!(f, "overloaded (HTTP {status})"),
            Failure::Server { status } => write!(f, "server error (HTTP {status})"),
            Failure::Garbage => f.write_str("malformed response body"),
            Failure::Rejected { status } => write!(f, "request rejected (HTTP {status})"),
            Failure::InvalidAnswer => f.write_str("answer failed validation"),
            Failure::NoBackend => f.write_str("no backend available"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_classify_once() {
        assert!(Failure::from_status(500, None).is_transient());
        assert!(Failure::from_status(502, None).is_transient());
        assert!(Failure::from_status(429, None).is_transient());
        assert!(matches!(
            Failure::from_status(503, Some(Duration::from_secs(1))),
            Failure::Overloaded { .. }
        ));
        assert!(matches!(
            Failure::from_status(503, None),
            Failure::Server { status: 503 }
        ));
        assert!(!Failure::from_status(400, None).is_transient());
        assert!(!Failure::from_status(422, None).is_transient());
        assert!(!Failure::from_status(404, None).is_transient());
        assert!(Failure::from_status(408, None).is_transient());
    }

    #[test]
    fn overload_does_not_blame_the_backend() {
        assert!(
            !Failure::Overloaded {
                status: 429,
                retry_after: None
            }
            .blames_backend()
        );
        assert!(!Failure::Rejected { status: 400 }.blames_backend());
        assert!(Failure::Reset.blames_backend());
    }
}
