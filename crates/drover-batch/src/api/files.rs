//! `/v1/files`: upload (checked line by line), retrieve, content, list, delete.

use std::sync::Arc;

use axum::Json;
use axum::body::Body;
use axum::extract::multipart::MultipartRejection;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Multipart, Path, Query, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::{Value, json};
use tokio_util::io::ReaderStream;

use super::error::ApiError;
use super::{App, clamp_limit, objects};
use crate::check::check_upload;
use crate::ids::{file_id, is_safe, now};
use crate::store::{DeleteOutcome, FileRow};
use crate::upload::receive;

/// The only purpose uploads may have: this server runs batches and nothing else.
const BATCH: &str = "batch";

/// `POST /v1/files`.
pub(crate) async fn create(
    State(app): State<Arc<App>>,
    mp: Result<Multipart, MultipartRejection>,
) -> Result<Json<Value>, ApiError> {
    let mp = mp.map_err(|e| {
        ApiError::bad_param(
            "file",
            format!("expected a multipart/form-data upload: {}", e.body_text()),
        )
    })?;
    let dirs = &app.ctx.dirs;
    let got = receive(mp, &dirs.tmp(), app.max_upload_bytes).await?;
    let purpose = got.purpose.ok_or_else(|| {
        ApiError::bad_param("purpose", "missing \"purpose\": uploads need purpose=batch")
    })?;
    if purpose != BATCH {
        return Err(ApiError::bad_param(
            "purpose",
            format!(
                "purpose {purpose:?} is not served: this server takes batch input files only (purpose=batch)"
            ),
        ));
    }
    let (part, filename, bytes) = got
        .file
        .ok_or_else(|| ApiError::bad_param("file", "missing \"file\": attach the JSONL file"))?;
    let path = part.path().to_path_buf();
    let checked = tokio::task::spawn_blocking(move || check_upload(&path))
        .await
        .expect("check task")
        .map_err(|e| ApiError::internal(format!("cannot read the upload back: {e}")))?;
    if let Err(bad) = checked {
        return Err(ApiError::bad_param(
            "file",
            format!(
                "{filename} is not a valid batch input file: {}",
                bad.message
            ),
        )
        .with_code("invalid_batch_input"));
    }
    let id = file_id();
    let to = dirs.files().join(format!("{id}.jsonl"));
    part.persist(&to)
        .map_err(|e| ApiError::internal(format!("cannot store the upload: {e}")))?;
    let row = FileRow {
        id,
        bytes,
        created_at: now(),
        filename,
        purpose,
        path: dirs.relative(&to),
    };
    if let Err(e) = app.ctx.store.insert_file(row.clone()).await {
        let _ = std::fs::remove_file(&to);
        return Err(e.into());
    }
    Ok(Json(objects::file(&row)))
}

async fn find(app: &App, id: &str) -> Result<FileRow, ApiError> {
    if !is_safe(id) {
        return Err(ApiError::no_such("File", id, "file_id"));
    }
    app.ctx
        .store
        .file(id)
        .await?
        .ok_or_else(|| ApiError::no_such("File", id, "file_id"))
}

/// `GET /v1/files/{id}`.
pub(crate) async fn retrieve(
    State(app): State<Arc<App>>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    Ok(Json(objects::file(&find(&app, &id).await?)))
}

/// `GET /v1/files/{id}/content`: the bytes, streamed from disk.
pub(crate) async fn content(
    State(app): State<Arc<App>>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let row = find(&app, &id).await?;
    let path = app.ctx.dirs.resolve(&row.path);
    let file = tokio::fs::File::open(&path)
        .await
        .map_err(|e| ApiError::internal(format!("the contents of {id} cannot be read: {e}")))?;
    let len = file.metadata().await.map(|m| m.len()).unwrap_or(row.bytes);
    Ok((
        [
            (header::CONTENT_TYPE, "application/octet-stream".to_string()),
            (header::CONTENT_LENGTH, len.to_string()),
        ],
        Body::from_stream(ReaderStream::with_capacity(file, 1 << 16)),
    )
        .into_response())
}

#[derive(Deserialize)]
pub(crate) struct ListQuery {
    after: Option<String>,
    limit: Option<i64>,
    order: Option<String>,
    purpose: Option<String>,
}

/// `GET /v1/files?purpose=&after=&limit=&order=`.
pub(crate) async fn list(
    State(app): State<Arc<App>>,
    q: Result<Query<ListQuery>, QueryRejection>,
) -> Result<Json<Value>, ApiError> {
    let Query(q) = q.map_err(|e| ApiError::bad_param("query", e.body_text()))?;
    let limit = clamp_limit(q.limit, 10_000, 10_000)?;
    let ascending = match q.order.as_deref() {
        None | Some("desc") => false,
        Some("asc") => true,
        Some(o) => {
            return Err(ApiError::bad_param(
                "order",
                format!("order must be \"asc\" or \"desc\", got {o:?}"),
            ));
        }
    };
    let after = q.after.clone();
    let page = app
        .ctx
        .store
        .files(q.purpose, q.after, limit, ascending)
        .await?
        .ok_or_else(|| {
            ApiError::bad_param(
                "after",
                format!("no file {:?} to list after", after.unwrap_or_default()),
            )
        })?;
    Ok(Json(objects::list(
        page.data.iter().map(objects::file).collect(),
        page.has_more,
    )))
}

/// `DELETE /v1/files/{id}`. An unfinished batch's input stays until the batch ends.
pub(crate) async fn delete(
    State(app): State<Arc<App>>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    if !is_safe(&id) {
        return Err(ApiError::no_such("File", &id, "file_id"));
    }
    match app.ctx.store.delete_file(&id).await? {
        DeleteOutcome::Deleted(row) => {
            let path = app.ctx.dirs.resolve(&row.path);
            if let Err(e) = std::fs::remove_file(&path)
                && e.kind() != std::io::ErrorKind::NotFound
            {
                tracing::warn!(target: "drover::batch", "cannot remove {}: {e}", path.display());
            }
            Ok(Json(
                json!({"id": row.id, "object": "file", "deleted": true}),
            ))
        }
        DeleteOutcome::NotFound => Err(ApiError::no_such("File", &id, "file_id")),
        DeleteOutcome::InUse { batch, status } => Err(ApiError::conflict(format!(
            "file {id} is the input of batch {batch}, which is {}: delete it once the batch has ended (or cancel the batch)",
            status.as_str()
        ))),
    }
}
