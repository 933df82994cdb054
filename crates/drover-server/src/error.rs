//! vLLM-shaped error responses.
//!
//! Current vLLM answers every error as `{"error":{"message","type","param","code"}}` with `code`
//! equal to the HTTP status (vllm-facts §5). Clients (the official `openai` package, drover's own
//! client) branch on the status and show the message, so both must be right; the `type` names are
//! the Python exception names vLLM uses.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use crate::engine::EngineError;

/// An error answer of the OpenAI front, rendered in vLLM's shape.
#[derive(Debug, Clone, PartialEq)]
pub struct ApiError {
    /// HTTP status (also sent as `code`).
    pub status: StatusCode,
    /// vLLM's exception name, e.g. `BadRequestError`.
    pub kind: &'static str,
    /// Human-readable reason.
    pub message: String,
    /// The request field at fault, when known.
    pub param: Option<String>,
}

impl ApiError {
    /// A response with any status and type (the simulator uses this for injected faults).
    pub fn new(status: StatusCode, kind: &'static str, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            kind,
            message: message.into(),
            param: None,
        }
    }

    /// 400: the body is malformed or asks for something invalid.
    pub fn bad_request(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, "BadRequestError", message)
    }

    /// 400 naming the offending field.
    pub fn bad_param(param: &str, message: impl Into<String>) -> ApiError {
        ApiError {
            param: Some(param.to_string()),
            ..ApiError::bad_request(message)
        }
    }

    /// 404 for a `model` this server does not serve, with vLLM's exact message.
    pub fn model_not_found(model: &str) -> ApiError {
        ApiError {
            param: Some("model".to_string()),
            ..ApiError::new(
                StatusCode::NOT_FOUND,
                "NotFoundError",
                format!("The model `{model}` does not exist."),
            )
        }
    }

    /// 401: `--api-key` is set and the request lacks the right bearer token.
    pub fn unauthorized() -> ApiError {
        ApiError::new(
            StatusCode::UNAUTHORIZED,
            "AuthenticationError",
            "Unauthorized: missing or wrong API key",
        )
    }

    /// 413: the body is larger than `max_body_bytes`.
    pub fn too_large(limit: usize) -> ApiError {
        ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "PayloadTooLargeError",
            format!("request body is larger than the limit of {limit} bytes"),
        )
    }

    /// 503: the engine is not serving.
    pub fn unavailable(message: impl Into<String>) -> ApiError {
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "ServiceUnavailableError",
            message,
        )
    }

    /// 500: the engine failed the request.
    pub fn internal(message: impl Into<String>) -> ApiError {
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "InternalServerError",
            message,
        )
    }

    /// The JSON body, `{"error":{…}}`.
    pub fn body(&self) -> String {
        #[derive(Serialize)]
        struct Envelope<'a> {
            error: Inner<'a>,
        }
        #[derive(Serialize)]
        struct Inner<'a> {
            message: &'a str,
            #[serde(rename = "type")]
            kind: &'a str,
            param: Option<&'a str>,
            code: u16,
        }
        let envelope = Envelope {
            error: Inner {
                message: &self.message,
                kind: self.kind,
                param: self.param.as_deref(),
                code: self.status.as_u16(),
            },
        };
        serde_json::to_string(&envelope).expect("an error envelope always serializes")
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut response = (self.status, self.body()).into_response();
        response.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        response
    }
}

impl From<EngineError> for ApiError {
    fn from(err: EngineError) -> ApiError {
        match &err {
            EngineError::ContextLength { .. } => ApiError::bad_param("messages", err.to_string()),
            EngineError::MaxTokens { .. } => ApiError::bad_param("max_tokens", err.to_string()),
            EngineError::BadRequest(_) => ApiError::bad_request(err.to_string()),
            EngineError::Unavailable(_) => ApiError::unavailable(err.to_string()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn body_has_vllm_shape() {
        let body: serde_json::Value =
            serde_json::from_str(&ApiError::model_not_found("x").body()).unwrap();
        assert_eq!(body["error"]["message"], "The model `x` does not exist.");
        assert_eq!(body["error"]["type"], "NotFoundError");
        assert_eq!(body["error"]["code"], 404);
        assert_eq!(body["error"]["param"], "model");
    }

    #[test]
    fn engine_errors_keep_their_message() {
        let err: ApiError = EngineError::ContextLength {
            max_model_len: 10,
            prompt_tokens: 12,
        }
        .into();
        assert_eq!(err.status, StatusCode::BAD_REQUEST);
        assert!(
            err.message
                .starts_with("This model's maximum context length is 10 tokens.")
        );
        let err: ApiError = EngineError::Unavailable("starting".into()).into();
        assert_eq!(err.status, StatusCode::SERVICE_UNAVAILABLE);
    }
}
