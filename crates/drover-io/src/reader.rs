//! The streaming task source: input lines in, tasks (or records for bad lines) out, one at a
//! time. Memory does not grow with the input except for the set of ids seen, for duplicates
//! (12 bytes a task, see `seen.rs`).

use std::io::{self, BufRead, Read};
use std::path::Path;

use drover_types::{ErrorCode, Task, id_hash};

use crate::lines::{Line, LineReader};
use crate::parse::{ParseConfig, line_id, parse_line};
use crate::resume::DoneSet;
use crate::seen::SeenIds;
use crate::shard::Shard;

/// What one input line became.
#[derive(Debug)]
pub enum InputItem {
    /// A task to send.
    Task(Task),
    /// A line that gets an error record at once (bad input, duplicate id).
    Invalid {
        /// 1-based line number.
        line: u64,
        /// The line's custom_id, or `line-N` when it has none.
        custom_id: String,
        /// `invalid_input` or `duplicate_custom_id`.
        code: ErrorCode,
        /// The reason, naming the line.
        message: String,
    },
}

/// Counts kept while reading.
#[derive(Debug, Clone, Default)]
pub struct ReadStats {
    /// Lines read, empty ones included.
    pub lines: u64,
    /// Empty lines (skipped).
    pub empty: u64,
    /// Tasks produced.
    pub tasks: u64,
    /// Bad lines (records produced).
    pub invalid: u64,
    /// Later lines repeating an earlier custom_id (records produced).
    pub duplicates: u64,
    /// Lines already answered in the output being resumed.
    pub skipped_done: u64,
    /// Lines belonging to other shards.
    pub other_shard: u64,
}

/// Reads tasks from JSONL.
pub struct TaskReader<R> {
    lines: LineReader<R>,
    max_line_bytes: usize,
    cfg: ParseConfig,
    done: DoneSet,
    shard: Option<Shard>,
    seen: SeenIds,
    stats: ReadStats,
}

impl<R: BufRead> TaskReader<R> {
    /// A reader over `input`. `done` holds what an output being resumed already answered.
    pub fn new(
        input: R,
        max_line_bytes: usize,
        cfg: ParseConfig,
        done: DoneSet,
        shard: Option<Shard>,
    ) -> Self {
        TaskReader {
            lines: LineReader::new(input, max_line_bytes),
            max_line_bytes,
            cfg,
            done,
            shard,
            seen: SeenIds::default(),
            stats: ReadStats::default(),
        }
    }

    /// Gives the parse configuration back (after a checking pass).
    pub fn into_parse_config(self) -> ParseConfig {
        self.cfg
    }

    /// Counts so far.
    pub fn stats(&self) -> &ReadStats {
        &self.stats
    }

    /// The next item, or `None` at the end of input. I/O errors on the input are fatal.
    pub fn next_item(&mut self) -> io::Result<Option<InputItem>> {
        loop {
            let Some((n, line)) = self.lines.next_line()? else {
                return Ok(None);
            };
            self.stats.lines += 1;
            let parsed = match line {
                Line::Data(d) if d.iter().all(u8::is_ascii_whitespace) => {
                    self.stats.empty += 1;
                    continue;
                }
                Line::Data(d) => parse_line(n, d, &self.cfg).map_err(|e| (e.custom_id, e.message)),
                Line::TooLong { len } => Err((
                    None,
                    format!(
                        "line is {len} bytes, over --max-line-bytes {}: shorten it or raise the limit",
                        self.max_line_bytes
                    ),
                )),
            };
            let item = match parsed {
                Ok(task) => self.admit(task),
                Err((custom_id, reason)) => {
                    let custom_id = custom_id.unwrap_or_else(|| line_id(n));
                    self.invalid(
                        n,
                        custom_id,
                        ErrorCode::InvalidInput,
                        format!("line {n}: {reason}"),
                    )
                }
            };
            if let Some(item) = item {
                return Ok(Some(item));
            }
        }
    }

    fn admit(&mut self, task: Task) -> Option<InputItem> {
        let h = id_hash(&task.custom_id);
        if self.shard.is_some_and(|s| !s.owns(h)) {
            self.stats.other_shard += 1;
            return None;
        }
        if let Some(first) = self.seen.first_or_insert(h, task.line) {
            let msg = format!(
                "line {}: duplicate custom_id {:?}, first seen on line {first}",
                task.line, task.custom_id
            );
            return self.invalid(
                task.line,
                task.custom_id.to_string(),
                ErrorCode::DuplicateCustomId,
                msg,
            );
        }
        if self.done.contains_id(h) {
            self.stats.skipped_done += 1;
            return None;
        }
        self.stats.tasks += 1;
        Some(InputItem::Task(task))
    }

