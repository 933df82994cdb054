//! `/v1/batches`: create, retrieve, list, cancel.

use std::sync::Arc;

use axum::Json;
use axum::body::Bytes;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use serde::Deserialize;
use serde_json::{Map, Value};

use super::error::ApiError;
use super::{App, clamp_limit, objects};
use crate::ids::{batch_id, is_safe, now};
use crate::runtime::Cmd;
use crate::store::{BatchRow, CancelOutcome, Counts, Status};
use crate::window;

/// Endpoints a batch may target (drover sends these three).
const ENDPOINTS: [&str; 3] = ["/v1/chat/completions", "/v1/completions", "/v1/embeddings"];

/// OpenAI's limits on `metadata`.
const METADATA_PAIRS: usize = 16;
const METADATA_KEY: usize = 64;
const METADATA_VALUE: usize = 512;

#[derive(Deserialize)]
struct CreateBody {
    input_file_id: Option<Value>,
    endpoint: Option<Value>,
    completion_window: Option<Value>,
    #[serde(default)]
    metadata: Option<Value>,
}

fn string_field(v: Option<Value>, name: &str, example: &str) -> Result<String, ApiError> {
    match v {
        Some(Value::String(s)) if !s.is_empty() => Ok(s),
        Some(Value::String(_)) | None | Some(Value::Null) => Err(ApiError::bad_param(
            name,
            format!("missing required parameter {name:?} (e.g. {example:?})"),
        )),
        Some(other) => Err(ApiError::bad_param(
            name,
            format!("{name:?} must be a string, got {other}"),
        )),
    }
}

fn check_metadata(m: Option<Value>) -> Result<Option<Value>, ApiError> {
    let map: Map<String, Value> = match m {
        None | Some(Value::Null) => return Ok(None),
        Some(Value::Object(map)) => map,
        Some(other) => {
            return Err(ApiError::bad_param(
                "metadata",
                format!("metadata must be an object of strings, got {other}"),
            ));
        }
    };
    if map.len() > METADATA_PAIRS {
        return Err(ApiError::bad_param(
            "metadata",
            format!("metadata has {} keys; at most {METADATA_PAIRS}", map.len()),
        ));
    }
    for (k, v) in &map {
        let Value::String(s) = v else {
            return Err(ApiError::bad_param(
                "metadata",
                format!("metadata[{k:?}] must be a string, got {v}"),
            ));
        };
        if k.chars().count() > METADATA_KEY || s.chars().count() > METADATA_VALUE {
            return Err(ApiError::bad_param(
                "metadata",
                format!(
                    "metadata keys are at most {METADATA_KEY} characters and values at most {METADATA_VALUE} ({k:?})"
                ),
            ));
        }
    }
    Ok(Some(Value::Object(map)))
}

/// `POST /v1/batches`. The batch starts `validating`; its lines are checked in the background.
pub(crate) async fn create(
    State(app): State<Arc<App>>,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    let body: CreateBody = serde_json::from_slice(&body).map_err(|e| {
        ApiError::bad_param(
            "body",
            format!("the request body must be a JSON object: {e}"),
        )
    })?;
    let input_file_id = string_field(body.input_file_id, "input_file_id", "file-…")?;
    let endpoint = string_field(body.endpoint, "endpoint", "/v1/chat/completions")?;
    let completion_window = string_field(body.completion_window, "completion_window", "24h")?;
    if !ENDPOINTS.contains(&endpoint.as_str()) {
        return Err(ApiError::bad_param(
            "endpoint",
            format!(
                "endpoint {endpoint:?} is not served: use one of {}",
                ENDPOINTS.join(", ")
            ),
        ));
    }
    let window = window::parse(&completion_window)
        .map_err(|m| ApiError::bad_param("completion_window", m))?;
    let metadata = check_metadata(body.metadata)?;
    let file = match is_safe(&input_file_id) {
        true => app.ctx.store.file(&input_file_id).await?,
        false => None,
    };
    let file = file.ok_or_else(|| ApiError::no_such("File", &input_file_id, "input_file_id"))?;
    if file.purpose != "batch" {
        return Err(ApiError::bad_param(
            "input_file_id",
            format!(
                "file {input_file_id} has purpose {:?}; a batch's input must be uploaded with purpose=batch",
                file.purpose
            ),
        ));
    }
    let created_at = now();
    let row = BatchRow {
        id: batch_id(),
        endpoint,
        input_file_id,
        completion_window,
        status: Status::Validating,
        output_file_id: None,
        error_file_id: None,
        created_at,
        in_progress_at: None,
        expires_at: created_at + window.as_secs() as i64,
        finalizing_at: None,
        completed_at: None,
        failed_at: None,
        expired_at: None,
        cancelling_at: None,
        cancelled_at: None,
        counts: Counts::default(),
        metadata,
        errors: Vec::new(),
        model: app.model.clone(),
    };
    app.ctx.store.insert_batch(row.clone()).await?;
    app.ctx.spawn_validation(row.clone());
    Ok(Json(objects::batch(&row, None)))
}

