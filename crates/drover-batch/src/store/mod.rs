//! Metadata of files and batches in an embedded SQLite database (`<data-dir>/drover-batch.sqlite`).
//!
//! Contents live on disk next to it; the database holds what OpenAI's objects say about them.
//! WAL mode lets readers (GET, list) run beside a writer; `synchronous=FULL` makes every
//! committed status change survive a power cut, and each change is one transaction guarded by
//! the status it starts from, so two racing changes (a cancel and the end of a batch) cannot
//! both apply. Which lines of a batch are done is *not* kept here: its journal is the truth.
//!
//! - [`rows`]: the records and the status machine.
//! - `files`, `batches`: the queries.

mod batches;
mod files;
pub mod rows;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rusqlite::Connection;

use crate::error::BatchError;

pub use batches::{CancelOutcome, Page};
pub use files::DeleteOutcome;
pub use rows::{BatchRow, Counts, Ending, FileRow, LineError, Status};

/// The database file's name under `--data-dir`.
pub const DB_FILE: &str = "drover-batch.sqlite";

/// Bumped when the schema changes; older databases are migrated in [`Store::open`].
const SCHEMA_VERSION: i64 = 1;

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS files (
    seq        INTEGER PRIMARY KEY AUTOINCREMENT,
    id         TEXT NOT NULL UNIQUE,
    bytes      INTEGER NOT NULL,
    created_at INTEGER NOT NULL,
    filename   TEXT NOT NULL,
    purpose    TEXT NOT NULL,
    path       TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS batches (
    seq               INTEGER PRIMARY KEY AUTOINCREMENT,
    id                TEXT NOT NULL UNIQUE,
    endpoint          TEXT NOT NULL,
    input_file_id     TEXT NOT NULL,
    completion_window TEXT NOT NULL,
    status            TEXT NOT NULL,
    output_file_id    TEXT,
    error_file_id     TEXT,
    created_at        INTEGER NOT NULL,
    in_progress_at    INTEGER,
    expires_at        INTEGER NOT NULL,
    finalizing_at     INTEGER,
    completed_at      INTEGER,
    failed_at         INTEGER,
    expired_at        INTEGER,
    cancelling_at     INTEGER,
    cancelled_at      INTEGER,
    total             INTEGER NOT NULL DEFAULT 0,
    completed         INTEGER NOT NULL DEFAULT 0,
    failed            INTEGER NOT NULL DEFAULT 0,
    metadata          TEXT,
    errors            TEXT,
    model             TEXT
);
CREATE INDEX IF NOT EXISTS batches_status ON batches(status);
CREATE INDEX IF NOT EXISTS batches_input ON batches(input_file_id);
";

/// The metadata store. Cheap to clone; every call runs on the blocking pool.
#[derive(Clone)]
pub struct Store {
    conn: Arc<Mutex<Connection>>,
    path: Arc<PathBuf>,
}

impl Store {
    /// Opens (or creates) the database at `path` and brings its schema up to date.
    pub fn open(path: &Path) -> Result<Store, BatchError> {
        let db = |source| BatchError::Db {
            path: path.to_path_buf(),
            source,
        };
        let conn = Connection::open(path).map_err(db)?;
        conn.busy_timeout(Duration::from_secs(10)).map_err(db)?;
        let mode: String = conn
            .query_row("PRAGMA journal_mode=WAL", [], |r| r.get(0))
            .map_err(db)?;
        if !mode.eq_ignore_ascii_case("wal") {
            tracing::warn!(target: "drover::batch", "SQLite kept journal_mode={mode} (WAL unsupported on this filesystem?)");
        }
        conn.execute_batch("PRAGMA synchronous=FULL; PRAGMA foreign_keys=ON;")
            .map_err(db)?;
        let version: i64 = conn
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .map_err(db)?;
        if version > SCHEMA_VERSION {
            return Err(db(rusqlite::Error::InvalidParameterName(format!(
                "schema version {version} is newer than this drover understands ({SCHEMA_VERSION}): upgrade drover"
            ))));
        }
        conn.execute_batch(SCHEMA).map_err(db)?;
        conn.execute_batch(&format!("PRAGMA user_version={SCHEMA_VERSION}"))
            .map_err(db)?;
        Ok(Store {
            conn: Arc::new(Mutex::new(conn)),
            path: Arc::new(path.to_path_buf()),
        })
    }

    /// Runs `f` on the connection, off the async runtime.
    pub(crate) async fn call<T, F>(&self, f: F) -> Result<T, BatchError>
    where
        T: Send + 'static,
        F: FnOnce(&mut Connection) -> rusqlite::Result<T> + Send + 'static,
    {
        let conn = self.conn.clone();
        let result = tokio::task::spawn_blocking(move || {
            // A panic inside a query leaves no half-done transaction (rusqlite rolls back on
            // drop), so the connection stays usable.
            let mut c = conn.lock().unwrap_or_else(|p| p.into_inner());
            f(&mut c)
        })
        .await
        .expect("database task panicked");
        result.map_err(|source| BatchError::Db {
            path: (*self.path).clone(),
            source,
        })
    }
}

#[cfg(test)]
pub(crate) fn scratch() -> (tempfile::TempDir, Store) {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join(DB_FILE)).unwrap();
    (dir, store)
}