    fn invalid(
        &mut self,
        line: u64,
        custom_id: String,
        code: ErrorCode,
        message: String,
    ) -> Option<InputItem> {
        if self.shard.is_some_and(|s| !s.owns(id_hash(&custom_id))) {
            self.stats.other_shard += 1;
            return None;
        }
        if self.done.contains_line(line) {
            self.stats.skipped_done += 1;
            return None;
        }
        match code {
            ErrorCode::DuplicateCustomId => self.stats.duplicates += 1,
            _ => self.stats.invalid += 1,
        }
        Some(InputItem::Invalid {
            line,
            custom_id,
            code,
            message,
        })
    }
}

/// Counts the non-empty lines of a file (an upper bound on its tasks, for progress), fast.
pub fn count_lines(path: &Path) -> io::Result<u64> {
    let mut f = std::fs::File::open(path)?;
    let mut buf = vec![0u8; 1 << 20];
    let (mut count, mut line_has_data) = (0u64, false);
    loop {
        let n = f.read(&mut buf)?;
        if n == 0 {
            break;
        }
        for &b in &buf[..n] {
            if b == b'\n' {
                count += u64::from(line_has_data);
                line_has_data = false;
            } else if !b.is_ascii_whitespace() {
                line_has_data = true;
            }
        }
    }
    Ok(count + u64::from(line_has_data))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::parse::RequestDefaults;

    fn reader(
        input: &'static str,
        done: DoneSet,
        shard: Option<Shard>,
    ) -> TaskReader<&'static [u8]> {
        let cfg = ParseConfig {
            defaults: RequestDefaults::default(),
            template: None,
        };
        TaskReader::new(input.as_bytes(), 1000, cfg, done, shard)
    }

    fn drain(r: &mut TaskReader<&'static [u8]>) -> Vec<InputItem> {
        let mut v = Vec::new();
        while let Some(i) = r.next_item().unwrap() {
            v.push(i);
        }
        v
    }

    #[test]
    fn duplicates_get_records_naming_the_first_line() {
        let mut r = reader(
            "{\"id\":\"a\",\"prompt\":\"x\"}\n\n{\"id\":\"b\",\"prompt\":\"y\"}\n{\"id\":\"a\",\"prompt\":\"z\"}\n",
            DoneSet::default(),
            None,
        );
        let items = drain(&mut r);
        assert_eq!(items.len(), 3);
        match &items[2] {
            InputItem::Invalid {
                line,
                code,
                message,
                custom_id,
            } => {
                assert_eq!(
                    (*line, *code, custom_id.as_str()),
                    (4, ErrorCode::DuplicateCustomId, "a")
                );
                assert!(message.contains("first seen on line 1"), "{message}");
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(r.stats().empty, 1);
        assert_eq!(r.stats().duplicates, 1);
    }

    #[test]
    fn bad_lines_become_records_and_reading_goes_on() {
        let mut r = reader(
            "{oops\n{\"id\":\"ok\",\"prompt\":\"x\"}\n",
            DoneSet::default(),
            None,
        );
        let items = drain(&mut r);
        match &items[0] {
            InputItem::Invalid {
                line: 1,
                custom_id,
                message,
                ..
            } => {
                assert_eq!(custom_id, "line-1");
                assert!(message.starts_with("line 1: invalid JSON"), "{message}");
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(&items[1], InputItem::Task(t) if &*t.custom_id == "ok"));
    }

    #[test]
    fn too_long_lines_name_the_flag() {
        let cfg = ParseConfig {
            defaults: RequestDefaults::default(),
            template: None,
        };
        let mut r = TaskReader::new(
            &b"{\"id\":\"a\",\"prompt\":\"xxxxxxxxxxxxxxxx\"}\n"[..],
            10,
            cfg,
            DoneSet::default(),
            None,
        );
        match r.next_item().unwrap().unwrap() {
            InputItem::Invalid { message, .. } => {
                assert!(message.contains("--max-line-bytes 10"), "{message}")
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn done_tasks_and_lines_are_skipped() {
        let done = DoneSet::from_parts(vec![id_hash("a")], vec![2]);
        let mut r = reader(
            "{\"id\":\"a\",\"prompt\":\"x\"}\n{bad\n{\"id\":\"b\",\"prompt\":\"y\"}\n",
            done,
            None,
        );
        let items = drain(&mut r);
        assert_eq!(items.len(), 1);
        assert!(matches!(&items[0], InputItem::Task(t) if &*t.custom_id == "b"));
        assert_eq!(r.stats().skipped_done, 2);
    }

    #[test]
    fn shards_split_the_input() {
        let input: &'static str = Box::leak(
            (0..200)
                .map(|i| format!("{{\"id\":\"t{i}\",\"prompt\":\"x\"}}\n"))
                .collect::<String>()
                .into_boxed_str(),
        );
        let mut total = 0;
        for i in 0..3 {
            let mut r = reader(
                input,
                DoneSet::default(),
                Some(Shard { index: i, count: 3 }),
            );
            total += drain(&mut r).len();
        }
        assert_eq!(total, 200);
    }

    #[test]
    fn counts_non_empty_lines() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("in.jsonl");
        std::fs::write(&p, "a\n\n  \nb\nc").unwrap();
        assert_eq!(count_lines(&p).unwrap(), 3);
    }
}
