//! The HTTP surface: OpenAI's `/v1/files` and `/v1/batches`, plus an open `GET /health`.
//!
//! - [`files`], [`batches`]: the routes.
//! - [`objects`]: the JSON objects OpenAI's clients parse.
//! - [`auth`]: the API key check; [`error`]: OpenAI's error shape.

pub(crate) mod auth;
mod batches;
pub(crate) mod error;
mod files;
mod objects;

use std::sync::Arc;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::{Method, StatusCode, Uri};
use axum::response::IntoResponse;
use axum::routing::{get, post};

use crate::lifecycle::Ctx;
use error::ApiError;

/// What every handler shares.
pub(crate) struct App {
    /// Store, data directory, runtime.
    pub ctx: Arc<Ctx>,
    /// The key requests must carry, if any.
    pub api_key: Option<String>,
    /// Largest upload, bytes.
    pub max_upload_bytes: u64,
    /// The fleet's model (shown in batch objects).
    pub model: Option<String>,
}

/// Largest JSON body of the non-upload routes.
const MAX_JSON_BODY: usize = 1 << 20;

/// The routes.
pub(crate) fn router(app: Arc<App>) -> Router {
    let v1 = Router::new()
        .route(
            "/v1/files",
            post(files::create)
                .layer(DefaultBodyLimit::disable())
                .get(files::list),
        )
        .route("/v1/files/{id}", get(files::retrieve).delete(files::delete))
        .route("/v1/files/{id}/content", get(files::content))
        .route("/v1/batches", post(batches::create).get(batches::list))
        .route("/v1/batches/{id}", get(batches::retrieve))
        .route("/v1/batches/{id}/cancel", post(batches::cancel))
        .fallback(|method: Method, uri: Uri| async move {
            ApiError::no_route(method.as_str(), uri.path())
        })
        .layer(DefaultBodyLimit::max(MAX_JSON_BODY))
        .layer(axum::middleware::from_fn_with_state(
            app.clone(),
            auth::require_key,
        ));
    Router::new()
        .route("/health", get(|| async { StatusCode::OK.into_response() }))
        .merge(v1)
        .with_state(app)
}

/// `limit` query values: at least 1, at most `max`.
pub(crate) fn clamp_limit(
    limit: Option<i64>,
    default: usize,
    max: usize,
) -> Result<usize, ApiError> {
    match limit {
        None => Ok(default),
        Some(n) if n >= 1 && n as u64 <= max as u64 => Ok(n as usize),
        Some(n) => Err(ApiError::bad_param(
            "limit",
            format!("limit must be between 1 and {max}, got {n}"),
        )),
    }
}
