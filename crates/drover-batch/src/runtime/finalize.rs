//! The end of a batch, on disk: the journal becomes OpenAI's output file (successful lines)
//! and error file (failed lines). Blocking; run on the blocking pool.
//!
//! Each file is written beside its final name, synced, then renamed, so a crash leaves either
//! the old file or the whole new one; finalizing again (after a restart) rewrites both from the
//! journal, which is kept until the batch's final status is committed.

use std::fs::{File, OpenOptions};
use std::io::{self, BufRead, BufReader, BufWriter, Write};
use std::path::{Path, PathBuf};

use drover_io::{InputItem, ParseConfig, RequestDefaults, TaskReader, prepare_resume};
use serde::Deserialize;
use serde_json::value::RawValue;

use super::lines::LineMaker;
use crate::check::MAX_LINE_BYTES;

/// A result file written by [`split`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Written {
    /// Where it is.
    pub path: PathBuf,
    /// Its size.
    pub bytes: u64,
    /// Its lines.
    pub lines: u64,
}

/// What [`split`] wrote: `None` for a file that would be empty (OpenAI leaves its id null).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Split {
    /// Successful results.
    pub output: Option<Written>,
    /// Failed results.
    pub errors: Option<Written>,
}

#[derive(Deserialize)]
struct ErrorOnly<'a> {
    #[serde(borrow, default)]
    error: Option<&'a RawValue>,
}

/// Records every request of `input` that `journal` does not answer as `batch_expired`.
/// Returns how many were added. Safe to repeat: what a first pass added is answered.
pub(crate) fn expire_rest(journal: &Path, input: &Path) -> io::Result<u64> {
    let done = if journal.exists() {
        prepare_resume(journal, false)
            .map_err(io::Error::other)?
            .done
    } else {
        Default::default()
    };
    let cfg = ParseConfig {
        defaults: RequestDefaults::default(),
        template: None,
    };
    let mut reader = TaskReader::new(
        BufReader::with_capacity(1 << 20, File::open(input)?),
        MAX_LINE_BYTES,
        cfg,
        done,
        None,
    );
    let mut out = BufWriter::new(OpenOptions::new().append(true).create(true).open(journal)?);
    let mut maker = LineMaker::new();
    let mut added = 0;
    while let Some(item) = reader.next_item()? {
        let (line, custom_id) = match &item {
            InputItem::Task(t) => (t.line, t.custom_id.to_string()),
            InputItem::Invalid {
                line, custom_id, ..
            } => (*line, custom_id.clone()),
        };
        out.write_all(&super::lines::expired(&mut maker, line, &custom_id))?;
        added += 1;
    }
    out.into_inner().map_err(|e| e.into_error())?.sync_all()?;
    Ok(added)
}

/// Splits `journal` into `dir/output.jsonl` and `dir/errors.jsonl`. A torn last line (a crash
/// mid-write) is cut off first: it never counted as a result.
pub(crate) fn split(journal: &Path, dir: &Path) -> io::Result<Split> {
    if journal.exists() {
        prepare_resume(journal, false).map_err(io::Error::other)?;
    }
    let mut ok = Part::create(dir, "output.jsonl")?;
    let mut failed = Part::create(dir, "errors.jsonl")?;
    if journal.exists() {
        let mut reader = BufReader::with_capacity(1 << 20, File::open(journal)?);
        let mut buf = Vec::new();
        while reader.read_until(b'\n', &mut buf)? > 0 {
            let record: ErrorOnly<'_> = serde_json::from_slice(&buf).map_err(io::Error::other)?;
            let is_error = record.error.is_some_and(|e| e.get() != "null");
            if is_error {
                failed.write(&buf)?
            } else {
                ok.write(&buf)?
            }
            buf.clear();
        }
    }
    Ok(Split {
        output: ok.finish()?,
        errors: failed.finish()?,
    })
}

/// A file being written under a temporary name.
struct Part {
    tmp: PathBuf,
    path: PathBuf,
    out: BufWriter<File>,
    bytes: u64,
    lines: u64,
}

impl Part {
    fn create(dir: &Path, name: &str) -> io::Result<Part> {
        let path = dir.join(name);
        let tmp = dir.join(format!("{name}.tmp"));
        Ok(Part {
            out: BufWriter::with_capacity(1 << 20, File::create(&tmp)?),
            tmp,
            path,
            bytes: 0,
            lines: 0,
        })
    }

