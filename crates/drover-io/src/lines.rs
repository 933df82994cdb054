//! Reading JSONL without trusting it: memory per line is bounded, line numbers are exact.

use std::io::{self, BufRead};

/// One physical line of input.
#[derive(Debug, PartialEq, Eq)]
pub enum Line<'a> {
    /// The line's bytes, without the trailing `\n` (and `\r`).
    Data(&'a [u8]),
    /// The line was longer than the limit; its bytes were skipped.
    TooLong {
        /// Bytes the line had (its terminator excluded).
        len: u64,
    },
}

/// Splits a byte stream into lines, keeping at most `max_line_bytes` of any line in memory.
pub struct LineReader<R> {
    inner: R,
    buf: Vec<u8>,
    max: usize,
    line_no: u64,
}

impl<R: BufRead> LineReader<R> {
    /// Reads lines from `inner`; a line over `max_line_bytes` is reported as [`Line::TooLong`].
    pub fn new(inner: R, max_line_bytes: usize) -> Self {
        LineReader {
            inner,
            buf: Vec::new(),
            max: max_line_bytes,
            line_no: 0,
        }
    }

    /// The next line and its 1-based number, or `None` at the end of input.
    pub fn next_line(&mut self) -> io::Result<Option<(u64, Line<'_>)>> {
        self.buf.clear();
        let mut len: u64 = 0;
        let mut saw_any = false;
        loop {
            let chunk = match self.inner.fill_buf() {
                Ok(c) => c,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            };
            if chunk.is_empty() {
                if !saw_any {
                    return Ok(None);
                }
                break;
            }
            saw_any = true;
            let (take, done) = match memchr(chunk) {
                Some(i) => (i, true),
                None => (chunk.len(), false),
            };
            len += take as u64;
            if len as usize <= self.max {
                self.buf.extend_from_slice(&chunk[..take]);
            }
            self.inner.consume(if done { take + 1 } else { take });
            if done {
                break;
            }
        }
        self.line_no += 1;
        if len as usize > self.max {
            // A trailing '\r' would have been counted; it does not matter for a rejected line.
            return Ok(Some((self.line_no, Line::TooLong { len })));
        }
        if self.buf.last() == Some(&b'\r') {
            self.buf.pop();
        }
        Ok(Some((self.line_no, Line::Data(&self.buf))))
    }
}

fn memchr(hay: &[u8]) -> Option<usize> {
    hay.iter().position(|&b| b == b'\n')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn collect(input: &[u8], max: usize) -> Vec<(u64, Result<Vec<u8>, u64>)> {
        // A tiny buffer forces lines to span many fill_buf calls.
        let mut r = LineReader::new(io::BufReader::with_capacity(3, input), max);
        let mut out = Vec::new();
        while let Some((n, line)) = r.next_line().unwrap() {
            out.push((
                n,
                match line {
                    Line::Data(d) => Ok(d.to_vec()),
                    Line::TooLong { len } => Err(len),
                },
            ));
        }
        out
    }

    #[test]
    fn splits_lines_and_numbers_them() {
        let got = collect(b"ab\n\ncd\r\nlast", 100);
        assert_eq!(
            got,
            vec![
                (1, Ok(b"ab".to_vec())),
                (2, Ok(vec![])),
                (3, Ok(b"cd".to_vec())),
                (4, Ok(b"last".to_vec())),
            ]
        );
    }

    #[test]
    fn long_lines_are_skipped_not_buffered() {
        let mut input = b"ok\n".to_vec();
        input.extend(std::iter::repeat_n(b'x', 50));
        input.extend(b"\nnext\n");
        let got = collect(&input, 10);
        assert_eq!(
            got,
            vec![
                (1, Ok(b"ok".to_vec())),
                (2, Err(50)),
                (3, Ok(b"next".to_vec()))
            ]
        );
    }

    #[test]
    fn empty_input_has_no_lines() {
        assert!(collect(b"", 10).is_empty());
    }
}
