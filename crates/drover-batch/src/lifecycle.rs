//! A batch's life outside the runtime: validation, start (and resume), finalization, and what a
//! restart does with each status.
//!
//! | found at start-up | done                                                           |
//! |-------------------|----------------------------------------------------------------|
//! | `validating`      | validated again                                                |
//! | `in_progress`     | resumed: journal repaired, only lines without a result re-sent |
//! | `cancelling`      | ended as `cancelled` with what its journal holds               |
//! | `finalizing`      | output and error files written again from the journal          |

use std::path::{Path, PathBuf};
use std::sync::Arc;

use drover_io::{DoneSet, OutputWriter, prepare_resume};
use drover_types::Endpoint;
use tokio::sync::mpsc;
use tokio_util::task::TaskTracker;

use crate::check::scan_for_batch;
use crate::error::BatchError;
use crate::ids::{file_id, now};
use crate::runtime::finalize::{self, Written};
use crate::runtime::{Cmd, Ended, RuntimeHandle, StartBatch};
use crate::store::{BatchRow, Counts, Ending, FileRow, LineError, Status, Store};

/// Journal name inside a batch's directory.
pub(crate) const JOURNAL: &str = "results.jsonl";

/// Where things live under `--data-dir`.
#[derive(Debug, Clone)]
pub(crate) struct DataDir {
    pub root: PathBuf,
}

impl DataDir {
    /// Uploaded files.
    pub(crate) fn files(&self) -> PathBuf {
        self.root.join("files")
    }
    /// Uploads being received.
    pub(crate) fn tmp(&self) -> PathBuf {
        self.root.join("tmp")
    }
    /// A batch's directory.
    pub(crate) fn batch(&self, id: &str) -> PathBuf {
        self.root.join("batches").join(id)
    }
    /// A stored path (relative to the root) made absolute.
    pub(crate) fn resolve(&self, rel: &str) -> PathBuf {
        self.root.join(rel)
    }
    /// A path under the root made relative, for storing.
    pub(crate) fn relative(&self, p: &Path) -> String {
        p.strip_prefix(&self.root)
            .unwrap_or(p)
            .to_string_lossy()
            .into_owned()
    }
}

/// What lifecycle steps share.
pub(crate) struct Ctx {
    pub store: Store,
    pub dirs: DataDir,
    pub runtime: RuntimeHandle,
    /// Validation and finalization tasks, waited for at shutdown.
    pub tasks: TaskTracker,
}

impl Ctx {
    /// Validates a new (or restarted) batch in the background, then starts it.
    pub(crate) fn spawn_validation(self: &Arc<Self>, batch: BatchRow) {
        let ctx = self.clone();
        self.tasks.spawn(async move {
            let id = batch.id.clone();
            if let Err(e) = ctx.validate(batch).await {
                tracing::error!(target: "drover::batch", batch = %id, "validation: {e}");
            }
        });
    }

    async fn validate(self: &Arc<Self>, batch: BatchRow) -> Result<(), BatchError> {
        let fail = |code: &str, message: String, param: &str| {
            vec![LineError {
                code: code.into(),
                message,
                param: Some(param.into()),
                line: None,
            }]
        };
        let input = match self.store.file(&batch.input_file_id).await? {
            Some(f) => self.dirs.resolve(&f.path),
            None => {
                let errors = fail(
                    "invalid_input_file",
                    format!("input file {} no longer exists", batch.input_file_id),
                    "input_file_id",
                );
                return self.reject(&batch.id, errors, 0).await;
            }
        };
        let Ok(endpoint) = Endpoint::from_url(&batch.endpoint) else {
            let errors = fail(
                "invalid_endpoint",
                format!("endpoint {:?} is not served", batch.endpoint),
                "endpoint",
            );
            return self.reject(&batch.id, errors, 0).await;
        };
        let path = input.clone();
        let scan = tokio::task::spawn_blocking(move || scan_for_batch(&path, endpoint))
            .await
            .expect("scan task")
            .map_err(BatchError::io(&input))?;
        if !scan.errors.is_empty() {
            return self.reject(&batch.id, scan.errors, scan.requests).await;
        }
        match self.store.begin(&batch.id, scan.requests, now()).await? {
            Some(Status::InProgress) => self.start(&batch.id, false).await,
            // Cancelled while validating: nothing was sent.
            Some(Status::Cancelling) => {
                let counts = Counts {
                    total: scan.requests,
                    ..Counts::default()
                };
                self.store
                    .finish(&batch.id, Ending::Cancelled, counts, None, None, now())
                    .await?;
                Ok(())
            }
            _ => Ok(()),
        }
    }

