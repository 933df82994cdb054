//! `--table FILE`: the answers as a flat table, one row per task keyed by custom_id, in input
//! order, built after the job from the output file.
//!
//! The output is in completion order. A first pass indexes it ([`index`]: input line and byte
//! offset, 16 bytes a task); the index is sorted, and a second pass reads each record again at
//! its offset and writes its row. Memory grows with the number of tasks by those 16 bytes only;
//! no answer is held longer than its row takes to write. The table is written to a temporary
//! file beside it and renamed, so a reader never sees half a table.

mod encode;
mod index;

use std::fs::File;
use std::io::{BufRead, BufReader, BufWriter, Write};
use std::path::{Path, PathBuf};

use serde::Deserialize;
use serde_json::Value;
use serde_json::value::RawValue;

pub use encode::TableFormat;
pub use index::OutputCounts;

use crate::error::AnswerError;
use crate::extract::answer_text;

/// What the columns between `custom_id` and `error` hold.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Columns {
    /// These fields of the answer object (`drover.answer`), one column each.
    Fields(Vec<String>),
    /// The whole answer object, as JSON text, in one `answer` column (a schema without properties).
    Object,
    /// The answer text, in one `answer` column (no `--schema`/`--fields`).
    Text,
}

/// A table to write.
#[derive(Debug, Clone)]
pub struct TableSpec {
    /// Where.
    pub path: PathBuf,
    /// CSV or JSONL.
    pub format: TableFormat,
    /// What goes in it.
    pub columns: Columns,
}