    fn write(&mut self, line: &[u8]) -> io::Result<()> {
        self.out.write_all(line)?;
        self.bytes += line.len() as u64;
        self.lines += 1;
        Ok(())
    }

    fn finish(self) -> io::Result<Option<Written>> {
        let file = self.out.into_inner().map_err(|e| e.into_error())?;
        if self.lines == 0 {
            drop(file);
            std::fs::remove_file(&self.tmp)?;
            // A file from an earlier attempt that had lines of this kind is stale now.
            match std::fs::remove_file(&self.path) {
                Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
                _ => {}
            }
            return Ok(None);
        }
        file.sync_all()?;
        std::fs::rename(&self.tmp, &self.path)?;
        if let Some(parent) = self.path.parent()
            && let Ok(d) = File::open(parent)
        {
            let _ = d.sync_all();
        }
        Ok(Some(Written {
            path: self.path,
            bytes: self.bytes,
            lines: self.lines,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(id: &str, line: u64) -> String {
        format!(
            "{{\"id\":\"batch_req_1\",\"custom_id\":\"{id}\",\"response\":{{\"status_code\":200,\"request_id\":\"r\",\"body\":{{\"error\":null}}}},\"error\":null,\"drover\":{{\"line\":{line}}}}}\n"
        )
    }

    fn failed(id: &str, line: u64) -> String {
        format!(
            "{{\"id\":\"batch_req_2\",\"custom_id\":\"{id}\",\"response\":null,\"error\":{{\"code\":\"timeout\",\"message\":\"m\"}},\"drover\":{{\"line\":{line}}}}}\n"
        )
    }

    fn req(id: &str) -> String {
        format!(
            "{{\"custom_id\":\"{id}\",\"method\":\"POST\",\"url\":\"/v1/chat/completions\",\"body\":{{\"messages\":[{{\"role\":\"user\",\"content\":\"x\"}}]}}}}\n"
        )
    }

    #[test]
    fn split_sorts_lines_by_their_error_and_drops_a_torn_tail() {
        let dir = tempfile::tempdir().unwrap();
        let journal = dir.path().join("results.jsonl");
        let torn = &ok("d", 4)[..20];
        std::fs::write(
            &journal,
            [ok("a", 1), failed("b", 2), ok("c", 3), torn.to_string()].concat(),
        )
        .unwrap();
        let s = split(&journal, dir.path()).unwrap();
        let out = s.output.unwrap();
        assert_eq!(
            (out.lines, out.bytes),
            (2, (ok("a", 1).len() + ok("c", 3).len()) as u64)
        );
        assert_eq!(
            std::fs::read_to_string(&out.path).unwrap(),
            [ok("a", 1), ok("c", 3)].concat()
        );
        assert_eq!(
            std::fs::read_to_string(s.errors.unwrap().path).unwrap(),
            failed("b", 2)
        );
        assert!(!dir.path().join("output.jsonl.tmp").exists());
    }

    #[test]
    fn an_empty_kind_has_no_file() {
        let dir = tempfile::tempdir().unwrap();
        let journal = dir.path().join("results.jsonl");
        std::fs::write(&journal, ok("a", 1)).unwrap();
        std::fs::write(dir.path().join("errors.jsonl"), "stale").unwrap();
        let s = split(&journal, dir.path()).unwrap();
        assert!(s.output.is_some());
        assert_eq!(s.errors, None);
        assert!(!dir.path().join("errors.jsonl").exists());
    }

    #[test]
    fn expiry_answers_every_request_once_even_when_repeated() {
        let dir = tempfile::tempdir().unwrap();
        let input = dir.path().join("in.jsonl");
        std::fs::write(&input, [req("a"), req("b"), req("c")].concat()).unwrap();
        let journal = dir.path().join("results.jsonl");
        std::fs::write(&journal, ok("b", 2)).unwrap();
        assert_eq!(expire_rest(&journal, &input).unwrap(), 2);
        assert_eq!(
            expire_rest(&journal, &input).unwrap(),
            0,
            "a second pass finds nothing to add"
        );
        let text = std::fs::read_to_string(&journal).unwrap();
        let ids: Vec<String> = text
            .lines()
            .map(|l| {
                serde_json::from_str::<serde_json::Value>(l).unwrap()["custom_id"]
                    .as_str()
                    .unwrap()
                    .to_string()
            })
            .collect();
        assert_eq!(ids, ["b", "a", "c"]);
        let s = split(&journal, dir.path()).unwrap();
        assert_eq!((s.output.unwrap().lines, s.errors.unwrap().lines), (1, 2));
    }
}
