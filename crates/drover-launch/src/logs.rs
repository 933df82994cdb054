//! Per-instance log files: everything an instance writes, across restarts, in one file, and
//! the tail of what one start of it wrote.

use std::fs::{File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::Path;

/// Lines shown when an instance fails.
pub(crate) const TAIL_LINES: usize = 20;

/// At most this much of the end of a log is read for its tail: a server that printed megabytes
/// of progress bars must not make a failure slow to report.
const TAIL_BYTES: u64 = 64 * 1024;

/// Opens `path` for appending, writes `header` as one line, and returns the file and the
/// offset where this start's own output begins.
pub(crate) fn open(path: &Path, header: &str) -> io::Result<(File, u64)> {
    let mut file = OpenOptions::new().create(true).append(true).open(path)?;
    writeln!(file, "{header}")?;
    file.flush()?;
    let from = file.metadata()?.len();
    Ok((file, from))
}

/// The last `n` lines written to `path` after offset `from`. A line's carriage returns keep
/// only its last segment: that is what a terminal would show of a progress bar.
pub(crate) fn tail(path: &Path, from: u64, n: usize) -> Vec<String> {
    let Ok(mut file) = File::open(path) else {
        return Vec::new();
    };
    let len = file.metadata().map(|m| m.len()).unwrap_or(0);
    let start = from.max(len.saturating_sub(TAIL_BYTES));
    if file.seek(SeekFrom::Start(start)).is_err() {
        return Vec::new();
    }
    let mut bytes = Vec::new();
    if file.read_to_end(&mut bytes).is_err() {
        return Vec::new();
    }
    let text = String::from_utf8_lossy(&bytes);
    let mut lines: Vec<&str> = text.split('\n').collect();
    if start > from && lines.len() > 1 {
        lines.remove(0); // cut mid-line
    }
    if lines.last() == Some(&"") {
        lines.pop();
    }
    let keep = lines.len().saturating_sub(n);
    lines[keep..]
        .iter()
        .map(|l| {
            l.trim_end_matches('\r')
                .rsplit('\r')
                .next()
                .unwrap_or_default()
                .to_string()
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tail_is_this_start_only() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("x.log");
        let (mut f, _) = open(&p, "== start 1").unwrap();
        writeln!(f, "old line").unwrap();
        let (mut f, from) = open(&p, "== start 2").unwrap();
        write!(f, "a\nloading 10%\rloading 100%\r\nb\nc").unwrap();
        assert_eq!(tail(&p, from, 20), ["a", "loading 100%", "b", "c"]);
        assert_eq!(tail(&p, from, 2), ["b", "c"]);
        assert!(tail(&dir.path().join("missing"), 0, 5).is_empty());
    }
}
