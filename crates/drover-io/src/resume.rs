//! Reading an existing output back for `--resume`.
//!
//! The output is the journal: a task is done when its line is in the file. Resuming repairs a
//! torn last line (a crash mid-write), collects the done-set, and — with `--retry-failed` —
//! rewrites the file without its failed lines so each task still ends with exactly one line.

use std::fs::{File, OpenOptions};
use std::io::{self, BufRead, BufReader, BufWriter, Write};
use std::path::{Path, PathBuf};

use drover_types::{IdHash, id_hash};
use serde::Deserialize;

/// What an output already holds: custom_id digests, and line numbers for records of input
/// lines that never became tasks (bad lines, duplicates). Sorted vectors: 8 bytes an entry,
/// 80 MB at 10M tasks, no per-entry overhead.
#[derive(Debug, Clone, Default)]
pub struct DoneSet {
    ids: Vec<IdHash>,
    lines: Vec<u64>,
}

impl DoneSet {
    /// Builds a set from unsorted parts.
    pub fn from_parts(mut ids: Vec<IdHash>, mut lines: Vec<u64>) -> DoneSet {
        ids.sort_unstable();
        ids.dedup();
        ids.shrink_to_fit();
        lines.sort_unstable();
        lines.dedup();
        lines.shrink_to_fit();
        DoneSet { ids, lines }
    }

    /// Whether a task with this custom_id digest is answered.
    pub fn contains_id(&self, id: IdHash) -> bool {
        self.ids.binary_search(&id).is_ok()
    }

    /// Whether the record for this input line (bad line, duplicate) is written.
    pub fn contains_line(&self, line: u64) -> bool {
        self.lines.binary_search(&line).is_ok()
    }

    /// Entries in the set.
    pub fn len(&self) -> usize {
        self.ids.len() + self.lines.len()
    }

    /// Whether the set is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// What resuming found.
#[derive(Debug, Default)]
pub struct ResumeScan {
    /// What not to do again.
    pub done: DoneSet,
    /// Successful lines kept.
    pub succeeded: u64,
    /// Failed lines kept (they count as done without `--retry-failed`).
    pub failed_kept: u64,
    /// Failed lines removed for another try (`--retry-failed`).
    pub failed_dropped: u64,
    /// Bytes of a torn last line that were cut off.
    pub torn_bytes: u64,
}

/// The output cannot be resumed.
#[derive(Debug, thiserror::Error)]
pub enum ResumeError {
    /// Reading or repairing the file failed.
    #[error("cannot resume {path}: {source}")]
    Io {
        /// The output file.
        path: PathBuf,
        /// Why.
        #[source]
        source: io::Error,
    },
    /// A complete line is not a drover result line: the file is not ours or was edited.
    #[error(
        "cannot resume {path}: line {line} is not a result line ({reason}); remove that line, or write to another file with -o"
    )]
    NotAResult {
        /// The output file.
        path: PathBuf,
        /// 1-based line.
        line: u64,
        /// The parse error.
        reason: String,
    },
}

#[derive(Deserialize)]
struct Record {
    custom_id: String,
    #[serde(default)]
    error: Option<RecordError>,
    #[serde(default)]
    drover: Option<RecordMeta>,
}

#[derive(Deserialize)]
struct RecordError {
    #[serde(default)]
    code: Option<String>,
}

#[derive(Deserialize)]
struct RecordMeta {
    #[serde(default)]
    line: Option<u64>,
}

enum Key {
    Id(IdHash),
    Line(u64),
}

impl Record {
    fn key(&self) -> Key {
        let keyed_by_line = matches!(
            self.error.as_ref().and_then(|e| e.code.as_deref()),
            Some("invalid_input" | "duplicate_custom_id")
        );
        match self.drover.as_ref().and_then(|m| m.line) {
            Some(line) if keyed_by_line => Key::Line(line),
            _ => Key::Id(id_hash(&self.custom_id)),
        }
    }
}

/// Scans `path`, repairs a torn last line, and (with `retry_failed`) drops failed lines.
pub fn prepare_resume(path: &Path, retry_failed: bool) -> Result<ResumeScan, ResumeError> {
    let io_err = |source| ResumeError::Io {
        path: path.to_path_buf(),
        source,
    };
    let mut scan = ResumeScan::default();
    let (mut ids, mut lines) = (Vec::new(), Vec::new());
    let mut reader = BufReader::with_capacity(1 << 20, File::open(path).map_err(io_err)?);
    let mut buf = Vec::new();
    let (mut good_end, mut line_no) = (0u64, 0u64);
    loop {
        buf.clear();
        let n = reader.read_until(b'\n', &mut buf).map_err(io_err)?;
        if n == 0 {
            break;
        }
        if buf.last() != Some(&b'\n') {
            // The process died while writing this line: it never counted as done.
            scan.torn_bytes = n as u64;
            break;
        }
        line_no += 1;
        let record: Record = serde_json::from_slice(&buf).map_err(|e| ResumeError::NotAResult {
            path: path.to_path_buf(),
            line: line_no,
            reason: e.to_string(),
        })?;
        good_end += n as u64;
        let key = record.key();
        if record.error.is_none() {
            scan.succeeded += 1;
        } else if retry_failed {
            scan.failed_dropped += 1;
            continue;
        } else {
            scan.failed_kept += 1;
        }
        match key {
            Key::Id(h) => ids.push(h),
            Key::Line(l) => lines.push(l),
        }
    }
    drop(reader);
    if scan.torn_bytes > 0 {
        let f = OpenOptions::new().write(true).open(path).map_err(io_err)?;
        f.set_len(good_end).map_err(io_err)?;
        f.sync_all().map_err(io_err)?;
    }
    if scan.failed_dropped > 0 {
        drop_failed_lines(path).map_err(io_err)?;
    }
    scan.done = DoneSet::from_parts(ids, lines);
    Ok(scan)
}

