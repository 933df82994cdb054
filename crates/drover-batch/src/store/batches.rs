//! Batch records and their status changes. Every change is one transaction that first reads
//! the status it changes from: a cancel racing the end of a batch, or a restart redoing a
//! step, finds the batch where the other left it.

use rusqlite::{Connection, OptionalExtension, Row, params};

use super::Store;
use super::files;
use super::rows::{BatchRow, Counts, Ending, FileRow, LineError, Status};
use crate::error::BatchError;

/// One page of a list.
#[derive(Debug, Clone, PartialEq)]
pub struct Page<T> {
    /// The items.
    pub data: Vec<T>,
    /// Whether more follow.
    pub has_more: bool,
}

/// What a cancel request found.
#[derive(Debug, Clone, PartialEq)]
pub enum CancelOutcome {
    /// Now `cancelling` (or already cancelling or cancelled: cancelling twice is harmless).
    Accepted {
        /// The batch after the change.
        row: BatchRow,
        /// Its status before.
        was: Status,
    },
    /// The batch had already ended otherwise.
    Refused(BatchRow),
    /// No such batch.
    NotFound,
}

const COLUMNS: &str = "id, endpoint, input_file_id, completion_window, status, output_file_id, error_file_id, \
    created_at, in_progress_at, expires_at, finalizing_at, completed_at, failed_at, expired_at, cancelling_at, \
    cancelled_at, total, completed, failed, metadata, errors, model";

fn batch_row(r: &Row<'_>) -> rusqlite::Result<BatchRow> {
    let status: String = r.get(4)?;
    let status = Status::parse(&status).ok_or_else(|| {
        rusqlite::Error::FromSqlConversionFailure(
            4,
            rusqlite::types::Type::Text,
            format!("unknown status {status:?}").into(),
        )
    })?;
    let json = |i: usize, s: Option<String>| -> rusqlite::Result<Option<serde_json::Value>> {
        s.map(|s| serde_json::from_str(&s))
            .transpose()
            .map_err(|e| {
                rusqlite::Error::FromSqlConversionFailure(
                    i,
                    rusqlite::types::Type::Text,
                    Box::new(e),
                )
            })
    };
    let errors = match json(20, r.get(20)?)? {
        Some(v) => serde_json::from_value(v).map_err(|e| {
            rusqlite::Error::FromSqlConversionFailure(20, rusqlite::types::Type::Text, Box::new(e))
        })?,
        None => Vec::new(),
    };
    Ok(BatchRow {
        id: r.get(0)?,
        endpoint: r.get(1)?,
        input_file_id: r.get(2)?,
        completion_window: r.get(3)?,
        status,
        output_file_id: r.get(5)?,
        error_file_id: r.get(6)?,
        created_at: r.get(7)?,
        in_progress_at: r.get(8)?,
        expires_at: r.get(9)?,
        finalizing_at: r.get(10)?,
        completed_at: r.get(11)?,
        failed_at: r.get(12)?,
        expired_at: r.get(13)?,
        cancelling_at: r.get(14)?,
        cancelled_at: r.get(15)?,
        counts: Counts {
            total: r.get::<_, i64>(16)? as u64,
            completed: r.get::<_, i64>(17)? as u64,
            failed: r.get::<_, i64>(18)? as u64,
        },
        metadata: json(19, r.get(19)?)?,
        errors,
        model: r.get(21)?,
    })
}

fn get(conn: &Connection, id: &str) -> rusqlite::Result<Option<BatchRow>> {
    conn.query_row(
        &format!("SELECT {COLUMNS} FROM batches WHERE id = ?1"),
        [id],
        batch_row,
    )
    .optional()
}

fn status_of(conn: &Connection, id: &str) -> rusqlite::Result<Option<Status>> {
    Ok(get(conn, id)?.map(|b| b.status))
}

fn set_counts(conn: &Connection, id: &str, c: Counts) -> rusqlite::Result<()> {
    conn.execute(
        "UPDATE batches SET total = ?2, completed = ?3, failed = ?4 WHERE id = ?1",
        params![id, c.total as i64, c.completed as i64, c.failed as i64],
    )?;
    Ok(())
}

impl Store {
    /// Records a new batch.
    pub async fn insert_batch(&self, b: BatchRow) -> Result<(), BatchError> {
        self.call(move |c| {
            let errors = (!b.errors.is_empty()).then(|| serde_json::to_string(&b.errors).expect("errors serialize"));
            c.execute(
                &format!("INSERT INTO batches ({COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, ?19, ?20, ?21, ?22)"),
                params![
                    b.id, b.endpoint, b.input_file_id, b.completion_window, b.status.as_str(), b.output_file_id,
                    b.error_file_id, b.created_at, b.in_progress_at, b.expires_at, b.finalizing_at, b.completed_at,
                    b.failed_at, b.expired_at, b.cancelling_at, b.cancelled_at, b.counts.total as i64,
                    b.counts.completed as i64, b.counts.failed as i64, b.metadata.as_ref().map(|m| m.to_string()),
                    errors, b.model,
                ],
            )?;
            Ok(())
        })
        .await
    }

