//! Receiving `POST /v1/files`: the multipart body is streamed to a temporary file under
//! `<data-dir>/tmp` (never held in memory), counted against the size limit as it arrives, and
//! only then checked and moved into place.

use std::path::{Path, PathBuf};

use axum::extract::Multipart;
use axum::extract::multipart::Field;
use tokio::io::AsyncWriteExt;

use crate::api::error::ApiError;

/// Bytes a text field (`purpose`, …) may have.
const MAX_TEXT_FIELD: usize = 1024;

/// A temporary file removed when dropped, unless kept.
pub(crate) struct PartFile {
    path: PathBuf,
    keep: bool,
}

impl PartFile {
    /// Its path.
    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    /// Moves it to `to` (same filesystem) and keeps it there.
    pub(crate) fn persist(mut self, to: &Path) -> std::io::Result<()> {
        std::fs::rename(&self.path, to)?;
        if let Some(dir) = to.parent()
            && let Ok(d) = std::fs::File::open(dir)
        {
            let _ = d.sync_all();
        }
        self.keep = true;
        Ok(())
    }
}

impl Drop for PartFile {
    fn drop(&mut self) {
        if !self.keep {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

/// What an upload carried.
pub(crate) struct Received {
    /// `purpose`.
    pub purpose: Option<String>,
    /// The file's contents on disk, its name and size.
    pub file: Option<(PartFile, String, u64)>,
}

/// Reads every field; the `file` field goes to disk under `tmp`, at most `limit` bytes.
pub(crate) async fn receive(
    mut mp: Multipart,
    tmp: &Path,
    limit: u64,
) -> Result<Received, ApiError> {
    let mut got = Received {
        purpose: None,
        file: None,
    };
    while let Some(field) = mp.next_field().await.map_err(multipart_error)? {
        match field.name() {
            Some("purpose") => got.purpose = Some(text(field).await?),
            Some("file") => {
                if got.file.is_some() {
                    return Err(ApiError::bad_param(
                        "file",
                        "the upload has more than one file: send one file per request",
                    ));
                }
                got.file = Some(to_disk(field, tmp, limit).await?);
            }
            // Other fields (`expires_after[…]`) are accepted and ignored; read past them.
            _ => {
                let _ = text(field).await?;
            }
        }
    }
    Ok(got)
}

async fn text(mut field: Field<'_>) -> Result<String, ApiError> {
    let name = field.name().unwrap_or("field").to_string();
    let mut buf = Vec::new();
    while let Some(chunk) = field.chunk().await.map_err(multipart_error)? {
        if buf.len() + chunk.len() > MAX_TEXT_FIELD {
            return Err(ApiError::bad_param(
                &name,
                format!("field {name:?} is longer than {MAX_TEXT_FIELD} bytes"),
            ));
        }
        buf.extend_from_slice(&chunk);
    }
    String::from_utf8(buf)
        .map_err(|_| ApiError::bad_param(&name, format!("field {name:?} is not UTF-8 text")))
}

async fn to_disk(
    mut field: Field<'_>,
    tmp: &Path,
    limit: u64,
) -> Result<(PartFile, String, u64), ApiError> {
    let filename = field
        .file_name()
        .filter(|n| !n.is_empty())
        .unwrap_or("upload.jsonl")
        .to_string();
    let part = PartFile {
        path: tmp.join(format!("{}.part", uuid::Uuid::new_v4().simple())),
        keep: false,
    };
    let mut out = tokio::fs::File::create(&part.path)
        .await
        .map_err(|e| ApiError::internal(format!("cannot store the upload: {e}")))?;
    let mut bytes = 0u64;
    while let Some(chunk) = field.chunk().await.map_err(multipart_error)? {
        bytes += chunk.len() as u64;
        if bytes > limit {
            return Err(ApiError::too_large(limit));
        }
        out.write_all(&chunk)
            .await
            .map_err(|e| ApiError::internal(format!("cannot store the upload: {e}")))?;
    }
    out.flush()
        .await
        .map_err(|e| ApiError::internal(format!("cannot store the upload: {e}")))?;
    out.sync_all()
        .await
        .map_err(|e| ApiError::internal(format!("cannot store the upload: {e}")))?;
    Ok((part, filename, bytes))
}

fn multipart_error(e: axum::extract::multipart::MultipartError) -> ApiError {
    ApiError::bad_param(
        "file",
        format!(
            "the upload is not a valid multipart/form-data body: {}",
            e.body_text()
        ),
    )
}
