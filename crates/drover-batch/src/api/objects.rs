//! The JSON objects of OpenAI's API, built from the store's records.

use serde_json::{Value, json};

use crate::store::{BatchRow, Counts, FileRow};

/// A file object.
pub(crate) fn file(f: &FileRow) -> Value {
    json!({
        "id": f.id,
        "object": "file",
        "bytes": f.bytes,
        "created_at": f.created_at,
        "filename": f.filename,
        "purpose": f.purpose,
        "status": "processed",
        "status_details": null,
        "expires_at": null,
    })
}

/// A batch object; `live` holds the runtime's counts while it runs.
pub(crate) fn batch(b: &BatchRow, live: Option<Counts>) -> Value {
    let counts = match live {
        Some(c) if !b.status.is_terminal() => c,
        _ => b.counts,
    };
    let errors = if b.errors.is_empty() {
        Value::Null
    } else {
        json!({"object": "list", "data": b.errors})
    };
    json!({
        "id": b.id,
        "object": "batch",
        "endpoint": b.endpoint,
        "model": b.model,
        "errors": errors,
        "input_file_id": b.input_file_id,
        "completion_window": b.completion_window,
        "status": b.status.as_str(),
        "output_file_id": b.output_file_id,
        "error_file_id": b.error_file_id,
        "created_at": b.created_at,
        "in_progress_at": b.in_progress_at,
        "expires_at": b.expires_at,
        "finalizing_at": b.finalizing_at,
        "completed_at": b.completed_at,
        "failed_at": b.failed_at,
        "expired_at": b.expired_at,
        "cancelling_at": b.cancelling_at,
        "cancelled_at": b.cancelled_at,
        "request_counts": counts,
        "metadata": b.metadata,
    })
}

/// A list page, as OpenAI's cursor pagination reads it.
pub(crate) fn list(data: Vec<Value>, has_more: bool) -> Value {
    let id = |v: Option<&Value>| v.and_then(|v| v.get("id")).cloned().unwrap_or(Value::Null);
    json!({
        "object": "list",
        "first_id": id(data.first()),
        "last_id": id(data.last()),
        "has_more": has_more,
        "data": data,
    })
}