    /// Fails a batch's validation, or, when it was cancelled meanwhile, ends it cancelled.
    async fn reject(&self, id: &str, errors: Vec<LineError>, total: u64) -> Result<(), BatchError> {
        if !self.store.fail_validation(id, errors, total, now()).await? {
            let counts = Counts {
                total,
                ..Counts::default()
            };
            self.store
                .finish(id, Ending::Cancelled, counts, None, None, now())
                .await?;
        }
        Ok(())
    }

    /// Repairs and reopens the batch's journal and hands the batch to the runtime.
    pub(crate) async fn start(self: &Arc<Self>, id: &str, cancel: bool) -> Result<(), BatchError> {
        let Some(batch) = self.store.batch(id).await? else {
            return Ok(());
        };
        let Some(file) = self.store.file(&batch.input_file_id).await? else {
            let ended = Ended {
                id: batch.id.clone(),
                input: PathBuf::new(),
                journal: self.dirs.batch(&batch.id).join(JOURNAL),
                counts: batch.counts,
                ending: Ending::Failed(format!(
                    "input file {} no longer exists",
                    batch.input_file_id
                )),
            };
            self.spawn_finalize(ended);
            return Ok(());
        };
        let dir = self.dirs.batch(&batch.id);
        let journal = dir.join(JOURNAL);
        let input = self.dirs.resolve(&file.path);
        let total = batch.counts.total;
        let (writer, done, counts) = {
            let (dir, journal) = (dir.clone(), journal.clone());
            tokio::task::spawn_blocking(move || -> Result<(OutputWriter, DoneSet, Counts), BatchError> {
                std::fs::create_dir_all(&dir).map_err(BatchError::io(&dir))?;
                let (done, counts) = if journal.exists() {
                    let scan = prepare_resume(&journal, false).map_err(|e| BatchError::Io {
                        path: journal.clone(),
                        source: std::io::Error::other(e),
                    })?;
                    if scan.torn_bytes > 0 {
                        tracing::warn!(target: "drover::batch", "{}: torn last line cut off ({} bytes); its request is sent again", journal.display(), scan.torn_bytes);
                    }
                    (scan.done, Counts { total, completed: scan.succeeded, failed: scan.failed_kept })
                } else {
                    (DoneSet::default(), Counts { total, ..Counts::default() })
                };
                let writer = OutputWriter::append(&journal, std::time::Duration::from_secs(1)).map_err(BatchError::io(&journal))?;
                Ok((writer, done, counts))
            })
            .await
            .expect("journal task")?
        };
        // The journal's counts are the batch's from now on: published here, not when the
        // runtime gets to the batch, so that a restarted server never reports fewer requests
        // done than it has (it used to answer 0 completed until the runtime caught up).
        if let Ok(mut live) = self.runtime.live.write() {
            live.insert(batch.id.clone(), counts);
        }
        let start = StartBatch {
            id: batch.id.clone(),
            input,
            journal,
            writer,
            done,
            counts,
            expires_at: batch.expires_at,
            cancel,
        };
        if !self.runtime.send(Cmd::Start(Box::new(start))) {
            tracing::info!(target: "drover::batch", batch = %batch.id, "not started: shutting down (a restart resumes it)");
        }
        Ok(())
    }

    /// Finalizes ended batches as they come.
    ///
    /// The loop is itself one of the tracked tasks: a batch that ends while the server stops
    /// (its last requests finishing in the grace period) is then finalized before `run`
    /// returns. Untracked, the loop could hand that batch to the tracker after the shutdown's
    /// wait had found it empty, and a restarted server would find the batch `finalizing` and
    /// split its journal concurrently with the old one, losing the output file.
    pub(crate) fn spawn_finalizer(self: &Arc<Self>, mut ended: mpsc::UnboundedReceiver<Ended>) {
        let ctx = self.clone();
        self.tasks.spawn(async move {
            while let Some(e) = ended.recv().await {
                ctx.spawn_finalize(e);
            }
        });
    }

    fn spawn_finalize(self: &Arc<Self>, e: Ended) {
        let ctx = self.clone();
        self.tasks.spawn(async move {
            let id = e.id.clone();
            if let Err(err) = ctx.finalize(e).await {
                tracing::error!(target: "drover::batch", batch = %id, "finalizing: {err}");
            }
        });
    }