fn live(app: &App, id: &str) -> Option<Counts> {
    app.ctx
        .runtime
        .live
        .read()
        .ok()
        .and_then(|l| l.get(id).copied())
}

async fn find(app: &App, id: &str) -> Result<Value, ApiError> {
    // Live counts first: they are dropped only after the final counts are committed, so a
    // batch read in between shows its final counts rather than stale ones.
    let counts = live(app, id);
    let row = match is_safe(id) {
        true => app.ctx.store.batch(id).await?,
        false => None,
    };
    let row = row.ok_or_else(|| ApiError::no_such("Batch", id, "batch_id"))?;
    Ok(objects::batch(&row, counts))
}

/// `GET /v1/batches/{id}`.
pub(crate) async fn retrieve(
    State(app): State<Arc<App>>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    Ok(Json(find(&app, &id).await?))
}

#[derive(Deserialize)]
pub(crate) struct ListQuery {
    after: Option<String>,
    limit: Option<i64>,
}

/// `GET /v1/batches?after=&limit=`, newest first.
pub(crate) async fn list(
    State(app): State<Arc<App>>,
    q: Result<Query<ListQuery>, QueryRejection>,
) -> Result<Json<Value>, ApiError> {
    let Query(q) = q.map_err(|e| ApiError::bad_param("query", e.body_text()))?;
    let limit = clamp_limit(q.limit, 20, 100)?;
    let after = q.after.clone();
    let page = app
        .ctx
        .store
        .batches(q.after, limit)
        .await?
        .ok_or_else(|| {
            ApiError::bad_param(
                "after",
                format!("no batch {:?} to list after", after.unwrap_or_default()),
            )
        })?;
    let data = page
        .data
        .iter()
        .map(|b| objects::batch(b, live(&app, &b.id)))
        .collect();
    Ok(Json(objects::list(data, page.has_more)))
}

/// `POST /v1/batches/{id}/cancel`: no more of its requests are sent; those in flight finish.
pub(crate) async fn cancel(
    State(app): State<Arc<App>>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    if !is_safe(&id) {
        return Err(ApiError::no_such("Batch", &id, "batch_id"));
    }
    match app.ctx.store.request_cancel(&id, now()).await? {
        CancelOutcome::Accepted { row, was } => {
            // A batch still validating is never started now (its validation sees the cancel);
            // one in progress is running, or about to be, in the runtime.
            if was == Status::InProgress && !app.ctx.runtime.send(Cmd::Cancel { id: id.clone() }) {
                return Err(ApiError::unavailable(
                    "the server is shutting down; the cancel is recorded and completes on restart",
                ));
            }
            Ok(Json(objects::batch(&row, live(&app, &id))))
        }
        CancelOutcome::Refused(row) => Err(ApiError::conflict(format!(
            "Cannot cancel a batch with status '{}'.",
            row.status.as_str()
        ))),
        CancelOutcome::NotFound => Err(ApiError::no_such("Batch", &id, "batch_id")),
    }
}
