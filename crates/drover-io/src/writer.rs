//! The output file. Lines reach the file whole (a reader never sees half a line unless the
//! process dies mid-write), in batches, and are synced to disk periodically and at exit.

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use drover_types::OutputLine;

/// Bytes of complete lines kept before they are written out.
const BATCH_BYTES: usize = 256 * 1024;

/// Appends result lines to a file.
pub struct OutputWriter {
    file: File,
    path: PathBuf,
    buf: Vec<u8>,
    sync_every: Duration,
    synced_at: Instant,
    unsynced: bool,
    lines: u64,
}

impl OutputWriter {
    /// Creates (or truncates) `path`.
    pub fn create(path: &Path, sync_every: Duration) -> io::Result<OutputWriter> {
        let file = File::create(path)?;
        sync_dir(path);
        Ok(Self::with_file(file, path, sync_every))
    }

    /// Opens `path` for appending (after [`prepare_resume`](crate::prepare_resume) repaired it).
    pub fn append(path: &Path, sync_every: Duration) -> io::Result<OutputWriter> {
        let file = OpenOptions::new().append(true).create(true).open(path)?;
        Ok(Self::with_file(file, path, sync_every))
    }

    fn with_file(file: File, path: &Path, sync_every: Duration) -> OutputWriter {
        OutputWriter {
            file,
            path: path.to_path_buf(),
            buf: Vec::with_capacity(BATCH_BYTES + 64 * 1024),
            sync_every,
            synced_at: Instant::now(),
            unsynced: false,
            lines: 0,
        }
    }

    /// The file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Lines written by this writer.
    pub fn lines(&self) -> u64 {
        self.lines
    }

    /// Queues one line; it reaches the file at the next [`flush`](Self::flush) or when the
    /// batch is full.
    pub fn push(&mut self, line: &OutputLine) -> io::Result<()> {
        serde_json::to_writer(&mut self.buf, line).map_err(io::Error::other)?;
        self.buf.push(b'\n');
        self.lines += 1;
        if self.buf.len() >= BATCH_BYTES {
            self.flush()?;
        }
        Ok(())
    }

    /// Writes queued lines to the file (one `write` of whole lines).
    pub fn flush(&mut self) -> io::Result<()> {
        if !self.buf.is_empty() {
            self.file.write_all(&self.buf)?;
            self.buf.clear();
            self.unsynced = true;
        }
        Ok(())
    }

    /// Flushes, and syncs to disk if the sync interval has passed.
    pub fn tick(&mut self) -> io::Result<()> {
        self.flush()?;
        if self.unsynced && self.synced_at.elapsed() >= self.sync_every {
            self.sync()?;
        }
        Ok(())
    }

    /// Flushes and syncs now.
    pub fn sync(&mut self) -> io::Result<()> {
        self.flush()?;
        if self.unsynced {
            self.file.sync_data()?;
            self.unsynced = false;
        }
        self.synced_at = Instant::now();
        Ok(())
    }
}

impl Drop for OutputWriter {
    fn drop(&mut self) {
        let _ = self.sync();
    }
}

/// Makes a new directory entry durable (best effort: not every filesystem allows it).
pub(crate) fn sync_dir(path: &Path) {
    if let Some(dir) = path.parent() {
        let dir = if dir.as_os_str().is_empty() {
            Path::new(".")
        } else {
            dir
        };
        if let Ok(d) = File::open(dir) {
            let _ = d.sync_all();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use drover_types::{ErrorCode, ErrorRecord};

    fn line(id: &str) -> OutputLine {
        OutputLine {
            id: format!("batch_req_{id}"),
            custom_id: id.into(),
            response: None,
            error: Some(ErrorRecord {
                code: ErrorCode::InvalidInput,
                message: "x".into(),
            }),
            drover: None,
        }
    }

    #[test]
    fn lines_reach_the_file_whole_on_flush() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("out.jsonl");
        let mut w = OutputWriter::create(&p, Duration::from_secs(1)).unwrap();
        w.push(&line("a")).unwrap();
        assert_eq!(std::fs::read(&p).unwrap().len(), 0, "batched until flush");
        w.push(&line("b")).unwrap();
        w.tick().unwrap();
        let text = std::fs::read_to_string(&p).unwrap();
        assert_eq!(text.lines().count(), 2);
        assert!(text.ends_with('\n'));
        drop(w);
        let mut w = OutputWriter::append(&p, Duration::ZERO).unwrap();
        w.push(&line("c")).unwrap();
        drop(w);
        assert_eq!(std::fs::read_to_string(&p).unwrap().lines().count(), 3);
    }
}