impl TableSpec {
    /// Checks `--table PATH` before anything is sent: a known extension, an existing directory.
    pub fn new(path: &Path, columns: Columns) -> Result<TableSpec, AnswerError> {
        let ext = path
            .extension()
            .and_then(|e| e.to_str())
            .map(str::to_ascii_lowercase);
        let format = match ext.as_deref() {
            Some("csv") => TableFormat::Csv,
            Some("jsonl") => TableFormat::Jsonl,
            _ => {
                return Err(AnswerError::TableExtension {
                    path: path.to_path_buf(),
                });
            }
        };
        let dir = path
            .parent()
            .filter(|d| !d.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        if !dir.is_dir() {
            return Err(AnswerError::TableDirectory {
                path: path.to_path_buf(),
                dir: dir.to_path_buf(),
            });
        }
        Ok(TableSpec {
            path: path.to_path_buf(),
            format,
            columns,
        })
    }

    /// Column names: `custom_id`, the answer columns, `error` (drover's own two get a `drover_`
    /// prefix when a field already has the name).
    pub fn column_names(&self) -> Vec<String> {
        let answer_cols: Vec<String> = match &self.columns {
            Columns::Fields(f) => f.clone(),
            Columns::Object | Columns::Text => vec!["answer".into()],
        };
        let own = |name: &str| {
            if answer_cols.iter().any(|c| c == name) {
                format!("drover_{name}")
            } else {
                name.to_string()
            }
        };
        let mut names = vec![own("custom_id")];
        names.extend(answer_cols.iter().cloned());
        names.push(own("error"));
        names
    }
}

#[derive(Deserialize)]
struct Record {
    custom_id: String,
    #[serde(default)]
    response: Option<ResponsePart>,
    #[serde(default)]
    error: Option<ErrorPart>,
    #[serde(default)]
    drover: Option<MetaPart>,
}

#[derive(Deserialize)]
struct ResponsePart {
    body: Box<RawValue>,
}

#[derive(Deserialize)]
struct ErrorPart {
    code: String,
}

#[derive(Deserialize)]
struct MetaPart {
    #[serde(default)]
    answer: Option<Value>,
}

/// Reads the output once for its counts and, with `table`, writes the table; returns the counts
/// and the rows written.
pub fn read_output(
    output: &Path,
    table: Option<&TableSpec>,
) -> Result<(OutputCounts, u64), AnswerError> {
    let read_err = |source| AnswerError::ReadOutput {
        path: output.to_path_buf(),
        source,
    };
    let file = File::open(output).map_err(read_err)?;
    let (entries, counts) = index::index(BufReader::new(file)).map_err(read_err)?;
    let Some(table) = table else {
        return Ok((counts, 0));
    };
    if same_file(&table.path, output) {
        return Err(AnswerError::TableIsOutput(table.path.clone()));
    }
    let write_err = |source| AnswerError::WriteTable {
        path: table.path.clone(),
        source,
    };
    let tmp = temp_path(&table.path);
    let result = (|| {
        let out = BufWriter::new(File::create(&tmp).map_err(write_err)?);
        let mut writer =
            encode::RowWriter::new(out, table.format, table.column_names()).map_err(write_err)?;
        let mut reader = BufReader::new(File::open(output).map_err(read_err)?);
        let (mut pos, mut buf, mut rows) = (0u64, Vec::new(), 0u64);
        for &(_, offset) in &entries {
            if offset != pos {
                // Relative seeks keep the buffer when the record is near: completion order is
                // mostly input order, so most seeks are short or none.
                reader
                    .seek_relative(offset as i64 - pos as i64)
                    .map_err(read_err)?;
            }
            buf.clear();
            let n = reader.read_until(b'\n', &mut buf).map_err(read_err)?;
            pos = offset + n as u64;
            let Ok(record) = serde_json::from_slice::<Record>(&buf) else {
                continue;
            };
            writer
                .row(&cells(&record, &table.columns))
                .map_err(write_err)?;
            rows += 1;
        }
        let mut out = writer.into_inner();
        out.flush().map_err(write_err)?;
        out.into_inner()
            .map_err(|e| write_err(e.into_error()))?
            .sync_all()
            .map_err(write_err)?;
        std::fs::rename(&tmp, &table.path).map_err(write_err)?;
        Ok(rows)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    Ok((counts, result?))
}

/// One row: custom_id, the answer columns, the error code.
fn cells(record: &Record, columns: &Columns) -> Vec<Option<Value>> {
    let answer = record.drover.as_ref().and_then(|m| m.answer.as_ref());
    let mut row = vec![Some(Value::String(record.custom_id.clone()))];
    match columns {
        Columns::Fields(fields) => {
            let obj = answer.and_then(Value::as_object);
            row.extend(fields.iter().map(|f| obj.and_then(|o| o.get(f)).cloned()));
        }
        Columns::Object => row.push(answer.cloned()),
        Columns::Text => {
            let text = match (&record.error, &record.response) {
                (None, Some(r)) => answer_text(&r.body).ok().map(|t| Value::String(t.text)),
                _ => None,
            };
            row.push(text);
        }
    }
    row.push(record.error.as_ref().map(|e| Value::String(e.code.clone())));
    row
}

fn temp_path(path: &Path) -> PathBuf {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    path.with_file_name(format!(".{name}.drover-tmp"))
}

fn same_file(a: &Path, b: &Path) -> bool {
    match (a.canonicalize(), b.canonicalize()) {
        (Ok(a), Ok(b)) => a == b,
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn record(line: u64, id: &str, answer: Option<Value>, error: Option<&str>) -> String {
        let mut r = json!({
            "id": "batch_req_x",
            "custom_id": id,
            "response": if error.is_none() {
                json!({"status_code": 200, "request_id": "r", "body": {"choices": [{"message": {"role": "assistant", "content": format!("text of {id}")}}]}})
            } else { Value::Null },
            "error": error.map(|c| json!({"code": c, "message": "m"})),
            "drover": {"line": line, "attempts": 1},
        });
        if let Some(a) = answer {
            r["drover"]["answer"] = a;
        }
        r.to_string()
    }

    /// An output in completion order: 3, 1, 4, 2.
    fn output(dir: &Path) -> PathBuf {
        let lines = [
            record(3, "c", Some(json!({"s": "x, \"y\"", "n": 3})), None),
            record(
                1,
                "a",
                Some(json!({"s": "plain", "n": 1.5, "extra": true})),
                None,
            ),
            record(4, "d", None, Some("invalid_answer")),
            record(2, "b", Some(json!({"n": 2})), None),
        ];
        let p = dir.join("out.jsonl");
        std::fs::write(&p, lines.join("\n") + "\n").unwrap();
        p
    }

    #[test]
    fn csv_table_is_in_input_order_with_error_codes() {
        let dir = tempfile::tempdir().unwrap();
        let out = output(dir.path());
        let spec = TableSpec::new(
            &dir.path().join("t.csv"),
            Columns::Fields(vec!["s".into(), "n".into()]),
        )
        .unwrap();
        let (counts, rows) = read_output(&out, Some(&spec)).unwrap();
        assert_eq!((rows, counts.succeeded, counts.invalid), (4, 3, 1));
        let text = std::fs::read_to_string(dir.path().join("t.csv")).unwrap();
        assert_eq!(
            text,
            "custom_id,s,n,error\r\na,plain,1.5,\r\nb,,2,\r\nc,\"x, \"\"y\"\"\",3,\r\nd,,,invalid_answer\r\n"
        );
        assert!(!dir.path().join(".t.csv.drover-tmp").exists());
    }

    #[test]
    fn jsonl_table_and_whole_object_and_text_columns() {
        let dir = tempfile::tempdir().unwrap();
        let out = output(dir.path());
        let spec = TableSpec::new(&dir.path().join("t.jsonl"), Columns::Object).unwrap();
        read_output(&out, Some(&spec)).unwrap();
        let rows: Vec<Value> = std::fs::read_to_string(dir.path().join("t.jsonl"))
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(
            rows[0],
            json!({"custom_id": "a", "answer": {"s": "plain", "n": 1.5, "extra": true}, "error": null})
        );
        assert_eq!(
            rows[3],
            json!({"custom_id": "d", "answer": null, "error": "invalid_answer"})
        );
        let spec = TableSpec::new(&dir.path().join("text.csv"), Columns::Text).unwrap();
        read_output(&out, Some(&spec)).unwrap();
        let text = std::fs::read_to_string(dir.path().join("text.csv")).unwrap();
        assert_eq!(
            text,
            "custom_id,answer,error\r\na,text of a,\r\nb,text of b,\r\nc,text of c,\r\nd,,invalid_answer\r\n"
        );
    }

    #[test]
    fn bad_table_paths_are_refused_up_front() {
        let dir = tempfile::tempdir().unwrap();
        let e = TableSpec::new(&dir.path().join("t.xlsx"), Columns::Text)
            .unwrap_err()
            .to_string();
        assert!(
            e.ends_with("unknown format; end the file name in .csv or .jsonl"),
            "{e}"
        );
        let e = TableSpec::new(&dir.path().join("missing/t.csv"), Columns::Text)
            .unwrap_err()
            .to_string();
        assert!(e.contains("does not exist"), "{e}");
        assert!(TableSpec::new(Path::new("t.CSV"), Columns::Text).is_ok());
        let out = output(dir.path());
        let same = TableSpec {
            path: dir.path().join("out.jsonl"),
            format: TableFormat::Jsonl,
            columns: Columns::Object,
        };
        assert!(matches!(
            read_output(&out, Some(&same)),
            Err(AnswerError::TableIsOutput(_))
        ));
    }

    #[test]
    fn own_columns_step_aside_for_fields_of_the_same_name() {
        let spec = TableSpec {
            path: "t.csv".into(),
            format: TableFormat::Csv,
            columns: Columns::Fields(vec!["error".into(), "x".into()]),
        };
        assert_eq!(
            spec.column_names(),
            ["custom_id", "error", "x", "drover_error"]
        );
    }
}
