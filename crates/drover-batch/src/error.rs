//! Errors that stop the server (or keep it from starting). A failed *request* is data: an
//! error line in its batch's error file.

use std::io;
use std::path::PathBuf;

/// Why the batch server cannot start or go on.
#[derive(Debug, thiserror::Error)]
pub enum BatchError {
    /// The metadata database failed.
    #[error("database {path}: {source}")]
    Db {
        /// The database file.
        path: PathBuf,
        /// Why.
        #[source]
        source: rusqlite::Error,
    },
    /// A file or directory under `--data-dir` could not be used.
    #[error("{path}: {source}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// Why.
        #[source]
        source: io::Error,
    },
    /// Another server holds the data directory.
    #[error(
        "another drover batch-server is using {0}: stop it first (two servers on one --data-dir would send every batch twice)"
    )]
    Locked(PathBuf),
    /// The HTTP server failed.
    #[error("serving HTTP: {0}")]
    Serve(#[source] io::Error),
}

impl BatchError {
    pub(crate) fn io(path: impl Into<PathBuf>) -> impl FnOnce(io::Error) -> BatchError {
        let path = path.into();
        move |source| BatchError::Io { path, source }
    }
}
