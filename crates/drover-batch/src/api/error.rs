//! Errors in OpenAI's shape: `{"error":{"message","type","param","code"}}`.
//!
//! The official clients raise by status (400 `BadRequestError`, 401 `AuthenticationError`,
//! 404 `NotFoundError`, 409 `ConflictError`, …) and show `message`, so the status must be right
//! and the message must say what to fix.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::json;

use crate::error::BatchError;

/// An error answer.
#[derive(Debug, Clone, PartialEq)]
pub struct ApiError {
    /// HTTP status.
    pub status: StatusCode,
    /// OpenAI's `type`, e.g. `invalid_request_error`.
    pub kind: &'static str,
    /// What went wrong.
    pub message: String,
    /// The parameter at fault.
    pub param: Option<String>,
    /// A stable code, e.g. `invalid_api_key`.
    pub code: Option<&'static str>,
}

impl ApiError {
    fn new(status: StatusCode, kind: &'static str, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            kind,
            message: message.into(),
            param: None,
            code: None,
        }
    }

    /// 400 naming the parameter at fault.
    pub fn bad_param(param: &str, message: impl Into<String>) -> ApiError {
        ApiError {
            param: Some(param.to_string()),
            ..ApiError::new(StatusCode::BAD_REQUEST, "invalid_request_error", message)
        }
    }

    /// Sets the code.
    pub fn with_code(mut self, code: &'static str) -> ApiError {
        self.code = Some(code);
        self
    }

    /// 401: the key is missing or wrong (the key itself is never echoed).
    pub fn bad_key() -> ApiError {
        ApiError::new(
            StatusCode::UNAUTHORIZED,
            "invalid_request_error",
            "Incorrect API key provided. Pass the key this server was started with (--api-key or DROVER_BATCH_API_KEY) \
             as \"Authorization: Bearer KEY\".",
        )
        .with_code("invalid_api_key")
    }

    /// 404 for an object that does not exist.
    pub fn no_such(kind: &str, id: &str, param: &str) -> ApiError {
        ApiError {
            param: Some(param.to_string()),
            ..ApiError::new(
                StatusCode::NOT_FOUND,
                "invalid_request_error",
                format!("No such {kind} object: {id}"),
            )
        }
    }

    /// 404 for a route that does not exist.
    pub fn no_route(method: &str, path: &str) -> ApiError {
        ApiError::new(
            StatusCode::NOT_FOUND,
            "invalid_request_error",
            format!("Invalid URL ({method} {path}): this server serves /v1/files and /v1/batches"),
        )
        .with_code("unknown_url")
    }

    /// 409: the object is not in a state that allows this.
    pub fn conflict(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::CONFLICT, "invalid_request_error", message)
    }

    /// 413: the upload is over the limit.
    pub fn too_large(limit: u64) -> ApiError {
        ApiError {
            param: Some("file".into()),
            ..ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "invalid_request_error",
                format!("the file is larger than this server's limit of {limit} bytes (--max-upload-bytes)"),
            )
        }
        .with_code("file_too_large")
    }

    /// 500: something on our side failed.
    pub fn internal(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "server_error", message)
    }

    /// 503: the server is shutting down.
    pub fn unavailable(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "server_error", message)
    }
}

impl From<BatchError> for ApiError {
    fn from(e: BatchError) -> ApiError {
        tracing::error!(target: "drover::batch", "{e}");
        ApiError::internal(e.to_string())
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = json!({"error": {"message": self.message, "type": self.kind, "param": self.param, "code": self.code}});
        (self.status, Json(body)).into_response()
    }
}
