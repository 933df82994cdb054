//! Row encodings: CSV (RFC 4180) and JSON Lines.

use std::io::{self, Write};

use serde_json::Value;

/// The table's file format, from its extension.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TableFormat {
    /// `.csv`: RFC 4180 — a header row, CRLF line ends, fields with `"`, `,`, CR or LF quoted.
    Csv,
    /// `.jsonl`: one JSON object per row, keys in column order.
    Jsonl,
}

/// Writes rows of cells; a cell is a JSON value or nothing.
pub(crate) struct RowWriter<W: Write> {
    out: W,
    format: TableFormat,
    columns: Vec<String>,
}

impl<W: Write> RowWriter<W> {
    /// Starts a table (the CSV header is written here).
    pub fn new(mut out: W, format: TableFormat, columns: Vec<String>) -> io::Result<RowWriter<W>> {
        if format == TableFormat::Csv {
            let header: Vec<String> = columns.iter().map(|c| csv_field(c)).collect();
            out.write_all(header.join(",").as_bytes())?;
            out.write_all(b"\r\n")?;
        }
        Ok(RowWriter {
            out,
            format,
            columns,
        })
    }

    /// One row, a cell per column.
    pub fn row(&mut self, cells: &[Option<Value>]) -> io::Result<()> {
        debug_assert_eq!(cells.len(), self.columns.len());
        match self.format {
            TableFormat::Csv => {
                let line: Vec<String> = cells
                    .iter()
                    .map(|c| csv_field(&cell_text(c.as_ref())))
                    .collect();
                self.out.write_all(line.join(",").as_bytes())?;
                self.out.write_all(b"\r\n")
            }
            TableFormat::Jsonl => {
                // Written by hand so the keys keep the column order.
                let mut line = String::from("{");
                for (i, (name, cell)) in self.columns.iter().zip(cells).enumerate() {
                    if i > 0 {
                        line.push(',');
                    }
                    line.push_str(&Value::String(name.clone()).to_string());
                    line.push(':');
                    line.push_str(&cell.as_ref().unwrap_or(&Value::Null).to_string());
                }
                line.push_str("}\n");
                self.out.write_all(line.as_bytes())
            }
        }
    }

    /// The underlying writer.
    pub fn into_inner(self) -> W {
        self.out
    }
}

/// A cell as CSV text: strings as they are, other values as JSON, nothing as empty.
pub(crate) fn cell_text(v: Option<&Value>) -> String {
    match v {
        None | Some(Value::Null) => String::new(),
        Some(Value::String(s)) => s.clone(),
        Some(other) => other.to_string(),
    }
}

/// RFC 4180 §2.6–2.7: quote a field holding a quote, comma, CR or LF; double inner quotes.
pub(crate) fn csv_field(s: &str) -> String {
    if s.contains(['"', ',', '\r', '\n']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn csv_quoting_per_rfc_4180() {
        assert_eq!(csv_field("plain text"), "plain text");
        assert_eq!(csv_field("a,b"), "\"a,b\"");
        assert_eq!(csv_field("say \"hi\""), "\"say \"\"hi\"\"\"");
        assert_eq!(csv_field("two\nlines"), "\"two\nlines\"");
        assert_eq!(csv_field("cr\rhere"), "\"cr\rhere\"");
        assert_eq!(csv_field(""), "");
    }

    #[test]
    fn csv_rows_render_values() {
        let mut w = RowWriter::new(
            Vec::new(),
            TableFormat::Csv,
            vec!["custom_id".into(), "x,y".into(), "n".into(), "o".into()],
        )
        .unwrap();
        w.row(&[
            Some(json!("a1")),
            Some(json!("he said \"no\", twice")),
            Some(json!(4.5)),
            Some(json!({"k": [1, 2]})),
        ])
        .unwrap();
        w.row(&[
            Some(json!("a2")),
            None,
            Some(json!(true)),
            Some(Value::Null),
        ])
        .unwrap();
        let text = String::from_utf8(w.into_inner()).unwrap();
        assert_eq!(
            text,
            "custom_id,\"x,y\",n,o\r\na1,\"he said \"\"no\"\", twice\",4.5,\"{\"\"k\"\":[1,2]}\"\r\na2,,true,\r\n"
        );
    }

    #[test]
    fn jsonl_rows_keep_column_order_and_nulls() {
        let mut w = RowWriter::new(
            Vec::new(),
            TableFormat::Jsonl,
            vec!["custom_id".into(), "z".into(), "a".into()],
        )
        .unwrap();
        w.row(&[Some(json!("a1")), Some(json!([1])), None]).unwrap();
        assert_eq!(
            String::from_utf8(w.into_inner()).unwrap(),
            "{\"custom_id\":\"a1\",\"z\":[1],\"a\":null}\n"
        );
    }
}