    /// A batch by id.
    pub async fn batch(&self, id: &str) -> Result<Option<BatchRow>, BatchError> {
        let id = id.to_string();
        self.call(move |c| get(c, &id)).await
    }

    /// Batches, newest first; `after` is the id the previous page ended with (`None` inside the
    /// result when that id does not exist).
    pub async fn batches(
        &self,
        after: Option<String>,
        limit: usize,
    ) -> Result<Option<Page<BatchRow>>, BatchError> {
        self.call(move |c| {
            let cursor = match &after {
                Some(a) => match c.query_row("SELECT seq FROM batches WHERE id = ?1", [a], |r| r.get::<_, i64>(0)).optional()? {
                    Some(seq) => Some(seq),
                    None => return Ok(None),
                },
                None => None,
            };
            let mut stmt = c.prepare(&format!(
                "SELECT {COLUMNS} FROM batches WHERE (?1 IS NULL OR seq < ?1) ORDER BY seq DESC LIMIT ?2"
            ))?;
            let mut rows: Vec<BatchRow> =
                stmt.query_map(params![cursor, (limit + 1) as i64], batch_row)?.collect::<Result<_, _>>()?;
            let has_more = rows.len() > limit;
            rows.truncate(limit);
            Ok(Some(Page { data: rows, has_more }))
        })
        .await
    }

    /// Batches in any of `statuses`, oldest first (what a restart picks up).
    pub async fn batches_in(&self, statuses: &[Status]) -> Result<Vec<BatchRow>, BatchError> {
        let names: Vec<&'static str> = statuses.iter().map(|s| s.as_str()).collect();
        self.call(move |c| {
            let mut stmt = c.prepare(&format!(
                "SELECT {COLUMNS} FROM batches WHERE status = ?1 ORDER BY seq ASC"
            ))?;
            let mut out = Vec::new();
            for name in names {
                out.extend(
                    stmt.query_map([name], batch_row)?
                        .collect::<Result<Vec<_>, _>>()?,
                );
            }
            out.sort_by_key(|b| b.created_at);
            Ok(out)
        })
        .await
    }

    /// validating → in_progress with `total` requests. Returns the status the batch has after
    /// the call (not `in_progress` when a cancel came first).
    pub async fn begin(
        &self,
        id: &str,
        total: u64,
        now: i64,
    ) -> Result<Option<Status>, BatchError> {
        let id = id.to_string();
        self.call(move |c| {
            let tx = c.transaction()?;
            let Some(status) = status_of(&tx, &id)? else {
                return Ok(None);
            };
            if status != Status::Validating {
                return Ok(Some(status));
            }
            tx.execute(
                "UPDATE batches SET status = 'in_progress', in_progress_at = ?2 WHERE id = ?1",
                params![id, now],
            )?;
            set_counts(
                &tx,
                &id,
                Counts {
                    total,
                    completed: 0,
                    failed: 0,
                },
            )?;
            tx.commit()?;
            Ok(Some(Status::InProgress))
        })
        .await
    }

    /// validating → failed, with the reasons. Returns whether it applied.
    pub async fn fail_validation(
        &self,
        id: &str,
        errors: Vec<LineError>,
        total: u64,
        now: i64,
    ) -> Result<bool, BatchError> {
        let id = id.to_string();
        self.call(move |c| {
            let tx = c.transaction()?;
            if status_of(&tx, &id)? != Some(Status::Validating) {
                return Ok(false);
            }
            let errors = serde_json::to_string(&errors).expect("errors serialize");
            tx.execute(
                "UPDATE batches SET status = 'failed', failed_at = ?2, errors = ?3 WHERE id = ?1",
                params![id, now, errors],
            )?;
            set_counts(
                &tx,
                &id,
                Counts {
                    total,
                    completed: 0,
                    failed: 0,
                },
            )?;
            tx.commit()?;
            Ok(true)
        })
        .await
    }

