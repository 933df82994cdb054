//! First pass over the output: where each record is (input line → byte offset, 16 bytes a
//! task) and what the records say about parsing and repairs. The output is in completion
//! order; sorting this index gives input order without holding any answer in memory.

use std::collections::BTreeMap;
use std::io::{self, BufRead};

use serde::Deserialize;

/// What the output's records say, for the run's report.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OutputCounts {
    /// Records read.
    pub records: u64,
    /// Successful records.
    pub succeeded: u64,
    /// Successful records that needed no repair.
    pub first_try: u64,
    /// Successful records that needed at least one repair.
    pub repaired: u64,
    /// Repair rounds over all successful records.
    pub repair_rounds: u64,
    /// Records that failed with `invalid_answer` (still invalid after every repair).
    pub invalid: u64,
    /// Other failures, by error code.
    pub failed: BTreeMap<String, u64>,
    /// Lines that are not output records (not JSON), skipped.
    pub unreadable: u64,
}

impl OutputCounts {
    /// Answers that reached the checker: accepted ones and those rejected as invalid.
    pub fn answered(&self) -> u64 {
        self.succeeded + self.invalid
    }

    /// Failures other than `invalid_answer`.
    pub fn failed_other(&self) -> u64 {
        self.failed.values().sum()
    }
}

#[derive(Deserialize)]
struct Head {
    #[serde(default)]
    error: Option<ErrorHead>,
    #[serde(default)]
    drover: Option<MetaHead>,
}

#[derive(Deserialize)]
struct ErrorHead {
    code: String,
}

#[derive(Deserialize)]
struct MetaHead {
    #[serde(default)]
    line: u64,
    #[serde(default)]
    repairs: u64,
}

/// Records without an input line (written by other tools) sort after the others, in file order.
const NO_LINE: u64 = u64::MAX;

/// Reads every record once: `(input line, byte offset)` per record, and the counts.
pub(crate) fn index(mut reader: impl BufRead) -> io::Result<(Vec<(u64, u64)>, OutputCounts)> {
    let mut entries = Vec::new();
    let mut counts = OutputCounts::default();
    let mut buf = Vec::new();
    let mut offset = 0u64;
    loop {
        buf.clear();
        let n = reader.read_until(b'\n', &mut buf)?;
        if n == 0 {
            break;
        }
        let at = offset;
        offset += n as u64;
        if buf.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        let Ok(head) = serde_json::from_slice::<Head>(&buf) else {
            counts.unreadable += 1;
            continue;
        };
        counts.records += 1;
        let (line, repairs) = head.drover.map_or((NO_LINE, 0), |m| {
            (if m.line == 0 { NO_LINE } else { m.line }, m.repairs)
        });
        match head.error {
            None => {
                counts.succeeded += 1;
                if repairs == 0 {
                    counts.first_try += 1;
                } else {
                    counts.repaired += 1;
                    counts.repair_rounds += repairs;
                }
            }
            Some(e) if e.code == "invalid_answer" => counts.invalid += 1,
            Some(e) => *counts.failed.entry(e.code).or_default() += 1,
        }
        entries.push((line, at));
    }
    // Offsets break ties, so records without a line keep their file order.
    entries.sort_unstable();
    Ok((entries, counts))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn index_sorts_by_input_line_and_counts() {
        let lines = [
            r#"{"custom_id":"c","response":{"body":{}},"error":null,"drover":{"line":3,"attempts":1}}"#,
            r#"{"custom_id":"a","response":{"body":{}},"error":null,"drover":{"line":1,"attempts":1,"repairs":2}}"#,
            "not json",
            r#"{"custom_id":"b","response":null,"error":{"code":"invalid_answer","message":"m"},"drover":{"line":2,"repairs":2}}"#,
            r#"{"custom_id":"x","response":null,"error":{"code":"timeout","message":"m"}}"#,
            r#"{"custom_id":"d","response":null,"error":{"code":"timeout","message":"m"},"drover":{"line":4}}"#,
        ];
        let text = lines.join("\n") + "\n";
        let (entries, counts) = index(text.as_bytes()).unwrap();
        let starts: Vec<u64> = lines
            .iter()
            .scan(0u64, |at, l| {
                let s = *at;
                *at += l.len() as u64 + 1;
                Some(s)
            })
            .collect();
        assert_eq!(
            entries,
            vec![
                (1, starts[1]),
                (2, starts[3]),
                (3, starts[0]),
                (4, starts[5]),
                (NO_LINE, starts[4])
            ]
        );
        assert_eq!(
            counts,
            OutputCounts {
                records: 5,
                succeeded: 2,
                first_try: 1,
                repaired: 1,
                repair_rounds: 2,
                invalid: 1,
                failed: [("timeout".to_string(), 2)].into(),
                unreadable: 1,
            }
        );
        assert_eq!((counts.answered(), counts.failed_other()), (3, 2));
    }
}
