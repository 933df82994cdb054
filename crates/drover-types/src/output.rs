use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

/// Stable error codes of output records. They are part of the output contract
/// (`docs/output-format.md`): scripts match on them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    /// The input line could not be turned into a request.
    InvalidInput,
    /// An earlier input line has the same custom_id.
    DuplicateCustomId,
    /// The backend refused the request (4xx); not retried.
    InvalidRequest,
    /// The backend kept failing (5xx) through every attempt.
    ServerError,
    /// Every attempt timed out.
    Timeout,
    /// Every attempt failed to connect or lost its connection.
    ConnectionError,
    /// Every attempt got a malformed body.
    InvalidResponse,
    /// Every attempt was told to slow down (429/503).
    RateLimited,
    /// The answer did not validate against the schema after every repair.
    InvalidAnswer,
    /// No backend was available within `--max-wait`.
    NoBackend,
    /// The batch's completion window ended first (`drover batch-server`, OpenAI's code).
    BatchExpired,
}

impl ErrorCode {
    /// The code as it appears in output lines.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::InvalidInput => "invalid_input",
            ErrorCode::DuplicateCustomId => "duplicate_custom_id",
            ErrorCode::InvalidRequest => "invalid_request",
            ErrorCode::ServerError => "server_error",
            ErrorCode::Timeout => "timeout",
            ErrorCode::ConnectionError => "connection_error",
            ErrorCode::InvalidResponse => "invalid_response",
            ErrorCode::RateLimited => "rate_limited",
            ErrorCode::InvalidAnswer => "invalid_answer",
            ErrorCode::NoBackend => "no_backend",
            ErrorCode::BatchExpired => "batch_expired",
        }
    }

    /// Every code, for summaries and docs.
    pub const ALL: [ErrorCode; 11] = [
        ErrorCode::InvalidInput,
        ErrorCode::DuplicateCustomId,
        ErrorCode::InvalidRequest,
        ErrorCode::ServerError,
        ErrorCode::Timeout,
        ErrorCode::ConnectionError,
        ErrorCode::InvalidResponse,
        ErrorCode::RateLimited,
        ErrorCode::InvalidAnswer,
        ErrorCode::NoBackend,
        ErrorCode::BatchExpired,
    ];
}

/// `error` of an output line.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ErrorRecord {
    /// Stable code.
    pub code: ErrorCode,
    /// What went wrong, naming the line, backend or server message.
    pub message: String,
}

/// `response` of an output line: what the backend answered.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ResponsePart {
    /// HTTP status of the answer.
    pub status_code: u16,
    /// drover's id for this request (also sent as `X-Request-Id`).
    pub request_id: String,
    /// The backend's JSON body, passed through unchanged.
    pub body: Box<RawValue>,
}

/// drover's own fields, under one namespaced key so OpenAI's fields stay as OpenAI has them.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Meta {
    /// 1-based input line.
    pub line: u64,
    /// The backend that produced the answer (URL, no credentials).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backend: Option<String>,
    /// Attempts made, this one included.
    #[serde(default)]
    pub attempts: u32,
    /// Wall time of the successful (or last) attempt, milliseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub latency_ms: Option<u64>,
    /// Whether a hedge (a second copy sent to another backend) produced this answer.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub hedged: bool,
    /// Repair rounds used to get a valid structured answer.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub repairs: u32,
    /// When the line was recorded, Unix time in milliseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finished_at: Option<u64>,
    /// The structured answer parsed from the response (with `--schema`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub answer: Option<Box<RawValue>>,
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

/// One line of the output file, in OpenAI batch output format.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct OutputLine {
    /// `batch_req_<hex>`, unique per line.
    pub id: String,
    /// The task's key.
    pub custom_id: String,
    /// The backend's answer, when one arrived.
    pub response: Option<ResponsePart>,
    /// Null on success; the reason otherwise.
    pub error: Option<ErrorRecord>,
    /// drover's namespaced extras.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub drover: Option<Meta>,
}

impl OutputLine {
    /// Whether this line records a success.
    pub fn is_success(&self) -> bool {
        self.error.is_none()
    }
}

/// A fresh request id, `<prefix><32 hex digits>`, unique enough across runs (random 128 bits).
pub fn request_id(prefix: &str, random: u128) -> String {
    let mut s = String::with_capacity(prefix.len() + 32);
    s.push_str(prefix);
    push_hex(&mut s, random, 32);
    s
}

/// Appends the low `digits` hex digits of `value`, zero-padded. (`format!` costs ~10x more,
/// and ids are made for every request.)
pub fn push_hex(s: &mut String, value: u128, digits: u32) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    for i in (0..digits).rev() {
        s.push(HEX[((value >> (4 * i)) & 0xf) as usize] as char);
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn ids_are_zero_padded_hex() {
        assert_eq!(super::request_id("r_", 0xabc), format!("r_{:032x}", 0xabc));
        let mut s = String::new();
        super::push_hex(&mut s, 0x1f, 4);
        assert_eq!(s, "001f");
    }
}