    /// validating | in_progress → cancelling.
    pub async fn request_cancel(&self, id: &str, now: i64) -> Result<CancelOutcome, BatchError> {
        let id = id.to_string();
        self.call(move |c| {
            let tx = c.transaction()?;
            let Some(row) = get(&tx, &id)? else { return Ok(CancelOutcome::NotFound) };
            match row.status {
                Status::Validating | Status::InProgress => {
                    tx.execute(
                        "UPDATE batches SET status = 'cancelling', cancelling_at = ?2 WHERE id = ?1",
                        params![id, now],
                    )?;
                    let was = row.status;
                    let row = get(&tx, &id)?.expect("row just updated");
                    tx.commit()?;
                    Ok(CancelOutcome::Accepted { row, was })
                }
                Status::Cancelling | Status::Cancelled => Ok(CancelOutcome::Accepted { was: row.status, row }),
                _ => Ok(CancelOutcome::Refused(row)),
            }
        })
        .await
    }

    /// in_progress → finalizing (every request has a result). A pending cancel stays pending.
    pub async fn mark_finalizing(
        &self,
        id: &str,
        counts: Counts,
        now: i64,
    ) -> Result<(), BatchError> {
        let id = id.to_string();
        self.call(move |c| {
            let tx = c.transaction()?;
            if status_of(&tx, &id)? == Some(Status::InProgress) {
                tx.execute(
                    "UPDATE batches SET status = 'finalizing', finalizing_at = ?2 WHERE id = ?1",
                    params![id, now],
                )?;
                set_counts(&tx, &id, counts)?;
                tx.commit()?;
            }
            Ok(())
        })
        .await
    }

