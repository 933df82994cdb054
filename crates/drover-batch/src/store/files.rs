//! File records.

use rusqlite::{Connection, OptionalExtension, Row, params};

use super::rows::{FileRow, Status};
use super::{Page, Store};
use crate::error::BatchError;

const COLUMNS: &str = "id, bytes, created_at, filename, purpose, path";

fn file_row(r: &Row<'_>) -> rusqlite::Result<FileRow> {
    Ok(FileRow {
        id: r.get(0)?,
        bytes: r.get::<_, i64>(1)? as u64,
        created_at: r.get(2)?,
        filename: r.get(3)?,
        purpose: r.get(4)?,
        path: r.get(5)?,
    })
}

pub(super) fn insert(conn: &Connection, f: &FileRow) -> rusqlite::Result<()> {
    conn.execute(
        "INSERT INTO files (id, bytes, created_at, filename, purpose, path) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        params![f.id, f.bytes as i64, f.created_at, f.filename, f.purpose, f.path],
    )?;
    Ok(())
}

pub(super) fn get(conn: &Connection, id: &str) -> rusqlite::Result<Option<FileRow>> {
    conn.query_row(
        &format!("SELECT {COLUMNS} FROM files WHERE id = ?1"),
        [id],
        file_row,
    )
    .optional()
}

/// Why a file was not deleted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DeleteOutcome {
    /// Gone from the store (its contents are the caller's to remove).
    Deleted(FileRow),
    /// No such file.
    NotFound,
    /// A batch that is not finished reads it.
    InUse {
        /// That batch.
        batch: String,
        /// Its status.
        status: Status,
    },
}

impl Store {
    /// Records a new file.
    pub async fn insert_file(&self, f: FileRow) -> Result<(), BatchError> {
        self.call(move |c| insert(c, &f)).await
    }

    /// A file by id.
    pub async fn file(&self, id: &str) -> Result<Option<FileRow>, BatchError> {
        let id = id.to_string();
        self.call(move |c| get(c, &id)).await
    }

    /// Files, newest first unless `ascending`; `after` is the id the previous page ended with
    /// (`None` inside the result when that id does not exist).
    pub async fn files(
        &self,
        purpose: Option<String>,
        after: Option<String>,
        limit: usize,
        ascending: bool,
    ) -> Result<Option<Page<FileRow>>, BatchError> {
        self.call(move |c| {
            let cursor = match &after {
                Some(a) => match c.query_row("SELECT seq FROM files WHERE id = ?1", [a], |r| r.get::<_, i64>(0)).optional()? {
                    Some(seq) => Some(seq),
                    None => return Ok(None),
                },
                None => None,
            };
            let (cmp, order) = if ascending { (">", "ASC") } else { ("<", "DESC") };
            let sql = format!(
                "SELECT {COLUMNS} FROM files WHERE (?1 IS NULL OR seq {cmp} ?1) AND (?2 IS NULL OR purpose = ?2) \
                 ORDER BY seq {order} LIMIT ?3"
            );
            let mut stmt = c.prepare(&sql)?;
            let mut rows: Vec<FileRow> =
                stmt.query_map(params![cursor, purpose, (limit + 1) as i64], file_row)?.collect::<Result<_, _>>()?;
            let has_more = rows.len() > limit;
            rows.truncate(limit);
            Ok(Some(Page { data: rows, has_more }))
        })
        .await
    }

    /// Deletes a file's record unless an unfinished batch reads it.
    pub async fn delete_file(&self, id: &str) -> Result<DeleteOutcome, BatchError> {
        let id = id.to_string();
        self.call(move |c| {
            let tx = c.transaction()?;
            let Some(row) = get(&tx, &id)? else {
                return Ok(DeleteOutcome::NotFound);
            };
            let user: Option<(String, String)> = tx
                .query_row(
                    "SELECT id, status FROM batches WHERE input_file_id = ?1 \
                     AND status NOT IN ('failed', 'completed', 'expired', 'cancelled') LIMIT 1",
                    [&id],
                    |r| Ok((r.get(0)?, r.get(1)?)),
                )
                .optional()?;
            if let Some((batch, status)) = user {
                let status = Status::parse(&status).unwrap_or(Status::InProgress);
                return Ok(DeleteOutcome::InUse { batch, status });
            }
            tx.execute("DELETE FROM files WHERE id = ?1", [&id])?;
            tx.commit()?;
            Ok(DeleteOutcome::Deleted(row))
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::scratch;

    fn file(id: &str, purpose: &str) -> FileRow {
        FileRow {
            id: id.into(),
            bytes: 10,
            created_at: 1,
            filename: "in.jsonl".into(),
            purpose: purpose.into(),
            path: format!("files/{id}.jsonl"),
        }
    }

    #[tokio::test]
    async fn files_page_newest_first_and_filter_by_purpose() {
        let (_d, s) = scratch();
        for (id, p) in [
            ("file-a", "batch"),
            ("file-b", "batch_output"),
            ("file-c", "batch"),
        ] {
            s.insert_file(file(id, p)).await.unwrap();
        }
        let page = s.files(None, None, 2, false).await.unwrap().unwrap();
        assert_eq!(
            page.data.iter().map(|f| f.id.as_str()).collect::<Vec<_>>(),
            ["file-c", "file-b"]
        );
        assert!(page.has_more);
        let page = s
            .files(None, Some("file-b".into()), 2, false)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(
            page.data.iter().map(|f| f.id.as_str()).collect::<Vec<_>>(),
            ["file-a"]
        );
        assert!(!page.has_more);
        let page = s
            .files(Some("batch".into()), None, 10, true)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(
            page.data.iter().map(|f| f.id.as_str()).collect::<Vec<_>>(),
            ["file-a", "file-c"]
        );
        assert!(
            s.files(None, Some("file-zzz".into()), 2, false)
                .await
                .unwrap()
                .is_none()
        );
        assert_eq!(
            s.file("file-b").await.unwrap().unwrap(),
            file("file-b", "batch_output")
        );
    }

    #[tokio::test]
    async fn delete_removes_the_record_once() {
        let (_d, s) = scratch();
        s.insert_file(file("file-a", "batch")).await.unwrap();
        assert!(matches!(
            s.delete_file("file-a").await.unwrap(),
            DeleteOutcome::Deleted(_)
        ));
        assert_eq!(
            s.delete_file("file-a").await.unwrap(),
            DeleteOutcome::NotFound
        );
        assert!(s.file("file-a").await.unwrap().is_none());
    }
}
