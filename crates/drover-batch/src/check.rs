//! Checking batch input files.
//!
//! - [`check_upload`]: every line of an upload must be an OpenAI batch request line
//!   (`custom_id`, `method`, `url`, `body`) that drover's parser accepts, with a unique
//!   custom_id. The first bad line is named, so the caller can fix it and upload again.
//! - [`scan_for_batch`]: when a batch is created, every line must target the batch's endpoint;
//!   the count of lines is the batch's `request_counts.total`.
//!
//! Both read the file as a stream with a bounded line length, never whole.

use std::collections::HashMap;
use std::fs::File;
use std::io::{self, BufReader};
use std::path::Path;

use drover_io::parse::parse_line;
use drover_io::{Line, LineReader, ParseConfig, RequestDefaults};
use drover_types::{Endpoint, id_hash};
use serde::Deserialize;
use serde_json::value::RawValue;

use crate::store::LineError;

/// The longest request line accepted (as `drover run`'s default `--max-line-bytes`).
pub const MAX_LINE_BYTES: usize = 16 << 20;

/// Errors listed in a failed batch's `errors` (the rest are counted in the last one).
const MAX_LISTED: usize = 20;

/// The first problem of an upload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BadLine {
    /// 1-based line (0 when the problem is the file as a whole).
    pub line: u64,
    /// What is wrong, starting with `line N:`.
    pub message: String,
}

/// The four fields of a batch request line; only their presence is checked here, the parser
/// checks their values.
#[derive(Deserialize)]
struct Shape<'a> {
    #[serde(borrow)]
    custom_id: Option<&'a RawValue>,
    #[serde(borrow)]
    method: Option<&'a RawValue>,
    #[serde(borrow)]
    url: Option<&'a RawValue>,
    #[serde(borrow)]
    body: Option<&'a RawValue>,
}

fn missing_fields(data: &[u8]) -> Option<String> {
    // Not JSON (or not an object): the parser says why, in the same words as `drover run`.
    let shape: Shape<'_> = serde_json::from_slice(data).ok()?;
    let missing: Vec<&str> = [
        ("custom_id", shape.custom_id.is_none()),
        ("method", shape.method.is_none()),
        ("url", shape.url.is_none()),
        ("body", shape.body.is_none()),
    ]
    .into_iter()
    .filter_map(|(name, gone)| gone.then_some(name))
    .collect();
    (!missing.is_empty()).then(|| {
        format!(
            "not an OpenAI batch request: missing {}; each line needs \
             {{\"custom_id\": …, \"method\": \"POST\", \"url\": \"/v1/chat/completions\", \"body\": {{…}}}}",
            missing.iter().map(|m| format!("\"{m}\"")).collect::<Vec<_>>().join(", ")
        )
    })
}

/// Checks an uploaded batch input. `Ok(Ok(n))`: `n` requests, all good; `Ok(Err(bad))`: the
/// first bad line; `Err`: the file could not be read.
pub fn check_upload(path: &Path) -> io::Result<Result<u64, BadLine>> {
    let cfg = ParseConfig {
        defaults: RequestDefaults::default(),
        template: None,
    };
    let mut lines = LineReader::new(
        BufReader::with_capacity(1 << 20, File::open(path)?),
        MAX_LINE_BYTES,
    );
    let mut seen: HashMap<u64, u64> = HashMap::new();
    let mut requests = 0u64;
    while let Some((n, line)) = lines.next_line()? {
        let bad = |message: String| {
            Ok(Err(BadLine {
                line: n,
                message: format!("line {n}: {message}"),
            }))
        };
        let data = match line {
            Line::TooLong { len } => {
                return bad(format!(
                    "the line is {len} bytes, over the limit of {MAX_LINE_BYTES} bytes per request"
                ));
            }
            Line::Data(d) if d.iter().all(u8::is_ascii_whitespace) => continue,
            Line::Data(d) => d,
        };
        if let Some(message) = missing_fields(data) {
            return bad(message);
        }
        let task = match parse_line(n, data, &cfg) {
            Ok(t) => t,
            Err(e) => return bad(e.message),
        };
        if let Some(first) = seen.insert(id_hash(&task.custom_id), n) {
            return bad(format!(
                "duplicate custom_id {:?}, first seen on line {first}: custom_ids must be unique within a batch",
                task.custom_id
            ));
        }
        requests += 1;
    }
    if requests == 0 {
        return Ok(Err(BadLine {
            line: 0,
            message: "the file has no request lines".into(),
        }));
    }
    Ok(Ok(requests))
}

/// What a new batch's input holds.
#[derive(Debug, Clone, PartialEq)]
pub struct Scan {
    /// Request lines (non-empty lines).
    pub requests: u64,
    /// Lines that do not fit the batch (the first [`MAX_LISTED`], then a summary).
    pub errors: Vec<LineError>,
}

#[derive(Deserialize)]
struct UrlOnly {
    url: Option<String>,
}