    /// Ends a batch: registers its output and error files and sets the final status (cancelled
    /// when a cancel was pending, whatever the ending). A batch already ended is left as it is
    /// and the files are not registered; the status it has is returned either way.
    pub async fn finish(
        &self,
        id: &str,
        ending: Ending,
        counts: Counts,
        output: Option<FileRow>,
        error: Option<FileRow>,
        now: i64,
    ) -> Result<Option<Status>, BatchError> {
        let id = id.to_string();
        self.call(move |c| {
            let tx = c.transaction()?;
            let Some(current) = status_of(&tx, &id)? else { return Ok(None) };
            if current.is_terminal() {
                return Ok(Some(current));
            }
            let status = if current == Status::Cancelling { Status::Cancelled } else { ending.status() };
            for f in output.iter().chain(error.iter()) {
                files::insert(&tx, f)?;
            }
            let at = match status {
                Status::Completed => "completed_at",
                Status::Cancelled => "cancelled_at",
                Status::Expired => "expired_at",
                _ => "failed_at",
            };
            tx.execute(
                &format!("UPDATE batches SET status = ?2, {at} = ?3, output_file_id = ?4, error_file_id = ?5 WHERE id = ?1"),
                params![id, status.as_str(), now, output.as_ref().map(|f| &f.id), error.as_ref().map(|f| &f.id)],
            )?;
            if let Ending::Failed(message) = &ending {
                let errors = vec![LineError { code: "batch_failed".into(), message: message.clone(), param: None, line: None }];
                tx.execute(
                    "UPDATE batches SET errors = ?2 WHERE id = ?1",
                    params![id, serde_json::to_string(&errors).expect("errors serialize")],
                )?;
            }
            set_counts(&tx, &id, counts)?;
            tx.commit()?;
            Ok(Some(status))
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::scratch;

    pub(crate) fn row(id: &str) -> BatchRow {
        BatchRow {
            id: id.into(),
            endpoint: "/v1/chat/completions".into(),
            input_file_id: "file-in".into(),
            completion_window: "24h".into(),
            status: Status::Validating,
            output_file_id: None,
            error_file_id: None,
            created_at: 100,
            in_progress_at: None,
            expires_at: 100 + 86_400,
            finalizing_at: None,
            completed_at: None,
            failed_at: None,
            expired_at: None,
            cancelling_at: None,
            cancelled_at: None,
            counts: Counts::default(),
            metadata: Some(serde_json::json!({"k": "v"})),
            errors: Vec::new(),
            model: Some("m".into()),
        }
    }

    fn out_file(id: &str) -> FileRow {
        FileRow {
            id: id.into(),
            bytes: 5,
            created_at: 9,
            filename: "o.jsonl".into(),
            purpose: "batch_output".into(),
            path: "x".into(),
        }
    }

    #[tokio::test]
    async fn a_batch_runs_through_its_statuses() {
        let (_d, s) = scratch();
        s.insert_batch(row("batch_1")).await.unwrap();
        assert_eq!(
            s.batch("batch_1").await.unwrap().unwrap(),
            row("batch_1"),
            "stored as given"
        );
        assert_eq!(
            s.begin("batch_1", 7, 101).await.unwrap(),
            Some(Status::InProgress)
        );
        assert_eq!(
            s.begin("batch_1", 7, 101).await.unwrap(),
            Some(Status::InProgress),
            "only once"
        );
        let counts = Counts {
            total: 7,
            completed: 6,
            failed: 1,
        };
        s.mark_finalizing("batch_1", counts, 102).await.unwrap();
        let st = s
            .finish(
                "batch_1",
                Ending::Completed,
                counts,
                Some(out_file("file-o")),
                None,
                103,
            )
            .await
            .unwrap();
        assert_eq!(st, Some(Status::Completed));
        let b = s.batch("batch_1").await.unwrap().unwrap();
        assert_eq!(
            (b.in_progress_at, b.finalizing_at, b.completed_at),
            (Some(101), Some(102), Some(103))
        );
        assert_eq!(
            (b.output_file_id.as_deref(), b.error_file_id.as_deref()),
            (Some("file-o"), None)
        );
        assert_eq!(b.counts, counts);
        assert!(s.file("file-o").await.unwrap().is_some());
        let again = s
            .finish(
                "batch_1",
                Ending::Expired,
                counts,
                Some(out_file("file-p")),
                None,
                104,
            )
            .await
            .unwrap();
        assert_eq!(again, Some(Status::Completed), "an ended batch stays ended");
        assert!(s.file("file-p").await.unwrap().is_none());
    }

    #[tokio::test]
    async fn a_pending_cancel_wins_over_the_ending() {
        let (_d, s) = scratch();
        s.insert_batch(row("batch_1")).await.unwrap();
        s.begin("batch_1", 3, 101).await.unwrap();
        assert!(matches!(s.request_cancel("batch_1", 102).await.unwrap(),
            CancelOutcome::Accepted { row, was: Status::InProgress } if row.status == Status::Cancelling && row.cancelling_at == Some(102)));
        s.mark_finalizing("batch_1", Counts::default(), 103)
            .await
            .unwrap();
        assert_eq!(
            s.batch("batch_1").await.unwrap().unwrap().status,
            Status::Cancelling,
            "finalizing does not hide a cancel"
        );
        let st = s
            .finish(
                "batch_1",
                Ending::Completed,
                Counts {
                    total: 3,
                    completed: 3,
                    failed: 0,
                },
                None,
                None,
                104,
            )
            .await
            .unwrap();
        assert_eq!(st, Some(Status::Cancelled));
        assert!(
            matches!(s.request_cancel("batch_1", 105).await.unwrap(), CancelOutcome::Accepted { row, .. } if row.status == Status::Cancelled)
        );
        assert_eq!(
            s.request_cancel("batch_x", 105).await.unwrap(),
            CancelOutcome::NotFound
        );
    }

    #[tokio::test]
    async fn validation_failures_and_refused_cancels() {
        let (_d, s) = scratch();
        s.insert_batch(row("batch_1")).await.unwrap();
        let errors = vec![LineError {
            code: "mismatched_endpoint".into(),
            message: "line 2: …".into(),
            param: Some("url".into()),
            line: Some(2),
        }];
        assert!(
            s.fail_validation("batch_1", errors.clone(), 4, 101)
                .await
                .unwrap()
        );
        let b = s.batch("batch_1").await.unwrap().unwrap();
        assert_eq!(
            (b.status, b.failed_at, b.errors),
            (Status::Failed, Some(101), errors)
        );
        assert!(
            matches!(s.request_cancel("batch_1", 102).await.unwrap(), CancelOutcome::Refused(b) if b.status == Status::Failed)
        );
        assert_eq!(
            s.begin("batch_1", 4, 103).await.unwrap(),
            Some(Status::Failed)
        );
    }

    #[tokio::test]
    async fn batches_page_newest_first_and_restart_finds_live_ones() {
        let (_d, s) = scratch();
        for i in 0..5 {
            let mut r = row(&format!("batch_{i}"));
            r.created_at = 100 + i;
            s.insert_batch(r).await.unwrap();
        }
        s.begin("batch_1", 1, 1).await.unwrap();
        s.begin("batch_3", 1, 1).await.unwrap();
        let mut seen = Vec::new();
        let mut after = None;
        loop {
            let page = s.batches(after.clone(), 2).await.unwrap().unwrap();
            seen.extend(page.data.iter().map(|b| b.id.clone()));
            if !page.has_more {
                break;
            }
            after = page.data.last().map(|b| b.id.clone());
        }
        assert_eq!(
            seen,
            ["batch_4", "batch_3", "batch_2", "batch_1", "batch_0"]
        );
        assert!(
            s.batches(Some("batch_nope".into()), 2)
                .await
                .unwrap()
                .is_none()
        );
        let live: Vec<String> = s
            .batches_in(&[Status::InProgress])
            .await
            .unwrap()
            .into_iter()
            .map(|b| b.id)
            .collect();
        assert_eq!(live, ["batch_1", "batch_3"]);
    }
}