    /// Writes the output and error files and records the batch's final status.
    async fn finalize(self: &Arc<Self>, e: Ended) -> Result<(), BatchError> {
        // The journal is removed only after the final status is committed: a batch that is
        // terminal already has its files. Splitting again from no journal would find no lines
        // and remove the delivered output file as stale, so a late second finalization must
        // change nothing.
        if !e.journal.exists()
            && let Some(b) = self.store.batch(&e.id).await?
            && b.status.is_terminal()
        {
            tracing::warn!(target: "drover::batch", batch = %e.id, "already {}: second finalization ignored", b.status.as_str());
            self.forget(&e.id);
            return Ok(());
        }
        if e.ending == Ending::Completed {
            self.store.mark_finalizing(&e.id, e.counts, now()).await?;
        }
        let dir = self.dirs.batch(&e.id);
        let (journal, input, expire) = (
            e.journal.clone(),
            e.input.clone(),
            e.ending == Ending::Expired,
        );
        let split = {
            let dir = dir.clone();
            tokio::task::spawn_blocking(move || -> std::io::Result<finalize::Split> {
                std::fs::create_dir_all(&dir)?;
                if expire {
                    finalize::expire_rest(&journal, &input)?;
                }
                finalize::split(&journal, &dir)
            })
            .await
            .expect("finalize task")
        };
        let split = match split {
            Ok(s) => s,
            Err(err) => {
                // The journal is kept: nothing is lost, but the batch cannot be delivered.
                let why = format!("cannot write the result files in {}: {err}", dir.display());
                self.store
                    .finish(&e.id, Ending::Failed(why), e.counts, None, None, now())
                    .await?;
                self.forget(&e.id);
                return Ok(());
            }
        };
        let lines = |w: &Option<Written>| w.as_ref().map_or(0, |w| w.lines);
        let counts = Counts {
            total: e.counts.total,
            completed: lines(&split.output),
            failed: lines(&split.errors),
        };
        let created = now();
        let row = |w: Option<Written>, kind: &str| {
            w.map(|w| FileRow {
                id: file_id(),
                bytes: w.bytes,
                created_at: created,
                filename: format!("{}_{kind}.jsonl", e.id),
                purpose: "batch_output".into(),
                path: self.dirs.relative(&w.path),
            })
        };
        let (output, errors) = (row(split.output, "output"), row(split.errors, "error"));
        let status = self
            .store
            .finish(&e.id, e.ending.clone(), counts, output, errors, now())
            .await?;
        tracing::info!(target: "drover::batch", batch = %e.id, "{} ({counts:?})", status.map_or("gone", |s| s.as_str()));
        // The output and error files hold every line now; the journal has done its work.
        if status.is_some_and(Status::is_terminal) {
            match std::fs::remove_file(&e.journal) {
                Err(err) if err.kind() != std::io::ErrorKind::NotFound => {
                    tracing::warn!(target: "drover::batch", "cannot remove {}: {err}", e.journal.display());
                }
                _ => {}
            }
        }
        self.forget(&e.id);
        Ok(())
    }

    fn forget(&self, id: &str) {
        if let Ok(mut live) = self.runtime.live.write() {
            live.remove(id);
        }
    }

    /// Picks up every batch a previous run left unfinished.
    pub(crate) async fn recover(self: &Arc<Self>) -> Result<(), BatchError> {
        let open = self
            .store
            .batches_in(&[
                Status::Validating,
                Status::InProgress,
                Status::Cancelling,
                Status::Finalizing,
            ])
            .await?;
        for b in open {
            tracing::info!(target: "drover::batch", batch = %b.id, "picking up a {} batch", b.status.as_str());
            match b.status {
                Status::Validating => self.spawn_validation(b),
                Status::InProgress => self.start(&b.id, false).await?,
                Status::Cancelling => self.start(&b.id, true).await?,
                Status::Finalizing => {
                    let input = match self.store.file(&b.input_file_id).await? {
                        Some(f) => self.dirs.resolve(&f.path),
                        None => PathBuf::new(),
                    };
                    let journal = self.dirs.batch(&b.id).join(JOURNAL);
                    self.spawn_finalize(Ended {
                        id: b.id,
                        input,
                        journal,
                        counts: b.counts,
                        ending: Ending::Completed,
                    });
                }
                _ => {}
            }
        }
        Ok(())
    }
}