/// Counts a batch's requests and checks that each line's `url` is the batch's `endpoint`.
pub fn scan_for_batch(path: &Path, endpoint: Endpoint) -> io::Result<Scan> {
    let mut lines = LineReader::new(
        BufReader::with_capacity(1 << 20, File::open(path)?),
        MAX_LINE_BYTES,
    );
    let (mut requests, mut errors, mut more) = (0u64, Vec::new(), 0u64);
    while let Some((n, line)) = lines.next_line()? {
        let problem = match line {
            Line::Data(d) if d.iter().all(u8::is_ascii_whitespace) => continue,
            Line::Data(d) => match serde_json::from_slice::<UrlOnly>(d) {
                Ok(UrlOnly { url: Some(url) }) => match Endpoint::from_url(&url) {
                    Ok(e) if e == endpoint => None,
                    _ => Some((
                        "mismatched_endpoint",
                        format!(
                            "line {n}: url {url:?} does not match the batch's endpoint {:?}: a batch sends every line to one endpoint",
                            endpoint.url()
                        ),
                    )),
                },
                Ok(UrlOnly { url: None }) => {
                    Some(("invalid_request", format!("line {n}: no \"url\"")))
                }
                Err(e) => Some((
                    "invalid_json_line",
                    format!("line {n}: not a JSON object: {e}"),
                )),
            },
            Line::TooLong { len } => Some((
                "invalid_request",
                format!("line {n}: {len} bytes, over {MAX_LINE_BYTES}"),
            )),
        };
        requests += 1;
        if let Some((code, message)) = problem {
            if errors.len() < MAX_LISTED {
                errors.push(LineError {
                    code: code.into(),
                    message,
                    param: Some("url".into()),
                    line: Some(n),
                });
            } else {
                more += 1;
            }
        }
    }
    if more > 0 {
        errors.push(LineError {
            code: "too_many_errors".into(),
            message: format!("{more} more line(s) have errors"),
            param: None,
            line: None,
        });
    }
    if requests == 0 {
        errors.push(LineError {
            code: "empty_file".into(),
            message: "the input file has no request lines".into(),
            param: None,
            line: None,
        });
    }
    Ok(Scan { requests, errors })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(id: &str, url: &str) -> String {
        format!(
            r#"{{"custom_id":"{id}","method":"POST","url":"{url}","body":{{"messages":[{{"role":"user","content":"hi"}}]}}}}"#
        )
    }

    fn file(lines: &[String]) -> (tempfile::TempDir, std::path::PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("in.jsonl");
        std::fs::write(&p, lines.join("\n") + "\n").unwrap();
        (dir, p)
    }

    #[test]
    fn good_uploads_count_their_requests() {
        let (_d, p) = file(&[
            req("a", "/v1/chat/completions"),
            String::new(),
            req("b", "/v1/chat/completions"),
        ]);
        assert_eq!(check_upload(&p).unwrap(), Ok(2));
    }

    #[test]
    fn the_first_bad_line_is_named() {
        let cases: Vec<(Vec<String>, u64, &str)> = vec![
            (vec![req("a", "/v1/chat/completions"), "{oops".into()], 2, "invalid JSON"),
            (vec![r#"{"id":"a","prompt":"x"}"#.into()], 1, "missing \"custom_id\", \"method\", \"url\", \"body\""),
            (vec![req("a", "/v1/chat/completions"), req("b", "/v1/responses")], 2, "unsupported url"),
            (vec![req("a", "/v1/chat/completions"), req("a", "/v1/chat/completions")], 2, "duplicate custom_id \"a\", first seen on line 1"),
            (
                vec![r#"{"custom_id":"a","method":"GET","url":"/v1/completions","body":{"prompt":"x"}}"#.into()],
                1,
                "\"method\" must be \"POST\"",
            ),
            (vec![r#"{"custom_id":"a","method":"POST","url":"/v1/chat/completions","body":{}}"#.into()], 1, "no \"messages\""),
            (vec![String::new()], 0, "no request lines"),
        ];
        for (lines, line, want) in cases {
            let (_d, p) = file(&lines);
            let bad = check_upload(&p).unwrap().unwrap_err();
            assert_eq!(bad.line, line, "{bad:?}");
            assert!(
                bad.message.contains(want),
                "{:?} does not say {want:?}",
                bad.message
            );
            if line > 0 {
                assert!(
                    bad.message.starts_with(&format!("line {line}: ")),
                    "{}",
                    bad.message
                );
            }
        }
    }

    #[test]
    fn a_batch_sends_every_line_to_its_endpoint() {
        let (_d, p) = file(&[
            req("a", "/v1/chat/completions"),
            req("b", "/v1/completions"),
            "  ".into(),
            req("c", "/chat/completions"),
        ]);
        let scan = scan_for_batch(&p, Endpoint::ChatCompletions).unwrap();
        assert_eq!(scan.requests, 3);
        assert_eq!(scan.errors.len(), 1);
        assert_eq!(scan.errors[0].line, Some(2));
        assert_eq!(scan.errors[0].code, "mismatched_endpoint");
        assert!(
            scan.errors[0].message.contains("\"/v1/completions\""),
            "{}",
            scan.errors[0].message
        );
        let many: Vec<String> = (0..30)
            .map(|i| req(&i.to_string(), "/v1/embeddings"))
            .collect();
        let (_d, p) = file(&many);
        let scan = scan_for_batch(&p, Endpoint::ChatCompletions).unwrap();
        assert_eq!(scan.errors.len(), MAX_LISTED + 1);
        assert!(
            scan.errors[MAX_LISTED].message.starts_with("10 more"),
            "{:?}",
            scan.errors[MAX_LISTED]
        );
    }
}
