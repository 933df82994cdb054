//! The API key check: `Authorization: Bearer KEY` on every `/v1` route when the server has a key.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::header::AUTHORIZATION;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::App;
use super::error::ApiError;

/// Rejects requests without the right key (401, OpenAI's shape); lets the rest through.
pub(crate) async fn require_key(State(app): State<Arc<App>>, req: Request, next: Next) -> Response {
    if let Some(key) = &app.api_key {
        let given = req
            .headers()
            .get(AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .map(str::trim);
        if !given.is_some_and(|g| same(g.as_bytes(), key.as_bytes())) {
            return ApiError::bad_key().into_response();
        }
    }
    next.run(req).await
}

/// Compares in time that depends on the length only, so that timing does not reveal how much
/// of a guessed key is right.
pub(crate) fn same(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    let diff = a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y));
    std::hint::black_box(diff) == 0
}

#[cfg(test)]
mod tests {
    #[test]
    fn keys_compare_whole() {
        assert!(super::same(b"sk-abc", b"sk-abc"));
        assert!(!super::same(b"sk-abc", b"sk-abd"));
        assert!(!super::same(b"sk-abc", b"sk-ab"));
        assert!(!super::same(b"", b"x"));
    }
}