/// Rewrites the file without its failed lines: copy to a temporary file, sync, rename.
fn drop_failed_lines(path: &Path) -> io::Result<()> {
    let tmp = path.with_extension("resume-tmp");
    {
        let mut reader = BufReader::with_capacity(1 << 20, File::open(path)?);
        let mut out = BufWriter::with_capacity(1 << 20, File::create(&tmp)?);
        let mut buf = Vec::new();
        while reader.read_until(b'\n', &mut buf)? > 0 {
            let record: Record = serde_json::from_slice(&buf).map_err(io::Error::other)?;
            if record.error.is_none() {
                out.write_all(&buf)?;
            }
            buf.clear();
        }
        out.into_inner().map_err(|e| e.into_error())?.sync_all()?;
    }
    std::fs::rename(&tmp, path)?;
    crate::writer::sync_dir(path);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn ok_line(id: &str, line: u64) -> String {
        format!(
            "{{\"id\":\"batch_req_1\",\"custom_id\":\"{id}\",\"response\":{{\"status_code\":200,\"request_id\":\"r\",\"body\":{{\"choices\":[{{\"text\":\"é\\n\"}}]}}}},\"error\":null,\"drover\":{{\"line\":{line}}}}}\n"
        )
    }

    fn err_line(id: &str, line: u64, code: &str) -> String {
        format!(
            "{{\"id\":\"batch_req_2\",\"custom_id\":\"{id}\",\"response\":null,\"error\":{{\"code\":\"{code}\",\"message\":\"m\"}},\"drover\":{{\"line\":{line}}}}}\n"
        )
    }

    #[test]
    fn done_set_keys_tasks_by_id_and_bad_lines_by_line() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("out.jsonl");
        let text = [
            ok_line("a", 1),
            err_line("line-2", 2, "invalid_input"),
            err_line("c", 3, "server_error"),
        ]
        .concat();
        std::fs::write(&p, &text).unwrap();
        let scan = prepare_resume(&p, false).unwrap();
        assert!(scan.done.contains_id(id_hash("a")));
        assert!(scan.done.contains_id(id_hash("c")));
        assert!(scan.done.contains_line(2));
        assert!(!scan.done.contains_id(id_hash("line-2")));
        assert_eq!((scan.succeeded, scan.failed_kept), (1, 2));
        assert_eq!(
            std::fs::read_to_string(&p).unwrap(),
            text,
            "nothing to repair"
        );
    }

    #[test]
    fn retry_failed_drops_failed_lines_from_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("out.jsonl");
        std::fs::write(
            &p,
            [
                ok_line("a", 1),
                err_line("b", 2, "timeout"),
                ok_line("c", 3),
            ]
            .concat(),
        )
        .unwrap();
        let scan = prepare_resume(&p, true).unwrap();
        assert_eq!(scan.failed_dropped, 1);
        assert!(!scan.done.contains_id(id_hash("b")));
        assert_eq!(
            std::fs::read_to_string(&p).unwrap(),
            [ok_line("a", 1), ok_line("c", 3)].concat()
        );
    }

    #[test]
    fn foreign_lines_are_refused_with_their_number() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("out.jsonl");
        std::fs::write(&p, [ok_line("a", 1), "hello\n".to_string()].concat()).unwrap();
        let e = prepare_resume(&p, false).unwrap_err().to_string();
        assert!(e.contains("line 2 is not a result line"), "{e}");
    }

    proptest! {
        /// An output torn at any byte resumes to exactly the set of complete lines.
        #[test]
        fn torn_at_any_byte_resumes_to_complete_lines(n in 1usize..12, cut_frac in 0.0f64..=1.0) {
            let dir = tempfile::tempdir().unwrap();
            let p = dir.path().join("out.jsonl");
            let lines: Vec<String> = (0..n).map(|i| if i % 3 == 2 { err_line(&format!("t{i}"), i as u64 + 1, "timeout") } else { ok_line(&format!("t{i}"), i as u64 + 1) }).collect();
            let full = lines.concat();
            let cut = ((full.len() as f64) * cut_frac) as usize;
            std::fs::write(&p, &full.as_bytes()[..cut]).unwrap();

            let scan = prepare_resume(&p, false).unwrap();

            let complete = full.as_bytes()[..cut].iter().filter(|&&b| b == b'\n').count();
            let expect_text: String = lines[..complete].concat();
            prop_assert_eq!(std::fs::read_to_string(&p).unwrap(), expect_text);
            prop_assert_eq!(scan.done.len(), complete);
            for (i, _) in lines.iter().enumerate() {
                prop_assert_eq!(scan.done.contains_id(id_hash(&format!("t{i}"))), i < complete);
            }
        }
    }
}
